//! Metrics: per-worker hot counters ([`counters`]), the [`MetricsHub`] that the workers publish
//! them to, and their Prometheus text exposition, gathered at scrape time.
//!
//! Layer: beside the control plane, above the data path. The data path only touches its own
//! [`Counters`] table (relaxed atomics, no lock, no allocation); everything Prometheus-shaped
//! (labels, strings, sums over workers) happens when `/metrics` is scraped.

#![forbid(unsafe_code)]

mod collector;
pub mod counters;
mod hub;

pub use collector::PEER_UP_WITHIN;
pub use counters::{Counters, HandshakeResult, PeerLabels, Traffic};
pub use hub::{MetricsHub, UnknownWorker};
