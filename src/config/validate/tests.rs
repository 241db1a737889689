use super::policies::covers;
use super::*;

use proptest::prelude::*;

/// A small valid configuration; tests edit one spot and check the error it causes.
pub(super) const BASE: &str = r#"ix:
  name: test-ix
  exchange_space: 100.64.0.0/10
tenants:
  - name: alpha
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.64.0.0/16
    attachments:
      - name: alpha-wg
        type: wireguard
        listen: 0.0.0.0:51820
        private_key_file: example-keys/ajisai-wg.key
        peers:
          - name: clinic-a
            facility: "4212345674"
            public_key: FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA=
            allowed_ips: [10.0.1.0/24]
          - name: clinic-b
            facility: "4240123457"
            public_key: G7llhqvQlPDzCzEV7hb/UeO9jOC4nmMCP8IwqG3wkTk=
            allowed_ips: [10.0.2.0/24]
  - name: beta
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.65.0.0/16
    attachments:
      - name: lan-b
        type: plain
        tun: ixgw-beta
        routes: [10.0.0.0/16]
services:
  - name: portal
    tenant: beta
    address: 10.0.0.10
    ports: [tcp/443, udp/5000-5100]
policies:
  - name: alpha-to-portal
    from: { tenant: alpha }
    to: { service: portal }
  - name: alpha-to-beta
    from: { tenant: alpha, facility: "4212345674" }
    to: { tenant: beta }
    allow: [icmp]
"#;

/// A second WireGuard attachment for tenant alpha, appended after clinic-b.
const SECOND_WG: &str = r#"      - name: alpha-wg2
        type: wireguard
        listen: 0.0.0.0:51821
        private_key_file: example-keys/mame-wg.key
        peers:
          - name: clinic-c
            facility: "3211234566"
            public_key: NLadS2aoqCwDkGUgVCT1fPqDCLVDtd6oRQbx4IYajig=
            allowed_ips: [10.0.3.0/24]
"#;

/// A second plain attachment for tenant beta, appended after lan-b; both route their own
/// part of the exchange space into their devices.
const SECOND_PLAIN: &str = r#"        kernel_routes: [100.64.0.0/16]
      - name: lan-b2
        type: plain
        tun: ixgw-beta2
        routes: [10.0.9.0/24]
        kernel_routes: [100.66.0.0/16]
"#;

pub(super) fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/test.yaml")
}

pub(super) fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_at(text, &config_path())
}

/// Replaces the one occurrence of `old` (which must exist) by `new`.
pub(super) fn edit(text: &str, old: &str, new: &str) -> String {
    assert_eq!(text.matches(old).count(), 1, "`{old}` must occur once");
    text.replacen(old, new, 1)
}

fn with_second_wg(text: &str) -> String {
    edit(
        text,
        "            allowed_ips: [10.0.2.0/24]\n",
        &format!("            allowed_ips: [10.0.2.0/24]\n{SECOND_WG}"),
    )
}

fn with_second_plain(text: &str) -> String {
    edit(
        text,
        "        routes: [10.0.0.0/16]\n",
        &format!("        routes: [10.0.0.0/16]\n{SECOND_PLAIN}"),
    )
}

/// 1-based line of the only line containing `needle`.
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "`{needle}` must be on exactly one line");
    hits[0]
}

/// 1-based line of the only line equal to `line`.
pub(super) fn line_eq(text: &str, line: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == line)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "`{line}` must be exactly one line");
    hits[0]
}

/// Asserts that `text` is rejected at `key`, on the line holding `line_needle`, with a
/// message containing every one of `values`. Returns the message.
#[track_caller]
pub(super) fn rejects(text: &str, key: &str, line_needle: &str, values: &[&str]) -> String {
    let err = match load(text) {
        Ok(_) => panic!("accepted, expected an error at {key}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    let line = line_of(text, line_needle);
    assert_eq!(err.key(), Some(key), "{msg}");
    assert_eq!(err.line(), Some(line), "{msg}");
    let prefix = format!("{}:{line}: {key}: ", config_path().display());
    assert!(
        msg.starts_with(&prefix),
        "{msg:?} should start with {prefix:?}"
    );
    for v in values {
        assert!(msg.contains(v), "{msg:?} should contain {v:?}");
    }
    msg
}

pub(super) fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ixgw-config-test-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write temp key file");
    path
}

#[test]
fn base_is_valid() {
    let c = load(BASE).expect("BASE validates");
    assert_eq!(c.tenants.len(), 2);
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.policies.len(), 2);
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ixgw.yaml");
    let c = Config::load(&path).expect("config/ixgw.yaml validates");
    assert_eq!(c.source, path);
    assert_eq!(c.ix.name, "kyushu-ix");
    let names: Vec<_> = c.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ajisai-net", "mame-net", "claims"]);
    // The two regional networks share their internal range and differ in exchange space.
    assert_eq!(
        c.tenants[0].networks[0].internal,
        c.tenants[1].networks[0].internal
    );
    assert_ne!(
        c.tenants[0].networks[0].exchange,
        c.tenants[1].networks[0].exchange
    );

    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("ajisai-wg is a wireguard attachment");
    };
    let key_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-keys/ajisai-wg.key"),
    )
    .expect("example key");
    assert_eq!(Some(wg.private_key.clone()), decode_key(key_text.trim()));
    let omura = &wg.peers[0];
    assert_eq!(omura.facility.to_string(), "4212345674");
    assert!(omura.preshared_key.is_some());
    assert_eq!(omura.persistent_keepalive, Some(25));
    assert_eq!(omura.address, Some("10.0.1.1/24".parse().unwrap()));
    assert_eq!(
        wg.peers[1].endpoint,
        Some("198.51.100.7:51820".parse().unwrap())
    );

    let AttachmentKind::Plain(plain) = &c.tenants[2].attachments[0].kind else {
        panic!("claims-lan is a plain attachment");
    };
    assert_eq!(plain.tun, "ixgw-claims");
    assert_eq!(c.services[0].address, Ipv4Addr::new(192, 168, 50, 10));
    assert_eq!(
        c.policies[0].to,
        Destination::Services(vec!["online-claims".into()])
    );
    assert_eq!(c.policies[0].from.tenants, ["ajisai-net", "mame-net"]);
    let a = &c.agreements[0];
    assert_eq!(
        (a.consumer.as_str(), a.provider.as_str()),
        ("ajisai-net", "mame-net")
    );
    assert!(a.approved());
    assert_eq!(c.facilities.as_ref().map(Vec::len), Some(3));
    assert_eq!(c.dataplane, Dataplane::default());
}

