//! The live capture loop without a device or root: `connscope capture --replay FILE` feeds a real
//! capture through the same loop a device does (stop conditions, signals, the command around the
//! capture, the `-w` savefile), at the file's own pace. The root tests in `capture.rs` cover the
//! real device.

mod common;
use common::live::Capture;
use common::{analyze_json, bin, fixtures_dir};
use serde_json::Value;
use std::time::Duration;

/// The Go server answering one curl's 4 requests on one connection: 23 packets over 3 ms.
const FIXTURE: &str = "curl-go-multi.pcap";
const PORT: &str = "18108";

fn fixture() -> String {
    fixtures_dir().join(FIXTURE).to_string_lossy().into_owned()
}

/// Runs `connscope capture --replay FIXTURE --port PORT -q --format json ARGS` to its end.
fn replay(args: &[&str]) -> common::live::Finished {
    let file = fixture();
    let mut all = vec!["capture", "--replay", &file, "--port", PORT, "-q", "--format", "json"];
    all.extend_from_slice(args);
    Capture::start(bin(), &all).finish(Duration::from_secs(30))
}

fn analyzed_summary(path: &str) -> Value {
    analyze_json(std::path::Path::new(path), &["--port".to_string(), PORT.to_string()])["summary"].clone()
}

#[test]
fn test_replay_until_duration_gives_the_report_analyze_gives() {
    let done = replay(&["--duration", "500ms"]);
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.report["capture"]["ended_by"], "duration");
    assert_eq!(done.report["capture"]["received"], 23);
    assert_eq!(done.report["source"]["kind"], "replay");
    assert_eq!(done.report["summary"], analyzed_summary(&fixture()));
    assert_eq!(done.report["summary"]["http_requests"], 4);
}

#[test]
fn test_count_stops_after_that_many_frames() {
    let done = replay(&["--count", "5"]);
    assert_eq!(done.report["capture"]["ended_by"], "count");
    assert_eq!(done.report["capture"]["received"], 5);
    // The handshake and the first request: one connection, still open.
    assert_eq!(done.report["summary"]["connections"], 1);
    assert_eq!(done.report["summary"]["close_causes"]["open"], 1);
}

#[test]
fn test_command_exit_then_linger_ends_the_capture_with_its_status() {
    let done = replay(&["--linger", "300ms", "--", "sh", "-c", "exit 3"]);
    assert!(done.status.success(), "the capture succeeds whatever the command's status: {}", done.stderr);
    assert_eq!(done.report["capture"]["ended_by"], "command_exited");
    assert_eq!(done.report["capture"]["command"], "sh -c 'exit 3'");
    assert_eq!(done.report["capture"]["command_exit_status"], 3);
    // The linger saw the whole 3 ms capture.
    assert_eq!(done.report["capture"]["received"], 23);
}

#[test]
fn test_second_interrupt_ends_at_once_and_kills_the_command() {
    let file = fixture();
    // The command ignores SIGTERM, so only the second Ctrl-C (SIGKILL to it) can end it. One
    // process: nothing of it outlives the kill to hold our standard error open.
    let ignore_term = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)";
    let args = ["capture", "--replay", &file, "--port", PORT, "--format", "json", "--linger", "60s", "--", "python3", "-c", ignore_term];
    let capture = Capture::start(bin(), &args);
    capture.wait_lines("opened", 1, Duration::from_secs(10));
    capture.signal(libc::SIGINT);
    assert!(!capture.line_within("never printed", Duration::from_millis(300)));
    capture.signal(libc::SIGINT);
    let done = capture.finish(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.report["capture"]["ended_by"], "interrupted");
    // Killed by SIGKILL: no exit code.
    assert_eq!(done.report["capture"]["command_exit_status"], Value::Null);
    assert_eq!(done.report["summary"]["http_requests"], 4);
}

#[test]
fn test_savefile_holds_every_replayed_frame() {
    let dir = std::env::temp_dir().join(format!("connscope-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("saved.pcap").to_string_lossy().into_owned();
    let done = replay(&["--duration", "500ms", "-w", &saved]);
    assert_eq!(done.report["capture"]["saved_packets"], 23);
    assert_eq!(done.report["capture"]["saved_to"], saved.as_str());
    assert_eq!(analyzed_summary(&saved), analyzed_summary(&fixture()));
    std::fs::remove_dir_all(&dir).unwrap();
}
