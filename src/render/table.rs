//! The human report: summary, socket-state tally, verdict with findings, and one row per connection.

use super::human_duration;
use crate::report::close_cause::CloseCause;
use crate::report::{ConnectionRecord, Report};
use crate::tcp_state::ALL_STATES;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use std::io::Write;

/// Connection rows shown in the table before eliding (JSON lists more).
const MAX_ROWS: usize = 200;

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// Writes the human-readable report.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let s = &report.summary;
    let src = &report.source;
    writeln!(
        out,
        "connscope — {} ({}{})",
        src.path,
        src.link_type,
        src.filter.as_ref().map(|f| format!(", filter `{f}`")).unwrap_or_default()
    )?;
    let p = &report.packets;
    let mut extra = Vec::new();
    if p.truncated > 0 {
        extra.push(format!("{} truncated", p.truncated));
    }
    if p.undecodable > 0 {
        extra.push(format!("{} undecodable", p.undecodable));
    }
    if p.ip_fragments > 0 {
        extra.push(format!("{} IP fragments rebuilt into {} segments", p.ip_fragments, p.reassembled));
    }
    if p.fragments_dropped > 0 {
        extra.push(format!("{} fragments dropped", p.fragments_dropped));
    }
    if p.after_close > 0 {
        extra.push(format!("{} after close", p.after_close));
    }
    writeln!(
        out,
        "{} packets, {} TCP, {} analysed{}",
        p.total,
        p.tcp,
        p.matched,
        if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) }
    )?;
    if let Some(cap) = &report.capture {
        let dropped = cap.dropped_by_kernel + cap.dropped_by_interface;
        writeln!(
            out,
            "capture: {} received, {} dropped by kernel, {} dropped by interface, {} — ended by {}",
            cap.received,
            cap.dropped_by_kernel,
            cap.dropped_by_interface,
            human_duration(cap.duration),
            cap.ended_by
        )?;
        if dropped > 0 {
            writeln!(out, "!! LOSSY CAPTURE: {dropped} packets were dropped; counts may be short.")?;
        }
        if let Some(cmd) = &cap.command {
            let status = cap.command_exit_status.map_or("killed by a signal".to_string(), |c| format!("exit status {c}"));
            writeln!(out, "command: {cmd} ({status})")?;
        }
        match (&cap.saved_to, &cap.save_error) {
            (Some(_), Some(error)) => {
                writeln!(out, "!! SAVE FAILED: {} of {} packets saved — {error}", cap.saved_packets.unwrap_or(0), cap.received)?;
            }
            (Some(path), None) => writeln!(out, "saved to {path}")?,
            (None, _) => {}
        }
        if let Some(k) = &cap.kernel_agreement {
            writeln!(
                out,
                "kernel: {} local sockets compared with the socket tables when the capture stopped: {} agree, {} disagree",
                k.compared, k.agree, k.disagree
            )?;
        }
    }
    if let Some(w) = &src.warning {
        writeln!(out, "!! {w}")?;
    }
    writeln!(out)?;

    let mut t = new_table();
    t.set_header(vec![
        "connections",
        "handshakes (complete)",
        "HTTP requests",
        "reused",
        "FIN first client/server/none",
        "RST",
        "keep-alive probes",
        "TLS hellos",
    ]);
    t.add_row(vec![
        Cell::new(s.connections),
        Cell::new(format!("{} ({})", s.handshakes, s.handshakes_completed)),
        Cell::new(s.http_requests.map_or("n/a (TLS)".to_string(), |n| n.to_string())),
        Cell::new(s.reused_connections),
        Cell::new(format!("{} / {} / {}", s.fin_first.client, s.fin_first.server, s.fin_first.none)),
        Cell::new(s.rst_connections),
        Cell::new(s.keepalive_probes),
        Cell::new(s.tls_client_hellos),
    ]);
    writeln!(out, "{t}")?;
    if s.tls_decrypted > 0 {
        writeln!(out, "decrypted {} of {} TLS connections", s.tls_decrypted, s.tls_connections)?;
    }

    let mut states = new_table();
    let shown: Vec<_> = ALL_STATES.iter().filter(|st| s.client_states.get(**st) + s.server_states.get(**st) > 0).collect();
    if !shown.is_empty() {
        let mut header = vec!["socket state at end".to_string()];
        header.extend(shown.iter().map(|st| st.name().to_string()));
        states.set_header(header);
        for (label, map) in [("client side", &s.client_states), ("server side", &s.server_states)] {
            let mut row = vec![Cell::new(label)];
            row.extend(shown.iter().map(|st| Cell::new(map.get(**st)).set_alignment(CellAlignment::Right)));
            states.add_row(row);
        }
        writeln!(out, "{states}")?;
    }

    if report.ports.len() > 1 {
        let mut ports = new_table();
        ports.set_header(vec![
            "server port",
            "connections",
            "handshakes",
            "HTTP requests",
            "reused",
            "FIN first client/server/none",
            "RST",
        ]);
        for p in &report.ports {
            ports.add_row(vec![
                Cell::new(p.port),
                Cell::new(p.connections),
                Cell::new(p.handshakes),
                Cell::new(p.http_requests),
                Cell::new(p.reused_connections),
                Cell::new(format!("{} / {} / {}", p.fin_first.client, p.fin_first.server, p.fin_first.none)),
                Cell::new(p.rst_connections),
            ]);
        }
        writeln!(out, "{ports}")?;
    }

    writeln!(out)?;
    let causes: Vec<String> =
        CloseCause::ALL.into_iter().filter(|c| s.close_causes.get(*c) > 0).map(|c| format!("{} {c}", s.close_causes.get(c))).collect();
    if !causes.is_empty() {
        writeln!(out, "Why connections ended: {}", causes.join(", "))?;
    }
    writeln!(out, "Verdict: {}", report.verdict.headline)?;
    for f in &report.verdict.findings {
        let mark = if f.severity == crate::report::verdict::Severity::Warning { "!" } else { "-" };
        writeln!(out, " {mark} [{}] {}", f.code, f.message)?;
    }
    writeln!(out)?;

    if !report.connections.is_empty() {
        writeln!(out, "{}", connections_table(&report.connections[..report.connections.len().min(MAX_ROWS)]))?;
        let hidden = (report.connections.len().saturating_sub(MAX_ROWS)) as u64 + report.connections_omitted;
        if hidden > 0 {
            writeln!(out, "… {hidden} more connections (use --format json, ndjson or csv for all of them)")?;
        }
    }
    Ok(())
}

