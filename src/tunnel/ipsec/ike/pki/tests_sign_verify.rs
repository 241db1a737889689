//! Sign → verify round trips over rcgen-made chains (root → intermediate → end entity), and
//! every refusal of [`verify_peer`].

use ring::signature::{self as ring_sig, Ed25519KeyPair, RsaKeyPair};
use rustls_pki_types::alg_id;

use super::testutil::*;
use super::*;
use crate::crypto::PrfAlg;
use crate::tunnel::ipsec::ike::message::{
    algorithm_identifier as alg, Auth, AuthMethod, DigitalSignature, HashAlgorithm, Id, IdType,
};

/// 2028-01-01 00:00:00 UTC, the notAfter of the certificates of [`testutil`].
const NOT_AFTER: u64 = 1_830_297_600;

fn octets(id: &Id<'_>) -> Vec<u8> {
    signed_octets(b"IKE_SA_INIT", &[7; 32], PrfAlg::HmacSha256, &[9; 32], id)
}

fn credential(chain: &Chain) -> LocalCredential {
    let sent = vec![chain.ee.clone(), chain.intermediate.clone()];
    LocalCredential::from_der(sent, &chain.ee_key, KeyFormat::Pkcs8).unwrap()
}

fn trust(chain: &Chain) -> TrustStore {
    TrustStore::from_der(std::slice::from_ref(&chain.root)).unwrap()
}

fn fqdn() -> Id<'static> {
    Id::new(IdType::FQDN, DNS.as_bytes())
}

/// Signs as the holder of `chain` would for `id`, and verifies as its peer.
fn round_trip(
    chain: &Chain,
    id: &Id<'_>,
    hashes: Option<&[HashAlgorithm]>,
) -> Result<VerifiedPeer, AuthError> {
    let o = octets(id);
    let auth = credential(chain).sign(&o, hashes).unwrap();
    verify_peer(&trust(chain), &chain.sent(), NOW, id, &auth.payload(), &o)
}

/// Verifies `auth` as from the end entity of `chain`, identified by its FQDN.
fn check(chain: &Chain, auth: &Auth<'_>) -> Result<VerifiedPeer, AuthError> {
    verify_peer(
        &trust(chain),
        &chain.sent(),
        NOW,
        &fqdn(),
        auth,
        &octets(&fqdn()),
    )
}

fn digital_signature(algorithm: &[u8], signature: &[u8]) -> Vec<u8> {
    DigitalSignature {
        algorithm,
        signature,
    }
    .to_auth_data()
    .unwrap()
}

fn method14(data: &[u8]) -> Auth<'_> {
    Auth {
        method: AuthMethod::DIGITAL_SIGNATURE,
        data,
    }
}

#[test]
fn sign_then_verify_for_every_key_type_and_mixed_chains() {
    use SignatureScheme as S;
    let cases = [
        (Alg::P256, Alg::P256, Alg::P256, S::EcdsaP256Sha256),
        (Alg::Rsa2048, Alg::P256, Alg::P384, S::EcdsaP384Sha384),
        (Alg::Rsa3072, Alg::P384, Alg::Rsa2048, S::RsaPkcs1Sha256),
        (Alg::P256, Alg::Rsa2048, Alg::Rsa3072, S::RsaPkcs1Sha256),
    ];
    for (root, mid, ee, scheme) in cases {
        let chain = Chain::build(root, mid, ee, ee_params("gw"));
        let peer = round_trip(&chain, &fqdn(), Some(&VERIFY_HASHES)).unwrap();
        assert_eq!(
            (peer.method, peer.scheme),
            (AuthMethod::DIGITAL_SIGNATURE, scheme)
        );
        assert_eq!(peer.subject, subject_of(&chain.ee));
        assert_eq!((peer.not_after, peer.anchor), (NOT_AFTER, 0));

        // Without the peer's SIGNATURE_HASH_ALGORITHMS: ECDSA falls back to methods 9 and
        // 10 [RFC 4754], RSA refuses method 1's SHA-1.
        let o = octets(&fqdn());
        match credential(&chain).sign(&o, None) {
            Ok(auth) => {
                let (method, len) = match ee {
                    Alg::P256 => (AuthMethod::ECDSA_SHA256_P256, 64),
                    _ => (AuthMethod::ECDSA_SHA384_P384, 96),
                };
                assert_eq!((auth.method, auth.data.len()), (method, len));
                let peer = check(&chain, &auth.payload()).unwrap();
                assert_eq!(peer.method, method);
            }
            Err(e) => assert_eq!((ee, e), (ee, SignError::LegacyRsa)),
        }
    }
}

