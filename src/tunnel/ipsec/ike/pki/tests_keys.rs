//! Loading our credential (SEC1, PKCS#1 and PKCS#8 keys; a key that is not the
//! certificate's) and trust stores.

use super::testutil::*;
use super::*;
use crate::crypto::sha1;
use crate::tunnel::ipsec::ike::message::{CertEncoding, HashAlgorithm, IdType};

fn chain_for(key: (rcgen::KeyPair, Vec<u8>)) -> Chain {
    let mid = ca_params("Test Intermediate");
    Chain::build_with(Alg::P256, Alg::P256, Err(key), mid, ee_params("gw"))
}

/// Loads `key` in `format` for `chain`'s end entity, and checks that it signs for it.
fn load(chain: &Chain, key: &[u8], format: KeyFormat) -> Result<(), PkiError> {
    let cred = LocalCredential::from_der(vec![chain.ee.clone()], key, format)?;
    let octets = b"octets";
    let id = crate::tunnel::ipsec::ike::message::Id::new(IdType::FQDN, DNS.as_bytes());
    let trust = TrustStore::from_der(std::slice::from_ref(&chain.root)).unwrap();
    for hashes in [Some(&VERIFY_HASHES[..]), None] {
        if let Ok(auth) = cred.sign(octets, hashes) {
            let r = verify_peer(&trust, &chain.sent(), NOW, &id, &auth.payload(), octets);
            assert!(r.is_ok(), "{format:?}: {r:?}");
        }
    }
    Ok(())
}

/// The `ECPrivateKey` inside a PKCS#8 key (no curve parameters: ring leaves them out).
fn sec1_inside(pkcs8: &[u8]) -> Vec<u8> {
    crate::tunnel::ipsec::ike::der::pkcs8(pkcs8)
        .unwrap()
        .1
        .to_vec()
}

/// `ECPrivateKey` without the optional public key: version, private key, curve.
fn sec1_without_public(sec1: &[u8]) -> Vec<u8> {
    let ec = crate::tunnel::ipsec::ike::der::ec_private_key(sec1).unwrap();
    let curve = ec.curve.unwrap();
    let mut body = vec![0x02, 0x01, 0x01, 0x04, ec.d.len() as u8];
    body.extend_from_slice(ec.d);
    body.extend_from_slice(&[0xa0, curve.len() as u8 + 2, 0x06, curve.len() as u8]);
    body.extend_from_slice(curve);
    [&[0x30, body.len() as u8][..], &body].concat()
}

#[test]
fn ecdsa_keys_load_from_sec1_and_pkcs8() {
    for pem in [P256_SEC1, P384_SEC1] {
        let chain = chain_for(fixture_key(pem));
        let sec1 = pem_der(pem);
        assert_eq!(
            load(&chain, &sec1, KeyFormat::Sec1),
            Ok(()),
            "as pki --gen writes it"
        );
        assert_eq!(
            load(&chain, &sec1_without_public(&sec1), KeyFormat::Sec1),
            Ok(())
        );
        assert_eq!(load(&chain, &pkcs8_of(pem), KeyFormat::Pkcs8), Ok(()));
        let chain_pem = cert_pem(&chain.ee);
        let cred = LocalCredential::from_pem(chain_pem.as_bytes(), pem.as_bytes()).unwrap();
        assert_eq!(cred.subject_dn(), subject_of(&chain.ee));
    }
    for alg in [Alg::P256, Alg::P384] {
        let chain = Chain::for_alg(alg);
        assert_eq!(
            load(&chain, &chain.ee_key, KeyFormat::Pkcs8),
            Ok(()),
            "rcgen's PKCS#8"
        );
        assert_eq!(
            load(&chain, &sec1_inside(&chain.ee_key), KeyFormat::Sec1),
            Ok(())
        );
    }
}

