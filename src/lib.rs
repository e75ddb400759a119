//! connscope: rebuilds every TCP connection in a capture and says whether HTTP connections were reused,
//! who closed them first and which socket state each side is left in.
//!
//! Pipeline: [`source`] → [`decode`] → [`tcp`] (TCP state) → [`protocol`] (HTTP/1.x, TLS, h2) →
//! [`report`] → [`render`]. [`analyze`] wires the stages together for every command.

pub mod analyze;
pub mod assert;
pub mod decode;
pub mod defrag;
pub mod error;
pub mod live;
pub mod parallel;
pub mod progress;
pub mod protocol;
pub mod render;
pub mod report;
pub mod sockets;
pub mod source;
pub mod tcp;
