//! The bounded flow table: admitted flows keyed by their 5-tuple in exchange space, tracked
//! by state, with per-tenant and per-facility quotas.
//!
//! Exchange addresses are unique in the IX, so one canonical key (lower endpoint first)
//! names a flow in both directions: a reply finds the entry its request created. Each entry
//! remembers which side opened the flow, its [`Owner`] (the opener's tenant and facility), the
//! rule and the generation its verdict was computed at; an entry whose generation is not the
//! current one *for its owner* ([`Generation`]: the plan's, changed by a reload, and its
//! opener's facility's, changed by that facility's state) is reported `Stale` and must be
//! re-evaluated by the caller.
//!
//! For ICMP echo the caller puts the identifier in both ports, so that request and reply name
//! the same flow.
//!
//! States and classes ([`state`]): every lookup advances the flow's [`State`] with what the
//! packet says ([`Signal`]); the state puts the entry in one of seven classes, each with one
//! idle timeout: established TCP, UDP, ICMP, other protocols and half-closed TCP hold live
//! conversations; *unreplied* datagram flows and *transient* TCP flows (half-open, picked up
//! and unanswered, closed by RST or FINs) are the refuse of floods and scans.
//!
//! Room: a new flow is refused when its opener's tenant or facility already holds its quota
//! ([`Quotas`]) — so a flooding facility only locks itself out — and otherwise takes a free
//! slot, else the slot of a dead entry, else the slot of a live transient entry (an early
//! drop, as Linux conntrack does) of the tenant that holds the most flows, the one closest to
//! its deadline, so that a flood pays for the room and not the others' handshakes in
//! progress; only a table full of live conversations refuses one. Quotas count every entry the owner holds, dead ones not yet
//! removed included, so they hold exactly; a refused owner first has a few dead entries
//! removed.
//!
//! Liveness: an entry whose idle time (`now` − last seen) exceeds its class's timeout is
//! dead: lookups miss it and it may be removed at any time. Time passed in never runs
//! backwards inside the table: a `now` earlier than one already seen counts as that latest one.
//!
//! Shape: a slab of entries allocated at construction (and again only by
//! [`FlowTable::resize`]), an open-addressing index (linear probing, at most half full,
//! backward-shift deletion, so no tombstones and no rehash) keyed by a randomly seeded SipHash
//! of the canonical key, one intrusive LRU list per class, one per tenant and transient class,
//! and a flow count per tenant and per facility. Entries of one class share one timeout, so
//! each list is ordered by expiry and its head is the first to die: finding dead entries costs
//! O(1), the next transient victim O(tenants).

pub mod state;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::ids::{FacilityCode, FacilityId, RuleId, TenantId};

use state::{Class, CLASSES};
pub use state::{
    Signal, Start, State, Timeouts, TCP_HALF_CLOSED_TIMEOUT, TCP_TRANSIENT_TIMEOUT,
    UNREPLIED_TIMEOUT,
};

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

/// Who a flow counts against: the tenant and the facility (if any) of its opener, as indices
/// of the running plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub tenant: TenantId,
    pub facility: Option<FacilityId>,
}

/// The current verdict generation of a flow, by its owner.
pub trait Generation {
    fn of(&self, owner: &Owner) -> u64;
}

/// One generation for every flow.
impl Generation for u64 {
    #[inline]
    fn of(&self, _: &Owner) -> u64 {
        *self
    }
}

/// The verdict epoch (high 32 bits: the gateway bumps it with every plan and every agreement
/// window opening or closing) with the opener's facility's generation (low 32 bits): a reload
/// re-checks every flow, a facility's state change only that facility's.
#[derive(Debug, Clone, Copy)]
pub struct Generations<'a> {
    pub plan: u64,
    /// By [`FacilityId`].
    pub facilities: &'a [u32],
}

impl Generation for Generations<'_> {
    #[inline]
    fn of(&self, owner: &Owner) -> u64 {
        let facility = owner
            .facility
            .and_then(|f| self.facilities.get(f.index()).copied())
            .unwrap_or(0);
        (self.plan << 32) | u64::from(facility)
    }
}

