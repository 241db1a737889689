//! Metrics: per-worker hot counters ([`counters`]) and their Prometheus exposition, gathered
//! at scrape time.

#![forbid(unsafe_code)]

pub mod counters;

pub use counters::{Counters, HandshakeResult, PeerLabels, Traffic};
