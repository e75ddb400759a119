//! TLS record sniffing: ClientHello / ServerHello (SNI, resumption) and turns of application data.
//!
//! Only the plaintext handshake hellos are read; everything else is skipped record by record.

use super::{prefix_verdict, ProtocolEvent, TlsSummary, Verdict};
use crate::side::Side;

const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;
const CONTENT_HEARTBEAT: u8 = 24;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const EXTENSION_SERVER_NAME: u16 = 0;
const EXTENSION_PRE_SHARED_KEY: u16 = 41;
const EXTENSION_SUPPORTED_VERSIONS: u16 = 43;
const TLS13: u16 = 0x0304;
/// Largest record body (2^14 plus the allowed expansion).
const MAX_RECORD_BODY: usize = 16384 + 2048;
/// The ServerHello random that marks a HelloRetryRequest (RFC 8446, 4.1.3).
const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11,
    0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
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
    session_id: SessionId,
}

/// What the ServerHello chose.
#[derive(Debug)]
struct ServerHello {
    retry_request: bool,
    session_id: SessionId,
    psk_selected: bool,
    version: u16,
}

/// Parses a ClientHello handshake message (type byte included); `None` when malformed.
fn parse_client_hello(message: &[u8]) -> Option<ClientHello> {
    let mut r = Reader { bytes: message };
    if r.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    r.take(3 + 2 + 32)?; // length, legacy version, random
    let session_id = SessionId::from_slice(r.vec8()?)?;
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut hello = ClientHello { sni: None, session_id };
    let Some(extensions) = r.vec16() else { return Some(hello) };
    for (kind, data) in (Reader { bytes: extensions }).extensions() {
        if kind == EXTENSION_SERVER_NAME {
            hello.sni = server_name(data);
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

/// Parses a ServerHello handshake message (type byte included); `None` when malformed.
fn parse_server_hello(message: &[u8]) -> Option<ServerHello> {
    let mut r = Reader { bytes: message };
    if r.u8()? != HANDSHAKE_SERVER_HELLO {
        return None;
    }
    r.take(3)?;
    let legacy_version = r.u16()?;
    let random = r.take(32)?;
    let session_id = SessionId::from_slice(r.vec8()?)?;
    r.take(2 + 1)?; // cipher suite, compression method
    let mut hello = ServerHello {
        retry_request: random == HELLO_RETRY_REQUEST_RANDOM,
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
    /// The current record's body, when it may hold a hello.
    body: Vec<u8>,
    buffering: bool,
    /// ChangeCipherSpec seen: later handshake records are encrypted.
    encrypted: bool,
    /// Record boundaries lost (gap or garbage): the rest of this direction is skipped.
    lost: bool,
}

impl RecordReader {
    fn content_type(&self) -> u8 {
        self.header[0]
    }
}

/// Sniffs both directions of one TLS connection.
#[derive(Debug, Default)]
pub struct TlsSniffer {
    directions: [RecordReader; 2],
    client_hellos: u32,
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
}

impl TlsSniffer {
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
            if direction.body_left == record_len(direction) && !direction.encrypted {
                let hello_type = match side {
                    Side::Client => HANDSHAKE_CLIENT_HELLO,
                    Side::Server => HANDSHAKE_SERVER_HELLO,
                };
                direction.buffering = direction.content_type() == CONTENT_HANDSHAKE && bytes[0] == hello_type;
                direction.body.clear();
            }
            let take = direction.body_left.min(bytes.len());
            if direction.buffering {
                direction.body.extend_from_slice(&bytes[..take]);
            }
            direction.body_left -= take;
            bytes = &bytes[take..];
            if direction.body_left == 0 {
                self.record_finished(side, events);
            }
        }
    }

    /// `len` bytes of `side`'s stream are missing.
    pub fn gap(&mut self, side: Side, len: u64) {
        let direction = &mut self.directions[side.index()];
        let in_body = usize::from(direction.header_len) == direction.header.len();
        if in_body && len < direction.body_left as u64 {
            direction.body_left -= len as usize;
            direction.buffering = false;
        } else if in_body && len == direction.body_left as u64 {
            direction.buffering = false;
            direction.header_len = 0;
        } else {
            direction.lost = true;
        }
    }

    /// What was seen, for the connection's summary.
    pub fn summary(&self) -> TlsSummary {
        TlsSummary {
            client_hellos: self.client_hellos,
            full_handshakes: self.full_handshakes,
            resumed_handshakes: self.resumed_handshakes,
            sni: self.sni.clone(),
            version: self.version.map(version_name),
            exchanges_estimate: self.exchanges,
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
        direction.buffering = false;
        match content_type {
            CONTENT_CHANGE_CIPHER_SPEC => direction.encrypted = true,
            CONTENT_APPLICATION_DATA => self.application_data(side),
            _ => {}
        }
        if self.directions[side.index()].body_left == 0 {
            self.directions[side.index()].header_len = 0;
        }
    }

    fn record_finished(&mut self, side: Side, events: &mut Vec<ProtocolEvent>) {
        let direction = &mut self.directions[side.index()];
        direction.header_len = 0;
        if !direction.buffering {
            return;
        }
        direction.buffering = false;
        let body = std::mem::take(&mut direction.body);
        match side {
            Side::Client => self.client_hello(&body, events),
            Side::Server => self.server_hello(&body),
        }
        self.directions[side.index()].body = body;
    }

    fn client_hello(&mut self, message: &[u8], events: &mut Vec<ProtocolEvent>) {
        let Some(hello) = parse_client_hello(message) else { return };
        self.client_hellos = self.client_hellos.saturating_add(1);
        if self.sni.is_none() {
            self.sni.clone_from(&hello.sni);
        }
        self.offered_session_id = hello.session_id;
        events.push(ProtocolEvent::TlsClientHello { sni: hello.sni });
    }

    fn server_hello(&mut self, message: &[u8]) {
        let Some(hello) = parse_server_hello(message) else { return };
        if hello.retry_request {
            return; // the client sends a second ClientHello
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
    }

    /// An application-data record starts: a client burst followed by a server burst is one exchange.
    fn application_data(&mut self, side: Side) {
        match side {
            Side::Client if self.client_records_to_ignore > 0 => self.client_records_to_ignore -= 1,
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
