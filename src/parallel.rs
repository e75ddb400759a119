//! Analysing memory-mapped capture files on several threads, with the report one thread would give.
//!
//! Every worker walks all the packets but analyses only the connections it owns: a hash of the two
//! endpoints, the same in both directions, picks the owner. The endpoints are read from fixed header
//! offsets for the common frames ([`quick_endpoints`]), so a worker decodes only its own packets in
//! full. Each worker has its own flow table and, every [`CHUNK_PACKETS`] packets, sends the calling
//! thread the connections it opened and the records of those that ended, each with the index of the
//! packet that opened or ended it. The calling thread merges the workers' chunks in packet order:
//! connections get the numbers a single thread gives them (in the order they opened), and their
//! records reach the report and the observer in the order they ended.
//!
//! What can differ from one thread: `--max-connections` is shared out equally between the workers,
//! so a capture that fills the table evicts per worker; and tombstones of closed connections age by
//! the latest timestamp their worker saw, not the capture's.

use crate::analyze::{Collector, Finished, Intake, Observer, Options};
use crate::decode::{decode, ip_bits, quick_endpoints, Decoded, LinkType};
use crate::error::Error;
use crate::flow::{FlowEvent, FlowSink, FlowTable};
use crate::progress::FileProgress;
use crate::report::ConnectionRecord;
use crate::source::{Captures, RawPacket, ReadOutcome, SharedWalk, Walker};
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Packets per chunk: small enough that the records of a chunk stay a few hundred kilobytes.
const CHUNK_PACKETS: u64 = 4096;
/// Chunks a worker may run ahead of the merge.
const CHUNKS_IN_FLIGHT: usize = 2;
/// Default number of workers at most: every worker walks every packet header, so more stop paying.
const MAX_DEFAULT_WORKERS: usize = 4;

/// Workers used when `--threads` is not given: one per CPU, at most [`MAX_DEFAULT_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_WORKERS)
}

/// Reads `captures` (all memory-mapped) with `workers` threads and merges what they find.
pub fn analyze<'o>(
    captures: &Captures,
    bpf: Option<&str>,
    options: &Options,
    workers: usize,
    observer: &'o mut dyn Observer,
    progress: &mut FileProgress,
) -> (Finished<'o>, Result<ReadOutcome, Error>) {
    let walk = SharedWalk::new(workers);
    std::thread::scope(|scope| {
        let mut threads = Vec::with_capacity(workers);
        let mut receivers = Vec::with_capacity(workers);
        for index in 0..workers {
            let (sender, receiver) = sync_channel(CHUNKS_IN_FLIGHT);
            let worker = Worker::new(index, workers, options, sender);
            let walk = &walk;
            threads.push(scope.spawn(move || worker.run(captures, bpf, Walker::Shared(walk, index))));
            receivers.push(receiver);
        }
        let merged = Merger::new(options.listed_connections, observer, workers).run(&receivers, progress);
        drop(receivers);
        for thread in threads {
            if let Err(panic) = thread.join() {
                // A bug in a worker: passed on as it would be on one thread.
                std::panic::resume_unwind(panic);
            }
        }
        merged.unwrap_or_else(|| unreachable!("a worker that does not panic ends its walk with Message::End"))
    })
}

