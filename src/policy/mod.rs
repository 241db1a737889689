//! Policy: which flows may be opened (compiled from the configuration at load time; per
//! packet only a lookup), and the bounded flow table that caches verdicts so that replies of
//! allowed flows pass.
//!
//! Layer contract: pure; time is passed in; no allocation per packet.
//!
//! Semantics (default deny, first matching rule in configuration order wins): a rule allows a
//! flow when its source, its destination and its protocol/port all match. The rules are the
//! configuration's grants ([`Config::grants`]): its policies, then the agreements both sides
//! approved. An agreement's rule counts only inside its validity window: the caller holds an
//! [`Activity`] (which rules are in force at a wall-clock time, and when that next changes)
//! and asks [`PolicySet::evaluate_at`].
//!
//! * Source: every non-empty list of `from` must contain the flow's value: the source tenant,
//!   the opener's facility (a packet without a facility never matches a facility list) and the
//!   source internal address (inside one prefix).
//! * [`Destination::Tenants`]: the destination tenant is listed and, if `prefixes` is
//!   non-empty, the destination internal address lies in one; the protocol/port matches an
//!   `allow` item. A rule with an empty `allow` admits nothing.
//! * [`Destination::Services`]: the destination is one service's tenant and internal address,
//!   and the protocol/port is in that service's `ports` and, if `allow` is non-empty, also in
//!   `allow`.
//! * An `allow` item of [`Protocol::Any`] matches every protocol and port, `Icmp` matches IP
//!   protocol 1, `Tcp`/`Udp` match their protocol on all ports or on an inclusive destination
//!   port range.
//!
//! Compiled shape: a dense `tenants × tenants` table of spans into one flat list of entries,
//! so that [`PolicySet::evaluate`] reads only the rules that can concern the (source tenant,
//! destination tenant) pair, in rule order, without allocating. The source tenant and the
//! destination tenant of services are resolved at compile time; a service policy contributes
//! one entry per service, carrying the precomputed intersection of the service's ports with
//! the policy's `allow`. Memory is O(tenants² + entries).

#![forbid(unsafe_code)]

pub mod flows;
pub mod reach;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use ipnetwork::Ipv4Network;

use crate::config::{Config, Destination, PortRule, Protocol};
use crate::ids::{FacilityCode, InternalV4, RuleId, TenantId};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The question asked for the first packet of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub src_tenant: TenantId,
    pub src_facility: Option<FacilityCode>,
    pub src: InternalV4,
    pub dst_tenant: TenantId,
    pub dst: InternalV4,
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port for TCP/UDP, 0 otherwise.
    pub dst_port: u16,
}

/// A `u32` span into one of the arenas of [`PolicySet`]; kept small so entries stay compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// A prefix as (network, mask), so matching is one AND and one compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    network: u32,
    mask: u32,
}

impl Prefix {
    fn new(net: Ipv4Network) -> Prefix {
        let mask = u32::from(net.mask());
        Prefix {
            network: u32::from(net.network()) & mask,
            mask,
        }
    }

    #[inline]
    fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask == self.network
    }
}

/// One compiled `allow` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    AnyProtocol,
    Protocol(u8),
    /// TCP or UDP, inclusive destination port range.
    Ports(u8, u16, u16),
}

impl PortMatch {
    fn new(r: PortRule) -> PortMatch {
        match (r.protocol, r.ports) {
            (Protocol::Any, _) => PortMatch::AnyProtocol,
            (Protocol::Icmp, _) => PortMatch::Protocol(PROTO_ICMP),
            (Protocol::Tcp, None) => PortMatch::Protocol(PROTO_TCP),
            (Protocol::Udp, None) => PortMatch::Protocol(PROTO_UDP),
            (Protocol::Tcp, Some((lo, hi))) => PortMatch::Ports(PROTO_TCP, lo, hi),
            (Protocol::Udp, Some((lo, hi))) => PortMatch::Ports(PROTO_UDP, lo, hi),
        }
    }

    #[inline]
    fn matches(self, protocol: u8, port: u16) -> bool {
        match self {
            PortMatch::AnyProtocol => true,
            PortMatch::Protocol(p) => p == protocol,
            PortMatch::Ports(p, lo, hi) => p == protocol && lo <= port && port <= hi,
        }
    }

    fn protocol(self) -> Option<u8> {
        match self {
            PortMatch::AnyProtocol => None,
            PortMatch::Protocol(p) | PortMatch::Ports(p, ..) => Some(p),
        }
    }

    fn ports(self) -> (u16, u16) {
        match self {
            PortMatch::Ports(_, lo, hi) => (lo, hi),
            _ => (0, u16::MAX),
        }
    }

