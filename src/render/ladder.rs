//! The ladder (sequence) diagram of a connection: time on the left, the client's and the server's
//! columns, one arrow per segment with its flags, sequence and acknowledgement numbers relative to
//! the initial sequence numbers, payload length and a short label (`GET /hello`, `200 OK`,
//! `keep-alive probe`), and each side's socket state written beside the arrow where it changes.
//!
//! [`Recorder`] keeps the segments of the chosen connections as the pipeline runs: the first
//! [`HEAD`] and the last [`TAIL`] of each, and between them every segment that carries a request or a
//! response line, a FIN or an RST (up to [`MAX_MIDDLE`]), counting the others, so memory stays small
//! on long connections; [`write()`] draws them. The recorder also marks, from the relative sequence
//! and acknowledgement numbers of every segment it sees (kept or not), the retransmissions and the
//! duplicate ACKs, as tshark's `tcp.analysis` flags name them.

use super::{Layout, TimeStyle};
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
/// Segments kept between the head and the tail because they carry a request, a response, a FIN or
/// an RST; past this many such segments are skipped too (and counted).
pub const MAX_MIDDLE: usize = 10_000;

/// What the ladder flags on a segment, found from the sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Data (or a SYN or FIN) the same side had sent before: sent again.
    Retransmission,
    /// A pure ACK acknowledging what the side's previous ACK did (the n-th repeat): the receiver
    /// saw data beyond a hole, or the sender's segment was lost.
    DuplicateAck(u32),
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mark::Retransmission => f.write_str("retransmission"),
            Mark::DuplicateAck(n) => write!(f, "dup ACK #{n}"),
        }
    }
}

/// A recorded segment and its mark.
#[derive(Clone, Debug)]
pub struct Kept {
    pub note: SegmentNote,
    pub mark: Option<Mark>,
}

/// A row of the ladder: a segment, or a count of segments not kept.
#[derive(Clone, Copy, Debug)]
pub enum Row<'a> {
    Segment(&'a Kept),
    Skipped(u64),
}

/// The recorded segments of one connection.
#[derive(Clone, Debug)]
pub struct Trace {
    pub id: u64,
    head: Vec<Kept>,
    /// Segments kept between head and tail, each with the number skipped before it.
    middle: Vec<(u64, Kept)>,
    /// Segments skipped since the last one kept in the middle.
    gap: u64,
    tail: VecDeque<Kept>,
    /// Segments not kept, in all.
    pub skipped: u64,
    marks: Marker,
}

impl Trace {
    fn new(id: u64) -> Trace {
        Trace { id, head: Vec::new(), middle: Vec::new(), gap: 0, tail: VecDeque::new(), skipped: 0, marks: Marker::default() }
    }

    /// The rows in order: the kept segments, with the counts of skipped ones where they were.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        let middle =
            self.middle.iter().flat_map(|(gap, kept)| (*gap > 0).then_some(Row::Skipped(*gap)).into_iter().chain([Row::Segment(kept)]));
        let gap = (self.gap > 0).then_some(Row::Skipped(self.gap));
        self.head.iter().map(Row::Segment).chain(middle).chain(gap).chain(self.tail.iter().map(Row::Segment))
    }

    /// The kept segments in order.
    pub fn segments(&self) -> impl Iterator<Item = &Kept> {
        self.rows().filter_map(|row| match row {
            Row::Segment(kept) => Some(kept),
            Row::Skipped(_) => None,
        })
    }

    /// Time of the connection's first segment.
    pub fn start(&self) -> f64 {
        self.head.first().map_or(0.0, |k| k.note.ts)
    }

    /// A segment leaves the tail: kept when it must not be hidden, counted otherwise.
    fn pass(&mut self, kept: Kept) {
        let n = &kept.note;
        let telling = n.label.is_some() || n.flags.fin || n.flags.rst || kept.mark.is_some();
        if telling && self.middle.len() < MAX_MIDDLE {
            self.middle.push((std::mem::take(&mut self.gap), kept));
        } else {
            self.gap += 1;
            self.skipped += 1;
        }
    }
}

