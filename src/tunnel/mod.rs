//! Tunnel state machines. Each kind is sans-IO: datagrams in, datagrams and inner packets
//! out through caller-supplied buffers, time passed in as `now`.
//!
//! The data path talks to attachments through [`Tunnel`] only, in the quinn / firezone shape:
//! [`Tunnel::handle_input`] for what the attachment received, [`Tunnel::encapsulate`] for an
//! inner packet to send, [`Tunnel::handle_timeout`] when [`Tunnel::poll_timeout`] is due, and
//! [`Tunnel::poll_event`] for what happened that the return values do not say (handshakes,
//! packets lost inside the tunnel). A tunnel counts nothing itself: the pipeline counts the
//! errors it returns and the events it reports. A new tunnel kind (IPsec, TLS) is a new folder
//! here and a new variant of [`Tunnel`] and [`TunnelConfig`]; the pipeline names no kind.

#![forbid(unsafe_code)]

pub mod ethernet;
pub mod ipsec;
pub mod plain;
#[cfg(test)]
pub mod testvec;
pub mod tls;
pub mod wireguard;

use std::time::Instant;

use crate::buffer::{TxBatch, Via};
use crate::ids::{AttachmentId, PeerId};
use crate::vocab::{ArpCounts, DropReason, HandshakeResult};

/// What a tunnel reports besides the return values of its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A handshake message was handled with this outcome (other than a completed handshake).
    Handshake(HandshakeResult),
    /// `peer` completed a handshake at `at`.
    HandshakeDone { peer: PeerId, at: Instant },
    /// A handshake of `peer` failed with `result` at `at`: refused (its facility's
    /// certificate stops it) or unanswered (`timeout`).
    HandshakeFailed {
        peer: PeerId,
        result: HandshakeResult,
        at: Instant,
    },
    /// `peer`'s tunnel packets now come from `to` (before: `from`): its first authenticated
    /// packet, or a NAT or roaming change.
    Endpoint {
        peer: PeerId,
        from: Option<std::net::SocketAddr>,
        to: std::net::SocketAddr,
        at: Instant,
    },
    /// `peer` has a session (a TLS client connected) or lost it.
    Established { peer: PeerId, up: bool },
    /// Packets lost inside the tunnel, not the one the call was about: replies that found the
    /// transmit batch full, packets that waited for a session that never came.
    Dropped { reason: DropReason, packets: u64 },
    /// An `ethernet` attachment's ARP since its last report (requests, replies, failed next
    /// hops) and the neighbour entries it holds now; reported when any of them changed.
    Arp(ArpCounts),
}

impl Event {
    pub fn dropped(reason: DropReason, packets: u64) -> Event {
        Event::Dropped { reason, packets }
    }
}

/// Which of the data path's workers this is, and how many there are: a sharded attachment
/// (WireGuard, IPsec) holds only the tunnels and SAs of the peers this worker owns, and the
/// runtime's steering hands their datagrams to it. A WireGuard peer's owner follows from its
/// slot, which every session index names ([`Shard::owner`]); an IPsec peer's from its plan's
/// home key ([`Shard::owner_by_key`]), and every inbound SPI of its CHILD SAs is chosen
/// congruent to its owner modulo `count` (`ike::SpiClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// One worker holds every peer.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The worker owning `slot`.
    pub fn owner(self, slot: usize) -> u32 {
        (slot % self.count.max(1) as usize) as u32
    }

    pub fn owns(self, slot: usize) -> bool {
        self.owner(slot) == self.index
    }

    /// The worker owning the peer whose plan gives it `home_key`: the same after any
    /// reload that keeps the peer's name, whatever number it gets.
    pub fn owner_by_key(self, home_key: u64) -> u32 {
        (home_key % u64::from(self.count.max(1))) as u32
    }

    /// The worker an inbound SPI was chosen for.
    pub fn owner_of_spi(self, spi: u32) -> u32 {
        spi % self.count.max(1)
    }
}

