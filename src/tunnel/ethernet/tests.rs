//! The `ethernet` attachment's tunnel: ARP answered and asked, packets framed to their next
//! hop, waiting for an answer, and dropped (counted) when none comes.

use std::time::{Duration, Instant};

use super::*;
use crate::wire::ethernet::{
    parse, write_frame, Arp, ArpOp, Mac, ARP_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4,
};

const GW: Mac = Mac([2, 0, 0x5e, 0, 0x53, 1]);
const HOST: Mac = Mac([2, 0, 0x5e, 0, 0x53, 2]);
const ROUTER: Mac = Mac([2, 0, 0x5e, 0, 0x53, 0xfe]);

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn tunnel(vlan: Option<u16>) -> (EthernetTunnel, Instant) {
    let now = Instant::now();
    let config = EthernetConfig {
        link: LinkConfig {
            mac: GW,
            ip: ip(1),
            connected: "10.0.0.0/24".parse().unwrap(),
            vlan,
        },
        connected: "10.0.0.0/24".parse().unwrap(),
        next_hop: Some(ip(254)),
    };
    // Quiet: no gratuitous ARP (a_new_link_announces_itself_three_times has them).
    let timers = ArpTimers {
        announcements: 0,
        ..ArpTimers::default()
    };
    (
        EthernetTunnel::with_timers(AttachmentId(3), config, timers, now),
        now,
    )
}

/// An IPv4 header (20 bytes, no payload) from `src` to `dst`.
fn packet(src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 20] {
    let mut p = [0u8; 20];
    p[0] = 0x45;
    p[3] = 20;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p
}

fn arp_frame(a: Arp, dst: Mac, vlan: Option<u16>) -> Vec<u8> {
    let mut arp = [0u8; ARP_LEN];
    a.write(&mut arp).unwrap();
    let mut f = vec![0u8; 64];
    let n = write_frame(&mut f, dst, a.sender_mac, vlan, ETHERTYPE_ARP, &arp).unwrap();
    f.truncate(n);
    f
}

/// What went out, parsed: (destination MAC, EtherType, VLAN, payload).
fn sent(tx: &TxBatch) -> Vec<(Mac, u16, Option<u16>, Vec<u8>)> {
    tx.iter()
        .map(|(meta, bytes)| {
            assert_eq!((meta.attachment, meta.via), (AttachmentId(3), Via::DEVICE));
            let f = parse(bytes).unwrap();
            (f.dst, f.ethertype, f.vlan, f.payload.to_vec())
        })
        .collect()
}

#[test]
fn a_frame_for_the_gateway_gives_its_packet_in_place() {
    let (mut t, now) = tunnel(Some(42));
    let mut tx = TxBatch::new(8);
    let p = packet(ip(2), Ipv4Addr::new(100, 65, 0, 2));
    let mut frame = vec![0u8; 64];
    // The kernel took the tag out; the socket's filter passed VLAN 42 only.
    let n = write_frame(&mut frame, GW, HOST, None, ETHERTYPE_IPV4, &p).unwrap();
    let inner = t.handle_input(now, &mut frame[..n], &mut tx).unwrap();
    assert_eq!(inner.as_deref(), Some(&p[..]));
    assert!(tx.is_empty());

    let n = write_frame(&mut frame, HOST, HOST, None, ETHERTYPE_IPV4, &p).unwrap();
    assert_eq!(
        t.handle_input(now, &mut frame[..n], &mut tx),
        Err(DropReason::EthNotForUs)
    );
    let n = write_frame(&mut frame, GW, HOST, Some(43), ETHERTYPE_IPV4, &p).unwrap();
    assert_eq!(
        t.handle_input(now, &mut frame[..n], &mut tx),
        Err(DropReason::EthOtherVlan)
    );
    assert_eq!(
        t.handle_input(now, &mut [0u8; 8], &mut tx),
        Err(DropReason::EthMalformed)
    );
}

