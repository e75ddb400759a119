//! Packet sources: saved capture files. Live capture lives in `capture`.
//!
//! Classic pcap files are memory-mapped and walked record by record with `pcap-parser` (no copy of
//! the packets: the whole analysis runs faster than libpcap can merely read the file); pcapng files
//! and standard input go through libpcap. A `-f` BPF filter is compiled by libpcap either way.
//!
//! Several files are read one after the other, in the order given, into one flow table: a capture
//! rotated by `tcpdump -C`/`-G` reads as one. `-` reads a capture from standard input.

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

/// Reads `paths` in order, calling `each` for every packet. Returns how reading ended.
///
/// A file that cannot be opened or has an unsupported link type is an error; a file that is damaged
/// part-way (truncated record, garbage) stops reading with a warning, keeping what was read.
pub fn read_files(paths: &[String], bpf: Option<&str>, each: &mut dyn FnMut(LinkType, RawPacket<'_>)) -> Result<ReadOutcome, Error> {
    let mut outcome = ReadOutcome::default();
    for path in paths {
        if let Some(map) = map_classic_pcap(path) {
            read_mapped_pcap(path, &map, bpf, &mut outcome, each)?;
        } else {
            read_with_libpcap(path, bpf, &mut outcome, each)?;
        }
        if outcome.warning.is_some() {
            break;
        }
    }
    Ok(outcome)
}

/// Largest record libpcap accepts (its MAXIMUM_SNAPLEN); a larger length means a damaged record.
const MAX_RECORD_LEN: u32 = 262_144;

/// Memory-maps `path` when it is a classic pcap file (by its magic number); `None` for anything else
/// (pcapng, standard input, unreadable files), which libpcap then reads or explains.
fn map_classic_pcap(path: &str) -> Option<memmap2::Mmap> {
    if path == "-" {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() < 24 {
        return None;
    }
    // SAFETY: the map is read-only; a capture file being appended to while we read (tcpdump still
    // running) only grows, and we stop at the length seen when mapping.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let magic = u32::from_le_bytes([map[0], map[1], map[2], map[3]]);
    matches!(magic, 0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1).then_some(map)
}

/// Pages of the map already walked are handed back to the kernel every this many bytes, so the
/// resident memory stays small however large the file.
const RELEASE_EVERY: usize = 16 << 20;

/// Walks a memory-mapped classic pcap file.
fn read_mapped_pcap(
    path: &str,
    map: &memmap2::Mmap,
    bpf: Option<&str>,
    outcome: &mut ReadOutcome,
    each: &mut dyn FnMut(LinkType, RawPacket<'_>),
) -> Result<(), Error> {
    let data: &[u8] = map;
    // Sequential read-ahead; failure only costs speed.
    let _ = map.advise(memmap2::Advice::Sequential);
    let mut released = 0usize;
    let (mut rest, header) = pcap_parser::parse_pcap_header(data)
        .map_err(|_| Error::Open { path: path.to_string(), reason: "damaged pcap file header".to_string() })?;
    let dlt = header.network.0;
    let link = supported_link(path, dlt)?;
    let filter = match bpf {
        Some(f) => Some(compile_filter(dlt, f)?),
        None => None,
    };
    outcome.link_types.push(link.name());
    let big_endian = header.is_bigendian();
    let fraction = if header.is_nanosecond_precision() { 1e-9 } else { 1e-6 };
    let mut packets = 0u64;
    while !rest.is_empty() {
        if let Some(caplen) = rest.get(8..12).map(|b| [b[0], b[1], b[2], b[3]]) {
            let caplen = if big_endian { u32::from_be_bytes(caplen) } else { u32::from_le_bytes(caplen) };
            if caplen > MAX_RECORD_LEN {
                let what = format!("record {} claims {caplen} captured bytes, more than any capture holds", packets + 1);
                outcome.warning = Some(damaged(path, packets, &what));
                return Ok(());
            }
        }
        let parsed = if big_endian { pcap_parser::parse_pcap_frame_be(rest) } else { pcap_parser::parse_pcap_frame(rest) };
        let (next, block) = match parsed {
            Ok(ok) => ok,
            Err(_) => {
                let offset = data.len() - rest.len();
                outcome.warning = Some(damaged(path, packets, &format!("the record at byte {offset} is cut off ({} bytes left)", rest.len())));
                return Ok(());
            }
        };
        rest = next;
        packets += 1;
        let offset = data.len() - rest.len();
        if offset - released >= RELEASE_EVERY {
            // SAFETY: a read-only file mapping: dropped pages are read again from the file if touched,
            // and no slice into them outlives the packet callback above.
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, released, offset - released) };
            released = offset;
        }
        if filter.as_ref().is_some_and(|f| !f.filter(block.data)) {
            continue;
        }
        let ts = f64::from(block.ts_sec) + f64::from(block.ts_usec) * fraction;
        each(link, RawPacket { ts, data: block.data, orig_len: block.origlen });
    }
    Ok(())
}

fn damaged(path: &str, packets: u64, what: &str) -> String {
    format!("{path}: reading stopped after packet {packets}: {what} (the file is truncated or damaged; the report covers the packets before that point)")
}

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

/// Reads a file (pcapng, or standard input) through libpcap.
fn read_with_libpcap(
    path: &str,
    bpf: Option<&str>,
    outcome: &mut ReadOutcome,
    each: &mut dyn FnMut(LinkType, RawPacket<'_>),
) -> Result<(), Error> {
    let mut cap = pcap::Capture::from_file(path).map_err(|e| open_error(path, e))?;
    let link = supported_link(path, cap.get_datalink().0)?;
    if let Some(filter) = bpf {
        cap.filter(filter, true).map_err(|e| Error::Filter { filter: filter.to_string(), reason: pcap_message(&e) })?;
    }
    outcome.link_types.push(link.name());
    let mut packets = 0u64;
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 * 1e-6;
                each(link, RawPacket { ts, data: p.data, orig_len: p.header.len });
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                let msg = pcap_message(&e);
                if msg.contains("different from the type of the first interface") {
                    return Err(Error::MixedLinkTypes { path: path.to_string(), detail: msg });
                }
                outcome.warning = Some(damaged(path, packets, &msg));
                return Ok(());
            }
        }
    }
    Ok(())
}

fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

fn open_error(path: &str, e: pcap::Error) -> Error {
    let msg = pcap_message(&e);
    let reason = if msg.contains("No such file") {
        "no such file (check the path)".to_string()
    } else if msg.contains("unknown file format") || msg.contains("bad dump file format") {
        "not a pcap or pcapng capture (save one with `tcpdump -w FILE`)".to_string()
    } else if msg.contains("truncated dump file") || msg.contains("truncated pcapng") {
        format!("the file is empty or cut off before its first packet ({msg})")
    } else if msg.contains("different from the type of the first interface") {
        return Error::MixedLinkTypes { path: path.to_string(), detail: msg };
    } else if msg.contains("Permission denied") {
        "permission denied (check the file's permissions)".to_string()
    } else {
        msg
    };
    Error::Open { path: path.to_string(), reason }
}
