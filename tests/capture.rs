//! `connscope capture` on real loopback traffic. Capturing needs root (or CAP_NET_RAW): CI runs these
//! as root (with `CI` set, not being root fails them); elsewhere they print why they are skipped.
//!
//! The server is a few lines of Python whose responses carry no Content-Length, so the client can
//! only know a response ended when the server closes: the server sends the first FIN, every time.
//! The kernel-view tests also run the Go programs and the CLOSE_WAIT server of `tests/programs`.
//! Every wait is bounded, and only processes these tests spawned are ever signalled.

mod common;
use common::can_capture;
use common::live::{drain, go_program, wait_bounded, Capture, Program, Server};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connscope");

const SERVER: &str = r#"
import http.server, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"hello " + self.path.encode() + b"\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// curl fetching `urls` in one invocation, bounded.
fn curl(urls: &[String]) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "5"]);
    for url in urls {
        cmd.args(["-o", "/dev/null", url]);
    }
    let mut child = cmd.spawn().expect("curl must be installed to run the capture tests");
    let status = wait_bounded(&mut child, Duration::from_secs(10), "curl");
    assert!(status.success(), "curl failed: {status}");
}

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn capture_around_curl_counts_three_server_closed_connections() {
    if !can_capture("capture_around_curl_counts_three_server_closed_connections") {
        return;
    }
    let server = Server::start(SERVER);
    let port = server.port.to_string();
    let urls = [server.url("one"), server.url("two"), server.url("three")];
    let mut cmd = Command::new(BIN);
    cmd.args(["capture", "--port", &port, "-q", "--format", "json", "--linger", "1s", "--", "curl", "-s", "--max-time", "5"]);
    for url in &urls {
        cmd.args(["-o", "/dev/null", url]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run connscope");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, Duration::from_secs(30), "connscope capture");
    let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    assert!(status.success(), "connscope failed ({status}): {stderr}");

    let report = json(&stdout);
    let capture = &report["capture"];
    assert_eq!(capture["ended_by"], "command_exited", "{capture}");
    assert_eq!(capture["command_exit_status"], 0, "{capture}");
    assert_eq!(capture["dropped_by_kernel"], 0, "{capture}");
    assert_eq!(report["source"]["kind"], "live");
    let summary = &report["summary"];
    assert_eq!(summary["connections"], 3, "{summary}");
    assert_eq!(summary["handshakes"], 3, "{summary}");
    assert_eq!(summary["handshakes_completed"], 3, "{summary}");
    assert_eq!(summary["fin_first"]["server"], 3, "{summary}");
    assert_eq!(summary["rst_connections"], 0, "{summary}");
    assert_eq!(capture["received"], report["packets"]["total"], "every delivered packet is analysed");
}

#[test]
fn sigint_mid_capture_saves_a_file_that_reads_back_the_same() {
    if !can_capture("sigint_mid_capture_saves_a_file_that_reads_back_the_same") {
        return;
    }
    let server = Server::start(SERVER);
    let port = server.port.to_string();
    let file = scratch("sigint.pcap");
    let file_arg = file.to_str().expect("UTF-8 path");
    let capture = Capture::start(BIN, &["capture", "--port", &port, "--format", "json", "-w", file_arg, "--duration", "60s"]);
    // The live view prints a `closed:` line per finished connection: it tells when traffic was seen.
    // Until the capture is up, requests may go unseen: repeat one until the live view shows it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "the capture saw no connection within 15 s");
        curl(&[server.url("warm-up")]);
        if capture.line_within(" closed: ", Duration::from_secs(1)) {
            break;
        }
    }
    curl(&[server.url("a"), server.url("b")]);
    capture.wait_lines(" closed: ", 2, Duration::from_secs(10));

    capture.signal(libc::SIGINT);
    let finished = capture.finish(Duration::from_secs(15));
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    let live = finished.report;
    assert_eq!(live["capture"]["ended_by"], "interrupted");
    assert!(live["summary"]["handshakes"].as_u64().unwrap_or(0) >= 2, "{}", live["summary"]);

    let mut analyze = Command::new(BIN)
        .args(["analyze", "--port", &port, "--format", "json", file_arg])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run connscope analyze");
    let saved_out = drain(analyze.stdout.take().expect("stdout"));
    let status = wait_bounded(&mut analyze, Duration::from_secs(15), "connscope analyze");
    assert!(status.success(), "connscope analyze failed on the saved file");
    let saved = json(&saved_out.join().expect("stdout"));
    for key in ["connections", "handshakes", "handshakes_completed", "fin_first", "rst_connections"] {
        assert_eq!(saved["summary"][key], live["summary"][key], "summary.{key}: live vs saved file");
    }
    assert_eq!(saved["packets"]["total"], live["capture"]["received"], "the file holds every packet captured");

    if Command::new("tcpdump").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        let mut tcpdump = Command::new("tcpdump")
            .args(["-nn", "-r", file_arg])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run tcpdump");
        let out = drain(tcpdump.stdout.take().expect("stdout"));
        let status = wait_bounded(&mut tcpdump, Duration::from_secs(15), "tcpdump -r");
        assert!(status.success(), "tcpdump could not read the saved file");
        let packets = out.join().expect("stdout").lines().count() as u64;
        assert_eq!(Some(packets), live["capture"]["received"].as_u64(), "tcpdump reads every packet");
    } else {
        eprintln!("tcpdump not installed: not checking that it reads the saved file");
    }
    let _ = std::fs::remove_file(&file);
}

