//! The facility side of an IPsec peer as a strongSwan `swanctl.conf`: one connection with one
//! CHILD_SA, the mirror of the gateway's peer entry. The facility's `local_ts` is the peer's
//! `remote_ts` (internal numbering); its `remote_ts` the gateway's side in exchange space.
//! Certificates and keys are named by placeholder file names for the facility to provide;
//! the pre-shared key is written only when asked for.

use std::fmt::Write;

use super::{gateway_host, header, reachable, PeerConfigError};
use crate::config::{
    Config, IkeIdentity, IpsecAttachment, IpsecAuth, IpsecPeer, IpsecStart, Tenant,
};

/// Renders the swanctl.conf for IPsec peer `name`. With `with_psk`, the pre-shared key is
/// written (as `0x` hex) instead of a placeholder.
pub fn swanctl(config: &Config, name: &str, with_psk: bool) -> Result<String, PeerConfigError> {
    let file = config.source.display().to_string();
    let found = config.tenants.iter().find_map(|t| {
        t.attachments.iter().find_map(|a| match &a.kind {
            crate::config::AttachmentKind::Ipsec(ipsec) => ipsec
                .peers
                .iter()
                .find(|p| p.name == name)
                .map(|p| (t, a.name.as_str(), ipsec, p)),
            _ => None,
        })
    });
    let Some((tenant, attachment, ipsec, peer)) = found else {
        return Err(PeerConfigError::UnknownPeer {
            file,
            peer: name.into(),
        });
    };
    let listen = std::net::SocketAddr::from((ipsec.listen, ipsec.ike_port));
    let host = gateway_host(config, attachment, listen)?;
    let mut s = header(config, &peer.name, peer.facility, &tenant.name);
    let _ = writeln!(
        s,
        "# strongSwan swanctl.conf of the facility side; load it with `swanctl --load-all`."
    );
    connection(&mut s, config, tenant, attachment, ipsec, peer, host);
    if let IpsecAuth::Psk { psk_file, psk } = &peer.auth {
        let _ = writeln!(s, "secrets {{");
        let _ = writeln!(s, "  ike-{} {{", peer.name);
        let _ = writeln!(s, "    id = {}", id_value(&ipsec.local_id));
        if with_psk {
            let hex: String = psk.expose().iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(s, "    secret = 0x{hex}");
        } else {
            let _ = writeln!(
                s,
                "    # the key of the gateway's {}; `ixgw peer-config --with-psk` writes it here",
                psk_file.display()
            );
            let _ = writeln!(s, "    secret = REPLACE_WITH_THE_PRE_SHARED_KEY");
        }
        let _ = writeln!(s, "  }}");
        let _ = writeln!(s, "}}");
    }
    Ok(s)
}

