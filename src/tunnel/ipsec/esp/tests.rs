//! Round trips through every suite, the sequence counter's ends, and every way an inbound
//! packet is refused.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::fuzz;
use super::*;
use crate::crypto::{CountingRandom, EncrAlg, IntegAlg};
use crate::wire::checksum;

/// Every supported combination of encryption and integrity.
fn suites() -> Vec<(EncrAlg, Option<IntegAlg>)> {
    let mut v = vec![(EncrAlg::AesGcm16_128, None), (EncrAlg::AesGcm16_256, None)];
    for encr in [EncrAlg::AesCbc128, EncrAlg::AesCbc256] {
        for integ in IntegAlg::ALL {
            v.push((encr, Some(integ)));
        }
    }
    v
}

struct Keys {
    encr: Vec<u8>,
    integ: Vec<u8>,
}

impl Keys {
    fn new(encr: EncrAlg, integ: Option<IntegAlg>) -> Keys {
        Keys {
            encr: (0..encr.keymat_len() as u8)
                .map(|i| i.wrapping_mul(7))
                .collect(),
            integ: vec![0x5a; integ.map_or(0, |a| a.key_len())],
        }
    }

    fn config(&self, encr: EncrAlg, integ: Option<IntegAlg>, esn: bool) -> SaConfig<'_> {
        SaConfig {
            spi: 0x1234_5678,
            esn,
            encr,
            encr_key: &self.encr,
            integ: integ.map(|a| (a, &self.integ[..])),
        }
    }
}

fn pair(cfg: &SaConfig<'_>) -> (OutboundSa, InboundSa) {
    (OutboundSa::new(cfg).unwrap(), InboundSa::new(cfg).unwrap())
}

/// An IPv4 packet of `len` bytes (at least 20) with a valid header checksum.
pub(super) fn ipv4(len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; len];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn round_trip(out: &mut OutboundSa, inb: &mut InboundSa, inner: &[u8]) -> Vec<u8> {
    let mut rng = CountingRandom::default();
    let mut buf = vec![0u8; 2048];
    let n = out.encapsulate(&mut rng, inner, &mut buf).unwrap();
    assert_eq!(n, out.encapsulated_len(inner.len()));
    let packet = buf[..n].to_vec();
    match inb.decapsulate(&mut buf[..n]).unwrap() {
        Decap::Packet(r) => assert_eq!(&buf[r], inner),
        Decap::Dummy => panic!("not a dummy"),
    }
    packet
}

#[test]
fn round_trips_every_suite_with_and_without_esn() {
    for (encr, integ) in suites() {
        for esn in [false, true] {
            let keys = Keys::new(encr, integ);
            let cfg = keys.config(encr, integ, esn);
            let (mut out, mut inb) = pair(&cfg);
            let align = if encr.is_aead() { 4 } else { 16 };
            for (i, len) in [20usize, 21, 22, 23, 24, 25, 100, 1400]
                .into_iter()
                .enumerate()
            {
                let inner = ipv4(len, i as u8);
                let p = round_trip(&mut out, &mut inb, &inner);
                let seq = i as u64 + 1;
                assert_eq!(
                    EspHeader::parse(&p),
                    Ok(EspHeader {
                        spi: 0x1234_5678,
                        seq: seq as u32
                    })
                );
                let icv = integ.map_or(16, |a| a.icv_len());
                let body = p.len() - HEADER_LEN - encr.iv_len() - icv;
                assert_eq!(body % align, 0, "{encr:?} len {len}");
                assert!(body - (len + 2) < align, "minimal padding");
                if encr.is_aead() {
                    assert_eq!(
                        &p[8..16],
                        &seq.to_be_bytes(),
                        "GCM IV is the sequence number"
                    );
                }
                assert_eq!(out.last_seq(), seq);
                assert_eq!(inb.highest_seq(), seq);
            }
            assert_eq!(out.usage(), inb.usage(), "{encr:?} {integ:?} esn {esn}");
            assert_eq!(out.usage().packets, 8);
        }
    }
}

