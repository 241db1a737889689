//! The validated form of an `ipsec` attachment: IKEv2 and ESP towards strongSwan-style peers.
//!
//! Identities and proposals keep strongSwan's notation: [`IkeIdentity`] and the proposal types
//! print as swanctl.conf writes them, so `ixgw peer-config` can hand a facility the same
//! values ixgw will negotiate. Algorithms are the [`crate::crypto`] enums with their IANA
//! transform IDs; secrets ([`Secret`]) are zeroed when dropped and never printed by `Debug`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use zeroize::Zeroizing;

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::ids::FacilityCode;

/// IKE proposals when a peer names none: AEAD first, then AES-CBC with HMAC-SHA2; every
/// supported group. strongSwan's own default proposals include these algorithms.
pub const DEFAULT_IKE_PROPOSALS: [&str; 2] = [
    "aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha512-ecp256-ecp384-x25519",
    "aes256-aes128-sha256-sha384-sha512-ecp256-ecp384-x25519",
];

/// ESP proposals when a peer names none. No Diffie-Hellman group, so no PFS on CHILD_SA
/// rekeying: this is strongSwan's default as well, so an initiator without PFS agrees.
pub const DEFAULT_ESP_PROPOSALS: [&str; 2] = [
    "aes256gcm16-aes128gcm16",
    "aes256-aes128-sha256-sha384-sha512",
];

#[derive(Debug, Clone, PartialEq)]
pub struct IpsecAttachment {
    /// The address IKE and ESP are received on and sent from.
    pub listen: Ipv4Addr,
    /// UDP port of IKE_SA_INIT (500).
    pub ike_port: u16,
    /// UDP port shared by IKE from IKE_AUTH on (after NAT detection) and ESP-in-UDP (4500)
    /// [RFC 7296 § 2.23, RFC 3948].
    pub nat_t_port: u16,
    /// Also receive ESP as IP protocol 50 on `listen` (a raw socket).
    pub raw_esp: bool,
    /// The inner MTU.
    pub mtu: u16,
    /// The gateway's IKE identity (IDr as responder, IDi as initiator).
    pub local_id: IkeIdentity,
    /// The gateway's certificate and key, for peers with `auth: certificate`.
    pub credentials: Option<GatewayCredentials>,
    pub peers: Vec<IpsecPeer>,
}

/// The gateway's own certificate chain and private key.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayCredentials {
    pub certificate_file: PathBuf,
    /// DER, the gateway's certificate first, then the rest of its chain in file order.
    pub certificates: Vec<CertificateDer<'static>>,
    pub private_key_file: PathBuf,
    pub private_key: PrivateKey,
}

/// A private key as DER, in the format its PEM label named.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivateKey {
    pub format: KeyFormat,
    pub der: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `PRIVATE KEY` [RFC 5208, RFC 5958].
    Pkcs8,
    /// `EC PRIVATE KEY` [RFC 5915].
    Sec1,
    /// `RSA PRIVATE KEY` [RFC 8017 § A.1.2].
    Pkcs1,
}

impl PrivateKey {
    /// The key in the type rustls and webpki take, borrowing the DER.
    pub fn as_der(&self) -> PrivateKeyDer<'_> {
        let der = self.der.expose();
        match self.format {
            KeyFormat::Pkcs8 => PrivatePkcs8KeyDer::from(der).into(),
            KeyFormat::Sec1 => PrivateSec1KeyDer::from(der).into(),
            KeyFormat::Pkcs1 => PrivatePkcs1KeyDer::from(der).into(),
        }
    }
}

/// Secret bytes: zeroed when dropped; `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IpsecPeer {
    pub name: String,
    pub facility: FacilityCode,
    /// The identity the peer must authenticate as.
    pub remote_id: IkeIdentity,
    pub auth: IpsecAuth,
    /// The peer's side of the CHILD_SA in the tenant's internal numbering: what it may source
    /// (anti-spoofing) and what is routed to it.
    pub remote_ts: Vec<Ipv4Network>,
    /// The gateway's side in exchange space; `None`: every exchange prefix the peer's
    /// policies reach, as `ixgw peer-config` computes WireGuard's AllowedIPs.
    pub local_ts: Option<Vec<Ipv4Network>>,
    /// Where the gateway sends IKE_SA_INIT when it initiates.
    pub endpoint: Option<SocketAddrV4>,
    pub start: IpsecStart,
    pub proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    pub ike_rekey_time: Duration,
    pub child_rekey_time: Duration,
    pub child_rekey_bytes: Option<u64>,
    /// Liveness check after this long without traffic from the peer [RFC 7296 § 2.4].
    pub dpd_interval: Duration,
    /// The peer is dead when a liveness check is unanswered this long.
    pub dpd_timeout: Duration,
    pub dpd_action: DpdAction,
    /// Packets to the network or broadcast address of a `remote_ts` prefix (of length 30 or
    /// less) are forwarded; by default they are dropped (`directed_broadcast`).
    pub directed_broadcast: bool,
}

