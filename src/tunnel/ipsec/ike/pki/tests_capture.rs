//! Verification against strongSwan 5.9.8's real IKE_AUTH exchange
//! (`tests/vectors/ipsec-ike-esp.pcap`: gw-a.lab initiates to gw-b.lab, ECDSA P-256
//! certificates from the throw-away CA `tests/vectors/ipsec-ca.crt`, RFC 7427 AUTH with
//! ecdsa-with-SHA256, IKE keys in the charon log next to it).
//!
//! What the capture shows of strongSwan: the responder asks for certificates with a CERTREQ
//! in its IKE_SA_INIT response naming the CA by the SHA-1 of its SubjectPublicKeyInfo; the
//! initiator answers with IDi (FQDN gw-a.lab), CERT (its end-entity certificate only, no
//! CA), a CERTREQ of its own, IDr (gw-b.lab) and AUTH (method 14, ecdsa-with-SHA256); the
//! responder answers with IDr, CERT and AUTH of the same kind. The certificates carry the
//! FQDN as their only subjectAltName, serverAuth and clientAuth as extended key usage, no
//! key usage, and are valid from 2 s before the exchange for a year.

use super::fuzz::{self, SEED_TIME};
use super::*;
use crate::crypto::{AesGcm, PrfAlg};
use crate::tunnel::ipsec::ike::message::testvec::*;
use crate::tunnel::ipsec::ike::message::{
    parse_inner, unpad, Auth, AuthMethod, Cert, CertEncoding, Id, IdType, Message, Payload,
};
use crate::tunnel::testvec::charon_secret;

const CA_PEM: &[u8] = include_bytes!("../../../../../tests/vectors/ipsec-ca.crt");
/// 2027-11-21 13:11:30 UTC, the end entities' notAfter.
const NOT_AFTER: u64 = 1_826_802_690;

fn trust() -> TrustStore {
    TrustStore::from_pem(CA_PEM).unwrap()
}

/// The decrypted inner payload chain of a captured IKE_AUTH message (AES-GCM-16-256, the
/// salt at the end of SK_e [RFC 5282 § 4]).
fn decrypt(i: usize, sk_e: &str) -> (Message<'static>, Vec<u8>) {
    let msg = Message::parse(ike_messages()[i]).unwrap();
    let key = charon_secret(KEYS_LOG, sk_e);
    let e = msg.encrypted().unwrap();
    let (iv, ct, icv) = e.split(8, 16).unwrap();
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&key[32..]);
    nonce[4..].copy_from_slice(iv);
    let mut buf = [ct, icv].concat();
    let n = AesGcm::new(&key[..32])
        .unwrap()
        .open_in_place(&nonce, msg.aad().unwrap(), &mut buf)
        .unwrap();
    let len = unpad(&buf[..n]).unwrap().len();
    buf.truncate(len);
    (msg, buf)
}

/// The ID, CERT payloads and AUTH of a decrypted IKE_AUTH message.
struct Authentication<'a> {
    id: Id<'a>,
    certs: Vec<Cert<'a>>,
    auth: Auth<'a>,
}

fn authentication<'a>(payloads: &[Payload<'a>], initiator: bool) -> Authentication<'a> {
    let id = payloads
        .iter()
        .find_map(|p| match (p, initiator) {
            (Payload::IdI(id), true) | (Payload::IdR(id), false) => Some(*id),
            _ => None,
        })
        .unwrap();
    let certs = payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Cert(c) => Some(*c),
            _ => None,
        })
        .collect();
    let auth = payloads
        .iter()
        .find_map(|p| match p {
            Payload::Auth(a) => Some(*a),
            _ => None,
        })
        .unwrap();
    Authentication { id, certs, auth }
}

/// The initiator's or the responder's authentication with its signed octets: for the
/// initiator RealMessage1 (the IKE_SA_INIT request as sent) | Nr | prf(SK_pi, IDi'), for
/// the responder RealMessage2 | Ni | prf(SK_pr, IDr') [RFC 7296 § 2.15].
fn captured(initiator: bool, inner: &[u8]) -> (Authentication<'_>, Vec<u8>) {
    let first = message_first(if initiator {
        AUTH_REQUEST
    } else {
        AUTH_RESPONSE
    });
    let payloads = parse_inner(first, inner).unwrap();
    let a = authentication(&payloads, initiator);
    let octets = octets_for(initiator, &a.id);
    (a, octets)
}

