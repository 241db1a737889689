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

/// A asks for PFS on rekeys, which B refuses: A's CHILD SA is never rekeyed, and goes at
/// its hard lifetime (660 s for a 600 s rekey time). It was the IKE SA's only one, so the
/// IKE SA goes too (B gets the Delete), and A, which initiates, sets up new ones at once.
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
    assert!(child_downs(&p.a_events).contains(&spi_a[0]));
    assert!(
        child_downs(&p.b_events).contains(&spi_b[0]),
        "B got the Delete"
    );
    assert!(p.a_events.contains(&IkeEvent::PeerDown {
        peer: PEER_OF_A,
        reason: DownReason::Expired
    }));
    assert!(p.b_events.contains(&IkeEvent::PeerDown {
        peer: PEER_OF_B,
        reason: DownReason::DeletedByPeer
    }));
    // A new IKE SA and CHILD SA, with a hard lifetime of their own.
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    let (now_a, now_b) = (p.a.child_spis(PEER_OF_A), p.b.child_spis(PEER_OF_B));
    assert_eq!((now_a.len(), now_b.len()), (1, 1));
    assert_ne!(now_a, spi_a);
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (1, 1));
}

/// Hard lifetimes leave a rekey at least 30 s: with a 10 s rekey time a CHILD SA whose
/// rekey's first request is lost is rekeyed by the retransmission, not deleted.
#[test]
fn a_short_lifetime_leaves_time_for_a_retransmitted_rekey() {
    let (mut a, b) = configs();
    a.peers[0].child_rekey = Duration::from_secs(10);
    a.peers[0].dpd_interval = Duration::ZERO;
    let mut p = Pair::new(a, b);
    p.connect();
    let old = p.a.child_spis(PEER_OF_A);
    let mut lost = false;
    p.filter = Box::new(move |side, t| {
        let create = Message::parse(&t.data)
            .is_ok_and(|m| m.header.exchange == ExchangeType::CREATE_CHILD_SA);
        if side == Side::A && create && !lost {
            lost = true;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.advance(Duration::from_secs(16));
    assert!(expired_children(&p.a_events).is_empty());
    let now = p.a.child_spis(PEER_OF_A);
    assert_eq!(now.len(), 1);
    assert_ne!(now, old, "rekeyed by the retransmission");
}

/// Bytes: rekeyed at `child_rekey_bytes`; if that rekey has not succeeded 30 s later (here
/// B never sees A's CREATE_CHILD_SA), the SA goes, and with it the IKE SA it was the last
/// of. However far past the limit a report jumps, it only starts the rekey.
#[test]
fn a_child_sa_whose_byte_rekey_fails_goes_30_s_later() {
    let (mut a, b) = configs();
    a.peers[0].child_rekey_bytes = Some(1 << 20);
    a.peers[0].dpd_interval = Duration::ZERO;
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
    p.a.esp_usage(PEER_OF_A, spi, 3 << 20, p.now);
    p.advance(Duration::from_secs(1));
    p.a.esp_usage(PEER_OF_A, spi, 6 << 20, p.now);
    p.advance(Duration::from_secs(28));
    assert!(
        expired_children(&p.a_events).is_empty(),
        "the rekey has 30 s, whatever the bytes"
    );
    p.advance(Duration::from_secs(2));
    assert_eq!(expired_children(&p.a_events), [spi]);
    assert!(
        child_downs(&p.a_events).contains(&spi),
        "the data path stops using it at once"
    );
    assert!(p.a_events.contains(&IkeEvent::PeerDown {
        peer: PEER_OF_A,
        reason: DownReason::Expired
    }));
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
