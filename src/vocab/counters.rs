//! Hot-path counters of one data-path worker.
//!
//! Each worker owns one [`Counters`] table and is its only writer: an increment is a relaxed
//! load and store of an `AtomicU64`, no lock, no read-modify-write bus lock. The scraper reads
//! the same atomics at scrape time and sums the workers. A table describes itself (tenant and
//! peer labels), so the scraper needs nothing else from the plan; on reload the worker builds a
//! new table for the new plan, carries every count over by name and publishes the new table.
//!
//! Besides the per-tenant and per-peer series the table holds a tenants × tenants matrix of
//! what was forwarded from one tenant to another ([`Counters::pair`]): usage reports for cost
//! sharing are cut from it (`crate::usage`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::DropReason;

macro_rules! results {
    ($($variant:ident => $label:literal,)*) => {
        /// The outcome of one WireGuard handshake message handled by the gateway
        /// (`certificate`: refused, the peer's facility certificate forbids traffic).
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum HandshakeResult { $($variant,)* }

        impl HandshakeResult {
            pub const ALL: &'static [HandshakeResult] = &[$(HandshakeResult::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub const fn as_str(self) -> &'static str {
                match self { $(HandshakeResult::$variant => $label,)* }
            }
        }
    };
}

results! {
    Ok => "ok",
    Invalid => "invalid",
    UnknownPeer => "unknown_peer",
    CookieSent => "cookie_sent",
    Timeout => "timeout",
    Certificate => "certificate",
    // A connection refused before its handshake: too many handshakes in progress on the
    // attachment, or from its address (TLS).
    Busy => "busy",
}

/// A monotonically increasing counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// Packets and bytes in each direction. `rx` is what came out of a tunnel into the gateway,
/// `tx` what the gateway sent into a tunnel; bytes are inner IP bytes.
#[derive(Debug, Default)]
pub struct Traffic {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
}

impl Traffic {
    #[inline]
    pub fn rx(&self, bytes: usize) {
        self.rx_packets.add(1);
        self.rx_bytes.add(bytes as u64);
    }

    #[inline]
    pub fn tx(&self, bytes: usize) {
        self.tx_packets.add(1);
        self.tx_bytes.add(bytes as u64);
    }

    fn carry(&self, old: &Traffic) {
        self.rx_packets.set(old.rx_packets.get());
        self.rx_bytes.set(old.rx_bytes.get());
        self.tx_packets.set(old.tx_packets.get());
        self.tx_bytes.set(old.tx_bytes.get());
    }
}

/// What the gateway forwarded from one tenant to another: packets and inner IP bytes of
/// packets that left into the destination's tunnel.
#[derive(Debug, Default)]
pub struct PairTraffic {
    pub packets: Counter,
    pub bytes: Counter,
}

impl PairTraffic {
    #[inline]
    pub fn add(&self, bytes: usize) {
        self.packets.add(1);
        self.bytes.add(bytes as u64);
    }
}

/// One tenant's share of a worker's flow table.
#[derive(Debug, Default)]
pub struct TenantFlows {
    /// Flows the tenant's hosts opened that the table holds now (a gauge).
    flows: AtomicU64,
    /// Live transient flows of the tenant evicted early to make room for a new flow.
    pub evictions: Counter,
    /// New flows of the tenant's hosts refused by the tenant's or a facility's quota.
    pub quota_drops: Counter,
}

impl TenantFlows {
    #[inline]
    pub fn set(&self, n: usize) {
        self.flows.store(n as u64, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.flows.load(Relaxed)
    }
}

/// Labels of one peer series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLabels {
    pub peer: String,
    pub tenant: String,
    pub attachment: String,
    pub facility: String,
}

#[derive(Debug, Default)]
pub struct PeerCounters {
    pub traffic: Traffic,
    /// Bytes of the tunnel's own packets (WireGuard datagrams, ESP packets) that carried the
    /// peer's traffic: received and authenticated, sent.
    wire_rx_bytes: Counter,
    wire_tx_bytes: Counter,
    /// Packets of the peer the data path dropped once it knew they came from it (after
    /// decryption: spoofed sources, policy, no route, ...).
    drops: Counter,
    /// Where the peer's tunnel packets come from now, as its tunnel last reported it
    /// (written when it changes, never per packet; read by `ixgw show`).
    endpoint: std::sync::Mutex<Option<std::net::SocketAddr>>,
    /// Nanoseconds after [`Counters::base`] of the last completed handshake, plus one; 0 =
    /// never.
    last_handshake: AtomicU64,
    /// Tunnels with a session state of their own (IPsec: an established IKE SA) say here
    /// whether the peer is up: [`SESSION_NONE`] until they first do (WireGuard peers never:
    /// they are up by the age of their last handshake), then [`SESSION_DOWN`] or
    /// [`SESSION_UP`].
    session: std::sync::atomic::AtomicU8,
}

