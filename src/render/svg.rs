//! `--svg FILE`: a self-contained SVG for slides: a timeline with one bar per connection over the
//! capture's time, coloured by who closed it, and below it the ladder of one connection.

use super::ladder::{arrow_text, Row, Trace};
use crate::report::{ConnectionRecord, FinFirst, Report};
use crate::wire::Side;
use std::io::Write;

/// Bars drawn in the timeline; later connections are counted in a note.
const MAX_BARS: usize = 40;
const WIDTH: f64 = 960.0;
const MARGIN: f64 = 40.0;
/// Left edge of the timeline's bars (labels sit before it).
const BAR_X: f64 = 200.0;
const BAR_H: f64 = 14.0;
const ROW_H: f64 = 20.0;
/// Height of one segment in the ladder.
const STEP: f64 = 34.0;
/// Height of a line of the verdict under the title.
const TITLE_LINE_H: f64 = 18.0;
/// Characters of the verdict per line: at 14 px a DejaVu Sans character averages under 8 px, so
/// 100 of them stay inside the 880 px between the margins.
const TITLE_CHARS: usize = 100;

/// The verdict's headline in lines that fit the picture's width, broken between words.
fn title_lines(headline: &str) -> Vec<String> {
    super::fit::wrap_prose(headline, TITLE_CHARS).lines().map(|l| l.trim_start().to_string()).collect()
}

