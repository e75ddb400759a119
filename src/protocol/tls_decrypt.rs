//! Decryption of one TLS connection's records with its logged secrets: which key protects which
//! record (TLS 1.3 handshake then application traffic keys, switched after each side's Finished and
//! at a KeyUpdate; TLS 1.2 keys from the ChangeCipherSpec on), and the application data that
//! comes out, in order per direction.
//!
//! Memory per connection: one record body per direction (at most 18 KB) while a record is read,
//! and the plaintext of the segment being read until the caller takes it.

use super::keylog::{ConnectionSecrets, Secret};
use super::tls_crypto::{next_traffic_secret, RecordProtection, Suite};
use crate::wire::Side;

const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_ALERT: u8 = 21;
/// An alert of level warning (1), description close_notify (0) (RFC 8446, 6.1).
const CLOSE_NOTIFY: [u8; 2] = [1, 0];
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;
const HANDSHAKE_FINISHED: u8 = 20;
const HANDSHAKE_KEY_UPDATE: u8 = 24;

/// Decrypted bytes of one side, or bytes of it that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum Plain {
    Data(Side, Vec<u8>),
    /// Application data lost: a record cut by a capture gap, or one that did not authenticate
    /// (its length is the record's ciphertext length, an upper bound).
    Gap(Side, u64),
}

/// The inner handshake messages of a TLS 1.3 direction, followed only for their types (a
/// Finished or a KeyUpdate changes the keys after the record that ends it).
#[derive(Debug, Default)]
struct InnerHandshake {
    header: [u8; 4],
    header_len: usize,
    body_left: usize,
}

impl InnerHandshake {
    /// Reads `bytes`; returns the types of the messages that ended in them.
    fn read(&mut self, mut bytes: &[u8], ended: &mut Vec<u8>) {
        while !bytes.is_empty() {
            if self.header_len < 4 {
                let take = (4 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len < 4 {
                    return;
                }
                let [_, len @ ..] = self.header;
                self.body_left = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
            }
            let take = self.body_left.min(bytes.len());
            self.body_left -= take;
            bytes = &bytes[take..];
            if self.body_left == 0 {
                self.header_len = 0;
                ended.push(self.header[0]);
            }
        }
    }
}

/// Decryption state of one direction.
#[derive(Debug, Default)]
struct Direction {
    /// The keys of the direction's next record, once it is encrypted.
    protection: Option<RecordProtection>,
    /// TLS 1.2: the keys taken at the direction's ChangeCipherSpec.
    pending: Option<RecordProtection>,
    /// TLS 1.3: the application traffic secret, taken after the direction's Finished and
    /// replaced at each KeyUpdate.
    traffic: Option<Secret>,
    /// TLS 1.3: the direction's Finished was read; its records use the application traffic keys.
    in_application: bool,
    handshake: InnerHandshake,
    /// The body of the record being read, when it is encrypted.
    record: Vec<u8>,
    collecting: bool,
    /// Bytes of the record were lost in a capture gap.
    incomplete: bool,
}

/// Decryption of one connection.
#[derive(Debug)]
pub struct Decryption {
    suite: Suite,
    directions: [Direction; 2],
    /// Records that did not authenticate.
    pub failures: u32,
    /// The side that sent the first close_notify alert before any FIN: the first to close.
    pub close_notify_by: Option<Side>,
    /// A side's stream ended (its FIN): a close_notify after it is an answer, not the first close.
    pub stream_ended: bool,
    /// Decrypted application data and losses, for the caller to take in order.
    pub out: Vec<Plain>,
}

impl Decryption {
    /// TLS 1.3 with the connection's handshake and first application traffic secrets.
    pub fn tls13(suite: Suite, secrets: &ConnectionSecrets) -> Option<Decryption> {
        let side = |handshake: Option<Secret>, traffic: Option<Secret>| {
            Some(Direction {
                protection: Some(RecordProtection::tls13(suite, &handshake?)?),
                traffic: Some(traffic?),
                ..Direction::default()
            })
        };
        let client = side(secrets.client_handshake, secrets.client_traffic)?;
        let server = side(secrets.server_handshake, secrets.server_traffic)?;
        Some(Decryption { suite, directions: [client, server], failures: 0, close_notify_by: None, stream_ended: false, out: Vec::new() })
    }

