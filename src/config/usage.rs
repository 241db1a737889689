//! Usage records for cost sharing (`usage:`), as validated.

use std::path::PathBuf;
use std::time::Duration;

/// Where usage records go when `usage:` names no `dir` (systemd's `StateDirectory=ixgw`).
pub const USAGE_DEFAULT_DIR: &str = "/var/lib/ixgw/usage";
/// How often a record is written unless `usage.interval` says otherwise.
pub const USAGE_DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// An interval must divide an hour, so that records never straddle an hour (nor a day or a
/// month in UTC or JST, whose midnights are whole hours apart).
pub const USAGE_INTERVAL_DIVIDES: u64 = 3600;

/// Where and how often the daemon persists its traffic counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageConfig {
    /// One file of JSON lines per UTC day is appended to in this directory (relative paths
    /// resolved against the configuration file's directory); created at start if missing.
    pub dir: PathBuf,
    /// Records end on multiples of this since the UNIX epoch; it divides an hour.
    pub interval: Duration,
}
