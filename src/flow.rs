//! The flow table: rebuilds TCP connections from segments.
//!
//! A map from the 4-tuple to the open connection. A SYN whose initial sequence number differs from
//! the open connection's starts a new connection on the same tuple (Linux reuses client ports), a
//! retransmitted SYN (same ISN) counts once. A connection is finalised as soon as it ends (both FINs
//! acknowledged, or an acceptable RST) and handed to the [`FlowSink`], so memory follows the open
//! connections. A small tombstone per recently closed tuple catches late segments (a retransmitted
//! last ACK) so they do not pass for new mid-stream connections, and remembers which side is in
//! TIME_WAIT: an RST at exactly the sequence number that socket expects kills it (RFC 1337
//! TIME-WAIT assassination, Linux's default), and a new SYN on the tuple recycles it; either
//! amends the connection's record ([`FlowSink::connection_amended`]).

use crate::decode::{ip_bits, Segment};
use crate::protocol::keylog::TlsKeys;
use crate::protocol::{Protocol, ProtocolEvent, ProtocolSummary, ProtocolWatcher};
use crate::report::close_cause::{self, CloseFacts};
use crate::report::{Amendment, ConnectionRecord, EndReason, FinFirst, Handshake, PerSide, RequestRecord};
use crate::seq::SeqNumber;
use crate::side::Side;
use crate::tcp_state::{StateEvent, TcpState};
use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

/// A segment counts as a keep-alive probe only after its sender has sent nothing new in its sequence
/// space for this long (seconds). Linux's smallest keep-alive time is 1 s; retransmissions of the
/// last byte come sooner than this after the data.
const KEEPALIVE_MIN_IDLE: f64 = 0.5;
/// A SYN seen at most this long (seconds) after the SYN-ACK that acknowledges it is that
/// connection's SYN, captured out of order (merged capture points, several capture CPUs).
const REORDER_WINDOW: f64 = 1.0;
/// Tombstones of closed tuples are forgotten after this much capture time: late segments within it
/// count as `after_close`.
const TOMBSTONE_TTL: f64 = 120.0;
/// The longest a tombstone stays in the table after its connection's last segment, whenever the
/// sweeps (every quarter TTL) run: what a parallel analysis bounds the tombstones by.
pub const TOMBSTONE_LIFETIME_MAX: f64 = TOMBSTONE_TTL * 1.25;
/// How long a TIME_WAIT socket lasts, in capture time (Linux's TCP_TIMEWAIT_LEN, 60 s): within it
/// an RST or a new SYN on the tuple can end it and amend the connection's record.
pub const TIME_WAIT_SECONDS: f64 = 60.0;
/// Entries of ended connections the eviction queue may hold beyond twice the open connections
/// before it is compacted.
const ORDER_SLACK: usize = 1024;

/// Something that happened, for live views and ladder diagrams.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowEvent {
    /// A new connection (its SYN, or its first segment when mid-stream) between `client` and `server`.
    Opened { handshake: bool, client: SocketAddr, server: SocketAddr },
    /// A segment of the connection, with both sides' states after it.
    Segment(SegmentNote),
    /// A keep-alive probe from a side.
    KeepAlive { side: Side },
    /// A side sent its first FIN.
    Fin { side: Side },
    /// An acceptable RST from a side.
    Rst { side: Side },
    /// The protocol watcher found a message.
    Protocol { side: Side, event: ProtocolEvent },
}

/// One segment as the ladder diagram draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentNote {
    pub ts: f64,
    pub side: Side,
    pub flags: crate::decode::TcpFlags,
    /// Sequence and acknowledgement numbers relative to the sender's and the receiver's ISN.
    pub rel_seq: u32,
    pub rel_ack: Option<u32>,
    pub len: u32,
    pub keepalive: bool,
    pub client_state: TcpState,
    pub server_state: TcpState,
    /// A short label from the payload's first line: `GET /hello` for a request line, `200 OK` for a
    /// status line; `None` for other payloads.
    pub label: Option<String>,
}

/// Receives what the flow table finds.
pub trait FlowSink {
    /// True when the sink wants a [`FlowEvent::Segment`] for every segment (ladder diagrams).
    fn wants_segments(&self) -> bool {
        false
    }
    /// An event on connection `id`.
    fn event(&mut self, _id: u64, _event: &FlowEvent) {}
    /// A connection has ended (or the capture did): its final record.
    fn connection_ended(&mut self, record: ConnectionRecord);
    /// A connection already ended changed after its close: an RST killed its TIME_WAIT, or a new
    /// SYN recycled its tuple. Only records that were [`ConnectionRecord::in_time_wait`] are amended,
    /// within [`TIME_WAIT_SECONDS`] of capture time after their last segment.
    fn connection_amended(&mut self, _amendment: Amendment) {}
}

/// Counters of segments the table could not attribute to an open connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowCounters {
    pub after_close: u64,
    pub evicted: u64,
}

/// Canonical 4-tuple: each endpoint as a 128-bit address (IPv4 mapped into IPv6) and a port, the
/// lower endpoint first so both directions map to one key. Plain integers: cheap to hash and compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    lo_ip: u128,
    hi_ip: u128,
    /// Low endpoint's port in the high 16 bits, high endpoint's in the low 16.
    ports: u32,
}

/// The key folded into one word before the map's hasher mixes it, instead of the 36 bytes field by
/// field (callgrind: 0.7 % fewer instructions in all), keeping what tells connections apart (client
/// ports, addresses) in different bits.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let fold = |ip: u128| (ip as u64) ^ ((ip >> 64) as u64).rotate_left(32);
        state.write_u64(fold(self.lo_ip) ^ fold(self.hi_ip).rotate_left(17) ^ (u64::from(self.ports) << 24));
    }
}

impl FlowKey {
    /// The key of the connection between `a` and `b`, whichever is which.
    pub fn of(a: SocketAddr, b: SocketAddr) -> FlowKey {
        let (a, b) = ((ip_bits(a), a.port()), (ip_bits(b), b.port()));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey { lo_ip: lo.0, hi_ip: hi.0, ports: (u32::from(lo.1) << 16) | u32::from(hi.1) }
    }

    /// True when `addr` is the key's lower endpoint.
    fn is_lo(&self, addr: SocketAddr) -> bool {
        ip_bits(addr) == self.lo_ip && u32::from(addr.port()) == self.ports >> 16
    }
}

