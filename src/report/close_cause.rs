//! Why each connection ended: one [`CloseCause`] per connection, the first rule that applies.
//!
//! Input: the [`CloseFacts`] the record builder (`record.rs`) gathers for a finished connection
//! from its TCP facts and protocol summary (TCP: who sent the first FIN or the RST; protocol: which
//! side's message announced the close, how many requests were answered in full). Output: the cause
//! on the connection's record and its tally in the summary, which the verdict's findings read. The rules are the JSON contract of `docs/json.md`.

use crate::wire::Side;
use serde::Serialize;

/// Why a connection ended, as `connections[].close_cause` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseCause {
    /// The client's SYN was answered by RST.
    Refused,
    /// No FIN and no acceptable RST by the end of the capture.
    Open,
    /// One of the client's requests announced the close (`Connection: close`, or HTTP/1.0 without
    /// keep-alive), whichever side's FIN then came first.
    ClientAsked,
    /// The client did not ask, and a response announced the close.
    ServerAsked,
    /// The client closed (FIN or RST) while a request was unanswered or its response incomplete.
    ClientAbort,
    /// The server closed (FIN or RST) while a request was unanswered or its response incomplete.
    ServerAbort,
    /// The client closed first with every request answered in full, unannounced.
    ClientIdle,
    /// The server closed first with every request answered in full, unannounced (an idle timeout).
    ServerIdle,
}

impl CloseCause {
    /// Every cause, in the order of the rules (and of the summary's tally).
    pub const ALL: [CloseCause; 8] = [
        CloseCause::Refused,
        CloseCause::Open,
        CloseCause::ClientAsked,
        CloseCause::ServerAsked,
        CloseCause::ClientAbort,
        CloseCause::ServerAbort,
        CloseCause::ClientIdle,
        CloseCause::ServerIdle,
    ];

    /// The JSON name (`client_idle`).
    pub fn name(self) -> &'static str {
        match self {
            CloseCause::Refused => "refused",
            CloseCause::Open => "open",
            CloseCause::ClientAsked => "client_asked",
            CloseCause::ServerAsked => "server_asked",
            CloseCause::ClientAbort => "client_abort",
            CloseCause::ServerAbort => "server_abort",
            CloseCause::ClientIdle => "client_idle",
            CloseCause::ServerIdle => "server_idle",
        }
    }

    /// The side whose action the cause names: who asked, aborted or closed while idle.
    pub fn side(self) -> Option<Side> {
        match self {
            CloseCause::ClientAsked | CloseCause::ClientAbort | CloseCause::ClientIdle => Some(Side::Client),
            CloseCause::ServerAsked | CloseCause::ServerAbort | CloseCause::ServerIdle | CloseCause::Refused => Some(Side::Server),
            CloseCause::Open => None,
        }
    }

    /// Closed by the side that sent the first FIN or RST, with nothing announced or left unanswered.
    fn idle_by(side: Side) -> CloseCause {
        match side {
            Side::Client => CloseCause::ClientIdle,
            Side::Server => CloseCause::ServerIdle,
        }
    }

    fn abort_by(side: Side) -> CloseCause {
        match side {
            Side::Client => CloseCause::ClientAbort,
            Side::Server => CloseCause::ServerAbort,
        }
    }
}

impl std::fmt::Display for CloseCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the rules read of one finished connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseFacts {
    /// The client's SYN was seen and answered by an RST (no SYN-ACK).
    pub refused: bool,
    /// The side that sent the first FIN, or the acceptable RST when no FIN came first.
    pub first_close: Option<Side>,
    /// The payload was HTTP the framer could read (HTTP/1.x or h2c); `false` for TLS, unknown
    /// protocols and connections without payload, whose requests cannot be judged.
    pub readable: bool,
    /// A client request announced the close.
    pub client_announced: bool,
    /// A server response announced the close (`Connection: close`, HTTP/1.0 without keep-alive, or
    /// an HTTP/2 GOAWAY).
    pub server_announced: bool,
    /// Requests the client sent over the whole connection.
    pub requests: u32,
    /// Requests the client had sent when the first FIN of the connection came.
    pub requests_at_first_fin: Option<u32>,
    /// Requests answered in full (the response's last byte seen).
    pub answered: u32,
    /// Requests answered in full when the client's FIN came.
    pub answered_at_client_fin: Option<u32>,
    /// The client sent its FIN first and later an RST: its socket was closed, and whatever the
    /// server sent after the FIN was thrown away (a client timeout).
    pub client_reset_after_fin: bool,
}

