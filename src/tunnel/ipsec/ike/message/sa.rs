//! The Security Association payload [RFC 7296 § 3.3]: proposals, their transforms and the
//! transforms' attributes.
//!
//! Parsing validates the whole structure once (lengths, last-substructure fields, transform
//! counts, proposal numbering, SPI sizes, attribute formats); [`Sa`], [`Proposal`] and
//! [`Transform`] then iterate the validated bytes without allocating and without failing.
//! Building goes through [`ProposalSpec`], which a parsed [`Proposal`] converts to (the
//! responder's answer echoes the chosen proposal with its number).

use super::error::{len16, len8, EncodeError, Syntax};
use super::reader::Reader;
use super::types::{ProtocolId, TransformType};

/// The Key Length attribute, the only one RFC 7296 defines; always in TV format
/// [RFC 7296 § 3.3.5].
pub const ATTR_KEY_LENGTH: u16 = 14;

/// Attribute Format bit: set for TV (2-octet value in place of the length) [RFC 7296 § 3.3.5].
const AF_TV: u16 = 0x8000;
/// Last-substructure value of a proposal followed by another [RFC 7296 § 3.3.1].
const MORE_PROPOSALS: u8 = 2;
/// Last-substructure value of a transform followed by another [RFC 7296 § 3.3.2].
const MORE_TRANSFORMS: u8 = 3;
const PROPOSAL_HEADER: usize = 8;
const TRANSFORM_HEADER: usize = 8;

/// A validated SA payload body: one or more proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sa<'a> {
    proposals: &'a [u8],
}

/// One proposal of an SA payload [RFC 7296 § 3.3.1].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal<'a> {
    pub num: u8,
    pub protocol: ProtocolId,
    /// Empty in the IKE_SA_INIT proposals; the sender's inbound SPI for ESP and AH, the new
    /// IKE SPI when rekeying the IKE SA.
    pub spi: &'a [u8],
    transform_count: u8,
    transforms: &'a [u8],
}

/// One transform of a proposal [RFC 7296 § 3.3.2].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform<'a> {
    pub transform_type: TransformType,
    /// The transform ID; see [`super::types::transform_id`] and [`super::types::DhGroup`].
    pub id: u16,
    attributes: &'a [u8],
}

/// A transform attribute [RFC 7296 § 3.3.5]; `attr_type` is 15 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute<'a> {
    Tv { attr_type: u16, value: u16 },
    Tlv { attr_type: u16, value: &'a [u8] },
}

impl Attribute<'_> {
    pub fn attr_type(&self) -> u16 {
        match *self {
            Attribute::Tv { attr_type, .. } | Attribute::Tlv { attr_type, .. } => attr_type,
        }
    }

    /// The Key Length attribute, in bits.
    pub fn key_length(bits: u16) -> Attribute<'static> {
        Attribute::Tv {
            attr_type: ATTR_KEY_LENGTH,
            value: bits,
        }
    }
}

/// A proposal to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalSpec<'a> {
    pub num: u8,
    pub protocol: ProtocolId,
    pub spi: &'a [u8],
    pub transforms: Vec<TransformSpec<'a>>,
}

/// A transform to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSpec<'a> {
    pub transform_type: TransformType,
    pub id: u16,
    pub attributes: Vec<Attribute<'a>>,
}

impl TransformSpec<'static> {
    pub fn new(transform_type: TransformType, id: u16) -> Self {
        TransformSpec {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (AES), `bits` long.
    pub fn with_key_length(transform_type: TransformType, id: u16, bits: u16) -> Self {
        TransformSpec {
            transform_type,
            id,
            attributes: vec![Attribute::key_length(bits)],
        }
    }
}

impl<'a> Sa<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Sa<'a>, Syntax> {
        if body.is_empty() {
            return Err(Syntax::NoProposal);
        }
        let mut r = Reader::new(body);
        let mut index: usize = 0;
        let mut first_num = 0;
        while !r.is_empty() {
            let (last, p) = read_proposal(&mut r)?;
            check_last(last, MORE_PROPOSALS, r.is_empty())?;
            // [RFC 7296 § 3.3.1]: an offer numbers its proposals 1, 2, ...; an answer holds
            // one proposal carrying the number of the one it accepted.
            if index == 0 {
                first_num = p.num;
            }
            if p.num == 0 || (index > 0 && (first_num != 1 || usize::from(p.num) != index + 1)) {
                return Err(Syntax::ProposalNumber);
            }
            check_spi_size(p.protocol, p.spi.len())?;
            validate_transforms(p.transforms, p.transform_count)?;
            index += 1;
        }
        Ok(Sa { proposals: body })
    }

    /// The proposals, in order.
    pub fn proposals(&self) -> impl Iterator<Item = Proposal<'a>> + 'a {
        let mut r = Reader::new(self.proposals);
        std::iter::from_fn(move || read_proposal(&mut r).ok().map(|(_, p)| p))
    }

    /// Re-encodes the proposals with zero reserved fields.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let specs: Vec<ProposalSpec<'a>> = self.proposals().map(|p| p.to_spec()).collect();
        encode_proposals(&specs, out)
    }
}

