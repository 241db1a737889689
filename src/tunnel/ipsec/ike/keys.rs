//! The keys of IKE and CHILD SAs, from nonces and Diffie-Hellman shared secrets
//! [RFC 7296 § 2.13, 2.14, 2.17, 2.18].
//!
//! Keys live in [`Zeroizing`] buffers: they are wiped when an SA goes. Derivation runs once per
//! exchange, so the small allocations here never touch the data path.

use zeroize::Zeroizing;

use crate::crypto::{CryptoError, EncrAlg, IntegAlg, Prf, PrfAlg};

/// The algorithms an IKE SA negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: EncrAlg,
    /// `None` for AEAD ciphers.
    pub integ: Option<IntegAlg>,
    pub prf: PrfAlg,
}

/// The algorithms a CHILD SA negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSuite {
    pub encr: EncrAlg,
    /// `None` for AEAD ciphers.
    pub integ: Option<IntegAlg>,
}

/// One secret.
pub type Key = Zeroizing<Vec<u8>>;

/// The seven keys of an IKE SA [RFC 7296 § 2.14]. Encryption keys include the salt of AEAD
/// ciphers (its last four bytes) [RFC 5282 § 7.1].
pub struct IkeKeys {
    /// Derives the keys of CHILD SAs and of the IKE SA's successor.
    pub sk_d: Key,
    pub sk_ai: Key,
    pub sk_ar: Key,
    pub sk_ei: Key,
    pub sk_er: Key,
    /// Used in the AUTH payloads.
    pub sk_pi: Key,
    pub sk_pr: Key,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IkeKeys { .. }")
    }
}

impl IkeKeys {
    /// The keys of a new IKE SA: SKEYSEED = prf(Ni | Nr, g^ir), then
    /// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) split into SK_d, SK_ai, SK_ar, SK_ei, SK_er,
    /// SK_pi, SK_pr [RFC 7296 § 2.14].
    pub fn derive(
        suite: IkeSuite,
        ni: &[u8],
        nr: &[u8],
        shared: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, CryptoError> {
        let skeyseed = Prf::new(suite.prf, &[ni, nr].concat()).compute(&[shared]);
        IkeKeys::expand(suite, skeyseed.as_ref(), ni, nr, spi_i, spi_r)
    }

    /// The keys of the IKE SA that replaces one whose SK_d is `old_sk_d` and whose PRF was
    /// `old_prf`: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the new SA's
    /// nonces and SPIs [RFC 7296 § 2.18].
    #[allow(clippy::too_many_arguments)]
    pub fn rekey(
        old_prf: PrfAlg,
        old_sk_d: &[u8],
        suite: IkeSuite,
        ni: &[u8],
        nr: &[u8],
        shared: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, CryptoError> {
        let skeyseed = Prf::new(old_prf, old_sk_d).compute(&[shared, ni, nr]);
        IkeKeys::expand(suite, skeyseed.as_ref(), ni, nr, spi_i, spi_r)
    }

    fn expand(
        suite: IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, CryptoError> {
        let prf_len = suite.prf.output_len();
        let integ_len = suite.integ.map_or(0, IntegAlg::key_len);
        let encr_len = suite.encr.keymat_len();
        let lens = [
            prf_len, integ_len, integ_len, encr_len, encr_len, prf_len, prf_len,
        ];
        let mut stream = Zeroizing::new(vec![0u8; lens.iter().sum()]);
        Prf::new(suite.prf, skeyseed).prf_plus(&[ni, nr, spi_i, spi_r], &mut stream)?;
        let mut keys = split(&stream, &lens).into_iter();
        let mut next = || keys.next().unwrap_or_default();
        Ok(IkeKeys {
            sk_d: next(),
            sk_ai: next(),
            sk_ar: next(),
            sk_ei: next(),
            sk_er: next(),
            sk_pi: next(),
            sk_pr: next(),
        })
    }
}

/// The keys of a CHILD SA, by direction [RFC 7296 § 2.17].
pub struct ChildKeys {
    /// Initiator → responder: encryption (with an AEAD cipher's salt) and integrity keys.
    pub encr_i: Key,
    pub integ_i: Key,
    /// Responder → initiator.
    pub encr_r: Key,
    pub integ_r: Key,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildKeys { .. }")
    }
}

impl ChildKeys {
    /// KEYMAT = prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir (new) | Ni | Nr) with a
    /// Diffie-Hellman exchange of its own (PFS); taken in the order initiator's encryption
    /// key, initiator's integrity key, responder's encryption key, responder's integrity key
    /// [RFC 7296 § 2.17].
    pub fn derive(
        prf: PrfAlg,
        sk_d: &[u8],
        suite: ChildSuite,
        pfs_shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildKeys, CryptoError> {
        let encr_len = suite.encr.keymat_len();
        let integ_len = suite.integ.map_or(0, IntegAlg::key_len);
        let lens = [encr_len, integ_len, encr_len, integ_len];
        let mut stream = Zeroizing::new(vec![0u8; lens.iter().sum()]);
        let prf = Prf::new(prf, sk_d);
        match pfs_shared {
            Some(g) => prf.prf_plus(&[g, ni, nr], &mut stream)?,
            None => prf.prf_plus(&[ni, nr], &mut stream)?,
        }
        let mut keys = split(&stream, &lens).into_iter();
        let mut next = || keys.next().unwrap_or_default();
        Ok(ChildKeys {
            encr_i: next(),
            integ_i: next(),
            encr_r: next(),
            integ_r: next(),
        })
    }
}

/// `stream` cut into consecutive pieces of `lens`.
fn split(stream: &[u8], lens: &[usize]) -> Vec<Key> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let k = Zeroizing::new(stream[at..at + n].to_vec());
            at += n;
            k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AesGcm;
    use crate::tunnel::ipsec::ike::message::testvec::{
        ike_messages, sa_init_values, AUTH_REQUEST, KEYS_LOG as LOG,
    };
    use crate::tunnel::ipsec::ike::message::{Message, Payload, PayloadType};
    use crate::tunnel::testvec::charon_secret;

    struct Exchange<'a> {
        ni: &'a [u8],
        nr: &'a [u8],
        spi_i: [u8; 8],
        spi_r: [u8; 8],
    }

    fn exchange() -> Exchange<'static> {
        let v = sa_init_values();
        Exchange {
            ni: v.ni,
            nr: v.nr,
            spi_i: v.spi_i.to_be_bytes(),
            spi_r: v.spi_r.to_be_bytes(),
        }
    }

