//! Packet batches: fixed arenas of packet buffers handed between the runtime and the data
//! path. Sized once at start-up; filling and draining them never allocates.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

use crate::ids::AttachmentId;

/// Size of one packet buffer: an inner packet of a 1500-byte MTU plus WireGuard's 32 bytes of
/// overhead fits, with room to spare.
pub const BUF_SIZE: usize = 2048;

/// The far end of a packet on one of an attachment's sockets or devices.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

    /// How many more packets fit.
    pub fn room(&self) -> usize {
        self.capacity - self.meta.len()
    }

    /// The `i`-th packet queued.
    #[inline]
    pub fn get(&self, i: usize) -> (TxMeta, &[u8]) {
        let m = self.meta[i];
        (m, &self.data[i * BUF_SIZE..i * BUF_SIZE + m.len])
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

/// What the worker a packet is handed to does with it (several data-path workers).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HandoffKind {
    /// The packet's flow lives on that worker: it runs the pipeline from classify, as if it
    /// had decrypted the packet arriving on `attachment` from `peer` itself.
    Forward {
        attachment: AttachmentId,
        peer: Option<crate::ids::PeerId>,
    },
    /// Admitted and translated: that worker owns the egress and only encapsulates.
    Encap {
        attachment: AttachmentId,
        peer: Option<crate::ids::PeerId>,
    },
    /// A WireGuard initiation of a peer that worker owns, as it arrived.
    Datagram {
        attachment: AttachmentId,
        from: SocketAddr,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HandoffMeta {
    /// The worker the packet goes to.
    pub worker: u32,
    /// The plan it was routed under: another plan's peer numbers mean other peers.
    pub generation: u64,
    pub kind: HandoffKind,
    pub len: usize,
}

/// Packets one worker hands to others, in order; fixed slots like [`TxBatch`].
pub struct HandoffBatch {
    data: Box<[u8]>,
    meta: Vec<HandoffMeta>,
    capacity: usize,
}

impl HandoffBatch {
    pub fn new(capacity: usize) -> Self {
        HandoffBatch {
            data: vec![0; capacity * BUF_SIZE].into_boxed_slice(),
            meta: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// A batch that holds nothing, without allocating (a placeholder while buffers are
    /// swapped).
    pub fn empty() -> Self {
        HandoffBatch::new(0)
    }

    /// Queues a copy of `packet`; `false` when the batch is full or the packet too long.
    pub fn push(&mut self, worker: u32, generation: u64, kind: HandoffKind, packet: &[u8]) -> bool {
        let i = self.meta.len();
        if i == self.capacity || packet.len() > BUF_SIZE {
            return false;
        }
        self.data[i * BUF_SIZE..i * BUF_SIZE + packet.len()].copy_from_slice(packet);
        self.meta.push(HandoffMeta {
            worker,
            generation,
            kind,
            len: packet.len(),
        });
        true
    }

    /// How many more packets fit.
    pub fn room(&self) -> usize {
        self.capacity - self.meta.len()
    }

    /// Queues a copy of a packet of another batch with its meta; `false` when full.
    pub fn push_meta(&mut self, m: HandoffMeta, packet: &[u8]) -> bool {
        self.push(m.worker, m.generation, m.kind, packet)
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// The `i`-th packet, mutable (the receiving data path translates in place).
    pub fn get_mut(&mut self, i: usize) -> (HandoffMeta, &mut [u8]) {
        let m = self.meta[i];
        (m, &mut self.data[i * BUF_SIZE..i * BUF_SIZE + m.len])
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

/// Packets received by the runtime, handed to the data path in one call. The packets lie one
/// after the other in one arena, so that a batched receive can fill it with datagrams of any
/// size (a UDP GRO datagram carries up to 64 packets of one sender, see
/// [`RxBatch::commit_segments`]) and a single read with one packet of up to [`BUF_SIZE`]
/// bytes. The data path works through the packets in order; [`RxBatch::pending`] says where
/// it stopped when it paused for room to send.
pub struct RxBatch {
    data: Box<[u8]>,
    /// Bytes of `data` the packets occupy.
    used: usize,
    /// Where the region last handed out by [`RxBatch::spare`] starts.
    spare_at: usize,
    meta: Vec<RxMeta>,
    /// Where each packet starts in `data`.
    offsets: Vec<usize>,
    capacity: usize,
    /// Packets the data path has handled.
    handled: usize,
}

impl RxBatch {
    /// A batch of up to `capacity` packets of up to [`BUF_SIZE`] bytes each.
    pub fn new(capacity: usize) -> Self {
        RxBatch::with_arena(capacity, capacity * BUF_SIZE)
    }

    /// A batch of up to `capacity` packets in an arena of `bytes`.
    pub fn with_arena(capacity: usize, bytes: usize) -> Self {
        RxBatch {
            data: vec![0; bytes].into_boxed_slice(),
            used: 0,
            spare_at: 0,
            meta: Vec::with_capacity(capacity),
            offsets: Vec::with_capacity(capacity),
            capacity,
            handled: 0,
        }
    }

    /// The buffer the next received packet is read into, or `None` when the batch is full.
    #[inline]
    pub fn next_buf(&mut self) -> Option<&mut [u8]> {
        if self.meta.len() == self.capacity || self.data.len() - self.used < BUF_SIZE {
            return None;
        }
        Some(&mut self.data[self.used..self.used + BUF_SIZE])
    }

    /// Takes the packet read into the buffer last returned by [`RxBatch::next_buf`].
    #[inline]
    pub fn commit(&mut self, meta: RxMeta) {
        debug_assert!(self.meta.len() < self.capacity && meta.len <= BUF_SIZE);
        self.offsets.push(self.used);
        self.used += meta.len;
        self.meta.push(meta);
    }

    /// Room left: packets, bytes of the arena.
    pub fn room(&self) -> (usize, usize) {
        (self.capacity - self.meta.len(), self.data.len() - self.used)
    }

    /// The free part of the arena for one batched receive, if the batch has room for
    /// `packets` more packets and `bytes` more bytes; the receive writes its datagrams
    /// anywhere in it, then each is taken with [`RxBatch::commit_segments`].
    pub fn spare(&mut self, packets: usize, bytes: usize) -> Option<&mut [u8]> {
        let fits =
            self.capacity - self.meta.len() >= packets && self.data.len() - self.used >= bytes;
        self.spare_at = self.used;
        fits.then(|| &mut self.data[self.used..])
    }

    /// Takes a datagram a batched receive wrote `at` bytes into the last [`RxBatch::spare`]
    /// region: `len` bytes that are packets of `stride` bytes each, the last one possibly
    /// shorter (a datagram without segments: `stride == len`). Datagrams must be taken in
    /// the order of their places in the region, each before a later one is received. Returns
    /// how many packets were taken and how many refused: longer than [`BUF_SIZE`], or beyond
    /// the batch's capacity (which `spare` was asked to guarantee).
    pub fn commit_segments(
        &mut self,
        at: usize,
        len: usize,
        stride: usize,
        attachment: AttachmentId,
        via: Via,
    ) -> (usize, usize) {
        let stride = if stride == 0 { len } else { stride };
        let segments = len.div_ceil(stride.max(1));
        if stride > BUF_SIZE || len == 0 {
            return (0, segments);
        }
        let from = self.spare_at + at;
        let Some(end) = from
            .checked_add(len)
            .filter(|&e| from >= self.used && e <= self.data.len())
        else {
            return (0, segments);
        };
        // Earlier datagrams were taken already: moving this one down closes the gap in
        // front of it and never touches a later one.
        self.data.copy_within(from..end, self.used);
        let room = self.capacity - self.meta.len();
        let taken = segments.min(room);
        for k in 0..taken {
            let offset = self.used + k * stride;
            self.offsets.push(offset);
            self.meta.push(RxMeta {
                attachment,
                via,
                len: stride.min(len - k * stride),
            });
        }
        self.used += len;
        (taken, segments - taken)
    }

    /// Takes one packet of `len` bytes that a receive wrote `at` bytes into the last
    /// [`RxBatch::spare`] region, where it lies: the bytes between it and the packet before
    /// it stay unused until [`RxBatch::clear`]. For a receive that lays packets out in
    /// buffers of a fixed size (a TUN read split into segments), so that none is copied
    /// again. Packets must be taken in the order of their places in the region. Returns
    /// `false` (and takes nothing) for a packet longer than [`BUF_SIZE`], one that lies
    /// before the last packet taken or beyond the arena, or when the batch is full.
    pub fn commit_at(&mut self, at: usize, len: usize, attachment: AttachmentId, via: Via) -> bool {
        let from = self.spare_at.saturating_add(at);
        let fits = len <= BUF_SIZE
            && self.meta.len() < self.capacity
            && from >= self.used
            && from.checked_add(len).is_some_and(|e| e <= self.data.len());
        if fits {
            self.offsets.push(from);
            self.meta.push(RxMeta {
                attachment,
                via,
                len,
            });
            self.used = from + len;
        }
        fits
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
        let at = self.offsets[i];
        (m, &mut self.data[at..at + m.len])
    }

    /// The packets the data path has not handled yet, as a range of indices.
    pub fn pending(&self) -> std::ops::Range<usize> {
        self.handled..self.meta.len()
    }

    /// Records that the data path handled the packets before index `i`.
    pub fn set_handled(&mut self, i: usize) {
        self.handled = i.min(self.meta.len());
    }

    pub fn clear(&mut self) {
        self.meta.clear();
        self.offsets.clear();
        self.used = 0;
        self.spare_at = 0;
        self.handled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AttachmentId = AttachmentId(3);

    fn via() -> Via {
        Via::udp(1, "192.0.2.1:51820".parse().expect("address"))
    }

    /// A batched receive: datagrams written at the start of fixed-size chunks of the spare
    /// region, one of them a GRO datagram of three segments, end up as one packet each,
    /// one after the other, bytes intact.
    #[test]
    fn segments_of_a_batched_receive_become_packets() {
        let mut rx = RxBatch::with_arena(16, 64 * 1024);
        assert!(rx.push(A, Via::DEVICE, &[9; 10]));
        const CHUNK: usize = 8 * 1024;
        let spare = rx.spare(8, 3 * CHUNK).expect("room");
        spare[..100].fill(1);
        // GRO: 3 segments of 1000 bytes, the last 500.
        for (k, b) in [2u8, 3, 4].into_iter().enumerate() {
            let n = if k == 2 { 500 } else { 1000 };
            spare[CHUNK + k * 1000..CHUNK + k * 1000 + n].fill(b);
        }
        spare[2 * CHUNK..2 * CHUNK + 40].fill(5);
        assert_eq!(rx.commit_segments(0, 100, 100, A, via()), (1, 0));
        assert_eq!(rx.commit_segments(CHUNK, 2500, 1000, A, via()), (3, 0));
        assert_eq!(rx.commit_segments(2 * CHUNK, 40, 0, A, via()), (1, 0));
        let got: Vec<(usize, u8)> = (0..rx.len())
            .map(|i| {
                let (m, d) = rx.get_mut(i);
                assert!(d.iter().all(|&b| b == d[0]), "packet {i} intact");
                assert_eq!(m.len, d.len());
                (d.len(), d[0])
            })
            .collect();
        assert_eq!(
            got,
            [(10, 9), (100, 1), (1000, 2), (1000, 3), (500, 4), (40, 5)]
        );
        assert_eq!(rx.pending(), 0..6);
    }

    /// Segments longer than a packet buffer, and segments beyond the batch's capacity, are
    /// refused and reported, never truncated.
    #[test]
    fn oversized_segments_and_overflow_are_refused() {
        let mut rx = RxBatch::with_arena(4, 64 * 1024);
        let spare = rx.spare(4, 16 * 1024).expect("room");
        spare.fill(7);
        assert_eq!(rx.commit_segments(0, 2 * 4000, 4000, A, via()), (0, 2));
        assert_eq!(rx.commit_segments(8192, 6 * 100, 100, A, via()), (4, 2));
        assert_eq!(rx.len(), 4);
        assert!(rx.is_full());
        assert!(rx.spare(1, 0).is_none());
        rx.clear();
        assert!(rx.spare(4, 64 * 1024).is_some());
        assert!(rx.spare(4, 64 * 1024 + 1).is_none());
    }

    /// Packets taken where a receive left them: gaps between them are skipped, bytes stay
    /// where they are; a packet too long, out of order, beyond the arena or beyond the
    /// capacity is refused.
    #[test]
    fn packets_taken_in_place_keep_their_places() {
        let mut rx = RxBatch::with_arena(3, 16 * 1024);
        assert!(rx.push(A, Via::DEVICE, &[9; 10]));
        let spare = rx.spare(2, 3 * BUF_SIZE).expect("room");
        spare[..1500].fill(1);
        spare[BUF_SIZE..BUF_SIZE + 40].fill(2);
        spare[2 * BUF_SIZE..2 * BUF_SIZE + 600].fill(3);
        assert!(rx.commit_at(0, 1500, A, Via::DEVICE));
        assert!(rx.commit_at(BUF_SIZE, 40, A, Via::DEVICE));
        assert!(
            !rx.commit_at(BUF_SIZE, 10, A, Via::DEVICE),
            "before the last one"
        );
        assert!(!rx.commit_at(2 * BUF_SIZE, 600, A, Via::DEVICE), "capacity");
        let got: Vec<(usize, u8)> = (0..rx.len())
            .map(|i| {
                let (m, d) = rx.get_mut(i);
                assert!(d.iter().all(|&b| b == d[0]), "packet {i} intact");
                (m.len, d[0])
            })
            .collect();
        assert_eq!(got, [(10, 9), (1500, 1), (40, 2)]);

        let mut rx = RxBatch::with_arena(8, 4 * BUF_SIZE);
        rx.spare(1, BUF_SIZE).expect("room");
        assert!(!rx.commit_at(0, BUF_SIZE + 1, A, Via::DEVICE), "too long");
        assert!(
            !rx.commit_at(3 * BUF_SIZE + 1, BUF_SIZE, A, Via::DEVICE),
            "beyond"
        );
        assert!(!rx.commit_at(usize::MAX, 1, A, Via::DEVICE), "overflow");
        assert!(rx.commit_at(3 * BUF_SIZE, BUF_SIZE, A, Via::DEVICE));
        assert_eq!(rx.room(), (7, 0));
    }

    #[test]
    fn single_reads_stop_when_the_arena_is_used_up() {
        let mut rx = RxBatch::with_arena(100, 3 * BUF_SIZE);
        let mut n = 0;
        while rx.push(A, Via::DEVICE, &[1; BUF_SIZE]) {
            n += 1;
        }
        assert_eq!(n, 3);
        rx.set_handled(2);
        assert_eq!(rx.pending(), 2..3);
    }
}
