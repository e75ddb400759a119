//! `docs/json.md` documents every field the JSON report emits, and nothing else: the field paths in
//! the document's tables are compared with the keys of a real report, both ways.

mod common;
use common::{connscope, fixture};
use connscope::protocol::{H2GoAway, TlsSummary};
use connscope::report::close_cause::CloseCause;
use connscope::report::verdict::FindingCode;
use connscope::report::{CaptureStats, KernelAgreement, RequestRecord};
use connscope::sockets::ProcessInfo;
use serde_json::Value;
use std::collections::BTreeSet;

/// Objects whose keys are data (socket state names), documented as a whole.
const MAPS: [&str; 2] = ["summary.client_states", "summary.server_states"];

/// The first column of the document's tables whose header's first cell is `heading`:
/// `| \`summary.handshakes\` | ...` under `| field | ...`.
fn first_column(heading: &str) -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    let mut in_table = false;
    let mut out = BTreeSet::new();
    for line in doc.lines() {
        if !line.starts_with('|') {
            in_table = false;
        } else if let Some(rest) = line.strip_prefix("| `").filter(|_| in_table) {
            out.insert(rest.split('`').next().unwrap().to_string());
        } else if line.starts_with(&format!("| {heading} |")) {
            in_table = true;
        }
    }
    out
}

/// Field paths: the first column of the `field` tables.
fn documented() -> BTreeSet<String> {
    first_column("field")
}

/// Every key path of `value`, `[]` for list elements.
fn paths(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.insert(path.clone());
                if !MAPS.contains(&path.as_str()) {
                    paths(&path, v, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

/// A real report of a fixture, with the parts that fixture cannot show (live capture statistics,
/// the kernel's view, TLS facts, listed requests) filled in from the same types the code serialises.
fn emitted() -> BTreeSet<String> {
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(!report["verdict"]["findings"].as_array().unwrap().is_empty(), "the fixture has a finding");
    let capture = CaptureStats { kernel_agreement: Some(KernelAgreement::default()), ..CaptureStats::default() };
    report["capture"] = serde_json::to_value(capture).unwrap();
    let conn = &mut report["connections"][0];
    let process = serde_json::to_value(ProcessInfo { pid: 1, command: "init".into() }).unwrap();
    conn["client_process"] = process.clone();
    conn["server_process"] = process;
    conn["tls"] = serde_json::to_value(TlsSummary {
        client_hellos: 1,
        hello_retry_requests: 0,
        full_handshakes: 1,
        resumed_handshakes: 0,
        sni: None,
        version: None,
        exchanges_estimate: 1,
        decrypted: true,
        decrypt_failures: Some(0),
        close_notify_by: Some(connscope::wire::Side::Client),
    })
    .unwrap();
    conn["h2_goaway"] = serde_json::to_value(H2GoAway { by: connscope::wire::Side::Server, last_stream_id: 1, error_code: 0 }).unwrap();
    conn["requests"] = serde_json::to_value([RequestRecord { method: None, target: None, version: None, status: None }]).unwrap();
    let mut out = BTreeSet::new();
    paths("", &report, &mut out);
    out
}

#[test]
fn test_json_doc_lists_exactly_the_emitted_fields() {
    let doc = documented();
    let code = emitted();
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&code).collect();
    assert!(undocumented.is_empty(), "fields emitted but not in docs/json.md: {undocumented:?}");
    assert!(stale.is_empty(), "fields in docs/json.md that the code does not emit: {stale:?}");
}

#[test]
fn test_json_doc_states_the_schema_version_the_code_emits() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    assert!(doc.contains(&format!("Schema version **{}**", connscope::report::SCHEMA_VERSION)));
}

#[test]
fn test_json_doc_lists_every_close_cause_and_finding_code() {
    let causes: BTreeSet<String> = CloseCause::ALL.iter().map(|c| c.name().to_string()).collect();
    assert_eq!(first_column("value"), causes, "the close-cause table of docs/json.md");
    let codes: BTreeSet<String> = FindingCode::ALL.iter().map(|c| c.name().to_string()).collect();
    assert_eq!(first_column("code"), codes, "the findings table of docs/json.md");
}