impl PeerCounters {
    fn endpoint(&self) -> Option<std::net::SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_endpoint(&self, to: Option<std::net::SocketAddr>) {
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

/// ARP on an `ethernet` attachment's link: requests and replies the gateway sent, next hops
/// that did not answer (went to the failed state), and the neighbour entries held. Tunnels
/// report deltas of the first three and the current `neighbours`; a [`Counters`] table
/// returns its totals in the same shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArpCounts {
    pub requests: u64,
    pub replies: u64,
    pub failures: u64,
    /// Entries in the neighbour cache (a gauge): reachable, stale, incomplete and failed.
    pub neighbours: u64,
}

/// One attachment's ARP counts (exported only for attachments listed in
/// [`Names::arp_attachments`]).
#[derive(Debug, Default)]
struct ArpRow {
    requests: Counter,
    replies: Counter,
    failures: Counter,
    neighbours: AtomicU64,
}

impl ArpRow {
    fn get(&self) -> ArpCounts {
        ArpCounts {
            requests: self.requests.get(),
            replies: self.replies.get(),
            failures: self.failures.get(),
            neighbours: self.neighbours.load(Relaxed),
        }
    }

    fn carry(&self, old: &ArpRow) {
        let c = old.get();
        self.requests.set(c.requests);
        self.replies.set(c.replies);
        self.failures.set(c.failures);
        self.neighbours.store(c.neighbours, Relaxed);
    }
}

/// A peer without a session state of its own (WireGuard).
pub const SESSION_NONE: u8 = 0;
/// A peer whose session state says it is down.
pub const SESSION_DOWN: u8 = 1;
/// A peer whose session state says it is up.
pub const SESSION_UP: u8 = 2;

/// What a [`Counters`] table counts by name: the plan's tenants, attachments and peers.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub tenants: Vec<String>,
    pub attachments: Vec<String>,
    pub peers: Vec<PeerLabels>,
    /// The attachments (of `attachments`) that speak ARP (`ethernet`): only theirs are
    /// exported by [`Counters::arp`].
    pub arp_attachments: Vec<String>,
}

/// Drops by reason, one row per tenant and a last row for drops of no tenant.
type DropRow = [Counter; DropReason::COUNT];
/// Handshakes by result, one row per attachment and a last row for no attachment.
type HandshakeRow = [Counter; HandshakeResult::COUNT];

/// The counters of one worker for one plan.
#[derive(Debug)]
pub struct Counters {
    base: Instant,
    drops: Box<[DropRow]>,
    handshakes: Box<[HandshakeRow]>,
    attachment_names: Vec<String>,
    /// One row per attachment; `has_arp` says whose are exported.
    arp: Box<[ArpRow]>,
    has_arp: Box<[bool]>,
    tenant_names: Vec<String>,
    tenants: Box<[Traffic]>,
    tenant_flows: Box<[TenantFlows]>,
    /// Indexed `source tenant × tenants + destination tenant`.
    pairs: Box<[PairTraffic]>,
    peer_labels: Vec<PeerLabels>,
    peers: Box<[PeerCounters]>,
    flows: AtomicU64,
    /// Packets and datagrams the worker read from its sockets and devices, and packets it
    /// handed to other workers (both counted per batch).
    pub received: Counter,
    pub handed_on: Counter,
}

impl Counters {
    /// A zeroed table. `base` anchors the handshake times; the scraper converts them to wall
    /// clock time.
    pub fn new(base: Instant, names: Names) -> Self {
        let Names {
            tenants: tenant_names,
            attachments: attachment_names,
            peers: peer_labels,
            arp_attachments,
        } = names;
        Counters {
            base,
            drops: (0..=tenant_names.len())
                .map(|_| std::array::from_fn(|_| Counter::default()))
                .collect(),
            handshakes: (0..=attachment_names.len())
                .map(|_| Default::default())
                .collect(),
            arp: attachment_names.iter().map(|_| ArpRow::default()).collect(),
            has_arp: (attachment_names.iter())
                .map(|n| arp_attachments.contains(n))
                .collect(),
            attachment_names,
            tenants: tenant_names.iter().map(|_| Traffic::default()).collect(),
            tenant_flows: tenant_names
                .iter()
                .map(|_| TenantFlows::default())
                .collect(),
            pairs: (0..tenant_names.len() * tenant_names.len())
                .map(|_| PairTraffic::default())
                .collect(),
            tenant_names,
            peers: peer_labels
                .iter()
                .map(|_| PeerCounters::default())
                .collect(),
            peer_labels,
            flows: AtomicU64::new(0),
            received: Counter::default(),
            handed_on: Counter::default(),
        }
    }

