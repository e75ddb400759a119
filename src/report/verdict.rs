//! The verdict: were connections reused, and the findings that explain why or why not.
//!
//! Input: every finished [`ConnectionRecord`] folded into [`Tallies`] as it ends (so the verdict never
//! needs the whole list), the [`Summary`], and the live capture's statistics. Output: the
//! [`Verdict`] of the report. Each finding is one rule (a function below) with a stable
//! [`FindingCode`], the side whose code must change, the connections and close causes that back it,
//! and a message saying what it means and what to do. The close causes ([`CloseCause`]) decide
//! who is blamed: a close the server asked for never produces client-side reuse advice, and the
//! reverse.

use super::close_cause::CloseCause;
use super::{CaptureStats, ConnectionRecord, KernelAgreement, Summary};
use crate::protocol::Protocol;
use crate::tcp::state::TcpState;
use crate::wire::Side;
use serde::Serialize;
use std::collections::VecDeque;

/// Overall answer to "were my connections reused?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reuse {
    /// Every connection that carried requests carried more than one.
    Reused,
    /// Every connection carried at most one request.
    NotReused,
    /// Some connections were reused, some not.
    Mixed,
    /// No request was seen at all.
    NoTraffic,
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something to fix.
    Warning,
    /// Healthy or neutral.
    Info,
}

/// The stable identifier of a finding (`verdict.findings[].code`; docs/json.md lists them all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    CaptureDroppedPackets,
    KernelStateDisagrees,
    ServerKeepaliveOff,
    ServerRequestLimit,
    ServerClosesWhenAsked,
    ServerIdleTimeout,
    ServerClosesAfterResponse,
    ClientDisablesKeepalive,
    ClientClosesAfterResponse,
    ClientPoolOverflow,
    ConnectionsLeaked,
    UnansweredRequests,
    ClientCloseWait,
    ServerCloseWait,
    ClientTimeWaitPileup,
    ServerTimeWaitPileup,
    TlsHandshakePerRequest,
    KeepaliveProbes,
    ConnectionsRefused,
    ConnectionsReset,
    MidStreamConnections,
    StreamGaps,
    ConnectionsEvicted,
}

impl FindingCode {
    /// Every code, in the order findings are listed.
    pub const ALL: [FindingCode; 23] = [
        FindingCode::CaptureDroppedPackets,
        FindingCode::KernelStateDisagrees,
        FindingCode::ServerKeepaliveOff,
        FindingCode::ServerRequestLimit,
        FindingCode::ServerClosesWhenAsked,
        FindingCode::ServerIdleTimeout,
        FindingCode::ServerClosesAfterResponse,
        FindingCode::ClientDisablesKeepalive,
        FindingCode::ClientClosesAfterResponse,
        FindingCode::ClientPoolOverflow,
        FindingCode::ConnectionsLeaked,
        FindingCode::UnansweredRequests,
        FindingCode::ClientCloseWait,
        FindingCode::ServerCloseWait,
        FindingCode::ClientTimeWaitPileup,
        FindingCode::ServerTimeWaitPileup,
        FindingCode::TlsHandshakePerRequest,
        FindingCode::KeepaliveProbes,
        FindingCode::ConnectionsRefused,
        FindingCode::ConnectionsReset,
        FindingCode::MidStreamConnections,
        FindingCode::StreamGaps,
        FindingCode::ConnectionsEvicted,
    ];

    /// The JSON name (`client_closes_after_response`).
    pub fn name(self) -> &'static str {
        match self {
            FindingCode::CaptureDroppedPackets => "capture_dropped_packets",
            FindingCode::KernelStateDisagrees => "kernel_state_disagrees",
            FindingCode::ServerKeepaliveOff => "server_keepalive_off",
            FindingCode::ServerRequestLimit => "server_request_limit",
            FindingCode::ServerClosesWhenAsked => "server_closes_when_asked",
            FindingCode::ServerIdleTimeout => "server_idle_timeout",
            FindingCode::ServerClosesAfterResponse => "server_closes_after_response",
            FindingCode::ClientDisablesKeepalive => "client_disables_keepalive",
            FindingCode::ClientClosesAfterResponse => "client_closes_after_response",
            FindingCode::ClientPoolOverflow => "client_pool_overflow",
            FindingCode::ConnectionsLeaked => "connections_leaked",
            FindingCode::UnansweredRequests => "unanswered_requests",
            FindingCode::ClientCloseWait => "client_close_wait",
            FindingCode::ServerCloseWait => "server_close_wait",
            FindingCode::ClientTimeWaitPileup => "client_time_wait_pileup",
            FindingCode::ServerTimeWaitPileup => "server_time_wait_pileup",
            FindingCode::TlsHandshakePerRequest => "tls_handshake_per_request",
            FindingCode::KeepaliveProbes => "keepalive_probes",
            FindingCode::ConnectionsRefused => "connections_refused",
            FindingCode::ConnectionsReset => "connections_reset",
            FindingCode::MidStreamConnections => "mid_stream_connections",
            FindingCode::StreamGaps => "stream_gaps",
            FindingCode::ConnectionsEvicted => "connections_evicted",
        }
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding: a situation from the capture, backed by a count.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    /// The side whose code or configuration the advice is for; `None` when it concerns both.
    pub side: Option<Side>,
    /// The count that backs the finding (connections, sockets, probes or packets, as the message says).
    pub count: u64,
    /// Connections that back the finding (0 for findings about packets).
    pub connections: u64,
    /// The close causes of those connections.
    pub close_causes: Vec<CloseCause>,
    pub message: String,
}

