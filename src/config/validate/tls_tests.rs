//! `tls` attachments: what is accepted, and each error at its key and line.

use super::tests::{edit, load, rejects};

/// One tenant with a tls attachment, its trust and its registry.
const TLS: &str = r#"ix:
  name: test-ix
  exchange_space: 100.64.0.0/10
trust:
  - name: lab
    ca_file: example-pki/ca.crt
  - name: elsewhere
    ca_file: example-keys/ipsec/example-ca.crt
facilities:
  - { code: "4212345674", name: Omura clinic, tenant: ajisai, certificate: presented }
  - { code: "4240123457", name: Sasebo pharmacy, tenant: ajisai, certificate: presented }
tenants:
  - name: ajisai
    trust: [lab]
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.64.0.0/16
    attachments:
      - name: ajisai-ssl
        type: tls
        listen: 0.0.0.0:443
        certificate_file: example-keys/ipsec/gateway.crt
        private_key_file: example-keys/ipsec/gateway.key
        client_ca: [lab]
        pool: 10.0.60.0/29
        dns: [100.64.0.53]
        idle_timeout: 10m
        peers:
          - name: omura-ssl
            facility: "4212345674"
          - name: sasebo-ssl
            facility: "4240123457"
"#;

#[test]
fn a_tls_attachment_loads_with_its_defaults() {
    let c = load(TLS).expect("valid");
    let crate::config::AttachmentKind::Tls(t) = &c.tenants[0].attachments[0].kind else {
        panic!("a tls attachment")
    };
    assert_eq!(t.listen.port(), 443);
    assert_eq!(
        (t.mtu, t.tls12, t.split_routes.is_none()),
        (1400, false, true)
    );
    assert_eq!(t.idle_timeout.as_secs(), 600);
    assert_eq!(t.session_timeout.as_secs(), 86_400);
    assert_eq!((t.dpd.as_secs(), t.keepalive.as_secs()), (30, 20));
    assert_eq!(t.peers.len(), 2);
    assert!(!t.credentials.certificates.is_empty());
    let text = edit(
        TLS,
        "        client_ca: [lab]\n",
        "        client_ca: [lab]\n        tls_versions: [\"1.3\", \"1.2\"]\n",
    );
    let c = load(&text).expect("valid");
    let crate::config::AttachmentKind::Tls(t) = &c.tenants[0].attachments[0].kind else {
        panic!("a tls attachment")
    };
    assert!(t.tls12);
}

#[test]
fn tls_errors_name_their_key_and_line() {
    let a = "tenants[0].attachments[0]";
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        (
            "client_ca: [lab]",
            "client_ca: [elsewhere]",
            "client_ca[0]",
            "client_ca:",
            &["elsewhere", "ajisai"],
        ),
        (
            "client_ca: [lab]",
            "client_ca: []",
            "client_ca",
            "client_ca:",
            &["empty"],
        ),
        (
            "pool: 10.0.60.0/29",
            "pool: 10.1.60.0/29",
            "pool",
            "pool:",
            &["not inside"],
        ),
        (
            "pool: 10.0.60.0/29",
            "pool: 10.0.60.0/31",
            "pool",
            "pool:",
            &[],
        ),
        (
            "pool: 10.0.60.0/29",
            "pool: 10.0.60.1/32",
            "pool",
            "pool:",
            &["hands out 1 address(es)", "2 peers"],
        ),
        (
            "idle_timeout: 10m",
            "idle_timeout: 5s",
            "idle_timeout",
            "idle_timeout:",
            &["60..="],
        ),
        (
            "dns: [100.64.0.53]",
            "dns: [resolver]",
            "dns[0]",
            "dns:",
            &["resolver"],
        ),
        (
            "listen: 0.0.0.0:443",
            "listen: 443",
            "listen",
            "listen:",
            &["443"],
        ),
        (
            "client_ca: [lab]",
            "client_ca: [lab]\n        tls_versions: [\"1.2\"]",
            "tls_versions",
            "tls_versions:",
            &["1.3"],
        ),
        (
            "client_ca: [lab]",
            "client_ca: [lab]\n        tls_versions: [\"1.1\", \"1.3\"]",
            "tls_versions[0]",
            "tls_versions:",
            &["1.1"],
        ),
        (
            "client_ca: [lab]",
            "client_ca: [lab]\n        split_routes: [10.0.0.0/8]",
            "split_routes[0]",
            "split_routes:",
            &["exchange_space"],
        ),
    ];
    for (old, new, key, line, values) in cases {
        let text = edit(TLS, old, new);
        if *key == "pool" && new.ends_with("/31") {
            // A /31 has two addresses and two peers: accepted.
            load(&text).expect("a /31 pool for two peers");
            continue;
        }
        rejects(&text, &format!("{a}.{key}"), line, values);
    }
    // One peer per facility on an attachment.
    let text = edit(
        TLS,
        "            facility: \"4240123457\"\n",
        "            facility: \"4212345674\" # twice\n",
    );
    rejects(
        &text,
        &format!("{a}.peers[1].facility"),
        "# twice",
        &["4212345674", "peers[0].facility"],
    );
}

#[test]
fn a_tls_peer_needs_its_facility_registered_with_its_certificate() {
    let text = edit(
        TLS,
        "  - { code: \"4240123457\", name: Sasebo pharmacy, tenant: ajisai, certificate: presented }\n",
        "  - { code: \"4240123457\", name: Sasebo pharmacy, tenant: ajisai, certificate: none } # none\n",
    );
    rejects(
        &text,
        "facilities[1].certificate",
        "# none",
        &["sasebo-ssl", "presented"],
    );
    let start = TLS.find("facilities:").unwrap();
    let end = TLS.find("tenants:").unwrap();
    let text = format!("{}{}", &TLS[..start], &TLS[end..]);
    rejects(
        &text,
        "tenants[0].attachments[0].peers[0].facility",
        "facility: \"4212345674\"",
        &["omura-ssl", "facilities:"],
    );
}

#[test]
fn the_annotated_example_validates() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ssl-carrier-example.yaml");
    let c = crate::config::Config::load(&path).expect("config/ssl-carrier-example.yaml validates");
    let kinds: Vec<&str> = c
        .tenants
        .iter()
        .flat_map(|t| &t.attachments)
        .map(|a| a.kind.type_name())
        .collect();
    assert_eq!(kinds, ["tls", "ethernet", "ethernet"]);
    let out = crate::peer_config::render(&c, "omura-ssl", Default::default()).expect("peer-config");
    assert!(out.contains("openconnect --protocol=anyconnect"), "{out}");
    assert!(out.contains("https://203.0.113.10:443/"), "{out}");
    assert!(
        out.contains("--certificate omura-ssl.crt --sslkey omura-ssl.key"),
        "{out}"
    );
}
