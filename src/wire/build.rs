//! Writers of complete IPv4 packets into a caller's buffer: TTL 64, identification 0, no
//! fragmentation flags, every checksum computed. Each returns the packet's length.

use std::net::Ipv4Addr;

use super::icmp::{self, IcmpPacket};
use super::ipv4::{self, Ipv4Packet};
use super::tcp::{self, TcpPacket};
use super::udp::{self, UdpPacket};
use super::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// The TTL of built packets.
pub const TTL: u8 = 64;

/// Why a packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("buffer of {have} bytes cannot hold a {need}-byte packet")]
    BufferTooSmall { need: usize, have: usize },
    #[error("a {0}-byte packet exceeds the IPv4 maximum of 65535 bytes")]
    TooLong(usize),
}

/// Writes the IPv4 header for a packet of `l4_len` transport bytes and returns the packet's
/// total length.
fn ipv4_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    l4_len: usize,
) -> Result<usize, BuildError> {
    let total = ipv4::HEADER_LEN + l4_len;
    let total16 = u16::try_from(total).map_err(|_| BuildError::TooLong(total))?;
    if buf.len() < total {
        return Err(BuildError::BufferTooSmall {
            need: total,
            have: buf.len(),
        });
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..ipv4::HEADER_LEN]);
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_tos(0);
    ip.set_total_len(total16);
    ip.set_ident(0);
    ip.set_frag(false, false, 0);
    ip.set_ttl(TTL);
    ip.set_protocol(protocol);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    Ok(total)
}

/// A UDP datagram with its checksum.
pub fn udp(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Result<usize, BuildError> {
    let l4_len = udp::HEADER_LEN + payload.len();
    let total = ipv4_header(buf, src, dst, PROTO_UDP, l4_len)?;
    let seg = &mut buf[ipv4::HEADER_LEN..total];
    seg[udp::HEADER_LEN..].copy_from_slice(payload);
    let mut u = UdpPacket::new_unchecked(seg);
    u.set_src_port(src_port);
    u.set_dst_port(dst_port);
    u.set_len(l4_len as u16);
    u.fill_checksum(src, dst);
    Ok(total)
}

/// A TCP segment with window 65535, the given flags (`tcp::FLAG_*`), an MSS option when
/// `mss` is given, and its checksum.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    mss: Option<u16>,
    payload: &[u8],
) -> Result<usize, BuildError> {
    let hl = tcp::HEADER_LEN + if mss.is_some() { 4 } else { 0 };
    let total = ipv4_header(buf, src, dst, PROTO_TCP, hl + payload.len())?;
    let seg = &mut buf[ipv4::HEADER_LEN..total];
    seg[hl..].copy_from_slice(payload);
    let mut t = TcpPacket::new_unchecked(seg);
    t.set_src_port(src_port);
    t.set_dst_port(dst_port);
    t.set_seq_number(seq);
    t.set_ack_number(ack);
    t.set_header_len(hl);
    t.set_flags(flags);
    t.set_window_len(0xffff);
    t.set_urgent_at(0);
    if let Some(mss) = mss {
        let [hi, lo] = mss.to_be_bytes();
        t.options_mut().copy_from_slice(&[tcp::OPT_MSS, 4, hi, lo]);
    }
    t.fill_checksum(src, dst);
    Ok(total)
}

/// An ICMP echo request, or reply when `reply`.
pub fn icmp_echo(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq: u16,
    reply: bool,
    payload: &[u8],
) -> Result<usize, BuildError> {
    let msg_type = if reply {
        icmp::TYPE_ECHO_REPLY
    } else {
        icmp::TYPE_ECHO_REQUEST
    };
    let rest = u32::from(ident) << 16 | u32::from(seq);
    icmp_message(buf, src, dst, msg_type, 0, rest, payload)
}

/// An ICMP error of `icmp_type`/`code` quoting `quoted` verbatim: the caller passes the
/// offending packet's IPv4 header and as many of its following bytes as it wants quoted (at
/// least 8 for a usable error [RFC 792]; RFC 1812 § 4.3.2.3 allows more).
pub fn icmp_error(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_type: u8,
    code: u8,
    quoted: &[u8],
) -> Result<usize, BuildError> {
    icmp_message(buf, src, dst, icmp_type, code, 0, quoted)
}

