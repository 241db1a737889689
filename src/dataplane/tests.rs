//! Pipeline tests over plain attachments (no crypto): every step between decap and encap.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::buffer::{RxBatch, TxBatch, Via};
use crate::config::*;
use crate::ids::AttachmentId;
use crate::vocab::DropReason;
use crate::wire::{self, build, L4};

const AJISAI: AttachmentId = AttachmentId(0);
const MAME: AttachmentId = AttachmentId(1);
const CLAIMS: AttachmentId = AttachmentId(2);
const ISOLATED: AttachmentId = AttachmentId(3);

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn tcp(port: u16) -> PortRule {
    PortRule {
        protocol: Protocol::Tcp,
        ports: Some((port, port)),
    }
}

/// ajisai and mame both number 10.0.0.0/24; claims publishes 192.168.50.10 tcp/443; isolated
/// has no policy at all.
fn config() -> Config {
    let icmp = PortRule {
        protocol: Protocol::Icmp,
        ports: None,
    };
    let claims = Policy {
        name: "claims".into(),
        from: Source {
            tenants: vec!["ajisai".into(), "mame".into()],
            ..Source::default()
        },
        to: Destination::Services(vec!["online-claims".into()]),
        allow: vec![],
    };
    super::fuzz::config_of(
        1024,
        vec![
            super::fuzz::plain("ajisai", "10.0.0.0/24", "100.64.0.0/24"),
            super::fuzz::plain("mame", "10.0.0.0/24", "100.65.0.0/24"),
            super::fuzz::plain("claims", "192.168.50.0/24", "100.127.0.0/24"),
            super::fuzz::plain("isolated", "10.0.0.0/24", "100.66.0.0/24"),
        ],
        vec![Service {
            name: "online-claims".into(),
            tenant: "claims".into(),
            address: ip("192.168.50.10"),
            ports: vec![tcp(443)],
        }],
        vec![
            super::fuzz::tenant_policy("imaging", "ajisai", "mame", vec![tcp(104), icmp]),
            claims,
        ],
    )
}

struct Harness {
    gw: Gateway,
    rx: RxBatch,
    tx: TxBatch,
    now: Instant,
    buf: Vec<u8>,
}

impl Harness {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: Config) -> Self {
        let now = Instant::now();
        let plan = Arc::new(Plan::compile(&config, 1));
        Harness {
            gw: Gateway::new(plan, now),
            rx: RxBatch::new(8),
            tx: TxBatch::new(8),
            now,
            buf: vec![0; 2048],
        }
    }

    /// Sends one packet in on `att`; returns what came out (attachment, bytes).
    fn send(&mut self, att: AttachmentId, len: usize) -> Vec<(AttachmentId, Vec<u8>)> {
        self.rx.clear();
        self.tx.clear();
        assert!(self.rx.push(att, Via::DEVICE, &self.buf[..len]));
        self.gw.handle_batch(self.now, &mut self.rx, &mut self.tx);
        self.tx
            .iter()
            .map(|(m, b)| {
                assert_eq!(m.via, Via::DEVICE);
                (m.attachment, b.to_vec())
            })
            .collect()
    }

    fn tcp(
        &mut self,
        att: AttachmentId,
        src: &str,
        dst: &str,
        sport: u16,
        dport: u16,
        flags: u8,
    ) -> Vec<(AttachmentId, Vec<u8>)> {
        let n = build::tcp(
            &mut self.buf,
            ip(src),
            ip(dst),
            sport,
            dport,
            1,
            0,
            flags,
            Some(1460),
            b"x",
        )
        .unwrap();
        self.send(att, n)
    }

    fn udp(
        &mut self,
        att: AttachmentId,
        src: &str,
        dst: &str,
        sport: u16,
        dport: u16,
    ) -> Vec<(AttachmentId, Vec<u8>)> {
        let n = build::udp(&mut self.buf, ip(src), ip(dst), sport, dport, b"hello").unwrap();
        self.send(att, n)
    }

    /// An allowed ajisai → mame SYN whose TTL expires here; returns its length.
    fn syn_with_ttl_1(&mut self) -> usize {
        let n = build::tcp(
            &mut self.buf,
            ip("10.0.0.2"),
            ip("100.65.0.3"),
            1,
            104,
            1,
            0,
            SYN,
            None,
            b"",
        )
        .unwrap();
        edit_ipv4_header(&mut self.buf[..n], |p| p[8] = 1);
        n
    }

    /// Sends a destination-unreachable (`code`) from `src` to `dst` quoting `quoted` in on `att`.
    fn unreachable(
        &mut self,
        att: AttachmentId,
        src: &str,
        dst: &str,
        code: u8,
        quoted: &[u8],
    ) -> Vec<(AttachmentId, Vec<u8>)> {
        let n = build::icmp_error(&mut self.buf, ip(src), ip(dst), 3, code, quoted).unwrap();
        self.send(att, n)
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.gw.counters().drop_count(r)
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Changes header bytes of an IPv4 packet and recomputes its header checksum.
fn edit_ipv4_header(pkt: &mut [u8], edit: impl FnOnce(&mut [u8])) {
    edit(pkt);
    wire::ipv4::Ipv4Packet::new_unchecked(&mut pkt[..]).fill_checksum();
}

fn summary(pkt: &[u8]) -> wire::Summary {
    wire::inspect(pkt).expect("gateway emitted a malformed packet")
}

#[test]
fn allowed_flow_is_translated_both_ways() {
    let mut h = Harness::new();
    let out = h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, SYN);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, MAME);
    let s = summary(&out[0].1);
    assert_eq!(
        (s.src, s.dst, s.ttl),
        (ip("100.64.0.2"), ip("10.0.0.3"), 63)
    );

    let back = h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 40000, SYN | ACK);
    assert_eq!(back.len(), 1, "the reply of an allowed flow passes");
    assert_eq!(back[0].0, AJISAI);
    let s = summary(&back[0].1);
    assert_eq!((s.src, s.dst), (ip("100.65.0.3"), ip("10.0.0.2")));
    assert_eq!(h.gw.flow_count(), 1);
    assert_eq!(h.gw.counters().tenant(0).rx_packets.get(), 1);
    assert_eq!(h.gw.counters().tenant(0).tx_packets.get(), 1);
    assert_eq!(h.gw.counters().tenant(1).tx_packets.get(), 1);
    // The tenant pair matrix: one packet each way, inner IP bytes as forwarded.
    let c = h.gw.counters();
    let (ab, ba) = (c.pair(0, 1), c.pair(1, 0));
    assert_eq!((ab.packets.get(), ba.packets.get()), (1, 1));
    assert_eq!(ab.bytes.get(), out[0].1.len() as u64);
    assert_eq!(ba.bytes.get(), back[0].1.len() as u64);
    assert_eq!(c.pair(0, 0).packets.get(), 0);
}

