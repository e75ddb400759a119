//! The open connections, and the compact form of a connection that has only sent its SYN.
//!
//! Input: the flow table's lookups, insertions and removals by 4-tuple ([`super::FlowTable`]).
//! Output: each open connection, expanded to its full [`Connection`] when a segment needs more
//! than a SYN-only connection holds.
//!
//! Memory follows the open connections, and under a SYN flood nearly all of them are half-open,
//! so state grows to full size only when a connection is answered or carries data (Zeek's bounded
//! state is the model): a connection opened by a plain SYN (no payload, no other flag) is kept as a
//! 40-byte [`SynOnly`] until its next segment that is not a retransmission of that SYN. The map
//! from the 4-tuple holds a 4-byte index into a slab of 40-byte slots (a full connection is boxed
//! there), so that the map's slots stay 40 bytes whatever the connection's state: a SYN-only
//! connection costs about 130 bytes with the map's spare room, and its eviction queue entry.

use super::connection::Connection;
use super::key::FlowKey;
use super::state::StateEvent;
use crate::decode::Segment;
use crate::protocol::keylog::TlsKeys;
use crate::protocol::ProtocolWatcher;
use crate::wire::SeqNumber;
use crate::wire::Side;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A connection of which only the client's first SYN (and its retransmissions, same ISN) has been
/// seen, each a plain SYN (see [`is_plain_syn`]): everything the full [`Connection`] would hold
/// after them (see [`SynOnly::expand`]). Addresses come from the 4-tuple key.
#[derive(Clone, Copy, Debug)]
pub(super) struct SynOnly {
    id: u64,
    first_ts: f64,
    /// The latest timestamp of its SYNs.
    last_ts: f64,
    isn: SeqNumber,
    /// SYNs seen: the first and its retransmissions.
    syns: u32,
    /// The window field of the latest SYN.
    window: u16,
    /// The first SYN's window scale option.
    window_scale: Option<u8>,
    /// The client is the key's lower endpoint.
    client_is_lo: bool,
    /// Both endpoints are IPv4 addresses (the key holds them IPv4-mapped).
    v4: bool,
}

/// A SYN without ACK, FIN or RST and without payload: on a new connection it only moves the client
/// to SYN_SENT and sets its initial sequence number, window and window scale.
pub(super) fn is_plain_syn(seg: &Segment<'_>) -> bool {
    let f = seg.flags;
    f.syn && !f.ack && !f.fin && !f.rst && seg.wire_len == 0 && seg.payload.is_empty()
}

impl SynOnly {
    /// The compact form of a new connection `id` opened by `seg`, a plain SYN from its client;
    /// `None` for an IPv6 address with a flow label or a scope (the key does not hold them).
    pub(super) fn new(id: u64, seg: &Segment<'_>, key: &FlowKey) -> Option<SynOnly> {
        let plain_v6 = |addr: SocketAddr| match addr {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(v6) => v6.flowinfo() == 0 && v6.scope_id() == 0,
        };
        let v4 = seg.src.is_ipv4();
        if !is_plain_syn(seg) || !plain_v6(seg.src) || !plain_v6(seg.dst) || seg.dst.is_ipv4() != v4 {
            return None;
        }
        Some(SynOnly {
            id,
            first_ts: seg.ts,
            last_ts: seg.ts,
            isn: seg.seq,
            syns: 1,
            window: seg.window,
            window_scale: seg.window_scale,
            client_is_lo: key.is_lo(seg.src),
            v4,
        })
    }

    fn client(&self, key: &FlowKey) -> SocketAddr {
        key.endpoint(self.client_is_lo, self.v4)
    }

    /// True when `seg` is a plain retransmission of the SYN, which only counts a packet, moves the
    /// last timestamp and sets the window: [`SynOnly::retransmitted`] takes it.
    pub(super) fn takes(&self, seg: &Segment<'_>, key: &FlowKey) -> bool {
        is_plain_syn(seg) && seg.seq == self.isn && self.syns < u32::MAX && seg.src == self.client(key)
    }

    /// A retransmission of the SYN (see [`SynOnly::takes`]).
    pub(super) fn retransmitted(&mut self, seg: &Segment<'_>) {
        self.syns += 1;
        if seg.ts > self.last_ts {
            self.last_ts = seg.ts;
        }
        self.window = seg.window;
    }