/// A "fragmentation needed and DF set" error carrying the next-hop MTU [RFC 1191 § 4].
pub fn icmp_frag_needed(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: u16,
    quoted: &[u8],
) -> Result<usize, BuildError> {
    icmp_message(
        buf,
        src,
        dst,
        icmp::TYPE_DEST_UNREACHABLE,
        icmp::CODE_FRAG_NEEDED,
        u32::from(mtu),
        quoted,
    )
}

fn icmp_message(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    msg_type: u8,
    code: u8,
    rest: u32,
    data: &[u8],
) -> Result<usize, BuildError> {
    let total = ipv4_header(buf, src, dst, PROTO_ICMP, icmp::HEADER_LEN + data.len())?;
    let mut m = IcmpPacket::new_unchecked(&mut buf[ipv4::HEADER_LEN..total]);
    m.set_msg_type(msg_type);
    m.set_code(code);
    m.set_rest_of_header(rest);
    m.data_mut().copy_from_slice(data);
    m.fill_checksum();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{inspect, Quoted, L4};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
    const B: Ipv4Addr = Ipv4Addr::new(100, 65, 20, 7);

    #[test]
    fn udp_is_valid_and_inspectable() {
        let mut buf = [0xa5u8; 100];
        let n = udp(&mut buf, A, B, 5000, 53, b"query").unwrap();
        assert_eq!(n, 20 + 8 + 5);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.ttl(), TTL);
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum(A, B));
        assert_ne!(u.checksum(), 0);
        assert_eq!(u.payload(), b"query");
        let s = inspect(&buf[..n]).unwrap();
        assert_eq!(
            s.l4,
            L4::Udp {
                src_port: 5000,
                dst_port: 53
            }
        );
        assert_eq!((s.src, s.dst, s.total_len), (A, B, n as u16));
    }

    #[test]
    fn tcp_with_and_without_mss() {
        let mut buf = [0xffu8; 100];
        let n = tcp(
            &mut buf,
            A,
            B,
            40000,
            443,
            7,
            0,
            tcp::FLAG_SYN,
            Some(1460),
            b"",
        )
        .unwrap();
        assert_eq!(n, 44);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(A, B));
        assert_eq!(t.mss(), Some(1460));
        assert_eq!((t.seq_number(), t.flags()), (7, tcp::FLAG_SYN));

        let n = tcp(&mut buf, A, B, 1, 2, 3, 4, tcp::FLAG_ACK, None, b"data").unwrap();
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(A, B));
        assert_eq!(
            (t.header_len(), t.mss(), t.payload()),
            (20, None, &b"data"[..])
        );
    }

    #[test]
    fn echo_and_error() {
        let mut inner = [0u8; 64];
        let ni = icmp_echo(&mut inner, B, A, 0x77, 3, false, b"hello").unwrap();
        let s = inspect(&inner[..ni]).unwrap();
        assert_eq!(
            s.l4,
            L4::IcmpEcho {
                ident: 0x77,
                reply: false
            }
        );
        let ip = Ipv4Packet::new_checked(&inner[..ni]).unwrap();
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!(m.echo_seq(), 3);

        let mut buf = [0u8; 128];
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let n = icmp_error(&mut buf, src, B, icmp::TYPE_TIME_EXCEEDED, 0, &inner[..ni]).unwrap();
        assert_eq!(n, 20 + 8 + ni);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        assert!(IcmpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum());
        assert_eq!(
            inspect(&buf[..n]).unwrap().l4,
            L4::IcmpError {
                inner: Quoted {
                    src: B,
                    dst: A,
                    protocol: PROTO_ICMP,
                    src_port: 0x77,
                    dst_port: 0x77
                }
            }
        );

        let n = icmp_frag_needed(&mut buf, src, B, 1380, &inner[..28]).unwrap();
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!((m.code(), m.next_hop_mtu()), (icmp::CODE_FRAG_NEEDED, 1380));
    }

    #[test]
    fn too_small_buffer_is_an_error() {
        let mut buf = [0u8; 30];
        assert_eq!(
            udp(&mut buf, A, B, 1, 2, b"abc"),
            Err(BuildError::BufferTooSmall { need: 31, have: 30 })
        );
        let big = vec![0u8; 65_536];
        let mut out = vec![0u8; 70_000];
        assert_eq!(
            udp(&mut out, A, B, 1, 2, &big),
            Err(BuildError::TooLong(65_564))
        );
    }
}
