//! Property tests: every payload type built from random well-formed fields parses back to
//! the same fields (decode(encode(x)) == x), protected messages lay out consistently, and no
//! input makes the parser panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// The owned fields of one payload; [`Gen::push`] builds it, [`Gen::check`] compares the
/// parsed payload with it.
#[derive(Debug, Clone)]
enum Gen {
    Flat(FlatGen),
    Sa(Vec<(ProtocolId, Vec<u8>, Vec<GenTransform>)>),
    Ts(bool, Vec<GenSelector>),
    Cp(u8, Vec<(u16, Vec<u8>)>),
}

#[derive(Debug, Clone)]
enum FlatGen {
    Ke(u16, Vec<u8>),
    Id(bool, u8, Vec<u8>),
    Cert(u8, Vec<u8>),
    CertReq(u8, Vec<u8>),
    Auth(u8, Vec<u8>),
    Signature(usize, Vec<u8>),
    Nonce(Vec<u8>),
    Notify(u8, Vec<u8>, u16, Vec<u8>),
    Delete(u8, u8, Vec<u8>),
    VendorId(Vec<u8>),
    Eap(Vec<u8>),
    Unknown(u8, Vec<u8>),
}

#[derive(Debug, Clone)]
struct GenTransform {
    ty: u8,
    id: u16,
    attributes: Vec<(bool, u16, u16, Vec<u8>)>,
}

#[derive(Debug, Clone)]
enum GenSelector {
    V4(u8, u16, u16, [u8; 4], [u8; 4]),
    V6(u8, u16, u16, [u8; 16], [u8; 16]),
    Other(u8, u8, Vec<u8>),
}

const ALGORITHMS: [&[u8]; 4] = [
    algorithm_identifier::SHA256_WITH_RSA,
    algorithm_identifier::ECDSA_WITH_SHA256,
    algorithm_identifier::ECDSA_WITH_SHA384,
    algorithm_identifier::ED25519,
];

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn flat() -> impl Strategy<Value = FlatGen> {
    prop_oneof![
        (any::<u16>(), bytes(80)).prop_map(|(g, d)| FlatGen::Ke(g, d)),
        (any::<bool>(), any::<u8>(), bytes(40)).prop_map(|(i, t, mut d)| {
            match t {
                1 => d.resize(4, 0),
                5 => d.resize(16, 0),
                _ => {}
            }
            FlatGen::Id(i, t, d)
        }),
        (any::<u8>(), bytes(60)).prop_map(|(e, d)| FlatGen::Cert(e, d)),
        (any::<u8>(), bytes(60)).prop_map(|(e, mut d)| {
            if e == 4 {
                d.truncate(d.len() / CA_HASH_LEN * CA_HASH_LEN);
            }
            FlatGen::CertReq(e, d)
        }),
        (any::<u8>().prop_filter("not 14", |m| *m != 14), bytes(60))
            .prop_map(|(m, d)| FlatGen::Auth(m, d)),
        (
            0..ALGORITHMS.len(),
            prop::collection::vec(any::<u8>(), 1..80)
        )
            .prop_map(|(a, s)| FlatGen::Signature(a, s)),
        prop::collection::vec(any::<u8>(), NONCE_LEN).prop_map(FlatGen::Nonce),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(40))
            .prop_map(|(p, s, t, d)| FlatGen::Notify(p, s, t, d)),
        (any::<u8>(), 0u8..=8, 0usize..5).prop_map(|(p, size, n)| {
            let spis = (0..usize::from(size) * n).map(|i| i as u8).collect();
            FlatGen::Delete(p, size, spis)
        }),
        bytes(40).prop_map(FlatGen::VendorId),
        bytes(40).prop_map(FlatGen::Eap),
        (
            any::<u8>().prop_filter("unknown", |t| !PayloadType(*t).is_known() && *t != 0),
            bytes(40)
        )
            .prop_map(|(t, d)| FlatGen::Unknown(t, d)),
    ]
}