#[test]
fn rsa_keys_load_from_pkcs1_and_pkcs8() {
    for pem in [RSA2048_PKCS1, RSA3072_PKCS1] {
        let chain = chain_for(fixture_key(pem));
        assert_eq!(
            load(&chain, &pem_der(pem), KeyFormat::Pkcs1),
            Ok(()),
            "as pki writes it"
        );
        assert_eq!(load(&chain, &pkcs8_of(pem), KeyFormat::Pkcs8), Ok(()));
        let chain_pem = cert_pem(&chain.ee);
        assert!(LocalCredential::from_pem(chain_pem.as_bytes(), pem.as_bytes()).is_ok());
    }
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let p256 = chain_for(fixture_key(P256_SEC1));
    let other_p256 = Chain::for_alg(Alg::P256);
    let p384 = chain_for(fixture_key(P384_SEC1));
    let rsa2048 = chain_for(fixture_key(RSA2048_PKCS1));
    let mismatch = Err(PkiError::KeyMismatch);
    let sec1 = pem_der(P256_SEC1);
    assert_eq!(load(&other_p256, &sec1, KeyFormat::Sec1), mismatch);
    assert_eq!(
        load(&other_p256, &sec1_without_public(&sec1), KeyFormat::Sec1),
        mismatch
    );
    assert_eq!(
        load(&other_p256, &pkcs8_of(P256_SEC1), KeyFormat::Pkcs8),
        mismatch
    );
    assert_eq!(
        load(&p384, &sec1, KeyFormat::Sec1),
        mismatch,
        "another curve"
    );
    assert_eq!(
        load(&p384, &pkcs8_of(P256_SEC1), KeyFormat::Pkcs8),
        mismatch
    );
    assert_eq!(load(&p256, &pem_der(P384_SEC1), KeyFormat::Sec1), mismatch);
    assert_eq!(
        load(&rsa2048, &pem_der(RSA3072_PKCS1), KeyFormat::Pkcs1),
        mismatch
    );
    assert_eq!(
        load(&rsa2048, &pkcs8_of(RSA3072_PKCS1), KeyFormat::Pkcs8),
        mismatch
    );
    assert_eq!(
        load(&rsa2048, &sec1, KeyFormat::Sec1),
        mismatch,
        "an EC key for RSA"
    );
    assert_eq!(
        load(&rsa2048, &pkcs8_of(P256_SEC1), KeyFormat::Pkcs8),
        mismatch
    );
    assert_eq!(
        load(&p256, &pem_der(RSA2048_PKCS1), KeyFormat::Pkcs1),
        mismatch
    );
    assert_eq!(
        load(&p256, &pkcs8_of(RSA2048_PKCS1), KeyFormat::Pkcs8),
        mismatch
    );
    let chain_pem = cert_pem(&p256.ee);
    let r = LocalCredential::from_pem(chain_pem.as_bytes(), P384_SEC1.as_bytes());
    assert_eq!(r.map(|_| ()), mismatch);
}

#[test]
fn unreadable_keys_and_certificates_are_refused() {
    let chain = chain_for(fixture_key(P256_SEC1));
    for format in [KeyFormat::Sec1, KeyFormat::Pkcs8] {
        let r = load(&chain, b"\x30\x03\x02\x01\x01", format);
        assert!(
            matches!(r, Err(PkiError::Key { format: f, .. }) if f == format),
            "{r:?}"
        );
    }
    let rsa = chain_for(fixture_key(RSA2048_PKCS1));
    let r = load(&rsa, &pem_der(RSA2048_PKCS1)[..100], KeyFormat::Pkcs1);
    assert!(
        matches!(
            r,
            Err(PkiError::Key {
                format: KeyFormat::Pkcs1,
                ..
            })
        ),
        "{r:?}"
    );
    let key = pem_der(P256_SEC1);
    let from = |chain: Vec<Vec<u8>>| LocalCredential::from_der(chain, &key, KeyFormat::Sec1);
    assert_eq!(from(vec![]).map(|_| ()), Err(PkiError::NoCertificate));
    let r = from(vec![b"garbage".to_vec()]).map(|_| ());
    assert!(
        matches!(r, Err(PkiError::Certificate { index: 0, .. })),
        "{r:?}"
    );
    let r = from(vec![chain.ee.clone(), b"garbage".to_vec()]).map(|_| ());
    assert!(
        matches!(r, Err(PkiError::Certificate { index: 1, .. })),
        "{r:?}"
    );

    let ed = Chain::for_alg(Alg::Ed25519);
    let r = LocalCredential::from_der(vec![ed.ee.clone()], &ed.ee_key, KeyFormat::Pkcs8);
    assert_eq!(r.map(|_| ()), Err(PkiError::UnsupportedKey("Ed25519")));
    let r = LocalCredential::from_pem(b"no PEM here", P256_SEC1.as_bytes());
    assert_eq!(r.map(|_| ()), Err(PkiError::NoCertificate));
    let r = LocalCredential::from_pem(cert_pem(&chain.ee).as_bytes(), b"no key");
    assert!(matches!(r, Err(PkiError::Pem(_))), "{r:?}");
}

