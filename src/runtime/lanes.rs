//! Lanes between the data-path workers: the packets one worker hands another (a flow's home
//! is elsewhere, or another worker owns the egress peer; see `Gateway::handoffs`).
//!
//! Each worker has one inbound queue (a `std::sync::mpsc::sync_channel`: many senders, one
//! receiver, first in first out, so one flow's packets from one worker stay in order) and a
//! pool of parcels — [`HandoffBatch`]es sized once — it fills and sends. The receiver
//! hands each parcel back to its sender's pool once it has handled it. Nothing is allocated
//! per packet or per parcel after the start. When a sender's pool is empty (the workers it
//! hands to are behind), a packet is dropped at once, counted as `worker_queue_full`: the
//! early, cheap drop before more work is spent on it. A `tokio::sync::Notify` per worker wakes
//! its loop when a parcel arrives.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::buffer::HandoffBatch;
use crate::vocab::{Counters, DropReason};

/// Packets per parcel.
pub const PARCEL: usize = 128;
/// Parcels a worker may have in flight per other worker (plus a few spare).
const PARCELS_PER_PEER: usize = 4;
const SPARE_PARCELS: usize = 4;

/// A filled parcel on its way, and who to give it back to.
pub struct Parcel {
    from: usize,
    pub batch: HandoffBatch,
}

/// One worker's ends of the lanes.
pub struct Lanes {
    index: usize,
    inbound: Receiver<Parcel>,
    /// Every worker's inbound queue and wake-up, by worker index.
    to: Vec<(SyncSender<Parcel>, Arc<Notify>)>,
    /// Parcels given back by the workers this one handed to.
    returned: Receiver<HandoffBatch>,
    /// Where to give parcels back, by sending worker index.
    give_back: Vec<SyncSender<HandoffBatch>>,
    /// Empty parcels ready to fill.
    pool: Vec<HandoffBatch>,
    /// The parcel being filled for each worker (never for this one).
    filling: Vec<Option<HandoffBatch>>,
    /// Parcels filled and sent since the last [`Lanes::wake`], by worker.
    sent: Vec<bool>,
}

impl Lanes {
    /// The lanes of `workers` workers, by index.
    pub fn new(workers: usize) -> Vec<Lanes> {
        let parcels = PARCELS_PER_PEER * workers.saturating_sub(1) + SPARE_PARCELS;
        let inbound: Vec<_> = (0..workers)
            .map(|_| sync_channel::<Parcel>(parcels * workers))
            .collect();
        let returns: Vec<_> = (0..workers)
            .map(|_| sync_channel::<HandoffBatch>(parcels))
            .collect();
        let notify: Vec<Arc<Notify>> = (0..workers).map(|_| Arc::new(Notify::new())).collect();
        let to: Vec<_> = (inbound.iter().zip(&notify))
            .map(|((tx, _), n)| (tx.clone(), n.clone()))
            .collect();
        let give_back: Vec<_> = returns.iter().map(|(tx, _)| tx.clone()).collect();
        (inbound.into_iter().zip(returns))
            .enumerate()
            .map(|(index, ((_, inbound), (_, returned)))| Lanes {
                index,
                inbound,
                to: to.clone(),
                returned,
                give_back: give_back.clone(),
                pool: (0..parcels).map(|_| HandoffBatch::new(PARCEL)).collect(),
                filling: (0..workers).map(|_| None).collect(),
                sent: vec![false; workers],
            })
            .collect()
    }

    /// What wakes this worker when a parcel arrives.
    pub fn notify(&self) -> Arc<Notify> {
        self.to[self.index].1.clone()
    }

    /// Moves the packets of `handoffs` into the parcels of their workers, sending each parcel
    /// that fills up, and clears `handoffs`. A packet without a parcel to go in (the pool is
    /// empty), or for a worker that does not exist, is dropped and counted.
    pub fn dispatch(&mut self, handoffs: &mut HandoffBatch, counters: &Counters) {
        self.take_returned();
        for i in 0..handoffs.len() {
            let (m, data) = handoffs.get_mut(i);
            let w = m.worker as usize;
            if w >= self.filling.len() || w == self.index {
                Counters::drop(counters, DropReason::WorkerQueueFull);
                continue;
            }
            if self.filling[w].as_ref().is_some_and(|p| p.len() == PARCEL) {
                self.send(w, counters);
            }
            if self.filling[w].is_none() {
                self.filling[w] = self.pool.pop();
            }
            let pushed = (self.filling[w].as_mut()).is_some_and(|p| p.push_meta(m, data));
            if !pushed {
                Counters::drop(counters, DropReason::WorkerQueueFull);
            }
        }
        handoffs.clear();
    }

    /// Sends every parcel being filled and wakes the workers that got one.
    pub fn flush(&mut self, counters: &Counters) {
        for w in 0..self.filling.len() {
            if self.filling[w].is_some() {
                self.send(w, counters);
            }
        }
        for (w, sent) in self.sent.iter_mut().enumerate() {
            if std::mem::take(sent) {
                self.to[w].1.notify_one();
            }
        }
    }

