//! Stateless 1:1 prefix translation between a tenant's internal prefixes and its exchange
//! prefixes ("twice NAT": source and destination in one pass), with incremental checksums
//! [RFC 1624], ICMP error payload translation and TCP MSS clamping.
//!
//! Layer contract: pure functions; no allocation per packet. [`translate`] works in place on a
//! packet that passed [`crate::wire::inspect`]; when it returns an error the packet is left
//! unchanged. Checksums are patched, never recomputed, so a packet that arrived with a wrong
//! checksum leaves with a wrong checksum and its receiver still drops it.

#![forbid(unsafe_code)]

pub mod fuzz;

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::config::Network;
use crate::ids::{ExchangeV4, InternalV4};
use crate::wire::checksum::{update_addr, update_u16, update_u16_odd};
use crate::wire::icmp::{self, IcmpPacket};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::{quoted_ipv4, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

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
        self.networks
            .iter()
            .find(|n| n.internal.contains(a.0))
            .map(|n| ExchangeV4(remap(a.0, n.internal, n.exchange)))
    }

    /// The internal address of an exchange address, if one of the tenant's exchange prefixes
    /// holds it.
    pub fn to_internal(&self, x: ExchangeV4) -> Option<InternalV4> {
        self.networks
            .iter()
            .find(|n| n.exchange.contains(x.0))
            .map(|n| InternalV4(remap(x.0, n.exchange, n.internal)))
    }
}

/// Why [`translate`] refuses a packet; the data path maps each to its drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the TTL would reach 0")]
    Ttl,
    #[error("an address lies in no prefix of its tenant")]
    Unmapped,
    #[error("an inconsistent packet")]
    Malformed,
}

impl From<crate::wire::Error> for Error {
    fn from(_: crate::wire::Error) -> Self {
        Error::Malformed
    }
}

impl From<crate::wire::Refusal> for Error {
    fn from(_: crate::wire::Refusal) -> Self {
        Error::Malformed
    }
}

/// Replaces the network part, keeping the host part: `to.network() | (addr & !from.mask())`.
/// Both prefixes have the same length (the configuration guarantees it).
pub fn remap(addr: Ipv4Addr, from: Ipv4Network, to: Ipv4Network) -> Ipv4Addr {
    let host = u32::from(addr) & !u32::from(from.mask());
    Ipv4Addr::from(u32::from(to.network()) | host)
}

/// Translates one IPv4 packet in place from the source tenant `from` to the destination
/// tenant `to`: src ∈ from.internal → from.exchange, dst ∈ to.exchange → to.internal; the TTL
/// is decremented; IPv4/TCP/UDP/ICMP checksums are patched incrementally; an ICMP error's
/// quoted header is translated the opposite way (its src ∈ to.exchange → to.internal, its dst
/// ∈ from.internal → from.exchange) with its checksums; every MSS option of a TCP SYN is
/// lowered to `mss_clamp` when it is larger.
///
/// The packet must have passed [`crate::wire::inspect`]. Errors: `Ttl` when the TTL is ≤ 1,
/// `Unmapped` when an address lies in no prefix of its tenant, `Malformed` for an inconsistent
/// packet.
pub fn translate(
    packet: &mut [u8],
    from: &TenantMap,
    to: &TenantMap,
    mss_clamp: Option<u16>,
) -> Result<(), Error> {
    let mut ip = Ipv4Packet::new_checked(packet)?;
    let ttl = ip.ttl();
    if ttl <= 1 {
        return Err(Error::Ttl);
    }
    let (old_src, old_dst) = (ip.src_addr(), ip.dst_addr());
    let new_src = from
        .to_exchange(InternalV4(old_src))
        .ok_or(Error::Unmapped)?
        .0;
    let new_dst = to
        .to_internal(ExchangeV4(old_dst))
        .ok_or(Error::Unmapped)?
        .0;
    let protocol = ip.protocol();
    let first_fragment = ip.frag_offset() == 0;
    let more_frags = ip.more_frags();
    if first_fragment {
        let addrs = AddrChange {
            old_src,
            new_src,
            old_dst,
            new_dst,
        };
        let l4 = ip.payload_mut();
        match protocol {
            PROTO_TCP => translate_tcp(l4, addrs, mss_clamp)?,
            PROTO_UDP => translate_udp(l4, addrs, more_frags)?,
            PROTO_ICMP => translate_icmp(l4, from, to)?,
            _ => {}
        }
    }
    let mut c = ip.checksum();
    c = update_u16(
        c,
        u16::from_be_bytes([ttl, protocol]),
        u16::from_be_bytes([ttl - 1, protocol]),
    );
    c = update_addr(c, old_src, new_src);
    c = update_addr(c, old_dst, new_dst);
    ip.set_ttl(ttl - 1);
    ip.set_src_addr(new_src);
    ip.set_dst_addr(new_dst);
    ip.set_checksum(c);
    Ok(())
}

