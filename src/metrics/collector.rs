//! The scrape-time collector of the data path's hot counters.
//!
//! [`HotCollector`] reads every worker's current [`Counters`] table through its `ArcSwap` slot,
//! sums them and hands the sums, family by family, to a [`Sink`]: the scrape's text
//! ([`super::text::TextSink`], what `/metrics` answers) or, in tests, Prometheus'
//! `MetricFamily` protos. It never touches the hot path: workers keep writing their relaxed
//! atomics while the scraper reads them, so one scrape is not an atomic snapshot across series
//! (a packet may be in a tenant total and not yet in its peer's), which Prometheus' `rate()`
//! tolerates.
//!
//! Each family's samples come out in the order `Registry::gather` sorts them into (by label
//! values, in label order): the sums are kept in ordered maps keyed by the label values, and
//! reasons and results are walked in the order of their names.
//!
//! Series are keyed by their full label set, so a worker that has already published the table
//! of a new plan and one that has not yet contribute to the same series where the labels
//! agree. During that short window a peer renamed or moved by the reload may appear under
//! both its old and its new labels.
//!
//! `ixgw_peer_last_handshake_timestamp_seconds` is emitted for every configured peer and is
//! `0` for a peer that never completed a handshake: the series set stays the same as that of
//! the peer traffic counters, `== 0` finds peers that never connected, and dashboards filter
//! with `> 0`. Handshake times are monotonic [`Instant`]s; they become Unix time at scrape
//! time as `wall - (now - t)`, the latest of all workers winning.
//!
//! Which per-peer families are exported follows `metrics.peer_series` ([`PeerSeries`]); the
//! per-attachment sums of the same counters (`ixgw_attachment_peer_*`,
//! `ixgw_attachment_peers_*`) are exported whatever it says.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use crate::config::PeerSeries;
use crate::vocab::counters::{SESSION_NONE, SESSION_UP};
use crate::vocab::{ArpCounts, Counters, DropReason, HandshakeResult, Traffic};

/// A peer counts as up while its last completed handshake is younger than this: WireGuard's
/// `REJECT_AFTER_TIME` [WireGuard whitepaper § 6.1], after which its session keys are dead.
pub const PEER_UP_WITHIN: Duration = Duration::from_secs(180);

/// One metric family the collector emits.
pub(crate) struct Def {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) labels: &'static [&'static str],
    pub(crate) kind: MetricType,
}

const TENANT: &[&str] = &["tenant"];
const ATTACHMENT: &[&str] = &["attachment"];
const PEER: &[&str] = &["tenant", "attachment", "peer", "facility"];

