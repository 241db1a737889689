//! `ixgw peer-config`: the facility side's configuration — a wg-quick file for a WireGuard
//! peer, a strongSwan swanctl.conf for an IPsec peer, the openconnect command line for a TLS
//! peer — derived from the same configuration the
//! gateway runs, so that onboarding a facility is one command.
//!
//! AllowedIPs (WireGuard) and the facility's remote traffic selectors (IPsec, unless the peer
//! sets `local_ts`) list every exchange prefix the peer can exchange traffic with in either
//! direction: what its policies let it open, and who may open flows to it (the replies come
//! from there and the tunnel's selectors would drop them otherwise).

#![forbid(unsafe_code)]

use std::fmt::Write;

use crate::config::{AttachmentKind, Config, WireGuardAttachment, WireGuardPeer};
use crate::ids::FacilityCode;
pub(crate) use crate::policy::reach::reachable;

mod openconnect;
mod swanctl;

pub use openconnect::openconnect;
pub use swanctl::swanctl;

#[derive(Debug, thiserror::Error)]
pub enum PeerConfigError {
    #[error("{file}: no WireGuard, IPsec or TLS peer is named {peer:?}")]
    UnknownPeer { file: String, peer: String },
    #[error("{file}: peer {peer:?} is {actual} peer; {option} applies to {wanted} peers")]
    OptionNotForPeer {
        file: String,
        peer: String,
        option: &'static str,
        actual: &'static str,
        wanted: &'static str,
    },
    #[error("{file}: ix.public_address is not set and attachment {attachment} listens on {listen}: set ix.public_address to the address facilities dial")]
    NoEndpoint {
        file: String,
        attachment: String,
        listen: std::net::SocketAddr,
    },
}

/// What `ixgw peer-config` fills in besides the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Secrets<'a> {
    /// The facility's WireGuard private key (base64), else a placeholder is written.
    pub private_key: Option<&'a str>,
    /// Write an IPsec peer's pre-shared key (from its `psk_file`), else a placeholder.
    pub psk: bool,
}

/// The facility side's configuration for peer `name`, of the peer's kind.
pub fn render(config: &Config, name: &str, secrets: Secrets) -> Result<String, PeerConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        WireGuard,
        Ipsec,
        Tls,
    }
    let kind = config
        .tenants
        .iter()
        .flat_map(|t| &t.attachments)
        .find_map(|a| match &a.kind {
            AttachmentKind::WireGuard(wg) => wg
                .peers
                .iter()
                .any(|p| p.name == name)
                .then_some(Kind::WireGuard),
            AttachmentKind::Ipsec(ipsec) => ipsec
                .peers
                .iter()
                .any(|p| p.name == name)
                .then_some(Kind::Ipsec),
            AttachmentKind::Tls(tls) => tls
                .peers
                .iter()
                .any(|p| p.name == name)
                .then_some(Kind::Tls),
            AttachmentKind::Plain(_) | AttachmentKind::Ethernet(_) => None,
        });
    let mismatch = |actual, option, wanted| PeerConfigError::OptionNotForPeer {
        file: config.source.display().to_string(),
        peer: name.into(),
        option,
        actual,
        wanted,
    };
    match kind {
        Some(Kind::WireGuard) if secrets.psk => Err(mismatch("a WireGuard", "--with-psk", "IPsec")),
        Some(Kind::Ipsec) if secrets.private_key.is_some() => {
            Err(mismatch("an IPsec", "--private-key", "WireGuard"))
        }
        Some(Kind::Tls) if secrets.psk => Err(mismatch("a TLS", "--with-psk", "IPsec")),
        Some(Kind::Tls) if secrets.private_key.is_some() => {
            Err(mismatch("a TLS", "--private-key", "WireGuard"))
        }
        Some(Kind::Tls) => openconnect(config, name),
        Some(Kind::WireGuard) => wg_quick(config, name, secrets.private_key),
        Some(Kind::Ipsec) => swanctl(config, name, secrets.psk),
        None => Err(PeerConfigError::UnknownPeer {
            file: config.source.display().to_string(),
            peer: name.into(),
        }),
    }
}

