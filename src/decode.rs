//! Link layer → IP → TCP: turns a captured frame into a borrowed [`Segment`].
//!
//! Ethernet and VLAN headers are sliced by etherparse; Linux cooked SLL and SLL2 and BSD loopback
//! NULL/LOOP headers are stripped here (etherparse has no slicer for SLL2 or NULL); then etherparse's
//! lax IP slicer and its TCP slicer do the rest, one layer at a time (no whole-packet struct is built). Lengths come from the IP header, so a packet cut short by the
//! capture's snaplen still yields its TCP header and the length its payload had on the wire.

use crate::seq::SeqNumber;
use etherparse::{EtherType, Ethernet2Slice, IpNumber, LaxIpSlice, SingleVlanSlice, TcpSlice};
use std::net::SocketAddr;

/// The link-layer header types connscope decodes (libpcap DLT/LINKTYPE values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB (1).
    Ethernet,
    /// DLT_NULL (0): 4-byte address family in the capturing host's byte order.
    Null,
    /// DLT_LOOP (108, OpenBSD loopback): 4-byte address family in network byte order.
    Loop,
    /// DLT_RAW (12 or 14 on some systems) / LINKTYPE_RAW (101): the packet starts with the IP header.
    Raw,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// DLT_LINUX_SLL (113): Linux cooked capture v1, 16-byte header.
    LinuxSll,
    /// DLT_LINUX_SLL2 (276): Linux cooked capture v2, 20-byte header.
    LinuxSll2,
}

impl LinkType {
    /// Every link type connscope decodes.
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
    ];

    /// Maps a libpcap data-link type number to a supported link type.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The LINKTYPE_ number a pcap file header carries for this link type.
    pub fn dlt(self) -> i32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }

    /// The libpcap name of the link type, as tcpdump prints it.
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "EN10MB",
            LinkType::Null => "NULL",
            LinkType::Loop => "LOOP",
            LinkType::Raw => "RAW",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::LinuxSll2 => "LINUX_SLL2",
        }
    }
}

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

/// What a captured frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A TCP segment whose header was captured whole.
    Tcp(Segment<'a>),
    /// An IP packet that is not TCP (UDP, ICMP, ...), or a non-IP frame (ARP, ...).
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
    let (ether_type, ip) = match strip_vlan_tags(ether_type, rest) {
        Some(inner) => inner,
        None => return Decoded::Truncated,
    };
    if ether_type != EtherType::IPV4 && ether_type != EtherType::IPV6 {
        return Decoded::NotTcp;
    }
    let link_len = (ip.as_ptr() as usize - frame.as_ptr() as usize) as u32;
    from_ip(ip, orig_len.saturating_sub(link_len), ts)
}

/// An address as 128 bits, IPv4 mapped into IPv6: one integer for either family.
pub fn ip_bits(addr: SocketAddr) -> u128 {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
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
    if ip_payload.ip_number != IpNumber::TCP {
        return Decoded::NotTcp;
    }
    if ip_payload.fragmented {
        return Decoded::Undecodable;
    }
    let Ok(tcp) = TcpSlice::from_slice(ip_payload.payload) else { return Decoded::Truncated };
    let payload = tcp.payload();
    // Bytes from the start of the IP header to the end of the TCP header (IP options and extension headers included).
    let headers_len = (payload.as_ptr() as usize).saturating_sub(ip_start as usize) as u32;
    let wire_ip_len = if ip_total_len >= headers_len { ip_total_len } else { orig_ip_len };
    let wire_len = wire_ip_len.saturating_sub(headers_len).max(payload.len() as u32);
    Decoded::Tcp(Segment {
        ts,
        src: SocketAddr::new(ip.source_addr(), tcp.source_port()),
        dst: SocketAddr::new(ip.destination_addr(), tcp.destination_port()),
        flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst(), psh: tcp.psh() },
        seq: SeqNumber(tcp.sequence_number()),
        ack: SeqNumber(tcp.acknowledgment_number()),
        window: tcp.window_size(),
        window_scale: if tcp.syn() { window_scale(tcp.options()) } else { None },
        payload,
        wire_len,
    })
}

/// The window scale shift from TCP options (kind 3), if present.
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
