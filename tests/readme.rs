//! The README's claims that can be checked without a network: its sample report is what connscope
//! prints for the capture it names.

mod common;
use common::connscope;

#[test]
fn test_readme_sample_report_is_what_connscope_prints_at_100_columns() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("### What the report says\n\n```\n").expect("the sample's heading") + "### What the report says\n\n```\n".len();
    let sample = &readme[start..start + readme[start..].find("```\n").expect("the sample's end")];
    let run = connscope(&["analyze", "fixtures/python-http-server-curl.pcap", "--port", "18107", "--terminal-width", "100"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(sample, run.stdout);
    assert!(readme.contains("`connscope analyze fixtures/python-http-server-curl.pcap --port 18107`"));
}
