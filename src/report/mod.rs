//! The report: plain data (serde), the one source every output format renders.
//!
//! Input: each finished connection's TCP facts (from [`crate::tcp`]) and protocol summary (from
//! [`crate::protocol`]), built into its [`ConnectionRecord`] by [`record`]. Output: the [`Report`]
//! to [`crate::render`] (through the pipeline), records one by one to streamed formats.
//!
//! Connections arrive one by one as they end ([`ConnectionRecord`]); [`ReportBuilder`] folds each into
//! the [`Summary`] at once, so the summary never needs the whole list. Field names are the JSON
//! contract documented in `docs/json.md`: change them only with `SCHEMA_VERSION`.

pub mod addr;
pub mod close_cause;
pub mod record;
pub mod verdict;

use crate::protocol::{H2GoAway, HeadText, HttpExchange, Protocol, TlsSummary};
use crate::sockets::ProcessInfo;
use crate::tcp::state::{StateEvent, TcpState, ALL_STATES};
use crate::tcp::FlowKey;
/// Defined by the flow table, which finds them; part of the report's data (`end`) and applied to
/// its records ([`Amendment::apply`]).
pub use crate::tcp::{Amendment, EndReason};
use crate::wire::Side;
use close_cause::{CloseCause, CloseCauseCounts};
use serde::Serialize;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// Version of the JSON report's shape. Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How much of the three-way handshake the capture shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handshake {
    /// SYN, SYN-ACK and the ACK of the SYN-ACK.
    Complete,
    /// SYN and SYN-ACK, no ACK of the SYN-ACK.
    SynAck,
    /// Only the SYN (unanswered, or refused with RST).
    SynOnly,
    /// The connection's SYN was not captured.
    MidStream,
}

impl Handshake {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Handshake::Complete => "complete",
            Handshake::SynAck => "syn_ack",
            Handshake::SynOnly => "syn_only",
            Handshake::MidStream => "mid_stream",
        }
    }
}

/// A count per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerSide {
    pub client: u32,
    pub server: u32,
}

impl PerSide {
    /// Both sides together.
    pub fn total(&self) -> u32 {
        self.client + self.server
    }
}

/// One HTTP request with the status of its response, as listed per connection.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub method: Option<HeadText>,
    pub target: Option<HeadText>,
    pub version: Option<crate::protocol::HttpVersion>,
    pub status: Option<u16>,
}

impl From<&HttpExchange> for RequestRecord {
    fn from(e: &HttpExchange) -> Self {
        RequestRecord { method: e.method.clone(), target: e.target.clone(), version: e.version, status: e.status }
    }
}

