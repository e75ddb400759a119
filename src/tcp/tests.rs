//! The flow table's tests of the connection update (segments in, records and events out), grouped
//! by TCP state, and the harness the tests in `key.rs`, `closed.rs`, `probes.rs` and `rst.rs` share.

use super::*;
use crate::decode::TcpFlags;
use crate::wire::SeqNumber;
// The tests read the records the report builds from what the table hands over.
use crate::report::{ConnectionRecord, FinFirst, Handshake, PerSide};

pub(super) const C: &str = "127.0.0.1:40000";
pub(super) const S: &str = "127.0.0.1:8080";

#[derive(Default)]
pub(super) struct Records(pub(super) Vec<ConnectionRecord>, pub(super) Vec<FlowEvent>);
impl FlowSink for Records {
    fn event(&mut self, _id: u64, event: &FlowEvent) {
        self.1.push(event.clone());
    }
    fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) {
        self.0.push(ConnectionRecord::from_facts(facts, protocol, end, capture_start));
    }
}

pub(super) fn flags(s: &str) -> TcpFlags {
    TcpFlags { syn: s.contains('S'), ack: s.contains('.'), fin: s.contains('F'), rst: s.contains('R'), psh: s.contains('P') }
}

/// Feeds segments `(ts, from_client, flags, seq, ack, payload_len)` and returns the finished records.
pub(super) fn run(segments: &[(f64, bool, &'static str, u32, u32, u32)]) -> Records {
    run_segs(&plain(segments))
}

/// One test segment with its own payload and advertised window.
pub(super) struct TestSeg {
    pub(super) ts: f64,
    pub(super) from_client: bool,
    pub(super) flags: &'static str,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) payload: Vec<u8>,
    pub(super) window: u16,
}

/// `(ts, from_client, flags, seq, ack)` carrying `payload`, window 512.
pub(super) fn with_payload(ts: f64, from_client: bool, flags: &'static str, seq: u32, ack: u32, payload: &[u8]) -> TestSeg {
    TestSeg { ts, from_client, flags, seq, ack, payload: payload.to_vec(), window: 512 }
}

/// `(ts, from_client, flags, seq, ack, payload_len)` segments as [`TestSeg`]s ('x' payloads).
pub(super) fn plain(segments: &[(f64, bool, &'static str, u32, u32, u32)]) -> Vec<TestSeg> {
    segments.iter().map(|&(ts, c, f, seq, ack, len)| with_payload(ts, c, f, seq, ack, &vec![b'x'; len as usize])).collect()
}

/// Feeds [`TestSeg`]s with a table that takes port 8080 as the server's.
pub(super) fn run_segs(segments: &[TestSeg]) -> Records {
    let mut sink = Records::default();
    feed(segments, &mut sink);
    sink
}

/// Feeds [`TestSeg`]s to `sink` through a table that takes port 8080 as the server's, then ends
/// the capture; returns the table, for its counters.
pub(super) fn feed(segments: &[TestSeg], sink: &mut dyn FlowSink) -> FlowTable {
    let mut table = FlowTable::new(Some(8080), 1000);
    for t in segments {
        let (src, dst) = if t.from_client { (C, S) } else { (S, C) };
        let seg = Segment {
            ts: t.ts,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            flags: flags(t.flags),
            seq: SeqNumber(t.seq),
            ack: SeqNumber(t.ack),
            window: t.window,
            window_scale: None,
            payload: &t.payload,
            wire_len: t.payload.len() as u32,
        };
        table.process(&seg, sink);
    }
    table.finish(sink);
    table
}

/// A full exchange: handshake, one 100-byte request, one 200-byte response, ISNs 1000 / 5000.
pub(super) fn opened() -> Vec<(f64, bool, &'static str, u32, u32, u32)> {
    vec![
        (0.0, true, "S", 1000, 0, 0),
        (0.001, false, "S.", 5000, 1001, 0),
        (0.002, true, ".", 1001, 5001, 0),
        (0.003, true, "P.", 1001, 5001, 100),
        (0.004, false, "P.", 5001, 1101, 200),
        (0.005, true, ".", 1101, 5201, 0),
    ]
}

#[test]
fn test_client_fin_first_leaves_client_time_wait_server_closed() {
    let mut segs = opened();
    segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.011, false, "F.", 5201, 1102, 0), (0.012, true, ".", 1102, 5202, 0)]);
    let r = run(&segs);
    assert_eq!(r.0.len(), 1);
    let c = &r.0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!(c.fin_first, FinFirst::Client);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    assert_eq!(c.end, EndReason::Closed);
    assert!(!c.simultaneous_close);
}

#[test]
fn test_server_fin_acked_without_client_fin_is_fin_wait_2_and_close_wait() {
    let mut segs = opened();
    segs.extend([(0.01, false, "F.", 5201, 1101, 0), (0.011, true, ".", 1101, 5202, 0)]);
    let c = &run(&segs).0[0];
    assert_eq!(c.fin_first, FinFirst::Server);
    assert_eq!((c.client_state, c.server_state), (TcpState::CLOSE_WAIT, TcpState::FIN_WAIT_2));
    assert_eq!(c.end, EndReason::OpenAtEnd);
}

#[test]
fn test_simultaneous_close_ends_in_time_wait_on_both_sides() {
    let mut segs = opened();
    segs.extend([
        (0.01, true, "F.", 1101, 5201, 0),
        (0.01, false, "F.", 5201, 1101, 0),
        (0.011, true, ".", 1102, 5202, 0),
        (0.011, false, ".", 5202, 1102, 0),
    ]);
    let c = &run(&segs).0[0];
    assert!(c.simultaneous_close);
    assert_eq!(c.fin_first, FinFirst::Client);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::TIME_WAIT));
}

