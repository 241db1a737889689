//! CA and facility certificates from their parameters: validity, serial and key come in, DER
//! and PEM go out.
//!
//! An [`Authority`] is a CA read back from its certificate and key. rcgen writes an issuer's
//! name from its own `DistinguishedName`, so the CA's subject is rebuilt attribute by attribute
//! with the same string types; every certificate made is then checked to name, byte for byte,
//! the subject of the CA that signed it [RFC 5280 § 4.1.2.4], and to carry that CA's subject
//! key identifier as its authority key identifier [RFC 5280 § 4.2.1.1].

use std::time::{Duration, SystemTime};

use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SignatureAlgorithm,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;
use zeroize::Zeroizing;

use super::{add, offset, InputError, DEFAULT_ORG, FACILITY_URN, SERIAL_NUMBER_OID, WIREGUARD_URN};
use crate::crypto::Random;
use crate::ids::FacilityCode;
use crate::tunnel::wireguard::keys;

/// The key algorithm of a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256.
    #[default]
    Ec256,
    /// ECDSA on P-384 with SHA-384.
    Ec384,
    Ed25519,
}

impl KeyType {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::Ec256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::Ec384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("rcgen: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the CA is an intermediate; an intermediate CA must be signed by a root CA")]
    ParentIsIntermediate,
    #[error(
        "the issuer name written does not match the CA's subject (unsupported subject encoding)"
    )]
    IssuerMismatch,
}

/// Why a CA's certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no PEM CERTIFICATE block")]
    NoCertificate,
    #[error("not an X.509 certificate: {0}")]
    Certificate(String),
    #[error("not a CA certificate (basicConstraints cA is not true)")]
    NotCa,
    #[error("keyUsage lacks keyCertSign or cRLSign")]
    KeyUsage,
    #[error("subject: {0}")]
    Subject(String),
    #[error("no PKCS#8 private key rcgen can use: {0}")]
    Key(rcgen::Error),
    #[error("the private key does not belong to the CA certificate")]
    KeyMismatch,
}

