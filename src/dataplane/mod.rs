//! The data path: decap → classify → admit → translate → route → encap over batches of
//! packet buffers.
//!
//! Layer contract: pure code over byte buffers; no sockets, no tokio, no clock reads (time
//! comes in as `now`); no allocation and no lock per packet.

#![forbid(unsafe_code)]

mod flow_event;
pub mod fuzz;
mod gateway;
pub mod lpm;
mod plan;
mod reasons;

pub use flow_event::{FlowEnd, FlowEvent, FlowPhase, FlowSink, PeerEvent, PeerEventKind};
pub use gateway::{count_event, Gateway, TX_RESERVE};
pub use plan::{
    identity, AttachmentPlan, AttachmentPlanKind, IkeSetupError, Io, IpsecCarry, IpsecPeerPlan,
    PeerPlan, PeerPlanKind, Plan, Route, TenantPlan, TlsPeerPlan, TlsPlan,
};

#[cfg(test)]
mod ethernet_tests;
#[cfg(test)]
mod ipsec_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
