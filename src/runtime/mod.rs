//! The runtime: the only layer that owns sockets, TUN devices, threads, signals and the
//! clock. It binds what the plan needs, runs the data path on a worker thread of its own
//! (a current-thread tokio runtime: one owner of all data-path state, no locks per packet)
//! and serves the admin listener on the caller's runtime.
//!
//! Reload: the new file is parsed, validated and compiled and its new sockets and devices are
//! created *before* the worker sees anything; any failure leaves the running plan untouched.
//! The worker switches plans between two batches, keeping the tunnels of unchanged peers.
//! Kernel routes and MTUs of TUN devices change only *after* the worker switched, so that a
//! failed reload cannot take a route away from a running device; a failure there is logged,
//! the new plan keeps running.

mod admin_socket;
mod agreements;
#[cfg(test)]
mod audit_tests;
mod bpf;
mod events;
mod facilities;
mod facility_metrics;
mod ike;
mod ike_metrics;
mod lanes;
mod link;
pub mod mmsg;
mod raw_esp;
mod show;
mod socket_drops;
mod steer;
mod summary;
#[cfg(test)]
mod tests;
mod tls;
pub mod tun;
mod udp;
mod watchdog;
mod worker;
#[cfg(test)]
mod workers_tests;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ipnetwork::Ipv4Network;
use tokio::sync::{mpsc, oneshot};

use crate::admin::health::{Heartbeat, Liveness};
use crate::audit::{Audit, AuditError};
use crate::config::{Config, ConfigError};
use crate::dataplane::{AttachmentPlan, Gateway, IkeSetupError, Io, Plan};
use crate::ids::AttachmentId;
use crate::metrics::MetricsHub;
use crate::tunnel::Shard;
use socket_drops::{SocketDrops, SocketDropsCollector, TrackedSocket};

pub use admin_socket::fetch as fetch_show;
pub use facilities::{facility_report, verify_certificate, FacilityReport};
pub use socket_drops::fuzz_parse_udp_drops;
pub use worker::SourceKey;

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("attachment {attachment}: cannot bind UDP {addr}: {source}")]
    Bind {
        attachment: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("attachment {attachment}: cannot create TUN device {tun}: {source}")]
    Tun {
        attachment: String,
        tun: String,
        #[source]
        source: std::io::Error,
    },
    #[error("attachment {attachment}: cannot open the Ethernet port {interface}: {source}")]
    Link {
        attachment: String,
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("attachment {attachment}: cannot route {prefix} into {tun}: {message}")]
    Route {
        attachment: String,
        tun: String,
        prefix: String,
        message: String,
    },
    #[error("attachment {attachment}: cannot remove the route of {prefix} from {tun}: {message}")]
    Unroute {
        attachment: String,
        tun: String,
        prefix: String,
        message: String,
    },
    #[error("attachment {attachment}: cannot set the MTU of {tun} to {mtu}: {message}")]
    Mtu {
        attachment: String,
        tun: String,
        mtu: u16,
        message: String,
    },
    #[error("{0}")]
    Ike(#[from] IkeSetupError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Usage(#[from] crate::usage::UsageError),
    #[error("attachment {attachment}: UDP {addr} is kept from an attachment of another type, and with several workers its sockets' steering cannot change: restart to change the attachment's type at this address")]
    Steering {
        attachment: String,
        addr: SocketAddr,
    },
    #[error("the data-path worker has stopped")]
    WorkerGone,
    #[error("the data-path worker refused the plan: {0}")]
    Worker(String),
    #[error("cannot start the data-path worker: {0}")]
    Thread(#[source] std::io::Error),
}

/// Sockets and devices created for a plan, handed to the worker.
#[derive(Default)]
pub(crate) struct NewSources {
    pub udp: Vec<(SourceKey, std::net::UdpSocket)>,
    pub tun: Vec<(SourceKey, tun_rs::SyncDevice)>,
    /// Raw ESP sockets, driven as UDP sockets (see `raw_esp`).
    pub raw: Vec<(SourceKey, std::net::UdpSocket)>,
    /// Ethernet ports (AF_PACKET sockets), driven as UDP sockets (see `link`).
    pub link: Vec<(SourceKey, std::net::UdpSocket)>,
    /// The worker's ends of `tls` attachments' socket pairs.
    pub relay: Vec<(SourceKey, std::os::unix::net::UnixDatagram)>,
    /// The listeners and the TLS thread's ends of the pairs: taken out before the rest goes
    /// to the worker, handed to the TLS thread once the worker runs the plan.
    pub tls: Vec<(SourceKey, tls::TlsIo)>,
}

pub(crate) enum Control {
    Reload {
        plan: Arc<Plan>,
        sources: NewSources,
        /// Whether the worker has registered the sources and is ready to switch.
        done: oneshot::Sender<Result<(), String>>,
        /// `true` once every worker is ready: switch; `false` or dropped: keep the plan.
        commit: oneshot::Receiver<bool>,
    },
    /// An SA change of the IKE thread, for the plan of `generation`.
    Ipsec {
        generation: u64,
        attachment: AttachmentId,
        change: ike::SaChange,
    },
    /// A facility's certificate state changed: read the states again.
    Facilities,
    Stop {
        done: oneshot::Sender<()>,
    },
    /// Tests only: the worker blocks its thread until `release` is sent to or dropped.
    #[cfg(test)]
    Hang {
        release: std::sync::mpsc::Receiver<()>,
    },
    /// Tests only: the worker panics, as a bug would make it.
    #[cfg(test)]
    Panic,
}

/// A running gateway. Dropping it without [`Running::stop`] stops the workers as well.
pub struct Running {
    /// Each data-path worker's control queue (the IKE thread sends each SA change to the
    /// worker owning the SA).
    controls: Vec<mpsc::Sender<Control>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// The workers that panicked, by index ([`Running::worker_failed`]).
    failed: mpsc::UnboundedReceiver<usize>,
    admin: tokio::task::JoinHandle<std::io::Result<()>>,
    admin_stop: Option<oneshot::Sender<()>>,
    /// The admin socket `ixgw show` asks, if it could be bound.
    admin_socket: Option<admin_socket::AdminSocket>,
    /// The plan `ixgw show` describes.
    shown: Arc<arc_swap::ArcSwap<show::Shown>>,
    hub: Arc<MetricsHub>,
    ready: Arc<AtomicBool>,
    /// The heartbeats of the worker and the IKE thread, judged by `/live` and the watchdog.
    liveness: Arc<Liveness>,
    metrics_addr: SocketAddr,
    /// What is bound now, by source key.
    bound: HashMap<SourceKey, Bound>,
    /// The IKE thread's queue, and the thread.
    ike_tx: std::sync::mpsc::SyncSender<ike::IkeInput>,
    ike_thread: Option<std::thread::JoinHandle<std::sync::mpsc::Receiver<ike::IkeInput>>>,
    /// Clones of the UDP sockets in use, for the IKE thread to send from.
    udp_clones: HashMap<SourceKey, Arc<std::net::UdpSocket>>,
    /// The UDP sockets whose kernel drops `/metrics` exports.
    socket_drops: Arc<SocketDrops>,
    plan: Arc<Plan>,
    /// The facility registry, and the task that watches its CRL files.
    facilities: Arc<facilities::Facilities>,
    facility_task: tokio::task::JoinHandle<()>,
    /// The agreements, and the task that tells when their windows open and close.
    agreements: Arc<std::sync::Mutex<agreements::AgreementWatch>>,
    agreement_task: tokio::task::JoinHandle<()>,
    audit: Audit,
    /// What the threads tell the audit trail through.
    events: Arc<events::Events>,
    /// The usage recorder, with a `usage:` section.
    usage: Option<crate::usage::Usage>,
    /// The TLS thread's control queue, and the thread.
    tls_tx: mpsc::Sender<tls::TlsControl>,
    tls_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.facility_task.abort();
        self.agreement_task.abort();
    }
}

