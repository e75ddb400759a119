//! The pipeline that every command shares: frames → decode → flow table → report.
//!
//! `analyze` feeds it from files, `capture` from a live device; both end with [`Pipeline::finish`],
//! so a live capture and its saved file give the same report.
//!
//! Input: raw frames ([`RawPacket`]) from [`crate::source`] or [`crate::live`]. Inside: [`decode`]
//! and [`Defragmenter`] make segments, the [`FlowTable`] rebuilds connections (running their
//! protocol watchers) and hands each finished one's TCP facts and protocol summary to the collector,
//! which builds its record ([`ConnectionRecord::from_facts`]) for the [`ReportBuilder`]. Output: the [`Report`] (and,
//! as they happen, events and records to an [`Observer`]: live views, streamed formats), which
//! `src/cli/` renders through [`crate::render`]. [`parallel`] runs the same stages on several
//! threads; [`progress`] shows how far a file has been read.

pub mod parallel;
pub mod progress;

use crate::decode::{decode, reassembled_segment, Decoded, OwnedSegment, Segment};
use crate::defrag::Defragmenter;
use crate::protocol::keylog::TlsKeys;
use crate::protocol::ProtocolSummary;
use crate::report::{Amendment, CaptureStats, ConnectionRecord, EndReason, PacketCounts, Report, ReportBuilder, SourceInfo, Summary};
use crate::source::RawPacket;
use crate::tcp::{FlowEvent, FlowSink, FlowTable, TcpFacts};
use crate::wire::LinkType;
use std::sync::Arc;

/// Default cap on open connections: about 0.2 KB each while half-open, about 0.85 KB once answered
/// (measured in docs/memory.md), so a SYN flood at the default stays near 55 MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200_000;
/// Default number of connection records kept for the listing (the summary always counts all).
pub const DEFAULT_LISTED_CONNECTIONS: usize = 10_000;

/// What to analyse and how much to keep.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only segments with this port on either side (`--port`).
    pub port: Option<u16>,
    pub max_connections: usize,
    /// Connection records kept in the report's list.
    pub listed_connections: usize,
    /// TLS secrets: connections whose secrets they hold are decrypted (`--keylog`, pcapng secrets).
    pub tls_keys: Option<Arc<TlsKeys>>,
}

impl Default for Options {
    fn default() -> Self {
        Options { port: None, max_connections: DEFAULT_MAX_CONNECTIONS, listed_connections: DEFAULT_LISTED_CONNECTIONS, tls_keys: None }
    }
}

/// Watches the pipeline as it runs: live views, streamed output, ladder diagrams.
pub trait Observer {
    /// True when the observer needs [`Observer::event`] calls in packet order, which only a
    /// single-threaded analysis gives (see `parallel`). Only records and summaries otherwise.
    fn wants_events(&self) -> bool {
        true
    }
    /// True to receive a [`FlowEvent::Segment`] per segment.
    fn wants_segments(&self) -> bool {
        false
    }
    /// An event on connection `id`.
    fn event(&mut self, _id: u64, _event: &FlowEvent) {}
    /// Adds to a connection's record what the packets cannot tell (the processes behind a live
    /// connection, the kernel's socket states), before the report or any observer sees it.
    fn enrich(&mut self, _record: &mut ConnectionRecord) {}
    /// A connection ended; `summary` already includes it.
    fn connection_ended(&mut self, _record: &ConnectionRecord, _summary: &Summary) {}
    /// A connection that ended before was amended (its TIME_WAIT ended); `summary` already shows it.
    fn connection_amended(&mut self, _amendment: &Amendment, _summary: &Summary) {}
}

/// An observer that watches nothing.
pub struct NoObserver;
impl Observer for NoObserver {
    fn wants_events(&self) -> bool {
        false
    }
}

/// Hands the flow table's results to the report builder and the observer.
pub(crate) struct Collector<'o> {
    builder: ReportBuilder,
    observer: &'o mut dyn Observer,
    /// Records and amendments shown to the observer so far.
    pub(crate) notified: u64,
    /// The observer has already been shown the first `already_notified` (by an analysis on several
    /// threads that had to be done again on one, `parallel`): they are not shown again.
    already_notified: u64,
}

