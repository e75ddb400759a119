//! Link layer → IP → TCP: turns a captured frame into a borrowed [`Segment`].
//!
//! Ethernet and VLAN headers are sliced by etherparse; IEEE 802.3 frames with an LLC/SNAP header,
//! Linux cooked SLL and SLL2 and BSD loopback NULL/LOOP headers are stripped here (etherparse has no
//! slicer for them); then etherparse's lax IP slicer and its TCP slicer do the rest, one layer at a
//! time (no whole-packet struct is built). Lengths come from the IP header, so a packet cut short by
//! the capture's snaplen still yields its TCP header and the length its payload had on the wire, and
//! bytes after the IP packet (Ethernet padding, a frame check sequence) are never read as payload.
//!
//! [`Endpoints::of`] reads whose a plain TCP frame is (its addresses and ports) from a few fixed
//! fields without decoding it, for the threads that only need to know that (`pipeline::parallel`).
//!
//! A fragment of an IP packet that carries TCP is handed on as a [`Fragment`]; `defrag` rebuilds
//! the packet, and [`reassembled_segment`] decodes it into an [`OwnedSegment`].
//!
//! Input: frames from [`crate::source`] (files) or [`crate::live`] (a device), through the
//! [`crate::pipeline`]. Output: [`Segment`]s to the flow table ([`crate::tcp::FlowTable::process`]),
//! fragments to [`crate::defrag`].

use crate::wire::{LinkType, SeqNumber};
use etherparse::{EtherType, Ethernet2Slice, IpNumber, Ipv6ExtensionSlice, LaxIpSlice, SingleVlanSlice, TcpSlice};
use std::net::{IpAddr, SocketAddr};

/// TCP header flags of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

impl TcpFlags {
    /// Short tcpdump-style rendering: `S`, `S.`, `F.`, `R`, `P.`, `.`.
    pub fn short(self) -> String {
        let mut s = String::new();
        if self.syn {
            s.push('S');
        }
        if self.fin {
            s.push('F');
        }
        if self.rst {
            s.push('R');
        }
        if self.psh {
            s.push('P');
        }
        if self.ack {
            s.push('.');
        }
        s
    }
}

/// One TCP segment, borrowed from the captured frame.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    /// Capture timestamp, seconds since the Unix epoch.
    pub ts: f64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: TcpFlags,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    /// Window field as sent (not scaled).
    pub window: u16,
    /// Window scale option, when the segment (a SYN) carries one.
    pub window_scale: Option<u8>,
    /// Captured payload bytes.
    pub payload: &'a [u8],
    /// Payload length on the wire (larger than `payload.len()` when snaplen cut the packet).
    pub wire_len: u32,
}

impl Segment<'_> {
    /// True when the capture holds fewer payload bytes than were sent.
    pub fn truncated(&self) -> bool {
        (self.payload.len() as u32) < self.wire_len
    }

    /// Sequence space the segment occupies: payload plus one for SYN and one for FIN.
    pub fn seq_len(&self) -> u32 {
        self.wire_len + u32::from(self.flags.syn) + u32::from(self.flags.fin)
    }
}

/// A TCP segment rebuilt from IP fragments: it owns its bytes (a [`Segment`] borrows them).
#[derive(Clone, Debug)]
pub struct OwnedSegment {
    /// The segment, with an empty payload.
    header: Segment<'static>,
    /// The captured payload.
    payload: Box<[u8]>,
}

impl OwnedSegment {
    /// The segment, borrowing its payload from here.
    pub fn segment(&self) -> Segment<'_> {
        Segment { payload: &self.payload, ..self.header.clone() }
    }
}

/// The IP packet a fragment belongs to (RFC 791, RFC 8200): its addresses and identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IPv4 identification field, or the IPv6 fragment header's.
    pub id: u32,
}

/// A fragment of an IP packet that carries TCP, borrowed from the captured frame.
#[derive(Clone, Debug)]
pub struct Fragment<'a> {
    /// Capture timestamp, seconds since the Unix epoch.
    pub ts: f64,
    pub key: FragmentKey,
    /// Where the fragment's data starts in the packet's payload, in bytes.
    pub offset: u32,
    /// False on the last fragment.
    pub more: bool,
    /// The fragment's data as captured.
    pub data: &'a [u8],
    /// The fragment's data length on the wire (larger than `data.len()` when snaplen cut it).
    pub wire_len: u32,
}

