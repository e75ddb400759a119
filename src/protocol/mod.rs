//! Protocol watchers: per TCP connection, reassemble each direction's byte stream, recognise the
//! application protocol from its first bytes and hand the streams to its analyzer
//! (HTTP/1.x framer, TLS sniffer or h2c frame counter).

mod h2;
mod http1;
pub mod keylog;
mod stream;
mod tls;
mod tls_crypto;
mod tls_decrypt;

use crate::wire::SeqNumber;
use crate::wire::Side;
use h2::H2Counter;
use http1::{Http1Framer, Switch};
use keylog::TlsKeys;
use serde::Serialize;
use std::sync::Arc;
use stream::{Reassembler, StreamConsumer};
use tls::TlsSniffer;
use tls_decrypt::Plain;

/// A message start found in a connection's byte streams.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolEvent {
    /// An HTTP/1 request head from the client.
    HttpRequest { method: HeadText, target: HeadText, version: HttpVersion },
    /// A final HTTP/1 response head from the server (interim 1xx responses other than 101 are not reported).
    HttpResponse { status: u16 },
    /// A TLS ClientHello, with its server name if it had one.
    TlsClientHello { sni: Option<String> },
    /// The HTTP/2 client connection preface.
    H2Preface,
}

/// Longest text a [`HeadText`] holds without a heap allocation.
const INLINE_TEXT: usize = 30;

/// A method or request target in a [`ProtocolEvent`] or a connection's record. Both are made for
/// every request, events often dropped unread and records often on another thread than the one
/// that made them (`parallel`), so text up to `INLINE_TEXT` (30) bytes (every method, most targets) is
/// held inline instead of on the heap. Reads as a `&str`; serialised as a string.
#[derive(Clone, PartialEq, Eq)]
pub struct HeadText(HeadTextRepr);

#[derive(Clone, PartialEq, Eq)]
enum HeadTextRepr {
    Inline { len: u8, bytes: [u8; INLINE_TEXT] },
    Heap(Box<str>),
}

impl From<&str> for HeadText {
    fn from(text: &str) -> Self {
        HeadText(match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE_TEXT => {
                let mut bytes = [0; INLINE_TEXT];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                HeadTextRepr::Inline { len, bytes }
            }
            _ => HeadTextRepr::Heap(text.into()),
        })
    }
}

impl std::ops::Deref for HeadText {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            HeadTextRepr::Inline { len, bytes } => {
                let text = &bytes[..usize::from(*len)];
                debug_assert!(std::str::from_utf8(text).is_ok());
                // SAFETY: inline text is only made by `From<&str>`, as a copy of a whole `str`'s
                // bytes (`len` of them), so it is UTF-8; it is read on every use (serialising,
                // comparing), where checking it again cost 70 M instructions on json --all of
                // 86,580 connections.
                unsafe { std::str::from_utf8_unchecked(text) }
            }
            HeadTextRepr::Heap(text) => text,
        }
    }
}

impl Serialize for HeadText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl std::fmt::Display for HeadText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::fmt::Debug for HeadText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// HTTP protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpVersion {
    #[serde(rename = "HTTP/1.0")]
    Http10,
    #[serde(rename = "HTTP/1.1")]
    Http11,
    /// A request on an h2c stream.
    #[serde(rename = "HTTP/2")]
    Http2,
}

/// Application protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// No payload in either direction.
    None,
    Http1,
    Tls,
    H2c,
    /// Payload that none of the analyzers recognised.
    Unknown,
}

/// One request paired with its response; a half that was not seen is `None`.
#[derive(Debug, Clone, Serialize)]
pub struct HttpExchange {
    pub method: Option<HeadText>,
    pub target: Option<HeadText>,
    pub version: Option<HttpVersion>,
    pub status: Option<u16>,
    pub request_ts: Option<f64>,
    pub response_ts: Option<f64>,
}

/// What the TLS sniffer saw.
#[derive(Debug, Clone, Serialize)]
pub struct TlsSummary {
    /// ClientHello messages read whole, the second one after a HelloRetryRequest included.
    pub client_hellos: u32,
    /// HelloRetryRequests: ServerHellos with the special random of RFC 8446, 4.1.3.
    pub hello_retry_requests: u32,
    pub full_handshakes: u32,
    pub resumed_handshakes: u32,
    pub sni: Option<String>,
    pub version: Option<String>,
    /// Client application-data bursts answered by a server burst.
    pub exchanges_estimate: u32,
    /// The connection's secrets were found (key log or pcapng secrets): its HTTP is read.
    pub decrypted: bool,
    /// Records that failed to authenticate with those secrets; `None` without secrets.
    pub decrypt_failures: Option<u32>,
    /// The side whose close_notify alert came first (seen only when decrypted): the side that
    /// closed; its peer's FIN may still come first (it answers the alert with its own and closes).
    pub close_notify_by: Option<Side>,
}

/// What the h2c frame counter saw.
#[derive(Debug, Clone, Serialize)]
pub struct H2Summary {
    /// Streams opened by the client (distinct odd stream ids with a HEADERS frame).
    pub streams: u32,
    pub upgraded_from_http1: bool,
    /// The connection's first GOAWAY.
    pub goaway: Option<H2GoAway>,
}

/// An HTTP/2 GOAWAY (RFC 9113, 6.8): the HTTP/2 announcement of a connection's close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct H2GoAway {
    /// The side that sent it.
    pub by: Side,
    /// The highest stream id its sender processed or may process.
    pub last_stream_id: u32,
    /// 0 (NO_ERROR) for a graceful shutdown.
    pub error_code: u32,
}

impl ProtocolSummary {
    /// Are the connection's HTTP messages read (HTTP/1, h2c, or HTTP inside decrypted TLS)?
    pub fn http_readable(&self) -> bool {
        match self.protocol {
            Protocol::Http1 | Protocol::H2c => true,
            Protocol::Tls => matches!(self.inside_tls, Some(Protocol::Http1 | Protocol::H2c)),
            Protocol::None | Protocol::Unknown => false,
        }
    }
}

/// Everything the watcher learnt about one connection.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolSummary {
    pub protocol: Protocol,
    /// HTTP/1 requests framed (never capped).
    pub http_requests: u32,
    /// Final HTTP/1 responses framed (never capped).
    pub http_responses: u32,
    /// Requests paired with responses in order: the first `http1::MAX_EXCHANGES` (32) of the connection.
    pub exchanges: Vec<HttpExchange>,
    /// First side that sent `Connection: close` (or an HTTP/1.0 response without keep-alive: the server).
    pub close_requested_by: Option<Side>,
    /// Whether each side (indexed by [`Side::index`]) announced the close in one of its messages
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close_announced: [bool; 2],
    /// Requests answered in full: final responses whose last byte was seen.
    pub answered: u32,
    /// Any HTTP/1.0 message.
    pub http10: bool,
    pub tls: Option<TlsSummary>,
    pub h2: Option<H2Summary>,
    /// Holes in each side's byte stream, indexed by [`Side::index`].
    pub gaps: [u32; 2],
    /// Bytes missing in those holes.
    pub gap_bytes: [u64; 2],
    /// Times the HTTP framer had to resynchronise after a gap or garbage.
    pub resyncs: u32,
    /// The protocol recognised inside decrypted TLS; `None` when not decrypted.
    pub inside_tls: Option<Protocol>,
}

/// Whether some bytes can begin a given kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
    NeedMore,
}

/// `Yes` when `bytes` starts with `expected`, `NeedMore` when it is a shorter prefix of it.
fn prefix_verdict(bytes: &[u8], expected: &[u8]) -> Verdict {
    let n = bytes.len().min(expected.len());
    if bytes[..n] != expected[..n] {
        Verdict::No
    } else if n < expected.len() {
        Verdict::NeedMore
    } else {
        Verdict::Yes
    }
}

