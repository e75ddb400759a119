//! Packet sources: saved capture files. Live capture lives in `capture`.
//!
//! Capture files are memory-mapped and walked record by record with `pcap-parser` — classic pcap
//! in [`pcap_file`], pcapng in [`pcapng_file`] (each interface with its own link type) — with no copy
//! of the packets. Standard input goes through libpcap ([`libpcap_file`]), which also explains files
//! that are neither. A `-f` BPF filter is compiled by libpcap in every case.
//!
//! Several files are read one after the other, in the order given, into one flow table: a capture
//! rotated by `tcpdump -C`/`-G` reads as one. `-` reads a capture from standard input.

mod libpcap_file;
mod pcap_file;
mod pcapng_file;

use crate::decode::LinkType;
use crate::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};

/// One captured frame.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Epoch seconds.
    pub ts: f64,
    /// Captured bytes (at most the snaplen).
    pub data: &'a [u8],
    /// Frame length on the wire.
    pub orig_len: u32,
}

/// How reading a file ended.
#[derive(Clone, Debug, Default)]
pub struct ReadOutcome {
    /// Link type names of the files read, in order.
    pub link_types: Vec<&'static str>,
    /// Set when a file was damaged: where reading stopped and why.
    pub warning: Option<String>,
}

impl ReadOutcome {
    fn saw_link(&mut self, link: LinkType) {
        if !self.link_types.contains(&link.name()) {
            self.link_types.push(link.name());
        }
    }
}

/// Reads `paths` in order, calling `each` for every packet. Returns how reading ended.
///
/// A file that cannot be opened or has an unsupported link type is an error; a file that is damaged
/// part-way (truncated record, garbage) stops reading with a warning, keeping what was read.
pub fn read_files(paths: &[String], bpf: Option<&str>, each: &mut dyn FnMut(LinkType, RawPacket<'_>)) -> Result<ReadOutcome, Error> {
    Captures::open(paths).read(bpf, Walker::Alone, each)
}

/// Capture files opened for reading: memory-mapped when they are pcap or pcapng, otherwise left to
/// libpcap (standard input, files it will explain).
pub struct Captures {
    files: Vec<CaptureFile>,
}

struct CaptureFile {
    path: String,
    map: Option<(Format, memmap2::Mmap)>,
}

impl Captures {
    /// Opens `paths`; errors (a missing file, say) are reported when the file is read.
    pub fn open(paths: &[String]) -> Captures {
        Captures { files: paths.iter().map(|path| CaptureFile { path: path.clone(), map: map_capture(path) }).collect() }
    }

    /// True when every file is memory-mapped, so that several walkers can read them at once.
    pub fn all_mapped(&self) -> bool {
        self.files.iter().all(|f| f.map.is_some())
    }

    /// Reads the files in order, calling `each` for every packet, as [`read_files`] does. Several
    /// walkers may read at once (see [`SharedWalk`]); each sees every packet.
    pub fn read(&self, bpf: Option<&str>, walker: Walker<'_>, each: &mut dyn FnMut(LinkType, RawPacket<'_>)) -> Result<ReadOutcome, Error> {
        let mut outcome = ReadOutcome::default();
        for (index, file) in self.files.iter().enumerate() {
            let path = file.path.as_str();
            match &file.map {
                Some((format, map)) => {
                    let mut release = Release { map, file: index, released: 0, checked: 0, walker };
                    match format {
                        Format::Pcap => pcap_file::read(path, map, bpf, &mut release, &mut outcome, each)?,
                        Format::Pcapng => pcapng_file::read(path, map, bpf, &mut release, &mut outcome, each)?,
                    }
                }
                None => libpcap_file::read(path, bpf, &mut outcome, each)?,
            }
            if outcome.warning.is_some() {
                break;
            }
        }
        Ok(outcome)
    }
}

/// Capture file formats read from a memory map.
enum Format {
    Pcap,
    Pcapng,
}

/// Memory-maps `path` when it is a pcap or pcapng file (by its magic number); `None` for anything
/// else (standard input, unreadable or unknown files), which libpcap then reads or explains.
fn map_capture(path: &str) -> Option<(Format, memmap2::Mmap)> {
    if path == "-" {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() < 28 {
        return None;
    }
    // SAFETY: the map is read-only; a capture file being appended to while we read (tcpdump still
    // running) only grows, and we stop at the length seen when mapping.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let format = match u32::from_le_bytes([map[0], map[1], map[2], map[3]]) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => Format::Pcap,
        0x0a0d_0d0a => Format::Pcapng,
        _ => return None,
    };
    // Sequential read-ahead; failure only costs speed.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some((format, map))
}

