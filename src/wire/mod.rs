//! Typed zero-copy views over IPv4, TCP, UDP and ICMP packets, and incremental checksums;
//! Ethernet II frames with 802.1Q tags and ARP ([`ethernet`]).
//!
//! Layer contract: pure functions over byte slices; no allocation, no I/O. Untrusted bytes go
//! through `new_checked`; once it succeeds no accessor panics. [`inspect`] is the data path's
//! single entry: it validates everything [`crate::nat::translate`] later relies on. Header
//! checksums are not verified here: translation patches them incrementally, so a corrupt
//! checksum stays corrupt and the receiving host drops the packet [RFC 1624 § 1].
//! [`build`] writes complete, valid packets for tests, demos and locally generated errors.

#![forbid(unsafe_code)]

pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

use std::net::Ipv4Addr;

use icmp::IcmpPacket;
use ipv4::Ipv4Packet;
use tcp::TcpPacket;
use udp::UdpPacket;

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

/// Why a buffer is not a well-formed header of a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the header or a length field claims")]
    Truncated,
    #[error("header length field below the minimum")]
    HeaderLen,
    #[error("length field shorter than the header")]
    Length,
    #[error("IP version is not 4")]
    Version,
    #[error("option length below its minimum or past the header")]
    OptionLength,
}

/// Why [`inspect`] refuses a packet; the data path maps each to its drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a well-formed IPv4 packet")]
    Malformed,
    #[error("an IPv6 packet")]
    Ipv6,
    #[error("a non-first fragment")]
    Fragment,
    #[error("an ICMP type or code the data path does not carry")]
    IcmpUnsupported,
    #[error("an IPv4 option that records or dictates addresses")]
    IpOptions,
}

impl From<Error> for Refusal {
    fn from(_: Error) -> Self {
        Refusal::Malformed
    }
}

/// Parses the headers of an IPv4 packet as far as the data path needs.
///
/// Errors: `Ipv6` for version 6, `Malformed` for anything truncated or inconsistent (an
/// IPv4 option list included), `IpOptions` for an option that carries addresses (see
/// [`check_options`]), `Fragment` for a non-first fragment, `IcmpUnsupported` for ICMP types
/// other than echo and the three errors above, and for an echo with a code other than 0
/// [RFC 792].
///
/// Bytes after the IPv4 total length (link padding) are ignored. A first fragment must hold
/// its whole transport header; its UDP length may exceed the fragment. An ICMP error must
/// quote at least the IPv4 header and 8 bytes of the packet it is about [RFC 792].
pub fn inspect(packet: &[u8]) -> Result<Summary, Refusal> {
    match packet.first() {
        None => return Err(Refusal::Malformed),
        Some(b) if b >> 4 == 6 => return Err(Refusal::Ipv6),
        Some(_) => {}
    }
    let ip = Ipv4Packet::new_checked(packet)?;
    check_options(&ip)?;
    if ip.frag_offset() != 0 {
        return Err(Refusal::Fragment);
    }
    let payload = ip.payload();
    let l4 = match ip.protocol() {
        PROTO_TCP => {
            let tcp = TcpPacket::new_checked(payload)?;
            L4::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                flags: tcp.flags(),
            }
        }
        PROTO_UDP => {
            let udp = UdpPacket::new_unchecked(payload);
            if ip.more_frags() {
                udp.check_header_len()?;
            } else {
                udp.check_len()?;
            }
            L4::Udp {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
            }
        }
        PROTO_ICMP => {
            let icmp = IcmpPacket::new_checked(payload)?;
            match icmp.msg_type() {
                icmp::TYPE_ECHO_REQUEST | icmp::TYPE_ECHO_REPLY if icmp.code() != 0 => {
                    return Err(Refusal::IcmpUnsupported)
                }
                icmp::TYPE_ECHO_REQUEST | icmp::TYPE_ECHO_REPLY => L4::IcmpEcho {
                    ident: icmp.echo_ident(),
                    reply: icmp.msg_type() == icmp::TYPE_ECHO_REPLY,
                },
                t if icmp::is_supported_error(t) => L4::IcmpError {
                    inner: quoted(icmp.data())?,
                },
                _ => return Err(Refusal::IcmpUnsupported),
            }
        }
        protocol => L4::Other { protocol },
    };
    Ok(Summary {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ttl: ip.ttl(),
        total_len: ip.total_len(),
        dont_fragment: ip.dont_frag(),
        l4,
    })
}

