//! `ipsec` peers: every rejection of a peer key with its key path and line (the attachment's
//! own keys and files are in `ipsec_tests.rs`).

use super::ipsec_tests::{fresh_certificate, ipsec, psk_peer_with, P0, P1};
use super::tests::{config_path, line_eq, load, rejects, temp_file, BASE};

#[test]
fn rejects_peer_names_and_facilities() {
    let text = ipsec("- name: clinic-psk", "- name: clinic-a # again");
    rejects(
        &text,
        &format!("{P0}.name"),
        "# again",
        &[&format!(
            "duplicate peer name `clinic-a` (first defined at tenants[0].attachments[0].peers[0].name, line {})",
            line_eq(BASE, "          - name: clinic-a")
        )],
    );
    let text = ipsec("            facility: \"4212345682\"\n", "");
    rejects(
        &text,
        &format!("{P0}.facility"),
        "- name: clinic-psk",
        &["peer `clinic-psk` has no `facility`"],
    );
    let text = ipsec("facility: \"4212345682\"", "facility: \"9912345670\"");
    rejects(
        &text,
        &format!("{P0}.facility"),
        "9912345670",
        &["prefecture code 99"],
    );
}

#[test]
fn rejects_authentication_that_does_not_fit() {
    let text = ipsec("auth: psk", "auth: password");
    rejects(
        &text,
        &format!("{P0}.auth"),
        "auth: password",
        &["`password` is not one of `psk` or `certificate`"],
    );
    let text = psk_peer_with("ca_file: example-keys/ipsec/example-ca.crt # wrong");
    rejects(
        &text,
        &format!("{P0}.ca_file"),
        "# wrong",
        &["`ca_file` does not go with `auth: psk`"],
    );
    let text = ipsec(
        "            ca_file: example-keys/ipsec/example-ca.crt\n",
        "            ca_file: example-keys/ipsec/example-ca.crt\n            psk_file: example-keys/ipsec/goto-clinic.psk # wrong\n",
    );
    rejects(
        &text,
        &format!("{P1}.psk_file"),
        "# wrong",
        &["`psk_file` does not go with `auth: certificate`"],
    );
    let text = ipsec(
        "            psk_file: example-keys/ipsec/goto-clinic.psk\n",
        "",
    );
    rejects(
        &text,
        &format!("{P0}.psk_file"),
        "- name: clinic-psk",
        &["`auth: psk` needs `psk_file`"],
    );
    let text = ipsec(
        "            ca_file: example-keys/ipsec/example-ca.crt\n",
        "",
    );
    rejects(
        &text,
        &format!("{P1}.ca_file"),
        "- name: hospital-cert",
        &["`auth: certificate` needs `ca_file`"],
    );
}

