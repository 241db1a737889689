//! The IKE thread: every IPsec attachment's IKEv2 engine, off the data path. Diffie-Hellman,
//! signatures and certificate checks cost up to milliseconds; here they never hold up
//! forwarding of established SAs (see `docs/architecture.md`, "IPsec").
//!
//! In: IKE datagrams the worker set aside (a bounded queue: when it is full the worker drops
//! and counts), plans. Out: datagrams sent straight on clones of the attachments' UDP sockets
//! (the non-ESP marker added on the NAT-T socket), and SA changes sent to the worker as
//! control messages tagged with the plan generation they belong to.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::ike_metrics::IkeMetrics;
use super::Control;
use arc_swap::ArcSwap;

use super::events::Events;
use super::facilities::FacilityStates;
use crate::admin::health::{Heartbeat, BEAT_INTERVAL};
use crate::dataplane::{AttachmentPlanKind, IkeSetupError, IpsecCarry, PeerPlanKind, Plan};
use crate::facility::{FacilityState, Presenter};
use crate::ids::{AttachmentId, PeerId};
use crate::tunnel::ipsec::esp::{InboundSa, OutboundSa};
use crate::tunnel::ipsec::ike::sa::{ChildSaUp, IkeConfig, IkeEngine, IkeEvent};
use crate::tunnel::ipsec::tunnel::{IO_IKE, IO_NAT_T};
use crate::tunnel::ipsec::{EspPath, IpsecTunnel};
use crate::tunnel::Shard;

/// IKE datagrams waiting for the IKE thread.
pub(crate) const QUEUE: usize = 256;
/// The engine's ports: IKE_SA_INIT and NAT-T. The attachment's real ports may differ
/// (`ike_port`, `nat_t_port`); the engine speaks of its two sockets by these numbers.
const PORT_IKE: u16 = 500;
const PORT_NAT_T: u16 = 4500;
/// The non-ESP marker in front of IKE on the NAT-T port [RFC 3948 § 2.2].
const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What the IKE thread is told.
pub(crate) enum IkeInput {
    Datagram {
        generation: u64,
        attachment: AttachmentId,
        io: u8,
        from: SocketAddr,
        data: Vec<u8>,
    },
    Plan {
        plan: Arc<Plan>,
        engines: Vec<EngineSetup>,
    },
    /// A peer's authenticated ESP came from a new address (its NAT's mapping changed); the
    /// data path already sends there.
    Roamed {
        generation: u64,
        attachment: AttachmentId,
        peer: PeerId,
        to: SocketAddr,
    },
    /// What the data path counted on an attachment's SAs: (peer, SPI, bytes).
    Usage {
        generation: u64,
        attachment: AttachmentId,
        sas: Vec<(PeerId, u32, u64)>,
    },
    /// A facility's certificate state changed (the thread reads the states after every turn;
    /// this only wakes it).
    Facilities,
    Stop,
    /// Tests only: the thread blocks until `release` is sent to or dropped.
    #[cfg(test)]
    Hang(std::sync::mpsc::Receiver<()>),
}

/// One IPsec attachment's engine configuration and sockets.
pub(crate) struct EngineSetup {
    pub attachment: AttachmentId,
    pub config: IkeConfig,
    /// Clones of the attachment's UDP sockets: `ike_port`, then `nat_t_port`.
    pub sockets: [Arc<UdpSocket>; 2],
    /// The attachment has a raw ESP socket; without one, ESP goes in UDP even where no NAT
    /// calls for it.
    pub raw_esp: bool,
}

/// A CHILD SA to install.
pub(crate) struct NewChild {
    peer: PeerId,
    inbound: InboundSa,
    outbound: OutboundSa,
    path: EspPath,
    /// Sends the peer's packets into it at once (else it waits for `Activate`: a rekey's).
    active: bool,
}

/// A change to an IPsec attachment's SAs, for the worker.
pub(crate) enum SaChange {
    /// A CHILD SA.
    Add(Box<NewChild>),
    Activate {
        peer: PeerId,
        inbound_spi: u32,
    },
    Remove {
        inbound_spi: u32,
    },
    PeerDown {
        peer: PeerId,
    },
    /// The peer's ESP goes to `to` from now on (its NAT's mapping changed).
    Path {
        peer: PeerId,
        to: SocketAddr,
    },
    /// The peer has an IKE SA: a new one (`new_ike_sa`, counted as a handshake), or keys
    /// renewed by a rekey. Sets its last handshake and marks it up.
    Established {
        peer: PeerId,
        new_ike_sa: bool,
        /// Where the new IKE SA's peer is (none for a rekey).
        remote: Option<SocketAddr>,
    },
    /// Every SA of the attachment: its engine was replaced.
    Clear,
}

impl SaChange {
    /// The change with its peer renumbered by `new` (a reload's); `None` if `new` drops the
    /// peer, or for `Clear`, which only an engine replaced by that reload sends.
    pub(crate) fn renumber(self, new: impl Fn(PeerId) -> Option<PeerId>) -> Option<SaChange> {
        Some(match self {
            SaChange::Add(mut c) => {
                c.peer = new(c.peer)?;
                SaChange::Add(c)
            }
            SaChange::Activate { peer, inbound_spi } => SaChange::Activate {
                peer: new(peer)?,
                inbound_spi,
            },
            // SPIs are unique in the attachment, whichever peer they belong to.
            SaChange::Remove { inbound_spi } => SaChange::Remove { inbound_spi },
            SaChange::PeerDown { peer } => SaChange::PeerDown { peer: new(peer)? },
            SaChange::Path { peer, to } => SaChange::Path {
                peer: new(peer)?,
                to,
            },
            SaChange::Established {
                peer,
                new_ike_sa,
                remote,
            } => SaChange::Established {
                remote,
                peer: new(peer)?,
                new_ike_sa,
            },
            SaChange::Clear => return None,
        })
    }

