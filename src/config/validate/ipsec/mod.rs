//! `ipsec` attachments: the address and ports IKE and ESP use (unique across the file,
//! WireGuard's sockets included), the gateway's identity and credentials, and per peer its
//! facility, identity (unique in the attachment), authentication, traffic selectors (the
//! remote ones are routes of the tenant), proposals, lifetimes and dead peer detection.
//!
//! By concern: `identity.rs` the identity syntax, `proposals.rs` the proposal syntax and the
//! refusal of weak algorithms, `credentials.rs` the pre-shared key and PEM files.

use std::net::SocketAddrV4;

use super::*;
use crate::config::{
    DpdAction, IkeIdentity, IpsecAttachment, IpsecAuth, IpsecPeer, IpsecStart,
    DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS,
};

mod credentials;
mod identity;
mod proposals;

use identity::parse_identity;
use proposals::{parse_esp_proposal, parse_ike_proposal, ProposalError};

const KIND: &str = "ipsec";
const DEFAULT_IKE_PORT: u16 = 500;
const DEFAULT_NAT_T_PORT: u16 = 4500;
/// IKE SA and CHILD_SA lifetimes before rekeying, in seconds: at least 10 (a rekey costs a
/// Diffie-Hellman exchange; strongSwan has no floor, and tests rekey under load this often),
/// at most a day.
const REKEY_TIME: RangeInclusive<u64> = 10..=86_400;
const DEFAULT_IKE_REKEY_TIME: u64 = 4 * 3600;
const DEFAULT_CHILD_REKEY_TIME: u64 = 3600;
/// CHILD_SA rekeying by volume: at least 1 MiB, at most 1 PiB.
const REKEY_BYTES: RangeInclusive<u64> = (1 << 20)..=(1 << 50);
const DPD_INTERVAL: RangeInclusive<u64> = 5..=3600;
const DEFAULT_DPD_INTERVAL: u64 = 30;
const DEFAULT_DPD_TIMEOUT: u64 = 150;
const DPD_TIMEOUT_MAX: u64 = 86_400;

impl Validator {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ipsec(
        &self,
        ak: &str,
        a: &raw::IpsecAttachment,
        tenant: &Tenant,
        ix: &Ix,
        peer_names: &mut Names,
        sockets: &mut Sockets,
        routes: &mut Vec<Keyed>,
    ) -> Result<IpsecAttachment, ConfigError> {
        let lk = format!("{ak}.listen");
        let listen_text = self.required(ak, "listen", &a.listen, KIND)?;
        let listen: Ipv4Addr = listen_text.trim().parse().map_err(|_| {
            self.err(
                &lk,
                Problem::Ipv4Addr {
                    value: listen_text.clone(),
                },
            )
        })?;
        let ike_port = self.port(ak, "ike_port", a.ike_port, DEFAULT_IKE_PORT)?;
        let nat_t_port = self.port(ak, "nat_t_port", a.nat_t_port, DEFAULT_NAT_T_PORT)?;
        if ike_port == nat_t_port {
            let key = match (a.ike_port, a.nat_t_port) {
                (_, Some(_)) => format!("{ak}.nat_t_port"),
                _ => format!("{ak}.ike_port"),
            };
            return Err(self.err(
                &key,
                Problem::SamePorts {
                    port: u64::from(ike_port),
                },
            ));
        }
        let raw_esp = a.raw_esp.unwrap_or(true);
        for (port, name) in [(ike_port, "ike_port"), (nat_t_port, "nat_t_port")] {
            let socket = SocketAddr::V4(SocketAddrV4::new(listen, port));
            self.claim_socket(&mut sockets.udp, socket, format!("{ak}.{name}"))?;
        }
        if raw_esp {
            let key = format!("{ak}.raw_esp");
            let clash = sockets.esp.iter().find(|(other, _)| {
                *other == listen || other.is_unspecified() || listen.is_unspecified()
            });
            if let Some((_, other)) = clash {
                return Err(self.err(
                    &key,
                    Problem::SameListen {
                        value: format!("raw ESP (IP protocol 50) on {listen}"),
                        other_key: other.clone(),
                        other_line: self.lines.line(other),
                    },
                ));
            }
            sockets.esp.push((listen, key));
        }
        let mtu = self.mtu(ak, a.mtu, KIND, IPSEC_MTU, IPSEC_DEFAULT_MTU)?;
        let local_id = self.identity(
            &format!("{ak}.local_id"),
            self.required(ak, "local_id", &a.local_id, KIND)?,
        )?;
        let credentials = self.gateway_credentials(ak, &a.certificate_file, &a.private_key_file)?;

        let mut remote_ids: HashMap<IkeIdentity, String> = HashMap::new();
        let mut peers = Vec::with_capacity(a.peers.len());
        for (pi, p) in a.peers.iter().enumerate() {
            let pk = format!("{ak}.peers[{pi}]");
            let peer = self.ipsec_peer(&pk, p, tenant, ix, peer_names, routes)?;
            let rk = format!("{pk}.remote_id");
            if let Some(other) = remote_ids.get(&identity_key(&peer.remote_id)) {
                return Err(self.err(
                    &rk,
                    Problem::DuplicateRemoteId {
                        value: peer.remote_id.to_string(),
                        other_key: other.clone(),
                        other_line: self.lines.line(other),
                    },
                ));
            }
            remote_ids.insert(identity_key(&peer.remote_id), rk);
            if matches!(peer.auth, IpsecAuth::Certificate { .. }) && credentials.is_none() {
                return Err(self.err(
                    &format!("{pk}.auth"),
                    Problem::NoGatewayCredentials {
                        peer: peer.name.clone(),
                    },
                ));
            }
            peers.push(peer);
        }
        Ok(IpsecAttachment {
            listen,
            ike_port,
            nat_t_port,
            raw_esp,
            mtu,
            local_id,
            credentials,
            peers,
        })
    }

