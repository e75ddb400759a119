//! `http_framer`: arbitrary byte streams in arbitrary segmentation through `ProtocolWatcher`.
//!
//! The input is a list of commands; each starts with a control byte:
//! - bit 0: side (client / server);
//! - bits 1-2: 0 = next in-order segment, 1 = sequence jump (the next 2 bytes, signed, ×16),
//!   2 = retransmission of the previous position, 3 = FIN after the segment;
//! - bits 3-7: the low 5 bits of the segment length.
//!
//! After the control byte (and a jump's 2 bytes) a size byte follows: bits 0-6 are the length's
//! high bits (`len = low + 32 * high`, up to 4,095); bit 7 set means one more byte follows, × 8 =
//! bytes sent on the wire but not captured (snaplen).
//! Then the segment's captured bytes. A leading setup byte says which SYNs were seen (bits 0, 1),
//! whether the ISNs sit just below 2^32 (bit 2) and whether the watcher has the TLS secrets of the
//! key-logged fixtures (bit 3: their connections are decrypted, the record layer with keys runs).
#![no_main]

use connscope::protocol::keylog::TlsKeys;
use connscope::protocol::ProtocolWatcher;
use connscope::wire::SeqNumber;
use connscope::wire::Side;
use libfuzzer_sys::fuzz_target;

/// Reads bytes from the front of the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// The key logs of the fixtures, read once.
fn fixture_keys() -> std::sync::Arc<TlsKeys> {
    static KEYS: std::sync::OnceLock<std::sync::Arc<TlsKeys>> = std::sync::OnceLock::new();
    std::sync::Arc::clone(KEYS.get_or_init(|| {
        let mut keys = TlsKeys::new();
        for log in [
            &include_bytes!("../../fixtures/https-keylog-h1.keys")[..],
            include_bytes!("../../fixtures/https-keylog-h2.keys"),
            include_bytes!("../../fixtures/https-keylog-go.keys"),
            include_bytes!("../../fixtures/https-keylog-resume.keys"),
            include_bytes!("../../fixtures/https-keylog-hrr.keys"),
        ] {
            keys.add_key_log(log);
        }
        std::sync::Arc::new(keys)
    }))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    let mut watcher = if setup & 8 != 0 { ProtocolWatcher::with_tls_keys(Some(fixture_keys())) } else { ProtocolWatcher::new() };
    let mut events = Vec::new();
    // ISNs near the wrap point when asked, so streams cross 2^32.
    let isn = if setup & 4 != 0 { [u32::MAX - 40, u32::MAX - 3000] } else { [1000, 900_000] };
    let mut next = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
    if setup & 1 != 0 {
        watcher.on_syn(Side::Client, SeqNumber(isn[0]));
    }
    if setup & 2 != 0 {
        watcher.on_syn(Side::Server, SeqNumber(isn[1]));
    }
    let mut previous = next;
    let mut ts = 0.0;
    while let Some(control) = input.byte() {
        let side = if control & 1 == 0 { Side::Client } else { Side::Server };
        let i = side.index();
        let size = input.byte().unwrap_or(0);
        let len = usize::from(control >> 3) + 32 * usize::from(size & 0x7f);
        let wire_extra = if size & 0x80 != 0 { u32::from(input.byte().unwrap_or(0)) * 8 } else { 0 };
        match (control >> 1) & 3 {
            1 => {
                let jump = i16::from_le_bytes([input.byte().unwrap_or(0), input.byte().unwrap_or(0)]);
                next[i] = next[i].wrapping_add((i32::from(jump) * 16) as u32);
            }
            2 => next[i] = previous[i],
            _ => {}
        }
        let payload = input.take(len);
        let wire_len = payload.len() as u32 + wire_extra;
        ts += 0.001;
        let seq = SeqNumber(next[i]);
        watcher.on_segment(side, seq, payload, wire_len, ts, &mut events);
        previous[i] = next[i];
        next[i] = next[i].wrapping_add(wire_len);
        if (control >> 1) & 3 == 3 {
            watcher.on_fin(side, SeqNumber(next[i]), &mut events);
        }
    }
    let summary = watcher.finish(&mut events);
    assert!(summary.exchanges.len() <= 256);
    let _ = serde_json::to_string(&summary).expect("summary serialises");
});
