//! What the gateway's threads tell the log and the audit trail: tunnels going up and down,
//! handshakes and IKE authentications accepted or refused (with the facility and the reason),
//! endpoints that moved, facility certificate states, agreements, and the data path's flow
//! records. Names come from the plan the event was made under.
//!
//! WireGuard has no "down" of its own: a WireGuard peer is up from a completed handshake
//! until 180 s pass without one (as `ixgw_peers_up` counts it) or its facility's certificate
//! stops it. Its handshakes, ups, downs and moves are logged here (one line each); failed
//! handshakes of a peer are logged and recorded at most once a minute per peer, the line
//! saying how many were left out. IPsec's IKE thread logs its own events (runtime/ike.rs) and
//! tells this module only what the audit trail records.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::agreements::AgreementChange as Change;
use crate::audit::{AgreementChange, Audit, AuthResult, Event, TunnelKind};
use crate::dataplane::{FlowEvent, FlowSink, PeerEvent, PeerEventKind, Plan};
use crate::facility::{FacilitySpec, FacilityState, Verdict};
use crate::ids::PeerId;
use crate::vocab::HandshakeResult;

/// A WireGuard peer counts as down this long after its last handshake.
pub(crate) const WG_UP_FOR: Duration = Duration::from_secs(180);
/// Why every WireGuard peer goes down at the stop.
const STOPPED: &str = "the gateway stopped";

/// Failed handshakes of one peer logged and recorded at most this often.
const REFUSAL_EVERY: Duration = Duration::from_secs(60);

/// A facility as the log names it: its code, and the registry's name if it has one.
fn log_facility(code: &str, name: &str) -> String {
    if name.is_empty() {
        code.to_string()
    } else {
        format!("{code} ({name})")
    }
}

/// A WireGuard peer that is up: who it is and when it last completed a handshake.
struct Up {
    tenant: String,
    facility: String,
    last: Instant,
}