impl<'o> Collector<'o> {
    pub(crate) fn new(listed_connections: usize, observer: &'o mut dyn Observer) -> Collector<'o> {
        Collector { builder: ReportBuilder::new(listed_connections), observer, notified: 0, already_notified: 0 }
    }

    /// True once the observer is shown what comes next (and counts it).
    fn notify(&mut self) -> bool {
        self.notified += 1;
        self.notified > self.already_notified
    }

    /// Builds the report from what was collected.
    pub(crate) fn finish(self, source: SourceInfo, packets: PacketCounts, capture: Option<CaptureStats>) -> Report {
        self.builder.finish(source, packets, capture)
    }

    /// Adds a finished connection's record (built here, or by a parallel worker) to the report.
    pub(crate) fn record_ended(&mut self, mut record: ConnectionRecord) {
        let show = self.notify();
        let observer = &mut *self.observer;
        observer.enrich(&mut record);
        self.builder.add(record, |record, summary| {
            if show {
                observer.connection_ended(record, summary);
            }
        });
    }
}

impl FlowSink for Collector<'_> {
    fn wants_segments(&self) -> bool {
        self.observer.wants_segments()
    }
    fn wants_protocol_events(&self) -> bool {
        self.observer.wants_events()
    }
    fn event(&mut self, id: u64, event: &FlowEvent) {
        self.observer.event(id, event);
    }
    fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) {
        self.record_ended(ConnectionRecord::from_facts(facts, protocol, end, capture_start));
    }
    fn connection_amended(&mut self, amendment: Amendment) {
        self.builder.amend(&amendment);
        if self.notify() {
            self.observer.connection_amended(&amendment, self.builder.summary());
        }
    }
}

/// The running analysis.
pub struct Pipeline<'o> {
    intake: Intake,
    table: FlowTable,
    collector: Collector<'o>,
}

impl<'o> Pipeline<'o> {
    /// A new pipeline reporting to `observer`.
    pub fn new(options: Options, observer: &'o mut dyn Observer) -> Pipeline<'o> {
        Pipeline {
            table: FlowTable::new(options.port, options.max_connections).with_tls_keys(options.tls_keys),
            collector: Collector::new(options.listed_connections, observer),
            intake: Intake::new(options.port),
        }
    }

    /// The observer has already been shown the first `n` records and amendments (by an analysis on
    /// several threads that is being done again on one): they are not shown again.
    pub fn already_notified(&mut self, n: u64) {
        self.collector.already_notified = n;
    }

    /// Feeds one captured frame.
    pub fn packet(&mut self, link: LinkType, raw: RawPacket<'_>) {
        let decoded = decode(link, raw.data, raw.orig_len, raw.ts);
        match self.intake.take(&decoded) {
            Taken::Segment(seg) => self.table.process(seg, &mut self.collector),
            Taken::Reassembled(owned) => self.table.process(&owned.segment(), &mut self.collector),
            Taken::Nothing => {}
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.table.open_connections()
    }

    /// Ends the connections still open: their records are made as they stand (`open_at_end`), as
    /// [`Pipeline::finish`] would, so that they can be reviewed with [`Pipeline::records_mut`] first.
    pub fn end_open_connections(&mut self) {
        self.table.finish(&mut self.collector);
    }

    /// The connection records kept for the report's listing so far, in the order they ended.
    pub fn records_mut(&mut self) -> &mut [ConnectionRecord] {
        self.collector.builder.records_mut()
    }

    /// Ends the analysis: finalises open connections and builds the report.
    pub fn finish(self, source: SourceInfo, capture: Option<CaptureStats>) -> Report {
        self.end().report(source, capture)
    }

    /// Ends the reading: finalises open connections; what is left builds the report.
    pub fn end(mut self) -> Finished<'o> {
        self.intake.finish();
        self.table.finish(&mut self.collector);
        self.intake.packets.after_close = self.table.counters().after_close;
        Finished { intake: self.intake, collector: self.collector, start_ts: self.table.capture_start() }
    }
}

/// An analysis whose packets have all been read, on one thread or several (`parallel`).
pub struct Finished<'o> {
    pub(crate) intake: Intake,
    pub(crate) collector: Collector<'o>,
    /// Epoch seconds of the first packet analysed.
    pub(crate) start_ts: Option<f64>,
}

impl Finished<'_> {
    /// The ports (the lower of each segment's two) of TCP traffic that `--port` left out, busiest
    /// first: what to suggest when nothing matched.
    pub fn other_ports(&self) -> Vec<u16> {
        self.intake.other_ports()
    }

    /// Builds the report.
    pub fn report(self, mut source: SourceInfo, capture: Option<CaptureStats>) -> Report {
        source.start_ts = self.start_ts;
        self.collector.finish(source, self.intake.packets, capture)
    }
}

/// What [`Intake::take`] keeps of a frame for the flow table.
pub(crate) enum Taken<'d, 'a> {
    /// Nothing: not TCP, not on the selected port, or a fragment held for its packet.
    Nothing,
    /// The frame's TCP segment.
    Segment(&'d Segment<'a>),
    /// The TCP segment this fragment completed.
    Reassembled(OwnedSegment),
}