#[test]
fn dropped_packets_are_in_no_tenant_pair() {
    let mut h = Harness::new();
    assert!(h.udp(AJISAI, "10.0.0.2", "100.65.0.3", 5000, 53).is_empty());
    let c = h.gw.counters();
    assert_eq!(c.tenant(0).rx_packets.get(), 1, "received");
    assert!(
        c.pairs().all(|(_, _, p)| p.packets.get() == 0),
        "not forwarded"
    );
}

#[test]
fn default_deny_counts_policy_drops() {
    let mut h = Harness::new();
    assert!(h.udp(AJISAI, "10.0.0.2", "100.65.0.3", 5000, 53).is_empty());
    assert!(
        h.tcp(MAME, "10.0.0.3", "100.64.0.2", 40000, 104, SYN)
            .is_empty(),
        "policy is directional"
    );
    assert!(h
        .tcp(AJISAI, "10.0.0.2", "100.66.0.1", 40000, 104, SYN)
        .is_empty());
    assert_eq!(h.drops(DropReason::Policy), 3);
    assert_eq!(h.gw.flow_count(), 0);
}

#[test]
fn service_policy_allows_only_its_address_and_ports() {
    let mut h = Harness::new();
    let out = h.tcp(MAME, "10.0.0.7", "100.127.0.10", 40000, 443, SYN);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, CLAIMS);
    let s = summary(&out[0].1);
    assert_eq!((s.src, s.dst), (ip("100.65.0.7"), ip("192.168.50.10")));
    assert!(h
        .tcp(MAME, "10.0.0.7", "100.127.0.10", 40000, 22, SYN)
        .is_empty());
    assert!(h
        .tcp(MAME, "10.0.0.7", "100.127.0.11", 40000, 443, SYN)
        .is_empty());
    assert_eq!(h.drops(DropReason::Policy), 2);
}

#[test]
fn mss_is_clamped_to_the_narrowest_attachment() {
    let mut h = Harness::new();
    let out = h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, SYN);
    let pkt = &out[0].1;
    // The builder puts MSS as the first option right after the 20-byte TCP header.
    let opt = &pkt[20 + 20..20 + 24];
    assert_eq!(opt[0], 2);
    assert_eq!(u16::from_be_bytes([opt[2], opt[3]]), 1460);
}

