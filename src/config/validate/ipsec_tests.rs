//! `ipsec` attachments: the validated values of a full attachment with both authentication
//! methods, and every rejection of the attachment's addresses, ports and identities with its
//! key path and line (the gateway's files: `ipsec_file_tests.rs`; peers:
//! `ipsec_peer_tests.rs`). Key and certificate files are the throw-away examples under
//! `config/example-keys/ipsec/`, or made with rcgen.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::tests::{edit, line_eq, load, rejects, BASE};
use super::*;
use crate::config::{
    DpdAction, Esn, IkeIdentity, IpsecAttachment, IpsecAuth, IpsecStart, KeyFormat,
};
use crate::crypto::{DhGroup, EncrAlg};

/// An ipsec attachment for tenant alpha (`tenants[0].attachments[1]`), after alpha-wg: one
/// peer with a pre-shared key, one with a certificate.
pub(super) const IPSEC: &str = r#"      - name: alpha-ipsec
        type: ipsec
        listen: 192.0.2.10
        local_id: gw.ix.example
        certificate_file: example-keys/ipsec/gateway.crt
        private_key_file: example-keys/ipsec/gateway.key
        peers:
          - name: clinic-psk
            facility: "4212345682"
            remote_id: clinic.ix.example
            auth: psk
            psk_file: example-keys/ipsec/goto-clinic.psk
            remote_ts: [10.0.30.0/24]
          - name: hospital-cert
            facility: "4211234564"
            remote_id: "C=JP, O=Hospital, CN=vpn.hospital.example"
            auth: certificate
            ca_file: example-keys/ipsec/example-ca.crt
            remote_ts: [10.0.40.0/24]
"#;

/// A second ipsec attachment, after the first.
const SECOND_IPSEC: &str = r#"      - name: alpha-ipsec2
        type: ipsec
        listen: 192.0.2.11
        local_id: gw2.ix.example
"#;

pub(super) const A: &str = "tenants[0].attachments[1]";
pub(super) const P0: &str = "tenants[0].attachments[1].peers[0]";
pub(super) const P1: &str = "tenants[0].attachments[1].peers[1]";

pub(super) fn with_ipsec() -> String {
    edit(
        BASE,
        "            allowed_ips: [10.0.2.0/24]\n",
        &format!("            allowed_ips: [10.0.2.0/24]\n{IPSEC}"),
    )
}

/// The configuration with the ipsec attachment, `old` replaced by `new` in it.
pub(super) fn ipsec(old: &str, new: &str) -> String {
    edit(&with_ipsec(), old, new)
}

/// The ipsec attachment with `line` added after the first peer's `remote_ts`.
pub(super) fn psk_peer_with(line: &str) -> String {
    ipsec(
        "            remote_ts: [10.0.30.0/24]\n",
        &format!("            remote_ts: [10.0.30.0/24]\n            {line}\n"),
    )
}

fn with_second_ipsec(extra: &str) -> String {
    ipsec(
        "            remote_ts: [10.0.40.0/24]\n",
        &format!("            remote_ts: [10.0.40.0/24]\n{SECOND_IPSEC}{extra}"),
    )
}

pub(super) fn example_key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/example-keys/ipsec")
        .join(name)
}

pub(super) fn the_ipsec(c: &Config) -> &IpsecAttachment {
    match &c.tenants[0].attachments[1].kind {
        AttachmentKind::Ipsec(a) => a,
        other => panic!("not ipsec: {other:?}"),
    }
}

