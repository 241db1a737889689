//! Facilities and their certificates: what the data path asks (may this facility's traffic
//! pass now?) and what the control path works out (is its certificate valid, from a CA its
//! tenant trusts, not revoked, bound to the credential its tunnel uses?).
//!
//! * [`FacilityTable`]: per-facility state and generation, as the data path keeps them. Each
//!   facility has a generation of its own, bumped when its state changes: the flow table keeps
//!   the opener's facility generation with each cached verdict, so a state change
//!   (revocation, expiry) re-checks that facility's flows, and only those, without flushing
//!   the table.
//! * [`cert`]: a facility certificate parsed: the facility code it names, the WireGuard keys
//!   it binds, validity, the chain its holder sent.
//! * [`trust`]: a CA bundle with its CRLs ([`Ca`]).
//! * [`verify`]: a certificate judged for one facility at one time ([`Verdict`]).
//! * [`authority`]: every facility of a plan and its state ([`Authority`]): from the
//!   registry's file or the certificate its peer presented, judged again when a CRL changes
//!   or a validity bound passes.
//!
//! Layer contract: sans-IO (files are read by the caller, `now` is UNIX seconds passed in);
//! imports only `ids` below it. Verification runs on the control path (configuration load,
//! a CRL change, a handshake), never per packet.

#![forbid(unsafe_code)]

pub mod authority;
pub mod cert;
pub mod fuzz;
mod time;
pub mod trust;
pub mod verify;

#[cfg(test)]
pub(crate) mod testpki;
#[cfg(test)]
mod tests;

pub use authority::{Authority, CertSource, Change, FacilitySpec, PeerRefused, Presenter};
pub use cert::{certificates, CertError, FacilityCert};
pub use time::{format_unix, parse_rfc3339};
pub use trust::{Ca, CrlError, CrlInfo, CrlPolicy};
pub use verify::{verify, Expect, FacilityUsage, Verdict};

use crate::ids::FacilityId;

/// Where a facility stands, as far as its certificate goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FacilityState {
    /// No certificate is required for this facility (it is not in the registry, or its
    /// registry entry says `certificate: none`).
    NotRequired,
    Valid,
    /// Its certificate is the one its peer presents (IPsec, TLS), and none has been yet.
    NotPresented,
    NotYetValid,
    Expired,
    Revoked,
    /// Not issued (directly or through the intermediates it came with) by a CA its tenant
    /// trusts.
    UnknownCa,
    /// Valid, but not for this facility or this credential: it names another facility code
    /// (or none, or an invalid one), does not carry the WireGuard key of the facility's peer,
    /// or is not the certificate the registry pins.
    BindingMismatch,
    /// A CRL that decides its status is past its nextUpdate, and the CA fails closed.
    CrlExpired,
    /// No CRL from its issuer could be checked (none loaded, or one whose signature does not
    /// verify) although its CA has CRLs configured.
    RevocationUnknown,
    /// Its chain does not validate for another reason (bad signature, malformed, key usage).
    Invalid,
}

impl FacilityState {
    /// Every state, in the order of their metric labels.
    pub const ALL: [FacilityState; 11] = [
        FacilityState::NotRequired,
        FacilityState::Valid,
        FacilityState::NotPresented,
        FacilityState::NotYetValid,
        FacilityState::Expired,
        FacilityState::Revoked,
        FacilityState::UnknownCa,
        FacilityState::BindingMismatch,
        FacilityState::CrlExpired,
        FacilityState::RevocationUnknown,
        FacilityState::Invalid,
    ];

    pub fn allows_traffic(self) -> bool {
        matches!(self, FacilityState::NotRequired | FacilityState::Valid)
    }

    /// Its label in metrics, logs and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            FacilityState::NotRequired => "not_required",
            FacilityState::Valid => "valid",
            FacilityState::NotPresented => "not_presented",
            FacilityState::NotYetValid => "not_yet_valid",
            FacilityState::Expired => "expired",
            FacilityState::Revoked => "revoked",
            FacilityState::UnknownCa => "unknown_ca",
            FacilityState::BindingMismatch => "binding_mismatch",
            FacilityState::CrlExpired => "crl_expired",
            FacilityState::RevocationUnknown => "revocation_unknown",
            FacilityState::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for FacilityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-facility state and generation, indexed by the plan's dense [`FacilityId`]s.
#[derive(Debug, Clone, Default)]
pub struct FacilityTable {
    states: Vec<FacilityState>,
    generations: Vec<u32>,
}

impl FacilityTable {
    /// `count` facilities, none of which needs a certificate.
    pub fn new(count: usize) -> FacilityTable {
        FacilityTable {
            states: vec![FacilityState::NotRequired; count],
            generations: vec![0; count],
        }
    }

    /// The state of `facility`; traffic of no facility (plain attachments) needs none.
    #[inline]
    pub fn state(&self, facility: Option<FacilityId>) -> FacilityState {
        facility
            .and_then(|f| self.states.get(f.index()).copied())
            .unwrap_or(FacilityState::NotRequired)
    }

    /// Sets `facility`'s state; a change bumps its generation. Returns whether it changed.
    pub fn set_state(&mut self, facility: FacilityId, state: FacilityState) -> bool {
        let Some(s) = self.states.get_mut(facility.index()) else {
            return false;
        };
        if *s == state {
            return false;
        }
        *s = state;
        let g = &mut self.generations[facility.index()];
        *g = g.wrapping_add(1);
        true
    }

    /// Every facility's generation, by [`FacilityId`].
    #[inline]
    pub fn generations(&self) -> &[u32] {
        &self.generations
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn a_state_change_bumps_only_that_facilitys_generation() {
        let mut t = FacilityTable::new(3);
        assert_eq!(t.state(Some(FacilityId(1))), FacilityState::NotRequired);
        assert!(t.set_state(FacilityId(1), FacilityState::Revoked));
        assert_eq!(t.generations(), &[0, 1, 0]);
        assert!(!t.state(Some(FacilityId(1))).allows_traffic());
        assert!(t.state(Some(FacilityId(0))).allows_traffic());
        assert!(
            !t.set_state(FacilityId(1), FacilityState::Revoked),
            "no change"
        );
        assert_eq!(t.generations(), &[0, 1, 0]);
        assert!(
            !t.set_state(FacilityId(9), FacilityState::Revoked),
            "unknown id"
        );
        assert_eq!(t.state(None), FacilityState::NotRequired);
    }
}
