//! `connscope man [SUBCOMMAND]`: man pages (roff) generated from the clap definitions:
//! connscope(1), whose SUBCOMMANDS section refers to connscope-analyze(1) and the others, and one
//! page per subcommand with its synopsis, description and options.

use crate::cli::Cli;
use clap::{Args, CommandFactory};
use connscope::error::Error;
use std::io::Write;
use std::process::ExitCode;

/// `connscope man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (connscope-analyze(1), ...); without it, connscope(1).
    #[arg(value_name = "SUBCOMMAND", value_parser = ["analyze", "capture", "sockets", "completions", "man", "help"])]
    pub page: Option<String>,
}

/// Writes the page to standard output.
pub fn run(args: &ManArgs) -> Result<ExitCode, Error> {
    let mut command = Cli::command();
    // Built, the subcommands carry their page names (`connscope-analyze`) and command lines
    // (`connscope analyze`).
    command.build();
    let page = match &args.page {
        None => command,
        Some(name) => command.find_subcommand(name).cloned().ok_or_else(|| Error::Usage(format!("no man page for `{name}`")))?,
    };
    let source = format!("connscope {}", env!("CARGO_PKG_VERSION"));
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(page).source(source).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
