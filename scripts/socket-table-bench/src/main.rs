//! Opens N loopback TCP connections (2N sockets, all ESTABLISHED) and times reading the kernel's
//! TCP tables for one port through procfs (/proc/net/tcp, tcp6) and through netlink sock_diag.
//! Bounded: every socket is closed when the program ends.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

fn procfs_count(port: u16) -> usize {
    let mut n = 0;
    for table in [procfs::net::tcp(), procfs::net::tcp6()] {
        let Ok(entries) = table else { continue };
        n += entries.iter().filter(|e| e.local_address.port() == port || e.remote_address.port() == port).count();
    }
    n
}

fn netlink_count(port: u16) -> usize {
    let mut n = 0;
    for family in [AF_INET, AF_INET6] {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).expect("netlink socket");
        socket.bind_auto().expect("bind");
        socket.connect(&SocketAddr::new(0, 0)).expect("connect");
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let socket_id = if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() };
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::all(),
                socket_id,
            })
            .into(),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send(&buf, 0).expect("send");
        let mut rx = vec![0u8; 1 << 16];
        'recv: loop {
            let size = socket.recv(&mut &mut rx[..], 0).expect("recv");
            let mut offset = 0;
            while offset < size {
                let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&rx[offset..size]).expect("parse");
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let id = &r.header.socket_id;
                        if id.source_port == port || id.destination_port == port {
                            n += 1;
                        }
                    }
                    NetlinkPayload::Done(_) => break 'recv,
                    NetlinkPayload::Error(e) => panic!("netlink error {e:?}"),
                    _ => {}
                }
                if msg.header.length == 0 {
                    break;
                }
                offset += msg.header.length as usize;
            }
        }
    }
    n
}

fn time(name: &str, f: impl Fn() -> usize) {
    let mut times: Vec<Duration> = Vec::new();
    let mut found = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        found = f();
        times.push(t.elapsed());
    }
    times.sort();
    println!("{name:8} sockets on port: {found:6}  median {:8.2?}  min {:8.2?}  max {:8.2?}", times[ROUNDS / 2], times[0], times[ROUNDS - 1]);
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut held = Vec::with_capacity(2 * n);
    for _ in 0..n {
        held.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        held.push(listener.accept().expect("accept").0);
    }
    let total_tcp = std::fs::read_to_string("/proc/net/tcp").map(|s| s.lines().count() - 1).unwrap_or(0);
    println!("{n} loopback connections on port {port} ({} sockets + listener; {total_tcp} lines in /proc/net/tcp), {ROUNDS} rounds", held.len());
    time("procfs", || procfs_count(port));
    time("netlink", || netlink_count(port));
}
