//! The bounded flow table: admitted flows keyed by their 5-tuple in exchange space.
//!
//! Exchange addresses are unique in the IX, so one canonical key (lower endpoint first)
//! names a flow in both directions: a reply finds the entry its request created. Each entry
//! remembers which side opened the flow, the facility of the opener and the generation the
//! verdict was computed at; an entry older than the current generation (reload, facility state
//! change) is reported `Stale` and must be re-evaluated by the caller.
//!
//! For ICMP echo the caller puts the identifier in both ports, so that request and reply name
//! the same flow.
//!
//! Liveness: an entry whose idle time (`now` − last seen) exceeds its protocol's timeout is
//! dead: lookups miss it and it may be evicted at any time. Time passed in never runs
//! backwards inside the table: a `now` earlier than one already seen counts as that latest one.
//!
//! Shape: a slab of entries allocated at construction, an open-addressing index (linear
//! probing, at most half full, backward-shift deletion, so no tombstones and no rehash) keyed
//! by a randomly seeded SipHash of the canonical key, and one intrusive LRU list per protocol
//! class. Entries of one class share one timeout, so each list is ordered by expiry and its
//! head is the first to die: finding dead entries costs O(1) each.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::config::Dataplane;
use crate::ids::{FacilityCode, RuleId};

/// A packet's 5-tuple in exchange space, as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: Ipv4Addr,
    pub src_port: u16,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    pub protocol: u8,
}

/// A flow's name independent of direction: the lower (address, port) endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    lo: (Ipv4Addr, u16),
    hi: (Ipv4Addr, u16),
    protocol: u8,
}

impl Key {
    fn of(t: &Tuple) -> Key {
        let (a, b) = ((t.src, t.src_port), (t.dst, t.dst_port));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Key {
            lo,
            hi,
            protocol: t.protocol,
        }
    }
}

/// An admitted flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The tuple of the flow's first packet (opener → responder).
    pub opener: Tuple,
    /// The facility of the opener, if known.
    pub facility: Option<FacilityCode>,
    /// The rule that admitted it.
    pub rule: RuleId,
    /// The verdict's generation.
    pub generation: u64,
}

/// The answer of [`FlowTable::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A live flow of the current generation; `reply` is true when the packet travels from
    /// the responder to the opener.
    Hit {
        flow: Flow,
        reply: bool,
    },
    /// A live flow whose verdict predates `generation`: re-evaluate, then
    /// [`FlowTable::insert`] again or [`FlowTable::remove`].
    Stale {
        flow: Flow,
        reply: bool,
    },
    Miss,
}

/// Idle timeouts per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: Duration,
    pub udp: Duration,
    pub icmp: Duration,
    pub other: Duration,
}

impl From<&Dataplane> for Timeouts {
    /// Protocols other than TCP, UDP and ICMP get the UDP timeout.
    fn from(d: &Dataplane) -> Timeouts {
        Timeouts {
            tcp: d.tcp_idle_timeout,
            udp: d.udp_idle_timeout,
            icmp: d.icmp_idle_timeout,
            other: d.udp_idle_timeout,
        }
    }
}

/// The table is full of live flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flow table full of live flows")]
pub struct Full;

const CLASSES: usize = 4;

fn class_of(protocol: u8) -> usize {
    match protocol {
        6 => 0,
        17 => 1,
        1 => 2,
        _ => 3,
    }
}

const NIL: u32 = u32::MAX;

/// The largest capacity a table accepts; larger requests are clamped to it.
pub const MAX_CAPACITY: usize = 1 << 30;

struct Slot {
    key: Key,
    hash: u64,
    flow: Flow,
    last_seen: Instant,
    /// LRU neighbours within the slot's class (towards the head / the tail); `next` also links
    /// the free list.
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// A bounded map of admitted flows. Never grows past its capacity; never allocates after
/// construction.
pub struct FlowTable {
    capacity: usize,
    timeouts: [Duration; CLASSES],
    hasher: RandomState,
    /// Slot numbers, `NIL` when empty; its length is a power of two ≥ 2 × capacity.
    index: Box<[u32]>,
    slots: Vec<Slot>,
    free: u32,
    len: usize,
    lru: [List; CLASSES],
    /// The latest `now` seen.
    clock: Option<Instant>,
}

impl FlowTable {
    /// A table for up to `capacity` flows (clamped to [`MAX_CAPACITY`]); all memory is
    /// allocated here.
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        let capacity = capacity.min(MAX_CAPACITY);
        let buckets = (capacity * 2).max(2).next_power_of_two();
        FlowTable {
            capacity,
            timeouts: [timeouts.tcp, timeouts.udp, timeouts.icmp, timeouts.other],
            hasher: RandomState::new(),
            index: vec![NIL; buckets].into_boxed_slice(),
            slots: Vec::with_capacity(capacity),
            free: NIL,
            len: 0,
            lru: [List {
                head: NIL,
                tail: NIL,
            }; CLASSES],
            clock: None,
        }
    }

    /// Looks the packet's flow up and, when found and not idle-expired, refreshes its last-seen
    /// time to `now`. A dead entry found on the way is removed.
    pub fn lookup(&mut self, t: &Tuple, now: Instant, generation: u64) -> Lookup {
        let now = self.tick(now);
        let key = Key::of(t);
        let Some((pos, slot)) = self.find(&key) else {
            return Lookup::Miss;
        };
        if self.is_dead(slot, now) {
            self.remove_at(pos);
            return Lookup::Miss;
        }
        self.touch(slot, now);
        let flow = self.slots[slot as usize].flow;
        let reply = *t != flow.opener;
        if flow.generation == generation {
            Lookup::Hit { flow, reply }
        } else {
            Lookup::Stale { flow, reply }
        }
    }

