//! The last stage every command shares: render the report in the chosen format, draw the teaching
//! views, and check `--assert`ions.
//!
//! [`Output`] is also the pipeline's [`Observer`]: NDJSON and CSV rows are written as each connection
//! ends (so a long capture can be piped), and segments are recorded for `--ladder` and `--svg`.

use clap::{Args, ValueEnum};
use connscope::assert::{self, Assertion};
use connscope::error::Error;
use connscope::pipeline::Observer;
use connscope::render::{self, ladder::Recorder, stream::Stream, Layout, TimeStyle};
use connscope::report::{Amendment, ConnectionRecord, Report, Summary};
use connscope::tcp::FlowEvent;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for people.
    Table,
    /// One JSON object (schema in docs/json.md).
    Json,
    /// One JSON object per connection as it ends, then one summary object (docs/json.md).
    Ndjson,
    /// One row per connection with a header line.
    Csv,
}

/// How to print the report (shared by analyze and capture).
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Check a summary field: 'FIELD OP VALUE', OP one of == != < <= > >=, FIELD any numeric field of
    /// the JSON summary, dotted when nested (fin_first.client, client_states.TIME_WAIT), VALUE a number
    /// or another field. Repeatable. Prints PASS/FAIL per assertion on stderr; exit status 1 when one
    /// fails, 2 when one is malformed or names an unknown field.
    #[arg(long = "assert", value_name = "EXPR")]
    pub assertions: Vec<String>,
    /// List every connection: in the table (otherwise the first 200) and in --format json
    /// (otherwise the first 10000; ndjson and csv always stream every one).
    #[arg(long)]
    pub all: bool,
    /// On a terminal too, print every column of the table on one line per row, as a pipe gets it
    /// (for `less -S`). Without it the table is fitted to the terminal's width (COLUMNS, else the
    /// terminal's size): columns are left out, and said so, rather than cells split.
    #[arg(long)]
    pub wide: bool,
    /// How the table, --ladder and --explain write connection times: `rel` seconds since the first
    /// packet, `abs` local date and time to the microsecond (tcpdump -tttt), `utc` the same in UTC.
    #[arg(long, value_enum, default_value_t = Time::Rel, value_name = "STYLE")]
    pub time: Time,
    /// Lay the table out for a terminal this wide, even on a pipe (tests).
    #[arg(long, value_name = "COLUMNS", hide = true, value_parser = clap::value_parser!(u16).range(20..))]
    pub terminal_width: Option<u16>,
}

/// `--time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Time {
    /// Seconds since the capture's first packet.
    Rel,
    /// Local date and time (tcpdump -tttt).
    Abs,
    /// UTC date and time.
    Utc,
}

impl OutputArgs {
    /// Connections listed one by one in the report (`--all`: every one).
    pub fn listed_connections(&self) -> usize {
        if self.all {
            usize::MAX
        } else {
            connscope::pipeline::DEFAULT_LISTED_CONNECTIONS
        }
    }

    /// The layout of the text for people: fitted to the terminal when standard output is one.
    pub fn layout(&self) -> Layout {
        let width = if self.wide {
            None
        } else if let Some(width) = self.terminal_width {
            Some(usize::from(width))
        } else if std::io::stdout().is_terminal() {
            Some(terminal_width())
        } else {
            None
        };
        let time = match self.time {
            Time::Rel => TimeStyle::Rel,
            Time::Abs => TimeStyle::Abs,
            Time::Utc => TimeStyle::Utc,
        };
        Layout { width, time, all: self.all, conn: None }
    }
}

/// The terminal's width: the COLUMNS environment variable when set, else the terminal's own size,
/// else 80.
fn terminal_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|c| *c > 0) {
        return columns;
    }
    // SAFETY: TIOCGWINSZ fills in a `winsize` and reads nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
        return usize::from(size.ws_col);
    }
    80
}

