//! The workers' counters summed and keyed by names, and the deltas between two such sums:
//! the part of the recorder that is pure (no clock, no file).
//!
//! Names, not the plan's indices, key everything: indices change on every reload, names
//! carry over ([`crate::vocab::Counters::successor`] continues counts by name), so the delta
//! of a tenant, pair or peer the reload kept is right across it. A key that disappears had its
//! last delta written before the reload ([`super::Cut::Reload`]); a key whose count went down
//! (removed, then added again) counts from zero.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::record::{Cut, PairRow, PeerRow, Record, TenantRow, Traffic, VERSION};
use crate::vocab::Counters;

/// (tenant, attachment, peer, facility code).
pub type PeerKey = (String, String, String, String);

/// Cumulative counts of every worker, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// (from tenant, to tenant) → [packets, bytes].
    pub pairs: BTreeMap<(String, String), [u64; 2]>,
    pub tenants: BTreeMap<String, Traffic>,
    pub peers: BTreeMap<PeerKey, Traffic>,
}

fn traffic(t: &crate::vocab::Traffic) -> Traffic {
    Traffic::from_array([
        t.rx_packets.get(),
        t.rx_bytes.get(),
        t.tx_packets.get(),
        t.tx_bytes.get(),
    ])
}

impl Totals {
    /// Sums the workers' current tables (as the scraper does; not one atomic snapshot, so a
    /// packet may be in a tenant's count and not yet in its peer's: the next record has it).
    pub fn of(tables: &[Arc<Counters>]) -> Self {
        let mut sum = Totals::default();
        for table in tables {
            for (from, to, p) in table.pairs() {
                let (packets, bytes) = (p.packets.get(), p.bytes.get());
                if packets == 0 && bytes == 0 {
                    continue;
                }
                let e = sum
                    .pairs
                    .entry((from.to_owned(), to.to_owned()))
                    .or_default();
                e[0] = e[0].wrapping_add(packets);
                e[1] = e[1].wrapping_add(bytes);
            }
            for (name, t) in table.tenants() {
                sum.tenants
                    .entry(name.to_owned())
                    .or_default()
                    .add(&traffic(t));
            }
            for p in table.peers() {
                let l = p.labels;
                let key = (
                    l.tenant.clone(),
                    l.attachment.clone(),
                    l.peer.clone(),
                    l.facility.clone(),
                );
                sum.peers.entry(key).or_default().add(&traffic(p.traffic));
            }
        }
        sum
    }
}

/// What grew from `last` to `now`: the increase, or all of `now` if it went down (the key was
/// removed and added again, counting from zero).
fn grew(now: u64, last: Option<u64>) -> u64 {
    match last {
        Some(l) if now >= l => now - l,
        _ => now,
    }
}

fn traffic_delta(now: &Traffic, last: Option<&Traffic>) -> Traffic {
    let n = now.to_array();
    let l = last.map(|l| l.to_array());
    let mut v = [0; 4];
    for (i, d) in v.iter_mut().enumerate() {
        *d = grew(n[i], l.map(|l| l[i]));
    }
    Traffic::from_array(v)
}

