//! Analysing memory-mapped capture files on several threads, with the report one thread would give.
//!
//! Input: capture files (memory-mapped, from `analyze --threads`). Output: the same [`Finished`]
//! analysis, records and observer calls as the single-threaded [`super::Pipeline`].
//!
//! The calling thread walks the files, decodes each frame (while its bytes are in this core's cache)
//! and hands each TCP segment, borrowing its payload from the map, to the worker that owns its
//! connection: a hash of the two endpoints, the same in both directions, picks it. Each worker has
//! its own flow table. Segments travel in chunks of `CHUNK_PACKETS` (1,024) packets; for each chunk a
//! worker sends back the connections it opened and the records of those that ended, with the index
//! of the packet that opened or ended them. The calling thread merges the workers' answers chunk by
//! chunk in packet order: connections get the numbers a single thread gives them (in the order they
//! opened), and their records reach the report and the observer in the order they ended.
//!
//! The report is always the one a single thread gives. Each segment travels with the latest
//! timestamp of the capture so far, so workers age tombstones by the capture's clock. Each worker
//! may hold `--max-connections` itself, so it never evicts before one thread would; the merge counts
//! the connections open at once over all workers in packet order, and the tombstones closed
//! connections may have left, and when either reaches the cap (where one thread evicts a connection
//! or drops tombstones, a choice that depends on the whole table) the analysis stops and is done
//! again on one thread ([`Redo`]); what the observer was shown before is not shown again.

use crate::decode::{decode, ip_bits, OwnedSegment, Segment};
use crate::error::Error;
use crate::pipeline::progress::FileProgress;
use crate::pipeline::{Collector, Finished, Intake, Observer, Options, Taken};
use crate::protocol::ProtocolSummary;
use crate::report::{Amendment, ConnectionRecord, EndReason};
use crate::source::{Captures, RawPacket, ReadOutcome};
use crate::tcp::{FlowEvent, FlowSink, FlowTable, TcpFacts, TOMBSTONE_LIFETIME_MAX};
use crate::wire::LinkType;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// Packets per chunk.
const CHUNK_PACKETS: u64 = 1024;
/// Chunks the walk may run ahead of the slowest worker: bounds the memory held in flight.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Records per batch of the connections still open at the end, sent one batch at a time: the end
/// of a capture may leave a million connections open.
const STILL_OPEN_BATCH: usize = 1024;
/// Default number of workers at most.
const MAX_DEFAULT_WORKERS: usize = 4;

/// Workers used when `--threads` is not given: one per CPU, at most `MAX_DEFAULT_WORKERS` (4).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_WORKERS)
}

/// The analysis on several threads reached `--max-connections` (open connections, or tombstones),
/// where one thread's choices depend on the whole table: it must be done again on one thread.
#[derive(Clone, Copy, Debug)]
pub struct Redo {
    /// Records and amendments the observer was shown already (the single thread's first ones).
    pub notified: u64,
}

/// Reads `captures` (all memory-mapped) with `workers` worker threads and merges what they find,
/// or says the analysis must be done on one thread.
pub fn analyze<'o>(
    captures: &Captures,
    bpf: Option<&str>,
    options: &Options,
    workers: usize,
    observer: &'o mut dyn Observer,
    progress: &mut FileProgress,
) -> (Result<Finished<'o>, Redo>, Result<ReadOutcome, Error>) {
    std::thread::scope(|scope| {
        let (answers, merged) = channel();
        let mut threads = Vec::with_capacity(workers);
        let mut work = Vec::with_capacity(workers);
        let mut still_open = Vec::with_capacity(workers);
        for index in 0..workers {
            let (sender, receiver) = sync_channel(CHUNKS_IN_FLIGHT);
            let (open_sender, open_receiver) = sync_channel(1);
            let worker = Worker::new(index, options, answers.clone());
            threads.push(scope.spawn(move || worker.run(&receiver, open_sender)));
            work.push(sender);
            still_open.push(open_receiver);
        }
        drop(answers);
        let merger = Merger::new(options, observer, merged, still_open);
        let mut walk = Walk::new(captures, options.port, work, merger);
        let outcome = captures.read_mapped(bpf, &mut |link, raw| {
            progress.packet(raw.data.len());
            walk.packet(link, raw);
        });
        let merged = walk.finish();
        for thread in threads {
            if let Err(panic) = thread.join() {
                // A bug in a worker: passed on as it would be on one thread.
                std::panic::resume_unwind(panic);
            }
        }
        if merged.is_err() {
            // The one-thread analysis reads the files again from their start.
            captures.hand_back_all();
        }
        (merged, outcome)
    })
}

