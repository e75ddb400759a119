//! Protocol watchers: per TCP connection, reassemble each direction's byte stream, recognise the
//! application protocol from its first bytes and hand the streams to its analyzer
//! (HTTP/1.x framer, TLS sniffer or h2c frame counter).

pub mod h2;
pub mod http1;
pub mod stream;
pub mod tls;

use crate::seq::SeqNumber;
use crate::side::Side;
use h2::H2Counter;
use http1::{Http1Framer, Switch};
use serde::Serialize;
use stream::{Reassembler, StreamConsumer};
use tls::TlsSniffer;

/// A message start found in a connection's byte streams.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolEvent {
    HttpRequest { method: String, target: String, version: HttpVersion },
    HttpResponse { status: u16 },
    TlsClientHello { sni: Option<String> },
    H2Preface,
}

/// HTTP/1 protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpVersion {
    #[serde(rename = "HTTP/1.0")]
    Http10,
    #[serde(rename = "HTTP/1.1")]
    Http11,
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
    pub method: Option<String>,
    pub target: Option<String>,
    pub version: Option<HttpVersion>,
    pub status: Option<u16>,
    pub request_ts: Option<f64>,
    pub response_ts: Option<f64>,
}

/// What the TLS sniffer saw.
#[derive(Debug, Clone, Serialize)]
pub struct TlsSummary {
    pub client_hellos: u32,
    pub full_handshakes: u32,
    pub resumed_handshakes: u32,
    pub sni: Option<String>,
    pub version: Option<String>,
    /// Client application-data bursts answered by a server burst.
    pub exchanges_estimate: u32,
}

/// What the h2c frame counter saw.
#[derive(Debug, Clone, Serialize)]
pub struct H2Summary {
    /// Streams opened by the client (distinct odd stream ids with a HEADERS frame).
    pub streams: u32,
    pub upgraded_from_http1: bool,
}

/// Everything the watcher learnt about one connection.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolSummary {
    pub protocol: Protocol,
    /// HTTP/1 requests framed (never capped).
    pub http_requests: u32,
    /// Final HTTP/1 responses framed (never capped).
    pub http_responses: u32,
    /// Requests paired with responses in order; at most [`http1::MAX_EXCHANGES`].
    pub exchanges: Vec<HttpExchange>,
    /// First side that sent `Connection: close` (or an HTTP/1.0 response without keep-alive: the server).
    pub close_requested_by: Option<Side>,
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
}

/// Whether some bytes can begin a given kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
    NeedMore,
}

/// `Yes` when `bytes` starts with `expected`, `NeedMore` when it is a shorter prefix of it.
pub fn prefix_verdict(bytes: &[u8], expected: &[u8]) -> Verdict {
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

    /// The side's SYN was seen with this initial sequence number: its byte stream starts at isn+1.
    pub fn on_syn(&mut self, side: Side, isn: SeqNumber) {
        self.streams[side.index()].start_at(isn.add(1));
    }

    /// A segment from `side` with payload. `seq` = sequence number of the first payload byte,
    /// `payload` = the captured bytes (may be shorter than `wire_len` when the snaplen cut the packet),
    /// `wire_len` = TCP payload length on the wire, `ts` = seconds since epoch. New messages found are pushed onto `events`.
    /// If no SYN was seen (mid-stream), the first segment seen on a side starts its stream.
    pub fn on_segment(
        &mut self,
        side: Side,
        seq: SeqNumber,
        payload: &[u8],
        wire_len: u32,
        ts: f64,
        events: &mut Vec<ProtocolEvent>,
    ) {
        self.last_ts = ts;
        let mut delivery = Delivery { dispatch: &mut self.dispatch, side, ts, events };
        self.streams[side.index()].segment(seq, payload, wire_len, &mut delivery);
    }

    /// `side` sent FIN at sequence number `seq` (its stream ends there): flush held data and close-delimited bodies.
    pub fn on_fin(&mut self, side: Side, seq: SeqNumber, events: &mut Vec<ProtocolEvent>) {
        self.end_stream(side, Some(seq), events);
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
    Http1 { framer: Box<Http1Framer>, upgraded: Option<Box<H2Counter>> },
    Tls(Box<TlsSniffer>),
    H2c(Box<H2Counter>),
}

/// Recognition state of one side before the protocol is known.
#[derive(Debug, Default)]
struct Sniff {
    /// First bytes of the side when they were too few to decide.
    prefix: [u8; h2::CLIENT_PREFACE.len()],
    prefix_len: usize,
    /// The side's first bytes matched no protocol.
    unrecognised: bool,
}

/// A protocol recognised from a side's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recognised {
    Http1,
    Tls,
    H2c,
}

