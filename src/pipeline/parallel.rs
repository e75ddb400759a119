//! Analysing memory-mapped capture files on several threads, with the report one thread would give.
//!
//! Input: capture files (memory-mapped, from `analyze --threads`). Output: the same [`Finished`]
//! analysis, records and observer calls as the single-threaded [`super::Pipeline`].
//!
//! The first worker, the leader, walks the files and owns a share of the connections; each other
//! worker, a follower, owns `FOLLOWER_SHARES` (1) shares (the walk is the leader's extra work): a hash
//! of the two endpoints, the same in both directions, picks the owner. Whose a frame is, and whether
//! it is on the selected port, is read from a few fixed fields ([`Endpoints::of`]) without decoding
//! it. The leader decodes, counts and analyses its own; a follower's packets go to it as they lie
//! in the map (a few words each, a chunk at a time), and it decodes, counts and analyses them,
//! loading their headers a few packets ahead (it knows where they are; a walk must read each record
//! to find the next). Frames that are not plainly IP and TCP (fragments, VLAN tags, anything
//! unusual) are decoded and counted by the leader, and their segments analysed by their owner.
//!
//! Each worker has its own flow table, and answers every chunk of `CHUNK_PACKETS` (4,096) packets
//! with the connections it opened and the records of those that ended, with the index of the
//! packet that opened or ended them. The calling thread merges the workers' answers chunk by chunk
//! in packet order: connections get the numbers a single thread gives them (in the order they
//! opened), and their records reach the report and the observer in the order they ended.
//!
//! The report is always the one a single thread gives. Each worker sees every packet's timestamp,
//! so its table ages tombstones by the capture's clock as one thread's does. Each worker may hold
//! `--max-connections` itself, so it never evicts before one thread would; the merge counts the
//! connections open at once over all workers in packet order, and the tombstones closed connections
//! may have left, and when either reaches the cap (where one thread evicts a connection or drops
//! tombstones, a choice that depends on the whole table) the analysis stops and is done again on one
//! thread ([`Redo`]); what the observer was shown before is not shown again.

use crate::decode::{decode, Decoded, Endpoints, OwnedSegment, Segment};
use crate::error::Error;
use crate::pipeline::progress::FileProgress;
use crate::pipeline::{Collector, Finished, Intake, Observer, Options, Taken};
use crate::protocol::ProtocolSummary;
use crate::report::{Amendment, ConnectionRecord, EndReason};
use crate::source::{prefetch, Captures, RawPacket, ReadOutcome};
use crate::tcp::{FlowEvent, FlowSink, FlowTable, TcpFacts, TOMBSTONE_LIFETIME_MAX};
use crate::wire::LinkType;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Packets per chunk: each chunk costs every worker a message and the merge a wake-up (4,096 took
/// 0.05 s off 0.74 s on the bench capture, against 1,024).
const CHUNK_PACKETS: u64 = 4096;
/// Chunks a worker may run ahead of the merge: bounds the findings held in flight, and the pages
/// of the map not handed back yet (3 gave peaks of 73 MB RSS on the bench capture, 2 at most 53 MB,
/// in the same time).
const CHUNKS_IN_FLIGHT: usize = 2;
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
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut threads = Vec::with_capacity(workers);
        let mut answers = Vec::with_capacity(workers);
        let mut still_open = Vec::with_capacity(workers);
        let (leader_answers, answer_receiver) = sync_channel(CHUNKS_IN_FLIGHT);
        let (leader_open, open_receiver) = sync_channel(1);
        answers.push(answer_receiver);
        still_open.push(open_receiver);
        let mut followers = Vec::with_capacity(workers - 1);
        for _ in 1..workers {
            let (answer_sender, answer_receiver) = sync_channel(CHUNKS_IN_FLIGHT);
            let (open_sender, open_receiver) = sync_channel(1);
            let (batch_sender, batch_receiver) = sync_channel(CHUNKS_IN_FLIGHT);
            let follower = Follower { analyst: Analyst::new(options, answer_sender) };
            threads.push(scope.spawn(move || follower.run(&batch_receiver, open_sender)));
            answers.push(answer_receiver);
            still_open.push(open_receiver);
            followers.push(batch_sender);
        }
        let leader = Leader {
            analyst: Analyst::new(options, leader_answers),
            workers,
            port: options.port,
            batches: followers.iter().map(|_| Batch { entries: Vec::new(), capture_start: None }).collect(),
            followers,
            next: 0,
            chunk_packets: 0,
            chunk_bytes: 0,
            start_ts: None,
            latest_ts: f64::MIN,
        };
        let stop_flag = &stop;
        threads.insert(0, scope.spawn(move || leader.run(captures, bpf, stop_flag, leader_open)));
        let mut merger = Merger::new(options, observer, still_open);
        while merger.merge_next(&answers, captures, progress) {
            if merger.redo {
                // The rest of this analysis is not needed: the walks stop where they are.
                stop.store(true, Ordering::Relaxed);
            }
        }
        merger.merge_still_open();
        let mut ends = Vec::with_capacity(workers);
        for thread in threads {
            match thread.join() {
                Ok(end) => ends.push(end),
                // A bug in a worker: passed on as it would be on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        if merger.redo {
            // The one-thread analysis reads the files again from their start.
            captures.hand_back_all();
            return (Err(Redo { notified: merger.collector.notified }), ends.swap_remove(0).outcome);
        }
        let (finished, outcome) = merger.finish(ends);
        (Ok(finished), outcome)
    })
}

