//! Longest-prefix match over IPv4 prefixes: one hash map per prefix length present, probed
//! from the longest. With the few distinct lengths real plans use (/32 hosts, /24 sites) a
//! lookup is a handful of hash probes, independent of the number of prefixes. Keys come from
//! the configuration only (lookups never insert), so a fast non-keyed hash is safe here.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use rustc_hash::FxHashMap;

#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    /// (prefix length, network bits → value), longest first.
    levels: Vec<(u8, FxHashMap<u32, T>)>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable { levels: Vec::new() }
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl<T: Copy> PrefixTable<T> {
    /// Inserts `prefix → value`; returns the value it replaces for the very same prefix.
    pub fn insert(&mut self, prefix: Ipv4Network, value: T) -> Option<T> {
        let len = prefix.prefix();
        let key = u32::from(prefix.network()) & mask(len);
        let at = match self.levels.iter().position(|(l, _)| *l <= len) {
            Some(i) if self.levels[i].0 == len => i,
            Some(i) => {
                self.levels.insert(i, (len, FxHashMap::default()));
                i
            }
            None => {
                self.levels.push((len, FxHashMap::default()));
                self.levels.len() - 1
            }
        };
        self.levels[at].1.insert(key, value)
    }

    /// The value of the longest prefix holding `addr`.
    #[inline]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<T> {
        self.lookup_prefix(addr).map(|(_, value)| value)
    }

    /// The length and the value of the longest prefix holding `addr`.
    #[inline]
    pub fn lookup_prefix(&self, addr: Ipv4Addr) -> Option<(u8, T)> {
        let a = u32::from(addr);
        self.levels
            .iter()
            .find_map(|(len, map)| map.get(&(a & mask(*len))).map(|v| (*len, *v)))
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::default();
        t.insert(net("10.0.0.0/8"), 1);
        t.insert(net("10.1.0.0/16"), 2);
        t.insert(net("10.1.2.3/32"), 3);
        t.insert(net("0.0.0.0/0"), 0);
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), Some(3));
        assert_eq!(t.lookup("10.1.2.4".parse().unwrap()), Some(2));
        assert_eq!(t.lookup("10.2.0.1".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), Some(0));
    }

    #[test]
    fn lookup_prefix_names_the_matching_length() {
        let mut t = PrefixTable::default();
        t.insert(net("10.0.0.0/8"), 1);
        t.insert(net("10.1.0.0/16"), 2);
        t.insert(net("10.1.2.3/32"), 3);
        assert_eq!(t.lookup_prefix("10.1.2.3".parse().unwrap()), Some((32, 3)));
        assert_eq!(
            t.lookup_prefix("10.1.255.255".parse().unwrap()),
            Some((16, 2))
        );
        assert_eq!(t.lookup_prefix("10.0.0.0".parse().unwrap()), Some((8, 1)));
        assert_eq!(t.lookup_prefix("11.0.0.0".parse().unwrap()), None);
    }

    #[test]
    fn miss_without_default() {
        let mut t = PrefixTable::default();
        t.insert(net("100.64.0.0/16"), 7);
        assert_eq!(t.lookup("100.65.0.1".parse().unwrap()), None);
        assert_eq!(t.insert(net("100.64.0.0/16"), 8), Some(7));
        assert_eq!(t.lookup("100.64.255.255".parse().unwrap()), Some(8));
    }
}
