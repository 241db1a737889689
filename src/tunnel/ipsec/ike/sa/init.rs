//! IKE_SA_INIT [RFC 7296 § 1.2]: proposals, Diffie-Hellman, nonces, NAT detection [§ 2.23],
//! cookies [§ 2.6], INVALID_KE_PAYLOAD and the retry with the group the responder wants, and
//! the announcements of IKE fragmentation [RFC 7383] and signature hashes [RFC 7427].
//!
//! The responder keeps no state for a request it refuses (NO_PROPOSAL_CHOSEN,
//! INVALID_KE_PAYLOAD, COOKIE): those answers are unprotected and built from the request
//! alone.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::crypto::{DhGroup, DhPrivateKey};
use crate::tunnel::ipsec::ike::keys::IkeKeys;
use crate::tunnel::ipsec::ike::message::{
    CertEncoding, CertReq, DhGroup as WireGroup, ExchangeType, Flags, HashAlgorithm, Header, Ke,
    Message, MessageBuilder, Notify, NotifyType, Payload,
};

use super::auth::certificate;
use super::config::DpdAction;
use super::cookie::CookieJar;
use super::crypt::SkCrypto;
use super::ctx::Ctx;
use super::event::{DownReason, Refusal};
use super::ike_auth;
use super::ike_sa::{AuthContext, Cached, IkeSa, InitiatorInit, Request, SaKeys, State};
use super::nat;
use super::proposal::{check_ike_answer, ike_answer, ike_offer, select_ike};

/// COOKIE and INVALID_KE_PAYLOAD answers an initiator follows before it gives up.
const MAX_INIT_RETRIES: u8 = 3;

/// The hashes we accept for signatures [RFC 7427 § 4], as the notification carries them.
const SIGNATURE_HASHES: [u8; 6] = {
    let (a, b, c) = (
        HashAlgorithm::SHA2_256.0,
        HashAlgorithm::SHA2_384.0,
        HashAlgorithm::SHA2_512.0,
    );
    let (a, b, c) = (a.to_be_bytes(), b.to_be_bytes(), c.to_be_bytes());
    [a[0], a[1], b[0], b[1], c[0], c[1]]
};

/// Our address on `port`, if the configuration knows it.
pub(super) fn local(ctx: &Ctx, port: u16) -> Option<SocketAddr> {
    let c = &ctx.config;
    let ip: IpAddr = c.local_addr;
    let real = if port == 500 {
        c.local_ports[0]
    } else {
        c.local_ports[1]
    };
    (!ip.is_unspecified() && !c.force_udp_encap).then_some(SocketAddr::new(ip, real))
}

/// Starts an IKE SA with peer `index` (which has an endpoint).
pub(super) fn initiate(ctx: &mut Ctx, now: Instant, index: usize) -> Option<IkeSa> {
    let cfg = ctx.peer(index)?;
    let endpoint = cfg.endpoint?;
    let group = cfg
        .ike_proposals
        .iter()
        .flat_map(|p| p.dh.first())
        .next()
        .copied()?;
    // A peer on a port other than 500 is reached behind the non-ESP marker from ours.
    let local_port = if endpoint.port() == 500 { 500 } else { 4500 };
    let dh = DhPrivateKey::generate(group, &ctx.rng).ok()?;
    let spi_i = ctx.new_ike_spi();
    let init = InitiatorInit {
        dh,
        ni: ctx.nonce(),
        cookie: None,
        retries: 0,
    };
    let mut sa = IkeSa::new(
        true,
        spi_i,
        0,
        local_port,
        endpoint,
        State::ExpectSaInitResponse(Box::new(init)),
        now,
    );
    sa.peer = Some(index);
    send_request(&mut sa, ctx, now);
    Some(sa)
}

