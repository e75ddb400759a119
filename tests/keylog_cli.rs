//! `--keylog` at the command line: a missing key log, lines that do not parse, the secrets of a
//! pcapng Decryption Secrets Block, and the table's "decrypted N of M".

mod common;
use common::*;

#[test]
fn test_a_missing_key_log_is_exit_2_with_one_line() {
    let run = connscope(&["analyze", "fixtures/https-keylog-h1.pcap", "--keylog", "fixtures/no-such.keys"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("connscope: error: cannot read fixtures/no-such.keys"), "{}", run.stderr);
}

#[test]
fn test_key_log_lines_that_do_not_parse_are_warnings_naming_their_line() {
    let path = std::env::temp_dir().join(format!("connscope-bad-keys-{}.txt", std::process::id()));
    let good = std::fs::read_to_string("fixtures/https-keylog-partial.keys").expect("key log");
    std::fs::write(&path, format!("CLIENT_RANDOM zz 11\n# a comment\n{good}BOGUS a b\n")).expect("temp key log");
    let run = connscope(&["analyze", "fixtures/https-keylog-h1.pcap", "--keylog", path.to_str().expect("path"), "--format", "json"]);
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bogus_line = 3 + good.lines().count();
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("warning: key log")).collect();
    assert_eq!(warnings.len(), 2, "{}", run.stderr);
    assert!(warnings[0].contains("line 1: the client random is not 64 hex digits"), "{}", warnings[0]);
    assert!(warnings[1].contains(&format!("line {bogus_line}: unknown label")), "{}", warnings[1]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["summary"]["tls_decrypted"], 1, "the good lines still decrypt");
}

#[test]
fn test_the_table_says_how_many_tls_connections_were_decrypted() {
    let run = connscope(&["analyze", "fixtures/https-keylog-partial.pcap", "--keylog", "fixtures/https-keylog-partial.keys"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("decrypted 1 of 2 TLS connections"), "{}", run.stdout);
    let run = connscope(&["analyze", "fixtures/https-keylog-h1.pcap"]);
    assert!(!run.stdout.contains("decrypted"), "without keys nothing is decrypted: {}", run.stdout);
}

#[test]
fn test_secrets_in_a_pcapng_decryption_secrets_block_need_no_key_log() {
    let report = analyze_json(&fixtures_dir().join("https-keylog-dsb.pcapng"), &[]);
    assert_eq!(report["summary"]["tls_decrypted"], 2);
    assert_eq!(report["summary"]["http_requests"], 5);
}
