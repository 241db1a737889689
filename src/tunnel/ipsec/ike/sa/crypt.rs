//! Protecting IKE messages with the keys of an IKE SA: the SK payload [RFC 7296 § 3.14] with
//! AES-GCM [RFC 5282] or AES-CBC and HMAC-SHA2 (encrypt-then-MAC), and its fragments, SKF
//! [RFC 7383 § 2.5].
//!
//! GCM IVs are a per-SA counter, never repeated under one key [RFC 5282 § 3.1]; CBC IVs come
//! from the random generator (they must be unpredictable [RFC 7296 § 3.14]).

use crate::crypto::{AesCbc, AesGcm, CryptoError, Integ, Random};
use crate::tunnel::ipsec::ike::keys::{IkeKeys, IkeSuite};
use crate::tunnel::ipsec::ike::message::{
    unpad, Encrypted, Fragment, Header, Message, MessageBuilder, PayloadChain, PayloadType,
    SkLayout, SkParams, HEADER_LEN,
};

// Both key schedules stay inline, as in the crypto seam: one per IKE SA and direction.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Gcm(AesGcm, [u8; 4]),
    Cbc(AesCbc),
}

struct Direction {
    cipher: Cipher,
    integ: Option<Integ>,
}

/// The SK keys of an IKE SA, from our point of view.
pub(super) struct SkCrypto {
    params: SkParams,
    out: Direction,
    inb: Direction,
    /// The next GCM IV.
    counter: u64,
}

impl std::fmt::Debug for SkCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkCrypto")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn direction(suite: IkeSuite, sk_e: &[u8], sk_a: &[u8]) -> Result<Direction, CryptoError> {
    let key_len = suite.encr.key_len();
    let key = sk_e.get(..key_len).ok_or(CryptoError::KeyLength)?;
    let cipher = if suite.encr.is_aead() {
        let salt = sk_e
            .get(key_len..key_len + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .ok_or(CryptoError::KeyLength)?;
        Cipher::Gcm(AesGcm::new(key)?, salt)
    } else {
        Cipher::Cbc(AesCbc::new(key)?)
    };
    let integ = suite.integ.map(|a| Integ::new(a, sk_a)).transpose()?;
    Ok(Direction { cipher, integ })
}

/// How a protected message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpenError {
    /// No SK/SKF payload, or one too short for IV and ICV.
    Layout,
    /// Integrity check or decryption failed, or the padding is wrong.
    Integrity,
}

impl SkCrypto {
    /// The keys of an IKE SA; `initiator`: we are its original initiator (we send with
    /// SK_ei/SK_ai).
    pub(super) fn new(
        suite: IkeSuite,
        keys: &IkeKeys,
        initiator: bool,
    ) -> Result<SkCrypto, CryptoError> {
        let i = direction(suite, &keys.sk_ei, &keys.sk_ai)?;
        let r = direction(suite, &keys.sk_er, &keys.sk_ar)?;
        let (out, inb) = if initiator { (i, r) } else { (r, i) };
        let params = SkParams {
            iv_len: suite.encr.iv_len(),
            block_size: if suite.encr.is_aead() {
                1
            } else {
                suite.encr.block_len()
            },
            icv_len: if suite.encr.is_aead() {
                suite.encr.icv_len()
            } else {
                suite.integ.map_or(0, |a| a.icv_len())
            },
        };
        Ok(SkCrypto {
            params,
            out,
            inb,
            counter: 0,
        })
    }

