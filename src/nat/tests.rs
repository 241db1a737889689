use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use proptest::prelude::*;

use super::fuzz::{inspect_translate, swap_addresses, Checks};
use super::*;
use crate::wire::{build, checksum, inspect, L4};

fn net(s: &str) -> Ipv4Network {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Two tenants with the same internal range, as in the design's example.
fn tenants() -> (TenantMap, TenantMap) {
    let a = TenantMap::new(&[
        Network {
            internal: net("10.0.0.0/16"),
            exchange: net("100.64.0.0/16"),
        },
        Network {
            internal: net("172.16.0.0/24"),
            exchange: net("100.127.1.0/24"),
        },
    ]);
    let b = TenantMap::new(&[Network {
        internal: net("10.0.0.0/16"),
        exchange: net("100.65.0.0/16"),
    }]);
    (a, b)
}

fn ipv4(p: &[u8]) -> Ipv4Packet<&[u8]> {
    Ipv4Packet::new_checked(p).unwrap()
}

#[test]
fn maps_pick_the_prefix_holding_the_address() {
    let (a, _) = tenants();
    assert_eq!(
        a.to_exchange(InternalV4(ip("10.0.3.4"))),
        Some(ExchangeV4(ip("100.64.3.4")))
    );
    assert_eq!(
        a.to_exchange(InternalV4(ip("172.16.0.9"))),
        Some(ExchangeV4(ip("100.127.1.9")))
    );
    assert_eq!(
        a.to_internal(ExchangeV4(ip("100.127.1.9"))),
        Some(InternalV4(ip("172.16.0.9")))
    );
    assert_eq!(a.to_exchange(InternalV4(ip("10.1.0.1"))), None);
    assert_eq!(a.to_internal(ExchangeV4(ip("100.65.0.1"))), None);
    assert_eq!(
        remap(ip("10.0.200.17"), net("10.0.0.0/16"), net("100.65.0.0/16")),
        ip("100.65.200.17")
    );
}

#[test]
fn udp_is_translated_both_ways_with_valid_checksums() {
    let (a, b) = tenants();
    let mut buf = [0u8; 128];
    let n = build::udp(&mut buf, ip("10.0.1.5"), ip("100.65.20.7"), 4000, 53, b"q").unwrap();
    let p = &mut buf[..n];
    translate(p, &a, &b, None).unwrap();
    let h = ipv4(p);
    assert_eq!(
        (h.src_addr(), h.dst_addr()),
        (ip("100.64.1.5"), ip("10.0.20.7"))
    );
    assert_eq!(h.ttl(), 63);
    assert!(Checks::of(p).all_ok());
    assert_eq!(Checks::of(p).l4, Some(true));
    let before = p.to_vec();
    assert!(
        UdpPacket::new_checked(ipv4(&before).payload())
            .unwrap()
            .checksum()
            != 0
    );
}

#[test]
fn ttl_one_or_zero_is_dropped_and_two_passes() {
    let (a, b) = tenants();
    let mut buf = [0u8; 128];
    let n = build::udp(&mut buf, ip("10.0.1.5"), ip("100.65.20.7"), 1, 2, b"").unwrap();
    for (ttl, expect) in [(0, Err(Error::Ttl)), (1, Err(Error::Ttl)), (2, Ok(()))] {
        let mut p = buf[..n].to_vec();
        let mut h = Ipv4Packet::new_unchecked(&mut p[..]);
        h.set_ttl(ttl);
        h.fill_checksum();
        let orig = p.clone();
        assert_eq!(translate(&mut p, &a, &b, None), expect, "ttl {ttl}");
        if expect.is_ok() {
            assert_eq!(ipv4(&p).ttl(), 1);
            assert!(Checks::of(&p).all_ok());
        } else {
            assert_eq!(p, orig, "a dropped packet is left unchanged");
        }
    }
}

#[test]
fn addresses_outside_the_tenants_are_no_route() {
    let (a, b) = tenants();
    let mut buf = [0u8; 128];
    for (src, dst) in [("10.9.0.1", "100.65.0.1"), ("10.0.0.1", "100.64.0.1")] {
        let n = build::udp(&mut buf, ip(src), ip(dst), 1, 2, b"x").unwrap();
        let orig = buf[..n].to_vec();
        assert_eq!(translate(&mut buf[..n], &a, &b, None), Err(Error::Unmapped));
        assert_eq!(&buf[..n], &orig[..]);
    }
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let (a, b) = tenants();
    let mut buf = [0u8; 128];
    let n = build::udp(&mut buf, ip("10.0.1.5"), ip("100.65.20.7"), 7, 9, b"abc").unwrap();
    buf[26..28].copy_from_slice(&[0, 0]);
    translate(&mut buf[..n], &a, &b, None).unwrap();
    assert_eq!(&buf[26..28], &[0, 0]);
    assert!(ipv4(&buf[..n]).verify_checksum());
}

#[test]
fn udp_checksum_that_becomes_zero_is_sent_as_ffff() {
    let (a, b) = tenants();
    let (src, dst) = (ip("10.0.1.5"), ip("100.65.20.7"));
    let (new_src, new_dst) = (ip("100.64.1.5"), ip("10.0.20.7"));
    // With this payload word the translated datagram's words sum to 0xFFFF.
    let mut probe = [0u8; 64];
    let n = build::udp(&mut probe, new_src, new_dst, 7, 9, &[0, 0]).unwrap();
    let mut seg = probe[20..n].to_vec();
    seg[6..8].copy_from_slice(&[0, 0]);
    let word = checksum::transport(new_src, new_dst, PROTO_UDP, &seg);

    let mut buf = [0u8; 64];
    let n = build::udp(&mut buf, src, dst, 7, 9, &word.to_be_bytes()).unwrap();
    translate(&mut buf[..n], &a, &b, None).unwrap();
    let h = ipv4(&buf[..n]);
    let u = UdpPacket::new_checked(h.payload()).unwrap();
    assert_eq!(u.checksum(), 0xffff);
    assert!(u.verify_checksum(new_src, new_dst));
}

fn syn(buf: &mut [u8], flags: u8, mss: Option<u16>) -> usize {
    build::tcp(
        buf,
        ip("10.0.1.5"),
        ip("100.65.20.7"),
        40000,
        443,
        1,
        0,
        flags,
        mss,
        b"",
    )
    .unwrap()
}

fn mss_of(p: &[u8]) -> Option<u16> {
    TcpPacket::new_checked(ipv4(p).payload()).unwrap().mss()
}

#[test]
fn mss_clamp() {
    let (a, b) = tenants();
    let mut buf = [0u8; 128];
    let cases = [
        (tcp::FLAG_SYN, Some(1460), Some(1380), Some(1380)),
        (
            tcp::FLAG_SYN | tcp::FLAG_ACK,
            Some(1460),
            Some(1380),
            Some(1380),
        ),
        (tcp::FLAG_SYN, Some(1300), Some(1380), Some(1300)),
        (tcp::FLAG_SYN, Some(1460), None, Some(1460)),
        (tcp::FLAG_ACK, Some(1460), Some(1380), Some(1460)),
        (tcp::FLAG_SYN, None, Some(1380), None),
    ];
    for (flags, mss, clamp, expect) in cases {
        let n = syn(&mut buf, flags, mss);
        translate(&mut buf[..n], &a, &b, clamp).unwrap();
        assert_eq!(mss_of(&buf[..n]), expect, "{flags:#x} {mss:?} {clamp:?}");
        assert!(Checks::of(&buf[..n]).all_ok());
        assert_eq!(Checks::of(&buf[..n]).l4, Some(true));
    }
}

#[test]
fn mss_clamp_at_an_odd_offset_keeps_the_checksum_right() {
    let (a, b) = tenants();
    let (src, dst) = (ip("10.0.1.5"), ip("100.65.20.7"));
    let mut buf = [0u8; 128];
    let n = build::tcp(&mut buf, src, dst, 1, 2, 0, 0, tcp::FLAG_SYN, None, &[0; 8]).unwrap();
    // Rewrite as a 28-byte header: NOP, MSS 1460, NOP NOP NOP.
    let mut t = TcpPacket::new_unchecked(&mut buf[20..n]);
    t.set_header_len(28);
    t.options_mut()
        .copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 1]);
    t.fill_checksum(src, dst);
    assert!(t.mss_value_offsets().eq([23]));
    translate(&mut buf[..n], &a, &b, Some(1380)).unwrap();
    assert_eq!(mss_of(&buf[..n]), Some(1380));
    assert_eq!(Checks::of(&buf[..n]).l4, Some(true));
}

