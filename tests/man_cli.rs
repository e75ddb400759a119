//! `connscope man` and `connscope man SUBCOMMAND`: connscope(1) names a page for every subcommand,
//! and each of those pages exists (golden files, the version redacted).

mod common;
use common::{connscope, golden};

/// The page with the version (which changes with every release) replaced by `VERSION`.
fn page(args: &[&str]) -> String {
    let run = connscope(args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.replace(env!("CARGO_PKG_VERSION"), "VERSION")
}

#[test]
fn test_main_page_and_analyze_page_match_golden() {
    golden("man.txt", &page(&["man"]));
    golden("man-analyze.txt", &page(&["man", "analyze"]));
}

#[test]
fn test_every_page_the_main_page_names_exists() {
    let main = page(&["man"]);
    let named: Vec<&str> = main.lines().filter_map(|l| l.strip_prefix("connscope\\-")?.strip_suffix("(1)")).collect();
    assert_eq!(named, ["analyze", "capture", "sockets", "completions", "man", "help"]);
    for sub in named {
        let text = page(&["man", sub]);
        assert!(text.contains(&format!(".TH connscope-{sub} 1 ")), "{sub}: {}", &text[..200]);
        assert!(text.contains(&format!("\\fBconnscope {sub}\\fR")), "{sub}: its synopsis");
    }
    let unknown = connscope(&["man", "analyse"]);
    assert_eq!(unknown.code, 2);
}
