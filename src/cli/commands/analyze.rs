//! `connscope analyze FILE...`: the report of saved captures.

use crate::cli::output::{Output, OutputArgs, ViewArgs};
use crate::cli::window::{parse_time_point, TimePoint, Window};
use crate::cli::FilterArgs;
use clap::Args;
use connscope::error::Error;
use connscope::pipeline::parallel;
use connscope::pipeline::progress::FileProgress;
use connscope::pipeline::{Finished, Observer, Options, Pipeline};
use connscope::report::{Report, SourceInfo, SourceKind};
use connscope::source::{Captures, ReadOutcome};
use std::process::ExitCode;

/// `connscope analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files, read one after the other as one capture; `-` reads standard input. pcap or
    /// pcapng, plain or compressed (gzip, zstd, xz).
    #[arg(required_unless_present = "read", value_name = "FILE")]
    pub files: Vec<String>,
    /// A capture file, as tcpdump and tshark take it (repeatable; read before the FILEs).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<String>,
    /// Accepted for tcpdump's habit and ignored: connscope never resolves addresses or ports to names.
    #[arg(short = 'n')]
    pub numeric: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Only the packets from this time on: seconds since the first packet (`2.5`), or a date and
    /// time as --time abs|utc writes it (`2026-11-22 00:47:08.479338`, `Z` for UTC). The report's
    /// times then count from the first packet in the window.
    #[arg(long, value_name = "TIME", value_parser = parse_time_point)]
    pub since: Option<TimePoint>,
    /// Only the packets up to this time (included), written as for --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time_point)]
    pub until: Option<TimePoint>,
    /// Threads that analyse the files (default: one per CPU, at most 4). The report is the same
    /// with any number; standard input, --ladder, --svg and a key log with TLS 1.2 secrets (session
    /// resumption reads them in capture order) are read on one thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

/// Runs `analyze`.
pub fn run(mut args: AnalyzeArgs) -> Result<ExitCode, Error> {
    args.files.splice(0..0, std::mem::take(&mut args.read));
    let max_connections = args.filter.max_connections()?;
    let tls_keys = args.filter.tls_keys(&args.files)?;
    // TLS 1.2 resumption reads secrets across connections, in capture order: one thread.
    let in_order = tls_keys.as_ref().is_some_and(|k| k.needs_capture_order());
    let options = Options { port: args.filter.port, max_connections, listed_connections: args.output.listed_connections(), tls_keys };
    // Standard input may be a capture still being written (`tcpdump -w - | connscope analyze -`):
    // its streamed rows go out one by one.
    let from_stdin = args.files.iter().any(|f| f == "-");
    let mut output = Output::new(&args.output, &args.view, from_stdin, false)?;
    output.hold_at_most(max_connections);
    let wants_events = output.wants_events();
    let mut progress = FileProgress::new(&args.files);
    let captures = Captures::open(&args.files);
    let bpf = args.filter.bpf.as_deref();
    let workers = args.threads.map_or_else(parallel::default_workers, usize::from);
    let mut window = Window::new(args.since, args.until)?;
    let mut already_notified = 0;
    // A time window is cut on one thread, in packet order.
    if workers > 1 && captures.all_mapped() && !wants_events && !window.is_set() && !in_order {
        match parallel::analyze(&captures, bpf, &options, workers, &mut output, &mut progress) {
            (Ok(finished), outcome) => {
                progress.finish();
                let report = build_report(&args, finished, outcome)?;
                return output.finish(&report);
            }
            // The capture reached --max-connections: one thread decides what goes.
            (Err(redo), _) => {
                already_notified = redo.notified;
                progress.finish();
                progress = FileProgress::new(&args.files);
            }
        }
    }
    let mut pipeline = Pipeline::new(options, &mut output);
    pipeline.already_notified(already_notified);
    let outcome = captures.read(bpf, &mut |link, raw| {
        progress.packet(raw.data.len());
        if window.admits(raw.ts) {
            pipeline.packet(link, raw);
        }
    });
    let finished = pipeline.end();
    progress.finish();
    let report = build_report(&args, finished, outcome)?;
    output.finish(&report)
}

/// The report of a finished analysis, after the notes and warnings on standard error.
fn build_report(args: &AnalyzeArgs, finished: Finished<'_>, outcome: Result<ReadOutcome, Error>) -> Result<Report, Error> {
    let outcome = outcome?;
    let mut link_types = outcome.link_types.clone();
    link_types.dedup();
    let source_info = SourceInfo {
        kind: SourceKind::File,
        path: args.files.join(", "),
        filter: super::effective_filter(args.filter.port, args.filter.bpf.as_deref()),
        link_type: link_types.join(","),
        start_ts: None,
        warning: outcome.warning.clone(),
    };
    let other_ports = finished.other_ports();
    let report = finished.report(source_info, None);
    if let (Some(port), 0, false) = (args.filter.port, report.packets.matched, other_ports.is_empty()) {
        let seen: Vec<String> = other_ports.iter().map(u16::to_string).collect();
        eprintln!("connscope: note: no TCP packet on port {port}; the capture has TCP traffic on port(s) {} (try --port with one of them, or leave --port out)", seen.join(", "));
    }
    if let Some(w) = &outcome.out_of_order {
        eprintln!("connscope: warning: {w}");
    }
    if let Some(w) = &outcome.warning {
        eprintln!("connscope: warning: {w}");
    }
    Ok(report)
}