/// A SYN (or `flags`) from 10.0.1.5 to 100.65.20.7 whose TCP options are `options` (a
/// multiple of 4 bytes), with a correct checksum and 5 bytes of payload.
fn segment_with_options(buf: &mut [u8], flags: u8, options: &[u8]) -> usize {
    let (src, dst) = (ip("10.0.1.5"), ip("100.65.20.7"));
    let payload = [0x5a; 5];
    let mut data = [0u8; 45];
    data[..payload.len() + options.len()][options.len()..].copy_from_slice(&payload);
    let n = build::tcp(
        buf,
        src,
        dst,
        40000,
        443,
        1,
        0,
        flags,
        None,
        &data[..options.len() + payload.len()],
    )
    .unwrap();
    let mut t = TcpPacket::new_unchecked(&mut buf[20..n]);
    t.set_header_len(20 + options.len());
    t.options_mut().copy_from_slice(options);
    t.fill_checksum(src, dst);
    n
}

/// The values of every MSS option, and whether the TCP checksum equals a recomputation.
fn mss_values_and_checksum(p: &[u8]) -> (Vec<u16>, bool) {
    let h = ipv4(p);
    let t = TcpPacket::new_checked(h.payload()).unwrap();
    let values = t
        .mss_value_offsets()
        .map(|at| u16::from_be_bytes([h.payload()[at], h.payload()[at + 1]]))
        .collect();
    let mut copy = h.payload().to_vec();
    let mut c = TcpPacket::new_unchecked(&mut copy[..]);
    c.fill_checksum(h.src_addr(), h.dst_addr());
    (values, c.checksum() == t.checksum())
}

