//! Output formats. Every format renders the same [`Report`](crate::report::Report); none computes anything.

pub mod explain;
pub mod json;
pub mod ladder;
pub mod stream;
pub mod svg;
pub mod table;

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
