//! Helpers shared by the integration tests: run the binary, compare with golden files.
#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::path::PathBuf;
use std::process::Command;

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
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(expected == actual, "{} differs (review, then UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}", path.display());
}
