//! The PKI behind the IKE engine's certificate seam ([`CertificateAuth`]): our credential
//! signs, the peer's CAs verify. Time comes from a clock the caller passes in (the runtime
//! passes the system clock, tests a fixed one), so this stays sans-IO.

use std::sync::Arc;

use super::{verify_peer, AuthError, LocalCredential, TrustStore, VERIFY_HASHES};
use crate::tunnel::ipsec::ike::message::{Auth, AuthMethod, Id};
use crate::tunnel::ipsec::ike::sa::{CertAuthError, CertificateAuth, Identity};

/// Certificate authentication of one peer: the gateway's credential and the CAs trusted for
/// that peer.
pub struct PkiAuth {
    local: Arc<LocalCredential>,
    trust: TrustStore,
    /// Seconds since the UNIX epoch, for certificate validity.
    clock: fn() -> u64,
}

impl PkiAuth {
    pub fn new(local: Arc<LocalCredential>, trust: TrustStore, clock: fn() -> u64) -> PkiAuth {
        PkiAuth {
            local,
            trust,
            clock,
        }
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
        verify_peer(
            &self.trust,
            certificates,
            (self.clock)(),
            &id,
            &auth,
            signed_octets,
        )
        .map(drop)
        .map_err(|e| match e {
            AuthError::Malformed => CertAuthError::Malformed,
            AuthError::Untrusted => CertAuthError::Untrusted,
            AuthError::Expired => CertAuthError::Expired,
            AuthError::NotYetValid => CertAuthError::NotYetValid,
            AuthError::KeyUsage => CertAuthError::KeyUsage,
            AuthError::IdMismatch => CertAuthError::IdMismatch,
            AuthError::BadSignature | AuthError::PskMismatch => CertAuthError::Signature,
            AuthError::WeakAlgorithm => CertAuthError::WeakAlgorithm,
            AuthError::UnsupportedAlgorithm => CertAuthError::UnsupportedAlgorithm,
        })
    }
}
