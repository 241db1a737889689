//! Which exchange prefixes a facility can exchange traffic with under the policies, in either
//! direction: what its policies let it open, and who may open flows to it (the replies come
//! from there). `ixgw peer-config` writes it as WireGuard's AllowedIPs and IPsec's remote
//! traffic selectors, and an IPsec attachment offers it as its local traffic selectors when
//! `local_ts` is not configured.

use std::collections::BTreeSet;

use ipnetwork::Ipv4Network;

use crate::config::{Config, Destination, Tenant};
use crate::ids::FacilityCode;
use crate::nat::remap;

/// The exchange prefixes of `prefixes` (internal numbering of `tenant`), or all of the
/// tenant's exchange prefixes when `prefixes` is empty.
fn exchange_of(tenant: &Tenant, prefixes: &[Ipv4Network]) -> Vec<Ipv4Network> {
    if prefixes.is_empty() {
        return tenant.networks.iter().map(|n| n.exchange).collect();
    }
    let mut out = Vec::new();
    for p in prefixes {
        for n in &tenant.networks {
            if n.internal.contains(p.network()) && n.internal.prefix() <= p.prefix() {
                let x = remap(p.network(), n.internal, n.exchange);
                if let Ok(net) = Ipv4Network::new(x, p.prefix()) {
                    out.push(net);
                }
            }
        }
    }
    out
}

fn overlaps(a: &Ipv4Network, b: &Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// The exchange prefixes a peer of `tenant` with `facility`, routing `routes` (internal), can
/// exchange traffic with under the policies, in either direction.
pub fn reachable(
    config: &Config,
    tenant: &Tenant,
    facility: FacilityCode,
    routes: &[Ipv4Network],
) -> BTreeSet<Ipv4Network> {
    let by_name = |n: &str| config.tenants.iter().find(|t| t.name == n);
    let peer_prefix_match = |prefixes: &[Ipv4Network]| {
        prefixes.is_empty()
            || prefixes
                .iter()
                .any(|p| routes.iter().any(|a| overlaps(p, a)))
    };
    let mut out = BTreeSet::new();
    // Every approved agreement counts, in force now or not: a tunnel's routes are set up
    // once, and the data path enforces the windows.
    for grant in config.grants() {
        let pol = grant.policy;
        let from_tenants: Vec<&Tenant> = if pol.from.tenants.is_empty() {
            config.tenants.iter().collect()
        } else {
            pol.from.tenants.iter().filter_map(|n| by_name(n)).collect()
        };
        let is_source = from_tenants.iter().any(|t| t.name == tenant.name)
            && (pol.from.facilities.is_empty() || pol.from.facilities.contains(&facility))
            && peer_prefix_match(&pol.from.prefixes);
        let (is_destination, to) = match &pol.to {
            Destination::Tenants { tenants, prefixes } => {
                let mut to = Vec::new();
                for t in tenants.iter().filter_map(|n| by_name(n)) {
                    to.extend(exchange_of(t, prefixes));
                }
                (
                    tenants.contains(&tenant.name) && peer_prefix_match(prefixes),
                    to,
                )
            }
            Destination::Services(names) => {
                let mut to = Vec::new();
                let mut dest = false;
                for svc in config.services.iter().filter(|s| names.contains(&s.name)) {
                    let Some(t) = by_name(&svc.tenant) else {
                        continue;
                    };
                    if let Ok(host) = Ipv4Network::new(svc.address, 32) {
                        to.extend(exchange_of(t, &[host]));
                        dest |= t.name == tenant.name && peer_prefix_match(&[host]);
                    }
                }
                (dest, to)
            }
        };
        if is_source {
            out.extend(to);
        }
        if is_destination {
            for t in &from_tenants {
                out.extend(exchange_of(t, &pol.from.prefixes));
            }
        }
    }
    out
}
