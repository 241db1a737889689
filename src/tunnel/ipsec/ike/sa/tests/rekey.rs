//! CREATE_CHILD_SA: CHILD SA rekeys (by time, by bytes, with PFS), IKE SA rekeys, and
//! simultaneous rekeys from both sides [RFC 7296 § 2.8.1, § 2.8.2].

use std::time::Duration;

use crate::crypto::DhGroup;
use crate::tunnel::ipsec::ike::message::{ExchangeType, Message, NotifyType};

use super::super::{IkeEvent, Refusal};
use super::failures::refusals;
use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

/// Each side has exactly one CHILD SA left, and the two are a pair.
fn one_child_each(p: &Pair) {
    let (sa, sb) = (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B));
    assert_eq!(
        (sa.len(), sb.len()),
        (1, 1),
        "{:?}\n{:?}",
        p.a_events,
        p.b_events
    );
    let a = child_ups(&p.a_events)
        .into_iter()
        .rev()
        .find(|c| c.inbound.spi == sa[0])
        .unwrap();
    let b = child_ups(&p.b_events)
        .into_iter()
        .rev()
        .find(|c| c.inbound.spi == sb[0])
        .unwrap();
    check_child_pair(a, b);
}

fn no_peer_down(p: &Pair) {
    for e in p.a_events.iter().chain(&p.b_events) {
        assert!(!matches!(e, IkeEvent::PeerDown { .. }), "{e:?}");
    }
}

#[test]
fn child_sas_are_rekeyed_in_time_and_the_old_ones_deleted() {
    let (mut a, mut b) = configs();
    for c in [&mut a, &mut b] {
        c.peers[0].child_rekey = Duration::from_secs(600);
        c.peers[0].dpd_interval = Duration::ZERO;
    }
    let mut p = Pair::new(a, b);
    p.connect();
    let (old_a, old_b) = (p.a.child_spis(PEER_OF_A)[0], p.b.child_spis(PEER_OF_B)[0]);
    p.advance(Duration::from_secs(539));
    assert_eq!(p.log.len(), 4, "jitter is at most 10 %");
    p.advance(Duration::from_secs(61));
    one_child_each(&p);
    assert_eq!(
        (child_downs(&p.a_events), child_downs(&p.b_events)),
        (vec![old_a], vec![old_b])
    );
    let new = child_ups(&p.a_events)[1];
    assert_eq!(new.replaces, Some(old_a));
    // The side that rekeyed switches its outbound traffic at once; the other only when the
    // old SA goes (no event), as the first side may not have the new SA when it answers.
    let switched = |events: &[IkeEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, IkeEvent::ChildSaRekeyed { .. }))
            .count()
    };
    let a_rekeyed = p.log.iter().any(|(_, side, t)| {
        *side == Side::A
            && Message::parse(&t.data).unwrap().header.exchange == ExchangeType::CREATE_CHILD_SA
            && !Message::parse(&t.data).unwrap().header.flags.response()
    });
    if a_rekeyed {
        assert!(p.a_events.contains(&IkeEvent::ChildSaRekeyed {
            peer: PEER_OF_A,
            inbound_spi: old_a,
            new_inbound_spi: new.inbound.spi
        }));
    }
    assert_eq!(
        (switched(&p.a_events), switched(&p.b_events)),
        if a_rekeyed { (1, 0) } else { (0, 1) }
    );
    // And again ten minutes later, on the rekeyed SA's own timer.
    p.advance(Duration::from_secs(600));
    one_child_each(&p);
    assert_eq!(child_ups(&p.a_events).len(), 3);
    no_peer_down(&p);
}

#[test]
fn a_rekey_with_pfs_and_by_bytes() {
    let (mut a, mut b) = configs();
    for c in [&mut a, &mut b] {
        c.peers[0].esp_proposals[0].dh = vec![DhGroup::Curve25519];
        c.peers[0].child_rekey_bytes = Some(1 << 30);
    }
    let mut p = Pair::new(a, b);
    p.connect();
    let old = p.a.child_spis(PEER_OF_A)[0];
    p.a.esp_usage(PEER_OF_A, old, 1 << 20, p.now);
    p.drive();
    assert_eq!(p.log.len(), 4, "below the limit");
    p.a.esp_usage(PEER_OF_A, old, 1 << 30, p.now);
    p.drive();
    one_child_each(&p);
    let req = p.log.iter().find(|(_, _, t)| {
        Message::parse(&t.data).unwrap().header.exchange == ExchangeType::CREATE_CHILD_SA
    });
    assert!(req.is_some());
    assert_ne!(p.a.child_spis(PEER_OF_A)[0], old);
    assert!(refusals(&p.a_events).is_empty() && refusals(&p.b_events).is_empty());
}

