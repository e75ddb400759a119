//! TLS record sniffing: ClientHello / ServerHello (SNI, resumption) and turns of application data.
//!
//! Only the plaintext handshake hellos are read; everything else is skipped record by record,
//! unless the connection's secrets are in the key log: then its records are decrypted
//! ([`super::tls_decrypt`]) and the application data comes out in order per direction.
//! Handshake records are joined into one handshake-message stream per direction, so a hello split
//! over several records or TCP segments is read whole (up to [`MAX_HELLO_BYTES`]).

use super::keylog::{Secret, TlsKeys};
use super::tls_crypto::Suite;
use super::tls_decrypt::{Decryption, Plain};
use super::{prefix_verdict, ProtocolEvent, TlsSummary, Verdict};
use crate::wire::Side;
use std::sync::Arc;

/// Largest TLS 1.3 application-data record taken for an encrypted alert: 2 alert bytes, the inner
/// content type and a 16-byte AEAD tag make 19; the smallest HTTP request makes at least 35.
const MAX_TLS13_ALERT_RECORD: usize = 24;
const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;
const CONTENT_HEARTBEAT: u8 = 24;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const HANDSHAKE_NEW_SESSION_TICKET: u8 = 4;
const EXTENSION_SERVER_NAME: u16 = 0;
const EXTENSION_SESSION_TICKET: u16 = 35;
const EXTENSION_PRE_SHARED_KEY: u16 = 41;
const EXTENSION_SUPPORTED_VERSIONS: u16 = 43;
const TLS13: u16 = 0x0304;
/// Largest record body (2^14 plus the allowed expansion).
const MAX_RECORD_BODY: usize = 16384 + 2048;
/// Bytes of one hello message kept for parsing: a hello longer than this (a ClientHello with huge
/// PSK identities) is read from its first bytes. A ClientHello with post-quantum key shares
/// (X25519MLKEM768) is about 1.8 KB, so every real one fits.
const MAX_HELLO_BYTES: usize = 16384;
/// Length of a handshake message header: type and 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
/// The ServerHello random that marks a HelloRetryRequest (RFC 8446, 4.1.3).
const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB,
    0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Does `bytes` begin like a TLS handshake record (content type 22, version 3.x)?
pub fn looks_like_handshake_record(bytes: &[u8]) -> Verdict {
    match prefix_verdict(bytes, &[CONTENT_HANDSHAKE, 3]) {
        Verdict::Yes => match bytes.get(2) {
            None => Verdict::NeedMore,
            Some(minor) if *minor <= 4 => Verdict::Yes,
            Some(_) => Verdict::No,
        },
        other => other,
    }
}

/// Bounds-checked reader over a handshake message.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// Extensions as (type, data); stops quietly at a truncated one.
    fn extensions(mut self) -> impl Iterator<Item = (u16, &'a [u8])> {
        std::iter::from_fn(move || Some((self.u16()?, self.vec16()?)))
    }
}

/// A legacy session id (at most 32 bytes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SessionId {
    bytes: [u8; 32],
    len: u8,
}

