//! ESP against packets made by others: the strongSwan 5.9.8 capture in `tests/vectors/`
//! (AES_GCM_16_128, ESP in UDP, keys from charon's log) and the ESP test cases of
//! draft-mcgrew-gcm-test-01. The capture also checks the crypto seam end to end: its keys
//! derive from its nonces with prf+, and its KE payloads are group 19 public values.

use std::net::Ipv4Addr;

use super::*;
use crate::crypto::testutil::hex;
use crate::crypto::{DhGroup, DhPrivateKey, EncrAlg, Prf, PrfAlg, SystemRandom};
use crate::tunnel::testvec::{charon_secret, udp_payloads, Datagram};
use crate::wire::checksum;

const PCAP: &[u8] = include_bytes!("../../../../tests/vectors/ipsec-ike-esp.pcap");
const LOG: &str = include_str!("../../../../tests/vectors/ipsec-ike-esp.keys.log");

/// SPIs as the initiator (10.250.2.1) logged them: `041d36cc_i eb10f7aa_o`.
const SPI_TO_INITIATOR: u32 = 0x041d_36cc;
const SPI_TO_RESPONDER: u32 = 0xeb10_f7aa;

/// The payloads of one type in the chain of an unencrypted IKE message.
fn ike_payload(message: &[u8], wanted: u8) -> &[u8] {
    let mut next = message[16];
    let mut at = 28;
    while next != 0 {
        let len = usize::from(u16::from_be_bytes([message[at + 2], message[at + 3]]));
        if next == wanted {
            return &message[at + 4..at + len];
        }
        next = message[at];
        at += len;
    }
    panic!("no payload of type {wanted}");
}

const NONCE: u8 = 40;
const KE: u8 = 34;

/// SKEYSEED = prf(Ni | Nr, g^ir); SK_d | SK_ei | SK_er | SK_pi | SK_pr = prf+(SKEYSEED,
/// Ni | Nr | SPIi | SPIr) [RFC 7296 § 2.14] (no SK_a with GCM); the CHILD_SA's KEYMAT =
/// prf+(SK_d, Ni | Nr) [RFC 7296 § 2.17], initiator-to-responder key first.
#[test]
fn the_captures_keys_are_prf_plus_of_its_nonces() {
    let d = udp_payloads(PCAP);
    let (init, resp) = (d[0].payload, d[1].payload);
    let (ni, nr) = (ike_payload(init, NONCE), ike_payload(resp, NONCE));
    let (spi_i, spi_r) = (&resp[..8], &resp[8..16]);
    let g_ir = charon_secret(LOG, "shared Diffie Hellman secret");

    let skeyseed = Prf::new(PrfAlg::HmacSha256, &[ni, nr].concat()).compute(&[&g_ir]);
    let mut sk = [0u8; 32 + 36 + 36 + 32 + 32];
    Prf::new(PrfAlg::HmacSha256, skeyseed.as_ref())
        .prf_plus(&[ni, nr, spi_i, spi_r], &mut sk)
        .unwrap();
    let (sk_d, rest) = sk.split_at(32);
    let (sk_ei, rest) = rest.split_at(36);
    let (sk_er, rest) = rest.split_at(36);
    let (sk_pi, sk_pr) = rest.split_at(32);
    assert_eq!(sk_d, charon_secret(LOG, "Sk_d secret"));
    assert_eq!(sk_ei, charon_secret(LOG, "Sk_ei secret"));
    assert_eq!(sk_er, charon_secret(LOG, "Sk_er secret"));
    assert_eq!(sk_pi, charon_secret(LOG, "Sk_pi secret"));
    assert_eq!(sk_pr, charon_secret(LOG, "Sk_pr secret"));

    let mut keymat = [0u8; 2 * 20];
    Prf::new(PrfAlg::HmacSha256, sk_d)
        .prf_plus(&[ni, nr], &mut keymat)
        .unwrap();
    assert_eq!(keymat[..20], charon_secret(LOG, "encryption initiator key"));
    assert_eq!(keymat[20..], charon_secret(LOG, "encryption responder key"));
}

