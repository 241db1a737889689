//! The CAs a peer's certificate must chain to (one store per peer's `ca_file`), and the
//! CERTREQ hashes that name them [RFC 7296 § 3.7].

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::PkiError;
use crate::crypto::sha1;
use crate::tunnel::ipsec::ike::message::CA_HASH_LEN;

/// Trust anchors, and the SHA-1 hash of each one's SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct TrustStore {
    pub(super) anchors: Vec<TrustAnchor<'static>>,
    hashes: Vec<[u8; CA_HASH_LEN]>,
}

impl TrustStore {
    /// The CA certificates, DER. Each must be a CA: basicConstraints with cA set, or a v1
    /// certificate (which has no extensions), as strongSwan accepts them.
    pub fn from_der(cas: &[Vec<u8>]) -> Result<TrustStore, PkiError> {
        if cas.is_empty() {
            return Err(PkiError::NoCertificate);
        }
        let mut anchors = Vec::with_capacity(cas.len());
        let mut hashes = Vec::with_capacity(cas.len());
        for (index, der) in cas.iter().enumerate() {
            let bad = |reason: String| PkiError::Certificate { index, reason };
            let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
            let is_ca = match cert.basic_constraints() {
                Ok(Some(bc)) => bc.value.ca,
                Ok(None) => cert.version().0 == 0,
                Err(e) => return Err(bad(e.to_string())),
            };
            if !is_ca {
                return Err(PkiError::NotACa { index });
            }
            let der = CertificateDer::from(der.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| bad(e.to_string()))?
                .to_owned();
            hashes.push(sha1(&[cert.public_key().raw]));
            anchors.push(anchor);
        }
        Ok(TrustStore { anchors, hashes })
    }

    /// The CA certificates of a PEM file (a `ca_file`).
    pub fn from_pem(pem: &[u8]) -> Result<TrustStore, PkiError> {
        let cas = CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PkiError::Pem(e.to_string()))?;
        TrustStore::from_der(&cas)
    }

    /// SHA-1 of each CA's SubjectPublicKeyInfo, in the order given: the data of our CERTREQ
    /// payload, concatenated [RFC 7296 § 3.7].
    pub fn certreq_hashes(&self) -> &[[u8; CA_HASH_LEN]] {
        &self.hashes
    }

    /// The Certification Authority field of a CERTREQ payload naming every CA.
    pub fn certreq_data(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// Whether a hash of a peer's CERTREQ names one of these CAs.
    pub fn accepts(&self, certreq_hash: &[u8; CA_HASH_LEN]) -> bool {
        self.hashes.contains(certreq_hash)
    }

    /// The number of CAs.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Always false: a store has at least one CA.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}
