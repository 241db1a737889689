//! In-memory pair harness for the whole gateway: a [`Gateway`] compiled from a two-tenant
//! configuration whose internal prefixes overlap, and one facility per tenant that is a plain
//! boringtun `Tunn`. Datagrams move in memory between the facilities and the gateway's
//! WireGuard attachments; virtual time advances in timer ticks, and every call into boringtun
//! (the gateway's and the facilities') sees the same virtual clock.
//!
//! Run with `cargo test --features virtual-time --test gateway_pair`.

#![cfg(feature = "virtual-time")]

mod util;

use util::{owned, Owned};

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use ixgw::buffer::{RxBatch, TxBatch, Via, BUF_SIZE};
use ixgw::config::{
    Agreement, Attachment, AttachmentKind, Config, Dataplane, Destination, Ix, Key32, Metrics,
    Network, PeerSeries, Policy, PortRule, Protocol, Source, Tenant, WireGuardAttachment,
    WireGuardPeer,
};
use ixgw::dataplane::{FlowEnd, FlowEvent, FlowPhase, FlowSink, Gateway, Plan};
use ixgw::facility::FacilityState;
use ixgw::ids::{AttachmentId, FacilityCode, PeerId};
use ixgw::metrics::{HandshakeResult, MetricsHub};
use ixgw::tunnel::wireguard::{clock, keys, TIMER_TICK};
use ixgw::tunnel::Tunnel;
use ixgw::vocab::DropReason;
use ixgw::wire::icmp::IcmpPacket;
use ixgw::wire::ipv4::Ipv4Packet;
use ixgw::wire::tcp::TcpPacket;
use ixgw::wire::udp::UdpPacket;
use ixgw::wire::{self, build, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const PSK_A: [u8; 32] = [0x33; 32];
const MSG_HANDSHAKE_INIT: u8 = 1;
const MSG_DATA: u8 = 4;
/// A data message with an empty payload: header and AEAD tag only.
const KEEPALIVE_LEN: usize = 32;

/// One tenant with one WireGuard attachment and one facility peer. Every tenant numbers
/// itself 10.0.0.0/24 and its facility is 10.0.0.2/32.
struct Site {
    tenant: &'static str,
    exchange: &'static str,
    gateway_port: u16,
    peer: &'static str,
    facility: &'static str,
    facility_addr: SocketAddr,
    psk: Option<[u8; 32]>,
}

fn site(i: usize) -> Site {
    match i {
        A => Site {
            tenant: "ajisai-net",
            exchange: "100.64.0.0/24",
            gateway_port: 51820,
            peer: "omura-clinic",
            facility: "4212345674",
            facility_addr: "192.0.2.10:51820".parse().unwrap(),
            psk: Some(PSK_A),
        },
        B => Site {
            tenant: "mame-net",
            exchange: "100.65.0.0/24",
            gateway_port: 51821,
            peer: "izumo-hospital",
            facility: "3219876541",
            facility_addr: "198.51.100.20:51820".parse().unwrap(),
            psk: None,
        },
        C => Site {
            tenant: "kiku-net",
            exchange: "100.66.0.0/24",
            gateway_port: 51822,
            peer: "kumamoto-pharmacy",
            facility: "4341234567",
            facility_addr: "192.0.2.30:41000".parse().unwrap(),
            psk: None,
        },
        _ => unreachable!("three sites"),
    }
}

fn gateway_private(i: usize) -> [u8; 32] {
    [0x11 + i as u8; 32]
}

fn facility_private(i: usize) -> [u8; 32] {
    [0x21 + i as u8; 32]
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().unwrap()
}

/// How a test wants the pair set up.
#[derive(Clone, Copy, Default)]
struct Setup {
    /// The gateway's peer config for B names B's endpoint, so the gateway can dial B.
    b_endpoint: bool,
    /// Persistent keepalive of facility A's own `Tunn` (the facility side, not the gateway).
    a_keepalive: Option<u16>,
}

fn wg_tenant(i: usize, setup: Setup) -> Tenant {
    let s = site(i);
    let endpoint = (i == B && setup.b_endpoint).then_some(s.facility_addr);
    Tenant {
        name: s.tenant.into(),
        trust: vec![],
        networks: vec![Network {
            internal: net("10.0.0.0/24"),
            exchange: net(s.exchange),
        }],
        attachments: vec![Attachment {
            name: format!("{}-wg", s.tenant),
            kind: AttachmentKind::WireGuard(WireGuardAttachment {
                listen: SocketAddr::from((GATEWAY_IP, s.gateway_port)),
                private_key_file: PathBuf::from(format!("/etc/ixgw/keys/{}-wg.key", s.tenant)),
                private_key: Key32(gateway_private(i)),
                mtu: 1420,
                peers: vec![WireGuardPeer {
                    name: s.peer.into(),
                    facility: FacilityCode::parse(s.facility).unwrap(),
                    public_key: Key32(keys::public_key(&facility_private(i))),
                    preshared_key_file: s
                        .psk
                        .map(|_| PathBuf::from(format!("/etc/ixgw/keys/{}.psk", s.peer))),
                    preshared_key: s.psk.map(Key32),
                    allowed_ips: vec![net("10.0.0.2/32")],
                    address: None,
                    endpoint,
                    persistent_keepalive: None,
                    directed_broadcast: false,
                }],
            }),
        }],
    }
}

fn allow(protocol: Protocol, port: Option<u16>) -> PortRule {
    PortRule {
        protocol,
        ports: port.map(|p| (p, p)),
    }
}

fn policy(name: &str, from: usize, to: usize, allow: Vec<PortRule>) -> Policy {
    Policy {
        name: name.into(),
        from: Source {
            tenants: vec![site(from).tenant.into()],
            ..Source::default()
        },
        to: Destination::Tenants {
            tenants: vec![site(to).tenant.into()],
            prefixes: vec![],
        },
        allow,
    }
}

/// A → B may open tcp/5201, udp/5201 and icmp; nothing may be opened B → A. With site C, C → B
/// may ping.
fn config(setup: Setup, sites: &[usize]) -> Config {
    let mut policies = vec![policy(
        "a-to-b",
        A,
        B,
        vec![
            allow(Protocol::Tcp, Some(5201)),
            allow(Protocol::Udp, Some(5201)),
            allow(Protocol::Icmp, None),
        ],
    )];
    if sites.contains(&C) {
        policies.insert(0, policy("c-to-b", C, B, vec![allow(Protocol::Icmp, None)]));
    }
    Config {
        source: PathBuf::from("gateway_pair.yaml"),
        ix: Ix {
            name: "pair-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: Some(GATEWAY_IP.into()),
        },
        metrics: Metrics {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_socket: None,
            peer_series: PeerSeries::All,
        },
        dataplane: Dataplane::default(),
        tenants: sites.iter().map(|&i| wg_tenant(i, setup)).collect(),
        services: vec![],
        policies,
        agreements: vec![],
        trust: vec![],
        facilities: None,
        audit: None,
        usage: None,
        warnings: vec![],
    }
}

fn listen_of(plan: &Plan, att: AttachmentId) -> SocketAddr {
    plan.attachments[att.index()]
        .udp_listen(0)
        .unwrap_or_else(|| panic!("attachment {att:?} has no UDP socket"))
}

fn attachment_at(plan: &Plan, addr: SocketAddr) -> Option<AttachmentId> {
    plan.attachments
        .iter()
        .position(|a| a.udp_listen(0) == Some(addr))
        .map(|i| AttachmentId(i as u16))
}

#[derive(Debug, Clone)]
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// What the gateway put on the wire, and when.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// A facility's router: a boringtun `Tunn` talking to its tenant's gateway attachment.
struct Facility {
    tunn: Tunn,
    addr: SocketAddr,
    /// The gateway attachment it dials.
    gateway: SocketAddr,
    /// Inner packets that came out of the tunnel.
    received: Vec<Vec<u8>>,
    /// Datagrams it sent, by WireGuard message type.
    sent_by_type: [usize; 5],
    errors: Vec<String>,
}

impl Facility {
    fn new(i: usize, keepalive: Option<u16>) -> Self {
        let s = site(i);
        Facility {
            tunn: Tunn::new(
                StaticSecret::from(facility_private(i)),
                PublicKey::from(keys::public_key(&gateway_private(i))),
                s.psk,
                keepalive,
                0x100 + i as u32,
                None,
            ),
            addr: s.facility_addr,
            gateway: SocketAddr::from((GATEWAY_IP, s.gateway_port)),
            received: Vec::new(),
            sent_by_type: [0; 5],
            errors: Vec::new(),
        }
    }

    fn initiations_sent(&self) -> usize {
        self.sent_by_type[usize::from(MSG_HANDSHAKE_INIT)]
    }
}

struct Pair {
    start: Instant,
    now: Instant,
    gw: Gateway,
    rx: RxBatch,
    tx: TxBatch,
    facs: Vec<Facility>,
    wire: VecDeque<Datagram>,
    gw_sent: Vec<Sent>,
    /// Datagrams handed to the gateway: when, from where, and the bytes.
    gw_received: Vec<(Instant, SocketAddr, Vec<u8>)>,
}

impl Pair {
    fn new(setup: Setup) -> Self {
        Pair::with_config(setup, config(setup, &[A, B]))
    }

    /// Facilities A and B against a gateway with `config` (sites A and B).
    fn with_config(setup: Setup, config: Config) -> Self {
        let start = Instant::now();
        clock::sync(start);
        let plan = Arc::new(Plan::compile(&config, 1));
        let gw = Gateway::new(plan, start);
        Pair {
            start,
            now: start,
            gw,
            rx: RxBatch::new(32),
            tx: TxBatch::new(64),
            facs: vec![Facility::new(A, setup.a_keepalive), Facility::new(B, None)],
            wire: VecDeque::new(),
            gw_sent: Vec::new(),
            gw_received: Vec::new(),
        }
    }

    fn plan(&self) -> &Plan {
        self.gw.plan()
    }

    /// The gateway's `PeerId` of facility `i` in the current plan.
    fn peer(&self, i: usize) -> PeerId {
        let name = site(i).peer;
        let p = self.plan().peers.iter().position(|p| p.name == name);
        PeerId(p.expect("facility is a configured peer") as u32)
    }

    /// The gateway attachment facility `i` talks to, in the current plan.
    fn attachment(&self, i: usize) -> AttachmentId {
        attachment_at(self.plan(), self.facs[i].gateway).expect("facility's attachment")
    }

    fn established(&self, i: usize) -> bool {
        self.gw
            .tunnel(self.attachment(i))
            .and_then(Tunnel::wireguard)
            .expect("WireGuard attachment")
            .peer_session_established(self.peer(i))
    }

    fn handshakes(&self, result: HandshakeResult) -> u64 {
        self.gw.counters().handshake_count(result)
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.gw.counters().drop_count(reason)
    }

    /// Every drop reason with a non-zero count.
    fn all_drops(&self) -> Vec<(DropReason, u64)> {
        let c = self.gw.counters();
        let reasons = DropReason::ALL.iter().map(|r| (*r, c.drop_count(*r)));
        reasons.filter(|(_, n)| *n > 0).collect()
    }

    fn last_handshake(&self, i: usize) -> Option<Instant> {
        self.gw.counters().last_handshake(self.peer(i).index())
    }

    /// What the gateway sent to facility `i`.
    fn sent_to(&self, i: usize) -> impl Iterator<Item = &Sent> + '_ {
        let to = self.facs[i].addr;
        self.gw_sent.iter().filter(move |s| s.to == to)
    }

    fn fac_emit(&mut self, i: usize, bytes: Vec<u8>) {
        let fac = &mut self.facs[i];
        if let Some(n) = fac.sent_by_type.get_mut(usize::from(bytes[0])) {
            *n += 1;
        }
        self.wire.push_back(Datagram {
            from: fac.addr,
            to: fac.gateway,
            bytes,
        });
    }

    /// Facility `i` sends one inner packet (starting a handshake first if it has no session)
    /// and everything it provokes is delivered.
    fn send(&mut self, i: usize, packet: &[u8]) {
        clock::sync(self.now);
        let mut buf = vec![0u8; BUF_SIZE];
        match owned(self.facs[i].tunn.encapsulate(packet, &mut buf)) {
            Owned::Net(d) => self.fac_emit(i, d),
            Owned::Done => {}
            Owned::Inner(_) => panic!("encapsulate gave an inner packet"),
            Owned::Err(e) => panic!("facility {i} encapsulate: {e}"),
        }
        self.deliver();
    }

    /// Facility `i` starts a handshake with no data waiting.
    fn connect(&mut self, i: usize) {
        clock::sync(self.now);
        let mut buf = vec![0u8; BUF_SIZE];
        match owned(
            self.facs[i]
                .tunn
                .format_handshake_initiation(&mut buf, false),
        ) {
            Owned::Net(d) => self.fac_emit(i, d),
            Owned::Done => panic!("facility {i} has a handshake in progress"),
            Owned::Inner(_) => panic!("an initiation gave an inner packet"),
            Owned::Err(e) => panic!("facility {i} initiation: {e}"),
        }
        self.deliver();
    }

    fn fac_receive(&mut self, i: usize, d: Datagram) {
        clock::sync(self.now);
        let mut out = Vec::new();
        let fac = &mut self.facs[i];
        assert_eq!(
            d.from, fac.gateway,
            "facility {i} heard from another attachment"
        );
        let mut buf = vec![0u8; BUF_SIZE];
        match owned(fac.tunn.decapsulate(Some(d.from.ip()), &d.bytes, &mut buf)) {
            Owned::Net(reply) => {
                out.push(reply);
                while let Owned::Net(q) = owned(fac.tunn.decapsulate(None, &[], &mut buf)) {
                    out.push(q);
                }
            }
            Owned::Inner(p) => fac.received.push(p),
            Owned::Done => {}
            Owned::Err(e) => fac.errors.push(e),
        }
        for reply in out {
            self.fac_emit(i, reply);
        }
    }

    /// Moves the gateway's transmit batch onto the wire.
    fn collect(&mut self) {
        let plan = self.gw.plan();
        for (meta, bytes) in self.tx.iter() {
            let Some(to) = meta.via.udp_addr() else {
                panic!("WireGuard output to {:?}", meta.via)
            };
            self.gw_sent.push(Sent {
                at: self.now,
                to,
                bytes: bytes.to_vec(),
            });
            self.wire.push_back(Datagram {
                from: listen_of(plan, meta.attachment),
                to,
                bytes: bytes.to_vec(),
            });
        }
        self.tx.clear();
    }

    fn run_gateway(&mut self) {
        if self.rx.is_empty() {
            return;
        }
        self.gw.handle_batch(self.now, &mut self.rx, &mut self.tx);
        self.rx.clear();
        self.collect();
    }

    /// Delivers everything in flight, and what that provokes, until the wire is quiet.
    /// Consecutive datagrams to the gateway go in one batch.
    fn deliver(&mut self) {
        let mut budget = 100_000;
        loop {
            while let Some(d) = self.wire.pop_front() {
                budget -= 1;
                assert!(budget > 0, "datagrams ping-pong forever");
                if let Some(att) = attachment_at(self.gw.plan(), d.to) {
                    self.gw_received.push((self.now, d.from, d.bytes.clone()));
                    if !self.rx.push(att, Via::udp(0, d.from), &d.bytes) {
                        self.run_gateway();
                        assert!(self.rx.push(att, Via::udp(0, d.from), &d.bytes));
                    }
                } else {
                    self.run_gateway();
                    let i = self.facs.iter().position(|f| f.addr == d.to);
                    let i = i.unwrap_or_else(|| panic!("datagram to nowhere: {d:?}"));
                    self.fac_receive(i, d);
                }
            }
            if self.rx.is_empty() {
                break;
            }
            self.run_gateway();
        }
    }

    /// One timer tick: the clock moves on, every timer that is due runs, the wire drains.
    fn tick(&mut self) {
        self.now += TIMER_TICK;
        if self.now >= self.gw.poll_timeout() {
            self.gw.handle_timeout(self.now, &mut self.tx);
            self.collect();
        }
        clock::sync(self.now);
        let mut buf = vec![0u8; BUF_SIZE];
        for i in 0..self.facs.len() {
            if let Owned::Net(d) = owned(self.facs[i].tunn.update_timers(&mut buf)) {
                self.fac_emit(i, d);
            }
        }
        self.deliver();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now + TIMER_TICK <= end {
            self.tick();
        }
    }

    fn received(&self, i: usize) -> &[Vec<u8>] {
        &self.facs[i].received
    }

    fn assert_no_facility_errors(&self) {
        for (i, f) in self.facs.iter().enumerate() {
            assert!(f.errors.is_empty(), "facility {i}: {:?}", f.errors);
        }
    }
}

