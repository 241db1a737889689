//! The metrics hub: the meeting point of the data-path workers, the control plane and the
//! scraper.
//!
//! * Each worker owns one slot. It writes its [`Counters`] table without any coordination and,
//!   after a reload, publishes the successor table with [`MetricsHub::publish`]; the slot is
//!   an `ArcSwap`, so publishing is one atomic pointer store and the scraper never blocks it.
//! * The control plane records reloads and sizes through ordinary `prometheus` metrics held in
//!   the hub's [`Registry`], which other modules may also register into.
//! * The scraper calls [`MetricsHub::encode`]; the hot counters are summed over all workers
//!   only then, by the collector in [`super::collector`], and written straight into the text
//!   between the registry's families ([`super::text`]): a scrape of 10,000 peers allocates
//!   its text and the sums, not a `MetricFamily` and eight label strings per series.
//!
//! The hub reads no clock: times of reloads come in as parameters. The only clock read of
//! the metrics layer is the scrape's own "now" inside the collector, needed to turn monotonic
//! handshake times into Unix time.
//!
//! The registry also holds the process collector (`process_*`: CPU seconds, resident and
//! virtual memory, open and maximum file descriptors, threads, start time), read from
//! `/proc/self` at scrape time.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use super::collector::{self, HotCollector, PeerCount, Reserved, Scrape, TextCollector};
use super::text::TextSink;
use crate::config::PeerSeries;
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
    hot: HotCollector,
    /// Collectors whose families are written as text ([`Self::register_text`]).
    text: RwLock<Vec<Box<dyn TextCollector>>>,
    /// The length of the last exposition: the next one's buffer is allocated once, at about
    /// this size, instead of growing by copies.
    last_len: AtomicUsize,
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
        let hot = HotCollector::new(Arc::clone(&slots));
        registry.register(Box::new(hot.reserved()?))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(MetricsHub {
            slots,
            registry,
            hot,
            text: RwLock::new(Vec::new()),
            last_len: AtomicUsize::new(0),
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

    /// Which per-peer series the next scrapes export (`metrics.peer_series`).
    pub fn set_peer_series(&self, p: PeerSeries) {
        self.hot.set_peer_series(p);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric: the registry's families
    /// and the hot counters', sorted by name as `Registry::gather` sorts them.
    pub fn try_encode(&self) -> prometheus::Result<String> {
        let others = self.registry.gather();
        let scrape = self.hot.scrape(Instant::now(), SystemTime::now());
        self.encode_with(&others, &scrape)
    }

    /// Adds a collector whose families are written straight into the text, and reserves
    /// their names in the registry.
    pub(crate) fn register_text(&self, c: Box<dyn TextCollector>) -> prometheus::Result<()> {
        self.registry
            .register(Box::new(Reserved::of(c.defs().into_iter())?))?;
        self.text.write().unwrap_or_else(|e| e.into_inner()).push(c);
        Ok(())
    }

    /// The exposition of `registry` (the registry's families, gathered), the text collectors'
    /// and the hot counters' families, in order of their names. The hot families, the bulk,
    /// are written in place; the text collectors' go to a side buffer first.
    fn encode_with(
        &self,
        registry: &[MetricFamily],
        scrape: &Scrape,
    ) -> prometheus::Result<String> {
        let mut side = String::new();
        let mut chunks = Vec::new();
        {
            let mut sink = TextSink::new(&mut side);
            let text = self.text.read().unwrap_or_else(|e| e.into_inner());
            for c in text.iter() {
                chunks.extend(sink.chunks(c.as_ref()));
            }
        }
        let mut others: Vec<(&str, Other<'_>)> = (registry.iter())
            .map(|f| (f.name(), Other::Proto(f)))
            .chain((chunks.into_iter()).map(|(name, r)| (name, Other::Text(&side[r]))))
            .collect();
        others.sort_by_key(|(name, _)| *name);

        let last = self.last_len.load(Relaxed);
        let mut out = String::with_capacity(last + last / 8 + 4096);
        let encoder = TextEncoder::new();
        let mut others = others.into_iter().peekable();
        let mut result = Ok(());
        let mut sink = TextSink::new(&mut out);
        self.hot.write(scrape, &mut sink, |sink, name| {
            while let Some((_, o)) = others.next_if(|(n, _)| *n < name) {
                let written = o.encode(&encoder, sink.out());
                if result.is_ok() {
                    result = written;
                }
            }
        });
        result?;
        for (_, o) in others {
            o.encode(&encoder, &mut out)?;
        }
        self.last_len.store(out.len(), Relaxed);
        Ok(out)
    }

    /// [`Self::try_encode`], logging an encoder failure and yielding an empty exposition.
    pub fn encode(&self) -> String {
        self.try_encode().unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding metrics failed");
            String::new()
        })
    }
}

/// A family of the exposition other than the hot counters'.
enum Other<'a> {
    Proto(&'a MetricFamily),
    /// Already text.
    Text(&'a str),
}

impl Other<'_> {
    fn encode(&self, encoder: &TextEncoder, out: &mut String) -> prometheus::Result<()> {
        match self {
            Other::Proto(f) => encoder.encode_utf8(std::slice::from_ref(*f), out),
            Other::Text(t) => {
                out.push_str(t);
                Ok(())
            }
        }
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
    use crate::metrics::{Def, HandshakeResult, PeerLabels};
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

    /// What each worker read and handed on is exported per worker, beside their number.
    #[test]
    fn each_worker_is_shown_apart() {
        let (w0, w1) = (table(), table());
        let hub = MetricsHub::new([Arc::clone(&w0), Arc::clone(&w1)]);
        w0.received.add(100);
        w1.received.add(250);
        w1.handed_on.add(40);
        let text = hub.encode();
        assert_line(&text, "ixgw_workers 2");
        assert_line(&text, r#"ixgw_worker_received_total{worker="0"} 100"#);
        assert_line(&text, r#"ixgw_worker_received_total{worker="1"} 250"#);
        assert_line(&text, r#"ixgw_worker_handed_on_total{worker="0"} 0"#);
        assert_line(&text, r#"ixgw_worker_handed_on_total{worker="1"} 40"#);
        // A reload's table for worker 1 goes on from there.
        let next = Arc::new(w1.successor(Default::default()));
        hub.publish(1, next).expect("worker 1");
        assert_line(
            &hub.encode(),
            r#"ixgw_worker_received_total{worker="1"} 250"#,
        );
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

    /// Two workers, an ethernet attachment, names to escape, counts past 2^53, handshakes of
    /// IPsec and WireGuard peers, drops and handshakes of no tenant or attachment; to be
    /// scraped at `base` + 1,000 s ([`BUSY_NOW`]).
    fn busy_hub(base: Instant) -> MetricsHub {
        let names = || Names {
            tenants: vec!["mame-net".into(), "ajisai-net".into(), "長崎".into()],
            attachments: vec!["mame-wg".into(), "ajisai-wg".into(), "carrier-eth".into()],
            arp_attachments: vec!["carrier-eth".into()],
            peers: vec![
                PeerLabels {
                    peer: "zz-last".into(),
                    tenant: "mame-net".into(),
                    attachment: "mame-wg".into(),
                    facility: "3211234566".into(),
                },
                omura(),
                PeerLabels {
                    peer: "quote\"back\\slash\nnewline".into(),
                    tenant: "ajisai-net".into(),
                    attachment: "ajisai-wg".into(),
                    facility: "4240123457".into(),
                },
                PeerLabels {
                    peer: "a-first".into(),
                    tenant: "ajisai-net".into(),
                    attachment: "ajisai-ipsec".into(),
                    facility: "4212345674".into(),
                },
            ],
        };
        let (w0, w1) = (
            Arc::new(Counters::new(base, names())),
            Arc::new(Counters::new(base, names())),
        );
        for (k, w) in [&w0, &w1].into_iter().enumerate() {
            for p in 0..4 {
                w.peer(p).rx(1_000 * (p + 1) + k);
                w.peer(p).tx(77);
                w.peer_wire_rx(p, 1_100 * (p + 1));
            }
            w.tenant(2).rx(1_300);
            w.tenant_flows(1).set(3 + k);
            w.drop_in(Some(0), DropReason::Policy);
            Counters::drop(w, DropReason::SendFailed);
            w.handshake(Some(1), HandshakeResult::Ok);
            w.handshake(None, HandshakeResult::Invalid);
            w.count_arp(
                2,
                crate::vocab::ArpCounts {
                    requests: 5,
                    replies: 2,
                    failures: 1,
                    neighbours: 3,
                },
            );
            w.set_flows(10);
        }
        w0.peer(0).rx_bytes.add((1 << 53) + 1);
        w1.peer(1).tx_bytes.add(u64::MAX / 3);
        w0.peer_handshake(1, base + BUSY_NOW - Duration::from_millis(12_345));
        w1.peer_handshake(1, base + BUSY_NOW - Duration::from_millis(200_001));
        w0.peer_handshake(2, base + BUSY_NOW - Duration::from_secs(500));
        w1.set_established(3, true);
        w0.peer_drop(2);
        MetricsHub::new([w0, w1])
    }

    const BUSY_NOW: Duration = Duration::from_secs(1_000);

    /// The exposition at the monotonic `now`, which is `wall`.
    fn text_at(hub: &MetricsHub, now: Instant, wall: SystemTime) -> String {
        let others = hub.registry().gather();
        hub.encode_with(&others, &hub.hot.scrape(now, wall))
            .unwrap()
    }

    const AAA: Def = Def::gauge("aaa_first", &["x"], "Sorts before every other family.");
    const CRL: Def = Def::gauge(
        "ixgw_crl_test",
        &["x"],
        "Between ixgw_config_* and ixgw_drops_total.",
    );
    const EMPTY: Def = Def::gauge("ixgw_empty_test", &[], "No samples: left out.");

    /// A text collector whose families fall before, between and after the others'.
    struct Interleaved;

    impl TextCollector for Interleaved {
        fn defs(&self) -> Vec<&'static Def> {
            vec![&CRL, &EMPTY, &AAA]
        }

        fn write(&self, sink: &mut dyn crate::metrics::Sink) {
            sink.family(&CRL);
            for x in ["a", "b\"q"] {
                sink.sample(&[x], crate::metrics::Value::Real(0.25));
            }
            sink.family(&EMPTY);
            sink.family(&AAA);
            sink.sample(&["1"], crate::metrics::Value::Count(7));
        }
    }

    /// The text the hub writes is, byte for byte, what `prometheus::TextEncoder` writes for
    /// the same families gathered by a registry: their order, the order of the samples, the
    /// escapes, the numbers.
    #[test]
    fn the_text_is_what_the_prometheus_encoder_writes() {
        let base = Instant::now();
        let now = base + BUSY_NOW;
        let wall = UNIX_EPOCH + Duration::from_millis(1_764_000_123_456);
        let hub = busy_hub(base);
        hub.set_flow_quotas(10, 5);
        hub.register_text(Box::new(Interleaved)).unwrap();
        assert!(
            hub.register_text(Box::new(Interleaved)).is_err(),
            "the names are taken"
        );
        for mode in [PeerSeries::All, PeerSeries::State, PeerSeries::None] {
            hub.set_peer_series(mode);
            let others = hub.registry().gather();
            let scrape = hub.hot.scrape(now, wall);
            let mut all = others.clone();
            all.extend(hub.hot.families_at(now, wall));
            let mut proto = crate::metrics::collector::proto::ProtoSink::default();
            Interleaved.write(&mut proto);
            all.extend(proto.families);
            let want = crate::metrics::testing::encoder_text(all);

            let text = hub.encode_with(&others, &scrape).unwrap();

            if text != want {
                let first = (text.lines().zip(want.lines()))
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("written: {a}\nencoder: {b}"));
                panic!("{mode:?}: the texts differ: {first:?}");
            }
            assert!(text.contains(r#"ixgw_peer_up{tenant="ajisai-net",attachment="ajisai-ipsec",peer="a-first",facility="4212345674"} 1"#) || mode == PeerSeries::None);
            assert!(text.starts_with("# HELP aaa_first "), "{}", &text[..80]);
            assert_line(&text, r#"ixgw_crl_test{x="b\"q"} 0.25"#);
            assert!(!text.contains("ixgw_empty_test"));
        }
    }

    /// Series of `family` (the whole name) in `text`.
    fn count(text: &str, family: &str) -> usize {
        text.lines()
            .filter(|l| {
                l.strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .count()
    }

    const PEER_TRAFFIC: [&str; 7] = [
        "ixgw_peer_rx_packets_total",
        "ixgw_peer_rx_bytes_total",
        "ixgw_peer_tx_packets_total",
        "ixgw_peer_tx_bytes_total",
        "ixgw_peer_wire_rx_bytes_total",
        "ixgw_peer_wire_tx_bytes_total",
        "ixgw_peer_drops_total",
    ];
    const PEER_STATE: [&str; 2] = ["ixgw_peer_up", "ixgw_peer_last_handshake_timestamp_seconds"];
    const ATTACHMENT_SUMS: [&str; 9] = [
        "ixgw_attachment_peer_rx_packets_total",
        "ixgw_attachment_peer_rx_bytes_total",
        "ixgw_attachment_peer_tx_packets_total",
        "ixgw_attachment_peer_tx_bytes_total",
        "ixgw_attachment_peer_wire_rx_bytes_total",
        "ixgw_attachment_peer_wire_tx_bytes_total",
        "ixgw_attachment_peer_drops_total",
        "ixgw_attachment_peers_configured",
        "ixgw_attachment_peers_up",
    ];

    /// `metrics.peer_series`: each mode exports exactly its per-peer families, one series per
    /// peer, and the attachments' sums always.
    #[test]
    fn peer_series_exports_what_it_says() {
        let base = Instant::now();
        let now = base + BUSY_NOW;
        let hub = busy_hub(base);
        for (mode, traffic, state) in [
            (PeerSeries::All, 4, 4),
            (PeerSeries::State, 0, 4),
            (PeerSeries::None, 0, 0),
        ] {
            hub.set_peer_series(mode);
            let text = text_at(&hub, now, SystemTime::now());
            for f in PEER_TRAFFIC {
                assert_eq!(count(&text, f), traffic, "{mode:?} {f}");
            }
            for f in PEER_STATE {
                assert_eq!(count(&text, f), state, "{mode:?} {f}");
            }
            let peer_lines = text.lines().filter(|l| l.starts_with("ixgw_peer_")).count();
            assert_eq!(
                peer_lines,
                traffic * 7 + state * 2,
                "{mode:?}: nothing else per peer"
            );
            if traffic == 0 {
                assert!(
                    !text.contains("# TYPE ixgw_peer_rx_bytes_total"),
                    "{mode:?}"
                );
            }
            for f in ATTACHMENT_SUMS {
                assert_eq!(
                    count(&text, f),
                    3,
                    "{mode:?} {f}: one per attachment with peers"
                );
            }
            let ajisai = r#"{tenant="ajisai-net",attachment="ajisai-wg"}"#;
            let ipsec = r#"{tenant="ajisai-net",attachment="ajisai-ipsec"}"#;
            // omura: 2000 + 2001, the odd one: 3000 + 3001.
            assert_line(
                &text,
                &format!("ixgw_attachment_peer_rx_bytes_total{ajisai} 10002"),
            );
            assert_line(
                &text,
                &format!("ixgw_attachment_peer_rx_packets_total{ajisai} 4"),
            );
            assert_line(
                &text,
                &format!("ixgw_attachment_peer_wire_rx_bytes_total{ajisai} 11000"),
            );
            assert_line(
                &text,
                &format!("ixgw_attachment_peer_drops_total{ajisai} 1"),
            );
            assert_line(
                &text,
                &format!("ixgw_attachment_peers_configured{ajisai} 2"),
            );
            // omura handshook 12 s ago (up); the other 500 s ago (down); the IPsec peer is up.
            assert_line(&text, &format!("ixgw_attachment_peers_up{ajisai} 1"));
            assert_line(&text, &format!("ixgw_attachment_peers_up{ipsec} 1"));
            assert_line(&text, "ixgw_peers_configured 4");
            assert_line(&text, "ixgw_peers_up 2");
            let mame = r#"{tenant="mame-net",attachment="mame-wg"}"#;
            assert_line(
                &text,
                &format!(
                    "ixgw_attachment_peer_rx_bytes_total{mame} {}",
                    2001 + (1u64 << 53) + 1
                ),
            );
            assert_line(&text, &format!("ixgw_attachment_peers_up{mame} 0"));
        }
        hub.set_peer_series(PeerSeries::All);
        let text = text_at(&hub, now, SystemTime::now());
        assert_eq!(count(&text, "ixgw_peer_rx_bytes_total"), 4, "back to all");
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
        assert_eq!(families, 38);
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
