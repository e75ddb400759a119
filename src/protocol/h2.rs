//! HTTP/2 over cleartext (h2c): checks the client connection preface, walks both directions'
//! frames and decodes their header blocks with HPACK (one decoder per direction, fed every block in
//! stream order) to count requests and responses and read `:method`, `:path` and `:status`.
//!
//! A request is a HEADERS frame that opens a client stream (odd id above every earlier one); a
//! response is the first final (not 1xx) response HEADERS on a client stream. When a direction's
//! HPACK state is lost (a gap in a header block, a block too large or undecodable) requests are
//! still counted by their frames, without method and target, and a server stream counts as answered
//! once it has sent HEADERS followed by DATA or by the end of the stream. When frame boundaries are
//! lost (a gap outside a frame payload), the direction is read again from its next turn that is
//! made of whole, plausible frames. Once the first [`MAX_EXCHANGES`] exchanges have their fields,
//! the rest is counted by frames too (the same counts, without the cost of decoding).

use super::http1::{Handover, MAX_EXCHANGES};
use super::{H2GoAway, H2Summary, HeadText, HttpExchange, HttpVersion, ProtocolEvent, Verdict};
use crate::wire::Side;
use loona_hpack::Decoder;
use std::collections::BTreeMap;

/// The client connection preface (RFC 9113, 3.4).
pub const CLIENT_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_PRIORITY: u8 = 0x2;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PUSH_PROMISE: u8 = 0x5;
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FRAME_WINDOW_UPDATE: u8 = 0x8;
const FRAME_CONTINUATION: u8 = 0x9;
/// SETTINGS_HEADER_TABLE_SIZE: the largest HPACK table the sender's decoder allows its peer's encoder.
const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
/// The HPACK table size both directions start with (RFC 9113, 6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Largest header block buffered for decoding; a larger one loses the direction's HPACK state.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest HPACK dynamic table followed (64 KiB: the largest SETTINGS_HEADER_TABLE_SIZE in common
/// use); a size update above it loses the direction's HPACK state.
const MAX_TABLE_SIZE: usize = 64 * 1024;
/// Client streams whose response is awaited that are remembered (the oldest is forgotten first).
const MAX_OPEN_STREAMS: usize = 1024;

/// Does `bytes` begin like a server connection preface (a SETTINGS frame on stream 0, not an ACK)?
/// Never `Yes`: a server speaks h2 only after the client's preface, so this only tells to keep the
/// bytes until the client's first bytes decide.
pub fn looks_like_server_preface(bytes: &[u8]) -> Verdict {
    let expected = [None, None, None, Some(FRAME_SETTINGS), Some(0), Some(0), Some(0), Some(0), Some(0)];
    for (byte, want) in bytes.iter().zip(expected) {
        if want.is_some_and(|w| w != *byte) {
            return Verdict::No;
        }
    }
    match bytes.get(..3) {
        Some(len) if u32::from_be_bytes([0, len[0], len[1], len[2]]) % 6 != 0 => Verdict::No,
        _ => Verdict::NeedMore,
    }
}

/// A frame header, read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
}

/// A header block being assembled from HEADERS or PUSH_PROMISE and its CONTINUATION frames.
#[derive(Debug, Clone, Copy)]
struct BlockStart {
    kind: u8,
    stream: u32,
    end_stream: bool,
}

/// Pseudo-header fields of a decoded header block.
#[derive(Debug, Default)]
struct Fields {
    method: Option<HeadText>,
    path: Option<HeadText>,
    status: Option<u16>,
}

/// An HPACK decoder (the crate's type has no `Debug`).
struct Hpack(Decoder<'static>);

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hpack")
    }
}

/// One direction's frame reader.
#[derive(Debug)]
struct Direction {
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// The frame whose payload is being read.
    frame: Option<Frame>,
    payload_left: u64,
    /// The payload of a header-block frame, collected whole.
    payload: Vec<u8>,
    /// Collected payload bytes were lost in a gap.
    payload_cut: bool,
    /// The header block of the latest HEADERS / PUSH_PROMISE, while CONTINUATION frames may follow.
    block: Vec<u8>,
    block_start: Option<BlockStart>,
    /// HPACK state of this direction; `None` once lost.
    decoder: Option<Hpack>,
    /// Largest table size the peer's SETTINGS allowed this direction's encoder so far.
    table_size_allowed: usize,
    /// Frame boundaries lost: the rest of the direction is not read.
    framing_lost: bool,
    /// The first 8 payload bytes of the GOAWAY being read (last stream id, error code).
    goaway: [u8; 8],
    goaway_len: usize,
}