/// One TCP connection, as finished.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionRecord {
    pub id: u64,
    /// Serialised as `ip:port` (`[ip6]:port`).
    #[serde(serialize_with = "addr::serialize")]
    pub client: SocketAddr,
    #[serde(serialize_with = "addr::serialize")]
    pub server: SocketAddr,
    pub server_port: u16,
    /// Seconds since the first packet of the capture.
    pub first_ts: f64,
    pub last_ts: f64,
    pub duration: f64,
    pub handshake: Handshake,
    pub protocol: Protocol,
    /// HTTP/1.x requests; `null` when the traffic is encrypted (TLS) and cannot be counted.
    pub http_requests: Option<u32>,
    pub http_responses: Option<u32>,
    /// Inline for a connection of one request (most, under load): a record then holds nothing on the
    /// heap, which matters when it is made on one thread and dropped on another (`parallel`).
    pub requests: SmallVec<[RequestRecord; 1]>,
    /// Requests the connection carried: HTTP/1 requests, h2c streams, the TLS exchange estimate, or
    /// request/response turns of an unknown protocol. What `reused` is judged on.
    pub exchanges: u32,
    /// True when the connection carried more than one request (`exchanges` > 1).
    pub reused: bool,
    pub fin_first: FinFirst,
    pub simultaneous_close: bool,
    pub rst_by: Option<Side>,
    /// RSTs whose sequence number was outside the window, so they closed nothing.
    pub rst_ignored: u32,
    pub close_requested_by: Option<Side>,
    /// Why the connection ended: the first rule of `docs/json.md` that applies.
    pub close_cause: CloseCause,
    /// Requests answered in full (the response's last byte seen); `null` where requests cannot be
    /// read (TLS, unknown protocols).
    pub answered_requests: Option<u32>,
    pub keepalive_probes: PerSide,
    /// Seconds between successive keep-alive probes, when more than one was seen.
    pub keepalive_interval: Option<f64>,
    pub client_state: TcpState,
    pub server_state: TcpState,
    /// What the TLS sniffer saw; `exchanges_estimate` is an estimate of requests, never HTTP requests.
    pub tls: Option<TlsSummary>,
    pub h2_streams: Option<u32>,
    /// The connection's first HTTP/2 GOAWAY (h2c, or h2 inside decrypted TLS).
    pub h2_goaway: Option<H2GoAway>,
    pub packets: u64,
    /// TCP payload bytes on the wire, both directions.
    pub bytes: u64,
    /// Holes in the byte streams (lost, not captured or cut by snaplen), per side that sent them.
    pub stream_gaps: PerSide,
    pub end: EndReason,
    /// Seconds from the last response to the first FIN, when both were seen.
    pub close_after_response: Option<f64>,
    /// Seconds since the first packet of the capture to the connection's first FIN or acceptable
    /// RST, when there was one: the moment it stopped being used.
    pub first_close_ts: Option<f64>,
    /// The local process that held the client's socket (live capture only; `None` when unknown).
    pub client_process: Option<ProcessInfo>,
    /// The local process that held the server's socket (live capture only; `None` when unknown).
    pub server_process: Option<ProcessInfo>,
    /// The kernel's state of the client's socket when the capture stopped (live capture only;
    /// `None` when the kernel had no such socket or the side is not local).
    pub kernel_client_state: Option<TcpState>,
    /// The kernel's state of the server's socket when the capture stopped, as `kernel_client_state`.
    pub kernel_server_state: Option<TcpState>,
}

/// What an amendment from the flow table changes in a record (the report's side of [`Amendment`]).
impl Amendment {
    /// Applies the amendment to the connection's record.
    pub fn apply(&self, record: &mut ConnectionRecord) {
        if self.client_closed {
            record.client_state.apply(StateEvent::TimeWaitEnded);
        }
        if self.server_closed {
            record.server_state.apply(StateEvent::TimeWaitEnded);
        }
        if let Some(side) = self.rst_by {
            record.rst_by.get_or_insert(side);
        }
        if self.replaced {
            record.end = EndReason::Replaced;
        }
        record.rst_ignored += self.rst_ignored;
    }
}

impl ConnectionRecord {
    /// The key of the connection's 4-tuple, which amendments name it by.
    pub fn key(&self) -> FlowKey {
        FlowKey::of(self.client, self.server)
    }

    /// True when the record may still be amended: closed with a side in TIME_WAIT, whose socket an
    /// RST or a new SYN on the tuple can still end (for `TIME_WAIT_SECONDS` of capture time).
    pub fn in_time_wait(&self) -> bool {
        self.end == EndReason::Closed && (self.client_state == TcpState::TIME_WAIT || self.server_state == TcpState::TIME_WAIT)
    }
}

/// Which side sent the first FIN of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinFirst {
    Client,
    Server,
    None,
}

impl FinFirst {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            FinFirst::Client => "client",
            FinFirst::Server => "server",
            FinFirst::None => "none",
        }
    }
}

impl From<Option<Side>> for FinFirst {
    fn from(side: Option<Side>) -> Self {
        match side {
            Some(Side::Client) => FinFirst::Client,
            Some(Side::Server) => FinFirst::Server,
            None => FinFirst::None,
        }
    }
}

/// FIN-first tally.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FinFirstCounts {
    pub client: u64,
    pub server: u64,
    pub none: u64,
}

