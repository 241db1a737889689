//! Lanes between the data-path workers: the packets one worker hands another (a flow's home
//! is elsewhere, or another worker owns the egress peer; see `Gateway::handoffs`).
//!
//! Each ordered pair of workers has a lane: a [`HandoffBatch`] of [`lane_packets`] slots
//! behind a mutex, taken once per batch, never per packet. The sender appends its batch's
//! packets for that worker in order and wakes it (a `tokio::sync::Notify` per worker); the
//! receiver swaps the lane's batch for an empty one of its own and handles it outside the
//! lock, so one flow's packets keep their order. Buffers are sized once at the start and
//! then only swapped: nothing is allocated per packet or per batch. A full lane (the receiver
//! is behind by that many packets, as a full socket buffer would be) drops the packet at
//! once, counted as `worker_queue_full`: the early, cheap drop before more work is spent.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::buffer::HandoffBatch;
use crate::vocab::{Counters, DropReason};

/// Packets a lane holds: each receiver's 4,096 (about what a 4 MiB socket buffer holds)
/// shared by the lanes from every other worker, at least 64 each; so lanes take at most
/// about 8 MiB of packet buffers per worker.
pub fn lane_packets(workers: usize) -> usize {
    (4096 / workers.saturating_sub(1).max(1)).max(64)
}

/// What the workers share: every lane, by sender then receiver, and every worker's wake-up.
struct Shared {
    workers: usize,
    lanes: Vec<Mutex<HandoffBatch>>,
    wake: Vec<Notify>,
}

impl Shared {
    fn lane(&self, from: usize, to: usize) -> MutexGuard<'_, HandoffBatch> {
        // A batch stays consistent if a holder panicked: every step is a push or a swap.
        self.lanes[from * self.workers + to]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// One worker's ends of the lanes.
pub struct Lanes {
    index: usize,
    shared: Arc<Shared>,
    /// The batch this worker handles next: swapped with a lane's, then cleared.
    spare: HandoffBatch,
    /// The lane [`Lanes::receive`] looks at first, so that every sender gets its turn.
    next: usize,
}

impl Lanes {
    /// The lanes of `workers` workers, by index.
    pub fn new(workers: usize) -> Vec<Lanes> {
        let packets = lane_packets(workers);
        let shared = Arc::new(Shared {
            workers,
            // A worker's lane to itself stays empty (and unallocated).
            lanes: (0..workers * workers)
                .map(|k| match k / workers == k % workers {
                    true => Mutex::new(HandoffBatch::empty()),
                    false => Mutex::new(HandoffBatch::new(packets)),
                })
                .collect(),
            wake: (0..workers).map(|_| Notify::new()).collect(),
        });
        (0..workers)
            .map(|index| Lanes {
                index,
                shared: shared.clone(),
                spare: HandoffBatch::new(packets),
                next: 0,
            })
            .collect()
    }

    /// Waits until another worker handed this one packets (or did since the last wait).
    pub async fn notified(&self) {
        self.shared.wake[self.index].notified().await;
    }

    /// Wakes this worker's next [`Lanes::notified`] at once: more waits than it took.
    pub fn wake_self(&self) {
        self.shared.wake[self.index].notify_one();
    }

    /// Appends the packets of `handoffs` to the lanes of their workers, in order, wakes
    /// those workers, and clears `handoffs`. A packet for a full lane, for this worker or
    /// for a worker that does not exist is dropped and counted.
    pub fn dispatch(&mut self, handoffs: &mut HandoffBatch, counters: &Counters) {
        let mut present = 0u64;
        let mut lost = 0u64;
        for i in 0..handoffs.len() {
            let w = handoffs.get_mut(i).0.worker as usize;
            if w < self.shared.workers && w != self.index && w < 64 {
                present |= 1 << w;
            } else {
                lost += 1;
            }
        }
        let mut handed = 0u64;
        while present != 0 {
            let w = present.trailing_zeros() as usize;
            present &= present - 1;
            {
                let mut lane = self.shared.lane(self.index, w);
                for i in 0..handoffs.len() {
                    let (m, data) = handoffs.get_mut(i);
                    if m.worker as usize != w {
                        continue;
                    }
                    match lane.push_meta(m, data) {
                        true => handed += 1,
                        false => lost += 1,
                    }
                }
            }
            self.shared.wake[w].notify_one();
        }
        counters.handed_on.add(handed);
        if lost > 0 {
            counters.drops_add(None, DropReason::WorkerQueueFull, lost);
        }
        handoffs.clear();
    }