#[test]
fn rejects_pre_shared_keys_too_short_or_malformed() {
    let cases: [(&str, &[u8], &str); 7] = [
        (
            "short",
            b"fifteen-bytes!!\n",
            "has 15 bytes; ixgw requires at least 16",
        ),
        (
            "short-hex",
            b"0x00112233\n",
            "has 4 bytes; ixgw requires at least 16",
        ),
        ("bad-hex", b"0xzz\n", "not hex digits after 0x"),
        ("bad-base64", b"0s!!!!\n", "not base64 after 0s"),
        ("empty", b"\n", "the file is empty"),
        (
            "two-lines",
            b"sixteen-bytes-ok\nsixteen-bytes-ok\n",
            "more than one line",
        ),
        (
            "binary",
            b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0",
            "not text",
        ),
    ];
    for (name, contents, reason) in cases {
        let file = temp_file(&format!("ipsec-psk-{name}"), contents);
        let text = ipsec(
            "example-keys/ipsec/goto-clinic.psk",
            &file.display().to_string(),
        );
        let msg = rejects(
            &text,
            &format!("{P0}.psk_file"),
            "psk_file:",
            &[&file.display().to_string(), reason],
        );
        assert!(
            !msg.contains("fifteen") && !msg.contains("00112233"),
            "{msg}"
        );
        let _ = std::fs::remove_file(file);
    }
    let big = temp_file("ipsec-psk-big", &[b'a'; 1025]);
    let text = ipsec(
        "example-keys/ipsec/goto-clinic.psk",
        &big.display().to_string(),
    );
    rejects(
        &text,
        &format!("{P0}.psk_file"),
        "psk_file:",
        &["the file is too large"],
    );
    let _ = std::fs::remove_file(big);
    // Sixteen bytes are enough.
    let good = temp_file("ipsec-psk-16", b"sixteen-bytes-ok\n");
    let text = ipsec(
        "example-keys/ipsec/goto-clinic.psk",
        &good.display().to_string(),
    );
    load(&text).expect("a 16-byte key validates");
    let _ = std::fs::remove_file(good);
    let text = ipsec("goto-clinic.psk", "missing.psk");
    let missing = config_path()
        .parent()
        .unwrap()
        .join("example-keys/ipsec/missing.psk");
    rejects(
        &text,
        &format!("{P0}.psk_file"),
        "missing.psk",
        &[&format!(
            "cannot read pre-shared key file {}",
            missing.display()
        )],
    );
}

#[test]
fn rejects_ca_files_without_a_ca_certificate() {
    let (cert, key) = fresh_certificate();
    let cases: [(&str, String, &str); 2] = [
        (
            "none",
            "no PEM here\n".into(),
            "it holds no CERTIFICATE block",
        ),
        (
            "with-key",
            format!("{cert}{key}"),
            "it holds a private key, which a CA file never needs",
        ),
    ];
    for (name, contents, reason) in cases {
        let file = temp_file(&format!("ipsec-ca-{name}"), contents.as_bytes());
        let text = ipsec(
            "example-keys/ipsec/example-ca.crt",
            &file.display().to_string(),
        );
        rejects(
            &text,
            &format!("{P1}.ca_file"),
            "ca_file:",
            &[&format!("CA file {}: {reason}", file.display())],
        );
        let _ = std::fs::remove_file(file);
    }
    let text = ipsec("example-ca.crt", "missing-ca.crt");
    rejects(
        &text,
        &format!("{P1}.ca_file"),
        "missing-ca.crt",
        &["cannot read CA file"],
    );
}

#[test]
fn rejects_traffic_selectors() {
    let text = ipsec("remote_ts: [10.0.30.0/24]", "remote_ts: [10.1.0.0/24]");
    rejects(
        &text,
        &format!("{P0}.remote_ts[0]"),
        "10.1.0.0/24",
        &["10.1.0.0/24 is not inside an internal prefix of tenant `alpha` (10.0.0.0/16)"],
    );
    // Routes of ipsec peers take part in the tenant's overlap check.
    let text = ipsec("remote_ts: [10.0.30.0/24]", "remote_ts: [10.0.1.128/25]");
    rejects(
        &text,
        &format!("{P0}.remote_ts[0]"),
        "10.0.1.128/25",
        &[&format!(
            "10.0.1.128/25 overlaps tenants[0].attachments[0].peers[0].allowed_ips[0] = 10.0.1.0/24 (line {})",
            line_eq(BASE, "            allowed_ips: [10.0.1.0/24]")
        )],
    );
    let text = ipsec(
        "remote_ts: [10.0.40.0/24]",
        "remote_ts: [10.0.30.0/24] # again",
    );
    rejects(
        &text,
        &format!("{P1}.remote_ts[0]"),
        "# again",
        &[&format!("10.0.30.0/24 overlaps {P0}.remote_ts[0] (line")],
    );
    let text = ipsec("remote_ts: [10.0.30.0/24]", "remote_ts: []");
    rejects(
        &text,
        &format!("{P0}.remote_ts"),
        "remote_ts: []",
        &["must not be empty"],
    );
    let text = psk_peer_with("local_ts: [192.168.0.0/16]");
    rejects(
        &text,
        &format!("{P0}.local_ts[0]"),
        "local_ts",
        &["192.168.0.0/16 is outside ix.exchange_space 100.64.0.0/10"],
    );
    let text = psk_peer_with("local_ts: [100.65.0.1/16]");
    rejects(
        &text,
        &format!("{P0}.local_ts[0]"),
        "local_ts",
        &["100.65.0.1/16 has host bits set (the network is 100.65.0.0/16)"],
    );
    let text = psk_peer_with("local_ts: []");
    rejects(
        &text,
        &format!("{P0}.local_ts"),
        "local_ts",
        &["must not be empty"],
    );
}

