//! Live capture: frames come from a [`FrameSource`] — a network device through libpcap
//! ([`device`]), or a saved capture replayed at its own pace ([`replay`], for tests and demos
//! without root) — and go to the same `pipeline::Pipeline` as files do.
//!
//! The capture loop ([`session`]) reads the source until a stop condition holds (a signal from
//! [`signals`], `--duration`, `--count`, the command run around the capture exiting, then
//! `--linger`), shows each event on standard error ([`view`]), saves every frame with
//! [`savefile`] when asked, attributes connections to local processes ([`attribution`]) and, when it
//! stops, sets the kernel's socket states beside the records' ([`agreement`]).

pub mod agreement;
pub mod attribution;
pub mod device;
pub mod replay;
pub mod savefile;
pub mod session;
pub mod signals;
pub mod view;

use crate::error::Error;
use crate::source::RawPacket;
use crate::wire::LinkType;

pub use device::{default_interface, parse_duration, LiveStats, ReadFailure, DEFAULT_BUFFER_MIB, DEFAULT_SNAPLEN, READ_TIMEOUT};

/// Where the frames of a live capture come from.
pub trait FrameSource {
    /// The link type of every frame.
    fn link(&self) -> LinkType;
    /// Hands the frames that have arrived (at most `limit`) to `each` after saving them to the
    /// savefile, and returns how many. With none waiting, first waits up to [`READ_TIMEOUT`] for
    /// some, so the caller checks its stop conditions regularly. An error ends the capture.
    fn read(&mut self, limit: Option<usize>, each: &mut dyn FnMut(RawPacket<'_>)) -> Result<usize, ReadFailure>;
    /// The source's counters since the capture started.
    fn stats(&mut self) -> Result<LiveStats, Error>;
    /// Why the savefile stopped being written, once a write failed (the disk is full).
    fn save_failure(&self) -> Option<&str>;
    /// Frames written whole to the savefile; `None` without one.
    fn saved(&self) -> Option<u64>;
}