/// Which of `workers` owns the connection of a segment, whichever side sent it.
fn owner(seg: &Segment<'_>, workers: usize) -> usize {
    let mix = |addr: std::net::SocketAddr| {
        let ip = ip_bits(addr);
        ((ip as u64) ^ ((ip >> 64) as u64) ^ u64::from(addr.port())).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    let hash = mix(seg.src) ^ mix(seg.dst);
    ((hash >> 32) % workers as u64) as usize
}

/// What the walk sends a worker for one chunk (the channel carries `None` after the last).
struct Batch<'c> {
    segments: Segments<'c>,
    /// Set, for every worker, on the chunk holding the capture's first analysed packet: relative
    /// times count from it, whichever worker owns it.
    capture_start: Option<f64>,
}

/// A worker's segments of one chunk, each with the index of its packet in the walk and the latest
/// timestamp of the capture up to it.
type Segments<'c> = Vec<(u64, f64, Carried<'c>)>;

/// A segment on its way to a worker: borrowed from the map, or rebuilt from IP fragments (owned:
/// the walk's reassembly buffers do not outlive the packet).
enum Carried<'c> {
    Mapped(Segment<'c>),
    Reassembled(OwnedSegment),
}

impl Carried<'_> {
    /// Calls `f` with the segment.
    fn with<R>(&self, f: impl FnOnce(&Segment<'_>) -> R) -> R {
        match self {
            Carried::Mapped(seg) => f(seg),
            Carried::Reassembled(owned) => f(&owned.segment()),
        }
    }
}

/// What a worker sends back for each chunk.
struct Answer<'c> {
    worker: usize,
    chunk: Chunk,
    /// The batch's vector, emptied, for the walk to fill again.
    spent: Segments<'c>,
    /// After the last chunk: the worker's count of segments after a close.
    end: Option<u64>,
}

/// What a worker found in one chunk, each with the index of the packet that brought it and its
/// place in the order the worker's table found things (records apart: they are large).
#[derive(Default)]
struct Chunk {
    /// Connections opened, and connections that ended before amended.
    changes: Vec<(u64, u64, Change)>,
    /// Records of the connections that ended (numbered by the worker).
    ended: Vec<(u64, u64, ConnectionRecord)>,
}

/// A connection opened, or one that ended before was amended.
enum Change {
    /// The worker's number for the new connection.
    Opened(u64),
    /// Named by its 4-tuple, the same in every worker.
    Amended(Amendment),
}

/// A worker's findings of one chunk, being merged.
struct Findings {
    changes: Queue<(u64, u64, Change)>,
    ended: Queue<(u64, u64, ConnectionRecord)>,
}