/// Teaching views of the same report (table format only).
#[derive(Debug, Args, Clone, Default)]
pub struct ViewArgs {
    /// Draw a ladder (sequence) diagram of the first 3 connections, or of --conn, instead of the report.
    #[arg(long)]
    pub ladder: bool,
    /// Show only this connection (its # in the report) in every output: the table's rows, JSON's
    /// `connections`, NDJSON and CSV rows, --ladder, --explain and --svg. The totals, the verdict and
    /// --assert stay those of the whole capture. An ID the capture does not have is a usage error.
    #[arg(long, value_name = "ID")]
    pub conn: Option<u64>,
    /// After the report, explain in plain language what happened and what it suggests.
    #[arg(long)]
    pub explain: bool,
    /// Write an SVG picture for slides: a timeline of the connections and the ladder of the first (or --conn).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Connections drawn by `--ladder` without `--conn`.
const LADDER_DEFAULT_CONNECTIONS: u64 = 3;

/// The output of one run: parsed assertions, the streaming writer and the ladder recorder.
pub struct Output {
    format: Format,
    layout: Layout,
    assertions: Vec<Assertion>,
    view: ViewArgs,
    stream: Option<Stream>,
    recorder: Option<Recorder>,
    /// The `--svg` file, created when the arguments were checked.
    svg_file: Option<std::fs::File>,
}

impl Output {
    /// Checks the arguments (a bad `--assert` is a usage error before any packet is read). `live`:
    /// the packets come as they are captured, so streamed rows are flushed one by one. `capture`:
    /// the report will have a capture section, whose [`CAPTURE_FIELDS`] `--assert` may check too.
    pub fn new(args: &OutputArgs, view: &ViewArgs, live: bool, capture: bool) -> Result<Output, Error> {
        if args.format != Format::Table && (view.ladder || view.explain) {
            let flag = if view.ladder { "--ladder" } else { "--explain" };
            let format = args.format.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            return Err(Error::Usage(format!("{flag} draws text for people: use it with the table format, not --format {format}")));
        }
        let mut valid = assert::numeric_fields(&Summary::default());
        if capture {
            valid.extend(CAPTURE_FIELDS.iter().map(|name| (name.to_string(), 0.0)));
        }
        let assertions = args.assertions.iter().map(|e| assert::parse_against(e, &valid)).collect::<Result<Vec<_>, _>>()?;
        let mut stream = match args.format {
            Format::Ndjson => Some(Stream::ndjson(live)),
            Format::Csv => Some(Stream::csv(live)),
            Format::Table | Format::Json => None,
        };
        if let (Some(stream), Some(id)) = (&mut stream, view.conn) {
            stream.only(id);
        }
        let recorder = if view.ladder {
            Some(Recorder::new(view.conn.map_or(1..=LADDER_DEFAULT_CONNECTIONS, |id| id..=id)))
        } else if view.svg.is_some() {
            Some(Recorder::new(view.conn.map_or(1..=1, |id| id..=id)))
        } else {
            None
        };
        // Created now, so a path that cannot be written is an error before any packet is read.
        let svg_file = match &view.svg {
            Some(path) => {
                Some(std::fs::File::create(path).map_err(|e| Error::Create { path: path.display().to_string(), reason: e.to_string() })?)
            }
            None => None,
        };
        let layout = Layout { conn: view.conn, ..args.layout() };
        Ok(Output { format: args.format, layout, assertions, view: view.clone(), stream, recorder, svg_file })
    }

    /// Holds at most `rows` streamed rows that may still be amended (`--max-connections`).
    pub fn hold_at_most(&mut self, rows: usize) {
        if let Some(stream) = &mut self.stream {
            stream.hold_at_most(rows);
        }
    }

