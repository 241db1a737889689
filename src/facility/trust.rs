//! A CA bundle facilities' certificates may chain to, and the CRLs that revoke them.
//!
//! A bundle holds one or more CA certificates (roots, or intermediates the operator trusts
//! directly); each is a trust anchor. CRLs are given as DER or PEM bytes, one slot per
//! configured file, so that the caller can replace one when its file changes; a slot that
//! never loaded is empty. What a CRL past its nextUpdate means is the CA's [`CrlPolicy`].

use std::collections::HashMap;

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, TrustAnchor};
use webpki::OwnedCertRevocationList;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::cert::{certificates, parse, CertError};

/// What a CRL past its nextUpdate means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrlPolicy {
    /// Certificates it decides are refused (`crl_expired`) until a fresh CRL arrives: the
    /// default, since a stale CRL may miss a revocation.
    #[default]
    FailClosed,
    /// It is used as it is: what it revokes stays revoked, the rest passes.
    FailOpen,
}

/// Why CRL bytes cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("PEM: {0}")]
    Pem(String),
    #[error("no X509 CRL in it")]
    Empty,
    #[error("not a CRL ixgw can use: {0}")]
    Parse(String),
    #[error("issued by {0}, which is not a certificate of this CA bundle")]
    Issuer(String),
    #[error("CRL number {offered} is older than the CRL number {loaded} already loaded from this file: an old CRL could un-revoke certificates")]
    Older { offered: String, loaded: String },
}

/// What one loaded CRL says of itself (for logs and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub issuer: String,
    /// thisUpdate and nextUpdate, UNIX seconds.
    pub this_update: u64,
    pub next_update: u64,
    /// The cRLNumber extension, decimal.
    pub number: Option<String>,
    pub revoked: usize,
}

#[derive(Debug, Clone)]
struct LoadedCrl {
    crl: std::sync::Arc<webpki::CertRevocationList<'static>>,
    info: CrlInfo,
    /// Revocation date and reason of each listed serial (DER content octets), for the
    /// helpdesk.
    entries: HashMap<Vec<u8>, (u64, Option<String>)>,
}

/// One CA bundle and its CRLs.
///
/// Its self-signed certificates are the trust anchors; the others (intermediates the
/// operator lists so that facilities need not send them, and whose CRLs may then be listed)
/// are offered as intermediates only, so that the root's CRL can revoke them. A bundle with
/// no self-signed certificate trusts its certificates directly.
#[derive(Debug, Clone)]
pub struct Ca {
    pub name: String,
    pub(crate) anchors: Vec<TrustAnchor<'static>>,
    /// notBefore and notAfter of each anchor, UNIX seconds (webpki keeps no validity for a
    /// trust anchor; we check it: [`anchor_in_time`]).
    pub(crate) validity: Vec<(u64, u64)>,
    /// The bundle's certificates, all offered as intermediates.
    pub(crate) certs: Vec<CertificateDer<'static>>,
    subjects: Vec<Vec<u8>>,
    pub policy: CrlPolicy,
    /// One slot per configured CRL file; `None` until it loads.
    crls: Vec<Option<LoadedCrl>>,
}

