//! The certificate matrix: each case with the state and the reason a helpdesk reads.

use ::time::OffsetDateTime;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};

use super::*;
use crate::ids::FacilityCode;

/// 2026-11-24T00:00:00Z: "now" of every case.
const NOW: u64 = 1_795_478_400;
const DAY: u64 = 86_400;
const CODE: &str = "4212345674";
const WG_KEY: [u8; 32] = [7; 32];

fn at(secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}

/// A CA: its certificate (PEM) and what signs with it.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str, not_after: u64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(NOW - 400 * DAY);
    p.not_after = at(not_after);
    p
}

fn root(name: &str) -> TestCa {
    root_until(name, NOW + 3650 * DAY)
}

fn root_until(name: &str, not_after: u64) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(name, not_after);
    let cert = params.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

fn intermediate(name: &str, parent: &TestCa) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(name, NOW + 1000 * DAY);
    let cert = params.signed_by(&key, &parent.issuer).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// What a leaf names and when it is valid.
struct Leaf {
    serial: u8,
    serial_number_attr: Option<&'static str>,
    uris: Vec<String>,
    not_before: u64,
    not_after: u64,
}

impl Leaf {
    fn facility(code: &'static str) -> Leaf {
        Leaf {
            serial: 1,
            serial_number_attr: Some(code),
            uris: vec![
                format!("urn:ixgw:facility:{code}"),
                format!("urn:ixgw:wireguard-key:{}", b64(&WG_KEY)),
            ],
            not_before: NOW - DAY,
            not_after: NOW + 365 * DAY,
        }
    }

    /// The leaf, followed by `chain` (PEM).
    fn issue(&self, ca: &TestCa, chain: &[&TestCa]) -> FacilityCert {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "omura clinic");
        if let Some(code) = self.serial_number_attr {
            p.distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 5]), code);
        }
        p.subject_alt_names = self
            .uris
            .iter()
            .map(|u| SanType::URI(u.clone().try_into().unwrap()))
            .collect();
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
        FacilityCert::from_file_bytes(pem.as_bytes()).unwrap()
    }
}

fn b64(k: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// A CRL of `ca` revoking `serials`, valid from `this_update` to `next_update`.
fn crl(ca: &TestCa, serials: &[u8], this_update: u64, next_update: u64) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: at(this_update),
        next_update: at(next_update),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|&s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&[s]),
                revocation_time: at(NOW - 3600),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
    .into_bytes()
}

fn fresh_crl(ca: &TestCa, serials: &[u8]) -> Vec<u8> {
    crl(ca, serials, NOW - 3600, NOW + 7 * DAY)
}

/// A bundle of `ca`, with its CRL (revoking `serials`) loaded.
fn bundle(name: &str, ca: &TestCa, serials: &[u8], policy: CrlPolicy) -> Ca {
    let mut b = Ca::new(name, ca.pem.as_bytes(), policy, 1).unwrap();
    b.load_crl(0, &fresh_crl(ca, serials)).unwrap();
    b
}

fn expect() -> Expect<'static> {
    Expect {
        code: FacilityCode::parse(CODE).unwrap(),
        wireguard_keys: &[WG_KEY],
        pinned_spki: None,
    }
}

fn judge(cert: &FacilityCert, trusted: &[&Ca], others: &[&Ca]) -> Verdict {
    verify(cert, &expect(), trusted, others, NOW)
}

#[track_caller]
fn assert_state(v: &Verdict, state: FacilityState, detail: &[&str]) {
    assert_eq!(v.state, state, "{v:?}");
    for d in detail {
        assert!(v.detail.contains(d), "`{d}` not in: {}", v.detail);
    }
}

#[test]
fn valid() {
    let ix = root("ix-ca");
    let ca = bundle("ix", &ix, &[9], CrlPolicy::FailClosed);
    let cert = Leaf::facility(CODE).issue(&ix, &[]);
    let v = judge(&cert, &[&ca], &[]);
    assert_state(&v, FacilityState::Valid, &["valid until", "CA ix"]);
    assert_eq!(v.ca.as_deref(), Some("ix"));
    assert_eq!(cert.codes, [CODE]);
    assert_eq!(cert.wireguard_keys, [WG_KEY]);
    // The next change by time alone: the CRL's nextUpdate (the CA fails closed).
    assert_eq!(v.recheck_at, Some(NOW + 7 * DAY + 1));
}

#[test]
fn expired_and_not_yet_valid() {
    let ix = root("ix-ca");
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let mut leaf = Leaf::facility(CODE);
    leaf.not_after = NOW - 1;
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(&v, FacilityState::Expired, &["the certificate expired at"]);
    let mut leaf = Leaf::facility(CODE);
    leaf.not_before = NOW + 60;
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(&v, FacilityState::NotYetValid, &["not valid before"]);
    assert_eq!(
        v.recheck_at,
        Some(NOW + 60),
        "judged again when it becomes valid"
    );
    // Valid now, and judged again the second after its notAfter.
    let mut leaf = Leaf::facility(CODE);
    leaf.not_after = NOW + 30;
    let cert = leaf.issue(&ix, &[]);
    let v = judge(&cert, &[&ca], &[]);
    assert_state(&v, FacilityState::Valid, &[]);
    assert_eq!(v.recheck_at, Some(NOW + 31));
    let later = verify(&cert, &expect(), &[&ca], &[], NOW + 31);
    assert_state(&later, FacilityState::Expired, &[]);
}

