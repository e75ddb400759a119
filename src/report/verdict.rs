//! The verdict: were connections reused, and the findings that explain why or why not.
//!
//! Each finding has a stable `code`, the side it concerns, the count that backs it, and a message in
//! plain language saying what it means and what to do.

use super::{CaptureStats, ConnectionRecord, FinFirst, Handshake, KernelAgreement, Summary};
use crate::side::Side;
use crate::tcp_state::TcpState;
use serde::Serialize;

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

/// One finding: a situation from the capture, backed by a count.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub code: &'static str,
    /// `warning` (something to fix), `info` (healthy or neutral).
    pub severity: &'static str,
    pub side: Option<Side>,
    pub count: u64,
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

/// Per-connection facts the findings need, gathered as connections end.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    with_requests: u64,
    requests: u64,
    reused: u64,
    single: u64,
    single_client_closed: u64,
    single_server_closed: u64,
    single_left_established: u64,
    server_asked_close: u64,
    client_asked_close: u64,
    http10: u64,
    tls_connections: u64,
    tls_single: u64,
    tls_hellos: u64,
    server_closed_soon_after_response: u64,
    probe_intervals: Vec<f64>,
    probe_connections: u64,
    rst_client: u64,
    rst_server: u64,
    /// RSTs that killed a TIME_WAIT after both FINs (amendments).
    rst_after_close: u64,
    refused: u64,
}

/// A server FIN within this many seconds of its last response counts as "right after the response".
const CLOSE_SOON_AFTER_RESPONSE: f64 = 1.0;

impl Tallies {
    /// Folds in one finished connection.
    pub fn add(&mut self, c: &ConnectionRecord) {
        let requests = u64::from(c.exchanges);
        if requests > 0 {
            self.with_requests += 1;
            self.requests += requests;
            if requests > 1 {
                self.reused += 1;
            } else {
                self.single += 1;
                let client_closed = c.fin_first == FinFirst::Client || (c.fin_first == FinFirst::None && c.rst_by == Some(Side::Client));
                let server_closed = c.fin_first == FinFirst::Server || (c.fin_first == FinFirst::None && c.rst_by == Some(Side::Server));
                if client_closed {
                    self.single_client_closed += 1;
                }
                if server_closed {
                    self.single_server_closed += 1;
                    if c.close_after_response.is_some_and(|d| d <= CLOSE_SOON_AFTER_RESPONSE) {
                        self.server_closed_soon_after_response += 1;
                    }
                }
                if c.client_state == TcpState::ESTABLISHED && c.server_state == TcpState::ESTABLISHED {
                    self.single_left_established += 1;
                }
            }
        }
        match c.close_requested_by {
            Some(Side::Server) => self.server_asked_close += 1,
            Some(Side::Client) => self.client_asked_close += 1,
            None => {}
        }
        if c.requests.iter().any(|r| r.version == Some(crate::protocol::HttpVersion::Http10)) {
            self.http10 += 1;
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
            if let Some(i) = c.keepalive_interval {
                self.probe_intervals.push(i);
            }
        }
        if c.handshake == Handshake::SynOnly && c.rst_by == Some(Side::Server) {
            self.refused += 1;
        }
        match c.rst_by {
            Some(Side::Client) => self.rst_client += 1,
            Some(Side::Server) => self.rst_server += 1,
            None => {}
        }
    }