/// How the plan configures one attachment's tunnel.
#[derive(Debug, Clone)]
pub enum TunnelConfig {
    WireGuard {
        private_key: [u8; 32],
        peers: Vec<wireguard::WgPeerConfig>,
    },
    Plain {
        mtu: u16,
    },
    Ethernet(ethernet::EthernetConfig),
    Tls(tls::TlsConfig),
    /// The peers of an IPsec attachment, each with its home key (which worker owns its SAs:
    /// [`Shard::owner_by_key`]); their SAs come from the IKE thread.
    Ipsec {
        peers: Vec<(PeerId, u64)>,
        /// After a reload: the peers whose SAs the IKE engine keeps, by their old and new
        /// numbers (`Plan::ipsec_carry`); `None` when the engine is replaced.
        kept: Option<Vec<(PeerId, PeerId)>>,
    },
}

/// One attachment's tunnel state.
pub enum Tunnel {
    WireGuard(Box<wireguard::WgAttachment>),
    Plain(plain::PlainTunnel),
    Ipsec(Box<ipsec::IpsecTunnel>),
    Ethernet(Box<ethernet::EthernetTunnel>),
    Tls(Box<tls::TlsTunnel>),
}

/// An inner packet out of a tunnel, and the peer it came from (for tunnels with peers).
#[derive(Debug)]
pub struct Inner<'a> {
    pub peer: Option<PeerId>,
    pub packet: &'a mut [u8],
}

impl Tunnel {
    /// A fresh tunnel for attachment `id`.
    pub fn new(id: AttachmentId, config: &TunnelConfig, now: Instant, shard: Shard) -> Tunnel {
        match config {
            TunnelConfig::WireGuard { private_key, peers } => {
                let mut wg = wireguard::WgAttachment::new(id, private_key);
                // Before the peers: a worker makes the tunnels of its own peers only.
                wg.set_shard(shard);
                wg.set_peers(peers, now);
                Tunnel::WireGuard(Box::new(wg))
            }
            TunnelConfig::Plain { mtu } => Tunnel::Plain(plain::PlainTunnel { mtu: *mtu }),
            TunnelConfig::Ipsec { peers, .. } => {
                let mut t = ipsec::IpsecTunnel::new(id);
                t.set_shard(shard);
                t.set_peers(peers);
                Tunnel::Ipsec(Box::new(t))
            }
            TunnelConfig::Ethernet(c) => {
                Tunnel::Ethernet(Box::new(ethernet::EthernetTunnel::new(id, *c, now)))
            }
            TunnelConfig::Tls(c) => Tunnel::Tls(Box::new(tls::TlsTunnel::new(id, c.clone()))),
        }
    }

    /// Takes a reload's configuration for the same attachment on the same sockets (now
    /// numbered `id`), keeping what it can: a WireGuard tunnel with the same key keeps every
    /// peer whose keys did not change, with its session. Returns the packets lost with the
    /// peers that went, or `Err(self)` when the tunnel cannot serve `config` (another kind or
    /// key): the caller builds a new one.
    pub fn reconfigure(
        mut self,
        id: AttachmentId,
        config: &TunnelConfig,
        now: Instant,
    ) -> Result<(Tunnel, usize), Tunnel> {
        match (&mut self, config) {
            (Tunnel::WireGuard(wg), TunnelConfig::WireGuard { private_key, peers })
                if wg.has_private_key(private_key) =>
            {
                wg.set_id(id);
                let lost = wg.set_peers(peers, now);
                Ok((self, lost))
            }
            (Tunnel::Ipsec(t), TunnelConfig::Ipsec { peers, kept }) => {
                // Peers are renumbered by a reload: SAs kept under their old numbers would
                // send one facility's packets to another. The IKE engine keeps the SAs of
                // the peers `kept` names (under their new numbers) and drops the others.
                t.set_id(id);
                match kept {
                    Some(kept) => t.renumber(kept),
                    None => t.clear(),
                }
                t.set_peers(peers);
                Ok((self, 0))
            }
            (Tunnel::Tls(t), TunnelConfig::Tls(c)) if c.kept.is_some() => {
                t.reconfigure(id, c.clone());
                Ok((self, 0))
            }
            (Tunnel::Ethernet(e), TunnelConfig::Ethernet(c)) => {
                if e.reconfigure(id, *c) {
                    Ok((self, 0))
                } else {
                    Err(self)
                }
            }
            _ => Err(self),
        }
    }

