//! HTTP/1.x framing over the two reassembled byte streams of a connection.
//!
//! Start lines and headers go through `httparse`; bodies are skipped by their framing
//! (Content-Length, chunked, close-delimited) without being buffered. Requests and responses
//! are paired in order. After a gap or garbage (or a mid-stream start inside a message) the framer
//! resynchronises only where a message can begin: at the first byte of a side's data after the
//! peer has sent data (a turn), with a start line and a complete, valid head; text inside a body is
//! never taken for a message, and no message is invented.

use super::{HttpExchange, HttpVersion, ProtocolEvent, Verdict};
use crate::wire::Side;
use std::collections::VecDeque;
use std::mem::MaybeUninit;

mod scan;

/// Largest incomplete header block buffered; a longer one is treated as garbage.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Exchanges kept per connection (counts go on beyond it).
pub const MAX_EXCHANGES: usize = 32;
/// Requests waiting for a response that are remembered for pairing.
const MAX_PENDING: usize = 1024;
/// Headers httparse may return per message.
const MAX_HEADERS: usize = 128;
/// Header slots tried first; a head with more is parsed again with [`MAX_HEADERS`].
const FEW_HEADERS: usize = 24;
/// How far into a start line the plausibility check looks; httparse judges the rest.
pub const START_LINE_CHECK_WINDOW: usize = 256;

/// Longest method token believed.
const MAX_METHOD_LEN: usize = 20;

/// Does `bytes` begin with a method token and a space (how Wireshark and Zeek spot HTTP requests)?
pub fn looks_like_method(bytes: &[u8]) -> Verdict {
    match method_len(bytes) {
        Ok(_) => Verdict::Yes,
        Err(verdict) => verdict,
    }
}

/// Length of the method token that `bytes` begins with, when a space follows it; otherwise
/// whether more bytes could make one (`NeedMore`) or not (`No`).
fn method_len(bytes: &[u8]) -> Result<usize, Verdict> {
    let len = bytes.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_').count();
    match bytes.get(len) {
        None if len <= MAX_METHOD_LEN => Err(Verdict::NeedMore),
        Some(b' ') if (1..=MAX_METHOD_LEN).contains(&len) => Ok(len),
        _ => Err(Verdict::No),
    }
}

/// Does `bytes` begin like a request line (`METHOD SP target SP HTTP/1.x`)?
pub fn looks_like_request_line(bytes: &[u8]) -> Verdict {
    let window = &bytes[..bytes.len().min(START_LINE_CHECK_WINDOW)];
    let after_method = match method_len(window) {
        Ok(len) => &window[len + 1..],
        Err(verdict) => return verdict,
    };
    let target_len = after_method.iter().take_while(|b| b.is_ascii_graphic()).count();
    let Some(after_target) = after_method.get(target_len..) else { return Verdict::NeedMore };
    if after_target.is_empty() {
        return Verdict::NeedMore;
    }
    if target_len == 0 || after_target[0] != b' ' {
        return Verdict::No;
    }
    shape_verdict(&after_target[1..], b"HTTP/1.")
}

/// Is `bytes` exactly one whole, valid request head (no body bytes, nothing after it)?
pub fn is_lone_request_head(bytes: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    matches!(request.parse(bytes), Ok(httparse::Status::Complete(len)) if len == bytes.len())
}

/// Does `bytes` begin like a status line (`HTTP/1.x NNN`)?
pub fn looks_like_status_line(bytes: &[u8]) -> Verdict {
    shape_verdict(bytes, b"HTTP/1.# ###")
}

/// `Yes` when `bytes` starts with `shape`, in which `#` stands for any digit; `NeedMore` when it
/// is a shorter prefix of it. Checks byte by byte: these shapes are too short for `memcmp` to pay.
fn shape_verdict(bytes: &[u8], shape: &[u8]) -> Verdict {
    for (i, expected) in shape.iter().enumerate() {
        let Some(&byte) = bytes.get(i) else { return Verdict::NeedMore };
        let fits = if *expected == b'#' { byte.is_ascii_digit() } else { byte == *expected };
        if !fits {
            return Verdict::No;
        }
    }
    Verdict::Yes
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size { value: u64, digits: u8, in_extension: bool },
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines after the last chunk; `line_len` bytes of the current line seen.
    Trailer { line_len: u32 },
}

const NEW_CHUNK: Chunk = Chunk::Size { value: 0, digits: 0, in_extension: false };

/// What one direction's parser expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A message head (possibly partly buffered).
    Head,
    /// A body of this many more bytes.
    Length(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// A response body that runs until the server closes.
    UntilClose,
    /// Lost sync: waiting for data that begins where a message can begin (a turn).
    Resync,
    /// Framing ended (FIN, protocol switch).
    Done,
}

/// Progress of the search for the blank line that ends a header block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum BlankLineScan {
    #[default]
    InLine,
    AfterNewline,
    AfterNewlineCr,
}

/// One direction's parser.
#[derive(Debug)]
struct Direction {
    phase: Phase,
    /// The incomplete header block, when a head spans segments.
    head: Vec<u8>,
    scan: BlankLineScan,
    /// True while the current head is only a resynchronisation candidate (a failure does not count again).
    resyncing: bool,
}

impl Direction {
    fn new() -> Self {
        Direction { phase: Phase::Head, head: Vec::new(), scan: BlankLineScan::InLine, resyncing: false }
    }

    fn reset_head(&mut self) {
        self.head.clear();
        self.scan = BlankLineScan::InLine;
    }
}

/// A request waiting for its response.
#[derive(Debug, Clone, Copy)]
struct PendingRequest {
    exchange: Option<usize>,
    is_head: bool,
    is_connect: bool,
    /// The client turn it came in (see [`Http1Framer::client_turns`]).
    turn: u32,
}

/// How framing of the connection ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// 101 Switching Protocols to h2c.
    H2c,
    /// A 2xx answer to CONNECT: the rest of both streams is the tunnelled protocol (TLS, mostly).
    Tunnel,
    /// Another protocol (WebSocket, ...): the rest is not HTTP/1.
    Other,
}

/// What the HTTP/1 framer hands to the h2 counter when a 101 switches the connection to h2c.
#[derive(Debug)]
pub struct Handover {
    pub requests: u32,
    pub responses: u32,
    pub exchanges: Vec<HttpExchange>,
    /// The exchange of the request that asked for the upgrade (h2 stream 1).
    pub upgraded_exchange: Option<usize>,
}

/// Framing-relevant facts from a message's headers.
#[derive(Debug, Default, PartialEq, Eq)]
struct HeadFacts {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    upgrade_h2c: bool,
}

