//! SA payload negotiation [RFC 7296 § 2.7, § 3.3]: our offers from the configured proposals,
//! the responder's choice among the initiator's proposals, and the initiator's check that the
//! answer is one of its own.
//!
//! The responder takes the first of the initiator's proposals that any configured proposal
//! accepts and answers with exactly that proposal (its number kept), reduced to one transform
//! of each type [RFC 7296 § 3.3.6]. A proposal with a transform type we do not know, or
//! missing a mandatory one, is unacceptable; transforms we do not know within known types, or
//! carrying unknown attributes, are skipped.

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::tunnel::ipsec::ike::keys::{ChildSuite, IkeSuite};
use crate::tunnel::ipsec::ike::message::{
    transform_id, Proposal, ProposalSpec, ProtocolId, Sa, Transform, TransformSpec, TransformType,
};

use super::config::{EspProposal, IkeProposal};

/// The transforms of an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeChoice {
    pub suite: IkeSuite,
    pub dh: DhGroup,
}

/// The transforms of a CHILD SA. `dh` is the PFS group of a CREATE_CHILD_SA exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspChoice {
    pub suite: ChildSuite,
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

/// A configured proposal split so that AEAD and other ciphers are never in one proposal
/// [RFC 5282 § 8].
fn split_aead(encr: &[EncrAlg]) -> [Vec<EncrAlg>; 2] {
    let aead = encr.iter().copied().filter(|e| e.is_aead()).collect();
    let plain = encr.iter().copied().filter(|e| !e.is_aead()).collect();
    [aead, plain]
}

fn encr_spec(e: EncrAlg) -> TransformSpec<'static> {
    TransformSpec::with_key_length(TransformType::ENCR, e.transform_id(), e.key_bits())
}

fn t(ty: TransformType, id: u16) -> TransformSpec<'static> {
    TransformSpec::new(ty, id)
}

/// Our IKE proposals, numbered from 1, with `spi` (empty in IKE_SA_INIT, the new SPI when
/// rekeying).
pub(super) fn ike_offer<'a>(config: &[IkeProposal], spi: &'a [u8]) -> Vec<ProposalSpec<'a>> {
    let mut out = Vec::new();
    for p in config {
        for encr in split_aead(&p.encr) {
            let Some(mut transforms) = cipher_transforms(&encr, &p.integ) else {
                continue;
            };
            transforms.extend(
                p.prf
                    .iter()
                    .map(|f| t(TransformType::PRF, f.transform_id())),
            );
            transforms.extend(p.dh.iter().map(|g| t(TransformType::DH, g.transform_id())));
            out.push(transforms);
        }
    }
    number(out, ProtocolId::IKE, spi)
}

/// Our ESP proposals, numbered from 1, with our inbound SPI. `with_dh`: include the PFS
/// groups (CREATE_CHILD_SA); the first CHILD SA of IKE_AUTH has none, as strongSwan sends it.
pub(super) fn esp_offer<'a>(
    config: &[EspProposal],
    spi: &'a [u8],
    with_dh: bool,
) -> Vec<ProposalSpec<'a>> {
    let mut out = Vec::new();
    for p in config {
        for encr in split_aead(&p.encr) {
            let Some(mut transforms) = cipher_transforms(&encr, &p.integ) else {
                continue;
            };
            if with_dh {
                transforms.extend(p.dh.iter().map(|g| t(TransformType::DH, g.transform_id())));
            }
            transforms.push(t(TransformType::ESN, esn_id(p.esn)));
            out.push(transforms);
        }
    }
    number(out, ProtocolId::ESP, spi)
}

/// The encryption transforms of one AEAD-or-not group of ciphers, with the integrity
/// transforms a non-AEAD group needs; `None` when the group is empty or lacks integrity.
fn cipher_transforms(encr: &[EncrAlg], integ: &[IntegAlg]) -> Option<Vec<TransformSpec<'static>>> {
    let aead = encr.first()?.is_aead();
    if !aead && integ.is_empty() {
        return None;
    }
    let mut transforms: Vec<_> = encr.iter().map(|&e| encr_spec(e)).collect();
    if !aead {
        transforms.extend(
            integ
                .iter()
                .map(|i| t(TransformType::INTEG, i.transform_id())),
        );
    }
    Some(transforms)
}

