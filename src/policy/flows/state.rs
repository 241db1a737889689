//! The state of one tracked flow, as a stateful firewall keeps it, and the eviction class and
//! idle timeout each state belongs to.
//!
//! TCP follows the handshake and teardown seen in both directions, like Linux conntrack
//! without its sequence-window checks: a flow is *established* only after the opener's SYN,
//! the responder's SYN-ACK and the opener's ACK [RFC 9293 § 3.5]; a RST closes it at once; a
//! FIN from each side closes it [RFC 9293 § 3.6]. A segment of a tracked flow is never dropped
//! for its state: the state only decides how long an idle entry lives and whether it may be
//! evicted early. Half-open attempts, RST-answered attempts and closed flows are *transient*:
//! they live seconds and are the first to go when the table is full.
//!
//! A flow may start with a SYN (no ACK), or with a mid-stream segment (ACK, no SYN/FIN/RST) as
//! Linux conntrack's loose mode picks up connections established before the table saw them
//! (after a restart, or a flow taken over from another gateway); such a flow is established
//! once the other side answers. A SYN-ACK, a RST or a FIN never starts a flow. Only an answered
//! connection can become half-closed: a FIN before any answer ends the attempt.
//!
//! No sequence numbers are checked, so a RST the endpoint ignores [RFC 5961 § 3.2] would end
//! a live connection; a reset flow therefore resumes like a picked-up one when the opener
//! sends again and the responder answers. FINs from both sides end a flow for good: after
//! them only final ACKs are valid.
//!
//! Other protocols have no handshake: a flow is *unreplied* until the first packet from its
//! responder, then *replied*. An ICMP echo reply answers a flow but never starts one; an echo
//! request from the responder's side is no answer.

use std::time::Duration;

use crate::config::Dataplane;
use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN};
use crate::wire::{PROTO_ICMP, PROTO_UDP};

/// What one packet tells the table about its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A TCP segment with this flag byte.
    Tcp(u8),
    /// An ICMP echo reply: it answers a flow and never starts one.
    EchoReply,
    /// An ICMP echo request: it starts a flow and answers none.
    EchoRequest,
    /// Any other packet that has a flow: UDP, other protocols.
    Datagram,
}

/// How a packet without a tracked flow starts one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A TCP SYN without ACK.
    Syn,
    /// A TCP segment in the middle of a connection (loose pickup).
    Pickup,
    /// A packet of a protocol without a handshake.
    Datagram,
}

impl Signal {
    /// Whether this packet may start a flow, and how.
    pub fn start(self) -> Option<Start> {
        match self {
            Signal::Tcp(f) if f & (FLAG_RST | FLAG_FIN) != 0 => None,
            Signal::Tcp(f) if f & FLAG_SYN != 0 => (f & FLAG_ACK == 0).then_some(Start::Syn),
            Signal::Tcp(f) => (f & FLAG_ACK != 0).then_some(Start::Pickup),
            Signal::EchoReply => None,
            Signal::EchoRequest | Signal::Datagram => Some(Start::Datagram),
        }
    }
}

/// A tracked flow's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No handshake protocol; nothing heard from the responder yet.
    Unreplied,
    /// No handshake protocol; the responder has spoken.
    Replied,
    /// TCP: the opener's SYN, no SYN-ACK yet.
    SynSent,
    /// TCP: the responder's SYN-ACK, waiting for the opener's ACK.
    SynReceived,
    /// TCP picked up mid-stream, waiting for the other side.
    PickedUp,
    /// TCP: the handshake completed in both directions.
    Established,
    /// TCP: the opener sent a FIN; the responder may still send.
    FinFromOpener,
    /// TCP: the responder sent a FIN; the opener may still send.
    FinFromResponder,
    /// TCP: FINs from both sides, or a FIN before any answer.
    Closed,
    /// TCP: a RST from either side.
    Reset,
}

impl State {
    /// The state of a flow that `start` has just opened.
    pub fn initial(start: Start) -> State {
        match start {
            Start::Syn => State::SynSent,
            Start::Pickup => State::PickedUp,
            Start::Datagram => State::Unreplied,
        }
    }

