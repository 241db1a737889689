//! The certificate matrix: each case with the state and the reason a helpdesk reads.

use rcgen::{CertificateParams, IsCa, KeyPair, SanType};

use super::testpki::*;
use super::*;
use crate::ids::FacilityCode;

/// 2026-11-24T00:00:00Z: "now" of every case.
const NOW: u64 = 1_795_478_400;
const CODE: &str = "4212345674";

/// A bundle of `ca`, with its CRL (revoking `serials`) loaded.
fn bundle(name: &str, ca: &TestCa, serials: &[u8], policy: CrlPolicy) -> Ca {
    let mut b = Ca::new(name, ca.pem.as_bytes(), policy, 1).unwrap();
    b.load_crl(0, &ca.fresh_crl(serials)).unwrap();
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
    let ix = root("ix-ca", NOW);
    let ca = bundle("ix", &ix, &[9], CrlPolicy::FailClosed);
    let cert = Leaf::facility(CODE, NOW).issue(&ix, &[]);
    let v = judge(&cert, &[&ca], &[]);
    assert_state(&v, FacilityState::Valid, &["valid until", "CA ix"]);
    assert_eq!(v.ca.as_deref(), Some("ix"));
    assert_eq!(cert.codes, [CODE]);
    assert_eq!(cert.wireguard_keys, [WG_KEY]);
    // The next change by time alone: the CRL's nextUpdate (the CA fails closed; webpki
    // holds a CRL expired from its nextUpdate on).
    assert_eq!(v.recheck_at, Some(NOW + 7 * DAY));
    let mut stale = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 1).unwrap();
    stale.load_crl(0, &ix.crl(&[9], NOW - DAY, NOW)).unwrap();
    assert_state(
        &judge(&cert, &[&stale], &[]),
        FacilityState::CrlExpired,
        &[],
    );
}

#[test]
fn expired_and_not_yet_valid() {
    let ix = root("ix-ca", NOW);
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.not_after = NOW - 1;
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(&v, FacilityState::Expired, &["the certificate expired at"]);
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.not_before = NOW + 60;
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(&v, FacilityState::NotYetValid, &["not valid before"]);
    assert_eq!(
        v.recheck_at,
        Some(NOW + 60),
        "judged again when it becomes valid"
    );
    // Valid now, and judged again the second after its notAfter.
    let mut leaf = Leaf::facility(CODE, NOW);
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
    let ix = root("ix-ca", NOW);
    let ca = bundle("ix", &ix, &[1], CrlPolicy::FailClosed);
    let v = judge(&Leaf::facility(CODE, NOW).issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::Revoked,
        &["serial 01 revoked at", "(key compromise)"],
    );
}

#[test]
fn unknown_ca_and_ca_of_another_tenant() {
    let ix = root("ix-ca", NOW);
    let claims = root("claims-ca", NOW);
    let stranger = root("stranger-ca", NOW);
    let ix_b = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let claims_b = bundle("claims", &claims, &[], CrlPolicy::FailClosed);
    let v = judge(
        &Leaf::facility(CODE, NOW).issue(&stranger, &[]),
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
        &Leaf::facility(CODE, NOW).issue(&claims, &[]),
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
        &Leaf::facility(CODE, NOW).issue(&claims, &[]),
        &[&ix_b, &claims_b],
        &[],
    );
    assert_state(&v, FacilityState::Valid, &["CA claims"]);
}

#[test]
fn intermediate_ca() {
    let ix = root("ix-ca", NOW);
    let sub = intermediate("ix-sub-ca", &ix);
    let mut ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 2).unwrap();
    ca.load_crl(0, &ix.fresh_crl(&[])).unwrap();
    // The intermediate comes with the leaf; its CRL is not loaded yet: revocation unknown.
    let cert = Leaf::facility(CODE, NOW).issue(&sub, &[&sub]);
    let v = judge(&cert, &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::RevocationUnknown,
        &["no CRL", "ix-sub-ca"],
    );
    // The CRL slot is a bundle's: an intermediate's CRL is refused unless the bundle holds
    // the intermediate.
    assert!(matches!(
        ca.load_crl(1, &sub.fresh_crl(&[])),
        Err(CrlError::Issuer(_))
    ));
    let both = format!("{}{}", ix.pem, sub.pem);
    let mut ca = Ca::new("ix", both.as_bytes(), CrlPolicy::FailClosed, 2).unwrap();
    ca.load_crl(0, &ix.fresh_crl(&[])).unwrap();
    ca.load_crl(1, &sub.fresh_crl(&[])).unwrap();
    let v = judge(&cert, &[&ca], &[]);
    assert_state(&v, FacilityState::Valid, &[]);
    // Without the intermediate in the file or the bundle: no path.
    let alone = Leaf::facility(CODE, NOW).issue(&sub, &[]);
    let only_root = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    assert_state(
        &judge(&alone, &[&only_root], &[]),
        FacilityState::UnknownCa,
        &[],
    );
    // The intermediate's CRL revokes the leaf.
    ca.load_crl(1, &sub.fresh_crl(&[1])).unwrap();
    assert_state(
        &judge(&cert, &[&ca], &[]),
        FacilityState::Revoked,
        &["ix-sub-ca"],
    );
}

