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

use crate::analyze::{Observer, Options, Pipeline};
use crate::attribution::Attribution;
use crate::capture::{self, LiveOptions, LiveSource, LiveStats, ReadFailure};
use crate::cli::FilterArgs;
use crate::error::Error;
use crate::flow::FlowEvent;
use crate::live::{Console, LiveView, LoopCounts};
use crate::output::{Output, OutputArgs, ViewArgs};
use crate::report::{Amendment, CaptureStats, ConnectionRecord, SourceInfo, Summary};
use crate::signals::StopSignals;
use crate::sockets::agreement::KernelSnapshot;
use clap::Args;
use std::cell::RefCell;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the status line is redrawn and pending event lines are flushed.
const TICK: Duration = Duration::from_millis(100);
/// How often the command is checked for having exited.
const CHILD_POLL: Duration = Duration::from_millis(20);
/// Longest wait for a killed command to be reaped.
const KILL_WAIT: Duration = Duration::from_millis(200);
/// How often libpcap's drop counters are read for the status line.
const STATS_POLL: Duration = Duration::from_secs(1);

/// `connscope capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on: the loopback by default (`lo` on Linux, `lo0` on macOS); `any` for all.
    #[arg(short = 'i', long, value_name = "IFACE")]
    pub interface: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Kernel capture buffer in MiB; raise it if the report says packets were dropped.
    #[arg(short = 'B', long = "buffer-size", value_name = "MiB", default_value_t = capture::DEFAULT_BUFFER_MIB,
          value_parser = clap::value_parser!(u32).range(1..2048))]
    pub buffer_mib: u32,
    /// Bytes kept of each packet.
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = capture::DEFAULT_SNAPLEN,
          value_parser = clap::value_parser!(i32).range(68..=262_144))]
    pub snaplen: i32,
    /// Stop after this long: `30s`, `500ms`, `2m`, or plain seconds.
    #[arg(short = 'd', long, value_name = "TIME", value_parser = capture::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// After the command exits, keep capturing this long to see the connections close.
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = capture::parse_duration)]
    pub linger: Duration,
    /// Also save every captured packet to FILE (pcap; tcpdump, tshark and `connscope analyze` read it).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<String>,
    /// No live view on standard error: only the final report.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Command to run while capturing (after `--`); the capture ends when it exits, plus --linger.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The command run around the capture.
struct Subject {
    child: Child,
    line: String,
    status: Option<std::process::ExitStatus>,
}

impl Subject {
    /// Starts `argv`; its standard output goes to our standard error, so standard output carries
    /// the report alone.
    fn spawn(argv: &[String]) -> Result<Subject, Error> {
        let line = argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" ");
        let stdout = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| Error::Capture(format!("cannot run `{line}`: {e}")))?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::from(stdout))
            .spawn()
            .map_err(|e| Error::Capture(format!("cannot run `{line}`: {e}")))?;
        Ok(Subject { child, line, status: None })
    }

    /// True once the command has exited (and been reaped).
    fn poll(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status.is_some()
    }

    /// Sends `signal` to the command, by its PID, if it has not exited yet. Its PID cannot have
    /// been reused: an exited child stays unreaped until [`Subject::poll`] sees it.
    fn signal(&mut self, signal: libc::c_int) {
        if !self.poll() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) on our own unreaped child's PID; no memory is involved.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }

    /// Kills the command (SIGKILL, by its PID) and reaps it, waiting at most [`KILL_WAIT`] so its
    /// end is in the report.
    fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        while !self.poll() && Instant::now() < deadline {
            std::thread::sleep(CHILD_POLL / 4);
        }
    }
}

/// `word` as a shell would need it typed: single-quoted when it holds spaces or shell characters.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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

/// `ended_by` when the interface went away during the capture (see [`ReadFailure::InterfaceGone`]).
const INTERFACE_GONE: &str = "interface_gone";