#[test]
fn a_pfs_group_mismatch_is_settled_by_invalid_ke_payload() {
    let (mut a, mut b) = configs();
    a.peers[0].esp_proposals[0].dh = vec![DhGroup::Ecp384, DhGroup::Curve25519];
    b.peers[0].esp_proposals[0].dh = vec![DhGroup::Curve25519];
    let mut p = Pair::new(a, b);
    p.connect();
    p.a.rekey_child(PEER_OF_A, p.now);
    p.drive();
    one_child_each(&p);
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::INVALID_KE_PAYLOAD), Refusal::InvalidKe)]
    );
}

#[test]
fn the_ike_sa_is_rekeyed_and_keeps_its_child_sas() {
    let mut p = Pair::default_pair();
    p.connect();
    let (ca, cb) = (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B));
    p.a.rekey_ike(PEER_OF_A, p.now);
    p.drive();
    assert_eq!(
        (p.a.ike_sa_count(), p.b.ike_sa_count()),
        (1, 1),
        "the old IKE SA is deleted"
    );
    assert!(p
        .a_events
        .contains(&IkeEvent::IkeSaRekeyed { peer: PEER_OF_A }));
    assert!(p
        .b_events
        .contains(&IkeEvent::IkeSaRekeyed { peer: PEER_OF_B }));
    assert_eq!(
        (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B)),
        (ca, cb)
    );
    assert!(child_downs(&p.a_events).is_empty() && child_downs(&p.b_events).is_empty());
    // The new IKE SA works: a CHILD SA rekey from the responder's side, with the new SK_d,
    // and liveness checks.
    p.b.rekey_child(PEER_OF_B, p.now);
    p.drive();
    one_child_each(&p);
    p.advance(Duration::from_secs(100));
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    no_peer_down(&p);
    assert!(
        refusals(&p.a_events).is_empty() && refusals(&p.b_events).is_empty(),
        "{:?} {:?}",
        p.a_events,
        p.b_events
    );
}

#[test]
fn simultaneous_child_rekeys_leave_exactly_one_child_sa() {
    // Which exchange's SA survived, in rounds without reordering: the peer's (answered
    // first) or ours. The nonces are random, so both must be seen.
    let mut survivors = [0; 2];
    for round in 0..32 {
        let mut p = Pair::default_pair();
        p.reorder = round % 2 == 1;
        p.connect();
        let (old_a, old_b) = (p.a.child_spis(PEER_OF_A)[0], p.b.child_spis(PEER_OF_B)[0]);
        p.a.rekey_child(PEER_OF_A, p.now);
        p.b.rekey_child(PEER_OF_B, p.now);
        p.drive();
        p.advance(Duration::from_secs(1));
        one_child_each(&p);
        assert!(!p.a.child_spis(PEER_OF_A).contains(&old_a));
        assert!(!p.b.child_spis(PEER_OF_B).contains(&old_b));
        // Three SAs were made on each side (two new, one old) and two went.
        let ups = child_ups(&p.a_events);
        assert_eq!(ups.len(), 3);
        if !p.reorder {
            let survivor = p.a.child_spis(PEER_OF_A)[0];
            survivors[usize::from(ups[2].inbound.spi == survivor)] += 1;
        }
        assert_eq!(child_downs(&p.a_events).len(), 2);
        assert_eq!(child_downs(&p.b_events).len(), 2);
        no_peer_down(&p);
        assert!(
            refusals(&p.a_events).is_empty() && refusals(&p.b_events).is_empty(),
            "{:?} {:?}",
            p.a_events,
            p.b_events
        );
    }
    assert!(survivors[0] > 0 && survivors[1] > 0, "{survivors:?}");
}

#[test]
fn simultaneous_ike_rekeys_leave_exactly_one_ike_sa_with_the_children() {
    // Whose new IKE SA survived (A originally initiated it, or B): both must be seen.
    let mut survivors = [0; 2];
    for round in 0..32 {
        let mut p = Pair::default_pair();
        p.reorder = round % 2 == 1;
        p.connect();
        let (ca, cb) = (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B));
        p.a.rekey_ike(PEER_OF_A, p.now);
        p.b.rekey_ike(PEER_OF_B, p.now);
        p.drive();
        p.advance(Duration::from_secs(1));
        assert_eq!(
            (p.a.ike_sa_count(), p.b.ike_sa_count()),
            (1, 1),
            "round {round}: {:?}\n{:?}",
            p.a_events,
            p.b_events
        );
        assert_eq!(
            (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B)),
            (ca.clone(), cb.clone())
        );
        let a_init = p.a.initiator_of(PEER_OF_A);
        assert_eq!(a_init.len(), 1);
        assert_eq!(p.b.initiator_of(PEER_OF_B), [!a_init[0]]);
        survivors[usize::from(a_init[0])] += 1;
        assert!(child_downs(&p.a_events).is_empty() && child_downs(&p.b_events).is_empty());
        no_peer_down(&p);
        // The survivor carries the next rekey and the liveness checks.
        p.a.rekey_child(PEER_OF_A, p.now);
        p.drive();
        one_child_each(&p);
        p.advance(Duration::from_secs(100));
        assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
        no_peer_down(&p);
    }
    assert!(survivors[0] > 0 && survivors[1] > 0, "{survivors:?}");
}