impl HeadFacts {
    fn from_headers(headers: &[httparse::Header<'_>]) -> Self {
        let mut facts = HeadFacts::default();
        for header in headers {
            facts.add(header.name.as_bytes(), header.value);
        }
        facts
    }

    /// Takes in the next header of a message: a token `name` and its `value`, as httparse gives
    /// it or with the spaces and tabs around it (the facts are the same either way).
    #[inline]
    fn add(&mut self, name: &[u8], value: &[u8]) {
        // One candidate per length: most headers are passed over on their length alone.
        match name.len() {
            14 if token_is(name, b"content-length") => self.content_length = content_length(value),
            17 if token_is(name, b"transfer-encoding") => {
                self.chunked = tokens(value).last().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            }
            10 if token_is(name, b"connection") => match value.trim_ascii() {
                // The usual lone token, compared whole (a value holds no CR: `token_is` is exact).
                lone if token_is(lone, b"keep-alive") => self.keep_alive = true,
                lone if token_is(lone, b"close") => self.close = true,
                _ => {
                    for token in tokens(value) {
                        self.close |= token.eq_ignore_ascii_case(b"close");
                        self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    }
                }
            },
            7 if token_is(name, b"upgrade") => self.upgrade_h2c |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"h2c")),
            _ => {}
        }
    }
}

/// A whole, valid message head at the start of a block.
#[derive(Debug, PartialEq)]
struct Head<'b> {
    /// Its length, the blank line included.
    len: usize,
    start: StartLine<'b>,
    version: HttpVersion,
    facts: HeadFacts,
}

/// What a head's start line says.
#[derive(Debug, PartialEq)]
enum StartLine<'b> {
    Request { method: &'b str, target: &'b str },
    Response { status: u16 },
}

/// Whether a header name httparse accepted (a token: letters, digits and `!#$%&'*+-.^_`|~`) is
/// `lower`, a lowercase name of letters and `-`, in any case. Setting bit 5 lowercases a letter;
/// the only other byte it turns into a letter or `-` is an uppercase letter's or CR's (for `-`),
/// and CR is no token character. Names of 8 bytes or more are compared as two (overlapping)
/// 8-byte words.
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    const BIT_5: u64 = u64::from_ne_bytes([0x20; 8]);
    let word = |bytes: &[u8; 8]| u64::from_ne_bytes(*bytes);
    if name.len() != lower.len() {
        return false;
    }
    match (name.first_chunk(), name.last_chunk(), lower.first_chunk(), lower.last_chunk()) {
        (Some(first), Some(last), Some(want_first), Some(want_last)) => {
            word(first) | BIT_5 == word(want_first) && word(last) | BIT_5 == word(want_last)
        }
        _ => name.iter().zip(lower).all(|(byte, want)| byte | 0x20 == *want),
    }
}

/// Longest run of digits that always fits a `u64`.
const MAX_U64_DIGITS: usize = 19;

/// The value of a Content-Length header as `str::parse` reads it (surrounding whitespace trimmed);
/// `None` when it is not a number. The usual plain run of digits is read without that detour
/// (ASCII whitespace around it is whitespace to `str::trim` too).
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if (1..=MAX_U64_DIGITS).contains(&value.len()) {
        let plain = value.iter().try_fold(0, |n, byte| byte.is_ascii_digit().then(|| n * 10 + u64::from(byte - b'0')));
        if plain.is_some() {
            return plain;
        }
    }
    std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok())
}

/// Comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty())
}

