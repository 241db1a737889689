//! The data-path half of an IPsec attachment: CHILD SAs by inbound SPI, one outbound SA per
//! peer, ESP in and out of the attachment's sockets, and IKE datagrams set aside for the IKE
//! thread (see `docs/architecture.md`, "IPsec").
//!
//! Sockets, by their index in the attachment's `io` ([`IO_IKE`], [`IO_NAT_T`], [`IO_ESP`]):
//! UDP 500 carries IKE only; UDP 4500 carries IKE behind the four-zero-byte non-ESP marker,
//! ESP (a non-zero SPI first) and NAT keepalives (one 0xff byte) [RFC 3948 § 2]; a raw socket
//! of IP protocol 50 hands ESP with its IPv4 header in front.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use super::esp::{Decap, EspError, EspHeader, InboundSa, OutboundSa};
use crate::buffer::{Remote, TxBatch, Via, BUF_SIZE};
use crate::crypto::SystemRandom;
use crate::ids::{AttachmentId, PeerId};
use crate::tunnel::{Event, Inner, Shard};
use crate::vocab::DropReason;

/// The attachment's UDP socket for IKE (port 500).
pub const IO_IKE: u8 = 0;
/// The attachment's UDP socket for IKE and ESP-in-UDP (port 4500).
pub const IO_NAT_T: u8 = 1;
/// The attachment's raw socket of IP protocol 50.
pub const IO_ESP: u8 = 2;

/// IKE datagrams waiting for the IKE thread; more are dropped (`ike_queue_full`).
pub const IKE_QUEUE: usize = 64;

/// An IKE datagram for the IKE thread: the socket it came in on, the sender, and the message
/// (without the non-ESP marker).
#[derive(Clone)]
pub struct IkeDatagram {
    pub io: u8,
    pub from: SocketAddr,
    len: usize,
    buf: Box<[u8; BUF_SIZE]>,
}

impl IkeDatagram {
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for IkeDatagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeDatagram")
            .field("io", &self.io)
            .field("from", &self.from)
            .field("len", &self.len)
            .finish()
    }
}

/// Where a peer's ESP goes: UDP-encapsulated to an address and port on 4500, or raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspPath {
    Udp(SocketAddr),
    Raw(std::net::IpAddr),
}

impl EspPath {
    fn via(self) -> Via {
        match self {
            EspPath::Udp(a) => Via::udp(IO_NAT_T, a),
            EspPath::Raw(a) => Via {
                io: IO_ESP,
                remote: Remote::Ip(a),
            },
        }
    }
}

struct Outbound {
    sa: OutboundSa,
    path: EspPath,
}

/// A CHILD SA by its inbound SPI: the inbound half, and the outbound half until it becomes
/// the peer's active one.
struct Child {
    peer: PeerId,
    sa: InboundSa,
    /// Where the peer's ESP is expected from (and sent to).
    path: EspPath,
    pending: Option<Outbound>,
    /// Install order: when a peer's active SA goes, its newest waiting SA takes over.
    seq: u64,
}

/// The outbound SA a peer's packets go into, and the inbound SPI of its CHILD SA.
struct Active {
    inbound_spi: u32,
    out: Outbound,
}

/// One attachment's CHILD SAs and its queue of IKE datagrams. With several workers each holds
/// the SAs of the peers it owns (the IKE thread sends their changes to it alone, and steering
/// hands it their ESP by SPI).
pub struct IpsecTunnel {
    id: AttachmentId,
    shard: Shard,
    /// Each peer's home key, which names its owner.
    homes: FxHashMap<PeerId, u64>,
    inbound: FxHashMap<u32, Child>,
    outbound: FxHashMap<PeerId, Active>,
    ike: VecDeque<IkeDatagram>,
    /// Children installed so far.
    installed: u64,
    /// Buffers of taken datagrams, reused so that receiving IKE does not allocate; boxed so
    /// that they move between this list and the queue without copying.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<[u8; BUF_SIZE]>>,
    events: VecDeque<Event>,
    rng: SystemRandom,
    /// Peers whose authenticated ESP came from a new address (a NAT rebinding), for the IKE
    /// thread: it moves their IKE SA there too and checks the peer is alive.
    roamed: VecDeque<(PeerId, SocketAddr)>,
}