/// How a peer authenticates, and how the gateway authenticates to it.
#[derive(Debug, Clone, PartialEq)]
pub enum IpsecAuth {
    /// Both sides prove knowledge of one shared secret [RFC 7296 § 2.15].
    Psk { psk_file: PathBuf, psk: Secret },
    /// The peer signs with a certificate issued by one of `cas`; the gateway signs with
    /// [`IpsecAttachment::credentials`].
    Certificate {
        ca_file: PathBuf,
        cas: Vec<CertificateDer<'static>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsecStart {
    /// The gateway sets the SAs up and keeps them up.
    Initiate,
    /// The gateway waits for the peer.
    Respond,
}

/// What happens to a peer's SAs when it is found dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    /// Close them and wait.
    Clear,
    /// Close them and initiate anew.
    Restart,
}

/// An IKE identity [RFC 7296 § 3.5], written as strongSwan writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IkeIdentity {
    /// ID_FQDN.
    Fqdn(String),
    /// ID_DER_ASN1_DN, kept as text `C=JP, O=IX, CN=gw.ix.example` (RDNs joined by `, `).
    Dn(String),
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_KEY_ID.
    KeyId(Vec<u8>),
}

impl fmt::Display for IkeIdentity {
    /// strongSwan's notation, from which strongSwan infers the same identity type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IkeIdentity::Fqdn(name) => f.write_str(name),
            IkeIdentity::Dn(dn) => f.write_str(dn),
            IkeIdentity::Ipv4(a) => write!(f, "{a}"),
            IkeIdentity::KeyId(bytes) => {
                f.write_str("keyid:#")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// One IKE proposal: the peer picks one algorithm of each type [RFC 7296 § 3.3].
#[derive(Debug, Clone, PartialEq)]
pub struct IkeProposal {
    /// As written in the configuration (or the default), for messages.
    pub text: String,
    pub encr: Vec<EncrAlg>,
    /// Empty for an AEAD proposal.
    pub integ: Vec<IntegAlg>,
    pub prf: Vec<PrfAlg>,
    pub dh: Vec<DhGroup>,
}

/// One ESP proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct EspProposal {
    pub text: String,
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    /// Groups for a fresh Diffie-Hellman exchange when the CHILD_SA is rekeyed (PFS); empty
    /// for none.
    pub dh: Vec<DhGroup>,
    pub esn: Esn,
}

/// Extended sequence numbers [RFC 4303 § 2.2.1] an ESP proposal offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Esn {
    /// 32-bit sequence numbers only (the default, `noesn`).
    No,
    /// 64-bit only (`esn`).
    Yes,
    /// Either (`esn-noesn`).
    Either,
}

/// strongSwan's token for an encryption algorithm.
pub fn encr_token(a: EncrAlg) -> &'static str {
    match a {
        EncrAlg::AesCbc128 => "aes128",
        EncrAlg::AesCbc256 => "aes256",
        EncrAlg::AesGcm16_128 => "aes128gcm16",
        EncrAlg::AesGcm16_256 => "aes256gcm16",
    }
}

/// strongSwan's token for an integrity algorithm.
pub fn integ_token(a: IntegAlg) -> &'static str {
    match a {
        IntegAlg::HmacSha256_128 => "sha256",
        IntegAlg::HmacSha384_192 => "sha384",
        IntegAlg::HmacSha512_256 => "sha512",
    }
}

/// strongSwan's token for a PRF.
pub fn prf_token(a: PrfAlg) -> &'static str {
    match a {
        PrfAlg::HmacSha256 => "prfsha256",
        PrfAlg::HmacSha384 => "prfsha384",
        PrfAlg::HmacSha512 => "prfsha512",
    }
}

/// strongSwan's token for a Diffie-Hellman group.
pub fn dh_token(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Ecp256 => "ecp256",
        DhGroup::Ecp384 => "ecp384",
        DhGroup::Curve25519 => "x25519",
    }
}

fn write_tokens(f: &mut fmt::Formatter<'_>, tokens: &[&str]) -> fmt::Result {
    f.write_str(&tokens.join("-"))
}

impl fmt::Display for IkeProposal {
    /// The proposal in strongSwan's syntax, every algorithm named (PRFs included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens: Vec<&str> = (self.encr.iter().map(|a| encr_token(*a)))
            .chain(self.integ.iter().map(|a| integ_token(*a)))
            .chain(self.prf.iter().map(|a| prf_token(*a)))
            .chain(self.dh.iter().map(|g| dh_token(*g)))
            .collect();
        write_tokens(f, &tokens)
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esn: &[&str] = match self.esn {
            Esn::No => &[],
            Esn::Yes => &["esn"],
            Esn::Either => &["esn", "noesn"],
        };
        let tokens: Vec<&str> = (self.encr.iter().map(|a| encr_token(*a)))
            .chain(self.integ.iter().map(|a| integ_token(*a)))
            .chain(self.dh.iter().map(|g| dh_token(*g)))
            .chain(esn.iter().copied())
            .collect();
        write_tokens(f, &tokens)
    }
}
