//! Rekeying the IKE SA [RFC 7296 § 1.3.2, § 2.18]: a CREATE_CHILD_SA with an IKE proposal
//! carrying the new SPI, nonces and a Diffie-Hellman exchange; the new keys come from the old
//! SK_d. The new IKE SA's original initiator is the rekey's initiator, its Message IDs start
//! at zero, and the CHILD SAs move to it. The initiator then deletes the old IKE SA.
//!
//! Simultaneous rekeys [RFC 7296 § 2.8.2]: the new IKE SA holding the lowest nonce is deleted
//! by the side that created it, and the surviving one inherits the CHILD SAs.

use std::time::Instant;

use crate::crypto::DhPrivateKey;
use crate::tunnel::ipsec::ike::keys::IkeKeys;
use crate::tunnel::ipsec::ike::message::{
    DhGroup as WireGroup, ExchangeType, Header, Ke, NotifyType, Payload, PayloadChain,
};

use super::create_child::{ours_is_redundant, respond_error, responder_dh, Parts};
use super::crypt::SkCrypto;
use super::ctx::{after, Ctx, Effect};
use super::event::{IkeEvent, Refusal};
use super::ike_sa::{IkeCollision, IkeSa, Queued, Request, SaKeys, State};
use super::proposal::{check_ike_answer, ike_answer, ike_offer, select_ike, IkeChoice};

/// Our IKE SA rekey in flight.
pub(super) struct IkeRekey {
    pub new_spi: u64,
    pub nonce: Vec<u8>,
    pub dh: DhPrivateKey,
}

/// Sends a rekey of this IKE SA.
pub(super) fn start(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant) {
    let (State::Established, Some(keys)) = (&sa.state, sa.keys.as_ref()) else {
        return;
    };
    let Some(cfg) = sa.peer.and_then(|p| ctx.peer(p)).cloned() else {
        return;
    };
    let Ok(dh) = DhPrivateKey::generate(keys.choice.dh, &ctx.rng) else {
        return ctx.refuse(sa.peer, None, Refusal::Internal);
    };
    let new_spi = ctx.new_ike_spi();
    let nonce = ctx.nonce();
    let spi = new_spi.to_be_bytes();
    let mut inner = PayloadChain::new();
    inner.sa(&ike_offer(&cfg.ike_proposals, &spi));
    inner.push(&Payload::Nonce(&nonce));
    inner.push(&Payload::Ke(Ke {
        group: WireGroup(dh.group().transform_id()),
        data: dh.public_value(),
    }));
    let r = IkeRekey { new_spi, nonce, dh };
    sa.send_request(
        ctx,
        now,
        ExchangeType::CREATE_CHILD_SA,
        &inner,
        Request::RekeyIke(Box::new(r)),
    );
}

/// The IKE SA that replaces `sa`, without CHILD SAs yet.
#[allow(clippy::too_many_arguments)]
fn successor(
    sa: &IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    choice: IkeChoice,
    keys: IkeKeys,
) -> Option<IkeSa> {
    let sk = SkCrypto::new(choice.suite, &keys, initiator).ok()?;
    let rekey = sa.peer.and_then(|p| ctx.peer(p)).map(|c| c.ike_rekey)?;
    let mut n = IkeSa::new(
        initiator,
        spi_i,
        spi_r,
        sa.local_port,
        sa.remote,
        State::Established,
        now,
    );
    n.peer = sa.peer;
    n.keys = Some(Box::new(SaKeys { choice, keys, sk }));
    n.nat = sa.nat;
    n.fragmentation = sa.fragmentation;
    n.rekey_at = ctx.jittered(now, rekey);
    n.expires_at = Ctx::hard_expiry(now, rekey);
    n.up = true;
    Some(n)
}

