//! Cross-checks fixture counts against tshark, where it is installed: the handshakes (initial SYNs,
//! retransmissions counted once) and, on cleartext HTTP, the requests tshark's dissector finds
//! (`-d tcp.port==PORT,http`, every `http.request.method` of every frame), and on TLS the
//! ClientHellos tshark's dissector finds (`-d tcp.port==PORT,tls`, or `http` behind a CONNECT), and
//! on decrypted TLS the HTTP/1 and HTTP/2 requests tshark finds with the fixture's key log
//! (`-o tls.keylog_file:KEYS`, or the pcapng's own Decryption Secrets Block).
//! Where tshark is known to disagree, the fixture's `.expect` says what tshark reports
//! (`tshark.http_requests = N`) and why; this test checks tshark still says exactly that.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::Command;

fn tshark_lines(pcap: &std::path::Path, extra: &[&str], display_filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(pcap).args(extra).args(["-Y", display_filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn fixture_counts_agree_with_tshark() {
    if Command::new("tshark").arg("--version").output().is_err() {
        // Under CI the cross-check must run: scripts/test.sh installs tshark.
        assert!(std::env::var_os("CI").is_none(), "tshark is not installed: CI cannot skip the cross-check");
        eprintln!("tshark not installed: cross-check skipped (scripts/install-deps.sh test installs it)");
        return;
    }
    let mut failures = Vec::new();
    for exp in all_expectations() {
        let port = exp.args().windows(2).find(|w| w[0] == "--port").map(|w| w[1].clone());
        let port_filter = port.as_ref().map(|p| format!(" && tcp.port=={p}")).unwrap_or_default();
        let report = analyze_json(&exp.pcap, &exp.args());
        // Initial SYNs, one per (4-tuple, ISN): tshark lists retransmissions separately.
        let syns: BTreeSet<String> = tshark_lines(
            &exp.pcap,
            &[],
            &format!("tcp.flags.syn==1 && tcp.flags.ack==0{port_filter}"),
            &["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.seq_raw"],
        )
        .into_iter()
        .collect();
        let want_handshakes = exp
            .values
            .get("tshark.handshakes")
            .map_or(report["summary"]["handshakes"].as_u64().expect("n"), |v| v.parse().expect("number"));
        if syns.len() as u64 != want_handshakes {
            failures.push(format!("{}: tshark sees {} initial SYNs, expected {want_handshakes}", exp.name, syns.len()));
        }
        let hellos = report["summary"]["tls_client_hellos"].as_u64().unwrap_or(0);
        if let (Some(p), true) = (&port, hellos > 0) {
            // tshark reads TLS on the port as TLS, or, behind an HTTP CONNECT (a TLS connection with
            // HTTP requests), as HTTP whose tunnel it follows; every handshake type 1 counts.
            let connections = report["connections"].as_array().expect("connections");
            let tunnel = connections.iter().any(|c| c["protocol"] == "tls" && c["http_requests"].is_u64() && c["tls"]["decrypted"] != true);
            let decode_as = format!("tcp.port=={p},{}", if tunnel { "http" } else { "tls" });
            let seen: u64 = tshark_lines(&exp.pcap, &["-d", &decode_as], "tls.handshake.type==1", &["tls.handshake.type"])
                .iter()
                .map(|types| types.split(',').filter(|t| *t == "1").count() as u64)
                .sum();
            let want = exp.values.get("tshark.tls_client_hellos").map_or(hellos, |v| v.parse().expect("number"));
            if seen != want {
                failures.push(format!("{}: tshark finds {seen} ClientHellos, expected {want}", exp.name));
            }
        }
        let decrypted = report["summary"]["tls_decrypted"].as_u64().unwrap_or(0) > 0;
        if let (Some(p), true) = (&port, decrypted) {
            // Decrypted HTTPS: tshark with the same key log (or the file's own secrets block)
            // counts HTTP/1 request methods and HTTP/2 HEADERS with a :method.
            let keylog = exp.args().windows(2).find(|w| w[0] == "--keylog").map(|w| format!("tls.keylog_file:{}", w[1]));
            let mut extra = vec!["-d".to_string(), format!("tcp.port=={p},tls")];
            extra.extend(keylog.into_iter().flat_map(|k| ["-o".to_string(), k]));
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let requests: u64 =
                tshark_lines(&exp.pcap, &extra, "http.request || http2.headers.method", &["http.request.method", "http2.headers.method"])
                    .iter()
                    .map(|methods| methods.split([',', '\t']).filter(|m| !m.is_empty()).count() as u64)
                    .sum();
            let want = exp
                .values
                .get("tshark.http_requests")
                .map_or(report["summary"]["http_requests"].as_u64().expect("n"), |v| v.parse().expect("number"));
            if requests != want {
                failures.push(format!("{}: tshark finds {requests} decrypted HTTP requests, expected {want}", exp.name));
            }
        }
        let encrypted = hellos > 0;
        if let (Some(p), false) = (&port, encrypted) {
            let decode_as = format!("tcp.port=={p},http");
            // One frame can hold several pipelined requests: count the methods, not the frames.
            let requests: u64 = tshark_lines(&exp.pcap, &["-d", &decode_as], "http.request", &["http.request.method"])
                .iter()
                .map(|methods| methods.split(',').count() as u64)
                .sum();
            let want = exp
                .values
                .get("tshark.http_requests")
                .map_or(report["summary"]["http_requests"].as_u64().expect("n"), |v| v.parse().expect("number"));
            if requests != want {
                failures.push(format!("{}: tshark finds {requests} HTTP requests, expected {want}", exp.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
