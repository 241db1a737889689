//! What the engine reports: datagrams to send ([`Transmit`]) and [`IkeEvent`]s, among them the
//! CHILD SAs for the data path to install. No `String` anywhere: the pipeline turns events into
//! metrics and log lines that name the peer.

use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::crypto::{EncrAlg, IntegAlg};
use crate::ids::PeerId;
use crate::tunnel::ipsec::esp::SaConfig;
use crate::tunnel::ipsec::ike::message::{
    Error as ParseError, ExchangeType, NotifyType, TrafficSelector,
};

use super::config::CertAuthError;

/// A datagram to send. On port 4500 the runtime puts the non-ESP marker in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our port to send from: 500 or 4500.
    pub from_port: u16,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// One direction of a CHILD SA, as the data path builds an ESP SA from it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildSaParams {
    pub spi: u32,
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    /// Encryption key, followed for GCM by the 4-octet salt.
    pub encr_key: Zeroizing<Vec<u8>>,
    /// Empty for GCM.
    pub integ_key: Zeroizing<Vec<u8>>,
    pub esn: bool,
}

impl ChildSaParams {
    /// The ESP module's view of these parameters.
    pub fn sa_config(&self) -> SaConfig<'_> {
        SaConfig {
            spi: self.spi,
            esn: self.esn,
            encr: self.encr,
            encr_key: &self.encr_key,
            integ: self.integ.map(|a| (a, &self.integ_key[..])),
        }
    }
}

impl std::fmt::Debug for ChildSaParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSaParams")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .finish_non_exhaustive()
    }
}

/// A CHILD SA to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaUp {
    pub peer: PeerId,
    /// What we decrypt; its SPI is ours.
    pub inbound: ChildSaParams,
    /// What we encrypt; its SPI is the peer's.
    pub outbound: ChildSaParams,
    /// Traffic selectors as negotiated: ours (the inner source of outbound packets) and the
    /// peer's.
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// The peer's address and port (after NAT traversal, where its ESP-in-UDP goes).
    pub remote_addr: SocketAddr,
    /// ESP goes in UDP on port 4500 [RFC 3948]: a NAT was detected on either side.
    pub udp_encap: bool,
    /// Set when this SA replaces another one (a rekey): the inbound SPI of the old SA, which
    /// stays installed until its `ChildSaDown`.
    pub replaces: Option<u32>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeEvent {
    /// An IKE SA with the peer was authenticated.
    IkeSaUp { peer: PeerId, remote: SocketAddr },
    /// The IKE SA was replaced by a new one; its CHILD SAs moved there.
    IkeSaRekeyed { peer: PeerId },
    /// A CHILD SA to install.
    ChildSaUp(Box<ChildSaUp>),
    /// A rekey we initiated finished: outbound traffic goes through `new_inbound_spi`'s SA
    /// now; the old SA still receives until its `ChildSaDown`. Not sent to the responder of
    /// a rekey: its new SA takes over outbound traffic when the old one goes down.
    ChildSaRekeyed {
        peer: PeerId,
        inbound_spi: u32,
        new_inbound_spi: u32,
    },
    /// The peer's address changed (its NAT's mapping): its IKE and ESP go to `remote` now.
    PathChanged { peer: PeerId, remote: SocketAddr },
    /// A CHILD SA reached its hard lifetime without a successful rekey: it is deleted (its
    /// `ChildSaDown` follows).
    ChildSaExpired { peer: PeerId, inbound_spi: u32 },
    /// The IKE SA reached its hard lifetime without a successful rekey: it is deleted, and
    /// a peer we initiate to is initiated again.
    IkeSaExpired { peer: PeerId },
    /// A CHILD SA to remove (by its inbound SPI).
    ChildSaDown { peer: PeerId, inbound_spi: u32 },
    /// The peer has no IKE SA any more.
    PeerDown { peer: PeerId, reason: DownReason },
    /// A message refused or dropped, or an error the peer answered with. `notify` is what we
    /// answered (or what the peer answered, for [`Refusal::PeerNotify`]).
    Refused {
        peer: Option<PeerId>,
        notify: Option<NotifyType>,
        reason: Refusal,
    },
    /// A request was sent again (`attempt` counts from 1).
    Retransmit {
        peer: Option<PeerId>,
        exchange: ExchangeType,
        attempt: u32,
    },
    /// A request was never answered; its IKE SA is gone.
    GaveUp {
        peer: Option<PeerId>,
        exchange: ExchangeType,
    },
}

/// Why a peer went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The peer deleted the IKE SA.
    DeletedByPeer,
    /// We deleted it (`IkeEngine::delete`).
    DeletedLocally,
    /// A liveness check went unanswered for `dpd_timeout`.
    DpdTimeout,
    /// A request went unanswered after every retransmission.
    GaveUp,
    /// Authentication failed after the IKE SA was set up, or an exchange failed fatally.
    Failed,
    /// The peer opened a new IKE SA with INITIAL_CONTACT.
    Replaced,
    /// Its hard lifetime passed without a successful rekey.
    Expired,
}

/// Why a message was refused or dropped, or why an exchange failed. `Copy`: counting garbage
/// costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The datagram is not an IKE message.
    Malformed(ParseError),
    /// The decrypted payloads do not parse.
    InnerMalformed(ParseError),
    /// No IKE SA has the message's SPIs.
    UnknownSpi,
    /// The integrity check or decryption failed.
    Integrity,
    /// A Message ID outside the window [RFC 7296 § 2.3].
    MessageId,
    /// An exchange or message that has no place in the IKE SA's state.
    UnexpectedExchange,
    /// A payload the exchange requires is missing.
    MissingPayload,
    /// No proposal of the peer was acceptable, or its answer was not one of ours.
    NoProposalChosen,
    /// The KE payload's group was not the one selected.
    InvalidKe,
    /// A KE payload whose public value is unusable.
    InvalidKeValue,
    /// No peer is configured for the source address or the identity.
    NoPeerConfig,
    /// The peer's identity is not its configured one, or our own was not the one it asked.
    IdMismatch,
    /// The pre-shared key AUTH payload did not verify, or the method is not the configured
    /// one.
    AuthenticationFailed,
    /// Certificate authentication failed, and why (answered with AUTHENTICATION_FAILED).
    Certificate(CertAuthError),
    /// The traffic selectors leave nothing, or the answer is outside what we proposed.
    TsUnacceptable,
    /// Half-open IKE SAs are above the threshold: answered with a COOKIE.
    CookieRequired,
    /// A COOKIE that we did not issue (or whose secret expired).
    InvalidCookie,
    /// Too many half-open IKE SAs, even with a valid cookie.
    HalfOpenLimit,
    /// A request for something already under way (a rekey during a rekey): answered with
    /// TEMPORARY_FAILURE.
    TemporaryFailure,
    /// A CHILD SA the request names does not exist.
    ChildSaNotFound,
    /// A fragment that cannot be reassembled (beyond the bounds, inconsistent, unsupported).
    Fragment,
    /// Something this implementation does not do (EAP, configuration payloads, transport
    /// mode, additional CHILD SAs of another kind).
    Unsupported,
    /// The peer answered with the error notify in `notify`.
    PeerNotify,
    /// Our own cryptography or encoding failed (the random generator).
    Internal,
}
