//! One IKE SA: its state, keys and CHILD SAs, and what every exchange shares — Message IDs
//! and the window of one request each way [RFC 7296 § 2.3], the cached last response that
//! answers a retransmitted request, retransmission with exponential backoff [§ 2.1],
//! protection and fragmentation of outgoing messages, decryption and reassembly of incoming
//! ones. Its timers are in `timers`; the exchanges in `init`, `ike_auth`, `create_child`,
//! `ike_rekey` and `informational`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::crypto::DhPrivateKey;
use crate::tunnel::ipsec::ike::keys::IkeKeys;
use crate::tunnel::ipsec::ike::message::{
    parse_inner, ExchangeType, Flags, Header, Message, Notify, NotifyType, Payload, PayloadChain,
    TrafficSelector,
};

use super::child::ChildSa;
use super::crypt::SkCrypto;
use super::ctx::{after, Ctx};
use super::event::{DownReason, IkeEvent, Refusal};
use super::fragment::{Bounds, Reassembly};
use super::nat::NatState;
use super::proposal::IkeChoice;
use super::{create_child, ike_auth, ike_rekey, informational, init};

/// What the IKE SA waits for.
pub(super) enum State {
    /// Initiator: our IKE_SA_INIT request is out.
    ExpectSaInitResponse(Box<InitiatorInit>),
    /// Initiator: our IKE_AUTH request is out.
    ExpectAuthResponse(Box<AuthContext>),
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH (half-open).
    ExpectIkeAuth(Box<AuthContext>),
    /// Authenticated.
    Established,
    /// Replaced by a rekey: only the Delete exchange that ends it remains.
    Rekeyed,
    /// Our Delete of the IKE SA is out.
    Deleting,
}

/// The initiator's IKE_SA_INIT in flight.
pub(super) struct InitiatorInit {
    pub dh: DhPrivateKey,
    pub ni: Vec<u8>,
    pub cookie: Option<Vec<u8>>,
    /// COOKIE and INVALID_KE_PAYLOAD answers taken so far.
    pub retries: u8,
}

/// What the AUTH payloads of IKE_AUTH cover [RFC 7296 § 2.15], and the first CHILD SA offered.
pub(super) struct AuthContext {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
    /// Initiator: our inbound SPI offered for the first CHILD SA, and the selectors offered.
    pub child_spi: u32,
    pub tsi: Vec<TrafficSelector>,
    pub tsr: Vec<TrafficSelector>,
}

/// The keys of an IKE SA and what they were made of.
pub(super) struct SaKeys {
    pub choice: IkeChoice,
    pub keys: IkeKeys,
    pub sk: SkCrypto,
}

/// A request waiting for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    Dpd,
    DeleteIke,
    DeleteChild(u32),
    RekeyChild(u32),
    RekeyIke,
}

/// The request in flight, with what its response needs.
pub(super) enum Request {
    SaInit,
    IkeAuth,
    Dpd,
    DeleteIke,
    /// Our inbound SPIs.
    DeleteChild(Vec<u32>),
    RekeyChild(Box<create_child::ChildRekey>),
    RekeyIke(Box<ike_rekey::IkeRekey>),
}

pub(super) struct Pending {
    pub message_id: u32,
    pub exchange: ExchangeType,
    pub datagrams: Vec<Vec<u8>>,
    pub retransmits: u32,
    pub next: Instant,
    /// Liveness checks give up here, before the retransmissions run out.
    pub deadline: Option<Instant>,
    pub request: Request,
}

/// The last response, for retransmitted requests.
pub(super) struct Cached {
    pub message_id: u32,
    pub datagrams: Vec<Vec<u8>>,
}

/// How an IKE SA ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Death {
    pub reason: DownReason,
    /// Initiate again after this long (peers with `dpd_action: restart`).
    pub restart: Option<Duration>,
}

