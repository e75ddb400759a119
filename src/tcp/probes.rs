//! The keep-alive probe rule.
//!
//! Input: a segment and its connection's endpoints, from the connection update. Output: whether the
//! segment is a keep-alive probe (counted per side in the record, and not payload).

use super::connection::Connection;
use crate::decode::Segment;
use crate::wire::Side;

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

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::report::PerSide;

    // ESTABLISHED: the probe rule.

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
}
