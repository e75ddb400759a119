//! Captures read through libpcap: standard input (`-`), and files the memory-mapped readers do not
//! recognise, for libpcap's own diagnosis of what they are.

use super::{damaged, pcap_message, supported_link, RawPacket, ReadOutcome};
use crate::error::Error;
use crate::wire::LinkType;

/// Reads a capture through libpcap.
pub(super) fn read(
    path: &str,
    bpf: Option<&str>,
    outcome: &mut ReadOutcome,
    each: &mut dyn FnMut(LinkType, RawPacket<'_>),
) -> Result<(), Error> {
    if path == "-" {
        let (fd, relay) =
            super::compressed::StdinRelay::start().map_err(|e| Error::Open { path: path.to_string(), reason: e.to_string() })?;
        // SAFETY: the descriptor is the pipe's read end, handed over to libpcap alone (it closes it).
        let read = unsafe { pcap::Capture::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) }
            .map_err(|e| open_error(path, e))
            .and_then(|cap| read_capture(cap, path, bpf, outcome, each));
        // Input that does not decompress is the reason libpcap stopped early or found no capture.
        return match relay.finish() {
            Err(reason) => Err(Error::Open { path: path.to_string(), reason }),
            Ok(()) => read,
        };
    }
    let cap = pcap::Capture::from_file(path).map_err(|e| open_error(path, e))?;
    read_capture(cap, path, bpf, outcome, each)
}

/// Reads the packets of a capture libpcap has opened.
fn read_capture(
    mut cap: pcap::Capture<pcap::Offline>,
    path: &str,
    bpf: Option<&str>,
    outcome: &mut ReadOutcome,
    each: &mut dyn FnMut(LinkType, RawPacket<'_>),
) -> Result<(), Error> {
    let link = supported_link(path, cap.get_datalink().0)?;
    if let Some(filter) = bpf {
        cap.filter(filter, true).map_err(|e| Error::Filter { filter: filter.to_string(), reason: pcap_message(&e) })?;
    }
    outcome.saw_link(link);
    let mut packets = 0u64;
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 * 1e-6;
                each(link, RawPacket { ts, data: p.data, orig_len: p.header.len });
            }
            Err(pcap::Error::NoMorePackets) => return Ok(()),
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
}

/// Says what is wrong with a file libpcap cannot open, and what to do.
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
