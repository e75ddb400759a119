//! `connscope completions SHELL`: a completion script generated from the clap definitions.

use crate::cli::Cli;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use connscope::error::Error;
use std::process::ExitCode;

/// `connscope completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script to standard output.
pub fn run(args: &CompletionsArgs) -> Result<ExitCode, Error> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "connscope", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
