//! The human report: summary, socket-state tally, verdict with findings, and one row per connection.

use super::fit::{self, Column};
use super::{human_duration, Layout};
use crate::report::addr;
use crate::report::close_cause::CloseCause;
use crate::report::{ConnectionRecord, Report};
use crate::tcp::state::{TcpState, ALL_STATES};
use comfy_table::Table;
use std::io::Write;

/// Connection rows shown in the table before eliding, unless `--all`.
pub const MAX_ROWS: usize = 200;

/// Writes the human-readable report, laid out as `layout` says.
pub fn write(report: &Report, layout: &Layout, out: &mut dyn Write) -> std::io::Result<()> {
    let s = &report.summary;
    let src = &report.source;
    // Prose is collected, then wrapped to the terminal's width when there is one.
    let mut prose = String::new();
    let say = |out: &mut dyn Write, prose: &mut String| -> std::io::Result<()> {
        match layout.width {
            Some(width) => out.write_all(fit::wrap_prose(prose, width).as_bytes())?,
            None => out.write_all(prose.as_bytes())?,
        }
        prose.clear();
        Ok(())
    };
    use std::fmt::Write as _;
    let _ = writeln!(
        prose,
        "connscope — {} ({}{})",
        src.path,
        src.link_type,
        src.filter.as_ref().map(|f| format!(", filter `{f}`")).unwrap_or_default()
    );
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
    let _ = writeln!(
        prose,
        "{} packets, {} TCP, {} analysed{}",
        p.total,
        p.tcp,
        p.matched,
        if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) }
    );
    if let Some(cap) = &report.capture {
        let dropped = cap.dropped_by_kernel + cap.dropped_by_interface;
        let _ = writeln!(
            prose,
            "capture: {} received, {} dropped by kernel, {} dropped by interface, {} — ended by {}",
            cap.received,
            cap.dropped_by_kernel,
            cap.dropped_by_interface,
            human_duration(cap.duration),
            cap.ended_by
        );
        if dropped > 0 {
            let _ = writeln!(prose, "!! LOSSY CAPTURE: {dropped} packets were dropped; counts may be short.");
        }
        if let Some(cmd) = &cap.command {
            let status = cap.command_exit_status.map_or("killed by a signal".to_string(), |c| format!("exit status {c}"));
            let _ = writeln!(prose, "command: {cmd} ({status})");
            if cap.command_exit_status != Some(0) {
                let _ = writeln!(
                    prose,
                    "!! the command failed ({status}); connscope's exit status stays 0: --assert 'capture.command_exit_status == 0' fails the run when the command does"
                );
            }
        }
        match (&cap.saved_to, &cap.save_error) {
            (Some(_), Some(error)) => {
                let _ = writeln!(prose, "!! SAVE FAILED: {} of {} packets saved — {error}", cap.saved_packets.unwrap_or(0), cap.received);
            }
            (Some(path), None) => {
                let _ = writeln!(prose, "saved to {path}");
            }
            (None, _) => {}
        }
        if let Some(k) = &cap.kernel_agreement {
            let _ = writeln!(
                prose,
                "kernel: {} local sockets compared with the socket tables when the capture stopped: {} agree, {} disagree",
                k.compared, k.agree, k.disagree
            );
        }
    }
    if let Some(w) = &src.warning {
        let _ = writeln!(prose, "!! {w}");
    }
    prose.push('\n');
    say(out, &mut prose)?;

    let summary = vec![
        Column::new("connections", vec![s.connections.to_string()]),
        Column::new("handshakes (complete)", vec![format!("{} ({})", s.handshakes, s.handshakes_completed)]),
        Column::new("HTTP requests", vec![s.http_requests.map_or("n/a (TLS)".to_string(), |n| n.to_string())]),
        Column::new("reused", vec![s.reused_connections.to_string()]),
        Column::new(
            "FIN first client/server/none",
            vec![format!("{} / {} / {}", s.fin_first.client, s.fin_first.server, s.fin_first.none)],
        ),
        Column::new("RST", vec![s.rst_connections.to_string()]),
        Column::new("keep-alive probes", vec![s.keepalive_probes.to_string()]),
        Column::new("TLS hellos", vec![s.tls_client_hellos.to_string()]),
    ];
    writeln!(out, "{}", fitted_or_transposed(summary, false, layout.width))?;
    if s.tls_decrypted > 0 {
        writeln!(out, "decrypted {} of {} TLS connections", s.tls_decrypted, s.tls_connections)?;
    }

    let shown: Vec<_> = ALL_STATES.iter().filter(|st| s.client_states.get(**st) + s.server_states.get(**st) > 0).collect();
    if !shown.is_empty() {
        let mut states = vec![Column::new("socket state at end", vec!["client side".to_string(), "server side".to_string()])];
        for st in &shown {
            let cells = [&s.client_states, &s.server_states].map(|m| m.get(**st).to_string()).to_vec();
            states.push(Column { right: true, ..Column::new(st.name(), cells) });
        }
        writeln!(out, "{}", fitted_or_transposed(states, true, layout.width))?;
    }

    if report.ports.len() > 1 {
        let column = |header: &str, cell: &dyn Fn(&crate::report::PortSummary) -> String| {
            Column::new(header, report.ports.iter().map(cell).collect())
        };
        let ports = vec![
            column("server port", &|p| p.port.to_string()),
            column("connections", &|p| p.connections.to_string()),
            column("handshakes", &|p| p.handshakes.to_string()),
            column("HTTP requests", &|p| p.http_requests.to_string()),
            column("reused", &|p| p.reused_connections.to_string()),
            column("FIN first client/server/none", &|p| format!("{} / {} / {}", p.fin_first.client, p.fin_first.server, p.fin_first.none)),
            column("RST", &|p| p.rst_connections.to_string()),
        ];
        match layout.width {
            None => writeln!(out, "{}", fit::table(&ports, false))?,
            Some(width) => {
                let (table, dropped) = fit::fit(ports, width, &["handshakes", "RST", "connections"]);
                writeln!(out, "{table}")?;
                if let Some(note) = fit::left_out_note(&dropped) {
                    writeln!(out, "{}", fit::wrap_prose(&note, width))?;
                }
            }
        }
    }

    prose.push('\n');
    let causes: Vec<String> =
        CloseCause::ALL.into_iter().filter(|c| s.close_causes.get(*c) > 0).map(|c| format!("{} {c}", s.close_causes.get(c))).collect();
    if !causes.is_empty() {
        let _ = writeln!(prose, "Why connections ended: {}", causes.join(", "));
    }
    let _ = writeln!(prose, "Verdict: {}", report.verdict.headline);
    for f in &report.verdict.findings {
        let mark = if f.severity == crate::report::verdict::Severity::Warning { "!" } else { "-" };
        let _ = writeln!(prose, " {mark} [{}] {}", f.code, f.message);
    }
    prose.push('\n');
    say(out, &mut prose)?;

    if let Some(id) = layout.conn {
        let _ = writeln!(prose, "Connection #{id} only (--conn): the totals above are the whole capture's.");
        say(out, &mut prose)?;
    }
    if !report.connections.is_empty() {
        let rows = if layout.all { report.connections.len() } else { report.connections.len().min(MAX_ROWS) };
        connections_table(&report.connections[..rows], report.source.start_ts, layout, out)?;
        let hidden = (report.connections.len() - rows) as u64 + report.connections_omitted;
        if hidden > 0 {
            let _ = if report.connections_omitted > 0 {
                writeln!(
                    prose,
                    "… {hidden} more connections: the table lists the first {rows} and --format json the first {} (--all lists every one in both; ndjson and csv stream every one)",
                    report.connections.len()
                )
            } else {
                writeln!(prose, "… {hidden} more connections: the table lists the first {rows} (--all lists every one; --format json, ndjson and csv have all of them)")
            };
            say(out, &mut prose)?;
        }
    }
    Ok(())
}