fn transform() -> impl Strategy<Value = GenTransform> {
    let attribute =
        (any::<bool>(), 0u16..0x8000, any::<u16>(), bytes(6)).prop_map(|(tv, ty, v, d)| {
            let ty = if !tv && ty == ATTR_KEY_LENGTH {
                ty + 1
            } else {
                ty
            };
            (tv, ty, v, d)
        });
    (
        1u8..=5,
        any::<u16>(),
        prop::collection::vec(attribute, 0..3),
    )
        .prop_map(|(ty, id, attributes)| GenTransform { ty, id, attributes })
}

fn proposal() -> impl Strategy<Value = (ProtocolId, Vec<u8>, Vec<GenTransform>)> {
    let protocol = prop_oneof![
        Just((ProtocolId::IKE, 0usize)),
        Just((ProtocolId::IKE, 8)),
        Just((ProtocolId::ESP, 4)),
        Just((ProtocolId::AH, 4)),
    ];
    (protocol, bytes(8), prop::collection::vec(transform(), 0..6)).prop_map(
        |((p, n), mut spi, ts)| {
            spi.resize(n, 0xa5);
            (p, spi, ts)
        },
    )
}

fn selector() -> impl Strategy<Value = GenSelector> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>()
        )
            .prop_map(|(p, a, b, s, e)| GenSelector::V4(p, a, b, s, e)),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(|(p, a, b, s, e)| GenSelector::V6(p, a, b, s, e)),
        (
            any::<u8>().prop_filter("unknown", |t| *t != 7 && *t != 8),
            any::<u8>(),
            bytes(12)
        )
            .prop_map(|(t, p, d)| GenSelector::Other(t, p, d)),
    ]
}

fn payload() -> impl Strategy<Value = Gen> {
    prop_oneof![
        4 => flat().prop_map(Gen::Flat),
        1 => prop::collection::vec(proposal(), 1..4).prop_map(Gen::Sa),
        1 => (any::<bool>(), prop::collection::vec(selector(), 1..4))
            .prop_map(|(i, s)| Gen::Ts(i, s)),
        1 => (any::<u8>(), prop::collection::vec((0u16..0x8000, bytes(8)), 0..4))
            .prop_map(|(t, a)| Gen::Cp(t, a)),
    ]
}

impl FlatGen {
    fn payload<'a>(&'a self, sig: &'a [u8]) -> Payload<'a> {
        match self {
            FlatGen::Ke(g, d) => Payload::Ke(Ke {
                group: DhGroup(*g),
                data: d,
            }),
            FlatGen::Id(true, t, d) => Payload::IdI(Id::new(IdType(*t), d)),
            FlatGen::Id(false, t, d) => Payload::IdR(Id::new(IdType(*t), d)),
            FlatGen::Cert(e, d) => Payload::Cert(Cert {
                encoding: CertEncoding(*e),
                data: d,
            }),
            FlatGen::CertReq(e, d) => Payload::CertReq(CertReq {
                encoding: CertEncoding(*e),
                data: d,
            }),
            FlatGen::Auth(m, d) => Payload::Auth(Auth {
                method: AuthMethod(*m),
                data: d,
            }),
            FlatGen::Signature(..) => Payload::Auth(Auth {
                method: AuthMethod::DIGITAL_SIGNATURE,
                data: sig,
            }),
            FlatGen::Nonce(n) => Payload::Nonce(n),
            FlatGen::Notify(p, s, t, d) => Payload::Notify(Notify {
                protocol: ProtocolId(*p),
                notify_type: NotifyType(*t),
                spi: s,
                data: d,
            }),
            FlatGen::Delete(p, size, spis) => Payload::Delete(Delete {
                protocol: ProtocolId(*p),
                spi_size: *size,
                spis,
            }),
            FlatGen::VendorId(d) => Payload::VendorId(d),
            FlatGen::Eap(d) => Payload::Eap(d),
            FlatGen::Unknown(t, d) => Payload::Unknown {
                payload_type: PayloadType(*t),
                body: d,
            },
        }
    }

    fn signature_data(&self) -> Vec<u8> {
        match self {
            FlatGen::Signature(a, s) => DigitalSignature {
                algorithm: ALGORITHMS[*a],
                signature: s,
            }
            .to_auth_data()
            .unwrap(),
            _ => Vec::new(),
        }
    }
}