#[test]
fn rfc7427_4_the_hash_comes_from_the_peers_list() {
    use HashAlgorithm as H;
    use SignatureScheme as S;
    let rsa = Chain::for_alg(Alg::Rsa2048);
    let scheme = |hashes: &[H]| round_trip(&rsa, &fqdn(), Some(hashes)).map(|p| p.scheme);
    assert_eq!(scheme(&[H::SHA2_512]), Ok(S::RsaPkcs1Sha512));
    assert_eq!(scheme(&[H::SHA2_512, H::SHA2_384]), Ok(S::RsaPkcs1Sha384));
    assert_eq!(scheme(&[H::IDENTITY, H::SHA2_256]), Ok(S::RsaPkcs1Sha256));
    let o = octets(&fqdn());
    let cred = credential(&rsa);
    assert_eq!(
        cred.sign(&o, Some(&[H::SHA1, H::IDENTITY])),
        Err(SignError::NoCommonHash)
    );
    assert_eq!(cred.sign(&o, Some(&[])), Err(SignError::NoCommonHash));

    let p256 = credential(&Chain::for_alg(Alg::P256));
    assert_eq!(
        p256.sign(&o, Some(&[H::SHA2_384])),
        Err(SignError::NoCommonHash)
    );
    let p384 = credential(&Chain::for_alg(Alg::P384));
    assert_eq!(
        p384.sign(&o, Some(&[H::SHA2_256])),
        Err(SignError::NoCommonHash)
    );
    assert!(p384.sign(&o, Some(&[H::SHA2_384])).is_ok());
}

/// Identities as strongSwan matches them with a certificate (`identity` module).
#[test]
fn identities_match_the_subject_and_alternative_names() {
    let chain = Chain::for_alg(Alg::P256);
    let subject = subject_of(&chain.ee);
    let other_subject =
        subject_of(&Chain::build(Alg::P256, Alg::P256, Alg::P256, ee_params("gx")).ee);
    let accepted: [(IdType, &[u8]); 7] = [
        (IdType::FQDN, DNS.as_bytes()),
        (IdType::FQDN, b"GW.Example"),
        (IdType::RFC822_ADDR, EMAIL.as_bytes()),
        (IdType::RFC822_ADDR, b"OPS@gw.example"),
        (IdType::IPV4_ADDR, &IPV4),
        (IdType::IPV6_ADDR, &IPV6),
        (IdType::DER_ASN1_DN, &subject),
    ];
    for (ty, data) in accepted {
        let id = Id::new(ty, data);
        let r = round_trip(&chain, &id, Some(&VERIFY_HASHES)).map(|_| ());
        assert_eq!(r, Ok(()), "{ty:?} {data:?}");
    }
    let refused: [(IdType, &[u8]); 13] = [
        (IdType::FQDN, b"other.example"),
        (IdType::FQDN, b"gw"), // the commonName is not looked at
        (IdType::FQDN, b"*.example"),
        (IdType::FQDN, b"gw.example\0"),
        (IdType::FQDN, b""),
        (IdType::RFC822_ADDR, b"ops@other.example"),
        (IdType::RFC822_ADDR, DNS.as_bytes()),
        (IdType::IPV4_ADDR, &[192, 0, 2, 2]),
        (IdType::IPV6_ADDR, &[0; 16]),
        (IdType::IPV6_ADDR, &IPV4),
        (IdType::DER_ASN1_DN, &other_subject),
        (IdType::KEY_ID, b"gw"),
        (IdType::DER_ASN1_GN, &subject),
    ];
    for (ty, data) in refused {
        let id = Id::new(ty, data);
        let r = round_trip(&chain, &id, Some(&VERIFY_HASHES));
        assert_eq!(r.map(|_| ()), Err(AuthError::IdMismatch), "{ty:?} {data:?}");
    }
}