impl<'a> Proposal<'a> {
    /// The transforms, in order.
    pub fn transforms(&self) -> impl Iterator<Item = Transform<'a>> + 'a {
        let mut r = Reader::new(self.transforms);
        std::iter::from_fn(move || read_transform(&mut r).ok().map(|(_, t)| t))
    }

    pub fn transform_count(&self) -> u8 {
        self.transform_count
    }

    /// The first transform of type `ty`.
    pub fn transform(&self, ty: TransformType) -> Option<Transform<'a>> {
        self.transforms().find(|t| t.transform_type == ty)
    }

    /// This proposal as one to build (to echo the accepted proposal, with its number).
    pub fn to_spec(&self) -> ProposalSpec<'a> {
        ProposalSpec {
            num: self.num,
            protocol: self.protocol,
            spi: self.spi,
            transforms: self
                .transforms()
                .map(|t| TransformSpec {
                    transform_type: t.transform_type,
                    id: t.id,
                    attributes: t.attributes().collect(),
                })
                .collect(),
        }
    }
}

impl<'a> Transform<'a> {
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'a>> + 'a {
        let mut r = Reader::new(self.attributes);
        std::iter::from_fn(move || read_attribute(&mut r).ok())
    }

    /// The Key Length attribute, in bits [RFC 7296 § 3.3.5].
    pub fn key_length(&self) -> Option<u16> {
        self.attributes().find_map(|a| match a {
            Attribute::Tv {
                attr_type: ATTR_KEY_LENGTH,
                value,
            } => Some(value),
            _ => None,
        })
    }

    /// Whether the transform carries an attribute other than Key Length: a proposal with an
    /// attribute the responder does not understand is not accepted [RFC 7296 § 3.3.6].
    pub fn has_unknown_attributes(&self) -> bool {
        self.attributes().any(|a| a.attr_type() != ATTR_KEY_LENGTH)
    }
}

fn check_last(last: u8, more: u8, at_end: bool) -> Result<(), Syntax> {
    match (last, at_end) {
        (0, true) => Ok(()),
        (l, false) if l == more => Ok(()),
        _ => Err(Syntax::LastSubstructure),
    }
}

/// [RFC 7296 § 3.3.1]: no SPI in an initial IKE SA negotiation, 8 octets when rekeying it,
/// 4 for AH and ESP; other protocols are left to the negotiation (it ignores them).
fn check_spi_size(protocol: ProtocolId, len: usize) -> Result<(), Syntax> {
    let ok = match protocol {
        ProtocolId::IKE => len == 0 || len == 8,
        ProtocolId::AH | ProtocolId::ESP => len == 4,
        _ => true,
    };
    ok.then_some(()).ok_or(Syntax::SpiSize)
}

/// Splits one proposal off `r`: its last-substructure field and the proposal, whose
/// transforms are not looked at.
fn read_proposal<'a>(r: &mut Reader<'a>) -> Result<(u8, Proposal<'a>), Syntax> {
    let last = r.u8().ok_or(Syntax::SubstructureLength)?;
    r.u8().ok_or(Syntax::SubstructureLength)?;
    let len = usize::from(r.u16().ok_or(Syntax::SubstructureLength)?);
    let body = len
        .checked_sub(4)
        .filter(|_| len >= PROPOSAL_HEADER)
        .and_then(|n| r.take(n))
        .ok_or(Syntax::SubstructureLength)?;
    let mut p = Reader::new(body);
    let (num, protocol, spi_size, transform_count) =
        (|| Some((p.u8()?, ProtocolId(p.u8()?), p.u8()?, p.u8()?)))()
            .ok_or(Syntax::SubstructureLength)?;
    let spi = p
        .take(usize::from(spi_size))
        .ok_or(Syntax::SubstructureLength)?;
    Ok((
        last,
        Proposal {
            num,
            protocol,
            spi,
            transform_count,
            transforms: p.rest(),
        },
    ))
}