    /// The state after a packet of the flow, sent by the responder when `reply`.
    pub fn next(self, reply: bool, signal: Signal) -> State {
        use State::*;
        let flags = match signal {
            Signal::Tcp(flags) => flags,
            Signal::EchoReply | Signal::Datagram => {
                return match self {
                    Unreplied if reply => Replied,
                    s => s,
                };
            }
            Signal::EchoRequest => return self,
        };
        if flags & FLAG_RST != 0 {
            return Reset;
        }
        let ack = flags & FLAG_ACK != 0;
        if flags & FLAG_SYN != 0 {
            return match (self, reply, ack) {
                // The opener reuses the tuple of a closed connection [RFC 9293 § 3.6.1].
                (Closed | Reset, false, false) => SynSent,
                (SynSent, true, true) => SynReceived,
                (s, ..) => s,
            };
        }
        if flags & FLAG_FIN != 0 {
            return match (self, reply) {
                (SynReceived | Established | FinFromOpener, false) => FinFromOpener,
                (SynReceived | Established | FinFromResponder, true) => FinFromResponder,
                (FinFromResponder, false) | (FinFromOpener, true) => Closed,
                (SynSent | PickedUp, _) => Closed,
                (s, _) => s,
            };
        }
        match (self, reply, ack) {
            (SynReceived, false, true) | (PickedUp, true, true) => Established,
            (Reset, false, true) => PickedUp,
            (s, ..) => s,
        }
    }

    /// The eviction class of this state for a flow of `protocol`.
    pub(super) fn class(self, protocol: u8) -> Class {
        match self {
            State::Unreplied => Class::Unreplied,
            State::Replied => match protocol {
                PROTO_UDP => Class::Udp,
                PROTO_ICMP => Class::Icmp,
                _ => Class::Other,
            },
            State::SynSent
            | State::SynReceived
            | State::PickedUp
            | State::Closed
            | State::Reset => Class::TcpTransient,
            State::Established => Class::Tcp,
            State::FinFromOpener | State::FinFromResponder => Class::TcpHalfClosed,
        }
    }
}

/// Entries of one class share one idle timeout, so each class's LRU list is ordered by
/// expiry. Live entries of the transient classes may be evicted to make room; the others
/// only when they are dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Class {
    Tcp,
    Udp,
    Icmp,
    Other,
    TcpHalfClosed,
    Unreplied,
    TcpTransient,
}

pub(super) const CLASSES: usize = 7;

impl Class {
    pub(super) const ALL: [Class; CLASSES] = [
        Class::Tcp,
        Class::Udp,
        Class::Icmp,
        Class::Other,
        Class::TcpHalfClosed,
        Class::Unreplied,
        Class::TcpTransient,
    ];

    /// The classes whose live entries may be evicted for a new flow.
    pub(super) const TRANSIENT: [Class; 2] = [Class::Unreplied, Class::TcpTransient];

    /// May a live entry of this class be evicted for a new flow?
    pub(super) fn transient(self) -> bool {
        self.transient_index().is_some()
    }

    /// The position of this class in [`Class::TRANSIENT`].
    pub(super) fn transient_index(self) -> Option<usize> {
        Class::TRANSIENT.iter().position(|&c| c == self)
    }
}

/// Idle timeouts by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: Duration,
    pub udp: Duration,
    pub icmp: Duration,
    pub other: Duration,
    /// Any non-TCP flow that has not seen a packet from its responder yet.
    pub unreplied: Duration,
    /// TCP half-open (SYN sent or received), picked up and not answered yet, or closed.
    pub tcp_transient: Duration,
    /// TCP after a FIN from one side.
    pub tcp_half_closed: Duration,
}

/// The idle timeout of a non-TCP flow that has not been answered yet.
pub const UNREPLIED_TIMEOUT: Duration = Duration::from_secs(30);
/// The idle timeout of a TCP flow during its handshake, after a RST or after both FINs, or
/// picked up and not answered: long enough for the handshake's own retransmissions (1 s, then
/// 3 s after the first SYN [RFC 6298 § 2]; a later retransmission simply opens the flow
/// again), short enough that refused attempts are gone within seconds.
pub const TCP_TRANSIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The idle timeout of a half-closed TCP flow (one FIN seen): the other side may still send.
pub const TCP_HALF_CLOSED_TIMEOUT: Duration = Duration::from_secs(60);

impl From<&Dataplane> for Timeouts {
    /// Protocols other than TCP, UDP and ICMP get the UDP timeout; the transient and
    /// half-closed TCP states and unreplied flows get the constants of this module.
    fn from(d: &Dataplane) -> Timeouts {
        Timeouts {
            tcp: d.tcp_idle_timeout,
            udp: d.udp_idle_timeout,
            icmp: d.icmp_idle_timeout,
            other: d.udp_idle_timeout,
            unreplied: UNREPLIED_TIMEOUT,
            tcp_transient: TCP_TRANSIENT_TIMEOUT,
            tcp_half_closed: TCP_HALF_CLOSED_TIMEOUT,
        }
    }
}