fn version_of(minor: Option<u8>) -> HttpVersion {
    match minor {
        Some(0) => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

/// Frames both directions of one HTTP/1.x connection.
#[derive(Debug)]
pub struct Http1Framer {
    directions: [Direction; 2],
    pending: VecDeque<PendingRequest>,
    /// Requests paired with responses in order (at most [`MAX_EXCHANGES`]).
    pub exchanges: Vec<HttpExchange>,
    /// Requests framed.
    pub requests: u32,
    /// Final responses framed (1xx other than 101 excluded).
    pub responses: u32,
    /// First side that asked to close the connection.
    pub close_requested_by: Option<Side>,
    /// Whether each side (indexed by [`Side::index`]) announced the close: a request with
    /// `Connection: close` or HTTP/1.0 without keep-alive, a response likewise.
    pub close_announced: [bool; 2],
    /// Final responses whose last byte was seen (or whose length the stream's gaps account for):
    /// the requests answered in full.
    pub answered: u32,
    /// Any HTTP/1.0 message seen.
    pub http10: bool,
    /// Times a direction lost sync and had to search for the next message.
    pub resyncs: u32,
    /// Set when a 101 response or a CONNECT tunnel ended HTTP/1 framing.
    pub switch: Option<Switch>,
    /// Client data that began at a turn: pairs a response found by resynchronisation with the
    /// requests of the latest turn.
    client_turns: u32,
}

impl Default for Http1Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Http1Framer {
    /// A framer expecting a request from the client and a response from the server.
    pub fn new() -> Self {
        Http1Framer {
            directions: [Direction::new(), Direction::new()],
            pending: VecDeque::new(),
            exchanges: Vec::new(),
            requests: 0,
            responses: 0,
            close_requested_by: None,
            close_announced: [false; 2],
            answered: 0,
            http10: false,
            resyncs: 0,
            switch: None,
            client_turns: 0,
        }
    }

    /// The next bytes of `side`'s stream, received at `ts`; `at_turn`: they are the first `side`
    /// sent since the peer last sent data (or the first of its stream), so a message can begin at
    /// their first byte. Returns the bytes after the head that switched protocols (a 101, a
    /// CONNECT's 2xx), which belong to the new protocol; else nothing.
    pub fn data<'b>(&mut self, side: Side, mut bytes: &'b [u8], at_turn: bool, ts: f64, events: &mut Vec<ProtocolEvent>) -> &'b [u8] {
        if at_turn && side == Side::Client {
            self.client_turns = self.client_turns.wrapping_add(1);
        }
        let mut candidate = at_turn;
        while !bytes.is_empty() {
            if self.switch.is_some() {
                return bytes;
            }
            let phase = self.directions[side.index()].phase;
            bytes = match phase {
                Phase::Head => self.head_bytes(side, bytes, ts, events),
                Phase::Length(left) => {
                    let take = left.min(bytes.len() as u64);
                    if take == left {
                        self.message_ended(side, Phase::Head);
                    } else {
                        self.directions[side.index()].phase = Phase::Length(left - take);
                    }
                    &bytes[take as usize..]
                }
                Phase::Chunked(chunk) => self.chunked_bytes(side, chunk, bytes),
                Phase::UntilClose => &[],
                Phase::Resync if candidate => {
                    let direction = &mut self.directions[side.index()];
                    direction.phase = Phase::Head;
                    direction.resyncing = true;
                    bytes
                }
                Phase::Resync | Phase::Done => &[],
            };
            candidate = false;
        }
        &[]
    }

    /// Hands the counts and exchanges over to the h2 counter after a 101 to h2c.
    pub fn hand_over(&mut self) -> Handover {
        Handover {
            requests: self.requests,
            responses: self.responses,
            exchanges: std::mem::take(&mut self.exchanges),
            upgraded_exchange: self.pending.front().and_then(|r| r.exchange),
        }
    }

    /// `len` bytes of `side`'s stream are missing. A message whose start line was seen whole before
    /// the gap still counts (a capture with a small snaplen keeps start lines and cuts headers); its
    /// body cannot be framed, so the framer then resynchronises.
    pub fn gap(&mut self, side: Side, len: u64, ts: f64, events: &mut Vec<ProtocolEvent>) {
        if self.directions[side.index()].phase == Phase::Head && !self.directions[side.index()].head.is_empty() {
            let head = std::mem::take(&mut self.directions[side.index()].head);
            self.count_cut_head(side, &head, ts, events);
            self.directions[side.index()].head = head;
        }
        let direction = &mut self.directions[side.index()];
        let next = match direction.phase {
            Phase::Length(left) if len <= left => {
                if len == left {
                    self.count_answer(side);
                    Phase::Head
                } else {
                    Phase::Length(left - len)
                }
            }
            Phase::Chunked(Chunk::Data(left)) if len <= left => {
                Phase::Chunked(if len == left { Chunk::DataEnd } else { Chunk::Data(left - len) })
            }
            Phase::UntilClose | Phase::Done => direction.phase,
            Phase::Resync => Phase::Resync,
            _ => {
                self.lose_sync(side);
                Phase::Resync
            }
        };
        self.directions[side.index()].phase = next;
    }

    /// `side` closed its stream: a close-delimited body ends here, anything incomplete is dropped.
    pub fn end_of_stream(&mut self, side: Side) {
        if self.directions[side.index()].phase == Phase::UntilClose {
            self.count_answer(side);
        }
        let direction = &mut self.directions[side.index()];
        direction.reset_head();
        direction.phase = Phase::Done;
    }

    /// Enters resynchronisation, counting it unless already searching.
    fn lose_sync(&mut self, side: Side) {
        let direction = &mut self.directions[side.index()];
        if !direction.resyncing && direction.phase != Phase::Resync {
            self.resyncs = self.resyncs.saturating_add(1);
        }
        direction.resyncing = false;
        direction.reset_head();
    }

    /// Collects a message head; returns the bytes after it (or nothing when it is still incomplete).
    fn head_bytes<'b>(&mut self, side: Side, mut bytes: &'b [u8], ts: f64, events: &mut Vec<ProtocolEvent>) -> &'b [u8] {
        let direction = &mut self.directions[side.index()];
        if direction.head.is_empty() {
            let blank = bytes.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
            bytes = &bytes[blank..];
            if bytes.is_empty() {
                return bytes;
            }
            // Quickest path: a plain head that lies whole in this chunk. The scan holds method
            // and target to the start-line check's sets, so a head it accepts passes that check.
            if let Some(head) = scan::head(side, bytes) {
                let end = head.len;
                let phase = self.record(head, ts, events);
                self.head_ended(side, phase);
                return &bytes[end..];
            }
        }
        let direction = &mut self.directions[side.index()];
        if direction.head.len() < START_LINE_CHECK_WINDOW {
            let verdict = if direction.head.is_empty() {
                start_line_verdict(side, bytes)
            } else {
                let mut window = [0u8; START_LINE_CHECK_WINDOW];
                let held = direction.head.len();
                let extra = bytes.len().min(START_LINE_CHECK_WINDOW - held);
                window[..held].copy_from_slice(&direction.head);
                window[held..held + extra].copy_from_slice(&bytes[..extra]);
                start_line_verdict(side, &window[..held + extra])
            };
            if verdict == Verdict::No {
                self.lose_sync(side);
                self.directions[side.index()].phase = Phase::Resync;
                return bytes;
            }
        }
        if self.directions[side.index()].head.is_empty() {
            // A head the scan declined that lies whole in this chunk is found and parsed by httparse in
            // one pass. Anything else (a head split across segments, an invalid one) takes the
            // byte-wise search below, which also bounds what is buffered.
            if let Some(head) = parse_with_httparse(side, bytes) {
                let end = head.len;
                let phase = self.record(head, ts, events);
                self.head_ended(side, phase);
                return &bytes[end..];
            }
        }
        let direction = &mut self.directions[side.index()];
        let Some(end) = find_head_end(&mut direction.scan, bytes) else {
            if direction.head.len() + bytes.len() > MAX_HEADER_BLOCK {
                self.lose_sync(side);
                self.directions[side.index()].phase = Phase::Resync;
            } else {
                direction.head.extend_from_slice(bytes);
            }
            return &[];
        };
        let phase = if direction.head.is_empty() {
            // The scan declined this head above already.
            parse_with_httparse(side, &bytes[..end]).map(|head| self.record(head, ts, events))
        } else {
            let mut head = std::mem::take(&mut direction.head);
            head.extend_from_slice(&bytes[..end]);
            let phase = self.parse_head(side, &head, ts, events).map(|(_, phase)| phase);
            head.clear();
            self.directions[side.index()].head = head; // keep the allocation for the next long head
            phase
        };
        let direction = &mut self.directions[side.index()];
        direction.scan = BlankLineScan::InLine;
        match phase {
            Some(phase) => {
                direction.resyncing = false;
                direction.phase = phase;
            }
            None => {
                self.lose_sync(side);
                self.directions[side.index()].phase = Phase::Resync;
            }
        }
        &bytes[end..]
    }

    /// Records the message of a head cut off by a gap, if its start line is complete and valid.
    fn count_cut_head(&mut self, side: Side, head: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) {
        let Some(line_end) = head.iter().position(|b| *b == b'\n') else { return };
        let line = &head[..=line_end];
        let mut headers = [httparse::EMPTY_HEADER; 0];
        let facts = HeadFacts::default();
        match side {
            Side::Client => {
                let mut request = httparse::Request::new(&mut headers);
                let _ = request.parse(line);
                if let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version) {
                    self.on_request(method, target, version_of(Some(minor)), &facts, ts, events);
                }
            }
            Side::Server => {
                let mut response = httparse::Response::new(&mut headers);
                let _ = response.parse(line);
                if let (Some(code), Some(minor)) = (response.code, response.version) {
                    self.on_response(code, version_of(Some(minor)), &facts, ts, events);
                }
            }
        }
    }

    /// Parses a head at the start of `block` (the quick scan first, httparse when it declines) and
    /// records the message; returns the head's length and how its body is framed, or `None` if the
    /// head is invalid or not complete in `block`.
    fn parse_head(&mut self, side: Side, block: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) -> Option<(usize, Phase)> {
        let head = scan::head(side, block).or_else(|| parse_with_httparse(side, block))?;
        Some((head.len, self.record(head, ts, events)))
    }

    /// A whole head of `side`'s was recorded: its body is framed by `phase`.
    fn head_ended(&mut self, side: Side, phase: Phase) {
        let direction = &mut self.directions[side.index()];
        direction.scan = BlankLineScan::InLine;
        direction.resyncing = false;
        direction.phase = phase;
    }

    /// Records the message of a whole head; returns how its body is framed.
    fn record(&mut self, head: Head<'_>, ts: f64, events: &mut Vec<ProtocolEvent>) -> Phase {
        match head.start {
            StartLine::Request { method, target } => self.on_request(method, target, head.version, &head.facts, ts, events),
            StartLine::Response { status } => self.on_response(status, head.version, &head.facts, ts, events),
        }
    }

    fn on_request(
        &mut self,
        method: &str,
        target: &str,
        version: HttpVersion,
        facts: &HeadFacts,
        ts: f64,
        events: &mut Vec<ProtocolEvent>,
    ) -> Phase {
        self.requests = self.requests.saturating_add(1);
        self.http10 |= version == HttpVersion::Http10;
        if facts.close || (version == HttpVersion::Http10 && !facts.keep_alive) {
            self.close_announced[Side::Client.index()] = true;
        }
        if facts.close {
            self.close_requested_by.get_or_insert(Side::Client);
        }
        events.push(ProtocolEvent::HttpRequest { method: method.into(), target: target.into(), version });
        let exchange = (self.exchanges.len() < MAX_EXCHANGES).then(|| {
            self.exchanges.push(HttpExchange {
                method: Some(method.into()),
                target: Some(target.into()),
                version: Some(version),
                status: None,
                request_ts: Some(ts),
                response_ts: None,
            });
            self.exchanges.len() - 1
        });
        if self.pending.len() < MAX_PENDING {
            let turn = self.client_turns;
            self.pending.push_back(PendingRequest { exchange, is_head: method == "HEAD", is_connect: method == "CONNECT", turn });
        }
        if facts.chunked {
            Phase::Chunked(NEW_CHUNK)
        } else {
            match facts.content_length {
                Some(len) if len > 0 => Phase::Length(len),
                _ => Phase::Head,
            }
        }
    }

    fn on_response(&mut self, status: u16, version: HttpVersion, facts: &HeadFacts, ts: f64, events: &mut Vec<ProtocolEvent>) -> Phase {
        self.http10 |= version == HttpVersion::Http10;
        if status == 101 && facts.upgrade_h2c {
            // The upgraded request is answered on h2 stream 1: the 101 is not its final response.
            self.switch = Some(Switch::H2c);
            return Phase::Done;
        }
        if (100..200).contains(&status) && status != 101 {
            return Phase::Head; // interim response: the final one follows
        }
        self.responses = self.responses.saturating_add(1);
        events.push(ProtocolEvent::HttpResponse { status });
        if self.directions[Side::Server.index()].resyncing {
            // Found after lost bytes, at a turn: it answers a request of the latest client turn;
            // the responses of older waiting requests were lost.
            let latest = self.client_turns;
            while self.pending.front().is_some_and(|r| r.turn != latest) {
                self.pending.pop_front();
            }
        }
        let request = self.pending.pop_front();
        let exchange = match request.and_then(|r| r.exchange) {
            Some(index) => self.exchanges.get_mut(index),
            None if self.exchanges.len() < MAX_EXCHANGES => {
                self.exchanges.push(HttpExchange {
                    method: None,
                    target: None,
                    version: None,
                    status: None,
                    request_ts: None,
                    response_ts: None,
                });
                self.exchanges.last_mut()
            }
            None => None,
        };
        if let Some(exchange) = exchange {
            exchange.status = Some(status);
            exchange.response_ts = Some(ts);
        }
        let closes = facts.close || (version == HttpVersion::Http10 && !facts.keep_alive);
        if closes {
            self.close_requested_by.get_or_insert(Side::Server);
            self.close_announced[Side::Server.index()] = true;
        }
        let is_head = request.is_some_and(|r| r.is_head);
        let is_connect = request.is_some_and(|r| r.is_connect);
        if status == 101 {
            self.switch = Some(Switch::Other);
            self.count_answer(Side::Server);
            return Phase::Done;
        }
        if is_connect && (200..300).contains(&status) {
            self.switch = Some(Switch::Tunnel);
            self.count_answer(Side::Server);
            return Phase::Done;
        }
        let phase = if is_head || status == 204 || status == 304 {
            Phase::Head
        } else if facts.chunked {
            Phase::Chunked(NEW_CHUNK)
        } else {
            match facts.content_length {
                Some(0) => Phase::Head,
                Some(len) => Phase::Length(len),
                None => Phase::UntilClose,
            }
        };
        if phase == Phase::Head {
            self.count_answer(Side::Server);
        }
        phase
    }

    /// A body of `side`'s ended: the direction expects the next head (`next`), and a response is
    /// answered in full.
    fn message_ended(&mut self, side: Side, next: Phase) {
        self.directions[side.index()].phase = next;
        self.count_answer(side);
    }

    /// Counts a final response whose last byte was seen (request bodies count nothing).
    fn count_answer(&mut self, side: Side) {
        if side == Side::Server {
            self.answered = self.answered.saturating_add(1);
        }
    }

    /// Walks a chunked body; returns the bytes after the part consumed.
    fn chunked_bytes<'b>(&mut self, side: Side, mut chunk: Chunk, bytes: &'b [u8]) -> &'b [u8] {
        let mut pos = 0;
        while pos < bytes.len() {
            if let Chunk::Data(left) = chunk {
                let take = left.min((bytes.len() - pos) as u64);
                pos += take as usize;
                chunk = if take == left { Chunk::DataEnd } else { Chunk::Data(left - take) };
                continue;
            }
            let byte = bytes[pos];
            pos += 1;
            chunk = match (chunk, byte) {
                (Chunk::Size { value, digits, in_extension: false }, b) if b.is_ascii_hexdigit() => {
                    if digits >= 15 {
                        return self.chunk_error(side, &bytes[pos..]);
                    }
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    Chunk::Size { value: value * 16 + digit, digits: digits + 1, in_extension: false }
                }
                (Chunk::Size { digits: 0, .. }, b'\n') => return self.chunk_error(side, &bytes[pos..]),
                (Chunk::Size { value: 0, .. }, b'\n') => Chunk::Trailer { line_len: 0 },
                (Chunk::Size { value, .. }, b'\n') => Chunk::Data(value),
                (Chunk::Size { value, digits, .. }, b';' | b' ' | b'\t') if digits > 0 => Chunk::Size { value, digits, in_extension: true },
                (Chunk::Size { .. }, b'\r') => chunk,
                (Chunk::Size { in_extension: true, .. }, _) => chunk,
                (Chunk::Size { .. }, _) => return self.chunk_error(side, &bytes[pos..]),
                (Chunk::DataEnd, b'\r') => chunk,
                (Chunk::DataEnd, b'\n') => NEW_CHUNK,
                (Chunk::DataEnd, _) => return self.chunk_error(side, &bytes[pos..]),
                (Chunk::Trailer { line_len: 0 }, b'\n') => {
                    self.message_ended(side, Phase::Head);
                    return &bytes[pos..];
                }
                (Chunk::Trailer { .. }, b'\n') => Chunk::Trailer { line_len: 0 },
                (Chunk::Trailer { .. }, b'\r') => chunk,
                (Chunk::Trailer { line_len }, _) => Chunk::Trailer { line_len: line_len.saturating_add(1) },
                (Chunk::Data(_), _) => chunk,
            };
        }
        self.directions[side.index()].phase = Phase::Chunked(chunk);
        &[]
    }

    fn chunk_error<'b>(&mut self, side: Side, rest: &'b [u8]) -> &'b [u8] {
        self.lose_sync(side);
        self.directions[side.index()].phase = Phase::Resync;
        rest
    }
}

