//! The payloads that authenticate a peer: Identification [RFC 7296 § 3.5], Certificate
//! [§ 3.6], Certificate Request [§ 3.7] and Authentication [§ 3.8], with the RFC 7427
//! Digital Signature format (an ASN.1 AlgorithmIdentifier before the signature).
//!
//! An identification keeps its data as sent and the reserved octets as received: the AUTH
//! payload covers `RestOfIDPayload` (type, reserved, data) exactly as the peer sent it
//! [RFC 7296 § 2.15].

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{EncodeError, Syntax};
use super::reader::Reader;
use super::types::{AuthMethod, CertEncoding, IdType};

/// Length of a SHA-1 hash of a CA's SubjectPublicKeyInfo in a CERTREQ [RFC 7296 § 3.7].
pub const CA_HASH_LEN: usize = 20;

/// IDi or IDr [RFC 7296 § 3.5].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id<'a> {
    pub id_type: IdType,
    /// As received (sent as zero by [`Id::new`]); covered by AUTH.
    pub reserved: [u8; 3],
    pub data: &'a [u8],
}

/// The data of an [`Id`], read according to its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdValue<'a> {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// A fully-qualified domain name, octets as sent (no terminator, no normalisation).
    Fqdn(&'a [u8]),
    /// An e-mail address, octets as sent.
    Rfc822(&'a [u8]),
    /// A DER-encoded X.500 Distinguished Name.
    DerAsn1Dn(&'a [u8]),
    /// Opaque octets (vendor-specific identities).
    KeyId(&'a [u8]),
    /// Any other type.
    Other(&'a [u8]),
}

impl<'a> Id<'a> {
    pub fn new(id_type: IdType, data: &'a [u8]) -> Id<'a> {
        Id {
            id_type,
            reserved: [0; 3],
            data,
        }
    }

    pub(crate) fn parse(body: &'a [u8]) -> Result<Id<'a>, Syntax> {
        let mut r = Reader::new(body);
        let id_type = IdType(r.u8().ok_or(Syntax::BodyTooShort)?);
        let reserved = r.array::<3>().ok_or(Syntax::BodyTooShort)?;
        let data = r.rest();
        let fits = match id_type {
            IdType::IPV4_ADDR => data.len() == 4,
            IdType::IPV6_ADDR => data.len() == 16,
            _ => true,
        };
        if !fits {
            return Err(Syntax::IdLength);
        }
        Ok(Id {
            id_type,
            reserved,
            data,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.auth_prefix());
        out.extend_from_slice(self.data);
        Ok(())
    }

    /// The four octets that precede [`Id::data`] in `RestOfInitIDPayload` /
    /// `RestOfRespIDPayload`, which the AUTH computation feeds to the PRF [RFC 7296 § 2.15].
    pub fn auth_prefix(&self) -> [u8; 4] {
        let [a, b, c] = self.reserved;
        [self.id_type.0, a, b, c]
    }

    pub fn value(&self) -> IdValue<'a> {
        let d = self.data;
        match self.id_type {
            IdType::IPV4_ADDR => <[u8; 4]>::try_from(d)
                .map(|a| IdValue::Ipv4(a.into()))
                .unwrap_or(IdValue::Other(d)),
            IdType::IPV6_ADDR => <[u8; 16]>::try_from(d)
                .map(|a| IdValue::Ipv6(a.into()))
                .unwrap_or(IdValue::Other(d)),
            IdType::FQDN => IdValue::Fqdn(d),
            IdType::RFC822_ADDR => IdValue::Rfc822(d),
            IdType::DER_ASN1_DN => IdValue::DerAsn1Dn(d),
            IdType::KEY_ID => IdValue::KeyId(d),
            _ => IdValue::Other(d),
        }
    }
}

/// A CERT payload [RFC 7296 § 3.6]: a certificate (or CRL, or hash and URL) in `encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cert<'a> {
    pub encoding: CertEncoding,
    pub data: &'a [u8],
}

impl<'a> Cert<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Cert<'a>, Syntax> {
        let (&encoding, data) = body.split_first().ok_or(Syntax::BodyTooShort)?;
        Ok(Cert {
            encoding: CertEncoding(encoding),
            data,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.encoding.0);
        out.extend_from_slice(self.data);
        Ok(())
    }
}

/// A CERTREQ payload [RFC 7296 § 3.7]: for X.509 certificates, the SHA-1 hashes of the
/// SubjectPublicKeyInfo of the CAs the sender trusts, concatenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertReq<'a> {
    pub encoding: CertEncoding,
    pub data: &'a [u8],
}

impl<'a> CertReq<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<CertReq<'a>, Syntax> {
        let (&encoding, data) = body.split_first().ok_or(Syntax::BodyTooShort)?;
        let encoding = CertEncoding(encoding);
        if encoding == CertEncoding::X509_SIGNATURE && data.len() % CA_HASH_LEN != 0 {
            return Err(Syntax::CertReqLength);
        }
        Ok(CertReq { encoding, data })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.encoding.0);
        out.extend_from_slice(self.data);
        Ok(())
    }

    /// The CA key hashes of an X.509 request (nothing for other encodings).
    pub fn authorities(&self) -> impl Iterator<Item = &'a [u8; CA_HASH_LEN]> + 'a {
        let data = if self.encoding == CertEncoding::X509_SIGNATURE {
            self.data
        } else {
            &[]
        };
        data.chunks_exact(CA_HASH_LEN)
            .filter_map(|c| <&[u8; CA_HASH_LEN]>::try_from(c).ok())
    }
}

/// An AUTH payload [RFC 7296 § 3.8].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    pub method: AuthMethod,
    pub data: &'a [u8],
}

impl<'a> Auth<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Auth<'a>, Syntax> {
        let mut r = Reader::new(body);
        let method = AuthMethod(r.u8().ok_or(Syntax::BodyTooShort)?);
        r.take(3).ok_or(Syntax::BodyTooShort)?;
        let auth = Auth {
            method,
            data: r.rest(),
        };
        if method == AuthMethod::DIGITAL_SIGNATURE && auth.digital_signature().is_none() {
            return Err(Syntax::SignatureAuth);
        }
        Ok(auth)
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[self.method.0, 0, 0, 0]);
        out.extend_from_slice(self.data);
        Ok(())
    }

    /// The signature and its algorithm, for method 14 [RFC 7427 § 3]. Never `None` for a
    /// parsed AUTH payload of that method.
    pub fn digital_signature(&self) -> Option<DigitalSignature<'a>> {
        if self.method != AuthMethod::DIGITAL_SIGNATURE {
            return None;
        }
        DigitalSignature::parse(self.data)
    }
}

