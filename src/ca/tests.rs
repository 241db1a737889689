//! The CA end to end in temporary directories: what `ixgw ca` writes is read back with
//! x509-parser and validated with webpki, as the facility verifier and strongSwan would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_X509_SERIALNUMBER;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::cert::{authority_key_id, subject_key_id};
use super::store::{self, Problem, StoreError};
use super::*;
use crate::crypto::SystemRandom;

/// 2026-06-01 00:00:00 UTC.
const NOW: u64 = 1_780_272_000;
const WG_A: &str = "p0mbFSQrKQTLNp2Q614GfjZTSOck/QMsxhb2mYiyIDQ=";
const WG_B: &str = "USqL2dZkj42JX/d6G7FfDuA5bsbToKWy2e1kS5hGUmM=";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn now() -> SystemTime {
    at(NOW)
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ixgw-ca-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ca_request(name: &str, key_type: KeyType) -> CaRequest {
    CaRequest {
        name: name.into(),
        org: None,
        validity: Validity::new(now(), 3650, None, None).unwrap(),
        key_type,
    }
}

fn init(dir: &Path, name: &str, parent: Option<&Path>) -> store::Initialized {
    let req = ca_request(name, KeyType::Ec256);
    store::init(
        dir,
        &req,
        parent,
        Duration::from_secs(7 * 86_400),
        now(),
        &mut SystemRandom::new(),
    )
    .unwrap()
}

fn leaf_request(code: &str, name: &str) -> LeafRequest {
    LeafRequest {
        facility: facility(code).unwrap(),
        name: name.into(),
        wireguard_keys: vec![],
        dns: vec![],
        email: vec![],
        validity: Validity::new(now(), 365, None, None).unwrap(),
        key_type: KeyType::Ec256,
    }
}

fn issue(dir: &Path, req: &LeafRequest, prefix: &Path) -> store::IssuedFiles {
    store::issue(dir, req, prefix, &mut SystemRandom::new()).unwrap()
}

fn certs(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap();
    CertificateDer::pem_slice_iter(&text)
        .map(|c| c.unwrap().to_vec())
        .collect()
}

fn crl_der(dir: &Path) -> Vec<u8> {
    let text = std::fs::read(dir.join(store::CRL)).unwrap();
    CertificateRevocationListDer::from_pem_slice(&text)
        .unwrap()
        .to_vec()
}

fn x509(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn parse_crl(der: &[u8]) -> CertificateRevocationList<'_> {
    x509_parser::parse_x509_crl(der).unwrap().1
}

/// webpki's verdict on `leaf` under `root` at `time`, with revocation checked against `crls`
/// for the leaf only (`chain`: every certificate of the path) and nextUpdate enforced.
fn verify(
    root: &[u8],
    intermediates: &[Vec<u8>],
    leaf: &[u8],
    crls: &[Vec<u8>],
    chain: bool,
    time: SystemTime,
) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(root);
    let anchors = [webpki::anchor_from_trusted_cert(&root).unwrap()];
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf = CertificateDer::from(leaf);
    let ee = EndEntityCert::try_from(&leaf).unwrap();
    let crls: Vec<CertRevocationList<'_>> = crls
        .iter()
        .map(|c| OwnedCertRevocationList::from_der(c).unwrap().into())
        .collect();
    let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
    let revocation = (!crl_refs.is_empty()).then(|| {
        RevocationOptionsBuilder::new(&crl_refs)
            .unwrap()
            .with_depth(if chain {
                RevocationCheckDepth::Chain
            } else {
                RevocationCheckDepth::EndEntity
            })
            .with_expiration_policy(ExpirationPolicy::Enforce)
            .build()
    });
    let time = UnixTime::since_unix_epoch(time.duration_since(UNIX_EPOCH).unwrap());
    for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            usage,
            revocation,
            None,
        )?;
    }
    Ok(())
}

fn san_uris<'a>(c: &'a X509Certificate<'_>) -> Vec<&'a str> {
    sans(c)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect()
}

fn sans<'a>(c: &'a X509Certificate<'_>) -> Vec<&'a GeneralName<'a>> {
    c.subject_alternative_name()
        .unwrap()
        .map(|e| e.value.general_names.iter().collect())
        .unwrap_or_default()
}

