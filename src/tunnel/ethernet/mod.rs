//! The `ethernet` attachment (a carrier's IP-VPN handed over on an Ethernet port, one VLAN per
//! customer network): its sans-IO half. So far the neighbour cache ([`arp_cache`]); frames,
//! 802.1Q tags and ARP packets are read and built by [`crate::wire::ethernet`]. The
//! attachment itself (config, pnet datalink channel, ARP answers, routes into the tenant's
//! space) comes next.

pub mod arp_cache;

pub use arp_cache::{ArpCache, ArpStats, ArpTimers, Lookup};
