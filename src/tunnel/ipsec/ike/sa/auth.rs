//! The AUTH payload [RFC 7296 § 2.15]: the octets each side signs, the pre-shared key MIC,
//! and the certificate path through [`CertificateAuth`].
//!
//! `signed_octets` and `psk_auth` are small private versions until the PKI module's
//! `pki::signed_octets` and `pki::psk_auth` land; they replace these then.

use subtle::ConstantTimeEq;

use crate::crypto::{Prf, PrfAlg};
use crate::tunnel::ipsec::ike::der;
use crate::tunnel::ipsec::ike::message::{Auth, AuthMethod, Id, IdType};

use super::config::{CertificateAuth, Identity, PeerAuth};
use super::event::Refusal;

/// The key pad of the pre-shared key MIC [RFC 7296 § 2.15].
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// `RealMessage | Nonce | prf(SK_p, RestOfIDPayload)` [RFC 7296 § 2.15]: for the initiator its
/// IKE_SA_INIT request, the responder's nonce, SK_pi and IDi; for the responder its
/// IKE_SA_INIT response, the initiator's nonce, SK_pr and IDr. To be replaced by
/// `pki::signed_octets`.
pub(super) fn signed_octets(
    prf: PrfAlg,
    sk_p: &[u8],
    message: &[u8],
    nonce: &[u8],
    id: &Id<'_>,
) -> Vec<u8> {
    let maced = Prf::new(prf, sk_p).compute(&[&id.auth_prefix(), id.data]);
    [message, nonce, maced.as_ref()].concat()
}

/// `prf(prf(PSK, "Key Pad for IKEv2"), SignedOctets)` [RFC 7296 § 2.15]. To be replaced by
/// `pki::psk_auth`.
pub(super) fn psk_auth(prf: PrfAlg, psk: &[u8], signed_octets: &[u8]) -> Vec<u8> {
    let pad = Prf::new(prf, psk).compute(&[KEY_PAD]);
    Prf::new(prf, pad.as_ref())
        .compute(&[signed_octets])
        .as_ref()
        .to_vec()
}

/// Our AUTH payload: method and data.
pub(super) fn sign(
    auth: &PeerAuth,
    prf: PrfAlg,
    octets: &[u8],
) -> Result<(AuthMethod, Vec<u8>), Refusal> {
    match auth {
        PeerAuth::Psk(psk) => Ok((AuthMethod::SHARED_KEY_MIC, psk_auth(prf, psk, octets))),
        PeerAuth::Certificate(c) => c.sign(octets).map_err(|_| Refusal::Internal),
    }
}

/// Checks the peer's AUTH payload against its signed octets.
pub(super) fn verify(
    auth: &PeerAuth,
    prf: PrfAlg,
    octets: &[u8],
    peer_id: &Identity,
    certificates: &[&[u8]],
    payload: &Auth<'_>,
) -> Result<(), Refusal> {
    match auth {
        PeerAuth::Psk(psk) => {
            let expected = psk_auth(prf, psk, octets);
            let ok = payload.method == AuthMethod::SHARED_KEY_MIC
                && bool::from(expected.as_slice().ct_eq(payload.data));
            ok.then_some(()).ok_or(Refusal::AuthenticationFailed)
        }
        PeerAuth::Certificate(c) => c
            .verify(peer_id, certificates, payload.method, payload.data, octets)
            .map_err(Refusal::Certificate),
    }
}

/// The certificate side of `auth`, if any.
pub(super) fn certificate(auth: &PeerAuth) -> Option<&dyn CertificateAuth> {
    match auth {
        PeerAuth::Certificate(c) => Some(c.as_ref()),
        PeerAuth::Psk(_) => None,
    }
}