/// strongSwan's KE payloads carry group 19 values as x ‖ y, which the seam accepts.
#[test]
fn the_captures_ke_payloads_are_group_19_public_values() {
    let d = udp_payloads(PCAP);
    let rng = SystemRandom::new();
    for message in [d[0].payload, d[1].payload] {
        let ke = ike_payload(message, KE);
        assert_eq!(
            u16::from_be_bytes([ke[0], ke[1]]),
            DhGroup::Ecp256.transform_id()
        );
        let value = &ke[4..];
        assert_eq!(value.len(), DhGroup::Ecp256.public_len());
        let ours = DhPrivateKey::generate(DhGroup::Ecp256, &rng).unwrap();
        assert_eq!(ours.agree(value).unwrap().as_ref().len(), 32);
    }
}

fn capture_sa(spi: u32, key_label: &str) -> InboundSa {
    let key = charon_secret(LOG, key_label);
    InboundSa::new(&SaConfig {
        spi,
        esn: false,
        encr: EncrAlg::AesGcm16_128,
        encr_key: &key,
        integ: None,
    })
    .unwrap()
}

fn esp_datagrams() -> Vec<Datagram<'static>> {
    udp_payloads(PCAP)
        .into_iter()
        .filter(|d| d.to.port() == 4500 && d.payload[..4] != [0; 4])
        .collect()
}

#[test]
fn decrypts_every_esp_packet_of_the_capture_in_both_directions() {
    let mut to_responder = capture_sa(SPI_TO_RESPONDER, "encryption initiator key");
    let mut to_initiator = capture_sa(SPI_TO_INITIATOR, "encryption responder key");
    let (a, b) = (Ipv4Addr::new(10, 252, 1, 1), Ipv4Addr::new(10, 252, 2, 1));
    let mut seen = [0u32; 2];
    for d in esp_datagrams() {
        let header = EspHeader::parse(d.payload).unwrap();
        let (sa, from_initiator) = match header.spi {
            SPI_TO_RESPONDER => (&mut to_responder, true),
            SPI_TO_INITIATOR => (&mut to_initiator, false),
            other => panic!("unknown SPI {other:08x}"),
        };
        assert_eq!(from_initiator, d.from.ip() == Ipv4Addr::new(10, 250, 2, 1));
        let mut buf = d.payload.to_vec();
        let Ok(Decap::Packet(range)) = sa.decapsulate(&mut buf) else {
            panic!("packet {header:?} did not decrypt");
        };
        let ip = &buf[range];
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[9], 1, "ICMP");
        assert_eq!(checksum::checksum(&ip[..20]), 0, "IPv4 header checksum");
        let icmp = &ip[20..];
        assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum");
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        // Echo requests go from the initiator's side, replies come back.
        let expected = if from_initiator { (a, b, 8) } else { (b, a, 0) };
        assert_eq!((src, dst, icmp[0]), expected, "{header:?}");
        seen[usize::from(from_initiator)] += 1;
        assert_eq!(sa.highest_seq(), u64::from(header.seq));
    }
    assert_eq!(seen, [4, 4]);
    assert_eq!(to_responder.usage().packets, 4);
    assert_eq!(to_responder.usage().bytes, 4 * 84);
}

#[test]
fn a_replayed_capture_packet_is_refused() {
    let mut sa = capture_sa(SPI_TO_RESPONDER, "encryption initiator key");
    let packets: Vec<&[u8]> = esp_datagrams()
        .into_iter()
        .filter(|d| EspHeader::parse(d.payload).unwrap().spi == SPI_TO_RESPONDER)
        .map(|d| d.payload)
        .collect();
    assert!(sa.decapsulate(&mut packets[1].to_vec()).is_ok());
    assert_eq!(
        sa.decapsulate(&mut packets[1].to_vec()),
        Err(EspError::Replay)
    );
    // An older one that was never received is still inside the window.
    assert!(sa.decapsulate(&mut packets[0].to_vec()).is_ok());
    assert_eq!(
        sa.decapsulate(&mut packets[0].to_vec()),
        Err(EspError::Replay)
    );
}

