//! A's NAT gives it a new mapping after the SAs are up: B's IKE SA follows A's next
//! authenticated message [RFC 7296 § 2.23], or A's ESP seen by the data path
//! ([`IkeEngine::peer_roamed`]), and reports the move so that ESP follows too.

use std::net::SocketAddr;
use std::time::Duration;

use super::super::IkeEvent;
use super::pair::*;

/// B's view of A: behind a NAT, B without an endpoint for A (it only answers).
fn behind_a_nat() -> Pair {
    let (a, mut b) = configs();
    b.peers[0].endpoint = None;
    let mut p = Pair::new(a, b);
    p.nat = true;
    p.connect();
    assert!(p.b.is_up(PEER_OF_B));
    p
}

fn path_changes(events: &[IkeEvent]) -> Vec<SocketAddr> {
    events
        .iter()
        .filter_map(|e| match e {
            IkeEvent::PathChanged { remote, .. } => Some(*remote),
            _ => None,
        })
        .collect()
}

#[test]
fn the_ike_sa_follows_an_authenticated_request_from_the_new_mapping() {
    let mut p = behind_a_nat();
    assert!(
        path_changes(&p.b_events).is_empty(),
        "floating to 4500 is no move"
    );
    p.nat_port = 20000;
    p.a.rekey_child(PEER_OF_A, p.now);
    p.drive();
    let moved = SocketAddr::from((NAT_IP, 24500));
    assert_eq!(path_changes(&p.b_events), [moved]);
    // B answered at the new mapping: the rekey finished and liveness checks keep working.
    assert_eq!(p.a.child_spis(PEER_OF_A).len(), 1);
    p.advance(Duration::from_secs(300));
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    assert_eq!(path_changes(&p.b_events), [moved], "moved once");
}

#[test]
fn esp_from_the_new_mapping_moves_the_ike_sa_and_a_liveness_check_confirms_it() {
    let mut p = behind_a_nat();
    p.nat_port = 20000;
    let moved = SocketAddr::from((NAT_IP, 24500));
    let sent = p.log.len();
    p.b.peer_roamed(PEER_OF_B, moved, p.now);
    p.drive();
    assert_eq!(path_changes(&p.b_events), [moved]);
    let check = &p.log[sent];
    assert_eq!(
        (check.1, check.2.to),
        (Side::B, moved),
        "the liveness check"
    );
    assert!(p.log.len() >= sent + 2, "answered by A");
    // The same report again changes nothing.
    p.b.peer_roamed(PEER_OF_B, moved, p.now);
    p.drive();
    assert_eq!(path_changes(&p.b_events), [moved]);
    p.advance(Duration::from_secs(300));
    assert!(p.b.is_up(PEER_OF_B));
}

/// A move to where the peer is not (a delayed packet an attacker sent on) is undone by the
/// peer's next authenticated message from where it really is: B's liveness check goes
/// unanswered there, and A's own requests bring B back.
#[test]
fn a_wrong_move_is_undone_by_the_peers_next_message() {
    let mut p = behind_a_nat();
    let real = SocketAddr::from((NAT_IP, 14500));
    let nowhere = SocketAddr::from((NAT_IP, 30999));
    p.b.peer_roamed(PEER_OF_B, nowhere, p.now);
    p.advance(Duration::from_secs(400));
    assert_eq!(path_changes(&p.b_events), [nowhere, real]);
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    assert!(!p
        .b_events
        .iter()
        .any(|e| matches!(e, IkeEvent::PeerDown { .. })));
}
