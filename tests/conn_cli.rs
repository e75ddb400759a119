//! `--conn ID` filters every output to that connection (the totals stay the capture's), and an ID
//! the capture does not have is a usage error (exit 2) whatever the output, with no SVG left behind.

mod common;
use common::connscope;
use serde_json::Value;

const FILE: &str = "fixtures/go-pool-overflow.pcap";

#[test]
fn test_conn_filters_the_table_json_ndjson_csv_explain_ladder_and_svg() {
    let table = connscope(&["analyze", FILE, "--conn", "4"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let rows: Vec<&str> = table.stdout.lines().filter(|l| l.contains("127.0.0.1:19603 ┆")).collect();
    assert_eq!(rows.len(), 1, "{}", table.stdout);
    assert!(rows[0].starts_with("│ 4 ┆ 127.0.0.1:44624 ┆"), "{}", rows[0]);
    assert!(table.stdout.contains("Connection #4 only (--conn): the totals above are the whole capture's.\n"));
    assert!(table.stdout.contains("│ 26          ┆ 26 (26)"), "the totals are the capture's");

    let json: Value = serde_json::from_str(&connscope(&["analyze", FILE, "--conn", "4", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["connections"].as_array().unwrap().len(), 1);
    assert_eq!(json["connections"][0]["id"], 4);
    assert_eq!(json["connections"][0]["http_requests"], 2);
    assert_eq!(json["connections_omitted"], 0);
    assert_eq!(json["summary"]["connections"], 26);

    let ndjson = connscope(&["analyze", FILE, "--conn", "4", "--format", "ndjson"]);
    let lines: Vec<Value> = ndjson.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one connection, then the summary");
    assert_eq!((lines[0]["type"].as_str(), lines[0]["id"].as_u64()), (Some("connection"), Some(4)));
    assert_eq!(lines[1]["type"], "summary");

    let csv = connscope(&["analyze", FILE, "--conn", "4", "--format", "csv"]);
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{}", csv.stdout);
    assert!(rows[1].starts_with("4,127.0.0.1:44624,"));

    let explain = connscope(&["analyze", FILE, "--conn", "4", "--explain"]);
    assert!(explain.stdout.contains("  #4: 127.0.0.1:44624 → 127.0.0.1:19603: 2 HTTP requests"));
    assert!(!explain.stdout.contains("  #1: "));
    assert!(explain.stdout.contains("26 connections were seen (one of them is described below, as --conn asks)."));

    let ladder = connscope(&["analyze", FILE, "--conn", "4", "--ladder"]);
    assert!(ladder.stdout.starts_with("connection #4: 127.0.0.1:44624 → 127.0.0.1:19603,"));
    assert!(!ladder.stdout.contains("connection #1:"));

    let svg_path = std::env::temp_dir().join(format!("connscope-conn-{}.svg", std::process::id()));
    let svg = connscope(&["analyze", FILE, "--conn", "4", "--svg", svg_path.to_str().unwrap()]);
    assert_eq!(svg.code, 0, "{}", svg.stderr);
    let picture = std::fs::read_to_string(&svg_path).unwrap();
    assert!(picture.contains(">#4 127.0.0.1:44624</text>"));
    assert!(!picture.contains(">#1 127.0.0.1:"), "one bar only");
    assert!(picture.contains("Ladder of connection #4"));
    std::fs::remove_file(&svg_path).ok();
}

#[test]
fn test_unknown_conn_is_a_usage_error_for_every_output() {
    let svg_path = std::env::temp_dir().join(format!("connscope-conn-missing-{}.svg", std::process::id()));
    let svg = svg_path.to_str().unwrap();
    let outputs: [&[&str]; 7] =
        [&[], &["--format", "json"], &["--format", "ndjson"], &["--format", "csv"], &["--ladder"], &["--explain"], &["--svg", svg]];
    for output in outputs {
        let mut args = vec!["analyze", FILE, "--conn", "99"];
        args.extend_from_slice(output);
        let run = connscope(&args);
        assert_eq!(run.code, 2, "{output:?}");
        assert_eq!(run.stderr, "connscope: error: --conn 99: no such connection in this capture\n", "{output:?}");
        assert!(!run.stdout.contains("connscope —") && !run.stdout.contains("\"connections\""), "{output:?}: {}", run.stdout);
    }
    assert!(!svg_path.exists(), "no SVG without its connection");
}
