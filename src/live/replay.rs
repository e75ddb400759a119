//! A saved capture replayed as if it were live: the frames of a pcap or pcapng file are delivered
//! when their time comes, measured from the first frame, so `connscope capture --replay FILE` runs
//! the whole capture loop — stop conditions, live view, `-w` savefile, signals, report — without
//! a device or root. Tests use it; so can a demo.
//!
//! The file is read whole when the source is opened (the BPF filter applied as for `analyze`), so a
//! replay holds the filtered capture in memory: it is meant for the small captures of tests and
//! demos. After the last frame the source behaves like a quiet device: reads wait and return none.

use super::savefile::Savefile;
use super::{FrameSource, LiveStats, ReadFailure, READ_TIMEOUT};
use crate::error::Error;
use crate::source::{self, RawPacket};
use crate::wire::LinkType;
use std::time::{Duration, Instant};

/// One frame of the replayed capture.
struct Frame {
    /// Seconds after the first frame.
    offset: f64,
    ts: f64,
    data: Vec<u8>,
    orig_len: u32,
}

/// A capture file replayed at its own pace.
pub struct Replay {
    link: LinkType,
    frames: Vec<Frame>,
    next: usize,
    started: Instant,
    savefile: Option<Savefile>,
}

impl Replay {
    /// Reads `path` (its frames that pass `filter`) and starts the clock; the savefile, if asked for,
    /// gets the replayed frames as they are delivered. A file with frames of several link types is
    /// an error: a live device has one.
    pub fn open(path: &str, filter: Option<&str>, save_to: Option<&str>) -> Result<Replay, Error> {
        let mut link = None;
        let mut mixed = false;
        let mut frames = Vec::new();
        let outcome = source::read_files(&[path.to_string()], filter, &mut |frame_link, raw| {
            mixed |= link.is_some_and(|l| l != frame_link);
            link.get_or_insert(frame_link);
            frames.push(Frame { offset: 0.0, ts: raw.ts, data: raw.data.to_vec(), orig_len: raw.orig_len });
        })?;
        if mixed {
            return Err(Error::Usage(format!("{path}: --replay needs one link type, and this capture has several")));
        }
        if let Some(warning) = outcome.warning {
            eprintln!("connscope: warning: {warning}");
        }
        let link = link.or_else(|| outcome.link_types.first().and_then(|name| LinkType::ALL.into_iter().find(|l| l.name() == *name)));
        let link = link.unwrap_or(LinkType::Ethernet);
        let first = frames.first().map_or(0.0, |f| f.ts);
        for frame in &mut frames {
            frame.offset = (frame.ts - first).max(0.0);
        }
        let savefile = match save_to {
            Some(path) => Some(
                Savefile::create(path, link.dlt(), super::DEFAULT_SNAPLEN)
                    .map_err(|e| Error::Create { path: path.to_string(), reason: e.to_string() })?,
            ),
            None => None,
        };
        Ok(Replay { link, frames, next: 0, started: Instant::now(), savefile })
    }
}

impl FrameSource for Replay {
    fn link(&self) -> LinkType {
        self.link
    }

    fn read(&mut self, limit: Option<usize>, each: &mut dyn FnMut(RawPacket<'_>)) -> Result<usize, ReadFailure> {
        let due = |frame: &Frame, started: Instant| started + Duration::from_secs_f64(frame.offset);
        match self.frames.get(self.next) {
            None => std::thread::sleep(READ_TIMEOUT),
            Some(frame) => {
                let wait = due(frame, self.started).saturating_duration_since(Instant::now());
                std::thread::sleep(wait.min(READ_TIMEOUT));
            }
        }
        let now = Instant::now();
        let mut delivered = 0;
        while let Some(frame) = self.frames.get(self.next) {
            if due(frame, self.started) > now || limit.is_some_and(|l| delivered >= l) {
                break;
            }
            if let Some(file) = &mut self.savefile {
                // pcap files hold 32-bit seconds and microseconds.
                let micros = (frame.ts * 1e6).round() as u64;
                file.write((micros / 1_000_000) as u32, (micros % 1_000_000) as u32, &frame.data, frame.orig_len);
            }
            each(RawPacket { ts: frame.ts, data: &frame.data, orig_len: frame.orig_len });
            self.next += 1;
            delivered += 1;
        }
        if let Some(file) = &mut self.savefile {
            file.flush();
        }
        Ok(delivered)
    }

    fn stats(&mut self) -> Result<LiveStats, Error> {
        Ok(LiveStats { received: self.next as u64, dropped_by_kernel: 0, dropped_by_interface: 0 })
    }

    fn save_failure(&self) -> Option<&str> {
        self.savefile.as_ref().and_then(Savefile::failure)
    }

    fn saved(&self) -> Option<u64> {
        self.savefile.as_ref().map(Savefile::saved)
    }
}
