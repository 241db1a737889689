//! The metrics hub: the meeting point of the data-path workers, the control plane and the
//! scraper.
//!
//! * Each worker owns one slot. It writes its [`Counters`] table without any coordination and,
//!   after a reload, publishes the successor table with [`MetricsHub::publish`]; the slot is
//!   an `ArcSwap`, so publishing is one atomic pointer store and the scraper never blocks it.
//! * The control plane records reloads and sizes through ordinary `prometheus` metrics held in
//!   the hub's [`Registry`], which other modules may also register into.
//! * The scraper calls [`MetricsHub::encode`]; the hot counters are summed over all workers
//!   only then, by the collector in [`super::collector`].
//!
//! The hub reads no clock: times of reloads come in as parameters. The only clock read of
//! the metrics layer is the scrape's own "now" inside the collector, needed to turn monotonic
//! handshake times into Unix time.
//!
//! The registry also holds the process collector (`process_*`: CPU seconds, resident and
//! virtual memory, open and maximum file descriptors, threads, start time), read from
//! `/proc/self` at scrape time.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::collector::{self, HotCollector, PeerCount};
use crate::vocab::Counters;

/// [`MetricsHub::publish`] was given a worker index the hub has no slot for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no data-path worker {index}: the metrics hub has {workers} slots")]
pub struct UnknownWorker {
    pub index: usize,
    pub workers: usize,
}

/// Shared by the data-path workers (publishers), the control plane and the admin listener.
pub struct MetricsHub {
    slots: Arc<[ArcSwap<Counters>]>,
    registry: Registry,
    reloads: IntCounterVec,
    last_reload_success: Gauge,
    /// 1 while the last reload succeeded (or none was tried), 0 after a failed one.
    last_reload_ok: IntGauge,
    flow_table_capacity: IntGauge,
    flow_quota: IntGaugeVec,
}

