//! The pipeline with an IPsec attachment whose CHILD SA is installed by hand (as the IKE
//! thread will install it): ESP from the peer is decrypted into the same pipeline as every
//! other tunnel's packets, and packets routed to the peer leave encrypted into its SA.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::buffer::{RxBatch, TxBatch, Via};
use crate::config::*;
use crate::crypto::EncrAlg;
use crate::ids::{AttachmentId, PeerId};
use crate::tunnel::ipsec::esp::{Decap, InboundSa, OutboundSa, SaConfig};
use crate::tunnel::ipsec::tunnel::{IO_ESP, IO_NAT_T};
use crate::tunnel::ipsec::EspPath;
use crate::vocab::DropReason;
use crate::wire::{self, build};

const LAN: AttachmentId = AttachmentId(0);
const IPSEC: AttachmentId = AttachmentId(1);
const PEER: PeerId = PeerId(0);
const FACILITY_ADDR: ([u8; 4], u16) = ([198, 51, 100, 7], 4500);
/// Gateway → facility and facility → gateway.
const SPI_OUT: u32 = 0xc000_0001;
const SPI_IN: u32 = 0xc000_0002;
const KEY_OUT: [u8; 20] = [3; 20];
const KEY_IN: [u8; 20] = [4; 20];

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ipsec_peer() -> IpsecPeer {
    fuzz::psk_ipsec_peer("goto-clinic", "4212345682", "10.0.0.0/24")
}

/// Tenant "ajisai" behind a plain attachment and tenant "mame" behind an IPsec attachment,
/// both numbering 10.0.0.0/24; ajisai may reach mame with ICMP and mame ajisai's tcp/104.
fn config(raw_esp: bool) -> Config {
    config_with(raw_esp, vec![ipsec_peer()])
}

fn config_with(raw_esp: bool, peers: Vec<IpsecPeer>) -> Config {
    let mut mame = fuzz::plain("mame", "10.0.0.0/24", "100.65.0.0/24");
    mame.attachments = vec![Attachment {
        name: "mame-ipsec".into(),
        kind: AttachmentKind::Ipsec(IpsecAttachment {
            listen: ip("192.0.2.10"),
            ike_port: 500,
            nat_t_port: 4500,
            raw_esp,
            mtu: 1400,
            local_id: IkeIdentity::Fqdn("gw.ix.example".into()),
            credentials: None,
            peers,
        }),
    }];
    let icmp = PortRule {
        protocol: Protocol::Icmp,
        ports: None,
    };
    let dicom = PortRule {
        protocol: Protocol::Tcp,
        ports: Some((104, 104)),
    };
    let ajisai = fuzz::plain("ajisai", "10.0.0.0/24", "100.64.0.0/24");
    fuzz::config_of(
        1024,
        vec![ajisai, mame],
        vec![],
        vec![
            fuzz::tenant_policy("ping", "ajisai", "mame", vec![icmp]),
            fuzz::tenant_policy("imaging", "mame", "ajisai", vec![dicom]),
        ],
    )
}

fn sa(spi: u32, key: &[u8]) -> SaConfig<'_> {
    SaConfig {
        spi,
        esn: false,
        encr: EncrAlg::AesGcm16_128,
        encr_key: key,
        integ: None,
    }
}

struct Setup {
    gw: Gateway,
    /// The facility's halves of the CHILD SA.
    fac_out: OutboundSa,
    fac_in: InboundSa,
    now: Instant,
}

fn setup(raw_esp: bool, path: EspPath) -> Setup {
    setup_with(&config(raw_esp), path)
}