fn crl_number(crl: &CertificateRevocationList<'_>) -> String {
    crl.crl_number().unwrap().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn later() -> SystemTime {
    at(NOW + 3600)
}

#[test]
fn init_issue_revoke_round_trip() {
    let tmp = TempDir::new("round-trip");
    let ca_dir = tmp.join("ca");
    let made = init(&ca_dir, "ixgw lab root", None);
    assert_eq!(made.parent, None);
    for name in [store::CERT, store::KEY, store::CRL, store::REVOKED] {
        assert!(ca_dir.join(name).is_file(), "{name}");
    }
    assert!(!ca_dir.join(store::CHAIN).exists());
    assert_eq!(
        std::fs::read_to_string(ca_dir.join(store::REVOKED)).unwrap(),
        ""
    );
    let root = certs(&ca_dir.join(store::CERT)).remove(0);
    let crl1 = crl_der(&ca_dir);
    assert_eq!(crl_number(&parse_crl(&crl1)), "1");
    assert_eq!(parse_crl(&crl1).iter_revoked_certificates().count(), 0);

    let mut a = leaf_request("0110113719", "Sapporo clinic");
    a.wireguard_keys = vec![wireguard_key(WG_A).unwrap(), wireguard_key(WG_B).unwrap()];
    a.dns = vec!["gw.sapporo.example".into()];
    a.email = vec!["ops@sapporo.example".into()];
    let issued_a = issue(&ca_dir, &a, &tmp.join("a"));
    assert_eq!(issued_a.cert, tmp.join("a.crt"));
    assert_eq!(issued_a.key, tmp.join("a.key"));
    assert!(issued_a.to_string().starts_with(&format!(
        "facility 0110113719 serial {} notAfter 2027-06-01T00:00:00Z: ",
        issued_a.serial
    )));
    let b = leaf_request("4212345674", "Kumamoto pharmacy");
    let issued_b = issue(&ca_dir, &b, &tmp.join("b"));
    assert_ne!(issued_a.serial, issued_b.serial);

    // The leaf file is the leaf alone (a root CA); its key belongs to it.
    let leaves_a = certs(&issued_a.cert);
    assert_eq!(leaves_a.len(), 1);
    let leaf_a = &leaves_a[0];
    let leaf_b = certs(&issued_b.cert).remove(0);
    let key_a = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&issued_a.key).unwrap()).unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(
        key_a.subject_public_key_info(),
        x509(leaf_a).public_key().raw
    );

    // Subject, both facility names, the WireGuard keys, the identities.
    let c = x509(leaf_a);
    assert_eq!(
        c.subject().to_string(),
        "C=JP, O=ixgw lab, CN=Sapporo clinic, serialNumber=0110113719"
    );
    let sn: Vec<_> = c.subject().iter_by_oid(&OID_X509_SERIALNUMBER).collect();
    assert_eq!(sn.len(), 1);
    assert_eq!(sn[0].attr_value().header.tag(), Tag::PrintableString);
    assert_eq!(sn[0].as_str().unwrap(), "0110113719");
    assert_eq!(
        san_uris(&c),
        [
            "urn:ixgw:facility:0110113719",
            &format!("urn:ixgw:wireguard-key:{WG_A}"),
            &format!("urn:ixgw:wireguard-key:{WG_B}"),
        ]
    );
    let names = sans(&c);
    assert!(names.contains(&&GeneralName::DNSName("gw.sapporo.example")));
    assert!(names.contains(&&GeneralName::RFC822Name("ops@sapporo.example")));
    assert_eq!(
        san_uris(&x509(&leaf_b)),
        ["urn:ixgw:facility:4212345674"],
        "no WireGuard key, no URI for one"
    );

    // An end entity: not a CA, digitalSignature, serverAuth + clientAuth, a year from now, a
    // positive serial of at most 16 bytes, the CA's key identifier.
    assert!(!c.basic_constraints().unwrap().is_some_and(|b| b.value.ca));
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.any && eku.other.is_empty());
    assert_eq!(c.validity().not_before.timestamp() as u64, NOW);
    assert_eq!(
        c.validity().not_after.timestamp() as u64,
        NOW + 365 * 86_400
    );
    let serial = c.raw_serial();
    assert!(serial.len() <= 16 && serial[0] != 0 && serial[0] & 0x80 == 0);
    assert_eq!(Serial::from_be_bytes(serial), issued_a.serial);
    let root_x = x509(&root);
    assert_eq!(authority_key_id(&c), subject_key_id(&root_x).as_deref());
    assert_eq!(c.issuer().as_raw(), root_x.subject().as_raw());

    // Both chain to the CA and are good under the empty CRL.
    verify(
        &root,
        &[],
        leaf_a,
        std::slice::from_ref(&crl1),
        true,
        later(),
    )
    .unwrap();
    verify(
        &root,
        &[],
        &leaf_b,
        std::slice::from_ref(&crl1),
        true,
        later(),
    )
    .unwrap();

    // Revoke a.
    let revoked_at = at(NOW + 60);
    let done = store::revoke(
        &ca_dir,
        &issued_a.cert,
        Reason::KeyCompromise,
        Duration::from_secs(7 * 86_400),
        revoked_at,
    )
    .unwrap();
    assert_eq!(done.serial, issued_a.serial);
    assert_eq!(done.crl.number, 2);
    assert_eq!(done.crl.revoked, 1);
    assert_eq!(
        std::fs::read_to_string(ca_dir.join(store::REVOKED)).unwrap(),
        format!("{} 2026-06-01T00:01:00Z key-compromise\n", issued_a.serial)
    );

    // The CRL: v2, number 2, the CA's name and key identifier, a week, a's serial with its
    // date and reason.
    let crl2 = crl_der(&ca_dir);
    let crl = parse_crl(&crl2);
    assert_eq!(crl.version().map(|v| v.0), Some(1));
    assert_eq!(crl_number(&crl), "2");
    assert_eq!(crl.issuer().as_raw(), root_x.subject().as_raw());
    assert_eq!(crl.last_update().timestamp() as u64, NOW + 60);
    assert_eq!(
        crl.next_update().unwrap().timestamp() as u64,
        NOW + 60 + 7 * 86_400
    );
    let aki = crl
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        });
    assert_eq!(aki, subject_key_id(&root_x).as_deref());
    let entries: Vec<_> = crl.iter_revoked_certificates().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].raw_serial(), serial);
    assert_eq!(entries[0].revocation_date.timestamp() as u64, NOW + 60);
    assert_eq!(entries[0].reason_code().map(|(_, r)| r.0), Some(1));
    let webpki_crl: CertRevocationList<'_> =
        OwnedCertRevocationList::from_der(&crl2).unwrap().into();
    let entry = webpki_crl.find_serial(serial).unwrap().unwrap();
    assert_eq!(
        entry.reason_code,
        Some(webpki::RevocationReason::KeyCompromise)
    );

    // webpki: a is revoked, b is fine (so the CRL's signature verified under the CA's key).
    assert_eq!(
        verify(
            &root,
            &[],
            leaf_a,
            std::slice::from_ref(&crl2),
            true,
            later()
        ),
        Err(webpki::Error::CertRevoked)
    );
    verify(
        &root,
        &[],
        &leaf_b,
        std::slice::from_ref(&crl2),
        true,
        later(),
    )
    .unwrap();

    // Revoking b too: number 3, both listed; unspecified leaves the reason code out.
    let done = store::revoke(
        &ca_dir,
        &issued_b.cert,
        Reason::Unspecified,
        Duration::from_secs(3600),
        at(NOW + 120),
    )
    .unwrap();
    assert_eq!((done.crl.number, done.crl.revoked), (3, 2));
    let crl3 = crl_der(&ca_dir);
    let crl = parse_crl(&crl3);
    assert_eq!(crl_number(&crl), "3");
    let reasons: Vec<_> = crl
        .iter_revoked_certificates()
        .map(|r| r.reason_code().map(|(_, c)| c.0))
        .collect();
    assert_eq!(reasons, [Some(1), None]);
    assert_eq!(
        verify(&root, &[], &leaf_b, &[crl3], true, later()),
        Err(webpki::Error::CertRevoked)
    );
}