/// Follows both sides' sequence and acknowledgement numbers to mark segments.
#[derive(Clone, Debug, Default)]
struct Marker {
    /// Per side (client, server): the end of the highest sequence sent (SYN and FIN count one).
    sent_to: [Option<u32>; 2],
    /// Per side: the sequence and acknowledgement numbers of its last pure ACK, and how many repeats.
    last_ack: [Option<(u32, u32, u32)>; 2],
    /// Per side: its last segment was a keep-alive probe (the answer repeats an ACK: not a duplicate).
    probed: [bool; 2],
}

impl Marker {
    fn mark(&mut self, n: &SegmentNote) -> Option<Mark> {
        let (own, peer) = match n.side {
            Side::Client => (0, 1),
            Side::Server => (1, 0),
        };
        let span = n.len + u32::from(n.flags.syn) + u32::from(n.flags.fin);
        let end = n.rel_seq.wrapping_add(span);
        let mut mark = None;
        if span > 0 && !n.keepalive {
            if let Some(sent) = self.sent_to[own] {
                // Sequence space is compared modulo 2^32 (RFC 793: "less than" across the wrap).
                if (sent.wrapping_sub(n.rel_seq) as i32) > 0 {
                    mark = Some(Mark::Retransmission);
                }
            }
            if self.sent_to[own].is_none_or(|sent| (end.wrapping_sub(sent) as i32) > 0) {
                self.sent_to[own] = Some(end);
            }
        }
        let pure_ack = span == 0 && !n.flags.rst && !n.keepalive;
        match (pure_ack, n.rel_ack) {
            (true, Some(ack)) => {
                // RFC 5681's duplicate ACK: no data, the same acknowledgement again, while the peer
                // has data outstanding beyond it. (The window is not compared: the note has none,
                // and with SACK Linux counts these ACKs whatever their window, RFC 6675.)
                let outstanding = self.sent_to[peer].is_some_and(|sent| (sent.wrapping_sub(ack) as i32) > 0);
                let repeats = match self.last_ack[own] {
                    Some((seq, last, count)) if seq == n.rel_seq && last == ack && outstanding && !self.probed[peer] => count + 1,
                    _ => 0,
                };
                self.last_ack[own] = Some((n.rel_seq, ack, repeats));
                if repeats > 0 {
                    mark = Some(Mark::DuplicateAck(repeats));
                }
            }
            _ => self.last_ack[own] = None,
        }
        self.probed[own] = n.keepalive;
        mark
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
                self.traces.push(Trace::new(id));
                self.traces.last_mut().expect("just pushed")
            }
        };
        let kept = Kept { mark: trace.marks.mark(note), note: note.clone() };
        if trace.head.len() < HEAD {
            trace.head.push(kept);
            return;
        }
        if trace.tail.len() == TAIL {
            if let Some(oldest) = trace.tail.pop_front() {
                trace.pass(oldest);
            }
        }
        trace.tail.push_back(kept);
    }

    /// The traces, in the order the connections opened.
    pub fn traces(&self) -> &[Trace] {
        &self.traces
    }
}

/// Width of the arrow between the two columns.
const ARROW: usize = 50;
/// The narrowest arrow a narrow terminal gets.
const MIN_ARROW: usize = 30;
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

/// The text on a segment's arrow: `P. seq=1 ack=1 len=84`, and its label: `GET /hello`,
/// `keep-alive probe`, `retransmission`, `dup ACK #1`.
pub fn arrow_text(kept: &Kept) -> (String, Option<String>) {
    let n = &kept.note;
    let mut text = format!("{} seq={}", n.flags.short(), n.rel_seq);
    if let Some(ack) = n.rel_ack {
        text.push_str(&format!(" ack={ack}"));
    }
    if n.len > 0 {
        text.push_str(&format!(" len={}", n.len));
    }
    let label = if n.keepalive { Some("keep-alive probe".to_string()) } else { n.label.clone() };
    let label = match (label, kept.mark) {
        (Some(label), Some(mark)) => Some(format!("{label} [{mark}]")),
        (None, Some(mark)) => Some(format!("[{mark}]")),
        (label, None) => label,
    };
    (text, label)
}

/// The text written on a segment's arrow: ` P. seq=1 ack=1 len=84 GET /hello `.
fn arrow_body(kept: &Kept) -> String {
    let (text, label) = arrow_text(kept);
    match label {
        Some(label) => format!(" {text} {label} "),
        None => format!(" {text} "),
    }
}