#[test]
fn encapsulating_in_place_gives_the_same_packet() {
    let keys = Keys::new(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha384_192));
    let cfg = keys.config(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha384_192), true);
    let (mut a, mut b) = (
        OutboundSa::new(&cfg).unwrap(),
        OutboundSa::new(&cfg).unwrap(),
    );
    let inner = ipv4(77, 3);
    let mut copied = vec![0u8; 256];
    let n = a
        .encapsulate(&mut CountingRandom(9), &inner, &mut copied)
        .unwrap();
    let mut in_place = vec![0u8; 256];
    let h = b.header_len();
    in_place[h..h + inner.len()].copy_from_slice(&inner);
    let m = b
        .encapsulate_in_place(&mut CountingRandom(9), &mut in_place, inner.len())
        .unwrap();
    assert_eq!(copied[..n], in_place[..m]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips_random_sizes(suite in 0..8usize, esn: bool, len in 20..1500usize, fill: u8) {
        let (encr, integ) = suites()[suite];
        let keys = Keys::new(encr, integ);
        let (mut out, mut inb) = pair(&keys.config(encr, integ, esn));
        for _ in 0..2 {
            round_trip(&mut out, &mut inb, &ipv4(len, fill));
        }
    }
}

#[test]
fn lengths_for_mtu_are_consistent() {
    for (encr, integ) in suites() {
        let keys = Keys::new(encr, integ);
        let out = OutboundSa::new(&keys.config(encr, integ, false)).unwrap();
        for room in 0..200 {
            let max = out.max_inner_len(room);
            if max > 0 {
                assert!(out.encapsulated_len(max) <= room, "{encr:?} room {room}");
                assert!(out.encapsulated_len(max + 1) > room, "{encr:?} room {room}");
            }
        }
        assert_eq!(out.encapsulated_len(usize::MAX), usize::MAX);
    }
}

#[test]
fn sequence_numbers_stop_at_2_pow_32_minus_1_without_esn() {
    let keys = Keys::new(EncrAlg::AesGcm16_128, None);
    let (mut out, mut inb) = pair(&keys.config(EncrAlg::AesGcm16_128, None, false));
    out.set_last_seq(u64::from(u32::MAX) - 1);
    let p = round_trip(&mut out, &mut inb, &ipv4(40, 1));
    assert_eq!(EspHeader::parse(&p).unwrap().seq, u32::MAX);
    let mut buf = [0u8; 256];
    for _ in 0..2 {
        assert_eq!(
            out.encapsulate(&mut CountingRandom(0), &ipv4(40, 1), &mut buf),
            Err(EspError::SequenceExhausted)
        );
    }
    assert_eq!(out.last_seq(), u64::from(u32::MAX));
    assert_eq!(out.usage().packets, 1);
}

#[test]
fn esn_crosses_2_pow_32_and_stops_at_2_pow_64_minus_1() {
    for (encr, integ) in suites() {
        let keys = Keys::new(encr, integ);
        let (mut out, mut inb) = pair(&keys.config(encr, integ, true));
        out.set_last_seq(u64::from(u32::MAX) - 2);
        for expected in [u32::MAX - 1, u32::MAX, 0, 1] {
            let p = round_trip(&mut out, &mut inb, &ipv4(60, 2));
            assert_eq!(EspHeader::parse(&p).unwrap().seq, expected, "{encr:?}");
        }
        assert_eq!(inb.highest_seq(), (1 << 32) + 1);

        out.set_last_seq(u64::MAX - 1);
        inb.window_mut().reset_to(u64::MAX - 2);
        round_trip(&mut out, &mut inb, &ipv4(60, 2));
        assert_eq!(inb.highest_seq(), u64::MAX);
        let mut buf = [0u8; 256];
        assert_eq!(
            out.encapsulate(&mut CountingRandom(0), &ipv4(60, 2), &mut buf),
            Err(EspError::SequenceExhausted)
        );
    }
}

#[test]
fn too_small_a_buffer_consumes_no_sequence_number() {
    let keys = Keys::new(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128));
    let cfg = keys.config(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128), false);
    let mut out = OutboundSa::new(&cfg).unwrap();
    let inner = ipv4(50, 0);
    let mut buf = vec![0u8; out.encapsulated_len(50) - 1];
    assert_eq!(
        out.encapsulate(&mut CountingRandom(0), &inner, &mut buf),
        Err(EspError::BufferTooSmall)
    );
    assert_eq!(
        out.encapsulate_in_place(&mut CountingRandom(0), &mut buf, 50),
        Err(EspError::BufferTooSmall)
    );
    assert_eq!(out.last_seq(), 0);
}

