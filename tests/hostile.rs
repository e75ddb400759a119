//! Adversarial traffic: the captures under `tests/data/hostile/`, written by
//! `scripts/hostile/make-captures.py` (Ethernet/IPv4/TCP, server 10.0.0.1:80). Each test runs the
//! binary and asserts the exact report, saying why each number is right.

mod common;
use common::*;
use serde_json::{json, Value};

/// `connscope analyze tests/data/hostile/NAME ARGS --format json`, which must succeed.
fn report(name: &str, args: &[&str]) -> Value {
    let path = format!("tests/data/hostile/{name}");
    let mut all = vec!["analyze", path.as_str(), "--format", "json"];
    all.extend_from_slice(args);
    let run = connscope(&all);
    assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    assert_eq!(run.stderr, "", "{name}: no warning expected");
    serde_json::from_str(&run.stdout).expect("JSON report")
}

/// Asserts each `(dotted path, value)` of the report.
fn assert_fields(report: &Value, expected: &[(&str, Value)]) {
    for (path, want) in expected {
        let got = lookup(report, path).unwrap_or_else(|| panic!("{path} missing from the report"));
        assert_eq!(got, want, "{path}");
    }
}

/// Counts of every socket state, all zero but the ones given.
fn states(nonzero: &[(&str, u64)]) -> Value {
    let mut all = json!({
        "CLOSED": 0, "CLOSE_WAIT": 0, "CLOSING": 0, "ESTABLISHED": 0, "FIN_WAIT_1": 0,
        "FIN_WAIT_2": 0, "LAST_ACK": 0, "SYN_RECEIVED": 0, "SYN_SENT": 0, "TIME_WAIT": 0
    });
    for (state, n) in nonzero {
        all[*state] = json!(n);
    }
    all
}

/// `packets` when every one of `n` packets is a matched TCP segment and `after_close` came after a close.
fn all_tcp(n: u64, after_close: u64) -> Value {
    json!({
        "total": n, "tcp": n, "matched": n, "truncated": 0, "undecodable": 0, "not_tcp": 0,
        "ip_fragments": 0, "reassembled": 0, "fragments_dropped": 0, "after_close": after_close
    })
}

#[test]
fn syn_flood_of_5000_half_open_connections_is_counted_whole() {
    let r = report("syn-flood-5000.pcap", &[]);
    assert_fields(
        &r,
        &[
            // 5,000 SYNs, one per client, nothing else.
            ("packets", all_tcp(5000, 0)),
            // Each SYN opens its own connection and counts as a handshake (its SYN was seen)...
            ("summary.connections", json!(5000)),
            ("summary.handshakes", json!(5000)),
            // ...that never completes: no SYN-ACK comes.
            ("summary.handshakes_completed", json!(0)),
            ("summary.http_requests", json!(0)),
            ("summary.rst_connections", json!(0)),
            // 5,000 is under the default cap (200,000): nothing is evicted.
            ("summary.evicted_connections", json!(0)),
            // The clients sent SYN and wait for the answer; the server never answered (no SYN-ACK: CLOSED).
            ("summary.client_states", states(&[("SYN_SENT", 5000)])),
            ("summary.server_states", states(&[("CLOSED", 5000)])),
            ("verdict.findings", json!([])),
        ],
    );
}

#[test]
fn syn_flood_over_max_connections_evicts_the_oldest_half_open_and_counts_them() {
    // One thread: one table, so exactly the oldest go (with several, each worker evicts its own oldest).
    let r = report("syn-flood-5000.pcap", &["--max-connections", "1000", "--threads", "1"]);
    assert_fields(
        &r,
        &[
            ("packets", all_tcp(5000, 0)),
            // Evicted connections are still reported: nothing is silently dropped.
            ("summary.connections", json!(5000)),
            ("summary.handshakes", json!(5000)),
            // Each SYN after the 1,000th finds the table full and evicts one: 5,000 - 1,000.
            ("summary.evicted_connections", json!(4000)),
            ("summary.client_states", states(&[("SYN_SENT", 5000)])),
            ("verdict.findings.0.code", json!("connections_evicted")),
            ("verdict.findings.0.count", json!(4000)),
        ],
    );
    // The eviction finding is the only one.
    assert_eq!(r["verdict"]["findings"].as_array().map(Vec::len), Some(1));
    // All are half-open, so the oldest go first: ids 1..=4000 evicted, 4001..=5000 open at the end.
    let connections = r["connections"].as_array().expect("connections");
    assert_eq!(connections.len(), 5000);
    for c in connections {
        let id = c["id"].as_u64().expect("id");
        let end = if id <= 4000 { "evicted" } else { "open_at_end" };
        assert_eq!(c["end"], json!(end), "connection {id}");
    }
}

