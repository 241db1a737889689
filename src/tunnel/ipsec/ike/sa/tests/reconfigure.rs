//! A reload: the engine takes a new configuration in which peers are renumbered, added,
//! changed or removed ([`IkeEngine::reconfigure`]), and keeps the SAs of unchanged peers.

use std::net::SocketAddr;
use std::time::Duration;

use crate::ids::PeerId;

use super::super::{DownReason, IkeEvent, Start};
use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

/// A peer of A that never connects (the reload adds it).
fn newcomer() -> crate::tunnel::ipsec::ike::sa::IkePeerConfig {
    let mut p = peer(PeerId(7), "gw-c.lab", None, "10.1.0.0/16", "10.3.0.0/16");
    p.start = Start::Respond;
    p
}

#[test]
fn a_reload_keeps_the_sas_of_unchanged_peers_under_their_new_numbers() {
    let mut p = Pair::default_pair();
    p.connect();
    let spis = p.a.child_spis(PEER_OF_A);
    let sent = p.log.len();
    let (mut config, _) = configs();
    let renumbered = PeerId(9);
    config.peers[0].peer = renumbered;
    config.peers.insert(0, newcomer());
    p.a.reconfigure(config, &[(PEER_OF_A, renumbered)], p.now);
    p.drive();
    assert_eq!(p.log.len(), sent, "nothing is negotiated again");
    assert!(p.a.is_up(renumbered));
    assert_eq!(p.a.child_spis(renumbered), spis);
    assert!(p.a.child_spis(PEER_OF_A).is_empty() && !p.a.is_up(PeerId(7)));

    // The kept SAs work on under the new number: a CHILD SA rekey, an IKE SA rekey, and
    // liveness checks for an hour.
    let events = p.a_events.len();
    p.a.rekey_child(renumbered, p.now);
    p.drive();
    let up = child_ups(&p.a_events[events..]);
    assert_eq!(up.len(), 1);
    assert_eq!((up[0].peer, up[0].replaces), (renumbered, Some(spis[0])));
    let b = child_ups(&p.b_events).into_iter().last().unwrap();
    check_child_pair(up[0], b);
    p.a.rekey_ike(renumbered, p.now);
    p.advance(Duration::from_secs(3600));
    assert!(p.a_events[events..].contains(&IkeEvent::IkeSaRekeyed { peer: renumbered }));
    for e in &p.a_events[events..] {
        assert!(!matches!(e, IkeEvent::PeerDown { .. }), "{e:?}");
    }
    assert_eq!(p.a.ike_sa_count(), 1);
    assert_eq!(p.a.child_spis(renumbered).len(), 1);
    assert_eq!(p.b.child_spis(PEER_OF_B).len(), 1);
}

#[test]
fn a_changed_peer_is_deleted_then_negotiates_again_under_its_new_configuration() {
    let mut p = Pair::default_pair();
    p.connect();
    let old = p.a.child_spis(PEER_OF_A);
    // The runtime deletes what does not carry on before it reconfigures.
    p.a.delete(PEER_OF_A, p.now);
    let (mut config, _) = configs();
    let changed = PeerId(3);
    config.peers[0].peer = changed;
    config.peers[0].local_ts = vec![net("10.1.1.0/24")];
    p.a.reconfigure(config, &[], p.now);
    let events = p.a_events.len();
    p.connect();
    // B learned of the delete, and sees the new CHILD SA with the new selectors.
    assert!(p.b_events.iter().any(|e| matches!(
        e,
        IkeEvent::PeerDown {
            reason: DownReason::DeletedByPeer,
            ..
        }
    )));
    let up = child_ups(&p.a_events[events..]);
    assert_eq!(up.len(), 1, "{:?}", &p.a_events[events..]);
    assert_eq!(up[0].peer, changed);
    let narrowed = super::super::ts::from_prefixes(&[net("10.1.1.0/24")]);
    assert_eq!(up[0].local_ts, narrowed);
    assert_ne!(p.a.child_spis(changed), old);
    // Nothing of A after the reload names the peer's old number; the old IKE SA finished its
    // Delete as an SA of no peer.
    for e in &p.a_events[events..] {
        let old_number = match e {
            IkeEvent::ChildSaDown { peer, .. } | IkeEvent::PeerDown { peer, .. } => {
                *peer == PEER_OF_A
            }
            IkeEvent::Refused { peer, .. } => *peer == Some(PEER_OF_A),
            _ => false,
        };
        assert!(!old_number, "{e:?}");
    }
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (1, 1));
    assert_eq!(p.b.child_spis(PEER_OF_B).len(), 1);
}

