//! IKE fragmentation [RFC 7383]: a large IKE_AUTH (many traffic selectors) goes as SKF
//! fragments under a small fragment size and is reassembled, also lost, reordered and
//! duplicated.

use std::time::Duration;

use ipnetwork::Ipv4Network;

use crate::tunnel::ipsec::ike::message::{ExchangeType, Message, PayloadType};

use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

fn big_pair(fragment_size: usize) -> Pair {
    let (mut a, mut b) = configs();
    let nets = |second: u8| -> Vec<Ipv4Network> {
        (0..60)
            .map(|i| net(&format!("10.{second}.{i}.0/24")))
            .collect()
    };
    for (c, (local, remote)) in [(&mut a, (1, 2)), (&mut b, (2, 1))] {
        c.peers[0].local_ts = nets(local);
        c.peers[0].remote_ts = nets(remote);
        c.limits.fragment_size = fragment_size;
    }
    Pair::new(a, b)
}

fn auth_datagrams(p: &Pair, side: Side) -> Vec<Vec<u8>> {
    p.log
        .iter()
        .filter(|(_, s, t)| {
            *s == side && Message::parse(&t.data).unwrap().header.exchange == ExchangeType::IKE_AUTH
        })
        .map(|(_, _, t)| t.data.clone())
        .collect()
}

#[test]
fn a_large_ike_auth_goes_in_fragments() {
    let mut p = big_pair(400);
    p.connect();
    let (ca, cb) = (child_ups(&p.a_events), child_ups(&p.b_events));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{:?}", p.b_events);
    check_child_pair(ca[0], cb[0]);
    assert_eq!(ca[0].local_ts.len(), 60);
    for side in [Side::A, Side::B] {
        let d = auth_datagrams(&p, side);
        assert!(d.len() >= 5, "{side:?}: {}", d.len());
        for (n, f) in d.iter().enumerate() {
            assert!(f.len() <= 400);
            let m = Message::parse(f).unwrap();
            let e = m.encrypted().unwrap();
            assert_eq!(e.payload_type(), PayloadType::SKF);
            assert_eq!(usize::from(e.fragment.unwrap().number), n + 1);
        }
    }
}

#[test]
fn fragments_survive_loss_reordering_and_duplication() {
    let mut p = big_pair(300);
    p.reorder = true;
    let mut n = 0;
    p.filter = Box::new(move |side, t| {
        let m = Message::parse(&t.data).unwrap();
        if side == Side::A && m.header.exchange == ExchangeType::IKE_AUTH {
            n += 1;
            return match n {
                3 => Fate::Drop,
                4 => Fate::Duplicate,
                _ => Fate::Deliver,
            };
        }
        Fate::Deliver
    });
    p.connect();
    assert!(child_ups(&p.b_events).is_empty(), "a fragment was lost");
    p.advance(Duration::from_secs(4));
    let (ca, cb) = (child_ups(&p.a_events), child_ups(&p.b_events));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    check_child_pair(ca[0], cb[0]);
}