    /// TLS 1.2 with the session's master secret: each side's records are encrypted from its
    /// ChangeCipherSpec on.
    pub fn tls12(suite: Suite, master: &Secret, client_random: &[u8; 32], server_random: &[u8; 32]) -> Option<Decryption> {
        let [client, server] = RecordProtection::tls12_pair(suite, master, client_random, server_random)?;
        let directions =
            [Direction { pending: Some(client), ..Direction::default() }, Direction { pending: Some(server), ..Direction::default() }];
        Some(Decryption { suite, directions, failures: 0, close_notify_by: None, stream_ended: false, out: Vec::new() })
    }

    /// A record of `side` begins with `header`.
    pub fn record_started(&mut self, side: Side, header: &[u8; 5]) {
        let direction = &mut self.directions[side.index()];
        if header[0] == CONTENT_CHANGE_CIPHER_SPEC {
            if let Some(pending) = direction.pending.take() {
                direction.protection = Some(pending);
            }
            direction.collecting = false;
            return;
        }
        direction.collecting = direction.protection.is_some();
        direction.incomplete = false;
        direction.record.clear();
    }

    /// The next body bytes of `side`'s current record.
    pub fn record_bytes(&mut self, side: Side, bytes: &[u8]) {
        let direction = &mut self.directions[side.index()];
        if direction.collecting {
            direction.record.extend_from_slice(bytes);
        }
    }

    /// Body bytes of `side`'s current record are missing.
    pub fn record_gap(&mut self, side: Side) {
        self.directions[side.index()].incomplete = true;
    }

    /// Record boundaries of `side` are lost: the rest of its stream is not read.
    pub fn lost(&mut self, side: Side, len: u64) {
        let direction = &mut self.directions[side.index()];
        direction.collecting = false;
        direction.record = Vec::new();
        if direction.protection.is_some() {
            self.out.push(Plain::Gap(side, len));
        }
    }

    /// `side`'s current record (with `header`) ended: it is opened.
    pub fn record_ended(&mut self, side: Side, header: &[u8; 5]) {
        let suite = self.suite;
        let direction = &mut self.directions[side.index()];
        if !std::mem::take(&mut direction.collecting) {
            return;
        }
        let Some(protection) = direction.protection.as_mut() else { return };
        let len = direction.record.len() as u64;
        if direction.incomplete {
            protection.skip();
            self.out.push(Plain::Gap(side, len));
            return;
        }
        let Some((content_type, plain)) = protection.open(header, &mut direction.record) else {
            if suite.tls13 && !direction.in_application {
                // 0-RTT early data after the ServerHello is under another key: the handshake
                // records' sequence numbers go on without it.
                protection.rewind();
            }
            self.failures = self.failures.saturating_add(1);
            self.out.push(Plain::Gap(side, len));
            return;
        };
        match content_type {
            CONTENT_APPLICATION_DATA if !plain.is_empty() => self.out.push(Plain::Data(side, direction.record[plain].to_vec())),
            CONTENT_ALERT if !self.stream_ended && direction.record[plain.clone()] == CLOSE_NOTIFY => {
                self.close_notify_by.get_or_insert(side);
            }
            CONTENT_HANDSHAKE if suite.tls13 => {
                let mut ended = Vec::new();
                direction.handshake.read(&direction.record[plain], &mut ended);
                for kind in ended {
                    let next = match kind {
                        HANDSHAKE_FINISHED if !direction.in_application => {
                            direction.in_application = true;
                            direction.traffic
                        }
                        HANDSHAKE_KEY_UPDATE if direction.in_application => {
                            direction.traffic.and_then(|secret| next_traffic_secret(suite, &secret))
                        }
                        _ => continue,
                    };
                    direction.traffic = next;
                    direction.protection = next.and_then(|secret| RecordProtection::tls13(suite, &secret));
                }
            }
            _ => {}
        }
        if direction.record.capacity() > 4096 {
            direction.record = Vec::new(); // an idle connection keeps no record buffer
        }
    }
}
