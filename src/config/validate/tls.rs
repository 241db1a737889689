//! `tls` attachments: the TCP socket clients connect to (unique among TLS listeners), the
//! server's certificate and key, the CAs that issue the clients' facility certificates (trust
//! bundles of the tenant), the address pool (a route of the tenant), what is pushed to clients
//! and the session timers, and per peer its facility (one peer per facility: the certificate
//! names the facility, and the facility names the peer).

use super::*;
use crate::config::{TlsAttachment, TlsPeer};

const KIND: &str = "tls";
pub(super) const TLS_MTU: RangeInclusive<u16> = 576..=1500;
pub(super) const TLS_DEFAULT_MTU: u16 = 1400;
/// DPD and keepalive intervals the client is told, in seconds.
const CLIENT_TIMER: RangeInclusive<u64> = 5..=3600;
const DEFAULT_DPD: u64 = 30;
const DEFAULT_KEEPALIVE: u64 = 20;
/// Idle and session timeouts, in seconds: a minute to a week.
const SESSION_TIMER: RangeInclusive<u64> = 60..=604_800;
const DEFAULT_IDLE_TIMEOUT: u64 = 30 * 60;
const DEFAULT_SESSION_TIMEOUT: u64 = 24 * 3600;

impl Validator {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tls(
        &self,
        ak: &str,
        a: &raw::TlsAttachment,
        tenant: &Tenant,
        ix: &Ix,
        peer_names: &mut Names,
        listens: &mut Vec<(SocketAddr, String)>,
        routes: &mut Vec<Keyed>,
    ) -> Result<TlsAttachment, ConfigError> {
        let lk = format!("{ak}.listen");
        let listen = self.socket(&lk, self.required(ak, "listen", &a.listen, KIND)?)?;
        self.claim_socket(listens, listen, lk)?;
        self.required(ak, "certificate_file", &a.certificate_file, KIND)?;
        self.required(ak, "private_key_file", &a.private_key_file, KIND)?;
        let credentials = self
            .gateway_credentials(ak, &a.certificate_file, &a.private_key_file)?
            .ok_or_else(|| {
                self.err(
                    &format!("{ak}.certificate_file"),
                    Problem::MissingForKind {
                        key: "certificate_file",
                        kind: KIND,
                    },
                )
            })?;

        let ck = format!("{ak}.client_ca");
        let client_ca = self.required(ak, "client_ca", &a.client_ca, KIND)?;
        if client_ca.is_empty() {
            return Err(self.err(&ck, Problem::Empty));
        }
        for (i, name) in client_ca.iter().enumerate() {
            if !tenant.trust.iter().any(|t| t == name) {
                return Err(self.err(
                    &format!("{ck}[{i}]"),
                    Problem::ClientCaNotTrusted {
                        name: name.clone(),
                        tenant: tenant.name.clone(),
                    },
                ));
            }
        }
        let tls12 = match &a.tls_versions {
            None => false,
            Some(list) => {
                let vk = format!("{ak}.tls_versions");
                if list.is_empty() {
                    return Err(self.err(&vk, Problem::Empty));
                }
                let mut tls12 = false;
                for (i, v) in list.iter().enumerate() {
                    match v.trim() {
                        "1.3" => {}
                        "1.2" => tls12 = true,
                        other => {
                            return Err(self.err(
                                &format!("{vk}[{i}]"),
                                Problem::Choice {
                                    value: other.to_string(),
                                    expected: "`1.3` or `1.2`",
                                },
                            ))
                        }
                    }
                }
                if !list.iter().any(|v| v.trim() == "1.3") {
                    return Err(self.err(&vk, Problem::Tls13Required));
                }
                tls12
            }
        };

        let pk = format!("{ak}.pool");
        let pool_text = self.required(ak, "pool", &a.pool, KIND)?;
        let pool = self.prefix(&pk, pool_text)?;
        if !tenant
            .networks
            .iter()
            .any(|n| pool.is_subnet_of(n.internal))
        {
            return Err(self.err(
                &pk,
                Problem::NotInternal {
                    value: pool.to_string(),
                    tenant: tenant.name.clone(),
                    internal: super::policies::internal_list(tenant),
                },
            ));
        }
        routes.push((pool, pk.clone()));
        let dns = match &a.dns {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.trim().parse::<Ipv4Addr>().map_err(|_| {
                        self.err(
                            &format!("{ak}.dns[{i}]"),
                            Problem::Ipv4Addr { value: s.clone() },
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let split_routes = match &a.split_routes {
            Some(list) => {
                let sk = format!("{ak}.split_routes");
                if list.is_empty() {
                    return Err(self.err(&sk, Problem::Empty));
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let key = format!("{sk}[{i}]");
                    let net = self.prefix(&key, s)?;
                    if !net.is_subnet_of(ix.exchange_space) {
                        return Err(self.err(
                            &key,
                            Problem::OutsideExchangeSpace {
                                value: net,
                                space: ix.exchange_space,
                            },
                        ));
                    }
                    out.push(net);
                }
                Some(out)
            }
            None => None,
        };
        let mtu = self.mtu(ak, a.mtu, KIND, TLS_MTU, TLS_DEFAULT_MTU)?;
        let timer = |name: &str, value: &Option<String>, range: RangeInclusive<u64>, default| {
            let key = format!("{ak}.{name}");
            let d = match value {
                Some(s) => self.duration(&key, s)?,
                None => return Ok(Duration::from_secs(default)),
            };
            self.in_range(&key, d.as_secs(), range)?;
            Ok::<_, ConfigError>(d)
        };
        let dpd = timer("dpd", &a.dpd, CLIENT_TIMER, DEFAULT_DPD)?;
        let keepalive = timer("keepalive", &a.keepalive, CLIENT_TIMER, DEFAULT_KEEPALIVE)?;
        let idle_timeout = timer(
            "idle_timeout",
            &a.idle_timeout,
            SESSION_TIMER,
            DEFAULT_IDLE_TIMEOUT,
        )?;
        let session_timeout = timer(
            "session_timeout",
            &a.session_timeout,
            SESSION_TIMER,
            DEFAULT_SESSION_TIMEOUT,
        )?;

        let mut peers: Vec<TlsPeer> = Vec::with_capacity(a.peers.len());
        let mut facilities: HashMap<FacilityCode, String> = HashMap::new();
        for (pi, p) in a.peers.iter().enumerate() {
            let pk = format!("{ak}.peers[{pi}]");
            self.unique(peer_names, "peer", &p.name, &format!("{pk}.name"))?;
            let facility = self.peer_facility(&pk, &p.name, &p.facility)?;
            let fk = format!("{pk}.facility");
            if let Some(other) = facilities.get(&facility) {
                return Err(self.err(
                    &fk,
                    Problem::TlsFacilityTwice {
                        code: facility.to_string(),
                        other_key: other.clone(),
                        other_line: self.lines.line(other),
                    },
                ));
            }
            facilities.insert(facility, fk);
            peers.push(TlsPeer {
                name: p.name.clone(),
                facility,
            });
        }
        let hosts = pool_hosts(pool);
        if (peers.len() as u64) > hosts {
            return Err(self.err(
                &pk,
                Problem::PoolTooSmall {
                    pool,
                    hosts,
                    peers: peers.len(),
                },
            ));
        }
        Ok(TlsAttachment {
            listen,
            credentials,
            client_ca: client_ca.clone(),
            tls12,
            pool,
            dns,
            split_routes,
            mtu,
            dpd,
            keepalive,
            idle_timeout,
            session_timeout,
            peers,
        })
    }
}

/// Addresses a pool can hand out: all but the network and broadcast address of a prefix of
/// length 30 or less.
pub(crate) fn pool_hosts(pool: Ipv4Network) -> u64 {
    let size = 1u64 << (32 - u32::from(pool.prefix()));
    if pool.prefix() <= 30 {
        size - 2
    } else {
        size
    }
}
