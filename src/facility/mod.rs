//! Facility state as the data path sees it: may this facility's traffic pass now?
//!
//! Certificates are not checked yet; every facility answers [`FacilityState::NotRequired`].
//! The data path keeps the per-facility generation with each cached verdict, so that a state
//! change (revocation, expiry) reaches established flows without flushing the flow table.

#![forbid(unsafe_code)]

use crate::ids::FacilityCode;

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

/// Per-facility state lookup used by `admit`.
#[derive(Debug, Clone, Default)]
pub struct FacilityTable {
    generation: u64,
}

impl FacilityTable {
    /// The state of `facility` and the generation it was computed at.
    #[inline]
    pub fn state(&self, facility: Option<FacilityCode>) -> (FacilityState, u64) {
        let _ = facility;
        (FacilityState::NotRequired, self.generation)
    }

    /// The current generation; a cached verdict older than this is re-evaluated.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
