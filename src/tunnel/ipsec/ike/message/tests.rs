//! The codec against the strongSwan 5.9.8 capture (`tests/vectors/ipsec-ike-esp.pcap`), and
//! against damaged copies of it.

use std::net::Ipv4Addr;

use super::testvec::*;
use super::*;
use crate::crypto::AesGcm;
use crate::tunnel::testvec::charon_secret;

fn parse(i: usize) -> Message<'static> {
    Message::parse(ike_messages()[i]).unwrap()
}

fn notify_types(msg: &Message<'_>) -> Vec<NotifyType> {
    msg.notifies().map(|n| n.notify_type).collect()
}

fn types(payloads: &[Payload<'_>]) -> Vec<PayloadType> {
    payloads.iter().map(Payload::payload_type).collect()
}

fn key(sk: &str) -> AesGcm {
    let sk_e = charon_secret(KEYS_LOG, sk);
    AesGcm::new(&sk_e[..32]).unwrap()
}

/// The 12-octet AES-GCM nonce: the 4-octet salt that ends SK_e, then the IV [RFC 5282 § 4].
fn gcm_nonce(sk: &str, iv: &[u8]) -> [u8; 12] {
    let sk_e = charon_secret(KEYS_LOG, sk);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&sk_e[32..]);
    nonce[4..].copy_from_slice(iv);
    nonce
}

/// Decrypts the SK payload of a captured message with AES-GCM-16-256, using the codec's AAD
/// and ranges: if the AAD were wrong, the tag would not verify.
fn decrypt(msg: &Message<'_>, sk: &str) -> Vec<u8> {
    let e = msg.encrypted().unwrap();
    let (iv, ct, icv) = e.split(8, 16).unwrap();
    let mut in_out = [ct, icv].concat();
    let n = key(sk)
        .open_in_place(&gcm_nonce(sk, iv), msg.aad().unwrap(), &mut in_out)
        .expect("the AAD range is what strongSwan authenticated");
    in_out.truncate(n);
    in_out
}

fn sa_init_transforms(msg: &Message<'_>) {
    let sa = msg.sa().unwrap();
    let proposals: Vec<_> = sa.proposals().collect();
    assert_eq!(proposals.len(), 1);
    let p = proposals[0];
    assert_eq!((p.num, p.protocol), (1, ProtocolId::IKE));
    assert!(p.spi.is_empty());
    let encr = p.transform(TransformType::ENCR).unwrap();
    assert_eq!(
        (encr.id, encr.key_length()),
        (transform_id::ENCR_AES_GCM_16, Some(256))
    );
    assert_eq!(
        p.transform(TransformType::PRF).unwrap().id,
        transform_id::PRF_HMAC_SHA2_256
    );
    assert_eq!(
        DhGroup(p.transform(TransformType::DH).unwrap().id),
        DhGroup::ECP_256
    );
    assert_eq!(p.transforms().count(), 3, "no INTEG with an AEAD");
    let ke = msg.ke().unwrap();
    assert_eq!(ke.group, DhGroup::ECP_256);
    assert_eq!(ke.data.len(), 64);
    assert_eq!(msg.nonce().unwrap().len(), 32);
}

#[test]
fn captured_ike_sa_init_request() {
    let msg = parse(SA_INIT_REQUEST);
    let h = msg.header;
    assert_eq!(h.exchange, ExchangeType::IKE_SA_INIT);
    assert_eq!(
        (h.spi_i, h.spi_r, h.message_id),
        (0xdc89_2e1b_12b8_660d, 0, 0)
    );
    assert!(h.flags.initiator() && !h.flags.response());
    use PayloadType as P;
    assert_eq!(
        types(&msg.payloads),
        [
            P::SA,
            P::KE,
            P::NONCE,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY
        ]
    );
    assert_eq!(
        notify_types(&msg),
        [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType::REDIRECT_SUPPORTED,
        ]
    );
    assert_eq!(
        msg.notify(NotifyType::NAT_DETECTION_SOURCE_IP)
            .unwrap()
            .data
            .len(),
        20,
        "a SHA-1 hash [RFC 7296 § 2.23]"
    );
    let algs: Vec<_> = msg
        .notify(NotifyType::SIGNATURE_HASH_ALGORITHMS)
        .unwrap()
        .hash_algorithms()
        .unwrap()
        .collect();
    assert_eq!(algs.len(), 4);
    sa_init_transforms(&msg);
}