/// strongSwan matches an ID_DER_ASN1_DN with a directoryName subjectAltName as well.
#[test]
fn a_distinguished_name_matches_a_directory_name() {
    let mut params = ee_params("gw");
    params.subject_alt_names.clear();
    params.custom_extensions = vec![directory_name_san("gw-dir")];
    let chain = Chain::build(Alg::P256, Alg::P256, Alg::P256, params);
    let cn = b"gw-dir";
    let name = [
        &[
            0x30, 17, 0x31, 15, 0x30, 13, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 6,
        ][..],
        cn,
    ]
    .concat();
    let id = Id::new(IdType::DER_ASN1_DN, &name);
    assert!(round_trip(&chain, &id, Some(&VERIFY_HASHES)).is_ok());
    let subject = subject_of(&chain.ee);
    let id = Id::new(IdType::DER_ASN1_DN, &subject);
    assert!(round_trip(&chain, &id, Some(&VERIFY_HASHES)).is_ok());
    let r = round_trip(&chain, &fqdn(), Some(&VERIFY_HASHES));
    assert_eq!(r.map(|_| ()), Err(AuthError::IdMismatch));
}

#[test]
fn paths_are_refused_for_the_wrong_ca_and_missing_or_stale_certificates() {
    let chain = Chain::for_alg(Alg::P256);
    let id = fqdn();
    let o = octets(&id);
    let auth = credential(&chain).sign(&o, Some(&VERIFY_HASHES)).unwrap();
    let verify = |trust: &TrustStore, sent: &[&[u8]], now| {
        verify_peer(trust, sent, now, &id, &auth.payload(), &o).map(|_| ())
    };
    let ours = trust(&chain);
    assert_eq!(verify(&ours, &chain.sent(), NOW), Ok(()));

    let other = Chain::for_alg(Alg::P256);
    assert_eq!(
        verify(&trust(&other), &chain.sent(), NOW),
        Err(AuthError::Untrusted)
    );
    assert_eq!(
        verify(&ours, &[&chain.ee], NOW),
        Err(AuthError::Untrusted),
        "no intermediate"
    );
    let wrong_mid = [&chain.ee[..], &other.intermediate];
    assert_eq!(verify(&ours, &wrong_mid, NOW), Err(AuthError::Untrusted));
    let extra = [&chain.ee[..], &other.intermediate, &chain.intermediate];
    assert_eq!(
        verify(&ours, &extra, NOW),
        Ok(()),
        "unrelated intermediates are ignored"
    );

    // Both CAs trusted: the path ends at the second.
    let both = TrustStore::from_der(&[other.root.clone(), chain.root.clone()]).unwrap();
    let peer = verify_peer(&both, &chain.sent(), NOW, &id, &auth.payload(), &o).unwrap();
    assert_eq!(peer.anchor, 1);

    // Validity: 2026-01-01 to 2028-01-01, checked for the end entity and the intermediate.
    assert_eq!(
        verify(&ours, &chain.sent(), 1_767_225_599),
        Err(AuthError::NotYetValid)
    );
    assert_eq!(
        verify(&ours, &chain.sent(), NOT_AFTER + 1),
        Err(AuthError::Expired)
    );
    let mut mid = ca_params("Test Intermediate");
    mid.not_after = rcgen::date_time_ymd(2026, 3, 1);
    let stale = Chain::build_with(Alg::P256, Alg::P256, Ok(Alg::P256), mid, ee_params("gw"));
    assert_eq!(
        round_trip(&stale, &id, Some(&VERIFY_HASHES)).map(|_| ()),
        Err(AuthError::Expired)
    );
    let mut ee = ee_params("gw");
    ee.not_before = rcgen::date_time_ymd(2026, 7, 1);
    let early = Chain::build(Alg::P256, Alg::P256, Alg::P256, ee);
    let r = round_trip(&early, &id, Some(&VERIFY_HASHES)).map(|_| ());
    assert_eq!(r, Err(AuthError::NotYetValid));
    let another = Chain::for_alg(Alg::P256);
    let r = verify(&trust(&another), &another.sent(), NOW);
    assert_eq!(
        r,
        Err(AuthError::BadSignature),
        "a valid chain, signed by another key"
    );

    // A CA certificate is no end entity.
    let mut ca_ee = ca_params("gw");
    ca_ee.subject_alt_names = ee_params("gw").subject_alt_names;
    let ca_as_ee = Chain::build(Alg::P256, Alg::P256, Alg::P256, ca_ee);
    let r = round_trip(&ca_as_ee, &id, Some(&VERIFY_HASHES)).map(|_| ());
    assert_eq!(r, Err(AuthError::Untrusted));
}

