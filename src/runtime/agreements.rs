//! Agreements at run time: which are in force, told to the logs (and the audit trail) when
//! a window opens or closes and when a reload adds, removes or changes one. The data path
//! enforces the windows itself (`Gateway::set_wall_clock`); this is the record of it.

use crate::config::{Agreement, Config};
use crate::facility::format_unix;

/// What happened to an agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgreementChange {
    pub name: String,
    pub consumer: String,
    pub provider: String,
    /// `added`, `removed`, `changed`, `in_force`, `out_of_force`.
    pub change: &'static str,
    pub detail: String,
}

pub(crate) struct AgreementWatch {
    agreements: Vec<Agreement>,
    in_force: Vec<bool>,
}

/// One line on an agreement's standing at `now`.
fn standing(a: &Agreement, now: u64) -> String {
    let window = match (a.valid_from, a.valid_until) {
        (None, None) => "no window".to_string(),
        (f, u) => format!(
            "window {} .. {}",
            f.map(format_unix).unwrap_or_else(|| "-".into()),
            u.map(format_unix).unwrap_or_else(|| "-".into())
        ),
    };
    if !a.approved() {
        return format!("not approved by both sides, grants nothing ({window})");
    }
    if a.in_force_at(now) {
        format!("in force ({window})")
    } else {
        format!("not in force now ({window})")
    }
}

impl AgreementWatch {
    /// The agreements of `config`, each logged with its standing at `now`, and reported as
    /// `added` (the audit trail's record of what the gateway started with).
    pub(crate) fn new(config: &Config, now: u64) -> (AgreementWatch, Vec<AgreementChange>) {
        let mut started = Vec::new();
        for a in &config.agreements {
            tracing::info!(
                agreement = a.name,
                consumer = a.consumer,
                provider = a.provider,
                "agreement {}",
                standing(a, now)
            );
            started.push(AgreementChange {
                name: a.name.clone(),
                consumer: a.consumer.clone(),
                provider: a.provider.clone(),
                change: "added",
                detail: format!("at start: {}", standing(a, now)),
            });
        }
        let watch = AgreementWatch {
            in_force: config
                .agreements
                .iter()
                .map(|a| a.in_force_at(now))
                .collect(),
            agreements: config.agreements.clone(),
        };
        (watch, started)
    }

    /// Takes a reloaded configuration's agreements; what was added, removed or changed
    /// (logged).
    pub(crate) fn reload(&mut self, config: &Config, now: u64) -> Vec<AgreementChange> {
        let mut out = Vec::new();
        let change = |a: &Agreement, change, detail: String| AgreementChange {
            name: a.name.clone(),
            consumer: a.consumer.clone(),
            provider: a.provider.clone(),
            change,
            detail,
        };
        for old in &self.agreements {
            if !config.agreements.iter().any(|a| a.name == old.name) {
                out.push(change(old, "removed", "removed by a reload".into()));
            }
        }
        for a in &config.agreements {
            match self.agreements.iter().find(|o| o.name == a.name) {
                None => out.push(change(a, "added", standing(a, now))),
                Some(o) if o != a => out.push(change(a, "changed", standing(a, now))),
                Some(_) => {}
            }
        }
        for c in &out {
            log(c);
        }
        self.in_force = config
            .agreements
            .iter()
            .map(|a| a.in_force_at(now))
            .collect();
        self.agreements = config.agreements.clone();
        out
    }

    /// The agreements whose window opened or closed since the last call (logged).
    pub(crate) fn poll(&mut self, now: u64) -> Vec<AgreementChange> {
        let mut out = Vec::new();
        for (a, was) in self.agreements.iter().zip(self.in_force.iter_mut()) {
            let is = a.in_force_at(now);
            if is != *was {
                *was = is;
                out.push(AgreementChange {
                    name: a.name.clone(),
                    consumer: a.consumer.clone(),
                    provider: a.provider.clone(),
                    change: if is { "in_force" } else { "out_of_force" },
                    detail: standing(a, now),
                });
            }
        }
        for c in &out {
            log(c);
        }
        out
    }
}

impl AgreementWatch {
    /// Each agreement with its parties and whether it is in force (as of the last poll).
    pub(crate) fn states(&self) -> impl Iterator<Item = (&Agreement, bool)> {
        self.agreements.iter().zip(self.in_force.iter().copied())
    }
}