#[test]
fn spoofed_ipv6_unrouted_and_ttl_are_counted() {
    let mut h = Harness::new();
    assert!(h
        .tcp(AJISAI, "10.9.9.9", "100.65.0.3", 1, 104, SYN)
        .is_empty());
    assert_eq!(h.drops(DropReason::Spoofed), 1);

    h.buf[..40].fill(0);
    h.buf[0] = 0x60;
    assert!(h.send(AJISAI, 40).is_empty());
    assert_eq!(h.drops(DropReason::Ipv6), 1);

    assert!(h
        .tcp(AJISAI, "10.0.0.2", "100.100.0.1", 1, 104, SYN)
        .is_empty());
    assert_eq!(h.drops(DropReason::NoRoute), 1);

    let n = h.syn_with_ttl_1();
    assert!(h.send(AJISAI, n).is_empty());
    assert_eq!(h.drops(DropReason::Ttl), 1);

    assert!(h.send(AJISAI, 7).is_empty());
    assert_eq!(h.drops(DropReason::Malformed), 1);
}

#[test]
fn echo_and_its_icmp_error_pass_with_the_quoted_header_translated() {
    let mut h = Harness::new();
    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.2"),
        ip("100.65.0.3"),
        7,
        1,
        false,
        b"ping",
    )
    .unwrap();
    let out = h.send(AJISAI, n);
    assert_eq!(out.len(), 1);
    let delivered = out[0].1.clone();

    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.3"),
        ip("100.64.0.2"),
        7,
        1,
        true,
        b"ping",
    )
    .unwrap();
    let back = h.send(MAME, n);
    assert_eq!(back.len(), 1);
    assert!(matches!(
        summary(&back[0].1).l4,
        L4::IcmpEcho {
            ident: 7,
            reply: true
        }
    ));

    // A router in mame answers the delivered echo with "port unreachable" quoting it.
    let err = h.unreachable(MAME, "10.0.0.254", "100.64.0.2", 3, &delivered);
    assert_eq!(err.len(), 1);
    let s = summary(&err[0].1);
    assert_eq!((s.src, s.dst), (ip("100.65.0.254"), ip("10.0.0.2")));
    match s.l4 {
        L4::IcmpError { inner } => {
            assert_eq!((inner.src, inner.dst), (ip("10.0.0.2"), ip("100.65.0.3")));
        }
        other => panic!("expected an ICMP error, got {other:?}"),
    }

    // An error about a flow that never existed is not let through.
    let n = build::udp(&mut h.buf, ip("100.64.0.9"), ip("10.0.0.3"), 1, 2, b"").unwrap();
    let quoted = h.buf[..n].to_vec();
    assert!(h
        .unreachable(MAME, "10.0.0.254", "100.64.0.9", 3, &quoted)
        .is_empty());
    assert_eq!(h.drops(DropReason::NoFlow), 1);
}

#[test]
fn reload_reevaluates_cached_verdicts() {
    let mut h = Harness::new();
    assert_eq!(
        h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, SYN)
            .len(),
        1
    );

    let mut c = config();
    c.policies.remove(0);
    h.gw.apply_plan(Arc::new(Plan::compile(&c, 2)), h.now);
    assert!(h
        .tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, ACK)
        .is_empty());
    assert_eq!(h.drops(DropReason::Policy), 1);
    assert_eq!(
        h.gw.counters().tenant(0).rx_packets.get(),
        2,
        "counters survive the reload"
    );

    h.gw.apply_plan(Arc::new(Plan::compile(&config(), 3)), h.now);
    assert_eq!(
        h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, ACK)
            .len(),
        1
    );
}

#[test]
fn idle_flows_expire_and_replies_are_then_refused() {
    let mut h = Harness::new();
    assert_eq!(
        h.udp(AJISAI, "10.0.0.2", "100.127.0.10", 5000, 443).len(),
        0
    );
    assert_eq!(
        h.tcp(AJISAI, "10.0.0.2", "100.127.0.10", 5000, 443, SYN)
            .len(),
        1
    );
    assert_eq!(h.gw.flow_count(), 1);
    h.now += Duration::from_secs(7201);
    let mut tx = TxBatch::new(8);
    h.gw.handle_timeout(h.now, &mut tx);
    assert_eq!(h.gw.flow_count(), 0);
    assert!(h
        .tcp(CLAIMS, "192.168.50.10", "100.64.0.2", 443, 5000, ACK)
        .is_empty());
}

#[derive(Debug, Clone)]
enum Gen {
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Echo { ident: u16, reply: bool },
}

fn gen_l4() -> impl Strategy<Value = Gen> {
    prop_oneof![
        (
            any::<u16>(),
            prop::sample::select(vec![22u16, 104, 443, 8080]),
            any::<u8>()
        )
            .prop_map(|(sport, dport, flags)| Gen::Tcp {
                sport,
                dport,
                flags
            }),
        (any::<u16>(), prop::sample::select(vec![53u16, 104, 443]))
            .prop_map(|(sport, dport)| Gen::Udp { sport, dport }),
        (0u16..4, any::<bool>()).prop_map(|(ident, reply)| Gen::Echo { ident, reply }),
    ]
}