fn echo(src: &str, dst: &str, ident: u16, seq: u16, reply: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; BUF_SIZE];
    let n = build::icmp_echo(&mut buf, ip(src), ip(dst), ident, seq, reply, payload).unwrap();
    buf.truncate(n);
    buf
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; BUF_SIZE];
    let n = build::udp(&mut buf, ip(src), ip(dst), sport, dport, payload).unwrap();
    buf.truncate(n);
    buf
}

/// A 40-byte IPv6 header with no payload ("no next header").
fn ipv6() -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[6] = 59;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 2;
    p[24] = 0xfd;
    p[39] = 1;
    p
}

/// `packet` as it looks one router hop later: TTL one less, header checksum recomputed.
fn one_hop_later(mut packet: Vec<u8>) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.set_ttl(ip.ttl() - 1);
    ip.fill_checksum();
    packet
}

/// Checks every checksum of an IPv4 packet against a computation from scratch.
fn assert_checksums(packet: &[u8]) {
    wire::inspect(packet).expect("a well-formed packet");
    let ip = Ipv4Packet::new_checked(packet).unwrap();
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        PROTO_ICMP => assert!(IcmpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum()),
        PROTO_UDP => {
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert_ne!(u.checksum(), 0, "the checksum was not removed");
            assert!(u.verify_checksum(src, dst), "UDP checksum");
        }
        PROTO_TCP => assert!(TcpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(src, dst)),
        p => panic!("unexpected protocol {p}"),
    }
}

