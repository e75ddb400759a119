//! Opens N loopback TCP connections (2N sockets, all ESTABLISHED) and times reading the kernel's
//! TCP tables for one port through procfs (/proc/net/tcp, tcp6) and through netlink sock_diag.
//! Bounded: every socket is closed when the program ends.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

fn procfs_count(port: u16) -> usize {
    let mut n = 0;
    for table in [procfs::net::tcp(), procfs::net::tcp6()] {
        let Ok(entries) = table else { continue };
        n += entries.iter().filter(|e| e.local_address.port() == port || e.remote_address.port() == port).count();
    }
    n
}

/// connscope's own reader (netlink sock_diag), so the figure is the one `connscope sockets` pays.
fn netlink_count(port: u16) -> usize {
    let sockets = connscope::sockets::table::read_all().expect("netlink sock_diag dump");
    sockets.iter().filter(|s| s.local.port() == port || s.remote.port() == port).count()
}

fn time(name: &str, f: impl Fn() -> usize) {
    let mut times: Vec<Duration> = Vec::new();
    let mut found = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        found = f();
        times.push(t.elapsed());
    }
    times.sort();
    println!("{name:8} sockets on port: {found:6}  median {:8.2?}  min {:8.2?}  max {:8.2?}", times[ROUNDS / 2], times[0], times[ROUNDS - 1]);
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut held = Vec::with_capacity(2 * n);
    for _ in 0..n {
        held.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        held.push(listener.accept().expect("accept").0);
    }
    let total_tcp = std::fs::read_to_string("/proc/net/tcp").map(|s| s.lines().count() - 1).unwrap_or(0);
    println!("{n} loopback connections on port {port} ({} sockets + listener; {total_tcp} lines in /proc/net/tcp), {ROUNDS} rounds", held.len());
    time("procfs", || procfs_count(port));
    time("netlink", || netlink_count(port));
}