    /// A table for a new plan that continues this one's counts: tenants and attachments
    /// matched by name, peers by (tenant, attachment, peer name), the rows of no tenant and
    /// no attachment as they are.
    pub fn successor(&self, names: Names) -> Self {
        let next = Counters::new(self.base, names);
        let carry_row = |a: &[Counter], b: &[Counter]| {
            for (a, b) in a.iter().zip(b) {
                a.set(b.get());
            }
        };
        carry_row(next.drops.last().unwrap(), self.drops.last().unwrap());
        next.received.set(self.received.get());
        next.handed_on.set(self.handed_on.get());
        carry_row(
            next.handshakes.last().unwrap(),
            self.handshakes.last().unwrap(),
        );
        for (i, name) in next.attachment_names.iter().enumerate() {
            if let Some(j) = self.attachment_names.iter().position(|n| n == name) {
                carry_row(&next.handshakes[i], &self.handshakes[j]);
                next.arp[i].carry(&self.arp[j]);
            }
        }
        for (i, name) in next.tenant_names.iter().enumerate() {
            if let Some(j) = self.tenant_names.iter().position(|n| n == name) {
                carry_row(&next.drops[i], &self.drops[j]);
                next.tenants[i].carry(&self.tenants[j]);
                let (a, b) = (&next.tenant_flows[i], &self.tenant_flows[j]);
                a.evictions.set(b.evictions.get());
                a.quota_drops.set(b.quota_drops.get());
                a.set(b.get() as usize);
            }
        }
        let (n, old_n) = (next.tenant_names.len(), self.tenant_names.len());
        let old_index: Vec<Option<usize>> = next
            .tenant_names
            .iter()
            .map(|name| self.tenant_names.iter().position(|o| o == name))
            .collect();
        for (i, from) in old_index.iter().enumerate() {
            for (j, to) in old_index.iter().enumerate() {
                if let (Some(a), Some(b)) = (from, to) {
                    let (new, old) = (&next.pairs[i * n + j], &self.pairs[a * old_n + b]);
                    new.packets.set(old.packets.get());
                    new.bytes.set(old.bytes.get());
                }
            }
        }
        for (i, l) in next.peer_labels.iter().enumerate() {
            // The facility too: usage is billed per facility, so a peer that now names
            // another facility starts anew (what it carried stays the old facility's).
            let same = |o: &PeerLabels| {
                o.peer == l.peer
                    && o.tenant == l.tenant
                    && o.attachment == l.attachment
                    && o.facility == l.facility
            };
            if let Some(j) = self.peer_labels.iter().position(same) {
                let (a, b) = (&next.peers[i], &self.peers[j]);
                a.traffic.carry(&b.traffic);
                a.wire_rx_bytes.set(b.wire_rx_bytes.get());
                a.wire_tx_bytes.set(b.wire_tx_bytes.get());
                a.drops.set(b.drops.get());
                a.set_endpoint(b.endpoint());
                next.peers[i]
                    .last_handshake
                    .store(self.peers[j].last_handshake.load(Relaxed), Relaxed);
                next.peers[i]
                    .session
                    .store(self.peers[j].session.load(Relaxed), Relaxed);
            }
        }
        next.flows.store(self.flows.load(Relaxed), Relaxed);
        next
    }

    pub fn base(&self) -> Instant {
        self.base
    }