    /// Admits (or re-admits) the flow whose first packet is `flow.opener`. When the table is
    /// full it first evicts idle-expired entries; `Err(Full)` if none can be evicted.
    ///
    /// Re-admitting an existing flow (either direction) replaces the whole entry with `flow`,
    /// its opener included: to keep the original orientation after a `Stale` re-evaluation,
    /// pass back the `opener` that [`FlowTable::lookup`] returned.
    pub fn insert(&mut self, flow: Flow, now: Instant) -> Result<(), Full> {
        let now = self.tick(now);
        let key = Key::of(&flow.opener);
        if let Some((_, slot)) = self.find(&key) {
            self.slots[slot as usize].flow = flow;
            self.touch(slot, now);
            return Ok(());
        }
        if self.len == self.capacity && self.evict_one(now).is_none() {
            return Err(Full);
        }
        let hash = self.hasher.hash_one(key);
        let slot = self.alloc(Slot {
            key,
            hash,
            flow,
            last_seen: now,
            prev: NIL,
            next: NIL,
        });
        self.link_tail(slot);
        let mask = self.index.len() - 1;
        let mut pos = hash as usize & mask;
        while self.index[pos] != NIL {
            pos = (pos + 1) & mask;
        }
        self.index[pos] = slot;
        self.len += 1;
        Ok(())
    }

    /// Forgets the flow of `t` (either direction), live or dead.
    pub fn remove(&mut self, t: &Tuple) {
        if let Some((pos, _)) = self.find(&Key::of(t)) {
            self.remove_at(pos);
        }
    }

    /// Removes up to `budget` idle-expired entries; returns how many were removed.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let now = self.tick(now);
        let mut removed = 0;
        while removed < budget && self.evict_one(now).is_some() {
            removed += 1;
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn tick(&mut self, now: Instant) -> Instant {
        let now = self.clock.map_or(now, |c| c.max(now));
        self.clock = Some(now);
        now
    }

    fn is_dead(&self, slot: u32, now: Instant) -> bool {
        let s = &self.slots[slot as usize];
        now.saturating_duration_since(s.last_seen) > self.timeouts[class_of(s.key.protocol)]
    }

    /// The index position and slot of `key`.
    fn find(&self, key: &Key) -> Option<(usize, u32)> {
        let mask = self.index.len() - 1;
        let mut pos = self.hasher.hash_one(key) as usize & mask;
        loop {
            let slot = self.index[pos];
            if slot == NIL {
                return None;
            }
            if self.slots[slot as usize].key == *key {
                return Some((pos, slot));
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Removes the dead head of some class, oldest deadline first; returns its slot.
    fn evict_one(&mut self, now: Instant) -> Option<u32> {
        let mut victim: Option<(u32, Instant)> = None;
        for (class, list) in self.lru.iter().enumerate() {
            if list.head == NIL || !self.is_dead(list.head, now) {
                continue;
            }
            let deadline = self.slots[list.head as usize].last_seen + self.timeouts[class];
            if victim.is_none_or(|(_, d)| deadline < d) {
                victim = Some((list.head, deadline));
            }
        }
        let (slot, _) = victim?;
        let key = self.slots[slot as usize].key;
        let (pos, _) = self.find(&key)?;
        self.remove_at(pos);
        Some(slot)
    }

    /// Removes the entry at index position `pos`, closing the probe gap by shifting later
    /// entries of the run back [Knuth, TAOCP vol. 3, § 6.4, Algorithm R].
    fn remove_at(&mut self, mut pos: usize) {
        let slot = self.index[pos];
        self.unlink(slot);
        self.slots[slot as usize].next = self.free;
        self.free = slot;
        self.len -= 1;

        let mask = self.index.len() - 1;
        self.index[pos] = NIL;
        let mut j = pos;
        loop {
            j = (j + 1) & mask;
            let s = self.index[j];
            if s == NIL {
                return;
            }
            let home = self.slots[s as usize].hash as usize & mask;
            // The entry at `j` may move to the gap unless its home lies cyclically in (pos, j].
            let stays = if pos <= j {
                pos < home && home <= j
            } else {
                pos < home || home <= j
            };
            if !stays {
                self.index[pos] = s;
                self.index[j] = NIL;
                pos = j;
            }
        }
    }

    fn alloc(&mut self, s: Slot) -> u32 {
        if self.free != NIL {
            let slot = self.free;
            self.free = self.slots[slot as usize].next;
            self.slots[slot as usize] = s;
            slot
        } else {
            self.slots.push(s);
            (self.slots.len() - 1) as u32
        }
    }

    fn touch(&mut self, slot: u32, now: Instant) {
        self.unlink(slot);
        self.slots[slot as usize].last_seen = now;
        self.link_tail(slot);
    }

    fn link_tail(&mut self, slot: u32) {
        let class = class_of(self.slots[slot as usize].key.protocol);
        let tail = self.lru[class].tail;
        let s = &mut self.slots[slot as usize];
        s.prev = tail;
        s.next = NIL;
        if tail == NIL {
            self.lru[class].head = slot;
        } else {
            self.slots[tail as usize].next = slot;
        }
        self.lru[class].tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let class = class_of(self.slots[slot as usize].key.protocol);
        let Slot { prev, next, .. } = self.slots[slot as usize];
        if prev == NIL {
            self.lru[class].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lru[class].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }
}