/// Whether `bytes` can start a message in `side`'s direction.
fn start_line_verdict(side: Side, bytes: &[u8]) -> Verdict {
    match side {
        Side::Client => looks_like_request_line(bytes),
        Side::Server => looks_like_status_line(bytes),
    }
}

/// The head at the start of `block` as httparse parses it, or `None` if it is invalid or not
/// complete in `block`. Most heads have few headers: a small header array is tried first, the
/// full one only when that is too small. httparse fills the arrays itself, so they are left
/// uninitialised.
fn parse_with_httparse(side: Side, block: &[u8]) -> Option<Head<'_>> {
    let mut few = [const { MaybeUninit::uninit() }; FEW_HEADERS];
    match parse_with_headers(side, block, &mut few) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            parse_with_headers(side, block, &mut many).ok().flatten()
        }
        other => other.ok().flatten(),
    }
}

fn parse_with_headers<'b>(
    side: Side,
    block: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Head<'b>>, httparse::Error> {
    let config = httparse::ParserConfig::default();
    match side {
        Side::Client => {
            let mut request = httparse::Request::new(&mut []);
            let httparse::Status::Complete(len) = config.parse_request_with_uninit_headers(&mut request, block, headers)? else {
                return Ok(None);
            };
            let (Some(method), Some(target)) = (request.method, request.path) else { return Ok(None) };
            let facts = HeadFacts::from_headers(request.headers);
            Ok(Some(Head { len, start: StartLine::Request { method, target }, version: version_of(request.version), facts }))
        }
        Side::Server => {
            let mut response = httparse::Response::new(&mut []);
            let httparse::Status::Complete(len) = config.parse_response_with_uninit_headers(&mut response, block, headers)? else {
                return Ok(None);
            };
            let Some(status) = response.code else { return Ok(None) };
            let facts = HeadFacts::from_headers(response.headers);
            Ok(Some(Head { len, start: StartLine::Response { status }, version: version_of(response.version), facts }))
        }
    }
}

