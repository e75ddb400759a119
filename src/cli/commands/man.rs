//! `connscope man`: the man page (roff) generated from the clap definitions: the main page, then
//! each subcommand's synopsis and options.

use crate::cli::Cli;
use clap::CommandFactory;
use connscope::error::Error;
use std::io::Write;
use std::process::ExitCode;

/// Writes connscope(1) to standard output.
pub fn run() -> Result<ExitCode, Error> {
    let command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_arguments().any(|a| !a.is_hide_set())) {
        let page = clap_mangen::Man::new(sub.clone().bin_name(format!("connscope {}", sub.get_name())));
        page.render_synopsis_section(&mut out)?;
        page.render_options_section(&mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