/// Sockets of one side per end state. Serialised as an object with every state but LISTEN (which
/// no connection ends in), 0 included, by name in alphabetical order: `{"CLOSED": 3, ...}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts([u64; ALL_STATES.len()]);

impl StateCounts {
    /// Sockets that ended in `state`.
    pub fn get(&self, state: TcpState) -> u64 {
        self.0[state as usize]
    }

    /// Counts one more socket in `state`.
    pub fn add(&mut self, state: TcpState) {
        self.0[state as usize] += 1;
    }

    /// One socket counted in `from` is in `to` after all.
    pub fn moved(&mut self, from: TcpState, to: TcpState) {
        self.0[from as usize] = self.0[from as usize].saturating_sub(1);
        self.0[to as usize] += 1;
    }
}

impl Serialize for StateCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut states: Vec<TcpState> = ALL_STATES.into_iter().filter(|s| *s != TcpState::LISTEN).collect();
        states.sort_by_key(|s| s.name());
        let mut map = serializer.serialize_map(Some(states.len()))?;
        for state in states {
            map.serialize_entry(state.name(), &self.get(state))?;
        }
        map.end()
    }
}

/// Aggregates over every connection: the numbers `--assert` checks.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub connections: u64,
    pub handshakes: u64,
    pub handshakes_completed: u64,
    pub mid_stream: u64,
    /// HTTP/1.x requests; `null` when every connection with traffic was encrypted (TLS) so none could be counted.
    pub http_requests: Option<u64>,
    pub http_responses: Option<u64>,
    /// Connections that carried cleartext HTTP/1.x.
    pub http_connections: u64,
    /// Connections that carried TLS: their HTTP requests cannot be counted.
    pub tls_connections: u64,
    pub reused_connections: u64,
    pub requests_per_connection: f64,
    pub fin_first: FinFirstCounts,
    pub simultaneous_closes: u64,
    pub rst_connections: u64,
    pub rst_by: FinFirstCounts,
    pub keepalive_probes: u64,
    pub keepalive_probes_by: FinFirstCounts,
    pub tls_client_hellos: u64,
    pub tls_full_handshakes: u64,
    pub tls_resumed_handshakes: u64,
    pub tls_exchanges_estimate: u64,
    /// TLS connections decrypted with their logged secrets: their HTTP requests are counted.
    pub tls_decrypted: u64,
    pub h2_streams: u64,
    pub client_states: StateCounts,
    pub server_states: StateCounts,
    /// Connections by close cause, every cause present.
    pub close_causes: CloseCauseCounts,
    pub evicted_connections: u64,
    pub stream_gaps: u64,
    #[serde(skip)]
    requests_counted: u64,
    #[serde(skip)]
    responses_counted: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            connections: 0,
            handshakes: 0,
            handshakes_completed: 0,
            mid_stream: 0,
            http_requests: Some(0),
            http_responses: Some(0),
            http_connections: 0,
            tls_connections: 0,
            reused_connections: 0,
            requests_per_connection: 0.0,
            fin_first: FinFirstCounts::default(),
            simultaneous_closes: 0,
            rst_connections: 0,
            rst_by: FinFirstCounts::default(),
            keepalive_probes: 0,
            keepalive_probes_by: FinFirstCounts::default(),
            tls_client_hellos: 0,
            tls_full_handshakes: 0,
            tls_resumed_handshakes: 0,
            tls_exchanges_estimate: 0,
            tls_decrypted: 0,
            h2_streams: 0,
            client_states: StateCounts::default(),
            server_states: StateCounts::default(),
            close_causes: CloseCauseCounts::default(),
            evicted_connections: 0,
            stream_gaps: 0,
            requests_counted: 0,
            responses_counted: 0,
        }
    }
}