    /// The worker that applies the change among those of `shard`: the owner of its peer (by
    /// the peer's home key), of its SPI for a removal; `None` for `Clear`, which every worker
    /// applies.
    pub(crate) fn owner(
        &self,
        shard: Shard,
        home_key: impl Fn(PeerId) -> Option<u64>,
    ) -> Option<u32> {
        let peer = match self {
            SaChange::Add(c) => c.peer,
            SaChange::Activate { peer, .. }
            | SaChange::PeerDown { peer }
            | SaChange::Path { peer, .. }
            | SaChange::Established { peer, .. } => *peer,
            SaChange::Remove { inbound_spi } => return Some(shard.owner_of_spi(*inbound_spi)),
            SaChange::Clear => return None,
        };
        // A peer the plan does not know: worker 0, which finds no SA of it either.
        Some(home_key(peer).map_or(0, |k| shard.owner_by_key(k)))
    }

    /// Applies the change to an attachment's data-path half.
    pub(crate) fn apply(self, t: &mut IpsecTunnel) {
        match self {
            SaChange::Add(c) => {
                let NewChild {
                    peer,
                    inbound,
                    outbound,
                    path,
                    active,
                } = *c;
                let spi = inbound.spi();
                t.add(peer, inbound, outbound, path);
                if active {
                    t.activate(peer, spi);
                }
            }
            SaChange::Activate { peer, inbound_spi } => {
                t.activate(peer, inbound_spi);
            }
            SaChange::Remove { inbound_spi } => {
                t.remove_inbound(inbound_spi);
            }
            SaChange::PeerDown { peer } => t.remove_peer(peer),
            SaChange::Path { peer, to } => t.set_path(peer, to),
            SaChange::Established { .. } => {}
            SaChange::Clear => t.clear(),
        }
    }
}

/// UNIX seconds now, for certificate validity.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The engine configurations of `plan`'s IPsec attachments, with clones of their sockets
/// (found by `socket`, which gives the UDP socket of an attachment's `io`-th source).
pub(crate) fn setups(
    plan: &Plan,
    mut socket: impl FnMut(AttachmentId, usize) -> Option<Arc<UdpSocket>>,
    presenter: &Arc<dyn Presenter>,
    workers: u32,
) -> Result<Vec<EngineSetup>, IkeSetupError> {
    let mut out = Vec::new();
    for i in 0..plan.attachments.len() {
        let attachment = AttachmentId(i as u16);
        let Some(config) = plan.ike_config(attachment, unix_now, Some(presenter), workers) else {
            continue;
        };
        let config = config?;
        let missing = || IkeSetupError {
            attachment: plan.attachments[i].name.clone(),
            peer: None,
            problem: "its UDP sockets are not open".into(),
        };
        let ike = socket(attachment, usize::from(IO_IKE)).ok_or_else(missing)?;
        let nat_t = socket(attachment, usize::from(IO_NAT_T)).ok_or_else(missing)?;
        out.push(EngineSetup {
            attachment,
            config,
            sockets: [ike, nat_t],
            raw_esp: plan.attachments[i].io.len() > 2,
        });
    }
    Ok(out)
}

/// Starts the IKE thread.
pub(crate) fn spawn(
    rx: Receiver<IkeInput>,
    controls: &[mpsc::Sender<Control>],
    metrics: IkeMetrics,
    facilities: Arc<ArcSwap<FacilityStates>>,
    audit: Option<Arc<Events>>,
    heartbeat: Arc<Heartbeat>,
) -> std::io::Result<std::thread::JoinHandle<Receiver<IkeInput>>> {
    // Only the weak sender may reach the thread: a strong one captured by the closure would
    // keep the worker's channel open after the `Running` is dropped.
    let controls: Vec<_> = controls.iter().map(mpsc::Sender::downgrade).collect();
    std::thread::Builder::new()
        .name("ixgw-ike".into())
        .spawn(move || {
            let mut t = IkeThread::new(controls, metrics, facilities);
            t.audit = audit;
            t.heartbeat = heartbeat;
            let rx = t.run(rx);
            t.heartbeat.retire();
            rx
        })
}

/// Hands an IKE datagram to the IKE thread; `false` when it cannot take it (its queue is
/// full, or the thread is gone), and the caller counts a drop.
pub(crate) fn offer(tx: &SyncSender<IkeInput>, input: IkeInput) -> bool {
    match tx.try_send(input) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => false,
        Err(TrySendError::Disconnected(_)) => {
            tracing::error!("the IKE thread is gone: IKE messages are dropped");
            false
        }
    }
}

struct Engine {
    attachment: AttachmentId,
    engine: IkeEngine,
    /// What it was built or last reconfigured with, to restart it.
    config: IkeConfig,
    sockets: [Arc<UdpSocket>; 2],
    /// Peer names, for log lines a helpdesk can read.
    names: HashMap<PeerId, String>,
    raw_esp: bool,
    /// When the SA gauges are next updated.
    next_gauges: Instant,
    attachment_name: String,
}

