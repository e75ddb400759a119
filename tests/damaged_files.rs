//! Damaged and hostile files: each gives either the report of what was read plus a warning saying
//! where reading stopped (exit 0), or a one-line error with exit status 2 — never a panic or a hang.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The base capture: curl fetching 3 URLs from python http.server (3 connections, 13 packets each).
fn base_pcap() -> Vec<u8> {
    std::fs::read(fixtures_dir().join("python-http-server-curl.pcap")).expect("fixture")
}

/// Byte offsets where each record of a little-endian classic pcap starts.
fn record_offsets(pcap: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        offsets.push(at);
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    offsets
}

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("connscope-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn analyze(path: &Path) -> Output {
    Command::new(bin()).arg("analyze").arg(path).args(["--format", "json"]).output().expect("run connscope")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn report_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "expected a report, got {:?}: {}", out.status, stderr_of(out));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(out));
    let err = stderr_of(out);
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.starts_with("connscope: error: "), "{err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn truncated_in_the_middle_of_a_record_reports_what_was_read_and_where_it_stopped() {
    let pcap = base_pcap();
    let offsets = record_offsets(&pcap);
    assert_eq!(offsets.len(), 39);
    // Cut 10 bytes into record 13's packet data: 12 whole records remain.
    let cut = offsets[12] + 16 + 10;
    let out = analyze(&write_temp("cut.pcap", &pcap[..cut]));
    let report = report_of(&out);
    assert_eq!(report["packets"]["total"], 12);
    let warning = report["source"]["warning"].as_str().expect("warning in the report");
    assert!(warning.contains("reading stopped after packet 12"), "{warning}");
    assert!(warning.contains(&format!("byte {}", offsets[12])), "{warning}");
    assert!(stderr_of(&out).contains("connscope: warning:"));
    // The first connection is counted from its SYN (12 of its 13 packets), the rest of the file is not.
    assert_eq!(report["summary"]["handshakes"], 1);
}

#[test]
fn garbage_after_a_valid_prefix_stops_with_a_warning() {
    let mut pcap = base_pcap();
    pcap.extend(std::iter::repeat_n(0xff, 100));
    let report = report_of(&analyze(&write_temp("garbage-tail.pcap", &pcap)));
    assert_eq!(report["packets"]["total"], 39);
    assert_eq!(report["summary"]["connections"], 3);
    let warning = report["source"]["warning"].as_str().expect("warning");
    assert!(warning.contains("reading stopped after packet 39"), "{warning}");
}

#[test]
fn bogus_record_length_stops_with_a_warning() {
    let mut pcap = base_pcap();
    let third = record_offsets(&pcap)[2];
    pcap[third + 8..third + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let report = report_of(&analyze(&write_temp("bogus-len.pcap", &pcap)));
    assert_eq!(report["packets"]["total"], 2);
    let warning = report["source"]["warning"].as_str().expect("warning");
    assert!(warning.contains("claims 2147483647 captured bytes"), "{warning}");
}

#[test]
fn wrong_snaplen_in_the_file_header_does_not_matter() {
    let mut pcap = base_pcap();
    pcap[16..20].copy_from_slice(&10u32.to_le_bytes());
    let report = report_of(&analyze(&write_temp("snaplen10.pcap", &pcap)));
    assert_eq!(report["packets"]["total"], 39);
    assert_eq!(report["summary"]["connections"], 3);
    assert!(report["source"]["warning"].is_null());
}

#[test]
fn zero_length_file_is_a_one_line_error() {
    assert_one_line_error(&analyze(&write_temp("empty.pcap", b"")), "empty or cut off before its first packet");
}

#[test]
fn a_file_that_is_not_a_capture_is_a_one_line_error() {
    let text = b"GET / HTTP/1.1\r\nHost: example\r\n\r\nthis is not a capture file at all, just text\n";
    assert_one_line_error(&analyze(&write_temp("text.pcap", text)), "not a pcap or pcapng capture");
}

#[test]
fn a_missing_file_is_a_one_line_error() {
    assert_one_line_error(&analyze(Path::new("/nonexistent/dir/p1.pcap")), "no such file");
}

#[test]
fn unsupported_link_type_is_named() {
    let mut pcap = base_pcap();
    pcap[20..24].copy_from_slice(&105u32.to_le_bytes()); // IEEE 802.11
    assert_one_line_error(&analyze(&write_temp("wifi.pcap", &pcap)), "link type IEEE802_11 (DLT 105) is not supported");
}

#[test]
fn truncated_pcapng_block_reports_what_was_read() {
    let pcapng = std::fs::read(fixtures_dir().join("pcapng.pcapng")).expect("fixture");
    let full = report_of(&analyze(&fixtures_dir().join("pcapng.pcapng")));
    let total = full["packets"]["total"].as_u64().unwrap();
    let out = analyze(&write_temp("cut.pcapng", &pcapng[..pcapng.len() - 7]));
    let report = report_of(&out);
    assert_eq!(report["packets"]["total"].as_u64().unwrap(), total - 1);
    assert!(report["source"]["warning"].as_str().expect("warning").contains(&format!("reading stopped after packet {}", total - 1)));
}

#[test]
fn bad_filter_and_bad_port_are_usage_errors() {
    let fixture = fixtures_dir().join("python-http-server-curl.pcap");
    let out = Command::new(bin()).arg("analyze").arg(&fixture).args(["-f", "tcp port nonsense"]).output().unwrap();
    assert_one_line_error(&out, "filter `tcp port nonsense` does not compile");
    let out = Command::new(bin()).arg("analyze").arg(&fixture).args(["--port", "70000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("70000 is not in 1..=65535"));
}
