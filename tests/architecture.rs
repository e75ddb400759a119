//! The library's modules import one way: each may use only the modules below it in the pipeline
//! order of `docs/architecture.md`. Reads every `src/**/*.rs` and fails on an import (`crate::x`
//! anywhere in code, `use` lines or paths) of a module at its own level or above.
//!
//! Test code is exempt: a file's `#[cfg(test)]` module (from that line to the end of the file, where
//! the project keeps it) and `tests.rs` files; the flow table's tests, for one, read the records the
//! report builds from what the table hands over. Comments are exempt (docs may say where output
//! goes). The binary (`main.rs`, `cli/`) is above everything and uses the library as `connscope::`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest first; a module may import only those on lower levels.
const LEVELS: &[&[&str]] = &[
    // Plain values and errors every stage may return.
    &["wire", "error"],
    // Frames in (files; live capture is further up, as it drives the pipeline).
    &["source"],
    // Frames into segments, IP fragments reassembled.
    &["decode"],
    &["defrag"],
    // Per-connection byte streams: run by the flow table, so below it.
    &["protocol"],
    // The flow table: segments in, TCP facts out.
    &["tcp"],
    // The kernel's socket tables: states and owners, no report.
    &["sockets"],
    // Records and summaries from TCP facts + protocol summaries (+ processes, for live capture).
    &["report"],
    // --assert on the report's summary.
    &["assert"],
    // The wiring every command shares.
    &["pipeline"],
    // Live capture drives a pipeline; the renderers draw its report.
    &["live", "render"],
];

/// Files of the binary, not the library.
fn is_binary(rel: &Path) -> bool {
    rel == Path::new("main.rs") || rel.starts_with("cli")
}

fn level_of(module: &str) -> Option<usize> {
    LEVELS.iter().position(|level| level.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names through `crate::`: `crate::tcp::FlowKey`,
/// `use crate::{report::Summary, tcp::FlowKey}`.
fn modules_named(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                found.push(name);
            }
        } else {
            found.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// Every edge `(importing module, imported module)` in the library's non-test code, with where it is.
fn edges(src: &Path) -> BTreeMap<(String, String), String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(src).unwrap();
        if is_binary(rel) || rel == Path::new("lib.rs") || rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        let text = fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            for imported in modules_named(code) {
                if imported != module {
                    edges.entry((module.clone(), imported)).or_insert_with(|| format!("src/{}:{}", rel.display(), number + 1));
                }
            }
        }
    }
    edges
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn test_every_module_imports_only_modules_below_it() {
    let mut wrong = Vec::new();
    for ((from, to), at) in edges(&src()) {
        match (level_of(&from), level_of(&to)) {
            (Some(a), Some(b)) if b < a => {}
            (None, _) => wrong.push(format!("{at}: module `{from}` is not in LEVELS (tests/architecture.rs): give it a level")),
            (_, None) => wrong.push(format!("{at}: `{from}` imports `{to}`, which is not in LEVELS")),
            _ => wrong.push(format!("{at}: `{from}` imports `{to}`, which is not below it (docs/architecture.md)")),
        }
    }
    assert!(wrong.is_empty(), "imports against the pipeline order:\n{}", wrong.join("\n"));
}

#[test]
fn test_every_library_module_has_a_level() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib.lines().filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    let levelled: BTreeSet<&str> = LEVELS.iter().flat_map(|l| l.iter().copied()).collect();
    assert_eq!(declared, levelled);
}

#[test]
fn test_the_scan_finds_the_flow_tables_use_of_the_protocol_watchers() {
    // The scan sees real edges (so the check above can fail): tcp runs the protocol watcher.
    let edges = edges(&src());
    assert!(edges.contains_key(&("tcp".to_string(), "protocol".to_string())), "{edges:?}");
    assert!(edges.contains_key(&("report".to_string(), "tcp".to_string())), "{edges:?}");
    assert_eq!(modules_named("use crate::{report::Summary, tcp::FlowKey};"), ["report", "tcp"]);
    assert_eq!(modules_named("let x = crate::pipeline::DEFAULT_MAX_CONNECTIONS;"), ["pipeline"]);
}