#[test]
fn every_mss_option_of_a_syn_is_clamped() {
    let (a, b) = tenants();
    let mut buf = [0u8; 160];
    // (options, offsets of the MSS values in the segment, MSS values before).
    let cases: [(&[u8], &[usize], &[u16]); 6] = [
        (
            &[2, 4, 0x05, 0xb4, 2, 4, 0x23, 0x28],
            &[22, 26],
            &[1460, 9000],
        ),
        (
            &[1, 2, 4, 0x05, 0xb4, 2, 4, 0xff, 0xff, 1, 1, 1],
            &[23, 27],
            &[1460, 65535],
        ),
        // The second one already below the clamps but the last.
        (
            &[2, 4, 0x05, 0xb4, 1, 2, 4, 0x01, 0x00, 0, 0, 0],
            &[22, 27],
            &[1460, 256],
        ),
        // A window scale between the second and the third.
        (
            &[
                1, 2, 4, 0x05, 0xb4, 2, 4, 0x05, 0xdc, 3, 3, 7, 2, 4, 0x21, 0x34, 0, 0, 0, 0,
            ],
            &[23, 27, 34],
            &[1460, 1500, 8500],
        ),
        (
            &[
                1, 2, 4, 0x05, 0xb4, 1, 1, 2, 4, 0x05, 0xdc, 1, 2, 4, 0x21, 0x34,
            ],
            &[23, 29, 34],
            &[1460, 1500, 8500],
        ),
        // Three in a row, then SACK permitted.
        (
            &[
                2, 4, 0x05, 0xb4, 2, 4, 0x05, 0xb4, 2, 4, 0x05, 0xb4, 4, 2, 1, 1,
            ],
            &[22, 26, 30],
            &[1460, 1460, 1460],
        ),
    ];
    for (options, offsets, before) in cases {
        for clamp in [1380u16, 1460, 100] {
            let n = segment_with_options(&mut buf, tcp::FLAG_SYN, options);
            let seg = TcpPacket::new_checked(&buf[20..n]).unwrap();
            assert!(seg.mss_value_offsets().eq(offsets.iter().copied()));
            let (values, ok) = mss_values_and_checksum(&buf[..n]);
            assert_eq!((values.as_slice(), ok), (before, true), "{options:?}");
            translate(&mut buf[..n], &a, &b, Some(clamp)).unwrap();
            let (values, ok) = mss_values_and_checksum(&buf[..n]);
            let want: Vec<u16> = before.iter().map(|&v| v.min(clamp)).collect();
            assert_eq!(values, want, "{options:?} clamp {clamp}");
            assert!(ok, "checksum after clamping {options:?} to {clamp}");
            assert!(Checks::of(&buf[..n]).all_ok());
        }
    }
    // Not a SYN: nothing is clamped.
    let n = segment_with_options(&mut buf, tcp::FLAG_ACK, cases[3].0);
    translate(&mut buf[..n], &a, &b, Some(1000)).unwrap();
    assert_eq!(
        mss_values_and_checksum(&buf[..n]),
        (vec![1460, 1500, 8500], true)
    );
}

