//! Validation: raw structures → [`super::Config`].
//!
//! Checks everything that can be known from the file and the key files it names: value
//! grammar, address plan consistency (same-length 1:1 mappings inside the exchange space,
//! no overlaps), uniqueness of names, keys, sockets and devices, and that services and
//! policies name things that exist. The first error found is returned, with the line of the
//! key it concerns (see [`super::lines`]).

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use ipnetwork::Ipv4Network;

use super::error::Problem;
use super::lines::LineMap;
use super::raw;
use super::{
    Attachment, AttachmentKind, Config, ConfigError, Dataplane, Destination, FlowLimit, Ix, Key32,
    Metrics, Network, PlainAttachment, Policy, PortRule, Protocol, Service, Source, Tenant,
    WireGuardAttachment, WireGuardPeer,
};
use crate::ids::FacilityCode;

pub(super) const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(127, 0, 0, 1),
    9477,
));
/// Every IPv4 host must accept 576-byte datagrams [RFC 791, RFC 1122 § 3.3.3]; a WireGuard
/// inner MTU above 1500 would need a jumbo-frame underlay, which the facilities do not have.
pub(super) const WIREGUARD_MTU: RangeInclusive<u16> = 576..=1500;
pub(super) const WIREGUARD_DEFAULT_MTU: u16 = 1420;
/// Plain attachments: packet buffers are sized for a 1500-byte MTU (`buffer::BUF_SIZE`), and
/// a packet crossing into a WireGuard tunnel must fit its MTU anyway.
pub(super) const PLAIN_MTU: RangeInclusive<u16> = 576..=1500;
pub(super) const PLAIN_DEFAULT_MTU: u16 = 1500;
pub(super) const FLOW_TABLE_SIZE: RangeInclusive<u64> = 1..=(1 << 24);
/// Idle timeouts, in seconds: at least a second, at most a week.
pub(super) const IDLE_TIMEOUT: RangeInclusive<u64> = 1..=604_800;
pub(super) const KEEPALIVE: RangeInclusive<u64> = 1..=65_535;
/// A key file larger than this is certainly not one base64 key.
const KEY_FILE_LIMIT: u64 = 1024;
/// IFNAMSIZ - 1.
const TUN_NAME_MAX: usize = 15;

pub(super) fn validate(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let root: raw::Root = yaml_serde::from_str(text).map_err(|e| serde_error(&file, &e))?;
    let v = Validator {
        file,
        lines: LineMap::build(text),
        dir: path.parent().unwrap_or(Path::new("")).to_path_buf(),
    };
    v.config(root, path)
}

/// Turns a deserializer error into `FILE:LINE: KEY_PATH: message`. `yaml_serde` writes its
/// messages as `PATH: MESSAGE at line L column C`; for unknown and missing keys the path is
/// extended by the key itself.
fn serde_error(file: &str, e: &yaml_serde::Error) -> ConfigError {
    let mut message = e.to_string();
    let line = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(m) = message.strip_suffix(&suffix) {
                message = m.to_string();
            }
            loc.line()
        }
        None => 1,
    };
    let (mut key, mut message) = match message.split_once(": ") {
        Some((head, rest)) if is_key_path(head) => (head.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    for (field, word) in [
        ("unknown field `", "unknown key `"),
        ("missing field `", "missing key `"),
    ] {
        if let Some(rest) = message.strip_prefix(field) {
            if let Some((name, _)) = rest.split_once('`') {
                key = if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}.{name}")
                };
            }
            message = format!("{word}{rest}");
        }
    }
    // Name the expected YAML shapes rather than the Rust types behind them.
    if let Some(i) = message.find(", expected struct ") {
        message.replace_range(i.., ", expected a mapping");
    }
    message = message.replace("expected u64", "expected a whole number");
    if key.is_empty() {
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            message,
        }
    } else {
        ConfigError::Invalid {
            file: file.to_string(),
            line,
            key,
            problem: Box::new(Problem::Schema(message)),
        }
    }
}

fn is_key_path(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'))
}

struct Validator {
    file: String,
    lines: LineMap,
    dir: PathBuf,
}

/// Names seen so far, with the key that defined each.
#[derive(Default)]
struct Names(HashMap<String, String>);

/// A prefix with the key path it was read from.
type Keyed = (Ipv4Network, String);

/// A plain attachment's kernel route: prefix, key path, the attachment's (tenant, attachment)
/// indices, and whether it is the default (`kernel_routes` left out).
type KernelRoute = (Ipv4Network, String, (usize, usize), bool);

