//! Helpers for the live tests: free ports, a Python HTTP server and the programs of
//! `tests/programs` killed on drop, bounded waits for child processes, pipe readers.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
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
    /// Starts the server on a free port and waits (10 s at most) until it listens.
    pub fn start(script: &str) -> Server {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", script, &port.to_string()])
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
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
            let mut build = Command::new("go").args(["build", "-o"]).arg(dir.join(program)).arg(source).spawn().expect("Go builds tests/programs");
            assert!(wait_bounded(&mut build, Duration::from_secs(120), "go build").success(), "go build {program}.go failed");
        }
        dir
    });
    dir.join(name)
}
