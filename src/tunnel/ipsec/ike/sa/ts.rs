//! Traffic selector negotiation [RFC 7296 § 2.9]: the responder narrows what the initiator
//! proposes to the intersection with its configuration; the initiator checks that the answer
//! lies inside its proposal. Only IPv4 address ranges take part: ixgw translates IPv4 only, so
//! IPv6 and unknown selector types are left out of the intersection.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::tunnel::ipsec::ike::message::{AddrRange, Selector, TrafficSelector, Ts};

/// A configured prefix as a selector: any protocol, any port.
pub(super) fn from_prefix(p: Ipv4Network) -> TrafficSelector {
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: u16::MAX,
        addresses: AddrRange::V4 {
            start: p.network(),
            end: p.broadcast(),
        },
    }
}

pub(super) fn from_prefixes(ps: &[Ipv4Network]) -> Vec<TrafficSelector> {
    ps.iter().copied().map(from_prefix).collect()
}

fn v4(ts: &TrafficSelector) -> Option<(u32, u32)> {
    match ts.addresses {
        AddrRange::V4 { start, end } if start <= end => Some((start.into(), end.into())),
        _ => None,
    }
}

/// The IPv4 selectors of a TS payload.
pub(super) fn selectors(ts: &Ts<'_>) -> Vec<TrafficSelector> {
    ts.selectors()
        .filter_map(|s| match s {
            Selector::Ip(t) if v4(&t).is_some() => Some(t),
            _ => None,
        })
        .collect()
}

/// The intersection of two selectors, if not empty.
fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let ((a0, a1), (b0, b1)) = (v4(a)?, v4(b)?);
    let (start, end) = (a0.max(b0), a1.min(b1));
    let ip_protocol = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let (start_port, end_port) = (a.start_port.max(b.start_port), a.end_port.min(b.end_port));
    (start <= end && start_port <= end_port).then_some(TrafficSelector {
        ip_protocol,
        start_port,
        end_port,
        addresses: AddrRange::V4 {
            start: Ipv4Addr::from(start),
            end: Ipv4Addr::from(end),
        },
    })
}

/// Responder: what of `proposed` the configured `allowed` prefixes permit (each proposed
/// selector intersected with each prefix, in the proposal's order, duplicates removed). Empty:
/// TS_UNACCEPTABLE.
pub(super) fn narrow(
    proposed: &[TrafficSelector],
    allowed: &[Ipv4Network],
) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for a in allowed {
            if let Some(x) = intersect(p, &from_prefix(*a)) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

fn contains(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    let (Some((o0, o1)), Some((i0, i1))) = (v4(outer), v4(inner)) else {
        return false;
    };
    o0 <= i0
        && i1 <= o1
        && (outer.ip_protocol == 0 || outer.ip_protocol == inner.ip_protocol)
        && outer.start_port <= inner.start_port
        && inner.end_port <= outer.end_port
}

/// Initiator: whether every selector of the answer lies inside one we proposed (and there is
/// at least one).
pub(super) fn within(answer: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !answer.is_empty()
        && answer
            .iter()
            .all(|a| proposed.iter().any(|p| contains(p, a)))
}

pub(super) fn as_selectors(ts: &[TrafficSelector]) -> Vec<Selector<'static>> {
    ts.iter().copied().map(Selector::Ip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn range(a: [u8; 4], b: [u8; 4]) -> TrafficSelector {
        TrafficSelector {
            addresses: AddrRange::V4 {
                start: a.into(),
                end: b.into(),
            },
            ..TrafficSelector::any_v4()
        }
    }

    /// [RFC 7296 § 2.9]: the responder narrows to the subset its policy allows.
    #[test]
    fn rfc7296_2_9_narrows_to_the_intersection() {
        let proposed = [from_prefix(net("10.0.0.0/8"))];
        let got = narrow(&proposed, &[net("10.1.0.0/16"), net("192.168.0.0/24")]);
        assert_eq!(got, [from_prefix(net("10.1.0.0/16"))]);
        assert!(narrow(&proposed, &[net("192.168.0.0/24")]).is_empty());
        // A protocol and port restriction of the proposal is kept.
        let tcp = TrafficSelector {
            ip_protocol: 6,
            start_port: 443,
            end_port: 443,
            ..range([10, 1, 2, 0], [10, 1, 3, 255])
        };
        let got = narrow(&[tcp], &[net("10.1.3.0/24")]);
        assert_eq!(
            got,
            [TrafficSelector {
                ..range([10, 1, 3, 0], [10, 1, 3, 255])
            }]
            .map(|t| TrafficSelector {
                ip_protocol: 6,
                start_port: 443,
                end_port: 443,
                ..t
            })
        );
        assert!(within(&got, &[tcp]));
    }

    #[test]
    fn the_initiator_refuses_answers_outside_its_proposal() {
        let proposed = [from_prefix(net("10.1.0.0/16"))];
        assert!(within(&[from_prefix(net("10.1.2.0/24"))], &proposed));
        assert!(!within(&[from_prefix(net("10.0.0.0/8"))], &proposed));
        assert!(!within(&[], &proposed));
    }
}
