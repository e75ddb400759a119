//! One connection and the update each of its segments makes.
//!
//! Input: a segment of the connection, from [`super::FlowTable::process`]. Output: both endpoints'
//! sequence-space facts and socket states (through the state machine in [`super::state`]), the
//! payload handed to the connection's [`ProtocolWatcher`] (the protocol watchers run here, inside
//! the update), and [`FlowEvent`]s to the [`FlowSink`]. When the connection ends, its record.

use super::probes::is_keepalive_probe;
use super::rst::rst_acceptable;
use super::state::{StateEvent, TcpState};
use super::{EndReason, FlowEvent, FlowSink, SegmentNote};
use crate::decode::Segment;
use crate::protocol::{ProtocolEvent, ProtocolWatcher};
use crate::wire::SeqNumber;
use crate::wire::Side;
use std::net::SocketAddr;

/// A SYN seen at most this long (seconds) after the SYN-ACK that acknowledges it is that
/// connection's SYN, captured out of order (merged capture points, several capture CPUs).
const REORDER_WINDOW: f64 = 1.0;

/// One side's sending half, as seen from its segments and the peer's acknowledgements.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub(super) isn: Option<SeqNumber>,
    /// Next sequence number this side will send (highest seq + length seen).
    pub(super) next_seq: Option<SeqNumber>,
    /// Highest acknowledgement this side has sent (of the peer's bytes).
    pub(super) acked: Option<SeqNumber>,
    /// `acked` before its last increase.
    pub(super) acked_before_last_step: Option<SeqNumber>,
    /// Receive window this side last advertised, in bytes (scaled once both SYNs showed the option).
    pub(super) window: u32,
    pub(super) window_scale: Option<u8>,
    pub(super) fin_seq: Option<SeqNumber>,
    /// Acknowledgement number the FIN carried.
    pub(super) fin_ack: Option<SeqNumber>,
    /// `fin_seq` was inferred from the peer's segments, this side's FIN not captured (yet).
    pub(super) fin_inferred: bool,
    pub(super) fin_acked: bool,
    /// A FIN seen before the data it follows: handed to the protocol watcher once that data came.
    pub(super) fin_waiting_for_data: Option<SeqNumber>,
    pub(super) state: TcpState,
    pub(super) probes: u32,
    pub(super) probe_times: (Option<f64>, Option<f64>),
    pub(super) packets: u64,
    pub(super) bytes: u64,
    /// When this side last sent something new in its sequence space (SYN, data, FIN).
    pub(super) last_advance_ts: Option<f64>,
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
pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) client: SocketAddr,
    pub(super) server: SocketAddr,
    pub(super) first_ts: f64,
    pub(super) last_ts: f64,
    pub(super) ends: [Endpoint; 2],
    pub(super) syn_seen: bool,
    pub(super) syn_ack_seen: bool,
    /// Acknowledgement number of the server's SYN-ACK, to match a SYN captured after it.
    pub(super) syn_ack_ack: Option<SeqNumber>,
    pub(super) handshake_acked: bool,
    pub(super) fin_first: Option<Side>,
    pub(super) simultaneous_close: bool,
    pub(super) rst_by: Option<Side>,
    pub(super) rst_ignored: u32,
    pub(super) watcher: ProtocolWatcher,
    /// Turns of payload: a client burst followed by a server burst is one exchange.
    pub(super) exchanges: u32,
    pub(super) last_payload_side: Option<Side>,
    pub(super) last_response_ts: Option<f64>,
    pub(super) first_fin_ts: Option<f64>,
    /// When the first FIN or acceptable RST came: the connection stopped being used.
    pub(super) first_close_ts: Option<f64>,
    /// Requests sent and answered in full when the first FIN came.
    pub(super) at_first_fin: Option<(u32, u32)>,
}

