//! HTTP/2 over cleartext (h2c): checks the client connection preface, then walks the client's frames
//! to count the streams it opens. HPACK is not decoded; the server's direction is not read.

use super::{H2Summary, ProtocolEvent};
use crate::side::Side;

/// The client connection preface (RFC 9113, 3.4).
pub const CLIENT_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const FRAME_HEADERS: u8 = 0x1;

/// Counts client-opened streams of one h2c connection.
#[derive(Debug, Default)]
pub struct H2Counter {
    /// Bytes of the client preface matched so far.
    preface_matched: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    payload_left: u64,
    /// Highest client stream id that carried HEADERS (client stream ids only grow).
    highest_stream: u32,
    streams: u32,
    upgraded_from_http1: bool,
    /// Frame boundaries lost (gap, bad preface): the rest of the client stream is skipped.
    lost: bool,
}

impl H2Counter {
    /// A counter for a connection that starts with the client preface (prior knowledge).
    pub fn prior_knowledge() -> Self {
        Self::default()
    }

    /// A counter for a connection upgraded by `Upgrade: h2c` + 101: the upgraded request is stream 1.
    pub fn upgraded() -> Self {
        H2Counter { highest_stream: 1, streams: 1, upgraded_from_http1: true, ..Self::default() }
    }

    /// The next bytes of `side`'s stream.
    pub fn data(&mut self, side: Side, mut bytes: &[u8], events: &mut Vec<ProtocolEvent>) {
        if side == Side::Server {
            return;
        }
        while !bytes.is_empty() && !self.lost {
            if self.preface_matched < CLIENT_PREFACE.len() {
                let expected = &CLIENT_PREFACE[self.preface_matched..];
                let take = expected.len().min(bytes.len());
                if bytes[..take] != expected[..take] {
                    self.lost = true;
                    return;
                }
                self.preface_matched += take;
                bytes = &bytes[take..];
                if self.preface_matched == CLIENT_PREFACE.len() {
                    events.push(ProtocolEvent::H2Preface);
                }
            } else if self.payload_left > 0 {
                let take = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= take;
                bytes = &bytes[take as usize..];
            } else {
                let take = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len == FRAME_HEADER_LEN {
                    self.header_len = 0;
                    self.frame_started();
                }
            }
        }
    }

    /// `len` bytes of `side`'s stream are missing.
    pub fn gap(&mut self, side: Side, len: u64) {
        if side == Side::Client {
            if self.header_len == 0 && len <= self.payload_left && self.preface_matched == CLIENT_PREFACE.len() {
                self.payload_left -= len;
            } else {
                self.lost = true;
            }
        }
    }

    /// What was seen, for the connection's summary.
    pub fn summary(&self) -> H2Summary {
        H2Summary { streams: self.streams, upgraded_from_http1: self.upgraded_from_http1 }
    }

    fn frame_started(&mut self) {
        let h = &self.header;
        self.payload_left = u64::from(u32::from_be_bytes([0, h[0], h[1], h[2]]));
        let frame_type = h[3];
        let stream_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if frame_type == FRAME_HEADERS && stream_id % 2 == 1 && stream_id > self.highest_stream {
            self.highest_stream = stream_id;
            self.streams = self.streams.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload_len: usize) -> Vec<u8> {
        let len = (payload_len as u32).to_be_bytes();
        let mut v = vec![len[1], len[2], len[3], kind, flags];
        v.extend(stream.to_be_bytes());
        v.extend(vec![0u8; payload_len]);
        v
    }

    const SETTINGS: u8 = 0x4;
    const DATA: u8 = 0x0;
    const WINDOW_UPDATE: u8 = 0x8;

    fn client_stream() -> Vec<u8> {
        [
            CLIENT_PREFACE.to_vec(),
            frame(SETTINGS, 0, 0, 18),
            frame(WINDOW_UPDATE, 0, 0, 4),
            frame(FRAME_HEADERS, 0x4, 1, 30),
            frame(DATA, 0x1, 1, 1000),
            frame(FRAME_HEADERS, 0x5, 3, 12),
            frame(FRAME_HEADERS, 0x5, 3, 7), // trailers on stream 3: not a new stream
            frame(SETTINGS, 0x1, 0, 0),
            frame(FRAME_HEADERS, 0x5, 5, 12),
            frame(FRAME_HEADERS, 0x5, 2, 12), // even id: not client-initiated
        ]
        .concat()
    }

    #[test]
    fn test_h2c_prior_knowledge_counts_client_streams() {
        let bytes = client_stream();
        for cut in 0..=bytes.len() {
            let mut counter = H2Counter::prior_knowledge();
            let mut events = Vec::new();
            counter.data(Side::Client, &bytes[..cut], &mut events);
            counter.data(Side::Server, &frame(FRAME_HEADERS, 0x4, 7, 20), &mut events);
            counter.data(Side::Client, &bytes[cut..], &mut events);
            assert_eq!(counter.summary().streams, 3, "cut at {cut}");
            assert_eq!(events, [ProtocolEvent::H2Preface]);
        }
    }

    #[test]
    fn test_h2c_upgrade_counts_stream_one_once() {
        let mut counter = H2Counter::upgraded();
        let bytes = [CLIENT_PREFACE.to_vec(), frame(SETTINGS, 0, 0, 6), frame(FRAME_HEADERS, 0x5, 3, 9)].concat();
        counter.data(Side::Client, &bytes, &mut Vec::new());
        let summary = counter.summary();
        assert_eq!((summary.streams, summary.upgraded_from_http1), (2, true));
    }

    #[test]
    fn test_bad_preface_stops_counting() {
        let mut counter = H2Counter::prior_knowledge();
        let bytes = [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".to_vec(), frame(FRAME_HEADERS, 0x5, 1, 9)].concat();
        let mut events = Vec::new();
        counter.data(Side::Client, &bytes, &mut events);
        assert_eq!(counter.summary().streams, 0);
        assert!(events.is_empty());
    }

    #[test]
    fn test_gap_inside_a_frame_payload_keeps_frame_boundaries() {
        let mut counter = H2Counter::prior_knowledge();
        let data = frame(DATA, 0, 1, 500);
        let bytes = [CLIENT_PREFACE.to_vec(), frame(FRAME_HEADERS, 0x4, 1, 10), data[..100].to_vec()].concat();
        counter.data(Side::Client, &bytes, &mut Vec::new());
        counter.gap(Side::Client, 300);
        counter.data(Side::Client, &[&data[400..], &frame(FRAME_HEADERS, 0x5, 3, 4)[..]].concat(), &mut Vec::new());
        assert_eq!(counter.summary().streams, 2);
        counter.gap(Side::Client, 1); // between frames: boundaries are lost
        counter.data(Side::Client, &frame(FRAME_HEADERS, 0x5, 5, 4), &mut Vec::new());
        assert_eq!(counter.summary().streams, 2);
    }
}
