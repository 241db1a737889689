//! WireGuard attachments: one UDP socket, many peers, one boringtun `noise::Tunn` per peer.
//!
//! Layer contract: sans-IO; the runtime owns the socket. Datagrams come in through
//! [`WgAttachment::handle_datagram`], inner packets go out through [`WgAttachment::send`],
//! timers run in [`WgAttachment::update_timers`] when [`WgAttachment::poll_timeout`] is due.
//! Everything to put on the wire is written into the caller's [`TxBatch`]. boringtun's `Tunn`
//! reads the clock itself; that dependence lives in [`clock`] only (feature `virtual-time`
//! makes it follow `now`).
//!
//! Demultiplexing: a peer lives in a stable slot, and the slot number is the index its `Tunn`
//! was created with, so every session index boringtun hands out for that peer is
//! `slot << 8 | n`. Responses, cookie replies and data find their peer by `receiver_index >> 8`;
//! initiations by the initiator's static key, which `parse_handshake_anon` decrypts with the
//! attachment's key. Slots survive [`WgAttachment::set_peers`] for unchanged peers, so their
//! sessions survive a reload.
//!
//! Handshakes: a handshake message's MACs are checked on arrival (a cookie reply is sent
//! instead while the attachment is under load, judged by the backlog); it then waits in a
//! bounded queue for its Diffie-Hellman work, which [`WgAttachment::answer_handshakes`] does
//! a few at a time after each batch and timer run, so that a handshake storm cannot stall
//! forwarding.
//!
//! Counting: a datagram's fate is the return value; the caller counts a returned
//! [`DropReason`] (and the inner traffic). What the caller cannot see — handshake outcomes,
//! completed handshakes, replies lost to a full [`TxBatch`], packets boringtun discarded — is
//! reported as [`Event`]s, which the caller takes with [`WgAttachment::poll_event`] after each
//! call. This module writes no counter.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};

use super::{Event, Shard};
use crate::buffer::{TxBatch, Via, BUF_SIZE};
use crate::ids::{AttachmentId, PeerId};
use crate::vocab::{DropReason, HandshakeResult};

pub mod clock;
pub mod keys;

/// How often [`WgAttachment::update_timers`] wants to run, as boringtun's own device does.
/// boringtun stamps every event with the time of the last timer run, so this is also the
/// resolution of its rekey and keepalive timers.
pub const TIMER_TICK: Duration = Duration::from_millis(250);

/// Handshake messages that may wait for their Diffie-Hellman work. Arrival costs a MAC check;
/// the work (about 0.2 ms each on this project's machine) is done in bounded turns after each
/// batch of packets and timer run, so forwarding goes on during a handshake storm.
pub const HANDSHAKE_BACKLOG: usize = 16_384;
/// From this many handshakes waiting the attachment is under load [WireGuard paper § 5.3]:
/// a handshake without a valid cookie MAC gets a cookie reply instead of a place in the
/// queue. Judged by the backlog, as WireGuard's own implementations do, not by a rate: about
/// 1.5 s of work on one core, so that a storm the CPU can absorb (every facility of a large
/// attachment coming back after a restart) is simply answered well before the initiators'
/// 5-second retry, and a flood meets cookies.
pub const UNDER_LOAD_BACKLOG: usize = 8_192;
/// How long the attachment stays under load after the backlog last reached
/// [`UNDER_LOAD_BACKLOG`] (as the Linux implementation does), so that the judgement does not
/// flap with every handshake answered.
pub const UNDER_LOAD_HOLD: Duration = Duration::from_secs(1);
/// Handshakes answered after each batch of received packets...
pub const HANDSHAKES_PER_BATCH: usize = 4;
/// ...and per timer run (the attachment's timer is due at once while handshakes wait).
pub const HANDSHAKES_PER_TIMER: usize = 32;
/// A handshake initiation's length; a response is shorter [WireGuard paper § 5.4.2-3].
pub const INITIATION_LEN: usize = 148;
const RESPONSE_LEN: usize = 92;

/// boringtun keeps 24 bits of a `Tunn`'s index (the low 8 number its sessions).
const MAX_PEERS: usize = 1 << 24;

/// A data message's header and AEAD tag [WireGuard paper § 5.4.6].
const DATA_OVERHEAD: usize = 32;
const COOKIE_REPLY_LEN: usize = 64;
/// The first byte of a transport data message (type 4, little-endian) [WireGuard § 5.4.6].
const MESSAGE_DATA: u8 = 4;
/// boringtun's bound on packets queued per peer while a handshake is pending
/// (`MAX_QUEUE_DEPTH` in `noise/mod.rs`).
const BORINGTUN_QUEUE: usize = 256;
/// How long boringtun keeps trying a handshake before it empties the queue (REKEY_ATTEMPT_TIME).
const REKEY_ATTEMPT_SECS: usize = 90;

/// How many packets the gateway lets wait for a peer's handshake. boringtun's timers queue
/// keepalives (empty packets) in the same queue while there is no session, one per
/// persistent-keepalive interval, which the gateway cannot see; leaving room for them keeps
/// boringtun from ever dropping a packet silently.
pub fn queue_limit(persistent_keepalive: Option<u16>) -> usize {
    let keepalives =
        persistent_keepalive.map_or(0, |k| REKEY_ATTEMPT_SECS / usize::from(k.max(1)) + 1);
    BORINGTUN_QUEUE - (keepalives + 2).min(BORINGTUN_QUEUE / 2)
}

/// A queue flush sends at most this many packets (boringtun queues at most 256 per peer).
const MAX_FLUSH: usize = 256;

/// How a gateway-side peer is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeerConfig {
    pub id: PeerId,
    pub public_key: [u8; 32],
    pub preshared_key: Option<[u8; 32]>,
    pub persistent_keepalive: Option<u16>,
    pub endpoint: Option<SocketAddr>,
}

