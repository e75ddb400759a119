//! The flow table: rebuilds TCP connections from segments.
//!
//! A map from the 4-tuple to the open connection. A SYN whose initial sequence number differs from
//! the open connection's starts a new connection on the same tuple (Linux reuses client ports), a
//! retransmitted SYN (same ISN) counts once. A connection is finalised as soon as it ends (both FINs
//! acknowledged, or an acceptable RST) and handed to the [`FlowSink`], so memory follows the open
//! connections. A small tombstone per recently closed tuple catches late segments (a retransmitted
//! last ACK) so they do not pass for new mid-stream connections.

use crate::decode::{ip_bits, Segment};
use crate::protocol::{Protocol, ProtocolEvent, ProtocolWatcher};
use crate::report::{ConnectionRecord, EndReason, FinFirst, Handshake, PerSide, RequestRecord};
use crate::seq::SeqNumber;
use crate::side::Side;
use crate::tcp_state::{StateEvent, TcpState};
use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// A segment counts as a keep-alive probe only after this much silence on the connection (seconds).
/// Linux's smallest keep-alive interval is 1 s; retransmissions come sooner than this after the data.
const KEEPALIVE_MIN_IDLE: f64 = 0.5;
/// Tombstones of closed tuples are forgotten after this much capture time (2 × MSL on Linux is 60 s).
const TOMBSTONE_TTL: f64 = 120.0;
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
}

/// Counters of segments the table could not attribute to an open connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowCounters {
    pub after_close: u64,
    pub evicted: u64,
}

/// Canonical 4-tuple: each endpoint as a 128-bit address (IPv4 mapped into IPv6) and a port, the
/// lower endpoint first so both directions map to one key. Plain integers: cheap to hash and compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey {
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
    fn of(a: SocketAddr, b: SocketAddr) -> FlowKey {
        let (a, b) = ((ip_bits(a), a.port()), (ip_bits(b), b.port()));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey { lo_ip: lo.0, hi_ip: hi.0, ports: (u32::from(lo.1) << 16) | u32::from(hi.1) }
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
    /// Receive window this side last advertised, in bytes (scaled once both SYNs showed the option).
    window: u32,
    window_scale: Option<u8>,
    fin_seq: Option<SeqNumber>,
    fin_acked: bool,
    state: TcpState,
    probes: u32,
    probe_times: (Option<f64>, Option<f64>),
    packets: u64,
    bytes: u64,
    last_data_ts: Option<f64>,
}

