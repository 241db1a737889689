//! The worker's half of a `tls` attachment: which session holds which pool address for which
//! peer, as the TLS thread announces them ([`super::relay`]). A client's packet comes in as a
//! relay datagram on the attachment's socket pair and leaves as the inner packet of its
//! session's peer, once its source is the session's address; a packet for a pool address
//! goes to the session that holds it.
//!
//! Peers are renumbered by a reload. The TLS thread learns of a new plan after the worker, so
//! announcements made for the previous plan are translated with what the reload kept (peers
//! matched by name), and the sessions themselves are renumbered the same way.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Instant;

use ipnetwork::Ipv4Network;

use super::relay::{self, Message, PACKET_HEADER};
use crate::buffer::{TxBatch, Via};
use crate::ids::{AttachmentId, PeerId};
use crate::tunnel::{Event, Inner};
use crate::vocab::DropReason;

/// The sessions the TLS thread may announce per attachment, at most (one per peer, bounded
/// again here so a confused thread cannot grow the maps).
const MAX_SESSIONS: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    peer: PeerId,
    address: Ipv4Addr,
}

/// How the plan configures a `tls` attachment's worker half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub generation: u64,
    pub pool: Ipv4Network,
    pub peers: Vec<PeerId>,
    /// After a reload: the peers kept, by their previous and new numbers, and the previous
    /// plan's generation.
    pub kept: Option<(u64, Vec<(PeerId, PeerId)>)>,
}

/// One `tls` attachment's sessions in the worker.
pub struct TlsTunnel {
    id: AttachmentId,
    config: TlsConfig,
    sessions: HashMap<u32, Session>,
    by_address: HashMap<Ipv4Addr, u32>,
    by_peer: HashMap<PeerId, u32>,
    events: VecDeque<Event>,
}

impl TlsTunnel {
    /// A tunnel without sessions: its peers are down (after a reload that replaced the
    /// attachment, the counters would otherwise carry their old sessions' state).
    pub fn new(id: AttachmentId, config: TlsConfig) -> TlsTunnel {
        let events = (config.peers.iter())
            .map(|&peer| Event::Established { peer, up: false })
            .collect();
        TlsTunnel {
            id,
            config,
            sessions: HashMap::new(),
            by_address: HashMap::new(),
            by_peer: HashMap::new(),
            events,
        }
    }

    /// Takes a reload's configuration: sessions of kept peers are renumbered, the others end.
    pub fn reconfigure(&mut self, id: AttachmentId, config: TlsConfig) {
        self.id = id;
        let kept = config
            .kept
            .as_ref()
            .map(|(_, k)| k.clone())
            .unwrap_or_default();
        let old: Vec<(u32, Session)> = self.sessions.drain().collect();
        self.by_address.clear();
        self.by_peer.clear();
        self.config = config;
        for (sid, s) in old {
            let Some((_, new)) = kept.iter().find(|(o, _)| *o == s.peer) else {
                continue;
            };
            if self.config.pool.contains(s.address) {
                self.install(sid, *new, s.address);
            }
        }
    }

    /// The sessions up.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The peer whose session holds `address`, if any.
    pub fn peer_for(&self, address: Ipv4Addr) -> Option<PeerId> {
        let sid = self.by_address.get(&address)?;
        self.sessions.get(sid).map(|s| s.peer)
    }

    /// A datagram from the TLS thread: a client's packet (returned with its peer once its
    /// source is the session's address) or news of a session.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        data: &'a mut [u8],
    ) -> Result<Option<Inner<'a>>, DropReason> {
        match Message::parse(data).ok_or(DropReason::Malformed)? {
            Message::Packet { session } => {
                let s = *self.sessions.get(&session).ok_or(DropReason::NoSession)?;
                let packet = &mut data[PACKET_HEADER..];
                let src = match packet.get(12..16) {
                    Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
                    _ => return Err(DropReason::Malformed),
                };
                if packet.first().is_some_and(|v| v >> 4 == 6) {
                    return Err(DropReason::Ipv6);
                }
                if src != s.address {
                    return Err(DropReason::Spoofed);
                }
                Ok(Some(Inner {
                    peer: Some(s.peer),
                    packet,
                }))
            }
            Message::Up {
                session,
                peer,
                address,
                generation,
                login,
            } => {
                if let Some(peer) = self.current(peer, generation) {
                    if self.config.pool.contains(address) {
                        self.end(session);
                        if let Some(&old) = self.by_peer.get(&peer) {
                            self.end(old);
                        }
                        self.install(session, peer, address);
                        if login {
                            self.events
                                .push_back(Event::HandshakeDone { peer, at: now });
                        }
                        self.events.push_back(Event::Established { peer, up: true });
                    }
                }
                Ok(None)
            }
            Message::Down { session } => {
                if let Some(s) = self.end(session) {
                    self.events.push_back(Event::Established {
                        peer: s.peer,
                        up: false,
                    });
                }
                Ok(None)
            }
            Message::Lost { reason, packets } => {
                self.events
                    .push_back(Event::dropped(reason, u64::from(packets)));
                Ok(None)
            }
            Message::Refused {
                result,
                peer,
                generation,
            } => {
                let peer = peer.and_then(|p| self.current(p, generation));
                self.events.push_back(match peer {
                    Some(peer) => Event::HandshakeFailed {
                        peer,
                        result,
                        at: now,
                    },
                    None => Event::Handshake(result),
                });
                Ok(None)
            }
        }
    }

    /// Sends `packet` to the client of `peer`'s session.
    pub fn encapsulate(
        &mut self,
        peer: PeerId,
        packet: &[u8],
        tx: &mut TxBatch,
    ) -> Result<(), DropReason> {
        let sid = *self.by_peer.get(&peer).ok_or(DropReason::NoSession)?;
        let buf = tx.next_buf().ok_or(DropReason::TxQueueFull)?;
        let n = PACKET_HEADER + packet.len();
        let out = buf.get_mut(..n).ok_or(DropReason::TooBig)?;
        relay::packet_header(out, sid);
        out[PACKET_HEADER..].copy_from_slice(packet);
        tx.commit(self.id, Via::DEVICE, n);
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// `peer` of the plan of `generation`, numbered as in the running plan.
    fn current(&self, peer: PeerId, generation: u64) -> Option<PeerId> {
        if generation == self.config.generation {
            return self.config.peers.contains(&peer).then_some(peer);
        }
        let (previous, kept) = self.config.kept.as_ref()?;
        if *previous != generation {
            return None;
        }
        kept.iter().find(|(o, _)| *o == peer).map(|(_, n)| *n)
    }

    fn install(&mut self, sid: u32, peer: PeerId, address: Ipv4Addr) {
        if self.sessions.len() >= MAX_SESSIONS {
            return;
        }
        if let Some(&other) = self.by_address.get(&address) {
            self.end(other);
        }
        self.sessions.insert(sid, Session { peer, address });
        self.by_address.insert(address, sid);
        self.by_peer.insert(peer, sid);
    }

    fn end(&mut self, sid: u32) -> Option<Session> {
        let s = self.sessions.remove(&sid)?;
        self.by_address.remove(&s.address);
        if self.by_peer.get(&s.peer) == Some(&sid) {
            self.by_peer.remove(&s.peer);
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests;
