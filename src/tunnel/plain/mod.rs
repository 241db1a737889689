//! `plain` attachments: inner IP packets straight from and to a TUN device, no encryption.

use ipnetwork::Ipv4Network;

/// A plain attachment's state: just what it may source.
#[derive(Debug, Clone)]
pub struct PlainTunnel {
    pub routes: Vec<Ipv4Network>,
    pub mtu: u16,
}
