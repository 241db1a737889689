//! An IPsec attachment's plan as the IKE engine's configuration: identities in their wire
//! form, the gateway's credential and each certificate peer's trust store loaded, proposals
//! as the engine's types. Building it can fail (a key that does not belong to its
//! certificate, a CA that does not parse): the runtime reports that before the plan runs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::config::{Esn, IkeIdentity, IpsecAuth};
use crate::facility::Presenter;
use crate::tunnel::ipsec::ike::message::IdType;
use crate::tunnel::ipsec::ike::pki::{self, dn_from_text, LocalCredential, PkiAuth, TrustStore};
use crate::tunnel::ipsec::ike::sa::{self as ike, IkeConfig, IkePeerConfig};
use crate::tunnel::ipsec::tunnel::IO_ESP;

/// Why an IPsec attachment's IKE configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attachment {attachment}{}: {problem}", peer.as_ref().map(|p| format!(", peer {p}")).unwrap_or_default())]
pub struct IkeSetupError {
    pub attachment: String,
    pub peer: Option<String>,
    pub problem: String,
}

/// An identity as an ID payload carries it.
pub fn identity(id: &IkeIdentity) -> Option<ike::Identity> {
    Some(match id {
        IkeIdentity::Fqdn(name) => ike::Identity::fqdn(name),
        IkeIdentity::Ipv4(a) => ike::Identity::ipv4(*a),
        IkeIdentity::KeyId(bytes) => ike::Identity {
            id_type: IdType::KEY_ID,
            data: bytes.clone(),
        },
        IkeIdentity::Dn(text) => ike::Identity {
            id_type: IdType::DER_ASN1_DN,
            data: dn_from_text(text)?,
        },
    })
}

impl Plan {
    /// The IKE configuration of IPsec attachment `a` (`None` for other kinds). `clock` gives
    /// UNIX seconds for certificate validity; `presenter`, when given, judges the certificate
    /// a peer authenticates with as its facility's (the facility registry). With `workers`
    /// data-path workers, each peer's inbound SPIs name the worker that owns it.
    pub fn ike_config(
        &self,
        a: AttachmentId,
        clock: fn() -> u64,
        presenter: Option<&Arc<dyn Presenter>>,
        workers: u32,
    ) -> Option<Result<IkeConfig, IkeSetupError>> {
        let shard = crate::tunnel::Shard {
            index: 0,
            count: workers.max(1),
        };
        let attachment = &self.attachments[a.index()];
        let AttachmentPlanKind::Ipsec {
            peers,
            local_id,
            credentials,
        } = &attachment.kind
        else {
            return None;
        };
        let fail = |peer: Option<&str>, problem: String| IkeSetupError {
            attachment: attachment.name.clone(),
            peer: peer.map(str::to_string),
            problem,
        };
        let build = || -> Result<IkeConfig, IkeSetupError> {
            let local_id = identity(local_id).ok_or_else(|| {
                fail(
                    None,
                    format!("local_id `{local_id}` cannot be encoded as a DN"),
                )
            })?;
            let local = match credentials {
                Some(c) => {
                    let chain = c.certificates.iter().map(|d| d.to_vec()).collect();
                    let format = match c.private_key.format {
                        config::KeyFormat::Pkcs8 => pki::KeyFormat::Pkcs8,
                        config::KeyFormat::Sec1 => pki::KeyFormat::Sec1,
                        config::KeyFormat::Pkcs1 => pki::KeyFormat::Pkcs1,
                    };
                    let cred = LocalCredential::from_der(chain, c.private_key.der.expose(), format)
                        .map_err(|e| {
                            fail(
                                None,
                                format!(
                                    "{} / {}: {e}",
                                    c.certificate_file.display(),
                                    c.private_key_file.display()
                                ),
                            )
                        })?;
                    Some(Arc::new(cred))
                }
                None => None,
            };
            let mut out = Vec::with_capacity(peers.len());
            for &pid in peers {
                let p = &self.peers[pid.index()];
                let PeerPlanKind::Ipsec(ipsec) = &p.kind else {
                    continue;
                };
                let c = &ipsec.config;
                if ipsec.local_ts.is_empty() {
                    return Err(fail(
                        Some(&p.name),
                        "no policy lets this peer reach or be reached by anything, so its \
                         traffic selectors would be empty: add a policy or set local_ts"
                            .into(),
                    ));
                }
                let remote_id = identity(&c.remote_id).ok_or_else(|| {
                    fail(
                        Some(&p.name),
                        format!("remote_id `{}` cannot be encoded as a DN", c.remote_id),
                    )
                })?;
                let auth = match &c.auth {
                    IpsecAuth::Psk { psk, .. } => {
                        ike::PeerAuth::Psk(zeroize::Zeroizing::new(psk.expose().to_vec()))
                    }
                    IpsecAuth::Certificate { ca_file, cas } => {
                        let local = local.clone().ok_or_else(|| {
                            fail(
                                Some(&p.name),
                                "certificate auth needs the attachment's certificate_file".into(),
                            )
                        })?;
                        let cas: Vec<Vec<u8>> = cas.iter().map(|d| d.to_vec()).collect();
                        let trust = TrustStore::from_der(&cas).map_err(|e| {
                            fail(Some(&p.name), format!("{}: {e}", ca_file.display()))
                        })?;
                        let mut auth = PkiAuth::new(local, trust, clock);
                        if let Some(presenter) = presenter {
                            auth = auth.with_facility(p.facility, &p.name, Arc::clone(presenter));
                        }
                        ike::PeerAuth::Certificate(Arc::new(auth))
                    }
                };
                out.push(IkePeerConfig {
                    peer: pid,
                    remote_id,
                    auth,
                    local_ts: ipsec.local_ts.clone(),
                    remote_ts: c.remote_ts.clone(),
                    ike_proposals: c
                        .proposals
                        .iter()
                        .map(|x| ike::IkeProposal {
                            encr: x.encr.clone(),
                            integ: x.integ.clone(),
                            prf: x.prf.clone(),
                            dh: x.dh.clone(),
                        })
                        .collect(),
                    esp_proposals: c
                        .esp_proposals
                        .iter()
                        .flat_map(|x| {
                            let esn = match x.esn {
                                Esn::No => &[false][..],
                                Esn::Yes => &[true],
                                Esn::Either => &[false, true],
                            };
                            esn.iter().map(|&esn| ike::EspProposal {
                                encr: x.encr.clone(),
                                integ: x.integ.clone(),
                                dh: x.dh.clone(),
                                esn,
                            })
                        })
                        .collect(),
                    start: match c.start {
                        config::IpsecStart::Initiate => ike::Start::Initiate,
                        config::IpsecStart::Respond => ike::Start::Respond,
                    },
                    endpoint: c.endpoint.map(SocketAddr::V4),
                    ike_rekey: c.ike_rekey_time,
                    child_rekey: c.child_rekey_time,
                    child_rekey_bytes: c.child_rekey_bytes,
                    dpd_interval: c.dpd_interval,
                    dpd_timeout: c.dpd_timeout,
                    dpd_action: match c.dpd_action {
                        config::DpdAction::Clear => ike::DpdAction::Clear,
                        config::DpdAction::Restart => ike::DpdAction::Restart,
                    },
                    spi_class: ike::SpiClass {
                        modulus: shard.count,
                        residue: shard.owner_by_key(p.home_key),
                    },
                });
            }
            let local_addr = attachment
                .udp_listen(0)
                .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
            let port =
                |io: usize, default: u16| attachment.udp_listen(io).map_or(default, |a| a.port());
            Ok(IkeConfig {
                local_id,
                local_addr,
                local_ports: [port(0, 500), port(1, 4500)],
                // Without a raw ESP socket, ESP can only come in UDP.
                force_udp_encap: attachment.io.len() <= usize::from(IO_ESP),
                peers: out,
                limits: ike::Limits::default(),
            })
        };
        Some(build())
    }
}

