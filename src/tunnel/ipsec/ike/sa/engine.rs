//! [`IkeEngine`]: every IKE SA of one attachment, found by our SPI; the IKE_SA_INIT
//! requests that open new ones; the peers' restarts; the effects one IKE SA has on another
//! (a rekey's new IKE SA, CHILD SAs moving, INITIAL_CONTACT).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::ids::PeerId;
use crate::tunnel::ipsec::ike::message::{
    Error as ParseError, ExchangeType, Flags, Header, Message, MessageBuilder, Notify, NotifyType,
    Payload,
};

use super::child::ChildState;
use super::config::{IkeConfig, IkePeerConfig, Start};
use super::cookie::CookieJar;
use super::ctx::{after, Ctx, Effect, HARD_MARGIN};
use super::event::{DownReason, IkeEvent, Refusal, Transmit};
use super::ike_sa::{IkeSa, Queued, Request, State};
use super::init;

/// The engine's name for the NAT-T socket (the attachment's `nat_t_port`), where
/// ESP-in-UDP arrives.
const NAT_T_PORT: u16 = 4500;

/// A peer's standing apart from its IKE SAs.
#[derive(Debug, Clone, Copy, Default)]
struct PeerSlot {
    /// Initiate then (start, restart after a failure).
    restart_at: Option<Instant>,
    /// Deleted by the operator: no restart until `initiate`.
    stopped: bool,
}

impl PeerSlot {
    /// A peer we initiate to starts at `now`.
    fn new(p: &IkePeerConfig, now: Instant) -> PeerSlot {
        PeerSlot {
            restart_at: (p.start == Start::Initiate && p.endpoint.is_some()).then_some(now),
            stopped: false,
        }
    }
}

/// The IKE SAs of one IPsec attachment. See the module documentation of `sa`.
pub struct IkeEngine {
    ctx: Ctx,
    sas: HashMap<u64, IkeSa>,
    /// Half-open responder SAs by initiator address and SPI, to answer a retransmitted
    /// IKE_SA_INIT request from the cache.
    init_index: HashMap<(SocketAddr, u64), u64>,
    cookies: CookieJar,
    peers: Vec<PeerSlot>,
}

impl std::fmt::Debug for IkeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeEngine")
            .field("ike_sas", &self.sas.len())
            .field("half_open", &self.half_open())
            .finish_non_exhaustive()
    }
}

impl IkeEngine {
    /// An engine for `config`; peers with `start: Initiate` are initiated at `now` (on the
    /// first `handle_timeout`).
    pub fn new(config: IkeConfig, now: Instant) -> IkeEngine {
        let mut ctx = Ctx::new(config);
        let lifetime = ctx.config.limits.cookie_secret_lifetime;
        let cookies = CookieJar::new(&mut ctx.rng, now, lifetime);
        let peers = ctx
            .config
            .peers
            .iter()
            .map(|p| PeerSlot::new(p, now))
            .collect();
        IkeEngine {
            ctx,
            sas: HashMap::new(),
            init_index: HashMap::new(),
            cookies,
            peers,
        }
    }