impl Direction {
    fn new() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
        Direction {
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            frame: None,
            payload_left: 0,
            payload: Vec::new(),
            payload_cut: false,
            block: Vec::new(),
            block_start: None,
            decoder: Some(Hpack(decoder)),
            table_size_allowed: DEFAULT_TABLE_SIZE,
            framing_lost: false,
            goaway: [0; 8],
            goaway_len: 0,
        }
    }

    /// Frame boundaries are found again: the next bytes begin a frame (the HPACK state stays lost).
    fn recover_framing(&mut self) {
        self.framing_lost = false;
        self.frame = None;
        self.header_len = 0;
        self.payload.clear();
        self.payload_cut = false;
        self.block.clear();
        self.block_start = None;
    }

    /// Decodes a complete header block; `None` (and the decoder is dropped) when it cannot be.
    fn decode(&mut self, block: &[u8]) -> Option<Fields> {
        let decoder = self.decoder.as_mut()?;
        let mut fields = Fields::default();
        let decoded = decoder.0.decode_with_cb(block, |name, value| {
            let text = || std::str::from_utf8(&value).ok().map(HeadText::from);
            match &*name {
                b":method" => fields.method = text(),
                b":path" => fields.path = text(),
                b":status" => fields.status = std::str::from_utf8(&value).ok().and_then(|s| s.parse().ok()),
                _ => {}
            }
        });
        match decoded {
            Ok(()) => Some(fields),
            Err(_) => {
                self.decoder = None;
                None
            }
        }
    }
}

impl Default for Direction {
    fn default() -> Self {
        Self::new()
    }
}

/// What is known of a client stream whose response is awaited.
#[derive(Debug, Clone, Copy, Default)]
struct OpenStream {
    /// Its entry in `exchanges`, if it got one.
    exchange: Option<usize>,
    /// Its final response was counted.
    answered: bool,
    /// The server sent HEADERS whose status could not be decoded.
    undecoded_headers: bool,
}

/// Frames and counts the requests and responses of one h2c connection.
#[derive(Debug, Default)]
pub struct H2Counter {
    /// Bytes of the client preface matched so far.
    preface_matched: usize,
    directions: [Direction; 2],
    /// Highest client stream id that carried HEADERS (client stream ids only grow).
    highest_stream: u32,
    streams: u32,
    upgraded_from_http1: bool,
    open: BTreeMap<u32, OpenStream>,
    /// Requests and responses (with those of HTTP/1 before an upgrade).
    pub requests: u32,
    pub responses: u32,
    /// Requests paired with responses: the first [`MAX_EXCHANGES`] of the connection.
    pub exchanges: Vec<HttpExchange>,
    /// The first GOAWAY of the connection: the HTTP/2 announcement of its close.
    pub goaway: Option<H2GoAway>,
}

impl H2Counter {
    /// A counter for a connection that starts with the client preface (prior knowledge).
    pub fn prior_knowledge() -> Self {
        Self::default()
    }

    /// A counter for a connection upgraded by `Upgrade: h2c` + 101: takes over the HTTP/1 framer's
    /// counts and exchanges; the upgraded request is stream 1 and its response comes on it.
    pub fn upgraded(from: Handover) -> Self {
        let mut counter = H2Counter {
            highest_stream: 1,
            streams: 1,
            upgraded_from_http1: true,
            requests: from.requests,
            responses: from.responses,
            exchanges: from.exchanges,
            ..Self::default()
        };
        counter.open.insert(1, OpenStream { exchange: from.upgraded_exchange, ..OpenStream::default() });
        counter
    }

    /// The next bytes of `side`'s stream, received at `ts`; `at_turn`: they are the first `side`
    /// sent since the peer last sent data. Where the frame boundaries were lost, such bytes are
    /// taken to begin at a frame when they are whole, plausible frames and nothing else.
    pub fn data(&mut self, side: Side, mut bytes: &[u8], at_turn: bool, ts: f64, events: &mut Vec<ProtocolEvent>) {
        if side == Side::Client && self.preface_matched < CLIENT_PREFACE.len() && !self.directions[0].framing_lost {
            let expected = &CLIENT_PREFACE[self.preface_matched..];
            let take = expected.len().min(bytes.len());
            if bytes[..take] != expected[..take] {
                self.directions[0].framing_lost = true;
                return;
            }
            self.preface_matched += take;
            bytes = &bytes[take..];
            if self.preface_matched == CLIENT_PREFACE.len() {
                events.push(ProtocolEvent::H2Preface);
            }
        }
        let i = side.index();
        let preface_done = side == Side::Server || self.preface_matched == CLIENT_PREFACE.len();
        if self.directions[i].framing_lost && at_turn && preface_done && tiles_with_frames(bytes) {
            self.directions[i].recover_framing();
        }
        while !bytes.is_empty() && !self.directions[i].framing_lost {
            let direction = &mut self.directions[i];
            if let Some(frame) = direction.frame {
                let take = direction.payload_left.min(bytes.len() as u64) as usize;
                if collects_payload(frame.kind) {
                    direction.payload.extend_from_slice(&bytes[..take]);
                }
                if frame.kind == FRAME_GOAWAY && direction.goaway_len < direction.goaway.len() {
                    let keep = (direction.goaway.len() - direction.goaway_len).min(take);
                    direction.goaway[direction.goaway_len..direction.goaway_len + keep].copy_from_slice(&bytes[..keep]);
                    direction.goaway_len += keep;
                }
                direction.payload_left -= take as u64;
                bytes = &bytes[take..];
                if direction.payload_left == 0 {
                    self.frame_ended(side, frame, ts, events);
                }
            } else {
                let take = (FRAME_HEADER_LEN - direction.header_len).min(bytes.len());
                direction.header[direction.header_len..direction.header_len + take].copy_from_slice(&bytes[..take]);
                direction.header_len += take;
                bytes = &bytes[take..];
                if direction.header_len == FRAME_HEADER_LEN {
                    direction.header_len = 0;
                    self.frame_started(side, ts, events);
                }
            }
        }
    }

