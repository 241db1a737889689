//! Typed zero-copy views over IPv4, TCP, UDP and ICMP packets, and incremental checksums.
//!
//! Layer contract: pure functions over byte slices; no allocation, no I/O. Untrusted bytes go
//! through `new_checked`; once it succeeds no accessor panics.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

use std::net::Ipv4Addr;

use crate::dataplane::DropReason;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// What the data path needs to know about one IPv4 packet before it admits and translates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// Total length from the IPv4 header (the packet may be followed by padding).
    pub total_len: u16,
    pub dont_fragment: bool,
    pub l4: L4,
}

/// The transport part of a [`Summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// Echo request (type 8) or reply (type 0); the identifier plays the role of both ports.
    IcmpEcho {
        ident: u16,
        reply: bool,
    },
    /// Destination unreachable (3), time exceeded (11) or parameter problem (12), with the
    /// quoted packet's header: the flow the error is about, as the quoted packet saw it.
    IcmpError {
        inner: Quoted,
    },
    /// Any other IP protocol: no ports.
    Other {
        protocol: u8,
    },
}

/// The header of the packet quoted inside an ICMP error (RFC 792: IP header + 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Ports for TCP/UDP, (ident, ident) for an ICMP echo, (0, 0) otherwise.
    pub src_port: u16,
    pub dst_port: u16,
}

/// Parses the headers of an IPv4 packet as far as the data path needs.
///
/// Errors: `Ipv6` for version 6, `Malformed` for anything truncated or inconsistent,
/// `Fragment` for a non-first fragment, `IcmpUnsupported` for ICMP types other than echo and
/// the three errors above.
pub fn inspect(packet: &[u8]) -> Result<Summary, DropReason> {
    let _ = packet;
    todo!("wire::inspect")
}
