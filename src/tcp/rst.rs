//! RST acceptability (RFC 5961 3.2, as Linux checks it).
//!
//! Input: an RST segment and its connection's endpoints, from the connection update. Output: whether
//! the RST ends the connection (else it is counted as ignored).

use super::connection::Connection;
use super::side::Side;
use super::state::TcpState;
use crate::decode::Segment;

/// RFC 5961-style check: an RST closes the connection only if its sequence number is where the
/// receiver expects it (within its window). An RST answering a SYN must acknowledge the SYN.
pub(super) fn rst_acceptable(conn: &Connection, seg: &Segment<'_>, side: Side) -> bool {
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