#[test]
fn revoked() {
    let ix = root("ix-ca");
    let ca = bundle("ix", &ix, &[1], CrlPolicy::FailClosed);
    let v = judge(&Leaf::facility(CODE).issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::Revoked,
        &["serial 01 revoked at", "(key compromise)"],
    );
}

#[test]
fn unknown_ca_and_ca_of_another_tenant() {
    let ix = root("ix-ca");
    let claims = root("claims-ca");
    let stranger = root("stranger-ca");
    let ix_b = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let claims_b = bundle("claims", &claims, &[], CrlPolicy::FailClosed);
    let v = judge(
        &Leaf::facility(CODE).issue(&stranger, &[]),
        &[&ix_b],
        &[&claims_b],
    );
    assert_state(
        &v,
        FacilityState::UnknownCa,
        &["stranger-ca", "not a CA this tenant trusts"],
    );
    // Issued by the claims network's CA, which the IX knows but this tenant does not trust.
    let v = judge(
        &Leaf::facility(CODE).issue(&claims, &[]),
        &[&ix_b],
        &[&claims_b],
    );
    assert_state(
        &v,
        FacilityState::UnknownCa,
        &["CA claims", "this tenant does not trust"],
    );
    // A tenant trusting both finds it.
    let v = judge(
        &Leaf::facility(CODE).issue(&claims, &[]),
        &[&ix_b, &claims_b],
        &[],
    );
    assert_state(&v, FacilityState::Valid, &["CA claims"]);
}

#[test]
fn intermediate_ca() {
    let ix = root("ix-ca");
    let sub = intermediate("ix-sub-ca", &ix);
    let mut ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 2).unwrap();
    ca.load_crl(0, &fresh_crl(&ix, &[])).unwrap();
    // The intermediate comes with the leaf; its CRL is not loaded yet: revocation unknown.
    let cert = Leaf::facility(CODE).issue(&sub, &[&sub]);
    let v = judge(&cert, &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::RevocationUnknown,
        &["no CRL", "ix-sub-ca"],
    );
    // The CRL slot is a bundle's: an intermediate's CRL is refused unless the bundle holds
    // the intermediate.
    assert!(matches!(
        ca.load_crl(1, &fresh_crl(&sub, &[])),
        Err(CrlError::Issuer(_))
    ));
    let both = format!("{}{}", ix.pem, sub.pem);
    let mut ca = Ca::new("ix", both.as_bytes(), CrlPolicy::FailClosed, 2).unwrap();
    ca.load_crl(0, &fresh_crl(&ix, &[])).unwrap();
    ca.load_crl(1, &fresh_crl(&sub, &[])).unwrap();
    let v = judge(&cert, &[&ca], &[]);
    assert_state(&v, FacilityState::Valid, &[]);
    // Without the intermediate in the file or the bundle: no path.
    let alone = Leaf::facility(CODE).issue(&sub, &[]);
    let only_root = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    assert_state(
        &judge(&alone, &[&only_root], &[]),
        FacilityState::UnknownCa,
        &[],
    );
    // The intermediate's CRL revokes the leaf.
    ca.load_crl(1, &fresh_crl(&sub, &[1])).unwrap();
    assert_state(
        &judge(&cert, &[&ca], &[]),
        FacilityState::Revoked,
        &["ix-sub-ca"],
    );
}

#[test]
fn facility_code_mismatch_and_bad_check_digit() {
    let ix = root("ix-ca");
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let v = judge(&Leaf::facility("4240123457").issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &["names facility 4240123457, not 4212345674"],
    );
    let v = judge(&Leaf::facility("4212345670").issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &[
            "4212345670, which is not a facility code",
            "the code is 4212345674",
        ],
    );
    // serialNumber and the URI disagree.
    let mut leaf = Leaf::facility(CODE);
    leaf.uris.push("urn:ixgw:facility:4240123457".into());
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &["several facility codes"],
    );
    // No code at all.
    let mut leaf = Leaf::facility(CODE);
    leaf.serial_number_attr = None;
    leaf.uris.retain(|u| !u.contains("facility"));
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &["names no facility code"],
    );
    // The URI alone is enough.
    let mut leaf = Leaf::facility(CODE);
    leaf.serial_number_attr = None;
    assert_state(
        &judge(&leaf.issue(&ix, &[]), &[&ca], &[]),
        FacilityState::Valid,
        &[],
    );
}