/// Shares of the connections: the leader, which also walks the files and hands the packets on,
/// owns one share, each follower [`FOLLOWER_SHARES`]. On 2 cores 1 and 2 take the same time (2 holds
/// more in flight); 3 leaves the walk's waits for memory uncovered by the leader's own work and
/// takes longer (the leader waited half its time on the next record's header).
const FOLLOWER_SHARES: u64 = 1;

/// Which of `workers` owns the connection between two endpoints, whichever side sent: the leader
/// (0) for one share of the hashes, each follower for [`FOLLOWER_SHARES`].
fn owner(ends: &Endpoints, workers: usize) -> usize {
    let mix = |ip: u128, port: u16| ((ip as u64) ^ ((ip >> 64) as u64) ^ u64::from(port)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let hash = mix(ends.src, ends.src_port) ^ mix(ends.dst, ends.dst_port);
    let shares = 1 + FOLLOWER_SHARES * (workers as u64 - 1);
    match (hash >> 32) % shares {
        0 => 0,
        share => (1 + (share - 1) / FOLLOWER_SHARES) as usize,
    }
}

/// What a worker sends the merge for each chunk.
struct Answer<'c> {
    chunk: Chunk,
    /// The chunk's last packet: once every worker's chunk is merged, the pages before it can go back
    /// to the kernel.
    last_packet: Option<&'c [u8]>,
    /// Packets and captured bytes of the chunk, for the progress bar.
    packets: u64,
    bytes: u64,
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

/// What a worker hands back when its walk is over.
struct WorkerEnd {
    /// The frames it counted (each frame is counted by one worker).
    counted: Intake,
    /// Segments after a close in its table.
    after_close: u64,
    /// Epoch seconds of the capture's first analysed packet.
    start_ts: Option<f64>,
    outcome: Result<ReadOutcome, Error>,
}

/// One analysing thread's flow table, for the connections it owns, and what it found so far.
struct Analyst<'c> {
    table: FlowTable,
    sink: ChunkSink,
    /// The frames this thread counted: a follower its own plain TCP frames, the leader every
    /// other frame.
    counted: Intake,
    answers: SyncSender<Answer<'c>>,
}