    /// Takes a new configuration (a reload) and keeps what `kept` names: the IKE SAs, and
    /// with them the CHILD SAs, of peer `old` carry on as peer `new`, for each `(old, new)`.
    /// Their configuration must be unchanged: only their numbers moved; our identity and
    /// address too (else build a new engine). Any other peer's IKE SAs end here without a
    /// word or an event: `delete` such peers first so that they learn it, and their Deletes
    /// still in flight finish (as SAs of no peer). Half-open SAs of no peer yet stay. Peers
    /// new in `config` start as in [`IkeEngine::new`]; kept peers we initiate to that are
    /// not up start again at once.
    pub fn reconfigure(&mut self, config: IkeConfig, kept: &[(PeerId, PeerId)], now: Instant) {
        let moved: Vec<Option<usize>> = self
            .ctx
            .config
            .peers
            .iter()
            .map(|old| {
                let (_, new) = kept.iter().find(|(o, _)| *o == old.peer)?;
                config.peers.iter().position(|p| p.peer == *new)
            })
            .collect();
        let mut gone = Vec::new();
        for (spi, sa) in &mut self.sas {
            // A half-open SA's candidate peers (by index) follow, or drop out.
            sa.candidates = sa
                .candidates
                .iter()
                .filter_map(|&i| moved.get(i).copied().flatten())
                .collect();
            let Some(i) = sa.peer else {
                continue;
            };
            sa.peer = moved.get(i).copied().flatten();
            // A Delete out or waiting behind a request in flight still goes to the peer.
            let deleting = matches!(sa.state, State::Deleting | State::Rekeyed)
                || sa.queue.iter().any(|q| matches!(q, Queued::DeleteIke));
            if sa.peer.is_none() && !deleting {
                gone.push(*spi);
            }
        }
        for spi in gone {
            self.reap(spi, now);
        }
        let mut peers: Vec<PeerSlot> = config.peers.iter().map(|p| PeerSlot::new(p, now)).collect();
        for (old, new) in moved.iter().enumerate() {
            let Some(new) = *new else {
                continue;
            };
            peers[new] = self.peers[old];
            let p = &config.peers[new];
            if peers[new].stopped || p.start != Start::Initiate || p.endpoint.is_none() {
                continue;
            }
            // A kept peer we initiate to that is not up (waiting to retry after a failure,
            // or its IKE_SA_INIT unanswered) tries again now: the reload may be the
            // operator's answer to its failure.
            let live = |sa: &&IkeSa| sa.peer == Some(new) && sa.dead.is_none();
            let attempt = |sa: &&IkeSa| matches!(sa.state, State::ExpectSaInitResponse(_));
            if self.sas.values().filter(live).any(|sa| !attempt(&sa)) {
                continue;
            }
            let attempts: Vec<u64> = self
                .sas
                .iter()
                .filter(|(_, sa)| live(sa) && attempt(sa))
                .map(|(spi, _)| *spi)
                .collect();
            for spi in attempts {
                if let Some(sa) = self.sas.get_mut(&spi) {
                    sa.peer = None;
                }
                self.reap(spi, now);
            }
            peers[new].restart_at = Some(now);
        }
        self.peers = peers;
        self.ctx.config = config;
    }

