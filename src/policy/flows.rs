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
//! Classes: every entry starts *unreplied*, in a class of its own with the short timeout
//! [`Timeouts::unreplied`] whatever its protocol. The first live lookup of a packet travelling
//! responder → opener makes it *replied*: it moves to its protocol's class (TCP, UDP, ICMP,
//! other) and that class's timeout, and stays replied when re-admitted. A full table makes room
//! for a new flow by evicting a dead entry, else the oldest unreplied entry even while it is
//! live (an early drop, as Linux conntrack does); only a table full of live replied flows
//! refuses one. Whatever an opener sends, its unanswered flows compete only with other
//! unanswered flows, never with established ones.
//!
//! Liveness: an entry whose idle time (`now` − last seen) exceeds its class's timeout is
//! dead: lookups miss it and it may be evicted at any time. Time passed in never runs
//! backwards inside the table: a `now` earlier than one already seen counts as that latest one.
//!
//! Shape: a slab of entries allocated at construction (and again only by
//! [`FlowTable::resize`]), an open-addressing index (linear probing, at most half full,
//! backward-shift deletion, so no tombstones and no rehash) keyed by a randomly seeded SipHash
//! of the canonical key, and one intrusive LRU list per class. Entries of one class share one
//! timeout, so each list is ordered by expiry and its head is the first to die: finding dead
//! entries and the oldest unreplied entry costs O(1) each.

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

/// Idle timeouts of replied flows per protocol, and of unreplied flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: Duration,
    pub udp: Duration,
    pub icmp: Duration,
    pub other: Duration,
    /// Any flow that has not seen a packet from its responder yet.
    pub unreplied: Duration,
}

/// The idle timeout of a flow that has not been answered yet.
pub const UNREPLIED_TIMEOUT: Duration = Duration::from_secs(30);

impl From<&Dataplane> for Timeouts {
    /// Protocols other than TCP, UDP and ICMP get the UDP timeout; unreplied flows get
    /// [`UNREPLIED_TIMEOUT`].
    fn from(d: &Dataplane) -> Timeouts {
        Timeouts {
            tcp: d.tcp_idle_timeout,
            udp: d.udp_idle_timeout,
            icmp: d.icmp_idle_timeout,
            other: d.udp_idle_timeout,
            unreplied: UNREPLIED_TIMEOUT,
        }
    }
}

impl Timeouts {
    fn by_class(self) -> [Duration; CLASSES] {
        [self.tcp, self.udp, self.icmp, self.other, self.unreplied]
    }
}

/// The table is full of live replied flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flow table full of live flows")]
pub struct Full;

const CLASSES: usize = 5;
/// The class of every entry until its first reply; the others are per protocol.
const UNREPLIED: u8 = 4;