/// The peer's IKE rekey we answered while ours was in flight [RFC 7296 § 2.8.2].
pub(super) struct IkeCollision {
    /// Our SPI of the IKE SA the peer's exchange created.
    pub sibling: u64,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

pub(super) struct IkeSa {
    /// The peer's configuration (index); a responder learns it from IDi.
    pub peer: Option<usize>,
    /// Responder before IKE_AUTH: the peers the source address may be.
    pub candidates: Vec<usize>,
    /// We are the original initiator (we send with the I flag and SK_ei).
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local_port: u16,
    pub remote: SocketAddr,
    pub state: State,
    pub keys: Option<Box<SaKeys>>,
    pub nat: NatState,
    /// Both ends announced IKEV2_FRAGMENTATION_SUPPORTED [RFC 7383 § 2.3].
    pub fragmentation: bool,
    pub next_request_id: u32,
    pub pending: Option<Pending>,
    pub queue: VecDeque<Queued>,
    pub expected_request_id: u32,
    pub last_response: Option<Cached>,
    /// Requests and responses being reassembled.
    pub reassembly: [Option<Reassembly>; 2],
    pub children: Vec<ChildSa>,
    pub created: Instant,
    pub last_inbound: Instant,
    pub rekey_at: Option<Instant>,
    /// The hard lifetime: an Established SA not rekeyed by then is deleted.
    pub expires_at: Option<Instant>,
    /// Deleted at its hard lifetime: a peer we initiate to is initiated again at once.
    pub expired: bool,
    /// A Rekeyed SA is removed at the latest then.
    pub linger_until: Option<Instant>,
    pub collision: Option<IkeCollision>,
    pub dead: Option<Death>,
    /// Initiator: the peer has no other IKE SA of ours; IKE_AUTH says INITIAL_CONTACT.
    pub initial_contact: bool,
    /// Authenticated at some point (its end is a peer going down, unless another IKE SA
    /// of the peer is up).
    pub up: bool,
}

impl IkeSa {
    pub(super) fn new(
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        local_port: u16,
        remote: SocketAddr,
        state: State,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            peer: None,
            candidates: Vec::new(),
            initiator,
            spi_i,
            spi_r,
            local_port,
            remote,
            state,
            keys: None,
            nat: NatState::default(),
            fragmentation: false,
            next_request_id: 0,
            pending: None,
            queue: VecDeque::new(),
            expected_request_id: 0,
            last_response: None,
            reassembly: [None, None],
            children: Vec::new(),
            created: now,
            last_inbound: now,
            rekey_at: None,
            expires_at: None,
            expired: false,
            linger_until: None,
            collision: None,
            dead: None,
            initial_contact: false,
            up: false,
        }
    }

    /// Our SPI: the key of this SA in the engine's table.
    pub(super) fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub(super) fn send_initial_contact(&self) -> bool {
        self.initial_contact
    }

    pub(super) fn is_established(&self) -> bool {
        matches!(self.state, State::Established) && self.dead.is_none()
    }

    pub(super) fn is_half_open_responder(&self) -> bool {
        matches!(self.state, State::ExpectIkeAuth(_)) && self.dead.is_none()
    }

    pub(super) fn kill(&mut self, reason: DownReason, restart: Option<Duration>) {
        if self.dead.is_none() {
            self.dead = Some(Death { reason, restart });
        }
    }