#[test]
fn a_flipped_bit_in_a_capture_packet_fails_integrity() {
    let packet = esp_datagrams()[0].payload;
    // IV, first and last ciphertext bytes, ICV; every bit of a few bytes.
    for at in [
        8,
        15,
        16,
        packet.len() - 17,
        packet.len() - 16,
        packet.len() - 1,
    ] {
        for bit in 0..8 {
            let mut sa = capture_sa(SPI_TO_RESPONDER, "encryption initiator key");
            let mut bad = packet.to_vec();
            bad[at] ^= 1 << bit;
            assert_eq!(
                sa.decapsulate(&mut bad),
                Err(EspError::Integrity),
                "byte {at} bit {bit}"
            );
            assert_eq!(sa.highest_seq(), 0);
            assert!(sa.decapsulate(&mut packet.to_vec()).is_ok());
        }
    }
}

/// An ESP test case of [draft-mcgrew-gcm-test-01 § 4]: keying material (key ‖ salt), the
/// whole ESP packet, the plaintext (payload and trailer), and where the receiver's window
/// stands for ESN cases.
struct DraftCase {
    name: &'static str,
    encr: EncrAlg,
    keymat: &'static str,
    esn_top: Option<u64>,
    packet: &'static str,
    plaintext: &'static str,
}

const DRAFT_CASES: [DraftCase; 7] = [
    DraftCase {
        name: "#1 AES-128, ESN",
        encr: EncrAlg::AesGcm16_128,
        keymat: "4c80cdefbb5d10da906ac73c3613a634 2e443b68",
        esn_top: Some(0x8765_4320_ffff_ffff),
        packet: "00004321 00000000 4956ed7e3b244cfe
                 fecf537e729d5b07dc30df528dd22b76 8d1b98736696a6fd348509fa13ceac34
                 cfa2436f14a3f3cf65925bf1f4a13c5d 15b21e1884f5ff6247aeabb786b93bce
                 61bc17d768fd9732459018148f6cbe72 2fd04796562dfdb4",
        plaintext: "45000048699a000080114db7c0a80102 c0a801010a9bf15638d3010000010000
                    00000000045f736970045f7564700373 69700963796265726369747902646b00
                    0021000101020201",
    },
    DraftCase {
        name: "#2 AES-128",
        encr: EncrAlg::AesGcm16_128,
        keymat: "feffe9928665731c6d6a8f9467308308 cafebabe",
        esn_top: None,
        packet: "0000a5f8 0000000a facedbaddecaf888
                 deb22cd9b07c72c16e3a65beeb8df304 a5a5897d33ae530f1ba76d5d114d2a5c
                 3de81827c10e9a4f51330d0eec416642 cfbb85a5b47e48a4ec3b9ba95d918bd1
                 83b70d3aa8bc6ee4c309e9d85a41ad4a",
        plaintext: "4500003e698f000080114dccc0a80102 c0a801010a980035002a2343b2d00100
                    00010000000000000373697009637962 65726369747902646b00000100010001",
    },
    DraftCase {
        name: "#3 AES-256",
        encr: EncrAlg::AesGcm16_256,
        keymat: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab 11223344",
        esn_top: None,
        packet: "4a2cbfe3 00000002 0102030405060708
                 ff425c9b724599df7a3bcd510194e00d 6a78107f1b0b1cbf06efae9d65a5d763
                 748a637985771d347f0545659f14e99d ef842d8eb335f4eecfdbf831824b4c49
                 15956c96",
        plaintext: "4500003069a6400080062690c0a80102 9389155e0a9e008b2dc57ee000000000
                    7002400020bf0000020405b401010402 01020201",
    },
    DraftCase {
        name: "#4 AES-128, all-zero key",
        encr: EncrAlg::AesGcm16_128,
        keymat: "00000000000000000000000000000000 00000000",
        esn_top: None,
        packet: "00000000 00000001 0000000000000000
                 4688daf2f973a392732909c331d56d60 f694abaa414b5e7ff5fdcdfff5e9a284
                 456476492719ffb64de7d9dca1e1d894 bc3bd57873ed4d181d19d4d5c8c18af3
                 f821d496eeb096e98ad2b69e4799c71d",
        plaintext: "4500003c99c500008001cb7a40679318 010101010800075c0200440061626364
                    65666768696a6b6c6d6e6f7071727374 75767761626364656667686901020201",
    },
    DraftCase {
        name: "#8 AES-128, ESN, first packet",
        encr: EncrAlg::AesGcm16_128,
        keymat: "abbccddef00112233445566778899aab decaf888",
        esn_top: Some(0),
        packet: "00000100 00000001 cafedebaceface74
                 18a6fd42f72cbf4ab2a2ea901f73d814 e3e7f243d95412e1c349c1d2fbec168f
                 9190feebaf2cb01984e65863965d7472 b79da345e0e780191f0d2f0e0f496c22
                 6f2127b27db35724e7845d68651f57e6 5f354f75ff17015769623436",
        plaintext: "4500004933ba00007f119106c3fb1d10 c2b1d326c02831ce0035dd7b800302d5
                    00004e20001e8c18d75b81dc91baa047 6b91b924b280389d92c963bac046ec95
                    9b6266c04722b14923010101",
    },
    DraftCase {
        name: "#12 AES-128, sequence number 2^32 - 1, empty payload",
        encr: EncrAlg::AesGcm16_128,
        keymat: "7d773d00c144c525ac619d18c84a3f47 d9664267",
        esn_top: None,
        packet: "335467ae ffffffff 43457e9182443bc6
                 437f866bcb3f699fe9b0822bac961c45 04bef270",
        plaintext: "01020201",
    },
    DraftCase {
        name: "#14 AES-256, ESN 2^64 - 1",
        encr: EncrAlg::AesGcm16_256,
        keymat: "6c6567616c697a656d6172696a75616e 61616e64646f69746265666f72656961 7475726e",
        esn_top: Some(0xffff_ffff_ffff_fffe),
        packet: "796b6963 ffffffff 333021696765746d
                 f97ab2aa356d8edce17644ac8c78e25d d24dedbb29ebf1b64a274b39b49c3a86
                 4cd3d78ca4ae68a32b42458fb57dbe82 1dcc63b9d0937ba2945f669368661a32
                 9fb4c053",
        plaintext: "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364
                    65666768696a6b6c6d6e6f7071727374 01020201",
    },
];