impl Def {
    /// A gauge family: its name, label names and help.
    pub(crate) const fn gauge(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Def {
        gauge(name, labels, help)
    }
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Def {
    Def {
        name,
        help,
        labels,
        kind: MetricType::COUNTER,
    }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Def {
    Def {
        name,
        help,
        labels,
        kind: MetricType::GAUGE,
    }
}

/// Indexed like [`TrafficSum`]: rx packets, rx bytes, tx packets, tx bytes.
const TENANT_TRAFFIC: [Def; 4] = [
    counter(
        "ixgw_tenant_rx_packets_total",
        TENANT,
        "Packets the gateway received from any tunnel of the tenant.",
    ),
    counter(
        "ixgw_tenant_rx_bytes_total",
        TENANT,
        "Inner IP bytes the gateway received from any tunnel of the tenant.",
    ),
    counter(
        "ixgw_tenant_tx_packets_total",
        TENANT,
        "Packets the gateway sent into any tunnel of the tenant.",
    ),
    counter(
        "ixgw_tenant_tx_bytes_total",
        TENANT,
        "Inner IP bytes the gateway sent into any tunnel of the tenant.",
    ),
];

const PEER_TRAFFIC: [Def; 4] = [
    counter(
        "ixgw_peer_rx_packets_total",
        PEER,
        "Packets the gateway received from the tunnel peer.",
    ),
    counter(
        "ixgw_peer_rx_bytes_total",
        PEER,
        "Inner IP bytes the gateway received from the tunnel peer.",
    ),
    counter(
        "ixgw_peer_tx_packets_total",
        PEER,
        "Packets the gateway sent to the tunnel peer.",
    ),
    counter(
        "ixgw_peer_tx_bytes_total",
        PEER,
        "Inner IP bytes the gateway sent to the tunnel peer.",
    ),
];

/// Indexed like [`PeerSum::more`]: wire bytes in and out, drops.
const PEER_MORE: [Def; 3] = [
    counter(
        "ixgw_peer_wire_rx_bytes_total",
        PEER,
        "Bytes of the tunnel packets (WireGuard datagrams, ESP packets, without the IP and UDP headers around them) that carried the peer's traffic into the gateway and authenticated.",
    ),
    counter(
        "ixgw_peer_wire_tx_bytes_total",
        PEER,
        "Bytes of the tunnel packets (as above) that carried traffic from the gateway to the peer.",
    ),
    counter(
        "ixgw_peer_drops_total",
        PEER,
        "Packets of the peer that the data path dropped after decrypting them (a spoofed source, no policy, no route, ...); ixgw_drops_total{tenant} has the reasons.",
    ),
];

/// Indexed like [`Sum::tenant_flows`]: flows, evictions, quota drops.
const TENANT_FLOWS: [Def; 3] = [
    gauge(
        "ixgw_tenant_flows",
        TENANT,
        "Flows opened by the tenant's hosts that the flow tables hold, counted against its quota.",
    ),
    counter(
        "ixgw_tenant_flow_evictions_total",
        TENANT,
        "Live transient flows (half-open, closed, unanswered) of the tenant evicted early to make room for a new flow.",
    ),
    counter(
        "ixgw_tenant_flow_quota_drops_total",
        TENANT,
        "New flows of the tenant's hosts refused because the tenant or the opening facility held its flow quota.",
    ),
];

/// Indexed like [`arp_values`]: requests, replies, failures, neighbours. Only `ethernet`
/// attachments have these series.
const ARP: [Def; 4] = [
    counter(
        "ixgw_arp_requests_total",
        ATTACHMENT,
        "ARP requests the gateway sent on the ethernet attachment's link: first asks for a next hop, retries, and probes of stale neighbours.",
    ),
    counter(
        "ixgw_arp_replies_total",
        ATTACHMENT,
        "ARP replies the gateway sent on the ethernet attachment's link for its own address.",
    ),
    counter(
        "ixgw_arp_failures_total",
        ATTACHMENT,
        "Next hops on the ethernet attachment's link that did not answer the last of their ARP requests (three by default) and went to the failed state.",
    ),
    gauge(
        "ixgw_arp_neighbours",
        ATTACHMENT,
        "Entries in the ethernet attachment's neighbour cache, in every state: reachable, stale (used while asked again), incomplete (being asked for) and failed (not asked again for a second); at most 4096.",
    ),
];

fn arp_values(c: &ArpCounts) -> [u64; 4] {
    [c.requests, c.replies, c.failures, c.neighbours]
}

const PEER_LAST_HANDSHAKE: Def = gauge(
    "ixgw_peer_last_handshake_timestamp_seconds",
    PEER,
    "Unix time of the peer's last completed tunnel handshake; 0 if it never completed one.",
);

const PEER_UP: Def = gauge(
    "ixgw_peer_up",
    PEER,
    "1 while the peer is up (as ixgw_peers_up counts it), else 0.",
);

const DROPS: Def = counter(
    "ixgw_drops_total",
    &["tenant", "reason"],
    "Packets and datagrams the data path dropped, by the tenant of the attachment they arrived on (empty: of no tenant, such as the gateway's own failed sends) and reason.",
);

const HANDSHAKES: Def = counter(
    "ixgw_handshakes_total",
    &["attachment", "result"],
    "Tunnel handshakes handled by the gateway, by attachment and outcome: WireGuard handshake messages, IPsec IKE SAs established.",
);

const PEERS_CONFIGURED: Def = gauge(
    "ixgw_peers_configured",
    &[],
    "Tunnel peers in the running configuration.",
);

const PEERS_UP: Def = gauge(
    "ixgw_peers_up",
    &[],
    "Tunnel peers that are up: IPsec peers with an established IKE SA, WireGuard peers whose last completed handshake is younger than 180 seconds (REJECT_AFTER_TIME).",
);

const FLOWS: Def = gauge(
    "ixgw_flows",
    &[],
    "Entries in the data path's flow tables, summed over workers.",
);

const WORKERS: Def = gauge(
    "ixgw_workers",
    &[],
    "Data-path worker threads (dataplane.workers).",
);

const WORKER: [Def; 2] = [
    counter(
        "ixgw_worker_received_total",
        &["worker"],
        "Packets and datagrams the data-path worker read from its sockets and devices (WireGuard peers are spread over the workers; other attachments are read by worker 0).",
    ),
    counter(
        "ixgw_worker_handed_on_total",
        &["worker"],
        "Packets the data-path worker handed to another worker: the flow's home or the egress peer's owner is there.",
    ),
];

const TENANT_ATTACHMENT: &[&str] = &["tenant", "attachment"];

/// Indexed like [`TrafficSum`]: [`PEER_TRAFFIC`] summed over the attachment's peers.
const ATTACHMENT_TRAFFIC: [Def; 4] = [
    counter(
        "ixgw_attachment_peer_rx_packets_total",
        TENANT_ATTACHMENT,
        "Packets the gateway received from the attachment's peers (ixgw_peer_rx_packets_total summed over them; exported whatever metrics.peer_series says).",
    ),
    counter(
        "ixgw_attachment_peer_rx_bytes_total",
        TENANT_ATTACHMENT,
        "Inner IP bytes the gateway received from the attachment's peers (ixgw_peer_rx_bytes_total summed over them).",
    ),
    counter(
        "ixgw_attachment_peer_tx_packets_total",
        TENANT_ATTACHMENT,
        "Packets the gateway sent to the attachment's peers (ixgw_peer_tx_packets_total summed over them).",
    ),
    counter(
        "ixgw_attachment_peer_tx_bytes_total",
        TENANT_ATTACHMENT,
        "Inner IP bytes the gateway sent to the attachment's peers (ixgw_peer_tx_bytes_total summed over them).",
    ),
];

/// Indexed like [`PeerSum::more`]: [`PEER_MORE`] summed over the attachment's peers.
const ATTACHMENT_MORE: [Def; 3] = [
    counter(
        "ixgw_attachment_peer_wire_rx_bytes_total",
        TENANT_ATTACHMENT,
        "Bytes of the tunnel packets that carried the attachment's peers' traffic into the gateway (ixgw_peer_wire_rx_bytes_total summed over them).",
    ),
    counter(
        "ixgw_attachment_peer_wire_tx_bytes_total",
        TENANT_ATTACHMENT,
        "Bytes of the tunnel packets that carried traffic from the gateway to the attachment's peers (ixgw_peer_wire_tx_bytes_total summed over them).",
    ),
    counter(
        "ixgw_attachment_peer_drops_total",
        TENANT_ATTACHMENT,
        "Packets of the attachment's peers dropped after decryption (ixgw_peer_drops_total summed over them).",
    ),
];

const ATTACHMENT_PEERS_CONFIGURED: Def = gauge(
    "ixgw_attachment_peers_configured",
    TENANT_ATTACHMENT,
    "Tunnel peers of the attachment in the running configuration.",
);

const ATTACHMENT_PEERS_UP: Def = gauge(
    "ixgw_attachment_peers_up",
    TENANT_ATTACHMENT,
    "Tunnel peers of the attachment that are up (as ixgw_peers_up counts them).",
);

/// One family of the collector: which definition, and where its samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    TenantTraffic(usize),
    TenantFlows(usize),
    PeerTraffic(usize),
    PeerMore(usize),
    Arp(usize),
    PeerLastHandshake,
    PeerUp,
    Drops,
    Handshakes,
    PeersConfigured,
    PeersUp,
    Flows,
    AttachmentTraffic(usize),
    AttachmentMore(usize),
    AttachmentPeersConfigured,
    AttachmentPeersUp,
    Workers,
    Worker(usize),
}

impl Family {
    /// Every family, sorted by name (the order of a scrape).
    fn all() -> Vec<Family> {
        use Family::*;
        let mut all: Vec<Family> = (0..4)
            .flat_map(|i| {
                [
                    TenantTraffic(i),
                    PeerTraffic(i),
                    Arp(i),
                    AttachmentTraffic(i),
                ]
            })
            .chain((0..3).flat_map(|i| [TenantFlows(i), PeerMore(i), AttachmentMore(i)]))
            .chain([
                PeerLastHandshake,
                PeerUp,
                Drops,
                Handshakes,
                PeersConfigured,
                PeersUp,
                Flows,
                AttachmentPeersConfigured,
                AttachmentPeersUp,
                Workers,
                Worker(0),
                Worker(1),
            ])
            .collect();
        all.sort_by_key(|f| f.def().name);
        all
    }

    fn def(self) -> &'static Def {
        use Family::*;
        match self {
            TenantTraffic(i) => &TENANT_TRAFFIC[i],
            TenantFlows(i) => &TENANT_FLOWS[i],
            PeerTraffic(i) => &PEER_TRAFFIC[i],
            PeerMore(i) => &PEER_MORE[i],
            Arp(i) => &ARP[i],
            PeerLastHandshake => &PEER_LAST_HANDSHAKE,
            PeerUp => &PEER_UP,
            Drops => &DROPS,
            Handshakes => &HANDSHAKES,
            PeersConfigured => &PEERS_CONFIGURED,
            PeersUp => &PEERS_UP,
            Flows => &FLOWS,
            AttachmentTraffic(i) => &ATTACHMENT_TRAFFIC[i],
            AttachmentMore(i) => &ATTACHMENT_MORE[i],
            AttachmentPeersConfigured => &ATTACHMENT_PEERS_CONFIGURED,
            AttachmentPeersUp => &ATTACHMENT_PEERS_UP,
            Workers => &WORKERS,
            Worker(i) => &WORKER[i],
        }
    }
}

/// A sample's value: a count (exact in the text up to 2^53, as `f64` beyond) or a real.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Count(u64),
    Real(f64),
}