#[test]
fn facility_code_mismatch_and_bad_check_digit() {
    let ix = root("ix-ca", NOW);
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let v = judge(
        &Leaf::facility("4240123457", NOW).issue(&ix, &[]),
        &[&ca],
        &[],
    );
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &["names facility 4240123457, not 4212345674"],
    );
    let v = judge(
        &Leaf::facility("4212345670", NOW).issue(&ix, &[]),
        &[&ca],
        &[],
    );
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &[
            "4212345670, which is not a facility code",
            "the code is 4212345674",
        ],
    );
    // serialNumber and the URI disagree.
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.uris.push("urn:ixgw:facility:4240123457".into());
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &["several facility codes"],
    );
    // No code at all.
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.serial_number_attr = None;
    leaf.uris.retain(|u| !u.contains("facility"));
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::BindingMismatch,
        &["names no facility code"],
    );
    // The URI alone is enough.
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.serial_number_attr = None;
    assert_state(
        &judge(&leaf.issue(&ix, &[]), &[&ca], &[]),
        FacilityState::Valid,
        &[],
    );
}

#[test]
fn wireguard_key_mismatch() {
    let ix = root("ix-ca", NOW);
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let cert = Leaf::facility(CODE, NOW).issue(&ix, &[]);
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
    let ix = root("ix-ca", NOW);
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let registered = Leaf::facility(CODE, NOW).issue(&ix, &[]);
    let presented = Leaf::facility(CODE, NOW).issue(&ix, &[]);
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
    let ix = root("ix-ca", NOW);
    let stale = ix.crl(&[], NOW - 10 * DAY, NOW - DAY);
    let cert = Leaf::facility(CODE, NOW).issue(&ix, &[]);
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
    open.load_crl(0, &ix.crl(&[1], NOW - 10 * DAY, NOW - DAY))
        .unwrap();
    assert_state(&judge(&cert, &[&open], &[]), FacilityState::Revoked, &[]);
}

#[test]
fn crl_loading() {
    let ix = root("ix-ca", NOW);
    let other = root("other-ca", NOW);
    let mut ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 1).unwrap();
    let cert = Leaf::facility(CODE, NOW).issue(&ix, &[]);
    // CRLs configured, none loaded: nothing passes.
    assert_state(
        &judge(&cert, &[&ca], &[]),
        FacilityState::RevocationUnknown,
        &[],
    );
    let info = ca.load_crl(0, &ix.fresh_crl(&[1, 2])).unwrap();
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
        ca.load_crl(0, &other.fresh_crl(&[])),
        Err(CrlError::Issuer(_))
    ));
    assert_state(&judge(&cert, &[&ca], &[]), FacilityState::Revoked, &[]);
    // No CRL configured: revocation is not checked.
    let unchecked = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 0).unwrap();
    assert_state(&judge(&cert, &[&unchecked], &[]), FacilityState::Valid, &[]);
}

