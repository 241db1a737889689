//! `wireguard` attachments: the listen socket, the private key file, and per peer its
//! facility, keys, allowed-ips (unique in the tenant), address, endpoint and keepalive.

use super::*;

impl Validator {
    pub(super) fn wireguard(
        &self,
        ak: &str,
        a: &raw::WireGuardAttachment,
        tenant: &Tenant,
        peer_names: &mut Names,
        listens: &mut Vec<(SocketAddr, String)>,
        routes: &mut Vec<Keyed>,
    ) -> Result<WireGuardAttachment, ConfigError> {
        const KIND: &str = "wireguard";
        let lk = format!("{ak}.listen");
        let listen = self.socket(&lk, self.required(ak, "listen", &a.listen, KIND)?)?;
        self.claim_socket(listens, listen, lk)?;
        let private_key_file = self.required(ak, "private_key_file", &a.private_key_file, KIND)?;
        let (private_key_file, private_key) =
            self.key_file(&format!("{ak}.private_key_file"), private_key_file)?;
        let mtu = self.mtu(ak, a.mtu, KIND, WIREGUARD_MTU, WIREGUARD_DEFAULT_MTU)?;

        let mut public_keys: HashMap<[u8; 32], String> = HashMap::new();
        let mut peers = Vec::new();
        for (pi, p) in a.peers.iter().enumerate() {
            let pk = format!("{ak}.peers[{pi}]");
            self.unique(peer_names, "peer", &p.name, &format!("{pk}.name"))?;
            let facility = self.peer_facility(&pk, &p.name, &p.facility)?;
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
}