fn connection(
    s: &mut String,
    config: &Config,
    tenant: &Tenant,
    attachment: &str,
    ipsec: &IpsecAttachment,
    peer: &IpsecPeer,
    host: std::net::IpAddr,
) {
    let (auth, facility_initiates) = (
        match peer.auth {
            IpsecAuth::Psk { .. } => "psk",
            IpsecAuth::Certificate { .. } => "pubkey",
        },
        peer.start == IpsecStart::Respond,
    );
    let _ = writeln!(s, "connections {{");
    let _ = writeln!(s, "  {} {{", peer.name);
    let _ = writeln!(s, "    version = 2");
    let _ = writeln!(s, "    remote_addrs = {host}");
    if ipsec.ike_port != 500 {
        let _ = writeln!(s, "    remote_port = {}", ipsec.ike_port);
    }
    if ipsec.ike_port != 500 || ipsec.nat_t_port != 4500 {
        let _ = writeln!(
            s,
            "    # the gateway uses UDP {} and {}: strongSwan moves to 4500 only from 500",
            ipsec.ike_port, ipsec.nat_t_port
        );
    }
    let _ = writeln!(s, "    proposals = {}", join(&peer.proposals));
    let _ = writeln!(s, "    rekey_time = {}s", peer.ike_rekey_time.as_secs());
    let _ = writeln!(s, "    dpd_delay = {}s", peer.dpd_interval.as_secs());
    if facility_initiates {
        // Keep trying while the gateway is unreachable (a restart, an upgrade).
        let _ = writeln!(s, "    keyingtries = 0");
    }
    let _ = writeln!(s, "    local {{");
    let _ = writeln!(s, "      auth = {auth}");
    let _ = writeln!(s, "      id = {}", id_value(&peer.remote_id));
    if let IpsecAuth::Certificate { ca_file, .. } = &peer.auth {
        let _ = writeln!(
            s,
            "      # the facility's certificate (x509/) with its key (private/), issued by a CA of the gateway's {}",
            ca_file.display()
        );
        let _ = writeln!(s, "      certs = {}.crt", peer.name);
    }
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    remote {{");
    let _ = writeln!(s, "      auth = {auth}");
    let _ = writeln!(s, "      id = {}", id_value(&ipsec.local_id));
    if let (IpsecAuth::Certificate { .. }, Some(creds)) = (&peer.auth, &ipsec.credentials) {
        let _ = writeln!(
            s,
            "      # the CA (x509ca/) that issued the gateway's certificate in {}",
            creds.certificate_file.display()
        );
        let _ = writeln!(s, "      cacerts = {attachment}-ca.crt");
    }
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    children {{");
    let _ = writeln!(s, "      net {{");
    let _ = writeln!(s, "        local_ts = {}", prefixes(&peer.remote_ts));
    let remote_ts: Vec<_> = match &peer.local_ts {
        Some(list) => list.clone(),
        None => reachable(config, tenant, peer.facility, &peer.remote_ts)
            .into_iter()
            .collect(),
    };
    if remote_ts.is_empty() {
        let _ = writeln!(
            s,
            "        # no policy lets this peer exchange traffic yet, so no remote_ts"
        );
    } else {
        let _ = writeln!(s, "        remote_ts = {}", prefixes(&remote_ts));
    }
    let _ = writeln!(s, "        esp_proposals = {}", join(&peer.esp_proposals));
    let _ = writeln!(
        s,
        "        rekey_time = {}s",
        peer.child_rekey_time.as_secs()
    );
    if let Some(bytes) = peer.child_rekey_bytes {
        let _ = writeln!(s, "        rekey_bytes = {bytes}");
    }
    let _ = writeln!(s, "        mode = tunnel");
    // The facility initiates when the gateway only responds, and then restarts a tunnel the
    // gateway closed (a reload, a restart: the gateway deletes its SAs) or that died; when
    // the gateway initiates, the facility waits and clears.
    let (start, dpd, close) = if facility_initiates {
        ("start", "restart", "start")
    } else {
        ("none", "clear", "none")
    };
    let _ = writeln!(s, "        start_action = {start}");
    let _ = writeln!(s, "        dpd_action = {dpd}");
    let _ = writeln!(s, "        close_action = {close}");
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
}

/// An identity as a swanctl.conf value: DNs and key IDs quoted (`,` and `#` are syntax
/// there), the rest as is.
fn id_value(id: &IkeIdentity) -> String {
    match id {
        IkeIdentity::Dn(_) | IkeIdentity::KeyId(_) => format!("\"{id}\""),
        IkeIdentity::Fqdn(_) | IkeIdentity::Ipv4(_) => id.to_string(),
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn prefixes(nets: &[ipnetwork::Ipv4Network]) -> String {
    join(nets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttachmentKind, Secret};

    fn example() -> Config {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ipsec-example.yaml");
        Config::load(&path).expect("the IPsec example configuration loads")
    }

    /// The value of `key = value` lines of a swanctl.conf, in order of appearance.
    fn values<'a>(conf: &'a str, key: &str) -> Vec<&'a str> {
        conf.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))
            .map(str::trim)
            .collect()
    }

    /// Every `{` has its `}`, and sections open and close in order.
    fn balanced(conf: &str) -> bool {
        let mut depth = 0i32;
        for l in conf.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            if depth < 0 {
                return false;
            }
        }
        depth == 0
    }

    #[test]
    fn a_psk_responder_peer_gets_an_initiating_connection_and_a_secret_placeholder() {
        let conf = swanctl(&example(), "goto-clinic", false).unwrap();
        assert!(balanced(&conf), "{conf}");
        assert!(conf.contains("connections {\n  goto-clinic {\n    version = 2\n"));
        assert_eq!(values(&conf, "remote_addrs"), ["203.0.113.10"]);
        assert!(values(&conf, "remote_port").is_empty());
        assert_eq!(
            values(&conf, "proposals"),
            ["aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha512-ecp256-ecp384-x25519, aes256-aes128-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-ecp256-ecp384-x25519"]
        );
        assert_eq!(
            values(&conf, "esp_proposals"),
            ["aes256gcm16-aes128gcm16, aes256-aes128-sha256-sha384-sha512"]
        );
        assert_eq!(values(&conf, "auth"), ["psk", "psk"]);
        // local (the facility), remote (the gateway), then the secret's owner.
        assert_eq!(
            values(&conf, "id"),
            [
                "goto-clinic.ajisai.example",
                "\"C=JP, O=Kyushu IX, CN=gw.kyushu-ix.example\"",
                "\"C=JP, O=Kyushu IX, CN=gw.kyushu-ix.example\""
            ]
        );
        assert_eq!(values(&conf, "local_ts"), ["10.0.30.0/24"]);
        // imaging-exchange reaches mame-net's 10.0.20.0/24, clinics-file-claims the service.
        assert_eq!(
            values(&conf, "remote_ts"),
            ["100.65.20.0/24, 100.127.0.10/32"]
        );
        assert_eq!(values(&conf, "rekey_time"), ["14400s", "3600s"]);
        assert_eq!(values(&conf, "dpd_delay"), ["30s"]);
        assert_eq!(values(&conf, "start_action"), ["start"]);
        assert_eq!(values(&conf, "dpd_action"), ["restart"]);
        assert_eq!(values(&conf, "close_action"), ["start"]);
        assert_eq!(values(&conf, "keyingtries"), ["0"]);
        assert!(values(&conf, "rekey_bytes").is_empty());
        assert!(conf.contains("secrets {\n  ike-goto-clinic {\n"));
        assert_eq!(values(&conf, "secret"), ["REPLACE_WITH_THE_PRE_SHARED_KEY"]);
        assert!(values(&conf, "certs").is_empty() && values(&conf, "cacerts").is_empty());
    }

    #[test]
    fn the_pre_shared_key_is_written_only_when_asked_for() {
        let c = example();
        let AttachmentKind::Ipsec(ipsec) = &c.tenants[0].attachments[0].kind else {
            panic!("ipsec")
        };
        let IpsecAuth::Psk { psk, .. } = &ipsec.peers[0].auth else {
            panic!("psk")
        };
        let hex: String = psk.expose().iter().map(|b| format!("{b:02x}")).collect();
        let conf = swanctl(&c, "goto-clinic", true).unwrap();
        assert_eq!(values(&conf, "secret"), [format!("0x{hex}")]);
        let without = swanctl(&c, "goto-clinic", false).unwrap();
        assert!(!without.contains(&hex));
        assert_eq!(psk, &Secret::new(hex_decode(&hex)));
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_certificate_peer_the_gateway_initiates_to_waits_and_names_its_certificates() {
        let conf = swanctl(&example(), "nagasaki-hospital", false).unwrap();
        assert!(balanced(&conf), "{conf}");
        assert_eq!(values(&conf, "auth"), ["pubkey", "pubkey"]);
        assert_eq!(
            values(&conf, "id"),
            [
                "\"C=JP, O=Nagasaki Hospital, CN=vpn.nagasaki-hospital.example\"",
                "\"C=JP, O=Kyushu IX, CN=gw.kyushu-ix.example\""
            ]
        );
        assert_eq!(values(&conf, "certs"), ["nagasaki-hospital.crt"]);
        assert_eq!(values(&conf, "cacerts"), ["ajisai-ipsec-ca.crt"]);
        assert_eq!(values(&conf, "proposals"), ["aes256gcm16-prfsha384-ecp384"]);
        assert_eq!(values(&conf, "esp_proposals"), ["aes256gcm16-ecp384"]);
        assert_eq!(values(&conf, "local_ts"), ["10.0.40.0/24"]);
        assert_eq!(
            values(&conf, "remote_ts"),
            ["100.65.0.0/16, 100.127.0.10/32"]
        );
        assert_eq!(values(&conf, "rekey_time"), ["28800s", "1800s"]);
        assert_eq!(values(&conf, "rekey_bytes"), [(10u64 << 30).to_string()]);
        assert_eq!(values(&conf, "dpd_delay"), ["10s"]);
        assert_eq!(values(&conf, "start_action"), ["none"]);
        assert_eq!(values(&conf, "dpd_action"), ["clear"]);
        assert!(!conf.contains("secrets"));
    }

    #[test]
    fn other_ports_and_a_missing_public_address_are_handled() {
        let mut c = example();
        let AttachmentKind::Ipsec(ipsec) = &mut c.tenants[0].attachments[0].kind else {
            panic!("ipsec")
        };
        ipsec.ike_port = 1500;
        let conf = swanctl(&c, "goto-clinic", false).unwrap();
        assert_eq!(values(&conf, "remote_port"), ["1500"]);
        assert!(conf.contains("# the gateway uses UDP 1500 and 4500"));
        c.ix.public_address = None;
        let conf = swanctl(&c, "goto-clinic", false).unwrap();
        assert_eq!(values(&conf, "remote_addrs"), ["192.0.2.10"]);
        let AttachmentKind::Ipsec(ipsec) = &mut c.tenants[0].attachments[0].kind else {
            panic!("ipsec")
        };
        ipsec.listen = std::net::Ipv4Addr::UNSPECIFIED;
        let err = swanctl(&c, "goto-clinic", false).unwrap_err();
        assert!(err.to_string().contains("ix.public_address"), "{err}");
    }

    #[test]
    fn a_peer_config_is_rendered_by_the_peers_kind() {
        use super::super::{render, Secrets};
        let c = example();
        let conf = render(&c, "goto-clinic", Secrets::default()).unwrap();
        assert!(conf.starts_with("# ixgw peer configuration for goto-clinic"));
        assert!(conf.contains("connections {"));
        let conf = render(&c, "izumo-hospital", Secrets::default()).unwrap();
        assert!(conf.contains("[Interface]"));
        let wrong = Secrets {
            psk: true,
            ..Secrets::default()
        };
        let err = render(&c, "izumo-hospital", wrong).unwrap_err();
        assert!(err.to_string().contains("--with-psk"), "{err}");
        let wrong = Secrets {
            private_key: Some("KEY"),
            ..Secrets::default()
        };
        let err = render(&c, "goto-clinic", wrong).unwrap_err();
        assert!(err.to_string().contains("--private-key"), "{err}");
        let err = render(&c, "nobody", Secrets::default()).unwrap_err();
        assert!(err.to_string().contains("\"nobody\""), "{err}");
    }
}
