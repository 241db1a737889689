//! INFORMATIONAL exchanges [RFC 7296 § 1.4, § 1.5]: Delete of CHILD SAs (answered with the
//! matching SPIs of ours, except for SAs we are deleting ourselves at the same time
//! [§ 1.4.1]) and of the IKE SA, liveness checks (an empty request), and the
//! AUTHENTICATION_FAILED an initiator sends after IKE_AUTH [§ 2.21.2].

use std::time::{Duration, Instant};

use crate::tunnel::ipsec::ike::message::{
    Delete, ExchangeType, Header, NotifyType, Payload, PayloadChain, ProtocolId,
};

use super::child::ChildState;
use super::config::Start;
use super::ctx::{Ctx, Effect};
use super::event::{DownReason, Refusal};
use super::ike_sa::{IkeSa, Queued, Request, State};

/// Sends a queued liveness check or Delete.
pub(super) fn start(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant, q: Queued) {
    let mut inner = PayloadChain::new();
    let request = match q {
        Queued::Dpd => {
            if !matches!(sa.state, State::Established) {
                return;
            }
            Request::Dpd
        }
        Queued::DeleteIke => {
            if matches!(sa.state, State::Deleting) {
                return;
            }
            inner.push(&Payload::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: &[],
            }));
            sa.state = State::Deleting;
            Request::DeleteIke
        }
        Queued::DeleteChild(spi) => {
            if let Some(c) = sa.children.iter_mut().find(|c| c.inbound_spi == spi) {
                c.state = ChildState::Deleting;
            }
            let spis = spi.to_be_bytes();
            inner.push(&Payload::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: &spis,
            }));
            sa.send_request(
                ctx,
                now,
                ExchangeType::INFORMATIONAL,
                &inner,
                Request::DeleteChild(vec![spi]),
            );
            return;
        }
        Queued::RekeyChild(_) | Queued::RekeyIke => return,
    };
    sa.send_request(ctx, now, ExchangeType::INFORMATIONAL, &inner, request);
}

/// The IKE SA goes at the peer's request: its CHILD SAs go with it, unless a rekey collision
/// already made a successor for them. A peer we keep the tunnel up with (`start: initiate`)
/// is initiated again after `reconnect_delay` (strongSwan's `close_action = start`), unless
/// another IKE SA with it lives on (a rekey's): else a facility that restarts its daemon,
/// which deletes its IKE SAs and then waits for us, would stay down for good.
fn deleted_by_peer(sa: &mut IkeSa, ctx: &mut Ctx) {
    match sa.collision.take() {
        Some(c) if !sa.children.is_empty() => ctx.effects.push(Effect::MoveChildren {
            from: sa.our_spi(),
            to: c.sibling,
        }),
        _ => sa.drop_children(ctx),
    }
    sa.pending = None;
    let restart = sa
        .peer
        .and_then(|p| ctx.peer(p))
        .is_some_and(|c| c.start == Start::Initiate)
        .then_some(ctx.config.limits.reconnect_delay);
    sa.kill(DownReason::DeletedByPeer, restart);
}

/// Responder: an INFORMATIONAL request.
pub(super) fn handle_request(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    _now: Instant,
    h: Header,
    payloads: &[Payload<'_>],
) {
    let mut ours: Vec<u8> = Vec::new();
    let mut delete_ike = false;
    for p in payloads {
        match p {
            Payload::Delete(d) if d.protocol == ProtocolId::IKE => delete_ike = true,
            Payload::Delete(d) if d.protocol == ProtocolId::ESP && d.spi_size == 4 => {
                for spi in d.spis() {
                    let Ok(spi) = <[u8; 4]>::try_from(spi).map(u32::from_be_bytes) else {
                        continue;
                    };
                    let Some(c) = sa.children.iter().find(|c| c.outbound_spi == spi) else {
                        continue;
                    };
                    let inbound = c.inbound_spi;
                    if c.state != ChildState::Deleting {
                        ours.extend_from_slice(&inbound.to_be_bytes());
                    }
                    sa.remove_child(ctx, inbound);
                }
            }
            Payload::Notify(n) if n.notify_type == NotifyType::AUTHENTICATION_FAILED => {
                ctx.refuse(sa.peer, Some(n.notify_type), Refusal::PeerNotify);
                delete_ike = true;
            }
            _ => {}
        }
    }
    let mut inner = PayloadChain::new();
    if !ours.is_empty() {
        inner.push(&Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: &ours,
        }));
    }
    sa.send_response(ctx, ExchangeType::INFORMATIONAL, h.message_id, &inner);
    if delete_ike {
        deleted_by_peer(sa, ctx);
    }
}

/// Initiator: the answer to our liveness check or Delete.
pub(super) fn handle_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    _now: Instant,
    request: Request,
    _payloads: &[Payload<'_>],
) {
    match request {
        Request::DeleteIke if sa.expired => {
            sa.drop_children(ctx);
            let initiate = sa
                .peer
                .and_then(|p| ctx.peer(p))
                .is_some_and(|c| c.start == Start::Initiate && c.endpoint.is_some());
            sa.kill(DownReason::Expired, initiate.then_some(Duration::ZERO));
        }
        Request::DeleteIke => {
            sa.drop_children(ctx);
            sa.kill(DownReason::DeletedLocally, None);
        }
        Request::DeleteChild(spis) => {
            for spi in spis {
                sa.remove_child(ctx, spi);
            }
        }
        _ => {}
    }
}
