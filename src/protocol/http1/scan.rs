//! A quick scan of the common, well-formed HTTP/1 head, in front of httparse.
//!
//! It accepts only a head that httparse (with `ParserConfig::default()`) accepts with the same
//! length, start line and [`HeadFacts`]: a start line of plain ASCII ending in CRLF and header
//! lines `token ":" value CRLF` whose bytes lie in httparse's sets. Anything else (a bare LF,
//! obs-fold, a space before a colon, a target byte above 0x7E, a head not complete in the block,
//! more headers than the framer gives httparse) it declines with `None`, and httparse judges the
//! head as before. Only the start line and the framing headers' values are read; the other
//! values are only checked, sixteen bytes at a time.

use super::{Head, HeadFacts, StartLine, MAX_HEADERS, MAX_METHOD_LEN};
use crate::protocol::HttpVersion;
use crate::wire::Side;

/// The head at the start of `block` in `side`'s direction, when the scan is sure of it.
pub(super) fn head(side: Side, block: &[u8]) -> Option<Head<'_>> {
    match side {
        Side::Client => request(block),
        Side::Server => response(block),
    }
}

/// A request head: `METHOD SP target SP HTTP/1.x CRLF` and headers. The method is held to what
/// the framer's start-line check also believes (uppercase letters, `-`, `_`; at most
/// [`MAX_METHOD_LEN`]), a subset of httparse's tokens; the target to visible ASCII, which
/// httparse takes and which is always UTF-8.
fn request(block: &[u8]) -> Option<Head<'_>> {
    let method_len = block.iter().take(MAX_METHOD_LEN + 1).take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_').count();
    if !(1..=MAX_METHOD_LEN).contains(&method_len) || *block.get(method_len)? != b' ' {
        return None;
    }
    let target_start = method_len + 1;
    let target_len = block.get(target_start..)?.iter().take_while(|b| b.is_ascii_graphic()).count();
    let version_start = target_start + target_len;
    if target_len == 0 || *block.get(version_start)? != b' ' {
        return None;
    }
    let (version, line_end) = version_and_crlf(block, version_start + 1)?;
    let (len, facts) = headers(block, line_end)?;
    let ascii = &block[..version_start];
    debug_assert!(ascii.is_ascii());
    // SAFETY: every byte before `version_start` was checked above to be ASCII (uppercase letters,
    // `-`, `_`, a space, visible ASCII), and ASCII is UTF-8. `from_utf8` would check it again, byte
    // by byte: 130 instructions a request.
    let line = unsafe { std::str::from_utf8_unchecked(ascii) };
    let (method, target) = (&line[..method_len], &line[target_start..]);
    Some(Head { len, start: StartLine::Request { method, target }, version, facts })
}

/// A response head: `HTTP/1.x SP ddd`, then CRLF or a space, a reason phrase and CRLF, then
/// headers. The reason phrase takes the bytes a header value takes (HTAB, SP, visible, 0x80-0xFF).
fn response(block: &[u8]) -> Option<Head<'_>> {
    let version = version(block.get(..8)?)?;
    let [b' ', hundreds, tens, ones, after] = *block.get(8..13)? else { return None };
    if ![hundreds, tens, ones].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = [hundreds, tens, ones].iter().fold(0, |n, digit| n * 10 + u16::from(digit - b'0'));
    let line_end = match after {
        b'\r' if block.get(13) == Some(&b'\n') => 14,
        b' ' => line_end(block, 13)? + 2,
        _ => return None,
    };
    let (len, facts) = headers(block, line_end)?;
    Some(Head { len, start: StartLine::Response { status }, version, facts })
}

/// `HTTP/1.0` or `HTTP/1.1` (all httparse takes) at `at`, then CRLF; the version and where
/// the line after begins.
fn version_and_crlf(block: &[u8], at: usize) -> Option<(HttpVersion, usize)> {
    let version = version(block.get(at..at + 8)?)?;
    (block.get(at + 8..at + 10)? == b"\r\n").then_some((version, at + 10))
}

/// The version `bytes` name, if httparse takes it.
fn version(bytes: &[u8]) -> Option<HttpVersion> {
    match bytes {
        b"HTTP/1.0" => Some(HttpVersion::Http10),
        b"HTTP/1.1" => Some(HttpVersion::Http11),
        _ => None,
    }
}

