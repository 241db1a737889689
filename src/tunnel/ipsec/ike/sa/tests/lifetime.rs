//! Hard lifetimes: a CHILD SA or IKE SA whose rekeys fail is deleted 10 % past its rekey
//! time (or bytes), as strongSwan's default `life_time` / `over_time` [RFC 4301 § 4.4.2.1].

use std::time::Duration;

use crate::crypto::DhGroup;
use crate::tunnel::ipsec::ike::message::{ExchangeType, Message, NotifyType};

use super::super::{DownReason, IkeEvent, Refusal};
use super::failures::refusals;
use super::pair::*;

fn expired_children(events: &[IkeEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            IkeEvent::ChildSaExpired { inbound_spi, .. } => Some(*inbound_spi),
            _ => None,
        })
        .collect()
}

fn downs(events: &[IkeEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            IkeEvent::ChildSaDown { inbound_spi, .. } => Some(*inbound_spi),
            _ => None,
        })
        .collect()
}

/// A asks for PFS on rekeys, which B refuses: A's CHILD SA is never rekeyed, and goes at
/// its hard lifetime (660 s for a 600 s rekey time) with a Delete B follows. The IKE SA
/// stays.
#[test]
fn a_child_sa_whose_rekeys_are_refused_is_deleted_at_its_hard_lifetime() {
    let (mut a, mut b) = configs();
    a.peers[0].child_rekey = Duration::from_secs(600);
    a.peers[0].esp_proposals[0].dh = vec![DhGroup::Curve25519];
    b.peers[0].child_rekey = Duration::from_secs(3600);
    for c in [&mut a, &mut b] {
        c.peers[0].dpd_interval = Duration::ZERO;
    }
    let mut p = Pair::new(a, b);
    p.connect();
    let (spi_a, spi_b) = (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B));
    assert_eq!((spi_a.len(), spi_b.len()), (1, 1), "{:?}", p.b_events);
    p.advance(Duration::from_secs(659));
    assert!(
        refusals(&p.b_events).contains(&(
            Some(NotifyType::NO_PROPOSAL_CHOSEN),
            Refusal::NoProposalChosen
        )),
        "B refused the rekeys: {:?}",
        refusals(&p.b_events)
    );
    assert_eq!(p.a.child_spis(PEER_OF_A), spi_a, "still there before 660 s");
    assert!(expired_children(&p.a_events).is_empty());
    p.advance(Duration::from_secs(2));
    assert_eq!(expired_children(&p.a_events), spi_a);
    assert_eq!(downs(&p.a_events), spi_a);
    assert_eq!(downs(&p.b_events), spi_b, "B got the Delete");
    assert!(p.a.child_spis(PEER_OF_A).is_empty() && p.b.child_spis(PEER_OF_B).is_empty());
    assert!(
        p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B),
        "the IKE SA stays"
    );
}

/// Bytes: rekeyed at `child_rekey_bytes`, deleted at 110 % of it if the rekey has not
/// finished (here: B never sees A's CREATE_CHILD_SA).
#[test]
fn a_child_sa_past_its_hard_byte_lifetime_goes_at_once() {
    let (mut a, b) = configs();
    a.peers[0].child_rekey_bytes = Some(1 << 20);
    let mut p = Pair::new(a, b);
    p.connect();
    let spi = p.a.child_spis(PEER_OF_A)[0];
    p.filter = Box::new(|side, t| {
        let create = Message::parse(&t.data)
            .is_ok_and(|m| m.header.exchange == ExchangeType::CREATE_CHILD_SA);
        if side == Side::A && create {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.a.esp_usage(PEER_OF_A, spi, 1 << 20, p.now);
    p.drive();
    assert!(
        expired_children(&p.a_events).is_empty(),
        "rekeying, not expired"
    );
    p.a.esp_usage(PEER_OF_A, spi, (1 << 20) + (1 << 20) / 10, p.now);
    p.drive();
    assert_eq!(expired_children(&p.a_events), [spi]);
    assert_eq!(
        downs(&p.a_events),
        [spi],
        "the data path stops using it at once"
    );
}

/// The IKE SA: its rekey request goes unanswered (and retransmissions are slow here), so at
/// the hard lifetime it ends, and A, which initiates to B, starts a new one.
#[test]
fn an_ike_sa_not_rekeyed_in_time_ends_and_is_started_again() {
    let (mut a, b) = configs();
    a.peers[0].ike_rekey = Duration::from_secs(1000);
    a.peers[0].dpd_interval = Duration::ZERO;
    a.limits.retransmit_timeout = Duration::from_secs(120);
    let mut p = Pair::new(a, b);
    p.connect();
    p.filter = Box::new(|side, t| {
        let create = Message::parse(&t.data)
            .is_ok_and(|m| m.header.exchange == ExchangeType::CREATE_CHILD_SA);
        if side == Side::A && create {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.advance(Duration::from_secs(1099));
    assert!(!p
        .a_events
        .contains(&IkeEvent::IkeSaExpired { peer: PEER_OF_A }));
    p.advance(Duration::from_secs(2));
    assert!(p
        .a_events
        .contains(&IkeEvent::IkeSaExpired { peer: PEER_OF_A }));
    assert!(p.a_events.contains(&IkeEvent::PeerDown {
        peer: PEER_OF_A,
        reason: DownReason::Expired
    }));
    assert!(p.a.is_up(PEER_OF_A), "initiated again at once");
    assert_eq!(p.a.child_spis(PEER_OF_A).len(), 1);
}
