//! Proposals in strongSwan's syntax: one string per proposal, `-`-separated tokens, one
//! algorithm per token; several of one transform type let the peer pick [RFC 7296 § 3.3].
//!
//! Weak algorithms are refused by name with the reason [RFC 8247 for IKEv2, RFC 8221 for
//! ESP]; algorithms strongSwan knows but ixgw does not implement are "not supported"; anything
//! else is unknown. A non-AEAD IKE proposal without a PRF gets the PRFs of its integrity
//! algorithms, as strongSwan does; an AEAD IKE proposal must name its PRF.

use super::super::Problem;
use crate::config::{encr_token, integ_token, prf_token, Esn, EspProposal, IkeProposal};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};

/// What is wrong with one proposal; [`ProposalError::problem`] names the proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::config::validate) enum ProposalError {
    Empty,
    Weak { token: String, reason: &'static str },
    Unsupported(String),
    Unknown(String),
    NotFor { token: String, reason: &'static str },
    MixedAead { aead: EncrAlg, other: EncrAlg },
    AeadWithIntegrity { aead: EncrAlg, integ: IntegAlg },
    Missing(&'static str),
}

impl ProposalError {
    pub(in crate::config::validate) fn problem(self, text: &str) -> Problem {
        let proposal = text.trim().to_string();
        match self {
            ProposalError::Empty => Problem::Empty,
            ProposalError::Weak { token, reason } => Problem::WeakAlgorithm {
                value: token,
                proposal,
                reason,
            },
            ProposalError::Unsupported(token) => Problem::UnsupportedAlgorithm {
                value: token,
                proposal,
            },
            ProposalError::Unknown(token) => Problem::UnknownAlgorithm {
                value: token,
                proposal,
            },
            ProposalError::NotFor { token, reason } => Problem::AlgorithmNotFor {
                value: token,
                proposal,
                reason,
            },
            ProposalError::MixedAead { aead, other } => Problem::MixedAead {
                proposal,
                aead: encr_token(aead),
                other: encr_token(other),
            },
            ProposalError::AeadWithIntegrity { aead, integ } => Problem::AeadWithIntegrity {
                proposal,
                aead: encr_token(aead),
                integ: integ_token(integ),
            },
            ProposalError::Missing(what) => Problem::ProposalMissing { proposal, what },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Encr(EncrAlg),
    Integ(IntegAlg),
    Prf(PrfAlg),
    Dh(DhGroup),
    Esn(bool),
}

/// The algorithms of one proposal, in written order without repeats.
#[derive(Default)]
struct Parts {
    encr: Vec<EncrAlg>,
    integ: Vec<IntegAlg>,
    prf: Vec<PrfAlg>,
    dh: Vec<DhGroup>,
    esn: Vec<bool>,
}

fn push<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn parts(text: &str) -> Result<Parts, ProposalError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ProposalError::Empty);
    }
    let mut p = Parts::default();
    for raw in text.split('-') {
        let t = raw.trim().to_ascii_lowercase();
        match token(&t)? {
            Token::Encr(a) => push(&mut p.encr, a),
            Token::Integ(a) => push(&mut p.integ, a),
            Token::Prf(a) => push(&mut p.prf, a),
            Token::Dh(g) => push(&mut p.dh, g),
            Token::Esn(on) => push(&mut p.esn, on),
        }
    }
    Ok(p)
}

/// Encryption and integrity as both IKE and ESP require them: at least one cipher, AEAD and
/// non-AEAD ciphers in separate proposals, integrity exactly for the non-AEAD ones.
fn check_ciphers(p: &Parts) -> Result<(), ProposalError> {
    let aead = p.encr.iter().find(|a| a.is_aead());
    let other = p.encr.iter().find(|a| !a.is_aead());
    match (aead, other, p.integ.first()) {
        (None, None, _) => Err(ProposalError::Missing(
            "encryption algorithm (aes128gcm16, aes256gcm16, aes128 or aes256)",
        )),
        (Some(&aead), Some(&other), _) => Err(ProposalError::MixedAead { aead, other }),
        (Some(&aead), None, Some(&integ)) => Err(ProposalError::AeadWithIntegrity { aead, integ }),
        (None, Some(_), None) => Err(ProposalError::Missing(
            "integrity algorithm (sha256, sha384 or sha512), which its non-AEAD cipher needs",
        )),
        _ => Ok(()),
    }
}

pub(in crate::config::validate) fn parse_ike_proposal(
    text: &str,
) -> Result<IkeProposal, ProposalError> {
    let mut p = parts(text)?;
    if !p.esn.is_empty() {
        return Err(ProposalError::NotFor {
            token: text_of_esn(&p.esn).into(),
            reason: "extended sequence numbers are an ESP option; write it in esp_proposals",
        });
    }
    check_ciphers(&p)?;
    if p.prf.is_empty() {
        if p.integ.is_empty() {
            return Err(ProposalError::Missing(
                "PRF (prfsha256, prfsha384 or prfsha512), which an AEAD IKE proposal must name",
            ));
        }
        p.prf = p.integ.iter().map(|a| integ_prf(*a)).collect();
    }
    if p.dh.is_empty() {
        return Err(ProposalError::Missing(
            "Diffie-Hellman group (ecp256, ecp384 or x25519), which IKE needs",
        ));
    }
    Ok(IkeProposal {
        text: text.trim().to_string(),
        encr: p.encr,
        integ: p.integ,
        prf: p.prf,
        dh: p.dh,
    })
}

pub(in crate::config::validate) fn parse_esp_proposal(
    text: &str,
) -> Result<EspProposal, ProposalError> {
    let p = parts(text)?;
    if let Some(prf) = p.prf.first() {
        return Err(ProposalError::NotFor {
            token: prf_token(*prf).into(),
            reason: "ESP has no PRF; the CHILD_SA's keys come from the IKE SA's PRF",
        });
    }
    check_ciphers(&p)?;
    let esn = match (p.esn.contains(&true), p.esn.contains(&false)) {
        (true, true) => Esn::Either,
        (true, false) => Esn::Yes,
        _ => Esn::No,
    };
    Ok(EspProposal {
        text: text.trim().to_string(),
        encr: p.encr,
        integ: p.integ,
        dh: p.dh,
        esn,
    })
}

fn text_of_esn(esn: &[bool]) -> &'static str {
    if esn.first() == Some(&true) {
        "esn"
    } else {
        "noesn"
    }
}

