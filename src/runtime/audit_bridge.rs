//! What the gateway's threads tell the audit trail: tunnels going up and down, handshakes and
//! IKE authentications accepted or refused (with the facility and the reason), facility
//! certificate states, agreements, and the data path's flow records. Names come from the plan
//! the event was made under.
//!
//! WireGuard has no "down" of its own: a WireGuard peer is up from a completed handshake
//! until 180 s pass without one (as `ixgw_peers_up` counts it) or its facility's certificate
//! stops it. Refused handshakes of a peer are recorded at most once a minute per peer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::agreements::AgreementChange as Change;
use crate::audit::{AgreementChange, Audit, AuthResult, Event, TunnelKind};
use crate::dataplane::{FlowEvent, FlowSink, PeerEvent, PeerEventKind, Plan};
use crate::facility::{FacilitySpec, FacilityState, Verdict};
use crate::ids::PeerId;

/// A WireGuard peer counts as down this long after its last handshake.
pub(crate) const WG_UP_FOR: Duration = Duration::from_secs(180);
/// Refusals of one peer recorded at most this often.
const REFUSAL_EVERY: Duration = Duration::from_secs(60);

/// A WireGuard peer that is up: who it is and when it last completed a handshake.
struct Up {
    tenant: String,
    facility: String,
    last: Instant,
}

pub(crate) struct AuditBridge {
    audit: Audit,
    /// WireGuard peers up, by (attachment, peer).
    wg_up: Mutex<HashMap<(String, String), Up>>,
    /// IPsec peers up (with an IKE SA), by (attachment, peer): a re-authentication is not a
    /// second tunnel up.
    ipsec_up: Mutex<std::collections::HashSet<(String, String)>>,
    /// When a peer's refusal was last recorded, by (attachment, peer).
    refused: Mutex<HashMap<(String, String), Instant>>,
}

/// A peer's names under `plan`: attachment, peer, tenant, facility code.
fn names(plan: &Plan, peer: PeerId) -> Option<(String, String, String, String)> {
    let p = plan.peers.get(peer.index())?;
    Some((
        plan.attachments.get(p.attachment.index())?.name.clone(),
        p.name.clone(),
        plan.tenants.get(p.tenant.index())?.name.clone(),
        p.facility.to_string(),
    ))
}