/// The verdict in the report.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub reuse: Reuse,
    /// Connections that carried at least one request (HTTP, or TLS/other exchanges).
    pub connections_with_requests: u64,
    pub requests: u64,
    pub requests_per_connection: f64,
    /// One sentence answering the question.
    pub headline: String,
    pub findings: Vec<Finding>,
}

/// Connections of one close cause, split by what they carried.
#[derive(Clone, Copy, Debug, Default)]
struct CauseTally {
    /// Every connection of the cause.
    all: u64,
    /// Those that carried exactly one request.
    single: u64,
    /// Those that carried more than one.
    reused: u64,
    /// Single-request ones whose response had begun before the first FIN or RST.
    single_after_response: u64,
    /// Of those, the ones that overlapped in time with a connection that ended before them.
    single_after_response_concurrent: u64,
    /// Fewest and most requests over the reused ones.
    reused_min: u32,
    reused_max: u32,
}

/// Per-connection facts the findings need, gathered as connections end (records arrive in the
/// order they end, the same on any number of threads).
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    with_requests: u64,
    requests: u64,
    reused: u64,
    single: u64,
    causes: [CauseTally; 8],
    /// Open, idle single-request connections with both sides ESTABLISHED.
    single_left_established: u64,
    /// When connections that carried requests opened (at most [`MAX_TIMES`]).
    opened_at: Vec<f64>,
    /// From the response to the client's FIN, of single-request connections the client closed
    /// (at most [`MAX_TIMES`]): a new connection opened inside one means it sat idle, unused.
    idle_windows: Vec<(f64, f64)>,
    /// Requests never answered in full, and the connections (and causes) that carried them.
    unanswered: u64,
    unanswered_connections: u64,
    unanswered_causes: Vec<CloseCause>,
    /// Seconds from the last response to the server's FIN on `server_idle` connections that sat
    /// idle first.
    server_idle_waits: Vec<f64>,
    /// `server_idle` connections the server closed right after a response (within
    /// [`RIGHT_AFTER_RESPONSE`]): not an idle timeout.
    server_closed_after_response: u64,
    tls_connections: u64,
    tls_single: u64,
    tls_hellos: u64,
    probe_intervals: Vec<f64>,
    probe_connections: u64,
    /// Connections with keep-alive probes that also had an unanswered request.
    probes_on_unanswered: u64,
    rst_client: u64,
    rst_server: u64,
    /// RSTs that killed a TIME_WAIT after both FINs (amendments).
    rst_after_close: u64,
    /// When the latest connections folded in were in use (first packet, until its last response,
    /// else its first FIN or RST, else its last packet; seconds from the capture's start): at most
    /// [`RECENT`], to tell connections that overlapped from ones opened one after the other.
    recent: VecDeque<(f64, f64)>,
}

/// Connections compared for overlap: records come in the order connections end, so the ones a
/// connection overlapped ended near it.
const RECENT: usize = 64;
/// At most this many idle waits are kept for the `server_idle_timeout` median.
const MAX_WAITS: usize = 1024;
/// At most this many opening times and idle windows are kept for `connections_leaked`.
const MAX_TIMES: usize = 1 << 16;
/// An idle window shorter than this (seconds) is a close right after the response, not a leak.
const LEAK_MIN_IDLE: f64 = 0.01;
/// A FIN this soon (seconds) after the last response closes "right after the response": no idle
/// timeout is that short in practice (nginx and Go count in seconds).
const RIGHT_AFTER_RESPONSE: f64 = 0.5;

impl Tallies {
    /// Folds in one finished connection.
    pub fn add(&mut self, c: &ConnectionRecord) {
        let requests = u64::from(c.exchanges);
        // In use until its last response (a client may close it only later, as Go's Transport does
        // after dialling the next connection), else until its first FIN or RST, else its last packet.
        let last_response = c.first_close_ts.zip(c.close_after_response).map(|(close, wait)| close - wait);
        let used_until = last_response.or(c.first_close_ts).unwrap_or(c.last_ts);
        let concurrent = self.recent.iter().any(|&(first, until)| c.first_ts < until && first < used_until);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((c.first_ts, used_until));
        // The reuse findings speak of HTTP (in clear or inside TLS) and of connections that carried
        // nothing; another protocol's connections (FTP, SMTP, Redis) count in the verdict's totals only.
        let judged = c.protocol != Protocol::Unknown;
        let mut not_judged = CauseTally::default();
        let cause = if judged { &mut self.causes[cause_index(c.close_cause)] } else { &mut not_judged };
        cause.all += 1;
        if judged && requests > 0 && self.opened_at.len() < MAX_TIMES {
            self.opened_at.push(c.first_ts);
        }
        if judged && requests == 1 && c.close_cause == CloseCause::ClientIdle && self.idle_windows.len() < MAX_TIMES {
            if let (Some(close), Some(wait)) = (c.first_close_ts, c.close_after_response) {
                if wait >= LEAK_MIN_IDLE {
                    self.idle_windows.push((close - wait, close));
                }
            }
        }
        if requests > 0 {
            self.with_requests += 1;
            self.requests += requests;
            if requests > 1 {
                self.reused += 1;
                cause.reused += 1;
                let n = c.exchanges;
                cause.reused_min = if cause.reused == 1 { n } else { cause.reused_min.min(n) };
                cause.reused_max = cause.reused_max.max(n);
            } else {
                self.single += 1;
                cause.single += 1;
                if c.close_after_response.is_some() {
                    cause.single_after_response += 1;
                    cause.single_after_response_concurrent += u64::from(concurrent);
                }
                if judged
                    && c.close_cause == CloseCause::Open
                    && c.client_state == TcpState::ESTABLISHED
                    && c.server_state == TcpState::ESTABLISHED
                {
                    self.single_left_established += 1;
                }
            }
        }
        let unanswered = match (c.http_requests, c.answered_requests) {
            (Some(sent), Some(answered)) => u64::from(sent.saturating_sub(answered)),
            _ => 0,
        };
        if unanswered > 0 {
            self.unanswered += unanswered;
            self.unanswered_connections += 1;
            if !self.unanswered_causes.contains(&c.close_cause) {
                self.unanswered_causes.push(c.close_cause);
                self.unanswered_causes.sort();
            }
        }
        if judged && c.close_cause == CloseCause::ServerIdle {
            match c.close_after_response {
                Some(wait) if wait < RIGHT_AFTER_RESPONSE => self.server_closed_after_response += 1,
                Some(wait) if self.server_idle_waits.len() < MAX_WAITS => self.server_idle_waits.push(wait),
                _ => {}
            }
        }
        if let Some(tls) = &c.tls {
            self.tls_connections += 1;
            self.tls_hellos += u64::from(tls.client_hellos);
            if tls.exchanges_estimate <= 1 {
                self.tls_single += 1;
            }
        }
        if c.keepalive_probes.total() > 0 {
            self.probe_connections += 1;
            self.probes_on_unanswered += u64::from(unanswered > 0);
            if let Some(i) = c.keepalive_interval {
                self.probe_intervals.push(i);
            }
        }
        match c.rst_by {
            Some(Side::Client) => self.rst_client += 1,
            Some(Side::Server) => self.rst_server += 1,
            None => {}
        }
    }