#[test]
fn defaults_apply_when_keys_are_omitted() {
    let c = load(BASE).unwrap();
    assert_eq!(
        c.metrics.listen,
        "127.0.0.1:9477".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.dataplane, Dataplane::default());
    assert_eq!(c.ix.public_address, None);
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("wireguard");
    };
    assert_eq!(wg.mtu, 1420);
    assert_eq!(wg.peers[0].persistent_keepalive, None);
    assert_eq!(wg.peers[0].preshared_key, None);
    assert_eq!(wg.peers[0].endpoint, None);
    assert_eq!(
        wg.private_key_file,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-keys/ajisai-wg.key")
    );
    let AttachmentKind::Plain(plain) = &c.tenants[1].attachments[0].kind else {
        panic!("plain");
    };
    assert_eq!(plain.mtu, 1500);
    assert_eq!(plain.kernel_routes, vec![c.ix.exchange_space]);
    // A service policy without `allow` takes the service's own ports.
    assert!(c.policies[0].allow.is_empty());
}

#[test]
fn dataplane_values_and_durations() {
    let text = format!(
        "{BASE}dataplane:\n  flow_table_size: 1000\n  tcp_idle_timeout: 5m\n  udp_idle_timeout: 90\n  icmp_idle_timeout: 1h\n"
    );
    let d = load(&text).unwrap().dataplane;
    assert_eq!(d.flow_table_size, 1000);
    assert_eq!(d.workers, None, "one per core unless set");
    assert_eq!(d.tcp_idle_timeout, Duration::from_secs(300));
    assert_eq!(d.udp_idle_timeout, Duration::from_secs(90));
    assert_eq!(d.icmp_idle_timeout, Duration::from_secs(3600));
    let partial = load(&format!("{BASE}dataplane:\n  udp_idle_timeout: 25s\n"))
        .unwrap()
        .dataplane;
    assert_eq!(partial.udp_idle_timeout, Duration::from_secs(25));
    assert_eq!(
        partial.tcp_idle_timeout,
        Dataplane::default().tcp_idle_timeout
    );
}

#[test]
fn string_and_list_forms_are_equivalent() {
    let one = load(BASE).unwrap();
    let list = load(&edit(
        BASE,
        "from: { tenant: alpha }",
        "from: { tenant: [alpha] }",
    ))
    .unwrap();
    assert_eq!(one.policies[0].from, list.policies[0].from);
    assert_eq!(one.policies[0].from.tenants, ["alpha"]);

    let two = load(&edit(
        BASE,
        "from: { tenant: alpha, facility: \"4212345674\" }",
        "from: { tenant: [alpha, beta], facility: [\"4212345674\", 4240123457] }",
    ))
    .unwrap();
    assert_eq!(two.policies[1].from.tenants, ["alpha", "beta"]);
    let codes: Vec<_> = two.policies[1]
        .from
        .facilities
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(codes, ["4212345674", "4240123457"]);

    let svc = load(&edit(
        BASE,
        "to: { service: portal }",
        "to: { service: [portal] }",
    ))
    .unwrap();
    assert_eq!(
        svc.policies[0].to,
        Destination::Services(vec!["portal".into()])
    );
    let tenants = load(&edit(
        BASE,
        "to: { tenant: beta }",
        "to: { tenant: [beta, alpha] }",
    ))
    .unwrap();
    assert_eq!(
        tenants.policies[1].to,
        Destination::Tenants {
            tenants: vec!["beta".into(), "alpha".into()],
            prefixes: vec![]
        }
    );
}

#[test]
fn unquoted_ten_digit_facility_is_accepted() {
    let c = load(&edit(
        BASE,
        "facility: \"4240123457\"",
        "facility: 4240123457",
    ))
    .unwrap();
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("wireguard");
    };
    assert_eq!(wg.peers[1].facility.to_string(), "4240123457");
}

// ---- rejections ----

#[test]
fn rejects_overlapping_exchange_prefixes() {
    let text = edit(
        BASE,
        "exchange: 100.65.0.0/16",
        "exchange: 100.64.0.0/16 # dup",
    );
    let msg = rejects(
        &text,
        "tenants[1].networks[0].exchange",
        "# dup",
        &["100.64.0.0/16 overlaps tenants[0].networks[0].exchange"],
    );
    let first = line_of(BASE, "exchange: 100.64.0.0/16");
    assert!(msg.ends_with(&format!("(line {first})")), "{msg}");
    // A nested prefix overlaps as well, and names the other value.
    let text = edit(
        BASE,
        "        exchange: 100.65.0.0/16\n",
        "        exchange: 100.65.0.0/16\n      - internal: 172.16.0.0/24\n        exchange: 100.64.7.0/24 # nested\n",
    );
    rejects(
        &text,
        "tenants[1].networks[1].exchange",
        "# nested",
        &[&format!(
            "100.64.7.0/24 overlaps tenants[0].networks[0].exchange = 100.64.0.0/16 (line {})",
            line_of(BASE, "exchange: 100.64.0.0/16")
        )],
    );
}

#[test]
fn rejects_internal_exchange_length_mismatch() {
    let text = edit(BASE, "exchange: 100.65.0.0/16", "exchange: 100.65.0.0/24");
    rejects(
        &text,
        "tenants[1].networks[0].exchange",
        "100.65.0.0/24",
        &["10.0.0.0/16", "100.65.0.0/24", "differ in length"],
    );
}

#[test]
fn rejects_exchange_outside_exchange_space() {
    let text = edit(BASE, "exchange: 100.65.0.0/16", "exchange: 100.128.0.0/16");
    rejects(
        &text,
        "tenants[1].networks[0].exchange",
        "100.128.0.0/16",
        &["100.128.0.0/16 is outside ix.exchange_space 100.64.0.0/10"],
    );
}

#[test]
fn rejects_host_bits() {
    let text = edit(
        BASE,
        "      - internal: 10.0.0.0/16\n        exchange: 100.65",
        "      - internal: 10.0.0.1/16\n        exchange: 100.65",
    );
    rejects(
        &text,
        "tenants[1].networks[0].internal",
        "10.0.0.1/16",
        &["10.0.0.1/16 has host bits set", "10.0.0.0/16"],
    );
    let text = edit(
        BASE,
        "exchange_space: 100.64.0.0/10",
        "exchange_space: 100.64.0.1/10",
    );
    rejects(
        &text,
        "ix.exchange_space",
        "exchange_space",
        &["100.64.0.1/10"],
    );
}