    /// The full connection: what [`Connection::new`] and the connection update of each SYN make;
    /// its protocol watcher has the analysis's TLS secrets, when there are some.
    pub(super) fn expand(&self, key: &FlowKey, tls_keys: Option<&Arc<TlsKeys>>) -> Box<Connection> {
        let (client, server) = (self.client(key), key.endpoint(!self.client_is_lo, self.v4));
        let mut conn = Box::new(Connection::new(self.id, client, server, self.first_ts));
        if let Some(keys) = tls_keys {
            conn.watcher = ProtocolWatcher::with_tls_keys(Some(Arc::clone(keys)));
        }
        conn.last_ts = self.last_ts;
        conn.syn_seen = true;
        let end = conn.end_mut(Side::Client);
        end.packets = u64::from(self.syns);
        end.isn = Some(self.isn);
        end.window_scale = self.window_scale;
        // No scaling on a SYN (RFC 7323).
        end.window = u32::from(self.window);
        end.next_seq = Some(self.isn.wrapping_add(1));
        end.last_advance_ts = Some(self.first_ts);
        end.state.apply(StateEvent::SendSyn);
        conn.watcher.on_syn(Side::Client, self.isn);
        conn
    }
}

/// An open connection in the slab, or a vacant slot (naming the next vacant one).
pub(super) enum Slot {
    Vacant(Option<u32>),
    Syn(SynOnly),
    Full(Box<Connection>),
}

impl Slot {
    fn id(&self) -> Option<u64> {
        match self {
            Slot::Vacant(_) => None,
            Slot::Syn(syn) => Some(syn.id),
            Slot::Full(conn) => Some(conn.id),
        }
    }

    /// The full connection, expanded from its SYN-only form first if need be (with the TLS
    /// secrets for its watcher: it is about to carry its first segment after the SYN).
    pub(super) fn full(&mut self, key: &FlowKey, tls_keys: Option<&Arc<TlsKeys>>) -> Option<&mut Connection> {
        if let Slot::Syn(syn) = self {
            *self = Slot::Full(syn.expand(key, tls_keys));
        }
        match self {
            Slot::Full(conn) => Some(conn),
            Slot::Vacant(_) | Slot::Syn(_) => None,
        }
    }

    /// The connection in full (`None` for a vacant slot).
    pub(super) fn into_connection(self, key: &FlowKey) -> Option<Box<Connection>> {
        match self {
            Slot::Vacant(_) => None,
            // Never answered: no payload for a watcher to read.
            Slot::Syn(syn) => Some(syn.expand(key, None)),
            Slot::Full(conn) => Some(conn),
        }
    }
}

/// The open connections by 4-tuple: a map to slab indices, and the slab.
#[derive(Default)]
pub(super) struct OpenConnections {
    index: HashMap<FlowKey, u32, ahash::RandomState>,
    slots: Vec<Slot>,
    /// The first vacant slot.
    vacant: Option<u32>,
    /// Entries the index holds without growing when no erased marks take room.
    index_room: usize,
}

impl OpenConnections {
    /// Most connections open at once: slab indices are 32-bit.
    pub(super) const MAX: usize = u32::MAX as usize;

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The connection open on `key`, in whichever form it is.
    pub(super) fn slot_mut(&mut self, key: &FlowKey) -> Option<&mut Slot> {
        let &at = self.index.get(key)?;
        self.slots.get_mut(at as usize)
    }

    /// The number of the connection open on `key`, and whether it is half-open.
    pub(super) fn id_and_half_open(&self, key: &FlowKey) -> Option<(u64, bool)> {
        let &at = self.index.get(key)?;
        match self.slots.get(at as usize)? {
            Slot::Vacant(_) => None,
            Slot::Syn(syn) => Some((syn.id, true)),
            Slot::Full(conn) => Some((conn.id, conn.half_open())),
        }
    }

    /// True when the connection open on `key` has number `id`.
    pub(super) fn holds(&self, key: &FlowKey, id: u64) -> bool {
        self.index.get(key).and_then(|&at| self.slots.get(at as usize)).and_then(Slot::id) == Some(id)
    }

