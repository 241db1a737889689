//! A small PKI made with rcgen for tests: CAs, facility certificates and CRLs, at a time
//! the test chooses.

use ::time::OffsetDateTime;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};

use super::FacilityCert;

pub(crate) const DAY: u64 = 86_400;
/// The WireGuard key `Leaf::facility` binds.
pub(crate) const WG_KEY: [u8; 32] = [7; 32];

pub(crate) fn at(secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}

/// The system clock, UNIX seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A CA: its certificate (PEM) and what signs with it.
pub(crate) struct TestCa {
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
    now: u64,
}

fn ca_params(name: &str, not_before: u64, not_after: u64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(not_before);
    p.not_after = at(not_after);
    p
}

/// A root CA valid from 400 days before `now` to ten years after.
pub(crate) fn root(name: &str, now: u64) -> TestCa {
    root_until(name, now, now + 3650 * DAY)
}

pub(crate) fn root_until(name: &str, now: u64, not_after: u64) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(name, now - 400 * DAY, not_after);
    let cert = params.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
        now,
    }
}

pub(crate) fn intermediate(name: &str, parent: &TestCa) -> TestCa {
    intermediate_with(name, parent, None)
}

/// An intermediate with serial `serial` (a random one when `None`).
pub(crate) fn intermediate_with(name: &str, parent: &TestCa, serial: Option<u8>) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut params = ca_params(name, parent.now - 400 * DAY, parent.now + 1000 * DAY);
    if let Some(s) = serial {
        params.serial_number = Some(SerialNumber::from_slice(&[s]));
    }
    let cert = params.signed_by(&key, &parent.issuer).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
        now: parent.now,
    }
}

impl TestCa {
    /// A CRL revoking `serials` (an hour ago, key compromise), valid from `this_update` to
    /// `next_update`.
    pub(crate) fn crl(&self, serials: &[u8], this_update: u64, next_update: u64) -> Vec<u8> {
        self.crl_numbered(1, serials, this_update, next_update)
    }

    /// The same, with CRL number `number`.
    pub(crate) fn crl_numbered(
        &self,
        number: u64,
        serials: &[u8],
        this_update: u64,
        next_update: u64,
    ) -> Vec<u8> {
        CertificateRevocationListParams {
            this_update: at(this_update),
            next_update: at(next_update),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[s]),
                    revocation_time: at(self.now - 3600),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .pem()
        .unwrap()
        .into_bytes()
    }

    /// A CRL made an hour ago, next update in seven days.
    pub(crate) fn fresh_crl(&self, serials: &[u8]) -> Vec<u8> {
        self.crl(serials, self.now - 3600, self.now + 7 * DAY)
    }
}

/// What a leaf names and when it is valid.
pub(crate) struct Leaf {
    pub serial: u8,
    pub serial_number_attr: Option<String>,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub not_before: u64,
    pub not_after: u64,
}

impl Leaf {
    /// Serial 1, naming `code` in serialNumber and a URI, binding [`WG_KEY`], valid from a
    /// day before `now` for a year.
    pub(crate) fn facility(code: &str, now: u64) -> Leaf {
        Leaf {
            serial: 1,
            serial_number_attr: Some(code.to_string()),
            uris: vec![
                format!("urn:ixgw:facility:{code}"),
                format!("urn:ixgw:wireguard-key:{}", b64(&WG_KEY)),
            ],
            dns: Vec::new(),
            not_before: now - DAY,
            not_after: now + 365 * DAY,
        }
    }

    /// The leaf (PEM), followed by `chain`, and its key (PKCS#8 PEM).
    pub(crate) fn issue_pem(&self, ca: &TestCa, chain: &[&TestCa]) -> (String, String) {
        let mut p = CertificateParams::new(self.dns.clone()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "omura clinic");
        if let Some(code) = &self.serial_number_attr {
            p.distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 5]), code.as_str());
        }
        p.subject_alt_names.extend(
            self.uris
                .iter()
                .map(|u| SanType::URI(u.clone().try_into().unwrap())),
        );
        p.serial_number = Some(SerialNumber::from_slice(&[self.serial]));
        p.not_before = at(self.not_before);
        p.not_after = at(self.not_after);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let mut pem = p.signed_by(&key, &ca.issuer).unwrap().pem();
        for c in chain {
            pem.push_str(&c.pem);
        }
        (pem, key.serialize_pem())
    }

    pub(crate) fn issue(&self, ca: &TestCa, chain: &[&TestCa]) -> FacilityCert {
        FacilityCert::from_file_bytes(self.issue_pem(ca, chain).0.as_bytes()).unwrap()
    }
}

pub(crate) fn b64(k: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(k)
}
