//! The gateway state machine: one worker's tunnels, flow table and counters, driven by
//! batches of received packets and by timers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flow_event::{FlowEnd, FlowEvent, FlowPhase, FlowSink, PeerEvent, PeerEventKind};
use super::plan::{Plan, Route};
use crate::buffer::{HandoffBatch, HandoffKind, RxBatch, RxMeta, TxBatch};
use crate::facility::{FacilityState, FacilityTable};
use crate::ids::{
    AttachmentId, ExchangeV4, FacilityCode, FacilityId, InternalV4, PeerId, TenantId,
};
use crate::nat;
use crate::policy::flows::{
    Flow, FlowTable, Generation, Generations, Lookup, Owner, Refused, Signal, Start, Timeouts,
    Tuple,
};
use crate::policy::Activity;
use crate::policy::Query;
use crate::tunnel::Shard;
use crate::tunnel::{Event, Tunnel};
use crate::vocab::{Counters, DropReason, HandshakeResult};
use crate::wire::{self, Summary, L4, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Dead flows removed per sweep: dead entries still count against their owner's quota.
const SWEEP_BUDGET: usize = 16_384;
/// Room in the transmit batch below which [`Gateway::handle_pending`] pauses: one received
/// packet queues at most a few (a handshake answer, a packet waiting for it), so a pause
/// loses nothing.
pub const TX_RESERVE: usize = 8;
/// IPv4 + TCP headers without options: MSS = MTU - 40.
const TCP_IP_HEADERS: u16 = 40;

/// One worker's data path.
pub struct Gateway {
    core: Core,
    /// Decrypted inner packets land here.
    scratch: Box<[u8]>,
}

struct Core {
    plan: Arc<Plan>,
    tunnels: Vec<Tunnel>,
    flows: FlowTable,
    facilities: FacilityTable,
    /// Which rules (agreements' windows) are in force now.
    activity: Activity,
    /// The wall clock: an instant and its UNIX second, set by the runtime
    /// ([`Gateway::set_wall_clock`]); `None` until then (windowed agreements grant nothing).
    wall: Option<(Instant, u64)>,
    /// Bumped by every plan change and every window opening or closing: cached verdicts of
    /// an older epoch are asked again.
    epoch: u64,
    /// Where flow starts and ends go (the audit trail), if anywhere.
    flow_sink: Option<Arc<dyn FlowSink>>,
    /// The sink wants flow records ([`FlowSink::wants_flows`]): only then are they made.
    flow_records: bool,
    counters: Arc<Counters>,
    next_sweep: Instant,
    icmp_budget: IcmpBudget,
    /// Which worker this is, of how many ([`Gateway::set_shard`]).
    shard: Shard,
    /// Packets for other workers, taken by the runtime after each batch.
    handoffs: HandoffBatch,
    /// The previous plan's attachments and peers in this one, for packets other workers
    /// handed on before they switched too.
    renumbering: Renumbering,
}

/// The attachments and peers of the plan of `generation` by their numbers in the running
/// plan (`None`: gone), matched by name.
#[derive(Default)]
struct Renumbering {
    generation: u64,
    attachments: Vec<Option<AttachmentId>>,
    peers: Vec<Option<PeerId>>,
}

impl Renumbering {
    fn new(old: &Plan, new: &Plan) -> Renumbering {
        let by_name: std::collections::HashMap<&str, AttachmentId> = (new.attachments.iter())
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), AttachmentId(i as u16)))
            .collect();
        let attachments: Vec<Option<AttachmentId>> = (old.attachments.iter())
            .map(|o| by_name.get(o.name.as_str()).copied())
            .collect();
        let by_name: std::collections::HashMap<(AttachmentId, &str), PeerId> = (new.peers.iter())
            .enumerate()
            .map(|(i, p)| ((p.attachment, p.name.as_str()), PeerId(i as u32)))
            .collect();
        let peers = (old.peers.iter())
            .map(|o| {
                let a = attachments[o.attachment.index()]?;
                by_name.get(&(a, o.name.as_str())).copied()
            })
            .collect();
        Renumbering {
            generation: old.generation,
            attachments,
            peers,
        }
    }

    /// `kind` of the previous plan in the running one, if what it names is still there.
    fn kind(&self, kind: HandoffKind) -> Option<HandoffKind> {
        let attachment = |a: AttachmentId| self.attachments.get(a.index()).copied().flatten();
        let peer = |p: Option<PeerId>| match p {
            Some(p) => self.peers.get(p.index()).copied().flatten().map(Some),
            None => Some(None),
        };
        Some(match kind {
            HandoffKind::Forward {
                attachment: a,
                peer: p,
            } => HandoffKind::Forward {
                attachment: attachment(a)?,
                peer: peer(p)?,
            },
            HandoffKind::Encap {
                attachment: a,
                peer: p,
            } => HandoffKind::Encap {
                attachment: attachment(a)?,
                peer: peer(p)?,
            },
            HandoffKind::Datagram {
                attachment: a,
                from,
            } => HandoffKind::Datagram {
                attachment: attachment(a)?,
                from,
            },
        })
    }
}

/// Packets a worker may hand to others per batch before it drops them
/// (`worker_queue_full`).
pub const HANDOFFS: usize = 256;

/// What one IPsec SA protected so far: its peer, its SPI and the bytes.
pub type SaUsage = (PeerId, u32, u64);

/// Counts what a tunnel reported: the pipeline's half of [`Event`].
pub fn count_event(counters: &Counters, of: Option<(AttachmentId, TenantId)>, event: Event) {
    let a = of.map(|(a, _)| a.index());
    let tenant = of.map(|(_, t)| t.index());
    match event {
        Event::Handshake(result) | Event::HandshakeFailed { result, .. } => {
            counters.handshake(a, result)
        }
        Event::HandshakeDone { peer, at } => {
            counters.handshake(a, HandshakeResult::Ok);
            counters.peer_handshake(peer.index(), at);
        }
        Event::Dropped { reason, packets } => counters.drops_add(tenant, reason, packets),
        Event::Endpoint { peer, to, .. } => counters.set_endpoint(peer.index(), to),
        Event::Established { peer, up } => counters.set_established(peer.index(), up),
        Event::Arp(c) => {
            if let Some(a) = a {
                counters.count_arp(a, c);
            }
        }
    }
}