/// A certificate's positive serial number, minimal big-endian (no leading zero byte).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A random positive serial of up to 128 bits: 16 random bytes with the top bit cleared
    /// [RFC 5280 § 4.1.2.2].
    pub fn random(rng: &mut impl Random) -> Result<Serial, SignError> {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes).map_err(|_| SignError::Random)?;
        bytes[0] &= 0x7f;
        if bytes.iter().all(|&b| b == 0) {
            bytes[15] = 1;
        }
        Ok(Serial::from_be_bytes(&bytes))
    }

    /// The serial of big-endian `bytes` (a DER INTEGER's contents: a leading zero is dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Serial {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        Serial(bytes[start..].to_vec())
    }

    /// Lowercase hex without separators, as `revoked.txt` writes it.
    pub fn from_hex(text: &str) -> Option<Serial> {
        if text.is_empty() || text.len() % 2 != 0 || text.len() > 40 {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Serial::from_be_bytes(&bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn rcgen(&self) -> rcgen::SerialNumber {
        self.0.clone().into()
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A certificate's validity period, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// `days` from `not_before` (default `now`), unless `not_after` is given.
    pub fn new(
        now: SystemTime,
        days: u32,
        not_before: Option<SystemTime>,
        not_after: Option<SystemTime>,
    ) -> Result<Validity, InputError> {
        let not_before = not_before.unwrap_or(now);
        let not_after = match not_after {
            Some(t) => t,
            None => add(not_before, Duration::from_secs(u64::from(days) * 86_400))?,
        };
        let (nb, na) = (offset(not_before)?, offset(not_after)?);
        if na <= nb {
            return Err(InputError::Validity {
                not_before: super::rfc3339(not_before),
                not_after: super::rfc3339(not_after),
            });
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }
}

/// A new CA: `C=JP, O=org, CN=name`.
#[derive(Debug, Clone)]
pub struct CaRequest {
    pub name: String,
    /// [`DEFAULT_ORG`] if `None`.
    pub org: Option<String>,
    pub validity: Validity,
    pub key_type: KeyType,
}

/// A new facility certificate: `C=JP, O=<the CA's O>, CN=name, serialNumber=facility`.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub facility: FacilityCode,
    pub name: String,
    /// Public keys, each a SAN URI `urn:ixgw:wireguard-key:BASE64`.
    pub wireguard_keys: Vec<[u8; 32]>,
    /// SAN dNSNames (IKE/TLS identities).
    pub dns: Vec<String>,
    /// SAN rfc822Names.
    pub email: Vec<String>,
    pub validity: Validity,
    pub key_type: KeyType,
}

/// A certificate just made, and its new private key.
#[derive(Debug)]
pub struct Issued {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 in PEM.
    pub key_pem: Zeroizing<String>,
    pub serial: Serial,
    pub not_after: SystemTime,
}

/// A CA that can sign: its certificate and key.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
    cert_pem: String,
    org: String,
    key_id: Vec<u8>,
    intermediate: bool,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("org", &self.org)
            .field("intermediate", &self.intermediate)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// The CA of `cert_pem` (its first CERTIFICATE block) and `key_pem` (PKCS#8).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Authority, LoadError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| LoadError::NoCertificate)?;
        let (_, x509) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| LoadError::Certificate(e.to_string()))?;
        if !x509.is_ca() {
            return Err(LoadError::NotCa);
        }
        if let Ok(Some(ku)) = x509.key_usage() {
            if !ku.value.key_cert_sign() || !ku.value.crl_sign() {
                return Err(LoadError::KeyUsage);
            }
        }
        let key = KeyPair::from_pem(key_pem).map_err(LoadError::Key)?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(LoadError::KeyMismatch);
        }
        let key_id = subject_key_id(&x509)
            .unwrap_or_else(|| CertificateParams::default().key_identifier(&key));
        let org = x509
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .unwrap_or(DEFAULT_ORG)
            .to_owned();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(x509.subject())?;
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let intermediate = x509.subject().as_raw() != x509.issuer().as_raw();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_der: der.to_vec(),
            cert_pem: cert_pem.to_owned(),
            org,
            key_id,
            intermediate,
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate file's text as it was read.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The subject's `O`, which the CA's end entities carry too.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// The subject key identifier, which certificates and CRLs it signs name.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// Whether another CA signed this one.
    pub fn is_intermediate(&self) -> bool {
        self.intermediate
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Whether the CRL `der` names this CA as its issuer.
    pub fn issued_crl(&self, der: &[u8]) -> bool {
        let Ok((_, ca)) = X509Certificate::from_der(&self.cert_der) else {
            return false;
        };
        x509_parser::parse_x509_crl(der)
            .is_ok_and(|(_, crl)| crl.issuer().as_raw() == ca.subject().as_raw())
    }

    /// Whether `der` names this CA as its issuer and carries its key identifier (when it
    /// carries one).
    pub fn issued(&self, der: &[u8]) -> bool {
        let Ok((_, ca)) = X509Certificate::from_der(&self.cert_der) else {
            return false;
        };
        let Ok((_, c)) = X509Certificate::from_der(der) else {
            return false;
        };
        c.issuer().as_raw() == ca.subject().as_raw()
            && authority_key_id(&c).is_none_or(|id| id == self.key_id)
    }
}

/// A new CA: self-signed (a root), or signed by `parent` (an intermediate, which may sign end
/// entities only: pathLenConstraint 0).
pub fn new_ca(
    req: &CaRequest,
    parent: Option<&Authority>,
    rng: &mut impl Random,
) -> Result<Issued, SignError> {
    if parent.is_some_and(Authority::is_intermediate) {
        return Err(SignError::ParentIsIntermediate);
    }
    let org = req.org.as_deref().unwrap_or(DEFAULT_ORG);
    let mut p = base_params(&req.validity, Serial::random(rng)?)?;
    p.distinguished_name = subject(org, &req.name, None)?;
    p.is_ca = IsCa::Ca(match parent {
        Some(_) => BasicConstraints::Constrained(0),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = parent.is_some();
    let key = KeyPair::generate_for(req.key_type.algorithm())?;
    let cert = match parent {
        Some(ca) => p.signed_by(&key, ca.issuer())?,
        None => p.self_signed(&key)?,
    };
    if let Some(ca) = parent {
        if !ca.issued(cert.der()) {
            return Err(SignError::IssuerMismatch);
        }
    }
    Ok(issued(&p, cert, &key))
}

/// A facility certificate signed by `ca`.
pub fn issue(
    ca: &Authority,
    req: &LeafRequest,
    rng: &mut impl Random,
) -> Result<Issued, SignError> {
    let mut p = base_params(&req.validity, Serial::random(rng)?)?;
    p.distinguished_name = subject(ca.org(), &req.name, Some(req.facility))?;
    p.subject_alt_names = subject_alt_names(req)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(req.key_type.algorithm())?;
    let cert = p.signed_by(&key, ca.issuer())?;
    if !ca.issued(cert.der()) {
        return Err(SignError::IssuerMismatch);
    }
    Ok(issued(&p, cert, &key))
}

fn base_params(validity: &Validity, serial: Serial) -> Result<CertificateParams, InputError> {
    let mut p = CertificateParams::default();
    p.not_before = offset(validity.not_before)?;
    p.not_after = offset(validity.not_after)?;
    p.serial_number = Some(serial.rcgen());
    Ok(p)
}

fn issued(p: &CertificateParams, cert: rcgen::Certificate, key: &KeyPair) -> Issued {
    let serial = p
        .serial_number
        .as_ref()
        .map(|s| Serial::from_be_bytes(s.as_ref()))
        .unwrap_or(Serial(Vec::new()));
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(p.not_after.unix_timestamp()).unwrap_or(0));
    Issued {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
        serial,
        not_after,
    }
}

/// `C=JP, O=org, CN=name[, serialNumber=facility]`: C and serialNumber are PrintableStrings
/// [RFC 5280 Appendix A.1], O and CN UTF8Strings.
fn subject(
    org: &str,
    name: &str,
    facility: Option<FacilityCode>,
) -> Result<DistinguishedName, InputError> {
    if name.trim().is_empty() {
        return Err(InputError::Empty("--name"));
    }
    if org.trim().is_empty() {
        return Err(InputError::Empty("--org"));
    }
    // Letters and digits are printable: neither value comes from the operator as text.
    let printable = |s: String| {
        DnValue::PrintableString(PrintableString::try_from(s).expect("letters and digits"))
    };
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("JP".into()));
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, name);
    if let Some(code) = facility {
        dn.push(
            DnType::CustomDnType(SERIAL_NUMBER_OID.to_vec()),
            printable(code.to_string()),
        );
    }
    Ok(dn)
}