/// What the runtime remembers of a bound socket or created device.
#[derive(Debug, Clone, Default)]
struct Bound {
    /// A socket's local address.
    addr: Option<SocketAddr>,
    /// The inodes of the socket and, for a sharded attachment, of the other workers'
    /// sockets of its group (the `inode` column of `/proc/net/udp`).
    inodes: Vec<u64>,
    /// A socket's receive buffer size as the kernel reports it.
    receive_buffer: Option<usize>,
}

impl NewSources {
    /// Adds a clone of each new UDP socket to `clones` (the IKE thread sends from them).
    fn clone_udp(&self, clones: &mut HashMap<SourceKey, Arc<std::net::UdpSocket>>) {
        for (k, s) in &self.udp {
            match s.try_clone() {
                Ok(c) => {
                    clones.insert(k.clone(), Arc::new(c));
                }
                Err(e) => tracing::warn!(?k, "cannot clone a UDP socket for IKE: {e}"),
            }
        }
    }

    /// What to remember of each new socket and device.
    fn bound(&self) -> Vec<(SourceKey, Bound)> {
        let udp = self.udp.iter().map(|(k, s)| {
            let inode = socket_drops::socket_inode(s)
                .map_err(|e| {
                    tracing::warn!(
                        ?k,
                        "cannot stat the UDP socket, its kernel drops will not be exported: {e}"
                    )
                })
                .ok();
            let bound = Bound {
                addr: s.local_addr().ok(),
                inodes: inode.into_iter().collect(),
                receive_buffer: rustix::net::sockopt::socket_recv_buffer_size(s).ok(),
            };
            (k.clone(), bound)
        });
        let tun = self.tun.iter().map(|(k, _)| (k.clone(), Bound::default()));
        let raw = (self.raw.iter().chain(&self.link)).map(|(k, _)| (k.clone(), Bound::default()));
        let tls = self.tls.iter().map(|(k, io)| {
            let bound = Bound {
                addr: io.listener.local_addr().ok(),
                ..Bound::default()
            };
            (k.clone(), bound)
        });
        udp.chain(tun).chain(raw).chain(tls).collect()
    }
}

/// What to remember of the sockets and devices opened for all workers: worker 0's, with the
/// inodes of the other workers' sockets of each group added.
fn bound_of(sources: &[NewSources]) -> Vec<(SourceKey, Bound)> {
    let Some((first, others)) = sources.split_first() else {
        return Vec::new();
    };
    let mut bound = first.bound();
    for (k, s) in others.iter().flat_map(|o| &o.udp) {
        let Some((_, b)) = bound.iter_mut().find(|(key, _)| key == k) else {
            continue;
        };
        match socket_drops::socket_inode(s) {
            Ok(inode) => b.inodes.push(inode),
            Err(e) => tracing::warn!(
                ?k,
                "cannot stat a UDP socket, its kernel drops will not be exported: {e}"
            ),
        }
    }
    bound
}

/// The UDP sockets `plan` uses, by attachment, among what is `bound`.
fn tracked_sockets(plan: &Plan, bound: &HashMap<SourceKey, Bound>) -> Vec<TrackedSocket> {
    plan.attachments
        .iter()
        .flat_map(|a| a.io.iter().enumerate().map(move |(i, io)| (a, i, io)))
        .filter_map(|(a, i, io)| {
            let Io::Udp(listen) = io else { return None };
            let b = bound.get(&SourceKey::of(a, i))?;
            Some(b.inodes.iter().map(move |&inode| TrackedSocket {
                attachment: a.name.clone(),
                socket: listen.to_string(),
                inode,
                receive_buffer: b.receive_buffer,
            }))
        })
        .flatten()
        .collect()
}

