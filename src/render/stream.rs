//! Streamed formats, written one connection at a time as connections end.
//!
//! **NDJSON** (`--format ndjson`): one JSON object per line, flushed per line when packets come as
//! they are captured (live capture, standard input), in blocks when reading files (a write per line
//! cost a 180,000-connection capture half its time).
//!
//! - `{"type":"connection", ...}`: one per connection, in the order connections end, with every field
//!   of a connection record (`docs/json.md`, "Connection").
//!   `{"type":"connection","id":1,"client":"127.0.0.1:36284","server":"127.0.0.1:18471",...}`
//! - `{"type":"summary", ...}`: the last line, with every field of the JSON report except the
//!   `connections` list and `connections_omitted` (every connection was streamed above):
//!   `{"type":"summary","schema_version":1,"source":{...},"packets":{...},"summary":{...},"ports":[...],"verdict":{...}}`
//!
//! **CSV** (`--format csv`): a header line, then one row per connection in the order they end; the
//! columns are the fields of [`CsvRow`]. Empty cells are `null` values.
//!
//! Reading files, a row is never printed before it is final: the row of a connection that closed
//! with a side in TIME_WAIT is held until that TIME_WAIT can no longer change
//! ([`TIME_WAIT_SECONDS`] of capture time after its last segment, judged by the `last_ts` of the
//! rows that come after it), until an RST or a new SYN on its tuple ends it (the row is then
//! printed, amended), or until the end. At most `--max-connections` rows are held; beyond that the
//! oldest is printed as it stands. When rows are flushed one by one (live capture, standard input)
//! they are printed as connections end, and a row that is amended later is printed again, amended,
//! with the same `id`: the last row of an `id` is final.

use super::json::micros;
use crate::protocol::Protocol;
use crate::report::close_cause::CloseCause;
use crate::report::{
    verdict::Verdict, Amendment, CaptureStats, ConnectionRecord, EndReason, PacketCounts, PortSummary, Report, SourceInfo, Summary,
};
use crate::tcp::{FlowKey, TIME_WAIT_SECONDS};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::io::Write;

/// A record with a `type` tag in front, as NDJSON lines carry it.
#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

/// The last NDJSON line: the report without its connection list.
#[derive(Serialize)]
struct SummaryLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema_version: u32,
    source: &'a SourceInfo,
    packets: &'a PacketCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture: &'a Option<CaptureStats>,
    summary: &'a Summary,
    ports: &'a [PortSummary],
    verdict: &'a Verdict,
}

/// One CSV row: the flat fields of a connection record (lists and nested objects left out; per-side
/// counts split into two columns).
#[derive(Serialize)]
pub struct CsvRow<'a> {
    pub id: u64,
    #[serde(serialize_with = "crate::report::addr::serialize")]
    pub client: std::net::SocketAddr,
    #[serde(serialize_with = "crate::report::addr::serialize")]
    pub server: std::net::SocketAddr,
    pub server_port: u16,
    pub first_ts: f64,
    pub last_ts: f64,
    pub duration: f64,
    pub handshake: &'static str,
    pub protocol: Protocol,
    pub http_requests: Option<u32>,
    pub http_responses: Option<u32>,
    pub reused: bool,
    pub fin_first: &'static str,
    pub simultaneous_close: bool,
    pub rst_by: Option<&'static str>,
    pub close_cause: CloseCause,
    pub keepalive_probes_client: u32,
    pub keepalive_probes_server: u32,
    pub tls_client_hellos: Option<u32>,
    pub h2_streams: Option<u32>,
    pub packets: u64,
    pub bytes: u64,
    pub end: EndReason,
    pub client_state: &'static str,
    pub server_state: &'static str,
    pub client_pid: Option<u32>,
    pub client_command: Option<&'a str>,
    pub server_pid: Option<u32>,
    pub server_command: Option<&'a str>,
    pub kernel_client_state: Option<&'static str>,
    pub kernel_server_state: Option<&'static str>,
}

/// The CSV header, written even when no connection is (kept equal to [`CsvRow`] by a test).
pub const CSV_HEADER: [&str; 31] = [
    "id",
    "client",
    "server",
    "server_port",
    "first_ts",
    "last_ts",
    "duration",
    "handshake",
    "protocol",
    "http_requests",
    "http_responses",
    "reused",
    "fin_first",
    "simultaneous_close",
    "rst_by",
    "close_cause",
    "keepalive_probes_client",
    "keepalive_probes_server",
    "tls_client_hellos",
    "h2_streams",
    "packets",
    "bytes",
    "end",
    "client_state",
    "server_state",
    "client_pid",
    "client_command",
    "server_pid",
    "server_command",
    "kernel_client_state",
    "kernel_server_state",
];