    /// An IKE message received on our `local_port` (500 or 4500, without the non-ESP marker)
    /// from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        data: &[u8],
    ) {
        // A NAT keepalive [RFC 3948 § 2.3].
        if data == [0xff] {
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                let notify = self.version_answer(local_port, from, data, e);
                self.ctx.refuse(None, notify, Refusal::Malformed(e));
                return;
            }
        };
        let h = msg.header;
        if h.exchange == ExchangeType::IKE_SA_INIT && !h.flags.response() && h.spi_r == 0 {
            self.sa_init_request(now, local_port, from, &msg);
        } else {
            let ours = if h.flags.initiator() {
                h.spi_r
            } else {
                h.spi_i
            };
            match self.sas.get_mut(&ours) {
                Some(sa)
                    if (h.flags.initiator() && h.spi_i == sa.spi_i)
                        || (!h.flags.initiator() && (sa.spi_r == 0 || h.spi_r == sa.spi_r)) =>
                {
                    sa.handle_message(&mut self.ctx, now, local_port, from, &msg);
                }
                _ => self.ctx.refuse(None, None, Refusal::UnknownSpi),
            }
        }
        self.finish(now);
    }

    /// An IKE_SA_INIT request of a higher major version is answered with
    /// INVALID_MAJOR_VERSION from our version [RFC 7296 § 2.5]; nothing else that fails to
    /// parse is answered.
    fn version_answer(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        data: &[u8],
        e: ParseError,
    ) -> Option<NotifyType> {
        let notify = e
            .notify()
            .filter(|n| *n == NotifyType::INVALID_MAJOR_VERSION)?;
        let h = Header::read(data).ok()?;
        if h.exchange != ExchangeType::IKE_SA_INIT || h.flags.response() {
            return None;
        }
        let header = Header::new(h.spi_i, h.spi_r, h.exchange, Flags::RESPONSE, h.message_id);
        let mut m = MessageBuilder::new(header);
        m.push(&Payload::Notify(Notify::new(notify, &[])));
        let bytes = m.finish().ok()?;
        self.ctx.send(local_port, from, bytes);
        Some(notify)
    }

    fn sa_init_request(
        &mut self,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let h = msg.header;
        if !h.flags.initiator() {
            self.ctx.refuse(None, None, Refusal::UnexpectedExchange);
            return;
        }
        if let Some(spi) = self.init_index.get(&(from, h.spi_i)) {
            match self.sas.get(spi) {
                Some(sa) if sa.is_half_open_responder() => {
                    if let Some(c) = &sa.last_response {
                        for d in &c.datagrams {
                            self.ctx.send(local_port, from, d.clone());
                        }
                    }
                }
                _ => self.ctx.refuse(None, None, Refusal::MessageId),
            }
            return;
        }
        let load = init::Load {
            half_open: self.half_open(),
            cookies: &self.cookies,
        };
        if let Some(sa) = init::handle_request(&mut self.ctx, now, load, local_port, from, msg) {
            let spi = sa.our_spi();
            self.init_index.insert((from, h.spi_i), spi);
            self.sas.insert(spi, sa);
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.cookies.rotate(&mut self.ctx.rng, now);
        for sa in self.sas.values_mut() {
            if sa.next_timeout(&self.ctx).is_some_and(|t| t <= now) {
                sa.handle_timeout(&mut self.ctx, now);
            }
        }
        // IKE SAs that ended may restart their peer at once.
        self.finish(now);
        for i in 0..self.peers.len() {
            if self.peers[i].restart_at.is_some_and(|t| t <= now) {
                self.peers[i].restart_at = None;
                self.start(i, now);
            }
        }
        self.finish(now);
    }

    /// When [`IkeEngine::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sas = self
            .sas
            .values()
            .filter_map(|sa| sa.next_timeout(&self.ctx));
        let peers = self.peers.iter().filter_map(|p| p.restart_at);
        sas.chain(peers).chain([self.cookies.next_rotation()]).min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<IkeEvent> {
        self.ctx.events.pop_front()
    }

    /// Opens an IKE SA with `peer` unless it has one (or one is being set up); clears an
    /// earlier `delete`.
    pub fn initiate(&mut self, peer: PeerId, now: Instant) {
        let Some(i) = self.index(peer) else {
            return;
        };
        self.peers[i].stopped = false;
        self.start(i, now);
        self.finish(now);
    }

    /// Deletes every IKE SA of `peer` (and so its CHILD SAs); no restart until `initiate`.
    pub fn delete(&mut self, peer: PeerId, now: Instant) {
        let Some(i) = self.index(peer) else {
            return;
        };
        self.peers[i] = PeerSlot {
            restart_at: None,
            stopped: true,
        };
        for sa in self
            .sas
            .values_mut()
            .filter(|sa| sa.peer == Some(i) && sa.dead.is_none())
        {
            if sa.is_established() {
                sa.enqueue(Queued::DeleteIke);
                sa.pump(&mut self.ctx, now);
            } else if !matches!(sa.state, State::Rekeyed | State::Deleting) {
                sa.drop_children(&mut self.ctx);
                sa.kill(DownReason::DeletedLocally, None);
            }
        }
        self.finish(now);
    }

    /// Rekeys every CHILD SA of `peer` now.
    pub fn rekey_child(&mut self, peer: PeerId, now: Instant) {
        self.for_established(peer, now, |sa| {
            for c in sa
                .children
                .iter_mut()
                .filter(|c| c.state == ChildState::Installed)
            {
                c.state = ChildState::Rekeying;
                sa.queue.push_back(Queued::RekeyChild(c.inbound_spi));
            }
        });
    }

    /// Rekeys the IKE SA of `peer` now.
    pub fn rekey_ike(&mut self, peer: PeerId, now: Instant) {
        self.for_established(peer, now, |sa| sa.enqueue(Queued::RekeyIke));
    }

    /// What the data path counted on the CHILD SA with SPI `spi` (inbound or outbound):
    /// rekeys it at `child_rekey_bytes`, and inbound traffic counts as a sign of life.
    pub fn esp_usage(&mut self, peer: PeerId, spi: u32, bytes: u64, now: Instant) {
        let Some(i) = self.index(peer) else {
            return;
        };
        let limit = self.ctx.config.peers[i].child_rekey_bytes;
        self.for_established(peer, now, |sa| {
            let Some(c) = sa
                .children
                .iter_mut()
                .find(|c| c.inbound_spi == spi || c.outbound_spi == spi)
            else {
                return;
            };
            if c.inbound_spi == spi && bytes > c.bytes {
                sa.last_inbound = now;
            }
            c.bytes = c.bytes.max(bytes);
            if c.state == ChildState::Installed && limit.is_some_and(|l| c.bytes >= l) {
                c.state = ChildState::Rekeying;
                // The byte count's hard lifetime: the rekey has `HARD_MARGIN` to succeed (a
                // byte count is reported once a second, so a margin in bytes would be crossed
                // by the same report at high rates).
                let deadline = after(now, HARD_MARGIN);
                c.expires_at = Some(c.expires_at.map_or(deadline, |t| t.min(deadline)));
                let spi = c.inbound_spi;
                sa.queue.push_back(Queued::RekeyChild(spi));
            }
        });
    }

    /// `peer`'s ESP arrived, authenticated, from `to` (its NAT's mapping changed): its
    /// established IKE SAs move there too (ESP-in-UDP and IKE share the peer's port), and a
    /// liveness check confirms the peer answers there; if it does not, DPD ends the SAs
    /// [RFC 7296 § 2.23, RFC 3948 § 2.2].
    pub fn peer_roamed(&mut self, peer: PeerId, to: SocketAddr, now: Instant) {
        let Some(i) = self.index(peer) else {
            return;
        };
        let mut moved = false;
        for sa in self
            .sas
            .values_mut()
            .filter(|sa| sa.peer == Some(i) && sa.is_established() && sa.remote != to)
        {
            sa.remote = to;
            sa.local_port = NAT_T_PORT;
            sa.enqueue(Queued::Dpd);
            sa.pump(&mut self.ctx, now);
            moved = true;
        }
        if moved {
            self.ctx.event(IkeEvent::PathChanged { peer, remote: to });
        }
        self.finish(now);
    }

    /// Half-open responder IKE SAs (waiting for IKE_AUTH).
    pub fn half_open(&self) -> usize {
        self.sas
            .values()
            .filter(|sa| sa.is_half_open_responder())
            .count()
    }

    /// IKE SAs in every state.
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// IKE SAs authenticated and in use: not an initiator's attempt, not replaced by a rekey.
    pub fn established(&self) -> usize {
        self.sas.values().filter(|sa| sa.is_established()).count()
    }

    /// The inbound SPIs of `peer`'s CHILD SAs, in every state, sorted.
    pub fn child_spis(&self, peer: PeerId) -> Vec<u32> {
        let i = self.index(peer);
        let mut v: Vec<u32> = self
            .sas
            .values()
            .filter(|sa| sa.peer.is_some() && sa.peer == i)
            .flat_map(|sa| sa.children.iter().map(|c| c.inbound_spi))
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether `peer` has an established IKE SA.
    pub fn is_up(&self, peer: PeerId) -> bool {
        let i = self.index(peer);
        self.sas
            .values()
            .any(|sa| sa.peer.is_some() && sa.peer == i && sa.is_established())
    }

    /// For each IKE SA of `peer`: whether we are its original initiator.
    #[cfg(test)]
    pub(crate) fn initiator_of(&self, peer: PeerId) -> Vec<bool> {
        let i = self.index(peer);
        self.sas
            .values()
            .filter(|sa| sa.peer.is_some() && sa.peer == i)
            .map(|sa| sa.initiator)
            .collect()
    }

    fn index(&self, peer: PeerId) -> Option<usize> {
        self.ctx.config.peers.iter().position(|p| p.peer == peer)
    }

    fn for_established(&mut self, peer: PeerId, now: Instant, mut f: impl FnMut(&mut IkeSa)) {
        let Some(i) = self.index(peer) else {
            return;
        };
        for sa in self
            .sas
            .values_mut()
            .filter(|sa| sa.peer == Some(i) && sa.is_established())
        {
            f(sa);
            sa.pump(&mut self.ctx, now);
        }
        self.finish(now);
    }

    /// Initiates with peer `i` unless it has a live IKE SA.
    fn start(&mut self, i: usize, now: Instant) {
        if self.peers[i].stopped {
            return;
        }
        let busy = self
            .sas
            .values()
            .any(|sa| sa.peer == Some(i) && sa.dead.is_none());
        if busy {
            return;
        }
        if let Some(mut sa) = init::initiate(&mut self.ctx, now, i) {
            sa.initial_contact = true;
            self.sas.insert(sa.our_spi(), sa);
        }
    }

    /// Applies the effects of the last call and removes the IKE SAs that ended.
    fn finish(&mut self, now: Instant) {
        while !self.ctx.effects.is_empty() {
            let effects = std::mem::take(&mut self.ctx.effects);
            for e in effects {
                self.apply(e, now);
            }
        }
        // An established IKE SA of no peer (its peer left the configuration while a rekey
        // of it was in flight, and the rekey made it) is deleted.
        for sa in self.sas.values_mut().filter(|sa| {
            sa.peer.is_none()
                && sa.is_established()
                && !sa.queue.iter().any(|q| matches!(q, Queued::DeleteIke))
        }) {
            sa.enqueue(Queued::DeleteIke);
            sa.pump(&mut self.ctx, now);
        }
        let dead: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.dead.is_some())
            .map(|(s, _)| *s)
            .collect();
        for spi in dead {
            self.reap(spi, now);
        }
    }

    fn apply(&mut self, e: Effect, now: Instant) {
        match e {
            Effect::Insert(sa) => {
                self.sas.insert(sa.our_spi(), *sa);
            }
            Effect::MoveChildren { from, to } => {
                let children = self
                    .sas
                    .get_mut(&from)
                    .map(|sa| std::mem::take(&mut sa.children))
                    .unwrap_or_default();
                match self.sas.get_mut(&to).filter(|sa| sa.dead.is_none()) {
                    Some(sa) => {
                        sa.children.extend(children);
                        sa.pump(&mut self.ctx, now);
                    }
                    None => {
                        if let Some(sa) = self.sas.get_mut(&from) {
                            sa.children = children;
                            sa.drop_children(&mut self.ctx);
                        }
                    }
                }
            }
            Effect::Established {
                spi,
                initial_contact,
            } => {
                let Some(sa) = self.sas.get_mut(&spi) else {
                    return;
                };
                sa.up = true;
                let peer = sa.peer;
                self.init_index.retain(|_, v| *v != spi);
                if let Some(slot) = peer.and_then(|i| self.peers.get_mut(i)) {
                    slot.restart_at = None;
                }
                if initial_contact {
                    // The peer has no other IKE SA with us: ours are stale [RFC 7296 § 2.4].
                    for (s, other) in self.sas.iter_mut() {
                        if *s != spi
                            && other.peer.is_some()
                            && other.peer == peer
                            && other.up
                            && other.dead.is_none()
                        {
                            other.drop_children(&mut self.ctx);
                            other.kill(DownReason::Replaced, None);
                        }
                    }
                }
            }
        }
    }

    fn reap(&mut self, spi: u64, now: Instant) {
        let Some(mut sa) = self.sas.remove(&spi) else {
            return;
        };
        self.ctx.ike_spis.remove(&spi);
        self.init_index.retain(|_, v| *v != spi);
        sa.drop_children(&mut self.ctx);
        match sa.pending.take().map(|p| p.request) {
            Some(Request::RekeyChild(r)) => {
                self.ctx.child_spis.remove(&r.new_inbound);
            }
            Some(Request::RekeyIke(r)) => {
                self.ctx.ike_spis.remove(&r.new_spi);
            }
            _ => {}
        }
        if let State::ExpectAuthResponse(a) = &sa.state {
            self.ctx.child_spis.remove(&a.child_spi);
        }
        let Some(i) = sa.peer else {
            return;
        };
        let Some(death) = sa.dead else {
            return;
        };
        let peer = self.ctx.config.peers[i].peer;
        let others_up = self
            .sas
            .values()
            .any(|o| o.peer == Some(i) && o.is_established());
        if sa.up && !others_up {
            self.ctx.event(IkeEvent::PeerDown {
                peer,
                reason: death.reason,
            });
        }
        let others_live = self
            .sas
            .values()
            .any(|o| o.peer == Some(i) && o.dead.is_none());
        let slot = &mut self.peers[i];
        if let Some(delay) = death.restart {
            if !slot.stopped && !others_live && self.ctx.config.peers[i].endpoint.is_some() {
                slot.restart_at = Some(after(now, delay));
            }
        }
    }
}
