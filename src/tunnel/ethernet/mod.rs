//! The `ethernet` attachment (a carrier's IP-VPN handed over on an Ethernet port, one VLAN per
//! customer network): its sans-IO half. So far the link ([`link`]: which received frames are
//! the gateway's, ARP answered, inner packets framed to their next hop) and its neighbour
//! cache ([`arp_cache`]); frames, 802.1Q tags and ARP packets are read and built by
//! [`crate::wire::ethernet`]. The attachment itself (config, the pnet datalink channel, routes
//! into the tenant's space, counted drops) comes next.

pub mod arp_cache;
pub mod link;

pub use arp_cache::{ArpCache, ArpStats, ArpTimers, Lookup};
pub use link::{Link, LinkConfig, LinkRefusal, Received, Sent};