    /// The packets the next lane with any holds (every lane in turn), for the caller to
    /// handle and give back with [`Lanes::give_back`]; `None` also while the last batch has
    /// not been given back (its buffer is the lane's next one).
    pub fn receive(&mut self) -> Option<HandoffBatch> {
        if self.spare.room() == 0 {
            return None;
        }
        let workers = self.shared.workers;
        for k in 0..workers {
            let from = (self.next + k) % workers;
            if from == self.index {
                continue;
            }
            let mut lane = self.shared.lane(from, self.index);
            if lane.is_empty() {
                continue;
            }
            self.next = (from + 1) % workers;
            let spare = std::mem::replace(&mut self.spare, HandoffBatch::empty());
            return Some(std::mem::replace(&mut *lane, spare));
        }
        None
    }

    /// Takes back a batch [`Lanes::receive`] gave, handled: it becomes the next spare.
    pub fn give_back(&mut self, mut batch: HandoffBatch) {
        batch.clear();
        self.spare = batch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::HandoffKind;
    use crate::ids::AttachmentId;
    use crate::vocab::Names;

    fn forward() -> HandoffKind {
        HandoffKind::Forward {
            attachment: AttachmentId(0),
            peer: None,
        }
    }

    fn counters() -> Counters {
        Counters::new(std::time::Instant::now(), Names::default())
    }

    fn drops(c: &Counters) -> u64 {
        c.drop_count(DropReason::WorkerQueueFull)
    }

    /// Everything a worker received, by sender lane, as the 4-byte numbers sent.
    fn drain(lanes: &mut Lanes, worker: usize) -> Vec<u32> {
        let mut got = Vec::new();
        while let Some(mut batch) = lanes.receive() {
            for i in 0..batch.len() {
                let (m, data) = batch.get_mut(i);
                assert_eq!((m.worker as usize, m.generation), (worker, 7));
                got.push(u32::from_le_bytes(data.try_into().expect("4 bytes")));
            }
            lanes.give_back(batch);
        }
        got
    }

    /// Packets reach their worker in order, over many small batches, and the buffers only
    /// change hands.
    #[test]
    fn packets_reach_their_worker_in_order() {
        let counters = counters();
        let mut lanes = Lanes::new(3);
        let mut handoffs = HandoffBatch::new(16);
        let mut want = [Vec::new(), Vec::new(), Vec::new()];
        for n in 0..600u32 {
            let worker = 1 + n % 2;
            assert!(handoffs.push(worker, 7, forward(), &n.to_le_bytes()));
            want[worker as usize].push(n);
            if handoffs.len() == 3 {
                lanes[0].dispatch(&mut handoffs, &counters);
            }
        }
        lanes[0].dispatch(&mut handoffs, &counters);
        assert!(handoffs.is_empty());
        assert_eq!(drops(&counters), 0);
        for w in [1usize, 2] {
            assert_eq!(drain(&mut lanes[w], w), want[w], "worker {w}");
        }
        // And again, through the swapped buffers.
        for n in 0..10u32 {
            assert!(handoffs.push(2, 7, forward(), &n.to_le_bytes()));
        }
        lanes[0].dispatch(&mut handoffs, &counters);
        assert_eq!(drain(&mut lanes[2], 2), (0..10).collect::<Vec<u32>>());
    }

    /// Two senders to one receiver: each sender's packets in its own order, none lost; the
    /// lanes are taken in turn, not the first one over and over.
    #[test]
    fn every_sender_gets_its_turn() {
        let counters = counters();
        let mut lanes = Lanes::new(3);
        let mut handoffs = HandoffBatch::new(4);
        for from in [0usize, 1] {
            for n in 0..4u32 {
                assert!(handoffs.push(2, 7, forward(), &(100 * from as u32 + n).to_le_bytes()));
            }
            lanes[from].dispatch(&mut handoffs, &counters);
        }
        let got = drain(&mut lanes[2], 2);
        let from = |s: u32| {
            got.iter()
                .filter(|&&n| n / 100 == s)
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(from(0), [0, 1, 2, 3], "worker 0's in its order");
        assert_eq!(from(1), [100, 101, 102, 103], "worker 1's in its order");
        assert_eq!(got.len(), 8);
    }

    /// A sender that keeps its lane full does not keep the receiver from the other lanes.
    #[test]
    fn a_busy_lane_does_not_starve_the_others() {
        let counters = counters();
        let mut lanes = Lanes::new(3);
        let mut handoffs = HandoffBatch::new(4);
        let mut send = |lanes: &mut Vec<Lanes>, from: usize, n: u32| {
            assert!(handoffs.push(2, 7, forward(), &n.to_le_bytes()));
            lanes[from].dispatch(&mut handoffs, &counters);
        };
        send(&mut lanes, 0, 1);
        send(&mut lanes, 1, 101);
        let first = |lanes: &mut Vec<Lanes>| {
            let mut b = lanes[2].receive().expect("a batch");
            let n = u32::from_le_bytes(b.get_mut(0).1.try_into().expect("4 bytes"));
            lanes[2].give_back(b);
            n
        };
        assert_eq!(first(&mut lanes), 1);
        send(&mut lanes, 0, 2);
        assert_eq!(
            first(&mut lanes),
            101,
            "worker 1's turn, though worker 0 sent again"
        );
        assert_eq!(first(&mut lanes), 2);
    }

    /// A receiver that never reads: the lane fills and the packets beyond it are dropped
    /// and counted, never queued without bound; once read, the lane carries packets again.
    #[test]
    fn a_worker_behind_costs_counted_drops() {
        let counters = counters();
        let mut lanes = Lanes::new(2);
        let capacity = lane_packets(2);
        let mut handoffs = HandoffBatch::new(100);
        let mut offered = 0;
        while offered < capacity + 250 {
            for _ in 0..100 {
                handoffs.push(1, 7, forward(), &[1, 2, 3, 4]);
                offered += 1;
            }
            lanes[0].dispatch(&mut handoffs, &counters);
        }
        assert_eq!(drops(&counters), (offered - capacity) as u64);
        assert_eq!(counters.handed_on.get(), capacity as u64);
        assert_eq!(drain(&mut lanes[1], 1).len(), capacity);
        handoffs.push(1, 7, forward(), &[4, 0, 0, 0]);
        lanes[0].dispatch(&mut handoffs, &counters);
        assert_eq!(drain(&mut lanes[1], 1), [4]);
    }

    /// A batch taken and not given back leaves the lanes as they are: the next receive
    /// waits for it instead of handing a lane a buffer without room.
    #[test]
    fn a_batch_not_given_back_holds_the_next() {
        let counters = counters();
        let mut lanes = Lanes::new(2);
        let mut handoffs = HandoffBatch::new(4);
        handoffs.push(1, 7, forward(), &[1, 0, 0, 0]);
        lanes[0].dispatch(&mut handoffs, &counters);
        let held = lanes[1].receive().expect("a batch");
        handoffs.push(1, 7, forward(), &[2, 0, 0, 0]);
        lanes[0].dispatch(&mut handoffs, &counters);
        assert!(
            lanes[1].receive().is_none(),
            "not before the first is given back"
        );
        lanes[1].give_back(held);
        assert_eq!(drain(&mut lanes[1], 1), [2]);
        assert_eq!(drops(&counters), 0);
    }

    /// A packet for itself or for a worker that does not exist is counted, not sent.
    #[test]
    fn a_packet_for_no_other_worker_is_counted() {
        let counters = counters();
        let mut lanes = Lanes::new(2);
        let mut handoffs = HandoffBatch::new(4);
        handoffs.push(0, 7, forward(), &[1]);
        handoffs.push(5, 7, forward(), &[1]);
        lanes[0].dispatch(&mut handoffs, &counters);
        assert_eq!(drops(&counters), 2);
        assert!(lanes[1].receive().is_none());
    }

    #[test]
    fn lanes_hold_a_socket_buffer_s_worth_and_shrink_with_more_workers() {
        assert_eq!(lane_packets(2), 4096);
        assert_eq!(lane_packets(5), 1024);
        assert_eq!(lane_packets(64), 65);
    }
}