fn exchange_dst() -> impl Strategy<Value = Ipv4Addr> {
    (
        prop::sample::select(vec![
            [100u8, 64],
            [100, 65],
            [100, 66],
            [100, 127],
            [100, 99],
        ]),
        0u8..16,
    )
        .prop_map(|(p, h)| Ipv4Addr::new(p[0], p[1], 0, h))
}

fn build_packet(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, g: &Gen) -> usize {
    match *g {
        Gen::Tcp {
            sport,
            dport,
            flags,
        } => build::tcp(buf, src, dst, sport, dport, 1, 1, flags, None, b"p").unwrap(),
        Gen::Udp { sport, dport } => build::udp(buf, src, dst, sport, dport, b"p").unwrap(),
        Gen::Echo { ident, reply } => {
            build::icmp_echo(buf, src, dst, ident, 1, reply, b"p").unwrap()
        }
    }
}

proptest! {
    /// Tenant `isolated` is named by no policy: whatever the others send, in whatever order,
    /// nothing reaches it, and nothing it sends reaches anyone.
    #[test]
    fn no_policy_no_traffic(packets in prop::collection::vec(
        (0u16..4, 0u8..16, exchange_dst(), gen_l4()), 1..60)
    ) {
        let mut h = Harness::new();
        for (att, host, dst, g) in packets {
            let src = if att == 2 { Ipv4Addr::new(192, 168, 50, host) } else { Ipv4Addr::new(10, 0, 0, host) };
            let n = build_packet(&mut h.buf, src, dst, &g);
            let out = h.send(AttachmentId(att), n);
            for (egress, pkt) in &out {
                prop_assert_ne!(*egress, ISOLATED);
                prop_assert_ne!(AttachmentId(att), ISOLATED);
                let s = summary(pkt);
                prop_assert!(!(s.src.octets()[0] == 100 && s.src.octets()[1] == 66));
            }
        }
    }

    /// A source outside what the attachment routes never passes, and is counted.
    #[test]
    fn spoofed_sources_never_pass(src in any::<u32>(), dst in exchange_dst(), g in gen_l4()) {
        let src = Ipv4Addr::from(src);
        prop_assume!(!net("10.0.0.0/24").contains(src));
        let mut h = Harness::new();
        let n = build_packet(&mut h.buf, src, dst, &g);
        prop_assert!(h.send(AJISAI, n).is_empty());
        prop_assert_eq!(h.drops(DropReason::Spoofed), 1);
    }
}

fn set_dont_fragment(pkt: &mut [u8]) {
    edit_ipv4_header(pkt, |p| p[6] |= 0x40);
}

#[test]
fn oversized_df_packet_gets_frag_needed_back() {
    let mut c = config();
    if let AttachmentKind::Plain(p) = &mut c.tenants[1].attachments[0].kind {
        p.mtu = 1000;
    }
    let mut h = Harness::new();
    h.gw.apply_plan(Arc::new(Plan::compile(&c, 2)), h.now);

    let payload = vec![0x5a; 1200];
    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.2"),
        ip("100.65.0.3"),
        9,
        1,
        false,
        &payload,
    )
    .unwrap();
    let original = h.buf[..n].to_vec();
    assert!(
        h.send(AJISAI, n).is_empty(),
        "without DF the packet is only dropped"
    );
    assert_eq!(h.drops(DropReason::TooBig), 1);

    h.buf[..n].copy_from_slice(&original);
    set_dont_fragment(&mut h.buf[..n]);
    let sent = h.buf[..n].to_vec();
    let out = h.send(AJISAI, n);
    assert_eq!(h.drops(DropReason::TooBig), 2);
    assert_eq!(out.len(), 1, "the sender is told");
    assert_eq!(out[0].0, AJISAI);
    let err = &out[0].1;
    let s = summary(err);
    assert_eq!((s.src, s.dst), (ip("100.65.0.3"), ip("10.0.0.2")));
    assert!(err.len() <= 576);
    let icmp = &err[20..];
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1000, "next-hop MTU");
    assert_eq!(
        &icmp[8..8 + 28],
        &sent[..28],
        "quotes the packet as the sender sent it"
    );
    assert_eq!(wire::checksum::checksum(icmp), 0, "ICMP checksum valid");

    // A policy-denied oversized packet gets no error: admission comes first.
    let n = build::udp(
        &mut h.buf,
        ip("10.0.0.2"),
        ip("100.65.0.3"),
        1,
        53,
        &payload,
    )
    .unwrap();
    set_dont_fragment(&mut h.buf[..n]);
    assert!(h.send(AJISAI, n).is_empty());
    assert_eq!(h.drops(DropReason::Policy), 1);
}

fn record(att: u8, flags: u8, pkt: &[u8]) -> Vec<u8> {
    let mut r = vec![att | flags, (pkt.len() >> 8) as u8, pkt.len() as u8];
    r.extend_from_slice(pkt);
    r
}

