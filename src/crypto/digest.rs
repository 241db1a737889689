//! SHA-1, for the places IKEv2 still prescribes it as an identifier rather than for
//! security: the CA key hashes of CERTREQ payloads [RFC 7296 § 3.7] and the NAT detection
//! hashes [RFC 7296 § 2.23]. Never for signatures: those refuse SHA-1.

use ring::digest;

/// Length of a SHA-1 hash.
pub const SHA1_LEN: usize = 20;

/// SHA-1 of `parts[0] | parts[1] | ...`.
pub fn sha1(parts: &[&[u8]]) -> [u8; SHA1_LEN] {
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

    /// [FIPS 180-2 Appendix A.1] "abc", split into parts.
    #[test]
    fn fips180_2_a1_sha1_of_abc() {
        let want = hex("a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(sha1(&[b"abc"]).as_slice(), want);
        assert_eq!(sha1(&[b"a", b"", b"bc"]).as_slice(), want);
    }
}
