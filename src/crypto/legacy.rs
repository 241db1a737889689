//! SHA-1, for the places where a protocol still fixes it and no security rests on collision
//! resistance: the NAT detection hashes of IKEv2 [RFC 7296 § 2.23]. Nothing else may use it.

use ring::digest;

/// Length of a SHA-1 digest.
pub const SHA1_LEN: usize = 20;

/// SHA-1 of the concatenation of `parts` (legacy use only, see the module documentation).
pub fn sha1_legacy(parts: &[&[u8]]) -> [u8; SHA1_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; SHA1_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::hex;

    /// [RFC 3174 § 7.3] TEST1 and TEST2, the second split across parts.
    #[test]
    fn rfc3174_test_vectors() {
        assert_eq!(
            sha1_legacy(&[b"abc"]).to_vec(),
            hex("A9993E364706816ABA3E25717850C26C9CD0D89D")
        );
        assert_eq!(
            sha1_legacy(&[
                b"abcdbcdecdefdefgefghfghighij",
                b"hijkijkljklmklmnlmnomnopnopq"
            ])
            .to_vec(),
            hex("84983E441C3BD26EBAAE4AA1F95129E5E54670F1")
        );
    }
}
