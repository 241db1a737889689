//! The TLS thread `ixgw-tls`: every `tls` attachment's listener, TLS (rustls, TLS 1.3 unless
//! 1.2 is allowed), the facility certificate judged after the handshake, the login and the
//! CONNECT, and the CSTP data channel of each client. One current-thread tokio runtime with
//! local tasks: an accept loop per listener, a task per connection, a reader of the worker's
//! side of each attachment's socket pair, and a timer that ends idle and expired sessions.
//!
//! The worker knows a session only by what this thread tells it over the attachment's socket
//! pair ([`crate::tunnel::tls::relay`]): a session up (its address and peer, numbered as in
//! the plan this thread runs), a session down, a client's packet; the worker's packets for a
//! session come back the same way. A login refused is told too, so that the worker counts it
//! with the other handshakes.
//!
//! The thread gets each plan after the worker switched to it, with the listeners and socket
//! pairs opened for it; sessions of peers the reload kept go on (announced again with their
//! new numbers), the others end.

mod conn;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;
use tokio::sync::{mpsc, Notify};

use super::worker::SourceKey;
use crate::admin::health::Heartbeat;
use crate::dataplane::{AttachmentPlanKind, PeerPlanKind, Plan};
use crate::facility::Presenter;
use crate::ids::{AttachmentId, PeerId};
use crate::tunnel::tls::book::{Book, End, Session};
use crate::tunnel::tls::relay::Message;
use crate::vocab::DropReason;

/// What the runtime opened for a `tls` attachment: its listener and this thread's end of the
/// socket pair (the worker has the other).
pub(crate) struct TlsIo {
    pub listener: std::net::TcpListener,
    pub relay: std::os::unix::net::UnixDatagram,
}

pub(crate) enum TlsControl {
    /// Serve `plan` (the worker runs it already), with what was opened for it.
    Plan {
        plan: Arc<Plan>,
        new: Vec<(SourceKey, TlsIo)>,
    },
    Stop,
}

/// How often sessions are checked for their timeouts.
const TICK: Duration = Duration::from_secs(1);
/// Connections of one attachment before their client is known (TLS handshake, first
/// request): more are closed at once and counted as `busy`.
const MAX_PENDING: usize = 256;
/// The same, from one source address.
const MAX_PENDING_PER_ADDRESS: usize = 16;
/// Connections the thread holds at most, of every attachment: each is a file descriptor.
const MAX_CONNECTIONS: usize = 8192;

/// A connection's handle, for this thread to stop it or to give it packets.
struct ConnHandle {
    serial: u64,
    out: mpsc::Sender<Vec<u8>>,
    stop: Rc<Notify>,
}

/// One attachment as this thread serves it.
struct Att {
    name: String,
    id: AttachmentId,
    generation: u64,
    server: Option<Arc<rustls::ServerConfig>>,
    config: crate::config::TlsAttachment,
    book: Book,
    relay: Rc<tokio::net::UnixDatagram>,
    /// Peers by the facility code their certificate names: (number, name, facility name).
    by_facility: HashMap<String, (PeerId, String)>,
    by_name: HashMap<String, PeerId>,
    /// Each peer's facility, by the peer's name.
    facility_of: HashMap<String, crate::ids::FacilityId>,
    split_routes: HashMap<String, Vec<Ipv4Network>>,
    /// Connections carrying sessions, by session.
    conns: HashMap<u32, ConnHandle>,
    /// Sessions whose tunnel was opened at least once (the next CONNECT is a reconnect).
    announced: HashSet<u32>,
    /// Packets dropped here since last told to the worker, by reason.
    lost: [u32; DropReason::COUNT],
}

impl Att {
    /// Counts a packet dropped here (told to the worker at the next tick).
    pub(super) fn lose(&mut self, reason: DropReason) {
        let n = &mut self.lost[reason as usize];
        *n = n.saturating_add(1);
    }
}