struct Peer {
    id: PeerId,
    public_key: [u8; 32],
    preshared_key: Option<[u8; 32]>,
    persistent_keepalive: Option<u16>,
    configured_endpoint: Option<SocketAddr>,
    /// Where datagrams to the peer go: configured, then wherever it last authenticated from.
    endpoint: Option<SocketAddr>,
    /// `None` for a peer another worker owns ([`Shard`]).
    tunn: Option<Box<Tunn>>,
    /// Something happened since the last expiry, so an expiry is a handshake timeout worth
    /// counting (boringtun reports an idle, never-used `Tunn` as expired too, and repeats it
    /// on every timer call).
    active: bool,
    /// A flush stopped at a full [`TxBatch`]: packets still wait in boringtun's queue.
    backlog: bool,
    /// How many packets wait in boringtun's queue for a session. boringtun drops silently
    /// past its bound and when a handshake expires; this mirror lets us count both.
    queued: usize,
    /// Its facility's certificate forbids traffic: its handshakes are refused, nothing is
    /// sent to it, and its timers send nothing ([`WgAttachment::set_admitted`]).
    refused: bool,
}

/// The attachment's own key pair (boxed: it is cold, and keeps [`crate::tunnel::Tunnel`] small).
struct Statics {
    private: StaticSecret,
    public: PublicKey,
}

/// How many handshake messages may wait, and from how many on the attachment is under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    pub backlog: usize,
    pub under_load: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            backlog: HANDSHAKE_BACKLOG,
            under_load: UNDER_LOAD_BACKLOG,
        }
    }
}

/// A handshake message that passed its MAC checks, waiting for its Diffie-Hellman work.
struct Waiting {
    from: SocketAddr,
    len: usize,
    bytes: [u8; INITIATION_LEN],
}

/// One WireGuard attachment: its static key and its peers.
pub struct WgAttachment {
    id: AttachmentId,
    statics: Box<Statics>,
    /// Checks handshakes' MAC1 and lets them through: every `Tunn` uses it, and so does the
    /// attachment while it is not under load.
    rate_limiter: Arc<RateLimiter>,
    /// Checks MAC1 and demands a valid MAC2 (a cookie) of every handshake: used while the
    /// attachment is under load.
    cookie_limiter: Arc<RateLimiter>,
    /// Handshake messages waiting for their work, oldest first.
    waiting: std::collections::VecDeque<Waiting>,
    /// When the oldest waiting handshake arrived (the timer is due from then on).
    waiting_since: Option<Instant>,
    /// Under load until then.
    under_load_until: Option<Instant>,
    /// [`HANDSHAKE_BACKLOG`] and [`UNDER_LOAD_BACKLOG`] unless set otherwise.
    limits: HandshakeLimits,
    /// Whose peers' tunnels this attachment holds.
    shard: Shard,
    /// Initiations of peers other workers own, with their owner, for the caller to hand on.
    foreign: std::collections::VecDeque<(u32, SocketAddr, Waiting)>,
    slots: Vec<Option<Peer>>,
    by_key: HashMap<[u8; 32], u32>,
    by_id: rustc_hash::FxHashMap<PeerId, u32>,
    /// Where output goes when the [`TxBatch`] is full (it is then counted as lost).
    scratch: Box<[u8]>,
    next_tick: Option<Instant>,
    /// The slot [`WgAttachment::update_timers`] resumes at after the batch filled up.
    timer_cursor: usize,
    /// What happened since the caller last asked ([`WgAttachment::poll_event`]).
    events: std::collections::VecDeque<Event>,
}

/// Events queued before the caller drains them; the queue grows past this only when a timer
/// run reports on more peers at once.
const EVENTS: usize = 256;

/// What a boringtun call produced, without the borrow of the output buffer. boringtun writes
/// every output at the start of the buffer it was given.
#[derive(Debug)]
enum Out {
    Done,
    Network(usize),
    Tunnel(usize),
    Err(WireGuardError),
}

