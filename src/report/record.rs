//! The one builder of a connection's record.
//!
//! Input: what the flow table knows of a finished connection ([`TcpFacts`], from
//! [`crate::tcp::FlowTable`]) and what its protocol watcher read ([`ProtocolSummary`], from
//! [`crate::protocol`]). Output: the [`ConnectionRecord`], built by the flow table's sinks (the
//! pipeline's collector, or a parallel worker), and on to the [`super::ReportBuilder`] and the renderers.

use super::close_cause::{self, CloseFacts};
use super::{ConnectionRecord, EndReason, FinFirst, Handshake, PerSide, RequestRecord};
use crate::protocol::{Protocol, ProtocolSummary};
use crate::tcp::TcpFacts;
use crate::wire::Side;
use smallvec::SmallVec;

impl ConnectionRecord {
    /// The record of a connection from its TCP facts and its protocol summary. Timestamps become
    /// relative to `capture_start` (epoch seconds; the connection's first segment when `None`).
    /// Live-only fields (processes, kernel states) are left empty: live capture fills them.
    pub fn from_facts(tcp: &TcpFacts, proto: &ProtocolSummary, end: EndReason, capture_start: Option<f64>) -> ConnectionRecord {
        let start = capture_start.unwrap_or(tcp.first_ts);
        let handshake = match (tcp.syn_seen, tcp.syn_ack_seen, tcp.handshake_acked) {
            (true, true, true) => Handshake::Complete,
            (true, true, false) => Handshake::SynAck,
            (true, false, _) => Handshake::SynOnly,
            (false, _, _) => Handshake::MidStream,
        };
        let encrypted = proto.protocol == Protocol::Tls;
        // HTTP inside TLS cannot be counted; the CONNECT that opened a TLS tunnel was read in clear.
        let http_hidden = encrypted && proto.http_requests == 0 && !proto.http_readable();
        let tls = proto.tls.clone();
        let requests: SmallVec<[RequestRecord; 1]> = proto.exchanges.iter().map(RequestRecord::from).collect();
        let h2_streams = proto.h2.as_ref().map(|h| h.streams);
        // HTTP/1 requests and h2c request streams are both HTTP requests: `reused` follows from them.
        let request_count = match proto.protocol {
            Protocol::Http1 | Protocol::H2c => proto.http_requests,
            Protocol::Tls if proto.http_readable() => proto.http_requests,
            Protocol::Tls => tls.as_ref().map_or(0, |t| t.exchanges_estimate),
            Protocol::None | Protocol::Unknown => tcp.exchanges,
        };
        let close = close_facts(tcp, proto);
        let close_cause = close_cause::classify(&close);
        let close_after_response = match (tcp.last_response_ts, tcp.first_fin_ts) {
            (Some(resp), Some(fin)) if fin >= resp => Some(fin - resp),
            _ => None,
        };
        ConnectionRecord {
            id: tcp.id,
            client: tcp.client,
            server: tcp.server,
            server_port: tcp.server.port(),
            first_ts: tcp.first_ts - start,
            last_ts: tcp.last_ts - start,
            duration: tcp.last_ts - tcp.first_ts,
            handshake,
            protocol: proto.protocol,
            http_requests: if http_hidden { None } else { Some(proto.http_requests) },
            http_responses: if http_hidden { None } else { Some(proto.http_responses) },
            requests,
            exchanges: request_count,
            reused: request_count > 1,
            fin_first: FinFirst::from(tcp.fin_first),
            simultaneous_close: tcp.simultaneous_close,
            rst_by: tcp.rst_by,
            rst_ignored: tcp.rst_ignored,
            close_requested_by: proto.close_requested_by,
            close_cause,
            answered_requests: close.readable.then_some(close.answered_in_full()),
            keepalive_probes: PerSide { client: tcp.keepalive_probes[0], server: tcp.keepalive_probes[1] },
            keepalive_interval: tcp.keepalive_interval,
            client_state: tcp.client_state,
            server_state: tcp.server_state,
            tls,
            h2_streams,
            h2_goaway: proto.h2.as_ref().and_then(|h| h.goaway),
            packets: tcp.packets,
            bytes: tcp.bytes,
            stream_gaps: PerSide { client: proto.gaps[0], server: proto.gaps[1] },
            end,
            close_after_response,
            first_close_ts: tcp.first_close_ts.map(|ts| ts - start),
            client_process: None,
            server_process: None,
            kernel_client_state: None,
            kernel_server_state: None,
        }
    }
}

