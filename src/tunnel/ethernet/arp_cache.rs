//! The neighbours of an `ethernet` attachment: IPv4 address → MAC, learned from ARP, bounded,
//! with timeouts. Sans-IO: the caller passes `now`, sends the requests [`ArpCache::lookup`]
//! asks for and decides what to do with a packet whose next hop is unresolved (queue one,
//! drop the rest as `arp_unresolved`).
//!
//! States follow RFC 1122 § 2.3.2.1 in spirit: an entry is reachable for `reachable_for` after
//! it was learned; a lookup of an unknown address makes it incomplete and asks for a request,
//! then at most one request per `retry` until `tries` went unanswered, after which the address
//! counts as failed for `retry` (lookups miss without new requests: a silent host cannot make
//! the gateway flood the link). An expired entry turns stale, as Linux's do: its MAC is still
//! used while it is asked for again (a flow does not stall every `reachable_for`), and it
//! fails like an incomplete one if the asking goes unanswered. Learning (RFC 826's merge) refreshes an
//! entry that exists; a new one is created only for an address the gateway itself asked for
//! or that asked the gateway, so a stranger's ARP chatter cannot fill the cache. When it is
//! full, the entry that expires first makes room (an incomplete one before any reachable
//! one).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::ethernet::Mac;

/// How an [`ArpCache`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpTimers {
    /// How long a learned address is used without being heard again.
    pub reachable_for: Duration,
    /// Between two requests for the same address, and how long a failed address stays
    /// failed.
    pub retry: Duration,
    /// Requests sent before an address counts as failed.
    pub tries: u8,
    /// Gratuitous ARP requests a new link sends for its own address, `retry` apart.
    pub announcements: u8,
}

impl Default for ArpTimers {
    /// Linux's defaults in spirit: reachable for 30 s after it was heard (its base reachable
    /// time), a request per second, 3 of them (`mcast_solicit`).
    fn default() -> Self {
        ArpTimers {
            reachable_for: Duration::from_secs(30),
            retry: Duration::from_secs(1),
            tries: 3,
            announcements: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reachable {
        mac: Mac,
        until: Instant,
    },
    /// Expired, still used while asked for again: `tries` requests, the last at `asked`.
    Stale {
        mac: Mac,
        asked: Instant,
        tries: u8,
    },
    /// Asked `tries` times; the last request at `asked`.
    Incomplete {
        asked: Instant,
        tries: u8,
    },
    /// Unanswered: no new request until `until`.
    Failed {
        until: Instant,
    },
}

/// What [`ArpCache::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit(Mac),
    /// Stale: use the MAC, and send an ARP request for it now.
    Probe(Mac),
    /// Not resolved; `request`: send an ARP request for it now.
    Miss {
        request: bool,
    },
}

/// What the cache counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArpStats {
    pub hits: u64,
    pub misses: u64,
    pub requests: u64,
    /// Addresses that never answered `tries` requests.
    pub failed: u64,
    /// Entries dropped to make room.
    pub evicted: u64,
}

/// A bounded ARP cache.
#[derive(Debug)]
pub struct ArpCache {
    entries: HashMap<Ipv4Addr, State>,
    capacity: usize,
    timers: ArpTimers,
    stats: ArpStats,
}

impl ArpCache {
    pub fn new(capacity: usize, timers: ArpTimers) -> ArpCache {
        ArpCache {
            entries: HashMap::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            timers,
            stats: ArpStats::default(),
        }
    }

    pub fn stats(&self) -> ArpStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The MAC of `ip`, or a miss telling whether to send a request now.
    pub fn lookup(&mut self, ip: Ipv4Addr, now: Instant) -> Lookup {
        let t = self.timers;
        let state = match self.entries.get_mut(&ip) {
            Some(s) => s,
            None => {
                self.make_room();
                self.entries.insert(
                    ip,
                    State::Incomplete {
                        asked: now,
                        tries: 1,
                    },
                );
                self.stats.misses += 1;
                self.stats.requests += 1;
                return Lookup::Miss { request: true };
            }
        };
        let request = match *state {
            State::Reachable { mac, until } if now < until => {
                self.stats.hits += 1;
                return Lookup::Hit(mac);
            }
            // Expired: still used, asked for again.
            State::Reachable { mac, .. } => {
                *state = State::Stale {
                    mac,
                    asked: now,
                    tries: 1,
                };
                self.stats.hits += 1;
                self.stats.requests += 1;
                return Lookup::Probe(mac);
            }
            State::Stale { mac, asked, tries } => {
                if now.saturating_duration_since(asked) < t.retry {
                    self.stats.hits += 1;
                    return Lookup::Hit(mac);
                }
                if tries < t.tries {
                    *state = State::Stale {
                        mac,
                        asked: now,
                        tries: tries + 1,
                    };
                    self.stats.hits += 1;
                    self.stats.requests += 1;
                    return Lookup::Probe(mac);
                }
                *state = State::Failed {
                    until: now + t.retry,
                };
                self.stats.failed += 1;
                false
            }
            State::Incomplete { asked, tries }
                if now.saturating_duration_since(asked) >= t.retry =>
            {
                if tries >= t.tries {
                    *state = State::Failed {
                        until: now + t.retry,
                    };
                    self.stats.failed += 1;
                    false
                } else {
                    *state = State::Incomplete {
                        asked: now,
                        tries: tries + 1,
                    };
                    true
                }
            }
            State::Incomplete { .. } => false,
            State::Failed { until } if now >= until => {
                *state = State::Incomplete {
                    asked: now,
                    tries: 1,
                };
                true
            }
            State::Failed { .. } => false,
        };
        self.stats.misses += 1;
        if request {
            self.stats.requests += 1;
        }
        Lookup::Miss { request }
    }