impl Value {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Value::Count(n) => n as f64,
            Value::Real(x) => x,
        }
    }
}

/// Where the collector's families go, one family then its samples, in scrape order.
pub(crate) trait Sink {
    fn family(&mut self, def: &'static Def);
    /// A sample of the last family begun, with one value per label of its definition.
    fn sample(&mut self, labels: &[&str], value: Value);

    /// A sample whose label values are those of the `key`-th item of a list that several
    /// families walk alike, in order (the peers): a sink may render them once.
    fn keyed_sample(&mut self, key: usize, labels: &[&str], value: Value) {
        let _ = key;
        self.sample(labels, value);
    }
}

/// Packets and bytes of one series, indexed like [`TENANT_TRAFFIC`].
#[derive(Default, Clone, Copy)]
struct TrafficSum([u64; 4]);

impl TrafficSum {
    fn add(&mut self, t: &Traffic) {
        let v = [
            t.rx_packets.get(),
            t.rx_bytes.get(),
            t.tx_packets.get(),
            t.tx_bytes.get(),
        ];
        for (sum, x) in self.0.iter_mut().zip(v) {
            *sum = sum.wrapping_add(x);
        }
    }
}

#[derive(Default)]
struct PeerSum {
    traffic: TrafficSum,
    /// Wire bytes in, wire bytes out, drops.
    more: [u64; 3],
    last_handshake: Option<Instant>,
    /// The highest session state any worker reported (`SESSION_*`).
    session: u8,
}

impl PeerSum {
    /// Adds another worker's counts of the same peer.
    fn merge(&mut self, other: &PeerSum) {
        for (s, x) in self.traffic.0.iter_mut().zip(other.traffic.0) {
            *s = s.wrapping_add(x);
        }
        for (s, x) in self.more.iter_mut().zip(other.more) {
            *s = s.wrapping_add(x);
        }
        self.last_handshake = self.last_handshake.max(other.last_handshake);
        self.session = self.session.max(other.session);
    }

