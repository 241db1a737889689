//! CREATE_CHILD_SA [RFC 7296 § 1.3, § 2.8]: rekeying a CHILD SA (REKEY_SA, new SPIs and
//! nonces, optional PFS), rekeying the IKE SA (new SPIs and keys from the old SK_d
//! [§ 2.18]; the CHILD SAs move to the new IKE SA), a new CHILD SA the peer asks for, and
//! simultaneous rekeys [§ 2.8.1, § 2.8.2]: the SA made by the exchange holding the lowest of
//! the four nonces is redundant and deleted by the side that initiated that exchange.
//!
//! The rekey initiator deletes the replaced SA once the new one is up; until its Delete is
//! answered both SAs receive, so no packet in flight is lost. A request that would race with
//! a rekey under way is answered TEMPORARY_FAILURE [§ 2.25] and tried again later.

use std::time::Instant;

use crate::crypto::{DhGroup, DhPrivateKey, SharedSecret};
use crate::tunnel::ipsec::ike::message::{
    DhGroup as WireGroup, ExchangeType, Header, Ke, Notify, NotifyType, Payload, PayloadChain,
    ProtocolId, Sa, TrafficSelector, Ts,
};

use super::child::{install, negotiate, ChildState, NewChild};
use super::ctx::{after, Ctx};
use super::event::Refusal;
use super::ike_rekey;
use super::ike_sa::{IkeSa, Queued, Request, State};
use super::proposal::{check_esp_answer, esp_answer, esp_offer};
use super::ts::{as_selectors, selectors, within};

/// Our CHILD SA rekey in flight.
pub(super) struct ChildRekey {
    pub old_inbound: u32,
    pub new_inbound: u32,
    pub nonce: Vec<u8>,
    pub dh: Option<DhPrivateKey>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
}

/// The peer's rekey of a CHILD SA we answered while ours of it was in flight.
#[derive(Debug, Clone)]
pub(super) struct ChildCollision {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

/// Whether our exchange (nonces `ours`) holds the lowest of the four nonces, which makes
/// the SA it created the redundant one [RFC 7296 § 2.8.1].
pub(super) fn ours_is_redundant(ours: [&[u8]; 2], theirs: [&[u8]; 2]) -> bool {
    fn low(n: [&[u8]; 2]) -> &[u8] {
        n[0].min(n[1])
    }
    low(ours) < low(theirs)
}

/// The PFS group to offer first: the configured one, or none.
fn pfs_group(sa: &IkeSa, ctx: &Ctx) -> Option<DhGroup> {
    let cfg = sa.peer.and_then(|p| ctx.peer(p))?;
    cfg.esp_proposals.iter().find_map(|p| p.dh.first().copied())
}

/// Sends the rekey of the CHILD SA with inbound SPI `old` (queued earlier), with PFS group
/// `group` instead of the first configured one after an INVALID_KE_PAYLOAD.
pub(super) fn start_child_rekey(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    old: u32,
    group: Option<DhGroup>,
) {
    let established = matches!(sa.state, State::Established);
    let Some(child) = sa.children.iter_mut().find(|c| c.inbound_spi == old) else {
        return;
    };
    if !established || !matches!(child.state, ChildState::Rekeying | ChildState::Installed) {
        if child.state == ChildState::Rekeying {
            child.state = ChildState::Installed;
        }
        return;
    }
    child.state = ChildState::Rekeying;
    let (local_ts, remote_ts) = (child.local_ts.clone(), child.remote_ts.clone());
    let previous = child.choice.dh;
    let Some(cfg) = sa.peer.and_then(|p| ctx.peer(p)).cloned() else {
        return;
    };
    let group = group.or(previous).or_else(|| pfs_group(sa, ctx));
    let dh = match group
        .map(|g| DhPrivateKey::generate(g, &ctx.rng))
        .transpose()
    {
        Ok(dh) => dh,
        Err(_) => return ctx.refuse(sa.peer, None, Refusal::Internal),
    };
    let new_inbound = ctx.new_child_spi(cfg.spi_class);
    let nonce = ctx.nonce();
    let old_bytes = old.to_be_bytes();
    let spi = new_inbound.to_be_bytes();
    let mut inner = PayloadChain::new();
    inner.push(&Payload::Notify(Notify {
        protocol: ProtocolId::ESP,
        notify_type: NotifyType::REKEY_SA,
        spi: &old_bytes,
        data: &[],
    }));
    inner.sa(&esp_offer(&cfg.esp_proposals, &spi, true));
    inner.push(&Payload::Nonce(&nonce));
    if let Some(dh) = &dh {
        inner.push(&Payload::Ke(Ke {
            group: WireGroup(dh.group().transform_id()),
            data: dh.public_value(),
        }));
    }
    inner.ts_i(&as_selectors(&local_ts));
    inner.ts_r(&as_selectors(&remote_ts));
    let r = ChildRekey {
        old_inbound: old,
        new_inbound,
        nonce,
        dh,
        local_ts,
        remote_ts,
    };
    sa.send_request(
        ctx,
        now,
        ExchangeType::CREATE_CHILD_SA,
        &inner,
        Request::RekeyChild(Box::new(r)),
    );
}

/// The payloads of a CREATE_CHILD_SA message.
#[derive(Default)]
pub(super) struct Parts<'a> {
    pub rekey: Option<u32>,
    pub sa: Option<Sa<'a>>,
    pub nonce: Option<&'a [u8]>,
    pub ke: Option<Ke<'a>>,
    pub tsi: Option<Ts<'a>>,
    pub tsr: Option<Ts<'a>>,
    pub error: Option<Notify<'a>>,
}

