//! Negotiation and authentication that go wrong: INVALID_KE_PAYLOAD and the retry,
//! NO_PROPOSAL_CHOSEN, a wrong pre-shared key, identities that do not match, traffic
//! selectors narrowed and refused, and the certificate seam.

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::crypto::{DhGroup, EncrAlg, Prf, PrfAlg};
use crate::ids::PeerId;
use crate::tunnel::ipsec::ike::message::{AuthMethod, NotifyType};

use super::super::{
    CertAuthError, CertificateAuth, Identity, IkeConfig, IkeEvent, PeerAuth, Refusal,
};
use super::handshake::{check_child_pair, child_ups};
use super::pair::*;

pub(crate) fn refusals(events: &[IkeEvent]) -> Vec<(Option<NotifyType>, Refusal)> {
    events
        .iter()
        .filter_map(|e| match e {
            IkeEvent::Refused { notify, reason, .. } => Some((*notify, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_the_wanted_group() {
    let (mut a, mut b) = configs();
    a.peers[0].ike_proposals[0].dh = vec![DhGroup::Curve25519, DhGroup::Ecp384];
    b.peers[0].ike_proposals[0].dh = vec![DhGroup::Ecp384];
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::INVALID_KE_PAYLOAD), Refusal::InvalidKe)]
    );
    assert_eq!(
        refusals(&p.a_events),
        [(Some(NotifyType::INVALID_KE_PAYLOAD), Refusal::PeerNotify)]
    );
    // SA_INIT, INVALID_KE, SA_INIT again, its response, IKE_AUTH pair; the responder kept
    // no state for the first request.
    assert_eq!(p.log.len(), 6);
    assert_eq!(p.b.ike_sa_count(), 1);
    check_child_pair(child_ups(&p.a_events)[0], child_ups(&p.b_events)[0]);
}

#[test]
fn no_proposal_chosen_and_a_retry_later() {
    let (mut a, mut b) = configs();
    b.peers[0].ike_proposals[0].encr = vec![EncrAlg::AesCbc256];
    b.peers[0].ike_proposals[0].integ = vec![crate::crypto::IntegAlg::HmacSha256_128];
    a.peers[0].ike_proposals[0].prf = vec![PrfAlg::HmacSha512];
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(!p.a.is_up(PEER_OF_A) && !p.b.is_up(PEER_OF_B));
    assert_eq!(
        refusals(&p.b_events),
        [(
            Some(NotifyType::NO_PROPOSAL_CHOSEN),
            Refusal::NoProposalChosen
        )]
    );
    assert_eq!(
        refusals(&p.a_events),
        [(Some(NotifyType::NO_PROPOSAL_CHOSEN), Refusal::PeerNotify)]
    );
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (0, 0));
    // `dpd_action: restart`: tried again after the reconnect delay.
    p.advance(Duration::from_secs(9));
    assert_eq!(p.log.len(), 2);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.log.len(), 4);
}

/// A refused IKE_SA_INIT names the peer whose `endpoint` is the source address, so that a
/// facility offering only weak algorithms is logged by name (the pipeline logs refusals of
/// unknown senders at debug level only; netns-tests/ipsec.sh checks it against strongSwan).
/// A sender that matches no endpoint stays unknown until IKE_AUTH carries its identity.
#[test]
fn a_refused_ike_sa_init_names_the_peer_at_its_endpoint() {
    let refused_peers = |p: &Pair| -> Vec<Option<PeerId>> {
        p.b_events
            .iter()
            .filter_map(|e| match e {
                IkeEvent::Refused { peer, .. } => Some(*peer),
                _ => None,
            })
            .collect()
    };
    let weak = |b: &mut IkeConfig| {
        b.peers[0].ike_proposals[0].encr = vec![EncrAlg::AesCbc256];
        b.peers[0].ike_proposals[0].integ = vec![crate::crypto::IntegAlg::HmacSha256_128];
    };
    let (a, mut b) = configs();
    weak(&mut b);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(refused_peers(&p), [Some(PEER_OF_B)]);

    let (a, mut b) = configs();
    weak(&mut b);
    b.peers[0].endpoint = None;
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(refused_peers(&p), [None]);
    assert_eq!(
        refusals(&p.b_events),
        [(
            Some(NotifyType::NO_PROPOSAL_CHOSEN),
            Refusal::NoProposalChosen
        )]
    );
}

#[test]
fn a_wrong_psk_fails_authentication_on_both_sides() {
    let (a, mut b) = configs();
    b.peers[0].auth = PeerAuth::Psk(Zeroizing::new(b"wrong".to_vec()));
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(!p.a.is_up(PEER_OF_A) && !p.b.is_up(PEER_OF_B));
    assert_eq!(
        refusals(&p.b_events),
        [(
            Some(NotifyType::AUTHENTICATION_FAILED),
            Refusal::AuthenticationFailed
        )]
    );
    assert_eq!(
        refusals(&p.a_events),
        [(Some(NotifyType::AUTHENTICATION_FAILED), Refusal::PeerNotify)]
    );
    assert_eq!(
        (p.a.ike_sa_count(), p.b.ike_sa_count()),
        (0, 0),
        "both forget the IKE SA"
    );
    assert!(child_ups(&p.a_events).is_empty() && child_ups(&p.b_events).is_empty());
}

