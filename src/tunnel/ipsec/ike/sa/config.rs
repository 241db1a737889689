//! What the engine of one attachment is configured with. These are the engine's own types:
//! the plan maps the validated configuration into them, so this module imports nothing from
//! `crate::config`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use zeroize::Zeroizing;

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::ids::PeerId;
use crate::tunnel::ipsec::ike::message::{AuthMethod, IdType};

/// The IKE side of one IPsec attachment: our identity and every peer's configuration.
#[derive(Debug, Clone)]
pub struct IkeConfig {
    /// IDi / IDr we send, and the IDr we accept from an initiator that names one.
    pub local_id: Identity,
    /// The address our sockets are bound to, for NAT detection [RFC 7296 § 2.23]. When it is
    /// unspecified (a wildcard bind), our own address is unknown: we announce a NAT on our
    /// side, as strongSwan does in that case, and ESP goes over UDP.
    pub local_addr: IpAddr,
    /// The real ports of the engine's sockets "500" and "4500" (the attachment's `ike_port`
    /// and `nat_t_port`), for NAT detection.
    pub local_ports: [u16; 2],
    /// Announce a NAT on our side even where there is none, so that the peer sends its ESP in
    /// UDP (strongSwan's `encap = yes`): for an attachment without a raw ESP socket.
    pub force_udp_encap: bool,
    pub peers: Vec<IkePeerConfig>,
    pub limits: Limits,
}

/// An identification [RFC 7296 § 3.5]: its type and data, compared octet for octet.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl Identity {
    pub fn fqdn(name: &str) -> Identity {
        Identity {
            id_type: IdType::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    pub fn ipv4(addr: Ipv4Addr) -> Identity {
        Identity {
            id_type: IdType::IPV4_ADDR,
            data: addr.octets().to_vec(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.data) {
            Ok(s) if self.id_type != IdType::IPV4_ADDR => write!(f, "{:?}:{s}", self.id_type),
            _ => write!(f, "{:?}:{:02x?}", self.id_type, self.data),
        }
    }
}

/// One peer of the attachment.
#[derive(Debug, Clone)]
pub struct IkePeerConfig {
    pub peer: PeerId,
    /// The identity the peer must authenticate as (AUTHENTICATION_FAILED otherwise).
    pub remote_id: Identity,
    pub auth: PeerAuth,
    /// Our side of the CHILD SA (TSi when we initiate, what TSr is narrowed to when we respond).
    pub local_ts: Vec<Ipv4Network>,
    /// The peer's side of the CHILD SA.
    pub remote_ts: Vec<Ipv4Network>,
    /// IKE SA proposals, in preference order.
    pub ike_proposals: Vec<IkeProposal>,
    /// ESP proposals, in preference order.
    pub esp_proposals: Vec<EspProposal>,
    pub start: Start,
    /// Where to send IKE_SA_INIT (port 500, or 4500 to start behind the non-ESP marker);
    /// also what tells the peer of an incoming IKE_SA_INIT apart. `None`: the peer may come
    /// from anywhere and we never initiate.
    pub endpoint: Option<SocketAddr>,
    /// When the IKE SA is rekeyed (less up to [`Limits::rekey_jitter_percent`]).
    pub ike_rekey: Duration,
    /// When a CHILD SA is rekeyed (less the jitter).
    pub child_rekey: Duration,
    /// Rekey a CHILD SA once either direction has carried this many bytes (reported by the
    /// data path through `IkeEngine::esp_usage`).
    pub child_rekey_bytes: Option<u64>,
    /// Send a liveness check after this much inbound silence; zero disables it.
    pub dpd_interval: Duration,
    /// The peer is down when a liveness check is unanswered this long.
    pub dpd_timeout: Duration,
    pub dpd_action: DpdAction,
    /// Which inbound SPIs the peer's CHILD SAs get: the data path's steering hands ESP to
    /// the worker its SPI names, which must be the one holding the SA.
    pub spi_class: SpiClass,
}

/// The inbound SPIs `spi % modulus == residue`: those of one data-path worker among
/// `modulus` (see `tunnel::Shard::owner_of_spi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiClass {
    pub modulus: u32,
    pub residue: u32,
}

impl SpiClass {
    /// Every SPI: one worker.
    pub const ANY: SpiClass = SpiClass {
        modulus: 1,
        residue: 0,
    };

    /// The SPI of the class in the block of `modulus` values `random` falls in; `None` past
    /// the top of the range (draw again).
    pub fn pick(self, random: u32) -> Option<u32> {
        let m = self.modulus.max(1);
        (random - random % m).checked_add(self.residue % m)
    }

    pub fn contains(self, spi: u32) -> bool {
        spi % self.modulus.max(1) == self.residue % self.modulus.max(1)
    }
}

/// How a peer and we authenticate each other.
#[derive(Clone)]
pub enum PeerAuth {
    /// A pre-shared key, both ways [RFC 7296 § 2.15].
    Psk(Zeroizing<Vec<u8>>),
    /// Certificates and signatures, through the PKI module.
    Certificate(Arc<dyn CertificateAuth>),
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAuth::Psk(_) => f.write_str("Psk(..)"),
            PeerAuth::Certificate(_) => f.write_str("Certificate(..)"),
        }
    }
}

