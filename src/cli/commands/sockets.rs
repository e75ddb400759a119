//! `connscope sockets --port N`: the kernel's TCP sockets on a port, by state, side and owning
//! process; `--watch` redraws them every interval with the change since the last tick.

use clap::{Args, ValueEnum};
use connscope::assert;
use connscope::error::Error;
use connscope::sockets::check;
use connscope::sockets::process::ProcessIndex;
use connscope::sockets::render;
use connscope::sockets::snapshot::Snapshot;
use connscope::sockets::table;
use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Output format of `sockets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SocketsFormat {
    /// Tables for people (with --watch: a screen redrawn in place).
    Table,
    /// One JSON object (with --watch: one per tick, one per line; schema in docs/sockets.md).
    Json,
}

/// `connscope sockets`.
#[derive(Debug, Args)]
pub struct SocketsArgs {
    /// The port: sockets whose own port is N are the server side, those whose peer's port is N the client side.
    #[arg(short = 'p', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Redraw every INTERVAL seconds (default 1) with each state's change since the last tick, until Ctrl-C.
    #[arg(short = 'w', long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1")]
    pub watch: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SocketsFormat::Table)]
    pub format: SocketsFormat,
    /// Check the snapshot, e.g. 'CLOSE_WAIT == 0', 'client.TIME_WAIT < 100' (repeatable; exit status 1 if one fails; not with --watch).
    #[arg(long = "assert", value_name = "CHECK")]
    pub asserts: Vec<String>,
}

/// Runs `sockets`.
pub fn run(args: SocketsArgs) -> Result<ExitCode, Error> {
    match args.watch {
        None => once(&args),
        Some(_) if !args.asserts.is_empty() => Err(Error::Usage("--assert checks one snapshot: use it without --watch".into())),
        Some(interval) if !(0.1..=86400.0).contains(&interval) => {
            Err(Error::Usage(format!("--watch {interval}: the interval is in seconds, from 0.1 to 86400")))
        }
        Some(interval) => watch(&args, interval),
    }
}

/// Reads the tables and counts the port's sockets.
fn take(port: u16, index: &mut ProcessIndex) -> Result<Snapshot, Error> {
    let sockets = table::read_all()?;
    let inodes: HashSet<u64> = sockets.iter().filter(|s| s.local.port() == port || s.remote.port() == port).map(|s| s.inode).collect();
    let owners = index.owners_of(&inodes);
    let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    Ok(Snapshot::build(port, time, &sockets, &owners))
}

fn once(args: &SocketsArgs) -> Result<ExitCode, Error> {
    let keys = check::keys();
    let assertions = args.asserts.iter().map(|a| assert::parse_against(a, &keys)).collect::<Result<Vec<_>, _>>()?;
    let snap = take(args.port, &mut ProcessIndex::new())?;
    let fields = check::fields(&snap);
    let outcomes = assert::evaluate_fields(&assertions, &fields);
    let mut out = std::io::stdout().lock();
    match args.format {
        SocketsFormat::Table => out.write_all(render::table(&snap).as_bytes())?,
        SocketsFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&snap).map_err(|e| Error::Usage(e.to_string()))?)?,
    }
    out.flush()?;
    let all_held = assert::report_fields(&outcomes, &fields, &mut std::io::stderr().lock())?;
    Ok(if all_held { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn watch(args: &SocketsArgs, interval: f64) -> Result<ExitCode, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).map_err(|e| Error::Usage(format!("cannot handle Ctrl-C: {e}")))?;
    let table = args.format == SocketsFormat::Table;
    let mut out = std::io::stdout().lock();
    if table {
        // Hide the cursor and start from a clear screen; the frames then overwrite in place.
        out.write_all(b"\x1b[?25l\x1b[H\x1b[2J")?;
    }
    let result = watch_loop(args.port, interval, table, &stop, &mut out);
    if table {
        // Show the cursor again, whatever ended the loop.
        out.write_all(b"\x1b[?25h")?;
        out.flush()?;
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn watch_loop(port: u16, interval: f64, table: bool, stop: &AtomicBool, out: &mut dyn Write) -> Result<(), Error> {
    let mut index = ProcessIndex::new();
    let mut previous: Option<Snapshot> = None;
    let period = Duration::from_secs_f64(interval);
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let mut snap = take(port, &mut index)?;
        if let Some(p) = &previous {
            snap.compare_with(p);
        }
        let text = if table {
            render::frame(&snap, interval, &clock(snap.time), terminal_size())
        } else {
            serde_json::to_string(&snap).map_err(|e| Error::Usage(e.to_string()))? + "\n"
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        previous = Some(snap);
        // Sleep in short steps so Ctrl-C ends the watch at once.
        while !stop.load(Ordering::SeqCst) && started.elapsed() < period {
            std::thread::sleep(period.saturating_sub(started.elapsed()).min(Duration::from_millis(50)));
        }
    }
    Ok(())
}

/// The terminal's (columns, rows), when standard output is one.
#[cfg(target_os = "linux")]
fn terminal_size() -> Option<(usize, usize)> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass; fd 1 is only read.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0 && size.ws_row > 0).then(|| (usize::from(size.ws_col), usize::from(size.ws_row)))
}

/// Elsewhere frames are not cut (the socket tables are Linux-only anyway).
#[cfg(not(target_os = "linux"))]
fn terminal_size() -> Option<(usize, usize)> {
    None
}

/// `HH:MM:SS` UTC of a Unix time.
fn clock(time: f64) -> String {
    let secs = time as u64 % 86400;
    format!("{:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}
