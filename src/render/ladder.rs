//! The ladder (sequence) diagram of a connection: time on the left, the client's and the server's
//! columns, one arrow per segment with its flags, sequence and acknowledgement numbers relative to
//! the initial sequence numbers, payload length and a short label (`GET /hello`, `200 OK`,
//! `keep-alive probe`), and each side's socket state written beside the arrow where it changes.
//!
//! [`Recorder`] keeps the segments of the chosen connections as the pipeline runs: the first
//! [`HEAD`] and the last [`TAIL`] of each, counting the ones between, so memory stays small on
//! long connections; [`write()`] draws them.

use crate::report::Report;
use crate::tcp::state::TcpState;
use crate::tcp::SegmentNote;
use crate::wire::Side;
use std::collections::VecDeque;
use std::io::Write;
use std::ops::RangeInclusive;

/// Segments drawn from the start of a connection.
pub const HEAD: usize = 30;
/// Segments drawn from its end.
pub const TAIL: usize = 10;

/// The recorded segments of one connection.
#[derive(Clone, Debug)]
pub struct Trace {
    pub id: u64,
    pub head: Vec<SegmentNote>,
    /// Segments between `head` and `tail` that are not kept.
    pub skipped: u64,
    pub tail: VecDeque<SegmentNote>,
}

impl Trace {
    /// The kept segments in order, with `None` where the skipped ones were.
    pub fn rows(&self) -> impl Iterator<Item = Option<&SegmentNote>> {
        let gap = (self.skipped > 0).then_some(None);
        self.head.iter().map(Some).chain(gap).chain(self.tail.iter().map(Some))
    }

    /// Time of the connection's first segment.
    pub fn start(&self) -> f64 {
        self.head.first().map_or(0.0, |n| n.ts)
    }
}

/// Records the segments of the connections whose ids are in a range.
pub struct Recorder {
    ids: RangeInclusive<u64>,
    traces: Vec<Trace>,
}

impl Recorder {
    /// Records connections `ids` (ids count connections in the order they opened, from 1).
    pub fn new(ids: RangeInclusive<u64>) -> Recorder {
        Recorder { ids, traces: Vec::new() }
    }

    /// Takes one segment of connection `id`.
    pub fn segment(&mut self, id: u64, note: &SegmentNote) {
        if !self.ids.contains(&id) {
            return;
        }
        let trace = match self.traces.iter().position(|t| t.id == id) {
            Some(i) => &mut self.traces[i],
            None => {
                self.traces.push(Trace { id, head: Vec::new(), skipped: 0, tail: VecDeque::new() });
                self.traces.last_mut().expect("just pushed")
            }
        };
        if trace.head.len() < HEAD {
            trace.head.push(note.clone());
            return;
        }
        if trace.tail.len() == TAIL {
            trace.tail.pop_front();
            trace.skipped += 1;
        }
        trace.tail.push_back(note.clone());
    }

    /// The traces, in the order the connections opened.
    pub fn traces(&self) -> &[Trace] {
        &self.traces
    }
}

/// Width of the arrow between the two columns.
const ARROW: usize = 50;
/// Width of a state column (`SYN_RECEIVED` is the longest name).
const STATE: usize = 12;

/// ANSI styles, empty when colour is off.
struct Style {
    client: &'static str,
    server: &'static str,
    state: &'static str,
    label: &'static str,
    dim: &'static str,
    reset: &'static str,
}

impl Style {
    fn new(color: bool) -> Style {
        if color {
            Style { client: "\x1b[36m", server: "\x1b[33m", state: "\x1b[35m", label: "\x1b[1m", dim: "\x1b[2m", reset: "\x1b[0m" }
        } else {
            Style { client: "", server: "", state: "", label: "", dim: "", reset: "" }
        }
    }
}

/// The text on a segment's arrow: `P. seq=1 ack=1 len=84  GET /hello`.
pub fn arrow_text(n: &SegmentNote) -> (String, Option<String>) {
    let mut text = format!("{} seq={}", n.flags.short(), n.rel_seq);
    if let Some(ack) = n.rel_ack {
        text.push_str(&format!(" ack={ack}"));
    }
    if n.len > 0 {
        text.push_str(&format!(" len={}", n.len));
    }
    let label = if n.keepalive { Some("keep-alive probe".to_string()) } else { n.label.clone() };
    (text, label)
}