impl<'c> Analyst<'c> {
    fn new(options: &Options, answers: SyncSender<Answer<'c>>) -> Analyst<'c> {
        Analyst {
            // The whole cap: a worker holds no more than all of them together, so it never evicts
            // before one thread would (and the merge redoes the analysis when one thread would).
            table: FlowTable::new(options.port, options.max_connections).with_tls_keys(options.tls_keys.clone()),
            sink: ChunkSink::default(),
            counted: Intake::new(options.port),
            answers,
        }
    }

    /// Analyses `seg`, packet `index` of the walk, at the capture's clock `latest_ts`.
    fn process(&mut self, index: u64, latest_ts: f64, seg: &Segment<'_>) {
        self.table.observe_time(latest_ts);
        self.sink.packet = index;
        self.table.process(seg, &mut self.sink);
    }

    /// Sends the merge what this thread found in the chunk.
    fn answer(&mut self, last_packet: Option<&'c [u8]>, packets: u64, bytes: u64) {
        let answer = Answer { chunk: self.sink.next_chunk(), last_packet, packets, bytes };
        // The merge only hangs up when it is going down.
        let _ = self.answers.send(answer);
    }

    /// The analysis is over: the records of the connections still open go to the merge.
    fn finish(
        mut self,
        still_open: SyncSender<Vec<ConnectionRecord>>,
        start_ts: Option<f64>,
        outcome: Result<ReadOutcome, Error>,
    ) -> WorkerEnd {
        drop(self.answers);
        let mut open = StillOpenSink { batch: Vec::with_capacity(STILL_OPEN_BATCH), sender: still_open };
        self.table.finish(&mut open);
        open.send();
        WorkerEnd { counted: self.counted, after_close: self.table.counters().after_close, start_ts, outcome }
    }
}

/// A packet the walk hands a follower, with its index in the walk and the capture's clock then.
struct Entry<'c> {
    index: u64,
    latest_ts: f64,
    packet: Handed<'c>,
}

/// How a follower gets a packet.
enum Handed<'c> {
    /// A plain TCP frame on the selected port: the follower decodes and counts it.
    Plain(LinkType, RawPacket<'c>),
    /// Another frame holding a TCP segment, counted by the walk: the follower decodes it again.
    Counted(LinkType, RawPacket<'c>),
    /// A segment the walk rebuilt from IP fragments.
    Reassembled(Box<OwnedSegment>),
}

/// What the walk sends a follower for one chunk.
struct Batch<'c> {
    entries: Vec<Entry<'c>>,
    /// Set on the chunk holding the capture's first analysed packet.
    capture_start: Option<f64>,
}

/// Workers after the first: each analyses the packets the walk hands it.
struct Follower<'c> {
    analyst: Analyst<'c>,
}

/// How many packets ahead a follower asks the CPU to load the frame headers: it knows where they
/// are, unlike the walk, which must read each record to find the next.
const FOLLOWER_PREFETCH: usize = 4;

impl<'c> Follower<'c> {
    fn run(mut self, batches: &Receiver<Batch<'c>>, still_open: SyncSender<Vec<ConnectionRecord>>) -> WorkerEnd {
        while let Ok(batch) = batches.recv() {
            if let Some(ts) = batch.capture_start {
                self.analyst.table.set_capture_start(ts);
            }
            for (at, entry) in batch.entries.iter().enumerate() {
                if let Some(Entry { packet: Handed::Plain(_, raw) | Handed::Counted(_, raw), .. }) =
                    batch.entries.get(at + FOLLOWER_PREFETCH)
                {
                    prefetch(raw.data);
                }
                self.entry(entry);
            }
            self.analyst.answer(None, 0, 0);
        }
        self.analyst.finish(still_open, None, Ok(ReadOutcome::default()))
    }

    fn entry(&mut self, entry: &Entry<'c>) {
        let analyst = &mut self.analyst;
        match &entry.packet {
            Handed::Plain(link, raw) => {
                let decoded = decode(*link, raw.data, raw.orig_len, raw.ts);
                if let Taken::Segment(seg) = analyst.counted.take(&decoded) {
                    analyst.process(entry.index, entry.latest_ts, seg);
                }
            }
            Handed::Counted(link, raw) => {
                if let Decoded::Tcp(seg) = decode(*link, raw.data, raw.orig_len, raw.ts) {
                    analyst.process(entry.index, entry.latest_ts, &seg);
                }
            }
            Handed::Reassembled(owned) => analyst.process(entry.index, entry.latest_ts, &owned.segment()),
        }
    }
}