/// The signed octets of the initiator's or the responder's AUTH, for the identity `id`.
fn octets_for(initiator: bool, id: &Id<'_>) -> Vec<u8> {
    let v = sa_init_values();
    let (real_message, nonce, sk_p) = if initiator {
        (ike_messages()[SA_INIT_REQUEST], v.nr, "Sk_pi secret")
    } else {
        (ike_messages()[SA_INIT_RESPONSE], v.ni, "Sk_pr secret")
    };
    let sk_p = charon_secret(KEYS_LOG, sk_p);
    signed_octets(real_message, nonce, PrfAlg::HmacSha256, &sk_p, id)
}

fn message_first(i: usize) -> crate::tunnel::ipsec::ike::message::PayloadType {
    Message::parse(ike_messages()[i])
        .unwrap()
        .encrypted()
        .unwrap()
        .first_inner
}

/// The capture's most important property: strongSwan's AUTH payloads verify with our signed
/// octets, through the certificate each side sent, chained to the capture's CA.
#[test]
fn verifies_strongswans_captured_ike_auth_both_ways() {
    let trust = trust();
    for (initiator, i, sk_e, name) in [
        (true, AUTH_REQUEST, "Sk_ei secret", &b"gw-a.lab"[..]),
        (false, AUTH_RESPONSE, "Sk_er secret", b"gw-b.lab"),
    ] {
        let (_, inner) = decrypt(i, sk_e);
        let (a, octets) = captured(initiator, &inner);
        assert_eq!((a.id.id_type, a.id.data), (IdType::FQDN, name));
        assert_eq!(a.certs.len(), 1, "strongSwan sends its end entity only");
        assert_eq!(a.certs[0].encoding, CertEncoding::X509_SIGNATURE);
        assert_eq!(a.auth.method, AuthMethod::DIGITAL_SIGNATURE);

        let chain = [a.certs[0].data];
        let peer = verify_peer(&trust, &chain, SEED_TIME, &a.id, &a.auth, &octets)
            .unwrap_or_else(|e| panic!("{}: {e:?}", String::from_utf8_lossy(name)));
        assert_eq!(peer.scheme, SignatureScheme::EcdsaP256Sha256);
        assert_eq!(peer.method, AuthMethod::DIGITAL_SIGNATURE);
        assert_eq!((peer.anchor, peer.not_after), (0, NOT_AFTER));
        let subject = peer.subject;
        assert!(
            subject.windows(name.len()).any(|w| w == name),
            "CN in the subject"
        );

        // The certificate's subject as an ID_DER_ASN1_DN identity matches it: the refusal is
        // then the signature's, which covered the FQDN.
        let dn = Id::new(IdType::DER_ASN1_DN, &subject);
        let dn_octets = octets_for(initiator, &dn);
        let r = verify_peer(&trust, &chain, SEED_TIME, &dn, &a.auth, &dn_octets);
        assert_eq!(r, Err(AuthError::BadSignature));
    }
}

#[test]
fn the_captured_auth_is_refused_when_anything_changes() {
    let trust = trust();
    let (_, inner) = decrypt(AUTH_REQUEST, "Sk_ei secret");
    let (a, octets) = captured(true, &inner);
    let chain = [a.certs[0].data];
    let verify = |id: &Id<'_>, auth: &Auth<'_>, octets: &[u8], now| {
        verify_peer(&trust, &chain, now, id, auth, octets).map(|_| ())
    };
    assert_eq!(verify(&a.id, &a.auth, &octets, SEED_TIME), Ok(()));

    let mut data = a.auth.data.to_vec();
    *data.last_mut().unwrap() ^= 1;
    let flipped = Auth {
        method: a.auth.method,
        data: &data,
    };
    assert_eq!(
        verify(&a.id, &flipped, &octets, SEED_TIME),
        Err(AuthError::BadSignature)
    );

    // The responder's octets (another message, Ni, SK_pr) do not carry the initiator's AUTH.
    let (_, inner_r) = decrypt(AUTH_RESPONSE, "Sk_er secret");
    let (_, octets_r) = captured(false, &inner_r);
    assert_eq!(
        verify(&a.id, &a.auth, &octets_r, SEED_TIME),
        Err(AuthError::BadSignature)
    );

    let other = Id::new(IdType::FQDN, b"gw-b.lab");
    assert_eq!(
        verify(&other, &a.auth, &octets, SEED_TIME),
        Err(AuthError::IdMismatch)
    );
    let upper = Id::new(IdType::FQDN, b"GW-A.LAB");
    assert_eq!(
        verify(&upper, &a.auth, &octets_for(true, &upper), SEED_TIME),
        Err(AuthError::BadSignature),
        "the identity matches ignoring case; the signature covered the original"
    );

    // notBefore is 2026-11-21 13:11:30, two seconds before the exchange.
    assert_eq!(
        verify(&a.id, &a.auth, &octets, SEED_TIME - 3),
        Err(AuthError::NotYetValid)
    );
    assert_eq!(verify(&a.id, &a.auth, &octets, NOT_AFTER), Ok(()));
    assert_eq!(
        verify(&a.id, &a.auth, &octets, NOT_AFTER + 1),
        Err(AuthError::Expired)
    );

    // Another CA with the same name is not the capture's.
    let (other_ca, _) = {
        use super::testutil::{ca_params, key, Alg};
        let (k, _) = key(Alg::P256);
        let mut p = ca_params("Lab Root CA");
        p.distinguished_name = {
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CountryName, "CH");
            dn.push(rcgen::DnType::OrganizationName, "Lab");
            dn.push(rcgen::DnType::CommonName, "Lab Root CA");
            dn
        };
        p.not_before = rcgen::date_time_ymd(2026, 1, 1);
        (p.self_signed(&k).unwrap().der().to_vec(), ())
    };
    let impostor = TrustStore::from_der(&[other_ca]).unwrap();
    let r = verify_peer(&impostor, &chain, SEED_TIME, &a.id, &a.auth, &octets);
    assert_eq!(r, Err(AuthError::Untrusted));
}