/// What a reload keeps of an IPsec attachment: the previous plan's attachment whose IKE
/// engine carries on (SAs and all), and the peers whose SAs are kept, as `(number in the
/// previous plan, number in this one)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecCarry {
    pub previous: AttachmentId,
    pub peers: Vec<(PeerId, PeerId)>,
}

impl Plan {
    /// What IPsec attachment `a` keeps of `previous` across a reload. `None` when its IKE
    /// engine is replaced and every peer negotiates again: `previous` has no IPsec attachment
    /// of that name, or it differs in tenant, sockets, identity or credentials. Otherwise the
    /// peers of the same name whose IKE configuration is unchanged (every key of the peer but
    /// `directed_broadcast`, and the local traffic selectors its policies give it) keep their
    /// SAs; the others renegotiate. The IKE thread and the data path both follow this answer.
    pub fn ipsec_carry(&self, previous: &Plan, a: AttachmentId) -> Option<IpsecCarry> {
        let new = &self.attachments[a.index()];
        let AttachmentPlanKind::Ipsec {
            peers,
            local_id,
            credentials,
        } = &new.kind
        else {
            return None;
        };
        let old_index = previous
            .attachments
            .iter()
            .position(|o| o.name == new.name)?;
        let old = &previous.attachments[old_index];
        let AttachmentPlanKind::Ipsec {
            peers: old_peers,
            local_id: old_local_id,
            credentials: old_credentials,
        } = &old.kind
        else {
            return None;
        };
        let same_attachment = old.io == new.io
            && previous.tenants[old.tenant.index()].name == self.tenants[new.tenant.index()].name
            && old_local_id == local_id
            && old_credentials == credentials;
        if !same_attachment {
            return None;
        }
        let ike_part = |p: &PeerPlan| match &p.kind {
            PeerPlanKind::Ipsec(i) => Some((
                config::IpsecPeer {
                    directed_broadcast: false,
                    ..i.config.clone()
                },
                i.local_ts.clone(),
            )),
            PeerPlanKind::WireGuard(_) | PeerPlanKind::Tls(_) => None,
        };
        let kept = peers
            .iter()
            .filter_map(|&id| {
                let p = &self.peers[id.index()];
                let before = old_peers
                    .iter()
                    .copied()
                    .find(|o| previous.peers[o.index()].name == p.name)?;
                let unchanged = ike_part(p).is_some()
                    && ike_part(&previous.peers[before.index()]) == ike_part(p);
                unchanged.then_some((before, id))
            })
            .collect();
        Some(IpsecCarry {
            previous: AttachmentId(old_index as u16),
            peers: kept,
        })
    }
}
