//! The kernel's socket states beside the states the packets imply, for the end of a live capture:
//! one dump of the socket tables ([`KernelSnapshot`]), and the judgement of one socket's inferred
//! state against the kernel's ([`judge`]). Applying them to the report's records (and counting
//! agreement) is live capture's (`crate::live::agreement`): the report sits above the kernel's tables.
//!
//! Linux specifics the judgement allows for: a CLOSED socket has no entry at all (so "no socket"
//! agrees with an inferred CLOSED); a TIME_WAIT socket may already be gone (expired after 60 s, or
//! recycled by `tcp_tw_reuse` for a new connection on the same ports); an orphaned FIN_WAIT_2 (its
//! application closed it) is still listed, without an owner, until `tcp_fin_timeout`; and a socket
//! whose last ACK or FIN was still in flight when the capture stopped is one step ahead of the
//! packets (LAST_ACK already CLOSED, FIN_WAIT_1 already FIN_WAIT_2).

use super::{table, KernelSocket, SocketsError};
use crate::tcp::state::TcpState;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

/// Every TCP socket of the host at one moment, by 4-tuple, and the host's own addresses.
#[derive(Debug, Default)]
pub struct KernelSnapshot {
    sockets: HashMap<(SocketAddr, SocketAddr), KernelSocket>,
    local_ips: HashSet<IpAddr>,
}

impl KernelSnapshot {
    /// Reads every TCP socket (one netlink dump). `local_ips` are the host's interface addresses;
    /// loopback addresses, and the addresses sockets are bound to, count as local as well.
    pub fn read(local_ips: impl IntoIterator<Item = IpAddr>) -> Result<KernelSnapshot, SocketsError> {
        Ok(KernelSnapshot::from_sockets(table::read_all()?, local_ips))
    }

    /// A snapshot of `sockets`.
    pub fn from_sockets(sockets: Vec<KernelSocket>, local_ips: impl IntoIterator<Item = IpAddr>) -> KernelSnapshot {
        let mut local_ips: HashSet<IpAddr> = local_ips.into_iter().map(unmapped_ip).collect();
        let mut by_tuple = HashMap::with_capacity(sockets.len());
        for socket in sockets {
            let (local, remote) = (unmapped(socket.local), unmapped(socket.remote));
            if !local.ip().is_unspecified() {
                local_ips.insert(local.ip());
            }
            if socket.state != TcpState::LISTEN {
                by_tuple.insert((local, remote), socket);
            }
        }
        KernelSnapshot { sockets: by_tuple, local_ips }
    }

    /// The socket whose own address is `local` and whose peer is `remote`.
    pub fn socket(&self, local: SocketAddr, remote: SocketAddr) -> Option<&KernelSocket> {
        self.sockets.get(&(unmapped(local), unmapped(remote)))
    }

    /// True when `ip` is one of this host's addresses: its sockets would be in the tables.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = unmapped_ip(ip);
        ip.is_loopback() || self.local_ips.contains(&ip)
    }

    /// The kernel's view of one side of a connection: `None` when that side is not this host's,
    /// `Some(None)` when it is but the kernel has no such socket, `Some(Some(state))` otherwise.
    pub fn side(&self, local: SocketAddr, remote: SocketAddr) -> Option<Option<TcpState>> {
        self.is_local(local.ip()).then(|| self.socket(local, remote).map(|s| s.state))
    }
}

/// What one comparison found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The kernel shows the state the packets imply (or no socket for an inferred CLOSED).
    Agree,
    /// Inferred TIME_WAIT, no kernel socket: expired, or recycled for a new connection.
    TimeWaitGone,
    /// Any other difference: the state moved after the last captured packet, or packets were missed.
    Changed,
}

/// Judges a socket the packets leave in `inferred` against the kernel's `kernel` (`None`: no socket).
pub fn judge(inferred: TcpState, kernel: Option<TcpState>) -> Judgement {
    match kernel {
        Some(state) if state == inferred => Judgement::Agree,
        None if inferred == TcpState::CLOSED => Judgement::Agree,
        None if inferred == TcpState::TIME_WAIT => Judgement::TimeWaitGone,
        _ => Judgement::Changed,
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as the IPv4 address
/// the packets carry.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(unmapped_ip(addr.ip()), addr.port())
}

fn unmapped_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(local: &str, remote: &str, state: TcpState) -> KernelSocket {
        KernelSocket { local: local.parse().unwrap(), remote: remote.parse().unwrap(), state, inode: 0, uid: 0 }
    }

    #[test]
    fn test_judgement_allows_for_linux_specifics() {
        assert_eq!(judge(TcpState::CLOSED, None), Judgement::Agree);
        assert_eq!(judge(TcpState::FIN_WAIT_2, Some(TcpState::FIN_WAIT_2)), Judgement::Agree);
        assert_eq!(judge(TcpState::TIME_WAIT, None), Judgement::TimeWaitGone);
        assert_eq!(judge(TcpState::LAST_ACK, None), Judgement::Changed);
        assert_eq!(judge(TcpState::ESTABLISHED, Some(TcpState::CLOSE_WAIT)), Judgement::Changed);
    }

    #[test]
    fn test_dual_stack_sockets_match_ipv4_tuples_and_remote_hosts_are_not_local() {
        let snapshot = KernelSnapshot::from_sockets(
            vec![socket("[::ffff:10.0.0.5]:80", "[::ffff:10.0.0.9]:5000", TcpState::CLOSE_WAIT)],
            ["10.0.0.5".parse().unwrap()],
        );
        let (server, client) = ("10.0.0.5:80".parse().unwrap(), "10.0.0.9:5000".parse().unwrap());
        assert_eq!(snapshot.side(server, client), Some(Some(TcpState::CLOSE_WAIT)));
        assert_eq!(snapshot.side(client, server), None, "10.0.0.9 is another host");
        assert_eq!(snapshot.side("127.0.0.1:1".parse().unwrap(), client), Some(None), "loopback is local");
    }
}