/// Binds and creates what `plan` needs that is not in `bound` yet, for each of `workers`
/// workers: a sharded attachment's UDP address becomes a reuse-port group of one socket per
/// worker, its raw ESP address one filtered raw socket per worker (see `steer`); everything
/// else is worker 0's.
fn open_sources(
    plan: &Plan,
    bound: &HashMap<SourceKey, Bound>,
    workers: usize,
) -> Result<Vec<NewSources>, RuntimeError> {
    let mut new: Vec<NewSources> = (0..workers.max(1)).map(|_| NewSources::default()).collect();
    for a in &plan.attachments {
        for (i, io) in a.io.iter().enumerate() {
            let key = SourceKey::of(a, i);
            if bound.contains_key(&key) {
                continue;
            }
            // Shared by several workers: a steered group, or filtered raw sockets.
            let shared = steer::Steering::of(a, i).filter(|_| workers > 1);
            match (io, shared) {
                (Io::Udp(listen), Some(steering)) => {
                    let bind_err = |source| RuntimeError::Bind {
                        attachment: a.name.clone(),
                        addr: *listen,
                        source,
                    };
                    // The group's sockets share their address: a plain bind first, so that an
                    // address another socket holds is refused as before, not joined.
                    if listen.port() != 0 {
                        drop(std::net::UdpSocket::bind(listen).map_err(bind_err)?);
                    }
                    let group =
                        steer::bind_group(*listen, workers as u32, steering).map_err(bind_err)?;
                    for (n, s) in new.iter_mut().zip(group) {
                        size_buffers(&s, &a.name);
                        n.udp.push((key.clone(), s));
                    }
                }
                (Io::Esp(addr), Some(_)) => {
                    for (k, n) in new.iter_mut().enumerate() {
                        let filter = steer::esp_filter(k as u32, workers as u32);
                        let fd = raw_esp::open_filtered(*addr, &filter).map_err(|source| {
                            RuntimeError::Bind {
                                attachment: a.name.clone(),
                                addr: SocketAddr::from((*addr, 0)),
                                source,
                            }
                        })?;
                        size_buffers(&fd, &a.name);
                        n.raw.push((key.clone(), fd));
                    }
                }
                (io, _) => open_source(a, io, key, &mut new[0])?,
            }
        }
    }
    Ok(new)
}

/// Refuses `new` if a UDP socket it keeps from `old` would need another steering program
/// (a WireGuard address become IPsec's, or the reverse): the kept group's program and the
/// workers holding its sockets stay as they were bound.
fn steering_kept(old: &Plan, new: &Plan) -> Result<(), RuntimeError> {
    let udp = |plan: &Plan| -> Vec<(SourceKey, Option<steer::Steering>, String, SocketAddr)> {
        (plan.attachments.iter())
            .flat_map(|a| (0..a.io.len()).map(move |i| (a, i)))
            .filter_map(|(a, i)| {
                let listen = a.udp_listen(i)?;
                Some((
                    SourceKey::of(a, i),
                    steer::Steering::of(a, i),
                    a.name.clone(),
                    listen,
                ))
            })
            .collect()
    };
    let before = udp(old);
    for (key, steering, attachment, addr) in udp(new) {
        if before.iter().any(|(k, s, ..)| *k == key && *s != steering) {
            return Err(RuntimeError::Steering { attachment, addr });
        }
    }
    Ok(())
}

/// Binds or creates `io` of attachment `a` into `new`.
fn open_source(
    a: &AttachmentPlan,
    io: &Io,
    key: SourceKey,
    new: &mut NewSources,
) -> Result<(), RuntimeError> {
    {
        match io {
            Io::Udp(listen) => {
                let s = std::net::UdpSocket::bind(listen)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|source| RuntimeError::Bind {
                        attachment: a.name.clone(),
                        addr: *listen,
                        source,
                    })?;
                size_buffers(&s, &a.name);
                new.udp.push((key, s));
            }
            Io::Esp(addr) => {
                let fd = raw_esp::open(*addr).map_err(|source| RuntimeError::Bind {
                    attachment: a.name.clone(),
                    addr: SocketAddr::from((*addr, 0)),
                    source,
                })?;
                size_buffers(&fd, &a.name);
                new.raw.push((key, fd));
            }
            Io::Tls(listen) => {
                let bind_err = |source| RuntimeError::Bind {
                    attachment: a.name.clone(),
                    addr: *listen,
                    source,
                };
                let listener = std::net::TcpListener::bind(listen)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(bind_err)?;
                let (worker_end, thread_end) = std::os::unix::net::UnixDatagram::pair()
                    .and_then(|(w, t)| {
                        w.set_nonblocking(true)?;
                        t.set_nonblocking(true)?;
                        Ok((w, t))
                    })
                    .map_err(bind_err)?;
                for s in [&worker_end, &thread_end] {
                    let _ = rustix::net::sockopt::set_socket_send_buffer_size(s, SOCKET_BUFFER);
                    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(s, SOCKET_BUFFER);
                }
                new.relay.push((key.clone(), worker_end));
                new.tls.push((
                    key,
                    tls::TlsIo {
                        listener,
                        relay: thread_end,
                    },
                ));
            }
            Io::Link { interface, vlan } => {
                let link_err = |source| RuntimeError::Link {
                    attachment: a.name.clone(),
                    interface: interface.clone(),
                    source,
                };
                link::prepare(&a.name, interface).map_err(link_err)?;
                let fd = link::open(interface, *vlan).map_err(link_err)?;
                new.link.push((key, fd));
            }
            Io::Tun { name: tun, .. } => {
                let tun_err = |source| RuntimeError::Tun {
                    attachment: a.name.clone(),
                    tun: tun.clone(),
                    source,
                };
                let dev = tun::open(tun, a.mtu).map_err(tun_err)?;
                disable_ipv6(tun);
                dev.enabled(true).map_err(tun_err)?;
                new.tun.push((key, dev));
            }
        }
    }
    Ok(())
}

/// Socket buffer size asked for in each direction: at 500 Mbit/s the default 208 KiB holds
/// about 3 ms of traffic, less than one scheduling hiccup of a shared core.
const SOCKET_BUFFER: usize = 4 << 20;

/// Enlarges a UDP (or raw ESP) socket's kernel buffers: past `net.core.rmem_max` when the
/// process may (CAP_NET_ADMIN), else up to it. Overflows there happen before the data path
/// sees a datagram (only `ixgw_socket_drops_total` shows them for UDP), so this matters.
fn size_buffers(s: &std::net::UdpSocket, attachment: &str) {
    use rustix::net::sockopt;
    if sockopt::set_socket_recv_buffer_size_force(s, SOCKET_BUFFER).is_err() {
        let _ = sockopt::set_socket_recv_buffer_size(s, SOCKET_BUFFER);
    }
    if sockopt::set_socket_send_buffer_size_force(s, SOCKET_BUFFER).is_err() {
        let _ = sockopt::set_socket_send_buffer_size(s, SOCKET_BUFFER);
    }
    let rcv = sockopt::socket_recv_buffer_size(s).unwrap_or(0);
    let snd = sockopt::socket_send_buffer_size(s).unwrap_or(0);
    if rcv < SOCKET_BUFFER {
        tracing::warn!(
            attachment,
            rcv,
            snd,
            "socket buffers are small; raise net.core.rmem_max/wmem_max or grant CAP_NET_ADMIN"
        );
    } else {
        tracing::debug!(attachment, rcv, snd, "socket buffers");
    }
}