impl Gateway {
    /// A gateway for `plan`; `now` also anchors the counters' handshake times.
    pub fn new(plan: Arc<Plan>, now: Instant) -> Self {
        Gateway::for_worker(plan, now, Shard::ALL)
    }

    /// The gateway of worker `shard.index` of `shard.count` (see [`Gateway::set_shard`]):
    /// it makes the WireGuard tunnels of its own peers only, and holds only its own IPsec
    /// peers' SAs.
    pub fn for_worker(plan: Arc<Plan>, now: Instant, shard: Shard) -> Self {
        let counters = Arc::new(Counters::new(now, plan.counter_names()));
        let tunnels = (0..plan.attachments.len())
            .map(|i| {
                let id = AttachmentId(i as u16);
                Tunnel::new(id, &plan.tunnel_config(id, None), now, shard)
            })
            .collect();
        let mut flows = FlowTable::new(plan.limits.flow_table_size, Timeouts::from(&plan.limits));
        flows.set_quotas(plan.flow_quotas());
        flows.reown(plan.tenants.len(), plan.facilities.len(), |_| None);
        let facilities = FacilityTable::new(plan.facilities.len());
        let activity = plan.policy.activity_unknown();
        Gateway {
            core: Core {
                plan,
                tunnels,
                flows,
                facilities,
                activity,
                wall: None,
                epoch: 1,
                flow_sink: None,
                flow_records: false,
                counters,
                next_sweep: now + SWEEP_INTERVAL,
                icmp_budget: IcmpBudget::new(now),
                shard,
                handoffs: HandoffBatch::new(HANDOFFS),
                renumbering: Renumbering::default(),
            },
            scratch: vec![0; crate::buffer::BUF_SIZE].into_boxed_slice(),
        }
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.core.plan
    }