/// Watches one TCP connection's payload; small when idle.
#[derive(Debug, Default)]
pub struct ProtocolWatcher {
    streams: [Reassembler; 2],
    dispatch: Dispatch,
    /// Time of the latest segment: data flushed at FIN or finish is dated by it.
    last_ts: f64,
}

impl ProtocolWatcher {
    /// A watcher for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A watcher that decrypts the connection if it is TLS and `keys` hold its secrets.
    pub fn with_tls_keys(keys: Option<Arc<TlsKeys>>) -> Self {
        ProtocolWatcher { dispatch: Dispatch { tls_keys: keys, ..Dispatch::default() }, ..Self::default() }
    }

    /// The side's SYN was seen with this initial sequence number: its byte stream starts at isn+1
    /// (ignored once the side's stream has started).
    pub fn on_syn(&mut self, side: Side, isn: SeqNumber) {
        if self.streams[side.index()].start_at(isn.wrapping_add(1)) {
            self.dispatch.at_stream_start[side.index()] = true;
        }
    }

    /// A segment from `side` with payload. `seq` = sequence number of the first payload byte,
    /// `payload` = the captured bytes (may be shorter than `wire_len` when the snaplen cut the packet),
    /// `wire_len` = TCP payload length on the wire, `ts` = seconds since epoch. New messages found are pushed onto `events`.
    /// If no SYN was seen (mid-stream), the first segment seen on a side starts its stream.
    pub fn on_segment(&mut self, side: Side, seq: SeqNumber, payload: &[u8], wire_len: u32, ts: f64, events: &mut Vec<ProtocolEvent>) {
        self.last_ts = ts;
        let mut delivery = Delivery { dispatch: &mut self.dispatch, side, ts, events };
        let turn = std::mem::take(&mut delivery.dispatch.acked_peer_data[side.index()]);
        self.streams[side.index()].segment(seq, payload, wire_len, turn, &mut delivery);
    }

    /// `side` sent FIN at sequence number `seq` (its stream ends there): flush held data and close-delimited bodies.
    /// When the FIN segment carries payload, call [`Self::on_segment`] for it first.
    pub fn on_fin(&mut self, side: Side, seq: SeqNumber, events: &mut Vec<ProtocolEvent>) {
        self.end_stream(side, Some(seq), events);
    }

    /// Requests framed so far, and how many of them were answered in full.
    pub fn progress(&self) -> (u32, u32) {
        (self.dispatch.requests(), self.dispatch.answered())
    }

    /// `side`'s next segment acknowledges data of the peer's it had not acknowledged before: its
    /// payload was sent after the peer's last message arrived, so a message may begin there (a
    /// turn), even where the capture put the peer's segments after it (several capture CPUs).
    pub fn peer_data_received(&mut self, side: Side) {
        self.dispatch.acked_peer_data[side.index()] = true;
    }

    /// End of the connection (RST, end of capture or eviction): flush and summarise.
    pub fn finish(&mut self, events: &mut Vec<ProtocolEvent>) -> ProtocolSummary {
        for side in [Side::Client, Side::Server] {
            self.end_stream(side, None, events);
        }
        let gaps = [self.streams[0].gaps(), self.streams[1].gaps()];
        let gap_bytes = [self.streams[0].gap_bytes(), self.streams[1].gap_bytes()];
        self.dispatch.summary(gaps, gap_bytes)
    }

    fn end_stream(&mut self, side: Side, end: Option<SeqNumber>, events: &mut Vec<ProtocolEvent>) {
        let ts = self.last_ts;
        let mut delivery = Delivery { dispatch: &mut self.dispatch, side, ts, events };
        self.streams[side.index()].flush(end, &mut delivery);
        self.dispatch.end_of_stream(side);
    }
}

/// The analyzer a connection's streams go to.
#[derive(Debug, Default)]
enum Analyzer {
    /// Not recognised yet.
    #[default]
    Detecting,
    /// HTTP/1.x, and the h2c counter once upgraded by a 101.
    Http1 {
        framer: Box<Http1Framer>,
        upgraded: Option<Box<H2Counter>>,
    },
    /// TLS; with the connection's secrets, `inside` recognises and reads the decrypted streams
    /// afresh (HTTP/1, or HTTP/2 after ALPN h2).
    Tls {
        sniffer: Box<TlsSniffer>,
        inside: Option<Box<Dispatch>>,
    },
    H2c(Box<H2Counter>),
    /// An HTTP CONNECT tunnel opened by the proxy's 2xx: `framer` holds the CONNECT exchange,
    /// `inner` recognises and reads the tunnelled bytes afresh (TLS, or HTTP/1 for `curl -p http://`).
    Tunnel {
        framer: Box<Http1Framer>,
        inner: Box<Dispatch>,
    },
    /// The client's first bytes matched none of the protocols: the rest is not read.
    NotRecognised,
}

/// Most first bytes of a side held while they are too few to decide its protocol.
const MAX_SNIFF: usize = http1::START_LINE_CHECK_WINDOW;

/// Recognition state of one side before the protocol is known.
#[derive(Debug, Default)]
struct Sniff {
    /// First bytes of the side when they were too few to decide (at most [`MAX_SNIFF`]).
    prefix: Vec<u8>,
    /// The held prefix is the start of the side's stream.
    prefix_at_stream_start: bool,
    /// The held prefix is a mid-stream client's first bytes (see [`Start::unsure`]).
    unsure: bool,
}

/// Where a side's data begins, for recognition.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// At the start of the side's stream (after its SYN).
    stream_start: bool,
    /// Where a message can begin (see [`Dispatch`]).
    at_turn: bool,
    /// The first data of a mid-stream capture, from the client: HTTP/1 only when it is exactly one
    /// request head, as it may be the inside of a request body.
    unsure: bool,
}

/// A protocol recognised from a side's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recognised {
    Http1,
    Tls,
    H2c,
}

/// Recognition of `side`'s first bytes; `Err(true)` when more bytes could decide.
/// HTTP/1 needs a whole request line (`METHOD SP target SP HTTP/1.x`): a method-like word alone is
/// also how FTP, SMTP and Redis inline commands begin (`USER x`, `EHLO x`, `GET key`). A server's
/// SETTINGS frame is held (never recognised on its own): an h2 server may send it before the
/// client's preface arrives.
fn recognise(side: Side, bytes: &[u8]) -> Result<Recognised, bool> {
    let candidates = match side {
        Side::Client => [
            (prefix_verdict(bytes, h2::CLIENT_PREFACE), Recognised::H2c),
            (tls::looks_like_handshake_record(bytes), Recognised::Tls),
            (http1_request_verdict(bytes), Recognised::Http1),
        ],
        Side::Server => [
            (h2::looks_like_server_preface(bytes), Recognised::H2c),
            (tls::looks_like_handshake_record(bytes), Recognised::Tls),
            (http1::looks_like_status_line(bytes), Recognised::Http1),
        ],
    };
    let mut need_more = false;
    for (verdict, protocol) in candidates {
        match verdict {
            Verdict::Yes if !need_more => return Ok(protocol),
            Verdict::Yes | Verdict::NeedMore => need_more = true,
            Verdict::No => {}
        }
    }
    Err(need_more)
}

/// Longest PROXY protocol v1 line (its specification's limit).
const MAX_PROXY_V1: usize = 107;
/// Signature of a PROXY protocol v2 header.
const PROXY_V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Length of a whole PROXY protocol header (v1 line or v2 block) at the start of `bytes`: a load
/// balancer sends it before the client's own first bytes.
fn proxy_header_len(bytes: &[u8]) -> Option<usize> {
    if bytes.starts_with(b"PROXY ") {
        return bytes.iter().take(MAX_PROXY_V1).position(|b| *b == b'\n').map(|end| end + 1);
    }
    let header = bytes.strip_prefix(PROXY_V2_SIGNATURE)?;
    let len = usize::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?]));
    let total = PROXY_V2_SIGNATURE.len() + 4 + len;
    (bytes.len() >= total).then_some(total)
}

