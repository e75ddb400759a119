//! `pipeline`: bytes → report. The first byte chooses the mode:
//! - even: the rest is a capture file image, written to a file in `/dev/shm` and read by
//!   `source::read_files` (classic pcap through the memory-mapped reader, anything else through libpcap);
//! - odd: the rest is a list of frames fed straight to `Pipeline::packet` (faster, reaches deeper):
//!   one byte picks the link type and `--port`, then records of a 2-byte little-endian length and the frame.
//!
//! Either way the pipeline is finished with a small `--max-connections` (so eviction runs) and the
//! report is serialised as `--format json` does.
#![no_main]

use connscope::pipeline::{NoObserver, Options, Pipeline};
use connscope::report::{SourceInfo, SourceKind};
use connscope::source::{self, RawPacket};
use connscope::wire::LinkType;
use libfuzzer_sys::fuzz_target;

fn source_info() -> SourceInfo {
    SourceInfo { kind: SourceKind::File, path: "fuzz".to_string(), filter: None, link_type: String::new(), start_ts: None, warning: None }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let port = if mode & 2 != 0 { Some(80) } else { None };
    let options = Options { port, max_connections: 8, listed_connections: 16 };
    let mut observer = NoObserver;
    let mut pipeline = Pipeline::new(options, &mut observer);
    if mode & 1 == 0 {
        let path = format!("/dev/shm/connscope-fuzz-{}.cap", std::process::id());
        std::fs::write(&path, rest).expect("write temp capture");
        let _ = source::read_files(std::slice::from_ref(&path), None, &mut |link, raw| pipeline.packet(link, raw));
        let _ = std::fs::remove_file(&path);
    } else {
        let Some((&pick, mut frames)) = rest.split_first() else { return };
        let link = LinkType::ALL[usize::from(pick) % LinkType::ALL.len()];
        let mut ts = 1_700_000_000.0;
        while frames.len() >= 2 {
            let len = usize::from(u16::from_le_bytes([frames[0], frames[1]])).min(frames.len() - 2);
            let frame = &frames[2..2 + len];
            frames = &frames[2 + len..];
            ts += 0.25;
            pipeline.packet(link, RawPacket { ts, data: frame, orig_len: len as u32 });
        }
    }
    let report = pipeline.finish(source_info(), None);
    serde_json::to_string(&report).expect("report serialises");
});