    fn is_up(&self, now: Instant) -> bool {
        peer_is_up(self.session, self.last_handshake, now)
    }
}

/// Whether a peer is up at `now`, as `ixgw_peers_up` counts it: IPsec peers (with a session
/// state) while they say so; WireGuard peers while their last completed handshake is younger
/// than [`PEER_UP_WITHIN`].
pub fn peer_is_up(session: u8, last_handshake: Option<Instant>, now: Instant) -> bool {
    match session {
        SESSION_NONE => {
            last_handshake.is_some_and(|t| now.saturating_duration_since(t) < PEER_UP_WITHIN)
        }
        s => s == SESSION_UP,
    }
}

/// Peers configured and up, as `ixgw_peers_configured` and `ixgw_peers_up` export them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PeerCount {
    pub up: usize,
    pub configured: usize,
}

/// The peers of every worker's current table at the monotonic instant `now`.
pub(crate) fn peer_count(slots: &[ArcSwap<Counters>], now: Instant) -> PeerCount {
    let tables: Vec<Arc<Counters>> = slots.iter().map(ArcSwap::load_full).collect();
    Sum::of(&tables).peer_count(now)
}

/// (tenant, attachment, peer, facility): the label values of a peer series, in [`PEER`] order.
type PeerKey<'a> = [&'a str; 4];

/// One sample per row (a tenant or attachment, "" for none) and column of `order`, the
/// column's index and label value given by `column`; the "" row only where it counted.
fn rows<S: Sink, C: Copy, const N: usize>(
    sink: &mut S,
    rows: &BTreeMap<&str, [u64; N]>,
    order: &[C],
    column: impl Fn(C) -> (usize, &'static str),
) {
    for (name, row) in rows {
        for &c in order {
            let (i, label) = column(c);
            if !name.is_empty() || row[i] > 0 {
                sink.sample(&[*name, label], Value::Count(row[i]));
            }
        }
    }
}

/// Worker `w`'s `worker` label value.
fn worker_label(w: usize) -> &'static str {
    const NAMES: [&str; 64] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
        "32", "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46",
        "47", "48", "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61",
        "62", "63",
    ];
    NAMES.get(w).copied().unwrap_or("64+")
}

/// The sum of all workers' tables at one scrape.
struct Sum<'a> {
    /// By tenant ("": of no tenant).
    drops: BTreeMap<&'a str, [u64; DropReason::COUNT]>,
    /// By attachment ("": of no attachment).
    handshakes: BTreeMap<&'a str, [u64; HandshakeResult::COUNT]>,
    tenants: BTreeMap<&'a str, TrafficSum>,
    tenant_flows: BTreeMap<&'a str, [u64; 3]>,
    /// Sorted by key, one entry per key.
    peers: Vec<(PeerKey<'a>, PeerSum)>,
    /// By `ethernet` attachment, indexed like [`ARP`].
    arp: BTreeMap<&'a str, [u64; 4]>,
    flows: u64,
}