    /// `ip` is at `mac` (an ARP request or reply from it). `for_us`: the packet was addressed
    /// to the gateway (a reply to its request, or a request for its address), so a new entry
    /// may be made; otherwise only an existing one is refreshed. Returns whether an entry
    /// was made or refreshed.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: Mac, for_us: bool, now: Instant) -> bool {
        if mac.is_multicast() || ip.is_unspecified() || ip.is_broadcast() {
            return false;
        }
        let reachable = State::Reachable {
            mac,
            until: now + self.timers.reachable_for,
        };
        if let Some(s) = self.entries.get_mut(&ip) {
            *s = reachable;
            return true;
        }
        if !for_us {
            return false;
        }
        self.make_room();
        self.entries.insert(ip, reachable);
        true
    }

    /// Whether `ip` has a MAC to use (reachable or stale).
    pub fn is_resolved(&self, ip: Ipv4Addr) -> bool {
        matches!(
            self.entries.get(&ip),
            Some(State::Reachable { .. } | State::Stale { .. })
        )
    }

    /// Whether `ip` is being asked for (a packet for it may wait for the answer).
    pub fn is_pending(&self, ip: Ipv4Addr) -> bool {
        matches!(self.entries.get(&ip), Some(State::Incomplete { .. }))
    }

    /// Forgets everything (the attachment's link or addresses changed).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops entries that can no longer answer a lookup (reachable ones expired long ago,
    /// failed ones whose time is over), so that an idle cache shrinks. An address dropped
    /// after its last request went unanswered counts as failed, as it would have at its
    /// next lookup.
    pub fn expire(&mut self, now: Instant) {
        let t = self.timers;
        let stats = &mut self.stats;
        self.entries.retain(|_, s| match *s {
            State::Reachable { until, .. } => now < until + t.reachable_for,
            State::Incomplete { asked, tries } | State::Stale { asked, tries, .. } => {
                let keep = now.saturating_duration_since(asked) < t.retry * 2;
                if !keep && tries >= t.tries {
                    stats.failed += 1;
                }
                keep
            }
            State::Failed { until } => now < until,
        });
    }

    /// Makes room for one more entry when full: the one that expires first goes, an
    /// incomplete or failed one before any reachable one.
    fn make_room(&mut self) {
        if self.entries.len() < self.capacity {
            return;
        }
        let rank = |s: &State| match *s {
            State::Failed { until } => (0, until),
            State::Incomplete { asked, .. } => (0, asked),
            State::Stale { asked, .. } => (1, asked),
            State::Reachable { until, .. } => (1, until),
        };
        let victim = (self.entries.iter())
            .min_by_key(|(_, s)| rank(s))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.entries.remove(&ip);
            self.stats.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 7]);

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    fn cache() -> (ArpCache, Instant) {
        (ArpCache::new(4, ArpTimers::default()), Instant::now())
    }

    #[test]
    fn a_miss_asks_once_per_retry_then_fails_then_asks_again() {
        let (mut c, t0) = cache();
        let s = Duration::from_secs;
        assert_eq!(c.lookup(ip(1), t0), Lookup::Miss { request: true });
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_millis(500)),
            Lookup::Miss { request: false }
        );
        assert_eq!(c.lookup(ip(1), t0 + s(1)), Lookup::Miss { request: true });
        assert_eq!(c.lookup(ip(1), t0 + s(2)), Lookup::Miss { request: true });
        // The third went unanswered: failed for a second, no request.
        assert_eq!(c.lookup(ip(1), t0 + s(3)), Lookup::Miss { request: false });
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_millis(3500)),
            Lookup::Miss { request: false }
        );
        assert_eq!(c.lookup(ip(1), t0 + s(4)), Lookup::Miss { request: true });
        let st = c.stats();
        assert_eq!((st.requests, st.failed, st.misses, st.hits), (4, 1, 7, 0));
    }

    #[test]
    fn an_answer_resolves_until_it_is_not_heard_again() {
        let (mut c, t0) = cache();
        assert_eq!(c.lookup(ip(1), t0), Lookup::Miss { request: true });
        assert!(c.learn(ip(1), MAC, true, t0));
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_secs(29)),
            Lookup::Hit(MAC)
        );
        // 30 s without hearing it: still used, and asked again.
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_secs(30)),
            Lookup::Probe(MAC)
        );
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_millis(30_500)),
            Lookup::Hit(MAC)
        );
        // Any ARP from it refreshes it, even one not for us.
        assert!(c.learn(ip(1), MAC, false, t0 + Duration::from_secs(31)));
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_secs(60)),
            Lookup::Hit(MAC)
        );
    }

    #[test]
    fn a_stale_entry_that_stays_silent_fails() {
        let (mut c, t0) = cache();
        let s = Duration::from_secs;
        c.learn(ip(1), MAC, true, t0);
        assert_eq!(c.lookup(ip(1), t0 + s(30)), Lookup::Probe(MAC));
        assert_eq!(c.lookup(ip(1), t0 + s(31)), Lookup::Probe(MAC));
        assert_eq!(c.lookup(ip(1), t0 + s(32)), Lookup::Probe(MAC));
        assert_eq!(c.lookup(ip(1), t0 + s(33)), Lookup::Miss { request: false });
        assert_eq!(c.lookup(ip(1), t0 + s(34)), Lookup::Miss { request: true });
        assert_eq!((c.stats().failed, c.stats().requests), (1, 4));
    }

    #[test]
    fn strangers_chatter_makes_no_entries_and_bad_addresses_none_at_all() {
        let (mut c, t0) = cache();
        assert!(!c.learn(ip(9), MAC, false, t0), "not asked, not asking us");
        assert!(c.is_empty());
        assert!(!c.learn(ip(9), Mac::BROADCAST, true, t0));
        assert!(!c.learn(Ipv4Addr::UNSPECIFIED, MAC, true, t0));
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_cache_drops_the_unresolved_before_the_resolved() {
        let (mut c, t0) = cache();
        for n in 1..=3 {
            c.learn(ip(n), MAC, true, t0 + Duration::from_secs(u64::from(n)));
        }
        c.lookup(ip(4), t0); // incomplete
        assert_eq!(c.len(), 4);
        c.learn(ip(5), MAC, true, t0 + Duration::from_secs(5));
        assert_eq!(c.len(), 4);
        assert_eq!(c.stats().evicted, 1);
        assert_eq!(
            c.lookup(ip(1), t0 + Duration::from_secs(6)),
            Lookup::Hit(MAC),
            "kept"
        );
        // Full of resolved entries: the one that expires first (ip 1, learned first) goes.
        c.learn(ip(6), MAC, true, t0 + Duration::from_secs(7));
        assert_eq!(c.len(), 4);
        let t = t0 + Duration::from_secs(8);
        assert_eq!(c.lookup(ip(2), t), Lookup::Hit(MAC));
        assert_eq!(c.lookup(ip(6), t), Lookup::Hit(MAC));
        assert!(matches!(c.lookup(ip(1), t), Lookup::Miss { .. }));
    }

    /// A next hop asked `tries` times and never looked up again still counts as failed
    /// when expiry drops it; one asked fewer times was abandoned, not failed.
    #[test]
    fn expiry_counts_an_unanswered_address_as_failed() {
        let (mut c, t0) = cache();
        let s = Duration::from_secs;
        for at in [t0, t0 + s(1), t0 + s(2)] {
            c.lookup(ip(1), at);
        }
        c.lookup(ip(2), t0 + s(2));
        assert_eq!((c.stats().requests, c.stats().failed), (4, 0));
        c.expire(t0 + s(5));
        assert!(c.is_empty());
        assert_eq!(c.stats().failed, 1);
    }

    #[test]
    fn expiry_shrinks_an_idle_cache() {
        let (mut c, t0) = cache();
        c.learn(ip(1), MAC, true, t0);
        c.lookup(ip(2), t0);
        c.expire(t0 + Duration::from_secs(5));
        assert_eq!(c.len(), 1, "the unanswered request is forgotten");
        c.expire(t0 + Duration::from_secs(61));
        assert!(c.is_empty());
    }
}
