//! The peer's side: its certificate chain validated to one of the CAs configured for it, its
//! identity matched with the certificate, and its AUTH signature verified with the
//! certificate's key [RFC 7296 § 2.15, RFC 7427, RFC 4754].
//!
//! Validity: every certificate of the path at `now`, the CA's own included (webpki keeps no
//! validity for a trust anchor; strongSwan checks it, and so do we). Revocation is not
//! checked.
//!
//! Extended key usage: a certificate of the path without the extension, or whose extension
//! lists serverAuth, clientAuth (strongSwan's `pki --flag serverAuth --flag clientAuth`
//! certificates carry both), id-kp-ipsecIKE or anyExtendedKeyUsage [RFC 4945 § 5.1.3.12],
//! is accepted; one whose extension lists none of them (e.g. only emailProtection) is
//! refused with [`AuthError::KeyUsage`]. strongSwan itself ignores the extension for IKE;
//! RFC 4945 would refuse serverAuth/clientAuth-only certificates, which nobody does. The
//! validator is the facility certificates' ([`FacilityUsage`]): a facility's router
//! authenticates IKE with its facility certificate.
//!
//! Signatures: method 14 with ecdsa-with-SHA256/384, sha256/384/512WithRSAEncryption,
//! RSASSA-PSS with SHA-256/384/512 (MGF1 with the same hash, salt as long as the hash: the
//! parameters strongSwan sends) and Ed25519; methods 9 and 10 (raw ECDSA on P-256 and
//! P-384). Method 1 (RSA, which means SHA-1), DSS and anything with SHA-1 or MD5 are
//! refused as [`AuthError::WeakAlgorithm`]; ECDSA with SHA-512 and P-521 (method 11) as
//! [`AuthError::UnsupportedAlgorithm`]: ring verifies neither.

use std::borrow::Cow;
use std::time::Duration;

use rustls_pki_types::{alg_id, CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::EndEntityCert;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::{identity, TrustStore};
use crate::facility::FacilityUsage;
use crate::tunnel::ipsec::ike::der::{self, Der, KeyKind};
use crate::tunnel::ipsec::ike::message::{
    Auth, AuthMethod, DigitalSignature, HashAlgorithm, Id, NotifyType,
};

/// The hashes to announce in our SIGNATURE_HASH_ALGORITHMS notification [RFC 7427 § 4]
/// (Identity for Ed25519 [RFC 8420 § 2]).
pub const VERIFY_HASHES: [HashAlgorithm; 4] = [
    HashAlgorithm::SHA2_256,
    HashAlgorithm::SHA2_384,
    HashAlgorithm::SHA2_512,
    HashAlgorithm::IDENTITY,
];

/// The most certificates a peer may send for one chain (end entity included).
pub const MAX_CHAIN: usize = 8;

/// Why a peer's authentication was refused. The caller logs [`AuthError::name`] and answers
/// AUTHENTICATION_FAILED [RFC 7296 § 2.21.2].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthError {
    /// Certificates, the AUTH data or an AlgorithmIdentifier that do not parse; no
    /// certificate, or more than [`MAX_CHAIN`].
    #[error("malformed certificate or authentication data")]
    Malformed,
    /// No path to a trust anchor (unknown issuer, a bad signature in the chain, a CA
    /// constraint violated).
    #[error("certificate not issued by a trusted CA")]
    Untrusted,
    /// A certificate of the path has expired.
    #[error("certificate expired")]
    Expired,
    /// A certificate of the path is not valid yet.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// A certificate of the path has an extended key usage that does not allow IKE.
    #[error("certificate not for IKE (extended key usage)")]
    KeyUsage,
    /// The identity is not one the certificate names.
    #[error("identity does not match the certificate")]
    IdMismatch,
    /// The AUTH signature does not verify with the certificate's key (or does not fit it).
    #[error("signature does not verify")]
    BadSignature,
    /// A pre-shared key AUTH value that is not the expected one.
    #[error("pre-shared key authentication does not verify")]
    PskMismatch,
    /// SHA-1 or MD5: AUTH method 1, DSS, or a signature algorithm with them.
    #[error("weak signature algorithm")]
    WeakAlgorithm,
    /// A method or signature algorithm we do not verify.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
}