    /// Counts a drop of no tenant (the gateway's own sends, a worker's control queue).
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drops_add(None, reason, 1);
    }

    /// Counts a drop of a packet that arrived on an attachment of tenant `tenant` (an index
    /// into the plan's tenants), or of no tenant.
    #[inline]
    pub fn drop_in(&self, tenant: Option<usize>, reason: DropReason) {
        self.drops_add(tenant, reason, 1);
    }

    /// Counts `n` drops of one reason at once.
    #[inline]
    pub fn drops_add(&self, tenant: Option<usize>, reason: DropReason, n: u64) {
        if n > 0 {
            let last = self.drops.len() - 1;
            let row = tenant.filter(|&t| t < last).unwrap_or(last);
            self.drops[row][reason as usize].add(n);
        }
    }

    /// Counts a handshake message of attachment `attachment` (an index into the plan's
    /// attachments), or of none.
    #[inline]
    pub fn handshake(&self, attachment: Option<usize>, result: HandshakeResult) {
        let last = self.handshakes.len() - 1;
        let row = attachment.filter(|&a| a < last).unwrap_or(last);
        self.handshakes[row][result as usize].add(1);
    }

    /// Adds what attachment `attachment` (an index into the plan's attachments) reported of
    /// its ARP: the counts are deltas, `neighbours` replaces the gauge.
    pub fn count_arp(&self, attachment: usize, c: ArpCounts) {
        if let Some(row) = self.arp.get(attachment) {
            row.requests.add(c.requests);
            row.replies.add(c.replies);
            row.failures.add(c.failures);
            row.neighbours.store(c.neighbours, Relaxed);
        }
    }

    /// The ARP totals of every attachment that speaks ARP, by name.
    pub fn arp(&self) -> impl Iterator<Item = (&str, ArpCounts)> {
        (self.attachment_names.iter())
            .zip(self.arp.iter().zip(self.has_arp.iter()))
            .filter(|(_, (_, &has))| has)
            .map(|(name, (row, _))| (name.as_str(), row.get()))
    }

    /// Counts a packet of peer `index` dropped after it was known to come from the peer.
    #[inline]
    pub fn peer_drop(&self, index: usize) {
        self.peers[index].drops.add(1);
    }

    /// Records where peer `index`'s tunnel packets come from now (when that changes).
    pub fn set_endpoint(&self, index: usize, to: std::net::SocketAddr) {
        self.peers[index].set_endpoint(Some(to));
    }

    /// Counts `bytes` of tunnel packets received from peer `index`.
    #[inline]
    pub fn peer_wire_rx(&self, index: usize, bytes: usize) {
        self.peers[index].wire_rx_bytes.add(bytes as u64);
    }

    /// Counts `bytes` of tunnel packets sent to peer `index`.
    #[inline]
    pub fn peer_wire_tx(&self, index: usize, bytes: usize) {
        self.peers[index].wire_tx_bytes.add(bytes as u64);
    }

    #[inline]
    pub fn tenant(&self, index: usize) -> &Traffic {
        &self.tenants[index]
    }

    /// What was forwarded from tenant `from` to tenant `to` (indices of the plan).
    #[inline]
    pub fn pair(&self, from: usize, to: usize) -> &PairTraffic {
        &self.pairs[from * self.tenant_names.len() + to]
    }

    #[inline]
    pub fn tenant_flows(&self, index: usize) -> &TenantFlows {
        &self.tenant_flows[index]
    }

    #[inline]
    pub fn peer(&self, index: usize) -> &Traffic {
        &self.peers[index].traffic
    }

    /// Records a completed handshake of peer `index` at `now`.
    pub fn peer_handshake(&self, index: usize, now: Instant) {
        let ns = now.saturating_duration_since(self.base).as_nanos() as u64;
        self.peers[index]
            .last_handshake
            .store(ns.saturating_add(1), Relaxed);
    }

    /// Marks peer `index` up or down (tunnels with a session state of their own).
    pub fn set_established(&self, index: usize, up: bool) {
        let s = if up { SESSION_UP } else { SESSION_DOWN };
        self.peers[index].session.store(s, Relaxed);
    }

    /// Peer `index`'s session state: [`SESSION_NONE`], [`SESSION_DOWN`] or [`SESSION_UP`].
    pub fn session(&self, index: usize) -> u8 {
        self.peers[index].session.load(Relaxed)
    }

    /// When peer `index` last completed a handshake.
    pub fn last_handshake(&self, index: usize) -> Option<Instant> {
        match self.peers[index].last_handshake.load(Relaxed) {
            0 => None,
            ns => Some(self.base + std::time::Duration::from_nanos(ns - 1)),
        }
    }

    pub fn set_flows(&self, n: usize) {
        self.flows.store(n as u64, Relaxed);
    }

    pub fn flows(&self) -> u64 {
        self.flows.load(Relaxed)
    }

    /// Drops by tenant (`None`: of no tenant) and reason.
    pub fn drops(&self) -> impl Iterator<Item = (Option<&str>, DropReason, u64)> + '_ {
        let names = self.tenant_names.iter().map(|n| Some(n.as_str()));
        names
            .chain([None])
            .zip(self.drops.iter())
            .flat_map(|(t, row)| {
                DropReason::ALL
                    .iter()
                    .map(move |r| (t, *r, row[*r as usize].get()))
            })
    }

    /// Drops of one reason, summed over tenants.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops
            .iter()
            .map(|row| row[reason as usize].get())
            .fold(0, u64::wrapping_add)
    }

    /// Handshakes by attachment (`None`: of no attachment) and result.
    pub fn handshakes(&self) -> impl Iterator<Item = (Option<&str>, HandshakeResult, u64)> + '_ {
        let names = self.attachment_names.iter().map(|n| Some(n.as_str()));
        names
            .chain([None])
            .zip(self.handshakes.iter())
            .flat_map(|(a, row)| {
                HandshakeResult::ALL
                    .iter()
                    .map(move |r| (a, *r, row[*r as usize].get()))
            })
    }

    /// Handshakes of one result, summed over attachments.
    pub fn handshake_count(&self, result: HandshakeResult) -> u64 {
        self.handshakes
            .iter()
            .map(|row| row[result as usize].get())
            .fold(0, u64::wrapping_add)
    }

    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Traffic)> {
        self.tenant_names
            .iter()
            .map(String::as_str)
            .zip(self.tenants.iter())
    }

    /// Every (source tenant, destination tenant) pair and what was forwarded between them.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str, &PairTraffic)> {
        let n = self.tenant_names.len();
        self.pairs.iter().enumerate().map(move |(k, p)| {
            (
                self.tenant_names[k / n].as_str(),
                self.tenant_names[k % n].as_str(),
                p,
            )
        })
    }

    pub fn tenants_flows(&self) -> impl Iterator<Item = (&str, &TenantFlows)> {
        self.tenant_names
            .iter()
            .map(String::as_str)
            .zip(self.tenant_flows.iter())
    }

    /// Every peer's labels and counts.
    pub fn peers(&self) -> impl Iterator<Item = PeerView<'_>> {
        self.peer_labels
            .iter()
            .zip(self.peers.iter())
            .enumerate()
            .map(|(i, (labels, c))| PeerView {
                labels,
                traffic: &c.traffic,
                wire_rx_bytes: c.wire_rx_bytes.get(),
                wire_tx_bytes: c.wire_tx_bytes.get(),
                drops: c.drops.get(),
                endpoint: c.endpoint(),
                last_handshake: self.last_handshake(i),
                session: c.session.load(Relaxed),
            })
    }
}

