//! Cookies under a flood of IKE_SA_INIT requests [RFC 7296 § 2.6]: the responder's state
//! stays bounded and a legitimate initiator still gets through.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tunnel::ipsec::ike::message::{Message, MessageBuilder, Notify, NotifyType, Payload};

use super::super::{IkeEngine, Refusal};
use super::failures::refusals;
use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

/// The initiator's first IKE_SA_INIT request, as A sends it.
fn sa_init_request() -> Vec<u8> {
    let (a, _) = configs();
    let now = std::time::Instant::now();
    let mut e = IkeEngine::new(a, now);
    e.handle_timeout(now);
    e.poll_transmit().unwrap().data
}

#[test]
fn a_flood_gets_cookies_and_the_real_initiator_gets_through() {
    let mut p = Pair::default_pair();
    let request = sa_init_request();
    // 500 requests claiming to be A (another SPI and source port each).
    for i in 0..500u64 {
        let mut r = request.clone();
        r[..8].copy_from_slice(&(0xf100_0000 + i).to_be_bytes());
        let from = SocketAddr::from((A_IP, 20000 + i as u16));
        p.b.handle_datagram(p.now, 500, from, &r);
    }
    let mut cookies = 0;
    while let Some(t) = p.b.poll_transmit() {
        let m = Message::parse(&t.data).unwrap();
        if m.notify(NotifyType::COOKIE).is_some() {
            assert_eq!(m.payloads.len(), 1);
            cookies += 1;
        }
    }
    assert_eq!(p.b.half_open(), 32, "state stops at the threshold");
    assert_eq!(p.b.ike_sa_count(), 32);
    assert_eq!(cookies, 500 - 32);
    while p.b.poll_event().is_some() {}

    // The real A: answered with a cookie, repeats its request with it, and is let in.
    p.connect();
    assert!(
        p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B),
        "{:?}",
        p.b_events
    );
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::COOKIE), Refusal::CookieRequired)]
    );
    check_child_pair(child_ups(&p.a_events)[0], child_ups(&p.b_events)[0]);
    let first = Message::parse(&p.log[2].2.data).unwrap();
    assert_eq!(
        first
            .payloads
            .first()
            .and_then(|_| first.notifies().next())
            .map(|n| n.notify_type),
        Some(NotifyType::COOKIE)
    );

    // A cookie that was not issued to this SPI is refused without state.
    let mut forged = p.log[2].2.data.clone();
    forged[7] ^= 1;
    p.b.handle_datagram(p.now, 500, SocketAddr::from((A_IP, 500)), &forged);
    p.drive();
    assert_eq!(
        refusals(&p.b_events).last(),
        Some(&(None, Refusal::InvalidCookie))
    );
    assert_eq!(p.b.half_open(), 32);

    // The flood's half-open SAs expire.
    p.advance(Duration::from_secs(31));
    assert_eq!(p.b.half_open(), 0);
    assert_eq!(p.b.ike_sa_count(), 1);
}

/// `request` with a COOKIE first.
fn with_cookie(request: &[u8], cookie: &[u8]) -> Vec<u8> {
    let m = Message::parse(request).unwrap();
    let mut b = MessageBuilder::new(m.header);
    b.push(&Payload::Notify(Notify::new(NotifyType::COOKIE, cookie)));
    for p in &m.payloads {
        b.push(p);
    }
    b.finish().unwrap()
}

#[test]
fn a_hard_limit_beyond_cookies() {
    let (a, mut b) = configs();
    b.limits.cookie_threshold = 2;
    b.limits.half_open_max = 3;
    let mut p = Pair::new(a, b);
    let request = sa_init_request();
    let open = |p: &mut Pair, i: u64| {
        let mut r = request.clone();
        r[..8].copy_from_slice(&(0xf200_0000 + i).to_be_bytes());
        let from = SocketAddr::from((A_IP, 30000 + i as u16));
        p.b.handle_datagram(p.now, 500, from, &r);
        let answer = p.b.poll_transmit();
        let cookie = answer.as_ref().and_then(|t| {
            Message::parse(&t.data)
                .ok()?
                .notify(NotifyType::COOKIE)
                .map(|n| n.data.to_vec())
        });
        if let Some(c) = cookie {
            p.b.handle_datagram(p.now, 500, from, &with_cookie(&r, &c));
            while p.b.poll_transmit().is_some() {}
        }
    };
    for i in 0..3 {
        open(&mut p, i);
    }
    assert_eq!(p.b.half_open(), 3, "two without a cookie, one with");
    while p.b.poll_event().is_some() {}
    open(&mut p, 3);
    assert_eq!(p.b.half_open(), 3);
    assert_eq!(
        p.b.poll_event(),
        Some(super::super::IkeEvent::Refused {
            peer: None,
            notify: None,
            reason: Refusal::HalfOpenLimit
        })
    );
}
