//! The `ixgw` binary's commands that need no privileges.

use std::io::Write;
use std::process::{Command, Stdio};

fn ixgw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ixgw"))
}

#[test]
fn check_accepts_the_example_configuration() {
    let out = ixgw()
        .args(["check", "--config", "config/ixgw.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("ixgw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string("config/ixgw.yaml")
        .unwrap()
        .replace(
            "example-keys/",
            &format!("{}/config/example-keys/", env!("CARGO_MANIFEST_DIR")),
        )
        + "bogus_key: 1\n";
    std::fs::write(&bad, &text).unwrap();
    let out = ixgw()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().count();
    assert!(err.contains(&format!("bad.yaml:{line}:")), "{err}");
    assert!(err.contains("bogus_key"), "{err}");
}

#[test]
fn genkey_and_pubkey_round_trip() {
    let key = ixgw().arg("genkey").output().unwrap();
    assert!(key.status.success());
    let key = String::from_utf8(key.stdout).unwrap();
    assert_eq!(key.trim().len(), 44);
    let mut child = ixgw()
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap();
    assert_eq!(public.trim().len(), 44);
    assert_ne!(public.trim(), key.trim());

    let mut child = ixgw()
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"not a key\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid private key"));
}

/// `ixgw peer-config --config ARGS[0] --peer ARGS[1] ARGS[2..]` succeeds and prints every
/// one of `keys`.
fn peer_config_contains(args: &[&str], keys: &[&str]) {
    let out = ixgw()
        .args(["peer-config", "--config", args[0], "--peer", args[1]])
        .args(&args[2..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = String::from_utf8(out.stdout).unwrap();
    for key in keys {
        assert!(conf.contains(key), "missing {key}:\n{conf}");
    }
}

#[test]
fn peer_config_prints_a_wg_quick_file() {
    peer_config_contains(
        &["config/ixgw.yaml", "omura-clinic"],
        &[
            "[Interface]",
            "Address = ",
            "MTU = ",
            "[Peer]",
            "PublicKey = ",
            "Endpoint = ",
            "AllowedIPs = ",
        ],
    );

    let out = ixgw()
        .args([
            "peer-config",
            "--config",
            "config/ixgw.yaml",
            "--peer",
            "nobody",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}

#[test]
fn check_rejects_a_file_over_the_size_limit() {
    let dir = std::env::temp_dir().join(format!("ixgw-cli-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("huge.yaml");
    // Sparse, 30 MiB: the size the issue saw read whole on reload.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(30 << 20)
        .unwrap();
    let out = ixgw()
        .args(["check", "--config"])
        .arg(&big)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: the configuration file has 31457280 bytes; ixgw reads at most 16777216 bytes (16 MiB)",
            big.display()
        )),
        "{err}"
    );
}

#[test]
fn the_ipsec_example_is_checked_and_configures_its_peers_but_does_not_run() {
    let out = ixgw()
        .args(["check", "--config", "config/ipsec-example.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    peer_config_contains(
        &["config/ipsec-example.yaml", "goto-clinic", "--with-psk"],
        &[
            "connections {",
            "    version = 2\n",
            "remote_addrs = 203.0.113.10\n",
            "local_ts = 10.0.30.0/24\n",
            "secrets {",
            "secret = 0x",
        ],
    );

    let out = ixgw()
        .args([
            "--log",
            "off",
            "run",
            "--config",
            "config/ipsec-example.yaml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ajisai-ipsec") && err.contains("192.0.2.10:500"),
        "the example's documentation address cannot be bound here: {err}"
    );
}

/// `ixgw check` builds what the daemon would before binding: an IPsec gateway key that does
/// not belong to its certificate is refused there, not only at start.
#[test]
fn check_refuses_a_gateway_key_of_another_certificate() {
    let dir = std::env::temp_dir().join(format!("ixgw-check-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::fs::read_to_string("config/ipsec-example.yaml").unwrap();
    let keys = std::fs::canonicalize("config/example-keys").unwrap();
    let text = example
        .replace("example-keys/", &format!("{}/", keys.display()))
        .replace("ipsec/gateway.key", "ipsec/example-ca.key");
    std::fs::write(dir.join("ixgw.yaml"), text).unwrap();
    let out = ixgw()
        .args(["check", "--config"])
        .arg(dir.join("ixgw.yaml"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("attachment ajisai-ipsec")
            && err.contains("does not belong to the certificate"),
        "{err}"
    );
}

/// `ixgw ARGS` in `dir`: its exit status, stdout and stderr.
fn ixgw_in(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = ixgw().current_dir(dir).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The first PEM block of `path`, as DER.
fn pem_der(path: &std::path::Path) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(path).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn ca_init_issue_revoke_crl() {
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::FromDer;

    let dir = std::env::temp_dir().join(format!("ixgw-cli-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wg = "p0mbFSQrKQTLNp2Q614GfjZTSOck/QMsxhb2mYiyIDQ=";

    let (ok, out, err) = ixgw_in(&dir, &["ca", "init", "--dir", "lab", "--name", "lab root"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("root CA serial ") && out.contains("lab/ca.crt lab/ca.key lab/crl.pem"),
        "{out}"
    );
    let (ok, _, err) = ixgw_in(&dir, &["ca", "init", "--dir", "lab", "--name", "again"]);
    assert!(!ok);
    assert!(
        err.contains("lab/ca.crt: already exists; refusing to overwrite it"),
        "{err}"
    );

    let (ok, out, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "issue",
            "--dir",
            "lab",
            "--facility",
            "0110113719",
            "--name",
            "Sapporo clinic",
            "--wireguard-key",
            wg,
            "--dns",
            "gw.sapporo.example",
            "--out",
            "sapporo",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("facility 0110113719 serial "), "{out}");
    assert!(
        out.trim_end().ends_with(": sapporo.crt sapporo.key"),
        "{out}"
    );
    let serial = out.split_whitespace().nth(3).unwrap().to_owned();
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("sapporo.key"), 0o600);
    assert_eq!(mode("lab/ca.key"), 0o600);

    let der = pem_der(&dir.join("sapporo.crt"));
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "C=JP, O=ixgw lab, CN=Sapporo clinic, serialNumber=0110113719"
    );
    assert_eq!(hex(cert.raw_serial()), serial);
    let uris: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        uris,
        [
            "urn:ixgw:facility:0110113719".to_owned(),
            format!("urn:ixgw:wireguard-key:{wg}")
        ]
    );

    // Bad input is refused with the reason, and nothing is written.
    let (ok, _, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "issue",
            "--dir",
            "lab",
            "--facility",
            "0110113710",
            "--name",
            "x",
            "--out",
            "x",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("check digit is 0, not 9: with the right check digit the code is 0110113719"),
        "{err}"
    );
    let (ok, _, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "issue",
            "--dir",
            "lab",
            "--facility",
            "0110113719",
            "--name",
            "x",
            "--wireguard-key",
            "abc",
            "--out",
            "x",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("a key is 44 base64 characters, got 3"),
        "{err}"
    );
    assert!(!dir.join("x.key").exists());

    let (ok, out, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "revoke",
            "--dir",
            "lab",
            "sapporo.crt",
            "--reason",
            "key-compromise",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!(
            "revoked serial {serial} (key-compromise) of sapporo.crt; lab/crl.pem: CRL number 2, \
             1 revoked"
        )),
        "{out}"
    );
    let revoked = std::fs::read_to_string(dir.join("lab/revoked.txt")).unwrap();
    assert!(
        revoked.starts_with(&serial) && revoked.trim_end().ends_with(" key-compromise"),
        "{revoked}"
    );
    let crl_der = pem_der(&dir.join("lab/crl.pem"));
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
    let listed: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| hex(r.raw_serial()))
        .collect();
    assert_eq!(listed, [serial]);
    assert_eq!(crl.crl_number().unwrap().to_string(), "2");

    let (ok, out, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "crl",
            "--dir",
            "lab",
            "--this-update",
            "2020-01-01T00:00:00Z",
            "--next-update",
            "1h",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim_end(),
        "lab/crl.pem: CRL number 3, 1 revoked, thisUpdate 2020-01-01T00:00:00Z, nextUpdate \
         2020-01-01T01:00:00Z"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("lab"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the example configuration with its keys and PKI into a fresh directory.
fn example_copy(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ixgw-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["example-keys", "example-pki"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(format!("config/{sub}")).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    std::fs::copy("config/ixgw.yaml", dir.join("ixgw.yaml")).unwrap();
    dir
}

#[test]
fn facility_verify_and_check_report_a_revoked_certificate() {
    let dir = example_copy("facility-verify");
    let (ok, out, err) = ixgw_in(&dir, &["check", "-c", "ixgw.yaml"]);
    assert!(ok, "{err}");
    assert!(out.contains("ok (3 tenants"), "{out}");
    assert!(
        !err.contains("facilities:") && !err.contains("agreements"),
        "the example registry is clean: {err}"
    );

    let verify = |cert: &str, config: bool| {
        let mut args = vec!["facility", "verify", cert];
        if config {
            args.extend(["--config", "ixgw.yaml"]);
        }
        ixgw_in(&dir, &args)
    };
    let (ok, out, err) = verify("example-pki/omura-clinic.crt", true);
    assert!(ok, "{out}{err}");
    for line in [
        "facility:     4212345674",
        "registry:     facility 4212345674 (Omura clinic), tenant ajisai-net",
        "binding:      WireGuard key FNS8j0j7/Euk+CULHz+xecl0m6GUiEIVhASz+GEofhA= bound",
        "crl:          example-ca example-pki/crl.pem: number",
        "verdict:      valid: valid until",
    ] {
        assert!(out.contains(line), "`{line}` not in:\n{out}");
    }
    // Without a configuration nothing is judged, and the exit status says so.
    let (ok, out, _) = verify("example-pki/omura-clinic.crt", false);
    assert!(!ok);
    assert!(out.contains("verdict:      not judged"), "{out}");

    let (ok, _, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "revoke",
            "--dir",
            "example-pki",
            "example-pki/omura-clinic.crt",
            "--reason",
            "key-compromise",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = verify("example-pki/omura-clinic.crt", true);
    assert!(!ok, "{out}");
    assert!(out.contains("verdict:      revoked: serial "), "{out}");
    assert!(out.contains("(key compromise)"), "{out}");
    // The others are untouched.
    let (ok, out, err) = verify("example-pki/sasebo-pharmacy.crt", true);
    assert!(ok, "{out}{err}");
    // check still accepts the file (a certificate state is not a configuration error) and
    // says what the daemon would start with.
    let (ok, _, err) = ixgw_in(&dir, &["check", "-c", "ixgw.yaml"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("facilities: warning: facility 4212345674 (Omura clinic, tenant ajisai-net) is revoked: serial"),
        "{err}"
    );

    // A certificate for a facility the configuration does not know.
    let (ok, _, err) = ixgw_in(
        &dir,
        &[
            "ca",
            "issue",
            "--dir",
            "example-pki",
            "--facility",
            "0110113719",
            "--name",
            "Sapporo clinic",
            "--out",
            "sapporo",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = verify("sapporo.crt", true);
    assert!(!ok);
    assert!(
        out.contains("verdict:      binding_mismatch: the certificate names no facility of"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_takes_the_file_as_an_argument_too() {
    let (ok, out, err) = ixgw_in(std::path::Path::new("."), &["check", "config/ixgw.yaml"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("config/ixgw.yaml: ok ("), "{out}");
    let (ok, _, err) = ixgw_in(
        std::path::Path::new("."),
        &["check", "config/ixgw.yaml", "--config", "config/ixgw.yaml"],
    );
    assert!(!ok, "one or the other");
    assert!(err.contains("cannot be used with"), "{err}");
    // Neither: the daemon's default file.
    let (ok, _, err) = ixgw_in(std::path::Path::new("/"), &["check"]);
    assert!(!ok);
    assert!(err.contains("/etc/ixgw/ixgw.yaml"), "{err}");
}

#[test]
fn genpsk_prints_a_fresh_32_byte_key() {
    use base64::Engine as _;
    let key = |_| {
        let out = ixgw().arg("genpsk").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap();
        assert_eq!(bytes.len(), 32, "{text}");
        text
    };
    assert_ne!(key(0), key(1));
}

/// Logs piped (as under journald) carry no colour codes; `--log-format json` writes one JSON
/// object per line.
#[test]
fn logs_are_plain_when_not_a_terminal_and_json_on_request() {
    let out = ixgw()
        .args(["--log", "info", "demo", "--duration", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("gateway running"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in: {err:?}");
    // Each facility of the demo comes up once, named with its tenant and facility.
    for (peer, facility) in [
        ("omura-clinic", "4212345674 (Omura clinic)"),
        ("izumo-hospital", "3219876541 (Izumo hospital)"),
        ("claims-hub", "1310000003 (Claims hub)"),
    ] {
        let up: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(" peer up ") && l.contains(&format!("peer=\"{peer}\"")))
            .collect();
        assert_eq!(up.len(), 1, "{peer}: {err}");
        assert!(
            up[0].contains(&format!("facility=\"{facility}\"")),
            "{}",
            up[0]
        );
    }
    assert!(
        err.lines()
            .any(|l| l.contains("handshake completed") && l.contains("peer=\"omura-clinic\"")),
        "{err}"
    );
    let out = ixgw()
        .args([
            "--log",
            "info",
            "--log-format",
            "json",
            "demo",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let mut lines = 0;
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines > 3, "{err}");
}

#[test]
fn version_names_the_commit() {
    let out = ixgw().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let commit = text
        .trim()
        .strip_prefix(concat!("ixgw ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
}

/// The configuration the Debian package installs as /etc/ixgw/ixgw.yaml: accepted, no warnings.
#[test]
fn check_accepts_the_packaged_configuration_without_warnings() {
    let out = ixgw()
        .args(["check", "packaging/ixgw.yaml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (0 tenants"));
}

#[test]
fn man_writes_one_page_per_subcommand_and_completions_print() {
    let dir = std::env::temp_dir().join(format!("ixgw-man-{}", std::process::id()));
    let out = ixgw()
        .args(["man", "--dir"])
        .arg(dir.join("man1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = |name: &str| std::fs::read_to_string(dir.join("man1").join(name));
    let top = page("ixgw.1").unwrap();
    let check = page("ixgw-check.1").unwrap();
    let init = page("ixgw-ca-init.1");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(top.starts_with(".ie"), "{top}");
    assert!(top.contains("/etc/ixgw/ixgw.yaml"));
    assert!(check.contains(".TH ixgw-check 1"), "{check}");
    assert!(init.is_ok());

    let stdout = ixgw().arg("man").output().unwrap();
    assert!(stdout.status.success());
    assert_eq!(String::from_utf8_lossy(&stdout.stdout), top);

    for (shell, start) in [
        ("bash", "_ixgw()"),
        ("zsh", "#compdef ixgw"),
        ("fish", "# Print an optspec"),
    ] {
        let out = ixgw().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(start), "{shell}: {text}");
        assert!(text.contains("peer-config"), "{shell}");
    }
    let bad = ixgw().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

/// `ixgw usage` over a directory of records: CSV rows and the coverage, JSON, and the errors
/// an operator can make.
#[test]
fn usage_reports_a_period_and_refuses_bad_input() {
    let dir = std::env::temp_dir().join(format!("ixgw-cli-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 2026-11-01T00:00:00+09:00 is 2026-10-31T15:00:00Z.
    let records = concat!(
        r#"{"v":1,"start":"2026-10-31T15:00:00Z","end":"2026-10-31T15:05:00Z","interval":300,"cut":"interval","pairs":[{"from":"mame-net","to":"ajisai-net","packets":2,"bytes":300},{"from":"ajisai-net","to":"mame-net","packets":10,"bytes":10280}],"peers":[{"tenant":"ajisai-net","attachment":"wg","peer":"p","facility":"4212345674","facility_name":"Omura clinic","rx_packets":10,"rx_bytes":10280,"tx_packets":2,"tx_bytes":300}]}"#,
        "\n",
        r#"{"v":1,"start":"2026-10-31T14:55:00Z","end":"2026-10-31T15:00:00Z","interval":300,"cut":"interval","pairs":[{"from":"ajisai-net","to":"mame-net","packets":99,"bytes":99999}]}"#,
        "\n",
        "{\"v\":1,\"start\":\"2026-10-31T15:05",
    );
    std::fs::write(dir.join("usage-2026-10-31.jsonl"), records).unwrap();
    let run = |args: &[&str]| {
        ixgw()
            .arg("usage")
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--from", "2026-11-01", "--to", "2026-11-01T00:10:00+09:00"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tenant_a,tenant_b,packets_a_to_b,bytes_a_to_b,packets_b_to_a,bytes_b_to_a\najisai-net,mame-net,10,10280,2,300\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coverage: 300 of 600 seconds"), "{err}");
    assert!(
        err.contains("gap 2026-11-01T00:05:00+09:00 .. 2026-11-01T00:10:00+09:00"),
        "{err}"
    );
    assert!(
        err.contains("usage-2026-10-31.jsonl:3: skipped: torn last line"),
        "{err}"
    );

    let out = run(&[
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
        "--by",
        "facility",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains(r#""facility_name": "Omura clinic""#),
        "{json}"
    );
    assert!(json.contains(r#""bytes_from": 10280"#), "{json}");
    assert!(
        json.contains(
            r#""missing_files": [
      "usage-2026-11-01.jsonl"
    ]"#
        ),
        "{json}"
    );

    for (args, message) in [
        (
            &["--from", "2026-11-31", "--to", "2026-12-01"][..],
            "is neither a date",
        ),
        (
            &["--from", "2026-12-01", "--to", "2026-11-01"][..],
            "the period is empty",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&["--from", "2026-11-01", "--to", "2026-12-01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file"));

    let out = ixgw()
        .args([
            "usage",
            "--config",
            "config/ixgw.yaml",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no `usage:` section"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