#[test]
fn an_intermediate_chains_to_its_root_and_revokes_with_its_own_crl() {
    let tmp = TempDir::new("intermediate");
    let (root_dir, int_dir) = (tmp.join("root"), tmp.join("int"));
    init(&root_dir, "root", None);
    let made = init(&int_dir, "issuing", Some(&root_dir));
    assert_eq!(made.parent.as_deref(), Some(root_dir.as_path()));
    let root = certs(&root_dir.join(store::CERT)).remove(0);
    let int = certs(&int_dir.join(store::CERT)).remove(0);
    assert_eq!(
        certs(&int_dir.join(store::CHAIN)),
        [int.clone(), root.clone()]
    );

    let int_x = x509(&int);
    let root_x = x509(&root);
    let bc = int_x.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    assert_eq!(int_x.issuer().as_raw(), root_x.subject().as_raw());
    assert_eq!(authority_key_id(&int_x), subject_key_id(&root_x).as_deref());

    // The leaf file is leaf, then the intermediate.
    let a = issue(
        &int_dir,
        &leaf_request("4240123457", "Fukuoka"),
        &tmp.join("a"),
    );
    let b = issue(
        &int_dir,
        &leaf_request("4212345674", "Kumamoto"),
        &tmp.join("b"),
    );
    let chain_a = certs(&a.cert);
    assert_eq!(chain_a.len(), 2);
    assert_eq!(chain_a[1], int);
    let leaf_a = &chain_a[0];
    let leaf_b = certs(&b.cert).remove(0);
    let leaf_x = x509(leaf_a);
    assert_eq!(leaf_x.issuer().as_raw(), int_x.subject().as_raw());
    assert_eq!(authority_key_id(&leaf_x), subject_key_id(&int_x).as_deref());

    // Only through the intermediate.
    let crls = || vec![crl_der(&int_dir), crl_der(&root_dir)];
    verify(
        &root,
        std::slice::from_ref(&int),
        leaf_a,
        &crls(),
        true,
        later(),
    )
    .unwrap();
    assert_eq!(
        verify(&root, &[], leaf_a, &[], false, later()),
        Err(webpki::Error::UnknownIssuer)
    );

    store::revoke(
        &int_dir,
        &a.cert,
        Reason::Superseded,
        Duration::from_secs(86_400),
        later(),
    )
    .unwrap();
    let crl = crl_der(&int_dir);
    assert_eq!(parse_crl(&crl).issuer().as_raw(), int_x.subject().as_raw());
    assert_eq!(
        verify(
            &root,
            std::slice::from_ref(&int),
            leaf_a,
            &crls(),
            true,
            later()
        ),
        Err(webpki::Error::CertRevoked)
    );
    verify(
        &root,
        std::slice::from_ref(&int),
        &leaf_b,
        &crls(),
        true,
        later(),
    )
    .unwrap();

    // The root revokes the intermediate: everything under it is revoked with the whole chain
    // checked.
    store::revoke(
        &root_dir,
        &int_dir.join(store::CERT),
        Reason::CessationOfOperation,
        Duration::from_secs(86_400),
        later(),
    )
    .unwrap();
    assert_eq!(
        verify(
            &root,
            std::slice::from_ref(&int),
            &leaf_b,
            &crls(),
            true,
            later()
        ),
        Err(webpki::Error::CertRevoked)
    );

    // An intermediate signs no further CA.
    let e = store::init(
        &tmp.join("nested"),
        &ca_request("nested", KeyType::Ec256),
        Some(&int_dir),
        Duration::from_secs(3600),
        now(),
        &mut SystemRandom::new(),
    )
    .unwrap_err();
    assert_eq!(e.path, int_dir.join(store::CERT));
    assert!(e.to_string().contains("must be signed by a root CA"), "{e}");
}

