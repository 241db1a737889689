//! Authentication of the IKE_AUTH exchange [RFC 7296 § 2.15]: our certificate and private
//! key ([`LocalCredential`]) and the AUTH payload we sign with them, a peer's certificate
//! chain checked against the CAs configured for it ([`TrustStore`], [`verify_peer`]), and
//! pre-shared keys ([`psk_auth`], [`psk_verify`]), all over the octets of
//! [`signed_octets`].
//!
//! Layer contract: sans-IO. No files (the caller reads them and passes DER or PEM), no clock
//! (`now` is a parameter, in UNIX seconds), no state beyond the loaded credentials. Loading
//! errors ([`PkiError`]) name what is wrong for the operator; refusals of a peer are one
//! `Copy` [`AuthError`] that the caller logs by [`AuthError::name`] and answers with
//! AUTHENTICATION_FAILED ([`AuthError::notify`]). Work happens once per handshake (path
//! validation, one signature): small allocations here are fine, the data path never calls
//! this module.
//!
//! Libraries, and why each:
//! * `rustls-webpki`: path building and validation to a trust anchor (validity, basic and
//!   name constraints, extended key usage through a validator of ours) and signature
//!   verification with the end entity's key (`EndEntityCert::verify_signature`). It is the
//!   verifier rustls uses, small, fuzzed, and backed by ring, which this crate already has.
//! * `rustls-pki-types`: the DER and PEM types webpki takes (`CertificateDer`,
//!   `TrustAnchor`, `UnixTime`), PEM decoding of certificates and of the three private key
//!   formats, and the canonical AlgorithmIdentifiers we compare RFC 7427 ones with.
//! * `x509-parser`: the subject alternative names an identity is matched with. webpki only
//!   exposes DNS names (and matches IP addresses itself); RFC822 names and directory names,
//!   which IKE identities use [RFC 7296 § 3.5], it does not expose at all. Also the expiry
//!   times reported to the caller.
//! * ring, directly, for signing: `EcdsaKeyPair` and `RsaKeyPair` are what webpki verifies
//!   with, so both directions use one implementation. ring reads PKCS#8 and PKCS#1 keys;
//!   SEC1 `EC PRIVATE KEY`s (and the PKCS#8 wrapping of EC keys, so that one path serves
//!   both) are unwrapped in `der.rs` and handed to
//!   `EcdsaKeyPair::from_private_key_and_public_key`, which checks that the private scalar
//!   gives the public point. No further crate was worth adding for thirty lines of DER.
//! * The crypto seam ([`crate::crypto`]) for the PRF of AUTH and for SHA-1 (CERTREQ hashes).
//!
//! Certificate revocation (CRLs, OCSP) is not checked.

#![forbid(unsafe_code)]

mod dn;
mod engine_auth;
pub mod fuzz;
mod identity;
mod local;
mod psk;
mod trust;
mod verify;

#[cfg(test)]
mod tests_capture;
#[cfg(test)]
mod tests_keys;
#[cfg(test)]
mod tests_sign_verify;
#[cfg(test)]
mod testutil;

pub use dn::dn_from_text;
pub use engine_auth::PkiAuth;
pub use local::{AuthData, KeyFormat, LocalCredential, SignError};
pub use psk::{psk_auth, psk_verify, signed_octets, KEY_PAD};
pub use trust::TrustStore;
pub use verify::{verify_peer, AuthError, SignatureScheme, VerifiedPeer, MAX_CHAIN, VERIFY_HASHES};

/// Why a certificate, a chain, a CA file or a private key could not be loaded. Operator
/// errors: each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// No certificate was given (an empty chain or CA list, or PEM without certificates).
    #[error("no certificate given")]
    NoCertificate,
    /// A certificate (by its position in the chain or CA list) that does not parse.
    #[error("certificate {index} does not parse: {reason}")]
    Certificate { index: usize, reason: String },
    /// A certificate given as a CA whose basic constraints do not make it one.
    #[error("certificate {index} is not a CA certificate (basicConstraints cA is not set)")]
    NotACa { index: usize },
    /// PEM that does not decode.
    #[error("PEM: {0}")]
    Pem(String),
    /// A private key that does not parse in the format it was given in.
    #[error("private key ({format:?}) rejected: {reason}")]
    Key { format: KeyFormat, reason: String },
    /// A certificate whose public key we cannot sign with.
    #[error("unsupported key {0}: RSA of 2048 to 4096 bits, ECDSA P-256 and P-384 are")]
    UnsupportedKey(&'static str),
    /// The private key is not the one of the certificate's public key.
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
}
