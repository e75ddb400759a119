//! RST acceptability (RFC 5961 3.2, as Linux checks it).
//!
//! Input: an RST segment and its connection's endpoints, from the connection update. Output: whether
//! the RST ends the connection (else it is counted as ignored).

use super::connection::Connection;
use super::state::TcpState;
use crate::decode::Segment;
use crate::wire::Side;

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

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::report::Handshake;

    // Any state: an RST ends the connection only where the receiver expects it.

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
}