#[test]
fn validity_overrides_make_expired_and_not_yet_valid_certificates() {
    let tmp = TempDir::new("validity");
    let ca_dir = tmp.join("ca");
    init(&ca_dir, "root", None);
    let root = certs(&ca_dir.join(store::CERT)).remove(0);

    let mut expired = leaf_request("0110113719", "expired");
    expired.validity = Validity::new(
        now(),
        365,
        Some(time("2026-05-01T00:00:00Z").unwrap()),
        Some(time("2026-05-31T00:00:00Z").unwrap()),
    )
    .unwrap();
    let e = issue(&ca_dir, &expired, &tmp.join("expired"));
    let leaf = certs(&e.cert).remove(0);
    assert_eq!(x509(&leaf).validity().not_after.timestamp(), 1_780_185_600);
    assert!(matches!(
        verify(&root, &[], &leaf, &[], false, later()),
        Err(webpki::Error::CertExpired { .. })
    ));
    // The day before it expired it was fine (webpki keeps no validity for a trust anchor, so
    // the CA's own notBefore does not matter here).
    verify(&root, &[], &leaf, &[], false, at(1_780_185_600 - 60)).unwrap();

    let mut future = leaf_request("0110113719", "future");
    future.validity = Validity::new(
        now(),
        30,
        Some(time("2026-07-01T00:00:00+09:00").unwrap()),
        None,
    )
    .unwrap();
    let f = issue(&ca_dir, &future, &tmp.join("future"));
    let leaf = certs(&f.cert).remove(0);
    assert!(matches!(
        verify(&root, &[], &leaf, &[], false, later()),
        Err(webpki::Error::CertNotValidYet { .. })
    ));
    assert_eq!(
        x509(&leaf).validity().not_after.timestamp()
            - x509(&leaf).validity().not_before.timestamp(),
        30 * 86_400
    );
}