/// Responder: the peer rekeys the IKE SA. Refused with TEMPORARY_FAILURE while a CHILD SA
/// exchange of ours is in flight [RFC 7296 § 2.25.2]. The new IKE SA is made at once (the
/// peer may use it as soon as it has our answer); if our own rekey is in flight it gets no
/// CHILD SAs yet, the collision is settled when our answer comes.
pub(super) fn handle_request(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant, h: Header, p: Parts<'_>) {
    let busy = matches!(
        sa.pending.as_ref().map(|x| &x.request),
        Some(Request::RekeyChild(_) | Request::DeleteChild(_))
    );
    if busy {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::TEMPORARY_FAILURE,
            &[],
            Refusal::TemporaryFailure,
        );
    }
    let (Some(cfg), Some(keys)) = (sa.peer.and_then(|i| ctx.peer(i)).cloned(), sa.keys.as_ref())
    else {
        return;
    };
    let (Some(offer), Some(ni), Some(ke)) = (p.sa, p.nonce, p.ke) else {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::INVALID_SYNTAX,
            &[],
            Refusal::MissingPayload,
        );
    };
    let ke_group = crate::crypto::DhGroup::from_transform(ke.group.0);
    let Some((num, choice, _)) = select_ike(&offer, [&cfg.ike_proposals[..]].into_iter(), ke_group)
    else {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::NO_PROPOSAL_CHOSEN,
            &[],
            Refusal::NoProposalChosen,
        );
    };
    if ke_group != Some(choice.dh) {
        let data = choice.dh.transform_id().to_be_bytes();
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::INVALID_KE_PAYLOAD,
            &data,
            Refusal::InvalidKe,
        );
    }
    let peer_spi = offer
        .proposals()
        .find(|x| x.num == num)
        .and_then(|x| <[u8; 8]>::try_from(x.spi).ok())
        .map(u64::from_be_bytes)
        .filter(|s| *s != 0);
    let Some(peer_spi) = peer_spi else {
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::INVALID_SYNTAX,
            &[],
            Refusal::MissingPayload,
        );
    };
    let (public, shared) = match responder_dh(ctx, choice.dh, ke.data) {
        Ok(x) => x,
        Err((notify, reason)) => return respond_error(sa, ctx, h, notify, &[], reason),
    };
    let our_spi = ctx.new_ike_spi();
    let nr = ctx.nonce();
    let old_prf = keys.choice.suite.prf;
    let new_keys = IkeKeys::rekey(
        old_prf,
        &keys.keys.sk_d,
        choice.suite,
        ni,
        &nr,
        shared.as_ref(),
        &peer_spi.to_be_bytes(),
        &our_spi.to_be_bytes(),
    );
    let next = new_keys
        .ok()
        .and_then(|k| successor(sa, ctx, now, false, peer_spi, our_spi, choice, k));
    let Some(mut next) = next else {
        ctx.ike_spis.remove(&our_spi);
        return respond_error(
            sa,
            ctx,
            h,
            NotifyType::NO_PROPOSAL_CHOSEN,
            &[],
            Refusal::Internal,
        );
    };
    let spi = our_spi.to_be_bytes();
    let mut inner = PayloadChain::new();
    inner.sa(&[ike_answer(num, choice, &spi)]);
    inner.push(&Payload::Nonce(&nr));
    inner.push(&Payload::Ke(Ke {
        group: WireGroup(choice.dh.transform_id()),
        data: &public,
    }));
    sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, h.message_id, &inner);
    let ours_in_flight = matches!(
        sa.pending.as_ref().map(|x| &x.request),
        Some(Request::RekeyIke(_))
    );
    if ours_in_flight {
        sa.collision = Some(IkeCollision {
            sibling: our_spi,
            ni: ni.to_vec(),
            nr,
        });
    } else {
        sa.queue.retain(|q| *q != Queued::RekeyIke);
        retire(sa, ctx, now, &mut next);
    }
    ctx.effects.push(Effect::Insert(Box::new(next)));
}

/// Moves the CHILD SAs of `sa` to `next` and leaves `sa` waiting for its Delete.
fn retire(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant, next: &mut IkeSa) {
    next.children.append(&mut sa.children);
    sa.state = State::Rekeyed;
    sa.rekey_at = None;
    sa.expires_at = None;
    sa.linger_until = Some(after(now, ctx.config.limits.rekeyed_linger));
    sa.queue.retain(|q| matches!(q, Queued::DeleteIke));
    if let Some(peer) = ctx.peer_id(sa.peer) {
        ctx.event(IkeEvent::IkeSaRekeyed { peer });
    }
}

