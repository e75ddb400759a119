//! IP reassembly: the fragments of a TCP packet (IPv4 or IPv6) rebuilt into that packet, as the
//! receiving Linux host does (`net/ipv4/ip_fragment.c`, `net/ipv6/reassembly.c`).
//!
//! Input: the [`crate::decode::Fragment`]s decode finds, from the [`crate::pipeline`]. Output: each
//! rebuilt packet's bytes, which [`crate::decode::reassembled_segment`] turns into a segment for the
//! flow table.
//!
//! The rules are Linux's: a packet is complete when its last fragment (no "more fragments" flag)
//! has come and the fragments cover every byte before its end; a fragment that overlaps another
//! (RFC 5722, and Linux for IPv4 since 4.19) discards the whole packet, except an exact duplicate
//! (same offset and end: the same fragment captured twice), which is dropped alone; a fragment that
//! contradicts the packet's end, ends past 65,535 bytes, or is empty discards it too. Incomplete
//! packets are bounded as `ipfrag_time` and `ipfrag_high_thresh` bound them: a packet whose first
//! fragment is older than [`FRAGMENT_TIMEOUT`] (by capture time) is dropped, and a fragment that
//! comes while [`MAX_HELD_BYTES`] are held (or [`MAX_HELD_PACKETS`] packets) is dropped. Every
//! fragment that goes into no rebuilt packet is counted in [`Defragmenter::dropped`].
//!
//! etherparse's `IpDefragPool` is not used: it has no bound on what it holds and lets an
//! overlapping fragment overwrite the bytes already received, where Linux discards the packet.

use crate::decode::{Fragment, FragmentKey};
use std::collections::{HashMap, VecDeque};

/// Seconds an incomplete packet is kept after its first fragment (Linux `ipfrag_time`).
pub const FRAGMENT_TIMEOUT: f64 = 30.0;
/// Bytes of incomplete packets held at most (Linux `ipfrag_high_thresh`, 4 MiB).
pub const MAX_HELD_BYTES: usize = 4 << 20;
/// Incomplete packets held at most.
pub const MAX_HELD_PACKETS: usize = 4096;
/// Largest IP packet payload a fragment can reach (the IPv4 total length and the IPv6 payload
/// length are 16 bits).
const MAX_PACKET_LEN: u32 = 65_535;

/// A packet rebuilt from its fragments.
#[derive(Debug)]
pub struct Rebuilt {
    /// Timestamp of the fragment that completed it.
    pub ts: f64,
    pub key: FragmentKey,
    /// The packet's payload (TCP header on) as far as the capture holds it without a hole.
    pub captured: Vec<u8>,
    /// The payload's length on the wire.
    pub wire_len: u32,
}

/// The fragments received of one packet.
struct Partial {
    /// Tells this packet from a later one with the same key, in the expiry queue.
    serial: u64,
    /// The fragments, by their byte ranges in the payload: `(start, end, captured end)`.
    pieces: Vec<(u32, u32, u32)>,
    /// The payload so far; bytes not received (or not captured) are zero.
    data: Vec<u8>,
    /// The payload's length, once the last fragment has come.
    end: Option<u32>,
}

impl Partial {
    /// Bytes held for this packet.
    fn held(&self) -> usize {
        self.data.capacity() + self.pieces.capacity() * std::mem::size_of::<(u32, u32, u32)>()
    }
}

/// What adding a fragment did to the packet it belongs to.
enum Added {
    /// Kept, the packet is still incomplete.
    Held,
    /// The fragment was dropped alone (an exact duplicate).
    Duplicate,
    /// The fragment contradicts the ones before: the packet is discarded.
    Discard,
}

/// Fragments of TCP packets waiting for the rest of their packet.
#[derive(Default)]
pub struct Defragmenter {
    partials: HashMap<FragmentKey, Partial, ahash::RandomState>,
    /// The packets in the order their first fragment came, to expire them: `(first_ts, key, serial)`.
    expiry: VecDeque<(f64, FragmentKey, u64)>,
    next_serial: u64,
    /// Bytes held, over all incomplete packets.
    held_bytes: usize,
    dropped: u64,
}