#[test]
fn captured_ike_sa_init_response() {
    let msg = parse(SA_INIT_RESPONSE);
    let h = msg.header;
    assert_eq!(
        (h.spi_i, h.spi_r),
        (0xdc89_2e1b_12b8_660d, 0x3919_e8cb_cedb_889c)
    );
    assert!(!h.flags.initiator() && h.flags.response());
    use PayloadType as P;
    assert_eq!(
        types(&msg.payloads),
        [
            P::SA,
            P::KE,
            P::NONCE,
            P::NOTIFY,
            P::NOTIFY,
            P::CERTREQ,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY
        ]
    );
    assert_eq!(
        notify_types(&msg),
        [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType::CHILDLESS_IKEV2_SUPPORTED,
            NotifyType::MULTIPLE_AUTH_SUPPORTED,
        ]
    );
    let Payload::CertReq(req) = msg.payloads[5] else {
        panic!("{:?}", msg.payloads[5]);
    };
    assert_eq!(req.encoding, CertEncoding::X509_SIGNATURE);
    assert_eq!(req.authorities().count(), 1);
    sa_init_transforms(&msg);
}

#[test]
fn captured_sa_init_values_for_key_derivation() {
    let v = sa_init_values();
    assert_eq!(
        (v.spi_i, v.spi_r),
        (0xdc89_2e1b_12b8_660d, 0x3919_e8cb_cedb_889c)
    );
    assert_eq!(v.ni.len(), 32);
    assert_eq!(v.nr.len(), 32);
    assert_eq!(v.ni[..4], [0x53, 0x02, 0x6c, 0x86]);
    assert_eq!(v.nr[..4], [0x49, 0xad, 0xe5, 0x47]);
    let (req, resp) = (parse(SA_INIT_REQUEST), parse(SA_INIT_RESPONSE));
    assert_eq!(SaInitValues::from_exchange(&resp, &req), None, "swapped");
    assert_eq!(
        SaInitValues::from_exchange(&req, &parse(AUTH_RESPONSE)),
        None
    );
}

#[test]
fn reencoding_reproduces_every_captured_message() {
    for (i, bytes) in ike_messages().into_iter().enumerate() {
        let msg = Message::parse(bytes).unwrap();
        assert_eq!(msg.encode().unwrap(), bytes, "message {i}");
    }
}

#[test]
fn rebuilding_the_ike_sa_init_request_from_its_parts() {
    let orig = parse(SA_INIT_REQUEST);
    let proposals: Vec<_> = orig
        .sa()
        .unwrap()
        .proposals()
        .map(|p| p.to_spec())
        .collect();
    let mut m = MessageBuilder::new(Header::new(
        orig.header.spi_i,
        0,
        ExchangeType::IKE_SA_INIT,
        Flags::INITIATOR,
        0,
    ));
    m.sa(&proposals)
        .push(&Payload::Ke(orig.ke().unwrap()))
        .push(&Payload::Nonce(orig.nonce().unwrap()));
    for n in orig.notifies() {
        m.push(&Payload::Notify(Notify::new(n.notify_type, n.data)));
    }
    assert_eq!(m.finish().unwrap(), orig.bytes());
}

#[test]
fn captured_ike_auth_is_a_header_and_an_sk_payload() {
    for (i, first) in [
        (AUTH_REQUEST, PayloadType::IDI),
        (AUTH_RESPONSE, PayloadType::IDR),
    ] {
        let msg = parse(i);
        assert_eq!(msg.header.exchange, ExchangeType::IKE_AUTH);
        assert_eq!(msg.header.message_id, 1);
        assert_eq!(types(&msg.payloads), [PayloadType::SK]);
        let e = msg.encrypted().unwrap();
        assert_eq!((e.first_inner, e.fragment), (first, None));
        assert_eq!(msg.aad().unwrap().len(), HEADER_LEN + GENERIC_HEADER_LEN);
        assert_eq!(msg.encrypted_range().unwrap().end, msg.bytes().len());
    }
}