pub(crate) struct Events {
    audit: Audit,
    /// WireGuard peers up, by (attachment, peer).
    wg_up: Mutex<HashMap<(String, String), Up>>,
    /// IPsec peers up (with an IKE SA), by (attachment, peer): a re-authentication is not a
    /// second tunnel up.
    ipsec_up: Mutex<std::collections::HashSet<(String, String)>>,
    /// When a peer's failed handshake was last logged, and how many were left out since, by
    /// (attachment, peer).
    refused: Told,
    /// The same for endpoint changes.
    moved: Told,
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

impl Events {
    pub(crate) fn new(audit: Audit) -> Events {
        Events {
            audit,
            wg_up: Mutex::new(HashMap::new()),
            ipsec_up: Mutex::new(Default::default()),
            refused: Mutex::new(HashMap::new()),
            moved: Mutex::new(HashMap::new()),
        }
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

    /// Whether a failed handshake of (`attachment`, `peer`) is to be logged and recorded now
    /// (none was in the last minute): `Some(n)`, `n` left out since the last one.
    fn refusal_due(&self, key: (String, String), now: Instant) -> Option<u64> {
        once_a_minute(&self.refused, key, now)
    }

    /// The same for an endpoint change.
    fn moved_due(&self, key: (String, String), now: Instant) -> Option<u64> {
        once_a_minute(&self.moved, key, now)
    }
}

/// When what a peer did was last told, and how many times it was left out since, by
/// (attachment, peer).
type Told = Mutex<HashMap<(String, String), (Instant, u64)>>;

/// Whether what `key` did is to be told now (nothing was in the last minute): `Some(n)`, `n`
/// left out since the last time.
fn once_a_minute(times: &Told, key: (String, String), now: Instant) -> Option<u64> {
    let mut r = times.lock().unwrap_or_else(|e| e.into_inner());
    match r.get_mut(&key) {
        Some((t, left_out)) if now.saturating_duration_since(*t) < REFUSAL_EVERY => {
            *left_out += 1;
            None
        }
        _ => {
            let left_out = r.insert(key, (now, 0)).map_or(0, |(_, n)| n);
            Some(left_out)
        }
    }
}

impl Events {
    /// Records WireGuard peers `gone` (by attachment and peer) down with `reason`.
    fn wireguard_down(
        &self,
        up: &mut HashMap<(String, String), Up>,
        gone: Vec<(String, String)>,
        reason: &str,
    ) {
        // At the stop one line tells of all of them.
        let stopping = reason == STOPPED;
        if stopping && !gone.is_empty() {
            tracing::info!(peers = gone.len(), "peers down: {STOPPED}");
        }
        for k in gone {
            if let Some(u) = up.remove(&k) {
                if !stopping {
                    tracing::warn!(
                        attachment = k.0,
                        peer = k.1,
                        tenant = u.tenant,
                        facility = u.facility,
                        reason,
                        "peer down"
                    );
                }
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
        self.wireguard_down(&mut up, all, STOPPED);
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
        let peer_id = peer;
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
            let facility_name =
                (plan.peers.get(peer_id.index())).map_or("", |p| p.facility_name.as_str());
            tracing::info!(
                attachment,
                peer,
                tenant,
                facility = log_facility(&facility, facility_name),
                %remote,
                "peer up"
            );
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
        if self
            .refusal_due((who.0.clone(), who.1.clone()), Instant::now())
            .is_some()
        {
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

/// Peer events waiting for the thread `ixgw-events`.
const PEER_QUEUE: usize = 4096;

/// The gateway's flow sink: flow records straight into the audit trail's bounded queue, peer
/// events into a bounded queue of their own that the thread `ixgw-events` drains into the log
/// and the audit trail. The worker never formats or writes a log line, takes a lock of this
/// module or waits: a full queue loses the event, counted and told by the thread.
pub(crate) struct Sink {
    audit: Audit,
    peers: std::sync::mpsc::SyncSender<PeerEvent>,
    lost: Arc<AtomicU64>,
}

impl FlowSink for Sink {
    fn wants_flows(&self) -> bool {
        self.audit.records_flows()
    }

    fn flow(&self, event: FlowEvent) {
        self.audit.flow(event);
    }

    fn peer(&self, e: PeerEvent) {
        if self.peers.try_send(e).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Events {
    /// A sink for a gateway and the thread that tells its peer events; the thread ends when
    /// the sink is dropped (with the gateway).
    pub(crate) fn sink(self: &Arc<Self>) -> std::io::Result<Arc<Sink>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<PeerEvent>(PEER_QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        let (events, counted) = (Arc::clone(self), Arc::clone(&lost));
        std::thread::Builder::new()
            .name("ixgw-events".into())
            .spawn(move || {
                while let Ok(e) = rx.recv() {
                    events.peer_event(e);
                    let n = counted.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        tracing::warn!(
                            lost = n,
                            "peer events not logged nor recorded: their queue was full"
                        );
                    }
                }
            })?;
        Ok(Arc::new(Sink {
            audit: self.audit.clone(),
            peers: tx,
            lost,
        }))
    }

    /// Logs (and records) what a WireGuard peer did.
    pub(crate) fn peer_event(&self, e: PeerEvent) {
        let Some(who) = names(&e.plan, e.peer) else {
            return;
        };
        let facility_name = e
            .plan
            .peers
            .get(e.peer.index())
            .map_or("", |p| p.facility_name.as_str());
        let facility = log_facility(&who.3, facility_name);
        let (attachment, peer, tenant) = (&who.0, &who.1, &who.2);
        let key = (who.0.clone(), who.1.clone());
        let remote = e.remote.map(|r| r.to_string());
        match e.kind {
            PeerEventKind::Handshake => {
                tracing::info!(
                    attachment,
                    peer,
                    tenant,
                    facility,
                    remote = remote.as_deref().unwrap_or("-"),
                    "handshake completed"
                );
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
                    tracing::info!(attachment, peer, tenant, facility, "peer up");
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
            PeerEventKind::Failed(result) => {
                let Some(left_out) = self.refusal_due(key, e.at) else {
                    return;
                };
                let why = match result {
                    HandshakeResult::Certificate => {
                        "refused: the facility's certificate does not allow traffic"
                    }
                    HandshakeResult::Timeout => {
                        "failed: no answer, the session expired without a new handshake"
                    }
                    _ => "failed",
                };
                tracing::warn!(
                    attachment,
                    peer,
                    tenant,
                    facility,
                    reason = result.as_str(),
                    left_out_in_the_last_minute = left_out,
                    "handshake {why}"
                );
                if result == HandshakeResult::Certificate {
                    self.auth(&who, TunnelKind::Wireguard, remote, Some(result.as_str()));
                }
            }
            PeerEventKind::Moved {
                from: Some(from),
                to,
            } => {
                // A peer whose address changes with every packet (a router balancing over
                // two lines) is told once a minute.
                let Some(left_out) = self.moved_due(key, e.at) else {
                    return;
                };
                tracing::info!(
                    attachment,
                    peer,
                    tenant,
                    facility,
                    %from,
                    %to,
                    left_out_in_the_last_minute = left_out,
                    "peer endpoint changed"
                );
            }
            PeerEventKind::Moved { from: None, .. } => {}
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

    /// tracing caches per call site whether anyone listens: a test that logs without a
    /// subscriber while another captures could leave the capturing one deaf.
    static LOGGING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn tunnels_authentications_and_certificates_are_recorded() {
        let _serial = LOGGING.lock().unwrap_or_else(|e| e.into_inner());
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
        let bridge = Events::new(audit.clone());
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
        bridge.peer_event(event(PeerEventKind::Handshake, t0));
        bridge.peer_event(event(
            PeerEventKind::Handshake,
            t0 + Duration::from_secs(120),
        ));
        bridge.poll(t0 + Duration::from_secs(200));
        bridge.poll(t0 + Duration::from_secs(301));
        let refused = PeerEventKind::Failed(HandshakeResult::Certificate);
        bridge.peer_event(event(refused, t0));
        bridge.peer_event(event(refused, t0 + Duration::from_secs(30)));
        bridge.peer_event(event(refused, t0 + Duration::from_secs(61)));
        // Up again, then its facility's certificate is revoked: down at once.
        bridge.peer_event(event(
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
        bridge.peer_event(event(
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

    /// What a subscriber writes, as the daemon's text format without a terminal.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every event of a WireGuard peer is one log line naming the peer, its tenant and its
    /// facility; failed handshakes once a minute, saying how many were left out.
    #[test]
    fn peer_events_are_logged_once_each_with_names() {
        let _serial = LOGGING.lock().unwrap_or_else(|e| e.into_inner());
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        let plan = Arc::new(Plan::compile(&crate::dataplane::fuzz::fuzz_config(), 1));
        let peer = PeerId(0);
        let p = &plan.peers[0];
        let t0 = Instant::now();
        let event = |kind, secs: u64, remote: &str| PeerEvent {
            plan: plan.clone(),
            peer,
            at: t0 + Duration::from_secs(secs),
            kind,
            remote: Some(remote.parse().unwrap()),
        };
        tracing::subscriber::with_default(subscriber, || {
            let events = Events::new(Audit::disabled());
            events.peer_event(event(PeerEventKind::Handshake, 0, "192.0.2.9:51820"));
            let first = PeerEventKind::Moved {
                from: None,
                to: "192.0.2.9:51820".parse().unwrap(),
            };
            events.peer_event(event(first, 0, "192.0.2.9:51820"));
            events.peer_event(event(PeerEventKind::Handshake, 120, "192.0.2.9:51820"));
            let moved = |from: &str, to: &str| PeerEventKind::Moved {
                from: Some(from.parse().unwrap()),
                to: to.parse().unwrap(),
            };
            // The remote of the event is where the peer is when the batch was drained; the
            // line tells where it moved to.
            let m = moved("192.0.2.9:51820", "198.51.100.3:40000");
            events.peer_event(event(m, 130, "198.51.100.3:40001"));
            // Flapping within the minute: not told again.
            let m = moved("198.51.100.3:40000", "198.51.100.3:40001");
            events.peer_event(event(m, 131, "198.51.100.3:40001"));
            let timeout = PeerEventKind::Failed(HandshakeResult::Timeout);
            events.peer_event(event(timeout, 140, "198.51.100.3:40000"));
            events.peer_event(event(timeout, 150, "198.51.100.3:40000"));
            events.peer_event(event(timeout, 201, "198.51.100.3:40000"));
            events.poll(t0 + Duration::from_secs(301));
            events.poll(t0 + Duration::from_secs(302));
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains('\u{1b}'), "no escape codes: {text:?}");
        let lines: Vec<&str> = text.lines().collect();
        let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
        assert_eq!(count("handshake completed"), 2, "{text}");
        assert_eq!(count("peer up"), 1, "{text}");
        assert_eq!(count("peer endpoint changed"), 1, "{text}");
        assert_eq!(count("handshake failed: no answer"), 2, "{text}");
        assert_eq!(count("left_out_in_the_last_minute=1"), 1, "{text}");
        assert_eq!(count("peer down"), 1, "{text}");
        assert_eq!(lines.len(), 7, "{text}");
        let names = format!(r#"peer="{}""#, p.name);
        let tenant = format!(r#"tenant="{}""#, plan.tenants[p.tenant.index()].name);
        let facility = p.facility.to_string();
        for l in &lines {
            assert!(
                l.contains(&names) && l.contains(&tenant) && l.contains(&facility),
                "{l}"
            );
        }
        let moved = lines
            .iter()
            .find(|l| l.contains("endpoint changed"))
            .unwrap();
        assert!(
            moved.contains("from=192.0.2.9:51820") && moved.contains("to=198.51.100.3:40000"),
            "{moved}"
        );
        assert!(
            text.contains(r#"reason="no handshake for 180 s""#),
            "{text}"
        );
    }
}
