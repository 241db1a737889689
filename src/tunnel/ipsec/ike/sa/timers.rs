//! The timers of an IKE SA: retransmission with exponential backoff and giving up
//! [RFC 7296 § 2.1], liveness checks after inbound silence [§ 2.4], rekeys, the expiry of
//! half-open and replaced SAs and of unfinished reassembly.

use std::time::{Duration, Instant};

use super::child::ChildState;
use super::config::DpdAction;
use super::ctx::{after, Ctx};
use super::event::{DownReason, IkeEvent};
use super::ike_sa::{IkeSa, Queued, Request, State};

impl IkeSa {
    /// Runs the timers that are due.
    pub(super) fn handle_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.dead.is_some() {
            return;
        }
        self.retransmit(ctx, now);
        if self.dead.is_some() {
            return;
        }
        for slot in &mut self.reassembly {
            if slot.as_ref().is_some_and(|r| r.deadline <= now) {
                *slot = None;
            }
        }
        match self.state {
            State::ExpectIkeAuth(_)
                if now >= after(self.created, ctx.config.limits.half_open_timeout) =>
            {
                self.kill(DownReason::Failed, None);
                return;
            }
            State::Rekeyed if self.linger_until.is_some_and(|t| now >= t) => {
                self.kill(DownReason::DeletedLocally, None);
                return;
            }
            State::Established => self.established_timers(ctx, now),
            _ => {}
        }
        let expired: Vec<u32> = self
            .children
            .iter()
            .filter(|c| matches!(c.state, ChildState::Rekeyed(t) if now >= t))
            .map(|c| c.inbound_spi)
            .collect();
        for spi in expired {
            self.remove_child(ctx, spi);
        }
        self.pump(ctx, now);
    }

    fn established_timers(&mut self, ctx: &mut Ctx, now: Instant) {
        let Some(cfg) = self.peer.and_then(|p| ctx.peer(p)) else {
            return;
        };
        let dpd = cfg.dpd_interval;
        if let Some(at) = self.dpd_at(dpd) {
            if now >= at {
                self.enqueue(Queued::Dpd);
            }
        }
        if self.rekey_at.is_some_and(|t| now >= t) {
            self.rekey_at = None;
            self.enqueue(Queued::RekeyIke);
        }
        for c in &mut self.children {
            if c.state == ChildState::Installed && c.rekey_at.is_some_and(|t| now >= t) {
                c.rekey_at = None;
                c.state = ChildState::Rekeying;
                self.queue.push_back(Queued::RekeyChild(c.inbound_spi));
            }
        }
        // Hard lifetimes: what was not rekeyed in time (the peer refused, or keeps failing)
        // goes [RFC 4301 § 4.4.2.1].
        let expired: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.is_live() && c.expires_at.is_some_and(|t| now >= t))
            .map(|c| c.inbound_spi)
            .collect();
        for spi in expired {
            self.expire_child(ctx, spi);
        }
        if self.expires_at.is_some_and(|t| now >= t) {
            self.expires_at = None;
            self.expire(ctx);
        }
    }

    /// Ends the IKE SA at its hard lifetime (or when its last CHILD SA reached its own): a
    /// Delete, and a peer we initiate to is initiated again once it is answered.
    fn expire(&mut self, ctx: &mut Ctx) {
        if self.expired {
            return;
        }
        self.expired = true;
        if let Some(peer) = ctx.peer_id(self.peer) {
            ctx.event(IkeEvent::IkeSaExpired { peer });
        }
        match self.pending.as_ref().map(|p| &p.request) {
            // A liveness check is answered (or times out) soon; the Delete follows it.
            None | Some(Request::Dpd) => self.enqueue(Queued::DeleteIke),
            // A request (the failing rekey, most likely) is unanswered: the window holds no
            // Delete, and the peer does not answer anyway. The SA ends now.
            Some(_) => {
                self.drop_children(ctx);
                let restart = self.peer.and_then(|p| ctx.peer(p)).is_some_and(|c| {
                    c.start == super::config::Start::Initiate && c.endpoint.is_some()
                });
                self.kill(DownReason::Expired, restart.then_some(Duration::ZERO));
            }
        }
    }

    /// Deletes a CHILD SA at its hard lifetime: the data path stops using it at once, and
    /// the peer is told. If it was the IKE SA's last one, the IKE SA goes too (and a peer we
    /// initiate to gets a new one): an IKE SA without CHILD SAs carries nothing.
    pub(super) fn expire_child(&mut self, ctx: &mut Ctx, spi: u32) {
        if let Some(peer) = ctx.peer_id(self.peer) {
            ctx.event(IkeEvent::ChildSaExpired {
                peer,
                inbound_spi: spi,
            });
        }
        self.remove_child(ctx, spi);
        if self.children.iter().any(|c| c.is_live()) {
            self.enqueue(Queued::DeleteChild(spi));
        } else {
            self.expire(ctx);
        }
    }

    /// When the next liveness check is due, if the window is idle.
    fn dpd_at(&self, interval: Duration) -> Option<Instant> {
        let idle = self.pending.is_none() && self.queue.is_empty();
        (idle && !interval.is_zero()).then(|| after(self.last_inbound, interval))
    }

    /// Sends the request in flight again after `timeout × base^n`, or gives up: after the
    /// last try, or at a liveness check's deadline. Giving up ends the IKE SA (the peer is
    /// unreachable, so nothing is sent) and restarts peers with `dpd_action: restart`.
    fn retransmit(&mut self, ctx: &mut Ctx, now: Instant) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let l = &ctx.config.limits;
        let expired = p.deadline.is_some_and(|d| now >= d);
        if !expired && now < p.next {
            return;
        }
        if !expired && p.retransmits < l.retransmit_tries {
            p.retransmits += 1;
            // timeout × base^n, as far as a Duration goes (the configuration may be odd).
            let secs =
                l.retransmit_timeout.as_secs_f64() * l.retransmit_base.powi(p.retransmits as i32);
            let wait = Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(3600));
            p.next = after(now, wait);
            let (exchange, attempt) = (p.exchange, p.retransmits);
            for d in p.datagrams.clone() {
                ctx.send(self.local_port, self.remote, d);
            }
            let peer = ctx.peer_id(self.peer);
            ctx.event(IkeEvent::Retransmit {
                peer,
                exchange,
                attempt,
            });
            return;
        }
        let exchange = p.exchange;
        let dpd = matches!(p.request, Request::Dpd);
        self.pending = None;
        let peer = ctx.peer_id(self.peer);
        ctx.event(IkeEvent::GaveUp { peer, exchange });
        let restart = self.peer.and_then(|p| ctx.peer(p)).and_then(|c| {
            (c.dpd_action == DpdAction::Restart && c.endpoint.is_some()).then_some(Duration::ZERO)
        });
        let reason = if dpd {
            DownReason::DpdTimeout
        } else {
            DownReason::GaveUp
        };
        self.kill(reason, restart);
    }

    /// When [`IkeSa::handle_timeout`] is next due.
    pub(super) fn next_timeout(&self, ctx: &Ctx) -> Option<Instant> {
        if self.dead.is_some() {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if let Some(p) = &self.pending {
            at(Some(p.next));
            at(p.deadline);
        }
        for r in self.reassembly.iter().flatten() {
            at(Some(r.deadline));
        }
        match self.state {
            State::ExpectIkeAuth(_) => at(Some(after(
                self.created,
                ctx.config.limits.half_open_timeout,
            ))),
            State::Rekeyed => at(self.linger_until),
            // The timers `established_timers` runs, which need the peer's configuration (an
            // SA whose peer left it only finishes its exchanges and its Delete).
            State::Established => {
                if let Some(cfg) = self.peer.and_then(|p| ctx.peer(p)) {
                    at(self.dpd_at(cfg.dpd_interval));
                    at(self.rekey_at);
                    at(self.expires_at);
                    for c in &self.children {
                        if c.state == ChildState::Installed {
                            at(c.rekey_at);
                        }
                        if c.is_live() {
                            at(c.expires_at);
                        }
                    }
                }
            }
            _ => {}
        }
        for c in &self.children {
            if let ChildState::Rekeyed(until) = c.state {
                at(Some(until));
            }
        }
        t
    }
}
