//! AES-GCM with a 16-byte tag (ENCR_AES_GCM_16) over caller buffers, in place.
//!
//! The caller builds the 12-byte nonce: ESP and IKE both use the 4-byte salt from the keying
//! material followed by the 8-byte IV carried in the packet [RFC 4106 § 4; RFC 5282 for IKE].
//! The caller also guarantees that a nonce is never used twice with a key (ESP uses the
//! sequence number as IV); that is why this goes through ring's `LessSafeKey`.

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::CryptoError;

/// An AES-128-GCM or AES-256-GCM key.
pub struct AesGcm {
    key: LessSafeKey,
}

impl AesGcm {
    /// Length of the authentication tag.
    pub const TAG_LEN: usize = 16;
    /// Length of the nonce (salt ‖ IV).
    pub const NONCE_LEN: usize = 12;

    /// A key of 16 (AES-128) or 32 (AES-256) bytes, without the salt.
    pub fn new(key: &[u8]) -> Result<AesGcm, CryptoError> {
        let alg = match key.len() {
            16 => &aead::AES_128_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Err(CryptoError::KeyLength),
        };
        let key = UnboundKey::new(alg, key).map_err(|_| CryptoError::KeyLength)?;
        Ok(AesGcm {
            key: LessSafeKey::new(key),
        })
    }

    /// Encrypts `in_out` minus its last [`Self::TAG_LEN`] bytes in place and writes the tag
    /// into those last bytes.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; Self::NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        let split = in_out
            .len()
            .checked_sub(Self::TAG_LEN)
            .ok_or(CryptoError::Length)?;
        let (data, tag_out) = in_out.split_at_mut(split);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), data)
            .map_err(|_| CryptoError::Length)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Verifies and decrypts `in_out` (ciphertext ‖ tag) in place. Returns the length of the
    /// plaintext, which starts at `in_out[0]`. On failure the contents of `in_out` are
    /// unspecified.
    pub fn open_in_place(
        &self,
        nonce: &[u8; Self::NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if in_out.len() < Self::TAG_LEN {
            return Err(CryptoError::Length);
        }
        self.key
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError::Authentication)
    }
}

