//! WireGuard keys: generation, derivation and base64 text form (as `wg genkey`/`wg pubkey`).
//!
//! Keys are X25519 scalars and points [RFC 7748 § 5]; the text form is standard base64 with
//! padding [RFC 4648 § 4], 44 characters for 32 bytes, the form `wg(8)` reads and writes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a key's base64 text form.
pub const ENCODED_LEN: usize = 44;

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a key is {ENCODED_LEN} base64 characters, got {0}")]
    Length(usize),
    #[error("not valid base64")]
    Base64,
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A new private key from the system's CSPRNG, clamped like `wg genkey` [RFC 7748 § 5].
pub fn generate_private_key() -> Result<[u8; 32], KeyError> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyError::Random)?;
    key[0] &= 248;
    key[31] &= 127;
    key[31] |= 64;
    Ok(key)
}

/// The public key of `private_key` (X25519 with the base point; the scalar is clamped first,
/// so unclamped keys give what `wg pubkey` gives).
pub fn public_key(private_key: &[u8; 32]) -> [u8; 32] {
    let secret = boringtun::x25519::StaticSecret::from(*private_key);
    boringtun::x25519::PublicKey::from(&secret).to_bytes()
}

/// The base64 text form of a key.
pub fn encode(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

/// Reads a key's base64 text form; surrounding whitespace (a key file's newline) is ignored.
pub fn decode(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != ENCODED_LEN {
        return Err(KeyError::Length(text.chars().count()));
    }
    let mut key = [0u8; 32];
    let bytes = STANDARD.decode(text).map_err(|_| KeyError::Base64)?;
    if bytes.len() != key.len() {
        return Err(KeyError::Base64);
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs computed with wireguard-tools: `echo PRIVATE | wg pubkey`.
    const WG_PUBKEY_VECTORS: &[(&str, &str)] = &[
        (
            "CCjrmoZ7qwWIrghMZaGkI9gVOVKj3KnsoBSJgdjcmkw=",
            "p0mbFSQrKQTLNp2Q614GfjZTSOck/QMsxhb2mYiyIDQ=",
        ),
        (
            "yC4ypA1HFGNvyq0gCYEGVl4Xe9p6hqPkVxnWyhP9zl0=",
            "USqL2dZkj42JX/d6G7FfDuA5bsbToKWy2e1kS5hGUmM=",
        ),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "L+V9o0fNYkMVKNqsX7spBzD/9oSvxM/C7ZCZX1jLO3Q=",
        ),
        // Unclamped: `wg pubkey` clamps before multiplying.
        (
            "//////////////////////////////////////////8=",
            "hHwNLDdSNPNl5mCVUYejc1oPdhPRYJ06ak2MU66qWiI=",
        ),
    ];

    #[test]
    fn public_key_matches_wg_pubkey() {
        for (private, public) in WG_PUBKEY_VECTORS {
            let k = decode(private).unwrap();
            assert_eq!(encode(&public_key(&k)), *public, "private {private}");
        }
    }

    #[test]
    fn encode_decode_round_trip_and_trims() {
        let (private, _) = WG_PUBKEY_VECTORS[0];
        let k = decode(&format!("  {private}\n")).unwrap();
        assert_eq!(encode(&k), private);
        assert_eq!(k[0], 0x08);
    }

    #[test]
    fn decode_rejects_bad_text() {
        assert_eq!(decode("abc"), Err(KeyError::Length(3)));
        assert_eq!(decode(""), Err(KeyError::Length(0)));
        // 44 characters but not base64.
        assert_eq!(
            decode("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!="),
            Err(KeyError::Base64)
        );
        // 44 characters of base64 that decode to 33 bytes (no padding).
        assert_eq!(
            decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(KeyError::Base64)
        );
        // Non-zero trailing bits are not canonical base64 of any 32 bytes.
        assert_eq!(
            decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="),
            Err(KeyError::Base64)
        );
    }

    #[test]
    fn generated_keys_are_clamped_and_distinct() {
        let a = generate_private_key().unwrap();
        let b = generate_private_key().unwrap();
        assert_ne!(a, b);
        for k in [a, b] {
            assert_eq!(k[0] & 7, 0);
            assert_eq!(k[31] & 0x80, 0);
            assert_eq!(k[31] & 0x40, 0x40);
            assert_ne!(public_key(&k), [0u8; 32]);
        }
    }
}
