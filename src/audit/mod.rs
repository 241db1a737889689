//! The audit trail: what happened to tunnels, authentications, facility certificates,
//! agreements and flows, as JSON lines appended to a file and, under systemd, sent to
//! journald.
//!
//! Layer contract: beside `runtime/` and below it (only the runtime imports this module), and
//! like it a shell: it owns one thread (`ixgw-audit`), a file and a datagram socket, and reads
//! the wall clock. It imports `dataplane` (for [`FlowEvent`]), `config` and `ids`.
//!
//! Recording never blocks and never allocates beyond the record itself: [`Audit::record`] and
//! [`Audit::flow`] stamp the record (time and sequence number) and `try_send` it into one
//! bounded queue. When the queue is full the record is dropped and counted; the writer then
//! writes an `audit_dropped` line with the number lost since the last one, and the gap in
//! `seq` shows where. The writer thread renders each record (names and translated addresses
//! are resolved there, off the data path), sends it to journald at once and appends it to the
//! file in batches: written when the queue is empty, every 100 ms or every 1000 lines. Records
//! never carry payload.
//!
//! # Format
//!
//! One JSON object per line (UTF-8, no pretty-printing). Every line starts with
//!
//! * `ts`: when the record was accepted ([`Audit::record`] was called), RFC 3339 in UTC with
//!   milliseconds, `2026-04-01T09:30:00.123Z`;
//! * `seq`: a sequence number per writer (one per process), from 1, taken as the record is
//!   accepted, so records dropped on a full queue leave gaps; lines recorded by different
//!   threads at the same moment may appear a few places out of order;
//! * `event`: what the line is about, one of the kinds below.
//!
//! Absent optional values are `null`; every key listed is present.
//!
//! * `tunnel_up`: `attachment`, `peer`, `tenant`, `facility` (10-digit code), `kind`
//!   (`wireguard`, `ipsec`), `remote` (the peer's address and port, if known).
//! * `tunnel_down`: `attachment`, `peer`, `tenant`, `facility`, `kind`, `reason`.
//! * `auth`: an authentication attempt: `attachment`, `peer`, `tenant`, `facility` (null
//!   when the attempt named no known peer), `kind`, `remote`, `result` (`ok`, `refused`),
//!   `reason` (why it was refused).
//! * `certificate_state`: a facility's certificate state changed: `facility`, `name`,
//!   `tenant`, `from`, `to` (states as in `ixgw_facility_certificate_state`), `detail`.
//! * `agreement`: `name`, `consumer`, `provider`, `change` (`added`, `removed`, `changed` on
//!   reload; `in_force`, `out_of_force` as its window opens or closes), `detail`.
//! * `audit_dropped`: `records`, the number of records dropped since the previous such line
//!   because the queue was full.
//! * `flow_start`, `flow_end`: one flow, named by its opener's first packet.
//!   * `protocol`: `tcp`, `udp`, `icmp`, or the IP protocol number;
//!   * `src_tenant`, `dst_tenant`: the opener's tenant and the responder's;
//!   * `facility`: the opener's facility code, null behind a plain attachment;
//!   * `rule`: the name of the policy or agreement that admitted it; `agreement`: whether
//!     that was an agreement;
//!   * `before`, `exchange`, `after`: the opener's packet as `{src, src_port, dst,
//!     dst_port}` at three points. `before`: as the opener sent it, its own internal source
//!     address to the destination's exchange address. `exchange`: in the IX's exchange space,
//!     the source translated to the opener's exchange address (what the flow table and
//!     policy see). `after`: as the responder receives it, from the opener's exchange
//!     address to the responder's own internal address. Ports are not translated; they are
//!     null for protocols without ports (ICMP, others);
//!   * `icmp_id`: the ICMP echo identifier (ICMP flows only);
//!   * `flow_end` only: `packets` and `bytes` as `[opener → responder, responder → opener]`
//!     (IP packets as forwarded), `duration_ms`, and `reason`: `idle`, `closed`, `evicted`,
//!     `refused` (asked again and no longer admitted), `shutdown`.
//!
//! journald (native protocol): `MESSAGE` a one-line summary, `SYSLOG_IDENTIFIER=ixgw-audit`,
//! `PRIORITY` 6 (5 for refused authentications, tunnels down and certificate states that stop
//! traffic, 4 for `audit_dropped`), `IXGW_EVENT` the event, `IXGW_AUDIT` the JSON line.