impl AuditBridge {
    pub(crate) fn new(audit: Audit) -> AuditBridge {
        AuditBridge {
            audit,
            wg_up: Mutex::new(HashMap::new()),
            ipsec_up: Mutex::new(Default::default()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.audit.enabled()
    }

    /// An authentication of the peer named `who` (attachment, peer, tenant, facility):
    /// accepted, or refused with `refused` as the reason.
    fn auth(
        &self,
        who: &(String, String, String, String),
        kind: TunnelKind,
        remote: Option<String>,
        refused: Option<&str>,
    ) {
        let (attachment, peer, tenant, facility) = who.clone();
        self.audit.record(Event::Auth {
            attachment,
            peer: Some(peer),
            tenant: Some(tenant),
            facility: Some(facility),
            kind,
            remote,
            result: if refused.is_some() {
                AuthResult::Refused
            } else {
                AuthResult::Ok
            },
            reason: refused.map(str::to_string),
        });
    }

    /// Records a refusal of (`attachment`, `peer`) unless one was recorded in the last minute.
    fn refusal_due(&self, key: (String, String), now: Instant) -> bool {
        let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match r.get(&key) {
            Some(&t) if now.saturating_duration_since(t) < REFUSAL_EVERY => false,
            _ => {
                r.insert(key, now);
                true
            }
        }
    }

    /// Records WireGuard peers `gone` (by attachment and peer) down with `reason`.
    fn wireguard_down(
        &self,
        up: &mut HashMap<(String, String), Up>,
        gone: Vec<(String, String)>,
        reason: &str,
    ) {
        for k in gone {
            if let Some(u) = up.remove(&k) {
                self.audit.record(Event::TunnelDown {
                    attachment: k.0,
                    peer: k.1,
                    tenant: u.tenant,
                    facility: u.facility,
                    kind: TunnelKind::Wireguard,
                    reason: reason.into(),
                });
            }
        }
    }

    /// The gateway stops: every WireGuard tunnel still up is down (IPsec tunnels are
    /// deleted by the IKE thread, which reports them).
    pub(crate) fn shutdown(&self) {
        let mut up = self.wg_up.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<(String, String)> = up.keys().cloned().collect();
        self.wireguard_down(&mut up, all, "the gateway stopped");
    }

    /// WireGuard peers whose last handshake is older than [`WG_UP_FOR`] are down.
    pub(crate) fn poll(&self, now: Instant) {
        let mut up = self.wg_up.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<(String, String)> = up
            .iter()
            .filter(|(_, u)| now.saturating_duration_since(u.last) > WG_UP_FOR)
            .map(|(k, _)| k.clone())
            .collect();
        self.wireguard_down(&mut up, gone, "no handshake for 180 s");
    }

    /// An IPsec peer's IKE SA was established (it authenticated).
    pub(crate) fn ike_up(&self, plan: &Plan, peer: PeerId, remote: std::net::SocketAddr) {
        let Some(who) = names(plan, peer) else {
            return;
        };
        self.auth(&who, TunnelKind::Ipsec, Some(remote.to_string()), None);
        let (attachment, peer, tenant, facility) = who;
        let new = self
            .ipsec_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((attachment.clone(), peer.clone()));
        if new {
            self.audit.record(Event::TunnelUp {
                attachment,
                peer,
                tenant,
                facility,
                kind: TunnelKind::Ipsec,
                remote: Some(remote.to_string()),
            });
        }
    }

    /// An IPsec peer lost its IKE SA.
    pub(crate) fn ike_down(&self, plan: &Plan, peer: PeerId, reason: &str) {
        let Some((attachment, peer, tenant, facility)) = names(plan, peer) else {
            return;
        };
        let was_up = self
            .ipsec_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(attachment.clone(), peer.clone()));
        if !was_up {
            return;
        }
        self.audit.record(Event::TunnelDown {
            attachment,
            peer,
            tenant,
            facility,
            kind: TunnelKind::Ipsec,
            reason: reason.into(),
        });
    }

    /// An IKE exchange of a known peer was refused.
    pub(crate) fn ike_refused(&self, plan: &Plan, peer: PeerId, reason: &str) {
        let Some(who) = names(plan, peer) else {
            return;
        };
        if self.refusal_due((who.0.clone(), who.1.clone()), Instant::now()) {
            self.auth(&who, TunnelKind::Ipsec, None, Some(reason));
        }
    }

    /// A facility's certificate state, at start (`from` none) or as it changed. A facility
    /// stopped by its certificate takes its WireGuard peers down with it.
    pub(crate) fn certificate(
        &self,
        spec: &FacilitySpec,
        v: &Verdict,
        from: Option<FacilityState>,
    ) {
        if v.state == FacilityState::NotRequired && from.is_none() {
            return;
        }
        let facility = spec.code.to_string();
        self.audit.record(Event::CertificateState {
            facility: facility.clone(),
            name: spec.name.clone(),
            tenant: spec.tenant.clone(),
            from: from.map_or("none", FacilityState::name).into(),
            to: v.state.name().into(),
            detail: v.detail.clone(),
        });
        if !v.state.allows_traffic() {
            let mut up = self.wg_up.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<(String, String)> = up
                .iter()
                .filter(|(_, u)| u.facility == facility)
                .map(|(k, _)| k.clone())
                .collect();
            self.wireguard_down(&mut up, gone, &format!("certificate {}", v.state));
        }
    }

    /// An agreement added, removed, changed, in or out of force.
    pub(crate) fn agreement(&self, c: &Change) {
        let change = match c.change {
            "added" => AgreementChange::Added,
            "removed" => AgreementChange::Removed,
            "in_force" => AgreementChange::InForce,
            "out_of_force" => AgreementChange::OutOfForce,
            _ => AgreementChange::Changed,
        };
        self.audit.record(Event::Agreement {
            name: c.name.clone(),
            consumer: c.consumer.clone(),
            provider: c.provider.clone(),
            change,
            detail: Some(c.detail.clone()),
        });
    }
}

impl FlowSink for AuditBridge {
    fn flow(&self, event: FlowEvent) {
        self.audit.flow(event);
    }