#[test]
fn test_retransmitted_syn_counts_once() {
    let mut segs = vec![(0.0, true, "S", 1000, 0, 0), (1.0, true, "S", 1000, 0, 0)];
    segs.extend(opened().into_iter().skip(1).map(|(ts, c, f, s, a, l)| (ts + 1.0, c, f, s, a, l)));
    let r = run(&segs);
    assert_eq!(r.0.len(), 1);
    assert_eq!(r.0[0].handshake, Handshake::Complete);
}

#[test]
fn test_new_syn_with_new_isn_on_same_tuple_starts_a_new_connection() {
    let mut segs = opened();
    segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.011, false, "F.", 5201, 1102, 0), (0.012, true, ".", 1102, 5202, 0)]);
    segs.extend(
        opened()
            .into_iter()
            .map(|(ts, c, f, s, a, l)| (ts + 1.0, c, f, s.wrapping_add(90_000), a.wrapping_add(if a == 0 { 0 } else { 90_000 }), l)),
    );
    let r = run(&segs);
    assert_eq!(r.0.len(), 2);
    assert_eq!(r.0[1].handshake, Handshake::Complete);
    assert_eq!(r.0[1].client_state, TcpState::ESTABLISHED);
}

#[test]
fn test_sequence_numbers_wrapping_past_2_pow_32() {
    let isn = u32::MAX - 50;
    let segs = [
        (0.0, true, "S", isn, 0, 0),
        (0.001, false, "S.", 5000, isn.wrapping_add(1), 0),
        (0.002, true, ".", isn.wrapping_add(1), 5001, 0),
        (0.003, true, "P.", isn.wrapping_add(1), 5001, 100),
        (0.004, false, ".", 5001, isn.wrapping_add(101), 0),
        (0.01, true, "F.", isn.wrapping_add(101), 5001, 0),
        (0.011, false, "F.", 5001, isn.wrapping_add(102), 0),
        (0.012, true, ".", isn.wrapping_add(102), 5002, 0),
    ];
    let c = &run(&segs).0[0];
    assert_eq!(c.end, EndReason::Closed);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
}