impl AuthError {
    /// A short name for logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::Untrusted => "untrusted",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::KeyUsage => "key_usage",
            AuthError::IdMismatch => "id_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::PskMismatch => "psk_mismatch",
            AuthError::WeakAlgorithm => "weak_algorithm",
            AuthError::UnsupportedAlgorithm => "unsupported_algorithm",
        }
    }

    /// The Notify to answer with: AUTHENTICATION_FAILED, whatever the reason, so that the
    /// peer learns nothing more [RFC 7296 § 2.21.2].
    pub fn notify(self) -> NotifyType {
        NotifyType::AUTHENTICATION_FAILED
    }
}

/// A signature algorithm of a verified AUTH payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    EcdsaP256Sha256,
    EcdsaP256Sha384,
    EcdsaP384Sha256,
    EcdsaP384Sha384,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    Ed25519,
}

impl SignatureScheme {
    fn webpki(self) -> &'static dyn SignatureVerificationAlgorithm {
        use webpki::ring as w;
        match self {
            SignatureScheme::EcdsaP256Sha256 => w::ECDSA_P256_SHA256,
            SignatureScheme::EcdsaP256Sha384 => w::ECDSA_P256_SHA384,
            SignatureScheme::EcdsaP384Sha256 => w::ECDSA_P384_SHA256,
            SignatureScheme::EcdsaP384Sha384 => w::ECDSA_P384_SHA384,
            SignatureScheme::RsaPkcs1Sha256 => w::RSA_PKCS1_2048_8192_SHA256,
            SignatureScheme::RsaPkcs1Sha384 => w::RSA_PKCS1_2048_8192_SHA384,
            SignatureScheme::RsaPkcs1Sha512 => w::RSA_PKCS1_2048_8192_SHA512,
            SignatureScheme::RsaPssSha256 => w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            SignatureScheme::RsaPssSha384 => w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            SignatureScheme::RsaPssSha512 => w::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            SignatureScheme::Ed25519 => w::ED25519,
        }
    }

    /// The scheme of an RFC 7427 AlgorithmIdentifier (its contents) for a key of `key`.
    fn from_algorithm(alg: &[u8], key: KeyKind) -> Result<SignatureScheme, AuthError> {
        use SignatureScheme as S;
        // ECDSA identifiers name the hash; the curve is the key's. Another kind of key keeps
        // the P-256 scheme, which the signature check then refuses as not fitting the key.
        let ecdsa = |p256, p384| match key {
            KeyKind::EcdsaP384 => Ok(p384),
            _ => Ok(p256),
        };
        match alg {
            a if a == alg_id::ECDSA_SHA256.as_ref() => {
                ecdsa(S::EcdsaP256Sha256, S::EcdsaP384Sha256)
            }
            a if a == alg_id::ECDSA_SHA384.as_ref() => {
                ecdsa(S::EcdsaP256Sha384, S::EcdsaP384Sha384)
            }
            a if a == alg_id::RSA_PKCS1_SHA256.as_ref() => Ok(S::RsaPkcs1Sha256),
            a if a == alg_id::RSA_PKCS1_SHA384.as_ref() => Ok(S::RsaPkcs1Sha384),
            a if a == alg_id::RSA_PKCS1_SHA512.as_ref() => Ok(S::RsaPkcs1Sha512),
            a if a == alg_id::RSA_PSS_SHA256.as_ref() => Ok(S::RsaPssSha256),
            a if a == alg_id::RSA_PSS_SHA384.as_ref() => Ok(S::RsaPssSha384),
            a if a == alg_id::RSA_PSS_SHA512.as_ref() => Ok(S::RsaPssSha512),
            a if a == alg_id::ED25519.as_ref() => Ok(S::Ed25519),
            a => match Der::new(a).expect(der::OID) {
                None => Err(AuthError::Malformed),
                Some(oid) if is_weak(oid) => Err(AuthError::WeakAlgorithm),
                // The PKCS#1 v1.5 identifiers with their NULL parameters left out.
                Some(oid) if a.len() == oid.len() + 2 && oid.starts_with(PKCS1) => {
                    match oid.last() {
                        Some(0x0b) => Ok(S::RsaPkcs1Sha256),
                        Some(0x0c) => Ok(S::RsaPkcs1Sha384),
                        Some(0x0d) => Ok(S::RsaPkcs1Sha512),
                        _ => Err(AuthError::UnsupportedAlgorithm),
                    }
                }
                Some(_) => Err(AuthError::UnsupportedAlgorithm),
            },
        }
    }
}