impl Findings {
    /// The packet and the place of the worker's next finding.
    fn next_at(&mut self) -> Option<(u64, u64)> {
        let change = self.changes.peek().map(|&(packet, place, _)| (packet, place));
        let ended = self.ended.peek().map(|&(packet, place, _)| (packet, place));
        match (change, ended) {
            (Some(a), Some(b)) => Some(if a.1 < b.1 { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// The calling thread's side: hands each packet to its worker, and merges the answers.
struct Walk<'c, 'o> {
    captures: &'c Captures,
    intake: Intake,
    work: Vec<SyncSender<Option<Batch<'c>>>>,
    batches: Vec<Batch<'c>>,
    /// Index of the next packet.
    next: u64,
    /// Epoch seconds of the capture's first analysed packet.
    start_ts: Option<f64>,
    /// The latest timestamp of the packets so far.
    latest_ts: f64,
    /// The first packet of each chunk sent and not yet merged: once merged, the pages before it
    /// can go back to the kernel.
    unmerged: VecDeque<&'c [u8]>,
    merger: Merger<'c, 'o>,
}

impl<'c, 'o> Walk<'c, 'o> {
    fn new(captures: &'c Captures, port: Option<u16>, work: Vec<SyncSender<Option<Batch<'c>>>>, merger: Merger<'c, 'o>) -> Walk<'c, 'o> {
        let batches = work.iter().map(|_| Batch { segments: Vec::new(), capture_start: None }).collect();
        Walk {
            captures,
            intake: Intake::new(port),
            work,
            batches,
            next: 0,
            start_ts: None,
            latest_ts: f64::MIN,
            unmerged: VecDeque::new(),
            merger,
        }
    }

    fn packet(&mut self, link: LinkType, raw: RawPacket<'c>) {
        if self.merger.redo {
            // The analysis is done again on one thread: the rest of this one is not needed, and
            // the pages the walk passes go back to the kernel at once (the workers' segments of
            // them, if any are still read, only fault them in again from the file).
            self.next += 1;
            if self.next % CHUNK_PACKETS == 0 {
                self.captures.hand_back_before(raw.data);
            }
            return;
        }
        if self.next % CHUNK_PACKETS == 0 {
            self.unmerged.push_back(raw.data);
        }
        let decoded = decode(link, raw.data, raw.orig_len, raw.ts);
        let carried = match self.intake.take(&decoded) {
            Taken::Segment(seg) => Some(Carried::Mapped(seg.clone())),
            Taken::Reassembled(owned) => Some(Carried::Reassembled(owned)),
            Taken::Nothing => None,
        };
        if let Some(carried) = carried {
            let (ts, worker) = carried.with(|seg| (seg.ts, owner(seg, self.work.len())));
            if self.start_ts.is_none() {
                self.start_ts = Some(ts);
                for batch in &mut self.batches {
                    batch.capture_start = Some(ts);
                }
            }
            self.latest_ts = self.latest_ts.max(ts);
            self.batches[worker].segments.push((self.next, self.latest_ts, carried));
        }
        self.next += 1;
        if self.next % CHUNK_PACKETS == 0 {
            self.send_chunk();
            self.merge_answered();
        }
    }

    /// Sends every worker its share of the chunk (an empty one too: each chunk is answered by all).
    fn send_chunk(&mut self) {
        for (sender, batch) in self.work.iter().zip(&mut self.batches) {
            let empty = self.merger.spare.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK_PACKETS as usize));
            let full = std::mem::replace(batch, Batch { segments: empty, capture_start: None });
            // A worker only hangs up when it panicked; the join reports that.
            let _ = sender.send(Some(full));
        }
        self.merger.sent += 1;
    }

    /// Merges the chunks every worker has answered; pages before them go back to the kernel.
    fn merge_answered(&mut self) {
        while self.merger.merge_next(false) {
            if let Some(next_chunk) = self.unmerged.get(1) {
                self.captures.hand_back_before(next_chunk);
            }
            self.unmerged.pop_front();
        }
    }

    /// Sends the last chunk and the end, then merges everything. A worker that died (a panic,
    /// which the caller passes on when it joins the threads) stops the merge where it is.
    fn finish(mut self) -> Result<Finished<'o>, Redo> {
        self.intake.finish();
        self.send_chunk();
        for sender in &self.work {
            let _ = sender.send(None);
        }
        let chunks = self.merger.sent;
        while self.merger.merged < chunks && self.merger.merge_next(true) {}
        self.merger.merge_still_open();
        // Then each worker's last answer: its count of segments after a close.
        while self.merger.merged < chunks + 1 && self.merger.merge_next(true) {}
        if self.merger.redo {
            return Err(Redo { notified: self.merger.collector.notified });
        }
        self.intake.packets.after_close = self.merger.after_close;
        Ok(Finished { intake: self.intake, collector: self.merger.collector, start_ts: self.start_ts })
    }
}

/// One worker thread: a flow table for the connections it owns.
struct Worker<'c> {
    index: usize,
    table: FlowTable,
    sink: ChunkSink,
    answers: Sender<Answer<'c>>,
}

impl<'c> Worker<'c> {
    fn new(index: usize, options: &Options, answers: Sender<Answer<'c>>) -> Worker<'c> {
        Worker {
            index,
            // The whole cap: a worker holds no more than all of them together, so it never evicts
            // before one thread would (and the merge redoes the analysis when one thread would).
            table: FlowTable::new(options.port, options.max_connections).with_tls_keys(options.tls_keys.clone()),
            sink: ChunkSink::default(),
            answers,
        }
    }

    fn run(mut self, batches: &Receiver<Option<Batch<'c>>>, still_open: SyncSender<Vec<ConnectionRecord>>) {
        while let Ok(Some(batch)) = batches.recv() {
            if let Some(ts) = batch.capture_start {
                self.table.set_capture_start(ts);
            }
            let mut spent = batch.segments;
            for (index, latest_ts, carried) in &spent {
                self.table.observe_time(*latest_ts);
                self.sink.packet = *index;
                carried.with(|seg| self.table.process(seg, &mut self.sink));
            }
            spent.clear();
            let chunk = self.sink.next_chunk();
            // The walk only hangs up when it is going down.
            let _ = self.answers.send(Answer { worker: self.index, chunk, spent, end: None });
        }
        let mut open = StillOpenSink { batch: Vec::with_capacity(STILL_OPEN_BATCH), sender: still_open };
        self.table.finish(&mut open);
        open.send();
        drop(open);
        let end = Some(self.table.counters().after_close);
        let _ = self.answers.send(Answer { worker: self.index, chunk: Chunk::default(), spent: Vec::new(), end });
    }
}

/// Sends the records of the connections still open at the end, in the order they opened, a batch
/// at a time: the merge takes them in the order of their numbers across the workers.
struct StillOpenSink {
    batch: Vec<ConnectionRecord>,
    sender: SyncSender<Vec<ConnectionRecord>>,
}

impl StillOpenSink {
    fn send(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(STILL_OPEN_BATCH));
            // The merge only hangs up when it is going down.
            let _ = self.sender.send(batch);
        }
    }
}