/// Scans `bytes` for the blank line ending a header block, continuing from `scan`;
/// returns the length of the block's part in `bytes` when the end is found.
fn find_head_end(scan: &mut BlankLineScan, bytes: &[u8]) -> Option<usize> {
    for (i, byte) in bytes.iter().enumerate() {
        *scan = match (*scan, byte) {
            (BlankLineScan::AfterNewline | BlankLineScan::AfterNewlineCr, b'\n') => return Some(i + 1),
            (BlankLineScan::AfterNewline, b'\r') => BlankLineScan::AfterNewlineCr,
            (_, b'\n') => BlankLineScan::AfterNewline,
            _ => BlankLineScan::InLine,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Side::{Client, Server};

    #[test]
    fn test_token_is_matches_a_header_name_in_any_case_and_nothing_else() {
        for name in ["content-length", "Content-Length", "CONTENT-LENGTH", "cOnTeNt-LeNgTh"] {
            assert!(token_is(name.as_bytes(), b"content-length"), "{name}");
        }
        for name in ["content-lengthx", "content_length", "content-lengtx", "xontent-length", "content+length", "content-lengt"] {
            assert!(!token_is(name.as_bytes(), b"content-length"), "{name}");
        }
        // Shorter than a word: byte by byte.
        assert!(token_is(b"UpGrade", b"upgrade"));
        assert!(!token_is(b"Upgrad3", b"upgrade"));
        assert!(token_is(b"Connection", b"connection"));
        assert!(!token_is(b"Keep-Alive", b"connection"));
    }

    fn frame(chunks: &[(Side, &[u8])]) -> (Http1Framer, Vec<ProtocolEvent>) {
        let mut framer = Http1Framer::new();
        let mut events = Vec::new();
        let mut last = None;
        for (i, (side, bytes)) in chunks.iter().enumerate() {
            framer.data(*side, bytes, last != Some(*side), i as f64, &mut events);
            last = Some(*side);
        }
        (framer, events)
    }

    fn statuses(framer: &Http1Framer) -> Vec<Option<u16>> {
        framer.exchanges.iter().map(|e| e.status).collect()
    }

    /// Feeds `side`'s bytes cut at `cut`, then at every byte.
    fn each_segmentation(side: Side, bytes: &[u8], check: impl Fn(&Http1Framer)) {
        for cut in 0..=bytes.len() {
            let (framer, _) = frame(&[(side, &bytes[..cut]), (side, &bytes[cut..])]);
            check(&framer);
        }
        let mut framer = Http1Framer::new();
        for (i, byte) in bytes.chunks(1).enumerate() {
            framer.data(side, byte, i == 0, 0.0, &mut Vec::new());
        }
        check(&framer);
    }

    const THREE_PIPELINED: &[u8] = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n\
POST /b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello=world\
HEAD /c HTTP/1.1\r\nHost: example.com\r\n\r\n";

    #[test]
    fn test_pipelined_requests_in_one_segment_each_count() {
        let (framer, events) = frame(&[(Client, THREE_PIPELINED)]);
        assert_eq!(framer.requests, 3);
        let targets: Vec<_> = events
            .iter()
            .map(|e| match e {
                ProtocolEvent::HttpRequest { method, target, version } => {
                    assert_eq!(*version, HttpVersion::Http11);
                    format!("{method} {target}")
                }
                other => panic!("unexpected event {other:?}"),
            })
            .collect();
        assert_eq!(targets, ["GET /a", "POST /b", "HEAD /c"]);
        assert_eq!(framer.resyncs, 0);
    }

    #[test]
    fn test_pipelined_requests_survive_any_segmentation() {
        each_segmentation(Client, THREE_PIPELINED, |framer| {
            assert_eq!(framer.requests, 3);
            assert_eq!(framer.resyncs, 0);
        });
    }

    #[test]
    fn test_responses_pair_with_pipelined_requests_in_order() {
        let responses: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
        let (framer, _) = frame(&[(Client, THREE_PIPELINED), (Server, responses)]);
        assert_eq!((framer.requests, framer.responses), (3, 3));
        assert_eq!(statuses(&framer), [Some(200), Some(201), Some(200)]);
        assert_eq!(framer.exchanges[1].method.as_deref(), Some("POST"));
        assert_eq!(framer.exchanges[2].response_ts, Some(1.0));
        assert_eq!(framer.directions[Server.index()].phase, Phase::Head);
    }

    #[test]
    fn test_head_response_has_no_body() {
        let (framer, _) = frame(&[
            (Client, b"HEAD /big.iso HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n"),
            (Server, b"HTTP/1.1 200 OK\r\nContent-Length: 700000000\r\n\r\n"),
            (Server, b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!"),
        ]);
        assert_eq!(framer.responses, 2);
        assert_eq!(statuses(&framer), [Some(200), Some(404)]);
        assert_eq!(framer.resyncs, 0);
    }

    #[test]
    fn test_204_and_304_responses_have_no_body() {
        let (framer, _) = frame(&[
            (Client, b"DELETE /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n"),
            (
                Server,
                b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n\
HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ]);
        assert_eq!(statuses(&framer), [Some(204), Some(304), Some(200)]);
        assert_eq!(framer.resyncs, 0);
    }

    const CHUNKED_WITH_TRAILERS: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n\
5\r\nHTTP/\r\n0\r\nExpires: never\r\nX-Checksum: 1234\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn test_chunked_body_with_trailers_split_across_segments() {
        each_segmentation(Server, CHUNKED_WITH_TRAILERS, |framer| {
            assert_eq!(framer.responses, 2);
            assert_eq!(framer.resyncs, 0);
            assert_eq!(framer.directions[Server.index()].phase, Phase::Head);
        });
    }

    #[test]
    fn test_chunked_request_body_is_skipped() {
        let (framer, _) = frame(&[(
            Client,
            b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
        )]);
        assert_eq!(framer.requests, 2);
        assert_eq!(framer.resyncs, 0);
    }

    #[test]
    fn test_interim_100_continue_is_not_the_final_response() {
        let (framer, events) = frame(&[
            (Client, b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
            (Server, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (Client, b"abc"),
            (Server, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!((framer.requests, framer.responses), (1, 1));
        assert_eq!(statuses(&framer), [Some(201)]);
        assert_eq!(events.iter().filter(|e| matches!(e, ProtocolEvent::HttpResponse { .. })).count(), 1);
    }

    #[test]
    fn test_head_with_more_headers_than_the_first_try_still_parses() {
        let mut request = b"GET /many HTTP/1.1\r\n".to_vec();
        for i in 0..(FEW_HEADERS + 6) {
            request.extend_from_slice(format!("X-Header-{i}: v\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        let (framer, _) = frame(&[(Client, &request)]);
        assert_eq!(framer.requests, 1);
        assert_eq!(framer.resyncs, 0);
    }

    #[test]
    fn test_headers_split_byte_by_byte() {
        let request = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
        each_segmentation(Client, request, |framer| {
            assert_eq!(framer.requests, 1);
            assert_eq!(framer.exchanges[0].target.as_deref(), Some("/index.html?q=1"));
        });
    }

    #[test]
    fn test_gap_in_content_length_body_is_survived() {
        let mut framer = Http1Framer::new();
        let mut events = Vec::new();
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", true, 0.0, &mut events);
        framer.gap(Server, 60, 0.0, &mut Vec::new());
        framer.data(Server, b"012345678901234567890123456789HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 1.0, &mut events);
        assert_eq!(framer.responses, 2);
        assert_eq!(framer.resyncs, 0);
    }

    #[test]
    fn test_gap_past_a_known_body_resynchronises_at_the_next_turn_not_inside_the_body() {
        let mut framer = Http1Framer::new();
        let mut events = Vec::new();
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", true, 0.0, &mut events);
        // Lost: the rest of the body and the head of an unknown next response.
        framer.gap(Server, 500, 0.0, &mut Vec::new());
        // A whole valid head at a line start, and one at the start of a segment, both after lost
        // bytes with no request in between: nothing says a message begins there.
        framer.data(Server, b"tail of a lost body\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 1.0, &mut events);
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 1.5, &mut events);
        assert_eq!(framer.responses, 1);
        framer.data(Client, b"GET /next HTTP/1.1\r\n\r\n", true, 2.0, &mut events);
        framer.data(Server, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true, 3.0, &mut events);
        assert_eq!(framer.resyncs, 1);
        assert_eq!(statuses(&framer), [Some(200), Some(404)]);
        assert_eq!(framer.exchanges[1].target.as_deref(), Some("/next"));
    }

    #[test]
    fn test_response_found_by_resync_pairs_with_the_latest_request() {
        let mut framer = Http1Framer::new();
        framer.data(Client, b"GET /a HTTP/1.1\r\n\r\n", true, 0.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Le", true, 0.1, &mut Vec::new());
        framer.gap(Server, 5000, 0.2, &mut Vec::new()); // response /a, and all of /b's, lost
        framer.data(Client, b"GET /b HTTP/1.1\r\n\r\n", true, 1.0, &mut Vec::new());
        framer.data(Client, b"GET /c HTTP/1.1\r\n\r\n", true, 2.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true, 2.1, &mut Vec::new());
        assert_eq!((framer.requests, framer.responses), (3, 2));
        assert_eq!(statuses(&framer), [Some(200), None, Some(404)]);
    }

    #[test]
    fn test_gap_in_headers_after_a_whole_start_line_counts_the_message() {
        let mut framer = Http1Framer::new();
        framer.data(Client, b"GET /cut HTTP/1.1\r\nHost: ex", true, 0.0, &mut Vec::new());
        framer.gap(Client, 20, 0.0, &mut Vec::new());
        // The cut head's body (if its lost headers gave it one) may hold the next line: not trusted.
        framer.data(Client, b"ample.com\r\n\r\nGET /pipelined HTTP/1.1\r\n\r\n", false, 1.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, 1.5, &mut Vec::new());
        framer.data(Client, b"GET /kept HTTP/1.1\r\n\r\n", true, 2.0, &mut Vec::new());
        assert_eq!(framer.requests, 2);
        assert_eq!(framer.exchanges[0].target.as_deref(), Some("/cut"));
        assert_eq!(framer.exchanges[1].target.as_deref(), Some("/kept"));
        assert_eq!(framer.resyncs, 1);
    }

    #[test]
    fn test_gap_inside_the_start_line_drops_the_message() {
        let mut framer = Http1Framer::new();
        framer.data(Client, b"GET /lo", true, 0.0, &mut Vec::new());
        framer.gap(Client, 20, 0.0, &mut Vec::new());
        framer.data(Client, b"ample.com\r\n\r\nGET /pipelined HTTP/1.1\r\n\r\n", false, 1.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, 1.5, &mut Vec::new());
        framer.data(Client, b"GET /kept HTTP/1.1\r\n\r\n", true, 2.0, &mut Vec::new());
        assert_eq!(framer.requests, 1);
        assert_eq!(framer.exchanges[1].target.as_deref(), Some("/kept"));
    }

    #[test]
    fn test_snaplen_cut_status_line_counts_the_response() {
        let mut framer = Http1Framer::new();
        framer.data(Client, b"GET / HTTP/1.1\r\n\r\n", true, 0.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Le", true, 0.1, &mut Vec::new());
        framer.gap(Server, 100, 0.1, &mut Vec::new());
        framer.data(Client, b"GET /2 HTTP/1.1\r\n\r\n", true, 1.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 404 Not Found\r\nConte", true, 1.1, &mut Vec::new());
        framer.gap(Server, 100, 1.1, &mut Vec::new());
        assert_eq!((framer.requests, framer.responses), (2, 2));
        assert_eq!(statuses(&framer), vec![Some(200), Some(404)]);
    }

    #[test]
    fn test_garbage_is_skipped_without_inventing_messages() {
        let (framer, _) = frame(&[
            (Client, b"\x16\x03\x01 junk FOO\r\nnot a request\r\nGET /in-garbage HTTP/1.1\r\n\r\n"),
            (Server, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            (Client, b"GET / HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!(framer.requests, 1);
        assert_eq!(framer.exchanges[1].target.as_deref(), Some("/"));
        assert_eq!(framer.resyncs, 1);
    }

    #[test]
    fn test_oversized_header_block_is_dropped() {
        let mut framer = Http1Framer::new();
        framer.data(Client, b"GET / HTTP/1.1\r\nX-Big: ", true, 0.0, &mut Vec::new());
        let filler = vec![b'a'; 1000];
        for _ in 0..70 {
            framer.data(Client, &filler, false, 0.0, &mut Vec::new());
        }
        assert!(framer.directions[0].head.len() <= MAX_HEADER_BLOCK);
        framer.data(Client, b"\r\n\r\nGET /same-turn HTTP/1.1\r\n\r\n", false, 0.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n", true, 0.5, &mut Vec::new());
        framer.data(Client, b"GET /after HTTP/1.1\r\n\r\n", true, 1.0, &mut Vec::new());
        assert_eq!(framer.requests, 1);
        assert_eq!(framer.exchanges[1].target.as_deref(), Some("/after"));
        assert_eq!(framer.resyncs, 1);
    }

    #[test]
    fn test_body_text_that_looks_like_messages_is_never_counted_after_a_mid_stream_start() {
        // The framer joins inside a response body full of HTTP-looking lines and whole heads.
        let body: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut framer = Http1Framer::new();
        framer.gap(Server, 90_000, 0.0, &mut Vec::new());
        for _ in 0..5 {
            framer.data(Server, body, false, 0.0, &mut Vec::new());
        }
        framer.data(Client, b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n", true, 1.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 62\r\n\r\n", true, 1.1, &mut Vec::new());
        framer.data(Server, body, false, 1.1, &mut Vec::new());
        framer.data(Client, b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n", true, 2.0, &mut Vec::new());
        framer.data(Server, b"HTTP/1.1 204 No Content\r\n\r\n", true, 2.1, &mut Vec::new());
        assert_eq!((framer.requests, framer.responses), (2, 2));
        assert_eq!(statuses(&framer), [Some(200), Some(204)]);
    }

    #[test]
    fn test_close_delimited_http10_response_ends_at_server_fin() {
        let (mut framer, _) = frame(&[
            (Client, b"GET / HTTP/1.0\r\n\r\n"),
            (Server, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody that says HTTP/1.1 200 OK\r\n\r\n"),
        ]);
        framer.end_of_stream(Server);
        assert_eq!(framer.responses, 1);
        assert!(framer.http10);
        assert_eq!(framer.close_requested_by, Some(Server));
    }

    #[test]
    fn test_first_side_asking_to_close_is_recorded() {
        let (framer, _) = frame(&[
            (Client, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            (Server, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!(framer.close_requested_by, Some(Client));
        let (framer, _) = frame(&[
            (Client, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            (Server, b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!(framer.close_requested_by, None);
        assert!(framer.http10);
    }

    #[test]
    fn test_101_switching_protocols_ends_framing() {
        let (framer, _) = frame(&[
            (Client, b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            (Server, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
            (Client, b"\x81\x85GET / HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!((framer.requests, framer.responses), (1, 1));
        assert_eq!(framer.switch, Some(Switch::Other));
    }

    #[test]
    fn test_connect_answered_2xx_ends_framing_and_returns_the_tunnelled_bytes() {
        let mut framer = Http1Framer::new();
        let mut events = Vec::new();
        let rest = framer.data(Client, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n", true, 0.0, &mut events);
        assert_eq!((rest, framer.switch), (&b""[..], None));
        let rest = framer.data(Server, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03", true, 1.0, &mut events);
        assert_eq!((rest, framer.switch), (&b"\x16\x03\x03"[..], Some(Switch::Tunnel)));
        assert_eq!((framer.requests, framer.responses), (1, 1));
        assert_eq!(statuses(&framer), [Some(200)]);
    }

    #[test]
    fn test_exchanges_are_capped_but_counts_go_on() {
        let request = b"GET / HTTP/1.1\r\n\r\n".repeat(MAX_EXCHANGES + 10);
        let (framer, _) = frame(&[(Client, &request)]);
        assert_eq!(framer.requests as usize, MAX_EXCHANGES + 10);
        assert_eq!(framer.exchanges.len(), MAX_EXCHANGES);
    }

    #[test]
    fn test_content_length_reads_values_as_str_parse_does() {
        let values: [&[u8]; 11] = [
            b"0",
            b"4096",
            b"0012",
            b"9999999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
            b"+5",
            b" 7\t",
            b"5\xc2\xa0",
            b"1,1",
            b"",
        ];
        for value in values {
            let by_str = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            assert_eq!(content_length(value), by_str, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn test_start_line_checks() {
        assert_eq!(looks_like_request_line(b"GET / HTTP/1.1\r\n"), Verdict::Yes);
        assert_eq!(looks_like_request_line(b"GET /a"), Verdict::NeedMore);
        assert_eq!(looks_like_request_line(b"GET /a HTTP/2"), Verdict::No);
        assert_eq!(looks_like_request_line(b"get / HTTP/1.1"), Verdict::No);
        assert_eq!(looks_like_status_line(b"HTTP/1.1 200 OK"), Verdict::Yes);
        assert_eq!(looks_like_status_line(b"HTTP/1.1 2"), Verdict::NeedMore);
        assert_eq!(looks_like_status_line(b"HTTP/2 200"), Verdict::No);
        assert_eq!(looks_like_status_line(b"HTTP/1.x 200"), Verdict::No);
        assert_eq!(looks_like_status_line(b"HTTP/1.1200 OK"), Verdict::No);
        assert_eq!(looks_like_status_line(b"HTTP/1.1 2x0"), Verdict::No);
        assert_eq!(looks_like_status_line(b"HTXP"), Verdict::No);
        assert_eq!(looks_like_status_line(b"HTTP/"), Verdict::NeedMore);
        assert_eq!(looks_like_status_line(b""), Verdict::NeedMore);
        assert_eq!(looks_like_request_line(b"GET / HTTP/1"), Verdict::NeedMore);
        assert_eq!(looks_like_request_line(b"GET / HTTP/2.0"), Verdict::No);
        assert_eq!(looks_like_request_line(b"GET  / HTTP/1.1"), Verdict::No);
        assert_eq!(looks_like_request_line(b"TOO-LONG-FOR-A-METHOD-NAME / HTTP/1.1"), Verdict::No);
        assert_eq!(looks_like_method(b"OPTIONS * HTTP/1.1"), Verdict::Yes);
        assert_eq!(looks_like_method(b"\x16\x03\x01"), Verdict::No);
        assert!(is_lone_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!is_lone_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"));
        assert!(!is_lone_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!is_lone_request_head(b"HTTP/1.1 200 OK\r\n\r\n"));
    }
    /// Request and response heads as real programs sent them in the fixtures' captures (curl, Go
    /// net/http, nginx, python http.server, CONNECT, h2c upgrade, chunked, HTTP/1.0,
    /// `Connection: close`), and a few odd but valid ones (casing, tabs, empty values, obs-text).
    const REAL_HEADS: [&[u8]; 30] = [
        b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:18113\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\nEtag: \"hello-v1\"\r\nDate: Sun, 22 Nov 2026 00:47:37 GMT\r\n\r\n",
        b"GET /chunked HTTP/1.1\r\nHost: 127.0.0.1:18116\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 22 Nov 2026 00:47:48 GMT\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:18122\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\nEtag: \"hello-v1\"\r\nDate: Sun, 22 Nov 2026 02:53:56 GMT\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: BaseHTTP/0.6 Python/3.11.7\r\nDate: Wed, 02 Dec 2026 13:36:13 GMT\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:18106\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        b"GET /slow?ms=200 HTTP/1.1\r\nHost: 127.0.0.1:19603\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
        b"GET /first HTTP/1.1\r\nHost: 127.0.0.1:19502\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"HEAD /hello HTTP/1.1\r\nHost: 127.0.0.1:18118\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nEtag: \"hello-v1\"\r\nDate: Sun, 22 Nov 2026 00:47:52 GMT\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 13:34:26 GMT\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nLast-Modified: Wed, 02 Dec 2026 13:34:26 GMT\r\nConnection: keep-alive\r\nETag: \"6b1ef4c2-6\"\r\nAccept-Ranges: bytes\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.7\r\nDate: Wed, 02 Dec 2026 14:05:29 GMT\r\nContent-type: text/plain\r\nContent-Length: 3\r\nLast-Modified: Wed, 02 Dec 2026 14:05:24 GMT\r\n\r\n",
        b"POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1193\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:18117\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\nAccept-Encoding: gzip\r\n\r\n",
        b"CONNECT 127.0.0.1:19304 HTTP/1.1\r\nHost: 127.0.0.1:19304\r\nUser-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n",
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Wed, 02 Dec 2026 13:45:56 GMT\r\nContent-Length: 29\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nUser-Agent: ApacheBench/2.3\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh:\t 42 \t\r\nTRANSFER-ENCODING: gzip ,Chunked\r\nconnection: CLOSE,keep-alive\r\n\r\n",
        b"HTTP/1.1 204\r\nX-Empty:\r\nX-Blank:  \t \r\nX-Tab:\ta\tb\t\r\n\r\n",
        b"HTTP/1.1 200 \xc3\x96K caf\xe9\r\nX-Obs: \xff\x80\r\nContent-Length: 1,1\r\nContent-Length: +5\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nUpgrade: websocket, H2C\r\nX-Weird!#$%&'*+-.^_`|~: ok\r\n\r\n",
        b"DELETE /a%20b?c=d&e=%C3%A9#frag HTTP/1.1\r\nContent-Length: 00012\r\nContent-Length: 18446744073709551616\r\n\r\n",
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n\r\n",
    ];

    /// The next pseudo-random number of a small LCG (deterministic, no crate).
    fn next_random(state: &mut u64) -> usize {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*state >> 33) as usize
    }

    /// Whether the quick scan accepts `bytes` on `side`, checking that httparse then accepts
    /// them alike (same length, start line, version and framing facts) and that the start-line
    /// check it lets the framer skip would have let them through.
    fn scan_agrees_with_httparse(side: Side, bytes: &[u8]) -> bool {
        let Some(quick) = scan::head(side, bytes) else { return false };
        assert_eq!(Some(&quick), parse_with_httparse(side, bytes).as_ref(), "{side:?} {:?}", String::from_utf8_lossy(bytes));
        assert_ne!(start_line_verdict(side, bytes), Verdict::No, "{side:?} {:?}", String::from_utf8_lossy(bytes));
        true
    }

    #[test]
    fn test_quick_scan_accepts_the_plain_heads_of_real_programs() {
        for head in REAL_HEADS {
            let side = if head.starts_with(b"HTTP/") { Server } else { Client };
            let with_body = [head, b"body bytes \x00\x01\r\n".as_slice()].concat();
            let accepted = scan_agrees_with_httparse(side, &with_body);
            assert_eq!(accepted, !head.starts_with(b"PRI"), "{:?}", String::from_utf8_lossy(head));
            assert_eq!(scan::head(side, &with_body).map(|h| h.len), accepted.then_some(head.len()));
        }
        let nginx = REAL_HEADS[13];
        let facts = scan::head(Server, nginx).map(|head| head.facts);
        assert_eq!(facts, Some(HeadFacts { content_length: Some(6), keep_alive: true, ..HeadFacts::default() }));
        let odd = scan::head(Server, REAL_HEADS[24]).map(|head| head.facts);
        assert_eq!(odd, Some(HeadFacts { content_length: Some(42), chunked: true, close: true, keep_alive: true, upgrade_h2c: false }));
    }

    #[test]
    fn test_quick_scan_accepts_only_heads_httparse_accepts_alike_under_mutation() {
        const SPECIAL: [u8; 12] = [b'\r', b'\n', b'\t', b' ', 0, 0x7F, 0x80, 0xFF, b':', b',', b'/', b'0'];
        let mut state = 0x5eed;
        let (mut tried, mut accepted) = (0, 0);
        for head in REAL_HEADS {
            for _ in 0..3000 {
                let mut bytes = [head, b"HTTP/1.1 200 OK\r\n\r\n".as_slice()].concat();
                for _ in 0..1 + next_random(&mut state) % 3 {
                    let at = next_random(&mut state) % bytes.len();
                    let special = SPECIAL[next_random(&mut state) % SPECIAL.len()];
                    match next_random(&mut state) % 5 {
                        0 => bytes[at] ^= 1 << (next_random(&mut state) % 8),
                        1 => bytes.insert(at, special),
                        2 => bytes[at] = special,
                        3 => {
                            bytes.remove(at);
                        }
                        _ => bytes.insert(at, next_random(&mut state) as u8),
                    }
                }
                let cut = next_random(&mut state) % (bytes.len() + 1);
                for side in [Client, Server] {
                    for bytes in [&bytes[..], &bytes[..cut]] {
                        tried += 1;
                        accepted += usize::from(scan_agrees_with_httparse(side, bytes));
                    }
                }
            }
        }
        // About one check in nine is accepted (a changed value byte keeps a head valid); the rest
        // are invalid, cut short or on the wrong side: both kinds are well represented.
        assert!(accepted > tried / 20 && accepted < tried / 2, "{accepted} of {tried}");
    }

    #[test]
    fn test_quick_scan_takes_as_many_headers_as_httparse_is_given_room_for() {
        for count in [FEW_HEADERS, FEW_HEADERS + 1, MAX_HEADERS, MAX_HEADERS + 1] {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..count {
                head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            assert_eq!(scan_agrees_with_httparse(Server, &head), count <= MAX_HEADERS, "{count}");
            assert_eq!(parse_with_httparse(Server, &head).is_some(), count <= MAX_HEADERS, "{count}");
        }
    }
}