fn replied_class(protocol: u8) -> u8 {
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

#[derive(Clone, Copy)]
struct Slot {
    key: Key,
    hash: u64,
    flow: Flow,
    last_seen: Instant,
    class: u8,
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
/// construction except in [`FlowTable::resize`].
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
        Self::with_hasher(capacity, timeouts.by_class(), RandomState::new())
    }

    fn with_hasher(capacity: usize, timeouts: [Duration; CLASSES], hasher: RandomState) -> Self {
        let capacity = capacity.min(MAX_CAPACITY);
        let buckets = (capacity * 2).max(2).next_power_of_two();
        FlowTable {
            capacity,
            timeouts,
            hasher,
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
    /// time to `now`; a packet from the responder makes the flow replied. A dead entry found on
    /// the way is removed.
    pub fn lookup(&mut self, t: &Tuple, now: Instant, generation: u64) -> Lookup {
        self.find_flow(t, now, generation, true)
    }

    /// Like [`FlowTable::lookup`], but the entry is neither refreshed nor marked replied: for
    /// packets that only refer to a flow (ICMP errors), which anyone on the path can forge.
    pub fn peek(&mut self, t: &Tuple, now: Instant, generation: u64) -> Lookup {
        self.find_flow(t, now, generation, false)
    }

    fn find_flow(&mut self, t: &Tuple, now: Instant, generation: u64, touch: bool) -> Lookup {
        let now = self.tick(now);
        let key = Key::of(t);
        let Some((pos, slot)) = self.find(&key, self.hasher.hash_one(key)) else {
            return Lookup::Miss;
        };
        if self.is_dead(slot, now) {
            self.remove_at(pos);
            return Lookup::Miss;
        }
        let flow = self.slots[slot as usize].flow;
        let reply = *t != flow.opener;
        if touch {
            let class = match self.slots[slot as usize].class {
                UNREPLIED if reply => replied_class(key.protocol),
                class => class,
            };
            self.touch(slot, now, class);
        }
        if flow.generation == generation {
            Lookup::Hit { flow, reply }
        } else {
            Lookup::Stale { flow, reply }
        }
    }

    /// Admits (or re-admits) the flow whose first packet is `flow.opener`. A new flow starts
    /// unreplied. When the table is full it first evicts an idle-expired entry, else the oldest
    /// unreplied one; `Err(Full)` if every entry is live and replied.
    ///
    /// Re-admitting an existing flow (either direction) replaces the whole entry with `flow`,
    /// its opener included, and keeps its replied state: to keep the original orientation
    /// after a `Stale` re-evaluation, pass back the `opener` that [`FlowTable::lookup`]
    /// returned.
    pub fn insert(&mut self, flow: Flow, now: Instant) -> Result<(), Full> {
        let now = self.tick(now);
        let key = Key::of(&flow.opener);
        let hash = self.hasher.hash_one(key);
        if let Some((_, slot)) = self.find(&key, hash) {
            self.slots[slot as usize].flow = flow;
            let class = self.slots[slot as usize].class;
            self.touch(slot, now, class);
            return Ok(());
        }
        if self.len == self.capacity
            && self.evict_one(now).is_none()
            && self.evict_unreplied().is_none()
        {
            return Err(Full);
        }
        self.place(Slot {
            key,
            hash,
            flow,
            last_seen: now,
            class: UNREPLIED,
            prev: NIL,
            next: NIL,
        });
        Ok(())
    }

    /// Forgets the flow of `t` (either direction), live or dead.
    pub fn remove(&mut self, t: &Tuple) {
        let key = Key::of(t);
        if let Some((pos, _)) = self.find(&key, self.hasher.hash_one(key)) {
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

    /// Replaces the timeouts in place. Entries keep their class and last-seen time, so some
    /// may now be dead, or alive again.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts.by_class();
    }

    /// Moves every live entry (judged at the latest `now` the table has seen) into new storage
    /// for `capacity` flows (clamped to [`MAX_CAPACITY`]), keeping each entry's class and
    /// last-seen time and each class's LRU order; dead entries are discarded. When the live
    /// entries outnumber `capacity`, the oldest unreplied ones go first, then the least recently
    /// seen replied ones. Returns how many live entries were dropped. Allocates; O(entries).
    pub fn resize(&mut self, capacity: usize) -> usize {
        let capacity = capacity.min(MAX_CAPACITY);
        let mut first = [NIL; CLASSES];
        let mut live = 0usize;
        // Each list is ordered by expiry, so its dead entries form a prefix.
        for (class, list) in self.lru.iter().enumerate() {
            let mut cur = list.head;
            while cur != NIL && self.clock.is_some_and(|now| self.is_dead(cur, now)) {
                cur = self.slots[cur as usize].next;
            }
            first[class] = cur;
            while cur != NIL {
                live += 1;
                cur = self.slots[cur as usize].next;
            }
        }
        let dropped = live.saturating_sub(capacity);
        for _ in 0..dropped {
            let class = if first[UNREPLIED as usize] != NIL {
                UNREPLIED as usize
            } else {
                let oldest = (0..UNREPLIED as usize)
                    .filter(|&c| first[c] != NIL)
                    .min_by_key(|&c| self.slots[first[c] as usize].last_seen);
                let Some(class) = oldest else { break };
                class
            };
            first[class] = self.slots[first[class] as usize].next;
        }
        let mut next = Self::with_hasher(capacity, self.timeouts, self.hasher.clone());
        next.clock = self.clock;
        for mut cur in first {
            while cur != NIL {
                let slot = self.slots[cur as usize];
                next.place(slot);
                cur = slot.next;
            }
        }
        *self = next;
        dropped
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
        now.saturating_duration_since(s.last_seen) > self.timeouts[s.class as usize]
    }

    /// The index position and slot of `key`, whose hash is `hash`.
    fn find(&self, key: &Key, hash: u64) -> Option<(usize, u32)> {
        let mask = self.index.len() - 1;
        let mut pos = hash as usize & mask;
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

    /// Stores a new entry (the table has room and `s.key` is absent) at the tail of its class.
    fn place(&mut self, s: Slot) {
        let hash = s.hash;
        let slot = self.alloc(s);
        self.link_tail(slot);
        let mask = self.index.len() - 1;
        let mut pos = hash as usize & mask;
        while self.index[pos] != NIL {
            pos = (pos + 1) & mask;
        }
        self.index[pos] = slot;
        self.len += 1;
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
        self.evict(slot)
    }

    /// Removes the least recently seen unreplied entry, live or dead; returns its slot.
    fn evict_unreplied(&mut self) -> Option<u32> {
        let head = self.lru[UNREPLIED as usize].head;
        if head == NIL {
            return None;
        }
        self.evict(head)
    }

    fn evict(&mut self, slot: u32) -> Option<u32> {
        let Slot { key, hash, .. } = self.slots[slot as usize];
        let (pos, _) = self.find(&key, hash)?;
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

    /// Marks the entry seen at `now` and moves it to the tail of `class`.
    fn touch(&mut self, slot: u32, now: Instant, class: u8) {
        self.unlink(slot);
        let s = &mut self.slots[slot as usize];
        s.last_seen = now;
        s.class = class;
        self.link_tail(slot);
    }

    fn link_tail(&mut self, slot: u32) {
        let class = self.slots[slot as usize].class as usize;
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
        let class = self.slots[slot as usize].class as usize;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    impl FlowTable {
        fn contains(&self, t: &Tuple) -> bool {
            let key = Key::of(t);
            self.find(&key, self.hasher.hash_one(key)).is_some()
        }

        /// Checks every structural invariant; panics with a description otherwise.
        fn check_invariants(&self) {
            assert!(self.len <= self.capacity);
            assert!(self.slots.len() <= self.capacity);
            assert!(self.index.len() >= 2 * self.capacity);
            let occupied: Vec<(usize, u32)> = (0..self.index.len())
                .filter(|&p| self.index[p] != NIL)
                .map(|p| (p, self.index[p]))
                .collect();
            assert_eq!(occupied.len(), self.len, "index entries");
            for &(pos, slot) in &occupied {
                let key = self.slots[slot as usize].key;
                assert_eq!(self.hasher.hash_one(key), self.slots[slot as usize].hash);
                let hash = self.slots[slot as usize].hash;
                assert_eq!(
                    self.find(&key, hash),
                    Some((pos, slot)),
                    "probe reaches {key:?}"
                );
            }
            let mut listed = 0;
            for (class, list) in self.lru.iter().enumerate() {
                let (mut prev, mut cur) = (NIL, list.head);
                while cur != NIL {
                    let s = &self.slots[cur as usize];
                    assert_eq!(s.class as usize, class);
                    assert!(s.class == UNREPLIED || s.class == replied_class(s.key.protocol));
                    assert_eq!(s.prev, prev);
                    if prev != NIL {
                        assert!(self.slots[prev as usize].last_seen <= s.last_seen);
                    }
                    assert!(
                        occupied.iter().any(|&(_, o)| o == cur),
                        "listed but not indexed"
                    );
                    listed += 1;
                    (prev, cur) = (cur, s.next);
                }
                assert_eq!(list.tail, prev);
            }
            assert_eq!(listed, self.len, "LRU lists");
            let (mut free, mut cur) = (0, self.free);
            while cur != NIL {
                free += 1;
                cur = self.slots[cur as usize].next;
            }
            assert_eq!(free + self.len, self.slots.len(), "free list");
        }
    }

    const TIMEOUTS: Timeouts = Timeouts {
        tcp: Duration::from_secs(100),
        udp: Duration::from_secs(10),
        icmp: Duration::from_secs(5),
        other: Duration::from_secs(20),
        unreplied: Duration::from_secs(3),
    };

    fn tuple(src: u8, src_port: u16, dst: u8, dst_port: u16, protocol: u8) -> Tuple {
        Tuple {
            src: Ipv4Addr::new(100, 64, 0, src),
            src_port,
            dst: Ipv4Addr::new(100, 65, 0, dst),
            dst_port,
            protocol,
        }
    }

    fn reverse(t: Tuple) -> Tuple {
        Tuple {
            src: t.dst,
            src_port: t.dst_port,
            dst: t.src,
            dst_port: t.src_port,
            protocol: t.protocol,
        }
    }

    fn flow(opener: Tuple, rule: u16, generation: u64) -> Flow {
        Flow {
            opener,
            facility: Some(FacilityCode::parse("4212345678").unwrap()),
            rule: RuleId(rule),
            generation,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A packet from the responder of `opener`'s flow at `now`: the flow becomes replied.
    fn answer(table: &mut FlowTable, opener: Tuple, now: Instant) {
        assert!(
            matches!(
                table.lookup(&reverse(opener), now, 0),
                Lookup::Hit { reply: true, .. }
            ),
            "{opener:?} answered"
        );
    }

    #[test]
    fn reply_finds_the_request() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(8, TIMEOUTS);
        let req = tuple(1, 40000, 2, 443, 6);
        let f = flow(req, 3, 7);
        table.insert(f, t0).unwrap();
        assert_eq!(
            table.lookup(&req, t0, 7),
            Lookup::Hit {
                flow: f,
                reply: false
            }
        );
        assert_eq!(
            table.lookup(&reverse(req), t0, 7),
            Lookup::Hit {
                flow: f,
                reply: true
            }
        );
        let mut other = req;
        other.src_port = 40001;
        assert_eq!(table.lookup(&other, t0, 7), Lookup::Miss);
        other = req;
        other.protocol = 17;
        assert_eq!(table.lookup(&other, t0, 7), Lookup::Miss);
        assert_eq!(table.len(), 1);
        table.check_invariants();
    }

    #[test]
    fn each_protocol_has_its_own_idle_timeout() {
        for (protocol, timeout) in [(6, 100), (17, 10), (1, 5), (47, 20)] {
            let t0 = Instant::now();
            let mut table = FlowTable::new(4, TIMEOUTS);
            let t = tuple(1, 7, 2, 7, protocol);
            table.insert(flow(t, 0, 0), t0).unwrap();
            answer(&mut table, t, t0);
            let at = t0 + secs(timeout);
            assert!(
                matches!(table.lookup(&t, at, 0), Lookup::Hit { .. }),
                "{protocol}: idle exactly its timeout is alive"
            );
            let at = at + secs(timeout);
            assert!(
                matches!(table.lookup(&t, at, 0), Lookup::Hit { .. }),
                "{protocol}: the hit refreshed it"
            );
            let late = at + secs(timeout) + Duration::from_millis(1);
            assert_eq!(table.lookup(&t, late, 0), Lookup::Miss, "{protocol}");
            assert!(table.is_empty(), "{protocol}: the dead entry is gone");
            table.check_invariants();
        }
    }

    #[test]
    fn insert_into_full_table_evicts_an_expired_entry() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, TIMEOUTS);
        let (a, b, c) = (
            tuple(1, 1, 2, 1, 17),
            tuple(1, 2, 2, 2, 17),
            tuple(1, 3, 2, 3, 17),
        );
        table.insert(flow(a, 0, 0), t0).unwrap();
        answer(&mut table, a, t0);
        table.insert(flow(b, 0, 0), t0 + secs(1)).unwrap();
        answer(&mut table, b, t0 + secs(1));
        assert_eq!(table.insert(flow(c, 0, 0), t0 + secs(10)), Err(Full));
        table.insert(flow(c, 0, 0), t0 + secs(11)).unwrap();
        assert_eq!(table.len(), 2);
        assert!(!table.contains(&a), "the oldest, expired entry was evicted");
        assert!(matches!(
            table.lookup(&b, t0 + secs(11), 0),
            Lookup::Hit { .. }
        ));
        assert!(matches!(
            table.lookup(&c, t0 + secs(11), 0),
            Lookup::Hit { .. }
        ));
        table.check_invariants();
    }

    #[test]
    fn eviction_prefers_the_earliest_deadline_across_classes() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, TIMEOUTS);
        let (udp, icmp) = (tuple(1, 1, 2, 1, 17), tuple(1, 0, 2, 0, 1));
        table.insert(flow(udp, 0, 0), t0).unwrap();
        answer(&mut table, udp, t0);
        table.insert(flow(icmp, 0, 0), t0 + secs(1)).unwrap();
        answer(&mut table, icmp, t0 + secs(1));
        table
            .insert(flow(tuple(3, 3, 3, 3, 6), 0, 0), t0 + secs(30))
            .unwrap();
        assert!(table.contains(&udp), "udp died at +10, icmp at +6");
        assert!(!table.contains(&icmp));
    }

    #[test]
    fn hits_move_entries_to_the_back_of_the_lru() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(3, TIMEOUTS);
        let ts: Vec<Tuple> = (1..=3).map(|i| tuple(i, 1, 2, 1, 17)).collect();
        for t in &ts {
            table.insert(flow(*t, 0, 0), t0).unwrap();
            answer(&mut table, *t, t0);
        }
        assert!(matches!(
            table.lookup(&ts[0], t0 + secs(5), 0),
            Lookup::Hit { .. }
        ));
        assert_eq!(table.expire(t0 + secs(12), 10), 2);
        assert_eq!(table.len(), 1);
        assert!(table.contains(&ts[0]));
        table.check_invariants();
    }

    #[test]
    fn full_of_live_flows() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, TIMEOUTS);
        let (a, b) = (tuple(1, 1, 2, 1, 6), tuple(1, 2, 2, 2, 6));
        for t in [a, b] {
            table.insert(flow(t, 0, 0), t0).unwrap();
            answer(&mut table, t, t0);
        }
        assert_eq!(
            table.insert(flow(tuple(9, 9, 9, 9, 6), 0, 0), t0),
            Err(Full)
        );
        assert_eq!(table.len(), 2);
        assert!(table.contains(&a) && table.contains(&b));
        assert_eq!(
            table.insert(flow(reverse(a), 1, 0), t0),
            Ok(()),
            "re-admission"
        );
        assert_eq!(table.len(), 2);
        assert_eq!(
            FlowTable::new(0, TIMEOUTS).insert(flow(a, 0, 0), t0),
            Err(Full)
        );
    }

    #[test]
    fn stale_generation_and_readmission() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, TIMEOUTS);
        let req = tuple(1, 5000, 2, 104, 6);
        table.insert(flow(req, 1, 4), t0).unwrap();
        let Lookup::Stale { flow: old, reply } = table.lookup(&reverse(req), t0, 5) else {
            panic!("generation 4 < 5 must be stale");
        };
        assert!(reply);
        assert_eq!(old.opener, req);
        table
            .insert(
                Flow {
                    generation: 5,
                    ..old
                },
                t0,
            )
            .unwrap();
        assert_eq!(
            table.lookup(&reverse(req), t0, 5),
            Lookup::Hit {
                flow: Flow {
                    generation: 5,
                    ..old
                },
                reply: true
            },
            "orientation kept when the caller passes it back"
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn readmission_replaces_the_verdict_as_given() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, TIMEOUTS);
        let req = tuple(1, 5000, 2, 104, 6);
        table.insert(flow(req, 1, 4), t0).unwrap();
        let replacement = Flow {
            facility: None,
            ..flow(reverse(req), 2, 6)
        };
        table.insert(replacement, t0).unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.lookup(&req, t0, 6),
            Lookup::Hit {
                flow: replacement,
                reply: true
            }
        );
    }

    #[test]
    fn remove_len_and_capacity() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(5, TIMEOUTS);
        assert_eq!(
            (table.len(), table.capacity(), table.is_empty()),
            (0, 5, true)
        );
        let ts: Vec<Tuple> = (1..=4).map(|i| tuple(i, i.into(), 2, 80, 6)).collect();
        for (i, t) in ts.iter().enumerate() {
            table.insert(flow(*t, 0, 0), t0).unwrap();
            assert_eq!(table.len(), i + 1);
        }
        table.remove(&reverse(ts[1]));
        table.remove(&reverse(ts[1]));
        assert_eq!(table.len(), 3);
        assert_eq!(table.lookup(&ts[1], t0, 0), Lookup::Miss);
        for t in [ts[0], ts[2], ts[3]] {
            assert!(matches!(table.lookup(&t, t0, 0), Lookup::Hit { .. }));
        }
        assert!(!table.is_empty());
        table.check_invariants();
    }

    #[test]
    fn expire_respects_its_budget_and_spares_live_entries() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(8, TIMEOUTS);
        for i in 1..=3 {
            for protocol in [1, 17] {
                table
                    .insert(flow(tuple(i, 1, 1, 1, protocol), 0, 0), t0)
                    .unwrap();
                answer(&mut table, tuple(i, 1, 1, 1, protocol), t0);
            }
        }
        table.insert(flow(tuple(1, 1, 1, 1, 6), 0, 0), t0).unwrap();
        answer(&mut table, tuple(1, 1, 1, 1, 6), t0);
        assert_eq!(
            table.expire(t0 + secs(5), 10),
            0,
            "nothing idle too long yet"
        );
        let now = t0 + secs(11);
        assert_eq!(table.expire(now, 2), 2);
        assert_eq!(table.len(), 5);
        assert_eq!(table.expire(now, 0), 0);
        assert_eq!(table.expire(now, 10), 4);
        assert_eq!(table.len(), 1, "the TCP flow lives 100 s");
        assert_eq!(table.expire(now, 10), 0);
        table.check_invariants();
    }

    #[test]
    fn time_running_backwards_does_not_revive_or_corrupt() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, TIMEOUTS);
        let (a, b) = (tuple(1, 1, 2, 1, 17), tuple(1, 2, 2, 2, 17));
        table.insert(flow(a, 0, 0), t0 + secs(20)).unwrap();
        answer(&mut table, a, t0 + secs(20));
        table.insert(flow(b, 0, 0), t0).unwrap();
        answer(&mut table, b, t0);
        table.check_invariants();
        assert!(matches!(
            table.lookup(&a, t0 + secs(30), 0),
            Lookup::Hit { .. }
        ));
        assert_eq!(table.lookup(&b, t0 + secs(40), 0), Lookup::Miss);
    }

    #[test]
    fn churn_keeps_the_index_consistent() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(1000, TIMEOUTS);
        let t = |i: u16| tuple((i % 251) as u8, i, 7, 443, 6);
        for round in 0..4u16 {
            for i in 0..1000 {
                table.insert(flow(t(i), round, 0), t0).unwrap();
            }
            for i in (round..1000).step_by(3) {
                table.remove(&t(i));
            }
            for i in 0..1000 {
                let hit = matches!(table.lookup(&t(i), t0, 0), Lookup::Hit { .. });
                assert_eq!(
                    hit,
                    i < round || (i - round) % 3 != 0,
                    "round {round} flow {i}"
                );
            }
            table.check_invariants();
        }
    }

    #[test]
    fn timeouts_from_dataplane_config() {
        let d = Dataplane::default();
        let t = Timeouts::from(&d);
        assert_eq!((t.tcp, t.udp, t.icmp), (secs(7200), secs(120), secs(30)));
        assert_eq!(t.other, d.udp_idle_timeout);
        assert_eq!(t.unreplied, UNREPLIED_TIMEOUT);
        assert_eq!(UNREPLIED_TIMEOUT, secs(30));
    }

    #[test]
    fn a_new_flow_is_unreplied_until_the_responder_speaks() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, TIMEOUTS);
        let t = tuple(1, 40000, 2, 443, 6);
        table.insert(flow(t, 0, 0), t0).unwrap();
        assert!(matches!(
            table.lookup(&t, t0 + secs(3), 0),
            Lookup::Hit { reply: false, .. }
        ));
        assert_eq!(
            table.lookup(&t, t0 + secs(7), 0),
            Lookup::Miss,
            "the opener's own packets do not make it replied"
        );
        table.insert(flow(t, 0, 0), t0 + secs(7)).unwrap();
        answer(&mut table, t, t0 + secs(8));
        assert!(matches!(
            table.lookup(&t, t0 + secs(50), 0),
            Lookup::Hit { .. }
        ));
        table.check_invariants();
    }

    #[test]
    fn an_unreplied_flow_dies_after_30_s_while_a_replied_tcp_flow_lives_on() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, Timeouts::from(&Dataplane::default()));
        let (silent, answered) = (tuple(1, 40000, 2, 443, 6), tuple(1, 40001, 2, 443, 6));
        table.insert(flow(silent, 0, 0), t0).unwrap();
        table.insert(flow(answered, 0, 0), t0).unwrap();
        answer(&mut table, answered, t0);
        let later = t0 + UNREPLIED_TIMEOUT + Duration::from_millis(1);
        assert_eq!(table.lookup(&silent, later, 0), Lookup::Miss);
        assert!(matches!(
            table.lookup(&answered, later, 0),
            Lookup::Hit { .. }
        ));
        let much_later = later + secs(7000);
        assert!(matches!(
            table.lookup(&reverse(answered), much_later, 0),
            Lookup::Hit { reply: true, .. }
        ));
        assert_eq!(table.len(), 1);
        table.check_invariants();
    }

    #[test]
    fn a_flooding_opener_cannot_push_out_replied_flows() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(8, TIMEOUTS);
        let established = tuple(9, 5000, 2, 443, 6);
        table.insert(flow(established, 0, 0), t0).unwrap();
        answer(&mut table, established, t0);
        let flood = |port: u16| tuple(1, port, 2, 443, 6);
        for port in 1..=200 {
            assert_eq!(table.insert(flow(flood(port), 0, 0), t0), Ok(()), "{port}");
            assert_eq!(table.len(), table.capacity().min(port as usize + 1));
        }
        assert!(matches!(
            table.lookup(&established, t0, 0),
            Lookup::Hit { .. }
        ));
        for port in 1..=193 {
            assert!(
                !table.contains(&flood(port)),
                "{port}: older ones dropped early"
            );
        }
        for port in 194..=200 {
            assert!(table.contains(&flood(port)), "{port}: newest kept");
        }
        let newcomer = tuple(3, 6000, 2, 80, 17);
        table.insert(flow(newcomer, 0, 0), t0).unwrap();
        assert!(table.contains(&newcomer) && !table.contains(&flood(194)));
        answer(&mut table, newcomer, t0);
        table.check_invariants();
    }

    #[test]
    fn early_drop_waits_for_dead_entries_and_stops_at_replied_ones() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(3, TIMEOUTS);
        let (dead, replied, fresh) = (
            tuple(1, 1, 2, 1, 17),
            tuple(1, 2, 2, 2, 6),
            tuple(1, 3, 2, 3, 6),
        );
        table.insert(flow(dead, 0, 0), t0).unwrap();
        answer(&mut table, dead, t0);
        table.insert(flow(replied, 0, 0), t0 + secs(8)).unwrap();
        answer(&mut table, replied, t0 + secs(8));
        table.insert(flow(fresh, 0, 0), t0 + secs(11)).unwrap();
        table
            .insert(flow(tuple(5, 5, 5, 5, 1), 0, 0), t0 + secs(11))
            .unwrap();
        assert!(
            !table.contains(&dead) && table.contains(&fresh),
            "a dead replied entry goes before a live unreplied one"
        );
        assert_eq!(
            table.insert(flow(replied, 0, 0), t0 + secs(11)),
            Ok(()),
            "re-admission keeps it replied"
        );
        answer(&mut table, tuple(5, 5, 5, 5, 1), t0 + secs(11));
        table
            .insert(flow(tuple(6, 6, 6, 6, 6), 0, 0), t0 + secs(11))
            .unwrap();
        assert!(!table.contains(&fresh));
        answer(&mut table, tuple(6, 6, 6, 6, 6), t0 + secs(11));
        assert_eq!(
            table.insert(flow(tuple(7, 7, 7, 7, 6), 0, 0), t0 + secs(11)),
            Err(Full),
            "all live and replied"
        );
        assert!(matches!(
            table.lookup(&replied, t0 + secs(60), 0),
            Lookup::Hit { .. }
        ));
        table.check_invariants();
    }

    #[test]
    fn set_timeouts_takes_effect_in_place() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, TIMEOUTS);
        let (udp, tcp, silent) = (
            tuple(1, 1, 2, 1, 17),
            tuple(1, 2, 2, 2, 6),
            tuple(1, 3, 2, 3, 6),
        );
        for t in [udp, tcp] {
            table.insert(flow(t, 0, 0), t0).unwrap();
            answer(&mut table, t, t0);
        }
        table.insert(flow(silent, 0, 0), t0).unwrap();
        table.set_timeouts(Timeouts {
            udp: secs(4),
            unreplied: secs(60),
            ..TIMEOUTS
        });
        assert_eq!(table.expire(t0 + secs(5), 10), 1);
        assert!(!table.contains(&udp));
        assert!(matches!(
            table.lookup(&silent, t0 + secs(50), 0),
            Lookup::Hit { reply: false, .. }
        ));
        table.set_timeouts(Timeouts {
            tcp: secs(5),
            ..TIMEOUTS
        });
        assert_eq!(table.lookup(&tcp, t0 + secs(50), 0), Lookup::Miss);
        table.set_timeouts(TIMEOUTS);
        assert!(matches!(
            table.lookup(&silent, t0 + secs(52), 0),
            Lookup::Hit { .. }
        ));
        assert_eq!(table.len(), 1);
        table.check_invariants();
    }

    #[test]
    fn resize_up_keeps_live_entries_their_times_and_order() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(5, TIMEOUTS);
        let gone = tuple(4, 4, 4, 4, 6);
        table.insert(flow(gone, 0, 0), t0).unwrap();
        let ts: Vec<Tuple> = (1..=3).map(|i| tuple(i, 1, 2, 1, 17)).collect();
        for (i, t) in ts.iter().enumerate() {
            table.insert(flow(*t, 0, 0), t0 + secs(i as u64)).unwrap();
            answer(&mut table, *t, t0 + secs(i as u64));
        }
        let silent = tuple(5, 5, 5, 5, 6);
        table.insert(flow(silent, 0, 0), t0 + secs(4)).unwrap();
        assert_eq!(table.len(), 5);
        assert_eq!(table.resize(16), 0, "no live entry dropped");
        assert_eq!((table.len(), table.capacity()), (4, 16));
        assert!(
            !table.contains(&gone),
            "unreplied since +0, dead at +4: not moved"
        );
        table.check_invariants();
        assert!(matches!(
            table.lookup(&silent, t0 + secs(7), 0),
            Lookup::Hit { reply: false, .. }
        ));
        assert!(matches!(
            table.lookup(&ts[2], t0 + secs(7), 0),
            Lookup::Hit { reply: false, .. }
        ));
        assert_eq!(table.expire(t0 + secs(11), 10), 2);
        assert!(!table.contains(&ts[0]), "last seen at +0, still");
        assert!(!table.contains(&silent), "still unreplied");
        assert!(table.contains(&ts[1]) && table.contains(&ts[2]));
        for i in 10..24 {
            table
                .insert(flow(tuple(i, 1, 2, 1, 1), 0, 0), t0 + secs(11))
                .unwrap();
        }
        assert_eq!(table.len(), 16);
        table.check_invariants();
    }

    #[test]
    fn resize_down_drops_unreplied_first_then_the_oldest() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(8, TIMEOUTS);
        let replied: Vec<Tuple> = [(1, 6), (2, 17), (3, 6), (4, 1)]
            .iter()
            .map(|&(i, p)| tuple(i, 1, 2, 1, p))
            .collect();
        for (i, t) in replied.iter().enumerate() {
            table.insert(flow(*t, 0, 0), t0 + secs(i as u64)).unwrap();
            answer(&mut table, *t, t0 + secs(i as u64));
        }
        let (u1, u2) = (tuple(8, 1, 2, 1, 6), tuple(9, 1, 2, 1, 6));
        table.insert(flow(u1, 0, 0), t0 + secs(3)).unwrap();
        table.insert(flow(u2, 0, 0), t0 + secs(4)).unwrap();
        assert_eq!(
            table.lookup(&replied[0], t0 + secs(4), 0),
            Lookup::Hit {
                flow: flow(replied[0], 0, 0),
                reply: false,
            }
        );
        assert_eq!(table.resize(5), 1);
        assert!(!table.contains(&u1) && table.contains(&u2));
        assert_eq!(table.resize(3), 2);
        assert!(!table.contains(&u2));
        assert!(
            !table.contains(&replied[1]),
            "oldest replied, across classes"
        );
        assert!(table.contains(&replied[0]), "refreshed at +4");
        assert_eq!((table.len(), table.capacity()), (3, 3));
        table.check_invariants();
        assert_eq!(table.resize(1), 2);
        assert!(table.contains(&replied[0]));
        assert_eq!(table.resize(0), 1);
        assert!(table.is_empty());
        assert_eq!(table.insert(flow(u1, 0, 0), t0 + secs(4)), Err(Full));
        assert_eq!(table.resize(2), 0);
        table.insert(flow(u1, 0, 0), t0 + secs(4)).unwrap();
        table.check_invariants();
    }

    #[test]
    fn resize_keeps_the_replied_state() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, TIMEOUTS);
        let (a, b) = (tuple(1, 1, 2, 1, 6), tuple(1, 2, 2, 2, 6));
        table.insert(flow(a, 0, 0), t0).unwrap();
        answer(&mut table, a, t0);
        table.insert(flow(b, 0, 0), t0).unwrap();
        assert_eq!(table.resize(2), 0);
        table.insert(flow(tuple(3, 3, 3, 3, 6), 0, 0), t0).unwrap();
        assert!(
            table.contains(&a) && !table.contains(&b),
            "b was the unreplied one"
        );
        assert!(matches!(
            table.lookup(&a, t0 + secs(50), 0),
            Lookup::Hit { .. }
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert {
            t: Tuple,
            generation: u64,
            rule: u16,
        },
        Lookup {
            t: Tuple,
            generation: u64,
        },
        Remove {
            t: Tuple,
        },
        Expire {
            budget: usize,
        },
        Advance {
            secs: u64,
        },
        Rewind {
            secs: u64,
        },
        Resize {
            capacity: usize,
        },
        SetTimeouts {
            timeouts: Timeouts,
        },
    }

    fn small_tuple() -> impl Strategy<Value = Tuple> {
        let end = prop::sample::select(vec![(1u8, 1000u16), (2, 1000), (2, 2000), (3, 1000)]);
        let protocol = prop_oneof![3 => prop::sample::select(vec![1u8, 6, 17]), 1 => Just(47)];
        (end.clone(), end, protocol).prop_map(|((s, sp), (d, dp), protocol)| Tuple {
            src: Ipv4Addr::new(100, 64, 0, s),
            src_port: sp,
            dst: Ipv4Addr::new(100, 64, 0, d),
            dst_port: dp,
            protocol,
        })
    }

    fn timeouts() -> impl Strategy<Value = Timeouts> {
        prop::array::uniform5(1u64..15).prop_map(|[tcp, udp, icmp, other, unreplied]| Timeouts {
            tcp: secs(tcp),
            udp: secs(udp),
            icmp: secs(icmp),
            other: secs(other),
            unreplied: secs(unreplied),
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (small_tuple(), prop_oneof![3 => Just(0u64), 1 => 1u64..3], 0u16..3)
                .prop_map(|(t, generation, rule)| Op::Insert { t, generation, rule }),
            7 => (small_tuple(), prop_oneof![3 => Just(0u64), 1 => 1u64..3])
                .prop_map(|(t, generation)| Op::Lookup { t, generation }),
            1 => small_tuple().prop_map(|t| Op::Remove { t }),
            1 => (0usize..4).prop_map(|budget| Op::Expire { budget }),
            3 => (0u64..4).prop_map(|secs| Op::Advance { secs }),
            1 => (1u64..3).prop_map(|secs| Op::Rewind { secs }),
            1 => (0usize..8).prop_map(|capacity| Op::Resize { capacity }),
            1 => timeouts().prop_map(|timeouts| Op::SetTimeouts { timeouts }),
        ]
    }

    const SMALL: Timeouts = Timeouts {
        tcp: Duration::from_secs(12),
        udp: Duration::from_secs(6),
        icmp: Duration::from_secs(2),
        other: Duration::from_secs(4),
        unreplied: Duration::from_secs(3),
    };

    /// The naive model: a map from the direction-free flow name to the flow, its last-seen
    /// time, whether its responder has spoken and when it was last touched (a global counter),
    /// with the table's rule that time never runs backwards.
    type Name = (Ipv4Addr, u16, Ipv4Addr, u16, u8);

    #[derive(Debug, Clone, Copy)]
    struct Entry {
        flow: Flow,
        last_seen: Instant,
        replied: bool,
        touched: u64,
    }

    struct Model {
        flows: HashMap<Name, Entry>,
        /// The latest time passed to the table, as in [`FlowTable`].
        clock: Option<Instant>,
        timeouts: Timeouts,
        capacity: usize,
        touches: u64,
    }

    impl Model {
        fn name(t: &Tuple) -> Name {
            let (a, b) = ((t.src, t.src_port), (t.dst, t.dst_port));
            let ((x, xp), (y, yp)) = if a < b { (a, b) } else { (b, a) };
            (x, xp, y, yp, t.protocol)
        }

        fn tuple(name: Name) -> Tuple {
            let (src, src_port, dst, dst_port, protocol) = name;
            Tuple {
                src,
                src_port,
                dst,
                dst_port,
                protocol,
            }
        }

        fn dead(&self, e: &Entry) -> bool {
            let timeout = match (e.replied, e.flow.opener.protocol) {
                (false, _) => self.timeouts.unreplied,
                (true, 6) => self.timeouts.tcp,
                (true, 17) => self.timeouts.udp,
                (true, 1) => self.timeouts.icmp,
                (true, _) => self.timeouts.other,
            };
            self.clock
                .is_some_and(|c| c.saturating_duration_since(e.last_seen) > timeout)
        }

        fn dead_count(&self) -> usize {
            self.flows.values().filter(|e| self.dead(e)).count()
        }

        fn store(&mut self, name: Name, flow: Flow, replied: bool) {
            self.touches += 1;
            let e = Entry {
                flow,
                last_seen: self.clock.unwrap(),
                replied,
                touched: self.touches,
            };
            self.flows.insert(name, e);
        }

        /// The live unreplied entry touched longest ago.
        fn oldest_unreplied(&self) -> Option<Name> {
            self.flows
                .iter()
                .filter(|(_, e)| !e.replied && !self.dead(e))
                .min_by_key(|(_, e)| e.touched)
                .map(|(n, _)| *n)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn flow_table_agrees_with_a_naive_model(
            capacity in prop_oneof![1 => Just(0usize), 8 => 1usize..7],
            ops in prop::collection::vec(op(), 1..150),
        ) {
            let t0 = Instant::now();
            let mut table = FlowTable::new(capacity, SMALL);
            let mut slab = table.slots.capacity();
            let mut model = Model {
                flows: HashMap::new(),
                clock: None,
                timeouts: SMALL,
                capacity,
                touches: 0,
            };
            let mut now = t0;
            for op in &ops {
                if matches!(op, Op::Insert { .. } | Op::Lookup { .. } | Op::Expire { .. }) {
                    model.clock = Some(model.clock.map_or(now, |c| c.max(now)));
                }
                match *op {
                    Op::Insert { t, generation, rule } => {
                        let f = flow(t, rule, generation);
                        let name = Model::name(&t);
                        let existing = model.flows.get(&name).copied();
                        let expected = if existing.is_some()
                            || model.flows.len() < model.capacity
                            || model.dead_count() > 0
                        {
                            Ok(())
                        } else if let Some(victim) = model.oldest_unreplied() {
                            model.flows.remove(&victim);
                            Ok(())
                        } else {
                            Err(Full)
                        };
                        let got = table.insert(f, now);
                        prop_assert_eq!(got, expected, "{:?}", op);
                        if got.is_ok() {
                            model.store(name, f, existing.is_some_and(|e| e.replied));
                        }
                    }
                    Op::Lookup { t, generation } => {
                        let name = Model::name(&t);
                        let expected = match model.flows.get(&name).copied() {
                            Some(e) if !model.dead(&e) => {
                                let f = e.flow;
                                let reply = t != f.opener;
                                model.store(name, f, e.replied || reply);
                                if f.generation == generation {
                                    Lookup::Hit { flow: f, reply }
                                } else {
                                    Lookup::Stale { flow: f, reply }
                                }
                            }
                            _ => Lookup::Miss,
                        };
                        prop_assert_eq!(table.lookup(&t, now, generation), expected, "{:?}", op);
                    }
                    Op::Remove { t } => {
                        model.flows.remove(&Model::name(&t));
                        table.remove(&t);
                    }
                    Op::Expire { budget } => {
                        let expected = budget.min(model.dead_count());
                        prop_assert_eq!(table.expire(now, budget), expected);
                    }
                    Op::Advance { secs: s } => now += secs(s),
                    Op::Rewind { secs: s } => now = (now - secs(s)).max(t0),
                    Op::SetTimeouts { timeouts } => {
                        model.timeouts = timeouts;
                        table.set_timeouts(timeouts);
                    }
                    Op::Resize { capacity } => {
                        let live: Vec<(Name, Entry)> = model
                            .flows
                            .iter()
                            .filter(|(_, e)| !model.dead(e))
                            .map(|(n, e)| (*n, *e))
                            .collect();
                        let excess = live.len().saturating_sub(capacity);
                        prop_assert_eq!(table.resize(capacity), excess, "{:?}", op);
                        prop_assert_eq!(table.capacity(), capacity);
                        let (kept, dropped): (Vec<_>, Vec<_>) =
                            live.iter().partition(|(n, _)| table.contains(&Model::tuple(*n)));
                        prop_assert_eq!(dropped.len(), excess);
                        for (_, d) in &dropped {
                            for (_, k) in &kept {
                                match (d.replied, k.replied) {
                                    (false, false) => prop_assert!(d.touched < k.touched),
                                    (true, false) => prop_assert!(false, "unreplied kept over replied"),
                                    (true, true) => prop_assert!(d.last_seen <= k.last_seen),
                                    (false, true) => {}
                                }
                            }
                        }
                        model.flows = kept.into_iter().collect();
                        model.capacity = capacity;
                        slab = table.slots.capacity();
                    }
                }
                // The table may drop dead entries at any time, never live ones: follow its choice.
                let names: Vec<_> = model.flows.keys().copied().collect();
                for name in names {
                    if !table.contains(&Model::tuple(name)) {
                        let e = model.flows[&name];
                        prop_assert!(model.dead(&e), "live flow {:?} lost after {:?}", name, op);
                        model.flows.remove(&name);
                    }
                }
                prop_assert_eq!(table.len(), model.flows.len(), "after {:?}", op);
                prop_assert!(table.len() <= model.capacity);
                prop_assert_eq!(table.slots.capacity(), slab, "the slab never reallocates");
                table.check_invariants();
            }
        }
    }
}

#[cfg(test)]
mod peek_tests {
    use super::*;

    #[test]
    fn peek_neither_refreshes_nor_answers() {
        let t0 = Instant::now();
        let timeouts = Timeouts {
            tcp: Duration::from_secs(3600),
            udp: Duration::from_secs(60),
            icmp: Duration::from_secs(30),
            other: Duration::from_secs(60),
            unreplied: Duration::from_secs(30),
        };
        let mut table = FlowTable::new(4, timeouts);
        let opener = Tuple {
            src: "100.64.0.2".parse().unwrap(),
            src_port: 1000,
            dst: "100.65.0.3".parse().unwrap(),
            dst_port: 104,
            protocol: 6,
        };
        let reply = Tuple {
            src: opener.dst,
            src_port: opener.dst_port,
            dst: opener.src,
            dst_port: opener.src_port,
            protocol: 6,
        };
        table
            .insert(
                Flow {
                    opener,
                    facility: None,
                    rule: crate::ids::RuleId(0),
                    generation: 1,
                },
                t0,
            )
            .unwrap();
        assert!(matches!(
            table.peek(&reply, t0 + Duration::from_secs(20), 1),
            Lookup::Hit { reply: true, .. }
        ));
        // Still unreplied and not refreshed: gone 30 s after the insert.
        assert_eq!(
            table.lookup(&opener, t0 + Duration::from_secs(31), 1),
            Lookup::Miss
        );
    }
}