    /// The counters table the scraper should read (it changes on [`Gateway::apply_plan`]).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.core.counters
    }

    /// Makes this the data path of worker `shard.index` of `shard.count`: WireGuard peers are
    /// sharded by slot, IPsec peers by home key, a flow is admitted on its home worker (the
    /// same for both directions) and encapsulated by the worker owning its egress, other
    /// packets are handed on ([`Gateway::handoffs`]). Worker 0 serves every attachment that
    /// is not sharded.
    pub fn set_shard(&mut self, shard: Shard) {
        self.core.shard = shard;
        for t in &mut self.core.tunnels {
            t.set_shard(shard);
        }
    }

    /// The packets handed to other workers since the runtime last cleared them.
    pub fn handoffs(&mut self) -> &mut HandoffBatch {
        &mut self.core.handoffs
    }

    /// Processes the packets `range` of what other workers handed to this one (the caller
    /// keeps `tx` from filling up: each packet may queue one, or a few behind a handshake).
    pub fn handle_handoffs(
        &mut self,
        now: Instant,
        batch: &mut HandoffBatch,
        range: std::ops::Range<usize>,
        tx: &mut TxBatch,
    ) {
        for i in range {
            let (m, data) = batch.get_mut(i);
            let core = &mut self.core;
            // Handed on under the previous plan (the other worker switched first, or it was
            // on its way while this one switched): renumbered if what it names is kept.
            let kind = if m.generation == core.plan.generation {
                Some(m.kind)
            } else if m.generation == core.renumbering.generation {
                core.renumbering.kind(m.kind)
            } else {
                None
            };
            let Some(kind) = kind else {
                core.counters.drop_in(None, DropReason::HandoffStale);
                continue;
            };
            match kind {
                HandoffKind::Forward { attachment, peer } => {
                    if let Err(reason) = core.forward(now, attachment, peer, data, tx, false) {
                        let tenant = core.plan.attachments.get(attachment.index());
                        core.counters
                            .drop_in(tenant.map(|a| a.tenant.index()), reason);
                        if let Some(p) = peer {
                            core.counters.peer_drop(p.index());
                        }
                    }
                }
                HandoffKind::Encap { attachment, peer } => {
                    let mark = tx.len();
                    let len = data.len();
                    let sent = match core.tunnels.get_mut(attachment.index()) {
                        Some(t) => t.encapsulate(now, attachment, peer, data, tx),
                        None => Err(DropReason::NoRoute),
                    };
                    match (sent, peer) {
                        (Ok(()), Some(p)) => {
                            core.counters.peer(p.index()).tx(len);
                            core.counters.peer_wire_tx(p.index(), tx.bytes_from(mark));
                        }
                        (Ok(()), None) => {}
                        (Err(reason), _) => {
                            let tenant = core.plan.attachments.get(attachment.index());
                            core.counters
                                .drop_in(tenant.map(|a| a.tenant.index()), reason);
                        }
                    }
                }
                HandoffKind::Datagram { attachment, from } => {
                    let taken = match core.tunnels.get_mut(attachment.index()) {
                        Some(t) => t.take_handed_initiation(now, from, data),
                        None => Err(DropReason::NoRoute),
                    };
                    if let Err(reason) = taken {
                        let tenant = core.plan.attachments.get(attachment.index());
                        core.counters
                            .drop_in(tenant.map(|a| a.tenant.index()), reason);
                    }
                }
            }
        }
        self.finish_batch(now, tx);
    }

    pub fn flow_count(&self) -> usize {
        self.core.flows.len()
    }

    /// An attachment's tunnel (for inspection and tests).
    pub fn tunnel(&self, id: AttachmentId) -> Option<&Tunnel> {
        self.core.tunnels.get(id.index())
    }

    /// Hands every IKE datagram the IPsec attachments set aside to `take` (which returns
    /// `false` when it has no room: the datagram is dropped as `ike_queue_full`), and reuses
    /// their buffers.
    pub fn drain_ike(
        &mut self,
        mut take: impl FnMut(AttachmentId, &crate::tunnel::ipsec::IkeDatagram) -> bool,
    ) {
        for (i, t) in self.core.tunnels.iter_mut().enumerate() {
            let Some(t) = t.ipsec_mut() else { continue };
            let tenant = self.core.plan.attachments.get(i).map(|a| a.tenant.index());
            while let Some(d) = t.take_ike() {
                if !take(AttachmentId(i as u16), &d) {
                    let counters = &self.core.counters;
                    counters.drop_in(tenant, DropReason::IkeQueueFull);
                }
                t.recycle(d);
            }
        }
    }

    /// Hands every IPsec peer whose ESP came from a new address, and that address, to
    /// `take`.
    pub fn drain_roamed(&mut self, mut take: impl FnMut(AttachmentId, PeerId, SocketAddr)) {
        for (i, t) in self.core.tunnels.iter_mut().enumerate() {
            let Some(t) = t.ipsec_mut() else { continue };
            while let Some((peer, to)) = t.take_roamed() {
                take(AttachmentId(i as u16), peer, to);
            }
        }
    }

    /// The IPsec SAs' usage, by attachment.
    pub fn ipsec_usage(&self) -> Vec<(AttachmentId, Vec<SaUsage>)> {
        self.core
            .tunnels
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                Tunnel::Ipsec(t) => Some((AttachmentId(i as u16), t.usage().collect())),
                _ => None,
            })
            .filter(|(_, u): &(AttachmentId, Vec<SaUsage>)| !u.is_empty())
            .collect()
    }

    /// An attachment's tunnel, to install what its control plane negotiated (IPsec SAs).
    pub fn tunnel_mut(&mut self, id: AttachmentId) -> Option<&mut Tunnel> {
        self.core.tunnels.get_mut(id.index())
    }

    /// Sets a facility's state (numbered as in the running plan). Only that facility's cached
    /// verdicts are asked again, on their next packet; its peers' tunnels admit or refuse
    /// them (a refused WireGuard peer's handshakes are refused and its sessions end). Returns
    /// whether the state changed.
    pub fn set_facility_state(
        &mut self,
        now: Instant,
        facility: FacilityId,
        state: FacilityState,
    ) -> bool {
        let core = &mut self.core;
        if !core.facilities.set_state(facility, state) {
            return false;
        }
        let admitted = state.allows_traffic();
        let plan = Arc::clone(&core.plan);
        for &peer in plan
            .facility_peers
            .get(facility.index())
            .into_iter()
            .flatten()
        {
            let p = &plan.peers[peer.index()];
            let lost = core.tunnels[p.attachment.index()].set_peer_admitted(peer, admitted, now);
            let tenant = Some(p.tenant.index());
            core.counters
                .drops_add(tenant, DropReason::Certificate, lost as u64);
        }
        true
    }

    /// Sends every flow's start and end to `sink` from now on (flows already open report
    /// their end only).
    pub fn set_flow_sink(&mut self, sink: Arc<dyn FlowSink>) {
        if sink.wants_flows() {
            self.core.flows.record_removals();
            self.core.flow_records = true;
        }
        self.core.flow_sink = Some(sink);
    }

    /// Reports every open flow as ended (the gateway stops).
    pub fn end_flows(&mut self, now: Instant) {
        let core = &mut self.core;
        core.report_removed(now);
        let Some(sink) = core.records_sink() else {
            return;
        };
        let plan = Arc::clone(&core.plan);
        core.flows
            .each_flow(crate::policy::flows::Removal::Removed, |r| {
                if let Some(e) = end_event(&plan, r, FlowEnd::Shutdown) {
                    sink.flow(e);
                }
            });
    }

    /// Tells the data path what UNIX second `now` is (the runtime does so every turn). When
    /// an agreement's window opened or closed since the last call, the rules in force change
    /// and every cached verdict is asked again on its next packet: flows an agreement granted
    /// stop when its window closes. Returns whether the rules in force changed.
    pub fn set_wall_clock(&mut self, now: Instant, unix: u64) -> bool {
        let core = &mut self.core;
        core.wall = Some((now, unix));
        if core.activity.next_change.is_none_or(|t| unix < t) {
            return false;
        }
        let activity = core.plan.policy.activity_at(unix);
        let changed = !activity.same_rules(&core.activity);
        core.activity = activity;
        if changed {
            core.epoch += 1;
        }
        changed
    }

    /// The state of `facility` as the data path holds it.
    pub fn facility_state(&self, facility: FacilityId) -> FacilityState {
        self.core.facilities.state(Some(facility))
    }

    /// Switches to a new plan. Attachments with the same name and sockets keep their tunnel
    /// when it can serve the new configuration (WireGuard: the same private key), and their peers whose keys did not change keep their
    /// sessions; counters continue by name; flows are kept and their verdicts re-evaluated
    /// lazily (the plan's generation changed). Returns the new counters table to publish.
    pub fn apply_plan(&mut self, plan: Arc<Plan>, now: Instant) -> Arc<Counters> {
        let core = &mut self.core;
        core.count_events();
        core.report_removed(now);
        let old_plan = std::mem::replace(&mut core.plan, plan);
        if core.shard.count > 1 {
            core.renumbering = Renumbering::new(&old_plan, &core.plan);
        }
        let mut lost = 0;
        let mut old: Vec<Option<Tunnel>> = std::mem::take(&mut core.tunnels)
            .into_iter()
            .map(Some)
            .collect();
        let plan = &core.plan;
        for (i, a) in plan.attachments.iter().enumerate() {
            let id = AttachmentId(i as u16);
            let config = plan.tunnel_config(id, Some(&old_plan));
            let same = old_plan
                .attachments
                .iter()
                .position(|o| o.name == a.name && o.io == a.io);
            let tunnel = match same.and_then(|j| old[j].take()) {
                Some(t) => match t.reconfigure(id, &config, now) {
                    Ok((kept, gone)) => {
                        lost += gone;
                        kept
                    }
                    Err(replaced) => {
                        lost += replaced.queued();
                        Tunnel::new(id, &config, now, core.shard)
                    }
                },
                None => Tunnel::new(id, &config, now, core.shard),
            };
            let mut tunnel = tunnel;
            tunnel.set_shard(core.shard);
            core.tunnels.push(tunnel);
        }
        lost += old.into_iter().flatten().map(|t| t.queued()).sum::<usize>();
        if plan.limits != old_plan.limits {
            core.flows.set_timeouts(Timeouts::from(&plan.limits));
            let capacity = plan.limits.flow_table_size;
            if capacity != core.flows.capacity() {
                let dropped = core.flows.resize(capacity);
                if dropped > 0 {
                    tracing::warn!(dropped, capacity, "flow table shrunk below its live flows");
                }
            }
        }
        core.flows.set_quotas(plan.flow_quotas());
        core.epoch += 1;
        core.activity = match core.wall {
            Some((at, unix)) => plan
                .policy
                .activity_at(unix + now.saturating_duration_since(at).as_secs()),
            None => plan.policy.activity_unknown(),
        };
        // The new table lets every facility pass until its state is set again (the worker
        // does so at once); the tunnels' kept peers follow it.
        core.facilities = FacilityTable::new(plan.facilities.len());
        for (i, p) in plan.peers.iter().enumerate() {
            core.tunnels[p.attachment.index()].set_peer_admitted(PeerId(i as u32), true, now);
        }
        let tunnels = &core.tunnels;
        let orphans = core
            .flows
            .reown(plan.tenants.len(), plan.facilities.len(), |f| {
                let (tenant, src) = plan.resolve_exchange(f.opener.src)?;
                plan.owner(tenant, src, |a, ip| tunnels[a.index()].peer_for(ip))
            });
        // Rules are renumbered by name (a rule that is gone: no rule; the flow's verdict is
        // asked again on its next packet anyway).
        let by_name: std::collections::HashMap<&str, crate::ids::RuleId> = (0..=u16::MAX)
            .map(crate::ids::RuleId)
            .map_while(|r| plan.policy.rule(r).map(|i| (i.name.as_str(), r)))
            .collect();
        core.flows.remap_rules(|r| {
            old_plan
                .policy
                .rule(r)
                .and_then(|i| by_name.get(i.name.as_str()).copied())
                .unwrap_or(crate::ids::RuleId(u16::MAX))
        });
        // The orphans were numbered by the old plan: reported under it.
        if let Some(sink) = core.records_sink() {
            core.flows.take_removed(|r| {
                if let Some(e) = end_event(&old_plan, r, FlowEnd::of(r.why)) {
                    sink.flow(e);
                }
            });
        }
        if orphans > 0 {
            tracing::info!(
                flows = orphans,
                "flows whose opener is in no tenant of the new configuration were removed"
            );
        }
        core.counters = Arc::new(core.counters.successor(plan.counter_names()));
        core.counters
            .drops_add(None, DropReason::NoSession, lost as u64);
        core.publish_flows();
        core.counters.clone()
    }

    /// Processes every packet of `rx` (which is left as it was; the caller clears it) and
    /// queues what must be sent into `tx`. A packet that cannot be forwarded is counted under
    /// its drop reason.
    pub fn handle_batch(&mut self, now: Instant, rx: &mut RxBatch, tx: &mut TxBatch) {
        self.handle(now, rx, tx, 0);
    }

    /// Processes the packets of `rx` not handled yet ([`RxBatch::pending`]) while `tx` and
    /// the handoffs have room for [`TX_RESERVE`] more packets, and records how far it got:
    /// the caller sends what `tx` holds, hands the handoffs on and calls again until nothing
    /// is pending, so that a batch larger than `tx` loses nothing.
    pub fn handle_pending(&mut self, now: Instant, rx: &mut RxBatch, tx: &mut TxBatch) {
        self.handle(now, rx, tx, TX_RESERVE);
    }

    fn handle(&mut self, now: Instant, rx: &mut RxBatch, tx: &mut TxBatch, reserve: usize) {
        let mut i = rx.pending().start;
        let room = |tx: &TxBatch, handoffs: &HandoffBatch| {
            reserve == 0 || (tx.room() >= reserve && handoffs.room() >= reserve)
        };
        while i < rx.len() && room(tx, &self.core.handoffs) {
            let (meta, data) = rx.get_mut(i);
            self.handle_packet(now, meta, data, tx);
            i += 1;
        }
        rx.set_handled(i);
        self.finish_batch(now, tx);
    }

    /// What follows every batch: a few waiting handshakes answered, initiations of other
    /// workers' peers handed on, events counted, flows that left reported.
    fn finish_batch(&mut self, now: Instant, tx: &mut TxBatch) {
        let core = &mut self.core;
        for (a, t) in core.tunnels.iter_mut().enumerate() {
            if core.shard.index == 0 || core.plan.attachments[a].sharded() {
                t.after_batch(now, tx);
            }
        }
        core.hand_on_foreign();
        self.core.count_events();
        self.core.counters.set_flows(self.core.flows.len());
        self.core.report_removed(now);
    }

    fn handle_packet(&mut self, now: Instant, meta: RxMeta, data: &mut [u8], tx: &mut TxBatch) {
        let Gateway { core, scratch } = self;
        // The tunnel packet's own bytes: a raw IP socket delivers the IP header in front.
        let wire_len = match meta.via.remote {
            crate::buffer::Remote::Ip(_) => {
                let ihl = data.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
                data.len().saturating_sub(ihl)
            }
            _ => data.len(),
        };
        let tenant = (core.plan.attachments.get(meta.attachment.index())).map(|a| a.tenant.index());
        let input = match core.tunnels.get_mut(meta.attachment.index()) {
            None => Err(DropReason::NoRoute),
            Some(t) => t.handle_input(now, meta.via, data, scratch, tx),
        };
        match input {
            Ok(Some(inner)) => {
                let peer = inner.peer;
                if let Some(p) = peer {
                    core.counters.peer_wire_rx(p.index(), wire_len);
                }
                if let Err(reason) =
                    core.forward(now, meta.attachment, peer, inner.packet, tx, true)
                {
                    core.counters.drop_in(tenant, reason);
                    if let Some(p) = peer {
                        core.counters.peer_drop(p.index());
                    }
                }
            }
            Ok(None) => {}
            Err(reason) => core.counters.drop_in(tenant, reason),
        }
    }

    /// Runs due timers: the tunnels' (keepalives, rekeys, handshake retries) and flow expiry.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut TxBatch) {
        let core = &mut self.core;
        for (a, t) in core.tunnels.iter_mut().enumerate() {
            // Worker 0 runs the timers of what it alone serves (ARP, TLS).
            if core.shard.index == 0 || core.plan.attachments[a].sharded() {
                t.handle_timeout(now, tx);
            }
        }
        core.hand_on_foreign();
        core.count_events();
        if core.next_sweep <= now {
            core.flows.expire(now, SWEEP_BUDGET);
            core.publish_flows();
            core.next_sweep = now + SWEEP_INTERVAL;
        }
        core.report_removed(now);
    }

    /// When [`Gateway::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let core = &self.core;
        (core.tunnels.iter().enumerate())
            .filter(|(a, _)| core.shard.index == 0 || core.plan.attachments[*a].sharded())
            .filter_map(|(_, t)| t.poll_timeout())
            .fold(core.next_sweep, Instant::min)
    }
}