/// A pings 100.65.0.2 (B) with `seq`; B answers. Returns what each side received.
fn ping_pong(p: &mut Pair, seq: u16) -> (Vec<u8>, Vec<u8>) {
    let (a0, b0) = (p.received(A).len(), p.received(B).len());
    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, seq, false, b"ping"));
    assert_eq!(p.received(B).len(), b0 + 1, "echo {seq} did not reach B");
    let at_b = p.received(B)[b0].clone();
    p.send(B, &echo("10.0.0.2", "100.64.0.2", 7, seq, true, b"ping"));
    assert_eq!(p.received(A).len(), a0 + 1, "reply {seq} did not reach A");
    (at_b, p.received(A)[a0].clone())
}

#[test]
fn echo_crosses_overlapping_tenants_gateway_dials_configured_b() {
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        ..Setup::default()
    });
    let request = echo("10.0.0.2", "100.65.0.2", 7, 1, false, b"ping from omura");

    p.send(A, &request);

    assert_eq!(p.facs[A].initiations_sent(), 1);
    assert_eq!(p.facs[B].initiations_sent(), 0, "the gateway dialled B");
    let to_b: Vec<_> = p.sent_to(B).collect();
    assert_eq!(to_b[0].bytes[0], MSG_HANDSHAKE_INIT);
    assert_eq!(p.handshakes(HandshakeResult::Ok), 2);
    assert!(p.established(A) && p.established(B));

    let expected = one_hop_later(echo(
        "100.64.0.2",
        "10.0.0.2",
        7,
        1,
        false,
        b"ping from omura",
    ));
    assert_eq!(p.received(B), std::slice::from_ref(&expected));
    let s = wire::inspect(&p.received(B)[0]).unwrap();
    assert_eq!(
        (s.src, s.dst, s.ttl),
        (ip("100.64.0.2"), ip("10.0.0.2"), 63)
    );
    assert_checksums(&p.received(B)[0]);

    p.send(
        B,
        &echo("10.0.0.2", "100.64.0.2", 7, 1, true, b"ping from omura"),
    );

    let expected = one_hop_later(echo(
        "100.65.0.2",
        "10.0.0.2",
        7,
        1,
        true,
        b"ping from omura",
    ));
    assert_eq!(p.received(A), &[expected]);
    assert_checksums(&p.received(A)[0]);
    assert_eq!(p.all_drops(), vec![]);
    assert_eq!(p.facs[B].initiations_sent(), 0);
    p.assert_no_facility_errors();
}

