//! The `ethernet` attachment (a carrier's IP-VPN handed over on an Ethernet port, one VLAN per
//! customer network): its sans-IO half. [`EthernetTunnel`] is what the pipeline talks to:
//! frames in, inner IPv4 packets out; inner packets in, frames to their next hop out. The link
//! ([`link`]: which received frames are the gateway's, ARP answered, packets framed) and its
//! neighbour cache ([`arp_cache`]) do the work; frames, 802.1Q tags and ARP packets are read
//! and built by [`crate::wire::ethernet`]. The runtime opens the port (an AF_PACKET socket
//! through pnet's datalink, with a filter for the attachment's VLAN).
//!
//! A packet whose next hop is being asked for waits, as Linux's neighbour queue does, in a
//! fixed arena of [`WAITING`] packets per attachment (allocated once): it leaves when the
//! answer arrives and is dropped as `arp_unresolved` when the asking fails or the arena is
//! full.
//!
//! The tunnel counts nothing itself: ARP requests and replies it sends are added up in plain
//! fields and reported, with the failed next hops and the size of the neighbour cache, as one
//! [`Event::Arp`] per poll when something changed.

pub mod arp_cache;
pub mod link;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;

pub use arp_cache::{ArpCache, ArpStats, ArpTimers, Lookup};
pub use link::{Link, LinkConfig, LinkRefusal, Received, Sent};

use super::Event;
use crate::buffer::{TxBatch, Via, BUF_SIZE};
use crate::ids::AttachmentId;
use crate::vocab::{ArpCounts, DropReason};

/// Packets of one attachment that may wait for ARP answers at a time.
pub const WAITING: usize = 32;
/// Neighbours one attachment keeps.
pub const NEIGHBOURS: usize = 4096;
/// How often an idle link's neighbour cache sheds what expired.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// How the plan configures an `ethernet` attachment's tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetConfig {
    pub link: LinkConfig,
    /// The directly connected prefix: its hosts are their own next hop.
    pub connected: Ipv4Network,
    /// Where everything else the tenant routes to the link goes.
    pub next_hop: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    next_hop: Ipv4Addr,
    since: Instant,
    len: usize,
}

/// One `ethernet` attachment's state.
pub struct EthernetTunnel {
    id: AttachmentId,
    config: EthernetConfig,
    link: Link,
    timers: ArpTimers,
    waiting: [Option<Waiting>; WAITING],
    arena: Box<[u8]>,
    next_expire: Instant,
    /// When the waiting packets are next looked at (requests repeated, failures dropped):
    /// `None` while nothing waits.
    next_check: Option<Instant>,
    /// Packets lost since last reported, by reason (waiting ones whose next hop failed; ARP
    /// answers or waiting packets that found the transmit batch full).
    lost_unresolved: u64,
    lost_tx: u64,
    /// ARP requests and replies sent since last reported.
    arp_requests: u64,
    arp_replies: u64,
    /// The cache's failed next hops and its size when last reported (`None`: never).
    reported_failed: u64,
    reported_neighbours: Option<u64>,
    /// Gratuitous ARP requests still to send, and when the next is due: a new link tells
    /// the carrier's router its MAC at once (the router may hold an older MAC of the
    /// gateway's address for hours).
    announce_left: u8,
    next_announce: Instant,
}

impl EthernetTunnel {
    /// A fresh tunnel for attachment `id`.
    pub fn new(id: AttachmentId, config: EthernetConfig, now: Instant) -> EthernetTunnel {
        EthernetTunnel::with_timers(id, config, ArpTimers::default(), now)
    }

    pub fn with_timers(
        id: AttachmentId,
        config: EthernetConfig,
        timers: ArpTimers,
        now: Instant,
    ) -> EthernetTunnel {
        EthernetTunnel {
            id,
            config,
            link: Link::new(config.link, NEIGHBOURS, timers),
            timers,
            waiting: [None; WAITING],
            arena: vec![0; WAITING * BUF_SIZE].into_boxed_slice(),
            next_expire: now + EXPIRE_EVERY,
            next_check: None,
            lost_unresolved: 0,
            lost_tx: 0,
            arp_requests: 0,
            arp_replies: 0,
            reported_failed: 0,
            reported_neighbours: None,
            announce_left: timers.announcements,
            next_announce: now,
        }
    }

    pub fn config(&self) -> EthernetConfig {
        self.config
    }

    pub fn neighbours(&self) -> &ArpCache {
        self.link.neighbours()
    }

    /// Takes a reload's configuration: the same link (MAC, address, VLAN) keeps its
    /// neighbours and waiting packets; another link needs a new tunnel (`false`).
    pub fn reconfigure(&mut self, id: AttachmentId, config: EthernetConfig) -> bool {
        if config.link != self.config.link {
            return false;
        }
        self.id = id;
        self.config = config;
        true
    }