/// [RFC 7296 § 3.7]: the CA hash in strongSwan's CERTREQ payloads (IKE_SA_INIT response and
/// IKE_AUTH request) is the SHA-1 of the CA's SubjectPublicKeyInfo, which we compute.
#[test]
fn rfc7296_3_7_certreq_hashes_equal_strongswans() {
    let trust = trust();
    let ours = trust.certreq_hashes();
    assert_eq!(ours.len(), 1);
    assert_eq!(trust.certreq_data(), ours[0]);

    let response = Message::parse(ike_messages()[SA_INIT_RESPONSE]).unwrap();
    let (_, inner) = decrypt(AUTH_REQUEST, "Sk_ei secret");
    let auth_request = parse_inner(message_first(AUTH_REQUEST), &inner).unwrap();
    let mut seen = 0;
    for p in response.payloads.iter().chain(&auth_request) {
        if let Payload::CertReq(req) = p {
            let theirs: Vec<_> = req.authorities().collect();
            assert_eq!(theirs, [&ours[0]]);
            assert!(trust.accepts(theirs[0]));
            seen += 1;
        }
    }
    assert_eq!(seen, 2);
    assert!(!trust.accepts(&[0; 20]));
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ike_auth_verify")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (initiator, i, sk_e, name) in [
        (true, AUTH_REQUEST, "Sk_ei secret", "ike_auth_request"),
        (false, AUTH_RESPONSE, "Sk_er secret", "ike_auth_response"),
    ] {
        let (_, inner) = decrypt(i, sk_e);
        let (a, octets) = captured(initiator, &inner);
        let chain: Vec<&[u8]> = a.certs.iter().map(|c| c.data).collect();
        out.push((name, fuzz::encode(&a.id, &a.auth, &octets, &chain)));
    }
    out
}

/// The committed seeds are the capture's two authentications, and both verify through the
/// fuzz target's body (so the fuzzer starts from inputs that reach the signature check).
#[test]
fn fuzz_body_runs_over_the_seed_corpus() {
    let trust = trust();
    for (name, bytes) in seeds() {
        let committed = std::fs::read(corpus_dir().join(name)).unwrap();
        assert_eq!(
            committed, bytes,
            "{name}: regenerate with write_seed_corpus"
        );
        assert!(fuzz::verify(&trust, SEED_TIME, &bytes).is_ok(), "{name}");
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(fuzz::verify(&trust, SEED_TIME, &bytes[..cut]).is_err());
        }
    }
}

#[test]
fn single_byte_damage_to_the_seeds_never_panics() {
    let trust = trust();
    for (_, bytes) in seeds() {
        for i in (0..bytes.len()).step_by(3) {
            let mut d = bytes.clone();
            d[i] ^= 0x81;
            let _ = fuzz::verify(&trust, SEED_TIME, &d);
        }
    }
}

/// Regenerates the committed seed corpus of the `ike_auth_verify` fuzz target:
/// `cargo test --lib tunnel::ipsec::ike::pki::tests_capture::write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