/// Draws the traces, each under a heading from the report's record of that connection.
pub fn write(traces: &[Trace], report: &Report, color: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let st = Style::new(color);
    for (i, trace) in traces.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let record = report.connections.iter().find(|c| c.id == trace.id);
        let (client, server) =
            record.map_or(("client".to_string(), "server".to_string()), |c| (c.client.to_string(), c.server.to_string()));
        let total = trace.head.len() as u64 + trace.skipped + trace.tail.len() as u64;
        write!(out, "connection #{}: {client} → {server}, {total} segments", trace.id)?;
        if let Some(c) = record {
            let closed = match c.fin_first.name() {
                "none" => "no FIN".to_string(),
                side => format!("{side} closed first"),
            };
            write!(out, ", {closed}; client ends {}, server {}", c.client_state, c.server_state)?;
        }
        writeln!(out)?;
        writeln!(out, "{}{:>10}  {:>STATE$} │{:ARROW$}│ server{}", st.dim, "ms", "client", "", st.reset)?;
        let mut shown = (TcpState::CLOSED, TcpState::CLOSED);
        for row in trace.rows() {
            let Some(n) = row else {
                let gap = format!("⋮ {} segments skipped ⋮", trace.skipped);
                writeln!(out, "{:>10}  {:>STATE$} │{}{gap:^ARROW$}{}│", "", "", st.dim, st.reset)?;
                continue;
            };
            let time = format!("{:.3}", (n.ts - trace.start()) * 1000.0);
            let cstate = if n.client_state != shown.0 { n.client_state.name() } else { "" };
            let sstate = if n.server_state != shown.1 { n.server_state.name() } else { "" };
            shown = (n.client_state, n.server_state);
            let (text, label) = arrow_text(n);
            let mut body = format!(" {text} ");
            if let Some(l) = &label {
                body.push_str(&format!("{} ", l));
            }
            let fill = ARROW.saturating_sub(body.chars().count() + 3).max(1);
            let (colour, arrow) = match n.side {
                Side::Client => (st.client, format!("──{body}{}▶", "─".repeat(fill))),
                Side::Server => (st.server, format!("◀{}{body}──", "─".repeat(fill))),
            };
            let arrow = match &label {
                Some(l) if !st.label.is_empty() => arrow.replacen(l.as_str(), &format!("{}{l}{}{colour}", st.label, st.reset), 1),
                _ => arrow,
            };
            write!(out, "{time:>10}  {}{cstate:>STATE$}{} │{colour}{arrow}{}│", st.state, st.reset, st.reset)?;
            if sstate.is_empty() {
                writeln!(out)?;
            } else {
                writeln!(out, " {}{sstate}{}", st.state, st.reset)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    fn note(ts: f64) -> SegmentNote {
        SegmentNote {
            ts,
            side: Side::Client,
            flags: TcpFlags { syn: false, ack: true, fin: false, rst: false, psh: false },
            rel_seq: 1,
            rel_ack: Some(1),
            len: 0,
            keepalive: false,
            client_state: TcpState::ESTABLISHED,
            server_state: TcpState::ESTABLISHED,
            label: None,
        }
    }

    #[test]
    fn test_recorder_keeps_head_and_tail_and_counts_the_middle() {
        let mut r = Recorder::new(2..=2);
        for i in 0..100 {
            r.segment(1, &note(f64::from(i)));
            r.segment(2, &note(f64::from(i)));
        }
        let [trace] = r.traces() else { panic!("only connection 2 is recorded") };
        assert_eq!(trace.id, 2);
        assert_eq!((trace.head.len(), trace.skipped, trace.tail.len()), (HEAD, 100 - (HEAD + TAIL) as u64, TAIL));
        assert_eq!(trace.tail.front().unwrap().ts, 90.0);
        assert_eq!(trace.rows().filter(|r| r.is_none()).count(), 1, "one elision marker");
    }

    #[test]
    fn test_long_connection_is_drawn_elided_with_the_count() {
        let mut r = Recorder::new(1..=1);
        for i in 0..50 {
            r.segment(1, &note(f64::from(i)));
        }
        let mut out = Vec::new();
        let report = crate::report::ReportBuilder::new(0).finish(
            crate::report::SourceInfo {
                kind: crate::report::SourceKind::File,
                path: String::new(),
                filter: None,
                link_type: String::new(),
                start_ts: None,
                warning: None,
            },
            Default::default(),
            None,
        );
        write(r.traces(), &report, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("⋮ 10 segments skipped ⋮"), "{text}");
        assert_eq!(text.lines().count(), 2 + HEAD + 1 + TAIL);
    }
}
