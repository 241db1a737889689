//! Throw-away CAs, intermediates and end entities for the tests, made with rcgen.
//!
//! ECDSA keys are generated per test; RSA keys come from `testdata/` (ring, rcgen's backend
//! here, does not generate RSA keys): `openssl genrsa -traditional` (PKCS#1, like
//! `pki --gen --type rsa`) and `openssl ecparam -genkey -noout` (SEC1 with the curve and the
//! public key, like `pki --gen --type ecdsa`).

use std::net::IpAddr;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256,
};
use rustls_pki_types::alg_id;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

pub(super) const RSA2048_PKCS1: &str = include_str!("testdata/rsa2048.pem");
pub(super) const RSA3072_PKCS1: &str = include_str!("testdata/rsa3072.pem");
pub(super) const P256_SEC1: &str = include_str!("testdata/p256.pem");
pub(super) const P384_SEC1: &str = include_str!("testdata/p384.pem");

/// 2026-06-01 00:00:00 UTC: inside the validity of every certificate made here (2026-01-01
/// to 2028-01-01) unless a test says otherwise.
pub(super) const NOW: u64 = 1_780_272_000;

/// The identities every end entity carries.
pub(super) const DNS: &str = "gw.example";
pub(super) const EMAIL: &str = "ops@gw.example";
pub(super) const IPV4: [u8; 4] = [192, 0, 2, 1];
pub(super) const IPV6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alg {
    P256,
    P384,
    Rsa2048,
    Rsa3072,
    Ed25519,
}

/// The DER of a private key file given as PEM.
pub(super) fn pem_der(pem: &str) -> Vec<u8> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .secret_der()
        .to_vec()
}

/// A PKCS#8 `PrivateKeyInfo` around a key of another format.
pub(super) fn wrap_pkcs8(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend_from_slice(&[0x81, n as u8]),
            n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }
    let body = [
        &[0x02, 0x01, 0x00][..],
        &tlv(0x30, algorithm),
        &tlv(0x04, key),
    ]
    .concat();
    tlv(0x30, &body)
}

/// A key pair from `testdata/` (for rcgen, which reads PKCS#8 only), and its PKCS#8.
pub(super) fn fixture_key(pem: &str) -> (KeyPair, Vec<u8>) {
    let der = pkcs8_of(pem);
    let alg: &'static SignatureAlgorithm = match pem {
        P256_SEC1 => &PKCS_ECDSA_P256_SHA256,
        P384_SEC1 => &PKCS_ECDSA_P384_SHA384,
        _ => &PKCS_RSA_SHA256,
    };
    let k = KeyPair::from_pkcs8_der_and_sign_algo(&der.as_slice().into(), alg).unwrap();
    (k, der)
}

/// PEM of a DER certificate.
pub(super) fn cert_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The PKCS#8 form of a key from `testdata/`.
pub(super) fn pkcs8_of(pem: &str) -> Vec<u8> {
    let der = pem_der(pem);
    let algorithm = match pem {
        P256_SEC1 => alg_id::ECDSA_P256,
        P384_SEC1 => alg_id::ECDSA_P384,
        _ => alg_id::RSA_ENCRYPTION,
    };
    wrap_pkcs8(algorithm.as_ref(), &der)
}

/// A key pair for `alg`, and its PKCS#8 DER.
pub(super) fn key(alg: Alg) -> (KeyPair, Vec<u8>) {
    let generated = |a: &'static SignatureAlgorithm| {
        let k = KeyPair::generate_for(a).unwrap();
        let der = k.serialize_der();
        (k, der)
    };
    match alg {
        Alg::P256 => generated(&PKCS_ECDSA_P256_SHA256),
        Alg::P384 => generated(&PKCS_ECDSA_P384_SHA384),
        Alg::Ed25519 => generated(&PKCS_ED25519),
        Alg::Rsa2048 => fixture_key(RSA2048_PKCS1),
        Alg::Rsa3072 => fixture_key(RSA3072_PKCS1),
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CH");
    dn.push(DnType::OrganizationName, "Lab");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Parameters of a CA certificate named `cn`, valid 2026-01-01 to 2028-01-01.
pub(super) fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(2026, 1, 1);
    p.not_after = date_time_ymd(2028, 1, 1);
    p
}

