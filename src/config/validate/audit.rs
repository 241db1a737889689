//! `audit:`: where the audit trail goes. The file itself is created by the daemon; its
//! directory must exist when the configuration is checked.

use super::*;
use crate::config::{AuditConfig, Journald, Warning, AUDIT_DEFAULT_QUEUE, AUDIT_QUEUE};

impl Validator {
    pub(super) fn audit(
        &self,
        a: &raw::Audit,
        warnings: &mut Vec<Warning>,
    ) -> Result<AuditConfig, ConfigError> {
        let journald = match a.journald.as_deref().map(str::trim) {
            None | Some("auto") => Journald::Auto,
            Some("on") => Journald::On,
            Some("off") => Journald::Off,
            Some(other) => {
                return Err(self.err(
                    "audit.journald",
                    Problem::Choice {
                        value: other.to_string(),
                        expected: "auto, on or off",
                    },
                ))
            }
        };
        let queue = match a.queue {
            Some(n) => {
                self.in_range("audit.queue", n, AUDIT_QUEUE)?;
                usize::try_from(n)
                    .map_err(|_| self.err("audit.queue", out_of_range(n, AUDIT_QUEUE)))?
            }
            None => AUDIT_DEFAULT_QUEUE,
        };
        let file = match &a.file {
            Some(f) => Some(self.audit_file(f)?),
            None => None,
        };
        match (&file, journald) {
            (None, Journald::Off) => return Err(self.err("audit.journald", Problem::AuditNowhere)),
            (None, Journald::Auto) => warnings.push(self.warning(
                "audit",
                "the audit trail has no `file`: it is written to journald when run under systemd, else nowhere".into(),
            )),
            _ => {}
        }
        Ok(AuditConfig {
            file,
            journald,
            queue,
            flows: a.flows.unwrap_or(true),
        })
    }

    /// The audit file's path: relative to the configuration's directory, in a directory
    /// that exists, and not a directory itself.
    fn audit_file(&self, s: &str) -> Result<PathBuf, ConfigError> {
        const KEY: &str = "audit.file";
        self.nonempty(KEY, s)?;
        let given = Path::new(s.trim());
        let path = if given.is_relative() {
            self.dir.join(given)
        } else {
            given.to_path_buf()
        };
        if path.is_dir() || s.trim().ends_with('/') {
            return Err(self.err(
                KEY,
                Problem::AuditIsDirectory {
                    file: path.display().to_string(),
                },
            ));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(self.err(
                KEY,
                Problem::AuditDirectory {
                    file: path.display().to_string(),
                    dir: dir.display().to_string(),
                },
            ));
        }
        Ok(path)
    }
}
