//! The facility registry's metrics, read from the running [`Facilities`] at scrape time:
//! each facility's certificate state and expiry, and each CRL's age and next update.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::facilities::Facilities;
use crate::facility::FacilityState;
use crate::ids::FacilityId;
use crate::metrics::scrape::{desc, gauge};

const STATE: (&str, &str) = (
    "ixgw_facility_certificate_state",
    "1 for the facility's certificate state (valid, not_required, not_presented, not_yet_valid, expired, revoked, unknown_ca, binding_mismatch, crl_expired, revocation_unknown, invalid); only valid and not_required let traffic pass",
);
const EXPIRY: (&str, &str) = (
    "ixgw_facility_cert_expiry_timestamp_seconds",
    "notAfter of the certificate the facility is judged by, UNIX seconds",
);
const FACILITIES: (&str, &str) = (
    "ixgw_facilities",
    "Facilities of the running configuration by certificate state",
);
const CRL_THIS: (&str, &str) = (
    "ixgw_crl_this_update_timestamp_seconds",
    "thisUpdate of the CRL loaded from the file, UNIX seconds",
);
const CRL_NEXT: (&str, &str) = (
    "ixgw_crl_next_update_timestamp_seconds",
    "nextUpdate of the CRL loaded from the file, UNIX seconds; past it the CA fails closed unless crl_expired: fail_open",
);
const CRL_AGE: (&str, &str) = (
    "ixgw_crl_age_seconds",
    "Seconds since thisUpdate of the CRL loaded from the file",
);
const CRL_REVOKED: (&str, &str) = (
    "ixgw_crl_revoked_certificates",
    "Certificates the CRL loaded from the file lists",
);

pub(crate) struct FacilityCollector {
    facilities: Arc<Facilities>,
    descs: Vec<Desc>,
}

impl FacilityCollector {
    pub(crate) fn new(facilities: Arc<Facilities>) -> prometheus::Result<FacilityCollector> {
        let facility = ["facility", "name", "tenant"];
        let crl = ["ca", "file"];
        Ok(FacilityCollector {
            facilities,
            descs: vec![
                desc(STATE, &["facility", "name", "tenant", "state"])?,
                desc(EXPIRY, &facility)?,
                desc(FACILITIES, &["state"])?,
                desc(CRL_THIS, &crl)?,
                desc(CRL_NEXT, &crl)?,
                desc(CRL_AGE, &crl)?,
                desc(CRL_REVOKED, &crl)?,
            ],
        })
    }

    fn families(&self, now: u64) -> Vec<MetricFamily> {
        let mut state = Vec::new();
        let mut expiry = Vec::new();
        let mut counts: HashMap<FacilityState, u64> = HashMap::new();
        self.facilities.with(|a| {
            for i in 0..a.len() {
                let id = FacilityId(i as u32);
                let (Some(spec), Some(v)) = (a.spec(id), a.verdict(id)) else {
                    continue;
                };
                let code = spec.code.to_string();
                let labels = [
                    ("facility", code.as_str()),
                    ("name", spec.name.as_str()),
                    ("tenant", spec.tenant.as_str()),
                ];
                *counts.entry(v.state).or_default() += 1;
                let mut with_state = labels.to_vec();
                with_state.push(("state", v.state.name()));
                state.push(gauge(&with_state, 1.0));
                if v.not_after > 0 {
                    expiry.push(gauge(&labels, v.not_after as f64));
                }
            }
        });
        let by_state = FacilityState::ALL
            .iter()
            .map(|s| {
                gauge(
                    &[("state", s.name())],
                    counts.get(s).copied().unwrap_or(0) as f64,
                )
            })
            .collect();
        let (mut this, mut next, mut age, mut revoked) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (ca, file, info) in self.facilities.crls() {
            let Some(info) = info else { continue };
            let labels = [("ca", ca.as_str()), ("file", file.as_str())];
            this.push(gauge(&labels, info.this_update as f64));
            next.push(gauge(&labels, info.next_update as f64));
            age.push(gauge(&labels, now.saturating_sub(info.this_update) as f64));
            revoked.push(gauge(&labels, info.revoked as f64));
        }
        vec![
            family(STATE, state),
            family(EXPIRY, expiry),
            family(FACILITIES, by_state),
            family(CRL_THIS, this),
            family(CRL_NEXT, next),
            family(CRL_AGE, age),
            family(CRL_REVOKED, revoked),
        ]
    }
}

impl Collector for FacilityCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families(super::ike::unix_now())
    }
}

fn family(def: (&'static str, &'static str), metrics: Vec<Metric>) -> MetricFamily {
    crate::metrics::scrape::family(def, MetricType::GAUGE, metrics)
}