impl SessionId {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn from_slice(id: &[u8]) -> Option<Self> {
        let mut session = SessionId::default();
        session.bytes.get_mut(..id.len())?.copy_from_slice(id);
        session.len = id.len() as u8;
        Some(session)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the ClientHello offered.
#[derive(Debug, Default)]
struct ClientHello {
    sni: Option<String>,
    random: [u8; 32],
    session_id: SessionId,
    /// A TLS 1.2 session ticket offered for resumption (RFC 5077).
    ticket: Vec<u8>,
}

/// What the ServerHello chose.
#[derive(Debug)]
struct ServerHello {
    retry_request: bool,
    random: [u8; 32],
    cipher_suite: u16,
    session_id: SessionId,
    psk_selected: bool,
    version: u16,
}

/// A reader over the body of a handshake message of type `kind` (header included in `message`),
/// bounded by its announced length so that the next message is never read as part of it; a body
/// cut short by [`MAX_HELLO_BYTES`] is read as far as it goes.
fn message_body(message: &[u8], kind: u8) -> Option<Reader<'_>> {
    let (header, body) = message.split_at_checked(HANDSHAKE_HEADER)?;
    if header[0] != kind {
        return None;
    }
    let len = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    Some(Reader { bytes: &body[..len.min(body.len())] })
}

/// Parses a ClientHello handshake message (header included); `None` when malformed.
fn parse_client_hello(message: &[u8]) -> Option<ClientHello> {
    let mut r = message_body(message, HANDSHAKE_CLIENT_HELLO)?;
    r.take(2)?; // legacy version
    let random = r.take(32)?.try_into().ok()?;
    let session_id = SessionId::from_slice(r.vec8()?)?;
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut hello = ClientHello { sni: None, random, session_id, ticket: Vec::new() };
    let Some(extensions) = r.vec16() else { return Some(hello) };
    for (kind, data) in (Reader { bytes: extensions }).extensions() {
        match kind {
            EXTENSION_SERVER_NAME => hello.sni = server_name(data),
            EXTENSION_SESSION_TICKET => hello.ticket = data.to_vec(),
            _ => {}
        }
    }
    Some(hello)
}

/// The host name of a server_name extension.
fn server_name(data: &[u8]) -> Option<String> {
    let mut list = Reader { bytes: Reader { bytes: data }.vec16()? };
    while let Some(name_type) = list.u8() {
        let name = list.vec16()?;
        if name_type == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

/// Parses a ServerHello handshake message (header included); `None` when malformed.
fn parse_server_hello(message: &[u8]) -> Option<ServerHello> {
    let mut r = message_body(message, HANDSHAKE_SERVER_HELLO)?;
    let legacy_version = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    let session_id = SessionId::from_slice(r.vec8()?)?;
    let cipher_suite = r.u16()?;
    r.u8()?; // compression method
    let mut hello = ServerHello {
        retry_request: random == HELLO_RETRY_REQUEST_RANDOM,
        random,
        cipher_suite,
        session_id,
        psk_selected: false,
        version: legacy_version,
    };
    if let Some(extensions) = r.vec16() {
        for (kind, data) in (Reader { bytes: extensions }).extensions() {
            match kind {
                EXTENSION_PRE_SHARED_KEY => hello.psk_selected = true,
                EXTENSION_SUPPORTED_VERSIONS => {
                    if let Some(version) = (Reader { bytes: data }).u16() {
                        hello.version = version;
                    }
                }
                _ => {}
            }
        }
    }
    Some(hello)
}

fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301 => "TLS 1.0".to_owned(),
        0x0302 => "TLS 1.1".to_owned(),
        0x0303 => "TLS 1.2".to_owned(),
        TLS13 => "TLS 1.3".to_owned(),
        other => format!("0x{other:04x}"),
    }
}

/// Record framing state of one direction.
#[derive(Debug, Default)]
struct RecordReader {
    header: [u8; 5],
    header_len: u8,
    /// Body bytes of the current record still to come.
    body_left: usize,
    /// A ChangeCipherSpec was sent: the direction's later handshake records are encrypted, unless
    /// TLS 1.3 was chosen (see [`TlsSniffer::handshake_encrypted`]).
    change_cipher_spec: bool,
    /// Record boundaries lost (gap or garbage): the rest of this direction is skipped.
    lost: bool,
    handshake: HandshakeStream,
}

impl RecordReader {
    fn content_type(&self) -> u8 {
        self.header[0]
    }
}

/// The plaintext handshake messages of one direction: the bodies of its handshake records joined,
/// so that a message split over several records (RFC 8446, 5.1) or TCP segments is read whole.
#[derive(Debug, Default)]
struct HandshakeStream {
    header: [u8; HANDSHAKE_HEADER],
    header_len: usize,
    /// Body bytes of the current message still to come.
    body_left: usize,
    /// The current message is a hello: `message` holds its header and its first body bytes (at
    /// most [`MAX_HELLO_BYTES`]); it is freed once parsed.
    keep: bool,
    message: Vec<u8>,
    /// Message boundaries lost (a gap across a message header): later messages are not read.
    lost: bool,
}

impl HandshakeStream {
    /// `len` bytes of the stream are missing: the message they cut is not parsed; when they
    /// reach past its end, message boundaries are lost.
    fn gap(&mut self, len: usize) {
        self.keep = false;
        self.message = Vec::new();
        if self.header_len == HANDSHAKE_HEADER && len <= self.body_left {
            self.body_left -= len;
            if self.body_left == 0 {
                self.header_len = 0;
            }
        } else {
            self.lost = true;
        }
    }
}

/// Sniffs both directions of one TLS connection.
#[derive(Debug, Default)]
pub struct TlsSniffer {
    directions: [RecordReader; 2],
    client_hellos: u32,
    hello_retry_requests: u32,
    full_handshakes: u32,
    resumed_handshakes: u32,
    sni: Option<String>,
    version: Option<u16>,
    offered_session_id: SessionId,
    exchanges: u32,
    /// The client sent application data the server has not answered yet.
    awaiting_response: bool,
    /// Client application-data records that are really its encrypted Finished (TLS 1.3).
    client_records_to_ignore: u8,
    /// The analysis's secrets, when it has any.
    keys: Option<Arc<TlsKeys>>,
    client_random: Option<[u8; 32]>,
    offered_ticket: Vec<u8>,
    /// The connection's secrets were found: its records are being decrypted.
    decryption: Option<Box<Decryption>>,
    /// TLS 1.2: the master secret, remembered under the session tickets the server sends.
    master: Option<Secret>,
    /// The secrets were not found yet but may come (a live key log): records are held.
    waiting: Option<Box<Waiting>>,
}

/// What decryption needs from the ServerHello.
#[derive(Debug)]
struct Chosen {
    suite: Suite,
    version: u16,
    server_random: [u8; 32],
    session_id: SessionId,
    resumed: bool,
}

/// Most bytes of records held while waiting for a connection's secrets: a server's first flight
/// (certificates included) and the client's Finished fit; beyond it the connection is not
/// decrypted.
const MAX_HELD_BYTES: usize = 64 * 1024;

/// The records of a connection whose secrets a live key log has not brought yet.
#[derive(Debug)]
struct Waiting {
    chosen: Chosen,
    /// Whole records since the ServerHello, in the order they ended.
    held: Vec<(Side, [u8; 5], Vec<u8>)>,
    /// Each side's record in progress.
    current: [Option<([u8; 5], Vec<u8>)>; 2],
    bytes: usize,
}

impl Waiting {
    /// Holds `body` bytes of `side`'s record in progress; false when that is too much.
    fn hold(&mut self, side: Side, body: &[u8], ended: bool) -> bool {
        self.bytes += body.len();
        let Some((header, held)) = self.current[side.index()].as_mut() else { return true };
        held.extend_from_slice(body);
        if ended {
            let (header, held) = (*header, std::mem::take(held));
            self.current[side.index()] = None;
            self.held.push((side, header, held));
        }
        self.bytes <= MAX_HELD_BYTES
    }
}

impl TlsSniffer {
    /// A sniffer that decrypts the connection when `keys` hold its secrets.
    pub fn with_keys(keys: Option<Arc<TlsKeys>>) -> TlsSniffer {
        TlsSniffer { keys, ..TlsSniffer::default() }
    }

    /// `side`'s stream ended (FIN, or the end of the capture).
    pub fn end_of_stream(&mut self) {
        if let Some(decryption) = self.decryption.as_mut() {
            decryption.stream_ended = true;
        }
    }

    /// The application data decrypted (and the losses) since the last call, in order.
    pub fn take_plaintext(&mut self) -> Vec<Plain> {
        self.decryption.as_mut().map(|d| std::mem::take(&mut d.out)).unwrap_or_default()
    }

    /// The next bytes of `side`'s stream.
    pub fn data(&mut self, side: Side, mut bytes: &[u8], events: &mut Vec<ProtocolEvent>) {
        while !bytes.is_empty() && !self.directions[side.index()].lost {
            let direction = &mut self.directions[side.index()];
            if usize::from(direction.header_len) < direction.header.len() {
                let start = usize::from(direction.header_len);
                let take = (direction.header.len() - start).min(bytes.len());
                direction.header[start..start + take].copy_from_slice(&bytes[..take]);
                direction.header_len += take as u8;
                bytes = &bytes[take..];
                if usize::from(direction.header_len) == direction.header.len() {
                    self.record_started(side);
                }
                continue;
            }
            let (body, rest) = bytes.split_at(direction.body_left.min(bytes.len()));
            direction.body_left -= body.len();
            let ended = direction.body_left == 0;
            if ended {
                direction.header_len = 0;
            }
            let header = direction.header;
            bytes = rest;
            if direction.content_type() == CONTENT_HANDSHAKE && !self.handshake_encrypted(side) {
                self.handshake_bytes(side, body, events);
            }
            self.hold(side, body, ended);
            if let Some(decryption) = self.decryption.as_mut() {
                decryption.record_bytes(side, body);
                if ended {
                    decryption.record_ended(side, &header);
                }
            }
        }
    }

    /// Holds record bytes while waiting for the connection's secrets; too many end the wait.
    fn hold(&mut self, side: Side, body: &[u8], ended: bool) {
        if let Some(waiting) = self.waiting.as_mut() {
            if !waiting.hold(side, body, ended) {
                self.waiting = None;
            }
        }
    }

