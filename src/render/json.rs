//! The JSON report (`--format json`): the [`Report`] as one pretty-printed object (two spaces per
//! level, as serde_json's `PrettyFormatter` writes it). Its fields are documented in `docs/json.md`
//! and versioned by `schema_version`.
//!
//! Numbers with a fraction (times, rates) are written rounded to the microsecond ([`micros`]):
//! timestamps are epoch seconds in an `f64`, which near the present resolve about 0.24 µs, so
//! digits past the microsecond (`0.0019450187683105469`) would be float noise, not the capture's.

use crate::report::Report;
use serde_json::ser::{CompactFormatter, Formatter};
use std::io::{self, Write};

/// Writes the report as JSON followed by a newline. The serialiser makes a write per token: `out`
/// is best a buffer of a type known here (`BufWriter<StdoutLock>`), where they are inlined
/// copies; through `dyn Write` each would be a call, to a file a system call.
pub fn write<W: Write + ?Sized>(report: &Report, out: &mut W) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, Micros(Pretty::default()));
    serde::Serialize::serialize(report, &mut serializer).map_err(io::Error::from)?;
    writeln!(out)
}

/// Writes `value` as one line of compact JSON (NDJSON), numbers rounded as in [`write()`]. `out`
/// is best a buffer (a write per token).
pub fn write_line<W: Write + ?Sized, T: serde::Serialize + ?Sized>(out: &mut W, value: &T) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, Micros(CompactFormatter));
    value.serialize(&mut serializer)
}

/// `value` rounded to the microsecond.
pub fn micros(value: f64) -> f64 {
    if value.is_finite() && value.abs() < 1e15 {
        (value * 1e6).round() / 1e6
    } else {
        value
    }
}

/// A JSON formatter that writes numbers with a fraction rounded to the microsecond and leaves
/// everything else to `F`.
struct Micros<F>(F);

impl<F: Formatter> Formatter for Micros<F> {
    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        self.0.write_f64(writer, micros(value))
    }
    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.0.write_f64(writer, micros(f64::from(value)))
    }
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }
    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }
    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

/// serde_json's `PrettyFormatter` with two spaces per level, but each line break and its
/// indentation written at once (the pretty printer makes a write per level: a call to `memcpy`
/// each, a quarter of the report's cost).
#[derive(Default)]
struct Pretty {
    depth: usize,
    /// The array or object being written has a value (it is closed on a line of its own).
    has_value: bool,
}

impl Pretty {
    /// `,` when not `first`, a line break, and the indentation of the current depth. The report's
    /// usual lines are written by constant-size writes (inlined copies; a write of a computed
    /// length is a call to `memcpy`).
    fn line<W: ?Sized + Write>(&self, writer: &mut W, first: bool) -> io::Result<()> {
        const BREAK: &[u8] = b",\n                                "; // 16 levels
        match (first, self.depth) {
            (false, 1) => writer.write_all(b",\n  "),
            (false, 2) => writer.write_all(b",\n    "),
            (false, 3) => writer.write_all(b",\n      "),
            (false, 4) => writer.write_all(b",\n        "),
            (false, 5) => writer.write_all(b",\n          "),
            (first, depth) => match BREAK.get(usize::from(first)..2 + 2 * depth) {
                Some(line) => writer.write_all(line),
                None => {
                    writer.write_all(&BREAK[usize::from(first)..2])?;
                    (0..depth).try_for_each(|_| writer.write_all(b"  "))
                }
            },
        }
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8; 1]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8; 1]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.line(writer, true)?;
        }
        writer.write_all(bracket)
    }
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.line(writer, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.line(writer, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_float_noise_is_rounded_to_the_microsecond_and_integers_untouched() {
        let value = serde_json::json!({"duration": 0.0019450187683105469, "start_ts": 1_796_218_283.388_287_4, "n": 3, "rate": 1.5});
        let mut out = Vec::new();
        write_line(&mut out, &value).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"duration":0.001945,"n":3,"rate":1.5,"start_ts":1796218283.388287}"#);
    }

    #[test]
    fn test_pretty_lays_out_as_serde_json_pretty_printer_at_every_depth() {
        let mut deep = serde_json::json!({"leaf": [1, {}, []]});
        for level in 0..20 {
            deep = serde_json::json!({"level": level, "empty": {}, "list": [[], deep, "x"]});
        }
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, Pretty::default());
        serde::Serialize::serialize(&deep, &mut serializer).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string_pretty(&deep).unwrap());
    }
}