#[test]
fn syn_flood_over_max_connections_on_two_threads_shares_the_cap() {
    // Each of the two workers holds at most 500 of the 1,000 and evicts its own oldest.
    let r = report("syn-flood-5000.pcap", &["--max-connections", "1000", "--threads", "2"]);
    assert_fields(
        &r,
        &[
            ("summary.connections", json!(5000)),
            ("summary.evicted_connections", json!(4000)),
            ("verdict.findings.0.code", json!("connections_evicted")),
        ],
    );
    let connections = r["connections"].as_array().expect("connections");
    let open_at_end = connections.iter().filter(|c| c["end"] == json!("open_at_end")).count();
    assert_eq!(open_at_end, 1000);
    // Numbered in the order they opened whatever worker had them: 1..=5000, each once.
    let mut ids: Vec<u64> = connections.iter().map(|c| c["id"].as_u64().expect("id")).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=5000).collect::<Vec<u64>>());
}

#[test]
fn sequence_numbers_wrapping_past_2_pow_32_lose_nothing() {
    let r = report("seq-wrap.pcap", &[]);
    assert_fields(
        &r,
        &[
            // Handshake 3, three request/ACK pairs 6, three response/ACK pairs 6, close 3.
            ("packets", all_tcp(18, 0)),
            ("summary.connections", json!(1)),
            ("summary.handshakes", json!(1)),
            ("summary.handshakes_completed", json!(1)),
            // All three requests are framed, including /two-spans-the-wrap, whose segment runs from
            // 2^32 - 10 to 35, and the responses, the second of which crosses the server's wrap.
            ("summary.http_requests", json!(3)),
            ("summary.http_responses", json!(3)),
            ("summary.stream_gaps", json!(0)),
            ("summary.rst_connections", json!(0)),
            ("summary.evicted_connections", json!(0)),
            // The client closed first and acknowledged the server's FIN: TIME_WAIT / CLOSED. A wrap
            // misread as a jump back would leave the FINs unacknowledged.
            ("summary.fin_first", json!({"client": 1, "server": 0, "none": 0})),
            ("summary.client_states", states(&[("TIME_WAIT", 1)])),
            ("summary.server_states", states(&[("CLOSED", 1)])),
            ("connections.0.requests.1.target", json!("/two-spans-the-wrap")),
            ("connections.0.requests.1.status", json!(200)),
            ("connections.0.end", json!("closed")),
        ],
    );
}

#[test]
fn rsts_with_out_of_window_sequence_numbers_are_ignored_and_counted() {
    let r = report("bad-rst.pcap", &[]);
    assert_fields(
        &r,
        &[
            // Handshake 3, two exchanges of 4 packets, 2 RSTs, close 3.
            ("packets", all_tcp(16, 0)),
            ("summary.connections", json!(1)),
            ("summary.handshakes", json!(1)),
            ("summary.handshakes_completed", json!(1)),
            // The request sent after the RSTs is framed: the connection was not ended by them.
            ("summary.http_requests", json!(2)),
            ("summary.http_responses", json!(2)),
            // Neither RST was in the receiver's window (10^7 ahead, 3·10^9 ahead = behind mod 2^32).
            ("summary.rst_connections", json!(0)),
            ("summary.rst_by", json!({"client": 0, "server": 0, "none": 1})),
            ("connections.0.rst_ignored", json!(2)),
            ("connections.0.rst_by", Value::Null),
            // The normal close that follows: client FIN first, both FINs acknowledged.
            ("summary.fin_first", json!({"client": 1, "server": 0, "none": 0})),
            ("summary.client_states", states(&[("TIME_WAIT", 1)])),
            ("summary.server_states", states(&[("CLOSED", 1)])),
            ("summary.evicted_connections", json!(0)),
            ("verdict.findings", json!([])),
        ],
    );
}

