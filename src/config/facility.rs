//! The facility registry and the CA bundles facility certificates chain to, as validated.

use std::path::PathBuf;

pub use crate::facility::CrlPolicy;
use crate::ids::FacilityCode;

/// A CA bundle facility certificates may chain to (`trust:`), chosen per tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustBundle {
    pub name: String,
    pub ca_file: PathBuf,
    /// The file's bytes as read and checked (PEM or DER CA certificates).
    pub bundle: Vec<u8>,
    /// CRL files, re-read by the daemon when they change.
    pub crl_files: Vec<PathBuf>,
    pub crl_expired: CrlPolicy,
}

/// A facility of the registry (`facilities:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Facility {
    pub code: FacilityCode,
    pub name: String,
    pub tenant: String,
    pub certificate: FacilityCertificate,
}

/// Where a facility's certificate comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FacilityCertificate {
    /// `none`: the facility needs no certificate (its traffic is not vouched for).
    None,
    /// `presented`: the certificate its IPsec peer authenticates with.
    Presented,
    /// A certificate file (PEM: the leaf, then any intermediates). For an IPsec facility it
    /// also pins the key the peer must authenticate with.
    File { path: PathBuf, pem: Vec<u8> },
}

/// Something `ixgw check` reports without refusing the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    /// The line of the key; `None` when the warning is about a key the file lacks.
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{line}: {}: warning: {}",
                self.file, self.key, self.message
            ),
            None => write!(f, "{}: {}: warning: {}", self.file, self.key, self.message),
        }
    }
}