impl fmt::Debug for AesGcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesGcm")
            .field("alg", self.key.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::hex;

    struct Vector {
        key: &'static str,
        nonce: &'static str,
        aad: &'static str,
        plain: &'static str,
        cipher_and_tag: &'static str,
    }

    fn check(v: &Vector) {
        let gcm = AesGcm::new(&hex(v.key)).unwrap();
        let nonce: [u8; 12] = hex(v.nonce).try_into().unwrap();
        let aad = hex(v.aad);
        let plain = hex(v.plain);
        let expected = hex(v.cipher_and_tag);

        let mut buf = plain.clone();
        buf.extend_from_slice(&[0; AesGcm::TAG_LEN]);
        gcm.seal_in_place(&nonce, &aad, &mut buf).unwrap();
        assert_eq!(buf, expected);

        let n = gcm.open_in_place(&nonce, &aad, &mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[..]);

        let mut tampered = expected.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            gcm.open_in_place(&nonce, &aad, &mut tampered),
            Err(CryptoError::Authentication)
        );
        let mut buf = expected.clone();
        let mut other_aad = aad.clone();
        other_aad[0] ^= 0x80;
        assert_eq!(
            gcm.open_in_place(&nonce, &other_aad, &mut buf),
            Err(CryptoError::Authentication)
        );
    }

    /// [draft-mcgrew-gcm-test-01 § 4] test case #2: AES-128, 32-bit sequence number.
    #[test]
    fn draft_mcgrew_gcm_test_case_2_aes128() {
        check(&Vector {
            key: "feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabe facedbaddecaf888",
            aad: "0000a5f8 0000000a",
            plain: "4500003e698f000080114dccc0a80102 c0a801010a980035002a2343b2d00100
                    00010000000000000373697009637962 65726369747902646b00000100010001",
            cipher_and_tag: "deb22cd9b07c72c16e3a65beeb8df304 a5a5897d33ae530f1ba76d5d114d2a5c
                             3de81827c10e9a4f51330d0eec416642 cfbb85a5b47e48a4ec3b9ba95d918bd1
                             83b70d3aa8bc6ee4c309e9d85a41ad4a",
        });
    }

    /// [draft-mcgrew-gcm-test-01 § 4] test case #3: AES-256, 32-bit sequence number.
    #[test]
    fn draft_mcgrew_gcm_test_case_3_aes256() {
        check(&Vector {
            key: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab",
            nonce: "11223344 0102030405060708",
            aad: "4a2cbfe3 00000002",
            plain: "4500003069a6400080062690c0a80102 9389155e0a9e008b2dc57ee000000000
                    7002400020bf0000020405b401010402 01020201",
            cipher_and_tag: "ff425c9b724599df7a3bcd510194e00d 6a78107f1b0b1cbf06efae9d65a5d763
                             748a637985771d347f0545659f14e99d ef842d8eb335f4eecfdbf831824b4c49
                             15956c96",
        });
    }

    /// [draft-mcgrew-gcm-test-01 § 4] test case #1: AES-128, 64-bit (extended) sequence
    /// number, so a 12-byte AAD [RFC 4106 § 5].
    #[test]
    fn draft_mcgrew_gcm_test_case_1_aes128_esn() {
        check(&Vector {
            key: "4c80cdefbb5d10da906ac73c3613a634",
            nonce: "2e443b68 4956ed7e3b244cfe",
            aad: "00004321 87654321 00000000",
            plain: "45000048699a000080114db7c0a80102 c0a801010a9bf15638d3010000010000
                    00000000045f736970045f7564700373 69700963796265726369747902646b00
                    0021000101020201",
            cipher_and_tag: "fecf537e729d5b07dc30df528dd22b76 8d1b98736696a6fd348509fa13ceac34
                             cfa2436f14a3f3cf65925bf1f4a13c5d 15b21e1884f5ff6247aeabb786b93bce
                             61bc17d768fd9732459018148f6cbe72 2fd04796562dfdb4",
        });
    }

    /// [draft-mcgrew-gcm-test-01 § 4] test case #14: AES-256, extended sequence number
    /// 0xffffffffffffffff.
    #[test]
    fn draft_mcgrew_gcm_test_case_14_aes256_esn() {
        check(&Vector {
            key: "6c6567616c697a656d6172696a75616e 61616e64646f69746265666f72656961",
            nonce: "7475726e 333021696765746d",
            aad: "796b6963 ffffffff ffffffff",
            plain: "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364
                    65666768696a6b6c6d6e6f7071727374 01020201",
            cipher_and_tag: "f97ab2aa356d8edce17644ac8c78e25d d24dedbb29ebf1b64a274b39b49c3a86
                             4cd3d78ca4ae68a32b42458fb57dbe82 1dcc63b9d0937ba2945f669368661a32
                             9fb4c053",
        });
    }

    /// [McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B] test
    /// case 4: AES-128 with AAD and a plaintext that is not a whole number of blocks.
    #[test]
    fn gcm_spec_test_case_4_aes128() {
        check(&Vector {
            key: "feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeef abaddad2",
            plain: "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72
                    1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39",
            cipher_and_tag: "42831ec2217774244b7221b784d0d49c e3aa212f2c02a4e035c17e2329aca12e
                             21d514b25466931c7d8f6a5aac84aa05 1ba30b396a0aac973d58e091
                             5bc94fbc3221a5db94fae95ae7121a47",
        });
    }

    /// [McGrew & Viega, GCM, Appendix B] test case 16: AES-256 with AAD.
    #[test]
    fn gcm_spec_test_case_16_aes256() {
        check(&Vector {
            key: "feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeef abaddad2",
            plain: "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72
                    1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39",
            cipher_and_tag: "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa
                             8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662
                             76fc6ece0f4e1768cddf8853bb2d551b",
        });
    }

    #[test]
    fn refuses_wrong_key_lengths_and_buffers_shorter_than_the_tag() {
        assert_eq!(AesGcm::new(&[0; 24]).err(), Some(CryptoError::KeyLength));
        assert_eq!(AesGcm::new(&[0; 20]).err(), Some(CryptoError::KeyLength));
        let gcm = AesGcm::new(&[7; 16]).unwrap();
        let mut short = [0u8; 15];
        assert_eq!(
            gcm.seal_in_place(&[0; 12], b"", &mut short),
            Err(CryptoError::Length)
        );
        assert_eq!(
            gcm.open_in_place(&[0; 12], b"", &mut short),
            Err(CryptoError::Length)
        );
        // An empty plaintext is sealed into a bare tag, and opens to nothing.
        let mut tag_only = [0u8; 16];
        gcm.seal_in_place(&[1; 12], b"aad", &mut tag_only).unwrap();
        assert_eq!(gcm.open_in_place(&[1; 12], b"aad", &mut tag_only), Ok(0));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let s = format!("{:?}", AesGcm::new(&[0xab; 16]).unwrap());
        assert!(s.contains("AES_128_GCM"), "{s}");
        assert!(!s.contains("171"), "{s}");
    }
}
