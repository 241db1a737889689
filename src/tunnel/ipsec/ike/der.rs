//! The little DER IKE reads and writes itself (for `pki/`, and for comparing DN identities in
//! `sa/`): private keys in SEC1 and PKCS#8 wrappers, SubjectPublicKeyInfo and
//! AlgorithmIdentifier headers, the RDNs of a Name, and the ECDSA signature re-encoding
//! between IKE's raw `r | s` [RFC 4754 § 7] and the X.509 `ECDSA-Sig-Value` that webpki
//! verifies. Certificates themselves are parsed by webpki and
//! x509-parser, never here.
//!
//! Every reader returns `None` on anything malformed; lengths are definite, minimal, at most
//! four octets; nothing panics on untrusted input.

use rustls_pki_types::alg_id;

pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const SET: u8 = 0x31;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const BIT_STRING: u8 = 0x03;
pub(super) const OCTET_STRING: u8 = 0x04;
pub(super) const OID: u8 = 0x06;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;

/// A cursor over concatenated DER values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Der<'a> {
        Der(bytes)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next value: its tag and contents.
    pub(super) fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (octets, after) = rest.split_at_checked(n)?;
            rest = after;
            if octets[0] == 0 {
                return None;
            }
            let len = octets
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            if len < 0x80 {
                return None;
            }
            len
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some((tag, contents))
    }

    /// The contents of the next value, which must carry `tag`.
    pub(super) fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.any()? {
            (t, contents) if t == tag => Some(contents),
            _ => None,
        }
    }

    /// The contents of the next value if it carries `tag`; nothing is consumed otherwise.
    pub(super) fn optional(&mut self, tag: u8) -> Option<&'a [u8]> {
        if self.peek_tag() == Some(tag) {
            self.expect(tag)
        } else {
            None
        }
    }
}

/// The contents of `bytes`, which must be exactly one value with `tag`.
pub(super) fn single(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    let mut d = Der::new(bytes);
    let contents = d.expect(tag)?;
    d.is_empty().then_some(contents)
}

/// A BIT STRING's bits, which must be whole octets.
fn whole_octets(bit_string: &[u8]) -> Option<&[u8]> {
    match bit_string.split_first()? {
        (0, bits) => Some(bits),
        _ => None,
    }
}

/// The public-key algorithm of a SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
    Other,
}

impl KeyKind {
    /// From the contents of an AlgorithmIdentifier (OID and parameters).
    pub(super) fn from_algorithm(contents: &[u8]) -> KeyKind {
        /// rsaEncryption with its parameters absent rather than NULL.
        const RSA_ABSENT_PARAMS: &[u8] = &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ];
        match contents {
            c if c == alg_id::ECDSA_P256.as_ref() => KeyKind::EcdsaP256,
            c if c == alg_id::ECDSA_P384.as_ref() => KeyKind::EcdsaP384,
            c if c == alg_id::RSA_ENCRYPTION.as_ref() || c == RSA_ABSENT_PARAMS => KeyKind::Rsa,
            c if c == alg_id::ED25519.as_ref() => KeyKind::Ed25519,
            _ => KeyKind::Other,
        }
    }
}

/// A SubjectPublicKeyInfo: the key's algorithm and the subjectPublicKey octets (an EC point,
/// or a DER RSAPublicKey).
pub(super) fn spki(der: &[u8]) -> Option<(KeyKind, &[u8])> {
    let mut d = Der::new(single(der, SEQUENCE)?);
    let alg = d.expect(SEQUENCE)?;
    let key = whole_octets(d.expect(BIT_STRING)?)?;
    d.is_empty().then_some((KeyKind::from_algorithm(alg), key))
}

/// The parts of an `ECPrivateKey` [RFC 5915 § 3].
#[derive(Debug, Clone, Copy)]
pub(super) struct EcPrivateKey<'a> {
    /// The private scalar, big-endian.
    pub d: &'a [u8],
    /// The named curve's OID contents, if the parameters are present.
    pub curve: Option<&'a [u8]>,
    /// The public point, if present.
    pub public: Option<&'a [u8]>,
}

