//! The link-layer header types a capture's frames start with.
//!
//! Named by the capture sources (a file's header, a device's data-link type: [`crate::source`],
//! [`crate::live`]); read by [`crate::decode`], which strips the header, and by the savefile.

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