    fn send(&mut self, w: usize, counters: &Counters) {
        let Some(batch) = self.filling[w].take() else {
            return;
        };
        if batch.is_empty() {
            self.pool.push(batch);
            return;
        }
        let parcel = Parcel {
            from: self.index,
            batch,
        };
        match self.to[w].0.try_send(parcel) {
            Ok(()) => self.sent[w] = true,
            Err(e) => {
                // Cannot happen while every worker's parcels fit its queue; counted if it does.
                let mut parcel = match e {
                    std::sync::mpsc::TrySendError::Full(p)
                    | std::sync::mpsc::TrySendError::Disconnected(p) => p,
                };
                counters.drops_add(None, DropReason::WorkerQueueFull, parcel.batch.len() as u64);
                parcel.batch.clear();
                self.pool.push(parcel.batch);
            }
        }
    }

    /// The next parcel handed to this worker, if any.
    pub fn receive(&mut self) -> Option<Parcel> {
        self.inbound.try_recv().ok()
    }

    /// Gives a handled parcel back to the worker that sent it.
    pub fn give_back(&mut self, mut parcel: Parcel) {
        parcel.batch.clear();
        // The sender's return queue holds all its parcels: this cannot fail while it lives.
        let _ = self.give_back[parcel.from].try_send(parcel.batch);
    }

    fn take_returned(&mut self) {
        while let Ok(batch) = self.returned.try_recv() {
            self.pool.push(batch);
        }
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

    /// Packets reach their worker in order, whatever parcel they travel in, and the parcels
    /// come back to their sender's pool.
    #[test]
    fn packets_reach_their_worker_in_order() {
        let counters = counters();
        let mut lanes = Lanes::new(3);
        let mut handoffs = HandoffBatch::new(2 * PARCEL + 10);
        for n in 0..(2 * PARCEL + 10) as u32 {
            let worker = 1 + n % 2;
            assert!(handoffs.push(worker, 7, forward(), &n.to_le_bytes()));
        }
        let pool = lanes[0].pool.len();
        lanes[0].dispatch(&mut handoffs, &counters);
        assert!(handoffs.is_empty());
        lanes[0].flush(&counters);
        assert_eq!(drops(&counters), 0);
        for w in [1usize, 2] {
            let mut got = Vec::new();
            while let Some(mut parcel) = lanes[w].receive() {
                for i in 0..parcel.batch.len() {
                    let (m, data) = parcel.batch.get_mut(i);
                    assert_eq!((m.worker as usize, m.generation), (w, 7));
                    got.push(u32::from_le_bytes(data.try_into().expect("4 bytes")));
                }
                lanes[w].give_back(parcel);
            }
            let want: Vec<u32> = (0..(2 * PARCEL + 10) as u32)
                .filter(|n| 1 + (n % 2) as usize == w)
                .collect();
            assert_eq!(got, want, "worker {w}");
        }
        lanes[0].take_returned();
        assert_eq!(lanes[0].pool.len(), pool, "every parcel given back");
    }

    /// A receiver that never reads: the sender's pool runs dry and the packets beyond it are
    /// dropped and counted, never queued without bound.
    #[test]
    fn a_worker_behind_costs_counted_drops() {
        let counters = counters();
        let mut lanes = Lanes::new(2);
        let capacity = lanes[0].pool.len() * PARCEL;
        let mut handoffs = HandoffBatch::new(PARCEL);
        let mut offered = 0;
        for _ in 0..lanes[0].pool.len() + 3 {
            for _ in 0..PARCEL {
                handoffs.push(1, 1, forward(), &[1, 2, 3]);
                offered += 1;
            }
            lanes[0].dispatch(&mut handoffs, &counters);
            lanes[0].flush(&counters);
        }
        assert_eq!(drops(&counters), (offered - capacity) as u64);
        let mut queued = 0;
        while let Some(p) = lanes[1].receive() {
            queued += p.batch.len();
            lanes[1].give_back(p);
        }
        assert_eq!(queued, capacity);
        // Given back, the parcels carry packets again.
        handoffs.push(1, 1, forward(), &[4]);
        lanes[0].dispatch(&mut handoffs, &counters);
        lanes[0].flush(&counters);
        assert!(lanes[1].receive().is_some());
    }

    /// A packet for itself or for a worker that does not exist is counted, not sent.
    #[test]
    fn a_packet_for_no_other_worker_is_counted() {
        let counters = counters();
        let mut lanes = Lanes::new(2);
        let mut handoffs = HandoffBatch::new(4);
        handoffs.push(0, 1, forward(), &[1]);
        handoffs.push(5, 1, forward(), &[1]);
        lanes[0].dispatch(&mut handoffs, &counters);
        lanes[0].flush(&counters);
        assert_eq!(drops(&counters), 2);
        assert!(lanes[1].receive().is_none());
    }
}
