//! Compressed captures are read by their magic bytes, from files and standard input: a gzip, zstd
//! or xz copy of a fixture (made here with the same crates connscope reads them with) gives the
//! same report as the plain file; damaged compressed data is a one-line error, exit status 2.

mod common;
use common::bin;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FIXTURES: [&str; 3] = ["fixtures/go-keepalive-reuse.pcap", "fixtures/pcapng.pcapng", "fixtures/h2c-multi.pcap"];

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(data, 3).unwrap(),
        "xz" => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => unreachable!(),
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("connscope-compressed-{}-{name}", std::process::id()))
}

/// `connscope analyze FILE ARGS` from the crate root; stdin from `input` when given.
fn analyze(file: &str, args: &[&str], input: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .arg("analyze")
        .arg(file)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("connscope runs");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || stdin.write_all(&bytes));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn test_gzip_zstd_and_xz_copies_give_the_plain_files_report() {
    for fixture in FIXTURES {
        let plain = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture)).unwrap();
        let (code, want_json, _) = analyze(fixture, &["--format", "json"], None);
        assert_eq!(code, 0);
        let (_, want_table, _) = analyze(fixture, &[], None);
        for kind in ["gz", "zst", "xz"] {
            let path = temp(&format!("{}.{kind}", fixture.replace('/', "-")));
            let packed = compress(kind, &plain);
            std::fs::write(&path, &packed).unwrap();
            let file = path.to_str().unwrap();
            let (code, json, stderr) = analyze(file, &["--format", "json"], None);
            assert_eq!(code, 0, "{fixture}.{kind}: {stderr}");
            assert_eq!(json.replace(file, fixture), want_json, "{fixture}.{kind}");
            let (_, table, _) = analyze(file, &[], None);
            assert_eq!(table.replace(file, fixture), want_table, "{fixture}.{kind}");
            // Standard input, and one thread as well as several.
            let (code, json, stderr) = analyze("-", &["--format", "json"], Some(&packed));
            assert_eq!(code, 0, "{fixture}.{kind} on stdin: {stderr}");
            assert_eq!(json.replace("\"path\": \"-\"", &format!("\"path\": \"{fixture}\"")), want_json, "{fixture}.{kind} on stdin");
            let (_, json, _) = analyze(file, &["--format", "json", "--threads", "1"], None);
            assert_eq!(json.replace(file, fixture), want_json);
            std::fs::remove_file(&path).ok();
        }
    }
}

#[test]
fn test_cut_off_gzip_is_a_one_line_error_from_a_file_and_from_stdin() {
    let plain = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURES[0])).unwrap();
    let packed = compress("gz", &plain);
    let cut = &packed[..packed.len() / 2];
    let path = temp("cut.pcap.gz");
    std::fs::write(&path, cut).unwrap();
    let file = path.to_str().unwrap();
    let (code, stdout, stderr) = analyze(file, &[], None);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        format!("connscope: error: cannot read {file}: the gzip data is corrupt or cut off (incomplete deflate stream); check it with `gzip -t`\n")
    );
    let (code, _, stderr) = analyze("-", &[], Some(cut));
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "connscope: error: cannot read -: the gzip data is corrupt or cut off (incomplete deflate stream); check it with `gzip -t`\n"
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn test_compressed_text_is_not_a_capture() {
    let path = temp("text.gz");
    std::fs::write(&path, compress("gz", b"hello\n")).unwrap();
    let file = path.to_str().unwrap();
    let (code, _, stderr) = analyze(file, &[], None);
    assert_eq!(code, 2);
    assert_eq!(stderr, format!("connscope: error: cannot read {file}: the gzip data holds no pcap or pcapng capture\n"));
    std::fs::remove_file(&path).ok();
}
