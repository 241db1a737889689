//! IKE_AUTH [RFC 7296 § 1.2, § 2.15]: identities, AUTH (pre-shared key, or certificates
//! through [`super::config::CertificateAuth`], with CERT and CERTREQ), and the first CHILD SA.
//!
//! The responder finds the peer by IDi among those its source address allowed, checks AUTH,
//! and answers AUTHENTICATION_FAILED (and forgets the IKE SA) when either fails. A CHILD SA
//! that cannot be agreed (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE) leaves the IKE SA up without
//! it [RFC 7296 § 1.2]. The initiator checks IDr and AUTH the same way, and that the CHILD SA
//! answered is one of its proposals inside its traffic selectors; an IKE SA it cannot
//! authenticate is reported with an INFORMATIONAL AUTHENTICATION_FAILED [§ 2.21.2] and
//! forgotten.

use std::time::Instant;

use crate::tunnel::ipsec::ike::message::{
    Auth, Cert, CertEncoding, CertReq, ExchangeType, Header, Id, Notify, NotifyType, Payload,
    PayloadChain, Sa, Ts,
};

use super::auth::{certificate, id_is, sign, signed_octets, verify};
use super::child::{install, negotiate, NewChild};
use super::config::{DpdAction, IkePeerConfig};
use super::ctx::{Ctx, Effect};
use super::event::{DownReason, IkeEvent, Refusal};
use super::ike_sa::{AuthContext, IkeSa, Queued, Request, State};
use super::proposal::{allows_ike, check_esp_answer, esp_answer, esp_offer};
use super::ts::{as_selectors, from_prefixes, selectors, within};

/// The payloads of an IKE_AUTH message that this module reads.
#[derive(Default)]
struct Parts<'a> {
    idi: Option<Id<'a>>,
    idr: Option<Id<'a>>,
    auth: Option<Auth<'a>>,
    certs: Vec<&'a [u8]>,
    sa: Option<Sa<'a>>,
    tsi: Option<Ts<'a>>,
    tsr: Option<Ts<'a>>,
    initial_contact: bool,
    error: Option<NotifyType>,
    eap: bool,
}

fn parts<'a>(payloads: &[Payload<'a>]) -> Parts<'a> {
    let mut p = Parts::default();
    for x in payloads {
        match x {
            Payload::IdI(id) => p.idi = p.idi.or(Some(*id)),
            Payload::IdR(id) => p.idr = p.idr.or(Some(*id)),
            Payload::Auth(a) => p.auth = p.auth.or(Some(*a)),
            Payload::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => p.certs.push(c.data),
            Payload::Sa(sa) => p.sa = p.sa.or(Some(*sa)),
            Payload::TsI(ts) => p.tsi = p.tsi.or(Some(*ts)),
            Payload::TsR(ts) => p.tsr = p.tsr.or(Some(*ts)),
            Payload::Notify(n) if n.notify_type == NotifyType::INITIAL_CONTACT => {
                p.initial_contact = true
            }
            Payload::Notify(n) if n.notify_type.is_error() => {
                p.error = p.error.or(Some(n.notify_type))
            }
            Payload::Eap(_) => p.eap = true,
            _ => {}
        }
    }
    p
}

/// Our CERT payloads, for certificate authentication.
fn push_certificates(inner: &mut PayloadChain, cfg: &IkePeerConfig) {
    if let Some(c) = certificate(&cfg.auth) {
        for der in c.certificates() {
            inner.push(&Payload::Cert(Cert {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &der,
            }));
        }
    }
}

/// Initiator: sends IKE_AUTH once IKE_SA_INIT is done.
pub(super) fn start(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant, mut a: AuthContext) {
    let (Some(index), Some(keys)) = (sa.peer, sa.keys.as_ref()) else {
        return;
    };
    let Some(cfg) = ctx.peer(index).cloned() else {
        return;
    };
    let prf = keys.choice.suite.prf;
    let local_id = ctx.config.local_id.clone();
    let idi = Id::new(local_id.id_type, &local_id.data);
    let octets = signed_octets(prf, &keys.keys.sk_pi, &a.init_request, &a.nr, &idi);
    let auth = match sign(&cfg.auth, prf, &octets) {
        Ok(x) => x,
        Err(r) => {
            ctx.refuse(sa.peer, None, r);
            sa.kill(DownReason::Failed, None);
            return;
        }
    };
    a.child_spi = ctx.new_child_spi(cfg.spi_class);
    a.tsi = from_prefixes(&cfg.local_ts);
    a.tsr = from_prefixes(&cfg.remote_ts);
    let spi = a.child_spi.to_be_bytes();
    let mut inner = PayloadChain::new();
    inner.push(&Payload::IdI(idi));
    push_certificates(&mut inner, &cfg);
    if sa.send_initial_contact() {
        inner.push(&Payload::Notify(Notify::new(
            NotifyType::INITIAL_CONTACT,
            &[],
        )));
    }
    if let Some(req) = certificate(&cfg.auth).and_then(|c| c.certificate_request()) {
        inner.push(&Payload::CertReq(CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &req,
        }));
    }
    inner.push(&Payload::IdR(Id::new(
        cfg.remote_id.id_type,
        &cfg.remote_id.data,
    )));
    inner.push(&Payload::Auth(Auth {
        method: auth.0,
        data: &auth.1,
    }));
    inner.sa(&esp_offer(&cfg.esp_proposals, &spi, false));
    inner.ts_i(&as_selectors(&a.tsi));
    inner.ts_r(&as_selectors(&a.tsr));
    sa.state = State::ExpectAuthResponse(Box::new(a));
    sa.send_request(ctx, now, ExchangeType::IKE_AUTH, &inner, Request::IkeAuth);
}