/// Parameters of an end entity as strongSwan's `pki --issue --san ... --flag serverAuth
/// --flag clientAuth` makes them, with every identity type of [`DNS`] .. [`IPV6`].
pub(super) fn ee_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.subject_alt_names = vec![
        SanType::DnsName(DNS.try_into().unwrap()),
        SanType::Rfc822Name(EMAIL.try_into().unwrap()),
        SanType::IpAddress(IpAddr::from(IPV4)),
        SanType::IpAddress(IpAddr::from(IPV6)),
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = date_time_ymd(2026, 1, 1);
    p.not_after = date_time_ymd(2028, 1, 1);
    p
}

/// A subjectAltName extension holding one directoryName: `CN=cn` [RFC 5280 § 4.2.1.6]
/// (rcgen has no directoryName SANs).
pub(super) fn directory_name_san(cn: &str) -> CustomExtension {
    let cn = cn.as_bytes();
    let atv = [
        &[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, cn.len() as u8][..],
        cn,
    ]
    .concat();
    let rdn = [
        &[0x31, atv.len() as u8 + 2, 0x30, atv.len() as u8][..],
        &atv,
    ]
    .concat();
    let name = [&[0x30, rdn.len() as u8][..], &rdn].concat();
    let general = [&[0xa4, name.len() as u8][..], &name].concat();
    let names = [&[0x30, general.len() as u8][..], &general].concat();
    CustomExtension::from_oid_content(&[2, 5, 29, 17], names)
}

/// The subject of a certificate, a DER Name.
pub(super) fn subject_of(cert: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert).unwrap();
    parsed.subject().as_raw().to_vec()
}

/// A root, an intermediate under it, and an end entity under that.
pub(super) struct Chain {
    pub root: Vec<u8>,
    pub intermediate: Vec<u8>,
    pub ee: Vec<u8>,
    /// The end entity's private key, PKCS#8.
    pub ee_key: Vec<u8>,
}

impl Chain {
    /// root (`root_alg`) → intermediate (`mid_alg`) → end entity (`ee_alg`, from `ee`).
    pub(super) fn build(root_alg: Alg, mid_alg: Alg, ee_alg: Alg, ee: CertificateParams) -> Chain {
        Chain::build_with(
            root_alg,
            mid_alg,
            Ok(ee_alg),
            ca_params("Test Intermediate"),
            ee,
        )
    }

    /// The end entity's key is `ee_alg`'s, or the given key pair and its PKCS#8.
    pub(super) fn build_with(
        root_alg: Alg,
        mid_alg: Alg,
        ee_alg: Result<Alg, (KeyPair, Vec<u8>)>,
        mid: CertificateParams,
        ee: CertificateParams,
    ) -> Chain {
        let (root_key, _) = key(root_alg);
        let root_params = ca_params("Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::from_params(&root_params, &root_key);
        let (mid_key, _) = key(mid_alg);
        let intermediate = mid.signed_by(&mid_key, &root_issuer).unwrap();
        let mid_issuer = Issuer::from_params(&mid, &mid_key);
        let (ee_key, ee_der) = ee_alg.map_or_else(|k| k, key);
        let cert = ee.signed_by(&ee_key, &mid_issuer).unwrap();
        Chain {
            root: root.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            ee: cert.der().to_vec(),
            ee_key: ee_der,
        }
    }

    /// Ordinary: P-256 CAs above an end entity of `alg`.
    pub(super) fn for_alg(alg: Alg) -> Chain {
        Chain::build(Alg::P256, Alg::P256, alg, ee_params("gw"))
    }

    /// What the peer sends in its CERT payloads.
    pub(super) fn sent(&self) -> [&[u8]; 2] {
        [&self.ee, &self.intermediate]
    }
}