impl Timeouts {
    pub(super) fn by_class(self) -> [Duration; CLASSES] {
        [
            self.tcp,
            self.udp,
            self.icmp,
            self.other,
            self.tcp_half_closed,
            self.unreplied,
            self.tcp_transient,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::FLAG_PSH;
    use crate::wire::PROTO_TCP;

    const SYN: Signal = Signal::Tcp(FLAG_SYN);
    const SYN_ACK: Signal = Signal::Tcp(FLAG_SYN | FLAG_ACK);
    const ACK: Signal = Signal::Tcp(FLAG_ACK);
    const DATA: Signal = Signal::Tcp(FLAG_ACK | FLAG_PSH);
    const FIN: Signal = Signal::Tcp(FLAG_FIN | FLAG_ACK);
    const RST: Signal = Signal::Tcp(FLAG_RST);
    const RST_ACK: Signal = Signal::Tcp(FLAG_RST | FLAG_ACK);
    const OPENER: bool = false;
    const RESPONDER: bool = true;

    fn run(start: Signal, rest: &[(bool, Signal)]) -> Vec<State> {
        let mut s = State::initial(start.start().expect("an opening packet"));
        let mut seen = vec![s];
        for &(reply, sig) in rest {
            s = s.next(reply, sig);
            seen.push(s);
        }
        seen
    }

    #[test]
    fn which_packets_start_a_flow() {
        assert_eq!(SYN.start(), Some(Start::Syn));
        assert_eq!(ACK.start(), Some(Start::Pickup));
        assert_eq!(DATA.start(), Some(Start::Pickup));
        assert_eq!(Signal::Datagram.start(), Some(Start::Datagram));
        assert_eq!(Signal::EchoRequest.start(), Some(Start::Datagram));
        for never in [
            SYN_ACK,
            FIN,
            Signal::Tcp(FLAG_FIN),
            RST,
            RST_ACK,
            Signal::Tcp(FLAG_SYN | FLAG_RST),
            Signal::Tcp(FLAG_SYN | FLAG_FIN),
            Signal::Tcp(0),
            Signal::Tcp(FLAG_PSH),
            Signal::EchoReply,
        ] {
            assert_eq!(never.start(), None, "{never:?}");
        }
    }

    #[test]
    fn three_way_handshake_then_fins() {
        use State::*;
        assert_eq!(
            run(
                SYN,
                &[
                    (OPENER, SYN),
                    (RESPONDER, SYN_ACK),
                    (OPENER, ACK),
                    (RESPONDER, DATA),
                    (OPENER, FIN),
                    (RESPONDER, DATA),
                    (RESPONDER, FIN),
                    (OPENER, ACK),
                ]
            ),
            [
                SynSent,
                SynSent,
                SynReceived,
                Established,
                Established,
                FinFromOpener,
                FinFromOpener,
                Closed,
                Closed
            ]
        );
    }

    #[test]
    fn a_rst_answer_resets_the_attempt() {
        use State::*;
        assert_eq!(run(SYN, &[(RESPONDER, RST_ACK)]), [SynSent, Reset]);
        assert_eq!(
            run(SYN, &[(RESPONDER, SYN_ACK), (OPENER, RST)]),
            [SynSent, SynReceived, Reset]
        );
        assert_eq!(
            run(
                SYN,
                &[(RESPONDER, SYN_ACK), (OPENER, ACK), (RESPONDER, RST)]
            ),
            [SynSent, SynReceived, Established, Reset]
        );
    }

    #[test]
    fn a_connection_that_ignored_a_rst_resumes_when_both_sides_send() {
        use State::*;
        let steps = [
            (RESPONDER, SYN_ACK),
            (OPENER, ACK),
            (OPENER, RST),
            (RESPONDER, DATA),
            (OPENER, ACK),
            (RESPONDER, DATA),
        ];
        assert_eq!(
            run(SYN, &steps),
            [
                SynSent,
                SynReceived,
                Established,
                Reset,
                Reset,
                PickedUp,
                Established
            ]
        );
        // A refused attempt stays transient whatever the opener sends: the closed port
        // answers every segment with another RST.
        assert_eq!(
            run(
                SYN,
                &[(RESPONDER, RST_ACK), (OPENER, ACK), (RESPONDER, RST)]
            ),
            [SynSent, Reset, PickedUp, Reset]
        );
    }

    #[test]
    fn only_an_answered_connection_half_closes() {
        use State::*;
        // A FIN to a silent address ends the attempt instead of holding a slot for a minute.
        assert_eq!(
            run(ACK, &[(OPENER, FIN), (OPENER, FIN)]),
            [PickedUp, Closed, Closed]
        );
        assert_eq!(run(SYN, &[(OPENER, FIN)]), [SynSent, Closed]);
        for s in [PickedUp, SynSent, Closed, Reset] {
            let after = s.next(OPENER, FIN);
            assert_eq!(after.class(PROTO_TCP), Class::TcpTransient, "{s:?}");
        }
        assert_eq!(SynReceived.next(OPENER, FIN), FinFromOpener);
        assert_eq!(Established.next(RESPONDER, FIN), FinFromResponder);
    }

    #[test]
    fn fins_from_both_sides_end_a_flow_for_good() {
        use State::*;
        // A simultaneous close: the final ACKs of both sides do not revive it.
        let steps = [
            (RESPONDER, SYN_ACK),
            (OPENER, ACK),
            (OPENER, FIN),
            (RESPONDER, FIN),
            (OPENER, ACK),
            (RESPONDER, ACK),
        ];
        assert_eq!(
            run(SYN, &steps),
            [
                SynSent,
                SynReceived,
                Established,
                FinFromOpener,
                Closed,
                Closed,
                Closed
            ]
        );
    }

    #[test]
    fn nothing_but_the_handshake_establishes() {
        use State::*;
        // The responder's bare ACK (a challenge ACK) or data does not answer a SYN.
        assert_eq!(
            run(SYN, &[(RESPONDER, ACK), (RESPONDER, DATA), (OPENER, ACK)]),
            [SynSent; 4]
        );
        // The opener's ACK before the SYN-ACK does not either.
        assert_eq!(run(SYN, &[(OPENER, DATA)]), [SynSent, SynSent]);
        // A SYN-ACK from the opener's side is not an answer.
        assert_eq!(run(SYN, &[(OPENER, SYN_ACK)]), [SynSent, SynSent]);
        // Only the opener completes the handshake.
        assert_eq!(
            run(SYN, &[(RESPONDER, SYN_ACK), (RESPONDER, ACK)]),
            [SynSent, SynReceived, SynReceived]
        );
    }

    #[test]
    fn a_picked_up_flow_is_established_by_an_answer() {
        use State::*;
        assert_eq!(
            run(DATA, &[(OPENER, DATA), (RESPONDER, ACK)]),
            [PickedUp, PickedUp, Established]
        );
        assert_eq!(run(ACK, &[(RESPONDER, RST)]), [PickedUp, Reset]);
    }

    #[test]
    fn a_closed_tuple_may_be_reused_by_a_new_syn() {
        use State::*;
        let s = run(
            SYN,
            &[(RESPONDER, RST), (OPENER, SYN), (RESPONDER, SYN_ACK)],
        );
        assert_eq!(s, [SynSent, Reset, SynSent, SynReceived]);
        assert_eq!(Closed.next(OPENER, SYN), SynSent);
        assert_eq!(Closed.next(RESPONDER, SYN), Closed);
        assert_eq!(Reset.next(RESPONDER, SYN), Reset);
        assert_eq!(Established.next(OPENER, SYN), Established);
    }

    #[test]
    fn datagrams_are_replied_by_the_responder_only() {
        use State::*;
        assert_eq!(Unreplied.next(OPENER, Signal::Datagram), Unreplied);
        assert_eq!(Unreplied.next(RESPONDER, Signal::Datagram), Replied);
        assert_eq!(Unreplied.next(RESPONDER, Signal::EchoReply), Replied);
        assert_eq!(
            Unreplied.next(RESPONDER, Signal::EchoRequest),
            Unreplied,
            "a request from the other side is no answer"
        );
        assert_eq!(Replied.next(OPENER, Signal::Datagram), Replied);
    }

    #[test]
    fn classes_and_what_may_be_evicted_live() {
        use State::*;
        let transient = [SynSent, SynReceived, PickedUp, Closed, Reset];
        for s in transient {
            assert_eq!(s.class(PROTO_TCP), Class::TcpTransient);
            assert!(s.class(PROTO_TCP).transient());
        }
        assert_eq!(Unreplied.class(PROTO_UDP), Class::Unreplied);
        assert!(Class::Unreplied.transient());
        for (s, p, c) in [
            (Established, PROTO_TCP, Class::Tcp),
            (FinFromOpener, PROTO_TCP, Class::TcpHalfClosed),
            (FinFromResponder, PROTO_TCP, Class::TcpHalfClosed),
            (Replied, PROTO_UDP, Class::Udp),
            (Replied, PROTO_ICMP, Class::Icmp),
            (Replied, 47, Class::Other),
        ] {
            assert_eq!(s.class(p), c);
            assert!(!c.transient(), "{s:?}");
        }
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn timeouts_from_dataplane_config() {
        let d = Dataplane::default();
        let t = Timeouts::from(&d);
        assert_eq!(
            (t.tcp, t.udp, t.icmp),
            (
                Duration::from_secs(7200),
                Duration::from_secs(120),
                Duration::from_secs(30)
            )
        );
        assert_eq!(t.other, d.udp_idle_timeout);
        assert_eq!(t.unreplied, Duration::from_secs(30));
        assert_eq!(t.tcp_transient, Duration::from_secs(10));
        assert_eq!(t.tcp_half_closed, Duration::from_secs(60));
    }
}
