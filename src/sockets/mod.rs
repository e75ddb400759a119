//! The kernel's view of TCP sockets, beside what the packets say: Linux's socket tables read through
//! netlink sock_diag ([`table`]), the owning process of each socket found from its inode in
//! `/proc/PID/fd` ([`process`]), counted per state and side for one port ([`snapshot`]), checked by
//! `--assert` ([`check`]) and drawn for people ([`render`]).
//!
//! [`resolve_process`] and [`kernel_state`] answer for one connection, for commands that watch
//! packets (capture) and want the process and kernel state behind a 4-tuple; [`agreement`] reads
//! the tables once at the end of a capture and judges one socket's state against the packets'.
//! Nothing here knows the report: the report's records name [`ProcessInfo`], and live capture
//! (`crate::live::agreement`) sets these states beside the records'.
//!
//! Linux only: elsewhere every reader returns [`SocketsError::Unsupported`].

pub mod agreement;
pub mod check;
pub mod process;
pub mod render;
pub mod snapshot;
pub mod table;

use crate::tcp::state::TcpState;
use std::net::SocketAddr;

/// Defined with the other errors (`crate::error`), which every stage may return.
pub use crate::error::SocketsError;
pub use process::{resolve_process, ProcessInfo};
pub use table::kernel_state;

/// One TCP socket as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSocket {
    /// This socket's own address.
    pub local: SocketAddr,
    /// The peer's address (`0.0.0.0:0` or `[::]:0` for a listening socket).
    pub remote: SocketAddr,
    /// The kernel's state, netstat-named.
    pub state: TcpState,
    /// The socket's inode, the link from `/proc/PID/fd` to the socket; 0 when no file holds the
    /// socket any more (TIME_WAIT, and orphans the application already closed).
    pub inode: u64,
    /// The owning user.
    pub uid: u32,
}
