//! Stateless 1:1 prefix translation between a tenant's internal prefixes and its exchange
//! prefixes ("twice NAT": source and destination in one pass), with incremental checksums
//! [RFC 1624], ICMP error payload translation and TCP MSS clamping.
//!
//! Layer contract: pure functions; no allocation per packet.

#![forbid(unsafe_code)]

use ipnetwork::Ipv4Network;

use crate::config::Network;
use crate::dataplane::DropReason;
use crate::ids::{ExchangeV4, InternalV4};

/// The mapping of one tenant: its (internal, exchange) prefix pairs, same length each, host
/// bits kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantMap {
    networks: Vec<Network>,
}

impl TenantMap {
    pub fn new(networks: &[Network]) -> Self {
        TenantMap {
            networks: networks.to_vec(),
        }
    }

    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// The exchange address of an internal address, if one of the tenant's internal prefixes
    /// holds it.
    pub fn to_exchange(&self, a: InternalV4) -> Option<ExchangeV4> {
        let _ = a;
        todo!()
    }

    /// The internal address of an exchange address, if one of the tenant's exchange prefixes
    /// holds it.
    pub fn to_internal(&self, x: ExchangeV4) -> Option<InternalV4> {
        let _ = x;
        todo!()
    }
}

/// Replaces the host part: `prefix.network() | (addr & !prefix.mask())`.
pub fn remap(addr: std::net::Ipv4Addr, from: Ipv4Network, to: Ipv4Network) -> std::net::Ipv4Addr {
    let _ = (addr, from, to);
    todo!()
}

/// Translates one IPv4 packet in place from the source tenant `from` to the destination
/// tenant `to`: src ∈ from.internal → from.exchange, dst ∈ to.exchange → to.internal; the TTL
/// is decremented; IPv4/TCP/UDP/ICMP checksums are patched incrementally; an ICMP error's
/// quoted header is translated the opposite way (its src ∈ to.exchange → to.internal, its dst
/// ∈ from.internal → from.exchange) with its checksums; a TCP SYN's MSS option is lowered to
/// `mss_clamp` when it is larger.
///
/// The packet must have passed [`crate::wire::inspect`]. Errors: `Ttl` when the TTL is ≤ 1,
/// `NoRoute` when an address lies in no prefix of its tenant, `Malformed` for an inconsistent
/// packet.
pub fn translate(
    packet: &mut [u8],
    from: &TenantMap,
    to: &TenantMap,
    mss_clamp: Option<u16>,
) -> Result<(), DropReason> {
    let _ = (packet, from, to, mss_clamp);
    todo!()
}