/// Refuses a packet whose IPv4 options record or dictate addresses: record route, loose and
/// strict source route, a timestamp with addresses. Record route and timestamps would bring
/// the destination tenant's internal addresses back to the sender; a source route makes the
/// header's destination only the first hop, so the policy would judge an address the packet
/// does not end at. Other options (END, NOP, router alert, a timestamp without addresses)
/// pass unchanged; a malformed list is `Malformed`.
///
/// The packet is dropped, not stripped of the option: removing it changes the header length
/// and the total length and moves the payload, and a packet that silently lost its record
/// route or source route would mislead its sender. A drop is what a router with source
/// routing disabled does, and the default [RFC 7126 § 4.3, § 4.4] advise for source routes;
/// [RFC 7126 § 4.5, § 4.7] allow it for record route and timestamp.
///
/// The header quoted inside an ICMP error is not checked: it is payload no router acts on,
/// written by the error's sender, and the packet it quotes crossed the gateway, so it passed
/// this check on its way.
pub fn check_options<T: AsRef<[u8]>>(ip: &Ipv4Packet<T>) -> Result<(), Refusal> {
    for option in ip.iter_options() {
        if option?.carries_addresses() {
            return Err(Refusal::IpOptions);
        }
    }
    Ok(())
}

/// The header of the packet quoted in an ICMP error, which needs its IPv4 header and the 8
/// bytes after it. Its total length is not checked: the quote is truncated by design. A
/// quoted non-first fragment carries no ports.
fn quoted(data: &[u8]) -> Result<Quoted, Refusal> {
    let inner = quoted_ipv4(data)?;
    let l4 = &data[inner.header_len()..];
    let (src_port, dst_port) = if inner.frag_offset() != 0 {
        (0, 0)
    } else {
        let word = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
        match inner.protocol() {
            PROTO_TCP | PROTO_UDP => (word(0), word(2)),
            PROTO_ICMP if matches!(l4[0], icmp::TYPE_ECHO_REQUEST | icmp::TYPE_ECHO_REPLY) => {
                (word(4), word(4))
            }
            _ => (0, 0),
        }
    };
    Ok(Quoted {
        src: inner.src_addr(),
        dst: inner.dst_addr(),
        protocol: inner.protocol(),
        src_port,
        dst_port,
    })
}