proptest! {
    /// Whatever bytes arrive, on any attachment, nothing panics and every packet is forwarded
    /// or counted.
    #[test]
    fn pipeline_accounts_for_garbage(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        super::fuzz::pipeline(&data);
    }

    /// Well-formed traffic between the fuzz tenants, with bytes flipped, also balances.
    #[test]
    fn pipeline_accounts_for_mutated_traffic(
        packets in prop::collection::vec((0u8..4, 0u8..16, exchange_dst(), gen_l4(), any::<u8>(), any::<u16>(), 0usize..1600), 1..40)
    ) {
        let mut data = Vec::new();
        let mut buf = vec![0u8; 2048];
        for (att, host, dst, g, flags, flip, pad) in packets {
            let src = match att { 2 => Ipv4Addr::new(192, 168, 50, host), 3 => Ipv4Addr::new(10, 9, 0, host), _ => Ipv4Addr::new(10, 0, 0, host) };
            let mut n = build_packet(&mut buf, src, dst, &g);
            if pad > 0 && n + pad <= buf.len() && flip % 3 == 0 {
                n += pad;
            }
            if flip % 5 == 0 {
                let at = usize::from(flip) % n;
                buf[at] ^= (flip >> 8) as u8 | 1;
            }
            data.extend(record(att, flags & 0xc0, &buf[..n]));
        }
        super::fuzz::pipeline(&data);
    }
}

#[test]
fn icmp_errors_only_go_back_to_the_quoted_source_through_its_tunnel() {
    let mut h = Harness::new();
    let delivered = h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, SYN)[0]
        .1
        .clone();

    // Addressed to another ajisai host than the flow's opener: refused.
    assert!(h
        .unreachable(MAME, "10.0.0.3", "100.64.0.99", 1, &delivered)
        .is_empty());
    assert_eq!(h.drops(DropReason::Policy), 1);

    // Quoting a flow that did not go through the tunnel the error comes from: refused.
    assert!(h
        .unreachable(CLAIMS, "192.168.50.1", "100.64.0.2", 1, &delivered)
        .is_empty());
    assert_eq!(h.drops(DropReason::Policy), 2);

    // Larger than any ICMP error a router sends [RFC 1812 § 4.3.2.3]: malformed.
    let mut big = delivered.clone();
    big.resize(700, 0);
    assert!(h
        .unreachable(MAME, "10.0.0.3", "100.64.0.2", 1, &big)
        .is_empty());
    assert_eq!(h.drops(DropReason::Malformed), 1);

    // The real thing passes.
    assert_eq!(
        h.unreachable(MAME, "10.0.0.3", "100.64.0.2", 1, &delivered)
            .len(),
        1
    );
}

#[test]
fn unroutable_packets_take_no_flow_entry() {
    let mut h = Harness::new();
    let n = h.syn_with_ttl_1();
    assert!(h.send(AJISAI, n).is_empty());
    assert_eq!(h.drops(DropReason::Ttl), 1);
    assert_eq!(
        h.gw.flow_count(),
        0,
        "a packet that never left holds no flow"
    );
}

#[test]
fn changing_limits_on_reload_keeps_established_flows() {
    let mut h = Harness::new();
    assert_eq!(
        h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 40000, 104, SYN)
            .len(),
        1
    );
    assert_eq!(
        h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 40000, SYN | ACK)
            .len(),
        1
    );

    let mut c = config();
    c.dataplane.udp_idle_timeout = Duration::from_secs(30);
    c.dataplane.flow_table_size = 2048;
    h.gw.apply_plan(Arc::new(Plan::compile(&c, 2)), h.now);
    assert_eq!(h.gw.flow_count(), 1);
    assert_eq!(
        h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 40000, ACK).len(),
        1,
        "the reply still passes"
    );
    assert_eq!(h.drops(DropReason::Policy), 0);
}

/// The test configuration with quotas larger than the table: only early drop protects it.
fn config_without_quotas() -> Config {
    let mut c = config();
    c.dataplane.max_flows_per_tenant = FlowLimit::Flows(1 << 20);
    c.dataplane.max_flows_per_facility = FlowLimit::Flows(1 << 20);
    c
}

/// A TCP connection ajisai 10.0.0.2:`port` → mame 100.65.0.3:104 through its handshake.
fn establish(h: &mut Harness, port: u16) {
    for (att, src, dst, sp, dp, flags) in [
        (AJISAI, "10.0.0.2", "100.65.0.3", port, 104, SYN),
        (MAME, "10.0.0.3", "100.64.0.2", 104, port, SYN | ACK),
        (AJISAI, "10.0.0.2", "100.65.0.3", port, 104, ACK),
    ] {
        assert_eq!(h.tcp(att, src, dst, sp, dp, flags).len(), 1);
    }
}