/// The gateway of `config` (generation 1) with the CHILD SA of its first IPsec peer installed.
fn setup_with(config: &Config, path: EspPath) -> Setup {
    let now = Instant::now();
    let plan = Plan::compile(config, 1);
    let mut gw = Gateway::new(Arc::new(plan), now);
    gw.tunnel_mut(IPSEC)
        .and_then(|t| t.ipsec_mut())
        .expect("an IPsec tunnel")
        .install(
            PEER,
            InboundSa::new(&sa(SPI_IN, &KEY_IN)).unwrap(),
            OutboundSa::new(&sa(SPI_OUT, &KEY_OUT)).unwrap(),
            path,
        );
    Setup {
        gw,
        fac_out: OutboundSa::new(&sa(SPI_IN, &KEY_IN)).unwrap(),
        fac_in: InboundSa::new(&sa(SPI_OUT, &KEY_OUT)).unwrap(),
        now,
    }
}

fn echo(src: &str, dst: &str, seq: u16, reply: bool) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = build::icmp_echo(&mut buf, ip(src), ip(dst), 9, seq, reply, b"ipsec").unwrap();
    buf.truncate(n);
    buf
}

fn run(
    gw: &mut Gateway,
    now: Instant,
    att: AttachmentId,
    via: Via,
    bytes: &[u8],
) -> Vec<(crate::buffer::TxMeta, Vec<u8>)> {
    let mut rx = RxBatch::new(4);
    let mut tx = TxBatch::new(8);
    assert!(rx.push(att, via, bytes));
    gw.handle_batch(now, &mut rx, &mut tx);
    tx.iter().map(|(m, b)| (m, b.to_vec())).collect()
}

#[test]
fn the_plan_gives_an_ipsec_attachment_its_sockets_routes_and_selectors() {
    let plan = Plan::compile(&config(true), 1);
    let a = &plan.attachments[IPSEC.index()];
    assert_eq!(
        a.io,
        [
            Io::Udp("192.0.2.10:500".parse().unwrap()),
            Io::Udp("192.0.2.10:4500".parse().unwrap()),
            Io::Esp(ip("192.0.2.10")),
        ]
    );
    assert_eq!(
        plan.tenants[1].routes.lookup(ip("10.0.0.9")),
        Some(Route::Peer(PEER))
    );
    let PeerPlanKind::Ipsec(p) = &plan.peers[0].kind else {
        panic!("an IPsec peer");
    };
    assert_eq!(
        p.local_ts,
        [net("100.64.0.0/24")],
        "what its policies reach"
    );
    let without_raw = Plan::compile(&config(false), 1);
    assert_eq!(without_raw.attachments[IPSEC.index()].io.len(), 2);
}

/// A ping from ajisai leaves encrypted into the facility's SA; the facility's ESP reply is
/// decrypted, translated and delivered to ajisai's LAN.
#[test]
fn esp_enters_and_leaves_the_same_pipeline() {
    let facility = SocketAddr::from(FACILITY_ADDR);
    let mut s = setup(true, EspPath::Udp(facility));

    let out = run(
        &mut s.gw,
        s.now,
        LAN,
        Via::DEVICE,
        &echo("10.0.0.2", "100.65.0.5", 1, false),
    );
    assert_eq!(out.len(), 1);
    let (meta, mut esp) = out.into_iter().next().unwrap();
    assert_eq!(
        (meta.attachment, meta.via),
        (IPSEC, Via::udp(IO_NAT_T, facility))
    );
    let Decap::Packet(range) = s.fac_in.decapsulate(&mut esp).unwrap() else {
        panic!("a packet, not a dummy");
    };
    let at_facility = wire::inspect(&esp[range]).unwrap();
    assert_eq!(
        (at_facility.src, at_facility.dst),
        (ip("100.64.0.2"), ip("10.0.0.5"))
    );

    let reply = echo("10.0.0.5", "100.64.0.2", 1, true);
    let mut buf = vec![0u8; 2048];
    let n = s
        .fac_out
        .encapsulate(&mut crate::crypto::SystemRandom::new(), &reply, &mut buf)
        .unwrap();
    let out = run(
        &mut s.gw,
        s.now,
        IPSEC,
        Via::udp(IO_NAT_T, facility),
        &buf[..n],
    );
    assert_eq!(out.len(), 1);
    let (meta, lan) = &out[0];
    assert_eq!((meta.attachment, meta.via), (LAN, Via::DEVICE));
    let back = wire::inspect(lan).unwrap();
    assert_eq!((back.src, back.dst), (ip("100.65.0.5"), ip("10.0.0.2")));
    assert_eq!(s.gw.counters().peer(PEER.index()).rx_packets.get(), 1);

    // The same ESP packet again is a replay; a source outside remote_ts is spoofed.
    let replay = run(
        &mut s.gw,
        s.now,
        IPSEC,
        Via::udp(IO_NAT_T, facility),
        &buf[..n],
    );
    assert!(replay.is_empty());
    assert_eq!(s.gw.counters().drop_count(DropReason::EspReplay), 1);
    let spoofed = echo("10.9.0.5", "100.64.0.2", 2, true);
    let n = s
        .fac_out
        .encapsulate(&mut crate::crypto::SystemRandom::new(), &spoofed, &mut buf)
        .unwrap();
    assert!(run(
        &mut s.gw,
        s.now,
        IPSEC,
        Via::udp(IO_NAT_T, facility),
        &buf[..n]
    )
    .is_empty());
    assert_eq!(s.gw.counters().drop_count(DropReason::Spoofed), 1);
}