/// The arc of PKCS#1 signature algorithms, 1.2.840.113549.1.1.
const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];

/// Whether a signature algorithm OID (contents) hashes with MD5 or SHA-1.
fn is_weak(oid: &[u8]) -> bool {
    const WEAK: [&[u8]; 5] = [
        // md5WithRSAEncryption, sha1WithRSAEncryption [RFC 3279 § 2.2.1]
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
        // ecdsa-with-SHA1 [RFC 3279 § 2.2.3]
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
        // id-dsa-with-sha1 [RFC 3279 § 2.2.2]
        &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03],
        // sha1WithRSASignature (OIW)
        &[0x2b, 0x0e, 0x03, 0x02, 0x1d],
    ];
    WEAK.contains(&oid)
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// The end entity's subject, a DER Name.
    pub subject: Vec<u8>,
    /// When the first certificate of the verified path (the CA's included) expires, in UNIX
    /// seconds: the IKE SA should not outlive it.
    pub not_after: u64,
    /// The trust anchor the path ends at, by its position in the [`TrustStore`].
    pub anchor: usize,
    pub method: AuthMethod,
    pub scheme: SignatureScheme,
}

/// The refusal for a failed path validation.
fn path_error(e: webpki::Error) -> AuthError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => AuthError::Expired,
        E::CertNotValidYet { .. } => AuthError::NotYetValid,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => AuthError::KeyUsage,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::UnsupportedCertVersion
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidCertValidity
        | E::InvalidSerialNumber => AuthError::Malformed,
        E::UnsupportedSignatureAlgorithmContext(c) => {
            match Der::new(&c.signature_algorithm_id).expect(der::OID) {
                Some(oid) if is_weak(oid) => AuthError::WeakAlgorithm,
                _ => AuthError::UnsupportedAlgorithm,
            }
        }
        _ => AuthError::Untrusted,
    }
}

/// The signature scheme and the signature, in the form webpki verifies, of an AUTH payload.
fn signature<'a>(
    auth: &Auth<'a>,
    key: KeyKind,
) -> Result<(SignatureScheme, Cow<'a, [u8]>), AuthError> {
    let fixed = |half: usize, scheme| {
        if auth.data.len() != 2 * half {
            return Err(AuthError::Malformed);
        }
        let sig = der::ecdsa_fixed_to_der(auth.data).ok_or(AuthError::Malformed)?;
        Ok((scheme, Cow::Owned(sig)))
    };
    match auth.method {
        AuthMethod::DIGITAL_SIGNATURE => {
            let ds = DigitalSignature::parse(auth.data).ok_or(AuthError::Malformed)?;
            let alg = der::single(ds.algorithm, der::SEQUENCE).ok_or(AuthError::Malformed)?;
            let scheme = SignatureScheme::from_algorithm(alg, key)?;
            Ok((scheme, Cow::Borrowed(ds.signature)))
        }
        AuthMethod::ECDSA_SHA256_P256 => fixed(32, SignatureScheme::EcdsaP256Sha256),
        AuthMethod::ECDSA_SHA384_P384 => fixed(48, SignatureScheme::EcdsaP384Sha384),
        AuthMethod::RSA_SIGNATURE | AuthMethod::DSS_SIGNATURE => Err(AuthError::WeakAlgorithm),
        _ => Err(AuthError::UnsupportedAlgorithm),
    }
}