/// Runs `capture`.
pub fn run(args: CaptureArgs) -> Result<ExitCode, Error> {
    let interface = args.interface.clone().unwrap_or_else(|| capture::default_interface().to_string());
    let filter = super::effective_filter(args.filter.port, args.filter.bpf.as_deref());
    // Checked before anything starts: a bad --assert is a usage error.
    let mut output = Output::new(&args.output, &ViewArgs::default(), true)?;
    let max_connections = args.filter.max_connections()?;
    output.hold_at_most(max_connections);
    let signals = StopSignals::install().map_err(|e| Error::Capture(format!("cannot handle Ctrl-C: {e}")))?;

    let mut source = LiveSource::open(&LiveOptions {
        interface: interface.clone(),
        filter: filter.clone(),
        snaplen: args.snaplen,
        buffer_mib: args.buffer_mib,
        save_to: args.write.clone(),
    })?;
    let link = source.link();
    let started = Instant::now();
    let start_ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    // The device is capturing with its filter installed: the command's first SYN will be seen.
    // A signal that came while the device was opened means the command is not wanted any more.
    let mut subject = if args.command.is_empty() || signals.count() > 0 { None } else { Some(Subject::spawn(&args.command)?) };

    let console = Console::new(args.quiet, std::io::stderr().is_terminal(), start_ts);
    let attribution = Rc::new(RefCell::new(Attribution::start()));
    let mut observer = CaptureObserver { attribution: Rc::clone(&attribution), view: LiveView::new(console.clone()), output };
    let options = Options { port: args.filter.port, max_connections, ..Default::default() };
    let mut pipeline = Pipeline::new(options, &mut observer);

    let mut delivered = 0u64;
    let mut stats = LiveStats::default();
    let mut signals_seen = 0;
    let mut save_failure_shown = false;
    let mut linger_until: Option<(Instant, &'static str)> = None;
    let mut warning = None;
    let (mut next_tick, mut next_child_poll, mut next_stats) = (started, started, started + STATS_POLL);
    let ended_by: &'static str = loop {
        let now = Instant::now();
        let signalled = signals.count();
        if signalled > signals_seen {
            signals_seen = signalled;
            let reason = signals.first().unwrap_or("interrupted");
            if signalled >= 2 {
                // A second signal: end at once, the command with it.
                if let Some(s) = &mut subject {
                    s.kill();
                }
                break reason;
            }
            // The first: ask the command (and only it, by its PID) to stop, and linger to see its
            // connections close; without a running command there is nothing left to wait for.
            let Some(s) = subject.as_mut().filter(|s| s.status.is_none()) else { break reason };
            s.signal(libc::SIGTERM);
            linger_until = Some((now + args.linger, reason));
        }
        if args.duration.is_some_and(|d| now - started >= d) {
            break "duration";
        }
        if args.count.is_some_and(|c| delivered >= c) {
            break "count";
        }
        if now >= next_child_poll {
            next_child_poll = now + CHILD_POLL;
            if let Some(s) = &mut subject {
                if linger_until.is_none() && s.poll() {
                    linger_until = Some((now + args.linger, "command_exited"));
                }
            }
        }
        if let Some((until, reason)) = linger_until {
            if now >= until {
                break reason;
            }
        }
        if now >= next_tick {
            next_tick = now + TICK;
            if now >= next_stats {
                next_stats = now + STATS_POLL;
                if let Ok(s) = source.stats() {
                    stats = s;
                }
            }
            let drops = stats.dropped_by_kernel + stats.dropped_by_interface;
            let counts =
                LoopCounts { open: pipeline.open_connections(), packets: delivered, drops, elapsed: (now - started).as_secs_f64() };
            console.borrow_mut().tick(counts);
        }
        let limit = args.count.map(|c| usize::try_from(c - delivered).unwrap_or(usize::MAX));
        let read = source.read(limit, &mut |raw| {
            console.borrow_mut().set_time(raw.ts);
            pipeline.packet(link, raw);
        });
        if !save_failure_shown {
            if let Some(failure) = source.save_failure() {
                save_failure_shown = true;
                console.borrow_mut().warning(&format!("{failure}; capturing goes on"));
            }
        }
        match read {
            Ok(n) => delivered += n as u64,
            Err(ReadFailure::InterfaceGone(message)) => {
                warning = Some(format!("interface {interface} went away ({message}): the capture ended there"));
                break INTERFACE_GONE;
            }
            Err(ReadFailure::Failed(message)) => {
                warning = Some(format!("capture stopped: {message}"));
                break "capture_error";
            }
        }
    };
    // The counters as they are now; a device that went away keeps the last ones read.
    if let Ok(s) = source.stats() {
        stats = s;
    }
    let (saved_packets, save_error) = (source.saved(), source.save_failure().map(str::to_string));
    drop(source);

    // The kernel's view at the moment the report is made (after the linger): one dump of its
    // socket tables, for the last attribution attempt and for the comparison of end states.
    let snapshot = match KernelSnapshot::read(local_addresses()) {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            eprintln!("connscope: socket states not compared with the kernel: {e}");
            None
        }
    };
    attribution.borrow_mut().capture_stopped(snapshot);
    pipeline.end_open_connections();
    let kernel_agreement = attribution.borrow().compare(pipeline.records_mut());

    let command = subject.as_mut().map(|s| {
        if s.poll() {
            s.line.clone()
        } else {
            eprintln!("connscope: the command is still running (pid {}): {}", s.child.id(), s.line);
            format!("{} (still running when the capture ended)", s.line)
        }
    });
    let capture_stats = CaptureStats {
        // libpcap's own count is doubled on Linux loopback (see LiveSource::stats): report the
        // packets this capture was delivered, which is also what the -w file holds.
        received: delivered,
        dropped_by_kernel: stats.dropped_by_kernel,
        dropped_by_interface: stats.dropped_by_interface,
        duration: started.elapsed().as_secs_f64(),
        ended_by: ended_by.to_string(),
        command,
        command_exit_status: subject.as_ref().and_then(|s| s.status).and_then(|s| s.code()),
        saved_to: args.write.clone(),
        saved_packets,
        save_error,
        kernel_agreement,
    };
    let source_info = SourceInfo { kind: "live", path: interface, filter, link_type: link.name().to_string(), start_ts: None, warning };
    let report = pipeline.finish(source_info, Some(capture_stats));
    console.borrow_mut().finish();
    if let Some(w) = &report.source.warning {
        eprintln!("connscope: warning: {w}");
    }
    observer.output.finish(&report)
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn command_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("-s"), "-s");
        assert_eq!(shell_word("http://127.0.0.1:8087/a"), "http://127.0.0.1:8087/a");
        assert_eq!(shell_word("/a?b&c"), "'/a?b&c'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