#[test]
fn rejects_tenant_without_networks() {
    let text = edit(
        BASE,
        "    networks:\n      - internal: 10.0.0.0/16\n        exchange: 100.65.0.0/16\n",
        "",
    );
    rejects(
        &text,
        "tenants[1].networks",
        "- name: beta",
        &["`beta` has no networks"],
    );
    let text = edit(
        BASE,
        "    networks:\n      - internal: 10.0.0.0/16\n        exchange: 100.65.0.0/16\n",
        "    networks: []\n",
    );
    rejects(
        &text,
        "tenants[1].networks",
        "networks: []",
        &["`beta` has no networks"],
    );
}

#[test]
fn rejects_peer_without_facility() {
    let text = edit(BASE, "            facility: \"4240123457\"\n", "");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "- name: clinic-b",
        &["peer `clinic-b` has no `facility`"],
    );
}

#[test]
fn rejects_invalid_facility_codes() {
    let text = edit(BASE, "facility: \"4240123457\"", "facility: \"4840123456\"");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "4840123456",
        &["`4840123456` is not a facility code", "prefecture code 48"],
    );
    let text = edit(BASE, "facility: \"4240123457\"", "facility: \"42401x3456\"");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "42401x3456",
        &["42401x3456", "digits"],
    );
}

#[test]
fn facility_code_with_a_wrong_check_digit_shows_the_right_one() {
    let text = edit(BASE, "facility: \"4240123457\"", "facility: \"4240123456\"");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "4240123456",
        &[
            "`4240123456` is not a facility code",
            "check digit is 6, not 7",
            "the code is 4240123457",
        ],
    );
    let text = edit(BASE, "facility: \"4240123457\"", "facility: \"4250123457\"");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "4250123457",
        &["point table digit 5"],
    );
}

#[test]
fn unquoted_facility_that_lost_its_zero_asks_for_quotes() {
    let text = edit(BASE, "facility: \"4240123457\"", "facility: 112345673");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "112345673",
        &["112345673", "unquoted", "quote the code: \"0112345673\""],
    );
    // The same in a policy's facility list.
    let text = edit(
        BASE,
        "facility: \"4212345674\" }",
        "facility: [\"4212345674\", 112345673] }",
    );
    rejects(
        &text,
        "policies[1].from.facility[1]",
        "112345673]",
        &["quote the code: \"0112345673\""],
    );
    // Quoted, the operator meant it: no hint about quoting, just the length.
    let text = edit(BASE, "facility: \"4240123457\"", "facility: \"112345673\"");
    let msg = rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "112345673",
        &["`112345673` is not a facility code", "10 digits"],
    );
    assert!(!msg.contains("quote"), "{msg}");
}

#[test]
fn rejects_unknown_keys_anywhere() {
    let text = edit(
        BASE,
        "            allowed_ips: [10.0.2.0/24]\n",
        "            allowed_ips: [10.0.2.0/24]\n            allowd_ips: [10.0.3.0/24]\n",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].allowd_ips",
        "allowd_ips",
        &["unknown key `allowd_ips`"],
    );
    let text = format!("{BASE}listen: 1.2.3.4:5\n");
    rejects(
        &text,
        "listen",
        "listen: 1.2.3.4:5",
        &["unknown key `listen`"],
    );
    let text = edit(
        BASE,
        "to: { tenant: beta }",
        "to: { tenant: beta, port: 5 }",
    );
    rejects(
        &text,
        "policies[1].to.port",
        "port: 5",
        &["unknown key `port`"],
    );
    // A key of the other attachment type.
    let text = edit(
        BASE,
        "        tun: ixgw-beta\n",
        "        tun: ixgw-beta\n        listen: 0.0.0.0:1\n",
    );
    rejects(
        &text,
        "tenants[1].attachments[0].listen",
        "0.0.0.0:1",
        &["unknown key `listen` for a plain attachment"],
    );
    let text = edit(BASE, "        type: plain\n", "        type: openvpn\n");
    rejects(
        &text,
        "tenants[1].attachments[0].type",
        "openvpn",
        &["unknown attachment type `openvpn` (expected `wireguard`, `plain`, `ipsec`, `ethernet` or `tls`)"],
    );
}

/// Each attachment type is read into a struct of its own; errors inside it keep their key path
/// and line.
#[test]
fn attachment_errors_keep_their_key_path_and_line() {
    let text = edit(
        BASE,
        "        tun: ixgw-beta\n",
        "        tun: ixgw-beta\n        mtu: big\n",
    );
    rejects(
        &text,
        "tenants[1].attachments[0].mtu",
        "mtu: big",
        &["expected a whole number"],
    );
    let text = edit(
        BASE,
        "            allowed_ips: [10.0.2.0/24]\n",
        "            allowed_ips: { a: 1 }\n",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].allowed_ips",
        "allowed_ips: { a: 1 }",
        &["expected a sequence"],
    );
    let text = edit(BASE, "        type: plain\n", "");
    rejects(
        &text,
        "tenants[1].attachments[0].type",
        "- name: lan-b",
        &["missing key `type`"],
    );
    let text = edit(BASE, "        type: plain\n", "        type: [plain]\n");
    rejects(
        &text,
        "tenants[1].attachments[0].type",
        "type: [plain]",
        &["expected a string"],
    );
    let text = edit(
        BASE,
        "          - name: clinic-b\n",
        "          - facility: \"4240123457\" # no name\n",
    );
    let text = edit(&text, "            facility: \"4240123457\"\n", "");
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].name",
        "# no name",
        &["missing key `name`"],
    );
}

#[test]
fn rejects_duplicate_tenant_names() {
    let text = edit(BASE, "  - name: beta", "  - name: alpha # dup");
    rejects(
        &text,
        "tenants[1].name",
        "# dup",
        &[
            "duplicate tenant name `alpha`",
            &format!("tenants[0].name, line {}", line_eq(BASE, "  - name: alpha")),
        ],
    );
}

#[test]
fn rejects_duplicate_attachment_names_across_tenants() {
    let text = edit(BASE, "- name: lan-b", "- name: alpha-wg # dup");
    rejects(
        &text,
        "tenants[1].attachments[0].name",
        "# dup",
        &[
            "duplicate attachment name `alpha-wg`",
            &format!(
                "tenants[0].attachments[0].name, line {}",
                line_of(BASE, "- name: alpha-wg")
            ),
        ],
    );
}

