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

/// A bilateral agreement: the consumer's hosts (or some of its facilities) may open flows to
/// what the provider offers, once both sides approved it, inside its validity window.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub name: String,
    pub consumer: String,
    pub provider: String,
    /// What it grants, in the form of a policy (`from` the consumer, `to` the provider).
    pub grant: super::Policy,
    /// The window, UNIX seconds: in force from `valid_from` (inclusive) until `valid_until`
    /// (exclusive); either end may be open.
    pub valid_from: Option<u64>,
    pub valid_until: Option<u64>,
    /// Who approved it on each side (free text: name, date, reference); `None`: not approved.
    pub approved_by_provider: Option<String>,
    pub approved_by_consumer: Option<String>,
}

impl Agreement {
    /// Both sides approved it.
    pub fn approved(&self) -> bool {
        self.approved_by_provider.is_some() && self.approved_by_consumer.is_some()
    }

    /// Approved, and `now` (UNIX seconds) inside its window.
    pub fn in_force_at(&self, now: u64) -> bool {
        self.approved()
            && self.valid_from.is_none_or(|f| now >= f)
            && self.valid_until.is_none_or(|u| now < u)
    }
}

/// Something a flow may be admitted by: a policy (the IX operator's own grant, always in
/// force) or an approved agreement (in force inside its window).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant<'a> {
    pub policy: &'a super::Policy,
    /// The agreement it comes from, if any.
    pub agreement: Option<&'a Agreement>,
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