impl FlowSink for StillOpenSink {
    fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) {
        self.batch.push(ConnectionRecord::from_facts(facts, protocol, end, capture_start));
        if self.batch.len() == STILL_OPEN_BATCH {
            self.send();
        }
    }
}

/// Collects what a worker's flow table reports into the current chunk.
#[derive(Default)]
struct ChunkSink {
    /// Index of the packet being analysed.
    packet: u64,
    /// Findings so far, over all chunks: each one's place in the worker's order.
    places: u64,
    found: Chunk,
}

impl ChunkSink {
    /// Hands over what was found in this chunk; the next starts with room for as much, so that
    /// records (a few hundred bytes each) are not copied again and again as the vectors grow.
    fn next_chunk(&mut self) -> Chunk {
        let room = Chunk { changes: Vec::with_capacity(self.found.changes.len()), ended: Vec::with_capacity(self.found.ended.len()) };
        std::mem::replace(&mut self.found, room)
    }

    /// The place of the next finding in the worker's order.
    fn place(&mut self) -> u64 {
        self.places += 1;
        self.places
    }
}

impl FlowSink for ChunkSink {
    fn event(&mut self, id: u64, event: &FlowEvent) {
        if let FlowEvent::Opened { .. } = event {
            let place = self.place();
            self.found.changes.push((self.packet, place, Change::Opened(id)));
        }
    }

    fn connection_ended(&mut self, facts: &TcpFacts, protocol: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) {
        let place = self.place();
        // Built here, on the worker: the merge only orders records.
        self.found.ended.push((self.packet, place, ConnectionRecord::from_facts(facts, protocol, end, capture_start)));
    }

    fn connection_amended(&mut self, amendment: Amendment) {
        let place = self.place();
        self.found.changes.push((self.packet, place, Change::Amended(amendment)));
    }
}