#[test]
fn a_flood_of_unanswered_flows_cannot_lock_out_other_tenants() {
    let mut h = Harness::with(config_without_quotas());
    establish(&mut h, 1);
    for port in 2..2050u16 {
        assert_eq!(
            h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", port, 104, ACK)
                .len(),
            1,
            "{port}"
        );
    }
    assert_eq!(h.drops(DropReason::FlowTableFull), 0);
    // Another tenant still opens its flow, and the answered one lives on.
    assert_eq!(
        h.tcp(MAME, "10.0.0.7", "100.127.0.10", 5, 443, SYN).len(),
        1
    );
    assert_eq!(h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 1, ACK).len(), 1);
    assert_eq!(h.drops(DropReason::Policy), 0);
}

#[test]
fn icmp_errors_cannot_make_an_openers_flows_look_answered() {
    let mut h = Harness::with(config_without_quotas());
    for port in 1..2049u16 {
        assert_eq!(
            h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", port, 104, SYN)
                .len(),
            1
        );
        // ajisai forges an error quoting a reply mame never sent.
        let n = build::tcp(
            &mut h.buf,
            ip("100.65.0.3"),
            ip("10.0.0.2"),
            104,
            port,
            1,
            1,
            SYN | ACK,
            None,
            b"",
        )
        .unwrap();
        let quoted = h.buf[..n].to_vec();
        let n =
            build::icmp_error(&mut h.buf, ip("10.0.0.2"), ip("100.65.0.3"), 3, 3, &quoted).unwrap();
        h.send(AJISAI, n);
    }
    assert_eq!(
        h.drops(DropReason::FlowTableFull),
        0,
        "unanswered flows are evicted, never refused"
    );
    assert_eq!(
        h.tcp(MAME, "10.0.0.7", "100.127.0.10", 5, 443, SYN).len(),
        1,
        "another tenant still gets a flow"
    );
}

#[test]
fn a_packet_the_tunnel_refuses_takes_no_flow() {
    let mut c = super::fuzz::fuzz_config();
    if let AttachmentKind::WireGuard(wg) = &mut c.tenants[3].attachments[0].kind {
        wg.peers[0].endpoint = None;
    }
    let now = Instant::now();
    let mut gw = Gateway::new(Arc::new(Plan::compile(&c, 1)), now);
    let (mut rx, mut tx) = (RxBatch::new(4), TxBatch::new(4));
    let mut buf = vec![0u8; 256];
    let n = build::udp(&mut buf, ip("10.0.0.2"), ip("100.66.0.5"), 1, 2, b"x").unwrap();
    assert!(rx.push(AttachmentId(0), Via::DEVICE, &buf[..n]));
    gw.handle_batch(now, &mut rx, &mut tx);
    assert!(tx.is_empty());
    assert_eq!(gw.counters().drop_count(DropReason::NoEndpoint), 1);
    assert_eq!(gw.flow_count(), 0, "the refused packet left no flow behind");
    assert_eq!(
        gw.counters().tenant(3).tx_packets.get(),
        0,
        "nor a tx count"
    );
}

#[test]
fn a_tenant_at_its_quota_only_hurts_itself() {
    // A table of 1024: each tenant may hold 256 flows (25 %).
    let mut h = Harness::new();
    establish(&mut h, 1);
    let mut passed = 0;
    for port in 2..2050u16 {
        passed += h
            .tcp(AJISAI, "10.0.0.2", "100.65.0.3", port, 104, SYN)
            .len();
    }
    assert_eq!(passed, 255, "the established flow holds one of the 256");
    let refused = 2048 - 255;
    assert_eq!(h.drops(DropReason::TenantFlowQuota), refused);
    assert_eq!(h.drops(DropReason::FlowTableFull), 0);
    // The per-tenant gauges follow at the next timer.
    h.now += Duration::from_secs(1);
    h.gw.handle_timeout(h.now, &mut h.tx);
    let c = h.gw.counters().clone();
    assert_eq!(c.tenant_flows(0).quota_drops.get(), refused);
    assert_eq!(c.tenant_flows(0).get(), 256);
    assert_eq!(c.tenant_flows(1).quota_drops.get(), 0);
    // mame opens new flows and ajisai's established connection lives on.
    assert_eq!(
        h.tcp(MAME, "10.0.0.7", "100.127.0.10", 5, 443, SYN).len(),
        1
    );
    assert_eq!(h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 1, ACK).len(), 1);
    h.now += Duration::from_secs(1);
    h.gw.handle_timeout(h.now, &mut h.tx);
    assert_eq!(h.gw.counters().tenant_flows(1).get(), 1);
    // Once the half-open attempts have died, ajisai opens flows again.
    h.now += Duration::from_secs(11);
    assert_eq!(
        h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 9999, 104, SYN)
            .len(),
        1
    );
}

