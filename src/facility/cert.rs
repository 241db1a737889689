//! A facility certificate as ixgw reads it.
//!
//! Where a certificate names its facility (documented in the README, and what `ixgw ca issue`
//! writes):
//! * the facility code: the subject's `serialNumber` attribute (OID 2.5.4.5) and/or a
//!   subjectAltName URI `urn:ixgw:facility:<code>`. Every code named must be the same;
//! * the WireGuard static public keys it binds: subjectAltName URIs
//!   `urn:ixgw:wireguard-key:<base64>` (the key as `wg pubkey` prints it).
//!
//! The IKE identity an IPsec facility authenticates with is the certificate's own subject or
//! subjectAltName (checked by IKE); a TLS client's is the certificate itself.

use base64::Engine as _;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_SERIALNUMBER;
use x509_parser::prelude::FromDer;

/// The subjectAltName URI prefix that names a facility code.
pub const FACILITY_URI: &str = "urn:ixgw:facility:";
/// The subjectAltName URI prefix that binds a WireGuard static public key.
pub const WIREGUARD_KEY_URI: &str = "urn:ixgw:wireguard-key:";

/// The most certificates read from one file or one peer (the leaf and its intermediates).
pub const MAX_CHAIN: usize = 8;

/// Why a certificate cannot be read. Operator errors: each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no certificate in it")]
    NoCertificate,
    #[error("more than {MAX_CHAIN} certificates")]
    TooMany,
    #[error("PEM: {0}")]
    Pem(String),
    #[error("certificate {index} does not parse: {reason}")]
    Parse { index: usize, reason: String },
    #[error("certificate {index} is not a CA certificate (basicConstraints cA is not set)")]
    NotACa { index: usize },
    #[error("{0}")]
    Name(String),
}

/// A parsed facility certificate, with the intermediates its holder sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityCert {
    /// The leaf first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// The subject as text (RFC 4514-like, as x509-parser prints it).
    pub subject: String,
    pub issuer: String,
    /// The serial number, hex (as `ixgw ca` prints it).
    pub serial: String,
    /// Validity, in UNIX seconds.
    pub not_before: u64,
    pub not_after: u64,
    /// The facility codes it names, as written (valid or not), without repeats.
    pub codes: Vec<String>,
    /// The WireGuard public keys it binds.
    pub wireguard_keys: Vec<[u8; 32]>,
    /// The leaf's SubjectPublicKeyInfo, DER (what a registry entry pins).
    pub spki: Vec<u8>,
}

impl FacilityCert {
    /// A certificate file: PEM (the leaf first, then any intermediates) or one DER
    /// certificate.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<FacilityCert, CertError> {
        FacilityCert::from_chain(certificates(bytes)?)
    }

    /// A chain as a peer sent it (IKE CERT payloads, a TLS Certificate message), leaf first.
    pub fn from_der_chain(chain: &[&[u8]]) -> Result<FacilityCert, CertError> {
        if chain.len() > MAX_CHAIN {
            return Err(CertError::TooMany);
        }
        FacilityCert::from_chain(
            chain
                .iter()
                .map(|c| CertificateDer::from(c.to_vec()))
                .collect(),
        )
    }

    fn from_chain(chain: Vec<CertificateDer<'static>>) -> Result<FacilityCert, CertError> {
        let leaf = chain.first().ok_or(CertError::NoCertificate)?;
        for (index, der) in chain.iter().enumerate().skip(1) {
            parse(index, der)?;
        }
        let cert = parse(0, leaf)?;
        let bad = |reason: String| CertError::Parse { index: 0, reason };
        let mut codes = Vec::new();
        let mut wireguard_keys = Vec::new();
        for attr in cert.subject().iter_by_oid(&OID_X509_SERIALNUMBER) {
            let code = attr
                .as_str()
                .map_err(|e| bad(format!("subject serialNumber: {e}")))?;
            push_unique(&mut codes, code.to_string());
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("subjectAltName: {e}")))?;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if let Some(code) = strip_prefix_ignore_case(uri, FACILITY_URI) {
                push_unique(&mut codes, code.to_string());
            } else if let Some(key) = strip_prefix_ignore_case(uri, WIREGUARD_KEY_URI) {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .ok()
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .ok_or_else(|| {
                        CertError::Name(format!(
                            "subjectAltName URI {uri} is not a 32-byte base64 WireGuard key"
                        ))
                    })?;
                if !wireguard_keys.contains(&key) {
                    wireguard_keys.push(key);
                }
            }
        }
        let v = cert.validity();
        let secs = |t: i64| u64::try_from(t).unwrap_or(0);
        Ok(FacilityCert {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            not_before: secs(v.not_before.timestamp()),
            not_after: secs(v.not_after.timestamp()),
            codes,
            wireguard_keys,
            spki: cert.public_key().raw.to_vec(),
            chain,
        })
    }

    /// The leaf, DER.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The intermediates its holder sent.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.chain[1..]
    }

    /// The leaf's serial number as DER content octets (what CRLs list).
    pub fn raw_serial(&self) -> Vec<u8> {
        X509Certificate::from_der(self.leaf())
            .map(|(_, c)| c.raw_serial().to_vec())
            .unwrap_or_default()
    }
}

/// The certificates of a PEM file (every CERTIFICATE block, other blocks ignored) or of one
/// DER certificate.
pub fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = item.map_err(|e| CertError::Pem(e.to_string()))?;
        if kind == SectionKind::Certificate {
            if out.len() == MAX_CHAIN {
                return Err(CertError::TooMany);
            }
            out.push(CertificateDer::from(der));
        }
    }
    if out.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(out)
}

pub(crate) fn parse<'a>(index: usize, der: &'a [u8]) -> Result<X509Certificate<'a>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::Parse {
            index,
            reason: "trailing data after the certificate".into(),
        }),
        Err(e) => Err(CertError::Parse {
            index,
            reason: e.to_string(),
        }),
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// URI schemes and URN namespace identifiers are case-insensitive [RFC 8141 § 3].
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}
