//! The sockets of one port at one moment, counted by state and by side, with their owners: the
//! data both renderings (table, JSON) and `--assert` read.
//!
//! JSON (`--format json`; one object per line per tick with `--watch`), documented in
//! `docs/sockets.md`:
//!
//! ```json
//! {"schema_version": 1, "port": 9000, "time": 1763771000.5, "sockets": 3,
//!  "states": {"ESTABLISHED": 2, "SYN_SENT": 0, "...": 0, "TIME_WAIT": 1},
//!  "client": {"ESTABLISHED": 1, "...": 0, "TIME_WAIT": 1},
//!  "server": {"ESTABLISHED": 1, "...": 0, "LISTEN": 1},
//!  "no_owner": {"TIME_WAIT": 1, "...": 0}, "owner_unknown": {"...": 0},
//!  "owners": [{"pid": 4242, "command": "client", "side": "client", "sockets": 1, "states": {"ESTABLISHED": 1, "...": 0}}],
//!  "changes": {"client": {"TIME_WAIT": 1}, "server": {}}}
//! ```

use super::process::ProcessInfo;
use super::KernelSocket;
use crate::tcp::state::{TcpState, ALL_STATES};
use crate::wire::Side;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Version of the sockets JSON's shape. Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A count for every TCP state, serialised as a map in [`ALL_STATES`] order (zeros included, so
/// scripts always find every key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts([u32; ALL_STATES.len()]);

impl StateCounts {
    fn slot(state: TcpState) -> usize {
        ALL_STATES.iter().position(|s| *s == state).unwrap_or_default()
    }

    /// Adds one socket in `state`.
    pub fn bump(&mut self, state: TcpState) {
        self.0[Self::slot(state)] += 1;
    }

    /// The count of `state`.
    pub fn get(&self, state: TcpState) -> u32 {
        self.0[Self::slot(state)]
    }

    /// All states together.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }
}

impl Serialize for StateCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(ALL_STATES.len()))?;
        for state in ALL_STATES {
            map.serialize_entry(state.name(), &self.get(state))?;
        }
        map.end()
    }
}

/// The sockets one process holds on the port, on one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub command: String,
    pub side: Side,
    /// Sockets held.
    pub sockets: u32,
    pub states: StateCounts,
}

/// Changes per state since the previous tick of `--watch` (states that did not change are left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub client: BTreeMap<&'static str, i64>,
    pub server: BTreeMap<&'static str, i64>,
}

/// The kernel's sockets on one port.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub schema_version: u32,
    /// The port: a socket is on the server side when its own port is this one, on the client side
    /// when its peer's is.
    pub port: u16,
    /// When the tables were read (Unix seconds).
    pub time: f64,
    /// Sockets on the port.
    pub sockets: u32,
    /// Both sides together.
    pub states: StateCounts,
    pub client: StateCounts,
    pub server: StateCounts,
    /// Sockets no process holds (inode 0): TIME_WAIT, and sockets closed by their application
    /// that the kernel still finishes (FIN_WAIT_2, LAST_ACK).
    pub no_owner: StateCounts,
    /// Sockets whose process was not found in `/proc` (another user's unless root, or another PID namespace's).
    pub owner_unknown: StateCounts,
    /// Processes holding sockets on the port, most sockets first.
    pub owners: Vec<Owner>,
    /// Changes since the previous tick (`--watch` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