/// Where facilities dial attachment `attachment` listening on `listen`: `ix.public_address`,
/// else the listen address unless it is the wildcard.
fn gateway_host(
    config: &Config,
    attachment: &str,
    listen: std::net::SocketAddr,
) -> Result<std::net::IpAddr, PeerConfigError> {
    match config.ix.public_address {
        Some(a) => Ok(a),
        None if !listen.ip().is_unspecified() => Ok(listen.ip()),
        None => Err(PeerConfigError::NoEndpoint {
            file: config.source.display().to_string(),
            attachment: attachment.to_string(),
            listen,
        }),
    }
}

/// The comment lines every peer configuration starts with: whose it is and where from.
fn header(config: &Config, peer: &str, facility: FacilityCode, tenant: &str) -> String {
    format!(
        "# ixgw peer configuration for {peer} (facility {facility}, tenant {tenant})\n\
         # generated from {} by `ixgw peer-config`; IX {}\n",
        config.source.display(),
        config.ix.name
    )
}

/// Renders the wg-quick configuration for peer `name`. `private_key` is the facility's own
/// private key (base64) if the operator has it; otherwise a placeholder is written.
pub fn wg_quick(
    config: &Config,
    name: &str,
    private_key: Option<&str>,
) -> Result<String, PeerConfigError> {
    let file = config.source.display().to_string();
    let found = config.tenants.iter().find_map(|t| {
        t.attachments.iter().find_map(|a| match &a.kind {
            AttachmentKind::WireGuard(wg) => wg
                .peers
                .iter()
                .find(|p| p.name == name)
                .map(|p| (t, a, wg, p)),
            AttachmentKind::Plain(_)
            | AttachmentKind::Ipsec(_)
            | AttachmentKind::Ethernet(_)
            | AttachmentKind::Tls(_) => None,
        })
    });
    let Some((tenant, attachment, wg, peer)) = found else {
        return Err(PeerConfigError::UnknownPeer {
            file,
            peer: name.into(),
        });
    };
    let host = gateway_host(config, &attachment.name, wg.listen)?;
    let endpoint = std::net::SocketAddr::new(host, wg.listen.port());
    let allowed = reachable(config, tenant, peer.facility, &peer.allowed_ips);

    let mut s = header(config, &peer.name, peer.facility, &tenant.name);
    let _ = writeln!(s, "[Interface]");
    match private_key {
        Some(k) => {
            let _ = writeln!(s, "PrivateKey = {}", k.trim());
        }
        None => {
            let _ = writeln!(s, "# The facility's own key: `wg genkey`; its public key must be this peer's public_key.");
            let _ = writeln!(s, "PrivateKey = REPLACE_WITH_FACILITY_PRIVATE_KEY");
        }
    }
    let _ = writeln!(s, "Address = {}", interface_address(peer));
    let _ = writeln!(s, "MTU = {}", wg.mtu);
    let _ = writeln!(s);
    let _ = writeln!(s, "[Peer]");
    let _ = writeln!(
        s,
        "# {} gateway, attachment {}",
        config.ix.name, attachment.name
    );
    let _ = writeln!(s, "PublicKey = {}", gateway_public_key(wg));
    if let Some(psk) = &peer.preshared_key {
        let _ = writeln!(
            s,
            "PresharedKey = {}",
            crate::tunnel::wireguard::keys::encode(&psk.0)
        );
    }
    let _ = writeln!(s, "Endpoint = {endpoint}");
    let list: Vec<String> = allowed.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(s, "AllowedIPs = {}", list.join(", "));
    if let Some(k) = peer.persistent_keepalive {
        let _ = writeln!(s, "PersistentKeepalive = {k}");
    }
    Ok(s)
}

fn gateway_public_key(wg: &WireGuardAttachment) -> String {
    let k = crate::tunnel::wireguard::keys::public_key(&wg.private_key.0);
    crate::tunnel::wireguard::keys::encode(&k)
}