#[test]
fn overlapping_retransmissions_with_different_bytes_keep_the_first_copy() {
    let r = report("overlap.pcap", &[]);
    assert_fields(
        &r,
        &[
            // Handshake 3; request 1 sent 3 times + ACK; response + ACK; request 2 in 3 pieces + ACK;
            // response + ACK; close 3.
            ("packets", all_tcp(18, 0)),
            ("summary.connections", json!(1)),
            ("summary.handshakes_completed", json!(1)),
            // Retransmitted copies are never framed as more requests.
            ("summary.http_requests", json!(2)),
            ("summary.http_responses", json!(2)),
            // The forged retransmission (/FORGE) came after /first was delivered: dropped.
            ("connections.0.requests.0.target", json!("/first")),
            // /second's tail was held first; the later head's 5 other bytes over it lose.
            ("connections.0.requests.1.target", json!("/second")),
            ("summary.stream_gaps", json!(0)),
            ("summary.rst_connections", json!(0)),
            ("summary.client_states", states(&[("TIME_WAIT", 1)])),
            ("summary.server_states", states(&[("CLOSED", 1)])),
            ("summary.evicted_connections", json!(0)),
        ],
    );
}

#[test]
fn never_ending_chunked_body_is_skipped_without_buffering() {
    let r = report("endless-chunked.pcap", &[]);
    assert_fields(
        &r,
        &[
            // Handshake 3, request + ACK 2, then 103 server segments (head, a 4 KiB chunk, the start
            // of a 2^63-1 byte chunk: 148,969 bytes / 1,448) and the client's ACK.
            ("packets", all_tcp(109, 0)),
            ("summary.connections", json!(1)),
            ("summary.handshakes_completed", json!(1)),
            ("summary.http_requests", json!(1)),
            // The response head is framed when it arrives, though its body never ends.
            ("summary.http_responses", json!(1)),
            ("connections.0.requests.0.status", json!(200)),
            ("summary.stream_gaps", json!(0)),
            // No FIN, no RST: both sides still ESTABLISHED at the end of the capture.
            ("summary.fin_first", json!({"client": 0, "server": 0, "none": 1})),
            ("summary.rst_connections", json!(0)),
            ("summary.client_states", states(&[("ESTABLISHED", 1)])),
            ("summary.server_states", states(&[("ESTABLISHED", 1)])),
            ("connections.0.end", json!("open_at_end")),
            ("summary.evicted_connections", json!(0)),
        ],
    );
}

#[test]
fn megabytes_of_header_without_blank_line_are_dropped_and_what_follows_them_in_the_same_turn_too() {
    let r = report("huge-header.pcap", &[]);
    assert_fields(
        &r,
        &[
            // Handshake 3; 3,145,105 request bytes in 2,173 segments of at most 1,448 + the ACK;
            // response + ACK 2; close 3 — 2,182.
            ("packets", all_tcp(2182, 0)),
            ("summary.connections", json!(1)),
            ("summary.handshakes_completed", json!(1)),
            // The 3 MiB head never ends: past 64 KiB it is garbage, not a request. GET /after follows
            // it in the same client turn, inside a header block that never ended (a server reads it
            // as one more header line): no message can begin there (docs/json.md, "How HTTP messages
            // are counted"), so no request is counted. Until issue 13 the framer took any request
            // line at a line start, and counted GET /after. The response begins the server's turn.
            ("summary.http_requests", json!(0)),
            ("summary.http_responses", json!(1)),
            ("connections.0.requests", json!([{"method": null, "target": null, "version": null, "status": 200}])),
            ("summary.stream_gaps", json!(0)),
            ("summary.rst_connections", json!(0)),
            ("summary.client_states", states(&[("TIME_WAIT", 1)])),
            ("summary.server_states", states(&[("CLOSED", 1)])),
            ("summary.evicted_connections", json!(0)),
        ],
    );
}

