//! The JSON report (`--format json`): the [`Report`] as one pretty-printed object. Its fields are
//! documented in `docs/json.md` and versioned by `schema_version`.

use crate::report::Report;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// Writes the report as JSON followed by a newline.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    // The serialiser makes a write per token (millions for 10,000 connections): into a buffer of a
    // type it knows they are inlined copies, through `dyn Write` each is a call.
    let mut buffered = io::BufWriter::with_capacity(1 << 16, out);
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffered, Pretty::default());
    serde::Serialize::serialize(report, &mut serializer)?;
    writeln!(buffered)?;
    buffered.flush()
}

/// A newline and the deepest indentation [`Pretty`] writes in one piece.
const NEWLINE_AND_INDENT: &[u8] = b"\n                                                                ";

/// serde_json's `PrettyFormatter` (two spaces per level), byte for byte, but a line break and its
/// indentation are one write instead of one per level. A report listing 10,000 connections has
/// 499,436 lines (callgrind, 60k packets listing 10,000 connections: 232.9 M → 211.9 M instructions).
#[derive(Default)]
struct Pretty {
    level: usize,
    has_value: bool,
}

impl Pretty {
    fn new_line<W: ?Sized + Write>(&self, writer: &mut W) -> io::Result<()> {
        let width = 1 + 2 * self.level;
        match NEWLINE_AND_INDENT.get(..width) {
            Some(line) => writer.write_all(line),
            None => {
                writer.write_all(b"\n")?;
                (0..self.level).try_for_each(|_| writer.write_all(b"  "))
            }
        }
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(writer)?;
        }
        writer.write_all(bracket)
    }

    fn next_item<W: ?Sized + Write>(&self, writer: &mut W, first: bool) -> io::Result<()> {
        if !first {
            writer.write_all(b",")?;
        }
        self.new_line(writer)
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
        self.next_item(writer, first)
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
        self.next_item(writer, first)
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
    use serde_json::json;

    fn pretty(value: &serde_json::Value) -> String {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, Pretty::default());
        serde::Serialize::serialize(value, &mut serializer).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn test_output_is_serde_jsons_pretty_output() {
        let mut deep = json!("bottom");
        for level in 0..40 {
            deep = if level % 2 == 0 { json!([deep, 1]) } else { json!({ "k": deep, "e": {} }) };
        }
        let values = [
            json!({}),
            json!([]),
            json!({ "a": 1, "b": [1, 2, { "c": null, "d": [] }], "e": { "f": "g\n\"h\"" }, "i": [[], {}] }),
            json!([{ "x": 1.5 }, [true, false], "s"]),
            deep,
        ];
        for value in values {
            assert_eq!(pretty(&value), serde_json::to_string_pretty(&value).unwrap());
        }
    }
}