    /// `len` bytes of `side`'s stream are missing.
    pub fn gap(&mut self, side: Side, len: u64) {
        self.waiting = None; // held records with a hole cannot be decrypted in order
        let direction = &mut self.directions[side.index()];
        let in_body = usize::from(direction.header_len) == direction.header.len();
        if in_body && len <= direction.body_left as u64 {
            let len = len as usize;
            direction.body_left -= len;
            if direction.body_left == 0 {
                direction.header_len = 0;
            }
            let ended = direction.body_left == 0;
            if direction.content_type() == CONTENT_HANDSHAKE {
                direction.handshake.gap(len);
            }
            if let Some(decryption) = self.decryption.as_mut() {
                decryption.record_gap(side);
                if ended {
                    decryption.record_ended(side, &direction.header);
                }
            }
        } else {
            direction.lost = true;
            if let Some(decryption) = self.decryption.as_mut() {
                decryption.lost(side, len);
            }
        }
    }

    /// What was seen, for the connection's summary.
    pub fn summary(&self) -> TlsSummary {
        TlsSummary {
            client_hellos: self.client_hellos,
            hello_retry_requests: self.hello_retry_requests,
            full_handshakes: self.full_handshakes,
            resumed_handshakes: self.resumed_handshakes,
            sni: self.sni.clone(),
            version: self.version.map(version_name),
            exchanges_estimate: self.exchanges,
            decrypted: self.decryption.is_some(),
            decrypt_failures: self.decryption.as_ref().map(|d| d.failures),
            close_notify_by: self.decryption.as_ref().and_then(|d| d.close_notify_by),
        }
    }

    /// Are `side`'s handshake records encrypted? After its ChangeCipherSpec they are in TLS 1.2
    /// and older (the Finished), not in TLS 1.3: there the ChangeCipherSpec is a dummy for
    /// middleboxes (RFC 8446, D.4), sent around the second ClientHello after a HelloRetryRequest,
    /// and encrypted handshake messages travel as application data. TLS 1.3 is known to be chosen
    /// once the server sent a HelloRetryRequest (it always selects 1.3) or a 1.3 ServerHello;
    /// until then a ChangeCipherSpec counts as the start of encryption.
    fn handshake_encrypted(&self, side: Side) -> bool {
        let tls13 = self.hello_retry_requests > 0 || self.version == Some(TLS13);
        self.directions[side.index()].change_cipher_spec && !tls13
    }

    /// The next plaintext handshake bytes of `side`: hellos are parsed once whole, other
    /// messages are skipped by their announced length.
    fn handshake_bytes(&mut self, side: Side, mut bytes: &[u8], events: &mut Vec<ProtocolEvent>) {
        let hello_type = match side {
            Side::Client => HANDSHAKE_CLIENT_HELLO,
            Side::Server => HANDSHAKE_SERVER_HELLO,
        };
        while !bytes.is_empty() {
            let stream = &mut self.directions[side.index()].handshake;
            if stream.lost {
                return;
            }
            if stream.header_len < HANDSHAKE_HEADER {
                let take = (HANDSHAKE_HEADER - stream.header_len).min(bytes.len());
                stream.header[stream.header_len..stream.header_len + take].copy_from_slice(&bytes[..take]);
                stream.header_len += take;
                bytes = &bytes[take..];
                if stream.header_len < HANDSHAKE_HEADER {
                    return;
                }
                let [kind, len @ ..] = stream.header;
                stream.body_left = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
                // A TLS 1.2 server's NewSessionTicket names the session for later resumptions.
                let ticket = side == Side::Server && kind == HANDSHAKE_NEW_SESSION_TICKET && self.master.is_some();
                stream.keep = kind == hello_type || ticket;
                if stream.keep {
                    stream.message = Vec::with_capacity(HANDSHAKE_HEADER + stream.body_left.min(MAX_HELLO_BYTES));
                    stream.message.extend_from_slice(&stream.header);
                }
            }
            let (body, rest) = bytes.split_at(stream.body_left.min(bytes.len()));
            if stream.keep {
                let room = (HANDSHAKE_HEADER + MAX_HELLO_BYTES).saturating_sub(stream.message.len());
                stream.message.extend_from_slice(&body[..body.len().min(room)]);
            }
            stream.body_left -= body.len();
            bytes = rest;
            if stream.body_left == 0 {
                stream.header_len = 0;
                if std::mem::take(&mut stream.keep) {
                    let message = std::mem::take(&mut stream.message);
                    match (side, message[0]) {
                        (Side::Client, _) => self.client_hello(&message, events),
                        (Side::Server, HANDSHAKE_NEW_SESSION_TICKET) => self.new_session_ticket(&message),
                        (Side::Server, _) => self.server_hello(&message),
                    }
                }
            }
        }
    }

    fn record_started(&mut self, side: Side) {
        let direction = &mut self.directions[side.index()];
        let content_type = direction.content_type();
        let valid_type = (CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_HEARTBEAT).contains(&content_type);
        if !valid_type || direction.header[1] != 3 || record_len(direction) > MAX_RECORD_BODY {
            direction.lost = true;
            return;
        }
        direction.body_left = record_len(direction);
        let header = direction.header;
        if self.waiting.is_some() {
            self.retry_secrets(side);
        }
        if let Some(waiting) = self.waiting.as_mut() {
            waiting.current[side.index()] = Some((header, Vec::new()));
        }
        if let Some(decryption) = self.decryption.as_mut() {
            decryption.record_started(side, &header);
        }
        let direction = &mut self.directions[side.index()];
        let len = direction.body_left;
        if content_type == CONTENT_CHANGE_CIPHER_SPEC {
            direction.change_cipher_spec = true;
        }
        if len == 0 {
            direction.header_len = 0;
            self.hold(side, &[], true);
            if let Some(decryption) = self.decryption.as_mut() {
                decryption.record_ended(side, &header);
            }
        }
        if content_type == CONTENT_APPLICATION_DATA {
            self.application_data(side, len);
        }
    }

    fn client_hello(&mut self, message: &[u8], events: &mut Vec<ProtocolEvent>) {
        let Some(hello) = parse_client_hello(message) else { return };
        self.client_hellos = self.client_hellos.saturating_add(1);
        if self.sni.is_none() {
            self.sni.clone_from(&hello.sni);
        }
        self.offered_session_id = hello.session_id;
        self.client_random = Some(hello.random);
        self.offered_ticket = hello.ticket;
        events.push(ProtocolEvent::TlsClientHello { sni: hello.sni });
    }

    fn server_hello(&mut self, message: &[u8]) {
        let Some(hello) = parse_server_hello(message) else { return };
        if hello.retry_request {
            // The client answers with a second ClientHello; the real ServerHello follows it.
            self.hello_retry_requests = self.hello_retry_requests.saturating_add(1);
            return;
        }
        self.version = Some(hello.version);
        let echoed_session = !hello.session_id.is_empty() && hello.session_id == self.offered_session_id;
        let resumed = hello.psk_selected || (hello.version != TLS13 && echoed_session);
        if resumed {
            self.resumed_handshakes = self.resumed_handshakes.saturating_add(1);
        } else {
            self.full_handshakes = self.full_handshakes.saturating_add(1);
        }
        if hello.version == TLS13 {
            self.client_records_to_ignore = 1;
        }
        self.start_decryption(&hello, resumed);
    }

