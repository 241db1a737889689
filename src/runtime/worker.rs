//! A data-path worker: one thread, one current-thread tokio runtime, one [`Gateway`].
//! It waits for any source to become readable, drains up to a batch, hands the batch to the
//! gateway and flushes what the gateway queued, for at most [`IO_LOOP_BOUND`] batches in a
//! row; then control messages get a turn and due timers run, busy sources or not. Every turn
//! beats the worker's [`Heartbeat`], and an idle worker wakes at least every
//! [`BEAT_INTERVAL`], so that `/live` and the systemd watchdog notice a stuck worker.
//!
//! With several workers (`dataplane.workers`), worker `k` holds socket `k` of every
//! WireGuard attachment's reuse-port group and the tunnels of the peers it owns; worker 0
//! also holds every other socket and device. Packets for another worker go through the
//! [`Lanes`], handled between batches like a source of their own.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use super::facilities::FacilityStates;
use super::mmsg::{self, Socket, WhenFull};
use super::tun::{self, TunIo};
use super::udp::{self, UdpIo};

use super::ike::{IkeInput, SaChange};
use super::lanes::Lanes;
use super::{Control, NewSources};
use crate::admin::health::{Heartbeat, BEAT_INTERVAL};
use crate::buffer::{Remote, RxBatch, TxBatch};
use crate::dataplane::{AttachmentPlan, Gateway, Io, IpsecCarry, Plan, TX_RESERVE};
use crate::ids::AttachmentId;
use crate::metrics::{Counters, MetricsHub};
use crate::vocab::DropReason;

/// Packets a batch may hold: enough for two UDP receive calls of GRO datagrams.
const RX_PACKETS: usize = 2 * udp::DATAGRAMS * udp::GRO_SEGMENTS;
/// The batch's arena: two receive calls' worth of room.
const RX_BYTES: usize = 2 * udp::DATAGRAMS * udp::CHUNK;
/// A batch is handed to the data path once it holds this many packets (or nothing more
/// waits).
const RX_TARGET: usize = 256;
/// Packets sent per flush; the data path pauses when it is full and goes on after it.
const TX_BATCH: usize = 256;
/// Batches per wake-up before timers and control messages get a turn...
const IO_LOOP_BOUND: usize = 16;
/// ...or packets, whichever comes first.
const IO_PACKET_BOUND: usize = 4096;
/// Reads per pass from a TUN device (each may return a super-packet's segments), so that one
/// busy device does not starve the other sources. A UDP socket, and the other sockets (raw
/// ESP, packet sockets, the TLS relay: up to [`mmsg::BATCH`] packets), get one batched
/// receive per pass.
const PER_SOURCE: usize = 16;
/// How often the IPsec SAs' usage goes to the IKE thread.
const USAGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Identifies a socket or device across reloads: a UDP listen address (with the attachment
/// name and socket index too when the port is chosen by the kernel) or a TUN device name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceKey {
    Udp(SocketAddr, Option<(String, usize)>),
    Esp(std::net::Ipv4Addr),
    Tun(String),
    Link(String, Option<u16>),
    /// A TLS listener (with the attachment's name when the port is chosen by the kernel).
    Tls(SocketAddr, Option<(String, usize)>),
}

impl SourceKey {
    /// The key of `a`'s `i`-th socket or device.
    pub fn of(a: &AttachmentPlan, i: usize) -> SourceKey {
        match &a.io[i] {
            Io::Udp(listen) => {
                SourceKey::Udp(*listen, (listen.port() == 0).then(|| (a.name.clone(), i)))
            }
            Io::Esp(addr) => SourceKey::Esp(*addr),
            Io::Tun { name, .. } => SourceKey::Tun(name.clone()),
            Io::Link { interface, vlan } => SourceKey::Link(interface.clone(), *vlan),
            Io::Tls(listen) => {
                SourceKey::Tls(*listen, (listen.port() == 0).then(|| (a.name.clone(), i)))
            }
        }
    }

    /// The keys of all of `a`'s sockets and devices, in `io` order.
    pub fn all(a: &AttachmentPlan) -> impl Iterator<Item = SourceKey> + '_ {
        (0..a.io.len()).map(|i| SourceKey::of(a, i))
    }
}

#[derive(Clone)]
enum Source {
    Udp(Arc<UdpIo>),
    /// A raw ESP socket, driven as a UDP socket (see `raw_esp`).
    Esp(Arc<tokio::net::UdpSocket>),
    Tun(Arc<TunIo>),
    /// An Ethernet port's packet socket, driven as a UDP socket (see `link`).
    Link(Arc<tokio::net::UdpSocket>),
    /// The worker's end of a `tls` attachment's socket pair with the TLS thread.
    Relay(Arc<tokio::net::UnixDatagram>),
}

impl Source {
    /// The socket of a source that [`mmsg`] reads and writes in batches.
    fn datagram(&self) -> Option<Socket<'_>> {
        match self {
            Source::Esp(s) => Some(Socket::RawIp(s)),
            Source::Link(s) => Some(Socket::Packet(s)),
            Source::Relay(s) => Some(Socket::Relay(s)),
            Source::Udp(_) | Source::Tun(_) => None,
        }
    }
}

