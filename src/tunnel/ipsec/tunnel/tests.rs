use std::net::{Ipv4Addr, SocketAddr};

use super::*;
use crate::buffer::TxMeta;
use crate::crypto::EncrAlg;
use crate::tunnel::ipsec::esp::SaConfig;
use crate::tunnel::ipsec::ike::message::testvec::KEYS_LOG;
use crate::tunnel::testvec::{charon_secret, udp_payloads};
use crate::wire::build;

const PEER: PeerId = PeerId(7);
const A_ADDR: ([u8; 4], u16) = ([192, 0, 2, 1], 4500);
const B_ADDR: ([u8; 4], u16) = ([192, 0, 2, 2], 4500);

fn sa_config(spi: u32, key: &[u8]) -> SaConfig<'_> {
    SaConfig {
        spi,
        esn: false,
        encr: EncrAlg::AesGcm16_128,
        encr_key: key,
        integ: None,
    }
}

/// Two ends sharing a CHILD SA: A sends on SPI 0x200 (key i), receives on 0x100 (key r).
fn pair(path_a: EspPath, path_b: EspPath) -> (IpsecTunnel, IpsecTunnel) {
    let (key_i, key_r) = ([1u8; 20], [2u8; 20]);
    let mut a = IpsecTunnel::new(AttachmentId(0));
    let mut b = IpsecTunnel::new(AttachmentId(1));
    a.install(
        PEER,
        InboundSa::new(&sa_config(0x100, &key_r)).unwrap(),
        OutboundSa::new(&sa_config(0x200, &key_i)).unwrap(),
        path_a,
    );
    b.install(
        PEER,
        InboundSa::new(&sa_config(0x200, &key_i)).unwrap(),
        OutboundSa::new(&sa_config(0x100, &key_r)).unwrap(),
        path_b,
    );
    (a, b)
}

fn ping(seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let n = build::icmp_echo(
        &mut buf,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        7,
        seq,
        false,
        b"through esp",
    )
    .unwrap();
    buf.truncate(n);
    buf
}

fn sent(tx: &TxBatch) -> Vec<(TxMeta, Vec<u8>)> {
    tx.iter().map(|(m, b)| (m, b.to_vec())).collect()
}

#[test]
fn esp_in_udp_round_trip_and_refusals() {
    let (mut a, mut b) = pair(
        EspPath::Udp(SocketAddr::from(B_ADDR)),
        EspPath::Udp(SocketAddr::from(A_ADDR)),
    );
    let mut tx = TxBatch::new(8);
    let packet = ping(1);
    a.encapsulate(PEER, &packet, &mut tx).unwrap();
    let out = sent(&tx);
    assert_eq!(out.len(), 1);
    let (meta, datagram) = &out[0];
    assert_eq!(meta.via, Via::udp(IO_NAT_T, SocketAddr::from(B_ADDR)));
    assert_eq!(&datagram[..4], &0x200u32.to_be_bytes());

    let from = Via::udp(IO_NAT_T, SocketAddr::from(A_ADDR));
    let mut copy = datagram.clone();
    let inner = b.handle_input(from, &mut copy).unwrap().unwrap();
    assert_eq!((inner.peer, &*inner.packet), (Some(PEER), &packet[..]));

    let mut again = datagram.clone();
    assert_eq!(
        b.handle_input(from, &mut again).err(),
        Some(DropReason::EspReplay)
    );

    tx.clear();
    a.encapsulate(PEER, &ping(2), &mut tx).unwrap();
    let mut flipped = sent(&tx)[0].1.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        b.handle_input(from, &mut flipped).err(),
        Some(DropReason::EspIntegrity)
    );

    let mut unknown = sent(&tx)[0].1.clone();
    unknown[..4].copy_from_slice(&0x999u32.to_be_bytes());
    assert_eq!(
        b.handle_input(from, &mut unknown).err(),
        Some(DropReason::EspUnknownSpi)
    );
    let mut short = [1u8, 2, 3, 4, 5];
    assert_eq!(
        b.handle_input(from, &mut short).err(),
        Some(DropReason::EspMalformed)
    );

    assert!(b.remove_inbound(0x200));
    let mut late = sent(&tx)[0].1.clone();
    assert_eq!(
        b.handle_input(from, &mut late).err(),
        Some(DropReason::EspUnknownSpi),
        "a removed SA decrypts nothing"
    );
    b.remove_peer(PEER);
    assert!(!b.has_sa(PEER));
    assert_eq!(
        b.encapsulate(PEER, &packet, &mut tx).err(),
        Some(DropReason::NoSession)
    );
}

