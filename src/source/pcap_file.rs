//! Classic pcap files (tcpdump's default), memory-mapped and walked with `pcap-parser`.

use super::{compile_filter, damaged, pcap_link_field, supported_link, without_fcs, Pages, RawPacket, ReadOutcome};
use crate::error::Error;
use crate::wire::LinkType;

/// Largest record libpcap accepts (its MAXIMUM_SNAPLEN); a larger length means a damaged record.
const MAX_RECORD_LEN: u32 = 262_144;

/// Walks a memory-mapped classic pcap file.
pub(super) fn read<'m>(
    path: &str,
    map: &'m memmap2::Mmap,
    bpf: Option<&str>,
    pages: &Pages<'_>,
    outcome: &mut ReadOutcome,
    each: &mut dyn FnMut(LinkType, RawPacket<'m>),
) -> Result<(), Error> {
    let data: &[u8] = map;
    let (mut rest, header) = pcap_parser::parse_pcap_header(data)
        .map_err(|_| Error::Open { path: path.to_string(), reason: "damaged pcap file header".to_string() })?;
    let (dlt, fcs_len) = pcap_link_field(header.network.0 as u32);
    let link = supported_link(path, dlt)?;
    let filter = bpf.map(|f| compile_filter(dlt, f)).transpose()?;
    outcome.saw_link(link);
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
        let Ok((next, block)) = parsed else {
            let offset = data.len() - rest.len();
            outcome.warning = Some(damaged(path, packets, &format!("the record at byte {offset} is cut off ({} bytes left)", rest.len())));
            return Ok(());
        };
        rest = next;
        super::prefetch(rest);
        packets += 1;
        if !pages.walked_to(data.len() - rest.len()) {
            return Ok(());
        }
        if filter.as_ref().is_some_and(|f| !f.filter(block.data)) {
            continue;
        }
        let ts = f64::from(block.ts_sec) + f64::from(block.ts_usec) * fraction;
        let (data, orig_len) = without_fcs(block.data, block.origlen, fcs_len);
        each(link, RawPacket { ts, data, orig_len });
    }
    Ok(())
}
