//! Packet sources: saved capture files. Live capture lives in `capture`.
//!
//! Capture files are memory-mapped and walked record by record with `pcap-parser` — classic pcap
//! in `pcap_file`, pcapng in `pcapng_file` (each interface with its own link type) — with no copy
//! of the packets. Standard input goes through libpcap (`libpcap_file`), which also explains files
//! that are neither. A `-f` BPF filter is compiled by libpcap in every case.
//!
//! Several files are read one after the other, in the order given, into one flow table: a capture
//! rotated by `tcpdump -C`/`-G` reads as one. `-` reads a capture from standard input.

mod compressed;
mod libpcap_file;
mod pcap_file;
mod pcapng_file;

pub use pcapng_file::tls_key_logs;

use crate::error::Error;
use crate::wire::LinkType;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One captured frame, without any frame check sequence the capture kept.
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
    /// Set when a file starts before the one read before it ended: files are read in the order
    /// given, so its connections' times can be negative.
    pub out_of_order: Option<String>,
}

/// The span of capture time the files read so far cover, for telling files given out of order.
#[derive(Default)]
struct TimeOrder {
    /// The latest packet of the files before, and that file.
    latest: Option<(f64, String)>,
    /// The first and latest packet of the file being read.
    first: Option<f64>,
    last: f64,
}

impl TimeOrder {
    fn packet(&mut self, ts: f64) {
        self.first.get_or_insert(ts);
        self.last = self.last.max(ts);
    }

    /// The file `path` has been read: a warning when it began before an earlier file ended.
    fn file_done(&mut self, path: &str, outcome: &mut ReadOutcome) {
        let Some(first) = self.first.take() else { return };
        if let Some((latest, before)) = &self.latest {
            if first < *latest && outcome.out_of_order.is_none() {
                outcome.out_of_order = Some(format!(
                    "{path} begins {:.3} s before {before} ends: files are read one after the other in the order given, so times go back (a negative start); give them in time order (`ls -tr`, or merge them with `mergecap`)",
                    latest - first
                ));
            }
        }
        if self.latest.as_ref().is_none_or(|(latest, _)| self.last > *latest) {
            self.latest = Some((self.last, path.to_string()));
        }
        self.last = f64::MIN;
    }
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
    Captures::open(paths).read(bpf, each)
}

/// Capture files opened for reading: memory-mapped when they are pcap or pcapng, otherwise left to
/// libpcap (standard input, files it will explain).
pub struct Captures {
    files: Vec<CaptureFile>,
}

struct CaptureFile {
    path: String,
    map: Option<(Format, memmap2::Mmap)>,
    /// Why a compressed file could not be decompressed.
    error: Option<String>,
    /// Offset before which the map's pages were handed back to the kernel.
    released: AtomicUsize,
}

impl Captures {
    /// Opens `paths`; errors (a missing file, say) are reported when the file is read.
    pub fn open(paths: &[String]) -> Captures {
        let open = |path: &String| {
            let (map, error) = match map_capture(path) {
                Ok(map) => (map, None),
                Err(reason) => (None, Some(reason)),
            };
            CaptureFile { path: path.clone(), map, error, released: AtomicUsize::new(0) }
        };
        Captures { files: paths.iter().map(open).collect() }
    }

    /// True when every file is memory-mapped: [`Captures::read_mapped`] can read them.
    pub fn all_mapped(&self) -> bool {
        self.files.iter().all(|f| f.map.is_some())
    }

    /// Reads the files in order, calling `each` for every packet, as [`read_files`] does. The pages
    /// of a map go back to the kernel as the walk passes them.
    pub fn read(&self, bpf: Option<&str>, each: &mut dyn FnMut(LinkType, RawPacket<'_>)) -> Result<ReadOutcome, Error> {
        let mut outcome = ReadOutcome::default();
        let mut order = TimeOrder::default();
        for (index, file) in self.files.iter().enumerate() {
            if let Some(reason) = &file.error {
                return Err(Error::Open { path: file.path.clone(), reason: reason.clone() });
            }
            let mut each = |link, raw: RawPacket<'_>| {
                order.packet(raw.ts);
                each(link, raw)
            };
            match &file.map {
                Some(_) => self.read_map(index, bpf, None, &mut outcome, &mut each)?,
                None => libpcap_file::read(&file.path, bpf, &mut outcome, &mut each)?,
            }
            order.file_done(&file.path, &mut outcome);
            if outcome.warning.is_some() {
                break;
            }
        }
        Ok(outcome)
    }