#[test]
fn wireguard_key_mismatch() {
    let ix = root("ix-ca");
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let cert = Leaf::facility(CODE).issue(&ix, &[]);
    let other = [8u8; 32];
    let e = Expect {
        wireguard_keys: &[WG_KEY, other],
        ..expect()
    };
    let v = verify(&cert, &e, &[&ca], &[], NOW);
    assert_state(&v, FacilityState::BindingMismatch, &[&b64(&other)]);
    // A key URI that is not a key is a certificate the operator must hear about.
    let pem = {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = vec![SanType::URI(
            "urn:ixgw:wireguard-key:c2hvcnQ=".try_into().unwrap(),
        )];
        p.signed_by(&KeyPair::generate().unwrap(), &ix.issuer)
            .unwrap()
            .pem()
    };
    let e = FacilityCert::from_file_bytes(pem.as_bytes()).unwrap_err();
    assert!(
        e.to_string().contains("not a 32-byte base64 WireGuard key"),
        "{e}"
    );
}

#[test]
fn pinned_public_key() {
    let ix = root("ix-ca");
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let registered = Leaf::facility(CODE).issue(&ix, &[]);
    let presented = Leaf::facility(CODE).issue(&ix, &[]);
    let e = Expect {
        pinned_spki: Some(&registered.spki),
        ..expect()
    };
    assert_state(
        &verify(&registered, &e, &[&ca], &[], NOW),
        FacilityState::Valid,
        &[],
    );
    assert_state(
        &verify(&presented, &e, &[&ca], &[], NOW),
        FacilityState::BindingMismatch,
        &["not the one of the certificate the registry holds"],
    );
}

#[test]
fn crl_expired_fails_closed_or_open() {
    let ix = root("ix-ca");
    let stale = crl(&ix, &[], NOW - 10 * DAY, NOW - DAY);
    let cert = Leaf::facility(CODE).issue(&ix, &[]);
    let mut closed = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 1).unwrap();
    closed.load_crl(0, &stale).unwrap();
    assert_state(
        &judge(&cert, &[&closed], &[]),
        FacilityState::CrlExpired,
        &["past its nextUpdate", "fails closed"],
    );
    let mut open = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailOpen, 1).unwrap();
    open.load_crl(0, &stale).unwrap();
    assert_state(&judge(&cert, &[&open], &[]), FacilityState::Valid, &[]);
    // Failing open still honours what the stale CRL revokes.
    open.load_crl(0, &crl(&ix, &[1], NOW - 10 * DAY, NOW - DAY))
        .unwrap();
    assert_state(&judge(&cert, &[&open], &[]), FacilityState::Revoked, &[]);
}

#[test]
fn crl_loading() {
    let ix = root("ix-ca");
    let other = root("other-ca");
    let mut ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 1).unwrap();
    let cert = Leaf::facility(CODE).issue(&ix, &[]);
    // CRLs configured, none loaded: nothing passes.
    assert_state(
        &judge(&cert, &[&ca], &[]),
        FacilityState::RevocationUnknown,
        &[],
    );
    let info = ca.load_crl(0, &fresh_crl(&ix, &[1, 2])).unwrap();
    assert_eq!(info.revoked, 2);
    assert_eq!(info.next_update, NOW + 7 * DAY);
    assert_eq!(info.number.as_deref(), Some("1"));
    // Broken bytes and another CA's CRL are refused, and the slot keeps what it had.
    assert!(matches!(
        ca.load_crl(0, b"-----BEGIN X509 CRL-----\nAAAA"),
        Err(CrlError::Pem(_))
    ));
    assert!(matches!(ca.load_crl(0, b"not a crl"), Err(CrlError::Empty)));
    assert!(matches!(
        ca.load_crl(0, &[0x30, 0x03, 0x02, 0x01, 0x00]),
        Err(CrlError::Parse(_))
    ));
    assert!(matches!(
        ca.load_crl(0, &fresh_crl(&other, &[])),
        Err(CrlError::Issuer(_))
    ));
    assert_state(&judge(&cert, &[&ca], &[]), FacilityState::Revoked, &[]);
    // No CRL configured: revocation is not checked.
    let unchecked = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 0).unwrap();
    assert_state(&judge(&cert, &[&unchecked], &[]), FacilityState::Valid, &[]);
}

#[test]
fn expired_ca_certificate() {
    let ix = root_until("ix-ca", NOW - 1);
    let ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 0).unwrap();
    let mut leaf = Leaf::facility(CODE);
    leaf.not_before = NOW - 2 * DAY;
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::Expired,
        &["the certificate of CA ix expired"],
    );
}

#[test]
fn bundles_must_hold_ca_certificates() {
    let ix = root("ix-ca");
    let leaf = {
        let mut p = CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        p.is_ca = IsCa::ExplicitNoCa;
        p.signed_by(&KeyPair::generate().unwrap(), &ix.issuer)
            .unwrap()
            .pem()
    };
    assert_eq!(
        Ca::new("x", leaf.as_bytes(), CrlPolicy::FailClosed, 0).unwrap_err(),
        CertError::NotACa { index: 0 }
    );
    assert_eq!(
        Ca::new("x", b"", CrlPolicy::FailClosed, 0).unwrap_err(),
        CertError::NoCertificate
    );
}