/// A listener and socket pair, and which attachment they serve now.
struct Served {
    attachment: String,
    relay: Rc<tokio::net::UnixDatagram>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(super) struct Shared {
    /// The plan served now.
    plan: Option<Arc<Plan>>,
    presenter: Arc<dyn Presenter>,
    /// Every facility's certificate state and the peers refused, as the registry publishes
    /// them: a session of a refused peer or facility ends.
    states: Arc<arc_swap::ArcSwap<super::facilities::FacilityStates>>,
    server_name: String,
    attachments: HashMap<String, Att>,
    served: HashMap<SourceKey, Served>,
    rng: crate::crypto::SystemRandom,
    next_serial: u64,
    /// Connections open, and those whose client is not known yet by attachment and address.
    open: usize,
    pending: HashMap<(String, std::net::IpAddr), usize>,
    pending_by_attachment: HashMap<String, usize>,
    /// Connections refused as busy since `busy_logged_at` (the first is logged at once).
    busy_unlogged: u64,
    busy_logged_at: Instant,
}

/// A connection counted in [`Shared`] until dropped; `pending` until its client is known.
pub(super) struct Slot {
    shared: Rc<RefCell<Shared>>,
    key: (String, std::net::IpAddr),
    pending: bool,
}

impl Slot {
    /// Takes a slot for a new connection of `attachment` from `ip`, or `None` when the
    /// limits are reached.
    fn take(shared: &Rc<RefCell<Shared>>, attachment: &str, ip: std::net::IpAddr) -> Option<Slot> {
        let mut sh = shared.borrow_mut();
        let key = (attachment.to_string(), ip);
        let by_address = sh.pending.get(&key).copied().unwrap_or(0);
        let by_attachment = sh
            .pending_by_attachment
            .get(attachment)
            .copied()
            .unwrap_or(0);
        if sh.open >= MAX_CONNECTIONS
            || by_address >= MAX_PENDING_PER_ADDRESS
            || by_attachment >= MAX_PENDING
        {
            return None;
        }
        sh.open += 1;
        *sh.pending.entry(key.clone()).or_default() += 1;
        *sh.pending_by_attachment.entry(key.0.clone()).or_default() += 1;
        Some(Slot {
            shared: shared.clone(),
            key,
            pending: true,
        })
    }

    /// The client is known (its tunnel is up): no longer counted as pending.
    pub(super) fn known(&mut self) {
        if std::mem::take(&mut self.pending) {
            release_pending(&mut self.shared.borrow_mut(), &self.key);
        }
    }
}

fn release_pending(sh: &mut Shared, key: &(String, std::net::IpAddr)) {
    if let Some(n) = sh.pending.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            sh.pending.remove(key);
        }
    }
    if let Some(n) = sh.pending_by_attachment.get_mut(&key.0) {
        *n -= 1;
        if *n == 0 {
            sh.pending_by_attachment.remove(&key.0);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sh = self.shared.borrow_mut();
        sh.open -= 1;
        if self.pending {
            release_pending(&mut sh, &self.key);
        }
    }
}

/// Starts the thread.
pub(crate) fn spawn(
    control: mpsc::Receiver<TlsControl>,
    presenter: Arc<dyn Presenter>,
    states: Arc<arc_swap::ArcSwap<super::facilities::FacilityStates>>,
    server_name: String,
    heartbeat: Arc<Heartbeat>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ixgw-tls".into())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &rt,
                run(control, presenter, states, server_name, &heartbeat),
            );
            heartbeat.retire();
        })
}

async fn run(
    mut control: mpsc::Receiver<TlsControl>,
    presenter: Arc<dyn Presenter>,
    states: Arc<arc_swap::ArcSwap<super::facilities::FacilityStates>>,
    server_name: String,
    heartbeat: &Heartbeat,
) {
    let shared = Rc::new(RefCell::new(Shared {
        plan: None,
        presenter,
        states,
        server_name,
        attachments: HashMap::new(),
        served: HashMap::new(),
        rng: crate::crypto::SystemRandom::new(),
        next_serial: 1,
        open: 0,
        pending: HashMap::new(),
        pending_by_attachment: HashMap::new(),
        busy_unlogged: 0,
        busy_logged_at: Instant::now(),
    }));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The tick comes every second: a thread that stops beating is stuck.
        heartbeat.beat(Instant::now());
        tokio::select! {
            msg = control.recv() => match msg {
                Some(TlsControl::Plan { plan, new }) => apply(&shared, &plan, new).await,
                Some(TlsControl::Stop) | None => {
                    stop(&shared).await;
                    // The connections write their DISCONNECT.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return;
                }
            },
            _ = tick.tick() => expire(&shared, Instant::now()).await,
        }
    }
}