/// The record of `[start, end)` from the totals `last` at its start to `now` at its end.
/// `names`: facility code → name, for the peer rows.
pub fn delta(
    last: &Totals,
    now: &Totals,
    (start, end): (i64, i64),
    interval: u64,
    cut: Cut,
    names: &HashMap<String, String>,
) -> Record {
    let pairs = now
        .pairs
        .iter()
        .map(|((from, to), v)| {
            let l = last.pairs.get(&(from.clone(), to.clone()));
            PairRow {
                from: from.clone(),
                to: to.clone(),
                packets: grew(v[0], l.map(|l| l[0])),
                bytes: grew(v[1], l.map(|l| l[1])),
            }
        })
        .filter(|r| r.packets != 0 || r.bytes != 0)
        .collect();
    let tenants = now
        .tenants
        .iter()
        .map(|(name, t)| TenantRow {
            tenant: name.clone(),
            traffic: traffic_delta(t, last.tenants.get(name)),
        })
        .filter(|r| !r.traffic.is_zero())
        .collect();
    let peers = now
        .peers
        .iter()
        .map(|(key, t)| PeerRow {
            tenant: key.0.clone(),
            attachment: key.1.clone(),
            peer: key.2.clone(),
            facility: key.3.clone(),
            facility_name: names.get(&key.3).cloned(),
            traffic: traffic_delta(t, last.peers.get(key)),
        })
        .filter(|r| !r.traffic.is_zero())
        .collect();
    Record {
        v: VERSION,
        start,
        end,
        interval,
        cut,
        pairs,
        tenants,
        peers,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::vocab::{Names, PeerLabels};

    fn label(peer: &str, tenant: &str) -> PeerLabels {
        PeerLabels {
            peer: peer.into(),
            tenant: tenant.into(),
            attachment: format!("{tenant}-wg"),
            facility: "4212345674".into(),
        }
    }

    fn table(tenants: &[&str], peers: &[(&str, &str)]) -> Counters {
        Counters::new(
            Instant::now(),
            Names {
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
                attachments: vec![],
                arp_attachments: vec![],
                peers: peers.iter().map(|(p, t)| label(p, t)).collect(),
            },
        )
    }

    fn names() -> HashMap<String, String> {
        [("4212345674".to_string(), "Omura clinic".to_string())].into()
    }

    #[test]
    fn workers_are_summed_by_name() {
        let w0 = table(&["a", "b"], &[("pa", "a")]);
        let w1 = table(&["b", "a"], &[("pa", "a")]);
        w0.pair(0, 1).add(100);
        w1.pair(1, 0).add(50); // a → b in w1's numbering
        w1.pair(0, 0).add(7); // b → b
        w0.peer(0).rx(100);
        w1.peer(0).rx(50);
        w0.tenant(0).rx(100);
        w1.tenant(1).rx(50);
        let t = Totals::of(&[Arc::new(w0), Arc::new(w1)]);
        assert_eq!(t.pairs[&("a".into(), "b".into())], [2, 150]);
        assert_eq!(t.pairs[&("b".into(), "b".into())], [1, 7]);
        assert_eq!(t.pairs.len(), 2, "pairs that carried nothing are left out");
        assert_eq!(t.tenants["a"].to_array(), [2, 150, 0, 0]);
        assert_eq!(t.tenants["b"].to_array(), [0; 4]);
        let key = ("a".into(), "a-wg".into(), "pa".into(), "4212345674".into());
        assert_eq!(t.peers[&key].rx_bytes, 150);
    }

    #[test]
    fn deltas_between_two_sums() {
        let c = Arc::new(table(&["a", "b"], &[("pa", "a")]));
        c.pair(0, 1).add(1000);
        c.peer(0).rx(1000);
        c.tenant(0).rx(1000);
        let first = Totals::of(std::slice::from_ref(&c));
        let r = delta(
            &Totals::default(),
            &first,
            (10, 60),
            60,
            Cut::Interval,
            &names(),
        );
        assert_eq!(
            r.pairs,
            [PairRow {
                from: "a".into(),
                to: "b".into(),
                packets: 1,
                bytes: 1000
            }]
        );
        assert_eq!(r.peers[0].facility_name.as_deref(), Some("Omura clinic"));
        assert_eq!(r.tenants.len(), 1, "b carried nothing");

        c.pair(0, 1).add(500);
        c.pair(1, 0).add(40);
        let second = Totals::of(std::slice::from_ref(&c));
        let r = delta(&first, &second, (60, 120), 60, Cut::Interval, &names());
        let got: Vec<(&str, &str, u64, u64)> = r
            .pairs
            .iter()
            .map(|p| (p.from.as_str(), p.to.as_str(), p.packets, p.bytes))
            .collect();
        assert_eq!(got, [("a", "b", 1, 500), ("b", "a", 1, 40)]);
        assert!(r.peers.is_empty(), "the peer carried nothing new");
        assert!(r.tenants.is_empty());

        let quiet = delta(&second, &second, (120, 180), 60, Cut::Stop, &names());
        assert!(quiet.pairs.is_empty() && quiet.peers.is_empty());
        assert_eq!(quiet.cut, Cut::Stop);
    }

    /// A reload renumbers tenants and peers; the successor table carries counts by name, so
    /// the deltas across it are what was forwarded, not the totals again.
    #[test]
    fn a_reload_does_not_count_twice() {
        let old = Arc::new(table(&["a", "b"], &[("pa", "a"), ("gone", "b")]));
        old.pair(0, 1).add(1000);
        old.peer(0).rx(1000);
        old.peer(1).tx(1000);
        let before = Totals::of(std::slice::from_ref(&old));
        // The reload: tenant c first, b kept, peer `gone` removed.
        let new = Arc::new(old.successor(Names {
            tenants: vec!["c".into(), "a".into(), "b".into()],
            attachments: vec![],
            arp_attachments: vec![],
            peers: vec![label("pa", "a")],
        }));
        new.pair(1, 2).add(300);
        new.peer(0).rx(300);
        let after = Totals::of(&[new]);
        let r = delta(&before, &after, (0, 60), 60, Cut::Interval, &names());
        assert_eq!(r.pairs.len(), 1);
        assert_eq!((r.pairs[0].packets, r.pairs[0].bytes), (1, 300));
        assert_eq!(r.peers.len(), 1);
        assert_eq!(r.peers[0].peer, "pa");
        assert_eq!(r.peers[0].traffic.rx_bytes, 300);
    }

    #[test]
    fn a_count_that_went_down_counts_from_zero() {
        let mut last = Totals::default();
        last.pairs.insert(("a".into(), "b".into()), [10, 10_000]);
        let mut now = Totals::default();
        now.pairs.insert(("a".into(), "b".into()), [2, 100]);
        let r = delta(&last, &now, (0, 1), 1, Cut::Interval, &HashMap::new());
        assert_eq!((r.pairs[0].packets, r.pairs[0].bytes), (2, 100));
    }

    /// A reload that changes a peer's facility: what it carried stays the old facility's,
    /// and only what came after is the new one's (never the whole lifetime again).
    #[test]
    fn a_peer_that_changes_facility_is_not_counted_twice() {
        let l = |f: &str| PeerLabels {
            peer: "pa".into(),
            tenant: "a".into(),
            attachment: "a-wg".into(),
            facility: f.into(),
        };
        let names = |f: &str| Names {
            tenants: vec!["a".into()],
            attachments: vec![],
            arp_attachments: vec![],
            peers: vec![l(f)],
        };
        let old = Arc::new(Counters::new(Instant::now(), names("4212345674")));
        old.peer(0).rx(1000);
        let before = Totals::of(std::slice::from_ref(&old));
        let none = HashMap::new();
        let r0 = delta(&Totals::default(), &before, (0, 60), 60, Cut::Reload, &none);
        let new = Arc::new(old.successor(names("3219876541")));
        new.peer(0).rx(300);
        let after = Totals::of(&[new]);
        let r1 = delta(&before, &after, (60, 120), 60, Cut::Interval, &none);
        let by_facility = |r: &Record| -> Vec<(String, u64)> {
            (r.peers.iter())
                .map(|p| (p.facility.clone(), p.traffic.rx_bytes))
                .filter(|p| p.1 > 0)
                .collect()
        };
        assert_eq!(by_facility(&r0), [("4212345674".to_string(), 1000)]);
        assert_eq!(by_facility(&r1), [("3219876541".to_string(), 300)]);
    }
}