impl Validator {
    fn err(&self, key: &str, problem: Problem) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: self.lines.line(key),
            key: key.to_string(),
            problem: Box::new(problem),
        }
    }

    fn config(&self, root: raw::Root, path: &Path) -> Result<Config, ConfigError> {
        let ix = self.ix(&root.ix)?;
        let metrics = Metrics {
            listen: match root.metrics.as_ref().and_then(|m| m.listen.as_deref()) {
                Some(s) => self.socket("metrics.listen", s)?,
                None => DEFAULT_METRICS_LISTEN,
            },
        };
        let dataplane = match &root.dataplane {
            Some(d) => self.dataplane(d)?,
            None => Dataplane::default(),
        };
        let tenants = self.tenants(&root.tenants, &ix)?;
        let services = self.services(&root.services, &tenants)?;
        let policies = self.policies(&root.policies, &tenants, &services)?;
        Ok(Config {
            source: path.to_path_buf(),
            ix,
            metrics,
            dataplane,
            tenants,
            services,
            policies,
        })
    }

    fn ix(&self, ix: &raw::Ix) -> Result<Ix, ConfigError> {
        self.nonempty("ix.name", &ix.name)?;
        let exchange_space = self.prefix("ix.exchange_space", &ix.exchange_space)?;
        let public_address = match &ix.public_address {
            Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| {
                self.err("ix.public_address", Problem::IpAddr { value: s.clone() })
            })?),
            None => None,
        };
        Ok(Ix {
            name: ix.name.clone(),
            exchange_space,
            public_address,
        })
    }

    fn dataplane(&self, d: &raw::Dataplane) -> Result<Dataplane, ConfigError> {
        let def = Dataplane::default();
        let flow_table_size = match d.flow_table_size {
            Some(n) => {
                self.in_range("dataplane.flow_table_size", n, FLOW_TABLE_SIZE)?;
                usize::try_from(n).map_err(|_| {
                    self.err(
                        "dataplane.flow_table_size",
                        out_of_range(n, FLOW_TABLE_SIZE),
                    )
                })?
            }
            None => def.flow_table_size,
        };
        let timeout = |key: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => {
                let t = self.duration(key, s)?;
                self.in_range(key, t.as_secs(), IDLE_TIMEOUT)?;
                Ok(t)
            }
            None => Ok(default),
        };
        Ok(Dataplane {
            flow_table_size,
            tcp_idle_timeout: timeout(
                "dataplane.tcp_idle_timeout",
                &d.tcp_idle_timeout,
                def.tcp_idle_timeout,
            )?,
            udp_idle_timeout: timeout(
                "dataplane.udp_idle_timeout",
                &d.udp_idle_timeout,
                def.udp_idle_timeout,
            )?,
            icmp_idle_timeout: timeout(
                "dataplane.icmp_idle_timeout",
                &d.icmp_idle_timeout,
                def.icmp_idle_timeout,
            )?,
            max_flows_per_tenant: match &d.max_flows_per_tenant {
                Some(v) => self.flow_limit("dataplane.max_flows_per_tenant", v)?,
                None => def.max_flows_per_tenant,
            },
            max_flows_per_facility: match &d.max_flows_per_facility {
                Some(v) => self.flow_limit("dataplane.max_flows_per_facility", v)?,
                None => def.max_flows_per_facility,
            },
        })
    }

    /// A number of flows (1..=the largest table), or a share of the table like `25%` or
    /// `12.5%` (above 0, at most 100).
    fn flow_limit(&self, key: &str, v: &yaml_serde::Value) -> Result<FlowLimit, ConfigError> {
        let text = match v {
            yaml_serde::Value::Number(n) => n.to_string(),
            yaml_serde::Value::String(s) => s.trim().to_string(),
            other => yaml_serde::to_string(other)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        };
        let bad = || {
            self.err(
                key,
                Problem::FlowLimit {
                    value: text.clone(),
                },
            )
        };
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(FlowLimit::Percent(p));
        }
        let n: u64 = text.parse().map_err(|_| bad())?;
        self.in_range(key, n, FLOW_TABLE_SIZE)?;
        Ok(FlowLimit::Flows(n as usize))
    }

    fn tenants(&self, raw: &[raw::Tenant], ix: &Ix) -> Result<Vec<Tenant>, ConfigError> {
        let mut names = Names::default();
        let mut exchanges: Vec<Keyed> = Vec::new();
        let mut tenants = Vec::with_capacity(raw.len());
        for (ti, t) in raw.iter().enumerate() {
            let tk = format!("tenants[{ti}]");
            self.unique(&mut names, "tenant", &t.name, &format!("{tk}.name"))?;
            if t.networks.is_empty() {
                return Err(self.err(
                    &format!("{tk}.networks"),
                    Problem::NoNetworks {
                        tenant: t.name.clone(),
                    },
                ));
            }
            let mut internals: Vec<Keyed> = Vec::new();
            let mut networks = Vec::with_capacity(t.networks.len());
            for (ni, n) in t.networks.iter().enumerate() {
                let nk = format!("{tk}.networks[{ni}]");
                let ik = format!("{nk}.internal");
                let xk = format!("{nk}.exchange");
                let internal = self.prefix(&ik, &n.internal)?;
                let exchange = self.prefix(&xk, &n.exchange)?;
                if internal.prefix() != exchange.prefix() {
                    return Err(self.err(&xk, Problem::LengthMismatch { internal, exchange }));
                }
                if !exchange.is_subnet_of(ix.exchange_space) {
                    return Err(self.err(
                        &xk,
                        Problem::OutsideExchangeSpace {
                            value: exchange,
                            space: ix.exchange_space,
                        },
                    ));
                }
                internals.push((internal, ik));
                exchanges.push((exchange, xk));
                networks.push(Network { internal, exchange });
            }
            self.no_overlap(&internals)?;
            tenants.push(Tenant {
                name: t.name.clone(),
                networks,
                attachments: Vec::new(),
            });
        }
        self.no_overlap(&exchanges)?;

        let mut attachment_names = Names::default();
        let mut peer_names = Names::default();
        let mut listens: Vec<(SocketAddr, String)> = Vec::new();
        let mut tuns: HashMap<String, String> = HashMap::new();
        let mut kernel_routes: Vec<KernelRoute> = Vec::new();
        for (ti, t) in raw.iter().enumerate() {
            let tk = format!("tenants[{ti}]");
            let mut routes: Vec<Keyed> = Vec::new();
            let mut attachments = Vec::with_capacity(t.attachments.len());
            for (ai, a) in t.attachments.iter().enumerate() {
                let ak = format!("{tk}.attachments[{ai}]");
                self.unique(
                    &mut attachment_names,
                    "attachment",
                    &a.name,
                    &format!("{ak}.name"),
                )?;
                let kind = match a.kind.as_str() {
                    "wireguard" => AttachmentKind::WireGuard(self.wireguard(
                        &ak,
                        a,
                        &tenants[ti],
                        &mut peer_names,
                        &mut listens,
                        &mut routes,
                    )?),
                    "plain" => {
                        let plain = self.plain(&ak, a, &tenants[ti], ix, &mut tuns, &mut routes)?;
                        let owner = (ti, ai);
                        kernel_routes.extend(plain.kernel_routes.iter().enumerate().map(
                            |(i, net)| match a.kernel_routes {
                                Some(_) => (*net, format!("{ak}.kernel_routes[{i}]"), owner, false),
                                None => (*net, format!("{ak}.kernel_routes"), owner, true),
                            },
                        ));
                        AttachmentKind::Plain(plain)
                    }
                    other => {
                        return Err(self.err(
                            &format!("{ak}.type"),
                            Problem::UnknownAttachmentType(other.to_string()),
                        ))
                    }
                };
                attachments.push(Attachment {
                    name: a.name.clone(),
                    kind,
                });
            }
            self.no_overlap(&routes)?;
            tenants[ti].attachments = attachments;
        }
        self.no_kernel_route_overlap(&kernel_routes)?;
        Ok(tenants)
    }

    /// The kernel routes a prefix into one device, so plain attachments must not claim
    /// overlapping `kernel_routes` (overlaps within one attachment are harmless). Reported at
    /// the later of the two in file order.
    fn no_kernel_route_overlap(&self, items: &[KernelRoute]) -> Result<(), ConfigError> {
        for (j, (value, key, owner, value_default)) in items.iter().enumerate() {
            let earlier = items[..j]
                .iter()
                .find(|(other, _, o, _)| o != owner && other.overlaps(*value));
            if let Some((other, other_key, _, other_default)) = earlier {
                return Err(self.err(
                    key,
                    Problem::KernelRouteOverlap {
                        value: *value,
                        value_default: *value_default,
                        other: *other,
                        other_default: *other_default,
                        other_key: other_key.clone(),
                        other_line: self.lines.line(other_key),
                    },
                ));
            }
        }
        Ok(())
    }

    fn wireguard(
        &self,
        ak: &str,
        a: &raw::Attachment,
        tenant: &Tenant,
        peer_names: &mut Names,
        listens: &mut Vec<(SocketAddr, String)>,
        routes: &mut Vec<Keyed>,
    ) -> Result<WireGuardAttachment, ConfigError> {
        const KIND: &str = "wireguard";
        self.not_for_kind(ak, "tun", a.tun.is_some(), KIND)?;
        self.not_for_kind(ak, "routes", a.routes.is_some(), KIND)?;
        self.not_for_kind(ak, "kernel_routes", a.kernel_routes.is_some(), KIND)?;
        self.not_for_kind(
            ak,
            "directed_broadcast",
            a.directed_broadcast.is_some(),
            KIND,
        )?;
        let lk = format!("{ak}.listen");
        let listen = self.socket(&lk, self.required(ak, "listen", &a.listen, KIND)?)?;
        if let Some((_, other)) = listens.iter().find(|(l, _)| same_socket(*l, listen)) {
            return Err(self.err(
                &lk,
                Problem::SameListen {
                    value: listen.to_string(),
                    other_key: other.clone(),
                    other_line: self.lines.line(other),
                },
            ));
        }
        listens.push((listen, lk));
        let private_key_file = self.required(ak, "private_key_file", &a.private_key_file, KIND)?;
        let (private_key_file, private_key) =
            self.key_file(&format!("{ak}.private_key_file"), private_key_file)?;
        let mtu = self.mtu(ak, a.mtu, KIND, WIREGUARD_MTU, WIREGUARD_DEFAULT_MTU)?;

        let mut public_keys: HashMap<[u8; 32], String> = HashMap::new();
        let mut peers = Vec::new();
        for (pi, p) in a.peers.iter().flatten().enumerate() {
            let pk = format!("{ak}.peers[{pi}]");
            self.unique(peer_names, "peer", &p.name, &format!("{pk}.name"))?;
            let fk = format!("{pk}.facility");
            let facility = match &p.facility {
                Some(s) => self.facility(&fk, s)?,
                None => {
                    return Err(self.err(
                        &fk,
                        Problem::MissingFacility {
                            peer: p.name.clone(),
                        },
                    ))
                }
            };
            let kk = format!("{pk}.public_key");
            let public_key = self.public_key(&kk, &p.public_key)?;
            if let Some(other) = public_keys.get(&public_key.0) {
                return Err(self.err(
                    &kk,
                    Problem::DuplicatePublicKey {
                        value: p.public_key.trim().to_string(),
                        other_key: other.clone(),
                        other_line: self.lines.line(other),
                    },
                ));
            }
            public_keys.insert(public_key.0, kk);
            let (preshared_key_file, preshared_key) = match &p.preshared_key_file {
                Some(f) => {
                    let (path, key) = self.key_file(&format!("{pk}.preshared_key_file"), f)?;
                    (Some(path), Some(key))
                }
                None => (None, None),
            };
            let allowed_ips = self.internal_prefixes(
                &format!("{pk}.allowed_ips"),
                &p.allowed_ips,
                tenant,
                routes,
            )?;
            let address = match &p.address {
                Some(s) => {
                    let key = format!("{pk}.address");
                    let net = self.prefix_with_host(&key, s)?;
                    if !allowed_ips.iter().any(|a| a.contains(net.ip())) {
                        return Err(self.err(
                            &key,
                            Problem::AddressNotAllowed {
                                value: net,
                                allowed: join(&allowed_ips),
                            },
                        ));
                    }
                    Some(net)
                }
                None => None,
            };
            let endpoint = match &p.endpoint {
                Some(s) => Some(self.socket(&format!("{pk}.endpoint"), s)?),
                None => None,
            };
            let persistent_keepalive = match &p.persistent_keepalive {
                Some(s) => {
                    let key = format!("{pk}.persistent_keepalive");
                    let secs = self.duration(&key, s)?.as_secs();
                    self.in_range(&key, secs, KEEPALIVE)?;
                    Some(
                        u16::try_from(secs)
                            .map_err(|_| self.err(&key, out_of_range(secs, KEEPALIVE)))?,
                    )
                }
                None => None,
            };
            peers.push(WireGuardPeer {
                name: p.name.clone(),
                facility,
                public_key,
                preshared_key_file,
                preshared_key,
                allowed_ips,
                address,
                endpoint,
                persistent_keepalive,
                directed_broadcast: p.directed_broadcast.unwrap_or(false),
            });
        }
        Ok(WireGuardAttachment {
            listen,
            private_key_file,
            private_key,
            mtu,
            peers,
        })
    }

    fn plain(
        &self,
        ak: &str,
        a: &raw::Attachment,
        tenant: &Tenant,
        ix: &Ix,
        tuns: &mut HashMap<String, String>,
        routes: &mut Vec<Keyed>,
    ) -> Result<PlainAttachment, ConfigError> {
        const KIND: &str = "plain";
        self.not_for_kind(ak, "listen", a.listen.is_some(), KIND)?;
        self.not_for_kind(ak, "private_key_file", a.private_key_file.is_some(), KIND)?;
        self.not_for_kind(ak, "peers", a.peers.is_some(), KIND)?;
        let tk = format!("{ak}.tun");
        let tun = self.required(ak, "tun", &a.tun, KIND)?;
        let valid_name = (1..=TUN_NAME_MAX).contains(&tun.len())
            && tun
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err(self.err(&tk, Problem::TunName { value: tun.clone() }));
        }
        if let Some(other) = tuns.get(tun) {
            return Err(self.err(
                &tk,
                Problem::SameTun {
                    value: tun.clone(),
                    other_key: other.clone(),
                    other_line: self.lines.line(other),
                },
            ));
        }
        tuns.insert(tun.clone(), tk);
        let mtu = self.mtu(ak, a.mtu, KIND, PLAIN_MTU, PLAIN_DEFAULT_MTU)?;
        let raw_routes = self.required(ak, "routes", &a.routes, KIND)?;
        let plain_routes =
            self.internal_prefixes(&format!("{ak}.routes"), raw_routes, tenant, routes)?;
        let kernel_routes = match &a.kernel_routes {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| self.prefix(&format!("{ak}.kernel_routes[{i}]"), s))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![ix.exchange_space],
        };
        Ok(PlainAttachment {
            tun: tun.clone(),
            mtu,
            routes: plain_routes,
            kernel_routes,
            directed_broadcast: a.directed_broadcast.unwrap_or(false),
        })
    }

    fn services(
        &self,
        raw: &[raw::Service],
        tenants: &[Tenant],
    ) -> Result<Vec<Service>, ConfigError> {
        let mut names = Names::default();
        let mut services = Vec::with_capacity(raw.len());
        for (si, s) in raw.iter().enumerate() {
            let sk = format!("services[{si}]");
            self.unique(&mut names, "service", &s.name, &format!("{sk}.name"))?;
            let tk = format!("{sk}.tenant");
            let tenant = tenants
                .iter()
                .find(|t| t.name == s.tenant)
                .ok_or_else(|| self.err(&tk, Problem::UnknownTenant(s.tenant.clone())))?;
            let ak = format!("{sk}.address");
            let address: Ipv4Addr = s.address.trim().parse().map_err(|_| {
                self.err(
                    &ak,
                    Problem::Ipv4Addr {
                        value: s.address.clone(),
                    },
                )
            })?;
            if !tenant.networks.iter().any(|n| n.internal.contains(address)) {
                return Err(self.err(
                    &ak,
                    Problem::NotInternal {
                        value: address.to_string(),
                        tenant: tenant.name.clone(),
                        internal: internal_list(tenant),
                    },
                ));
            }
            if !tenant_routes(tenant).any(|r| r.contains(address)) {
                return Err(self.err(
                    &ak,
                    Problem::UnroutedService {
                        value: address,
                        tenant: tenant.name.clone(),
                    },
                ));
            }
            let pk = format!("{sk}.ports");
            if s.ports.is_empty() {
                return Err(self.err(&pk, Problem::Empty));
            }
            let ports = s
                .ports
                .iter()
                .enumerate()
                .map(|(i, p)| self.port_rule(&format!("{pk}[{i}]"), p))
                .collect::<Result<Vec<_>, _>>()?;
            services.push(Service {
                name: s.name.clone(),
                tenant: s.tenant.clone(),
                address,
                ports,
            });
        }
        Ok(services)
    }

    fn policies(
        &self,
        raw: &[raw::Policy],
        tenants: &[Tenant],
        services: &[Service],
    ) -> Result<Vec<Policy>, ConfigError> {
        let mut names = Names::default();
        let mut policies = Vec::with_capacity(raw.len());
        for (pi, p) in raw.iter().enumerate() {
            let pk = format!("policies[{pi}]");
            self.unique(&mut names, "policy", &p.name, &format!("{pk}.name"))?;
            let from = self.source(&format!("{pk}.from"), &p.from, tenants)?;
            let allow_key = format!("{pk}.allow");
            let allow = match &p.allow {
                Some(list) if list.is_empty() => return Err(self.err(&allow_key, Problem::Empty)),
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.port_rule(&format!("{allow_key}[{i}]"), s))
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            let tok = format!("{pk}.to");
            let to = match (&p.to.tenant, &p.to.service) {
                (Some(_), Some(_)) => return Err(self.err(&tok, Problem::DestinationBoth)),
                (None, None) => return Err(self.err(&tok, Problem::DestinationNeither)),
                (Some(names), None) => {
                    let dest = self.tenant_names(&format!("{tok}.tenant"), names, tenants)?;
                    let prefixes = match &p.to.prefixes {
                        Some(list) => {
                            self.scoped_prefixes(&format!("{tok}.prefixes"), list, &dest)?
                        }
                        None => Vec::new(),
                    };
                    if p.allow.is_none() {
                        return Err(self.err(&allow_key, Problem::TenantPolicyWithoutAllow));
                    }
                    Destination::Tenants {
                        tenants: dest.iter().map(|t| t.name.clone()).collect(),
                        prefixes,
                    }
                }
                (None, Some(names)) => {
                    if p.to.prefixes.is_some() {
                        return Err(
                            self.err(&format!("{tok}.prefixes"), Problem::PrefixesWithService)
                        );
                    }
                    let sk = format!("{tok}.service");
                    let mut dest = Vec::with_capacity(names.items.len());
                    for (i, name) in names.items.iter().enumerate() {
                        let service =
                            services.iter().find(|s| &s.name == name).ok_or_else(|| {
                                self.err(
                                    &names.item_key(&sk, i),
                                    Problem::UnknownService(name.clone()),
                                )
                            })?;
                        dest.push(service);
                    }
                    for (i, rule) in allow.iter().enumerate() {
                        let covered = dest
                            .iter()
                            .any(|s| s.ports.iter().any(|port| covers(port, rule)));
                        if !covered {
                            return Err(self.err(
                                &format!("{allow_key}[{i}]"),
                                Problem::NotServicePort {
                                    rule: rule_text(rule),
                                    services: dest
                                        .iter()
                                        .map(|s| s.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    ports: dest
                                        .iter()
                                        .flat_map(|s| s.ports.iter().map(rule_text))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                },
                            ));
                        }
                    }
                    Destination::Services(dest.iter().map(|s| s.name.clone()).collect())
                }
            };
            policies.push(Policy {
                name: p.name.clone(),
                from,
                to,
                allow,
            });
        }
        Ok(policies)
    }

    fn source(
        &self,
        fk: &str,
        from: &raw::From,
        tenants: &[Tenant],
    ) -> Result<Source, ConfigError> {
        let scope: Vec<&Tenant> = match &from.tenant {
            Some(names) => self.tenant_names(&format!("{fk}.tenant"), names, tenants)?,
            None => tenants.iter().collect(),
        };
        let mut facilities = Vec::new();
        if let Some(codes) = &from.facility {
            let key = format!("{fk}.facility");
            for (i, s) in codes.items.iter().enumerate() {
                let ik = codes.item_key(&key, i);
                let code = self.facility(&ik, s)?;
                let known = scope.iter().any(|t| tenant_has_facility(t, code));
                if !known {
                    return Err(self.err(
                        &ik,
                        Problem::UnknownFacility {
                            code: code.to_string(),
                            scope: from.tenant.as_ref().map(|_| {
                                let names: Vec<_> = scope.iter().map(|t| t.name.as_str()).collect();
                                format!("tenant {}", names.join(", "))
                            }),
                        },
                    ));
                }
                facilities.push(code);
            }
        }
        let prefixes = match &from.prefixes {
            Some(list) => self.scoped_prefixes(&format!("{fk}.prefixes"), list, &scope)?,
            None => Vec::new(),
        };
        Ok(Source {
            tenants: match &from.tenant {
                Some(_) => scope.iter().map(|t| t.name.clone()).collect(),
                None => Vec::new(),
            },
            facilities,
            prefixes,
        })
    }

    fn tenant_names<'t>(
        &self,
        key: &str,
        names: &raw::OneOrMany,
        tenants: &'t [Tenant],
    ) -> Result<Vec<&'t Tenant>, ConfigError> {
        if names.items.is_empty() {
            return Err(self.err(key, Problem::Empty));
        }
        names
            .items
            .iter()
            .enumerate()
            .map(|(i, name)| {
                tenants.iter().find(|t| &t.name == name).ok_or_else(|| {
                    self.err(
                        &names.item_key(key, i),
                        Problem::UnknownTenant(name.clone()),
                    )
                })
            })
            .collect()
    }

    /// Prefixes that must lie inside an internal prefix of one of `scope`.
    fn scoped_prefixes(
        &self,
        key: &str,
        list: &[String],
        scope: &[&Tenant],
    ) -> Result<Vec<Ipv4Network>, ConfigError> {
        if list.is_empty() {
            return Err(self.err(key, Problem::Empty));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let ik = format!("{key}[{i}]");
            let net = self.prefix(&ik, s)?;
            let inside = scope
                .iter()
                .any(|t| t.networks.iter().any(|n| net.is_subnet_of(n.internal)));
            if !inside {
                return Err(self.err(
                    &ik,
                    Problem::NotInternal {
                        value: net.to_string(),
                        tenant: scope
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        internal: scope
                            .iter()
                            .map(|t| internal_list(t))
                            .collect::<Vec<_>>()
                            .join("; "),
                    },
                ));
            }
            out.push(net);
        }
        Ok(out)
    }

    /// A non-empty list of prefixes inside the tenant's internal prefixes, which become routes
    /// of the tenant (collected in `routes` for the overlap check).
    fn internal_prefixes(
        &self,
        key: &str,
        list: &[String],
        tenant: &Tenant,
        routes: &mut Vec<Keyed>,
    ) -> Result<Vec<Ipv4Network>, ConfigError> {
        let out = self.scoped_prefixes(key, list, &[tenant])?;
        routes.extend(
            out.iter()
                .enumerate()
                .map(|(i, net)| (*net, format!("{key}[{i}]"))),
        );
        Ok(out)
    }

    /// The first overlap among `items`, reported at the later of the two in file order.
    fn no_overlap(&self, items: &[Keyed]) -> Result<(), ConfigError> {
        match first_overlap(items) {
            None => Ok(()),
            Some((later, earlier)) => {
                let (value, key) = &items[later];
                let (other, other_key) = &items[earlier];
                Err(self.err(
                    key,
                    Problem::Overlap {
                        value: *value,
                        other: *other,
                        other_key: other_key.clone(),
                        other_line: self.lines.line(other_key),
                    },
                ))
            }
        }
    }

    fn unique(
        &self,
        names: &mut Names,
        what: &'static str,
        name: &str,
        key: &str,
    ) -> Result<(), ConfigError> {
        self.nonempty(key, name)?;
        if let Some(first) = names.0.get(name) {
            return Err(self.err(
                key,
                Problem::DuplicateName {
                    what,
                    name: name.to_string(),
                    first_key: first.clone(),
                    first_line: self.lines.line(first),
                },
            ));
        }
        names.0.insert(name.to_string(), key.to_string());
        Ok(())
    }

    fn nonempty(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        if value.trim().is_empty() {
            return Err(self.err(key, Problem::Empty));
        }
        Ok(())
    }

    fn not_for_kind(
        &self,
        ak: &str,
        key: &'static str,
        present: bool,
        kind: &'static str,
    ) -> Result<(), ConfigError> {
        if present {
            return Err(self.err(&format!("{ak}.{key}"), Problem::KeyNotForKind { key, kind }));
        }
        Ok(())
    }

    fn required<'v, T>(
        &self,
        ak: &str,
        key: &'static str,
        value: &'v Option<T>,
        kind: &'static str,
    ) -> Result<&'v T, ConfigError> {
        value.as_ref().ok_or_else(|| {
            self.err(
                &format!("{ak}.{key}"),
                Problem::MissingForKind { key, kind },
            )
        })
    }

    fn in_range(
        &self,
        key: &str,
        value: u64,
        range: RangeInclusive<u64>,
    ) -> Result<(), ConfigError> {
        if !range.contains(&value) {
            return Err(self.err(key, out_of_range(value, range)));
        }
        Ok(())
    }

    fn mtu(
        &self,
        ak: &str,
        value: Option<u64>,
        kind: &'static str,
        range: RangeInclusive<u16>,
        default: u16,
    ) -> Result<u16, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        match u16::try_from(v) {
            Ok(m) if range.contains(&m) => Ok(m),
            _ => Err(self.err(
                &format!("{ak}.mtu"),
                Problem::Mtu {
                    value: v,
                    kind,
                    min: *range.start(),
                    max: *range.end(),
                },
            )),
        }
    }

    /// A network prefix without host bits.
    fn prefix(&self, key: &str, s: &str) -> Result<Ipv4Network, ConfigError> {
        let net = self.prefix_with_host(key, s)?;
        if net.ip() != net.network() {
            let network = Ipv4Network::new(net.network(), net.prefix()).unwrap_or(net);
            return Err(self.err(
                key,
                Problem::HostBits {
                    value: net,
                    network,
                },
            ));
        }
        Ok(net)
    }

    /// An address with its prefix length (an interface address; host bits expected).
    fn prefix_with_host(&self, key: &str, s: &str) -> Result<Ipv4Network, ConfigError> {
        s.trim().parse::<Ipv4Network>().map_err(|e| {
            self.err(
                key,
                Problem::Prefix {
                    value: s.to_string(),
                    reason: e.to_string(),
                },
            )
        })
    }

    fn socket(&self, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
        s.trim().parse().map_err(|_| {
            self.err(
                key,
                Problem::SocketAddr {
                    value: s.to_string(),
                },
            )
        })
    }

    fn duration(&self, key: &str, s: &str) -> Result<Duration, ConfigError> {
        parse_duration(s).ok_or_else(|| {
            self.err(
                key,
                Problem::Duration {
                    value: s.to_string(),
                },
            )
        })
    }

    fn port_rule(&self, key: &str, s: &str) -> Result<PortRule, ConfigError> {
        parse_port_rule(s).map_err(|reason| {
            self.err(
                key,
                Problem::PortRule {
                    value: s.to_string(),
                    reason,
                },
            )
        })
    }

    fn facility(&self, key: &str, s: &str) -> Result<FacilityCode, ConfigError> {
        FacilityCode::parse(s).map_err(|reason| {
            let lost_zero = s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit());
            if lost_zero && self.lines.is_plain(key) {
                self.err(
                    key,
                    Problem::FacilityUnquoted {
                        value: s.to_string(),
                        digits: s.len(),
                        padded: format!("0{s}"),
                    },
                )
            } else {
                self.err(
                    key,
                    Problem::FacilityCode {
                        value: s.to_string(),
                        reason,
                    },
                )
            }
        })
    }

    fn public_key(&self, key: &str, s: &str) -> Result<Key32, ConfigError> {
        decode_key(s.trim()).ok_or_else(|| {
            self.err(
                key,
                Problem::PublicKey {
                    value: s.to_string(),
                },
            )
        })
    }

    /// Reads a key file (relative paths are relative to the configuration's directory).
    fn key_file(&self, key: &str, s: &str) -> Result<(PathBuf, Key32), ConfigError> {
        let given = Path::new(s);
        let path = if given.is_relative() {
            self.dir.join(given)
        } else {
            given.to_path_buf()
        };
        let file = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(KEY_FILE_LIMIT + 1).read_to_end(&mut bytes))
            .map_err(|source| {
                self.err(
                    key,
                    Problem::KeyFileRead {
                        file: file.clone(),
                        source,
                    },
                )
            })?;
        let malformed = |reason| {
            self.err(
                key,
                Problem::KeyFileMalformed {
                    file: file.clone(),
                    reason,
                },
            )
        };
        if bytes.len() as u64 > KEY_FILE_LIMIT {
            return Err(malformed("the file is too large"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed("not text"))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(malformed("the file is empty"));
        }
        if text.lines().count() > 1 {
            return Err(malformed("more than one line"));
        }
        let key32 = decode_key(text).ok_or_else(|| malformed("not base64 of 32 bytes"))?;
        Ok((path, key32))
    }
}