/// Serves `plan`: new listeners start, kept attachments keep their sessions, the rest end.
async fn apply(shared: &Rc<RefCell<Shared>>, plan: &Arc<Plan>, new: Vec<(SourceKey, TlsIo)>) {
    let mut announce: Vec<(Rc<tokio::net::UnixDatagram>, Message)> = Vec::new();
    {
        let mut sh = shared.borrow_mut();
        for (key, io) in new {
            match serve(shared, &key, io) {
                Ok(s) => {
                    sh.served.insert(key, s);
                }
                Err(e) => tracing::error!(?key, "cannot serve a TLS listener: {e}"),
            }
        }
        let mut old = std::mem::take(&mut sh.attachments);
        let old_plan = sh.plan.replace(plan.clone());
        let mut keys = HashSet::new();
        for (i, a) in plan.attachments.iter().enumerate() {
            let AttachmentPlanKind::Tls(tls) = &a.kind else {
                continue;
            };
            let id = AttachmentId(i as u16);
            let key = SourceKey::of(a, 0);
            let Some(served) = sh.served.get_mut(&key) else {
                tracing::error!(attachment = a.name, "no listener for the TLS attachment");
                continue;
            };
            served.attachment = a.name.clone();
            let relay = served.relay.clone();
            keys.insert(key.clone());
            let server = match server_config(tls) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!(
                        attachment = a.name,
                        "TLS server configuration: {e}; clients are refused"
                    );
                    None
                }
            };
            let mut by_facility = HashMap::new();
            let mut by_name = HashMap::new();
            let mut facility_of = HashMap::new();
            let mut split_routes = HashMap::new();
            for p in &tls.peers {
                let peer = &plan.peers[p.index()];
                by_facility.insert(peer.facility.to_string(), (*p, peer.name.clone()));
                by_name.insert(peer.name.clone(), *p);
                facility_of.insert(peer.name.clone(), peer.facility_id);
                if let PeerPlanKind::Tls(t) = &peer.kind {
                    split_routes.insert(peer.name.clone(), t.split_routes.clone());
                }
            }
            let c = &tls.config;
            // The same answer as the worker's: which peers keep their sessions.
            let carried = old_plan.as_ref().and_then(|o| plan.tls_carry(o, id));
            let kept = match (old.remove(&a.name), carried) {
                (Some(o), Some(c)) => Some((o, c)),
                // Not kept: its sessions end with the others the plan dropped.
                (Some(o), None) => {
                    old.insert(a.name.clone(), o);
                    None
                }
                (None, _) => None,
            };
            let mut att = match kept {
                Some((mut o, carried)) => {
                    let names: Vec<&str> = (carried.iter())
                        .map(|(_, n)| plan.peers[n.index()].name.as_str())
                        .collect();
                    let mut ended = o.book.retain_peers(&names);
                    ended.extend(
                        o.book
                            .reconfigure(c.pool, c.idle_timeout, c.session_timeout),
                    );
                    for (s, why) in ended {
                        finish(&mut o, &s, why);
                        announce.push((o.relay.clone(), Message::Down { session: s.id }));
                    }
                    o
                }
                None => Att {
                    name: a.name.clone(),
                    id,
                    generation: plan.generation,
                    server: None,
                    config: c.clone(),
                    book: Book::new(c.pool, c.idle_timeout, c.session_timeout),
                    relay: relay.clone(),
                    by_facility: HashMap::new(),
                    by_name: HashMap::new(),
                    facility_of: HashMap::new(),
                    split_routes: HashMap::new(),
                    conns: HashMap::new(),
                    announced: HashSet::new(),
                    lost: [0; DropReason::COUNT],
                },
            };
            att.id = id;
            att.generation = plan.generation;
            att.server = server;
            att.config = c.clone();
            att.relay = relay;
            att.by_facility = by_facility;
            att.by_name = by_name;
            att.facility_of = facility_of;
            att.split_routes = split_routes;
            // Every connected session again, with its peer's new number.
            for s in att.book.sessions().filter(|s| s.connected) {
                if let Some(&peer) = att.by_name.get(&s.peer) {
                    announce.push((
                        att.relay.clone(),
                        Message::Up {
                            session: s.id,
                            peer,
                            address: s.address,
                            generation: plan.generation,
                            login: false,
                        },
                    ));
                }
            }
            sh.attachments.insert(a.name.clone(), att);
        }
        // Attachments the plan dropped or replaced: their sessions end with them.
        for (_, mut o) in old {
            let all: Vec<Session> = o.book.sessions().cloned().collect();
            for s in all {
                finish(&mut o, &s, End::Removed);
            }
        }
        sh.served.retain(|k, _| keys.contains(k));
    }
    for (relay, m) in announce {
        tell(&relay, m).await;
    }
}