/// The view of a quoted IPv4 header, checked to be followed by at least 8 bytes.
pub(crate) fn quoted_ipv4<T: AsRef<[u8]>>(data: T) -> Result<Ipv4Packet<T>, Refusal> {
    let len = data.as_ref().len();
    if len < ipv4::HEADER_LEN {
        return Err(Refusal::Malformed);
    }
    let inner = Ipv4Packet::new_unchecked(data);
    let hl = inner.header_len();
    if inner.version() != 4 || hl < ipv4::HEADER_LEN || hl + 8 > len {
        return Err(Refusal::Malformed);
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
    const B: Ipv4Addr = Ipv4Addr::new(100, 65, 20, 7);

    fn udp_packet(buf: &mut [u8]) -> usize {
        build::udp(buf, A, B, 4000, 53, b"abcdefgh").unwrap()
    }

    #[test]
    fn tcp_summary() {
        let mut buf = [0u8; 80];
        let n = build::tcp(&mut buf, A, B, 1, 2, 0, 0, tcp::FLAG_SYN, Some(1460), b"").unwrap();
        let s = inspect(&buf[..n]).unwrap();
        assert_eq!(
            s,
            Summary {
                src: A,
                dst: B,
                ttl: 64,
                total_len: n as u16,
                dont_fragment: false,
                l4: L4::Tcp {
                    src_port: 1,
                    dst_port: 2,
                    flags: tcp::FLAG_SYN
                }
            }
        );
    }

    #[test]
    fn version_6_is_ipv6_and_others_malformed() {
        assert_eq!(inspect(&[0x60; 40]), Err(Refusal::Ipv6));
        assert_eq!(inspect(&[0x60]), Err(Refusal::Ipv6));
        assert_eq!(inspect(&[]), Err(Refusal::Malformed));
        let mut buf = [0u8; 64];
        let n = udp_packet(&mut buf);
        buf[0] = 0x55;
        assert_eq!(inspect(&buf[..n]), Err(Refusal::Malformed));
    }

    #[test]
    fn trailing_padding_is_ignored_and_truncation_is_malformed() {
        let mut buf = [0u8; 64];
        let n = udp_packet(&mut buf);
        let s = inspect(&buf[..n + 10]).unwrap();
        assert_eq!(s.total_len as usize, n);
        assert_eq!(inspect(&buf[..n - 1]), Err(Refusal::Malformed));
        assert_eq!(inspect(&buf[..19]), Err(Refusal::Malformed));
    }

    #[test]
    fn inconsistent_lengths_are_malformed() {
        let mut buf = [0u8; 64];
        let n = udp_packet(&mut buf);
        let mut b = buf;
        b[0] = 0x44;
        assert_eq!(inspect(&b[..n]), Err(Refusal::Malformed));
        let mut b = buf;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(inspect(&b[..n]), Err(Refusal::Malformed));
        // UDP length beyond the IPv4 total length.
        let mut b = buf;
        b[24..26].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(inspect(&b[..n]), Err(Refusal::Malformed));
        // IPv4 total length that leaves no room for the UDP header.
        let mut b = buf;
        b[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(inspect(&b[..n]), Err(Refusal::Malformed));
        // TCP data offset beyond the segment.
        let n = build::tcp(&mut b, A, B, 1, 2, 0, 0, 0, None, b"").unwrap();
        b[32] = 0x60;
        assert_eq!(inspect(&b[..n]), Err(Refusal::Malformed));
    }

    #[test]
    fn fragments() {
        let mut buf = [0u8; 64];
        let n = udp_packet(&mut buf);
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..n]);
        ip.set_frag(false, true, 8);
        assert_eq!(inspect(&buf[..n]), Err(Refusal::Fragment));
        // A first fragment whose UDP length counts the later fragments too.
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..n]);
        ip.set_frag(false, true, 0);
        buf[24..26].copy_from_slice(&3000u16.to_be_bytes());
        let s = inspect(&buf[..n]).unwrap();
        assert!(matches!(s.l4, L4::Udp { src_port: 4000, .. }));
        assert!(!s.dont_fragment);
    }

    #[test]
    fn other_protocols_have_no_ports() {
        let mut buf = [0u8; 64];
        let n = udp_packet(&mut buf);
        buf[9] = 47;
        assert_eq!(inspect(&buf[..n]).unwrap().l4, L4::Other { protocol: 47 });
    }

    #[test]
    fn icmp_types() {
        let mut buf = [0u8; 64];
        let n = build::icmp_echo(&mut buf, A, B, 9, 1, true, b"x").unwrap();
        assert_eq!(
            inspect(&buf[..n]).unwrap().l4,
            L4::IcmpEcho {
                ident: 9,
                reply: true
            }
        );
        for t in [4u8, 5, 13, 255] {
            buf[20] = t;
            assert_eq!(inspect(&buf[..n]), Err(Refusal::IcmpUnsupported), "{t}");
        }
        let n = build::icmp_echo(&mut buf, A, B, 9, 1, true, b"").unwrap();
        assert_eq!(inspect(&buf[..n - 1]), Err(Refusal::Malformed));
    }

    #[test]
    fn icmp_error_needs_header_and_8_bytes() {
        let mut inner = [0u8; 64];
        let ni = build::tcp(&mut inner, B, A, 443, 40000, 1, 2, 0x12, None, b"").unwrap();
        let mut buf = [0u8; 128];
        for (quote, ok) in [(28, true), (27, false), (20, false), (ni, true)] {
            let n = build::icmp_error(&mut buf, A, B, 3, 1, &inner[..quote]).unwrap();
            let r = inspect(&buf[..n]);
            if ok {
                assert_eq!(
                    r.unwrap().l4,
                    L4::IcmpError {
                        inner: Quoted {
                            src: B,
                            dst: A,
                            protocol: PROTO_TCP,
                            src_port: 443,
                            dst_port: 40000
                        }
                    }
                );
            } else {
                assert_eq!(r, Err(Refusal::Malformed), "quote {quote}");
            }
        }
        // A quoted header claiming options that are not there.
        let mut q = inner;
        q[0] = 0x47;
        let n = build::icmp_error(&mut buf, A, B, 11, 0, &q[..28]).unwrap();
        assert_eq!(inspect(&buf[..n]), Err(Refusal::Malformed));
        // A quoted IPv6 packet.
        q[0] = 0x60;
        let n = build::icmp_error(&mut buf, A, B, 12, 0, &q[..48]).unwrap();
        assert_eq!(inspect(&buf[..n]), Err(Refusal::Malformed));
    }

    /// `packet` (a 20-byte header) with `options` inserted after its header, header length,
    /// total length and header checksum adjusted (the transport checksum does not cover them).
    fn with_options(packet: &[u8], options: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let mut out = packet[..20].to_vec();
        out.extend_from_slice(options);
        out.extend_from_slice(&packet[20..]);
        let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
        ip.set_version_and_header_len(20 + options.len());
        ip.set_total_len((packet.len() + options.len()) as u16);
        ip.fill_checksum();
        out
    }

    #[test]
    fn options_that_carry_addresses_are_dropped() {
        let mut buf = [0u8; 64];
        let n = udp_packet(&mut buf);
        let cases: [(&[u8], Result<(), Refusal>); 12] = [
            (&[1, 1, 1, 0], Ok(())),
            (&[0, 0, 0, 0], Ok(())),
            (&[148, 4, 0, 0], Ok(())),
            (&[68, 8, 5, 0x10, 0, 0, 0, 0], Ok(())),
            (&[7, 7, 4, 0, 0, 0, 0, 0], Err(Refusal::IpOptions)),
            (&[131, 7, 4, 10, 0, 0, 9, 0], Err(Refusal::IpOptions)),
            (&[1, 137, 7, 4, 10, 0, 0, 9], Err(Refusal::IpOptions)),
            (
                &[68, 12, 5, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
                Err(Refusal::IpOptions),
            ),
            (
                &[68, 12, 5, 0x03, 10, 0, 0, 9, 0, 0, 0, 0],
                Err(Refusal::IpOptions),
            ),
            (&[148, 1, 0, 0], Err(Refusal::Malformed)),
            (&[1, 1, 148, 8], Err(Refusal::Malformed)),
            (&[68, 3, 5, 0], Err(Refusal::Malformed)),
        ];
        for (options, want) in cases {
            let p = with_options(&buf[..n], options);
            assert_eq!(inspect(&p).map(|_| ()), want, "{options:?}");
        }
        // A route option in the first fragment and in a later one: the option decides.
        let mut p = with_options(&buf[..n], &[131, 7, 4, 10, 0, 0, 9, 0]);
        Ipv4Packet::new_unchecked(&mut p[..]).set_frag(false, false, 8);
        assert_eq!(inspect(&p), Err(Refusal::IpOptions));
    }

    #[test]
    fn options_of_a_quoted_header_are_not_judged() {
        let mut inner = [0u8; 64];
        let ni = build::udp(&mut inner, B, A, 53, 4000, b"12345678").unwrap();
        let quoted = with_options(&inner[..ni], &[7, 7, 4, 10, 0, 0, 9, 0]);
        let mut buf = [0u8; 128];
        let n = build::icmp_error(&mut buf, A, B, 3, 3, &quoted).unwrap();
        let L4::IcmpError { inner } = inspect(&buf[..n]).unwrap().l4 else {
            panic!("not an ICMP error")
        };
        assert_eq!((inner.src, inner.src_port), (B, 53));
    }

    #[test]
    fn echo_with_a_nonzero_code_is_unsupported() {
        let mut buf = [0u8; 64];
        for reply in [false, true] {
            let n = build::icmp_echo(&mut buf, A, B, 9, 1, reply, b"x").unwrap();
            assert!(inspect(&buf[..n]).is_ok());
            for code in [1u8, 8, 255] {
                let mut p = buf;
                p[21] = code;
                assert_eq!(
                    inspect(&p[..n]),
                    Err(Refusal::IcmpUnsupported),
                    "reply {reply} code {code}"
                );
            }
        }
    }

    #[test]
    fn quoted_non_first_fragment_has_no_ports() {
        let mut inner = [0u8; 64];
        let ni = build::udp(&mut inner, B, A, 53, 4000, b"12345678").unwrap();
        Ipv4Packet::new_unchecked(&mut inner[..ni]).set_frag(false, false, 1480);
        let mut buf = [0u8; 128];
        let n = build::icmp_error(&mut buf, A, B, 11, 1, &inner[..ni]).unwrap();
        let L4::IcmpError { inner } = inspect(&buf[..n]).unwrap().l4 else {
            panic!("not an ICMP error")
        };
        assert_eq!((inner.src_port, inner.dst_port), (0, 0));
    }
}
