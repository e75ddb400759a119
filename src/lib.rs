//! connscope: rebuilds every TCP connection in a capture and says whether HTTP connections were reused,
//! who closed them first and which socket state each side is left in.
//!
//! Pipeline: `source` → `decode` → `flow` (TCP state) → `protocol` (HTTP/1.x, TLS, h2) → `report` → `render`.

pub mod protocol;
pub mod seq;
pub mod side;
