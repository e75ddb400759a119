//! Helpers for the live tests: free ports, a Python HTTP server and the programs of
//! `tests/programs` killed on drop, a running `connscope capture` with its live view, bounded waits
//! for child processes, pipe readers.

use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// A Python HTTP server running `script` (which takes its port as its only argument), killed by
/// its PID (through `Child`) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Starts the server on a free port and waits (10 s at most) until it listens. Tests run in
    /// parallel: when another test's program took the port first (this server then exits on its
    /// bind error, and the port answers for the other program), it starts again on another port.
    pub fn start(script: &str) -> Server {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let port = free_port();
            let child = Command::new("python3")
                .args(["-c", script, &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 must be installed to run the capture tests");
            let mut server = Server { child, port };
            while TcpStream::connect(("127.0.0.1", port)).is_err() && server.child.try_wait().ok().flatten().is_none() {
                assert!(Instant::now() < deadline, "the Python server did not listen on port {port} within 10 s");
                thread::sleep(Duration::from_millis(50));
            }
            // Something listens: the port is this server's only when the kernel says this
            // process holds the listening socket (a server that lost the port to another test may
            // still be starting up, or exiting, when the other program answers).
            if listens(port, server.child.id()) {
                return server;
            }
            let _ = server.child.kill();
            let _ = server.child.wait();
            assert!(Instant::now() < deadline, "the Python server could not listen within 10 s");
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

/// True when process `pid` holds a socket listening on 127.0.0.1:`port` (`ss -ltnp`).
fn listens(port: u16, pid: u32) -> bool {
    let output = Command::new("ss").args(["-Hltnp", &format!("sport = :{port}")]).output().expect("ss (iproute2) must be installed");
    String::from_utf8_lossy(&output.stdout).contains(&format!("pid={pid},"))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test when it takes longer.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
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
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a child's pipe to the end on another thread, so the child never blocks on a full pipe.
pub fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// A program started by a test (one of `tests/programs`), killed by its own PID when dropped.
pub struct Program {
    child: Child,
    /// Held open: the Go client stays alive until its standard input closes.
    _stdin: Option<ChildStdin>,
    /// Its first line of output (a port, or `done N`).
    pub first_line: String,
}

impl Program {
    /// Starts `command` and reads its first line (each program prints it at once, or after its
    /// requests).
    pub fn start(command: &mut Command) -> Program {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start a test program");
        let stdin = child.stdin.take();
        let mut first_line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut first_line).expect("first line");
        assert!(!first_line.is_empty(), "{command:?} ended before printing its first line");
        Program { child, _stdin: stdin, first_line: first_line.trim().to_string() }
    }

    /// The program's process id.
    pub fn pid(&self) -> u64 {
        u64::from(self.child.id())
    }

    /// The port it printed on its first line.
    pub fn port(&self) -> u16 {
        self.first_line.parse().expect("a port on the first line")
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Go programs of `tests/programs`, built once per test binary into cargo's scratch directory.
pub fn go_program(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("programs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        for program in ["httpserver", "httpclient"] {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{program}.go"));
            let mut build =
                Command::new("go").args(["build", "-o"]).arg(dir.join(program)).arg(source).spawn().expect("Go builds tests/programs");
            assert!(wait_bounded(&mut build, Duration::from_secs(120), "go build").success(), "go build {program}.go failed");
        }
        dir
    });
    dir.join(name)
}

/// A running `connscope capture`: its report read from standard output, its standard error line
/// by line (the live view tells when traffic was seen). Killed, by its PID, if the test fails
/// before it finished.
pub struct Capture {
    child: Child,
    /// The readers of standard output and error; taken by [`Capture::finish`].
    readers: Option<(thread::JoinHandle<String>, thread::JoinHandle<String>)>,
    lines: mpsc::Receiver<String>,
}

/// What a finished capture printed.
pub struct Finished {
    pub status: ExitStatus,
    pub report: Value,
    pub stderr: String,
}

impl Capture {
    /// Starts `program args` (connscope, or `ip netns exec NS connscope`, which execs it in place).
    pub fn start(program: &str, args: &[&str]) -> Capture {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run connscope");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let (lines_tx, lines) = mpsc::channel::<String>();
        let err = child.stderr.take().expect("stderr");
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Capture { child, readers: Some((stdout, stderr)), lines }
    }

    /// Waits until connscope holds a packet socket: the capture is open, its signal handlers set.
    /// `ns` is the network namespace it runs in (`None`: this one), whose `/proc/net/packet` lists it.
    pub fn wait_capturing(&self, ns: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let fds = format!("/proc/{}/fd", self.child.id());
        loop {
            // /proc/net/packet: one line per packet socket of the network namespace, inode last.
            let table = match ns {
                None => std::fs::read_to_string("/proc/net/packet").expect("/proc/net/packet"),
                Some(ns) => {
                    let out = Command::new("ip").args(["netns", "exec", ns, "cat", "/proc/net/packet"]).output().expect("ip netns exec");
                    String::from_utf8_lossy(&out.stdout).into_owned()
                }
            };
            let inodes: HashSet<String> =
                table.lines().skip(1).filter_map(|l| l.split_whitespace().last()).map(|i| format!("socket:[{i}]")).collect();
            let open = std::fs::read_dir(&fds).into_iter().flatten().flatten().filter_map(|e| std::fs::read_link(e.path()).ok());
            if open.into_iter().any(|target| inodes.contains(target.to_string_lossy().as_ref())) {
                return;
            }
            assert!(Instant::now() < deadline, "connscope opened no packet socket within 10 s");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for `n` live-view lines containing `text`, at most `limit`.
    pub fn wait_lines(&self, text: &str, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        for seen in 0..n {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            assert!(self.line_within(text, left), "saw {seen} of {n} `{text}` lines within {limit:?}");
        }
    }

    /// True when a live-view line containing `text` comes within `limit`.
    pub fn line_within(&self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Sends `signal` to connscope, by its PID (it has not been waited for yet).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the PID of our own unreaped child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "sending signal {signal}");
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("waiting for connscope").is_none()
    }

    /// Waits for the end (at most `limit`) and parses the JSON report.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let status = wait_bounded(&mut self.child, limit, "connscope capture");
        let (stdout, stderr) = self.readers.take().expect("finished once");
        let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON report ({e}), status {status}: {stdout}\n{stderr}"));
        Finished { status, report, stderr }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