impl Summary {
    /// Folds one finished connection into the totals.
    pub fn add(&mut self, c: &ConnectionRecord) {
        self.connections += 1;
        match c.handshake {
            Handshake::Complete => {
                self.handshakes += 1;
                self.handshakes_completed += 1;
            }
            Handshake::SynAck | Handshake::SynOnly => self.handshakes += 1,
            Handshake::MidStream => self.mid_stream += 1,
        }
        self.requests_counted += u64::from(c.http_requests.unwrap_or(0));
        self.responses_counted += u64::from(c.http_responses.unwrap_or(0));
        match c.protocol {
            Protocol::Http1 | Protocol::H2c => self.http_connections += 1,
            Protocol::Tls => self.tls_connections += 1,
            Protocol::None | Protocol::Unknown => {}
        }
        if c.tls.as_ref().is_some_and(|t| t.decrypted) {
            self.tls_decrypted += 1;
        }
        let readable = self.http_connections + self.tls_decrypted;
        let hidden = self.tls_connections > 0 && readable == 0;
        self.http_requests = (!hidden).then_some(self.requests_counted);
        self.http_responses = (!hidden).then_some(self.responses_counted);
        if c.reused {
            self.reused_connections += 1;
        }
        match c.fin_first {
            FinFirst::Client => self.fin_first.client += 1,
            FinFirst::Server => self.fin_first.server += 1,
            FinFirst::None => self.fin_first.none += 1,
        }
        if c.simultaneous_close {
            self.simultaneous_closes += 1;
        }
        match c.rst_by {
            Some(Side::Client) => self.rst_by.client += 1,
            Some(Side::Server) => self.rst_by.server += 1,
            None => self.rst_by.none += 1,
        }
        if c.rst_by.is_some() {
            self.rst_connections += 1;
        }
        self.keepalive_probes += u64::from(c.keepalive_probes.total());
        self.keepalive_probes_by.client += u64::from(c.keepalive_probes.client);
        self.keepalive_probes_by.server += u64::from(c.keepalive_probes.server);
        if let Some(tls) = &c.tls {
            self.tls_client_hellos += u64::from(tls.client_hellos);
            self.tls_full_handshakes += u64::from(tls.full_handshakes);
            self.tls_resumed_handshakes += u64::from(tls.resumed_handshakes);
            self.tls_exchanges_estimate += u64::from(tls.exchanges_estimate);
        }
        self.h2_streams += u64::from(c.h2_streams.unwrap_or(0));
        self.client_states.add(c.client_state);
        self.server_states.add(c.server_state);
        self.close_causes.add(c.close_cause);
        if c.end == EndReason::Evicted {
            self.evicted_connections += 1;
        }
        self.stream_gaps += u64::from(c.stream_gaps.total());
        self.requests_per_connection = if readable == 0 { 0.0 } else { self.requests_counted as f64 / readable as f64 };
    }
}

impl Summary {
    /// Changes the totals for a connection already added, as `amendment` changes its record: a
    /// TIME_WAIT side becomes CLOSED, an RST's sender is counted.
    pub fn amend(&mut self, amendment: &Amendment) {
        let close = |states: &mut StateCounts| states.moved(TcpState::TIME_WAIT, TcpState::CLOSED);
        if amendment.client_closed {
            close(&mut self.client_states);
        }
        if amendment.server_closed {
            close(&mut self.server_states);
        }
        if let Some(side) = amendment.rst_by {
            self.rst_by.none = self.rst_by.none.saturating_sub(1);
            match side {
                Side::Client => self.rst_by.client += 1,
                Side::Server => self.rst_by.server += 1,
            }
            self.rst_connections += 1;
        }
    }
}

/// Packet counts of the whole capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PacketCounts {
    /// Packets read (after any BPF filter).
    pub total: u64,
    /// Of those, TCP segments decoded whole (a packet rebuilt from IP fragments counts once).
    pub tcp: u64,
    /// TCP segments on the selected port (all TCP without `--port`).
    pub matched: u64,
    /// Packets the capture cut short (snaplen): TCP segments with part of their payload missing
    /// (still analysed), and packets cut before the end of their TCP header (not analysed).
    pub truncated: u64,
    /// Packets whose headers do not parse.
    pub undecodable: u64,
    /// Packets that are not TCP (UDP, ICMP, ARP, ...).
    pub not_tcp: u64,
    /// IP fragments of TCP packets, held to rebuild their packet (not counted in `tcp`).
    pub ip_fragments: u64,
    /// TCP packets rebuilt from those fragments (each counted once in `tcp`).
    pub reassembled: u64,
    /// Fragments that went into no rebuilt packet: overlapping or contradicting ones (the packet is
    /// discarded, as Linux does), duplicates, ones over the reassembly bound, and the fragments of
    /// packets still incomplete 30 s after their first fragment or at the end of the capture.
    pub fragments_dropped: u64,
    /// Segments of a connection already closed (late retransmissions, ACKs after a reset).
    pub after_close: u64,
}

