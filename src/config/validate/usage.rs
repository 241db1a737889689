//! `usage:`: where usage records for cost sharing go and how often. The directory is created
//! by the daemon; here it only must not be something else than a directory.

use super::*;
use crate::config::{
    UsageConfig, USAGE_DEFAULT_DIR, USAGE_DEFAULT_INTERVAL, USAGE_INTERVAL_DIVIDES,
};

impl Validator {
    pub(super) fn usage(&self, u: &raw::Usage) -> Result<UsageConfig, ConfigError> {
        let dir = match &u.dir {
            Some(d) => {
                self.nonempty("usage.dir", d)?;
                let given = Path::new(d.trim());
                if given.is_relative() {
                    self.dir.join(given)
                } else {
                    given.to_path_buf()
                }
            }
            None => PathBuf::from(USAGE_DEFAULT_DIR),
        };
        if dir.exists() && !dir.is_dir() {
            return Err(self.err(
                "usage.dir",
                Problem::UsageNotDirectory {
                    dir: dir.display().to_string(),
                },
            ));
        }
        let interval = match &u.interval {
            Some(s) => {
                let t = self.duration("usage.interval", s)?;
                let secs = t.as_secs();
                if secs == 0 || USAGE_INTERVAL_DIVIDES % secs != 0 {
                    return Err(self.err(
                        "usage.interval",
                        Problem::UsageInterval {
                            value: s.trim().to_string(),
                        },
                    ));
                }
                t
            }
            None => USAGE_DEFAULT_INTERVAL,
        };
        Ok(UsageConfig { dir, interval })
    }
}