/// What a closed tuple leaves behind (24 bytes, not the connection): enough to count its late
/// segments, and to amend its record when its TIME_WAIT socket meets an RST or a new SYN. The
/// record is named by its 4-tuple: a tuple has at most one connection that can still be amended
/// (a connection opens on it only after its tombstone is gone, recycled or expired).
#[derive(Clone, Copy, Debug)]
struct Tombstone {
    /// Timestamp of the segment that closed the connection.
    closed_at: f64,
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
    fn of(conn: &Connection, key: &FlowKey, closed_at: f64) -> Tombstone {
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

/// One side's sending half, as seen from its segments and the peer's acknowledgements.
#[derive(Clone, Debug)]
struct Endpoint {
    isn: Option<SeqNumber>,
    /// Next sequence number this side will send (highest seq + length seen).
    next_seq: Option<SeqNumber>,
    /// Highest acknowledgement this side has sent (of the peer's bytes).
    acked: Option<SeqNumber>,
    /// `acked` before its last increase.
    acked_before_last_step: Option<SeqNumber>,
    /// Receive window this side last advertised, in bytes (scaled once both SYNs showed the option).
    window: u32,
    window_scale: Option<u8>,
    fin_seq: Option<SeqNumber>,
    /// Acknowledgement number the FIN carried.
    fin_ack: Option<SeqNumber>,
    /// `fin_seq` was inferred from the peer's segments, this side's FIN not captured (yet).
    fin_inferred: bool,
    fin_acked: bool,
    /// A FIN seen before the data it follows: handed to the protocol watcher once that data came.
    fin_waiting_for_data: Option<SeqNumber>,
    state: TcpState,
    probes: u32,
    probe_times: (Option<f64>, Option<f64>),
    packets: u64,
    bytes: u64,
    /// When this side last sent something new in its sequence space (SYN, data, FIN).
    last_advance_ts: Option<f64>,
}

impl Endpoint {
    fn new() -> Endpoint {
        Endpoint {
            isn: None,
            next_seq: None,
            acked: None,
            acked_before_last_step: None,
            window: 0,
            window_scale: None,
            fin_seq: None,
            fin_ack: None,
            fin_inferred: false,
            fin_acked: false,
            fin_waiting_for_data: None,
            state: TcpState::CLOSED,
            probes: 0,
            probe_times: (None, None),
            packets: 0,
            bytes: 0,
            last_advance_ts: None,
        }
    }
}

/// An open connection.
struct Connection {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    first_ts: f64,
    last_ts: f64,
    ends: [Endpoint; 2],
    syn_seen: bool,
    syn_ack_seen: bool,
    /// Acknowledgement number of the server's SYN-ACK, to match a SYN captured after it.
    syn_ack_ack: Option<SeqNumber>,
    handshake_acked: bool,
    fin_first: Option<Side>,
    simultaneous_close: bool,
    rst_by: Option<Side>,
    rst_ignored: u32,
    watcher: ProtocolWatcher,
    /// Turns of payload: a client burst followed by a server burst is one exchange.
    exchanges: u32,
    last_payload_side: Option<Side>,
    last_response_ts: Option<f64>,
    first_fin_ts: Option<f64>,
    /// When the first FIN or acceptable RST came: the connection stopped being used.
    first_close_ts: Option<f64>,
    /// Requests sent and answered in full when the first FIN came.
    at_first_fin: Option<(u32, u32)>,
}

impl Connection {
    fn new(id: u64, client: SocketAddr, server: SocketAddr, ts: f64) -> Connection {
        Connection {
            id,
            client,
            server,
            first_ts: ts,
            last_ts: ts,
            ends: [Endpoint::new(), Endpoint::new()],
            syn_seen: false,
            syn_ack_seen: false,
            syn_ack_ack: None,
            handshake_acked: false,
            fin_first: None,
            simultaneous_close: false,
            rst_by: None,
            rst_ignored: 0,
            watcher: ProtocolWatcher::new(),
            exchanges: 0,
            last_payload_side: None,
            last_response_ts: None,
            first_fin_ts: None,
            first_close_ts: None,
            at_first_fin: None,
        }
    }

    fn side_of(&self, src: SocketAddr) -> Side {
        if src == self.client {
            Side::Client
        } else {
            Side::Server
        }
    }

    fn end(&self, side: Side) -> &Endpoint {
        &self.ends[side.index()]
    }

    fn end_mut(&mut self, side: Side) -> &mut Endpoint {
        &mut self.ends[side.index()]
    }

    fn transition(&mut self, side: Side, event: StateEvent) {
        let end = self.end_mut(side);
        end.state = end.state.next(event);
    }

    /// Ended by an acceptable RST, or by both FINs acknowledged. A FIN only inferred (one-direction
    /// captures) does not end the connection: its segments may still come, captured late.
    fn closed(&self) -> bool {
        self.rst_by.is_some() || self.ends.iter().all(|e| e.fin_seq.is_some() && e.fin_acked && !e.fin_inferred)
    }

    fn half_open(&self) -> bool {
        self.syn_seen && !self.handshake_acked && self.ends.iter().all(|e| e.bytes == 0)
    }
}

/// The table of open connections.
pub struct FlowTable {
    open: HashMap<FlowKey, Box<Connection>, ahash::RandomState>,
    /// Closed tuples, to recognise late segments and end TIME_WAITs.
    tombstones: HashMap<FlowKey, Tombstone, ahash::RandomState>,
    /// Tuples in the order their connections opened, for eviction.
    opened_order: VecDeque<(FlowKey, u64)>,
    next_id: u64,
    server_port: Option<u16>,
    max_connections: usize,
    capture_start: Option<f64>,
    latest_ts: f64,
    last_sweep_ts: f64,
    counters: FlowCounters,
    protocol_events: Vec<ProtocolEvent>,
    /// TLS secrets (`--keylog`, pcapng secrets) for the connections' watchers.
    tls_keys: Option<Arc<TlsKeys>>,
}

impl FlowTable {
    /// A table that takes `server_port` (from `--port`) as the server side of mid-stream connections
    /// and keeps at most `max_connections` open.
    pub fn new(server_port: Option<u16>, max_connections: usize) -> FlowTable {
        FlowTable {
            open: HashMap::default(),
            tombstones: HashMap::default(),
            opened_order: VecDeque::new(),
            next_id: 1,
            server_port,
            max_connections: max_connections.max(1),
            capture_start: None,
            latest_ts: f64::MIN,
            last_sweep_ts: f64::MIN,
            counters: FlowCounters::default(),
            protocol_events: Vec::new(),
            tls_keys: None,
        }
    }

    /// The table's TLS connections are decrypted with `keys` when they hold their secrets.
    pub fn with_tls_keys(mut self, keys: Option<Arc<TlsKeys>>) -> FlowTable {
        self.tls_keys = keys;
        self
    }

    /// Epoch seconds of the first packet seen.
    pub fn capture_start(&self) -> Option<f64> {
        self.capture_start
    }

    /// Sets the first timestamp of the capture when its first packet went to another table (the
    /// workers of a parallel analysis share one capture).
    pub fn set_capture_start(&mut self, ts: f64) {
        self.capture_start.get_or_insert(ts);
    }

    /// Counters of segments outside open connections.
    pub fn counters(&self) -> FlowCounters {
        self.counters
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open.len()
    }

    /// Processes one segment. An open connection is found with one hash lookup.
    pub fn process(&mut self, seg: &Segment<'_>, sink: &mut dyn FlowSink) {
        self.capture_start.get_or_insert(seg.ts);
        self.observe_time(seg.ts);
        if self.latest_ts - self.last_sweep_ts > TOMBSTONE_TTL / 4.0 {
            self.sweep_tombstones();
        }
        let key = FlowKey::of(seg.src, seg.dst);
        let is_syn = seg.flags.syn && !seg.flags.ack;
        if let Entry::Occupied(mut open) = self.open.entry(key) {
            let conn = open.get_mut();
            let retransmitted_syn = conn.client == seg.src && conn.end(Side::Client).isn == Some(seg.seq);
            if !is_syn || retransmitted_syn || is_late_syn(conn, seg) {
                update(conn, seg, sink, &mut self.protocol_events);
                if conn.closed() {
                    self.tombstones.insert(key, Tombstone::of(conn, &key, seg.ts));
                    finalise(open.remove(), EndReason::Closed, self.capture_start, &mut self.protocol_events, sink);
                    self.bound_closed_state();
                }
                return;
            }
            // A SYN with another ISN on an open tuple: the old connection ends, a new one starts.
            finalise(open.remove(), EndReason::Replaced, self.capture_start, &mut self.protocol_events, sink);
        } else if self.tombstones.get(&key).is_some_and(|stone| self.latest_ts - stone.closed_at <= TOMBSTONE_TTL) {
            if !is_syn {
                self.late_segment(key, seg, sink);
                return;
            }
            self.recycle(key, sink);
        }
        self.tombstones.remove(&key);
        self.make_room(sink);
        let (client, server) = self.orient(seg);
        let id = self.next_id;
        self.next_id += 1;
        sink.event(id, &FlowEvent::Opened { handshake: is_syn, client, server });
        let mut conn = Box::new(Connection::new(id, client, server, seg.ts));
        conn.watcher = ProtocolWatcher::with_tls_keys(self.tls_keys.clone());
        update(&mut conn, seg, sink, &mut self.protocol_events);
        if conn.closed() {
            // Closed by its first segment (a lone RST).
            self.tombstones.insert(key, Tombstone::of(&conn, &key, seg.ts));
            finalise(conn, EndReason::Closed, self.capture_start, &mut self.protocol_events, sink);
        } else {
            self.open.insert(key, conn);
            self.opened_order.push_back((key, id));
        }
        self.bound_closed_state();
    }

    /// Moves the table's clock on to `ts` if later: tombstones age by the latest timestamp of the
    /// capture. A parallel worker, which sees only its share of the packets, is told the latest
    /// timestamp of the whole capture before each segment, so that it ages them as one thread does.
    pub fn observe_time(&mut self, ts: f64) {
        if ts > self.latest_ts {
            self.latest_ts = ts;
        }
    }

    /// A segment on a recently closed tuple. An RST toward a side still in TIME_WAIT kills that
    /// socket when its sequence number is exactly the one the socket expects (RFC 5961 3.2, and
    /// what Linux's `tcp_timewait_state_process` checks; RFC 1337 TIME-WAIT assassination with the
    /// default `tcp_rfc1337=0`) and is ignored otherwise; either way the connection is amended.
    /// Anything else counts as a segment after the close.
    fn late_segment(&mut self, key: FlowKey, seg: &Segment<'_>, sink: &mut dyn FlowSink) {
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
    fn recycle(&mut self, key: FlowKey, sink: &mut dyn FlowSink) {
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

    /// Ends the capture: every open connection is finalised as it stands.
    pub fn finish(&mut self, sink: &mut dyn FlowSink) {
        let mut open: Vec<Box<Connection>> = self.open.drain().map(|(_, c)| c).collect();
        open.sort_by_key(|c| c.id);
        for conn in open {
            finalise(conn, EndReason::OpenAtEnd, self.capture_start, &mut self.protocol_events, sink);
        }
        self.opened_order.clear();
        self.tombstones.clear();
    }

    /// Client and server of a new connection: the SYN sender is the client; otherwise the side on
    /// `--port`, else the lower port, is the server.
    fn orient(&self, seg: &Segment<'_>) -> (SocketAddr, SocketAddr) {
        let (src, dst) = (seg.src, seg.dst);
        if seg.flags.syn {
            return if seg.flags.ack { (dst, src) } else { (src, dst) };
        }
        match self.server_port {
            Some(p) if src.port() == p && dst.port() != p => (dst, src),
            Some(p) if dst.port() == p => (src, dst),
            _ if src.port() < dst.port() => (dst, src),
            _ => (src, dst),
        }
    }

    /// Evicts connections while the table is full: the oldest half-open ones first, then the oldest.
    fn make_room(&mut self, sink: &mut dyn FlowSink) {
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
    fn bound_closed_state(&mut self) {
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

    fn sweep_tombstones(&mut self) {
        let horizon = self.latest_ts - TOMBSTONE_TTL;
        self.tombstones.retain(|_, stone| stone.closed_at >= horizon);
        self.last_sweep_ts = self.latest_ts;
    }
}

/// Turns a finished connection into its record and hands it to the sink.
fn finalise(
    mut conn: Box<Connection>,
    end: EndReason,
    capture_start: Option<f64>,
    events: &mut Vec<ProtocolEvent>,
    sink: &mut dyn FlowSink,
) {
    let start = capture_start.unwrap_or(conn.first_ts);
    events.clear();
    let proto = conn.watcher.finish(events);
    for event in events.drain(..) {
        let side = match event {
            ProtocolEvent::HttpResponse { .. } => Side::Server,
            _ => Side::Client,
        };
        sink.event(conn.id, &FlowEvent::Protocol { side, event });
    }
    let handshake = match (conn.syn_seen, conn.syn_ack_seen, conn.handshake_acked) {
        (true, true, true) => Handshake::Complete,
        (true, true, false) => Handshake::SynAck,
        (true, false, _) => Handshake::SynOnly,
        (false, _, _) => Handshake::MidStream,
    };
    let encrypted = proto.protocol == Protocol::Tls;
    // HTTP inside TLS cannot be counted; the CONNECT that opened a TLS tunnel was read in clear.
    let http_hidden = encrypted && proto.http_requests == 0 && !proto.http_readable();
    let tls = proto.tls.clone();
    let requests: SmallVec<[RequestRecord; 1]> = proto.exchanges.iter().map(RequestRecord::from).collect();
    let h2_streams = proto.h2.as_ref().map(|h| h.streams);
    // HTTP/1 requests and h2c request streams are both HTTP requests: `reused` follows from them.
    let request_count = match proto.protocol {
        Protocol::Http1 | Protocol::H2c => proto.http_requests,
        Protocol::Tls if proto.http_readable() => proto.http_requests,
        Protocol::Tls => tls.as_ref().map_or(0, |t| t.exchanges_estimate),
        Protocol::None | Protocol::Unknown => conn.exchanges,
    };
    let probe_interval = |e: &Endpoint| match e.probe_times {
        (Some(first), Some(last)) if e.probes > 1 => Some((last - first) / f64::from(e.probes - 1)),
        _ => None,
    };
    let client = conn.end(Side::Client);
    let server = conn.end(Side::Server);
    let keepalive_interval = probe_interval(client).or_else(|| probe_interval(server));
    let close = close_facts(&conn, &proto);
    let close_cause = close_cause::classify(&close);
    let close_after_response = match (conn.last_response_ts, conn.first_fin_ts) {
        (Some(resp), Some(fin)) if fin >= resp => Some(fin - resp),
        _ => None,
    };
    let record = ConnectionRecord {
        id: conn.id,
        client: conn.client,
        server: conn.server,
        server_port: conn.server.port(),
        first_ts: conn.first_ts - start,
        last_ts: conn.last_ts - start,
        duration: conn.last_ts - conn.first_ts,
        handshake,
        protocol: proto.protocol,
        http_requests: if http_hidden { None } else { Some(proto.http_requests) },
        http_responses: if http_hidden { None } else { Some(proto.http_responses) },
        requests,
        exchanges: request_count,
        reused: request_count > 1,
        fin_first: FinFirst::from(conn.fin_first),
        simultaneous_close: conn.simultaneous_close,
        rst_by: conn.rst_by,
        rst_ignored: conn.rst_ignored,
        close_requested_by: proto.close_requested_by,
        close_cause,
        answered_requests: close.readable.then_some(close.answered_in_full()),
        keepalive_probes: PerSide { client: client.probes, server: server.probes },
        keepalive_interval,
        client_state: client.state,
        server_state: server.state,
        tls,
        h2_streams,
        h2_goaway: proto.h2.as_ref().and_then(|h| h.goaway),
        packets: client.packets + server.packets,
        bytes: client.bytes + server.bytes,
        stream_gaps: PerSide { client: proto.gaps[0], server: proto.gaps[1] },
        end,
        close_after_response,
        first_close_ts: conn.first_close_ts.map(|ts| ts - start),
        client_process: None,
        server_process: None,
        kernel_client_state: None,
        kernel_server_state: None,
    };
    sink.connection_ended(record);
}

/// What the close-cause rules read of a finished connection. When the server's byte stream has holes
/// (lost packets, a snaplen that cut the heads) the framer cannot see where responses end: a
/// response whose head was counted is then taken as answered in full when the client acknowledged
/// every byte the server sent.
fn close_facts(conn: &Connection, proto: &ProtocolSummary) -> CloseFacts {
    let server_gaps = proto.gaps[Side::Server.index()] > 0;
    let server_data_acked = {
        let (client, server) = (conn.end(Side::Client), conn.end(Side::Server));
        let data_end = server.fin_seq.or(server.next_seq);
        matches!((client.acked, data_end), (Some(acked), Some(end)) if acked.at_or_after(end))
    };
    let answered = if server_gaps && server_data_acked { proto.answered.max(proto.http_responses) } else { proto.answered };
    CloseFacts {
        refused: conn.syn_seen && !conn.syn_ack_seen && conn.rst_by == Some(Side::Server),
        // A decrypted TLS close_notify shows who closed even when the peer's FIN came first.
        first_close: proto.tls.as_ref().and_then(|t| t.close_notify_by).or(conn.fin_first).or(conn.rst_by),
        readable: proto.http_readable(),
        client_announced: proto.close_announced[Side::Client.index()],
        server_announced: proto.close_announced[Side::Server.index()],
        requests: proto.http_requests,
        requests_at_first_fin: conn.at_first_fin.map(|(requests, _)| requests),
        answered_at_client_fin: conn.at_first_fin.map(|(_, answered)| answered).filter(|_| conn.fin_first == Some(Side::Client)),
        client_reset_after_fin: conn.fin_first == Some(Side::Client) && conn.rst_by == Some(Side::Client),
        answered,
    }
}

/// Applies one segment to its connection: handshake, keep-alive, RST, ACK, payload, FIN, in that order.
///
/// Capture order is not always time order (merged capture points, several capture CPUs), so each
/// acknowledgement is matched both ways: when the ACK comes and when what it acknowledges comes
/// (a SYN-ACK after the client's ACK of it, a FIN after its ACK). A side's own segments also show
/// what it received when the other direction is not captured (see [`infer_from_sender`]).
fn update(conn: &mut Connection, seg: &Segment<'_>, sink: &mut dyn FlowSink, events: &mut Vec<ProtocolEvent>) {
    let side = conn.side_of(seg.src);
    let peer = side.peer();
    if seg.ts > conn.last_ts {
        conn.last_ts = seg.ts;
    }
    {
        let end = conn.end_mut(side);
        end.packets += 1;
        end.bytes += u64::from(seg.wire_len);
    }

    // Opening.
    if seg.flags.syn && !seg.flags.ack && side == Side::Client {
        if !conn.syn_seen {
            conn.syn_seen = true;
            // A SYN-ACK captured before this SYN answered it (process() lets only such a SYN in).
            conn.syn_ack_seen = conn.syn_ack_ack.is_some_and(|ack| syn_answered_by(seg, ack));
            conn.end_mut(side).isn = Some(seg.seq);
            conn.end_mut(side).window_scale = seg.window_scale;
            conn.watcher.on_syn(side, seg.seq);
            conn.transition(side, StateEvent::SendSyn);
        }
    } else if seg.flags.syn && seg.flags.ack && side == Side::Server {
        let client = conn.end(Side::Client);
        // The SYN-ACK acknowledges the SYN, and with TCP Fast Open the data the SYN carried.
        let answers_syn = client.isn.is_none_or(|isn| {
            let syn_end = client.next_seq.unwrap_or(isn.wrapping_add(1));
            seg.ack.at_or_after(isn.wrapping_add(1)) && syn_end.at_or_after(seg.ack)
        });
        if answers_syn && conn.end(side).isn.is_none() {
            conn.syn_ack_seen = conn.syn_seen;
            conn.syn_ack_ack = Some(seg.ack);
            conn.end_mut(side).isn = Some(seg.seq);
            conn.end_mut(side).window_scale = seg.window_scale;
            conn.watcher.on_syn(side, seg.seq);
            // The SYN-ACK shows the client sent a SYN, captured or not. Captured after the server's
            // FIN (inferred from the client's segments), it no longer moves the server's state.
            conn.transition(Side::Client, StateEvent::SendSyn);
            if conn.end(side).fin_seq.is_none() {
                conn.transition(Side::Server, StateEvent::SendSynAck);
            }
            conn.transition(Side::Client, StateEvent::RecvSynAck);
        }
    } else if conn.end(side).state == TcpState::CLOSED && conn.end(peer).state == TcpState::CLOSED && !seg.flags.rst {
        // First segment of a connection whose opening was not captured.
        conn.transition(side, StateEvent::MidStream);
        conn.transition(peer, StateEvent::MidStream);
    } else if !seg.flags.syn && !seg.flags.rst {
        infer_from_sender(conn, seg, side);
    }

    let keepalive = is_keepalive_probe(conn, seg, side);
    if keepalive {
        let end = conn.end_mut(side);
        end.probes += 1;
        end.probe_times.0.get_or_insert(seg.ts);
        end.probe_times.1 = Some(seg.ts);
        sink.event(conn.id, &FlowEvent::KeepAlive { side });
    }

    if seg.flags.rst {
        if rst_acceptable(conn, seg, side) {
            conn.rst_by.get_or_insert(side);
            conn.first_close_ts.get_or_insert(seg.ts);
            conn.transition(side, StateEvent::Reset);
            conn.transition(peer, StateEvent::Reset);
            sink.event(conn.id, &FlowEvent::Rst { side });
        } else {
            conn.rst_ignored += 1;
        }
        note_segment(conn, seg, side, keepalive, sink);
        return;
    }

    // Window: scaled only when both SYNs carried the option (RFC 7323).
    {
        let scale = match (conn.end(side).window_scale, conn.end(peer).window_scale) {
            (Some(s), Some(_)) if !seg.flags.syn => u32::from(s),
            _ => 0,
        };
        conn.end_mut(side).window = u32::from(seg.window) << scale;
    }

    if seg.flags.ack {
        let end = conn.end_mut(side);
        if end.acked.is_none_or(|a| seg.ack.after(a)) {
            end.acked_before_last_step = end.acked;
            end.acked = Some(seg.ack);
        }
    }
    // Both run on every segment: the ACK may have been captured before what it acknowledges.
    check_handshake_acked(conn);
    check_fin_acked(conn, peer);

    let data_seq = if seg.flags.syn { seg.seq.wrapping_add(1) } else { seg.seq };
    if seg.wire_len > 0 && !keepalive {
        if conn.last_payload_side != Some(side) {
            if side == Side::Server && conn.last_payload_side == Some(Side::Client) {
                conn.exchanges += 1;
            }
            conn.last_payload_side = Some(side);
        }
        events.clear();
        conn.watcher.on_segment(side, data_seq, seg.payload, seg.wire_len, seg.ts, events);
        if conn.end(side).fin_waiting_for_data == Some(data_seq.wrapping_add(seg.wire_len)) {
            // The data a FIN captured before it followed: now the stream can end at the FIN.
            let fin_seq = conn.end_mut(side).fin_waiting_for_data.take().unwrap_or(data_seq);
            watch_fin(conn, side, fin_seq, events);
        }
        forward_protocol_events(conn, events, seg.ts, sink);
    }

    let seg_end = seg.seq.wrapping_add(seg.seq_len());
    let sent_before = conn.end(side).next_seq;
    {
        let end = conn.end_mut(side);
        if end.next_seq.is_none_or(|n| seg_end.after(n)) {
            end.next_seq = Some(seg_end);
            end.last_advance_ts = Some(seg.ts);
        }
    }

    if seg.flags.fin && conn.end(side).fin_inferred {
        // The FIN the peer's segments implied, captured after all: its states were set then.
        let fin_seq = data_seq.wrapping_add(seg.wire_len);
        let end = conn.end_mut(side);
        end.fin_inferred = false;
        end.fin_seq = Some(fin_seq);
        end.fin_ack = seg.flags.ack.then_some(seg.ack);
        events.clear();
        watch_fin(conn, side, fin_seq, events);
        forward_protocol_events(conn, events, seg.ts, sink);
        sink.event(conn.id, &FlowEvent::Fin { side });
    } else if seg.flags.fin && conn.end(side).fin_seq.is_none() {
        let fin_seq = data_seq.wrapping_add(seg.wire_len);
        conn.end_mut(side).fin_seq = Some(fin_seq);
        conn.end_mut(side).fin_ack = seg.flags.ack.then_some(seg.ack);
        if fin_answers_unseen_fin(conn, seg, side) {
            // The peer's FIN came first, and this FIN acknowledges it (see infer_from_sender).
            conn.end_mut(peer).fin_seq = Some(seg.ack.wrapping_sub(1));
            conn.end_mut(peer).fin_inferred = true;
            conn.fin_first = Some(peer);
            conn.first_fin_ts = Some(seg.ts);
            conn.first_close_ts.get_or_insert(seg.ts);
            conn.transition(peer, StateEvent::SendFin);
            conn.transition(side, StateEvent::RecvFin);
            check_fin_acked(conn, peer);
        }
        let answered_by_peer_fin = conn.end(peer).fin_ack.is_some_and(|ack| ack.at_or_after(fin_seq.wrapping_add(1)));
        if answered_by_peer_fin {
            // The peer's FIN was captured first but acknowledges this one, so this FIN was sent
            // first: this side went FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT, the peer CLOSE_WAIT -> LAST_ACK.
            conn.fin_first = Some(side);
            conn.end_mut(side).state = TcpState::TIME_WAIT;
            conn.end_mut(peer).state = TcpState::LAST_ACK;
        } else {
            if conn.fin_first.is_none() {
                conn.fin_first = Some(side);
                conn.first_fin_ts = Some(seg.ts);
                conn.first_close_ts.get_or_insert(seg.ts);
            } else if let Some(peer_fin) = conn.end(peer).fin_seq {
                // Our FIN crossed the peer's: it does not acknowledge the peer's FIN.
                if !(seg.flags.ack && seg.ack.at_or_after(peer_fin.wrapping_add(1))) {
                    conn.simultaneous_close = true;
                }
            }
            if conn.simultaneous_close && conn.fin_first == Some(peer) {
                // This side sent its FIN before the peer's arrived (FIN_WAIT_1), then got the peer's FIN.
                conn.end_mut(side).state = TcpState::FIN_WAIT_1.next(StateEvent::RecvFin);
            } else {
                conn.transition(side, StateEvent::SendFin);
            }
            conn.transition(peer, StateEvent::RecvFin);
        }
        check_fin_acked(conn, side);
        events.clear();
        if sent_before.is_some_and(|sent| data_seq.after(sent)) {
            // Data before the FIN is still to come (captured after it): end the stream once it has.
            conn.end_mut(side).fin_waiting_for_data = Some(fin_seq);
        } else {
            watch_fin(conn, side, fin_seq, events);
        }
        forward_protocol_events(conn, events, seg.ts, sink);
        sink.event(conn.id, &FlowEvent::Fin { side });
    }
    note_segment(conn, seg, side, keepalive, sink);
}

/// With nothing captured from the peer, a FIN (the first of the connection) whose acknowledgement is
/// exactly one more than its sender acknowledged before (in the FIN, or in the ACK just before it)
/// answers the peer's unseen FIN: the sender was in CLOSE_WAIT.
fn fin_answers_unseen_fin(conn: &Connection, seg: &Segment<'_>, side: Side) -> bool {
    let end = conn.end(side);
    conn.fin_first.is_none()
        && conn.end(side.peer()).packets == 0
        && seg.flags.ack
        && end.acked == Some(seg.ack)
        && end.acked_before_last_step.is_some_and(|before| seg.ack == before.wrapping_add(1))
}

/// True when `seg` (a SYN) is the one a SYN-ACK with acknowledgement `ack` answers: ISN + 1, or
/// with TCP Fast Open up to ISN + 1 + the data the SYN carried.
fn syn_answered_by(seg: &Segment<'_>, ack: SeqNumber) -> bool {
    let first = seg.seq.wrapping_add(1);
    ack.at_or_after(first) && first.wrapping_add(seg.wire_len).at_or_after(ack)
}

/// A SYN on an open connection that is that connection's own SYN captured after its SYN-ACK: the
/// connection began with the SYN-ACK, the SYN comes from its client within [`REORDER_WINDOW`], and
/// the SYN-ACK acknowledged exactly this SYN.
fn is_late_syn(conn: &Connection, seg: &Segment<'_>) -> bool {
    conn.client == seg.src
        && !conn.syn_seen
        && seg.ts - conn.first_ts <= REORDER_WINDOW
        && conn.syn_ack_ack.is_some_and(|ack| syn_answered_by(seg, ack))
}

/// The client's ACK of the SYN-ACK completes the handshake, whichever of the two was captured first.
fn check_handshake_acked(conn: &mut Connection) {
    if conn.handshake_acked {
        return;
    }
    let (Some(server_isn), Some(acked)) = (conn.end(Side::Server).isn, conn.end(Side::Client).acked) else { return };
    if acked.at_or_after(server_isn.wrapping_add(1)) {
        conn.handshake_acked = true;
        conn.transition(Side::Server, StateEvent::RecvAckOfSyn);
    }
}

/// `side`'s FIN is acknowledged once the peer's highest ACK covers it, whichever was captured first.
fn check_fin_acked(conn: &mut Connection, side: Side) {
    let end = conn.end(side);
    let (Some(fin), false) = (end.fin_seq, end.fin_acked) else { return };
    if conn.end(side.peer()).acked.is_some_and(|a| a.at_or_after(fin.wrapping_add(1))) {
        conn.end_mut(side).fin_acked = true;
        conn.transition(side, StateEvent::RecvAckOfFin);
    }
}

/// What a side's own segment (no SYN, no RST) shows it received, for captures that miss the other
/// direction (a one-direction filter, asymmetric routing) or hold it late:
/// - a SYN_SENT side sends a plain ACK only after the SYN-ACK arrived: it is ESTABLISHED, and the
///   peer, which sent that SYN-ACK and now gets the ACK, is ESTABLISHED too;
/// - a SYN_RECEIVED side sends a segment without SYN only once the ACK of its SYN-ACK arrived
///   (except a TCP Fast Open server, which may send data first);
/// - when nothing at all was captured from the peer, a side that sent its FIN and then sends a
///   segment after it (seq = FIN + 1) acknowledging more than its FIN did has received the peer's
///   FIN at that acknowledgement - 1, and that FIN acknowledged its own (the peer was in
///   CLOSE_WAIT). Likewise a FIN acknowledging exactly one more than the side's earlier segments
///   answers the peer's FIN (see [`fin_answers_unseen_fin`]). Without the peer's segments 1 byte
///   of data and a FIN look alike at the close: the inference takes the FIN.
fn infer_from_sender(conn: &mut Connection, seg: &Segment<'_>, side: Side) {
    let peer = side.peer();
    match conn.end(side).state {
        TcpState::SYN_SENT if seg.flags.ack => {
            conn.transition(peer, StateEvent::SendSynAck);
            conn.transition(side, StateEvent::RecvSynAck);
            conn.transition(peer, StateEvent::RecvAckOfSyn);
        }
        TcpState::SYN_RECEIVED => {
            let fast_open_accepted = match (conn.end(peer).isn, conn.syn_ack_ack) {
                (Some(isn), Some(ack)) => ack.after(isn.wrapping_add(1)),
                _ => false,
            };
            if !fast_open_accepted {
                conn.transition(side, StateEvent::RecvAckOfSyn);
            }
        }
        _ => {}
    }
    let end = conn.end(side);
    let peer_end = conn.end(peer);
    let (Some(fin), Some(fin_ack)) = (end.fin_seq, end.fin_ack) else { return };
    if peer_end.packets > 0 || peer_end.fin_seq.is_some() || seg.flags.fin || !seg.flags.ack {
        return;
    }
    if seg.seq == fin.wrapping_add(1) && seg.ack.after(fin_ack) {
        let peer_end = conn.end_mut(peer);
        peer_end.fin_seq = Some(seg.ack.wrapping_sub(1));
        peer_end.fin_inferred = true;
        conn.transition(peer, StateEvent::SendFin);
        conn.end_mut(side).fin_acked = true;
        conn.transition(side, StateEvent::RecvAckOfFin);
        conn.transition(side, StateEvent::RecvFin);
    }
}

/// Hands `side`'s FIN to the protocol watcher, noting at the connection's first FIN how many
/// requests had been sent and answered (for the close cause).
fn watch_fin(conn: &mut Connection, side: Side, fin_seq: SeqNumber, events: &mut Vec<ProtocolEvent>) {
    conn.watcher.on_fin(side, fin_seq, events);
    conn.at_first_fin.get_or_insert(conn.watcher.progress());
}

/// Hands the protocol watcher's new messages to the sink, noting when the last response came.
fn forward_protocol_events(conn: &mut Connection, events: &mut Vec<ProtocolEvent>, ts: f64, sink: &mut dyn FlowSink) {
    for event in events.drain(..) {
        let from = match event {
            ProtocolEvent::HttpResponse { .. } => {
                conn.last_response_ts = Some(ts);
                Side::Server
            }
            ProtocolEvent::HttpRequest { .. } | ProtocolEvent::TlsClientHello { .. } | ProtocolEvent::H2Preface => Side::Client,
        };
        sink.event(conn.id, &FlowEvent::Protocol { side: from, event });
    }
}

fn note_segment(conn: &Connection, seg: &Segment<'_>, side: Side, keepalive: bool, sink: &mut dyn FlowSink) {
    if !sink.wants_segments() {
        return;
    }
    let own_isn = conn.end(side).isn;
    let peer_isn = conn.end(side.peer()).isn;
    let note = SegmentNote {
        ts: seg.ts,
        side,
        flags: seg.flags,
        rel_seq: own_isn.map_or(seg.seq.0, |isn| seg.seq.0.wrapping_sub(isn.0)),
        rel_ack: if seg.flags.ack { Some(peer_isn.map_or(seg.ack.0, |isn| seg.ack.0.wrapping_sub(isn.0))) } else { None },
        len: seg.wire_len,
        keepalive,
        client_state: conn.end(Side::Client).state,
        server_state: conn.end(Side::Server).state,
        label: http_first_line_label(seg.payload),
    };
    sink.event(conn.id, &FlowEvent::Segment(note));
}

/// Longest label taken from a payload.
const MAX_LABEL: usize = 40;

/// `GET /hello` from `GET /hello HTTP/1.1`, `200 OK` from `HTTP/1.1 200 OK`; `None` when the first
/// line of the payload is neither (a body, TLS, a continuation).
fn http_first_line_label(payload: &[u8]) -> Option<String> {
    let head = &payload[..payload.len().min(256)];
    let line = head.split(|&b| b == b'\r' || b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let label = if let Some(rest) = line.strip_prefix("HTTP/") {
        rest.split_once(' ')?.1.trim()
    } else {
        let (request, version) = line.rsplit_once(' ')?;
        if !version.starts_with("HTTP/") || !request.starts_with(|c: char| c.is_ascii_uppercase()) {
            return None;
        }
        request
    };
    Some(label.chars().take(MAX_LABEL).collect())
}

/// A keep-alive probe: 0 or 1 byte, no SYN/FIN/RST, sequence number one below the sender's next,
/// everything the sender sent already acknowledged, the peer's window open (a zero-window probe has
/// the same shape), the sender idle, and the sender not closed (the last ACK after a close is not a
/// probe). Idle is judged per sender: how long since it last sent anything new in its sequence
/// space, not since the last packet of either side, so two probes that cross both count.
fn is_keepalive_probe(conn: &Connection, seg: &Segment<'_>, side: Side) -> bool {
    if seg.flags.syn || seg.flags.fin || seg.flags.rst || seg.wire_len > 1 {
        return false;
    }
    let sender = conn.end(side);
    let receiver = conn.end(side.peer());
    let (Some(next), Some(advanced)) = (sender.next_seq, sender.last_advance_ts) else { return false };
    seg.ts - advanced >= KEEPALIVE_MIN_IDLE
        && sender.fin_seq.is_none()
        && seg.seq == next.wrapping_sub(1)
        && receiver.acked == Some(next)
        && receiver.window > 0
}

/// RFC 5961-style check: an RST closes the connection only if its sequence number is where the
/// receiver expects it (within its window). An RST answering a SYN must acknowledge the SYN.
fn rst_acceptable(conn: &Connection, seg: &Segment<'_>, side: Side) -> bool {
    let sender = conn.end(side);
    let receiver = conn.end(side.peer());
    if receiver.state == TcpState::SYN_SENT {
        return seg.flags.ack && receiver.isn.is_none_or(|isn| seg.ack == isn.wrapping_add(1));
    }
    // Where the receiver expects the sender's next byte: what it acknowledged, else what the sender sent.
    let Some(expected) = receiver.acked.or(sender.next_seq) else { return true };
    let window = receiver.window.max(65_535);
    let offset = seg.seq.diff(expected);
    (-1..=window as i64).contains(&i64::from(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    const C: &str = "127.0.0.1:40000";
    const S: &str = "127.0.0.1:8080";

    #[derive(Default)]
    struct Records(Vec<ConnectionRecord>, Vec<FlowEvent>);
    impl FlowSink for Records {
        fn event(&mut self, _id: u64, event: &FlowEvent) {
            self.1.push(event.clone());
        }
        fn connection_ended(&mut self, record: ConnectionRecord) {
            self.0.push(record);
        }
    }

    fn flags(s: &str) -> TcpFlags {
        TcpFlags { syn: s.contains('S'), ack: s.contains('.'), fin: s.contains('F'), rst: s.contains('R'), psh: s.contains('P') }
    }

    /// Feeds segments `(ts, from_client, flags, seq, ack, payload_len)` and returns the finished records.
    fn run(segments: &[(f64, bool, &str, u32, u32, u32)]) -> Records {
        let mut table = FlowTable::new(Some(8080), 1000);
        let mut sink = Records::default();
        let payload = vec![b'x'; 2000];
        for &(ts, from_client, f, seq, ack, len) in segments {
            let (src, dst) = if from_client { (C, S) } else { (S, C) };
            let seg = Segment {
                ts,
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                flags: flags(f),
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                window: 512,
                window_scale: None,
                payload: &payload[..len as usize],
                wire_len: len,
            };
            table.process(&seg, &mut sink);
        }
        table.finish(&mut sink);
        sink
    }

    /// One test segment with its own payload and advertised window.
    struct TestSeg {
        ts: f64,
        from_client: bool,
        flags: &'static str,
        seq: u32,
        ack: u32,
        payload: Vec<u8>,
        window: u16,
    }

    /// `(ts, from_client, flags, seq, ack)` carrying `payload`, window 512.
    fn with_payload(ts: f64, from_client: bool, flags: &'static str, seq: u32, ack: u32, payload: &[u8]) -> TestSeg {
        TestSeg { ts, from_client, flags, seq, ack, payload: payload.to_vec(), window: 512 }
    }

    /// `(ts, from_client, flags, seq, ack, payload_len)` segments as [`TestSeg`]s ('x' payloads).
    fn plain(segments: &[(f64, bool, &'static str, u32, u32, u32)]) -> Vec<TestSeg> {
        segments.iter().map(|&(ts, c, f, seq, ack, len)| with_payload(ts, c, f, seq, ack, &vec![b'x'; len as usize])).collect()
    }

    /// Feeds [`TestSeg`]s with a table that takes port 8080 as the server's.
    fn run_segs(segments: &[TestSeg]) -> Records {
        let mut table = FlowTable::new(Some(8080), 1000);
        let mut sink = Records::default();
        for t in segments {
            let (src, dst) = if t.from_client { (C, S) } else { (S, C) };
            let seg = Segment {
                ts: t.ts,
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                flags: flags(t.flags),
                seq: SeqNumber(t.seq),
                ack: SeqNumber(t.ack),
                window: t.window,
                window_scale: None,
                payload: &t.payload,
                wire_len: t.payload.len() as u32,
            };
            table.process(&seg, &mut sink);
        }
        table.finish(&mut sink);
        sink
    }

    /// A full exchange: handshake, one 100-byte request, one 200-byte response, ISNs 1000 / 5000.
    fn opened() -> Vec<(f64, bool, &'static str, u32, u32, u32)> {
        vec![
            (0.0, true, "S", 1000, 0, 0),
            (0.001, false, "S.", 5000, 1001, 0),
            (0.002, true, ".", 1001, 5001, 0),
            (0.003, true, "P.", 1001, 5001, 100),
            (0.004, false, "P.", 5001, 1101, 200),
            (0.005, true, ".", 1101, 5201, 0),
        ]
    }

    #[test]
    fn test_client_fin_first_leaves_client_time_wait_server_closed() {
        let mut segs = opened();
        segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.011, false, "F.", 5201, 1102, 0), (0.012, true, ".", 1102, 5202, 0)]);
        let r = run(&segs);
        assert_eq!(r.0.len(), 1);
        let c = &r.0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!(c.fin_first, FinFirst::Client);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
        assert_eq!(c.end, EndReason::Closed);
        assert!(!c.simultaneous_close);
    }

    #[test]
    fn test_server_fin_acked_without_client_fin_is_fin_wait_2_and_close_wait() {
        let mut segs = opened();
        segs.extend([(0.01, false, "F.", 5201, 1101, 0), (0.011, true, ".", 1101, 5202, 0)]);
        let c = &run(&segs).0[0];
        assert_eq!(c.fin_first, FinFirst::Server);
        assert_eq!((c.client_state, c.server_state), (TcpState::CLOSE_WAIT, TcpState::FIN_WAIT_2));
        assert_eq!(c.end, EndReason::OpenAtEnd);
    }

    #[test]
    fn test_simultaneous_close_ends_in_time_wait_on_both_sides() {
        let mut segs = opened();
        segs.extend([
            (0.01, true, "F.", 1101, 5201, 0),
            (0.01, false, "F.", 5201, 1101, 0),
            (0.011, true, ".", 1102, 5202, 0),
            (0.011, false, ".", 5202, 1102, 0),
        ]);
        let c = &run(&segs).0[0];
        assert!(c.simultaneous_close);
        assert_eq!(c.fin_first, FinFirst::Client);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::TIME_WAIT));
    }

    #[test]
    fn test_retransmitted_syn_counts_once() {
        let mut segs = vec![(0.0, true, "S", 1000, 0, 0), (1.0, true, "S", 1000, 0, 0)];
        segs.extend(opened().into_iter().skip(1).map(|(ts, c, f, s, a, l)| (ts + 1.0, c, f, s, a, l)));
        let r = run(&segs);
        assert_eq!(r.0.len(), 1);
        assert_eq!(r.0[0].handshake, Handshake::Complete);
    }

    #[test]
    fn test_new_syn_with_new_isn_on_same_tuple_starts_a_new_connection() {
        let mut segs = opened();
        segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.011, false, "F.", 5201, 1102, 0), (0.012, true, ".", 1102, 5202, 0)]);
        segs.extend(
            opened()
                .into_iter()
                .map(|(ts, c, f, s, a, l)| (ts + 1.0, c, f, s.wrapping_add(90_000), a.wrapping_add(if a == 0 { 0 } else { 90_000 }), l)),
        );
        let r = run(&segs);
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.0[1].handshake, Handshake::Complete);
        assert_eq!(r.0[1].client_state, TcpState::ESTABLISHED);
    }

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
    fn test_keepalive_probe_after_idle_with_everything_acked() {
        let mut segs = opened();
        // Probe at seq next-1 after 15 s idle, and the server's ACK of it.
        segs.extend([(15.0, true, ".", 1100, 5201, 0), (15.0001, false, ".", 5201, 1101, 0), (30.0, true, ".", 1100, 5201, 0)]);
        let c = &run(&segs).0[0];
        assert_eq!(c.keepalive_probes, PerSide { client: 2, server: 0 });
        assert_eq!(c.keepalive_interval, Some(15.0));
    }

    #[test]
    fn test_one_byte_retransmission_soon_after_data_is_not_a_probe() {
        let mut segs = opened();
        segs.push((0.2, true, "P.", 1100, 5201, 1));
        assert_eq!(run(&segs).0[0].keepalive_probes, PerSide::default());
    }

    #[test]
    fn test_segment_at_next_minus_one_with_unacked_data_is_not_a_probe() {
        let mut segs = opened();
        segs.push((0.006, true, "P.", 1101, 5201, 50)); // not acknowledged by the server
        segs.push((10.0, true, ".", 1150, 5201, 0));
        assert_eq!(run(&segs).0[0].keepalive_probes, PerSide::default());
    }

    #[test]
    fn test_last_ack_after_close_is_not_a_probe() {
        let mut segs = opened();
        segs.extend([(0.01, false, "F.", 5201, 1101, 0), (5.0, true, ".", 1101, 5202, 0)]);
        assert_eq!(run(&segs).0[0].keepalive_probes, PerSide::default());
    }

    #[test]
    fn test_rst_with_sequence_outside_window_is_ignored() {
        let mut segs = opened();
        segs.push((0.01, true, "R", 1101 + 10_000_000, 0, 0));
        let c = &run(&segs).0[0];
        assert_eq!(c.rst_by, None);
        assert_eq!(c.rst_ignored, 1);
        assert_eq!(c.client_state, TcpState::ESTABLISHED);
    }

    #[test]
    fn test_rst_in_window_closes_both_sides() {
        let mut segs = opened();
        segs.push((0.01, true, "R.", 1101, 5201, 0));
        let c = &run(&segs).0[0];
        assert_eq!(c.rst_by, Some(Side::Client));
        assert_eq!((c.client_state, c.server_state), (TcpState::CLOSED, TcpState::CLOSED));
    }

    #[test]
    fn test_refused_syn_is_syn_only_and_reset_by_server() {
        let r = run(&[(0.0, true, "S", 1000, 0, 0), (0.0001, false, "R.", 0, 1001, 0)]);
        let c = &r.0[0];
        assert_eq!(c.handshake, Handshake::SynOnly);
        assert_eq!(c.rst_by, Some(Side::Server));
    }

    #[test]
    fn test_sequence_numbers_wrapping_past_2_pow_32() {
        let isn = u32::MAX - 50;
        let segs = [
            (0.0, true, "S", isn, 0, 0),
            (0.001, false, "S.", 5000, isn.wrapping_add(1), 0),
            (0.002, true, ".", isn.wrapping_add(1), 5001, 0),
            (0.003, true, "P.", isn.wrapping_add(1), 5001, 100),
            (0.004, false, ".", 5001, isn.wrapping_add(101), 0),
            (0.01, true, "F.", isn.wrapping_add(101), 5001, 0),
            (0.011, false, "F.", 5001, isn.wrapping_add(102), 0),
            (0.012, true, ".", isn.wrapping_add(102), 5002, 0),
        ];
        let c = &run(&segs).0[0];
        assert_eq!(c.end, EndReason::Closed);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    }

    #[test]
    fn test_mid_stream_connection_takes_port_side_as_server() {
        let r = run(&[(0.0, false, "P.", 5001, 1101, 10), (0.001, true, ".", 1101, 5011, 0)]);
        let c = &r.0[0];
        assert_eq!(c.handshake, Handshake::MidStream);
        assert_eq!(c.server.to_string(), S);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
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

    // ESTABLISHED: keep-alive probes, judged per sender.

    #[test]
    fn test_established_keepalive_probes_that_cross_count_for_both_sides() {
        let mut segs = opened();
        // Both timers fire at 15 s: the server's probe comes 200 µs after the client's, before the
        // server's ACK of the client's probe; then each side ACKs the other's probe.
        segs.extend([
            (15.0, true, ".", 1100, 5201, 0),
            (15.0002, false, ".", 5200, 1101, 0),
            (15.0003, false, ".", 5201, 1101, 0),
            (15.0004, true, ".", 1101, 5201, 0),
        ]);
        let c = &run(&segs).0[0];
        assert_eq!(c.keepalive_probes, PerSide { client: 1, server: 1 });
    }

    #[test]
    fn test_established_probe_right_after_the_peers_ack_of_a_probe_counts() {
        let mut segs = opened();
        // The client probes and the server ACKs it; the server's own timer fires 300 ms later.
        segs.extend([(15.0, true, ".", 1100, 5201, 0), (15.0001, false, ".", 5201, 1101, 0), (15.3, false, ".", 5200, 1101, 0)]);
        let c = &run(&segs).0[0];
        assert_eq!(c.keepalive_probes, PerSide { client: 1, server: 1 });
    }

    #[test]
    fn test_established_zero_window_probe_is_not_a_keepalive_probe() {
        let mut segs = plain(&opened());
        // The server advertises a zero window; 5 s later the client probes it at next - 1.
        segs.push(TestSeg { window: 0, ..with_payload(0.006, false, ".", 5201, 1101, b"") });
        segs.push(with_payload(5.0, true, ".", 1100, 5201, b""));
        assert_eq!(run_segs(&segs).0[0].keepalive_probes, PerSide::default());
    }

    #[test]
    fn test_established_probe_soon_after_the_senders_own_data_is_not_a_probe_even_after_peer_silence() {
        let mut segs = opened();
        // The client sends 10 bytes at 5 s (acknowledged); 100 ms later a 0-byte segment at next - 1.
        segs.extend([(5.0, true, "P.", 1101, 5201, 10), (5.0001, false, ".", 5201, 1111, 0), (5.1, true, ".", 1110, 5201, 0)]);
        assert_eq!(run(&segs).0[0].keepalive_probes, PerSide::default());
    }

    // SYN_SENT / SYN_RECEIVED: capture order is not time order.

    #[test]
    fn test_syn_ack_captured_before_its_syn_builds_one_connection_with_a_completed_handshake() {
        let mut segs = opened();
        segs.swap(0, 1);
        segs[0].0 = 0.0;
        segs[1].0 = 0.0003;
        let r = run(&segs);
        assert_eq!(r.0.len(), 1);
        let c = &r.0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!(c.client.to_string(), C);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
    }

    #[test]
    fn test_syn_ack_acknowledging_another_isn_is_not_joined_to_a_later_syn() {
        let r = run(&[(0.0, false, "S.", 5000, 777, 0), (0.0003, true, "S", 1000, 0, 0)]);
        assert_eq!(r.0.len(), 2);
        assert_eq!((r.0[0].handshake, r.0[0].end), (Handshake::MidStream, EndReason::Replaced));
        assert_eq!(r.0[1].handshake, Handshake::SynOnly);
    }

    #[test]
    fn test_syn_later_than_the_reorder_window_after_the_syn_ack_starts_a_new_connection() {
        let r = run(&[(0.0, false, "S.", 5000, 1001, 0), (2.0, true, "S", 1000, 0, 0)]);
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.0[1].handshake, Handshake::SynOnly);
    }

    #[test]
    fn test_syn_ack_alone_without_syn_leaves_client_established_and_server_syn_received() {
        let c = &run(&[(0.0, false, "S.", 5000, 1001, 0)]).0[0];
        assert_eq!(c.handshake, Handshake::MidStream);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::SYN_RECEIVED));
    }