impl Ca {
    /// A bundle (PEM with one or more CERTIFICATE blocks, or one DER certificate) with
    /// `crl_slots` CRL files to come.
    pub fn new(
        name: &str,
        bundle: &[u8],
        policy: CrlPolicy,
        crl_slots: usize,
    ) -> Result<Ca, CertError> {
        let certs = certificates(bundle)?;
        let mut anchors = Vec::with_capacity(certs.len());
        let mut validity = Vec::with_capacity(certs.len());
        let mut subjects = Vec::with_capacity(certs.len());
        let mut chained = Vec::new();
        for (index, der) in certs.iter().enumerate() {
            let cert = parse(index, der)?;
            let is_ca = match cert.basic_constraints() {
                Ok(Some(bc)) => bc.value.ca,
                Ok(None) => cert.version().0 == 0,
                Err(e) => {
                    return Err(CertError::Parse {
                        index,
                        reason: e.to_string(),
                    })
                }
            };
            if !is_ca {
                return Err(CertError::NotACa { index });
            }
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| CertError::Parse {
                    index,
                    reason: e.to_string(),
                })?
                .to_owned();
            let v = cert.validity();
            let secs = |t: i64| u64::try_from(t).unwrap_or(0);
            let bounds = (
                secs(v.not_before.timestamp()),
                secs(v.not_after.timestamp()),
            );
            subjects.push(cert.subject().as_raw().to_vec());
            if cert.subject().as_raw() == cert.issuer().as_raw() {
                validity.push(bounds);
                anchors.push(anchor);
            } else {
                chained.push((anchor, bounds));
            }
        }
        if anchors.is_empty() {
            for (anchor, bounds) in chained {
                anchors.push(anchor);
                validity.push(bounds);
            }
        }
        Ok(Ca {
            name: name.to_string(),
            anchors,
            certs,
            validity,
            subjects,
            policy,
            crls: vec![None; crl_slots],
        })
    }

    /// A bundle with no certificates: nothing chains to it (stands in for one that could not
    /// be loaded, so that the others keep their positions).
    pub fn empty(name: &str, policy: CrlPolicy) -> Ca {
        Ca {
            name: name.to_string(),
            anchors: Vec::new(),
            certs: Vec::new(),
            validity: Vec::new(),
            subjects: Vec::new(),
            policy,
            crls: Vec::new(),
        }
    }

    /// Whether CRLs are configured for this CA (then a certificate whose status no CRL
    /// decides is refused).
    pub fn checks_revocation(&self) -> bool {
        !self.crls.is_empty()
    }

    /// Loads CRL bytes (PEM or DER) into `slot`, replacing what it held. On error the slot
    /// keeps its previous CRL: a half-written or broken file never un-revokes anything.
    pub fn load_crl(&mut self, slot: usize, bytes: &[u8]) -> Result<CrlInfo, CrlError> {
        let der = crl_der(bytes)?;
        let parsed = OwnedCertRevocationList::from_der(&der)
            .map_err(|e| CrlError::Parse(format!("{e:?}")))?;
        let (_, x) = CertificateRevocationList::from_der(&der)
            .map_err(|e| CrlError::Parse(e.to_string()))?;
        if !self.subjects.iter().any(|s| s == x.issuer().as_raw()) {
            return Err(CrlError::Issuer(x.issuer().to_string()));
        }
        let secs = |t: i64| u64::try_from(t).unwrap_or(0);
        let mut entries = HashMap::new();
        for r in x.iter_revoked_certificates() {
            let reason = r.reason_code().map(|(_, c)| reason_text(c.0));
            entries.insert(
                r.raw_serial().to_vec(),
                (secs(r.revocation_date.timestamp()), reason),
            );
        }
        let info = CrlInfo {
            issuer: x.issuer().to_string(),
            this_update: secs(x.last_update().timestamp()),
            next_update: x.next_update().map_or(0, |t| secs(t.timestamp())),
            number: x.crl_number().map(|n| n.to_string()),
            revoked: entries.len(),
        };
        let Some(s) = self.crls.get_mut(slot) else {
            return Err(CrlError::Parse(format!("no CRL slot {slot}")));
        };
        if let (Some(loaded), Some(offered)) = (
            s.as_ref().and_then(|c| c.info.number.as_deref()),
            info.number.as_deref(),
        ) {
            // Decimal without leading zeros: the longer, or the larger of equal length.
            let older = (offered.len(), offered) < (loaded.len(), loaded);
            if older {
                return Err(CrlError::Older {
                    offered: offered.to_string(),
                    loaded: loaded.to_string(),
                });
            }
        }
        *s = Some(LoadedCrl {
            crl: std::sync::Arc::new(parsed.into()),
            info: info.clone(),
            entries,
        });
        Ok(info)
    }

    /// Takes `other`'s CRL of `other_slot` into `slot` when it is newer (a higher CRL number)
    /// than what `slot` holds: a reload reads the files afresh, and must not un-revoke by
    /// loading a file older than the one in force. Whether it did.
    pub fn keep_newer(&mut self, slot: usize, other: &Ca, other_slot: usize) -> bool {
        let number = |c: &Option<LoadedCrl>| {
            c.as_ref()
                .and_then(|c| c.info.number.clone())
                .map(|n| (n.len(), n))
        };
        let (Some(mine), Some(theirs)) = (self.crls.get(slot), other.crls.get(other_slot)) else {
            return false;
        };
        if theirs.is_some() && number(theirs) > number(mine) {
            self.crls[slot] = theirs.clone();
            return true;
        }
        false
    }

    /// The serials (DER content octets) the CRL in `slot` lists.
    pub(crate) fn revoked_serials(&self, slot: usize) -> Vec<Vec<u8>> {
        self.crls
            .get(slot)
            .and_then(Option::as_ref)
            .map(|c| c.entries.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What each configured CRL slot holds.
    pub fn crl_infos(&self) -> impl Iterator<Item = Option<&CrlInfo>> {
        self.crls.iter().map(|c| c.as_ref().map(|c| &c.info))
    }

    pub(crate) fn loaded_crls(&self) -> Vec<&webpki::CertRevocationList<'static>> {
        self.crls.iter().flatten().map(|c| &*c.crl).collect()
    }

    /// The earliest nextUpdate of the loaded CRLs.
    pub(crate) fn earliest_next_update(&self) -> Option<u64> {
        self.crls.iter().flatten().map(|c| c.info.next_update).min()
    }

    /// When and why `serial` was revoked, by the first CRL that lists it.
    pub(crate) fn revocation_of(&self, serial: &[u8]) -> Option<(u64, Option<String>, String)> {
        self.crls.iter().flatten().find_map(|c| {
            c.entries
                .get(serial)
                .map(|(at, reason)| (*at, reason.clone(), c.info.issuer.clone()))
        })
    }
}