/// Roams waiting for the IKE thread; more in one batch are dropped (the next packet of the
/// peer, now sent to its new address, reports nothing; its IKE follows at its next message).
const ROAMED_MAX: usize = 64;

/// What an IPsec datagram turned out to be.
enum Kind {
    Ike { skip: usize },
    Esp { skip: usize },
    Keepalive,
}

impl IpsecTunnel {
    pub fn new(id: AttachmentId) -> IpsecTunnel {
        IpsecTunnel {
            id,
            shard: Shard::ALL,
            homes: FxHashMap::default(),
            inbound: FxHashMap::default(),
            outbound: FxHashMap::default(),
            ike: VecDeque::with_capacity(IKE_QUEUE),
            installed: 0,
            spare: (0..IKE_QUEUE).map(|_| Box::new([0; BUF_SIZE])).collect(),
            events: VecDeque::new(),
            rng: SystemRandom::new(),
            roamed: VecDeque::new(),
        }
    }

    pub fn set_id(&mut self, id: AttachmentId) {
        self.id = id;
    }

    pub fn set_shard(&mut self, shard: Shard) {
        self.shard = shard;
    }

    /// The attachment's peers (under the running plan's numbers) with their home keys.
    pub fn set_peers(&mut self, peers: &[(PeerId, u64)]) {
        self.homes.clear();
        self.homes.extend(peers.iter().copied());
    }

    /// The worker owning `peer`'s SAs, when there are several.
    pub fn owner_of(&self, peer: PeerId) -> Option<u32> {
        let &key = self.homes.get(&peer)?;
        (self.shard.count > 1).then(|| self.shard.owner_by_key(key))
    }

    /// Installs a CHILD SA of `peer` and makes it the one the peer's packets go into.
    pub fn install(
        &mut self,
        peer: PeerId,
        inbound: InboundSa,
        outbound: OutboundSa,
        path: EspPath,
    ) {
        let spi = inbound.spi();
        self.add(peer, inbound, outbound, path);
        self.activate(peer, spi);
    }

    /// Installs a CHILD SA of `peer` that receives at once but sends only once activated: a
    /// rekey's new SA, while the peer may not have it yet [RFC 7296 § 2.8].
    pub fn add(&mut self, peer: PeerId, inbound: InboundSa, outbound: OutboundSa, path: EspPath) {
        self.installed += 1;
        let child = Child {
            peer,
            sa: inbound,
            path,
            pending: Some(Outbound { sa: outbound, path }),
            seq: self.installed,
        };
        self.inbound.insert(child.sa.spi(), child);
    }

    /// Sends `peer`'s packets into the CHILD SA whose inbound SPI is `inbound_spi` from now
    /// on; `false` if there is no such SA waiting.
    pub fn activate(&mut self, peer: PeerId, inbound_spi: u32) -> bool {
        let Some(child) = self
            .inbound
            .get_mut(&inbound_spi)
            .filter(|c| c.peer == peer)
        else {
            return false;
        };
        let Some(out) = child.pending.take() else {
            return false;
        };
        self.outbound.insert(peer, Active { inbound_spi, out });
        true
    }

    /// Removes the CHILD SA with inbound SPI `spi` (and its outbound half, if active); `true`
    /// if it was installed. When the peer's active SA goes while another of its SAs waits
    /// (the losing side of simultaneous rekeys deletes the SA it made, after the peer's took
    /// over or not), the newest waiting one sends from now on.
    pub fn remove_inbound(&mut self, spi: u32) -> bool {
        let Some(child) = self.inbound.remove(&spi) else {
            return false;
        };
        let peer = child.peer;
        if self
            .outbound
            .get(&peer)
            .is_some_and(|a| a.inbound_spi == spi)
        {
            self.outbound.remove(&peer);
            let successor = self
                .inbound
                .iter()
                .filter(|(_, c)| c.peer == peer && c.pending.is_some())
                .max_by_key(|(_, c)| c.seq)
                .map(|(spi, _)| *spi);
            if let Some(next) = successor {
                self.activate(peer, next);
            }
        }
        true
    }