struct IkeThread {
    /// Every worker's control queue, by worker: SA changes go to the worker owning the SA.
    /// Weak, so that dropping the `Running` closes the workers' channels and the workers end
    /// (and with them the last senders of this thread's queue, which ends this thread).
    controls: Vec<mpsc::WeakSender<Control>>,
    metrics: IkeMetrics,
    generation: u64,
    /// The plan the engines serve (none before the first).
    plan: Option<Arc<Plan>>,
    engines: Vec<Engine>,
    /// Every facility's certificate state, and the states last acted on (for this plan).
    facilities: Arc<ArcSwap<FacilityStates>>,
    facilities_seen: Option<Arc<FacilityStates>>,
    /// Where authentications and tunnels going up and down are recorded, if anywhere.
    audit: Option<Arc<Events>>,
    /// Initiating peers stopped because their certificate was refused, and when to try
    /// them again (their facility may have a new certificate by then).
    retry: Vec<(AttachmentId, PeerId, Instant)>,
    /// Beaten every turn: the thread counts for `/live` and the watchdog.
    heartbeat: Arc<Heartbeat>,
}

/// How often an initiating peer whose certificate was refused is tried again.
const RETRY_REFUSED: Duration = Duration::from_secs(60);

impl IkeThread {
    fn new(
        controls: Vec<mpsc::WeakSender<Control>>,
        metrics: IkeMetrics,
        facilities: Arc<ArcSwap<FacilityStates>>,
    ) -> IkeThread {
        IkeThread {
            controls,
            metrics,
            generation: 0,
            plan: None,
            engines: Vec::new(),
            facilities,
            facilities_seen: None,
            audit: None,
            retry: Vec::new(),
            heartbeat: Arc::new(Heartbeat::new("ixgw-ike", Instant::now())),
        }
    }

    /// Tries again the initiating peers stopped for a refused certificate whose time came
    /// (each minute until they are up).
    fn retry_refused(&mut self, now: Instant) {
        let due: Vec<(AttachmentId, PeerId)> = self
            .retry
            .iter()
            .filter(|(_, _, at)| *at <= now)
            .map(|(a, p, _)| (*a, *p))
            .collect();
        self.retry.retain(|(_, _, at)| *at > now);
        for (attachment, p) in due {
            let Some(i) = self.engines.iter().position(|e| e.attachment == attachment) else {
                continue;
            };
            if self.engines[i].engine.is_up(p) {
                continue;
            }
            self.engines[i].engine.initiate(p, now);
            self.retry.push((attachment, p, now + RETRY_REFUSED));
            self.drain(i);
        }
    }