    /// `len` bytes of `side`'s stream are missing. Inside a frame payload the frame boundaries
    /// survive (inside a header block the HPACK state does not); anywhere else they are lost until
    /// a turn brings whole frames (see [`Self::data`]).
    pub fn gap(&mut self, side: Side, len: u64) {
        let preface_done = side == Side::Server || self.preface_matched == CLIENT_PREFACE.len();
        let direction = &mut self.directions[side.index()];
        match direction.frame {
            Some(frame) if preface_done && len <= direction.payload_left => {
                direction.payload_left -= len;
                direction.payload_cut |= collects_payload(frame.kind);
                if frame.kind == FRAME_GOAWAY && direction.goaway_len < direction.goaway.len() {
                    direction.goaway_len = usize::MAX; // its fields are not read across a hole
                }
                if frame.kind != FRAME_SETTINGS && collects_payload(frame.kind) {
                    direction.decoder = None; // a piece of a header block is missing
                }
                // A frame whose payload ends in the gap is ended by the next bytes received.
                // (A cut SETTINGS loses a table size at worst: a table smaller than the
                // encoder's holds a prefix of its entries, so it errs, never misreads.)
            }
            _ => {
                direction.framing_lost = true;
                direction.decoder = None;
            }
        }
    }

    /// What was seen, for the connection's summary.
    pub fn summary(&self) -> H2Summary {
        H2Summary { streams: self.streams, upgraded_from_http1: self.upgraded_from_http1, goaway: self.goaway }
    }

    fn frame_started(&mut self, side: Side, ts: f64, events: &mut Vec<ProtocolEvent>) {
        let direction = &mut self.directions[side.index()];
        let h = direction.header;
        let len = u64::from(u32::from_be_bytes([0, h[0], h[1], h[2]]));
        let frame = Frame { kind: h[3], flags: h[4], stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff };
        if direction.block_start.is_some() && frame.kind != FRAME_CONTINUATION {
            // A header block must go on in CONTINUATION frames: the peer broke the framing rules.
            self.block_ended(side, None, ts, events);
            self.directions[side.index()].decoder = None;
        }
        let direction = &mut self.directions[side.index()];
        if collects_payload(frame.kind) && len > MAX_HEADER_BLOCK as u64 {
            direction.decoder = None;
            direction.payload_cut = true;
        }
        match frame.kind {
            FRAME_DATA => self.server_data(side, frame, ts),
            FRAME_RST_STREAM => {
                self.open.remove(&frame.stream);
            }
            _ => {}
        }
        let direction = &mut self.directions[side.index()];
        direction.frame = Some(frame);
        direction.goaway_len = 0;
        direction.payload_left = len;
        direction.payload.clear();
        if len == 0 {
            self.frame_ended(side, frame, ts, events);
        }
    }

    fn frame_ended(&mut self, side: Side, frame: Frame, ts: f64, events: &mut Vec<ProtocolEvent>) {
        let direction = &mut self.directions[side.index()];
        direction.frame = None;
        if frame.kind == FRAME_GOAWAY {
            let (goaway, len) = (direction.goaway, std::mem::take(&mut direction.goaway_len));
            if len == goaway.len() && frame.stream == 0 && self.goaway.is_none() {
                self.goaway = Some(H2GoAway {
                    by: side,
                    last_stream_id: u32::from_be_bytes([goaway[0], goaway[1], goaway[2], goaway[3]]) & 0x7fff_ffff,
                    error_code: u32::from_be_bytes([goaway[4], goaway[5], goaway[6], goaway[7]]),
                });
            }
        }
        if !collects_payload(frame.kind) {
            return;
        }
        let payload = std::mem::take(&mut direction.payload);
        let cut = std::mem::take(&mut direction.payload_cut);
        if frame.kind == FRAME_SETTINGS {
            if !cut && frame.stream == 0 {
                self.settings(side, &payload);
            }
            self.directions[side.index()].payload = payload;
            return;
        }
        let fragment = if cut { None } else { block_fragment(frame, &payload) };
        match frame.kind {
            FRAME_CONTINUATION => match direction.block_start {
                Some(start) if start.stream == frame.stream => {
                    match fragment {
                        Some(fragment) if direction.block.len() + fragment.len() <= MAX_HEADER_BLOCK => {
                            direction.block.extend_from_slice(fragment)
                        }
                        _ => direction.decoder = None,
                    }
                    if frame.flags & FLAG_END_HEADERS != 0 {
                        self.finish_block(side, ts, events);
                    }
                }
                _ => direction.decoder = None, // CONTINUATION without a block to continue
            },
            kind => {
                let start = BlockStart { kind, stream: frame.stream, end_stream: frame.flags & FLAG_END_STREAM != 0 };
                direction.block_start = Some(start);
                direction.block.clear();
                match fragment {
                    Some(fragment) => direction.block.extend_from_slice(fragment),
                    None => direction.decoder = None,
                }
                if frame.flags & FLAG_END_HEADERS != 0 {
                    self.finish_block(side, ts, events);
                }
            }
        }
        let direction = &mut self.directions[side.index()];
        if direction.payload.capacity() == 0 {
            direction.payload = payload; // keep the allocation for the next header frame
            direction.payload.clear();
        }
    }