/// The PRF strongSwan pairs with an integrity algorithm.
fn integ_prf(a: IntegAlg) -> PrfAlg {
    match a {
        IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
        IntegAlg::HmacSha384_192 => PrfAlg::HmacSha384,
        IntegAlg::HmacSha512_256 => PrfAlg::HmacSha512,
    }
}

fn token(t: &str) -> Result<Token, ProposalError> {
    let supported = match t {
        "aes128gcm16" | "aes128gcm" => Some(Token::Encr(EncrAlg::AesGcm16_128)),
        "aes256gcm16" | "aes256gcm" => Some(Token::Encr(EncrAlg::AesGcm16_256)),
        "aes128" => Some(Token::Encr(EncrAlg::AesCbc128)),
        "aes256" => Some(Token::Encr(EncrAlg::AesCbc256)),
        "sha256" | "sha2_256" => Some(Token::Integ(IntegAlg::HmacSha256_128)),
        "sha384" | "sha2_384" => Some(Token::Integ(IntegAlg::HmacSha384_192)),
        "sha512" | "sha2_512" => Some(Token::Integ(IntegAlg::HmacSha512_256)),
        "prfsha256" => Some(Token::Prf(PrfAlg::HmacSha256)),
        "prfsha384" => Some(Token::Prf(PrfAlg::HmacSha384)),
        "prfsha512" => Some(Token::Prf(PrfAlg::HmacSha512)),
        "ecp256" => Some(Token::Dh(DhGroup::Ecp256)),
        "ecp384" => Some(Token::Dh(DhGroup::Ecp384)),
        "x25519" | "curve25519" => Some(Token::Dh(DhGroup::Curve25519)),
        "esn" => Some(Token::Esn(true)),
        "noesn" => Some(Token::Esn(false)),
        _ => None,
    };
    if let Some(tok) = supported {
        return Ok(tok);
    }
    if let Some(reason) = weakness(t) {
        return Err(ProposalError::Weak {
            token: t.to_string(),
            reason,
        });
    }
    if known_unsupported(t) {
        return Err(ProposalError::Unsupported(t.to_string()));
    }
    Err(ProposalError::Unknown(t.to_string()))
}