    /// Reads the memory-mapped files in order (all of them, when [`Captures::all_mapped`]), until
    /// their end or until `stop` is set. Several threads may read them at once. The packets borrow
    /// from the maps, so they can be handed to other threads; no page goes back to the kernel until
    /// [`Captures::hand_back_before`] says so.
    pub fn read_mapped<'c>(
        &'c self,
        bpf: Option<&str>,
        stop: &AtomicBool,
        each: &mut dyn FnMut(LinkType, RawPacket<'c>),
    ) -> Result<ReadOutcome, Error> {
        let mut outcome = ReadOutcome::default();
        let mut order = TimeOrder::default();
        for index in 0..self.files.len() {
            self.read_map(index, bpf, Some(stop), &mut outcome, &mut |link, raw| {
                order.packet(raw.ts);
                each(link, raw)
            })?;
            order.file_done(&self.files[index].path, &mut outcome);
            if outcome.warning.is_some() || stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(outcome)
    }

    /// Hands back to the kernel the pages of the map holding `packet` that lie before it: every
    /// packet before it has been analysed.
    pub fn hand_back_before(&self, packet: &[u8]) {
        let address = packet.as_ptr() as usize;
        for file in &self.files {
            if let Some((_, map)) = &file.map {
                let start = map.as_ptr() as usize;
                if (start..start + map.len()).contains(&address) {
                    hand_back(map, &file.released, address - start);
                }
            }
        }
    }

    /// Hands every page of the maps back to the kernel, and starts their walks afresh: the
    /// analysis on several threads that stopped to be done again on one leaves none behind.
    pub fn hand_back_all(&self) {
        for file in &self.files {
            if let Some((_, map)) = &file.map {
                file.released.store(0, Ordering::Relaxed);
                // SAFETY: as in `hand_back`: pages dropped are read again from the file if touched.
                let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            }
        }
    }

    fn read_map<'c>(
        &'c self,
        index: usize,
        bpf: Option<&str>,
        stop: Option<&AtomicBool>,
        outcome: &mut ReadOutcome,
        each: &mut dyn FnMut(LinkType, RawPacket<'c>),
    ) -> Result<(), Error> {
        let file = &self.files[index];
        let Some((format, map)) = &file.map else { return Ok(()) };
        // A walk that may be stopped is one of several (`read_mapped`): the pages are handed back
        // when all have passed them; a walk alone hands them back itself.
        let pages = Pages { map, released: &file.released, stop };
        match format {
            Format::Pcap => pcap_file::read(&file.path, map, bpf, &pages, outcome, each),
            Format::Pcapng => pcapng_file::read(&file.path, map, bpf, &pages, outcome, each),
        }
    }
}

/// Capture file formats read from a memory map.
enum Format {
    Pcap,
    Pcapng,
}

/// Memory-maps `path` when it is a pcap or pcapng file (by its magic number), decompressed first
/// when it is compressed; `Ok(None)` for anything else (standard input, unreadable or unknown
/// files), which libpcap then reads or explains. `Err`: a compressed file that does not decompress.
fn map_capture(path: &str) -> Result<Option<(Format, memmap2::Mmap)>, String> {
    if path == "-" {
        return Ok(None);
    }
    let Ok(mut file) = std::fs::File::open(path) else { return Ok(None) };
    let Ok(head) = compressed::head(&mut file, 6) else { return Ok(None) };
    let file = match compressed::Compression::sniff(&head) {
        Some(compression) => {
            let Ok(file) = std::fs::File::open(path) else { return Ok(None) };
            let file = compressed::decompress_to_temporary(compression, file)?;
            return match map_file(&file) {
                Some(map) => Ok(Some(map)),
                None => Err(format!("the {compression} data holds no pcap or pcapng capture")),
            };
        }
        None => file,
    };
    Ok(map_file(&file))
}

/// Memory-maps `file` when it is a pcap or pcapng capture.
fn map_file(file: &std::fs::File) -> Option<(Format, memmap2::Mmap)> {
    if file.metadata().ok()?.len() < 28 {
        return None;
    }
    // SAFETY: the map is read-only; a capture file being appended to while we read (tcpdump still
    // running) only grows, and we stop at the length seen when mapping.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    let format = match u32::from_le_bytes([map[0], map[1], map[2], map[3]]) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => Format::Pcap,
        0x0a0d_0d0a => Format::Pcapng,
        _ => return None,
    };
    // Sequential read-ahead; failure only costs speed.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some((format, map))
}

