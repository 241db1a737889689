//! The octets an AUTH payload covers, and AUTH with a pre-shared key [RFC 7296 § 2.15].

use subtle::ConstantTimeEq;

use super::AuthError;
use crate::crypto::{Prf, PrfAlg, PrfOutput};
use crate::tunnel::ipsec::ike::message::Id;

/// The pad that keys the PRF with the shared secret [RFC 7296 § 2.15].
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// `RealMessage | Nonce | prf(SK_p, ID')` [RFC 7296 § 2.15]: the octets a peer signs, or
/// MACs with its pre-shared key.
///
/// For the initiator's AUTH: its IKE_SA_INIT request as sent, the responder's nonce Nr,
/// SK_pi and IDi. For the responder's: its IKE_SA_INIT response as sent, Ni, SK_pr and IDr.
/// `id` is the ID payload as received (or as sent): ID' is its body, type and reserved
/// octets included.
pub fn signed_octets(
    real_message: &[u8],
    peer_nonce: &[u8],
    prf: PrfAlg,
    sk_p: &[u8],
    id: &Id<'_>,
) -> Vec<u8> {
    let mac = Prf::new(prf, sk_p).compute(&[&id.auth_prefix(), id.data]);
    let mut out = Vec::with_capacity(real_message.len() + peer_nonce.len() + prf.output_len());
    out.extend_from_slice(real_message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(mac.as_ref());
    out
}

/// `prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)`: the Authentication Data
/// of method 2, Shared Key Message Integrity Code [RFC 7296 § 2.15].
pub fn psk_auth(prf: PrfAlg, psk: &[u8], signed_octets: &[u8]) -> PrfOutput {
    let key = Prf::new(prf, psk).compute(&[KEY_PAD]);
    Prf::new(prf, key.as_ref()).compute(&[signed_octets])
}

/// Checks a peer's method 2 Authentication Data in constant time (its length is public).
pub fn psk_verify(
    prf: PrfAlg,
    psk: &[u8],
    signed_octets: &[u8],
    received: &[u8],
) -> Result<(), AuthError> {
    let expected = psk_auth(prf, psk, signed_octets);
    if bool::from(expected.as_ref().ct_eq(received)) {
        Ok(())
    } else {
        Err(AuthError::PskMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::hex;
    use crate::tunnel::ipsec::ike::message::IdType;

    /// [RFC 7296 § 2.15] spelled out with HMAC-SHA-256 by hand: ring's HMAC through its own
    /// API, not through the crypto seam.
    #[test]
    fn rfc7296_2_15_psk_auth_is_prf_of_prf_of_the_secret_and_the_pad() {
        use ring::hmac;
        let octets = b"RealMessage1 | Nr | prf(SK_pi, IDi')";
        let key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"secret"), KEY_PAD);
        let want = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()), octets);
        let got = psk_auth(PrfAlg::HmacSha256, b"secret", octets);
        assert_eq!(got.as_ref(), want.as_ref());
        assert_eq!(
            psk_verify(PrfAlg::HmacSha256, b"secret", octets, want.as_ref()),
            Ok(())
        );

        let mut flipped = want.as_ref().to_vec();
        flipped[31] ^= 1;
        let refused = Err(AuthError::PskMismatch);
        assert_eq!(
            psk_verify(PrfAlg::HmacSha256, b"secret", octets, &flipped),
            refused
        );
        assert_eq!(
            psk_verify(PrfAlg::HmacSha256, b"secret", octets, &flipped[..16]),
            refused
        );
        assert_eq!(
            psk_verify(PrfAlg::HmacSha256, b"Secret", octets, want.as_ref()),
            refused
        );
        assert_eq!(
            psk_verify(PrfAlg::HmacSha384, b"secret", octets, want.as_ref()),
            refused
        );
        for alg in PrfAlg::ALL {
            assert_eq!(psk_auth(alg, b"k", octets).as_ref().len(), alg.output_len());
        }
    }

    /// Known answers for PRF_HMAC_SHA2_256 and _384, secret "secret", computed with
    /// Python's `hmac` module.
    #[test]
    fn psk_auth_known_answers() {
        let octets = b"RealMessage1 | Nr | prf(SK_pi, IDi)";
        assert_eq!(
            psk_auth(PrfAlg::HmacSha256, b"secret", octets).as_ref(),
            hex("64d934149d3319c88e72efdba101c4a9d00790ed0c165b4c454bee3cc5eeaa68")
        );
        assert_eq!(
            psk_auth(PrfAlg::HmacSha384, b"secret", octets).as_ref(),
            hex(
                "a418d4a828ecb8e4f43dc07a58b92c79b7bbf3b0787fa68cc3f1719118a21422
                 af9e21e62f7745d43ec9f71e928a5b6a"
            )
        );
    }

    /// [RFC 7296 § 2.15]: prf(SK_p, ID') covers the ID payload's type and reserved octets.
    #[test]
    fn rfc7296_2_15_signed_octets_concatenate_message_nonce_and_id_mac() {
        let id = Id::new(IdType::FQDN, b"gw-a.lab");
        let octets = signed_octets(b"message", b"nonce", PrfAlg::HmacSha256, b"sk_p", &id);
        let mac = Prf::new(PrfAlg::HmacSha256, b"sk_p").compute(&[&[2, 0, 0, 0], b"gw-a.lab"]);
        assert_eq!(octets, [&b"messagenonce"[..], mac.as_ref()].concat());

        let mut reserved = id;
        reserved.reserved = [0, 0, 1];
        let other = signed_octets(b"message", b"nonce", PrfAlg::HmacSha256, b"sk_p", &reserved);
        assert_ne!(octets, other, "the reserved octets are covered");
    }
}
