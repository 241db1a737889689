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
mod text;

pub use crate::vocab::{Counters, HandshakeResult, PeerLabels, TenantFlows, Traffic};
pub use collector::{peer_is_up, PeerCount, PEER_UP_WITHIN};
pub(crate) use collector::{Def, Sink, TextCollector, Value};
pub use hub::{MetricsHub, UnknownWorker};

/// Helpers for tests that read an exposition.
#[cfg(test)]
pub(crate) mod testing {
    use prometheus::proto::MetricFamily;

    use super::collector::proto::ProtoSink;
    use super::text::TextSink;
    use super::TextCollector;

    /// Holds fixed families: a registry gathers, merges and sorts them as any collector's.
    pub(crate) struct Fixed(pub(crate) Vec<MetricFamily>);

    impl prometheus::core::Collector for Fixed {
        fn desc(&self) -> Vec<&prometheus::core::Desc> {
            Vec::new()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            self.0.clone()
        }
    }

    /// What `prometheus::TextEncoder` writes for `families` gathered by a registry.
    pub(crate) fn encoder_text(families: Vec<MetricFamily>) -> String {
        let registry = prometheus::Registry::new();
        registry.register(Box::new(Fixed(families))).unwrap();
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
    }

    /// `c`'s text as the hub writes it (its families in order of their names), and as
    /// `prometheus::TextEncoder` writes the same samples gathered by a registry.
    pub(crate) fn texts_of(c: &dyn TextCollector) -> (String, String) {
        let mut side = String::new();
        let mut chunks = TextSink::new(&mut side).chunks(c);
        chunks.sort_by_key(|(name, _)| *name);
        let written = chunks.into_iter().map(|(_, r)| &side[r]).collect();
        let mut proto = ProtoSink::default();
        c.write(&mut proto);
        (written, encoder_text(proto.families))
    }

    /// Asserts that the exposition `text` has the whole line `line`.
    #[track_caller]
    pub(crate) fn assert_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line `{line}` in:\n{text}"
        );
    }
}