/// The seam for certificate authentication: the PKI module (`LocalCredential::sign`,
/// `TrustStore`, `verify_peer`) plugs in here. The engine computes the signed octets
/// [RFC 7296 § 2.15] and carries CERT, CERTREQ and AUTH payloads; this trait does the rest.
pub trait CertificateAuth: Send + Sync {
    /// CERTREQ data (concatenated SHA-1 hashes of the trusted CAs' public keys) we send.
    fn certificate_request(&self) -> Option<Vec<u8>>;
    /// Our certificates (DER, end-entity first), sent in CERT payloads.
    fn certificates(&self) -> Vec<Vec<u8>>;
    /// Our AUTH payload over our signed octets: the method and the authentication data.
    fn sign(&self, signed_octets: &[u8]) -> Result<(AuthMethod, Vec<u8>), CertAuthError>;
    /// Checks the peer: its certificates (DER, end-entity first) chain to a trusted CA and
    /// name `id`, and `auth` of `method` signs `signed_octets` with the end-entity key.
    fn verify(
        &self,
        id: &Identity,
        certificates: &[&[u8]],
        method: AuthMethod,
        auth: &[u8],
        signed_octets: &[u8],
    ) -> Result<(), CertAuthError>;
}

/// Why certificate authentication failed; every variant is answered with
/// AUTHENTICATION_FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertAuthError {
    #[error("could not sign")]
    Sign,
    #[error("no certificate")]
    NoCertificate,
    #[error("certificate or authentication data malformed")]
    Malformed,
    #[error("certificate not issued by a trusted CA")]
    Untrusted,
    #[error("certificate expired")]
    Expired,
    #[error("certificate not yet valid")]
    NotYetValid,
    #[error("certificate not for IKE (extended key usage)")]
    KeyUsage,
    #[error("certificate does not name the identity")]
    IdMismatch,
    #[error("signature does not verify")]
    Signature,
    #[error("weak signature algorithm")]
    WeakAlgorithm,
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    #[error("certificate revoked")]
    Revoked,
    #[error("certificate is not the facility's (facility code, key binding or registry pin)")]
    FacilityMismatch,
    #[error("a CRL deciding the certificate is past its nextUpdate")]
    CrlExpired,
    #[error("the certificate's revocation status is unknown (no CRL of its issuer)")]
    RevocationUnknown,
}

impl CertAuthError {
    /// Its `reason` label in `ixgw_ike_refused_total`.
    pub fn name(self) -> &'static str {
        match self {
            CertAuthError::Sign => "certificate_sign",
            CertAuthError::NoCertificate => "certificate_missing",
            CertAuthError::Malformed => "certificate_malformed",
            CertAuthError::Untrusted => "certificate_untrusted",
            CertAuthError::Expired => "certificate_expired",
            CertAuthError::NotYetValid => "certificate_not_yet_valid",
            CertAuthError::KeyUsage => "certificate_key_usage",
            CertAuthError::IdMismatch => "certificate_id_mismatch",
            CertAuthError::Signature => "certificate_bad_signature",
            CertAuthError::WeakAlgorithm => "certificate_weak_algorithm",
            CertAuthError::UnsupportedAlgorithm => "certificate_unsupported_algorithm",
            CertAuthError::Revoked => "certificate_revoked",
            CertAuthError::FacilityMismatch => "certificate_facility_mismatch",
            CertAuthError::CrlExpired => "certificate_crl_expired",
            CertAuthError::RevocationUnknown => "certificate_revocation_unknown",
        }
    }
}