    /// Handles what the attachment received on `via` (a datagram, or a device packet).
    /// Returns the inner packet to forward, in `data` or decrypted into `scratch`, with the
    /// peer it came from; `Ok(None)` when there is nothing to forward (a handshake message,
    /// a keepalive). The caller counts a returned error.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        via: Via,
        data: &'a mut [u8],
        scratch: &'a mut [u8],
        tx: &mut TxBatch,
    ) -> Result<Option<Inner<'a>>, DropReason> {
        match self {
            Tunnel::WireGuard(wg) => {
                let from = via.udp_addr().ok_or(DropReason::WgMalformed)?;
                let out = wg.handle_datagram(now, from, data, scratch, tx)?;
                Ok(out.map(|(peer, len)| Inner {
                    peer: Some(peer),
                    packet: &mut scratch[..len],
                }))
            }
            Tunnel::Plain(_) => Ok(Some(Inner {
                peer: None,
                packet: data,
            })),
            Tunnel::Ipsec(t) => t.handle_input(via, data),
            Tunnel::Ethernet(e) => Ok(e
                .handle_input(now, data, tx)?
                .map(|packet| Inner { peer: None, packet })),
            Tunnel::Tls(t) => t.handle_input(now, data),
        }
    }

    /// The data-path worker owning `peer`'s tunnel or SAs, if the attachment is sharded over
    /// several (WireGuard, IPsec); `None`: worker 0 serves the attachment.
    pub fn owner_of(&self, peer: PeerId) -> Option<u32> {
        match self {
            Tunnel::WireGuard(wg) => wg.owner_of(peer),
            Tunnel::Ipsec(t) => t.owner_of(peer),
            _ => None,
        }
    }

    /// Shards a WireGuard or IPsec attachment's peers over the workers (others stay whole).
    pub fn set_shard(&mut self, shard: Shard) {
        match self {
            Tunnel::WireGuard(wg) => wg.set_shard(shard),
            Tunnel::Ipsec(t) => t.set_shard(shard),
            _ => {}
        }
    }

    /// A WireGuard initiation another worker took for this one's peer: it checked its MACs
    /// and its load (with its own cookie secret), so it joins the waiting handshakes as it
    /// is (unless they are full).
    pub fn take_handed_initiation(
        &mut self,
        now: Instant,
        from: std::net::SocketAddr,
        datagram: &[u8],
    ) -> Result<(), DropReason> {
        match self {
            Tunnel::WireGuard(wg) => wg.take_handed_initiation(now, from, datagram),
            _ => Err(DropReason::NoRoute),
        }
    }

    /// The next WireGuard initiation of another worker's peer, for the caller to hand on.
    pub fn pop_foreign(
        &mut self,
    ) -> Option<(u32, std::net::SocketAddr, [u8; wireguard::INITIATION_LEN])> {
        match self {
            Tunnel::WireGuard(wg) => wg.pop_foreign(),
            _ => None,
        }
    }

    /// Work left over from a batch of received packets, bounded: a WireGuard attachment
    /// answers a few of the handshakes waiting.
    pub fn after_batch(&mut self, now: Instant, tx: &mut TxBatch) {
        if let Tunnel::WireGuard(wg) = self {
            wg.answer_handshakes(now, wireguard::HANDSHAKES_PER_BATCH, tx);
        }
    }

    /// Sends one inner packet into the tunnel, to `peer` for tunnels with peers; it goes out
    /// through `tx` as attachment `id`.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        id: AttachmentId,
        peer: Option<PeerId>,
        packet: &[u8],
        tx: &mut TxBatch,
    ) -> Result<(), DropReason> {
        match (self, peer) {
            (Tunnel::WireGuard(wg), Some(p)) => wg.send(now, p, packet, tx),
            (Tunnel::Ipsec(t), Some(p)) => t.encapsulate(p, packet, tx),
            (Tunnel::Ethernet(e), None) => e.encapsulate(now, packet, tx),
            (Tunnel::Tls(t), Some(p)) => t.encapsulate(p, packet, tx),
            (Tunnel::Plain(_), None) => {
                let buf = tx.next_buf().ok_or(DropReason::TxQueueFull)?;
                buf[..packet.len()].copy_from_slice(packet);
                tx.commit(id, Via::DEVICE, packet.len());
                Ok(())
            }
            _ => Err(DropReason::NoRoute),
        }
    }

    /// Admits or refuses `peer`, whose facility's certificate state allows traffic or not
    /// (the pipeline refuses the refused peer's traffic itself; this is for what the tunnel
    /// does alone). WireGuard refuses the peer's handshakes, ends its sessions and sends it
    /// nothing; IPsec SAs are deleted by the IKE thread. Returns the packets lost.
    pub fn set_peer_admitted(&mut self, peer: PeerId, admitted: bool, now: Instant) -> usize {
        match self {
            Tunnel::WireGuard(wg) => wg.set_admitted(peer, admitted, now).unwrap_or(0),
            Tunnel::Plain(_) | Tunnel::Ipsec(_) | Tunnel::Ethernet(_) | Tunnel::Tls(_) => 0,
        }
    }

    /// The peer whose session holds `address`, for tunnels that hand out addresses (TLS);
    /// `None` for the others and for an address no session holds.
    pub fn peer_for(&self, address: std::net::Ipv4Addr) -> Option<PeerId> {
        match self {
            Tunnel::Tls(t) => t.peer_for(address),
            _ => None,
        }
    }

    /// Whether the tunnel hands out its addresses to peers (the pipeline then finds the peer
    /// of a routed address with [`Tunnel::peer_for`]).
    pub fn assigns_addresses(&self) -> bool {
        matches!(self, Tunnel::Tls(_))
    }

    /// Runs the tunnel's timers if they are due.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut TxBatch) {
        match self {
            Tunnel::WireGuard(wg) => {
                if wg.poll_timeout().is_some_and(|t| t <= now) {
                    wg.handle_timeout(now, tx);
                }
            }
            Tunnel::Ethernet(e) => {
                if e.poll_timeout().is_some_and(|t| t <= now) {
                    e.handle_timeout(now, tx);
                }
            }
            Tunnel::Plain(_) | Tunnel::Ipsec(_) | Tunnel::Tls(_) => {}
        }
    }

    /// When [`Tunnel::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Tunnel::WireGuard(wg) => wg.poll_timeout(),
            Tunnel::Ethernet(e) => e.poll_timeout(),
            Tunnel::Plain(_) | Tunnel::Ipsec(_) | Tunnel::Tls(_) => None,
        }
    }

    /// The next event the caller has not taken yet.
    pub fn poll_event(&mut self) -> Option<Event> {
        match self {
            Tunnel::WireGuard(wg) => wg.poll_event(),
            Tunnel::Plain(_) => None,
            Tunnel::Ipsec(t) => t.poll_event(),
            Tunnel::Ethernet(e) => e.poll_event(),
            Tunnel::Tls(t) => t.poll_event(),
        }
    }

    /// Packets waiting inside the tunnel (for a handshake), lost if the tunnel goes.
    pub fn queued(&self) -> usize {
        match self {
            Tunnel::WireGuard(wg) => wg.queued(),
            Tunnel::Ethernet(e) => e.queued(),
            Tunnel::Plain(_) | Tunnel::Ipsec(_) | Tunnel::Tls(_) => 0,
        }
    }

    /// The WireGuard state, if this is a WireGuard tunnel (for inspection and tests).
    pub fn wireguard(&self) -> Option<&wireguard::WgAttachment> {
        match self {
            Tunnel::WireGuard(wg) => Some(wg),
            _ => None,
        }
    }

    /// The WireGuard state, mutable (tests set its handshake limits).
    pub fn wireguard_mut(&mut self) -> Option<&mut wireguard::WgAttachment> {
        match self {
            Tunnel::WireGuard(wg) => Some(wg),
            _ => None,
        }
    }

    /// The IPsec data-path state, if this is an IPsec tunnel: SAs are installed through it.
    pub fn ipsec_mut(&mut self) -> Option<&mut ipsec::IpsecTunnel> {
        match self {
            Tunnel::Ipsec(t) => Some(t),
            _ => None,
        }
    }
}