/// What a captured frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A TCP segment whose header was captured whole.
    Tcp(Segment<'a>),
    /// A fragment of an IP packet that carries TCP: the packet is decoded once it is rebuilt.
    Fragment(Fragment<'a>),
    /// An IP packet that is not TCP (UDP, ICMP, ...), a fragment of one, or a non-IP frame (ARP,
    /// LLC frames without SNAP, ...).
    NotTcp,
    /// A TCP packet cut short before the end of its TCP header.
    Truncated,
    /// Bytes that do not parse as the link type says they should.
    Undecodable,
}

/// Decodes one frame of the given link type. `orig_len` is the frame's length on the wire.
pub fn decode(link: LinkType, frame: &[u8], orig_len: u32, ts: f64) -> Decoded<'_> {
    let (ether_type, rest) = match link {
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => return from_ip(frame, orig_len, ts),
        LinkType::Ethernet => match Ethernet2Slice::from_slice_without_fcs(frame) {
            Ok(eth) => (eth.ether_type(), eth.payload_slice()),
            Err(_) => return Decoded::Truncated,
        },
        LinkType::Null | LinkType::Loop => {
            let Some(family) = frame.get(..4) else { return Decoded::Truncated };
            let family = [family[0], family[1], family[2], family[3]];
            // NULL uses the capturing host's byte order: accept either, the values are small.
            let af = if link == LinkType::Loop {
                u32::from_be_bytes(family)
            } else {
                let le = u32::from_le_bytes(family);
                if le <= 0xffff {
                    le
                } else {
                    u32::from_be_bytes(family)
                }
            };
            return match af {
                // AF_INET on every BSD and Linux; AF_INET6 differs: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
                2 | 10 | 24 | 28 | 30 => from_ip(&frame[4..], orig_len.saturating_sub(4), ts),
                _ => Decoded::NotTcp,
            };
        }
        LinkType::LinuxSll => match frame.get(14..16) {
            Some(proto) => (EtherType(u16::from_be_bytes([proto[0], proto[1]])), &frame[16..]),
            None => return Decoded::Truncated,
        },
        LinkType::LinuxSll2 => match frame.get(..2) {
            Some(proto) if frame.len() >= 20 => (EtherType(u16::from_be_bytes([proto[0], proto[1]])), &frame[20..]),
            _ => return Decoded::Truncated,
        },
    };
    let (ether_type, rest) = match strip_vlan_tags(ether_type, rest) {
        Some(inner) => inner,
        None => return Decoded::Truncated,
    };
    let llc = match link {
        LinkType::Ethernet => ether_type.0 <= MAX_8023_LENGTH,
        _ => ether_type.0 == SLL_802_2,
    };
    let (ether_type, ip) = if llc {
        match llc_snap(rest) {
            Some(Some(inner)) => inner,
            Some(None) => return Decoded::NotTcp,
            None => return Decoded::Truncated,
        }
    } else {
        (ether_type, rest)
    };
    if ether_type != EtherType::IPV4 && ether_type != EtherType::IPV6 {
        return Decoded::NotTcp;
    }
    let link_len = (ip.as_ptr() as usize - frame.as_ptr() as usize) as u32;
    from_ip(ip, orig_len.saturating_sub(link_len), ts)
}

/// The two endpoints of a plain TCP segment, as [`Endpoints::of`] reads them from a frame without
/// decoding it: addresses as [`ip_bits`] gives them, and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub src: u128,
    pub src_port: u16,
    pub dst: u128,
    pub dst_port: u16,
}

