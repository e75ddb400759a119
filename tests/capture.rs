//! `connscope capture` on real loopback traffic. Capturing needs root (or CAP_NET_RAW): CI runs these
//! as root (with `CI` set, not being root fails them); elsewhere they print why they are skipped.
//!
//! The server is a few lines of Python whose responses carry no Content-Length, so the client can
//! only know a response ended when the server closes: the server sends the first FIN, every time.
//! Every wait is bounded, and only processes these tests spawned are ever signalled.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connscope");

const SERVER: &str = r#"
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"hello " + self.path.encode() + b"\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when the test can capture; otherwise says why it is skipped.
fn can_capture(test: &str) -> bool {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "{test}: CI must run the capture tests as root");
        eprintln!("SKIPPED {test}: live capture needs root (CI runs these tests as root)");
        return false;
    }
    true
}

/// A free TCP port on the loopback.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// The Python server, killed (by its PID, through `Child`) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 must be installed to run the capture tests");
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the Python server did not listen on port {port} within 10 s");
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test when it takes longer.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a child's pipe to the end on another thread, so the child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

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
    let server = Server::start();
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
    let server = Server::start();
    let port = server.port.to_string();
    let file = scratch("sigint.pcap");
    let file_arg = file.to_str().expect("UTF-8 path");
    let mut child = Command::new(BIN)
        .args(["capture", "--port", &port, "--format", "json", "-w", file_arg, "--duration", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run connscope");
    let stdout = drain(child.stdout.take().expect("stdout"));
    // The live view prints a `closed:` line per finished connection: it tells when traffic was seen.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().expect("stderr");
    let stderr = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let closed_within = |limit: Duration| {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(" closed: ") => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    };

    // Until the capture is up, requests may go unseen: repeat one until the live view shows it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "the capture saw no connection within 15 s");
        curl(&[server.url("warm-up")]);
        if closed_within(Duration::from_secs(1)) {
            break;
        }
    }
    curl(&[server.url("a"), server.url("b")]);
    for _ in 0..2 {
        assert!(closed_within(Duration::from_secs(10)), "the live view did not show the next connections");
    }

    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the PID of our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "sending SIGINT");
    let status = wait_bounded(&mut child, Duration::from_secs(15), "connscope capture after SIGINT");
    let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    assert!(status.success(), "connscope failed ({status}): {stderr}");
    let live = json(&stdout);
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
