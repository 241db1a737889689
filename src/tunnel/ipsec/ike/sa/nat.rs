//! NAT detection [RFC 7296 § 2.23]: NAT_DETECTION_SOURCE_IP and _DESTINATION_IP carry
//! `SHA-1(SPIi | SPIr | IP address | port)`, with the SPIs of the message's header (SPIr zero
//! in the IKE_SA_INIT request). A received destination hash that is not ours means a NAT on
//! our side; source hashes none of which match the packet's source mean one on the peer's.

use std::net::{IpAddr, SocketAddr};

use crate::crypto::{sha1, SHA1_LEN};
use crate::tunnel::ipsec::ike::message::{Message, NotifyType};

/// The hash for an address and port.
pub(super) fn hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; SHA1_LEN] {
    let port = addr.port().to_be_bytes();
    let (v4, v6);
    let ip: &[u8] = match addr.ip() {
        IpAddr::V4(a) => {
            v4 = a.octets();
            &v4
        }
        IpAddr::V6(a) => {
            v6 = a.octets();
            &v6
        }
    };
    sha1(&[&spi_i.to_be_bytes(), &spi_r.to_be_bytes(), ip, &port])
}

/// The source hash we send: of our address, or of an address nobody has when ours is not
/// known (a wildcard bind), which makes the peer see a NAT on our side, as strongSwan does.
pub(super) fn source_hash(spi_i: u64, spi_r: u64, local: Option<SocketAddr>) -> [u8; SHA1_LEN] {
    let addr = local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    hash(spi_i, spi_r, addr)
}

/// What the NAT detection payloads of a message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct NatState {
    /// The peer sent both NAT detection notifications: it does NAT traversal.
    pub supported: bool,
    /// A NAT between us, on our side (our address as the peer saw it differs).
    pub here: bool,
    /// A NAT on the peer's side.
    pub there: bool,
}

impl NatState {
    pub(super) fn any(&self) -> bool {
        self.supported && (self.here || self.there)
    }
}

/// Reads the NAT detection payloads of `msg`, which came from `from` to our `local` address
/// (`None`: ours is unknown, and counts as translated).
pub(super) fn detect(msg: &Message<'_>, from: SocketAddr, local: Option<SocketAddr>) -> NatState {
    let h = msg.header;
    let sources: Vec<&[u8]> = msg
        .notifies()
        .filter(|n| n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP)
        .map(|n| n.data)
        .collect();
    let dest = msg
        .notify(NotifyType::NAT_DETECTION_DESTINATION_IP)
        .map(|n| n.data);
    let Some(dest) = dest.filter(|_| !sources.is_empty()) else {
        return NatState::default();
    };
    let theirs = hash(h.spi_i, h.spi_r, from);
    let here = match local {
        Some(l) => dest != hash(h.spi_i, h.spi_r, l),
        None => true,
    };
    NatState {
        supported: true,
        here,
        there: !sources.iter().any(|s| *s == theirs),
    }
}
