//! `--explain`: the report told in plain language for someone who does not know TCP yet: who opened
//! the connections, what each carried, who closed first and what that leaves behind (TIME_WAIT,
//! CLOSE_WAIT), and what the findings suggest. Every sentence is chosen and filled from the report.

use super::Layout;
use crate::report::close_cause::CloseCause;
use crate::report::{ConnectionRecord, FinFirst, Handshake, Report};
use crate::tcp::state::TcpState;
use std::io::Write;

/// Connections described one by one before the rest are summed up.
const LISTED: usize = 5;

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What one connection carried, in words.
fn carried(c: &ConnectionRecord) -> String {
    match c.http_requests {
        Some(n) if n > 0 => {
            let shown: Vec<String> = c
                .requests
                .iter()
                .take(3)
                .map(|r| {
                    let line = format!("{} {}", r.method.as_deref().unwrap_or("?"), r.target.as_deref().unwrap_or("?"));
                    r.status.map_or(line.clone(), |s| format!("{line} → {s}"))
                })
                .collect();
            let more = if n as usize > shown.len() { ", …" } else { "" };
            let requests = format!("{} ({}{more})", plural(u64::from(n), "HTTP request", "HTTP requests"), shown.join(", "));
            match &c.tls {
                Some(tls) if tls.decrypted => format!("{requests}, decrypted from TLS"),
                // A CONNECT tunnel: the CONNECT in clear, then TLS.
                Some(tls) => format!(
                    "{requests}, then encrypted TLS traffic, about {}",
                    plural(u64::from(tls.exchanges_estimate), "exchange", "exchanges")
                ),
                None => requests,
            }
        }
        None => match &c.tls {
            Some(tls) => format!("encrypted TLS traffic, about {}", plural(u64::from(tls.exchanges_estimate), "exchange", "exchanges")),
            None => "encrypted traffic".to_string(),
        },
        Some(_) if c.bytes > 0 => format!("{} of data but no HTTP request that connscope could read", plural(c.bytes, "byte", "bytes")),
        Some(_) => "no data at all".to_string(),
    }
}

fn closed(c: &ConnectionRecord) -> String {
    if let Some(side) = c.rst_by {
        return format!("the {side} reset it (RST)");
    }
    match c.fin_first {
        FinFirst::Client => "the client closed it first".to_string(),
        FinFirst::Server => "the server closed it first".to_string(),
        FinFirst::None => "it was still open when the capture ended".to_string(),
    }
}

/// A close cause in words, after "N connections".
fn cause_in_words(cause: CloseCause) -> &'static str {
    match cause {
        CloseCause::Refused => "were refused: the server answered the SYN with RST",
        CloseCause::Open => "were still open when the capture ended",
        CloseCause::ClientAsked => "ended because the client asked to close in its request (Connection: close, or HTTP/1.0)",
        CloseCause::ServerAsked => "ended because the server asked to close in its response (Connection: close, or HTTP/1.0)",
        CloseCause::ClientAbort => "were closed by the client before a response was complete",
        CloseCause::ServerAbort => "were closed by the server before a request was answered",
        CloseCause::ClientIdle => "were closed by the client with every request answered",
        CloseCause::ServerIdle => "were closed by the server with every request answered, unannounced (an idle timeout)",
    }
}

/// Writes the explanation, wrapped to the terminal's width when `layout` has one.
pub fn write(report: &Report, layout: &Layout, out: &mut dyn Write) -> std::io::Result<()> {
    let mut text = Vec::new();
    tell(report, layout, &mut text)?;
    match layout.width {
        Some(width) => out.write_all(super::fit::wrap_prose(&String::from_utf8_lossy(&text), width).as_bytes()),
        None => out.write_all(&text),
    }
}

