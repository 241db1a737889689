//! The gateway between two facilities, the same for every tunnel kind: facility A seals fresh
//! datagrams in an untimed refill, the gateway forwards each of them exactly once in a timed
//! run (one datagram per `Gateway::handle_batch`), and facility B opens the gateway's output
//! in the check. Tunnels that reject replays (WireGuard, ESP) are satisfied because no
//! datagram is handed in twice; the steady state measured is an established flow.

use std::time::{Duration, Instant};

use ixgw::buffer::{RxBatch, RxMeta, TxBatch, Via, BUF_SIZE};
use ixgw::dataplane::Gateway;
use ixgw::ids::AttachmentId;

use crate::common::{allocations, assert_translated, in_chunks, udp_packet, CHUNK, TENANT_B};

/// One end of the gateway: a facility with its half of the tunnel.
pub trait Facility {
    /// The gateway's attachment it is a peer of.
    fn attachment(&self) -> AttachmentId;
    /// How its datagrams reach the gateway and the gateway's reach it.
    fn via(&self) -> Via;
    /// Encrypts the inner `packet` into `buf`; returns the datagram's length.
    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> usize;
    /// The length of the datagram that carries an inner packet of `len` bytes.
    fn datagram_len(&self, len: usize) -> usize;
    /// Decrypts a datagram of the gateway, in place or into `scratch`; returns the inner
    /// packet.
    fn open<'a>(&mut self, datagram: &'a mut [u8], scratch: &'a mut [u8]) -> &'a [u8];
}

/// What the measurement needs of a rig, whatever its tunnels.
pub trait Pipeline {
    /// `total` packets of `packet` in chunks; the time the gateway took and the allocations
    /// it made meanwhile.
    fn measure(&mut self, packet: &[u8], total: usize) -> (Duration, u64);
    /// One packet through, its output checked.
    fn check_output(&mut self, packet: &[u8]);
}

/// The gateway and both facilities with their tunnels up.
pub struct Rig<A, B> {
    gw: Gateway,
    tx: TxBatch,
    a: A,
    b: B,
    /// Datagrams facility A sealed, one per batch: each is handed to the gateway once.
    pool: Vec<RxBatch>,
}

impl<A: Facility, B: Facility> Rig<A, B> {
    /// Takes a gateway whose tunnels to `a` and `b` are up (sessions established, SAs
    /// installed) and sends a first packet through, which leaves the flow established.
    pub fn new(gw: Gateway, a: A, b: B) -> Rig<A, B> {
        let mut rig = Rig {
            gw,
            tx: TxBatch::new(64),
            a,
            b,
            pool: (0..CHUNK).map(|_| RxBatch::new(1)).collect(),
        };
        rig.check_output(&udp_packet(64));
        assert_eq!(rig.gw.flow_count(), 1);
        assert_eq!(rig.drops(), 0);
        rig
    }

    fn drops(&self) -> u64 {
        self.gw.counters().drops().map(|(_, _, n)| n).sum()
    }

    fn forwarded(&self) -> u64 {
        self.gw.counters().tenant(TENANT_B).tx_packets.get()
    }

    /// Untimed: facility A seals `n` fresh datagrams of `packet` straight into the pool's
    /// receive batches.
    fn refill(&mut self, packet: &[u8], n: usize) {
        let (attachment, via) = (self.a.attachment(), self.a.via());
        for rx in &mut self.pool[..n] {
            rx.clear();
            let buf = rx.next_buf().expect("an empty batch has room");
            let len = self.a.seal(packet, buf);
            rx.commit(RxMeta {
                attachment,
                via,
                len,
            });
        }
    }

    /// Timed: each of the first `n` pooled datagrams through the gateway, one batch each.
    /// Returns the elapsed time and the allocations made meanwhile.
    #[inline(never)]
    fn run(&mut self, n: usize) -> (Duration, u64) {
        let now = Instant::now();
        let allocs = allocations();
        let start = Instant::now();
        for rx in &mut self.pool[..n] {
            self.gw.handle_batch(now, rx, &mut self.tx);
            self.tx.clear();
        }
        let elapsed = start.elapsed();
        (elapsed, allocations() - allocs)
    }
}

impl<A: Facility, B: Facility> Pipeline for Rig<A, B> {
    /// Every packet must have been forwarded to B, none dropped.
    fn measure(&mut self, packet: &[u8], total: usize) -> (Duration, u64) {
        let before = self.forwarded();
        let (time, allocs) = in_chunks(total, |n| {
            self.refill(packet, n);
            self.run(n)
        });
        assert_eq!(
            self.forwarded() - before,
            total as u64,
            "every packet forwarded"
        );
        assert_eq!(self.drops(), 0);
        (time, allocs)
    }

    /// One datagram to B's address on B's attachment, which B decrypts into the translated
    /// packet.
    fn check_output(&mut self, packet: &[u8]) {
        self.refill(packet, 1);
        self.gw
            .handle_batch(Instant::now(), &mut self.pool[0], &mut self.tx);
        let mut out: Vec<_> = self.tx.iter().map(|(m, b)| (m, b.to_vec())).collect();
        self.tx.clear();
        assert_eq!(out.len(), 1, "one datagram out");
        let (meta, datagram) = &mut out[0];
        assert_eq!(meta.attachment, self.b.attachment());
        assert_eq!(meta.via, self.b.via());
        assert_eq!(datagram.len(), self.b.datagram_len(packet.len()));
        let mut scratch = vec![0u8; BUF_SIZE];
        assert_translated(self.b.open(datagram, &mut scratch), packet);
    }
}
