//! `ixgw show`: what the running daemon tells about its attachments and peers, like `wg show`
//! and `swanctl --list-sas`, for the helpdesk and for scripts.
//!
//! The daemon builds a [`Report`] (runtime/show.rs) and serves it as JSON on its admin socket
//! (`GET /show`); `ixgw show` fetches it, keeps what its argument names ([`Report::only`]) and
//! prints it as text ([`Report::render`]) or, with `--json`, as JSON. The JSON is the scripting
//! interface: fields are added, never renamed, and a field the other side lacks takes its
//! default, so an older CLI reads a newer daemon and the other way round.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Everything the daemon runs, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// `ix.name`.
    pub gateway: String,
    /// Unix seconds when the report was made.
    pub at: u64,
    /// The configuration's generation (1 at the start, +1 per reload).
    pub generation: u64,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attachment {
    pub name: String,
    pub tenant: String,
    /// `wireguard`, `ipsec`, `plain`, `ethernet`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Sockets, devices and ports: `udp 0.0.0.0:51820`, `esp 192.0.2.1`, `tun ixgw-claims`,
    /// `link ixcar0 vlan 200`.
    pub listen: Vec<String>,
    /// WireGuard: the gateway's public key (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Ethernet: the neighbour cache and what ARP did (see `ixgw_arp_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp: Option<Arp>,
    pub peers: Vec<Peer>,
}

/// An `ethernet` attachment's ARP, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Arp {
    /// Entries in the neighbour cache: reachable, stale, incomplete and failed.
    pub neighbours: u64,
    /// ARP requests sent: first asks, retries, probes of stale neighbours.
    pub requests: u64,
    /// ARP replies sent for the gateway's address.
    pub replies: u64,
    /// Next hops that did not answer their requests (went to the failed state).
    pub failures: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peer {
    pub name: String,
    pub tenant: String,
    /// The facility code.
    pub facility: String,
    /// The registry's name of the facility ("" when it has none).
    pub facility_name: String,
    /// The facility's certificate state (`valid`, `revoked`, ...), with why; none without a
    /// registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Where its tunnel packets come from now (or the configured endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `up`, `down` (it had a session), `never` (no handshake since the start), `refused`
    /// (its facility's certificate stops it).
    pub state: String,
    /// Unix seconds of the last completed handshake (IPsec: IKE SA established or rekeyed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handshake: Option<u64>,
    /// WireGuard: its public key (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub wire_rx_bytes: u64,
    pub wire_tx_bytes: u64,
    /// Its packets dropped after decryption (see `ixgw_peer_drops_total`).
    pub drops: u64,
}

impl Report {
    /// The part of the report `name` names: an attachment (all of it), a tenant (its
    /// attachments and the peers it owns), a peer or a facility code (those peers under their
    /// attachments). `None` when nothing has that name.
    pub fn only(&self, name: &str) -> Option<Report> {
        let mut out = self.clone();
        out.attachments.retain_mut(|a| {
            if a.name == name || a.tenant == name {
                return true;
            }
            a.peers
                .retain(|p| p.name == name || p.tenant == name || p.facility == name);
            !a.peers.is_empty()
        });
        (!out.attachments.is_empty()).then_some(out)
    }

    /// The report as text, one block per attachment and per peer, times relative to `now`
    /// (Unix seconds).
    pub fn render(&self, now: u64) -> String {
        let mut out = String::new();
        for (i, a) in self.attachments.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let up = a.peers.iter().filter(|p| p.state == "up").count();
            let _ = writeln!(
                out,
                "attachment: {} ({}, tenant {})",
                a.name, a.kind, a.tenant
            );
            for l in &a.listen {
                let _ = writeln!(out, "  listening: {l}");
            }
            if let Some(k) = &a.public_key {
                let _ = writeln!(out, "  public key: {k}");
            }
            if let Some(arp) = &a.arp {
                let _ = writeln!(out, "  neighbours: {}", arp.neighbours);
                let _ = writeln!(out, "  arp requests sent: {}", arp.requests);
                let _ = writeln!(out, "  arp replies sent: {}", arp.replies);
                let _ = writeln!(out, "  arp failures: {}", arp.failures);
            }
            if !matches!(a.kind.as_str(), "plain" | "ethernet") {
                let _ = writeln!(out, "  peers: {up} of {} up", a.peers.len());
            }
            for p in &a.peers {
                render_peer(&mut out, p, now);
            }
        }
        out
    }
}