/// The CA certificate's own validity counts (webpki ignores it, strongSwan does not); a CA
/// re-issued with the same name and key takes over from the expired one.
#[test]
fn an_expired_or_future_ca_is_refused_and_its_successor_accepted() {
    let (root_key, _) = key(Alg::P256);
    let root_cert = |not_before, not_after| {
        let mut p = ca_params("Test Root");
        (p.not_before, p.not_after) = (not_before, not_after);
        p.self_signed(&root_key).unwrap().der().to_vec()
    };
    let ymd = rcgen::date_time_ymd;
    let expired = root_cert(ymd(2025, 1, 1), ymd(2026, 3, 1));
    let future = root_cert(ymd(2026, 9, 1), ymd(2030, 1, 1));
    let current = root_cert(ymd(2026, 1, 1), ymd(2027, 6, 1));
    let root_params = ca_params("Test Root");
    let root = rcgen::Issuer::from_params(&root_params, &root_key);
    let mid_params = ca_params("Test Intermediate");
    let (mid_key, _) = key(Alg::P256);
    let mid = mid_params.signed_by(&mid_key, &root).unwrap();
    let (ee_key, ee_der) = key(Alg::P256);
    let mid_issuer = rcgen::Issuer::from_params(&mid_params, &mid_key);
    let ee = ee_params("gw").signed_by(&ee_key, &mid_issuer).unwrap();
    let chain = Chain {
        root: current.clone(),
        intermediate: mid.der().to_vec(),
        ee: ee.der().to_vec(),
        ee_key: ee_der,
    };
    let o = octets(&fqdn());
    let auth = credential(&chain).sign(&o, Some(&VERIFY_HASHES)).unwrap();
    let verify = |cas: &[Vec<u8>]| {
        let trust = TrustStore::from_der(cas).unwrap();
        verify_peer(&trust, &chain.sent(), NOW, &fqdn(), &auth.payload(), &o)
    };
    assert_eq!(
        verify(std::slice::from_ref(&expired)).map(|_| ()),
        Err(AuthError::Expired)
    );
    assert_eq!(
        verify(std::slice::from_ref(&future)).map(|_| ()),
        Err(AuthError::NotYetValid)
    );
    let peer = verify(&[expired, future, current]).unwrap();
    assert_eq!(peer.anchor, 2);
    assert_eq!(
        peer.not_after, 1_811_808_000,
        "2027-06-01, the CA's notAfter"
    );
}

/// Extended key usage: none, serverAuth, clientAuth, ipsecIKE or any are accepted, in the
/// end entity and in the intermediate; a list of other purposes is refused.
#[test]
fn extended_key_usage_must_allow_ike_if_present() {
    use rcgen::ExtendedKeyUsagePurpose as E;
    let ipsec_ike = E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 17]);
    let cases = [
        (vec![], Ok(())),
        (vec![E::ServerAuth], Ok(())),
        (vec![E::ClientAuth], Ok(())),
        (vec![E::EmailProtection, ipsec_ike.clone()], Ok(())),
        (vec![E::Any], Ok(())),
        (vec![E::EmailProtection], Err(AuthError::KeyUsage)),
        (
            vec![E::CodeSigning, E::TimeStamping],
            Err(AuthError::KeyUsage),
        ),
    ];
    for (ekus, want) in cases {
        let mut ee = ee_params("gw");
        ee.extended_key_usages = ekus.clone();
        let chain = Chain::build(Alg::P256, Alg::P256, Alg::P256, ee);
        let r = round_trip(&chain, &fqdn(), Some(&VERIFY_HASHES)).map(|_| ());
        assert_eq!(r, want, "end entity {ekus:?}");

        let mut mid = ca_params("Test Intermediate");
        mid.extended_key_usages = ekus.clone();
        let chain = Chain::build_with(Alg::P256, Alg::P256, Ok(Alg::P256), mid, ee_params("gw"));
        let r = round_trip(&chain, &fqdn(), Some(&VERIFY_HASHES)).map(|_| ());
        assert_eq!(r, want, "intermediate {ekus:?}");
    }
}