    /// Opens a connection on `key` (none is open on it); at most [`Self::MAX`] are.
    pub(super) fn insert(&mut self, key: FlowKey, slot: Slot) {
        if self.index.len() == self.index.capacity() {
            self.clear_erased_marks();
        }
        let at = match self.vacant {
            Some(at) => {
                if let Some(Slot::Vacant(next)) = self.slots.get(at as usize) {
                    self.vacant = *next;
                }
                self.slots[at as usize] = slot;
                at
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, at);
        self.index_room = self.index_room.max(self.index.capacity());
    }

    /// Clears the erased marks out of the index. A hash table marks some of the entries it erases
    /// instead of emptying them, and the marks take room as entries do until the table is rebuilt:
    /// under a flood at the cap (a connection evicted for each new one) `std`'s map would double in
    /// size to make room, for as many entries as before. Here its entries are taken out and put
    /// back into the same table, cleared, when the marks have filled it; a table that its entries
    /// fill grows on the insert as before.
    fn clear_erased_marks(&mut self) {
        if self.index.len() < self.index_room {
            let entries: Vec<(FlowKey, u32)> = self.index.drain().collect();
            self.index.extend(entries);
        }
    }

    /// Closes the connection open on `key`, handing it over in full.
    pub(super) fn remove(&mut self, key: &FlowKey) -> Option<Box<Connection>> {
        let at = self.index.remove(key)?;
        let slot = std::mem::replace(&mut self.slots[at as usize], Slot::Vacant(self.vacant));
        self.vacant = Some(at);
        slot.into_connection(key)
    }

    /// Every open connection's key and slot, in the order they opened; the table is left empty.
    pub(super) fn drain_in_order(&mut self) -> Vec<(FlowKey, Slot)> {
        let mut slots = std::mem::take(&mut self.slots);
        self.vacant = None;
        let mut open: Vec<(FlowKey, Slot)> =
            self.index.drain().map(|(key, at)| (key, std::mem::replace(&mut slots[at as usize], Slot::Vacant(None)))).collect();
        open.sort_by_key(|(_, slot)| slot.id());
        open
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use super::{OpenConnections, Slot, SynOnly};
    use crate::decode::Segment;
    use crate::wire::SeqNumber;

    /// A sink that asks for every segment, so that the table never keeps a SYN-only connection.
    #[derive(Default)]
    struct Showing(Records);

    impl FlowSink for Showing {
        fn wants_segments(&self) -> bool {
            true
        }
        fn event(&mut self, id: u64, event: &FlowEvent) {
            if !matches!(event, FlowEvent::Segment(_)) {
                self.0.event(id, event);
            }
        }
        fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) {
            self.0.connection_ended(facts, protocol, end, capture_start);
        }
    }

    /// `(ts, from_client, flags, seq, ack, window, window scale)` between `client` and `server`.
    type Seg = (f64, bool, &'static str, u32, u32, u16, Option<u8>);

    /// The records and events of `segments` through a table with SYN-only connections, and
    /// through one without (a cap of 2, so that the third connection evicts).
    fn both_ways(client: &str, server: &str, segments: &[Seg]) -> (String, String) {
        let mut compact = Records::default();
        let mut full = Showing::default();
        for sink in [&mut compact as &mut dyn FlowSink, &mut full] {
            let mut table = FlowTable::new(Some(8080), 2);
            for &(ts, from_client, f, seq, ack, window, window_scale) in segments {
                let (src, dst) = if from_client { (client, server) } else { (server, client) };
                let seg = Segment {
                    ts,
                    src: src.parse().unwrap(),
                    dst: dst.parse().unwrap(),
                    flags: flags(f),
                    seq: SeqNumber(seq),
                    ack: SeqNumber(ack),
                    window,
                    window_scale,
                    payload: &[],
                    wire_len: 0,
                };
                table.process(&seg, sink);
            }
            table.finish(sink);
        }
        let show = |r: &Records| format!("{}\n{:?}", serde_json::to_string(&r.0).unwrap(), r.1);
        (show(&compact), show(&full.0))
    }

    #[test]
    fn test_syn_only_connection_expands_to_what_its_syns_make() {
        let cases: [&[Seg]; 5] = [
            // Retransmitted SYNs with other windows, one captured with an earlier timestamp.
            &[(1.0, true, "S", 1000, 0, 512, Some(7)), (2.0, true, "S", 1000, 0, 1024, Some(7)), (1.5, true, "S", 1000, 0, 64, None)],
            // Answered, acknowledged and closed, window scales on both SYNs.
            &[
                (1.0, true, "S", 1000, 0, 512, Some(7)),
                (1.1, false, "S.", 5000, 1001, 600, Some(3)),
                (1.2, true, ".", 1001, 5001, 70, None),
                (1.3, true, "F.", 1001, 5001, 70, None),
                (1.4, false, "F.", 5001, 1002, 80, None),
                (1.5, true, ".", 1002, 5002, 70, None),
            ],
            // Replaced by a SYN with another ISN, then refused by an RST.
            &[(1.0, true, "S", 1000, 0, 512, None), (3.0, true, "S", 9000, 0, 512, None), (3.1, false, "R.", 0, 9001, 0, None)],
            // A SYN from the server's side, and a keep-alive-like ACK with nothing before it.
            &[(1.0, true, "S", 1000, 0, 512, None), (1.1, false, "S", 7000, 0, 512, None), (60.0, true, ".", 1000, 0, 512, None)],
            // A SYN-ACK with an acknowledgement that does not answer the SYN.
            &[(1.0, true, "S", 1000, 0, 512, None), (1.1, false, "S.", 5000, 77, 600, None), (1.2, true, "S", 1000, 0, 512, None)],
        ];
        for (client, server) in [("127.0.0.1:40000", "127.0.0.1:8080"), ("[::1]:40000", "[::1]:8080"), ("10.0.0.9:8080", "10.0.0.1:9")] {
            for segments in cases {
                let (compact, full) = both_ways(client, server, segments);
                assert_eq!(compact, full, "{client} -> {server}: {segments:?}");
            }
        }
    }

    #[test]
    fn test_half_open_flood_evicts_syn_only_connections_as_full_ones() {
        // Three clients, a cap of 2: the first SYN-only connection is evicted, the others end open.
        let mut compact = Records::default();
        let mut table = FlowTable::new(Some(8080), 2);
        for port in [40000u16, 40001, 40002] {
            let seg = Segment {
                ts: f64::from(port - 40000),
                src: format!("127.0.0.1:{port}").parse().unwrap(),
                dst: S.parse().unwrap(),
                flags: flags("S"),
                seq: SeqNumber(1000),
                ack: SeqNumber(0),
                window: 512,
                window_scale: None,
                payload: &[],
                wire_len: 0,
            };
            table.process(&seg, &mut compact);
        }
        table.finish(&mut compact);
        let ends: Vec<(String, EndReason)> = compact.0.iter().map(|c| (c.client.to_string(), c.end)).collect();
        assert_eq!(
            ends,
            [
                ("127.0.0.1:40000".to_string(), EndReason::Evicted),
                ("127.0.0.1:40001".to_string(), EndReason::OpenAtEnd),
                ("127.0.0.1:40002".to_string(), EndReason::OpenAtEnd)
            ]
        );
        assert!(compact.0.iter().all(|c| c.client_state == TcpState::SYN_SENT && c.packets == 1));
    }

    #[test]
    fn test_churn_at_a_steady_count_keeps_the_index_at_its_size() {
        // 800 open connections, then 100,000 times one closed and one opened: the index never
        // needs room for more than 801 (hashbrown's table of 1,024 buckets holds 896).
        let key = |i: u32| FlowKey::of(format!("10.{}.{}.{}:4000", i >> 16, (i >> 8) & 255, i & 255).parse().unwrap(), S.parse().unwrap());
        let syn = |i: u32| {
            let seg = Segment {
                ts: 0.0,
                src: "10.0.0.1:4000".parse().unwrap(),
                dst: S.parse().unwrap(),
                flags: flags("S"),
                seq: SeqNumber(i),
                ack: SeqNumber(0),
                window: 512,
                window_scale: None,
                payload: &[],
                wire_len: 0,
            };
            Slot::Syn(SynOnly::new(u64::from(i), &seg, &key(i)).unwrap())
        };
        let mut open = OpenConnections::default();
        for i in 0..800 {
            open.insert(key(i), syn(i));
        }
        let mut most = 0;
        for i in 800..100_800 {
            assert!(open.remove(&key(i - 800)).is_some());
            open.insert(key(i), syn(i));
            most = most.max(open.index.capacity());
        }
        assert_eq!(open.len(), 800);
        assert!(most < 1000, "the index grew to room for {most}");
    }

    #[test]
    fn test_open_connection_slots_are_forty_bytes() {
        // What a half-open connection costs: a map slot (key and index), a slab slot, a queue entry.
        assert_eq!(std::mem::size_of::<FlowKey>(), 36);
        assert_eq!(std::mem::size_of::<(FlowKey, u32)>(), 40);
        assert_eq!(std::mem::size_of::<SynOnly>(), 40);
        assert_eq!(std::mem::size_of::<Slot>(), 40);
    }
}