/// The pseudo-header addresses before and after translation.
#[derive(Clone, Copy)]
struct AddrChange {
    old_src: Ipv4Addr,
    new_src: Ipv4Addr,
    old_dst: Ipv4Addr,
    new_dst: Ipv4Addr,
}

impl AddrChange {
    fn patch(self, checksum: u16) -> u16 {
        update_addr(
            update_addr(checksum, self.old_src, self.new_src),
            self.old_dst,
            self.new_dst,
        )
    }
}

/// Patches the pseudo-header change into the TCP checksum and, in a SYN, lowers every MSS
/// option above `mss_clamp`: a host may read any of them (Linux keeps the last one).
fn translate_tcp(
    segment: &mut [u8],
    addrs: AddrChange,
    mss_clamp: Option<u16>,
) -> Result<(), Error> {
    let mut seg = TcpPacket::new_checked(segment)?;
    let mut c = addrs.patch(seg.checksum());
    if let Some(clamp) = mss_clamp.filter(|_| seg.syn()) {
        let mut pos = 0;
        while let Some(at) = tcp::next_mss_value(seg.options(), &mut pos) {
            let value = &mut seg.options_mut()[at..at + 2];
            let old = u16::from_be_bytes([value[0], value[1]]);
            if old > clamp {
                value.copy_from_slice(&clamp.to_be_bytes());
                // The options start at an even offset of the segment (20).
                c = if at % 2 == 0 {
                    update_u16(c, old, clamp)
                } else {
                    update_u16_odd(c, old, clamp)
                };
            }
        }
    }
    seg.set_checksum(c);
    Ok(())
}

/// A first fragment (`more_frags`) carries only part of the datagram its length counts.
fn translate_udp(datagram: &mut [u8], addrs: AddrChange, more_frags: bool) -> Result<(), Error> {
    let mut udp = UdpPacket::new_unchecked(datagram);
    if more_frags {
        udp.check_header_len()?;
    } else {
        udp.check_len()?;
    }
    if udp.checksum() != 0 {
        udp.set_checksum(patch_udp(udp.checksum(), addrs));
    }
    Ok(())
}

/// A UDP checksum after an address change; a computed 0 is sent as 0xFFFF since 0 means
/// "no checksum" [RFC 768].
fn patch_udp(checksum: u16, addrs: AddrChange) -> u16 {
    match addrs.patch(checksum) {
        0 => 0xffff,
        c => c,
    }
}

/// Translates the packet quoted in an ICMP error the opposite way of the packet carrying it:
/// it is a packet the destination once sent towards the source [RFC 3022 § 4.3]. Echo
/// messages need nothing: the ICMP checksum has no pseudo-header.
fn translate_icmp(message: &mut [u8], from: &TenantMap, to: &TenantMap) -> Result<(), Error> {
    let mut msg = IcmpPacket::new_checked(message)?;
    if !icmp::is_supported_error(msg.msg_type()) {
        return Ok(());
    }
    let mut icmp_c = msg.checksum();
    let data = msg.data_mut();
    let mut inner = quoted_ipv4(&mut *data)?;
    let (old_src, old_dst) = (inner.src_addr(), inner.dst_addr());
    let new_src = to
        .to_internal(ExchangeV4(old_src))
        .ok_or(Error::Unmapped)?
        .0;
    let new_dst = from
        .to_exchange(InternalV4(old_dst))
        .ok_or(Error::Unmapped)?
        .0;
    let addrs = AddrChange {
        old_src,
        new_src,
        old_dst,
        new_dst,
    };
    let header_len = inner.header_len();
    let protocol = inner.protocol();
    let first_fragment = inner.frag_offset() == 0;
    let old_ip_c = inner.checksum();
    let new_ip_c = addrs.patch(old_ip_c);
    inner.set_src_addr(new_src);
    inner.set_dst_addr(new_dst);
    inner.set_checksum(new_ip_c);
    // Every quoted field lies at an even offset of the ICMP message: it starts 8 bytes in and
    // the quoted header length is a multiple of 4.
    icmp_c = addrs.patch(icmp_c);
    icmp_c = update_u16(icmp_c, old_ip_c, new_ip_c);

    let l4 = &mut data[header_len..];
    let at = match protocol {
        PROTO_UDP => Some(udp::CHECKSUM_OFFSET),
        PROTO_TCP => Some(tcp::CHECKSUM_OFFSET),
        _ => None,
    };
    if let Some(at) = at.filter(|at| first_fragment && at + 2 <= l4.len()) {
        let old = u16::from_be_bytes([l4[at], l4[at + 1]]);
        let new = match protocol {
            PROTO_UDP if old == 0 => 0,
            PROTO_UDP => patch_udp(old, addrs),
            _ => addrs.patch(old),
        };
        l4[at..at + 2].copy_from_slice(&new.to_be_bytes());
        icmp_c = update_u16(icmp_c, old, new);
    }
    msg.set_checksum(icmp_c);
    Ok(())
}

#[cfg(test)]
mod tests;
