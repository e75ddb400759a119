//! A progress bar on standard error for big capture files read on a terminal (indicatif).
//!
//! Input: the bytes read so far, from the pipeline's readers. Output: the bar on standard error.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Files smaller than this in total finish before a bar is worth drawing.
const MIN_BYTES: u64 = 64 << 20;
/// The bar is moved once per this many packets: drawing is kept off the per-packet path.
const PACKETS_PER_TICK: u64 = 1 << 16;

/// Progress through capture files, by bytes (each record's captured length plus its header).
pub struct FileProgress {
    bar: Option<ProgressBar>,
    bytes: u64,
    packets: u64,
}

impl FileProgress {
    /// A bar for `paths` when standard error is a terminal and the files are big; otherwise nothing.
    pub fn new(paths: &[String]) -> FileProgress {
        let total: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let bar = (std::io::stderr().is_terminal() && total >= MIN_BYTES).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}, {eta} left  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        FileProgress { bar, bytes: 0, packets: 0 }
    }

    /// One packet of `captured` bytes was read.
    pub fn packet(&mut self, captured: usize) {
        let Some(bar) = &self.bar else { return };
        // 16 bytes of record header in pcap; an estimate for pcapng, close enough for a bar.
        self.bytes += captured as u64 + 16;
        self.packets += 1;
        if self.packets % PACKETS_PER_TICK == 0 {
            bar.set_position(self.bytes);
            bar.set_message(format!("{} packets", self.packets));
        }
    }

    /// `packets` packets of `captured` bytes in all were read.
    pub fn packets(&mut self, packets: u64, captured: u64) {
        let Some(bar) = &self.bar else { return };
        self.bytes += captured + 16 * packets;
        let before = self.packets;
        self.packets += packets;
        if before / PACKETS_PER_TICK != self.packets / PACKETS_PER_TICK {
            bar.set_position(self.bytes);
            bar.set_message(format!("{} packets", self.packets));
        }
    }

    /// Removes the bar before the report is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
