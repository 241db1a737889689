//! Packet batches: fixed arenas of packet buffers handed between the runtime and the data
//! path. Sized once at start-up; filling and draining them never allocates.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::ids::AttachmentId;

/// Size of one packet buffer: an inner packet of a 1500-byte MTU plus WireGuard's 32 bytes of
/// overhead fits, with room to spare.
pub const BUF_SIZE: usize = 2048;

/// Where a transmitted packet goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TxTarget {
    /// A datagram on the attachment's UDP socket.
    Udp(SocketAddr),
    /// An IP packet into the attachment's TUN device.
    Tun,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TxMeta {
    pub attachment: AttachmentId,
    pub target: TxTarget,
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
    pub fn commit(&mut self, attachment: AttachmentId, target: TxTarget, len: usize) {
        debug_assert!(self.meta.len() < self.capacity && len <= BUF_SIZE);
        self.meta.push(TxMeta {
            attachment,
            target,
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
    /// The datagram's source for UDP attachments; `None` for TUN.
    pub from: Option<SocketAddr>,
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
    pub fn push(
        &mut self,
        attachment: AttachmentId,
        from: Option<SocketAddr>,
        packet: &[u8],
    ) -> bool {
        if packet.len() > BUF_SIZE {
            return false;
        }
        match self.next_buf() {
            Some(buf) => {
                buf[..packet.len()].copy_from_slice(packet);
                self.commit(RxMeta {
                    attachment,
                    from,
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
