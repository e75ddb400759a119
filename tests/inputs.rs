//! Ways in: several files as one capture, standard input, pcapng with interfaces of different link
//! types, BPF filters.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> String {
    fixtures_dir().join(name).display().to_string()
}

fn analyze(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin()).arg("analyze").args(args).args(["--format", "json"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn several_files_are_read_one_after_the_other_as_one_capture() {
    let python = fixture("python-http-server-curl.pcap");
    let go = fixture("go-keepalive-reuse.pcap");
    let report = analyze(&[&python, &go]);
    // 3 connections with one request each (python) + 1 connection with 5 requests (Go).
    assert_eq!(report["summary"]["connections"], 4);
    assert_eq!(report["summary"]["http_requests"], 8);
    assert_eq!(report["summary"]["reused_connections"], 1);
    assert_eq!(report["verdict"]["reuse"], "mixed");
    assert_eq!(report["source"]["path"], format!("{python}, {go}"));
    assert_eq!(report["packets"]["total"], 39 + 18);
}

#[test]
fn standard_input_gives_the_same_report_as_the_file() {
    // ethernet-fcs: libpcap masks the FCS bits of the link-type field but leaves the FCS in each
    // frame; the IP header's length keeps it out of the payload.
    for name in ["go-keepalive-reuse.pcap", "pcapng.pcapng", "ethernet-fcs.pcap", "ipv4-fragments.pcap"] {
        let bytes = std::fs::read(fixtures_dir().join(name)).expect("fixture");
        let mut child = Command::new(bin())
            .args(["analyze", "-", "--format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(&bytes).expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success());
        let from_stdin: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let from_file = analyze(&[&fixture(name)]);
        assert_eq!(from_stdin["summary"], from_file["summary"], "{name}");
        assert_eq!(from_stdin["connections"], from_file["connections"], "{name}");
        assert_eq!(from_stdin["packets"], from_file["packets"], "{name}");
    }
}

#[test]
fn pcapng_interfaces_with_different_link_types_read_whole() {
    // mergecap of any-sll2.pcap (LINUX_SLL2, 1 connection, 2 requests) and go-keepalive-reuse.pcap
    // (Ethernet, 1 connection, 5 requests) into one pcapng with two interfaces.
    let report = analyze(&["tests/data/mixed-linktypes.pcapng"]);
    assert_eq!(report["source"]["link_type"], "LINUX_SLL2,EN10MB");
    assert_eq!(report["summary"]["connections"], 2);
    assert_eq!(report["summary"]["http_requests"], 7);
    assert_eq!(report["packets"]["total"], 12 + 18);
}

#[test]
fn mixed_link_types_on_standard_input_are_a_clear_error() {
    // Standard input goes through libpcap, which refuses such files: say so and how to split it.
    let bytes = std::fs::read("tests/data/mixed-linktypes.pcapng").expect("file");
    let mut child = Command::new(bin())
        .args(["analyze", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(&bytes).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pcapng interfaces with different link types") && err.contains("editcap"), "{err}");
}

#[test]
fn bpf_filter_selects_packets_before_analysis() {
    // Only SYNs: 3 connections seen from their SYNs alone, nothing else.
    let report =
        analyze(&[&fixture("python-http-server-curl.pcap"), "-f", "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0"]);
    assert_eq!(report["packets"]["total"], 3);
    assert_eq!(report["summary"]["handshakes"], 3);
    assert_eq!(report["summary"]["handshakes_completed"], 0);
    assert_eq!(report["summary"]["client_states"]["SYN_SENT"], 3);
    assert_eq!(report["source"]["filter"], "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0");
}

#[test]
fn a_port_with_no_traffic_names_the_ports_the_capture_has() {
    let out = Command::new(bin())
        .args(["analyze", &fixture("go-read-partial-close.pcap"), "--port", "18103", "--format", "json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["packets"]["tcp"], 30);
    assert_eq!(report["packets"]["matched"], 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "connscope: note: no TCP packet on port 18103; the capture has TCP traffic on port(s) 18104 (try --port with one of them, or leave --port out)\n"
    );
}
