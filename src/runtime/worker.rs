//! The data-path worker: one thread, one current-thread tokio runtime, one [`Gateway`].
//! It waits for any source to become readable, drains up to a batch, hands the batch to the
//! gateway and flushes what the gateway queued; timers and control messages interleave
//! between batches.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{Control, NewSources};
use crate::buffer::{RxBatch, RxMeta, TxBatch, TxTarget};
use crate::dataplane::{AttachmentPlan, AttachmentPlanKind, DropReason, Gateway, Plan};
use crate::ids::AttachmentId;
use crate::metrics::{Counters, MetricsHub};

const RX_BATCH: usize = 64;
/// Room for every packet of a batch plus handshake traffic and flushed queues.
const TX_BATCH: usize = 256;
/// Batches per wake-up before timers and control messages get a turn.
const IO_LOOP_BOUND: usize = 16;
/// Packets read from one source per pass, so that one busy source does not starve the others.
const PER_SOURCE: usize = 16;

/// Identifies a socket or device across reloads: a WireGuard listen address (by name too
/// when the port is chosen by the kernel) or a TUN device name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceKey {
    Udp(SocketAddr, Option<String>),
    Tun(String),
}

impl SourceKey {
    pub fn of(a: &AttachmentPlan) -> SourceKey {
        match &a.kind {
            AttachmentPlanKind::WireGuard { listen, .. } => {
                SourceKey::Udp(*listen, (listen.port() == 0).then(|| a.name.clone()))
            }
            AttachmentPlanKind::Plain { tun, .. } => SourceKey::Tun(tun.clone()),
        }
    }
}

#[derive(Clone)]
enum Source {
    Udp(Arc<tokio::net::UdpSocket>),
    Tun(Arc<tun_rs::AsyncDevice>),
}

struct Worker {
    gateway: Gateway,
    hub: Arc<MetricsHub>,
    /// Everything open, by key.
    open: HashMap<SourceKey, Source>,
    /// The current plan's sources, by attachment index.
    sources: Vec<Source>,
    rx: RxBatch,
    tx: TxBatch,
}

pub(super) fn spawn(
    gateway: Gateway,
    sources: NewSources,
    hub: Arc<MetricsHub>,
    control: mpsc::Receiver<Control>,
    started: oneshot::Sender<Result<(), String>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ixgw-worker".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut w = Worker {
                    gateway,
                    hub,
                    open: HashMap::new(),
                    sources: Vec::new(),
                    rx: RxBatch::new(RX_BATCH),
                    tx: TxBatch::new(TX_BATCH),
                };
                let plan = w.gateway.plan().clone();
                let ready = w
                    .register(sources)
                    .map_err(|e| format!("cannot register a socket or device: {e}"))
                    .and_then(|()| w.sources_for(&plan));
                match ready {
                    Ok(list) => {
                        w.switch_sources(list);
                        let _ = started.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                }
                w.run(control).await;
            })
        })
}

impl Worker {
    /// Registers new sockets and devices with this thread's reactor.
    fn register(&mut self, new: NewSources) -> std::io::Result<()> {
        for (k, s) in new.udp {
            let s = tokio::net::UdpSocket::from_std(s)?;
            self.open.insert(k, Source::Udp(Arc::new(s)));
        }
        for (k, d) in new.tun {
            let d = tun_rs::AsyncDevice::new(d)?;
            self.open.insert(k, Source::Tun(Arc::new(d)));
        }
        Ok(())
    }

    /// The sources of `plan`'s attachments, by attachment index.
    fn sources_for(&self, plan: &Plan) -> Result<Vec<Source>, String> {
        plan.attachments
            .iter()
            .map(|a| {
                self.open
                    .get(&SourceKey::of(a))
                    .cloned()
                    .ok_or_else(|| format!("no socket or device for attachment {}", a.name))
            })
            .collect()
    }

    /// Uses `sources` from now on and closes what the current plan no longer uses.
    fn switch_sources(&mut self, sources: Vec<Source>) {
        let keep: Vec<SourceKey> = self
            .gateway
            .plan()
            .attachments
            .iter()
            .map(SourceKey::of)
            .collect();
        self.open.retain(|k, _| keep.contains(k));
        self.sources = sources;
    }

