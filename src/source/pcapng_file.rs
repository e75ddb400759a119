//! pcapng files (dumpcap, tshark, Wireshark), memory-mapped and walked block by block with
//! `pcap-parser`. Each interface keeps its own link type, timestamp resolution and BPF program, so
//! a file whose interfaces differ in link type (which libpcap refuses) reads whole.

use super::{compile_filter, damaged, supported_link, without_fcs, Pages, RawPacket, ReadOutcome};
use crate::error::Error;
use crate::wire::LinkType;
use pcap_parser::pcapng::SecretsType;
use pcap_parser::pcapng::{build_ts_resolution, parse_block_be, parse_block_le, parse_sectionheaderblock, InterfaceDescriptionBlock};
use pcap_parser::{Block, OptionCode};

/// The `if_fcslen` option of an interface description block.
const IF_FCSLEN: OptionCode = OptionCode(13);
/// The `epb_flags` option of an enhanced packet block.
const EPB_FLAGS: OptionCode = OptionCode(2);

/// What a packet needs from the interface description it names.
struct Interface {
    link: LinkType,
    filter: Option<pcap::BpfProgram>,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: u64,
    /// Bytes of frame check sequence at the end of every frame.
    fcs_len: u32,
}

/// Walks a memory-mapped pcapng file.
pub(super) fn read<'m>(
    path: &str,
    map: &'m memmap2::Mmap,
    bpf: Option<&str>,
    pages: &Pages<'_>,
    outcome: &mut ReadOutcome,
    each: &mut dyn FnMut(LinkType, RawPacket<'m>),
) -> Result<(), Error> {
    let data: &[u8] = map;
    let mut rest = data;
    let mut big_endian = false;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut packets = 0u64;
    let mut last_ts = 0.0;
    while !rest.is_empty() {
        let offset = data.len() - rest.len();
        let parsed = if rest.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            parse_sectionheaderblock(rest).map(|(next, shb)| (next, Block::SectionHeader(shb)))
        } else if big_endian {
            parse_block_be(rest)
        } else {
            parse_block_le(rest)
        };
        let Ok((next, block)) = parsed else {
            let what = format!("the block at byte {offset} is cut off or damaged ({} bytes left)", rest.len());
            outcome.warning = Some(damaged(path, packets, &what));
            return Ok(());
        };
        rest = next;
        let (interface_id, ts, frame, orig_len, packet_fcs_len) = match &block {
            Block::SectionHeader(shb) => {
                // A new section starts its own list of interfaces.
                big_endian = shb.big_endian();
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                let dlt = idb.linktype.0;
                let link = supported_link(path, dlt)?;
                outcome.saw_link(link);
                interfaces.push(Interface {
                    link,
                    filter: bpf.map(|f| compile_filter(dlt, f)).transpose()?,
                    resolution: build_ts_resolution(idb.if_tsresol).unwrap_or(1_000_000),
                    offset: idb.if_tsoffset.max(0) as u64,
                    fcs_len: fcs_len(idb),
                });
                continue;
            }
            Block::EnhancedPacket(epb) => {
                let iface = interfaces.get(epb.if_id as usize);
                let ts = iface.map_or(last_ts, |i| epb.decode_ts_f64(i.offset, i.resolution));
                (epb.if_id as usize, ts, captured(epb.data, epb.caplen), epb.origlen, flags_fcs_len(&epb.options, big_endian))
            }
            // A simple packet has no timestamp: it takes the previous packet's.
            Block::SimplePacket(spb) => (0, last_ts, captured(spb.data, spb.origlen), spb.origlen, None),
            _ => continue,
        };
        packets += 1;
        if !pages.walked_to(data.len() - rest.len()) {
            return Ok(());
        }
        let Some(iface) = interfaces.get(interface_id) else {
            let what = format!("packet {packets} names interface {interface_id}, which the file never described");
            outcome.warning = Some(damaged(path, packets - 1, &what));
            return Ok(());
        };
        last_ts = ts;
        if iface.filter.as_ref().is_some_and(|f| !f.filter(frame)) {
            continue;
        }
        let (data, orig_len) = without_fcs(frame, orig_len, packet_fcs_len.unwrap_or(iface.fcs_len));
        each(iface.link, RawPacket { ts, data, orig_len });
    }
    Ok(())
}

/// The TLS key logs (NSS key log text) of the Decryption Secrets Blocks at the start of a pcapng
/// file, before its first packet: where `editcap --inject-secrets tls,KEYS` puts them. A file that
/// is not pcapng has none.
pub fn tls_key_logs(data: &[u8]) -> Vec<Vec<u8>> {
    let mut logs = Vec::new();
    if !data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        return logs;
    }
    let mut rest = data;
    let mut big_endian = false;
    while rest.len() >= 12 {
        let parsed = if rest.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            parse_sectionheaderblock(rest).map(|(next, shb)| (next, Block::SectionHeader(shb)))
        } else if big_endian {
            parse_block_be(rest)
        } else {
            parse_block_le(rest)
        };
        let Ok((next, block)) = parsed else { break };
        rest = next;
        match block {
            Block::SectionHeader(shb) => big_endian = shb.big_endian(),
            Block::DecryptionSecrets(dsb) if dsb.secrets_type == SecretsType::TlsKeyLog => {
                // The block's padding to 4 bytes may be counted in the data: NULs, not text.
                let end = dsb.data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                logs.push(dsb.data[..end].to_vec());
            }
            Block::EnhancedPacket(_) | Block::SimplePacket(_) => break,
            _ => {}
        }
    }
    logs
}

