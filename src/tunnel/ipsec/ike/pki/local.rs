//! Our side: the gateway's certificate chain and private key, and the AUTH payloads signed
//! with them [RFC 7296 § 2.15, RFC 7427 § 3].
//!
//! Which signature, following strongSwan's choice for the same key (`pubkey_authenticator`,
//! `signature_schemes_for_key`):
//! * The peer announced SIGNATURE_HASH_ALGORITHMS [RFC 7427 § 4]: method 14 with a hash from
//!   its list. ECDSA P-256 signs with SHA-256 and P-384 with SHA-384 (ring signs with no
//!   other pairing; strongSwan would also use a longer hash, which only matters for a peer
//!   that refuses the curve's own). RSA signs PKCS#1 v1.5 with SHA-256, SHA-384, SHA-512, in
//!   that order for keys up to 3072 bits and SHA-384, SHA-512, SHA-256 above: strongSwan's
//!   order with RSASSA-PSS off, its default. No hash in common: [`SignError::NoCommonHash`].
//! * It did not: the legacy methods. ECDSA uses method 9 (P-256, SHA-256) or 10 (P-384,
//!   SHA-384) with the raw `r | s` signature [RFC 4754]. RSA would have to use method 1,
//!   which means SHA-1 in practice: refused with [`SignError::LegacyRsa`], which the caller
//!   turns into AUTHENTICATION_FAILED. Sending method 14 anyway to a peer that did not say it
//!   understands it would fail as surely and less clearly.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, RsaEncoding, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{alg_id, CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::PkiError;
use crate::tunnel::ipsec::ike::der::{self, KeyKind};
use crate::tunnel::ipsec::ike::message::{
    algorithm_identifier as alg, Auth, AuthMethod, Cert, CertEncoding, DigitalSignature,
    HashAlgorithm, Id, IdType,
};

/// How a private key's DER is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// PKCS#8 `PrivateKeyInfo` (PEM "PRIVATE KEY") [RFC 5958].
    Pkcs8,
    /// SEC1 `ECPrivateKey` (PEM "EC PRIVATE KEY"), what `pki --gen --type ecdsa` and
    /// OpenSSL write [RFC 5915].
    Sec1,
    /// PKCS#1 `RSAPrivateKey` (PEM "RSA PRIVATE KEY"), what `pki --gen --type rsa` writes
    /// [RFC 8017 § A.1.2].
    Pkcs1,
}

/// The method and Authentication Data of an AUTH payload to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl AuthData {
    /// The AUTH payload.
    pub fn payload(&self) -> Auth<'_> {
        Auth {
            method: self.method,
            data: &self.data,
        }
    }
}

/// Why we could not sign an AUTH payload; the caller answers AUTHENTICATION_FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The peer's SIGNATURE_HASH_ALGORITHMS lists no hash our key signs with.
    #[error("no hash in common with the peer's SIGNATURE_HASH_ALGORITHMS")]
    NoCommonHash,
    /// The peer did not announce RFC 7427 and our key is RSA: method 1 means SHA-1.
    #[error("the peer did not announce signature hash algorithms and RSA would need SHA-1")]
    LegacyRsa,
    /// The signing primitive failed (the random generator).
    #[error("signing failed")]
    Signing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The OID contents of the named curve [RFC 5480 § 2.1.1.1].
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Curve::P384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
        }
    }

    fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// The one hash ring signs with on this curve.
    fn hash(self) -> HashAlgorithm {
        match self {
            Curve::P256 => HashAlgorithm::SHA2_256,
            Curve::P384 => HashAlgorithm::SHA2_384,
        }
    }

    fn signing(self) -> [&'static EcdsaSigningAlgorithm; 2] {
        match self {
            Curve::P256 => [
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &ECDSA_P256_SHA256_FIXED_SIGNING,
            ],
            Curve::P384 => [
                &ECDSA_P384_SHA384_ASN1_SIGNING,
                &ECDSA_P384_SHA384_FIXED_SIGNING,
            ],
        }
    }

    /// AlgorithmIdentifier for method 14, and the legacy method.
    fn methods(self) -> (&'static [u8], AuthMethod) {
        match self {
            Curve::P256 => (alg::ECDSA_WITH_SHA256, AuthMethod::ECDSA_SHA256_P256),
            Curve::P384 => (alg::ECDSA_WITH_SHA384, AuthMethod::ECDSA_SHA384_P384),
        }
    }
}