/// Whether a received ID payload is `id` (the configured remote identity).
pub(super) fn id_is(payload: &Id<'_>, id: &Identity) -> bool {
    if payload.id_type != id.id_type {
        return false;
    }
    let (got, want) = (payload.data, id.data.as_slice());
    match id.id_type {
        // As strongSwan compares identities: DNs attribute by attribute whatever the string
        // type (a peer's UTF8String against our PrintableString of the same text), names
        // without regard to ASCII case.
        IdType::DER_ASN1_DN => der::names_match(got, want),
        IdType::FQDN | IdType::RFC822_ADDR => !got.contains(&0) && got.eq_ignore_ascii_case(want),
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MIC over known inputs, spelled out with single PRF calls.
    #[test]
    fn psk_mic_is_prf_of_prf_of_the_key_pad() {
        let id = Id::new(IdType::FQDN, b"gw-a.lab");
        let octets = signed_octets(PrfAlg::HmacSha256, &[9; 32], b"msg", &[1; 32], &id);
        let maced = Prf::new(PrfAlg::HmacSha256, &[9; 32]).compute(&[&[2, 0, 0, 0], b"gw-a.lab"]);
        assert_eq!(octets, [&b"msg"[..], &[1; 32], maced.as_ref()].concat());
        let mic = psk_auth(PrfAlg::HmacSha256, b"secret", &octets);
        let pad = Prf::new(PrfAlg::HmacSha256, b"secret").compute(&[b"Key Pad for IKEv2"]);
        let want = Prf::new(PrfAlg::HmacSha256, pad.as_ref()).compute(&[&octets]);
        assert_eq!(mic, want.as_ref());
    }

    #[test]
    fn verifies_the_mic_and_the_method() {
        let psk = PeerAuth::Psk(zeroize::Zeroizing::new(b"k".to_vec()));
        let (method, data) = sign(&psk, PrfAlg::HmacSha384, b"octets").unwrap();
        assert_eq!(method, AuthMethod::SHARED_KEY_MIC);
        let id = Identity::fqdn("x");
        let good = Auth {
            method,
            data: &data,
        };
        assert_eq!(
            verify(&psk, PrfAlg::HmacSha384, b"octets", &id, &[], &good),
            Ok(())
        );
        let other = Auth {
            method,
            data: &data[1..],
        };
        assert_eq!(
            verify(&psk, PrfAlg::HmacSha384, b"octets", &id, &[], &other),
            Err(Refusal::AuthenticationFailed)
        );
        let rsa = Auth {
            method: AuthMethod::RSA_SIGNATURE,
            data: &data,
        };
        assert_eq!(
            verify(&psk, PrfAlg::HmacSha384, b"octets", &id, &[], &rsa),
            Err(Refusal::AuthenticationFailed)
        );
    }

    /// A DN identity in another string type, or a name in another case, is still the peer.
    #[test]
    fn identities_compare_as_strongswan_compares_them() {
        let dn = |tag: u8| {
            // SEQUENCE { SET { SEQUENCE { OID 2.5.4.3 (CN), tag "gw" } } }
            vec![
                0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, tag, 0x02, b'g',
                b'w',
            ]
        };
        let configured = Identity {
            id_type: IdType::DER_ASN1_DN,
            data: dn(0x13),
        };
        assert!(
            id_is(&Id::new(IdType::DER_ASN1_DN, &dn(0x0c)), &configured),
            "UTF8String"
        );
        let mut other = dn(0x13);
        *other.last_mut().unwrap() = b'x';
        assert!(!id_is(&Id::new(IdType::DER_ASN1_DN, &other), &configured));
        assert!(
            !id_is(&Id::new(IdType::FQDN, &dn(0x13)), &configured),
            "another type"
        );
        let fqdn = Identity::fqdn("fac-a.ajisai.test");
        assert!(id_is(&Id::new(IdType::FQDN, b"FAC-A.Ajisai.test"), &fqdn));
        assert!(!id_is(
            &Id::new(IdType::FQDN, b"fac-a.ajisai.test\0"),
            &fqdn
        ));
        let key = Identity {
            id_type: IdType::KEY_ID,
            data: b"Key".to_vec(),
        };
        assert!(
            !id_is(&Id::new(IdType::KEY_ID, b"key"), &key),
            "octets, exactly"
        );
    }
}