/// Keeps the kernel's own IPv6 (router solicitations, MLD reports) off a TUN device before it
/// comes up: ixgw does not translate IPv6, and those packets would show up as `ipv6` drops.
fn disable_ipv6(tun: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{tun}/disable_ipv6");
    if let Err(e) = std::fs::write(&path, "1") {
        tracing::warn!(tun, "cannot disable IPv6 on the device ({path}: {e}); the kernel's own IPv6 packets on it will count as ipv6 drops");
    }
}

/// A change the kernel needs for the TUN devices of plain attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KernelOp {
    /// `ip route del PREFIX dev TUN`
    DelRoute {
        attachment: String,
        tun: String,
        prefix: Ipv4Network,
    },
    /// `ip link set dev TUN mtu N`
    SetMtu {
        attachment: String,
        tun: String,
        mtu: u16,
    },
    /// `ip route replace PREFIX dev TUN`, so that the kernel hands replies back to us.
    AddRoute {
        attachment: String,
        tun: String,
        prefix: Ipv4Network,
    },
}

/// What the kernel must change once `new` runs after `old` (`None` at start): the
/// `kernel_routes` of new devices; for devices kept by name the removed routes, a changed
/// MTU, and every current route again (`replace` is idempotent, so a route an earlier reload
/// failed to add is retried). Devices `new` no longer uses are closed by the worker, and their routes go with them.
/// Deletions come first, so that a prefix moving between devices is not deleted after its
/// new route replaced the old one.
fn kernel_changes(old: Option<&Plan>, new: &Plan) -> Vec<KernelOp> {
    let devices = |p: &Plan| -> HashMap<String, (u16, Vec<Ipv4Network>)> {
        p.attachments
            .iter()
            .flat_map(|a| a.io.iter().map(move |io| (a, io)))
            .filter_map(|(a, io)| match io {
                Io::Tun {
                    name,
                    kernel_routes,
                } => Some((name.clone(), (a.mtu, kernel_routes.clone()))),
                Io::Udp(_) | Io::Esp(_) | Io::Link { .. } | Io::Tls(_) => None,
            })
            .collect()
    };
    let before = old.map(devices).unwrap_or_default();
    let (mut dels, mut mtus, mut adds) = (Vec::new(), Vec::new(), Vec::new());
    let tuns = new.attachments.iter().flat_map(|a| {
        a.io.iter().filter_map(move |io| match io {
            Io::Tun {
                name,
                kernel_routes,
            } => Some((a, name, kernel_routes)),
            Io::Udp(_) | Io::Esp(_) | Io::Link { .. } | Io::Tls(_) => None,
        })
    });
    for (a, tun, kernel_routes) in tuns {
        let (old_mtu, old_routes) = match before.get(tun) {
            Some((mtu, routes)) => (Some(*mtu), routes.as_slice()),
            None => (None, &[][..]),
        };
        for prefix in old_routes.iter().filter(|p| !kernel_routes.contains(p)) {
            dels.push(KernelOp::DelRoute {
                attachment: a.name.clone(),
                tun: tun.clone(),
                prefix: *prefix,
            });
        }
        if old_mtu.is_some_and(|m| m != a.mtu) {
            mtus.push(KernelOp::SetMtu {
                attachment: a.name.clone(),
                tun: tun.clone(),
                mtu: a.mtu,
            });
        }
        // Every current prefix, not only the new ones: `replace` is idempotent, and a route
        // a previous reload failed to add (or that someone removed) comes back.
        for prefix in kernel_routes {
            adds.push(KernelOp::AddRoute {
                attachment: a.name.clone(),
                tun: tun.clone(),
                prefix: *prefix,
            });
        }
    }
    dels.extend(mtus);
    dels.extend(adds);
    dels
}

/// Applies `ops` in order with ip(8), without blocking the async runtime's thread; stops at
/// the first failure.
async fn apply_kernel_changes(ops: &[KernelOp]) -> Result<(), RuntimeError> {
    for op in ops {
        apply_kernel_change(op).await?;
    }
    Ok(())
}

/// Applies `ops`, logging each failure and going on with the rest. Returns how many failed.
async fn apply_kernel_changes_logged(ops: &[KernelOp]) -> usize {
    let mut failed = 0;
    for op in ops {
        if let Err(e) = apply_kernel_change(op).await {
            tracing::error!("the new configuration runs, but the kernel was not updated: {e}");
            failed += 1;
        }
    }
    failed
}

async fn apply_kernel_change(op: &KernelOp) -> Result<(), RuntimeError> {
    let args = op.ip_args();
    run_ip(&args).await.map_err(|message| op.error(message))?;
    tracing::debug!("ip {}", args.join(" "));
    Ok(())
}

impl KernelOp {
    fn ip_args(&self) -> Vec<String> {
        let args: &[&str] = match self {
            KernelOp::DelRoute { tun, prefix, .. } => {
                &["route", "del", &prefix.to_string(), "dev", tun]
            }
            KernelOp::SetMtu { tun, mtu, .. } => {
                &["link", "set", "dev", tun, "mtu", &mtu.to_string()]
            }
            KernelOp::AddRoute { tun, prefix, .. } => {
                &["route", "replace", &prefix.to_string(), "dev", tun]
            }
        };
        args.iter().map(|a| a.to_string()).collect()
    }

    fn error(&self, message: String) -> RuntimeError {
        match self.clone() {
            KernelOp::DelRoute {
                attachment,
                tun,
                prefix,
            } => RuntimeError::Unroute {
                attachment,
                tun,
                prefix: prefix.to_string(),
                message,
            },
            KernelOp::SetMtu {
                attachment,
                tun,
                mtu,
            } => RuntimeError::Mtu {
                attachment,
                tun,
                mtu,
                message,
            },
            KernelOp::AddRoute {
                attachment,
                tun,
                prefix,
            } => RuntimeError::Route {
                attachment,
                tun,
                prefix: prefix.to_string(),
                message,
            },
        }
    }
}

