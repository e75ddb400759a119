//! The JSON report (`--format json`): the [`Report`] as one pretty-printed object. Its fields are
//! documented in `docs/json.md` and versioned by `schema_version`.

use crate::report::Report;
use std::io::Write;

/// Writes the report as JSON followed by a newline.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