    /// Folds in an amendment: an RST that killed a TIME_WAIT counts with the connection's RSTs (the
    /// close cause stays: the connection had ended with its FINs).
    pub fn amend(&mut self, amendment: &super::Amendment) {
        match amendment.rst_by {
            Some(Side::Client) => self.rst_client += 1,
            Some(Side::Server) => self.rst_server += 1,
            None => return,
        }
        self.rst_after_close += 1;
    }

    /// Single-request connections the client closed only after a new connection had opened while
    /// they sat idle: kept, but never used again.
    fn closed_after_idling(&self) -> u64 {
        let mut opened = self.opened_at.clone();
        opened.sort_by(f64::total_cmp);
        let opened_inside = |&(from, to): &(f64, f64)| {
            let first_after = opened.partition_point(|&ts| ts <= from);
            opened.get(first_after).is_some_and(|&ts| ts < to)
        };
        self.idle_windows.iter().filter(|w| opened_inside(w)).count() as u64
    }

    fn cause(&self, cause: CloseCause) -> CauseTally {
        self.causes[cause_index(cause)]
    }
}

fn cause_index(cause: CloseCause) -> usize {
    CloseCause::ALL.iter().position(|c| *c == cause).unwrap_or(0)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn conns(n: u64) -> String {
    plural(n, "connection", "connections")
}

/// A finding about connections of the given causes.
fn finding(code: FindingCode, severity: Severity, side: Option<Side>, connections: u64, causes: &[CloseCause], message: String) -> Finding {
    Finding { code, severity, side, count: connections, connections, close_causes: causes.to_vec(), message }
}

/// `server_asked` on connections that carried one request each: keep-alive is off on the server.
fn server_keepalive_off(t: &Tallies) -> Option<Finding> {
    let asked = t.cause(CloseCause::ServerAsked);
    (asked.single > 0 && asked.single >= asked.reused).then(|| {
        finding(
            FindingCode::ServerKeepaliveOff,
            Severity::Warning,
            Some(Side::Server),
            asked.single,
            &[CloseCause::ServerAsked],
            format!(
                "The server asked to close after every response on {} of one request each (`Connection: close`, or an HTTP/1.0 \
                 response without keep-alive), so each request pays a new connection. Enable keep-alive on the server: \
                 python's http.server speaks HTTP/1.0 (set protocol_version = \"HTTP/1.1\"); in Go, remove SetKeepAlivesEnabled(false).",
                conns(asked.single)
            ),
        )
    })
}

/// `server_asked` after N > 1 requests, about the same N each time: a per-connection request limit;
/// otherwise the server asked for reasons of its own.
fn server_request_limit(t: &Tallies) -> Option<Finding> {
    let asked = t.cause(CloseCause::ServerAsked);
    if asked.reused == 0 {
        return None;
    }
    let (min, max) = (asked.reused_min, asked.reused_max);
    // A limit shows as the same count on several connections.
    let steady = asked.reused >= 2 && max - min <= (max / 10).max(1);
    Some(if steady {
        let limit = if min == max { format!("{max}") } else { format!("{min}-{max}") };
        finding(
            FindingCode::ServerRequestLimit,
            Severity::Warning,
            Some(Side::Server),
            asked.reused,
            &[CloseCause::ServerAsked],
            format!(
                "The server closed {} after {limit} requests each, announcing it with `Connection: close`: a limit of requests \
                 per connection. Raise it on the server (nginx keepalive_requests, default 1000; other servers' max-requests setting).",
                conns(asked.reused)
            ),
        )
    } else {
        finding(
            FindingCode::ServerClosesWhenAsked,
            Severity::Info,
            Some(Side::Server),
            asked.reused,
            &[CloseCause::ServerAsked],
            format!(
                "The server ended {} after {} requests, announcing it with `Connection: close` (a shutdown, an error \
                 response, or a policy of the server's).",
                conns(asked.reused),
                if min == max { format!("{max}") } else { format!("{min} to {max}") }
            ),
        )
    })
}

/// `server_idle` right after a response, unannounced: the server closes without saying so.
fn server_closes_after_response(t: &Tallies) -> Option<Finding> {
    let n = t.server_closed_after_response;
    (n > 0).then(|| {
        finding(
            FindingCode::ServerClosesAfterResponse,
            Severity::Warning,
            Some(Side::Server),
            n,
            &[CloseCause::ServerIdle],
            format!(
                "The server closed {} right after a response without announcing it (no `Connection: close`), so the client \
                 could not know the connection would not be reused, and a request sent meanwhile fails. Fix the server: keep \
                 connections alive, or say `Connection: close` in the response when it means to close.",
                conns(n)
            ),
        )
    })
}

/// `server_idle` after the connection sat idle, unannounced: the server's idle timeout.
fn server_idle_timeout(t: &Tallies) -> Option<Finding> {
    let idle = t.cause(CloseCause::ServerIdle).all - t.server_closed_after_response;
    if idle == 0 {
        return None;
    }
    let wait = median(&t.server_idle_waits).map(|m| format!(" after about {m:.1} s idle")).unwrap_or_default();
    Some(finding(
        FindingCode::ServerIdleTimeout,
        if idle >= 2 || t.with_requests > idle { Severity::Warning } else { Severity::Info },
        Some(Side::Server),
        idle,
        &[CloseCause::ServerIdle],
        format!(
            "The server closed {}{wait}, with every request answered and no close announced: its idle timeout (nginx \
             keepalive_timeout, Go Server.IdleTimeout). A client that sends its next request later than that needs a new \
             connection, and may race the server's FIN. Make the client's idle timeout shorter than the server's (Go \
             Transport.IdleConnTimeout), or raise the server's if requests come less often.",
            conns(idle)
        ),
    ))
}

/// `client_asked`: the client's own requests asked to close.
fn client_disables_keepalive(t: &Tallies) -> Option<Finding> {
    let asked = t.cause(CloseCause::ClientAsked);
    (asked.single > 0).then(|| {
        finding(
            FindingCode::ClientDisablesKeepalive,
            Severity::Warning,
            Some(Side::Client),
            asked.all,
            &[CloseCause::ClientAsked],
            format!(
                "The client asked to close {} in its own requests (`Connection: close`, or HTTP/1.0 without keep-alive), so they \
                 cannot be reused. Fix the client: in Go, remove Transport.DisableKeepAlives or Request.Close; drop a \
                 `Connection: close` header (curl -H); use an HTTP/1.1 client.",
                conns(asked.all)
            ),
        )
    })
}

/// Single-request connections the client closed itself (`client_idle`, `client_abort`) after its
/// response had begun, and how many of them overlapped others. A close before any response (a
/// timeout) is `unanswered_requests`' to explain, and a connection left idle while new ones were
/// opened is `connections_leaked`'s.
fn client_closed_single(t: &Tallies) -> (u64, u64) {
    let (idle, abort) = (t.cause(CloseCause::ClientIdle), t.cause(CloseCause::ClientAbort));
    let closed = idle.single_after_response + abort.single_after_response;
    let concurrent = idle.single_after_response_concurrent + abort.single_after_response_concurrent;
    let leaked = t.closed_after_idling();
    (closed.saturating_sub(leaked), concurrent.saturating_sub(leaked))
}

/// Sequential single-request connections closed by the client: it closes after each response.
fn client_closes_after_response(t: &Tallies) -> Option<Finding> {
    let (closed, concurrent) = client_closed_single(t);
    let sequential = closed - concurrent;
    (closed >= 2 && sequential * 2 > closed).then(|| {
        finding(
            FindingCode::ClientClosesAfterResponse,
            Severity::Warning,
            Some(Side::Client),
            closed,
            &[CloseCause::ClientIdle, CloseCause::ClientAbort],
            format!(
                "{} of one request each, one after the other, and the client closed each one itself right after its response: \
                 it does not keep its connections for the next request. Fix the client: in Go, read the body to EOF \
                 (io.Copy(io.Discard, resp.Body)) before Close, and share one http.Client (one Transport) instead of a new one \
                 per request.",
                conns(closed)
            ),
        )
    })
}

/// Concurrent single-request connections closed by the client while others were kept and reused:
/// more requests in flight than the pool keeps idle.
fn client_pool_overflow(t: &Tallies) -> Option<Finding> {
    let (closed, concurrent) = client_closed_single(t);
    (closed >= 2 && concurrent * 2 >= closed && t.reused > 0).then(|| {
        finding(
            FindingCode::ClientPoolOverflow,
            Severity::Warning,
            Some(Side::Client),
            closed,
            &[CloseCause::ClientIdle, CloseCause::ClientAbort],
            format!(
                "The client ran requests concurrently and closed {} of one request each right after the response, while it \
                 kept and reused {}: more requests in flight than its pool keeps idle. Fix the client: in Go, raise \
                 Transport.MaxIdleConnsPerHost (default 2) to the concurrency, or limit the concurrency.",
                conns(closed),
                conns(t.reused)
            ),
        )
    })
}

/// Connections of one request each left idle while new ones were opened: never given back for
/// reuse (still open, or closed only later, at the process's exit).
fn connections_leaked(t: &Tallies) -> Option<Finding> {
    let (open, idled) = (t.single_left_established, t.closed_after_idling());
    let leaked = open + idled;
    let causes: Vec<CloseCause> =
        [(open, CloseCause::Open), (idled, CloseCause::ClientIdle)].into_iter().filter(|(n, _)| *n > 0).map(|(_, cause)| cause).collect();
    let still = if idled == 0 { "are still ESTABLISHED with no FIN" } else { "sat idle (or still do)" };
    (leaked >= 2).then(|| {
        finding(
            FindingCode::ConnectionsLeaked,
            Severity::Warning,
            Some(Side::Client),
            leaked,
            &causes,
            format!(
                "{} carried one request each and {still} while new ones kept being opened: the client never gave them \
                 back for reuse, so each request leaves a connection (and a file descriptor) behind. Fix the client: in Go, \
                 close every response body (defer resp.Body.Close()) after reading it to EOF, and reuse one Transport \
                 instead of a new one per request.",
                conns(leaked)
            ),
        )
    })
}

/// Requests never answered in full.
fn unanswered_requests(t: &Tallies) -> Option<Finding> {
    if t.unanswered == 0 {
        return None;
    }
    let then = t
        .unanswered_causes
        .iter()
        .map(|cause| match cause {
            CloseCause::ClientAbort => "the client gave up and closed (its timeout, or a cancel)",
            CloseCause::ServerAbort => "the server closed without answering",
            CloseCause::Open => "the client was still waiting when the capture ended",
            _ => "the connection ended",
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(Finding {
        count: t.unanswered,
        ..finding(
            FindingCode::UnansweredRequests,
            Severity::Warning,
            Some(Side::Server),
            t.unanswered_connections,
            &t.unanswered_causes,
            format!(
                "{} on {} {} never answered in full: {then}. Look at the server side: a handler slower than the client's \
                 timeout (Go http.Client.Timeout), stuck, or crashing; raise the client's timeout only if the wait is expected.",
                plural(t.unanswered, "request", "requests"),
                conns(t.unanswered_connections),
                if t.unanswered == 1 { "was" } else { "were" }
            ),
        )
    })
}

/// CLOSE_WAIT sockets: the side whose application has not closed after the peer hung up.
fn close_wait(s: &Summary, side: Side) -> Option<Finding> {
    let states = if side == Side::Client { &s.client_states } else { &s.server_states };
    let n = states.get(TcpState::CLOSE_WAIT);
    let (code, advice) = match side {
        Side::Client => (
            FindingCode::ClientCloseWait,
            "Fix the client: in Go, read the response body to EOF and close it, so the Transport sees the server's close and \
             closes the socket too.",
        ),
        Side::Server => (
            FindingCode::ServerCloseWait,
            "Fix the server: close the connection when a read returns EOF (the peer hung up); a handler that blocks or leaks \
             the connection never does.",
        ),
    };
    (n > 0).then(|| Finding {
        count: n,
        ..finding(
            code,
            Severity::Warning,
            Some(side),
            n,
            &[],
            format!(
                "{} on the {side} side in CLOSE_WAIT: the peer closed, but the {side} application has not closed its socket, \
                 which holds a file descriptor until it does. {advice}",
                plural(n, "socket is", "sockets are")
            ),
        )
    })
}

/// The close cause most connections of `side` have, for explaining where TIME_WAIT lands.
fn dominant_cause(t: &Tallies) -> Option<CloseCause> {
    CloseCause::ALL.into_iter().filter(|c| t.cause(*c).all > 0).max_by_key(|c| t.cause(*c).all)
}

/// TIME_WAIT piles on the side that closed first; the message says why the connections ended.
fn time_wait_pileup(s: &Summary, t: &Tallies, side: Side) -> Option<Finding> {
    let states = if side == Side::Client { &s.client_states } else { &s.server_states };
    let n = states.get(TcpState::TIME_WAIT);
    if n < 3 || n * 2 < s.connections {
        return None;
    }
    let mut asked_by_peer = false;
    let why = match dominant_cause(t) {
        Some(cause @ (CloseCause::ServerAsked | CloseCause::ClientAsked)) => {
            let asker = cause.side().unwrap_or(side);
            asked_by_peer = asker != side;
            let race = if asked_by_peer { "; this side's FIN merely came first" } else { "" };
            format!("most connections ended because the {asker} asked to close{race}")
        }
        Some(cause) => format!("most connections ended as {cause}"),
        None => String::new(),
    };
    // Where the peer asked for the closes, the TIME_WAIT is this side's only by the FIN race:
    // nothing for this side to fix.
    // Reused connections closed by their client (at its exit, after an idle timeout) leave one
    // TIME_WAIT per many requests: a cost only when most connections carried one request.
    let mostly_single = t.single > t.reused;
    let (code, severity) = match side {
        Side::Client if !asked_by_peer && mostly_single => (FindingCode::ClientTimeWaitPileup, Severity::Warning),
        Side::Client => (FindingCode::ClientTimeWaitPileup, Severity::Info),
        Side::Server => (FindingCode::ServerTimeWaitPileup, Severity::Info),
    };
    Some(Finding {
        count: n,
        ..finding(
            code,
            severity,
            Some(side),
            n,
            &[],
            format!(
                "{} left in TIME_WAIT on the {side} side, the side that sent the first FIN (each holds its port pair for 60 s on \
                 Linux; under load this exhausts ephemeral ports): {why}. The fix is the one for why they were not reused.",
                plural(n, "socket", "sockets")
            ),
        )
    })
}

/// One TLS handshake per request.
fn tls_handshake_per_request(t: &Tallies) -> Option<Finding> {
    (t.tls_connections >= 2 && t.tls_single == t.tls_connections).then(|| Finding {
        count: t.tls_hellos,
        ..finding(
            FindingCode::TlsHandshakePerRequest,
            Severity::Warning,
            Some(Side::Client),
            t.tls_connections,
            &[],
            format!(
                "{} for {}: one TLS handshake per request, so the TLS cost is paid every time. Fix the client: share one client \
                 (in Go one http.Client with its Transport), and drain and close each body so the connection is reused.",
                plural(t.tls_hellos, "TLS handshake", "TLS handshakes"),
                conns(t.tls_connections)
            ),
        )
    })
}

/// TCP keep-alive probes: healthy idle connections, unless a request on them is unanswered.
fn keepalive_probes(s: &Summary, t: &Tallies) -> Option<Finding> {
    if s.keepalive_probes == 0 {
        return None;
    }
    let interval = median(&t.probe_intervals).map(|m| format!(", about every {m:.1} s")).unwrap_or_default();
    let health = if t.probes_on_unanswered > 0 {
        format!(
            "; {} of them waited on an unanswered request: the probes only show the peer is alive, not that it answers",
            conns(t.probes_on_unanswered)
        )
    } else {
        ": idle connections are kept open between requests and checked by TCP keep-alive (healthy)".to_string()
    };
    Some(Finding {
        count: s.keepalive_probes,
        ..finding(
            FindingCode::KeepaliveProbes,
            Severity::Info,
            None,
            t.probe_connections,
            &[],
            format!(
                "{} on {}{interval}{health}.",
                plural(s.keepalive_probes, "TCP keep-alive probe", "TCP keep-alive probes"),
                conns(t.probe_connections)
            ),
        )
    })
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// Says why `k.disagree` local sockets were not in the state the packets imply.
fn kernel_disagreement(k: &KernelAgreement, dropped: u64) -> String {
    let mut reasons = Vec::new();
    if k.time_wait_gone > 0 {
        reasons.push(format!(
            "{} already gone from the kernel (expired after 60 s, or recycled for a new connection on the same ports by tcp_tw_reuse)",
            plural(k.time_wait_gone, "TIME_WAIT socket", "TIME_WAIT sockets")
        ));
    }
    if k.changed > 0 {
        let missed = if dropped > 0 {
            format!(", or the segments that moved them were among the {} the capture dropped", plural(dropped, "packet", "packets"))
        } else {
            String::new()
        };
        reasons.push(format!(
            "{} changed state after the last captured packet (a FIN or ACK still in flight when the capture stopped, \
             an orphaned FIN_WAIT_2 timed out{missed})",
            plural(k.changed, "socket", "sockets")
        ));
    }
    format!(
        "{} of {} local sockets were not in the state the packets imply when the capture stopped: {}. \
         Compare connections[].kernel_client_state and kernel_server_state with client_state and server_state.",
        k.disagree,
        k.compared,
        reasons.join("; ")
    )
}

/// Findings about the capture itself (live capture only).
fn capture_findings(capture: &CaptureStats, findings: &mut Vec<Finding>) {
    let dropped = capture.dropped_by_kernel + capture.dropped_by_interface;
    if dropped > 0 {
        findings.push(Finding {
            connections: 0,
            ..finding(
                FindingCode::CaptureDroppedPackets,
                Severity::Warning,
                None,
                dropped,
                &[],
                format!(
                    "The capture lost {} (kernel {}, interface {}): counts below may be short. Raise the buffer with -B or narrow the filter.",
                    plural(dropped, "packet", "packets"),
                    capture.dropped_by_kernel,
                    capture.dropped_by_interface
                ),
            )
        });
    }
    if let Some(k) = capture.kernel_agreement.as_ref().filter(|k| k.disagree > 0) {
        findings.push(Finding {
            connections: 0,
            ..finding(
                FindingCode::KernelStateDisagrees,
                if dropped > 0 { Severity::Warning } else { Severity::Info },
                None,
                k.disagree,
                &[],
                kernel_disagreement(k, dropped),
            )
        });
    }
}

/// Refused, reset, mid-stream, gaps and evictions: what the counts rest on.
fn connection_facts(s: &Summary, t: &Tallies, findings: &mut Vec<Finding>) {
    let refused = t.cause(CloseCause::Refused).all;
    if refused > 0 {
        findings.push(finding(
            FindingCode::ConnectionsRefused,
            Severity::Warning,
            Some(Side::Server),
            refused,
            &[CloseCause::Refused],
            format!(
                "{} refused: the SYN was answered by RST, nothing was listening on the port (server down, wrong port, or backlog full).",
                plural(refused, "connection was", "connections were")
            ),
        ));
    }
    let resets = s.rst_connections.saturating_sub(refused);
    if resets > 0 {
        let after_close = if t.rst_after_close == 0 {
            String::new()
        } else {
            format!(
                "; {} after both FINs, where the RST ended a TIME_WAIT (RFC 1337: a stale segment answered with RST)",
                plural(t.rst_after_close, "was", "were")
            )
        };
        findings.push(finding(
            FindingCode::ConnectionsReset,
            Severity::Info,
            None,
            resets,
            &[],
            format!(
                "{} ended with RST (client {}, server {}): an abortive close (SO_LINGER 0), or a close with unread data in the \
                 receive buffer{after_close}.",
                conns(resets),
                t.rst_client,
                t.rst_server.saturating_sub(refused)
            ),
        ));
    }
    for (code, n, text) in [
        (FindingCode::MidStreamConnections, s.mid_stream, "started before the capture: their handshake and first requests are not counted"),
        (FindingCode::ConnectionsEvicted, s.evicted_connections, "evicted to stay under --max-connections (oldest half-open first)"),
    ] {
        if n > 0 {
            let severity = if code == FindingCode::ConnectionsEvicted { Severity::Warning } else { Severity::Info };
            findings.push(finding(code, severity, None, n, &[], format!("{} {text}.", conns(n))));
        }
    }
    if s.stream_gaps > 0 {
        findings.push(Finding {
            connections: 0,
            ..finding(
                FindingCode::StreamGaps,
                Severity::Info,
                None,
                s.stream_gaps,
                &[],
                format!(
                    "{} in the byte streams (packets lost, not captured, or cut by snaplen): request counts may be short.",
                    plural(s.stream_gaps, "gap", "gaps")
                ),
            )
        });
    }
}

/// What the headline adds about why connections ended: the close cause of every connection that
/// carried one request, when they all share it.
fn headline_cause(t: &Tallies) -> Option<&'static str> {
    // Said only when one cause ended every connection of one request ("each one").
    let cause = CloseCause::ALL.into_iter().find(|c| t.cause(*c).single > 0 && t.cause(*c).single == t.single)?;
    Some(match cause {
        CloseCause::ClientAsked => "the client asked to close each one",
        CloseCause::ServerAsked => "the server asked to close each one",
        CloseCause::ClientIdle => "the client closed each one right after its response",
        CloseCause::ClientAbort => "the client closed them before the response was complete",
        CloseCause::ServerIdle => "the server closed them when idle",
        CloseCause::ServerAbort => "the server closed them before answering",
        CloseCause::Open => "they were left open",
        CloseCause::Refused => return None,
    })
}

/// Judges the capture from its summary and tallies.
pub fn judge(s: &Summary, t: &Tallies, capture: Option<&CaptureStats>) -> Verdict {
    let reuse = if t.with_requests == 0 {
        Reuse::NoTraffic
    } else if t.reused == t.with_requests {
        Reuse::Reused
    } else if t.reused == 0 {
        Reuse::NotReused
    } else {
        Reuse::Mixed
    };
    let per_conn = if t.with_requests == 0 { 0.0 } else { t.requests as f64 / t.with_requests as f64 };
    let reqs = plural(t.requests, "request", "requests");
    let over = conns(t.with_requests);
    let cause = headline_cause(t)
        .map(|c| format!(", and {}", if t.single == 1 { c.replace("each one", "it").replace("them", "it") } else { c.to_string() }))
        .unwrap_or_default();
    let headline = match reuse {
        Reuse::NoTraffic => format!("No requests seen over {}.", conns(s.connections)),
        Reuse::Reused => format!("Connections were reused: {reqs} over {over} ({per_conn:.1} per connection)."),
        Reuse::NotReused => format!("Connections were not reused: {reqs} over {over}, one each{cause}."),
        Reuse::Mixed => {
            format!("Some connections were reused: {reqs} over {over}; {} carried more than one, {} only one{cause}.", t.reused, t.single)
        }
    };
    let mut findings = Vec::new();
    if let Some(capture) = capture {
        capture_findings(capture, &mut findings);
    }
    let rules = [
        server_keepalive_off(t),
        server_request_limit(t),
        server_idle_timeout(t),
        server_closes_after_response(t),
        client_disables_keepalive(t),
        client_closes_after_response(t),
        client_pool_overflow(t),
        connections_leaked(t),
        unanswered_requests(t),
        close_wait(s, Side::Client),
        close_wait(s, Side::Server),
        time_wait_pileup(s, t, Side::Client),
        time_wait_pileup(s, t, Side::Server),
        tls_handshake_per_request(t),
        keepalive_probes(s, t),
    ];
    findings.extend(rules.into_iter().flatten());
    connection_facts(s, t, &mut findings);
    Verdict {
        reuse,
        connections_with_requests: t.with_requests,
        requests: t.requests,
        requests_per_connection: per_conn,
        headline,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::close_cause::CloseCause::*;

    /// Tallies of connections `(cause, requests, answered, first_ts, last_ts)`.
    fn tallies(connections: &[(CloseCause, u32, u32, f64, f64)]) -> Tallies {
        let mut t = Tallies::default();
        for &(cause, requests, answered, first_ts, last_ts) in connections {
            let record = crate::report::tests::record(cause, requests, answered, first_ts, last_ts);
            t.add(&record);
        }
        t
    }

    fn codes(t: &Tallies) -> Vec<FindingCode> {
        judge(&Summary::default(), t, None).findings.iter().map(|f| f.code).collect()
    }

    /// `n` sequential connections of one request each, answered, ended by `cause`.
    fn sequential(cause: CloseCause, n: u32) -> Vec<(CloseCause, u32, u32, f64, f64)> {
        (0..n).map(|i| (cause, 1, 1, f64::from(i), f64::from(i) + 0.5)).collect()
    }

    #[test]
    fn test_server_asked_single_requests_blame_only_the_server() {
        let t = tallies(&sequential(ServerAsked, 3));
        assert_eq!(codes(&t), [FindingCode::ServerKeepaliveOff]);
        let f = &judge(&Summary::default(), &t, None).findings[0];
        assert_eq!((f.side, f.connections, f.close_causes.as_slice()), (Some(Side::Server), 3, &[ServerAsked][..]));
    }

    #[test]
    fn test_client_asked_blames_only_the_client_whoever_sent_fin() {
        let t = tallies(&sequential(ClientAsked, 3));
        assert_eq!(codes(&t), [FindingCode::ClientDisablesKeepalive]);
    }

    #[test]
    fn test_server_request_limit_needs_the_same_count_each_time() {
        let mut conns = vec![(ServerAsked, 3, 3, 0.0, 1.0), (ServerAsked, 3, 3, 1.0, 2.0)];
        conns.push((ClientIdle, 1, 1, 2.0, 3.0));
        assert_eq!(codes(&tallies(&conns)), [FindingCode::ServerRequestLimit]);
        let varied = [(ServerAsked, 2, 2, 0.0, 1.0), (ServerAsked, 40, 40, 1.0, 2.0)];
        assert_eq!(codes(&tallies(&varied)), [FindingCode::ServerClosesWhenAsked]);
    }

    #[test]
    fn test_server_idle_after_sitting_idle_is_the_servers_idle_timeout() {
        let mut t = Tallies::default();
        for (first, last) in [(0.0, 2.0), (2.5, 4.0)] {
            let mut record = crate::report::tests::record(ServerIdle, 1, 1, first, last);
            record.close_after_response = Some(1.5);
            t.add(&record);
        }
        assert_eq!(codes(&t), [FindingCode::ServerIdleTimeout]);
    }

    #[test]
    fn test_server_idle_right_after_the_response_is_an_unannounced_close() {
        let t = tallies(&[(ServerIdle, 1, 1, 0.0, 0.1), (ServerIdle, 1, 1, 0.2, 0.3)]);
        assert_eq!(codes(&t), [FindingCode::ServerClosesAfterResponse]);
    }

    #[test]
    fn test_sequential_client_closes_are_closes_after_response() {
        assert_eq!(codes(&tallies(&sequential(ClientIdle, 3))), [FindingCode::ClientClosesAfterResponse]);
    }

    #[test]
    fn test_a_connection_closed_after_the_next_one_opened_is_still_sequential() {
        // Go's Transport closes an unread body's connection only after dialling the next one: the
        // records end in the order 2, 3, 1, but each was done with its response before the next opened.
        let mut t = Tallies::default();
        for (first, close, wait) in [(0.0007, 0.00095, 0.0001), (0.001, 0.0012, 0.0001), (0.0, 0.0015, 0.0009)] {
            let mut record = crate::report::tests::record(ClientIdle, 1, 1, first, close);
            record.close_after_response = Some(wait);
            t.add(&record);
        }
        assert_eq!(codes(&t), [FindingCode::ClientClosesAfterResponse]);
    }

    #[test]
    fn test_concurrent_client_closes_beside_reused_connections_are_pool_overflow() {
        let mut conns: Vec<_> = (0..8).map(|i| (ClientIdle, 1, 1, 0.0, 0.1 + f64::from(i) * 0.01)).collect();
        conns.push((ClientIdle, 5, 5, 0.0, 3.0));
        conns.push((ClientIdle, 5, 5, 0.0, 3.0));
        assert_eq!(codes(&tallies(&conns)), [FindingCode::ClientPoolOverflow]);
    }

    #[test]
    fn test_unanswered_request_is_never_healthy() {
        let t = tallies(&[(ClientAbort, 1, 0, 0.0, 1.0)]);
        assert_eq!(codes(&t), [FindingCode::UnansweredRequests]);
        let f = &judge(&Summary::default(), &t, None).findings[0];
        assert_eq!((f.count, f.side, f.close_causes.as_slice()), (1, Some(Side::Server), &[ClientAbort][..]));
    }

    #[test]
    fn test_open_idle_single_request_connections_are_leaked() {
        let t = tallies(&sequential(Open, 3));
        assert_eq!(codes(&t), [FindingCode::ConnectionsLeaked]);
    }

    #[test]
    fn test_reused_connections_closed_by_the_client_raise_nothing() {
        let t = tallies(&[(ClientIdle, 5, 5, 0.0, 1.0)]);
        assert!(codes(&t).is_empty());
        assert_eq!(judge(&Summary::default(), &t, None).reuse, Reuse::Reused);
    }

    #[test]
    fn test_headline_names_the_cause_of_single_request_connections() {
        let v = judge(&Summary::default(), &tallies(&sequential(ClientIdle, 200)), None);
        assert_eq!(
            v.headline,
            "Connections were not reused: 200 requests over 200 connections, one each, and the client closed each one right after its response."
        );
    }

    #[test]
    fn test_headline_names_no_cause_when_single_request_connections_ended_differently() {
        let t = tallies(&[(ClientIdle, 1, 1, 0.0, 0.5), (ClientAsked, 1, 1, 1.0, 1.5), (ServerAsked, 2, 2, 2.0, 2.5)]);
        assert_eq!(
            judge(&Summary::default(), &t, None).headline,
            "Some connections were reused: 4 requests over 3 connections; 1 carried more than one, 2 only one."
        );
    }

    #[test]
    fn test_every_code_has_its_json_name() {
        for code in FindingCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.name());
        }
    }

    fn capture_with(agreement: KernelAgreement, dropped: u64) -> CaptureStats {
        CaptureStats { kernel_agreement: Some(agreement), dropped_by_kernel: dropped, ..CaptureStats::default() }
    }

    #[test]
    fn test_kernel_disagreement_is_a_finding_with_its_reasons() {
        let agreement = KernelAgreement { compared: 6, agree: 3, disagree: 3, time_wait_gone: 2, changed: 1 };
        let verdict = judge(&Summary::default(), &Tallies::default(), Some(&capture_with(agreement.clone(), 0)));
        let finding = verdict.findings.iter().find(|f| f.code == FindingCode::KernelStateDisagrees).expect("the finding");
        assert_eq!((finding.count, finding.severity), (3, Severity::Info));
        assert!(finding.message.starts_with("3 of 6 local sockets"), "{}", finding.message);
        assert!(
            finding.message.contains("2 TIME_WAIT sockets already gone") && finding.message.contains("1 socket changed state"),
            "{}",
            finding.message
        );

        let lossy = judge(&Summary::default(), &Tallies::default(), Some(&capture_with(agreement, 4)));
        let finding = lossy.findings.iter().find(|f| f.code == FindingCode::KernelStateDisagrees).expect("the finding");
        assert_eq!(finding.severity, Severity::Warning);
        assert!(finding.message.contains("among the 4 packets the capture dropped"), "{}", finding.message);

        let agreeing = KernelAgreement { compared: 2, agree: 2, ..KernelAgreement::default() };
        let verdict = judge(&Summary::default(), &Tallies::default(), Some(&capture_with(agreeing, 0)));
        assert!(verdict.findings.iter().all(|f| f.code != FindingCode::KernelStateDisagrees));
    }
}