/// The connections of a report whose server port is `port`, their handshake seen.
fn connections_on(report: &Value, port: u16) -> Vec<&Value> {
    let all = report["connections"].as_array().map(Vec::as_slice).unwrap_or_default();
    all.iter().filter(|c| c["server_port"] == port && c["handshake"] != "mid_stream").collect()
}

#[test]
fn capture_names_the_processes_behind_each_connection() {
    if !can_capture("capture_names_the_processes_behind_each_connection") {
        return;
    }
    let server = Server::start(SERVER);
    let port = server.port.to_string();
    // The server answers /slow after half a second: the connections live long enough for the
    // resolver to find both sockets' owners.
    let (one, two) = (server.url("slow/1"), server.url("slow/2"));
    let args = [
        "capture",
        "--port",
        &port,
        "-q",
        "--format",
        "json",
        "--linger",
        "500ms",
        "--",
        "curl",
        "-s",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        &one,
        "-o",
        "/dev/null",
        &two,
    ];
    let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run connscope");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, Duration::from_secs(30), "connscope capture");
    let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    assert!(status.success(), "connscope failed ({status}): {stderr}");

    let report = json(&stdout);
    let conns = connections_on(&report, server.port);
    assert_eq!(conns.len(), 2, "{}", report["connections"]);
    for c in conns {
        assert_eq!(c["client_process"]["command"], "curl", "{c}");
        assert_eq!(c["server_process"]["command"], "python3", "{c}");
        assert_eq!(c["server_process"]["pid"], server.pid(), "{c}");
        // The server closed first: its socket is in TIME_WAIT, the client's is gone.
        assert_eq!((&c["server_state"], &c["kernel_server_state"]), (&json("\"TIME_WAIT\""), &json("\"TIME_WAIT\"")), "{c}");
        assert_eq!((&c["client_state"], &c["kernel_client_state"]), (&json("\"CLOSED\""), &Value::Null), "{c}");
    }
    let agreement = &report["capture"]["kernel_agreement"];
    assert_eq!((&agreement["compared"], &agreement["agree"], &agreement["disagree"]), (&json("4"), &json("4"), &json("0")), "{agreement}");
}

