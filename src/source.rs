//! Packet sources: saved capture files (pcap, pcapng) through libpcap. Live capture lives in `capture`.
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
        let mut cap = pcap::Capture::from_file(path).map_err(|e| open_error(path, e))?;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| Error::UnsupportedLinkType {
            path: path.clone(),
            name: dlt.get_name().unwrap_or_else(|_| format!("#{}", dlt.0)),
            dlt: dlt.0,
        })?;
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
                        return Err(Error::MixedLinkTypes { path: path.clone(), detail: msg });
                    }
                    outcome.warning = Some(format!(
                        "{path}: reading stopped after packet {packets}: {msg} (the file is truncated or damaged; the report covers the packets before that point)"
                    ));
                    return Ok(outcome);
                }
            }
        }
    }
    Ok(outcome)
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
