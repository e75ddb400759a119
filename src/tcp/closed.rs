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
use super::state::TcpState;
use super::{Amendment, EndReason, FlowSink, FlowTable};
use crate::decode::Segment;
use crate::wire::SeqNumber;
use crate::wire::Side;
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
            if self.open.holds(&key, id) {
                break;
            }
            self.opened_order.pop_front();
        }
        let half_open =
            self.opened_order.iter().take(64).find(|(key, id)| self.open.id_and_half_open(key) == Some((*id, true))).map(|(key, _)| *key);
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
            self.opened_order.retain(|(key, id)| open.holds(key, *id));
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

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use super::ORDER_SLACK;
    use crate::report::{ConnectionRecord, Handshake};
    use crate::wire::SeqNumber;

    // CLOSED: late segments, eviction and the bounds on what closed connections leave.

    #[test]
    fn test_late_ack_after_close_is_not_a_new_connection() {
        let mut segs = opened();
        segs.extend([
            (0.01, true, "F.", 1101, 5201, 0),
            (0.011, false, "F.", 5201, 1102, 0),
            (0.012, true, ".", 1102, 5202, 0),
            (0.2, true, ".", 1102, 5202, 0),
        ]);
        let r = run(&segs);
        assert_eq!(r.0.len(), 1);
    }

    #[test]
    fn test_table_full_evicts_oldest_half_open_first() {
        let mut table = FlowTable::new(Some(8080), 2);
        let mut sink = Records::default();
        let mk = |port: u16, f: &str, seq: u32| Segment {
            ts: f64::from(port),
            src: format!("127.0.0.1:{port}").parse().unwrap(),
            dst: S.parse().unwrap(),
            flags: flags(f),
            seq: SeqNumber(seq),
            ack: SeqNumber(0),
            window: 512,
            window_scale: None,
            payload: &[],
            wire_len: 0,
        };
        table.process(&mk(1, ".", 10), &mut sink); // mid-stream, established: not half-open
        table.process(&mk(2, "S", 10), &mut sink); // half-open
        table.process(&mk(3, "S", 10), &mut sink); // table full: evicts port 2's
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].client.to_string(), "127.0.0.1:2");
        assert_eq!(sink.0[0].end, EndReason::Evicted);
        assert_eq!(table.counters().evicted, 1);
    }

    #[test]
    fn test_refused_flood_keeps_closed_state_bounded() {
        // 5,000 refused connections (SYN, RST-ACK) at one instant: each closes at once, so the
        // table never fills and nothing is evicted; what they leave behind must stay bounded.
        let mut table = FlowTable::new(Some(8080), 100);
        let mut sink = Records::default();
        for i in 0..5000u32 {
            let client: SocketAddr = format!("10.{}.{}.{}:40000", i >> 16, (i >> 8) & 255, i & 255).parse().unwrap();
            let server: SocketAddr = S.parse().unwrap();
            let seg = |src, dst, f: &str, seq, ack| Segment {
                ts: 1.0,
                src,
                dst,
                flags: flags(f),
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                window: 512,
                window_scale: None,
                payload: &[],
                wire_len: 0,
            };
            table.process(&seg(client, server, "S", i, 0), &mut sink);
            table.process(&seg(server, client, "R.", 0, i.wrapping_add(1)), &mut sink);
        }
        // Every connection was reported as closed by the server's RST...
        assert_eq!(sink.0.len(), 5000);
        assert!(sink.0.iter().all(|c| c.end == EndReason::Closed && c.rst_by == Some(Side::Server)));
        assert_eq!(table.counters().evicted, 0);
        // ...and neither the eviction queue nor the tombstones grew with them: the queue is
        // compacted past 2 × 0 open + ORDER_SLACK entries, the tombstones past 100 (the cap).
        assert_eq!(table.open_connections(), 0);
        assert!(table.opened_order.len() <= ORDER_SLACK + 1, "{}", table.opened_order.len());
        assert!(table.tombstones.len() <= 100, "{}", table.tombstones.len());
    }

    #[test]
    fn test_syns_replacing_each_other_on_one_tuple_keep_the_queue_bounded() {
        // 5,000 SYNs from one client port, each with a new ISN: each replaces the previous connection.
        let mut table = FlowTable::new(Some(8080), 100);
        let mut sink = Records::default();
        let payload: &[u8] = &[];
        for i in 0..5000u32 {
            let seg = Segment {
                ts: 1.0,
                src: C.parse().unwrap(),
                dst: S.parse().unwrap(),
                flags: flags("S"),
                seq: SeqNumber(i * 1000),
                ack: SeqNumber(0),
                window: 512,
                window_scale: None,
                payload,
                wire_len: 0,
            };
            table.process(&seg, &mut sink);
        }
        assert_eq!(table.open_connections(), 1);
        // 4,999 replaced; the queue holds one live entry plus at most ORDER_SLACK stale ones.
        assert!(table.opened_order.len() <= ORDER_SLACK + 1, "{}", table.opened_order.len());
        table.finish(&mut sink);
        assert_eq!(sink.0.len(), 5000);
        assert_eq!(sink.0.iter().filter(|c| c.end == EndReason::Replaced).count(), 4999);
    }

    // TIME_WAIT: an RST or a new SYN on a recently closed tuple amends its record.

    /// Records with their amendments applied, as the report builder applies them, and the counters.
    #[derive(Default)]
    struct Amended(Vec<ConnectionRecord>, Vec<Amendment>);
    impl FlowSink for Amended {
        fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) {
            self.0.push(ConnectionRecord::from_facts(facts, protocol, end, capture_start));
        }
        fn connection_amended(&mut self, amendment: Amendment) {
            if let Some(record) = self.0.iter_mut().rev().find(|r| r.key() == amendment.key) {
                amendment.apply(record);
            }
            self.1.push(amendment);
        }
    }

    /// As [`run`], with the amendments applied to the records, and the table's counters.
    fn run_amended(segments: &[(f64, bool, &'static str, u32, u32, u32)]) -> (Amended, FlowCounters) {
        let mut sink = Amended::default();
        let table = feed(&plain(segments), &mut sink);
        (sink, table.counters())
    }

    /// `opened()`, then the client closes first: client FIN, server FIN, last ACK. The client is in
    /// TIME_WAIT expecting the server's byte 5202; the server expects the client's byte 1102.
    fn closed_by_client() -> Vec<(f64, bool, &'static str, u32, u32, u32)> {
        let mut segs = opened();
        segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.011, false, "F.", 5201, 1102, 0), (0.012, true, ".", 1102, 5202, 0)]);
        segs
    }

    #[test]
    fn test_rst_after_both_fins_ends_time_wait_closed() {
        // A stale ACK from the client's tuple reaches the server, whose socket is gone: the server
        // answers RST with seq = the ACK's ack number, 5202, which the client's TIME_WAIT expects.
        let mut segs = closed_by_client();
        segs.extend([(5.0, true, ".", 1102, 5202, 0), (5.0001, false, "R", 5202, 0, 0)]);
        let (r, counters) = run_amended(&segs);
        assert_eq!(r.0.len(), 1);
        let c = &r.0[0];
        assert_eq!((c.client_state, c.server_state), (TcpState::CLOSED, TcpState::CLOSED));
        assert_eq!(c.rst_by, Some(Side::Server));
        assert_eq!((c.end, c.rst_ignored), (EndReason::Closed, 0));
        let key = FlowKey::of(C.parse().unwrap(), S.parse().unwrap());
        assert_eq!(
            r.1,
            vec![Amendment { key, server_port: 8080, client_closed: true, rst_by: Some(Side::Server), ..Amendment::default() }]
        );
        // The stale ACK is a segment after the close; the RST is the connection's.
        assert_eq!(counters.after_close, 1);
    }

    #[test]
    fn test_rst_after_both_fins_with_another_sequence_number_is_ignored() {
        // In the window but not RCV.NXT (RFC 5961 3.2: no reset), and far outside it.
        let mut segs = closed_by_client();
        segs.extend([(5.0, false, "R", 5203, 0, 0), (5.1, false, "R", 5202 + 10_000_000, 0, 0)]);
        let (r, counters) = run_amended(&segs);
        let c = &r.0[0];
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
        assert_eq!((c.rst_by, c.rst_ignored), (None, 2));
        assert_eq!(counters.after_close, 0);
    }

    #[test]
    fn test_rst_toward_the_closed_side_after_both_fins_is_after_close() {
        // The server side is CLOSED (no socket): an RST to it ends nothing.
        let mut segs = closed_by_client();
        segs.push((5.0, true, "R", 1102, 0, 0));
        let (r, counters) = run_amended(&segs);
        assert_eq!((r.0[0].client_state, r.0[0].rst_by), (TcpState::TIME_WAIT, None));
        assert!(r.1.is_empty());
        assert_eq!(counters.after_close, 1);
    }

    #[test]
    fn test_rst_after_time_wait_expired_changes_nothing() {
        let mut segs = closed_by_client();
        segs.push((60.1, false, "R", 5202, 0, 0));
        let (r, counters) = run_amended(&segs);
        assert_eq!((r.0[0].client_state, r.0[0].rst_by), (TcpState::TIME_WAIT, None));
        assert!(r.1.is_empty());
        assert_eq!(counters.after_close, 1);
    }

    #[test]
    fn test_rst_after_simultaneous_close_ends_only_the_receivers_time_wait() {
        let mut segs = opened();
        segs.extend([
            (0.01, true, "F.", 1101, 5201, 0),
            (0.01, false, "F.", 5201, 1101, 0),
            (0.011, true, ".", 1102, 5202, 0),
            (0.011, false, ".", 5202, 1102, 0),
            (1.0, false, "R", 5202, 0, 0),
            (1.1, true, "R", 1102, 0, 0),
        ]);
        let (r, _) = run_amended(&segs);
        let c = &r.0[0];
        // Both TIME_WAITs killed, one RST each; the connection's RST is the first one's.
        assert_eq!((c.client_state, c.server_state), (TcpState::CLOSED, TcpState::CLOSED));
        assert_eq!(c.rst_by, Some(Side::Server));
        assert_eq!(r.1.iter().filter(|a| a.rst_by.is_some()).count(), 1);
    }

    #[test]
    fn test_syn_on_time_wait_tuple_replaces_it() {
        let mut segs = closed_by_client();
        segs.extend(
            opened()
                .into_iter()
                .map(|(ts, c, f, s, a, l)| (ts + 1.0, c, f, s.wrapping_add(90_000), a.wrapping_add(if a == 0 { 0 } else { 90_000 }), l)),
        );
        let (r, _) = run_amended(&segs);
        assert_eq!(r.0.len(), 2);
        let old = &r.0[0];
        assert_eq!((old.client_state, old.server_state, old.end), (TcpState::CLOSED, TcpState::CLOSED, EndReason::Replaced));
        assert_eq!(old.rst_by, None);
        assert_eq!((r.0[1].handshake, r.0[1].client_state), (Handshake::Complete, TcpState::ESTABLISHED));
        let key = FlowKey::of(C.parse().unwrap(), S.parse().unwrap());
        assert_eq!(r.1, vec![Amendment { key, server_port: 8080, client_closed: true, replaced: true, ..Amendment::default() }]);
    }

    #[test]
    fn test_syn_after_time_wait_expired_leaves_the_old_record() {
        let mut segs = closed_by_client();
        segs.push((61.0, true, "S", 900_000, 0, 0));
        let (r, _) = run_amended(&segs);
        assert_eq!(r.0.len(), 2);
        assert_eq!((r.0[0].client_state, r.0[0].end), (TcpState::TIME_WAIT, EndReason::Closed));
        assert!(r.1.is_empty());
    }

    #[test]
    fn test_tombstone_older_than_its_ttl_is_not_consulted() {
        // 121 s after the close the tuple is forgotten, whether or not a sweep ran: a late ACK is a
        // new mid-stream connection, not a segment after the close.
        let mut segs = closed_by_client();
        segs.push((121.0, true, ".", 1102, 5202, 0));
        let (r, counters) = run_amended(&segs);
        assert_eq!((r.0.len(), counters.after_close), (2, 0));
    }
}