/// Draws the traces, each under a heading from the report's record of that connection. Times are
/// milliseconds since the connection's first segment, or dates and times with `--time abs|utc`.
/// On a terminal (`layout.width`) the arrows are shortened (to no less than 30 columns, and no
/// less than the longest label on one needs) so that a line fits, and the heading wraps.
pub fn write(traces: &[Trace], report: &Report, layout: &Layout, color: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let time = layout.time;
    let st = Style::new(color);
    for (i, trace) in traces.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let record = report.connections.iter().find(|c| c.id == trace.id);
        let (client, server) =
            record.map_or(("client".to_string(), "server".to_string()), |c| (c.client.to_string(), c.server.to_string()));
        let total = trace.segments().count() as u64 + trace.skipped;
        let mut heading = format!("connection #{}: {client} → {server}, {total} segments", trace.id);
        if let Some(c) = record {
            let closed = match c.fin_first.name() {
                "none" => "no FIN".to_string(),
                side => format!("{side} closed first"),
            };
            heading.push_str(&format!(", {closed}; client ends {}, server {}", c.client_state, c.server_state));
        }
        match layout.width {
            Some(width) => writeln!(out, "{}", super::fit::wrap_prose(&heading, width))?,
            None => writeln!(out, "{heading}")?,
        }
        let clock = |n: &SegmentNote| time.epoch(n.ts).unwrap_or_else(|| format!("{:.3}", (n.ts - trace.start()) * 1000.0));
        let tw = trace.segments().map(|k| clock(&k.note).chars().count()).max().unwrap_or(0).max(10);
        let unit = if time == TimeStyle::Rel { "ms" } else { "time" };
        // On a terminal: what is left of its width for the arrows, once the time, the states and
        // the bars are counted, but no less than the longest label needs (the bars stay aligned).
        // An arrow is its head, its two-dash tail, its body and at least one dash of fill.
        let needed = trace.segments().map(|k| arrow_body(k).chars().count() + 4).max().unwrap_or(0);
        let arrow_width =
            layout.width.map_or(ARROW, |w| w.saturating_sub(tw + 2 + STATE + 2 + 1 + 1 + STATE).max(needed).clamp(MIN_ARROW, ARROW));
        writeln!(out, "{}{unit:>tw$}  {:>STATE$} │{:arrow_width$}│ server{}", st.dim, "client", "", st.reset)?;
        let mut shown = (TcpState::CLOSED, TcpState::CLOSED);
        for row in trace.rows() {
            let kept = match row {
                Row::Segment(kept) => kept,
                Row::Skipped(count) => {
                    let gap = format!("⋮ {count} segments skipped ⋮");
                    writeln!(out, "{:>tw$}  {:>STATE$} │{}{gap:^arrow_width$}{}│", "", "", st.dim, st.reset)?;
                    continue;
                }
            };
            let n = &kept.note;
            let time = clock(n);
            let cstate = if n.client_state != shown.0 { n.client_state.name() } else { "" };
            let sstate = if n.server_state != shown.1 { n.server_state.name() } else { "" };
            shown = (n.client_state, n.server_state);
            let (_, label) = arrow_text(kept);
            let body = arrow_body(kept);
            let fill = arrow_width.saturating_sub(body.chars().count() + 3).max(1);
            let (colour, arrow) = match n.side {
                Side::Client => (st.client, format!("──{body}{}▶", "─".repeat(fill))),
                Side::Server => (st.server, format!("◀{}{body}──", "─".repeat(fill))),
            };
            let arrow = match &label {
                Some(l) if !st.label.is_empty() => arrow.replacen(l.as_str(), &format!("{}{l}{}{colour}", st.label, st.reset), 1),
                _ => arrow,
            };
            write!(out, "{time:>tw$}  {}{cstate:>STATE$}{} │{colour}{arrow}{}│", st.state, st.reset, st.reset)?;
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

    const ACK: TcpFlags = TcpFlags { syn: false, ack: true, fin: false, rst: false, psh: false };

    /// The `i`-th of a client's stream of 10-byte data segments.
    fn note(i: u32) -> SegmentNote {
        SegmentNote {
            ts: f64::from(i),
            side: Side::Client,
            flags: ACK,
            rel_seq: 1 + 10 * i,
            rel_ack: Some(1),
            len: 10,
            keepalive: false,
            client_state: TcpState::ESTABLISHED,
            server_state: TcpState::ESTABLISHED,
            label: None,
        }
    }

    fn segment(side: Side, seq: u32, ack: u32, len: u32) -> SegmentNote {
        SegmentNote { side, rel_seq: seq, rel_ack: Some(ack), len, ..note(0) }
    }

    fn empty_report() -> Report {
        crate::report::ReportBuilder::new(0).finish(
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
        )
    }

    #[test]
    fn test_recorder_keeps_head_and_tail_and_counts_the_middle() {
        let mut r = Recorder::new(2..=2);
        for i in 0..100 {
            r.segment(1, &note(i));
            r.segment(2, &note(i));
        }
        let [trace] = r.traces() else { panic!("only connection 2 is recorded") };
        assert_eq!(trace.id, 2);
        assert_eq!((trace.head.len(), trace.skipped, trace.tail.len()), (HEAD, 100 - (HEAD + TAIL) as u64, TAIL));
        assert_eq!(trace.tail.front().unwrap().note.ts, 90.0);
        assert_eq!(trace.rows().filter(|r| matches!(r, Row::Skipped(_))).count(), 1, "one elision marker");
    }

    #[test]
    fn test_recorder_never_skips_a_request_a_response_a_fin_or_an_rst() {
        let mut r = Recorder::new(1..=1);
        for i in 0..100 {
            let mut n = note(i);
            match i {
                40 => n.label = Some("GET /late".to_string()),
                41 => n.label = Some("200 OK".to_string()),
                50 => n.flags.fin = true,
                51 => n.flags.rst = true,
                _ => {}
            }
            r.segment(1, &n);
        }
        let trace = &r.traces()[0];
        let rows: Vec<String> = trace
            .rows()
            .map(|row| match row {
                Row::Segment(k) => k.note.ts.to_string(),
                Row::Skipped(n) => format!("skip {n}"),
            })
            .collect();
        let middle = &rows[HEAD..rows.len() - TAIL];
        assert_eq!(middle, ["skip 10", "40", "41", "skip 8", "50", "51", "skip 38"]);
        assert_eq!(trace.skipped, 56);
    }

    #[test]
    fn test_marker_flags_resent_data_and_repeated_acks_with_data_outstanding() {
        let mut m = Marker::default();
        let server = |seq, len| segment(Side::Server, seq, 85, len);
        let client_ack = |ack| segment(Side::Client, 85, ack, 0);
        assert_eq!(m.mark(&server(1, 1448)), None);
        assert_eq!(m.mark(&client_ack(1449)), None);
        assert_eq!(m.mark(&server(1449, 1448)), None, "lost after it was captured");
        assert_eq!(m.mark(&server(2897, 1448)), None);
        assert_eq!(m.mark(&client_ack(1449)), Some(Mark::DuplicateAck(1)));
        assert_eq!(m.mark(&server(4345, 1448)), None);
        assert_eq!(m.mark(&client_ack(1449)), Some(Mark::DuplicateAck(2)));
        assert_eq!(m.mark(&server(1449, 1448)), Some(Mark::Retransmission));
        assert_eq!(m.mark(&client_ack(5793)), None, "the hole is filled: a new ACK");
        // Nothing outstanding: a repeated ACK (a window update) is not a duplicate.
        assert_eq!(m.mark(&client_ack(5793)), None);
    }

    #[test]
    fn test_the_answer_to_a_keepalive_probe_is_not_a_duplicate_ack() {
        let mut m = Marker::default();
        assert_eq!(m.mark(&segment(Side::Server, 1, 44, 241)), None);
        assert_eq!(m.mark(&segment(Side::Client, 44, 242, 0)), None);
        let probe = SegmentNote { keepalive: true, ..segment(Side::Server, 241, 44, 0) };
        assert_eq!(m.mark(&probe), None, "a probe re-sends one old byte's sequence number: not a retransmission");
        assert_eq!(m.mark(&segment(Side::Client, 44, 242, 0)), None);
    }

    #[test]
    fn test_long_connection_is_drawn_elided_with_the_count() {
        let mut r = Recorder::new(1..=1);
        for i in 0..50 {
            r.segment(1, &note(i));
        }
        let mut out = Vec::new();
        write(r.traces(), &empty_report(), &Layout::default(), false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("⋮ 10 segments skipped ⋮"), "{text}");
        assert_eq!(text.lines().count(), 2 + HEAD + 1 + TAIL);
    }
}