/// The flow tuple of a packet in exchange space, the destination port policy sees, and what
/// the packet says about its flow's state.
fn flow_tuple(s: &Summary, src_x: ExchangeV4) -> Option<(Tuple, u16, Signal)> {
    let (src_port, dst_port, protocol, policy_port, signal) = match s.l4 {
        L4::Tcp {
            src_port,
            dst_port,
            flags,
        } => (src_port, dst_port, PROTO_TCP, dst_port, Signal::Tcp(flags)),
        L4::Udp { src_port, dst_port } => {
            (src_port, dst_port, PROTO_UDP, dst_port, Signal::Datagram)
        }
        L4::IcmpEcho { ident, reply } => {
            let signal = if reply {
                Signal::EchoReply
            } else {
                Signal::EchoRequest
            };
            (ident, ident, PROTO_ICMP, 0, signal)
        }
        L4::Other { protocol } => (0, 0, protocol, 0, Signal::Datagram),
        L4::IcmpError { .. } => return None,
    };
    Some((
        Tuple {
            src: src_x.0,
            src_port,
            dst: s.dst,
            dst_port,
            protocol,
        },
        policy_port,
        signal,
    ))
}

/// The end of flow `r` as an event, under `plan` (`None` if its opener's addresses are in no
/// tenant of it).
fn end_event(
    plan: &Arc<Plan>,
    r: &crate::policy::flows::Removed,
    end: FlowEnd,
) -> Option<FlowEvent> {
    let (dst_tenant, _) = plan.resolve_exchange(r.flow.opener.dst)?;
    Some(FlowEvent {
        plan: Arc::clone(plan),
        phase: FlowPhase::End(end),
        opener: r.flow.opener,
        src_tenant: r.flow.owner.tenant,
        dst_tenant,
        facility: r.flow.facility,
        rule: r.flow.rule,
        packets: r.packets,
        bytes: r.bytes,
        duration: r.last_seen.saturating_duration_since(r.started),
    })
}