/// Recognition of `side`'s first bytes; `Err(true)` when more bytes could decide.
fn recognise(side: Side, bytes: &[u8]) -> Result<Recognised, bool> {
    let candidates = match side {
        Side::Client => [
            (prefix_verdict(bytes, h2::CLIENT_PREFACE), Recognised::H2c),
            (tls::looks_like_handshake_record(bytes), Recognised::Tls),
            (http1::looks_like_method(bytes), Recognised::Http1),
        ],
        Side::Server => [
            (Verdict::No, Recognised::H2c),
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

/// Everything downstream of the reassemblers.
#[derive(Debug, Default)]
struct Dispatch {
    sniffs: [Sniff; 2],
    analyzer: Analyzer,
    saw_payload: bool,
}

impl Dispatch {
    fn data(&mut self, side: Side, bytes: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) {
        if bytes.is_empty() {
            return;
        }
        self.saw_payload = true;
        if matches!(self.analyzer, Analyzer::Detecting) {
            self.detect(side, bytes, ts, events);
        } else {
            self.analyze(side, bytes, ts, events);
        }
    }

    /// Recognises the protocol from `side`'s first bytes, then feeds them to its analyzer.
    /// A side whose first bytes matched nothing (mid-stream capture) is retried on each later chunk.
    fn detect(&mut self, side: Side, bytes: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) {
        let i = side.index();
        if self.sniffs[i].prefix_len == 0 {
            // Whole chunks are tried on their own first: the common case copies nothing.
            match recognise(side, bytes) {
                Ok(protocol) => {
                    self.start(protocol);
                    self.analyze(side, bytes, ts, events);
                    return;
                }
                Err(true) if !self.sniffs[i].unrecognised => {}
                Err(_) => {
                    self.sniffs[i].unrecognised = true;
                    return;
                }
            }
        }
        let sniff = &mut self.sniffs[i];
        let held = sniff.prefix_len;
        let take = (sniff.prefix.len() - held).min(bytes.len());
        sniff.prefix[held..held + take].copy_from_slice(&bytes[..take]);
        sniff.prefix_len += take;
        let (prefix, len) = (sniff.prefix, sniff.prefix_len);
        match recognise(side, &prefix[..len]) {
            Ok(protocol) => {
                self.sniffs[i].prefix_len = 0;
                self.start(protocol);
                self.analyze(side, &prefix[..len], ts, events);
                self.analyze(side, &bytes[take..], ts, events);
            }
            Err(true) if len < prefix.len() => {}
            Err(_) => self.sniffs[i] = Sniff { unrecognised: true, ..Sniff::default() },
        }
    }

    fn start(&mut self, protocol: Recognised) {
        self.analyzer = match protocol {
            Recognised::Http1 => Analyzer::Http1 { framer: Box::default(), upgraded: None },
            Recognised::Tls => Analyzer::Tls(Box::default()),
            Recognised::H2c => Analyzer::H2c(Box::new(H2Counter::prior_knowledge())),
        };
    }

    fn analyze(&mut self, side: Side, bytes: &[u8], ts: f64, events: &mut Vec<ProtocolEvent>) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.analyzer {
            Analyzer::Detecting => {}
            Analyzer::Http1 { upgraded: Some(h2), .. } => h2.data(side, bytes, events),
            Analyzer::Http1 { framer, upgraded } => {
                framer.data(side, bytes, ts, events);
                if framer.switch == Some(Switch::H2c) {
                    *upgraded = Some(Box::new(H2Counter::upgraded()));
                }
            }
            Analyzer::Tls(sniffer) => sniffer.data(side, bytes, events),
            Analyzer::H2c(counter) => counter.data(side, bytes, events),
        }
    }

    fn gap(&mut self, side: Side, len: u64) {
        match &mut self.analyzer {
            Analyzer::Detecting => self.sniffs[side.index()] = Sniff::default(),
            Analyzer::Http1 { upgraded: Some(h2), .. } => h2.gap(side, len),
            Analyzer::Http1 { framer, .. } => framer.gap(side, len),
            Analyzer::Tls(sniffer) => sniffer.gap(side, len),
            Analyzer::H2c(counter) => counter.gap(side, len),
        }
    }

    fn end_of_stream(&mut self, side: Side) {
        if let Analyzer::Http1 { framer, upgraded: None } = &mut self.analyzer {
            framer.end_of_stream(side);
        }
    }

    fn summary(&mut self, gaps: [u32; 2], gap_bytes: [u64; 2]) -> ProtocolSummary {
        let mut summary = ProtocolSummary {
            protocol: if self.saw_payload { Protocol::Unknown } else { Protocol::None },
            http_requests: 0,
            http_responses: 0,
            exchanges: Vec::new(),
            close_requested_by: None,
            http10: false,
            tls: None,
            h2: None,
            gaps,
            gap_bytes,
            resyncs: 0,
        };
        match &mut self.analyzer {
            Analyzer::Detecting => {}
            Analyzer::Http1 { framer, upgraded } => {
                summary.protocol = if upgraded.is_some() { Protocol::H2c } else { Protocol::Http1 };
                summary.http_requests = framer.requests;
                summary.http_responses = framer.responses;
                summary.exchanges = std::mem::take(&mut framer.exchanges);
                summary.close_requested_by = framer.close_requested_by;
                summary.http10 = framer.http10;
                summary.resyncs = framer.resyncs;
                summary.h2 = upgraded.as_ref().map(|h2| h2.summary());
            }
            Analyzer::Tls(sniffer) => {
                summary.protocol = Protocol::Tls;
                summary.tls = Some(sniffer.summary());
            }
            Analyzer::H2c(counter) => {
                summary.protocol = Protocol::H2c;
                summary.h2 = Some(counter.summary());
            }
        }
        summary
    }
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
        self.dispatch.gap(self.side, len);
    }
}
