//! The kernel's socket states set beside the records' at the end of a live capture.
//!
//! Input: the records of the capture (from the pipeline's report) and one [`KernelSnapshot`] of the
//! socket tables taken when the capture stopped ([`crate::sockets::agreement`], which also judges
//! one socket's state against the packets'). Output: each record's `kernel_client_state` and
//! `kernel_server_state`, and the [`KernelAgreement`] counts for the report's `capture` section.

use crate::report::{ConnectionRecord, EndReason, KernelAgreement};
use crate::sockets::agreement::{judge, Judgement, KernelSnapshot};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Sets `record.kernel_client_state` and `kernel_server_state` from `snapshot`.
pub fn fill(snapshot: &KernelSnapshot, record: &mut ConnectionRecord) {
    let (client, server) = (record.client, record.server);
    record.kernel_client_state = snapshot.side(client, server).flatten();
    record.kernel_server_state = snapshot.side(server, client).flatten();
}

/// Fills in the kernel states of `records` from `snapshot` and counts agreement over every local
/// side. Only the latest connection of a 4-tuple is compared (an earlier one's socket is gone or
/// now the later one's): `latest` holds the id of the last connection opened on each (client,
/// server) pair over the whole capture, listed or not; a pair missing from it counts its latest
/// listed record. Neither replaced nor evicted connections are compared (their end state is not known).
pub fn compare(
    records: &mut [ConnectionRecord],
    snapshot: &KernelSnapshot,
    latest: &HashMap<(SocketAddr, SocketAddr), u64>,
) -> KernelAgreement {
    let mut latest_listed: HashMap<(SocketAddr, SocketAddr), u64> = HashMap::new();
    for r in records.iter() {
        let id = latest_listed.entry((r.client, r.server)).or_insert(r.id);
        *id = (*id).max(r.id);
    }
    let latest_listed: HashSet<u64> = latest_listed.into_values().collect();
    let is_latest = |r: &ConnectionRecord, tuple: (SocketAddr, SocketAddr)| match latest.get(&tuple) {
        Some(id) => *id == r.id,
        None => latest_listed.contains(&r.id),
    };
    let mut counts = KernelAgreement::default();
    for record in records.iter_mut() {
        let (client, server) = (record.client, record.server);
        if !is_latest(record, (client, server)) || !matches!(record.end, EndReason::Closed | EndReason::OpenAtEnd) {
            continue;
        }
        fill(snapshot, record);
        for (inferred, view) in [(record.client_state, snapshot.side(client, server)), (record.server_state, snapshot.side(server, client))]
        {
            let Some(kernel) = view else { continue };
            counts.compared += 1;
            match judge(inferred, kernel) {
                Judgement::Agree => counts.agree += 1,
                Judgement::TimeWaitGone => counts.time_wait_gone += 1,
                Judgement::Changed => counts.changed += 1,
            }
        }
    }
    counts.disagree = counts.time_wait_gone + counts.changed;
    counts
}
