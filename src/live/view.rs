//! The live view of `connscope capture`, on standard error: one line per event as it happens, and on
//! a terminal a status line redrawn in place below them.
//!
//! ```text
//! +0.412s #1 opened (SYN)
//! +0.413s #1 client GET /index.html
//! +0.415s #1 server 200
//! +0.415s #1 FIN from server
//! +0.416s #1 closed: 127.0.0.1:50412 (curl 4711) → 127.0.0.1:8087 (python3 4702), 1 request, FIN first server, client CLOSED, server TIME_WAIT
//! [3.2s] open 0 · handshakes 1 · requests 1 · packets 10 · drops 0
//! ```
//!
//! [`LiveView`] is the pipeline's [`Observer`]; the capture loop shares its [`Console`] to set the
//! time of the packet being processed and to redraw the status line.

use crate::pipeline::Observer;
use crate::protocol::ProtocolEvent;
use crate::report::{ConnectionRecord, EndReason, Summary};
use crate::sockets::ProcessInfo;
use crate::tcp::FlowEvent;
use std::cell::RefCell;
use std::io::{BufWriter, Stderr, Write};
use std::rc::Rc;

/// Longest request target shown on an event line.
const MAX_TARGET: usize = 80;

/// Counters the status line shows that the capture loop knows.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopCounts {
    /// Connections open now.
    pub open: usize,
    /// Packets delivered by the capture.
    pub packets: u64,
    /// Packets dropped (kernel and interface) so far.
    pub drops: u64,
    /// Seconds since the capture started.
    pub elapsed: f64,
}

/// Standard error as the live view writes it: buffered, flushed on each [`Console::tick`].
pub struct Console {
    out: BufWriter<Stderr>,
    events: bool,
    status: bool,
    status_shown: bool,
    start_ts: f64,
    now_ts: f64,
    handshakes: u64,
    requests: u64,
}

impl Console {
    /// A console printing event lines unless `quiet`, and a status line when `terminal` (and not quiet).
    /// Event times are relative to `start_ts` (epoch seconds).
    pub fn new(quiet: bool, terminal: bool, start_ts: f64) -> Rc<RefCell<Console>> {
        Rc::new(RefCell::new(Console {
            out: BufWriter::with_capacity(64 * 1024, std::io::stderr()),
            events: !quiet,
            status: !quiet && terminal,
            status_shown: false,
            start_ts,
            now_ts: start_ts,
            handshakes: 0,
            requests: 0,
        }))
    }

    /// Sets the timestamp of the packet about to be processed.
    pub fn set_time(&mut self, ts: f64) {
        self.now_ts = ts;
    }

    /// Writes one event line for connection `id`. Errors writing standard error are ignored: the
    /// live view must never stop the capture.
    fn line(&mut self, id: u64, text: std::fmt::Arguments<'_>) {
        if !self.events {
            return;
        }
        self.clear_status();
        let _ = writeln!(self.out, "+{:.3}s #{id} {text}", self.now_ts - self.start_ts);
        if self.status {
            // Show the event at once on a terminal; the status line is redrawn at the next tick.
            let _ = self.out.flush();
        }
    }

    fn clear_status(&mut self) {
        if self.status_shown {
            let _ = write!(self.out, "\r\x1b[K");
            self.status_shown = false;
        }
    }

    /// Redraws the status line (on a terminal) and flushes pending event lines.
    pub fn tick(&mut self, counts: LoopCounts) {
        if self.status {
            self.clear_status();
            let _ = write!(
                self.out,
                "[{:.1}s] open {} · handshakes {} · requests {} · packets {} · drops {}",
                counts.elapsed, counts.open, self.handshakes, self.requests, counts.packets, counts.drops
            );
            self.status_shown = true;
        }
        let _ = self.out.flush();
    }

    /// Prints `connscope: warning: TEXT` at once, even with `-q`: something the user must know
    /// while the capture runs.
    pub fn warning(&mut self, text: &str) {
        self.clear_status();
        let _ = writeln!(self.out, "connscope: warning: {text}");
        let _ = self.out.flush();
    }

    /// Removes the status line and flushes, before the report is printed.
    pub fn finish(&mut self) {
        self.clear_status();
        let _ = self.out.flush();
    }
}

/// The pipeline observer that prints events to the [`Console`].
pub struct LiveView {
    console: Rc<RefCell<Console>>,
}

impl LiveView {
    /// An observer writing to `console`.
    pub fn new(console: Rc<RefCell<Console>>) -> LiveView {
        LiveView { console }
    }
}

impl Observer for LiveView {
    fn event(&mut self, id: u64, event: &FlowEvent) {
        let mut c = self.console.borrow_mut();
        match event {
            FlowEvent::Opened { handshake: true, .. } => {
                c.handshakes += 1;
                c.line(id, format_args!("opened (SYN)"));
            }
            FlowEvent::Opened { handshake: false, .. } => c.line(id, format_args!("opened mid-stream (SYN not seen)")),
            FlowEvent::KeepAlive { side } => c.line(id, format_args!("keep-alive probe from {side}")),
            FlowEvent::Fin { side } => c.line(id, format_args!("FIN from {side}")),
            FlowEvent::Rst { side } => c.line(id, format_args!("RST from {side}")),
            FlowEvent::Protocol { side, event } => match event {
                ProtocolEvent::HttpRequest { method, target, .. } => {
                    c.requests += 1;
                    let cut: String = target.chars().take(MAX_TARGET).collect();
                    let more = if cut.len() < target.len() { "…" } else { "" };
                    c.line(id, format_args!("{side} {method} {cut}{more}"));
                }
                ProtocolEvent::HttpResponse { status } => c.line(id, format_args!("{side} {status}")),
                ProtocolEvent::TlsClientHello { sni } => {
                    c.line(id, format_args!("{side} TLS ClientHello{}", sni.as_ref().map(|s| format!(" for {s}")).unwrap_or_default()))
                }
                ProtocolEvent::H2Preface => c.line(id, format_args!("{side} HTTP/2 preface")),
            },
            FlowEvent::Segment(_) => {}
        }
    }

    fn connection_ended(&mut self, r: &ConnectionRecord, _summary: &Summary) {
        // Connections still open at the end are in the report; only real ends are events.
        if r.end == EndReason::OpenAtEnd {
            return;
        }
        let requests = match r.http_requests {
            Some(1) => "1 request".to_string(),
            Some(n) => format!("{n} requests"),
            None => "requests not visible (encrypted)".to_string(),
        };
        let how = match r.end {
            EndReason::Replaced => "replaced by a new connection",
            EndReason::Evicted => "evicted (--max-connections)",
            _ => "closed",
        };
        let owner = |p: &Option<ProcessInfo>| p.as_ref().map(|p| format!(" ({} {})", p.command, p.pid)).unwrap_or_default();
        self.console.borrow_mut().line(
            r.id,
            format_args!(
                "{how}: {}{} → {}{}, {requests}, FIN first {}, client {}, server {}",
                r.client,
                owner(&r.client_process),
                r.server,
                owner(&r.server_process),
                r.fin_first.name(),
                r.client_state,
                r.server_state
            ),
        );
    }
}
