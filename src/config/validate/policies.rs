//! Services and policies: the names they use exist, their prefixes lie in the tenants they
//! name, and services are routed.

use super::*;

impl Validator {
    pub(super) fn services(
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

    pub(super) fn policies(
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
            let (from, to, allow) = self.grant(
                (&format!("{pk}.from"), &p.from),
                (&format!("{pk}.to"), &p.to),
                (&format!("{pk}.allow"), &p.allow),
                tenants,
                services,
            )?;
            policies.push(Policy {
                name: p.name.clone(),
                from,
                to,
                allow,
            });
        }
        Ok(policies)
    }

    /// What a policy or an agreement grants: who opens (`from`), to what (`to`), which ports
    /// (`allow`), each with its key path.
    #[allow(clippy::type_complexity)]
    pub(super) fn grant(
        &self,
        from: (&str, &raw::From),
        to: (&str, &raw::To),
        allow: (&str, &Option<Vec<String>>),
        tenants: &[Tenant],
        services: &[Service],
    ) -> Result<(Source, Destination, Vec<PortRule>), ConfigError> {
        let (fk, from) = from;
        let (tok, to) = to;
        let (allow_key, raw_allow) = allow;
        let from = self.source(fk, from, tenants)?;
        let allow = match raw_allow {
            Some(list) if list.is_empty() => return Err(self.err(allow_key, Problem::Empty)),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| self.port_rule(&format!("{allow_key}[{i}]"), s))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let to = match (&to.tenant, &to.service) {
            (Some(_), Some(_)) => return Err(self.err(tok, Problem::DestinationBoth)),
            (None, None) => return Err(self.err(tok, Problem::DestinationNeither)),
            (Some(names), None) => {
                let dest = self.tenant_names(&format!("{tok}.tenant"), names, tenants)?;
                let prefixes = match &to.prefixes {
                    Some(list) => self.scoped_prefixes(&format!("{tok}.prefixes"), list, &dest)?,
                    None => Vec::new(),
                };
                if raw_allow.is_none() {
                    return Err(self.err(allow_key, Problem::TenantPolicyWithoutAllow));
                }
                Destination::Tenants {
                    tenants: dest.iter().map(|t| t.name.clone()).collect(),
                    prefixes,
                }
            }
            (None, Some(names)) => {
                if to.prefixes.is_some() {
                    return Err(self.err(&format!("{tok}.prefixes"), Problem::PrefixesWithService));
                }
                let sk = format!("{tok}.service");
                let mut dest = Vec::with_capacity(names.items.len());
                for (i, name) in names.items.iter().enumerate() {
                    let service = services.iter().find(|s| &s.name == name).ok_or_else(|| {
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
        Ok((from, to, allow))
    }

    pub(super) fn source(
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

    pub(super) fn tenant_names<'t>(
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
    pub(super) fn scoped_prefixes(
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
    pub(super) fn internal_prefixes(
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
}

pub(super) fn tenant_has_facility(t: &Tenant, code: FacilityCode) -> bool {
    t.attachments.iter().any(|a| match &a.kind {
        AttachmentKind::WireGuard(wg) => wg.peers.iter().any(|p| p.facility == code),
        AttachmentKind::Ipsec(ipsec) => ipsec.peers.iter().any(|p| p.facility == code),
        AttachmentKind::Tls(tls) => tls.peers.iter().any(|p| p.facility == code),
        AttachmentKind::Plain(_) | AttachmentKind::Ethernet(_) => false,
    })
}

pub(super) fn internal_list(t: &Tenant) -> String {
    join(&t.networks.iter().map(|n| n.internal).collect::<Vec<_>>())
}

/// Whether every flow `rule` allows is also allowed by `by`.
pub(super) fn covers(by: &PortRule, rule: &PortRule) -> bool {
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

pub(super) fn rule_text(r: &PortRule) -> String {
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
