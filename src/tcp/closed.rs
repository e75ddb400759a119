//! What closed connections leave behind, and the bounds on it.
//!
//! Input: a connection the table has just closed, and later segments on its tuple (from
//! [`FlowTable::process`]). Output: [`Amendment`]s to the [`FlowSink`] when a TIME_WAIT socket meets
//! an RST or a new SYN, the `after_close` and `evicted` counters, and evicted connections'
//! records. A small tombstone per recently closed tuple catches late segments (a retransmitted
//! last ACK) so they do not pass for new mid-stream connections, and remembers which side is in
//! TIME_WAIT: an RST at exactly the sequence number that socket expects kills it (RFC 1337
//! TIME-WAIT assassination, Linux's default), and a new SYN on the tuple recycles it; either
//! amends the connection's record ([`FlowSink::connection_amended`]).

use super::connection::{finalise, Connection};
use super::key::FlowKey;
use super::seq::SeqNumber;
use super::side::Side;
use super::state::TcpState;
use super::{FlowSink, FlowTable};
use crate::decode::Segment;
use crate::report::{Amendment, EndReason};
use std::net::SocketAddr;

/// Tombstones of closed tuples are forgotten after this much capture time: late segments within it
/// count as `after_close`.
pub(super) const TOMBSTONE_TTL: f64 = 120.0;
/// The longest a tombstone stays in the table after its connection's last segment, whenever the
/// sweeps (every quarter TTL) run: what a parallel analysis bounds the tombstones by.
pub const TOMBSTONE_LIFETIME_MAX: f64 = TOMBSTONE_TTL * 1.25;
/// How long a TIME_WAIT socket lasts, in capture time (Linux's TCP_TIMEWAIT_LEN, 60 s): within it
/// an RST or a new SYN on the tuple can end it and amend the connection's record.
pub const TIME_WAIT_SECONDS: f64 = 60.0;
/// Entries of ended connections the eviction queue may hold beyond twice the open connections
/// before it is compacted.
pub(super) const ORDER_SLACK: usize = 1024;

/// What a closed tuple leaves behind (24 bytes, not the connection): enough to count its late
/// segments, and to amend its record when its TIME_WAIT socket meets an RST or a new SYN. The
/// record is named by its 4-tuple: a tuple has at most one connection that can still be amended
/// (a connection opens on it only after its tombstone is gone, recycled or expired).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tombstone {
    /// Timestamp of the segment that closed the connection.
    pub(super) closed_at: f64,
    /// Per side (client first), the sequence number it expects next from its peer (RCV.NXT): an
    /// RST must carry exactly this to kill the side's TIME_WAIT (RFC 5961 3.2; Linux
    /// `tcp_timewait_state_process`).
    rcv_nxt: [SeqNumber; 2],
    /// Per side (client first), whether its socket is in TIME_WAIT.
    time_wait: [bool; 2],
    /// The client is the key's lower endpoint.
    client_is_lo: bool,
    /// An RST has already killed one side's TIME_WAIT (and was counted).
    reset: bool,
    server_port: u16,
}

impl Tombstone {
    pub(super) fn of(conn: &Connection, key: &FlowKey, closed_at: f64) -> Tombstone {
        let rcv_nxt = |side: Side| {
            let (own, peer) = (conn.end(side), conn.end(side.peer()));
            own.acked.or(peer.next_seq).unwrap_or_default()
        };
        let in_time_wait = |side: Side| conn.rst_by.is_none() && conn.end(side).state == TcpState::TIME_WAIT;
        Tombstone {
            closed_at,
            rcv_nxt: [rcv_nxt(Side::Client), rcv_nxt(Side::Server)],
            time_wait: [in_time_wait(Side::Client), in_time_wait(Side::Server)],
            client_is_lo: key.is_lo(conn.client),
            reset: false,
            server_port: conn.server.port(),
        }
    }

    fn side_of(&self, key: &FlowKey, src: SocketAddr) -> Side {
        if key.is_lo(src) == self.client_is_lo {
            Side::Client
        } else {
            Side::Server
        }
    }

    fn amendment(&self, key: FlowKey) -> Amendment {
        Amendment { key, server_port: self.server_port, ..Amendment::default() }
    }
}