    /// Looks up the connection's secrets once the ServerHello chose the version and cipher suite.
    /// TLS 1.3 secrets are logged per connection, resumed or not; a TLS 1.2 session is found by
    /// its client random, or, when resumed without a line of its own, by the session ID or
    /// ticket of an earlier full handshake (as tshark does).
    fn start_decryption(&mut self, hello: &ServerHello, resumed: bool) {
        let Some(keys) = self.keys.as_ref() else { return };
        let Some(suite) = Suite::from_id(hello.cipher_suite) else { return };
        let live = keys.is_live();
        let chosen = Chosen { suite, version: hello.version, server_random: hello.random, session_id: hello.session_id, resumed };
        self.decryption = self.find_secrets(&chosen);
        if self.decryption.is_none() && live {
            self.waiting = Some(Box::new(Waiting { chosen, held: Vec::new(), current: Default::default(), bytes: 0 }));
        }
    }

    /// The decryption of the connection, when the keys hold its secrets.
    fn find_secrets(&mut self, chosen: &Chosen) -> Option<Box<Decryption>> {
        let (Some(keys), Some(client_random)) = (self.keys.as_ref(), self.client_random) else { return None };
        let (suite, resumed) = (chosen.suite, chosen.resumed);
        let secrets = keys.secrets(&client_random);
        if chosen.version == TLS13 && suite.tls13 {
            return secrets.and_then(|s| Decryption::tls13(suite, &s)).map(Box::new);
        }
        if chosen.version != 0x0303 || suite.tls13 {
            return None;
        }
        let logged = secrets.and_then(|s| s.master);
        let remembered = || {
            let by_id = resumed.then(|| keys.session(chosen.session_id.bytes())).flatten();
            by_id.or_else(|| (resumed && !self.offered_ticket.is_empty()).then(|| keys.session(&self.offered_ticket)).flatten())
        };
        let master = logged.or_else(remembered)?;
        if !resumed {
            keys.remember_session(chosen.session_id.bytes(), master);
        }
        self.master = Some(master);
        Decryption::tls12(suite, &master, &client_random, &chosen.server_random).map(Box::new)
    }

    /// While waiting for a live key log: a record of `side` starts. The key log is read again;
    /// once it has the connection's secrets, the records held so far are decrypted in order (the
    /// peer's record in progress included) and decryption goes on from here.
    fn retry_secrets(&mut self, side: Side) {
        let Some(waiting) = self.waiting.take() else { return };
        if self.keys.as_ref().is_some_and(|k| k.refresh()) {
            if let Some(mut decryption) = self.find_secrets(&waiting.chosen) {
                for (record_side, header, body) in &waiting.held {
                    decryption.record_started(*record_side, header);
                    decryption.record_bytes(*record_side, body);
                    decryption.record_ended(*record_side, header);
                }
                let peer = side.peer();
                if let Some((header, body)) = &waiting.current[peer.index()] {
                    decryption.record_started(peer, header);
                    decryption.record_bytes(peer, body);
                }
                self.decryption = Some(decryption);
                return;
            }
        }
        self.waiting = Some(waiting);
    }

    /// A TLS 1.2 NewSessionTicket: the ticket resumes this session.
    fn new_session_ticket(&mut self, message: &[u8]) {
        let Some(mut r) = message_body(message, HANDSHAKE_NEW_SESSION_TICKET) else { return };
        let (Some(_lifetime), Some(ticket)) = (r.take(4), r.vec16()) else { return };
        if let (Some(keys), Some(master)) = (self.keys.as_ref(), self.master) {
            keys.remember_session(ticket, master);
        }
    }

    /// An application-data record of `len` bytes starts: a client burst followed by a server burst
    /// is one exchange. In TLS 1.3 alerts travel as application data too: a record too small to
    /// hold a request ([`MAX_TLS13_ALERT_RECORD`]) is the client's close_notify, not a request.
    fn application_data(&mut self, side: Side, len: usize) {
        let alert_sized = self.version == Some(TLS13) && len <= MAX_TLS13_ALERT_RECORD;
        match side {
            Side::Client if self.client_records_to_ignore > 0 => self.client_records_to_ignore -= 1,
            Side::Client if alert_sized => {}
            Side::Client => self.awaiting_response = true,
            Side::Server if self.awaiting_response => {
                self.awaiting_response = false;
                self.exchanges = self.exchanges.saturating_add(1);
            }
            Side::Server => {}
        }
    }
}

/// The body length announced by a direction's complete record header.
fn record_len(direction: &RecordReader) -> usize {
    usize::from(u16::from_be_bytes([direction.header[3], direction.header[4]]))
}

#[cfg(test)]
mod tests {
    use super::super::tls_crypto::RecordProtection;
    use super::*;
    use Side::{Client, Server};

    fn vec16(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend(vec16(data));
        v
    }

    /// A handshake message of `kind` in one TLS 1.2-framed record.
    fn handshake_record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
        message.extend_from_slice(body);
        let mut record = vec![CONTENT_HANDSHAKE, 3, 1];
        record.extend(vec16(&message));
        record
    }