#[test]
fn packets_that_cannot_open_a_flow_are_no_flow() {
    let mut h = Harness::new();
    const RST: u8 = 0x04;
    const FIN: u8 = 0x01;
    for flags in [SYN | ACK, RST, RST | ACK, FIN | ACK, 0] {
        assert!(h
            .tcp(AJISAI, "10.0.0.2", "100.65.0.3", 7, 104, flags)
            .is_empty());
    }
    assert_eq!(h.drops(DropReason::NoFlow), 5);
    // An unsolicited echo reply opens nothing; the request it would answer then passes as new.
    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.2"),
        ip("100.65.0.3"),
        9,
        1,
        true,
        b"x",
    )
    .unwrap();
    assert!(h.send(AJISAI, n).is_empty());
    assert_eq!(h.drops(DropReason::NoFlow), 6);
    assert_eq!(h.gw.flow_count(), 0);
    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.2"),
        ip("100.65.0.3"),
        9,
        1,
        false,
        b"x",
    )
    .unwrap();
    assert_eq!(h.send(AJISAI, n).len(), 1);
    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.3"),
        ip("100.64.0.2"),
        9,
        1,
        true,
        b"x",
    )
    .unwrap();
    assert_eq!(h.send(MAME, n).len(), 1, "the reply to it passes");
    assert_eq!(h.drops(DropReason::Policy), 0);
}

#[test]
fn a_connection_the_table_never_saw_is_picked_up_mid_stream() {
    let mut h = Harness::new();
    // After a restart: the client's next segment, then the server's answer.
    assert_eq!(
        h.tcp(AJISAI, "10.0.0.2", "100.65.0.3", 4000, 104, ACK)
            .len(),
        1
    );
    assert_eq!(
        h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 4000, ACK).len(),
        1
    );
    // Established now: it outlives the transient timeout.
    h.now += Duration::from_secs(3600);
    assert_eq!(
        h.tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 4000, ACK).len(),
        1
    );
    // The server's segment alone cannot pick a connection up: no policy lets mame open it.
    assert!(h
        .tcp(MAME, "10.0.0.3", "100.64.0.2", 104, 4001, ACK)
        .is_empty());
    assert_eq!(h.drops(DropReason::Policy), 1);
}

/// `config()` with mame's plain attachment routing `routes` and opting in to directed
/// broadcasts or not.
fn mame_routes(routes: &[&str], directed_broadcast: bool) -> Config {
    let mut c = config();
    let AttachmentKind::Plain(p) = &mut c.tenants[1].attachments[0].kind else {
        panic!("mame-lan is plain")
    };
    p.routes = routes.iter().map(|r| net(r)).collect();
    p.directed_broadcast = directed_broadcast;
    c
}

/// Sends an allowed ajisai → mame SYN to each mame exchange address of `hosts`; returns
/// which of them came out, in order.
fn delivered(h: &mut Harness, hosts: &[&str]) -> Vec<bool> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, dst)| {
            let out = h.tcp(AJISAI, "10.0.0.2", dst, 1000 + i as u16, 104, SYN);
            out.len() == 1 && out[0].0 == MAME
        })
        .collect()
}

#[test]
fn directed_broadcasts_to_a_routed_prefix_are_dropped() {
    let mut h = Harness::new();
    // mame routes 10.0.0.0/24: 100.65.0.0 and 100.65.0.255 are its network and broadcast.
    assert_eq!(
        delivered(
            &mut h,
            &["100.65.0.0", "100.65.0.255", "100.65.0.1", "100.65.0.254"]
        ),
        [false, false, true, true]
    );
    assert_eq!(h.drops(DropReason::DirectedBroadcast), 2);
    assert_eq!(h.gw.flow_count(), 2, "a dropped broadcast takes no flow");

    // Echo requests too (a smurf amplifier is the classic abuse [RFC 2644]).
    let n = build::icmp_echo(
        &mut h.buf,
        ip("10.0.0.2"),
        ip("100.65.0.255"),
        3,
        1,
        false,
        b"",
    )
    .unwrap();
    assert!(h.send(AJISAI, n).is_empty());
    assert_eq!(h.drops(DropReason::DirectedBroadcast), 3);
}

#[test]
fn the_matched_prefix_decides_and_31_and_32_have_no_broadcast() {
    let routes = [
        "10.0.0.0/25",
        "10.0.0.128/30",
        "10.0.0.132/31",
        "10.0.0.134/32",
    ];
    let mut h = Harness::with(mame_routes(&routes, false));
    let hosts = [
        ("100.65.0.0", false),   // /25 network
        ("100.65.0.127", false), // /25 broadcast
        ("100.65.0.64", true),
        ("100.65.0.128", false), // /30 network
        ("100.65.0.129", true),
        ("100.65.0.130", true),
        ("100.65.0.131", false), // /30 broadcast
        ("100.65.0.132", true),  // both hosts of a /31 [RFC 3021]
        ("100.65.0.133", true),
        ("100.65.0.134", true),  // a /32
        ("100.65.0.255", false), // routed by nothing
    ];
    let dsts: Vec<&str> = hosts.iter().map(|(d, _)| *d).collect();
    let want: Vec<bool> = hosts.iter().map(|(_, ok)| *ok).collect();
    assert_eq!(delivered(&mut h, &dsts), want);
    assert_eq!(h.drops(DropReason::DirectedBroadcast), 4);
    assert_eq!(h.drops(DropReason::NoRoute), 1);
}