/// What kind of source the packets came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Capture files (`connscope analyze`).
    File,
    /// A network device (`connscope capture`).
    Live,
    /// A saved capture replayed at its timestamps (`connscope capture --replay`).
    Replay,
}

/// Where the packets came from.
#[derive(Clone, Debug, Serialize)]
pub struct SourceInfo {
    /// `file`, `live` or `replay`.
    pub kind: SourceKind,
    /// File path(s) read, or the interface captured.
    pub path: String,
    /// Effective filter, `null` when every TCP packet is analysed.
    pub filter: Option<String>,
    pub link_type: String,
    /// Epoch seconds of the first packet; connection times are relative to it.
    pub start_ts: Option<f64>,
    /// Set when reading stopped early (damaged file); says where and why.
    pub warning: Option<String>,
}

/// Per-server-port totals (the table groups by server port when no `--port` is given).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PortSummary {
    pub port: u16,
    pub connections: u64,
    pub handshakes: u64,
    pub http_requests: u64,
    pub reused_connections: u64,
    pub fin_first: FinFirstCounts,
    pub rst_connections: u64,
}

/// Capture statistics from libpcap (live capture only).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaptureStats {
    pub received: u64,
    pub dropped_by_kernel: u64,
    pub dropped_by_interface: u64,
    pub duration: f64,
    /// Why the capture ended (see `docs/capture.md`).
    pub ended_by: EndedBy,
    pub command: Option<String>,
    pub command_exit_status: Option<i32>,
    pub saved_to: Option<String>,
    /// Packets written whole to `saved_to`: all of `received`, unless saving failed.
    pub saved_packets: Option<u64>,
    /// Why saving stopped early (the disk filled up); the file holds the first `saved_packets`.
    pub save_error: Option<String>,
    /// The kernel's socket states compared with the states the packets imply, when the capture
    /// stopped; `None` when the socket tables could not be read.
    pub kernel_agreement: Option<KernelAgreement>,
}

/// Why a live capture ended, as `capture.ended_by` names it (set by `crate::live::session`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// SIGINT (Ctrl-C): without `--duration`, `--count` or a command, how a capture ends.
    #[default]
    Interrupted,
    /// SIGTERM.
    Terminated,
    /// SIGHUP.
    Hangup,
    /// `--duration` elapsed.
    Duration,
    /// `--count` frames were captured.
    Count,
    /// The command run around the capture exited (and `--linger` passed).
    CommandExited,
    /// The interface went away during the capture.
    InterfaceGone,
    /// Reading from the source failed otherwise.
    CaptureError,
}

impl EndedBy {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            EndedBy::Interrupted => "interrupted",
            EndedBy::Terminated => "terminated",
            EndedBy::Hangup => "hangup",
            EndedBy::Duration => "duration",
            EndedBy::Count => "count",
            EndedBy::CommandExited => "command_exited",
            EndedBy::InterfaceGone => "interface_gone",
            EndedBy::CaptureError => "capture_error",
        }
    }
}