/// Fails the half-open SA of a responder with AUTHENTICATION_FAILED.
fn refuse_auth(sa: &mut IkeSa, ctx: &mut Ctx, h: Header, reason: Refusal) {
    ctx.refuse(sa.peer, Some(NotifyType::AUTHENTICATION_FAILED), reason);
    sa.respond_notify(
        ctx,
        ExchangeType::IKE_AUTH,
        h.message_id,
        NotifyType::AUTHENTICATION_FAILED,
    );
    sa.kill(DownReason::Failed, None);
}

/// Responder: the IKE_AUTH request.
pub(super) fn handle_request(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    h: Header,
    payloads: &[Payload<'_>],
) {
    let p = parts(payloads);
    let State::ExpectIkeAuth(a) = std::mem::replace(&mut sa.state, State::Established) else {
        return;
    };
    let Some(keys) = sa.keys.as_ref() else {
        return;
    };
    let (Some(idi), Some(auth)) = (p.idi, p.auth) else {
        let reason = if p.eap {
            Refusal::Unsupported
        } else {
            Refusal::MissingPayload
        };
        return refuse_auth(sa, ctx, h, reason);
    };
    let local_id = ctx.config.local_id.clone();
    if p.idr.is_some_and(|idr| !id_is(&idr, &local_id)) {
        return refuse_auth(sa, ctx, h, Refusal::IdMismatch);
    }
    let Some(index) = sa
        .candidates
        .iter()
        .copied()
        .find(|&i| ctx.peer(i).is_some_and(|c| id_is(&idi, &c.remote_id)))
    else {
        return refuse_auth(sa, ctx, h, Refusal::IdMismatch);
    };
    sa.peer = Some(index);
    let Some(cfg) = ctx.peer(index).cloned() else {
        return;
    };
    if !allows_ike(&cfg.ike_proposals, &keys.choice) {
        return refuse_auth(sa, ctx, h, Refusal::NoProposalChosen);
    }
    let prf = keys.choice.suite.prf;
    let octets = signed_octets(prf, &keys.keys.sk_pi, &a.init_request, &a.nr, &idi);
    if let Err(r) = verify(&cfg.auth, prf, &octets, &cfg.remote_id, &p.certs, &auth) {
        return refuse_auth(sa, ctx, h, r);
    }
    let idr = Id::new(local_id.id_type, &local_id.data);
    let octets = signed_octets(prf, &keys.keys.sk_pr, &a.init_response, &a.ni, &idr);
    let our_auth = match sign(&cfg.auth, prf, &octets) {
        Ok(x) => x,
        Err(r) => return refuse_auth(sa, ctx, h, r),
    };
    sa.state = State::Established;
    sa.rekey_at = ctx.jittered(now, cfg.ike_rekey);
    sa.expires_at = Ctx::hard_expiry(now, cfg.ike_rekey);
    ctx.event(IkeEvent::IkeSaUp {
        peer: cfg.peer,
        remote: sa.remote,
    });
    ctx.effects.push(Effect::Established {
        spi: sa.our_spi(),
        initial_contact: p.initial_contact,
    });

    let mut inner = PayloadChain::new();
    inner.push(&Payload::IdR(idr));
    push_certificates(&mut inner, &cfg);
    inner.push(&Payload::Auth(Auth {
        method: our_auth.0,
        data: &our_auth.1,
    }));
    if p.sa.is_some() || p.tsi.is_some() {
        match negotiate(&cfg, p.sa, p.tsi, p.tsr, false, None) {
            Ok(n) => {
                let spi = ctx.new_child_spi(cfg.spi_class);
                let child = NewChild {
                    exchange_initiator: false,
                    choice: n.choice,
                    inbound_spi: spi,
                    outbound_spi: n.peer_spi,
                    pfs_shared: None,
                    ni: &a.ni,
                    nr: &a.nr,
                    local_ts: n.tsr.clone(),
                    remote_ts: n.tsi.clone(),
                    replaces: None,
                };
                match install(sa, ctx, now, child) {
                    Ok(c) => {
                        sa.children.push(c);
                        let spi = spi.to_be_bytes();
                        inner.sa(&[esp_answer(n.num, n.choice, &spi)]);
                        inner.ts_i(&as_selectors(&n.tsi));
                        inner.ts_r(&as_selectors(&n.tsr));
                    }
                    Err(r) => {
                        ctx.child_spis.remove(&spi);
                        ctx.refuse(sa.peer, Some(NotifyType::NO_PROPOSAL_CHOSEN), r);
                        inner.push(&Payload::Notify(Notify::new(
                            NotifyType::NO_PROPOSAL_CHOSEN,
                            &[],
                        )));
                    }
                }
            }
            Err((notify, reason)) => {
                ctx.refuse(sa.peer, Some(notify), reason);
                inner.push(&Payload::Notify(Notify::new(notify, &[])));
            }
        }
    }
    sa.send_response(ctx, ExchangeType::IKE_AUTH, h.message_id, &inner);
}

/// Initiator: an IKE SA we cannot authenticate; we tell the peer and forget it.
fn fail_auth(sa: &mut IkeSa, ctx: &mut Ctx, reason: Refusal) {
    ctx.refuse(sa.peer, Some(NotifyType::AUTHENTICATION_FAILED), reason);
    let mut inner = PayloadChain::new();
    inner.push(&Payload::Notify(Notify::new(
        NotifyType::AUTHENTICATION_FAILED,
        &[],
    )));
    sa.send_unanswered(ctx, ExchangeType::INFORMATIONAL, &inner);
    let restart = retry_later(sa, ctx);
    sa.kill(DownReason::Failed, restart);
}

fn retry_later(sa: &IkeSa, ctx: &Ctx) -> Option<std::time::Duration> {
    let cfg = sa.peer.and_then(|p| ctx.peer(p))?;
    (cfg.dpd_action == DpdAction::Restart).then_some(ctx.config.limits.reconnect_delay)
}

/// Initiator: the IKE_AUTH response.
pub(super) fn handle_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    payloads: &[Payload<'_>],
) {
    let p = parts(payloads);
    let State::ExpectAuthResponse(a) = std::mem::replace(&mut sa.state, State::Established) else {
        return;
    };
    let (Some(index), Some(keys)) = (sa.peer, sa.keys.as_ref()) else {
        return;
    };
    let Some(cfg) = ctx.peer(index).cloned() else {
        return;
    };
    let (Some(idr), Some(auth)) = (p.idr, p.auth) else {
        ctx.child_spis.remove(&a.child_spi);
        let (notify, reason) = match p.error {
            Some(n) => (Some(n), Refusal::PeerNotify),
            None => (None, Refusal::MissingPayload),
        };
        ctx.refuse(sa.peer, notify, reason);
        let restart = retry_later(sa, ctx);
        sa.kill(DownReason::Failed, restart);
        return;
    };
    if !id_is(&idr, &cfg.remote_id) {
        ctx.child_spis.remove(&a.child_spi);
        return fail_auth(sa, ctx, Refusal::IdMismatch);
    }
    let prf = keys.choice.suite.prf;
    let octets = signed_octets(prf, &keys.keys.sk_pr, &a.init_response, &a.ni, &idr);
    if let Err(r) = verify(&cfg.auth, prf, &octets, &cfg.remote_id, &p.certs, &auth) {
        ctx.child_spis.remove(&a.child_spi);
        return fail_auth(sa, ctx, r);
    }
    sa.state = State::Established;
    sa.rekey_at = ctx.jittered(now, cfg.ike_rekey);
    sa.expires_at = Ctx::hard_expiry(now, cfg.ike_rekey);
    ctx.event(IkeEvent::IkeSaUp {
        peer: cfg.peer,
        remote: sa.remote,
    });
    ctx.effects.push(Effect::Established {
        spi: sa.our_spi(),
        initial_contact: false,
    });
    let Some(answer) = p.sa else {
        ctx.child_spis.remove(&a.child_spi);
        let notify = p.error.unwrap_or(NotifyType::NO_PROPOSAL_CHOSEN);
        ctx.refuse(sa.peer, Some(notify), Refusal::PeerNotify);
        return;
    };
    let tsi = p.tsi.map(|t| selectors(&t)).unwrap_or_default();
    let tsr = p.tsr.map(|t| selectors(&t)).unwrap_or_default();
    let accepted = check_esp_answer(&answer, &cfg.esp_proposals, false);
    let reason = match accepted {
        None => Some(Refusal::NoProposalChosen),
        Some(_) if !within(&tsi, &a.tsi) || !within(&tsr, &a.tsr) => Some(Refusal::TsUnacceptable),
        Some(_) => None,
    };
    let Some((peer_spi, choice)) = accepted.filter(|_| reason.is_none()) else {
        // The responder installed what it answered: delete it again.
        ctx.refuse(sa.peer, None, reason.unwrap_or(Refusal::NoProposalChosen));
        ctx.child_spis.remove(&a.child_spi);
        sa.enqueue(Queued::DeleteChild(a.child_spi));
        return;
    };
    let child = NewChild {
        exchange_initiator: true,
        choice,
        inbound_spi: a.child_spi,
        outbound_spi: peer_spi,
        pfs_shared: None,
        ni: &a.ni,
        nr: &a.nr,
        local_ts: tsi,
        remote_ts: tsr,
        replaces: None,
    };
    match install(sa, ctx, now, child) {
        Ok(c) => sa.children.push(c),
        Err(r) => {
            ctx.refuse(sa.peer, None, r);
            sa.enqueue(Queued::DeleteChild(a.child_spi));
        }
    }
}