/// Colour of a connection by how it ended.
fn colour(c: &ConnectionRecord) -> &'static str {
    match (c.rst_by, c.fin_first) {
        (Some(_), _) => "#d62728",
        (None, FinFirst::Client) => "#1f77b4",
        (None, FinFirst::Server) => "#ff7f0e",
        (None, FinFirst::None) => "#9e9e9e",
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes the SVG: the timeline of `report`'s connections, then the ladder of `trace` when given.
pub fn write(report: &Report, trace: Option<&Trace>, out: &mut dyn Write) -> std::io::Result<()> {
    let conns = &report.connections[..report.connections.len().min(MAX_BARS)];
    let headline = title_lines(&report.verdict.headline);
    let timeline_h = 70.0 + headline.len() as f64 * TITLE_LINE_H + conns.len() as f64 * ROW_H + 40.0;
    let ladder_rows = trace.map_or(0, |t| t.rows().count());
    let ladder_h = if trace.is_some() { 90.0 + ladder_rows as f64 * STEP } else { 0.0 };
    let height = MARGIN + timeline_h + ladder_h + MARGIN;
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">"#
    )?;
    writeln!(
        out,
        r##"<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>"##
    )?;
    writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#)?;

    // Timeline.
    let end = conns.iter().map(|c| c.last_ts).fold(0.0_f64, f64::max).max(1e-3);
    let span = WIDTH - MARGIN - BAR_X;
    let x = |t: f64| BAR_X + t / end * span;
    let mut y = MARGIN;
    writeln!(out, r#"<text x="{MARGIN}" y="{y}" font-size="18" font-weight="bold">Connections over time</text>"#)?;
    for line in &headline {
        y += TITLE_LINE_H;
        writeln!(out, r#"<text x="{MARGIN}" y="{y}" font-size="14">{}</text>"#, esc(line))?;
    }
    y += 24.0;
    let legend = [
        ("#1f77b4", "client closed first"),
        ("#ff7f0e", "server closed first"),
        ("#d62728", "reset (RST)"),
        ("#9e9e9e", "still open / no FIN"),
    ];
    for (i, (fill, label)) in legend.iter().enumerate() {
        let lx = MARGIN + i as f64 * 190.0;
        writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="14" height="14" fill="{fill}"/><text x="{}" y="{}">{label}</text>"#,
            y - 11.0,
            lx + 20.0,
            y + 1.0
        )?;
    }
    y += 20.0;
    for c in conns {
        let (x0, x1) = (x(c.first_ts), x(c.last_ts).max(x(c.first_ts) + 2.0));
        let requests = c.http_requests.map_or(String::new(), |n| format!(", {n} req"));
        writeln!(out, r#"<text x="{MARGIN}" y="{}">#{} {}</text>"#, y + 11.0, c.id, esc(&c.client.to_string()))?;
        writeln!(
            out,
            r#"<rect x="{x0:.1}" y="{y}" width="{:.1}" height="{BAR_H}" rx="3" fill="{}"><title>#{} {} → {}{requests}, FIN first: {}, ends {} / {}</title></rect>"#,
            x1 - x0,
            colour(c),
            c.id,
            esc(&c.client.to_string()),
            esc(&c.server.to_string()),
            c.fin_first.name(),
            c.client_state,
            c.server_state
        )?;
        y += ROW_H;
    }
    if report.connections.len() > conns.len() || report.connections_omitted > 0 {
        let more = (report.connections.len() - conns.len()) as u64 + report.connections_omitted;
        writeln!(out, r##"<text x="{MARGIN}" y="{}" fill="#555">… {more} more connections not drawn</text>"##, y + 11.0)?;
        y += ROW_H;
    }
    // Time axis.
    writeln!(out, r##"<line x1="{BAR_X}" y1="{y}" x2="{}" y2="{y}" stroke="#333"/>"##, WIDTH - MARGIN)?;
    for i in 0..=4 {
        let t = end * f64::from(i) / 4.0;
        writeln!(out, r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#, x(t), y + 16.0, super::human_duration(t))?;
    }
    y = MARGIN + timeline_h;

    // Ladder.
    let Some(trace) = trace else {
        return writeln!(out, "</svg>");
    };
    let (cx, sx) = (MARGIN + 260.0, WIDTH - MARGIN - 200.0);
    let record = report.connections.iter().find(|c| c.id == trace.id);
    let (client, server) = record.map_or(("client".to_string(), "server".to_string()), |c| (c.client.to_string(), c.server.to_string()));
    writeln!(out, r#"<text x="{MARGIN}" y="{y}" font-size="18" font-weight="bold">Ladder of connection #{}</text>"#, trace.id)?;
    y += 30.0;
    writeln!(
        out,
        r#"<text x="{cx}" y="{y}" text-anchor="middle" font-weight="bold">client {}</text><text x="{sx}" y="{y}" text-anchor="middle" font-weight="bold">server {}</text>"#,
        esc(&client),
        esc(&server)
    )?;
    writeln!(out, r##"<text x="{MARGIN}" y="{y}" font-size="11" fill="#555">ms</text>"##)?;
    let top = y + 10.0;
    let bottom = top + 20.0 + ladder_rows as f64 * STEP;
    writeln!(
        out,
        r##"<line x1="{cx}" y1="{top}" x2="{cx}" y2="{bottom}" stroke="#888" stroke-width="2"/><line x1="{sx}" y1="{top}" x2="{sx}" y2="{bottom}" stroke="#888" stroke-width="2"/>"##
    )?;
    let mut y = top + 20.0;
    let mut shown = (crate::tcp::state::TcpState::CLOSED, crate::tcp::state::TcpState::CLOSED);
    for row in trace.rows() {
        let kept = match row {
            Row::Segment(kept) => kept,
            Row::Skipped(count) => {
                writeln!(
                    out,
                    r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">⋮ {count} segments skipped ⋮</text>"##,
                    (cx + sx) / 2.0,
                    y + 14.0
                )?;
                y += STEP;
                continue;
            }
        };
        let n = &kept.note;
        let (from, to, fill) = match n.side {
            Side::Client => (cx, sx, "#1f77b4"),
            Side::Server => (sx, cx, "#ff7f0e"),
        };
        // A retransmission or a duplicate ACK: red and dashed, the mark in the label.
        let (fill, dash) = if kept.mark.is_some() { ("#d62728", r#" stroke-dasharray="6 4""#) } else { (fill, "") };
        let (text, label) = arrow_text(kept);
        let label = label.map_or(String::new(), |l| format!(r#" <tspan font-weight="bold">{}</tspan>"#, esc(&l)));
        writeln!(out, r##"<text x="{MARGIN}" y="{}" font-size="11" fill="#555">{:.3}</text>"##, y + 14.0, (n.ts - trace.start()) * 1000.0)?;
        writeln!(
            out,
            r#"<line x1="{from}" y1="{}" x2="{to}" y2="{}" stroke="{fill}" stroke-width="2"{dash} marker-end="url(#head)"/>"#,
            y + 6.0,
            y + 22.0
        )?;
        writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" font-family="DejaVu Sans Mono, monospace" font-size="12">{}{label}</text>"#,
            (cx + sx) / 2.0,
            y + 8.0,
            esc(&text)
        )?;
        if n.client_state != shown.0 {
            writeln!(
                out,
                r##"<text x="{}" y="{}" text-anchor="end" fill="#7b1fa2" font-weight="bold">{}</text>"##,
                cx - 10.0,
                y + 20.0,
                n.client_state
            )?;
        }
        if n.server_state != shown.1 {
            writeln!(out, r##"<text x="{}" y="{}" fill="#7b1fa2" font-weight="bold">{}</text>"##, sx + 10.0, y + 20.0, n.server_state)?;
        }
        shown = (n.client_state, n.server_state);
        y += STEP;
    }
    writeln!(out, "</svg>")
}