impl fmt::Debug for MetricsHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsHub")
            .field("workers", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl MetricsHub {
    /// A hub with one slot per worker, holding each worker's first table. Every worker must
    /// have a table of its own: tables are summed, so a shared one would be counted twice.
    pub fn new(tables: impl IntoIterator<Item = Arc<Counters>>) -> Self {
        let slots = tables.into_iter().map(ArcSwap::new).collect();
        Self::build(slots).expect("the metric definitions are static and valid")
    }

    fn build(slots: Arc<[ArcSwap<Counters>]>) -> prometheus::Result<Self> {
        let registry = Registry::new();

        let reloads = IntCounterVec::new(
            Opts::new(
                "ixgw_config_reloads_total",
                "Configuration reloads (SIGHUP or admin API), by result; a failed reload keeps the running plan.",
            ),
            &["result"],
        )?;
        for result in ["ok", "failed"] {
            reloads.with_label_values(&[result]);
        }
        let last_reload_success = Gauge::new(
            "ixgw_config_last_reload_success_timestamp_seconds",
            "Unix time at which the running configuration was loaded (at start-up or by the last successful reload).",
        )?;
        let last_reload_ok = IntGauge::new(
            "ixgw_config_last_reload_successful",
            "1 if the last configuration reload succeeded (or none was tried since the start), 0 if it was rejected: the file on disk is then not what runs.",
        )?;
        last_reload_ok.set(1);
        let build_info = IntGaugeVec::new(
            Opts::new(
                "ixgw_build_info",
                "Always 1; the labels describe the running ixgw build.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let flow_table_capacity = IntGauge::new(
            "ixgw_flow_table_capacity",
            "Flows the data path's flow tables can hold, summed over workers.",
        )?;

        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(last_reload_success.clone()))?;
        registry.register(Box::new(last_reload_ok.clone()))?;
        registry.register(Box::new(build_info))?;
        let flow_quota = IntGaugeVec::new(
            Opts::new(
                "ixgw_flow_quota",
                "The most flows one tenant, or one facility, may hold in a worker's flow table.",
            ),
            &["scope"],
        )?;

        registry.register(Box::new(flow_table_capacity.clone()))?;
        registry.register(Box::new(flow_quota.clone()))?;
        registry.register(Box::new(HotCollector::new(Arc::clone(&slots))?))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(MetricsHub {
            slots,
            registry,
            reloads,
            last_reload_success,
            last_reload_ok,
            flow_table_capacity,
            flow_quota,
        })
    }

    /// The number of worker slots.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Makes `table` worker `index`'s current table; the next scrape reads it. The worker
    /// builds it with [`Counters::successor`] of its previous table so counts carry over.
    pub fn publish(&self, index: usize, table: Arc<Counters>) -> Result<(), UnknownWorker> {
        let slot = self.slots.get(index).ok_or(UnknownWorker {
            index,
            workers: self.slots.len(),
        })?;
        slot.store(table);
        Ok(())
    }

    /// The peers configured and up at the monotonic instant `now`, counted as the
    /// `ixgw_peers_configured` and `ixgw_peers_up` gauges count them.
    pub fn peer_count(&self, now: Instant) -> PeerCount {
        collector::peer_count(&self.slots, now)
    }

    /// Worker `index`'s current table.
    pub fn current(&self, index: usize) -> Option<Arc<Counters>> {
        self.slots.get(index).map(ArcSwap::load_full)
    }

    /// The configuration loaded at start-up became the running plan at `at`.
    pub fn config_loaded(&self, at: SystemTime) {
        self.last_reload_success.set(unix_seconds(at));
    }

    /// A reload succeeded at `at`: the new plan runs.
    pub fn reload_succeeded(&self, at: SystemTime) {
        self.reloads.with_label_values(&["ok"]).inc();
        self.last_reload_ok.set(1);
        self.config_loaded(at);
    }

    /// A reload was rejected; the previous plan keeps running.
    pub fn reload_failed(&self) {
        self.reloads.with_label_values(&["failed"]).inc();
        self.last_reload_ok.set(0);
    }

    /// The total flow capacity of the running plan's flow tables.
    pub fn set_flow_table_capacity(&self, flows: usize) {
        self.flow_table_capacity
            .set(i64::try_from(flows).unwrap_or(i64::MAX));
    }

    /// The running plan's flow quotas per tenant and per facility.
    pub fn set_flow_quotas(&self, per_tenant: usize, per_facility: usize) {
        for (scope, n) in [("tenant", per_tenant), ("facility", per_facility)] {
            self.flow_quota
                .with_label_values(&[scope])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The registry of the hub's metrics, for other modules to add theirs to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn try_encode(&self) -> prometheus::Result<String> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// [`Self::try_encode`], logging an encoder failure and yielding an empty exposition.
    pub fn encode(&self) -> String {
        self.try_encode().unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding metrics failed");
            String::new()
        })
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::metrics::{HandshakeResult, PeerLabels};
    use crate::vocab::DropReason;
    use crate::vocab::Names;

    fn omura() -> PeerLabels {
        PeerLabels {
            peer: "omura-clinic".into(),
            tenant: "ajisai-net".into(),
            attachment: "ajisai-wg".into(),
            facility: "4212345674".into(),
        }
    }

    const OMURA: &str =
        r#"{tenant="ajisai-net",attachment="ajisai-wg",peer="omura-clinic",facility="4212345674"}"#;

    fn table() -> Arc<Counters> {
        Arc::new(Counters::new(
            Instant::now(),
            Names {
                tenants: vec!["ajisai-net".into(), "mame-net".into()],
                attachments: vec!["ajisai-wg".into()],
                arp_attachments: vec![],
                peers: vec![omura()],
            },
        ))
    }

    use crate::metrics::testing::assert_line;

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn published_counts_are_exposed() {
        let hub = MetricsHub::new([table()]);
        let t = table();
        t.tenant(0).rx(100);
        t.tenant(0).rx(40);
        t.tenant(1).tx(1500);
        t.peer(0).rx(140);
        t.peer(0).tx(60);
        t.peer_wire_rx(0, 172);
        t.peer_wire_tx(0, 92);
        for _ in 0..3 {
            t.drop_in(Some(1), DropReason::Policy);
        }
        t.peer_drop(0);
        Counters::drop(&t, DropReason::WgReplay);
        t.handshake(Some(0), HandshakeResult::Ok);
        t.handshake(None, HandshakeResult::Invalid);
        t.set_flows(5);

        hub.publish(0, t).unwrap();
        let text = hub.encode();

        assert_line(
            &text,
            r#"ixgw_tenant_rx_packets_total{tenant="ajisai-net"} 2"#,
        );
        assert_line(
            &text,
            r#"ixgw_tenant_rx_bytes_total{tenant="ajisai-net"} 140"#,
        );
        assert_line(
            &text,
            r#"ixgw_tenant_tx_bytes_total{tenant="mame-net"} 1500"#,
        );
        assert_line(
            &text,
            r#"ixgw_tenant_tx_packets_total{tenant="ajisai-net"} 0"#,
        );
        assert_line(&text, &format!("ixgw_peer_rx_packets_total{OMURA} 1"));
        assert_line(&text, &format!("ixgw_peer_rx_bytes_total{OMURA} 140"));
        assert_line(&text, &format!("ixgw_peer_tx_bytes_total{OMURA} 60"));
        assert_line(
            &text,
            &format!("ixgw_peer_last_handshake_timestamp_seconds{OMURA} 0"),
        );
        assert_line(&text, &format!("ixgw_peer_up{OMURA} 0"));
        assert_line(&text, &format!("ixgw_peer_wire_rx_bytes_total{OMURA} 172"));
        assert_line(&text, &format!("ixgw_peer_wire_tx_bytes_total{OMURA} 92"));
        assert_line(&text, &format!("ixgw_peer_drops_total{OMURA} 1"));
        assert_line(
            &text,
            r#"ixgw_drops_total{tenant="mame-net",reason="policy"} 3"#,
        );
        assert_line(
            &text,
            r#"ixgw_drops_total{tenant="ajisai-net",reason="policy"} 0"#,
        );
        assert_line(&text, r#"ixgw_drops_total{tenant="",reason="wg_replay"} 1"#);
        assert!(
            !text.contains(r#"ixgw_drops_total{tenant="",reason="policy"}"#),
            "no zero series of no tenant"
        );
        assert_line(
            &text,
            r#"ixgw_handshakes_total{attachment="ajisai-wg",result="ok"} 1"#,
        );
        assert_line(
            &text,
            r#"ixgw_handshakes_total{attachment="ajisai-wg",result="timeout"} 0"#,
        );
        assert_line(
            &text,
            r#"ixgw_handshakes_total{attachment="",result="invalid"} 1"#,
        );
        assert_line(&text, "ixgw_flows 5");
        assert_line(&text, "ixgw_peers_configured 1");
        assert_line(&text, "ixgw_peers_up 0");
        assert_line(&text, "# TYPE ixgw_drops_total counter");
        assert_line(&text, "# TYPE ixgw_flows gauge");
    }

    #[test]
    fn workers_are_summed() {
        let (w0, w1) = (table(), table());
        let hub = MetricsHub::new([Arc::clone(&w0), Arc::clone(&w1)]);
        w0.tenant(0).rx(10);
        w1.tenant(0).rx(20);
        w1.tenant(0).rx(30);
        w0.peer(0).tx(7);
        w1.peer(0).tx(8);
        Counters::drop(&w0, DropReason::NoRoute);
        Counters::drop(&w1, DropReason::NoRoute);
        w0.set_flows(3);
        w1.set_flows(4);

        let text = hub.encode();

        assert_line(
            &text,
            r#"ixgw_tenant_rx_packets_total{tenant="ajisai-net"} 3"#,
        );
        assert_line(
            &text,
            r#"ixgw_tenant_rx_bytes_total{tenant="ajisai-net"} 60"#,
        );
        assert_line(&text, &format!("ixgw_peer_tx_bytes_total{OMURA} 15"));
        assert_line(&text, r#"ixgw_drops_total{tenant="",reason="no_route"} 2"#);
        assert_line(&text, "ixgw_flows 7");
        assert_line(&text, "ixgw_peers_configured 1");
        let tenant_series = lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("ixgw_tenant_rx_bytes_total{"))
            .count();
        assert_eq!(tenant_series, 2, "one series per tenant, not per worker");
    }

    #[test]
    fn every_drop_reason_and_handshake_result_is_present_at_zero() {
        let hub = MetricsHub::new([table()]);
        let text = hub.encode();
        for tenant in ["ajisai-net", "mame-net"] {
            for r in DropReason::ALL {
                let reason = r.as_str();
                let line = format!(r#"ixgw_drops_total{{tenant="{tenant}",reason="{reason}"}} 0"#);
                assert_line(&text, &line);
            }
        }
        for r in HandshakeResult::ALL {
            let result = r.as_str();
            let line =
                format!(r#"ixgw_handshakes_total{{attachment="ajisai-wg",result="{result}"}} 0"#);
            assert_line(&text, &line);
        }
    }

    #[test]
    fn hub_without_workers_still_exposes_global_series() {
        let hub = MetricsHub::new([]);
        let text = hub.encode();
        assert_eq!(hub.workers(), 0);
        assert_line(&text, "ixgw_peers_configured 0");
        assert_line(&text, "ixgw_peers_up 0");
        assert!(!text.contains("ixgw_tenant_rx_bytes_total{"));
    }

    #[test]
    fn label_values_are_escaped() {
        let odd = PeerLabels {
            peer: "quote\"back\\slash\nnewline".into(),
            tenant: "長崎あじさいネット".into(),
            attachment: "wg".into(),
            facility: "4212345674".into(),
        };
        let t = Arc::new(Counters::new(
            Instant::now(),
            Names {
                tenants: vec!["長崎あじさいネット".into()],
                attachments: vec![],
                arp_attachments: vec![],
                peers: vec![odd],
            },
        ));
        t.peer(0).rx(1);
        let hub = MetricsHub::new([t]);

        let text = hub.encode();

        assert_line(
            &text,
            r#"ixgw_peer_rx_bytes_total{tenant="長崎あじさいネット",attachment="wg",peer="quote\"back\\slash\nnewline",facility="4212345674"} 1"#,
        );
        assert!(text.lines().all(|l| !l.starts_with("newline")));
    }

    #[test]
    fn publish_replaces_the_table_and_rejects_unknown_workers() {
        let old = table();
        let hub = MetricsHub::new([Arc::clone(&old)]);
        Counters::drop(&old, DropReason::Ttl);
        let new = Arc::new(old.successor(Names {
            tenants: vec!["mame-net".into()],
            attachments: vec![],
            arp_attachments: vec![],
            peers: vec![],
        }));

        hub.publish(0, Arc::clone(&new)).unwrap();
        Counters::drop(&old, DropReason::Ttl);
        Counters::drop(&new, DropReason::Ttl);
        let text = hub.encode();

        assert_line(&text, r#"ixgw_drops_total{tenant="",reason="ttl"} 2"#);
        assert!(!text.contains(r#"tenant="ajisai-net""#));
        assert!(Arc::ptr_eq(&hub.current(0).unwrap(), &new));
        assert_eq!(
            hub.publish(1, table()),
            Err(UnknownWorker {
                index: 1,
                workers: 1
            })
        );
        assert!(hub.current(1).is_none());
    }

    #[test]
    fn control_plane_metrics() {
        let hub = MetricsHub::new([table()]);
        let before = hub.encode();
        assert_line(&before, r#"ixgw_config_reloads_total{result="ok"} 0"#);
        assert_line(&before, r#"ixgw_config_reloads_total{result="failed"} 0"#);
        assert_line(&before, "ixgw_config_last_reload_successful 1");
        assert_line(
            &before,
            &format!(
                r#"ixgw_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        );

        hub.config_loaded(UNIX_EPOCH + Duration::from_secs(1_000));
        hub.reload_failed();
        hub.reload_succeeded(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
        hub.reload_failed();
        hub.set_flow_table_capacity(65_536);
        hub.set_flow_quotas(32_768, 6_553);
        let after = hub.encode();

        assert_line(&after, r#"ixgw_config_reloads_total{result="ok"} 1"#);
        assert_line(&after, r#"ixgw_config_reloads_total{result="failed"} 2"#);
        assert_line(&after, "ixgw_config_last_reload_successful 0");
        hub.reload_succeeded(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        assert_line(&hub.encode(), "ixgw_config_last_reload_successful 1");
        assert_line(
            &after,
            "ixgw_config_last_reload_success_timestamp_seconds 1700000000.5",
        );
        assert_line(&after, "ixgw_flow_table_capacity 65536");
        assert_line(&after, r#"ixgw_flow_quota{scope="tenant"} 32768"#);
        assert_line(&after, r#"ixgw_flow_quota{scope="facility"} 6553"#);
    }

    #[test]
    fn every_family_has_help_and_type() {
        let text = MetricsHub::new([table()]).encode();
        let ls = lines(&text);
        let mut families = 0;
        for (i, l) in ls.iter().enumerate() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                if name.starts_with("process_") {
                    continue;
                }
                families += 1;
                assert!(name.starts_with("ixgw_"), "{name}");
                let help = i.checked_sub(1).map(|j| ls[j]).unwrap_or("");
                assert!(
                    help.starts_with(&format!("# HELP {name} ")) && help.len() > name.len() + 20,
                    "no help for {name}"
                );
            }
        }
        assert_eq!(families, 26);
    }

    #[test]
    fn process_metrics_are_exported() {
        let text = MetricsHub::new([table()]).encode();
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
            ("process_threads", "gauge"),
        ] {
            assert_line(&text, &format!("# TYPE {name} {kind}"));
            let value: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no sample of {name}"))
                .parse()
                .unwrap();
            if name != "process_cpu_seconds_total" {
                assert!(value > 0.0, "{name} {value}");
            }
        }
        let started: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        let now = unix_seconds(SystemTime::now());
        assert!(
            started <= now && started > now - 86_400.0,
            "started {started}, now {now}"
        );
    }
}