#[test]
fn arp_for_the_gateway_is_answered_and_others_chatter_counted() {
    let (mut t, now) = tunnel(Some(42));
    let mut tx = TxBatch::new(8);
    let mut ask = arp_frame(Arp::request(HOST, ip(2), ip(1)), Mac::BROADCAST, None);
    assert_eq!(t.handle_input(now, &mut ask, &mut tx), Ok(None));
    let out = sent(&tx);
    assert_eq!(out.len(), 1);
    let (dst, ethertype, vlan, payload) = &out[0];
    assert_eq!((*dst, *ethertype, *vlan), (HOST, ETHERTYPE_ARP, Some(42)));
    let a = Arp::parse(payload).unwrap();
    assert_eq!((a.op, a.sender_mac, a.sender_ip), (ArpOp::Reply, GW, ip(1)));

    let mut chatter = arp_frame(Arp::request(HOST, ip(2), ip(3)), Mac::BROADCAST, None);
    assert_eq!(
        t.handle_input(now, &mut chatter, &mut tx),
        Err(DropReason::ArpIgnored)
    );
}

/// A packet to an unknown host asks for it and waits; the answer sends it. A routed
/// destination goes to the next hop.
#[test]
fn a_packet_waits_for_its_next_hop_and_leaves_with_the_answer() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(8);
    let p = packet(Ipv4Addr::new(100, 65, 0, 2), ip(2));
    assert_eq!(t.encapsulate(now, &p, &mut tx), Ok(()));
    assert_eq!(t.queued(), 1);
    let out = sent(&tx);
    assert_eq!(out.len(), 1, "only the request");
    assert_eq!((out[0].0, out[0].1), (Mac::BROADCAST, ETHERTYPE_ARP));
    let req = Arp::parse(&out[0].3).unwrap();
    assert_eq!((req.op, req.target_ip), (ArpOp::Request, ip(2)));
    tx.clear();

    let mut answer = arp_frame(req.reply(HOST, ip(2)), GW, None);
    assert_eq!(t.handle_input(now, &mut answer, &mut tx), Ok(None));
    assert_eq!(t.queued(), 0);
    let out = sent(&tx);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (HOST, ETHERTYPE_IPV4));
    assert_eq!(&out[0].3[..20], &p[..]);
    tx.clear();

    // Now resolved: straight out.
    assert_eq!(t.encapsulate(now, &p, &mut tx), Ok(()));
    assert_eq!(sent(&tx)[0].0, HOST);
    tx.clear();

    // Outside the connected prefix: through the next hop.
    let routed = packet(Ipv4Addr::new(100, 65, 0, 2), Ipv4Addr::new(10, 9, 0, 1));
    assert_eq!(t.encapsulate(now, &routed, &mut tx), Ok(()));
    let req = Arp::parse(&sent(&tx)[0].3).unwrap();
    assert_eq!(req.target_ip, ip(254));
    tx.clear();
    let mut answer = arp_frame(req.reply(ROUTER, ip(254)), GW, None);
    t.handle_input(now, &mut answer, &mut tx).unwrap();
    assert_eq!(sent(&tx)[0].0, ROUTER);

    // The gateway's own address is no destination.
    let own = packet(Ipv4Addr::new(100, 65, 0, 2), ip(1));
    assert_eq!(t.encapsulate(now, &own, &mut tx), Err(DropReason::NoRoute));
}

#[test]
fn unanswered_requests_are_repeated_then_the_waiting_packets_dropped() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(64);
    let p = packet(Ipv4Addr::new(100, 65, 0, 2), ip(9));
    t.encapsulate(now, &p, &mut tx).unwrap();
    t.encapsulate(now, &p, &mut tx).unwrap();
    assert_eq!((t.queued(), tx.len()), (2, 1), "one request for both");
    tx.clear();
    let mut requests = 0;
    let mut at = now;
    while at < now + Duration::from_secs(5) {
        at += Duration::from_millis(100);
        if t.poll_timeout().is_some_and(|d| d <= at) {
            t.handle_timeout(at, &mut tx);
        }
        requests += sent(&tx)
            .iter()
            .filter(|(dst, e, ..)| *dst == Mac::BROADCAST && *e == ETHERTYPE_ARP)
            .count();
        tx.clear();
    }
    assert_eq!(requests, 2, "the second and third try");
    assert_eq!(t.queued(), 0);
    assert_eq!(t.take_lost(), Some((DropReason::ArpUnresolved, 2)));
    assert_eq!(t.take_lost(), None);
}

