//! The `connscope` binary: parses the command line, runs a subcommand, maps errors to exit status 2.

mod cli;

use clap::Parser;
use cli::{commands, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    fix_mmap_threshold();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match cli::usage_error_line(&e) {
            Some(line) => {
                eprintln!("{line}");
                return ExitCode::from(2);
            }
            // --help, --version: clap prints them (standard output, exit status 0).
            None => e.exit(),
        },
    };
    let result = match cli.command {
        Command::Analyze(args) => commands::analyze::run(args),
        Command::Completions(args) => commands::completions::run(&args),
        Command::Man(args) => commands::man::run(&args),
        Command::Sockets(args) => commands::sockets::run(args),
        Command::Capture(args) => commands::capture::run(args),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): nothing more to say.
        Err(connscope::error::Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connscope: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// glibc's malloc raises the size from which it maps a block of its own each time it frees such a
/// block (up to 32 MiB); from then on the flow table's tables, which grow by doubling, come from
/// the heap, and what they leave when they grow, or when an analysis on several threads is done
/// again on one, stays resident. A fixed threshold of 1 MiB keeps blocks that large mapped, and
/// handed back to the kernel when freed (docs/memory.md).
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
