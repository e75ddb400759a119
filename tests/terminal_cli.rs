//! The report on a terminal: tables fitted to 80, 100, 120 and 200 columns (golden files), prose
//! wrapped at word boundaries, and a pipe that keeps the full table.

mod common;
use common::{connscope, golden};

/// Display width of a line (the report holds no wide characters).
fn width(line: &str) -> usize {
    line.chars().count()
}

#[test]
fn test_table_fits_80_100_120_and_200_columns() {
    for columns in [80, 100, 120, 200] {
        let run = connscope(&["analyze", "fixtures/go-pool-overflow.pcap", "--terminal-width", &columns.to_string()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        golden(&format!("terminal-go-pool-overflow-{columns}.txt"), &run.stdout);
        for line in run.stdout.lines() {
            assert!(width(line) <= columns, "{columns} columns: {line}");
        }
    }
}

#[test]
fn test_several_servers_and_processes_free_table_fits_80_and_120_columns() {
    for columns in [80, 120] {
        let run = connscope(&[
            "analyze",
            "fixtures/ipv6.pcap",
            "fixtures/https-new-client.pcap",
            "fixtures/keepalive-probes.pcap",
            "--terminal-width",
            &columns.to_string(),
            "--explain",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        golden(&format!("terminal-mixed-explain-{columns}.txt"), &run.stdout);
        for line in run.stdout.lines() {
            assert!(width(line) <= columns, "{columns} columns: {line}");
        }
    }
}

#[test]
fn test_every_fixture_fits_80_columns_without_a_split_word() {
    for expect in common::all_expectations() {
        let pcap = expect.pcap.to_str().expect("UTF-8 path").to_string();
        let run = connscope(&["analyze", &pcap, "--terminal-width", "80", "--explain"]);
        assert_eq!(run.code, 0, "{}: {}", expect.name, run.stderr);
        for line in run.stdout.lines() {
            assert!(width(line) <= 80, "{}: {line}", expect.name);
        }
        // The full table's cells all appear whole in the fitted one or in its notes.
        let full = connscope(&["analyze", &pcap]);
        for state in ["TIME_WAIT", "CLOSE_WAIT", "FIN_WAIT_2", "ESTABLISHED"] {
            if full.stdout.contains(&format!(" {state} ")) {
                assert!(run.stdout.contains(state), "{}: {state} is in the legend or the table", expect.name);
            }
        }
    }
}

#[test]
fn test_a_pipe_keeps_every_column_and_wide_does_too_on_a_terminal() {
    let piped = connscope(&["analyze", "fixtures/go-pool-overflow.pcap"]);
    assert!(piped.stdout.contains("│ #  ┆ client          ┆ server          ┆ start ┆ duration ┆ handshake ┆"), "{}", piped.stdout);
    assert!(!piped.stdout.contains("not shown for lack of width"));
    let wide = connscope(&["analyze", "fixtures/go-pool-overflow.pcap", "--terminal-width", "80", "--wide"]);
    assert_eq!(wide.stdout, piped.stdout, "--wide is the pipe's layout");
}