/// A throw-away self-signed certificate and its PKCS#8 key, as PEM.
pub(super) fn fresh_certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["gw.ix.example".to_string()])
        .expect("rcgen makes a certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

#[test]
fn a_full_ipsec_attachment_validates_with_its_defaults() {
    let c = load(&with_ipsec()).expect("validates");
    let a = the_ipsec(&c);
    assert_eq!(c.tenants[0].attachments[1].name, "alpha-ipsec");
    assert_eq!(a.listen, Ipv4Addr::new(192, 0, 2, 10));
    assert_eq!(
        (a.ike_port, a.nat_t_port, a.raw_esp, a.mtu),
        (500, 4500, true, 1400)
    );
    assert_eq!(a.local_id, IkeIdentity::Fqdn("gw.ix.example".into()));

    let creds = a.credentials.as_ref().expect("gateway credentials");
    assert_eq!(creds.certificate_file, example_key_path("gateway.crt"));
    let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(&creds.certificate_file)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(chain.len(), 2, "the gateway's certificate, then its CA");
    assert_eq!(creds.certificates, chain);
    assert_eq!(creds.private_key.format, KeyFormat::Sec1);
    let key = PrivateKeyDer::from_pem_file(example_key_path("gateway.key")).unwrap();
    assert_eq!(creds.private_key.der.expose(), key.secret_der());
    assert!(!format!("{creds:?}").contains(&format!("{:?}", key.secret_der())));

    let psk = &a.peers[0];
    assert_eq!(psk.name, "clinic-psk");
    assert_eq!(psk.facility.to_string(), "4212345682");
    assert_eq!(psk.remote_id, IkeIdentity::Fqdn("clinic.ix.example".into()));
    let IpsecAuth::Psk {
        psk_file,
        psk: secret,
    } = &psk.auth
    else {
        panic!("psk auth: {:?}", psk.auth);
    };
    assert_eq!(psk_file, &example_key_path("goto-clinic.psk"));
    let text = std::fs::read_to_string(psk_file).unwrap();
    let expected = base64::engine::general_purpose::STANDARD
        .decode(text.trim().strip_prefix("0s").unwrap())
        .unwrap();
    assert_eq!(secret.expose(), expected);
    assert_eq!(secret.len(), 32);
    assert_eq!(
        psk.remote_ts,
        ["10.0.30.0/24".parse::<Ipv4Network>().unwrap()]
    );
    assert_eq!(psk.local_ts, None, "computed like AllowedIPs");
    assert_eq!(psk.endpoint, None);
    assert_eq!(psk.start, IpsecStart::Respond);
    let proposals: Vec<String> = psk.proposals.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        proposals,
        [
            "aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha512-ecp256-ecp384-x25519",
            "aes256-aes128-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-ecp256-ecp384-x25519"
        ]
    );
    let esp: Vec<String> = psk.esp_proposals.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        esp,
        [
            "aes256gcm16-aes128gcm16",
            "aes256-aes128-sha256-sha384-sha512"
        ]
    );
    assert!(psk
        .esp_proposals
        .iter()
        .all(|p| p.dh.is_empty() && p.esn == Esn::No));
    assert_eq!(psk.ike_rekey_time, Duration::from_secs(4 * 3600));
    assert_eq!(psk.child_rekey_time, Duration::from_secs(3600));
    assert_eq!(psk.child_rekey_bytes, None);
    assert_eq!(psk.dpd_interval, Duration::from_secs(30));
    assert_eq!(psk.dpd_timeout, Duration::from_secs(150));
    assert_eq!(psk.dpd_action, DpdAction::Clear);
    assert!(!psk.directed_broadcast);

    let cert = &a.peers[1];
    assert_eq!(
        cert.remote_id,
        IkeIdentity::Dn("C=JP, O=Hospital, CN=vpn.hospital.example".into())
    );
    let IpsecAuth::Certificate { ca_file, cas } = &cert.auth else {
        panic!("certificate auth: {:?}", cert.auth);
    };
    assert_eq!(ca_file, &example_key_path("example-ca.crt"));
    assert_eq!(
        cas.as_slice(),
        &chain[1..],
        "the CA that issued the gateway's certificate"
    );
}

#[test]
fn every_optional_key_is_read() {
    let text = ipsec(
        "            remote_ts: [10.0.30.0/24]\n",
        "            remote_ts: [10.0.30.0/24, 10.0.31.0/24]
            local_ts: [100.65.0.0/16, 100.127.0.10/32]
            endpoint: 198.51.100.20:4501
            start: initiate
            proposals: [aes128-sha384-ecp256, aes256gcm16-prfsha512-x25519]
            esp_proposals: [aes128gcm16-ecp384-esn]
            ike_rekey_time: 24h
            child_rekey_time: 10s
            child_rekey_bytes: 512M
            dpd_interval: 1h
            dpd_timeout: 3601
            directed_broadcast: true
",
    );
    let text = edit(
        &text,
        "        listen: 192.0.2.10\n",
        "        listen: 192.0.2.10\n        ike_port: 1500\n        nat_t_port: 14500\n        raw_esp: false\n        mtu: 576\n",
    );
    let c = load(&text).expect("validates");
    let a = the_ipsec(&c);
    assert_eq!(
        (a.ike_port, a.nat_t_port, a.raw_esp, a.mtu),
        (1500, 14500, false, 576)
    );
    let p = &a.peers[0];
    assert_eq!(p.remote_ts.len(), 2);
    assert_eq!(
        p.local_ts,
        Some(vec![
            "100.65.0.0/16".parse().unwrap(),
            "100.127.0.10/32".parse().unwrap()
        ])
    );
    assert_eq!(p.endpoint, Some("198.51.100.20:4501".parse().unwrap()));
    assert_eq!(p.start, IpsecStart::Initiate);
    assert_eq!(
        p.dpd_action,
        DpdAction::Restart,
        "the default when initiating"
    );
    assert_eq!(p.proposals[0].prf.len(), 1, "the PRF of sha384");
    assert_eq!(p.proposals[1].encr, [EncrAlg::AesGcm16_256]);
    assert_eq!(p.esp_proposals[0].dh, [DhGroup::Ecp384]);
    assert_eq!(p.esp_proposals[0].esn, Esn::Yes);
    assert_eq!(p.esp_proposals[0].text, "aes128gcm16-ecp384-esn");
    assert_eq!(p.ike_rekey_time, Duration::from_secs(86_400));
    assert_eq!(p.child_rekey_time, Duration::from_secs(10), "the floor");
    assert_eq!(p.child_rekey_bytes, Some(512 << 20));
    assert_eq!(p.dpd_interval, Duration::from_secs(3600));
    assert_eq!(p.dpd_timeout, Duration::from_secs(3601));
    assert!(p.directed_broadcast);
    // An endpoint without a port gets IKE's.
    let text = psk_peer_with("endpoint: 198.51.100.20");
    let c = load(&text).unwrap();
    assert_eq!(
        the_ipsec(&c).peers[0].endpoint,
        Some("198.51.100.20:500".parse().unwrap())
    );
}