impl Snapshot {
    /// Counts the sockets of `port` among `sockets`, with owners looked up in `owners` (by inode).
    pub fn build(port: u16, time: f64, sockets: &[KernelSocket], owners: &HashMap<u64, ProcessInfo>) -> Snapshot {
        let mut snap = Snapshot {
            schema_version: SCHEMA_VERSION,
            port,
            time,
            sockets: 0,
            states: StateCounts::default(),
            client: StateCounts::default(),
            server: StateCounts::default(),
            no_owner: StateCounts::default(),
            owner_unknown: StateCounts::default(),
            owners: Vec::new(),
            changes: None,
        };
        let mut by_owner: HashMap<(u32, Side), Owner> = HashMap::new();
        for s in sockets {
            let side = if s.local.port() == port {
                Side::Server
            } else if s.remote.port() == port {
                Side::Client
            } else {
                continue;
            };
            snap.sockets += 1;
            snap.states.bump(s.state);
            match side {
                Side::Client => snap.client.bump(s.state),
                Side::Server => snap.server.bump(s.state),
            }
            match (s.inode, owners.get(&s.inode)) {
                (0, _) => snap.no_owner.bump(s.state),
                (_, None) => snap.owner_unknown.bump(s.state),
                (_, Some(p)) => {
                    let owner = by_owner.entry((p.pid, side)).or_insert_with(|| Owner {
                        pid: p.pid,
                        command: p.command.clone(),
                        side,
                        sockets: 0,
                        states: StateCounts::default(),
                    });
                    owner.sockets += 1;
                    owner.states.bump(s.state);
                }
            }
        }
        snap.owners = by_owner.into_values().collect();
        snap.owners.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.pid.cmp(&b.pid)).then(a.side.index().cmp(&b.side.index())));
        snap
    }

    /// Records the changes since `previous` (the last tick).
    pub fn compare_with(&mut self, previous: &Snapshot) {
        let diff = |now: &StateCounts, before: &StateCounts| {
            ALL_STATES
                .into_iter()
                .filter_map(|s| {
                    let d = i64::from(now.get(s)) - i64::from(before.get(s));
                    (d != 0).then_some((s.name(), d))
                })
                .collect()
        };
        self.changes = Some(Changes { client: diff(&self.client, &previous.client), server: diff(&self.server, &previous.server) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(local: &str, remote: &str, state: TcpState, inode: u64) -> KernelSocket {
        KernelSocket { local: local.parse().expect("addr"), remote: remote.parse().expect("addr"), state, inode, uid: 0 }
    }

    fn sample() -> (Vec<KernelSocket>, HashMap<u64, ProcessInfo>) {
        let sockets = vec![
            sock("127.0.0.1:9000", "0.0.0.0:0", TcpState::LISTEN, 10),
            sock("127.0.0.1:40000", "127.0.0.1:9000", TcpState::ESTABLISHED, 11),
            sock("127.0.0.1:9000", "127.0.0.1:40000", TcpState::ESTABLISHED, 12),
            sock("127.0.0.1:40001", "127.0.0.1:9000", TcpState::TIME_WAIT, 0),
            sock("127.0.0.1:9000", "127.0.0.1:40002", TcpState::CLOSE_WAIT, 13),
            sock("127.0.0.1:5555", "127.0.0.1:6666", TcpState::ESTABLISHED, 14),
        ];
        let owners = HashMap::from([
            (10, ProcessInfo { pid: 1, command: "server".into() }),
            (11, ProcessInfo { pid: 2, command: "client".into() }),
            (12, ProcessInfo { pid: 1, command: "server".into() }),
        ]);
        (sockets, owners)
    }

    #[test]
    fn test_side_is_server_when_local_port_is_the_port() {
        let (sockets, owners) = sample();
        let snap = Snapshot::build(9000, 0.0, &sockets, &owners);
        assert_eq!(snap.sockets, 5);
        assert_eq!(snap.server.get(TcpState::LISTEN), 1);
        assert_eq!(snap.server.get(TcpState::ESTABLISHED), 1);
        assert_eq!(snap.server.get(TcpState::CLOSE_WAIT), 1);
        assert_eq!(snap.client.get(TcpState::ESTABLISHED), 1);
        assert_eq!(snap.client.get(TcpState::TIME_WAIT), 1);
        assert_eq!(snap.states.get(TcpState::ESTABLISHED), 2);
    }

    #[test]
    fn test_time_wait_has_no_owner_and_unreadable_owner_is_unknown() {
        let (sockets, owners) = sample();
        let snap = Snapshot::build(9000, 0.0, &sockets, &owners);
        assert_eq!(snap.no_owner.get(TcpState::TIME_WAIT), 1);
        assert_eq!(snap.owner_unknown.get(TcpState::CLOSE_WAIT), 1);
        assert_eq!(snap.owners[0].pid, 1);
        assert_eq!(snap.owners[0].sockets, 2);
        assert_eq!(snap.owners[1].command, "client");
    }

    #[test]
    fn test_changes_list_only_states_that_moved() {
        let (mut sockets, owners) = sample();
        let before = Snapshot::build(9000, 0.0, &sockets, &owners);
        sockets.push(sock("127.0.0.1:40003", "127.0.0.1:9000", TcpState::TIME_WAIT, 0));
        sockets.retain(|s| s.state != TcpState::CLOSE_WAIT);
        let mut now = Snapshot::build(9000, 1.0, &sockets, &owners);
        now.compare_with(&before);
        let changes = now.changes.expect("changes");
        assert_eq!(changes.client, BTreeMap::from([("TIME_WAIT", 1)]));
        assert_eq!(changes.server, BTreeMap::from([("CLOSE_WAIT", -1)]));
    }

    #[test]
    fn test_json_lists_every_state_in_table_order() {
        let (sockets, owners) = sample();
        let json = serde_json::to_string(&Snapshot::build(9000, 0.0, &sockets, &owners)).expect("json");
        assert!(json.contains(r#""client":{"ESTABLISHED":1,"SYN_SENT":0"#), "{json}");
        assert!(!json.contains("changes"));
    }
}