    /// Folds in an amendment: an RST that killed a TIME_WAIT counts with the connection's RSTs
    /// (the other inputs look at RSTs only on connections without a FIN, which are never amended).
    pub fn amend(&mut self, amendment: &super::Amendment) {
        match amendment.rst_by {
            Some(Side::Client) => self.rst_client += 1,
            Some(Side::Server) => self.rst_server += 1,
            None => return,
        }
        self.rst_after_close += 1;
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
    let conns = plural(t.with_requests, "connection", "connections");
    let headline = match reuse {
        Reuse::NoTraffic => format!("No requests seen over {}.", plural(s.connections, "connection", "connections")),
        Reuse::Reused => format!("Connections were reused: {reqs} over {conns} ({per_conn:.1} per connection)."),
        Reuse::NotReused => format!("Connections were not reused: {reqs} over {conns}, one each."),
        Reuse::Mixed => {
            format!("Some connections were reused: {reqs} over {conns}; {} carried more than one, {} only one.", t.reused, t.single)
        }
    };
    let mut findings = Vec::new();
    let mut add = |code, severity, side, count, message: String| {
        findings.push(Finding { code, severity, side, count, message });
    };

    if let Some(cap) = capture {
        let dropped = cap.dropped_by_kernel + cap.dropped_by_interface;
        if dropped > 0 {
            add(
                "capture_dropped_packets",
                "warning",
                None,
                dropped,
                format!(
                "The capture lost {} (kernel {}, interface {}): counts below may be short. Raise the buffer with -B or narrow the filter.",
                plural(dropped, "packet", "packets"), cap.dropped_by_kernel, cap.dropped_by_interface),
            );
        }
    }
    if let Some(cap) = capture {
        if let Some(k) = cap.kernel_agreement.as_ref().filter(|k| k.disagree > 0) {
            add(
                "kernel_state_disagrees",
                if cap.dropped_by_kernel + cap.dropped_by_interface > 0 { "warning" } else { "info" },
                None,
                k.disagree,
                kernel_disagreement(k, cap.dropped_by_kernel + cap.dropped_by_interface),
            );
        }
    }
    if t.single >= 2 && t.single_client_closed == t.single && t.reused == 0 {
        add(
            "client_closes_first",
            "warning",
            Some(Side::Client),
            t.single_client_closed,
            format!(
                "Every request opened a new connection and the client closed each one first ({} FIN/RST by the client). \
             The client closes after each response: in Go, the response body was not read to EOF before Close, \
             or a new http.Client/Transport was made per request. Read the body to EOF (io.Copy(io.Discard, resp.Body)), \
             close it, and share one client.",
                plural(t.single_client_closed, "connection", "connections")
            ),
        );
    } else if t.single_client_closed >= 2 {
        add(
            "client_closes_first",
            "warning",
            Some(Side::Client),
            t.single_client_closed,
            format!(
                "{} carried one request and the client closed it first: in Go, a body not read to EOF before Close, \
             or a new client/transport per request.",
                plural(t.single_client_closed, "connection", "connections")
            ),
        );
    }
    if t.single_left_established >= 2 {
        add(
            "connections_leaked",
            "warning",
            Some(Side::Client),
            t.single_left_established,
            format!(
                "{} carried one request each and are still ESTABLISHED with no FIN: response bodies were never closed, \
             so each request leaves a connection (and a file descriptor) behind until the process runs out. \
             Close every response body (defer resp.Body.Close()) after reading it to EOF.",
                plural(t.single_left_established, "connection", "connections")
            ),
        );
    }
    let server_no_keepalive = t.server_asked_close.max(t.http10).max(t.server_closed_soon_after_response);
    if t.single_server_closed >= 1 && server_no_keepalive >= 1 && t.single_server_closed >= t.single / 2 {
        let why = if t.server_asked_close > 0 {
            format!(
                "it asked to close, with `Connection: close` or an HTTP/1.0 response without keep-alive, on {}",
                plural(t.server_asked_close, "connection", "connections")
            )
        } else if t.http10 > 0 {
            format!(
                "the client sent HTTP/1.0 requests on {}, which end the connection unless keep-alive is asked for",
                plural(t.http10, "connection", "connections")
            )
        } else {
            "the server closed right after each response".to_string()
        };
        add(
            "server_closes_first",
            "warning",
            Some(Side::Server),
            t.single_server_closed,
            format!(
                "The server does not keep connections alive: it sent FIN first on {} ({why}). \
             Typical of python http.server, or of a server with keep-alive disabled (Go: SetKeepAlivesEnabled(false)); \
             enable keep-alive on the server to reuse connections.",
                plural(t.single_server_closed, "connection", "connections")
            ),
        );
    }
    if t.client_asked_close > 0 && t.reused == 0 {
        add(
            "client_requested_close",
            "info",
            Some(Side::Client),
            t.client_asked_close,
            format!(
                "The client asked to close with `Connection: close` on {} (Go: DisableKeepAlives, or Request.Close).",
                plural(t.client_asked_close, "connection", "connections")
            ),
        );
    }
    for (side, states) in [(Side::Client, &s.client_states), (Side::Server, &s.server_states)] {
        let n = states.get("CLOSE_WAIT").copied().unwrap_or(0);
        if n > 0 {
            add(if side == Side::Client { "client_close_wait" } else { "server_close_wait" }, "warning", Some(side), n, format!(
                "{} on the {side} side in CLOSE_WAIT: the peer closed, but the {side} application has not closed its socket. \
                 Each one holds a file descriptor until it does; close the connection (in Go, close the response body) when the peer hangs up.",
                plural(n, "socket is", "sockets are")));
        }
    }
    let client_tw = s.client_states.get("TIME_WAIT").copied().unwrap_or(0);
    if client_tw >= 3 && client_tw * 2 >= s.connections {
        add(
            "client_time_wait_pileup",
            "warning",
            Some(Side::Client),
            client_tw,
            format!(
                "{} left in TIME_WAIT on the client side (each holds its port for 60 s on Linux): the client closes first \
             and opens new connections instead of reusing them. Under load this exhausts ephemeral ports. Reuse connections (keep-alive).",
                plural(client_tw, "socket", "sockets")
            ),
        );
    }
    let server_tw = s.server_states.get("TIME_WAIT").copied().unwrap_or(0);
    if server_tw >= 3 && server_tw * 2 >= s.connections {
        add(
            "server_time_wait_pileup",
            "info",
            Some(Side::Server),
            server_tw,
            format!(
                "{} left in TIME_WAIT on the server side: the server closes first, so it holds TIME_WAIT for 60 s each.",
                plural(server_tw, "socket", "sockets")
            ),
        );
    }
    if t.tls_connections >= 2 && t.tls_single == t.tls_connections {
        add(
            "tls_handshake_per_request",
            "warning",
            Some(Side::Client),
            t.tls_hellos,
            format!(
                "{} for {}: one TLS handshake per request, so the TLS cost is paid every time. \
             Share one client (in Go one http.Client with its Transport) and drain and close each body so the connection is reused.",
                plural(t.tls_hellos, "TLS handshake", "TLS handshakes"),
                plural(t.tls_connections, "connection", "connections")
            ),
        );
    }
    if s.keepalive_probes > 0 {
        let interval = if t.probe_intervals.is_empty() {
            String::new()
        } else {
            let avg = t.probe_intervals.iter().sum::<f64>() / t.probe_intervals.len() as f64;
            format!(", about every {avg:.1} s")
        };
        add(
            "keepalive_probes",
            "info",
            None,
            s.keepalive_probes,
            format!(
                "{} on {}{interval}: idle connections are kept open between requests and checked by TCP keep-alive (healthy).",
                plural(s.keepalive_probes, "TCP keep-alive probe", "TCP keep-alive probes"),
                plural(t.probe_connections, "connection", "connections")
            ),
        );
    }
    if t.refused > 0 {
        add(
            "connections_refused",
            "warning",
            Some(Side::Server),
            t.refused,
            format!(
                "{} refused: the SYN was answered by RST, nothing was listening on the port (server down, wrong port, or backlog full).",
                plural(t.refused, "connection was", "connections were")
            ),
        );
    }
    let resets = s.rst_connections - t.refused;
    if resets > 0 {
        let after_close = if t.rst_after_close == 0 {
            String::new()
        } else {
            format!(
                "; {} after both FINs, where the RST ended a TIME_WAIT (RFC 1337: a stale segment answered with RST)",
                plural(t.rst_after_close, "was", "were")
            )
        };
        add(
            "connections_reset",
            "info",
            None,
            resets,
            format!(
            "{} ended with RST (client {}, server {}): an abortive close (SO_LINGER 0), or a close with unread data in the receive buffer{after_close}.",
            plural(resets, "connection", "connections"), t.rst_client, t.rst_server - t.refused),
        );
    }
    if s.mid_stream > 0 {
        add(
            "mid_stream_connections",
            "info",
            None,
            s.mid_stream,
            format!(
                "{} started before the capture: their handshake and first requests are not counted.",
                plural(s.mid_stream, "connection", "connections")
            ),
        );
    }
    if s.stream_gaps > 0 {
        add(
            "stream_gaps",
            "info",
            None,
            s.stream_gaps,
            format!(
                "{} in the byte streams (packets lost, not captured, or cut by snaplen): request counts may be short.",
                plural(s.stream_gaps, "gap", "gaps")
            ),
        );
    }
    if s.evicted_connections > 0 {
        add(
            "connections_evicted",
            "warning",
            None,
            s.evicted_connections,
            format!(
                "{} evicted to stay under --max-connections (oldest half-open first).",
                plural(s.evicted_connections, "connection was", "connections were")
            ),
        );
    }
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

    fn capture_with(agreement: KernelAgreement, dropped: u64) -> CaptureStats {
        CaptureStats { kernel_agreement: Some(agreement), dropped_by_kernel: dropped, ..CaptureStats::default() }
    }

    #[test]
    fn test_kernel_disagreement_is_a_finding_with_its_reasons() {
        let agreement = KernelAgreement { compared: 6, agree: 3, disagree: 3, time_wait_gone: 2, changed: 1 };
        let verdict = judge(&Summary::default(), &Tallies::default(), Some(&capture_with(agreement.clone(), 0)));
        let finding = verdict.findings.iter().find(|f| f.code == "kernel_state_disagrees").expect("the finding");
        assert_eq!((finding.count, finding.severity), (3, "info"));
        assert!(finding.message.starts_with("3 of 6 local sockets"), "{}", finding.message);
        assert!(
            finding.message.contains("2 TIME_WAIT sockets already gone") && finding.message.contains("1 socket changed state"),
            "{}",
            finding.message
        );

        let lossy = judge(&Summary::default(), &Tallies::default(), Some(&capture_with(agreement, 4)));
        let finding = lossy.findings.iter().find(|f| f.code == "kernel_state_disagrees").expect("the finding");
        assert_eq!(finding.severity, "warning");
        assert!(finding.message.contains("among the 4 packets the capture dropped"), "{}", finding.message);

        let agreeing = KernelAgreement { compared: 2, agree: 2, ..KernelAgreement::default() };
        let verdict = judge(&Summary::default(), &Tallies::default(), Some(&capture_with(agreeing, 0)));
        assert!(verdict.findings.iter().all(|f| f.code != "kernel_state_disagrees"));
    }
}
