//! What the kernel says about each connection of a live capture: which local processes are behind
//! it, found off the capture loop, and (once the capture stopped) its sockets' states.
//!
//! When a connection opens, its addresses go to a resolver thread through a bounded queue that the
//! capture loop never waits on (when it is full the request is dropped and the connection stays
//! unattributed). The thread asks the kernel for each side's socket and `/proc` for its owner
//! ([`sockets::resolve_process`]: microseconds on a cache hit, tens of milliseconds on a miss) and
//! posts the answers in a shared map. A side not found yet is tried again a few times over about
//! half a second: a server's socket has no owner until the application accepts it.
//!
//! When the capture stops, [`Attribution::capture_stopped`] tries once more, from one dump of the
//! socket tables and one scan of `/proc`, for the connections still open. Each record is completed
//! by [`Attribution::enrich`] as it is made. A connection that ended before either attempt saw its
//! sockets (closed within milliseconds, or its client socket already in TIME_WAIT, which no
//! process holds) stays unattributed: `null` in the report.

use super::agreement;
use crate::report::{ConnectionRecord, KernelAgreement};
use crate::sockets::agreement::KernelSnapshot;
use crate::sockets::process::ProcessIndex;
use crate::sockets::{self, ProcessInfo};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// New connections waiting for the resolver thread; more are dropped (left unattributed).
const QUEUE: usize = 4096;
/// Connections waiting to be tried again; more are not retried.
const MAX_RETRIES_PENDING: usize = 16_384;
/// 4-tuples whose latest connection is remembered for the end-state comparison (about 100 bytes each).
const MAX_TUPLES: usize = 200_000;
/// Delay before each retry of a side not found (the last one about half a second after the open).
const RETRY_DELAYS: [Duration; 3] = [Duration::from_millis(30), Duration::from_millis(120), Duration::from_millis(400)];
/// How long the resolver thread sleeps when it has nothing to do (it also wakes on a request).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The processes found for one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Owners {
    /// The process holding the client's socket.
    client: Option<ProcessInfo>,
    /// The process holding the server's socket.
    server: Option<ProcessInfo>,
}

impl Owners {
    fn complete(&self) -> bool {
        self.client.is_some() && self.server.is_some()
    }
}

/// A connection to attribute.
#[derive(Clone, Copy, Debug)]
struct Request {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
}

/// The connections open now, by id, with what was found of their owners so far. The capture
/// loop adds a connection when it opens and takes it out when its record is made; the resolver
/// thread only fills in connections still there, so a late answer for an ended one is dropped.
type Slots = Arc<Mutex<HashMap<u64, Slot>>>;

/// One open connection's addresses and owners.
#[derive(Clone, Debug)]
struct Slot {
    client: SocketAddr,
    server: SocketAddr,
    owners: Owners,
}

/// Attributes connections to processes for one capture; also completes each record with the
/// kernel's states once the capture has stopped.
pub struct Attribution {
    requests: Option<SyncSender<Request>>,
    slots: Slots,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    snapshot: Option<KernelSnapshot>,
    /// The last connection opened on each (client, server) pair: only it is compared with the kernel.
    latest: HashMap<(SocketAddr, SocketAddr), u64>,
}