fn render_peer(out: &mut String, p: &Peer, now: u64) {
    let _ = writeln!(out, "\n  peer: {}", p.name);
    let name = if p.facility_name.is_empty() {
        String::new()
    } else {
        format!(" {}", p.facility_name)
    };
    let _ = writeln!(out, "    facility: {}{name}", p.facility);
    if let Some(c) = &p.certificate {
        let _ = writeln!(out, "    certificate: {c}");
    }
    if let Some(k) = &p.public_key {
        let _ = writeln!(out, "    public key: {k}");
    }
    let _ = writeln!(
        out,
        "    endpoint: {}",
        p.endpoint.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(out, "    state: {}", p.state);
    let latest = match p.last_handshake {
        Some(t) => format!("{} ago", ago(now.saturating_sub(t))),
        None => "(none)".into(),
    };
    let _ = writeln!(out, "    latest handshake: {latest}");
    let _ = writeln!(
        out,
        "    transfer: {} received, {} sent ({} and {} packets)",
        bytes(p.rx_bytes),
        bytes(p.tx_bytes),
        p.rx_packets,
        p.tx_packets
    );
    let _ = writeln!(
        out,
        "    on the wire: {} received, {} sent",
        bytes(p.wire_rx_bytes),
        bytes(p.wire_tx_bytes)
    );
    let _ = writeln!(out, "    drops: {}", p.drops);
}

/// `1 hour, 2 minutes, 3 seconds`, as `wg show` writes it.
fn ago(mut s: u64) -> String {
    if s == 0 {
        return "0 seconds".into();
    }
    let mut parts = Vec::new();
    for (unit, len) in [
        ("day", 86_400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ] {
        let n = s / len;
        s %= len;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    parts.join(", ")
}

/// `1.50 MiB`, as `wg show` writes transfer.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, tenant: &str, facility: &str, state: &str) -> Peer {
        Peer {
            name: name.into(),
            tenant: tenant.into(),
            facility: facility.into(),
            facility_name: "Omura clinic".into(),
            certificate: Some("valid".into()),
            endpoint: Some("192.0.2.10:51820".into()),
            state: state.into(),
            last_handshake: Some(1_000),
            public_key: None,
            rx_packets: 3,
            rx_bytes: 1536,
            tx_packets: 2,
            tx_bytes: 100,
            wire_rx_bytes: 1700,
            wire_tx_bytes: 164,
            drops: 1,
        }
    }

    fn report() -> Report {
        Report {
            gateway: "ix".into(),
            at: 1_100,
            generation: 2,
            attachments: vec![
                Attachment {
                    name: "ajisai-wg".into(),
                    tenant: "ajisai-net".into(),
                    kind: "wireguard".into(),
                    listen: vec!["udp 0.0.0.0:51820".into()],
                    public_key: Some("KEY=".into()),
                    arp: None,
                    peers: vec![
                        peer("omura", "ajisai-net", "4212345674", "up"),
                        peer("sasebo", "ajisai-net", "4212345682", "never"),
                    ],
                },
                Attachment {
                    name: "claims-lan".into(),
                    tenant: "claims".into(),
                    kind: "plain".into(),
                    listen: vec!["tun ixgw-claims".into()],
                    public_key: None,
                    arp: None,
                    peers: vec![],
                },
                Attachment {
                    name: "carrier-eth".into(),
                    tenant: "carrier".into(),
                    kind: "ethernet".into(),
                    listen: vec!["link ixcar0 vlan 200".into()],
                    public_key: None,
                    arp: Some(Arp {
                        neighbours: 2,
                        requests: 3,
                        replies: 1,
                        failures: 1,
                    }),
                    peers: vec![],
                },
            ],
        }
    }

    #[test]
    fn text_names_every_peer_with_its_facility_endpoint_and_transfer() {
        let text = report().render(1_100);
        for line in [
            "attachment: ajisai-wg (wireguard, tenant ajisai-net)",
            "  listening: udp 0.0.0.0:51820",
            "  peers: 1 of 2 up",
            "  peer: omura",
            "    facility: 4212345674 Omura clinic",
            "    certificate: valid",
            "    endpoint: 192.0.2.10:51820",
            "    state: up",
            "    latest handshake: 1 minute, 40 seconds ago",
            "    transfer: 1.50 KiB received, 100 B sent (3 and 2 packets)",
            "    drops: 1",
            "attachment: claims-lan (plain, tenant claims)",
            "attachment: carrier-eth (ethernet, tenant carrier)",
            "  listening: link ixcar0 vlan 200",
            "  neighbours: 2",
            "  arp requests sent: 3",
            "  arp replies sent: 1",
            "  arp failures: 1",
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` not in:\n{text}");
        }
        assert!(
            !text.contains("peers: 0 of 0"),
            "plain and ethernet attachments have no peers"
        );
        assert_eq!(text.matches("neighbours:").count(), 1, "ethernet only");
    }

    #[test]
    fn only_keeps_what_the_name_names() {
        let r = report();
        let by_peer = r.only("sasebo").unwrap();
        assert_eq!(by_peer.attachments.len(), 1);
        assert_eq!(by_peer.attachments[0].peers.len(), 1);
        assert_eq!(by_peer.attachments[0].peers[0].name, "sasebo");
        let by_attachment = r.only("ajisai-wg").unwrap();
        assert_eq!(by_attachment.attachments[0].peers.len(), 2);
        let by_tenant = r.only("claims").unwrap();
        assert_eq!(by_tenant.attachments[0].name, "claims-lan");
        let by_facility = r.only("4212345674").unwrap();
        assert_eq!(by_facility.attachments[0].peers[0].name, "omura");
        assert_eq!(r.only("nobody"), None);
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""type":"wireguard""#), "{text}");
        assert!(
            text.contains(r#""arp":{"neighbours":2,"requests":3,"replies":1,"failures":1}"#),
            "{text}"
        );
        assert_eq!(text.matches(r#""arp""#).count(), 1, "ethernet only");
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), r);
    }

    #[test]
    fn durations_and_sizes_read_like_wg_show() {
        assert_eq!(ago(0), "0 seconds");
        assert_eq!(ago(3661), "1 hour, 1 minute, 1 second");
        assert_eq!(ago(172_800), "2 days");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024 * 1024 * 3 / 2), "1.50 MiB");
    }
}