/// Runs `ip ARGS`; the error is ip's own message.
async fn run_ip(args: &[String]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ip(8): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Running {
    /// Starts the gateway for a validated configuration. `metrics` overrides the configured
    /// metrics listener (tests and the demo pass one bound to port 0).
    pub async fn start(
        config: &Config,
        metrics: Option<TcpListener>,
    ) -> Result<Running, RuntimeError> {
        let plan = Arc::new(Plan::compile(config, 1));
        let audit = match &config.audit {
            Some(c) => Audit::start(c)?,
            None => Audit::disabled(),
        };
        let metrics = match metrics {
            Some(l) => l,
            None => TcpListener::bind(config.metrics.listen).map_err(|source| {
                RuntimeError::Metrics {
                    addr: config.metrics.listen,
                    source,
                }
            })?,
        };
        let metrics_addr = metrics
            .local_addr()
            .map_err(|source| RuntimeError::Metrics {
                addr: config.metrics.listen,
                source,
            })?;
        metrics
            .set_nonblocking(true)
            .map_err(|source| RuntimeError::Metrics {
                addr: metrics_addr,
                source,
            })?;

        let events = Arc::new(events::Events::new(audit.clone()));
        let facilities =
            facilities::Facilities::new(config, &plan, ike::unix_now(), Some(events.clone()));
        let presenter: Arc<dyn crate::facility::Presenter> = facilities.clone();
        let workers = config.dataplane.worker_count();
        let mut sources = open_sources(&plan, &HashMap::new(), workers)?;
        let bound: HashMap<SourceKey, Bound> = bound_of(&sources).into_iter().collect();
        let tls_new = std::mem::take(&mut sources[0].tls);
        let mut udp_clones = HashMap::new();
        sources[0].clone_udp(&mut udp_clones);
        let engines = ike_setups(&plan, &udp_clones, &presenter, workers)?;

        // Always: the sink also tells WireGuard peers' handshakes, ups, downs and moves.
        let sink = events.sink().map_err(RuntimeError::Thread)?;
        let now = Instant::now();
        let gateways: Vec<Gateway> = (0..workers)
            .map(|k| {
                let shard = Shard {
                    index: k as u32,
                    count: workers as u32,
                };
                let mut g = Gateway::for_worker(plan.clone(), now, shard);
                g.set_flow_sink(sink.clone());
                g
            })
            .collect();
        let hub = Arc::new(MetricsHub::new(
            gateways.iter().map(|g| g.counters().clone()),
        ));
        hub.set_peer_series(config.metrics.peer_series);
        hub.config_loaded(SystemTime::now());
        hub.set_flow_table_capacity(plan.limits.flow_table_size * workers);
        let q = plan.flow_quotas();
        hub.set_flow_quotas(q.per_tenant, q.per_facility);
        let socket_drops = Arc::new(SocketDrops::default());
        socket_drops.track(tracked_sockets(&plan, &bound));
        let registered = SocketDropsCollector::new(socket_drops.clone())
            .and_then(|c| hub.registry().register(Box::new(c)));
        if let Err(e) = registered {
            tracing::error!("cannot export the kernel's socket drops: {e}");
        }
        let registered = hub.register_text(Box::new(facility_metrics::FacilityCollector::new(
            facilities.clone(),
        )));
        if let Err(e) = registered {
            tracing::error!("cannot export the facility registry's metrics: {e}");
        }
        if let Err(e) = audit.register(hub.registry()) {
            tracing::error!("cannot export the audit trail's metrics: {e}");
        }
        let ike_metrics = ike_metrics::IkeMetrics::register(hub.registry())
            .map_err(|e| RuntimeError::Thread(std::io::Error::other(e)))?;
        let usage = match &config.usage {
            Some(u) => Some(crate::usage::Usage::start(
                u,
                usage_source(&hub),
                crate::usage::facility_names(config),
                hub.registry(),
                SystemTime::now(),
            )?),
            None => None,
        };
        let (ike_tx, ike_rx) = std::sync::mpsc::sync_channel(ike::QUEUE);
        let (failed_tx, failed) = mpsc::unbounded_channel();
        let (controls, worker_threads, worker_beats) =
            spawn_workers(gateways, sources, &hub, &ike_tx, &facilities, &failed_tx).await?;
        let routed = apply_kernel_changes(&kernel_changes(None, &plan)).await;
        let ike_beat = Arc::new(Heartbeat::new("ixgw-ike", Instant::now()));
        let ike_thread = match routed {
            Ok(()) => ike::spawn(
                ike_rx,
                &controls,
                ike_metrics,
                facilities.states(),
                Some(events.clone()),
                ike_beat.clone(),
            )
            .map_err(RuntimeError::Thread),
            Err(e) => Err(e),
        };
        let ike_thread = match ike_thread {
            Ok(t) => t,
            Err(e) => {
                stop_workers(&controls, worker_threads).await;
                return Err(e);
            }
        };
        let _ = ike_tx.send(ike::IkeInput::Plan {
            plan: plan.clone(),
            engines,
        });
        let (tls_tx, tls_rx) = mpsc::channel(16);
        let tls_beat = Arc::new(Heartbeat::new("ixgw-tls", Instant::now()));
        let tls_thread = match tls::spawn(
            tls_rx,
            presenter.clone(),
            facilities.states(),
            config.ix.name.clone(),
            tls_beat.clone(),
        ) {
            Ok(t) => t,
            Err(e) => {
                stop_workers(&controls, worker_threads).await;
                return Err(RuntimeError::Thread(e));
            }
        };
        let _ = tls_tx
            .send(tls::TlsControl::Plan {
                plan: plan.clone(),
                new: tls_new,
            })
            .await;

        let ready = Arc::new(AtomicBool::new(true));
        let listener =
            tokio::net::TcpListener::from_std(metrics).map_err(|source| RuntimeError::Metrics {
                addr: metrics_addr,
                source,
            })?;
        let (admin_stop, stop_rx) = oneshot::channel::<()>();
        let mut beats = worker_beats;
        beats.extend([ike_beat, tls_beat]);
        let liveness = Arc::new(Liveness::new(beats));
        let state = crate::admin::AdminState::new(hub.clone(), ready.clone(), liveness.clone());
        let admin = tokio::spawn(crate::admin::serve(listener, state.clone(), async move {
            let _ = stop_rx.await;
        }));
        let shown = Arc::new(arc_swap::ArcSwap::from_pointee(show::Shown::new(
            plan.clone(),
            &bound,
        )));
        let admin_socket = config.metrics.admin_socket.as_deref().and_then(|path| {
            let show = admin_socket::source(
                config.ix.name.clone(),
                hub.clone(),
                shown.clone(),
                facilities.clone(),
            );
            let explicit = path != std::path::Path::new(crate::config::DEFAULT_ADMIN_SOCKET);
            admin_socket::AdminSocket::start(path, explicit, state, show)
        });
        let wake_ike = ike_tx.clone();
        let facility_task = tokio::spawn(facilities::watch(facilities.clone(), move || {
            // A full queue is fine: the IKE thread reads the states after every turn.
            let _ = wake_ike.try_send(ike::IkeInput::Facilities);
        }));
        let (watch, started) = agreements::AgreementWatch::new(config, ike::unix_now());
        for c in &started {
            events.agreement(c);
        }
        let agreements = Arc::new(std::sync::Mutex::new(watch));
        let agreement_task = tokio::spawn(agreements::watch(agreements.clone(), events.clone()));
        let registered = agreements::AgreementCollector::new(agreements.clone())
            .and_then(|c| hub.registry().register(Box::new(c)));
        if let Err(e) = registered {
            tracing::error!("cannot export the agreements' metrics: {e}");
        }
        tracing::info!(%metrics_addr, attachments = plan.attachments.len(), peers = plan.peers.len(), workers, "gateway running");
        Ok(Running {
            failed,
            events,
            agreements,
            agreement_task,
            facilities,
            facility_task,
            controls,
            workers: worker_threads,
            admin,
            admin_stop: Some(admin_stop),
            admin_socket,
            shown,
            hub,
            ready,
            liveness,
            metrics_addr,
            bound,
            ike_tx,
            ike_thread: Some(ike_thread),
            udp_clones,
            socket_drops,
            plan,
            audit,
            usage,
            tls_tx,
            tls_thread: Some(tls_thread),
        })
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn hub(&self) -> &Arc<MetricsHub> {
        &self.hub
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The heartbeats `/live` and the systemd watchdog judge.
    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    /// systemd's `STATUS=` while every thread beats: "N/M peers up, K attachments", the
    /// peers counted as `ixgw_peers_up` and `ixgw_peers_configured` count them.
    pub fn status(&self, now: Instant) -> String {
        watchdog::status_line(self.hub.peer_count(now), self.plan.attachments.len())
    }

    /// Tests only: blocks the worker's thread until the returned sender is used or dropped.
    #[cfg(test)]
    pub(crate) async fn hang_worker(&self) -> std::sync::mpsc::Sender<()> {
        let (release, rx) = std::sync::mpsc::channel();
        let _ = self.controls[0].send(Control::Hang { release: rx }).await;
        release
    }

    /// Resolves with the index of a data-path worker that panicked (a bug). Its places in the
    /// reuse-port groups and its peers' tunnels went with it: the caller should stop the
    /// gateway (the others drain, the audit trail and usage records are finished) and start
    /// it again, as `run` does by exiting with a failure for systemd to restart.
    pub async fn worker_failed(&mut self) -> usize {
        match self.failed.recv().await {
            Some(k) => k,
            None => std::future::pending().await,
        }
    }

    /// Tests only: makes worker `k` panic.
    #[cfg(test)]
    pub(crate) async fn panic_worker(&self, k: usize) {
        let _ = self.controls[k].send(Control::Panic).await;
    }

    /// Tests only: blocks the IKE thread until the returned sender is used or dropped.
    #[cfg(test)]
    pub(crate) fn hang_ike(&self) -> std::sync::mpsc::Sender<()> {
        let (release, rx) = std::sync::mpsc::channel();
        let _ = self.ike_tx.send(ike::IkeInput::Hang(rx));
        release
    }

    /// The audit trail, for the threads that record into it.
    pub(crate) fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The local address of an attachment's first socket.
    pub fn attachment_addr(&self, name: &str) -> Option<SocketAddr> {
        let a = self.plan.attachments.iter().find(|a| a.name == name)?;
        self.bound.get(&SourceKey::of(a, 0)).and_then(|b| b.addr)
    }

    /// Switches to a new validated configuration; on error the running plan is untouched.
    pub async fn reload(&mut self, config: &Config) -> Result<(), RuntimeError> {
        // logrotate's SIGHUP: the audit file is reopened whatever becomes of the reload.
        self.audit.reopen();
        if config.audit.as_ref() != self.audit.config() {
            tracing::warn!("audit changed: takes effect at the next restart");
        }
        if config.usage.as_ref() != self.usage.as_ref().map(crate::usage::Usage::config) {
            tracing::warn!("usage changed: takes effect at the next restart");
        }
        let result = self.try_reload(config).await;
        match &result {
            Ok(()) => {
                self.hub.reload_succeeded(SystemTime::now());
                self.hub.set_peer_series(config.metrics.peer_series);
                self.hub.set_flow_table_capacity(
                    self.plan.limits.flow_table_size * self.controls.len(),
                );
                let q = self.plan.flow_quotas();
                self.hub.set_flow_quotas(q.per_tenant, q.per_facility);
            }
            Err(_) => self.hub.reload_failed(),
        }
        result
    }

    async fn try_reload(&mut self, config: &Config) -> Result<(), RuntimeError> {
        if config.metrics.listen != self.plan.metrics_listen {
            tracing::warn!(
                configured = %config.metrics.listen,
                serving = %self.metrics_addr,
                "metrics.listen changed: takes effect at the next restart"
            );
        }
        if config.metrics.admin_socket.as_deref() != self.admin_socket.as_ref().map(|s| s.path()) {
            tracing::warn!("metrics.admin_socket changed (or could not be bound at the start): takes effect at the next restart");
        }
        if config.dataplane.worker_count() != self.controls.len() {
            tracing::warn!(
                configured = config.dataplane.worker_count(),
                running = self.controls.len(),
                "dataplane.workers changed: takes effect at the next restart"
            );
        }
        let plan = Arc::new(Plan::compile(config, self.plan.generation + 1));
        if self.controls.len() > 1 {
            steering_kept(&self.plan, &plan)?;
        }
        let mut sources = open_sources(&plan, &self.bound, self.controls.len())?;
        let tls_new = std::mem::take(&mut sources[0].tls);
        let mut udp_clones = self.udp_clones.clone();
        sources[0].clone_udp(&mut udp_clones);
        let presenter: Arc<dyn crate::facility::Presenter> = self.facilities.clone();
        let engines = ike_setups(&plan, &udp_clones, &presenter, self.controls.len())?;
        let added = bound_of(&sources);
        // The sockets the new plan drops close with the switch: count their drops until now.
        self.socket_drops.refresh();
        // The new plan's facility states are published before the worker switches, so that
        // it applies them with the plan.
        let previous = self.facilities.switch(config, &plan, ike::unix_now());
        // What peers and tenants the reload removes carried until now is written before
        // their counters go; those kept continue by name.
        if let Some(u) = &self.usage {
            u.flush(crate::usage::Cut::Reload).await;
        }
        let switched = switch_workers(&self.controls, &plan, sources).await;
        if let Err(e) = switched {
            self.facilities.restore(previous);
            return Err(e);
        }
        let _ = self.ike_tx.try_send(ike::IkeInput::Facilities);
        if let Some(u) = &self.usage {
            u.set_names(crate::usage::facility_names(config));
        }
        let keep: Vec<SourceKey> = plan.attachments.iter().flat_map(SourceKey::all).collect();
        self.bound.retain(|k, _| keep.contains(k));
        self.bound.extend(added);
        udp_clones.retain(|k, _| keep.contains(k));
        self.udp_clones = udp_clones;
        let _ = self.ike_tx.send(ike::IkeInput::Plan {
            plan: plan.clone(),
            engines,
        });
        let _ = self
            .tls_tx
            .send(tls::TlsControl::Plan {
                plan: plan.clone(),
                new: tls_new,
            })
            .await;
        self.socket_drops.track(tracked_sockets(&plan, &self.bound));
        let changed = self
            .agreements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reload(config, ike::unix_now());
        for c in &changed {
            self.events.agreement(c);
        }
        self.shown
            .store(Arc::new(show::Shown::new(plan.clone(), &self.bound)));
        let old = std::mem::replace(&mut self.plan, plan);
        let failed = apply_kernel_changes_logged(&kernel_changes(Some(&old), &self.plan)).await;
        let attachments = summary::attachments(&old, &self.plan);
        let peers = summary::peers(&old, &self.plan);
        tracing::info!(
            generation = self.plan.generation,
            peers = self.plan.peers.len(),
            kernel_changes_failed = failed,
            "configuration reloaded: attachments {attachments}, peers {peers}"
        );
        Ok(())
    }

    /// Drains the worker (pending packets are sent) and stops everything.
    pub async fn stop(mut self) -> Result<(), RuntimeError> {
        self.ready.store(false, Ordering::Relaxed);
        self.facility_task.abort();
        self.agreement_task.abort();
        // IKE first: its peers are told the SAs go while the worker still takes SA changes.
        // The thread hands its queue back; held open until the worker is gone, it takes the
        // peers' answers to those Deletes without the worker taking the thread for dead.
        let mut ike_queue = None;
        if let Some(t) = self.ike_thread.take() {
            let _ = self.ike_tx.send(ike::IkeInput::Stop);
            ike_queue = tokio::task::spawn_blocking(move || t.join())
                .await
                .ok()
                .and_then(Result::ok);
        }
        // TLS clients are told their sessions end while the worker still carries them.
        if let Some(t) = self.tls_thread.take() {
            let _ = self.tls_tx.send(tls::TlsControl::Stop).await;
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        stop_workers(&self.controls, std::mem::take(&mut self.workers)).await;
        drop(ike_queue);
        // The workers are gone: the counts are final, and the last record has them all.
        if let Some(u) = self.usage.take() {
            u.stop().await;
        }
        self.events.shutdown();
        let audit = self.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.shutdown()).await;
        if let Some(s) = self.admin_stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.admin).await;
        if let Some(s) = self.admin_socket.take() {
            s.stop().await;
        }
        Ok(())
    }
}

/// What `ixgw check` adds to validation: everything the daemon derives from a configuration
/// before it binds anything — the compiled plan, and each IPsec attachment's IKE
/// configuration (the gateway's key against its certificate, each peer's CAs, identities in
/// their wire form, non-empty traffic selectors).
pub fn preflight(config: &Config) -> Result<(), IkeSetupError> {
    let plan = Plan::compile(config, 1);
    for i in 0..plan.attachments.len() {
        if let Some(ike) = plan.ike_config(AttachmentId(i as u16), ike::unix_now, None, 1) {
            ike?;
        }
    }
    Ok(())
}

/// The IKE engines of `plan`'s IPsec attachments, with clones of their UDP sockets.
fn ike_setups(
    plan: &Plan,
    clones: &HashMap<SourceKey, Arc<std::net::UdpSocket>>,
    presenter: &Arc<dyn crate::facility::Presenter>,
    workers: usize,
) -> Result<Vec<ike::EngineSetup>, RuntimeError> {
    let setups = ike::setups(
        plan,
        |a, io| {
            clones
                .get(&SourceKey::of(&plan.attachments[a.index()], io))
                .cloned()
        },
        presenter,
        workers as u32,
    )?;
    Ok(setups)
}

/// The workers' current counter tables, for the usage recorder.
fn usage_source(hub: &Arc<MetricsHub>) -> crate::usage::Source {
    let hub = hub.clone();
    Box::new(move || (0..hub.workers()).filter_map(|i| hub.current(i)).collect())
}

/// The name of worker `k`'s thread and heartbeat: `ixgw-worker` for the first (the only one
/// unless `dataplane.workers` says more), `ixgw-worker-1` and so on for the others.
fn worker_name(k: usize) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..64)
            .map(|k| match k {
                0 => "ixgw-worker".to_owned(),
                k => format!("ixgw-worker-{k}"),
            })
            .collect()
    });
    names.get(k).map_or("ixgw-worker-n", String::as_str)
}