impl std::fmt::Display for EndedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How many local sockets the kernel showed in the state the packets imply, at the end of a live
/// capture. Each local side of a connection is one socket (a loopback connection has two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelAgreement {
    /// Local sockets compared.
    pub compared: u64,
    /// Of those, in the state the packets imply (a CLOSED one by having no kernel socket).
    pub agree: u64,
    /// Of those, in another state: `time_wait_gone` plus `changed`.
    pub disagree: u64,
    /// Inferred TIME_WAIT, but the kernel had no socket: expired, or recycled for a new connection.
    #[serde(skip)]
    pub time_wait_gone: u64,
    /// Any other difference: the state moved after the last captured packet, or packets were missed.
    #[serde(skip)]
    pub changed: u64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub source: SourceInfo,
    pub packets: PacketCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
    pub summary: Summary,
    pub ports: Vec<PortSummary>,
    pub verdict: verdict::Verdict,
    pub connections: Vec<ConnectionRecord>,
    /// Connections not listed in `connections` (the list is capped; the summary counts them all).
    pub connections_omitted: u64,
}

/// Builds the report as connections end: summary and per-port totals at once, and the first
/// `keep` connection records for the per-connection listing.
pub struct ReportBuilder {
    summary: Summary,
    ports: BTreeMap<u16, PortSummary>,
    connections: Vec<ConnectionRecord>,
    keep: usize,
    omitted: u64,
    verdict_inputs: verdict::Tallies,
    /// Where in `connections` each kept record that may still be amended is, by 4-tuple (at most
    /// `keep`).
    amendable: HashMap<FlowKey, usize>,
}

/// At most this many server ports get their own row; the rest are folded into port 0.
const MAX_PORT_ROWS: usize = 1000;

impl ReportBuilder {
    /// A builder that keeps up to `keep` connection records in memory.
    pub fn new(keep: usize) -> Self {
        ReportBuilder {
            summary: Summary::default(),
            ports: BTreeMap::new(),
            connections: Vec::new(),
            keep,
            omitted: 0,
            verdict_inputs: verdict::Tallies::default(),
            amendable: HashMap::new(),
        }
    }

    /// Folds in one finished connection, then shows it and the updated summary to `on_added`.
    pub fn add(&mut self, record: ConnectionRecord, on_added: impl FnOnce(&ConnectionRecord, &Summary)) {
        self.summary.add(&record);
        self.verdict_inputs.add(&record);
        let port_key =
            if self.ports.len() >= MAX_PORT_ROWS && !self.ports.contains_key(&record.server_port) { 0 } else { record.server_port };
        let port = self.ports.entry(port_key).or_insert_with(|| PortSummary { port: port_key, ..Default::default() });
        port.connections += 1;
        if record.handshake != Handshake::MidStream {
            port.handshakes += 1;
        }
        port.http_requests += u64::from(record.http_requests.unwrap_or(0));
        port.reused_connections += u64::from(record.reused);
        match record.fin_first {
            FinFirst::Client => port.fin_first.client += 1,
            FinFirst::Server => port.fin_first.server += 1,
            FinFirst::None => port.fin_first.none += 1,
        }
        port.rst_connections += u64::from(record.rst_by.is_some());
        on_added(&record, &self.summary);
        if !self.amendable.is_empty() {
            // A later connection on the tuple: the one before can no longer be amended.
            self.amendable.remove(&record.key());
        }
        if self.connections.len() < self.keep {
            if record.in_time_wait() {
                self.amendable.insert(record.key(), self.connections.len());
            }
            self.connections.push(record);
        } else {
            self.omitted += 1;
        }
    }

    /// Applies an amendment of a connection added before to the summary, the per-port totals and
    /// its record when it is kept.
    pub fn amend(&mut self, amendment: &Amendment) {
        self.summary.amend(amendment);
        self.verdict_inputs.amend(amendment);
        if amendment.rst_by.is_some() {
            let key = if self.ports.contains_key(&amendment.server_port) { amendment.server_port } else { 0 };
            if let Some(port) = self.ports.get_mut(&key) {
                port.rst_connections += 1;
            }
        }
        if let Some(&at) = self.amendable.get(&amendment.key) {
            let record = &mut self.connections[at];
            amendment.apply(record);
            if !record.in_time_wait() {
                self.amendable.remove(&amendment.key);
            }
        }
    }

