//! The crypto floor of one forwarded packet: the AEAD work of the two tunnels and nothing else.
//! What the sender sealed is opened with the ingress tunnel's AEAD and sealed again with the
//! egress tunnel's, in place, over the same number of bytes each tunnel encrypts.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ixgw::buffer::BUF_SIZE;
use ixgw::crypto::AesGcm;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

use crate::common::{allocations, in_chunks, CHUNK};

const TAG_LEN: usize = 16;
const ESP_SPI: u32 = 0xc000_0001;

/// One tunnel's AEAD, keyed.
pub enum Aead {
    /// ESP's AES-GCM-16 through `ixgw::crypto::AesGcm`: nonce = salt ‖ IV, the IV being the
    /// 64-bit sequence number; AAD = SPI ‖ seq [RFC 4106 § 4, § 5]. The plaintext is the inner
    /// packet, padding, pad length and next header, padded to 4 bytes [RFC 4303 § 2.4].
    EspGcm { aead: AesGcm, salt: [u8; 4] },
    /// WireGuard's ChaCha20-Poly1305 with ring, the AEAD boringtun uses for data messages:
    /// nonce = 32 zero bits ‖ the 64-bit counter, no AAD, the inner packet as is.
    WireGuard(LessSafeKey),
}

impl Aead {
    /// An AES-GCM key of `key_len` (16 or 32) bytes of `fill`, and a salt.
    pub fn esp_gcm(key_len: usize, fill: u8) -> Aead {
        Aead::EspGcm {
            aead: AesGcm::new(&vec![fill; key_len]).expect("AES-128 or AES-256 key"),
            salt: [fill ^ 0x5a; 4],
        }
    }

    pub fn wireguard(fill: u8) -> Aead {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &[fill; 32]).expect("32-byte key");
        Aead::WireGuard(LessSafeKey::new(key))
    }

    /// How many bytes the tunnel encrypts for an inner packet of `len` bytes.
    fn plain_len(&self, len: usize) -> usize {
        match self {
            Aead::EspGcm { .. } => (len + 2).div_ceil(4) * 4,
            Aead::WireGuard(_) => len,
        }
    }

    /// Seals `buf[..plain]` in place as packet number `seq`; the tag follows it.
    fn seal(&self, seq: u64, buf: &mut [u8], plain: usize) {
        match self {
            Aead::EspGcm { aead, salt } => {
                let (nonce, aad) = esp_nonce_aad(salt, seq);
                aead.seal_in_place(&nonce, &aad, &mut buf[..plain + TAG_LEN])
                    .expect("seal");
            }
            Aead::WireGuard(key) => {
                let tag = key
                    .seal_in_place_separate_tag(wg_nonce(seq), Aad::empty(), &mut buf[..plain])
                    .expect("seal");
                buf[plain..plain + TAG_LEN].copy_from_slice(tag.as_ref());
            }
        }
    }

    /// Opens `buf[..plain + TAG_LEN]` in place as packet number `seq`.
    fn open(&self, seq: u64, buf: &mut [u8], plain: usize) {
        let in_out = &mut buf[..plain + TAG_LEN];
        match self {
            Aead::EspGcm { aead, salt } => {
                let (nonce, aad) = esp_nonce_aad(salt, seq);
                aead.open_in_place(&nonce, &aad, in_out).expect("open");
            }
            Aead::WireGuard(key) => {
                key.open_in_place(wg_nonce(seq), Aad::empty(), in_out)
                    .expect("open");
            }
        }
    }
}

/// The nonce and AAD of ESP packet `seq`, without extended sequence numbers, as
/// `tunnel::ipsec::esp` builds them.
fn esp_nonce_aad(salt: &[u8; 4], seq: u64) -> ([u8; AesGcm::NONCE_LEN], [u8; 8]) {
    let mut nonce = [0u8; AesGcm::NONCE_LEN];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(&ESP_SPI.to_be_bytes());
    aad[4..].copy_from_slice(&(seq as u32).to_be_bytes());
    (nonce, aad)
}

fn wg_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Open with one AEAD, seal with another, for inner packets of `len` bytes.
pub struct Floor {
    open: Aead,
    seal: Aead,
    /// Ciphertext and tag sealed in an untimed refill.
    pool: Vec<Vec<u8>>,
    len: usize,
    sent: u64,
    opened: u64,
    resealed: u64,
}

impl Floor {
    pub fn new(open: Aead, seal: Aead, len: usize) -> Floor {
        Floor {
            open,
            seal,
            pool: (0..CHUNK).map(|_| vec![0u8; BUF_SIZE]).collect(),
            len,
            // ESP's sequence numbers start at 1; WireGuard's counter does not care.
            sent: 1,
            opened: 1,
            resealed: 1,
        }
    }

    /// Untimed: the sender seals `n` packets.
    fn refill(&mut self, packet: &[u8], n: usize) {
        let plain = self.open.plain_len(self.len);
        for buf in &mut self.pool[..n] {
            buf[..self.len].copy_from_slice(packet);
            self.open.seal(self.sent, buf, plain);
            self.sent += 1;
        }
    }

    #[inline(never)]
    fn run(&mut self, n: usize) -> (Duration, u64) {
        let opened = self.open.plain_len(self.len);
        let resealed = self.seal.plain_len(self.len);
        let allocs = allocations();
        let start = Instant::now();
        for buf in &mut self.pool[..n] {
            self.open.open(self.opened, buf, opened);
            self.opened += 1;
            self.seal.seal(self.resealed, buf, resealed);
            self.resealed += 1;
            black_box(&buf[..resealed + TAG_LEN]);
        }
        let elapsed = start.elapsed();
        (elapsed, allocations() - allocs)
    }

    pub fn measure(&mut self, packet: &[u8], total: usize) -> (Duration, u64) {
        in_chunks(total, |n| {
            self.refill(packet, n);
            self.run(n)
        })
    }
}