impl Attribution {
    /// Starts the resolver thread. Without a thread (the system refused one) connections are
    /// attributed only when the capture stops.
    pub fn start() -> Attribution {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let slots = Slots::default();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (slots, stop) = (Arc::clone(&slots), Arc::clone(&stop));
            std::thread::Builder::new().name("connscope-resolver".into()).spawn(move || resolve_loop(&rx, &slots, &stop)).ok()
        };
        Attribution { requests: worker.is_some().then_some(tx), slots, stop, worker, snapshot: None, latest: HashMap::new() }
    }

    /// Connection `id` opened between `client` and `server`: queue it for the resolver. Never waits
    /// for a lookup.
    pub fn opened(&mut self, id: u64, client: SocketAddr, server: SocketAddr) {
        if self.latest.len() < MAX_TUPLES || self.latest.contains_key(&(client, server)) {
            self.latest.insert((client, server), id);
        }
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(id, Slot { client, server, owners: Owners::default() });
        }
        if let Some(tx) = &self.requests {
            // A full queue drops the request: the capture loop must not wait.
            let _ = tx.try_send(Request { id, client, server });
        }
    }

    /// The capture has stopped: ends the resolver thread, tries once more for the connections still
    /// open from `snapshot` (one scan of `/proc` for all of them), and keeps `snapshot` so the
    /// records made from now on carry the kernel's states.
    pub fn capture_stopped(&mut self, snapshot: Option<KernelSnapshot>) {
        self.stop.store(true, Ordering::SeqCst);
        self.requests = None;
        if let Some(worker) = self.worker.take() {
            // The thread ends after the lookup in progress; a panic there only loses its answers.
            let _ = worker.join();
        }
        if let Some(snapshot) = &snapshot {
            self.resolve_open(snapshot);
        }
        self.snapshot = snapshot;
    }

    /// Fills in the kernel states of `records` and counts how many local sockets agree with the
    /// packets; `None` when the socket tables could not be read when the capture stopped.
    pub fn compare(&self, records: &mut [ConnectionRecord]) -> Option<KernelAgreement> {
        Some(agreement::compare(records, self.snapshot.as_ref()?, &self.latest))
    }

    /// Fills in the record's processes (and kernel states, after the capture stopped).
    pub fn enrich(&mut self, record: &mut ConnectionRecord) {
        if let Some(slot) = self.slots.lock().ok().and_then(|mut s| s.remove(&record.id)) {
            record.client_process = slot.owners.client;
            record.server_process = slot.owners.server;
        }
        if let Some(snapshot) = &self.snapshot {
            agreement::fill(snapshot, record);
        }
    }

    /// Finds the owners of the still-open connections' sockets that have none yet.
    fn resolve_open(&mut self, snapshot: &KernelSnapshot) {
        let Ok(mut slots) = self.slots.lock() else { return };
        let mut wanted: Vec<(u64, bool, u64)> = Vec::new();
        for (&id, slot) in slots.iter() {
            let sides = [(true, slot.client, slot.server, &slot.owners.client), (false, slot.server, slot.client, &slot.owners.server)];
            for (is_client, local, remote, found) in sides {
                if let Some(socket) = snapshot.socket(local, remote).filter(|s| found.is_none() && s.inode != 0) {
                    wanted.push((id, is_client, socket.inode));
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let inodes: HashSet<u64> = wanted.iter().map(|w| w.2).collect();
        let owners = ProcessIndex::new().owners_of(&inodes);
        for (id, is_client, inode) in wanted {
            let (Some(owner), Some(slot)) = (owners.get(&inode), slots.get_mut(&id)) else { continue };
            let side = if is_client { &mut slot.owners.client } else { &mut slot.owners.server };
            *side = Some(owner.clone());
        }
    }
}

impl Drop for Attribution {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A request waiting to be tried again.
struct Retry {
    due: Instant,
    attempt: usize,
    request: Request,
}

/// The resolver thread: answers requests as they come, and retries sides not found yet.
fn resolve_loop(requests: &Receiver<Request>, slots: &Mutex<HashMap<u64, Slot>>, stop: &AtomicBool) {
    let mut retries: Vec<Retry> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wait = retries.iter().map(|r| r.due.saturating_duration_since(now)).min().unwrap_or(IDLE_WAIT);
        match requests.recv_timeout(wait) {
            Ok(request) => attempt(request, 0, slots, &mut retries),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let (due, later): (Vec<Retry>, Vec<Retry>) = retries.drain(..).partition(|r| r.due <= now);
        retries = later;
        for r in due {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            attempt(r.request, r.attempt, slots, &mut retries);
        }
    }
}

/// Looks up the owners of the request's sockets not found yet (nothing when the connection has
/// already ended), posts what it finds, and schedules a retry while a side is missing and
/// retries are left.
fn attempt(request: Request, attempt: usize, slots: &Mutex<HashMap<u64, Slot>>, retries: &mut Vec<Retry>) {
    let Request { id, client, server } = request;
    let Some(mut owners) = slots.lock().ok().and_then(|s| Some(s.get(&id)?.owners.clone())) else { return };
    if owners.client.is_none() {
        owners.client = sockets::resolve_process(client, server);
    }
    if owners.server.is_none() {
        owners.server = sockets::resolve_process(server, client);
    }
    let complete = owners.complete();
    match slots.lock().ok().as_mut().and_then(|s| s.get_mut(&id)) {
        Some(slot) => slot.owners = owners,
        None => return,
    }
    if !complete && retries.len() < MAX_RETRIES_PENDING {
        if let Some(delay) = RETRY_DELAYS.get(attempt) {
            retries.push(Retry { due: Instant::now() + *delay, attempt: attempt + 1, request });
        }
    }
}
