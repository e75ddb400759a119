//! Wire-level values every stage reads: the link type of a capture's frames, TCP sequence numbers,
//! and the side of a connection. Plain values with no behaviour beyond their arithmetic and names;
//! they depend on no other module, so the stages above them depend on each other one way only.

mod link;
mod seq;
mod side;

pub use link::LinkType;
pub use seq::SeqNumber;
pub use side::Side;