#[test]
fn rejects_duplicate_peer_names_across_attachments() {
    let text = edit(
        &with_second_wg(BASE),
        "- name: clinic-c",
        "- name: clinic-a # dup",
    );
    rejects(
        &text,
        "tenants[0].attachments[1].peers[0].name",
        "# dup",
        &[
            "duplicate peer name `clinic-a`",
            &format!(
                "tenants[0].attachments[0].peers[0].name, line {}",
                line_of(BASE, "- name: clinic-a")
            ),
        ],
    );
}

#[test]
fn rejects_duplicate_service_and_policy_names() {
    let text = edit(
        BASE,
        "policies:\n",
        "  - name: portal # dup\n    tenant: beta\n    address: 10.0.0.11\n    ports: [tcp/80]\npolicies:\n",
    );
    rejects(
        &text,
        "services[1].name",
        "# dup",
        &["duplicate service name `portal`"],
    );
    let text = edit(
        BASE,
        "- name: alpha-to-beta",
        "- name: alpha-to-portal # dup",
    );
    rejects(
        &text,
        "policies[1].name",
        "# dup",
        &[
            "duplicate policy name `alpha-to-portal`",
            "policies[0].name",
        ],
    );
}

#[test]
fn rejects_duplicate_public_keys_in_an_attachment() {
    let text = edit(
        BASE,
        "public_key: G7llhqvQlPDzCzEV7hb/UeO9jOC4nmMCP8IwqG3wkTk=",
        "public_key: FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA= # dup",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].public_key",
        "# dup",
        &[
            "FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA=",
            "tenants[0].attachments[0].peers[0].public_key",
        ],
    );
}

#[test]
fn rejects_malformed_public_key() {
    let text = edit(
        BASE,
        "public_key: G7llhqvQlPDzCzEV7hb/UeO9jOC4nmMCP8IwqG3wkTk=",
        "public_key: AAAA",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].public_key",
        "AAAA",
        &["`AAAA`"],
    );
}

#[test]
fn rejects_allowed_ips_outside_tenant() {
    let text = edit(
        BASE,
        "allowed_ips: [10.0.2.0/24]",
        "allowed_ips: [10.0.2.0/24, 10.1.0.0/24]",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].allowed_ips[1]",
        "10.1.0.0/24",
        &["10.1.0.0/24 is not inside an internal prefix of tenant `alpha` (10.0.0.0/16)"],
    );
}

#[test]
fn rejects_overlapping_allowed_ips_of_one_tenant() {
    let text = edit(
        BASE,
        "allowed_ips: [10.0.2.0/24]",
        "allowed_ips: [10.0.1.128/25]",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].allowed_ips[0]",
        "10.0.1.128/25",
        &[&format!(
            "10.0.1.128/25 overlaps tenants[0].attachments[0].peers[0].allowed_ips[0] = 10.0.1.0/24 (line {})",
            line_of(BASE, "10.0.1.0/24")
        )],
    );
    // Across attachments of the tenant too.
    let text = edit(
        &with_second_wg(BASE),
        "allowed_ips: [10.0.3.0/24]",
        "allowed_ips: [10.0.2.0/24] # dup",
    );
    rejects(
        &text,
        "tenants[0].attachments[1].peers[0].allowed_ips[0]",
        "# dup",
        &["overlaps tenants[0].attachments[0].peers[1].allowed_ips[0]"],
    );
}

#[test]
fn overlapping_allowed_ips_of_different_tenants_are_fine() {
    let text = edit(BASE, "routes: [10.0.0.0/16]", "routes: [10.0.0.0/23]");
    assert!(load(&text).is_ok());
}

#[test]
fn rejects_a_service_no_attachment_routes() {
    let text = edit(BASE, "routes: [10.0.0.0/16]", "routes: [10.0.1.0/24]");
    rejects(
        &text,
        "services[0].address",
        "address: 10.0.0.10",
        &["10.0.0.10", "`beta`", "unreachable"],
    );
}

#[test]
fn rejects_plain_routes_outside_tenant() {
    let text = edit(BASE, "routes: [10.0.0.0/16]", "routes: [10.2.0.0/16]");
    rejects(
        &text,
        "tenants[1].attachments[0].routes[0]",
        "10.2.0.0/16",
        &["10.2.0.0/16 is not inside an internal prefix of tenant `beta`"],
    );
}

#[test]
fn rejects_unreachable_service_and_unknown_tenant() {
    let text = edit(BASE, "address: 10.0.0.10", "address: 10.9.0.10");
    rejects(
        &text,
        "services[0].address",
        "10.9.0.10",
        &["10.9.0.10 is not inside an internal prefix of tenant `beta` (10.0.0.0/16)"],
    );
    let text = edit(BASE, "    tenant: beta\n", "    tenant: gamma\n");
    rejects(
        &text,
        "services[0].tenant",
        "gamma",
        &["unknown tenant `gamma`"],
    );
}

#[test]
fn rejects_policies_naming_nothing() {
    let text = edit(
        BASE,
        "from: { tenant: alpha }",
        "from: { tenant: [alpha, gamma] }",
    );
    rejects(
        &text,
        "policies[0].from.tenant[1]",
        "gamma",
        &["unknown tenant `gamma`"],
    );
    let text = edit(BASE, "to: { service: portal }", "to: { service: portl }");
    rejects(
        &text,
        "policies[0].to.service",
        "portl",
        &["unknown service `portl`"],
    );
    let text = edit(
        BASE,
        "facility: \"4212345674\" }",
        "facility: \"0112345673\" }",
    );
    rejects(
        &text,
        "policies[1].from.facility",
        "0112345673",
        &["no peer has facility 0112345673 in tenant alpha"],
    );
    // A facility of another tenant is not in this policy's source tenant either.
    let text = edit(
        &with_second_wg(BASE),
        "from: { tenant: alpha, facility: \"4212345674\" }",
        "from: { tenant: beta, facility: \"4212345674\" }",
    );
    rejects(
        &text,
        "policies[1].from.facility",
        "tenant: beta, facility",
        &["4212345674", "tenant beta"],
    );
    let text = edit(
        BASE,
        "to: { tenant: beta }",
        "to: { tenant: beta, prefixes: [10.5.0.0/24] }",
    );
    rejects(
        &text,
        "policies[1].to.prefixes[0]",
        "10.5.0.0/24",
        &["10.5.0.0/24", "beta"],
    );
}

#[test]
fn rejects_tenant_policy_without_allow() {
    let text = edit(BASE, "    allow: [icmp]\n", "");
    rejects(
        &text,
        "policies[1].allow",
        "- name: alpha-to-beta",
        &["needs `allow`"],
    );
}