/// Verifies a peer's certificate authentication: `chain` is the certificates of its CERT
/// payloads (end entity first, then intermediates in any order), `now` the time in UNIX
/// seconds, `id` its IDi or IDr as received, `auth` its AUTH payload and `signed_octets`
/// its [`super::signed_octets`], built with this same `id`.
///
/// Checks, cheapest first: the method and algorithm (weak ones are refused before any
/// work), that the certificates and the AUTH data parse, that the identity is the
/// certificate's, then the path to a CA of `trust` at `now`, then the signature.
pub fn verify_peer(
    trust: &TrustStore,
    chain: &[&[u8]],
    now: u64,
    id: &Id<'_>,
    auth: &Auth<'_>,
    signed_octets: &[u8],
) -> Result<VerifiedPeer, AuthError> {
    let (&ee_der, intermediates) = chain.split_first().ok_or(AuthError::Malformed)?;
    if chain.len() > MAX_CHAIN {
        return Err(AuthError::Malformed);
    }
    if matches!(
        auth.method,
        AuthMethod::RSA_SIGNATURE | AuthMethod::DSS_SIGNATURE
    ) {
        return Err(AuthError::WeakAlgorithm);
    }
    let ee_cert = CertificateDer::from(ee_der);
    let ee = EndEntityCert::try_from(&ee_cert).map_err(path_error)?;
    let (_, parsed) = X509Certificate::from_der(ee_der).map_err(|_| AuthError::Malformed)?;
    let key = der::spki(parsed.public_key().raw).map_or(KeyKind::Other, |(kind, _)| kind);
    let (scheme, sig) = signature(auth, key)?;
    if !identity::matches(&parsed, id) {
        return Err(AuthError::IdMismatch);
    }

    let (anchor, path_not_after) = validate_path(trust, &ee, intermediates, now)?;
    ee.verify_signature(scheme.webpki(), signed_octets, &sig)
        .map_err(|_| AuthError::BadSignature)?;
    Ok(VerifiedPeer {
        subject: parsed.subject().as_raw().to_vec(),
        not_after: path_not_after.min(cert_not_after(&parsed)),
        anchor,
        method: auth.method,
        scheme,
    })
}

/// A path from `ee` through some of `intermediates` to a CA of `trust`, valid at `now`: the
/// CA's position and when the first CA certificate of the path expires.
fn validate_path(
    trust: &TrustStore,
    ee: &EndEntityCert<'_>,
    intermediates: &[&[u8]],
    now: u64,
) -> Result<(usize, u64), AuthError> {
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|&c| CertificateDer::from(c))
        .collect();
    let unix = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
    let time = unix(now);
    let in_time =
        |&(_, (not_before, not_after)): &(usize, (u64, u64))| not_before <= now && now <= not_after;
    // The anchor's own validity, which webpki does not check (shared with the facility
    // registry's verification).
    let anchor_in_time =
        crate::facility::trust::anchor_in_time(&trust.anchors, &trust.validity, now);
    let path = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust.anchors,
            &intermediates,
            time,
            FacilityUsage,
            None,
            Some(&anchor_in_time),
        )
        .map_err(path_error)?;

    let (anchor, (_, mut not_after)) = trust
        .matching(path.anchor())
        .find(in_time)
        .unwrap_or((0, (0, u64::MAX)));
    for c in path.intermediate_certificates() {
        if let Ok((_, c)) = X509Certificate::from_der(c.der().as_ref()) {
            not_after = not_after.min(cert_not_after(&c));
        }
    }
    Ok((anchor, not_after))
}

fn cert_not_after(c: &X509Certificate<'_>) -> u64 {
    u64::try_from(c.validity().not_after.timestamp()).unwrap_or(0)
}
