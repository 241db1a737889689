//! The integrity transforms AUTH_HMAC_SHA2_256_128, _384_192 and _512_256: HMAC truncated to
//! half the hash output [RFC 4868 § 2.1.1], for ESP (with AES-CBC) and IKE SK payloads.
//!
//! Verification compares the truncated values in constant time.

use std::fmt;

use ring::hmac;
use subtle::ConstantTimeEq;

use super::prf::PrfAlg;
use super::CryptoError;

/// An integrity transform (IKEv2 transform type 3).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA2_256_128.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256.
    HmacSha512_256,
}

impl IntegAlg {
    pub const ALL: [IntegAlg; 3] = [
        IntegAlg::HmacSha256_128,
        IntegAlg::HmacSha384_192,
        IntegAlg::HmacSha512_256,
    ];

    /// The IKEv2 transform ID: 12, 13, 14.
    pub const fn transform_id(self) -> u16 {
        match self {
            IntegAlg::HmacSha256_128 => 12,
            IntegAlg::HmacSha384_192 => 13,
            IntegAlg::HmacSha512_256 => 14,
        }
    }

    pub fn from_transform(id: u16) -> Option<IntegAlg> {
        IntegAlg::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    /// Length of the key, which is fixed: the hash output length [RFC 4868 § 2.1.1].
    pub const fn key_len(self) -> usize {
        self.hash().output_len()
    }

    /// Length of the truncated output (the ICV): half the hash output [RFC 4868 § 2.1.1].
    pub const fn icv_len(self) -> usize {
        self.hash().output_len() / 2
    }

    const fn hash(self) -> PrfAlg {
        match self {
            IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
            IntegAlg::HmacSha384_192 => PrfAlg::HmacSha384,
            IntegAlg::HmacSha512_256 => PrfAlg::HmacSha512,
        }
    }
}

/// A keyed integrity transform.
#[derive(Clone)]
pub struct Integ {
    alg: IntegAlg,
    key: hmac::Key,
}

impl Integ {
    /// A key of exactly [`IntegAlg::key_len`] bytes.
    pub fn new(alg: IntegAlg, key: &[u8]) -> Result<Integ, CryptoError> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::KeyLength);
        }
        Ok(Integ {
            alg,
            key: hmac::Key::new(alg.hash().ring(), key),
        })
    }

    pub fn alg(&self) -> IntegAlg {
        self.alg
    }

    pub fn icv_len(&self) -> usize {
        self.alg.icv_len()
    }

    fn tag(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign()
    }

    /// Writes the ICV of the concatenation of `parts` into `icv`, which must be exactly
    /// [`Self::icv_len`] bytes long.
    pub fn sign(&self, parts: &[&[u8]], icv: &mut [u8]) -> Result<(), CryptoError> {
        if icv.len() != self.icv_len() {
            return Err(CryptoError::Length);
        }
        icv.copy_from_slice(&self.tag(parts).as_ref()[..self.icv_len()]);
        Ok(())
    }

    /// Checks `icv` against the concatenation of `parts`, in constant time.
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), CryptoError> {
        if icv.len() != self.icv_len() {
            return Err(CryptoError::Length);
        }
        let tag = self.tag(parts);
        if bool::from(tag.as_ref()[..self.icv_len()].ct_eq(icv)) {
            Ok(())
        } else {
            Err(CryptoError::Authentication)
        }
    }
}