impl Endpoint {
    fn new() -> Endpoint {
        Endpoint {
            isn: None,
            next_seq: None,
            acked: None,
            window: 0,
            window_scale: None,
            fin_seq: None,
            fin_acked: false,
            state: TcpState::CLOSED,
            probes: 0,
            probe_times: (None, None),
            packets: 0,
            bytes: 0,
            last_data_ts: None,
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

    fn closed(&self) -> bool {
        self.rst_by.is_some() || self.ends.iter().all(|e| e.fin_seq.is_some() && e.fin_acked)
    }

    fn half_open(&self) -> bool {
        self.syn_seen && !self.handshake_acked && self.ends.iter().all(|e| e.bytes == 0)
    }
}

/// The table of open connections.
pub struct FlowTable {
    open: HashMap<FlowKey, Box<Connection>, ahash::RandomState>,
    /// Closed tuples and when they closed, to recognise late segments.
    tombstones: HashMap<FlowKey, f64, ahash::RandomState>,
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
        }
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
        if seg.ts > self.latest_ts {
            self.latest_ts = seg.ts;
        }
        if self.latest_ts - self.last_sweep_ts > TOMBSTONE_TTL / 4.0 {
            self.sweep_tombstones();
        }
        let key = FlowKey::of(seg.src, seg.dst);
        let is_syn = seg.flags.syn && !seg.flags.ack;
        if let Entry::Occupied(mut open) = self.open.entry(key) {
            let conn = open.get_mut();
            let retransmitted_syn = conn.client == seg.src && conn.end(Side::Client).isn == Some(seg.seq);
            if !is_syn || retransmitted_syn {
                update(conn, seg, sink, &mut self.protocol_events);
                if conn.closed() {
                    self.tombstones.insert(key, seg.ts);
                    finalise(open.remove(), EndReason::Closed, self.capture_start, &mut self.protocol_events, sink);
                    self.bound_closed_state();
                }
                return;
            }
            // A SYN with another ISN on an open tuple: the old connection ends, a new one starts.
            finalise(open.remove(), EndReason::Replaced, self.capture_start, &mut self.protocol_events, sink);
        } else if !is_syn && self.tombstones.contains_key(&key) {
            self.counters.after_close += 1;
            return;
        }
        self.tombstones.remove(&key);
        self.make_room(sink);
        let (client, server) = self.orient(seg);
        let id = self.next_id;
        self.next_id += 1;
        sink.event(id, &FlowEvent::Opened { handshake: is_syn, client, server });
        let mut conn = Box::new(Connection::new(id, client, server, seg.ts));
        update(&mut conn, seg, sink, &mut self.protocol_events);
        if conn.closed() {
            // Closed by its first segment (a lone RST).
            self.tombstones.insert(key, seg.ts);
            finalise(conn, EndReason::Closed, self.capture_start, &mut self.protocol_events, sink);
        } else {
            self.open.insert(key, conn);
            self.opened_order.push_back((key, id));
        }
        self.bound_closed_state();
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
        let mut times: Vec<f64> = self.tombstones.values().copied().collect();
        let middle = times.len() / 2;
        let median = *times.select_nth_unstable_by(middle, f64::total_cmp).1;
        self.tombstones.retain(|_, closed_at| *closed_at > median);
    }