/// Does a client's stream begin with an HTTP/1 request line? Empty lines before it are allowed
/// (RFC 9112, 2.2: a server ignores them); a line whose target fills the window is taken as one.
fn http1_request_verdict(bytes: &[u8]) -> Verdict {
    let line = &bytes[bytes.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count()..];
    match http1::looks_like_request_line(line) {
        Verdict::NeedMore if line.len() >= MAX_SNIFF && http1::looks_like_method(line) == Verdict::Yes => Verdict::Yes,
        Verdict::NeedMore if bytes.len() >= MAX_SNIFF => Verdict::No,
        verdict => verdict,
    }
}

/// Everything downstream of the reassemblers.
///
/// Where a message can begin: at the start of a side's stream (its SYN was seen), and at the first
/// byte a side sends after the peer has sent data (a turn: an HTTP response follows its request, a
/// keep-alive client's next request follows the response). In a capture that starts mid-stream,
/// the client's first data also counts when no server data came before it (the client speaks
/// first), but for HTTP/1 only when it is exactly one request head: it may be inside an upload.
/// Anywhere else (inside a body that the capture or a gap cut) bytes are never taken for the start
/// of a message.
#[derive(Debug, Default)]
struct Dispatch {
    sniffs: [Sniff; 2],
    analyzer: Analyzer,
    saw_payload: bool,
    /// This dispatch reads the inside of a CONNECT tunnel: a CONNECT inside it ends HTTP/1
    /// framing instead of nesting another tunnel (bounded depth on hostile input).
    in_tunnel: bool,
    /// The side that sent the latest data (or lost bytes in a gap).
    last_side: Option<Side>,
    /// The side's next bytes are the first of its stream (after its SYN).
    at_stream_start: [bool; 2],
    /// The side's next bytes come in a segment that acknowledged new data of the peer's: a turn,
    /// judged by sequence numbers rather than by capture order.
    acked_peer_data: [bool; 2],
    /// The analysis's TLS secrets, for a TLS connection to be decrypted.
    tls_keys: Option<Arc<TlsKeys>>,
}

/// Feeds the application data `sniffer` decrypted to the dispatch that reads it (made at its
/// first bytes: both decrypted streams start there). A lost record is a gap in its side's stream.
fn read_decrypted(sniffer: &mut TlsSniffer, inside: &mut Option<Box<Dispatch>>, ts: f64, events: &mut Vec<ProtocolEvent>) {
    for plain in sniffer.take_plaintext() {
        // TLS inside is not decrypted again (no keys), and a CONNECT inside opens no tunnel.
        let inside =
            inside.get_or_insert_with(|| Box::new(Dispatch { in_tunnel: true, at_stream_start: [true; 2], ..Dispatch::default() }));
        match plain {
            Plain::Data(side, bytes) => inside.data(side, &bytes, ts, events),
            Plain::Gap(side, len) => inside.gap(side, len, ts, events),
        }
    }
}

impl Dispatch {
    fn data(&mut self, side: Side, bytes: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) {
        if bytes.is_empty() {
            return;
        }
        self.saw_payload = true;
        let mut bytes = bytes;
        if side == Side::Client && self.at_stream_start[side.index()] {
            if let Some(len) = proxy_header_len(bytes) {
                bytes = &bytes[len..]; // the client's own bytes begin after it
                if bytes.is_empty() {
                    return;
                }
            }
        }
        let stream_start = std::mem::take(&mut self.at_stream_start[side.index()]);
        let acked_peer_data = std::mem::take(&mut self.acked_peer_data[side.index()]);
        let at_turn = stream_start || acked_peer_data || self.last_side.map_or(side == Side::Client, |last| last != side);
        // The first bytes of a mid-stream capture, from the client: maybe inside a request body.
        let unsure = !stream_start && self.last_side.is_none();
        self.last_side = Some(side);
        if matches!(self.analyzer, Analyzer::Detecting) {
            let start = Start { stream_start, at_turn, unsure };
            self.detect(side, bytes, start, ts, events);
        } else {
            self.analyze(side, bytes, at_turn, ts, events);
        }
    }

    /// Recognises the protocol from `side`'s first bytes, then feeds them to its analyzer.
    /// When the client's stream start matches nothing, the connection speaks none of the
    /// protocols; a side whose first bytes came mid-stream is retried at its next turn.
    fn detect(&mut self, side: Side, bytes: &[u8], start: Start, ts: f64, events: &mut Vec<ProtocolEvent>) {
        let i = side.index();
        if self.sniffs[i].prefix.is_empty() {
            if !start.at_turn {
                return; // inside a message: nothing can begin here
            }
            // Whole chunks are tried on their own first: the common case copies nothing.
            match recognise(side, bytes) {
                Ok(Recognised::Http1) if start.unsure && !http1::is_lone_request_head(bytes) => return,
                Ok(protocol) => {
                    self.start(protocol, side, ts, events);
                    self.analyze(side, bytes, true, ts, events);
                    return;
                }
                Err(true) => {
                    self.sniffs[i].prefix_at_stream_start = start.stream_start;
                    self.sniffs[i].unsure = start.unsure;
                }
                Err(false) => return self.unrecognised(side, start.stream_start),
            }
        }
        let sniff = &mut self.sniffs[i];
        let take = (MAX_SNIFF - sniff.prefix.len()).min(bytes.len());
        sniff.prefix.extend_from_slice(&bytes[..take]);
        let prefix = std::mem::take(&mut sniff.prefix);
        let unsure_head = sniff.unsure && (take < bytes.len() || !http1::is_lone_request_head(&prefix));
        match recognise(side, &prefix) {
            Ok(Recognised::Http1) if unsure_head => self.sniffs[i] = Sniff::default(),
            Ok(protocol) => {
                self.start(protocol, side, ts, events);
                self.analyze(side, &prefix, true, ts, events);
                self.analyze(side, &bytes[take..], false, ts, events);
            }
            Err(true) if prefix.len() < MAX_SNIFF => self.sniffs[i].prefix = prefix,
            Err(_) => self.unrecognised(side, self.sniffs[i].prefix_at_stream_start),
        }
    }

    /// `side`'s first bytes matched no protocol. At the start of the client's stream that settles
    /// the connection (every recognised protocol begins with the client's bytes).
    fn unrecognised(&mut self, side: Side, stream_start: bool) {
        self.sniffs[side.index()] = Sniff::default();
        if stream_start && side == Side::Client {
            self.analyzer = Analyzer::NotRecognised;
        }
    }

    /// Starts the analyzer for `protocol`, recognised on `side`; the peer's undecided first bytes go to it first.
    fn start(&mut self, protocol: Recognised, side: Side, ts: f64, events: &mut Vec<ProtocolEvent>) {
        self.analyzer = match protocol {
            Recognised::Http1 => Analyzer::Http1 { framer: Box::default(), upgraded: None },
            Recognised::Tls => Analyzer::Tls { sniffer: Box::new(TlsSniffer::with_keys(self.tls_keys.clone())), inside: None },
            Recognised::H2c => Analyzer::H2c(Box::new(H2Counter::prior_knowledge())),
        };
        let peer = std::mem::take(&mut self.sniffs[side.peer().index()]);
        self.analyze(side.peer(), &peer.prefix, true, ts, events);
    }