#[test]
fn rejects_allow_outside_service_ports() {
    let text = edit(
        BASE,
        "    to: { service: portal }\n",
        "    to: { service: portal }\n    allow: [tcp/443, tcp/80]\n",
    );
    rejects(
        &text,
        "policies[0].allow[1]",
        "tcp/80]",
        &["tcp/80 is not among the ports of service portal (tcp/443, udp/5000-5100)"],
    );
    let narrowed = edit(
        BASE,
        "    to: { service: portal }\n",
        "    to: { service: portal }\n    allow: [udp/5050-5060]\n",
    );
    let c = load(&narrowed).unwrap();
    assert_eq!(
        c.policies[0].allow,
        vec![PortRule {
            protocol: Protocol::Udp,
            ports: Some((5050, 5060))
        }]
    );
}

#[test]
fn rejects_destination_with_both_or_neither() {
    let text = edit(
        BASE,
        "to: { tenant: beta }",
        "to: { tenant: beta, service: portal }",
    );
    rejects(
        &text,
        "policies[1].to",
        "tenant: beta, service: portal",
        &["either `tenant` or `service`"],
    );
    let text = edit(BASE, "to: { tenant: beta }", "to: {}");
    rejects(
        &text,
        "policies[1].to",
        "to: {}",
        &["must name a `tenant` or a `service`"],
    );
}

#[test]
fn rejects_two_attachments_on_one_socket() {
    let text = edit(
        &with_second_wg(BASE),
        "listen: 0.0.0.0:51821",
        "listen: 192.0.2.1:51820",
    );
    rejects(
        &text,
        "tenants[0].attachments[1].listen",
        "192.0.2.1:51820",
        &[&format!(
            "192.0.2.1:51820 is already used by tenants[0].attachments[0].listen (line {})",
            line_of(BASE, "listen: 0.0.0.0:51820")
        )],
    );
}

#[test]
fn rejects_two_plain_attachments_on_one_tun() {
    let text = edit(
        &with_second_plain(BASE),
        "tun: ixgw-beta2",
        "tun: ixgw-beta # dup",
    );
    rejects(
        &text,
        "tenants[1].attachments[1].tun",
        "# dup",
        &["TUN device `ixgw-beta` is already used by tenants[1].attachments[0].tun"],
    );
    let text = edit(BASE, "tun: ixgw-beta", "tun: a-very-long-tun-name");
    rejects(
        &text,
        "tenants[1].attachments[0].tun",
        "a-very-long",
        &["a-very-long-tun-name"],
    );
}

#[test]
fn rejects_overlapping_kernel_routes_of_plain_attachments() {
    let two = edit(
        &with_second_plain(BASE),
        "routes: [10.0.0.0/16]",
        "routes: [10.0.0.0/24]",
    );
    load(&two).expect("disjoint kernel_routes validate");
    let nested = edit(
        &two,
        "kernel_routes: [100.64.0.0/16]",
        "kernel_routes: [100.64.0.0/16, 100.64.1.0/24]",
    );
    load(&nested).expect("overlapping kernel_routes of one attachment validate");

    let text = edit(
        &two,
        "kernel_routes: [100.66.0.0/16]",
        "kernel_routes: [100.66.0.0/16, 100.64.7.0/24]",
    );
    rejects(
        &text,
        "tenants[1].attachments[1].kernel_routes[1]",
        "100.64.7.0/24",
        &[&format!(
            "100.64.7.0/24 overlaps tenants[1].attachments[0].kernel_routes[0] = 100.64.0.0/16 (line {}); the kernel routes a prefix into one device only",
            line_of(&text, "[100.64.0.0/16]")
        )],
    );

    // Both left at the default: both route ix.exchange_space.
    let text = edit(&two, "        kernel_routes: [100.64.0.0/16]\n", "");
    let text = edit(&text, "        kernel_routes: [100.66.0.0/16]\n", "");
    rejects(
        &text,
        "tenants[1].attachments[1].kernel_routes",
        "name: lan-b2",
        &[
            &format!(
                "100.64.0.0/10 (the default, ix.exchange_space) overlaps tenants[1].attachments[0].kernel_routes = 100.64.0.0/10 (the default, ix.exchange_space) (line {})",
                line_eq(&text, "      - name: lan-b")
            ),
            "set `kernel_routes` on these plain attachments",
        ],
    );

    // One at the default, the other inside it.
    let text = edit(&two, "        kernel_routes: [100.64.0.0/16]\n", "");
    rejects(
        &text,
        "tenants[1].attachments[1].kernel_routes[0]",
        "[100.66.0.0/16]",
        &[
            "100.66.0.0/16 overlaps tenants[1].attachments[0].kernel_routes = 100.64.0.0/10 (the default, ix.exchange_space)",
            "set `kernel_routes` on these plain attachments",
        ],
    );
    // `[]` routes nothing, so the other may keep the default.
    let text = edit(&two, "kernel_routes: [100.66.0.0/16]", "kernel_routes: []");
    let text = edit(&text, "        kernel_routes: [100.64.0.0/16]\n", "");
    load(&text).expect("an empty kernel_routes overlaps nothing");
}

#[test]
fn rejects_mtu_out_of_range() {
    for (mtu, ok) in [
        (575, false),
        (576, true),
        (1500, true),
        (1501, false),
        (70000, false),
    ] {
        let text = edit(
            BASE,
            "        listen: 0.0.0.0:51820\n",
            &format!("        listen: 0.0.0.0:51820\n        mtu: {mtu}\n"),
        );
        if ok {
            assert!(load(&text).is_ok(), "wireguard mtu {mtu}");
        } else {
            rejects(
                &text,
                "tenants[0].attachments[0].mtu",
                &format!("mtu: {mtu}"),
                &[&format!(
                    "mtu {mtu} is out of range for a wireguard attachment (576..=1500)"
                )],
            );
        }
    }
    let text = edit(
        BASE,
        "        tun: ixgw-beta\n",
        "        tun: ixgw-beta\n        mtu: 1501\n",
    );
    rejects(
        &text,
        "tenants[1].attachments[0].mtu",
        "1501",
        &["1501", "plain", "576..=1500"],
    );
}

#[test]
fn rejects_unreadable_key_file() {
    let text = edit(
        BASE,
        "example-keys/ajisai-wg.key",
        "example-keys/missing.key",
    );
    let missing = config_path()
        .parent()
        .unwrap()
        .join("example-keys/missing.key");
    rejects(
        &text,
        "tenants[0].attachments[0].private_key_file",
        "missing.key",
        &[&format!("cannot read key file {}", missing.display())],
    );
}

