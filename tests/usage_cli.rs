//! Usage errors from the command line parser are one line with the `connscope:` prefix, like
//! connscope's own errors, name the help to read, and exit with status 2 (golden file).

mod common;
use common::{connscope, golden};

#[test]
fn test_usage_errors_are_one_line_with_the_help_to_read() {
    let cases: [&[&str]; 8] = [
        &["analyze", "--bogus", "x.pcap"],
        &["analyze"],
        &["analyze", "x.pcap", "--port", "0"],
        &["analyze", "x.pcap", "--format", "xml"],
        &["capture", "--duration", "abc"],
        &["frob"],
        &["man", "analyse"],
        &["sockets", "--bogus"],
    ];
    let mut transcript = String::new();
    for args in cases {
        let run = connscope(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("connscope: error: "), "{args:?}: {}", run.stderr);
        transcript.push_str(&format!("$ connscope {}\n{}", args.join(" "), run.stderr));
    }
    golden("usage-errors.txt", &transcript);
}

#[test]
fn test_help_and_version_are_not_errors() {
    let help = connscope(&["analyze", "--help"]);
    assert_eq!((help.code, help.stderr.as_str()), (0, ""));
    assert!(help.stdout.starts_with("Analyse saved captures"));
    let version = connscope(&["--version"]);
    assert_eq!(version.code, 0);
    assert_eq!(version.stdout, format!("connscope {}\n", env!("CARGO_PKG_VERSION")));
}