/// Counts decoded frames, rebuilds fragmented packets, and keeps the TCP segments on the selected port.
pub(crate) struct Intake {
    port: Option<u16>,
    pub(crate) packets: PacketCounts,
    fragments: Defragmenter,
    /// Packets per lower port of the TCP segments `--port` left out (a few ports at most), to
    /// suggest the right port when nothing matched.
    other_ports: Vec<(u16, u64)>,
}

/// Ports remembered for the "nothing matched" hint.
const OTHER_PORTS_KEPT: usize = 8;

impl Intake {
    pub(crate) fn new(port: Option<u16>) -> Intake {
        Intake { port, packets: PacketCounts::default(), fragments: Defragmenter::default(), other_ports: Vec::new() }
    }

    /// Counts a decoded frame; returns what of it goes to the flow table.
    pub(crate) fn take<'d, 'a>(&mut self, decoded: &'d Decoded<'a>) -> Taken<'d, 'a> {
        self.packets.total += 1;
        match decoded {
            Decoded::Tcp(seg) => {
                if self.keep(seg) {
                    return Taken::Segment(seg);
                }
            }
            Decoded::Fragment(fragment) => {
                self.packets.ip_fragments += 1;
                let rebuilt = self.fragments.add(fragment);
                self.packets.fragments_dropped = self.fragments.dropped();
                let Some(rebuilt) = rebuilt else { return Taken::Nothing };
                self.packets.reassembled += 1;
                match reassembled_segment(rebuilt.ts, &rebuilt.key, &rebuilt.captured, rebuilt.wire_len) {
                    Some(owned) if self.keep(&owned.segment()) => return Taken::Reassembled(owned),
                    Some(_) => {}
                    None => self.packets.truncated += 1,
                }
            }
            Decoded::NotTcp => self.packets.not_tcp += 1,
            Decoded::Truncated => self.packets.truncated += 1,
            Decoded::Undecodable => self.packets.undecodable += 1,
        }
        Taken::Nothing
    }

    /// Counts a TCP segment; true when it is on the selected port.
    fn keep(&mut self, seg: &Segment<'_>) -> bool {
        self.packets.tcp += 1;
        if seg.truncated() {
            self.packets.truncated += 1;
        }
        if !self.matches(seg) {
            self.note_other_port(seg.src.port().min(seg.dst.port()));
            return false;
        }
        self.packets.matched += 1;
        true
    }

    /// The capture ended: fragments of packets still incomplete count as dropped.
    pub(crate) fn finish(&mut self) {
        self.fragments.finish();
        self.packets.fragments_dropped = self.fragments.dropped();
    }

    /// True when the segment is on the selected port (or no port was selected).
    fn matches(&self, seg: &Segment<'_>) -> bool {
        self.port.is_none_or(|port| seg.src.port() == port || seg.dst.port() == port)
    }

    fn note_other_port(&mut self, port: u16) {
        if let Some((_, n)) = self.other_ports.iter_mut().find(|(p, _)| *p == port) {
            *n += 1;
        } else if self.other_ports.len() < OTHER_PORTS_KEPT {
            self.other_ports.push((port, 1));
        }
    }

    /// Adds the counts of `other`, which counted other frames of the same capture (`parallel`). The
    /// ports `--port` left out are added as far as [`OTHER_PORTS_KEPT`] allows (in `parallel` one
    /// thread counts every frame off the port, so the list is the one a single thread keeps).
    pub(crate) fn add(&mut self, other: Intake) {
        let PacketCounts {
            total,
            tcp,
            matched,
            truncated,
            undecodable,
            not_tcp,
            ip_fragments,
            reassembled,
            fragments_dropped,
            after_close,
        } = other.packets;
        let packets = &mut self.packets;
        packets.total += total;
        packets.tcp += tcp;
        packets.matched += matched;
        packets.truncated += truncated;
        packets.undecodable += undecodable;
        packets.not_tcp += not_tcp;
        packets.ip_fragments += ip_fragments;
        packets.reassembled += reassembled;
        packets.fragments_dropped += fragments_dropped;
        packets.after_close += after_close;
        for (port, n) in other.other_ports {
            if let Some((_, count)) = self.other_ports.iter_mut().find(|(p, _)| *p == port) {
                *count += n;
            } else if self.other_ports.len() < OTHER_PORTS_KEPT {
                self.other_ports.push((port, n));
            }
        }
    }

    fn other_ports(&self) -> Vec<u16> {
        let mut ports = self.other_ports.clone();
        ports.sort_by_key(|p| std::cmp::Reverse(p.1));
        ports.into_iter().map(|(p, _)| p).collect()
    }
}