/// Raw ESP goes out without a header of ours (the kernel adds the IPv4 header) and comes in
/// with the sender's IPv4 header in front.
#[test]
fn raw_esp_round_trip() {
    let a_ip = std::net::IpAddr::from([192, 0, 2, 1]);
    let b_ip = std::net::IpAddr::from([192, 0, 2, 2]);
    let (mut a, mut b) = pair(EspPath::Raw(b_ip), EspPath::Raw(a_ip));
    let mut tx = TxBatch::new(8);
    let packet = ping(3);
    a.encapsulate(PEER, &packet, &mut tx).unwrap();
    let (meta, esp) = sent(&tx).remove(0);
    assert_eq!(
        meta.via,
        Via {
            io: IO_ESP,
            remote: Remote::Ip(b_ip)
        }
    );
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    ip.extend_from_slice(&esp);
    let via = Via {
        io: IO_ESP,
        remote: Remote::Ip(a_ip),
    };
    let inner = b.handle_input(via, &mut ip).unwrap().unwrap();
    assert_eq!(&*inner.packet, &packet[..]);
    let mut bad_header = vec![0x41, 0, 0];
    assert_eq!(
        b.handle_input(via, &mut bad_header).err(),
        Some(DropReason::EspMalformed)
    );
}

#[test]
fn ike_datagrams_are_queued_for_the_ike_thread_without_their_marker() {
    let mut t = IpsecTunnel::new(AttachmentId(0));
    let peer = SocketAddr::from(A_ADDR);
    let mut on_500 = *b"IKE_SA_INIT.....";
    assert!(t
        .handle_input(Via::udp(IO_IKE, peer), &mut on_500)
        .unwrap()
        .is_none());
    let mut on_4500 = [0, 0, 0, 0, b'A', b'U', b'T', b'H'];
    assert!(t
        .handle_input(Via::udp(IO_NAT_T, peer), &mut on_4500)
        .unwrap()
        .is_none());
    let mut keepalive = [0xff];
    assert!(t
        .handle_input(Via::udp(IO_NAT_T, peer), &mut keepalive)
        .unwrap()
        .is_none());

    let first = t.take_ike().unwrap();
    assert_eq!(
        (first.io, first.from, first.data()),
        (IO_IKE, peer, &b"IKE_SA_INIT....."[..])
    );
    let second = t.take_ike().unwrap();
    assert_eq!((second.io, second.data()), (IO_NAT_T, &b"AUTH"[..]));
    assert!(t.take_ike().is_none(), "the keepalive is not IKE");
    t.recycle(first);
    t.recycle(second);

    for i in 0..IKE_QUEUE {
        let mut m = [i as u8; 32];
        t.handle_input(Via::udp(IO_IKE, peer), &mut m).unwrap();
    }
    let mut one_more = [0u8; 32];
    assert_eq!(
        t.handle_input(Via::udp(IO_IKE, peer), &mut one_more).err(),
        Some(DropReason::IkeQueueFull)
    );
    let d = t.take_ike().unwrap();
    t.recycle(d);
    assert!(t
        .handle_input(Via::udp(IO_IKE, peer), &mut one_more)
        .is_ok());
}