    /// The flows matched by both `self` and `other`, if any.
    fn intersect(self, other: PortMatch) -> Option<PortMatch> {
        let proto = match (self.protocol(), other.protocol()) {
            (None, _) => return Some(other),
            (_, None) => return Some(self),
            (Some(a), Some(b)) if a == b => a,
            _ => return None,
        };
        if let (PortMatch::Protocol(_), PortMatch::Protocol(_)) = (self, other) {
            return Some(PortMatch::Protocol(proto));
        }
        let ((alo, ahi), (blo, bhi)) = (self.ports(), other.ports());
        let (lo, hi) = (alo.max(blo), ahi.min(bhi));
        (lo <= hi).then_some(PortMatch::Ports(proto, lo, hi))
    }
}

/// What a rule requires of the source beyond its tenant (resolved into the cell table).
#[derive(Debug, Clone, Copy)]
struct SourceMatch {
    /// Empty: any facility.
    facilities: Span,
    /// Empty: any address.
    prefixes: Span,
}

#[derive(Debug, Clone, Copy)]
enum DestinationMatch {
    /// Inside one of these prefixes; empty: any address of the tenant.
    Prefixes(Span),
    /// Exactly this address (a service).
    Host(Ipv4Addr),
}

/// One rule as seen from one (source tenant, destination tenant) cell.
#[derive(Debug, Clone, Copy)]
struct Entry {
    rule: RuleId,
    dst: DestinationMatch,
    /// Allowed protocols/ports; empty: nothing.
    ports: Span,
}

/// The compiled policies of one plan. Tenants are numbered in configuration order.
#[derive(Debug, Clone)]
pub struct PolicySet {
    tenants: usize,
    /// `tenants × tenants` spans into `entries`, row = source tenant.
    cells: Vec<Span>,
    entries: Vec<Entry>,
    /// Per rule, indexed by `RuleId`.
    sources: Vec<SourceMatch>,
    facilities: Vec<FacilityCode>,
    prefixes: Vec<Prefix>,
    ports: Vec<PortMatch>,
    /// Per rule: its name, whether it is an agreement, and its window (UNIX seconds, `from`
    /// inclusive, `until` exclusive; `None` ends are open).
    rules: Vec<RuleInfo>,
}

/// What a rule is, for logs and flow records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub name: String,
    pub agreement: bool,
    pub valid_from: Option<u64>,
    pub valid_until: Option<u64>,
}

impl RuleInfo {
    fn in_force_at(&self, now: u64) -> bool {
        self.valid_from.is_none_or(|f| now >= f) && self.valid_until.is_none_or(|u| now < u)
    }
}

/// Which rules are in force at one wall-clock time, and when that next changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// By [`RuleId`]; empty when every rule is in force.
    inactive: Vec<bool>,
    /// The next time (UNIX seconds) a window opens or closes.
    pub next_change: Option<u64>,
}

impl Activity {
    /// Whether the same rules are in force in both (whatever their next change).
    pub fn same_rules(&self, other: &Activity) -> bool {
        let n = self.inactive.len().max(other.inactive.len());
        (0..n).all(|i| {
            let id = RuleId(i as u16);
            self.in_force(id) == other.in_force(id)
        })
    }

    /// Whether `rule` is in force.
    #[inline]
    pub fn in_force(&self, rule: RuleId) -> bool {
        !self.inactive.get(rule.index()).copied().unwrap_or(false)
    }
}

