//! The flow table: rebuilds TCP connections from decoded segments.
//!
//! Input: [`Segment`]s from [`crate::decode`], one at a time, in capture order (the pipeline, or a
//! parallel worker, calls [`FlowTable::process`]). Output: [`FlowEvent`]s, and each finished
//! connection's [`TcpFacts`] with its protocol summary and [`EndReason`], to a [`FlowSink`] (the
//! pipeline's collector and parallel workers, which build the report's record from them).
//!
//! A map from the 4-tuple ([`key`]) to the open connection (`connection.rs`, which also runs the
//! connection's protocol watcher on its payload). A SYN whose initial sequence number differs from
//! the open connection's starts a new connection on the same tuple (Linux reuses client ports), a
//! retransmitted SYN (same ISN) counts once. A connection is finalised as soon as it ends (both FINs
//! acknowledged, or an acceptable RST) and handed to the [`FlowSink`], so memory follows the open
//! connections. What closed connections leave behind (tombstones, TIME_WAIT amendments, eviction)
//! is in `closed.rs`. Socket states follow the one state machine in [`state`].

mod closed;
mod connection;
pub mod key;
mod open;
mod probes;
mod rst;
pub mod state;
#[cfg(test)]
mod tests;

pub use closed::{TIME_WAIT_SECONDS, TOMBSTONE_LIFETIME_MAX};
pub use connection::TcpFacts;
pub use key::FlowKey;

use crate::decode::Segment;
use crate::protocol::keylog::TlsKeys;
use crate::protocol::ProtocolEvent;
use crate::protocol::{ProtocolSummary, ProtocolWatcher};
use crate::wire::Side;
use closed::{Tombstone, TOMBSTONE_TTL};
use connection::{finalise, is_late_syn, update, Connection};
use open::{OpenConnections, Slot, SynOnly};
use serde::Serialize;
use state::TcpState;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

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

/// Why a connection ended, as the flow table hands it over (the record's `end` in the JSON report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Both FINs acknowledged, or an RST.
    Closed,
    /// A new SYN with another initial sequence number reused the 4-tuple.
    Replaced,
    /// Still open when the capture ended.
    OpenAtEnd,
    /// Dropped to stay under `--max-connections`.
    Evicted,
}

/// A change to a connection already handed over (its record is final but for this): what its
/// TIME_WAIT socket met after the close, found from the closed tuple's tombstone (`closed.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amendment {
    /// The connection's 4-tuple: of the connections on it, the last one that ended.
    pub key: FlowKey,
    pub server_port: u16,
    /// The client's TIME_WAIT ended: an acceptable RST killed it, or a new SYN recycled the tuple.
    pub client_closed: bool,
    /// The server's TIME_WAIT ended, as `client_closed`.
    pub server_closed: bool,
    /// The sender of the RST that killed a TIME_WAIT, set on the connection's first such RST only.
    pub rst_by: Option<Side>,
    /// A new SYN recycled the tuple: the record's `end` becomes `replaced`.
    pub replaced: bool,
    /// RSTs that reached a TIME_WAIT socket with another sequence number than it expects (ignored).
    pub rst_ignored: u32,
}

/// Receives what the flow table finds.
pub trait FlowSink {
    /// True when the sink wants a [`FlowEvent::Segment`] for every segment (ladder diagrams).
    fn wants_segments(&self) -> bool {
        false
    }
    /// True when the sink wants the [`FlowEvent::Protocol`] events (requests, responses, TLS
    /// hellos) as they happen; a sink that only keeps records says no, and is spared them.
    fn wants_protocol_events(&self) -> bool {
        true
    }
    /// An event on connection `id`.
    fn event(&mut self, _id: u64, _event: &FlowEvent) {}
    /// A connection has ended (or the capture did): what the table knows of it, what its protocol
    /// watcher read, and why it ended. `capture_start` is the epoch second of the capture's first
    /// packet, which the record's times count from (`crate::report::ConnectionRecord::from_facts`
    /// builds the record from these).
    fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>);
    /// A connection already ended changed after its close: an RST killed its TIME_WAIT, or a new
    /// SYN recycled its tuple. Only connections that ended [`EndReason::Closed`] with a side in
    /// TIME_WAIT are amended, within [`TIME_WAIT_SECONDS`] of capture time after their last segment.
    fn connection_amended(&mut self, _amendment: Amendment) {}
}