/// The facility's tunnel address: configured, or the first allowed-ips network (its first
/// host when it is a subnet).
fn interface_address(peer: &WireGuardPeer) -> String {
    if let Some(a) = peer.address {
        return a.to_string();
    }
    match peer.allowed_ips.first() {
        Some(n) if n.prefix() == 32 => format!("{}/32", n.ip()),
        Some(n) => {
            let first = std::net::Ipv4Addr::from(u32::from(n.network()).wrapping_add(1));
            format!("{first}/{}", n.prefix())
        }
        None => "0.0.0.0/32".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ixgw.yaml");
        Config::load(&path).expect("the example configuration loads")
    }

    fn allowed_ips(conf: &str) -> Vec<&str> {
        let line = conf
            .lines()
            .find(|l| l.starts_with("AllowedIPs = "))
            .expect("AllowedIPs line");
        line["AllowedIPs = ".len()..].split(", ").collect()
    }

    #[test]
    fn opener_gets_what_its_policies_reach() {
        let conf = wg_quick(&example(), "omura-clinic", Some("KEY")).unwrap();
        // imaging-exchange: mame-net 10.0.20.0/24 → 100.65.20.0/24; the claims service /32.
        assert_eq!(allowed_ips(&conf), ["100.65.20.0/24", "100.127.0.10/32"]);
        assert!(conf.contains("PrivateKey = KEY\n"));
        assert!(conf.contains("Address = 10.0.1.1/24\n"));
        assert!(conf.contains("Endpoint = 203.0.113.10:51820\n"));
        assert!(conf.contains("PresharedKey = "));
        assert!(conf.contains("PersistentKeepalive = 25\n"));
        let c = example();
        let AttachmentKind::WireGuard(wg) = &c.tenants[0].attachments[0].kind else {
            panic!("wireguard")
        };
        let gw = crate::tunnel::wireguard::keys::public_key(&wg.private_key.0);
        assert!(conf.contains(&format!(
            "PublicKey = {}\n",
            crate::tunnel::wireguard::keys::encode(&gw)
        )));
    }

    #[test]
    fn responder_gets_the_openers_prefixes_for_the_replies() {
        let conf = wg_quick(&example(), "izumo-hospital", None).unwrap();
        // ajisai-net may open flows to izumo's prefix: its replies come from 100.64.0.0/16.
        assert_eq!(allowed_ips(&conf), ["100.64.0.0/16", "100.127.0.10/32"]);
        assert!(conf.contains("PrivateKey = REPLACE_WITH_FACILITY_PRIVATE_KEY"));
        assert!(!conf.contains("PresharedKey"));
        assert!(
            conf.contains("Address = 10.0.20.1/24\n"),
            "first host of allowed_ips:\n{conf}"
        );
    }

    #[test]
    fn facility_and_prefix_filters_narrow_what_a_peer_gets() {
        let mut c = example();
        // imaging-exchange only for omura-clinic's facility: sasebo keeps only the claims
        // service, and izumo's replies come only from omura-clinic's tenant.
        c.agreements[0].grant.from.facilities =
            vec![crate::ids::FacilityCode::parse("4212345674").unwrap()];
        let conf = wg_quick(&c, "sasebo-pharmacy", None).unwrap();
        assert_eq!(allowed_ips(&conf), ["100.127.0.10/32"]);
        // Only 10.0.1.0/24 may open: izumo's replies come from 100.64.1.0/24.
        c.agreements[0].grant.from.prefixes = vec!["10.0.1.0/24".parse().unwrap()];
        let conf = wg_quick(&c, "izumo-hospital", None).unwrap();
        assert_eq!(allowed_ips(&conf), ["100.64.1.0/24", "100.127.0.10/32"]);
    }

    #[test]
    fn unknown_peers_are_errors() {
        let err = wg_quick(&example(), "nobody", None).unwrap_err();
        assert!(err.to_string().contains("\"nobody\""), "{err}");
    }

    #[test]
    fn endpoint_needs_a_public_address_or_a_specific_listen_address() {
        let mut c = example();
        c.ix.public_address = None;
        let err = wg_quick(&c, "omura-clinic", None).unwrap_err();
        assert!(err.to_string().contains("ix.public_address"), "{err}");
    }
}