impl Endpoints {
    /// The endpoints of a frame that is, plainly, IPv4 or IPv6 without extension headers, not a
    /// fragment, with its IP and TCP headers captured whole and consistent with each other, after
    /// an Ethernet (no VLAN tag), Linux cooked (SLL, SLL2) or no link header: a frame that
    /// [`decode`] surely makes a [`Decoded::Tcp`] of, with these endpoints. `None` for any other
    /// frame, which only [`decode`] can tell about. Reading a few fixed fields is far cheaper than
    /// decoding: a thread that only needs to know whose segment a frame is reads this.
    pub fn of(link: LinkType, frame: &[u8]) -> Option<Endpoints> {
        let be16 = |bytes: &[u8], at: usize| Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        let ip = match link {
            LinkType::Ethernet if be16(frame, 12)? == 0x0800 || be16(frame, 12)? == 0x86dd => &frame[14..],
            LinkType::LinuxSll if be16(frame, 14)? == 0x0800 || be16(frame, 14)? == 0x86dd => &frame[16..],
            LinkType::LinuxSll2 if frame.len() >= 20 && (be16(frame, 0)? == 0x0800 || be16(frame, 0)? == 0x86dd) => &frame[20..],
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => frame,
            _ => return None,
        };
        let (src, dst, tcp) = match ip.first()? >> 4 {
            4 => {
                let header_len = usize::from(ip[0] & 0x0f) * 4;
                let total_len = usize::from(be16(ip, 2)?);
                let (more_fragments, fragment_offset) = (ip.get(6)? & 0x20 != 0, be16(ip, 6)? & 0x1fff);
                if header_len < 20
                    || ip.len() < header_len
                    || total_len < header_len
                    || more_fragments
                    || fragment_offset != 0
                    || ip[9] != 6
                {
                    return None;
                }
                let word = |at: usize| u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
                let mapped = |v4: u32| (0xffff_u128 << 32) | u128::from(v4);
                (mapped(word(12)), mapped(word(16)), &ip[header_len..total_len.min(ip.len())])
            }
            6 => {
                let payload_len = usize::from(be16(ip, 4)?);
                if ip.len() < 40 || ip[6] != 6 || payload_len == 0 {
                    return None;
                }
                let address = |at: usize| u128::from_be_bytes(ip[at..at + 16].try_into().unwrap_or_default());
                (address(8), address(24), &ip[40..(40 + payload_len).min(ip.len())])
            }
            _ => return None,
        };
        let tcp_header_len = usize::from(*tcp.get(12)? >> 4) * 4;
        if tcp_header_len < 20 || tcp.len() < tcp_header_len {
            return None;
        }
        Some(Endpoints { src, src_port: be16(tcp, 0)?, dst, dst_port: be16(tcp, 2)? })
    }

    /// The endpoints of a decoded segment.
    pub fn of_segment(seg: &Segment<'_>) -> Endpoints {
        Endpoints { src: ip_bits(seg.src), src_port: seg.src.port(), dst: ip_bits(seg.dst), dst_port: seg.dst.port() }
    }
}

/// An address as 128 bits, IPv4 mapped into IPv6: one integer for either family.
pub fn ip_bits(addr: SocketAddr) -> u128 {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The largest IEEE 802.3 length field: a type/length field up to this is a length, and an 802.2
/// LLC header follows (IEEE 802.3 clause 3.2.6).
const MAX_8023_LENGTH: u16 = 1500;
/// The protocol field of a Linux cooked capture for a frame with an 802.2 LLC header (ETH_P_802_2).
const SLL_802_2: u16 = 0x0004;

/// The EtherType an 802.2 LLC header with SNAP (RFC 1042) carries: DSAP and SSAP 0xAA, control
/// 0x03 (UI), then an OUI of 00-00-00 (RFC 1042) or 00-00-F8 (IEEE 802.1H) and the EtherType.
/// `Some(None)` for any other LLC frame (spanning tree, NetBIOS, IPX: not IP), `None` when the
/// frame ends inside the header.
fn llc_snap(llc: &[u8]) -> Option<Option<(EtherType, &[u8])>> {
    let (&[dsap, ssap, control], rest) = llc.split_first_chunk::<3>()?;
    if dsap != 0xAA || ssap != 0xAA || control != 0x03 {
        return Some(None);
    }
    let (&[o1, o2, o3, t1, t2], rest) = rest.split_first_chunk::<5>()?;
    Some(matches!([o1, o2, o3], [0, 0, 0] | [0, 0, 0xF8]).then_some((EtherType(u16::from_be_bytes([t1, t2])), rest)))
}

/// Skips 802.1Q / 802.1ad VLAN tags (up to three); `None` when the frame ends inside one.
fn strip_vlan_tags(mut ether_type: EtherType, mut rest: &[u8]) -> Option<(EtherType, &[u8])> {
    for _ in 0..3 {
        if !matches!(ether_type, EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED_FRAME) {
            break;
        }
        let tag = SingleVlanSlice::from_slice(rest).ok()?;
        ether_type = tag.ether_type();
        rest = tag.payload_slice();
    }
    Some((ether_type, rest))
}

/// Decodes from the IP header on. `orig_ip_len` is the packet's length on the wire from the IP
/// header on; it is the fallback when the IP header gives no length (TSO, jumbograms).
fn from_ip(data: &[u8], orig_ip_len: u32, ts: f64) -> Decoded<'_> {
    let ip = match LaxIpSlice::from_slice(data) {
        Ok((ip, _)) => ip,
        Err(_) => {
            return if data.is_empty() || matches!(data[0] >> 4, 4 | 6) { Decoded::Truncated } else { Decoded::Undecodable };
        }
    };
    let (ip_start, ip_total_len) = match &ip {
        LaxIpSlice::Ipv4(s) => (s.header().slice().as_ptr(), u32::from(s.header().total_len())),
        LaxIpSlice::Ipv6(s) => {
            let payload_len = u32::from(s.header().payload_length());
            (s.header().slice().as_ptr(), if payload_len == 0 { 0 } else { 40 + payload_len })
        }
    };
    let ip_payload = ip.payload();
    if ip_payload.fragmented {
        return fragment(&ip, data, ip_total_len, ts);
    }
    if ip_payload.ip_number != IpNumber::TCP {
        return Decoded::NotTcp;
    }
    // Bytes from the start of the IP header to the TCP header (IP options and extension headers included).
    let tcp_offset = (ip_payload.payload.as_ptr() as usize).saturating_sub(ip_start as usize) as u32;
    let declared = ip_total_len.checked_sub(tcp_offset);
    tcp_segment(ts, ip.source_addr(), ip.destination_addr(), ip_payload.payload, declared, orig_ip_len.saturating_sub(tcp_offset))
}