impl From<TunnResult<'_>> for Out {
    fn from(r: TunnResult<'_>) -> Self {
        match r {
            TunnResult::Done => Out::Done,
            TunnResult::Err(e) => Out::Err(e),
            TunnResult::WriteToNetwork(b) => Out::Network(b.len()),
            TunnResult::WriteToTunnelV4(b, _) | TunnResult::WriteToTunnelV6(b, _) => {
                Out::Tunnel(b.len())
            }
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    Initiation,
    Response,
    CookieReply,
    Data,
}

/// A replayed initiation (its TAI64N timestamp is not newer) counts as a replay like a
/// duplicate counter; a session boringtun no longer holds as an unknown index.
/// `peer` authenticated a datagram from `from`: its endpoint moves there, told as an event
/// when it changes.
fn learn_endpoint(
    events: &mut std::collections::VecDeque<Event>,
    peer: &mut Peer,
    from: SocketAddr,
    now: Instant,
) {
    if peer.endpoint != Some(from) {
        events.push_back(Event::Endpoint {
            peer: peer.id,
            from: peer.endpoint,
            to: from,
            at: now,
        });
        peer.endpoint = Some(from);
    }
}

fn drop_reason(e: &WireGuardError) -> DropReason {
    use WireGuardError as E;
    match e {
        E::InvalidPacket | E::IncorrectPacketLength | E::WrongPacketType => DropReason::WgMalformed,
        E::InvalidMac | E::InvalidAeadTag | E::WrongKey | E::InvalidTai64nTimestamp => {
            DropReason::WgAuth
        }
        E::DuplicateCounter | E::InvalidCounter | E::WrongTai64nTimestamp => DropReason::WgReplay,
        E::NoCurrentSession | E::WrongIndex => DropReason::WgUnknownIndex,
        E::UnderLoad => DropReason::WgUnderLoad,
        _ => DropReason::WgProtocol,
    }
}

impl WgAttachment {
    pub fn new(id: AttachmentId, private_key: &[u8; 32]) -> Self {
        let static_private = StaticSecret::from(*private_key);
        let static_public = PublicKey::from(&static_private);
        // boringtun's limiter counts handshakes per second; load is judged here by the
        // backlog instead, so one limiter never demands a cookie and the other always does.
        let rate_limiter = Arc::new(RateLimiter::new(&static_public, u64::MAX));
        let cookie_limiter = Arc::new(RateLimiter::new(&static_public, 0));
        WgAttachment {
            id,
            statics: Box::new(Statics {
                private: static_private,
                public: static_public,
            }),
            rate_limiter,
            cookie_limiter,
            waiting: std::collections::VecDeque::new(),
            waiting_since: None,
            under_load_until: None,
            limits: HandshakeLimits::default(),
            shard: Shard::ALL,
            foreign: std::collections::VecDeque::new(),
            slots: Vec::new(),
            by_key: HashMap::new(),
            by_id: Default::default(),
            scratch: vec![0; BUF_SIZE].into_boxed_slice(),
            next_tick: None,
            timer_cursor: 0,
            events: std::collections::VecDeque::with_capacity(EVENTS),
        }
    }

    /// Whether the attachment's static key is `private_key`.
    pub fn has_private_key(&self, private_key: &[u8; 32]) -> bool {
        self.statics.private.to_bytes() == *private_key
    }

    pub fn id(&self) -> AttachmentId {
        self.id
    }

    /// Renumbers the attachment: a reload may move it in the plan. Its sockets and sessions
    /// stay.
    pub fn set_id(&mut self, id: AttachmentId) {
        self.id = id;
    }

    /// The attachment's static public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.statics.public.to_bytes()
    }

    /// Reconciles the peer set with a new plan. A peer whose public key, preshared key and
    /// persistent keepalive are unchanged keeps its slot, `Tunn` and sessions (its `PeerId` and
    /// configured endpoint follow the plan; a learned endpoint is kept unless the configured
    /// one changed). Other peers start afresh in the lowest free slots; removed peers are
    /// dropped. A repeated public key after its first occurrence is ignored (configuration
    /// validation rejects it), as are peers beyond 2^24. Returns how many packets waiting for a
    /// handshake were lost with the removed or replaced peers, for the caller to count.
    pub fn set_peers(&mut self, peers: &[WgPeerConfig], now: Instant) -> usize {
        clock::sync(now);
        let mut discarded = 0;
        let mut wanted: HashMap<[u8; 32], usize> = HashMap::with_capacity(peers.len());
        for (i, p) in peers.iter().enumerate() {
            if wanted.insert(p.public_key, i).is_some() {
                tracing::warn!(
                    attachment = self.id.0,
                    peer = p.id.0,
                    "duplicate WireGuard public key ignored"
                );
            }
        }
        let mut placed = vec![false; peers.len()];
        for slot in self.slots.iter_mut() {
            let Some(peer) = slot else { continue };
            let keep = wanted.get(&peer.public_key).and_then(|&i| {
                let c = &peers[i];
                let same = !placed[i]
                    && c.preshared_key == peer.preshared_key
                    && c.persistent_keepalive == peer.persistent_keepalive;
                same.then_some(i)
            });
            match keep {
                Some(i) => {
                    placed[i] = true;
                    let c = &peers[i];
                    peer.id = c.id;
                    if c.endpoint != peer.configured_endpoint {
                        peer.configured_endpoint = c.endpoint;
                        if c.endpoint.is_some() {
                            peer.endpoint = c.endpoint;
                        }
                    }
                }
                None => {
                    discarded += peer.queued;
                    *slot = None;
                }
            }
        }
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        let mut free: Vec<usize> = (0..self.slots.len())
            .rev()
            .filter(|&s| self.slots[s].is_none())
            .collect();
        for (i, c) in peers.iter().enumerate() {
            if placed[i] || wanted.get(&c.public_key) != Some(&i) {
                continue;
            }
            let slot = match free.pop() {
                Some(s) => s,
                None if self.slots.len() < MAX_PEERS => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
                None => {
                    tracing::warn!(
                        attachment = self.id.0,
                        peer = c.id.0,
                        "too many WireGuard peers"
                    );
                    continue;
                }
            };
            let tunn = self.shard.owns(slot).then(|| {
                Box::new(self.new_tunn(c.public_key, c.preshared_key, c.persistent_keepalive, slot))
            });
            self.slots[slot] = Some(Peer {
                id: c.id,
                public_key: c.public_key,
                preshared_key: c.preshared_key,
                persistent_keepalive: c.persistent_keepalive,
                configured_endpoint: c.endpoint,
                endpoint: c.endpoint,
                tunn,
                active: false,
                backlog: false,
                queued: 0,
                refused: false,
            });
        }
        self.by_key.clear();
        self.by_id.clear();
        for (s, p) in self.slots.iter().enumerate() {
            if let Some(p) = p {
                self.by_key.insert(p.public_key, s as u32);
                self.by_id.insert(p.id, s as u32);
            }
        }
        self.timer_cursor = 0;
        self.next_tick = if self.by_id.is_empty() {
            None
        } else {
            Some(self.next_tick.map_or(now, |t| t.min(now + TIMER_TICK)))
        };
        discarded
    }

    fn new_tunn(
        &self,
        public_key: [u8; 32],
        preshared_key: Option<[u8; 32]>,
        persistent_keepalive: Option<u16>,
        slot: usize,
    ) -> Tunn {
        Tunn::new(
            self.statics.private.clone(),
            PublicKey::from(public_key),
            preshared_key,
            persistent_keepalive,
            slot as u32,
            Some(Arc::clone(&self.rate_limiter)),
        )
    }

    /// Admits or refuses `peer` (its facility's certificate state allows traffic or not).
    /// Refusing it ends its sessions: they were keyed while the certificate was good, so a
    /// restored peer handshakes anew. Returns the packets that waited for its handshake and
    /// are lost, for the caller to count; `None` for an unknown peer.
    pub fn set_admitted(&mut self, peer: PeerId, admitted: bool, now: Instant) -> Option<usize> {
        clock::sync(now);
        let &slot = self.by_id.get(&peer)?;
        let p = self.slots.get(slot as usize)?.as_ref()?;
        if p.refused != admitted {
            return Some(0);
        }
        let tunn = (!admitted && self.shard.owns(slot as usize)).then(|| {
            self.new_tunn(
                p.public_key,
                p.preshared_key,
                p.persistent_keepalive,
                slot as usize,
            )
        });
        let p = self.slots[slot as usize].as_mut()?;
        p.refused = !admitted;
        let mut lost = 0;
        if let (Some(tunn), Some(t)) = (tunn, p.tunn.as_deref_mut()) {
            *t = tunn;
            lost = std::mem::take(&mut p.queued);
            p.backlog = false;
            p.active = false;
        }
        Some(lost)
    }

    /// Handles one datagram received from `from`. An inner packet is decrypted into `inner`
    /// and returned with its peer; handshake replies and packets that were waiting for a
    /// session go into `tx`. `Ok(None)`: nothing for the data path (a handshake message, a
    /// keepalive, a cookie reply). The caller counts a returned `Err`; the peer's endpoint
    /// moves to `from` only when the datagram authenticated.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        inner: &mut [u8],
        tx: &mut TxBatch,
    ) -> Result<Option<(PeerId, usize)>, DropReason> {
        clock::sync(now);
        match (datagram.first(), datagram.len()) {
            (Some(1), INITIATION_LEN) | (Some(2), RESPONSE_LEN) => {
                self.admit_handshake(now, from, datagram, tx)?;
                Ok(None)
            }
            _ => self.process(now, from, datagram, inner, tx),
        }
    }

    /// Whether the attachment is under load: many handshakes wait, or did less than
    /// [`UNDER_LOAD_HOLD`] ago.
    pub fn under_load(&self, now: Instant) -> bool {
        self.waiting.len() >= self.limits.under_load
            || self.under_load_until.is_some_and(|t| now < t)
    }

    /// Holds the tunnels of `shard`'s peers only (call before the first
    /// [`WgAttachment::set_peers`]; a later call creates and drops tunnels to match, which
    /// ends the sessions of the peers that change hands).
    pub fn set_shard(&mut self, shard: Shard) {
        self.shard = shard;
        for s in 0..self.slots.len() {
            let owned = shard.owns(s);
            let tunn = match &self.slots[s] {
                Some(p) if owned && p.tunn.is_none() => Some(Box::new(self.new_tunn(
                    p.public_key,
                    p.preshared_key,
                    p.persistent_keepalive,
                    s,
                ))),
                _ => None,
            };
            if let Some(p) = self.slots[s].as_mut() {
                if !owned {
                    p.tunn = None;
                } else if tunn.is_some() {
                    p.tunn = tunn;
                }
            }
        }
    }

    /// The next initiation of a peer another worker owns: (that worker, where it came from,
    /// the datagram).
    pub fn pop_foreign(&mut self) -> Option<(u32, SocketAddr, [u8; INITIATION_LEN])> {
        self.foreign
            .pop_front()
            .map(|(w, from, d)| (w, from, d.bytes))
    }

    /// Changes how many handshakes may wait and when the attachment is under load (tests
    /// that need a small backlog).
    pub fn set_handshake_limits(&mut self, limits: HandshakeLimits) {
        self.limits = limits;
    }

    /// Handshake messages waiting for their work.
    pub fn handshake_backlog(&self) -> usize {
        self.waiting.len()
    }

    /// Checks a handshake message's MACs and queues it for its work: under load, without a
    /// valid cookie MAC it gets a cookie reply instead, and with a full queue it is refused.
    fn admit_handshake(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        tx: &mut TxBatch,
    ) -> Result<(), DropReason> {
        let limiter = if self.under_load(now) {
            &self.cookie_limiter
        } else {
            &self.rate_limiter
        };
        let mut cookie = [0u8; COOKIE_REPLY_LEN];
        match limiter.verify_packet(Some(from.ip()), datagram, &mut cookie) {
            Ok(_) => {}
            Err(TunnResult::WriteToNetwork(reply)) => {
                self.events
                    .push_back(Event::Handshake(HandshakeResult::CookieSent));
                match tx.next_buf() {
                    Some(buf) => {
                        buf[..reply.len()].copy_from_slice(reply);
                        tx.commit(self.id, Via::udp(0, from), reply.len());
                    }
                    None => self
                        .events
                        .push_back(Event::dropped(DropReason::TxQueueFull, 1)),
                }
                return Err(DropReason::WgUnderLoad);
            }
            Err(refused) => return Err(self.refused(refused)),
        }
        self.queue_handshake(now, from, datagram)
    }

    /// Queues a handshake message whose MACs passed for its work; refused when the queue is
    /// full.
    fn queue_handshake(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), DropReason> {
        if self.waiting.len() >= self.limits.backlog || datagram.len() > INITIATION_LEN {
            return Err(DropReason::WgUnderLoad);
        }
        let mut bytes = [0; INITIATION_LEN];
        bytes[..datagram.len()].copy_from_slice(datagram);
        self.waiting.push_back(Waiting {
            from,
            len: datagram.len(),
            bytes,
        });
        self.waiting_since.get_or_insert(now);
        if self.waiting.len() >= self.limits.under_load {
            self.under_load_until = Some(now + UNDER_LOAD_HOLD);
        }
        Ok(())
    }

    /// An initiation of one of this worker's peers that another worker received, checked
    /// and handed on ([`WgAttachment::pop_foreign`] there): its MACs and that worker's load
    /// were judged (a cookie it demanded was made with its own secret, which this worker's
    /// limiter would refuse), so it only waits for its work here.
    pub fn take_handed_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), DropReason> {
        if datagram.len() != INITIATION_LEN || datagram[0] != 1 {
            return Err(DropReason::WgProtocol);
        }
        self.queue_handshake(now, from, datagram)
    }

    /// Does the work of up to `budget` waiting handshake messages, oldest first. What they
    /// were refused for is reported as events (their datagrams were taken long ago).
    pub fn answer_handshakes(&mut self, now: Instant, budget: usize, tx: &mut TxBatch) {
        clock::sync(now);
        for _ in 0..budget {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if let Err(reason) = self.process(now, w.from, &w.bytes[..w.len], &mut [], tx) {
                self.events.push_back(Event::dropped(reason, 1));
            }
        }
        if self.waiting.is_empty() {
            self.waiting_since = None;
        }
    }

    /// Demultiplexes and decrypts one datagram (a handshake message's work included).
    fn process(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        inner: &mut [u8],
        tx: &mut TxBatch,
    ) -> Result<Option<(PeerId, usize)>, DropReason> {
        let src = Some(from.ip());
        let (kind, slot) = self.demultiplex(src, datagram)?;
        let Some(Some(peer)) = self.slots.get_mut(slot) else {
            return Err(DropReason::WgUnknownIndex);
        };
        let att = self.id;
        let Some(tunn) = peer.tunn.as_deref_mut() else {
            // Another worker's peer: only an initiation can come here (the kernel picked a
            // socket by hash); it goes to its owner.
            if kind != Kind::Initiation || datagram.len() != INITIATION_LEN {
                return Err(DropReason::WgUnknownIndex);
            }
            let mut bytes = [0; INITIATION_LEN];
            bytes.copy_from_slice(datagram);
            let w = Waiting {
                from,
                len: datagram.len(),
                bytes,
            };
            self.foreign.push_back((self.shard.owner(slot), from, w));
            return Ok(None);
        };
        if peer.refused {
            if kind == Kind::Initiation {
                self.events.push_back(Event::HandshakeFailed {
                    peer: peer.id,
                    result: HandshakeResult::Certificate,
                    at: now,
                });
            }
            return Err(DropReason::Certificate);
        }

        if kind == Kind::Data {
            if datagram.len() > inner.len() + 16 {
                return Err(DropReason::TooBig);
            }
            let out = Out::from(tunn.decapsulate(src, datagram, inner));
            let delivered = match out {
                Out::Tunnel(len) => Some((peer.id, len)),
                Out::Done => None,
                Out::Err(e) => return Err(drop_reason(&e)),
                Out::Network(_) => return Err(DropReason::WgProtocol),
            };
            learn_endpoint(&mut self.events, peer, from, now);
            peer.active = true;
            flush(peer, att, tx);
            return Ok(delivered);
        }

        let out = match tx.next_buf() {
            Some(buf) => (Out::from(tunn.decapsulate(src, datagram, buf)), true),
            None => (
                Out::from(tunn.decapsulate(src, datagram, &mut self.scratch)),
                false,
            ),
        };
        let (len, fits) = match out {
            (Out::Err(e), _) => {
                if kind != Kind::CookieReply {
                    self.events
                        .push_back(Event::Handshake(HandshakeResult::Invalid));
                }
                return Err(drop_reason(&e));
            }
            (Out::Network(len), fits) => {
                if fits {
                    tx.commit(att, Via::udp(0, from), len);
                } else {
                    self.events
                        .push_back(Event::dropped(DropReason::TxQueueFull, 1));
                }
                (len, fits)
            }
            (Out::Done, _) | (Out::Tunnel(_), _) => (0, true),
        };
        match kind {
            Kind::Initiation | Kind::Response if len == COOKIE_REPLY_LEN => {
                self.events
                    .push_back(Event::Handshake(HandshakeResult::CookieSent));
                Err(DropReason::WgUnderLoad)
            }
            // The response never left: the initiator will retry; not a completed handshake.
            Kind::Initiation if !fits => Ok(None),
            Kind::Initiation | Kind::Response if len > 0 => {
                self.events.push_back(Event::HandshakeDone {
                    peer: peer.id,
                    at: now,
                });
                learn_endpoint(&mut self.events, peer, from, now);
                peer.active = true;
                // The initiator's session is current at once; a responder's only with the
                // initiator's first data message, and flushing before that would start a
                // competing handshake.
                if kind == Kind::Response {
                    flush(peer, att, tx);
                }
                Ok(None)
            }
            Kind::Initiation | Kind::Response => {
                self.events
                    .push_back(Event::Handshake(HandshakeResult::Invalid));
                Err(DropReason::WgProtocol)
            }
            Kind::CookieReply | Kind::Data => Ok(None),
        }
    }

    /// Why the limiter refused a datagram (a cookie reply it asks for is the caller's); a bad
    /// MAC1 is also an invalid handshake.
    fn refused(&mut self, r: TunnResult<'_>) -> DropReason {
        match r {
            TunnResult::Err(e) => {
                if matches!(e, WireGuardError::InvalidMac) {
                    self.events
                        .push_back(Event::Handshake(HandshakeResult::Invalid));
                }
                drop_reason(&e)
            }
            _ => DropReason::WgProtocol,
        }
    }

    /// Checks a datagram's type, length and MAC1 and finds the slot of its peer.
    fn demultiplex(
        &mut self,
        src: Option<IpAddr>,
        datagram: &[u8],
    ) -> Result<(Kind, usize), DropReason> {
        let mut cookie = [0u8; COOKIE_REPLY_LEN];
        let packet = match self.rate_limiter.verify_packet(src, datagram, &mut cookie) {
            Ok(p) => p,
            Err(refused) => return Err(self.refused(refused)),
        };
        let by_index = |receiver_idx: u32| (receiver_idx >> 8) as usize;
        match packet {
            Packet::HandshakeInit(p) => {
                let half =
                    match parse_handshake_anon(&self.statics.private, &self.statics.public, &p) {
                        Ok(half) => half,
                        Err(e) => {
                            self.events
                                .push_back(Event::Handshake(HandshakeResult::Invalid));
                            return Err(drop_reason(&e));
                        }
                    };
                match self.by_key.get(&half.peer_static_public) {
                    Some(&s) => Ok((Kind::Initiation, s as usize)),
                    None => {
                        self.events
                            .push_back(Event::Handshake(HandshakeResult::UnknownPeer));
                        Err(DropReason::WgUnknownPeer)
                    }
                }
            }
            Packet::HandshakeResponse(p) => Ok((Kind::Response, by_index(p.receiver_idx))),
            Packet::PacketCookieReply(p) => Ok((Kind::CookieReply, by_index(p.receiver_idx))),
            Packet::PacketData(p) => Ok((Kind::Data, by_index(p.receiver_idx))),
        }
    }

    /// Encrypts one inner packet to `peer` into `tx`. Without a session the packet waits in
    /// the peer's queue and a handshake initiation goes out instead; the packet follows when
    /// the handshake completes.
    pub fn send(
        &mut self,
        now: Instant,
        peer: PeerId,
        packet: &[u8],
        tx: &mut TxBatch,
    ) -> Result<(), DropReason> {
        let Some(&slot) = self.by_id.get(&peer) else {
            return Err(DropReason::NoRoute);
        };
        let Some(Some(p)) = self.slots.get_mut(slot as usize) else {
            return Err(DropReason::NoRoute);
        };
        if p.refused {
            return Err(DropReason::Certificate);
        }
        let endpoint = p.endpoint.ok_or(DropReason::NoEndpoint)?;
        if packet.len() + DATA_OVERHEAD > BUF_SIZE {
            return Err(DropReason::TooBig);
        }
        clock::sync(now);
        let buf = tx.next_buf().ok_or(DropReason::TxQueueFull)?;
        // Another worker's peer: the pipeline hands its packets to that worker instead.
        let Some(tunn) = p.tunn.as_deref_mut() else {
            return Err(DropReason::NoRoute);
        };
        let queued = match Out::from(tunn.encapsulate(packet, buf)) {
            Out::Network(len) => {
                let data = buf[0] == MESSAGE_DATA;
                tx.commit(self.id, Via::udp(0, endpoint), len);
                p.active = true;
                !data
            }
            Out::Done => true,
            Out::Err(e) => return Err(drop_reason(&e)),
            Out::Tunnel(_) => return Err(DropReason::WgProtocol),
        };
        if queued {
            // No session: boringtun queued the packet (and started a handshake) unless its
            // queue was full, in which case it dropped it.
            if p.queued >= queue_limit(p.persistent_keepalive) {
                return Err(DropReason::NoSession);
            }
            p.queued += 1;
        }
        Ok(())
    }

    /// Runs the peers' timers: handshake retransmission and rekeying, keepalives, session
    /// expiry, the rate limiter's reset. When `tx` fills up, the remaining peers run at the
    /// next call, which [`WgAttachment::poll_timeout`] then reports due at once.
    pub fn update_timers(&mut self, now: Instant, tx: &mut TxBatch) {
        clock::sync(now);
        self.rate_limiter.reset_count();
        self.cookie_limiter.reset_count();
        let att = self.id;
        let start = self.timer_cursor.min(self.slots.len());
        for s in start..self.slots.len() {
            let Some(peer) = self.slots[s].as_mut() else {
                continue;
            };
            let Some(buf) = tx.next_buf() else {
                self.timer_cursor = s;
                self.next_tick = Some(now);
                return;
            };
            // Every `Tunn` runs, endpoint or not: boringtun stamps events with the time of
            // its last timer run, so a skipped `Tunn` would date its first handshake in the
            // past. Without an endpoint its output (a persistent keepalive's initiation) has
            // nowhere to go and is not a packet anyone asked for, so it is not a drop.
            let Some(tunn) = peer.tunn.as_deref_mut() else {
                continue;
            };
            match Out::from(tunn.update_timers(buf)) {
                // A refused peer's persistent keepalive would start a handshake with it.
                Out::Network(_) if peer.refused => {}
                Out::Network(len) => {
                    if let Some(ep) = peer.endpoint {
                        tx.commit(att, Via::udp(0, ep), len);
                        peer.active = true;
                    }
                }
                Out::Err(WireGuardError::ConnectionExpired) => {
                    if std::mem::take(&mut peer.active) {
                        self.events.push_back(Event::HandshakeFailed {
                            peer: peer.id,
                            result: HandshakeResult::Timeout,
                            at: now,
                        });
                    }
                    // boringtun empties its queue when the connection expires.
                    let lost = std::mem::take(&mut peer.queued) as u64;
                    if lost > 0 {
                        self.events
                            .push_back(Event::dropped(DropReason::NoSession, lost));
                    }
                }
                Out::Err(e) => {
                    tracing::debug!(attachment = att.0, peer = peer.id.0, error = ?e, "WireGuard timer")
                }
                Out::Done | Out::Tunnel(_) => {}
            }
            if peer.backlog {
                flush(peer, att, tx);
            }
        }
        self.timer_cursor = 0;
        self.next_tick = (!self.by_id.is_empty()).then(|| now + TIMER_TICK);
    }

    /// The next thing that happened that the caller has not taken yet.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`WgAttachment::handle_timeout`] is next due: at once while handshakes wait,
    /// else at the next timer tick; `None` without peers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_tick, self.waiting_since) {
            (Some(t), Some(w)) => Some(t.min(w)),
            (t, w) => t.or(w),
        }
    }

    /// Runs the timers when their tick is due and answers up to [`HANDSHAKES_PER_TIMER`]
    /// waiting handshakes.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut TxBatch) {
        if self.next_tick.is_some_and(|t| t <= now) {
            self.update_timers(now, tx);
        }
        self.answer_handshakes(now, HANDSHAKES_PER_TIMER, tx);
    }

    /// The worker owning `peer`'s tunnel, when the attachment is sharded over several.
    pub fn owner_of(&self, peer: PeerId) -> Option<u32> {
        let &slot = self.by_id.get(&peer)?;
        (self.shard.count > 1).then(|| self.shard.owner(slot as usize))
    }

    /// Where datagrams to `peer` go: its configured endpoint or where it last authenticated
    /// from.
    pub fn peer_endpoint(&self, peer: PeerId) -> Option<SocketAddr> {
        self.peer(peer).and_then(|p| p.endpoint)
    }

    /// Whether `peer` has a session that [`WgAttachment::send`] can encrypt with right now.
    pub fn peer_session_established(&self, peer: PeerId) -> bool {
        self.peer(peer)
            .and_then(|p| p.tunn.as_deref())
            .is_some_and(|t| t.time_since_last_handshake().is_some())
    }

    /// Packets waiting in the peers' queues for a handshake (lost if the attachment goes).
    pub fn queued(&self) -> usize {
        self.slots.iter().flatten().map(|p| p.queued).sum()
    }

    /// The peers of this attachment, in slot order.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.slots.iter().flatten().map(|p| p.id)
    }

    fn peer(&self, peer: PeerId) -> Option<&Peer> {
        let &slot = self.by_id.get(&peer)?;
        self.slots.get(slot as usize)?.as_ref()
    }
}