#[test]
fn crl_refresh_counts_up_and_a_stale_crl_is_expired() {
    let tmp = TempDir::new("crl");
    let ca_dir = tmp.join("ca");
    init(&ca_dir, "root", None);
    let root = certs(&ca_dir.join(store::CERT)).remove(0);
    let a = issue(&ca_dir, &leaf_request("0110113719", "a"), &tmp.join("a"));
    let leaf = certs(&a.cert).remove(0);
    let day = Duration::from_secs(86_400);
    store::revoke(&ca_dir, &a.cert, Reason::KeyCompromise, day, now()).unwrap();
    let before = std::fs::read_to_string(ca_dir.join(store::REVOKED)).unwrap();

    let done = store::crl(&ca_dir, later(), Duration::from_secs(30)).unwrap();
    assert_eq!((done.number, done.revoked), (3, 1));
    assert_eq!(done.next_update, at(NOW + 3630));
    assert_eq!(
        std::fs::read_to_string(ca_dir.join(store::CRL_NUMBER)).unwrap(),
        "3\n"
    );
    assert_eq!(
        std::fs::read_to_string(ca_dir.join(store::REVOKED)).unwrap(),
        before
    );
    let crl = crl_der(&ca_dir);
    assert_eq!(crl_number(&parse_crl(&crl)), "3");
    assert_eq!(parse_crl(&crl).iter_revoked_certificates().count(), 1);
    assert_eq!(
        verify(
            &root,
            &[],
            &leaf,
            std::slice::from_ref(&crl),
            false,
            at(NOW + 3629)
        ),
        Err(webpki::Error::CertRevoked)
    );
    // Past its nextUpdate the CRL is stale, which a verifier that enforces it refuses.
    assert!(matches!(
        verify(&root, &[], &leaf, &[crl], false, at(NOW + 3631)),
        Err(webpki::Error::CrlExpired { .. })
    ));

    let done = store::crl(&ca_dir, later(), day).unwrap();
    assert_eq!(done.number, 4);
    assert_eq!(
        done.to_string(),
        format!(
            "{}: CRL number 4, 1 revoked, thisUpdate 2026-06-01T01:00:00Z, nextUpdate \
             2026-06-02T01:00:00Z",
            ca_dir.join(store::CRL).display()
        )
    );
}

#[test]
fn init_refuses_an_existing_ca_and_keeps_it() {
    let tmp = TempDir::new("init-twice");
    let ca_dir = tmp.join("ca");
    init(&ca_dir, "root", None);
    let before: Vec<_> = [store::CERT, store::KEY, store::CRL]
        .map(|n| std::fs::read(ca_dir.join(n)).unwrap())
        .into();
    let e = store::init(
        &ca_dir,
        &ca_request("again", KeyType::Ec256),
        None,
        Duration::from_secs(3600),
        now(),
        &mut SystemRandom::new(),
    )
    .unwrap_err();
    assert_eq!(e.path, ca_dir.join(store::CERT));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: already exists; refusing to overwrite it",
            ca_dir.join(store::CERT).display()
        )
    );
    let after: Vec<_> = [store::CERT, store::KEY, store::CRL]
        .map(|n| std::fs::read(ca_dir.join(n)).unwrap())
        .into();
    assert_eq!(before, after);

    // Any one file is enough to refuse.
    let other = tmp.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join(store::REVOKED), "").unwrap();
    let e = store::init(
        &other,
        &ca_request("x", KeyType::Ec256),
        None,
        Duration::from_secs(3600),
        now(),
        &mut SystemRandom::new(),
    )
    .unwrap_err();
    assert_eq!(e.path, other.join(store::REVOKED));
    assert!(!other.join(store::KEY).exists());
}