/// The first worker: it walks the files, analyses the connections it owns, and hands the packets
/// of the others' connections to them.
struct Leader<'c> {
    analyst: Analyst<'c>,
    workers: usize,
    port: Option<u16>,
    followers: Vec<SyncSender<Batch<'c>>>,
    /// Per follower, its packets of the chunk so far.
    batches: Vec<Batch<'c>>,
    /// Index of the next packet.
    next: u64,
    /// Packets and captured bytes of the chunk so far.
    chunk_packets: u64,
    chunk_bytes: u64,
    /// Epoch seconds of the capture's first analysed packet.
    start_ts: Option<f64>,
    /// The latest timestamp of the analysed packets so far, whichever worker owns them.
    latest_ts: f64,
}

impl<'c> Leader<'c> {
    fn run(
        mut self,
        captures: &'c Captures,
        bpf: Option<&str>,
        stop: &AtomicBool,
        still_open: SyncSender<Vec<ConnectionRecord>>,
    ) -> WorkerEnd {
        let mut last_packet = None;
        let outcome = captures.read_mapped(bpf, stop, &mut |link, raw| {
            self.packet(link, raw);
            last_packet = Some(raw.data);
            if self.next % CHUNK_PACKETS == 0 {
                self.end_chunk(last_packet);
            }
        });
        self.analyst.counted.finish();
        self.end_chunk(last_packet);
        drop(self.followers);
        self.analyst.finish(still_open, self.start_ts, outcome)
    }

    /// One packet of the walk: analysed here when this worker owns its connection, handed to the
    /// follower that owns it otherwise; its timestamp moves the clock when it is a segment on the
    /// selected port, whoever owns it.
    fn packet(&mut self, link: LinkType, raw: RawPacket<'c>) {
        let index = self.next;
        self.next += 1;
        self.chunk_packets += 1;
        self.chunk_bytes += raw.data.len() as u64;
        let Some(ends) = Endpoints::of(link, raw.data) else {
            let decoded = decode(link, raw.data, raw.orig_len, raw.ts);
            match self.analyst.counted.take(&decoded) {
                Taken::Segment(seg) => {
                    let handed = Handed::Counted(link, raw);
                    self.segment(index, seg, Endpoints::of_segment(seg), handed);
                }
                Taken::Reassembled(owned) => {
                    let (ts, ends) = {
                        let seg = owned.segment();
                        (seg.ts, Endpoints::of_segment(&seg))
                    };
                    self.clock(ts);
                    match owner(&ends, self.workers) {
                        0 => self.analyst.process(index, self.latest_ts, &owned.segment()),
                        follower => self.hand(follower, index, Handed::Reassembled(Box::new(owned))),
                    }
                }
                Taken::Nothing => {}
            }
            return;
        };
        if !self.port.is_none_or(|port| ends.src_port == port || ends.dst_port == port) {
            // Counted here, whoever would own it: it is not analysed.
            let decoded = decode(link, raw.data, raw.orig_len, raw.ts);
            self.analyst.counted.take(&decoded);
            return;
        }
        self.clock(raw.ts);
        match owner(&ends, self.workers) {
            0 => {
                let decoded = decode(link, raw.data, raw.orig_len, raw.ts);
                if let Taken::Segment(seg) = self.analyst.counted.take(&decoded) {
                    self.analyst.process(index, self.latest_ts, seg);
                }
            }
            follower => self.hand(follower, index, Handed::Plain(link, raw)),
        }
    }