impl CloseFacts {
    /// Requests answered in full as the client got them: after a client's FIN and RST only those
    /// answered before its FIN (the rest reached a closed socket).
    pub fn answered_in_full(&self) -> u32 {
        let answered = if self.client_reset_after_fin { self.answered_at_client_fin.unwrap_or(self.answered) } else { self.answered };
        answered.min(self.requests)
    }
}

/// The cause of one connection's end: the first rule of `docs/json.md` that applies.
///
/// "Answered in full" is judged over the whole connection when the client closed first (a client
/// that half-closes after its request and then receives the whole response closed while idle), and
/// over the requests sent before the server's FIN when the server closed first (a request that
/// crossed the server's idle-timeout FIN was sent to a closing connection: the server was idle).
pub fn classify(f: &CloseFacts) -> CloseCause {
    if f.refused {
        return CloseCause::Refused;
    }
    let Some(closer) = f.first_close else { return CloseCause::Open };
    if !f.readable {
        return CloseCause::idle_by(closer);
    }
    if f.client_announced {
        return CloseCause::ClientAsked;
    }
    if f.server_announced {
        return CloseCause::ServerAsked;
    }
    let outstanding = match closer {
        Side::Client => f.requests,
        Side::Server => f.requests_at_first_fin.map_or(f.requests, |n| n.min(f.requests)),
    };
    if outstanding > f.answered_in_full() {
        CloseCause::abort_by(closer)
    } else {
        CloseCause::idle_by(closer)
    }
}

/// The tally of close causes over every connection, every cause present (0 included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CloseCauseCounts {
    pub refused: u64,
    pub open: u64,
    pub client_asked: u64,
    pub server_asked: u64,
    pub client_abort: u64,
    pub server_abort: u64,
    pub client_idle: u64,
    pub server_idle: u64,
}

impl CloseCauseCounts {
    /// The count of one cause.
    pub fn get(&self, cause: CloseCause) -> u64 {
        *self.slot(cause)
    }

    /// Counts one more connection with `cause`.
    pub fn add(&mut self, cause: CloseCause) {
        *self.slot_mut(cause) += 1;
    }

    fn slot(&self, cause: CloseCause) -> &u64 {
        match cause {
            CloseCause::Refused => &self.refused,
            CloseCause::Open => &self.open,
            CloseCause::ClientAsked => &self.client_asked,
            CloseCause::ServerAsked => &self.server_asked,
            CloseCause::ClientAbort => &self.client_abort,
            CloseCause::ServerAbort => &self.server_abort,
            CloseCause::ClientIdle => &self.client_idle,
            CloseCause::ServerIdle => &self.server_idle,
        }
    }