// One per configured credential, never in a collection that the size would bloat.
#[allow(clippy::large_enum_variant)]
enum Key {
    Ecdsa {
        curve: Curve,
        /// Signs for method 14 (DER `ECDSA-Sig-Value`).
        der: EcdsaKeyPair,
        /// Signs for methods 9 and 10 (raw `r | s`).
        fixed: EcdsaKeyPair,
    },
    Rsa(RsaKeyPair),
}

/// The gateway's certificate, the intermediates it sends with it, and its private key.
pub struct LocalCredential {
    /// DER, end entity first.
    chain: Vec<Vec<u8>>,
    /// The end entity's subject, a DER Name.
    subject: Vec<u8>,
    not_after: u64,
    key: Key,
    rng: SystemRandom,
}

impl fmt::Debug for LocalCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCredential")
            .field("certificates", &self.chain.len())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn rejected(format: KeyFormat, e: ring::error::KeyRejected) -> PkiError {
    match e.to_string().as_str() {
        "InconsistentComponents" | "WrongAlgorithm" => PkiError::KeyMismatch,
        reason => PkiError::Key {
            format,
            reason: reason.to_owned(),
        },
    }
}

fn bad_key(format: KeyFormat, reason: &str) -> PkiError {
    PkiError::Key {
        format,
        reason: reason.to_owned(),
    }
}