/// Starts one worker per gateway, each with its sources, and waits until all run their
/// plan; if any cannot, stops those started. Returns their control queues, threads and
/// heartbeats, by index.
#[allow(clippy::type_complexity)]
async fn spawn_workers(
    gateways: Vec<Gateway>,
    sources: Vec<NewSources>,
    hub: &Arc<MetricsHub>,
    ike_tx: &std::sync::mpsc::SyncSender<ike::IkeInput>,
    facilities: &Arc<facilities::Facilities>,
    failed: &mpsc::UnboundedSender<usize>,
) -> Result<
    (
        Vec<mpsc::Sender<Control>>,
        Vec<std::thread::JoinHandle<()>>,
        Vec<Arc<Heartbeat>>,
    ),
    RuntimeError,
> {
    let n = gateways.len();
    let mut lanes: Vec<Option<lanes::Lanes>> = match n {
        1 => vec![None],
        n => lanes::Lanes::new(n).into_iter().map(Some).collect(),
    };
    let (mut controls, mut threads, mut beats, mut started) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, (gateway, sources)) in gateways.into_iter().zip(sources).enumerate() {
        let (control, control_rx) = mpsc::channel(64);
        let (ready, ready_rx) = oneshot::channel();
        let beat = Arc::new(Heartbeat::new(worker_name(k), Instant::now()));
        let spawned = worker::spawn(
            k,
            lanes[k].take(),
            gateway,
            sources,
            hub.clone(),
            control_rx,
            ready,
            ike_tx.clone(),
            facilities.states(),
            beat.clone(),
            failed.clone(),
        );
        match spawned {
            Ok(t) => {
                controls.push(control);
                threads.push(t);
                beats.push(beat);
                started.push(ready_rx);
            }
            Err(e) => {
                stop_workers(&controls, threads).await;
                return Err(RuntimeError::Thread(e));
            }
        }
    }
    let mut result = Ok(());
    for ready in started {
        let r = match ready.await {
            Ok(r) => r.map_err(RuntimeError::Worker),
            Err(_) => Err(RuntimeError::WorkerGone),
        };
        result = result.and(r);
    }
    if let Err(e) = result {
        stop_workers(&controls, threads).await;
        return Err(e);
    }
    facilities.set_workers(controls.iter().map(mpsc::Sender::downgrade).collect());
    Ok((controls, threads, beats))
}