    fn slot_mut(&mut self, cause: CloseCause) -> &mut u64 {
        match cause {
            CloseCause::Refused => &mut self.refused,
            CloseCause::Open => &mut self.open,
            CloseCause::ClientAsked => &mut self.client_asked,
            CloseCause::ServerAsked => &mut self.server_asked,
            CloseCause::ClientAbort => &mut self.client_abort,
            CloseCause::ServerAbort => &mut self.server_abort,
            CloseCause::ClientIdle => &mut self.client_idle,
            CloseCause::ServerIdle => &mut self.server_idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request, answered in full, closed by `closer` without any announcement.
    fn answered_once(closer: Side) -> CloseFacts {
        CloseFacts {
            first_close: Some(closer),
            readable: true,
            requests: 1,
            requests_at_first_fin: Some(1),
            answered: 1,
            ..Default::default()
        }
    }

    #[test]
    fn test_syn_answered_by_rst_is_refused() {
        let f = CloseFacts { refused: true, first_close: Some(Side::Server), ..Default::default() };
        assert_eq!(classify(&f), CloseCause::Refused);
    }

    #[test]
    fn test_no_fin_and_no_rst_is_open_even_with_an_unanswered_request() {
        let f = CloseFacts { readable: true, requests: 2, answered: 1, ..Default::default() };
        assert_eq!(classify(&f), CloseCause::Open);
    }

    #[test]
    fn test_client_announcement_wins_whoever_sent_the_first_fin() {
        for closer in [Side::Client, Side::Server] {
            let f = CloseFacts { client_announced: true, server_announced: true, ..answered_once(closer) };
            assert_eq!(classify(&f), CloseCause::ClientAsked);
        }
    }

    #[test]
    fn test_server_announcement_without_client_one_is_server_asked_even_if_the_client_fin_came_first() {
        let f = CloseFacts { server_announced: true, ..answered_once(Side::Client) };
        assert_eq!(classify(&f), CloseCause::ServerAsked);
    }

    #[test]
    fn test_server_announcement_then_rst_for_an_unread_body_is_still_server_asked() {
        let f = CloseFacts { server_announced: true, answered: 0, ..answered_once(Side::Server) };
        assert_eq!(classify(&f), CloseCause::ServerAsked);
    }

    #[test]
    fn test_client_close_with_a_request_unanswered_is_client_abort() {
        let f = CloseFacts { answered: 0, ..answered_once(Side::Client) };
        assert_eq!(classify(&f), CloseCause::ClientAbort);
    }

    #[test]
    fn test_client_half_close_then_whole_response_is_client_idle() {
        // The client's FIN came before the response; the response then arrived in full.
        let f = CloseFacts { requests_at_first_fin: Some(1), ..answered_once(Side::Client) };
        assert_eq!(classify(&f), CloseCause::ClientIdle);
    }

    #[test]
    fn test_response_arriving_after_the_clients_fin_and_reset_is_client_abort() {
        // A client timeout: FIN with the request pending, the late response answered by RST.
        let f = CloseFacts { answered_at_client_fin: Some(0), client_reset_after_fin: true, ..answered_once(Side::Client) };
        assert_eq!(classify(&f), CloseCause::ClientAbort);
    }

    #[test]
    fn test_server_close_with_a_request_unanswered_is_server_abort() {
        let f = CloseFacts { requests: 2, requests_at_first_fin: Some(2), answered: 1, ..answered_once(Side::Server) };
        assert_eq!(classify(&f), CloseCause::ServerAbort);
    }

    #[test]
    fn test_request_crossing_the_servers_idle_fin_is_server_idle() {
        let f = CloseFacts { requests: 2, requests_at_first_fin: Some(1), answered: 1, ..answered_once(Side::Server) };
        assert_eq!(classify(&f), CloseCause::ServerIdle);
    }

    #[test]
    fn test_connection_without_requests_is_idle_by_the_closing_side() {
        for (closer, cause) in [(Side::Client, CloseCause::ClientIdle), (Side::Server, CloseCause::ServerIdle)] {
            let f = CloseFacts { first_close: Some(closer), readable: true, ..Default::default() };
            assert_eq!(classify(&f), cause);
        }
    }

    #[test]
    fn test_unreadable_payload_is_idle_by_the_closing_side_whatever_the_counts() {
        let f = CloseFacts { readable: false, requests: 3, answered: 0, client_announced: true, ..answered_once(Side::Server) };
        assert_eq!(classify(&f), CloseCause::ServerIdle);
    }

    #[test]
    fn test_tally_has_every_cause_and_counts_each() {
        let mut tally = CloseCauseCounts::default();
        for cause in CloseCause::ALL {
            tally.add(cause);
        }
        tally.add(CloseCause::ClientIdle);
        assert_eq!(CloseCause::ALL.map(|c| tally.get(c)), [1, 1, 1, 1, 1, 1, 2, 1]);
        let json = serde_json::to_value(tally).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 8);
        assert_eq!(json["client_idle"], 2);
    }
}
