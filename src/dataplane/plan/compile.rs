//! Config → [`Plan`]: one pass over the tenants, each attachment compiled by its kind into
//! its per-kind plan, its sockets and devices (`Io`) and its routes.

use std::collections::HashMap;

use super::*;
use crate::config::{
    EthernetAttachment, IpsecAttachment, PlainAttachment, Tenant, TlsAttachment,
    WireGuardAttachment,
};
use crate::policy::reach::reachable;
use crate::tunnel::ethernet::{EthernetConfig, LinkConfig};
use crate::wire::ethernet::Mac;

struct Compiler<'c> {
    config: &'c Config,
    attachments: Vec<AttachmentPlan>,
    peers: Vec<PeerPlan>,
    facilities: Vec<FacilityCode>,
    facility_ids: HashMap<FacilityCode, FacilityId>,
    /// The registry's names.
    facility_names: HashMap<FacilityCode, &'c str>,
}

/// What every peer has, whatever its tunnel.
struct PeerCommon<'a> {
    name: &'a str,
    facility: FacilityCode,
    directed_broadcast: bool,
    routes: &'a [Ipv4Network],
}

/// A peer's [`PeerPlan::home_key`]: a hash of its attachment's and its own name, the same
/// in every build (FNV-1a, then MurmurHash3's finaliser so that every bit, the low ones a
/// modulo by the worker count reads too, depends on every byte). `DefaultHasher` promises
/// no stability across Rust releases, and which worker owns a peer is something an operator
/// may look up and tests rely on.
fn home_key(attachment: &str, peer: &str) -> u64 {
    let bytes = (attachment.bytes()).chain([0xff]).chain(peer.bytes());
    let mut h = bytes.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

pub(super) fn compile(config: &Config, generation: u64) -> Plan {
    let mut c = Compiler {
        config,
        attachments: Vec::new(),
        peers: Vec::new(),
        facilities: Vec::new(),
        facility_ids: HashMap::new(),
        facility_names: (config.facilities.iter().flatten())
            .map(|f| (f.code, f.name.as_str()))
            .collect(),
    };
    let mut tenants = Vec::with_capacity(config.tenants.len());
    let mut exchange = PrefixTable::default();
    for (ti, t) in config.tenants.iter().enumerate() {
        let tid = TenantId(ti as u16);
        let mut routes = PrefixTable::default();
        for n in &t.networks {
            exchange.insert(n.exchange, tid);
        }
        for a in &t.attachments {
            let aid = AttachmentId(c.attachments.len() as u16);
            let (kind, io) = match &a.kind {
                AttachmentKind::WireGuard(wg) => c.wireguard(tid, aid, wg, &mut routes),
                AttachmentKind::Plain(pl) => plain(aid, pl, &mut routes),
                AttachmentKind::Ethernet(e) => ethernet(aid, e, &mut routes),
                AttachmentKind::Tls(tls) => c.tls(t, tid, aid, tls, &mut routes),
                AttachmentKind::Ipsec(ipsec) => c.ipsec(t, tid, aid, ipsec, &mut routes),
            };
            let (mtu, directed_broadcast) = match &a.kind {
                AttachmentKind::WireGuard(wg) => (wg.mtu, false),
                AttachmentKind::Plain(pl) => (pl.mtu, pl.directed_broadcast),
                AttachmentKind::Ethernet(e) => (e.mtu, e.directed_broadcast),
                AttachmentKind::Tls(tls) => (tls.mtu, false),
                AttachmentKind::Ipsec(ipsec) => (ipsec.mtu, false),
            };
            c.attachments.push(AttachmentPlan {
                name: a.name.clone(),
                tenant: tid,
                mtu,
                directed_broadcast,
                io,
                kind,
            });
        }
        tenants.push(TenantPlan {
            name: t.name.clone(),
            map: TenantMap::new(&t.networks),
            routes,
        });
    }
    for p in &mut c.peers {
        p.home_key = home_key(&c.attachments[p.attachment.index()].name, &p.name);
    }
    let mut facility_peers = vec![Vec::new(); c.facilities.len()];
    for (i, p) in c.peers.iter().enumerate() {
        if let Some(list) = facility_peers.get_mut(p.facility_id.index()) {
            list.push(PeerId(i as u32));
        }
    }
    Plan {
        generation,
        source: config.source.clone(),
        tenants,
        attachments: c.attachments,
        peers: c.peers,
        facilities: c.facilities,
        facility_peers,
        exchange,
        policy: PolicySet::compile(config),
        limits: config.dataplane.clone(),
        metrics_listen: config.metrics.listen,
    }
}

fn plain(
    aid: AttachmentId,
    pl: &PlainAttachment,
    routes: &mut PrefixTable<Route>,
) -> (AttachmentPlanKind, Vec<Io>) {
    for r in &pl.routes {
        routes.insert(*r, Route::Attachment(aid));
    }
    let tun = Io::Tun {
        name: pl.tun.clone(),
        kernel_routes: pl.kernel_routes.clone(),
    };
    (AttachmentPlanKind::Plain, vec![tun])
}

fn ethernet(
    aid: AttachmentId,
    e: &EthernetAttachment,
    routes: &mut PrefixTable<Route>,
) -> (AttachmentPlanKind, Vec<Io>) {
    for r in e.all_routes() {
        routes.insert(r, Route::Attachment(aid));
    }
    let config = EthernetConfig {
        link: LinkConfig {
            mac: Mac(e.mac),
            ip: e.address.ip(),
            connected: e.connected(),
            vlan: e.vlan,
        },
        connected: e.connected(),
        next_hop: e.next_hop,
    };
    let link = Io::Link {
        interface: e.interface.clone(),
        vlan: e.vlan,
    };
    (AttachmentPlanKind::Ethernet(config), vec![link])
}

impl Compiler<'_> {
    /// Adds a peer of attachment `aid`: its facility numbered, its routes pointing at it.
    fn peer(
        &mut self,
        tid: TenantId,
        aid: AttachmentId,
        common: PeerCommon<'_>,
        routes: &mut PrefixTable<Route>,
        kind: impl FnOnce(PeerId) -> PeerPlanKind,
    ) -> PeerId {
        let pid = PeerId(self.peers.len() as u32);
        for r in common.routes {
            routes.insert(*r, Route::Peer(pid));
        }
        let facilities = &mut self.facilities;
        let facility_id = *self.facility_ids.entry(common.facility).or_insert_with(|| {
            facilities.push(common.facility);
            FacilityId(facilities.len() as u32 - 1)
        });
        let facility_name =
            (self.facility_names.get(&common.facility)).map_or_else(String::new, |n| n.to_string());
        self.peers.push(PeerPlan {
            name: common.name.to_string(),
            tenant: tid,
            attachment: aid,
            facility: common.facility,
            facility_name,
            facility_id,
            directed_broadcast: common.directed_broadcast,
            home_key: 0,
            kind: kind(pid),
        });
        pid
    }

    fn wireguard(
        &mut self,
        tid: TenantId,
        aid: AttachmentId,
        wg: &WireGuardAttachment,
        routes: &mut PrefixTable<Route>,
    ) -> (AttachmentPlanKind, Vec<Io>) {
        let mut ids = Vec::with_capacity(wg.peers.len());
        for p in &wg.peers {
            let common = PeerCommon {
                name: &p.name,
                facility: p.facility,
                directed_broadcast: p.directed_broadcast,
                routes: &p.allowed_ips,
            };
            ids.push(self.peer(tid, aid, common, routes, |id| {
                PeerPlanKind::WireGuard(WgPeerConfig {
                    id,
                    public_key: p.public_key.0,
                    preshared_key: p.preshared_key.as_ref().map(|k| k.0),
                    persistent_keepalive: p.persistent_keepalive,
                    endpoint: p.endpoint,
                })
            }));
        }
        let kind = AttachmentPlanKind::WireGuard {
            private_key: wg.private_key.0,
            peers: ids,
        };
        (kind, vec![Io::Udp(wg.listen)])
    }

    fn ipsec(
        &mut self,
        tenant: &Tenant,
        tid: TenantId,
        aid: AttachmentId,
        ipsec: &IpsecAttachment,
        routes: &mut PrefixTable<Route>,
    ) -> (AttachmentPlanKind, Vec<Io>) {
        let mut ids = Vec::with_capacity(ipsec.peers.len());
        for p in &ipsec.peers {
            let local_ts = match &p.local_ts {
                Some(ts) => ts.clone(),
                None => reachable(self.config, tenant, p.facility, &p.remote_ts)
                    .into_iter()
                    .collect(),
            };
            let common = PeerCommon {
                name: &p.name,
                facility: p.facility,
                directed_broadcast: p.directed_broadcast,
                routes: &p.remote_ts,
            };
            ids.push(self.peer(tid, aid, common, routes, |_| {
                PeerPlanKind::Ipsec(Box::new(IpsecPeerPlan {
                    config: p.clone(),
                    local_ts,
                }))
            }));
        }
        let mut io = vec![
            Io::Udp(SocketAddr::from((ipsec.listen, ipsec.ike_port))),
            Io::Udp(SocketAddr::from((ipsec.listen, ipsec.nat_t_port))),
        ];
        if ipsec.raw_esp {
            io.push(Io::Esp(ipsec.listen));
        }
        let kind = AttachmentPlanKind::Ipsec {
            peers: ids,
            local_id: ipsec.local_id.clone(),
            credentials: ipsec.credentials.clone(),
        };
        (kind, io)
    }

    /// A `tls` attachment: its pool routed to it (the tunnel knows which session holds an
    /// address), its peers without routes of their own, each with the exchange prefixes its
    /// clients are told to route into the tunnel.
    fn tls(
        &mut self,
        tenant: &Tenant,
        tid: TenantId,
        aid: AttachmentId,
        tls: &TlsAttachment,
        routes: &mut PrefixTable<Route>,
    ) -> (AttachmentPlanKind, Vec<Io>) {
        routes.insert(tls.pool, Route::Attachment(aid));
        let mut ids = Vec::with_capacity(tls.peers.len());
        for p in &tls.peers {
            let split_routes = match &tls.split_routes {
                Some(r) => r.clone(),
                None => reachable(self.config, tenant, p.facility, &[tls.pool])
                    .into_iter()
                    .collect(),
            };
            let common = PeerCommon {
                name: &p.name,
                facility: p.facility,
                directed_broadcast: false,
                routes: &[],
            };
            ids.push(self.peer(tid, aid, common, routes, |_| {
                PeerPlanKind::Tls(TlsPeerPlan { split_routes })
            }));
        }
        let client_roots = (self.config.trust.iter())
            .filter(|b| tls.client_ca.contains(&b.name))
            .flat_map(|b| crate::facility::certificates(&b.bundle).unwrap_or_default())
            .collect();
        let kind = AttachmentPlanKind::Tls(Box::new(TlsPlan {
            peers: ids,
            config: tls.clone(),
            client_roots,
        }));
        (kind, vec![Io::Tls(tls.listen)])
    }
}

#[cfg(test)]
mod home_key_tests {
    use super::home_key;

    /// The same key in every build (pinned), and the peers of one attachment spread evenly
    /// over 2, 3 and 4 workers even when their names differ in one character.
    #[test]
    fn home_keys_are_fixed_and_spread() {
        assert_eq!(home_key("ajisai-ipsec", "omura"), PINNED);
        assert_ne!(
            home_key("ab", "c"),
            home_key("a", "bc"),
            "the separator counts"
        );
        for workers in [2u64, 3, 4] {
            let mut count = vec![0usize; workers as usize];
            for i in 0..3000 {
                count[(home_key("wg", &format!("fac-{i}")) % workers) as usize] += 1;
            }
            let even = 3000 / workers as usize;
            assert!(
                count.iter().all(|&c| c.abs_diff(even) < even / 10),
                "{workers} workers: {count:?}"
            );
        }
    }

    const PINNED: u64 = 2_235_006_497_006_159_638;
}