#[test]
fn damaged_signatures_and_octets_are_refused() {
    for alg in [Alg::P256, Alg::Rsa2048] {
        let chain = Chain::for_alg(alg);
        let o = octets(&fqdn());
        let cred = credential(&chain);
        for hashes in [Some(&VERIFY_HASHES[..]), None] {
            let Ok(auth) = cred.sign(&o, hashes) else {
                continue;
            };
            for at in [auth.data.len() - 1, auth.data.len() / 2] {
                let mut data = auth.data.clone();
                data[at] ^= 0x10;
                let damaged = Auth {
                    method: auth.method,
                    data: &data,
                };
                let r = check(&chain, &damaged).map(|_| ());
                assert!(
                    matches!(r, Err(AuthError::BadSignature | AuthError::Malformed)),
                    "{alg:?} {hashes:?} {at}: {r:?}"
                );
            }
            let mut other = o.clone();
            other[0] ^= 1;
            let r = verify_peer(
                &trust(&chain),
                &chain.sent(),
                NOW,
                &fqdn(),
                &auth.payload(),
                &other,
            );
            assert_eq!(r.map(|_| ()), Err(AuthError::BadSignature));
        }
    }
}

#[test]
fn weak_unsupported_and_malformed_methods_are_refused() {
    let chain = Chain::for_alg(Alg::P256);
    let sig = [0x5a; 64];
    let refused =
        |method: AuthMethod, data: &[u8]| check(&chain, &Auth { method, data }).map(|_| ());
    let sha1_rsa = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
    ];
    let ecdsa_sha1 = [
        0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01,
    ];
    let unknown = [0x30, 0x04, 0x06, 0x02, 0x2a, 0x03];
    let ds = digital_signature;
    let cases: [(AuthMethod, Vec<u8>, AuthError); 11] = [
        (
            AuthMethod::RSA_SIGNATURE,
            sig.to_vec(),
            AuthError::WeakAlgorithm,
        ),
        (
            AuthMethod::DSS_SIGNATURE,
            sig.to_vec(),
            AuthError::WeakAlgorithm,
        ),
        (
            AuthMethod::DIGITAL_SIGNATURE,
            ds(&sha1_rsa, &sig),
            AuthError::WeakAlgorithm,
        ),
        (
            AuthMethod::DIGITAL_SIGNATURE,
            ds(&ecdsa_sha1, &sig),
            AuthError::WeakAlgorithm,
        ),
        (
            AuthMethod::DIGITAL_SIGNATURE,
            ds(alg::ECDSA_WITH_SHA512, &sig),
            AuthError::UnsupportedAlgorithm,
        ),
        (
            AuthMethod::DIGITAL_SIGNATURE,
            ds(&unknown, &sig),
            AuthError::UnsupportedAlgorithm,
        ),
        (
            AuthMethod::ECDSA_SHA512_P521,
            [0; 132].to_vec(),
            AuthError::UnsupportedAlgorithm,
        ),
        (
            AuthMethod::SHARED_KEY_MIC,
            sig.to_vec(),
            AuthError::UnsupportedAlgorithm,
        ),
        (
            AuthMethod::DIGITAL_SIGNATURE,
            vec![40, 1, 2],
            AuthError::Malformed,
        ),
        (
            AuthMethod::ECDSA_SHA256_P256,
            sig[..63].to_vec(),
            AuthError::Malformed,
        ),
        // An RSA algorithm for an ECDSA key.
        (
            AuthMethod::DIGITAL_SIGNATURE,
            ds(alg::SHA256_WITH_RSA, &sig),
            AuthError::BadSignature,
        ),
    ];
    for (method, data, want) in cases {
        assert_eq!(refused(method, &data), Err(want), "{method:?} {data:02x?}");
    }
    // Method 9 is P-256: a P-384 key's raw signature of the right length does not fit.
    let p384 = Chain::for_alg(Alg::P384);
    let auth = Auth {
        method: AuthMethod::ECDSA_SHA256_P256,
        data: &[1; 64],
    };
    assert_eq!(
        check(&p384, &auth).map(|_| ()),
        Err(AuthError::BadSignature)
    );
}