/// IKE SA transforms that may be combined: one of each list. AEAD ciphers take no
/// integrity transform; a proposal listing AEAD and other ciphers is sent as two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    pub prf: Vec<PrfAlg>,
    pub dh: Vec<DhGroup>,
}

/// ESP transforms that may be combined. `dh` empty: no PFS on rekey. `esn`: extended
/// sequence numbers (else 32-bit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    pub dh: Vec<DhGroup>,
    pub esn: bool,
}

/// Whether we open the IKE SA or wait for the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Initiate,
    Respond,
}

/// What to do when a peer stops answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    /// Delete its SAs and wait.
    Clear,
    /// Delete its SAs and initiate again (peers with an endpoint).
    Restart,
}

/// Engine-wide tunables. The defaults follow strongSwan's where it has one.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Half-open IKE SAs above which IKE_SA_INIT requests must carry a COOKIE [RFC 7296 § 2.6].
    pub cookie_threshold: usize,
    /// Half-open IKE SAs beyond which requests are dropped even with a valid cookie.
    pub half_open_max: usize,
    /// How long a responder waits for IKE_AUTH.
    pub half_open_timeout: Duration,
    /// Cookie secrets are replaced this often; the previous one stays valid for one period.
    pub cookie_secret_lifetime: Duration,
    /// First retransmission after this long, then each wait `retransmit_base` times the last.
    pub retransmit_timeout: Duration,
    pub retransmit_base: f64,
    /// Retransmissions before giving up (strongSwan: 4 s × 1.8^n, 5 tries, ~165 s in all).
    pub retransmit_tries: u32,
    /// Largest protected message sent whole when both ends support IKE fragmentation
    /// [RFC 7383]; larger ones go as fragments of at most this size.
    pub fragment_size: usize,
    /// Bounds of one message being reassembled.
    pub reassembly_max_bytes: usize,
    pub reassembly_max_fragments: u16,
    /// Rekey times are shortened by a random part of up to this percentage, so that two
    /// peers with the same configuration rarely collide [RFC 7296 § 2.8.1].
    pub rekey_jitter_percent: u8,
    /// A replaced IKE SA or CHILD SA whose Delete does not come is removed after this long.
    pub rekeyed_linger: Duration,
    /// Delay before initiating again after a failed attempt (`dpd_action: restart`).
    pub reconnect_delay: Duration,
    /// Delay before a rekey refused with TEMPORARY_FAILURE is tried again.
    pub retry_delay: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cookie_threshold: 32,
            half_open_max: 1024,
            half_open_timeout: Duration::from_secs(30),
            cookie_secret_lifetime: Duration::from_secs(120),
            retransmit_timeout: Duration::from_secs(4),
            retransmit_base: 1.8,
            retransmit_tries: 5,
            // 1280 octets of IPv4 packet less IP, UDP and the non-ESP marker.
            fragment_size: 1280 - 20 - 8 - 4,
            reassembly_max_bytes: 64 * 1024,
            reassembly_max_fragments: 64,
            rekey_jitter_percent: 10,
            rekeyed_linger: Duration::from_secs(30),
            reconnect_delay: Duration::from_secs(10),
            retry_delay: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SpiClass;

    /// A pick is of the class and near the random draw; the top of the range may have none.
    #[test]
    fn an_spi_class_picks_its_own() {
        let c = SpiClass {
            modulus: 5,
            residue: 3,
        };
        for r in [0u32, 1, 4, 5, 1000, 0x8000_0001, u32::MAX - 5] {
            let spi = c.pick(r).expect("an SPI of the class");
            assert!(c.contains(spi) && spi.abs_diff(r) < 5, "{r} → {spi}");
        }
        // u32::MAX is 0 modulo 5: its block ends there, and has no residue 3.
        assert_eq!(c.pick(u32::MAX), None);
        assert_eq!(SpiClass::ANY.pick(77), Some(77));
        assert!(SpiClass::ANY.contains(12_345));
        assert!(!c.contains(5));
    }
}
