//! The worker's half of a `tls` attachment: sessions announced, packets in (source checked)
//! and out, logins counted, and a reload renumbering the sessions of kept peers.

use std::time::Instant;

use super::*;
use crate::tunnel::tls::relay::Message;
use crate::vocab::HandshakeResult;

fn config(generation: u64, peers: &[u32]) -> TlsConfig {
    TlsConfig {
        generation,
        pool: "10.0.0.0/29".parse().unwrap(),
        peers: peers.iter().map(|p| PeerId(*p)).collect(),
        kept: None,
    }
}

fn message(m: Message) -> Vec<u8> {
    let mut b = [0u8; 22];
    let n = m.write(&mut b);
    b[..n].to_vec()
}

fn up(session: u32, peer: u32, host: u8, generation: u64) -> Vec<u8> {
    message(Message::Up {
        session,
        peer: PeerId(peer),
        address: Ipv4Addr::new(10, 0, 0, host),
        generation,
        login: true,
    })
}

/// A relay datagram carrying an IPv4 header from `src`.
fn packet(session: u32, src: Ipv4Addr) -> Vec<u8> {
    let mut d = vec![0u8; PACKET_HEADER + 20];
    relay::packet_header(&mut d, session);
    let p = &mut d[PACKET_HEADER..];
    p[0] = 0x45;
    p[3] = 20;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&[100, 65, 0, 1]);
    d
}

#[test]
fn a_session_carries_its_peers_packets_both_ways() {
    let now = Instant::now();
    let mut t = TlsTunnel::new(AttachmentId(2), config(1, &[4, 5]));
    // A new tunnel has every peer down.
    assert_eq!(
        t.poll_event(),
        Some(Event::Established {
            peer: PeerId(4),
            up: false
        })
    );
    assert_eq!(
        t.poll_event(),
        Some(Event::Established {
            peer: PeerId(5),
            up: false
        })
    );
    assert!(t.handle_input(now, &mut up(7, 4, 1, 1)).unwrap().is_none());
    assert!(matches!(
        t.poll_event(),
        Some(Event::HandshakeDone {
            peer: PeerId(4),
            ..
        })
    ));
    assert_eq!(
        t.poll_event(),
        Some(Event::Established {
            peer: PeerId(4),
            up: true
        })
    );
    assert_eq!(t.peer_for(Ipv4Addr::new(10, 0, 0, 1)), Some(PeerId(4)));

    let mut d = packet(7, Ipv4Addr::new(10, 0, 0, 1));
    let inner = t.handle_input(now, &mut d).unwrap().unwrap();
    assert_eq!((inner.peer, inner.packet.len()), (Some(PeerId(4)), 20));
    let mut d = packet(7, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(t.handle_input(now, &mut d).err(), Some(DropReason::Spoofed));
    let mut d = packet(8, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        t.handle_input(now, &mut d).err(),
        Some(DropReason::NoSession)
    );
    assert_eq!(
        t.handle_input(now, &mut [9, 9]).err(),
        Some(DropReason::Malformed)
    );

    let mut tx = TxBatch::new(4);
    t.encapsulate(PeerId(4), &[0x45; 20], &mut tx).unwrap();
    let (meta, bytes) = tx.iter().next().unwrap();
    assert_eq!((meta.attachment, meta.via), (AttachmentId(2), Via::DEVICE));
    assert_eq!(Message::parse(bytes), Some(Message::Packet { session: 7 }));
    assert_eq!(&bytes[PACKET_HEADER..], &[0x45; 20]);
    assert_eq!(
        t.encapsulate(PeerId(5), &[0x45; 20], &mut tx),
        Err(DropReason::NoSession)
    );

    assert!(t
        .handle_input(now, &mut message(Message::Down { session: 7 }))
        .unwrap()
        .is_none());
    assert_eq!(
        t.poll_event(),
        Some(Event::Established {
            peer: PeerId(4),
            up: false
        })
    );
    assert_eq!(t.peer_for(Ipv4Addr::new(10, 0, 0, 1)), None);
}

#[test]
fn announcements_outside_the_pool_or_of_strangers_are_ignored_and_refusals_counted() {
    let now = Instant::now();
    let mut t = TlsTunnel::new(AttachmentId(0), config(3, &[1]));
    while t.poll_event().is_some() {}
    t.handle_input(now, &mut up(1, 1, 9, 3)).unwrap(); // 10.0.0.9: outside /29
    t.handle_input(now, &mut up(2, 7, 2, 3)).unwrap(); // not a peer of this attachment
    t.handle_input(now, &mut up(3, 1, 2, 2)).unwrap(); // an older plan, nothing kept
    assert!(t.is_empty());
    assert_eq!(t.poll_event(), None);
    let refused = message(Message::Refused {
        result: HandshakeResult::Certificate,
        peer: None,
        generation: 3,
    });
    t.handle_input(now, &mut refused.clone()).unwrap();
    assert_eq!(
        t.poll_event(),
        Some(Event::Handshake(HandshakeResult::Certificate))
    );
}

#[test]
fn a_new_session_of_the_peer_replaces_the_old_one() {
    let now = Instant::now();
    let mut t = TlsTunnel::new(AttachmentId(0), config(1, &[1]));
    t.handle_input(now, &mut up(1, 1, 1, 1)).unwrap();
    t.handle_input(now, &mut up(2, 1, 2, 1)).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.peer_for(Ipv4Addr::new(10, 0, 0, 1)), None);
    assert_eq!(t.peer_for(Ipv4Addr::new(10, 0, 0, 2)), Some(PeerId(1)));
}

#[test]
fn a_reload_renumbers_kept_sessions_and_translates_late_news() {
    let now = Instant::now();
    let mut t = TlsTunnel::new(AttachmentId(0), config(1, &[0, 1]));
    t.handle_input(now, &mut up(1, 0, 1, 1)).unwrap();
    t.handle_input(now, &mut up(2, 1, 2, 1)).unwrap();
    // Peer 0 becomes 5; peer 1 is removed.
    let mut next = config(2, &[5, 6]);
    next.kept = Some((1, vec![(PeerId(0), PeerId(5))]));
    t.reconfigure(AttachmentId(3), next);
    assert_eq!(t.len(), 1);
    assert_eq!(t.peer_for(Ipv4Addr::new(10, 0, 0, 1)), Some(PeerId(5)));
    // The TLS thread still runs the old plan: its news is translated.
    t.handle_input(now, &mut message(Message::Down { session: 1 }))
        .unwrap();
    t.handle_input(now, &mut up(3, 0, 3, 1)).unwrap();
    assert_eq!(t.peer_for(Ipv4Addr::new(10, 0, 0, 3)), Some(PeerId(5)));
    t.handle_input(now, &mut up(4, 1, 4, 1)).unwrap();
    assert_eq!(
        t.peer_for(Ipv4Addr::new(10, 0, 0, 4)),
        None,
        "a removed peer"
    );
}
