//! `connscope sockets` against real programs on loopback: a Go client that leaks connections, a Go
//! client that closes first, and a server that never closes. Each test starts its own programs on
//! free ports, polls `connscope sockets --format json` until the expected counts show (or gives
//! up after a bound), and kills only the processes it started.
#![cfg(target_os = "linux")]

mod common;
use common::live::{go_program, Program};
use connscope::sockets::{kernel_state, resolve_process};
use connscope::tcp::state::TcpState;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a test waits for the kernel to show what it expects.
const PATIENCE: Duration = Duration::from_secs(20);

/// One `connscope sockets --port PORT --format json` snapshot.
fn snapshot(port: u16) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_connscope"))
        .args(["sockets", "--port", &port.to_string(), "--format", "json"])
        .output()
        .expect("run connscope");
    assert!(out.status.success(), "connscope sockets failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Polls snapshots until `done` holds; returns the last one, which the caller asserts on in full.
fn wait_for(port: u16, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let snap = snapshot(port);
        if done(&snap) || start.elapsed() > PATIENCE {
            return snap;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sockets and state counts `pid` holds on `side`, from the snapshot's owners.
fn owned<'a>(snap: &'a Value, pid: u64, side: &str) -> Option<&'a Value> {
    snap["owners"].as_array()?.iter().find(|o| o["pid"].as_u64() == Some(pid) && o["side"] == side)
}

#[test]
fn test_leaking_go_client_holds_n_established_sockets() {
    const N: u64 = 25;
    let server = Program::start(&mut Command::new(go_program("httpserver")));
    let port = server.port();
    let client =
        Program::start(Command::new(go_program("httpclient")).args([&format!("http://127.0.0.1:{port}/hello"), &N.to_string(), "leak"]));
    let snap = wait_for(port, |s| s["client"]["ESTABLISHED"].as_u64() == Some(N));
    assert_eq!(snap["client"]["ESTABLISHED"], N, "{snap:#}");
    assert_eq!(snap["server"]["ESTABLISHED"], N, "{snap:#}");
    assert_eq!(snap["server"]["LISTEN"], 1, "{snap:#}");
    let by_client = owned(&snap, client.pid(), "client").unwrap_or_else(|| panic!("client PID {} not an owner: {snap:#}", client.pid()));
    assert_eq!(by_client["command"], "httpclient");
    assert_eq!(by_client["states"]["ESTABLISHED"], N, "{snap:#}");
    let by_server = owned(&snap, server.pid(), "server").unwrap_or_else(|| panic!("server PID {} not an owner: {snap:#}", server.pid()));
    assert_eq!(by_server["states"]["ESTABLISHED"], N, "{snap:#}");
    assert_eq!(by_server["states"]["LISTEN"], 1, "{snap:#}");
}

#[test]
fn test_client_that_closes_first_is_left_in_time_wait() {
    const N: u64 = 10;
    let server = Program::start(&mut Command::new(go_program("httpserver")));
    let port = server.port();
    let client =
        Program::start(Command::new(go_program("httpclient")).args([&format!("http://127.0.0.1:{port}/hello"), &N.to_string(), "close"]));
    assert_eq!(client.first_line, "done 0");
    let snap = wait_for(port, |s| s["client"]["TIME_WAIT"].as_u64() == Some(N));
    assert_eq!(snap["client"]["TIME_WAIT"], N, "{snap:#}");
    assert_eq!(snap["server"]["TIME_WAIT"], 0, "{snap:#}");
    assert_eq!(snap["client"]["ESTABLISHED"], 0, "{snap:#}");
    // TIME_WAIT sockets belong to no process: the kernel holds them after close.
    assert_eq!(snap["no_owner"]["TIME_WAIT"], N, "{snap:#}");
    assert!(owned(&snap, client.pid(), "client").is_none(), "{snap:#}");
}

#[test]
fn test_server_that_never_closes_is_left_in_close_wait() {
    let server =
        Program::start(Command::new("python3").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/closewait_server.py")));
    let port = server.port();
    let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // This test is the client: it connects, waits until the server accepted, and closes first.
    let client = TcpStream::connect(server_addr).expect("connect");
    let client_addr = client.local_addr().expect("addr");
    let accepted = wait_for(port, |s| owned(s, server.pid(), "server").and_then(|o| o["states"]["ESTABLISHED"].as_u64()) == Some(1));
    assert!(owned(&accepted, server.pid(), "server").is_some(), "{accepted:#}");
    drop(client);

    // The server's ACK of the FIN moves the client to FIN_WAIT_2 a moment after the server enters
    // CLOSE_WAIT: wait for both.
    let snap = wait_for(port, |s| s["server"]["CLOSE_WAIT"].as_u64() == Some(1) && s["client"]["FIN_WAIT_2"].as_u64() == Some(1));
    assert_eq!(snap["server"]["CLOSE_WAIT"], 1, "{snap:#}");
    assert_eq!(snap["client"]["FIN_WAIT_2"], 1, "{snap:#}");
    let by_server = owned(&snap, server.pid(), "server").unwrap_or_else(|| panic!("server PID {} not an owner: {snap:#}", server.pid()));
    assert_eq!(by_server["command"], "python3");
    assert_eq!(by_server["states"]["CLOSE_WAIT"], 1, "{snap:#}");

    // The library API capture will use: the same answers for one 4-tuple.
    assert_eq!(kernel_state(server_addr, client_addr), Some(TcpState::CLOSE_WAIT));
    assert_eq!(kernel_state(client_addr, server_addr), Some(TcpState::FIN_WAIT_2));
    let process = resolve_process(server_addr, client_addr).expect("the server's process");
    assert_eq!(u64::from(process.pid), server.pid());
    assert_eq!(process.command, "python3");
    // The client closed its socket: the kernel finishes it alone, no process holds it.
    assert_eq!(resolve_process(client_addr, server_addr), None);
}

#[test]
fn test_assert_fails_with_status_1_on_a_close_wait() {
    let server =
        Program::start(Command::new("python3").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/closewait_server.py")));
    let port = server.port();
    drop(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    wait_for(port, |s| s["server"]["CLOSE_WAIT"].as_u64() == Some(1));
    let run = |check: &str| {
        Command::new(env!("CARGO_BIN_EXE_connscope"))
            .args(["sockets", "-p", &port.to_string(), "--assert", check])
            .output()
            .expect("run connscope")
    };
    let failing = run("CLOSE_WAIT == 0");
    assert_eq!(failing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&failing.stderr), "FAIL CLOSE_WAIT == 0 (actual 1)\n");
    assert_eq!(run("server.CLOSE_WAIT == 1").status.code(), Some(0));
    let bad = run("CLOSE_WAIT equals 0");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected FIELD OP VALUE"));
}

#[test]
fn test_watch_json_prints_one_object_per_tick() {
    let out = Command::new("timeout")
        .args([
            "--preserve-status",
            "-s",
            "INT",
            "1.5",
            env!("CARGO_BIN_EXE_connscope"),
            "sockets",
            "-p",
            "9",
            "--watch",
            "0.2",
            "--format",
            "json",
        ])
        .output()
        .expect("run connscope");
    assert_eq!(out.status.code(), Some(0), "Ctrl-C ends the watch cleanly: {}", String::from_utf8_lossy(&out.stderr));
    let ticks: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert!(ticks.len() >= 3, "{} ticks", ticks.len());
    assert!(ticks[0].get("changes").is_none());
    assert!(ticks[1]["changes"]["client"].is_object());
}
