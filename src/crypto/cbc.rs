//! AES-CBC (ENCR_AES_CBC) over block-aligned caller buffers, in place, with a given IV.
//!
//! No padding is handled here: ESP and IKE pad to the block size themselves (and check their
//! own padding on receipt). CBC gives no integrity; both protocols pair it with an integrity
//! transform, encrypt-then-MAC [RFC 3602 § 2.2, RFC 7296 § 3.14].

use std::fmt;

use aes::{Aes128, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};

use super::CryptoError;

// Both key schedules stay inline: a key lives as long as its SA, and a box would only add
// a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Key {
    Aes128(Aes128),
    Aes256(Aes256),
}

/// An AES-128 or AES-256 key for CBC mode.
#[derive(Clone)]
pub struct AesCbc {
    key: Key,
}

impl AesCbc {
    /// Length of an AES block, and the alignment every buffer must have.
    pub const BLOCK_LEN: usize = 16;
    /// Length of the IV.
    pub const IV_LEN: usize = 16;

    /// A key of 16 (AES-128) or 32 (AES-256) bytes.
    pub fn new(key: &[u8]) -> Result<AesCbc, CryptoError> {
        let key = match key.len() {
            16 => Key::Aes128(Aes128::new_from_slice(key).map_err(|_| CryptoError::KeyLength)?),
            32 => Key::Aes256(Aes256::new_from_slice(key).map_err(|_| CryptoError::KeyLength)?),
            _ => return Err(CryptoError::KeyLength),
        };
        Ok(AesCbc { key })
    }

    /// Encrypts `data`, a whole number of blocks, in place.
    pub fn encrypt_in_place(
        &self,
        iv: &[u8; Self::IV_LEN],
        data: &mut [u8],
    ) -> Result<(), CryptoError> {
        check_aligned(data)?;
        match &self.key {
            Key::Aes128(k) => encrypt128(k, iv, data),
            Key::Aes256(k) => encrypt256(k, iv, data),
        }
    }

    /// Decrypts `data`, a whole number of blocks, in place.
    pub fn decrypt_in_place(
        &self,
        iv: &[u8; Self::IV_LEN],
        data: &mut [u8],
    ) -> Result<(), CryptoError> {
        check_aligned(data)?;
        match &self.key {
            Key::Aes128(k) => decrypt128(k, iv, data),
            Key::Aes256(k) => decrypt256(k, iv, data),
        }
    }
}

fn check_aligned(data: &[u8]) -> Result<(), CryptoError> {
    if data.len() % AesCbc::BLOCK_LEN == 0 {
        Ok(())
    } else {
        Err(CryptoError::Length)
    }
}

// The mode borrows the key schedule (`&Aes128` is a block cipher too), so nothing is copied
// or expanded per call.
macro_rules! cbc_fns {
    ($enc:ident, $dec:ident, $aes:ty) => {
        fn $enc(key: &$aes, iv: &[u8; AesCbc::IV_LEN], data: &mut [u8]) -> Result<(), CryptoError> {
            let len = data.len();
            cbc::Encryptor::<&$aes>::inner_iv_init(key, iv.into())
                .encrypt_padded_mut::<NoPadding>(data, len)
                .map(|_| ())
                .map_err(|_| CryptoError::Length)
        }

        fn $dec(key: &$aes, iv: &[u8; AesCbc::IV_LEN], data: &mut [u8]) -> Result<(), CryptoError> {
            cbc::Decryptor::<&$aes>::inner_iv_init(key, iv.into())
                .decrypt_padded_mut::<NoPadding>(data)
                .map(|_| ())
                .map_err(|_| CryptoError::Length)
        }
    };
}

cbc_fns!(encrypt128, decrypt128, Aes128);
cbc_fns!(encrypt256, decrypt256, Aes256);

impl fmt::Debug for AesCbc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = match self.key {
            Key::Aes128(_) => 128,
            Key::Aes256(_) => 256,
        };
        f.debug_struct("AesCbc")
            .field("bits", &bits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::hex;

    fn check(key: &str, iv: &str, plain: &[u8], cipher: &str) {
        let cbc = AesCbc::new(&hex(key)).unwrap();
        let iv: [u8; 16] = hex(iv).try_into().unwrap();
        let mut buf = plain.to_vec();
        cbc.encrypt_in_place(&iv, &mut buf).unwrap();
        assert_eq!(buf, hex(cipher));
        cbc.decrypt_in_place(&iv, &mut buf).unwrap();
        assert_eq!(buf, plain);
    }

    /// [RFC 3602 § 4] Case #1: one block, AES-128.
    #[test]
    fn rfc3602_case_1() {
        check(
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg",
            "e353779c1079aeb82708942dbe77181a",
        );
    }

    /// [RFC 3602 § 4] Case #2: two blocks, AES-128.
    #[test]
    fn rfc3602_case_2() {
        check(
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            &hex("000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f"),
            "d296cd94c2cccf8a3a863028b5e1dc0a 7586602d253cfff91b8266bea6d61ab1",
        );
    }

    /// [RFC 3602 § 4] Case #3: three blocks, AES-128.
    #[test]
    fn rfc3602_case_3() {
        check(
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            b"This is a 48-byte message (exactly 3 AES blocks)",
            "d0a02b3836451753d493665d33f0e886 2dea54cdb293abc7506939276772f8d5
             021c19216bad525c8579695d83ba2684",
        );
    }

    /// [RFC 3602 § 4] Case #4: four blocks, AES-128.
    #[test]
    fn rfc3602_case_4() {
        check(
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            &hex(
                "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf b0b1b2b3b4b5b6b7b8b9babbbcbdbebf
                  c0c1c2c3c4c5c6c7c8c9cacbcccdcecf d0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
            ),
            "c30e32ffedc0774e6aff6af0869f71aa 0f3af07a9a31a9c684db207eb0ef8e4e
             35907aa632c3ffdf868bb7b29d3d46ad 83ce9f9a102ee99d49a53e87f4c3da55",
        );
    }

    /// [NIST SP 800-38A, Appendix F.2.5] CBC-AES256.Encrypt (RFC 3602 has no 256-bit case).
    #[test]
    fn sp800_38a_f_2_5_aes256() {
        check(
            "603deb1015ca71be2b73aef0857d7781 1f352c073b6108d72d9810a30914dff4",
            "000102030405060708090a0b0c0d0e0f",
            &hex(
                "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                  30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
            ),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
             39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
        );
    }

    #[test]
    fn refuses_unaligned_data_and_wrong_key_lengths() {
        assert_eq!(AesCbc::new(&[0; 24]).err(), Some(CryptoError::KeyLength));
        assert_eq!(AesCbc::new(&[]).err(), Some(CryptoError::KeyLength));
        let cbc = AesCbc::new(&[1; 32]).unwrap();
        for len in [1, 15, 17, 31] {
            let mut buf = vec![0u8; len];
            assert_eq!(
                cbc.encrypt_in_place(&[0; 16], &mut buf),
                Err(CryptoError::Length)
            );
            assert_eq!(
                cbc.decrypt_in_place(&[0; 16], &mut buf),
                Err(CryptoError::Length)
            );
            assert_eq!(buf, vec![0u8; len], "left untouched");
        }
        let mut empty = [0u8; 0];
        assert_eq!(cbc.encrypt_in_place(&[0; 16], &mut empty), Ok(()));
    }
}