pub(super) fn parts<'a>(payloads: &[Payload<'a>]) -> Parts<'a> {
    let mut p = Parts::default();
    for x in payloads {
        match x {
            Payload::Notify(n) if n.notify_type == NotifyType::REKEY_SA => {
                p.rekey = <[u8; 4]>::try_from(n.spi).ok().map(u32::from_be_bytes);
            }
            Payload::Notify(n) if n.notify_type.is_error() => p.error = p.error.or(Some(*n)),
            Payload::Sa(sa) => p.sa = p.sa.or(Some(*sa)),
            Payload::Nonce(n) => p.nonce = p.nonce.or(Some(*n)),
            Payload::Ke(k) => p.ke = p.ke.or(Some(*k)),
            Payload::TsI(t) => p.tsi = p.tsi.or(Some(*t)),
            Payload::TsR(t) => p.tsr = p.tsr.or(Some(*t)),
            _ => {}
        }
    }
    p
}

/// The responder's half of a Diffie-Hellman exchange with the peer's public value `peer`:
/// our public value and the shared secret, or what to answer (TEMPORARY_FAILURE when our
/// random generator fails, INVALID_SYNTAX for an unusable public value).
pub(super) fn responder_dh(
    ctx: &Ctx,
    group: DhGroup,
    peer: &[u8],
) -> Result<(Vec<u8>, SharedSecret), (NotifyType, Refusal)> {
    let dh = DhPrivateKey::generate(group, &ctx.rng)
        .map_err(|_| (NotifyType::TEMPORARY_FAILURE, Refusal::Internal))?;
    let public = dh.public_value().to_vec();
    let shared = dh
        .agree(peer)
        .map_err(|_| (NotifyType::INVALID_SYNTAX, Refusal::InvalidKeValue))?;
    Ok((public, shared))
}

pub(super) fn respond_error(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    h: Header,
    notify: NotifyType,
    data: &[u8],
    reason: Refusal,
) {
    ctx.refuse(sa.peer, Some(notify), reason);
    let mut inner = PayloadChain::new();
    inner.push(&Payload::Notify(Notify::new(notify, data)));
    sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, h.message_id, &inner);
}