#[test]
fn rejects_malformed_key_files() {
    let cases: [(&str, &[u8], &str); 4] = [
        ("garbage", b"not a key at all\n", "not base64 of 32 bytes"),
        ("short", b"AAAAAAAAAAAAAAAAAAAAAA==\n", "not base64 of 32 bytes"),
        ("empty", b"\n", "the file is empty"),
        (
            "two-lines",
            b"FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA=\nFNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA=\n",
            "more than one line",
        ),
    ];
    for (name, contents, reason) in cases {
        let file = temp_file(name, contents);
        let text = edit(
            BASE,
            "            allowed_ips: [10.0.1.0/24]\n",
            &format!(
                "            allowed_ips: [10.0.1.0/24]\n            preshared_key_file: {}\n",
                file.display()
            ),
        );
        let msg = rejects(
            &text,
            "tenants[0].attachments[0].peers[0].preshared_key_file",
            "preshared_key_file",
            &[&file.display().to_string(), reason],
        );
        if name == "garbage" {
            assert!(
                !msg.contains("not a key at all"),
                "key file contents must not leak: {msg}"
            );
        }
        let _ = std::fs::remove_file(file);
    }
    // A well-formed key file with a trailing newline is accepted.
    let good = temp_file("good", b"FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA=\n");
    let text = edit(
        BASE,
        "example-keys/ajisai-wg.key",
        &good.display().to_string(),
    );
    let c = load(&text).unwrap();
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("wireguard");
    };
    assert_eq!(
        Some(wg.private_key.clone()),
        decode_key("FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA=")
    );
    let _ = std::fs::remove_file(good);
}

#[test]
fn rejects_bad_port_rules() {
    for (rule, reason) in [
        ("tcp/2000-1000", "the range's first port is above its last"),
        ("tcp/0", "port 0"),
        ("sctp/443", "unknown protocol"),
        ("icmp/8", "only tcp and udp take ports"),
        ("udp/70000", "a port is a number in 1..=65535"),
    ] {
        let text = edit(
            BASE,
            "ports: [tcp/443, udp/5000-5100]",
            &format!("ports: [tcp/443, {rule}]"),
        );
        rejects(
            &text,
            "services[0].ports[1]",
            "ports: [",
            &[&format!("`{rule}` is not a port rule: {reason}")],
        );
    }
    let text = edit(BASE, "allow: [icmp]", "allow: [icmp, tcp/99999]");
    rejects(&text, "policies[1].allow[1]", "tcp/99999", &["tcp/99999"]);
}

#[test]
fn rejects_bad_durations_and_ranges() {
    let text = edit(
        BASE,
        "            allowed_ips: [10.0.1.0/24]\n",
        "            allowed_ips: [10.0.1.0/24]\n            persistent_keepalive: 25 sec\n",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[0].persistent_keepalive",
        "25 sec",
        &["`25 sec` is not a duration"],
    );
    let text = edit(
        BASE,
        "            allowed_ips: [10.0.1.0/24]\n",
        "            allowed_ips: [10.0.1.0/24]\n            persistent_keepalive: 24h\n",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[0].persistent_keepalive",
        "24h",
        &["86400 is out of range (1..=65535)"],
    );
    let text = format!("{BASE}dataplane:\n  flow_table_size: 0\n");
    rejects(
        &text,
        "dataplane.flow_table_size",
        "flow_table_size",
        &["0 is out of range"],
    );
}

#[test]
fn type_errors_carry_key_and_line() {
    let text = edit(
        BASE,
        "        tun: ixgw-beta\n",
        "        tun: ixgw-beta\n        mtu: big\n",
    );
    rejects(
        &text,
        "tenants[1].attachments[0].mtu",
        "mtu: big",
        &["invalid type: string \"big\", expected a whole number"],
    );
    let text = edit(BASE, "      - name: lan-b\n", "      - nam: lan-b\n");
    rejects(
        &text,
        "tenants[1].attachments[0].nam",
        "nam: lan-b",
        &["unknown key `nam`"],
    );
}

#[test]
fn directed_broadcast_is_opt_in_per_peer_and_plain_attachment() {
    let c = load(BASE).unwrap();
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("wireguard");
    };
    assert!(wg.peers.iter().all(|p| !p.directed_broadcast));
    let AttachmentKind::Plain(plain) = &c.tenants[1].attachments[0].kind else {
        panic!("plain");
    };
    assert!(!plain.directed_broadcast);

    let text = edit(
        BASE,
        "            allowed_ips: [10.0.2.0/24]\n",
        "            allowed_ips: [10.0.2.0/24]\n            directed_broadcast: true\n",
    );
    let text = edit(
        &text,
        "        tun: ixgw-beta\n",
        "        tun: ixgw-beta\n        directed_broadcast: true\n",
    );
    let c = load(&text).unwrap();
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("wireguard");
    };
    assert_eq!(
        wg.peers
            .iter()
            .map(|p| p.directed_broadcast)
            .collect::<Vec<_>>(),
        [false, true]
    );
    let AttachmentKind::Plain(plain) = &c.tenants[1].attachments[0].kind else {
        panic!("plain");
    };
    assert!(plain.directed_broadcast);
    let text = edit(
        &text,
        "        directed_broadcast: true\n        routes",
        "        directed_broadcast: false\n        routes",
    );
    let AttachmentKind::Plain(plain) = &load(&text).unwrap().tenants[1].attachments[0].kind else {
        panic!("plain");
    };
    assert!(!plain.directed_broadcast);

    // A WireGuard attachment takes it per peer, not as a whole.
    let text = edit(
        BASE,
        "        listen: 0.0.0.0:51820\n",
        "        listen: 0.0.0.0:51820\n        directed_broadcast: true\n",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].directed_broadcast",
        "directed_broadcast",
        &["unknown key `directed_broadcast` for a wireguard attachment"],
    );
    // Only a boolean.
    let text = edit(
        BASE,
        "        tun: ixgw-beta\n",
        "        tun: ixgw-beta\n        directed_broadcast: sometimes\n",
    );
    rejects(
        &text,
        "tenants[1].attachments[0].directed_broadcast",
        "directed_broadcast",
        &["sometimes"],
    );
}

