//! TCP sequence numbers: 32-bit values that wrap, compared with serial-number arithmetic (RFC 1982).
//!
//! Made by [`crate::decode`] from the TCP header; read by the flow table and the protocol
//! watchers' stream reassembly.

use std::cmp::Ordering;
use std::fmt;

/// A TCP sequence number. Never compare the raw `u32`s: use the methods here, which wrap at 2^32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self + n`, wrapping at 2^32.
    pub fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// `self - n`, wrapping at 2^32.
    pub fn wrapping_sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }

    /// Signed distance from `other` to `self` (positive when `self` is after `other`).
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// True when `self` comes strictly after `other`, modulo 2^32.
    pub fn after(self, other: SeqNumber) -> bool {
        self.diff(other) > 0
    }

    /// True when `self` comes at or after `other`, modulo 2^32.
    pub fn at_or_after(self, other: SeqNumber) -> bool {
        self.diff(other) >= 0
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.after(other) {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps_around_2_pow_32() {
        let before_wrap = SeqNumber(u32::MAX - 10);
        let after_wrap = before_wrap.wrapping_add(20);
        assert_eq!(after_wrap, SeqNumber(9));
        assert!(after_wrap.after(before_wrap));
        assert!(!before_wrap.after(after_wrap));
        assert_eq!(after_wrap.diff(before_wrap), 20);
        assert_eq!(before_wrap.diff(after_wrap), -20);
        assert_eq!(before_wrap.max(after_wrap), after_wrap);
    }

    #[test]
    fn equal_numbers_are_at_or_after_each_other() {
        let a = SeqNumber(5);
        assert!(a.at_or_after(a));
        assert!(!a.after(a));
    }
}
