//! The JSON report (`--format json`): the [`Report`] as one pretty-printed object (serde_json's
//! pretty printer, two spaces per level). Its fields are documented in `docs/json.md` and
//! versioned by `schema_version`.

use crate::report::Report;
use std::io::{self, Write};

/// Writes the report as JSON followed by a newline.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    // The serialiser makes a write per token: into a buffer of a type it knows they are inlined
    // copies, through `dyn Write` each would be a call.
    let mut buffered = io::BufWriter::with_capacity(1 << 16, out);
    serde_json::to_writer_pretty(&mut buffered, report)?;
    writeln!(buffered)?;
    buffered.flush()
}
