//! The CAs a peer's certificate must chain to (one store per peer's `ca_file`), and the
//! CERTREQ hashes that name them [RFC 7296 § 3.7].

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::PkiError;
use crate::crypto::sha1;
use crate::tunnel::ipsec::ike::message::CA_HASH_LEN;

/// Trust anchors, the SHA-1 hash of each one's SubjectPublicKeyInfo, and each one's
/// validity: webpki keeps none for an anchor, strongSwan checks it, and so do we (a path
/// ends at a CA whose certificate, or one of the certificates with its name and key, is
/// valid).
#[derive(Debug, Clone)]
pub struct TrustStore {
    pub(super) anchors: Vec<TrustAnchor<'static>>,
    /// notBefore and notAfter of each CA certificate, in UNIX seconds.
    pub(super) validity: Vec<(u64, u64)>,
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
        let mut validity = Vec::with_capacity(cas.len());
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
            let v = cert.validity();
            let secs = |t: i64| u64::try_from(t).unwrap_or(0);
            validity.push((
                secs(v.not_before.timestamp()),
                secs(v.not_after.timestamp()),
            ));
            anchors.push(anchor);
        }
        Ok(TrustStore {
            anchors,
            validity,
            hashes,
        })
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

    /// The CAs with `anchor`'s name and key, by position, with their validity. Several
    /// certificates of one CA (re-issued with the same key) are one anchor to webpki.
    pub(super) fn matching<'a>(
        &'a self,
        anchor: &'a TrustAnchor<'_>,
    ) -> impl Iterator<Item = (usize, (u64, u64))> + 'a {
        self.anchors
            .iter()
            .zip(&self.validity)
            .enumerate()
            .filter(move |(_, (a, _))| {
                a.subject == anchor.subject
                    && a.subject_public_key_info == anchor.subject_public_key_info
            })
            .map(|(i, (_, &v))| (i, v))
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