fn out_of_range(value: u64, range: RangeInclusive<u64>) -> Problem {
    Problem::OutOfRange {
        value,
        min: *range.start(),
        max: *range.end(),
    }
}

fn decode_key(s: &str) -> Option<Key32> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Key32)
}

/// Two UDP listeners clash on the same port if their addresses are equal or either is the
/// wildcard address. Port 0 lets the kernel choose a free port each time, so it never clashes.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Everything a tenant's attachments route: peers' allowed-ips and plain routes.
fn tenant_routes(t: &Tenant) -> impl Iterator<Item = &Ipv4Network> {
    t.attachments.iter().flat_map(|a| match &a.kind {
        AttachmentKind::WireGuard(wg) => wg
            .peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter())
            .collect::<Vec<_>>(),
        AttachmentKind::Plain(p) => p.routes.iter().collect(),
    })
}

fn tenant_has_facility(t: &Tenant, code: FacilityCode) -> bool {
    t.attachments.iter().any(|a| match &a.kind {
        AttachmentKind::WireGuard(wg) => wg.peers.iter().any(|p| p.facility == code),
        AttachmentKind::Plain(_) => false,
    })
}

fn internal_list(t: &Tenant) -> String {
    join(&t.networks.iter().map(|n| n.internal).collect::<Vec<_>>())
}