#[test]
fn non_mapping_document_is_rejected() {
    let err = load("- 1\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 1, .. }), "{err}");
    assert!(err.to_string().ends_with("expected a mapping"), "{err}");
    let err = load("").unwrap_err();
    assert_eq!(err.key(), Some("ix"), "{err}");
    assert!(err.to_string().contains("missing key `ix`"), "{err}");
}

#[test]
fn syntax_errors_carry_the_line() {
    let text = edit(
        BASE,
        "    ports: [tcp/443, udp/5000-5100]\n",
        "    ports: [tcp/443, udp/5000-5100\n",
    );
    let err = load(&text).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{msg}");
    let line = err.line().unwrap();
    assert!(
        (line_of(&text, "udp/5000-5100")..=text.lines().count() + 1).contains(&line),
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!("{}:{line}: ", config_path().display())),
        "{msg}"
    );
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("25s"), Some(Duration::from_secs(25)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_duration("42"), Some(Duration::from_secs(42)));
    for bad in ["", "s", "5x", "-5s", "1.5h", "5 m", "99999999999999999999h"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn port_rules_parse() {
    let r = |p, ports| PortRule { protocol: p, ports };
    assert_eq!(
        parse_port_rule("tcp/443"),
        Ok(r(Protocol::Tcp, Some((443, 443))))
    );
    assert_eq!(
        parse_port_rule("tcp/1000-2000"),
        Ok(r(Protocol::Tcp, Some((1000, 2000))))
    );
    assert_eq!(
        parse_port_rule("UDP/53"),
        Ok(r(Protocol::Udp, Some((53, 53))))
    );
    assert_eq!(parse_port_rule("udp"), Ok(r(Protocol::Udp, None)));
    assert_eq!(parse_port_rule("icmp"), Ok(r(Protocol::Icmp, None)));
    assert_eq!(parse_port_rule("any"), Ok(r(Protocol::Any, None)));
    assert!(parse_port_rule("any/80").is_err());
    assert!(parse_port_rule("tcp/").is_err());
}

#[test]
fn coverage_of_port_rules() {
    let rule = |s| parse_port_rule(s).unwrap();
    assert!(covers(&rule("tcp"), &rule("tcp/443")));
    assert!(covers(&rule("any"), &rule("icmp")));
    assert!(covers(&rule("tcp/400-500"), &rule("tcp/443-450")));
    assert!(!covers(&rule("tcp/443"), &rule("tcp")));
    assert!(!covers(&rule("tcp/443"), &rule("udp/443")));
    assert!(!covers(&rule("tcp/400-500"), &rule("tcp/450-501")));
    assert!(!covers(&rule("tcp"), &rule("any")));
}

fn arb_prefix() -> impl Strategy<Value = Ipv4Network> {
    // A small address range so that overlaps are common.
    (0u32..4096, 20u8..=32).prop_map(|(a, len)| {
        let addr = Ipv4Addr::from(0x0a00_0000 | (a << 8 >> 8));
        let net = Ipv4Network::new(addr, len).unwrap();
        Ipv4Network::new(net.network(), len).unwrap()
    })
}

proptest! {
    #[test]
    fn sweep_finds_an_overlap_iff_one_exists(nets in proptest::collection::vec(arb_prefix(), 0..12)) {
        let items: Vec<Keyed> = nets.iter().enumerate().map(|(i, n)| (*n, i.to_string())).collect();
        let any_pair = (0..nets.len())
            .any(|i| (0..i).any(|j| nets[i].overlaps(nets[j])));
        match first_overlap(&items) {
            None => prop_assert!(!any_pair),
            Some((later, earlier)) => {
                prop_assert!(earlier < later);
                prop_assert!(nets[later].overlaps(nets[earlier]));
            }
        }
    }
}

#[test]
fn port_zero_listeners_never_clash() {
    let a: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let w: std::net::SocketAddr = "0.0.0.0:0".parse().unwrap();
    assert!(!super::same_socket(a, a), "kernel-chosen ports never clash");
    assert!(!super::same_socket(a, w));
    let p: std::net::SocketAddr = "127.0.0.1:51820".parse().unwrap();
    let q: std::net::SocketAddr = "0.0.0.0:51820".parse().unwrap();
    assert!(super::same_socket(p, p));
    assert!(super::same_socket(p, q));
}

mod fuzz_props {
    use proptest::prelude::*;

    const EXAMPLE: &str = include_str!("../../../config/ixgw.yaml");

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
            crate::config::fuzz_parse(&data);
        }

        /// The example with a few bytes changed, inserted or removed: an error, never a panic.
        #[test]
        fn mutated_example_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)) {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            for (at, b, op) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ if at < bytes.len() => { bytes.remove(at); }
                    _ => {}
                }
            }
            crate::config::fuzz_parse(&bytes);
        }
    }
}

#[test]
fn flow_quotas_are_numbers_or_shares_of_the_table() {
    let d = load(&format!(
        "{BASE}dataplane:\n  flow_table_size: 1000\n  max_flows_per_tenant: 25%\n  max_flows_per_facility: 30\n"
    ))
    .unwrap()
    .dataplane;
    assert_eq!(d.max_flows_per_tenant, FlowLimit::Percent(25.0));
    assert_eq!(d.max_flows_per_facility, FlowLimit::Flows(30));
    assert_eq!(d.max_flows_per_tenant.flows(d.flow_table_size), 250);
    assert_eq!(d.max_flows_per_facility.flows(d.flow_table_size), 30);
    let d = load(&format!(
        "{BASE}dataplane:\n  max_flows_per_facility: \"12.5 %\"\n"
    ))
    .unwrap()
    .dataplane;
    assert_eq!(d.max_flows_per_facility, FlowLimit::Percent(12.5));
    assert_eq!(
        d.max_flows_per_tenant,
        Dataplane::default().max_flows_per_tenant
    );
    assert_eq!(FlowLimit::Percent(10.0).flows(131_072), 13_107);
    assert_eq!(
        FlowLimit::Percent(0.001).flows(10),
        1,
        "never below one flow"
    );
    let defaults = Dataplane::default();
    assert_eq!(
        (
            defaults.max_flows_per_tenant,
            defaults.max_flows_per_facility
        ),
        (FlowLimit::Percent(25.0), FlowLimit::Percent(10.0))
    );
}

#[test]
fn rejects_flow_quotas_that_are_no_limit() {
    for (value, needle) in [
        ("0%", "`0%` is not a flow limit"),
        ("100.5%", "`100.5%` is not a flow limit"),
        ("-5%", "`-5%` is not a flow limit"),
        ("nan%", "`nan%` is not a flow limit"),
        ("half", "`half` is not a flow limit"),
        ("[1, 2]", "is not a flow limit"),
        ("0", "0 is out of range (1..=16777216)"),
        ("16777217", "16777217 is out of range"),
        ("-3", "`-3` is not a flow limit"),
    ] {
        let text = format!("{BASE}dataplane:\n  max_flows_per_facility: {value}\n");
        rejects(
            &text,
            "dataplane.max_flows_per_facility",
            "max_flows_per_facility",
            &[needle],
        );
    }
}