    /// Seals a message laid out by the builder in place.
    fn seal(
        &mut self,
        rng: &mut dyn Random,
        bytes: &mut [u8],
        layout: &SkLayout,
    ) -> Result<(), CryptoError> {
        match &self.out.cipher {
            Cipher::Gcm(key, salt) => {
                let iv = self.counter.to_be_bytes();
                self.counter = self.counter.checked_add(1).ok_or(CryptoError::Length)?;
                bytes[layout.iv.clone()].copy_from_slice(&iv);
                let mut nonce = [0u8; AesGcm::NONCE_LEN];
                nonce[..4].copy_from_slice(salt);
                nonce[4..].copy_from_slice(&iv);
                let (head, tail) = bytes.split_at_mut(layout.plaintext.start);
                let aad = &head[layout.aad.clone()];
                key.seal_in_place(&nonce, aad, tail)
            }
            Cipher::Cbc(key) => {
                let mut iv = [0u8; AesCbc::IV_LEN];
                rng.fill(&mut iv)?;
                bytes[layout.iv.clone()].copy_from_slice(&iv);
                key.encrypt_in_place(&iv, &mut bytes[layout.plaintext.clone()])?;
                let integ = self.out.integ.as_ref().ok_or(CryptoError::KeyLength)?;
                let (signed, icv) = bytes.split_at_mut(layout.icv.start);
                integ.sign(&[signed], icv)
            }
        }
    }

    /// The message under `header` with `inner` in an SK payload, or as SKF fragments of at
    /// most `fragment_size` octets when `fragment_size` is given and the whole would be larger.
    pub(super) fn protect(
        &mut self,
        rng: &mut dyn Random,
        header: Header,
        inner: &PayloadChain,
        fragment_size: Option<usize>,
    ) -> Result<Vec<Vec<u8>>, CryptoError> {
        let (mut whole, layout) = MessageBuilder::new(header)
            .finish_encrypted(inner, self.params)
            .map_err(|_| CryptoError::Length)?;
        match fragment_size {
            Some(max) if whole.len() > max => {}
            _ => {
                self.seal(rng, &mut whole, &layout)?;
                return Ok(vec![whole]);
            }
        }
        let max = fragment_size.unwrap_or(usize::MAX);
        let chain = inner.bytes().map_err(|_| CryptoError::Length)?;
        let p = self.params;
        // IKE header, SKF header with its fragment fields, IV, ICV, Pad Length.
        let overhead = HEADER_LEN + 8 + p.iv_len + p.icv_len + 1;
        let room = max
            .checked_sub(overhead)
            .filter(|r| *r >= p.block_size * 2)
            .ok_or(CryptoError::Length)?;
        // With a block cipher, inner + Pad Length must fit the blocks that fit.
        let chunk = if p.block_size > 1 {
            (room + 1) / p.block_size * p.block_size - 1
        } else {
            room
        };
        let total = chain.len().div_ceil(chunk);
        let total = u16::try_from(total).map_err(|_| CryptoError::Length)?;
        let mut out = Vec::with_capacity(usize::from(total));
        for (n, piece) in (1u16..).zip(chain.chunks(chunk)) {
            let first = if n == 1 {
                inner.first_type()
            } else {
                PayloadType::NONE
            };
            let frag = Fragment { number: n, total };
            let (mut bytes, layout) = MessageBuilder::new(header)
                .finish_fragment(frag, first, piece, p)
                .map_err(|_| CryptoError::Length)?;
            self.seal(rng, &mut bytes, &layout)?;
            out.push(bytes);
        }
        Ok(out)
    }