/// A fragment of an IP packet (`data` starts with its IP header, `ip_total_len` long on the wire):
/// a [`Fragment`] when the packet carries TCP. The protocol is in every fragment: IPv4's protocol
/// field, the next header of IPv6's fragment header (a packet whose fragmentable part starts with
/// another extension header is not taken for TCP).
fn fragment<'a>(ip: &LaxIpSlice<'a>, data: &'a [u8], ip_total_len: u32, ts: f64) -> Decoded<'a> {
    let (id, offset, more, protocol, fragment_start) = match ip {
        LaxIpSlice::Ipv4(s) => {
            let h = s.header();
            let start = h.slice().len();
            (u32::from(h.identification()), h.fragments_offset().byte_offset(), h.more_fragments(), h.protocol(), start)
        }
        LaxIpSlice::Ipv6(s) => {
            let header = s.extensions().clone().into_iter().find_map(|ext| match ext {
                Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => Some(f),
                _ => None,
            });
            let Some(f) = header else { return Decoded::Undecodable };
            let start = f.slice().as_ptr() as usize + f.slice().len() - data.as_ptr() as usize;
            (f.identification(), f.fragment_offset().byte_offset(), f.more_fragments(), f.next_header(), start)
        }
    };
    if protocol != IpNumber::TCP {
        return Decoded::NotTcp;
    }
    let wire_end = (ip_total_len as usize).max(fragment_start);
    let captured = &data[fragment_start.min(data.len())..wire_end.min(data.len())];
    Decoded::Fragment(Fragment {
        ts,
        key: FragmentKey { src: ip.source_addr(), dst: ip.destination_addr(), id },
        offset: u32::from(offset),
        more,
        data: captured,
        wire_len: (wire_end - fragment_start) as u32,
    })
}

/// Decodes a TCP header and payload. `declared` is the TCP length the IP header gives (`None` or
/// less than the TCP header when it gives none: TSO, jumbograms), `fallback` the one the frame's
/// length on the wire gives.
fn tcp_segment(ts: f64, src: IpAddr, dst: IpAddr, tcp_data: &[u8], declared: Option<u32>, fallback: u32) -> Decoded<'_> {
    let Ok(tcp) = TcpSlice::from_slice(tcp_data) else { return Decoded::Truncated };
    let payload = tcp.payload();
    let header_len = tcp.header_len() as u32;
    let wire_tcp_len = declared.filter(|&len| len >= header_len).unwrap_or(fallback);
    let wire_len = wire_tcp_len.saturating_sub(header_len).max(payload.len() as u32);
    Decoded::Tcp(Segment {
        ts,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst(), psh: tcp.psh() },
        seq: SeqNumber(tcp.sequence_number()),
        ack: SeqNumber(tcp.acknowledgment_number()),
        window: tcp.window_size(),
        window_scale: if tcp.syn() { window_scale(tcp.options()) } else { None },
        payload,
        wire_len,
    })
}