/// A table on one line per row when it fits `width`, with stacked headers when that fits, and
/// otherwise turned on its side: one row per column. When `labelled`, the first column names the
/// rows, and those names head the turned table's columns.
fn fitted_or_transposed(columns: Vec<Column>, labelled: bool, width: Option<usize>) -> Table {
    match width {
        None => fit::table(&columns, false),
        Some(w) if fit::table_width(&columns, false) <= w => fit::table(&columns, false),
        Some(w) if fit::table_width(&columns, true) <= w => fit::table(&columns, true),
        Some(_) => {
            let (names, data) = if labelled { (Some(&columns[0]), &columns[1..]) } else { (None, &columns[..]) };
            let mut turned = vec![Column::new(names.map_or("", |n| n.header.as_str()), data.iter().map(|c| c.header.clone()).collect())];
            for row in 0..data.first().map_or(0, |c| c.cells.len()) {
                let header = names.map_or(String::new(), |n| n.cells[row].clone());
                turned.push(Column { right: true, ..Column::new(&header, data.iter().map(|c| c.cells[row].clone()).collect()) });
            }
            fit::table(&turned, false)
        }
    }
}

/// Short forms of the socket states for narrow terminals, explained in a legend under the table.
fn short_state(state: TcpState) -> &'static str {
    match state {
        TcpState::CLOSED => "CL",
        TcpState::LISTEN => "LI",
        TcpState::SYN_SENT => "SS",
        TcpState::SYN_RECEIVED => "SR",
        TcpState::ESTABLISHED => "EST",
        TcpState::FIN_WAIT_1 => "FW1",
        TcpState::FIN_WAIT_2 => "FW2",
        TcpState::CLOSE_WAIT => "CW",
        TcpState::CLOSING => "CLG",
        TcpState::LAST_ACK => "LA",
        TcpState::TIME_WAIT => "TW",
    }
}

/// Headers of the state columns, which narrow terminals write in short forms.
const STATE_COLUMNS: [&str; 4] = ["client state", "server state", "kernel client", "kernel server"];

/// Columns a narrow terminal leaves out, the least useful first.
const DROP_ORDER: [&str; 12] = [
    "probes c/s",
    "handshake",
    "kernel client",
    "kernel server",
    "start",
    "RST",
    "FIN first",
    "duration",
    "client process",
    "server process",
    "close cause",
    "requests",
];

