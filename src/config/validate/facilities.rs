//! The CA bundles (`trust:`), the tenants' choice among them, and the facility registry
//! (`facilities:`): every facility named once, in the tenant of the peers that carry it, with
//! a certificate from a file, presented by its IPsec peers, or none.

use std::collections::HashMap;

use super::*;
use crate::config::{CrlPolicy, Facility, FacilityCertificate, IpsecAuth, TrustBundle, Warning};
use crate::facility::{Ca, FacilityCert};

impl Validator {
    pub(super) fn warning(&self, key: &str, message: String) -> Warning {
        Warning {
            file: self.file.clone(),
            line: Some(self.lines.line(key)),
            key: key.to_string(),
            message,
        }
    }

    /// `trust:`: each bundle's CA file must hold CA certificates, and each CRL file a CRL
    /// issued by one of them.
    pub(super) fn trust(
        &self,
        raw: &[raw::Trust],
        warnings: &mut Vec<Warning>,
    ) -> Result<Vec<TrustBundle>, ConfigError> {
        let mut names = Names::default();
        let mut out = Vec::with_capacity(raw.len());
        for (i, t) in raw.iter().enumerate() {
            let tk = format!("trust[{i}]");
            self.unique(&mut names, "trust", &t.name, &format!("{tk}.name"))?;
            let crl_expired = match t.crl_expired.as_deref().map(str::trim) {
                None | Some("fail_closed") => CrlPolicy::FailClosed,
                Some("fail_open") => CrlPolicy::FailOpen,
                Some(other) => {
                    return Err(self.err(
                        &format!("{tk}.crl_expired"),
                        Problem::Choice {
                            value: other.to_string(),
                            expected: "fail_closed or fail_open",
                        },
                    ))
                }
            };
            let ck = format!("{tk}.ca_file");
            let (ca_file, bytes) = self.read_file(&ck, &t.ca_file, "CA", PEM_FILE_LIMIT)?;
            let mut ca = Ca::new(&t.name, &bytes, crl_expired, t.crl_files.len()).map_err(|e| {
                self.err(
                    &ck,
                    Problem::CaFile {
                        file: ca_file.display().to_string(),
                        reason: e.to_string(),
                    },
                )
            })?;
            let mut crl_files = Vec::with_capacity(t.crl_files.len());
            for (j, f) in t.crl_files.iter().enumerate() {
                let fk = format!("{tk}.crl_files[{j}]");
                let (path, bytes) = self.read_file(&fk, f, "CRL", PEM_FILE_LIMIT)?;
                ca.load_crl(j, &bytes).map_err(|e| {
                    self.err(
                        &fk,
                        Problem::CrlFile {
                            file: path.display().to_string(),
                            reason: e.to_string(),
                        },
                    )
                })?;
                crl_files.push(path);
            }
            if crl_files.is_empty() {
                warnings.push(self.warning(
                    &format!("{tk}.name"),
                    format!(
                        "CA bundle `{}` has no crl_files: revocation of its certificates is not checked",
                        t.name
                    ),
                ));
            }
            out.push(TrustBundle {
                name: t.name.clone(),
                ca_file,
                bundle: bytes.to_vec(),
                crl_files,
                crl_expired,
            });
        }
        Ok(out)
    }

