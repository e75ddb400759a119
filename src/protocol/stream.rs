//! Byte-stream reassembly for one direction of a TCP connection.
//!
//! Segments arrive in capture order; the consumer sees each stream byte once, in sequence order.
//! In-order payload is passed through as a borrowed slice; only out-of-order payload is copied,
//! into a bounded buffer. Whatever cannot be delivered (lost, never captured, cut by the snaplen,
//! or skipped because the buffer was full) is reported as a gap of so many bytes.

use crate::wire::SeqNumber;
use std::collections::VecDeque;

/// Most out-of-order payload bytes held per direction before skipping ahead.
pub const MAX_HELD_BYTES: usize = 256 * 1024;
/// Most out-of-order pieces held per direction before skipping ahead (bounds insertion cost).
pub const MAX_HELD_PIECES: usize = 512;

/// Longest segment payload believed; larger claimed lengths are clamped (keeps sequence arithmetic within 2^31).
const MAX_SEGMENT_LEN: u32 = 1 << 24;

/// Receives a direction's byte stream in order.
pub trait StreamConsumer {
    /// The next bytes of the stream.
    fn data(&mut self, bytes: &[u8]);
    /// `len` bytes of the stream are missing here.
    fn gap(&mut self, len: u64);
    /// The next bytes begin a segment that its sender sent after receiving new data from the peer
    /// (see [`Reassembler::segment`]).
    fn turn(&mut self) {}
}

/// An out-of-order piece: covers `[seq, seq + wire_len)`, of which the first `captured.len()` bytes were captured.
#[derive(Debug)]
struct HeldPiece {
    seq: SeqNumber,
    captured: Vec<u8>,
    wire_len: u32,
    /// The piece begins a segment sent at a turn.
    turn: bool,
}

impl HeldPiece {
    fn end(&self) -> SeqNumber {
        self.seq.wrapping_add(self.wire_len)
    }
}

/// Reassembles one direction; see the module documentation.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Sequence number of the next byte to deliver; `None` until the SYN or the first segment.
    next: Option<SeqNumber>,
    /// Out-of-order pieces, sorted by sequence number, never overlapping each other.
    held: VecDeque<HeldPiece>,
    held_bytes: usize,
    gaps: u32,
    gap_bytes: u64,
}

impl Reassembler {
    /// The stream starts at `seq` (ISN + 1 after a SYN); returns false (and changes nothing) when
    /// the stream had already started.
    pub fn start_at(&mut self, seq: SeqNumber) -> bool {
        let new = self.next.is_none();
        if new {
            self.next = Some(seq);
        }
        new
    }

    /// Number of holes reported so far.
    pub fn gaps(&self) -> u32 {
        self.gaps
    }

    /// Total bytes missing in the holes reported so far.
    pub fn gap_bytes(&self) -> u64 {
        self.gap_bytes
    }