/// Secrets readable by every user are warned about; the owner's and the group's are not.
#[test]
fn key_files_readable_by_others_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let key = temp_file(
        "perm.key",
        b"GJE3cB8ZhfbzwQ+mfsGHFsTqjqlzVvwKoEYBbrxBZ1c=\n",
    );
    let text = edit(
        BASE,
        "private_key_file: example-keys/ajisai-wg.key",
        &format!("private_key_file: {}", key.display()),
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = load(&text).unwrap();
    let w: Vec<&str> = c.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.key == "tenants[0].attachments[0].private_key_file"
                && w.message.contains("is readable by every user (mode 0644)")),
        "{w:?}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = load(&text).unwrap();
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.message.contains("readable by every user")),
        "{:?}",
        c.warnings
    );
    let _ = std::fs::remove_file(key);
}

/// With systemd's LoadCredential=, a relative key file name is found in
/// $CREDENTIALS_DIRECTORY (before the configuration's directory).
#[test]
fn relative_key_files_are_found_in_the_credentials_directory() {
    let dir = std::env::temp_dir().join(format!("ixgw-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("only-in-credentials.key"),
        "GJE3cB8ZhfbzwQ+mfsGHFsTqjqlzVvwKoEYBbrxBZ1c=\n",
    )
    .unwrap();
    let text = edit(
        BASE,
        "private_key_file: example-keys/ajisai-wg.key",
        "private_key_file: only-in-credentials.key",
    );
    assert!(load(&text).is_err(), "not beside the configuration");
    // Safe in edition 2021; the variable only redirects a file no other test names.
    std::env::set_var("CREDENTIALS_DIRECTORY", &dir);
    let loaded = load(&text);
    std::env::remove_var("CREDENTIALS_DIRECTORY");
    let c = loaded.expect("found in the credentials directory");
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("alpha-wg is a WireGuard attachment");
    };
    assert_eq!(wg.private_key_file, dir.join("only-in-credentials.key"));

    // `LoadCredential=keys:DIR` names DIR/a.key `keys_a.key`: `keys/a.key` finds it.
    std::fs::rename(
        dir.join("only-in-credentials.key"),
        dir.join("keys_only-in-credentials.key"),
    )
    .unwrap();
    let text = edit(
        BASE,
        "private_key_file: example-keys/ajisai-wg.key",
        "private_key_file: keys/only-in-credentials.key",
    );
    std::env::set_var("CREDENTIALS_DIRECTORY", &dir);
    let loaded = load(&text);
    std::env::remove_var("CREDENTIALS_DIRECTORY");
    let c = loaded.expect("found as keys_only-in-credentials.key");
    let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
        panic!("alpha-wg is a WireGuard attachment");
    };
    assert_eq!(
        wg.private_key_file,
        dir.join("keys_only-in-credentials.key")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peer_series_defaults_to_all_and_reads_each_word() {
    assert_eq!(load(BASE).unwrap().metrics.peer_series, PeerSeries::All);
    for (word, want) in [
        ("all", PeerSeries::All),
        ("state", PeerSeries::State),
        ("none", PeerSeries::None),
        ("\" state \"", PeerSeries::State),
    ] {
        let text = format!("{BASE}metrics:\n  peer_series: {word}\n");
        assert_eq!(load(&text).unwrap().metrics.peer_series, want, "{word}");
    }
}

#[test]
fn peer_series_rejects_other_values_at_its_line() {
    for (word, shown) in [("some", "`some`"), ("\"\"", "``"), ("100", "`100`")] {
        let text = format!("{BASE}metrics:\n  listen: 127.0.0.1:9477\n  peer_series: {word}\n");
        rejects(
            &text,
            "metrics.peer_series",
            "  peer_series:",
            &[shown, "all, state or none"],
        );
    }
}

/// `BASE` with `extra` more peers on alpha-wg (one /32 each of 10.0.16.0/20).
fn with_peers(extra: usize) -> String {
    let mut peers = String::new();
    for i in 0..extra {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        peers.push_str(&format!(
            "          - name: many-{i}\n            facility: \"4212345674\"\n            public_key: {key}\n            allowed_ips: [10.0.{}.{}/32]\n",
            16 + i / 256,
            i % 256
        ));
    }
    edit(
        BASE,
        "            allowed_ips: [10.0.2.0/24]\n",
        &format!("            allowed_ips: [10.0.2.0/24]\n{peers}"),
    )
}

/// More than 2,000 peers and no `peer_series`: `ixgw check` says what the default costs, at
/// the `metrics:` line if there is one; saying `all` (or another mode) silences it.
#[test]
fn many_peers_without_peer_series_warn() {
    let peer_series = |c: &Config| -> Vec<String> {
        (c.warnings.iter())
            .filter(|w| w.key == "metrics.peer_series")
            .map(|w| w.to_string())
            .collect()
    };
    let at_limit = with_peers(PEER_SERIES_WARN_PEERS - 2);
    assert!(peer_series(&load(&at_limit).unwrap()).is_empty());

    let many = with_peers(PEER_SERIES_WARN_PEERS - 1);
    let w = peer_series(&load(&many).unwrap());
    assert_eq!(w.len(), 1, "{w:?}");
    let file = config_path().display().to_string();
    assert!(
        w[0].starts_with(&format!(
            "{file}: metrics.peer_series: warning: 2001 peers export 18009 per-peer series"
        )),
        "{}",
        w[0]
    );
    let with_section = format!("{many}metrics:\n  listen: 127.0.0.1:9477\n");
    let w = peer_series(&load(&with_section).unwrap());
    let line = line_eq(&with_section, "metrics:");
    assert!(
        w[0].starts_with(&format!("{file}:{line}: metrics.peer_series: warning: ")),
        "{}",
        w[0]
    );
    for word in ["all", "state", "none"] {
        let said = format!("{many}metrics:\n  peer_series: {word}\n");
        assert!(peer_series(&load(&said).unwrap()).is_empty(), "{word}");
    }
}

#[test]
fn dataplane_workers_are_counted_and_bounded() {
    let c = load(&format!("{BASE}dataplane:\n  workers: 2\n")).expect("valid");
    assert_eq!(c.dataplane.workers, Some(2));
    for bad in ["0", "65"] {
        let text = format!("{BASE}dataplane:\n  workers: {bad}\n");
        rejects(&text, "dataplane.workers", "workers", &["out of range"]);
    }
    assert!(load(&format!("{BASE}dataplane:\n  workers: two\n")).is_err());
}