    /// Removes every SA of `peer` (the peer is down or its IKE SA was deleted).
    pub fn remove_peer(&mut self, peer: PeerId) {
        self.inbound.retain(|_, c| c.peer != peer);
        self.outbound.remove(&peer);
    }

    /// Keeps the SAs of the peers `kept` names, as `(old number, new number)`, under their
    /// new numbers, and removes every other SA.
    pub fn renumber(&mut self, kept: &[(PeerId, PeerId)]) {
        let new = |old: PeerId| kept.iter().find(|(o, _)| *o == old).map(|(_, n)| *n);
        self.inbound.retain(|_, c| match new(c.peer) {
            Some(n) => {
                c.peer = n;
                true
            }
            None => false,
        });
        self.outbound = std::mem::take(&mut self.outbound)
            .into_iter()
            .filter_map(|(p, a)| Some((new(p)?, a)))
            .collect();
    }

    /// Removes every SA.
    pub fn clear(&mut self) {
        self.inbound.clear();
        self.outbound.clear();
    }

    /// What each SA protected so far: (peer, SPI, bytes) of every inbound SA and of every
    /// peer's active outbound SA, for the IKE engine's rekeys by volume and liveness.
    pub fn usage(&self) -> impl Iterator<Item = (PeerId, u32, u64)> + '_ {
        let inbound = self
            .inbound
            .iter()
            .map(|(spi, c)| (c.peer, *spi, c.sa.usage().bytes));
        let outbound = self
            .outbound
            .iter()
            .map(|(peer, a)| (*peer, a.out.sa.spi(), a.out.sa.usage().bytes));
        inbound.chain(outbound)
    }

    /// Whether `peer` has an outbound SA.
    pub fn has_sa(&self, peer: PeerId) -> bool {
        self.outbound.contains_key(&peer)
    }

    /// Sends `peer`'s ESP to `to` from now on, in every SA it has (its address or NAT mapping
    /// changed): ESP in UDP to `to`, raw ESP to its address.
    pub fn set_path(&mut self, peer: PeerId, to: SocketAddr) {
        let moved = |path: EspPath| match path {
            EspPath::Udp(_) => EspPath::Udp(to),
            EspPath::Raw(_) => EspPath::Raw(to.ip()),
        };
        for c in self.inbound.values_mut().filter(|c| c.peer == peer) {
            c.path = moved(c.path);
            if let Some(out) = &mut c.pending {
                out.path = moved(out.path);
            }
        }
        if let Some(a) = self.outbound.get_mut(&peer) {
            a.out.path = moved(a.out.path);
        }
    }

    /// The next peer whose ESP came from a new address, and that address.
    pub fn take_roamed(&mut self) -> Option<(PeerId, SocketAddr)> {
        self.roamed.pop_front()
    }

    /// The next IKE datagram for the IKE thread.
    pub fn take_ike(&mut self) -> Option<IkeDatagram> {
        self.ike.pop_front()
    }

    /// Gives back the buffer of an IKE datagram the IKE thread is done with.
    pub fn recycle(&mut self, d: IkeDatagram) {
        if self.spare.len() < IKE_QUEUE {
            self.spare.push(d.buf);
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handles a datagram of the attachment's sockets: ESP is decrypted in place and its
    /// inner packet returned with the peer it came from; IKE is queued for the IKE thread.
    pub fn handle_input<'a>(
        &mut self,
        via: Via,
        data: &'a mut [u8],
    ) -> Result<Option<Inner<'a>>, DropReason> {
        match classify(via, data)? {
            Kind::Keepalive => Ok(None),
            Kind::Ike { skip } => {
                let Remote::Udp(from) = via.remote else {
                    return Err(DropReason::EspMalformed);
                };
                self.queue_ike(via.io, from, &data[skip..])?;
                Ok(None)
            }
            Kind::Esp { skip } => {
                let packet = &mut data[skip..];
                let spi = EspHeader::parse(packet).map_err(esp_reason)?.spi;
                let child = self
                    .inbound
                    .get_mut(&spi)
                    .ok_or(DropReason::EspUnknownSpi)?;
                let peer = child.peer;
                let top = child.sa.highest_seq();
                let decap = child.sa.decapsulate(packet).map_err(esp_reason)?;
                // Authenticated, not a replay, and the newest packet yet (a late one from the
                // old mapping moves nothing back): a UDP source other than the peer's known
                // one is its NAT's new mapping [RFC 3948 § 2.2, RFC 7296 § 2.23]. ESP follows
                // it at once; the IKE thread moves the IKE SA and checks the peer.
                let newest = child.sa.highest_seq() > top;
                if let (EspPath::Udp(known), Remote::Udp(from), true) =
                    (child.path, via.remote, newest)
                {
                    if known != from {
                        self.set_path(peer, from);
                        if self.roamed.len() < ROAMED_MAX {
                            self.roamed.push_back((peer, from));
                        }
                    }
                }
                match decap {
                    Decap::Packet(range) => Ok(Some(Inner {
                        peer: Some(peer),
                        packet: &mut packet[range],
                    })),
                    Decap::Dummy => Ok(None),
                }
            }
        }
    }

    fn queue_ike(&mut self, io: u8, from: SocketAddr, msg: &[u8]) -> Result<(), DropReason> {
        let Some(mut buf) = self.spare.pop() else {
            return Err(DropReason::IkeQueueFull);
        };
        buf[..msg.len()].copy_from_slice(msg);
        self.ike.push_back(IkeDatagram {
            io,
            from,
            len: msg.len(),
            buf,
        });
        Ok(())
    }

    /// Encrypts `packet` into `peer`'s outbound SA and queues it on the SA's path.
    pub fn encapsulate(
        &mut self,
        peer: PeerId,
        packet: &[u8],
        tx: &mut TxBatch,
    ) -> Result<(), DropReason> {
        let out = &mut self
            .outbound
            .get_mut(&peer)
            .ok_or(DropReason::NoSession)?
            .out;
        let buf = tx.next_buf().ok_or(DropReason::TxQueueFull)?;
        let len = out
            .sa
            .encapsulate(&mut self.rng, packet, buf)
            .map_err(|e| match e {
                EspError::BufferTooSmall => DropReason::TooBig,
                EspError::SequenceExhausted => DropReason::NoSession,
                _ => DropReason::EspMalformed,
            })?;
        tx.commit(self.id, out.path.via(), len);
        Ok(())
    }
}