/// (Re)sends the IKE_SA_INIT request from the SA's initiator state.
fn send_request(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant) {
    let State::ExpectSaInitResponse(init) = &sa.state else {
        return;
    };
    let Some(cfg) = sa.peer.and_then(|p| ctx.peer(p)) else {
        return;
    };
    let header = Header::new(sa.spi_i, 0, ExchangeType::IKE_SA_INIT, Flags::INITIATOR, 0);
    let mut m = MessageBuilder::new(header);
    if let Some(c) = &init.cookie {
        m.push(&Payload::Notify(Notify::new(NotifyType::COOKIE, c)));
    }
    let group = init.dh.group();
    m.sa(&ike_offer(&cfg.ike_proposals, &[]));
    m.push(&Payload::Ke(Ke {
        group: WireGroup(group.transform_id()),
        data: init.dh.public_value(),
    }));
    m.push(&Payload::Nonce(&init.ni));
    let src = nat::source_hash(sa.spi_i, 0, local(ctx, sa.local_port));
    let dst = nat::hash(sa.spi_i, 0, sa.remote);
    m.push(&Payload::Notify(Notify::new(
        NotifyType::NAT_DETECTION_SOURCE_IP,
        &src,
    )));
    m.push(&Payload::Notify(Notify::new(
        NotifyType::NAT_DETECTION_DESTINATION_IP,
        &dst,
    )));
    m.push(&Payload::Notify(Notify::new(
        NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
        &[],
    )));
    m.push(&Payload::Notify(Notify::new(
        NotifyType::SIGNATURE_HASH_ALGORITHMS,
        &SIGNATURE_HASHES,
    )));
    match m.finish() {
        Ok(bytes) => sa.send_pending(
            ctx,
            now,
            0,
            ExchangeType::IKE_SA_INIT,
            vec![bytes],
            None,
            Request::SaInit,
        ),
        Err(_) => {
            ctx.refuse(sa.peer, None, Refusal::Internal);
            sa.kill(DownReason::Failed, None);
        }
    }
}

/// The restart delay after a failed attempt, for peers that restart.
fn retry_later(sa: &IkeSa, ctx: &Ctx) -> Option<Duration> {
    let cfg = sa.peer.and_then(|p| ctx.peer(p))?;
    (cfg.dpd_action == DpdAction::Restart).then_some(ctx.config.limits.reconnect_delay)
}

fn fail(sa: &mut IkeSa, ctx: &mut Ctx, notify: Option<NotifyType>, reason: Refusal) {
    ctx.refuse(sa.peer, notify, reason);
    let restart = retry_later(sa, ctx);
    sa.kill(DownReason::Failed, restart);
}

/// Initiator: the IKE_SA_INIT response.
pub(super) fn handle_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    local_port: u16,
    from: SocketAddr,
    msg: &Message<'_>,
) {
    if msg.header.message_id != 0
        || !matches!(
            sa.pending.as_ref().map(|p| &p.request),
            Some(Request::SaInit)
        )
    {
        ctx.refuse(sa.peer, None, Refusal::MessageId);
        return;
    }
    if msg.sa().is_none() && retry(sa, ctx, now, msg) {
        return;
    }
    if let Some(n) = msg.notifies().find(|n| n.notify_type.is_error()) {
        return fail(sa, ctx, Some(n.notify_type), Refusal::PeerNotify);
    }
    let (Some(answer), Some(ke), Some(nr)) = (msg.sa(), msg.ke(), msg.nonce()) else {
        return fail(sa, ctx, None, Refusal::MissingPayload);
    };
    let Some(cfg) = sa.peer.and_then(|p| ctx.peer(p)) else {
        return;
    };
    let Some(choice) = check_ike_answer(&answer, &cfg.ike_proposals) else {
        return fail(sa, ctx, None, Refusal::NoProposalChosen);
    };
    let spi_r = msg.header.spi_r;
    let State::ExpectSaInitResponse(init) = std::mem::replace(&mut sa.state, State::Rekeyed) else {
        return;
    };
    let init = *init;
    if spi_r == 0 || choice.dh != init.dh.group() || ke.group.0 != choice.dh.transform_id() {
        return fail(sa, ctx, None, Refusal::InvalidKe);
    }
    let Ok(shared) = init.dh.agree(ke.data) else {
        return fail(sa, ctx, None, Refusal::InvalidKeValue);
    };
    let keys = IkeKeys::derive(
        choice.suite,
        &init.ni,
        nr,
        shared.as_ref(),
        &sa.spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
    );
    let Ok(keys) = keys else {
        return fail(sa, ctx, None, Refusal::Internal);
    };
    let Ok(sk) = SkCrypto::new(choice.suite, &keys, true) else {
        return fail(sa, ctx, None, Refusal::Internal);
    };
    let request = sa
        .pending
        .take()
        .and_then(|p| p.datagrams.into_iter().next())
        .unwrap_or_default();
    sa.spi_r = spi_r;
    sa.keys = Some(Box::new(SaKeys { choice, keys, sk }));
    sa.nat = nat::detect(msg, from, local(ctx, local_port));
    sa.fragmentation = msg
        .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
        .is_some();
    sa.last_inbound = now;
    sa.next_request_id = 1;
    // strongSwan moves to port 4500 for IKE_AUTH whenever the peer does NAT traversal, NAT or
    // not [RFC 7296 § 2.23 allows it]; so do we.
    if sa.nat.supported && sa.local_port == 500 {
        sa.local_port = 4500;
        sa.remote.set_port(4500);
    }
    let auth = AuthContext {
        ni: init.ni,
        nr: nr.to_vec(),
        init_request: request,
        init_response: msg.bytes().to_vec(),
        child_spi: 0,
        tsi: Vec::new(),
        tsr: Vec::new(),
    };
    ike_auth::start(sa, ctx, now, auth);
}

