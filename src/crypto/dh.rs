//! Ephemeral Diffie-Hellman for the IKEv2 groups 19 (256-bit random ECP), 20 (384-bit random
//! ECP) and 31 (Curve25519), through ring's `agreement`.
//!
//! Public values use the encoding of the IKE KE payload: for ECP groups the x and y
//! coordinates, each the size of the field, concatenated *without* the 0x04 prefix of the
//! SEC1 uncompressed form [RFC 5903 § 7]; for Curve25519 the 32-byte u coordinate
//! [RFC 8031 § 3.1]. The shared secret is the x coordinate of the shared point for ECP
//! [RFC 5903 § 7] and the X25519 output for Curve25519 [RFC 8031 § 2], which is what ring
//! returns. Peer values of the wrong length, off the curve, or of low order (an all-zero
//! X25519 result, refused as RFC 8031 § 2 requires) are errors; IKE answers them with
//! INVALID_SYNTAX or INVALID_KE_PAYLOAD.

use std::fmt;

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use zeroize::Zeroize;

use super::{CryptoError, SystemRandom};

/// A Diffie-Hellman group (IKEv2 transform type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 19, 256-bit random ECP (NIST P-256) [RFC 5903].
    Ecp256,
    /// Group 20, 384-bit random ECP (NIST P-384) [RFC 5903].
    Ecp384,
    /// Group 31, Curve25519 [RFC 8031].
    Curve25519,
}

/// Longest public value (group 20: two 48-byte coordinates).
const MAX_PUBLIC: usize = 96;
/// Longest shared secret (group 20: one coordinate).
const MAX_SHARED: usize = 48;
/// The SEC1 prefix of an uncompressed point, which the IKE encoding leaves out.
const SEC1_UNCOMPRESSED: u8 = 0x04;

impl DhGroup {
    pub const ALL: [DhGroup; 3] = [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Curve25519];

    /// The IKEv2 transform ID (the group number): 19, 20, 31.
    pub const fn transform_id(self) -> u16 {
        match self {
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }

    pub fn from_transform(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.transform_id() == id)
    }

    /// Length of the public value in a KE payload: 64, 96, 32.
    pub const fn public_len(self) -> usize {
        match self {
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }

    /// Length of the shared secret: 32, 48, 32.
    pub const fn shared_len(self) -> usize {
        match self {
            DhGroup::Ecp256 => 32,
            DhGroup::Ecp384 => 48,
            DhGroup::Curve25519 => 32,
        }
    }

    fn ring(self) -> &'static agreement::Algorithm {
        match self {
            DhGroup::Ecp256 => &agreement::ECDH_P256,
            DhGroup::Ecp384 => &agreement::ECDH_P384,
            DhGroup::Curve25519 => &agreement::X25519,
        }
    }

    fn is_ecp(self) -> bool {
        !matches!(self, DhGroup::Curve25519)
    }
}

/// An ephemeral private key and its public value. It is used for one agreement only.
pub struct DhPrivateKey {
    group: DhGroup,
    key: EphemeralPrivateKey,
    public: [u8; MAX_PUBLIC],
}

/// The result of an agreement; zeroed when dropped.
pub struct SharedSecret {
    buf: [u8; MAX_SHARED],
    len: usize,
}