// SYN_SENT / SYN_RECEIVED: capture order is not time order.

#[test]
fn test_syn_ack_captured_before_its_syn_builds_one_connection_with_a_completed_handshake() {
    let mut segs = opened();
    segs.swap(0, 1);
    segs[0].0 = 0.0;
    segs[1].0 = 0.0003;
    let r = run(&segs);
    assert_eq!(r.0.len(), 1);
    let c = &r.0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!(c.client.to_string(), C);
    assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
}

#[test]
fn test_syn_ack_acknowledging_another_isn_is_not_joined_to_a_later_syn() {
    let r = run(&[(0.0, false, "S.", 5000, 777, 0), (0.0003, true, "S", 1000, 0, 0)]);
    assert_eq!(r.0.len(), 2);
    assert_eq!((r.0[0].handshake, r.0[0].end), (Handshake::MidStream, EndReason::Replaced));
    assert_eq!(r.0[1].handshake, Handshake::SynOnly);
}

#[test]
fn test_syn_later_than_the_reorder_window_after_the_syn_ack_starts_a_new_connection() {
    let r = run(&[(0.0, false, "S.", 5000, 1001, 0), (2.0, true, "S", 1000, 0, 0)]);
    assert_eq!(r.0.len(), 2);
    assert_eq!(r.0[1].handshake, Handshake::SynOnly);
}

#[test]
fn test_syn_ack_alone_without_syn_leaves_client_established_and_server_syn_received() {
    let c = &run(&[(0.0, false, "S.", 5000, 1001, 0)]).0[0];
    assert_eq!(c.handshake, Handshake::MidStream);
    assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::SYN_RECEIVED));
}

#[test]
fn test_client_ack_captured_before_the_syn_ack_completes_the_handshake() {
    // The client's clock runs ahead: its ACK is stamped before the SYN-ACK it answers, and
    // nothing follows that would acknowledge the SYN-ACK again.
    let mut segs = opened();
    segs.truncate(3);
    segs.swap(1, 2);
    let c = &run(&segs).0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
}

// FIN_WAIT / CLOSE_WAIT / LAST_ACK: capture order is not time order.

#[test]
fn test_last_ack_captured_before_the_fin_it_acknowledges_closes_the_connection() {
    let mut segs = opened();
    segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.012, true, ".", 1102, 5202, 0), (0.0121, false, "F.", 5201, 1102, 0)]);
    let r = run(&segs);
    assert_eq!(r.0.len(), 1);
    let c = &r.0[0];
    assert_eq!(c.end, EndReason::Closed);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
}

#[test]
fn test_peer_fin_captured_first_but_acknowledging_this_fin_makes_this_side_fin_first() {
    let mut segs = opened();
    // The server's clock runs behind: its FIN (ack 1102, so it answers the client's FIN) is
    // stamped before the client's FIN.
    segs.extend([(0.0100, false, "F.", 5201, 1102, 0), (0.0101, true, "F.", 1101, 5201, 0), (0.0102, true, ".", 1102, 5202, 0)]);
    let c = &run(&segs).0[0];
    assert_eq!(c.fin_first, FinFirst::Client);
    assert!(!c.simultaneous_close);
    assert_eq!(c.end, EndReason::Closed);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
}

#[test]
fn test_fin_captured_before_the_response_it_follows_keeps_the_response() {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
    let (req_len, resp_len) = (request.len() as u32, response.len() as u32);
    let segs = vec![
        with_payload(0.0, true, "S", 1000, 0, b""),
        with_payload(0.001, false, "S.", 5000, 1001, b""),
        with_payload(0.002, true, ".", 1001, 5001, b""),
        with_payload(0.003, true, "P.", 1001, 5001, request),
        // The server's FIN is captured 50 µs before the response segment it follows.
        with_payload(0.004, false, "F.", 5001 + resp_len, 1001 + req_len, b""),
        with_payload(0.00405, false, "P.", 5001, 1001 + req_len, response),
    ];
    let c = &run_segs(&segs).0[0];
    assert_eq!((c.http_requests, c.http_responses), (Some(1), Some(1)));
    assert_eq!(c.stream_gaps, PerSide::default());
    assert_eq!(c.fin_first, FinFirst::Server);
}

