//! `h2_frames`: arbitrary HTTP/2 frames (and HPACK header blocks) on an h2c connection, through
//! `ProtocolWatcher`: the client preface is sent first, then the input is cut into turns, each a
//! control byte (bit 0: side; bits 1-7: length, up to 127 bytes; 0 length means the rest) and its
//! bytes. The frame parser, the HPACK decoders and the stream bookkeeping must never panic,
//! whatever the frames say (lengths, flags, stream ids, padding, CONTINUATION runs, table sizes).
#![no_main]

use connscope::protocol::ProtocolWatcher;
use connscope::wire::{SeqNumber, Side};
use libfuzzer_sys::fuzz_target;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let mut watcher = ProtocolWatcher::new();
    watcher.on_syn(Side::Client, SeqNumber(0));
    watcher.on_syn(Side::Server, SeqNumber(0));
    let mut next = [1u32, 1u32];
    let mut events = Vec::new();
    let mut send = |watcher: &mut ProtocolWatcher, side: Side, bytes: &[u8], events: &mut Vec<_>| {
        let seq = &mut next[side.index()];
        watcher.on_segment(side, SeqNumber(*seq), bytes, bytes.len() as u32, 0.0, events);
        *seq = seq.wrapping_add(bytes.len() as u32);
    };
    send(&mut watcher, Side::Client, PREFACE, &mut events);
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let side = if control & 1 == 0 { Side::Client } else { Side::Server };
        let len = match usize::from(control >> 1) {
            0 => tail.len(),
            n => n.min(tail.len()),
        };
        send(&mut watcher, side, &tail[..len], &mut events);
        rest = &tail[len..];
        events.clear();
    }
    let summary = watcher.finish(&mut events);
    assert!(summary.http_responses <= summary.http_requests.saturating_add(u32::MAX / 2));
});