    /// `side`'s SETTINGS: a larger header table size lets the peer's encoder index more, so the
    /// decoder of the peer's direction follows it (a larger table than the encoder's decodes the
    /// same; a smaller one would not, so a decrease is left to the encoder's own size update).
    fn settings(&mut self, side: Side, payload: &[u8]) {
        for setting in payload.chunks_exact(6) {
            if u16::from_be_bytes([setting[0], setting[1]]) != SETTINGS_HEADER_TABLE_SIZE {
                continue;
            }
            let size = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]) as usize;
            let peer = &mut self.directions[side.peer().index()];
            if size > MAX_TABLE_SIZE {
                peer.decoder = None;
            } else if size > peer.table_size_allowed {
                peer.table_size_allowed = size;
                if let Some(decoder) = peer.decoder.as_mut() {
                    decoder.0.set_max_table_size(size);
                }
            }
        }
    }

    /// The header block of `side` is complete: decode it and act on it.
    fn finish_block(&mut self, side: Side, ts: f64, events: &mut Vec<ProtocolEvent>) {
        let direction = &mut self.directions[side.index()];
        let block = std::mem::take(&mut direction.block);
        let fields = direction.decode(&block);
        direction.block = block;
        direction.block.clear();
        self.block_ended(side, fields, ts, events);
    }

    /// A header block ended, decoded into `fields` or not decodable (`None`).
    fn block_ended(&mut self, side: Side, fields: Option<Fields>, ts: f64, events: &mut Vec<ProtocolEvent>) {
        let Some(start) = self.directions[side.index()].block_start.take() else { return };
        if start.kind != FRAME_HEADERS || start.stream % 2 == 0 {
            return; // a PUSH_PROMISE, or a pushed response: not an answer to a client request
        }
        match side {
            Side::Client => self.client_headers(start, fields, ts, events),
            Side::Server => self.server_headers(start, fields, ts, events),
        }
        let decoding = self.directions.iter().any(|d| d.decoder.is_some());
        if decoding && self.exchanges.len() >= MAX_EXCHANGES && self.open.values().all(|s| s.exchange.is_none() || s.answered) {
            // Every kept exchange has its fields: decoding is slow (HPACK Huffman) and the frame
            // rules count the same, so the rest of the connection is counted by frames.
            for direction in &mut self.directions {
                direction.decoder = None;
            }
        }
    }

    fn client_headers(&mut self, start: BlockStart, fields: Option<Fields>, ts: f64, events: &mut Vec<ProtocolEvent>) {
        if start.stream <= self.highest_stream {
            return; // trailers of an open stream
        }
        self.highest_stream = start.stream;
        self.streams = self.streams.saturating_add(1);
        self.requests = self.requests.saturating_add(1);
        let fields = fields.unwrap_or_default();
        if let (Some(method), Some(target)) = (&fields.method, &fields.path) {
            events.push(ProtocolEvent::HttpRequest { method: method.clone(), target: target.clone(), version: HttpVersion::Http2 });
        }
        let exchange = (self.exchanges.len() < MAX_EXCHANGES).then(|| {
            self.exchanges.push(HttpExchange {
                method: fields.method,
                target: fields.path,
                version: Some(HttpVersion::Http2),
                status: None,
                request_ts: Some(ts),
                response_ts: None,
            });
            self.exchanges.len() - 1
        });
        if self.open.len() >= MAX_OPEN_STREAMS {
            self.open.pop_first();
        }
        self.open.insert(start.stream, OpenStream { exchange, ..OpenStream::default() });
    }

    fn server_headers(&mut self, start: BlockStart, fields: Option<Fields>, ts: f64, events: &mut Vec<ProtocolEvent>) {
        if self.open.len() >= MAX_OPEN_STREAMS && !self.open.contains_key(&start.stream) {
            self.open.pop_first();
        }
        let stream = self.open.entry(start.stream).or_default();
        if !stream.answered {
            match fields.and_then(|f| f.status) {
                Some(status) if (100..200).contains(&status) => {} // interim: the final response follows
                Some(status) => {
                    events.push(ProtocolEvent::HttpResponse { status });
                    let stream = *stream;
                    self.answer(start.stream, stream, Some(status), ts);
                }
                None if start.end_stream => {
                    let stream = *stream;
                    self.answer(start.stream, stream, None, ts);
                }
                None => stream.undecoded_headers = true,
            }
        }
        if start.end_stream {
            self.open.remove(&start.stream);
        }
    }

    /// A DATA frame: on the server side it answers a stream whose response status was not decoded.
    fn server_data(&mut self, side: Side, frame: Frame, ts: f64) {
        if side != Side::Server {
            return;
        }
        if let Some(stream) = self.open.get(&frame.stream).copied() {
            if stream.undecoded_headers && !stream.answered {
                self.answer(frame.stream, stream, None, ts);
            }
            if frame.flags & FLAG_END_STREAM != 0 {
                self.open.remove(&frame.stream);
            }
        }
    }

    /// Counts the final response of `id` (status `None` when it could not be decoded).
    fn answer(&mut self, id: u32, stream: OpenStream, status: Option<u16>, ts: f64) {
        self.responses = self.responses.saturating_add(1);
        if let Some(open) = self.open.get_mut(&id) {
            open.answered = true;
        }
        if let Some(exchange) = stream.exchange.and_then(|i| self.exchanges.get_mut(i)) {
            exchange.status = status;
            exchange.response_ts = Some(ts);
        }
    }
}

