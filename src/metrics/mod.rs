//! Metrics: the [`MetricsHub`] that the workers publish their hot counters
//! ([`crate::vocab::Counters`]) to, and their Prometheus text exposition, gathered at scrape
//! time.
//!
//! Layer: beside the control plane, above the data path. The data path only touches its own
//! [`Counters`] table (relaxed atomics, no lock, no allocation); everything Prometheus-shaped
//! (labels, strings, sums over workers) happens when `/metrics` is scraped.

#![forbid(unsafe_code)]

mod collector;
mod hub;
pub mod scrape;

pub use crate::vocab::{Counters, HandshakeResult, PeerLabels, TenantFlows, Traffic};
pub use collector::{peer_is_up, PeerCount, PEER_UP_WITHIN};
pub use hub::{MetricsHub, UnknownWorker};

/// Helpers for tests that read an exposition.
#[cfg(test)]
pub(crate) mod testing {
    /// Asserts that the exposition `text` has the whole line `line`.
    #[track_caller]
    pub(crate) fn assert_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line `{line}` in:\n{text}"
        );
    }
}
