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
    let mut outcome = ReadOutcome::default();
    for path in paths {
        match map_capture(path) {
            Some((Format::Pcap, map)) => pcap_file::read(path, &map, bpf, &mut outcome, each)?,
            Some((Format::Pcapng, map)) => pcapng_file::read(path, &map, bpf, &mut outcome, each)?,
            None => libpcap_file::read(path, bpf, &mut outcome, each)?,
        }
        if outcome.warning.is_some() {
            break;
        }
    }
    Ok(outcome)
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

/// Pages of a map already walked are handed back to the kernel every this many bytes, so the
/// resident memory stays small however large the file.
const RELEASE_EVERY: usize = 16 << 20;

/// Hands the pages of `map` before `offset` back to the kernel, every [`RELEASE_EVERY`] bytes.
fn release_walked(map: &memmap2::Mmap, released: &mut usize, offset: usize) {
    if offset - *released >= RELEASE_EVERY {
        // SAFETY: a read-only file mapping: dropped pages are read again from the file if touched,
        // and no slice into them outlives the packet callback.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, *released, offset - *released) };
        *released = offset;
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