    /// Prints the report (or the ladder), the explanation and the SVG, then checks the assertions.
    pub fn finish(mut self, report: &Report) -> Result<ExitCode, Error> {
        let filtered;
        let report = match self.view.conn {
            Some(id) => match only_connection(report, id) {
                Ok(one) => {
                    filtered = one;
                    &filtered
                }
                Err(e) => {
                    // Nothing is written for a connection that is not there, not even an empty picture.
                    if let Some(path) = self.view.svg.as_ref().filter(|_| self.svg_file.take().is_some()) {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(e);
                }
            },
            None => report,
        };
        let stdout = std::io::stdout();
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        // Buffered: stdout alone flushes at every newline, a syscall per line of a long JSON report.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        match (self.format, &mut self.stream) {
            (_, Some(stream)) => stream.finish(report, &mut out)?,
            (Format::Json, None) => render::json::write(report, &mut out)?,
            _ if self.view.ladder => {}
            _ => render::table::write(report, &self.layout, &mut out)?,
        }
        if let Some(recorder) = &self.recorder {
            if self.view.ladder {
                render::ladder::write(recorder.traces(), report, &self.layout, color, &mut out)?;
            }
            if let Some(file) = &self.svg_file {
                let mut file = std::io::BufWriter::new(file);
                render::svg::write(report, recorder.traces().first(), &mut file)?;
                file.flush()?;
            }
        }
        if self.view.explain {
            render::explain::write(report, &self.layout, &mut out)?;
        }
        out.flush()?;
        if self.assertions.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let fields = assertion_fields(report);
        let outcomes = assert::evaluate_fields(&self.assertions, &fields);
        let all_passed = assert::report_fields(&outcomes, &fields, &mut std::io::stderr().lock())?;
        Ok(if all_passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// The numeric fields of a capture's report that `--assert` can check besides the summary's, by
/// their dotted JSON names (`docs/assert.md`). A field that is null in the report (the exit status
/// of a command killed by a signal) fails every assertion on it.
pub const CAPTURE_FIELDS: [&str; 9] = [
    "capture.received",
    "capture.dropped_by_kernel",
    "capture.dropped_by_interface",
    "capture.duration",
    "capture.command_exit_status",
    "capture.saved_packets",
    "capture.kernel_agreement.compared",
    "capture.kernel_agreement.agree",
    "capture.kernel_agreement.disagree",
];

/// The summary's numeric fields and, for a capture, those of its capture section.
fn assertion_fields(report: &Report) -> assert::Fields {
    let mut fields = assert::numeric_fields(&report.summary);
    if let Some(capture) = &report.capture {
        let value = serde_json::to_value(capture).unwrap_or_default();
        for name in CAPTURE_FIELDS {
            let path = name.strip_prefix("capture.").unwrap_or(name);
            let found = path.split('.').try_fold(&value, |v, key| v.get(key)).and_then(serde_json::Value::as_f64);
            if let Some(n) = found {
                fields.insert(name.to_string(), n);
            }
        }
    }
    fields
}

/// The report with its connection list cut to connection `id`; a usage error when the capture has
/// no such connection, or when it is past the listed ones.
fn only_connection(report: &Report, id: u64) -> Result<Report, Error> {
    let mut one = report.clone();
    one.connections.retain(|c| c.id == id);
    one.connections_omitted = 0;
    if one.connections.is_empty() {
        return Err(Error::Usage(if id >= 1 && id <= report.summary.connections {
            format!("--conn {id}: the connection is past the {} listed: add --all", report.connections.len())
        } else {
            format!("--conn {id}: no such connection in this capture")
        }));
    }
    Ok(one)
}

impl Observer for Output {
    fn wants_events(&self) -> bool {
        self.recorder.is_some()
    }

    fn wants_segments(&self) -> bool {
        self.recorder.is_some()
    }

    fn event(&mut self, id: u64, event: &FlowEvent) {
        if let (Some(recorder), FlowEvent::Segment(note)) = (&mut self.recorder, event) {
            recorder.segment(id, note);
        }
    }

    fn connection_ended(&mut self, record: &ConnectionRecord, _summary: &Summary) {
        if let Some(stream) = &mut self.stream {
            stream.connection(record);
        }
    }

    fn connection_amended(&mut self, amendment: &Amendment, _summary: &Summary) {
        if let Some(stream) = &mut self.stream {
            stream.amend(amendment);
        }
    }
}
