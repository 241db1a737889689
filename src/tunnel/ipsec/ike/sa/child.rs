//! CHILD SAs as the IKE SA keeps them, their keys [RFC 7296 § 2.17] and the event that hands
//! them to the data path, and the responder's negotiation of one (SA, TSi, TSr), shared by
//! IKE_AUTH and CREATE_CHILD_SA.

use std::time::Instant;

use crate::crypto::DhGroup;
use crate::tunnel::ipsec::ike::keys::ChildKeys;
use crate::tunnel::ipsec::ike::message::{NotifyType, Sa, TrafficSelector, Ts};

use super::config::IkePeerConfig;
use super::create_child::ChildCollision;
use super::ctx::Ctx;
use super::event::{ChildSaParams, ChildSaUp, IkeEvent, Refusal};
use super::ike_sa::IkeSa;
use super::proposal::{select_esp, EspChoice};
use super::ts::{narrow, selectors};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChildState {
    Installed,
    /// A rekey of ours is queued or under way.
    Rekeying,
    /// Replaced by a rekey; its Delete is expected or queued. Removed at the latest at the
    /// instant given.
    Rekeyed(Instant),
    /// We sent its Delete.
    Deleting,
}

#[derive(Debug, Clone)]
pub(super) struct ChildSa {
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub choice: EspChoice,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub rekey_at: Option<Instant>,
    /// The hard lifetime: still here then (its rekeys failed), it is deleted.
    pub expires_at: Option<Instant>,
    pub state: ChildState,
    /// Bytes the data path reported for this SA.
    pub bytes: u64,
    /// The peer's rekey of this SA, answered while ours was in flight.
    pub collision: Option<ChildCollision>,
}

/// What the responder agreed to for a CHILD SA.
#[derive(Debug, Clone)]
pub(super) struct Negotiated {
    pub num: u8,
    pub peer_spi: u32,
    pub choice: EspChoice,
    /// The initiator's side and ours, narrowed.
    pub tsi: Vec<TrafficSelector>,
    pub tsr: Vec<TrafficSelector>,
}

/// Responder: the CHILD SA that SA, TSi and TSr ask for, or the Notify to answer with.
pub(super) fn negotiate(
    cfg: &IkePeerConfig,
    sa: Option<Sa<'_>>,
    tsi: Option<Ts<'_>>,
    tsr: Option<Ts<'_>>,
    with_dh: bool,
    ke: Option<DhGroup>,
) -> Result<Negotiated, (NotifyType, Refusal)> {
    let (Some(sa), Some(tsi), Some(tsr)) = (sa, tsi, tsr) else {
        return Err((NotifyType::INVALID_SYNTAX, Refusal::MissingPayload));
    };
    let (num, peer_spi, choice) = select_esp(&sa, &cfg.esp_proposals, with_dh, ke)
        .ok_or((NotifyType::NO_PROPOSAL_CHOSEN, Refusal::NoProposalChosen))?;
    let tsi = narrow(&selectors(&tsi), &cfg.remote_ts);
    let tsr = narrow(&selectors(&tsr), &cfg.local_ts);
    if tsi.is_empty() || tsr.is_empty() {
        return Err((NotifyType::TS_UNACCEPTABLE, Refusal::TsUnacceptable));
    }
    Ok(Negotiated {
        num,
        peer_spi,
        choice,
        tsi,
        tsr,
    })
}

/// A new CHILD SA's parameters, for [`install`].
pub(super) struct NewChild<'a> {
    /// We sent the request that made it (our nonce is Ni).
    pub exchange_initiator: bool,
    pub choice: EspChoice,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub pfs_shared: Option<&'a [u8]>,
    pub ni: &'a [u8],
    pub nr: &'a [u8],
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub replaces: Option<u32>,
}

