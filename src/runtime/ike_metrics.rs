//! What the IKE thread counts, for `/metrics`: IKE events and refusals by reason, peers lost
//! by reason, and the SAs each attachment holds. IKE is not on the packet path, so these are
//! plain prometheus vectors the IKE thread updates as events come.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::tunnel::ipsec::ike::sa::{DownReason, IkeEngine, Refusal};

#[derive(Clone)]
pub(crate) struct IkeMetrics {
    events: IntCounterVec,
    refused: IntCounterVec,
    peer_down: IntCounterVec,
    sas: IntGaugeVec,
}

impl IkeMetrics {
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<IkeMetrics> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let events = counter(
            "ixgw_ike_events_total",
            "IKE events by attachment: ike_sa_up, ike_sa_rekeyed, child_sa_up, child_sa_rekeyed, child_sa_down, retransmit, gave_up.",
            &["attachment", "event"],
        )?;
        let refused = counter(
            "ixgw_ike_refused_total",
            "IKE messages refused or dropped, and exchanges that failed, by attachment and reason.",
            &["attachment", "reason"],
        )?;
        let peer_down = counter(
            "ixgw_ike_peer_down_total",
            "IPsec peers that lost their IKE SA, by attachment and reason.",
            &["attachment", "reason"],
        )?;
        let sas = IntGaugeVec::new(
            Opts::new(
                "ixgw_ike_sas",
                "IKE SAs by attachment and state (half_open: a responder's, waiting for IKE_AUTH; established: authenticated and not replaced by a rekey), and CHILD SAs (state=child).",
            ),
            &["attachment", "state"],
        )?;
        registry.register(Box::new(sas.clone()))?;
        Ok(IkeMetrics {
            events,
            refused,
            peer_down,
            sas,
        })
    }

    pub(crate) fn event(&self, attachment: &str, event: &str) {
        self.events.with_label_values(&[attachment, event]).inc();
    }

    pub(crate) fn refused(&self, attachment: &str, reason: Refusal) {
        self.refused
            .with_label_values(&[attachment, refusal_label(reason)])
            .inc();
    }

    pub(crate) fn peer_down(&self, attachment: &str, reason: DownReason) {
        self.peer_down
            .with_label_values(&[attachment, down_label(reason)])
            .inc();
    }

    /// The SAs `engine` holds now.
    pub(crate) fn sas(&self, attachment: &str, engine: &IkeEngine, child_sas: usize) {
        let set = |state: &str, n: usize| {
            self.sas
                .with_label_values(&[attachment, state])
                .set(n as i64)
        };
        set("half_open", engine.half_open());
        set("established", engine.established());
        set("child", child_sas);
    }
}

/// The `reason` label of a refusal.
pub(crate) fn refusal_label(r: Refusal) -> &'static str {
    match r {
        Refusal::Malformed(_) => "malformed",
        Refusal::InnerMalformed(_) => "inner_malformed",
        Refusal::UnknownSpi => "unknown_spi",
        Refusal::Integrity => "integrity",
        Refusal::MessageId => "message_id",
        Refusal::UnexpectedExchange => "unexpected_exchange",
        Refusal::MissingPayload => "missing_payload",
        Refusal::NoProposalChosen => "no_proposal_chosen",
        Refusal::InvalidKe => "invalid_ke",
        Refusal::InvalidKeValue => "invalid_ke_value",
        Refusal::NoPeerConfig => "no_peer_config",
        Refusal::IdMismatch => "id_mismatch",
        Refusal::AuthenticationFailed => "authentication_failed",
        Refusal::Certificate(e) => e.name(),
        Refusal::TsUnacceptable => "ts_unacceptable",
        Refusal::CookieRequired => "cookie_required",
        Refusal::InvalidCookie => "invalid_cookie",
        Refusal::HalfOpenLimit => "half_open_limit",
        Refusal::TemporaryFailure => "temporary_failure",
        Refusal::ChildSaNotFound => "child_sa_not_found",
        Refusal::Fragment => "fragment",
        Refusal::Unsupported => "unsupported",
        Refusal::PeerNotify => "peer_notify",
        Refusal::Internal => "internal",
    }
}

/// The `reason` label of a peer lost.
pub(crate) fn down_label(r: DownReason) -> &'static str {
    match r {
        DownReason::DeletedByPeer => "deleted_by_peer",
        DownReason::DeletedLocally => "deleted_locally",
        DownReason::DpdTimeout => "dpd_timeout",
        DownReason::GaveUp => "gave_up",
        DownReason::Failed => "failed",
        DownReason::Replaced => "replaced",
        DownReason::Expired => "expired",
    }
}