    /// Feeds the analyzer; `at_turn`: a message can begin at the first byte (see [`Dispatch`]).
    fn analyze(&mut self, side: Side, bytes: &[u8], at_turn: bool, ts: f64, events: &mut Vec<ProtocolEvent>) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.analyzer {
            Analyzer::Detecting | Analyzer::NotRecognised => {}
            Analyzer::Http1 { upgraded: Some(h2), .. } => h2.data(side, bytes, at_turn, ts, events),
            Analyzer::Http1 { framer, upgraded } => {
                let rest = framer.data(side, bytes, at_turn, ts, events);
                match framer.switch {
                    Some(Switch::H2c) => {
                        let mut h2 = Box::new(H2Counter::upgraded(framer.hand_over()));
                        h2.data(side, rest, false, ts, events);
                        *upgraded = Some(h2);
                    }
                    Some(Switch::Tunnel) if !self.in_tunnel => self.open_tunnel(side, rest, ts, events),
                    _ => {}
                }
            }
            Analyzer::Tls { sniffer, inside } => {
                sniffer.data(side, bytes, events);
                read_decrypted(sniffer, inside, ts, events);
            }
            Analyzer::H2c(counter) => counter.data(side, bytes, at_turn, ts, events),
            Analyzer::Tunnel { inner, .. } => inner.data(side, bytes, ts, events),
        }
    }

    /// The proxy accepted a CONNECT: the rest of both streams, from `tunnelled` (the bytes of
    /// `side` after the 2xx head), is the tunnelled protocol's.
    fn open_tunnel(&mut self, side: Side, tunnelled: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) {
        let Analyzer::Http1 { framer, .. } = std::mem::take(&mut self.analyzer) else { return };
        // Both sides' next bytes are the first of the tunnelled protocol's streams.
        let tls_keys = self.tls_keys.clone();
        let mut inner = Box::new(Dispatch { in_tunnel: true, at_stream_start: [true; 2], tls_keys, ..Dispatch::default() });
        inner.data(side, tunnelled, ts, events);
        self.analyzer = Analyzer::Tunnel { framer, inner };
    }

    fn gap(&mut self, side: Side, len: u64, ts: f64, events: &mut Vec<ProtocolEvent>) {
        self.at_stream_start[side.index()] = false;
        self.last_side = Some(side);
        match &mut self.analyzer {
            Analyzer::NotRecognised => {}
            Analyzer::Detecting => self.sniffs[side.index()] = Sniff::default(),
            Analyzer::Http1 { upgraded: Some(h2), .. } => h2.gap(side, len),
            Analyzer::Http1 { framer, .. } => framer.gap(side, len, ts, events),
            Analyzer::Tls { sniffer, inside } => {
                sniffer.gap(side, len);
                read_decrypted(sniffer, inside, ts, events);
            }
            Analyzer::H2c(counter) => counter.gap(side, len),
            Analyzer::Tunnel { inner, .. } => inner.gap(side, len, ts, events),
        }
    }

    /// Requests framed so far (HTTP/1 requests, or HTTP/2 requests).
    fn requests(&self) -> u32 {
        match &self.analyzer {
            Analyzer::Http1 { upgraded: Some(h2), .. } | Analyzer::H2c(h2) => h2.requests,
            Analyzer::Http1 { framer, .. } => framer.requests,
            Analyzer::Tunnel { framer, inner } => framer.requests.saturating_add(inner.requests()),
            Analyzer::Tls { inside: Some(inside), .. } => inside.requests(),
            Analyzer::Detecting | Analyzer::NotRecognised | Analyzer::Tls { inside: None, .. } => 0,
        }
    }

    /// Requests answered in full so far: HTTP/1 responses whose last byte came; for HTTP/2, final
    /// responses (a stream's END_STREAM is not followed).
    fn answered(&self) -> u32 {
        match &self.analyzer {
            Analyzer::Http1 { upgraded: Some(h2), .. } | Analyzer::H2c(h2) => h2.responses,
            Analyzer::Http1 { framer, .. } => framer.answered,
            Analyzer::Tunnel { framer, inner } => framer.answered.saturating_add(inner.answered()),
            Analyzer::Tls { inside: Some(inside), .. } => inside.answered(),
            Analyzer::Detecting | Analyzer::NotRecognised | Analyzer::Tls { inside: None, .. } => 0,
        }
    }

    fn end_of_stream(&mut self, side: Side) {
        match &mut self.analyzer {
            Analyzer::Http1 { framer, upgraded: None } => framer.end_of_stream(side),
            Analyzer::Tunnel { inner, .. } => inner.end_of_stream(side),
            Analyzer::Tls { sniffer, inside } => {
                sniffer.end_of_stream();
                if let Some(inside) = inside {
                    inside.end_of_stream(side);
                }
            }
            _ => {}
        }
    }

    fn summary(&mut self, gaps: [u32; 2], gap_bytes: [u64; 2]) -> ProtocolSummary {
        let mut summary = ProtocolSummary {
            protocol: if self.saw_payload { Protocol::Unknown } else { Protocol::None },
            http_requests: 0,
            http_responses: 0,
            exchanges: Vec::new(),
            close_requested_by: None,
            close_announced: [false; 2],
            answered: 0,
            http10: false,
            tls: None,
            h2: None,
            gaps,
            gap_bytes,
            resyncs: 0,
            inside_tls: None,
        };
        match &mut self.analyzer {
            Analyzer::Detecting | Analyzer::NotRecognised => {}
            Analyzer::Http1 { framer, upgraded } => {
                summary.close_requested_by = framer.close_requested_by;
                summary.close_announced = framer.close_announced;
                summary.answered = framer.answered;
                summary.http10 = framer.http10;
                summary.resyncs = framer.resyncs;
                match upgraded {
                    Some(h2) => {
                        summary.protocol = Protocol::H2c;
                        summary.http_requests = h2.requests;
                        summary.http_responses = h2.responses;
                        summary.answered = h2.responses;
                        summary.exchanges = std::mem::take(&mut h2.exchanges);
                        summary.h2 = Some(h2.summary());
                        announce_goaway(&mut summary);
                    }
                    None => {
                        summary.protocol = Protocol::Http1;
                        summary.http_requests = framer.requests;
                        summary.http_responses = framer.responses;
                        summary.exchanges = std::mem::take(&mut framer.exchanges);
                    }
                }
            }
            Analyzer::Tls { sniffer, inside } => {
                let tls = sniffer.summary();
                if tls.decrypted {
                    let mut inside_protocol = Protocol::None;
                    if let Some(inside) = inside {
                        summary = inside.summary(gaps, gap_bytes);
                        inside_protocol = summary.protocol;
                    }
                    summary.inside_tls = Some(inside_protocol);
                }
                summary.protocol = Protocol::Tls;
                summary.tls = Some(tls);
            }
            Analyzer::H2c(counter) => {
                summary.protocol = Protocol::H2c;
                summary.http_requests = counter.requests;
                summary.http_responses = counter.responses;
                summary.answered = counter.responses;
                summary.exchanges = std::mem::take(&mut counter.exchanges);
                summary.h2 = Some(counter.summary());
                announce_goaway(&mut summary);
            }
            Analyzer::Tunnel { framer, inner } => summary = tunnel_summary(framer, inner.summary(gaps, gap_bytes)),
        }
        summary
    }
}

/// A GOAWAY announces the close, as `Connection: close` does in HTTP/1: its sender asked for it.
fn announce_goaway(summary: &mut ProtocolSummary) {
    if let Some(goaway) = summary.h2.as_ref().and_then(|h| h.goaway) {
        summary.close_announced[goaway.by.index()] = true;
        summary.close_requested_by = summary.close_requested_by.or(Some(goaway.by));
    }
}

/// The summary of a CONNECT tunnel: the tunnelled protocol's (TLS: its handshakes and exchange
/// estimate), plus the CONNECT exchange in the HTTP counts, which come first. A tunnel that
/// carried nothing recognisable stays `http1`.
fn tunnel_summary(framer: &mut Http1Framer, mut inside: ProtocolSummary) -> ProtocolSummary {
    if matches!(inside.protocol, Protocol::None | Protocol::Unknown) {
        inside.protocol = Protocol::Http1;
    }
    inside.http_requests = inside.http_requests.saturating_add(framer.requests);
    inside.http_responses = inside.http_responses.saturating_add(framer.responses);
    let mut exchanges = std::mem::take(&mut framer.exchanges);
    exchanges.append(&mut inside.exchanges);
    exchanges.truncate(http1::MAX_EXCHANGES);
    inside.exchanges = exchanges;
    inside.close_requested_by = framer.close_requested_by.or(inside.close_requested_by);
    for side in [Side::Client, Side::Server] {
        inside.close_announced[side.index()] |= framer.close_announced[side.index()];
    }
    inside.answered = inside.answered.saturating_add(framer.answered);
    inside.http10 |= framer.http10;
    inside.resyncs = inside.resyncs.saturating_add(framer.resyncs);
    inside
}