/// Sends the packets that waited in `peer`'s queue for a session, as far as `tx` has room;
/// the rest keep waiting for the next timer run. Only called while the peer has a current
/// session: without one, boringtun would answer the flush with a new handshake initiation.
fn flush(peer: &mut Peer, att: AttachmentId, tx: &mut TxBatch) {
    let Some(endpoint) = peer.endpoint else {
        return;
    };
    for _ in 0..MAX_FLUSH {
        let Some(buf) = tx.next_buf() else {
            peer.backlog = true;
            return;
        };
        let Some(tunn) = peer.tunn.as_deref_mut() else {
            return;
        };
        match Out::from(tunn.decapsulate(None, &[], buf)) {
            Out::Network(len) => {
                // A queued keepalive leaves as an empty data message: not one of ours.
                if buf[0] == MESSAGE_DATA && len > DATA_OVERHEAD {
                    peer.queued = peer.queued.saturating_sub(1);
                }
                tx.commit(att, Via::udp(0, endpoint), len)
            }
            _ => break,
        }
    }
    peer.backlog = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDSHAKE_RESPONSE_LEN: usize = 92;

    fn key_field(keys: &str, line_start: &str, field: &str) -> [u8; 32] {
        let line = keys.lines().find(|l| l.starts_with(line_start)).unwrap();
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(field))
            .unwrap();
        keys::decode(value).unwrap()
    }

    #[test]
    fn answers_wireguard_go_initiation_from_pcap() {
        let pcap = include_bytes!("../../../tests/vectors/wg-handshake.pcap");
        let keys = include_str!("../../../tests/vectors/wg-handshake.keys");
        let b_private = key_field(keys, "B ", "private=");
        let a_public = key_field(keys, "A ", "public=");
        let psk = key_field(keys, "psk=", "psk=");
        assert_eq!(
            keys::public_key(&b_private),
            key_field(keys, "B ", "public=")
        );

        let (from, init) = crate::tunnel::testvec::udp_payloads(pcap)[0].from_payload();
        assert_eq!(init.len(), 148);
        assert_eq!(init[0], 1, "handshake initiation");

        let now = Instant::now() + Duration::from_secs(1);
        let mut wg = WgAttachment::new(AttachmentId(0), &b_private);
        let a = PeerId(3);
        wg.set_peers(
            &[WgPeerConfig {
                id: a,
                public_key: a_public,
                preshared_key: Some(psk),
                persistent_keepalive: None,
                endpoint: None,
            }],
            now,
        );
        let mut tx = TxBatch::new(4);
        let mut inner = [0u8; BUF_SIZE];

        let r = wg.handle_datagram(now, from, init, &mut inner, &mut tx);

        // The initiation waits for its work: the timer is due at once.
        assert_eq!(r, Ok(None));
        assert!(tx.is_empty());
        assert_eq!(wg.handshake_backlog(), 1);
        assert_eq!(wg.poll_timeout(), Some(now));
        wg.handle_timeout(now, &mut tx);
        assert_eq!(wg.handshake_backlog(), 0);
        let sent: Vec<_> = tx.iter().collect();
        assert_eq!(sent.len(), 1);
        let (meta, resp) = sent[0];
        assert_eq!(resp.len(), HANDSHAKE_RESPONSE_LEN);
        assert_eq!(&resp[..4], &[2, 0, 0, 0], "handshake response");
        assert_eq!(
            &resp[8..12],
            &init[4..8],
            "receiver index = initiator's sender index"
        );
        assert_eq!(
            u32::from_le_bytes(resp[4..8].try_into().unwrap()) >> 8,
            0,
            "slot 0"
        );
        assert_eq!(meta.via, Via::udp(0, "10.250.1.1:51820".parse().unwrap()));
        assert_eq!(wg.peer_endpoint(a), Some(from));
        assert_eq!(
            wg.poll_event(),
            Some(Event::HandshakeDone { peer: a, at: now })
        );
        assert_eq!(
            wg.poll_event(),
            Some(Event::Endpoint {
                peer: a,
                from: None,
                to: from,
                at: now
            })
        );
        assert_eq!(wg.poll_event(), None);

        // The same initiation again is a replay (its TAI64N timestamp is not newer), found
        // when its work is done.
        tx.clear();
        let r = wg.handle_datagram(now, from, init, &mut inner, &mut tx);
        assert_eq!(r, Ok(None));
        wg.answer_handshakes(now, HANDSHAKES_PER_BATCH, &mut tx);
        assert!(tx.is_empty());
        assert_eq!(
            wg.poll_event(),
            Some(Event::Handshake(HandshakeResult::Invalid))
        );
        assert_eq!(
            wg.poll_event(),
            Some(Event::dropped(DropReason::WgReplay, 1))
        );
    }

    /// Two workers hold the tunnels of alternate slots. An initiation that reaches the
    /// worker not owning its peer is set aside with its owner, which answers it.
    #[test]
    fn an_initiation_for_another_workers_peer_is_handed_to_it() {
        let gw_key = [5u8; 32];
        let gw_public = PublicKey::from(&StaticSecret::from(gw_key));
        let clients: Vec<StaticSecret> =
            (0..4u8).map(|i| StaticSecret::from([20 + i; 32])).collect();
        let peers: Vec<WgPeerConfig> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| WgPeerConfig {
                id: PeerId(i as u32),
                public_key: PublicKey::from(c).to_bytes(),
                preshared_key: None,
                persistent_keepalive: None,
                endpoint: None,
            })
            .collect();
        let now = Instant::now();
        let worker = |index| {
            let mut wg = WgAttachment::new(AttachmentId(0), &gw_key);
            wg.set_shard(Shard { index, count: 2 });
            wg.set_peers(&peers, now);
            wg
        };
        let (mut w0, mut w1) = (worker(0), worker(1));
        assert!(w0.slots[1].as_ref().is_some_and(|p| p.tunn.is_none()));
        assert!(w1.slots[1].as_ref().is_some_and(|p| p.tunn.is_some()));

        // Peer 1 (slot 1, owned by worker 1) initiates; the kernel gave it to worker 0.
        let mut client = Tunn::new(clients[1].clone(), gw_public, None, None, 77, None);
        let mut buf = [0u8; BUF_SIZE];
        let TunnResult::WriteToNetwork(init) = client.format_handshake_initiation(&mut buf, false)
        else {
            panic!("an initiation")
        };
        let init = init.to_vec();
        let from: SocketAddr = "192.0.2.1:51820".parse().expect("address");
        let (mut tx, mut inner) = (TxBatch::new(4), [0u8; BUF_SIZE]);
        assert_eq!(
            w0.handle_datagram(now, from, &init, &mut inner, &mut tx),
            Ok(None)
        );
        w0.answer_handshakes(now, 4, &mut tx);
        assert!(tx.is_empty(), "worker 0 does not answer for worker 1");
        let (owner, came_from, bytes) = w0.pop_foreign().expect("set aside");
        assert_eq!((owner, came_from), (1, from));
        assert!(w0.pop_foreign().is_none());

        assert_eq!(
            w1.handle_datagram(now, from, &bytes, &mut inner, &mut tx),
            Ok(None)
        );
        w1.answer_handshakes(now, 4, &mut tx);
        let (_, response) = tx.get(0);
        assert_eq!(response[0], 2, "the owner answers");
        assert!(matches!(
            client.decapsulate(Some(from.ip()), response, &mut buf),
            TunnResult::WriteToNetwork(_)
        ));
        assert!(!w0.peer_session_established(PeerId(1)));
    }

    /// Load is judged by the backlog: below [`UNDER_LOAD_BACKLOG`] every initiation waits
    /// for its answer; from there on, one without a valid cookie MAC gets a cookie reply
    /// (for [`UNDER_LOAD_HOLD`] after the backlog shrank again, too); a full queue refuses.
    #[test]
    fn cookies_are_demanded_by_backlog_not_by_rate() {
        let pcap = include_bytes!("../../../tests/vectors/wg-handshake.pcap");
        let keys = include_str!("../../../tests/vectors/wg-handshake.keys");
        let b_private = key_field(keys, "B ", "private=");
        let (from, init) = crate::tunnel::testvec::udp_payloads(pcap)[0].from_payload();
        let now = Instant::now() + Duration::from_secs(1);
        let mut wg = WgAttachment::new(AttachmentId(0), &b_private);
        let mut tx = TxBatch::new(4);
        let mut inner = [0u8; BUF_SIZE];
        // Far more than a rate limit of a few hundred a second, all in the same instant.
        for _ in 0..UNDER_LOAD_BACKLOG {
            assert_eq!(
                wg.handle_datagram(now, from, init, &mut inner, &mut tx),
                Ok(None)
            );
        }
        assert!(tx.is_empty(), "no cookie below the backlog");
        assert!(wg.under_load(now));
        let r = wg.handle_datagram(now, from, init, &mut inner, &mut tx);
        assert_eq!(r, Err(DropReason::WgUnderLoad));
        let (meta, reply) = tx.get(0);
        assert_eq!(
            (reply.len(), reply[0]),
            (COOKIE_REPLY_LEN, 3),
            "cookie reply"
        );
        assert_eq!(&reply[4..8], &init[4..8], "to the initiator's sender index");
        assert_eq!(meta.via, Via::udp(0, from));
        let cookies = std::iter::from_fn(|| wg.poll_event())
            .filter(|e| *e == Event::Handshake(HandshakeResult::CookieSent))
            .count();
        assert_eq!(cookies, 1);

        // The backlog shrinks; the judgement holds for a second, then lifts.
        wg.answer_handshakes(now, 1, &mut tx);
        assert!(wg.under_load(now + UNDER_LOAD_HOLD / 2));
        assert!(!wg.under_load(now + UNDER_LOAD_HOLD));

        // A full queue refuses even valid cookie MACs' owners (here: MAC1 only, not under
        // load any more).
        let later = now + UNDER_LOAD_HOLD;
        while wg.handshake_backlog() < HANDSHAKE_BACKLOG {
            wg.waiting.push_back(Waiting {
                from,
                len: init.len(),
                bytes: init.try_into().expect("initiation length"),
            });
        }
        wg.under_load_until = None;
        wg.waiting.truncate(HANDSHAKE_BACKLOG);
        tx.clear();
        assert!(wg.under_load(later));
        assert_eq!(
            wg.handle_datagram(later, from, init, &mut inner, &mut tx),
            Err(DropReason::WgUnderLoad)
        );
    }

    #[test]
    fn initiation_to_another_key_fails_authentication() {
        let pcap = include_bytes!("../../../tests/vectors/wg-handshake.pcap");
        let (from, init) = crate::tunnel::testvec::udp_payloads(pcap)[0].from_payload();
        let mut wg = WgAttachment::new(AttachmentId(0), &[7u8; 32]);
        let mut tx = TxBatch::new(2);
        let mut inner = [0u8; BUF_SIZE];
        let r = wg.handle_datagram(Instant::now(), from, init, &mut inner, &mut tx);
        // MAC1 is keyed with the responder's public key.
        assert_eq!(r, Err(DropReason::WgAuth));
        assert_eq!(
            wg.poll_event(),
            Some(Event::Handshake(HandshakeResult::Invalid))
        );
    }

    #[test]
    fn maps_boringtun_errors() {
        assert_eq!(
            drop_reason(&WireGuardError::InvalidAeadTag),
            DropReason::WgAuth
        );
        assert_eq!(
            drop_reason(&WireGuardError::DuplicateCounter),
            DropReason::WgReplay
        );
        assert_eq!(
            drop_reason(&WireGuardError::InvalidPacket),
            DropReason::WgMalformed
        );
        assert_eq!(
            drop_reason(&WireGuardError::UnderLoad),
            DropReason::WgUnderLoad
        );
        assert_eq!(
            drop_reason(&WireGuardError::LockFailed),
            DropReason::WgProtocol
        );
    }
}