/// Starts the accept loop and the relay reader of a new listener.
fn serve(shared: &Rc<RefCell<Shared>>, key: &SourceKey, io: TlsIo) -> std::io::Result<Served> {
    io.listener.set_nonblocking(true)?;
    io.relay.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(io.listener)?;
    let relay = Rc::new(tokio::net::UnixDatagram::from_std(io.relay)?);
    let accept = {
        let shared = shared.clone();
        let key = key.clone();
        tokio::task::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, remote)) => {
                        let name = shared
                            .borrow()
                            .served
                            .get(&key)
                            .map(|s| s.attachment.clone());
                        let Some(name) = name else { continue };
                        match Slot::take(&shared, &name, remote.ip()) {
                            Some(slot) => {
                                tokio::task::spawn_local(conn::serve(
                                    shared.clone(),
                                    name,
                                    tcp,
                                    remote,
                                    slot,
                                ));
                            }
                            None => {
                                drop(tcp);
                                busy(&shared, &name, remote).await;
                            }
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors, most likely: told, and a pause.
                        tracing::warn!("TLS accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    let reader = {
        let shared = shared.clone();
        let key = key.clone();
        let relay = relay.clone();
        tokio::task::spawn_local(async move { read_relay(shared, key, relay).await })
    };
    Ok(Served {
        attachment: String::new(),
        relay,
        tasks: vec![accept, reader],
    })
}

/// The worker's packets for sessions, to their connections (a full or missing connection
/// drops the packet: its client is away or slow).
async fn read_relay(
    shared: Rc<RefCell<Shared>>,
    key: SourceKey,
    relay: Rc<tokio::net::UnixDatagram>,
) {
    let mut buf = vec![0u8; crate::buffer::BUF_SIZE];
    loop {
        if relay.readable().await.is_err() {
            return;
        }
        loop {
            let n = match relay.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("TLS relay: {e}");
                    break;
                }
            };
            let Some(Message::Packet { session }) = Message::parse(&buf[..n]) else {
                continue;
            };
            let mut sh = shared.borrow_mut();
            let Some(name) = sh.served.get(&key).map(|s| s.attachment.clone()) else {
                continue;
            };
            let Some(att) = sh.attachments.get_mut(&name) else {
                continue;
            };
            let sent = att.conns.get(&session).map(|c| {
                let packet = buf[crate::tunnel::tls::relay::PACKET_HEADER..n].to_vec();
                c.out.try_send(packet).is_ok()
            });
            // No connection (it just broke) or a full queue: the packet is lost here.
            if sent != Some(true) {
                att.lose(DropReason::TlsClientQueueFull);
            }
        }
    }
}

/// A connection refused for the limits: counted as `busy`, logged at most every 10 s.
async fn busy(shared: &Rc<RefCell<Shared>>, attachment: &str, remote: std::net::SocketAddr) {
    let (relay, generation, log) = {
        let mut sh = shared.borrow_mut();
        sh.busy_unlogged += 1;
        let log = sh.busy_unlogged == 1;
        let Some(att) = sh.attachments.get(attachment) else {
            return;
        };
        (att.relay.clone(), att.generation, log)
    };
    if log {
        tracing::warn!(
            attachment,
            %remote,
            "TLS connection refused: too many handshakes in progress (limits: {MAX_PENDING} per attachment, {MAX_PENDING_PER_ADDRESS} per address, {MAX_CONNECTIONS} connections); further refusals are counted as busy"
        );
    }
    tell(
        &relay,
        Message::Refused {
            result: crate::vocab::HandshakeResult::Busy,
            peer: None,
            generation,
        },
    )
    .await;
}

