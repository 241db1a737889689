//! `ipsec` attachments: the gateway's certificate and private key files, every rejection with
//! its key path and line (PEM made here with rcgen where the examples do not serve).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use super::ipsec_tests::{example_key_path, fresh_certificate, ipsec, the_ipsec, A, P1};
use super::tests::{config_path, edit, load, rejects, temp_file, BASE};
use super::*;
use crate::config::KeyFormat;

/// PEM text of one block.
fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The configuration with the gateway's certificate and key files replaced.
fn with_gateway_files(cert: &Path, key: &Path) -> String {
    let text = ipsec(
        "example-keys/ipsec/gateway.crt",
        &cert.display().to_string(),
    );
    edit(
        &text,
        "example-keys/ipsec/gateway.key",
        &key.display().to_string(),
    )
}

#[test]
fn rejects_missing_gateway_credentials() {
    let text = ipsec(
        "        private_key_file: example-keys/ipsec/gateway.key\n",
        "",
    );
    rejects(
        &text,
        &format!("{A}.certificate_file"),
        "certificate_file:",
        &["`certificate_file` is set without `private_key_file`"],
    );
    let text = ipsec(
        "        certificate_file: example-keys/ipsec/gateway.crt\n",
        "",
    );
    rejects(
        &text,
        &format!("{A}.private_key_file"),
        "ipsec/gateway.key",
        &["`private_key_file` is set without `certificate_file`"],
    );
    let neither = ipsec(
        "        certificate_file: example-keys/ipsec/gateway.crt\n        private_key_file: example-keys/ipsec/gateway.key\n",
        "",
    );
    rejects(
        &neither,
        &format!("{P1}.auth"),
        "auth: certificate",
        &["peer `hospital-cert` authenticates with a certificate, so the gateway needs one too"],
    );
    // Pre-shared keys alone need no gateway certificate.
    let psk_only = neither
        .split("          - name: hospital-cert\n")
        .next()
        .unwrap()
        .to_string()
        + &BASE[BASE.find("  - name: beta").unwrap()..];
    let c = load(&psk_only).expect("validates");
    assert_eq!(the_ipsec(&c).credentials, None);

    let text = ipsec(
        "example-keys/ipsec/gateway.crt",
        "example-keys/ipsec/missing.crt",
    );
    let missing = config_path()
        .parent()
        .unwrap()
        .join("example-keys/ipsec/missing.crt");
    rejects(
        &text,
        &format!("{A}.certificate_file"),
        "missing.crt",
        &[&format!(
            "cannot read certificate file {}",
            missing.display()
        )],
    );
    let text = ipsec(
        "example-keys/ipsec/gateway.key",
        "example-keys/ipsec/missing.key",
    );
    rejects(
        &text,
        &format!("{A}.private_key_file"),
        "missing.key",
        &["cannot read private key file"],
    );
}

#[test]
fn rejects_certificate_files_without_a_certificate() {
    let (cert, key) = fresh_certificate();
    let garbage = pem_block("CERTIFICATE", b"not DER at all");
    let cases: [(&str, String, &str); 6] = [
        ("no-pem", "hello\n".into(), "it holds no CERTIFICATE block"),
        (
            "garbage",
            garbage,
            "CERTIFICATE block 1 is not an X.509 certificate",
        ),
        (
            "second-garbage",
            format!("{cert}{}", pem_block("CERTIFICATE", &[0x30, 0])),
            "CERTIFICATE block 2 is not an X.509 certificate",
        ),
        (
            "no-end",
            "-----BEGIN CERTIFICATE-----\nAAAA\n".into(),
            "a PEM block has no END line",
        ),
        (
            "bad-base64",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
            "a PEM block is not valid base64",
        ),
        (
            "with-key",
            format!("{cert}{key}"),
            "it holds a private key: keep the key in private_key_file only",
        ),
    ];
    let key_file = example_key_path("gateway.key");
    for (name, contents, reason) in cases {
        let file = temp_file(&format!("ipsec-cert-{name}"), contents.as_bytes());
        let text = with_gateway_files(&file, &key_file);
        rejects(
            &text,
            &format!("{A}.certificate_file"),
            "certificate_file:",
            &[&format!("certificate file {}: {reason}", file.display())],
        );
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn private_keys_in_pkcs8_sec1_and_pkcs1_blocks_are_read() {
    let (cert, key) = fresh_certificate();
    let cert_file = temp_file("ipsec-fresh-cert", cert.as_bytes());
    let pkcs8 = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let der = pkcs8.secret_der().to_vec();
    // The label decides the format; the block must be one DER structure.
    for (label, format) in [
        ("PRIVATE KEY", KeyFormat::Pkcs8),
        ("EC PRIVATE KEY", KeyFormat::Sec1),
        ("RSA PRIVATE KEY", KeyFormat::Pkcs1),
    ] {
        let key_file = temp_file(
            &format!("ipsec-key-{}", label.replace(' ', "-")),
            format!(
                "{}{}",
                pem_block("EC PARAMETERS", &[6, 1, 0]),
                pem_block(label, &der)
            )
            .as_bytes(),
        );
        let c = load(&with_gateway_files(&cert_file, &key_file)).expect("validates");
        let creds = the_ipsec(&c).credentials.clone().unwrap();
        assert_eq!(creds.private_key.format, format);
        assert_eq!(creds.private_key.der.expose(), der);
        assert_eq!(creds.private_key.as_der().secret_der(), der);
        assert_eq!(creds.certificates.len(), 1);
        let _ = std::fs::remove_file(key_file);
    }
    let _ = std::fs::remove_file(cert_file);
}

#[test]
fn rejects_private_key_files_without_one_usable_key() {
    let (cert, key) = fresh_certificate();
    let cases: [(&str, String, &str); 5] = [
        ("cert-only", cert.clone(), "it holds no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block"),
        ("two", format!("{key}{key}"), "it holds 2 private keys; give exactly one"),
        (
            "encrypted",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n".into(),
            "the key is encrypted; ixgw reads unencrypted keys",
        ),
        (
            "legacy-encrypted",
            "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n".into(),
            "the key is encrypted",
        ),
        ("not-der", pem_block("PRIVATE KEY", b"secret!"), "the key block is not a DER structure"),
    ];
    let cert_file = temp_file("ipsec-keytest-cert", cert.as_bytes());
    for (name, contents, reason) in cases {
        let file = temp_file(&format!("ipsec-key-{name}"), contents.as_bytes());
        let msg = rejects(
            &with_gateway_files(&cert_file, &file),
            &format!("{A}.private_key_file"),
            &file.display().to_string(),
            &[&format!("private key file {}: {reason}", file.display())],
        );
        assert!(
            !msg.contains("secret!") && !msg.contains("c2VjcmV0IQ"),
            "{msg}"
        );
        let _ = std::fs::remove_file(file);
    }
    let big = temp_file("ipsec-key-big", &vec![b'A'; (1 << 20) + 1]);
    rejects(
        &with_gateway_files(&cert_file, &big),
        &format!("{A}.private_key_file"),
        &big.display().to_string(),
        &["the file is larger than 1048576 bytes"],
    );
    let _ = std::fs::remove_file(big);
    let _ = std::fs::remove_file(cert_file);
}
