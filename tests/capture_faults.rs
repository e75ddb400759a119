//! `connscope capture` when things go wrong: the interface goes away, the disk fills up under `-w`,
//! SIGINT or SIGTERM arrive at any moment, a second SIGINT. Each must end in a report saying what
//! happened, exit status 0, and a `-w` file that `connscope analyze` and tcpdump read to its end with
//! exactly the packets the report says it holds (see `docs/capture.md`).
//!
//! Capturing needs root: CI runs these as root (with `CI` set, not being root fails them); elsewhere
//! they print why they are skipped. The interface test makes its own network namespaces and the
//! disk-full test its own tmpfs, both removed by guards even when the test fails. Every wait is
//! bounded, and only processes these tests spawned are ever signalled, by their PIDs.

mod common;
use common::can_capture;
use common::live::{free_port, wait_bounded, Capture, Finished, Server};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connscope");

/// An HTTP server answering `/big` with 1 MB and anything else with a few bytes; its responses
/// have no Content-Length, so it closes first.
const SERVER: &str = r#"
import http.server, sys
BIG = b"x" * 1_000_000
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(BIG if self.path == "/big" else b"hello\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// Runs `program args`, bounded, and fails the test unless it succeeds.
fn run_ok(program: &str, args: &[&str]) {
    let mut child = Command::new(program).args(args).stdout(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
    let status = wait_bounded(&mut child, Duration::from_secs(15), program);
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// A scratch file path unique to this test run.
fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{name}-{}", std::process::id()))
}

/// Reads `file` back with `connscope analyze` and tcpdump; returns the packets each read, after
/// checking both read it to its end without complaint.
fn read_back(file: &Path) -> (u64, Option<u64>) {
    let path = file.to_str().expect("UTF-8 path");
    let out = Command::new(BIN).args(["analyze", "--format", "json", path]).output().expect("run connscope analyze");
    assert!(out.status.success(), "connscope analyze failed on {path}: {}", String::from_utf8_lossy(&out.stderr));
    let saved: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(saved["source"]["warning"], Value::Null, "the file ends after a whole packet");
    let analyzed = saved["packets"]["total"].as_u64().expect("packets.total");

    if Command::new("tcpdump").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        eprintln!("tcpdump not installed: not checking that it reads {path}");
        return (analyzed, None);
    }
    let out = Command::new("tcpdump").args(["-nn", "-r", path]).output().expect("run tcpdump");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpdump could not read {path}: {stderr}");
    assert!(!stderr.contains("truncated"), "tcpdump: {stderr}");
    (analyzed, Some(String::from_utf8_lossy(&out.stdout).lines().count() as u64))
}

/// Checks that the `-w` file holds exactly the packets the report says were saved: all of them.
fn assert_saved_all(finished: &Finished, file: &Path) {
    let capture = &finished.report["capture"];
    assert_eq!(capture["saved_packets"], capture["received"], "{capture}");
    assert_eq!(capture["save_error"], Value::Null, "{capture}");
    assert_eq!(capture["received"], finished.report["packets"]["total"], "every delivered packet is analysed");
    let received = capture["received"].as_u64().expect("received");
    let (analyzed, dumped) = read_back(file);
    assert_eq!(analyzed, received, "connscope analyze reads what the capture saved");
    if let Some(dumped) = dumped {
        assert_eq!(dumped, received, "tcpdump reads what the capture saved");
    }
}

/// Network namespaces made for a test, deleted (with their interfaces) when dropped; deleting one
/// not made yet fails harmlessly.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

#[test]
fn interface_removed_mid_capture_ends_it_cleanly() {
    if !can_capture("interface_removed_mid_capture_ends_it_cleanly") {
        return;
    }
    // Two private namespaces joined by a veth pair: traffic crosses cs-test0 without touching the
    // host's interfaces, and deleting cs-test0 takes its peer with it.
    let id = std::process::id();
    let (here, there) = (format!("csf-here-{id}"), format!("csf-there-{id}"));
    let namespaces = Namespaces(vec![here.clone(), there.clone()]);
    run_ok("ip", &["netns", "add", &here]);
    run_ok("ip", &["netns", "add", &there]);
    run_ok("ip", &["-n", &here, "link", "add", "cs-test0", "type", "veth", "peer", "name", "cs-peer0", "netns", &there]);
    run_ok("ip", &["-n", &here, "addr", "add", "10.213.0.1/24", "dev", "cs-test0"]);
    run_ok("ip", &["-n", &there, "addr", "add", "10.213.0.2/24", "dev", "cs-peer0"]);
    run_ok("ip", &["-n", &here, "link", "set", "cs-test0", "up"]);
    run_ok("ip", &["-n", &there, "link", "set", "cs-peer0", "up"]);

    let file = scratch("gone.pcap");
    let args = [
        "netns",
        "exec",
        &here,
        BIN,
        "capture",
        "-i",
        "cs-test0",
        "--port",
        "18099",
        "--format",
        "json",
        "-w",
        file.to_str().expect("UTF-8"),
        "--duration",
        "60s",
    ];
    let capture = Capture::start("ip", &args);
    capture.wait_capturing(Some(&here));
    // Three connection attempts to a closed port: a SYN and a RST each.
    let connect = "import socket\nfor _ in range(3):\n    try: socket.create_connection(('10.213.0.2', 18099), timeout=2)\n    except ConnectionRefusedError: pass\n";
    run_ok("ip", &["netns", "exec", &here, "python3", "-c", connect]);
    capture.wait_lines(" closed: ", 3, Duration::from_secs(10));
    run_ok("ip", &["-n", &here, "link", "del", "cs-test0"]);

    let finished = capture.finish(Duration::from_secs(10));
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    let capture_stats = &finished.report["capture"];
    assert_eq!(capture_stats["ended_by"], "interface_gone", "{capture_stats}");
    assert_eq!(capture_stats["received"], 6, "{capture_stats}");
    let warnings: Vec<&str> = finished.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", finished.stderr);
    assert!(warnings[0].starts_with("connscope: warning: interface cs-test0 went away"), "{}", warnings[0]);
    assert_eq!(finished.report["source"]["warning"].as_str().map(|w| w.contains("cs-test0")), Some(true));
    assert_eq!(finished.report["summary"]["rst_connections"], 3, "{}", finished.report["summary"]);
    assert_saved_all(&finished, &file);
    drop(namespaces);
    let _ = std::fs::remove_file(&file);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted (and the directory removed) when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = scratch("tmpfs");
        std::fs::create_dir_all(&dir).expect("mount point");
        let disk = SmallDisk(dir);
        run_ok("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", disk.0.to_str().expect("UTF-8")]);
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn disk_full_stops_the_saving_not_the_capture() {
    if !can_capture("disk_full_stops_the_saving_not_the_capture") {
        return;
    }
    let server = Server::start(SERVER);
    let disk = SmallDisk::mount("64k");
    let file = disk.0.join("capture.pcap");
    let port = server.port.to_string();
    let (big, small) = (server.url("big"), server.url("small"));
    let args = [
        "capture",
        "--port",
        &port,
        "-q",
        "--format",
        "json",
        "-w",
        file.to_str().expect("UTF-8"),
        "--linger",
        "500ms",
        "--",
        "curl",
        "-s",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        &big,
        "-o",
        "/dev/null",
        &small,
    ];
    let finished = Capture::start(BIN, &args).finish(Duration::from_secs(30));
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);

    let capture = &finished.report["capture"];
    assert_eq!(capture["ended_by"], "command_exited", "{capture}");
    assert_eq!(capture["command_exit_status"], 0, "{capture}");
    // The analysis covers everything captured: both requests, both connections closed.
    let summary = &finished.report["summary"];
    assert_eq!(
        (&summary["connections"], &summary["http_requests"], &summary["fin_first"]["server"]),
        (&Value::from(2), &Value::from(2), &Value::from(2)),
        "{summary}"
    );
    assert_eq!(capture["received"], finished.report["packets"]["total"]);

    let error = capture["save_error"].as_str().unwrap_or_else(|| panic!("no save_error: {capture}"));
    let prefix = format!("writing {}: No space left on device", file.display());
    assert!(error.starts_with(&prefix), "{error}");
    let warnings: Vec<&str> = finished.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", finished.stderr);
    assert!(
        warnings[0].starts_with(&format!("connscope: warning: {prefix}")) && warnings[0].ends_with("capturing goes on"),
        "{}",
        warnings[0]
    );

    let saved = capture["saved_packets"].as_u64().expect("saved_packets");
    let received = capture["received"].as_u64().expect("received");
    assert!(saved > 0 && saved < received, "saved {saved} of {received}");
    assert!(error.contains(&format!("the file holds the first {saved} packets")), "{error}");
    let (analyzed, dumped) = read_back(&file);
    assert_eq!(analyzed, saved, "connscope analyze reads the saved packets");
    if let Some(dumped) = dumped {
        assert_eq!(dumped, saved, "tcpdump reads the saved packets");
    }
}

