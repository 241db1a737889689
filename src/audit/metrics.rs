//! The audit trail's metrics, read from its counters at scrape time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};

use super::Shared;

const RECORDS: (&str, &str) = (
    "ixgw_audit_records_total",
    "Audit records by sink (file, journald) and result: written, dropped (the queue was full: lost for every sink), failed (the sink refused them)",
);
const QUEUE: (&str, &str) = (
    "ixgw_audit_queue_length",
    "Audit records waiting to be written",
);

pub(crate) struct AuditCollector {
    shared: Arc<Shared>,
    descs: Vec<Desc>,
}

impl AuditCollector {
    pub(crate) fn new(shared: Arc<Shared>) -> prometheus::Result<AuditCollector> {
        let desc = |(name, help): (&str, &str), labels: &[&str]| {
            Desc::new(
                name.to_owned(),
                help.to_owned(),
                labels.iter().map(|l| l.to_string()).collect(),
                HashMap::new(),
            )
        };
        Ok(AuditCollector {
            shared,
            descs: vec![desc(RECORDS, &["sink", "result"])?, desc(QUEUE, &[])?],
        })
    }

    pub(crate) fn families(&self) -> Vec<MetricFamily> {
        let s = &self.shared;
        let dropped = s.dropped.load(Ordering::Relaxed);
        let mut records = Vec::new();
        for (sink, counters) in [("file", &s.file), ("journald", &s.journald)] {
            let Some(c) = counters else { continue };
            for (result, value) in [
                ("written", c.written.load(Ordering::Relaxed)),
                ("dropped", dropped),
                ("failed", c.failed.load(Ordering::Relaxed)),
            ] {
                let mut counter = proto::Counter::default();
                counter.set_value(value as f64);
                let mut m = Metric::from_label(vec![label("sink", sink), label("result", result)]);
                m.set_counter(counter);
                records.push(m);
            }
        }
        let mut g = proto::Gauge::default();
        g.set_value(s.queue_length() as f64);
        let mut queue = Metric::from_label(vec![]);
        queue.set_gauge(g);
        vec![
            family(RECORDS, MetricType::COUNTER, records),
            family(QUEUE, MetricType::GAUGE, vec![queue]),
        ]
    }
}

impl Collector for AuditCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families()
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn family((name, help): (&str, &str), kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}
