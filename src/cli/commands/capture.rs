//! `connscope capture`: live capture, optionally around a command, ending in the same report as
//! `analyze` (the same [`Pipeline`], the same JSON) plus the capture's statistics.
//!
//! The capture ends on the first of: Ctrl-C (SIGINT), SIGTERM or SIGHUP, `--duration`, `--count`
//! packets, the command given after `--` exiting (then `--linger` more, to see the closing FINs),
//! or the interface going away. The device is opened and filtered before the command starts, so
//! its first SYN is captured. On the first signal the command (and only it, by its PID) is asked to
//! stop with SIGTERM and the capture lingers; a second signal kills it and ends at once. The `-w`
//! file is written out after every batch of packets and always ends after a whole packet; a failed
//! write (disk full) stops the saving, not the capture. `docs/capture.md` tells it all.
//!
//! Connections are attributed to their local processes as they open ([`Attribution`]), NDJSON and
//! CSV rows are written as connections end, and when the capture stops the kernel's socket tables
//! are read once and set beside the states the packets imply (`sockets::agreement`).

use crate::cli::output::{Output, OutputArgs, ViewArgs};
use crate::cli::FilterArgs;
use clap::Args;
use connscope::error::Error;
use connscope::live::attribution::Attribution;
use connscope::live::device::{Device, LiveOptions};
use connscope::live::replay::Replay;
use connscope::live::session::{self, StopConditions};
use connscope::live::signals::StopSignals;
use connscope::live::view::{Console, LiveView};
use connscope::live::{self, FrameSource};
use connscope::pipeline::{Observer, Options, Pipeline};
use connscope::report::{Amendment, CaptureStats, ConnectionRecord, SourceInfo, SourceKind, Summary};
use connscope::sockets::agreement::KernelSnapshot;
use connscope::tcp::FlowEvent;
use std::cell::RefCell;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `connscope capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on: the loopback by default (`lo` on Linux, `lo0` on macOS); `any` for all.
    #[arg(short = 'i', long, value_name = "IFACE")]
    pub interface: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Kernel capture buffer in MiB; raise it if the report says packets were dropped.
    #[arg(short = 'B', long = "buffer-size", value_name = "MiB", default_value_t = live::DEFAULT_BUFFER_MIB,
          value_parser = clap::value_parser!(u32).range(1..2048))]
    pub buffer_mib: u32,
    /// Bytes kept of each packet.
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = live::DEFAULT_SNAPLEN,
          value_parser = clap::value_parser!(i32).range(68..=262_144))]
    pub snaplen: i32,
    /// Stop after this long: `30s`, `500ms`, `2m`, or plain seconds.
    #[arg(short = 'd', long, value_name = "TIME", value_parser = live::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// After the command exits, keep capturing this long to see the connections close.
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = live::parse_duration)]
    pub linger: Duration,
    /// Also save every captured packet to FILE (pcap; tcpdump, tshark and `connscope analyze` read it).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<String>,
    /// No live view on standard error: only the final report.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Replay a saved capture at its own pace instead of opening a device (tests and demos, no root).
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "interface")]
    pub replay: Option<String>,
    /// Command to run while capturing (after `--`); the capture ends when it exits, plus --linger.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The capture's pipeline observer: the attribution completes each record first, then the live
/// view and the streamed output see it.
struct CaptureObserver {
    attribution: Rc<RefCell<Attribution>>,
    view: LiveView,
    output: Output,
}

impl Observer for CaptureObserver {
    fn wants_segments(&self) -> bool {
        self.output.wants_segments()
    }

    fn event(&mut self, id: u64, event: &FlowEvent) {
        if let FlowEvent::Opened { client, server, .. } = event {
            self.attribution.borrow_mut().opened(id, *client, *server);
        }
        self.view.event(id, event);
        self.output.event(id, event);
    }

    fn enrich(&mut self, record: &mut ConnectionRecord) {
        self.attribution.borrow_mut().enrich(record);
    }

    fn connection_ended(&mut self, record: &ConnectionRecord, summary: &Summary) {
        self.view.connection_ended(record, summary);
        self.output.connection_ended(record, summary);
    }

    fn connection_amended(&mut self, amendment: &Amendment, summary: &Summary) {
        self.output.connection_amended(amendment, summary);
    }
}

/// This host's interface addresses, for telling local sockets from remote ones.
fn local_addresses() -> Vec<IpAddr> {
    pcap::Device::list().map(|devices| devices.into_iter().flat_map(|d| d.addresses).map(|a| a.addr).collect()).unwrap_or_default()
}

/// Runs `capture`.
pub fn run(args: CaptureArgs) -> Result<ExitCode, Error> {
    let filter = super::effective_filter(args.filter.port, args.filter.bpf.as_deref());
    // Checked before anything starts: a bad --assert is a usage error.
    let mut output = Output::new(&args.output, &args.view, true, true)?;
    let max_connections = args.filter.max_connections()?;
    output.hold_at_most(max_connections);
    let signals = StopSignals::install().map_err(|e| Error::Capture(format!("cannot handle Ctrl-C: {e}")))?;
    let (mut source, interface): (Box<dyn FrameSource>, String) = match &args.replay {
        Some(path) => (Box::new(Replay::open(path, filter.as_deref(), args.write.as_deref())?), path.clone()),
        None => {
            let interface = args.interface.clone().unwrap_or_else(|| live::default_interface().to_string());
            let device = Device::open(&LiveOptions {
                interface: interface.clone(),
                filter: filter.clone(),
                snaplen: args.snaplen,
                buffer_mib: args.buffer_mib,
                save_to: args.write.clone(),
            })?;
            (Box::new(device), interface)
        }
    };
    let start_ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let console = Console::new(args.quiet, std::io::stderr().is_terminal(), start_ts);
    let attribution = Rc::new(RefCell::new(Attribution::start()));
    let mut observer = CaptureObserver { attribution: Rc::clone(&attribution), view: LiveView::new(console.clone()), output };
    let key_log = crate::cli::LiveKeyLog::open(args.filter.keylog.as_deref(), !args.command.is_empty())?;
    let tls_keys = key_log.as_ref().map(|k| k.keys());
    let options = Options { port: args.filter.port, max_connections, listed_connections: args.output.listed_connections(), tls_keys };
    let mut pipeline = Pipeline::new(options, &mut observer);
    let stop = StopConditions {
        duration: args.duration,
        count: args.count,
        linger: args.linger,
        command: args.command.clone(),
        key_log: key_log.as_ref().map(|k| k.path.clone()),
    };
    let mut ended = session::run(source.as_mut(), &interface, &stop, &signals, &mut pipeline, &console)?;
    let (saved_packets, save_error) = (source.saved(), source.save_failure().map(str::to_string));
    let link = source.link();
    drop(source);

    // The kernel's view at the moment the report is made (after the linger): one dump of its
    // socket tables, for the last attribution attempt and for the comparison of end states. A
    // replayed capture's sockets are not this kernel's: nothing to compare.
    let snapshot = match args.replay {
        Some(_) => None,
        None => match KernelSnapshot::read(local_addresses()) {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                eprintln!("connscope: socket states not compared with the kernel: {e}");
                None
            }
        },
    };
    let compare = snapshot.is_some();
    attribution.borrow_mut().capture_stopped(snapshot);
    pipeline.end_open_connections();
    let kernel_agreement = if compare { attribution.borrow().compare(pipeline.records_mut()) } else { None };

    let command = ended.command.as_mut().map(|s| {
        if s.poll() {
            s.line.clone()
        } else {
            eprintln!("connscope: the command is still running (pid {}): {}", s.pid(), s.line);
            format!("{} (still running when the capture ended)", s.line)
        }
    });
    let capture_stats = CaptureStats {
        // libpcap's own count is doubled on Linux loopback (see Device::stats): report the
        // packets this capture was delivered, which is also what the -w file holds.
        received: ended.delivered,
        dropped_by_kernel: ended.stats.dropped_by_kernel,
        dropped_by_interface: ended.stats.dropped_by_interface,
        duration: ended.elapsed.as_secs_f64(),
        ended_by: ended.by,
        command,
        command_exit_status: ended.command.as_ref().and_then(|s| s.status).and_then(|s| s.code()),
        saved_to: args.write.clone(),
        saved_packets,
        save_error,
        kernel_agreement,
    };
    let kind = if args.replay.is_some() { SourceKind::Replay } else { SourceKind::Live };
    let source_info =
        SourceInfo { kind, path: interface, filter, link_type: link.name().to_string(), start_ts: None, warning: ended.warning.take() };
    let report = pipeline.finish(source_info, Some(capture_stats));
    console.borrow_mut().finish();
    if let Some(w) = &report.source.warning {
        eprintln!("connscope: warning: {w}");
    }
    observer.output.finish(&report)
}
