//! A report read on several threads is the report read on one: the same numbers for the same
//! connections, listed and streamed in the same order (src/pipeline/parallel.rs).

mod common;

use common::{all_expectations, bin, fixtures_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `connscope analyze FILES ARGS --threads N`: its stdout, after checking it succeeded.
fn analyze(files: &[PathBuf], args: &[&str], threads: u32) -> String {
    let out = Command::new(bin())
        .arg("analyze")
        .args(files)
        .args(args)
        .args(["--threads", &threads.to_string()])
        .output()
        .expect("run connscope");
    assert!(out.status.success(), "connscope --threads {threads} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 report")
}

/// Fails unless the output with 2, 3 and 4 threads equals the output with 1, and returns the latter.
fn same_on_any_threads(files: &[PathBuf], args: &[&str]) -> String {
    let one = analyze(files, args, 1);
    for threads in 2..=4 {
        let many = analyze(files, args, threads);
        assert!(many == one, "{files:?} {args:?}: --threads {threads} differs from --threads 1:\n{}", first_difference(&one, &many));
    }
    one
}

/// The first line where two reports differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    match a.lines().zip(b.lines()).enumerate().find(|(_, (x, y))| x != y) {
        Some((n, (x, y))) => format!("line {}:\n  1 thread : {x}\n  N threads: {y}", n + 1),
        None => format!("one report is longer: {} vs {} lines", a.lines().count(), b.lines().count()),
    }
}

#[test]
fn every_fixture_reports_the_same_on_any_number_of_threads() {
    for fixture in all_expectations() {
        let args = fixture.args();
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--format", "json"]);
        same_on_any_threads(std::slice::from_ref(&fixture.pcap), &args);
    }
}

