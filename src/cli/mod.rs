//! Command-line interface (clap derive). The binary is thin glue over the library.

pub mod commands;
pub mod output;
pub mod window;

use crate::cli::commands::analyze::AnalyzeArgs;
use crate::cli::commands::capture::CaptureArgs;
use crate::cli::commands::sockets::SocketsArgs;
use clap::{Args, CommandFactory, Parser, Subcommand};
use connscope::error::Error;
use connscope::protocol::keylog::TlsKeys;
use std::sync::Arc;

/// Are my HTTP connections being reused, and who is closing them?
///
/// connscope rebuilds every TCP connection in a capture (a pcap/pcapng file, or live traffic) and
/// counts handshakes, HTTP requests per connection, keep-alive probes and RSTs; it says which side
/// sent FIN first, which socket state each side is left in, and whether connections were reused.
///
/// Exit status: 0 success (and every --assert held), 1 an --assert failed, 2 usage or input error.
#[derive(Debug, Parser)]
#[command(name = "connscope", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse saved captures (pcap or pcapng from tcpdump, tshark, dumpcap).
    Analyze(AnalyzeArgs),
    /// Capture live traffic (loopback by default), optionally around a command given after `--`.
    Capture(CaptureArgs),
    /// The kernel's TCP sockets on a port (Linux): counts by state and side, owning processes; --watch redraws.
    Sockets(SocketsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions(crate::cli::commands::completions::CompletionsArgs),
    /// Print a man page (roff) to standard output: `connscope man | man -l -`, `connscope man analyze | man -l -`.
    Man(crate::cli::commands::man::ManArgs),
}

/// A usage error from clap as one line, like connscope's own errors, with where to look:
/// `connscope: error: unexpected argument '--bogus' found; see connscope analyze --help`.
/// `None` for what is not an error (`--help`, `--version`, and the help printed when no
/// subcommand is given), which clap prints as it is.
pub fn usage_error_line(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        return None;
    }
    let text = e.render().to_string();
    let (message, usage) = text.split_once("\nUsage: ").unwrap_or((&text, ""));
    // The message's paragraphs (the error, clap's tips), each on one line.
    let message = message
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty() && !p.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("; ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    // The subcommand's help: the one the usage line is for, else the one on the command line.
    let mut command: Vec<String> = usage.split_whitespace().take_while(|w| !w.starts_with(['[', '<', '-'])).map(str::to_string).collect();
    if command.len() < 2 {
        let sub = std::env::args().nth(1).filter(|a| Cli::command().find_subcommand(a).is_some());
        command = ["connscope".to_string()].into_iter().chain(sub).collect();
    }
    Some(format!("connscope: error: {message}; see {} --help", command.join(" ")))
}

/// What to look at in the packets (shared by analyze and capture).
#[derive(Debug, Args, Clone)]
pub struct FilterArgs {
    /// Only connections with this TCP port on either side (the server port).
    #[arg(short = 'p', long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// A BPF filter (tcpdump syntax) compiled by libpcap, for anything --port cannot say.
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub bpf: Option<String>,
    /// Most connections held open at once; beyond it the oldest half-open ones are evicted (and counted).
    #[arg(long, default_value_t = connscope::pipeline::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// TLS secrets in the NSS key log format (SSLKEYLOGFILE): the HTTPS connections they cover are
    /// decrypted and their HTTP requests counted. Secrets a pcapng file carries are read too.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<String>,
}

/// The key log of a live capture: `--keylog FILE`, else the command's `SSLKEYLOGFILE` (the
/// environment's, or a private temporary file made for it, removed at the end). It is read again
/// whenever a connection's secrets are missing, so keys the command writes while the capture
/// runs decrypt its connections.
pub struct LiveKeyLog {
    pub path: std::path::PathBuf,
    /// Made by connscope: removed when the capture ends.
    temporary: bool,
}

impl LiveKeyLog {
    /// The key log to follow; `None` without `--keylog` and without a command.
    pub fn open(keylog: Option<&str>, command: bool) -> Result<Option<LiveKeyLog>, Error> {
        if let Some(path) = keylog {
            return Ok(Some(LiveKeyLog { path: path.into(), temporary: false }));
        }
        if !command {
            return Ok(None);
        }
        if let Some(path) = std::env::var_os("SSLKEYLOGFILE").filter(|p| !p.is_empty()) {
            return Ok(Some(LiveKeyLog { path: path.into(), temporary: false }));
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("connscope-keys-{}-{nanos}.txt", std::process::id()));
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::Create { path: path.display().to_string(), reason: e.to_string() })?;
        Ok(Some(LiveKeyLog { path, temporary: true }))
    }

    /// Secrets read from the key log as it grows.
    pub fn keys(&self) -> Arc<TlsKeys> {
        let keys = TlsKeys::live(&self.path);
        keys.refresh();
        Arc::new(keys)
    }
}

impl Drop for LiveKeyLog {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl FilterArgs {
    /// The TLS secrets of `--keylog` and of the Decryption Secrets Blocks of `files` (pcapng);
    /// `None` when there are none. A key log line that does not parse is a warning.
    pub fn tls_keys(&self, files: &[String]) -> Result<Option<Arc<TlsKeys>>, Error> {
        let mut keys = TlsKeys::new();
        if let Some(path) = &self.keylog {
            let text = std::fs::read(path).map_err(|e| Error::Open { path: path.clone(), reason: e.to_string() })?;
            for warning in keys.add_key_log(&text) {
                eprintln!("connscope: warning: key log {path}, {warning} (line ignored)");
            }
        }
        for path in files.iter().filter(|f| *f != "-") {
            // A file that cannot be read is reported by the analysis itself.
            let Ok(file) = std::fs::File::open(path) else { continue };
            // SAFETY: the map is only read, and only while the file is open here.
            let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else { continue };
            for log in connscope::source::tls_key_logs(&map) {
                for warning in keys.add_key_log(&log) {
                    eprintln!("connscope: warning: TLS secrets in {path}, {warning} (line ignored)");
                }
            }
        }
        Ok((!keys.is_empty()).then(|| Arc::new(keys)))
    }

    /// `--max-connections`, checked: 0 would keep no connection open at all (a usage error).
    pub fn max_connections(&self) -> Result<usize, connscope::error::Error> {
        if self.max_connections == 0 {
            return Err(connscope::error::Error::Usage(
                "--max-connections 0 keeps no connection open: give at least 1 (default 200000)".to_string(),
            ));
        }
        Ok(self.max_connections)
    }
}