    /// A segment on the selected port that only decoding found: analysed here or handed on.
    fn segment(&mut self, index: u64, seg: &Segment<'_>, ends: Endpoints, handed: Handed<'c>) {
        self.clock(seg.ts);
        match owner(&ends, self.workers) {
            0 => self.analyst.process(index, self.latest_ts, seg),
            follower => self.hand(follower, index, handed),
        }
    }

    fn hand(&mut self, follower: usize, index: u64, packet: Handed<'c>) {
        self.batches[follower - 1].entries.push(Entry { index, latest_ts: self.latest_ts, packet });
    }

    /// The clock of the analysed packets moves to `ts`; the first one sets the capture's start,
    /// which relative times count from, whichever worker owns it.
    fn clock(&mut self, ts: f64) {
        if self.start_ts.is_none() {
            self.start_ts = Some(ts);
            self.analyst.table.set_capture_start(ts);
            for batch in &mut self.batches {
                batch.capture_start = Some(ts);
            }
        }
        self.latest_ts = self.latest_ts.max(ts);
    }

    /// The chunk is over: each follower gets its packets of it, and the merge what this worker found.
    fn end_chunk(&mut self, last_packet: Option<&'c [u8]>) {
        for (sender, batch) in self.followers.iter().zip(&mut self.batches) {
            let entries = Vec::with_capacity(batch.entries.len());
            let full = std::mem::replace(batch, Batch { entries, capture_start: None });
            // A follower only hangs up when it panicked; the join reports that.
            let _ = sender.send(full);
        }
        let (packets, bytes) = (std::mem::take(&mut self.chunk_packets), std::mem::take(&mut self.chunk_bytes));
        self.analyst.answer(last_packet, packets, bytes);
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
    fn wants_protocol_events(&self) -> bool {
        false
    }

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
struct Merger<'o> {
    collector: Collector<'o>,
    /// Per worker, the records of its connections still open at the end, in batches.
    still_open: Vec<Receiver<Vec<ConnectionRecord>>>,
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

impl<'o> Merger<'o> {
    fn new(options: &Options, observer: &'o mut dyn Observer, still_open: Vec<Receiver<Vec<ConnectionRecord>>>) -> Merger<'o> {
        Merger {
            collector: Collector::new(options.listed_connections, observer),
            still_open,
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

    /// Merges the next chunk, waiting for every worker's answer to it; then the pages before it go
    /// back to the kernel, and the progress bar moves on. False when the workers have answered
    /// every chunk (or, the analysis being abandoned, when one has stopped).
    fn merge_next<'c>(&mut self, answers: &[Receiver<Answer<'c>>], captures: &Captures, progress: &mut FileProgress) -> bool {
        let mut chunks = Vec::with_capacity(answers.len());
        let mut last_packet = None;
        for (worker, receiver) in answers.iter().enumerate() {
            let Ok(answer) = receiver.recv() else {
                // Every worker sends as many chunks, unless the walks were stopped: what the
                // others still send is not needed.
                for receiver in &answers[worker + 1..] {
                    while receiver.recv().is_ok() {}
                }
                return false;
            };
            if worker == 0 {
                progress.packets(answer.packets, answer.bytes);
                last_packet = answer.last_packet;
            }
            chunks.push(answer.chunk);
        }
        if !self.redo {
            self.merge(chunks);
        }
        if let Some(packet) = last_packet {
            captures.hand_back_before(packet);
        }
        true
    }

    /// The analysis, with the workers' counts, once every chunk and every still open connection is
    /// merged; the read's outcome is the first worker's (every walk reads the same files).
    fn finish(self, ends: Vec<WorkerEnd>) -> (Finished<'o>, Result<ReadOutcome, Error>) {
        let mut ends = ends.into_iter();
        let first = ends.next().expect("at least one worker");
        let mut intake = first.counted;
        intake.packets.after_close = first.after_close;
        for end in ends {
            intake.add(end.counted);
            intake.packets.after_close += end.after_close;
        }
        (Finished { intake, collector: self.collector, start_ts: first.start_ts }, first.outcome)
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
