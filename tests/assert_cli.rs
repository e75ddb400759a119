//! `--assert`: every operator, a failing assertion (exit 1), malformed and misspelt ones (exit 2).

mod common;
use common::{connscope, fixture};

/// Runs one assertion on the server-first fixture (1 connection, 1 handshake, server FIN first).
fn check(expr: &str) -> common::Run {
    connscope(&["analyze", &fixture("server-first.pcap"), "--format", "json", "--assert", expr])
}

#[test]
fn test_every_operator_passes_and_fails_on_the_actual_value() {
    let cases = [
        ("handshakes == 1", true),
        ("handshakes == 2", false),
        ("handshakes != 2", true),
        ("handshakes != 1", false),
        ("handshakes < 2", true),
        ("handshakes < 1", false),
        ("handshakes <= 1", true),
        ("handshakes <= 0", false),
        ("handshakes > 0", true),
        ("handshakes > 1", false),
        ("handshakes >= 1", true),
        ("handshakes >= 2", false),
    ];
    for (expr, holds) in cases {
        let run = check(expr);
        let word = if holds { "PASS" } else { "FAIL" };
        assert_eq!(run.stderr, format!("{word} {expr} (actual 1)\n"), "{expr}");
        assert_eq!(run.code, if holds { 0 } else { 1 }, "{expr}");
    }
}

#[test]
fn test_nested_fields_and_field_operands() {
    let run = connscope(&[
        "analyze",
        &fixture("server-first.pcap"),
        "--format",
        "json",
        "--assert",
        "fin_first.server == 1",
        "--assert",
        "fin_first.client == 0",
        "--assert",
        "server_states.TIME_WAIT == 1",
        "--assert",
        "client_states.CLOSED == 1",
        "--assert",
        "rst_connections == 0",
        "--assert",
        "handshakes_completed == connections",
    ]);
    assert_eq!(
        run.stderr,
        "PASS fin_first.server == 1 (actual 1)\n\
        PASS fin_first.client == 0 (actual 0)\n\
        PASS server_states.TIME_WAIT == 1 (actual 1)\n\
        PASS client_states.CLOSED == 1 (actual 1)\n\
        PASS rst_connections == 0 (actual 0)\n\
        PASS handshakes_completed == connections (actual 1), connections = 1\n"
    );
    assert_eq!(run.code, 0);
}

#[test]
fn test_one_failing_assertion_among_passing_ones_exits_1() {
    let run = connscope(&[
        "analyze",
        &fixture("client-first.pcap"),
        "--format",
        "csv",
        "--assert",
        "keepalive_probes == 2",
        "--assert",
        "fin_first.client == 0",
        "--assert",
        "client_states.TIME_WAIT <= 5",
    ]);
    assert_eq!(
        run.stderr,
        "PASS keepalive_probes == 2 (actual 2)\n\
        FAIL fin_first.client == 0 (actual 1)\n\
        PASS client_states.TIME_WAIT <= 5 (actual 1)\n"
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("id,client,"), "the report is still printed");
}

#[test]
fn test_misspelt_field_is_a_usage_error_listing_the_valid_names() {
    let run = check("handshake == 1");
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "no report on a usage error");
    assert!(
        run.stderr.starts_with("connscope: error: --assert 'handshake == 1': unknown field `handshake`; valid fields: "),
        "{}",
        run.stderr
    );
    for name in ["handshakes", "fin_first.client", "client_states.TIME_WAIT", "rst_connections", "keepalive_probes"] {
        assert!(run.stderr.contains(name), "{name} listed in {}", run.stderr);
    }
}

#[test]
fn test_misspelt_right_hand_field_and_malformed_expressions_exit_2() {
    for expr in ["handshakes == conections", "handshakes = 1", "== 1", "handshakes >="] {
        let run = check(expr);
        assert_eq!(run.code, 2, "{expr}: {}", run.stderr);
        assert!(run.stderr.starts_with(&format!("connscope: error: --assert '{expr}': ")), "{}", run.stderr);
    }
}

#[test]
fn test_unreadable_input_exits_2() {
    let run = connscope(&["analyze", "tests/data/no-such.pcap", "--assert", "handshakes == 1"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("connscope: error: cannot read tests/data/no-such.pcap"), "{}", run.stderr);
}

#[test]
fn an_assertion_on_a_count_hidden_by_tls_fails_with_actual_null() {
    // fixtures/https-shared-client.pcap: one TLS connection, so HTTP requests are null, not 0.
    let run = connscope(&[
        "analyze",
        "fixtures/https-shared-client.pcap",
        "--format",
        "json",
        "--assert",
        "http_requests >= 1",
        "--assert",
        "tls_client_hellos == 1",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr, "FAIL http_requests >= 1 (actual null)\nPASS tls_client_hellos == 1 (actual 1)\n");
}
