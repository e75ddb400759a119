//! Every real capture in `fixtures/` gives exactly the counts its `.expect` file states (and says why).
//!
//! Keys: `args`; summary fields by JSON name (`fin_first.client`); `packets.*`; `connections.N.field`
//! (N counts from 0 in connection order); `verdict.*`; `findings` (the exact set of finding codes);
//! `warnings` (the exact set of warning-severity codes);
//! `tshark.*` (what tshark reports where it differs, checked by `tshark_crosscheck.rs`).

mod common;
use common::*;

/// Keys of `.expect` files that are not report fields.
const META_KEYS: [&str; 1] = ["args"];

#[test]
fn every_fixture_gives_its_expected_counts() {
    let expectations = all_expectations();
    assert!(expectations.len() >= 10, "expected the fixture set, found {}", expectations.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for exp in &expectations {
        let report = analyze_json(&exp.pcap, &exp.args());
        for (key, want) in &exp.values {
            if META_KEYS.contains(&key.as_str()) || key.starts_with("tshark.") {
                continue;
            }
            let (path, actual) = if let Some(rest) = key.strip_prefix("verdict.") {
                (key.clone(), lookup(&report["verdict"], rest))
            } else if key == "findings" || key == "warnings" {
                let codes: Vec<String> = report["verdict"]["findings"]
                    .as_array()
                    .expect("findings array")
                    .iter()
                    .filter(|f| key == "findings" || f["severity"] == "warning")
                    .map(|f| f["code"].as_str().expect("code").to_string())
                    .collect();
                let mut want: Vec<&str> = want.split_whitespace().collect();
                want.sort();
                let mut got: Vec<&str> = codes.iter().map(String::as_str).collect();
                got.sort();
                checked += 1;
                if want != got {
                    failures.push(format!("{}: findings: want {want:?}, got {got:?}", exp.name));
                }
                continue;
            } else if key.starts_with("packets.") || key.starts_with("connections.") {
                (key.clone(), lookup(&report, key))
            } else {
                (key.clone(), lookup(&report["summary"], key))
            };
            checked += 1;
            let got = match actual {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "<missing>".to_string(),
            };
            if &got != want {
                failures.push(format!("{}: {path}: want {want}, got {got}", exp.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} checks failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_fixture_capture_has_an_expect_file() {
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures/") {
        let path = entry.expect("entry").path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "pcap" || ext == "pcapng" {
            let expect = path.with_extension("expect");
            assert!(expect.exists(), "{} has no .expect file", path.display());
        }
    }
}