/// A `verify_path` check for webpki: the path's anchor (a CA certificate of `anchors` with
/// its name and key; several certificates of one CA, re-issued with the same key, are one
/// anchor to webpki) must have one certificate valid at `now` (`validity`: notBefore and
/// notAfter of each anchor, UNIX seconds). webpki keeps no validity for an anchor;
/// strongSwan checks it, and so does ixgw. Refusing a path makes webpki try the others, so
/// a CA rolled over to a new certificate keeps working.
pub fn anchor_in_time<'a>(
    anchors: &'a [TrustAnchor<'a>],
    validity: &'a [(u64, u64)],
    now: u64,
) -> impl Fn(&webpki::VerifiedPath<'_>) -> Result<(), webpki::Error> + 'a {
    use std::time::Duration;
    let unix = |secs| rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(secs));
    move |path| {
        let used = path.anchor();
        let mut same = anchors
            .iter()
            .zip(validity)
            .filter(|(a, _)| {
                a.subject == used.subject
                    && a.subject_public_key_info == used.subject_public_key_info
            })
            .map(|(_, v)| *v)
            .peekable();
        let first = same.peek().copied();
        if same.any(|(nb, na)| nb <= now && now <= na) {
            return Ok(());
        }
        match first {
            Some((nb, _)) if now < nb => Err(webpki::Error::CertNotValidYet {
                time: unix(now),
                not_before: unix(nb),
            }),
            Some((_, na)) => Err(webpki::Error::CertExpired {
                time: unix(now),
                not_after: unix(na),
            }),
            None => Ok(()),
        }
    }
}

/// The DER of the first X509 CRL block of PEM bytes, or the bytes themselves if DER.
fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, CrlError> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = item.map_err(|e| CrlError::Pem(e.to_string()))?;
        if kind == SectionKind::Crl {
            return Ok(der);
        }
    }
    Err(CrlError::Empty)
}

/// A CRL reason code as RFC 5280 § 5.3.1 names it, in words.
fn reason_text(code: u8) -> String {
    match code {
        0 => "unspecified",
        1 => "key compromise",
        2 => "CA compromise",
        3 => "affiliation changed",
        4 => "superseded",
        5 => "cessation of operation",
        6 => "certificate hold",
        8 => "remove from CRL",
        9 => "privilege withdrawn",
        10 => "AA compromise",
        other => return format!("reason code {other}"),
    }
    .to_string()
}