/// RSASSA-PSS (strongSwan with `rsa_pss = yes`), PKCS#1 v1.5 identifiers without their NULL
/// parameters, and Ed25519 [RFC 8420] verify; we sign with ring directly here.
#[test]
fn rsa_pss_absent_parameters_and_ed25519_verify() {
    let chain = Chain::for_alg(Alg::Rsa2048);
    let key = RsaKeyPair::from_pkcs8(&chain.ee_key).unwrap();
    let o = octets(&fqdn());
    let rng = ring::rand::SystemRandom::new();
    let pss = [
        (
            &ring_sig::RSA_PSS_SHA256,
            alg_id::RSA_PSS_SHA256,
            SignatureScheme::RsaPssSha256,
        ),
        (
            &ring_sig::RSA_PSS_SHA384,
            alg_id::RSA_PSS_SHA384,
            SignatureScheme::RsaPssSha384,
        ),
        (
            &ring_sig::RSA_PSS_SHA512,
            alg_id::RSA_PSS_SHA512,
            SignatureScheme::RsaPssSha512,
        ),
    ];
    for (padding, id, scheme) in pss {
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(padding, &rng, &o, &mut sig).unwrap();
        let algorithm = [&[0x30, id.as_ref().len() as u8][..], id.as_ref()].concat();
        let data = digital_signature(&algorithm, &sig);
        assert_eq!(check(&chain, &method14(&data)).unwrap().scheme, scheme);
    }

    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(&ring_sig::RSA_PKCS1_SHA384, &rng, &o, &mut sig)
        .unwrap();
    let absent = [&[0x30, 0x0b][..], &alg::SHA384_WITH_RSA[2..13]].concat();
    let data = digital_signature(&absent, &sig);
    assert_eq!(
        check(&chain, &method14(&data)).unwrap().scheme,
        SignatureScheme::RsaPkcs1Sha384
    );

    let ed = Chain::for_alg(Alg::Ed25519);
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed.ee_key).unwrap();
    let data = digital_signature(alg::ED25519, key.sign(&o).as_ref());
    assert_eq!(
        check(&ed, &method14(&data)).unwrap().scheme,
        SignatureScheme::Ed25519
    );
}

#[test]
fn malformed_chains_are_refused() {
    let chain = Chain::for_alg(Alg::P256);
    let o = octets(&fqdn());
    let auth = credential(&chain).sign(&o, Some(&VERIFY_HASHES)).unwrap();
    let verify = |sent: &[&[u8]]| {
        verify_peer(&trust(&chain), sent, NOW, &fqdn(), &auth.payload(), &o).map(|_| ())
    };
    assert_eq!(verify(&[]), Err(AuthError::Malformed));
    assert_eq!(
        verify(&[b"\x30\x03\x02\x01\x00"]),
        Err(AuthError::Malformed)
    );
    assert_eq!(
        verify(&[&chain.ee[..chain.ee.len() - 1]]),
        Err(AuthError::Malformed)
    );
    let long: Vec<&[u8]> = std::iter::repeat_n(&chain.intermediate[..], 8)
        .chain([&chain.ee[..]])
        .rev()
        .collect();
    assert_eq!(
        verify(&long),
        Err(AuthError::Malformed),
        "more than MAX_CHAIN"
    );
    let garbage_mid = [&chain.ee[..], b"garbage", &chain.intermediate];
    assert_eq!(
        verify(&garbage_mid),
        Ok(()),
        "an unusable intermediate is skipped"
    );
}

/// Through the engine's seam ([`PkiAuth`]) a failure keeps its reason, so that the refusal
/// counter and the log say "expired" or "untrusted", not only "authentication failed".
#[test]
fn the_engine_seam_says_why_a_certificate_failed() {
    use crate::tunnel::ipsec::ike::sa::{CertAuthError, CertificateAuth, Identity};
    use std::sync::Arc;
    let chain = Chain::for_alg(Alg::P256);
    let o = octets(&fqdn());
    let auth = credential(&chain).sign(&o, Some(&VERIFY_HASHES)).unwrap();
    let id = Identity::fqdn(DNS);
    let at = |clock: fn() -> u64, trusted: &Chain| {
        let seam = super::PkiAuth::new(Arc::new(credential(&chain)), trust(trusted), clock);
        seam.verify(&id, &chain.sent(), auth.method, &auth.data, &o)
    };
    assert_eq!(at(|| NOW, &chain), Ok(()));
    assert_eq!(at(|| NOT_AFTER + 1, &chain), Err(CertAuthError::Expired));
    assert_eq!(
        at(|| 1_767_225_599, &chain),
        Err(CertAuthError::NotYetValid)
    );
    let stranger = Chain::for_alg(Alg::P256);
    assert_eq!(at(|| NOW, &stranger), Err(CertAuthError::Untrusted));
    let other = Identity::fqdn("other.example");
    let seam = super::PkiAuth::new(Arc::new(credential(&chain)), trust(&chain), || NOW);
    assert_eq!(
        seam.verify(&other, &chain.sent(), auth.method, &auth.data, &o),
        Err(CertAuthError::IdMismatch)
    );
    assert_eq!(
        CertAuthError::Expired.name(),
        "certificate_expired",
        "the reason label"
    );
}
