//! The report `ixgw show` prints, made from the running plan, the workers' counters (summed
//! as the metrics scrape sums them) and the facility registry's verdicts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::admin::show::{Arp, Attachment, Peer, Report};
use crate::dataplane::Plan;
use crate::dataplane::{AttachmentPlanKind, Io, PeerPlanKind};
use crate::facility::FacilityState;
use crate::metrics::peer_is_up;
use crate::tunnel::wireguard::keys;
use crate::vocab::counters::SESSION_NONE;
use crate::vocab::Counters;

/// One peer's counts summed over workers.
#[derive(Default)]
struct Sum {
    traffic: [u64; 4],
    wire: [u64; 2],
    drops: u64,
    endpoint: Option<std::net::SocketAddr>,
    last_handshake: Option<Instant>,
    session: u8,
}

/// What `ixgw show` describes: the running plan and where its sockets are bound (a
/// configured port 0 is the port the kernel chose).
pub(crate) struct Shown {
    pub(crate) plan: Arc<Plan>,
    bound: HashMap<super::SourceKey, std::net::SocketAddr>,
}

impl Shown {
    pub(crate) fn new(plan: Arc<Plan>, bound: &HashMap<super::SourceKey, super::Bound>) -> Shown {
        let bound = (bound.iter())
            .filter_map(|(k, b)| Some((k.clone(), b.addr?)))
            .collect();
        Shown { plan, bound }
    }

    /// Where attachment `a`'s `i`-th socket is bound, if it is one.
    fn bound(
        &self,
        a: &crate::dataplane::AttachmentPlan,
        i: usize,
    ) -> Option<std::net::SocketAddr> {
        self.bound.get(&super::SourceKey::of(a, i)).copied()
    }
}

/// A facility of the registry as `ixgw show` names it.
pub(crate) struct Registered {
    pub(crate) name: String,
    pub(crate) state: FacilityState,
    /// Why it is in that state.
    pub(crate) detail: String,
}

/// The registry's facilities by code; empty without a registry.
pub(crate) type Certificates = HashMap<String, Registered>;

/// The registry's facilities and their verdicts now.
pub(crate) fn certificates(authority: &crate::facility::Authority) -> Certificates {
    (0..authority.len())
        .filter_map(|i| {
            let id = crate::ids::FacilityId(i as u32);
            let spec = authority.spec(id)?;
            let v = authority.verdict(id)?;
            let r = Registered {
                name: spec.name.clone(),
                state: v.state,
                detail: v.detail.clone(),
            };
            Some((spec.code.to_string(), r))
        })
        .collect()
}