#[test]
fn the_waiting_room_is_bounded() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(WAITING + 8);
    for n in 0..WAITING {
        let p = packet(Ipv4Addr::new(100, 65, 0, 2), ip(10 + n as u8));
        assert_eq!(t.encapsulate(now, &p, &mut tx), Ok(()));
    }
    let p = packet(Ipv4Addr::new(100, 65, 0, 2), ip(200));
    assert_eq!(
        t.encapsulate(now, &p, &mut tx),
        Err(DropReason::ArpUnresolved)
    );
    assert_eq!(t.queued(), WAITING);
}

#[test]
fn a_reload_keeps_the_neighbours_of_the_same_link_only() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(8);
    let mut ask = arp_frame(Arp::request(HOST, ip(2), ip(1)), Mac::BROADCAST, None);
    t.handle_input(now, &mut ask, &mut tx).unwrap();
    let mut config = t.config();
    config.next_hop = Some(ip(253));
    assert!(t.reconfigure(AttachmentId(5), config));
    assert_eq!(t.neighbours().len(), 1);
    config.link.vlan = Some(7);
    assert!(!t.reconfigure(AttachmentId(5), config));
}

/// Requests (first asks, retries, probes of stale neighbours), replies and failed next hops
/// are added up between polls and reported once, with the neighbour entries held.
#[test]
fn arp_is_reported_as_deltas_between_polls() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(64);
    assert_eq!(
        t.poll_event(),
        Some(Event::Arp(ArpCounts::default())),
        "a new tunnel reports its empty cache"
    );
    assert_eq!(t.poll_event(), None, "nothing changed");

    let mut ask = arp_frame(Arp::request(HOST, ip(2), ip(1)), Mac::BROADCAST, None);
    t.handle_input(now, &mut ask, &mut tx).unwrap();
    let p = packet(Ipv4Addr::new(100, 65, 0, 2), ip(9));
    t.encapsulate(now, &p, &mut tx).unwrap();
    t.encapsulate(now, &p, &mut tx).unwrap();
    let report = |requests, replies, failures, neighbours| {
        Some(Event::Arp(ArpCounts {
            requests,
            replies,
            failures,
            neighbours,
        }))
    };
    assert_eq!(t.poll_event(), report(1, 1, 0, 2));
    assert_eq!(t.poll_event(), None);

    // Two more tries, then ip 9 fails: its packets are lost first, then the ARP report.
    let mut at = now;
    while at < now + Duration::from_secs(4) {
        at += Duration::from_millis(100);
        if t.poll_timeout().is_some_and(|d| d <= at) {
            t.handle_timeout(at, &mut tx);
        }
        tx.clear();
    }
    assert_eq!(
        t.poll_event(),
        Some(Event::dropped(DropReason::ArpUnresolved, 2))
    );
    assert_eq!(t.poll_event(), report(2, 0, 1, 2));

    // HOST went stale: its next packet leaves at once, with a probe.
    let to_host = packet(Ipv4Addr::new(100, 65, 0, 2), ip(2));
    let later = now + Duration::from_secs(31);
    t.encapsulate(later, &to_host, &mut tx).unwrap();
    assert_eq!(sent(&tx).len(), 2, "the packet and the probe");
    tx.clear();
    // Expiry sheds the failed entry.
    t.handle_timeout(later, &mut tx);
    assert_eq!(t.poll_event(), report(1, 0, 0, 1));
    assert_eq!(t.poll_event(), None);
}

