//! Placeholder with the protocol layer's interface, replaced by the real watcher from branch `protocol`.
use crate::seq::SeqNumber;
use crate::side::Side;
use serde::Serialize;

pub struct ProtocolWatcher { bytes: [u64; 2] }
impl Default for ProtocolWatcher { fn default() -> Self { Self::new() } }
impl ProtocolWatcher {
    pub fn new() -> Self { ProtocolWatcher { bytes: [0; 2] } }
    pub fn on_syn(&mut self, _side: Side, _isn: SeqNumber) {}
    pub fn on_segment(&mut self, side: Side, _seq: SeqNumber, payload: &[u8], _wire_len: u32, _ts: f64, _events: &mut Vec<ProtocolEvent>) { self.bytes[side.index()] += payload.len() as u64; }
    pub fn on_fin(&mut self, _side: Side, _seq: SeqNumber, _events: &mut Vec<ProtocolEvent>) {}
    pub fn finish(&mut self, _events: &mut Vec<ProtocolEvent>) -> ProtocolSummary {
        ProtocolSummary { protocol: if self.bytes == [0, 0] { Protocol::None } else { Protocol::Unknown }, http_requests: 0, http_responses: 0, exchanges: vec![], close_requested_by: None, http10: false, tls: None, h2: None, gaps: [0; 2], gap_bytes: [0; 2], resyncs: 0 }
    }
}
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolEvent { HttpRequest { method: String, target: String, version: HttpVersion }, HttpResponse { status: u16 }, TlsClientHello { sni: Option<String> }, H2Preface }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)] pub enum HttpVersion { #[serde(rename="HTTP/1.0")] Http10, #[serde(rename="HTTP/1.1")] Http11 }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)] #[serde(rename_all="snake_case")]
pub enum Protocol { None, Http1, Tls, H2c, Unknown }
#[derive(Debug, Clone, Serialize)]
pub struct HttpExchange { pub method: Option<String>, pub target: Option<String>, pub version: Option<HttpVersion>, pub status: Option<u16>, pub request_ts: Option<f64>, pub response_ts: Option<f64> }
#[derive(Debug, Clone, Serialize)]
pub struct TlsSummary { pub client_hellos: u32, pub full_handshakes: u32, pub resumed_handshakes: u32, pub sni: Option<String>, pub version: Option<String>, pub exchanges_estimate: u32 }
#[derive(Debug, Clone, Serialize)]
pub struct H2Summary { pub streams: u32, pub upgraded_from_http1: bool }
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolSummary { pub protocol: Protocol, pub http_requests: u32, pub http_responses: u32, pub exchanges: Vec<HttpExchange>, pub close_requested_by: Option<Side>, pub http10: bool, pub tls: Option<TlsSummary>, pub h2: Option<H2Summary>, pub gaps: [u32; 2], pub gap_bytes: [u64; 2], pub resyncs: u32 }