/// An admitted flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The tuple of the flow's first packet (opener → responder).
    pub opener: Tuple,
    /// The facility of the opener, if known.
    pub facility: Option<FacilityCode>,
    /// Whom the flow counts against.
    pub owner: Owner,
    /// The rule that admitted it.
    pub rule: RuleId,
    /// The verdict's generation ([`Generation::of`] its owner when it was computed).
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
    /// A live flow whose verdict predates its owner's generation: re-evaluate, then
    /// [`FlowTable::insert`] again or [`FlowTable::remove`].
    Stale {
        flow: Flow,
        reply: bool,
    },
    Miss,
}

/// The most flows one tenant, and one facility, may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub per_tenant: usize,
    pub per_facility: usize,
}

impl Quotas {
    pub const UNLIMITED: Quotas = Quotas {
        per_tenant: usize::MAX,
        per_facility: usize::MAX,
    };
}

/// Why a new flow was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("flow table full of live conversations")]
    Full,
    #[error("the opener's tenant holds its flow quota")]
    TenantQuota,
    #[error("the opener's facility holds its flow quota")]
    FacilityQuota,
}

/// Dead entries removed when a new flow meets a quota, before the quota is asked again.
const QUOTA_EXPIRE_BUDGET: usize = 32;

const NIL: u32 = u32::MAX;
const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// The largest capacity a table accepts; larger requests are clamped to it.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Idle past its class's timeout.
    Idle,
    /// Closed (FINs both ways, a RST) and past its closing timeout.
    Closed,
    /// Evicted to make room for a new flow (or dropped by a shrinking resize).
    Evicted,
    /// The caller removed it ([`FlowTable::remove`]): re-evaluated and refused, or its first
    /// packet was not sent.
    Removed,
    /// Its opener belongs to no tenant of a new plan ([`FlowTable::reown`]).
    Orphaned,
}

