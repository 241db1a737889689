//! The bounded flow table: admitted flows keyed by their 5-tuple in exchange space.
//!
//! Exchange addresses are unique in the IX, so one canonical key (lower endpoint first)
//! names a flow in both directions: a reply finds the entry its request created. Each entry
//! remembers which side opened the flow, the facility of the opener and the generation the
//! verdict was computed at; an entry older than the current generation (reload, facility state
//! change) is reported `Stale` and must be re-evaluated by the caller.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

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

/// The table is full of live flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A bounded map of admitted flows. Never grows past its capacity; never allocates after
/// construction.
pub struct FlowTable {}

impl FlowTable {
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        let _ = (capacity, timeouts);
        todo!()
    }

    /// Looks the packet's flow up and, when found and not idle-expired, refreshes its last-seen
    /// time to `now`.
    pub fn lookup(&mut self, t: &Tuple, now: Instant, generation: u64) -> Lookup {
        let _ = (t, now, generation);
        todo!()
    }

    /// Admits (or re-admits) the flow whose first packet is `flow.opener`. When the table is
    /// full it first evicts idle-expired entries; `Err(Full)` if none can be evicted.
    pub fn insert(&mut self, flow: Flow, now: Instant) -> Result<(), Full> {
        let _ = (flow, now);
        todo!()
    }

    pub fn remove(&mut self, t: &Tuple) {
        let _ = t;
        todo!()
    }

    /// Removes up to `budget` idle-expired entries; returns how many were removed.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let _ = (now, budget);
        todo!()
    }

    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        todo!()
    }
}
