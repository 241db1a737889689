//! The compiled plan: a validated [`Config`] turned into the lookup tables the data path
//! reads. Immutable once built; a reload builds a new plan and the worker switches to it
//! between two batches.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnetwork::Ipv4Network;

use super::lpm::PrefixTable;

mod compile;
mod ike;

use crate::config::{self, AttachmentKind, Config};
use crate::ids::{
    AttachmentId, ExchangeV4, FacilityCode, FacilityId, InternalV4, PeerId, TenantId,
};
use crate::nat::TenantMap;
use crate::policy::flows::{Owner, Quotas};
use crate::policy::PolicySet;
use crate::tunnel::tls::TlsConfig;
use crate::tunnel::wireguard::WgPeerConfig;
use crate::tunnel::TunnelConfig;
use crate::vocab::{Names, PeerLabels};
pub use ike::{identity, IkeSetupError, IpsecCarry};

/// Where a tenant's internal address is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Peer(PeerId),
    /// An attachment that reaches the address itself: a plain TUN device, an ethernet link
    /// (which resolves the next hop).
    Attachment(AttachmentId),
}

#[derive(Debug, Clone)]
pub struct TenantPlan {
    pub name: String,
    pub map: TenantMap,
    /// Internal prefixes → where they are reached; also the anti-spoofing table.
    pub routes: PrefixTable<Route>,
}

/// The per-kind part of an attachment.
#[derive(Debug, Clone, PartialEq)]
pub enum AttachmentPlanKind {
    WireGuard {
        private_key: [u8; 32],
        peers: Vec<PeerId>,
    },
    Plain,
    Ethernet(crate::tunnel::ethernet::EthernetConfig),
    Tls(Box<TlsPlan>),
    /// `io` is UDP `ike_port`, UDP `nat_t_port`, then raw ESP if configured, in the order of
    /// [`crate::tunnel::ipsec::tunnel::IO_IKE`], `IO_NAT_T`, `IO_ESP`.
    Ipsec {
        peers: Vec<PeerId>,
        local_id: config::IkeIdentity,
        credentials: Option<config::GatewayCredentials>,
    },
}

/// A `tls` attachment: its peers and its configuration (the TLS thread serves it).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    pub peers: Vec<PeerId>,
    pub config: config::TlsAttachment,
    /// The certificates of the `client_ca` bundles: the roots of the clients' chains.
    pub client_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

/// A peer of a `tls` attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPeerPlan {
    /// The exchange prefixes its clients route into the tunnel.
    pub split_routes: Vec<Ipv4Network>,
}

/// A socket or device an attachment needs from the operating system. The runtime opens one
/// source per entry of [`AttachmentPlan::io`] and knows nothing else of the attachment; a
/// packet names the entry it came in on or goes out of by its index ([`crate::buffer::Via`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Io {
    /// A UDP socket bound to this address.
    Udp(SocketAddr),
    /// A raw IPv4 socket of IP protocol 50 (ESP) bound to this address.
    Esp(Ipv4Addr),
    /// A TUN device, and the kernel routes that point into it.
    Tun {
        name: String,
        kernel_routes: Vec<Ipv4Network>,
    },
    /// An Ethernet port (an AF_PACKET socket), only the frames of this VLAN (`None`:
    /// untagged ones).
    Link {
        interface: String,
        vlan: Option<u16>,
    },
    /// A TCP listener for TLS clients; the TLS thread serves it and hands the worker the
    /// sessions' packets.
    Tls(SocketAddr),
}

#[derive(Debug, Clone)]
pub struct AttachmentPlan {
    pub name: String,
    pub tenant: TenantId,
    /// The largest inner packet the attachment carries.
    pub mtu: u16,
    /// A plain attachment's routes accept directed broadcasts; WireGuard attachments decide
    /// per peer ([`PeerPlan::directed_broadcast`]), and this is false for them.
    pub directed_broadcast: bool,
    /// Its sockets and devices; a packet's [`crate::buffer::Via::io`] indexes this.
    pub io: Vec<Io>,
    pub kind: AttachmentPlanKind,
}

impl AttachmentPlan {
    /// Whether the data path spreads the attachment's peers over its workers, each with
    /// sockets of its own (WireGuard, IPsec: [`AttachmentPlan::per_worker`]); worker 0
    /// serves the others whole.
    pub fn sharded(&self) -> bool {
        matches!(
            self.kind,
            AttachmentPlanKind::WireGuard { .. } | AttachmentPlanKind::Ipsec { .. }
        )
    }