/// Authentication Data of method 14 [RFC 7427 § 3]:
/// `ASN.1 Length (1) | AlgorithmIdentifier (DER) | Signature Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitalSignature<'a> {
    /// The DER AlgorithmIdentifier (SEQUENCE { OID, parameters }), e.g. one of
    /// [`algorithm_identifier`].
    pub algorithm: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> DigitalSignature<'a> {
    /// Parses Authentication Data: a well-formed DER SEQUENCE starting with an OID, and a
    /// non-empty signature.
    pub fn parse(data: &'a [u8]) -> Option<DigitalSignature<'a>> {
        let (&n, rest) = data.split_first()?;
        let algorithm = rest.get(..usize::from(n))?;
        let signature = rest.get(usize::from(n)..)?;
        let (0x30, seq, []) = der(algorithm)? else {
            return None;
        };
        let (0x06, oid, _params) = der(seq)? else {
            return None;
        };
        if oid.is_empty() || signature.is_empty() {
            return None;
        }
        Some(DigitalSignature {
            algorithm,
            signature,
        })
    }

    /// The content octets of the algorithm's OID.
    pub fn algorithm_oid(&self) -> &'a [u8] {
        der(self.algorithm)
            .and_then(|(_, seq, _)| der(seq))
            .map(|(_, oid, _)| oid)
            .unwrap_or_default()
    }

    /// The Authentication Data of an AUTH payload with this signature.
    pub fn to_auth_data(&self) -> Result<Vec<u8>, EncodeError> {
        let n = u8::try_from(self.algorithm.len()).map_err(|_| EncodeError::TooLong)?;
        let mut out = Vec::with_capacity(1 + self.algorithm.len() + self.signature.len());
        out.push(n);
        out.extend_from_slice(self.algorithm);
        out.extend_from_slice(self.signature);
        Ok(out)
    }
}