    const SUITE: IkeSuite = IkeSuite {
        encr: EncrAlg::AesGcm16_256,
        integ: None,
        prf: PrfAlg::HmacSha256,
    };

    fn strongswan_keys() -> IkeKeys {
        let x = exchange();
        let shared = charon_secret(LOG, "shared Diffie Hellman secret");
        IkeKeys::derive(SUITE, x.ni, x.nr, &shared, &x.spi_i, &x.spi_r).unwrap()
    }

    /// SKEYSEED and SK_* of strongSwan's IKE_SA_INIT in the capture
    /// (AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256), against charon's own log of them.
    #[test]
    fn derives_the_ike_keys_strongswan_derived() {
        let k = strongswan_keys();
        assert_eq!(*k.sk_d, charon_secret(LOG, "Sk_d secret"));
        assert_eq!(*k.sk_ei, charon_secret(LOG, "Sk_ei secret"));
        assert_eq!(*k.sk_er, charon_secret(LOG, "Sk_er secret"));
        assert_eq!(*k.sk_pi, charon_secret(LOG, "Sk_pi secret"));
        assert_eq!(*k.sk_pr, charon_secret(LOG, "Sk_pr secret"));
        assert!(k.sk_ai.is_empty() && k.sk_ar.is_empty(), "AEAD: no SK_a");
    }

