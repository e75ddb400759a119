//! The README's "Using connscope in CI" example, run for real: it passes while the Go server keeps
//! connections alive (5 requests, 1 handshake) and fails with exit status 1 when the server closes
//! after every response (5 handshakes), printing PASS/FAIL lines with the actual values.

mod common;
use std::process::Command;

fn run_example(break_reuse: bool) -> std::process::Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ci-reuse-check.sh"))
        .env("CONNSCOPE", common::bin())
        .env("BREAK_REUSE", if break_reuse { "1" } else { "0" })
        .output()
        .expect("run the example")
}

#[test]
fn ci_example_passes_while_connections_are_reused_and_fails_when_they_are_not() {
    if !common::can_capture("ci_example") {
        return;
    }
    let good = run_example(false);
    let stderr = String::from_utf8_lossy(&good.stderr);
    assert_eq!(good.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("PASS handshakes == 1 (actual 1)"), "{stderr}");
    assert!(stderr.contains("PASS http_requests == 5 (actual 5)"), "{stderr}");
    assert!(String::from_utf8_lossy(&good.stdout).contains("5 requests over 1 connection"));

    let broken = run_example(true);
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAIL handshakes == 1 (actual 5)"), "{stderr}");
    assert!(stderr.contains("FAIL reused_connections == connections (actual 0), connections = 5"), "{stderr}");
}