/// Follows a COOKIE or INVALID_KE_PAYLOAD answer; false if the answer is neither, or one
/// too many.
fn retry(sa: &mut IkeSa, ctx: &mut Ctx, now: Instant, msg: &Message<'_>) -> bool {
    let Some(cfg) = sa.peer.and_then(|p| ctx.peer(p)) else {
        return false;
    };
    let our_groups: Vec<DhGroup> = cfg
        .ike_proposals
        .iter()
        .flat_map(|p| p.dh.iter().copied())
        .collect();
    let State::ExpectSaInitResponse(init) = &mut sa.state else {
        return false;
    };
    if init.retries >= MAX_INIT_RETRIES {
        return false;
    }
    if let Some(c) = msg.notify(NotifyType::COOKIE) {
        if c.data.is_empty() || c.data.len() > 64 {
            return false;
        }
        init.cookie = Some(c.data.to_vec());
    } else if let Some(wanted) = msg
        .notify(NotifyType::INVALID_KE_PAYLOAD)
        .and_then(|n| n.accepted_group())
    {
        let Some(group) = DhGroup::from_transform(wanted.0).filter(|g| our_groups.contains(g))
        else {
            return false;
        };
        if group == init.dh.group() {
            return false;
        }
        let Ok(dh) = DhPrivateKey::generate(group, &ctx.rng) else {
            return false;
        };
        ctx.refuse(
            sa.peer,
            Some(NotifyType::INVALID_KE_PAYLOAD),
            Refusal::PeerNotify,
        );
        init.dh = dh;
    } else {
        return false;
    }
    init.retries += 1;
    sa.pending = None;
    send_request(sa, ctx, now);
    true
}

/// An unprotected answer to an IKE_SA_INIT request that keeps no state.
fn stateless(
    ctx: &mut Ctx,
    local_port: u16,
    to: SocketAddr,
    spi_i: u64,
    notify: NotifyType,
    data: &[u8],
) {
    let header = Header::new(spi_i, 0, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0);
    let mut m = MessageBuilder::new(header);
    m.push(&Payload::Notify(Notify::new(notify, data)));
    if let Ok(bytes) = m.finish() {
        ctx.send(local_port, to, bytes);
    }
}

/// The engine's view a responder needs for an IKE_SA_INIT request.
pub(super) struct Load<'a> {
    pub half_open: usize,
    pub cookies: &'a CookieJar,
}

