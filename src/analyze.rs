//! The pipeline that every command shares: frames → decode → flow table → report.
//!
//! `analyze` feeds it from files, `capture` from a live device; both end with [`Pipeline::finish`],
//! so a live capture and its saved file give the same report.

use crate::decode::{decode, Decoded, LinkType};
use crate::flow::{FlowEvent, FlowSink, FlowTable};
use crate::report::{CaptureStats, ConnectionRecord, PacketCounts, Report, ReportBuilder, SourceInfo, Summary};
use crate::source::RawPacket;

/// Default cap on open connections: about 0.85 KB each at peak (measured in docs/memory.md), so the
/// default peaks near 200 MiB.
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
}

impl Default for Options {
    fn default() -> Self {
        Options { port: None, max_connections: DEFAULT_MAX_CONNECTIONS, listed_connections: DEFAULT_LISTED_CONNECTIONS }
    }
}

/// Watches the pipeline as it runs: live views, streamed output, ladder diagrams.
pub trait Observer {
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
}

/// An observer that watches nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// Hands the flow table's results to the report builder and the observer.
struct Collector<'o> {
    builder: ReportBuilder,
    observer: &'o mut dyn Observer,
}

impl FlowSink for Collector<'_> {
    fn wants_segments(&self) -> bool {
        self.observer.wants_segments()
    }
    fn event(&mut self, id: u64, event: &FlowEvent) {
        self.observer.event(id, event);
    }
    fn connection_ended(&mut self, mut record: ConnectionRecord) {
        let observer = &mut *self.observer;
        observer.enrich(&mut record);
        self.builder.add(record, |record, summary| observer.connection_ended(record, summary));
    }
}

/// The running analysis.
pub struct Pipeline<'o> {
    options: Options,
    table: FlowTable,
    collector: Collector<'o>,
    packets: PacketCounts,
    /// Packets per lower port of the TCP segments `--port` left out (a few ports at most), to
    /// suggest the right port when nothing matched.
    other_ports: Vec<(u16, u64)>,
}

/// Ports remembered for the "nothing matched" hint.
const OTHER_PORTS_KEPT: usize = 8;

impl<'o> Pipeline<'o> {
    /// A new pipeline reporting to `observer`.
    pub fn new(options: Options, observer: &'o mut dyn Observer) -> Pipeline<'o> {
        Pipeline {
            table: FlowTable::new(options.port, options.max_connections),
            collector: Collector { builder: ReportBuilder::new(options.listed_connections), observer },
            options,
            packets: PacketCounts::default(),
            other_ports: Vec::new(),
        }
    }

    /// Feeds one captured frame.
    pub fn packet(&mut self, link: LinkType, raw: RawPacket<'_>) {
        self.packets.total += 1;
        match decode(link, raw.data, raw.orig_len, raw.ts) {
            Decoded::Tcp(seg) => {
                self.packets.tcp += 1;
                if seg.truncated() {
                    self.packets.truncated += 1;
                }
                if let Some(port) = self.options.port {
                    if seg.src.port() != port && seg.dst.port() != port {
                        self.note_other_port(seg.src.port().min(seg.dst.port()));
                        return;
                    }
                }
                self.packets.matched += 1;
                self.table.process(&seg, &mut self.collector);
            }
            Decoded::NotTcp => self.packets.not_tcp += 1,
            Decoded::Truncated => self.packets.truncated += 1,
            Decoded::Undecodable => self.packets.undecodable += 1,
        }
    }

    fn note_other_port(&mut self, port: u16) {
        if let Some((_, n)) = self.other_ports.iter_mut().find(|(p, _)| *p == port) {
            *n += 1;
        } else if self.other_ports.len() < OTHER_PORTS_KEPT {
            self.other_ports.push((port, 1));
        }
    }

    /// The ports (the lower of each segment's two) of TCP traffic that `--port` left out, busiest
    /// first: what to suggest when nothing matched.
    pub fn other_ports(&self) -> Vec<u16> {
        let mut ports = self.other_ports.clone();
        ports.sort_by_key(|p| std::cmp::Reverse(p.1));
        ports.into_iter().map(|(p, _)| p).collect()
    }

    /// Packet counts so far.
    pub fn packets(&self) -> &PacketCounts {
        &self.packets
    }

    /// Summary of the connections ended so far.
    pub fn summary(&self) -> &Summary {
        self.collector.builder.summary()
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
    pub fn finish(mut self, mut source: SourceInfo, capture: Option<CaptureStats>) -> Report {
        self.table.finish(&mut self.collector);
        let counters = self.table.counters();
        self.packets.after_close = counters.after_close;
        source.start_ts = self.table.capture_start();
        self.collector.builder.finish(source, self.packets, capture)
    }
}
