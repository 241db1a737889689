//! Validation: raw structures → [`super::Config`].

use std::path::Path;

use super::{Config, ConfigError};

pub(super) fn validate(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let _ = (text, path);
    todo!()
}
