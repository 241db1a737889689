//! Traffic Selector payloads, TSi and TSr [RFC 7296 § 3.13].
//!
//! Selectors of the two types RFC 7296 defines (IPv4 and IPv6 address ranges) become
//! [`TrafficSelector`]s; a selector of another type is kept as [`Selector::Other`] for the
//! negotiation to refuse (TS_UNACCEPTABLE concerns one Child SA; a syntax error would fail
//! the whole message). A selector length that does not fit its type is a syntax error.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{len16, len8, EncodeError, Syntax};
use super::reader::Reader;
use super::types::TsType;

const SELECTOR_HEADER: usize = 4;
const V4_LEN: usize = 16;
const V6_LEN: usize = 40;

/// A validated TS payload body: one or more selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ts<'a> {
    count: u8,
    selectors: &'a [u8],
}

/// One selector of a TS payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector<'a> {
    Ip(TrafficSelector),
    /// A type this codec does not know: its second octet and what follows its length.
    Other {
        ts_type: TsType,
        ip_protocol: u8,
        data: &'a [u8],
    },
}

/// An address-range selector [RFC 7296 § 3.13.1]: IP protocol 0 means any, ports 0..=65535
/// any port (for ICMP the ports carry type and code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub addresses: AddrRange,
}

/// The address range of a [`TrafficSelector`]; the family gives the TS type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRange {
    V4 { start: Ipv4Addr, end: Ipv4Addr },
    V6 { start: Ipv6Addr, end: Ipv6Addr },
}

impl TrafficSelector {
    /// Every IPv4 address, protocol and port.
    pub fn any_v4() -> TrafficSelector {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            addresses: AddrRange::V4 {
                start: Ipv4Addr::UNSPECIFIED,
                end: Ipv4Addr::BROADCAST,
            },
        }
    }

    pub fn ts_type(&self) -> TsType {
        match self.addresses {
            AddrRange::V4 { .. } => TsType::IPV4_ADDR_RANGE,
            AddrRange::V6 { .. } => TsType::IPV6_ADDR_RANGE,
        }
    }
}

impl<'a> Ts<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Ts<'a>, Syntax> {
        let mut r = Reader::new(body);
        let count = r.u8().ok_or(Syntax::BodyTooShort)?;
        r.take(3).ok_or(Syntax::BodyTooShort)?;
        let selectors = r.rest();
        let mut s = Reader::new(selectors);
        let mut seen: usize = 0;
        while !s.is_empty() {
            read_selector(&mut s)?;
            seen += 1;
        }
        if count == 0 || seen != usize::from(count) {
            return Err(Syntax::SelectorCount);
        }
        Ok(Ts { count, selectors })
    }

    /// The selectors, in order.
    pub fn selectors(&self) -> impl Iterator<Item = Selector<'a>> + 'a {
        let mut r = Reader::new(self.selectors);
        std::iter::from_fn(move || read_selector(&mut r).ok())
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Always false: a TS payload holds at least one selector.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let selectors: Vec<Selector<'a>> = self.selectors().collect();
        encode_selectors(&selectors, out)
    }
}

fn read_selector<'a>(r: &mut Reader<'a>) -> Result<Selector<'a>, Syntax> {
    let ts_type = TsType(r.u8().ok_or(Syntax::SelectorLength)?);
    let ip_protocol = r.u8().ok_or(Syntax::SelectorLength)?;
    let len = usize::from(r.u16().ok_or(Syntax::SelectorLength)?);
    let body = len
        .checked_sub(SELECTOR_HEADER)
        .and_then(|n| r.take(n))
        .ok_or(Syntax::SelectorLength)?;
    let expected = match ts_type {
        TsType::IPV4_ADDR_RANGE => V4_LEN,
        TsType::IPV6_ADDR_RANGE => V6_LEN,
        _ => {
            return Ok(Selector::Other {
                ts_type,
                ip_protocol,
                data: body,
            })
        }
    };
    if len != expected {
        return Err(Syntax::SelectorLength);
    }
    let mut b = Reader::new(body);
    let fields = (|| {
        let start_port = b.u16()?;
        let end_port = b.u16()?;
        let addresses = if ts_type == TsType::IPV4_ADDR_RANGE {
            AddrRange::V4 {
                start: Ipv4Addr::from(b.array::<4>()?),
                end: Ipv4Addr::from(b.array::<4>()?),
            }
        } else {
            AddrRange::V6 {
                start: Ipv6Addr::from(b.array::<16>()?),
                end: Ipv6Addr::from(b.array::<16>()?),
            }
        };
        Some(TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            addresses,
        })
    })();
    fields.map(Selector::Ip).ok_or(Syntax::SelectorLength)
}

