//! The audit trail's settings (`audit:`), as validated.

use std::path::PathBuf;

/// Queue length bounds: at least a burst of a thousand records, at most a million (each
/// slot is reserved at start).
pub const AUDIT_QUEUE: std::ops::RangeInclusive<u64> = 1024..=1_048_576;
pub const AUDIT_DEFAULT_QUEUE: usize = 65_536;

/// Where and what the audit trail writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// JSON lines appended to this file (relative paths resolved against the configuration
    /// file's directory); `None`: no file.
    pub file: Option<PathBuf>,
    pub journald: Journald,
    /// Records waiting to be written; beyond it records are dropped and counted.
    pub queue: usize,
    /// Whether flow records (start and end) are written.
    pub flows: bool,
}

/// Whether records also go to journald.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journald {
    /// When run under systemd (`$JOURNAL_STREAM` or `$INVOCATION_ID` is set).
    Auto,
    On,
    Off,
}

impl Journald {
    /// Whether to send to journald, given a lookup of the environment.
    pub fn wanted(self, env_set: impl Fn(&str) -> bool) -> bool {
        match self {
            Journald::On => true,
            Journald::Off => false,
            Journald::Auto => env_set("JOURNAL_STREAM") || env_set("INVOCATION_ID"),
        }
    }
}