/// [RFC 5282 § 5.1]: decrypting with the codec's AAD and ranges, the inner chains parse and
/// re-encode to the decrypted bytes.
#[test]
fn rfc5282_5_1_decrypted_ike_auth_and_informational_parse() {
    let cases = [
        (AUTH_REQUEST, "Sk_ei secret"),
        (AUTH_RESPONSE, "Sk_er secret"),
        (INFORMATIONAL_REQUEST, "Sk_ei secret"),
        (INFORMATIONAL_RESPONSE, "Sk_er secret"),
    ];
    let mut inners = Vec::new();
    for (i, sk) in cases {
        let msg = parse(i);
        let plain = decrypt(&msg, sk);
        let chain = unpad(&plain).unwrap().to_vec();
        let first = msg.encrypted().unwrap().first_inner;
        let payloads = parse_inner(first, &chain).unwrap();
        let mut again = PayloadChain::new();
        for p in &payloads {
            again.push(p);
        }
        assert_eq!(again.first_type(), first);
        assert_eq!(again.bytes().unwrap(), chain, "message {i}");
        inners.push(chain);
    }

    use PayloadType as P;
    let req = parse_inner(P::IDI, &inners[0]).unwrap();
    assert_eq!(
        types(&req),
        [
            P::IDI,
            P::CERT,
            P::NOTIFY,
            P::CERTREQ,
            P::IDR,
            P::AUTH,
            P::SA,
            P::TSI,
            P::TSR,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY
        ]
    );
    let Payload::IdI(id) = req[0] else { panic!() };
    assert_eq!(id.value(), IdValue::Fqdn(b"gw-a.lab"));
    let Payload::Auth(auth) = req[5] else {
        panic!()
    };
    assert_eq!(auth.method, AuthMethod::DIGITAL_SIGNATURE);
    let sig = auth.digital_signature().unwrap();
    assert_eq!(sig.algorithm, algorithm_identifier::ECDSA_WITH_SHA256);
    let Payload::Sa(sa) = req[6] else { panic!() };
    let child = sa.proposals().next().unwrap();
    assert_eq!(child.protocol, ProtocolId::ESP);
    assert_eq!(child.spi, [0x04, 0x1d, 0x36, 0xcc]);
    let encr = child.transform(TransformType::ENCR).unwrap();
    assert_eq!(
        (encr.id, encr.key_length()),
        (transform_id::ENCR_AES_GCM_16, Some(128))
    );
    assert_eq!(
        child.transform(TransformType::ESN).unwrap().id,
        transform_id::ESN_NO
    );
    let Payload::TsI(tsi) = req[7] else { panic!() };
    assert_eq!(
        tsi.selectors().collect::<Vec<_>>(),
        [Selector::Ip(TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: AddrRange::V4 {
                start: Ipv4Addr::new(10, 252, 1, 0),
                end: Ipv4Addr::new(10, 252, 1, 255),
            },
        })]
    );
    let notified: Vec<_> = req
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect();
    assert_eq!(
        notified,
        [
            NotifyType::INITIAL_CONTACT,
            NotifyType::MOBIKE_SUPPORTED,
            NotifyType::ADDITIONAL_IP4_ADDRESS,
            NotifyType::MULTIPLE_AUTH_SUPPORTED,
            NotifyType::EAP_ONLY_AUTHENTICATION,
            NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
        ]
    );

    let resp = parse_inner(P::IDR, &inners[1]).unwrap();
    assert_eq!(
        types(&resp),
        [
            P::IDR,
            P::CERT,
            P::AUTH,
            P::SA,
            P::TSI,
            P::TSR,
            P::NOTIFY,
            P::NOTIFY
        ]
    );
    let Payload::Sa(sa) = resp[3] else { panic!() };
    assert_eq!(sa.proposals().next().unwrap().spi, [0xeb, 0x10, 0xf7, 0xaa]);

    let info = parse_inner(P::NOTIFY, &inners[2]).unwrap();
    assert_eq!(
        info,
        [Payload::Notify(Notify::new(
            NotifyType::ADDITIONAL_IP4_ADDRESS,
            &[10, 252, 1, 1]
        ))]
    );
    assert!(inners[3].is_empty(), "an empty INFORMATIONAL response");
}

