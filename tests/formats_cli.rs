//! Machine formats read back the way scripts read them: NDJSON line by line with serde_json, CSV
//! with the csv crate; and the help, completions and man page generated from the clap definitions.

mod common;
use common::{connscope, fixture, golden};
use serde_json::Value;

#[test]
fn test_ndjson_is_one_connection_per_line_then_the_summary() {
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--format", "ndjson"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 2);
    let conn = &lines[0];
    assert_eq!(conn["type"], "connection");
    assert_eq!(conn["id"], 1);
    assert_eq!(conn["client"], "127.0.0.1:34616");
    assert_eq!(conn["server"], "127.0.0.1:18472");
    assert_eq!(conn["handshake"], "complete");
    assert_eq!(conn["fin_first"], "client");
    assert_eq!(conn["client_state"], "TIME_WAIT");
    assert_eq!(conn["server_state"], "CLOSED");
    assert_eq!(conn["keepalive_probes"]["client"], 2);
    assert_eq!(conn["keepalive_probes"]["server"], 0);
    assert_eq!(conn["packets"], 17);
    let summary = &lines[1];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["schema_version"], 1);
    assert_eq!(summary["packets"]["total"], 17);
    assert_eq!(summary["summary"]["handshakes"], 1);
    assert_eq!(summary["summary"]["fin_first"]["client"], 1);
    assert_eq!(summary["summary"]["client_states"]["TIME_WAIT"], 1);
    assert!(summary.get("connections").is_none(), "connections were streamed, not repeated");
    assert!(summary["verdict"]["headline"].is_string());
}

#[test]
fn test_csv_has_a_header_and_one_row_per_connection() {
    let run = connscope(&["analyze", &fixture("server-first.pcap"), "--format", "csv"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, connscope::render::stream::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a CSV row")).collect();
    assert_eq!(rows.len(), 1);
    let get = |name: &str| rows[0].get(header.iter().position(|h| h == name).unwrap()).unwrap().to_string();
    assert_eq!(get("id"), "1");
    assert_eq!(get("client"), "127.0.0.1:36284");
    assert_eq!(get("server"), "127.0.0.1:18471");
    assert_eq!(get("server_port"), "18471");
    assert_eq!(get("handshake"), "complete");
    assert_eq!(get("fin_first"), "server");
    assert_eq!(get("rst_by"), "");
    assert_eq!(get("packets"), "12");
    assert_eq!(get("client_state"), "CLOSED");
    assert_eq!(get("server_state"), "TIME_WAIT");
}

#[test]
fn test_csv_of_an_empty_selection_still_has_the_header() {
    let run = connscope(&["analyze", &fixture("server-first.pcap"), "--port", "9", "--format", "csv"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, format!("{}\n", connscope::render::stream::CSV_HEADER.join(",")));
}

#[test]
fn test_help_matches_golden() {
    golden("help.txt", &connscope(&["--help"]).stdout);
    golden("help-analyze.txt", &connscope(&["analyze", "--help"]).stdout);
}

#[test]
fn test_completions_and_man_page_come_from_the_clap_definitions() {
    let bash = connscope(&["completions", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("--assert") && bash.stdout.contains("--ladder"), "bash completion knows the flags");
    let zsh = connscope(&["completions", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef connscope"));
    let man = connscope(&["man"]);
    assert_eq!(man.code, 0);
    assert!(man.stdout.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{}", &man.stdout[..80]);
    assert!(man.stdout.contains(".TH connscope 1"));
    // The subcommands' options are on their own pages now (connscope-analyze(1), which the main
    // page's SUBCOMMANDS section names), no longer appended to connscope(1) without headings.
    assert!(man.stdout.contains("connscope\\-analyze(1)"));
    let analyze = connscope(&["man", "analyze"]);
    assert!(analyze.stdout.contains("\\fBconnscope analyze\\fR"));
    assert!(analyze.stdout.contains("\\-\\-assert"));
}

#[test]
fn test_ndjson_streams_each_connection_before_the_input_ends() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_connscope"))
        .args(["analyze", "-", "--format", "ndjson"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The whole capture, but standard input stays open: the connection ended, the input did not.
    let pcap = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/server-first.pcap")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&pcap).unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        tx.send(lines.next().unwrap().unwrap()).unwrap();
        lines.map(Result::unwrap).collect::<Vec<_>>()
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("a connection line before end of input");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["type"], "connection");
    assert_eq!(first["fin_first"], "server");
    drop(stdin);
    let rest = reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest.len(), 1);
    assert!(rest[0].starts_with(r#"{"type":"summary","#));
}

#[test]
fn test_streamed_rows_never_contradict_the_json_report() {
    // Reading a file, the row of a connection in TIME_WAIT is held until nothing can change it: on
    // the captures where an RST kills a TIME_WAIT and a SYN recycles one, the NDJSON rows are the
    // JSON report's connections, field for field.
    for (name, port) in [("time-wait-rst.pcap", "19201"), ("time-wait-reuse.pcap", "19202"), ("concurrent-curls.pcap", "18122")] {
        let path = common::fixtures_dir().join(name);
        let path = path.to_str().expect("UTF-8 path");
        let json = connscope(&["analyze", path, "--port", port, "--format", "json"]);
        assert_eq!(json.code, 0, "{}", json.stderr);
        let report: Value = serde_json::from_str(&json.stdout).expect("JSON report");
        let ndjson = connscope(&["analyze", path, "--port", port, "--format", "ndjson"]);
        let mut rows: Vec<Value> = ndjson
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
            .filter(|l| l["type"] == "connection")
            .map(|mut l| {
                l.as_object_mut().expect("object").remove("type");
                l
            })
            .collect();
        rows.sort_by_key(|r| r["id"].as_u64());
        assert_eq!(&Value::Array(rows), &report["connections"], "{name}");
    }
}

#[test]
fn test_ndjson_from_standard_input_repeats_a_row_when_it_is_amended() {
    // Standard input streams each row as its connection ends; a row that an RST after both FINs
    // changes later comes again, amended, with the same id: the last line of an id is final.
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_connscope"))
        .args(["analyze", "-", "--port", "19201", "--format", "ndjson"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pcap = std::fs::read(common::fixtures_dir().join("time-wait-rst.pcap")).unwrap();
    child.stdin.take().unwrap().write_all(&pcap).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        (&lines[0]["id"], &lines[0]["client_state"], &lines[0]["rst_by"]),
        (&Value::from(1), &Value::from("TIME_WAIT"), &Value::Null)
    );
    assert_eq!(
        (&lines[1]["id"], &lines[1]["client_state"], &lines[1]["rst_by"]),
        (&Value::from(1), &Value::from("CLOSED"), &Value::from("server"))
    );
    assert_eq!(lines[2]["summary"]["rst_connections"], 1);
}
