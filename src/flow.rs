//! The flow table: rebuilds TCP connections from segments.
//!
//! A map from the 4-tuple to the open connection. A SYN whose initial sequence number differs from
//! the open connection's starts a new connection on the same tuple (Linux reuses client ports), a
//! retransmitted SYN (same ISN) counts once. A connection is finalised as soon as it ends (both FINs
//! acknowledged, or an acceptable RST) and handed to the [`FlowSink`], so memory follows the open
//! connections. A small tombstone per recently closed tuple catches late segments (a retransmitted
//! last ACK) so they do not pass for new mid-stream connections.

use crate::decode::Segment;
use crate::protocol::{Protocol, ProtocolEvent, ProtocolWatcher};
use crate::report::{ConnectionRecord, EndReason, FinFirst, Handshake, PerSide, RequestRecord, TlsRecord};
use crate::seq::SeqNumber;
use crate::side::Side;
use crate::tcp_state::{StateEvent, TcpState};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// A segment counts as a keep-alive probe only after this much silence on the connection (seconds).
/// Linux's smallest keep-alive interval is 1 s; retransmissions come sooner than this after the data.
const KEEPALIVE_MIN_IDLE: f64 = 0.5;
/// Tombstones of closed tuples are forgotten after this much capture time (2 × MSL on Linux is 60 s).
const TOMBSTONE_TTL: f64 = 120.0;
/// Records keep at most this many requests each (counts are never capped).
const MAX_REQUESTS_LISTED: usize = 256;

/// Something that happened, for live views and ladder diagrams.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowEvent {
    /// A new connection (its SYN, or its first segment when mid-stream).
    Opened { handshake: bool },
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

/// Canonical 4-tuple: the lower endpoint first, so both directions map to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey(SocketAddr, SocketAddr);

impl FlowKey {
    fn of(a: SocketAddr, b: SocketAddr) -> FlowKey {
        if (a.ip(), a.port()) <= (b.ip(), b.port()) {
            FlowKey(a, b)
        } else {
            FlowKey(b, a)
        }
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
        !self.handshake_acked && self.ends.iter().all(|e| e.bytes == 0)
    }
}

/// The table of open connections.
pub struct FlowTable {
    open: HashMap<FlowKey, Connection, ahash::RandomState>,
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

    /// Counters of segments outside open connections.
    pub fn counters(&self) -> FlowCounters {
        self.counters
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open.len()
    }

    /// Processes one segment.
    pub fn process(&mut self, seg: &Segment<'_>, sink: &mut dyn FlowSink) {
        let start = *self.capture_start.get_or_insert(seg.ts);
        if seg.ts > self.latest_ts {
            self.latest_ts = seg.ts;
        }
        let key = FlowKey::of(seg.src, seg.dst);
        let is_syn = seg.flags.syn && !seg.flags.ack;

        if is_syn {
            if let Some(conn) = self.open.get(&key) {
                let retransmission = conn.client == seg.src && conn.end(Side::Client).isn == Some(seg.seq);
                if !retransmission {
                    let old = self.open.remove(&key).expect("present");
                    self.finalise(old, EndReason::Replaced, sink);
                }
            }
        }
        if !self.open.contains_key(&key) {
            if !is_syn && self.tombstones.contains_key(&key) {
                self.counters.after_close += 1;
                return;
            }
            self.tombstones.remove(&key);
            self.make_room(sink);
            let (client, server) = self.orient(seg);
            let id = self.next_id;
            self.next_id += 1;
            self.open.insert(key, Connection::new(id, client, server, seg.ts));
            self.opened_order.push_back((key, id));
            sink.event(id, &FlowEvent::Opened { handshake: is_syn });
        }

        let conn = self.open.get_mut(&key).expect("inserted above");
        let events = &mut self.protocol_events;
        update(conn, seg, sink, events);
        if conn.closed() {
            let conn = self.open.remove(&key).expect("present");
            self.tombstones.insert(key, seg.ts);
            self.finalise(conn, EndReason::Closed, sink);
        }
        if self.latest_ts - self.last_sweep_ts > TOMBSTONE_TTL / 4.0 {
            self.sweep_tombstones();
        }
        let _ = start;
    }

