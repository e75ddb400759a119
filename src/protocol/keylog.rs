//! TLS secrets in the NSS key log format (`SSLKEYLOGFILE`, `--keylog`, pcapng Decryption Secrets
//! Blocks), keyed by the ClientHello random of the connection they belong to.
//!
//! Each line is `LABEL <client random, 64 hex digits> <secret, hex>`; `#` starts a comment. The
//! labels read are `CLIENT_RANDOM` (the TLS 1.2 master secret) and the TLS 1.3 handshake and first
//! application traffic secrets; other labels (`EXPORTER_SECRET`, `CLIENT_EARLY_TRAFFIC_SECRET`,
//! `RSA`) are valid lines that decryption does not need.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

/// Longest secret in a key log: 48 bytes (the TLS 1.2 master secret, a SHA-384 TLS 1.3 secret).
pub const MAX_SECRET: usize = 48;
/// Most TLS 1.2 sessions remembered for resumption (by session ID or ticket).
const MAX_REMEMBERED_SESSIONS: usize = 100_000;

/// A secret of 32 or 48 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; MAX_SECRET],
    len: u8,
}

impl Secret {
    /// A secret from its bytes; `None` when longer than [`MAX_SECRET`] or empty.
    pub fn new(bytes: &[u8]) -> Option<Secret> {
        if bytes.is_empty() || bytes.len() > MAX_SECRET {
            return None;
        }
        let mut secret = Secret { bytes: [0; MAX_SECRET], len: bytes.len() as u8 };
        secret.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(secret)
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// The secrets logged for one connection (one client random).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSecrets {
    /// TLS 1.2 and older: `CLIENT_RANDOM`.
    pub master: Option<Secret>,
    pub client_handshake: Option<Secret>,
    pub server_handshake: Option<Secret>,
    pub client_traffic: Option<Secret>,
    pub server_traffic: Option<Secret>,
}

/// A key log line that was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogWarning {
    /// 1-based line number.
    pub line: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for KeyLogWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A key log file still being written (by the command `capture` runs): read again, from where the
/// last read stopped, when a connection's secrets are missing.
#[derive(Debug)]
struct LiveKeyLog {
    path: std::path::PathBuf,
    /// Bytes of the file read so far (whole lines only).
    read: u64,
}

/// Most bytes of a live key log read: 64 MiB, about 200 000 connections.
const MAX_LIVE_KEY_LOG: u64 = 64 << 20;

/// All the TLS secrets of an analysis, shared by its connections.
#[derive(Debug, Default)]
pub struct TlsKeys {
    by_client_random: Mutex<HashMap<[u8; 32], ConnectionSecrets>>,
    live: Option<Mutex<LiveKeyLog>>,
    /// TLS 1.2 master secrets by session ID or session ticket, learnt from the full handshakes
    /// decrypted so far: a resumed session has no key log line of its own (Go writes none).
    sessions: Mutex<HashMap<Vec<u8>, Secret>>,
}

impl TlsKeys {
    /// No keys yet.
    pub fn new() -> TlsKeys {
        TlsKeys::default()
    }

    /// Secrets that keep coming: the key log at `path` (which a running program appends to) is
    /// read when a connection's secrets are missing, from where the last read stopped.
    pub fn live(path: &std::path::Path) -> TlsKeys {
        TlsKeys { live: Some(Mutex::new(LiveKeyLog { path: path.to_path_buf(), read: 0 })), ..TlsKeys::default() }
    }

    /// Adds the lines of a key log; returns the lines that did not parse.
    pub fn add_key_log(&mut self, text: &[u8]) -> Vec<KeyLogWarning> {
        let Ok(secrets) = self.by_client_random.get_mut() else { return Vec::new() };
        add_lines(secrets, text)
    }

    /// Connections with at least one secret.
    pub fn len(&self) -> usize {
        self.by_client_random.lock().map_or(0, |s| s.len())
    }

    /// No secrets, and none to come.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.live.is_none()
    }

    /// Does decryption depend on the order connections are read in? A TLS 1.2 session resumed
    /// without a key log line of its own takes the master secret of the earlier connection that
    /// issued its session ID or ticket: with any TLS 1.2 master secret, connections must be read in
    /// capture order (one thread) for the same report every time.
    pub fn needs_capture_order(&self) -> bool {
        self.by_client_random.lock().is_ok_and(|s| s.values().any(|c| c.master.is_some()))
    }

    /// Secrets may still come (a live key log).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// The secrets logged for the connection whose ClientHello had `client_random`.
    pub fn secrets(&self, client_random: &[u8; 32]) -> Option<ConnectionSecrets> {
        self.by_client_random.lock().ok()?.get(client_random).copied()
    }

    /// Reads the lines appended to the live key log since the last read (whole lines); true when
    /// there were any. Lines that do not parse are skipped (the program writing it owns it).
    pub fn refresh(&self) -> bool {
        let Some(live) = &self.live else { return false };
        let Ok(mut live) = live.lock() else { return false };
        let Ok(mut file) = std::fs::File::open(&live.path) else { return false };
        let len = file.metadata().map_or(0, |m| m.len()).min(MAX_LIVE_KEY_LOG);
        if len <= live.read || file.seek(SeekFrom::Start(live.read)).is_err() {
            return false;
        }
        let mut text = Vec::new();
        if file.take(len - live.read).read_to_end(&mut text).is_err() {
            return false;
        }
        let Some(end) = text.iter().rposition(|b| *b == b'\n') else { return false };
        live.read += end as u64 + 1;
        let Ok(mut secrets) = self.by_client_random.lock() else { return false };
        add_lines(&mut secrets, &text[..=end]);
        true
    }

