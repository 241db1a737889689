//! The body of the `esp_decap` fuzz target, and the oracle it checks. Not used by the data
//! path: it allocates.
//!
//! The first input byte picks a mode; the rest is the packet or what to build one from:
//! * 0: raw bytes into the capture's GCM-128 SA (SPI eb10f7aa, the seed corpus holds its
//!   real packets); 1: raw bytes into an AES-CBC-128 / HMAC-SHA-256 SA with ESN.
//! * 2 and 3: a 4-byte sequence number and an arbitrary plaintext (payload, padding, pad
//!   length, next header as the fuzzer likes) that are sealed with the SA's keys first, so
//!   that the trailer and next-header paths behind the integrity check are reached.
//!
//! Oracle: nothing panics; an inner packet lies inside the buffer and is as long as its IPv4
//! total length says; a packet built with the SA's keys never fails integrity and is
//! interpreted by its own last byte; any authentic packet, received again, is a replay.

use crate::crypto::{EncrAlg, IntegAlg};

use super::transform::Transform;
use super::{Decap, EspError, InboundSa, SaConfig, HEADER_LEN};

/// The capture's initiator-to-responder SA (`encryption initiator key`: key ‖ salt).
pub const CAPTURE_SPI: u32 = 0xeb10_f7aa;
pub const CAPTURE_KEY: [u8; 20] = [
    0x03, 0xCD, 0xE3, 0x97, 0x23, 0x20, 0x91, 0x8E, 0x15, 0x9B, 0x9B, 0x38, 0x57, 0x4A, 0x5F, 0xE2,
    0x73, 0x69, 0x5E, 0x74,
];
const CBC_SPI: u32 = 0x0000_c0de;
const CBC_KEY: [u8; 16] = [0x11; 16];
const CBC_INTEG_KEY: [u8; 32] = [0x22; 32];

/// The configuration of the SA a mode byte selects.
pub fn config(mode: u8) -> SaConfig<'static> {
    if mode % 2 == 0 {
        SaConfig {
            spi: CAPTURE_SPI,
            esn: false,
            encr: EncrAlg::AesGcm16_128,
            encr_key: &CAPTURE_KEY,
            integ: None,
        }
    } else {
        SaConfig {
            spi: CBC_SPI,
            esn: true,
            encr: EncrAlg::AesCbc128,
            encr_key: &CBC_KEY,
            integ: Some((IntegAlg::HmacSha256_128, &CBC_INTEG_KEY)),
        }
    }
}

/// Runs one input; returns what the first decapsulation gave, `None` for inputs that select
/// nothing (empty, or no packet could be sealed from them).
pub fn decap(data: &[u8]) -> Option<Result<Decap, EspError>> {
    let (&mode, rest) = data.split_first()?;
    let cfg = config(mode);
    let Ok(mut sa) = InboundSa::new(&cfg) else {
        unreachable!("fixed configurations are valid");
    };
    // For a sealed packet, the next header its plaintext ends with.
    let (packet, sealed_nh) = if mode % 4 < 2 {
        (rest.to_vec(), None)
    } else {
        let (p, nh) = seal(&cfg, rest)?;
        (p, Some(nh))
    };

    let mut buf = packet.clone();
    let first = sa.decapsulate(&mut buf);
    check(&buf, &first);
    if let Some(nh) = sealed_nh {
        assert_ne!(first, Err(EspError::Integrity), "sealed with the SA's keys");
        assert_ne!(first, Err(EspError::WrongSpi));
        match first {
            Ok(Decap::Packet(_)) | Err(EspError::InnerMalformed) => assert_eq!(nh, Some(4)),
            Ok(Decap::Dummy) => assert_eq!(nh, Some(59)),
            Err(EspError::UnknownNextHeader(got)) => assert_eq!(nh, Some(got)),
            _ => {}
        }
    }
    let authentic = matches!(
        first,
        Ok(_)
            | Err(EspError::Padding)
            | Err(EspError::UnknownNextHeader(_))
            | Err(EspError::InnerMalformed)
    );
    let mut again = packet;
    let second = sa.decapsulate(&mut again);
    if authentic {
        assert_eq!(second, Err(EspError::Replay), "an authentic packet twice");
        assert_eq!(sa.usage().packets, 1);
    } else {
        assert_eq!(sa.usage().packets, 0);
    }
    Some(first)
}