#[test]
fn data_after_rst_fin_without_handshake_and_duplicate_syn_acks() {
    let r = report("odd-closes.pcap", &[]);
    assert_fields(
        &r,
        &[
            // 6 packets for the reset connection and 1 after its RST, 2 for the lone FIN, 8 for the
            // duplicate SYN-ACKs. The request sent after the RST belongs to no open connection: it
            // counts as after_close.
            ("packets", all_tcp(17, 1)),
            ("summary.connections", json!(3)),
            // Connections 1 and 3 began with a SYN and completed their handshakes; 2 is mid-stream.
            ("summary.handshakes", json!(2)),
            ("summary.handshakes_completed", json!(2)),
            ("summary.mid_stream", json!(1)),
            // /a before the RST and /c; /late after the RST is not framed.
            ("summary.http_requests", json!(2)),
            // Only /c is answered.
            ("summary.http_responses", json!(1)),
            ("summary.rst_connections", json!(1)),
            ("summary.rst_by", json!({"client": 0, "server": 1, "none": 2})),
            // The lone FIN came from the client; 1 and 3 saw none.
            ("summary.fin_first", json!({"client": 1, "server": 0, "none": 2})),
            // 1: reset, CLOSED both. 2: client FIN acknowledged, no server FIN: FIN_WAIT_2 / CLOSE_WAIT.
            // 3: established and open at the end.
            ("summary.client_states", states(&[("CLOSED", 1), ("FIN_WAIT_2", 1), ("ESTABLISHED", 1)])),
            ("summary.server_states", states(&[("CLOSED", 1), ("CLOSE_WAIT", 1), ("ESTABLISHED", 1)])),
            ("summary.evicted_connections", json!(0)),
            ("connections.0.requests", json!([{"method": "GET", "target": "/a", "version": "HTTP/1.1", "status": null}])),
            ("connections.0.packets", json!(6)),
            ("connections.1.handshake", json!("mid_stream")),
            // The second SYN-ACK (another ISN) neither ends the connection nor breaks the handshake:
            // the client acknowledges the first one and its request is answered.
            ("connections.2.handshake", json!("complete")),
            ("connections.2.requests", json!([{"method": "GET", "target": "/c", "version": "HTTP/1.1", "status": 200}])),
            // SYN, 2 SYN-ACKs, ACK, request + ACK, response + ACK.
            ("connections.2.packets", json!(8)),
        ],
    );
}

#[test]
fn evil_ip_fragments_are_discarded_as_linux_discards_them_and_bounded() {
    // Requests in IPv4 fragments, by Linux's reassembly rules (src/defrag.rs):
    // - /a in 2 fragments: rebuilt.
    // - /b whose 2nd fragment overlaps bytes 16-24 of the 1st: both discarded (2 dropped); sent
    //   again with its 1st fragment twice: the exact duplicate is dropped alone (1), /b rebuilt.
    // - /c whose last fragment comes 31 s after its first: the first expired (1 dropped), the last
    //   starts a packet that never completes (1 dropped at the end); /c sent again whole.
    // - a fragment ending past 65,535 bytes (1 dropped).
    // - 5,000 first fragments from 198.18.0.1: 4,095 held (with /c's last, 4,096 packets, the
    //   bound), 905 dropped as they come, the 4,095 dropped at the end: 5,000.
    // 5,010 fragments, 2 rebuilt, 2 + 1 + 1 + 1 + 1 + 5,000 = 5,006 dropped; 14 unfragmented TCP
    // segments + 2 rebuilt = 16. Before reassembly: 5,010 undecodable and 1 request (/c).
    let r = report("evil-fragments.pcap", &[]);
    assert_fields(
        &r,
        &[
            (
                "packets",
                json!({
                    "total": 5024, "tcp": 16, "matched": 16, "truncated": 0, "undecodable": 0, "not_tcp": 0,
                    "ip_fragments": 5010, "reassembled": 2, "fragments_dropped": 5006, "after_close": 0
                }),
            ),
            ("summary.connections", json!(1)),
            ("summary.http_requests", json!(3)),
            ("summary.http_responses", json!(3)),
            ("summary.stream_gaps", json!(0)),
            ("summary.client_states", states(&[("TIME_WAIT", 1)])),
            ("summary.server_states", states(&[("CLOSED", 1)])),
        ],
    );
}
