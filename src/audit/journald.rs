//! journald's native protocol: one datagram per record to `/run/systemd/journal/socket`,
//! each field `NAME=value\n`, or, when the value holds a newline, `NAME\n`, its length as a
//! little-endian 64-bit integer, the value and `\n` (systemd.journal-fields(7),
//! "Native Journal Protocol" in systemd's documentation).
//!
//! The socket is non-blocking: a journald that does not keep up costs a failed record
//! (`ixgw_audit_records_total{sink="journald",result="failed"}`), never a wait.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::record::Body;
use super::SinkCounters;

pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// Appends the fields to `out` in the native protocol.
pub fn encode(fields: &[(&str, &[u8])], out: &mut Vec<u8>) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains(&b'\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
        } else {
            out.push(b'=');
            out.extend_from_slice(value);
        }
        out.push(b'\n');
    }
}

/// A datagram socket to journald.
pub(crate) struct Sink {
    socket: UnixDatagram,
    path: PathBuf,
    buf: Vec<u8>,
    /// The last send failed (logged once until one succeeds).
    failing: bool,
}

impl Sink {
    pub(crate) fn new(path: PathBuf) -> io::Result<Sink> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Sink {
            socket,
            path,
            buf: Vec::with_capacity(2048),
            failing: false,
        })
    }

    /// Sends one record (`line` is its JSON) and counts the outcome.
    pub(crate) fn send(&mut self, body: &Body<'_>, line: &[u8], counters: &SinkCounters) {
        let message = body.summary();
        let priority = [b'0' + body.priority()];
        self.buf.clear();
        encode(
            &[
                ("MESSAGE", message.as_bytes()),
                ("PRIORITY", &priority),
                ("SYSLOG_IDENTIFIER", b"ixgw-audit"),
                ("IXGW_EVENT", body.name().as_bytes()),
                ("IXGW_AUDIT", line),
            ],
            &mut self.buf,
        );
        let sent = match self.socket.send_to(&self.buf, &self.path) {
            Ok(n) if n == self.buf.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "sent {n} of {} bytes",
                self.buf.len()
            ))),
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::Relaxed);
                if self.failing {
                    tracing::info!(socket = %self.path.display(), "journald takes audit records again");
                    self.failing = false;
                }
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if !self.failing {
                    tracing::warn!(
                        socket = %self.path.display(),
                        "cannot send audit records to journald (counted in ixgw_audit_records_total{{sink=\"journald\",result=\"failed\"}}): {e}"
                    );
                    self.failing = true;
                }
            }
        }
    }
}