    /// Whether every worker has a socket of its own for the `io`-th source (a reuse-port
    /// group, a filtered raw socket; only sharded attachments have them): every WireGuard
    /// socket, and an IPsec attachment's NAT-T and raw ESP sockets, which carry its ESP.
    /// IKE's port 500 is worker 0's alone (IKE on 4500 is steered to worker 0's socket of its
    /// group).
    pub fn per_worker(&self, io: usize) -> bool {
        match self.kind {
            AttachmentPlanKind::WireGuard { .. } => true,
            AttachmentPlanKind::Ipsec { .. } => {
                io != usize::from(crate::tunnel::ipsec::tunnel::IO_IKE)
            }
            _ => false,
        }
    }

    /// The address the `io`-th socket listens on, if it is a UDP socket.
    pub fn udp_listen(&self, io: usize) -> Option<SocketAddr> {
        match self.io.get(io) {
            Some(Io::Udp(a)) => Some(*a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PeerPlan {
    pub name: String,
    pub tenant: TenantId,
    pub attachment: AttachmentId,
    pub facility: FacilityCode,
    /// The registry's name of the facility ("" when it is not in the registry).
    pub facility_name: String,
    /// The facility's index in [`Plan::facilities`].
    pub facility_id: FacilityId,
    /// The peer's allowed-ips accept directed broadcasts.
    pub directed_broadcast: bool,
    /// Picks the home worker of a flow between two sharded peers (the owner of the peer
    /// with the smaller key): the same for a kept peer after any reload, whatever numbers
    /// the peers get, so that a flow stays where its state is.
    pub home_key: u64,
    /// What only a peer of its tunnel kind has.
    pub kind: PeerPlanKind,
}

/// The per-kind part of a peer.
#[derive(Debug, Clone)]
pub enum PeerPlanKind {
    WireGuard(WgPeerConfig),
    Ipsec(Box<IpsecPeerPlan>),
    Tls(TlsPeerPlan),
}

/// An IPsec peer as the IKE thread needs it.
#[derive(Debug, Clone)]
pub struct IpsecPeerPlan {
    pub config: config::IpsecPeer,
    /// The gateway's traffic selectors: `local_ts` as configured, else every exchange prefix
    /// the peer's policies reach ([`crate::policy::reach::reachable`]).
    pub local_ts: Vec<Ipv4Network>,
}

/// The data path's view of one configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Increases with every reload; cached flow verdicts of older plans are re-evaluated.
    pub generation: u64,
    pub source: PathBuf,
    pub tenants: Vec<TenantPlan>,
    pub attachments: Vec<AttachmentPlan>,
    pub peers: Vec<PeerPlan>,
    /// The distinct facility codes of the peers, indexed by [`FacilityId`].
    pub facilities: Vec<FacilityCode>,
    /// The peers of each facility, indexed by [`FacilityId`].
    pub facility_peers: Vec<Vec<PeerId>>,
    /// Exchange prefixes → tenant.
    pub exchange: PrefixTable<TenantId>,
    pub policy: PolicySet,
    pub limits: config::Dataplane,
    pub metrics_listen: SocketAddr,
}

impl Plan {
    /// Compiles a validated configuration. Validation guarantees what this relies on (unique
    /// names, non-overlapping exchange prefixes and routes), so compiling cannot fail.
    pub fn compile(config: &Config, generation: u64) -> Plan {
        compile::compile(config, generation)
    }

    /// The flow quotas of `limits`, as numbers of flows.
    pub fn flow_quotas(&self) -> Quotas {
        let size = self.limits.flow_table_size;
        Quotas {
            per_tenant: self.limits.max_flows_per_tenant.flows(size),
            per_facility: self.limits.max_flows_per_facility.flows(size),
        }
    }

    /// Who a flow opened from `src` in `tenant` counts against: the tenant, and the facility
    /// of the peer that routes `src` (none behind a plain or ethernet attachment); for an
    /// attachment that hands out its addresses (TLS), of the peer `assigned` says holds it.
    #[inline]
    pub fn owner(
        &self,
        tenant: TenantId,
        src: InternalV4,
        assigned: impl Fn(AttachmentId, Ipv4Addr) -> Option<PeerId>,
    ) -> Option<Owner> {
        let facility = match self.tenants.get(tenant.index())?.routes.lookup(src.0)? {
            Route::Peer(p) => Some(self.peers[p.index()].facility_id),
            Route::Attachment(a) => assigned(a, src.0).map(|p| self.peers[p.index()].facility_id),
        };
        Some(Owner { tenant, facility })
    }

    /// Whether `addr`, which `route` reaches through a prefix of length `prefix_len`, is a
    /// directed broadcast the route refuses: the prefix's network or broadcast address
    /// [RFC 1812 § 4.2.3.1], for a prefix that has them (a /31 has none [RFC 3021], a /32
    /// is one host), on a route that did not opt in [RFC 2644].
    #[inline]
    pub fn refuses_directed_broadcast(&self, addr: Ipv4Addr, prefix_len: u8, route: Route) -> bool {
        if prefix_len > 30 {
            return false;
        }
        let host_bits = u32::MAX >> prefix_len;
        let host = u32::from(addr) & host_bits;
        if host != 0 && host != host_bits {
            return false;
        }
        !match route {
            Route::Peer(p) => self.peers[p.index()].directed_broadcast,
            Route::Attachment(a) => self.attachments[a.index()].directed_broadcast,
        }
    }

    pub fn tenant(&self, id: TenantId) -> &TenantPlan {
        &self.tenants[id.index()]
    }

    /// The tenant owning an exchange address and the address in its internal numbering.
    #[inline]
    pub fn resolve_exchange(&self, x: Ipv4Addr) -> Option<(TenantId, InternalV4)> {
        let t = self.exchange.lookup(x)?;
        let a = self.tenants[t.index()].map.to_internal(ExchangeV4(x))?;
        Some((t, a))
    }

    /// What the counters of this plan count by name: tenants, attachments and peers.
    pub fn counter_names(&self) -> Names {
        Names {
            tenants: self.tenants.iter().map(|t| t.name.clone()).collect(),
            attachments: self.attachments.iter().map(|a| a.name.clone()).collect(),
            peers: self
                .peers
                .iter()
                .map(|p| PeerLabels {
                    peer: p.name.clone(),
                    tenant: self.tenants[p.tenant.index()].name.clone(),
                    attachment: self.attachments[p.attachment.index()].name.clone(),
                    facility: p.facility.to_string(),
                })
                .collect(),
            arp_attachments: (self.attachments.iter())
                .filter(|a| matches!(a.kind, AttachmentPlanKind::Ethernet(_)))
                .map(|a| a.name.clone())
                .collect(),
        }
    }

    /// What a reload keeps of `tls` attachment `a`: the peers of the same name and facility
    /// on the previous plan's attachment of the same name, tenant, listener, pool and
    /// `client_ca` (their sessions go on: their clients authenticated as that facility under
    /// those CAs), by old and new number; `None` when there is no such attachment. The worker
    /// and the TLS thread both follow this answer.
    pub fn tls_carry(&self, previous: &Plan, a: AttachmentId) -> Option<Vec<(PeerId, PeerId)>> {
        let new = &self.attachments[a.index()];
        let AttachmentPlanKind::Tls(tls) = &new.kind else {
            return None;
        };
        let old = previous.attachments.iter().find(|o| o.name == new.name)?;
        let AttachmentPlanKind::Tls(old_tls) = &old.kind else {
            return None;
        };
        let same = old.io == new.io
            && previous.tenants[old.tenant.index()].name == self.tenants[new.tenant.index()].name
            && old_tls.config.pool == tls.config.pool
            && old_tls.config.client_ca == tls.config.client_ca;
        if !same {
            return None;
        }
        Some(
            tls.peers
                .iter()
                .filter_map(|n| {
                    let p = &self.peers[n.index()];
                    let o = old_tls.peers.iter().find(|o| {
                        let q = &previous.peers[o.index()];
                        q.name == p.name && q.facility == p.facility
                    })?;
                    Some((*o, *n))
                })
                .collect(),
        )
    }

    /// The tunnel configuration of attachment `a`; `previous`: the plan it replaces, if any.
    pub fn tunnel_config(&self, a: AttachmentId, previous: Option<&Plan>) -> TunnelConfig {
        let attachment = &self.attachments[a.index()];
        match &attachment.kind {
            AttachmentPlanKind::WireGuard { private_key, peers } => TunnelConfig::WireGuard {
                private_key: *private_key,
                peers: peers
                    .iter()
                    .filter_map(|p| match &self.peers[p.index()].kind {
                        PeerPlanKind::WireGuard(wg) => Some(wg.clone()),
                        PeerPlanKind::Ipsec(_) | PeerPlanKind::Tls(_) => None,
                    })
                    .collect(),
            },
            AttachmentPlanKind::Ipsec { peers, .. } => TunnelConfig::Ipsec {
                peers: (peers.iter())
                    .map(|&p| (p, self.peers[p.index()].home_key))
                    .collect(),
                kept: previous
                    .and_then(|old| self.ipsec_carry(old, a))
                    .map(|c| c.peers),
            },
            AttachmentPlanKind::Plain => TunnelConfig::Plain {
                mtu: attachment.mtu,
            },
            AttachmentPlanKind::Ethernet(c) => TunnelConfig::Ethernet(*c),
            AttachmentPlanKind::Tls(tls) => TunnelConfig::Tls(TlsConfig {
                generation: self.generation,
                pool: tls.config.pool,
                peers: tls.peers.clone(),
                kept: previous.and_then(|old| Some((old.generation, self.tls_carry(old, a)?))),
            }),
        }
    }
}