/// What the close-cause rules read of a finished connection. When the server's byte stream has holes
/// (lost packets, a snaplen that cut the heads) the framer cannot see where responses end: a
/// response whose head was counted is then taken as answered in full when the client acknowledged
/// every byte the server sent.
fn close_facts(tcp: &TcpFacts, proto: &ProtocolSummary) -> CloseFacts {
    let server_gaps = proto.gaps[Side::Server.index()] > 0;
    let answered = if server_gaps && tcp.server_data_acked { proto.answered.max(proto.http_responses) } else { proto.answered };
    CloseFacts {
        refused: tcp.syn_seen && !tcp.syn_ack_seen && tcp.rst_by == Some(Side::Server),
        // A decrypted TLS close_notify shows who closed even when the peer's FIN came first.
        first_close: proto.tls.as_ref().and_then(|t| t.close_notify_by).or(tcp.fin_first).or(tcp.rst_by),
        readable: proto.http_readable(),
        client_announced: proto.close_announced[Side::Client.index()],
        server_announced: proto.close_announced[Side::Server.index()],
        requests: proto.http_requests,
        requests_at_first_fin: tcp.at_first_fin.map(|(requests, _)| requests),
        answered_at_client_fin: tcp.at_first_fin.map(|(_, answered)| answered).filter(|_| tcp.fin_first == Some(Side::Client)),
        client_reset_after_fin: tcp.fin_first == Some(Side::Client) && tcp.rst_by == Some(Side::Client),
        answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::state::TcpState;

    fn facts() -> TcpFacts {
        TcpFacts {
            id: 7,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            first_ts: 100.5,
            last_ts: 102.0,
            syn_seen: true,
            syn_ack_seen: true,
            handshake_acked: true,
            exchanges: 3,
            fin_first: Some(Side::Client),
            simultaneous_close: false,
            rst_by: None,
            rst_ignored: 0,
            keepalive_probes: [2, 0],
            keepalive_interval: Some(1.0),
            client_state: TcpState::TIME_WAIT,
            server_state: TcpState::CLOSED,
            packets: 12,
            bytes: 900,
            server_data_acked: true,
            last_response_ts: Some(101.0),
            first_fin_ts: Some(101.5),
            first_close_ts: Some(101.5),
            at_first_fin: Some((1, 1)),
        }
    }

    fn summary(protocol: Protocol, http_requests: u32) -> ProtocolSummary {
        ProtocolSummary {
            protocol,
            http_requests,
            http_responses: http_requests,
            exchanges: Vec::new(),
            close_requested_by: None,
            close_announced: [false; 2],
            answered: http_requests,
            http10: false,
            tls: None,
            h2: None,
            gaps: [0; 2],
            gap_bytes: [0; 2],
            resyncs: 0,
            inside_tls: None,
        }
    }

    #[test]
    fn test_record_of_an_unknown_protocol_counts_payload_turns_as_requests() {
        let record = ConnectionRecord::from_facts(&facts(), &summary(Protocol::Unknown, 0), EndReason::Closed, Some(100.0));
        assert_eq!((record.exchanges, record.reused, record.http_requests), (3, true, Some(0)));
        assert_eq!((record.first_ts, record.last_ts, record.duration), (0.5, 2.0, 1.5));
        assert_eq!(record.close_after_response, Some(0.5));
        assert_eq!(record.first_close_ts, Some(1.5));
        assert_eq!(record.handshake, Handshake::Complete);
        assert_eq!(record.fin_first, FinFirst::Client);
        assert_eq!((record.keepalive_probes.client, record.keepalive_probes.server), (2, 0));
        assert_eq!(record.answered_requests, None);
    }

    #[test]
    fn test_record_of_http1_counts_requests_and_leaves_live_fields_empty() {
        let record = ConnectionRecord::from_facts(&facts(), &summary(Protocol::Http1, 1), EndReason::Closed, None);
        assert_eq!((record.exchanges, record.reused, record.http_requests), (1, false, Some(1)));
        assert_eq!(record.answered_requests, Some(1));
        assert_eq!(record.first_ts, 0.0);
        assert!(record.client_process.is_none() && record.kernel_client_state.is_none());
    }

    #[test]
    fn test_record_of_tls_without_a_clear_connect_hides_http_counts() {
        let record = ConnectionRecord::from_facts(&facts(), &summary(Protocol::Tls, 0), EndReason::Closed, None);
        assert_eq!((record.http_requests, record.http_responses, record.exchanges), (None, None, 0));
    }

    #[test]
    fn test_record_handshake_without_syn_ack_is_syn_only_and_a_server_reset_is_refused() {
        let tcp = TcpFacts { syn_ack_seen: false, handshake_acked: false, rst_by: Some(Side::Server), fin_first: None, ..facts() };
        let record = ConnectionRecord::from_facts(&tcp, &summary(Protocol::None, 0), EndReason::Closed, None);
        assert_eq!(record.handshake, Handshake::SynOnly);
        assert!(close_facts(&tcp, &summary(Protocol::None, 0)).refused);
    }
}