/// Hands one side's reassembled stream to the dispatch.
struct Delivery<'a> {
    dispatch: &'a mut Dispatch,
    side: Side,
    ts: f64,
    events: &'a mut Vec<ProtocolEvent>,
}

impl StreamConsumer for Delivery<'_> {
    fn data(&mut self, bytes: &[u8]) {
        self.dispatch.data(self.side, bytes, self.ts, self.events);
    }

    fn gap(&mut self, len: u64) {
        self.dispatch.gap(self.side, len, self.ts, self.events);
    }

    fn turn(&mut self) {
        self.dispatch.acked_peer_data[self.side.index()] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Side::{Client, Server};

    /// Feeds segments `(side, seq, payload)` with `wire_len == payload.len()`.
    fn watch(watcher: &mut ProtocolWatcher, segments: &[(Side, u32, &[u8])]) -> Vec<ProtocolEvent> {
        let mut events = Vec::new();
        for (i, (side, seq, payload)) in segments.iter().enumerate() {
            watcher.on_segment(*side, SeqNumber(*seq), payload, payload.len() as u32, i as f64, &mut events);
        }
        events
    }

    const REQUEST: &[u8] = b"GET /api/items HTTP/1.1\r\nHost: localhost:8087\r\nAccept: */*\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"items\": []}";

    /// Feeds `(side, seq, payload, acknowledges new peer data)`, as the flow table does.
    fn watch_acks(watcher: &mut ProtocolWatcher, segments: &[(Side, u32, &[u8], bool)]) {
        let mut events = Vec::new();
        for (i, &(side, seq, payload, acks_new)) in segments.iter().enumerate() {
            if acks_new {
                watcher.peer_data_received(side);
            }
            watcher.on_segment(side, SeqNumber(seq), payload, payload.len() as u32, i as f64, &mut events);
        }
    }

    #[test]
    fn test_requests_after_a_lost_request_count_though_held_until_the_fin() {
        // Keep-alive: request 2 was never captured, so requests 3 and 4 wait out of order until the
        // client's FIN flushes them; each acknowledged a response, so each begins a turn.
        let (q, r) = (REQUEST.len() as u32, RESPONSE.len() as u32);
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(0));
        watcher.on_syn(Server, SeqNumber(0));
        watch_acks(
            &mut watcher,
            &[
                (Client, 1, REQUEST, false),
                (Server, 1, RESPONSE, true),
                (Server, 1 + r, RESPONSE, true),
                (Client, 1 + 2 * q, REQUEST, true),
                (Server, 1 + 2 * r, RESPONSE, true),
                (Client, 1 + 3 * q, REQUEST, true),
                (Server, 1 + 3 * r, RESPONSE, true),
            ],
        );
        watcher.on_fin(Client, SeqNumber(1 + 4 * q), &mut Vec::new());
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!((summary.http_requests, summary.http_responses), (3, 4));
        assert_eq!(summary.gaps, [1, 0]);
    }

    #[test]
    fn test_response_captured_before_the_last_bytes_of_the_previous_one_counts_after_a_hole() {
        // The server lost bytes inside response 1; request 2 was captured before response 1's
        // tail (two capture CPUs). Response 2 comes right after that tail in capture order, but
        // acknowledges request 2: a turn, so it is found.
        let (q, r) = (REQUEST.len() as u32, RESPONSE.len() as u32);
        let head = RESPONSE.len() - 13;
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(0));
        watcher.on_syn(Server, SeqNumber(0));
        watch_acks(
            &mut watcher,
            &[
                (Client, 1, REQUEST, false),
                (Server, 1, &RESPONSE[..head - 10], true),
                (Client, 1 + q, REQUEST, true),
                (Server, 1 + r - 13, &RESPONSE[head..], false),
                (Server, 1 + r, RESPONSE, true),
            ],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!((summary.http_requests, summary.http_responses), (2, 2));
    }

    #[test]
    fn test_idle_watcher_is_small() {
        assert!(std::mem::size_of::<ProtocolWatcher>() <= 256, "{} bytes", std::mem::size_of::<ProtocolWatcher>());
    }

    #[test]
    fn test_reused_http_connection_with_reordering_and_retransmission() {
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(1000));
        watcher.on_syn(Server, SeqNumber(5000));
        let r = REQUEST.len() as u32;
        let s = RESPONSE.len() as u32;
        let events = watch(
            &mut watcher,
            &[
                (Client, 1001, REQUEST),
                (Server, 5001 + 20, &RESPONSE[20..]), // out of order
                (Server, 5001, &RESPONSE[..20]),
                (Server, 5001, &RESPONSE[..20]), // retransmission
                (Client, 1001 + r, REQUEST),
                (Server, 5001 + s, RESPONSE),
            ],
        );
        let mut more = Vec::new();
        watcher.on_fin(Client, SeqNumber(1001 + 2 * r), &mut more);
        let summary = watcher.finish(&mut more);
        assert_eq!(summary.protocol, Protocol::Http1);
        assert_eq!((summary.http_requests, summary.http_responses), (2, 2));
        assert_eq!(events.len(), 4);
        assert_eq!(summary.exchanges.len(), 2);
        assert_eq!(summary.exchanges[0].response_ts, Some(2.0));
        assert_eq!((summary.gaps, summary.resyncs), ([0, 0], 0));
        assert!(more.is_empty());
    }

    #[test]
    fn test_snaplen_cut_body_is_a_gap_not_a_resync() {
        let mut watcher = ProtocolWatcher::new();
        let mut events = Vec::new();
        let body_response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        let head_len = body_response.len() as u32;
        watcher.on_segment(Client, SeqNumber(1), REQUEST, REQUEST.len() as u32, 0.0, &mut events);
        watcher.on_segment(Client, SeqNumber(1 + REQUEST.len() as u32), REQUEST, REQUEST.len() as u32, 0.0, &mut events);
        // 1000 body bytes on the wire, only 40 captured after the head.
        let captured = [&body_response[..], &[b'x'; 40][..]].concat();
        watcher.on_segment(Server, SeqNumber(700), &captured, head_len + 1000, 1.0, &mut events);
        watcher.on_segment(Server, SeqNumber(700 + head_len + 1000), RESPONSE, RESPONSE.len() as u32, 2.0, &mut events);
        let summary = watcher.finish(&mut events);
        assert_eq!((summary.http_requests, summary.http_responses), (2, 2));
        assert_eq!(summary.gaps, [0, 1]);
        assert_eq!(summary.gap_bytes, [0, 960]);
        assert_eq!(summary.resyncs, 0);
    }

    #[test]
    fn test_request_split_before_the_method_space_is_detected() {
        let mut watcher = ProtocolWatcher::new();
        watch(&mut watcher, &[(Client, 1, b"GE"), (Client, 3, &REQUEST[2..])]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Http1);
        assert_eq!(summary.http_requests, 1);
    }

    #[test]
    fn test_undecided_first_bytes_of_the_peer_are_not_lost() {
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(0));
        watcher.on_syn(Server, SeqNumber(0));
        let events = watch(&mut watcher, &[(Server, 1, &RESPONSE[..6]), (Client, 1, REQUEST), (Server, 7, &RESPONSE[6..])]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(events.len(), 2);
        assert_eq!((summary.http_requests, summary.http_responses, summary.resyncs), (1, 1, 0));
    }

    #[test]
    fn test_mid_stream_capture_finds_http_on_a_later_segment() {
        let mut watcher = ProtocolWatcher::new();
        let events = watch(
            &mut watcher,
            &[(Server, 90_000, b"ody of a response whose head was not captured</html>"), (Client, 7, REQUEST), (Server, 90_052, RESPONSE)],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Http1);
        assert_eq!(events.len(), 2);
        assert_eq!((summary.http_requests, summary.http_responses), (1, 1));
    }

    #[test]
    fn test_mid_stream_start_inside_a_body_counts_only_messages_that_begin_at_a_turn() {
        let fake: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nGET /fake HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut watcher = ProtocolWatcher::new();
        let f = fake.len() as u32;
        let r = REQUEST.len() as u32;
        let events = watch(
            &mut watcher,
            &[
                (Server, 50_000, fake), // the capture starts inside a response body that quotes messages
                (Server, 50_000 + f, fake),
                (Client, 900, REQUEST),
                (Server, 50_000 + 2 * f, RESPONSE),
                (Client, 900 + r, fake), // a client turn that begins with a status line: no request
            ],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Http1);
        assert_eq!(events.len(), 2);
        // The last turn lost the client's sync (one resync); "GET /fake" after it is not trusted.
        assert_eq!((summary.http_requests, summary.http_responses, summary.resyncs), (1, 1, 1));
        assert_eq!(summary.exchanges[0].status, Some(200));
    }

    #[test]
    fn test_mid_stream_start_inside_a_request_body_is_no_request() {
        let upload_piece: &[u8] = b"GET /quoted HTTP/1.1\r\nHost: x\r\n\r\nand the upload goes on\r\n";
        let created: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let mut watcher = ProtocolWatcher::new();
        let u = upload_piece.len() as u32;
        let events = watch(
            &mut watcher,
            &[(Client, 500, upload_piece), (Client, 500 + u, upload_piece), (Server, 70, created), (Client, 500 + 2 * u, REQUEST)],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!((summary.http_requests, summary.http_responses), (1, 1));
        assert_eq!(summary.exchanges[1].target.as_deref(), Some("/api/items"));
    }

    #[test]
    fn test_mid_stream_start_on_an_idle_connection_counts_the_first_request() {
        let mut watcher = ProtocolWatcher::new();
        watch(&mut watcher, &[(Client, 500, REQUEST), (Server, 70, RESPONSE)]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!((summary.http_requests, summary.http_responses), (1, 1));
        assert_eq!(summary.exchanges[0].status, Some(200));
    }

    #[test]
    fn test_text_protocols_whose_commands_look_like_methods_are_not_http1() {
        let smtp: [(Side, &[u8]); 5] = [
            (Server, b"220 mail.example ESMTP\r\n"),
            (Client, b"EHLO client.example\r\n"),
            (Server, b"250 mail.example\r\n"),
            (Client, b"DATA\r\n"),
            (Client, b"GET / HTTP/1.1\r\nHost: quoted-in-a-mail\r\n\r\n"),
        ];
        let redis: [(Side, &[u8]); 4] =
            [(Client, b"SET key value\r\n"), (Server, b"+OK\r\n"), (Client, b"GET key\r\n"), (Server, b"$5\r\nvalue\r\n")];
        let ftp: [(Side, &[u8]); 3] =
            [(Server, b"220 pyftpdlib ready.\r\n"), (Client, b"USER anonymous\r\n"), (Server, b"331 Username ok\r\n")];
        for conversation in [&smtp[..], &redis[..], &ftp[..]] {
            for with_syn in [true, false] {
                let mut watcher = ProtocolWatcher::new();
                if with_syn {
                    watcher.on_syn(Client, SeqNumber(0));
                    watcher.on_syn(Server, SeqNumber(0));
                }
                let mut next = [1u32, 1];
                let mut events = Vec::new();
                for (side, bytes) in conversation {
                    let seq = &mut next[side.index()];
                    watcher.on_segment(*side, SeqNumber(*seq), bytes, bytes.len() as u32, 0.0, &mut events);
                    *seq += bytes.len() as u32;
                }
                let summary = watcher.finish(&mut events);
                assert_eq!(summary.protocol, Protocol::Unknown, "{:?} with SYN: {with_syn}", String::from_utf8_lossy(conversation[0].1));
                assert!(events.is_empty());
            }
        }
    }

    #[test]
    fn test_a_proxy_protocol_header_before_the_client_bytes_is_skipped() {
        let v1: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
        let mut v2 = PROXY_V2_SIGNATURE.to_vec();
        v2.extend([0x21, 0x11, 0, 12]);
        v2.extend([192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb]);
        let together = [v1, REQUEST].concat();
        let v2_together = [&v2[..], REQUEST].concat();
        let cases: [&[(Side, u32, &[u8])]; 3] = [
            &[(Client, 1, &together), (Server, 1, RESPONSE)],
            &[(Client, 1, v1), (Client, 1 + v1.len() as u32, REQUEST), (Server, 1, RESPONSE)],
            &[(Client, 1, &v2_together), (Server, 1, RESPONSE)],
        ];
        for segments in cases {
            let mut watcher = ProtocolWatcher::new();
            watcher.on_syn(Client, SeqNumber(0));
            watcher.on_syn(Server, SeqNumber(0));
            watch(&mut watcher, segments);
            let summary = watcher.finish(&mut Vec::new());
            assert_eq!((summary.protocol, summary.http_requests, summary.http_responses), (Protocol::Http1, 1, 1));
            assert_eq!(summary.resyncs, 0);
        }
        assert_eq!(proxy_header_len(&v2[..15]), None);
        assert_eq!(proxy_header_len(b"PROXY without an end of line"), None);
    }

    #[test]
    fn test_empty_lines_before_the_first_request_line_are_allowed() {
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(0));
        let request = [&b"\r\n\r\n"[..], REQUEST].concat();
        watch(&mut watcher, &[(Client, 1, b"\r\n"), (Client, 3, &request)]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!((summary.protocol, summary.http_requests), (Protocol::Http1, 1));
        assert_eq!(http1_request_verdict(&[b'\n'; MAX_SNIFF]), Verdict::No);
    }

    #[test]
    fn test_request_line_with_a_target_longer_than_the_sniff_window_is_http1() {
        let request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(2 * MAX_SNIFF));
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(0));
        watch(&mut watcher, &[(Client, 1, &request.as_bytes()[..100]), (Client, 101, &request.as_bytes()[100..])]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!((summary.protocol, summary.http_requests), (Protocol::Http1, 1));
    }

    #[test]
    fn test_tls_connection_is_never_counted_as_http() {
        // A ClientHello whose SNI happens to contain an HTTP request line.
        let sni = b"GET / HTTP/1.1";
        let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x03];
        hello.extend([0u8; 32]);
        hello.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        let name_len = sni.len() as u8;
        let ext = [&[0, 0, 0, name_len + 5, 0, name_len + 3, 0, 0, name_len][..], sni].concat();
        hello.extend([0, ext.len() as u8]);
        hello.extend(ext);
        let record_len = hello.len() - 5;
        hello[3..5].copy_from_slice(&(record_len as u16).to_be_bytes());
        hello[8] = (record_len - 4) as u8;
        let mut watcher = ProtocolWatcher::new();
        let events = watch(&mut watcher, &[(Client, 1, &hello)]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Tls);
        assert_eq!(events, [ProtocolEvent::TlsClientHello { sni: Some("GET / HTTP/1.1".into()) }]);
        assert_eq!((summary.http_requests, summary.http_responses), (0, 0));
        assert_eq!(summary.tls.map(|t| t.client_hellos), Some(1));
    }

    /// A TLS 1.3 ClientHello record with a server_name.
    fn tls_client_hello(sni: &str) -> Vec<u8> {
        let mut name = vec![0];
        name.extend((sni.len() as u16).to_be_bytes());
        name.extend(sni.as_bytes());
        let mut server_name = (name.len() as u16).to_be_bytes().to_vec();
        server_name.extend(name);
        let mut extensions = [0, 0].to_vec();
        extensions.extend((server_name.len() as u16).to_be_bytes());
        extensions.extend(server_name);
        let mut body = [3, 3].to_vec();
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((extensions.len() as u16).to_be_bytes());
        body.extend(extensions);
        tls_handshake_record(1, &body)
    }

    /// A TLS 1.3 ServerHello record (supported_versions 0x0304).
    fn tls_server_hello() -> Vec<u8> {
        let mut body = [3, 3].to_vec();
        body.extend([9; 32]);
        body.extend([0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
        tls_handshake_record(2, &body)
    }

    fn tls_handshake_record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut record = vec![0x16, 3, 1];
        record.extend(((body.len() + 4) as u16).to_be_bytes());
        record.extend([kind, 0, (body.len() >> 8) as u8, body.len() as u8]);
        record.extend(body);
        record
    }

    /// Feeds each side's chunks at consecutive sequence numbers from 1.
    fn converse(watcher: &mut ProtocolWatcher, chunks: &[(Side, &[u8])]) -> Vec<ProtocolEvent> {
        let mut next = [1u32, 1u32];
        let mut events = Vec::new();
        for (i, (side, bytes)) in chunks.iter().enumerate() {
            let seq = &mut next[side.index()];
            watcher.on_segment(*side, SeqNumber(*seq), bytes, bytes.len() as u32, i as f64, &mut events);
            *seq += bytes.len() as u32;
        }
        events
    }

    const CONNECT: &[u8] = b"CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org:443\r\n\r\n";
    const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

    #[test]
    fn test_tls_inside_a_connect_tunnel_is_tls_and_the_connect_is_one_http_request() {
        let mut watcher = ProtocolWatcher::new();
        // The ServerHello comes in the segment of the 200: the bytes after its head are the tunnel's.
        let events = converse(
            &mut watcher,
            &[(Client, CONNECT), (Server, &[ESTABLISHED, &tls_server_hello()].concat()), (Client, &tls_client_hello("api.example.org"))],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Tls);
        assert_eq!((summary.http_requests, summary.http_responses), (1, 1));
        assert_eq!(summary.exchanges.len(), 1);
        assert_eq!(summary.exchanges[0].method.as_deref(), Some("CONNECT"));
        assert_eq!(summary.exchanges[0].target.as_deref(), Some("api.example.org:443"));
        assert_eq!(summary.exchanges[0].status, Some(200));
        let tls = summary.tls.expect("tls summary");
        assert_eq!((tls.client_hellos, tls.full_handshakes), (1, 1));
        assert_eq!((tls.sni.as_deref(), tls.version.as_deref()), (Some("api.example.org"), Some("TLS 1.3")));
        assert_eq!(events.last(), Some(&ProtocolEvent::TlsClientHello { sni: Some("api.example.org".into()) }));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn test_connect_refused_with_407_tunnels_after_the_second_connect() {
        let mut watcher = ProtocolWatcher::new();
        converse(
            &mut watcher,
            &[
                (Client, CONNECT),
                (Server, b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"),
                (Client, CONNECT),
                (Server, ESTABLISHED),
                (Client, &tls_client_hello("api.example.org")),
            ],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Tls);
        assert_eq!((summary.http_requests, summary.http_responses), (2, 2));
        assert_eq!(summary.tls.map(|t| t.client_hellos), Some(1));
    }

    #[test]
    fn test_http_inside_a_tunnel_is_counted_and_a_connect_inside_it_opens_no_second_tunnel() {
        let mut watcher = ProtocolWatcher::new();
        converse(
            &mut watcher,
            &[
                (Client, CONNECT),
                (Server, ESTABLISHED),
                (Client, REQUEST),
                (Server, RESPONSE),
                (Client, CONNECT),
                (Server, ESTABLISHED),
                (Client, &tls_client_hello("inner.example")),
            ],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::Http1);
        assert_eq!((summary.http_requests, summary.http_responses), (3, 3));
        let methods: Vec<_> = summary.exchanges.iter().map(|e| e.method.as_deref()).collect();
        assert_eq!(methods, [Some("CONNECT"), Some("GET"), Some("CONNECT")]);
        assert!(summary.tls.is_none());
    }

    #[test]
    fn test_h2c_prior_knowledge_is_recognised_and_its_requests_are_http_requests() {
        let mut watcher = ProtocolWatcher::new();
        // HEADERS on stream 1: GET (static index 2), :path / (index 4).
        let headers = [0, 0, 2, 1, 5, 0, 0, 0, 1, 0x82, 0x84];
        let server_settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        let response = [0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88]; // :status 200 (index 8), END_STREAM
        let events = watch(
            &mut watcher,
            &[
                (Server, 1, &server_settings), // sent before the client's preface arrived: held
                (Client, 1, &h2::CLIENT_PREFACE[..10]),
                (Client, 11, &h2::CLIENT_PREFACE[10..]),
                (Client, 25, &headers),
                (Server, 10, &response),
            ],
        );
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::H2c);
        let request = ProtocolEvent::HttpRequest { method: "GET".into(), target: "/".into(), version: HttpVersion::Http2 };
        assert_eq!(events, [ProtocolEvent::H2Preface, request, ProtocolEvent::HttpResponse { status: 200 }]);
        assert_eq!(summary.h2.map(|h| h.streams), Some(1));
        assert_eq!((summary.http_requests, summary.http_responses), (1, 1));
        assert_eq!(summary.exchanges[0].status, Some(200));
    }

    #[test]
    fn test_upgrade_to_h2c_hands_over_to_the_frame_counter() {
        let request = b"GET / HTTP/1.1\r\nHost: server\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
        // The server's SETTINGS and its response on stream 1 (:status 200) come in the 101's segment.
        let response = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\
\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88\x00\x00\x00\x00\x01\x00\x00\x00\x01";
        // Preface, SETTINGS, then a request on stream 3 (GET /).
        let client_h2 = [&h2::CLIENT_PREFACE[..], &[0, 0, 0, 4, 0, 0, 0, 0, 0], &[0, 0, 2, 1, 5, 0, 0, 0, 3, 0x82, 0x84]].concat();
        let mut watcher = ProtocolWatcher::new();
        let events = watch(&mut watcher, &[(Client, 1, request), (Server, 1, response), (Client, 1 + request.len() as u32, &client_h2)]);
        let summary = watcher.finish(&mut Vec::new());
        assert_eq!(summary.protocol, Protocol::H2c);
        assert_eq!((summary.http_requests, summary.http_responses), (2, 1), "the 101 is not stream 1's final response");
        assert_eq!(events[1], ProtocolEvent::HttpResponse { status: 200 });
        assert_eq!(events[2], ProtocolEvent::H2Preface);
        let statuses: Vec<_> = summary.exchanges.iter().map(|e| (e.version, e.status)).collect();
        assert_eq!(statuses, [(Some(HttpVersion::Http11), Some(200)), (Some(HttpVersion::Http2), None)]);
        let h2 = summary.h2.expect("h2 summary");
        assert_eq!((h2.streams, h2.upgraded_from_http1), (2, true));
    }

    #[test]
    fn test_no_payload_is_protocol_none_and_garbage_is_unknown() {
        let mut watcher = ProtocolWatcher::new();
        watcher.on_syn(Client, SeqNumber(1));
        assert_eq!(watcher.finish(&mut Vec::new()).protocol, Protocol::None);
        let mut watcher = ProtocolWatcher::new();
        watch(&mut watcher, &[(Client, 1, b"SSH-2.0-OpenSSH_9.6\r\n"), (Server, 1, b"SSH-2.0-OpenSSH_9.2\r\n")]);
        assert_eq!(watcher.finish(&mut Vec::new()).protocol, Protocol::Unknown);
    }

    #[test]
    fn test_fin_flushes_held_data_and_ends_a_close_delimited_body() {
        let mut watcher = ProtocolWatcher::new();
        let response = b"HTTP/1.0 200 OK\r\n\r\nclose-delimited body";
        watcher.on_syn(Server, SeqNumber(0));
        let mut events = watch(&mut watcher, &[(Client, 1, b"GET / HTTP/1.0\r\n\r\n"), (Server, 1 + 30, &response[30..])]);
        watcher.on_fin(Server, SeqNumber(1 + response.len() as u32 + 5), &mut events);
        let summary = watcher.finish(&mut events);
        assert_eq!((summary.http_requests, summary.http_responses), (1, 0));
        assert_eq!(summary.gaps, [0, 2]);
        assert_eq!(summary.gap_bytes, [0, 35]);
        assert_eq!(summary.resyncs, 1);
        assert_eq!(summary.close_requested_by, None);
        assert!(summary.http10);
    }

    /// xorshift64*: deterministic pseudo-random numbers for the robustness test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn rounds() -> u32 {
        std::env::var("CONNSCOPE_FUZZ_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(400)
    }

    #[test]
    fn test_arbitrary_bytes_and_segmentation_never_panic() {
        let seeds: [&[u8]; 7] = [
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 101 x\r\nUpgrade: h2c\r\n\r\n",
            b"\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x01\x05\x00\x00\x00\x01",
            b"\x17\x03\x03\xff\xff",
            b"CONNECT h:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x08\x02\xff\xff\xff\x03\x03",
            b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03\x00\x04\x01\x00\x40\x00\x14\x03\x03\x00\x01\x01",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..rounds() {
            let mut watcher = ProtocolWatcher::new();
            let mut events = Vec::new();
            let mut next_seq = [rng.next() as u32, rng.next() as u32];
            if round % 2 == 0 {
                watcher.on_syn(Client, SeqNumber(next_seq[0].wrapping_sub(1)));
            }
            for _ in 0..60 {
                let side = if rng.below(2) == 0 { Client } else { Server };
                let mut payload = seeds[rng.below(seeds.len() as u64) as usize].to_vec();
                for _ in 0..rng.below(4) {
                    let at = rng.below(payload.len() as u64) as usize;
                    payload[at] = rng.next() as u8;
                }
                payload.truncate(rng.below(payload.len() as u64 + 1) as usize);
                let wire_len = payload.len() as u32 + rng.below(3) as u32 * rng.below(2000) as u32;
                let jitter = rng.below(200) as u32;
                let seq = next_seq[side.index()].wrapping_add(jitter).wrapping_sub(100);
                next_seq[side.index()] = seq.wrapping_add(wire_len);
                watcher.on_segment(side, SeqNumber(seq), &payload, wire_len, round as f64, &mut events);
                if rng.below(50) == 0 {
                    watcher.on_fin(side, SeqNumber(next_seq[side.index()]), &mut events);
                }
            }
            let summary = watcher.finish(&mut events);
            assert!(summary.exchanges.len() <= http1::MAX_EXCHANGES);
            assert!(summary.http_responses as usize <= events.len());
        }
    }

    /// An HTTP/1.1 conversation of `n` pipelined exchanges with every body framing: (client stream, server stream).
    fn conversation(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut client, mut server) = (Vec::new(), Vec::new());
        for i in 0..n {
            let body: Vec<u8> = (0..rng.below(3000) as usize).map(|j| b"abcdefghij \r\n"[(i + j) % 13]).collect();
            let kind = rng.below(4);
            match kind {
                0 => client.extend_from_slice(format!("GET /item/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()),
                1 => client.extend_from_slice(format!("HEAD /item/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()),
                2 => {
                    client.extend_from_slice(format!("POST /up/{i} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                    client.extend_from_slice(&body);
                }
                _ => {
                    client.extend_from_slice(format!("PUT /up/{i} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes());
                    for piece in body.chunks(700) {
                        client.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                        client.extend_from_slice(piece);
                        client.extend_from_slice(b"\r\n");
                    }
                    client.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
                }
            }
            let head_request = kind == 1;
            if rng.below(2) == 0 {
                server.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                if !head_request {
                    server.extend_from_slice(&body);
                }
            } else if head_request {
                server.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            } else {
                server
                    .extend_from_slice(format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", body.len() + 1).as_bytes());
                server.extend_from_slice(&body);
                server.extend_from_slice(b"!\r\n0\r\n\r\n");
            }
        }
        (client, server)
    }

    /// Cuts a stream into segments (seq, bytes) of random sizes, starting at `isn + 1`.
    fn segments(rng: &mut Rng, isn: u32, stream: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let len = (1 + rng.below(1460) as usize).min(stream.len() - at);
            out.push((isn.wrapping_add(1).wrapping_add(at as u32), stream[at..at + len].to_vec()));
            at += len;
        }
        out
    }

    #[test]
    fn test_reordered_and_duplicated_segments_give_exact_counts() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..rounds() / 10 {
            let n = 1 + rng.below(12) as usize;
            let (client, server) = conversation(&mut rng, n);
            let mut watcher = ProtocolWatcher::new();
            let mut events = Vec::new();
            for (side, stream) in [(Client, &client), (Server, &server)] {
                let isn = rng.next() as u32;
                watcher.on_syn(side, SeqNumber(isn));
                let mut segs = segments(&mut rng, isn, stream);
                for i in 1..segs.len() {
                    if rng.below(3) == 0 {
                        segs.swap(i - 1, i);
                    }
                }
                for (seq, bytes) in &segs {
                    watcher.on_segment(side, SeqNumber(*seq), bytes, bytes.len() as u32, 0.0, &mut events);
                    if rng.below(5) == 0 {
                        watcher.on_segment(side, SeqNumber(*seq), bytes, bytes.len() as u32, 0.0, &mut events);
                    }
                }
            }
            let summary = watcher.finish(&mut events);
            assert_eq!((summary.http_requests, summary.http_responses), (n as u32, n as u32));
            assert_eq!((summary.gaps, summary.resyncs), ([0, 0], 0));
        }
    }

    #[test]
    fn test_lost_segments_never_invent_messages() {
        let mut rng = Rng(0x0fed_cba9_8765_4321);
        let (mut sent, mut framed) = (0, 0);
        for _ in 0..rounds() / 10 {
            let n = 1 + rng.below(12) as usize;
            let (client, server) = conversation(&mut rng, n);
            let mut watcher = ProtocolWatcher::new();
            let mut events = Vec::new();
            for (side, stream) in [(Client, &client), (Server, &server)] {
                let isn = rng.next() as u32;
                watcher.on_syn(side, SeqNumber(isn));
                for (seq, bytes) in segments(&mut rng, isn, stream) {
                    let captured = if rng.below(6) == 0 { rng.below(bytes.len() as u64) as usize } else { bytes.len() };
                    if rng.below(8) != 0 {
                        watcher.on_segment(side, SeqNumber(seq), &bytes[..captured], bytes.len() as u32, 0.0, &mut events);
                    }
                }
            }
            let summary = watcher.finish(&mut events);
            assert!(summary.http_requests as usize <= n, "{} requests out of {n}", summary.http_requests);
            assert!(summary.http_responses as usize <= n, "{} responses out of {n}", summary.http_responses);
            sent += 2 * n;
            framed += (summary.http_requests + summary.http_responses) as usize;
        }
        assert!(framed * 3 > sent, "framing recovers after losses: {framed} of {sent} messages");
    }

    #[test]
    fn test_head_text_reads_back_short_and_long_text() {
        let short = "/caf\u{e9}?q=1";
        let long = "/a/target/longer/than/the/inline/buffer/of/head/text";
        assert!(long.len() > INLINE_TEXT);
        for text in ["", short, long, &long[..INLINE_TEXT]] {
            let head_text = HeadText::from(text);
            assert_eq!(&*head_text, text);
            assert_eq!(head_text.to_string(), text);
            assert_eq!(format!("{head_text:?}"), format!("{text:?}"));
        }
        assert_ne!(HeadText::from("GET"), HeadText::from("GE"));
    }
}