impl LocalCredential {
    /// The certificate (first) and the intermediates to send after it, each DER, and the
    /// private key in `format`. The key must be the certificate's: RSA (2048 to 4096 bits,
    /// ring's range) or ECDSA on P-256 or P-384.
    pub fn from_der(
        chain: Vec<Vec<u8>>,
        key_der: &[u8],
        format: KeyFormat,
    ) -> Result<LocalCredential, PkiError> {
        let (subject, not_after, key) = {
            let parsed = chain
                .iter()
                .enumerate()
                .map(|(index, der)| {
                    X509Certificate::from_der(der)
                        .map(|(_, cert)| cert)
                        .map_err(|e| PkiError::Certificate {
                            index,
                            reason: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ee = parsed.first().ok_or(PkiError::NoCertificate)?;
            let not_after = parsed
                .iter()
                .map(|c| u64::try_from(c.validity().not_after.timestamp()).unwrap_or(0))
                .min()
                .unwrap_or(0);
            let (kind, public) =
                der::spki(ee.public_key().raw).ok_or_else(|| PkiError::Certificate {
                    index: 0,
                    reason: "malformed subjectPublicKeyInfo".to_owned(),
                })?;
            let key = load_key(kind, public, key_der, format)?;
            (ee.subject().as_raw().to_vec(), not_after, key)
        };
        Ok(LocalCredential {
            chain,
            subject,
            not_after,
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The certificates of `chain_pem` (end entity first) and the first private key of
    /// `key_pem`, whose PEM label gives its format.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<LocalCredential, PkiError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PkiError::Pem(e.to_string()))?;
        let key = Zeroizing::new(
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| PkiError::Pem(e.to_string()))?,
        );
        let format = match &*key {
            PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
            PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
            _ => KeyFormat::Pkcs8,
        };
        LocalCredential::from_der(chain, key.secret_der(), format)
    }

    /// Signs `octets` (our [`super::signed_octets`]) for the AUTH payload, choosing the
    /// method and hash from the peer's SIGNATURE_HASH_ALGORITHMS (`None`: it sent none), as
    /// the module documentation describes.
    pub fn sign(
        &self,
        octets: &[u8],
        peer_hashes: Option<&[HashAlgorithm]>,
    ) -> Result<AuthData, SignError> {
        let (algorithm, signature) = match (&self.key, peer_hashes) {
            (Key::Ecdsa { curve, fixed, .. }, None) => {
                let sig = fixed
                    .sign(&self.rng, octets)
                    .map_err(|_| SignError::Signing)?;
                return Ok(AuthData {
                    method: curve.methods().1,
                    data: sig.as_ref().to_vec(),
                });
            }
            (Key::Ecdsa { curve, der, .. }, Some(hashes)) => {
                if !hashes.contains(&curve.hash()) {
                    return Err(SignError::NoCommonHash);
                }
                let sig = der
                    .sign(&self.rng, octets)
                    .map_err(|_| SignError::Signing)?;
                (curve.methods().0, sig.as_ref().to_vec())
            }
            (Key::Rsa(_), None) => return Err(SignError::LegacyRsa),
            (Key::Rsa(pair), Some(hashes)) => {
                let (algorithm, padding) = rsa_choice(pair.public().modulus_len(), hashes)
                    .ok_or(SignError::NoCommonHash)?;
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(padding, &self.rng, octets, &mut sig)
                    .map_err(|_| SignError::Signing)?;
                (algorithm, sig)
            }
        };
        let data = DigitalSignature {
            algorithm,
            signature: &signature,
        }
        .to_auth_data()
        .map_err(|_| SignError::Signing)?;
        Ok(AuthData {
            method: AuthMethod::DIGITAL_SIGNATURE,
            data,
        })
    }

    /// The CERT payloads to send: the certificate, then the intermediates, as X.509
    /// Certificate – Signature (encoding 4) [RFC 7296 § 3.6].
    pub fn certificates(&self) -> impl Iterator<Item = Cert<'_>> {
        self.chain.iter().map(|der| Cert {
            encoding: CertEncoding::X509_SIGNATURE,
            data: der,
        })
    }

    /// The certificate's subject, a DER Name.
    pub fn subject_dn(&self) -> &[u8] {
        &self.subject
    }

    /// The default identity: ID_DER_ASN1_DN with the certificate's subject, what strongSwan
    /// sends when no identity is configured.
    pub fn default_id(&self) -> Id<'_> {
        Id::new(IdType::DER_ASN1_DN, &self.subject)
    }

    /// When the first certificate of the chain expires, in UNIX seconds.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }
}

/// The private key of a certificate whose subjectPublicKey is `public`, of `kind`.
fn load_key(
    kind: KeyKind,
    public: &[u8],
    key_der: &[u8],
    format: KeyFormat,
) -> Result<Key, PkiError> {
    let key = match (kind, format) {
        (KeyKind::EcdsaP256 | KeyKind::EcdsaP384, KeyFormat::Sec1 | KeyFormat::Pkcs8) => {
            let curve = match kind {
                KeyKind::EcdsaP256 => Curve::P256,
                _ => Curve::P384,
            };
            ec_key(curve, public, key_der, format)?
        }
        (KeyKind::Rsa, KeyFormat::Pkcs1 | KeyFormat::Pkcs8) => {
            let pair = match format {
                KeyFormat::Pkcs1 => RsaKeyPair::from_der(key_der),
                _ => RsaKeyPair::from_pkcs8(key_der),
            }
            .map_err(|e| rejected(format, e))?;
            if pair.public().as_ref() != public {
                return Err(PkiError::KeyMismatch);
            }
            Key::Rsa(pair)
        }
        (KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::Rsa, _) => {
            return Err(PkiError::KeyMismatch)
        }
        (KeyKind::Ed25519, _) => return Err(PkiError::UnsupportedKey("Ed25519")),
        (KeyKind::Other, _) => return Err(PkiError::UnsupportedKey("algorithm")),
    };
    Ok(key)
}

/// The AlgorithmIdentifier and padding for an RSA key with a public modulus of
/// `modulus_len` octets.
fn rsa_choice(
    modulus_len: usize,
    hashes: &[HashAlgorithm],
) -> Option<(&'static [u8], &'static dyn RsaEncoding)> {
    const SHA256: (HashAlgorithm, &[u8], &dyn RsaEncoding) = (
        HashAlgorithm::SHA2_256,
        alg::SHA256_WITH_RSA,
        &RSA_PKCS1_SHA256,
    );
    const SHA384: (HashAlgorithm, &[u8], &dyn RsaEncoding) = (
        HashAlgorithm::SHA2_384,
        alg::SHA384_WITH_RSA,
        &RSA_PKCS1_SHA384,
    );
    const SHA512: (HashAlgorithm, &[u8], &dyn RsaEncoding) = (
        HashAlgorithm::SHA2_512,
        alg::SHA512_WITH_RSA,
        &RSA_PKCS1_SHA512,
    );
    let order = if modulus_len * 8 <= 3072 {
        [SHA256, SHA384, SHA512]
    } else {
        [SHA384, SHA512, SHA256]
    };
    order
        .into_iter()
        .find(|(h, _, _)| hashes.contains(h))
        .map(|(_, a, p)| (a, p))
}

/// An ECDSA key on `curve` from a SEC1 key or a PKCS#8-wrapped one, whose public point must
/// be `cert_public`.
fn ec_key(
    curve: Curve,
    cert_public: &[u8],
    key_der: &[u8],
    format: KeyFormat,
) -> Result<Key, PkiError> {
    let rng = &SystemRandom::new();
    let sec1 = match format {
        KeyFormat::Pkcs8 => {
            let (algorithm, inner) =
                der::pkcs8(key_der).ok_or_else(|| bad_key(format, "not a PKCS#8 key"))?;
            if KeyKind::from_algorithm(algorithm) != KeyKind::from_algorithm(curve_alg(curve)) {
                return Err(PkiError::KeyMismatch);
            }
            inner
        }
        _ => key_der,
    };
    let ec = der::ec_private_key(sec1).ok_or_else(|| bad_key(format, "not an ECPrivateKey"))?;
    if ec.curve.is_some_and(|oid| oid != curve.oid()) {
        return Err(PkiError::KeyMismatch);
    }
    let n = curve.scalar_len();
    let digits =
        ec.d.iter()
            .position(|&b| b != 0)
            .map_or(&[][..], |i| &ec.d[i..]);
    if digits.len() > n {
        return Err(bad_key(format, "private scalar too long"));
    }
    // RFC 5915 fixes the length at the order's; pad a shortened one rather than refuse it.
    let mut d = Zeroizing::new(vec![0u8; n]);
    d[n - digits.len()..].copy_from_slice(digits);
    let public = ec.public.unwrap_or(cert_public);
    let [der_alg, fixed_alg] = curve.signing();
    let der = EcdsaKeyPair::from_private_key_and_public_key(der_alg, &d, public, rng)
        .map_err(|e| rejected(format, e))?;
    let fixed = EcdsaKeyPair::from_private_key_and_public_key(fixed_alg, &d, public, rng)
        .map_err(|e| rejected(format, e))?;
    if ring::signature::KeyPair::public_key(&der).as_ref() != cert_public {
        return Err(PkiError::KeyMismatch);
    }
    Ok(Key::Ecdsa { curve, der, fixed })
}

fn curve_alg(curve: Curve) -> &'static [u8] {
    match curve {
        Curve::P256 => alg_id::ECDSA_P256.as_ref(),
        Curve::P384 => alg_id::ECDSA_P384.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// strongSwan's order for RSA keys (`signature_schemes_for_key`, RSASSA-PSS off).
    #[test]
    fn rsa_hashes_follow_strongswans_order_by_key_size() {
        use HashAlgorithm as H;
        let all = [H::SHA2_512, H::SHA2_384, H::SHA2_256];
        let pick = |bits: usize, hashes: &[H]| rsa_choice(bits / 8, hashes).map(|(a, _)| a);
        assert_eq!(pick(2048, &all), Some(alg::SHA256_WITH_RSA));
        assert_eq!(pick(3072, &all), Some(alg::SHA256_WITH_RSA));
        assert_eq!(pick(4096, &all), Some(alg::SHA384_WITH_RSA));
        assert_eq!(pick(4096, &[H::SHA2_256]), Some(alg::SHA256_WITH_RSA));
        assert_eq!(
            pick(4096, &[H::SHA2_512, H::SHA2_256]),
            Some(alg::SHA512_WITH_RSA)
        );
        assert_eq!(pick(2048, &[H::SHA1, H::IDENTITY]), None);
    }
}