#[test]
fn echo_to_unconnected_b_without_endpoint_is_dropped_until_b_connects() {
    let mut p = Pair::new(Setup::default());

    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, 1, false, b"early"));

    assert!(p.established(A));
    assert!(p.received(B).is_empty());
    assert_eq!(p.drops(DropReason::NoEndpoint), 1);
    assert_eq!(p.all_drops(), vec![(DropReason::NoEndpoint, 1)]);
    assert_eq!(p.sent_to(B).count(), 0, "nowhere to send B anything");
    assert_eq!(p.gw.counters().tenant(1).tx_packets.get(), 0);

    // B dials in first; the gateway learns its endpoint and answers from B's attachment.
    p.advance(Duration::from_secs(1));
    p.connect(B);
    assert!(p.established(B));
    assert_eq!(
        p.gw.tunnel(p.attachment(B))
            .and_then(Tunnel::wireguard)
            .unwrap()
            .peer_endpoint(p.peer(B)),
        Some(site(B).facility_addr)
    );
    assert_eq!(p.handshakes(HandshakeResult::Ok), 2);

    let (at_b, at_a) = ping_pong(&mut p, 2);
    assert_eq!(
        at_b,
        one_hop_later(echo("100.64.0.2", "10.0.0.2", 7, 2, false, b"ping"))
    );
    assert_eq!(
        at_a,
        one_hop_later(echo("100.65.0.2", "10.0.0.2", 7, 2, true, b"ping"))
    );
    assert_eq!(p.drops(DropReason::NoEndpoint), 1);
    assert_eq!(p.facs[A].initiations_sent(), 1);
    p.assert_no_facility_errors();
}

#[test]
fn udp_from_b_passes_only_as_the_reply_of_a_flow_a_opened() {
    let mut p = Pair::new(Setup::default());

    // B opens towards A: no policy allows B → A. Its datagram waits for B's handshake and
    // then reaches the gateway, which drops it.
    p.send(
        B,
        &udp("10.0.0.2", "100.64.0.2", 5201, 40000, b"unsolicited"),
    );
    assert!(p.established(B));
    assert_eq!(p.gw.counters().peer(p.peer(B).index()).rx_packets.get(), 1);
    assert_eq!(p.drops(DropReason::Policy), 1);
    assert!(p.received(A).is_empty());
    assert_eq!(p.gw.flow_count(), 0);

    p.send(A, &udp("10.0.0.2", "100.65.0.2", 40000, 5201, b"iperf"));
    assert_eq!(
        p.received(B),
        &[one_hop_later(udp(
            "100.64.0.2",
            "10.0.0.2",
            40000,
            5201,
            b"iperf"
        ))]
    );
    assert_checksums(&p.received(B)[0]);
    assert_eq!(p.gw.flow_count(), 1);

    // The same datagram as before is now the reply of A's flow.
    p.send(
        B,
        &udp("10.0.0.2", "100.64.0.2", 5201, 40000, b"unsolicited"),
    );
    assert_eq!(
        p.received(A),
        &[one_hop_later(udp(
            "100.65.0.2",
            "10.0.0.2",
            5201,
            40000,
            b"unsolicited"
        ))]
    );
    assert_checksums(&p.received(A)[0]);

    // Another port of A, B's own udp/5201 towards A, and a port the policy does not name.
    p.send(B, &udp("10.0.0.2", "100.64.0.2", 5201, 40001, b"x"));
    p.send(B, &udp("10.0.0.2", "100.64.0.2", 40000, 5201, b"x"));
    p.send(A, &udp("10.0.0.2", "100.65.0.2", 40000, 5202, b"x"));
    assert_eq!(p.received(A).len(), 1);
    assert_eq!(p.received(B).len(), 1);
    assert_eq!(p.drops(DropReason::Policy), 4);
    assert_eq!(p.all_drops(), vec![(DropReason::Policy, 4)]);

    // A UDP flow idle for longer than udp_idle_timeout (120 s) is forgotten: a late reply
    // no longer passes. The tunnels themselves are still up.
    p.advance(Duration::from_secs(121));
    assert_eq!(p.gw.flow_count(), 0);
    assert!(p.established(A) && p.established(B));
    p.send(B, &udp("10.0.0.2", "100.64.0.2", 5201, 40000, b"late"));
    assert_eq!(p.received(A).len(), 1);
    assert_eq!(p.all_drops(), vec![(DropReason::Policy, 5)]);
    p.assert_no_facility_errors();
}

