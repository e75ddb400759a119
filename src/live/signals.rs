//! The stop signals of a live capture (SIGINT, SIGTERM, SIGHUP), counted and told apart.
//!
//! The handler only records the signal in atomics (async-signal-safe); the capture loop reads them
//! with [`StopSignals::count`] and [`StopSignals::first`] at its next turn (at most
//! `capture::READ_TIMEOUT` later: a signal also wakes the loop's `poll(2)` early).

use crate::report::EndedBy;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// Stop signals received since [`StopSignals::install`].
static COUNT: AtomicU32 = AtomicU32::new(0);
/// The first stop signal received, 0 before any.
static FIRST: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    let _ = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// The installed handlers of the stop signals.
pub struct StopSignals(());

impl StopSignals {
    /// Installs the handler for SIGINT, SIGTERM and SIGHUP. System calls interrupted by them are
    /// restarted, except `poll(2)`, which returns early.
    pub fn install() -> std::io::Result<StopSignals> {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction is valid; the handler only touches atomics, which is
            // async-signal-safe, and stays valid for the life of the process.
            let installed = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            if installed != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(StopSignals(()))
    }

    /// How many stop signals have arrived.
    pub fn count(&self) -> u32 {
        COUNT.load(Ordering::SeqCst)
    }

    /// The first stop signal, as the report's `capture.ended_by` names it: `interrupted` (SIGINT),
    /// `terminated` (SIGTERM) or `hangup` (SIGHUP); `None` before any.
    pub fn first(&self) -> Option<EndedBy> {
        match FIRST.load(Ordering::SeqCst) {
            libc::SIGINT => Some(EndedBy::Interrupted),
            libc::SIGTERM => Some(EndedBy::Terminated),
            libc::SIGHUP => Some(EndedBy::Hangup),
            _ => None,
        }
    }
}