/// The report at the monotonic `now`, which is the wall clock `wall`.
pub(crate) fn report(
    gateway: &str,
    shown: &Shown,
    tables: &[Arc<Counters>],
    certificates: &Certificates,
    now: Instant,
    wall: SystemTime,
) -> Report {
    let mut sums: HashMap<(&str, &str), Sum> = HashMap::new();
    for t in tables {
        for v in t.peers() {
            let s = sums
                .entry((v.labels.attachment.as_str(), v.labels.peer.as_str()))
                .or_default();
            let tr = v.traffic;
            let counts = [
                tr.rx_packets.get(),
                tr.rx_bytes.get(),
                tr.tx_packets.get(),
                tr.tx_bytes.get(),
            ];
            for (a, b) in s.traffic.iter_mut().zip(counts) {
                *a = a.wrapping_add(b);
            }
            s.wire[0] = s.wire[0].wrapping_add(v.wire_rx_bytes);
            s.wire[1] = s.wire[1].wrapping_add(v.wire_tx_bytes);
            s.drops = s.drops.wrapping_add(v.drops);
            if v.last_handshake >= s.last_handshake {
                s.endpoint = v.endpoint.or(s.endpoint);
            }
            s.last_handshake = s.last_handshake.max(v.last_handshake);
            s.session = s.session.max(v.session);
        }
    }
    let mut arp: HashMap<&str, Arp> = HashMap::new();
    for t in tables {
        for (name, c) in t.arp() {
            let s = arp.entry(name).or_default();
            s.neighbours = s.neighbours.wrapping_add(c.neighbours);
            s.requests = s.requests.wrapping_add(c.requests);
            s.replies = s.replies.wrapping_add(c.replies);
            s.failures = s.failures.wrapping_add(c.failures);
        }
    }
    let unix = |t: Instant| {
        wall.checked_sub(now.saturating_duration_since(t))
            .and_then(|w| w.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    };
    let plan = &*shown.plan;
    let attachments = plan
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let tenant = plan.tenants[a.tenant.index()].name.clone();
            let (kind, public_key) = match &a.kind {
                AttachmentPlanKind::WireGuard { private_key, .. } => (
                    "wireguard",
                    Some(keys::encode(&keys::public_key(private_key))),
                ),
                AttachmentPlanKind::Plain => ("plain", None),
                AttachmentPlanKind::Ipsec { .. } => ("ipsec", None),
                AttachmentPlanKind::Ethernet(_) => ("ethernet", None),
                AttachmentPlanKind::Tls(_) => ("tls", None),
            };
            let listen =
                a.io.iter()
                    .enumerate()
                    .map(|(n, io)| match io {
                        Io::Udp(addr) => format!("udp {}", shown.bound(a, n).unwrap_or(*addr)),
                        Io::Esp(addr) => format!("esp {addr}"),
                        Io::Tun { name, .. } => format!("tun {name}"),
                        Io::Link {
                            interface,
                            vlan: Some(id),
                        } => format!("link {interface} vlan {id}"),
                        Io::Link {
                            interface,
                            vlan: None,
                        } => format!("link {interface}"),
                        Io::Tls(addr) => format!("tls {addr}"),
                    })
                    .collect();
            let peers = plan
                .peers
                .iter()
                .filter(|p| p.attachment.index() == i)
                .map(|p| {
                    let empty = Sum::default();
                    let s = sums
                        .get(&(a.name.as_str(), p.name.as_str()))
                        .unwrap_or(&empty);
                    let code = p.facility.to_string();
                    let cert = certificates.get(&code);
                    let (configured, public_key) = match &p.kind {
                        PeerPlanKind::WireGuard(c) => {
                            (c.endpoint, Some(keys::encode(&c.public_key)))
                        }
                        PeerPlanKind::Ipsec(_) | PeerPlanKind::Tls(_) => (None, None),
                    };
                    let state = if cert.is_some_and(|c| !c.state.allows_traffic()) {
                        "refused"
                    } else if peer_is_up(s.session, s.last_handshake, now) {
                        "up"
                    } else if s.last_handshake.is_some() || s.session != SESSION_NONE {
                        "down"
                    } else {
                        "never"
                    };
                    Peer {
                        name: p.name.clone(),
                        tenant: tenant.clone(),
                        facility: code,
                        facility_name: cert.map_or_else(String::new, |c| c.name.clone()),
                        certificate: cert.filter(|c| c.state != FacilityState::NotRequired).map(
                            |c| match c.detail.as_str() {
                                "" => c.state.name().to_string(),
                                why if why.starts_with(c.state.name()) => why.to_string(),
                                why => format!("{}: {why}", c.state.name()),
                            },
                        ),
                        endpoint: s.endpoint.or(configured).map(|e| e.to_string()),
                        state: state.into(),
                        last_handshake: s.last_handshake.and_then(unix),
                        public_key,
                        rx_packets: s.traffic[0],
                        rx_bytes: s.traffic[1],
                        tx_packets: s.traffic[2],
                        tx_bytes: s.traffic[3],
                        wire_rx_bytes: s.wire[0],
                        wire_tx_bytes: s.wire[1],
                        drops: s.drops,
                    }
                })
                .collect();
            let arp = match a.kind {
                AttachmentPlanKind::Ethernet(_) => {
                    Some(arp.get(a.name.as_str()).copied().unwrap_or_default())
                }
                _ => None,
            };
            Attachment {
                name: a.name.clone(),
                tenant,
                kind: kind.into(),
                listen,
                public_key,
                arp,
                peers,
            }
        })
        .collect();
    Report {
        gateway: gateway.to_string(),
        at: wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        generation: plan.generation,
        attachments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ArpCounts;

    /// ARP is shown for the ethernet attachment only, summed over workers.
    #[test]
    fn ethernet_attachments_show_their_arp() {
        let config = crate::dataplane::fuzz::config_of(
            64,
            vec![
                crate::dataplane::fuzz::plain("ajisai", "10.1.0.0/24", "100.64.0.0/24"),
                crate::dataplane::fuzz::ethernet(
                    "carrier",
                    "10.0.0.0/24",
                    "100.70.0.0/24",
                    Some(200),
                ),
            ],
            vec![],
            vec![],
        );
        let plan = Arc::new(Plan::compile(&config, 1));
        let now = Instant::now();
        let tables: Vec<Arc<Counters>> = (0..2)
            .map(|_| Arc::new(Counters::new(now, plan.counter_names())))
            .collect();
        for (t, neighbours) in tables.iter().zip([2, 1]) {
            let c = ArpCounts {
                requests: 3,
                replies: 1,
                failures: 1,
                neighbours,
            };
            t.count_arp(1, c);
        }
        let shown = Shown::new(plan, &HashMap::new());

        let r = report(
            "ix",
            &shown,
            &tables,
            &HashMap::new(),
            now,
            SystemTime::now(),
        );

        let a: Vec<(&str, &str, Option<Arp>)> = (r.attachments.iter())
            .map(|a| (a.name.as_str(), a.kind.as_str(), a.arp))
            .collect();
        let arp = Arp {
            neighbours: 3,
            requests: 6,
            replies: 2,
            failures: 2,
        };
        assert_eq!(
            a,
            [
                ("ajisai-lan", "plain", None),
                ("carrier-eth", "ethernet", Some(arp))
            ]
        );
        assert_eq!(r.attachments[1].listen, ["link ixcar0 vlan 200"]);
    }
}