/// Raw ESP (IP protocol 50): the reply path is the raw socket, and what comes in carries
/// the sender's IPv4 header.
#[test]
fn raw_esp_enters_the_pipeline_with_its_ip_header() {
    let facility_ip = std::net::IpAddr::from([198, 51, 100, 7]);
    let mut s = setup(true, EspPath::Raw(facility_ip));
    let request = echo("10.0.0.5", "100.64.0.2", 3, false);
    let mut packet = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 50, 0, 0, 198, 51, 100, 7, 192, 0, 2, 10,
    ];
    let mut buf = vec![0u8; 2048];
    let n = s
        .fac_out
        .encapsulate(&mut crate::crypto::SystemRandom::new(), &request, &mut buf)
        .unwrap();
    packet.extend_from_slice(&buf[..n]);
    let via = Via {
        io: IO_ESP,
        remote: crate::buffer::Remote::Ip(facility_ip),
    };
    let out = run(&mut s.gw, s.now, IPSEC, via, &packet);
    assert!(out.is_empty(), "no policy lets mame ping ajisai");
    assert_eq!(s.gw.counters().drop_count(DropReason::Policy), 1);
    assert_eq!(s.gw.counters().drop_count(DropReason::EspMalformed), 0);
}

/// Without an SA for the destination peer, a packet routed to it is `no_session`; an ESP
/// packet for an unknown SPI is `esp_unknown_spi`.
#[test]
fn without_an_sa_nothing_passes_and_every_drop_is_counted() {
    let now = Instant::now();
    let mut gw = Gateway::new(Arc::new(Plan::compile(&config(false), 1)), now);
    let out = run(
        &mut gw,
        now,
        LAN,
        Via::DEVICE,
        &echo("10.0.0.2", "100.65.0.5", 1, false),
    );
    assert!(out.is_empty());
    assert_eq!(gw.counters().drop_count(DropReason::NoSession), 1);
    let facility = SocketAddr::from(FACILITY_ADDR);
    let mut esp = [0u8; 64];
    esp[..4].copy_from_slice(&SPI_IN.to_be_bytes());
    esp[7] = 1;
    assert!(run(&mut gw, now, IPSEC, Via::udp(IO_NAT_T, facility), &esp).is_empty());
    assert_eq!(gw.counters().drop_count(DropReason::EspUnknownSpi), 1);
}