impl PolicySet {
    /// Compiles the policies of a validated configuration.
    ///
    /// Names that resolve to nothing (validation rejects them) are skipped: an unknown tenant
    /// or service in a list matches nothing, it never widens the list to "any". Rules beyond
    /// the range of [`RuleId`] and tenants beyond the range of [`TenantId`] are ignored.
    pub fn compile(config: &Config) -> PolicySet {
        let n = config.tenants.len().min(usize::from(u16::MAX) + 1);
        let mut tenant_index: HashMap<&str, usize> = HashMap::new();
        for (i, t) in config.tenants.iter().take(n).enumerate() {
            tenant_index.entry(t.name.as_str()).or_insert(i);
        }
        let mut service_index = HashMap::new();
        for s in &config.services {
            service_index.entry(s.name.as_str()).or_insert(s);
        }
        let resolve = |names: &[String]| -> Vec<usize> {
            let mut v: Vec<usize> = names
                .iter()
                .filter_map(|name| tenant_index.get(name.as_str()).copied())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };

        let mut set = PolicySet {
            tenants: n,
            cells: Vec::new(),
            entries: Vec::new(),
            sources: Vec::with_capacity(config.policies.len()),
            facilities: Vec::new(),
            prefixes: Vec::new(),
            ports: Vec::new(),
            rules: Vec::new(),
        };
        let mut cells: Vec<Vec<Entry>> = vec![Vec::new(); n * n];
        for (k, grant) in config.grants().enumerate() {
            let Ok(k) = u16::try_from(k) else { break };
            let rule = RuleId(k);
            let policy = grant.policy;
            set.rules.push(RuleInfo {
                name: policy.name.clone(),
                agreement: grant.agreement.is_some(),
                valid_from: grant.agreement.and_then(|a| a.valid_from),
                valid_until: grant.agreement.and_then(|a| a.valid_until),
            });

            let start = set.facilities.len();
            set.facilities.extend_from_slice(&policy.from.facilities);
            let facilities = span(start, set.facilities.len());
            let prefixes = set.push_prefixes(&policy.from.prefixes);
            set.sources.push(SourceMatch {
                facilities,
                prefixes,
            });

            let sources = if policy.from.tenants.is_empty() {
                (0..n).collect()
            } else {
                resolve(&policy.from.tenants)
            };
            let allow: Vec<PortMatch> = policy.allow.iter().map(|&r| PortMatch::new(r)).collect();
            let mut add = |dst_tenant: usize, entry: Entry| {
                for &s in &sources {
                    cells[s * n + dst_tenant].push(entry);
                }
            };

            match &policy.to {
                Destination::Tenants { tenants, prefixes } => {
                    let entry = Entry {
                        rule,
                        dst: DestinationMatch::Prefixes(set.push_prefixes(prefixes)),
                        ports: set.push_ports(allow.iter().copied()),
                    };
                    for d in resolve(tenants) {
                        add(d, entry);
                    }
                }
                Destination::Services(names) => {
                    let narrowing = if allow.is_empty() {
                        &[PortMatch::AnyProtocol][..]
                    } else {
                        &allow[..]
                    };
                    for name in names {
                        let Some(service) = service_index.get(name.as_str()) else {
                            continue;
                        };
                        let Some(&d) = tenant_index.get(service.tenant.as_str()) else {
                            continue;
                        };
                        let both = service.ports.iter().flat_map(|&sp| {
                            let sp = PortMatch::new(sp);
                            narrowing.iter().filter_map(move |&a| sp.intersect(a))
                        });
                        let entry = Entry {
                            rule,
                            dst: DestinationMatch::Host(service.address),
                            ports: set.push_ports(both),
                        };
                        add(d, entry);
                    }
                }
            }
        }

        set.cells.reserve_exact(cells.len());
        for cell in cells {
            let start = set.entries.len();
            set.entries.extend(cell);
            set.cells.push(span(start, set.entries.len()));
        }
        set
    }

    /// The first rule that allows the flow, or `None` (default deny). A tenant the plan does
    /// not know is denied.
    /// Every rule counts as in force, windows or not.
    pub fn evaluate(&self, q: &Query) -> Option<RuleId> {
        self.evaluate_at(q, &Activity::default())
    }

    /// The first rule in force (by `activity`) that allows the flow, or `None`.
    pub fn evaluate_at(&self, q: &Query, activity: &Activity) -> Option<RuleId> {
        let (s, d) = (q.src_tenant.index(), q.dst_tenant.index());
        if s >= self.tenants || d >= self.tenants {
            return None;
        }
        let cell = self.cells.get(s * self.tenants + d)?;
        self.entries
            .get(cell.range())?
            .iter()
            .find(|e| activity.in_force(e.rule) && self.entry_matches(e, q))
            .map(|e| e.rule)
    }

    /// Which rules are in force at `now` (UNIX seconds), and when that next changes.
    pub fn activity_at(&self, now: u64) -> Activity {
        let windowed = self
            .rules
            .iter()
            .any(|r| r.valid_from.is_some() || r.valid_until.is_some());
        if !windowed {
            return Activity::default();
        }
        Activity {
            inactive: self.rules.iter().map(|r| !r.in_force_at(now)).collect(),
            next_change: self
                .rules
                .iter()
                .flat_map(|r| [r.valid_from, r.valid_until])
                .flatten()
                .filter(|&t| t > now)
                .min(),
        }
    }

    /// The rules in force before the wall clock is known: every rule without a window; no
    /// windowed agreement grants anything until [`PolicySet::activity_at`] says so.
    pub fn activity_unknown(&self) -> Activity {
        let inactive: Vec<bool> = self
            .rules
            .iter()
            .map(|r| r.valid_from.is_some() || r.valid_until.is_some())
            .collect();
        if !inactive.contains(&true) {
            return Activity::default();
        }
        Activity {
            inactive,
            next_change: Some(0),
        }
    }