// SYN_SENT: TCP Fast Open.

#[test]
fn test_fast_open_syn_with_request_acknowledged_in_syn_ack_is_a_completed_handshake_with_the_request() {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let after_request = 1001 + request.len() as u32;
    let segs = vec![
        with_payload(0.0, true, "S", 1000, 0, request),
        with_payload(0.001, false, "S.", 5000, after_request, b""),
        with_payload(0.0011, false, "P.", 5001, after_request, response),
        with_payload(0.002, true, ".", after_request, 5001 + response.len() as u32, b""),
    ];
    let c = &run_segs(&segs).0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!((c.http_requests, c.http_responses), (Some(1), Some(1)));
    assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
}

#[test]
fn test_fast_open_server_sending_before_the_ack_stays_syn_received() {
    let segs = plain(&[(0.0, true, "S", 1000, 0, 30), (0.001, false, "S.", 5000, 1031, 0), (0.0011, false, "P.", 5001, 1031, 40)]);
    let c = &run_segs(&segs).0[0];
    assert_eq!(c.handshake, Handshake::SynAck);
    assert_eq!(c.server_state, TcpState::SYN_RECEIVED);
}

#[test]
fn test_fast_open_data_not_accepted_is_retransmitted_and_counted_once() {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let after_request = 1001 + request.len() as u32;
    let segs = vec![
        with_payload(0.0, true, "S", 1000, 0, request),
        // No cookie: the server acknowledges only the SYN and the client sends the request again.
        with_payload(0.001, false, "S.", 5000, 1001, b""),
        with_payload(0.002, true, "P.", 1001, 5001, request),
        with_payload(0.003, false, ".", 5001, after_request, b""),
    ];
    let c = &run_segs(&segs).0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!(c.http_requests, Some(1));
}

#[test]
fn test_syn_ack_acknowledging_beyond_the_syn_data_does_not_answer_it() {
    let c = &run(&[(0.0, true, "S", 1000, 0, 30), (0.001, false, "S.", 5000, 1040, 0)]).0[0];
    assert_eq!(c.handshake, Handshake::SynOnly);
    assert_eq!(c.client_state, TcpState::SYN_SENT);
}

// One-directional captures: the unseen side's state from the seen side's segments.

#[test]
fn test_client_only_capture_ack_after_syn_means_both_established() {
    let c = &run(&[(0.0, true, "S", 1000, 0, 0), (0.002, true, ".", 1001, 5001, 0), (0.003, true, "P.", 1001, 5001, 100)]).0[0];
    assert_eq!(c.handshake, Handshake::SynOnly);
    assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
}

#[test]
fn test_client_only_capture_fin_then_ack_of_more_infers_the_server_fin_time_wait_and_closed() {
    let c = &run(&[
        (0.0, true, "S", 1000, 0, 0),
        (0.002, true, ".", 1001, 5001, 0),
        (0.003, true, "P.", 1001, 5001, 100),
        (0.005, true, ".", 1101, 5201, 0),
        (0.01, true, "F.", 1101, 5201, 0),
        (0.012, true, ".", 1102, 5202, 0),
    ])
    .0[0];
    // An inferred FIN does not end the connection: the server's segments may yet come.
    assert_eq!(c.end, EndReason::OpenAtEnd);
    assert_eq!(c.fin_first, FinFirst::Client);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
}

