//! Hot-path counters of one data-path worker.
//!
//! Each worker owns one [`Counters`] table and is its only writer: an increment is a relaxed
//! load and store of an `AtomicU64`, no lock, no read-modify-write bus lock. The scraper reads
//! the same atomics at scrape time and sums the workers. A table describes itself (tenant and
//! peer labels), so the scraper needs nothing else from the plan; on reload the worker builds a
//! new table for the new plan, carries every count over by name and publishes the new table.

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
    /// Nanoseconds after [`Counters::base`] of the last completed handshake, plus one; 0 =
    /// never.
    last_handshake: AtomicU64,
    /// Tunnels with a session state of their own (IPsec: an established IKE SA) say here
    /// whether the peer is up: [`SESSION_NONE`] until they first do (WireGuard peers never:
    /// they are up by the age of their last handshake), then [`SESSION_DOWN`] or
    /// [`SESSION_UP`].
    session: std::sync::atomic::AtomicU8,
}

/// A peer without a session state of its own (WireGuard).
pub const SESSION_NONE: u8 = 0;
/// A peer whose session state says it is down.
pub const SESSION_DOWN: u8 = 1;
/// A peer whose session state says it is up.
pub const SESSION_UP: u8 = 2;

/// The counters of one worker for one plan.
#[derive(Debug)]
pub struct Counters {
    base: Instant,
    drops: [Counter; DropReason::COUNT],
    handshakes: [Counter; HandshakeResult::COUNT],
    tenant_names: Vec<String>,
    tenants: Box<[Traffic]>,
    tenant_flows: Box<[TenantFlows]>,
    peer_labels: Vec<PeerLabels>,
    peers: Box<[PeerCounters]>,
    flows: AtomicU64,
}

impl Counters {
    /// A zeroed table. `base` anchors the handshake times; the scraper converts them to wall
    /// clock time.
    pub fn new(base: Instant, tenant_names: Vec<String>, peer_labels: Vec<PeerLabels>) -> Self {
        Counters {
            base,
            drops: Default::default(),
            handshakes: Default::default(),
            tenants: tenant_names.iter().map(|_| Traffic::default()).collect(),
            tenant_flows: tenant_names
                .iter()
                .map(|_| TenantFlows::default())
                .collect(),
            tenant_names,
            peers: peer_labels
                .iter()
                .map(|_| PeerCounters::default())
                .collect(),
            peer_labels,
            flows: AtomicU64::new(0),
        }
    }

    /// A table for a new plan that continues this one's counts: global counters, tenants
    /// matched by name, peers by (tenant, attachment, peer name).
    pub fn successor(&self, tenant_names: Vec<String>, peer_labels: Vec<PeerLabels>) -> Self {
        let next = Counters::new(self.base, tenant_names, peer_labels);
        for (a, b) in next.drops.iter().zip(&self.drops) {
            a.set(b.get());
        }
        for (a, b) in next.handshakes.iter().zip(&self.handshakes) {
            a.set(b.get());
        }
        for (i, name) in next.tenant_names.iter().enumerate() {
            if let Some(j) = self.tenant_names.iter().position(|n| n == name) {
                next.tenants[i].carry(&self.tenants[j]);
                let (a, b) = (&next.tenant_flows[i], &self.tenant_flows[j]);
                a.evictions.set(b.evictions.get());
                a.quota_drops.set(b.quota_drops.get());
                a.set(b.get() as usize);
            }
        }
        for (i, l) in next.peer_labels.iter().enumerate() {
            let same = |o: &PeerLabels| {
                o.peer == l.peer && o.tenant == l.tenant && o.attachment == l.attachment
            };
            if let Some(j) = self.peer_labels.iter().position(same) {
                next.peers[i].traffic.carry(&self.peers[j].traffic);
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

    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].add(1);
    }

    /// Counts `n` drops of one reason at once.
    pub fn drops_add(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.drops[reason as usize].add(n);
        }
    }

    #[inline]
    pub fn handshake(&self, result: HandshakeResult) {
        self.handshakes[result as usize].add(1);
    }

    #[inline]
    pub fn tenant(&self, index: usize) -> &Traffic {
        &self.tenants[index]
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

    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[*r as usize].get()))
    }

    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    pub fn handshakes(&self) -> impl Iterator<Item = (HandshakeResult, u64)> + '_ {
        HandshakeResult::ALL
            .iter()
            .map(|r| (*r, self.handshakes[*r as usize].get()))
    }

    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Traffic)> {
        self.tenant_names
            .iter()
            .map(String::as_str)
            .zip(self.tenants.iter())
    }

    pub fn tenants_flows(&self) -> impl Iterator<Item = (&str, &TenantFlows)> {
        self.tenant_names
            .iter()
            .map(String::as_str)
            .zip(self.tenant_flows.iter())
    }

    /// Every peer: labels, traffic, last handshake and session state.
    pub fn peers(&self) -> impl Iterator<Item = (&PeerLabels, &Traffic, Option<Instant>, u8)> {
        self.peer_labels
            .iter()
            .zip(self.peers.iter())
            .enumerate()
            .map(|(i, (l, c))| {
                (
                    l,
                    &c.traffic,
                    self.last_handshake(i),
                    c.session.load(Relaxed),
                )
            })
    }
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

    #[test]
    fn successor_carries_counts_by_name() {
        let base = Instant::now();
        let old = Counters::new(
            base,
            vec!["a".into(), "b".into()],
            vec![labels("p1"), labels("p2")],
        );
        old.drop(DropReason::Policy);
        old.tenant(1).rx(100);
        old.tenant_flows(1).evictions.add(3);
        old.tenant_flows(1).quota_drops.add(4);
        old.tenant_flows(1).set(5);
        old.peer(1).tx(40);
        old.peer_handshake(1, base + std::time::Duration::from_secs(3));

        let new = old.successor(
            vec!["b".into(), "c".into()],
            vec![labels("p2"), labels("p3")],
        );

        assert_eq!(new.drop_count(DropReason::Policy), 1);
        assert_eq!(new.tenant(0).rx_bytes.get(), 100);
        assert_eq!(new.tenant(1).rx_bytes.get(), 0);
        let b = new.tenant_flows(0);
        assert_eq!((b.evictions.get(), b.quota_drops.get(), b.get()), (3, 4, 5));
        assert_eq!(new.tenant_flows(1).evictions.get(), 0);
        assert_eq!(new.peer(0).tx_bytes.get(), 40);
        assert_eq!(
            new.last_handshake(0),
            Some(base + std::time::Duration::from_secs(3))
        );
        assert_eq!(new.last_handshake(1), None);
    }
}