/// The responder's view of the strongSwan capture: its inbound SA (SPI eb10f7aa, the
/// initiator's key) decrypts the captured ESP-in-UDP pings.
#[test]
fn decrypts_strongswans_esp_in_udp_from_the_capture() {
    let key_i = charon_secret(KEYS_LOG, "encryption initiator key");
    let key_r = charon_secret(KEYS_LOG, "encryption responder key");
    let mut t = IpsecTunnel::new(AttachmentId(0));
    t.install(
        PEER,
        InboundSa::new(&sa_config(0xeb10_f7aa, &key_i)).unwrap(),
        OutboundSa::new(&sa_config(0x041d_36cc, &key_r)).unwrap(),
        EspPath::Udp(SocketAddr::from(A_ADDR)),
    );
    let pcap = include_bytes!("../../../../tests/vectors/ipsec-ike-esp.pcap");
    let mut seen = 0;
    for d in udp_payloads(pcap) {
        if d.to.port() != 4500 || d.payload[..4] != 0xeb10_f7aau32.to_be_bytes() {
            continue;
        }
        let mut data = d.payload.to_vec();
        let inner = t
            .handle_input(Via::udp(IO_NAT_T, d.from), &mut data)
            .unwrap()
            .unwrap();
        let s = crate::wire::inspect(inner.packet).unwrap();
        assert_eq!(
            (s.src, s.dst),
            (Ipv4Addr::new(10, 252, 1, 1), Ipv4Addr::new(10, 252, 2, 1))
        );
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// A rekey: the new SA receives at once, sends only once activated, and removing the old SA
/// leaves the new one in charge.
#[test]
fn a_rekeyed_sa_sends_only_once_activated() {
    let facility = SocketAddr::from(B_ADDR);
    let (mut a, _) = pair(EspPath::Udp(facility), EspPath::Udp(facility));
    let (new_key_i, new_key_r) = ([5u8; 20], [6u8; 20]);
    a.add(
        PEER,
        InboundSa::new(&sa_config(0x101, &new_key_r)).unwrap(),
        OutboundSa::new(&sa_config(0x201, &new_key_i)).unwrap(),
        EspPath::Udp(facility),
    );
    let mut tx = TxBatch::new(8);
    a.encapsulate(PEER, &ping(1), &mut tx).unwrap();
    assert_eq!(
        &sent(&tx)[0].1[..4],
        &0x200u32.to_be_bytes(),
        "still the old SA"
    );

    let mut peer_out = OutboundSa::new(&sa_config(0x101, &new_key_r)).unwrap();
    let mut buf = vec![0u8; 256];
    let n = peer_out
        .encapsulate(&mut SystemRandom::new(), &ping(2), &mut buf)
        .unwrap();
    let from = Via::udp(IO_NAT_T, facility);
    assert!(
        a.handle_input(from, &mut buf[..n]).unwrap().is_some(),
        "the new SA receives"
    );

    assert!(!a.activate(PeerId(99), 0x101), "another peer's SA");
    assert!(a.activate(PeerId(7), 0x101));
    assert!(!a.activate(PEER, 0x101), "activated once");
    tx.clear();
    a.encapsulate(PEER, &ping(3), &mut tx).unwrap();
    assert_eq!(&sent(&tx)[0].1[..4], &0x201u32.to_be_bytes(), "the new SA");

    assert!(a.remove_inbound(0x100));
    assert!(
        a.has_sa(PEER),
        "removing the old SA keeps the active new one"
    );
    assert!(a.remove_inbound(0x101));
    assert!(!a.has_sa(PEER));
}

/// Simultaneous rekeys, the side that loses: the peer's new SA arrives first (waiting), then
/// ours is installed as if it were a first SA and becomes active, then the engine deletes
/// ours — the peer's SA must take over, not leave the peer without an outbound SA.
#[test]
fn the_surviving_sa_of_a_rekey_collision_takes_over() {
    let facility = SocketAddr::from(B_ADDR);
    let (mut a, _) = pair(EspPath::Udp(facility), EspPath::Udp(facility));
    let sa = |spi, k: u8| (InboundSa::new(&sa_config(spi, &[k; 20])).unwrap(),);
    let (theirs_in,) = sa(0x301, 7);
    a.add(
        PEER,
        theirs_in,
        OutboundSa::new(&sa_config(0x401, &[8; 20])).unwrap(),
        EspPath::Udp(facility),
    );
    let (ours_in,) = sa(0x302, 9);
    a.install(
        PEER,
        ours_in,
        OutboundSa::new(&sa_config(0x402, &[10; 20])).unwrap(),
        EspPath::Udp(facility),
    );
    assert!(a.remove_inbound(0x100), "the old SA goes");
    assert!(a.remove_inbound(0x302), "the redundant one goes");
    assert!(a.has_sa(PEER), "the survivor took over");
    let mut tx = TxBatch::new(4);
    a.encapsulate(PEER, &ping(5), &mut tx).unwrap();
    assert_eq!(&sent(&tx)[0].1[..4], &0x401u32.to_be_bytes());
}

/// A's NAT gives it a new mapping: B follows A's authenticated ESP there at once and reports
/// the move once; a forged or replayed packet from elsewhere moves nothing.
#[test]
fn esp_follows_the_peers_new_nat_mapping() {
    let old = SocketAddr::from(A_ADDR);
    let new = SocketAddr::from(([203, 0, 113, 9], 61000));
    let (mut a, mut b) = pair(EspPath::Udp(SocketAddr::from(B_ADDR)), EspPath::Udp(old));
    let mut tx = TxBatch::new(8);
    for seq in 1..=3 {
        a.encapsulate(PEER, &ping(seq), &mut tx).unwrap();
    }
    let esp: Vec<Vec<u8>> = sent(&tx).into_iter().map(|(_, d)| d).collect();
    let mut first = esp[0].clone();
    assert!(b.handle_input(Via::udp(IO_NAT_T, old), &mut first).is_ok());
    assert_eq!(b.take_roamed(), None, "from the known address");

    // A forgery and a replay from the new address: refused, nothing moves.
    let mut forged = esp[1].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(b
        .handle_input(Via::udp(IO_NAT_T, new), &mut forged)
        .is_err());
    let mut replay = esp[0].clone();
    assert!(b
        .handle_input(Via::udp(IO_NAT_T, new), &mut replay)
        .is_err());
    assert_eq!(b.take_roamed(), None);

    for d in &esp[1..] {
        let mut d = d.clone();
        assert!(b.handle_input(Via::udp(IO_NAT_T, new), &mut d).is_ok());
    }
    assert_eq!(b.take_roamed(), Some((PEER, new)));
    assert_eq!(b.take_roamed(), None, "reported once");
    // A late packet from the old mapping (inside the replay window) moves nothing back.
    tx.clear();
    for seq in 4..=5 {
        a.encapsulate(PEER, &ping(seq), &mut tx).unwrap();
    }
    let late: Vec<Vec<u8>> = sent(&tx).into_iter().map(|(_, d)| d).collect();
    let mut d = late[1].clone();
    assert!(b.handle_input(Via::udp(IO_NAT_T, new), &mut d).is_ok());
    let mut d = late[0].clone();
    assert!(b.handle_input(Via::udp(IO_NAT_T, old), &mut d).is_ok());
    assert_eq!(b.take_roamed(), None);
    tx.clear();
    b.encapsulate(PEER, &ping(9), &mut tx).unwrap();
    assert_eq!(sent(&tx)[0].0.via, Via::udp(IO_NAT_T, new));
}

/// A raw ESP peer whose address changes keeps raw ESP (to its new address), not ESP in UDP to
/// its IKE port.
#[test]
fn a_raw_esp_peer_that_moves_stays_raw() {
    let (mut a, _) = pair(
        EspPath::Raw(std::net::IpAddr::from([192, 0, 2, 2])),
        EspPath::Udp(SocketAddr::from(A_ADDR)),
    );
    a.set_path(PEER, SocketAddr::from(([198, 51, 100, 4], 500)));
    let mut tx = TxBatch::new(8);
    a.encapsulate(PEER, &ping(1), &mut tx).unwrap();
    assert_eq!(
        sent(&tx)[0].0.via,
        Via {
            io: IO_ESP,
            remote: Remote::Ip(std::net::IpAddr::from([198, 51, 100, 4])),
        }
    );
}