    pub(super) fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        let mut flags = Flags::default();
        if self.initiator {
            flags = flags | Flags::INITIATOR;
        }
        if response {
            flags = flags | Flags::RESPONSE;
        }
        Header::new(self.spi_i, self.spi_r, exchange, flags, message_id)
    }

    fn protect(
        &mut self,
        ctx: &mut Ctx,
        header: Header,
        inner: &PayloadChain,
    ) -> Option<Vec<Vec<u8>>> {
        let frag = self
            .fragmentation
            .then_some(ctx.config.limits.fragment_size);
        let keys = self.keys.as_mut()?;
        match keys.sk.protect(&mut ctx.rng, header, inner, frag) {
            Ok(d) => Some(d),
            Err(_) => {
                ctx.refuse(self.peer, None, Refusal::Internal);
                self.kill(DownReason::Failed, None);
                None
            }
        }
    }

    /// Sends a protected request and makes it the one in flight.
    pub(super) fn send_request(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        exchange: ExchangeType,
        inner: &PayloadChain,
        request: Request,
    ) {
        let id = self.next_request_id;
        let header = self.header(exchange, false, id);
        let Some(datagrams) = self.protect(ctx, header, inner) else {
            return;
        };
        let deadline = match request {
            Request::Dpd => self
                .peer
                .and_then(|p| ctx.peer(p))
                .map(|c| after(now, c.dpd_timeout)),
            _ => None,
        };
        self.send_pending(ctx, now, id, exchange, datagrams, deadline, request);
        self.next_request_id = id.wrapping_add(1);
    }

    /// Sends a protected request whose answer nobody waits for (the AUTHENTICATION_FAILED
    /// of an initiator that forgets the IKE SA right after [RFC 7296 § 2.21.2]).
    pub(super) fn send_unanswered(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        inner: &PayloadChain,
    ) {
        let id = self.next_request_id;
        let header = self.header(exchange, false, id);
        if let Some(datagrams) = self.protect(ctx, header, inner) {
            for d in datagrams {
                ctx.send(self.local_port, self.remote, d);
            }
        }
        self.next_request_id = id.wrapping_add(1);
    }

    /// Sends `datagrams` (message `id`) and waits for their response.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_pending(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        id: u32,
        exchange: ExchangeType,
        datagrams: Vec<Vec<u8>>,
        deadline: Option<Instant>,
        request: Request,
    ) {
        for d in &datagrams {
            ctx.send(self.local_port, self.remote, d.clone());
        }
        self.pending = Some(Pending {
            message_id: id,
            exchange,
            datagrams,
            retransmits: 0,
            next: after(now, ctx.config.limits.retransmit_timeout),
            deadline,
            request,
        });
    }

    /// Sends a protected response to request `message_id`, keeps it for retransmitted
    /// requests, and opens the window for the next request.
    pub(super) fn send_response(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        message_id: u32,
        inner: &PayloadChain,
    ) {
        let header = self.header(exchange, true, message_id);
        let Some(datagrams) = self.protect(ctx, header, inner) else {
            return;
        };
        for d in &datagrams {
            ctx.send(self.local_port, self.remote, d.clone());
        }
        self.last_response = Some(Cached {
            message_id,
            datagrams,
        });
        self.expected_request_id = message_id.wrapping_add(1);
    }

    /// A response holding one Notify about the IKE SA.
    pub(super) fn respond_notify(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        message_id: u32,
        notify: NotifyType,
    ) {
        let mut inner = PayloadChain::new();
        inner.push(&Payload::Notify(Notify::new(notify, &[])));
        self.send_response(ctx, exchange, message_id, &inner);
    }

    fn resend_cached(&mut self, ctx: &mut Ctx, to: SocketAddr, port: u16) {
        if let Some(c) = &self.last_response {
            for d in &c.datagrams {
                ctx.send(port, to, d.clone());
            }
        }
    }

    /// Handles a message for this SA, which came in on `local_port` from `from`.
    pub(super) fn handle_message(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let h = msg.header;
        // The I flag says who sent it: it must be the peer's role, not ours.
        if h.flags.initiator() == self.initiator {
            ctx.refuse(self.peer, None, Refusal::UnexpectedExchange);
            return;
        }
        if h.exchange == ExchangeType::IKE_SA_INIT {
            match (h.flags.response(), &self.state) {
                (true, State::ExpectSaInitResponse(_)) => {
                    init::handle_response(self, ctx, now, local_port, from, msg)
                }
                // A duplicate of the response we already took.
                (true, _) => ctx.refuse(self.peer, None, Refusal::MessageId),
                (false, _) => ctx.refuse(self.peer, None, Refusal::UnexpectedExchange),
            }
            return;
        }
        self.handle_protected(ctx, now, local_port, from, msg);
        self.pump(ctx, now);
    }

    fn handle_protected(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let h = msg.header;
        let response = h.flags.response();
        let Some(keys) = self.keys.as_ref() else {
            ctx.refuse(self.peer, None, Refusal::UnexpectedExchange);
            return;
        };
        let retransmitted = if response {
            match &self.pending {
                Some(p) if p.message_id == h.message_id && p.exchange == h.exchange => false,
                _ => {
                    ctx.refuse(self.peer, None, Refusal::MessageId);
                    return;
                }
            }
        } else if h.message_id == self.expected_request_id {
            false
        } else if h.message_id.wrapping_add(1) == self.expected_request_id
            && self
                .last_response
                .as_ref()
                .is_some_and(|c| c.message_id == h.message_id)
        {
            true
        } else {
            ctx.refuse(self.peer, None, Refusal::MessageId);
            return;
        };
        let opened = match keys.sk.open(msg) {
            Ok(o) => o,
            Err(_) => {
                ctx.refuse(self.peer, None, Refusal::Integrity);
                return;
            }
        };
        let Some(e) = msg.encrypted() else {
            return;
        };
        let (first, chain) = match e.fragment {
            None => (e.first_inner, opened),
            Some(frag) => {
                if !self.fragmentation {
                    ctx.refuse(self.peer, None, Refusal::Fragment);
                    return;
                }
                if retransmitted {
                    // Answer a retransmitted fragmented request once, on its first fragment.
                    if frag.number == 1 {
                        self.resend_cached(ctx, from, local_port);
                    }
                    return;
                }
                let l = &ctx.config.limits;
                let bounds = Bounds {
                    max_fragments: l.reassembly_max_fragments,
                    max_bytes: l.reassembly_max_bytes,
                };
                let deadline = after(now, l.half_open_timeout);
                let slot = &mut self.reassembly[usize::from(response)];
                match Reassembly::add(
                    slot,
                    bounds,
                    deadline,
                    h.message_id,
                    frag,
                    e.first_inner,
                    opened,
                ) {
                    Ok(Some(whole)) => whole,
                    Ok(None) => return,
                    Err(_) => {
                        ctx.refuse(self.peer, None, Refusal::Fragment);
                        return;
                    }
                }
            }
        };
        if retransmitted {
            self.resend_cached(ctx, from, local_port);
            return;
        }
        self.last_inbound = now;
        if from != self.remote || local_port != self.local_port {
            // NAT traversal: the peer's mapping changed, or it floated to port 4500
            // [RFC 7296 § 2.23]. Only authenticated new messages move the path; once CHILD
            // SAs exist, their ESP moves with it.
            let moved = from != self.remote && self.is_established();
            self.remote = from;
            self.local_port = local_port;
            if let Some(peer) = ctx.peer_id(self.peer).filter(|_| moved) {
                ctx.event(IkeEvent::PathChanged { peer, remote: from });
            }
        }
        let payloads = match parse_inner(first, &chain) {
            Ok(p) => p,
            Err(err) => {
                if response {
                    ctx.refuse(self.peer, None, Refusal::InnerMalformed(err));
                } else {
                    let notify = err.notify().unwrap_or(NotifyType::INVALID_SYNTAX);
                    ctx.refuse(self.peer, Some(notify), Refusal::InnerMalformed(err));
                    self.respond_notify(ctx, h.exchange, h.message_id, notify);
                }
                return;
            }
        };
        if response {
            if let Some(p) = self.pending.take() {
                self.dispatch_response(ctx, now, h, p.request, &payloads);
            }
        } else {
            self.dispatch_request(ctx, now, h, &payloads);
        }
    }

    fn dispatch_request(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        h: Header,
        payloads: &[Payload<'_>],
    ) {
        match (&self.state, h.exchange) {
            (State::ExpectIkeAuth(_), ExchangeType::IKE_AUTH) => {
                ike_auth::handle_request(self, ctx, now, h, payloads)
            }
            (
                State::Established | State::Rekeyed | State::Deleting,
                ExchangeType::CREATE_CHILD_SA,
            ) => create_child::handle_request(self, ctx, now, h, payloads),
            (
                State::Established | State::Rekeyed | State::Deleting,
                ExchangeType::INFORMATIONAL,
            ) => informational::handle_request(self, ctx, now, h, payloads),
            _ => ctx.refuse(self.peer, None, Refusal::UnexpectedExchange),
        }
    }

    fn dispatch_response(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        h: Header,
        request: Request,
        payloads: &[Payload<'_>],
    ) {
        match request {
            Request::IkeAuth => ike_auth::handle_response(self, ctx, now, payloads),
            Request::RekeyChild(r) => {
                create_child::handle_child_response(self, ctx, now, *r, payloads)
            }
            Request::RekeyIke(r) => ike_rekey::handle_response(self, ctx, now, *r, payloads),
            Request::Dpd | Request::DeleteIke | Request::DeleteChild(_) => {
                informational::handle_response(self, ctx, now, request, payloads)
            }
            Request::SaInit => {
                let _ = h;
                ctx.refuse(self.peer, None, Refusal::UnexpectedExchange);
            }
        }
    }

    /// Starts queued requests while the window is free.
    pub(super) fn pump(&mut self, ctx: &mut Ctx, now: Instant) {
        while self.pending.is_none() && self.dead.is_none() {
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            match q {
                Queued::Dpd | Queued::DeleteIke | Queued::DeleteChild(_) => {
                    informational::start(self, ctx, now, q)
                }
                Queued::RekeyChild(spi) => {
                    create_child::start_child_rekey(self, ctx, now, spi, None)
                }
                Queued::RekeyIke => ike_rekey::start(self, ctx, now),
            }
        }
    }

    pub(super) fn enqueue(&mut self, q: Queued) {
        if !self.queue.contains(&q) {
            self.queue.push_back(q);
        }
    }
}