    fn client_hello(sni: &str, session_id: &[u8], psk: bool) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([0x42; 32]);
        body.push(session_id.len() as u8);
        body.extend_from_slice(session_id);
        body.extend(vec16(&[0x13, 0x01, 0xc0, 0x2f]));
        body.extend([1, 0]);
        let mut name = vec![0];
        name.extend(vec16(sni.as_bytes()));
        let mut extensions = extension(EXTENSION_SERVER_NAME, &vec16(&name));
        extensions.extend(extension(EXTENSION_SUPPORTED_VERSIONS, &[4, 0x03, 0x04, 0x03, 0x03]));
        if psk {
            extensions.extend(extension(EXTENSION_PRE_SHARED_KEY, &[0, 6, 0, 1, 0xaa, 0, 0, 0, 0, 2, 1, 0xbb]));
        }
        body.extend(vec16(&extensions));
        handshake_record(HANDSHAKE_CLIENT_HELLO, &body)
    }

    fn server_hello(session_id: &[u8], version: u16, psk: bool, random: [u8; 32]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend(random);
        body.push(session_id.len() as u8);
        body.extend_from_slice(session_id);
        body.extend([0x13, 0x01, 0]);
        let mut extensions = Vec::new();
        if version == TLS13 {
            extensions.extend(extension(EXTENSION_SUPPORTED_VERSIONS, &TLS13.to_be_bytes()));
        }
        if psk {
            extensions.extend(extension(EXTENSION_PRE_SHARED_KEY, &[0, 0]));
        }
        body.extend(vec16(&extensions));
        handshake_record(HANDSHAKE_SERVER_HELLO, &body)
    }

    fn record(content_type: u8, len: usize) -> Vec<u8> {
        let mut v = vec![content_type, 3, 3];
        v.extend(vec16(&vec![0x17; len]));
        v
    }

    fn sniff(chunks: &[(Side, &[u8])]) -> (TlsSniffer, Vec<ProtocolEvent>) {
        let mut sniffer = TlsSniffer::default();
        let mut events = Vec::new();
        for (side, bytes) in chunks {
            sniffer.data(*side, bytes, &mut events);
        }
        (sniffer, events)
    }

    #[test]
    fn test_client_hello_sni_is_read() {
        let hello = client_hello("api.example.com", &[], false);
        assert_eq!(looks_like_handshake_record(&hello), Verdict::Yes);
        let (sniffer, events) = sniff(&[(Client, &hello)]);
        assert_eq!(events, [ProtocolEvent::TlsClientHello { sni: Some("api.example.com".into()) }]);
        let summary = sniffer.summary();
        assert_eq!(summary.client_hellos, 1);
        assert_eq!(summary.sni.as_deref(), Some("api.example.com"));
    }

    #[test]
    fn test_client_hello_split_across_segments() {
        let hello = client_hello("split.example.org", &[7; 32], false);
        for cut in 0..=hello.len() {
            let (sniffer, _) = sniff(&[(Client, &hello[..cut]), (Client, &hello[cut..])]);
            assert_eq!(sniffer.client_hellos, 1, "cut at {cut}");
            assert_eq!(sniffer.sni.as_deref(), Some("split.example.org"));
        }
    }

    #[test]
    fn test_tls_resumption_by_session_id() {
        let id = [0x5a; 32];
        let (sniffer, _) = sniff(&[(Client, &client_hello("a", &id, false)), (Server, &server_hello(&id, 0x0303, false, [1; 32]))]);
        let summary = sniffer.summary();
        assert_eq!((summary.full_handshakes, summary.resumed_handshakes), (0, 1));
        assert_eq!(summary.version.as_deref(), Some("TLS 1.2"));

        let (sniffer, _) = sniff(&[(Client, &client_hello("a", &id, false)), (Server, &server_hello(&[9; 32], 0x0303, false, [1; 32]))]);
        assert_eq!((sniffer.full_handshakes, sniffer.resumed_handshakes), (1, 0));
    }

    #[test]
    fn test_tls13_echoed_session_id_is_full_unless_psk_selected() {
        let id = [0x33; 32];
        let (sniffer, _) = sniff(&[(Client, &client_hello("a", &id, false)), (Server, &server_hello(&id, TLS13, false, [1; 32]))]);
        assert_eq!((sniffer.full_handshakes, sniffer.resumed_handshakes), (1, 0));
        assert_eq!(sniffer.summary().version.as_deref(), Some("TLS 1.3"));
        let (sniffer, _) = sniff(&[(Client, &client_hello("a", &id, true)), (Server, &server_hello(&id, TLS13, true, [1; 32]))]);
        assert_eq!((sniffer.full_handshakes, sniffer.resumed_handshakes), (0, 1));
    }

    #[test]
    fn test_hello_retry_request_is_not_a_handshake() {
        let (sniffer, events) = sniff(&[
            (Client, &client_hello("hrr.example", &[], false)),
            (Server, &server_hello(&[], TLS13, false, HELLO_RETRY_REQUEST_RANDOM)),
            (Client, &client_hello("hrr.example", &[], false)),
            (Server, &server_hello(&[], TLS13, false, [2; 32])),
        ]);
        assert_eq!(events.len(), 2);
        assert_eq!((sniffer.client_hellos, sniffer.full_handshakes, sniffer.resumed_handshakes), (2, 1, 0));
    }

    /// The handshake message of a one-record `record`, framed again in records of at most `max` bytes.
    fn fragmented(record: &[u8], max: usize) -> Vec<u8> {
        record[5..]
            .chunks(max)
            .flat_map(|piece| [&[CONTENT_HANDSHAKE, 3, 3][..], &(piece.len() as u16).to_be_bytes(), piece].concat())
            .collect()
    }

    /// A ClientHello whose server_name follows a padding extension (RFC 7685) of `padding` bytes, as
    /// large key shares (X25519MLKEM768) or long ALPN lists come before it.
    fn padded_client_hello(sni: &str, padding: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([0x42; 32]);
        body.push(0);
        body.extend(vec16(&[0x13, 0x01]));
        body.extend([1, 0]);
        let mut name = vec![0];
        name.extend(vec16(sni.as_bytes()));
        let mut extensions = extension(21, &vec![0; padding]);
        extensions.extend(extension(EXTENSION_SERVER_NAME, &vec16(&name)));
        body.extend(vec16(&extensions));
        handshake_record(HANDSHAKE_CLIENT_HELLO, &body)
    }

    #[test]
    fn test_second_client_hello_and_real_server_hello_after_hello_retry_request_are_read_past_dummy_change_cipher_specs() {
        let ccs = record(CONTENT_CHANGE_CIPHER_SPEC, 1);
        let (sniffer, events) = sniff(&[
            (Client, &client_hello("hrr.example", &[], false)),
            (Server, &[server_hello(&[], TLS13, false, HELLO_RETRY_REQUEST_RANDOM), ccs.clone()].concat()),
            (Client, &[ccs.clone(), client_hello("hrr.example", &[], false)].concat()),
            (Server, &[server_hello(&[], TLS13, false, [2; 32]), record(CONTENT_APPLICATION_DATA, 900)].concat()),
        ]);
        assert_eq!(events.len(), 2);
        let summary = sniffer.summary();
        assert_eq!((summary.client_hellos, summary.hello_retry_requests), (2, 1));
        assert_eq!((summary.full_handshakes, summary.resumed_handshakes), (1, 0));
        assert_eq!(summary.version.as_deref(), Some("TLS 1.3"));
    }

    #[test]
    fn test_psk_selected_after_hello_retry_request_is_a_resumed_handshake() {
        let ccs = record(CONTENT_CHANGE_CIPHER_SPEC, 1);
        let (sniffer, _) = sniff(&[
            (Client, &client_hello("a", &[4; 32], true)),
            (Server, &[server_hello(&[4; 32], TLS13, false, HELLO_RETRY_REQUEST_RANDOM), ccs.clone()].concat()),
            (Client, &[ccs, client_hello("a", &[4; 32], true)].concat()),
            (Server, &server_hello(&[4; 32], TLS13, true, [2; 32])),
        ]);
        let summary = sniffer.summary();
        assert_eq!(
            (summary.client_hellos, summary.hello_retry_requests, summary.full_handshakes, summary.resumed_handshakes),
            (2, 1, 0, 1)
        );
    }

    #[test]
    fn test_tls12_encrypted_finished_after_change_cipher_spec_is_never_read_as_a_hello() {
        // Worst case: the encrypted Finished records happen to look like hellos.
        let ccs = record(CONTENT_CHANGE_CIPHER_SPEC, 1);
        let (sniffer, events) = sniff(&[
            (Client, &client_hello("a", &[], false)),
            (Server, &server_hello(&[8; 32], 0x0303, false, [1; 32])),
            (Client, &[ccs.clone(), client_hello("b", &[], false)].concat()),
            (Server, &[ccs, server_hello(&[8; 32], 0x0303, false, [3; 32])].concat()),
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!((sniffer.client_hellos, sniffer.full_handshakes), (1, 1));
        assert_eq!(sniffer.sni.as_deref(), Some("a"));
    }

    #[test]
    fn test_client_hello_in_several_records_and_segments_is_read_whole() {
        let hello = fragmented(&padded_client_hello("late.example", 1500), 512);
        assert_eq!(hello.len(), 4 * 5 + 4 + 2 + 32 + 1 + 4 + 2 + 2 + 4 + 1500 + 4 + 2 + 1 + 2 + 12);
        for cut in (0..=hello.len()).step_by(7) {
            let (_, events) = sniff(&[(Client, &hello[..cut]), (Client, &hello[cut..])]);
            assert_eq!(events, [ProtocolEvent::TlsClientHello { sni: Some("late.example".into()) }], "cut at {cut}");
        }
    }

    #[test]
    fn test_hello_longer_than_the_bound_is_buffered_up_to_the_bound_and_read_from_its_first_bytes() {
        let hello = fragmented(&padded_client_hello("after.the.bound", 20_000), 16_384);
        let mut sniffer = TlsSniffer::default();
        let mut events = Vec::new();
        sniffer.data(Client, &hello[..hello.len() - 1], &mut events);
        let buffered = &sniffer.directions[0].handshake.message;
        assert_eq!(buffered.len(), HANDSHAKE_HEADER + MAX_HELLO_BYTES);
        assert!(buffered.capacity() <= HANDSHAKE_HEADER + MAX_HELLO_BYTES, "{}", buffered.capacity());
        sniffer.data(Client, &hello[hello.len() - 1..], &mut events);
        assert_eq!(events, [ProtocolEvent::TlsClientHello { sni: None }]);
        assert_eq!(sniffer.directions[0].handshake.message.capacity(), 0);
    }

    #[test]
    fn test_server_hello_fields_are_read_within_its_announced_length() {
        // A TLS 1.2 ServerHello without extensions, then bytes that would read as a pre_shared_key
        // extension if the hello ran on into them.
        let mut body = vec![3, 3];
        body.extend([1; 32]);
        body.extend([0, 0x13, 0x01, 0]);
        let mut hello = handshake_record(HANDSHAKE_SERVER_HELLO, &body);
        hello.extend([0, 6, 0, 41, 0, 2, 0, 0]);
        let record_len = (hello.len() - 5) as u16;
        hello[3..5].copy_from_slice(&record_len.to_be_bytes());
        let (sniffer, _) = sniff(&[(Client, &client_hello("a", &[], false)), (Server, &hello)]);
        assert_eq!((sniffer.full_handshakes, sniffer.resumed_handshakes), (1, 0));
        assert_eq!(sniffer.summary().version.as_deref(), Some("TLS 1.2"));
    }

    #[test]
    fn test_gap_inside_a_hello_drops_it_and_the_next_hello_is_read() {
        let hello = client_hello("a-long-server-name.example.org", &[], false);
        assert!(hello.len() > 80);
        let mut sniffer = TlsSniffer::default();
        let mut events = Vec::new();
        sniffer.data(Client, &hello[..50], &mut events);
        sniffer.gap(Client, 30);
        sniffer.data(Client, &hello[80..], &mut events);
        assert_eq!(sniffer.client_hellos, 0);
        sniffer.data(Client, &client_hello("b", &[], false), &mut events);
        assert_eq!(events, [ProtocolEvent::TlsClientHello { sni: Some("b".into()) }]);
        sniffer.gap(Client, 7); // across a record header: record boundaries are lost
        sniffer.data(Client, &client_hello("c", &[], false), &mut events);
        assert_eq!(sniffer.client_hellos, 1);
    }

    #[test]
    fn test_damaged_handshakes_never_panic_and_buffer_at_most_one_bounded_hello() {
        let ccs = record(CONTENT_CHANGE_CIPHER_SPEC, 1);
        let client = [
            fragmented(&padded_client_hello("a", 30_000), 700),
            ccs.clone(),
            fragmented(&client_hello("b", &[1; 32], true), 16),
            record(CONTENT_APPLICATION_DATA, 300),
        ]
        .concat();
        let server =
            [server_hello(&[], TLS13, false, HELLO_RETRY_REQUEST_RANDOM), ccs, server_hello(&[1; 32], TLS13, true, [5; 32])].concat();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n.max(1) as u64) as usize
        };
        for _ in 0..300 {
            let mut sniffer = TlsSniffer::default();
            let mut events = Vec::new();
            for (side, stream) in [(Client, &client), (Server, &server)] {
                let mut bytes = stream.clone();
                for _ in 0..next(6) {
                    let at = next(bytes.len());
                    bytes[at] = next(256) as u8;
                }
                let mut at = 0;
                while at < bytes.len() {
                    let len = (1 + next(1500)).min(bytes.len() - at);
                    match next(20) {
                        0 => sniffer.gap(side, len as u64),
                        _ => sniffer.data(side, &bytes[at..at + len], &mut events),
                    }
                    at += len;
                    for direction in &sniffer.directions {
                        assert!(direction.handshake.message.capacity() <= HANDSHAKE_HEADER + MAX_HELLO_BYTES);
                    }
                }
            }
            assert!(sniffer.client_hellos <= 2 && sniffer.hello_retry_requests <= 1, "{:?}", sniffer.summary());
        }
    }

    #[test]
    fn test_application_data_turns_are_counted_as_exchanges() {
        let id = [1; 32];
        let (sniffer, _) = sniff(&[
            (Client, &client_hello("a", &id, false)),
            (Server, &server_hello(&[2; 32], 0x0303, false, [1; 32])),
            (Client, &[record(CONTENT_CHANGE_CIPHER_SPEC, 1), record(CONTENT_HANDSHAKE, 40)].concat()),
            (Server, &[record(CONTENT_CHANGE_CIPHER_SPEC, 1), record(CONTENT_HANDSHAKE, 40)].concat()),
            (Client, &[record(CONTENT_APPLICATION_DATA, 300), record(CONTENT_APPLICATION_DATA, 20)].concat()),
            (Server, &record(CONTENT_APPLICATION_DATA, 1200)),
            (Server, &record(CONTENT_APPLICATION_DATA, 1200)),
            (Client, &record(CONTENT_APPLICATION_DATA, 300)),
            (Server, &record(CONTENT_APPLICATION_DATA, 100)),
            (Client, &record(CONTENT_APPLICATION_DATA, 31)), // unanswered
        ]);
        assert_eq!(sniffer.summary().exchanges_estimate, 2);
        assert_eq!(sniffer.client_hellos, 1);
    }

    #[test]
    fn test_tls13_client_finished_is_not_an_exchange() {
        let (sniffer, _) = sniff(&[
            (Client, &client_hello("a", &[3; 32], false)),
            (Server, &[server_hello(&[3; 32], TLS13, false, [1; 32]), record(CONTENT_APPLICATION_DATA, 2000)].concat()),
            (Client, &[record(CONTENT_CHANGE_CIPHER_SPEC, 1), record(CONTENT_APPLICATION_DATA, 53)].concat()),
            (Server, &record(CONTENT_APPLICATION_DATA, 200)), // NewSessionTicket
            (Client, &record(CONTENT_APPLICATION_DATA, 90)),
            (Server, &record(CONTENT_APPLICATION_DATA, 500)),
        ]);
        assert_eq!(sniffer.exchanges, 1);
    }

    #[test]
    fn test_tls13_close_notify_exchange_is_not_a_request() {
        let (sniffer, _) = sniff(&[
            (Client, &client_hello("a", &[3; 32], false)),
            (Server, &[server_hello(&[3; 32], TLS13, false, [1; 32]), record(CONTENT_APPLICATION_DATA, 2000)].concat()),
            (Client, &[record(CONTENT_CHANGE_CIPHER_SPEC, 1), record(CONTENT_APPLICATION_DATA, 53)].concat()),
            (Client, &record(CONTENT_APPLICATION_DATA, 90)),  // the request
            (Server, &record(CONTENT_APPLICATION_DATA, 500)), // the response
            (Client, &record(CONTENT_APPLICATION_DATA, 19)),  // encrypted close_notify
            (Server, &record(CONTENT_APPLICATION_DATA, 19)),  // the server's close_notify
        ]);
        assert_eq!(sniffer.exchanges, 1);
    }

    #[test]
    fn test_gap_inside_a_record_keeps_record_boundaries() {
        let mut sniffer = TlsSniffer::default();
        let data = record(CONTENT_APPLICATION_DATA, 1000);
        sniffer.data(Client, &data[..100], &mut Vec::new());
        sniffer.gap(Client, 800);
        sniffer.data(Client, &data[900..], &mut Vec::new());
        sniffer.data(Server, &record(CONTENT_APPLICATION_DATA, 10), &mut Vec::new());
        assert_eq!(sniffer.exchanges, 1);
        assert!(!sniffer.directions[0].lost);
        sniffer.gap(Client, 5); // between records: boundaries are lost
        assert!(sniffer.directions[0].lost);
    }

    #[test]
    fn test_garbage_and_truncated_hellos_do_not_count() {
        let mut hello = client_hello("x", &[], false);
        hello[5 + 4 + 2 + 32] = 200; // session id length: longer than 32 and than the message
        let (sniffer, events) = sniff(&[(Client, &hello), (Client, b"\xff\xff\xff\xff\xff\xff")]);
        assert_eq!(sniffer.client_hellos, 0);
        assert!(events.is_empty());
        assert!(sniffer.directions[0].lost);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A ServerHello choosing cipher suite `suite` (the helper's 0x1301 patched).
    fn server_hello_with_suite(session_id: &[u8], version: u16, suite: u16, random: [u8; 32]) -> Vec<u8> {
        let mut hello = server_hello(session_id, version, false, random);
        let at = 5 + 4 + 2 + 32 + 1 + session_id.len();
        hello[at..at + 2].copy_from_slice(&suite.to_be_bytes());
        hello
    }

    /// A handshake message (header included).
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
        m.extend_from_slice(body);
        m
    }

    const TLS13_SECRETS: [(&str, u8); 4] = [
        ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1),
        ("SERVER_HANDSHAKE_TRAFFIC_SECRET", 2),
        ("CLIENT_TRAFFIC_SECRET_0", 3),
        ("SERVER_TRAFFIC_SECRET_0", 4),
    ];

    fn tls13_keys(client_random: [u8; 32]) -> Arc<TlsKeys> {
        let mut keys = TlsKeys::new();
        let log: String =
            TLS13_SECRETS.iter().map(|(label, fill)| format!("{label} {} {}\n", hex(&client_random), hex(&[*fill; 32]))).collect();
        assert!(keys.add_key_log(log.as_bytes()).is_empty());
        Arc::new(keys)
    }

    fn protection(fill: u8) -> RecordProtection {
        let suite = Suite::from_id(0x1301).expect("suite");
        RecordProtection::tls13(suite, &Secret::new(&[fill; 32]).expect("secret")).expect("keys")
    }

    fn plaintext(sniffer: &mut TlsSniffer) -> Vec<(Side, Vec<u8>)> {
        sniffer
            .take_plaintext()
            .into_iter()
            .map(|p| match p {
                Plain::Data(side, bytes) => (side, bytes),
                Plain::Gap(side, len) => (side, format!("<gap {len}>").into_bytes()),
            })
            .collect()
    }

    /// A TLS 1.3 conversation as the peers send it: hellos, the server's encrypted flight ending
    /// in Finished, the client's Finished, a request, a response after a KeyUpdate of the server.
    fn tls13_conversation() -> Vec<(Side, Vec<u8>)> {
        let (mut client_hs, mut server_hs, mut client_app, mut server_app) = (protection(1), protection(2), protection(3), protection(4));
        let server_flight = [message(8, &[0, 0]), message(11, &[0; 300]), message(20, &[7; 32])].concat();
        let suite = Suite::from_id(0x1301).expect("suite");
        let updated = crate::protocol::tls_crypto::next_traffic_secret(suite, &Secret::new(&[4; 32]).expect("secret")).expect("next");
        let mut server_updated = RecordProtection::tls13(suite, &updated).expect("keys");
        vec![
            (Client, client_hello("decrypt.example", &[], false)),
            (Server, server_hello(&[], TLS13, false, [9; 32])),
            (Server, record(CONTENT_CHANGE_CIPHER_SPEC, 1)),
            // The flight in two records, the Finished's message split across them.
            (Server, server_hs.seal(CONTENT_HANDSHAKE, &server_flight[..200])),
            (Server, server_hs.seal(CONTENT_HANDSHAKE, &server_flight[200..])),
            (Client, client_hs.seal(CONTENT_HANDSHAKE, &message(20, &[8; 32]))),
            (Client, client_app.seal(CONTENT_APPLICATION_DATA, b"GET / HTTP/1.1\r\n\r\n")),
            (Server, server_app.seal(CONTENT_HANDSHAKE, &message(24, &[0]))),
            (Server, server_updated.seal(CONTENT_APPLICATION_DATA, b"HTTP/1.1 200 OK\r\n\r\n")),
        ]
    }

    #[test]
    fn test_tls13_with_logged_secrets_gives_the_application_data_after_finished_and_key_update() {
        let conversation = tls13_conversation();
        let want = [(Client, b"GET / HTTP/1.1\r\n\r\n".to_vec()), (Server, b"HTTP/1.1 200 OK\r\n\r\n".to_vec())];
        // Whole records, then every record cut in two at every place.
        for cut in [None, Some(1), Some(5), Some(17)] {
            let mut sniffer = TlsSniffer::with_keys(Some(tls13_keys([0x42; 32])));
            let mut events = Vec::new();
            let mut out = Vec::new();
            for (side, bytes) in &conversation {
                let at = cut.unwrap_or(bytes.len()).min(bytes.len());
                sniffer.data(*side, &bytes[..at], &mut events);
                sniffer.data(*side, &bytes[at..], &mut events);
                out.extend(plaintext(&mut sniffer));
            }
            assert_eq!(out, want, "cut at {cut:?}");
            let summary = sniffer.summary();
            assert_eq!((summary.decrypted, summary.decrypt_failures), (true, Some(0)));
        }
    }

    #[test]
    fn test_tls13_with_wrong_secrets_counts_failures_and_gives_gaps() {
        let mut keys = TlsKeys::new();
        let log: String = TLS13_SECRETS.iter().map(|(label, _)| format!("{label} {} {}\n", hex(&[0x42; 32]), hex(&[0xee; 32]))).collect();
        keys.add_key_log(log.as_bytes());
        let (mut sniffer, _) = (TlsSniffer::with_keys(Some(Arc::new(keys))), ());
        let mut events = Vec::new();
        for (side, bytes) in tls13_conversation() {
            sniffer.data(side, &bytes, &mut events);
        }
        let out = plaintext(&mut sniffer);
        assert_eq!(out.len(), 6, "every encrypted record is a gap: {out:?}");
        assert!(out.iter().all(|(_, bytes)| bytes.starts_with(b"<gap ")));
        assert_eq!(sniffer.summary().decrypt_failures, Some(6));
    }

    #[test]
    fn test_without_the_connections_secrets_nothing_is_decrypted() {
        let mut sniffer = TlsSniffer::with_keys(Some(tls13_keys([0x17; 32])));
        let mut events = Vec::new();
        for (side, bytes) in tls13_conversation() {
            sniffer.data(side, &bytes, &mut events);
        }
        assert!(plaintext(&mut sniffer).is_empty());
        let summary = sniffer.summary();
        assert_eq!((summary.decrypted, summary.decrypt_failures), (false, None));
        assert_eq!(summary.exchanges_estimate, 1);
    }

    #[test]
    fn test_tls12_resumed_session_takes_the_master_secret_of_the_session_it_resumes() {
        let master = Secret::new(&[0x33; 48]).expect("48 bytes");
        let mut keys = TlsKeys::new();
        keys.add_key_log(format!("CLIENT_RANDOM {} {}\n", hex(&[0x42; 32]), hex(master.bytes())).as_bytes());
        let keys = Arc::new(keys);
        let suite = Suite::from_id(0xc02f).expect("suite");
        let session = [5; 32];
        // The full handshake learns the session's master secret; the resumed one (another
        // client random, no key log line) echoes its session ID.
        for (client_random, server_random, offered) in [([0x42; 32], [1; 32], &[][..]), ([0x43; 32], [2; 32], &session[..])] {
            let mut hello = client_hello("resume.example", offered, false);
            hello[5 + 4 + 2..5 + 4 + 2 + 32].copy_from_slice(&client_random);
            let resumed = !offered.is_empty();
            let [mut client, mut server] = RecordProtection::tls12_pair(suite, &master, &client_random, &server_random).expect("keys");
            let mut sniffer = TlsSniffer::with_keys(Some(Arc::clone(&keys)));
            let mut events = Vec::new();
            let conversation = [
                (Client, hello),
                (Server, server_hello_with_suite(&session, 0x0303, 0xc02f, server_random)),
                (Server, record(CONTENT_CHANGE_CIPHER_SPEC, 1)),
                (Server, server.seal(CONTENT_HANDSHAKE, &message(20, &[0; 12]))),
                (Client, record(CONTENT_CHANGE_CIPHER_SPEC, 1)),
                (Client, client.seal(CONTENT_HANDSHAKE, &message(20, &[0; 12]))),
                (Client, client.seal(CONTENT_APPLICATION_DATA, b"GET /r HTTP/1.1\r\n\r\n")),
            ];
            for (side, bytes) in conversation {
                sniffer.data(side, &bytes, &mut events);
            }
            assert_eq!(plaintext(&mut sniffer), [(Client, b"GET /r HTTP/1.1\r\n\r\n".to_vec())], "client random {client_random:?}");
            let summary = sniffer.summary();
            assert_eq!((summary.decrypt_failures, summary.resumed_handshakes), (Some(0), u32::from(resumed)));
        }
    }

    #[test]
    fn test_a_live_key_log_that_brings_the_secrets_late_decrypts_the_records_held_until_then() {
        let path = std::env::temp_dir().join(format!("connscope-live-keylog-{}.txt", std::process::id()));
        std::fs::write(&path, b"").expect("temp file");
        let keys = Arc::new(TlsKeys::live(&path));
        let mut sniffer = TlsSniffer::with_keys(Some(keys));
        let mut events = Vec::new();
        let conversation = tls13_conversation();
        // Up to the client's Finished the key log is empty: the records are held.
        for (side, bytes) in &conversation[..6] {
            sniffer.data(*side, bytes, &mut events);
        }
        assert!(sniffer.decryption.is_none() && sniffer.waiting.is_some());
        let log: String =
            TLS13_SECRETS.iter().map(|(label, fill)| format!("{label} {} {}\n", hex(&[0x42; 32]), hex(&[*fill; 32]))).collect();
        std::fs::write(&path, log).expect("key log");
        for (side, bytes) in &conversation[6..] {
            sniffer.data(*side, bytes, &mut events);
        }
        std::fs::remove_file(&path).expect("remove");
        let want = [(Client, b"GET / HTTP/1.1\r\n\r\n".to_vec()), (Server, b"HTTP/1.1 200 OK\r\n\r\n".to_vec())];
        assert_eq!(plaintext(&mut sniffer), want);
        assert_eq!(sniffer.summary().decrypt_failures, Some(0));
    }

    #[test]
    fn test_tls13_early_data_records_under_another_key_do_not_shift_the_handshake_records() {
        let mut conversation = tls13_conversation();
        let mut early = protection(0x55);
        // Client early data (its own key) still arriving after the ServerHello.
        conversation.insert(2, (Client, early.seal(CONTENT_APPLICATION_DATA, b"GET /early HTTP/1.1\r\n\r\n")));
        let mut sniffer = TlsSniffer::with_keys(Some(tls13_keys([0x42; 32])));
        let mut events = Vec::new();
        for (side, bytes) in &conversation {
            sniffer.data(*side, bytes, &mut events);
        }
        let out = plaintext(&mut sniffer);
        assert_eq!(out[1..], [(Client, b"GET / HTTP/1.1\r\n\r\n".to_vec()), (Server, b"HTTP/1.1 200 OK\r\n\r\n".to_vec())]);
        assert_eq!(sniffer.summary().decrypt_failures, Some(1), "the early data record cannot be opened");
    }
}
