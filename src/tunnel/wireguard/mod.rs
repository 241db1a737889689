//! WireGuard attachments: one UDP socket, many peers, one boringtun `noise::Tunn` per peer.
//!
//! Layer contract: sans-IO; the runtime owns the socket. boringtun's `Tunn` reads the clock
//! itself; that dependence lives here only (feature `virtual-time` makes it follow `now`).

use std::net::SocketAddr;
use std::time::Instant;

use crate::buffer::TxBatch;
use crate::dataplane::DropReason;
use crate::ids::{AttachmentId, PeerId};
use crate::metrics::Counters;

pub mod keys;

/// How a gateway-side peer is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeerConfig {
    pub id: PeerId,
    pub public_key: [u8; 32],
    pub preshared_key: Option<[u8; 32]>,
    pub persistent_keepalive: Option<u16>,
    pub endpoint: Option<SocketAddr>,
}

/// One WireGuard attachment: its static key and its peers.
pub struct WgAttachment {
    id: AttachmentId,
}

impl WgAttachment {
    pub fn new(id: AttachmentId, private_key: &[u8; 32]) -> Self {
        let _ = private_key;
        WgAttachment { id }
    }

    pub fn id(&self) -> AttachmentId {
        self.id
    }

    /// Reconciles the peer set with a new plan.
    pub fn set_peers(&mut self, peers: &[WgPeerConfig], now: Instant) {
        let _ = (peers, now);
        todo!()
    }

    /// Handles one datagram received from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        inner: &mut [u8],
        tx: &mut TxBatch,
        counters: &Counters,
    ) -> Result<Option<(PeerId, usize)>, DropReason> {
        let _ = (now, from, datagram, inner, tx, counters);
        todo!()
    }

    /// Encrypts one inner packet to `peer` into `tx`.
    pub fn send(
        &mut self,
        now: Instant,
        peer: PeerId,
        packet: &[u8],
        tx: &mut TxBatch,
        counters: &Counters,
    ) -> Result<(), DropReason> {
        let _ = (now, peer, packet, tx, counters);
        todo!()
    }

    /// Runs the peers' timers.
    pub fn update_timers(&mut self, now: Instant, tx: &mut TxBatch, counters: &Counters) {
        let _ = (now, tx, counters);
        todo!()
    }
}