/// One DER TLV off the front of `b`: (tag, contents, rest). Definite lengths of up to two
/// octets in minimal form.
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, b) = b.split_first()?;
    let (len, b) = match first {
        n if n < 0x80 => (usize::from(n), b),
        0x81 => {
            let (&n, b) = b.split_first()?;
            (n >= 0x80).then_some((usize::from(n), b))?
        }
        0x82 => {
            let (n, b) = b.split_first_chunk::<2>()?;
            let n = usize::from(u16::from_be_bytes(*n));
            (n >= 0x100).then_some((n, b))?
        }
        _ => return None,
    };
    Some((tag, b.get(..len)?, b.get(len..)?))
}

/// DER AlgorithmIdentifiers of common signature algorithms, as RFC 7427 Appendix A and
/// RFC 8420 § 2 list them.
pub mod algorithm_identifier {
    /// sha256WithRSAEncryption, NULL parameters [RFC 7427 § A.1.2].
    pub const SHA256_WITH_RSA: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    /// sha384WithRSAEncryption [RFC 7427 § A.1.3].
    pub const SHA384_WITH_RSA: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
    ];
    /// sha512WithRSAEncryption [RFC 7427 § A.1.4].
    pub const SHA512_WITH_RSA: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
    ];
    /// ecdsa-with-SHA256 [RFC 7427 § A.3.1].
    pub const ECDSA_WITH_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    /// ecdsa-with-SHA384 [RFC 7427 § A.3.2].
    pub const ECDSA_WITH_SHA384: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
    ];
    /// ecdsa-with-SHA512 [RFC 7427 § A.3.3].
    pub const ECDSA_WITH_SHA512: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
    ];
    /// Ed25519 [RFC 8420 § 2].
    pub const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_types_and_the_auth_prefix() {
        let ip = Id::parse(&[1, 0, 0, 0, 192, 0, 2, 1]).unwrap();
        assert_eq!(ip.value(), IdValue::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(Id::parse(&[1, 0, 0, 0, 192, 0, 2]), Err(Syntax::IdLength));
        assert_eq!(Id::parse(&[5, 0, 0, 0, 1, 2, 3, 4]), Err(Syntax::IdLength));
        assert_eq!(Id::parse(&[2, 0, 0]), Err(Syntax::BodyTooShort));

        let body = [2, 0xaa, 0, 0, b'g', b'w'];
        let fqdn = Id::parse(&body).unwrap();
        assert_eq!(fqdn.value(), IdValue::Fqdn(b"gw"));
        assert_eq!(fqdn.auth_prefix(), [2, 0xaa, 0, 0], "reserved as received");
        let mut out = Vec::new();
        fqdn.encode_body(&mut out).unwrap();
        assert_eq!(out, body);
        assert_eq!(Id::new(IdType::FQDN, b"gw").auth_prefix(), [2, 0, 0, 0]);
        assert_eq!(
            Id::new(IdType(200), b"?").value(),
            IdValue::Other(&b"?"[..])
        );
    }

    /// [RFC 7296 § 3.7]: X.509 CERTREQ data is a list of 20-octet SHA-1 hashes.
    #[test]
    fn rfc7296_3_7_certreq_is_a_list_of_sha1_hashes() {
        let mut body = vec![4];
        body.extend_from_slice(&[0x11; 20]);
        body.extend_from_slice(&[0x22; 20]);
        let req = CertReq::parse(&body).unwrap();
        assert_eq!(
            req.authorities().collect::<Vec<_>>(),
            [&[0x11; 20], &[0x22; 20]]
        );
        assert_eq!(CertReq::parse(&body[..40]), Err(Syntax::CertReqLength));
        assert_eq!(CertReq::parse(&[4]).unwrap().authorities().count(), 0);
        assert_eq!(
            CertReq::parse(&[12, 1, 2]).unwrap().authorities().count(),
            0
        );
        assert_eq!(CertReq::parse(&[]), Err(Syntax::BodyTooShort));
        let cert = Cert::parse(&[4, 0x30, 0x00]).unwrap();
        assert_eq!(cert.encoding, CertEncoding::X509_SIGNATURE);
        assert_eq!(cert.data, &[0x30, 0x00]);
    }

    fn signature_auth(alg: &[u8], sig: &[u8]) -> Vec<u8> {
        let mut body = vec![14, 0, 0, 0];
        body.extend(
            DigitalSignature {
                algorithm: alg,
                signature: sig,
            }
            .to_auth_data()
            .unwrap(),
        );
        body
    }

    /// [RFC 7427 § 3]: ASN.1 Length, AlgorithmIdentifier, Signature Value.
    #[test]
    fn rfc7427_3_parses_the_algorithm_identifier_and_signature() {
        for alg in [
            algorithm_identifier::SHA256_WITH_RSA,
            algorithm_identifier::SHA384_WITH_RSA,
            algorithm_identifier::SHA512_WITH_RSA,
            algorithm_identifier::ECDSA_WITH_SHA256,
            algorithm_identifier::ECDSA_WITH_SHA384,
            algorithm_identifier::ECDSA_WITH_SHA512,
            algorithm_identifier::ED25519,
        ] {
            let body = signature_auth(alg, &[0x5a; 64]);
            let auth = Auth::parse(&body).unwrap();
            let sig = auth.digital_signature().unwrap();
            assert_eq!(sig.algorithm, alg);
            assert_eq!(sig.signature, &[0x5a; 64]);
            assert_eq!(sig.algorithm_oid(), &alg[4..4 + usize::from(alg[3])]);
            let mut out = Vec::new();
            auth.encode_body(&mut out).unwrap();
            assert_eq!(out, body);
        }
        assert_eq!(
            algorithm_identifier::ED25519[2..],
            [0x06, 0x03, 0x2b, 0x65, 0x70]
        );
    }

    #[test]
    fn rfc7427_3_rejects_malformed_signature_data() {
        let alg = algorithm_identifier::ECDSA_WITH_SHA256;
        let bad = |body: &[u8]| Auth::parse(body).map(|_| ());
        assert_eq!(bad(&signature_auth(alg, &[])), Err(Syntax::SignatureAuth));
        let mut b = signature_auth(alg, &[1; 8]);
        b[4] = 40; // ASN.1 length beyond the data
        assert_eq!(bad(&b), Err(Syntax::SignatureAuth));
        let mut b = signature_auth(alg, &[1; 8]);
        b[5] = 0x31; // a SET, not a SEQUENCE
        assert_eq!(bad(&b), Err(Syntax::SignatureAuth));
        let mut b = signature_auth(alg, &[1; 8]);
        b[6] = 0x0b; // SEQUENCE length disagrees with the ASN.1 length
        assert_eq!(bad(&b), Err(Syntax::SignatureAuth));
        let mut b = signature_auth(alg, &[1; 8]);
        b[7] = 0x04; // not an OID
        assert_eq!(bad(&b), Err(Syntax::SignatureAuth));
        assert_eq!(bad(&[14, 0, 0, 0]), Err(Syntax::SignatureAuth));
        assert_eq!(bad(&[14, 0, 0]), Err(Syntax::BodyTooShort));

        // Other methods carry opaque data.
        let psk = Auth::parse(&[2, 0, 0, 0, 9, 9]).unwrap();
        assert_eq!(psk.method, AuthMethod::SHARED_KEY_MIC);
        assert_eq!(psk.digital_signature(), None);
    }

    #[test]
    fn der_lengths_in_long_form() {
        let mut long = vec![0x30, 0x81, 0x80, 0x06, 0x01, 0x01];
        long.resize(3 + 0x80, 0);
        assert!(der(&long).is_some());
        assert_eq!(der(&[0x30, 0x81, 0x7f]), None, "non-minimal");
        assert_eq!(der(&[0x30, 0x82, 0x00, 0x80]), None, "non-minimal");
        assert_eq!(der(&[0x30, 0x83, 0, 0, 1]), None);
        assert_eq!(der(&[0x30, 0x02, 0x06]), None, "short");
    }
}