impl Defragmenter {
    /// Fragments that went into no rebuilt packet so far: dropped (overlapping, contradicting,
    /// duplicated, over the bound) or expired. [`Defragmenter::finish`] adds the ones still held.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds a fragment; returns its packet when this fragment completes it.
    pub fn add(&mut self, fragment: &Fragment<'_>) -> Option<Rebuilt> {
        self.expire(fragment.ts);
        let start = fragment.offset;
        let end = start + fragment.wire_len;
        let unaligned = fragment.more && end % 8 != 0;
        if fragment.wire_len == 0 || end > MAX_PACKET_LEN || unaligned {
            // Empty, past the largest packet, or a middle fragment whose length is not a multiple
            // of 8: Linux discards the packet.
            self.dropped += 1;
            self.discard(&fragment.key);
            return None;
        }
        let key = fragment.key;
        if !self.partials.contains_key(&key) {
            if self.partials.len() >= MAX_HELD_PACKETS || self.held_bytes >= MAX_HELD_BYTES {
                self.dropped += 1;
                return None;
            }
            self.next_serial += 1;
            self.expiry.push_back((fragment.ts, key, self.next_serial));
            let partial = Partial { serial: self.next_serial, pieces: Vec::new(), data: Vec::new(), end: None };
            self.partials.insert(key, partial);
        } else if self.held_bytes >= MAX_HELD_BYTES {
            self.dropped += 1;
            return None;
        }
        let partial = self.partials.get_mut(&key)?;
        let before = partial.held();
        let added = add_piece(partial, fragment, end);
        let after = partial.held();
        self.held_bytes = self.held_bytes + after - before;
        match added {
            Added::Duplicate => {
                self.dropped += 1;
                None
            }
            Added::Discard => {
                self.dropped += 1;
                self.discard(&key);
                None
            }
            Added::Held => {
                let total = partial.end?;
                let received: u32 = partial.pieces.iter().map(|&(s, e, _)| e - s).sum();
                if received != total {
                    return None;
                }
                let partial = self.partials.remove(&key)?;
                self.held_bytes -= partial.held();
                Some(rebuild(partial, key, fragment.ts, total))
            }
        }
    }

    /// Ends the capture: the fragments of packets still incomplete are dropped.
    pub fn finish(&mut self) {
        let keys: Vec<FragmentKey> = self.partials.keys().copied().collect();
        for key in keys {
            self.discard(&key);
        }
        self.expiry.clear();
    }

    /// Drops the packets whose first fragment came more than [`FRAGMENT_TIMEOUT`] before `now`.
    fn expire(&mut self, now: f64) {
        while let Some(&(first_ts, key, serial)) = self.expiry.front() {
            if now - first_ts <= FRAGMENT_TIMEOUT {
                break;
            }
            self.expiry.pop_front();
            if self.partials.get(&key).is_some_and(|p| p.serial == serial) {
                self.discard(&key);
            }
        }
        // Entries of packets completed or discarded are left in the queue: compact it when they
        // outnumber the live ones.
        if self.expiry.len() > 2 * self.partials.len() + 64 {
            let partials = &self.partials;
            self.expiry.retain(|(_, key, serial)| partials.get(key).is_some_and(|p| p.serial == *serial));
        }
    }

    /// Discards a packet and counts its fragments as dropped.
    fn discard(&mut self, key: &FragmentKey) {
        if let Some(partial) = self.partials.remove(key) {
            self.held_bytes -= partial.held();
            self.dropped += partial.pieces.len() as u64;
        }
    }
}

/// Adds a fragment covering `[fragment.offset, end)` to its packet, by Linux's rules.
fn add_piece(partial: &mut Partial, fragment: &Fragment<'_>, end: u32) -> Added {
    let start = fragment.offset;
    if partial.pieces.iter().any(|&(s, e, _)| s == start && e == end) {
        return Added::Duplicate;
    }
    if partial.pieces.iter().any(|&(s, e, _)| start < e && s < end) {
        return Added::Discard;
    }
    match partial.end {
        // Past the end already known, or a second last fragment with another end.
        Some(total) if end > total || !fragment.more => return Added::Discard,
        None if !fragment.more => {
            if partial.pieces.iter().any(|&(_, e, _)| e > end) {
                return Added::Discard;
            }
            partial.end = Some(end);
        }
        _ => {}
    }
    let captured = &fragment.data[..fragment.data.len().min(fragment.wire_len as usize)];
    let captured_end = start + captured.len() as u32;
    if partial.data.len() < end as usize {
        partial.data.resize(end as usize, 0);
    }
    partial.data[start as usize..captured_end as usize].copy_from_slice(captured);
    partial.pieces.push((start, end, captured_end));
    Added::Held
}

