//! The facility registry's metrics, read from the running [`Facilities`] at scrape time:
//! each facility's certificate state and expiry, and each CRL's age and next update.
//!
//! A [`TextCollector`]: with one facility per peer, 10,000 peers make 20,000 series here, so
//! they are written straight into the scrape's text (no `MetricFamily`, no `String` per
//! label), each family sorted by its label values as the registry would sort it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::facilities::Facilities;
use crate::facility::CrlInfo;
use crate::facility::FacilityState;
use crate::ids::FacilityId;
use crate::metrics::{Def, Sink, TextCollector, Value};

const FACILITY: &[&str] = &["facility", "name", "tenant"];
const CRL: &[&str] = &["ca", "file"];

const STATE: Def = Def::gauge(
    "ixgw_facility_certificate_state",
    &["facility", "name", "tenant", "state"],
    "1 for the facility's certificate state (valid, not_required, not_presented, not_yet_valid, expired, revoked, unknown_ca, binding_mismatch, crl_expired, revocation_unknown, invalid); only valid and not_required let traffic pass",
);
const EXPIRY: Def = Def::gauge(
    "ixgw_facility_cert_expiry_timestamp_seconds",
    FACILITY,
    "notAfter of the certificate the facility is judged by, UNIX seconds",
);
const FACILITIES: Def = Def::gauge(
    "ixgw_facilities",
    &["state"],
    "Facilities of the running configuration by certificate state",
);
const CRL_THIS: Def = Def::gauge(
    "ixgw_crl_this_update_timestamp_seconds",
    CRL,
    "thisUpdate of the CRL loaded from the file, UNIX seconds",
);
const CRL_NEXT: Def = Def::gauge(
    "ixgw_crl_next_update_timestamp_seconds",
    CRL,
    "nextUpdate of the CRL loaded from the file, UNIX seconds; past it the CA fails closed unless crl_expired: fail_open",
);
const CRL_AGE: Def = Def::gauge(
    "ixgw_crl_age_seconds",
    CRL,
    "Seconds since thisUpdate of the CRL loaded from the file",
);
const CRL_REVOKED: Def = Def::gauge(
    "ixgw_crl_revoked_certificates",
    CRL,
    "Certificates the CRL loaded from the file lists",
);

pub(crate) struct FacilityCollector {
    facilities: Arc<Facilities>,
}

impl FacilityCollector {
    pub(crate) fn new(facilities: Arc<Facilities>) -> FacilityCollector {
        FacilityCollector { facilities }
    }

    fn write_at(&self, sink: &mut dyn Sink, now: u64) {
        let mut counts: HashMap<FacilityState, u64> = HashMap::new();
        self.facilities.with(|a| {
            let mut order: Vec<_> = (0..a.len())
                .filter_map(|i| {
                    let id = FacilityId(i as u32);
                    Some((a.spec(id)?, a.verdict(id)?))
                })
                .collect();
            // Codes are ten digits, so their numeric order is that of their text.
            order.sort_by(|(a, _), (b, _)| {
                (a.code, &a.name, &a.tenant).cmp(&(b.code, &b.name, &b.tenant))
            });
            let mut code = String::with_capacity(10);
            sink.family(&STATE);
            for (spec, v) in &order {
                *counts.entry(v.state).or_default() += 1;
                code.clear();
                let _ = write!(code, "{}", spec.code);
                let labels = [code.as_str(), &spec.name, &spec.tenant, v.state.name()];
                sink.sample(&labels, Value::Count(1));
            }
            sink.family(&EXPIRY);
            for (spec, v) in order.iter().filter(|(_, v)| v.not_after > 0) {
                code.clear();
                let _ = write!(code, "{}", spec.code);
                sink.sample(
                    &[code.as_str(), &spec.name, &spec.tenant],
                    Value::Count(v.not_after),
                );
            }
        });
        let mut states = FacilityState::ALL;
        states.sort_by_key(|s| s.name());
        sink.family(&FACILITIES);
        for s in states {
            let n = counts.get(&s).copied().unwrap_or(0);
            sink.sample(&[s.name()], Value::Count(n));
        }
        let mut crls: Vec<_> = (self.facilities.crls().into_iter())
            .filter_map(|(ca, file, info)| Some((ca, file, info?)))
            .collect();
        crls.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let crl = |sink: &mut dyn Sink, def: &'static Def, value: &dyn Fn(&CrlInfo) -> u64| {
            sink.family(def);
            for (ca, file, info) in &crls {
                sink.sample(&[ca, file], Value::Count(value(info)));
            }
        };
        crl(sink, &CRL_THIS, &|i| i.this_update);
        crl(sink, &CRL_NEXT, &|i| i.next_update);
        crl(sink, &CRL_AGE, &|i| now.saturating_sub(i.this_update));
        crl(sink, &CRL_REVOKED, &|i| i.revoked as u64);
    }
}

