//! The `-w` file of a live capture: a classic pcap file written with explicit error handling.
//!
//! libpcap's own writer (`pcap_dump`) goes through stdio and reports no error, so a full disk would
//! go unnoticed and could leave half a packet at the end of the file. This writer buffers records
//! itself, writes them with `write(2)`, and remembers where each record ends: when a write fails
//! (the disk is full, the file system went away), it truncates the file back to the end of the
//! last record written whole, and stops writing. The file then holds a prefix of the capture that
//! every reader (tcpdump, tshark, `connscope analyze`) reads to its end without a warning.

use std::fs::File;
use std::io::{ErrorKind, Write};

/// Records are written out once this many bytes are buffered (and at every [`Savefile::flush`]).
const FLUSH_AT: usize = 256 * 1024;

/// pcap magic number for microsecond timestamps, written in the host's byte order as libpcap does.
const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;

/// A pcap file being written; see the module documentation.
pub struct Savefile {
    file: File,
    path: String,
    /// Records not yet written to the file.
    buffer: Vec<u8>,
    /// Where each buffered record ends in `buffer`.
    record_ends: Vec<usize>,
    /// Records in the file, each whole.
    saved: u64,
    /// Bytes in the file (header and whole records).
    length: u64,
    /// Set by the first failed write; nothing is written after it.
    failure: Option<String>,
}

impl Savefile {
    /// Creates (or truncates) `path` and writes the pcap file header: link type `dlt`, `snaplen`.
    pub fn create(path: &str, dlt: i32, snaplen: i32) -> std::io::Result<Savefile> {
        let mut file = File::create(path)?;
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC_MICROSECONDS.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes()); // version 2.4
        header.extend_from_slice(&4u16.to_ne_bytes());
        header.extend_from_slice(&0i32.to_ne_bytes()); // time zone offset: always 0 (UTC)
        header.extend_from_slice(&0u32.to_ne_bytes()); // timestamp accuracy: always 0
        header.extend_from_slice(&snaplen.to_ne_bytes());
        header.extend_from_slice(&dlt.to_ne_bytes());
        file.write_all(&header)?;
        Ok(Savefile {
            file,
            path: path.to_string(),
            buffer: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            record_ends: Vec::new(),
            saved: 0,
            length: header.len() as u64,
            failure: None,
        })
    }

    /// Appends one packet record (`data` as captured, `orig_len` its length on the wire). Does
    /// nothing once a write has failed.
    pub fn write(&mut self, ts_sec: u32, ts_usec: u32, data: &[u8], orig_len: u32) {
        if self.failure.is_some() {
            return;
        }
        // The capture's snaplen (at most 262144) bounds `data`: its length fits in a u32.
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        for field in [ts_sec, ts_usec, caplen, orig_len] {
            self.buffer.extend_from_slice(&field.to_ne_bytes());
        }
        self.buffer.extend_from_slice(data);
        self.record_ends.push(self.buffer.len());
        if self.buffer.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Writes the buffered records to the file. On failure the file is cut back to its last whole
    /// record and the savefile stops: [`Savefile::failure`] says why.
    pub fn flush(&mut self) {
        if self.failure.is_some() || self.buffer.is_empty() {
            return;
        }
        let mut written = 0;
        let error = loop {
            if written == self.buffer.len() {
                break None;
            }
            match self.file.write(&self.buffer[written..]) {
                Ok(0) => break Some(std::io::Error::from(ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        // The records written whole; with no error, all of them.
        let whole = self.record_ends.iter().take_while(|&&end| end <= written).count();
        let whole_bytes = whole.checked_sub(1).map_or(0, |last| self.record_ends[last]);
        self.saved += whole as u64;
        self.length += whole_bytes as u64;
        self.buffer.clear();
        self.record_ends.clear();
        if let Some(e) = error {
            let cut = if written > whole_bytes {
                match self.file.set_len(self.length) {
                    Ok(()) => String::new(),
                    Err(t) => format!(" (and cutting its partial last packet failed: {t}; readers will warn about it)"),
                }
            } else {
                String::new()
            };
            self.failure = Some(format!(
                "writing {}: {e}; the file holds the first {} packets{cut}, and nothing more is saved",
                self.path, self.saved
            ));
        }
    }

    /// Packets in the file, each whole.
    pub fn saved(&self) -> u64 {
        self.saved
    }

    /// Why writing stopped, once a write failed.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

impl Drop for Savefile {
    /// Writes out what is still buffered, on every way out (an error ending the capture included).
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> String {
        std::env::temp_dir().join(format!("connscope-savefile-{name}-{}", std::process::id())).to_string_lossy().into_owned()
    }

    #[test]
    fn records_follow_the_header_and_are_counted() {
        let path = scratch("records");
        let mut file = Savefile::create(&path, 1, 65535).expect("create");
        file.write(10, 20, &[1, 2, 3], 60);
        file.write(11, 0, &[4; 5], 5);
        file.flush();
        assert_eq!((file.saved(), file.failure()), (2, None));
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 5);
        assert_eq!(bytes[..4], MAGIC_MICROSECONDS.to_ne_bytes());
        assert_eq!(bytes[20..24], 1i32.to_ne_bytes());
        assert_eq!(bytes[24..28], 10u32.to_ne_bytes());
        assert_eq!(bytes[36..40], 60u32.to_ne_bytes());
        assert_eq!(bytes[40..43], [1, 2, 3]);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_failed_write_stops_the_file_at_its_last_whole_record() {
        // /dev/full accepts the header's open but fails every write with ENOSPC.
        let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
        let mut savefile =
            Savefile { file, path: "/dev/full".into(), buffer: Vec::new(), record_ends: Vec::new(), saved: 0, length: 24, failure: None };
        savefile.write(1, 0, &[0; 10], 10);
        savefile.flush();
        let failure = savefile.failure().expect("the write failed").to_string();
        assert!(failure.starts_with("writing /dev/full: No space left on device"), "{failure}");
        assert!(failure.contains("the first 0 packets"), "{failure}");
        savefile.write(2, 0, &[0; 10], 10);
        assert!(savefile.buffer.is_empty(), "nothing is buffered after a failure");
    }
}