/// Counters of segments the table could not attribute to an open connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowCounters {
    pub after_close: u64,
    pub evicted: u64,
}

/// The table of open connections.
pub struct FlowTable {
    open: OpenConnections,
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
            open: OpenConnections::default(),
            tombstones: HashMap::default(),
            opened_order: VecDeque::new(),
            next_id: 1,
            server_port,
            max_connections: max_connections.clamp(1, OpenConnections::MAX),
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
        if let Some(slot) = self.open.slot_mut(&key) {
            if let Slot::Syn(syn) = slot {
                if syn.takes(seg, &key) {
                    syn.retransmitted(seg);
                    return;
                }
            }
            let Some(conn) = slot.full(&key, self.tls_keys.as_ref()) else { return };
            let retransmitted_syn = conn.client == seg.src && conn.end(Side::Client).isn == Some(seg.seq);
            if !is_syn || retransmitted_syn || is_late_syn(conn, seg) {
                update(conn, seg, sink, &mut self.protocol_events);
                if conn.closed() {
                    self.tombstones.insert(key, Tombstone::of(conn, &key, seg.ts));
                    if let Some(conn) = self.open.remove(&key) {
                        finalise(conn, EndReason::Closed, self.capture_start, &mut self.protocol_events, sink);
                    }
                    self.bound_closed_state();
                }
                return;
            }
            // A SYN with another ISN on an open tuple: the old connection ends, a new one starts.
            if let Some(old) = self.open.remove(&key) {
                finalise(old, EndReason::Replaced, self.capture_start, &mut self.protocol_events, sink);
            }
        } else if self.tombstones.get(&key).is_some_and(|stone| self.latest_ts - stone.closed_at <= TOMBSTONE_TTL) {
            if !is_syn {
                self.late_segment(key, seg, sink);
                return;
            }
            self.recycle(key, sink);
        }
        self.tombstones.remove(&key);
        self.make_room(sink);
        let (client, server) = key::orient(seg, self.server_port);
        let id = self.next_id;
        self.next_id += 1;
        sink.event(id, &FlowEvent::Opened { handshake: is_syn, client, server });
        // A plain SYN opens a SYN-only connection (`open.rs`), unless every segment is to be shown.
        let syn_only = if sink.wants_segments() { None } else { SynOnly::new(id, seg, &key) };
        if let Some(syn) = syn_only {
            self.open.insert(key, Slot::Syn(syn));
            self.opened_order.push_back((key, id));
            self.bound_closed_state();
            return;
        }
        let mut conn = Box::new(Connection::new(id, client, server, seg.ts));
        conn.watcher = ProtocolWatcher::with_tls_keys(self.tls_keys.clone());
        update(&mut conn, seg, sink, &mut self.protocol_events);
        if conn.closed() {
            // Closed by its first segment (a lone RST).
            self.tombstones.insert(key, Tombstone::of(&conn, &key, seg.ts));
            finalise(conn, EndReason::Closed, self.capture_start, &mut self.protocol_events, sink);
        } else {
            self.open.insert(key, Slot::Full(conn));
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

    /// Ends the capture: every open connection is finalised as it stands, in the order they
    /// opened (the eviction queue's order: one at a time, so that SYN-only connections are
    /// expanded only as they are finalised).
    pub fn finish(&mut self, sink: &mut dyn FlowSink) {
        for (key, id) in std::mem::take(&mut self.opened_order) {
            if self.open.holds(&key, id) {
                if let Some(conn) = self.open.remove(&key) {
                    finalise(conn, EndReason::OpenAtEnd, self.capture_start, &mut self.protocol_events, sink);
                }
            }
        }
        // Every open connection has its entry in the queue; none is left here.
        for (key, slot) in self.open.drain_in_order() {
            if let Some(conn) = slot.into_connection(&key) {
                finalise(conn, EndReason::OpenAtEnd, self.capture_start, &mut self.protocol_events, sink);
            }
        }
        self.tombstones.clear();
    }
}