#![forbid(unsafe_code)]

mod journald;
mod metrics;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::AuditConfig;
use crate::dataplane::FlowEvent;

use journald::JOURNALD_SOCKET;

/// How long [`Audit::shutdown`] waits for the writer to write what is queued.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// One audit record other than a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    TunnelUp {
        attachment: String,
        peer: String,
        tenant: String,
        /// The facility code.
        facility: String,
        kind: TunnelKind,
        /// The peer's address and port.
        remote: Option<String>,
    },
    TunnelDown {
        attachment: String,
        peer: String,
        tenant: String,
        facility: String,
        kind: TunnelKind,
        reason: String,
    },
    Auth {
        attachment: String,
        /// `None` when the attempt named no configured peer.
        peer: Option<String>,
        tenant: Option<String>,
        facility: Option<String>,
        kind: TunnelKind,
        remote: Option<String>,
        result: AuthResult,
        reason: Option<String>,
    },
    CertificateState {
        facility: String,
        name: String,
        tenant: String,
        from: String,
        to: String,
        detail: String,
    },
    Agreement {
        name: String,
        consumer: String,
        provider: String,
        change: AgreementChange,
        detail: Option<String>,
    },
    /// Written by the writer itself: this many records were dropped on a full queue.
    AuditDropped { records: u64 },
}

impl Event {
    /// The `event` value of its line.
    pub fn name(&self) -> &'static str {
        match self {
            Event::TunnelUp { .. } => "tunnel_up",
            Event::TunnelDown { .. } => "tunnel_down",
            Event::Auth { .. } => "auth",
            Event::CertificateState { .. } => "certificate_state",
            Event::Agreement { .. } => "agreement",
            Event::AuditDropped { .. } => "audit_dropped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    Wireguard,
    Ipsec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthResult {
    Ok,
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementChange {
    Added,
    Removed,
    Changed,
    InForce,
    OutOfForce,
}

/// Why the audit trail could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a socket to journald: {0}")]
    Journald(#[source] io::Error),
    #[error("cannot start the audit writer thread: {0}")]
    Thread(#[source] io::Error),
}

/// A record as queued: stamped when accepted.
pub(crate) struct Queued {
    seq: u64,
    at: SystemTime,
    item: Item,
}

pub(crate) enum Item {
    Event(Event),
    Flow(FlowEvent),
    /// Nothing to write: look at the flags (reopen, stop).
    Wake,
}

/// Counters shared by the handles, the writer and the metrics collector.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    seq: AtomicU64,
    accepted: AtomicU64,
    taken: AtomicU64,
    /// Records dropped on a full queue (or after the writer ended).
    dropped: AtomicU64,
    file: Option<SinkCounters>,
    journald: Option<SinkCounters>,
    reopen: AtomicBool,
    stop: AtomicBool,
}

#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    written: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records waiting in the queue.
    fn queue_length(&self) -> u64 {
        let taken = self.taken.load(Ordering::Relaxed);
        self.accepted.load(Ordering::Relaxed).saturating_sub(taken)
    }
}

/// The handle to the audit trail: cheap to clone, shared by every thread that records.
/// Dropping the last handle lets the writer write what is queued and end.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: SyncSender<Queued>,
    shared: Arc<Shared>,
    flows: bool,
    config: Option<AuditConfig>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Audit(disabled)"),
            Some(i) => f
                .debug_struct("Audit")
                .field("config", &i.config)
                .field("shared", &i.shared)
                .finish(),
        }
    }
}

impl Audit {
    /// An audit trail that records nothing and counts nothing.
    pub fn disabled() -> Audit {
        Audit { inner: None }
    }

