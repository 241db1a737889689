//! The audit trail's metrics, read from its counters at scrape time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::Shared;
use crate::metrics::scrape::{counter, desc, family, gauge};

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
                records.push(counter(&[("sink", sink), ("result", result)], value as f64));
            }
        }
        vec![
            family(RECORDS, MetricType::COUNTER, records),
            family(
                QUEUE,
                MetricType::GAUGE,
                vec![gauge(&[], s.queue_length() as f64)],
            ),
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