/// `ixgw_agreement_in_force{agreement,consumer,provider}` and `ixgw_agreements_active`, read
/// at scrape time.
pub(crate) struct AgreementCollector {
    watch: std::sync::Arc<std::sync::Mutex<AgreementWatch>>,
    descs: Vec<prometheus::core::Desc>,
}

const IN_FORCE: (&str, &str) = (
    "ixgw_agreement_in_force",
    "1 while the agreement grants (approved by both sides, inside its window), else 0",
);
const ACTIVE: (&str, &str) = ("ixgw_agreements_active", "Agreements in force");

impl AgreementCollector {
    pub(crate) fn new(
        watch: std::sync::Arc<std::sync::Mutex<AgreementWatch>>,
    ) -> prometheus::Result<AgreementCollector> {
        use crate::metrics::scrape::desc;
        Ok(AgreementCollector {
            watch,
            descs: vec![
                desc(IN_FORCE, &["agreement", "consumer", "provider"])?,
                desc(ACTIVE, &[])?,
            ],
        })
    }
}

impl prometheus::core::Collector for AgreementCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use crate::metrics::scrape::{family, gauge};
        use prometheus::proto::MetricType::GAUGE;
        let w = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        let mut each = Vec::new();
        let mut active = 0;
        for (a, on) in w.states() {
            active += usize::from(on);
            let labels = [
                ("agreement", a.name.as_str()),
                ("consumer", a.consumer.as_str()),
                ("provider", a.provider.as_str()),
            ];
            each.push(gauge(&labels, f64::from(u8::from(on))));
        }
        vec![
            family(IN_FORCE, GAUGE, each),
            family(ACTIVE, GAUGE, vec![gauge(&[], active as f64)]),
        ]
    }
}

/// Polls the agreements' windows every second until the task is aborted.
/// Also tells the audit trail which WireGuard peers went quiet ([`Events::poll`]).
pub(crate) async fn watch(
    watch: std::sync::Arc<std::sync::Mutex<AgreementWatch>>,
    events: std::sync::Arc<super::events::Events>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = super::ike::unix_now();
        let changes = watch.lock().unwrap_or_else(|e| e.into_inner()).poll(now);
        for c in &changes {
            events.agreement(c);
        }
        events.poll(std::time::Instant::now());
    }
}

fn log(c: &AgreementChange) {
    tracing::info!(
        agreement = c.name,
        consumer = c.consumer,
        provider = c.provider,
        change = c.change,
        "agreement {}: {}",
        c.change.replace('_', " "),
        c.detail
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, Policy, Source};

    fn agreement(name: &str, from: Option<u64>, until: Option<u64>) -> Agreement {
        Agreement {
            name: name.into(),
            consumer: "a".into(),
            provider: "b".into(),
            grant: Policy {
                name: name.into(),
                from: Source::default(),
                to: Destination::Services(vec![]),
                allow: vec![],
            },
            valid_from: from,
            valid_until: until,
            approved_by_provider: Some("b".into()),
            approved_by_consumer: Some("a".into()),
        }
    }

    fn config(agreements: Vec<Agreement>) -> Config {
        let mut c = crate::dataplane::fuzz::config_of(16, vec![], vec![], vec![]);
        c.agreements = agreements;
        c
    }

    #[test]
    fn windows_and_reloads_are_reported() {
        let (mut w, started) =
            AgreementWatch::new(&config(vec![agreement("w", Some(100), Some(200))]), 50);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].change, "added");
        assert_eq!(w.poll(99), []);
        let opened = w.poll(100);
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].change, "in_force");
        assert_eq!(w.poll(150), []);
        assert_eq!(w.poll(200)[0].change, "out_of_force");
        let mut changed = agreement("w", Some(100), Some(300));
        changed.approved_by_consumer = None;
        let c = w.reload(&config(vec![changed, agreement("new", None, None)]), 250);
        let kinds: Vec<(&str, &str)> = c.iter().map(|c| (c.name.as_str(), c.change)).collect();
        assert_eq!(kinds, [("w", "changed"), ("new", "added")]);
        assert!(
            c[0].detail.contains("not approved by both sides"),
            "{}",
            c[0].detail
        );
        assert_eq!(
            w.poll(260),
            [],
            "an unapproved agreement never comes into force"
        );
        let c = w.reload(&config(vec![]), 270);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.change == "removed"));
    }
}