    /// The connection records kept so far (the first `keep`), in the order they were added.
    pub fn records_mut(&mut self) -> &mut [ConnectionRecord] {
        &mut self.connections
    }

    /// The summary so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Finishes the report.
    pub fn finish(self, source: SourceInfo, packets: PacketCounts, capture: Option<CaptureStats>) -> Report {
        let verdict = verdict::judge(&self.summary, &self.verdict_inputs, capture.as_ref());
        Report {
            schema_version: SCHEMA_VERSION,
            source,
            packets,
            capture,
            summary: self.summary,
            ports: self.ports.into_values().collect(),
            verdict,
            connections: by_id(self.connections),
            connections_omitted: self.omitted,
        }
    }
}

/// The records in the order of their ids, each moved once: a sort moved each record (472 bytes)
/// many times, 400 M instructions for 86,580 records, a sixth of writing them as JSON.
fn by_id(records: Vec<ConnectionRecord>) -> Vec<ConnectionRecord> {
    let mut order: Vec<(u64, usize)> = records.iter().enumerate().map(|(at, c)| (c.id, at)).collect();
    if order.is_sorted() {
        return records;
    }
    order.sort_unstable();
    let mut slots: Vec<Option<ConnectionRecord>> = records.into_iter().map(Some).collect();
    order.into_iter().map(|(_, at)| slots[at].take().expect("each record is taken once")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A finished HTTP/1 connection between two loopback ports, as the flow table would hand it on:
    /// `requests` sent, `answered` in full, ended by `cause`, alive from `first_ts` to `last_ts`.
    pub(crate) fn record(cause: CloseCause, requests: u32, answered: u32, first_ts: f64, last_ts: f64) -> ConnectionRecord {
        let (client_state, server_state) = match cause.side() {
            _ if cause == CloseCause::Open => (TcpState::ESTABLISHED, TcpState::ESTABLISHED),
            Some(Side::Client) => (TcpState::TIME_WAIT, TcpState::CLOSED),
            _ => (TcpState::CLOSED, TcpState::TIME_WAIT),
        };
        ConnectionRecord {
            id: 1,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            server_port: 8080,
            first_ts,
            last_ts,
            duration: last_ts - first_ts,
            handshake: Handshake::Complete,
            protocol: Protocol::Http1,
            http_requests: Some(requests),
            http_responses: Some(answered),
            requests: SmallVec::new(),
            exchanges: requests,
            reused: requests > 1,
            fin_first: FinFirst::from(cause.side()),
            simultaneous_close: false,
            rst_by: None,
            rst_ignored: 0,
            close_requested_by: None,
            close_cause: cause,
            answered_requests: Some(answered),
            keepalive_probes: PerSide::default(),
            keepalive_interval: None,
            client_state,
            server_state,
            tls: None,
            h2_streams: None,
            h2_goaway: None,
            packets: 10,
            bytes: 1000,
            stream_gaps: PerSide::default(),
            end: EndReason::Closed,
            close_after_response: Some(0.001),
            first_close_ts: (cause != CloseCause::Open).then_some(last_ts),
            client_process: None,
            server_process: None,
            kernel_client_state: None,
            kernel_server_state: None,
        }
    }

    #[test]
    fn test_ended_by_serialises_to_the_names_docs_capture_md_lists() {
        use EndedBy::*;
        let all = [Interrupted, Terminated, Hangup, Duration, Count, CommandExited, InterfaceGone, CaptureError];
        let json: Vec<String> = all.iter().map(|e| serde_json::to_value(e).unwrap().as_str().unwrap().to_string()).collect();
        let expected = ["interrupted", "terminated", "hangup", "duration", "count", "command_exited", "interface_gone", "capture_error"];
        assert_eq!(json, expected);
        assert_eq!(all.map(|e| e.to_string()), expected);
    }

    #[test]
    fn test_source_kind_serialises_as_file_live_and_replay() {
        let json = [SourceKind::File, SourceKind::Live, SourceKind::Replay].map(|k| serde_json::to_value(k).unwrap());
        assert_eq!(json, ["file", "live", "replay"]);
    }
}