/// Derives the keys of a new CHILD SA of `sa`, reports it to the data path and returns it.
pub(super) fn install(
    sa: &IkeSa,
    ctx: &mut Ctx,
    now: Instant,
    c: NewChild<'_>,
) -> Result<ChildSa, Refusal> {
    let (Some(keys), Some(peer_index)) = (sa.keys.as_ref(), sa.peer) else {
        return Err(Refusal::Internal);
    };
    let Some(cfg) = ctx.peer(peer_index) else {
        return Err(Refusal::Internal);
    };
    let peer = cfg.peer;
    let child_rekey = cfg.child_rekey;
    let k = ChildKeys::derive(
        keys.choice.suite.prf,
        &keys.keys.sk_d,
        c.choice.suite,
        c.pfs_shared,
        c.ni,
        c.nr,
    )
    .map_err(|_| Refusal::Internal)?;
    let (mine, theirs) = if c.exchange_initiator {
        ((k.encr_i, k.integ_i), (k.encr_r, k.integ_r))
    } else {
        ((k.encr_r, k.integ_r), (k.encr_i, k.integ_i))
    };
    let params = |spi, (encr_key, integ_key)| ChildSaParams {
        spi,
        encr: c.choice.suite.encr,
        integ: c.choice.suite.integ,
        encr_key,
        integ_key,
        esn: c.choice.esn,
    };
    ctx.event(IkeEvent::ChildSaUp(Box::new(ChildSaUp {
        peer,
        inbound: params(c.inbound_spi, theirs),
        outbound: params(c.outbound_spi, mine),
        local_ts: c.local_ts.clone(),
        remote_ts: c.remote_ts.clone(),
        remote_addr: sa.remote,
        udp_encap: sa.nat.any(),
        replaces: c.replaces,
    })));
    // The rekey's initiator sends into the new SA at once: the responder installed it before
    // answering. The responder waits until the old SA goes (the initiator's Delete, or ours
    // when it lingers): until the initiator has the answer, it may not have the new inbound
    // SA yet, and what we sent into it would be lost. The data path then promotes the newest
    // waiting SA (`IpsecTunnel::remove_inbound`), as strongSwan delays its outbound SA.
    if let Some(old) = c.replaces.filter(|_| c.exchange_initiator) {
        ctx.event(IkeEvent::ChildSaRekeyed {
            peer,
            inbound_spi: old,
            new_inbound_spi: c.inbound_spi,
        });
    }
    Ok(ChildSa {
        inbound_spi: c.inbound_spi,
        outbound_spi: c.outbound_spi,
        choice: c.choice,
        local_ts: c.local_ts,
        remote_ts: c.remote_ts,
        rekey_at: ctx.jittered(now, child_rekey),
        expires_at: Ctx::hard_expiry(now, child_rekey),
        state: ChildState::Installed,
        bytes: 0,
        collision: None,
    })
}

impl ChildSa {
    /// In use: not replaced by a rekey, not being deleted.
    pub(super) fn is_live(&self) -> bool {
        matches!(self.state, ChildState::Installed | ChildState::Rekeying)
    }
}

impl IkeSa {
    /// Removes every CHILD SA and reports it gone.
    pub(super) fn drop_children(&mut self, ctx: &mut Ctx) {
        let peer = ctx.peer_id(self.peer);
        for c in self.children.drain(..) {
            ctx.child_spis.remove(&c.inbound_spi);
            if let Some(peer) = peer {
                ctx.event(IkeEvent::ChildSaDown {
                    peer,
                    inbound_spi: c.inbound_spi,
                });
            }
        }
    }

    /// Removes one CHILD SA (by inbound SPI) and reports it gone.
    pub(super) fn remove_child(&mut self, ctx: &mut Ctx, inbound_spi: u32) {
        let Some(i) = self
            .children
            .iter()
            .position(|c| c.inbound_spi == inbound_spi)
        else {
            return;
        };
        self.children.remove(i);
        ctx.child_spis.remove(&inbound_spi);
        if let Some(peer) = ctx.peer_id(self.peer) {
            ctx.event(IkeEvent::ChildSaDown { peer, inbound_spi });
        }
    }
}