/// Once handled, the timer of a waiting packet lies ahead: the worker does not spin.
#[test]
fn the_timer_moves_on_after_each_turn() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(8);
    let p = packet(Ipv4Addr::new(100, 65, 0, 2), ip(9));
    t.encapsulate(now, &p, &mut tx).unwrap();
    let due = t.poll_timeout().unwrap();
    assert!(due > now && due <= now + Duration::from_millis(250));
    t.handle_timeout(due, &mut tx);
    assert!(t.poll_timeout().unwrap() > due, "the next turn is later");
    // Nothing waiting: only the neighbour cache's sweep is due.
    let mut at = due;
    while t.queued() > 0 {
        at += Duration::from_millis(250);
        t.handle_timeout(at, &mut tx);
        tx.clear();
    }
    assert!(t.poll_timeout().unwrap() >= now + Duration::from_secs(10));
}

/// A host on the link cannot fill the neighbour cache with off-link senders (ARP requests
/// for the gateway from addresses outside the connected prefix) and evict the router.
#[test]
fn off_link_arp_senders_do_not_evict_the_next_hop() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(8);
    // The router answers for itself: resolved.
    let mut f = arp_frame(Arp::request(ROUTER, ip(254), ip(1)), Mac::BROADCAST, None);
    t.handle_input(now, &mut f, &mut tx).unwrap();
    assert!(t.neighbours().is_resolved(ip(254)));
    // An attacker on the link asks for the gateway from 4096 addresses outside 10.0.0.0/24.
    for i in 0..NEIGHBOURS as u32 {
        let later = now + Duration::from_millis(1 + u64::from(i));
        let sender = Ipv4Addr::from(0xC633_0000u32 + i); // 198.51.x.y: off-link
        let mut f = arp_frame(Arp::request(HOST, sender, ip(1)), Mac::BROADCAST, None);
        tx.clear();
        let _ = t.handle_input(later, &mut f, &mut tx);
    }
    assert!(
        t.neighbours().is_resolved(ip(254)),
        "the next hop was evicted by off-link ARP senders ({} entries)",
        t.neighbours().len()
    );
}

/// With `directed_broadcast: true` the pipeline hands the link a packet for the connected
/// prefix's broadcast address: it leaves as an Ethernet broadcast, not waiting for ARP.
#[test]
fn a_directed_broadcast_leaves_as_an_ethernet_broadcast() {
    let (mut t, now) = tunnel(None);
    let mut tx = TxBatch::new(8);
    let p = packet(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 255));
    let r = t.encapsulate(now, &p, &mut tx);
    let out = sent(&tx);
    assert_eq!(
        (r, out.first().map(|o| (o.0, o.1))),
        (Ok(()), Some((Mac::BROADCAST, ETHERTYPE_IPV4))),
        "queued: {}",
        t.queued()
    );
}

/// A new link announces the gateway's MAC: three gratuitous ARP requests a second apart.
#[test]
fn a_new_link_announces_itself_three_times() {
    let (quiet, now) = tunnel(Some(7));
    let mut t = EthernetTunnel::new(AttachmentId(3), quiet.config(), now);
    let mut tx = TxBatch::new(8);
    let mut announced = Vec::new();
    let mut at = now;
    while at < now + Duration::from_secs(5) {
        if t.poll_timeout().is_some_and(|d| d <= at) {
            t.handle_timeout(at, &mut tx);
        }
        for (dst, ethertype, vlan, payload) in sent(&tx) {
            assert_eq!(
                (dst, ethertype, vlan),
                (Mac::BROADCAST, ETHERTYPE_ARP, Some(7))
            );
            let a = Arp::parse(&payload).unwrap();
            assert_eq!(
                (a.op, a.sender_mac, a.sender_ip, a.target_ip),
                (ArpOp::Request, GW, ip(1), ip(1))
            );
            announced.push(at);
        }
        tx.clear();
        at += Duration::from_millis(100);
    }
    assert_eq!(announced.len(), 3, "{announced:?}");
    assert_eq!(announced[0], now);
    assert!(announced[2] - announced[0] >= Duration::from_secs(2));
}
