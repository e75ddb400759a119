//! The JSON report (`--format json`): the [`Report`] as one pretty-printed object (serde_json's
//! pretty printer, two spaces per level). Its fields are documented in `docs/json.md` and
//! versioned by `schema_version`.
//!
//! Numbers with a fraction (times, rates) are written rounded to the microsecond ([`micros`]):
//! timestamps are epoch seconds in an `f64`, which near the present resolve about 0.24 µs, so
//! digits past the microsecond (`0.0019450187683105469`) would be float noise, not the capture's.

use crate::report::Report;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use std::io::{self, Write};

/// Writes the report as JSON followed by a newline.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    // The serialiser makes a write per token: into a buffer of a type it knows they are inlined
    // copies, through `dyn Write` each would be a call.
    let mut buffered = io::BufWriter::with_capacity(1 << 16, out);
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffered, Micros(PrettyFormatter::new()));
    serde::Serialize::serialize(report, &mut serializer).map_err(io::Error::from)?;
    writeln!(buffered)?;
    buffered.flush()
}

/// Writes `value` as one line of compact JSON (NDJSON), numbers rounded as in [`write()`].
pub fn write_line<T: serde::Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> serde_json::Result<()> {
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
}