#[test]
fn a_child_rekey_during_an_ike_rekey_is_refused_for_now_and_retried() {
    let mut p = Pair::default_pair();
    p.connect();
    p.a.rekey_child(PEER_OF_A, p.now);
    p.b.rekey_ike(PEER_OF_B, p.now);
    p.drive();
    assert!(refusals(&p.a_events).contains(&(
        Some(NotifyType::TEMPORARY_FAILURE),
        Refusal::TemporaryFailure
    )));
    p.advance(Duration::from_secs(10));
    assert_eq!(
        (p.a.ike_sa_count(), p.b.ike_sa_count()),
        (1, 1),
        "{:?}\n{:?}",
        p.a_events,
        p.b_events
    );
    one_child_each(&p);
    assert_eq!(
        child_ups(&p.a_events).len(),
        2,
        "the CHILD SA was rekeyed in the end"
    );
    no_peer_down(&p);
}

#[test]
fn hours_of_timed_rekeys_and_liveness_checks() {
    let (mut a, mut b) = configs();
    for c in [&mut a, &mut b] {
        c.peers[0].ike_rekey = Duration::from_secs(1800);
        c.peers[0].child_rekey = Duration::from_secs(700);
    }
    let mut p = Pair::new(a, b);
    p.connect();
    p.advance(Duration::from_secs(4 * 3600));
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (1, 1));
    one_child_each(&p);
    assert!(child_ups(&p.a_events).len() >= 20);
    no_peer_down(&p);
    assert!(
        refusals(&p.a_events).is_empty() && refusals(&p.b_events).is_empty(),
        "{:?}",
        refusals(&p.a_events)
    );
}

#[test]
fn a_lost_rekey_response_is_recovered_from_the_cache() {
    let mut p = Pair::default_pair();
    p.connect();
    let mut dropped = false;
    p.filter = Box::new(move |side, t| {
        let create =
            Message::parse(&t.data).unwrap().header.exchange == ExchangeType::CREATE_CHILD_SA;
        if side == Side::B && create && !std::mem::replace(&mut dropped, true) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.a.rekey_child(PEER_OF_A, p.now);
    p.drive();
    p.advance(Duration::from_secs(5));
    one_child_each(&p);
    assert_eq!(
        child_ups(&p.b_events).len(),
        2,
        "answered once, resent from the cache"
    );
}

/// Every inbound SPI a side chooses, at IKE_AUTH and at each rekey, is of its peer's SPI
/// class (the data path steers ESP to the worker its SPI names).
#[test]
fn inbound_spis_keep_to_the_peers_class_across_rekeys() {
    use super::super::SpiClass;
    let (mut a, mut b) = configs();
    let (class_a, class_b) = (
        SpiClass {
            modulus: 3,
            residue: 2,
        },
        SpiClass {
            modulus: 4,
            residue: 1,
        },
    );
    a.peers[0].spi_class = class_a;
    b.peers[0].spi_class = class_b;
    for c in [&mut a, &mut b] {
        c.peers[0].child_rekey = Duration::from_secs(600);
        c.peers[0].dpd_interval = Duration::ZERO;
    }
    let mut p = Pair::new(a, b);
    p.connect();
    let mut seen = (Vec::new(), Vec::new());
    for _ in 0..3 {
        seen.0.extend(p.a.child_spis(PEER_OF_A));
        seen.1.extend(p.b.child_spis(PEER_OF_B));
        p.advance(Duration::from_secs(600));
        one_child_each(&p);
    }
    seen.0.sort_unstable();
    seen.0.dedup();
    seen.1.sort_unstable();
    seen.1.dedup();
    assert_eq!((seen.0.len(), seen.1.len()), (3, 3), "{seen:?}");
    assert!(seen.0.iter().all(|&s| s % 3 == 2 && s > 255), "{seen:?}");
    assert!(seen.1.iter().all(|&s| s % 4 == 1 && s > 255), "{seen:?}");
}