/// The two-phase build: lay out the IKE_AUTH request, seal it in place with the captured IV,
/// and get the captured bytes back.
#[test]
fn rfc5282_5_1_sealing_in_place_reproduces_the_captured_ike_auth_request() {
    let captured = parse(AUTH_REQUEST);
    let plain = decrypt(&captured, "Sk_ei secret");
    let payloads = parse_inner(PayloadType::IDI, unpad(&plain).unwrap()).unwrap();
    let mut inner = PayloadChain::new();
    for p in &payloads {
        inner.push(p);
    }
    let h = captured.header;
    let m = MessageBuilder::new(Header::new(h.spi_i, h.spi_r, h.exchange, h.flags, 1));
    let params = SkParams {
        iv_len: 8,
        block_size: 1,
        icv_len: 16,
    };
    let (mut out, layout) = m.finish_encrypted(&inner, params).unwrap();
    assert_eq!(out.len(), captured.bytes().len());
    let (iv, _, _) = captured.encrypted().unwrap().split(8, 16).unwrap();
    out[layout.iv.clone()].copy_from_slice(iv);
    assert_eq!(
        layout.plaintext.end, layout.icv.start,
        "the ICV follows the plaintext"
    );
    let aad = out[layout.aad.clone()].to_vec();
    key("Sk_ei secret")
        .seal_in_place(
            &gcm_nonce("Sk_ei secret", iv),
            &aad,
            &mut out[layout.plaintext.start..layout.icv.end],
        )
        .unwrap();
    assert_eq!(out, captured.bytes());
}

#[test]
fn every_truncation_of_a_captured_message_is_refused() {
    for bytes in ike_messages() {
        for n in 0..bytes.len() {
            let cut = &bytes[..n];
            let want = if n < HEADER_LEN {
                Error::Truncated
            } else {
                Error::LengthMismatch
            };
            assert_eq!(Message::parse(cut), Err(want));
            if n >= HEADER_LEN {
                let mut fixed = cut.to_vec();
                fixed[24..28].copy_from_slice(&(n as u32).to_be_bytes());
                let err = Message::parse(&fixed).unwrap_err();
                assert!(matches!(err, Error::InvalidSyntax { .. }), "{n}: {err:?}");
                assert_eq!(err.notify(), Some(NotifyType::INVALID_SYNTAX));
            }
        }
    }
}

#[test]
fn a_byte_after_the_last_payload_is_refused() {
    for (i, want) in [
        (
            SA_INIT_REQUEST,
            Error::syntax(PayloadType::NONE, Syntax::TrailingBytes),
        ),
        (
            AUTH_REQUEST,
            Error::syntax(PayloadType::SK, Syntax::EncryptedPlacement),
        ),
    ] {
        let mut bytes = ike_messages()[i].to_vec();
        bytes.push(0);
        let len = bytes.len() as u32;
        bytes[24..28].copy_from_slice(&len.to_be_bytes());
        assert_eq!(Message::parse(&bytes), Err(want));
    }
}

#[test]
fn a_critical_unknown_payload_in_a_captured_message_is_refused() {
    let mut bytes = ike_messages()[SA_INIT_REQUEST].to_vec();
    // The last payload (REDIRECT_SUPPORTED) names a payload of type 99 that follows.
    let last = bytes.len() - 8;
    bytes[last] = 99;
    bytes.extend_from_slice(&[0, 0x80, 0, 4]);
    let len = bytes.len() as u32;
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    let err = Message::parse(&bytes).unwrap_err();
    assert_eq!(err, Error::UnsupportedCriticalPayload(PayloadType(99)));
    assert_eq!(err.notify(), Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD));
    bytes[last + 9] = 0;
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(
        msg.payloads.last(),
        Some(&Payload::Unknown {
            payload_type: PayloadType(99),
            body: &[]
        })
    );
}

#[test]
fn single_byte_damage_never_panics() {
    for bytes in ike_messages() {
        for i in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut d = bytes.to_vec();
                d[i] ^= mask;
                fuzz::round_trip(&d);
            }
        }
    }
}

#[test]
fn fuzz_body_runs_over_the_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ike_message");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz::round_trip(&bytes);
        assert!(Message::parse(&bytes).is_ok());
        seen += 1;
    }
    assert!(seen >= 4, "only {seen} seeds in {}", dir.display());
}

/// Regenerates the committed seed corpus of the `ike_message` fuzz target from the capture:
/// `cargo test --lib tunnel::ipsec::ike::message::tests::write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ike_message");
    std::fs::create_dir_all(&dir).unwrap();
    let names = [
        "ike_sa_init_request",
        "ike_sa_init_response",
        "ike_auth_request",
        "ike_auth_response",
        "informational_request",
        "informational_response",
    ];
    for (name, bytes) in names.iter().zip(ike_messages()) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
