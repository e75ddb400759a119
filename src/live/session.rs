//! The capture loop: reads a [`FrameSource`] into the pipeline until a stop condition holds, with
//! the command run around the capture, the status line and the stop signals.
//!
//! The capture ends on the first of: Ctrl-C (SIGINT), SIGTERM or SIGHUP, `--duration`, `--count`
//! frames, the command given after `--` exiting (then `--linger` more, to see the closing FINs),
//! or the source failing (the interface going away). The command is started only once the source
//! is open (its filter installed), so its first SYN is captured. On the first signal the command
//! (and only it, by its PID) is asked to stop with SIGTERM and the capture lingers; a second signal
//! kills it and ends at once.

use super::signals::StopSignals;
use super::view::{Console, LoopCounts};
use super::{FrameSource, LiveStats, ReadFailure};
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::report::EndedBy;
use std::cell::RefCell;
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the status line is redrawn and pending event lines are flushed.
const TICK: Duration = Duration::from_millis(100);
/// How often the command is checked for having exited.
const CHILD_POLL: Duration = Duration::from_millis(20);
/// Longest wait for a killed command to be reaped.
const KILL_WAIT: Duration = Duration::from_millis(200);
/// How often the source's drop counters are read for the status line.
const STATS_POLL: Duration = Duration::from_secs(1);

/// When the capture stops, and what runs around it.
#[derive(Clone, Debug, Default)]
pub struct StopConditions {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// After the command exits (or the first signal), keep capturing this long.
    pub linger: Duration,
    /// The command to run while capturing; empty for none.
    pub command: Vec<String>,
    /// The key log the command writes its TLS secrets to (`SSLKEYLOGFILE` in its environment).
    pub key_log: Option<std::path::PathBuf>,
}

/// How the capture loop ended.
#[derive(Debug)]
pub struct Ended {
    /// Why (the report's `capture.ended_by`, see `docs/capture.md`).
    pub by: EndedBy,
    /// Frames handed to the pipeline.
    pub delivered: u64,
    /// The source's last counters.
    pub stats: LiveStats,
    /// Why reading stopped early, when it did.
    pub warning: Option<String>,
    /// The command run around the capture, if any.
    pub command: Option<Subject>,
    /// How long the capture ran.
    pub elapsed: Duration,
}

/// The command run around the capture.
#[derive(Debug)]
pub struct Subject {
    child: Child,
    /// The command line, quoted as a shell would need it.
    pub line: String,
    /// Its exit status, once it exited.
    pub status: Option<ExitStatus>,
}

impl Subject {
    /// Starts `argv`; its standard output goes to our standard error, so standard output carries
    /// the report alone.
    fn spawn(argv: &[String], key_log: Option<&std::path::Path>) -> Result<Subject, Error> {
        let line = argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" ");
        let stdout = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| Error::Capture(format!("cannot run `{line}`: {e}")))?;
        let mut command = Command::new(&argv[0]);
        if let Some(path) = key_log {
            command.env("SSLKEYLOGFILE", path);
        }
        let child = command
            .args(&argv[1..])
            .stdout(Stdio::from(stdout))
            .spawn()
            .map_err(|e| Error::Capture(format!("cannot run `{line}`: {e}")))?;
        Ok(Subject { child, line, status: None })
    }

    /// True once the command has exited (and been reaped).
    pub fn poll(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status.is_some()
    }

    /// The command's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// Runs the capture loop: starts the command, then feeds `source` into `pipeline` until a stop
/// condition holds. `interface` names the source in warnings.
pub fn run(
    source: &mut dyn FrameSource,
    interface: &str,
    stop: &StopConditions,
    signals: &StopSignals,
    pipeline: &mut Pipeline<'_>,
    console: &Rc<RefCell<Console>>,
) -> Result<Ended, Error> {
    let link = source.link();
    let started = Instant::now();
    // The source is open with its filter installed: the command's first SYN will be seen. A signal
    // that came while it was opened means the command is not wanted any more.
    let mut subject =
        if stop.command.is_empty() || signals.count() > 0 { None } else { Some(Subject::spawn(&stop.command, stop.key_log.as_deref())?) };
    let mut delivered = 0u64;
    let mut stats = LiveStats::default();
    let mut signals_seen = 0;
    let mut save_failure_shown = false;
    let mut linger_until: Option<(Instant, EndedBy)> = None;
    let mut warning = None;
    let (mut next_tick, mut next_child_poll, mut next_stats) = (started, started, started + STATS_POLL);
    let by: EndedBy = loop {
        let now = Instant::now();
        let signalled = signals.count();
        if signalled > signals_seen {
            signals_seen = signalled;
            let reason = signals.first().unwrap_or(EndedBy::Interrupted);
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
            linger_until = Some((now + stop.linger, reason));
        }
        if stop.duration.is_some_and(|d| now - started >= d) {
            break EndedBy::Duration;
        }
        if stop.count.is_some_and(|c| delivered >= c) {
            break EndedBy::Count;
        }
        if now >= next_child_poll {
            next_child_poll = now + CHILD_POLL;
            if let Some(s) = &mut subject {
                if linger_until.is_none() && s.poll() {
                    linger_until = Some((now + stop.linger, EndedBy::CommandExited));
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
        let limit = stop.count.map(|c| usize::try_from(c - delivered).unwrap_or(usize::MAX));
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
                break EndedBy::InterfaceGone;
            }
            Err(ReadFailure::Failed(message)) => {
                warning = Some(format!("capture stopped: {message}"));
                break EndedBy::CaptureError;
            }
        }
    };
    // The counters as they are now; a device that went away keeps the last ones read.
    if let Ok(s) = source.stats() {
        stats = s;
    }
    Ok(Ended { by, delivered, stats, warning, command: subject, elapsed: started.elapsed() })
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