/// Starts a capture of a quiet port, waits until it is open, sends `signal` before any packet.
fn signal_before_any_packet(signal: libc::c_int, ended_by: &str) {
    let file = scratch(&format!("early-{signal}.pcap"));
    let port = free_port().to_string();
    let capture = Capture::start(
        BIN,
        &["capture", "--port", &port, "-q", "--format", "json", "-w", file.to_str().expect("UTF-8"), "--duration", "60s"],
    );
    capture.wait_capturing(None);
    capture.signal(signal);
    let finished = capture.finish(Duration::from_secs(5));
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    assert_eq!(finished.report["capture"]["ended_by"], ended_by, "{}", finished.report["capture"]);
    assert_eq!(finished.report["capture"]["received"], 0, "{}", finished.report["capture"]);
    assert_saved_all(&finished, &file);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn sigint_before_any_packet() {
    if can_capture("sigint_before_any_packet") {
        signal_before_any_packet(libc::SIGINT, "interrupted");
    }
}

#[test]
fn sigterm_before_any_packet() {
    if can_capture("sigterm_before_any_packet") {
        signal_before_any_packet(libc::SIGTERM, "terminated");
    }
}

#[test]
fn sighup_before_any_packet() {
    if can_capture("sighup_before_any_packet") {
        signal_before_any_packet(libc::SIGHUP, "hangup");
    }
}

/// A capture around a command that makes one request and then sleeps; `signal` comes while it
/// sleeps: the command is stopped (SIGTERM), the capture ends after the linger.
fn signal_while_the_command_runs(signal: libc::c_int, ended_by: &str) {
    let server = Server::start(SERVER);
    let file = scratch(&format!("middle-{signal}.pcap"));
    let port = server.port.to_string();
    let script = format!("curl -s --max-time 5 -o /dev/null {}; exec sleep 30", server.url("one"));
    let capture = Capture::start(
        BIN,
        &[
            "capture",
            "--port",
            &port,
            "--format",
            "json",
            "-w",
            file.to_str().expect("UTF-8"),
            "--linger",
            "300ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    capture.wait_lines(" closed: ", 1, Duration::from_secs(10));
    capture.signal(signal);
    let finished = capture.finish(Duration::from_secs(5));
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    let capture_stats = &finished.report["capture"];
    assert_eq!(capture_stats["ended_by"], ended_by, "{capture_stats}");
    assert_eq!(capture_stats["command_exit_status"], Value::Null, "the command was ended by SIGTERM: {capture_stats}");
    assert_eq!(finished.report["summary"]["handshakes"], 1, "{}", finished.report["summary"]);
    assert_saved_all(&finished, &file);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn sigint_while_the_command_runs() {
    if can_capture("sigint_while_the_command_runs") {
        signal_while_the_command_runs(libc::SIGINT, "interrupted");
    }
}

#[test]
fn sigterm_while_the_command_runs() {
    if can_capture("sigterm_while_the_command_runs") {
        signal_while_the_command_runs(libc::SIGTERM, "terminated");
    }
}

/// A capture whose command has exited and which lingers 10 s: `signal` ends it at once.
fn signal_during_the_linger(signal: libc::c_int, ended_by: &str) {
    let server = Server::start(SERVER);
    let file = scratch(&format!("linger-{signal}.pcap"));
    let port = server.port.to_string();
    let url = server.url("one");
    let capture = Capture::start(
        BIN,
        &[
            "capture",
            "--port",
            &port,
            "--format",
            "json",
            "-w",
            file.to_str().expect("UTF-8"),
            "--linger",
            "10s",
            "--",
            "curl",
            "-s",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            &url,
        ],
    );
    capture.wait_lines(" closed: ", 1, Duration::from_secs(10));
    // curl exits right after its connection closed; give connscope time to notice.
    thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    capture.signal(signal);
    let finished = capture.finish(Duration::from_secs(5));
    assert!(signalled.elapsed() < Duration::from_secs(2), "took {:?} after the signal", signalled.elapsed());
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    let capture_stats = &finished.report["capture"];
    assert_eq!(capture_stats["ended_by"], ended_by, "{capture_stats}");
    assert_eq!(capture_stats["command_exit_status"], 0, "{capture_stats}");
    assert_eq!(finished.report["summary"]["handshakes"], 1, "{}", finished.report["summary"]);
    assert_saved_all(&finished, &file);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn sigint_during_the_linger() {
    if can_capture("sigint_during_the_linger") {
        signal_during_the_linger(libc::SIGINT, "interrupted");
    }
}

#[test]
fn sigterm_during_the_linger() {
    if can_capture("sigterm_during_the_linger") {
        signal_during_the_linger(libc::SIGTERM, "terminated");
    }
}

#[test]
fn second_sigint_ends_at_once_and_kills_the_command() {
    if !can_capture("second_sigint_ends_at_once_and_kills_the_command") {
        return;
    }
    let file = scratch("second-sigint.pcap");
    let port = free_port().to_string();
    // The command ignores the SIGTERM the first SIGINT sends it; the linger would last 10 s.
    let args = [
        "capture",
        "--port",
        &port,
        "-q",
        "--format",
        "json",
        "-w",
        file.to_str().expect("UTF-8"),
        "--linger",
        "10s",
        "--",
        "sh",
        "-c",
        "trap '' TERM; exec sleep 30",
    ];
    let mut capture = Capture::start(BIN, &args);
    capture.wait_capturing(None);
    // Let the command start (its SIGTERM disposition set) before the first signal.
    thread::sleep(Duration::from_millis(300));
    capture.signal(libc::SIGINT);
    thread::sleep(Duration::from_millis(500));
    assert!(capture.running(), "the first SIGINT lingers while the command runs");
    let second = Instant::now();
    capture.signal(libc::SIGINT);
    let finished = capture.finish(Duration::from_secs(5));
    assert!(second.elapsed() < Duration::from_millis(1500), "took {:?} after the second SIGINT", second.elapsed());
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    let capture_stats = &finished.report["capture"];
    assert_eq!(capture_stats["ended_by"], "interrupted", "{capture_stats}");
    let command = capture_stats["command"].as_str().expect("command");
    assert!(command.starts_with("sh -c ") && !command.contains("still running"), "killed and reaped: {capture_stats}");
    assert_eq!(capture_stats["command_exit_status"], Value::Null, "{capture_stats}");
    assert_saved_all(&finished, &file);
    let _ = std::fs::remove_file(&file);
}