impl TextCollector for FacilityCollector {
    fn defs(&self) -> Vec<&'static Def> {
        vec![
            &STATE,
            &EXPIRY,
            &FACILITIES,
            &CRL_THIS,
            &CRL_NEXT,
            &CRL_AGE,
            &CRL_REVOKED,
        ]
    }

    fn write(&self, sink: &mut dyn Sink) {
        self.write_at(sink, super::ike::unix_now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dataplane::Plan;
    use crate::facility::testpki::{b64, root, unix_now, Leaf, DAY, WG_KEY};
    use crate::metrics::testing::{assert_line, texts_of};

    /// Facilities listed out of the order of their codes, names to escape, one with a
    /// certificate (an expiry) and a CRL: the text is what `prometheus::TextEncoder` writes
    /// for the same samples gathered by a registry, each family sorted by its labels.
    #[test]
    fn the_text_is_what_the_prometheus_encoder_writes() {
        let dir =
            std::env::temp_dir().join(format!("ixgw-facility-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = unix_now();
        let ca = root("lab", now);
        std::fs::write(dir.join("ca.crt"), &ca.pem).unwrap();
        std::fs::write(
            dir.join("crl.pem"),
            ca.crl_numbered(1, &[9], now - 60, now + DAY),
        )
        .unwrap();
        let (cert, _) = Leaf::facility("4212345674", now).issue_pem(&ca, &[]);
        std::fs::write(dir.join("a.crt"), cert).unwrap();
        std::fs::write(dir.join("gw.key"), format!("{}\n", b64(&[0x11; 32]))).unwrap();
        let peer = |name: &str, code: &str, key: &[u8; 32], net: u8| {
            format!(
                "          - {{ name: {name}, facility: \"{code}\", public_key: \"{}\", allowed_ips: [10.0.{net}.0/24] }}\n",
                b64(key)
            )
        };
        let text = format!(
            r#"ix:
  name: t
  exchange_space: 100.64.0.0/10
trust:
  - name: lab
    ca_file: ca.crt
    crl_files: [crl.pem]
facilities:
  - {{ code: "4240123457", name: 'pharmacy "b" \ c', tenant: a, certificate: none }}
  - {{ code: "4212345674", name: clinic a, tenant: a, certificate: a.crt }}
  - {{ code: "0110113719", name: sapporo, tenant: a, certificate: none }}
tenants:
  - name: a
    trust: [lab]
    networks:
      - {{ internal: 10.0.0.0/16, exchange: 100.64.0.0/16 }}
    attachments:
      - name: a-wg
        type: wireguard
        listen: 127.0.0.1:0
        private_key_file: gw.key
        peers:
{}{}{}"#,
            peer("clinic-a", "4212345674", &WG_KEY, 1),
            peer("pharmacy-b", "4240123457", &[8; 32], 2),
            peer("sapporo", "0110113719", &[9; 32], 3),
        );
        std::fs::write(dir.join("ixgw.yaml"), text).unwrap();
        let config = Config::load(&dir.join("ixgw.yaml")).unwrap();
        let plan = Plan::compile(&config, 1);
        let facilities = Facilities::new(&config, &plan, now, None);
        let collector = FacilityCollector::new(facilities);

        let (written, encoded) = texts_of(&collector);

        assert_eq!(written, encoded);
        let first_state = written
            .lines()
            .find(|l| l.starts_with("ixgw_facility_certificate_state{"))
            .unwrap();
        assert!(first_state.contains("0110113719"), "{first_state}");
        assert_line(
            &written,
            r#"ixgw_facility_certificate_state{facility="4240123457",name="pharmacy \"b\" \\ c",tenant="a",state="not_required"} 1"#,
        );
        assert_line(&written, r#"ixgw_facilities{state="valid"} 1"#);
        assert_line(&written, r#"ixgw_facilities{state="revoked"} 0"#);
        let expiry = (written.lines())
            .filter(|l| l.starts_with("ixgw_facility_cert_expiry_timestamp_seconds{"))
            .count();
        assert_eq!(expiry, 1, "only the certificate's");
        let crl = format!("{{ca=\"lab\",file=\"{}\"}}", dir.join("crl.pem").display());
        assert_line(&written, &format!("ixgw_crl_revoked_certificates{crl} 1"));
        assert_line(
            &written,
            &format!("ixgw_crl_next_update_timestamp_seconds{crl} {}", now + DAY),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