/// The packet of a complete set of fragments (which tile `[0, total)`).
fn rebuild(mut partial: Partial, key: FragmentKey, ts: f64, total: u32) -> Rebuilt {
    partial.pieces.sort_unstable();
    // The captured bytes run without a hole up to the first fragment the capture cut short.
    let captured = partial.pieces.iter().find(|&&(_, e, c)| c < e).map_or(total, |&(_, _, c)| c);
    partial.data.truncate(captured as usize);
    Rebuilt { ts, key, captured: partial.data, wire_len: total }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragmentKey {
        FragmentKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), id }
    }

    /// A fragment of packet `id` carrying `data` at byte `offset`, captured whole.
    fn piece(ts: f64, id: u32, offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment { ts, key: key(id), offset, more, data, wire_len: data.len() as u32 }
    }

    /// 48 bytes 0, 1, 2, ...
    fn payload() -> Vec<u8> {
        (0..48).collect()
    }

    #[test]
    fn test_two_fragments_in_order_rebuild_the_packet() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 0, true, &p[..24])).is_none());
        let rebuilt = d.add(&piece(1.1, 7, 24, false, &p[24..])).unwrap();
        assert_eq!((rebuilt.ts, rebuilt.key, rebuilt.wire_len), (1.1, key(7), 48));
        assert_eq!(rebuilt.captured, p);
        assert_eq!((d.dropped(), d.held_bytes, d.partials.len()), (0, 0, 0));
    }

    #[test]
    fn test_fragments_in_reverse_order_rebuild_the_packet() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 32, false, &p[32..])).is_none());
        assert!(d.add(&piece(1.0, 7, 16, true, &p[16..32])).is_none());
        assert_eq!(d.add(&piece(1.0, 7, 0, true, &p[..16])).unwrap().captured, p);
    }

    #[test]
    fn test_fragments_of_two_packets_interleaved_rebuild_both() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 0, true, &p[..24])).is_none());
        assert!(d.add(&piece(1.0, 8, 0, true, &p[..24])).is_none());
        assert_eq!(d.add(&piece(1.0, 8, 24, false, &p[24..])).unwrap().key, key(8));
        assert_eq!(d.add(&piece(1.0, 7, 24, false, &p[24..])).unwrap().key, key(7));
    }

    #[test]
    fn test_exact_duplicate_fragment_is_dropped_alone() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 0, true, &p[..24])).is_none());
        assert!(d.add(&piece(1.0, 7, 0, true, &p[..24])).is_none());
        assert_eq!(d.dropped(), 1);
        assert_eq!(d.add(&piece(1.0, 7, 24, false, &p[24..])).unwrap().captured, p);
    }

    #[test]
    fn test_overlapping_fragment_discards_the_packet_and_all_its_fragments() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 0, true, &p[..24])).is_none());
        // Rewrites bytes 16..24 (the RFC 1858 / teardrop pattern): Linux discards the packet.
        assert!(d.add(&piece(1.0, 7, 16, false, &p[16..])).is_none());
        assert_eq!(d.dropped(), 2);
        assert_eq!((d.held_bytes, d.partials.len()), (0, 0));
        // The rest that comes later starts a new packet that never completes.
        assert!(d.add(&piece(1.0, 7, 24, false, &p[24..])).is_none());
        d.finish();
        assert_eq!(d.dropped(), 3);
    }

    #[test]
    fn test_second_last_fragment_with_another_end_discards_the_packet() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 24, false, &p[24..])).is_none());
        assert!(d.add(&piece(1.0, 7, 0, false, &p[..16])).is_none());
        assert_eq!((d.dropped(), d.partials.len()), (2, 0));
    }

    #[test]
    fn test_fragment_past_the_known_end_discards_the_packet() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 16, false, &p[16..32])).is_none());
        assert!(d.add(&piece(1.0, 7, 32, true, &p[32..])).is_none());
        assert_eq!((d.dropped(), d.partials.len()), (2, 0));
    }

    #[test]
    fn test_middle_fragment_not_a_multiple_of_8_bytes_discards_the_packet() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 0, true, &p[..16])).is_none());
        assert!(d.add(&piece(1.0, 7, 16, true, &p[16..21])).is_none());
        assert_eq!((d.dropped(), d.partials.len()), (2, 0));
    }

    #[test]
    fn test_fragment_ending_past_65535_bytes_or_empty_is_dropped() {
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(1.0, 7, 65_528, false, &[0; 16])).is_none());
        assert!(d.add(&piece(1.0, 8, 8, false, &[])).is_none());
        assert_eq!((d.dropped(), d.partials.len()), (2, 0));
    }

    #[test]
    fn test_incomplete_packet_expires_30_seconds_after_its_first_fragment() {
        let p = payload();
        let mut d = Defragmenter::default();
        assert!(d.add(&piece(100.0, 7, 0, true, &p[..24])).is_none());
        // 30 s later it is still held (Linux's timer fires after ipfrag_time)...
        assert!(d.add(&piece(130.0, 8, 0, true, &p[..24])).is_none());
        assert_eq!(d.dropped(), 0);
        // ...and gone once more than 30 s have passed: its last fragment comes too late.
        assert!(d.add(&piece(130.5, 7, 24, false, &p[24..])).is_none());
        assert_eq!(d.dropped(), 1);
        assert_eq!(d.partials.len(), 2);
    }

    #[test]
    fn test_new_fragments_are_dropped_while_the_packet_bound_is_reached() {
        let mut d = Defragmenter::default();
        for id in 0..MAX_HELD_PACKETS as u32 {
            assert!(d.add(&piece(1.0, id, 0, true, &[0; 8])).is_none());
        }
        assert_eq!(d.dropped(), 0);
        assert!(d.add(&piece(1.0, u32::MAX, 0, true, &[0; 8])).is_none());
        assert_eq!((d.dropped(), d.partials.len()), (1, MAX_HELD_PACKETS));
        // A packet already held still completes.
        assert!(d.add(&piece(1.0, 0, 8, false, &[0; 8])).is_some());
    }

    #[test]
    fn test_held_bytes_stay_within_the_memory_bound_whatever_the_fragments() {
        // Each first fragment claims the end of a 64 KiB packet: the bytes reach the bound, then
        // every further fragment is dropped.
        let mut d = Defragmenter::default();
        for id in 0..200 {
            d.add(&piece(1.0, id, 65_520, false, &[0; 8]));
        }
        assert!(d.held_bytes <= MAX_HELD_BYTES + 70_000, "{}", d.held_bytes);
        assert!(d.dropped() >= 100, "{}", d.dropped());
        d.finish();
        assert_eq!((d.dropped(), d.held_bytes), (200, 0));
    }

    #[test]
    fn test_finish_counts_the_fragments_of_incomplete_packets_as_dropped() {
        let p = payload();
        let mut d = Defragmenter::default();
        d.add(&piece(1.0, 7, 0, true, &p[..16]));
        d.add(&piece(1.0, 7, 32, false, &p[32..]));
        d.add(&piece(1.0, 8, 0, true, &p[..16]));
        d.finish();
        assert_eq!((d.dropped(), d.partials.len(), d.held_bytes), (3, 0, 0));
    }

    #[test]
    fn test_fragment_cut_by_snaplen_rebuilds_the_packet_up_to_the_cut() {
        let p = payload();
        let mut d = Defragmenter::default();
        let cut = Fragment { ts: 1.0, key: key(7), offset: 0, more: true, data: &p[..10], wire_len: 24 };
        assert!(d.add(&cut).is_none());
        let rebuilt = d.add(&piece(1.0, 7, 24, false, &p[24..])).unwrap();
        assert_eq!((rebuilt.captured.as_slice(), rebuilt.wire_len), (&p[..10], 48));
    }

    #[test]
    fn test_random_fragments_never_panic_and_account_for_every_fragment() {
        // A fixed-seed generator: offsets, lengths, flags and ids all over the place.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let data = vec![0xAB; 2048];
        let mut d = Defragmenter::default();
        let mut rebuilt_fragments = 0u64;
        let mut pieces_in = 0u64;
        for i in 0..20_000u64 {
            let r = next();
            let offset = ((r & 0x1fff) as u32) * 8 % 66_000;
            let len = ((r >> 16) % 2048) as usize;
            let fragment = piece(i as f64 * 0.01, ((r >> 32) % 64) as u32, offset, r & (1 << 40) != 0, &data[..len]);
            pieces_in += 1;
            if let Some(rebuilt) = d.add(&fragment) {
                assert!(rebuilt.captured.len() as u32 <= rebuilt.wire_len);
                rebuilt_fragments += 1;
            }
        }
        d.finish();
        assert!(d.dropped() <= pieces_in);
        assert!(d.dropped() + rebuilt_fragments <= pieces_in);
        assert_eq!((d.partials.len(), d.held_bytes), (0, 0));
    }
}