fn specs(sa: &[(ProtocolId, Vec<u8>, Vec<GenTransform>)]) -> Vec<ProposalSpec<'_>> {
    sa.iter()
        .enumerate()
        .map(|(i, (protocol, spi, ts))| ProposalSpec {
            num: i as u8 + 1,
            protocol: *protocol,
            spi,
            transforms: ts
                .iter()
                .map(|t| TransformSpec {
                    transform_type: TransformType(t.ty),
                    id: t.id,
                    attributes: t
                        .attributes
                        .iter()
                        .map(|(tv, ty, v, d)| match tv {
                            true => Attribute::Tv {
                                attr_type: *ty,
                                value: *v,
                            },
                            false => Attribute::Tlv {
                                attr_type: *ty,
                                value: d,
                            },
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn selectors(s: &[GenSelector]) -> Vec<Selector<'_>> {
    let ip = |p, a, b, addresses| {
        Selector::Ip(TrafficSelector {
            ip_protocol: p,
            start_port: a,
            end_port: b,
            addresses,
        })
    };
    s.iter()
        .map(|g| match g {
            GenSelector::V4(p, a, b, s, e) => ip(
                *p,
                *a,
                *b,
                AddrRange::V4 {
                    start: Ipv4Addr::from(*s),
                    end: Ipv4Addr::from(*e),
                },
            ),
            GenSelector::V6(p, a, b, s, e) => ip(
                *p,
                *a,
                *b,
                AddrRange::V6 {
                    start: Ipv6Addr::from(*s),
                    end: Ipv6Addr::from(*e),
                },
            ),
            GenSelector::Other(t, p, d) => Selector::Other {
                ts_type: TsType(*t),
                ip_protocol: *p,
                data: d,
            },
        })
        .collect()
}

fn cp_attributes(a: &[(u16, Vec<u8>)]) -> Vec<CpAttribute<'_>> {
    a.iter()
        .map(|(t, v)| CpAttribute {
            attr_type: *t,
            value: v,
        })
        .collect()
}

fn push(chain: &mut PayloadChain, g: &Gen, sig: &[u8]) {
    match g {
        Gen::Flat(f) => {
            chain.push(&f.payload(sig));
        }
        Gen::Sa(sa) => {
            chain.sa(&specs(sa));
        }
        Gen::Ts(true, s) => {
            chain.ts_i(&selectors(s));
        }
        Gen::Ts(false, s) => {
            chain.ts_r(&selectors(s));
        }
        Gen::Cp(t, a) => {
            chain.cp(CfgType(*t), &cp_attributes(a));
        }
    }
}

fn check(parsed: &Payload<'_>, g: &Gen, sig: &[u8]) {
    match (g, parsed) {
        (Gen::Flat(f), p) => assert_eq!(*p, f.payload(sig)),
        (Gen::Sa(sa), Payload::Sa(p)) => {
            assert_eq!(
                p.proposals().map(|p| p.to_spec()).collect::<Vec<_>>(),
                specs(sa)
            );
        }
        (Gen::Ts(true, s), Payload::TsI(ts)) | (Gen::Ts(false, s), Payload::TsR(ts)) => {
            assert_eq!(ts.selectors().collect::<Vec<_>>(), selectors(s));
        }
        (Gen::Cp(t, a), Payload::Cp(cp)) => {
            assert_eq!(cp.cfg_type, CfgType(*t));
            assert_eq!(cp.attributes().collect::<Vec<_>>(), cp_attributes(a));
        }
        (g, p) => panic!("{g:?} parsed as {p:?}"),
    }
}

fn sigs(gens: &[Gen]) -> Vec<Vec<u8>> {
    gens.iter()
        .map(|g| match g {
            Gen::Flat(f) => f.signature_data(),
            _ => Vec::new(),
        })
        .collect()
}

fn header(exchange: u8, flags: u8, message_id: u32) -> Header {
    Header::new(
        0x0102_0304_0506_0708,
        0x1112_1314_1516_1718,
        ExchangeType(exchange),
        Flags::from_bits_truncate(flags),
        message_id,
    )
}

proptest! {
    #[test]
    fn every_payload_round_trips(
        gens in prop::collection::vec(payload(), 0..8),
        exchange in any::<u8>(),
        flags in any::<u8>(),
        message_id in any::<u32>(),
    ) {
        let sigs = sigs(&gens);
        let mut m = MessageBuilder::new(header(exchange, flags, message_id));
        for (g, sig) in gens.iter().zip(&sigs) {
            push(&mut m, g, sig);
        }
        let bytes = m.finish().unwrap();
        let msg = Message::parse(&bytes).unwrap();
        prop_assert_eq!(msg.header.exchange, ExchangeType(exchange));
        prop_assert_eq!(msg.header.flags, Flags::from_bits_truncate(flags));
        prop_assert_eq!(msg.header.message_id, message_id);
        prop_assert_eq!(msg.payloads.len(), gens.len());
        for ((p, g), sig) in msg.payloads.iter().zip(&gens).zip(&sigs) {
            check(p, g, sig);
        }
        prop_assert_eq!(msg.encode().unwrap(), bytes);
    }

    #[test]
    fn protected_messages_lay_out_consistently(
        outer in prop::collection::vec(flat(), 0..3),
        inner in prop::collection::vec(payload(), 0..6),
        iv_len in 0usize..17,
        block_size in 1usize..17,
        icv_len in 0usize..33,
        fragment in prop::option::of((1u16..4, 0u16..3)),
    ) {
        let sigs_outer: Vec<_> = outer.iter().map(FlatGen::signature_data).collect();
        let sigs_inner = sigs(&inner);
        let mut chain = PayloadChain::new();
        for (g, sig) in inner.iter().zip(&sigs_inner) {
            push(&mut chain, g, sig);
        }
        let mut m = MessageBuilder::new(header(35, 0x08, 1));
        for (f, sig) in outer.iter().zip(&sigs_outer) {
            m.push(&f.payload(sig));
        }
        let params = SkParams { iv_len, block_size, icv_len };
        let inner_bytes = chain.bytes().unwrap().to_vec();
        let (bytes, layout) = match fragment {
            None => m.finish_encrypted(&chain, params).unwrap(),
            Some((number, more)) => {
                let f = Fragment { number, total: number + more };
                m.finish_fragment(f, chain.first_type(), &inner_bytes, params).unwrap()
            }
        };
        let msg = Message::parse(&bytes).unwrap();
        prop_assert_eq!(msg.payloads.len(), outer.len() + 1);
        let e = msg.encrypted().unwrap();
        prop_assert_eq!(e.first_inner, chain.first_type());
        prop_assert_eq!(msg.aad(), Some(&bytes[layout.aad.clone()]));
        prop_assert_eq!(msg.encrypted_range(), Some(layout.iv.start..layout.icv.end));
        prop_assert_eq!(layout.icv.end, bytes.len());
        prop_assert_eq!(layout.plaintext.len() % block_size, 0);
        prop_assert!(layout.plaintext.len() - inner_bytes.len() <= block_size);
        let (iv, ct, icv) = e.split(iv_len, icv_len).unwrap();
        prop_assert_eq!((iv.len(), icv.len()), (iv_len, icv_len));
        let unpadded = unpad(ct).unwrap();
        prop_assert_eq!(unpadded, &inner_bytes[..]);
        let parsed = parse_inner(e.first_inner, unpadded).unwrap();
        for ((p, g), sig) in parsed.iter().zip(&inner).zip(&sigs_inner) {
            check(p, g, sig);
        }
    }

    #[test]
    fn fuzz_body_never_panics_on_random_bytes(data in bytes(200)) {
        fuzz::round_trip(&data);
    }

    #[test]
    fn fuzz_body_never_panics_on_damaged_captures(
        which in 0usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut d = testvec::ike_messages()[which].to_vec();
        for (at, byte) in edits {
            let i = at.index(d.len());
            d[i] = byte;
        }
        fuzz::round_trip(&d);
    }
}