    /// Acts on certificate state changes: a facility whose certificate is refused (revoked,
    /// expired, ...) loses its IKE SAs, with a Delete its peer hears; one that is good again
    /// has its initiating peers start again. A facility that has not presented a certificate
    /// yet loses nothing (its peers are about to).
    fn sync_facilities(&mut self) {
        let states = self.facilities.load_full();
        if states.generation != self.generation
            || self
                .facilities_seen
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, &states))
        {
            return;
        }
        let before = self
            .facilities_seen
            .replace(Arc::clone(&states))
            .filter(|b| b.generation == states.generation);
        let Some(plan) = self.plan.clone() else {
            return;
        };
        let refused = |s: FacilityState| {
            !matches!(
                s,
                FacilityState::NotRequired | FacilityState::Valid | FacilityState::NotPresented
            )
        };
        let now = Instant::now();
        // Peers whose own certificate was refused (their facility may stay valid through
        // another peer): their SAs go.
        let newly_refused: Vec<&String> = states
            .refused_peers
            .iter()
            .filter(|p| before.as_ref().is_none_or(|b| !b.refused_peers.contains(p)))
            .collect();
        for i in 0..self.engines.len() {
            let e = &mut self.engines[i];
            let gone: Vec<PeerId> = e
                .names
                .iter()
                .filter(|(_, n)| newly_refused.contains(n))
                .map(|(p, _)| *p)
                .collect();
            for p in gone {
                tracing::warn!(
                    attachment = e.attachment_name,
                    peer = e.names.get(&p).map_or("?", String::as_str),
                    "the peer's certificate is refused: deleting its IKE SA"
                );
                e.engine.delete(p, now);
                self.retry.push((e.attachment, p, now + RETRY_REFUSED));
            }
        }
        for i in 0..self.engines.len() {
            let peers: Vec<PeerId> = self.engines[i].names.keys().copied().collect();
            for p in peers {
                let pp = &plan.peers[p.index()];
                let f = pp.facility_id.index();
                let Some(&state) = states.states.get(f) else {
                    continue;
                };
                let was = before.as_ref().and_then(|b| b.states.get(f).copied());
                let e = &mut self.engines[i];
                let initiates = matches!(&pp.kind, PeerPlanKind::Ipsec(ip) if ip.config.start == crate::config::IpsecStart::Initiate);
                // A reload that changed the facility's registry entry leaves it waiting for a
                // certificate while the peer's SAs carry on: the peer must authenticate anew.
                if state == FacilityState::NotPresented && was.is_none() && e.engine.is_up(p) {
                    tracing::info!(
                        attachment = e.attachment_name,
                        peer = pp.name,
                        facility = %pp.facility,
                        "the facility's registry entry changed: its peer authenticates anew"
                    );
                    e.engine.delete(p, now);
                    if initiates {
                        e.engine.initiate(p, now);
                    }
                    continue;
                }
                if refused(state) && was.is_none_or(|w| !refused(w)) {
                    tracing::warn!(
                        attachment = e.attachment_name,
                        peer = pp.name,
                        facility = %pp.facility,
                        state = %state,
                        "facility certificate refused: deleting the peer's IKE SA"
                    );
                    e.engine.delete(p, now);
                    if initiates {
                        self.retry.push((e.attachment, p, now + RETRY_REFUSED));
                    }
                } else if !refused(state)
                    && initiates
                    && (was.is_none() || was.is_some_and(refused))
                {
                    // Good again, or a new plan (a reload may have fixed what stopped it): an
                    // initiating peer is started unless it is up.
                    e.engine.initiate(p, now);
                }
            }
            self.drain(i);
        }
    }

    /// Serves the queue until `Stop` (or until no one can send), then hands the queue back:
    /// whoever stops the thread holds it open while the worker drains, so that the peers'
    /// answers to our Deletes wait there unread instead of finding the IKE thread "gone".
    fn run(&mut self, rx: Receiver<IkeInput>) -> Receiver<IkeInput> {
        loop {
            let now = Instant::now();
            self.heartbeat.beat(now);
            let wait = self
                .engines
                .iter()
                .filter_map(|e| e.engine.poll_timeout())
                .min()
                .map_or(BEAT_INTERVAL, |t| t.saturating_duration_since(now))
                .min(BEAT_INTERVAL);
            match rx.recv_timeout(wait) {
                Ok(IkeInput::Datagram {
                    generation,
                    attachment,
                    io,
                    from,
                    data,
                }) if generation == self.generation => {
                    let port = if io == IO_IKE { PORT_IKE } else { PORT_NAT_T };
                    self.guarded(attachment, |e| {
                        e.handle_datagram(Instant::now(), port, from, &data);
                    });
                }
                Ok(IkeInput::Datagram { .. }) => {}
                Ok(IkeInput::Usage {
                    generation,
                    attachment,
                    sas,
                }) if generation == self.generation => {
                    self.guarded(attachment, |e| {
                        let now = Instant::now();
                        for (peer, spi, bytes) in sas {
                            e.esp_usage(peer, spi, bytes, now);
                        }
                    });
                }
                Ok(IkeInput::Usage { .. }) => {}
                Ok(IkeInput::Roamed {
                    generation,
                    attachment,
                    peer,
                    to,
                }) if generation == self.generation => {
                    self.guarded(attachment, |e| e.peer_roamed(peer, to, Instant::now()));
                }
                Ok(IkeInput::Roamed { .. }) => {}
                Ok(IkeInput::Plan { plan, engines }) => self.adopt(plan, engines),
                Ok(IkeInput::Facilities) => {}
                #[cfg(test)]
                Ok(IkeInput::Hang(release)) => {
                    let _ = release.recv();
                }
                Ok(IkeInput::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.shut_down();
                    return rx;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.sync_facilities();
            let now = Instant::now();
            self.retry_refused(now);
            for i in 0..self.engines.len() {
                if self.engines[i]
                    .engine
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
                {
                    let attachment = self.engines[i].attachment;
                    self.guarded(attachment, |e| e.handle_timeout(now));
                }
                self.drain(i);
            }
        }
    }

    /// Runs `f` on the engine of `attachment`. Should it panic (a bug: no input may make it),
    /// that engine alone restarts from its configuration: its SAs are cleared in the data
    /// path and its peers negotiate again, rather than every attachment's IKE stopping.
    fn guarded(&mut self, attachment: AttachmentId, f: impl FnOnce(&mut IkeEngine)) {
        let Some(e) = self.engines.iter_mut().find(|e| e.attachment == attachment) else {
            return;
        };
        let engine = &mut e.engine;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(engine))).is_ok() {
            return;
        }
        tracing::error!(
            attachment = e.attachment_name,
            "the IKE engine failed (a bug: please report it with this log): restarted, its \
             peers negotiate again"
        );
        self.metrics.event(&e.attachment_name, "engine_restarted");
        e.engine = IkeEngine::new(e.config.clone(), Instant::now());
        self.change(attachment, SaChange::Clear);
    }

    /// Switches to a new plan. An attachment whose IKE engine carries on
    /// ([`Plan::ipsec_carry`]) keeps the SAs of its unchanged peers, renumbered as the data
    /// path renumbers them; its removed and changed peers are deleted (they learn it by a
    /// Delete) and changed ones negotiate again. Every other engine is replaced: its peers'
    /// IKE SAs are deleted, its SAs cleared in the data path, and its peers negotiate again.
    fn adopt(&mut self, plan: Arc<Plan>, setups: Vec<EngineSetup>) {
        let now = Instant::now();
        // Peers are renumbered: the refused ones are found again from the new plan's states.
        self.retry.clear();
        let carries: Vec<Option<IpsecCarry>> = setups
            .iter()
            .map(|s| {
                let previous = self.plan.as_deref()?;
                let carry = plan.ipsec_carry(previous, s.attachment)?;
                self.engines
                    .iter()
                    .any(|e| e.attachment == carry.previous)
                    .then_some(carry)
            })
            .collect();
        // Under the old plan (its generation, its names): the Deletes of the peers that do
        // not carry on.
        for i in 0..self.engines.len() {
            let e = &mut self.engines[i];
            let carry = carries
                .iter()
                .flatten()
                .find(|c| c.previous == e.attachment);
            let gone: Vec<PeerId> = e
                .names
                .keys()
                .filter(|p| carry.is_none_or(|c| !c.peers.iter().any(|(old, _)| old == *p)))
                .copied()
                .collect();
            for p in gone {
                e.engine.delete(p, now);
            }
            self.drain(i);
        }
        // From here on the new plan: the SA changes below name its peers, and are routed to
        // their owners by it.
        self.generation = plan.generation;
        let previous = self.plan.replace(Arc::clone(&plan));
        let mut old: Vec<Option<Engine>> = std::mem::take(&mut self.engines)
            .into_iter()
            .map(Some)
            .collect();
        for (s, carry) in setups.into_iter().zip(carries) {
            let a = &plan.attachments[s.attachment.index()];
            let names = peer_names(&plan, s.attachment);
            let reused = carry.as_ref().and_then(|c| {
                old.iter_mut()
                    .find(|e| e.as_ref().is_some_and(|e| e.attachment == c.previous))
                    .and_then(Option::take)
            });
            let config = s.config.clone();
            let (engine, carried) = match (reused, carry) {
                (Some(mut e), Some(c)) => {
                    e.engine.reconfigure(s.config, &c.peers, now);
                    (e.engine, Some(c))
                }
                _ => (IkeEngine::new(s.config, now), None),
            };
            match &carried {
                Some(c) => {
                    // Changed peers lost their SAs with the Deletes above.
                    let before = previous
                        .as_deref()
                        .map(|p| peer_names(p, c.previous))
                        .unwrap_or_default();
                    let mut renegotiate = 0;
                    for (peer, name) in &names {
                        let kept = c.peers.iter().any(|(_, new)| new == peer);
                        if !kept && before.values().any(|n| n == name) {
                            renegotiate += 1;
                            self.change(s.attachment, SaChange::PeerDown { peer: *peer });
                        }
                    }
                    let child_sas_kept: usize = c
                        .peers
                        .iter()
                        .map(|(_, p)| engine.child_spis(*p).len())
                        .sum();
                    tracing::info!(
                        attachment = a.name,
                        peers = names.len(),
                        unchanged = c.peers.len(),
                        child_sas_kept,
                        renegotiate,
                        "IKE engine reconfigured, SAs of unchanged peers kept"
                    );
                }
                None => {
                    self.change(s.attachment, SaChange::Clear);
                    tracing::info!(attachment = a.name, peers = names.len(), "IKE engine ready");
                }
            }
            self.engines.push(Engine {
                attachment: s.attachment,
                engine,
                config,
                sockets: s.sockets,
                names,
                attachment_name: a.name.clone(),
                raw_esp: s.raw_esp,
                next_gauges: now,
            });
        }
    }

    /// Deletes every IKE SA (the peers learn at once) and sends what that produced.
    fn shut_down(&mut self) {
        for i in 0..self.engines.len() {
            let peers: Vec<PeerId> = self.engines[i].names.keys().copied().collect();
            for p in peers {
                self.engines[i].engine.delete(p, Instant::now());
            }
            self.drain(i);
        }
    }

    /// Sends what engine `i` wants sent and acts on its events.
    fn drain(&mut self, i: usize) {
        while let Some(t) = self.engines[i].engine.poll_transmit() {
            let e = &self.engines[i];
            let sent = if t.from_port == PORT_IKE {
                e.sockets[0].send_to(&t.data, t.to)
            } else {
                let mut d = Vec::with_capacity(4 + t.data.len());
                d.extend_from_slice(&NON_ESP_MARKER);
                d.extend_from_slice(&t.data);
                e.sockets[1].send_to(&d, t.to)
            };
            if let Err(err) = sent {
                tracing::debug!(attachment = e.attachment_name, to = %t.to, "IKE send failed: {err}");
            }
        }
        while let Some(ev) = self.engines[i].engine.poll_event() {
            self.event(i, ev);
        }
        // The SA gauges cost a pass over the peers: once a second, not per message.
        let now = Instant::now();
        if now >= self.engines[i].next_gauges {
            let e = &mut self.engines[i];
            e.next_gauges = now + Duration::from_secs(1);
            let child_sas = e.names.keys().map(|p| e.engine.child_spis(*p).len()).sum();
            self.metrics.sas(&e.attachment_name, &e.engine, child_sas);
        }
    }

    fn event(&mut self, i: usize, ev: IkeEvent) {
        let e = &self.engines[i];
        let attachment = e.attachment;
        let name = |p: &PeerId| e.names.get(p).map_or("?", String::as_str).to_string();
        // The facility (code and registry name) and tenant of a peer, for the log.
        let plan = self.plan.clone();
        let of = |p: &PeerId| -> (String, String) {
            let Some(plan) = plan.as_deref() else {
                return Default::default();
            };
            let Some(pp) = plan.peers.get(p.index()) else {
                return Default::default();
            };
            let facility = match pp.facility_name.as_str() {
                "" => pp.facility.to_string(),
                n => format!("{} ({n})", pp.facility),
            };
            let tenant =
                (plan.tenants.get(pp.tenant.index())).map_or_else(String::new, |t| t.name.clone());
            (facility, tenant)
        };
        let a = e.attachment_name.clone();
        let m = &self.metrics;
        match &ev {
            IkeEvent::IkeSaUp { .. } => m.event(&a, "ike_sa_up"),
            IkeEvent::IkeSaRekeyed { .. } => m.event(&a, "ike_sa_rekeyed"),
            IkeEvent::ChildSaUp(up) if up.replaces.is_some() => m.event(&a, "child_sa_rekeyed"),
            IkeEvent::ChildSaUp(_) => m.event(&a, "child_sa_up"),
            IkeEvent::ChildSaDown { .. } => m.event(&a, "child_sa_down"),
            IkeEvent::Retransmit { .. } => m.event(&a, "retransmit"),
            IkeEvent::GaveUp { .. } => m.event(&a, "gave_up"),
            IkeEvent::PathChanged { .. } => m.event(&a, "peer_moved"),
            IkeEvent::ChildSaExpired { .. } => m.event(&a, "child_sa_expired"),
            IkeEvent::IkeSaExpired { .. } => m.event(&a, "ike_sa_expired"),
            IkeEvent::PeerDown { reason, .. } => m.peer_down(&a, *reason),
            IkeEvent::Refused { reason, .. } => m.refused(&a, *reason),
            _ => {}
        }
        if let (Some(audit), Some(plan)) = (&self.audit, &self.plan) {
            match &ev {
                IkeEvent::IkeSaUp { peer, remote } => audit.ike_up(plan, *peer, *remote),
                IkeEvent::PeerDown { peer, reason } => {
                    audit.ike_down(plan, *peer, super::ike_metrics::down_label(*reason))
                }
                IkeEvent::Refused {
                    peer: Some(peer),
                    reason,
                    ..
                } => audit.ike_refused(plan, *peer, super::ike_metrics::refusal_label(*reason)),
                _ => {}
            }
        }
        match ev {
            IkeEvent::IkeSaUp { peer, remote } => {
                let (facility, tenant) = of(&peer);
                tracing::info!(attachment = a, peer = name(&peer), tenant, facility, %remote, "IKE SA established");
                let (new_ike_sa, remote) = (true, Some(remote));
                let established = SaChange::Established {
                    peer,
                    new_ike_sa,
                    remote,
                };
                self.change(attachment, established);
            }
            IkeEvent::IkeSaRekeyed { peer } => {
                tracing::info!(attachment = a, peer = name(&peer), "IKE SA rekeyed");
                let (new_ike_sa, remote) = (false, None);
                let established = SaChange::Established {
                    peer,
                    new_ike_sa,
                    remote,
                };
                self.change(attachment, established);
            }
            IkeEvent::ChildSaUp(up) => {
                let peer = up.peer;
                tracing::info!(
                    attachment = a,
                    peer = name(&peer),
                    inbound_spi = format_args!("{:08x}", up.inbound.spi),
                    outbound_spi = format_args!("{:08x}", up.outbound.spi),
                    udp_encap = up.udp_encap,
                    rekey = up.replaces.is_some(),
                    worker = self.shard().owner_of_spi(up.inbound.spi),
                    "CHILD SA established"
                );
                match child_sa(&up, self.engines[i].raw_esp) {
                    Ok(change) => self.change(attachment, change),
                    Err(err) => tracing::error!(
                        attachment = a,
                        peer = name(&peer),
                        "cannot install the CHILD SA: {err}"
                    ),
                }
            }
            IkeEvent::ChildSaRekeyed {
                peer,
                new_inbound_spi,
                ..
            } => self.change(
                attachment,
                SaChange::Activate {
                    peer,
                    inbound_spi: new_inbound_spi,
                },
            ),
            IkeEvent::ChildSaDown { peer, inbound_spi } => {
                tracing::info!(
                    attachment = a,
                    peer = name(&peer),
                    inbound_spi = format_args!("{inbound_spi:08x}"),
                    "CHILD SA deleted"
                );
                self.change(attachment, SaChange::Remove { inbound_spi });
            }
            IkeEvent::ChildSaExpired { peer, inbound_spi } => tracing::warn!(
                attachment = a,
                peer = name(&peer),
                inbound_spi = format_args!("{inbound_spi:08x}"),
                "CHILD SA reached its hard lifetime without a rekey: deleted"
            ),
            IkeEvent::IkeSaExpired { peer } => tracing::warn!(
                attachment = a,
                peer = name(&peer),
                "IKE SA reached its hard lifetime without a rekey: deleted"
            ),
            IkeEvent::PathChanged { peer, remote } => {
                let (facility, tenant) = of(&peer);
                tracing::info!(attachment = a, peer = name(&peer), tenant, facility, %remote, "peer endpoint changed");
                self.change(attachment, SaChange::Path { peer, to: remote });
            }
            IkeEvent::PeerDown { peer, reason } => {
                let (facility, tenant) = of(&peer);
                tracing::warn!(
                    attachment = a,
                    peer = name(&peer),
                    tenant,
                    facility,
                    ?reason,
                    "peer down"
                );
                self.change(attachment, SaChange::PeerDown { peer });
            }
            IkeEvent::Refused {
                peer: Some(peer),
                notify,
                reason,
            } => {
                let (facility, tenant) = of(&peer);
                let peer = name(&peer);
                tracing::warn!(
                    attachment = a,
                    peer,
                    tenant,
                    facility,
                    ?notify,
                    ?reason,
                    "IKE message refused"
                );
            }
            // From no known peer (garbage, scans, floods): counted, logged only at debug.
            IkeEvent::Refused { notify, reason, .. } => {
                tracing::debug!(attachment = a, ?notify, ?reason, "IKE message refused");
            }
            IkeEvent::Retransmit {
                peer,
                exchange,
                attempt,
            } => {
                let peer = peer.map(|p| name(&p));
                tracing::debug!(
                    attachment = a,
                    peer,
                    ?exchange,
                    attempt,
                    "IKE retransmission"
                );
            }
            IkeEvent::GaveUp { peer, exchange } => {
                let peer = peer.map(|p| name(&p));
                tracing::warn!(
                    attachment = a,
                    peer,
                    ?exchange,
                    "IKE request unanswered, giving up"
                );
            }
            #[allow(unreachable_patterns)]
            other => tracing::debug!(attachment = a, ?other, "IKE event"),
        }
    }

    /// The data-path workers, as the SA changes are spread over them.
    fn shard(&self) -> Shard {
        Shard {
            index: 0,
            count: self.controls.len() as u32,
        }
    }

    /// Sends an SA change to the worker owning its peer or SPI (`Clear` to every worker);
    /// waits if a control queue is full.
    fn change(&self, attachment: AttachmentId, change: SaChange) {
        let shard = self.shard();
        let home_key = |p: PeerId| {
            let plan = self.plan.as_ref()?;
            Some(plan.peers.get(p.index())?.home_key)
        };
        let owner = change.owner(shard, home_key);
        if let SaChange::Add(c) = &change {
            // Steering hands the SA's ESP to the worker its SPI names: it must hold the SA.
            debug_assert_eq!(owner, Some(shard.owner_of_spi(c.inbound.spi())));
        }
        let to = match owner {
            Some(k) => k as usize..k as usize + 1,
            None => 0..self.controls.len(),
        };
        let mut change = Some(change);
        for k in to {
            let change = change.take().unwrap_or(SaChange::Clear);
            let msg = Control::Ipsec {
                generation: self.generation,
                attachment,
                change,
            };
            let sent = (self.controls.get(k))
                .and_then(mpsc::WeakSender::upgrade)
                .is_some_and(|c| c.blocking_send(msg).is_ok());
            if !sent {
                tracing::debug!(worker = k, "the worker is gone; SA change dropped");
            }
        }
    }
}