#[test]
fn a_removed_peer_is_forgotten_and_a_new_one_starts() {
    let mut p = Pair::default_pair();
    p.connect();
    p.a.delete(PEER_OF_A, p.now);
    let mut starter = newcomer();
    starter.start = Start::Initiate;
    starter.endpoint = Some(SocketAddr::from((B_IP, 500)));
    let (mut config, _) = configs();
    config.peers = vec![starter];
    p.a.reconfigure(config, &[], p.now);
    p.advance(Duration::from_secs(1));
    assert!(p.a.child_spis(PEER_OF_A).is_empty());
    assert_eq!(
        p.b.ike_sa_count(),
        0,
        "B deleted the old IKE SA, and the newcomer got none"
    );
    // The newcomer tried (B does not know gw-c.lab's selectors and refuses it).
    let inits = p
        .log
        .iter()
        .filter(|(_, side, t)| *side == Side::A && t.data.get(18) == Some(&34))
        .count();
    assert_eq!(
        inits, 2,
        "one IKE_SA_INIT before the reload, one by the newcomer"
    );
}

/// A peer we initiate to that does not answer is tried again at once by a reload that keeps
/// it (the operator may have fixed what kept it down), not at its next retransmission.
#[test]
fn a_reload_starts_a_down_peer_again_at_once() {
    let mut p = Pair::default_pair();
    p.filter = Box::new(|side, _| {
        if side == Side::A {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    p.advance(Duration::from_secs(30));
    let tries = p.log.len();
    assert!(tries >= 3, "the first request and retransmissions");
    assert!(!p.a.is_up(PEER_OF_A));
    p.filter = Box::new(|_, _| Fate::Deliver);
    let (config, _) = configs();
    p.a.reconfigure(config, &[(PEER_OF_A, PEER_OF_A)], p.now);
    p.advance(Duration::ZERO);
    assert!(
        p.a.is_up(PEER_OF_A),
        "connected without waiting for a retransmission"
    );
    assert_eq!(p.a.ike_sa_count(), 1, "the unanswered attempt is gone");
    assert_eq!(p.b.child_spis(PEER_OF_B).len(), 1);
}

/// A peer removed while a request of ours is in flight (here a CHILD SA rekey) still gets
/// its Delete, once the request is answered.
#[test]
fn a_removed_peer_gets_its_delete_after_a_request_in_flight() {
    let mut p = Pair::default_pair();
    p.connect();
    p.a.rekey_child(PEER_OF_A, p.now);
    p.a.delete(PEER_OF_A, p.now);
    let (mut config, _) = configs();
    config.peers.clear();
    p.a.reconfigure(config, &[], p.now);
    p.drive();
    assert!(
        p.b_events.iter().any(|e| matches!(
            e,
            IkeEvent::PeerDown {
                reason: DownReason::DeletedByPeer,
                ..
            }
        )),
        "{:?}",
        p.b_events
    );
    assert_eq!(p.b.ike_sa_count(), 0);
}

/// A responder reloaded between IKE_SA_INIT and IKE_AUTH: the half-open SA's candidate
/// peers follow their new indices (found by the ike_engine fuzz target: a stale index
/// panicked, or named another peer).
#[test]
fn a_half_open_sa_finds_its_peer_after_a_reload() {
    let mut p = Pair::default_pair();
    let mut dropped = false;
    p.filter = Box::new(move |side, t| {
        let auth = crate::tunnel::ipsec::ike::message::Message::parse(&t.data).is_ok_and(|m| {
            m.header.exchange == crate::tunnel::ipsec::ike::message::ExchangeType::IKE_AUTH
        });
        if side == Side::A && auth && !dropped {
            dropped = true;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    assert_eq!((p.b.half_open(), p.b.is_up(PEER_OF_B)), (1, false));
    let (_, mut config) = configs();
    let mut first = newcomer();
    first.remote_id = super::super::Identity::fqdn("gw-c.lab");
    config.peers.insert(0, first);
    p.b.reconfigure(config, &[(PEER_OF_B, PEER_OF_B)], p.now);
    p.advance(Duration::from_secs(5));
    assert!(
        p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B),
        "{:?}",
        p.b_events
    );
}