/// One peer's counts in one worker's table, as [`Counters::peers`] reads them.
pub struct PeerView<'a> {
    pub labels: &'a PeerLabels,
    pub traffic: &'a Traffic,
    pub wire_rx_bytes: u64,
    pub wire_tx_bytes: u64,
    pub drops: u64,
    pub endpoint: Option<std::net::SocketAddr>,
    pub last_handshake: Option<Instant>,
    /// [`SESSION_NONE`], [`SESSION_DOWN`] or [`SESSION_UP`].
    pub session: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(peer: &str) -> PeerLabels {
        PeerLabels {
            peer: peer.into(),
            tenant: "t".into(),
            attachment: "a".into(),
            facility: "4212345674".into(),
        }
    }

    fn names(tenants: &[&str], attachments: &[&str], peers: &[&str]) -> Names {
        Names {
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            attachments: attachments.iter().map(|a| a.to_string()).collect(),
            peers: peers.iter().map(|p| labels(p)).collect(),
            arp_attachments: vec![],
        }
    }

    #[test]
    fn arp_rows_are_kept_by_attachment_name_and_shown_only_for_arp_attachments() {
        let mut n = names(&["t"], &["wg", "lan", "gone"], &[]);
        n.arp_attachments = vec!["lan".into(), "gone".into()];
        let old = Counters::new(Instant::now(), n);
        let report = |requests, neighbours| ArpCounts {
            requests,
            replies: 2,
            failures: 1,
            neighbours,
        };
        old.count_arp(1, report(5, 3));
        old.count_arp(1, report(1, 4));
        old.count_arp(2, report(9, 9));
        old.count_arp(7, report(9, 9));
        let lan = ArpCounts {
            requests: 6,
            replies: 4,
            failures: 2,
            neighbours: 4,
        };
        assert_eq!(
            old.arp().collect::<Vec<_>>(),
            [("lan", lan), ("gone", report(9, 9))]
        );

        let mut n = names(&["t"], &["new", "lan"], &[]);
        n.arp_attachments = vec!["new".into(), "lan".into()];
        let new = old.successor(n);

        assert_eq!(
            new.arp().collect::<Vec<_>>(),
            [("new", ArpCounts::default()), ("lan", lan)]
        );
    }

    #[test]
    fn successor_carries_counts_by_name() {
        let base = Instant::now();
        let old = Counters::new(base, names(&["a", "b"], &["x", "y"], &["p1", "p2"]));
        old.drop(DropReason::SendFailed);
        old.drop_in(Some(1), DropReason::Policy);
        old.drop_in(Some(0), DropReason::Spoofed);
        old.handshake(Some(1), HandshakeResult::Ok);
        old.handshake(Some(0), HandshakeResult::Invalid);
        old.handshake(None, HandshakeResult::Timeout);
        old.tenant(1).rx(100);
        old.tenant_flows(1).evictions.add(3);
        old.tenant_flows(1).quota_drops.add(4);
        old.tenant_flows(1).set(5);
        old.peer(1).tx(40);
        old.peer_wire_tx(1, 72);
        old.peer_wire_rx(1, 60);
        old.peer_drop(1);
        old.set_endpoint(1, "192.0.2.7:51820".parse().unwrap());
        old.pair(1, 0).add(1000);
        old.pair(0, 1).add(7);
        old.pair(1, 1).add(3);
        old.peer_handshake(1, base + std::time::Duration::from_secs(3));

        let new = old.successor(names(&["b", "c"], &["y", "z"], &["p2", "p3"]));

        let drops: Vec<_> = new.drops().filter(|d| d.2 > 0).collect();
        assert_eq!(
            drops,
            [
                (Some("b"), DropReason::Policy, 1),
                (None, DropReason::SendFailed, 1)
            ]
        );
        let handshakes: Vec<_> = new.handshakes().filter(|h| h.2 > 0).collect();
        assert_eq!(
            handshakes,
            [
                (Some("y"), HandshakeResult::Ok, 1),
                (None, HandshakeResult::Timeout, 1)
            ]
        );
        assert_eq!(new.handshake_count(HandshakeResult::Invalid), 0);
        assert_eq!(new.tenant(0).rx_bytes.get(), 100);
        assert_eq!(new.tenant(1).rx_bytes.get(), 0);
        let b = new.tenant_flows(0);
        assert_eq!((b.evictions.get(), b.quota_drops.get(), b.get()), (3, 4, 5));
        assert_eq!(new.tenant_flows(1).evictions.get(), 0);
        assert_eq!(new.peer(0).tx_bytes.get(), 40);
        let p2 = new.peers().next().unwrap();
        assert_eq!((p2.wire_rx_bytes, p2.wire_tx_bytes, p2.drops), (60, 72, 1));
        assert_eq!(p2.endpoint, Some("192.0.2.7:51820".parse().unwrap()));
        assert_eq!(
            new.last_handshake(0),
            Some(base + std::time::Duration::from_secs(3))
        );
        assert_eq!(new.last_handshake(1), None);
        // b → b carries over; a is gone, c is new.
        assert_eq!(new.pair(0, 0).bytes.get(), 3);
        assert_eq!(new.pair(0, 0).packets.get(), 1);
        for (i, j) in [(0, 1), (1, 0), (1, 1)] {
            assert_eq!(new.pair(i, j).packets.get(), 0, "{i} → {j}");
        }
        let pairs: Vec<(&str, &str, u64)> = old
            .pairs()
            .map(|(a, b, p)| (a, b, p.bytes.get()))
            .filter(|p| p.2 > 0)
            .collect();
        assert_eq!(pairs, [("a", "b", 7), ("b", "a", 1000), ("b", "b", 3)]);
    }

    #[test]
    fn an_index_past_the_plan_counts_as_none() {
        let c = Counters::new(Instant::now(), names(&["a"], &["x"], &[]));
        c.drop_in(Some(7), DropReason::Policy);
        c.handshake(Some(3), HandshakeResult::Ok);
        assert_eq!(
            c.drops().find(|d| d.2 > 0),
            Some((None, DropReason::Policy, 1))
        );
        assert_eq!(
            c.handshakes().find(|h| h.2 > 0),
            Some((None, HandshakeResult::Ok, 1))
        );
    }
}