/// Ends the sessions whose time is over, and those whose facility or certificate the
/// registry refuses now.
async fn expire(shared: &Rc<RefCell<Shared>>, now: Instant) {
    let mut downs = Vec::new();
    {
        let mut sh = shared.borrow_mut();
        if sh.busy_unlogged > 1 && now >= sh.busy_logged_at + Duration::from_secs(10) {
            tracing::warn!(
                refused = sh.busy_unlogged - 1,
                "TLS connections refused as busy in the last 10 s or so"
            );
        }
        if now >= sh.busy_logged_at + Duration::from_secs(10) {
            sh.busy_unlogged = 0;
            sh.busy_logged_at = now;
        }
        let states = sh.states.load_full();
        for att in sh.attachments.values_mut() {
            if states.generation == att.generation {
                let refused: Vec<u32> = (att.book.sessions())
                    .filter(|s| {
                        let facility = att.facility_of.get(&s.peer);
                        let state = facility.and_then(|f| states.states.get(f.index()));
                        states.refused_peers.contains(&s.peer)
                            || state.is_some_and(|st| !st.allows_traffic())
                    })
                    .map(|s| s.id)
                    .collect();
                for id in refused {
                    if let Some((s, why)) = att.book.end(id, End::Refused) {
                        finish(att, &s, why);
                        downs.push((att.relay.clone(), Message::Down { session: s.id }));
                    }
                }
            }
            for (s, why) in att.book.expire(now) {
                finish(att, &s, why);
                downs.push((att.relay.clone(), Message::Down { session: s.id }));
            }
            for (i, lost) in att.lost.iter_mut().enumerate() {
                let packets = std::mem::take(lost);
                if packets > 0 {
                    let reason = DropReason::ALL[i];
                    downs.push((att.relay.clone(), Message::Lost { reason, packets }));
                }
            }
        }
    }
    for (relay, m) in downs {
        tell(&relay, m).await;
    }
}

/// A session ended: its connection stops, and the log says why.
fn finish(att: &mut Att, s: &Session, why: End) {
    att.announced.remove(&s.id);
    if let Some(c) = att.conns.remove(&s.id) {
        c.stop.notify_one();
    }
    tracing::info!(
        attachment = att.name,
        peer = s.peer,
        address = %s.address,
        "TLS session ended: {}",
        why.as_str()
    );
}

/// Stops every connection (their clients get a DISCONNECT) before the thread ends.
async fn stop(shared: &Rc<RefCell<Shared>>) {
    let mut sh = shared.borrow_mut();
    for att in sh.attachments.values_mut() {
        for (_, c) in att.conns.drain() {
            c.stop.notify_one();
        }
    }
    sh.served.clear();
}

/// Tells the worker `m` (waits for room: news of sessions must not be lost).
async fn tell(relay: &tokio::net::UnixDatagram, m: Message) {
    let mut b = [0u8; 22];
    let n = m.write(&mut b);
    if let Err(e) = relay.send(&b[..n]).await {
        tracing::warn!("cannot tell the worker of a TLS session: {e}");
    }
}

/// The rustls server of an attachment: its certificate, TLS 1.3 (and 1.2 if allowed), and
/// client certificates required, chaining to the `client_ca` bundles. Revocation and the
/// facility binding are judged after the handshake by the facility registry.
fn server_config(tls: &crate::dataplane::TlsPlan) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in &tls.client_roots {
        roots
            .add(c.clone())
            .map_err(|e| format!("client CA: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("client certificate verifier: {e}"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls.config.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let creds = &tls.config.credentials;
    let key = creds.private_key.as_der().clone_key();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.certificates.clone(), key)
        .map_err(|e| format!("server certificate: {e}"))
}