/// Parses a SEC1 `ECPrivateKey` (PEM "EC PRIVATE KEY", what OpenSSL and strongSwan's
/// `pki --gen --type ecdsa` write) [RFC 5915 § 3].
pub(super) fn ec_private_key(der: &[u8]) -> Option<EcPrivateKey<'_>> {
    let mut d = Der::new(single(der, SEQUENCE)?);
    if d.expect(INTEGER)? != [1] {
        return None;
    }
    let key = d.expect(OCTET_STRING)?;
    let curve = match d.optional(CONTEXT_0) {
        Some(params) => Some(single(params, OID)?),
        None => None,
    };
    let public = match d.optional(CONTEXT_1) {
        Some(p) => Some(whole_octets(single(p, BIT_STRING)?)?),
        None => None,
    };
    d.is_empty().then_some(EcPrivateKey {
        d: key,
        curve,
        public,
    })
}

/// Unwraps a PKCS#8 `PrivateKeyInfo` (v1) or `OneAsymmetricKey` (v2) [RFC 5958 § 2]: the
/// AlgorithmIdentifier's contents and the privateKey octets.
pub(super) fn pkcs8(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut d = Der::new(single(der, SEQUENCE)?);
    if !matches!(d.expect(INTEGER)?, [0] | [1]) {
        return None;
    }
    let alg = d.expect(SEQUENCE)?;
    let key = d.expect(OCTET_STRING)?;
    Some((alg, key))
}

/// Appends a DER length.
pub(super) fn push_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// Appends an unsigned big-endian integer as a DER INTEGER.
fn push_uint(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    let pad = bytes.first().is_none_or(|&b| b & 0x80 != 0);
    out.push(INTEGER);
    push_len(out, bytes.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(bytes);
}

/// `r | s` (each half the length) as an `ECDSA-Sig-Value` SEQUENCE [RFC 3279 § 2.2.3]:
/// ECDSA signatures of AUTH methods 9–11 are raw [RFC 4754 § 7], webpki and ring verify
/// the X.509 form. `None` for an empty or odd length.
pub(super) fn ecdsa_fixed_to_der(rs: &[u8]) -> Option<Vec<u8>> {
    if rs.is_empty() || rs.len() % 2 != 0 || rs.len() > 2 * 66 {
        return None;
    }
    let (r, s) = rs.split_at(rs.len() / 2);
    let mut ints = Vec::with_capacity(rs.len() + 6);
    push_uint(&mut ints, r);
    push_uint(&mut ints, s);
    let mut out = Vec::with_capacity(ints.len() + 3);
    out.push(SEQUENCE);
    push_len(&mut out, ints.len());
    out.extend_from_slice(&ints);
    Some(out)
}

/// One attribute of a Name: its type and its value's tag and contents.
type Attribute<'a> = (&'a [u8], u8, &'a [u8]);

/// The attributes of a DER Name, in order (multi-valued RDNs flattened). `None` if it is
/// not a well-formed Name.
fn attributes(name: &[u8]) -> Option<Vec<Attribute<'_>>> {
    let mut rdns = Der::new(single(name, SEQUENCE)?);
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let mut set = Der::new(rdns.expect(SET)?);
        while !set.is_empty() {
            let mut atv = Der::new(set.expect(SEQUENCE)?);
            let oid = atv.expect(OID)?;
            let (tag, value) = atv.any()?;
            if !atv.is_empty() {
                return None;
            }
            out.push((oid, tag, value));
        }
    }
    Some(out)
}