#[test]
fn ipsec_peers_route_and_carry_facilities_for_services_and_policies() {
    // A service behind an ipsec peer is routed; a policy may name its facility.
    let text = with_ipsec().replace(
        "services:\n",
        "services:\n  - name: clinic-pacs\n    tenant: alpha\n    address: 10.0.30.5\n    ports: [tcp/104]\n",
    );
    let text = text.replace(
        "from: { tenant: alpha, facility: \"4212345674\" }",
        "from: { tenant: alpha, facility: \"4212345682\" }",
    );
    let c = load(&text).expect("validates");
    assert_eq!(c.services[0].name, "clinic-pacs");
    assert_eq!(c.policies[1].from.facilities[0].to_string(), "4212345682");
}

#[test]
fn the_ipsec_example_configuration_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ipsec-example.yaml");
    let c = Config::load(&path).expect("config/ipsec-example.yaml validates");
    let a = the_example_ipsec(&c);
    assert_eq!(a.peers.len(), 2);
    let hospital = &a.peers[1];
    assert_eq!(hospital.child_rekey_bytes, Some(10 << 30));
    assert_eq!(hospital.dpd_action, DpdAction::Restart);
}

fn the_example_ipsec(c: &Config) -> &IpsecAttachment {
    match &c.tenants[0].attachments[0].kind {
        AttachmentKind::Ipsec(a) => a,
        other => panic!("not ipsec: {other:?}"),
    }
}

#[test]
fn rejects_attachment_addresses_and_ports() {
    let text = ipsec("        listen: 192.0.2.10\n", "");
    rejects(
        &text,
        &format!("{A}.listen"),
        "- name: alpha-ipsec",
        &["missing key `listen`, required for an ipsec attachment"],
    );
    let text = ipsec("listen: 192.0.2.10", "listen: 192.0.2.10:500");
    rejects(
        &text,
        &format!("{A}.listen"),
        "192.0.2.10:500",
        &["`192.0.2.10:500` is not an IPv4 address"],
    );
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        ike_port: 0\n",
    );
    rejects(
        &text,
        &format!("{A}.ike_port"),
        "ike_port: 0",
        &["0 is out of range (1..=65535)"],
    );
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        nat_t_port: 65536\n",
    );
    rejects(
        &text,
        &format!("{A}.nat_t_port"),
        "nat_t_port",
        &["65536 is out of range (1..=65535)"],
    );
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        nat_t_port: 500\n",
    );
    rejects(
        &text,
        &format!("{A}.nat_t_port"),
        "nat_t_port: 500",
        &["ike_port and nat_t_port are both 500"],
    );
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        ike_port: 4500\n",
    );
    rejects(
        &text,
        &format!("{A}.ike_port"),
        "ike_port: 4500",
        &["both 4500"],
    );
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        mtu: 1501\n",
    );
    rejects(
        &text,
        &format!("{A}.mtu"),
        "mtu: 1501",
        &["mtu 1501 is out of range for an ipsec attachment (576..=1500)"],
    );
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        tun: ixgw0\n",
    );
    rejects(
        &text,
        &format!("{A}.tun"),
        "tun: ixgw0",
        &["unknown key `tun` for an ipsec attachment"],
    );
    let text = psk_peer_with("allowed_ips: [10.0.30.0/24]");
    rejects(
        &text,
        &format!("{P0}.allowed_ips"),
        "allowed_ips: [10.0.30.0/24]",
        &["unknown key `allowed_ips`"],
    );
}