    /// Packets waiting for an answer, lost if the tunnel goes.
    pub fn queued(&self) -> usize {
        self.waiting.iter().flatten().count()
    }

    /// Takes a frame from the port: the inner packet to forward (in place), or `None` for ARP
    /// (answered through `tx`, and waiting packets sent that it resolved).
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        frame: &'a mut [u8],
        tx: &mut TxBatch,
    ) -> Result<Option<&'a mut [u8]>, DropReason> {
        let id = self.id;
        let mut reply = [0u8; 64];
        match self
            .link
            .receive(now, frame, self.config.link.vlan, &mut reply)
        {
            Ok(Received::Packet(range)) => Ok(frame.get_mut(range)),
            Ok(Received::Arp { reply: answer }) => {
                if let Some(n) = answer {
                    match tx.next_buf() {
                        Some(buf) => {
                            buf[..n].copy_from_slice(&reply[..n]);
                            tx.commit(id, Via::DEVICE, n);
                            self.arp_replies += 1;
                        }
                        None => self.lost_tx += 1,
                    }
                }
                self.release(now, id, tx);
                Ok(None)
            }
            Err(e) => Err(reason(e)),
        }
    }

    /// Frames `packet` (a checked IPv4 packet) to its next hop through `tx`, or keeps it
    /// until the next hop answers ARP.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        packet: &[u8],
        tx: &mut TxBatch,
    ) -> Result<(), DropReason> {
        let id = self.id;
        let dst = match packet.get(16..20) {
            Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
            _ => return Err(DropReason::Malformed),
        };
        let next_hop = if self.config.connected.contains(dst) {
            dst
        } else {
            self.config.next_hop.ok_or(DropReason::NoRoute)?
        };
        if next_hop == self.config.link.ip {
            // ixgw terminates nothing: its own address on the link is no destination.
            return Err(DropReason::NoRoute);
        }
        let buf = tx.next_buf().ok_or(DropReason::TxQueueFull)?;
        // A directed broadcast the pipeline let through (`directed_broadcast: true`) goes to
        // every host of the link.
        let c = self.config.connected;
        if c.prefix() <= 30 && (dst == c.broadcast() || dst == c.network()) {
            let n = self.link.broadcast(packet, buf).map_err(reason)?;
            tx.commit(id, Via::DEVICE, n);
            return Ok(());
        }
        match self.link.send(now, next_hop, packet, buf) {
            Ok(Sent::Frame(n)) => tx.commit(id, Via::DEVICE, n),
            Ok(Sent::FrameAndProbe(n)) => {
                tx.commit(id, Via::DEVICE, n);
                self.probe(next_hop, tx);
            }
            Ok(Sent::ArpRequest(n)) => {
                tx.commit(id, Via::DEVICE, n);
                self.arp_requests += 1;
                self.wait(now, next_hop, packet)?;
            }
            Err(LinkRefusal::Unresolved) if self.link.pending(next_hop) => {
                self.wait(now, next_hop, packet)?;
            }
            Err(e) => return Err(reason(e)),
        }
        Ok(())
    }

    /// Sends an ARP request for a stale `next_hop`. The probe is a courtesy: without room in
    /// `tx` it is not sent, and the neighbour is asked again by a later packet.
    fn probe(&mut self, next_hop: Ipv4Addr, tx: &mut TxBatch) {
        if let Some(buf) = tx.next_buf() {
            if let Ok(n) = self.link.request(next_hop, buf) {
                tx.commit(self.id, Via::DEVICE, n);
                self.arp_requests += 1;
            }
        }
    }

    /// Keeps `packet` until `next_hop` answers, if there is room.
    fn wait(&mut self, now: Instant, next_hop: Ipv4Addr, packet: &[u8]) -> Result<(), DropReason> {
        let slot = self.waiting.iter().position(Option::is_none);
        let Some(i) = slot.filter(|_| packet.len() <= BUF_SIZE) else {
            return Err(DropReason::ArpUnresolved);
        };
        self.arena[i * BUF_SIZE..i * BUF_SIZE + packet.len()].copy_from_slice(packet);
        self.waiting[i] = Some(Waiting {
            next_hop,
            since: now,
            len: packet.len(),
        });
        let check = now + self.timers.retry / 4;
        self.next_check = Some(self.next_check.map_or(check, |t| t.min(check)));
        Ok(())
    }

    /// Sends the waiting packets whose next hop is resolved now.
    fn release(&mut self, now: Instant, id: AttachmentId, tx: &mut TxBatch) {
        for i in 0..WAITING {
            let Some(w) = self.waiting[i] else { continue };
            if !self.link.resolved(w.next_hop) {
                continue;
            }
            self.waiting[i] = None;
            let packet = &self.arena[i * BUF_SIZE..i * BUF_SIZE + w.len];
            let Some(buf) = tx.next_buf() else {
                self.lost_tx += 1;
                continue;
            };
            match self.link.send(now, w.next_hop, packet, buf) {
                Ok(Sent::Frame(n)) => tx.commit(id, Via::DEVICE, n),
                Ok(Sent::FrameAndProbe(n)) => {
                    tx.commit(id, Via::DEVICE, n);
                    self.probe(w.next_hop, tx);
                }
                _ => self.lost_unresolved += 1,
            }
        }
    }

    /// Repeats ARP requests for the next hops packets wait for, drops the packets of next
    /// hops that did not answer, and now and then sheds expired neighbours.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut TxBatch) {
        let id = self.id;
        if self.announce_left > 0 && now >= self.next_announce {
            // Sender and target are the gateway's own address: a gratuitous ARP request.
            if let Some(buf) = tx.next_buf() {
                if let Ok(n) = self.link.request(self.config.link.ip, buf) {
                    tx.commit(id, Via::DEVICE, n);
                    self.arp_requests += 1;
                }
            }
            self.announce_left -= 1;
            self.next_announce = now + self.timers.retry;
        }
        // The cache decides when a next hop failed; this only bounds a wait it never ends.
        let give_up = self.timers.retry * (u32::from(self.timers.tries) + 2);
        for i in 0..WAITING {
            let Some(w) = self.waiting[i] else { continue };
            // One lookup per next hop and pass: a due request goes out, and a next hop
            // whose last request went unanswered turns failed.
            let first = self.waiting[..i]
                .iter()
                .flatten()
                .all(|o| o.next_hop != w.next_hop);
            if first && self.link.pending(w.next_hop) {
                if let Some(buf) = tx.next_buf() {
                    if let Some(n) = self.link.ask(now, w.next_hop, buf) {
                        tx.commit(id, Via::DEVICE, n);
                        self.arp_requests += 1;
                    }
                }
            }
            let resolved = self.link.resolved(w.next_hop);
            let given_up = now.saturating_duration_since(w.since) > give_up;
            if !resolved && (given_up || !self.link.pending(w.next_hop)) {
                self.waiting[i] = None;
                self.lost_unresolved += 1;
            }
        }
        self.release(now, id, tx);
        // Looked at now: next in a quarter of the retry time, if anything still waits.
        self.next_check = self
            .waiting
            .iter()
            .any(Option::is_some)
            .then(|| now + self.timers.retry / 4);
        if now >= self.next_expire {
            self.link.expire(now);
            self.next_expire = now + EXPIRE_EVERY;
        }
    }

    /// When [`EthernetTunnel::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let announce = (self.announce_left > 0).then_some(self.next_announce);
        [self.next_check, announce]
            .into_iter()
            .flatten()
            .chain(Some(self.next_expire))
            .min()
    }

    /// What happened since last asked: packets lost inside the tunnel first, then the ARP
    /// report if anything in it changed.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some((reason, packets)) = self.take_lost() {
            return Some(Event::dropped(reason, packets));
        }
        self.take_arp().map(Event::Arp)
    }

    /// ARP since last asked (requests and replies sent, next hops that failed) and the
    /// neighbour entries held now; `None` when nothing changed.
    pub fn take_arp(&mut self) -> Option<ArpCounts> {
        let cache = self.link.neighbours();
        let failed = cache.stats().failed;
        let neighbours = cache.len() as u64;
        let failures = failed.wrapping_sub(self.reported_failed);
        if self.arp_requests == 0
            && self.arp_replies == 0
            && failures == 0
            && self.reported_neighbours == Some(neighbours)
        {
            return None;
        }
        self.reported_failed = failed;
        self.reported_neighbours = Some(neighbours);
        Some(ArpCounts {
            requests: std::mem::take(&mut self.arp_requests),
            replies: std::mem::take(&mut self.arp_replies),
            failures,
            neighbours,
        })
    }

    /// Packets lost inside the tunnel since last asked, with their reason.
    pub fn take_lost(&mut self) -> Option<(DropReason, u64)> {
        if self.lost_unresolved > 0 {
            return Some((
                DropReason::ArpUnresolved,
                std::mem::take(&mut self.lost_unresolved),
            ));
        }
        if self.lost_tx > 0 {
            return Some((DropReason::TxQueueFull, std::mem::take(&mut self.lost_tx)));
        }
        None
    }
}

/// The drop reason of a frame the link refused.
fn reason(e: LinkRefusal) -> DropReason {
    match e {
        LinkRefusal::TooBig => DropReason::TooBig,
        LinkRefusal::Frame(_) => DropReason::EthMalformed,
        LinkRefusal::OtherVlan => DropReason::EthOtherVlan,
        LinkRefusal::NotForUs => DropReason::EthNotForUs,
        LinkRefusal::Ipv6 => DropReason::Ipv6,
        LinkRefusal::OtherEthertype => DropReason::EthOtherType,
        LinkRefusal::ArpOther => DropReason::ArpIgnored,
        LinkRefusal::Unresolved => DropReason::ArpUnresolved,
    }
}

#[cfg(test)]
mod tests;
