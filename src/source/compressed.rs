//! Compressed captures (`.pcap.gz`, `.pcapng.zst`, `.pcap.xz`, …), recognised by their magic bytes
//! whatever their name, in files and on standard input.
//!
//! A compressed file is decompressed once into an unlinked temporary file in `$TMPDIR` (the disk
//! space of the decompressed capture; memory stays as small as for a plain file, whose pages go back
//! to the kernel as they are read) and then read as a plain file, memory-mapped. Compressed
//! standard input is decompressed as it arrives, by a thread that feeds libpcap through a pipe, so
//! `ssh host 'tcpdump -w - | gzip' | connscope analyze -` streams.

use std::io::{Read, Write};

/// A compression format, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compression {
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    /// The format whose magic bytes `head` starts with, if any.
    pub(super) fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }

    /// A reader of the decompressed bytes of `input` (concatenated members and frames included, as
    /// `zcat`, `zstdcat` and `xzcat` read them).
    fn decoder<'r>(self, input: impl Read + 'r) -> std::io::Result<Box<dyn Read + 'r>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(input)),
        })
    }

    /// Copies the decompressed `input` to `output`; the error says which format is damaged.
    fn copy(self, input: impl Read, output: &mut impl Write) -> Result<u64, String> {
        let mut decoder = self.decoder(input).map_err(|e| self.damaged(&e))?;
        std::io::copy(&mut decoder, output).map_err(|e| self.damaged(&e))
    }

    fn damaged(self, e: &std::io::Error) -> String {
        format!("the {} data is corrupt or cut off ({e}); check it with `{} -t`", self.name(), self.name())
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads the first bytes of `input` (up to `n`, fewer at its end).
pub(super) fn head(input: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    input.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Decompresses `file` (of format `compression`) into a new unlinked temporary file, returned
/// rewound; the error is one line.
pub(super) fn decompress_to_temporary(compression: Compression, file: std::fs::File) -> Result<std::fs::File, String> {
    let mut temporary = temporary_file().map_err(|e| {
        format!("cannot make a temporary file for the decompressed capture in {} ({e}); set TMPDIR", std::env::temp_dir().display())
    })?;
    let mut output = std::io::BufWriter::with_capacity(1 << 20, &mut temporary);
    compression.copy(std::io::BufReader::with_capacity(1 << 20, file), &mut output)?;
    output.flush().map_err(|e| format!("cannot write the decompressed capture to {} ({e})", std::env::temp_dir().display()))?;
    drop(output);
    Ok(temporary)
}

/// A new file in the temporary directory, already unlinked: it goes away when closed.
fn temporary_file() -> std::io::Result<std::fs::File> {
    let dir = std::env::temp_dir();
    for attempt in 0..100u32 {
        let path = dir.join(format!(".connscope-{}-{attempt}.pcap", std::process::id()));
        match std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

/// Standard input made readable by libpcap whatever it holds: a pipe fed by a thread that passes
/// the bytes on, decompressed when they are compressed.
pub(super) struct StdinRelay {
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl StdinRelay {
    /// Starts the relay: the pipe's read end, for libpcap, and the relay.
    pub(super) fn start() -> std::io::Result<(std::os::fd::OwnedFd, StdinRelay)> {
        let (read, write) = pipe()?;
        let thread = std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let first = head(&mut stdin, 6).map_err(|e| format!("cannot read standard input ({e})"))?;
            let input = std::io::Cursor::new(first.clone()).chain(stdin);
            let mut output = write;
            let copied = match Compression::sniff(&first) {
                Some(compression) => compression.copy(input, &mut output).map(drop),
                None => std::io::copy(&mut { input }, &mut output).map(drop).map_err(|e| format!("cannot read standard input ({e})")),
            };
            // The reader stopping early (a damaged capture) closes the pipe: not the relay's error.
            match copied {
                Err(e) if e.contains("Broken pipe") => Ok(()),
                other => other,
            }
        });
        Ok((read, StdinRelay { thread }))
    }

    /// The relay's error, if the input could not be read or decompressed; called once libpcap has
    /// closed the pipe. A relay still waiting for input that no longer matters (libpcap stopped at
    /// damage) is left behind after a second.
    pub(super) fn finish(self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !self.thread.is_finished() {
            if std::time::Instant::now() > deadline {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.thread.join().unwrap_or_else(|_| Err("the standard input relay stopped".to_string()))
    }
}

/// A pipe: its read end and its write end.
fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two new descriptors into `fds`, which are then owned here alone.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and nothing else holds them.
    Ok(unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sniff_knows_gzip_zstd_and_xz_magic_and_nothing_else() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Some(Compression::Gzip));
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Compression::Zstd));
        assert_eq!(Compression::sniff(b"\xfd7zXZ\0"), Some(Compression::Xz));
        assert_eq!(Compression::sniff(&[0xd4, 0xc3, 0xb2, 0xa1]), None, "a pcap");
        assert_eq!(Compression::sniff(&[0x1f]), None, "too short to tell");
    }

    #[test]
    fn test_corrupt_gzip_is_said_to_be_corrupt() {
        let mut out = Vec::new();
        let err = Compression::Gzip.copy(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff][..], &mut out).unwrap_err();
        assert!(err.starts_with("the gzip data is corrupt or cut off ("), "{err}");
    }
}