fn subject_alt_names(req: &LeafRequest) -> Result<Vec<SanType>, InputError> {
    // Digits and base64 are ASCII.
    let uri = |s: String| SanType::URI(Ia5String::try_from(s).expect("ASCII"));
    let mut sans = vec![uri(format!("{FACILITY_URN}{}", req.facility))];
    for k in &req.wireguard_keys {
        sans.push(uri(format!("{WIREGUARD_URN}{}", keys::encode(k))));
    }
    for name in &req.dns {
        if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() {
            return Err(InputError::Dns(name.clone()));
        }
        let ia5 = Ia5String::try_from(name.as_str()).map_err(|_| InputError::Dns(name.clone()))?;
        sans.push(SanType::DnsName(ia5));
    }
    for addr in &req.email {
        let valid = addr
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && addr.bytes().all(|b| b.is_ascii_graphic());
        let ia5 = Ia5String::try_from(addr.as_str())
            .ok()
            .filter(|_| valid)
            .ok_or_else(|| InputError::Email(addr.clone()))?;
        sans.push(SanType::Rfc822Name(ia5));
    }
    Ok(sans)
}

/// The subject of a certificate as rcgen will write it again: one attribute per RDN, each with
/// its string type.
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, LoadError> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(LoadError::Subject("a multi-valued RDN".into()));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| LoadError::Subject(format!("OID {}", attr.attr_type())))?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(LoadError::Subject(format!(
                "attribute {} twice",
                attr.attr_type()
            )));
        }
        let value = attr.attr_value();
        let unsupported = || {
            LoadError::Subject(format!(
                "attribute {} as {}",
                attr.attr_type(),
                value.header.tag()
            ))
        };
        let text = std::str::from_utf8(value.data).map_err(|_| unsupported())?;
        let value = match value.header.tag() {
            Tag::PrintableString => {
                DnValue::PrintableString(text.try_into().map_err(|_| unsupported())?)
            }
            Tag::Ia5String => DnValue::Ia5String(text.try_into().map_err(|_| unsupported())?),
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            _ => return Err(unsupported()),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

pub(crate) fn subject_key_id(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

pub(crate) fn authority_key_id<'a>(c: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    c.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .map(|id| id.0)
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use crate::crypto::CountingRandom;

    #[test]
    fn serials_are_positive_and_at_most_16_bytes() {
        let mut rng = CountingRandom(0x80);
        let s = Serial::random(&mut rng).unwrap();
        // 0x80 with its top bit cleared is 0, and a DER INTEGER has no leading zero.
        assert_eq!(s.as_bytes().len(), 15);
        assert_eq!(s.as_bytes()[0], 0x81);
        let s = Serial::random(&mut CountingRandom(0xf0)).unwrap();
        assert_eq!(s.as_bytes().len(), 16);
        assert_eq!(s.as_bytes()[0], 0x70);
        assert_eq!(Serial::from_hex(&s.to_string()), Some(s));
    }

    #[test]
    fn serial_hex() {
        assert_eq!(Serial::from_hex("00ff"), Some(Serial(vec![0xff])));
        assert_eq!(Serial::from_be_bytes(&[0, 0, 1, 2]).to_string(), "0102");
        for bad in ["", "f", "0g", "ü1", &"00".repeat(21)] {
            assert_eq!(Serial::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn validity_from_days_or_bounds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000);
        let v = Validity::new(now, 365, None, None).unwrap();
        assert_eq!(v.not_before, now);
        assert_eq!(
            v.not_after.duration_since(now).unwrap(),
            Duration::from_secs(365 * 86_400)
        );
        let before = now - Duration::from_secs(10);
        let v = Validity::new(now, 1, Some(before), None).unwrap();
        assert_eq!(v.not_after, before + Duration::from_secs(86_400));
        let e = Validity::new(now, 1, None, Some(before)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "notAfter 2026-05-31T23:59:50Z is not after notBefore 2026-06-01T00:00:00Z"
        );
        assert!(Validity::new(now, u32::MAX, None, None).is_err());
    }
}
