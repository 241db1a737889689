//! The one cryptographic seam: every cipher, MAC, PRF and key exchange that IKEv2 and ESP use
//! goes through this module, so that the protocol code names algorithms, never libraries.
//!
//! Layer: bottom. It imports std and the crypto crates only, nothing of this crate; every
//! layer may use it. Everything works in caller buffers, in place, without allocating, so the
//! data path can call it per packet. Secrets this module owns (PRF outputs, Diffie-Hellman
//! shared secrets) are zeroed when dropped.
//!
//! Libraries:
//! * [ring] for AES-GCM (`LessSafeKey`, nonces built by the caller as ESP and IKE do), HMAC,
//!   Diffie-Hellman (ephemeral keys) and the system random generator.
//! * RustCrypto [`aes`] + [`cbc`] for AES-CBC, which ring does not offer. They are the
//!   maintained pure-Rust AES of the RustCrypto project: the software fallback is bitsliced
//!   (constant time, no table lookups) and AES-NI / ARMv8 AES are detected at run time. The
//!   0.8 / 0.1 series is used because the next one needs a newer compiler than this crate's
//!   `rust-version`, and because it shares `cipher` 0.4 with crates already in the tree.
//! * [`subtle`] for the constant-time comparison of truncated ICVs (ring only verifies whole
//!   tags) and [`zeroize`] for owned secrets.
//!
//! Algorithms carry their IANA IKEv2 transform IDs ([`EncrAlg`], [`PrfAlg`], [`IntegAlg`],
//! [`DhGroup`]) so that IKE maps negotiated transforms to them in one place.

#![forbid(unsafe_code)]

mod cbc;
mod dh;
mod gcm;
mod integ;
mod legacy;
mod prf;
mod random;

#[cfg(test)]
pub(crate) mod testutil;

pub use self::cbc::AesCbc;
pub use dh::{DhGroup, DhPrivateKey, SharedSecret};
pub use gcm::AesGcm;
pub use integ::{Integ, IntegAlg};
pub use legacy::{sha1_legacy, SHA1_LEN};
pub use prf::{Prf, PrfAlg, PrfOutput};
#[cfg(test)]
pub(crate) use random::CountingRandom;
pub use random::{Random, SystemRandom};

/// Why a cryptographic operation failed. Carries no data: a peer's garbage must never cost an
/// allocation, and callers map each variant to what they answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A key of a length the algorithm does not take.
    #[error("key length does not fit the algorithm")]
    KeyLength,
    /// A buffer of a length the operation does not take (not block-aligned, too short for
    /// the tag, an ICV of the wrong size).
    #[error("buffer length does not fit the operation")]
    Length,
    /// An AEAD tag or an ICV did not verify.
    #[error("authentication failed")]
    Authentication,
    /// A Diffie-Hellman public value of the wrong length, not on the curve, or of low order.
    #[error("invalid Diffie-Hellman public value")]
    PeerPublicValue,
    /// prf+ was asked for more than 255 PRF outputs [RFC 7296 § 2.13].
    #[error("prf+ output too long")]
    OutputTooLong,
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
}

/// An encryption transform (IKEv2 transform type 1) with its key length.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// ENCR_AES_CBC, 128-bit key [RFC 3602].
    AesCbc128,
    /// ENCR_AES_CBC, 256-bit key [RFC 3602].
    AesCbc256,
    /// ENCR_AES_GCM_16, 128-bit key [RFC 4106, RFC 5282].
    AesGcm16_128,
    /// ENCR_AES_GCM_16, 256-bit key [RFC 4106, RFC 5282].
    AesGcm16_256,
}

impl EncrAlg {
    /// Every supported transform, for tests and for building proposals.
    pub const ALL: [EncrAlg; 4] = [
        EncrAlg::AesCbc128,
        EncrAlg::AesCbc256,
        EncrAlg::AesGcm16_128,
        EncrAlg::AesGcm16_256,
    ];

    /// The IKEv2 transform ID: ENCR_AES_CBC = 12, ENCR_AES_GCM_16 = 20.
    pub const fn transform_id(self) -> u16 {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => 12,
            EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => 20,
        }
    }

    /// The value of the Key Length attribute (bits) [RFC 7296 § 3.3.5].
    pub const fn key_bits(self) -> u16 {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesGcm16_128 => 128,
            EncrAlg::AesCbc256 | EncrAlg::AesGcm16_256 => 256,
        }
    }

    /// The transform for an ID and Key Length attribute, if supported. AES transforms
    /// require the attribute [RFC 7296 § 3.3.5].
    pub fn from_transform(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        EncrAlg::ALL
            .into_iter()
            .find(|a| a.transform_id() == id && Some(a.key_bits()) == key_bits)
    }

    /// Length of the AES key in bytes.
    pub const fn key_len(self) -> usize {
        self.key_bits() as usize / 8
    }

    /// Length of the salt that follows the AES key in the keying material: 4 for GCM
    /// [RFC 4106 § 8.1; RFC 5282 for IKE], 0 for CBC.
    pub const fn salt_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            0
        }
    }

    /// Length of the keying material this transform takes: key, then salt.
    pub const fn keymat_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Length of the IV carried in each packet: 8 for GCM [RFC 4106 § 3.1], 16 for CBC
    /// [RFC 3602 § 2.1].
    pub const fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// The cipher's block length (AES: 16).
    pub const fn block_len(self) -> usize {
        16
    }

    /// Length of the AEAD tag (GCM: 16); 0 for CBC, whose ICV comes from the integrity
    /// transform.
    pub const fn icv_len(self) -> usize {
        if self.is_aead() {
            AesGcm::TAG_LEN
        } else {
            0
        }
    }

    /// Whether this is a combined-mode (AEAD) transform that takes no integrity transform.
    pub const fn is_aead(self) -> bool {
        matches!(self, EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encr_transform_ids_and_sizes_follow_the_iana_registry() {
        assert_eq!(
            EncrAlg::from_transform(12, Some(128)),
            Some(EncrAlg::AesCbc128)
        );
        assert_eq!(
            EncrAlg::from_transform(12, Some(256)),
            Some(EncrAlg::AesCbc256)
        );
        assert_eq!(
            EncrAlg::from_transform(20, Some(128)),
            Some(EncrAlg::AesGcm16_128)
        );
        assert_eq!(
            EncrAlg::from_transform(20, Some(256)),
            Some(EncrAlg::AesGcm16_256)
        );
        assert_eq!(EncrAlg::from_transform(12, None), None);
        assert_eq!(EncrAlg::from_transform(20, Some(192)), None);
        assert_eq!(EncrAlg::from_transform(19, Some(128)), None);
        assert_eq!(EncrAlg::AesGcm16_256.keymat_len(), 36);
        assert_eq!(EncrAlg::AesGcm16_128.keymat_len(), 20);
        assert_eq!(EncrAlg::AesCbc256.keymat_len(), 32);
        assert_eq!(
            (EncrAlg::AesGcm16_128.iv_len(), EncrAlg::AesCbc128.iv_len()),
            (8, 16)
        );
        assert_eq!(
            (
                EncrAlg::AesGcm16_128.icv_len(),
                EncrAlg::AesCbc128.icv_len()
            ),
            (16, 0)
        );
    }
}