impl<'a> From<&'a ConnectionRecord> for CsvRow<'a> {
    fn from(c: &'a ConnectionRecord) -> Self {
        CsvRow {
            id: c.id,
            client: c.client,
            server: c.server,
            server_port: c.server_port,
            first_ts: micros(c.first_ts),
            last_ts: micros(c.last_ts),
            duration: micros(c.duration),
            handshake: c.handshake.name(),
            protocol: c.protocol,
            http_requests: c.http_requests,
            http_responses: c.http_responses,
            reused: c.reused,
            fin_first: c.fin_first.name(),
            simultaneous_close: c.simultaneous_close,
            rst_by: c.rst_by.map(|s| s.name()),
            close_cause: c.close_cause,
            keepalive_probes_client: c.keepalive_probes.client,
            keepalive_probes_server: c.keepalive_probes.server,
            tls_client_hellos: c.tls.as_ref().map(|t| t.client_hellos),
            h2_streams: c.h2_streams,
            packets: c.packets,
            bytes: c.bytes,
            end: c.end,
            client_state: c.client_state.name(),
            server_state: c.server_state.name(),
            client_pid: c.client_process.as_ref().map(|p| p.pid),
            client_command: c.client_process.as_ref().map(|p| p.command.as_str()),
            server_pid: c.server_process.as_ref().map(|p| p.pid),
            server_command: c.server_process.as_ref().map(|p| p.command.as_str()),
            kernel_client_state: c.kernel_client_state.map(|s| s.name()),
            kernel_server_state: c.kernel_server_state.map(|s| s.name()),
        }
    }
}

enum Kind {
    Ndjson(std::io::BufWriter<std::io::Stdout>),
    Csv(Box<csv::Writer<std::io::Stdout>>),
}

/// Writes connection rows to standard output as they come, then the closing summary.
pub struct Stream {
    kind: Kind,
    /// Flush after every row (live capture), not only when the buffer fills; rows are then printed
    /// at once (and again when amended) instead of held.
    flush_each: bool,
    /// The first write error; later rows are dropped and [`Stream::finish`] returns it.
    error: Option<std::io::Error>,
    /// Rows that may still be amended (printed already when `flush_each`), by 4-tuple (one per
    /// tuple: only the last connection on a tuple can be amended)...
    held: HashMap<FlowKey, Box<ConnectionRecord>, ahash::RandomState>,
    /// ...and their tuples and numbers in the order they came (entries of rows printed since are
    /// skipped).
    held_order: VecDeque<(FlowKey, u64)>,
    /// Most rows held.
    hold_limit: usize,
    /// The latest `last_ts` of the rows so far: the capture's clock for the held rows.
    clock: f64,
    /// Only the row of this connection is written (`--conn`).
    only: Option<u64>,
}