/// Responder: a CREATE_CHILD_SA request.
pub(super) fn handle_request(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    h: Header,
    payloads: &[Payload<'_>],
) {
    let p = parts(payloads);
    if !matches!(sa.state, State::Established) {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::TEMPORARY_FAILURE,
            &[],
            Refusal::TemporaryFailure,
        );
    }
    let ike =
        p.sa.and_then(|s| s.proposals().next())
            .is_some_and(|x| x.protocol == ProtocolId::IKE);
    if ike {
        return ike_rekey::handle_request(sa, ctx, now, h, p);
    }
    if matches!(
        sa.pending.as_ref().map(|x| &x.request),
        Some(Request::RekeyIke(_))
    ) {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::TEMPORARY_FAILURE,
            &[],
            Refusal::TemporaryFailure,
        );
    }
    child_request(sa, ctx, now, h, p);
}

/// Responder: a rekey of a CHILD SA (REKEY_SA names the SA by the peer's inbound SPI, our
/// outbound one) or a new CHILD SA. A rekey of an SA being rekeyed by us is a collision:
/// we answer it and record its nonces for when our own answer comes. An SA already replaced
/// or being deleted gets TEMPORARY_FAILURE, an unknown one CHILD_SA_NOT_FOUND.
fn child_request(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant, h: Header, p: Parts<'_>) {
    let Some(cfg) = sa.peer.and_then(|i| ctx.peer(i)).cloned() else {
        return;
    };
    let old = match p.rekey {
        None => None,
        Some(spi) => match sa.children.iter().position(|c| c.outbound_spi == spi) {
            None => {
                return respond_error(
                    sa,
                    ctx,
                    h,
                    NotifyType::CHILD_SA_NOT_FOUND,
                    &[],
                    Refusal::ChildSaNotFound,
                )
            }
            Some(i) => Some(i),
        },
    };
    let mut collision = false;
    if let Some(i) = old {
        let inbound = sa.children[i].inbound_spi;
        match sa.children[i].state {
            ChildState::Installed => {}
            ChildState::Rekeying => {
                let ours_in_flight = matches!(sa.pending.as_ref().map(|x| &x.request),
                    Some(Request::RekeyChild(r)) if r.old_inbound == inbound);
                if ours_in_flight {
                    collision = true;
                } else {
                    sa.queue.retain(|q| *q != Queued::RekeyChild(inbound));
                }
            }
            ChildState::Rekeyed(_) | ChildState::Deleting => {
                return respond_error(
                    sa,
                    ctx,
                    h,
                    NotifyType::TEMPORARY_FAILURE,
                    &[],
                    Refusal::TemporaryFailure,
                )
            }
        }
    }
    let ke_group = p.ke.and_then(|k| DhGroup::from_transform(k.group.0));
    let n = match negotiate(&cfg, p.sa, p.tsi, p.tsr, true, ke_group) {
        Ok(n) => n,
        Err((notify, reason)) => return respond_error(sa, ctx, h, notify, &[], reason),
    };
    let Some(ni) = p.nonce else {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::INVALID_SYNTAX,
            &[],
            Refusal::MissingPayload,
        );
    };
    let mut our_ke = None;
    let shared = match n.choice.dh {
        None => None,
        Some(g) => {
            let Some(ke) = p.ke.filter(|k| k.group.0 == g.transform_id()) else {
                let data = g.transform_id().to_be_bytes();
                return respond_error(
                    sa,
                    ctx,
                    h,
                    NotifyType::INVALID_KE_PAYLOAD,
                    &data,
                    Refusal::InvalidKe,
                );
            };
            match responder_dh(ctx, g, ke.data) {
                Ok((public, shared)) => {
                    our_ke = Some(public);
                    Some(shared)
                }
                Err((notify, reason)) => return respond_error(sa, ctx, h, notify, &[], reason),
            }
        }
    };
    let new_inbound = ctx.new_child_spi(cfg.spi_class);
    let nr = ctx.nonce();
    let replaces = old.map(|i| sa.children[i].inbound_spi);
    let child = NewChild {
        exchange_initiator: false,
        choice: n.choice,
        inbound_spi: new_inbound,
        outbound_spi: n.peer_spi,
        pfs_shared: shared.as_ref().map(|s| s.as_ref()),
        ni,
        nr: &nr,
        local_ts: n.tsr.clone(),
        remote_ts: n.tsi.clone(),
        replaces,
    };
    let child = match install(sa, ctx, now, child) {
        Ok(c) => c,
        Err(r) => {
            ctx.child_spis.remove(&new_inbound);
            return respond_error(sa, ctx, h, NotifyType::NO_PROPOSAL_CHOSEN, &[], r);
        }
    };
    sa.children.push(child);
    let linger = after(now, ctx.config.limits.rekeyed_linger);
    if let Some(i) = old {
        let c = &mut sa.children[i];
        if collision {
            c.collision = Some(ChildCollision {
                ni: ni.to_vec(),
                nr: nr.clone(),
            });
        } else {
            // The peer deletes the old SA now that the new one is up.
            c.state = ChildState::Rekeyed(linger);
        }
    }
    let spi = new_inbound.to_be_bytes();
    let mut inner = PayloadChain::new();
    inner.sa(&[esp_answer(n.num, n.choice, &spi)]);
    inner.push(&Payload::Nonce(&nr));
    if let (Some(g), Some(public)) = (n.choice.dh, &our_ke) {
        inner.push(&Payload::Ke(Ke {
            group: WireGroup(g.transform_id()),
            data: public,
        }));
    }
    inner.ts_i(&as_selectors(&n.tsi));
    inner.ts_r(&as_selectors(&n.tsr));
    sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, h.message_id, &inner);
}