/// Largest frame payload believed while looking for frame boundaries (the initial
/// SETTINGS_MAX_FRAME_SIZE: larger frames need a setting that was not seen).
const MAX_RESYNC_FRAME: usize = 16_384;

/// Do `bytes` consist of whole frames, each of a known type with a length and stream id its type
/// allows, and nothing else?
fn tiles_with_frames(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        let Some(h) = bytes.get(at..at + FRAME_HEADER_LEN) else { return false };
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let fits = match h[3] {
            FRAME_DATA | FRAME_HEADERS | FRAME_PUSH_PROMISE | FRAME_CONTINUATION => stream != 0,
            FRAME_PRIORITY => stream != 0 && len == 5,
            FRAME_RST_STREAM => stream != 0 && len == 4,
            FRAME_SETTINGS => stream == 0 && len % 6 == 0,
            FRAME_PING => stream == 0 && len == 8,
            FRAME_GOAWAY => stream == 0 && len >= 8,
            FRAME_WINDOW_UPDATE => len == 4,
            _ => false,
        };
        if !fits || len > MAX_RESYNC_FRAME || stream & 0x8000_0000 != 0 {
            return false;
        }
        at += FRAME_HEADER_LEN + len;
    }
    at == bytes.len()
}

/// Frames whose payload is read whole: header block fragments (for HPACK) and SETTINGS.
fn collects_payload(kind: u8) -> bool {
    matches!(kind, FRAME_HEADERS | FRAME_PUSH_PROMISE | FRAME_CONTINUATION | FRAME_SETTINGS)
}

