//! Message IDs, the window and retransmission [RFC 7296 § 2.1, § 2.3]: lost and duplicated
//! datagrams, requests answered from the cache, unexpected IDs dropped, strongSwan's backoff
//! and giving up.

use std::time::Duration;

use crate::tunnel::ipsec::ike::message::{ExchangeType, Message};

use super::super::{DownReason, IkeEvent, Refusal};
use super::failures::refusals;
use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

fn exchange(t: &super::super::Transmit) -> ExchangeType {
    Message::parse(&t.data).unwrap().header.exchange
}

#[test]
fn a_lost_request_is_retransmitted() {
    let mut p = Pair::default_pair();
    let mut first = true;
    p.filter = Box::new(move |side, _| {
        if side == Side::A && std::mem::take(&mut first) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    assert!(!p.a.is_up(PEER_OF_A));
    p.advance(Duration::from_secs(4));
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    assert!(p.a_events.contains(&IkeEvent::Retransmit {
        peer: Some(PEER_OF_A),
        exchange: ExchangeType::IKE_SA_INIT,
        attempt: 1
    }));
    check_child_pair(child_ups(&p.a_events)[0], child_ups(&p.b_events)[0]);
}

#[test]
fn a_lost_response_is_resent_from_the_cache() {
    let mut p = Pair::default_pair();
    let mut b_sent = 0;
    p.filter = Box::new(move |side, t| {
        if side == Side::B && exchange(t) == ExchangeType::IKE_AUTH {
            b_sent += 1;
            if b_sent == 1 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    p.connect();
    assert!(p.b.is_up(PEER_OF_B) && !p.a.is_up(PEER_OF_A));
    p.advance(Duration::from_secs(4));
    assert!(p.a.is_up(PEER_OF_A));
    // The responder answered the retransmitted IKE_AUTH from its cache: one CHILD SA, the
    // same bytes twice.
    assert_eq!(child_ups(&p.b_events).len(), 1);
    let auth: Vec<_> = p
        .log
        .iter()
        .filter(|(_, s, t)| *s == Side::B && exchange(t) == ExchangeType::IKE_AUTH)
        .collect();
    assert_eq!(auth.len(), 2);
    assert_eq!(auth[0].2.data, auth[1].2.data);
    check_child_pair(child_ups(&p.a_events)[0], child_ups(&p.b_events)[0]);
}

#[test]
fn duplicated_datagrams_change_nothing() {
    let mut p = Pair::default_pair();
    p.filter = Box::new(|_, _| Fate::Duplicate);
    p.connect();
    assert_eq!(
        (child_ups(&p.a_events).len(), child_ups(&p.b_events).len()),
        (1, 1)
    );
    check_child_pair(child_ups(&p.a_events)[0], child_ups(&p.b_events)[0]);
    // Duplicated responses are outside the window at the initiator (counted), duplicated
    // requests are answered again from the cache.
    assert!(
        refusals(&p.a_events)
            .iter()
            .all(|r| *r == (None, Refusal::MessageId)),
        "{:?}",
        refusals(&p.a_events)
    );
    assert!(!refusals(&p.a_events).is_empty());
    assert!(refusals(&p.b_events)
        .iter()
        .all(|r| *r == (None, Refusal::MessageId)));
}

#[test]
fn requests_with_unexpected_message_ids_are_dropped() {
    let mut p = Pair::default_pair();
    p.connect();
    let auth = p
        .log
        .iter()
        .find(|(_, s, t)| *s == Side::A && exchange(t) == ExchangeType::IKE_AUTH)
        .unwrap()
        .2
        .clone();
    // Liveness checks both ways move the windows on (A's request ID 2).
    p.advance(Duration::from_secs(31));
    assert_eq!(p.log.len(), 8);
    p.b_events.clear();
    // The IKE_AUTH request (ID 1) again: neither expected nor the last one answered.
    let from = std::net::SocketAddr::from((A_IP, 4500));
    p.b.handle_datagram(p.now, 4500, from, &auth.data);
    p.drive();
    assert_eq!(refusals(&p.b_events), [(None, Refusal::MessageId)]);
    assert_eq!(p.log.len(), 8, "no answer");
    // Garbage under a known SPI fails the integrity check.
    let mut bad = auth.data.clone();
    bad[20..24].copy_from_slice(&3u32.to_be_bytes());
    *bad.last_mut().unwrap() ^= 0x55;
    p.b.handle_datagram(p.now, 4500, from, &bad);
    p.drive();
    assert_eq!(refusals(&p.b_events)[1], (None, Refusal::Integrity));
}

#[test]
fn gives_up_after_strongswans_schedule_and_restarts() {
    let mut p = Pair::default_pair();
    p.filter = Box::new(|side, _| {
        if side == Side::B {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let start = p.now;
    p.connect();
    p.advance(Duration::from_secs(166));
    let sent: Vec<f64> = p
        .log
        .iter()
        .filter(|(_, s, t)| *s == Side::A && exchange(t) == ExchangeType::IKE_SA_INIT)
        .map(|(at, _, _)| (*at - start).as_secs_f64())
        .collect();
    // 0, then 4 s × 1.8^n after each: 4, 11.2, 24.16, 47.49, 89.48; give up at 165.06 and,
    // with `dpd_action: restart`, start again at once.
    let want = [0.0, 4.0, 11.2, 24.16, 47.488, 89.4784, 165.0611];
    assert_eq!(sent.len(), want.len(), "{sent:?}");
    for (s, w) in sent.iter().zip(want) {
        assert!((s - w).abs() < 0.01, "{sent:?}");
    }
    assert!(p.a_events.contains(&IkeEvent::GaveUp {
        peer: Some(PEER_OF_A),
        exchange: ExchangeType::IKE_SA_INIT
    }));
    // The responder's half-open SA of the first attempt timed out; the restart made another.
    assert_eq!(p.b.half_open(), 1);
    assert!(
        !p.a_events
            .iter()
            .any(|e| matches!(e, IkeEvent::PeerDown { .. })),
        "never up"
    );
    let _ = DownReason::GaveUp;
}
