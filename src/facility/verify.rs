//! A facility certificate judged for one facility, at one time, against the CA bundles its
//! tenant trusts: the facility's [`FacilityState`] and, for the helpdesk, why.
//!
//! Order: the path first (rustls-webpki: validity of every certificate, signatures, basic and
//! name constraints, extended key usage, CRLs of every issuer in the path), then the CA
//! certificate's own validity (webpki keeps none for an anchor), then the binding (the
//! facility code it names, the WireGuard keys it carries, the public key a registry pins).
//! A certificate that chains to none of the tenant's CAs is `unknown_ca`, and the detail
//! says when it chains to a CA of the IX that this tenant does not trust.

use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{
    EndEntityCert, ExpirationPolicy, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter,
    KeyUsage, RequiredEkuNotFoundContext, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy,
};

use super::cert::FacilityCert;
use super::time::format_unix;
use super::trust::{Ca, CrlPolicy};
use super::FacilityState;
use crate::ids::FacilityCode;

/// What the certificate must be bound to.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The facility it must name.
    pub code: FacilityCode,
    /// The WireGuard static public keys of the facility's peers: it must carry each.
    pub wireguard_keys: &'a [[u8; 32]],
    /// The SubjectPublicKeyInfo (DER) the registry holds for the facility, when the
    /// certificate is one a peer presents: it must be the same key.
    pub pinned_spki: Option<&'a [u8]>,
}

/// The judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: FacilityState,
    /// One line for logs and the helpdesk: why this state.
    pub detail: String,
    /// The CA bundle the certificate chains to, if any of the tenant's does.
    pub ca: Option<String>,
    /// The certificate's notAfter, UNIX seconds.
    pub not_after: u64,
    /// When the verdict can change by time alone (a notBefore or notAfter in the path, a
    /// CRL's nextUpdate): judge again then.
    pub recheck_at: Option<u64>,
}

/// Accepts no extended key usage, or one listing serverAuth, clientAuth, id-kp-ipsecIKE or
/// anyExtendedKeyUsage: what facility routers (IKE) and SSL-VPN clients (TLS) use.
/// strongSwan's `pki --flag serverAuth --flag clientAuth` certificates carry both.
pub struct FacilityUsage;

impl FacilityUsage {
    const ACCEPTED: [&'static [u8]; 4] = [
        // id-kp-serverAuth, id-kp-clientAuth, id-kp-ipsecIKE [RFC 4945 § 5.1.3.12]
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11],
        // anyExtendedKeyUsage [RFC 5280 § 4.2.1.12]
        &[0x55, 0x1d, 0x25, 0x00],
    ];
}

impl ExtendedKeyUsageValidator for FacilityUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if FacilityUsage::ACCEPTED
                .iter()
                .any(|oid| KeyPurposeId::new(oid) == id)
            {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(
            RequiredEkuNotFoundContext {
                required: KeyUsage::client_auth(),
                present,
            },
        ))
    }
}

/// Judges `cert` for the facility `expect` names at `now` (UNIX seconds): `trusted` are the
/// tenant's CA bundles, `others` the IX's other bundles (only to name them in the detail).
pub fn verify(
    cert: &FacilityCert,
    expect: &Expect<'_>,
    trusted: &[&Ca],
    others: &[&Ca],
    now: u64,
) -> Verdict {
    let verdict = |state, detail: String, ca: Option<&Ca>| Verdict {
        state,
        detail,
        ca: ca.map(|c| c.name.clone()),
        not_after: cert.not_after,
        recheck_at: recheck_at(cert, ca, now),
    };
    let Ok(ee) = EndEntityCert::try_from(cert.leaf()) else {
        return verdict(
            FacilityState::Invalid,
            "the certificate does not parse as an end-entity certificate".into(),
            None,
        );
    };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now));
    // The CA the path ends at: the first trusted bundle that knows the issuer.
    let mut decided = None;
    for &ca in trusted {
        match path(&ee, cert, ca, time, false) {
            Err(webpki::Error::UnknownIssuer) => continue,
            _ => {
                decided = Some(ca);
                break;
            }
        }
    }
    let Some(ca) = decided else {
        let other = others.iter().find(|ca| {
            !matches!(
                path(&ee, cert, ca, time, false),
                Err(webpki::Error::UnknownIssuer)
            )
        });
        let detail = match other {
            Some(o) => format!(
                "issued by CA {} ({}), which this tenant does not trust",
                o.name, cert.issuer
            ),
            None => format!(
                "issued by {}, which is not a CA this tenant trusts",
                cert.issuer
            ),
        };
        return verdict(FacilityState::UnknownCa, detail, None);
    };
    if let Err(e) = path(&ee, cert, ca, time, true) {
        let (state, detail) = path_refusal(e, cert, ca, now);
        return verdict(state, detail, Some(ca));
    }
    if let Err(detail) = binding(cert, expect) {
        return verdict(FacilityState::BindingMismatch, detail, Some(ca));
    }
    verdict(
        FacilityState::Valid,
        format!(
            "valid until {}, issued by CA {}",
            format_unix(cert.not_after),
            ca.name
        ),
        Some(ca),
    )
}