#[test]
fn tcp_syn_mss_is_clamped_to_the_wireguard_mtu() {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        ..Setup::default()
    });
    let mut buf = vec![0u8; BUF_SIZE];
    let n = build::tcp(
        &mut buf,
        ip("10.0.0.2"),
        ip("100.65.0.2"),
        40000,
        5201,
        1000,
        0,
        SYN,
        Some(1460),
        b"",
    )
    .unwrap();

    p.send(A, &buf[..n]);

    // Both tunnels carry 1420-byte inner packets: MSS = 1420 - 40.
    let n = build::tcp(
        &mut buf,
        ip("100.64.0.2"),
        ip("10.0.0.2"),
        40000,
        5201,
        1000,
        0,
        SYN,
        Some(1380),
        b"",
    )
    .unwrap();
    assert_eq!(p.received(B), &[one_hop_later(buf[..n].to_vec())]);
    assert_checksums(&p.received(B)[0]);

    let n = build::tcp(
        &mut buf,
        ip("10.0.0.2"),
        ip("100.64.0.2"),
        5201,
        40000,
        5000,
        1001,
        SYN | ACK,
        Some(1380),
        b"",
    )
    .unwrap();
    p.send(B, &buf[..n]);
    let n = build::tcp(
        &mut buf,
        ip("100.65.0.2"),
        ip("10.0.0.2"),
        5201,
        40000,
        5000,
        1001,
        SYN | ACK,
        Some(1380),
        b"",
    )
    .unwrap();
    assert_eq!(p.received(A), &[one_hop_later(buf[..n].to_vec())]);
    assert_eq!(p.all_drops(), vec![]);
    p.assert_no_facility_errors();
}

/// A pings B every second for five minutes. A initiates its session; B's session is
/// initiated by the gateway (configured endpoint) or by B (it dials in first).
fn rekeys_keep_a_trickle_flowing(b_dials: bool) {
    let mut p = Pair::new(Setup {
        b_endpoint: !b_dials,
        ..Setup::default()
    });
    if b_dials {
        p.connect(B);
    }
    ping_pong(&mut p, 0);
    let ok0 = p.handshakes(HandshakeResult::Ok);
    assert_eq!(ok0, 2);
    let mut last = [p.last_handshake(A), p.last_handshake(B)];
    let mut rekeyed_at: [Vec<Duration>; 2] = Default::default();

    for second in 1..=300u16 {
        p.advance(Duration::from_secs(1));
        let (at_b, at_a) = ping_pong(&mut p, second);
        assert_eq!(
            at_b,
            one_hop_later(echo("100.64.0.2", "10.0.0.2", 7, second, false, b"ping"))
        );
        assert_eq!(
            at_a,
            one_hop_later(echo("100.65.0.2", "10.0.0.2", 7, second, true, b"ping"))
        );
        for (i, seen) in last.iter_mut().enumerate() {
            let now = p.last_handshake(i);
            if now != *seen {
                rekeyed_at[i].push(now.unwrap() - p.start);
                *seen = now;
            }
        }
    }

    assert_eq!(p.received(A).len(), 301);
    assert_eq!(p.received(B).len(), 301);
    // Each session's initiator rekeys REKEY_AFTER_TIME after the last handshake, at the
    // first timer run once that has passed.
    for times in &rekeyed_at {
        assert!(times.len() >= 2, "{rekeyed_at:?}");
        let mut previous = Duration::ZERO;
        for &t in times {
            let gap = t - previous;
            assert!(
                gap >= Duration::from_secs(120) && gap <= Duration::from_secs(122),
                "{rekeyed_at:?}"
            );
            previous = t;
        }
    }
    assert!(
        p.handshakes(HandshakeResult::Ok) >= ok0 + 4,
        "{}",
        p.handshakes(HandshakeResult::Ok)
    );
    assert_eq!(p.all_drops(), vec![]);
    assert_eq!(p.handshakes(HandshakeResult::Timeout), 0);
    p.assert_no_facility_errors();
}

#[test]
fn rekeys_keep_a_five_minute_trickle_flowing_gateway_dials_b() {
    rekeys_keep_a_trickle_flowing(false);
}

#[test]
fn rekeys_keep_a_five_minute_trickle_flowing_b_dials_in() {
    rekeys_keep_a_trickle_flowing(true);
}

