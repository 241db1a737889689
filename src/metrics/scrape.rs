//! Building blocks for collectors that read their values at scrape time (the facility
//! registry's, the agreements', the audit trail's): one metric family of gauges or counters,
//! each metric with its labels.

use std::collections::HashMap;

use prometheus::core::Desc;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// A metric's name and help text.
pub type Def = (&'static str, &'static str);

/// The description of `def` with `labels` (for `Collector::desc`).
pub fn desc((name, help): Def, labels: &[&str]) -> prometheus::Result<Desc> {
    Desc::new(
        name.to_owned(),
        help.to_owned(),
        labels.iter().map(|l| (*l).to_owned()).collect(),
        HashMap::new(),
    )
}

fn labelled(labels: &[(&str, &str)]) -> Metric {
    Metric::from_label(
        labels
            .iter()
            .map(|(n, v)| {
                let mut p = LabelPair::default();
                p.set_name((*n).to_owned());
                p.set_value((*v).to_owned());
                p
            })
            .collect(),
    )
}

/// A gauge of `value` with `labels`.
pub fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = labelled(labels);
    m.set_gauge(g);
    m
}

/// A counter of `value` with `labels`.
pub fn counter(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value);
    let mut m = labelled(labels);
    m.set_counter(c);
    m
}

/// The family `def` of `kind` holding `metrics`.
pub fn family((name, help): Def, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}
