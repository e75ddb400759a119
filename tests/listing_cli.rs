//! `--all`: the table lists its first 200 connections and JSON its first 10 000 unless `--all`,
//! and the footer says which cap applies. The capture is a SYN flood of 10 050 half-open
//! connections written by the test (the count a real capture of that size would need is megabytes).

mod common;
use common::connscope;
use serde_json::Value;

/// A classic pcap (Ethernet) of `n` SYNs from 10.0.0.1 to 10.0.0.2:80, each from its own source
/// port and address pair, one millisecond apart.
fn syn_flood(n: u32) -> Vec<u8> {
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    pcap.extend_from_slice(&[2, 0, 4, 0]);
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535_u32.to_le_bytes());
    pcap.extend_from_slice(&1_u32.to_le_bytes());
    for i in 0..n {
        let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
        let src = [10, 1, (i >> 8) as u8, i as u8];
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&[10, 0, 0, 2]);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        let port = 10_000 + (i % 50_000) as u16;
        frame.extend_from_slice(&port.to_be_bytes());
        frame.extend_from_slice(&80_u16.to_be_bytes());
        frame.extend_from_slice(&(1000 + i).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        let (secs, micros) = (1_700_000_000 + i / 1000, (i % 1000) * 1000);
        for field in [secs, micros, frame.len() as u32, frame.len() as u32] {
            pcap.extend_from_slice(&field.to_le_bytes());
        }
        pcap.extend_from_slice(&frame);
    }
    pcap
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn flood_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("connscope-syn-flood-{}.pcap", std::process::id()));
    std::fs::write(&path, syn_flood(10_050)).expect("temporary capture written");
    path
}

#[test]
fn test_json_lists_10000_connections_and_all_lists_every_one() {
    let path = flood_file();
    let file = path.to_str().unwrap();
    let capped: Value = serde_json::from_str(&connscope(&["analyze", file, "--format", "json"]).stdout).expect("JSON");
    assert_eq!(capped["summary"]["connections"], 10_050);
    assert_eq!(capped["connections"].as_array().unwrap().len(), 10_000);
    assert_eq!(capped["connections_omitted"], 50);
    let all: Value = serde_json::from_str(&connscope(&["analyze", file, "--format", "json", "--all"]).stdout).expect("JSON");
    assert_eq!(all["connections"].as_array().unwrap().len(), 10_050);
    assert_eq!(all["connections_omitted"], 0);
    assert_eq!(all["connections"][10_049]["id"], 10_050);

    let table = connscope(&["analyze", file]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let footer = table.stdout.lines().last().unwrap();
    assert_eq!(
        footer,
        "… 9850 more connections: the table lists the first 200 and --format json the first 10000 (--all lists every one in both; ndjson and csv stream every one)"
    );
    let table = connscope(&["analyze", file, "--all"]);
    let rows = table.stdout.lines().filter(|l| l.starts_with("│ ") && l.contains("10.0.0.2:80")).count();
    assert_eq!(rows, 10_050);
    assert!(!table.stdout.contains("more connections"));
    std::fs::remove_file(&path).ok();
}

#[test]
fn test_table_footer_below_the_json_cap_points_to_all_and_json() {
    let run = connscope(&["analyze", "tests/data/hostile/syn-flood-5000.pcap"]);
    assert_eq!(
        run.stdout.lines().last().unwrap(),
        "… 4800 more connections: the table lists the first 200 (--all lists every one; --format json, ndjson and csv have all of them)"
    );
}
