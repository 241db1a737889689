//! The paths the operator's commands (`ixgw show`, `ixgw usage`) need from a configuration,
//! read without validating the rest of it: no key, CA or CRL file is opened, so a member of
//! the daemon's group who may not read `/etc/ixgw/keys` can still ask the daemon and read the
//! usage records. Relative paths and defaults are those of the full validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{read_limited, CONFIG_FILE_LIMIT, DEFAULT_ADMIN_SOCKET, USAGE_DEFAULT_DIR};

/// What [`operator_paths`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPaths {
    /// `metrics.admin_socket` (`None`: `none`).
    pub admin_socket: Option<PathBuf>,
    /// `usage.dir` (`None`: no `usage:` section).
    pub usage_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Root {
    metrics: Option<Metrics>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Metrics {
    admin_socket: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    dir: Option<String>,
}

/// The operator paths of the configuration file at `path`.
pub fn operator_paths(path: &Path) -> Result<OperatorPaths, String> {
    let text = read_limited(path, CONFIG_FILE_LIMIT).map_err(|e| e.to_string())?;
    operator_paths_in(&text, path)
}

/// The same for the text of a file at `path`.
pub fn operator_paths_in(text: &str, path: &Path) -> Result<OperatorPaths, String> {
    let root: Root = yaml_serde::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let resolve = |s: &str| dir.join(s.trim());
    let admin_socket = match root.metrics.and_then(|m| m.admin_socket) {
        Some(s) if s.trim() == "none" => None,
        Some(s) => Some(resolve(&s)),
        None => Some(PathBuf::from(DEFAULT_ADMIN_SOCKET)),
    };
    let usage_dir = root.usage.map(|u| {
        u.dir
            .map_or_else(|| PathBuf::from(USAGE_DEFAULT_DIR), |d| resolve(&d))
    });
    Ok(OperatorPaths {
        admin_socket,
        usage_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_without_the_rest_and_resolved_as_validation_does() {
        let at = Path::new("/etc/ixgw/ixgw.yaml");
        let text = "ix: {name: x}\nmetrics:\n  admin_socket: run/ixgw.sock\nusage:\n  dir: /srv/usage\ntenants:\n  - private_key_file: /nonexistent\n";
        let p = operator_paths_in(text, at).unwrap();
        assert_eq!(
            p.admin_socket,
            Some(PathBuf::from("/etc/ixgw/run/ixgw.sock"))
        );
        assert_eq!(p.usage_dir, Some(PathBuf::from("/srv/usage")));
        let p = operator_paths_in("usage: {}\n", at).unwrap();
        assert_eq!(p.admin_socket, Some(PathBuf::from(DEFAULT_ADMIN_SOCKET)));
        assert_eq!(p.usage_dir, Some(PathBuf::from(USAGE_DEFAULT_DIR)));
        let p = operator_paths_in("metrics: {admin_socket: none}\n", at).unwrap();
        assert_eq!((p.admin_socket, p.usage_dir), (None, None));
        assert!(operator_paths_in("metrics: [", at).is_err());
    }

    /// The full validation and this agree on the example configuration.
    #[test]
    fn the_example_agrees_with_the_full_validation() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ixgw.yaml"));
        let full = crate::config::Config::load(path).unwrap();
        let p = operator_paths(path).unwrap();
        assert_eq!(p.admin_socket, full.metrics.admin_socket);
        assert_eq!(p.usage_dir, full.usage.map(|u| u.dir));
    }
}
