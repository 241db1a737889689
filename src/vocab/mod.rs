//! The shared vocabulary at the bottom of the layers: why a packet was dropped
//! ([`DropReason`]) and the per-worker hot counters ([`Counters`]) that every layer may name.
//! Handles and address newtypes live beside it in [`crate::ids`].
//!
//! Layer contract: imports nothing of the crate but [`crate::ids`]; no I/O, no clock reads,
//! no allocation on the counting paths. What is Prometheus-shaped (labels, sums over workers,
//! exposition) is [`crate::metrics`]' business, at scrape time.

#![forbid(unsafe_code)]

pub mod counters;
mod drop;

pub use counters::{
    ArpCounts, Counters, HandshakeResult, Names, PairTraffic, PeerLabels, PeerView, TenantFlows,
    Traffic,
};
pub use drop::DropReason;