#[test]
fn keepalives_hold_an_idle_session_and_data_flows_after() {
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        a_keepalive: Some(25),
    });
    ping_pong(&mut p, 1);
    let c = Arc::clone(p.gw.counters());
    let rx_before = (c.tenant(0).rx_packets.get(), c.tenant(1).rx_packets.get());
    let ok_before = p.handshakes(HandshakeResult::Ok);
    let idle_from = p.now;

    p.advance(Duration::from_secs(120));

    let keepalives: Vec<Duration> = p
        .gw_received
        .iter()
        .filter(|(at, from, d)| {
            *at > idle_from && *from == site(A).facility_addr && d[0] == MSG_DATA
        })
        .map(|(at, _, d)| {
            assert_eq!(d.len(), KEEPALIVE_LEN, "only keepalives while idle");
            *at - idle_from
        })
        .collect();
    assert_eq!(keepalives.len(), 4, "{keepalives:?}");
    for (k, at) in keepalives.iter().enumerate() {
        let due = Duration::from_secs(25 * (k as u64 + 1));
        assert!(
            *at >= due && *at <= due + Duration::from_secs(1),
            "{keepalives:?}"
        );
    }
    assert_eq!(p.facs[A].initiations_sent(), 1, "no rekey without data");
    let c = p.gw.counters();
    assert_eq!(
        (c.tenant(0).rx_packets.get(), c.tenant(1).rx_packets.get()),
        rx_before,
        "keepalives are no data"
    );
    assert_eq!(p.all_drops(), vec![], "keepalives are accepted");
    assert_eq!(p.received(B).len(), 1);
    assert_eq!(p.handshakes(HandshakeResult::Ok), ok_before);
    assert_eq!(
        p.sent_to(A)
            .filter(|s| s.at > idle_from && s.bytes[0] != MSG_DATA)
            .count(),
        0,
        "the gateway started no handshake with A"
    );
    assert!(p.established(A));
    assert!(p.established(B));
    assert_eq!(
        p.gw.tunnel(p.attachment(A))
            .and_then(Tunnel::wireguard)
            .unwrap()
            .peer_endpoint(p.peer(A)),
        Some(site(A).facility_addr)
    );

    let (at_b, at_a) = ping_pong(&mut p, 2);
    assert_eq!(
        at_b,
        one_hop_later(echo("100.64.0.2", "10.0.0.2", 7, 2, false, b"ping"))
    );
    assert_eq!(
        at_a,
        one_hop_later(echo("100.65.0.2", "10.0.0.2", 7, 2, true, b"ping"))
    );
    assert_eq!(p.all_drops(), vec![]);
    p.assert_no_facility_errors();
}