/// Initiator: the answer to our IKE SA rekey. On failure, a peer's new IKE SA from a
/// collision inherits the CHILD SAs; otherwise the rekey is tried again later.
pub(super) fn handle_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    r: IkeRekey,
    payloads: &[Payload<'_>],
) {
    let p = super::create_child::parts(payloads);
    let l = ctx.config.limits.clone();
    let accepted = accept(sa, ctx, now, r, &p);
    let Some((mut next, ni)) = accepted else {
        match sa.collision.take() {
            // Ours failed, the peer's made a new IKE SA: the CHILD SAs go there.
            Some(c) => {
                ctx.effects.push(Effect::MoveChildren {
                    from: sa.our_spi(),
                    to: c.sibling,
                });
                sa.state = State::Rekeyed;
                sa.linger_until = Some(after(now, l.rekeyed_linger));
                if let Some(peer) = ctx.peer_id(sa.peer) {
                    ctx.event(IkeEvent::IkeSaRekeyed { peer });
                }
            }
            None if sa.is_established() && sa.rekey_at.is_none() => {
                let temporary = p
                    .error
                    .is_some_and(|n| n.notify_type == NotifyType::TEMPORARY_FAILURE);
                sa.rekey_at = Some(if temporary {
                    ctx.retry_at(now)
                } else {
                    after(now, l.reconnect_delay)
                });
            }
            None => {}
        }
        return;
    };
    let redundant = sa.collision.take().filter(|c| {
        let nr = p.nonce.unwrap_or_default();
        ours_is_redundant([&ni, nr], [&c.ni, &c.nr])
    });
    match redundant {
        Some(c) => {
            // Ours holds the lowest nonce: it goes, the peer's inherits the CHILD SAs, and
            // the peer deletes the old IKE SA.
            next.enqueue(Queued::DeleteIke);
            ctx.effects.push(Effect::MoveChildren {
                from: sa.our_spi(),
                to: c.sibling,
            });
            sa.state = State::Rekeyed;
            sa.linger_until = Some(after(now, l.rekeyed_linger));
            if let Some(peer) = ctx.peer_id(sa.peer) {
                ctx.event(IkeEvent::IkeSaRekeyed { peer });
            }
        }
        None => {
            retire(sa, ctx, now, &mut next);
            sa.enqueue(Queued::DeleteIke);
        }
    }
    next.pump(ctx, now);
    ctx.effects.push(Effect::Insert(Box::new(next)));
}

/// Checks the answer and builds the new IKE SA; `None` (reported) if it failed.
fn accept(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    r: IkeRekey,
    p: &Parts<'_>,
) -> Option<(IkeSa, Vec<u8>)> {
    let fail = |ctx: &mut Ctx, sa: &IkeSa, notify, reason| {
        ctx.ike_spis.remove(&r.new_spi);
        ctx.refuse(sa.peer, notify, reason);
    };
    if let Some(n) = p.error {
        fail(ctx, sa, Some(n.notify_type), Refusal::PeerNotify);
        return None;
    }
    let cfg = sa.peer.and_then(|i| ctx.peer(i)).cloned();
    let (Some(cfg), Some(keys), Some(answer), Some(nr), Some(ke)) =
        (cfg, sa.keys.as_ref(), p.sa, p.nonce, p.ke)
    else {
        fail(ctx, sa, None, Refusal::MissingPayload);
        return None;
    };
    let choice = check_ike_answer(&answer, &cfg.ike_proposals);
    let peer_spi = answer
        .proposals()
        .next()
        .and_then(|x| <[u8; 8]>::try_from(x.spi).ok())
        .map(u64::from_be_bytes)
        .filter(|s| *s != 0);
    let (Some(choice), Some(peer_spi)) = (choice, peer_spi) else {
        fail(ctx, sa, None, Refusal::NoProposalChosen);
        return None;
    };
    if choice.dh != r.dh.group() || ke.group.0 != choice.dh.transform_id() {
        fail(ctx, sa, None, Refusal::InvalidKe);
        return None;
    }
    let Ok(shared) = r.dh.agree(ke.data) else {
        fail(ctx, sa, None, Refusal::InvalidKeValue);
        return None;
    };
    let old_prf = keys.choice.suite.prf;
    let new_keys = IkeKeys::rekey(
        old_prf,
        &keys.keys.sk_d,
        choice.suite,
        &r.nonce,
        nr,
        shared.as_ref(),
        &r.new_spi.to_be_bytes(),
        &peer_spi.to_be_bytes(),
    );
    let next = new_keys
        .ok()
        .and_then(|k| successor(sa, ctx, now, true, r.new_spi, peer_spi, choice, k));
    let Some(next) = next else {
        fail(ctx, sa, None, Refusal::Internal);
        return None;
    };
    Some((next, r.nonce))
}