/// Switches every worker to `plan`, each with its sources, all or none: each registers its
/// sources (all at once) and says whether it is ready, then waits; once all are, all
/// switch, else none does.
async fn switch_workers(
    controls: &[mpsc::Sender<Control>],
    plan: &Arc<Plan>,
    sources: Vec<NewSources>,
) -> Result<(), RuntimeError> {
    let mut commits = Vec::with_capacity(controls.len());
    let mut ready = Vec::with_capacity(controls.len());
    let mut result = Ok(());
    for (control, sources) in controls.iter().zip(sources) {
        let (done, done_rx) = oneshot::channel();
        let (commit, commit_rx) = oneshot::channel();
        let reload = Control::Reload {
            plan: plan.clone(),
            sources,
            done,
            commit: commit_rx,
        };
        if control.send(reload).await.is_err() {
            result = Err(RuntimeError::WorkerGone);
            break;
        }
        commits.push(commit);
        ready.push(done_rx);
    }
    for done in ready {
        let r = match done.await {
            Ok(r) => r.map_err(RuntimeError::Worker),
            Err(_) => Err(RuntimeError::WorkerGone),
        };
        result = result.and(r);
    }
    for commit in commits {
        let _ = commit.send(result.is_ok());
    }
    result
}

/// Drains the workers (pending packets are sent) and waits for their threads to end.
async fn stop_workers(
    controls: &[mpsc::Sender<Control>],
    threads: Vec<std::thread::JoinHandle<()>>,
) {
    let mut stopping = Vec::new();
    for control in controls {
        let (done, done_rx) = oneshot::channel();
        if control.send(Control::Stop { done }).await.is_ok() {
            stopping.push(done_rx);
        }
    }
    for done in stopping {
        let _ = done.await;
    }
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
}