#[test]
fn echo_keeps_ident_and_checksum() {
    let (a, b) = tenants();
    let mut buf = [0u8; 128];
    let n = build::icmp_echo(
        &mut buf,
        ip("10.0.1.5"),
        ip("100.65.20.7"),
        77,
        5,
        false,
        b"hi",
    )
    .unwrap();
    let icmp_before = buf[20..n].to_vec();
    translate(&mut buf[..n], &a, &b, None).unwrap();
    assert_eq!(&buf[20..n], &icmp_before[..]);
    let s = inspect(&buf[..n]).unwrap();
    assert_eq!(
        s.l4,
        L4::IcmpEcho {
            ident: 77,
            reply: false
        }
    );
    assert_eq!((s.src, s.dst), (ip("100.64.1.5"), ip("10.0.20.7")));
    assert!(Checks::of(&buf[..n]).all_ok());
}

/// A host of B (10.0.20.7, exchange 100.65.20.7) sent UDP to A's 100.64.1.5; a router of A
/// (10.0.0.1) answers with an error, which crosses back from A to B.
#[test]
fn icmp_error_inner_header_is_translated_the_opposite_way() {
    let (a, b) = tenants();
    let mut inner = [0u8; 64];
    let ni = build::udp(
        &mut inner,
        ip("100.65.20.7"),
        ip("10.0.1.5"),
        5000,
        53,
        b"abcd",
    )
    .unwrap();
    let mut buf = [0u8; 128];
    let n = build::icmp_error(
        &mut buf,
        ip("10.0.0.1"),
        ip("100.65.20.7"),
        3,
        3,
        &inner[..ni],
    )
    .unwrap();
    assert_eq!(Checks::of(&buf[..n]).inner_l4, Some(true));
    translate(&mut buf[..n], &a, &b, None).unwrap();
    let s = inspect(&buf[..n]).unwrap();
    assert_eq!((s.src, s.dst), (ip("100.64.0.1"), ip("10.0.20.7")));
    let L4::IcmpError { inner: q } = s.l4 else {
        panic!("not an ICMP error: {:?}", s.l4)
    };
    assert_eq!((q.src, q.dst), (ip("10.0.20.7"), ip("100.64.1.5")));
    assert_eq!((q.src_port, q.dst_port), (5000, 53));
    let c = Checks::of(&buf[..n]);
    assert_eq!(
        c,
        Checks {
            ip: true,
            l4: Some(true),
            inner_ip: Some(true),
            inner_l4: Some(true)
        }
    );
}

#[test]
fn icmp_error_with_short_quote_of_tcp_patches_what_is_there() {
    let (a, b) = tenants();
    let mut inner = [0u8; 64];
    let ni = build::tcp(
        &mut inner,
        ip("100.65.20.7"),
        ip("10.0.1.5"),
        443,
        4000,
        9,
        9,
        0x10,
        None,
        b"",
    )
    .unwrap();
    let mut buf = [0u8; 128];
    for quote in [28, 36, ni] {
        let n = build::icmp_error(
            &mut buf,
            ip("10.0.0.1"),
            ip("100.65.20.7"),
            11,
            0,
            &inner[..quote],
        )
        .unwrap();
        translate(&mut buf[..n], &a, &b, None).unwrap();
        let c = Checks::of(&buf[..n]);
        assert!(c.all_ok(), "quote {quote}: {c:?}");
        assert_eq!(c.inner_l4.is_some(), quote == ni);
    }
}