/// Why a token names a weak algorithm, if it does.
fn weakness(t: &str) -> Option<&'static str> {
    Some(match t {
        "des" | "desiv32" | "desiv64" => {
            "DES has a 56-bit key (RFC 8247 § 2.1 and RFC 8221 § 5: MUST NOT)"
        }
        "3des" => "3DES has a 64-bit block and is deprecated (RFC 8247 § 2.1, RFC 8221 § 5)",
        "cast128" | "blowfish" | "blowfish128" | "blowfish192" | "blowfish256" | "idea"
        | "3idea" | "rc5" => "a 64-bit block cipher, open to birthday attacks on long-lived SAs",
        "null" => "ENCR_NULL does not encrypt",
        "md5" | "md5_128" | "prfmd5" => "MD5 is broken (RFC 8247 § 2.3 and § 2.2: MUST NOT)",
        "sha1" | "sha" | "sha1_160" | "prfsha1" => {
            "SHA-1 is deprecated for IKEv2 and ESP (RFC 8247 § 2.2, § 2.3); use sha256 or stronger"
        }
        "modp768" => "768-bit MODP (group 1) is broken (RFC 8247 § 2.4: MUST NOT)",
        "modp1024" => {
            "1024-bit MODP (group 2) is within reach of precomputation (RFC 8247 § 2.4: SHOULD NOT)"
        }
        "modp1536" => "1536-bit MODP (group 5) is too small (RFC 8247 § 2.4: SHOULD NOT)",
        "modp1024s160" | "modp2048s224" | "modp2048s256" => {
            "an RFC 5114 group with a small subgroup (RFC 8247 § 2.4: SHOULD NOT)"
        }
        "ecp192" => "192-bit ECP gives 96-bit security",
        _ => return None,
    })
}