    /// Registers the new plan's sockets and devices, then switches plans; on any error the
    /// running plan stays as it was.
    fn reload(&mut self, plan: Arc<Plan>, new: NewSources) -> Result<(), String> {
        self.register(new)
            .map_err(|e| format!("cannot register a new socket or device: {e}"))?;
        let sources = self.sources_for(&plan)?;
        let counters = self.gateway.apply_plan(plan, Instant::now());
        if let Err(e) = self.hub.publish(0, counters) {
            tracing::error!("worker: cannot publish counters: {e}");
        }
        self.switch_sources(sources);
        Ok(())
    }

    async fn run(&mut self, mut control: mpsc::Receiver<Control>) {
        loop {
            let deadline = tokio::time::Instant::from_std(self.gateway.poll_timeout());
            tokio::select! {
                biased;
                msg = control.recv() => match msg {
                    Some(Control::Reload { plan, sources, done }) => {
                        let _ = done.send(self.reload(plan, sources));
                    }
                    Some(Control::Stop { done }) => {
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                () = readable(&self.sources) => {
                    for _ in 0..IO_LOOP_BOUND {
                        if self.drain() == 0 {
                            break;
                        }
                        self.gateway.handle_batch(Instant::now(), &mut self.rx, &mut self.tx);
                        self.rx.clear();
                        self.flush().await;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.gateway.handle_timeout(Instant::now(), &mut self.tx);
                    self.flush().await;
                }
            }
        }
    }

    /// Reads what is waiting, up to one batch; returns how many packets were read.
    fn drain(&mut self) -> usize {
        let mut progress = true;
        while progress && !self.rx.is_full() {
            progress = false;
            for (i, src) in self.sources.iter().enumerate() {
                let attachment = AttachmentId(i as u16);
                for _ in 0..PER_SOURCE {
                    let Some(buf) = self.rx.next_buf() else {
                        return self.rx.len();
                    };
                    let got = match src {
                        Source::Udp(s) => s.try_recv_from(buf).map(|(n, from)| (n, Some(from))),
                        Source::Tun(d) => d.try_recv(buf).map(|n| (n, None)),
                    };
                    match got {
                        Ok((len, from)) => {
                            self.rx.commit(RxMeta {
                                attachment,
                                from,
                                len,
                            });
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(attachment = i, "receive error: {e}");
                            break;
                        }
                    }
                }
            }
        }
        self.rx.len()
    }

    /// Sends everything queued, waiting for socket space when the kernel pushes back.
    async fn flush(&mut self) {
        let counters: Arc<Counters> = self.gateway.counters().clone();
        for (meta, pkt) in self.tx.iter() {
            let Some(src) = self.sources.get(meta.attachment.index()) else {
                Counters::drop(&counters, DropReason::SendFailed);
                continue;
            };
            let sent = match (src, meta.target) {
                (Source::Udp(s), TxTarget::Udp(to)) => loop {
                    match s.try_send_to(pkt, to) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            if s.writable().await.is_err() {
                                break Err(e);
                            }
                        }
                        other => break other.map(drop),
                    }
                },
                (Source::Tun(d), TxTarget::Tun) => loop {
                    match d.try_send(pkt) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            if d.writable().await.is_err() {
                                break Err(e);
                            }
                        }
                        other => break other.map(drop),
                    }
                },
                _ => Err(std::io::Error::other(
                    "target does not match the attachment kind",
                )),
            };
            if let Err(e) = sent {
                tracing::debug!(attachment = meta.attachment.0, "send failed: {e}");
                Counters::drop(&counters, DropReason::SendFailed);
            }
        }
        self.tx.clear();
    }
}

/// Resolves when any source is readable (or has an error to report).
async fn readable(sources: &[Source]) {
    poll_fn(|cx| {
        for s in sources {
            let ready = match s {
                Source::Udp(u) => u.poll_recv_ready(cx).is_ready(),
                Source::Tun(d) => d.poll_readable(cx).is_ready(),
            };
            if ready {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}
