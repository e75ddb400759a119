//! Which process holds a socket: the socket's inode is the target of a `socket:[INODE]` link in
//! `/proc/PID/fd`. Scanning every process's descriptors is the only way to learn it, so the answer
//! is cached by inode; a miss rescans the processes that owned sockets lately first (cheap), and all
//! of `/proc` only then. Processes of other users are visible only to root.

use super::table;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A process that holds a socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub command: String,
}

/// How long an inode no process was found for is taken as unowned before a rescan is tried again.
const MISS_TTL: Duration = Duration::from_secs(1);
/// Processes that owned a socket lately, rescanned first on a miss.
const HOT_PIDS: usize = 16;

/// A cache from socket inode to owning process.
#[derive(Debug, Default)]
pub struct ProcessIndex {
    owners: HashMap<u64, ProcessInfo>,
    /// Inodes not found by the full scan at this time.
    misses: HashMap<u64, Instant>,
    /// Most recent owners first.
    hot: Vec<u32>,
}

impl ProcessIndex {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process holding the socket with this inode; `None` for inode 0 (no file holds the
    /// socket: TIME_WAIT, or closed by its application) and for processes we may not look into.
    pub fn owner(&mut self, inode: u64) -> Option<ProcessInfo> {
        if inode == 0 {
            return None;
        }
        if let Some(p) = self.owners.get(&inode) {
            return Some(p.clone());
        }
        if self.misses.get(&inode).is_some_and(|t| t.elapsed() < MISS_TTL) {
            return None;
        }
        let hot = self.hot.clone();
        for pid in hot {
            self.scan_pid(pid);
        }
        if !self.owners.contains_key(&inode) {
            self.rescan();
        }
        match self.owners.get(&inode) {
            Some(p) => {
                let p = p.clone();
                self.hot.retain(|&h| h != p.pid);
                self.hot.insert(0, p.pid);
                self.hot.truncate(HOT_PIDS);
                Some(p)
            }
            None => {
                self.misses.insert(inode, Instant::now());
                None
            }
        }
    }

    /// Resolves many inodes with at most one scan of `/proc` (for a whole table at once), and
    /// forgets sockets that are gone.
    pub fn owners_of(&mut self, inodes: &HashSet<u64>) -> HashMap<u64, ProcessInfo> {
        self.owners.retain(|inode, _| inodes.contains(inode));
        self.misses.retain(|inode, t| inodes.contains(inode) && t.elapsed() < MISS_TTL);
        let unknown = inodes.iter().any(|i| *i != 0 && !self.owners.contains_key(i) && !self.misses.contains_key(i));
        if unknown {
            self.rescan();
            let now = Instant::now();
            for i in inodes {
                if *i != 0 && !self.owners.contains_key(i) {
                    self.misses.entry(*i).or_insert(now);
                }
            }
        }
        inodes.iter().filter_map(|i| Some((*i, self.owners.get(i)?.clone()))).collect()
    }

    /// Reads every process's descriptors afresh, so the cache holds only sockets that exist.
    fn rescan(&mut self) {
        self.owners.clear();
        self.misses.retain(|_, t| t.elapsed() < MISS_TTL);
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        for entry in dir.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                self.scan_pid(pid);
            }
        }
    }

    /// Reads one process's descriptors; a process that ended or that we may not read adds nothing.
    fn scan_pid(&mut self, pid: u32) {
        let base = Path::new("/proc").join(pid.to_string());
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else { return };
        let mut command = None;
        for fd in fds.flatten() {
            let Some(inode) = std::fs::read_link(fd.path()).ok().and_then(|t| socket_inode(t.to_str()?)) else { continue };
            let command = command
                .get_or_insert_with(|| std::fs::read_to_string(base.join("comm")).map(|c| c.trim_end().to_string()).unwrap_or_default());
            self.owners.insert(inode, ProcessInfo { pid, command: command.clone() });
        }
    }
}

/// The inode in a `socket:[12345]` descriptor link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The process holding the socket whose own address is `local` and whose peer is `remote` (for a
/// connection seen on the wire between two local programs, ask once per side). Cached by inode
/// in one index shared by the whole program: a hit costs one netlink query for the socket's inode;
/// a miss also rescans `/proc` (milliseconds; more with very many processes). `None` when the socket
/// is gone or in TIME_WAIT, the owner may not be read, or the system has no socket tables.
pub fn resolve_process(local: SocketAddr, remote: SocketAddr) -> Option<ProcessInfo> {
    static INDEX: OnceLock<Mutex<ProcessIndex>> = OnceLock::new();
    let socket = table::find(local, remote).ok()??;
    let mut index = INDEX.get_or_init(|| Mutex::new(ProcessIndex::new())).lock().ok()?;
    index.owner(socket.inode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_socket_inode_parses_only_socket_links() {
        assert_eq!(socket_inode("socket:[123456]"), Some(123456));
        assert_eq!(socket_inode("pipe:[123]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn test_inode_zero_has_no_owner() {
        assert_eq!(ProcessIndex::new().owner(0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn test_own_listening_socket_resolves_to_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(local).expect("connect");
        let client_addr = client.local_addr().expect("addr");
        let owner = resolve_process(client_addr, local).expect("owner of our own socket");
        assert_eq!(owner.pid, std::process::id());
        // A hit is served from the cache.
        assert_eq!(resolve_process(client_addr, local), Some(owner));
        assert_eq!(table::kernel_state(client_addr, local), Some(crate::tcp::state::TcpState::ESTABLISHED));
    }

    /// A dual-stack server (listening on `[::]`) holds IPv4 connections as IPv4-mapped IPv6
    /// sockets; the IPv4 4-tuple seen on the wire must still find them.
    #[cfg(target_os = "linux")]
    #[test]
    fn test_ipv4_tuple_finds_dual_stack_server_socket() {
        let Ok(listener) = std::net::TcpListener::bind("[::]:0") else { return };
        let port = listener.local_addr().expect("addr").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (_accepted, _) = listener.accept().expect("accept");
        let client_addr = client.local_addr().expect("addr");
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        assert_eq!(table::kernel_state(server_addr, client_addr), Some(crate::tcp::state::TcpState::ESTABLISHED));
        assert_eq!(resolve_process(server_addr, client_addr).map(|p| p.pid), Some(std::process::id()));
    }
}
