//! connscope: rebuilds every TCP connection in a capture and says whether HTTP connections were reused,
//! who closed them first and which socket state each side is left in.
//!
//! The pipeline, one way from frames to output:
//!
//! ```text
//!  source (pcap, pcapng, stdin)   live (device, replay; FrameSource)
//!            \                       /
//!             frames ──> decode (link, IP + defrag, TCP) ──> segments
//!                                                              │
//!                 tcp: FlowTable ─ connection update ─ state machine
//!                        │      (protocol watchers run inside the update:
//!                        │       reassembly, HTTP/1, TLS, h2)
//!                        ▼
//!                 TcpFacts + ProtocolSummary ──> report (records, summary, verdict)
//!                                                   │
//!                                                   ▼
//!                                        render (table, JSON, ladder, SVG, ...)
//! ```
//!
//! [`source`] and [`live`] give frames; [`decode`] (with [`defrag`]) turns them into segments;
//! [`tcp`] rebuilds connections, and each connection's update runs its [`protocol`] watcher on the
//! payload and hands the TCP facts and the protocol summary of each finished connection to its sink;
//! [`report`] builds records and the summary from them; [`render`] prints them. [`pipeline`] wires
//! the stages together for every command (one thread or [`pipeline::parallel`]), its sinks building
//! the records; [`sockets`] reads the kernel's tables for live runs; [`wire`] holds the values every
//! stage shares. The binary's command line (clap) lives in `src/cli/`, outside the library. The
//! layout, and which way each dependency goes (checked by `tests/architecture.rs`), is in
//! `docs/architecture.md`.

pub mod assert;
pub mod decode;
pub mod defrag;
pub mod error;
pub mod live;
pub mod pipeline;
pub mod protocol;
pub mod render;
pub mod report;
pub mod sockets;
pub mod source;
pub mod tcp;
pub mod wire;
