//! The ladder and the SVG mark retransmissions and duplicate ACKs (computed from the segments'
//! relative numbers), never hide a request, a response, a FIN or an RST, and the SVG's title fits
//! its 960 px.

mod common;
use common::{connscope, golden};

#[test]
fn test_ladder_of_a_lossy_download_marks_duplicate_acks_and_retransmissions() {
    let run = connscope(&["analyze", "fixtures/loss-retransmit.pcap", "--ladder"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    golden("ladder-loss-retransmit.txt", &run.stdout);
    let marked: Vec<&str> =
        run.stdout.lines().filter(|l| l.contains(" [")).map(|l| l.split('│').nth(1).unwrap().trim_matches(['─', '◀', '▶', ' '])).collect();
    assert_eq!(
        marked,
        [
            ". seq=85 ack=2897 [dup ACK #1]",
            ". seq=85 ack=2897 [dup ACK #2]",
            ". seq=85 ack=2897 [dup ACK #3]",
            "P. seq=2897 ack=85 len=1200 [retransmission]",
            ". seq=85 ack=8193 [dup ACK #1]",
            ". seq=85 ack=8193 [dup ACK #2]",
            ". seq=8193 ack=85 len=1448 [retransmission]",
        ]
    );
}

#[test]
fn test_ladder_on_a_narrow_terminal_has_shorter_arrows_aligned_for_the_longest_label() {
    let bars = |l: &str| l.chars().enumerate().filter(|(_, c)| *c == '│').map(|(i, _)| i).collect::<Vec<_>>();
    // keepalive-probes: every arrow text fits 40 columns, what 80 columns leave for the arrows
    // (80 - 10 - 2 - 12 - 2 - 2 - 12): every line fits.
    let run = connscope(&["analyze", "fixtures/keepalive-probes.pcap", "--ladder", "--terminal-width", "80"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    golden("ladder-keepalive-probes-80.txt", &run.stdout);
    assert!(run.stdout.lines().all(|l| l.chars().count() <= 80), "{}", run.stdout);
    assert!(run.stdout.lines().skip(2).all(|l| bars(l) == [25, 66]), "{}", run.stdout);
    // loss-retransmit: ` P. seq=2897 ack=85 len=1200 [retransmission] ` needs 46 + 4 (the head, the tail and a dash): the arrows are
    // that wide so that the bars stay aligned (a line with a server state then passes 80).
    let run = connscope(&["analyze", "fixtures/loss-retransmit.pcap", "--ladder", "--terminal-width", "80"]);
    golden("ladder-loss-retransmit-80.txt", &run.stdout);
    let header = run.stdout.lines().nth(2).unwrap();
    assert_eq!(bars(header), [25, 76], "{header}");
    assert!(run.stdout.lines().skip(3).all(|l| bars(l) == [25, 76]), "{}", run.stdout);
}

#[test]
fn test_svg_marks_the_same_segments_in_red_and_dashed() {
    let path = std::env::temp_dir().join(format!("connscope-marks-{}.svg", std::process::id()));
    let run = connscope(&["analyze", "fixtures/loss-retransmit.pcap", "--svg", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = std::fs::read_to_string(&path).unwrap();
    assert_eq!(svg.matches(r##"stroke="#d62728" stroke-width="2" stroke-dasharray="6 4""##).count(), 7);
    assert_eq!(svg.matches("[retransmission]").count(), 2);
    assert_eq!(svg.matches("[dup ACK #").count(), 5);
    std::fs::remove_file(&path).ok();
}

#[test]
fn test_svg_title_lines_stay_inside_the_picture() {
    let path = std::env::temp_dir().join(format!("connscope-title-{}.svg", std::process::id()));
    let run = connscope(&["analyze", "fixtures/go-pool-overflow.pcap", "--svg", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains(r#"<text x="40" y="40" font-size="18" font-weight="bold">Connections over time</text>"#));
    let verdict: Vec<&str> = svg.lines().filter(|l| l.contains(r#"font-size="14">"#)).collect();
    assert_eq!(
        verdict,
        [
            r#"<text x="40" y="58" font-size="14">Some connections were reused: 30 requests over 26 connections; 4 carried more than one, 22 only one,</text>"#,
            r#"<text x="40" y="76" font-size="14">and the client closed each one right after its response.</text>"#,
        ]
    );
    // 100 characters at 14 px (DejaVu Sans averages under 8 px a character) fit the 880 px between the margins.
    for line in verdict {
        let text = line.split('>').nth(1).unwrap().trim_end_matches("</text");
        assert!(text.chars().count() <= 100, "{text}");
    }
    std::fs::remove_file(&path).ok();
}
