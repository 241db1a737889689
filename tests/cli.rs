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
