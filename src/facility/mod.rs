//! Facility state as the data path sees it: may this facility's traffic pass now?
//!
//! Certificates are not checked yet; every facility is [`FacilityState::NotRequired`] until
//! someone sets its state. Each facility has a generation of its own, bumped when its state
//! changes: the flow table keeps the opener's facility generation with each cached verdict,
//! so a state change (revocation, expiry) re-checks that facility's flows, and only those,
//! without flushing the table.

#![forbid(unsafe_code)]

use crate::ids::FacilityId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacilityState {
    /// No certificate is required for this facility.
    NotRequired,
    Valid,
    Expired,
    Revoked,
    Unknown,
}

impl FacilityState {
    pub fn allows_traffic(self) -> bool {
        matches!(self, FacilityState::NotRequired | FacilityState::Valid)
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
mod tests {
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