#[test]
fn a_route_that_opts_in_passes_directed_broadcasts() {
    let mut h = Harness::with(mame_routes(&["10.0.0.0/24"], true));
    let out = h.tcp(AJISAI, "10.0.0.2", "100.65.0.255", 1, 104, SYN);
    assert_eq!(out.len(), 1);
    assert_eq!(summary(&out[0].1).dst, ip("10.0.0.255"));
    assert_eq!(
        delivered(&mut h, &["100.65.0.0", "100.65.0.9"]),
        [true, true]
    );
    assert_eq!(h.drops(DropReason::DirectedBroadcast), 0);
}

#[test]
fn a_wireguard_peer_opts_in_for_its_allowed_ips() {
    let mut c = super::fuzz::fuzz_config();
    let plan = Plan::compile(&c, 1);
    let peer = Route::Peer(crate::ids::PeerId(0));
    let (network, broadcast, host) = (ip("10.9.0.0"), ip("10.9.0.255"), ip("10.9.0.7"));
    assert!(plan.refuses_directed_broadcast(network, 24, peer));
    assert!(plan.refuses_directed_broadcast(broadcast, 24, peer));
    assert!(!plan.refuses_directed_broadcast(host, 24, peer));
    let AttachmentKind::WireGuard(wg) = &mut c.tenants[3].attachments[0].kind else {
        panic!("w-wg is a WireGuard attachment")
    };
    wg.peers[0].directed_broadcast = true;
    let plan = Plan::compile(&c, 2);
    assert!(!plan.refuses_directed_broadcast(network, 24, peer));
    assert!(!plan.refuses_directed_broadcast(broadcast, 24, peer));
}

#[test]
fn an_echo_request_from_the_responders_side_is_asked_of_the_policy() {
    let mut h = Harness::new();
    let echo = |h: &mut Harness, src: &str, dst: &str, reply: bool| {
        build::icmp_echo(&mut h.buf, ip(src), ip(dst), 77, 1, reply, b"x").unwrap()
    };
    let n = echo(&mut h, "10.0.0.2", "100.65.0.3", false);
    assert_eq!(h.send(AJISAI, n).len(), 1, "ajisai may ping mame");
    // mame pings back with the same identifier: no policy lets mame ping ajisai.
    let n = echo(&mut h, "10.0.0.3", "100.64.0.2", false);
    assert!(h.send(MAME, n).is_empty());
    assert_eq!(h.drops(DropReason::Policy), 1);
    // Its reply passes.
    let n = echo(&mut h, "10.0.0.3", "100.64.0.2", true);
    assert_eq!(h.send(MAME, n).len(), 1);
}

#[test]
fn a_reload_counts_flows_again_by_the_new_numbering() {
    let mut h = Harness::new();
    establish(&mut h, 1);
    assert_eq!(
        h.tcp(MAME, "10.0.0.7", "100.127.0.10", 5, 443, SYN).len(),
        1
    );
    let flows_of = |h: &mut Harness, tenant: &str| {
        h.now += Duration::from_secs(1);
        h.gw.handle_timeout(h.now, &mut h.tx);
        h.gw.counters()
            .tenants_flows()
            .find(|(name, _)| *name == tenant)
            .map(|(_, f)| f.get())
    };
    assert_eq!(flows_of(&mut h, "ajisai"), Some(1));

    // The same tenants in the opposite order: every flow keeps its opener's tenant.
    let mut c = config();
    c.tenants.reverse();
    h.gw.apply_plan(Arc::new(Plan::compile(&c, 2)), h.now);
    assert_eq!(h.gw.flow_count(), 2);
    assert_eq!(flows_of(&mut h, "ajisai"), Some(1));
    assert_eq!(flows_of(&mut h, "mame"), Some(1));
    assert_eq!(flows_of(&mut h, "claims"), Some(0));

    // ajisai moves to another exchange prefix: its flow's opener is in no tenant any more.
    let mut c = config();
    c.tenants[0].networks[0].exchange = net("100.68.0.0/24");
    h.gw.apply_plan(Arc::new(Plan::compile(&c, 3)), h.now);
    assert_eq!(h.gw.flow_count(), 1, "the orphaned flow is removed");
    assert_eq!(flows_of(&mut h, "ajisai"), Some(0));
    assert_eq!(flows_of(&mut h, "mame"), Some(1));
}
