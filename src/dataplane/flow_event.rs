//! Flows starting and ending, as the data path reports them for the audit trail.
//!
//! An event carries the plan it was judged under (an `Arc`: no allocation), the ids and the
//! counters; whoever writes it resolves names and addresses off the data path: the opener's
//! addresses before translation (`plan.tenants[src_tenant].map.to_internal(opener.src)`),
//! in exchange space (`opener`), and after translation as the destination tenant sees them
//! (`plan.tenants[dst_tenant].map.to_internal(opener.dst)`), and what admitted it
//! (`plan.policy.rule(rule)`: a policy or an agreement).

use std::sync::Arc;
use std::time::Duration;

use super::Plan;
use crate::ids::{FacilityCode, RuleId, TenantId};
use crate::policy::flows::Tuple;

/// One flow starting or ending.
#[derive(Debug, Clone)]
pub struct FlowEvent {
    pub plan: Arc<Plan>,
    pub phase: FlowPhase,
    /// The opener's first packet, in exchange space.
    pub opener: Tuple,
    pub src_tenant: TenantId,
    pub dst_tenant: TenantId,
    /// The opener's facility, if it came from a peer.
    pub facility: Option<FacilityCode>,
    /// What admitted it.
    pub rule: RuleId,
    /// Packets and bytes (IP, as forwarded) opener → responder, then responder → opener,
    /// since the flow started; zero at the start.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// How long it lived; zero at the start.
    pub duration: Duration,
}

/// Whether a flow starts or ends, and why it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPhase {
    Start,
    End(FlowEnd),
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEnd {
    /// Idle past its timeout.
    Idle,
    /// Closed (TCP FIN both ways, or RST) and its closing timeout passed.
    Closed,
    /// Evicted to make room for a new flow.
    Evicted,
    /// Asked again and refused: the policy or agreement that admitted it no longer does (a
    /// reload, a window that closed) or a facility's certificate stopped it.
    Refused,
    /// The gateway stopped.
    Shutdown,
}

impl FlowEnd {
    pub fn name(self) -> &'static str {
        match self {
            FlowEnd::Idle => "idle",
            FlowEnd::Closed => "closed",
            FlowEnd::Evicted => "evicted",
            FlowEnd::Refused => "refused",
            FlowEnd::Shutdown => "shutdown",
        }
    }
}

/// A tunnel's peer authenticated, or was refused (WireGuard; IPsec reports from the IKE
/// thread).
#[derive(Debug, Clone)]
pub struct PeerEvent {
    pub plan: Arc<Plan>,
    pub peer: crate::ids::PeerId,
    pub at: std::time::Instant,
    pub kind: PeerEventKind,
    /// Where the peer's datagrams come from, as the tunnel knows it.
    pub remote: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEventKind {
    /// A handshake completed.
    Handshake,
    /// A handshake failed with this result: refused (`certificate`) or unanswered
    /// (`timeout`).
    Failed(crate::vocab::HandshakeResult),
    /// Its tunnel packets now come from `to` (before: `from`; `None` for the first).
    Moved {
        from: Option<std::net::SocketAddr>,
        to: std::net::SocketAddr,
    },
}

/// Where the data path hands its flow and peer events (the audit trail). Called on the
/// worker's thread, once per flow start and end and per handshake, never per packet; it must
/// not block.
pub trait FlowSink: Send + Sync {
    /// Whether it wants [`FlowSink::flow`] at all; asked once, when it is installed. Without,
    /// the data path makes no flow records.
    fn wants_flows(&self) -> bool {
        true
    }
    fn flow(&self, event: FlowEvent);
    fn peer(&self, _event: PeerEvent) {}
}

impl FlowEnd {
    /// How a flow that left the table ended.
    pub fn of(why: crate::policy::flows::Removal) -> FlowEnd {
        use crate::policy::flows::Removal;
        match why {
            Removal::Idle => FlowEnd::Idle,
            Removal::Closed => FlowEnd::Closed,
            Removal::Evicted => FlowEnd::Evicted,
            Removal::Removed | Removal::Orphaned => FlowEnd::Refused,
        }
    }
}