    /// What rule `rule` is.
    pub fn rule(&self, rule: RuleId) -> Option<&RuleInfo> {
        self.rules.get(rule.index())
    }

    /// The number of tenants the rule table was compiled for.
    pub fn tenants(&self) -> usize {
        self.tenants
    }

    fn entry_matches(&self, e: &Entry, q: &Query) -> bool {
        let ports = &self.ports[e.ports.range()];
        if !ports.iter().any(|p| p.matches(q.protocol, q.dst_port)) {
            return false;
        }
        let dst_ok = match e.dst {
            DestinationMatch::Host(addr) => q.dst.0 == addr,
            DestinationMatch::Prefixes(span) => self.in_prefixes(span, q.dst.0),
        };
        if !dst_ok {
            return false;
        }
        let Some(src) = self.sources.get(e.rule.index()) else {
            return false;
        };
        let facility_ok = src.facilities.is_empty()
            || q.src_facility
                .is_some_and(|f| self.facilities[src.facilities.range()].contains(&f));
        facility_ok && self.in_prefixes(src.prefixes, q.src.0)
    }

    /// True if `addr` lies in one of the prefixes of `span`, or `span` is empty.
    fn in_prefixes(&self, span: Span, addr: Ipv4Addr) -> bool {
        span.is_empty() || self.prefixes[span.range()].iter().any(|p| p.contains(addr))
    }

    fn push_prefixes(&mut self, nets: &[Ipv4Network]) -> Span {
        let start = self.prefixes.len();
        self.prefixes.extend(nets.iter().map(|&n| Prefix::new(n)));
        span(start, self.prefixes.len())
    }

    fn push_ports(&mut self, ports: impl IntoIterator<Item = PortMatch>) -> Span {
        let start = self.ports.len();
        self.ports.extend(ports);
        span(start, self.ports.len())
    }
}

/// Arenas hold far fewer than 2³² items: the `n × n` cell table of a configuration with that
/// many entries would not fit in memory.
fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        end: end as u32,
    }
}

