//! The IKEv2 pseudo-random functions PRF_HMAC_SHA2_256/384/512 [RFC 4868 § 2.1.2] and prf+,
//! the key expansion built on them [RFC 7296 § 2.13].
//!
//! Inputs are lists of slices, hashed as their concatenation, so callers can feed
//! `Ni | Nr | SPIi | SPIr` without first copying it into one buffer.

use std::fmt;

use ring::hmac;
use zeroize::Zeroize;

use super::CryptoError;

/// A PRF transform (IKEv2 transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA2_256.
    HmacSha256,
    /// PRF_HMAC_SHA2_384.
    HmacSha384,
    /// PRF_HMAC_SHA2_512.
    HmacSha512,
}

impl PrfAlg {
    pub const ALL: [PrfAlg; 3] = [PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512];

    /// The IKEv2 transform ID: 5, 6, 7.
    pub const fn transform_id(self) -> u16 {
        match self {
            PrfAlg::HmacSha256 => 5,
            PrfAlg::HmacSha384 => 6,
            PrfAlg::HmacSha512 => 7,
        }
    }

    pub fn from_transform(id: u16) -> Option<PrfAlg> {
        PrfAlg::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    /// Length of one PRF output, which is also the preferred key length (the length of
    /// SK_d, SK_pi and SK_pr) [RFC 4868 § 2.1.2, RFC 7296 § 2.14].
    pub const fn output_len(self) -> usize {
        match self {
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }

    pub(super) fn ring(self) -> hmac::Algorithm {
        match self {
            PrfAlg::HmacSha256 => hmac::HMAC_SHA256,
            PrfAlg::HmacSha384 => hmac::HMAC_SHA384,
            PrfAlg::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// The largest PRF output, in bytes.
const MAX_OUTPUT: usize = 64;

/// A keyed PRF.
#[derive(Clone)]
pub struct Prf {
    alg: PrfAlg,
    key: hmac::Key,
}

/// One PRF output; zeroed when dropped.
#[derive(Clone)]
pub struct PrfOutput {
    buf: [u8; MAX_OUTPUT],
    len: usize,
}

impl Prf {
    /// A PRF keyed with `key`, of any length (HMAC hashes keys longer than a block)
    /// [RFC 4868 § 2.1.2].
    pub fn new(alg: PrfAlg, key: &[u8]) -> Prf {
        Prf {
            alg,
            key: hmac::Key::new(alg.ring(), key),
        }
    }

    pub fn alg(&self) -> PrfAlg {
        self.alg
    }

    /// prf(K, parts[0] | parts[1] | ...).
    pub fn compute(&self, parts: &[&[u8]]) -> PrfOutput {
        self.compute_with(&[], parts, &[])
    }

    fn compute_with(&self, prefix: &[u8], parts: &[&[u8]], suffix: &[u8]) -> PrfOutput {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(prefix);
        for p in parts {
            ctx.update(p);
        }
        ctx.update(suffix);
        let tag = ctx.sign();
        let tag = tag.as_ref();
        let mut out = PrfOutput {
            buf: [0; MAX_OUTPUT],
            len: tag.len(),
        };
        out.buf[..tag.len()].copy_from_slice(tag);
        out
    }

    /// Fills `out` with prf+(K, S), S being the concatenation of `seed`:
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), output T1 | T2 | ... truncated to
    /// `out.len()` [RFC 7296 § 2.13]. At most 255 iterations: longer outputs are refused.
    pub fn prf_plus(&self, seed: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError> {
        let hlen = self.alg.output_len();
        if out.len() > 255 * hlen {
            return Err(CryptoError::OutputTooLong);
        }
        let mut prev: Option<PrfOutput> = None;
        for (i, chunk) in out.chunks_mut(hlen).enumerate() {
            // `i < 255` by the length check above.
            let counter = [(i + 1) as u8];
            let t = match &prev {
                None => self.compute_with(&[], seed, &counter),
                Some(p) => self.compute_with(p.as_ref(), seed, &counter),
            };
            chunk.copy_from_slice(&t.as_ref()[..chunk.len()]);
            prev = Some(t);
        }
        Ok(())
    }
}

impl AsRef<[u8]> for PrfOutput {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PrfOutput {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl fmt::Debug for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prf")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PrfOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrfOutput")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::hex;

    const LONG_DATA: &[u8] = b"This is a test using a larger than block-size key and a larger \
than block-size data. The key needs to be hashed before being used by the HMAC algorithm.";

    /// [RFC 4868 § 2.7.1] PRF-1 .. PRF-6 (the RFC 4231 cases) for PRF-HMAC-SHA-256, -384
    /// and -512.
    #[test]
    fn rfc4868_2_7_1_prf_test_vectors() {
        // Name, key, data, then the SHA-256, -384 and -512 outputs.
        type Case = (&'static str, Vec<u8>, &'static [u8], [&'static str; 3]);
        let cases: [Case; 6] = [
            (
                "PRF-1",
                vec![0x0b; 20],
                b"Hi There",
                [
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                "PRF-2",
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                [
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                "PRF-3",
                vec![0xaa; 20],
                &[0xdd; 50],
                [
                    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b
                     2a5ab39dc13814b94e3ab6e101a34f27",
                    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39
                     bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
                ],
            ),
            (
                "PRF-4",
                (1..=25).collect(),
                &[0xcd; 50],
                [
                    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e
                     6801dd23c4a7d679ccf8a386c674cffb",
                    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db
                     a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
                ],
            ),
            (
                "PRF-5",
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                [
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6
                     0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
            (
                "PRF-6",
                vec![0xaa; 131],
                LONG_DATA,
                [
                    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5
                     a678cc31e799176d3860e6110c46523e",
                    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944
                     b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
                ],
            ),
        ];
        for (name, key, data, expected) in &cases {
            for (alg, want) in PrfAlg::ALL.into_iter().zip(expected) {
                let prf = Prf::new(alg, key);
                assert_eq!(prf.compute(&[data]).as_ref(), hex(want), "{name} {alg:?}");
                // The same input split into parts gives the same output.
                let (a, b) = data.split_at(data.len() / 2);
                assert_eq!(prf.compute(&[a, &[], b]).as_ref(), hex(want), "{name}");
            }
        }
    }

    #[test]
    fn prf_transform_ids_and_lengths() {
        assert_eq!(PrfAlg::from_transform(5), Some(PrfAlg::HmacSha256));
        assert_eq!(PrfAlg::from_transform(6), Some(PrfAlg::HmacSha384));
        assert_eq!(PrfAlg::from_transform(7), Some(PrfAlg::HmacSha512));
        assert_eq!(PrfAlg::from_transform(2), None);
        let lens: Vec<usize> = PrfAlg::ALL.iter().map(|a| a.output_len()).collect();
        assert_eq!(lens, [32, 48, 64]);
    }

    /// prf+ against its definition spelled out with single PRF calls [RFC 7296 § 2.13].
    #[test]
    fn prf_plus_chains_outputs_with_a_counter() {
        for alg in PrfAlg::ALL {
            let prf = Prf::new(alg, b"key");
            let seed: [&[u8]; 2] = [b"Ni|Nr", b"|SPIi|SPIr"];
            let s = b"Ni|Nr|SPIi|SPIr";
            let t1 = prf.compute(&[s, &[1]]);
            let t2 = prf.compute(&[t1.as_ref(), s, &[2]]);
            let t3 = prf.compute(&[t2.as_ref(), s, &[3]]);
            let expected = [t1.as_ref(), t2.as_ref(), t3.as_ref()].concat();
            let hlen = alg.output_len();
            for len in [
                0,
                1,
                hlen - 1,
                hlen,
                hlen + 1,
                2 * hlen,
                3 * hlen - 5,
                3 * hlen,
            ] {
                let mut out = vec![0u8; len];
                prf.prf_plus(&seed, &mut out).unwrap();
                assert_eq!(out, expected[..len], "{alg:?} len {len}");
            }
        }
    }

    #[test]
    fn prf_plus_stops_at_255_iterations() {
        for alg in PrfAlg::ALL {
            let prf = Prf::new(alg, b"k");
            let max = 255 * alg.output_len();
            let mut out = vec![0u8; max];
            assert_eq!(prf.prf_plus(&[b"s"], &mut out), Ok(()));
            // The last block is T255 = prf(K, T254 | S | 0xff).
            let mut head = vec![0u8; 254 * alg.output_len()];
            prf.prf_plus(&[b"s"], &mut head).unwrap();
            let t254 = &head[head.len() - alg.output_len()..];
            let t255 = prf.compute(&[t254, b"s", &[255]]);
            assert_eq!(&out[head.len()..], t255.as_ref());

            let mut too_long = vec![0u8; max + 1];
            assert_eq!(
                prf.prf_plus(&[b"s"], &mut too_long),
                Err(CryptoError::OutputTooLong)
            );
        }
    }
}