#[test]
fn identities_must_match_the_configuration() {
    // The responder does not know the initiator's IDi.
    let (a, mut b) = configs();
    b.peers[0].remote_id = Identity::fqdn("someone-else.lab");
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::AUTHENTICATION_FAILED), Refusal::IdMismatch)]
    );
    assert_eq!(
        refusals(&p.a_events),
        [(Some(NotifyType::AUTHENTICATION_FAILED), Refusal::PeerNotify)]
    );
    // The initiator asks for an IDr the responder is not.
    let (mut a, b) = configs();
    a.peers[0].remote_id = Identity::fqdn("gw-c.lab");
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::AUTHENTICATION_FAILED), Refusal::IdMismatch)]
    );
    assert!(!p.a.is_up(PEER_OF_A));
}

#[test]
fn the_responder_narrows_traffic_selectors() {
    let (a, mut b) = configs();
    b.peers[0].remote_ts = vec![net("10.1.5.0/24"), net("172.16.0.0/12")];
    let mut p = Pair::new(a, b);
    p.connect();
    let (ca, cb) = (child_ups(&p.a_events), child_ups(&p.b_events));
    check_child_pair(ca[0], cb[0]);
    assert_eq!(
        ca[0].local_ts,
        [super::super::ts::from_prefix(net("10.1.5.0/24"))]
    );
    assert_eq!(
        ca[0].remote_ts,
        [super::super::ts::from_prefix(net("10.2.0.0/16"))]
    );
}

#[test]
fn ts_unacceptable_leaves_the_ike_sa_up_without_a_child() {
    let (a, mut b) = configs();
    b.peers[0].remote_ts = vec![net("10.9.0.0/16")];
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B));
    assert!(child_ups(&p.a_events).is_empty() && child_ups(&p.b_events).is_empty());
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::TS_UNACCEPTABLE), Refusal::TsUnacceptable)]
    );
    assert_eq!(
        refusals(&p.a_events),
        [(Some(NotifyType::TS_UNACCEPTABLE), Refusal::PeerNotify)]
    );
    assert!(p.a.child_spis(PEER_OF_A).is_empty());
}

/// A stand-in for the PKI: "certificates" are names, "signatures" HMACs under a key per name.
struct FakePki {
    me: &'static str,
    /// Whom we trust, with their keys.
    trusted: Vec<(&'static str, &'static [u8])>,
    key: &'static [u8],
}

impl CertificateAuth for FakePki {
    fn certificate_request(&self) -> Option<Vec<u8>> {
        Some(vec![0xca; 20])
    }
    fn certificates(&self) -> Vec<Vec<u8>> {
        vec![self.me.as_bytes().to_vec()]
    }
    fn sign(&self, octets: &[u8]) -> Result<(AuthMethod, Vec<u8>), CertAuthError> {
        Ok((
            AuthMethod::RSA_SIGNATURE,
            Prf::new(PrfAlg::HmacSha256, self.key)
                .compute(&[octets])
                .as_ref()
                .to_vec(),
        ))
    }
    fn verify(
        &self,
        id: &Identity,
        certs: &[&[u8]],
        method: AuthMethod,
        auth: &[u8],
        octets: &[u8],
    ) -> Result<(), CertAuthError> {
        let cert = certs.first().ok_or(CertAuthError::NoCertificate)?;
        let (name, key) = self
            .trusted
            .iter()
            .find(|(n, _)| n.as_bytes() == *cert)
            .ok_or(CertAuthError::Untrusted)?;
        if id.data != name.as_bytes() {
            return Err(CertAuthError::IdMismatch);
        }
        let want = Prf::new(PrfAlg::HmacSha256, key).compute(&[octets]);
        (method == AuthMethod::RSA_SIGNATURE && want.as_ref() == auth)
            .then_some(())
            .ok_or(CertAuthError::Signature)
    }
}

fn pki(
    me: &'static str,
    key: &'static [u8],
    trusted: Vec<(&'static str, &'static [u8])>,
) -> PeerAuth {
    PeerAuth::Certificate(Arc::new(FakePki { me, trusted, key }))
}

#[test]
fn certificate_authentication_through_the_seam() {
    let (mut a, mut b) = configs();
    a.peers[0].auth = pki("gw-a.lab", b"ka", vec![("gw-b.lab", b"kb")]);
    b.peers[0].auth = pki("gw-b.lab", b"kb", vec![("gw-a.lab", b"ka")]);
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(
        p.a.is_up(PEER_OF_A) && p.b.is_up(PEER_OF_B),
        "{:?} {:?}",
        p.a_events,
        p.b_events
    );
    check_child_pair(child_ups(&p.a_events)[0], child_ups(&p.b_events)[0]);

    // The responder's signature does not verify at the initiator: it says so in an
    // INFORMATIONAL and both forget the IKE SA.
    let (mut a, mut b) = configs();
    a.peers[0].auth = pki("gw-a.lab", b"ka", vec![("gw-b.lab", b"not kb")]);
    b.peers[0].auth = pki("gw-b.lab", b"kb", vec![("gw-a.lab", b"ka")]);
    let mut p = Pair::new(a, b);
    p.connect();
    // The answer to the INFORMATIONAL finds the IKE SA gone.
    assert_eq!(
        refusals(&p.a_events),
        [
            (
                Some(NotifyType::AUTHENTICATION_FAILED),
                Refusal::Certificate(CertAuthError::Signature)
            ),
            (None, Refusal::UnknownSpi)
        ]
    );
    assert_eq!(
        refusals(&p.b_events),
        [(Some(NotifyType::AUTHENTICATION_FAILED), Refusal::PeerNotify)]
    );
    assert!(
        matches!(
            p.b_events.last(),
            Some(IkeEvent::PeerDown {
                peer: PEER_OF_B,
                ..
            })
        ),
        "{:?}",
        p.b_events
    );
    assert_eq!((p.a.ike_sa_count(), p.b.ike_sa_count()), (0, 0));
}
