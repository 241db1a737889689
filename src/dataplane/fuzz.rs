//! Fuzzing bodies for the whole pipeline, shared by `fuzz/` targets and property tests.
//!
//! The oracle is the data path's accounting: every packet that comes out of an attachment
//! is either forwarded or counted under exactly one drop reason. Garbage never panics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Gateway, Plan};
use crate::buffer::{RxBatch, TxBatch, Via, BUF_SIZE};
use crate::config::*;
use crate::ids::{AttachmentId, FacilityCode};
use crate::vocab::DropReason;

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().expect("a literal prefix")
}

/// A tenant with one plain attachment routing its whole internal prefix.
pub(crate) fn plain(name: &str, internal: &str, exchange: &str) -> Tenant {
    Tenant {
        name: name.into(),
        trust: vec![],
        networks: vec![Network {
            internal: net(internal),
            exchange: net(exchange),
        }],
        attachments: vec![Attachment {
            name: format!("{name}-lan"),
            kind: AttachmentKind::Plain(PlainAttachment {
                tun: format!("t-{name}"),
                mtu: 1500,
                routes: vec![net(internal)],
                kernel_routes: vec![],
                directed_broadcast: false,
            }),
        }],
    }
}

/// A tenant behind one `ethernet` attachment `{name}-eth` on port `ixcar0`: the gateway is
/// the first host of `internal` (its connected prefix), no next hop.
#[cfg(test)]
pub(crate) fn ethernet(name: &str, internal: &str, exchange: &str, vlan: Option<u16>) -> Tenant {
    let connected = net(internal);
    let gateway = ipnetwork::Ipv4Network::new(
        std::net::Ipv4Addr::from(u32::from(connected.network()) + 1),
        connected.prefix(),
    )
    .expect("a literal prefix");
    Tenant {
        name: name.into(),
        trust: vec![],
        networks: vec![Network {
            internal: connected,
            exchange: net(exchange),
        }],
        attachments: vec![Attachment {
            name: format!("{name}-eth"),
            kind: AttachmentKind::Ethernet(EthernetAttachment {
                interface: "ixcar0".into(),
                vlan,
                address: gateway,
                mac: [2, 0, 0x5e, 0, 0x53, 1],
                next_hop: None,
                routes: vec![],
                mtu: 1500,
                directed_broadcast: false,
            }),
        }],
    }
}

/// An IPsec peer with a pre-shared key that responds, with every other key at its default.
pub fn psk_ipsec_peer(name: &str, facility: &str, remote_ts: &str) -> IpsecPeer {
    IpsecPeer {
        name: name.into(),
        facility: FacilityCode::parse(facility).expect("a literal code"),
        remote_id: IkeIdentity::Fqdn(format!("{name}.example")),
        auth: IpsecAuth::Psk {
            psk_file: PathBuf::from(format!("{name}.psk")),
            psk: Secret::new(vec![7; 32]),
        },
        remote_ts: vec![net(remote_ts)],
        local_ts: None,
        endpoint: None,
        start: IpsecStart::Respond,
        proposals: vec![],
        esp_proposals: vec![],
        ike_rekey_time: std::time::Duration::from_secs(14_400),
        child_rekey_time: std::time::Duration::from_secs(3600),
        child_rekey_bytes: None,
        dpd_interval: std::time::Duration::from_secs(30),
        dpd_timeout: std::time::Duration::from_secs(150),
        dpd_action: DpdAction::Clear,
        directed_broadcast: false,
    }
}

/// A policy from every host of tenant `from` to every host of tenant `to`.
pub(crate) fn tenant_policy(name: &str, from: &str, to: &str, allow: Vec<PortRule>) -> Policy {
    Policy {
        name: name.into(),
        from: Source {
            tenants: vec![from.into()],
            ..Source::default()
        },
        to: Destination::Tenants {
            tenants: vec![to.into()],
            prefixes: vec![],
        },
        allow,
    }
}

/// A configuration of `tenants` in the exchange space 100.64.0.0/10 with metrics on an
/// ephemeral loopback port and a flow table of `flows` entries.
pub(crate) fn config_of(
    flows: usize,
    tenants: Vec<Tenant>,
    services: Vec<Service>,
    policies: Vec<Policy>,
) -> Config {
    Config {
        source: PathBuf::from("test.yaml"),
        ix: Ix {
            name: "test-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: None,
        },
        metrics: Metrics {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_socket: None,
            peer_series: PeerSeries::All,
        },
        dataplane: Dataplane {
            flow_table_size: flows,
            ..Dataplane::default()
        },
        tenants,
        services,
        policies,
        agreements: vec![],
        trust: vec![],
        facilities: None,
        audit: None,
        usage: None,
        warnings: vec![],
    }
}