/// The names of IPsec attachment `a`'s peers, for log lines a helpdesk can read.
fn peer_names(plan: &Plan, a: AttachmentId) -> HashMap<PeerId, String> {
    match &plan.attachments[a.index()].kind {
        AttachmentPlanKind::Ipsec { peers, .. } => peers
            .iter()
            .map(|p| (*p, plan.peers[p.index()].name.clone()))
            .collect(),
        _ => HashMap::new(),
    }
}

/// The data-path SAs of a CHILD SA the engine set up.
fn child_sa(up: &ChildSaUp, raw_esp: bool) -> Result<SaChange, String> {
    let inbound = InboundSa::new(&up.inbound.sa_config()).map_err(|e| format!("{e:?}"))?;
    let outbound = OutboundSa::new(&up.outbound.sa_config()).map_err(|e| format!("{e:?}"))?;
    let path = if up.udp_encap || !raw_esp {
        EspPath::Udp(up.remote_addr)
    } else {
        EspPath::Raw(up.remote_addr.ip())
    };
    Ok(SaChange::Add(Box::new(NewChild {
        peer: up.peer,
        inbound,
        outbound,
        path,
        active: up.replaces.is_none(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking engine (a bug) restarts alone: a fresh engine from its configuration, its
    /// SAs cleared in the data path, counted; the thread goes on.
    #[test]
    fn a_failing_engine_restarts_alone() {
        use crate::tunnel::ipsec::ike::sa::{Identity, Limits};
        let (control, mut control_rx) = mpsc::channel(8);
        let registry = prometheus::Registry::new();
        let metrics = IkeMetrics::register(&registry).unwrap();
        let mut t = IkeThread::new(vec![control.downgrade()], metrics, Default::default());
        let socket = || Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let config = IkeConfig {
            local_id: Identity::fqdn("gw.ix.example"),
            local_addr: std::net::IpAddr::from([127, 0, 0, 1]),
            local_ports: [500, 4500],
            force_udp_encap: true,
            peers: Vec::new(),
            limits: Limits::default(),
        };
        t.engines.push(Engine {
            attachment: AttachmentId(3),
            engine: IkeEngine::new(config.clone(), Instant::now()),
            config,
            sockets: [socket(), socket()],
            names: HashMap::new(),
            raw_esp: false,
            next_gauges: Instant::now(),
            attachment_name: "claims-ipsec".into(),
        });
        t.guarded(AttachmentId(3), |_| panic!("a bug in the engine"));
        match control_rx.try_recv() {
            Ok(Control::Ipsec {
                attachment: AttachmentId(3),
                change: SaChange::Clear,
                ..
            }) => {}
            _ => panic!("the data path is told to clear the attachment's SAs"),
        }
        let restarted =
            r#"ixgw_ike_events_total{attachment="claims-ipsec",event="engine_restarted"} 1"#;
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(text.lines().any(|l| l == restarted), "{text}");
        // The engine works on.
        t.guarded(AttachmentId(3), |e| e.handle_timeout(Instant::now()));
        assert!(control_rx.try_recv().is_err(), "nothing more");
    }

    /// The engine setups of `plan` (its one IPsec attachment, attachment 0) for 2 workers.
    fn setups_of(plan: &Plan) -> Vec<EngineSetup> {
        let socket = || Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let config = plan
            .ike_config(AttachmentId(0), unix_now, None, 2)
            .expect("an IPsec attachment")
            .expect("a valid IKE configuration");
        vec![EngineSetup {
            attachment: AttachmentId(0),
            config,
            sockets: [socket(), socket()],
            raw_esp: false,
        }]
    }

    /// The SA changes waiting for each worker, by kind.
    fn received(workers: &mut [mpsc::Receiver<Control>]) -> Vec<Vec<String>> {
        workers
            .iter_mut()
            .map(|rx| {
                let mut got = Vec::new();
                while let Ok(Control::Ipsec { change, .. }) = rx.try_recv() {
                    got.push(match change {
                        SaChange::Clear => "clear".to_owned(),
                        SaChange::PeerDown { peer } => format!("down {}", peer.0),
                        _ => "other".to_owned(),
                    });
                }
                got
            })
            .collect()
    }

    /// With two workers, a new engine's `Clear` reaches both; after a reload that renumbers
    /// the peers, a changed peer's `PeerDown` reaches the owner of that peer under the new
    /// plan (found against a review: it was routed by the old plan's peer of that number).
    #[test]
    fn with_two_workers_sa_changes_reach_their_owner_across_a_reload() {
        let dir = std::env::temp_dir().join(format!("ixgw-ike-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shard = Shard { index: 0, count: 2 };
        // Names for which the changed peer and the peer that had its new number before
        // belong to different workers (home keys are hashes of the names).
        let owner = |plan: &Plan, name: &str| {
            let p = plan.peers.iter().find(|p| p.name == name).unwrap();
            (
                PeerId(plan.peers.iter().position(|q| q.name == name).unwrap() as u32),
                shard.owner_by_key(p.home_key),
            )
        };
        let (x, before, after) = (0..64)
            .find_map(|i| {
                let x = format!("fac-x{i}");
                let before = crate::runtime::tests::ipsec_plan(
                    &dir,
                    &[(&x, "10.0.1.0/24"), ("fac-z", "10.0.2.0/24")],
                    1,
                );
                let after = crate::runtime::tests::ipsec_plan(
                    &dir,
                    &[
                        ("fac-new", "10.0.3.0/24"),
                        (&x, "10.0.4.0/24"),
                        ("fac-z", "10.0.2.0/24"),
                    ],
                    2,
                );
                (owner(&before, &x).1 != owner(&before, "fac-z").1).then_some((x, before, after))
            })
            .expect("names on both workers");
        let (x_now, x_owner) = owner(&after, &x);
        assert_eq!(
            owner(&before, "fac-z").0,
            x_now,
            "the premise: fac-z had x's new number"
        );

        let (w0, rx0) = mpsc::channel(64);
        let (w1, rx1) = mpsc::channel(64);
        let mut workers = [rx0, rx1];
        let metrics = IkeMetrics::register(&prometheus::Registry::new()).unwrap();
        let mut t = IkeThread::new(
            vec![w0.downgrade(), w1.downgrade()],
            metrics,
            Default::default(),
        );
        t.adopt(before.clone(), setups_of(&before));
        assert_eq!(received(&mut workers), [vec!["clear"], vec!["clear"]]);
        t.adopt(after.clone(), setups_of(&after));
        let mut want = [Vec::<String>::new(), Vec::new()];
        want[x_owner as usize].push(format!("down {}", x_now.0));
        assert_eq!(received(&mut workers), want);
        drop((w0, w1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An SA change goes to the worker owning its peer (by home key) or its SPI; `Clear` to
    /// every worker.
    #[test]
    fn sa_changes_go_to_the_owner() {
        let shard = Shard { index: 0, count: 3 };
        let key = |p: PeerId| (p.0 < 10).then_some(u64::from(p.0) * 7);
        let peer = |p: u32| PeerId(p);
        assert_eq!(
            SaChange::PeerDown { peer: peer(1) }.owner(shard, key),
            Some(1)
        ); // 7 % 3
        assert_eq!(
            SaChange::PeerDown { peer: peer(2) }.owner(shard, key),
            Some(2)
        ); // 14 % 3
        let path = SaChange::Path {
            peer: peer(3),
            to: SocketAddr::from(([192, 0, 2, 1], 4500)),
        };
        assert_eq!(path.owner(shard, key), Some(0)); // 21 % 3
        let remove = SaChange::Remove {
            inbound_spi: 0x1000_0001,
        };
        assert_eq!(remove.owner(shard, key), Some(0x1000_0001 % 3));
        assert_eq!(SaChange::Clear.owner(shard, key), None);
        // A peer the plan does not know: worker 0.
        assert_eq!(
            SaChange::PeerDown { peer: peer(11) }.owner(shard, key),
            Some(0)
        );
    }

    /// Found against strongSwan (netns-tests/ipsec.sh): on SIGTERM the IKE thread sends its
    /// Deletes and ends; the peers' answers then reached the still draining worker, which
    /// found the queue closed and logged "the IKE thread is gone" at error level, once per
    /// peer, on every clean stop. The thread now hands its queue back to whoever stops it.
    #[test]
    fn a_stopped_ike_thread_hands_back_an_open_queue() {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let (control, _control_rx) = mpsc::channel(8);
        let metrics = IkeMetrics::register(&prometheus::Registry::new()).unwrap();
        let heartbeat = Arc::new(Heartbeat::new("ixgw-ike", Instant::now()));
        let thread = spawn(rx, &[control], metrics, Default::default(), None, heartbeat).unwrap();
        tx.send(IkeInput::Stop).unwrap();
        let queue = thread.join().expect("the IKE thread ends on Stop");
        let late = IkeInput::Datagram {
            generation: 0,
            attachment: AttachmentId(0),
            io: IO_NAT_T,
            from: SocketAddr::from(([192, 0, 2, 1], 4500)),
            data: vec![0; 64],
        };
        assert!(offer(&tx, late), "a late IKE datagram finds the queue open");
        drop(queue);
    }
}