/// The egress of a packet to `dst` of `tenant`: its attachment and peer (for a TLS pool
/// address, the peer whose session holds it). Sessions live on worker 0 only: elsewhere
/// (`sessions_here` false) an address-assigning attachment is the answer without a peer, and
/// [`home`] sends the packet to worker 0.
fn route(
    plan: &Plan,
    tunnels: &[Tunnel],
    tenant: TenantId,
    dst: std::net::Ipv4Addr,
    sessions_here: bool,
) -> Result<(AttachmentId, Option<PeerId>), DropReason> {
    let dt = &plan.tenants[tenant.index()];
    let (prefix_len, route) = dt.routes.lookup_prefix(dst).ok_or(DropReason::NoRoute)?;
    if plan.refuses_directed_broadcast(dst, prefix_len, route) {
        return Err(DropReason::DirectedBroadcast);
    }
    Ok(match route {
        Route::Peer(p) => (plan.peers[p.index()].attachment, Some(p)),
        Route::Attachment(a) => {
            let tunnel = &tunnels[a.index()];
            match tunnel.peer_for(dst) {
                Some(p) => (a, Some(p)),
                None if tunnel.assigns_addresses() && sessions_here => {
                    return Err(DropReason::NoSession)
                }
                None => (a, None),
            }
        }
    })
}

/// The worker where a flow between `from` (where a packet came in, on `ingress`) and its
/// egress is admitted: worker 0 if either end is an address-assigning (TLS) attachment (its
/// sessions live there), else the owner of its sharded end (when both are, of the peer with
/// the smaller [`home_key`](crate::dataplane::PeerPlan::home_key), the smaller owner if
/// they tie), worker 0 when neither is. The same for both directions of the flow, and across
/// reloads that keep both peers.
fn home(
    plan: &Plan,
    tunnels: &[Tunnel],
    (ingress, from): (AttachmentId, Route),
    (egress, egress_peer): (AttachmentId, Option<PeerId>),
) -> u32 {
    if tunnels[ingress.index()].assigns_addresses() || tunnels[egress.index()].assigns_addresses() {
        return 0;
    }
    let owner = |p: PeerId| tunnels[plan.peers[p.index()].attachment.index()].owner_of(p);
    let from = match from {
        Route::Peer(p) => Some(p),
        Route::Attachment(_) => None,
    };
    let ends = [from, egress_peer].map(|p| p.and_then(|p| owner(p).map(|w| (p, w))));
    match ends {
        [Some((a, wa)), Some((b, wb))] => {
            let key = |p: PeerId| plan.peers[p.index()].home_key;
            (key(a), wa).min((key(b), wb)).1
        }
        [Some((_, w)), None] | [None, Some((_, w))] => w,
        [None, None] => 0,
    }
}

impl Core {
    /// Moves the WireGuard initiations of other workers' peers into the handoffs while they
    /// have room; the rest wait for the next batch or timer run.
    fn hand_on_foreign(&mut self) {
        for (a, t) in self.tunnels.iter_mut().enumerate() {
            while self.handoffs.room() > 0 {
                let Some((worker, from, bytes)) = t.pop_foreign() else {
                    break;
                };
                let kind = HandoffKind::Datagram {
                    attachment: AttachmentId(a as u16),
                    from,
                };
                // Room was checked: this push succeeds.
                self.handoffs
                    .push(worker, self.plan.generation, kind, &bytes);
            }
        }
    }

    /// The flow sink, if it wants flow records.
    fn records_sink(&self) -> Option<Arc<dyn FlowSink>> {
        self.flow_sink.clone().filter(|_| self.flow_records)
    }

    /// Hands the flows that left the table since the last call to the flow sink.
    fn report_removed(&mut self, _now: Instant) {
        let Some(sink) = self.records_sink() else {
            return;
        };
        let plan = Arc::clone(&self.plan);
        self.flows.take_removed(|r| {
            if let Some(e) = end_event(&plan, r, FlowEnd::of(r.why)) {
                sink.flow(e);
            }
        });
    }

