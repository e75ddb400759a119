//! The key of a connection (its 4-tuple, either direction) and which end is the client.
//!
//! Input: a segment's addresses and flags, from [`crate::tcp::FlowTable::process`]. Output: the
//! key the table maps to the open connection or the tombstone, and the orientation of a new one.

use crate::decode::{ip_bits, Segment};
use std::net::SocketAddr;

/// Canonical 4-tuple: each endpoint as a 128-bit address (IPv4 mapped into IPv6) and a port, the
/// lower endpoint first so both directions map to one key. Plain integers: cheap to hash and compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    lo_ip: u128,
    hi_ip: u128,
    /// Low endpoint's port in the high 16 bits, high endpoint's in the low 16.
    ports: u32,
}

/// The key folded into one word before the map's hasher mixes it, instead of the 36 bytes field by
/// field (callgrind: 0.7 % fewer instructions in all), keeping what tells connections apart (client
/// ports, addresses) in different bits.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let fold = |ip: u128| (ip as u64) ^ ((ip >> 64) as u64).rotate_left(32);
        state.write_u64(fold(self.lo_ip) ^ fold(self.hi_ip).rotate_left(17) ^ (u64::from(self.ports) << 24));
    }
}

impl FlowKey {
    /// The key of the connection between `a` and `b`, whichever is which.
    pub fn of(a: SocketAddr, b: SocketAddr) -> FlowKey {
        let (a, b) = ((ip_bits(a), a.port()), (ip_bits(b), b.port()));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey { lo_ip: lo.0, hi_ip: hi.0, ports: (u32::from(lo.1) << 16) | u32::from(hi.1) }
    }

    /// True when `addr` is the key's lower endpoint.
    pub(super) fn is_lo(&self, addr: SocketAddr) -> bool {
        ip_bits(addr) == self.lo_ip && u32::from(addr.port()) == self.ports >> 16
    }
}

/// Client and server of a new connection: the SYN sender is the client; otherwise the side on
/// `--port`, else the lower port, is the server.
pub(super) fn orient(seg: &Segment<'_>, server_port: Option<u16>) -> (SocketAddr, SocketAddr) {
    let (src, dst) = (seg.src, seg.dst);
    if seg.flags.syn {
        return if seg.flags.ack { (dst, src) } else { (src, dst) };
    }
    match server_port {
        Some(p) if src.port() == p && dst.port() != p => (dst, src),
        Some(p) if dst.port() == p => (src, dst),
        _ if src.port() < dst.port() => (dst, src),
        _ => (src, dst),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use crate::report::Handshake;

    // ESTABLISHED mid-stream: which end is the server.

    #[test]
    fn test_mid_stream_connection_takes_port_side_as_server() {
        let r = run(&[(0.0, false, "P.", 5001, 1101, 10), (0.001, true, ".", 1101, 5011, 0)]);
        let c = &r.0[0];
        assert_eq!(c.handshake, Handshake::MidStream);
        assert_eq!(c.server.to_string(), S);
        assert_eq!((c.client_state, c.server_state), (TcpState::ESTABLISHED, TcpState::ESTABLISHED));
    }
}