/// Initiator: the answer to our CHILD SA rekey.
///
/// Without a collision the new SA replaces the old one, which we delete. With one (the
/// peer rekeyed the same SA while ours was in flight, and we answered it), the four nonces
/// decide: if ours holds the lowest, our new SA is the redundant one and we delete it, and
/// the peer deletes the old one; otherwise the peer deletes its new SA and we the old one.
/// Either way exactly one new SA remains on both sides.
pub(super) fn handle_child_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    mut r: ChildRekey,
    payloads: &[Payload<'_>],
) {
    let p = parts(payloads);
    let l = ctx.config.limits.clone();
    let old = sa
        .children
        .iter()
        .position(|c| c.inbound_spi == r.old_inbound);
    let dh = r.dh.take();
    let sent_group = dh.as_ref().map(|d| d.group());
    let outcome = accept_child_answer(sa, ctx, &r, dh, &p);
    let (peer_spi, choice, shared, tsi, tsr) = match outcome {
        Ok(x) => x,
        Err(err) => {
            ctx.child_spis.remove(&r.new_inbound);
            let Some(i) = old else {
                return;
            };
            // A collision we lost by failing: the peer's new SA replaces the old one.
            if sa.children[i].collision.take().is_some() {
                sa.children[i].state = ChildState::Rekeyed(after(now, l.rekeyed_linger));
                return;
            }
            match err {
                Some(NotifyType::INVALID_KE_PAYLOAD) => {
                    let group = p
                        .error
                        .and_then(|n| n.accepted_group())
                        .and_then(|g| DhGroup::from_transform(g.0));
                    let ours = sa.peer.and_then(|x| ctx.peer(x)).is_some_and(|c| {
                        c.esp_proposals
                            .iter()
                            .any(|e| group.is_some_and(|g| e.dh.contains(&g)))
                    });
                    if ours && group != sent_group {
                        return start_child_rekey(sa, ctx, now, r.old_inbound, group);
                    }
                    sa.children[i].state = ChildState::Installed;
                    sa.children[i].rekey_at = Some(after(now, l.reconnect_delay));
                }
                Some(NotifyType::CHILD_SA_NOT_FOUND) => sa.remove_child(ctx, r.old_inbound),
                Some(NotifyType::TEMPORARY_FAILURE) => {
                    sa.children[i].state = ChildState::Installed;
                    sa.children[i].rekey_at = Some(ctx.retry_at(now));
                }
                _ => {
                    sa.children[i].state = ChildState::Installed;
                    sa.children[i].rekey_at = Some(after(now, l.reconnect_delay));
                }
            }
            return;
        }
    };
    let Some(nr) = p.nonce else {
        return;
    };
    let collision = old.and_then(|i| sa.children[i].collision.take());
    let redundant = collision
        .as_ref()
        .is_some_and(|c| ours_is_redundant([&r.nonce, nr], [&c.ni, &c.nr]));
    let child = NewChild {
        exchange_initiator: true,
        choice,
        inbound_spi: r.new_inbound,
        outbound_spi: peer_spi,
        pfs_shared: shared.as_ref().map(|s| s.as_ref()),
        ni: &r.nonce,
        nr,
        local_ts: tsi,
        remote_ts: tsr,
        replaces: if redundant {
            None
        } else {
            old.map(|_| r.old_inbound)
        },
    };
    match install(sa, ctx, now, child) {
        Ok(c) => sa.children.push(c),
        Err(e) => {
            ctx.refuse(sa.peer, None, e);
            sa.enqueue(Queued::DeleteChild(r.new_inbound));
            return;
        }
    }
    let linger = after(now, l.rekeyed_linger);
    if redundant {
        // The peer's SA survives; it deletes the old one, we delete ours.
        sa.enqueue(Queued::DeleteChild(r.new_inbound));
        if let Some(i) = old {
            sa.children[i].state = ChildState::Rekeyed(linger);
        }
    } else if let Some(i) = old {
        sa.children[i].state = ChildState::Rekeyed(linger);
        sa.enqueue(Queued::DeleteChild(r.old_inbound));
    }
}