/// A reload that adds a peer in front of goto-clinic renumbers it: its CHILD SA is kept
/// under the new number (packets still leave in it, and its replies count for it); a reload
/// that changes the peer's key drops its SA; one that changes the gateway's identity keeps
/// nothing (the IKE engine is replaced).
#[test]
fn a_reload_keeps_the_sas_of_unchanged_peers_renumbered() {
    let goto = || fuzz::psk_ipsec_peer("goto-clinic", "4212345682", "10.0.0.0/25");
    let newcomer = fuzz::psk_ipsec_peer("iki-clinic", "4212345690", "10.0.0.128/25");
    let facility = SocketAddr::from(FACILITY_ADDR);
    let Setup {
        mut gw,
        mut fac_out,
        mut fac_in,
        now,
    } = setup_with(&config_with(true, vec![goto()]), EspPath::Udp(facility));
    let before = gw.plan().clone();
    let after = Arc::new(Plan::compile(
        &config_with(true, vec![newcomer.clone(), goto()]),
        2,
    ));
    let renumbered = PeerId(1);
    assert_eq!(after.peers[renumbered.index()].name, "goto-clinic");
    assert_eq!(
        after.ipsec_carry(&before, IPSEC),
        Some(IpsecCarry {
            previous: IPSEC,
            peers: vec![(PEER, renumbered)]
        })
    );
    gw.apply_plan(after.clone(), now);

    let out = run(
        &mut gw,
        now,
        LAN,
        Via::DEVICE,
        &echo("10.0.0.2", "100.65.0.5", 1, false),
    );
    assert_eq!(out.len(), 1, "still encrypted into the kept SA");
    let mut esp = out[0].1.clone();
    assert!(matches!(fac_in.decapsulate(&mut esp), Ok(Decap::Packet(_))));
    let reply = echo("10.0.0.5", "100.64.0.2", 1, true);
    let mut buf = vec![0u8; 2048];
    let n = fac_out
        .encapsulate(&mut crate::crypto::SystemRandom::new(), &reply, &mut buf)
        .unwrap();
    let via = Via::udp(IO_NAT_T, facility);
    assert_eq!(run(&mut gw, now, IPSEC, via, &buf[..n]).len(), 1);
    assert_eq!(gw.counters().peer(renumbered.index()).rx_packets.get(), 1);
    assert_eq!(
        gw.counters().peer(0).rx_packets.get(),
        0,
        "not the newcomer's"
    );

    // The peer's key changes: its SA goes (the newcomer is kept).
    let mut rekeyed = goto();
    if let IpsecAuth::Psk { psk, .. } = &mut rekeyed.auth {
        *psk = Secret::new(vec![8; 32]);
    }
    let changed = Arc::new(Plan::compile(
        &config_with(true, vec![newcomer.clone(), rekeyed]),
        3,
    ));
    let carry = changed.ipsec_carry(&after, IPSEC).unwrap();
    assert_eq!(carry.peers, [(PeerId(0), PeerId(0))]);
    gw.apply_plan(changed.clone(), now);
    let out = run(
        &mut gw,
        now,
        LAN,
        Via::DEVICE,
        &echo("10.0.0.2", "100.65.0.5", 2, false),
    );
    assert!(out.is_empty());
    assert_eq!(gw.counters().drop_count(DropReason::NoSession), 1);

    // A new identity of the gateway: the engine is replaced, nothing is kept.
    let mut renamed = config_with(true, vec![newcomer, goto()]);
    if let AttachmentKind::Ipsec(a) = &mut renamed.tenants[1].attachments[0].kind {
        a.local_id = IkeIdentity::Fqdn("gw2.ix.example".into());
    }
    let renamed = Plan::compile(&renamed, 4);
    assert_eq!(renamed.ipsec_carry(&changed, IPSEC), None);
    assert_eq!(
        Plan::compile(&config_with(true, vec![goto()]), 5).ipsec_carry(&changed, LAN),
        None,
        "not an IPsec attachment"
    );
}