fn join(nets: &[Ipv4Network]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds two overlapping prefixes as `(later, earlier)` indices in file order. Prefixes are
/// either nested or disjoint, so after sorting by start address a prefix overlaps an earlier
/// one exactly when it starts before the furthest end seen so far.
fn first_overlap(items: &[Keyed]) -> Option<(usize, usize)> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (u32::from(items[i].0.network()), items[i].0.prefix(), i));
    let mut furthest: Option<(u32, usize)> = None;
    for &i in &order {
        let net = items[i].0;
        let start = u32::from(net.network());
        let end = u32::from(net.broadcast());
        if let Some((f_end, f_idx)) = furthest {
            if start <= f_end {
                return Some((i.max(f_idx), i.min(f_idx)));
            }
        }
        if furthest.is_none_or(|(f_end, _)| end > f_end) {
            furthest = Some((end, i));
        }
    }
    None
}

/// `25s`, `5m`, `2h`, or a whole number of seconds.
pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b's' => (&s[..s.len() - 1], 1),
        b'm' => (&s[..s.len() - 1], 60),
        b'h' => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(unit)
        .map(Duration::from_secs)
}

/// `tcp/443`, `tcp/1000-2000`, `udp/53`, `tcp`, `udp` (all ports), `icmp`, `any`.
pub(super) fn parse_port_rule(s: &str) -> Result<PortRule, &'static str> {
    let s = s.trim().to_ascii_lowercase();
    let (proto, ports) = match s.split_once('/') {
        Some((p, r)) => (p, Some(r)),
        None => (s.as_str(), None),
    };
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        "any" => Protocol::Any,
        _ => return Err("unknown protocol"),
    };
    let Some(range) = ports else {
        return Ok(PortRule {
            protocol,
            ports: None,
        });
    };
    if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
        return Err("only tcp and udp take ports");
    }
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(0) => Err("port 0 is not a destination port"),
        Ok(n) => Ok(n),
        Err(_) => Err("a port is a number in 1..=65535"),
    };
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(range)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err("the range's first port is above its last");
    }
    Ok(PortRule {
        protocol,
        ports: Some((lo, hi)),
    })
}

/// Whether every flow `rule` allows is also allowed by `by`.
fn covers(by: &PortRule, rule: &PortRule) -> bool {
    if by.protocol == Protocol::Any {
        return true;
    }
    if by.protocol != rule.protocol {
        return false;
    }
    match (by.ports, rule.ports) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((a, b)), Some((c, d))) => a <= c && d <= b,
    }
}

fn rule_text(r: &PortRule) -> String {
    let proto = match r.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::Any => "any",
    };
    match r.ports {
        None => proto.to_string(),
        Some((lo, hi)) if lo == hi => format!("{proto}/{lo}"),
        Some((lo, hi)) => format!("{proto}/{lo}-{hi}"),
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
