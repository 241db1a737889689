//! Agreements: two parties (a consumer tenant, or some of its facilities, and a provider
//! tenant's prefixes or service), what they grant, an optional window, and each side's
//! approval. One without both approvals is kept (and reported by `ixgw check`) but grants
//! nothing.

use super::*;
use crate::config::{Agreement, Warning};
use crate::facility::parse_rfc3339;

impl Validator {
    pub(super) fn agreements(
        &self,
        raw: &[raw::Agreement],
        tenants: &[Tenant],
        services: &[Service],
        policies: &[Policy],
        warnings: &mut Vec<Warning>,
    ) -> Result<Vec<Agreement>, ConfigError> {
        let mut names = Names::default();
        let mut out = Vec::with_capacity(raw.len());
        for (i, a) in raw.iter().enumerate() {
            let ak = format!("agreements[{i}]");
            let nk = format!("{ak}.name");
            self.unique(&mut names, "agreement", &a.name, &nk)?;
            if policies.iter().any(|p| p.name == a.name) {
                return Err(self.err(&nk, Problem::AgreementNamedLikePolicy(a.name.clone())));
            }
            let (ck, pk) = (format!("{ak}.consumer"), format!("{ak}.provider"));
            let (from, to, allow) = self.grant(
                (&ck, &a.consumer),
                (&pk, &a.provider),
                (&format!("{ak}.allow"), &a.allow),
                tenants,
                services,
            )?;
            let consumer = match from.tenants.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(self.err(
                        &format!("{ck}.tenant"),
                        Problem::AgreementParty { side: "consumer" },
                    ))
                }
            };
            let provider = match &to {
                Destination::Tenants { tenants, .. } if tenants.len() == 1 => tenants[0].clone(),
                Destination::Services(names) if names.len() == 1 => services
                    .iter()
                    .find(|s| s.name == names[0])
                    .map(|s| s.tenant.clone())
                    .unwrap_or_default(),
                Destination::Tenants { .. } => {
                    return Err(self.err(
                        &format!("{pk}.tenant"),
                        Problem::AgreementParty { side: "provider" },
                    ))
                }
                Destination::Services(_) => {
                    return Err(self.err(
                        &format!("{pk}.service"),
                        Problem::AgreementParty { side: "provider" },
                    ))
                }
            };
            if consumer == provider {
                return Err(self.err(&ck, Problem::AgreementSameTenant(consumer)));
            }
            let time = |key: &str, value: &Option<String>| -> Result<Option<u64>, ConfigError> {
                value
                    .as_deref()
                    .map(|v| {
                        parse_rfc3339(v.trim()).map_err(|reason| {
                            self.err(
                                key,
                                Problem::Time {
                                    value: v.to_string(),
                                    reason,
                                },
                            )
                        })
                    })
                    .transpose()
            };
            let valid_from = time(&format!("{ak}.valid_from"), &a.valid_from)?;
            let uk = format!("{ak}.valid_until");
            let valid_until = time(&uk, &a.valid_until)?;
            if let (Some(f), Some(u)) = (valid_from, valid_until) {
                if u <= f {
                    return Err(self.err(&uk, Problem::EmptyWindow));
                }
            }
            let approval =
                |v: Option<&String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            let by_provider = approval(a.approved.as_ref().and_then(|x| x.provider.as_ref()));
            let by_consumer = approval(a.approved.as_ref().and_then(|x| x.consumer.as_ref()));
            let missing: Vec<&str> = [
                (by_provider.is_none(), "the provider's (approved.provider)"),
                (by_consumer.is_none(), "the consumer's (approved.consumer)"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, w)| *w)
            .collect();
            if !missing.is_empty() {
                warnings.push(self.warning(
                    &nk,
                    format!(
                        "agreement `{}` lacks {} approval: it grants nothing",
                        a.name,
                        missing.join(" and ")
                    ),
                ));
            }
            out.push(Agreement {
                name: a.name.clone(),
                consumer,
                provider,
                grant: Policy {
                    name: a.name.clone(),
                    from,
                    to,
                    allow,
                },
                valid_from,
                valid_until,
                approved_by_provider: by_provider,
                approved_by_consumer: by_consumer,
            });
        }
        Ok(out)
    }
}