impl Connection {
    pub(super) fn new(id: u64, client: SocketAddr, server: SocketAddr, ts: f64) -> Connection {
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

    pub(super) fn side_of(&self, src: SocketAddr) -> Side {
        if src == self.client {
            Side::Client
        } else {
            Side::Server
        }
    }

    pub(super) fn end(&self, side: Side) -> &Endpoint {
        &self.ends[side.index()]
    }

    pub(super) fn end_mut(&mut self, side: Side) -> &mut Endpoint {
        &mut self.ends[side.index()]
    }

    fn transition(&mut self, side: Side, event: StateEvent) {
        self.end_mut(side).state.apply(event);
    }

    /// Ended by an acceptable RST, or by both FINs acknowledged. A FIN only inferred (one-direction
    /// captures) does not end the connection: its segments may still come, captured late.
    pub(super) fn closed(&self) -> bool {
        self.rst_by.is_some() || self.ends.iter().all(|e| e.fin_seq.is_some() && e.fin_acked && !e.fin_inferred)
    }

    pub(super) fn half_open(&self) -> bool {
        self.syn_seen && !self.handshake_acked && self.ends.iter().all(|e| e.bytes == 0)
    }
}

/// What the flow table knows of a finished connection: the plain facts the report builds its
/// record from (`crate::report::ConnectionRecord::from_facts`). Timestamps in epoch seconds.
#[derive(Clone, Debug)]
pub struct TcpFacts {
    pub id: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub first_ts: f64,
    pub last_ts: f64,
    /// The client's SYN was captured.
    pub syn_seen: bool,
    /// The server's SYN-ACK answering it was captured.
    pub syn_ack_seen: bool,
    /// The client acknowledged the SYN-ACK.
    pub handshake_acked: bool,
    /// Turns of payload: a client burst followed by a server burst is one exchange.
    pub exchanges: u32,
    pub fin_first: Option<Side>,
    pub simultaneous_close: bool,
    pub rst_by: Option<Side>,
    pub rst_ignored: u32,
    /// Keep-alive probes per side, client first.
    pub keepalive_probes: [u32; 2],
    /// Mean seconds between one side's probes (the client's, else the server's), from two probes on.
    pub keepalive_interval: Option<f64>,
    pub client_state: TcpState,
    pub server_state: TcpState,
    pub packets: u64,
    pub bytes: u64,
    /// The client acknowledged every byte the server sent (up to its FIN).
    pub server_data_acked: bool,
    pub last_response_ts: Option<f64>,
    pub first_fin_ts: Option<f64>,
    /// When the first FIN or acceptable RST came: the connection stopped being used.
    pub first_close_ts: Option<f64>,
    /// Requests sent and answered in full when the first FIN came.
    pub at_first_fin: Option<(u32, u32)>,
}

impl TcpFacts {
    fn of(conn: &Connection) -> TcpFacts {
        let probe_interval = |e: &Endpoint| match e.probe_times {
            (Some(first), Some(last)) if e.probes > 1 => Some((last - first) / f64::from(e.probes - 1)),
            _ => None,
        };
        let (client, server) = (conn.end(Side::Client), conn.end(Side::Server));
        let data_end = server.fin_seq.or(server.next_seq);
        TcpFacts {
            id: conn.id,
            client: conn.client,
            server: conn.server,
            first_ts: conn.first_ts,
            last_ts: conn.last_ts,
            syn_seen: conn.syn_seen,
            syn_ack_seen: conn.syn_ack_seen,
            handshake_acked: conn.handshake_acked,
            exchanges: conn.exchanges,
            fin_first: conn.fin_first,
            simultaneous_close: conn.simultaneous_close,
            rst_by: conn.rst_by,
            rst_ignored: conn.rst_ignored,
            keepalive_probes: [client.probes, server.probes],
            keepalive_interval: probe_interval(client).or_else(|| probe_interval(server)),
            client_state: client.state,
            server_state: server.state,
            packets: client.packets + server.packets,
            bytes: client.bytes + server.bytes,
            server_data_acked: matches!((client.acked, data_end), (Some(acked), Some(end)) if acked.at_or_after(end)),
            last_response_ts: conn.last_response_ts,
            first_fin_ts: conn.first_fin_ts,
            first_close_ts: conn.first_close_ts,
            at_first_fin: conn.at_first_fin,
        }
    }
}

/// Ends a connection: the protocol watcher's last messages go to the sink, then the connection's
/// TCP facts and protocol summary, which the sink builds the record from.
pub(super) fn finalise(
    mut conn: Box<Connection>,
    end: EndReason,
    capture_start: Option<f64>,
    events: &mut Vec<ProtocolEvent>,
    sink: &mut dyn FlowSink,
) {
    events.clear();
    let proto = conn.watcher.finish(events);
    for event in events.drain(..) {
        sink.event(conn.id, &FlowEvent::Protocol { side: sender(&event), event });
    }
    sink.connection_ended(&TcpFacts::of(&conn), &proto, end, capture_start);
}

/// Which side sends a protocol message: responses come from the server, the rest from the client.
fn sender(event: &ProtocolEvent) -> Side {
    match event {
        ProtocolEvent::HttpResponse { .. } => Side::Server,
        ProtocolEvent::HttpRequest { .. } | ProtocolEvent::TlsClientHello { .. } | ProtocolEvent::H2Preface => Side::Client,
    }
}

/// Applies one segment to its connection: handshake, keep-alive, RST, ACK, payload, FIN, in that order.
///
/// Capture order is not always time order (merged capture points, several capture CPUs), so each
/// acknowledgement is matched both ways: when the ACK comes and when what it acknowledges comes
/// (a SYN-ACK after the client's ACK of it, a FIN after its ACK). A side's own segments also show
/// what it received when the other direction is not captured (see [`infer_from_sender`]).
pub(super) fn update(conn: &mut Connection, seg: &Segment<'_>, sink: &mut dyn FlowSink, events: &mut Vec<ProtocolEvent>) {
    let side = conn.side_of(seg.src);
    if seg.ts > conn.last_ts {
        conn.last_ts = seg.ts;
    }
    {
        let end = conn.end_mut(side);
        end.packets += 1;
        end.bytes += u64::from(seg.wire_len);
    }
    on_opening(conn, seg, side);
    let keepalive = is_keepalive_probe(conn, seg, side);
    if keepalive {
        count_probe(conn, seg.ts, side, sink);
    }
    if seg.flags.rst {
        on_rst(conn, seg, side, sink);
        if sink.wants_segments() {
            note_segment(conn, seg, side, keepalive, sink);
        }
        return;
    }
    let acks_new_peer_data = on_ack(conn, seg, side);
    let data_seq = if seg.flags.syn { seg.seq.wrapping_add(1) } else { seg.seq };
    if seg.wire_len > 0 && !keepalive {
        if acks_new_peer_data {
            // Sent after the peer's message arrived: a message of this side can begin here,
            // whatever order the capture put the two directions' segments in.
            conn.watcher.peer_data_received(side);
        }
        on_payload(conn, seg, side, data_seq, events, sink);
    }
    let sent_before = conn.end(side).next_seq;
    advance_next_seq(conn, seg, side);
    if seg.flags.fin && conn.end(side).fin_inferred {
        on_inferred_fin_captured(conn, seg, side, data_seq, events, sink);
    } else if seg.flags.fin && conn.end(side).fin_seq.is_none() {
        on_first_fin(conn, seg, side, data_seq, sent_before, events, sink);
    }
    if sink.wants_segments() {
        note_segment(conn, seg, side, keepalive, sink);
    }
}

/// Opening: the client's SYN, the server's SYN-ACK (either captured first), the first segment of
/// a connection whose opening was not captured, or what a side's own segment shows it received.
fn on_opening(conn: &mut Connection, seg: &Segment<'_>, side: Side) {
    let peer = side.peer();
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
}

/// Counts a keep-alive probe from `side` (see [`is_keepalive_probe`]), with its time for the interval.
fn count_probe(conn: &mut Connection, ts: f64, side: Side, sink: &mut dyn FlowSink) {
    let end = conn.end_mut(side);
    end.probes += 1;
    end.probe_times.0.get_or_insert(ts);
    end.probe_times.1 = Some(ts);
    sink.event(conn.id, &FlowEvent::KeepAlive { side });
}

/// An RST from `side`: an acceptable one (see [`rst_acceptable`]) closes both sides, another is counted.
fn on_rst(conn: &mut Connection, seg: &Segment<'_>, side: Side, sink: &mut dyn FlowSink) {
    if rst_acceptable(conn, seg, side) {
        conn.rst_by.get_or_insert(side);
        conn.first_close_ts.get_or_insert(seg.ts);
        conn.transition(side, StateEvent::Reset);
        conn.transition(side.peer(), StateEvent::Reset);
        sink.event(conn.id, &FlowEvent::Rst { side });
    } else {
        conn.rst_ignored += 1;
    }
}

/// ACK processing: the window `side` advertises, its highest acknowledgement, and what that
/// acknowledges of the peer (the SYN-ACK, the peer's FIN), whichever was captured first. True when
/// the segment acknowledges data of the peer's that `side` had not acknowledged before.
fn on_ack(conn: &mut Connection, seg: &Segment<'_>, side: Side) -> bool {
    // Window: scaled only when both SYNs carried the option (RFC 7323).
    let scale = match (conn.end(side).window_scale, conn.end(side.peer()).window_scale) {
        (Some(s), Some(_)) if !seg.flags.syn => u32::from(s),
        _ => 0,
    };
    conn.end_mut(side).window = u32::from(seg.window) << scale;
    let acks_new = seg.flags.ack && conn.end(side).acked.is_some_and(|a| seg.ack.after(a));
    if seg.flags.ack {
        let end = conn.end_mut(side);
        if end.acked.is_none_or(|a| seg.ack.after(a)) {
            end.acked_before_last_step = end.acked;
            end.acked = Some(seg.ack);
        }
    }
    // Both run on every segment: the ACK may have been captured before what it acknowledges.
    check_handshake_acked(conn);
    check_fin_acked(conn, side.peer());
    acks_new
}

/// Payload: counts turns (a client burst then a server burst is one exchange) and hands the bytes
/// at `data_seq` to the protocol watcher, and the FIN that waited for them.
fn on_payload(
    conn: &mut Connection,
    seg: &Segment<'_>,
    side: Side,
    data_seq: SeqNumber,
    events: &mut Vec<ProtocolEvent>,
    sink: &mut dyn FlowSink,
) {
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

/// Moves `side`'s next sequence number on when the segment reaches beyond it.
fn advance_next_seq(conn: &mut Connection, seg: &Segment<'_>, side: Side) {
    let seg_end = seg.seq.wrapping_add(seg.seq_len());
    let end = conn.end_mut(side);
    if end.next_seq.is_none_or(|n| seg_end.after(n)) {
        end.next_seq = Some(seg_end);
        end.last_advance_ts = Some(seg.ts);
    }
}

/// The FIN the peer's segments implied (see [`infer_from_sender`]), captured after all: its states
/// were set then.
fn on_inferred_fin_captured(
    conn: &mut Connection,
    seg: &Segment<'_>,
    side: Side,
    data_seq: SeqNumber,
    events: &mut Vec<ProtocolEvent>,
    sink: &mut dyn FlowSink,
) {
    let fin_seq = data_seq.wrapping_add(seg.wire_len);
    let end = conn.end_mut(side);
    end.fin_inferred = false;
    end.fin_seq = Some(fin_seq);
    end.fin_ack = seg.flags.ack.then_some(seg.ack);
    events.clear();
    watch_fin(conn, side, fin_seq, events);
    forward_protocol_events(conn, events, seg.ts, sink);
    sink.event(conn.id, &FlowEvent::Fin { side });
}

/// `side`'s first FIN: which side closed first (in time, not capture order), both sides' states,
/// and the end of `side`'s stream for the protocol watcher (once the data before it has come).
fn on_first_fin(
    conn: &mut Connection,
    seg: &Segment<'_>,
    side: Side,
    data_seq: SeqNumber,
    sent_before: Option<SeqNumber>,
    events: &mut Vec<ProtocolEvent>,
    sink: &mut dyn FlowSink,
) {
    let peer = side.peer();
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
        // The peer's FIN was captured first but acknowledges this one, so this FIN was sent first.
        conn.fin_first = Some(side);
        conn.transition(side, StateEvent::SendFinAnsweredByCapturedFin);
        conn.transition(peer, StateEvent::CapturedFinAnsweredPeerFin);
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
            // This side sent its FIN before the peer's (captured first) arrived.
            conn.transition(side, StateEvent::SendFinCrossingCapturedFin);
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
pub(super) fn is_late_syn(conn: &Connection, seg: &Segment<'_>) -> bool {
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
    if events.is_empty() {
        return;
    }
    if !sink.wants_protocol_events() {
        if events.iter().any(|event| sender(event) == Side::Server) {
            conn.last_response_ts = Some(ts);
        }
        events.clear();
        return;
    }
    for event in events.drain(..) {
        let from = sender(&event);
        if from == Side::Server {
            conn.last_response_ts = Some(ts);
        }
        sink.event(conn.id, &FlowEvent::Protocol { side: from, event });
    }
}

/// The segment as the ladder diagram draws it, for a sink that [wants segments](FlowSink::wants_segments).
fn note_segment(conn: &Connection, seg: &Segment<'_>, side: Side, keepalive: bool, sink: &mut dyn FlowSink) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