#[test]
fn icmp_error_with_inner_address_outside_is_no_route() {
    let (a, b) = tenants();
    let mut inner = [0u8; 64];
    let ni = build::udp(&mut inner, ip("100.66.0.1"), ip("10.0.1.5"), 1, 2, b"abcd").unwrap();
    let mut buf = [0u8; 128];
    let n = build::icmp_error(
        &mut buf,
        ip("10.0.0.1"),
        ip("100.65.20.7"),
        3,
        1,
        &inner[..ni],
    )
    .unwrap();
    let orig = buf[..n].to_vec();
    assert_eq!(translate(&mut buf[..n], &a, &b, None), Err(Error::Unmapped));
    assert_eq!(&buf[..n], &orig[..]);
}

#[test]
fn fuzz_body_runs_over_the_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_inspect");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        inspect_translate(&bytes);
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} seeds in {}", dir.display());
}

/// Regenerates the committed seed corpus of the `wire_inspect` fuzz target from the builders:
/// `cargo test --lib nat::tests::write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_inspect");
    std::fs::create_dir_all(&dir).unwrap();
    // Addresses chosen so that the fuzz target's maps translate them.
    let (h, x) = (ip("10.0.1.5"), ip("100.65.20.7"));
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 256];
    let n = build::udp(&mut buf, h, x, 4000, 53, b"seed").unwrap();
    seeds.push(("udp", buf[..n].to_vec()));
    let n = build::tcp(
        &mut buf,
        h,
        x,
        40000,
        443,
        1,
        0,
        tcp::FLAG_SYN,
        Some(1460),
        b"",
    )
    .unwrap();
    seeds.push(("tcp_syn_mss", buf[..n].to_vec()));
    let n = build::tcp(
        &mut buf,
        h,
        x,
        40000,
        443,
        2,
        3,
        tcp::FLAG_ACK | tcp::FLAG_PSH,
        None,
        b"GET /",
    )
    .unwrap();
    seeds.push(("tcp_data", buf[..n].to_vec()));
    let n = build::icmp_echo(&mut buf, h, x, 7, 1, false, b"ping").unwrap();
    seeds.push(("icmp_echo", buf[..n].to_vec()));
    let mut inner = [0u8; 64];
    let ni = build::udp(&mut inner, x, h, 5000, 53, b"abcd").unwrap();
    let n = build::icmp_error(&mut buf, ip("10.0.0.1"), x, 3, 3, &inner[..ni]).unwrap();
    seeds.push(("icmp_error_udp", buf[..n].to_vec()));
    let ni = build::tcp(&mut inner, x, h, 443, 40000, 9, 9, tcp::FLAG_ACK, None, b"").unwrap();
    let n = build::icmp_error(&mut buf, ip("10.0.0.1"), x, 11, 0, &inner[..28.min(ni)]).unwrap();
    seeds.push(("icmp_error_tcp_short", buf[..n].to_vec()));
    let n = build::udp(&mut buf, h, x, 1, 2, b"padded").unwrap();
    seeds.push(("udp_padded", [&buf[..n], &[0u8; 6][..]].concat()));
    let n = segment_with_options(
        &mut buf,
        tcp::FLAG_SYN,
        &[1, 2, 4, 5, 0xb4, 2, 4, 0x23, 0x28, 0, 0, 0],
    );
    seeds.push(("tcp_syn_two_mss", buf[..n].to_vec()));
    let n = build::udp(&mut buf, h, x, 4000, 53, b"seed").unwrap();
    for (name, options) in [
        ("ip_option_router_alert", &[148u8, 4, 0, 0][..]),
        ("ip_option_lsrr", &[1, 131, 7, 4, 10, 0, 0, 9][..]),
        (
            "ip_option_timestamp",
            &[68, 12, 5, 0x01, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ),
    ] {
        let mut p = buf[..20].to_vec();
        p.extend_from_slice(options);
        p.extend_from_slice(&buf[20..n]);
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.set_version_and_header_len(20 + options.len());
        ip.set_total_len((n + options.len()) as u16);
        ip.fill_checksum();
        seeds.push((name, p));
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

// ---- property tests ----

/// Up to three (internal, exchange) pairs, disjoint within the tenant: the i-th internal
/// prefix lies in `10+i.0.0.0/8`, the i-th exchange prefix in `xbase+i.0.0.0/8`.
fn tenant(xbase: u8) -> impl Strategy<Value = TenantMap> {
    prop::collection::vec((8u8..=30, any::<u32>(), any::<u32>()), 1..=3).prop_map(move |v| {
        let nets: Vec<Network> = v
            .into_iter()
            .enumerate()
            .map(|(i, (len, ia, xa))| {
                let top = |base: u8, a: u32| (u32::from(base + i as u8) << 24) | (a & 0x00ff_ffff);
                Network {
                    internal: Ipv4Network::new(Ipv4Addr::from(top(10, ia)), len).unwrap(),
                    exchange: Ipv4Network::new(Ipv4Addr::from(top(xbase, xa)), len).unwrap(),
                }
            })
            .collect();
        TenantMap::new(&nets)
    })
}

fn host(net: Ipv4Network, bits: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) | (bits & !u32::from(net.mask())))
}