#[test]
fn rejects_sockets_another_attachment_uses() {
    // The NAT-T port on the WireGuard attachment's wildcard port.
    let text = ipsec(
        "listen: 192.0.2.10\n",
        "listen: 192.0.2.10\n        nat_t_port: 51820\n",
    );
    rejects(
        &text,
        &format!("{A}.nat_t_port"),
        "nat_t_port: 51820",
        &[&format!(
            "192.0.2.10:51820 is already used by tenants[0].attachments[0].listen (line {})",
            line_eq(BASE, "        listen: 0.0.0.0:51820")
        )],
    );
    // Two ipsec attachments on one address: their (default) IKE ports clash.
    let text = with_second_ipsec("").replace("listen: 192.0.2.11", "listen: 192.0.2.10 # again");
    let first_line = line_eq(&text, "      - name: alpha-ipsec");
    rejects(
        &text,
        "tenants[0].attachments[2].ike_port",
        "- name: alpha-ipsec2",
        &[&format!(
            "192.0.2.10:500 is already used by {A}.ike_port (line {first_line})"
        )],
    );
    // The wildcard address clashes with every address; other ports leave raw ESP.
    let text = with_second_ipsec("        ike_port: 600\n        nat_t_port: 4600\n")
        .replace("listen: 192.0.2.11", "listen: 0.0.0.0");
    rejects(
        &text,
        "tenants[0].attachments[2].raw_esp",
        "- name: alpha-ipsec2",
        &[&format!("raw ESP (IP protocol 50) on 0.0.0.0 is already used by {A}.raw_esp (line {first_line})")],
    );
    let text = with_second_ipsec(
        "        ike_port: 600\n        nat_t_port: 4600\n        raw_esp: false\n",
    )
    .replace("listen: 192.0.2.11", "listen: 0.0.0.0");
    load(&text).expect("no raw ESP socket, no clash");
    let text = with_second_ipsec("").replace("listen: 192.0.2.11", "listen: 0.0.0.0");
    rejects(
        &text,
        "tenants[0].attachments[2].ike_port",
        "- name: alpha-ipsec2",
        &["0.0.0.0:500 is already used"],
    );
}

#[test]
fn rejects_identities() {
    let text = ipsec("        local_id: gw.ix.example\n", "");
    rejects(
        &text,
        &format!("{A}.local_id"),
        "- name: alpha-ipsec",
        &["missing key `local_id`, required for an ipsec attachment"],
    );
    let text = ipsec("local_id: gw.ix.example", "local_id: gw_1.ix.example");
    rejects(
        &text,
        &format!("{A}.local_id"),
        "gw_1.ix.example",
        &["`gw_1.ix.example` is not an IKE identity: `_` is not allowed in an FQDN"],
    );
    let text = ipsec("local_id: gw.ix.example", "local_id: \"C=JP, XX=1\"");
    rejects(
        &text,
        &format!("{A}.local_id"),
        "XX=1",
        &["`XX` is not a DN attribute type"],
    );
    let text = ipsec("local_id: gw.ix.example", "local_id: keyid:0a1");
    rejects(
        &text,
        &format!("{A}.local_id"),
        "keyid:0a1",
        &["a key ID is an even number of hex digits"],
    );
    let text = ipsec(
        "remote_id: clinic.ix.example",
        "remote_id: clinic@ix.example",
    );
    rejects(
        &text,
        &format!("{P0}.remote_id"),
        "clinic@ix.example",
        &["`clinic@ix.example` is an e-mail address identity (ID_RFC822_ADDR); ixgw supports FQDN, ASN.1 DN, IPv4 address and key ID identities"],
    );
    let text = ipsec("remote_id: clinic.ix.example", "remote_id: 2001:db8::1");
    rejects(
        &text,
        &format!("{P0}.remote_id"),
        "2001:db8::1",
        &["is an IPv6 identity"],
    );
    let text = ipsec("            remote_id: clinic.ix.example\n", "");
    rejects(
        &text,
        &format!("{P0}.remote_id"),
        "- name: clinic-psk",
        &["missing key `remote_id`"],
    );
    // Unique per attachment; FQDNs compare without regard to case.
    let text = ipsec(
        "remote_id: \"C=JP, O=Hospital, CN=vpn.hospital.example\"",
        "remote_id: \"@Clinic.IX.example\"",
    );
    rejects(
        &text,
        &format!("{P1}.remote_id"),
        "@Clinic.IX.example",
        &[&format!(
            "remote_id Clinic.IX.example is already used by {P0}.remote_id (line {})",
            line_eq(&with_ipsec(), "            remote_id: clinic.ix.example")
        )],
    );
}