/// Asks the CPU to start loading the next record's header and the frame headers after it while
/// the current packet is analysed: a walk from record to record cannot know where the next record is
/// before the current one's length is read, so without this every record costs a wait on memory.
/// Also for a frame's headers a few packets ahead of its analysis (`pipeline::parallel`).
#[inline]
pub(crate) fn prefetch(next: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = next.as_ptr().cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the program,
        // whatever the address; `wrapping_add` keeps the pointer arithmetic defined.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(start);
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(64));
            // Ethernet, IP and TCP headers after a 16-byte record header can reach the third line.
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(128));
        }
    }
}

/// Pages of a map already walked are handed back to the kernel every this many bytes, so the
/// resident memory stays small however large the file (4 MiB: about 12 MiB less at the peak
/// than 16 MiB, at the same speed).
const RELEASE_EVERY: usize = 4 << 20;

/// The pages of one map, handed back to the kernel as the walk passes them, unless the walk is
/// one of several (it has a `stop` flag then).
struct Pages<'a> {
    map: &'a memmap2::Mmap,
    released: &'a AtomicUsize,
    stop: Option<&'a AtomicBool>,
}

impl Pages<'_> {
    /// The walk reached `offset` in the map; false when it is to stop.
    #[must_use]
    fn walked_to(&self, offset: usize) -> bool {
        match self.stop {
            None => {
                hand_back(self.map, self.released, offset);
                true
            }
            Some(stop) => !stop.load(Ordering::Relaxed),
        }
    }
}

/// Pages are handed back up to this far before the walk: the page the walk is in is faulted in
/// again at once, and the kernel maps up to 64 KiB of pages around a fault ("fault-around"), so
/// pages handed back right up to the walk came back, 64 KiB every time (52 MB resident left behind
/// on the 4.4 GB bench capture).
const BEHIND_THE_WALK: usize = 256 << 10;

/// Hands the pages of `map` up to [`BEHIND_THE_WALK`] before `offset` back to the kernel, once
/// [`RELEASE_EVERY`] bytes have been passed since the last time.
fn hand_back(map: &memmap2::Mmap, released: &AtomicUsize, offset: usize) {
    let from = released.load(Ordering::Relaxed);
    let to = offset.saturating_sub(BEHIND_THE_WALK);
    if to < from + RELEASE_EVERY {
        return;
    }
    released.store(to, Ordering::Relaxed);
    // SAFETY: a read-only file mapping: pages dropped are read again from the file if touched, so
    // a slice into them still reads the file's bytes.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from) };
}

/// The link-type field of a pcap file header, as libpcap reads it (`LT_LINKTYPE` and
/// `LT_FCS_LENGTH` in its pcap-common.h): the low 26 bits are the link type; bit 26 says that the
/// upper 4 bits give the length, in 16-bit words, of the frame check sequence every frame ends with.
/// Returns the link type and the FCS length in bytes.
fn pcap_link_field(field: u32) -> (i32, u32) {
    let fcs_len = if field & 0x0400_0000 != 0 { (field >> 28) * 2 } else { 0 };
    ((field & 0x03FF_FFFF) as i32, fcs_len)
}

/// A frame without its trailing frame check sequence of `fcs_len` bytes: the captured bytes past
/// `orig_len - fcs_len` are the FCS, and the frame's length on the wire leaves it out.
fn without_fcs(data: &[u8], orig_len: u32, fcs_len: u32) -> (&[u8], u32) {
    if fcs_len == 0 {
        return (data, orig_len);
    }
    let frame_len = orig_len.saturating_sub(fcs_len);
    (&data[..data.len().min(frame_len as usize)], frame_len)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pcap_link_field_with_fcs_bits_gives_the_link_type_and_fcs_bytes() {
        // LT_FCS_DATALINK_EXT(2) | DLT_EN10MB: a 4-byte (two 16-bit words) FCS on Ethernet.
        assert_eq!(pcap_link_field(0x2400_0001), (1, 4));
        // The length bits without bit 26 say nothing.
        assert_eq!(pcap_link_field(0x2000_0001), (1, 0));
        assert_eq!(pcap_link_field(113), (113, 0));
    }

    #[test]
    fn test_without_fcs_drops_the_trailing_fcs_of_a_whole_frame_only() {
        let frame = [1, 2, 3, 4, 5, 6, 0xF1, 0xF2, 0xF3, 0xF4];
        assert_eq!(without_fcs(&frame, 10, 4), (&frame[..6], 6));
        // Cut by snaplen before the FCS: nothing to drop but the wire length.
        assert_eq!(without_fcs(&frame[..5], 10, 4), (&frame[..5], 6));
        // Cut inside the FCS: its captured part goes.
        assert_eq!(without_fcs(&frame[..8], 10, 4), (&frame[..6], 6));
        assert_eq!(without_fcs(&frame, 10, 0), (&frame[..], 10));
    }
}