/// The header block fragment in a HEADERS, PUSH_PROMISE or CONTINUATION payload (padding, priority
/// and promised stream id removed); `None` when the payload is too short for its flags.
fn block_fragment(frame: Frame, payload: &[u8]) -> Option<&[u8]> {
    if frame.kind == FRAME_CONTINUATION {
        return Some(payload);
    }
    let (pad, mut rest) = if frame.flags & FLAG_PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    rest = rest.get(..rest.len().checked_sub(pad)?)?;
    let skip = match frame.kind {
        FRAME_HEADERS if frame.flags & FLAG_PRIORITY != 0 => 5,
        FRAME_PUSH_PROMISE => 4,
        _ => 0,
    };
    rest.get(skip..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Side::{Client, Server};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut v = vec![len[1], len[2], len[3], kind, flags];
        v.extend(stream.to_be_bytes());
        v.extend(payload);
        v
    }

    /// HPACK: `:method GET` (static 2), `:scheme http` (static 6), `:path` literal with incremental
    /// indexing (name: static 4).
    fn get(path: &str) -> Vec<u8> {
        [&[0x82, 0x86, 0x44, path.len() as u8][..], path.as_bytes()].concat()
    }

    /// HPACK: `:status` literal without indexing (name: static 8).
    fn status(code: u16) -> Vec<u8> {
        [&[0x08, 3][..], code.to_string().as_bytes()].concat()
    }

    const END_STREAM_AND_HEADERS: u8 = FLAG_END_STREAM | FLAG_END_HEADERS;

    fn client_stream() -> Vec<u8> {
        [
            CLIENT_PREFACE.to_vec(),
            frame(FRAME_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]),
            frame(0x8, 0, 0, &[0, 0, 0x10, 0]),                                            // WINDOW_UPDATE
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &[0x83, 0x86, 0x44, 2, b'/', b'b']), // POST /b
            frame(FRAME_DATA, FLAG_END_STREAM, 1, &[b'x'; 1000]),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &get("/a")),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &[0x40, 1, b'x', 1, b'y']), // trailers on stream 3: not a new stream
            frame(FRAME_SETTINGS, 0x1, 0, &[]),
            // :path from the dynamic table, index 63 ("/a": the trailer x: y went in at 62 after it)
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 5, &[0x82, 0x86, 0xbf]),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 2, &get("/even")), // even id: not client-initiated
        ]
        .concat()
    }

    fn server_stream() -> Vec<u8> {
        [
            frame(FRAME_SETTINGS, 0, 0, &[]),
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &status(100)), // interim
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 3, &[0x88]),      // 200
            frame(FRAME_DATA, FLAG_END_STREAM, 3, b"hello"),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &status(201)),
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 5, &[0x8d]), // 404
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 5, &[0x40, 1, b'x', 1, b'y']), // trailers
        ]
        .concat()
    }

    fn targets(counter: &H2Counter) -> Vec<(Option<&str>, Option<&str>, Option<u16>)> {
        counter.exchanges.iter().map(|e| (e.method.as_deref(), e.target.as_deref(), e.status)).collect()
    }

    #[test]
    fn test_h2c_requests_and_final_responses_are_counted_with_method_path_and_status_at_any_cut() {
        let (client, server) = (client_stream(), server_stream());
        for cut in (0..=client.len()).step_by(7).chain([client.len()]) {
            let mut counter = H2Counter::prior_knowledge();
            let mut events = Vec::new();
            let server_cut = cut.min(server.len());
            counter.data(Client, &client[..cut], false, 0.0, &mut events);
            counter.data(Client, &client[cut..], false, 1.0, &mut events);
            counter.data(Server, &server[..server_cut], false, 2.0, &mut events);
            counter.data(Server, &server[server_cut..], false, 3.0, &mut events);
            assert_eq!((counter.requests, counter.responses, counter.summary().streams), (3, 3, 3), "cut at {cut}");
            assert_eq!(
                targets(&counter),
                [(Some("POST"), Some("/b"), Some(201)), (Some("GET"), Some("/a"), Some(200)), (Some("GET"), Some("/a"), Some(404))]
            );
            assert_eq!(events.iter().filter(|e| matches!(e, ProtocolEvent::HttpResponse { .. })).count(), 3);
        }
    }

    #[test]
    fn test_continuation_frames_padding_and_priority_are_one_header_block() {
        let mut counter = H2Counter::prior_knowledge();
        let block = get("/split/across/frames");
        let mut padded = vec![3]; // pad length
        padded.extend([0, 0, 0, 0, 16]); // priority: dependency, weight
        padded.extend(&block[..4]);
        padded.extend([0, 0, 0]);
        let client = [
            CLIENT_PREFACE.to_vec(),
            frame(FRAME_HEADERS, FLAG_END_STREAM | FLAG_PADDED | FLAG_PRIORITY, 1, &padded),
            frame(FRAME_CONTINUATION, 0, 1, &block[4..10]),
            frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, &block[10..]),
        ]
        .concat();
        counter.data(Client, &client, false, 0.0, &mut Vec::new());
        assert_eq!(targets(&counter), [(Some("GET"), Some("/split/across/frames"), None)]);
    }

    #[test]
    fn test_peer_settings_header_table_size_lets_the_encoder_index_more() {
        // The client allows a 64 KiB table; the server indexes a 5000-byte field, which a 4096-byte
        // table could not hold, then refers to it (index 62) and to :status 200.
        let mut value_len = vec![0x7f];
        let mut rest = 5000 - 127;
        while rest >= 128 {
            value_len.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        value_len.push(rest as u8);
        let first = [&[0x40, 5][..], b"x-big", &value_len[..], &[b'v'; 5000][..], &[0x88][..]].concat();
        for (table_size, second_status) in [(65536u32, Some(204)), (4096, None)] {
            let mut counter = H2Counter::prior_knowledge();
            let size = table_size.to_be_bytes();
            let client = [
                CLIENT_PREFACE.to_vec(),
                frame(FRAME_SETTINGS, 0, 0, &[0, 1, size[0], size[1], size[2], size[3]]),
                frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &get("/1")),
                frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &get("/2")),
            ]
            .concat();
            let server = [
                frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &first),
                frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &[0xbe, 0x89]), // x-big (dynamic 62), :status 204
            ]
            .concat();
            counter.data(Client, &client, false, 0.0, &mut Vec::new());
            counter.data(Server, &server, false, 1.0, &mut Vec::new());
            assert_eq!(counter.responses, 2, "table size {table_size}");
            assert_eq!(counter.exchanges[0].status, Some(200));
            assert_eq!(counter.exchanges[1].status, second_status, "table size {table_size}");
        }
    }

    #[test]
    fn test_after_a_gap_in_a_header_block_requests_and_responses_are_counted_by_frames() {
        let mut counter = H2Counter::prior_knowledge();
        let first = frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &get("/lost/in/a/gap"));
        counter.data(Client, &[&CLIENT_PREFACE[..], &first[..12]].concat(), false, 0.0, &mut Vec::new());
        counter.gap(Client, 4);
        let rest = [
            first[16..].to_vec(),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &[0x82, 0x86, 0xbe]),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 5, &get("/5")),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 7, &get("/7")),
        ]
        .concat();
        counter.data(Client, &rest, false, 1.0, &mut Vec::new());
        assert_eq!((counter.requests, counter.summary().streams), (4, 4));
        assert!(counter.exchanges.iter().all(|e| e.method.is_none()), "HPACK state is lost after the gap");

        let headers = frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &[0x88, 0x40, 3, b'a', b'b', b'c', 1, b'v']);
        counter.data(Server, &headers[..10], false, 2.0, &mut Vec::new());
        counter.gap(Server, 2);
        let server = [
            headers[12..].to_vec(),
            frame(FRAME_DATA, FLAG_END_STREAM, 1, b"body"), // stream 1: HEADERS then DATA
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &[0x88]), // stream 3: HEADERS ending it
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 5, &status(103)), // stream 5: interim? final? ...
            frame(FRAME_RST_STREAM, 0, 5, &[0, 0, 0, 8]),   // ... reset: not counted
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 7, &[0x88]), // stream 7: no DATA, no end yet
        ]
        .concat();
        counter.data(Server, &server, false, 3.0, &mut Vec::new());
        assert_eq!(counter.responses, 2);
        assert!(counter.exchanges.iter().all(|e| e.status.is_none()));
    }

    #[test]
    fn test_gap_inside_a_settings_payload_keeps_the_hpack_state() {
        let mut counter = H2Counter::prior_knowledge();
        let settings = frame(FRAME_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 0xff, 0xff, 0xff]);
        counter.data(Client, &[&CLIENT_PREFACE[..], &settings[..15]].concat(), true, 0.0, &mut Vec::new());
        counter.gap(Client, 6);
        counter.data(
            Client,
            &[&settings[21..], &frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &get("/s"))[..]].concat(),
            false,
            0.0,
            &mut Vec::new(),
        );
        assert_eq!(targets(&counter), [(Some("GET"), Some("/s"), None)]);
    }

    #[test]
    fn test_gap_inside_a_data_payload_keeps_frames_and_hpack_state() {
        let mut counter = H2Counter::prior_knowledge();
        let data = frame(FRAME_DATA, 0, 1, &[0; 500]);
        let bytes = [CLIENT_PREFACE.to_vec(), frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &get("/up")), data[..100].to_vec()].concat();
        counter.data(Client, &bytes, false, 0.0, &mut Vec::new());
        counter.gap(Client, 300);
        counter.data(
            Client,
            &[&data[400..], &frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &[0x82, 0x86, 0xbe])[..]].concat(),
            false,
            1.0,
            &mut Vec::new(),
        );
        assert_eq!(targets(&counter), [(Some("GET"), Some("/up"), None), (Some("GET"), Some("/up"), None)]);
        counter.gap(Client, 1); // between frames: boundaries are lost (the next data is no turn)
        counter.data(Client, &frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 5, &get("/x")), false, 2.0, &mut Vec::new());
        assert_eq!(counter.requests, 2);
    }

    #[test]
    fn test_frames_are_found_again_at_a_turn_of_whole_frames_after_lost_boundaries() {
        let mut counter = H2Counter::prior_knowledge();
        let opening = [CLIENT_PREFACE.to_vec(), frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &get("/1"))].concat();
        counter.data(Client, &opening, true, 0.0, &mut Vec::new());
        counter.gap(Client, 40); // the segment with stream 3's HEADERS is lost: boundaries with it
        let next = [frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 5, &get("/5")), frame(FRAME_WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0])].concat();
        counter.data(Client, &next, false, 1.0, &mut Vec::new()); // not a turn: not trusted
        counter.data(Client, &next[..next.len() - 1], true, 2.0, &mut Vec::new()); // a turn, but a cut frame
        assert_eq!(counter.requests, 1);
        let later = frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 7, &get("/7"));
        counter.data(Client, &later, true, 3.0, &mut Vec::new());
        assert_eq!(counter.requests, 2);
        assert_eq!(targets(&counter), [(Some("GET"), Some("/1"), None), (None, None, None)], "HPACK state stays lost");
        assert!(!tiles_with_frames(&frame(FRAME_PING, 0, 1, &[0; 8])), "PING on a stream");
        assert!(!tiles_with_frames(&frame(0x42, 0, 0, &[])), "unknown type");
        assert!(tiles_with_frames(&[frame(FRAME_SETTINGS, 1, 0, &[]), frame(FRAME_DATA, 1, 3, b"abc")].concat()));
    }

    #[test]
    fn test_upgraded_request_is_stream_one_and_counts_once() {
        let handover = Handover {
            requests: 1,
            responses: 0,
            exchanges: vec![HttpExchange {
                method: Some("GET".into()),
                target: Some("/".into()),
                version: Some(HttpVersion::Http11),
                status: None,
                request_ts: Some(0.0),
                response_ts: None,
            }],
            upgraded_exchange: Some(0),
        };
        let mut counter = H2Counter::upgraded(handover);
        let client =
            [CLIENT_PREFACE.to_vec(), frame(FRAME_SETTINGS, 0, 0, &[]), frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &get("/next"))]
                .concat();
        let server = [
            frame(FRAME_SETTINGS, 0, 0, &[]),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &[0x88]),
            frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 3, &[0x8d]),
        ]
        .concat();
        counter.data(Client, &client, false, 1.0, &mut Vec::new());
        counter.data(Server, &server, false, 2.0, &mut Vec::new());
        assert_eq!((counter.requests, counter.responses), (2, 2));
        assert_eq!(targets(&counter), [(Some("GET"), Some("/"), Some(200)), (Some("GET"), Some("/next"), Some(404))]);
        let summary = counter.summary();
        assert_eq!((summary.streams, summary.upgraded_from_http1), (2, true));
    }

    #[test]
    fn test_after_the_kept_exchanges_counts_come_from_frames_and_agree() {
        let mut client = CLIENT_PREFACE.to_vec();
        let mut server = Vec::new();
        let n = MAX_EXCHANGES as u32 + 8;
        for i in 0..n {
            let stream = 2 * i + 1;
            client.extend(frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, stream, &get(&format!("/{i}"))));
            server.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, stream, &status(103))); // interim
            if i % 2 == 0 {
                server.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, stream, &[0x88]));
                server.extend(frame(FRAME_DATA, FLAG_END_STREAM, stream, b"body"));
            } else {
                server.extend(frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, stream, &[0x89]));
                // 204, no body
            }
        }
        let mut counter = H2Counter::prior_knowledge();
        counter.data(Client, &client, true, 0.0, &mut Vec::new());
        counter.data(Server, &server, true, 1.0, &mut Vec::new());
        assert_eq!((counter.requests, counter.responses), (n, n));
        assert_eq!(counter.exchanges.len(), MAX_EXCHANGES);
        assert_eq!(counter.exchanges[MAX_EXCHANGES - 1].status, Some(204));
        assert!(counter.directions.iter().all(|d| d.decoder.is_none()));
    }

    #[test]
    fn test_bad_preface_stops_counting() {
        let mut counter = H2Counter::prior_knowledge();
        let bytes = [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".to_vec(), frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, 1, &get("/"))].concat();
        let mut events = Vec::new();
        counter.data(Client, &bytes, false, 0.0, &mut events);
        assert_eq!((counter.requests, counter.summary().streams), (0, 0));
        assert!(events.is_empty());
    }

    #[test]
    fn test_arbitrary_frames_and_gaps_never_panic() {
        let seeds = [client_stream(), server_stream()];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut counter = H2Counter::prior_knowledge();
            for _ in 0..8 {
                let side = if next() % 2 == 0 { Client } else { Server };
                let mut bytes = seeds[side.index()].clone();
                for _ in 0..next() % 6 {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] = next() as u8;
                }
                let from = if side == Client { 0 } else { (next() % bytes.len() as u64) as usize };
                counter.data(side, &bytes[from..], next() % 2 == 0, 0.0, &mut Vec::new());
                if next() % 4 == 0 {
                    counter.gap(side, next() % 3000);
                }
            }
            assert!(counter.exchanges.len() <= MAX_EXCHANGES);
        }
    }

    #[test]
    fn test_server_preface_is_held_never_recognised() {
        assert_eq!(looks_like_server_preface(&frame(FRAME_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])), Verdict::NeedMore);
        assert_eq!(looks_like_server_preface(&[0, 0]), Verdict::NeedMore);
        assert_eq!(looks_like_server_preface(&frame(FRAME_SETTINGS, 1, 0, &[])), Verdict::No);
        assert_eq!(looks_like_server_preface(&frame(FRAME_SETTINGS, 0, 0, &[1, 2, 3])), Verdict::No);
        assert_eq!(looks_like_server_preface(b"HTTP/1.1 200 OK"), Verdict::No);
    }

    #[test]
    fn test_goaway_names_its_sender_last_stream_and_error_even_cut_across_segments() {
        let goaway = frame(FRAME_GOAWAY, 0, 0, &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'b', b'y', b'e']);
        for cut in 0..goaway.len() {
            let mut counter = H2Counter::prior_knowledge();
            let mut events = Vec::new();
            counter.data(Side::Server, &goaway[..cut], true, 0.0, &mut events);
            counter.data(Side::Server, &goaway[cut..], false, 0.0, &mut events);
            let want = H2GoAway { by: Side::Server, last_stream_id: 0x7fff_ffff, error_code: 0 };
            assert_eq!(counter.summary().goaway, Some(want), "cut at {cut}");
        }
        let mut counter = H2Counter::prior_knowledge();
        counter.data(Side::Server, &goaway[..12], true, 0.0, &mut Vec::new());
        counter.gap(Side::Server, 2);
        counter.data(Side::Server, &goaway[14..], false, 0.0, &mut Vec::new());
        assert_eq!(counter.summary().goaway, None, "a GOAWAY cut by a hole in its fields is not read");
    }
}