#[derive(Debug, Clone)]
enum Kind {
    Tcp {
        flags: u8,
        mss: Option<u16>,
    },
    Udp {
        zero: bool,
    },
    Echo {
        reply: bool,
    },
    Error {
        icmp_type: u8,
        inner: Box<Kind>,
        quote: u16,
    },
}

fn simple_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (any::<u8>(), prop::option::of(500u16..9000))
            .prop_map(|(flags, mss)| Kind::Tcp { flags, mss }),
        any::<bool>().prop_map(|zero| Kind::Udp { zero }),
        any::<bool>().prop_map(|reply| Kind::Echo { reply }),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        simple_kind(),
        (
            prop::sample::select(vec![3u8, 11, 12]),
            simple_kind(),
            any::<u16>()
        )
            .prop_map(|(icmp_type, inner, quote)| Kind::Error {
                icmp_type,
                inner: Box::new(inner),
                quote
            }),
    ]
}

#[derive(Debug, Clone)]
struct Spec {
    kind: Kind,
    src: (usize, u32),
    dst: (usize, u32),
    ports: (u16, u16),
    ttl: u8,
    payload: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        kind(),
        (any::<usize>(), any::<u32>()),
        (any::<usize>(), any::<u32>()),
        (any::<u16>(), any::<u16>()),
        3u8..=255,
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(kind, src, dst, ports, ttl, payload)| Spec {
            kind,
            src,
            dst,
            ports,
            ttl,
            payload,
        })
}

fn write_simple(buf: &mut [u8], kind: &Kind, src: Ipv4Addr, dst: Ipv4Addr, s: &Spec) -> usize {
    let (sp, dp) = s.ports;
    let n = match *kind {
        Kind::Tcp { flags, mss } => {
            build::tcp(buf, src, dst, sp, dp, 1, 2, flags, mss, &s.payload).unwrap()
        }
        Kind::Udp { zero } => {
            let n = build::udp(buf, src, dst, sp, dp, &s.payload).unwrap();
            if zero {
                buf[26..28].copy_from_slice(&[0, 0]);
            }
            n
        }
        Kind::Echo { reply } => build::icmp_echo(buf, src, dst, sp, dp, reply, &s.payload).unwrap(),
        Kind::Error { .. } => unreachable!("errors are not nested"),
    };
    let mut h = Ipv4Packet::new_unchecked(&mut buf[..n]);
    h.set_ttl(s.ttl);
    h.fill_checksum();
    n
}