#[test]
fn replays_and_flipped_bits_are_refused_and_leave_the_window_alone() {
    for (encr, integ) in suites() {
        let keys = Keys::new(encr, integ);
        let (mut out, mut inb) = pair(&keys.config(encr, integ, false));
        let first = round_trip(&mut out, &mut inb, &ipv4(64, 9));
        assert_eq!(inb.decapsulate(&mut first.clone()), Err(EspError::Replay));

        let mut buf = [0u8; 256];
        let n = out
            .encapsulate(&mut CountingRandom(0), &ipv4(64, 9), &mut buf)
            .unwrap();
        let packet = buf[..n].to_vec();
        let iv_end = HEADER_LEN + encr.iv_len();
        // Sequence number, IV, ciphertext, ICV.
        for at in [7, HEADER_LEN, iv_end, iv_end + 20, n - 1] {
            let mut bad = packet.clone();
            bad[at] ^= 0x04;
            assert_eq!(
                inb.decapsulate(&mut bad),
                Err(EspError::Integrity),
                "{encr:?} byte {at}"
            );
        }
        let mut other_spi = packet.clone();
        other_spi[0] ^= 0x80;
        assert_eq!(inb.decapsulate(&mut other_spi), Err(EspError::WrongSpi));
        assert_eq!(inb.highest_seq(), 1, "nothing forged moved the window");
        assert_eq!(inb.usage().packets, 1);
        assert!(matches!(
            inb.decapsulate(&mut packet.clone()),
            Ok(Decap::Packet(_))
        ));
    }
}