/// Merges the workers' answers into one collector, chunk by chunk, in packet order.
struct Merger<'c, 'o> {
    collector: Collector<'o>,
    answers: Receiver<Answer<'c>>,
    /// Per worker, the records of its connections still open at the end, in batches.
    still_open: Vec<Receiver<Vec<ConnectionRecord>>>,
    /// Per worker, the chunks answered and not merged yet.
    pending: Vec<VecDeque<Chunk>>,
    /// Emptied batch vectors, to be filled again.
    spare: Vec<Segments<'c>>,
    /// Segments of closed connections, over the workers that have ended.
    after_close: u64,
    /// Chunks sent to the workers, and merged.
    sent: u64,
    merged: u64,
    /// Number of the last connection opened, over all workers.
    last_id: u64,
    /// The number of each open connection, by worker and the worker's own number for it.
    ids: HashMap<(usize, u64), u64, ahash::RandomState>,
    /// The latest `last_ts` of the records merged: the capture's clock, at most.
    clock: f64,
    /// `--max-connections`.
    cap: usize,
    /// Connections open over all workers, as one thread would hold them.
    open: usize,
    /// Connections that closed, per whole second of their last timestamp, from the second
    /// [`TOMBSTONE_LIFETIME_MAX`] before the clock on: at least the tombstones one thread or any
    /// worker holds.
    closed_per_second: VecDeque<(i64, usize)>,
    /// Their sum.
    closed_recently: usize,
    /// The analysis reached the cap: it stops, and is done again on one thread.
    redo: bool,
}

impl<'c, 'o> Merger<'c, 'o> {
    fn new(
        options: &Options,
        observer: &'o mut dyn Observer,
        answers: Receiver<Answer<'c>>,
        still_open: Vec<Receiver<Vec<ConnectionRecord>>>,
    ) -> Merger<'c, 'o> {
        Merger {
            collector: Collector::new(options.listed_connections, observer),
            answers,
            pending: still_open.iter().map(|_| VecDeque::new()).collect(),
            still_open,
            spare: Vec::new(),
            after_close: 0,
            sent: 0,
            merged: 0,
            last_id: 0,
            ids: HashMap::default(),
            clock: f64::MIN,
            cap: options.max_connections,
            open: 0,
            closed_per_second: VecDeque::new(),
            closed_recently: 0,
            redo: false,
        }
    }

    /// Merges the next chunk once every worker has answered it, waiting for answers when `wait`.
    /// False when it is not answered yet (or, waiting, when every worker has hung up).
    fn merge_next(&mut self, wait: bool) -> bool {
        while self.pending.iter().any(VecDeque::is_empty) {
            let answer = if wait { self.answers.recv().ok() } else { self.answers.try_recv().ok() };
            let Some(answer) = answer else { return false };
            self.pending[answer.worker].push_back(answer.chunk);
            if answer.spent.capacity() > 0 {
                self.spare.push(answer.spent);
            }
            self.after_close += answer.end.unwrap_or(0);
        }
        let chunks: Vec<Chunk> = self.pending.iter_mut().filter_map(VecDeque::pop_front).collect();
        self.merge(chunks);
        self.merged += 1;
        true
    }

    /// Takes what the workers found in this chunk in the order one thread finds it: each worker's
    /// findings are in its table's order, and a packet belongs to one worker, so the lowest packet
    /// index among the workers' next findings comes next. Numbers connections as they open, hands
    /// records and amendments to the collector, and stops where one thread's table would reach the
    /// cap. Records are moved, never sorted: they are a few hundred bytes.
    fn merge(&mut self, chunks: Vec<Chunk>) {
        let mut found: Vec<Findings> = chunks
            .into_iter()
            .map(|chunk| Findings { changes: chunk.changes.into_iter().peekable(), ended: chunk.ended.into_iter().peekable() })
            .collect();
        loop {
            let next =
                found.iter_mut().enumerate().filter_map(|(worker, f)| f.next_at().map(|at| (at.0, worker, at.1))).min_by_key(|n| n.0);
            let Some((_, worker, place)) = next else { break };
            if self.redo {
                return;
            }
            let findings = &mut found[worker];
            if findings.ended.peek().is_some_and(|&(_, at, _)| at == place) {
                if let Some((_, _, record)) = findings.ended.next() {
                    self.ended(worker, record);
                }
                continue;
            }
            let Some((_, _, change)) = findings.changes.next() else { break };
            match change {
                Change::Opened(id) => {
                    // One thread would evict a connection to make room for this one.
                    if self.open >= self.cap {
                        self.redo = true;
                        return;
                    }
                    self.open += 1;
                    self.last_id += 1;
                    self.ids.insert((worker, id), self.last_id);
                }
                Change::Amended(amendment) => self.collector.connection_amended(amendment),
            }
        }
    }