/// A flow that left the table, with what it carried
/// ([`FlowTable::record_removals`]).
#[derive(Debug, Clone, Copy)]
pub struct Removed {
    pub flow: Flow,
    pub why: Removal,
    pub started: Instant,
    pub last_seen: Instant,
    /// Opener → responder, then back.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

/// Removed flows held for the caller between two [`FlowTable::take_removed`]; more are
/// counted as lost.
pub const REMOVED_BUFFER: usize = 4096;

#[derive(Clone, Copy)]
struct Slot {
    key: Key,
    hash: u64,
    flow: Flow,
    last_seen: Instant,
    /// When the flow was admitted.
    started: Instant,
    /// What was forwarded on it, opener → responder, then back ([`FlowTable::account`]).
    packets: [u64; 2],
    bytes: [u64; 2],
    state: State,
    class: Class,
    /// LRU neighbours within the slot's class (towards the head / the tail); `next` also links
    /// the free list.
    prev: u32,
    next: u32,
    /// The owner list the slot is linked into ([`FlowTable::owner_lru`] index), or `NIL`.
    olist: u32,
    /// LRU neighbours within that owner list.
    oprev: u32,
    onext: u32,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// A bounded map of admitted flows. Never grows past its capacity; never allocates after
/// construction except in [`FlowTable::resize`] and [`FlowTable::reown`].
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
    /// Per counted tenant, its transient entries in LRU order, one list per transient class
    /// (list `tenant × 2 + i` for [`Class::TRANSIENT`]`[i]`): the victims when the table is
    /// full come from the tenant that holds the most.
    owner_lru: Vec<List>,
    /// The latest `now` seen.
    clock: Option<Instant>,
    quotas: Quotas,
    /// Entries per tenant and per facility index; owners beyond these are neither counted
    /// nor limited.
    tenant_flows: Vec<u32>,
    facility_flows: Vec<u32>,
    /// The slot of the last flow found by a lookup or placed by an insert, and which way
    /// the packet went (for [`FlowTable::account`]); `NIL` after a peek or a removal.
    last: (u32, bool),
    /// Removed flows for the caller, when it asked for them ([`REMOVED_BUFFER`] at most).
    removed: Option<Vec<Removed>>,
    removed_lost: u64,
}

impl FlowTable {
    /// A table for up to `capacity` flows (clamped to [`MAX_CAPACITY`]) without quotas and
    /// without owners to count; all memory is allocated here.
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
            owner_lru: Vec::new(),
            clock: None,
            quotas: Quotas::UNLIMITED,
            tenant_flows: Vec::new(),
            facility_flows: Vec::new(),
            last: (NIL, false),
            removed: None,
            removed_lost: 0,
        }
    }

    /// Looks the packet's flow up and, when found and not idle-expired, refreshes its last-seen
    /// time to `now` and advances its state with `signal`. A dead entry found on the way is
    /// removed.
    pub fn lookup(
        &mut self,
        t: &Tuple,
        signal: Signal,
        now: Instant,
        generation: impl Generation,
    ) -> Lookup {
        self.find_flow(t, now, generation, Some(signal))
    }

    /// Like [`FlowTable::lookup`], but the entry is neither refreshed nor advanced: for
    /// packets that only refer to a flow (ICMP errors), which anyone on the path can forge.
    pub fn peek(&mut self, t: &Tuple, now: Instant, generation: impl Generation) -> Lookup {
        self.find_flow(t, now, generation, None)
    }

    fn find_flow(
        &mut self,
        t: &Tuple,
        now: Instant,
        generation: impl Generation,
        signal: Option<Signal>,
    ) -> Lookup {
        let now = self.tick(now);
        let key = Key::of(t);
        let Some((pos, slot)) = self.find(&key, self.hasher.hash_one(key)) else {
            return Lookup::Miss;
        };
        if self.is_dead(slot, now) {
            let why = self.expiry_of(slot);
            self.remove_at(pos, why);
            return Lookup::Miss;
        }
        let flow = self.slots[slot as usize].flow;
        let reply = *t != flow.opener;
        if let Some(signal) = signal {
            let state = self.slots[slot as usize].state.next(reply, signal);
            self.touch(slot, now, state);
            self.last = (slot, reply);
        } else {
            self.last = (NIL, false);
        }
        if flow.generation == generation.of(&flow.owner) {
            Lookup::Hit { flow, reply }
        } else {
            Lookup::Stale { flow, reply }
        }
    }

    /// The state of `t`'s flow, live or dead, without touching it.
    pub fn state(&self, t: &Tuple) -> Option<State> {
        let key = Key::of(t);
        let (_, slot) = self.find(&key, self.hasher.hash_one(key))?;
        Some(self.slots[slot as usize].state)
    }

    /// Admits the flow whose first packet is `flow.opener` and started it as `start`, or
    /// re-admits an existing flow (either direction).
    ///
    /// A new flow is refused when its owner's tenant or facility holds its quota (after up to
    /// 32 dead entries of anyone were removed), else it takes a free slot, a dead entry's, or
    /// a transient entry's of the tenant holding the most flows (see `evict_transient`);
    /// `Refused::Full` if every entry is a live conversation. Returns the owner of a live
    /// entry evicted to make room.
    ///
    /// Re-admitting an existing flow replaces its whole `Flow`, opener and owner included,
    /// keeps its state and is never refused: to keep the original orientation after a
    /// `Stale` re-evaluation, pass back the `opener` that [`FlowTable::lookup`] returned.
    pub fn insert(
        &mut self,
        flow: Flow,
        start: Start,
        now: Instant,
    ) -> Result<Option<Owner>, Refused> {
        let now = self.tick(now);
        let key = Key::of(&flow.opener);
        let hash = self.hasher.hash_one(key);
        if let Some((_, slot)) = self.find(&key, hash) {
            let old = self.slots[slot as usize].flow.owner;
            self.count(old, false);
            self.count(flow.owner, true);
            self.owner_unlink(slot);
            // The direction of the packet the caller looked the flow up with, if it did.
            let reply = self.last.0 == slot && self.last.1;
            self.slots[slot as usize].flow = flow;
            let state = self.slots[slot as usize].state;
            self.touch(slot, now, state);
            self.last = (slot, reply);
            return Ok(None);
        }
        if self.over_quota(flow.owner).is_some() {
            self.expire(now, QUOTA_EXPIRE_BUDGET);
            if let Some(refused) = self.over_quota(flow.owner) {
                return Err(refused);
            }
        }
        let mut evicted = None;
        if self.len == self.capacity && self.evict_dead(now).is_none() {
            evicted = Some(self.evict_transient().ok_or(Refused::Full)?);
        }
        let state = State::initial(start);
        let slot = self.place(Slot {
            key,
            hash,
            flow,
            last_seen: now,
            started: now,
            packets: [0; 2],
            bytes: [0; 2],
            state,
            class: state.class(key.protocol),
            prev: NIL,
            next: NIL,
            olist: NIL,
            oprev: NIL,
            onext: NIL,
        });
        self.last = (slot, false);
        Ok(evicted)
    }

    /// Forgets the flow of `t` (either direction), live or dead.
    pub fn remove(&mut self, t: &Tuple) {
        let key = Key::of(t);
        if let Some((pos, _)) = self.find(&key, self.hasher.hash_one(key)) {
            self.remove_at(pos, Removal::Removed);
        }
    }

    /// Forgets the flow of `t` without reporting it: a new flow whose first packet did not
    /// leave carried nothing and never started.
    pub fn forget(&mut self, t: &Tuple) {
        let key = Key::of(t);
        if let Some((pos, _)) = self.find(&key, self.hasher.hash_one(key)) {
            let kept = self.removed.take();
            self.remove_at(pos, Removal::Removed);
            self.removed = kept;
        }
    }

    /// Credits one forwarded packet of `len` bytes to the flow the last
    /// [`FlowTable::lookup`] found or the last [`FlowTable::insert`] placed, in the direction
    /// that packet went. Nothing after a peek or a removal. O(1).
    #[inline]
    pub fn account(&mut self, len: usize) {
        let (slot, reply) = self.last;
        if let Some(s) = self.slots.get_mut(slot as usize) {
            let d = usize::from(reply);
            s.packets[d] += 1;
            s.bytes[d] += len as u64;
        }
    }

    /// Keeps every flow that leaves the table from now on, with what it carried, for
    /// [`FlowTable::take_removed`] (at most [`REMOVED_BUFFER`] between two takes; more are
    /// counted in [`FlowTable::removed_lost`]). Allocates the buffer once.
    pub fn record_removals(&mut self) {
        if self.removed.is_none() {
            self.removed = Some(Vec::with_capacity(REMOVED_BUFFER));
        }
    }

    /// Hands each removed flow kept since the last call to `f`.
    pub fn take_removed(&mut self, mut f: impl FnMut(&Removed)) {
        if let Some(r) = self.removed.as_mut() {
            for e in r.iter() {
                f(e);
            }
            r.clear();
        }
    }

    /// Removed flows that found the buffer full, since the table was made.
    pub fn removed_lost(&self) -> u64 {
        self.removed_lost
    }

    /// Every flow still in the table, as if removed with `why` (a gateway stopping reports
    /// its flows' ends). The table is unchanged.
    pub fn each_flow(&self, why: Removal, mut f: impl FnMut(&Removed)) {
        for class in 0..CLASSES {
            let mut cur = self.lru[class].head;
            while cur != NIL {
                let s = &self.slots[cur as usize];
                f(&removed_of(s, why));
                cur = s.next;
            }
        }
    }

    /// Removes up to `budget` idle-expired entries, earliest deadline first; returns how many
    /// were removed.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let now = self.tick(now);
        let mut removed = 0;
        while removed < budget && self.evict_dead(now).is_some() {
            removed += 1;
        }
        removed
    }

    /// Replaces the timeouts in place. Entries keep their class and last-seen time, so some
    /// may now be dead, or alive again.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts.by_class();
    }

    /// Replaces the quotas in place. Owners above a lowered quota keep their flows but open
    /// no new one until they are below it.
    pub fn set_quotas(&mut self, quotas: Quotas) {
        self.quotas = quotas;
    }

    /// Assigns every entry to the owner `owner_of` gives it, counted among `tenants` tenants
    /// and `facilities` facilities (a new plan's numbering); entries it gives no owner are
    /// removed. Returns how many were removed. Allocates the counts; O(entries).
    pub fn reown(
        &mut self,
        tenants: usize,
        facilities: usize,
        mut owner_of: impl FnMut(&Flow) -> Option<Owner>,
    ) -> usize {
        self.tenant_flows = vec![0; tenants];
        self.facility_flows = vec![0; facilities];
        self.owner_lru = vec![EMPTY; tenants * Class::TRANSIENT.len()];
        let mut orphans = Vec::new();
        for class in 0..CLASSES {
            let mut cur = self.lru[class].head;
            while cur != NIL {
                let s = &mut self.slots[cur as usize];
                s.olist = NIL;
                let next = s.next;
                match owner_of(&s.flow) {
                    Some(owner) => {
                        s.flow.owner = owner;
                        self.count(owner, true);
                        self.owner_link_tail(cur);
                    }
                    None => orphans.push(cur),
                }
                cur = next;
            }
        }
        for &slot in &orphans {
            let Slot { key, hash, .. } = self.slots[slot as usize];
            if let Some((pos, _)) = self.find(&key, hash) {
                // Not counted above, so not uncounted by `remove_at` either.
                let owner = self.slots[slot as usize].flow.owner;
                self.count(owner, true);
                self.remove_at(pos, Removal::Orphaned);
            }
        }
        orphans.len()
    }

    /// Renumbers every entry's rule with `new` (a reload renumbers the rules; the name a
    /// flow record carries must stay the one that admitted it).
    pub fn remap_rules(&mut self, mut new: impl FnMut(RuleId) -> RuleId) {
        for class in 0..CLASSES {
            let mut cur = self.lru[class].head;
            while cur != NIL {
                let s = &mut self.slots[cur as usize];
                s.flow.rule = new(s.flow.rule);
                cur = s.next;
            }
        }
    }

    /// Moves every live entry (judged at the latest `now` the table has seen) into new storage
    /// for `capacity` flows (clamped to [`MAX_CAPACITY`]), keeping each entry's state, class,
    /// owner and last-seen time and each class's LRU order; dead entries are discarded. When
    /// the live entries outnumber `capacity`, transient entries go first (earliest deadline
    /// first), then the least recently seen others. Returns how many live entries were
    /// dropped. Allocates; O(entries).
    pub fn resize(&mut self, capacity: usize) -> usize {
        let capacity = capacity.min(MAX_CAPACITY);
        let mut first = [NIL; CLASSES];
        let mut live = 0usize;
        // Each list is ordered by expiry, so its dead entries form a prefix.
        let heads = self.lru.map(|l| l.head);
        for (class, head) in heads.into_iter().enumerate() {
            let mut cur = head;
            while cur != NIL && self.clock.is_some_and(|now| self.is_dead(cur, now)) {
                let why = self.expiry_of(cur);
                self.note_removed(cur, why);
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
            let transient = self.earliest(&first, |c| c.transient(), |s, d| s.last_seen + d);
            let victim = transient.or_else(|| self.earliest(&first, |_| true, |s, _| s.last_seen));
            let Some(class) = victim else { break };
            self.note_removed(first[class], Removal::Evicted);
            first[class] = self.slots[first[class] as usize].next;
        }
        let mut next = Self::with_hasher(capacity, self.timeouts, self.hasher.clone());
        next.clock = self.clock;
        next.removed = self.removed.take();
        next.removed_lost = self.removed_lost;
        next.quotas = self.quotas;
        next.tenant_flows = vec![0; self.tenant_flows.len()];
        next.facility_flows = vec![0; self.facility_flows.len()];
        next.owner_lru = vec![EMPTY; self.owner_lru.len()];
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

    /// The class, among those `eligible`, whose entry at `first` has the smallest `when`
    /// (given the entry and its class's timeout); the first such class on ties.
    fn earliest(
        &self,
        first: &[u32; CLASSES],
        eligible: impl Fn(Class) -> bool,
        when: impl Fn(&Slot, Duration) -> Instant,
    ) -> Option<usize> {
        let mut best: Option<(usize, Instant)> = None;
        for class in Class::ALL {
            let c = class as usize;
            if first[c] == NIL || !eligible(class) {
                continue;
            }
            let at = when(&self.slots[first[c] as usize], self.timeouts[c]);
            if best.is_none_or(|(_, b)| at < b) {
                best = Some((c, at));
            }
        }
        best.map(|(c, _)| c)
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

    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// Entries (live or not yet removed) counted against `tenant`.
    pub fn tenant_flows(&self, tenant: TenantId) -> usize {
        self.tenant_flows
            .get(tenant.index())
            .map_or(0, |&n| n as usize)
    }

    /// Entries (live or not yet removed) counted against `facility`.
    pub fn facility_flows(&self, facility: FacilityId) -> usize {
        self.facility_flows
            .get(facility.index())
            .map_or(0, |&n| n as usize)
    }

    fn over_quota(&self, owner: Owner) -> Option<Refused> {
        let at = |counts: &[u32], i: usize, quota: usize| {
            counts.get(i).is_some_and(|&n| n as usize >= quota)
        };
        if at(
            &self.tenant_flows,
            owner.tenant.index(),
            self.quotas.per_tenant,
        ) {
            return Some(Refused::TenantQuota);
        }
        match owner.facility {
            Some(f) if at(&self.facility_flows, f.index(), self.quotas.per_facility) => {
                Some(Refused::FacilityQuota)
            }
            _ => None,
        }
    }

    /// Counts one entry of `owner` in (`add`) or out.
    fn count(&mut self, owner: Owner, add: bool) {
        let bump = |n: &mut u32| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if let Some(n) = self.tenant_flows.get_mut(owner.tenant.index()) {
            bump(n);
        }
        if let Some(n) = owner
            .facility
            .and_then(|f| self.facility_flows.get_mut(f.index()))
        {
            bump(n);
        }
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
    fn place(&mut self, s: Slot) -> u32 {
        let hash = s.hash;
        self.count(s.flow.owner, true);
        let slot = self.alloc(Slot { olist: NIL, ..s });
        self.link_tail(slot);
        self.owner_link_tail(slot);
        let mask = self.index.len() - 1;
        let mut pos = hash as usize & mask;
        while self.index[pos] != NIL {
            pos = (pos + 1) & mask;
        }
        self.index[pos] = slot;
        self.len += 1;
        slot
    }

    /// Removes the dead head of some class, earliest deadline first; returns its slot.
    fn evict_dead(&mut self, now: Instant) -> Option<u32> {
        let heads = self.lru.map(|l| l.head);
        let dead = |c: Class| {
            let head = heads[c as usize];
            head != NIL && self.is_dead(head, now)
        };
        let class = self.earliest(&heads, dead, |s, d| s.last_seen + d)?;
        let why = self.expiry_of(heads[class]);
        self.evict(heads[class], why)
    }

    /// Keeps the flow of `slot`, leaving with `why`, for the caller (if it asked).
    fn note_removed(&mut self, slot: u32, why: Removal) {
        if let Some(r) = self.removed.as_mut() {
            if r.len() < REMOVED_BUFFER {
                r.push(removed_of(&self.slots[slot as usize], why));
            } else {
                self.removed_lost += 1;
            }
        }
    }

    /// Why an entry that timed out ended: closed, or idle.
    fn expiry_of(&self, slot: u32) -> Removal {
        match self.slots[slot as usize].state {
            State::Closed | State::Reset => Removal::Closed,
            _ => Removal::Idle,
        }
    }

    /// Removes a transient entry, live or dead, to make room: of the counted tenant that holds
    /// the most flows among those with transient entries (the lowest index on ties), the one
    /// closest to its deadline; if no counted tenant has one, the transient entry closest to
    /// its deadline. Returns the removed entry's owner. O(tenants).
    fn evict_transient(&mut self) -> Option<Owner> {
        let per = Class::TRANSIENT.len();
        let heaviest = (0..self.tenant_flows.len())
            .filter(|&t| {
                self.owner_lru[t * per..(t + 1) * per]
                    .iter()
                    .any(|l| l.head != NIL)
            })
            .min_by_key(|&t| (std::cmp::Reverse(self.tenant_flows[t]), t));
        let slot = match heaviest {
            Some(t) => {
                let mut first = [NIL; CLASSES];
                for (i, class) in Class::TRANSIENT.iter().enumerate() {
                    first[*class as usize] = self.owner_lru[t * per + i].head;
                }
                let class = self.earliest(&first, |_| true, |s, d| s.last_seen + d)?;
                first[class]
            }
            None => {
                let heads = self.lru.map(|l| l.head);
                heads[self.earliest(&heads, Class::transient, |s, d| s.last_seen + d)?]
            }
        };
        let owner = self.slots[slot as usize].flow.owner;
        self.evict(slot, Removal::Evicted).map(|_| owner)
    }

    fn evict(&mut self, slot: u32, why: Removal) -> Option<u32> {
        let Slot { key, hash, .. } = self.slots[slot as usize];
        let (pos, _) = self.find(&key, hash)?;
        self.remove_at(pos, why);
        Some(slot)
    }

    /// Removes the entry at index position `pos`, closing the probe gap by shifting later
    /// entries of the run back [Knuth, TAOCP vol. 3, § 6.4, Algorithm R].
    fn remove_at(&mut self, mut pos: usize, why: Removal) {
        let slot = self.index[pos];
        self.note_removed(slot, why);
        if self.last.0 == slot {
            self.last = (NIL, false);
        }
        self.unlink(slot);
        self.owner_unlink(slot);
        let owner = self.slots[slot as usize].flow.owner;
        self.count(owner, false);
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

    /// Marks the entry seen at `now` in `state` and moves it to the tail of its class.
    fn touch(&mut self, slot: u32, now: Instant, state: State) {
        self.unlink(slot);
        self.owner_unlink(slot);
        let s = &mut self.slots[slot as usize];
        s.last_seen = now;
        s.state = state;
        s.class = state.class(s.key.protocol);
        self.link_tail(slot);
        self.owner_link_tail(slot);
    }

    /// Links a transient entry of a counted tenant at the tail of its owner list.
    fn owner_link_tail(&mut self, slot: u32) {
        let s = &self.slots[slot as usize];
        let tenant = s.flow.owner.tenant.index();
        let Some(i) = s.class.transient_index() else {
            return;
        };
        if tenant >= self.tenant_flows.len() {
            return;
        }
        let list = tenant * Class::TRANSIENT.len() + i;
        let tail = self.owner_lru[list].tail;
        let s = &mut self.slots[slot as usize];
        (s.olist, s.oprev, s.onext) = (list as u32, tail, NIL);
        if tail == NIL {
            self.owner_lru[list].head = slot;
        } else {
            self.slots[tail as usize].onext = slot;
        }
        self.owner_lru[list].tail = slot;
    }

    fn owner_unlink(&mut self, slot: u32) {
        let Slot {
            olist,
            oprev,
            onext,
            ..
        } = self.slots[slot as usize];
        if olist == NIL {
            return;
        }
        let list = olist as usize;
        if oprev == NIL {
            self.owner_lru[list].head = onext;
        } else {
            self.slots[oprev as usize].onext = onext;
        }
        if onext == NIL {
            self.owner_lru[list].tail = oprev;
        } else {
            self.slots[onext as usize].oprev = oprev;
        }
        self.slots[slot as usize].olist = NIL;
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
mod tests;

/// What a slot reports when its flow leaves with `why`.
fn removed_of(s: &Slot, why: Removal) -> Removed {
    Removed {
        flow: s.flow,
        why,
        started: s.started,
        last_seen: s.last_seen,
        packets: s.packets,
        bytes: s.bytes,
    }
}