/// Decodes the TCP segment of an IP packet rebuilt from fragments: `captured` holds its payload
/// (TCP header on) as far as the capture holds it without a hole, `wire_len` is its length on the
/// wire. `None` when the TCP header is not whole.
pub fn reassembled_segment(ts: f64, key: &FragmentKey, captured: &[u8], wire_len: u32) -> Option<OwnedSegment> {
    let Decoded::Tcp(seg) = tcp_segment(ts, key.src, key.dst, captured, Some(wire_len), wire_len) else { return None };
    let payload = seg.payload.into();
    Some(OwnedSegment { header: Segment { payload: &[], ..seg }, payload })
}

/// The window scale shift from TCP options (kind 3), if present, capped at 14 (RFC 7323 2.3).
///
/// Walked by hand as Linux's `tcp_parse_options` does: an option of a kind it does not know, or of
/// a known kind with an unexpected length, is skipped by its length byte. etherparse 0.21's
/// `TcpOptionsIterator` ends at the first such option (`UnknownId`, `UnexpectedSize`), so a window
/// scale after a Fast Open cookie (kind 34), an MPTCP (30) or an experimental (253/254) option
/// would be lost.
fn window_scale(options: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = *options.get(i + 1)? as usize;
                if len < 2 {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return options.get(i + 2).map(|s| (*s).min(14));
                }
                i += len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpFragOffset, Ipv4Header, Ipv6FragmentHeader, Ipv6Header, TcpHeader};

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

    /// A TCP header, 40000 -> 8080, seq 1000, PSH-ACK, and `payload`.
    fn tcp(payload: &[u8]) -> Vec<u8> {
        let mut header = TcpHeader::new(40000, 8080, 1000, 512);
        header.psh = true;
        header.ack = true;
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    /// An IPv4 packet 10.0.0.1 -> 10.0.0.2 around `body`, a fragment when `fragment` gives
    /// (identification, byte offset, more fragments).
    fn ipv4(protocol: IpNumber, fragment: Option<(u16, u16, bool)>, body: &[u8]) -> Vec<u8> {
        let mut header = Ipv4Header::new(body.len() as u16, 64, protocol, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        if let Some((id, offset, more)) = fragment {
            header.identification = id;
            header.fragment_offset = IpFragOffset::try_new(offset / 8).unwrap();
            header.more_fragments = more;
        }
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    /// An IPv6 packet fd00::1 -> fd00::2 around `body` (TCP), with a fragment header when
    /// `fragment` gives (identification, byte offset, more fragments).
    fn ipv6(fragment: Option<(u32, u16, bool)>, body: &[u8]) -> Vec<u8> {
        let frag_len = if fragment.is_some() { 8 } else { 0 };
        let header = Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: (body.len() + frag_len) as u16,
            next_header: if fragment.is_some() { IpNumber::IPV6_FRAGMENTATION_HEADER } else { IpNumber::TCP },
            hop_limit: 64,
            source: "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            destination: "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        };
        let mut bytes = header.to_bytes().to_vec();
        if let Some((id, offset, more)) = fragment {
            let frag = Ipv6FragmentHeader::new(IpNumber::TCP, IpFragOffset::try_new(offset / 8).unwrap(), more, id);
            bytes.extend_from_slice(&frag.to_bytes());
        }
        bytes.extend_from_slice(body);
        bytes
    }

    /// An Ethernet frame with type/length field `type_or_len` around `body`.
    fn ethernet(type_or_len: u16, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        bytes.extend_from_slice(&type_or_len.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// An 802.2 LLC header with SNAP (OUI 00-00-00) carrying `ether_type`, and `body`.
    fn llc_snap_header(ether_type: u16, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xAA, 0xAA, 0x03, 0, 0, 0];
        bytes.extend_from_slice(&ether_type.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// An IEEE 802.3 frame (length field) around an LLC/SNAP header carrying `ether_type`.
    fn ieee8023_snap(ether_type: u16, body: &[u8]) -> Vec<u8> {
        let llc = llc_snap_header(ether_type, body);
        ethernet(llc.len() as u16, &llc)
    }

    fn decoded(link: LinkType, frame: &[u8]) -> Decoded<'_> {
        decode(link, frame, frame.len() as u32, 1.0)
    }

    fn segment<'a>(d: Decoded<'a>) -> Segment<'a> {
        match d {
            Decoded::Tcp(seg) => seg,
            other => panic!("not a segment: {other:?}"),
        }
    }

    /// The frames `Endpoints::of` is tested on: Ethernet around IPv4 and IPv6 TCP, an IPv4 TCP
    /// fragment, UDP, and a VLAN-tagged frame.
    fn endpoint_test_frames() -> Vec<(LinkType, Vec<u8>)> {
        let payload = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let v4 = ipv4(IpNumber::TCP, None, &tcp(payload));
        let mut vlan = vec![0, 7, 0x08, 0x00];
        vlan.extend_from_slice(&v4);
        vec![
            (LinkType::Ethernet, ethernet(0x0800, &v4)),
            (LinkType::Ethernet, ethernet(0x86dd, &ipv6(None, &tcp(payload)))),
            (LinkType::Raw, v4.clone()),
            (LinkType::Ethernet, ethernet(0x0800, &ipv4(IpNumber::TCP, Some((7, 0, true)), &tcp(payload)))),
            (LinkType::Ethernet, ethernet(0x86dd, &ipv6(Some((7, 0, true)), &tcp(payload)))),
            (LinkType::Ethernet, ethernet(0x0800, &ipv4(IpNumber::UDP, None, &tcp(payload)))),
            (LinkType::Ethernet, ethernet(0x8100, &vlan)),
        ]
    }

    /// Whether `Endpoints::of` keeps its promise on `frame`: when it reads endpoints, `decode`
    /// makes a TCP segment with them.
    fn endpoints_agree_with_decode(link: LinkType, frame: &[u8]) -> bool {
        match Endpoints::of(link, frame) {
            None => true,
            Some(ends) => matches!(decoded(link, frame), Decoded::Tcp(seg) if Endpoints::of_segment(&seg) == ends),
        }
    }

    #[test]
    fn test_endpoints_are_read_from_plain_ipv4_and_ipv6_tcp_frames_only() {
        let read: Vec<bool> = endpoint_test_frames().iter().map(|(link, frame)| Endpoints::of(*link, frame).is_some()).collect();
        assert_eq!(read, [true, true, true, false, false, false, false]);
        let (link, frame) = &endpoint_test_frames()[0];
        let ends = Endpoints::of(*link, frame).unwrap();
        assert_eq!((ends.src_port, ends.dst_port), (40000, 8080));
        assert_eq!(ends, Endpoints::of_segment(&segment(decoded(*link, frame))));
    }

    #[test]
    fn test_endpoints_agree_with_decode_on_every_mutation_of_the_headers() {
        // Every byte of the link, IP and TCP headers set to values that break one rule or another
        // (versions, header lengths, total lengths, fragment bits, protocols, data offsets), and
        // every frame cut short at each length: whenever endpoints are read, decode agrees.
        let values = [0x00, 0x01, 0x06, 0x08, 0x11, 0x1f, 0x20, 0x3f, 0x40, 0x45, 0x46, 0x4f, 0x50, 0x60, 0x86, 0xdd, 0xf0, 0xff];
        let mut checked = 0;
        for (link, frame) in endpoint_test_frames() {
            for at in 0..frame.len().min(14 + 40 + 20) {
                for value in values {
                    let mut mutated = frame.clone();
                    mutated[at] = value;
                    assert!(endpoints_agree_with_decode(link, &mutated), "byte {at} set to {value:#x} in {frame:?}");
                    checked += 1;
                }
            }
            for len in 0..frame.len() {
                assert!(endpoints_agree_with_decode(link, &frame[..len]), "cut to {len} bytes: {frame:?}");
            }
        }
        assert!(checked > 5000);
    }

    #[test]
    fn test_window_scale_after_options_of_unknown_kinds_is_found_as_linux_finds_it() {
        // MSS, Fast Open cookie (kind 34, 10 bytes), MPTCP (kind 30, 4 bytes), NOP, window scale 7.
        let options = [2, 4, 0x05, 0xb4, 34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 30, 4, 0, 0, 1, 3, 3, 7];
        assert_eq!(window_scale(&options), Some(7));
    }

    #[test]
    fn test_window_scale_after_a_known_option_of_another_length_is_skipped_to() {
        // A 6-byte "MSS" (kind 2): skipped by its length, then the window scale.
        assert_eq!(window_scale(&[2, 6, 0, 0, 0, 0, 3, 3, 9]), Some(9));
    }

    #[test]
    fn test_window_scale_beyond_14_is_capped_and_a_bad_length_ends_the_walk() {
        assert_eq!(window_scale(&[3, 3, 20]), Some(14));
        assert_eq!(window_scale(&[1, 8, 1, 3, 3, 2]), None);
        assert_eq!(window_scale(&[0, 3, 3, 2]), None);
        assert_eq!(window_scale(&[3, 4, 2, 0]), None);
    }

    #[test]
    fn test_ieee8023_llc_snap_frame_carrying_ipv4_decodes_its_tcp_segment() {
        let frame = ieee8023_snap(0x0800, &ipv4(IpNumber::TCP, None, &tcp(REQUEST)));
        let seg = segment(decoded(LinkType::Ethernet, &frame));
        assert_eq!(seg.src.to_string(), "10.0.0.1:40000");
        assert_eq!(seg.dst.to_string(), "10.0.0.2:8080");
        assert_eq!(seg.payload, REQUEST);
        assert_eq!(seg.wire_len, REQUEST.len() as u32);
    }

    #[test]
    fn test_ieee8023_llc_snap_frame_carrying_ipv6_decodes_its_tcp_segment() {
        let frame = ieee8023_snap(0x86DD, &ipv6(None, &tcp(REQUEST)));
        let seg = segment(decoded(LinkType::Ethernet, &frame));
        assert_eq!(seg.src.to_string(), "[fd00::1]:40000");
        assert_eq!(seg.payload, REQUEST);
    }

    #[test]
    fn test_ieee8023_bytes_after_the_ip_packet_are_not_payload() {
        // Padding or a trailer after the packet the IP header delimits.
        let mut frame = ieee8023_snap(0x0800, &ipv4(IpNumber::TCP, None, &tcp(b"")));
        frame.extend_from_slice(&[0; 6]);
        let seg = segment(decoded(LinkType::Ethernet, &frame));
        assert_eq!(seg.payload, b"");
        assert_eq!(seg.wire_len, 0);
    }

    #[test]
    fn test_ieee8023_llc_frame_without_snap_is_not_tcp() {
        // Spanning tree: DSAP = SSAP = 0x42, UI.
        let frame = ethernet(38, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(decoded(LinkType::Ethernet, &frame), Decoded::NotTcp));
    }

    #[test]
    fn test_ieee8023_snap_frame_with_a_vendor_oui_is_not_tcp() {
        // Cisco's OUI 00-00-0C (CDP, type 0x2000) names no EtherType.
        let frame = ethernet(40, &[0xAA, 0xAA, 0x03, 0, 0, 0x0C, 0x20, 0x00, 1, 2, 3, 4]);
        assert!(matches!(decoded(LinkType::Ethernet, &frame), Decoded::NotTcp));
    }

    #[test]
    fn test_ieee8023_frame_ending_inside_the_snap_header_is_truncated() {
        let frame = ethernet(20, &[0xAA, 0xAA, 0x03, 0, 0]);
        assert!(matches!(decoded(LinkType::Ethernet, &frame), Decoded::Truncated));
    }

    #[test]
    fn test_vlan_tagged_ieee8023_snap_frame_decodes_its_tcp_segment() {
        let snap = llc_snap_header(0x0800, &ipv4(IpNumber::TCP, None, &tcp(REQUEST)));
        let mut tagged = vec![0x00, 0x0A];
        tagged.extend_from_slice(&(snap.len() as u16).to_be_bytes());
        tagged.extend_from_slice(&snap);
        let frame = ethernet(0x8100, &tagged);
        assert_eq!(segment(decoded(LinkType::Ethernet, &frame)).payload, REQUEST);
    }

    #[test]
    fn test_qinq_tagged_ipv4_frame_decodes_its_tcp_segment() {
        let mut tags = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0x0A, 0x08, 0x00];
        tags.extend_from_slice(&ipv4(IpNumber::TCP, None, &tcp(REQUEST)));
        let frame = ethernet(0x88A8, &tags);
        assert_eq!(segment(decoded(LinkType::Ethernet, &frame)).payload, REQUEST);
    }

    #[test]
    fn test_linux_cooked_frame_of_protocol_802_2_with_snap_decodes_its_tcp_segment() {
        let mut frame = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x00, 0x04];
        frame.extend_from_slice(&llc_snap_header(0x0800, &ipv4(IpNumber::TCP, None, &tcp(REQUEST))));
        assert_eq!(segment(decoded(LinkType::LinuxSll, &frame)).payload, REQUEST);
    }

    #[test]
    fn test_trailing_frame_check_sequence_is_not_read_as_payload() {
        let mut frame = ethernet(0x0800, &ipv4(IpNumber::TCP, None, &tcp(REQUEST)));
        frame.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
        let seg = segment(decoded(LinkType::Ethernet, &frame));
        assert_eq!(seg.payload, REQUEST);
        assert_eq!(seg.wire_len, REQUEST.len() as u32);
    }

    #[test]
    fn test_ipv4_fragment_of_a_tcp_packet_is_a_fragment_with_its_offset_and_flag() {
        let body = tcp(REQUEST);
        let first = ipv4(IpNumber::TCP, Some((7, 0, true)), &body[..24]);
        let Decoded::Fragment(f) = decoded(LinkType::Raw, &first) else { panic!("not a fragment") };
        assert_eq!(f.key, FragmentKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), id: 7 });
        assert_eq!((f.offset, f.more, f.data, f.wire_len), (0, true, &body[..24], 24));
        let last = ipv4(IpNumber::TCP, Some((7, 24, false)), &body[24..]);
        let Decoded::Fragment(f) = decoded(LinkType::Raw, &last) else { panic!("not a fragment") };
        assert_eq!((f.offset, f.more, f.data.len()), (24, false, body.len() - 24));
    }

    #[test]
    fn test_ipv4_fragment_cut_by_snaplen_keeps_its_wire_length() {
        let frame = ipv4(IpNumber::TCP, Some((7, 0, true)), &[0; 1000]);
        let Decoded::Fragment(f) = decode(LinkType::Raw, &frame[..96], frame.len() as u32, 1.0) else { panic!("not a fragment") };
        assert_eq!((f.data.len(), f.wire_len), (76, 1000));
    }

    #[test]
    fn test_ipv4_fragment_of_a_udp_packet_is_not_tcp() {
        let frame = ipv4(IpNumber::UDP, Some((7, 8, false)), &[0; 16]);
        assert!(matches!(decoded(LinkType::Raw, &frame), Decoded::NotTcp));
    }

    #[test]
    fn test_ipv6_fragment_of_a_tcp_packet_is_a_fragment_with_its_identification() {
        let body = tcp(REQUEST);
        let frame = ipv6(Some((0xDEAD_BEEF, 16, false)), &body[16..]);
        let Decoded::Fragment(f) = decoded(LinkType::Raw, &frame) else { panic!("not a fragment") };
        assert_eq!(f.key.id, 0xDEAD_BEEF);
        assert_eq!(f.key.dst, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!((f.offset, f.more, f.data), (16, false, &body[16..]));
    }

    #[test]
    fn test_ipv6_atomic_fragment_is_an_ordinary_segment() {
        // RFC 6946: a fragment header with offset 0 and no more fragments fragments nothing.
        let frame = ipv6(Some((1, 0, false)), &tcp(REQUEST));
        assert_eq!(segment(decoded(LinkType::Raw, &frame)).payload, REQUEST);
    }

    #[test]
    fn test_reassembled_segment_decodes_the_tcp_header_and_payload_it_owns() {
        let key = FragmentKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), id: 7 };
        let body = tcp(REQUEST);
        let owned = reassembled_segment(2.5, &key, &body, body.len() as u32).unwrap();
        let seg = owned.segment();
        assert_eq!((seg.ts, seg.src.to_string(), seg.seq.0), (2.5, "10.0.0.1:40000".to_string(), 1000));
        assert_eq!((seg.payload, seg.wire_len), (REQUEST, REQUEST.len() as u32));
        // Captured only to byte 30: the segment keeps its wire length and is truncated.
        let cut = reassembled_segment(2.5, &key, &body[..30], body.len() as u32).unwrap();
        assert_eq!((cut.segment().payload, cut.segment().wire_len), (&REQUEST[..10], REQUEST.len() as u32));
        assert!(cut.segment().truncated());
        assert!(reassembled_segment(2.5, &key, &body[..12], body.len() as u32).is_none());
    }
}