type Accepted = (
    u32,
    super::proposal::EspChoice,
    Option<crate::crypto::SharedSecret>,
    Vec<TrafficSelector>,
    Vec<TrafficSelector>,
);

/// Checks the answer to a CHILD SA rekey; `Err(notify)` when it failed (reported here).
fn accept_child_answer(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    r: &ChildRekey,
    dh: Option<DhPrivateKey>,
    p: &Parts<'_>,
) -> Result<Accepted, Option<NotifyType>> {
    if let Some(n) = p.error {
        ctx.refuse(sa.peer, Some(n.notify_type), Refusal::PeerNotify);
        return Err(Some(n.notify_type));
    }
    let cfg = sa.peer.and_then(|x| ctx.peer(x)).cloned();
    let (Some(cfg), Some(answer), Some(_), Some(tsi), Some(tsr)) =
        (cfg, p.sa, p.nonce, p.tsi, p.tsr)
    else {
        ctx.refuse(sa.peer, None, Refusal::MissingPayload);
        return Err(None);
    };
    let Some((peer_spi, choice)) = check_esp_answer(&answer, &cfg.esp_proposals, true) else {
        ctx.refuse(sa.peer, None, Refusal::NoProposalChosen);
        sa.enqueue(Queued::DeleteChild(r.new_inbound));
        return Err(None);
    };
    let shared = match (dh, choice.dh, p.ke) {
        (None, None, _) => None,
        (Some(dh), Some(g), Some(ke)) if dh.group() == g && ke.group.0 == g.transform_id() => {
            match dh.agree(ke.data).ok() {
                Some(s) => Some(s),
                None => {
                    ctx.refuse(sa.peer, None, Refusal::InvalidKeValue);
                    sa.enqueue(Queued::DeleteChild(r.new_inbound));
                    return Err(None);
                }
            }
        }
        _ => {
            ctx.refuse(sa.peer, None, Refusal::InvalidKe);
            sa.enqueue(Queued::DeleteChild(r.new_inbound));
            return Err(None);
        }
    };
    let (tsi, tsr) = (selectors(&tsi), selectors(&tsr));
    if !within(&tsi, &r.local_ts) || !within(&tsr, &r.remote_ts) {
        ctx.refuse(sa.peer, None, Refusal::TsUnacceptable);
        sa.enqueue(Queued::DeleteChild(r.new_inbound));
        return Err(None);
    }
    Ok((peer_spi, choice, shared, tsi, tsr))
}