struct Worker {
    /// Which worker this is (its counters' slot in the hub).
    index: usize,
    gateway: Gateway,
    /// The queues to and from the other workers, if there are others.
    lanes: Option<Lanes>,
    /// The IKE thread's queue of IKE datagrams.
    ike: std::sync::mpsc::SyncSender<IkeInput>,
    hub: Arc<MetricsHub>,
    /// Everything open, by key.
    open: HashMap<SourceKey, Source>,
    /// The current plan's sources, by attachment index, then by index in its `io`: none for
    /// what another worker serves.
    sources: Vec<Vec<Option<Source>>>,
    rx: RxBatch,
    tx: TxBatch,
    /// The order `flush` sends `tx` in (by destination), sized once.
    order: Vec<u16>,
    /// A run of packets to one UDP destination, laid end to end for one GSO send.
    gso: Box<[u8]>,
    /// The headers of batched receives from raw ESP, packet and relay sockets.
    receiver: mmsg::Receiver,
    /// When the IPsec SAs' usage is next reported.
    next_usage: Instant,
    /// What the last reload kept of the IPsec attachments: the IKE thread's changes made for
    /// the plan before it, which arrive until the thread has the new plan too, are applied
    /// renumbered (so a CHILD SA rekeyed across a reload is not lost).
    carried: Option<Carried>,
    /// Every facility's certificate state (for one plan generation), and the snapshot last
    /// applied to the running plan.
    facilities: Arc<ArcSwap<FacilityStates>>,
    facilities_seen: Option<Arc<FacilityStates>>,
    heartbeat: Arc<Heartbeat>,
}

/// A reload's sources, registered and checked, before the switch.
pub(super) struct Prepared {
    new: Vec<(SourceKey, Source)>,
    sources: Vec<Vec<Option<Source>>>,
}

/// Lanes emptied per turn before sources, timers and control messages get theirs.
const LANES_PER_TURN: usize = 4;

/// The IPsec attachments a reload kept, from the plan of `generation`.
struct Carried {
    generation: u64,
    /// (new attachment, what it kept of its previous one).
    attachments: Vec<(AttachmentId, IpsecCarry)>,
}

impl Carried {
    /// The change for the running plan, or `None` if it concerns what the reload dropped.
    fn translate(
        &self,
        attachment: AttachmentId,
        change: SaChange,
    ) -> Option<(AttachmentId, SaChange)> {
        let (new, carry) = self
            .attachments
            .iter()
            .find(|(_, c)| c.previous == attachment)?;
        let change =
            change.renumber(|old| carry.peers.iter().find(|(o, _)| *o == old).map(|(_, n)| *n))?;
        Some((*new, change))
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    index: usize,
    lanes: Option<Lanes>,
    gateway: Gateway,
    sources: NewSources,
    hub: Arc<MetricsHub>,
    control: mpsc::Receiver<Control>,
    started: oneshot::Sender<Result<(), String>>,
    ike: std::sync::mpsc::SyncSender<IkeInput>,
    facilities: Arc<ArcSwap<FacilityStates>>,
    heartbeat: Arc<Heartbeat>,
    failed: mpsc::UnboundedSender<usize>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(heartbeat.thread().into())
        .spawn(move || {
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                rt.block_on(async move {
                    let mut w = Worker::new(index, gateway, hub, ike, facilities, heartbeat);
                    w.lanes = lanes;
                    let plan = w.gateway.plan().clone();
                    let ready = Worker::register(sources)
                        .map_err(|e| format!("cannot register a socket or device: {e}"))
                        .and_then(|new| w.adopt(&plan, new));
                    if let Err(e) = ready {
                        w.heartbeat.retire();
                        let _ = started.send(Err(e));
                        return;
                    }
                    w.sync_facilities();
                    w.gateway
                        .set_wall_clock(Instant::now(), super::ike::unix_now());
                    let _ = started.send(Ok(()));
                    w.run(control).await;
                    w.heartbeat.retire();
                })
            }));
            if served.is_err() {
                tracing::error!(
                    worker = index,
                    "a data-path worker panicked (see the message above): ixgw stops so that it restarts whole"
                );
                let _ = failed.send(index);
            }
        })
}

impl Worker {
    /// A worker with no sources yet and its batches sized once.
    fn new(
        index: usize,
        gateway: Gateway,
        hub: Arc<MetricsHub>,
        ike: std::sync::mpsc::SyncSender<IkeInput>,
        facilities: Arc<ArcSwap<FacilityStates>>,
        heartbeat: Arc<Heartbeat>,
    ) -> Worker {
        Worker {
            index,
            gateway,
            lanes: None,
            ike,
            hub,
            open: HashMap::new(),
            sources: Vec::new(),
            rx: RxBatch::with_arena(RX_PACKETS, RX_BYTES),
            tx: TxBatch::new(TX_BATCH),
            order: Vec::with_capacity(TX_BATCH),
            gso: vec![0; udp::GSO_BYTES].into_boxed_slice(),
            receiver: mmsg::Receiver::new(),
            next_usage: Instant::now() + USAGE_INTERVAL,
            carried: None,
            facilities,
            facilities_seen: None,
            heartbeat,
        }
    }