/// An intermediate listed in the bundle is not a trust anchor: the root's CRL revokes it,
/// and with it every certificate it issued.
#[test]
fn a_bundle_intermediate_is_revoked_by_its_root() {
    let ix = root("ix-ca", NOW);
    let sub = intermediate("ix-sub-ca", &ix);
    let both = format!("{}{}", ix.pem, sub.pem);
    let mut ca = Ca::new("ix", both.as_bytes(), CrlPolicy::FailClosed, 2).unwrap();
    ca.load_crl(0, &ix.fresh_crl(&[])).unwrap();
    ca.load_crl(1, &sub.fresh_crl(&[])).unwrap();
    // The facility does not send the intermediate: the bundle provides it.
    let cert = Leaf::facility(CODE, NOW).issue(&sub, &[]);
    assert_state(&judge(&cert, &[&ca], &[]), FacilityState::Valid, &[]);
    // The root revokes the intermediate (by the serial rcgen gave it).
    let sub_serial = {
        use x509_parser::prelude::FromDer;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(sub.pem.as_bytes())
            .map(|d: rustls_pki_types::CertificateDer<'static>| d.to_vec())
            .unwrap();
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
        c.raw_serial().to_vec()
    };
    let revoke_sub = {
        use rcgen::{
            CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams,
            SerialNumber,
        };
        CertificateRevocationListParams {
            this_update: at(NOW - 60),
            next_update: at(NOW + DAY),
            crl_number: SerialNumber::from(2u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from_slice(&sub_serial),
                revocation_time: at(NOW - 60),
                reason_code: Some(RevocationReason::CaCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ix.issuer)
        .unwrap()
        .pem()
        .unwrap()
    };
    ca.load_crl(0, revoke_sub.as_bytes()).unwrap();
    assert_state(
        &judge(&cert, &[&ca], &[]),
        FacilityState::Revoked,
        &["a CA certificate of its chain is revoked"],
    );
}

/// A CA re-issued with the same name and key: a path through the new certificate is good
/// even while the old one has expired.
#[test]
fn a_rolled_over_ca_certificate_keeps_its_facilities() {
    let old = root_until("ix-ca", NOW, NOW - 1);
    let renewed = {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "ix-ca");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.not_before = at(NOW - DAY);
        p.not_after = at(NOW + 3650 * DAY);
        p.self_signed(old.issuer.key()).unwrap().pem()
    };
    let bundle = format!("{}{}", old.pem, renewed);
    let ca = Ca::new("ix", bundle.as_bytes(), CrlPolicy::FailClosed, 0).unwrap();
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.not_before = NOW - 2 * DAY;
    let v = judge(&leaf.issue(&old, &[]), &[&ca], &[]);
    assert_state(&v, FacilityState::Valid, &[]);
}

/// An older CRL (a restored backup, a replayed file) cannot un-revoke: it is refused and
/// the newer one stays.
#[test]
fn an_older_crl_is_refused() {
    let ix = root("ix-ca", NOW);
    let mut ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 1).unwrap();
    let cert = Leaf::facility(CODE, NOW).issue(&ix, &[]);
    ca.load_crl(0, &ix.crl_numbered(10, &[1], NOW - 60, NOW + DAY))
        .unwrap();
    let older = ca.load_crl(0, &ix.crl_numbered(9, &[], NOW - 30, NOW + DAY));
    assert_eq!(
        older,
        Err(CrlError::Older {
            offered: "9".into(),
            loaded: "10".into()
        })
    );
    assert_state(&judge(&cert, &[&ca], &[]), FacilityState::Revoked, &[]);
    // The same number again, and a newer one, are taken.
    ca.load_crl(0, &ix.crl_numbered(10, &[1], NOW - 60, NOW + DAY))
        .unwrap();
    ca.load_crl(0, &ix.crl_numbered(11, &[], NOW - 10, NOW + DAY))
        .unwrap();
    assert_state(&judge(&cert, &[&ca], &[]), FacilityState::Valid, &[]);
}

#[test]
fn expired_ca_certificate() {
    let ix = root_until("ix-ca", NOW, NOW - 1);
    let ca = Ca::new("ix", ix.pem.as_bytes(), CrlPolicy::FailClosed, 0).unwrap();
    let mut leaf = Leaf::facility(CODE, NOW);
    leaf.not_before = NOW - 2 * DAY;
    let v = judge(&leaf.issue(&ix, &[]), &[&ca], &[]);
    assert_state(
        &v,
        FacilityState::Expired,
        &["a CA certificate of its chain (CA ix) expired"],
    );
}

#[test]
fn bundles_must_hold_ca_certificates() {
    let ix = root("ix-ca", NOW);
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

mod authority {
    use super::*;
    use crate::facility::{Authority, CertSource, Change, FacilitySpec};
    use crate::ids::FacilityId;

    const OTHER: &str = "4240123457";
    const THIRD: &str = "1361234568";

    fn spec(code: &str, source: CertSource) -> FacilitySpec {
        FacilitySpec {
            code: FacilityCode::parse(code).unwrap(),
            name: format!("facility {code}"),
            tenant: "ajisai-net".into(),
            source,
            trust: vec![0],
            wireguard_keys: match code {
                CODE => vec![WG_KEY],
                _ => vec![],
            },
        }
    }

    /// Facility 0 with a certificate file (serial 1, valid for 30 s more), facility 1
    /// presenting its certificate over IPsec, facility 2 needing none.
    fn setup() -> (TestCa, Authority) {
        let ix = root("ix-ca", NOW);
        let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
        let mut leaf = Leaf::facility(CODE, NOW);
        leaf.not_after = NOW + 30;
        let file = leaf.issue(&ix, &[]);
        let a = Authority::new(
            vec![ca],
            vec![
                spec(CODE, CertSource::File(file)),
                spec(OTHER, CertSource::Presented),
                spec(THIRD, CertSource::NotRequired),
            ],
            NOW,
        );
        (ix, a)
    }

    fn der(cert: &FacilityCert) -> Vec<u8> {
        cert.leaf().to_vec()
    }

    #[test]
    fn states_from_file_presentation_and_none() {
        let (ix, mut a) = setup();
        assert_eq!(
            a.states(),
            [
                FacilityState::Valid,
                FacilityState::NotPresented,
                FacilityState::NotRequired
            ]
        );
        let mut leaf = Leaf::facility(OTHER, NOW);
        leaf.serial = 2;
        let presented = leaf.issue(&ix, &[]);
        let change = a
            .present(FacilityId(1), "peer", &[&der(&presented)], NOW)
            .unwrap();
        assert_eq!(
            change,
            Some(Change {
                facility: FacilityId(1),
                from: FacilityState::NotPresented,
                to: FacilityState::Valid
            })
        );
        assert_eq!(
            a.present(FacilityId(1), "peer", &[&der(&presented)], NOW),
            Ok(None),
            "no change"
        );
        // Another facility's certificate is refused and changes nothing.
        let wrong = Leaf::facility(THIRD, NOW).issue(&ix, &[]);
        let refused = a
            .present(FacilityId(1), "peer", &[&der(&wrong)], NOW)
            .unwrap_err();
        assert_eq!(refused.state, FacilityState::BindingMismatch);
        assert_eq!(a.states()[1], FacilityState::Valid);
        assert_eq!(
            a.find(FacilityCode::parse(OTHER).unwrap()),
            Some(FacilityId(1))
        );
    }

    #[test]
    fn a_crl_revokes_one_facility_only() {
        let (ix, mut a) = setup();
        let mut leaf = Leaf::facility(OTHER, NOW);
        leaf.serial = 2;
        a.present(FacilityId(1), "peer", &[&der(&leaf.issue(&ix, &[]))], NOW)
            .unwrap();
        a.load_crl(0, 0, &ix.fresh_crl(&[1])).unwrap();
        assert_eq!(
            a.evaluate(NOW).0,
            [Change {
                facility: FacilityId(0),
                from: FacilityState::Valid,
                to: FacilityState::Revoked
            }]
        );
        assert!(a.verdict(FacilityId(0)).unwrap().detail.contains("revoked"));
        a.load_crl(0, 0, &ix.fresh_crl(&[1, 2])).unwrap();
        let (changes, refused) = a.evaluate(NOW);
        assert_eq!(
            refused.len(),
            1,
            "the peer that presented it loses its tunnel"
        );
        assert_eq!(refused[0].peer, "peer");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].facility, FacilityId(1));
        assert_eq!(changes[0].to, FacilityState::Revoked);
        // The revoked certificate cannot be presented again.
        let again = a
            .present(FacilityId(1), "peer", &[&der(&leaf.issue(&ix, &[]))], NOW)
            .unwrap_err();
        assert_eq!(again.state, FacilityState::Revoked);
        assert_eq!(a.evaluate(NOW), (vec![], vec![]));
    }

    /// After a CRL change only the facilities it names are judged again: revoking one
    /// facility's serial changes that one; a fresh CRL restores a refused one.
    #[test]
    fn a_crl_change_judges_again_what_it_names() {
        let (ix, mut a) = setup();
        let mut leaf = Leaf::facility(OTHER, NOW);
        leaf.serial = 2;
        a.present(FacilityId(1), "peer", &[&der(&leaf.issue(&ix, &[]))], NOW)
            .unwrap();
        a.load_crl(0, 0, &ix.crl_numbered(2, &[2], NOW - 60, NOW + DAY))
            .unwrap();
        let (changes, refused) = a.evaluate_changed(NOW);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].facility, FacilityId(1));
        assert_eq!(refused.len(), 1);
        assert_eq!(a.states()[0], FacilityState::Valid, "serial 1 is not named");
        // Nothing pending: nothing to do.
        assert_eq!(a.evaluate_changed(NOW), (vec![], vec![]));
        // Un-revoked by a newer CRL: the refused facility is judged again and restored.
        a.load_crl(0, 0, &ix.crl_numbered(3, &[], NOW - 30, NOW + DAY))
            .unwrap();
        let (changes, _) = a.evaluate_changed(NOW);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to, FacilityState::Valid);
    }

    /// Serials are unique per issuer only: a root's CRL revoking its intermediate whose
    /// serial a facility's leaf also has judges again every facility under it.
    #[test]
    fn an_intermediate_sharing_a_leaf_serial_is_revoked_for_all() {
        let ix = root("ix-ca", NOW);
        let sub = crate::facility::testpki::intermediate_with("ix-sub", &ix, Some(5));
        let both = format!("{}{}", ix.pem, sub.pem);
        let specs = [(CODE, 5u8), (OTHER, 6u8)]
            .iter()
            .map(|&(code, serial)| {
                let mut leaf = Leaf::facility(code, NOW);
                leaf.serial = serial;
                let mut s = spec(code, CertSource::File(leaf.issue(&sub, &[])));
                s.wireguard_keys.clear();
                s
            })
            .collect();
        let ca = Ca::new("ix", both.as_bytes(), CrlPolicy::FailOpen, 2).unwrap();
        let mut a = Authority::new(vec![ca], specs, NOW);
        a.load_crl(0, 0, &ix.crl_numbered(1, &[], NOW - 60, NOW + DAY))
            .unwrap();
        a.load_crl(0, 1, &sub.crl_numbered(1, &[], NOW - 60, NOW + DAY))
            .unwrap();
        a.evaluate(NOW);
        assert_eq!(a.states(), [FacilityState::Valid, FacilityState::Valid]);
        a.load_crl(0, 0, &ix.crl_numbered(2, &[5], NOW - 30, NOW + DAY))
            .unwrap();
        let (changes, _) = a.evaluate_changed(NOW);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(a.states(), [FacilityState::Revoked, FacilityState::Revoked]);
    }

    /// A facility with two routers is judged again when either router's certificate can
    /// change: the one expiring first sets the recheck time.
    #[test]
    fn the_earliest_presented_certificate_sets_the_recheck_time() {
        let (ix, mut a) = setup();
        let mut long = Leaf::facility(OTHER, NOW);
        long.serial = 2;
        let mut short = Leaf::facility(OTHER, NOW);
        short.serial = 3;
        short.not_after = NOW + 100;
        a.present(FacilityId(1), "long", &[&der(&long.issue(&ix, &[]))], NOW)
            .unwrap();
        a.present(FacilityId(1), "short", &[&der(&short.issue(&ix, &[]))], NOW)
            .unwrap();
        assert_eq!(
            a.verdict(FacilityId(1)).unwrap().recheck_at,
            Some(NOW + 101)
        );
        let (_, refused) = a.evaluate_changed(NOW + 101);
        assert!(refused.iter().any(|r| r.peer == "short"), "{refused:?}");
        assert_eq!(
            a.states()[1],
            FacilityState::Valid,
            "the long one keeps it valid"
        );
    }

    #[test]
    fn not_after_passes_at_the_recheck_time() {
        let (_, mut a) = setup();
        assert_eq!(a.next_recheck(), Some(NOW + 31));
        assert_eq!(a.evaluate(NOW + 30), (vec![], vec![]));
        let changes = a.evaluate(NOW + 31).0;
        assert_eq!(changes[0].to, FacilityState::Expired);
        assert_eq!(changes[0].facility, FacilityId(0));
    }

    /// Two routers of one facility, each with its own certificate: revoking one cuts that
    /// router's tunnel; the facility stays valid through the other.
    #[test]
    fn each_peer_is_judged_by_its_own_certificate() {
        let (ix, mut a) = setup();
        let mut x = Leaf::facility(OTHER, NOW);
        x.serial = 2;
        let mut y = Leaf::facility(OTHER, NOW);
        y.serial = 3;
        a.present(FacilityId(1), "router-x", &[&der(&x.issue(&ix, &[]))], NOW)
            .unwrap();
        a.present(FacilityId(1), "router-y", &[&der(&y.issue(&ix, &[]))], NOW)
            .unwrap();
        a.load_crl(0, 0, &ix.fresh_crl(&[2])).unwrap();
        let (changes, refused) = a.evaluate(NOW);
        assert_eq!(changes, [], "router-y keeps the facility valid");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].peer, "router-x");
        assert_eq!(refused[0].verdict.state, FacilityState::Revoked);
        assert_eq!(a.states()[1], FacilityState::Valid);
        // Both revoked: the facility is.
        a.load_crl(0, 0, &ix.fresh_crl(&[2, 3])).unwrap();
        let (changes, refused) = a.evaluate(NOW);
        assert_eq!(changes[0].to, FacilityState::Revoked);
        assert_eq!(refused[0].peer, "router-y");
        assert!(!a.states()[1].allows_traffic());
    }

    #[test]
    fn a_presented_key_must_be_the_registered_one() {
        let (ix, mut a) = setup();
        // Facility 0's file pins its key: another certificate for it is refused.
        let other_key = Leaf::facility(CODE, NOW).issue(&ix, &[]);
        let refused = a
            .present(FacilityId(0), "peer", &[&der(&other_key)], NOW)
            .unwrap_err();
        assert_eq!(refused.state, FacilityState::BindingMismatch);
        assert!(
            refused.detail.contains("registry holds"),
            "{}",
            refused.detail
        );
    }

    #[test]
    fn a_reload_keeps_what_was_presented() {
        let (ix, mut a) = setup();
        let presented = Leaf::facility(OTHER, NOW).issue(&ix, &[]);
        a.present(FacilityId(1), "peer", &[&der(&presented)], NOW)
            .unwrap();
        // The new plan numbers the facilities the other way round.
        let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
        let mut b = Authority::new(
            vec![ca],
            vec![
                spec(OTHER, CertSource::Presented),
                spec(THIRD, CertSource::NotRequired),
            ],
            NOW,
        );
        assert_eq!(b.states()[0], FacilityState::NotPresented);
        b.carry_presented(&a, NOW);
        assert_eq!(b.states()[0], FacilityState::Valid);
        // Not when the facility moved to another tenant.
        let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
        let mut moved = spec(OTHER, CertSource::Presented);
        moved.tenant = "mame-net".into();
        let mut c = Authority::new(vec![ca], vec![moved], NOW);
        c.carry_presented(&a, NOW);
        assert_eq!(c.states()[0], FacilityState::NotPresented);
    }
}

