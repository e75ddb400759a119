//! Teaching views: golden ladders of a server-first and a client-first close, `--explain`, `--svg`.

mod common;
use common::{connscope, fixture, golden};

#[test]
fn test_ladder_of_a_server_first_close() {
    let run = connscope(&["analyze", &fixture("server-first.pcap"), "--port", "18471", "--ladder"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    golden("ladder-server-first.txt", &run.stdout);
}

#[test]
fn test_ladder_of_a_client_first_close_with_keepalive_probes() {
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--ladder", "--conn", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    golden("ladder-client-first.txt", &run.stdout);
}

#[test]
fn test_ladder_of_a_missing_connection_is_a_usage_error() {
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--ladder", "--conn", "7"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "connscope: error: --conn 7: no such connection in this capture\n");
}

#[test]
fn test_ladder_with_a_machine_format_is_refused() {
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--ladder", "--format", "json"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "connscope: error: --ladder draws text for people: use it with the table format, not --format json\n");
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--explain", "--format", "table"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn test_explain_tells_who_closed_and_what_each_side_holds() {
    let server_first = connscope(&["analyze", &fixture("server-first.pcap"), "--explain"]);
    assert_eq!(server_first.code, 0);
    let text = &server_first.stdout;
    assert!(text.contains("\nWhat happened, in plain words\n"));
    assert!(text.contains("The client sent the first FIN on 0 connections, the server on 1 connection"), "{text}");
    assert!(text.contains("here the server holds 1 socket in TIME_WAIT now"), "{text}");
    assert!(text.contains("No socket was left in CLOSE_WAIT"), "{text}");

    let client_first = connscope(&["analyze", &fixture("client-first.pcap"), "--explain"]);
    let text = &client_first.stdout;
    assert!(text.contains("The client sent the first FIN on 1 connection, the server on 0 connections"), "{text}");
    assert!(text.contains("here the client holds 1 socket in TIME_WAIT now"), "{text}");
    assert!(text.contains("2 TCP keep-alive probes were seen"), "{text}");
}

#[test]
fn test_svg_holds_the_timeline_and_the_ladder() {
    let path = std::env::temp_dir().join(format!("connscope-test-{}.svg", std::process::id()));
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--svg", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("Ladder of connection #1"));
    assert!(svg.contains("GET /hello"));
    assert!(svg.contains(">TIME_WAIT</text>"));
    assert_eq!(svg.matches("marker-end=").count(), 17, "one arrow per segment");
}

#[test]
fn an_svg_path_that_cannot_be_written_is_an_error_before_the_report() {
    let run = connscope(&["analyze", &fixture("client-first.pcap"), "--svg", "/nonexistent-dir/x.svg"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "", "no report is printed");
    assert_eq!(run.stderr, "connscope: error: cannot write /nonexistent-dir/x.svg: No such file or directory (os error 2)\n");
}