#[test]
fn counters_equal_what_was_sent_and_drops_are_counted_by_reason() {
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        ..Setup::default()
    });
    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    for k in 0..4u16 {
        let payload = vec![0xa0 + k as u8; 10 + 100 * usize::from(k)];
        let (req, rep) = if k % 2 == 0 {
            (
                echo("10.0.0.2", "100.65.0.2", 9, k, false, &payload),
                echo("10.0.0.2", "100.64.0.2", 9, k, true, &payload),
            )
        } else {
            (
                udp("10.0.0.2", "100.65.0.2", 40000 + k, 5201, &payload),
                udp("10.0.0.2", "100.64.0.2", 5201, 40000 + k, &payload[..7]),
            )
        };
        p.send(A, &req);
        p.send(B, &rep);
        from_a.push(req.len() as u64);
        from_b.push(rep.len() as u64);
    }
    assert_eq!(p.received(B).len(), 4);
    assert_eq!(p.received(A).len(), 4);
    let (na, nb) = (from_a.len() as u64, from_b.len() as u64);
    let (ba, bb): (u64, u64) = (from_a.iter().sum(), from_b.iter().sum());

    let c = p.gw.counters();
    let names: Vec<_> = c.tenants().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["ajisai-net", "mame-net"]);
    let traffic = |t: &ixgw::metrics::Traffic| {
        (
            t.rx_packets.get(),
            t.rx_bytes.get(),
            t.tx_packets.get(),
            t.tx_bytes.get(),
        )
    };
    assert_eq!(traffic(c.tenant(0)), (na, ba, nb, bb));
    assert_eq!(traffic(c.tenant(1)), (nb, bb, na, ba));
    assert_eq!(traffic(c.peer(p.peer(A).index())), (na, ba, nb, bb));
    assert_eq!(traffic(c.peer(p.peer(B).index())), (nb, bb, na, ba));
    assert_eq!(p.all_drops(), vec![]);

    let spoofed = echo("10.0.0.9", "100.65.0.2", 9, 100, false, b"spoof");
    let v6 = ipv6();
    let unrouted = echo("10.0.0.2", "100.99.0.1", 9, 101, false, b"nowhere");
    p.send(A, &spoofed);
    p.send(A, &v6);
    p.send(A, &unrouted);

    assert_eq!(p.received(B).len(), 4);
    assert_eq!(
        p.all_drops(),
        vec![
            (DropReason::Ipv6, 1),
            (DropReason::Spoofed, 1),
            (DropReason::NoRoute, 1),
        ]
    );
    // rx counts every inner packet that came out of A's tunnel, forwarded or not.
    let extra = (spoofed.len() + v6.len() + unrouted.len()) as u64;
    let c = p.gw.counters();
    assert_eq!(traffic(c.tenant(0)), (na + 3, ba + extra, nb, bb));
    assert_eq!(
        traffic(c.peer(p.peer(A).index())),
        (na + 3, ba + extra, nb, bb)
    );
    assert_eq!(traffic(c.tenant(1)), (nb, bb, na, ba));
    // The three packets dropped after decryption count against A; every packet's WireGuard
    // datagram carries at least 32 bytes more than its inner packet (header and tag).
    let a = c.peers().nth(p.peer(A).index()).unwrap();
    assert_eq!(a.drops, 3);
    assert!(
        a.wire_rx_bytes >= ba + extra + 32 * (na + 3),
        "{}",
        a.wire_rx_bytes
    );
    assert!(a.wire_tx_bytes >= bb + 32 * nb, "{}", a.wire_tx_bytes);

    let text = MetricsHub::new([Arc::clone(p.gw.counters())]).encode();
    for line in [
        r#"ixgw_drops_total{tenant="ajisai-net",reason="spoofed"} 1"#.to_string(),
        r#"ixgw_drops_total{tenant="ajisai-net",reason="ipv6"} 1"#.to_string(),
        r#"ixgw_drops_total{tenant="ajisai-net",reason="no_route"} 1"#.to_string(),
        r#"ixgw_drops_total{tenant="ajisai-net",reason="policy"} 0"#.to_string(),
        r#"ixgw_drops_total{tenant="mame-net",reason="spoofed"} 0"#.to_string(),
        format!(
            r#"ixgw_tenant_rx_bytes_total{{tenant="ajisai-net"}} {}"#,
            ba + extra
        ),
        format!(r#"ixgw_tenant_tx_bytes_total{{tenant="mame-net"}} {ba}"#),
        format!(r#"ixgw_tenant_rx_packets_total{{tenant="mame-net"}} {nb}"#),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    p.assert_no_facility_errors();
}

/// Reloads into a plan with a third tenant, before or after the others (which renumbers
/// every attachment and peer).
fn reload_keeps_sessions(third_first: bool) {
    let setup = Setup {
        b_endpoint: true,
        ..Setup::default()
    };
    let mut p = Pair::new(setup);
    ping_pong(&mut p, 1);
    let ok_before = p.handshakes(HandshakeResult::Ok);
    assert_eq!(p.facs[A].initiations_sent(), 1);
    p.advance(Duration::from_secs(1));

    let sites: &[usize] = if third_first { &[C, A, B] } else { &[A, B, C] };
    let plan = Arc::new(Plan::compile(&config(setup, sites), 2));
    let published = p.gw.apply_plan(plan, p.now);
    assert!(Arc::ptr_eq(&published, p.gw.counters()));
    assert_eq!(p.plan().generation, 2);
    assert_eq!(p.attachment(A), AttachmentId(u16::from(third_first)));

    assert!(p.established(A) && p.established(B));
    let (at_b, at_a) = ping_pong(&mut p, 2);
    assert_eq!(
        at_b,
        one_hop_later(echo("100.64.0.2", "10.0.0.2", 7, 2, false, b"ping"))
    );
    assert_eq!(
        at_a,
        one_hop_later(echo("100.65.0.2", "10.0.0.2", 7, 2, true, b"ping"))
    );
    assert_eq!(p.facs[A].initiations_sent(), 1, "A's session survived");
    assert_eq!(p.handshakes(HandshakeResult::Ok), ok_before);

    let c = p.gw.counters();
    let rx = |name: &str| {
        c.tenants()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.rx_packets.get())
    };
    assert_eq!(rx("ajisai-net"), Some(2), "counters continue");
    assert_eq!(rx("mame-net"), Some(2));
    assert_eq!(rx("kiku-net"), Some(0));
    assert_eq!(c.peer(p.peer(A).index()).tx_packets.get(), 2);

    // The new tenant's facility dials in and pings B, which answers.
    p.facs.push(Facility::new(C, None));
    p.send(C, &echo("10.0.0.2", "100.65.0.2", 3, 1, false, b"kiku"));
    assert_eq!(
        p.received(B).last(),
        Some(&one_hop_later(echo(
            "100.66.0.2",
            "10.0.0.2",
            3,
            1,
            false,
            b"kiku"
        )))
    );
    p.send(B, &echo("10.0.0.2", "100.66.0.2", 3, 1, true, b"kiku"));
    assert_eq!(
        p.received(C),
        &[one_hop_later(echo(
            "100.65.0.2",
            "10.0.0.2",
            3,
            1,
            true,
            b"kiku"
        ))]
    );
    assert_eq!(p.handshakes(HandshakeResult::Ok), ok_before + 1);
    assert_eq!(p.all_drops(), vec![]);
    p.assert_no_facility_errors();
}

#[test]
fn reload_adding_a_tenant_keeps_sessions_and_counters() {
    reload_keeps_sessions(false);
}

#[test]
fn reload_renumbering_attachments_keeps_sessions_and_counters() {
    reload_keeps_sessions(true);
}

#[test]
fn replies_follow_a_facility_that_roams() {
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        ..Setup::default()
    });
    ping_pong(&mut p, 1);

    // A's NAT rebinds: same session, new source port.
    let roamed: SocketAddr = "192.0.2.10:61000".parse().unwrap();
    p.facs[A].addr = roamed;
    p.advance(Duration::from_secs(1));
    let (_, at_a) = ping_pong(&mut p, 2);

    assert_eq!(
        at_a,
        one_hop_later(echo("100.65.0.2", "10.0.0.2", 7, 2, true, b"ping"))
    );
    assert_eq!(
        p.gw.tunnel(p.attachment(A))
            .and_then(Tunnel::wireguard)
            .unwrap()
            .peer_endpoint(p.peer(A)),
        Some(roamed)
    );
    assert_eq!(p.facs[A].initiations_sent(), 1);
    assert_eq!(p.all_drops(), vec![]);
    p.assert_no_facility_errors();
}

/// Collects the gateway's flow events.
#[derive(Default)]
struct Events(std::sync::Mutex<Vec<FlowEvent>>);

impl FlowSink for Events {
    fn flow(&self, event: FlowEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// Flow records: a flow's start when its first packet leaves, with the rule that admitted
/// it; its end when it idles out, with the packets and bytes each way and its duration.
#[test]
fn flows_report_their_start_and_end_with_what_they_carried() {
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        ..Setup::default()
    });
    let events = Arc::new(Events::default());
    p.gw.set_flow_sink(events.clone());
    let (at_b, at_a) = ping_pong(&mut p, 1);
    let started = p.now;
    p.advance(Duration::from_secs(2));
    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, 2, false, b"ping"));
    {
        let e = events.0.lock().unwrap();
        assert_eq!(e.len(), 1, "one start: {e:?}");
        assert_eq!(e[0].phase, FlowPhase::Start);
        assert_eq!(e[0].opener.src.to_string(), "100.64.0.2");
        assert_eq!(e[0].opener.dst.to_string(), "100.65.0.2");
        assert_eq!(
            e[0].plan.tenants[e[0].src_tenant.index()].name,
            site(A).tenant
        );
        assert_eq!(
            e[0].plan.tenants[e[0].dst_tenant.index()].name,
            site(B).tenant
        );
        assert_eq!(e[0].plan.policy.rule(e[0].rule).unwrap().name, "a-to-b");
        assert_eq!((e[0].packets, e[0].bytes), ([0; 2], [0; 2]));
    }
    // ICMP flows idle out after 30 s; the sweep reports the end.
    p.advance(Duration::from_secs(40));
    let e = events.0.lock().unwrap();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[1].phase, FlowPhase::End(FlowEnd::Idle));
    assert_eq!(e[1].packets, [2, 1]);
    let (out, back) = (at_b.len() as u64, at_a.len() as u64);
    assert_eq!(e[1].bytes, [2 * out, back]);
    assert_eq!(
        e[1].duration,
        p.now.min(started + Duration::from_secs(2)) - started
    );
}