/// The explanation, one paragraph a line.
fn tell(report: &Report, layout: &Layout, out: &mut dyn Write) -> std::io::Result<()> {
    let s = &report.summary;
    writeln!(out, "\nWhat happened, in plain words")?;
    writeln!(out, "─────────────────────────────")?;
    if s.connections == 0 {
        writeln!(
            out,
            "The capture holds no TCP connection{}. Check the port (--port) and that the capture ran while the client was talking.",
            report.source.filter.as_ref().map(|f| format!(" matching `{f}`")).unwrap_or_default()
        )?;
        return Ok(());
    }

    // Opening.
    let mut servers: Vec<String> = report.connections.iter().map(|c| c.server.to_string()).collect();
    servers.sort_unstable();
    servers.dedup();
    let more_servers = if servers.len() > 3 { format!(" and {} more", servers.len() - 3) } else { String::new() };
    writeln!(
        out,
        "\nOpening. {} seen{}. A TCP connection opens with a three-way handshake: the client sends SYN \
        (\"I want to talk\"), the server answers SYN-ACK, the client ACKs that. The client is the side that sent the SYN; \
        here the {} {}{more_servers}.",
        plural(s.connections, "connection was", "connections were"),
        match layout.conn {
            Some(_) => " (one of them is described below, as --conn asks)",
            None if s.connections as usize > report.connections.len() => " (the first ones are listed below)",
            None => "",
        },
        if servers.len() == 1 { "server is" } else { "servers are" },
        servers.iter().take(3).map(String::as_str).collect::<Vec<_>>().join(", ")
    )?;
    if s.handshakes_completed == s.connections {
        writeln!(out, "Every connection completed its handshake.")?;
    } else {
        writeln!(
            out,
            "{} completed the handshake; {} started before the capture, and {} never got past SYN or SYN-ACK.",
            s.handshakes_completed,
            plural(s.mid_stream, "connection", "connections"),
            s.handshakes - s.handshakes_completed
        )?;
    }

    // What each carried and how it ended.
    writeln!(out, "\nWhat each connection carried.")?;
    for c in report.connections.iter().take(LISTED) {
        let open_for = if c.handshake == Handshake::MidStream { "seen for" } else { "open for" };
        let at = match (layout.time, report.source.start_ts) {
            (super::TimeStyle::Rel, _) | (_, None) => String::new(),
            (style, start) => format!(" at {}", style.format(c.first_ts, start)),
        };
        writeln!(
            out,
            "  #{}{at}: {} → {}: {}, {open_for} {}; {}.",
            c.id,
            c.client,
            c.server,
            carried(c),
            super::human_duration(c.duration),
            closed(c)
        )?;
    }
    if report.connections.len() > LISTED {
        writeln!(out, "  … and {} more.", plural(report.connections.len() as u64 - LISTED as u64, "connection", "connections"))?;
    }
    if s.http_requests.is_some_and(|n| n > 0) {
        writeln!(
            out,
            "On average a connection carried {:.1} HTTP requests; {} carried more than one, i.e. {} reused. \
            Reusing a connection (HTTP keep-alive) saves a handshake per request and the sockets that each close leaves behind.",
            s.requests_per_connection,
            plural(s.reused_connections, "connection", "connections"),
            if s.reused_connections == 1 { "was" } else { "were" }
        )?;
    }

    // Closing and TIME_WAIT.
    writeln!(
        out,
        "\nWho closed first. Closing takes a FIN from each side. The client sent the first FIN on {}, the server on {}, \
        and {} no FIN at all.",
        plural(s.fin_first.client, "connection", "connections"),
        plural(s.fin_first.server, "connection", "connections"),
        plural(s.fin_first.none, "connection had", "connections had")
    )?;
    let time_wait: Vec<String> = [("client", &s.client_states), ("server", &s.server_states)]
        .into_iter()
        .map(|(side, states)| (side, states.get(TcpState::TIME_WAIT)))
        .filter(|(_, n)| *n > 0)
        .map(|(side, n)| format!("the {side} holds {}", plural(n, "socket in TIME_WAIT", "sockets in TIME_WAIT")))
        .collect();
    if !time_wait.is_empty() {
        writeln!(
            out,
            "The side that closes first ends in TIME_WAIT once both FINs are acknowledged; here {} now. \
            The kernel keeps such a socket for twice the maximum segment lifetime (60 s on Linux), so that a late \
            duplicate packet of the old connection cannot be taken for part of a new one on the same ports, and so \
            it can resend the last ACK if that was lost. A side that opens and closes many connections therefore \
            piles up TIME_WAIT sockets, each holding a port for a minute.",
            time_wait.join(" and ")
        )?;
    }

    // CLOSE_WAIT.
    let close_wait: Vec<(&str, u64)> = [("client", &s.client_states), ("server", &s.server_states)]
        .into_iter()
        .map(|(side, states)| (side, states.get(TcpState::CLOSE_WAIT)))
        .filter(|(_, n)| *n > 0)
        .collect();
    if close_wait.is_empty() && s.rst_connections == 0 && s.fin_first.client + s.fin_first.server > 0 {
        writeln!(out, "No socket was left in CLOSE_WAIT: every side that received a FIN closed its own socket in turn.")?;
    }
    for (side, n) in close_wait {
        writeln!(
            out,
            "{} on the {side} side {} in CLOSE_WAIT: the other side has closed, the {side}'s kernel has \
            acknowledged it, and now waits for the {side} application to close its socket. TCP never ends this state \
            by itself: it lasts until the application calls close(), holding a file descriptor all the while. Many of \
            them mean the {side} program forgets to close connections the peer has hung up.",
            plural(n, "socket", "sockets"),
            if n == 1 { "is" } else { "are" }
        )?;
    }
    if s.rst_connections > 0 {
        writeln!(
            out,
            "{} ended with RST instead: an abrupt close that skips TIME_WAIT, sent when a socket is closed \
            with unread data, or to refuse a connection.",
            plural(s.rst_connections, "connection", "connections")
        )?;
    }
    if s.keepalive_probes > 0 {
        writeln!(
            out,
            "{} seen: tiny segments a kernel sends on an idle connection to check the peer is still there \
            (the peer answers with an ACK). They mean connections were kept open between requests.",
            plural(s.keepalive_probes, "TCP keep-alive probe was", "TCP keep-alive probes were")
        )?;
    }

    // Why they ended.
    let causes: Vec<String> = CloseCause::ALL
        .into_iter()
        .filter(|c| s.close_causes.get(*c) > 0)
        .map(|c| format!("{} {}", plural(s.close_causes.get(c), "connection", "connections"), cause_in_words(c)))
        .collect();
    if !causes.is_empty() {
        writeln!(out, "\nWhy they ended. {}.", causes.join("; "))?;
    }

    // Suggestions.
    writeln!(out, "\nWhat this suggests. {}", report.verdict.headline)?;
    for f in &report.verdict.findings {
        writeln!(out, "  - {}", f.message)?;
    }
    Ok(())
}