    /// Applies the facility states published for the running plan, if they changed since
    /// last applied: a facility refused loses its traffic before the next packet is
    /// forwarded. One atomic load when nothing changed.
    fn sync_facilities(&mut self) {
        let states = self.facilities.load();
        if self
            .facilities_seen
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &states))
            || states.generation != self.gateway.plan().generation
        {
            return;
        }
        let states = arc_swap::Guard::into_inner(states);
        let now = Instant::now();
        for (i, &state) in states.states.iter().enumerate() {
            self.gateway
                .set_facility_state(now, crate::ids::FacilityId(i as u32), state);
        }
        self.facilities_seen = Some(states);
    }

    /// Registers new sockets and devices with this thread's reactor, all or none: on error
    /// the ones registered so far are closed again.
    fn register(new: NewSources) -> std::io::Result<Vec<(SourceKey, Source)>> {
        let mut out = Vec::with_capacity(
            new.udp.len() + new.tun.len() + new.raw.len() + new.link.len() + new.relay.len(),
        );
        for (k, s) in new.udp {
            out.push((k, Source::Udp(Arc::new(UdpIo::new(s)?))));
        }
        for (k, fd) in new.raw {
            out.push((
                k,
                Source::Esp(Arc::new(tokio::net::UdpSocket::from_std(fd)?)),
            ));
        }
        for (k, s) in new.relay {
            out.push((
                k,
                Source::Relay(Arc::new(tokio::net::UnixDatagram::from_std(s)?)),
            ));
        }
        for (k, fd) in new.link {
            out.push((
                k,
                Source::Link(Arc::new(tokio::net::UdpSocket::from_std(fd)?)),
            ));
        }
        for (k, d) in new.tun {
            out.push((k, Source::Tun(Arc::new(TunIo::new(d)?))));
        }
        Ok(out)
    }

    /// Makes `plan`'s attachments use the open sources and `new`, and closes what `plan`
    /// does not use. Changes nothing unless every attachment this worker serves has a source.
    fn adopt(&mut self, plan: &Plan, new: Vec<(SourceKey, Source)>) -> Result<(), String> {
        let sources = self.resolve(plan, &new)?;
        self.install(plan, Prepared { new, sources });
        Ok(())
    }

    /// The sources of `plan`'s attachments by attachment and `io` index, from `new` or the
    /// open ones; none for a source another worker serves (worker 0 serves all but the
    /// sharded attachments' other workers' sockets).
    fn resolve(
        &self,
        plan: &Plan,
        new: &[(SourceKey, Source)],
    ) -> Result<Vec<Vec<Option<Source>>>, String> {
        plan.attachments
            .iter()
            .map(|a| {
                (0..a.io.len())
                    .map(|i| {
                        if !self.serves(a, i) {
                            return Ok(None);
                        }
                        let key = SourceKey::of(a, i);
                        new.iter()
                            .find(|(k, _)| *k == key)
                            .map(|(_, s)| s)
                            .or_else(|| self.open.get(&key))
                            .cloned()
                            .map(Some)
                            .ok_or_else(|| format!("no socket or device for attachment {}", a.name))
                    })
                    .collect::<Result<Vec<Option<Source>>, String>>()
                    .map_err(|e| match self.index {
                        0 => e,
                        // Kept from an attachment of another type, its socket is no group.
                        k => format!("{e} on worker {k}: an address kept from an attachment of another type is not shared by the workers (restart to change an attachment's type at the same address)"),
                    })
            })
            .collect()
    }

    /// Whether this worker holds `a`'s `io`-th source.
    fn serves(&self, a: &AttachmentPlan, io: usize) -> bool {
        self.index == 0 || a.per_worker(io)
    }

    fn install(&mut self, plan: &Plan, prepared: Prepared) {
        let keep: Vec<SourceKey> = (plan.attachments.iter())
            .flat_map(|a| (0..a.io.len()).map(move |i| (a, i)))
            .filter(|&(a, i)| self.serves(a, i))
            .map(|(a, i)| SourceKey::of(a, i))
            .collect();
        self.open.extend(prepared.new);
        self.open.retain(|k, _| keep.contains(k));
        self.sources = prepared.sources;
    }

    /// Registers the new plan's sockets and devices and finds every source it needs,
    /// changing nothing: dropped, the result closes the new sources again.
    fn prepare(&self, plan: &Plan, new: NewSources) -> Result<Prepared, String> {
        let new = Worker::register(new)
            .map_err(|e| format!("cannot register a new socket or device: {e}"))?;
        let sources = self.resolve(plan, &new)?;
        Ok(Prepared { new, sources })
    }

    /// Switches to `plan` with what [`Worker::prepare`] made ready.
    fn switch(&mut self, plan: Arc<Plan>, prepared: Prepared) {
        self.install(&plan, prepared);
        let previous = self.gateway.plan().clone();
        self.carried = Some(Carried {
            generation: previous.generation,
            attachments: (0..plan.attachments.len())
                .filter_map(|i| {
                    let a = AttachmentId(i as u16);
                    Some((a, plan.ipsec_carry(&previous, a)?))
                })
                .collect(),
        });
        let counters = self.gateway.apply_plan(plan, Instant::now());
        if let Err(e) = self.hub.publish(self.index, counters) {
            tracing::error!("worker: cannot publish counters: {e}");
        }
        // The new plan starts with every facility allowed: its states apply at once.
        self.facilities_seen = None;
        self.sync_facilities();
    }

    /// Registers the new plan's sockets and devices, then switches plans; on any error the
    /// running plan and its sources stay as they were and the new sources are closed.
    #[cfg(test)]
    fn reload(&mut self, plan: Arc<Plan>, new: NewSources) -> Result<(), String> {
        let prepared = self.prepare(&plan, new)?;
        self.switch(plan, prepared);
        Ok(())
    }

    /// Reads and forwards what waits on the sources, at most [`IO_LOOP_BOUND`] batches or
    /// [`IO_PACKET_BOUND`] packets.
    async fn read_sources(&mut self) {
        let mut handled = 0;
        for _ in 0..IO_LOOP_BOUND {
            if handled >= IO_PACKET_BOUND || self.drain() == 0 {
                break;
            }
            handled += self.rx.len();
            self.gateway.counters().received.add(self.rx.len() as u64);
            self.sync_facilities();
            // The data path pauses when `tx` is full; it goes on once sent.
            while !self.rx.pending().is_empty() {
                self.gateway
                    .handle_pending(Instant::now(), &mut self.rx, &mut self.tx);
                self.hand_off();
                self.hand_over_ike();
                self.flush().await;
            }
            self.rx.clear();
        }
    }

    /// Hands the packets the gateway set aside for other workers to their lanes.
    fn hand_off(&mut self) {
        if let Some(lanes) = &mut self.lanes {
            let counters = self.gateway.counters().clone();
            lanes.dispatch(self.gateway.handoffs(), &counters);
        }
    }

    /// Handles what other workers handed to this one, at most [`LANES_PER_TURN`] lanes'
    /// worth (waking itself again if more may wait).
    async fn take_handoffs(&mut self) {
        for _ in 0..LANES_PER_TURN {
            let Some(mut batch) = self.lanes.as_mut().and_then(Lanes::receive) else {
                return;
            };
            self.sync_facilities();
            // The transmit batch is flushed as it fills: a lane may hold more than it.
            let mut at = 0;
            while at < batch.len() {
                let n = (batch.len() - at).min(self.tx.room().saturating_sub(TX_RESERVE));
                if n == 0 {
                    self.flush().await;
                    continue;
                }
                self.gateway
                    .handle_handoffs(Instant::now(), &mut batch, at..at + n, &mut self.tx);
                at += n;
                self.hand_off();
                self.flush().await;
            }
            if let Some(lanes) = &mut self.lanes {
                lanes.give_back(batch);
            }
        }
        if let Some(lanes) = &self.lanes {
            lanes.wake_self();
        }
    }

    /// Serves control messages, readable sources and timers until told to stop. Timers that
    /// are due run after every turn, so a source that never stops being readable delays them
    /// by at most one burst of [`IO_LOOP_BOUND`] batches.
    async fn run(&mut self, mut control: mpsc::Receiver<Control>) {
        loop {
            let now = Instant::now();
            self.heartbeat.beat(now);
            // The wall clock, for agreements' windows (at least once a second: the gateway's
            // timers wake this loop that often).
            self.gateway.set_wall_clock(now, super::ike::unix_now());
            let wake = self.gateway.poll_timeout().min(now + BEAT_INTERVAL);
            let deadline = tokio::time::Instant::from_std(wake);
            tokio::select! {
                biased;
                msg = control.recv() => match msg {
                    Some(Control::Facilities) => self.sync_facilities(),
                    Some(Control::Reload { plan, sources, done, commit }) => {
                        // Every worker prepares, then all switch or none does.
                        match self.prepare(&plan, sources) {
                            Err(e) => {
                                let _ = done.send(Err(e));
                            }
                            Ok(prepared) => {
                                let _ = done.send(Ok(()));
                                if commit.await == Ok(true) {
                                    self.switch(plan, prepared);
                                }
                            }
                        }
                    }
                    Some(Control::Ipsec { generation, attachment, change }) => {
                        // A facility's first SA follows its certificate's acceptance.
                        self.sync_facilities();
                        self.ipsec(generation, attachment, change);
                    }
                    #[cfg(test)]
                    Some(Control::Hang { release }) => {
                        // Blocks the thread, as a worker stuck in a system call would.
                        let _ = release.recv();
                    }
                    #[cfg(test)]
                    Some(Control::Panic) => panic!("worker {}: told to panic", self.index),
                    Some(Control::Stop { done }) => {
                        // The audit trail hears of every flow still open.
                        self.gateway.end_flows(Instant::now());
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                // Either wakes a turn of both: packets handed on by other workers and the
                // sockets' own, each bounded, so that neither starves the other.
                () = notified(self.lanes.as_ref()) => {
                    self.take_handoffs().await;
                    self.read_sources().await;
                }
                () = readable(&self.sources) => {
                    self.read_sources().await;
                    self.take_handoffs().await;
                }
                () = tokio::time::sleep_until(deadline) => {}
            }
            let now = Instant::now();
            if now >= self.gateway.poll_timeout() {
                self.gateway.handle_timeout(now, &mut self.tx);
                self.hand_off();
                self.flush().await;
            }
            if now >= self.next_usage {
                self.next_usage = now + USAGE_INTERVAL;
                self.report_usage();
            }
        }
    }

    /// Applies an SA change of the IKE thread made for the running plan, or for the one
    /// before it if the reload kept that attachment and peer (a change made for an older plan
    /// names attachments and peers by their old numbers).
    fn ipsec(&mut self, generation: u64, attachment: AttachmentId, change: SaChange) {
        let (attachment, change) = if generation == self.gateway.plan().generation {
            (attachment, change)
        } else {
            match self
                .carried
                .as_ref()
                .filter(|c| c.generation == generation)
                .and_then(|c| c.translate(attachment, change))
            {
                Some(translated) => translated,
                None => return,
            }
        };
        let counters = self.gateway.counters().clone();
        match &change {
            SaChange::Established {
                peer,
                new_ike_sa,
                remote,
            } => {
                if let Some(remote) = remote {
                    counters.set_endpoint(peer.index(), *remote);
                }
                counters.peer_handshake(peer.index(), Instant::now());
                counters.set_established(peer.index(), true);
                if *new_ike_sa {
                    counters.handshake(Some(attachment.index()), crate::vocab::HandshakeResult::Ok);
                }
            }
            SaChange::PeerDown { peer } => counters.set_established(peer.index(), false),
            SaChange::Path { peer, to } => counters.set_endpoint(peer.index(), *to),
            SaChange::Clear => {
                let plan = self.gateway.plan();
                for (i, p) in plan.peers.iter().enumerate() {
                    if p.attachment == attachment {
                        counters.set_established(i, false);
                    }
                }
            }
            _ => {}
        }
        if let Some(t) = self
            .gateway
            .tunnel_mut(attachment)
            .and_then(crate::tunnel::Tunnel::ipsec_mut)
        {
            change.apply(t);
        }
    }

    /// Tells the IKE thread what the IPsec SAs carried (rekeys by volume, signs of life).
    fn report_usage(&mut self) {
        let generation = self.gateway.plan().generation;
        for (attachment, sas) in self.gateway.ipsec_usage() {
            let usage = IkeInput::Usage {
                generation,
                attachment,
                sas,
            };
            // A full queue skips this report; the next one carries the totals.
            super::ike::offer(&self.ike, usage);
        }
    }

    /// Hands the IKE datagrams the batch set aside, and the peers whose ESP came from a new
    /// address, to the IKE thread.
    fn hand_over_ike(&mut self) {
        let generation = self.gateway.plan().generation;
        let ike = &self.ike;
        // IKE datagrams first: one the peer sent from its old address before the ESP that
        // showed its new one must not reach the IKE thread after the roam and move it back.
        self.gateway.drain_ike(|attachment, d| {
            super::ike::offer(
                ike,
                IkeInput::Datagram {
                    generation,
                    attachment,
                    io: d.io,
                    from: d.from,
                    data: d.data().to_vec(),
                },
            )
        });
        self.gateway.drain_roamed(|attachment, peer, to| {
            let roamed = IkeInput::Roamed {
                generation,
                attachment,
                peer,
                to,
            };
            // A full queue loses only the IKE SA's move: the peer's IKE follows at its
            // next message, and its ESP already goes to the new address.
            if !super::ike::offer(ike, roamed) {
                tracing::debug!(?peer, %to, "IKE queue full: roam not reported");
            }
        });
    }

    /// Counts what a read of `attachment` refused as too large for the packet buffers.
    fn count_oversized(&self, attachment: AttachmentId, refused: usize) {
        if refused > 0 {
            let tenant = self.gateway.plan().attachments[attachment.index()].tenant;
            (self.gateway.counters()).drops_add(
                Some(tenant.index()),
                DropReason::Oversized,
                refused as u64,
            );
        }
    }

    /// Reads what is waiting until the batch holds [`RX_TARGET`] packets or nothing more
    /// waits, every source in turn: a TUN device up to [`PER_SOURCE`] reads per pass, every
    /// other source one batched receive. Returns how many packets the batch holds.
    fn drain(&mut self) -> usize {
        let mut progress = true;
        while progress && self.rx.len() < RX_TARGET {
            progress = false;
            let all = self.sources.iter().enumerate().flat_map(|(a, io)| {
                (io.iter().enumerate()).filter_map(move |(i, s)| Some((a, i, s.as_ref()?)))
            });
            for (a, io, src) in all {
                let attachment = AttachmentId(a as u16);
                if let Source::Udp(u) = src {
                    match u.try_recv(&mut self.rx, attachment, io as u8) {
                        Ok((taken, refused)) => {
                            progress |= taken + refused > 0;
                            self.count_oversized(attachment, refused);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => tracing::debug!(attachment = a, io, "receive error: {e}"),
                    }
                    continue;
                }
                if let Source::Tun(t) = src {
                    for _ in 0..PER_SOURCE {
                        match t.try_recv(&mut self.rx, attachment, io as u8) {
                            Ok((0, 0)) => return self.rx.len(),
                            Ok((_, refused)) => {
                                progress = true;
                                self.count_oversized(attachment, refused);
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => {
                                tracing::debug!(attachment = a, io, "receive error: {e}");
                                break;
                            }
                        }
                        if self.rx.len() >= RX_TARGET {
                            break;
                        }
                    }
                    continue;
                }
                let Some(socket) = src.datagram() else {
                    continue;
                };
                match self
                    .receiver
                    .try_recv(socket, &mut self.rx, attachment, io as u8)
                {
                    Ok((0, 0)) => return self.rx.len(),
                    Ok((_, refused)) => {
                        progress = true;
                        self.count_oversized(attachment, refused);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => tracing::debug!(attachment = a, io, "receive error: {e}"),
                }
            }
        }
        self.rx.len()
    }

    /// Sends everything queued, waiting for socket space when the kernel pushes back. The
    /// packets go out grouped by destination, each destination's in the order queued; a
    /// run of equally long packets to one UDP destination leaves in one GSO send, a TUN
    /// device's packets in one batched send (`TunIo::send`), the packets of one raw ESP,
    /// packet or relay socket in batched sends ([`send_datagrams`]).
    async fn flush(&mut self) {
        let counters: Arc<Counters> = self.gateway.counters().clone();
        let tx = &self.tx;
        let n = tx.len();
        self.order.clear();
        self.order.extend(0..n as u16);
        let key = |i: u16| {
            let (m, _) = tx.get(usize::from(i));
            (m.attachment, m.via.io, m.via.remote, i)
        };
        self.order.sort_unstable_by_key(|&i| key(i));
        let mut k = 0;
        while k < n {
            let (meta, pkt) = tx.get(usize::from(self.order[k]));
            let src = self
                .sources
                .get(meta.attachment.index())
                .and_then(|io| io.get(usize::from(meta.via.io)))
                .and_then(Option::as_ref);
            let Some(src) = src else {
                Counters::drop(&counters, DropReason::SendFailed);
                k += 1;
                continue;
            };
            if let Some(socket) = src.datagram().filter(|s| s.suits(meta.via.remote)) {
                let packets = socket_run(tx, &self.order[k..], socket);
                let run = &self.order[k..k + packets];
                send_datagrams(socket, tx, run, meta.attachment, &counters).await;
                k += packets;
                continue;
            }
            let mut packets = 1;
            let sent = match (src, meta.via.remote) {
                (Source::Udp(u), Remote::Udp(to)) => {
                    packets = gso_run(tx, &self.order[k..], u.max_segments());
                    let (contents, segment) = if packets == 1 {
                        (pkt, None)
                    } else {
                        let mut at = 0;
                        for &i in &self.order[k..k + packets] {
                            let (_, p) = tx.get(usize::from(i));
                            self.gso[at..at + p.len()].copy_from_slice(p);
                            at += p.len();
                        }
                        (&self.gso[..at], Some(pkt.len()))
                    };
                    loop {
                        match u.try_send(to, contents, segment) {
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                if u.writable().await.is_err() {
                                    break Err(e);
                                }
                            }
                            other => break other,
                        }
                    }
                }
                // The device's packets of this flush, in order, in one batched send.
                (Source::Tun(t), Remote::Device) => {
                    let mut run: [&[u8]; tun::MAX_PACKETS] = [&[]; tun::MAX_PACKETS];
                    packets = 0;
                    for (slot, &i) in run.iter_mut().zip(&self.order[k..]) {
                        let (m, p) = tx.get(usize::from(i));
                        if (m.attachment, m.via) != (meta.attachment, meta.via) {
                            break;
                        }
                        *slot = p;
                        packets += 1;
                    }
                    if let Err(e) = t.send(&run[..packets]).await {
                        tracing::debug!(
                            attachment = meta.attachment.0,
                            packets,
                            "send failed: {}",
                            e.error
                        );
                        counters.drops_add(None, DropReason::SendFailed, e.failed as u64);
                    }
                    Ok(())
                }
                _ => Err(std::io::Error::other(
                    "the packet's far end does not suit the socket or device",
                )),
            };
            if let Err(e) = sent {
                tracing::debug!(attachment = meta.attachment.0, packets, "send failed: {e}");
                counters.drops_add(None, DropReason::SendFailed, packets as u64);
            }
            k += packets;
        }
        self.tx.clear();
    }
}

/// How many of the packets of `tx` at the start of `order` leave in one GSO send: the first
/// and those after it to the same destination and of the same length, the last one maybe
/// shorter, at most `max` and [`udp::GSO_BYTES`] in all.
fn gso_run(tx: &TxBatch, order: &[u16], max: usize) -> usize {
    let Some(&first) = order.first() else {
        return 0;
    };
    let (meta, pkt) = tx.get(usize::from(first));
    let mut bytes = pkt.len();
    let mut packets = 1;
    for &i in &order[1..] {
        let (m, p) = tx.get(usize::from(i));
        if packets == max
            || (m.attachment, m.via) != (meta.attachment, meta.via)
            || p.len() > pkt.len()
            || bytes + p.len() > udp::GSO_BYTES
        {
            break;
        }
        packets += 1;
        bytes += p.len();
        if p.len() < pkt.len() {
            break;
        }
    }
    packets
}

/// How many of the packets of `tx` at the start of `order` leave on `socket` together: the
/// first and those after it on the same attachment's socket with a far end it suits.
fn socket_run(tx: &TxBatch, order: &[u16], socket: Socket<'_>) -> usize {
    let Some(&first) = order.first() else {
        return 0;
    };
    let (meta, _) = tx.get(usize::from(first));
    order
        .iter()
        .take_while(|&&i| {
            let (m, _) = tx.get(usize::from(i));
            (m.attachment, m.via.io) == (meta.attachment, meta.via.io) && socket.suits(m.via.remote)
        })
        .count()
}

/// Sends the packets of `tx` in `run` on `socket`, `attachment`'s, in batched sends and
/// counts what did not leave. The TLS relay is never waited for: what finds it full is dropped, so that the TLS
/// clients' load cannot slow every other tenant's forwarding.
async fn send_datagrams(
    socket: Socket<'_>,
    tx: &TxBatch,
    run: &[u16],
    attachment: AttachmentId,
    counters: &Counters,
) {
    let packets = run.iter().map(|&i| {
        let (m, p) = tx.get(usize::from(i));
        (p, m.via.remote)
    });
    let when_full = match socket {
        Socket::Relay(_) => WhenFull::Drop,
        Socket::RawIp(_) | Socket::Packet(_) => WhenFull::Wait,
    };
    let sent = mmsg::send(socket, packets, when_full).await;
    if let Some(e) = &sent.error {
        tracing::debug!(
            attachment = attachment.0,
            packets = run.len(),
            "send failed: {e}"
        );
    }
    counters.drops_add(None, DropReason::TlsRelayFull, sent.full as u64);
    counters.drops_add(None, DropReason::SendFailed, sent.failed as u64);
}

/// Resolves when another worker handed this one packets; never without lanes.
async fn notified(lanes: Option<&Lanes>) {
    match lanes {
        Some(l) => l.notified().await,
        None => std::future::pending().await,
    }
}

/// Resolves when any source is readable (or has an error to report).
async fn readable(sources: &[Vec<Option<Source>>]) {
    poll_fn(|cx| {
        for s in sources.iter().flatten().flatten() {
            let ready = match s {
                Source::Udp(u) => u.poll_recv_ready(cx).is_ready(),
                Source::Esp(r) | Source::Link(r) => r.poll_recv_ready(cx).is_ready(),
                Source::Relay(r) => r.poll_recv_ready(cx).is_ready(),
                Source::Tun(d) => d.poll_recv_ready(cx).is_ready(),
            };
            if ready {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::OwnedFd;

    use super::*;
    use crate::buffer::Via;
    use crate::runtime::tests::{config, wg};

    /// A change the IKE thread made for the plan before a reload (it had not seen the new
    /// one yet) is applied renumbered when the reload kept its attachment and peer, and
    /// dropped otherwise.
    #[test]
    fn changes_made_for_the_previous_plan_are_renumbered_or_dropped() {
        use crate::ids::PeerId;
        let carried = Carried {
            generation: 1,
            attachments: vec![(
                AttachmentId(0),
                IpsecCarry {
                    previous: AttachmentId(1),
                    peers: vec![(PeerId(0), PeerId(3))],
                },
            )],
        };
        let activate = |peer| SaChange::Activate {
            peer,
            inbound_spi: 0x1234,
        };
        match carried.translate(AttachmentId(1), activate(PeerId(0))) {
            Some((AttachmentId(0), SaChange::Activate { peer, inbound_spi })) => {
                assert_eq!((peer, inbound_spi), (PeerId(3), 0x1234));
            }
            _ => panic!("renumbered"),
        }
        assert!(carried
            .translate(AttachmentId(1), activate(PeerId(1)))
            .is_none());
        assert!(carried
            .translate(AttachmentId(0), activate(PeerId(0)))
            .is_none());
        assert!(carried
            .translate(AttachmentId(1), SaChange::Clear)
            .is_none());
        assert!(matches!(
            carried.translate(AttachmentId(1), SaChange::Remove { inbound_spi: 9 }),
            Some((AttachmentId(0), SaChange::Remove { inbound_spi: 9 }))
        ));
    }

    /// Runs for GSO: same destination and length, a shorter last packet ends a run, a
    /// longer one starts the next; the segment limit and the byte limit hold.
    #[test]
    fn gso_runs_group_equal_packets_to_one_destination() {
        let to = |p| Via::udp(0, SocketAddr::from(([192, 0, 2, 1], p)));
        let mut tx = TxBatch::new(TX_BATCH);
        let mut queue = |via: Via, len: usize| {
            tx.next_buf().expect("room");
            tx.commit(AttachmentId(0), via, len);
        };
        for len in [1000, 1000, 1000, 400, 1000, 1000] {
            queue(to(1), len);
        }
        queue(to(2), 1000);
        queue(to(1), 1200);
        let order: Vec<u16> = (0..tx.len() as u16).collect();
        let runs = |max: usize| {
            let mut out = vec![];
            let mut k = 0;
            while k < order.len() {
                let n = gso_run(&tx, &order[k..], max);
                out.push(n);
                k += n;
            }
            out
        };
        assert_eq!(runs(64), [4, 2, 1, 1]);
        assert_eq!(runs(2), [2, 2, 2, 1, 1]);
        assert_eq!(runs(1), [1; 8]);

        let mut big = TxBatch::new(TX_BATCH);
        for _ in 0..60 {
            big.next_buf().expect("room");
            big.commit(AttachmentId(0), to(1), 1452);
        }
        let order: Vec<u16> = (0..60).collect();
        let n = gso_run(&big, &order, 64);
        assert_eq!(n, udp::GSO_BYTES / 1452);
        assert!(n * 1452 <= udp::GSO_BYTES);
    }

    fn plan(names: &[&str], generation: u64) -> Arc<Plan> {
        let listen = "127.0.0.1:0".parse().expect("test address");
        let attachments = names.iter().map(|n| wg(n, listen, vec![])).collect();
        Arc::new(Plan::compile(&config(attachments), generation))
    }

    /// A relay's packets leave together, up to the first that is not the relay's; what finds
    /// the relay full is counted as `tls_relay_full`, per packet, and never waited for.
    #[tokio::test]
    async fn a_relay_run_leaves_in_batches_and_what_finds_it_full_is_counted() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        rustix::net::sockopt::set_socket_send_buffer_size(&a, 4096).expect("SO_SNDBUF");
        let relay = tokio::net::UnixDatagram::from_std(a).expect("registered");
        relay.writable().await.expect("writable");
        let mut tx = TxBatch::new(TX_BATCH);
        let mut queue = |attachment, via, k: u8| {
            tx.next_buf().expect("room")[..1000].fill(k);
            tx.commit(AttachmentId(attachment), via, 1000);
        };
        for k in 0..200 {
            queue(0, Via::DEVICE, k);
        }
        queue(0, Via::udp(0, SocketAddr::from(([192, 0, 2, 1], 9))), 0);
        queue(1, Via::DEVICE, 0);
        let order: Vec<u16> = (0..tx.len() as u16).collect();
        let socket = Socket::Relay(&relay);
        assert_eq!(socket_run(&tx, &order, socket), 200);
        assert_eq!(socket_run(&tx, &order[200..], socket), 0);
        assert_eq!(socket_run(&tx, &order[201..], socket), 1);

        let gateway = Gateway::new(plan(&["a"], 1), Instant::now());
        let counters = gateway.counters();
        send_datagrams(socket, &tx, &order[..200], AttachmentId(0), counters).await;
        let mut got = vec![];
        let mut buf = [0u8; 2048];
        while let Ok(n) = b.recv(&mut buf) {
            assert!(n == 1000 && buf[..n].iter().all(|&x| x == got.len() as u8));
            got.push(n);
        }
        assert!(!got.is_empty() && got.len() < 200, "{} sent", got.len());
        let full = counters.drop_count(DropReason::TlsRelayFull);
        assert_eq!(full as usize, 200 - got.len());
        assert_eq!(counters.drop_count(DropReason::SendFailed), 0);
    }

    fn key(plan: &Plan, name: &str) -> SourceKey {
        let a = plan.attachments.iter().find(|a| a.name == name);
        SourceKey::of(a.expect("attachment in plan"), 0)
    }

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        s
    }

    /// A "socket" the reactor refuses: a regular file cannot be polled.
    fn unpollable() -> UdpSocket {
        let f = std::fs::File::open(std::env::current_exe().expect("test binary"))
            .expect("open test binary");
        let s = UdpSocket::from(OwnedFd::from(f));
        s.set_nonblocking(true).expect("nonblocking");
        s
    }

    fn worker(plan: Arc<Plan>, sources: NewSources) -> Worker {
        let gateway = Gateway::new(plan.clone(), Instant::now());
        let hub = Arc::new(MetricsHub::new([gateway.counters().clone()]));
        let mut w = Worker::new(
            0,
            gateway,
            hub,
            std::sync::mpsc::sync_channel(1).0,
            Default::default(),
            Arc::new(Heartbeat::new("ixgw-worker", Instant::now())),
        );
        let new = Worker::register(sources).expect("register");
        w.adopt(&plan, new).expect("adopt");
        w
    }

    #[tokio::test]
    async fn a_failed_registration_keeps_nothing_of_the_reload() {
        let first = plan(&["a"], 1);
        let mut w = worker(
            first.clone(),
            NewSources {
                udp: vec![(key(&first, "a"), socket())],
                tun: vec![],
                raw: vec![],
                link: vec![],
                relay: vec![],
                tls: vec![],
            },
        );
        let next = plan(&["a", "b", "c"], 2);
        let good = socket();
        let good_addr = good.local_addr().expect("address");
        let result = w.reload(
            next.clone(),
            NewSources {
                udp: vec![(key(&next, "b"), good), (key(&next, "c"), unpollable())],
                tun: vec![],
                raw: vec![],
                link: vec![],
                relay: vec![],
                tls: vec![],
            },
        );

        assert!(result.is_err(), "the reload must fail");
        assert_eq!(w.gateway.plan().generation, 1);
        assert_eq!(w.sources.len(), 1);
        assert_eq!(w.open.keys().collect::<Vec<_>>(), [&key(&first, "a")]);
        // The socket registered before the failure is closed, its port free again.
        UdpSocket::bind(good_addr).expect("the new socket of the failed reload is closed");

        let again = socket();
        let result = w.reload(
            next.clone(),
            NewSources {
                udp: vec![(key(&next, "b"), again), (key(&next, "c"), socket())],
                tun: vec![],
                raw: vec![],
                link: vec![],
                relay: vec![],
                tls: vec![],
            },
        );
        assert_eq!(result, Ok(()));
        assert_eq!(w.gateway.plan().generation, 2);
        assert_eq!(w.sources.len(), 3);
        assert_eq!(w.open.len(), 3);
    }
}