fn validate_transforms(bytes: &[u8], count: u8) -> Result<(), Syntax> {
    let mut r = Reader::new(bytes);
    let mut seen: usize = 0;
    while !r.is_empty() {
        let (last, t) = read_transform(&mut r)?;
        check_last(last, MORE_TRANSFORMS, r.is_empty())?;
        let mut a = Reader::new(t.attributes);
        while !a.is_empty() {
            read_attribute(&mut a)?;
        }
        seen += 1;
    }
    if seen != usize::from(count) {
        return Err(Syntax::TransformCount);
    }
    Ok(())
}

fn read_transform<'a>(r: &mut Reader<'a>) -> Result<(u8, Transform<'a>), Syntax> {
    let last = r.u8().ok_or(Syntax::SubstructureLength)?;
    r.u8().ok_or(Syntax::SubstructureLength)?;
    let len = usize::from(r.u16().ok_or(Syntax::SubstructureLength)?);
    let body = len
        .checked_sub(4)
        .filter(|_| len >= TRANSFORM_HEADER)
        .and_then(|n| r.take(n))
        .ok_or(Syntax::SubstructureLength)?;
    let mut t = Reader::new(body);
    let transform_type = TransformType(t.u8().ok_or(Syntax::SubstructureLength)?);
    t.u8().ok_or(Syntax::SubstructureLength)?;
    let id = t.u16().ok_or(Syntax::SubstructureLength)?;
    Ok((
        last,
        Transform {
            transform_type,
            id,
            attributes: t.rest(),
        },
    ))
}

fn read_attribute<'a>(r: &mut Reader<'a>) -> Result<Attribute<'a>, Syntax> {
    let word = r.u16().ok_or(Syntax::Attribute)?;
    let attr_type = word & !AF_TV;
    let value = r.u16().ok_or(Syntax::Attribute)?;
    if word & AF_TV != 0 {
        return Ok(Attribute::Tv { attr_type, value });
    }
    if attr_type == ATTR_KEY_LENGTH {
        return Err(Syntax::Attribute);
    }
    let value = r.take(usize::from(value)).ok_or(Syntax::Attribute)?;
    Ok(Attribute::Tlv { attr_type, value })
}

/// Writes proposals as an SA payload body, last-substructure fields and lengths included.
pub(crate) fn encode_proposals(
    proposals: &[ProposalSpec<'_>],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for (i, p) in proposals.iter().enumerate() {
        let start = out.len();
        let last = if i + 1 == proposals.len() {
            0
        } else {
            MORE_PROPOSALS
        };
        out.extend_from_slice(&[last, 0, 0, 0, p.num, p.protocol.0]);
        out.push(len8(p.spi.len())?);
        out.push(len8(p.transforms.len())?);
        out.extend_from_slice(p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let t_start = out.len();
            let last = if j + 1 == p.transforms.len() {
                0
            } else {
                MORE_TRANSFORMS
            };
            out.extend_from_slice(&[last, 0, 0, 0, t.transform_type.0, 0]);
            out.extend_from_slice(&t.id.to_be_bytes());
            for a in &t.attributes {
                encode_attribute(a, out)?;
            }
            patch_len(out, t_start)?;
        }
        patch_len(out, start)?;
    }
    Ok(())
}

