//! Errors that end a run, each with the problem and the fix in one line (exit status 2).

use thiserror::Error;

/// What can stop connscope before it has a report.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot read {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Create { path: String, reason: String },
    #[error("{path}: link type {name} (DLT {dlt}) is not supported; connscope reads Ethernet, Linux cooked (SLL, SLL2: tcpdump -i any), BSD loopback (NULL/LOOP) and raw IP captures")]
    UnsupportedLinkType { path: String, name: String, dlt: i32 },
    #[error("{path}: pcapng interfaces with different link types ({detail}); split it per interface with `editcap -T ether` or tshark `-Y frame.interface_id==N -w`")]
    MixedLinkTypes { path: String, detail: String },
    #[error("filter `{filter}` does not compile: {reason}")]
    Filter { filter: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Capture(String),
    #[error(transparent)]
    Sockets(#[from] SocketsError),
    #[error("no permission to capture on {interface} ({detail}): run as root, or grant the capabilities once with `sudo setcap cap_net_raw,cap_net_admin=eip $(which connscope)`")]
    CapturePermission { interface: String, detail: String },
    #[error("no interface named {interface}; available: {available} (choose one with -i)")]
    UnknownInterface { interface: String, available: String },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Why the socket tables could not be read.
#[derive(Debug, Error)]
pub enum SocketsError {
    #[error("the kernel's socket tables are Linux-only (netlink sock_diag, /proc); this system has none — packet analysis (`connscope analyze`) works regardless")]
    Unsupported,
    #[error("netlink sock_diag: {0} (is this a container without netlink? `ss -tan` uses the same interface)")]
    Netlink(std::io::Error),
    #[error("netlink sock_diag answer not understood: {0}")]
    Decode(String),
}