    /// The first CHILD SA's KEYMAT = prf+(SK_d, Ni | Nr) (IKE_AUTH carries no KE), against
    /// charon's ESP keys (AES_GCM_16_128: 16 bytes of key, 4 of salt).
    #[test]
    fn derives_the_child_keys_strongswan_derived() {
        let x = exchange();
        let k = strongswan_keys();
        let suite = ChildSuite {
            encr: EncrAlg::AesGcm16_128,
            integ: None,
        };
        let c = ChildKeys::derive(SUITE.prf, &k.sk_d, suite, None, x.ni, x.nr).unwrap();
        assert_eq!(*c.encr_i, charon_secret(LOG, "encryption initiator key"));
        assert_eq!(*c.encr_r, charon_secret(LOG, "encryption responder key"));
        assert!(c.integ_i.is_empty() && c.integ_r.is_empty());
    }

    /// The derived SK_ei opens the initiator's IKE_AUTH (AES-GCM, nonce = salt | IV), and
    /// its first inner payload is IDi naming gw-a.lab; SK_er does not open it.
    #[test]
    fn the_derived_keys_open_strongswans_ike_auth() {
        let k = strongswan_keys();
        let msg = Message::parse(ike_messages()[AUTH_REQUEST]).unwrap();
        let e = msg.encrypted().unwrap();
        let (iv, ct, icv) = e.split(8, 16).unwrap();
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&k.sk_ei[32..]);
        nonce[4..].copy_from_slice(iv);
        let sealed = [ct, icv].concat();
        let aad = msg.aad().unwrap();

        let mut buf = sealed.clone();
        let gcm = AesGcm::new(&k.sk_ei[..32]).unwrap();
        let n = gcm.open_in_place(&nonce, aad, &mut buf).unwrap();
        let inner = crate::tunnel::ipsec::ike::message::unpad(&buf[..n]).unwrap();
        let payloads =
            crate::tunnel::ipsec::ike::message::parse_inner(e.first_inner, inner).unwrap();
        let Some(Payload::IdI(id)) = payloads.first() else {
            panic!(
                "IDi first, got {:?}",
                payloads.first().map(Payload::payload_type)
            );
        };
        assert_eq!(id.data, b"gw-a.lab");
        assert_eq!(e.first_inner, PayloadType::IDI);

        let mut wrong = sealed;
        let gcm_r = AesGcm::new(&k.sk_er[..32]).unwrap();
        assert!(gcm_r.open_in_place(&nonce, aad, &mut wrong).is_err());
    }

    #[test]
    fn cbc_suites_split_integrity_and_encryption_keys() {
        let suite = IkeSuite {
            encr: EncrAlg::AesCbc256,
            integ: Some(IntegAlg::HmacSha384_192),
            prf: PrfAlg::HmacSha384,
        };
        let k = IkeKeys::derive(suite, &[1; 32], &[2; 32], &[3; 32], &[4; 8], &[5; 8]).unwrap();
        let lens = [
            k.sk_d.len(),
            k.sk_ai.len(),
            k.sk_ar.len(),
            k.sk_ei.len(),
            k.sk_er.len(),
            k.sk_pi.len(),
            k.sk_pr.len(),
        ];
        assert_eq!(lens, [48, 48, 48, 32, 32, 48, 48]);
        assert_ne!(*k.sk_ai, *k.sk_ar);

        // A rekey with the same nonces and secret but the old SK_d gives other keys.
        let r = IkeKeys::rekey(
            suite.prf, &k.sk_d, suite, &[1; 32], &[2; 32], &[3; 32], &[6; 8], &[7; 8],
        )
        .unwrap();
        assert_ne!(*r.sk_d, *k.sk_d);

        let child = ChildSuite {
            encr: EncrAlg::AesCbc128,
            integ: Some(IntegAlg::HmacSha256_128),
        };
        let c = ChildKeys::derive(suite.prf, &k.sk_d, child, None, &[1; 32], &[2; 32]).unwrap();
        let p = ChildKeys::derive(
            suite.prf,
            &k.sk_d,
            child,
            Some(&[9; 32]),
            &[1; 32],
            &[2; 32],
        )
        .unwrap();
        assert_eq!(
            (
                c.encr_i.len(),
                c.integ_i.len(),
                c.encr_r.len(),
                c.integ_r.len()
            ),
            (16, 32, 16, 32)
        );
        assert_ne!(*c.encr_i, *p.encr_i, "PFS changes the keys");
    }
}