fn number<'a>(
    proposals: Vec<Vec<TransformSpec<'static>>>,
    protocol: ProtocolId,
    spi: &'a [u8],
) -> Vec<ProposalSpec<'a>> {
    proposals
        .into_iter()
        .zip(1u8..)
        .map(|(transforms, num)| ProposalSpec {
            num,
            protocol,
            spi,
            transforms,
        })
        .collect()
}

fn esn_id(esn: bool) -> u16 {
    if esn {
        transform_id::ESN_YES
    } else {
        transform_id::ESN_NO
    }
}

/// The answer to an IKE offer: proposal `num` with the chosen transforms and our `spi`.
pub(super) fn ike_answer(num: u8, c: IkeChoice, spi: &[u8]) -> ProposalSpec<'_> {
    let mut transforms = vec![encr_spec(c.suite.encr)];
    if let Some(i) = c.suite.integ {
        transforms.push(t(TransformType::INTEG, i.transform_id()));
    }
    transforms.push(t(TransformType::PRF, c.suite.prf.transform_id()));
    transforms.push(t(TransformType::DH, c.dh.transform_id()));
    ProposalSpec {
        num,
        protocol: ProtocolId::IKE,
        spi,
        transforms,
    }
}

/// The answer to an ESP offer.
pub(super) fn esp_answer(num: u8, c: EspChoice, spi: &[u8]) -> ProposalSpec<'_> {
    let mut transforms = vec![encr_spec(c.suite.encr)];
    if let Some(i) = c.suite.integ {
        transforms.push(t(TransformType::INTEG, i.transform_id()));
    }
    if let Some(g) = c.dh {
        transforms.push(t(TransformType::DH, g.transform_id()));
    }
    transforms.push(t(TransformType::ESN, esn_id(c.esn)));
    ProposalSpec {
        num,
        protocol: ProtocolId::ESP,
        spi,
        transforms,
    }
}

/// The transforms of one proposal, by type; `None` if it has a type not allowed for the
/// protocol (unacceptable as a whole).
struct ByType<'a> {
    encr: Vec<Transform<'a>>,
    integ: Vec<Transform<'a>>,
    prf: Vec<Transform<'a>>,
    dh: Vec<Transform<'a>>,
    esn: Vec<Transform<'a>>,
}

fn by_type<'a>(p: &Proposal<'a>, allowed: &[TransformType]) -> Option<ByType<'a>> {
    let mut b = ByType {
        encr: Vec::new(),
        integ: Vec::new(),
        prf: Vec::new(),
        dh: Vec::new(),
        esn: Vec::new(),
    };
    for tr in p.transforms() {
        if !allowed.contains(&tr.transform_type) {
            return None;
        }
        let list = match tr.transform_type {
            TransformType::ENCR => &mut b.encr,
            TransformType::INTEG => &mut b.integ,
            TransformType::PRF => &mut b.prf,
            TransformType::DH => &mut b.dh,
            _ => &mut b.esn,
        };
        list.push(tr);
    }
    Some(b)
}

fn encr_of(tr: &Transform<'_>) -> Option<EncrAlg> {
    if tr
        .attributes()
        .any(|a| a.attr_type() != crate::tunnel::ipsec::ike::message::ATTR_KEY_LENGTH)
    {
        return None;
    }
    EncrAlg::from_transform(tr.id, tr.key_length())
}

fn plain<T>(tr: &Transform<'_>, f: impl Fn(u16) -> Option<T>) -> Option<T> {
    if tr.has_unknown_attributes() || tr.key_length().is_some() {
        return None;
    }
    f(tr.id)
}