impl<'a> Sum<'a> {
    fn of(tables: &'a [Arc<Counters>]) -> Self {
        let mut sum = Sum {
            drops: BTreeMap::new(),
            handshakes: BTreeMap::new(),
            tenants: BTreeMap::new(),
            tenant_flows: BTreeMap::new(),
            peers: Vec::new(),
            arp: BTreeMap::new(),
            flows: 0,
        };
        for table in tables {
            for (tenant, reason, n) in table.drops() {
                let row = sum
                    .drops
                    .entry(tenant.unwrap_or(""))
                    .or_insert([0; DropReason::COUNT]);
                row[reason as usize] = row[reason as usize].wrapping_add(n);
            }
            for (attachment, result, n) in table.handshakes() {
                let row = (sum.handshakes.entry(attachment.unwrap_or("")))
                    .or_insert([0; HandshakeResult::COUNT]);
                row[result as usize] = row[result as usize].wrapping_add(n);
            }
            for (name, traffic) in table.tenants() {
                sum.tenants.entry(name).or_default().add(traffic);
            }
            for (name, f) in table.tenants_flows() {
                let v = [f.get(), f.evictions.get(), f.quota_drops.get()];
                let entry = sum.tenant_flows.entry(name).or_default();
                for (s, x) in entry.iter_mut().zip(v) {
                    *s = s.wrapping_add(x);
                }
            }
            sum.peers.extend(table.peers().map(|v| {
                let labels = v.labels;
                let key = [
                    labels.tenant.as_str(),
                    labels.attachment.as_str(),
                    labels.peer.as_str(),
                    labels.facility.as_str(),
                ];
                let mut peer = PeerSum::default();
                peer.traffic.add(v.traffic);
                peer.more = [v.wire_rx_bytes, v.wire_tx_bytes, v.drops];
                peer.last_handshake = v.last_handshake;
                peer.session = v.session;
                (key, peer)
            }));
            for (name, c) in table.arp() {
                let entry = sum.arp.entry(name).or_default();
                for (s, x) in entry.iter_mut().zip(arp_values(&c)) {
                    *s = s.wrapping_add(x);
                }
            }
            sum.flows = sum.flows.saturating_add(table.flows());
        }
        // A table lists its peers in the plan's order, usually already sorted, and the
        // workers' tables alike: the sort mostly finds and merges runs.
        sum.peers.sort_by(|a, b| a.0.cmp(&b.0));
        sum.peers.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1.merge(&later.1);
            }
            same
        });
        sum
    }

    fn peer_count(&self, now: Instant) -> PeerCount {
        PeerCount {
            up: self.peers.iter().filter(|(_, p)| p.is_up(now)).count(),
            configured: self.peers.len(),
        }
    }

    /// The peers' sums by (tenant, attachment), sorted, up at `now`.
    fn attachments(&self, now: Instant) -> Vec<([&'a str; 2], AttachmentSum)> {
        let mut out: Vec<([&'a str; 2], AttachmentSum)> = Vec::new();
        for (key, p) in &self.peers {
            let at = [key[0], key[1]];
            if out.last().is_none_or(|(k, _)| *k != at) {
                out.push((at, AttachmentSum::default()));
            }
            let Some((_, a)) = out.last_mut() else {
                continue;
            };
            for (s, x) in a.traffic.0.iter_mut().zip(p.traffic.0) {
                *s = s.wrapping_add(x);
            }
            for (s, x) in a.more.iter_mut().zip(p.more) {
                *s = s.wrapping_add(x);
            }
            a.configured += 1;
            a.up += u64::from(p.is_up(now));
        }
        out
    }
}

/// One attachment's peers summed: indexed like [`ATTACHMENT_TRAFFIC`] and [`ATTACHMENT_MORE`].
#[derive(Default)]
struct AttachmentSum {
    traffic: TrafficSum,
    more: [u64; 3],
    configured: u64,
    up: u64,
}

/// Gathers the workers' hot counters at scrape time. The hub writes its families into the
/// scrape's text itself ([`HotCollector::write`]); the registry only holds their names
/// ([`HotCollector::reserved`]), so that no other collector can take them.
pub(crate) struct HotCollector {
    slots: Arc<[ArcSwap<Counters>]>,
    /// Every family, sorted by name.
    families: Vec<Family>,
    /// [`DropReason::ALL`] and [`HandshakeResult::ALL`] sorted by their label values.
    reasons: Vec<DropReason>,
    results: Vec<HandshakeResult>,
    /// `metrics.peer_series`, as [`peer_series_code`] encodes it.
    peer_series: AtomicU8,
}

/// The state of one scrape: every worker's table, as of the monotonic `now`, which is the
/// wall clock time `wall`.
pub(crate) struct Scrape {
    tables: Vec<Arc<Counters>>,
    now: Instant,
    wall: SystemTime,
    peer_series: PeerSeries,
}

impl HotCollector {
    pub(crate) fn new(slots: Arc<[ArcSwap<Counters>]>) -> Self {
        let mut reasons = DropReason::ALL.to_vec();
        reasons.sort_by_key(|r| r.as_str());
        let mut results = HandshakeResult::ALL.to_vec();
        results.sort_by_key(|r| r.as_str());
        HotCollector {
            slots,
            families: Family::all(),
            reasons,
            results,
            peer_series: AtomicU8::new(peer_series_code(PeerSeries::default())),
        }
    }

    /// A collector that holds the descriptions of every family and collects nothing: what the
    /// hub registers in its registry.
    pub(crate) fn reserved(&self) -> prometheus::Result<Reserved> {
        Reserved::of(self.families.iter().map(|f| f.def()))
    }

    pub(crate) fn set_peer_series(&self, p: PeerSeries) {
        self.peer_series.store(peer_series_code(p), Relaxed);
    }

    /// Takes every worker's current table for a scrape at `now`, which is `wall`.
    pub(crate) fn scrape(&self, now: Instant, wall: SystemTime) -> Scrape {
        Scrape {
            tables: self.slots.iter().map(ArcSwap::load_full).collect(),
            now,
            wall,
            peer_series: peer_series_of(self.peer_series.load(Relaxed)),
        }
    }

    /// Hands the families of `scrape` to `sink`, in order of their names; before each,
    /// `between(sink, name)` may write what sorts before it.
    pub(crate) fn write<S: Sink>(
        &self,
        scrape: &Scrape,
        sink: &mut S,
        mut between: impl FnMut(&mut S, &str),
    ) {
        let now = scrape.now;
        let sum = Sum::of(&scrape.tables);
        let attachments = sum.attachments(now);
        let peer_traffic = scrape.peer_series == PeerSeries::All;
        let peer_state = scrape.peer_series != PeerSeries::None;
        let peers = sum.peer_count(now);
        for &family in &self.families {
            let def = family.def();
            between(sink, def.name);
            sink.family(def);
            match family {
                Family::TenantTraffic(i) => {
                    for (name, t) in &sum.tenants {
                        sink.sample(&[*name], Value::Count(t.0[i]));
                    }
                }
                Family::TenantFlows(i) => {
                    for (name, v) in &sum.tenant_flows {
                        sink.sample(&[*name], Value::Count(v[i]));
                    }
                }
                Family::PeerTraffic(i) if peer_traffic => {
                    for (k, (key, p)) in sum.peers.iter().enumerate() {
                        sink.keyed_sample(k, key, Value::Count(p.traffic.0[i]));
                    }
                }
                Family::PeerMore(i) if peer_traffic => {
                    for (k, (key, p)) in sum.peers.iter().enumerate() {
                        sink.keyed_sample(k, key, Value::Count(p.more[i]));
                    }
                }
                Family::PeerTraffic(_) | Family::PeerMore(_) => {}
                Family::Arp(i) => {
                    for (name, v) in &sum.arp {
                        sink.sample(&[*name], Value::Count(v[i]));
                    }
                }
                Family::PeerLastHandshake if peer_state => {
                    for (k, (key, p)) in sum.peers.iter().enumerate() {
                        let at = p
                            .last_handshake
                            .map_or(0.0, |t| unix_seconds(t, now, scrape.wall));
                        sink.keyed_sample(k, key, Value::Real(at));
                    }
                }
                Family::PeerUp if peer_state => {
                    for (k, (key, p)) in sum.peers.iter().enumerate() {
                        sink.keyed_sample(k, key, Value::Count(u64::from(p.is_up(now))));
                    }
                }
                Family::PeerLastHandshake | Family::PeerUp => {}
                // Every reason of every tenant (so that rate() sees a series from 0), of no
                // tenant only those that happened.
                Family::Drops => {
                    rows(sink, &sum.drops, &self.reasons, |r| {
                        (r as usize, r.as_str())
                    });
                }
                Family::Handshakes => {
                    rows(sink, &sum.handshakes, &self.results, |r| {
                        (r as usize, r.as_str())
                    });
                }
                Family::PeersConfigured => {
                    sink.sample(&[], Value::Count(peers.configured as u64));
                }
                Family::PeersUp => sink.sample(&[], Value::Count(peers.up as u64)),
                Family::Flows => sink.sample(&[], Value::Count(sum.flows)),
                Family::Workers => sink.sample(&[], Value::Count(scrape.tables.len() as u64)),
                Family::Worker(i) => {
                    for (w, table) in scrape.tables.iter().enumerate() {
                        let n = [&table.received, &table.handed_on][i].get();
                        sink.sample(&[worker_label(w)], Value::Count(n));
                    }
                }
                Family::AttachmentTraffic(i) => {
                    for (key, a) in &attachments {
                        sink.sample(key, Value::Count(a.traffic.0[i]));
                    }
                }
                Family::AttachmentMore(i) => {
                    for (key, a) in &attachments {
                        sink.sample(key, Value::Count(a.more[i]));
                    }
                }
                Family::AttachmentPeersConfigured => {
                    for (key, a) in &attachments {
                        sink.sample(key, Value::Count(a.configured));
                    }
                }
                Family::AttachmentPeersUp => {
                    for (key, a) in &attachments {
                        sink.sample(key, Value::Count(a.up));
                    }
                }
            }
        }
    }
}

fn peer_series_code(p: PeerSeries) -> u8 {
    match p {
        PeerSeries::All => 0,
        PeerSeries::State => 1,
        PeerSeries::None => 2,
    }
}

fn peer_series_of(code: u8) -> PeerSeries {
    match code {
        1 => PeerSeries::State,
        2 => PeerSeries::None,
        _ => PeerSeries::All,
    }
}

/// Family names in the registry of families the hub writes itself ([`HotCollector::write`],
/// a [`TextCollector`]): it describes them and collects nothing.
pub(crate) struct Reserved {
    descs: Vec<Desc>,
}

impl Reserved {
    pub(crate) fn of<'d>(defs: impl Iterator<Item = &'d Def>) -> prometheus::Result<Reserved> {
        let descs = defs
            .map(|d| {
                Desc::new(
                    d.name.to_owned(),
                    d.help.to_owned(),
                    d.labels.iter().map(|l| (*l).to_owned()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(Reserved { descs })
    }
}

/// A collector whose families [`super::MetricsHub`] writes straight into the scrape's text
/// through a [`Sink`] ([`super::MetricsHub::register_text`]), instead of as `MetricFamily`
/// protos with a `String` per label: for families with a series per facility.
pub(crate) trait TextCollector: Send + Sync {
    /// Every family it writes (the registry reserves their names).
    fn defs(&self) -> Vec<&'static Def>;

    /// Writes its families, each once, in any order; a family's samples sorted by their label
    /// values in label order, as `Registry::gather` sorts them.
    fn write(&self, sink: &mut dyn Sink);
}

impl Collector for Reserved {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

/// `t` as Unix time, given that the monotonic `now` is the wall clock `wall`.
fn unix_seconds(t: Instant, now: Instant, wall: SystemTime) -> f64 {
    wall.checked_sub(now.saturating_duration_since(t))
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The families as `MetricFamily` protos, what a registered `Collector` would return: the
/// tests read values from them and compare the text with `prometheus::TextEncoder`'s.
#[cfg(test)]
pub(crate) mod proto {
    use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

    use super::*;

    #[derive(Default)]
    pub(crate) struct ProtoSink {
        pub(crate) families: Vec<MetricFamily>,
        def: Option<&'static Def>,
    }

    impl Sink for ProtoSink {
        fn family(&mut self, def: &'static Def) {
            let mut f = MetricFamily::default();
            f.set_name(def.name.to_owned());
            f.set_help(def.help.to_owned());
            f.set_field_type(def.kind);
            self.families.push(f);
            self.def = Some(def);
        }

        fn sample(&mut self, labels: &[&str], value: Value) {
            let def = self.def.expect("a family first");
            assert_eq!(def.labels.len(), labels.len(), "{}", def.name);
            let pairs = (def.labels.iter().zip(labels))
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name((*name).to_owned());
                    pair.set_value((*value).to_owned());
                    pair
                })
                .collect();
            let mut m = Metric::from_label(pairs);
            match def.kind {
                MetricType::GAUGE => {
                    let mut g = Gauge::default();
                    g.set_value(value.as_f64());
                    m.set_gauge(g);
                }
                _ => {
                    let mut c = Counter::default();
                    c.set_value(value.as_f64());
                    m.set_counter(c);
                }
            }
            let f = self.families.last_mut().expect("a family first");
            f.mut_metric().push(m);
        }
    }

    impl HotCollector {
        /// Every family (empty ones too) as of the monotonic `now`, which is `wall`.
        pub(crate) fn families_at(&self, now: Instant, wall: SystemTime) -> Vec<MetricFamily> {
            let mut sink = ProtoSink::default();
            self.write(&self.scrape(now, wall), &mut sink, |_, _| {});
            sink.families
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PeerLabels;
    use crate::vocab::Names;

    fn peer(tenant: &str, name: &str) -> PeerLabels {
        PeerLabels {
            peer: name.into(),
            tenant: tenant.into(),
            attachment: format!("{tenant}-wg"),
            facility: "4212345674".into(),
        }
    }

    /// A worker's table of `tenants` and `peers` (no attachments).
    fn table(base: Instant, tenants: Vec<String>, peers: Vec<PeerLabels>) -> Counters {
        let attachments = vec![];
        Counters::new(
            base,
            Names {
                tenants,
                attachments,
                arp_attachments: vec![],
                peers,
            },
        )
    }

    fn collector(tables: Vec<Arc<Counters>>) -> HotCollector {
        let slots: Arc<[ArcSwap<Counters>]> = tables.into_iter().map(ArcSwap::new).collect();
        HotCollector::new(slots)
    }

    fn value(families: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let f = families.iter().find(|f| f.name() == name)?;
        let m = f.get_metric().iter().find(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|p| p.name() == *k && p.value() == *v)
            })
        })?;
        Some(match f.get_field_type() {
            MetricType::GAUGE => m.get_gauge().get_value(),
            _ => m.get_counter().get_value(),
        })
    }

    /// ARP series exist for ethernet attachments only, summed over workers, and continue
    /// by attachment name in the table of a new plan.
    #[test]
    fn arp_series_are_the_ethernet_attachments_and_survive_a_reload() {
        let names = |attachments: &[&str]| Names {
            tenants: vec!["carrier".into()],
            attachments: attachments.iter().map(|a| a.to_string()).collect(),
            arp_attachments: vec!["carrier-eth".into()],
            peers: vec![],
        };
        let report = |requests, neighbours| ArpCounts {
            requests,
            replies: 2,
            failures: 1,
            neighbours,
        };
        let base = Instant::now();
        let w0 = Counters::new(base, names(&["carrier-wg", "carrier-eth"]));
        let w1 = Counters::new(base, names(&["carrier-wg", "carrier-eth"]));
        w0.count_arp(1, report(5, 3));
        w1.count_arp(1, report(1, 4));
        w0.count_arp(0, report(9, 9));
        let wall = SystemTime::now();
        let eth = [("attachment", "carrier-eth")];
        let expect = |f: &[MetricFamily]| {
            for (name, v) in [
                ("ixgw_arp_requests_total", 6.0),
                ("ixgw_arp_replies_total", 4.0),
                ("ixgw_arp_failures_total", 2.0),
                ("ixgw_arp_neighbours", 7.0),
            ] {
                assert_eq!(value(f, name, &eth), Some(v), "{name}");
                let family = f.iter().find(|x| x.name() == name).unwrap();
                assert_eq!(family.get_metric().len(), 1, "{name}: ethernet only");
            }
        };
        let slots: Arc<[ArcSwap<Counters>]> = [Arc::new(w0), Arc::new(w1)]
            .into_iter()
            .map(ArcSwap::new)
            .collect();
        let c = HotCollector::new(Arc::clone(&slots));
        expect(&c.families_at(base, wall));

        // A reload: the ethernet attachment is numbered anew, the WireGuard one went, a
        // plain one came.
        for slot in slots.iter() {
            let old = slot.load_full();
            slot.store(Arc::new(
                old.successor(names(&["carrier-lan", "carrier-eth"])),
            ));
        }
        let f = c.families_at(base, wall);
        expect(&f);
        let lan = [("attachment", "carrier-lan")];
        assert_eq!(value(&f, "ixgw_arp_requests_total", &lan), None);
    }

    #[test]
    fn descs_match_the_emitted_families() {
        let c = collector(vec![Arc::new(table(
            Instant::now(),
            vec!["a".into()],
            vec![peer("a", "p")],
        ))]);
        let reserved = c.reserved().unwrap();
        let described: Vec<&str> = reserved.desc().iter().map(|d| d.fq_name.as_str()).collect();
        let emitted: Vec<String> = (c.families_at(Instant::now(), SystemTime::now()).iter())
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(described, emitted);
        assert!(reserved.descs.iter().all(|d| !d.help.is_empty()));
        assert!(reserved.collect().is_empty(), "the hub writes them");
        let mut sorted = described.clone();
        sorted.sort_unstable();
        assert_eq!(described, sorted, "in the order of a scrape");
    }

    #[test]
    fn peers_up_follows_reject_after_time_and_timestamps_are_unix_time() {
        let base = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let table = table(
            base,
            vec!["a".into()],
            vec![peer("a", "fresh"), peer("a", "stale"), peer("a", "never")],
        );
        table.peer_handshake(0, base + Duration::from_secs(300));
        table.peer_handshake(1, base + Duration::from_secs(100));
        let now = base + Duration::from_secs(400);

        let f = collector(vec![Arc::new(table)]).families_at(now, wall);

        assert_eq!(value(&f, "ixgw_peers_configured", &[]), Some(3.0));
        assert_eq!(value(&f, "ixgw_peers_up", &[]), Some(1.0));
        for (peer, up) in [("fresh", 1.0), ("stale", 0.0), ("never", 0.0)] {
            assert_eq!(
                value(&f, "ixgw_peer_up", &[("peer", peer)]),
                Some(up),
                "{peer}"
            );
        }
        let ts = "ixgw_peer_last_handshake_timestamp_seconds";
        assert_eq!(
            value(&f, ts, &[("peer", "fresh")]),
            Some(1_700_000_000.0 - 100.0)
        );
        assert_eq!(
            value(&f, ts, &[("peer", "stale")]),
            Some(1_700_000_000.0 - 300.0)
        );
        assert_eq!(value(&f, ts, &[("peer", "never")]), Some(0.0));
    }

    /// What systemd's `STATUS=` says is what the gauges say.
    #[test]
    fn peer_count_is_what_the_gauges_export() {
        let base = Instant::now();
        let table = table(
            base,
            vec![],
            vec![peer("a", "fresh"), peer("a", "stale"), peer("b", "ipsec")],
        );
        table.peer_handshake(0, base + Duration::from_secs(300));
        table.peer_handshake(1, base + Duration::from_secs(100));
        table.set_established(2, true);
        let now = base + Duration::from_secs(400);
        let slots: Arc<[ArcSwap<Counters>]> =
            [Arc::new(table)].into_iter().map(ArcSwap::new).collect();
        let f = HotCollector::new(slots.clone()).families_at(now, SystemTime::now());

        let count = peer_count(&slots, now);

        assert_eq!(
            count,
            PeerCount {
                up: 2,
                configured: 3
            }
        );
        assert_eq!(value(&f, "ixgw_peers_up", &[]), Some(count.up as f64));
        assert_eq!(
            value(&f, "ixgw_peers_configured", &[]),
            Some(count.configured as f64)
        );
    }

    #[test]
    fn peer_up_boundary_is_exclusive() {
        let base = Instant::now();
        let table = table(base, vec![], vec![peer("a", "p")]);
        table.peer_handshake(0, base);
        let c = collector(vec![Arc::new(table)]);
        let wall = SystemTime::now();

        let just_before = c.families_at(base + PEER_UP_WITHIN - Duration::from_nanos(1), wall);
        let at = c.families_at(base + PEER_UP_WITHIN, wall);

        assert_eq!(value(&just_before, "ixgw_peers_up", &[]), Some(1.0));
        assert_eq!(value(&at, "ixgw_peers_up", &[]), Some(0.0));
    }

    /// A peer with a session state (IPsec) is up while it says so, whatever the age of its
    /// last handshake: an IKE SA lives for hours, and a deleted one is down at once.
    #[test]
    fn a_session_state_decides_over_the_handshake_age() {
        let base = Instant::now();
        let table = table(base, vec![], vec![peer("a", "old"), peer("a", "deleted")]);
        table.peer_handshake(0, base);
        table.set_established(0, true);
        table.peer_handshake(1, base + Duration::from_secs(3600));
        table.set_established(1, false);
        let c = collector(vec![Arc::new(table)]);
        let f = c.families_at(base + Duration::from_secs(3601), SystemTime::now());
        assert_eq!(
            value(&f, "ixgw_peers_up", &[]),
            Some(1.0),
            "old is up, deleted is not"
        );
        assert_eq!(value(&f, "ixgw_peer_up", &[("peer", "old")]), Some(1.0));
        assert_eq!(value(&f, "ixgw_peer_up", &[("peer", "deleted")]), Some(0.0));
    }

    #[test]
    fn latest_handshake_of_any_worker_wins() {
        let base = Instant::now();
        let w0 = table(base, vec![], vec![peer("a", "p")]);
        let w1 = table(base, vec![], vec![peer("a", "p")]);
        w0.peer_handshake(0, base + Duration::from_secs(50));
        w1.peer_handshake(0, base + Duration::from_secs(20));
        let now = base + Duration::from_secs(60);
        let wall = UNIX_EPOCH + Duration::from_secs(1000);

        let f = collector(vec![Arc::new(w0), Arc::new(w1)]).families_at(now, wall);

        assert_eq!(
            value(&f, "ixgw_peer_last_handshake_timestamp_seconds", &[]),
            Some(990.0)
        );
        assert_eq!(value(&f, "ixgw_peers_configured", &[]), Some(1.0));
    }

    #[test]
    fn unix_seconds_never_goes_below_the_epoch() {
        let now = Instant::now();
        let t = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        let wall = UNIX_EPOCH + Duration::from_secs(5);
        let expected = if t == now { 5.0 } else { 0.0 };
        assert_eq!(unix_seconds(t, now, wall), expected);
        assert_eq!(unix_seconds(now, now, wall), 5.0);
    }
}
