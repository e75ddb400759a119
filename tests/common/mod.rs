//! Helpers shared by the integration tests: running the binary and reading fixture expectations.
#![allow(dead_code)]

pub mod live;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The connscope binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_connscope")
}

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One fixture's `NAME.expect`: `key = value  # why` lines.
pub struct Expect {
    pub name: String,
    pub pcap: PathBuf,
    pub values: BTreeMap<String, String>,
}

impl Expect {
    /// The connscope arguments the fixture is analysed with.
    pub fn args(&self) -> Vec<String> {
        self.values.get("args").map(|a| a.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
    }
}

/// Every fixture with an `.expect` file, sorted by name.
pub fn all_expectations() -> Vec<Expect> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("expect") {
            continue;
        }
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name").to_string();
        let text = std::fs::read_to_string(&path).expect("readable .expect");
        let mut values = BTreeMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{name}.expect: bad line `{line}`"));
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        let pcap = ["pcap", "pcapng"]
            .iter()
            .map(|ext| fixtures_dir().join(format!("{name}.{ext}")))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name}.expect has no {name}.pcap or .pcapng"));
        out.push(Expect { name, pcap, values });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Runs `connscope analyze FILE ARGS --format json` and parses the report.
pub fn analyze_json(pcap: &Path, args: &[String]) -> serde_json::Value {
    let out = Command::new(bin()).arg("analyze").arg(pcap).args(args).args(["--format", "json"]).output().expect("run connscope");
    assert!(out.status.success(), "connscope failed on {}: {}", pcap.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON report")
}

/// Looks up a dotted path (`fin_first.client`, `connections.0.reused`) in a JSON value.
pub fn lookup<'a>(v: &'a serde_json::Value, dotted: &str) -> Option<&'a serde_json::Value> {
    dotted.split('.').try_fold(v, |v, k| match k.parse::<usize>() {
        Ok(index) => v.get(index),
        Err(_) => v.get(k),
    })
}

/// What a run of the binary printed, and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `connscope` with `args` from the crate root, with a fixed terminal width and no colour.
pub fn connscope(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_connscope"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .output()
        .expect("connscope runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// A fixture capture under `tests/data/`.
pub fn fixture(name: &str) -> String {
    format!("tests/data/{name}")
}

/// Compares `actual` with `tests/golden/NAME`; with `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("golden file written");
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "{} differs (review, then UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// True when the test may capture live traffic (root); otherwise says why it is skipped.
/// Under CI (env `CI` set) not being root is a failure, so the live tests cannot be skipped silently.
pub fn can_capture(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: CI must run the capture tests as root");
    eprintln!("SKIPPED {test}: live capture needs root (CI runs these tests as root)");
    false
}