#[test]
fn capture_streams_ndjson_rows_as_connections_end() {
    if !can_capture("capture_streams_ndjson_rows_as_connections_end") {
        return;
    }
    let server = Server::start(SERVER);
    let port = server.port.to_string();
    // The command keeps running for 3 s after its one request: its row must come out before that.
    let script = format!("curl -s --max-time 5 -o /dev/null {}; sleep 3", server.url("streamed"));
    let mut child = Command::new(BIN)
        .args(["capture", "--port", &port, "-q", "--format", "ndjson", "--linger", "200ms", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run connscope");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout_pipe = child.stdout.take().expect("stdout");
    let stdout = thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let stderr = drain(child.stderr.take().expect("stderr"));
    let first = lines.recv_timeout(Duration::from_millis(2500));
    let still_running = child.try_wait().expect("waiting for connscope").is_none();
    let status = wait_bounded(&mut child, Duration::from_secs(30), "connscope capture");
    let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    assert!(status.success(), "connscope failed ({status}): {stderr}");
    let first = json(&first.unwrap_or_else(|_| panic!("no row while the command ran: {stdout:?}")));
    assert!(still_running, "the row came only when the capture ended");
    assert_eq!(first["type"], "connection", "{first}");
    assert_eq!(first["end"], "closed", "{first}");

    assert_eq!(stdout.len(), 2, "one connection row, then the summary: {stdout:?}");
    let summary = json(&stdout[1]);
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["summary"]["connections"], 1);
    // The comparison is made when the capture stops, after the row was written: the summary has it.
    assert_eq!(summary["capture"]["kernel_agreement"]["compared"], 2, "{}", summary["capture"]);
}

#[test]
fn capture_end_states_agree_with_the_kernel() {
    if !can_capture("capture_end_states_agree_with_the_kernel") {
        return;
    }
    let closing = Program::start(&mut Command::new(go_program("httpserver")));
    let leaking = Program::start(&mut Command::new(go_program("httpserver")));
    let closewait =
        Program::start(Command::new("python3").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/closewait_server.py")));
    let ports = [closing.port(), leaking.port(), closewait.port()];
    let filter = ports.map(|p| format!("tcp port {p}")).join(" or ");
    let capture = Capture::start(BIN, &["capture", "-f", &filter, "--format", "json", "--duration", "60s"]);
    // Until the capture is up, connections may go unseen: open and close one (a client-first
    // close, like the Go client's) until the live view shows its SYN.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "the capture saw no connection within 15 s");
        drop(TcpStream::connect(("127.0.0.1", closing.port())).expect("connect"));
        if capture.line_within(" opened (SYN)", Duration::from_millis(300)) {
            break;
        }
    }

    // 1. A client that closes first: TIME_WAIT on its side, nothing left on the server's.
    let url = |port: u16| format!("http://127.0.0.1:{port}/hello");
    let mut close_first = Command::new(go_program("httpclient"))
        .args([&url(closing.port()), "3", "close"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("run httpclient");
    assert!(wait_bounded(&mut close_first, Duration::from_secs(15), "httpclient close").success());
    // 2. A client that leaks its connections and outlives the capture: ESTABLISHED on both sides.
    let leaker = Program::start(Command::new(go_program("httpclient")).args([&url(leaking.port()), "2", "leak"]));
    assert_eq!(leaker.first_line, "done 2");
    // 3. A server that never closes after its peer did: CLOSE_WAIT on the server, FIN_WAIT_2 on
    //    the client (this test, which holds the connection a moment so it is seen open, then closes).
    let peer = TcpStream::connect(("127.0.0.1", closewait.port())).expect("connect");
    thread::sleep(Duration::from_millis(300));
    drop(peer);
    // Let the last segments reach the capture, then stop it as Ctrl-C would.
    thread::sleep(Duration::from_millis(500));
    capture.signal(libc::SIGINT);
    let finished = capture.finish(Duration::from_secs(15));
    assert!(finished.status.success(), "connscope failed ({}): {}", finished.status, finished.stderr);
    let report = finished.report;

    let closed = connections_on(&report, closing.port());
    assert!(closed.len() >= 3, "{}", report["connections"]);
    for c in closed {
        assert_eq!(
            (&c["fin_first"], &c["client_state"], &c["kernel_client_state"]),
            (&json("\"client\""), &json("\"TIME_WAIT\""), &json("\"TIME_WAIT\"")),
            "{c}"
        );
        assert_eq!((&c["server_state"], &c["kernel_server_state"]), (&json("\"CLOSED\""), &Value::Null), "{c}");
    }
    let leaked = connections_on(&report, leaking.port());
    assert_eq!(leaked.len(), 2, "{}", report["connections"]);
    for c in leaked {
        for key in ["client_state", "kernel_client_state", "server_state", "kernel_server_state"] {
            assert_eq!(c[key], "ESTABLISHED", "{key}: {c}");
        }
        assert_eq!(
            (&c["client_process"]["command"], &c["client_process"]["pid"]),
            (&json("\"httpclient\""), &json(&leaker.pid().to_string())),
            "{c}"
        );
        assert_eq!(
            (&c["server_process"]["command"], &c["server_process"]["pid"]),
            (&json("\"httpserver\""), &json(&leaking.pid().to_string())),
            "{c}"
        );
    }
    let half_closed = connections_on(&report, closewait.port());
    assert_eq!(half_closed.len(), 1, "{}", report["connections"]);
    let c = half_closed[0];
    assert_eq!((&c["client_state"], &c["kernel_client_state"]), (&json("\"FIN_WAIT_2\""), &json("\"FIN_WAIT_2\"")), "{c}");
    assert_eq!((&c["server_state"], &c["kernel_server_state"]), (&json("\"CLOSE_WAIT\""), &json("\"CLOSE_WAIT\"")), "{c}");
    assert_eq!(
        (&c["server_process"]["command"], &c["server_process"]["pid"]),
        (&json("\"python3\""), &json(&closewait.pid().to_string())),
        "{c}"
    );

    let agreement = &report["capture"]["kernel_agreement"];
    assert_eq!(agreement["disagree"], 0, "{agreement}");
    assert_eq!(agreement["agree"], agreement["compared"], "{agreement}");
    let findings = report["verdict"]["findings"].as_array().map(Vec::as_slice).unwrap_or_default();
    assert!(findings.iter().all(|f| f["code"] != "kernel_state_disagrees"), "{findings:?}");
}

/// Runs connscope with `args`, bounded; returns its exit code and standard error.
fn run_failing(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run connscope");
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, Duration::from_secs(15), "connscope capture");
    (status.code(), stderr.join().expect("stderr"))
}

#[test]
fn capture_errors_are_one_line_with_the_fix() {
    if !can_capture("capture_errors_are_one_line_with_the_fix") {
        return;
    }
    let (code, stderr) = run_failing(&["capture", "-i", "no-such-if0", "--duration", "1s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no interface named no-such-if0; available: ") && stderr.contains("lo"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (code, stderr) = run_failing(&["capture", "-f", "tcp port nonsense", "--duration", "1s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("filter `tcp port nonsense` does not compile: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