#[test]
fn interleaved_connections_are_numbered_in_the_order_they_opened() {
    let pcap = fixtures_dir().join("concurrent-curls.pcap");
    let json = same_on_any_threads(&[pcap], &["--port", "18122", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON report");
    let connections = report["connections"].as_array().expect("connections");
    assert_eq!(connections.len(), 24);
    // Numbers 1..=24 in the order of the connections' first packets.
    let ids: Vec<u64> = connections.iter().map(|c| c["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, (1..=24).collect::<Vec<u64>>());
    let starts: Vec<f64> = connections.iter().map(|c| c["first_ts"].as_f64().expect("first_ts")).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "first_ts not in id order: {starts:?}");
}

#[test]
fn streamed_rows_come_in_the_order_connections_ended() {
    let pcap = fixtures_dir().join("concurrent-curls.pcap");
    for format in ["ndjson", "csv"] {
        same_on_any_threads(std::slice::from_ref(&pcap), &["--port", "18122", "--format", format]);
    }
}

#[test]
fn several_files_read_as_one_capture_report_the_same() {
    // Every fixture one after the other: link types change from file to file, ports differ.
    let mut files: Vec<PathBuf> = all_expectations().into_iter().map(|f| f.pcap).collect();
    files.sort();
    let json = same_on_any_threads(&files, &["--format", "json"]);
    assert!(json.contains("\"connections\""));
}

#[test]
fn hostile_captures_report_the_same_on_any_number_of_threads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    for name in ["bad-rst", "endless-chunked", "huge-header", "odd-closes", "overlap", "seq-wrap", "syn-flood-5000"] {
        same_on_any_threads(&[dir.join(format!("{name}.pcap"))], &["--format", "json"]);
    }
}

#[test]
fn connections_still_open_at_the_end_come_in_the_order_they_opened() {
    // 5,000 half-open connections, all still open at the end: each worker hands them over in
    // batches, merged by number.
    let flood = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile/syn-flood-5000.pcap");
    let lines = same_on_any_threads(&[flood], &["--format", "ndjson"]);
    let ids: Vec<u64> = lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON line"))
        .filter(|line| line["type"] == "connection")
        .map(|line| line["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (1..=5000).collect::<Vec<u64>>());
}

#[test]
fn garbled_captures_report_the_same_on_any_number_of_threads() {
    // Every fixture with bytes overwritten at random (fixed seed): frames that do not decode, cut
    // headers, odd flags, bogus record lengths. The merge must not care what the packets are.
    let dir = std::env::temp_dir().join(format!("connscope-garbled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    for fixture in all_expectations() {
        let whole = std::fs::read(&fixture.pcap).expect("fixture");
        for copy in 0..3 {
            let mut garbled = whole.clone();
            for _ in 0..1 + next(40) {
                let at = 24 + next(garbled.len() - 24);
                garbled[at] = next(256) as u8;
            }
            let path = dir.join(format!("{}-{copy}.pcap", fixture.name));
            std::fs::write(&path, &garbled).expect("write garbled capture");
            let one = Command::new(bin()).arg("analyze").arg(&path).args(["--format", "json", "--threads", "1"]).output().expect("run");
            let three = Command::new(bin()).arg("analyze").arg(&path).args(["--format", "json", "--threads", "3"]).output().expect("run");
            assert_eq!(one.status.code(), three.status.code(), "{}: exit status", path.display());
            assert!(one.status.code().is_some_and(|c| c == 0 || c == 2), "{}: {:?}", path.display(), one.status);
            assert!(one.stdout == three.stdout, "{}: --threads 3 differs from --threads 1", path.display());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_file_warns_and_reports_the_same_on_any_number_of_threads() {
    // The concurrent capture cut in the middle of a record.
    let whole = std::fs::read(fixtures_dir().join("concurrent-curls.pcap")).expect("fixture");
    let dir = std::env::temp_dir().join(format!("connscope-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).expect("write cut capture");
    let json = same_on_any_threads(&[cut], &["--port", "18122", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON report");
    assert!(report["source"]["warning"].as_str().is_some_and(|w| w.contains("reading stopped")), "no warning: {}", report["source"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_small_connection_cap_gives_the_same_report_on_any_number_of_threads() {
    // Caps that the concurrent curls reach (evictions, tombstones dropped): one thread's choices,
    // which the parallel analysis leaves to one thread. Before: 78/83/67 connections on 1/2/3
    // threads with --max-connections 4.
    let pcap = fixtures_dir().join("concurrent-curls.pcap");
    for cap in ["1", "4", "7", "30"] {
        for format in ["json", "ndjson", "csv"] {
            same_on_any_threads(std::slice::from_ref(&pcap), &["--max-connections", cap, "--format", format]);
        }
    }
    let json = same_on_any_threads(&[pcap], &["--max-connections", "4", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON report");
    assert_eq!(report["summary"]["connections"], 78);
    assert_eq!(report["summary"]["evicted_connections"], 66);
}

#[test]
fn hostile_captures_with_small_caps_report_the_same_on_any_number_of_threads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    for name in ["bad-rst", "endless-chunked", "huge-header", "odd-closes", "overlap", "seq-wrap", "syn-flood-5000"] {
        for cap in ["2", "64", "4999"] {
            same_on_any_threads(&[dir.join(format!("{name}.pcap"))], &["--max-connections", cap, "--format", "json"]);
        }
    }
    let flood = dir.join("syn-flood-5000.pcap");
    same_on_any_threads(&[flood], &["--max-connections", "100", "--format", "ndjson"]);
}

#[test]
fn time_wait_amendments_are_the_same_on_any_number_of_threads() {
    // The RST that kills a TIME_WAIT and the SYN that recycles one amend a connection that a
    // worker already handed over: its number must be the merged one, its row held until then.
    for (name, port) in [("time-wait-rst", "19201"), ("time-wait-reuse", "19202")] {
        let pcap = fixtures_dir().join(format!("{name}.pcap"));
        for format in ["json", "ndjson", "csv"] {
            same_on_any_threads(std::slice::from_ref(&pcap), &["--port", port, "--format", format]);
        }
    }
}

#[test]
fn max_connections_zero_is_a_usage_error_in_one_line() {
    let out = Command::new(bin())
        .args(["analyze", "--max-connections", "0"])
        .arg(fixtures_dir().join("concurrent-curls.pcap"))
        .output()
        .expect("run connscope");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("connscope: error: --max-connections 0"), "{stderr}");
}
