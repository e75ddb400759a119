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

/// Runs `connscope capture --replay FIXTURE --port PORT -q ARGS` (the table by default) to its end.
fn replay_text(args: &[&str]) -> (i32, String, String) {
    let file = fixture();
    let mut child = std::process::Command::new(bin())
        .args(["capture", "--replay", &file, "--port", PORT, "-q"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("connscope runs");
    let (stdout, stderr) = (common::live::drain(child.stdout.take().unwrap()), common::live::drain(child.stderr.take().unwrap()));
    let status = common::live::wait_bounded(&mut child, Duration::from_secs(30), "capture --replay");
    (status.code().expect("exited"), stdout.join().unwrap(), stderr.join().unwrap())
}

#[test]
fn test_a_failed_command_is_shown_in_the_table_and_can_fail_an_assertion() {
    let (code, stdout, stderr) =
        replay_text(&["--linger", "300ms", "--assert", "capture.command_exit_status == 0", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code, 1, "the assertion fails the run: {stderr}");
    assert!(stdout.contains("\ncommand: sh -c 'exit 3' (exit status 3)\n"), "{stdout}");
    assert!(stdout.contains("\n!! the command failed (exit status 3); connscope's exit status stays 0: --assert 'capture.command_exit_status == 0' fails the run when the command does\n"));
    assert_eq!(stderr.lines().last(), Some("FAIL capture.command_exit_status == 0 (actual 3)"), "{stderr}");

    let (code, stdout, stderr) = replay_text(&[
        "--linger",
        "300ms",
        "--assert",
        "capture.command_exit_status == 0",
        "--assert",
        "capture.received == 23",
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\ncommand: true (exit status 0)\n"));
    assert!(!stdout.contains("the command failed"));
    assert!(stderr.contains("PASS capture.command_exit_status == 0 (actual 0)\nPASS capture.received == 23 (actual 23)\n"), "{stderr}");
}

#[test]
fn test_capture_fields_are_unknown_to_analyze() {
    let run = common::connscope(&["analyze", &fixture(), "--assert", "capture.command_exit_status == 0"]);
    assert_eq!(run.code, 2);
    assert!(run
        .stderr
        .starts_with("connscope: error: --assert 'capture.command_exit_status == 0': unknown field `capture.command_exit_status`"));
}

#[test]
fn test_capture_draws_the_ladder_explain_and_svg_like_analyze() {
    let file = fixture();
    let (code, live_ladder, stderr) = replay_text(&["--duration", "500ms", "--ladder"]);
    assert_eq!(code, 0, "{stderr}");
    let analyzed = common::connscope(&["analyze", &file, "--port", PORT, "--ladder"]);
    assert_eq!(live_ladder, analyzed.stdout, "the same ladder as analyze draws");

    let (_, explained, _) = replay_text(&["--duration", "500ms", "--explain"]);
    assert!(explained.contains("\nWhat happened, in plain words\n"));
    assert!(explained.contains("  #1: 127.0.0.1:42988 → 127.0.0.1:18108: 4 HTTP requests"), "{explained}");

    let svg = std::env::temp_dir().join(format!("connscope-replay-{}.svg", std::process::id()));
    let (code, _, stderr) = replay_text(&["--duration", "500ms", "--svg", svg.to_str().unwrap(), "--conn", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.contains("Ladder of connection #1"));
    assert!(picture.contains("GET /hello"));
    std::fs::remove_file(&svg).ok();
}