/// SPI ‖ seq ‖ IV ‖ plaintext ‖ ICV, sealed with the SA's keys, and the plaintext's last
/// byte; `None` when the input has no sequence number or a CBC plaintext is not a whole
/// number of blocks.
pub(super) fn seal(cfg: &SaConfig<'_>, rest: &[u8]) -> Option<(Vec<u8>, Option<u8>)> {
    let (seq, plain) = rest.split_first_chunk::<4>()?;
    let Ok(transform) = Transform::new(cfg) else {
        unreachable!("fixed configurations are valid");
    };
    if plain.len() % transform.cipher_align() != 0 {
        return None;
    }
    let hdr = transform.header_len();
    let mut packet = vec![0u8; hdr + plain.len() + transform.icv_len()];
    packet[..4].copy_from_slice(&cfg.spi.to_be_bytes());
    packet[4..HEADER_LEN].copy_from_slice(seq);
    for (i, b) in packet[HEADER_LEN..hdr].iter_mut().enumerate() {
        *b = 0xa0 ^ i as u8;
    }
    packet[hdr..hdr + plain.len()].copy_from_slice(plain);
    // A fresh ESN window reads every low half as subspace 0.
    let seq_hi = cfg.esn.then_some(0);
    transform.seal(&mut packet, seq_hi).ok()?;
    Some((packet, plain.last().copied()))
}

fn check(buf: &[u8], result: &Result<Decap, EspError>) {
    if let Ok(Decap::Packet(range)) = result {
        assert!(range.start <= range.end && range.end <= buf.len());
        let inner = &buf[range.clone()];
        assert!(inner.len() >= 20);
        assert_eq!(inner[0] >> 4, 4);
        assert_eq!(
            usize::from(u16::from_be_bytes([inner[2], inner[3]])),
            inner.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ipv4;
    use super::super::{EspHeader, OutboundSa};
    use super::*;
    use crate::crypto::CountingRandom;

    fn corpus_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/esp_decap")
    }

    #[test]
    fn fuzz_body_runs_over_the_seed_corpus() {
        let mut seen = 0;
        for entry in std::fs::read_dir(corpus_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let got = decap(&std::fs::read(&path).unwrap());
            // Each seed reaches the outcome it was made for.
            let ok = match name.as_str() {
                "gcm_sealed_dummy" => got == Some(Ok(Decap::Dummy)),
                "gcm_sealed_bad_pad" => got == Some(Err(EspError::Padding)),
                _ => matches!(got, Some(Ok(Decap::Packet(_)))),
            };
            assert!(ok, "{name}: {got:?}");
            seen += 1;
        }
        assert!(seen >= 8, "only {seen} seeds");
        // A few shapes that are no seeds.
        for data in [
            &[][..],
            &[0],
            &[1, 0, 0],
            &[2, 0, 0, 0, 1],
            &[3, 0, 0, 0, 1, 9],
        ] {
            decap(data);
        }
    }

    /// Regenerates the committed seed corpus of the `esp_decap` fuzz target from the capture
    /// and the SA builders:
    /// `cargo test --lib esp::fuzz::tests::write_seed_corpus -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus; run by hand"]
    fn write_seed_corpus() {
        let dir = corpus_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
        let pcap = include_bytes!("../../../../tests/vectors/ipsec-ike-esp.pcap");
        for d in crate::tunnel::testvec::udp_payloads(pcap) {
            if let Ok(h) = EspHeader::parse(d.payload) {
                if h.spi == CAPTURE_SPI {
                    seeds.push((
                        format!("capture_seq{}", h.seq),
                        [&[0u8][..], d.payload].concat(),
                    ));
                }
            }
        }
        let echo = ipv4(48, 0x61);
        seeds.push((
            "gcm_sealed_ipv4".into(),
            [&[2u8, 0, 0, 0, 1][..], &echo, &[1, 2, 2, 4]].concat(),
        ));
        seeds.push((
            "gcm_sealed_tfc".into(),
            [&[2u8, 0, 0, 0, 2][..], &echo, &[0; 9], &[1, 2, 3, 3, 4]].concat(),
        ));
        seeds.push((
            "gcm_sealed_dummy".into(),
            vec![2, 0, 0, 0, 3, 0xd, 0xd, 0, 59],
        ));
        seeds.push((
            "gcm_sealed_bad_pad".into(),
            [&[2u8, 0, 0, 0, 4][..], &echo, &[2, 1, 2, 4]].concat(),
        ));
        seeds.push((
            "cbc_sealed_ipv4".into(),
            [
                &[3u8, 0, 0, 0, 1][..],
                &echo,
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14, 4],
            ]
            .concat(),
        ));
        let cfg = config(1);
        let mut out = OutboundSa::new(&cfg).unwrap();
        let mut buf = [0u8; 256];
        let n = out
            .encapsulate(&mut CountingRandom(0), &ipv4(52, 7), &mut buf)
            .unwrap();
        seeds.push(("cbc_esn_raw".into(), [&[1u8][..], &buf[..n]].concat()));
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
