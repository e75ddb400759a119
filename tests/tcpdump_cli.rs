//! tcpdump's habits: `-r FILE`, `-n`, `--time abs|rel|utc` (tcpdump -tttt), JSON numbers without
//! float noise, and a warning for files given out of time order.

mod common;
use common::connscope;
use std::process::Command;

const REUSE: &str = "fixtures/go-keepalive-reuse.pcap";
const PROBES: &str = "fixtures/keepalive-probes.pcap";

#[test]
fn test_dash_r_reads_like_the_positional_file_and_dash_n_is_accepted() {
    let positional = connscope(&["analyze", REUSE, PROBES, "--format", "json"]);
    let read = connscope(&["analyze", "-n", "-r", REUSE, PROBES, "--format", "json"]);
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert_eq!(read.stdout, positional.stdout, "-r files come first, then the positional ones");
    let both = connscope(&["analyze", "-r", REUSE, "-r", PROBES, "--format", "json"]);
    assert_eq!(both.stdout, positional.stdout);
    let none = connscope(&["analyze", "-n"]);
    assert_eq!(none.code, 2);
}

/// Runs connscope with TZ set (the local time of `--time abs`).
fn with_tz(tz: &str, args: &[&str]) -> String {
    let out = Command::new(common::bin()).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env("TZ", tz).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn test_time_utc_and_abs_write_dates_in_the_table_ladder_and_explain() {
    // The SYN of the fixture: tshark -r fixtures/go-keepalive-reuse.pcap -t ud -c1 says 00:47:08.479338 UTC.
    let table = with_tz("UTC", &["analyze", REUSE, "--time", "utc"]);
    assert!(table.contains("┆ 2026-11-22 00:47:08.479338Z ┆ 1.7 ms "), "{table}");
    let table = with_tz("Asia/Tokyo", &["analyze", REUSE, "--time", "abs"]);
    assert!(table.contains("┆ 2026-11-22 09:47:08.479338 ┆ 1.7 ms "), "local time, UTC+9: {table}");
    let rel = with_tz("UTC", &["analyze", REUSE]);
    assert!(rel.contains("┆ 0.000 ┆ 1.7 ms "), "{rel}");

    let ladder = with_tz("UTC", &["analyze", REUSE, "--ladder", "--time", "utc"]);
    let lines: Vec<&str> = ladder.lines().collect();
    assert_eq!(lines[1].trim_start(), "time        client │                                                  │ server");
    assert!(lines[2].starts_with("2026-11-22 00:47:08.479338Z      SYN_SENT │── S seq=0 "), "{ladder}");
    let ladder = with_tz("UTC", &["analyze", REUSE, "--ladder"]);
    assert!(ladder.lines().nth(2).unwrap().starts_with("     0.000      SYN_SENT │"), "{ladder}");

    let explain = with_tz("UTC", &["analyze", REUSE, "--explain", "--time", "utc"]);
    assert!(explain.contains("  #1 at 2026-11-22 00:47:08.479338Z: 127.0.0.1:34342 → 127.0.0.1:18101: 5 HTTP requests"), "{explain}");
}

#[test]
fn test_json_numbers_have_at_most_microsecond_digits() {
    for expect in common::all_expectations() {
        let report = common::analyze_json(&expect.pcap, &expect.args());
        let text = serde_json::to_string(&report).unwrap();
        for number in text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e')).filter(|t| t.contains('.')) {
            let digits = number.split('.').nth(1).unwrap().trim_end_matches(|c: char| !c.is_ascii_digit());
            assert!(digits.len() <= 6 || number.contains('e'), "{}: {number}", expect.name);
        }
    }
    let run = connscope(&["analyze", "fixtures/go-pool-overflow.pcap", "--format", "json"]);
    assert!(run.stdout.contains("\"duration\": 0.202444,"), "0.20244383811950684 before: {}", &run.stdout[..2000]);
    let ndjson = connscope(&["analyze", "fixtures/go-pool-overflow.pcap", "--format", "ndjson"]);
    assert!(ndjson.stdout.starts_with("{\"type\":\"connection\""));
    assert!(ndjson.stdout.contains("\"duration\":0.202444,"), "{}", &ndjson.stdout[..1000]);
    let csv = connscope(&["analyze", "fixtures/go-pool-overflow.pcap", "--format", "csv"]);
    assert!(csv.stdout.contains(",0.0,0.202444,0.202444,"), "{}", &csv.stdout[..1000]);
}

#[test]
fn test_files_out_of_time_order_get_a_one_line_warning() {
    let expected = format!(
        "connscope: warning: {REUSE} begins 35.488 s before {PROBES} ends: files are read one after the other in the order given, so times go back (a negative start); give them in time order (`ls -tr`, or merge them with `mergecap`)\n"
    );
    for threads in ["1", "2"] {
        let run = connscope(&["analyze", PROBES, REUSE, "--threads", threads]);
        assert_eq!(run.code, 0);
        assert_eq!(run.stderr, expected, "--threads {threads}");
        let run = connscope(&["analyze", REUSE, PROBES, "--threads", threads]);
        assert_eq!(run.stderr, "", "in time order: no warning");
    }
}

#[test]
fn test_since_and_until_cut_the_packets_with_times_as_time_writes_them() {
    // go-pool-overflow: 10 connections open at 0.000 (their responses come at 0.202), 8 more at
    // 0.203, 8 at 0.405 (the table's start column). Between 0.2 and 0.3 s: the 8 handshakes of
    // 0.203, and the first 10 connections seen from the middle (their ends).
    let run = |args: &[&str], tz: &str| {
        let mut all = vec!["analyze", "fixtures/go-pool-overflow.pcap", "--format", "json"];
        all.extend_from_slice(args);
        with_tz(tz, &all)
    };
    let relative = run(&["--since", "0.2", "--until", "0.3"], "UTC");
    let report: serde_json::Value = serde_json::from_str(&relative).unwrap();
    assert_eq!(report["summary"]["connections"], 18);
    assert_eq!(report["summary"]["handshakes"], 8);
    assert_eq!(report["summary"]["mid_stream"], 10);
    // The capture's first packet is at 13:31:23.388287 UTC (source.start_ts 1796218283.388287).
    let utc = run(&["--since", "2026-12-02 13:31:23.588287Z", "--until", "2026-12-02 13:31:23.688287Z"], "UTC");
    assert_eq!(utc, relative);
    let local = run(&["--since", "2026-12-02 22:31:23.588287", "--until", "2026-12-02T22:31:23.688287"], "Asia/Tokyo");
    assert_eq!(local, relative, "local time, UTC+9");
    let bad = connscope(&["analyze", REUSE, "--since", "3", "--until", "1"]);
    assert_eq!((bad.code, bad.stderr.as_str()), (2, "connscope: error: --until is before --since: the window holds no packet\n"));
}