impl DhPrivateKey {
    /// A fresh key pair from the system generator.
    pub fn generate(group: DhGroup, rng: &SystemRandom) -> Result<DhPrivateKey, CryptoError> {
        let key =
            EphemeralPrivateKey::generate(group.ring(), &rng.0).map_err(|_| CryptoError::Random)?;
        let public = key.compute_public_key().map_err(|_| CryptoError::Random)?;
        let sec1 = public.as_ref();
        let raw = if group.is_ecp() {
            match sec1.split_first() {
                Some((&SEC1_UNCOMPRESSED, xy)) => xy,
                _ => return Err(CryptoError::Random),
            }
        } else {
            sec1
        };
        if raw.len() != group.public_len() {
            return Err(CryptoError::Random);
        }
        let mut out = [0u8; MAX_PUBLIC];
        out[..raw.len()].copy_from_slice(raw);
        Ok(DhPrivateKey {
            group,
            key,
            public: out,
        })
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value as a KE payload carries it.
    pub fn public_value(&self) -> &[u8] {
        &self.public[..self.group.public_len()]
    }

    /// Agrees with the peer's public value (KE payload encoding), consuming the key.
    pub fn agree(self, peer: &[u8]) -> Result<SharedSecret, CryptoError> {
        let group = self.group;
        if peer.len() != group.public_len() {
            return Err(CryptoError::PeerPublicValue);
        }
        let mut sec1 = [0u8; MAX_PUBLIC + 1];
        let sec1 = if group.is_ecp() {
            sec1[0] = SEC1_UNCOMPRESSED;
            sec1[1..=peer.len()].copy_from_slice(peer);
            &sec1[..=peer.len()]
        } else {
            peer
        };
        let peer = UnparsedPublicKey::new(group.ring(), sec1);
        agreement::agree_ephemeral(self.key, &peer, |shared| {
            let mut out = SharedSecret {
                buf: [0; MAX_SHARED],
                len: shared.len(),
            };
            out.buf[..shared.len()].copy_from_slice(shared);
            out
        })
        .map_err(|_| CryptoError::PeerPublicValue)
    }
}

impl AsRef<[u8]> for SharedSecret {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl fmt::Debug for DhPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhPrivateKey")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_and_lengths() {
        for (id, group, public, shared) in [
            (19, DhGroup::Ecp256, 64, 32),
            (20, DhGroup::Ecp384, 96, 48),
            (31, DhGroup::Curve25519, 32, 32),
        ] {
            assert_eq!(DhGroup::from_transform(id), Some(group));
            assert_eq!(group.transform_id(), id);
            assert_eq!((group.public_len(), group.shared_len()), (public, shared));
        }
        assert_eq!(DhGroup::from_transform(14), None);
    }

    #[test]
    fn both_ends_agree_for_every_group() {
        let rng = SystemRandom::new();
        for group in DhGroup::ALL {
            let a = DhPrivateKey::generate(group, &rng).unwrap();
            let b = DhPrivateKey::generate(group, &rng).unwrap();
            assert_eq!(a.group(), group);
            assert_eq!(a.public_value().len(), group.public_len(), "{group:?}");
            assert_ne!(a.public_value(), b.public_value());
            let (pa, pb) = (a.public_value().to_vec(), b.public_value().to_vec());
            let sa = a.agree(&pb).unwrap();
            let sb = b.agree(&pa).unwrap();
            assert_eq!(sa.as_ref(), sb.as_ref(), "{group:?}");
            assert_eq!(sa.as_ref().len(), group.shared_len(), "{group:?}");
        }
    }

    #[test]
    fn refuses_peer_values_of_the_wrong_length() {
        let rng = SystemRandom::new();
        for group in DhGroup::ALL {
            let peer = DhPrivateKey::generate(group, &rng).unwrap();
            let good = peer.public_value().to_vec();
            let mut sec1 = vec![SEC1_UNCOMPRESSED];
            sec1.extend_from_slice(&good);
            let candidates = [
                &[][..],
                &good[..good.len() - 1],
                &sec1[..],
                &[good.as_slice(), &[0]].concat()[..],
            ]
            .map(<[u8]>::to_vec);
            for bad in candidates {
                let key = DhPrivateKey::generate(group, &rng).unwrap();
                assert_eq!(
                    key.agree(&bad).err().map(|_| ()),
                    Some(()),
                    "{group:?} len {}",
                    bad.len()
                );
            }
        }
    }

    #[test]
    fn refuses_ecp_points_off_the_curve() {
        let rng = SystemRandom::new();
        for group in [DhGroup::Ecp256, DhGroup::Ecp384] {
            let n = group.public_len();
            let good = DhPrivateKey::generate(group, &rng)
                .unwrap()
                .public_value()
                .to_vec();
            let mut y_flipped = good.clone();
            y_flipped[n - 1] ^= 1;
            let mut one_one = vec![0u8; n];
            one_one[n / 2 - 1] = 1;
            one_one[n - 1] = 1;
            for bad in [vec![0u8; n], vec![0xff; n], one_one, y_flipped] {
                let key = DhPrivateKey::generate(group, &rng).unwrap();
                assert_eq!(
                    key.agree(&bad).err(),
                    Some(CryptoError::PeerPublicValue),
                    "{group:?}"
                );
            }
        }
    }

    /// Low-order Curve25519 points give an all-zero shared secret, which must be refused
    /// [RFC 8031 § 2, RFC 7748 § 6.1].
    #[test]
    fn refuses_low_order_curve25519_points() {
        let rng = SystemRandom::new();
        let mut one = [0u8; 32];
        one[0] = 1;
        for bad in [[0u8; 32], one] {
            let key = DhPrivateKey::generate(DhGroup::Curve25519, &rng).unwrap();
            assert_eq!(key.agree(&bad).err(), Some(CryptoError::PeerPublicValue));
        }
    }
}