    #[test]
    fn test_client_ack_captured_before_the_syn_ack_completes_the_handshake() {
        // The client's clock runs ahead: its ACK is stamped before the SYN-ACK it answers, and
        // nothing follows that would acknowledge the SYN-ACK again.
        let mut segs = opened();
        segs.truncate(3);
        segs.swap(1, 2);
        let c = &run(&segs).0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
    }

    // FIN_WAIT / CLOSE_WAIT / LAST_ACK: capture order is not time order.

    #[test]
    fn test_last_ack_captured_before_the_fin_it_acknowledges_closes_the_connection() {
        let mut segs = opened();
        segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.012, true, ".", 1102, 5202, 0), (0.0121, false, "F.", 5201, 1102, 0)]);
        let r = run(&segs);
        assert_eq!(r.0.len(), 1);
        let c = &r.0[0];
        assert_eq!(c.end, EndReason::Closed);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    }

    #[test]
    fn test_peer_fin_captured_first_but_acknowledging_this_fin_makes_this_side_fin_first() {
        let mut segs = opened();
        // The server's clock runs behind: its FIN (ack 1102, so it answers the client's FIN) is
        // stamped before the client's FIN.
        segs.extend([(0.0100, false, "F.", 5201, 1102, 0), (0.0101, true, "F.", 1101, 5201, 0), (0.0102, true, ".", 1102, 5202, 0)]);
        let c = &run(&segs).0[0];
        assert_eq!(c.fin_first, FinFirst::Client);
        assert!(!c.simultaneous_close);
        assert_eq!(c.end, EndReason::Closed);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    }

    #[test]
    fn test_fin_captured_before_the_response_it_follows_keeps_the_response() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
        let (req_len, resp_len) = (request.len() as u32, response.len() as u32);
        let segs = vec![
            with_payload(0.0, true, "S", 1000, 0, b""),
            with_payload(0.001, false, "S.", 5000, 1001, b""),
            with_payload(0.002, true, ".", 1001, 5001, b""),
            with_payload(0.003, true, "P.", 1001, 5001, request),
            // The server's FIN is captured 50 µs before the response segment it follows.
            with_payload(0.004, false, "F.", 5001 + resp_len, 1001 + req_len, b""),
            with_payload(0.00405, false, "P.", 5001, 1001 + req_len, response),
        ];
        let c = &run_segs(&segs).0[0];
        assert_eq!((c.http_requests, c.http_responses), (Some(1), Some(1)));
        assert_eq!(c.stream_gaps, PerSide::default());
        assert_eq!(c.fin_first, FinFirst::Server);
    }

    // SYN_SENT: TCP Fast Open.

    #[test]
    fn test_fast_open_syn_with_request_acknowledged_in_syn_ack_is_a_completed_handshake_with_the_request() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let after_request = 1001 + request.len() as u32;
        let segs = vec![
            with_payload(0.0, true, "S", 1000, 0, request),
            with_payload(0.001, false, "S.", 5000, after_request, b""),
            with_payload(0.0011, false, "P.", 5001, after_request, response),
            with_payload(0.002, true, ".", after_request, 5001 + response.len() as u32, b""),
        ];
        let c = &run_segs(&segs).0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!((c.http_requests, c.http_responses), (Some(1), Some(1)));
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
    }

    #[test]
    fn test_fast_open_server_sending_before_the_ack_stays_syn_received() {
        let segs = plain(&[(0.0, true, "S", 1000, 0, 30), (0.001, false, "S.", 5000, 1031, 0), (0.0011, false, "P.", 5001, 1031, 40)]);
        let c = &run_segs(&segs).0[0];
        assert_eq!(c.handshake, Handshake::SynAck);
        assert_eq!(c.server_state, TcpState::SYN_RECEIVED);
    }

    #[test]
    fn test_fast_open_data_not_accepted_is_retransmitted_and_counted_once() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let after_request = 1001 + request.len() as u32;
        let segs = vec![
            with_payload(0.0, true, "S", 1000, 0, request),
            // No cookie: the server acknowledges only the SYN and the client sends the request again.
            with_payload(0.001, false, "S.", 5000, 1001, b""),
            with_payload(0.002, true, "P.", 1001, 5001, request),
            with_payload(0.003, false, ".", 5001, after_request, b""),
        ];
        let c = &run_segs(&segs).0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!(c.http_requests, Some(1));
    }

    #[test]
    fn test_syn_ack_acknowledging_beyond_the_syn_data_does_not_answer_it() {
        let c = &run(&[(0.0, true, "S", 1000, 0, 30), (0.001, false, "S.", 5000, 1040, 0)]).0[0];
        assert_eq!(c.handshake, Handshake::SynOnly);
        assert_eq!(c.client_state, TcpState::SYN_SENT);
    }

    // One-directional captures: the unseen side's state from the seen side's segments.

    #[test]
    fn test_client_only_capture_ack_after_syn_means_both_established() {
        let c = &run(&[(0.0, true, "S", 1000, 0, 0), (0.002, true, ".", 1001, 5001, 0), (0.003, true, "P.", 1001, 5001, 100)]).0[0];
        assert_eq!(c.handshake, Handshake::SynOnly);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
    }

    #[test]
    fn test_client_only_capture_fin_then_ack_of_more_infers_the_server_fin_time_wait_and_closed() {
        let c = &run(&[
            (0.0, true, "S", 1000, 0, 0),
            (0.002, true, ".", 1001, 5001, 0),
            (0.003, true, "P.", 1001, 5001, 100),
            (0.005, true, ".", 1101, 5201, 0),
            (0.01, true, "F.", 1101, 5201, 0),
            (0.012, true, ".", 1102, 5202, 0),
        ])
        .0[0];
        // An inferred FIN does not end the connection: the server's segments may yet come.
        assert_eq!(c.end, EndReason::OpenAtEnd);
        assert_eq!(c.fin_first, FinFirst::Client);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    }

    #[test]
    fn test_client_only_capture_fin_without_later_ack_leaves_fin_wait_1_and_close_wait() {
        let c = &run(&[(0.0, true, "S", 1000, 0, 0), (0.002, true, ".", 1001, 5001, 0), (0.01, true, "F.", 1001, 5001, 0)]).0[0];
        assert_eq!((c.client_state, c.server_state), (TcpState::FIN_WAIT_1, TcpState::CLOSE_WAIT));
    }

    #[test]
    fn test_server_only_capture_data_after_syn_ack_means_both_established() {
        let c = &run(&[(0.0, false, "S.", 5000, 1001, 0), (0.003, false, "P.", 5001, 1101, 200)]).0[0];
        assert_eq!(c.handshake, Handshake::MidStream);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
    }

    #[test]
    fn test_server_only_capture_fin_acknowledging_one_more_answers_the_clients_fin() {
        let c = &run(&[
            (0.0, false, "S.", 5000, 1001, 0),
            (0.003, false, "P.", 5001, 1101, 200),
            (0.01, false, ".", 5201, 1102, 0),
            (0.011, false, "F.", 5201, 1102, 0),
        ])
        .0[0];
        // The ACK of the client's FIN is the first segment acknowledging one more; the FIN repeats it.
        assert_eq!(c.fin_first, FinFirst::Client);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::LAST_ACK));
    }

    #[test]
    fn test_client_segments_all_captured_before_the_servers_keep_the_server_data() {
        // Skewed capture points: every client segment, the last ACK included, comes before the
        // server's. The FIN inferred from the client's last ACK must not end the connection.
        let c = &run(&[
            (0.0, true, "S", 1000, 0, 0),
            (0.0001, true, ".", 1001, 5001, 0),
            (0.0002, true, "P.", 1001, 5001, 100),
            (0.0003, true, "F.", 1101, 5201, 0),
            (0.0004, true, ".", 1102, 5202, 0),
            (0.0010, false, "S.", 5000, 1001, 0),
            (0.0011, false, "P.", 5001, 1101, 200),
            (0.0012, false, "F.", 5201, 1102, 0),
        ])
        .0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!(c.end, EndReason::Closed);
        assert_eq!(c.packets, 8);
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    }

    #[test]
    fn test_server_segments_all_captured_before_the_clients_make_one_closed_connection() {
        // The mirror image: the server's SYN-ACK, response and FIN (acknowledging the client's FIN)
        // all come before the client's SYN.
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let (req_end, resp_end) = (1001 + request.len() as u32, 5001 + response.len() as u32);
        let segs = vec![
            with_payload(0.0, false, "S.", 5000, 1001, b""),
            with_payload(0.0001, false, "P.", 5001, req_end, response),
            with_payload(0.0002, false, "F.", resp_end, req_end + 1, b""),
            with_payload(0.0005, true, "S", 1000, 0, b""),
            with_payload(0.0006, true, ".", 1001, 5001, b""),
            with_payload(0.0007, true, "P.", 1001, 5001, request),
            with_payload(0.0008, true, "F.", req_end, resp_end, b""),
            with_payload(0.0009, true, ".", req_end + 1, resp_end + 1, b""),
        ];
        let r = run_segs(&segs);
        assert_eq!(r.0.len(), 1);
        let c = &r.0[0];
        assert_eq!(c.handshake, Handshake::Complete);
        assert_eq!(c.end, EndReason::Closed);
        assert_eq!(c.fin_first, FinFirst::Client);
        assert_eq!((c.http_requests, c.http_responses), (Some(1), Some(1)));
        assert_eq!((c.client_state, c.server_state), (TcpState::TIME_WAIT, TcpState::CLOSED));
    }

    #[test]
    fn test_two_way_capture_missing_the_peer_fin_does_not_infer_it() {
        let mut segs = opened();
        segs.extend([(0.01, true, "F.", 1101, 5201, 0), (0.012, true, ".", 1102, 5202, 0)]);
        let c = &run(&segs).0[0];
        assert_eq!(c.end, EndReason::OpenAtEnd);
        assert_eq!((c.client_state, c.server_state), (TcpState::FIN_WAIT_1, TcpState::CLOSE_WAIT));
    }

    /// Records with their amendments applied, as the report builder applies them, and the counters.
    #[derive(Default)]
    struct Amended(Vec<ConnectionRecord>, Vec<Amendment>);
    impl FlowSink for Amended {
        fn connection_ended(&mut self, record: ConnectionRecord) {
            self.0.push(record);
        }
        fn connection_amended(&mut self, amendment: Amendment) {
            if let Some(record) = self.0.iter_mut().rev().find(|r| r.key() == amendment.key) {
                amendment.apply(record);
            }
            self.1.push(amendment);
        }
    }

    /// As [`run`], with the amendments applied to the records, and the table's counters.
    fn run_amended(segments: &[(f64, bool, &str, u32, u32, u32)]) -> (Amended, FlowCounters) {
        let mut table = FlowTable::new(Some(8080), 1000);
        let mut sink = Amended::default();
        for &(ts, from_client, f, seq, ack, len) in segments {
            let (src, dst) = if from_client { (C, S) } else { (S, C) };
            let payload = vec![b'x'; len as usize];
            let seg = Segment {
                ts,
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                flags: flags(f),
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                window: 512,
                window_scale: None,
                payload: &payload,
                wire_len: len,
            };
            table.process(&seg, &mut sink);
        }
        table.finish(&mut sink);
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

    #[test]
    fn test_label_of_a_request_line_is_method_and_target() {
        assert_eq!(http_first_line_label(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").as_deref(), Some("GET /hello"));
    }

    #[test]
    fn test_label_of_a_status_line_is_code_and_reason() {
        assert_eq!(http_first_line_label(b"HTTP/1.0 200 OK\r\nServer: x\r\n").as_deref(), Some("200 OK"));
    }

    #[test]
    fn test_no_label_for_bodies_and_binary() {
        assert_eq!(http_first_line_label(b"hello\n"), None);
        assert_eq!(http_first_line_label(b"\x16\x03\x01\x02\x00"), None);
        assert_eq!(http_first_line_label(b""), None);
    }
}