    /// Counts what the tunnels reported since the last call; handshakes and refusals of
    /// known peers also go to the flow sink (the audit trail).
    fn count_events(&mut self) {
        for (i, t) in self.tunnels.iter_mut().enumerate() {
            while let Some(event) = t.poll_event() {
                if let Some(sink) = &self.flow_sink {
                    let kind = match event {
                        Event::HandshakeDone { peer, at } => {
                            Some((peer, at, PeerEventKind::Handshake))
                        }
                        Event::HandshakeFailed { peer, result, at } => {
                            Some((peer, at, PeerEventKind::Failed(result)))
                        }
                        Event::Endpoint { peer, from, to, at } => {
                            Some((peer, at, PeerEventKind::Moved { from, to }))
                        }
                        _ => None,
                    };
                    if let Some((peer, at, kind)) = kind {
                        let remote = t.wireguard().and_then(|wg| wg.peer_endpoint(peer));
                        sink.peer(PeerEvent {
                            plan: Arc::clone(&self.plan),
                            peer,
                            at,
                            kind,
                            remote,
                        });
                    }
                }
                let of = (self.plan.attachments.get(i)).map(|a| (AttachmentId(i as u16), a.tenant));
                count_event(&self.counters, of, event);
            }
        }
    }

    /// Publishes the flow table's size and each tenant's share of it (O(tenants): on timers
    /// and plan changes, not per batch).
    fn publish_flows(&self) {
        self.counters.set_flows(self.flows.len());
        for t in 0..self.plan.tenants.len() {
            let n = self.flows.tenant_flows(TenantId(t as u16));
            self.counters.tenant_flows(t).set(n);
        }
    }

    /// classify → admit → translate → route → encap for one inner packet that arrived on
    /// `attachment` (from `peer` for tunnels with peers).
    fn forward(
        &mut self,
        now: Instant,
        attachment: AttachmentId,
        peer: Option<PeerId>,
        pkt: &mut [u8],
        tx: &mut TxBatch,
        arrived_here: bool,
    ) -> Result<(), DropReason> {
        let plan = &*self.plan;
        let ingress = &plan.attachments[attachment.index()];
        let src_tenant = ingress.tenant;
        // A packet handed over by another worker was counted where it arrived.
        if arrived_here {
            self.counters.tenant(src_tenant.index()).rx(pkt.len());
            if let Some(p) = peer {
                self.counters.peer(p.index()).rx(pkt.len());
            }
        }

        let s = wire::inspect(pkt)?;

        // classify: the source must be one the peer (or plain attachment) routes.
        let st = &plan.tenants[src_tenant.index()];
        let came_from = match peer {
            Some(p) => Route::Peer(p),
            None => Route::Attachment(attachment),
        };
        // A tunnel that hands out addresses (TLS) has checked the source against the
        // session's address; its pool is routed to the attachment.
        let assigned = peer.is_some()
            && self.tunnels[attachment.index()].assigns_addresses()
            && st.routes.lookup(s.src) == Some(Route::Attachment(attachment));
        if !assigned && st.routes.lookup(s.src) != Some(came_from) {
            return Err(DropReason::Spoofed);
        }
        let src = InternalV4(s.src);
        let src_x = st.map.to_exchange(src).ok_or(DropReason::Spoofed)?;
        let facility = peer.map(|p| plan.peers[p.index()].facility);
        let owner = Owner {
            tenant: src_tenant,
            facility: peer.map(|p| plan.peers[p.index()].facility_id),
        };
        let (dst_tenant, dst) = plan.resolve_exchange(s.dst).ok_or(DropReason::NoRoute)?;
        // The route is found now (its refusal counts only after admit's): with several
        // workers, the flow's home admits and translates, and both directions of a flow come
        // to the same home.
        let routed = route(
            plan,
            &self.tunnels,
            dst_tenant,
            dst.0,
            self.shard.index == 0,
        );
        if self.shard.count > 1 {
            if let Ok(egress) = routed {
                let home = home(plan, &self.tunnels, (attachment, came_from), egress);
                if home != self.shard.index {
                    let kind = HandoffKind::Forward { attachment, peer };
                    if !self.handoffs.push(home, plan.generation, kind, pkt) {
                        return Err(DropReason::WorkerQueueFull);
                    }
                    return Ok(());
                }
            }
        }

        // admit
        if !self.facilities.state(owner.facility).allows_traffic() {
            return Err(DropReason::Certificate);
        }
        let generation = Generations {
            plan: self.epoch,
            facilities: self.facilities.generations(),
        };
        let admitted = match flow_tuple(&s, src_x) {
            Some((tuple, policy_port, signal)) => {
                let query = Query {
                    src_tenant,
                    src_facility: facility,
                    src,
                    dst_tenant,
                    dst,
                    protocol: tuple.protocol,
                    dst_port: policy_port,
                };
                admit_flow(
                    plan,
                    &self.tunnels,
                    &self.activity,
                    &self.facilities,
                    &mut self.flows,
                    now,
                    generation,
                    (tuple, signal),
                    query,
                    owner,
                )?
            }
            None => {
                let L4::IcmpError { inner } = s.l4 else {
                    return Err(DropReason::Malformed);
                };
                if usize::from(s.total_len) > ICMP_ERROR_MAX {
                    return Err(DropReason::Malformed);
                }
                // An error goes back to the source of the packet it quotes [RFC 1812 § 4.3.2.3],
                // and that packet went into the tunnel the error now comes out of.
                if inner.src != s.dst || st.routes.lookup(inner.dst) != Some(came_from) {
                    return Err(DropReason::Policy);
                }
                let quoted_dst = st
                    .map
                    .to_exchange(InternalV4(inner.dst))
                    .ok_or(DropReason::Policy)?;
                let t = Tuple {
                    src: inner.src,
                    src_port: inner.src_port,
                    dst: quoted_dst.0,
                    dst_port: inner.dst_port,
                    protocol: inner.protocol,
                };
                // An error refers to a flow; it neither refreshes nor answers it.
                match self.flows.peek(&t, now, generation) {
                    Lookup::Hit { .. } => None,
                    Lookup::Stale { flow, .. } => {
                        let renewed = refresh(
                            plan,
                            &self.tunnels,
                            &self.activity,
                            &self.facilities,
                            &mut self.flows,
                            flow,
                            generation,
                        )?;
                        Some((renewed, None))
                    }
                    Lookup::Miss => return Err(DropReason::NoFlow),
                }
            }
        };

        // route
        let dt = &plan.tenants[dst_tenant.index()];
        let (egress, egress_peer) = routed?;
        // The facility at the far end must be allowed traffic as well: a revoked facility
        // receives nothing, not even on flows others opened to it (and no ICMP goes out in
        // its name).
        if let Some(p) = egress_peer {
            let to = plan.peers[p.index()].facility_id;
            if !self.facilities.state(Some(to)).allows_traffic() {
                return Err(DropReason::Certificate);
            }
        }
        let egress_mtu = plan.attachments[egress.index()].mtu;
        let len = usize::from(s.total_len);
        if len > usize::from(egress_mtu) {
            if s.dont_fragment {
                self.frag_needed(now, attachment, peer, &pkt[..len], &s, egress_mtu, tx);
            }
            return Err(DropReason::TooBig);
        }

        // translate
        let mss = ingress.mtu.min(egress_mtu).saturating_sub(TCP_IP_HEADERS);
        nat::translate(pkt, &st.map, &dt.map, Some(mss))?;
        let pkt = &pkt[..len];

        // Only a packet that leaves takes (or renews) a flow entry: a new entry is taken back
        // when the tunnel refuses the packet.
        if let Some((flow, start)) = admitted {
            match self
                .flows
                .insert(flow, start.unwrap_or(Start::Datagram), now)
            {
                Ok(None) => {}
                Ok(Some(victim)) => {
                    let t = victim.tenant.index();
                    self.counters.tenant_flows(t).evictions.add(1);
                }
                Err(refused) => {
                    let reason = match refused {
                        Refused::Full => DropReason::FlowTableFull,
                        Refused::TenantQuota => DropReason::TenantFlowQuota,
                        Refused::FacilityQuota => DropReason::FacilityFlowQuota,
                    };
                    if reason != DropReason::FlowTableFull {
                        let t = src_tenant.index();
                        self.counters.tenant_flows(t).quota_drops.add(1);
                    }
                    return Err(reason);
                }
            }
        }

        // encap, here or by the worker owning the egress
        let mark = tx.len();
        let sent = self.send(now, egress, egress_peer, pkt, tx);
        let here = match sent {
            Ok(here) => here,
            Err(reason) => {
                if let Some((flow, Some(_))) = admitted {
                    self.flows.forget(&flow.opener);
                }
                return Err(reason);
            }
        };
        self.flows.account(len);
        let sink = self.flow_sink.as_ref().filter(|_| self.flow_records);
        if let (Some(sink), Some((flow, Some(_)))) = (sink, admitted) {
            sink.flow(FlowEvent {
                plan: Arc::clone(&self.plan),
                phase: FlowPhase::Start,
                opener: flow.opener,
                src_tenant,
                dst_tenant,
                facility: flow.facility,
                rule: flow.rule,
                packets: [0; 2],
                bytes: [0; 2],
                duration: Duration::ZERO,
            });
        }
        if let (Some(p), true) = (egress_peer, here) {
            self.counters.peer(p.index()).tx(len);
            self.counters.peer_wire_tx(p.index(), tx.bytes_from(mark));
        }
        self.counters.tenant(dst_tenant.index()).tx(len);
        self.counters
            .pair(src_tenant.index(), dst_tenant.index())
            .add(len);
        Ok(())
    }
}

