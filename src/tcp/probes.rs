//! The keep-alive probe rule.
//!
//! Input: a segment and its connection's endpoints, from the connection update. Output: whether the
//! segment is a keep-alive probe (counted per side in the record, and not payload).

use super::connection::Connection;
use super::side::Side;
use crate::decode::Segment;

/// A segment counts as a keep-alive probe only after its sender has sent nothing new in its sequence
/// space for this long (seconds). Linux's smallest keep-alive time is 1 s; retransmissions of the
/// last byte come sooner than this after the data.
const KEEPALIVE_MIN_IDLE: f64 = 0.5;

/// A keep-alive probe: 0 or 1 byte, no SYN/FIN/RST, sequence number one below the sender's next,
/// everything the sender sent already acknowledged, the peer's window open (a zero-window probe has
/// the same shape), the sender idle, and the sender not closed (the last ACK after a close is not a
/// probe). Idle is judged per sender: how long since it last sent anything new in its sequence
/// space, not since the last packet of either side, so two probes that cross both count.
pub(super) fn is_keepalive_probe(conn: &Connection, seg: &Segment<'_>, side: Side) -> bool {
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