#[test]
fn issue_refuses_to_overwrite_and_bad_names() {
    let tmp = TempDir::new("issue-refusals");
    let ca_dir = tmp.join("ca");
    init(&ca_dir, "root", None);
    let req = leaf_request("0110113719", "a");
    issue(&ca_dir, &req, &tmp.join("a"));
    let key_before = std::fs::read(tmp.join("a.key")).unwrap();
    let e = store::issue(&ca_dir, &req, &tmp.join("a"), &mut SystemRandom::new()).unwrap_err();
    assert!(matches!(e.problem, Problem::Exists), "{e}");
    assert_eq!(std::fs::read(tmp.join("a.key")).unwrap(), key_before);

    let refused = |req: &LeafRequest| {
        store::issue(&ca_dir, req, &tmp.join("refused"), &mut SystemRandom::new())
            .unwrap_err()
            .to_string()
    };
    let mut bad = req.clone();
    bad.dns = vec!["not a name".into()];
    assert!(refused(&bad).ends_with("DNS name \"not a name\": not a valid DNS name"));
    let mut bad = req.clone();
    bad.email = vec!["nobody".into()];
    assert!(refused(&bad).contains("e-mail address \"nobody\""));
    let mut bad = req.clone();
    bad.name = " ".into();
    assert!(refused(&bad).ends_with("--name must not be empty"));
    assert!(!tmp.join("refused.key").exists());
    assert!(!tmp.join("refused.crt").exists());

    // A directory that holds no CA.
    let e = store::issue(
        &tmp.join("none"),
        &req,
        &tmp.join("b"),
        &mut SystemRandom::new(),
    )
    .unwrap_err();
    assert_eq!(e.path, tmp.join("none").join(store::CERT));
}

#[test]
fn revoke_refuses_foreign_repeated_and_own_certificates() {
    let tmp = TempDir::new("revoke-refusals");
    let (ca_dir, other_dir) = (tmp.join("ca"), tmp.join("other"));
    init(&ca_dir, "root", None);
    init(&other_dir, "root", None);
    let week = Duration::from_secs(7 * 86_400);
    let foreign = issue(&other_dir, &leaf_request("0110113719", "x"), &tmp.join("x"));
    let e = store::revoke(&ca_dir, &foreign.cert, Reason::Superseded, week, now()).unwrap_err();
    assert_eq!(e.path, foreign.cert);
    assert!(e.to_string().contains("was not issued by the CA in"), "{e}");

    let e = store::revoke(
        &ca_dir,
        &ca_dir.join(store::CERT),
        Reason::Superseded,
        week,
        now(),
    )
    .unwrap_err();
    assert!(matches!(e.problem, Problem::OwnCertificate), "{e}");

    let e = store::revoke(
        &ca_dir,
        &ca_dir.join(store::REVOKED),
        Reason::Superseded,
        week,
        now(),
    )
    .unwrap_err();
    assert!(matches!(e.problem, Problem::NoCertificate), "{e}");

    let a = issue(&ca_dir, &leaf_request("0110113719", "a"), &tmp.join("a"));
    store::revoke(&ca_dir, &a.cert, Reason::Superseded, week, now()).unwrap();
    let e = store::revoke(&ca_dir, &a.cert, Reason::KeyCompromise, week, later()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: serial {} was already revoked at 2026-06-01T00:00:00Z",
            a.cert.display(),
            a.serial
        )
    );
    // Nothing changed: still number 2, one entry.
    assert_eq!(crl_number(&parse_crl(&crl_der(&ca_dir))), "2");

    // A broken revoked.txt is named with its line.
    std::fs::write(
        ca_dir.join(store::REVOKED),
        "01 2026-06-01T00:00:00Z superseded\nbad\n",
    )
    .unwrap();
    let b = issue(&ca_dir, &leaf_request("0110113719", "b"), &tmp.join("b"));
    let e: StoreError =
        store::revoke(&ca_dir, &b.cert, Reason::KeyCompromise, week, now()).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: line 2: ",
            ca_dir.join(store::REVOKED).display()
        )),
        "{e}"
    );
}