/// An agreement grants A → B only inside its window: nothing before it opens, pings once it
/// is open, and the flow it granted stops (both directions) the second it closes.
#[test]
fn an_agreement_grants_only_inside_its_window_and_its_flows_stop_when_it_closes() {
    const T0: u64 = 1_800_000_000;
    let setup = Setup {
        b_endpoint: true,
        ..Setup::default()
    };
    let mut c = config(setup, &[A, B]);
    let grant = c.policies.remove(0);
    c.agreements.push(Agreement {
        name: "a-uses-b".into(),
        consumer: site(A).tenant.into(),
        provider: site(B).tenant.into(),
        grant,
        valid_from: Some(T0),
        valid_until: Some(T0 + 60),
        approved_by_provider: Some("b".into()),
        approved_by_consumer: Some("a".into()),
    });
    let mut p = Pair::with_config(setup, c);
    // No wall clock yet: a windowed agreement grants nothing.
    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, 1, false, b"ping"));
    assert_eq!(p.received(B).len(), 0);
    assert_eq!(p.drops(DropReason::Policy), 1);
    assert!(!p.gw.set_wall_clock(p.now, T0 - 1), "still closed");
    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, 2, false, b"ping"));
    assert_eq!(p.drops(DropReason::Policy), 2);

    assert!(p.gw.set_wall_clock(p.now, T0), "the window opens");
    ping_pong(&mut p, 3);
    assert!(!p.gw.set_wall_clock(p.now, T0 + 59));
    ping_pong(&mut p, 4);

    assert!(p.gw.set_wall_clock(p.now, T0 + 60), "the window closes");
    let (a0, b0) = (p.received(A).len(), p.received(B).len());
    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, 5, false, b"ping"));
    assert_eq!(p.received(B).len(), b0, "the flow it granted stopped");
    // B answers on the old flow: gone too.
    p.send(B, &echo("10.0.0.2", "100.64.0.2", 7, 4, true, b"ping"));
    assert_eq!(p.received(A).len(), a0);
    assert_eq!(p.drops(DropReason::Policy), 3);
    assert_eq!(p.drops(DropReason::NoFlow), 1, "the reply found no flow");
}

/// A reload starts every facility allowed (the worker then sets the registry's states): a
/// WireGuard peer refused under the old plan is admitted again under the new one, and can
/// handshake.
#[test]
fn a_reload_readmits_a_refused_peer_until_its_state_is_set_again() {
    let setup = Setup {
        b_endpoint: true,
        ..Setup::default()
    };
    let mut p = Pair::new(setup);
    ping_pong(&mut p, 1);
    let a_facility = p.plan().peers[p.peer(A).index()].facility_id;
    let now = p.now;
    assert!(p
        .gw
        .set_facility_state(now, a_facility, FacilityState::Revoked));
    p.connect(A);
    assert_eq!(p.handshakes(HandshakeResult::Certificate), 1);

    let plan = Arc::new(Plan::compile(&config(setup, &[A, B]), 2));
    p.gw.apply_plan(plan, p.now);
    let a_facility = p.plan().peers[p.peer(A).index()].facility_id;
    assert_eq!(p.gw.facility_state(a_facility), FacilityState::NotRequired);
    // A retries within REKEY_TIMEOUT and gets through.
    p.advance(Duration::from_secs(6));
    assert!(p.established(A));
    ping_pong(&mut p, 2);
    assert_eq!(p.handshakes(HandshakeResult::Certificate), 1);
}

/// A facility whose state forbids traffic loses it at once, in both directions, its open
/// flows included (a reply on a flow it opened finds the verdict stale and asks again); its
/// sessions end and its handshakes are refused. Restoring the state lets it handshake anew.
#[test]
fn a_facility_that_may_not_send_loses_its_flows_and_handshakes_until_restored() {
    let mut p = Pair::new(Setup {
        b_endpoint: true,
        ..Setup::default()
    });
    ping_pong(&mut p, 1);
    let a_facility = p.plan().peers[p.peer(A).index()].facility_id;

    let now = p.now;
    assert!(p
        .gw
        .set_facility_state(now, a_facility, FacilityState::Revoked));
    assert!(
        !p.gw
            .set_facility_state(now, a_facility, FacilityState::Revoked),
        "no change"
    );
    let (a0, b0) = (p.received(A).len(), p.received(B).len());
    // B answers A's flow: refused on the way to A. A sends on its old session: refused.
    p.send(B, &echo("10.0.0.2", "100.64.0.2", 7, 1, true, b"ping"));
    p.send(A, &echo("10.0.0.2", "100.65.0.2", 7, 2, false, b"ping"));
    assert_eq!((p.received(A).len(), p.received(B).len()), (a0, b0));
    assert_eq!(p.drops(DropReason::Certificate), 2);
    // A new handshake of A's is refused, and counted as such.
    p.connect(A);
    assert_eq!(p.handshakes(HandshakeResult::Certificate), 1);
    p.advance(Duration::from_secs(6));
    assert_eq!(
        p.handshakes(HandshakeResult::Certificate),
        2,
        "A's retry refused too"
    );
    assert!(!p.established(A));
    assert_eq!(p.received(B).len(), b0, "nothing of A's reached B");

    assert!(p
        .gw
        .set_facility_state(p.now, a_facility, FacilityState::NotRequired));
    // A retries its handshake within REKEY_TIMEOUT and gets through.
    p.advance(Duration::from_secs(6));
    assert!(p.established(A));
    ping_pong(&mut p, 3);
    assert_eq!(p.handshakes(HandshakeResult::Ok), 3, "A handshook anew");
}