/// How long judging many facilities takes (`cargo test --release -- --ignored
/// judging_cost --nocapture`): a CRL change re-judges every facility.
#[test]
#[ignore]
fn judging_cost() {
    use crate::facility::{Authority, CertSource, FacilitySpec};
    let ix = root("ix-ca", NOW);
    let n = 2000u32;
    let ca = bundle("ix", &ix, &[], CrlPolicy::FailClosed);
    let specs: Vec<FacilitySpec> = (0..n)
        .map(|i| {
            let nine = format!("421{:06}", i);
            let code = format!("{nine}{}", FacilityCode::check_digit(nine.as_bytes()));
            let mut leaf = Leaf::facility(&code, NOW);
            leaf.uris.truncate(1);
            leaf.serial = (i % 250) as u8 + 1;
            FacilitySpec {
                code: FacilityCode::parse(&code).unwrap(),
                name: code.clone(),
                tenant: "t".into(),
                source: CertSource::File(leaf.issue(&ix, &[])),
                trust: vec![0],
                wireguard_keys: vec![],
            }
        })
        .collect();
    let mut a = Authority::new(vec![ca], specs, NOW);
    a.load_crl(0, 0, &ix.crl_numbered(2, &[], NOW - 60, NOW + DAY))
        .unwrap();
    let t = std::time::Instant::now();
    let (changes, _) = a.evaluate(NOW);
    println!(
        "{n} facilities judged in {:?} ({} changed)",
        t.elapsed(),
        changes.len()
    );
    a.load_crl(0, 0, &ix.crl_numbered(3, &[7], NOW - 60, NOW + DAY))
        .unwrap();
    let t = std::time::Instant::now();
    let (changes, _) = a.evaluate_changed(NOW);
    println!(
        "a CRL naming their serial: judged again in {:?} ({} changed)",
        t.elapsed(),
        changes.len()
    );
}