    /// Remembers the master secret of a TLS 1.2 session under its session ID or ticket.
    pub fn remember_session(&self, id: &[u8], master: Secret) {
        if id.is_empty() {
            return;
        }
        let Ok(mut sessions) = self.sessions.lock() else { return };
        if sessions.len() < MAX_REMEMBERED_SESSIONS {
            sessions.insert(id.to_vec(), master);
        }
    }

    /// The master secret of a TLS 1.2 session remembered under `id`.
    pub fn session(&self, id: &[u8]) -> Option<Secret> {
        self.sessions.lock().ok()?.get(id).copied()
    }
}

/// Adds the lines of a key log to `secrets`; returns the lines that did not parse.
fn add_lines(secrets: &mut HashMap<[u8; 32], ConnectionSecrets>, text: &[u8]) -> Vec<KeyLogWarning> {
    let mut warnings = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if let Err(reason) = add_line(secrets, line) {
            warnings.push(KeyLogWarning { line: i + 1, reason });
        }
    }
    warnings
}

/// Adds one key log line to `secrets`.
fn add_line(secrets: &mut HashMap<[u8; 32], ConnectionSecrets>, line: &[u8]) -> Result<(), &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") {
        return Ok(());
    }
    let mut fields = line.split(|b| *b == b' ' || *b == b'\t').filter(|f| !f.is_empty());
    let (Some(label), Some(random), Some(secret), None) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
        return Err("expected LABEL CLIENT_RANDOM SECRET");
    };
    let known = matches!(
        label,
        b"CLIENT_RANDOM"
            | b"CLIENT_HANDSHAKE_TRAFFIC_SECRET"
            | b"SERVER_HANDSHAKE_TRAFFIC_SECRET"
            | b"CLIENT_TRAFFIC_SECRET_0"
            | b"SERVER_TRAFFIC_SECRET_0"
    );
    let other = matches!(label, b"EXPORTER_SECRET" | b"CLIENT_EARLY_TRAFFIC_SECRET" | b"EARLY_EXPORTER_SECRET" | b"RSA");
    if !known && !other {
        return Err("unknown label");
    }
    let mut client_random = [0; 32];
    if random.len() != 64 || !unhex(random, &mut client_random) {
        return Err("the client random is not 64 hex digits");
    }
    let mut bytes = [0; MAX_SECRET];
    let len = secret.len() / 2;
    if secret.len() % 2 != 0 || len > MAX_SECRET || len == 0 || !unhex(secret, &mut bytes[..len]) {
        return Err("the secret is not 1 to 48 bytes of hex");
    }
    if !known {
        return Ok(());
    }
    let secret = Secret::new(&bytes[..len]);
    if label == b"CLIENT_RANDOM" && len != 48 {
        return Err("a master secret is 48 bytes (96 hex digits)");
    }
    let entry = secrets.entry(client_random).or_default();
    let slot = match label {
        b"CLIENT_RANDOM" => &mut entry.master,
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.client_handshake,
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.server_handshake,
        b"CLIENT_TRAFFIC_SECRET_0" => &mut entry.client_traffic,
        _ => &mut entry.server_traffic,
    };
    *slot = secret;
    Ok(())
}

/// Decodes hex digits into `out` (exactly `2 * out.len()` digits); false on a non-digit.
fn unhex(digits: &[u8], out: &mut [u8]) -> bool {
    if digits.len() != 2 * out.len() {
        return false;
    }
    let nibble = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else { return false };
        *byte = high << 4 | low;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn test_nss_key_log_lines_are_read_by_client_random_and_bad_lines_are_named() {
        let master = "11".repeat(48);
        let secret = "22".repeat(32);
        let text = format!(
            "# SSL/TLS secrets log file\nCLIENT_RANDOM {RANDOM} {master}\r\nSERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM} {secret}\n\
             EXPORTER_SECRET {RANDOM} {secret}\nCLIENT_RANDOM nothex {master}\nCLIENT_TRAFFIC_SECRET_0 {RANDOM}\nBOGUS {RANDOM} {secret}\n\n"
        );
        let mut keys = TlsKeys::new();
        let warnings = keys.add_key_log(text.as_bytes());
        let lines: Vec<_> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [5, 6, 7]);
        assert_eq!(warnings[0].to_string(), "line 5: the client random is not 64 hex digits");
        let mut random = [0; 32];
        assert!(unhex(RANDOM.as_bytes(), &mut random));
        let secrets = keys.secrets(&random).expect("secrets of the connection");
        assert_eq!(secrets.master.map(|s| s.bytes().to_vec()), Some(vec![0x11; 48]));
        assert_eq!(secrets.server_handshake.map(|s| s.bytes().to_vec()), Some(vec![0x22; 32]));
        assert_eq!(secrets.client_handshake, None);
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn test_a_short_master_secret_is_a_warning() {
        let mut keys = TlsKeys::new();
        let warnings = keys.add_key_log(format!("CLIENT_RANDOM {RANDOM} {}", "ab".repeat(32)).as_bytes());
        assert_eq!(warnings, [KeyLogWarning { line: 1, reason: "a master secret is 48 bytes (96 hex digits)" }]);
        assert!(keys.is_empty());
    }

    #[test]
    fn test_sessions_are_remembered_by_id() {
        let keys = TlsKeys::new();
        let master = Secret::new(&[7; 48]).expect("48 bytes");
        keys.remember_session(&[1, 2, 3], master);
        keys.remember_session(&[], master);
        assert_eq!(keys.session(&[1, 2, 3]), Some(master));
        assert_eq!(keys.session(&[]), None);
    }
}