/// Who walks the files: one reader alone, or one of several reading the same maps at once.
#[derive(Clone, Copy)]
pub enum Walker<'a> {
    Alone,
    /// Walker number `index` of a [`SharedWalk`].
    Shared(&'a SharedWalk, usize),
}

/// Where each of several walkers of the same files is, so that pages are handed back to the kernel
/// only once every walker has passed them (a page dropped too early would be read again).
pub struct SharedWalk {
    /// Per walker: file index in the high 24 bits, byte offset in the low 40.
    positions: Vec<AtomicU64>,
}

impl SharedWalk {
    /// Positions for `walkers` walkers, all at the start.
    pub fn new(walkers: usize) -> SharedWalk {
        SharedWalk { positions: (0..walkers).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Records that walker `index` reached `offset` in file `file`; returns how far in that file
    /// every walker has come.
    fn advance(&self, index: usize, file: usize, offset: usize) -> usize {
        let position = |file: usize, offset: usize| ((file as u64) << 40) | offset as u64;
        self.positions[index].store(position(file, offset), Ordering::Relaxed);
        let slowest = self.positions.iter().map(|p| p.load(Ordering::Relaxed)).min().unwrap_or(0);
        if slowest >> 40 == file as u64 {
            (slowest & ((1 << 40) - 1)) as usize
        } else if slowest >> 40 > file as u64 {
            offset
        } else {
            0
        }
    }
}

/// Asks the CPU to start loading the next record's header and the frame headers after it while
/// the current packet is analysed: a walk from record to record cannot know where the next record is
/// before the current one's length is read, so without this every record costs a wait on memory.
#[inline]
fn prefetch(next: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = next.as_ptr().cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the program,
        // whatever the address; `wrapping_add` keeps the pointer arithmetic defined.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(start);
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(64));
        }
    }
}

/// Pages of a map already walked are handed back to the kernel every this many bytes, so the
/// resident memory stays small however large the file.
const RELEASE_EVERY: usize = 16 << 20;

/// Hands the pages of one map back to the kernel as the walk passes them.
struct Release<'a> {
    map: &'a memmap2::Mmap,
    file: usize,
    /// Offset up to which pages were handed back.
    released: usize,
    /// Offset of the walk when it last looked at the other walkers.
    checked: usize,
    walker: Walker<'a>,
}

impl Release<'_> {
    /// The walk reached `offset`: pages before it (and before every other walker) go back to the
    /// kernel, every [`RELEASE_EVERY`] bytes.
    fn walked_to(&mut self, offset: usize) {
        if offset - self.checked < RELEASE_EVERY {
            return;
        }
        self.checked = offset;
        let passed = match self.walker {
            Walker::Alone => offset,
            Walker::Shared(walk, index) => walk.advance(index, self.file, offset),
        };
        if passed > self.released {
            // SAFETY: a read-only file mapping: dropped pages are read again from the file if
            // touched, so a slice into them (another walker's) still reads the file's bytes.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, self.released, passed - self.released) };
            self.released = passed;
        }
    }
}

/// The warning for a file damaged after `packets` good ones.
fn damaged(path: &str, packets: u64, what: &str) -> String {
    format!("{path}: reading stopped after packet {packets}: {what} (the file is truncated or damaged; the report covers the packets before that point)")
}

/// The link type for a DLT number, or the error naming it.
fn supported_link(path: &str, dlt: i32) -> Result<LinkType, Error> {
    LinkType::from_dlt(dlt).ok_or_else(|| Error::UnsupportedLinkType {
        path: path.to_string(),
        name: pcap::Linktype(dlt).get_name().unwrap_or_else(|_| format!("#{dlt}")),
        dlt,
    })
}

/// Compiles a BPF filter for packets of link type `dlt`, as libpcap would apply it to a file.
fn compile_filter(dlt: i32, filter: &str) -> Result<pcap::BpfProgram, Error> {
    let err = |reason: String| Error::Filter { filter: filter.to_string(), reason };
    let dead = pcap::Capture::dead(pcap::Linktype(dlt)).map_err(|e| err(pcap_message(&e)))?;
    dead.compile(filter, true).map_err(|e| err(pcap_message(&e)))
}

/// libpcap's own message for an error.
fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}