/// The captured bytes of a packet block: its data without the padding (what pcap-parser's
/// `packet_data` gives, but borrowed from the map rather than from the block).
fn captured(data: &[u8], caplen: u32) -> &[u8] {
    &data[..data.len().min(caplen as usize)]
}

/// The FCS length, in bytes, of an interface's frames (unless a packet's `epb_flags` say
/// otherwise): its `if_fcslen` option gives it in bits
/// (pcapng, draft-ietf-opsawg-pcapng section 4.2); none when absent.
fn fcs_len(idb: &InterfaceDescriptionBlock<'_>) -> u32 {
    let option = idb.options.iter().find(|o| o.code == IF_FCSLEN);
    option.and_then(|o| o.as_bytes().ok()?.first().copied()).map_or(0, |bits| u32::from(bits) / 8)
}

/// The FCS length, in bytes, an enhanced packet block's `epb_flags` gives (bits 5-8, in octets;
/// draft-ietf-opsawg-pcapng section 4.3.1), in the section's byte order; `None` when it gives none
/// (the interface's then applies).
fn flags_fcs_len(options: &[pcap_parser::PcapNGOption<'_>], big_endian: bool) -> Option<u32> {
    let flags = options.iter().find(|o| o.code == EPB_FLAGS)?.as_bytes().ok()?;
    let flags: [u8; 4] = flags.try_into().ok()?;
    let flags = if big_endian { u32::from_be_bytes(flags) } else { u32::from_le_bytes(flags) };
    Some((flags >> 5) & 0xF).filter(|&len| len > 0)
}

#[cfg(test)]
mod tests {
    use crate::source::read_files;

    /// A little-endian pcapng block: type, total length, body (padded to 4), total length.
    fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&block_type.to_le_bytes());
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(body);
        b.resize(8 + padded, 0);
        b.extend_from_slice(&total.to_le_bytes());
        b
    }

    #[test]
    fn test_interface_with_if_fcslen_32_bits_has_4_fcs_bytes_dropped_from_each_frame() {
        let mut file = block(0x0A0D_0D0A, &[0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        // IDB: LINKTYPE_ETHERNET, snaplen 0, if_fcslen (13) = 32 bits, end of options.
        file.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0, 13, 0, 1, 0, 32, 0, 0, 0, 0, 0, 0, 0]));
        let frame: Vec<u8> = (0..64u8).collect();
        let mut epb = vec![0; 12];
        epb.extend_from_slice(&64u32.to_le_bytes());
        epb.extend_from_slice(&64u32.to_le_bytes());
        epb.extend_from_slice(&frame);
        file.extend(block(6, &epb));
        let path = std::env::temp_dir().join(format!("connscope-if-fcslen-{}.pcapng", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let mut seen = Vec::new();
        let outcome = read_files(&[path.display().to_string()], None, &mut |_, raw| seen.push((raw.data.to_vec(), raw.orig_len)));
        std::fs::remove_file(&path).unwrap();
        assert!(outcome.unwrap().warning.is_none());
        assert_eq!(seen, vec![(frame[..60].to_vec(), 60)]);
    }

    #[test]
    fn test_packet_whose_epb_flags_give_a_4_octet_fcs_has_it_dropped() {
        let mut file = block(0x0A0D_0D0A, &[0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        // IDB: LINKTYPE_ETHERNET, no options.
        file.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        let frame: Vec<u8> = (0..64u8).collect();
        let mut epb = vec![0; 12];
        epb.extend_from_slice(&64u32.to_le_bytes());
        epb.extend_from_slice(&64u32.to_le_bytes());
        epb.extend_from_slice(&frame);
        // epb_flags (2) = inbound, FCS length 4 octets (bits 5-8), end of options.
        epb.extend_from_slice(&[2, 0, 4, 0]);
        epb.extend_from_slice(&(1u32 | (4 << 5)).to_le_bytes());
        epb.extend_from_slice(&[0, 0, 0, 0]);
        file.extend(block(6, &epb));
        let path = std::env::temp_dir().join(format!("connscope-epb-flags-{}.pcapng", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let mut seen = Vec::new();
        let outcome = read_files(&[path.display().to_string()], None, &mut |_, raw| seen.push((raw.data.len(), raw.orig_len)));
        std::fs::remove_file(&path).unwrap();
        assert!(outcome.unwrap().warning.is_none());
        assert_eq!(seen, vec![(60, 60)]);
    }
}