/// The integrity transform to pair with `encr`: `Some(None)` for an AEAD cipher (the
/// proposal has no INTEG, or only NONE), `Some(Some(_))` for the first acceptable one.
fn integ_for(
    encr: EncrAlg,
    offered: &[Transform<'_>],
    ours: &[IntegAlg],
) -> Option<Option<IntegAlg>> {
    if encr.is_aead() {
        let none_only = offered.iter().all(|t| t.id == transform_id::AUTH_NONE);
        return none_only.then_some(None);
    }
    offered
        .iter()
        .filter_map(|t| plain(t, IntegAlg::from_transform))
        .find(|i| ours.contains(i))
        .map(Some)
}

/// The group to use among `offered` that `ours` allows: the one of the KE payload if it is
/// among them (no INVALID_KE_PAYLOAD round trip), else the first.
fn dh_for(offered: &[Transform<'_>], ours: &[DhGroup], ke: Option<DhGroup>) -> Option<DhGroup> {
    let ok: Vec<DhGroup> = offered
        .iter()
        .filter_map(|t| plain(t, DhGroup::from_transform))
        .filter(|g| ours.contains(g))
        .collect();
    match ke {
        Some(k) if ok.contains(&k) => Some(k),
        _ => ok.first().copied(),
    }
}

fn accept_ike(p: &Proposal<'_>, c: &IkeProposal, ke: Option<DhGroup>) -> Option<IkeChoice> {
    use TransformType as T;
    if p.protocol != ProtocolId::IKE {
        return None;
    }
    let b = by_type(p, &[T::ENCR, T::PRF, T::INTEG, T::DH])?;
    let prf = b
        .prf
        .iter()
        .filter_map(|t| plain(t, PrfAlg::from_transform))
        .find(|f| c.prf.contains(f))?;
    let dh = dh_for(&b.dh, &c.dh, ke)?;
    b.encr
        .iter()
        .filter_map(encr_of)
        .filter(|e| c.encr.contains(e))
        .find_map(|encr| {
            let integ = integ_for(encr, &b.integ, &c.integ)?;
            Some(IkeChoice {
                suite: IkeSuite { encr, integ, prf },
                dh,
            })
        })
}

fn accept_esp(
    p: &Proposal<'_>,
    c: &EspProposal,
    with_dh: bool,
    ke: Option<DhGroup>,
) -> Option<EspChoice> {
    use TransformType as T;
    if p.protocol != ProtocolId::ESP || p.spi.len() != 4 {
        return None;
    }
    let b = by_type(p, &[T::ENCR, T::INTEG, T::DH, T::ESN])?;
    let esn_wanted = esn_id(c.esn);
    if !b.esn.iter().any(|t| t.id == esn_wanted) {
        return None;
    }
    let real_groups: Vec<&Transform<'_>> = b.dh.iter().filter(|t| t.id != 0).collect();
    let dh = if !with_dh {
        None
    } else if c.dh.is_empty() {
        // No PFS configured: the peer must allow none.
        if !real_groups.is_empty() && real_groups.len() == b.dh.len() {
            return None;
        }
        None
    } else {
        Some(dh_for(&b.dh, &c.dh, ke)?)
    };
    b.encr
        .iter()
        .filter_map(encr_of)
        .filter(|e| c.encr.contains(e))
        .find_map(|encr| {
            let integ = integ_for(encr, &b.integ, &c.integ)?;
            Some(EspChoice {
                suite: ChildSuite { encr, integ },
                dh,
                esn: c.esn,
            })
        })
}

/// Responder: the first of the initiator's IKE proposals one of `configs` accepts, with the
/// proposal number to echo. `ke`: the group of the KE payload, preferred where it is allowed.
pub(super) fn select_ike<'c>(
    offer: &Sa<'_>,
    configs: impl Iterator<Item = &'c [IkeProposal]> + Clone,
    ke: Option<DhGroup>,
) -> Option<(u8, IkeChoice, usize)> {
    offer.proposals().find_map(|p| {
        configs.clone().enumerate().find_map(|(i, cfg)| {
            cfg.iter()
                .find_map(|c| accept_ike(&p, c, ke))
                .map(|choice| (p.num, choice, i))
        })
    })
}

/// Responder: the first of the initiator's ESP proposals `config` accepts, with its number and
/// the initiator's SPI.
pub(super) fn select_esp(
    offer: &Sa<'_>,
    config: &[EspProposal],
    with_dh: bool,
    ke: Option<DhGroup>,
) -> Option<(u8, u32, EspChoice)> {
    offer.proposals().find_map(|p| {
        let spi = u32::from_be_bytes(p.spi.try_into().ok()?);
        config
            .iter()
            .find_map(|c| accept_esp(&p, c, with_dh, ke))
            .map(|choice| (p.num, spi, choice))
    })
}

/// Whether an answer holds one proposal with exactly one transform of each type it has.
fn single<'a>(answer: &Sa<'a>) -> Option<Proposal<'a>> {
    let mut it = answer.proposals();
    let p = it.next()?;
    if it.next().is_some() {
        return None;
    }
    let mut seen = Vec::new();
    for tr in p.transforms() {
        if seen.contains(&tr.transform_type) {
            return None;
        }
        seen.push(tr.transform_type);
    }
    Some(p)
}