#[test]
fn truncated_packets_are_malformed() {
    for (encr, integ) in suites() {
        let keys = Keys::new(encr, integ);
        let (_, mut inb) = pair(&keys.config(encr, integ, false));
        let icv = integ.map_or(16, |a| a.icv_len());
        let min = HEADER_LEN + encr.iv_len() + icv + if encr.is_aead() { 2 } else { 16 };
        for len in 0..min {
            let mut p = vec![0u8; len];
            if len >= 4 {
                p[..4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            }
            assert_eq!(
                inb.decapsulate(&mut p),
                Err(EspError::Malformed),
                "{encr:?} {len}"
            );
        }
        if !encr.is_aead() {
            // CBC ciphertext that is not a whole number of blocks.
            let mut p = vec![0u8; min + 4];
            p[..4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            assert_eq!(inb.decapsulate(&mut p), Err(EspError::Malformed));
        }
    }
    assert_eq!(EspHeader::parse(&[0; 7]), Err(EspError::Malformed));
}

/// The capture's GCM SA receiving a plaintext of our choosing with sequence number `seq`.
fn receive_plaintext(seq: u32, plaintext: &[u8]) -> (Result<Decap, EspError>, Vec<u8>, Usage) {
    let cfg = fuzz::config(0);
    let input = [&seq.to_be_bytes()[..], plaintext].concat();
    let (mut packet, _) = fuzz::seal(&cfg, &input).unwrap();
    let mut inb = InboundSa::new(&cfg).unwrap();
    let r = inb.decapsulate(&mut packet);
    (r, packet, inb.usage())
}

#[test]
fn padding_must_be_1_2_3_and_fit() {
    let inner = ipv4(24, 0xee);
    let with = |trailer: &[u8]| [&inner[..], trailer].concat();
    assert!(matches!(
        receive_plaintext(1, &with(&[1, 2, 2, 4])).0,
        Ok(Decap::Packet(_))
    ));
    assert!(matches!(
        receive_plaintext(1, &with(&[0, 4])).0,
        Ok(Decap::Packet(_))
    ));
    for bad in [
        &[1, 3, 2, 4][..],
        &[0, 0, 2, 4],
        &[2, 1, 2, 4],
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 9, 4],
    ] {
        let (r, _, usage) = receive_plaintext(1, &with(bad));
        assert_eq!(r, Err(EspError::Padding), "{bad:?}");
        assert_eq!(
            usage,
            Usage {
                bytes: 0,
                packets: 1
            },
            "authentic, so counted"
        );
    }
    // A pad length reaching into the IV.
    assert_eq!(
        receive_plaintext(1, &[1, 2, 3, 4]).0,
        Err(EspError::Padding)
    );
    assert_eq!(receive_plaintext(1, &[5, 4]).0, Err(EspError::Padding));
    assert_eq!(receive_plaintext(1, &[255, 4]).0, Err(EspError::Padding));
}

#[test]
fn next_header_picks_ipv4_dummy_or_refuses() {
    let inner = ipv4(40, 0x11);
    let (r, _, usage) = receive_plaintext(7, &[&inner[..], &[1, 2, 2, 4]].concat());
    let hdr = HEADER_LEN + 8;
    assert_eq!(r, Ok(Decap::Packet(hdr..hdr + 40)));
    assert_eq!(
        usage,
        Usage {
            bytes: 40,
            packets: 1
        }
    );

    // TFC padding after the inner packet is cut off by its total length.
    let tfc = [&inner[..], &[0xcc; 37], &[1, 2, 3, 3, 4]].concat();
    assert_eq!(
        receive_plaintext(7, &tfc).0,
        Ok(Decap::Packet(hdr..hdr + 40))
    );

    // Dummy packets, with or without content, are consumed.
    assert_eq!(
        receive_plaintext(
            7,
            &[0xab; 10]
                .iter()
                .copied()
                .chain([0, 59])
                .collect::<Vec<_>>()
        )
        .0,
        Ok(Decap::Dummy)
    );
    assert_eq!(receive_plaintext(7, &[1, 2, 2, 59]).0, Ok(Decap::Dummy));

    for nh in [0u8, 1, 6, 17, 41, 50, 255] {
        let p = [&inner[..], &[0, nh]].concat();
        assert_eq!(
            receive_plaintext(7, &p).0,
            Err(EspError::UnknownNextHeader(nh))
        );
    }

    let mut v6 = inner.clone();
    v6[0] = 0x60;
    let mut too_long = inner.clone();
    too_long[2..4].copy_from_slice(&41u16.to_be_bytes());
    let mut too_short = inner.clone();
    too_short[2..4].copy_from_slice(&19u16.to_be_bytes());
    for bad in [
        &inner[..19],
        &v6[..],
        &too_long[..],
        &too_short[..],
        &[][..],
    ] {
        let p = [bad, &[0, 4]].concat();
        assert_eq!(
            receive_plaintext(7, &p).0,
            Err(EspError::InnerMalformed),
            "{bad:?}"
        );
    }
    // Sequence number 0 is never valid without ESN.
    assert_eq!(
        receive_plaintext(0, &[&inner[..], &[0, 4]].concat()).0,
        Err(EspError::Replay)
    );
}

#[test]
fn sa_configuration_errors() {
    let k16 = [0u8; 16];
    let k20 = [0u8; 20];
    let k32 = [0u8; 32];
    let base = SaConfig {
        spi: 1,
        esn: false,
        encr: EncrAlg::AesGcm16_128,
        encr_key: &k20,
        integ: None,
    };
    assert!(InboundSa::new(&base).is_ok());
    let err = |cfg: SaConfig<'_>| OutboundSa::new(&cfg).err();
    assert_eq!(
        err(SaConfig {
            encr_key: &k16,
            ..base
        }),
        Some(SaConfigError::EncrKeyLength {
            encr: EncrAlg::AesGcm16_128,
            expected: 20,
            got: 16
        })
    );
    assert_eq!(
        err(SaConfig {
            integ: Some((IntegAlg::HmacSha256_128, &k32)),
            ..base
        }),
        Some(SaConfigError::IntegrityNotAllowed(EncrAlg::AesGcm16_128))
    );
    let cbc = SaConfig {
        encr: EncrAlg::AesCbc128,
        encr_key: &k16,
        ..base
    };
    assert_eq!(
        err(cbc),
        Some(SaConfigError::IntegrityRequired(EncrAlg::AesCbc128))
    );
    assert_eq!(
        err(SaConfig {
            integ: Some((IntegAlg::HmacSha512_256, &k32)),
            ..cbc
        }),
        Some(SaConfigError::IntegKeyLength {
            integ: IntegAlg::HmacSha512_256,
            expected: 64,
            got: 32
        })
    );
    let shown = format!(
        "{:?}",
        SaConfig {
            encr_key: &[0xab; 20],
            ..base
        }
    );
    assert!(
        shown.contains("00000001") && !shown.contains("171"),
        "{shown}"
    );
}

#[test]
fn usage_reaches_limits() {
    let keys = Keys::new(EncrAlg::AesGcm16_256, None);
    let (mut out, mut inb) = pair(&keys.config(EncrAlg::AesGcm16_256, None, false));
    let limits = Limits {
        soft_packets: Some(3),
        hard_bytes: Some(250),
        ..Limits::default()
    };
    for _ in 0..2 {
        round_trip(&mut out, &mut inb, &ipv4(60, 0));
    }
    assert_eq!(inb.usage().expiry(&limits), Expiry::Live);
    round_trip(&mut out, &mut inb, &ipv4(60, 0));
    assert_eq!(out.usage().expiry(&limits), Expiry::Soft);
    round_trip(&mut out, &mut inb, &ipv4(70, 0));
    assert_eq!(
        inb.usage(),
        Usage {
            bytes: 250,
            packets: 4
        }
    );
    assert_eq!(inb.usage().expiry(&limits), Expiry::Hard);
}

#[test]
fn ipv4_helper_builds_valid_headers() {
    let p = ipv4(20, 0);
    assert_eq!(checksum::checksum(&p[..20]), 0);
    assert_eq!(
        Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        Ipv4Addr::new(10, 0, 0, 2)
    );
}