    /// Each tenant's `trust` names bundles that exist.
    pub(super) fn tenant_trust(
        &self,
        raw: &[raw::Tenant],
        trust: &[TrustBundle],
    ) -> Result<(), ConfigError> {
        for (ti, t) in raw.iter().enumerate() {
            for (i, name) in t.trust.iter().enumerate() {
                if !trust.iter().any(|b| &b.name == name) {
                    return Err(self.err(
                        &format!("tenants[{ti}].trust[{i}]"),
                        Problem::UnknownTrust(name.clone()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `facilities:` against the peers that carry each code.
    pub(super) fn facilities(
        &self,
        raw: &Option<Vec<raw::Facility>>,
        tenants: &[Tenant],
        warnings: &mut Vec<Warning>,
    ) -> Result<Option<Vec<Facility>>, ConfigError> {
        let Some(raw) = raw else {
            if let Some(p) = peer_refs(tenants).iter().find(|p| p.kind == "tls") {
                return Err(self.err(
                    &p.key,
                    Problem::TlsFacilityUnregistered {
                        peer: p.name.to_string(),
                        code: p.facility.to_string(),
                    },
                ));
            }
            if !tenants.is_empty() {
                warnings.push(Warning {
                    line: None,
                    ..self.warning(
                        "facilities",
                        "no `facilities:` registry: facility certificates are not checked, any peer's traffic is vouched for"
                            .into(),
                    )
                });
            }
            return Ok(None);
        };
        // Every peer with its key path, tenant and how it authenticates.
        let peers: Vec<PeerRef<'_>> = peer_refs(tenants);
        let mut seen: HashMap<FacilityCode, String> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, f) in raw.iter().enumerate() {
            let fk = format!("facilities[{i}]");
            let code = self.facility(&format!("{fk}.code"), &f.code)?;
            if let Some(first) = seen.get(&code) {
                return Err(self.err(
                    &format!("{fk}.code"),
                    Problem::DuplicateName {
                        what: "facility",
                        name: code.to_string(),
                        first_key: first.clone(),
                        first_line: self.lines.line(first),
                    },
                ));
            }
            seen.insert(code, format!("{fk}.code"));
            self.nonempty(&format!("{fk}.name"), &f.name)?;
            let tenant = tenants.iter().find(|t| t.name == f.tenant).ok_or_else(|| {
                self.err(
                    &format!("{fk}.tenant"),
                    Problem::UnknownTenant(f.tenant.clone()),
                )
            })?;
            let carriers: Vec<&PeerRef<'_>> = peers.iter().filter(|p| p.facility == code).collect();
            if let Some(p) = carriers.iter().find(|p| p.tenant != tenant.name) {
                return Err(self.err(
                    &format!("{fk}.tenant"),
                    Problem::FacilityTenant {
                        code: code.to_string(),
                        tenant: tenant.name.clone(),
                        peer: p.name.to_string(),
                        peer_tenant: p.tenant.to_string(),
                    },
                ));
            }
            if carriers.is_empty() {
                warnings.push(self.warning(
                    &format!("{fk}.code"),
                    format!("no peer carries facility {code} ({})", f.name),
                ));
            }
            let ck = format!("{fk}.certificate");
            let certificate = match f.certificate.trim() {
                "none" if carriers.iter().any(|p| p.kind == "tls") => {
                    let p = carriers.iter().find(|p| p.kind == "tls");
                    return Err(self.err(
                        &ck,
                        Problem::TlsFacilityUnregistered {
                            peer: p.map_or(String::new(), |p| p.name.to_string()),
                            code: code.to_string(),
                        },
                    ));
                }
                "none" => {
                    warnings.push(self.warning(
                        &ck,
                        format!(
                            "facility {code} ({}) needs no certificate: its traffic is not vouched for",
                            f.name
                        ),
                    ));
                    FacilityCertificate::None
                }
                "presented" => {
                    if let Some(p) = carriers.iter().find(|p| !p.presents) {
                        return Err(self.err(
                            &ck,
                            Problem::NothingPresented {
                                peer: p.name.to_string(),
                                kind: p.kind,
                            },
                        ));
                    }
                    FacilityCertificate::Presented
                }
                file => {
                    let (path, bytes) = self.read_file(&ck, file, "certificate", PEM_FILE_LIMIT)?;
                    FacilityCert::from_file_bytes(&bytes).map_err(|e| {
                        self.err(
                            &ck,
                            Problem::CertificateFile {
                                file: path.display().to_string(),
                                reason: e.to_string(),
                            },
                        )
                    })?;
                    for p in carriers.iter().filter(|p| p.kind == "ipsec" && !p.presents) {
                        warnings.push(self.warning(
                            &ck,
                            format!(
                                "peer `{}` authenticates with a pre-shared key: facility {code}'s certificate is checked, but the tunnel is not bound to it",
                                p.name
                            ),
                        ));
                    }
                    FacilityCertificate::File {
                        path,
                        pem: bytes.to_vec(),
                    }
                }
            };
            if !matches!(certificate, FacilityCertificate::None) && tenant.trust.is_empty() {
                return Err(self.err(
                    &ck,
                    Problem::NoTrust {
                        tenant: tenant.name.clone(),
                    },
                ));
            }
            out.push(Facility {
                code,
                name: f.name.clone(),
                tenant: tenant.name.clone(),
                certificate,
            });
        }
        if let Some(p) = peers.iter().find(|p| !seen.contains_key(&p.facility)) {
            return Err(self.err(
                &p.key,
                Problem::FacilityNotRegistered {
                    peer: p.name.to_string(),
                    code: p.facility.to_string(),
                },
            ));
        }
        Ok(Some(out))
    }
}

/// A peer, as the registry checks see it.
struct PeerRef<'a> {
    name: &'a str,
    tenant: &'a str,
    facility: FacilityCode,
    /// The key path of its `facility`.
    key: String,
    kind: &'static str,
    /// It authenticates with a certificate (which it presents).
    presents: bool,
}

fn peer_refs(tenants: &[Tenant]) -> Vec<PeerRef<'_>> {
    let mut out = Vec::new();
    for (ti, t) in tenants.iter().enumerate() {
        for (ai, a) in t.attachments.iter().enumerate() {
            let key = |pi: usize| format!("tenants[{ti}].attachments[{ai}].peers[{pi}].facility");
            match &a.kind {
                AttachmentKind::WireGuard(wg) => {
                    out.extend(wg.peers.iter().enumerate().map(|(pi, p)| PeerRef {
                        name: &p.name,
                        tenant: &t.name,
                        facility: p.facility,
                        key: key(pi),
                        kind: "wireguard",
                        presents: false,
                    }))
                }
                AttachmentKind::Ipsec(ipsec) => {
                    out.extend(ipsec.peers.iter().enumerate().map(|(pi, p)| PeerRef {
                        name: &p.name,
                        tenant: &t.name,
                        facility: p.facility,
                        key: key(pi),
                        kind: "ipsec",
                        presents: matches!(p.auth, IpsecAuth::Certificate { .. }),
                    }))
                }
                AttachmentKind::Tls(tls) => {
                    out.extend(tls.peers.iter().enumerate().map(|(pi, p)| PeerRef {
                        name: &p.name,
                        tenant: &t.name,
                        facility: p.facility,
                        key: key(pi),
                        kind: "tls",
                        presents: true,
                    }))
                }
                AttachmentKind::Plain(_) | AttachmentKind::Ethernet(_) => {}
            }
        }
    }
    out
}