    fn peer(&self, e: PeerEvent) {
        let Some(who) = names(&e.plan, e.peer) else {
            return;
        };
        let key = (who.0.clone(), who.1.clone());
        let remote = e.remote.map(|r| r.to_string());
        match e.kind {
            PeerEventKind::Handshake => {
                let up = Up {
                    tenant: who.2.clone(),
                    facility: who.3.clone(),
                    last: e.at,
                };
                let was_up = self
                    .wg_up
                    .lock()
                    .unwrap_or_else(|x| x.into_inner())
                    .insert(key, up)
                    .is_some();
                if !was_up {
                    self.auth(&who, TunnelKind::Wireguard, remote.clone(), None);
                    let (attachment, peer, tenant, facility) = who;
                    self.audit.record(Event::TunnelUp {
                        attachment,
                        peer,
                        tenant,
                        facility,
                        kind: TunnelKind::Wireguard,
                        remote,
                    });
                }
            }
            PeerEventKind::Refused(result) => {
                if self.refusal_due(key, e.at) {
                    self.auth(&who, TunnelKind::Wireguard, remote, Some(result.as_str()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{AuditConfig, Journald};
    use crate::facility::CertSource;
    use crate::vocab::HandshakeResult;

    fn read(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn tunnels_authentications_and_certificates_are_recorded() {
        let dir = std::env::temp_dir().join(format!("ixgw-bridge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("audit.jsonl");
        let audit = Audit::start(&AuditConfig {
            file: Some(file.clone()),
            journald: Journald::Off,
            queue: 1024,
            flows: true,
        })
        .unwrap();
        let bridge = AuditBridge::new(audit.clone());
        let plan = Arc::new(Plan::compile(&crate::dataplane::fuzz::fuzz_config(), 1));
        let (peer, p) = plan
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (PeerId(i as u32), p))
            .next()
            .expect("the fuzz configuration has a peer");
        let t0 = Instant::now();
        let event = |kind, at| PeerEvent {
            plan: plan.clone(),
            peer,
            at,
            kind,
            remote: Some("192.0.2.9:51820".parse().unwrap()),
        };
        bridge.peer(event(PeerEventKind::Handshake, t0));
        bridge.peer(event(
            PeerEventKind::Handshake,
            t0 + Duration::from_secs(120),
        ));
        bridge.poll(t0 + Duration::from_secs(200));
        bridge.poll(t0 + Duration::from_secs(301));
        let refused = PeerEventKind::Refused(HandshakeResult::Certificate);
        bridge.peer(event(refused, t0));
        bridge.peer(event(refused, t0 + Duration::from_secs(30)));
        bridge.peer(event(refused, t0 + Duration::from_secs(61)));
        // Up again, then its facility's certificate is revoked: down at once.
        bridge.peer(event(
            PeerEventKind::Handshake,
            t0 + Duration::from_secs(400),
        ));
        let spec = FacilitySpec {
            code: p.facility,
            name: "f".into(),
            tenant: "t".into(),
            source: CertSource::Presented,
            trust: vec![],
            wireguard_keys: vec![],
        };
        let verdict = Verdict {
            state: FacilityState::Revoked,
            detail: "serial 01 revoked".into(),
            ca: None,
            not_after: 0,
            recheck_at: None,
        };
        bridge.certificate(&spec, &verdict, Some(FacilityState::Valid));
        // IPsec: a re-authentication is not a second tunnel up; a down is told once.
        let remote: std::net::SocketAddr = "198.51.100.4:4500".parse().unwrap();
        bridge.ike_up(&plan, peer, remote);
        bridge.ike_up(&plan, peer, remote);
        bridge.ike_down(&plan, peer, "dpd_timeout");
        bridge.ike_down(&plan, peer, "deleted_locally");
        // At shutdown every WireGuard tunnel still up goes down.
        bridge.peer(event(
            PeerEventKind::Handshake,
            t0 + Duration::from_secs(500),
        ));
        bridge.shutdown();
        audit.shutdown();
        let lines = read(&file);
        let events: Vec<(&str, Option<&str>)> = lines
            .iter()
            .map(|l| {
                (
                    l["event"].as_str().unwrap(),
                    l["reason"].as_str().or(l["result"].as_str()),
                )
            })
            .collect();
        assert_eq!(
            events,
            [
                ("auth", Some("ok")),
                ("tunnel_up", None),
                // 120 s later: still up, nothing. 200 s: 80 s since the last: still up.
                ("tunnel_down", Some("no handshake for 180 s")),
                ("auth", Some("certificate")),
                ("auth", Some("certificate")),
                ("auth", Some("ok")),
                ("tunnel_up", None),
                ("certificate_state", None),
                ("tunnel_down", Some("certificate revoked")),
                ("auth", Some("ok")),
                ("tunnel_up", None),
                ("auth", Some("ok")),
                ("tunnel_down", Some("dpd_timeout")),
                ("auth", Some("ok")),
                ("tunnel_up", None),
                ("tunnel_down", Some("the gateway stopped")),
            ],
            "{lines:#?}"
        );
        assert_eq!(lines[0]["facility"], p.facility.to_string());
        assert_eq!(lines[0]["remote"], "192.0.2.9:51820");
        assert_eq!(lines[3]["result"], "refused");
        assert_eq!(lines[7]["from"], "valid");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
