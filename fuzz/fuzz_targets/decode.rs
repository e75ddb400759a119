//! `decode`: the first byte picks the link type, the rest is the frame; the second byte shortens
//! the wire length or lengthens it, so snaplen-cut frames are covered too.
#![no_main]

use connscope::decode::{decode, Decoded};
use connscope::wire::LinkType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Some((&extra, frame)) = rest.split_first() else { return };
    let link = LinkType::ALL[usize::from(pick) % LinkType::ALL.len()];
    // Wire length: the frame's own length, or more (a snaplen cut), or a bogus smaller value.
    let orig_len = match extra % 3 {
        0 => frame.len() as u32,
        1 => frame.len() as u32 + u32::from(extra) * 97,
        _ => u32::from(extra),
    };
    if let Decoded::Tcp(seg) = decode(link, frame, orig_len, 0.0) {
        // The payload is a slice of the frame, and the accessors never panic.
        assert!(seg.payload.len() <= frame.len());
        let _ = (seg.truncated(), seg.seq_len(), seg.flags.short());
    }
});