fn encode_attribute(a: &Attribute<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match *a {
        Attribute::Tv { attr_type, value } => {
            out.extend_from_slice(&((attr_type & !AF_TV) | AF_TV).to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        Attribute::Tlv { attr_type, value } => {
            out.extend_from_slice(&(attr_type & !AF_TV).to_be_bytes());
            out.extend_from_slice(&len16(value.len())?.to_be_bytes());
            out.extend_from_slice(value);
        }
    }
    Ok(())
}

/// Writes the length of the substructure that starts at `start` into its octets 2..4.
fn patch_len(out: &mut [u8], start: usize) -> Result<(), EncodeError> {
    let len = len16(out.len() - start)?;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::types::{transform_id, DhGroup};
    use super::*;

    /// The SA payload body of the captured IKE_SA_INIT request: one IKE proposal,
    /// AES_GCM_16-256 / PRF_HMAC_SHA2_256 / ECP_256.
    const CAPTURED: [u8; 36] = [
        0x00, 0x00, 0x00, 0x24, 0x01, 0x01, 0x00,
        0x03, // proposal 1, IKE, no SPI, 3 transforms
        0x03, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x14, 0x80, 0x0e, 0x01,
        0x00, // ENCR 20, 256
        0x03, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x05, // PRF 5
        0x00, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x13, // DH 19
    ];

    fn reencode(sa: &Sa<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        sa.encode_body(&mut out).unwrap();
        out
    }

    #[test]
    fn parses_the_captured_proposal() {
        let sa = Sa::parse(&CAPTURED).unwrap();
        let ps: Vec<_> = sa.proposals().collect();
        assert_eq!(ps.len(), 1);
        let p = ps[0];
        assert_eq!((p.num, p.protocol, p.spi), (1, ProtocolId::IKE, &[][..]));
        assert_eq!(p.transform_count(), 3);
        let encr = p.transform(TransformType::ENCR).unwrap();
        assert_eq!(encr.id, transform_id::ENCR_AES_GCM_16);
        assert_eq!(encr.key_length(), Some(256));
        assert!(!encr.has_unknown_attributes());
        assert_eq!(
            p.transform(TransformType::PRF).unwrap().id,
            transform_id::PRF_HMAC_SHA2_256
        );
        assert_eq!(
            DhGroup(p.transform(TransformType::DH).unwrap().id),
            DhGroup::ECP_256
        );
        assert_eq!(p.transform(TransformType::INTEG), None);
        assert_eq!(reencode(&sa), CAPTURED);
    }

    fn two_esp_proposals() -> Vec<u8> {
        let t = |ty, id| TransformSpec::new(ty, id);
        let specs = [
            ProposalSpec {
                num: 1,
                protocol: ProtocolId::ESP,
                spi: &[0xc1, 0, 0, 1],
                transforms: vec![
                    TransformSpec::with_key_length(
                        TransformType::ENCR,
                        transform_id::ENCR_AES_GCM_16,
                        128,
                    ),
                    t(TransformType::ESN, transform_id::ESN_NO),
                ],
            },
            ProposalSpec {
                num: 2,
                protocol: ProtocolId::ESP,
                spi: &[0xc1, 0, 0, 1],
                transforms: vec![TransformSpec {
                    transform_type: TransformType::ENCR,
                    id: transform_id::ENCR_AES_CBC,
                    attributes: vec![
                        Attribute::key_length(256),
                        Attribute::Tlv {
                            attr_type: 99,
                            value: b"x",
                        },
                    ],
                }],
            },
        ];
        let mut out = Vec::new();
        encode_proposals(&specs, &mut out).unwrap();
        let sa = Sa::parse(&out).unwrap();
        let back: Vec<_> = sa.proposals().map(|p| p.to_spec()).collect();
        assert_eq!(back, specs);
        assert!(sa
            .proposals()
            .nth(1)
            .unwrap()
            .transforms()
            .next()
            .unwrap()
            .has_unknown_attributes());
        out
    }

    #[test]
    fn builds_and_reparses_several_proposals() {
        let bytes = two_esp_proposals();
        assert_eq!(bytes[0], MORE_PROPOSALS);
        assert_eq!(bytes[12], MORE_TRANSFORMS);
    }

    /// [RFC 7296 § 3.3.1]: last-substructure 0 on the last proposal, 2 on the others.
    #[test]
    fn rfc7296_3_3_1_rejects_wrong_last_substructure_fields() {
        let mut b = two_esp_proposals();
        b[0] = 0;
        assert_eq!(Sa::parse(&b), Err(Syntax::LastSubstructure));
        let mut b = CAPTURED;
        b[0] = 2;
        assert_eq!(Sa::parse(&b), Err(Syntax::LastSubstructure));
        let mut b = CAPTURED;
        b[28] = 3;
        assert_eq!(Sa::parse(&b), Err(Syntax::LastSubstructure));
        let mut b = CAPTURED;
        b[8] = 0;
        assert_eq!(Sa::parse(&b), Err(Syntax::LastSubstructure));
    }

    /// [RFC 7296 § 3.3.1]: proposals are numbered 1, 2, ... ; an answer keeps the number.
    #[test]
    fn rfc7296_3_3_1_checks_proposal_numbers() {
        let mut b = two_esp_proposals();
        let second = usize::from(u16::from_be_bytes([b[2], b[3]]));
        b[second + 4] = 3;
        assert_eq!(Sa::parse(&b), Err(Syntax::ProposalNumber));
        let mut b = CAPTURED;
        b[4] = 0;
        assert_eq!(Sa::parse(&b), Err(Syntax::ProposalNumber));
        b[4] = 7;
        assert_eq!(Sa::parse(&b).unwrap().proposals().next().unwrap().num, 7);
    }

    #[test]
    fn rejects_counts_and_lengths_that_disagree_with_the_contents() {
        let mut b = CAPTURED;
        b[7] = 2;
        assert_eq!(Sa::parse(&b), Err(Syntax::TransformCount));
        b[7] = 4;
        assert_eq!(Sa::parse(&b), Err(Syntax::TransformCount));
        let mut b = CAPTURED;
        b[3] = 0x25;
        assert_eq!(Sa::parse(&b), Err(Syntax::SubstructureLength));
        let mut b = CAPTURED;
        b[3] = 0x07;
        assert_eq!(Sa::parse(&b), Err(Syntax::SubstructureLength));
        let mut b = CAPTURED;
        b[11] = 0x0a; // ENCR transform length cuts its attribute in half
        assert!(Sa::parse(&b).is_err());
        let mut b = CAPTURED;
        b[11] = 0x07;
        assert_eq!(Sa::parse(&b), Err(Syntax::SubstructureLength));
        assert_eq!(Sa::parse(&[]), Err(Syntax::NoProposal));
        assert_eq!(Sa::parse(&CAPTURED[..35]), Err(Syntax::SubstructureLength));
    }

    /// [RFC 7296 § 3.3.5]: Key Length is a TV attribute.
    #[test]
    fn rfc7296_3_3_5_key_length_must_be_tv() {
        let mut b = CAPTURED;
        b[16] = 0x00; // AF cleared: TLV with length 0x0100, far beyond the transform
        assert_eq!(Sa::parse(&b), Err(Syntax::Attribute));
        let tlv_key_length = [
            0x00, 0x00, 0x00, 0x14, 0x01, 0x01, 0x00, 0x01, // proposal
            0x00, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x14, 0x00, 0x0e, 0x00, 0x00, // TLV 14
        ];
        assert_eq!(Sa::parse(&tlv_key_length), Err(Syntax::Attribute));
    }

    /// [RFC 7296 § 3.3.1]: SPI sizes by protocol.
    #[test]
    fn rfc7296_3_3_1_checks_spi_sizes() {
        let with_spi = |protocol: ProtocolId, spi: &[u8]| {
            let mut out = Vec::new();
            let spec = ProposalSpec {
                num: 1,
                protocol,
                spi,
                transforms: vec![],
            };
            encode_proposals(&[spec], &mut out).unwrap();
            Sa::parse(&out).map(|_| ())
        };
        assert_eq!(with_spi(ProtocolId::IKE, &[]), Ok(()));
        assert_eq!(with_spi(ProtocolId::IKE, &[1; 8]), Ok(()));
        assert_eq!(with_spi(ProtocolId::IKE, &[1; 4]), Err(Syntax::SpiSize));
        assert_eq!(with_spi(ProtocolId::ESP, &[1; 4]), Ok(()));
        assert_eq!(with_spi(ProtocolId::ESP, &[]), Err(Syntax::SpiSize));
        assert_eq!(with_spi(ProtocolId::AH, &[1; 8]), Err(Syntax::SpiSize));
        assert_eq!(with_spi(ProtocolId(9), &[1; 3]), Ok(()));
    }

    #[test]
    fn reserved_octets_are_ignored_and_sent_as_zero() {
        let mut b = CAPTURED;
        b[1] = 0xff;
        b[9] = 0xff;
        b[13] = 0xff;
        let sa = Sa::parse(&b).unwrap();
        assert_eq!(reencode(&sa), CAPTURED);
    }
}