/// The draft's packets carry next header 1 (its plaintexts were made for transport mode),
/// which a tunnel refuses; [`InboundSa::open`] shows them decrypted and trimmed correctly.
#[test]
fn draft_mcgrew_gcm_test_01_esp_packets_open() {
    for case in &DRAFT_CASES {
        let keymat = hex(case.keymat);
        let mut packet = hex(case.packet);
        let plaintext = hex(case.plaintext);
        let spi = EspHeader::parse(&packet).unwrap().spi;
        let cfg = SaConfig {
            spi,
            esn: case.esn_top.is_some(),
            encr: case.encr,
            encr_key: &keymat,
            integ: None,
        };
        let mut sa = InboundSa::new(&cfg).unwrap();
        if let Some(top) = case.esn_top.filter(|&t| t > 0) {
            sa.window_mut().reset_to(top);
        }
        let pad_len = usize::from(plaintext[plaintext.len() - 2]);
        let payload = &plaintext[..plaintext.len() - 2 - pad_len];

        let mut again = packet.clone();
        let opened = sa
            .open(&mut packet)
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        assert_eq!(opened.next_header, 1, "{}", case.name);
        assert_eq!(&packet[opened.payload.clone()], payload, "{}", case.name);
        assert_eq!(opened.seq, sa.highest_seq(), "{}", case.name);
        assert_eq!(
            sa.decapsulate(&mut again),
            Err(EspError::Replay),
            "{}",
            case.name
        );

        let mut fresh = InboundSa::new(&cfg).unwrap();
        if let Some(top) = case.esn_top.filter(|&t| t > 0) {
            fresh.window_mut().reset_to(top);
        }
        assert_eq!(
            fresh.decapsulate(&mut hex(case.packet)),
            Err(EspError::UnknownNextHeader(1)),
            "{}",
            case.name
        );
    }
}