#[test]
fn the_credential_gives_its_certificates_identity_and_expiry() {
    let chain = Chain::for_alg(Alg::P256);
    let sent = vec![chain.ee.clone(), chain.intermediate.clone()];
    let cred = LocalCredential::from_der(sent, &chain.ee_key, KeyFormat::Pkcs8).unwrap();
    let certs: Vec<_> = cred.certificates().collect();
    assert_eq!(certs.len(), 2);
    assert!(certs
        .iter()
        .all(|c| c.encoding == CertEncoding::X509_SIGNATURE));
    assert_eq!(
        (certs[0].data, certs[1].data),
        (&chain.ee[..], &chain.intermediate[..])
    );
    let id = cred.default_id();
    assert_eq!(
        (id.id_type, id.data),
        (IdType::DER_ASN1_DN, &subject_of(&chain.ee)[..])
    );
    assert_eq!(cred.not_after(), 1_830_297_600);
    assert!(format!("{cred:?}").starts_with("LocalCredential { certificates: 2"));

    let auth = cred.sign(b"x", Some(&[HashAlgorithm::SHA2_256])).unwrap();
    assert_eq!(auth.payload().data, auth.data.as_slice());
}

/// [RFC 7296 § 3.7]: a CERTREQ names each CA by the SHA-1 of its SubjectPublicKeyInfo.
#[test]
fn trust_stores_hash_their_cas_and_take_only_cas() {
    let a = Chain::for_alg(Alg::P256);
    let b = Chain::build(Alg::Rsa2048, Alg::P256, Alg::P256, ee_params("gw"));
    let pem = [cert_pem(&a.root), cert_pem(&b.root)].concat();
    let store = TrustStore::from_pem(pem.as_bytes()).unwrap();
    assert_eq!((store.len(), store.is_empty()), (2, false));
    let spki = |der: &[u8]| {
        use x509_parser::prelude::FromDer;
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
        sha1(&[c.public_key().raw])
    };
    let want = [spki(&a.root), spki(&b.root)];
    assert_eq!(store.certreq_hashes(), want);
    assert_eq!(store.certreq_data(), want.concat());
    assert!(store.accepts(&want[1]));
    assert!(!store.accepts(&spki(&a.intermediate)));

    assert_eq!(
        TrustStore::from_der(&[]).map(|_| ()),
        Err(PkiError::NoCertificate)
    );
    let r = TrustStore::from_der(&[a.root.clone(), a.ee.clone()]).map(|_| ());
    assert_eq!(r, Err(PkiError::NotACa { index: 1 }));
    let r = TrustStore::from_der(&[b"garbage".to_vec()]).map(|_| ());
    assert!(
        matches!(r, Err(PkiError::Certificate { index: 0, .. })),
        "{r:?}"
    );
    assert!(
        TrustStore::from_der(std::slice::from_ref(&a.intermediate)).is_ok(),
        "any CA may anchor"
    );
    let r = TrustStore::from_pem(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n");
    assert!(matches!(r, Err(PkiError::Pem(_))), "{r:?}");
}
