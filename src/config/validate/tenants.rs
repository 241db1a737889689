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

    pub(super) fn wireguard(
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

    pub(super) fn plain(
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
}

/// Two UDP listeners clash on the same port if their addresses are equal or either is the
/// wildcard address. Port 0 lets the kernel choose a free port each time, so it never clashes.
pub(super) fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Everything a tenant's attachments route: peers' allowed-ips and plain routes.
pub(super) fn tenant_routes(t: &Tenant) -> impl Iterator<Item = &Ipv4Network> {
    t.attachments.iter().flat_map(|a| match &a.kind {
        AttachmentKind::WireGuard(wg) => wg
            .peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter())
            .collect::<Vec<_>>(),
        AttachmentKind::Plain(p) => p.routes.iter().collect(),
    })
}