    /// A segment whose first payload byte has sequence number `seq`, `wire_len` payload bytes on the wire,
    /// of which `payload` were captured. `turn`: the segment acknowledged new data of the peer's (it
    /// was sent after the peer's last message arrived); the consumer is told so, by
    /// [`StreamConsumer::turn`], right before the segment's first byte, also when the segment is
    /// held and delivered later.
    pub fn segment(&mut self, seq: SeqNumber, payload: &[u8], wire_len: u32, turn: bool, out: &mut impl StreamConsumer) {
        let wire_len = wire_len.min(MAX_SEGMENT_LEN);
        let captured_len = payload.len().min(wire_len as usize);
        let payload = &payload[..captured_len];
        if wire_len == 0 {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        if !seq.wrapping_add(wire_len).after(next) {
            return; // retransmission of bytes already delivered
        }
        if seq == next && self.held.is_empty() {
            // The common case: exactly the next bytes, and nothing held to merge them with.
            if turn {
                out.turn();
            }
            self.emit_range(seq, payload, seq.wrapping_add(wire_len), out);
            return;
        }
        if seq.after(next) && !self.make_room_for(seq, payload.len(), out) {
            self.hold(seq, payload, wire_len, turn);
            return;
        }
        if turn && seq == next {
            out.turn();
        }
        self.deliver_in_order(seq, payload, wire_len, out);
        self.drain_held(out);
    }

    /// The stream ends before `end` (the FIN's sequence number) or at end of capture when `None`:
    /// deliver what is held, reporting the holes before it, and the hole up to `end`.
    pub fn flush(&mut self, end: Option<SeqNumber>, out: &mut impl StreamConsumer) {
        while let Some(first) = self.held.front() {
            let start = first.seq;
            self.skip_to(start, out);
            self.drain_held(out);
        }
        if let Some(end) = end {
            if self.next.is_some() {
                self.skip_to(end, out);
            }
        }
    }

    /// Frees buffer space for a future segment at `seq` by skipping ahead over holes.
    /// Returns true when the segment has become in order.
    fn make_room_for(&mut self, seq: SeqNumber, len: usize, out: &mut impl StreamConsumer) -> bool {
        while self.held_bytes + len > MAX_HELD_BYTES || self.held.len() >= MAX_HELD_PIECES {
            let target = match self.held.front() {
                Some(first) if first.seq.after(seq) => seq,
                Some(first) => first.seq,
                None => seq,
            };
            self.skip_to(target, out);
            self.drain_held(out);
            if !seq.after(self.next.unwrap_or(seq)) {
                return true;
            }
        }
        false
    }

    /// Reports a hole from the next expected byte up to `target` and moves past it.
    fn skip_to(&mut self, target: SeqNumber, out: &mut impl StreamConsumer) {
        let Some(next) = self.next else { return };
        if target.after(next) {
            let len = target.diff(next) as u32;
            self.report_gap(len, out);
            self.next = Some(target);
        }
    }

    fn report_gap(&mut self, len: u32, out: &mut impl StreamConsumer) {
        if len > 0 {
            self.gaps = self.gaps.saturating_add(1);
            self.gap_bytes += u64::from(len);
            out.gap(u64::from(len));
        }
    }

    /// Delivers the part of an in-order segment after the next expected byte. Held pieces that start
    /// inside it arrived earlier, so their bytes win where they overlap.
    fn deliver_in_order(&mut self, seq: SeqNumber, payload: &[u8], wire_len: u32, out: &mut impl StreamConsumer) {
        let end = seq.wrapping_add(wire_len);
        while let Some(next) = self.next {
            if !end.after(next) {
                break;
            }
            match self.held.front() {
                Some(first) if !first.seq.after(next) => {
                    self.drain_held(out);
                }
                Some(first) if first.seq.after(next) && end.after(first.seq) => {
                    let until = first.seq;
                    self.emit_range(seq, payload, until, out);
                }
                _ => self.emit_range(seq, payload, end, out),
            }
        }
    }

    /// Delivers held pieces that have become in order.
    fn drain_held(&mut self, out: &mut impl StreamConsumer) {
        while let (Some(next), Some(first)) = (self.next, self.held.front()) {
            if first.seq.after(next) {
                break;
            }
            let Some(piece) = self.held.pop_front() else { break };
            self.held_bytes -= piece.captured.len();
            if piece.turn && piece.seq == next {
                out.turn();
            }
            if piece.end().after(next) {
                self.emit_range(piece.seq, &piece.captured, piece.end(), out);
            }
        }
    }

    /// Delivers stream bytes `[next, until)` out of a segment starting at `seq` whose captured bytes are `captured`;
    /// bytes of that range that were not captured are reported as a gap.
    fn emit_range(&mut self, seq: SeqNumber, captured: &[u8], until: SeqNumber, out: &mut impl StreamConsumer) {
        let Some(next) = self.next else { return };
        let from = next.diff(seq).max(0) as u32 as usize;
        let to = until.diff(seq).max(0) as u32 as usize;
        let captured_to = to.min(captured.len());
        if let Some(bytes) = captured.get(from..captured_to) {
            if !bytes.is_empty() {
                out.data(bytes);
            }
        }
        let missing = to.saturating_sub(from.max(captured_to));
        self.report_gap(missing as u32, out);
        self.next = Some(until);
    }

    /// Copies the parts of a future segment that no held piece covers yet (first copy wins).
    fn hold(&mut self, seq: SeqNumber, payload: &[u8], wire_len: u32, turn: bool) {
        let end = seq.wrapping_add(wire_len);
        let mut cursor = seq;
        let mut index = self.held.partition_point(|piece| !piece.end().after(cursor));
        while cursor.diff(end) < 0 {
            // Find the first held piece that ends after the cursor.
            while index < self.held.len() && !self.held[index].end().after(cursor) {
                index += 1;
            }
            let piece_end = match self.held.get(index) {
                Some(piece) if !piece.seq.after(cursor) => {
                    cursor = piece.end();
                    index += 1;
                    continue;
                }
                Some(piece) if end.after(piece.seq) => piece.seq,
                _ => end,
            };
            let from = cursor.diff(seq) as u32 as usize;
            let to = piece_end.diff(seq) as u32 as usize;
            let captured = payload.get(from..to.min(payload.len())).unwrap_or(&[]).to_vec();
            self.held_bytes += captured.len();
            self.held.insert(index, HeldPiece { seq: cursor, captured, wire_len: (to - from) as u32, turn: turn && cursor == seq });
            index += 1;
            cursor = piece_end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        gaps: Vec<u64>,
        /// Stream offsets at which a turn was signalled.
        turns: Vec<usize>,
    }

    impl StreamConsumer for Recorder {
        fn data(&mut self, bytes: &[u8]) {
            self.bytes.extend_from_slice(bytes);
        }
        fn gap(&mut self, len: u64) {
            self.gaps.push(len);
            self.bytes.extend(std::iter::repeat_n(b'?', len as usize));
        }
        fn turn(&mut self) {
            self.turns.push(self.bytes.len());
        }
    }

    fn feed(r: &mut Reassembler, out: &mut Recorder, seq: u32, payload: &[u8]) {
        r.segment(SeqNumber(seq), payload, payload.len() as u32, false, out);
    }

    #[test]
    fn test_turn_of_a_held_segment_is_signalled_where_its_bytes_are_delivered() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(1));
        r.segment(SeqNumber(1), b"abc", 3, true, &mut out);
        // Bytes 4..6 never captured; 7..9 and 10..12 held, the second sent at a turn.
        r.segment(SeqNumber(7), b"ghi", 3, false, &mut out);
        r.segment(SeqNumber(10), b"jkl", 3, true, &mut out);
        assert_eq!((out.bytes.as_slice(), out.turns.as_slice()), (&b"abc"[..], &[0][..]));
        r.flush(None, &mut out);
        assert_eq!(out.bytes, b"abc???ghijkl");
        assert_eq!(out.turns, [0, 9]);
    }