/// `ixgw run`: start, then serve signals until SIGTERM/SIGINT. SIGHUP reloads `path`.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let config = Config::load(path)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut running = Running::start(&config, None).await?;
    notify(&[sd_notify::NotifyState::Ready]);
    let interval = watchdog::from_env();
    let mut watchdog = watchdog::Watchdog::new(interval);
    let mut report = tokio::time::interval(watchdog::period(interval));
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            k = running.worker_failed() => {
                failed = Some(k);
                break;
            }
            _ = report.tick() => tell_systemd(&mut watchdog, &running),
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading, monotonic_now()]);
                match Config::load(path) {
                    Ok(c) => {
                        if let Err(e) = running.reload(&c).await {
                            tracing::error!("reload failed, the previous configuration keeps running: {e}");
                        }
                    }
                    Err(e) => {
                        running.audit().reopen();
                        running.hub().reload_failed();
                        tracing::error!("reload rejected, the previous configuration keeps running: {e}");
                    }
                }
                notify(&[sd_notify::NotifyState::Ready]);
                tell_systemd(&mut watchdog, &running);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: draining the data path");
    running.stop().await?;
    match failed {
        // A failure status: systemd's `Restart=on-failure` starts the gateway again.
        Some(k) => anyhow::bail!(
            "data-path worker {k} panicked: stopped so that the gateway restarts whole"
        ),
        None => Ok(()),
    }
}

/// `WATCHDOG=1` if every thread beats, and `STATUS=`.
fn tell_systemd(watchdog: &mut watchdog::Watchdog, running: &Running) {
    let now = Instant::now();
    let report = watchdog.report(running.liveness().check(now), || running.status(now));
    let status = sd_notify::NotifyState::Status(&report.status);
    if report.keepalive {
        notify(&[sd_notify::NotifyState::Watchdog, status]);
    } else {
        notify(&[status]);
    }
}

fn monotonic_now() -> sd_notify::NotifyState<'static> {
    sd_notify::NotifyState::monotonic_usec_now()
        .unwrap_or(sd_notify::NotifyState::Status("reloading"))
}

fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify: {e}");
    }
}