/// Whether two DER Names are the same, as strongSwan compares identities (`compare_dn`):
/// equal octets, or the same attribute types in the same order with equal values, where
/// PrintableStrings (and IA5 e-mail addresses) compare without regard to ASCII case and
/// values of other string types compare octet for octet whatever their tag, so that a
/// UTF8String and a PrintableString of the same text match.
pub(super) fn names_match(a: &[u8], b: &[u8]) -> bool {
    /// emailAddress (1.2.840.113549.1.9.1).
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    if a == b {
        return true;
    }
    let (Some(a), Some(b)) = (attributes(a), attributes(b)) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().zip(&b).all(|(&(oid, ta, va), &(oid_b, tb, vb))| {
            let fold = ta == tb && (ta == PRINTABLE_STRING || (ta == IA5_STRING && oid == EMAIL));
            oid == oid_b
                && if fold {
                    va.eq_ignore_ascii_case(vb)
                } else {
                    va == vb
                }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_minimal_and_definite() {
        assert_eq!(
            Der::new(&[0x04, 0x01, 0xaa]).any(),
            Some((0x04, &[0xaa][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.resize(3 + 0x80, 7);
        assert_eq!(Der::new(&long).any().map(|(_, c)| c.len()), Some(0x80));
        assert_eq!(
            Der::new(&[0x04, 0x81, 0x01, 0xaa]).any(),
            None,
            "non-minimal"
        );
        assert_eq!(
            Der::new(&[0x04, 0x82, 0x00, 0x80]).any(),
            None,
            "leading zero"
        );
        assert_eq!(Der::new(&[0x04, 0x80]).any(), None, "indefinite");
        assert_eq!(
            Der::new(&[0x04, 0x85, 1, 0, 0, 0, 0]).any(),
            None,
            "five octets"
        );
        assert_eq!(Der::new(&[0x04, 0x02, 0xaa]).any(), None, "short");
        assert_eq!(single(&[0x04, 0x00, 0x00], 0x04), None, "trailing");
    }

    /// [RFC 3279 § 2.2.3]: INTEGERs are minimal and non-negative.
    #[test]
    fn rfc3279_2_2_3_raw_ecdsa_signatures_become_sequences_of_two_integers() {
        let mut rs = [0u8; 64];
        rs[0] = 0x80; // r needs a leading zero octet
        rs[31] = 1;
        rs[34] = 0x7f; // s starts after two zero octets
        let der = ecdsa_fixed_to_der(&rs).unwrap();
        let mut d = Der::new(single(&der, SEQUENCE).unwrap());
        let r = d.expect(INTEGER).unwrap();
        assert_eq!((r.len(), r[0], r[1]), (33, 0, 0x80));
        assert_eq!(d.expect(INTEGER).unwrap(), &rs[34..]);
        assert!(d.is_empty());
        assert_eq!(
            ecdsa_fixed_to_der(&[0; 4]).unwrap(),
            [0x30, 6, 2, 1, 0, 2, 1, 0]
        );
        assert_eq!(ecdsa_fixed_to_der(&[]), None);
        assert_eq!(ecdsa_fixed_to_der(&[1; 63]), None);
        let p521 = ecdsa_fixed_to_der(&[0xff; 132]).unwrap();
        assert_eq!(&p521[..3], &[0x30, 0x81, 2 * 69]);
    }

    fn name(attrs: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut rdns = Vec::new();
        for &(oid, tag, value) in attrs {
            let mut atv = vec![OID, oid.len() as u8];
            atv.extend_from_slice(oid);
            atv.extend_from_slice(&[tag, value.len() as u8]);
            atv.extend_from_slice(value);
            rdns.extend_from_slice(&[SET, atv.len() as u8 + 2, SEQUENCE, atv.len() as u8]);
            rdns.extend_from_slice(&atv);
        }
        let mut out = vec![SEQUENCE, rdns.len() as u8];
        out.extend_from_slice(&rdns);
        out
    }

    #[test]
    fn names_compare_as_strongswan_compares_them() {
        const C: &[u8] = &[0x55, 0x04, 0x06];
        const CN: &[u8] = &[0x55, 0x04, 0x03];
        const UTF8: u8 = 0x0c;
        let a = name(&[(C, PRINTABLE_STRING, b"CH"), (CN, UTF8, b"gw-a")]);
        assert!(names_match(&a, &a));
        let case = name(&[(C, PRINTABLE_STRING, b"ch"), (CN, UTF8, b"gw-a")]);
        assert!(names_match(&a, &case), "PrintableString ignores case");
        let utf8 = name(&[(C, UTF8, b"CH"), (CN, UTF8, b"gw-a")]);
        assert!(names_match(&a, &utf8), "another string type, same octets");
        let upper = name(&[(C, PRINTABLE_STRING, b"CH"), (CN, UTF8, b"GW-A")]);
        assert!(!names_match(&a, &upper), "UTF8String respects case");
        let order = name(&[(CN, UTF8, b"gw-a"), (C, PRINTABLE_STRING, b"CH")]);
        assert!(!names_match(&a, &order));
        let fewer = name(&[(C, PRINTABLE_STRING, b"CH")]);
        assert!(!names_match(&a, &fewer));
        assert!(!names_match(&a, &a[..a.len() - 1]));
        assert!(!names_match(&[0x30, 0x00, 0x00], &[0x30, 0x00]));
        assert!(names_match(&[0x30, 0x00], &[0x30, 0x00]));
    }
}