impl Stream {
    /// NDJSON lines; each flushed at once when `flush_each`.
    pub fn ndjson(flush_each: bool) -> Stream {
        Stream::new(Kind::Ndjson(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout())), flush_each, None)
    }

    /// CSV rows after a header; each flushed at once when `flush_each`.
    pub fn csv(flush_each: bool) -> Stream {
        let mut writer = csv::WriterBuilder::new().has_headers(false).buffer_capacity(1 << 16).from_writer(std::io::stdout());
        let error = writer.write_record(CSV_HEADER).err().map(std::io::Error::from);
        Stream::new(Kind::Csv(Box::new(writer)), flush_each, error)
    }

    fn new(kind: Kind, flush_each: bool, error: Option<std::io::Error>) -> Stream {
        let hold_limit = crate::pipeline::DEFAULT_MAX_CONNECTIONS;
        Stream { kind, flush_each, error, held: HashMap::default(), held_order: VecDeque::new(), hold_limit, clock: f64::MIN, only: None }
    }

    /// Holds at most `rows` rows that may still be amended (`--max-connections`).
    pub fn hold_at_most(&mut self, rows: usize) {
        self.hold_limit = rows.max(1);
    }

    /// Writes only the row of connection `id` (`--conn`); the summary line still covers every one.
    pub fn only(&mut self, id: u64) {
        self.only = Some(id);
    }

    /// Takes one connection: printed now, or held while its TIME_WAIT may still change.
    pub fn connection(&mut self, record: &ConnectionRecord) {
        self.clock = self.clock.max(record.last_ts);
        self.release(|held, clock| held.last_ts + TIME_WAIT_SECONDS < clock);
        let key = record.key();
        if let Some(before) = self.held.remove(&key) {
            // A later connection on the tuple: the one before can no longer change.
            self.settle(&before);
        }
        if !record.in_time_wait() || self.flush_each {
            self.write(record);
        }
        if !record.in_time_wait() {
            return;
        }
        self.held.insert(key, Box::new(record.clone()));
        self.held_order.push_back((key, record.id));
        if self.held.len() > self.hold_limit {
            let mut first = true;
            self.release(|_, _| std::mem::take(&mut first));
        }
    }

    /// Applies an amendment to its held row, and prints the row once it is final.
    pub fn amend(&mut self, amendment: &Amendment) {
        let Some(mut record) = self.held.remove(&amendment.key) else { return };
        amendment.apply(&mut record);
        if self.flush_each || !record.in_time_wait() {
            self.write(&record);
        }
        if record.in_time_wait() {
            self.held.insert(amendment.key, record);
        }
    }

    /// A held row can no longer change: printed now, unless it was printed when it came.
    fn settle(&mut self, record: &ConnectionRecord) {
        if !self.flush_each {
            self.write(record);
        }
    }

    /// Prints the held rows from the oldest on while `due` says so.
    fn release(&mut self, mut due: impl FnMut(&ConnectionRecord, f64) -> bool) {
        while let Some(&(key, id)) = self.held_order.front() {
            match self.held.get(&key) {
                Some(record) if record.id != id => {}
                None => {}
                Some(record) if due(record, self.clock) => {
                    if let Some(record) = self.held.remove(&key) {
                        self.settle(&record);
                    }
                }
                Some(_) => break,
            }
            self.held_order.pop_front();
        }
    }

    /// Writes one row (and flushes it when the stream flushes each row).
    fn write(&mut self, record: &ConnectionRecord) {
        if self.error.is_some() || self.only.is_some_and(|id| id != record.id) {
            return;
        }
        let flush_each = self.flush_each;
        let result = match &mut self.kind {
            Kind::Ndjson(out) => super::json::write_line(&mut *out, &Tagged { kind: "connection", inner: record })
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
                .and_then(|()| if flush_each { out.flush() } else { Ok(()) }),
            Kind::Csv(writer) => writer.serialize(CsvRow::from(record)).map_err(std::io::Error::from).and_then(|()| {
                if flush_each {
                    writer.flush()
                } else {
                    Ok(())
                }
            }),
        };
        self.error = result.err();
    }

    /// Ends the stream: the rows still buffered, then the NDJSON summary line (CSV has none), or
    /// the first write error.
    pub fn finish(&mut self, report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
        self.release(|_, _| true);
        let flushed = match &mut self.kind {
            Kind::Ndjson(rows) => rows.flush(),
            Kind::Csv(rows) => rows.flush(),
        };
        if let Some(e) = self.error.take().or(flushed.err()) {
            return Err(e);
        }
        if let Kind::Ndjson(_) = self.kind {
            let line = SummaryLine {
                kind: "summary",
                schema_version: report.schema_version,
                source: &report.source,
                packets: &report.packets,
                capture: &report.capture,
                summary: &report.summary,
                ports: &report.ports,
                verdict: &report.verdict,
            };
            super::json::write_line(&mut *out, &line)?;
            writeln!(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_csv_header_matches_row_fields() {
        let row = CsvRow {
            id: 1,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:80".parse().unwrap(),
            server_port: 80,
            first_ts: 0.0,
            last_ts: 0.0,
            duration: 0.0,
            handshake: "complete",
            protocol: Protocol::None,
            http_requests: None,
            http_responses: None,
            reused: false,
            fin_first: "none",
            simultaneous_close: false,
            rst_by: None,
            close_cause: CloseCause::Open,
            keepalive_probes_client: 0,
            keepalive_probes_server: 0,
            tls_client_hellos: None,
            h2_streams: None,
            packets: 0,
            bytes: 0,
            end: EndReason::Closed,
            client_state: "CLOSED",
            server_state: "CLOSED",
            client_pid: None,
            client_command: None,
            server_pid: None,
            server_command: None,
            kernel_client_state: None,
            kernel_server_state: None,
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_HEADER.join(","));
    }
}