/// Whether strongSwan knows the token as an algorithm ixgw does not implement.
fn known_unsupported(t: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "aes", "camellia", "chacha20", "serpent", "twofish", "modp", "ecp", "x448", "curve448",
        "mlkem", "ke1_", "ke2_", "ke3_", "prfaes", "prfcamel", "sha3", "sha256_", "sha2_",
    ];
    FAMILIES.iter().any(|f| t.starts_with(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_with_every_supported_algorithm() {
        let ike: Vec<_> = crate::config::DEFAULT_IKE_PROPOSALS
            .iter()
            .map(|t| parse_ike_proposal(t).unwrap())
            .collect();
        assert_eq!(ike[0].encr, [EncrAlg::AesGcm16_256, EncrAlg::AesGcm16_128]);
        assert!(ike[0].integ.is_empty());
        assert_eq!(ike[0].prf, PrfAlg::ALL);
        assert_eq!(ike[0].dh, DhGroup::ALL);
        assert_eq!(ike[1].encr, [EncrAlg::AesCbc256, EncrAlg::AesCbc128]);
        assert_eq!(ike[1].integ, IntegAlg::ALL);
        assert_eq!(
            ike[1].prf,
            PrfAlg::ALL,
            "PRFs follow the integrity algorithms"
        );
        let esp: Vec<_> = crate::config::DEFAULT_ESP_PROPOSALS
            .iter()
            .map(|t| parse_esp_proposal(t).unwrap())
            .collect();
        assert!(esp.iter().all(|p| p.dh.is_empty() && p.esn == Esn::No));
        assert_eq!(esp[1].integ, IntegAlg::ALL);
    }

    #[test]
    fn aliases_and_case_read_as_the_canonical_tokens() {
        let p = parse_ike_proposal("AES128GCM-prfsha256-Curve25519").unwrap();
        assert_eq!(p.encr, [EncrAlg::AesGcm16_128]);
        assert_eq!(p.dh, [DhGroup::Curve25519]);
        assert_eq!(p.to_string(), "aes128gcm16-prfsha256-x25519");
        assert_eq!(p.text, "AES128GCM-prfsha256-Curve25519");
        let p = parse_esp_proposal("aes256-sha2_256-sha256-ecp384-esn-noesn").unwrap();
        assert_eq!(p.integ, [IntegAlg::HmacSha256_128], "repeats collapse");
        assert_eq!(p.esn, Esn::Either);
        assert_eq!(p.to_string(), "aes256-sha256-ecp384-esn-noesn");
    }

    #[test]
    fn every_rule_has_its_error() {
        use ProposalError as E;
        let ike = |t| parse_ike_proposal(t).unwrap_err();
        let esp = |t| parse_esp_proposal(t).unwrap_err();
        assert!(matches!(ike("aes128-md5-ecp256"), E::Weak { token, .. } if token == "md5"));
        assert!(matches!(ike("aes128-sha256-modp2048"), E::Unsupported(t) if t == "modp2048"));
        assert!(matches!(ike("aes128-sha256-bogus"), E::Unknown(t) if t == "bogus"));
        assert!(matches!(ike("aes128-sha256--ecp256"), E::Unknown(t) if t.is_empty()));
        assert!(matches!(
            ike("aes128-aes128gcm16-sha256-ecp256"),
            E::MixedAead { .. }
        ));
        assert!(matches!(
            ike("aes128gcm16-sha256-prfsha256-ecp256"),
            E::AeadWithIntegrity { .. }
        ));
        assert!(matches!(ike("aes128-ecp256"), E::Missing(w) if w.starts_with("integrity")));
        assert!(matches!(ike("aes128gcm16-ecp256"), E::Missing(w) if w.starts_with("PRF")));
        assert!(matches!(ike("aes128-sha256"), E::Missing(w) if w.starts_with("Diffie")));
        assert!(matches!(ike("sha256-ecp256"), E::Missing(w) if w.starts_with("encryption")));
        assert!(matches!(ike("aes128-sha256-ecp256-esn"), E::NotFor { .. }));
        assert!(matches!(ike("  "), E::Empty));
        assert!(matches!(esp("aes128gcm16-prfsha256"), E::NotFor { .. }));
        assert!(matches!(esp("3des-sha256"), E::Weak { .. }));
        assert!(matches!(esp("chacha20poly1305"), E::Unsupported(_)));
    }

    #[test]
    fn weak_tokens_are_refused_by_name() {
        for t in [
            "des", "3des", "md5", "sha1", "sha", "prfsha1", "prfmd5", "modp768", "modp1024",
            "modp1536", "null", "ecp192",
        ] {
            assert!(weakness(t).is_some(), "{t}");
        }
        for t in [
            "modp2048",
            "modp8192",
            "aes192",
            "aes128ccm16",
            "aes128ctr",
            "ecp521",
        ] {
            assert!(weakness(t).is_none() && known_unsupported(t), "{t}");
        }
    }

    proptest::proptest! {
        /// Any text is a proposal or an error, never a panic; a proposal reads back as itself
        /// from its canonical form.
        #[test]
        fn any_text_parses_or_is_refused(s in "[a-z0-9_-]{0,60}") {
            if let Ok(p) = parse_ike_proposal(&s) {
                let again = parse_ike_proposal(&p.to_string()).unwrap();
                proptest::prop_assert_eq!((again.encr, again.integ, again.prf, again.dh), (p.encr, p.integ, p.prf, p.dh));
            }
            if let Ok(p) = parse_esp_proposal(&s) {
                let again = parse_esp_proposal(&p.to_string()).unwrap();
                proptest::prop_assert_eq!((again.encr, again.integ, again.dh, again.esn), (p.encr, p.integ, p.dh, p.esn));
            }
        }
    }
}
