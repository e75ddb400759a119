//! Output formats. Every format renders the same [`Report`](crate::report::Report); none computes anything.

pub mod explain;
pub mod fit;
pub mod json;
pub mod ladder;
pub mod stream;
pub mod svg;
pub mod table;

/// How the text for people is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The terminal's width: tables are fitted to it and prose wrapped. `None` (a pipe, `--wide`):
    /// every column, every line whole.
    pub width: Option<usize>,
    /// How times are written.
    pub time: TimeStyle,
    /// List every connection in the table (`--all`), not the first [`table::MAX_ROWS`].
    pub all: bool,
    /// The report's connections were filtered to this one (`--conn`); the totals are the capture's.
    pub conn: Option<u64>,
}

/// How the table, the ladder and `--explain` write a time (`--time`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeStyle {
    /// Seconds since the capture's first packet (`0.203`).
    #[default]
    Rel,
    /// Local date and time to the microsecond (`2026-12-02 14:05:01.123456`), as `tcpdump -tttt`.
    Abs,
    /// The same in UTC, with a `Z`.
    Utc,
}

impl TimeStyle {
    /// `rel` seconds since the capture's first packet (epoch seconds `start`), written in this style.
    /// Without `start` (no packet) the relative time is written.
    pub fn format(self, rel: f64, start: Option<f64>) -> String {
        match (self, start) {
            (TimeStyle::Rel, _) | (_, None) => format!("{rel:.3}"),
            (TimeStyle::Abs, Some(start)) => date_time(start + rel, false),
            (TimeStyle::Utc, Some(start)) => date_time(start + rel, true),
        }
    }

    /// Epoch seconds as a date and time (`abs`, `utc`); `None` for `rel`, whose times are relative.
    pub fn epoch(self, epoch: f64) -> Option<String> {
        match self {
            TimeStyle::Rel => None,
            TimeStyle::Abs => Some(date_time(epoch, false)),
            TimeStyle::Utc => Some(date_time(epoch, true)),
        }
    }
}

/// Epoch seconds as `YYYY-MM-DD HH:MM:SS.ffffff`, local time (the TZ environment) or UTC (`Z` added).
fn date_time(epoch: f64, utc: bool) -> String {
    let micros = (epoch * 1e6).round() as i64;
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let time = secs as libc::time_t;
    // SAFETY: `tm` is plain data that gmtime_r/localtime_r fill in; both only read `time`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        if utc {
            !libc::gmtime_r(&time, &mut tm).is_null()
        } else {
            !libc::localtime_r(&time, &mut tm).is_null()
        }
    };
    if !ok {
        return format!("{epoch:.6}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{frac:06}{}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if utc { "Z" } else { "" }
    )
}

/// Formats a duration in seconds for people: `0.8 ms`, `12.3 ms`, `1.25 s`, `2m05s`.
pub fn human_duration(secs: f64) -> String {
    if secs < 0.0 {
        return "-".to_string();
    }
    if secs < 1.0 {
        format!("{:.1} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.2} s")
    } else {
        let whole = secs as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_utc_time_is_written_to_the_microsecond_like_tcpdump_tttt() {
        assert_eq!(TimeStyle::Utc.format(0.25, Some(1_796_218_283.388_287)), "2026-12-02 13:31:23.638287Z");
        assert_eq!(TimeStyle::Rel.format(0.2031, Some(1_796_218_283.0)), "0.203");
        assert_eq!(TimeStyle::Utc.format(1.5, None), "1.500", "no first packet: relative");
    }
}
