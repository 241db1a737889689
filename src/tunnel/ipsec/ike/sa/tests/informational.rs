//! INFORMATIONAL exchanges: liveness checks, DPD timeout with restart, deleting the IKE SA
//! (one side, or both at once).

use std::time::Duration;

use crate::tunnel::ipsec::ike::message::{ExchangeType, Message};

use super::super::{DownReason, IkeEvent, Limits};
use super::failures::refusals;
use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

fn downs(events: &[IkeEvent]) -> Vec<DownReason> {
    events
        .iter()
        .filter_map(|e| match e {
            IkeEvent::PeerDown { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn liveness_checks_keep_a_quiet_pair_up() {
    let mut p = Pair::default_pair();
    p.connect();
    p.advance(Duration::from_secs(300));
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    let dpd = p
        .log
        .iter()
        .filter(|(_, _, t)| {
            Message::parse(&t.data).unwrap().header.exchange == ExchangeType::INFORMATIONAL
        })
        .count();
    // Every 30 s of silence each side asks once (and answers the other).
    assert!(dpd >= 20, "{dpd}");
    assert!(refusals(&p.a_events).is_empty() && refusals(&p.b_events).is_empty());
    assert!(downs(&p.a_events).is_empty());
}

#[test]
fn an_unanswered_liveness_check_takes_the_peer_down_and_restarts() {
    let (mut a, b) = configs();
    a.peers[0].dpd_timeout = Duration::from_secs(60);
    let mut p = Pair::new(a, b);
    p.connect();
    let first = child_ups(&p.a_events)[0].inbound.spi;
    // B's answers stop arriving.
    p.filter = Box::new(|side, _| {
        if side == Side::B {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.advance(Duration::from_secs(89));
    assert!(p.a.is_up(PEER_OF_A));
    p.advance(Duration::from_secs(1));
    // Silence from 0 s: the check went out at 30 s and gave up at 90 s.
    assert_eq!(downs(&p.a_events), [DownReason::DpdTimeout]);
    assert_eq!(child_downs(&p.a_events), [first]);
    assert!(p.a_events.contains(&IkeEvent::GaveUp {
        peer: Some(PEER_OF_A),
        exchange: ExchangeType::INFORMATIONAL
    }));
    // `dpd_action: restart`: A initiates again; once B is heard again a new IKE SA comes
    // up, and B replaces its stale one (INITIAL_CONTACT).
    p.filter = Box::new(|_, _| Fate::Deliver);
    p.advance(Duration::from_secs(4));
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    let (ca, cb) = (child_ups(&p.a_events), child_ups(&p.b_events));
    assert_eq!((ca.len(), cb.len()), (2, 2));
    check_child_pair(ca[1], cb[1]);
    assert_eq!(child_downs(&p.b_events), [cb[0].inbound.spi]);
    assert!(
        downs(&p.b_events).is_empty(),
        "B was never without an IKE SA"
    );
    assert_eq!(p.b.ike_sa_count(), 1);
    assert_eq!(p.b.child_spis(PEER_OF_B), [cb[1].inbound.spi]);
}

#[test]
fn deleting_the_ike_sa_takes_everything_down_on_both_sides() {
    let mut p = Pair::default_pair();
    p.connect();
    let (sa, sb) = (
        child_ups(&p.a_events)[0].inbound.spi,
        child_ups(&p.b_events)[0].inbound.spi,
    );
    p.a.delete(PEER_OF_A, p.now);
    p.drive();
    assert_eq!(downs(&p.a_events), [DownReason::DeletedLocally]);
    assert_eq!(downs(&p.b_events), [DownReason::DeletedByPeer]);
    assert_eq!(
        (child_downs(&p.a_events), child_downs(&p.b_events)),
        (vec![sa], vec![sb])
    );
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (0, 0));
    // A deleted on purpose: no restart until asked.
    p.advance(Duration::from_secs(60));
    assert_eq!(p.a.ike_sa_count(), 0);
    p.a.initiate(PEER_OF_A, p.now);
    p.drive();
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
}

/// Found against strongSwan (netns-tests/ipsec.sh): a facility the gateway initiates to
/// (`start_action = none`, as peer-config writes it) restarts charon, which deletes its IKE
/// SA on the way down and then waits. The gateway keeps the tunnel up: it initiates again.
#[test]
fn a_peer_that_deletes_the_ike_sa_is_initiated_again_by_the_side_that_keeps_it_up() {
    let mut p = Pair::default_pair();
    p.connect();
    // B (only responding) deletes, as a restarting charon does.
    p.b.delete(PEER_OF_B, p.now);
    p.drive();
    assert_eq!(downs(&p.a_events), [DownReason::DeletedByPeer]);
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (0, 0));
    let delay = Limits::default().reconnect_delay;
    p.advance(delay - Duration::from_secs(1));
    assert_eq!(p.a.ike_sa_count(), 0, "not before reconnect_delay");
    p.advance(Duration::from_secs(1));
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    let (ca, cb) = (child_ups(&p.a_events), child_ups(&p.b_events));
    assert_eq!((ca.len(), cb.len()), (2, 2));
    check_child_pair(ca[1], cb[1]);
    // B never initiates (`start: respond`): when A deletes, B stays down (the test above).
}

#[test]
fn both_sides_delete_at_once() {
    let mut p = Pair::default_pair();
    p.connect();
    p.a.delete(PEER_OF_A, p.now);
    p.b.delete(PEER_OF_B, p.now);
    p.drive();
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (0, 0));
    assert_eq!(downs(&p.a_events).len(), 1);
    assert_eq!(downs(&p.b_events).len(), 1);
    assert_eq!(
        (
            child_downs(&p.a_events).len(),
            child_downs(&p.b_events).len()
        ),
        (1, 1)
    );
}
