//! The seed experiments end to end: `scripts/lab/run --json` runs every lab experiment under
//! `connscope capture` (this build's binary), and each experiment's counts are checked against what
//! its programs are written to do (scripts/lab/client.go, scripts/fixtures/server.go; docs/lab.md explains each row).
//! The expectations below are derived from those programs and net/http's documented behaviour, not
//! copied from a run of the tool.
//!
//! Capturing needs root: CI runs this as root (with `CI` set, not being root fails it); elsewhere it
//! prints SKIPPED. It needs Go (Debian's golang-go; installed here with apt-get when missing) and
//! python3. The whole lab takes about two minutes on two cores; the run is bounded at 5 minutes.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connscope");
/// Requests per experiment: small for speed, more than 1 so reuse and "one connection per request"
/// differ.
const N: u64 = 3;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd} >/dev/null")]).status().is_ok_and(|s| s.success())
}

/// What one experiment must show. States list only the non-zero ones.
struct Expect {
    /// HTTP requests; `None` for HTTPS, where the capture cannot see them (JSON null).
    requests: Option<u64>,
    connections: u64,
    /// FIN first (client, server, none); `None` where the programs leave it to a race.
    fin_first: Option<(u64, u64, u64)>,
    client_states: Option<Vec<(&'static str, u64)>>,
    server_states: Option<Vec<(&'static str, u64)>>,
    keepalive_probes: (u64, u64),
    tls_client_hellos: u64,
    /// The non-zero close causes (`summary.close_causes`); `None` where the programs race.
    causes: Option<Vec<(&'static str, u64)>>,
    /// The exact set of warning codes; `None` where the programs race.
    warnings: Option<Vec<&'static str>>,
}

impl Expect {
    fn new(requests: Option<u64>, connections: u64) -> Expect {
        Expect {
            requests,
            connections,
            fin_first: None,
            client_states: None,
            server_states: None,
            keepalive_probes: (0, 0),
            tls_client_hellos: 0,
            causes: None,
            warnings: None,
        }
    }

    /// Every connection ended with `cause`, and the verdict warns exactly `warnings`.
    fn because(mut self, cause: &'static str, warnings: &[&'static str]) -> Expect {
        self.causes = Some(vec![(cause, self.connections)]);
        self.warnings = Some(warnings.to_vec());
        self
    }

    /// Nobody closed: the client holds its sockets past the capture, the server never closes first.
    fn open(mut self) -> Expect {
        let c = self.connections;
        self.fin_first = Some((0, 0, c));
        self.client_states = Some(vec![("ESTABLISHED", c)]);
        self.server_states = Some(vec![("ESTABLISHED", c)]);
        self
    }

    /// The client sent FIN first and the server answered with its own: TIME_WAIT on the client.
    fn client_closed(mut self) -> Expect {
        let c = self.connections;
        self.fin_first = Some((c, 0, 0));
        self.client_states = Some(vec![("TIME_WAIT", c)]);
        self.server_states = Some(vec![("CLOSED", c)]);
        self
    }

    /// The server sent FIN first (the client waits 100 ms, -delay, so it cannot race it). If the
    /// client then closes, TIME_WAIT lands on the server; if it never closes, CLOSE_WAIT on the client.
    fn server_closed(mut self, client_closes: bool) -> Expect {
        let c = self.connections;
        self.fin_first = Some((0, c, 0));
        if client_closes {
            self.client_states = Some(vec![("CLOSED", c)]);
            self.server_states = Some(vec![("TIME_WAIT", c)]);
        } else {
            self.client_states = Some(vec![("CLOSE_WAIT", c)]);
            self.server_states = Some(vec![("FIN_WAIT_2", c)]);
        }
        self
    }
}

/// The expectation for one experiment, from its name (scripts/lab/run, `experiments`).
fn expected(name: &str, n: u64) -> Expect {
    if let Some(rest) = name.strip_prefix("000-") {
        // Seed 000: `000-{on,off}-{op1}{op2}{op3}`; every client uses http.DefaultTransport, so op1
        // (a new http.Client per request) changes nothing: the pool is the same.
        let (ka, ops) = rest.split_once('-').expect("000-KA-OPS");
        let ops: Vec<char> = ops.chars().collect();
        let (read_all, close) = (ops[1] == '2', ops[2] == '1');
        return if ka == "on" {
            if read_all {
                // EOF puts the connection back in the pool before the next request (with or without
                // Close): one connection, idle at the end.
                Expect::new(Some(n), 1).open().because("open", &[])
            } else if close {
                // Close of a body not read to EOF: the transport closes the connection. The 11-byte
                // response had fully arrived (answered in full on the wire): client_idle, one after
                // the other, so the client closes after each response.
                Expect::new(Some(n), n).client_closed().because("client_idle", &["client_closes_after_response", "client_time_wait_pileup"])
            } else {
                // Neither EOF nor Close: the connection stays with the response, a new one per request.
                Expect::new(Some(n), n).open().because("open", &["connections_leaked"])
            }
        } else {
            // "Connection: close" on every response: the server closes after each one. The client
            // closes its side when it reads to EOF (the response said close) or calls Close. The
            // server asked: only the server is blamed for the reuse; a client that never closes is
            // also told of its CLOSE_WAIT sockets.
            let client_closes = read_all || close;
            let warnings: &[&str] = if client_closes { &["server_keepalive_off"] } else { &["server_keepalive_off", "client_close_wait"] };
            Expect::new(Some(n), n).server_closed(client_closes).because("server_asked", warnings)
        };
    }
    match name {
        // python3 -m http.server answers HTTP/1.0 and closes after each response.
        "001-python" => Expect::new(Some(n), n).server_closed(true).because("server_asked", &["server_keepalive_off"]),
        // One global client, body read to EOF (Close or not): one connection for all.
        "001-go" | "001-go-noclose" => Expect::new(Some(n), 1).open().because("open", &[]),
        // A new Transport per call: each call's connection goes idle in a pool nobody uses again.
        "002-keepalive" => Expect::new(Some(n), n).open().because("open", &["connections_leaked"]),
        // DisableKeepAlives sends "Connection: close"; the Go server honours it and closes first:
        // the client asked, so only the client is blamed.
        "002-disable-keepalives" => Expect::new(Some(n), n).server_closed(true).because("client_asked", &["client_disables_keepalive"]),
        // One connection, idle 4.5 s with TCP keep-alive after 1 s idle, every 1 s: probes due at
        // 1, 2, 3, 4 s; then CloseIdleConnections (client FIN). 5 would need a 0.5 s stall.
        "003-idle-probes" => {
            let mut e = Expect::new(Some(n), 1).client_closed().because("client_idle", &[]);
            e.keepalive_probes = (4, 5);
            e
        }
        // HTTPS, decrypted: the lab's Go client writes its TLS secrets to the SSLKEYLOGFILE that
        // `connscope capture` gives it, so the POSTs inside TLS are counted like plain HTTP; one
        // ClientHello per connection.
        "004-new-client" => {
            let mut e = Expect::new(Some(n), n).open().because("open", &["connections_leaked", "tls_handshake_per_request"]);
            e.tls_client_hellos = n;
            e
        }
        "004-shared-drained" => {
            let mut e = Expect::new(Some(n), 1).open().because("open", &[]);
            e.tls_client_hellos = 1;
            e
        }
        // Close without draining: the connection is closed after every POST, so a handshake each.
        // Which FIN comes first races the server's reaction to the client's close_notify, but the
        // close_notify (read once decrypted) says the client closed, after its whole response
        // came: client_idle, and the client is told to read the body to EOF.
        "004-shared-nodrain" => {
            let mut e = Expect::new(Some(n), n);
            e.tls_client_hellos = n;
            e.causes = Some(vec![("client_idle", n)]);
            e.warnings = Some(vec!["client_closes_after_response", "tls_handshake_per_request"]);
            e
        }
        other => panic!("tests/lab.rs has no expectation for experiment {other}: add one"),
    }
}

/// `what = got, expected want` when they differ.
fn differ(name: &str, what: &str, got: &Value, want: Value) -> Option<String> {
    (*got != want).then(|| format!("{name}: {what} = {got}, expected {want}"))
}

/// The non-zero states of one side, e.g. {"TIME_WAIT": 3}.
fn nonzero_states(states: &Value) -> BTreeMap<String, u64> {
    let object = states.as_object().expect("states object");
    object.iter().filter_map(|(k, v)| v.as_u64().filter(|&v| v > 0).map(|v| (k.clone(), v))).collect()
}

/// Checks one experiment's JSON line; returns the mismatches.
fn check(line: &Value) -> Vec<String> {
    let name = line["experiment"].as_str().expect("experiment name");
    let n = line["n"].as_u64().expect("n");
    let s = &line["summary"];
    let e = expected(name, n);
    let mut bad: Vec<Option<String>> = vec![
        differ(name, "client errors", &line["client_errors"], 0.into()),
        differ(name, "connections", &s["connections"], e.connections.into()),
        differ(name, "handshakes", &s["handshakes"], e.connections.into()),
        differ(name, "handshakes_completed", &s["handshakes_completed"], e.connections.into()),
        differ(name, "http_requests", &s["http_requests"], e.requests.map_or(Value::Null, Value::from)),
        differ(name, "tls_client_hellos", &s["tls_client_hellos"], e.tls_client_hellos.into()),
        // Every TLS connection of the lab is decrypted with the client's key log.
        differ(name, "tls_decrypted", &s["tls_decrypted"], if e.tls_client_hellos > 0 { e.connections } else { 0 }.into()),
        // Every experiment sends n requests over either one connection (reused) or n (none reused);
        // for HTTPS the reuse comes from the exchange estimate, so this also checks that estimate.
        differ(name, "reused_connections", &s["reused_connections"], u64::from(e.connections == 1 && n > 1).into()),
    ];
    if let Some((c, sv, none)) = e.fin_first {
        bad.push(differ(name, "fin_first.client", &s["fin_first"]["client"], c.into()));
        bad.push(differ(name, "fin_first.server", &s["fin_first"]["server"], sv.into()));
        bad.push(differ(name, "fin_first.none", &s["fin_first"]["none"], none.into()));
    }
    for (side, want) in [("client_states", &e.client_states), ("server_states", &e.server_states)] {
        let got = nonzero_states(&s[side]);
        match want {
            Some(want) => {
                let want: BTreeMap<String, u64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                if got != want {
                    bad.push(Some(format!("{name}: {side} = {got:?}, expected {want:?}")));
                }
            }
            // FIN side left to a race: still, the program closed every connection.
            None => {
                if got.contains_key("ESTABLISHED") {
                    bad.push(Some(format!("{name}: {side} = {got:?}, expected nothing ESTABLISHED")));
                }
            }
        }
    }
    if let Some(causes) = &e.causes {
        let want: BTreeMap<String, u64> = causes.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let got = nonzero_states(&s["close_causes"]);
        if got != want {
            bad.push(Some(format!("{name}: close_causes = {got:?}, expected {want:?}")));
        }
    }
    if let Some(warnings) = &e.warnings {
        let mut got: Vec<&str> = line["verdict"]["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["severity"] == "warning")
            .filter_map(|f| f["code"].as_str())
            .collect();
        got.sort_unstable();
        let mut want = warnings.clone();
        want.sort_unstable();
        if got != want {
            bad.push(Some(format!("{name}: warnings = {got:?}, expected {want:?}")));
        }
    }
    let probes = s["keepalive_probes"].as_u64().unwrap_or(u64::MAX);
    let (lo, hi) = e.keepalive_probes;
    if !(lo..=hi).contains(&probes) {
        bad.push(Some(format!("{name}: keepalive_probes = {probes}, expected {lo}..={hi}")));
    }
    bad.into_iter().flatten().collect()
}

#[test]
fn lab_experiments_match_what_the_programs_do() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI must run the lab test as root");
        eprintln!("SKIPPED lab_experiments_match_what_the_programs_do: live capture needs root");
        return;
    }
    if !have("go") {
        // scripts/test.sh installs it (scripts/install-deps.sh test); this covers a bare `cargo test`.
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq", "golang-go"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get");
        assert!(status.success() && have("go"), "could not install golang-go");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lab-{}", std::process::id()));
    let started = Instant::now();
    let mut child = Command::new(root.join("scripts/lab/run"))
        .args(["--json", "-n", &N.to_string(), "-o"])
        .arg(&out)
        .env("CONNSCOPE", BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/lab/run");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    // Bounded: 5 minutes, then SIGTERM (the script's trap stops its server and client), then kill.
    let limit = Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the lab") {
            break status;
        }
        if started.elapsed() > limit {
            // SAFETY: kill(2) on our own unreaped child's PID.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/lab/run did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    assert!(status.success(), "scripts/lab/run failed ({status}):\n{stderr}");
    eprintln!("lab ran in {:.0?}; pcaps and reports in {}", started.elapsed(), out.display());

    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let names: Vec<&str> = lines.iter().map(|l| l["experiment"].as_str().unwrap_or("?")).collect();
    // Every experiment of the lab ran: 24 of seed 000, 3 of 001, 2 of 002, 1 of 003, 3 of 004.
    assert_eq!(lines.len(), 33, "experiments: {names:?}");
    let mut bad: Vec<String> = lines.iter().flat_map(check).collect();
    // Each experiment's capture was saved (-w), so its pcap can be opened afterwards.
    for name in &names {
        let pcap = out.join(format!("{name}.pcap"));
        if std::fs::metadata(&pcap).map_or(true, |m| m.len() <= 24) {
            bad.push(format!("{name}: {} is missing or holds no packet", pcap.display()));
        }
    }
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
}
