//! Packet batches: fixed arenas of packet buffers handed between the runtime and the data
//! path. Sized once at start-up; filling and draining them never allocates.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

use crate::ids::AttachmentId;

/// Size of one packet buffer: an inner packet of a 1500-byte MTU plus WireGuard's 32 bytes of
/// overhead fits, with room to spare.
pub const BUF_SIZE: usize = 2048;

/// The far end of a packet on one of an attachment's sockets or devices.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// A UDP datagram's peer.
    Udp(SocketAddr),
    /// The peer of a raw IP socket (ESP, IP protocol 50).
    Ip(IpAddr),
    /// The attachment's device (a TUN packet has no far end).
    Device,
}

/// Which of an attachment's sockets or devices a packet came in on or goes out of (its index
/// in the attachment plan's `io`: an IPsec attachment has UDP 500, UDP 4500 and raw ESP, and
/// IKE and ESP-in-UDP share 4500), and the far end.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub io: u8,
    pub remote: Remote,
}

impl Via {
    /// The first device of an attachment.
    pub const DEVICE: Via = Via {
        io: 0,
        remote: Remote::Device,
    };

    /// A datagram to or from `addr` on the attachment's `io`-th socket.
    pub const fn udp(io: u8, addr: SocketAddr) -> Via {
        Via {
            io,
            remote: Remote::Udp(addr),
        }
    }

    /// The UDP peer, if this is a datagram.
    pub fn udp_addr(self) -> Option<SocketAddr> {
        match self.remote {
            Remote::Udp(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TxMeta {
    pub attachment: AttachmentId,
    pub via: Via,
    pub len: usize,
}

/// Packets the data path wants sent, in order.
pub struct TxBatch {
    data: Box<[u8]>,
    meta: Vec<TxMeta>,
    capacity: usize,
}

impl TxBatch {
    pub fn new(capacity: usize) -> Self {
        TxBatch {
            data: vec![0; capacity * BUF_SIZE].into_boxed_slice(),
            meta: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// The buffer the next packet is written into, or `None` when the batch is full. Nothing
    /// is queued until [`TxBatch::commit`].
    #[inline]
    pub fn next_buf(&mut self) -> Option<&mut [u8]> {
        let i = self.meta.len();
        if i == self.capacity {
            return None;
        }
        Some(&mut self.data[i * BUF_SIZE..(i + 1) * BUF_SIZE])
    }

    /// Queues the first `len` bytes of the buffer last returned by [`TxBatch::next_buf`].
    #[inline]
    pub fn commit(&mut self, attachment: AttachmentId, via: Via, len: usize) {
        debug_assert!(self.meta.len() < self.capacity && len <= BUF_SIZE);
        self.meta.push(TxMeta {
            attachment,
            via,
            len,
        });
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.meta.len() == self.capacity
    }

    /// Bytes of the packets queued since the batch held `mark` packets ([`TxBatch::len`]).
    #[inline]
    pub fn bytes_from(&self, mark: usize) -> usize {
        self.meta
            .get(mark..)
            .map_or(0, |m| m.iter().map(|m| m.len).sum())
    }

    pub fn iter(&self) -> impl Iterator<Item = (TxMeta, &[u8])> + '_ {
        self.meta
            .iter()
            .enumerate()
            .map(|(i, m)| (*m, &self.data[i * BUF_SIZE..i * BUF_SIZE + m.len]))
    }

    pub fn clear(&mut self) {
        self.meta.clear();
    }
}

/// Where a received packet came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RxMeta {
    pub attachment: AttachmentId,
    pub via: Via,
    pub len: usize,
}

/// Packets received by the runtime, handed to the data path in one call.
pub struct RxBatch {
    data: Box<[u8]>,
    meta: Vec<RxMeta>,
    capacity: usize,
}

impl RxBatch {
    pub fn new(capacity: usize) -> Self {
        RxBatch {
            data: vec![0; capacity * BUF_SIZE].into_boxed_slice(),
            meta: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// The buffer the next received packet is read into, or `None` when the batch is full.
    #[inline]
    pub fn next_buf(&mut self) -> Option<&mut [u8]> {
        let i = self.meta.len();
        if i == self.capacity {
            return None;
        }
        Some(&mut self.data[i * BUF_SIZE..(i + 1) * BUF_SIZE])
    }

    #[inline]
    pub fn commit(&mut self, meta: RxMeta) {
        debug_assert!(self.meta.len() < self.capacity && meta.len <= BUF_SIZE);
        self.meta.push(meta);
    }

    /// Appends a copy of `packet` (tests, the demo); `false` when full or too large.
    pub fn push(&mut self, attachment: AttachmentId, via: Via, packet: &[u8]) -> bool {
        if packet.len() > BUF_SIZE {
            return false;
        }
        match self.next_buf() {
            Some(buf) => {
                buf[..packet.len()].copy_from_slice(packet);
                self.commit(RxMeta {
                    attachment,
                    via,
                    len: packet.len(),
                });
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.meta.len() == self.capacity
    }

    /// The `i`-th packet, mutable (the data path decrypts and translates in place).
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> (RxMeta, &mut [u8]) {
        let m = self.meta[i];
        (m, &mut self.data[i * BUF_SIZE..i * BUF_SIZE + m.len])
    }

    pub fn clear(&mut self) {
        self.meta.clear();
    }
}