/// The connection rows; the process columns appear when any process is known, the kernel's
/// states when any was read (live capture).
fn connections_table(conns: &[ConnectionRecord]) -> Table {
    let processes = conns.iter().any(|c| c.client_process.is_some() || c.server_process.is_some());
    let kernel = conns.iter().any(|c| c.kernel_client_state.is_some() || c.kernel_server_state.is_some());
    let mut t = new_table();
    let mut header = vec![
        "#",
        "client",
        "server",
        "start",
        "duration",
        "handshake",
        "requests",
        "FIN first",
        "RST",
        "close cause",
        "probes c/s",
        "client state",
        "server state",
    ];
    if kernel {
        header.extend(["kernel client", "kernel server"]);
    }
    if processes {
        header.extend(["client process", "server process"]);
    }
    t.set_header(header);
    for c in conns {
        let requests = match (c.http_requests, &c.tls) {
            (Some(n), Some(tls)) if tls.decrypted => format!("{n} (decrypted)"),
            (Some(n), Some(tls)) => format!("{n} + ~{} (TLS)", tls.exchanges_estimate), // a CONNECT tunnel
            (Some(n), None) => n.to_string(),
            (None, Some(tls)) => format!("~{} (TLS)", tls.exchanges_estimate),
            (None, None) => "-".to_string(),
        };
        let mut row = vec![
            Cell::new(c.id),
            Cell::new(c.client),
            Cell::new(c.server),
            Cell::new(format!("{:.3}", c.first_ts)),
            Cell::new(human_duration(c.duration)),
            Cell::new(c.handshake.name()),
            Cell::new(requests),
            Cell::new(c.fin_first.name()),
            Cell::new(c.rst_by.map_or("-", |s| s.name())),
            Cell::new(c.close_cause.name()),
            Cell::new(format!("{}/{}", c.keepalive_probes.client, c.keepalive_probes.server)),
            Cell::new(c.client_state.name()),
            Cell::new(c.server_state.name()),
        ];
        if kernel {
            row.extend([c.kernel_client_state, c.kernel_server_state].map(|s| Cell::new(s.map_or("-", |s| s.name()))));
        }
        if processes {
            row.extend(
                [&c.client_process, &c.server_process]
                    .map(|p| Cell::new(p.as_ref().map_or("-".to_string(), |p| format!("{} ({})", p.command, p.pid)))),
            );
        }
        t.add_row(row);
    }
    t
}