    /// A connection ended: its record goes to the collector with its number over all workers,
    /// unless one thread's table would have reached the cap of tombstones by now.
    fn ended(&mut self, worker: usize, mut record: ConnectionRecord) {
        if record.end == EndReason::Evicted {
            // Not before one thread would evict: a worker holds the whole cap.
            self.redo = true;
            return;
        }
        self.open = self.open.saturating_sub(1);
        self.renumber(worker, &mut record);
        self.clock = self.clock.max(record.last_ts);
        if record.end == EndReason::Closed {
            // A tombstone closed at t is gone from every table once the capture's clock passes
            // t + TOMBSTONE_LIFETIME_MAX, and the clock here is never ahead of the tables'.
            let second = record.last_ts.floor() as i64;
            match self.closed_per_second.back_mut() {
                Some((last, count)) if *last >= second => *count += 1,
                _ => self.closed_per_second.push_back((second, 1)),
            }
            self.closed_recently += 1;
            let horizon = (self.clock - TOMBSTONE_LIFETIME_MAX).floor() as i64 - 1;
            while let Some(&(second, count)) = self.closed_per_second.front() {
                if second >= horizon {
                    break;
                }
                self.closed_recently -= count;
                self.closed_per_second.pop_front();
            }
            if self.closed_recently > self.cap {
                self.redo = true;
                return;
            }
        }
        self.collector.record_ended(record);
    }

    /// The records of the connections still open at the end, in the order they opened (as one
    /// thread finalises them): each worker sends its own in that order, a batch at a time, and the
    /// merge takes the lowest number among the workers' next ones.
    fn merge_still_open(&mut self) {
        if self.redo {
            for batches in &self.still_open {
                while batches.recv().is_ok() {}
            }
            return;
        }
        let workers = self.still_open.len();
        let mut queues: Vec<Queue<ConnectionRecord>> = (0..workers).map(|_| Vec::new().into_iter().peekable()).collect();
        let mut sending = vec![true; workers];
        loop {
            for worker in 0..workers {
                while sending[worker] && queues[worker].peek().is_none() {
                    match self.still_open[worker].recv() {
                        Ok(mut batch) => {
                            batch.iter_mut().for_each(|record| self.renumber(worker, record));
                            queues[worker] = batch.into_iter().peekable();
                        }
                        Err(_) => sending[worker] = false,
                    }
                }
            }
            let Some(worker) = lowest(&mut queues, |record| record.id) else { break };
            if let Some(record) = queues[worker].next() {
                self.collector.record_ended(record);
            }
        }
    }

    /// Gives the record the number its connection has over all workers instead of its worker's.
    fn renumber(&mut self, worker: usize, record: &mut ConnectionRecord) {
        let id = self.ids.remove(&(worker, record.id));
        debug_assert!(id.is_some(), "a connection ends after it opened");
        record.id = id.unwrap_or(record.id);
    }
}

/// One worker's records waiting to be merged.
type Queue<T> = std::iter::Peekable<std::vec::IntoIter<T>>;

/// The worker whose next record has the lowest `key` (no two workers' records share one), if any
/// record is left.
fn lowest<T, K: Ord>(queues: &mut [Queue<T>], key: impl Fn(&T) -> K) -> Option<usize> {
    queues
        .iter_mut()
        .enumerate()
        .filter_map(|(worker, records)| records.peek().map(|record| (key(record), worker)))
        .min()
        .map(|(_, worker)| worker)
}