/// Builds a packet from a host of `a` to an exchange address of `b`; an error quotes a
/// packet that went the other way (from an exchange address of `b` to a host of `a`).
fn write(buf: &mut [u8], s: &Spec, a: &TenantMap, b: &TenantMap) -> usize {
    let pick = |m: &TenantMap, (i, bits): (usize, u32), internal: bool| {
        let n = m.networks()[i % m.networks().len()];
        host(if internal { n.internal } else { n.exchange }, bits)
    };
    let src = pick(a, s.src, true);
    let dst = pick(b, s.dst, false);
    match &s.kind {
        Kind::Error {
            icmp_type,
            inner,
            quote,
        } => {
            let mut q = [0u8; 256];
            let ni = write_simple(&mut q, inner, dst, src, s);
            let len = 28 + usize::from(*quote) % (ni - 27);
            build::icmp_error(buf, pick(a, s.dst, true), dst, *icmp_type, 0, &q[..len]).unwrap()
        }
        k => write_simple(buf, k, src, dst, s),
    }
}

proptest! {
    #[test]
    fn translated_checksums_equal_recomputation(
        a in tenant(100), b in tenant(110), s in spec(), clamp in prop::option::of(500u16..2000)
    ) {
        let mut buf = [0u8; 512];
        let n = write(&mut buf, &s, &a, &b);
        let p = &mut buf[..n];
        prop_assert!(Checks::of(p).all_ok());
        let before = inspect(p).unwrap();
        translate(p, &a, &b, clamp).unwrap();
        let c = Checks::of(p);
        prop_assert!(c.all_ok(), "{:?}", c);
        prop_assert_eq!(c.l4.is_some(), true);
        if matches!(s.kind, Kind::Error { .. }) {
            prop_assert_eq!(c.inner_ip, Some(true));
        }
        let after = inspect(p).unwrap();
        prop_assert_eq!(after.ttl, before.ttl - 1);
        prop_assert_eq!(Some(ExchangeV4(after.src)), a.to_exchange(InternalV4(before.src)));
        prop_assert_eq!(Some(InternalV4(after.dst)), b.to_internal(ExchangeV4(before.dst)));
        if let Kind::Udp { zero: true } = s.kind {
            prop_assert_eq!(&p[26..28], &[0, 0]);
        }
        if let (Kind::Tcp { flags, mss: Some(m) }, Some(cl)) = (&s.kind, clamp) {
            let want = if flags & tcp::FLAG_SYN != 0 { (*m).min(cl) } else { *m };
            prop_assert_eq!(mss_of(p), Some(want));
        }
    }

    #[test]
    fn reply_translates_back_to_the_original_addresses(
        a in tenant(100), b in tenant(110), s in spec()
    ) {
        let mut buf = [0u8; 512];
        let n = write(&mut buf, &s, &a, &b);
        let p = &mut buf[..n];
        let orig = inspect(p).unwrap();
        translate(p, &a, &b, None).unwrap();
        swap_addresses(p);
        translate(p, &b, &a, None).unwrap();
        let back = inspect(p).unwrap();
        prop_assert_eq!((back.src, back.dst), (orig.dst, orig.src));
        if let (L4::IcmpError { inner: i0 }, L4::IcmpError { inner: i2 }) = (orig.l4, back.l4) {
            prop_assert_eq!((i2.src, i2.dst), (i0.dst, i0.src));
        }
        prop_assert!(Checks::of(p).all_ok());
    }

    #[test]
    fn to_internal_inverts_to_exchange(a in tenant(100), i in any::<usize>(), bits in any::<u32>()) {
        let n = a.networks()[i % a.networks().len()];
        let x = host(n.internal, bits);
        let e = a.to_exchange(InternalV4(x)).unwrap();
        prop_assert!(n.exchange.contains(e.0));
        prop_assert_eq!(a.to_internal(e), Some(InternalV4(x)));
    }

    #[test]
    fn fuzz_body_never_panics_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..128)) {
        inspect_translate(&data);
    }

    #[test]
    fn fuzz_body_never_panics_on_mutated_packets(
        a in tenant(100), b in tenant(110), s in spec(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)
    ) {
        let mut buf = [0u8; 512];
        let n = write(&mut buf, &s, &a, &b);
        for (at, v) in flips {
            buf[at % n] = v;
        }
        inspect_translate(&buf[..n]);
    }
}