    /// Claims a UDP socket; two claims clash as [`same_socket`] says.
    /// A UDP port, 1..=65535: peers must know where to send IKE.
    fn port(
        &self,
        ak: &str,
        name: &str,
        value: Option<u64>,
        default: u16,
    ) -> Result<u16, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        let key = format!("{ak}.{name}");
        self.in_range(&key, v, 1..=65_535)?;
        u16::try_from(v).map_err(|_| self.err(&key, out_of_range(v, 1..=65_535)))
    }

    fn ipsec_peer(
        &self,
        pk: &str,
        p: &raw::IpsecPeer,
        tenant: &Tenant,
        ix: &Ix,
        peer_names: &mut Names,
        routes: &mut Vec<Keyed>,
    ) -> Result<IpsecPeer, ConfigError> {
        self.unique(peer_names, "peer", &p.name, &format!("{pk}.name"))?;
        let facility = self.peer_facility(pk, &p.name, &p.facility)?;
        let remote_id = self.identity(&format!("{pk}.remote_id"), &p.remote_id)?;
        let auth = self.peer_auth(pk, p)?;
        let remote_ts =
            self.internal_prefixes(&format!("{pk}.remote_ts"), &p.remote_ts, tenant, routes)?;
        let local_ts = match &p.local_ts {
            Some(list) => Some(self.exchange_prefixes(&format!("{pk}.local_ts"), list, ix)?),
            None => None,
        };
        let endpoint = match &p.endpoint {
            Some(s) => Some(self.endpoint(&format!("{pk}.endpoint"), s)?),
            None => None,
        };
        let sk = format!("{pk}.start");
        let start = match p.start.as_deref().map(str::trim) {
            None | Some("respond") => IpsecStart::Respond,
            Some("initiate") => IpsecStart::Initiate,
            Some(other) => {
                return Err(self.err(
                    &sk,
                    Problem::Choice {
                        value: other.to_string(),
                        expected: "`initiate` or `respond`",
                    },
                ))
            }
        };
        if start == IpsecStart::Initiate && endpoint.is_none() {
            return Err(self.err(
                &sk,
                Problem::InitiateWithoutEndpoint {
                    peer: p.name.clone(),
                },
            ));
        }
        let proposals = self.proposal_list(
            &format!("{pk}.proposals"),
            p.proposals.as_deref(),
            &DEFAULT_IKE_PROPOSALS,
            parse_ike_proposal,
        )?;
        let esp_proposals = self.proposal_list(
            &format!("{pk}.esp_proposals"),
            p.esp_proposals.as_deref(),
            &DEFAULT_ESP_PROPOSALS,
            parse_esp_proposal,
        )?;
        let ike_rekey_time = self.bounded_duration(
            &format!("{pk}.ike_rekey_time"),
            &p.ike_rekey_time,
            DEFAULT_IKE_REKEY_TIME,
            REKEY_TIME,
        )?;
        let child_rekey_time = self.bounded_duration(
            &format!("{pk}.child_rekey_time"),
            &p.child_rekey_time,
            DEFAULT_CHILD_REKEY_TIME,
            REKEY_TIME,
        )?;
        let child_rekey_bytes = match &p.child_rekey_bytes {
            Some(s) => {
                let key = format!("{pk}.child_rekey_bytes");
                let n = parse_bytes(s)
                    .ok_or_else(|| self.err(&key, Problem::Bytes { value: s.clone() }))?;
                self.in_range(&key, n, REKEY_BYTES)?;
                Some(n)
            }
            None => None,
        };
        let dpd_interval = self.bounded_duration(
            &format!("{pk}.dpd_interval"),
            &p.dpd_interval,
            DEFAULT_DPD_INTERVAL,
            DPD_INTERVAL,
        )?;
        let dpd_timeout = self.bounded_duration(
            &format!("{pk}.dpd_timeout"),
            &p.dpd_timeout,
            DEFAULT_DPD_TIMEOUT,
            1..=DPD_TIMEOUT_MAX,
        )?;
        if dpd_timeout <= dpd_interval {
            let key = match p.dpd_timeout {
                Some(_) => format!("{pk}.dpd_timeout"),
                None => format!("{pk}.dpd_interval"),
            };
            return Err(self.err(
                &key,
                Problem::DpdTimeout {
                    timeout: dpd_timeout.as_secs(),
                    timeout_default: p.dpd_timeout.is_none(),
                    interval: dpd_interval.as_secs(),
                },
            ));
        }
        let dpd_action = match p.dpd_action.as_deref().map(str::trim) {
            None if start == IpsecStart::Initiate => DpdAction::Restart,
            None => DpdAction::Clear,
            Some("clear") => DpdAction::Clear,
            Some("restart") => DpdAction::Restart,
            Some(other) => {
                return Err(self.err(
                    &format!("{pk}.dpd_action"),
                    Problem::Choice {
                        value: other.to_string(),
                        expected: "`clear` or `restart`",
                    },
                ))
            }
        };
        Ok(IpsecPeer {
            name: p.name.clone(),
            facility,
            remote_id,
            auth,
            remote_ts,
            local_ts,
            endpoint,
            start,
            proposals,
            esp_proposals,
            ike_rekey_time,
            child_rekey_time,
            child_rekey_bytes,
            dpd_interval,
            dpd_timeout,
            dpd_action,
            directed_broadcast: p.directed_broadcast.unwrap_or(false),
        })
    }

    /// `auth` and the one file it needs: `psk_file` for `psk`, `ca_file` for `certificate`.
    fn peer_auth(&self, pk: &str, p: &raw::IpsecPeer) -> Result<IpsecAuth, ConfigError> {
        let psk = match p.auth.trim() {
            "psk" => true,
            "certificate" => false,
            other => {
                return Err(self.err(
                    &format!("{pk}.auth"),
                    Problem::Choice {
                        value: other.to_string(),
                        expected: "`psk` or `certificate`",
                    },
                ))
            }
        };
        // (key, value) of the file this method needs, then of the one it refuses.
        let psk_file = ("psk_file", &p.psk_file);
        let ca_file = ("ca_file", &p.ca_file);
        let (auth, (needs, needed), (refuses, refused)) = if psk {
            ("psk", psk_file, ca_file)
        } else {
            ("certificate", ca_file, psk_file)
        };
        if refused.is_some() {
            return Err(self.err(
                &format!("{pk}.{refuses}"),
                Problem::NotForAuth { key: refuses, auth },
            ));
        }
        let key = format!("{pk}.{needs}");
        let Some(file) = needed else {
            return Err(self.err(&key, Problem::AuthNeeds { auth, key: needs }));
        };
        if psk {
            let (psk_file, psk) = self.psk_file(&key, file)?;
            Ok(IpsecAuth::Psk { psk_file, psk })
        } else {
            let (ca_file, cas) = self.ca_file(&key, file)?;
            Ok(IpsecAuth::Certificate { ca_file, cas })
        }
    }

    /// A non-empty list of exchange prefixes inside `ix.exchange_space`.
    fn exchange_prefixes(
        &self,
        key: &str,
        list: &[String],
        ix: &Ix,
    ) -> Result<Vec<Ipv4Network>, ConfigError> {
        if list.is_empty() {
            return Err(self.err(key, Problem::Empty));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let ik = format!("{key}[{i}]");
            let net = self.prefix(&ik, s)?;
            if !net.is_subnet_of(ix.exchange_space) {
                return Err(self.err(
                    &ik,
                    Problem::OutsideExchangeSpace {
                        value: net,
                        space: ix.exchange_space,
                    },
                ));
            }
            out.push(net);
        }
        Ok(out)
    }

    /// `ADDRESS` or `ADDRESS:PORT`, IPv4; the port defaults to IKE's 500.
    fn endpoint(&self, key: &str, s: &str) -> Result<SocketAddrV4, ConfigError> {
        let t = s.trim();
        let parsed = match t.parse::<Ipv4Addr>() {
            Ok(a) => Some(SocketAddrV4::new(a, DEFAULT_IKE_PORT)),
            Err(_) => t.parse::<SocketAddrV4>().ok().filter(|a| a.port() != 0),
        };
        parsed.ok_or_else(|| {
            self.err(
                key,
                Problem::Endpoint {
                    value: s.to_string(),
                },
            )
        })
    }

    /// A duration within `range` seconds, or `default` seconds when the key is absent.
    fn bounded_duration(
        &self,
        key: &str,
        value: &Option<String>,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let Some(s) = value else {
            return Ok(Duration::from_secs(default));
        };
        let d = self.duration(key, s)?;
        self.in_range(key, d.as_secs(), range)?;
        Ok(d)
    }

    /// The proposals of `list` (key `key`), or the defaults when the key is absent.
    fn proposal_list<P>(
        &self,
        key: &str,
        list: Option<&[String]>,
        defaults: &[&str],
        parse: fn(&str) -> Result<P, ProposalError>,
    ) -> Result<Vec<P>, ConfigError> {
        let items: Vec<(String, &str)> = match list {
            Some([]) => return Err(self.err(key, Problem::Empty)),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{key}[{i}]"), s.as_str()))
                .collect(),
            None => defaults.iter().map(|s| (key.to_string(), *s)).collect(),
        };
        items
            .into_iter()
            .map(|(ik, s)| parse(s).map_err(|e| self.err(&ik, e.problem(s))))
            .collect()
    }

    fn identity(&self, key: &str, s: &str) -> Result<IkeIdentity, ConfigError> {
        parse_identity(s).map_err(|e| self.err(key, e.problem(s)))
    }
}

/// Identities compare as strongSwan compares them: FQDNs without regard to case.
fn identity_key(id: &IkeIdentity) -> IkeIdentity {
    match id {
        IkeIdentity::Fqdn(name) => IkeIdentity::Fqdn(name.to_ascii_lowercase()),
        other => other.clone(),
    }
}

/// `10G`, `500M`, `64K` (powers of 1024) or a number of bytes.
pub(super) fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}