impl fmt::Debug for Integ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integ")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::hex;

    fn check(alg: IntegAlg, name: &str, key: &[u8], data: &[u8], icv: &str) {
        let integ = Integ::new(alg, key).unwrap();
        let icv = hex(icv);
        let mut out = vec![0u8; alg.icv_len()];
        integ.sign(&[data], &mut out).unwrap();
        assert_eq!(out, icv, "{name}");
        assert_eq!(integ.verify(&[data], &icv), Ok(()), "{name}");
        let (a, b) = data.split_at(3);
        assert_eq!(integ.verify(&[a, b], &icv), Ok(()), "{name} in parts");
        for i in 0..icv.len() {
            let mut bad = icv.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                integ.verify(&[data], &bad),
                Err(CryptoError::Authentication),
                "{name} byte {i}"
            );
        }
    }

    const JEFE: &[u8] = b"what do ya want for nothing?";

    /// [RFC 4868 § 2.7.2.1] AUTH256-1 .. AUTH256-4, HMAC-SHA-256-128.
    #[test]
    fn rfc4868_2_7_2_1_hmac_sha256_128() {
        let a = IntegAlg::HmacSha256_128;
        let k4: Vec<u8> = (0x01..=0x20).collect();
        check(
            a,
            "AUTH256-1",
            &[0x0b; 32],
            b"Hi There",
            "198a607eb44bfbc69903a0f1cf2bbdc5",
        );
        check(
            a,
            "AUTH256-2",
            &b"Jefe".repeat(8),
            JEFE,
            "167f928588c5cc2eef8e3093caa0e87c",
        );
        check(
            a,
            "AUTH256-3",
            &[0xaa; 32],
            &[0xdd; 50],
            "cdcb1220d1ecccea91e53aba3092f962",
        );
        check(
            a,
            "AUTH256-4",
            &k4,
            &[0xcd; 50],
            "372efcf9b40b35c2115b1346903d2ef4",
        );
    }

    /// [RFC 4868 § 2.7.2.2] AUTH384-1 .. AUTH384-4, HMAC-SHA-384-192. AUTH384-4 uses the key
    /// as printed in the RFC (erratum 5507, held for document update, proposes another).
    #[test]
    fn rfc4868_2_7_2_2_hmac_sha384_192() {
        let a = IntegAlg::HmacSha384_192;
        let k4: Vec<u8> = (0x01..=0x20).chain(0x0a..=0x19).collect();
        let icv1 = "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973";
        let icv2 = "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d";
        let icv3 = "809f439be00274321d4a538652164b53554a508184a0c316";
        let icv4 = "5b540085c6e6358096532b2493609ed1cb298f774f87bb5c";
        check(a, "AUTH384-1", &[0x0b; 48], b"Hi There", icv1);
        check(a, "AUTH384-2", &b"Jefe".repeat(12), JEFE, icv2);
        check(a, "AUTH384-3", &[0xaa; 48], &[0xdd; 50], icv3);
        check(a, "AUTH384-4", &k4, &[0xcd; 50], icv4);
    }

    /// [RFC 4868 § 2.7.2.3] AUTH512-1 .. AUTH512-4, HMAC-SHA-512-256 (AUTH512-4 with the
    /// 64-byte key of verified erratum 1785).
    #[test]
    fn rfc4868_2_7_2_3_hmac_sha512_256() {
        let a = IntegAlg::HmacSha512_256;
        let k4: Vec<u8> = (0x01..=0x40).collect();
        let icv1 = "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8";
        let icv2 = "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454";
        let icv3 = "2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8";
        let icv4 = "5e6688e5a3daec826ca32eaea224eff5e700628947470e13ad01302561bab108";
        check(a, "AUTH512-1", &[0x0b; 64], b"Hi There", icv1);
        check(a, "AUTH512-2", &b"Jefe".repeat(16), JEFE, icv2);
        check(a, "AUTH512-3", &[0xaa; 64], &[0xdd; 50], icv3);
        check(a, "AUTH512-4", &k4, &[0xcd; 50], icv4);
    }

    #[test]
    fn integ_transform_ids_and_lengths() {
        assert_eq!(IntegAlg::from_transform(12), Some(IntegAlg::HmacSha256_128));
        assert_eq!(IntegAlg::from_transform(13), Some(IntegAlg::HmacSha384_192));
        assert_eq!(IntegAlg::from_transform(14), Some(IntegAlg::HmacSha512_256));
        assert_eq!(IntegAlg::from_transform(2), None);
        let sizes: Vec<(usize, usize)> = IntegAlg::ALL
            .iter()
            .map(|a| (a.key_len(), a.icv_len()))
            .collect();
        assert_eq!(sizes, [(32, 16), (48, 24), (64, 32)]);
    }

    #[test]
    fn refuses_wrong_key_and_icv_lengths() {
        for alg in IntegAlg::ALL {
            for len in [0, alg.key_len() - 1, alg.key_len() + 1] {
                assert_eq!(
                    Integ::new(alg, &vec![1; len]).err(),
                    Some(CryptoError::KeyLength)
                );
            }
            let integ = Integ::new(alg, &vec![1; alg.key_len()]).unwrap();
            let mut long = vec![0u8; alg.icv_len() + 1];
            assert_eq!(integ.sign(&[b"x"], &mut long), Err(CryptoError::Length));
            assert_eq!(
                integ.verify(&[b"x"], &long[..alg.icv_len() - 1]),
                Err(CryptoError::Length)
            );
        }
    }
}