#[cfg(test)]
mod agreement_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dataplane, Ix, Metrics, Policy, Service, Source, Tenant};
    use proptest::prelude::*;

    pub(super) fn config(
        tenants: &[&str],
        services: Vec<Service>,
        policies: Vec<Policy>,
    ) -> Config {
        Config {
            source: "test.yaml".into(),
            ix: Ix {
                name: "test-ix".into(),
                exchange_space: "100.64.0.0/10".parse().unwrap(),
                public_address: None,
            },
            metrics: Metrics {
                listen: "127.0.0.1:9477".parse().unwrap(),
                admin_socket: None,
                peer_series: crate::config::PeerSeries::All,
            },
            dataplane: Dataplane::default(),
            tenants: tenants
                .iter()
                .map(|name| Tenant {
                    name: name.to_string(),
                    trust: vec![],
                    networks: vec![],
                    attachments: vec![],
                })
                .collect(),
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

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn tcp(lo: u16, hi: u16) -> PortRule {
        PortRule {
            protocol: Protocol::Tcp,
            ports: Some((lo, hi)),
        }
    }

    fn proto(protocol: Protocol) -> PortRule {
        PortRule {
            protocol,
            ports: None,
        }
    }

    fn to_tenants(from: &[&str], to: &[&str], allow: Vec<PortRule>) -> Policy {
        Policy {
            name: "p".into(),
            from: Source {
                tenants: names(from),
                ..Source::default()
            },
            to: Destination::Tenants {
                tenants: names(to),
                prefixes: vec![],
            },
            allow,
        }
    }

    fn fac(s: &str) -> FacilityCode {
        FacilityCode::parse(s).unwrap()
    }

    /// A TCP/443 query from tenant `s` (10.0.1.1) to tenant `d` (10.0.2.2).
    fn query(s: u16, d: u16) -> Query {
        Query {
            src_tenant: TenantId(s),
            src_facility: None,
            src: InternalV4(Ipv4Addr::new(10, 0, 1, 1)),
            dst_tenant: TenantId(d),
            dst: InternalV4(Ipv4Addr::new(10, 0, 2, 2)),
            protocol: PROTO_TCP,
            dst_port: 443,
        }
    }

    #[test]
    fn default_deny() {
        let set = PolicySet::compile(&config(&["a", "b"], vec![], vec![]));
        assert_eq!(set.evaluate(&query(0, 1)), None);
        let set = PolicySet::compile(&config(
            &["a", "b"],
            vec![],
            vec![to_tenants(&["a"], &["b"], vec![tcp(80, 80)])],
        ));
        assert_eq!(set.evaluate(&query(0, 1)), None);
    }

    #[test]
    fn source_tenant_list() {
        let allow = vec![proto(Protocol::Tcp)];
        let set = PolicySet::compile(&config(
            &["a", "b", "c"],
            vec![],
            vec![to_tenants(&["a"], &["c"], allow.clone())],
        ));
        assert_eq!(set.evaluate(&query(0, 2)), Some(RuleId(0)));
        assert_eq!(set.evaluate(&query(1, 2)), None);
        assert_eq!(set.evaluate(&query(2, 0)), None, "rules are directed");

        let set = PolicySet::compile(&config(
            &["a", "b", "c"],
            vec![],
            vec![to_tenants(&[], &["c"], allow)],
        ));
        for s in 0..3 {
            assert_eq!(set.evaluate(&query(s, 2)), Some(RuleId(0)), "source {s}");
        }
        assert_eq!(set.evaluate(&query(0, 1)), None);
    }

    #[test]
    fn destination_tenants_and_prefixes() {
        let mut p = to_tenants(&["a"], &["b", "c"], vec![proto(Protocol::Any)]);
        p.to = Destination::Tenants {
            tenants: names(&["b", "c"]),
            prefixes: vec![net("10.0.2.0/24"), net("10.9.0.0/16")],
        };
        let set = PolicySet::compile(&config(&["a", "b", "c"], vec![], vec![p]));
        assert_eq!(set.evaluate(&query(0, 1)), Some(RuleId(0)));
        assert_eq!(set.evaluate(&query(0, 2)), Some(RuleId(0)));
        let mut q = query(0, 1);
        q.dst = InternalV4(Ipv4Addr::new(10, 9, 255, 1));
        assert_eq!(set.evaluate(&q), Some(RuleId(0)));
        q.dst = InternalV4(Ipv4Addr::new(10, 0, 3, 2));
        assert_eq!(set.evaluate(&q), None);
        assert_eq!(set.evaluate(&query(0, 0)), None, "a is not a destination");
    }

    #[test]
    fn facilities() {
        let (f1, f2, f3) = (fac("4212345674"), fac("3219876541"), fac("0112345673"));
        let mut p = to_tenants(&[], &["b"], vec![proto(Protocol::Any)]);
        p.from.facilities = vec![f1, f2];
        let set = PolicySet::compile(&config(&["a", "b"], vec![], vec![p]));
        let mut q = query(0, 1);
        for (facility, want) in [
            (Some(f1), Some(RuleId(0))),
            (Some(f2), Some(RuleId(0))),
            (Some(f3), None),
            (None, None),
        ] {
            q.src_facility = facility;
            assert_eq!(set.evaluate(&q), want, "{facility:?}");
        }

        let set = PolicySet::compile(&config(
            &["a", "b"],
            vec![],
            vec![to_tenants(&[], &["b"], vec![proto(Protocol::Any)])],
        ));
        q.src_facility = None;
        assert_eq!(set.evaluate(&q), Some(RuleId(0)), "empty list: any");
        q.src_facility = Some(f3);
        assert_eq!(set.evaluate(&q), Some(RuleId(0)), "empty list: any");
    }

    #[test]
    fn source_prefixes() {
        let mut p = to_tenants(&["a"], &["b"], vec![proto(Protocol::Any)]);
        p.from.prefixes = vec![net("10.0.1.0/30"), net("172.16.0.7/32")];
        let set = PolicySet::compile(&config(&["a", "b"], vec![], vec![p]));
        let mut q = query(0, 1);
        for (src, want) in [
            ([10, 0, 1, 0], true),
            ([10, 0, 1, 3], true),
            ([10, 0, 1, 4], false),
            ([172, 16, 0, 7], true),
            ([172, 16, 0, 6], false),
        ] {
            q.src = InternalV4(Ipv4Addr::from(src));
            assert_eq!(set.evaluate(&q).is_some(), want, "{src:?}");
        }
    }

    fn service(name: &str, tenant: &str, addr: [u8; 4], ports: Vec<PortRule>) -> Service {
        Service {
            name: name.into(),
            tenant: tenant.into(),
            address: Ipv4Addr::from(addr),
            ports,
        }
    }

    fn to_services(from: &[&str], services: &[&str], allow: Vec<PortRule>) -> Policy {
        Policy {
            name: "s".into(),
            from: Source {
                tenants: names(from),
                ..Source::default()
            },
            to: Destination::Services(names(services)),
            allow,
        }
    }

    #[test]
    fn service_address_tenant_and_ports() {
        let services = vec![service(
            "claims",
            "c",
            [10, 0, 2, 2],
            vec![tcp(443, 443), tcp(8443, 8443), proto(Protocol::Icmp)],
        )];
        let set = PolicySet::compile(&config(
            &["a", "b", "c"],
            services,
            vec![to_services(&["a"], &["claims"], vec![])],
        ));
        let mut q = query(0, 2);
        assert_eq!(set.evaluate(&q), Some(RuleId(0)));
        q.dst_port = 8443;
        assert_eq!(set.evaluate(&q), Some(RuleId(0)));
        q.dst_port = 80;
        assert_eq!(set.evaluate(&q), None, "port not published");
        q.protocol = PROTO_ICMP;
        q.dst_port = 0;
        assert_eq!(set.evaluate(&q), Some(RuleId(0)));

        let mut q = query(0, 2);
        q.dst = InternalV4(Ipv4Addr::new(10, 0, 2, 3));
        assert_eq!(set.evaluate(&q), None, "another host of the tenant");
        assert_eq!(
            set.evaluate(&query(0, 1)),
            None,
            "same address, other tenant"
        );
    }

    #[test]
    fn service_ports_intersect_allow() {
        let services = vec![service(
            "claims",
            "b",
            [10, 0, 2, 2],
            vec![tcp(400, 500), proto(Protocol::Udp)],
        )];
        let set = PolicySet::compile(&config(
            &["a", "b"],
            services,
            vec![to_services(
                &[],
                &["claims"],
                vec![tcp(443, 600), proto(Protocol::Icmp), proto(Protocol::Udp)],
            )],
        ));
        let mut q = query(0, 1);
        for (protocol, port, want) in [
            (PROTO_TCP, 442, false),
            (PROTO_TCP, 443, true),
            (PROTO_TCP, 500, true),
            (PROTO_TCP, 501, false),
            (PROTO_TCP, 600, false),
            (PROTO_UDP, 9, true),
            (PROTO_ICMP, 0, false),
        ] {
            q.protocol = protocol;
            q.dst_port = port;
            assert_eq!(set.evaluate(&q).is_some(), want, "{protocol}/{port}");
        }
    }

    #[test]
    fn any_icmp_and_port_ranges() {
        let set = PolicySet::compile(&config(
            &["a", "b", "c"],
            vec![],
            vec![
                to_tenants(&["a"], &["b"], vec![proto(Protocol::Any)]),
                to_tenants(&["a"], &["c"], vec![proto(Protocol::Icmp), tcp(100, 200)]),
                to_tenants(&["b"], &["c"], vec![proto(Protocol::Udp)]),
            ],
        ));
        let check = |s, d, protocol, port| {
            let mut q = query(s, d);
            q.protocol = protocol;
            q.dst_port = port;
            set.evaluate(&q)
        };
        assert_eq!(check(0, 1, 47, 0), Some(RuleId(0)));
        assert_eq!(check(0, 1, PROTO_UDP, 65535), Some(RuleId(0)));
        assert_eq!(check(0, 2, PROTO_ICMP, 0), Some(RuleId(1)));
        assert_eq!(check(0, 2, 47, 0), None);
        assert_eq!(check(0, 2, PROTO_TCP, 99), None);
        assert_eq!(check(0, 2, PROTO_TCP, 100), Some(RuleId(1)));
        assert_eq!(check(0, 2, PROTO_TCP, 200), Some(RuleId(1)));
        assert_eq!(check(0, 2, PROTO_TCP, 201), None);
        assert_eq!(check(0, 2, PROTO_UDP, 150), None);
        assert_eq!(check(1, 2, PROTO_UDP, 0), Some(RuleId(2)));
        assert_eq!(check(1, 2, PROTO_UDP, 65535), Some(RuleId(2)));
        assert_eq!(check(1, 2, PROTO_TCP, 53), None);
    }

    #[test]
    fn first_match_wins() {
        let narrow = {
            let mut p = to_tenants(&["a"], &["b"], vec![tcp(443, 443)]);
            p.from.prefixes = vec![net("10.0.1.0/24")];
            p
        };
        let broad = to_tenants(&[], &["b"], vec![proto(Protocol::Any)]);
        let set = PolicySet::compile(&config(&["a", "b"], vec![], vec![narrow, broad]));
        assert_eq!(set.evaluate(&query(0, 1)), Some(RuleId(0)));
        let mut q = query(0, 1);
        q.dst_port = 444;
        assert_eq!(set.evaluate(&q), Some(RuleId(1)));
        assert_eq!(set.evaluate(&query(1, 1)), Some(RuleId(1)));
    }

    #[test]
    fn empty_allow_on_tenant_rule_admits_nothing() {
        let set = PolicySet::compile(&config(
            &["a", "b"],
            vec![],
            vec![to_tenants(&["a"], &["b"], vec![])],
        ));
        assert_eq!(set.evaluate(&query(0, 1)), None);
    }

    #[test]
    fn unknown_names_match_nothing_and_do_not_panic() {
        let services = vec![
            service(
                "orphan",
                "nowhere",
                [10, 0, 2, 2],
                vec![proto(Protocol::Any)],
            ),
            service("ok", "b", [10, 0, 2, 2], vec![proto(Protocol::Any)]),
        ];
        let any = || vec![proto(Protocol::Any)];
        let set = PolicySet::compile(&config(
            &["a", "b"],
            services,
            vec![
                to_tenants(&["ghost"], &["b"], any()),
                to_tenants(&["a"], &["ghost"], any()),
                to_services(&["a"], &["ghost", "orphan"], vec![]),
                to_services(&["ghost", "a"], &["ghost", "ok"], vec![]),
            ],
        ));
        assert_eq!(set.evaluate(&query(0, 1)), Some(RuleId(3)));
        assert_eq!(set.evaluate(&query(1, 1)), None);
        assert_eq!(set.evaluate(&query(0, 7)), None, "tenant outside the plan");
        assert_eq!(set.evaluate(&query(9, 0)), None, "tenant outside the plan");
    }

    #[test]
    fn cells_hold_only_rules_of_their_pair() {
        let any = || vec![proto(Protocol::Any)];
        let set = PolicySet::compile(&config(
            &["a", "b", "c"],
            vec![service("s", "c", [10, 0, 2, 2], any())],
            vec![
                to_tenants(&["a"], &["b"], any()),
                to_tenants(&[], &["c"], any()),
                to_services(&["b"], &["s"], vec![]),
            ],
        ));
        let rules = |s: usize, d: usize| -> Vec<u16> {
            let cell = set.cells[s * 3 + d];
            set.entries[cell.range()].iter().map(|e| e.rule.0).collect()
        };
        assert_eq!(rules(0, 1), [0]);
        assert_eq!(rules(1, 2), [1, 2]);
        assert_eq!(rules(0, 2), [1]);
        assert!(rules(1, 0).is_empty());
        assert!(rules(2, 1).is_empty());
    }

    // A straightforward reading of the semantics in the module doc, to check the compiled
    // form against.
    fn reference(config: &Config, q: &Query) -> Option<RuleId> {
        let n = config.tenants.len();
        if q.src_tenant.index() >= n || q.dst_tenant.index() >= n {
            return None;
        }
        let tenant = |name: &str| config.tenants.iter().position(|t| t.name == name);
        let is = |name: &String, id: TenantId| tenant(name) == Some(id.index());
        let in_any = |nets: &[Ipv4Network], a: Ipv4Addr| nets.iter().any(|n| n.contains(a));
        let port_ok = |r: &PortRule| match r.protocol {
            Protocol::Any => true,
            Protocol::Icmp => q.protocol == 1,
            Protocol::Tcp | Protocol::Udp => {
                let number = if r.protocol == Protocol::Tcp { 6 } else { 17 };
                q.protocol == number
                    && r.ports
                        .is_none_or(|(lo, hi)| lo <= q.dst_port && q.dst_port <= hi)
            }
        };
        config.policies.iter().enumerate().find_map(|(k, p)| {
            let f = &p.from;
            let src = (f.tenants.is_empty() || f.tenants.iter().any(|t| is(t, q.src_tenant)))
                && (f.facilities.is_empty()
                    || q.src_facility.is_some_and(|x| f.facilities.contains(&x)))
                && (f.prefixes.is_empty() || in_any(&f.prefixes, q.src.0));
            let dst = match &p.to {
                Destination::Tenants { tenants, prefixes } => {
                    tenants.iter().any(|t| is(t, q.dst_tenant))
                        && (prefixes.is_empty() || in_any(prefixes, q.dst.0))
                        && p.allow.iter().any(port_ok)
                }
                Destination::Services(names) => names.iter().any(|name| {
                    config
                        .services
                        .iter()
                        .find(|s| &s.name == name)
                        .is_some_and(|s| {
                            is(&s.tenant, q.dst_tenant)
                                && s.address == q.dst.0
                                && s.ports.iter().any(port_ok)
                                && (p.allow.is_empty() || p.allow.iter().any(port_ok))
                        })
                }),
            };
            (src && dst).then_some(RuleId(k as u16))
        })
    }

    const TENANTS: [&str; 4] = ["t0", "t1", "t2", "t3"];
    const FACILITIES: [&str; 2] = ["4212345674", "3219876541"];

    fn addr() -> impl Strategy<Value = Ipv4Addr> {
        (0u8..2, 0u8..2).prop_map(|(x, y)| Ipv4Addr::new(10, 0, x, y))
    }

    fn prefix() -> impl Strategy<Value = Ipv4Network> {
        (addr(), prop::sample::select(vec![16u8, 24, 30, 31, 32]))
            .prop_map(|(a, len)| Ipv4Network::new(a, len).unwrap())
    }

    fn port() -> impl Strategy<Value = u16> {
        prop_oneof![4 => 0u16..4, 1 => Just(u16::MAX)]
    }

    fn port_rule() -> impl Strategy<Value = PortRule> {
        let protocol = prop::sample::select(vec![
            Protocol::Tcp,
            Protocol::Udp,
            Protocol::Icmp,
            Protocol::Any,
        ]);
        let ports =
            prop::option::of((port(), 0u16..3).prop_map(|(lo, n)| (lo, lo.saturating_add(n))));
        (protocol, ports).prop_map(|(protocol, ports)| PortRule { protocol, ports })
    }

    // Mostly known names, sometimes one that resolves to nothing.
    fn tenant_name() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::sample::select(&TENANTS[..]).prop_map(String::from),
            1 => Just("ghost".to_string()),
        ]
    }

    /// An empty list (matches anything) half of the time.
    fn sometimes<T: std::fmt::Debug + Clone>(
        item: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Vec<T>> {
        prop_oneof![Just(vec![]), prop::collection::vec(item, 1..3)]
    }

    fn service_strategy() -> impl Strategy<Value = Vec<Service>> {
        prop::collection::vec(
            (
                tenant_name(),
                addr(),
                prop::collection::vec(port_rule(), 0..3),
            ),
            0..4,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (tenant, address, ports))| Service {
                    name: format!("s{i}"),
                    tenant,
                    address,
                    ports,
                })
                .collect()
        })
    }

    fn policy_strategy() -> impl Strategy<Value = Policy> {
        let facilities = sometimes(prop::sample::select(&FACILITIES[..]).prop_map(fac));
        let from = (sometimes(tenant_name()), facilities, sometimes(prefix())).prop_map(
            |(tenants, facilities, prefixes)| Source {
                tenants,
                facilities,
                prefixes,
            },
        );
        let to = prop_oneof![
            (
                prop::collection::vec(tenant_name(), 1..3),
                sometimes(prefix())
            )
                .prop_map(|(tenants, prefixes)| Destination::Tenants { tenants, prefixes }),
            prop::collection::vec((0..4usize).prop_map(|i| format!("s{i}")), 1..3)
                .prop_map(Destination::Services),
        ];
        (from, to, prop::collection::vec(port_rule(), 0..3)).prop_map(|(from, to, allow)| Policy {
            name: "p".into(),
            from,
            to,
            allow,
        })
    }

    fn config_strategy() -> impl Strategy<Value = Config> {
        (
            3usize..=4,
            service_strategy(),
            prop::collection::vec(policy_strategy(), 0..10),
        )
            .prop_map(|(n, services, policies)| config(&TENANTS[..n], services, policies))
    }

    // Mostly tenants of the plan, sometimes one outside it.
    fn tenant_id() -> impl Strategy<Value = u16> {
        prop_oneof![12 => 0u16..4, 1 => Just(4u16)]
    }

    /// Half of the queries go to one of `targets` (destination tenant, address).
    fn query_strategy(targets: Vec<(u16, Ipv4Addr)>) -> impl Strategy<Value = Query> {
        let protocol = prop::sample::select(vec![PROTO_ICMP, PROTO_TCP, PROTO_UDP, 47]);
        let facility = prop::option::of(prop::sample::select(&FACILITIES[..]).prop_map(fac));
        let target = if targets.is_empty() {
            Just(None).boxed()
        } else {
            prop::option::of(prop::sample::select(targets)).boxed()
        };
        let dst = (tenant_id(), addr(), target).prop_map(|(d, a, t)| t.unwrap_or((d, a)));
        (tenant_id(), facility, addr(), dst, protocol, port()).prop_map(
            |(s, src_facility, src, (d, dst), protocol, dst_port)| Query {
                src_tenant: TenantId(s),
                src_facility,
                src: InternalV4(src),
                dst_tenant: TenantId(d),
                dst: InternalV4(dst),
                protocol,
                dst_port,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn evaluate_agrees_with_reference(
            (config, queries) in config_strategy().prop_flat_map(|config| {
                let targets = config
                    .services
                    .iter()
                    .filter_map(|s| {
                        let t = config.tenants.iter().position(|t| t.name == s.tenant)?;
                        Some((t as u16, s.address))
                    })
                    .collect();
                let queries = prop::collection::vec(query_strategy(targets), 1..64);
                (Just(config), queries)
            }),
        ) {
            let set = PolicySet::compile(&config);
            for q in &queries {
                prop_assert_eq!(set.evaluate(q), reference(&config, q), "{:?}", q);
            }
        }
    }
}
