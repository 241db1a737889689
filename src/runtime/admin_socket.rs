//! The admin socket: a Unix socket (never a network port) where `ixgw show` asks the running
//! daemon about its attachments and peers (`GET /show`, also `/metrics`, `/live`, `/ready`).
//!
//! It is made `0660` so that root and the members of the daemon's group may ask. A socket
//! file another live daemon answers on is left alone (this one then has none, and says so);
//! a stale one is replaced; anything else at the path (a file the path names by mistake) is
//! never touched: the daemon then runs without the socket and says why. The socket is
//! removed when the daemon stops.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::admin::{self, AdminState, ShowSource};

/// The admin socket being served.
pub(crate) struct AdminSocket {
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminSocket {
    /// Binds `path` and serves `state` with `/show` on it. `None` (logged) when it cannot:
    /// the gateway runs without it. `explicit`: the file named the path (a failure is then a
    /// warning, else a notice: the default directory needs the systemd unit or root).
    pub(crate) fn start(
        path: &Path,
        explicit: bool,
        state: AdminState,
        show: ShowSource,
    ) -> Option<AdminSocket> {
        let listener = match bind(path) {
            Ok(l) => l,
            Err(e) => {
                let path = path.display();
                if explicit {
                    tracing::warn!(
                        "admin socket {path}: {e}; `ixgw show` cannot reach this daemon"
                    );
                } else {
                    tracing::info!("admin socket {path}: {e}; `ixgw show` cannot reach this daemon (set metrics.admin_socket)");
                }
                return None;
            }
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state.with_show(show), async move {
            let _ = stopped.await;
        }));
        tracing::info!(socket = %path.display(), "admin socket ready for `ixgw show`");
        Some(AdminSocket {
            path: path.to_path_buf(),
            stop: Some(stop),
            task,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket file.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
        if is_socket(&self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something that is not a socket is there; it is left alone",
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process answers on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(listener)
}

/// What `ixgw show` sends: one request, the whole answer.
pub fn fetch(path: &Path) -> Result<crate::admin::show::Report, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the daemon at {}: {e} (is ixgw running? is metrics.admin_socket set to this path? root or the daemon's group may connect)",
            path.display()
        )
    })?;
    let timeout = Some(std::time::Duration::from_secs(10));
    let _ = s.set_read_timeout(timeout);
    let _ = s.set_write_timeout(timeout);
    s.write_all(b"GET /show HTTP/1.0\r\nHost: ixgw\r\n\r\n")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{}: not an HTTP answer", path.display()))?;
    let head = String::from_utf8_lossy(&reply[..split]);
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(format!(
            "{}: the daemon answered `{status}`",
            path.display()
        ));
    }
    serde_json::from_slice(&reply[split + 4..]).map_err(|e| {
        format!(
            "{}: the daemon's answer is not a report: {e}",
            path.display()
        )
    })
}

/// Builds the `/show` source of a running gateway.
pub(crate) fn source(
    gateway: String,
    hub: Arc<crate::metrics::MetricsHub>,
    shown: Arc<arc_swap::ArcSwap<super::show::Shown>>,
    facilities: Arc<super::facilities::Facilities>,
) -> ShowSource {
    Arc::new(move || {
        let tables: Vec<_> = (0..hub.workers()).filter_map(|i| hub.current(i)).collect();
        let certificates = facilities.with(super::show::certificates);
        super::show::report(
            &gateway,
            &shown.load(),
            &tables,
            &certificates,
            std::time::Instant::now(),
            std::time::SystemTime::now(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ixgw-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_never_removed() {
        let d = dir("file");
        let path = d.join("audit.log");
        std::fs::write(&path, "precious").unwrap();
        let e = bind(&path).expect_err("refused");
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_live_socket_is_left_alone_and_a_stale_one_replaced() {
        let d = dir("sock");
        let path = d.join("ixgw.sock");
        let live = bind(&path).expect("binds");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let e = bind(&path).expect_err("a second daemon does not take it");
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        drop(live); // the file stays, nobody answers: stale
        assert!(is_socket(&path));
        let _again = bind(&path).expect("a stale socket is replaced");
        let _ = std::fs::remove_dir_all(&d);
    }
}
