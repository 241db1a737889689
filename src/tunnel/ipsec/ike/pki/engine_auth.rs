//! The PKI behind the IKE engine's certificate seam ([`CertificateAuth`]): our credential
//! signs, the peer's CAs verify. Time comes from a clock the caller passes in (the runtime
//! passes the system clock, tests a fixed one), so this stays sans-IO.

use std::sync::Arc;

use super::{verify_peer, AuthError, LocalCredential, TrustStore, VERIFY_HASHES};
use crate::facility::{FacilityState, Presenter};
use crate::ids::FacilityCode;
use crate::tunnel::ipsec::ike::message::{Auth, AuthMethod, Id};
use crate::tunnel::ipsec::ike::sa::{CertAuthError, CertificateAuth, Identity};

/// Certificate authentication of one peer: the gateway's credential, the CAs trusted for
/// that peer, and the facility whose certificate the peer must present.
pub struct PkiAuth {
    local: Arc<LocalCredential>,
    trust: TrustStore,
    /// Seconds since the UNIX epoch, for certificate validity.
    clock: fn() -> u64,
    /// The peer's facility and where its certificate is judged (the facility registry);
    /// `None`: no facility certificate is checked.
    facility: Option<(FacilityCode, String, Arc<dyn Presenter>)>,
}

impl PkiAuth {
    pub fn new(local: Arc<LocalCredential>, trust: TrustStore, clock: fn() -> u64) -> PkiAuth {
        PkiAuth {
            local,
            trust,
            clock,
            facility: None,
        }
    }

    /// The peer authenticates for `facility`: after the IKE checks, its chain must be the
    /// facility's valid certificate by `presenter`'s judgement (tenant's CAs, CRLs, facility
    /// code, registry pin).
    pub fn with_facility(
        mut self,
        facility: FacilityCode,
        peer: &str,
        presenter: Arc<dyn Presenter>,
    ) -> PkiAuth {
        self.facility = Some((facility, peer.to_string(), presenter));
        self
    }
}

/// The refusal for a facility certificate the registry does not accept.
fn facility_refusal(state: FacilityState) -> CertAuthError {
    match state {
        FacilityState::Revoked => CertAuthError::Revoked,
        FacilityState::Expired => CertAuthError::Expired,
        FacilityState::NotYetValid => CertAuthError::NotYetValid,
        FacilityState::UnknownCa | FacilityState::Invalid => CertAuthError::Untrusted,
        FacilityState::CrlExpired => CertAuthError::CrlExpired,
        FacilityState::RevocationUnknown => CertAuthError::RevocationUnknown,
        FacilityState::BindingMismatch
        | FacilityState::NotPresented
        | FacilityState::NotRequired
        | FacilityState::Valid => CertAuthError::FacilityMismatch,
    }
}

impl CertificateAuth for PkiAuth {
    fn certificate_request(&self) -> Option<Vec<u8>> {
        Some(self.trust.certreq_data())
    }

    fn certificates(&self) -> Vec<Vec<u8>> {
        self.local.certificates().map(|c| c.data.to_vec()).collect()
    }

    /// RFC 7427 signatures with SHA-2: strongSwan always announces the hashes it verifies.
    fn sign(&self, signed_octets: &[u8]) -> Result<(AuthMethod, Vec<u8>), CertAuthError> {
        let auth = self
            .local
            .sign(signed_octets, Some(&VERIFY_HASHES))
            .map_err(|_| CertAuthError::Sign)?;
        Ok((auth.method, auth.data))
    }

    fn verify(
        &self,
        id: &Identity,
        certificates: &[&[u8]],
        method: AuthMethod,
        auth: &[u8],
        signed_octets: &[u8],
    ) -> Result<(), CertAuthError> {
        if certificates.is_empty() {
            return Err(CertAuthError::NoCertificate);
        }
        let id = Id::new(id.id_type, &id.data);
        let auth = Auth { method, data: auth };
        let now = (self.clock)();
        verify_peer(&self.trust, certificates, now, &id, &auth, signed_octets).map_err(
            |e| match e {
                AuthError::Malformed => CertAuthError::Malformed,
                AuthError::Untrusted => CertAuthError::Untrusted,
                AuthError::Expired => CertAuthError::Expired,
                AuthError::NotYetValid => CertAuthError::NotYetValid,
                AuthError::KeyUsage => CertAuthError::KeyUsage,
                AuthError::IdMismatch => CertAuthError::IdMismatch,
                AuthError::BadSignature | AuthError::PskMismatch => CertAuthError::Signature,
                AuthError::WeakAlgorithm => CertAuthError::WeakAlgorithm,
                AuthError::UnsupportedAlgorithm => CertAuthError::UnsupportedAlgorithm,
            },
        )?;
        // The signature is the peer's: now, is its certificate the facility's?
        if let Some((code, peer, presenter)) = &self.facility {
            presenter
                .present(*code, peer, certificates, now)
                .map_err(|v| facility_refusal(v.state))?;
        }
        Ok(())
    }
}
