//! The body of the `wire_inspect` fuzz target, and the checksum oracle it shares with the
//! unit and property tests. Not used by the data path: it allocates.
//!
//! The oracle: a packet whose checksums were correct before [`super::translate`] has correct
//! checksums after it, its addresses are the tenant maps' images, it still passes
//! [`crate::wire::inspect`] with the same transport summary, and translating its reply back
//! restores the original addresses; no MSS option of a translated SYN exceeds the clamp.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::{translate, TenantMap};
use crate::config::Network;
use crate::ids::{ExchangeV4, InternalV4};
use crate::wire::icmp::IcmpPacket;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;
use crate::wire::{self, checksum, inspect, L4, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// Which checksums of a packet are correct; `None` where one cannot be checked (absent, or
/// covering bytes a fragment or a truncated quote does not hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checks {
    pub ip: bool,
    pub l4: Option<bool>,
    pub inner_ip: Option<bool>,
    pub inner_l4: Option<bool>,
}

impl Checks {
    /// Checks a packet that passed [`inspect`] (others yield all `false`/`None`).
    pub fn of(packet: &[u8]) -> Checks {
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            return Checks::default();
        };
        let mut c = Checks {
            ip: ip.verify_checksum(),
            ..Checks::default()
        };
        if ip.frag_offset() != 0 || ip.more_frags() {
            return c;
        }
        let (src, dst, l4) = (ip.src_addr(), ip.dst_addr(), ip.payload());
        c.l4 = transport_ok(ip.protocol(), src, dst, l4);
        if ip.protocol() != PROTO_ICMP {
            return c;
        }
        let Ok(msg) = IcmpPacket::new_checked(l4) else {
            return c;
        };
        if !wire::icmp::is_supported_error(msg.msg_type()) {
            return c;
        }
        let Ok(inner) = wire::quoted_ipv4(msg.data()) else {
            return c;
        };
        let hl = inner.header_len();
        c.inner_ip = Some(checksum::checksum(&msg.data()[..hl]) == 0);
        let total = usize::from(inner.total_len());
        if inner.frag_offset() == 0
            && !inner.more_frags()
            && total >= hl
            && total <= msg.data().len()
        {
            let seg = &msg.data()[hl..total];
            c.inner_l4 = transport_ok(inner.protocol(), inner.src_addr(), inner.dst_addr(), seg);
        }
        c
    }

    /// Whether every checksum that was correct in `before` is still correct here.
    pub fn preserves(self, before: Checks) -> bool {
        let kept = |b: Option<bool>, a: Option<bool>| b != Some(true) || a == Some(true);
        (!before.ip || self.ip)
            && kept(before.l4, self.l4)
            && kept(before.inner_ip, self.inner_ip)
            && kept(before.inner_l4, self.inner_l4)
    }

    /// Whether every checksum that can be checked is correct.
    pub fn all_ok(self) -> bool {
        self.ip
            && self.l4 != Some(false)
            && self.inner_ip != Some(false)
            && self.inner_l4 != Some(false)
    }
}

fn transport_ok(protocol: u8, src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> Option<bool> {
    match protocol {
        PROTO_TCP => TcpPacket::new_checked(seg)
            .ok()
            .map(|t| t.verify_checksum(src, dst)),
        PROTO_UDP => UdpPacket::new_checked(seg)
            .ok()
            .map(|u| u.verify_checksum(src, dst)),
        PROTO_ICMP => IcmpPacket::new_checked(seg)
            .ok()
            .map(|m| m.verify_checksum()),
        _ => None,
    }
}

/// Turns a translated packet into its reply's addressing: swaps source and destination, and
/// those of an ICMP error's quoted header. Checksums stay correct (the sum is commutative).
pub fn swap_addresses(packet: &mut [u8]) {
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut *packet) else {
        return;
    };
    let (s, d) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(d);
    ip.set_dst_addr(s);
    if ip.protocol() != PROTO_ICMP || ip.frag_offset() != 0 {
        return;
    }
    let Ok(mut msg) = IcmpPacket::new_checked(ip.payload_mut()) else {
        return;
    };
    if !wire::icmp::is_supported_error(msg.msg_type()) {
        return;
    }
    if let Ok(mut inner) = wire::quoted_ipv4(msg.data_mut()) {
        let (s, d) = (inner.src_addr(), inner.dst_addr());
        inner.set_src_addr(d);
        inner.set_dst_addr(s);
    }
}

