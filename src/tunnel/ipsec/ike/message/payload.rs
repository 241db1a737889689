//! The payload chain [RFC 7296 § 3.2]: generic payload headers linked by Next Payload, the
//! [`Payload`] each one decodes to, and the KE [§ 3.4] and Configuration [§ 3.15] payloads.
//!
//! [`Payloads`] walks a chain lazily and borrows everything from the input: no allocation,
//! one result per payload, fused after the first error. It rejects a length below the
//! generic header or beyond the chain, bytes after the last payload, an Encrypted payload that
//! is not last (or inside a decrypted chain), and an unknown payload type with the critical
//! bit set; an unknown payload without it is skipped by the exchange logic but still reported
//! as [`Payload::Unknown`] [RFC 7296 § 2.5]. The critical bit of known types is ignored.

use super::auth::{Auth, Cert, CertReq, Id};
use super::error::{len16, EncodeError, Error, Syntax};
use super::header::HEADER_LEN;
use super::notify::{Delete, Notify};
use super::reader::Reader;
use super::sa::Sa;
use super::sk::Encrypted;
use super::ts::Ts;
use super::types::{CfgType, DhGroup, PayloadType};

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;
/// The critical bit of the generic payload header [RFC 7296 § 3.2].
pub(crate) const CRITICAL: u8 = 0x80;
/// Nonce lengths a peer may send [RFC 7296 § 3.9].
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// One decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Sa(Sa<'a>),
    Ke(Ke<'a>),
    IdI(Id<'a>),
    IdR(Id<'a>),
    Cert(Cert<'a>),
    CertReq(CertReq<'a>),
    Auth(Auth<'a>),
    /// Ni or Nr, 16 to 256 octets.
    Nonce(&'a [u8]),
    Notify(Notify<'a>),
    Delete(Delete<'a>),
    VendorId(&'a [u8]),
    TsI(Ts<'a>),
    TsR(Ts<'a>),
    /// SK or SKF; always the last payload of a message.
    Encrypted(Encrypted<'a>),
    Cp(Cp<'a>),
    /// An EAP message [RFC 7296 § 3.16], opaque here.
    Eap(&'a [u8]),
    /// A payload type this codec does not know, sent without the critical bit.
    Unknown {
        payload_type: PayloadType,
        body: &'a [u8],
    },
}

/// A Key Exchange payload [RFC 7296 § 3.4].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ke<'a> {
    pub group: DhGroup,
    /// The public value; its length is fixed by the group (64 octets for ECP_256), which the
    /// key exchange checks.
    pub data: &'a [u8],
}

/// A validated Configuration payload body [RFC 7296 § 3.15].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cp<'a> {
    pub cfg_type: CfgType,
    attributes: &'a [u8],
}

/// A configuration attribute [RFC 7296 § 3.15.1]; `attr_type` is 15 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpAttribute<'a> {
    pub attr_type: u16,
    pub value: &'a [u8],
}

impl<'a> Payload<'a> {
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Encrypted(e) => e.payload_type(),
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Decodes the body of a payload of a known type other than SK and SKF.
    fn decode(ty: PayloadType, body: &'a [u8]) -> Result<Payload<'a>, Syntax> {
        Ok(match ty {
            PayloadType::SA => Payload::Sa(Sa::parse(body)?),
            PayloadType::KE => Payload::Ke(Ke::parse(body)?),
            PayloadType::IDI => Payload::IdI(Id::parse(body)?),
            PayloadType::IDR => Payload::IdR(Id::parse(body)?),
            PayloadType::CERT => Payload::Cert(Cert::parse(body)?),
            PayloadType::CERTREQ => Payload::CertReq(CertReq::parse(body)?),
            PayloadType::AUTH => Payload::Auth(Auth::parse(body)?),
            PayloadType::NONCE if NONCE_LEN.contains(&body.len()) => Payload::Nonce(body),
            PayloadType::NONCE => return Err(Syntax::NonceLength),
            PayloadType::NOTIFY => Payload::Notify(Notify::parse(body)?),
            PayloadType::DELETE => Payload::Delete(Delete::parse(body)?),
            PayloadType::VENDOR_ID => Payload::VendorId(body),
            PayloadType::TSI => Payload::TsI(Ts::parse(body)?),
            PayloadType::TSR => Payload::TsR(Ts::parse(body)?),
            PayloadType::CP => Payload::Cp(Cp::parse(body)?),
            PayloadType::EAP => Payload::Eap(body),
            payload_type => Payload::Unknown { payload_type, body },
        })
    }

    /// Writes the body (everything after the generic header), reserved fields as zero.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Payload::Sa(p) => p.encode_body(out),
            Payload::Ke(p) => p.encode_body(out),
            Payload::IdI(p) | Payload::IdR(p) => p.encode_body(out),
            Payload::Cert(p) => p.encode_body(out),
            Payload::CertReq(p) => p.encode_body(out),
            Payload::Auth(p) => p.encode_body(out),
            Payload::Nonce(n) if NONCE_LEN.contains(&n.len()) => {
                out.extend_from_slice(n);
                Ok(())
            }
            Payload::Nonce(_) => Err(EncodeError::Inconsistent),
            Payload::Notify(p) => p.encode_body(out),
            Payload::Delete(p) => p.encode_body(out),
            Payload::TsI(p) | Payload::TsR(p) => p.encode_body(out),
            Payload::Encrypted(p) => p.encode_body(out),
            Payload::Cp(p) => p.encode_body(out),
            Payload::VendorId(b) | Payload::Eap(b) | Payload::Unknown { body: b, .. } => {
                out.extend_from_slice(b);
                Ok(())
            }
        }
    }
}

impl<'a> Ke<'a> {
    fn parse(body: &'a [u8]) -> Result<Ke<'a>, Syntax> {
        let mut r = Reader::new(body);
        let group = DhGroup(r.u16().ok_or(Syntax::BodyTooShort)?);
        r.take(2).ok_or(Syntax::BodyTooShort)?;
        Ok(Ke {
            group,
            data: r.rest(),
        })
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.group.0.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(self.data);
        Ok(())
    }
}

impl<'a> Cp<'a> {
    fn parse(body: &'a [u8]) -> Result<Cp<'a>, Syntax> {
        let mut r = Reader::new(body);
        let cfg_type = CfgType(r.u8().ok_or(Syntax::BodyTooShort)?);
        r.take(3).ok_or(Syntax::BodyTooShort)?;
        let attributes = r.rest();
        let mut a = Reader::new(attributes);
        while !a.is_empty() {
            read_cp_attribute(&mut a)?;
        }
        Ok(Cp {
            cfg_type,
            attributes,
        })
    }

    pub fn attributes(&self) -> impl Iterator<Item = CpAttribute<'a>> + 'a {
        let mut r = Reader::new(self.attributes);
        std::iter::from_fn(move || read_cp_attribute(&mut r).ok())
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let attributes: Vec<CpAttribute<'a>> = self.attributes().collect();
        encode_cp(self.cfg_type, &attributes, out)
    }
}

fn read_cp_attribute<'a>(r: &mut Reader<'a>) -> Result<CpAttribute<'a>, Syntax> {
    // The top bit is reserved: ignored on receipt [RFC 7296 § 3.15.1].
    let attr_type = r.u16().ok_or(Syntax::CfgAttribute)? & 0x7fff;
    let len = r.u16().ok_or(Syntax::CfgAttribute)?;
    let value = r.take(usize::from(len)).ok_or(Syntax::CfgAttribute)?;
    Ok(CpAttribute { attr_type, value })
}

/// Writes a CP payload body.
pub(crate) fn encode_cp(
    cfg_type: CfgType,
    attributes: &[CpAttribute<'_>],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(&[cfg_type.0, 0, 0, 0]);
    for a in attributes {
        out.extend_from_slice(&(a.attr_type & 0x7fff).to_be_bytes());
        out.extend_from_slice(&len16(a.value.len())?.to_be_bytes());
        out.extend_from_slice(a.value);
    }
    Ok(())
}

/// A lazy walk over a payload chain; see the module documentation.
#[derive(Debug, Clone)]
pub struct Payloads<'a> {
    bytes: &'a [u8],
    off: usize,
    next: PayloadType,
    in_message: bool,
    done: bool,
}

impl<'a> Payloads<'a> {
    /// The payloads of a decrypted inner chain (after [`super::sk::unpad`]) whose first
    /// payload has type `first` (the SK payload's Next Payload).
    pub fn new(first: PayloadType, chain: &'a [u8]) -> Payloads<'a> {
        Payloads {
            bytes: chain,
            off: 0,
            next: first,
            in_message: false,
            done: false,
        }
    }

    /// The payloads of a whole message, from after its header.
    pub(crate) fn in_message(first: PayloadType, message: &'a [u8]) -> Payloads<'a> {
        Payloads {
            bytes: message,
            off: HEADER_LEN,
            next: first,
            in_message: true,
            done: false,
        }
    }

    fn step(&mut self) -> Result<Option<Payload<'a>>, Error> {
        let rest = self.bytes.get(self.off..).unwrap_or_default();
        let ty = self.next;
        if ty == PayloadType::NONE {
            if !rest.is_empty() {
                return Err(Error::syntax(PayloadType::NONE, Syntax::TrailingBytes));
            }
            return Ok(None);
        }
        let mut r = Reader::new(rest);
        let header = (|| Some((r.u8()?, r.u8()?, usize::from(r.u16()?))))();
        let (next, flags, len) = header.ok_or(Error::syntax(ty, Syntax::PayloadLength))?;
        let body = len
            .checked_sub(GENERIC_HEADER_LEN)
            .and_then(|n| r.take(n))
            .ok_or(Error::syntax(ty, Syntax::PayloadLength))?;
        self.off += len;
        self.next = PayloadType(next);
        if ty == PayloadType::SK || ty == PayloadType::SKF {
            if !self.in_message || self.off != self.bytes.len() {
                return Err(Error::syntax(ty, Syntax::EncryptedPlacement));
            }
            self.next = PayloadType::NONE;
            let e = Encrypted::parse(ty, PayloadType(next), body)
                .map_err(|reason| Error::syntax(ty, reason))?;
            return Ok(Some(Payload::Encrypted(e)));
        }
        if !ty.is_known() && flags & CRITICAL != 0 {
            return Err(Error::UnsupportedCriticalPayload(ty));
        }
        Payload::decode(ty, body)
            .map(Some)
            .map_err(|reason| Error::syntax(ty, reason))
    }
}

impl<'a> Iterator for Payloads<'a> {
    type Item = Result<Payload<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let out = self.step().transpose();
        if !matches!(out, Some(Ok(_))) {
            self.done = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(parts: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (_, flags, body)) in parts.iter().enumerate() {
            let next = parts.get(i + 1).map_or(0, |p| p.0);
            out.extend_from_slice(&[next, *flags]);
            out.extend_from_slice(&(body.len() as u16 + 4).to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    fn parse(first: u8, bytes: &[u8]) -> Result<Vec<Payload<'_>>, Error> {
        Payloads::new(PayloadType(first), bytes).collect()
    }

    const NONCE: [u8; 16] = [0x4e; 16];

    #[test]
    fn walks_a_chain() {
        let b = chain(&[
            (40, 0, &NONCE),
            (43, 0, b"vid"),
            (34, 0, &[0, 19, 0, 0, 1, 2]),
        ]);
        let p = parse(40, &b).unwrap();
        assert_eq!(
            p,
            [
                Payload::Nonce(&NONCE),
                Payload::VendorId(b"vid"),
                Payload::Ke(Ke {
                    group: DhGroup::ECP_256,
                    data: &[1, 2]
                })
            ]
        );
        assert_eq!(parse(0, &[]).unwrap(), []);
    }

    #[test]
    fn rejects_trailing_bytes_and_bad_lengths() {
        let mut b = chain(&[(43, 0, b"vid")]);
        b.push(0);
        assert_eq!(
            parse(43, &b),
            Err(Error::syntax(PayloadType::NONE, Syntax::TrailingBytes))
        );
        assert_eq!(
            parse(0, &[0]),
            Err(Error::syntax(PayloadType::NONE, Syntax::TrailingBytes))
        );
        let vid = Err(Error::syntax(PayloadType::VENDOR_ID, Syntax::PayloadLength));
        assert_eq!(parse(43, &[0, 0, 0, 3]), vid, "shorter than the header");
        assert_eq!(parse(43, &[0, 0, 0, 8, 1, 2, 3]), vid, "beyond the chain");
        assert_eq!(parse(43, &[0, 0, 0]), vid, "a truncated header");
        assert_eq!(parse(43, &[]), vid, "a missing payload");
        let b = chain(&[(43, 0, b"vid"), (43, 0, b"v2")]);
        assert_eq!(parse(43, &b[..b.len() - 1]), vid);
    }

    /// [RFC 7296 § 2.5]: unknown payloads are skipped, unless critical.
    #[test]
    fn rfc7296_2_5_unknown_payloads_and_the_critical_bit() {
        let b = chain(&[(200, 0, b"new"), (43, 0, b"vid")]);
        assert_eq!(
            parse(200, &b).unwrap(),
            [
                Payload::Unknown {
                    payload_type: PayloadType(200),
                    body: b"new"
                },
                Payload::VendorId(b"vid")
            ]
        );
        let b = chain(&[(43, 0, b"vid"), (200, CRITICAL, b"new")]);
        let mut it = Payloads::new(PayloadType::VENDOR_ID, &b);
        assert_eq!(it.next(), Some(Ok(Payload::VendorId(b"vid"))));
        assert_eq!(
            it.next(),
            Some(Err(Error::UnsupportedCriticalPayload(PayloadType(200))))
        );
        assert_eq!(it.next(), None, "fused after an error");
        // Known types ignore the critical bit, and reserved bits are ignored.
        let b = chain(&[(43, 0xff, b"vid")]);
        assert_eq!(parse(43, &b).unwrap(), [Payload::VendorId(b"vid")]);
    }

    /// [RFC 7296 § 3.9]: nonces are 16 to 256 octets.
    #[test]
    fn rfc7296_3_9_nonce_lengths() {
        for (len, ok) in [(15, false), (16, true), (256, true), (257, false)] {
            let body = vec![1; len];
            let b = chain(&[(40, 0, &body)]);
            assert_eq!(parse(40, &b).is_ok(), ok, "{len}");
        }
    }

    #[test]
    fn encrypted_payloads_only_last_in_a_message() {
        let b = chain(&[(46, 0, &[1, 2, 3])]);
        assert_eq!(
            parse(46, &b),
            Err(Error::syntax(PayloadType::SK, Syntax::EncryptedPlacement))
        );
        let mut msg = vec![0; HEADER_LEN];
        msg.extend(chain(&[(46, 0, &[1, 2, 3]), (43, 0, b"v")]));
        let got: Result<Vec<_>, _> = Payloads::in_message(PayloadType::SK, &msg).collect();
        assert_eq!(
            got,
            Err(Error::syntax(PayloadType::SK, Syntax::EncryptedPlacement))
        );
    }

    /// [RFC 7296 § 3.15]: configuration attributes, reserved bit ignored.
    #[test]
    fn rfc7296_3_15_cp_attributes() {
        // CFG_REQUEST for INTERNAL_IP4_ADDRESS (1, empty) and INTERNAL_IP4_DNS (3, empty).
        let body = [1, 0, 0, 0, 0x80, 1, 0, 0, 0, 3, 0, 4, 10, 0, 0, 1];
        let b = chain(&[(47, 0, &body)]);
        let p = parse(47, &b).unwrap();
        let Payload::Cp(cp) = p[0] else {
            panic!("{p:?}")
        };
        assert_eq!(cp.cfg_type, CfgType::REQUEST);
        let attrs: Vec<_> = cp.attributes().collect();
        assert_eq!(
            attrs,
            [
                CpAttribute {
                    attr_type: 1,
                    value: &[]
                },
                CpAttribute {
                    attr_type: 3,
                    value: &[10, 0, 0, 1]
                }
            ]
        );
        let mut out = Vec::new();
        cp.encode_body(&mut out).unwrap();
        assert_eq!(out[4], 0, "reserved bit sent as zero");
        assert_eq!(out[5..], body[5..]);
        let b = chain(&[(47, 0, &body[..15])]);
        assert_eq!(
            parse(47, &b),
            Err(Error::syntax(PayloadType::CP, Syntax::CfgAttribute))
        );
    }

    #[test]
    fn short_fixed_fields_are_syntax_errors() {
        for ty in [33u8, 34, 35, 36, 37, 38, 39, 41, 42, 44, 45, 47] {
            let b = chain(&[(ty, 0, &[])]);
            let err = parse(ty, &b).unwrap_err();
            assert!(
                matches!(err, Error::InvalidSyntax { payload, .. } if payload == PayloadType(ty)),
                "{ty}: {err:?}"
            );
        }
        for ty in [43u8, 48] {
            let b = chain(&[(ty, 0, &[])]);
            assert!(parse(ty, &b).is_ok(), "{ty}");
        }
    }
}