/// Which of `workers` owns the connection between two endpoints, whichever sent the packet.
fn owner(ends: [(u128, u16); 2], workers: usize) -> usize {
    let mix = |(ip, port): (u128, u16)| ((ip as u64) ^ ((ip >> 64) as u64) ^ u64::from(port)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let hash = mix(ends[0]) ^ mix(ends[1]);
    ((hash >> 32) % workers as u64) as usize
}

/// What a worker sends the merge.
enum Message {
    Chunk(Chunk),
    /// The walk is over; the worker's connections still open are in `chunk.ended`.
    End(Chunk, WorkerEnd),
}

/// What a worker found in one stretch of [`CHUNK_PACKETS`] packets.
#[derive(Default)]
struct Chunk {
    /// The worker's number of each connection that opened, with the index of the packet that
    /// opened it, in packet order.
    opened: Vec<(u64, u64)>,
    /// Records of the connections that ended, with the index of the packet that ended them, in the
    /// order they ended.
    ended: Vec<(u64, ConnectionRecord)>,
    /// Packets and bytes walked (for the progress bar).
    packets: u64,
    bytes: u64,
}

/// A worker's counts once its walk is over.
struct WorkerEnd {
    intake: Intake,
    start_ts: Option<f64>,
    outcome: Result<ReadOutcome, Error>,
}

/// One thread's share of the analysis.
struct Worker {
    index: usize,
    workers: usize,
    intake: Intake,
    table: FlowTable,
    chunk: ChunkSink,
    /// Whether the capture's first analysed packet has been seen (every worker looks for it).
    start_known: bool,
    sender: SyncSender<Message>,
}

impl Worker {
    fn new(index: usize, workers: usize, options: &Options, sender: SyncSender<Message>) -> Worker {
        Worker {
            index,
            workers,
            intake: Intake::new(options.port),
            table: FlowTable::new(options.port, options.max_connections.div_ceil(workers)),
            chunk: ChunkSink::default(),
            start_known: false,
            sender,
        }
    }

    fn run(mut self, captures: &Captures, bpf: Option<&str>, walker: Walker<'_>) {
        let mut packet = 0u64;
        let outcome = captures.read(bpf, walker, &mut |link, raw| {
            self.chunk.packet = packet;
            self.chunk.found.packets += 1;
            self.chunk.found.bytes += raw.data.len() as u64 + 16;
            self.frame(link, raw);
            packet += 1;
            if packet % CHUNK_PACKETS == 0 {
                let chunk = std::mem::take(&mut self.chunk.found);
                // The merge only hangs up when the process is going down.
                let _ = self.sender.send(Message::Chunk(chunk));
            }
        });
        self.chunk.packet = u64::MAX;
        self.table.finish(&mut self.chunk);
        self.intake.packets.after_close = self.table.counters().after_close;
        let end = WorkerEnd { intake: self.intake, start_ts: self.table.capture_start(), outcome };
        let _ = self.sender.send(Message::End(self.chunk.found, end));
    }

    /// One packet of the walk: analysed when its connection is this worker's.
    fn frame(&mut self, link: LinkType, raw: RawPacket<'_>) {
        if !self.start_known {
            self.look_for_start(link, raw);
        }
        let decoded = match quick_endpoints(link, raw.data) {
            Some(ends) if owner(ends, self.workers) != self.index => return,
            Some(_) => decode(link, raw.data, raw.orig_len, raw.ts),
            None => {
                let decoded = decode(link, raw.data, raw.orig_len, raw.ts);
                // Frames that are not TCP are counted by the first worker.
                let owner = match &decoded {
                    Decoded::Tcp(seg) => owner([(ip_bits(seg.src), seg.src.port()), (ip_bits(seg.dst), seg.dst.port())], self.workers),
                    _ => 0,
                };
                if owner != self.index {
                    return;
                }
                decoded
            }
        };
        if let Some(seg) = self.intake.take(decoded) {
            self.table.process(&seg, &mut self.chunk);
        }
    }

    /// Relative times count from the capture's first analysed packet, whichever worker owns it.
    fn look_for_start(&mut self, link: LinkType, raw: RawPacket<'_>) {
        if let Decoded::Tcp(seg) = decode(link, raw.data, raw.orig_len, raw.ts) {
            if self.intake.matches(&seg) {
                self.table.set_capture_start(seg.ts);
                self.start_known = true;
            }
        }
    }
}

/// Collects what the worker's flow table reports into the current chunk.
#[derive(Default)]
struct ChunkSink {
    /// Index of the packet being analysed (`u64::MAX` once the walk is over).
    packet: u64,
    found: Chunk,
}

impl FlowSink for ChunkSink {
    fn event(&mut self, id: u64, event: &FlowEvent) {
        if let FlowEvent::Opened { .. } = event {
            self.found.opened.push((self.packet, id));
        }
    }

    fn connection_ended(&mut self, record: ConnectionRecord) {
        self.found.ended.push((self.packet, record));
    }
}

/// Merges the workers' chunks into one collector, in packet order.
struct Merger<'o> {
    collector: Collector<'o>,
    /// Number of the last connection opened, over all workers.
    last_id: u64,
    /// The number of each open connection, by worker and the worker's own number for it.
    ids: HashMap<(usize, u64), u64>,
    workers: usize,
}

impl<'o> Merger<'o> {
    fn new(listed_connections: usize, observer: &'o mut dyn Observer, workers: usize) -> Merger<'o> {
        Merger { collector: Collector::new(listed_connections, observer), last_id: 0, ids: HashMap::new(), workers }
    }

    /// Merges until every worker has ended; `None` when a worker died first (a panic).
    fn run(mut self, receivers: &[Receiver<Message>], progress: &mut FileProgress) -> Option<(Finished<'o>, Result<ReadOutcome, Error>)> {
        let mut ends = Vec::with_capacity(self.workers);
        while ends.is_empty() {
            let mut chunks = Vec::with_capacity(self.workers);
            for receiver in receivers {
                match receiver.recv() {
                    Ok(Message::Chunk(chunk)) => chunks.push(chunk),
                    Ok(Message::End(chunk, end)) => {
                        chunks.push(chunk);
                        ends.push(end);
                    }
                    Err(_) => return None,
                }
            }
            if let Some(first) = chunks.first() {
                progress.advance(first.packets, first.bytes);
            }
            self.merge(chunks);
        }
        let mut ends = ends.into_iter();
        let first = ends.next()?;
        let mut intake = first.intake;
        for end in ends {
            intake.absorb(&end.intake);
        }
        let finished = Finished { intake, collector: self.collector, start_ts: first.start_ts };
        Some((finished, first.outcome))
    }

    /// Numbers the connections opened in this stretch in packet order, then hands the ended ones to
    /// the collector in the order they ended.
    fn merge(&mut self, chunks: Vec<Chunk>) {
        let mut opened: Vec<(u64, usize, u64)> =
            chunks.iter().enumerate().flat_map(|(worker, chunk)| chunk.opened.iter().map(move |&(packet, id)| (packet, worker, id))).collect();
        opened.sort_unstable_by_key(|&(packet, _, _)| packet);
        for (_, worker, id) in opened {
            self.last_id += 1;
            self.ids.insert((worker, id), self.last_id);
        }
        let mut ended: Vec<(u64, ConnectionRecord)> = Vec::new();
        for (worker, chunk) in chunks.into_iter().enumerate() {
            for (packet, mut record) in chunk.ended {
                let id = self.ids.remove(&(worker, record.id));
                debug_assert!(id.is_some(), "a connection ends after it opened");
                record.id = id.unwrap_or(record.id);
                ended.push((packet, record));
            }
        }
        // A packet belongs to one worker, so records ending on the same packet come from one worker
        // and the stable sort keeps them in that worker's order. Those still open at the end (packet
        // `u64::MAX`) go in the order they opened, as one thread finalises them.
        ended.sort_by_key(|(packet, record)| (*packet, if *packet == u64::MAX { record.id } else { 0 }));
        for (_, record) in ended {
            self.collector.connection_ended(record);
        }
    }
}