#[test]
fn test_client_only_capture_fin_without_later_ack_leaves_fin_wait_1_and_close_wait() {
    let c = &run(&[(0.0, true, "S", 1000, 0, 0), (0.002, true, ".", 1001, 5001, 0), (0.01, true, "F.", 1001, 5001, 0)]).0[0];
    assert_eq!((c.client_state, c.server_state), (TcpState::FIN_WAIT_1, TcpState::CLOSE_WAIT));
}

#[test]
fn test_server_only_capture_data_after_syn_ack_means_both_established() {
    let c = &run(&[(0.0, false, "S.", 5000, 1001, 0), (0.003, false, "P.", 5001, 1101, 200)]).0[0];
    assert_eq!(c.handshake, Handshake::MidStream);
    assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
}

#[test]
fn test_server_only_capture_fin_acknowledging_one_more_answers_the_clients_fin() {
    let c = &run(&[
        (0.0, false, "S.", 5000, 1001, 0),
        (0.003, false, "P.", 5001, 1101, 200),
        (0.01, false, ".", 5201, 1102, 0),
        (0.011, false, "F.", 5201, 1102, 0),
    ])
    .0[0];
    // The ACK of the client's FIN is the first segment acknowledging one more; the FIN repeats it.
    assert_eq!(c.fin_first, FinFirst::Client);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::LAST_ACK));
}

#[test]
fn test_client_segments_all_captured_before_the_servers_keep_the_server_data() {
    // Skewed capture points: every client segment, the last ACK included, comes before the
    // server's. The FIN inferred from the client's last ACK must not end the connection.
    let c = &run(&[
        (0.0, true, "S", 1000, 0, 0),
        (0.0001, true, ".", 1001, 5001, 0),
        (0.0002, true, "P.", 1001, 5001, 100),
        (0.0003, true, "F.", 1101, 5201, 0),
        (0.0004, true, ".", 1102, 5202, 0),
        (0.0010, false, "S.", 5000, 1001, 0),
        (0.0011, false, "P.", 5001, 1101, 200),
        (0.0012, false, "F.", 5201, 1102, 0),
    ])
    .0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!(c.end, EndReason::Closed);
    assert_eq!(c.packets, 8);
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
}

#[test]
fn test_server_segments_all_captured_before_the_clients_make_one_closed_connection() {
    // The mirror image: the server's SYN-ACK, response and FIN (acknowledging the client's FIN)
    // all come before the client's SYN.
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (req_end, resp_end) = (1001 + request.len() as u32, 5001 + response.len() as u32);
    let segs = vec![
        with_payload(0.0, false, "S.", 5000, 1001, b""),
        with_payload(0.0001, false, "P.", 5001, req_end, response),
        with_payload(0.0002, false, "F.", resp_end, req_end + 1, b""),
        with_payload(0.0005, true, "S", 1000, 0, b""),
        with_payload(0.0006, true, ".", 1001, 5001, b""),
        with_payload(0.0007, true, "P.", 1001, 5001, request),
        with_payload(0.0008, true, "F.", req_end, resp_end, b""),
        with_payload(0.0009, true, ".", req_end + 1, resp_end + 1, b""),
    ];
    let r = run_segs(&segs);
    assert_eq!(r.0.len(), 1);
    let c = &r.0[0];
    assert_eq!(c.handshake, Handshake::Complete);
    assert_eq!(c.end, EndReason::Closed);
    assert_eq!(c.fin_first, FinFirst::Client);
    assert_eq!((c.http_requests, c.http_responses), (Some(1), Some(1)));
    assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
}

#[test]
fn test_two_way_capture_missing_the_peer_fin_does_not_infer_it() {
    let mut segs = opened();
    segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.012, true, ".", 1102, 5202, 0)]);
    let c = &run(&segs).0[0];
    assert_eq!(c.end, EndReason::OpenAtEnd);
    assert_eq!((c.client_state, c.server_state), (TcpState::FIN_WAIT_1, TcpState::CLOSE_WAIT));
}
