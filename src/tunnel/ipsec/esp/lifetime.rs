//! What an SA has protected, for the soft and hard lifetimes IKE configures
//! [RFC 4301 § 4.4.2.1]. The SA only counts; IKE decides, rekeying at the soft limit and
//! deleting at the hard one.

/// Packets and bytes an SA protected. Bytes are those of the Payload Data, the inner
/// packets, without ESP overhead or padding; a packet is counted once its integrity is
/// verified (inbound) or once it is sealed (outbound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub packets: u64,
}

/// Byte and packet limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
}

/// Which limit an SA has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expiry {
    /// Below every limit.
    Live,
    /// A soft limit is reached: time to rekey.
    Soft,
    /// A hard limit is reached: the SA must go.
    Hard,
}

impl Usage {
    pub(super) fn count_packet(&mut self) {
        self.packets = self.packets.saturating_add(1);
    }

    pub(super) fn count_bytes(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    /// The most severe limit reached; a limit is reached when the count equals it.
    pub fn expiry(&self, limits: &Limits) -> Expiry {
        let reached = |count: u64, limit: Option<u64>| limit.is_some_and(|l| count >= l);
        if reached(self.bytes, limits.hard_bytes) || reached(self.packets, limits.hard_packets) {
            Expiry::Hard
        } else if reached(self.bytes, limits.soft_bytes)
            || reached(self.packets, limits.soft_packets)
        {
            Expiry::Soft
        } else {
            Expiry::Live
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_the_most_severe_limit_reached() {
        let limits = Limits {
            soft_bytes: Some(1000),
            hard_bytes: Some(2000),
            soft_packets: Some(10),
            hard_packets: Some(20),
        };
        let usage = |bytes, packets| Usage { bytes, packets };
        assert_eq!(usage(0, 0).expiry(&limits), Expiry::Live);
        assert_eq!(usage(999, 9).expiry(&limits), Expiry::Live);
        assert_eq!(usage(1000, 0).expiry(&limits), Expiry::Soft);
        assert_eq!(usage(0, 10).expiry(&limits), Expiry::Soft);
        assert_eq!(usage(2000, 0).expiry(&limits), Expiry::Hard);
        assert_eq!(usage(1500, 20).expiry(&limits), Expiry::Hard);
        assert_eq!(
            usage(u64::MAX, u64::MAX).expiry(&Limits::default()),
            Expiry::Live
        );
        let only_hard = Limits {
            hard_packets: Some(1),
            ..Limits::default()
        };
        assert_eq!(usage(0, 1).expiry(&only_hard), Expiry::Hard);
    }

    #[test]
    fn counters_saturate() {
        let mut u = Usage {
            bytes: u64::MAX - 1,
            packets: u64::MAX,
        };
        u.count_packet();
        u.count_bytes(10);
        assert_eq!(
            u,
            Usage {
                bytes: u64::MAX,
                packets: u64::MAX
            }
        );
    }
}