#[test]
fn rejects_endpoints_and_start() {
    for bad in [
        "198.51.100.20:0",
        "vpn.clinic.example",
        "[2001:db8::1]:500",
        "198.51.100.20:x",
    ] {
        let text = psk_peer_with(&format!("endpoint: \"{bad}\""));
        rejects(
            &text,
            &format!("{P0}.endpoint"),
            "endpoint:",
            &[&format!(
                "`{bad}` is not an IPv4 address with an optional port"
            )],
        );
    }
    let text = psk_peer_with("start: always");
    rejects(
        &text,
        &format!("{P0}.start"),
        "start: always",
        &["`always` is not one of `initiate` or `respond`"],
    );
    let text = psk_peer_with("start: initiate");
    rejects(
        &text,
        &format!("{P0}.start"),
        "start: initiate",
        &["peer `clinic-psk` has `start: initiate` but no `endpoint` to send IKE_SA_INIT to"],
    );
}

#[test]
fn rejects_weak_unsupported_and_unknown_algorithms() {
    let cases = [
        ("[aes128-md5-ecp256]", "`md5` in proposal `aes128-md5-ecp256` is refused as weak: MD5 is broken"),
        ("[aes128-sha1-ecp256]", "`sha1` in proposal `aes128-sha1-ecp256` is refused as weak: SHA-1"),
        ("[3des-sha256-ecp256]", "`3des` in proposal `3des-sha256-ecp256` is refused as weak: 3DES"),
        ("[aes128-sha256-modp1024]", "`modp1024` in proposal `aes128-sha256-modp1024` is refused as weak"),
        ("[aes128-sha256-prfsha1-ecp256]", "`prfsha1` in proposal"),
        (
            "[aes128-sha256-modp2048]",
            "`modp2048` in proposal `aes128-sha256-modp2048` is not supported by ixgw (supported: aes128gcm16, aes256gcm16",
        ),
        ("[chacha20poly1305-prfsha256-x25519]", "`chacha20poly1305` in proposal"),
        ("[aes128-sha256-ecp256-foo]", "unknown algorithm `foo` in proposal `aes128-sha256-ecp256-foo`"),
    ];
    for (list, message) in cases {
        let text = psk_peer_with(&format!("proposals: {list}"));
        rejects(
            &text,
            &format!("{P0}.proposals[0]"),
            "proposals:",
            &[message],
        );
    }
    let text = psk_peer_with("esp_proposals: [aes256gcm16, aes128-md5]");
    rejects(
        &text,
        &format!("{P0}.esp_proposals[1]"),
        "esp_proposals:",
        &["`md5` in proposal `aes128-md5` is refused as weak"],
    );
}

