//! `--since` / `--until`: the packets of a time window, the times written as `--time` writes them
//! (seconds since the first packet, or a date and time, local or with `Z` for UTC), like
//! `editcap -A`/`-B` cuts a capture.

use connscope::error::Error;

/// A point in time as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimePoint {
    /// Seconds since the capture's first packet (`--time rel`: `2.5`).
    Relative(f64),
    /// Epoch seconds, from a local (`--time abs`) or UTC (`--time utc`, a trailing `Z`) date and time.
    Epoch(f64),
}

/// Parses `2.5`, `2026-11-22 00:47:08.479338` (local time), `2026-11-22 00:47:08.479338Z` or with
/// `T` between date and time; the fraction and the seconds may be left out.
pub fn parse_time_point(text: &str) -> Result<TimePoint, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return if seconds.is_finite() { Ok(TimePoint::Relative(seconds)) } else { Err(format!("`{text}` is not a time")) };
    }
    let bad = || {
        format!("`{text}` is not a time: give seconds since the first packet (2.5) or a date and time as --time abs or utc writes it (2026-11-22 00:47:08.479338, with Z for UTC)")
    };
    let (text, utc) = match text.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, time) = text.split_once([' ', 'T']).ok_or_else(bad)?;
    let numbers = |s: &str, n: usize| -> Option<Vec<i32>> {
        let parts: Vec<i32> = s.split(if s.contains('-') { '-' } else { ':' }).map(|p| p.parse().ok()).collect::<Option<_>>()?;
        (parts.len() <= n && !parts.is_empty()).then_some(parts)
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) if fraction.chars().all(|c| c.is_ascii_digit()) => {
            (clock, format!("0.{fraction}").parse::<f64>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
        None => (time, 0.0),
    };
    let ymd = numbers(date, 3).filter(|v| v.len() == 3).ok_or_else(bad)?;
    let mut hms = numbers(clock, 3).filter(|v| v.len() >= 2).ok_or_else(bad)?;
    hms.resize(3, 0);
    // SAFETY: `tm` is plain data; timegm and mktime read it (mktime normalises it in place).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = ymd[0] - 1900;
    tm.tm_mon = ymd[1] - 1;
    tm.tm_mday = ymd[2];
    tm.tm_hour = hms[0];
    tm.tm_min = hms[1];
    tm.tm_sec = hms[2];
    tm.tm_isdst = -1;
    let seconds = unsafe {
        if utc {
            libc::timegm(&mut tm)
        } else {
            libc::mktime(&mut tm)
        }
    };
    if seconds == -1 || !(1..=12).contains(&ymd[1]) || !(1..=31).contains(&ymd[2]) {
        return Err(bad());
    }
    Ok(TimePoint::Epoch(seconds as f64 + fraction))
}

/// The packets between `since` and `until` (both included), relative times counted from the
/// first packet read.
pub struct Window {
    since: Option<TimePoint>,
    until: Option<TimePoint>,
    first: Option<f64>,
}

impl Window {
    /// The window; a usage error when it ends before it begins.
    pub fn new(since: Option<TimePoint>, until: Option<TimePoint>) -> Result<Window, Error> {
        if let (Some(TimePoint::Relative(a)), Some(TimePoint::Relative(b))) | (Some(TimePoint::Epoch(a)), Some(TimePoint::Epoch(b))) =
            (since, until)
        {
            if b < a {
                return Err(Error::Usage("--until is before --since: the window holds no packet".to_string()));
            }
        }
        Ok(Window { since, until, first: None })
    }

    /// True when the window cuts anything.
    pub fn is_set(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// True when the packet at epoch seconds `ts` is inside the window.
    pub fn admits(&mut self, ts: f64) -> bool {
        let first = *self.first.get_or_insert(ts);
        let epoch = |point: TimePoint| match point {
            TimePoint::Relative(seconds) => first + seconds,
            TimePoint::Epoch(epoch) => epoch,
        };
        self.since.is_none_or(|p| ts >= epoch(p)) && self.until.is_none_or(|p| ts <= epoch(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_times_parse_as_the_time_option_writes_them() {
        assert_eq!(parse_time_point("2.5"), Ok(TimePoint::Relative(2.5)));
        assert_eq!(parse_time_point("2026-11-22 00:47:08.479338Z"), Ok(TimePoint::Epoch(1_795_308_428.479_338)));
        assert_eq!(parse_time_point("2026-11-22T00:47Z"), Ok(TimePoint::Epoch(1_795_308_420.0)));
        assert!(parse_time_point("yesterday").is_err());
        assert!(parse_time_point("2026-13-22 00:47:08Z").is_err());
        assert!(parse_time_point("2026-11-22 00:47:08.4x").is_err());
    }

    #[test]
    fn test_window_counts_relative_times_from_the_first_packet() {
        let mut window = Window::new(Some(TimePoint::Relative(1.0)), Some(TimePoint::Relative(2.0))).unwrap();
        let admitted: Vec<bool> = [100.0, 100.5, 101.0, 101.5, 102.0, 102.5].iter().map(|ts| window.admits(*ts)).collect();
        assert_eq!(admitted, [false, false, true, true, true, false]);
        assert!(Window::new(Some(TimePoint::Relative(2.0)), Some(TimePoint::Relative(1.0))).is_err());
    }
}