/// The connection rows; the process columns appear when any process is known, the kernel's
/// states when any was read (live capture). On a terminal (`layout.width`) the table is fitted: a
/// server common to every row is named once above it, then (while it is too wide) the states are
/// abbreviated with a legend, a client address common to every row is named once, and columns are
/// left out in [`DROP_ORDER`], each step said under the table.
fn connections_table(conns: &[ConnectionRecord], start: Option<f64>, layout: &Layout, out: &mut dyn Write) -> std::io::Result<()> {
    let processes = conns.iter().any(|c| c.client_process.is_some() || c.server_process.is_some());
    let kernel = conns.iter().any(|c| c.kernel_client_state.is_some() || c.kernel_server_state.is_some());
    let column = |header: &str, cell: &dyn Fn(&ConnectionRecord) -> String| Column::new(header, conns.iter().map(cell).collect());
    let state = |s: Option<TcpState>| s.map_or("-".to_string(), |s| s.name().to_string());
    let mut columns = vec![
        column("#", &|c| c.id.to_string()),
        column("client", &|c| addr::text(&c.client)),
        column("server", &|c| addr::text(&c.server)),
        column("start", &|c| layout.time.format(c.first_ts, start)),
        column("duration", &|c| human_duration(c.duration)),
        column("handshake", &|c| c.handshake.name().to_string()),
        column("requests", &|c| match (c.http_requests, &c.tls) {
            (Some(n), Some(tls)) if tls.decrypted => format!("{n} (decrypted)"),
            (Some(n), Some(tls)) => format!("{n} + ~{} (TLS)", tls.exchanges_estimate), // a CONNECT tunnel
            (Some(n), None) => n.to_string(),
            (None, Some(tls)) => format!("~{} (TLS)", tls.exchanges_estimate),
            (None, None) => "-".to_string(),
        }),
        column("FIN first", &|c| c.fin_first.name().to_string()),
        column("RST", &|c| c.rst_by.map_or("-", |s| s.name()).to_string()),
        column("close cause", &|c| c.close_cause.name().to_string()),
        column("probes c/s", &|c| format!("{}/{}", c.keepalive_probes.client, c.keepalive_probes.server)),
        column("client state", &|c| c.client_state.name().to_string()),
        column("server state", &|c| c.server_state.name().to_string()),
    ];
    if kernel {
        columns.push(column("kernel client", &|c| state(c.kernel_client_state)));
        columns.push(column("kernel server", &|c| state(c.kernel_server_state)));
    }
    if processes {
        let process =
            |p: &Option<crate::sockets::ProcessInfo>| p.as_ref().map_or("-".to_string(), |p| format!("{} ({})", p.command, p.pid));
        columns.push(column("client process", &|c| process(&c.client_process)));
        columns.push(column("server process", &|c| process(&c.server_process)));
    }
    let Some(width) = layout.width else {
        return fit::write_table(&columns, false, out);
    };

    let mut above = Vec::new();
    let mut below = Vec::new();
    let same = |f: &dyn Fn(&ConnectionRecord) -> String| {
        let first = f(&conns[0]);
        conns.iter().all(|c| f(c) == first)
    };
    if same(&|c| addr::text(&c.server)) {
        above.push(format!("server {} (every connection below)", conns[0].server));
        columns.retain(|c| c.header != "server");
    }
    if fit::table_width(&columns, true) > width {
        let mut used: Vec<TcpState> = Vec::new();
        let states = |c: &ConnectionRecord| [Some(c.client_state), Some(c.server_state), c.kernel_client_state, c.kernel_server_state];
        for column in columns.iter_mut().filter(|c| STATE_COLUMNS.contains(&c.header.as_str())) {
            let which = STATE_COLUMNS.iter().position(|h| *h == column.header).expect("a state column");
            column.cells = conns
                .iter()
                .map(|c| {
                    states(c)[which].map_or("-".to_string(), |s| {
                        if !used.contains(&s) {
                            used.push(s);
                        }
                        short_state(s).to_string()
                    })
                })
                .collect();
        }
        used.sort_by_key(|s| ALL_STATES.iter().position(|a| a == s));
        below.push(format!("states: {}", used.iter().map(|s| format!("{} {}", short_state(*s), s.name())).collect::<Vec<_>>().join(", ")));
    }
    if fit::table_width(&columns, true) > width && same(&|c| c.client.ip().to_string()) {
        above.push(format!("client {} (its ports below)", conns[0].client.ip()));
        if let Some(client) = columns.iter_mut().find(|c| c.header == "client") {
            client.header = "client port".to_string();
            client.cells = conns.iter().map(|c| c.client.port().to_string()).collect();
        }
    }
    for line in &above {
        writeln!(out, "{}", fit::wrap_prose(line, width))?;
    }
    let (columns, stacked, dropped) = fit::fitted(columns, width, &DROP_ORDER);
    fit::write_table(&columns, stacked, out)?;
    below.extend(fit::left_out_note(&dropped));
    for line in &below {
        writeln!(out, "{}", fit::wrap_prose(line, width))?;
    }
    Ok(())
}