#[test]
fn rejects_proposals_that_break_the_rules() {
    let ike = [
        (
            "aes256gcm16-aes256-sha256-prfsha256-ecp256",
            "mixes the AEAD cipher aes256gcm16 with the cipher aes256, which needs an integrity algorithm: split them into two proposals",
        ),
        (
            "aes256gcm16-sha256-prfsha256-ecp256",
            "has the AEAD cipher aes256gcm16, which protects integrity itself: remove sha256",
        ),
        ("aes256-ecp256", "has no integrity algorithm"),
        ("aes256gcm16-ecp256", "has no PRF (prfsha256, prfsha384 or prfsha512), which an AEAD IKE proposal must name"),
        ("aes256-sha256", "has no Diffie-Hellman group"),
        ("sha256-ecp256", "has no encryption algorithm"),
        ("aes256gcm16-prfsha256-ecp256-esn", "`esn` in proposal `aes256gcm16-prfsha256-ecp256-esn`: extended sequence numbers are an ESP option"),
    ];
    for (proposal, message) in ike {
        let text = psk_peer_with(&format!(
            "proposals: [aes128gcm16-prfsha256-ecp256, {proposal}]"
        ));
        rejects(
            &text,
            &format!("{P0}.proposals[1]"),
            "proposals:",
            &[message],
        );
    }
    let text = psk_peer_with("esp_proposals: [aes256gcm16-prfsha256]");
    rejects(
        &text,
        &format!("{P0}.esp_proposals[0]"),
        "esp_proposals:",
        &["`prfsha256` in proposal `aes256gcm16-prfsha256`: ESP has no PRF"],
    );
    let text = psk_peer_with("esp_proposals: [aes256]");
    rejects(
        &text,
        &format!("{P0}.esp_proposals[0]"),
        "esp_proposals:",
        &["has no integrity algorithm"],
    );
    let text = psk_peer_with("proposals: []");
    rejects(
        &text,
        &format!("{P0}.proposals"),
        "proposals:",
        &["must not be empty"],
    );
    let text = psk_peer_with("esp_proposals: [\"\"]");
    rejects(
        &text,
        &format!("{P0}.esp_proposals[0]"),
        "esp_proposals:",
        &["must not be empty"],
    );
}

#[test]
fn rejects_lifetimes_and_dead_peer_detection_out_of_range() {
    let cases = [
        (
            "ike_rekey_time: 9s",
            "ike_rekey_time",
            "9 is out of range (10..=86400)",
        ),
        (
            "ike_rekey_time: 25h",
            "ike_rekey_time",
            "90000 is out of range (10..=86400)",
        ),
        (
            "child_rekey_time: 1d",
            "child_rekey_time",
            "`1d` is not a duration",
        ),
        (
            "child_rekey_time: 5",
            "child_rekey_time",
            "5 is out of range (10..=86400)",
        ),
        (
            "child_rekey_bytes: 10T",
            "child_rekey_bytes",
            "`10T` is not a byte count",
        ),
        (
            "child_rekey_bytes: 1000",
            "child_rekey_bytes",
            "1000 is out of range (1048576..=",
        ),
        (
            "dpd_interval: 4s",
            "dpd_interval",
            "4 is out of range (5..=3600)",
        ),
        (
            "dpd_timeout: 30s",
            "dpd_timeout",
            "dpd_timeout 30s must be longer than dpd_interval 30s",
        ),
        (
            "dpd_timeout: 25h",
            "dpd_timeout",
            "90000 is out of range (1..=86400)",
        ),
        (
            "dpd_interval: 200s",
            "dpd_interval",
            "dpd_timeout 150s (the default) must be longer than dpd_interval 200s",
        ),
        (
            "dpd_action: hold",
            "dpd_action",
            "`hold` is not one of `clear` or `restart`",
        ),
    ];
    for (line, key, message) in cases {
        let text = psk_peer_with(line);
        rejects(&text, &format!("{P0}.{key}"), line, &[message]);
    }
}

#[test]
fn errors_of_the_second_peer_carry_its_index_and_line() {
    let text = ipsec(
        "remote_id: \"C=JP, O=Hospital, CN=vpn.hospital.example\"",
        "remote_id: \"C=JP, O=Hospital, CN=\"",
    );
    rejects(
        &text,
        &format!("{P1}.remote_id"),
        "CN=\"",
        &["`C=JP, O=Hospital, CN=` is not an IKE identity: the RDN `CN=` has no value"],
    );
}