/// The header lines from `at` to the blank line (CRLF) that ends them: the head's length and
/// the framing facts. Each line is a name of token bytes, a colon, and a value of header-value
/// bytes ended by CRLF (handed over with the blanks around it, which [`HeadFacts::add`] ignores).
fn headers(block: &[u8], mut at: usize) -> Option<(usize, HeadFacts)> {
    let mut facts = HeadFacts::default();
    for _ in 0..=MAX_HEADERS {
        let line = block.get(at..)?;
        if line.starts_with(b"\r\n") {
            return Some((at + 2, facts));
        }
        let name_len = line.iter().position(|b| !TOKEN[usize::from(*b)])?;
        if name_len == 0 || line[name_len] != b':' {
            return None;
        }
        let name = &line[..name_len];
        let value_end = line_end(line, name_len + 1)?;
        facts.add(name, &line[name_len + 1..value_end]);
        at += value_end + 2;
    }
    None // more headers than httparse is given room for
}

/// httparse's token bytes (header names): letters, digits and ``!#$%&'*+-.^_`|~``.
const TOKEN: [bool; 256] = {
    let mut map = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        map[byte] = matches!(byte as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        byte += 1;
    }
    map
};

/// Where the line going on at `at` ends (the index of its CRLF), when every byte before it is
/// one httparse takes in a header value or reason phrase (HTAB, 0x20-0x7E, 0x80-0xFF); `None`
/// when another byte comes first (a bare LF, a lone CR, NUL, DEL, ...) or no CRLF is in `block`.
#[inline(always)]
fn line_end(block: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at = find(block, at, is_control)?;
        match block[at] {
            b'\t' => at += 1,
            b'\r' if block.get(at + 1) == Some(&b'\n') => return Some(at),
            _ => return None,
        }
    }
}

/// Whether httparse stops a header value or reason phrase at `byte` (a byte below 0x20 or DEL:
/// CR, LF, HTAB and the other controls).
fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7F
}

/// Index of the first byte of `block` from `at` on that `flag` accepts. Sixteen bytes at a time,
/// with no branch per byte, which the compiler turns into vector compares; the last few one by one.
#[inline(always)]
fn find(block: &[u8], mut at: usize, flag: impl Fn(u8) -> bool) -> Option<usize> {
    while let Some(chunk) = block.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        let flags = u128::from_le_bytes(std::array::from_fn(|i| if flag(chunk[i]) { 0xFF } else { 0 }));
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 16;
    }
    block.get(at..)?.iter().position(|b| flag(*b)).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_find_gives_the_first_flagged_byte_at_every_offset_and_length() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (state >> 58) as usize;
            let at = (state >> 20) as usize % (len + 2);
            // Mostly visible bytes, sometimes a control, DEL or a high byte.
            let bytes: Vec<u8> = (0..len)
                .map(|i| match state.rotate_left(i as u32 * 5) as u8 {
                    r if r % 37 == 0 => r % 0x20,
                    r if r % 41 == 0 => 0x7F,
                    r => r | 0x20,
                })
                .collect();
            let naive = bytes.get(at..).and_then(|rest| rest.iter().position(|b| is_control(*b))).map(|i| at + i);
            assert_eq!(find(&bytes, at, is_control), naive, "{bytes:x?} from {at}");
        }
    }

    #[test]
    fn test_line_end_stops_at_crlf_and_passes_tabs_only() {
        assert_eq!(line_end(b"a\tb c\x80\xff~\r\nnext", 0), Some(8));
        assert_eq!(line_end(b"x: \r\n", 2), Some(3));
        assert_eq!(line_end(b"\r\n", 0), Some(0));
        assert_eq!(line_end(b"abc\nx\r\n", 0), None);
        assert_eq!(line_end(b"abc\rx\r\n", 0), None);
        assert_eq!(line_end(b"ab\x7fc\r\n", 0), None);
        assert_eq!(line_end(b"ab\x00c\r\n", 0), None);
        assert_eq!(line_end(b"abcdefgh\r", 0), None);
        assert_eq!(line_end(b"abcdefgh", 0), None);
    }
}