    /// Ends the capture: every open connection is finalised as it stands.
    pub fn finish(&mut self, sink: &mut dyn FlowSink) {
        let mut open: Vec<Connection> = self.open.drain().map(|(_, c)| c).collect();
        open.sort_by_key(|c| c.id);
        for conn in open {
            self.finalise(conn, EndReason::OpenAtEnd, sink);
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
                self.finalise(conn, EndReason::Evicted, sink);
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

    fn sweep_tombstones(&mut self) {
        let horizon = self.latest_ts - TOMBSTONE_TTL;
        self.tombstones.retain(|_, closed_at| *closed_at >= horizon);
        self.last_sweep_ts = self.latest_ts;
    }

    fn finalise(&mut self, mut conn: Connection, end: EndReason, sink: &mut dyn FlowSink) {
        let start = self.capture_start.unwrap_or(conn.first_ts);
        self.protocol_events.clear();
        let proto = conn.watcher.finish(&mut self.protocol_events);
        for event in self.protocol_events.drain(..) {
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
        let tls = proto.tls.as_ref().map(|t| TlsRecord {
            client_hellos: t.client_hellos,
            full_handshakes: t.full_handshakes,
            resumed_handshakes: t.resumed_handshakes,
            sni: t.sni.clone(),
            version: t.version.clone(),
            exchanges_estimate: t.exchanges_estimate,
        });
        let requests: Vec<RequestRecord> = proto.exchanges.iter().take(MAX_REQUESTS_LISTED).map(RequestRecord::from).collect();
        let h2_streams = proto.h2.as_ref().map(|h| h.streams);
        let request_count = if let Some(streams) = h2_streams {
            streams.max(proto.http_requests)
        } else if encrypted {
            tls.as_ref().map_or(0, |t| t.exchanges_estimate)
        } else if proto.protocol == Protocol::Http1 {
            proto.http_requests
        } else {
            conn.exchanges
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
            client: conn.client.to_string(),
            server: conn.server.to_string(),
            server_port: conn.server.port(),
            first_ts: conn.first_ts - start,
            last_ts: conn.last_ts - start,
            duration: conn.last_ts - conn.first_ts,
            handshake,
            protocol: proto.protocol,
            http_requests: if encrypted { None } else { Some(proto.http_requests) },
            http_responses: if encrypted { None } else { Some(proto.http_responses) },
            requests,
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
        };
        sink.connection_ended(record);
    }
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
        let answers_syn = conn.end(Side::Client).isn.is_none_or(|isn| seg.ack == isn.add(1));
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
                if seg.ack.at_or_after(isn.add(1)) {
                    conn.handshake_acked = true;
                    conn.transition(Side::Server, StateEvent::RecvAckOfSyn);
                }
            }
        }
        let peer_end = conn.end(peer);
        if let (Some(fin), false) = (peer_end.fin_seq, peer_end.fin_acked) {
            if seg.ack.at_or_after(fin.add(1)) {
                conn.end_mut(peer).fin_acked = true;
                conn.transition(peer, StateEvent::RecvAckOfFin);
            }
        }
    }

    let data_seq = if seg.flags.syn { seg.seq.add(1) } else { seg.seq };
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
        forward_protocol_events(conn, side, events, seg.ts, sink);
    }

    let seg_end = seg.seq.add(seg.seq_len());
    {
        let end = conn.end_mut(side);
        end.next_seq = Some(end.next_seq.map_or(seg_end, |n| n.max(seg_end)));
    }

    if seg.flags.fin && conn.end(side).fin_seq.is_none() {
        let fin_seq = data_seq.add(seg.wire_len);
        conn.end_mut(side).fin_seq = Some(fin_seq);
        if conn.fin_first.is_none() {
            conn.fin_first = Some(side);
            conn.first_fin_ts = Some(seg.ts);
        } else if let Some(peer_fin) = conn.end(peer).fin_seq {
            // Our FIN crossed the peer's: it does not acknowledge the peer's FIN.
            if !(seg.flags.ack && seg.ack.at_or_after(peer_fin.add(1))) {
                conn.simultaneous_close = true;
            }
        }
        conn.transition(side, StateEvent::SendFin);
        conn.transition(peer, StateEvent::RecvFin);
        events.clear();
        conn.watcher.on_fin(side, fin_seq, events);
        forward_protocol_events(conn, side, events, seg.ts, sink);
        sink.event(conn.id, &FlowEvent::Fin { side });
    }
    note_segment(conn, seg, side, keepalive, sink);
}

fn forward_protocol_events(conn: &mut Connection, side: Side, events: &mut Vec<ProtocolEvent>, ts: f64, sink: &mut dyn FlowSink) {
    for event in events.drain(..) {
        let from = match event {
            ProtocolEvent::HttpResponse { .. } => {
                conn.last_response_ts = Some(ts);
                Side::Server
            }
            ProtocolEvent::HttpRequest { .. } | ProtocolEvent::TlsClientHello { .. } | ProtocolEvent::H2Preface => Side::Client,
        };
        let _ = side;
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
    sender.fin_seq.is_none()
        && seg.seq == next.sub(1)
        && receiver.acked == Some(next)
        && receiver.window > 0
}

/// RFC 5961-style check: an RST closes the connection only if its sequence number is where the
/// receiver expects it (within its window). An RST answering a SYN must acknowledge the SYN.
fn rst_acceptable(conn: &Connection, seg: &Segment<'_>, side: Side) -> bool {
    let sender = conn.end(side);
    let receiver = conn.end(side.peer());
    if receiver.state == TcpState::SYN_SENT {
        return seg.flags.ack && receiver.isn.is_none_or(|isn| seg.ack == isn.add(1));
    }
    // Where the receiver expects the sender's next byte: what it acknowledged, else what the sender sent.
    let Some(expected) = receiver.acked.or(sender.next_seq) else { return true };
    let window = receiver.window.max(65_535);
    let offset = seg.seq.diff(expected);
    (-1..=window as i64).contains(&i64::from(offset))
}

#[cfg(test)]
mod tests {
    use super::http_first_line_label;

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