    fn sweep_tombstones(&mut self) {
        let horizon = self.latest_ts - TOMBSTONE_TTL;
        self.tombstones.retain(|_, closed_at| *closed_at >= horizon);
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
    let tls = proto.tls.clone();
    let requests: SmallVec<[RequestRecord; 1]> = proto.exchanges.iter().map(RequestRecord::from).collect();
    let h2_streams = proto.h2.as_ref().map(|h| h.streams);
    // HTTP/1 requests and h2c request streams are both HTTP requests: `reused` follows from them.
    let request_count = match proto.protocol {
        Protocol::Http1 | Protocol::H2c => proto.http_requests,
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
        http_requests: if encrypted { None } else { Some(proto.http_requests) },
        http_responses: if encrypted { None } else { Some(proto.http_responses) },
        requests,
        exchanges: request_count,
        reused: request_count > 1,
        fin_first: FinFirst::from(conn.fin_first),
        simultaneous_close: conn.simultaneous_close,
        rst_by: conn.rst_by,
        rst_ignored: conn.rst_ignored,
        close_requested_by: proto.close_requested_by,
        keepalive_probes: PerSide { client: client.probes, server: server.probes },
        keepalive_interval,
        client_state: client.state,
        server_state: server.state,
        tls,
        h2_streams,
        packets: client.packets + server.packets,
        bytes: client.bytes + server.bytes,
        stream_gaps: PerSide { client: proto.gaps[0], server: proto.gaps[1] },
        end,
        close_after_response,
        client_process: None,
        server_process: None,
        kernel_client_state: None,
        kernel_server_state: None,
    };
    sink.connection_ended(record);
}

/// Applies one segment to its connection: handshake, keep-alive, RST, ACK, payload, FIN, in that order.
fn update(conn: &mut Connection, seg: &Segment<'_>, sink: &mut dyn FlowSink, events: &mut Vec<ProtocolEvent>) {
    let side = conn.side_of(seg.src);
    let peer = side.peer();
    let idle = seg.ts - conn.last_ts;
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
            conn.end_mut(side).isn = Some(seg.seq);
            conn.end_mut(side).window_scale = seg.window_scale;
            conn.watcher.on_syn(side, seg.seq);
            conn.transition(side, StateEvent::SendSyn);
        }
    } else if seg.flags.syn && seg.flags.ack && side == Side::Server {
        let answers_syn = conn.end(Side::Client).isn.is_none_or(|isn| seg.ack == isn.wrapping_add(1));
        if answers_syn && !conn.syn_ack_seen {
            conn.syn_ack_seen = conn.syn_seen;
            conn.end_mut(side).isn = Some(seg.seq);
            conn.end_mut(side).window_scale = seg.window_scale;
            conn.watcher.on_syn(side, seg.seq);
            conn.transition(Side::Server, StateEvent::SendSynAck);
            conn.transition(Side::Client, StateEvent::RecvSynAck);
        }
    } else if conn.end(side).state == TcpState::CLOSED && conn.end(peer).state == TcpState::CLOSED && !seg.flags.rst {
        // First segment of a connection whose opening was not captured.
        conn.transition(side, StateEvent::MidStream);
        conn.transition(peer, StateEvent::MidStream);
    }

    let keepalive = is_keepalive_probe(conn, seg, side, idle);
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
        end.acked = Some(end.acked.map_or(seg.ack, |a| a.max(seg.ack)));
        if !conn.handshake_acked && conn.syn_ack_seen && side == Side::Client && !seg.flags.syn {
            if let Some(isn) = conn.end(Side::Server).isn {
                if seg.ack.at_or_after(isn.wrapping_add(1)) {
                    conn.handshake_acked = true;
                    conn.transition(Side::Server, StateEvent::RecvAckOfSyn);
                }
            }
        }
        let peer_end = conn.end(peer);
        if let (Some(fin), false) = (peer_end.fin_seq, peer_end.fin_acked) {
            if seg.ack.at_or_after(fin.wrapping_add(1)) {
                conn.end_mut(peer).fin_acked = true;
                conn.transition(peer, StateEvent::RecvAckOfFin);
            }
        }
    }

    let data_seq = if seg.flags.syn { seg.seq.wrapping_add(1) } else { seg.seq };
    if seg.wire_len > 0 && !keepalive {
        conn.end_mut(side).last_data_ts = Some(seg.ts);
        if conn.last_payload_side != Some(side) {
            if side == Side::Server && conn.last_payload_side == Some(Side::Client) {
                conn.exchanges += 1;
            }
            conn.last_payload_side = Some(side);
        }
        events.clear();
        conn.watcher.on_segment(side, data_seq, seg.payload, seg.wire_len, seg.ts, events);
        forward_protocol_events(conn, events, seg.ts, sink);
    }

    let seg_end = seg.seq.wrapping_add(seg.seq_len());
    {
        let end = conn.end_mut(side);
        end.next_seq = Some(end.next_seq.map_or(seg_end, |n| n.max(seg_end)));
    }

    if seg.flags.fin && conn.end(side).fin_seq.is_none() {
        let fin_seq = data_seq.wrapping_add(seg.wire_len);
        conn.end_mut(side).fin_seq = Some(fin_seq);
        if conn.fin_first.is_none() {
            conn.fin_first = Some(side);
            conn.first_fin_ts = Some(seg.ts);
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
        events.clear();
        conn.watcher.on_fin(side, fin_seq, events);
        forward_protocol_events(conn, events, seg.ts, sink);
        sink.event(conn.id, &FlowEvent::Fin { side });
    }
    note_segment(conn, seg, side, keepalive, sink);
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
/// everything the sender sent already acknowledged, the peer's window open, after an idle period,
/// and the sender has not closed (the last ACK after a close is not a probe).
fn is_keepalive_probe(conn: &Connection, seg: &Segment<'_>, side: Side, idle: f64) -> bool {
    if seg.flags.syn || seg.flags.fin || seg.flags.rst || seg.wire_len > 1 || idle < KEEPALIVE_MIN_IDLE {
        return false;
    }
    let sender = conn.end(side);
    let receiver = conn.end(side.peer());
    let Some(next) = sender.next_seq else { return false };
    sender.fin_seq.is_none() && seg.seq == next.wrapping_sub(1) && receiver.acked == Some(next) && receiver.window > 0
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
