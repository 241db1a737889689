//! Packets the TUN tests write, as a Linux sender makes them: DF, TTL 64, the identification
//! given, every checksum right; and the fix-up of both checksums after a test changed a
//! field. Shared by the planner's tests (`gro.rs`) and the device tests (`tun.rs`).

use std::net::Ipv4Addr;

use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::{build, checksum, tcp, udp, PROTO_TCP, PROTO_UDP};

/// A TCP segment from `src` to `dst` with window 65535, `flags`, an MSS option when `mss`.
#[allow(clippy::too_many_arguments)]
pub fn tcp_segment(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    mss: Option<u16>,
    payload: &[u8],
    ident: u16,
) -> Vec<u8> {
    let mut buf = vec![0; 44 + payload.len()];
    let n = build::tcp(
        &mut buf, src.0, dst.0, src.1, dst.1, seq, ack, flags, mss, payload,
    )
    .expect("fits");
    buf.truncate(n);
    finish(buf, ident)
}

/// A UDP datagram from `src` to `dst`.
pub fn udp_datagram(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
    ident: u16,
) -> Vec<u8> {
    let mut buf = vec![0; 28 + payload.len()];
    let n = build::udp(&mut buf, src.0, dst.0, src.1, dst.1, payload).expect("fits");
    buf.truncate(n);
    finish(buf, ident)
}

/// A UDP datagram from `src` to `dst` of `len` bytes of payload whose checksum computes to 0,
/// sent as 0xFFFF [RFC 768]: its last two bytes chosen to make it so.
pub fn udp_datagram_summing_to_zero(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    len: usize,
    ident: u16,
) -> Vec<u8> {
    let mut payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
    (0..=u16::MAX)
        .find_map(|w| {
            payload[len - 2..].copy_from_slice(&w.to_be_bytes());
            let d = udp_datagram(src, dst, &payload, ident);
            (d[26..28] == [0xff, 0xff]).then_some(d)
        })
        .expect("one word makes any sum 0")
}

fn finish(mut buf: Vec<u8>, ident: u16) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.set_frag(true, false, 0);
    ip.set_ident(ident);
    ip.fill_checksum();
    buf
}

/// Makes the IPv4 header checksum and the TCP or UDP checksum of `p` (IPv4 without options)
/// right again; a UDP checksum of 0 (none) stays 0, a computed 0 is written 0xFFFF.
pub fn fix_checksums(p: &mut [u8]) {
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.fill_checksum();
    let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let l4 = &mut p[ipv4::HEADER_LEN..];
    let at = match protocol {
        PROTO_TCP => tcp::CHECKSUM_OFFSET,
        PROTO_UDP if l4[udp::CHECKSUM_OFFSET..udp::CHECKSUM_OFFSET + 2] != [0, 0] => {
            udp::CHECKSUM_OFFSET
        }
        _ => return,
    };
    l4[at..at + 2].fill(0);
    let sum = match checksum::transport(src, dst, protocol, l4) {
        0 if protocol == PROTO_UDP => 0xffff,
        s => s,
    };
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}
