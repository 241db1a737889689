//! The crypto floor of one forwarded packet on one core: the ingress tunnel's AEAD open and the
//! egress tunnel's seal over the bytes each encrypts, and nothing else (as in
//! `benches/pipeline/floor.rs`).
//!
//! * WireGuard: ChaCha20-Poly1305 with ring, as boringtun does; the inner packet padded to 16
//!   bytes as the WireGuard paper pads it (boringtun does not: at most 15 bytes more work).
//! * ESP: AES-GCM-16 through `ixgw::crypto::AesGcm`, what the daemon's ESP uses: nonce = salt
//!   ‖ the 64-bit sequence number, AAD = SPI ‖ seq, the inner packet with its trailer padded to
//!   4 bytes [RFC 4106, RFC 4303 § 2.4].

use std::time::{Duration, Instant};

use clap::ValueEnum;
use ixgw::crypto::AesGcm;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

const TAG_LEN: usize = 16;
const SPI: u32 = 0xc000_0001;
/// Packets sealed ahead (untimed) and then opened and sealed again (timed) per round.
const ROUND: usize = 256;
/// Timed work per size.
const TIMED: Duration = Duration::from_millis(500);
/// Rounds per size at most, whatever the clock says.
const MAX_ROUNDS: usize = 1 << 20;

/// A tunnel's AEAD as the capacity bench names it (strongSwan's names for ESP's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AeadName {
    #[value(name = "chacha20poly1305")]
    ChaCha20Poly1305,
    #[value(name = "aes128gcm16")]
    Aes128Gcm16,
    #[value(name = "aes256gcm16")]
    Aes256Gcm16,
}

enum Aead {
    WireGuard(LessSafeKey),
    Esp { aead: AesGcm, salt: [u8; 4] },
}

impl Aead {
    fn new(name: AeadName, fill: u8) -> Aead {
        let esp = |len: usize| Aead::Esp {
            aead: AesGcm::new(&vec![fill; len]).expect("AES-128 or AES-256 key"),
            salt: [fill ^ 0x5a; 4],
        };
        match name {
            AeadName::ChaCha20Poly1305 => Aead::WireGuard(LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &[fill; 32]).expect("32-byte key"),
            )),
            AeadName::Aes128Gcm16 => esp(16),
            AeadName::Aes256Gcm16 => esp(32),
        }
    }

    /// The bytes the tunnel encrypts for an inner packet of `len` bytes.
    fn plain_len(&self, len: usize) -> usize {
        match self {
            Aead::WireGuard(_) => len.div_ceil(16) * 16,
            Aead::Esp { .. } => (len + 2).div_ceil(4) * 4,
        }
    }

    /// Seals `buf[..plain]` in place as packet `seq`; the tag follows it.
    fn seal(&self, seq: u64, buf: &mut [u8], plain: usize) {
        match self {
            Aead::WireGuard(key) => {
                let tag = key
                    .seal_in_place_separate_tag(wg_nonce(seq), Aad::empty(), &mut buf[..plain])
                    .expect("seal");
                buf[plain..plain + TAG_LEN].copy_from_slice(tag.as_ref());
            }
            Aead::Esp { aead, salt } => {
                let (nonce, aad) = esp_nonce_aad(salt, seq);
                aead.seal_in_place(&nonce, &aad, &mut buf[..plain + TAG_LEN])
                    .expect("seal");
            }
        }
    }

    /// Opens `buf[..plain + TAG_LEN]` in place as packet `seq`.
    fn open(&self, seq: u64, buf: &mut [u8], plain: usize) {
        let in_out = &mut buf[..plain + TAG_LEN];
        match self {
            Aead::WireGuard(key) => {
                key.open_in_place(wg_nonce(seq), Aad::empty(), in_out)
                    .expect("open");
            }
            Aead::Esp { aead, salt } => {
                let (nonce, aad) = esp_nonce_aad(salt, seq);
                aead.open_in_place(&nonce, &aad, in_out).expect("open");
            }
        }
    }
}

fn wg_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

fn esp_nonce_aad(salt: &[u8; 4], seq: u64) -> ([u8; AesGcm::NONCE_LEN], [u8; 8]) {
    let mut nonce = [0u8; AesGcm::NONCE_LEN];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(&SPI.to_be_bytes());
    aad[4..].copy_from_slice(&(seq as u32).to_be_bytes());
    (nonce, aad)
}

/// Packets of `size` bytes per second that one core opens with `open` and seals again with
/// `seal`.
pub fn floor(open: AeadName, seal: AeadName, size: usize) -> f64 {
    let (open, seal) = (Aead::new(open, 0x41), Aead::new(seal, 0x42));
    let (opened, sealed) = (open.plain_len(size), seal.plain_len(size));
    let len = opened.max(sealed) + TAG_LEN;
    let mut pool: Vec<Vec<u8>> = (0..ROUND).map(|_| vec![0x5a; len]).collect();
    // ESP's sequence numbers start at 1.
    let mut seq = 1u64;
    let mut timed = Duration::ZERO;
    let mut packets = 0u64;
    for _ in 0..MAX_ROUNDS {
        if timed >= TIMED {
            break;
        }
        for (k, buf) in pool.iter_mut().enumerate() {
            buf.fill(0x5a);
            open.seal(seq + k as u64, buf, opened);
        }
        let start = Instant::now();
        for (k, buf) in pool.iter_mut().enumerate() {
            open.open(seq + k as u64, buf, opened);
            seal.seal(seq + k as u64, buf, sealed);
        }
        timed += start.elapsed();
        std::hint::black_box(&pool);
        seq += ROUND as u64;
        packets += ROUND as u64;
    }
    packets as f64 / timed.as_secs_f64()
}