fn net(a: [u8; 4], len: u8) -> Ipv4Network {
    Ipv4Network::new(Ipv4Addr::from(a), len)
        .unwrap_or_else(|_| Ipv4Network::from(Ipv4Addr::from(a)))
}

/// Two tenant maps that between them translate every address, so that fuzzed packets reach
/// the checksum code rather than stopping at `NoRoute`: A swaps the top bit, B swaps the
/// two lower quarters of the space and keeps the upper half.
pub fn fuzz_maps() -> (TenantMap, TenantMap) {
    let a = TenantMap::new(&[
        Network {
            internal: net([0, 0, 0, 0], 1),
            exchange: net([128, 0, 0, 0], 1),
        },
        Network {
            internal: net([128, 0, 0, 0], 1),
            exchange: net([0, 0, 0, 0], 1),
        },
    ]);
    let b = TenantMap::new(&[
        Network {
            internal: net([0, 0, 0, 0], 2),
            exchange: net([64, 0, 0, 0], 2),
        },
        Network {
            internal: net([64, 0, 0, 0], 2),
            exchange: net([0, 0, 0, 0], 2),
        },
        Network {
            internal: net([128, 0, 0, 0], 1),
            exchange: net([128, 0, 0, 0], 1),
        },
    ]);
    (a, b)
}

/// The largest value of the MSS options of a TCP packet (a first fragment or whole).
fn max_mss(packet: &[u8]) -> Option<u16> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let b = ip.payload();
    tcp.mss_value_offsets()
        .map(|at| u16::from_be_bytes([b[at], b[at + 1]]))
        .max()
}

/// The MSS clamp the fuzz target applies.
pub const FUZZ_MSS_CLAMP: u16 = 1200;

/// Inspects arbitrary bytes and, when they pass, translates a copy A→B and its reply B→A,
/// asserting the oracle of this module. Panics only when ixgw is wrong.
pub fn inspect_translate(data: &[u8]) {
    let Ok(before) = inspect(data) else {
        return;
    };
    let (a, b) = fuzz_maps();
    let checks_before = Checks::of(data);
    let mut pkt = data.to_vec();
    if translate(&mut pkt, &a, &b, Some(FUZZ_MSS_CLAMP)).is_err() {
        assert_eq!(
            pkt, data,
            "a failed translation must leave the packet unchanged"
        );
        return;
    }
    let after = inspect(&pkt).expect("a translated packet passes inspect");
    let checks_after = Checks::of(&pkt);
    assert!(
        checks_after.preserves(checks_before),
        "checksums broken: {checks_before:?} -> {checks_after:?}"
    );
    assert_eq!(after.ttl, before.ttl - 1);
    assert_eq!(after.total_len, before.total_len);
    assert_eq!(
        Some(ExchangeV4(after.src)),
        a.to_exchange(InternalV4(before.src))
    );
    assert_eq!(
        Some(InternalV4(after.dst)),
        b.to_internal(ExchangeV4(before.dst))
    );
    match (before.l4, after.l4) {
        (L4::IcmpError { inner: i0 }, L4::IcmpError { inner: i1 }) => {
            assert_eq!(Some(InternalV4(i1.src)), b.to_internal(ExchangeV4(i0.src)));
            assert_eq!(Some(ExchangeV4(i1.dst)), a.to_exchange(InternalV4(i0.dst)));
            assert_eq!(
                (i1.protocol, i1.src_port, i1.dst_port),
                (i0.protocol, i0.src_port, i0.dst_port)
            );
        }
        (x, y) => assert_eq!(x, y),
    }

    if let L4::Tcp { flags, .. } = after.l4 {
        if flags & crate::wire::tcp::FLAG_SYN != 0 {
            assert!(
                max_mss(&pkt).is_none_or(|m| m <= FUZZ_MSS_CLAMP),
                "an MSS option of a SYN was left above the clamp"
            );
        }
    }

    swap_addresses(&mut pkt);
    if after.ttl <= 1 {
        return;
    }
    translate(&mut pkt, &b, &a, None).expect("the reply translates back");
    let back = inspect(&pkt).expect("the translated reply passes inspect");
    assert!(Checks::of(&pkt).preserves(checks_before));
    assert_eq!((back.src, back.dst), (before.dst, before.src));
    if let (L4::IcmpError { inner: i0 }, L4::IcmpError { inner: i2 }) = (before.l4, back.l4) {
        assert_eq!((i2.src, i2.dst), (i0.dst, i0.src));
    }
}
