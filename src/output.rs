//! The last stage every command shares: render the report in the chosen format.

use crate::error::Error;
use crate::render;
use crate::report::Report;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for people.
    Table,
    /// One JSON object (schema in docs/json.md).
    Json,
}

/// How to print the report (shared by analyze and capture).
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Prints the report to standard output and returns the exit status.
pub fn emit(report: &Report, args: &OutputArgs) -> Result<ExitCode, Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Table => render::table::write(report, &mut out)?,
        Format::Json => render::json::write(report, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