impl FlowTable {
    /// A segment on a recently closed tuple. An RST toward a side still in TIME_WAIT kills that
    /// socket when its sequence number is exactly the one the socket expects (RFC 5961 3.2, and
    /// what Linux's `tcp_timewait_state_process` checks; RFC 1337 TIME-WAIT assassination with the
    /// default `tcp_rfc1337=0`) and is ignored otherwise; either way the connection is amended.
    /// Anything else counts as a segment after the close.
    pub(super) fn late_segment(&mut self, key: FlowKey, seg: &Segment<'_>, sink: &mut dyn FlowSink) {
        let latest = self.latest_ts;
        let Some(stone) = self.tombstones.get_mut(&key) else { return };
        let sender = stone.side_of(&key, seg.src);
        let receiver = sender.peer().index();
        if !seg.flags.rst || !stone.time_wait[receiver] || latest - stone.closed_at > TIME_WAIT_SECONDS {
            self.counters.after_close += 1;
            return;
        }
        let mut amendment = stone.amendment(key);
        if seg.seq == stone.rcv_nxt[receiver] {
            stone.time_wait[receiver] = false;
            match sender.peer() {
                Side::Client => amendment.client_closed = true,
                Side::Server => amendment.server_closed = true,
            }
            if !stone.reset {
                stone.reset = true;
                amendment.rst_by = Some(sender);
            }
        } else {
            amendment.rst_ignored = 1;
        }
        sink.connection_amended(amendment);
    }

    /// A new SYN on a recently closed tuple recycles a TIME_WAIT socket on it (Linux accepts a SYN
    /// on a TIME_WAIT tuple from the peer, and with `tcp_tw_reuse` a client reuses its own): the
    /// old connection's TIME_WAIT sides end CLOSED and its record says `replaced`.
    pub(super) fn recycle(&mut self, key: FlowKey, sink: &mut dyn FlowSink) {
        let Some(stone) = self.tombstones.remove(&key) else { return };
        if !stone.time_wait.contains(&true) || self.latest_ts - stone.closed_at > TIME_WAIT_SECONDS {
            return;
        }
        let mut amendment = stone.amendment(key);
        amendment.client_closed = stone.time_wait[Side::Client.index()];
        amendment.server_closed = stone.time_wait[Side::Server.index()];
        amendment.replaced = true;
        sink.connection_amended(amendment);
    }

    /// Evicts connections while the table is full: the oldest half-open ones first, then the oldest.
    pub(super) fn make_room(&mut self, sink: &mut dyn FlowSink) {
        while self.open.len() >= self.max_connections {
            let victim = self.pick_victim();
            let Some(key) = victim else { break };
            if let Some(conn) = self.open.remove(&key) {
                self.counters.evicted += 1;
                finalise(conn, EndReason::Evicted, self.capture_start, &mut self.protocol_events, sink);
            }
        }
    }

    fn pick_victim(&mut self) -> Option<FlowKey> {
        // Drop queue entries of connections that already ended.
        while let Some(&(key, id)) = self.opened_order.front() {
            if self.open.get(&key).is_some_and(|c| c.id == id) {
                break;
            }
            self.opened_order.pop_front();
        }
        let half_open = self
            .opened_order
            .iter()
            .take(64)
            .find(|(key, id)| self.open.get(key).is_some_and(|c| c.id == *id && c.half_open()))
            .map(|(key, _)| *key);
        half_open.or_else(|| self.opened_order.pop_front().map(|(key, _)| key))
    }

    /// Keeps what ended connections leave behind proportional to the cap, not to the capture:
    /// the eviction queue drops its ended entries only at the front, and tombstones live for
    /// TOMBSTONE_TTL of capture time, so a flood of connections that end at once (refused SYNs,
    /// SYNs replacing each other on one tuple) would grow both without bound. Beyond `max_connections` tombstones the older half goes (their
    /// late segments then count as mid-stream connections rather than after_close).
    pub(super) fn bound_closed_state(&mut self) {
        if self.opened_order.len() > 2 * self.open.len() + ORDER_SLACK {
            let open = &self.open;
            self.opened_order.retain(|(key, id)| open.get(key).is_some_and(|c| c.id == *id));
        }
        if self.tombstones.len() <= self.max_connections {
            return;
        }
        self.sweep_tombstones();
        if self.tombstones.len() <= self.max_connections / 2 {
            return;
        }
        let mut times: Vec<f64> = self.tombstones.values().map(|stone| stone.closed_at).collect();
        let middle = times.len() / 2;
        let median = *times.select_nth_unstable_by(middle, f64::total_cmp).1;
        self.tombstones.retain(|_, stone| stone.closed_at > median);
    }

    pub(super) fn sweep_tombstones(&mut self) {
        let horizon = self.latest_ts - TOMBSTONE_TTL;
        self.tombstones.retain(|_, stone| stone.closed_at >= horizon);
        self.last_sweep_ts = self.latest_ts;
    }
}
