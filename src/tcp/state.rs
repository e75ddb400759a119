//! The socket state each side of a connection is in, inferred from the packets seen (RFC 793 states,
//! as `netstat` prints them). One enum, one transition function: every packet is taken as sent by
//! one side and received by the other. The only place a state is set: the connection update
//! ([`crate::tcp`]) sends it events, the report and the renderers read the states it gives.

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
    /// Capture order: this side's FIN comes after the peer's FIN, which acknowledges it, so this
    /// FIN was sent first. The side went FIN_WAIT_1 → FIN_WAIT_2 → TIME_WAIT, whatever the capture
    /// order made of it.
    SendFinAnsweredByCapturedFin,
    /// Capture order: this side's FIN, captured first, acknowledges the peer's FIN captured now, so
    /// it answered it. The side was in CLOSE_WAIT when it sent it, and is in LAST_ACK until it is
    /// acknowledged, whatever the capture order made of it.
    CapturedFinAnsweredPeerFin,
    /// Capture order: this side sends its FIN after the peer's FIN was captured, but without
    /// acknowledging it (the FINs crossed). The side sent its FIN from ESTABLISHED (FIN_WAIT_1), then
    /// received the peer's: CLOSING, whatever the capture order made of it.
    SendFinCrossingCapturedFin,
    /// A TIME_WAIT socket ended before its time: an acceptable RST killed it (RFC 1337), or a new
    /// SYN recycled its tuple.
    TimeWaitEnded,
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
            (TIME_WAIT, TimeWaitEnded) => CLOSED,
            // Capture-order corrections: the true order of two FINs is known only once both are
            // captured, and overrides the states the capture order gave.
            (_, SendFinAnsweredByCapturedFin) => ESTABLISHED.next(SendFin).next(RecvAckOfFin).next(RecvFin),
            (_, CapturedFinAnsweredPeerFin) => ESTABLISHED.next(RecvFin).next(SendFin),
            (_, SendFinCrossingCapturedFin) => ESTABLISHED.next(SendFin).next(RecvFin),
            (state, _) => state,
        }
    }

    /// Moves this state on by `event` (see [`TcpState::next`]).
    pub fn apply(&mut self, event: StateEvent) {
        *self = self.next(event);
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
    fn test_fin_sent_first_but_captured_after_the_peer_fin_that_acknowledges_it_is_time_wait() {
        // Captured order: the peer's FIN (this side CLOSE_WAIT), then this side's FIN.
        assert_eq!(run(ESTABLISHED, &[RecvFin, SendFinAnsweredByCapturedFin]), TIME_WAIT);
        for s in ALL_STATES {
            assert_eq!(s.next(SendFinAnsweredByCapturedFin), TIME_WAIT);
        }
    }

    #[test]
    fn test_fin_captured_first_that_answers_the_peer_fin_captured_now_is_last_ack_then_closed() {
        // Captured order: this side's FIN (FIN_WAIT_1), then the peer's FIN it acknowledged.
        assert_eq!(run(ESTABLISHED, &[SendFin, CapturedFinAnsweredPeerFin]), LAST_ACK);
        assert_eq!(run(ESTABLISHED, &[SendFin, CapturedFinAnsweredPeerFin, RecvAckOfFin]), CLOSED);
        for s in ALL_STATES {
            assert_eq!(s.next(CapturedFinAnsweredPeerFin), LAST_ACK);
        }
    }

    #[test]
    fn test_fin_crossing_a_peer_fin_captured_first_is_closing_then_time_wait() {
        // Captured order: the peer's FIN (this side CLOSE_WAIT), then this side's FIN not acknowledging it.
        assert_eq!(run(ESTABLISHED, &[RecvFin, SendFinCrossingCapturedFin]), CLOSING);
        assert_eq!(run(ESTABLISHED, &[RecvFin, SendFinCrossingCapturedFin, RecvAckOfFin]), TIME_WAIT);
    }

    #[test]
    fn test_time_wait_ended_by_rst_or_recycling_is_closed_and_other_states_stay() {
        assert_eq!(TIME_WAIT.next(TimeWaitEnded), CLOSED);
        assert_eq!(FIN_WAIT_2.next(TimeWaitEnded), FIN_WAIT_2);
        assert_eq!(LAST_ACK.next(TimeWaitEnded), LAST_ACK);
    }

    #[test]
    fn test_apply_moves_the_state_as_next_does() {
        let mut state = ESTABLISHED;
        state.apply(SendFin);
        assert_eq!(state, FIN_WAIT_1);
        state.apply(RecvAckOfFin);
        assert_eq!(state, FIN_WAIT_2);
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