/// Tells IKE from ESP by socket and first bytes.
fn classify(via: Via, data: &[u8]) -> Result<Kind, DropReason> {
    match via.io {
        IO_IKE => Ok(Kind::Ike { skip: 0 }),
        IO_NAT_T => match data {
            [0xff] => Ok(Kind::Keepalive),
            [0, 0, 0, 0, ..] => Ok(Kind::Ike { skip: 4 }),
            d if d.len() >= super::esp::HEADER_LEN => Ok(Kind::Esp { skip: 0 }),
            _ => Err(DropReason::EspMalformed),
        },
        IO_ESP => {
            // A raw IPv4 socket hands the packet with its header.
            let ihl = data
                .first()
                .map(|b| usize::from(b & 0x0f) * 4)
                .filter(|&ihl| ihl >= 20 && ihl <= data.len())
                .ok_or(DropReason::EspMalformed)?;
            Ok(Kind::Esp { skip: ihl })
        }
        _ => Err(DropReason::EspMalformed),
    }
}

/// The drop reason of an ESP error.
fn esp_reason(e: EspError) -> DropReason {
    match e {
        EspError::Replay => DropReason::EspReplay,
        EspError::Integrity => DropReason::EspIntegrity,
        EspError::WrongSpi => DropReason::EspUnknownSpi,
        _ => DropReason::EspMalformed,
    }
}

#[cfg(test)]
mod tests;