/// Two overlapping plain tenants that may talk both ways, a claims tenant, and a WireGuard
/// tenant with one peer.
pub fn fuzz_config() -> Config {
    let any = || {
        vec![PortRule {
            protocol: Protocol::Any,
            ports: None,
        }]
    };
    let policy = |name: &str, from: &str, to: &str| tenant_policy(name, from, to, any());
    let tenants = vec![
        plain("a", "10.0.0.0/24", "100.64.0.0/24"),
        plain("b", "10.0.0.0/24", "100.65.0.0/24"),
        plain("c", "192.168.50.0/24", "100.127.0.0/24"),
        Tenant {
            name: "w".into(),
            trust: vec![],
            networks: vec![Network {
                internal: net("10.9.0.0/24"),
                exchange: net("100.66.0.0/24"),
            }],
            attachments: vec![Attachment {
                name: "w-wg".into(),
                kind: AttachmentKind::WireGuard(WireGuardAttachment {
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                    private_key_file: PathBuf::from("w.key"),
                    private_key: Key32([7; 32]),
                    mtu: 1420,
                    peers: vec![WireGuardPeer {
                        name: "w1".into(),
                        facility: FacilityCode::parse("4212345674").expect("a literal code"),
                        public_key: Key32(crate::tunnel::wireguard::keys::public_key(&[9; 32])),
                        preshared_key_file: None,
                        preshared_key: None,
                        allowed_ips: vec![net("10.9.0.0/24")],
                        address: None,
                        endpoint: Some(SocketAddr::from(([127, 0, 0, 1], 51999))),
                        persistent_keepalive: None,
                        directed_broadcast: false,
                    }],
                }),
            }],
        },
    ];
    let policies = vec![
        policy("ab", "a", "b"),
        policy("ba", "b", "a"),
        policy("aw", "a", "w"),
        policy("ac", "a", "c"),
    ];
    config_of(64, tenants, vec![], policies)
}

/// Feeds records `[selector, len_hi, len_lo, bytes..]` to a gateway in batches of up to 8:
/// the selector picks the attachment (three plain ones and a WireGuard one), every few records
/// time advances and timers run. Asserts the accounting oracle for the plain attachments.
pub fn pipeline(data: &[u8]) {
    let mut now = Instant::now();
    let mut gw = Gateway::new(Arc::new(Plan::compile(&fuzz_config(), 1)), now);
    let mut rx = RxBatch::new(8);
    let mut tx = TxBatch::new(64);
    let wg_from = SocketAddr::from(([192, 0, 2, 1], 51820));
    let mut rest = data;
    let mut plain_in = 0u64;
    while rest.len() >= 3 {
        let selector = rest[0];
        let len = (usize::from(rest[1]) << 8 | usize::from(rest[2])).min(rest.len() - 3);
        let packet = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let attachment = AttachmentId(u16::from(selector % 4));
        // Plain attachments read at most their MTU from the device.
        let packet = if attachment.0 < 3 {
            &packet[..packet.len().min(1500)]
        } else {
            &packet[..packet.len().min(BUF_SIZE)]
        };
        let via = if attachment.0 == 3 {
            Via::udp(0, wg_from)
        } else {
            Via::DEVICE
        };
        if attachment.0 < 3 {
            plain_in += 1;
        }
        let _ = rx.push(attachment, via, packet);
        if rx.is_full() || selector & 0x80 != 0 {
            gw.handle_batch(now, &mut rx, &mut tx);
            rx.clear();
            tx.clear();
        }
        if selector & 0x40 != 0 {
            now += Duration::from_millis(u64::from(selector & 0x3f) * 100);
            gw.handle_timeout(now, &mut tx);
            tx.clear();
        }
    }
    gw.handle_batch(now, &mut rx, &mut tx);

    let c = gw.counters();
    let plain_rx: u64 = c.tenants().take(3).map(|(_, t)| t.rx_packets.get()).sum();
    assert_eq!(
        plain_rx, plain_in,
        "every packet from a plain attachment enters the pipeline"
    );
    let entered: u64 = c.tenants().map(|(_, t)| t.rx_packets.get()).sum();
    let forwarded: u64 = c.tenants().map(|(_, t)| t.tx_packets.get()).sum();
    let dropped: u64 = c
        .drops()
        .filter(|(_, r, _)| !r.as_str().starts_with("wg_"))
        .map(|(_, _, n)| n)
        .sum();
    let generated = c.drop_count(DropReason::TooBig);
    assert!(
        forwarded + dropped >= entered && forwarded + dropped <= entered + generated,
        "every packet is forwarded or counted once: in {entered}, forwarded {forwarded}, dropped {dropped}"
    );
}