/// Writes a TS payload body. At least one selector [RFC 7296 § 3.13].
pub(crate) fn encode_selectors(
    selectors: &[Selector<'_>],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if selectors.is_empty() {
        return Err(EncodeError::Inconsistent);
    }
    out.push(len8(selectors.len())?);
    out.extend_from_slice(&[0; 3]);
    for s in selectors {
        match *s {
            Selector::Ip(ts) => {
                let len = match ts.addresses {
                    AddrRange::V4 { .. } => V4_LEN,
                    AddrRange::V6 { .. } => V6_LEN,
                };
                out.extend_from_slice(&[ts.ts_type().0, ts.ip_protocol]);
                out.extend_from_slice(&len16(len)?.to_be_bytes());
                out.extend_from_slice(&ts.start_port.to_be_bytes());
                out.extend_from_slice(&ts.end_port.to_be_bytes());
                match ts.addresses {
                    AddrRange::V4 { start, end } => {
                        out.extend_from_slice(&start.octets());
                        out.extend_from_slice(&end.octets());
                    }
                    AddrRange::V6 { start, end } => {
                        out.extend_from_slice(&start.octets());
                        out.extend_from_slice(&end.octets());
                    }
                }
            }
            Selector::Other {
                ts_type,
                ip_protocol,
                data,
            } => {
                out.extend_from_slice(&[ts_type.0, ip_protocol]);
                out.extend_from_slice(&len16(SELECTOR_HEADER + data.len())?.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TSi of a tunnel-mode Child SA for 10.1.0.0/16, TCP port 443, and all of IPv6.
    const TWO: [u8; 60] = [
        2, 0, 0, 0, // two selectors
        7, 6, 0, 16, 1, 187, 1, 187, 10, 1, 0, 0, 10, 1, 255, 255, // IPv4
        8, 0, 0, 40, 0, 0, 255, 255, // IPv6, any protocol
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ::
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    ];

    #[test]
    fn parses_ipv4_and_ipv6_ranges() {
        let ts = Ts::parse(&TWO).unwrap();
        assert_eq!(ts.len(), 2);
        let s: Vec<_> = ts.selectors().collect();
        assert_eq!(
            s[0],
            Selector::Ip(TrafficSelector {
                ip_protocol: 6,
                start_port: 443,
                end_port: 443,
                addresses: AddrRange::V4 {
                    start: Ipv4Addr::new(10, 1, 0, 0),
                    end: Ipv4Addr::new(10, 1, 255, 255),
                },
            })
        );
        assert_eq!(
            s[1],
            Selector::Ip(TrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                addresses: AddrRange::V6 {
                    start: Ipv6Addr::UNSPECIFIED,
                    end: Ipv6Addr::from([0xff; 16]),
                },
            })
        );
        let mut out = Vec::new();
        ts.encode_body(&mut out).unwrap();
        assert_eq!(out, TWO);
    }

    /// [RFC 7296 § 3.13.1]: the selector length is 16 for IPv4 and 40 for IPv6.
    #[test]
    fn rfc7296_3_13_1_rejects_selector_lengths_that_do_not_fit() {
        let mut b = TWO;
        b[7] = 20; // IPv4 selector claiming 20 octets
        assert_eq!(Ts::parse(&b), Err(Syntax::SelectorLength));
        let mut b = TWO;
        b[4] = 8; // an IPv6 selector of 16 octets
        assert_eq!(Ts::parse(&b), Err(Syntax::SelectorLength));
        let mut b = TWO;
        b[23] = 41; // beyond the payload
        assert_eq!(Ts::parse(&b), Err(Syntax::SelectorLength));
        let mut b = TWO;
        b[7] = 3; // below the selector header
        assert_eq!(Ts::parse(&b), Err(Syntax::SelectorLength));
        assert_eq!(Ts::parse(&TWO[..59]), Err(Syntax::SelectorLength));
    }

    #[test]
    fn rejects_counts_that_disagree_with_the_selectors() {
        let mut b = TWO;
        b[0] = 1;
        assert_eq!(Ts::parse(&b), Err(Syntax::SelectorCount));
        b[0] = 3;
        assert_eq!(Ts::parse(&b), Err(Syntax::SelectorCount));
        assert_eq!(Ts::parse(&[0, 0, 0, 0]), Err(Syntax::SelectorCount));
        assert_eq!(Ts::parse(&[1, 0, 0]), Err(Syntax::BodyTooShort));
        assert_eq!(
            encode_selectors(&[], &mut Vec::new()),
            Err(EncodeError::Inconsistent)
        );
    }

    #[test]
    fn keeps_selectors_of_unknown_types() {
        let b = [1, 0, 0, 0, 9, 0, 0, 8, 1, 2, 3, 4];
        let ts = Ts::parse(&b).unwrap();
        assert_eq!(
            ts.selectors().next(),
            Some(Selector::Other {
                ts_type: TsType(9),
                ip_protocol: 0,
                data: &[1, 2, 3, 4]
            })
        );
        let mut out = Vec::new();
        ts.encode_body(&mut out).unwrap();
        assert_eq!(out, b);
    }
}