    /// Opens the file (creating it 0640), connects to journald if wanted, and starts the
    /// writer thread.
    pub fn start(config: &AuditConfig) -> Result<Audit, AuditError> {
        let file = match &config.file {
            Some(path) => {
                Some(
                    writer::Output::file(path.clone()).map_err(|source| AuditError::File {
                        path: path.display().to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let journald = if config
            .journald
            .wanted(|name| std::env::var_os(name).is_some())
        {
            Some(
                journald::Sink::new(PathBuf::from(JOURNALD_SOCKET))
                    .map_err(AuditError::Journald)?,
            )
        } else {
            None
        };
        let mut audit = Audit::spawn(config.queue, config.flows, file, journald)?;
        if let Some(i) = audit.inner.as_mut().and_then(Arc::get_mut) {
            i.config = Some(config.clone());
        }
        Ok(audit)
    }

    /// Starts a writer over the given sinks with a queue of `queue` records.
    pub(crate) fn spawn(
        queue: usize,
        flows: bool,
        file: Option<writer::Output>,
        journald: Option<journald::Sink>,
    ) -> Result<Audit, AuditError> {
        let shared = Arc::new(Shared {
            file: file.as_ref().map(|_| SinkCounters::default()),
            journald: journald.as_ref().map(|_| SinkCounters::default()),
            ..Shared::default()
        });
        let (tx, rx) = sync_channel(queue.max(1));
        let w = writer::Writer::new(rx, shared.clone(), file, journald);
        let thread = std::thread::Builder::new()
            .name("ixgw-audit".into())
            .spawn(move || w.run())
            .map_err(AuditError::Thread)?;
        Ok(Audit {
            inner: Some(Arc::new(Inner {
                tx,
                shared,
                flows,
                config: None,
                thread: Mutex::new(Some(thread)),
            })),
        })
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The configuration it was started with (`None` when disabled).
    pub fn config(&self) -> Option<&AuditConfig> {
        self.inner.as_ref().and_then(|i| i.config.as_ref())
    }

    /// Records an event; never blocks. On a full queue the event is dropped and counted.
    pub fn record(&self, event: Event) {
        if let Some(i) = &self.inner {
            i.push(Item::Event(event));
        }
    }

    /// Whether it records flows (on, and `flows` not turned off).
    pub fn records_flows(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.flows)
    }

    /// Records a flow starting or ending, unless flow records are off; never blocks.
    pub fn flow(&self, event: FlowEvent) {
        if let Some(i) = &self.inner {
            if i.flows {
                i.push(Item::Flow(event));
            }
        }
    }

    /// Reopens the file (after logrotate renamed it); records already accepted may still go
    /// to the old one.
    pub fn reopen(&self) {
        if let Some(i) = &self.inner {
            i.shared.reopen.store(true, Ordering::SeqCst);
            i.wake();
        }
    }

    /// Writes what is queued, flushes and ends the writer, waiting at most a few seconds for
    /// a sink that does not take the records. Later records are dropped and counted.
    pub fn shutdown(&self) {
        let Some(i) = &self.inner else { return };
        i.shared.stop.store(true, Ordering::SeqCst);
        i.wake();
        let thread = match i.thread.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(thread) = thread else { return };
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::error!(
                queued = i.shared.queue_length(),
                "the audit sink takes no records: stopping without writing what is queued"
            );
        }
    }

    /// Registers `ixgw_audit_records_total` and `ixgw_audit_queue_length` (nothing when
    /// disabled).
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        match &self.inner {
            Some(i) => registry.register(Box::new(metrics::AuditCollector::new(i.shared.clone())?)),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> Option<&Arc<Shared>> {
        self.inner.as_ref().map(|i| &i.shared)
    }
}

impl Inner {
    fn push(&self, item: Item) {
        let q = Queued {
            seq: self.shared.next_seq(),
            at: SystemTime::now(),
            item,
        };
        match self.tx.try_send(q) {
            Ok(()) => {
                self.shared.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Makes the writer look at its flags; a full queue wakes it anyway.
    fn wake(&self) {
        let _ = self.tx.try_send(Queued {
            seq: 0,
            at: SystemTime::now(),
            item: Item::Wake,
        });
    }
}