/// Responder: a new IKE_SA_INIT request (not a retransmission). Returns the half-open IKE SA,
/// or `None` when the request was refused (answered statelessly or dropped).
pub(super) fn handle_request(
    ctx: &mut Ctx,
    now: Instant,
    load: Load<'_>,
    local_port: u16,
    from: SocketAddr,
    msg: &Message<'_>,
) -> Option<IkeSa> {
    let spi_i = msg.header.spi_i;
    let (Some(offer), Some(ke), Some(ni)) = (msg.sa(), msg.ke(), msg.nonce()) else {
        ctx.refuse(None, None, Refusal::MissingPayload);
        return None;
    };
    let l = &ctx.config.limits;
    if load.half_open >= l.half_open_max {
        ctx.refuse(None, None, Refusal::HalfOpenLimit);
        return None;
    }
    if load.half_open >= l.cookie_threshold {
        // The cookie must be the first payload [RFC 7296 § 2.6].
        let cookie = match msg.payloads.first() {
            Some(Payload::Notify(n)) if n.notify_type == NotifyType::COOKIE => Some(n.data),
            _ => None,
        };
        match cookie {
            Some(c) if load.cookies.check(c, ni, from, spi_i) => {}
            Some(_) => {
                ctx.refuse(None, None, Refusal::InvalidCookie);
                return None;
            }
            None => {
                let c = load.cookies.issue(ni, from, spi_i);
                stateless(ctx, local_port, from, spi_i, NotifyType::COOKIE, &c);
                ctx.refuse(None, Some(NotifyType::COOKIE), Refusal::CookieRequired);
                return None;
            }
        }
    }
    let peers = &ctx.config.peers;
    let mut candidates: Vec<usize> = (0..peers.len())
        .filter(|&i| peers[i].endpoint.is_some_and(|e| e.ip() == from.ip()))
        .collect();
    // The one peer whose `endpoint` is the source address is named in a refusal of this
    // request; any other sender stays unknown until IKE_AUTH carries its identity.
    let sender = match candidates[..] {
        [i] => Some(i),
        _ => None,
    };
    if candidates.is_empty() {
        candidates = (0..peers.len())
            .filter(|&i| peers[i].endpoint.is_none())
            .collect();
    }
    let ke_group = DhGroup::from_transform(ke.group.0);
    let configs = candidates.iter().map(|&i| &peers[i].ike_proposals[..]);
    let Some((num, choice, _)) = select_ike(&offer, configs, ke_group) else {
        stateless(
            ctx,
            local_port,
            from,
            spi_i,
            NotifyType::NO_PROPOSAL_CHOSEN,
            &[],
        );
        let reason = if candidates.is_empty() {
            Refusal::NoPeerConfig
        } else {
            Refusal::NoProposalChosen
        };
        ctx.refuse(sender, Some(NotifyType::NO_PROPOSAL_CHOSEN), reason);
        return None;
    };
    let certreq = candidates
        .iter()
        .filter_map(|&i| certificate(&peers[i].auth))
        .find_map(|c| c.certificate_request());
    if ke_group != Some(choice.dh) {
        let group = choice.dh.transform_id().to_be_bytes();
        stateless(
            ctx,
            local_port,
            from,
            spi_i,
            NotifyType::INVALID_KE_PAYLOAD,
            &group,
        );
        ctx.refuse(
            None,
            Some(NotifyType::INVALID_KE_PAYLOAD),
            Refusal::InvalidKe,
        );
        return None;
    }
    let Ok(dh) = DhPrivateKey::generate(choice.dh, &ctx.rng) else {
        ctx.refuse(None, None, Refusal::Internal);
        return None;
    };
    let public = dh.public_value().to_vec();
    let Ok(shared) = dh.agree(ke.data) else {
        ctx.refuse(None, None, Refusal::InvalidKeValue);
        return None;
    };
    let spi_r = ctx.new_ike_spi();
    let nr = ctx.nonce();
    let keys = IkeKeys::derive(
        choice.suite,
        ni,
        &nr,
        shared.as_ref(),
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
    );
    let sk = keys
        .as_ref()
        .ok()
        .and_then(|k| SkCrypto::new(choice.suite, k, false).ok());
    let (Ok(keys), Some(sk)) = (keys, sk) else {
        ctx.ike_spis.remove(&spi_r);
        ctx.refuse(None, None, Refusal::Internal);
        return None;
    };
    let our_addr = local(ctx, local_port);
    let nat = nat::detect(msg, from, our_addr);
    let fragmentation = msg
        .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
        .is_some();
    let header = Header::new(spi_i, spi_r, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0);
    let mut m = MessageBuilder::new(header);
    m.sa(&[ike_answer(num, choice, &[])]);
    m.push(&Payload::Ke(Ke {
        group: WireGroup(choice.dh.transform_id()),
        data: &public,
    }));
    m.push(&Payload::Nonce(&nr));
    if nat.supported {
        let src = nat::source_hash(spi_i, spi_r, our_addr);
        let dst = nat::hash(spi_i, spi_r, from);
        m.push(&Payload::Notify(Notify::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            &src,
        )));
        m.push(&Payload::Notify(Notify::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            &dst,
        )));
    }
    if let Some(data) = &certreq {
        m.push(&Payload::CertReq(CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data,
        }));
    }
    if fragmentation {
        m.push(&Payload::Notify(Notify::new(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            &[],
        )));
    }
    if msg.notify(NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some() {
        m.push(&Payload::Notify(Notify::new(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            &SIGNATURE_HASHES,
        )));
    }
    let Ok(response) = m.finish() else {
        ctx.ike_spis.remove(&spi_r);
        ctx.refuse(None, None, Refusal::Internal);
        return None;
    };
    ctx.send(local_port, from, response.clone());
    let auth = AuthContext {
        ni: ni.to_vec(),
        nr,
        init_request: msg.bytes().to_vec(),
        init_response: response.clone(),
        child_spi: 0,
        tsi: Vec::new(),
        tsr: Vec::new(),
    };
    let mut sa = IkeSa::new(
        false,
        spi_i,
        spi_r,
        local_port,
        from,
        State::ExpectIkeAuth(Box::new(auth)),
        now,
    );
    sa.candidates = candidates;
    sa.keys = Some(Box::new(SaKeys { choice, keys, sk }));
    sa.nat = nat;
    sa.fragmentation = fragmentation;
    sa.expected_request_id = 1;
    sa.last_response = Some(Cached {
        message_id: 0,
        datagrams: vec![response],
    });
    Some(sa)
}