/// Initiator: the responder's IKE answer, if it is one proposal that our offer allows. The
/// SPI of the answer (the responder's new SPI when rekeying) is the caller's to read.
pub(super) fn check_ike_answer(answer: &Sa<'_>, config: &[IkeProposal]) -> Option<IkeChoice> {
    let p = single(answer)?;
    config.iter().find_map(|c| accept_ike(&p, c, None))
}

/// Initiator: the responder's ESP answer and its inbound SPI (our outbound one).
pub(super) fn check_esp_answer(
    answer: &Sa<'_>,
    config: &[EspProposal],
    with_dh: bool,
) -> Option<(u32, EspChoice)> {
    let p = single(answer)?;
    let spi = u32::from_be_bytes(p.spi.try_into().ok()?);
    config
        .iter()
        .find_map(|c| accept_esp(&p, c, with_dh, None))
        .map(|choice| (spi, choice))
}

/// Whether a configured peer allows the IKE SA's transforms (a responder chose them before
/// IKE_AUTH named the peer).
pub(super) fn allows_ike(config: &[IkeProposal], c: &IkeChoice) -> bool {
    config.iter().any(|p| {
        p.encr.contains(&c.suite.encr)
            && p.prf.contains(&c.suite.prf)
            && p.dh.contains(&c.dh)
            && c.suite.integ.is_none_or(|i| p.integ.contains(&i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::ipsec::ike::message::PayloadChain;
    use crate::tunnel::ipsec::ike::message::{parse_inner, Payload, PayloadType};

    fn sa_bytes(specs: &[ProposalSpec<'_>]) -> Vec<u8> {
        let mut c = PayloadChain::new();
        c.sa(specs);
        c.bytes().unwrap().to_vec()
    }

    fn with_sa<R>(bytes: &[u8], f: impl FnOnce(&Sa<'_>) -> R) -> R {
        let p = parse_inner(PayloadType::SA, bytes).unwrap();
        let Payload::Sa(sa) = p[0] else { panic!() };
        f(&sa)
    }

    fn ike(encr: &[EncrAlg], integ: &[IntegAlg], dh: &[DhGroup]) -> IkeProposal {
        IkeProposal {
            encr: encr.to_vec(),
            integ: integ.to_vec(),
            prf: vec![PrfAlg::HmacSha256, PrfAlg::HmacSha384],
            dh: dh.to_vec(),
        }
    }

    #[test]
    fn mixed_proposals_are_split_and_the_first_acceptable_is_chosen() {
        let ours = [ike(
            &[EncrAlg::AesGcm16_256, EncrAlg::AesCbc128],
            &[IntegAlg::HmacSha256_128],
            &[DhGroup::Ecp256, DhGroup::Curve25519],
        )];
        let offer = ike_offer(&ours, &[]);
        assert_eq!(offer.len(), 2);
        assert_eq!((offer[0].num, offer[1].num), (1, 2));
        assert!(offer[0]
            .transforms
            .iter()
            .all(|t| t.transform_type != TransformType::INTEG));
        let bytes = sa_bytes(&offer);
        // The responder accepts only CBC and Curve25519; the KE came with group 19.
        let theirs = [ike(
            &[EncrAlg::AesCbc128],
            &[IntegAlg::HmacSha256_128],
            &[DhGroup::Curve25519],
        )];
        let got = with_sa(&bytes, |sa| {
            select_ike(sa, [&theirs[..]].into_iter(), Some(DhGroup::Ecp256))
        });
        let (num, choice, _) = got.unwrap();
        assert_eq!(num, 2);
        assert_eq!(choice.dh, DhGroup::Curve25519);
        assert_eq!(choice.suite.integ, Some(IntegAlg::HmacSha256_128));
        // The answer is accepted by the initiator.
        let answer = sa_bytes(&[ike_answer(num, choice, &[])]);
        assert_eq!(
            with_sa(&answer, |sa| check_ike_answer(sa, &ours)),
            Some(choice)
        );
        // The KE group is preferred where the proposal allows it.
        let got = with_sa(&bytes, |sa| {
            select_ike(sa, [&ours[..]].into_iter(), Some(DhGroup::Curve25519))
        });
        assert_eq!(got.unwrap().1.dh, DhGroup::Curve25519);
    }

    #[test]
    fn nothing_in_common_is_no_proposal() {
        let ours = [ike(&[EncrAlg::AesGcm16_128], &[], &[DhGroup::Ecp384])];
        let bytes = sa_bytes(&ike_offer(&ours, &[]));
        let theirs = [ike(&[EncrAlg::AesGcm16_256], &[], &[DhGroup::Ecp384])];
        assert_eq!(
            with_sa(&bytes, |sa| select_ike(sa, [&theirs[..]].into_iter(), None)),
            None
        );
    }

    #[test]
    fn answers_with_two_transforms_of_a_type_are_refused() {
        let ours = [ike(
            &[EncrAlg::AesGcm16_128, EncrAlg::AesGcm16_256],
            &[],
            &[DhGroup::Ecp256],
        )];
        let bytes = sa_bytes(&ike_offer(&ours, &[]));
        assert_eq!(with_sa(&bytes, |sa| check_ike_answer(sa, &ours)), None);
    }

    #[test]
    fn esp_esn_and_pfs() {
        let ours = [EspProposal {
            encr: vec![EncrAlg::AesCbc256],
            integ: vec![IntegAlg::HmacSha512_256],
            dh: vec![DhGroup::Ecp384],
            esn: true,
        }];
        let spi = 0x1234_5678u32.to_be_bytes();
        let with = sa_bytes(&esp_offer(&ours, &spi, true));
        let without = sa_bytes(&esp_offer(&ours, &spi, false));
        let (num, peer_spi, c) = with_sa(&with, |sa| select_esp(sa, &ours, true, None)).unwrap();
        assert_eq!(
            (num, peer_spi, c.dh, c.esn),
            (1, 0x1234_5678, Some(DhGroup::Ecp384), true)
        );
        // In IKE_AUTH the groups are ignored on both sides.
        let (_, _, c) = with_sa(&without, |sa| select_esp(sa, &ours, false, None)).unwrap();
        assert_eq!(c.dh, None);
        // PFS configured, but none offered, in CREATE_CHILD_SA: unacceptable.
        assert_eq!(
            with_sa(&without, |sa| select_esp(sa, &ours, true, None)),
            None
        );
        // ESN mismatch.
        let no_esn = [EspProposal {
            esn: false,
            ..ours[0].clone()
        }];
        assert_eq!(
            with_sa(&with, |sa| select_esp(sa, &no_esn, true, None)),
            None
        );
        let answer = sa_bytes(&[esp_answer(num, c, &[0, 0, 1, 0])]);
        assert_eq!(
            with_sa(&answer, |sa| check_esp_answer(sa, &ours, false)).map(|(s, _)| s),
            Some(256)
        );
    }
}