/// Validates the path to `ca`; with `revocation`, also against its CRLs.
fn path(
    ee: &EndEntityCert<'_>,
    cert: &FacilityCert,
    ca: &Ca,
    time: UnixTime,
    revocation: bool,
) -> Result<(), webpki::Error> {
    let mut intermediates: Vec<CertificateDer<'_>> = cert.intermediates().to_vec();
    intermediates.extend(ca.certs.iter().cloned());
    let crls = ca.loaded_crls();
    let options = if revocation && ca.checks_revocation() {
        if crls.is_empty() {
            return Err(webpki::Error::UnknownRevocationStatus);
        }
        let expiration = match ca.policy {
            CrlPolicy::FailClosed => ExpirationPolicy::Enforce,
            CrlPolicy::FailOpen => ExpirationPolicy::Ignore,
        };
        let builder = RevocationOptionsBuilder::new(&crls)
            .map_err(|_| webpki::Error::UnknownRevocationStatus)?;
        Some(
            builder
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Deny)
                .with_expiration_policy(expiration)
                .build(),
        )
    } else {
        None
    };
    // webpki keeps no validity for a trust anchor: a path through an expired CA
    // certificate is refused, as strongSwan refuses it.
    let in_time = super::trust::anchor_in_time(&ca.anchors, &ca.validity, time.as_secs());
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &ca.anchors,
        &intermediates,
        time,
        FacilityUsage,
        options,
        Some(&in_time),
    )
    .map(drop)
}

/// The state and the helpdesk's line for a path that does not validate.
fn path_refusal(
    e: webpki::Error,
    cert: &FacilityCert,
    ca: &Ca,
    now: u64,
) -> (FacilityState, String) {
    use webpki::Error as E;
    let which = |leaf: bool| {
        if leaf {
            "the certificate".to_string()
        } else {
            format!("a CA certificate of its chain (CA {})", ca.name)
        }
    };
    match e {
        E::CertExpired { .. } => {
            let leaf = now > cert.not_after;
            let at = if leaf {
                format!(" at {}", format_unix(cert.not_after))
            } else {
                String::new()
            };
            (
                FacilityState::Expired,
                format!("{} expired{at}", which(leaf)),
            )
        }
        E::CertNotValidYet { .. } => {
            let leaf = now < cert.not_before;
            let at = if leaf {
                format!(" before {}", format_unix(cert.not_before))
            } else {
                String::new()
            };
            (
                FacilityState::NotYetValid,
                format!("{} is not valid{at}", which(leaf)),
            )
        }
        E::CertRevoked => match ca.revocation_of(&cert.raw_serial()) {
            Some((at, reason, issuer)) => (
                FacilityState::Revoked,
                format!(
                    "serial {} revoked at {}{} by the CRL of {issuer}",
                    cert.serial,
                    format_unix(at),
                    reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            ),
            None => (
                FacilityState::Revoked,
                format!("a CA certificate of its chain is revoked (CA {})", ca.name),
            ),
        },
        E::CrlExpired { .. } => (
            FacilityState::CrlExpired,
            format!(
                "a CRL of CA {} is past its nextUpdate ({}) and the CA fails closed",
                ca.name,
                ca.earliest_next_update()
                    .map(format_unix)
                    .unwrap_or_default()
            ),
        ),
        E::UnknownRevocationStatus => (
            FacilityState::RevocationUnknown,
            format!(
                "no CRL of CA {} decides its revocation status (none loaded from its issuer {})",
                ca.name, cert.issuer
            ),
        ),
        E::InvalidCrlSignatureForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => (
            FacilityState::RevocationUnknown,
            format!("the signature of a CRL of CA {} does not verify", ca.name),
        ),
        other => (
            FacilityState::Invalid,
            format!("its chain to CA {} does not validate: {other}", ca.name),
        ),
    }
}

/// The binding of `cert` to the facility and its credentials, or what is wrong with it.
fn binding(cert: &FacilityCert, expect: &Expect<'_>) -> Result<(), String> {
    let code = match cert.codes.as_slice() {
        [] => {
            return Err(
                "it names no facility code (subject serialNumber, or a subjectAltName URI \
                 urn:ixgw:facility:CODE)"
                    .into(),
            )
        }
        [one] => one,
        many => {
            return Err(format!(
                "it names several facility codes: {}",
                many.join(", ")
            ))
        }
    };
    let named = FacilityCode::parse(code)
        .map_err(|e| format!("it names {code}, which is not a facility code: {e}"))?;
    if named != expect.code {
        return Err(format!("it names facility {named}, not {}", expect.code));
    }
    for key in expect.wireguard_keys {
        if !cert.wireguard_keys.contains(key) {
            return Err(format!(
                "it does not bind the WireGuard key {} (subjectAltName URI urn:ixgw:wireguard-key:)",
                base64::engine::general_purpose::STANDARD.encode(key)
            ));
        }
    }
    if let Some(spki) = expect.pinned_spki {
        if spki != cert.spki.as_slice() {
            return Err(
                "its public key is not the one of the certificate the registry holds for this facility"
                    .into(),
            );
        }
    }
    Ok(())
}

/// The next time after `now` at which a bound in the path or a CRL's nextUpdate passes.
fn recheck_at(cert: &FacilityCert, ca: Option<&Ca>, now: u64) -> Option<u64> {
    let mut times = vec![cert.not_before, cert.not_after.saturating_add(1)];
    for der in cert.intermediates() {
        if let Ok(c) = super::cert::parse(0, der) {
            let v = c.validity();
            times.push(u64::try_from(v.not_before.timestamp()).unwrap_or(0));
            times.push(
                u64::try_from(v.not_after.timestamp())
                    .unwrap_or(0)
                    .saturating_add(1),
            );
        }
    }
    if let Some(ca) = ca {
        for &(nb, na) in &ca.validity {
            times.push(nb);
            times.push(na.saturating_add(1));
        }
        if ca.policy == CrlPolicy::FailClosed {
            // webpki holds a CRL expired from its nextUpdate on.
            if let Some(t) = ca.earliest_next_update() {
                times.push(t);
            }
        }
    }
    times.into_iter().filter(|&t| t > now).min()
}
