//! The socket state each side of a connection is in, inferred from the packets seen (RFC 793 states,
//! as `netstat` prints them). One enum, one transition function: every packet is taken as sent by
//! one side and received by the other.

use serde::Serialize;
use std::fmt;

/// A TCP socket state, named as netstat names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum TcpState {
    CLOSED,
    LISTEN,
    SYN_SENT,
    SYN_RECEIVED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    CLOSE_WAIT,
    CLOSING,
    LAST_ACK,
    TIME_WAIT,
}

/// Every state, in the order tables list them.
pub const ALL_STATES: [TcpState; 11] = [
    TcpState::ESTABLISHED,
    TcpState::SYN_SENT,
    TcpState::SYN_RECEIVED,
    TcpState::FIN_WAIT_1,
    TcpState::FIN_WAIT_2,
    TcpState::CLOSE_WAIT,
    TcpState::CLOSING,
    TcpState::LAST_ACK,
    TcpState::TIME_WAIT,
    TcpState::CLOSED,
    TcpState::LISTEN,
];

/// What happened to one side, as far as its socket state is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateEvent {
    /// This side sent a SYN without ACK (active open).
    SendSyn,
    /// This side received a SYN and answered SYN-ACK (passive open).
    SendSynAck,
    /// This side received the SYN-ACK answering its SYN.
    RecvSynAck,
    /// This side received the ACK of its SYN-ACK.
    RecvAckOfSyn,
    /// This side sent a FIN (its application closed the socket or shut down writing).
    SendFin,
    /// This side received the peer's FIN.
    RecvFin,
    /// The peer acknowledged this side's FIN.
    RecvAckOfFin,
    /// An acceptable RST was sent or received.
    Reset,
    /// Data flowed on a connection whose opening was not seen (mid-stream).
    MidStream,
}

impl TcpState {
    /// The state after `event`. Events that do not apply in a state leave it unchanged.
    pub fn next(self, event: StateEvent) -> TcpState {
        use StateEvent::*;
        use TcpState::*;
        match (self, event) {
            (_, Reset) => CLOSED,
            (CLOSED | LISTEN, MidStream) => ESTABLISHED,
            // Opening (RFC 793 3.4).
            (CLOSED, SendSyn) => SYN_SENT,
            (CLOSED | LISTEN, SendSynAck) => SYN_RECEIVED,
            (SYN_SENT, SendSynAck) => SYN_RECEIVED, // simultaneous open
            (SYN_SENT, RecvSynAck) => ESTABLISHED,
            (SYN_RECEIVED, RecvAckOfSyn) => ESTABLISHED,
            // Active close: FIN_WAIT_1 → FIN_WAIT_2 → TIME_WAIT, or CLOSING on simultaneous close.
            (ESTABLISHED | SYN_RECEIVED | CLOSED, SendFin) => FIN_WAIT_1,
            (FIN_WAIT_1, RecvAckOfFin) => FIN_WAIT_2,
            (FIN_WAIT_1, RecvFin) => CLOSING,
            (FIN_WAIT_2, RecvFin) => TIME_WAIT,
            (CLOSING, RecvAckOfFin) => TIME_WAIT,
            // Passive close: CLOSE_WAIT → LAST_ACK → CLOSED.
            (ESTABLISHED | SYN_RECEIVED | SYN_SENT | CLOSED, RecvFin) => CLOSE_WAIT,
            (CLOSE_WAIT, SendFin) => LAST_ACK,
            (LAST_ACK, RecvAckOfFin) => CLOSED,
            (state, _) => state,
        }
    }

    /// The netstat name (`TIME_WAIT`), also used as the JSON key.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::CLOSED => "CLOSED",
            TcpState::LISTEN => "LISTEN",
            TcpState::SYN_SENT => "SYN_SENT",
            TcpState::SYN_RECEIVED => "SYN_RECEIVED",
            TcpState::ESTABLISHED => "ESTABLISHED",
            TcpState::FIN_WAIT_1 => "FIN_WAIT_1",
            TcpState::FIN_WAIT_2 => "FIN_WAIT_2",
            TcpState::CLOSE_WAIT => "CLOSE_WAIT",
            TcpState::CLOSING => "CLOSING",
            TcpState::LAST_ACK => "LAST_ACK",
            TcpState::TIME_WAIT => "TIME_WAIT",
        }
    }

    /// Parses a netstat name (`TIME_WAIT`; `-` may stand for `_`).
    pub fn from_name(name: &str) -> Option<TcpState> {
        let wanted = name.replace('-', "_").to_ascii_uppercase();
        ALL_STATES.into_iter().find(|s| s.name() == wanted)
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::StateEvent::*;
    use super::TcpState::*;
    use super::*;

    fn run(start: TcpState, events: &[StateEvent]) -> TcpState {
        events.iter().fold(start, |s, e| s.next(*e))
    }

    #[test]
    fn test_client_open_reaches_established_on_syn_ack() {
        assert_eq!(run(CLOSED, &[SendSyn]), SYN_SENT);
        assert_eq!(run(CLOSED, &[SendSyn, RecvSynAck]), ESTABLISHED);
    }

    #[test]
    fn test_server_open_reaches_established_on_ack_of_syn_ack() {
        assert_eq!(run(CLOSED, &[SendSynAck]), SYN_RECEIVED);
        assert_eq!(run(CLOSED, &[SendSynAck, RecvAckOfSyn]), ESTABLISHED);
    }

    #[test]
    fn test_time_wait_from_fin_wait_2_on_peer_fin() {
        assert_eq!(run(ESTABLISHED, &[SendFin, RecvAckOfFin]), FIN_WAIT_2);
        assert_eq!(run(ESTABLISHED, &[SendFin, RecvAckOfFin, RecvFin]), TIME_WAIT);
    }

    #[test]
    fn test_passive_close_goes_close_wait_last_ack_closed() {
        assert_eq!(run(ESTABLISHED, &[RecvFin]), CLOSE_WAIT);
        assert_eq!(run(ESTABLISHED, &[RecvFin, SendFin]), LAST_ACK);
        assert_eq!(run(ESTABLISHED, &[RecvFin, SendFin, RecvAckOfFin]), CLOSED);
    }

    #[test]
    fn test_simultaneous_close_is_closing_then_time_wait() {
        assert_eq!(run(ESTABLISHED, &[SendFin, RecvFin]), CLOSING);
        assert_eq!(run(ESTABLISHED, &[SendFin, RecvFin, RecvAckOfFin]), TIME_WAIT);
    }

    #[test]
    fn test_reset_closes_from_any_state() {
        for s in ALL_STATES {
            assert_eq!(s.next(Reset), CLOSED);
        }
    }

    #[test]
    fn test_names_round_trip() {
        for s in ALL_STATES {
            assert_eq!(TcpState::from_name(s.name()), Some(s));
        }
        assert_eq!(TcpState::from_name("time-wait"), Some(TIME_WAIT));
    }
}
