//! Policy: which flows may be opened (compiled from the configuration at load time; per
//! packet only a lookup), and the bounded flow table that caches verdicts so that replies of
//! allowed flows pass.
//!
//! Layer contract: pure; time is passed in; no allocation per packet.

#![forbid(unsafe_code)]

pub mod flows;

use crate::config::Config;
use crate::ids::{FacilityCode, InternalV4, RuleId, TenantId};

/// The question asked for the first packet of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub src_tenant: TenantId,
    pub src_facility: Option<FacilityCode>,
    pub src: InternalV4,
    pub dst_tenant: TenantId,
    pub dst: InternalV4,
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port for TCP/UDP, 0 otherwise.
    pub dst_port: u16,
}

/// The compiled policies of one plan. Tenants are numbered in configuration order.
#[derive(Debug, Clone)]
pub struct PolicySet {}

impl PolicySet {
    /// Compiles the policies of a validated configuration.
    pub fn compile(config: &Config) -> PolicySet {
        let _ = config;
        todo!()
    }

    /// The first rule that allows the flow, or `None` (default deny).
    pub fn evaluate(&self, q: &Query) -> Option<RuleId> {
        let _ = q;
        todo!()
    }
}