impl Core {
    /// Tells the sender of an oversized packet with DF set the MTU that fits [RFC 1191 § 4],
    /// so that path MTU discovery works across the gateway. The error comes from the packet's
    /// destination (an exchange address the sender's tunnel already accepts traffic from) and
    /// quotes the packet as the sender sent it. Rate-limited [RFC 1812 § 4.3.2.8]; failures
    /// to send it are not counted separately: the packet itself is counted as `too_big`.
    #[allow(clippy::too_many_arguments)]
    fn frag_needed(
        &mut self,
        now: Instant,
        attachment: AttachmentId,
        peer: Option<PeerId>,
        original: &[u8],
        s: &Summary,
        mtu: u16,
        tx: &mut TxBatch,
    ) {
        if !self.icmp_budget.take(now) {
            return;
        }
        let mut buf = [0u8; ICMP_ERROR_MAX];
        let quoted = &original[..original.len().min(ICMP_ERROR_MAX - ICMP_ERROR_HEADERS)];
        let Ok(n) = wire::build::icmp_frag_needed(&mut buf, s.dst, s.src, mtu, quoted) else {
            return;
        };
        let icmp = &buf[..n];
        let tenant = self.plan.attachments[attachment.index()].tenant;
        let mark = tx.len();
        let sent = self.send(now, attachment, peer, icmp, tx);
        if let Ok(here) = sent {
            self.counters.tenant(tenant.index()).tx(n);
            if let (Some(p), true) = (peer, here) {
                self.counters.peer(p.index()).tx(n);
                self.counters.peer_wire_tx(p.index(), tx.bytes_from(mark));
            }
        }
    }

    /// Encapsulates `pkt` for `peer` of `attachment` if this worker owns it (`Ok(true)`),
    /// else hands it to the owner (`Ok(false)`; the owner counts the peer's traffic).
    fn send(
        &mut self,
        now: Instant,
        attachment: AttachmentId,
        peer: Option<PeerId>,
        pkt: &[u8],
        tx: &mut TxBatch,
    ) -> Result<bool, DropReason> {
        let tunnel = &mut self.tunnels[attachment.index()];
        let owner = peer.and_then(|p| tunnel.owner_of(p)).unwrap_or(0);
        if self.shard.count <= 1 || owner == self.shard.index {
            return tunnel
                .encapsulate(now, attachment, peer, pkt, tx)
                .map(|()| true);
        }
        let kind = HandoffKind::Encap { attachment, peer };
        match self.handoffs.push(owner, self.plan.generation, kind, pkt) {
            true => Ok(false),
            false => Err(DropReason::WorkerQueueFull),
        }
    }
}

/// A token bucket for the ICMP errors the gateway itself generates.
struct IcmpBudget {
    tokens: u32,
    refilled: Instant,
}

/// ICMP errors the gateway may generate per second (per worker), and its burst.
const ICMP_RATE: u32 = 100;
/// Largest ICMP error generated: the 576 bytes every IPv4 host accepts [RFC 1812 § 4.3.2.3].
const ICMP_ERROR_MAX: usize = 576;
/// IPv4 + ICMP headers in front of the quoted packet.
const ICMP_ERROR_HEADERS: usize = 28;