    /// Verifies and decrypts the SK or SKF payload of `msg`: the inner payload chain (or
    /// fragment content), without padding.
    pub(super) fn open(&self, msg: &Message<'_>) -> Result<Vec<u8>, OpenError> {
        let e: Encrypted<'_> = msg.encrypted().ok_or(OpenError::Layout)?;
        let p = self.params;
        let (iv, ct, icv) = e.split(p.iv_len, p.icv_len).ok_or(OpenError::Layout)?;
        let mut buf = match &self.inb.cipher {
            Cipher::Gcm(key, salt) => {
                let aad = msg.aad().ok_or(OpenError::Layout)?;
                let mut nonce = [0u8; AesGcm::NONCE_LEN];
                nonce[..4].copy_from_slice(salt);
                nonce[4..].copy_from_slice(iv);
                let mut buf = [ct, icv].concat();
                let n = key
                    .open_in_place(&nonce, aad, &mut buf)
                    .map_err(|_| OpenError::Integrity)?;
                buf.truncate(n);
                buf
            }
            Cipher::Cbc(key) => {
                let integ = self.inb.integ.as_ref().ok_or(OpenError::Integrity)?;
                let bytes = msg.bytes();
                let signed = bytes
                    .get(..bytes.len() - icv.len())
                    .ok_or(OpenError::Layout)?;
                integ
                    .verify(&[signed], icv)
                    .map_err(|_| OpenError::Integrity)?;
                let iv: [u8; AesCbc::IV_LEN] = iv.try_into().map_err(|_| OpenError::Layout)?;
                if ct.is_empty() || ct.len() % AesCbc::BLOCK_LEN != 0 {
                    return Err(OpenError::Layout);
                }
                let mut buf = ct.to_vec();
                key.decrypt_in_place(&iv, &mut buf)
                    .map_err(|_| OpenError::Integrity)?;
                buf
            }
        };
        let len = unpad(&buf).map_err(|_| OpenError::Integrity)?.len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{EncrAlg, IntegAlg, PrfAlg, SystemRandom};
    use crate::tunnel::ipsec::ike::message::{parse_inner, ExchangeType, Flags, Payload};

    fn pair(suite: IkeSuite) -> (SkCrypto, SkCrypto) {
        let keys = IkeKeys::derive(suite, &[1; 32], &[2; 32], &[3; 32], &[4; 8], &[5; 8]).unwrap();
        (
            SkCrypto::new(suite, &keys, true).unwrap(),
            SkCrypto::new(suite, &keys, false).unwrap(),
        )
    }

    #[test]
    fn round_trips_whole_and_fragmented_for_gcm_and_cbc() {
        let suites = [
            IkeSuite {
                encr: EncrAlg::AesGcm16_256,
                integ: None,
                prf: PrfAlg::HmacSha256,
            },
            IkeSuite {
                encr: EncrAlg::AesCbc128,
                integ: Some(IntegAlg::HmacSha384_192),
                prf: PrfAlg::HmacSha384,
            },
        ];
        let mut rng = SystemRandom::new();
        for suite in suites {
            let (mut i, r) = pair(suite);
            let mut inner = PayloadChain::new();
            inner.push(&Payload::VendorId(&[0x42; 700]));
            inner.push(&Payload::Nonce(&[7; 32]));
            let header = Header::new(4, 5, ExchangeType::INFORMATIONAL, Flags::INITIATOR, 3);
            let whole = i.protect(&mut rng, header, &inner, None).unwrap();
            assert_eq!(whole.len(), 1);
            let msg = Message::parse(&whole[0]).unwrap();
            let plain = r.open(&msg).unwrap();
            assert_eq!(plain, inner.bytes().unwrap());
            assert_eq!(
                i.open(&msg),
                Err(OpenError::Integrity),
                "the wrong direction"
            );
            let mut bad = whole[0].clone();
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(
                r.open(&Message::parse(&bad).unwrap()),
                Err(OpenError::Integrity)
            );

            let frags = i.protect(&mut rng, header, &inner, Some(300)).unwrap();
            assert!(frags.len() >= 3, "{suite:?}");
            let mut joined = Vec::new();
            for (n, f) in frags.iter().enumerate() {
                assert!(f.len() <= 300, "{} > 300", f.len());
                let msg = Message::parse(f).unwrap();
                let e = msg.encrypted().unwrap();
                assert_eq!(e.fragment.unwrap().number as usize, n + 1);
                let first = if n == 0 {
                    PayloadType::VENDOR_ID
                } else {
                    PayloadType::NONE
                };
                assert_eq!(e.first_inner, first);
                joined.extend(r.open(&msg).unwrap());
            }
            assert_eq!(
                parse_inner(PayloadType::VENDOR_ID, &joined).unwrap().len(),
                2
            );
        }
    }
}
