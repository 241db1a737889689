//! Tenants, their networks and attachments: 1:1 mappings inside the exchange space, no
//! overlapping prefixes, routes or sockets, and only the keys each attachment type accepts.

use super::*;

impl Validator {
    pub(super) fn tenants(&self, raw: &[raw::Tenant], ix: &Ix) -> Result<Vec<Tenant>, ConfigError> {
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
                trust: t.trust.clone(),
                networks,
                attachments: Vec::new(),
            });
        }
        self.no_overlap(&exchanges)?;

        let mut attachment_names = Names::default();
        let mut peer_names = Names::default();
        let mut sockets = Sockets::default();
        let mut ports = Ports::default();
        let mut kernel_routes: Vec<KernelRoute> = Vec::new();
        for (ti, t) in raw.iter().enumerate() {
            let tk = format!("tenants[{ti}]");
            let mut routes: Vec<Keyed> = Vec::new();
            let mut attachments = Vec::with_capacity(t.attachments.len());
            for (ai, value) in t.attachments.iter().enumerate() {
                let ak = format!("{tk}.attachments[{ai}]");
                let a = self.raw_attachment(&ak, value)?;
                self.unique(
                    &mut attachment_names,
                    "attachment",
                    a.name(),
                    &format!("{ak}.name"),
                )?;
                let kind = match &a {
                    raw::Attachment::WireGuard(a) => AttachmentKind::WireGuard(self.wireguard(
                        &ak,
                        a,
                        &tenants[ti],
                        &mut peer_names,
                        &mut sockets.udp,
                        &mut routes,
                    )?),
                    raw::Attachment::Ipsec(a) => AttachmentKind::Ipsec(self.ipsec(
                        &ak,
                        a,
                        &tenants[ti],
                        ix,
                        &mut peer_names,
                        &mut sockets,
                        &mut routes,
                    )?),
                    raw::Attachment::Tls(a) => AttachmentKind::Tls(self.tls(
                        &ak,
                        a,
                        &tenants[ti],
                        ix,
                        &mut peer_names,
                        &mut sockets.tcp,
                        &mut routes,
                    )?),
                    raw::Attachment::Ethernet(e) => AttachmentKind::Ethernet(self.ethernet(
                        &ak,
                        a.name(),
                        e,
                        &tenants[ti],
                        &mut ports,
                        &mut routes,
                    )?),
                    raw::Attachment::Plain(a) => {
                        let plain =
                            self.plain(&ak, a, &tenants[ti], ix, &mut ports, &mut routes)?;
                        let owner = (ti, ai);
                        kernel_routes.extend(plain.kernel_routes.iter().enumerate().map(
                            |(i, net)| match a.kernel_routes {
                                Some(_) => (*net, format!("{ak}.kernel_routes[{i}]"), owner, false),
                                None => (*net, format!("{ak}.kernel_routes"), owner, true),
                            },
                        ));
                        AttachmentKind::Plain(plain)
                    }
                };
                attachments.push(Attachment {
                    name: a.name().to_string(),
                    kind,
                });
            }
            self.no_overlap(&routes)?;
            tenants[ti].attachments = attachments;
        }
        self.no_kernel_route_overlap(&kernel_routes)?;
        Ok(tenants)
    }

    /// Reads attachment `ak` into the struct of its `type`, which denies the keys of other
    /// types; errors keep their key path below `ak`.
    fn raw_attachment(
        &self,
        ak: &str,
        value: &yaml_serde::Value,
    ) -> Result<raw::Attachment, ConfigError> {
        let tk = format!("{ak}.type");
        let kind = match value {
            yaml_serde::Value::Mapping(m) => match m.get("type") {
                Some(yaml_serde::Value::String(s)) => s.as_str(),
                Some(_) => return Err(self.err(&tk, Problem::Schema("expected a string".into()))),
                None => return Err(self.err(&tk, Problem::Schema("missing key `type`".into()))),
            },
            _ => return Err(self.err(ak, Problem::Schema("expected a mapping".into()))),
        };
        match kind {
            "wireguard" => self
                .typed(ak, value, "wireguard")
                .map(raw::Attachment::WireGuard),
            "plain" => self.typed(ak, value, "plain").map(raw::Attachment::Plain),
            "ipsec" => self.typed(ak, value, "ipsec").map(raw::Attachment::Ipsec),
            "ethernet" => self
                .typed(ak, value, "ethernet")
                .map(raw::Attachment::Ethernet),
            "tls" => self.typed(ak, value, "tls").map(raw::Attachment::Tls),
            other => Err(self.err(&tk, Problem::UnknownAttachmentType(other.to_string()))),
        }
    }

    /// Deserializes `value` (the mapping at `key`) into `T`, an attachment of `kind`. The
    /// value goes back through YAML text so that scalars are read as the operator wrote them
    /// (`persistent_keepalive: 25` into a string, as for every other key).
    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        value: &yaml_serde::Value,
        kind: &'static str,
    ) -> Result<T, ConfigError> {
        let text = yaml_serde::to_string(value)
            .map_err(|e| self.err(key, Problem::Schema(e.to_string())))?;
        serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(&text)).map_err(|e| {
            let below = e.path().to_string();
            let mut message = e.into_inner().to_string();
            // Lines of the text made here mean nothing to the operator; the key path tells.
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            // The deserializer names the path as well; `below` already has it.
            if let Some((head, rest)) = message.split_once(": ") {
                if is_key_path(head) {
                    message = rest.to_string();
                }
            }
            let path = match below.as_str() {
                "" | "." => key.to_string(),
                p if p.starts_with('[') => format!("{key}{p}"),
                p => format!("{key}.{p}"),
            };
            // An unknown key directly in the attachment belongs to another type.
            if let Some(rest) = message.strip_prefix("unknown field `") {
                if let Some((name, _)) = rest.split_once('`') {
                    if name == below {
                        return self.err(
                            &path,
                            Problem::KeyNotForKind {
                                key: name.to_string(),
                                kind,
                            },
                        );
                    }
                }
            }
            let (path, message) = schema_words(path, message);
            self.err(&path, Problem::Schema(message))
        })
    }

    /// The kernel routes a prefix into one device, so plain attachments must not claim
    /// overlapping `kernel_routes` (overlaps within one attachment are harmless). Reported at
    /// the later of the two in file order.
    pub(super) fn no_kernel_route_overlap(&self, items: &[KernelRoute]) -> Result<(), ConfigError> {
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
}

/// Two UDP listeners clash on the same port if their addresses are equal or either is the
/// wildcard address. Port 0 lets the kernel choose a free port each time, so it never clashes.
pub(super) fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Everything a tenant's attachments route: peers' allowed-ips and remote traffic selectors,
/// and plain routes.
pub(super) fn tenant_routes(t: &Tenant) -> impl Iterator<Item = Ipv4Network> + '_ {
    t.attachments.iter().flat_map(|a| match &a.kind {
        AttachmentKind::WireGuard(wg) => wg
            .peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().copied())
            .collect::<Vec<_>>(),
        AttachmentKind::Plain(p) => p.routes.clone(),
        AttachmentKind::Ethernet(e) => e.all_routes().collect(),
        AttachmentKind::Tls(tls) => vec![tls.pool],
        AttachmentKind::Ipsec(ipsec) => ipsec
            .peers
            .iter()
            .flat_map(|p| p.remote_ts.iter().copied())
            .collect(),
    })
}