impl IcmpBudget {
    fn new(now: Instant) -> Self {
        IcmpBudget {
            tokens: ICMP_RATE,
            refilled: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.refilled) >= Duration::from_secs(1) {
            self.tokens = ICMP_RATE;
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Looks a flow up (advancing its state with `signal`), evaluating the policy on a miss or a
/// stale verdict. Returns the flow to insert once the packet is sure to leave (with how it
/// starts, if it is new), or `None` for a live verdict. A packet that cannot start a flow
/// finds `NoFlow` on a miss.
#[allow(clippy::too_many_arguments)]
fn admit_flow(
    plan: &Plan,
    tunnels: &[Tunnel],
    activity: &Activity,
    facilities: &FacilityTable,
    flows: &mut FlowTable,
    now: Instant,
    generation: Generations<'_>,
    (tuple, signal): (Tuple, Signal),
    query: Query,
    owner: Owner,
) -> Result<Option<(Flow, Option<Start>)>, DropReason> {
    let lookup = flows.lookup(&tuple, signal, now, generation);
    // Request and reply of an echo share one key: a request from the responder's side is not
    // part of the flow but a query of its own.
    if let Lookup::Hit { reply: true, .. } | Lookup::Stale { reply: true, .. } = lookup {
        if signal == Signal::EchoRequest && plan.policy.evaluate_at(&query, activity).is_none() {
            return Err(DropReason::Policy);
        }
    }
    match lookup {
        Lookup::Hit { .. } => Ok(None),
        Lookup::Stale { flow, .. } => {
            refresh(plan, tunnels, activity, facilities, flows, flow, generation)
                .map(|f| Some((f, None)))
        }
        Lookup::Miss => {
            let start = signal.start().ok_or(DropReason::NoFlow)?;
            let rule = plan
                .policy
                .evaluate_at(&query, activity)
                .ok_or(DropReason::Policy)?;
            let flow = Flow {
                opener: tuple,
                facility: query.src_facility,
                owner,
                rule,
                generation: generation.of(&owner),
            };
            Ok(Some((flow, Some(start))))
        }
    }
}

/// A flow admitted under an older plan or facility state, asked again: the renewed flow, or
/// why not (`Facility` when its opener's facility may not send now, else `Policy`), and the
/// flow is forgotten.
fn refresh(
    plan: &Plan,
    tunnels: &[Tunnel],
    activity: &Activity,
    facilities: &FacilityTable,
    flows: &mut FlowTable,
    flow: Flow,
    generation: Generations<'_>,
) -> Result<Flow, DropReason> {
    match reevaluate(plan, tunnels, activity, facilities, &flow) {
        Ok((rule, facility, owner)) => Ok(Flow {
            rule,
            facility,
            owner,
            generation: generation.of(&owner),
            ..flow
        }),
        Err(reason) => {
            flows.remove(&flow.opener);
            Err(reason)
        }
    }
}

/// Asks the current plan again about a flow: who opens it now (the opener's address may
/// belong to another peer, hence another facility, than when it was admitted), may that
/// facility send, and which rule allows it.
fn reevaluate(
    plan: &Plan,
    tunnels: &[Tunnel],
    activity: &Activity,
    facilities: &FacilityTable,
    flow: &Flow,
) -> Result<(crate::ids::RuleId, Option<FacilityCode>, Owner), DropReason> {
    let o = &flow.opener;
    let (src_tenant, src): (TenantId, InternalV4) =
        plan.resolve_exchange(o.src).ok_or(DropReason::Policy)?;
    let (dst_tenant, dst) = plan.resolve_exchange(o.dst).ok_or(DropReason::Policy)?;
    let owner = plan
        .owner(src_tenant, src, |a, ip| {
            tunnels.get(a.index())?.peer_for(ip)
        })
        .ok_or(DropReason::Policy)?;
    let facility = owner.facility.map(|f| plan.facilities[f.index()]);
    if !facilities.state(owner.facility).allows_traffic() {
        return Err(DropReason::Certificate);
    }
    let dst_port = match o.protocol {
        PROTO_TCP | PROTO_UDP => o.dst_port,
        _ => 0,
    };
    let rule = plan.policy.evaluate_at(
        &Query {
            src_tenant,
            src_facility: facility,
            src,
            dst_tenant,
            dst,
            protocol: o.protocol,
            dst_port,
        },
        activity,
    );
    Ok((rule.ok_or(DropReason::Policy)?, facility, owner))
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn icmp_budget_refills_each_second() {
        let t0 = Instant::now();
        let mut b = IcmpBudget::new(t0);
        for _ in 0..ICMP_RATE {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}

#[cfg(test)]
mod reevaluate_tests {
    use super::*;
    use crate::config::{AttachmentKind, Destination, Policy, PortRule, Protocol, Source};

    /// The fuzz configuration plus a policy only facility 4212345674 (the WireGuard peer of
    /// tenant `w`, 10.9.0.0/24) may use towards tenant `a`.
    fn config(peer_facility: &str) -> crate::config::Config {
        let mut c = super::super::fuzz::fuzz_config();
        let code = FacilityCode::parse("4212345674").unwrap();
        c.policies.push(Policy {
            name: "w-facility".into(),
            from: Source {
                tenants: vec!["w".into()],
                facilities: vec![code],
                prefixes: vec![],
            },
            to: Destination::Tenants {
                tenants: vec!["a".into()],
                prefixes: vec![],
            },
            allow: vec![PortRule {
                protocol: Protocol::Tcp,
                ports: Some((104, 104)),
            }],
        });
        let AttachmentKind::WireGuard(wg) = &mut c.tenants[3].attachments[0].kind else {
            panic!()
        };
        wg.peers[0].facility = FacilityCode::parse(peer_facility).unwrap();
        c
    }

    #[test]
    fn a_stale_flow_is_judged_by_the_openers_current_facility() {
        let opener = Tuple {
            src: "100.66.0.5".parse().unwrap(),
            src_port: 40000,
            dst: "100.64.0.2".parse().unwrap(),
            dst_port: 104,
            protocol: PROTO_TCP,
        };
        let before = Plan::compile(&config("4212345674"), 1);
        let facilities = FacilityTable::new(1);
        let flow = Flow {
            opener,
            facility: Some(FacilityCode::parse("4212345674").unwrap()),
            owner: Owner {
                tenant: TenantId(3),
                facility: Some(crate::ids::FacilityId(0)),
            },
            rule: crate::ids::RuleId(4),
            generation: 1,
        };
        let all = Activity::default();
        assert!(reevaluate(&before, &[], &all, &facilities, &flow).is_ok());

        // The same peer (same addresses) now belongs to another facility.
        let after = Plan::compile(&config("4219999994"), 2);
        assert_eq!(
            reevaluate(&after, &[], &all, &facilities, &flow),
            Err(DropReason::Policy),
            "the old facility's verdict must not survive"
        );
    }
}