    #[test]
    fn test_in_order_segments_are_delivered_as_is() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(1001));
        feed(&mut r, &mut out, 1001, b"GET / ");
        feed(&mut r, &mut out, 1007, b"HTTP/1.1\r\n");
        assert_eq!(out.bytes, b"GET / HTTP/1.1\r\n");
        assert_eq!(r.gaps(), 0);
    }

    #[test]
    fn test_out_of_order_segment_is_held_until_the_hole_fills() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(1));
        feed(&mut r, &mut out, 6, b"world");
        assert_eq!(out.bytes, b"");
        feed(&mut r, &mut out, 1, b"hello");
        assert_eq!(out.bytes, b"helloworld");
        assert_eq!(r.gaps(), 0);
        assert_eq!(r.held_bytes, 0);
    }

    #[test]
    fn test_retransmission_is_delivered_once() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        feed(&mut r, &mut out, 100, b"abcdef");
        feed(&mut r, &mut out, 100, b"abcdef");
        feed(&mut r, &mut out, 103, b"defgh");
        assert_eq!(out.bytes, b"abcdefgh");
    }

    #[test]
    fn test_overlapping_retransmission_with_different_bytes_delivers_first_copy() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        feed(&mut r, &mut out, 100, b"abcd");
        feed(&mut r, &mut out, 102, b"XYZW"); // bytes 102,103 already delivered as "cd"
        assert_eq!(out.bytes, b"abcdZW");
        // Held pieces: the first copy wins too.
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(0));
        feed(&mut r, &mut out, 4, b"efgh");
        feed(&mut r, &mut out, 2, b"CDEFGHIJ");
        feed(&mut r, &mut out, 0, b"ab");
        assert_eq!(out.bytes, b"abCDefghIJ");
        // An in-order segment overlapping a held piece: the held piece arrived first.
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(0));
        feed(&mut r, &mut out, 3, b"de");
        feed(&mut r, &mut out, 0, b"abcDEf");
        assert_eq!(out.bytes, b"abcdef");
    }

    #[test]
    fn test_sequence_wrap() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        let isn = SeqNumber(u32::MAX - 3);
        r.start_at(isn.wrapping_add(1));
        feed(&mut r, &mut out, isn.wrapping_add(5).0, b"ef"); // after the wrap, out of order
        feed(&mut r, &mut out, isn.wrapping_add(1).0, b"abcd"); // crosses 2^32
        feed(&mut r, &mut out, isn.wrapping_add(7).0, b"g");
        assert_eq!(SeqNumber(1), isn.wrapping_add(5));
        assert_eq!(out.bytes, b"abcdefg");
        assert_eq!(r.gaps(), 0);
    }

    #[test]
    fn test_snaplen_cut_segment_reports_gap_for_the_missing_tail() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.segment(SeqNumber(10), b"abc", 10, false, &mut out);
        feed(&mut r, &mut out, 20, b"next");
        assert_eq!(out.bytes, b"abc???????next");
        assert_eq!(out.gaps, vec![7]);
        assert_eq!((r.gaps(), r.gap_bytes()), (1, 7));
    }

    #[test]
    fn test_flush_skips_holes_and_reports_them() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        feed(&mut r, &mut out, 0, b"ab");
        feed(&mut r, &mut out, 5, b"fg");
        r.flush(Some(SeqNumber(10)), &mut out);
        assert_eq!(out.bytes, b"ab???fg???");
        assert_eq!(out.gaps, vec![3, 3]);
        assert_eq!((r.gaps(), r.gap_bytes()), (2, 6));
    }

    #[test]
    fn test_full_buffer_skips_ahead_and_reports_the_gap() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(0));
        let chunk = vec![b'x'; 1000];
        let mut seq = 100u32;
        while (seq as usize) < 100 + MAX_HELD_BYTES + 1000 {
            feed(&mut r, &mut out, seq, &chunk);
            seq += 1000;
        }
        assert_eq!(out.gaps, vec![100]);
        assert_eq!(r.gap_bytes(), 100);
        assert!(r.held_bytes <= MAX_HELD_BYTES);
        assert_eq!(out.bytes.len() + r.held_bytes, seq as usize);
    }

    #[test]
    fn test_many_tiny_out_of_order_pieces_stay_bounded() {
        let (mut r, mut out) = (Reassembler::default(), Recorder::default());
        r.start_at(SeqNumber(0));
        for i in 0..5000u32 {
            feed(&mut r, &mut out, 1 + i * 2, b"y");
        }
        assert!(r.held.len() <= MAX_HELD_PIECES);
        r.flush(None, &mut out);
        assert_eq!(out.bytes.len(), 10_000);
        assert_eq!(r.gaps(), 5000);
    }
}