#[test]
fn other_key_types_chain_and_revoke() {
    for key_type in [KeyType::Ec384, KeyType::Ed25519] {
        let tmp = TempDir::new("key-types");
        let ca_dir = tmp.join("ca");
        store::init(
            &ca_dir,
            &ca_request("root", key_type),
            None,
            Duration::from_secs(86_400),
            now(),
            &mut SystemRandom::new(),
        )
        .unwrap();
        let root = certs(&ca_dir.join(store::CERT)).remove(0);
        let mut req = leaf_request("0110113719", "a");
        req.key_type = key_type;
        let a = issue(&ca_dir, &req, &tmp.join("a"));
        let leaf = certs(&a.cert).remove(0);
        verify(&root, &[], &leaf, &[crl_der(&ca_dir)], false, later()).unwrap();
        store::revoke(
            &ca_dir,
            &a.cert,
            Reason::KeyCompromise,
            Duration::from_secs(60),
            now(),
        )
        .unwrap();
        assert_eq!(
            verify(&root, &[], &leaf, &[crl_der(&ca_dir)], false, at(NOW + 30)),
            Err(webpki::Error::CertRevoked),
            "{key_type:?}"
        );
    }
}

#[test]
fn ca_certificate_fields_and_key_modes() {
    let tmp = TempDir::new("ca-fields");
    let ca_dir = tmp.join("ca");
    let req = CaRequest {
        org: Some("札幌医療ネットワーク".into()),
        ..ca_request("lab root", KeyType::Ec256)
    };
    store::init(
        &ca_dir,
        &req,
        None,
        Duration::from_secs(86_400),
        now(),
        &mut SystemRandom::new(),
    )
    .unwrap();
    let root = certs(&ca_dir.join(store::CERT)).remove(0);
    let c = x509(&root);
    assert_eq!(
        c.subject().to_string(),
        "C=JP, O=札幌医療ネットワーク, CN=lab root"
    );
    assert_eq!(c.subject().as_raw(), c.issuer().as_raw());
    let bc = c.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint.is_none());
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    assert_eq!(
        c.validity().not_after.timestamp() - c.validity().not_before.timestamp(),
        3650 * 86_400
    );
    assert!(subject_key_id(&c).is_some());
    assert!(c.raw_serial()[0] & 0x80 == 0);

    // The leaf takes the CA's O.
    let a = issue(&ca_dir, &leaf_request("0110113719", "病院"), &tmp.join("a"));
    let leaf = certs(&a.cert).remove(0);
    assert_eq!(
        x509(&leaf).subject().to_string(),
        "C=JP, O=札幌医療ネットワーク, CN=病院, serialNumber=0110113719"
    );
    verify(&root, &[], &leaf, &[crl_der(&ca_dir)], false, later()).unwrap();

    assert_eq!(mode(&ca_dir.join(store::KEY)), 0o600);
    assert_eq!(mode(&a.key), 0o600);
    assert_eq!(mode(&ca_dir), 0o700);
    let leftovers: Vec<_> = std::fs::read_dir(&ca_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_key_that_is_not_the_cas_is_refused() {
    let tmp = TempDir::new("key-mismatch");
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    init(&a, "a", None);
    init(&b, "b", None);
    std::fs::copy(b.join(store::KEY), a.join(store::KEY)).unwrap();
    let e = store::load(&a).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the private key does not belong to the CA certificate",
            a.join(store::KEY).display()
        )
    );
    // A leaf is no CA.
    let leaf = issue(&b, &leaf_request("0110113719", "x"), &tmp.join("x"));
    std::fs::copy(&leaf.cert, a.join(store::CERT)).unwrap();
    std::fs::copy(&leaf.key, a.join(store::KEY)).unwrap();
    let e = store::load(&a).unwrap_err();
    assert!(e
        .to_string()
        .ends_with("not a CA certificate (basicConstraints cA is not true)"));
}

#[test]
fn write_atomic_replaces_the_target_and_leaves_no_temporary_file() {
    let tmp = TempDir::new("atomic");
    let target = tmp.join("crl.pem");
    std::fs::write(&target, "old").unwrap();
    let before = std::fs::metadata(&target).unwrap();
    store::write_atomic(&target, b"new contents", 0o644, true).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new contents");
    use std::os::unix::fs::MetadataExt;
    // A new inode took the name: a reader holding the old file still reads "old".
    assert_ne!(std::fs::metadata(&target).unwrap().ino(), before.ino());

    // Without overwrite an existing target is refused and kept.
    let e = store::write_atomic(&target, b"other", 0o644, false).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new contents");

    let key = tmp.join("k.key");
    store::write_atomic(&key, b"secret", 0o600, false).unwrap();
    assert_eq!(mode(&key), 0o600);

    // A missing directory: an error, and nothing left behind.
    assert!(store::write_atomic(&tmp.join("no/such"), b"x", 0o644, true).is_err());

    let mut names: Vec<_> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["crl.pem", "k.key"]);
}
