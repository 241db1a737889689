//! The capacity bench's load generator and sink (`netns-tests/bench-capacity.sh` runs them in
//! their own namespaces, ixgw in a third): WireGuard peers made of boringtun `Tunn`s whose
//! keys are derived from their numbers, so that `config` can write the gateway's
//! configuration for exactly the peers `gen` and `sink` play.
//!
//! * `config` writes the gateway's key files and prints its YAML: tenant `gen` (10.0.0.0/16 as
//!   exchange 100.64.0.0/16) with one WireGuard attachment of `--peers` peers, tenant `sink`
//!   (the same 10.0.0.0/16, exchange 100.65.0.0/16) with one of `--sinks` peers, UDP allowed
//!   from gen to sink.
//! * `sink` handshakes its peers with the gateway, then counts the data messages the gateway
//!   sends them (without decrypting them: the sink must cost less than the gateway) and writes
//!   the running totals to a file every 50 ms.
//! * `gen` handshakes its peers, then searches the highest rate the gateway forwards with at
//!   most 1 % loss for each packet size, and measures the goodput at 2× and 4× that rate
//!   offered. Every step's traffic is encrypted before the step starts (pre-built), so that
//!   during the step the generator only sends: UDP GSO, a run of up to 64 equally long
//!   datagrams per system call, from several sockets (GRO on the gateway's side then sees a
//!   run per sender, as from real facilities that use GSO, such as wireguard-go). The
//!   gateway's CPU time comes from `/proc/PID/stat`. Results: one JSON object per size.
//!
//! Everything runs on the 2 shared cores of the development machine: the generator's own
//! sending competes with the gateway (see benches/RESULTS.md).

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use clap::{Parser, Subcommand};
use ixgw::tunnel::wireguard::keys;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

/// A data message's header and tag.
const DATA_OVERHEAD: usize = 32;
/// The longest GSO send.
const GSO_BYTES: usize = 65_000;
/// Loss allowed at capacity.
const MAX_LOSS: f64 = 0.01;
/// The most memory a step's pre-built traffic may take.
const MAX_PREBUILT: usize = 3 << 30;
/// Linux reports process CPU time in ticks of 1/100 s (USER_HZ) on every architecture ixgw runs on.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the gateway's key files into DIR and prints its configuration.
    Config {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        peers: u32,
        #[arg(long, default_value_t = 8)]
        sinks: u32,
        /// The gateway's address facing the generator.
        #[arg(long)]
        ix_gen: SocketAddr,
        /// The gateway's address facing the sink.
        #[arg(long)]
        ix_sink: SocketAddr,
        #[arg(long)]
        metrics: SocketAddr,
    },
    /// The crypto floor: ChaCha20-Poly1305 open + seal of one WireGuard packet of each size
    /// with ring (as boringtun does), packets per second on one core.
    Floor {
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420")]
        sizes: Vec<usize>,
    },
    /// Every generator peer starts a handshake at once, as after an IX restart; each behaves
    /// as a WireGuard client (boringtun's timers: a cookie reply is kept and the initiation
    /// retried after 5 s). Prints when how many were up.
    Storm {
        #[arg(long)]
        ix: SocketAddr,
        #[arg(long)]
        bind: Ipv4Addr,
        #[arg(long, default_value_t = 10_000)]
        peers: u32,
        #[arg(long, default_value_t = 16)]
        sockets: usize,
        /// Seconds to wait for the last one.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Handshakes the sink peers and counts what reaches them.
    Sink {
        #[arg(long)]
        ix: SocketAddr,
        #[arg(long)]
        bind: Ipv4Addr,
        #[arg(long, default_value_t = 8)]
        sinks: u32,
        /// Where the running totals go ("packets bytes").
        #[arg(long)]
        count: PathBuf,
    },
    /// Handshakes the generator's peers and runs the capacity search.
    Gen {
        #[arg(long)]
        ix: SocketAddr,
        #[arg(long)]
        bind: Ipv4Addr,
        #[arg(long, default_value_t = 64)]
        peers: u32,
        #[arg(long, default_value_t = 8)]
        sinks: u32,
        /// Sockets the peers are spread over.
        #[arg(long, default_value_t = 8)]
        sockets: usize,
        #[arg(long)]
        sink_count: PathBuf,
        /// The gateway's process, for its CPU time.
        #[arg(long)]
        ixgw_pid: u32,
        /// Total IPv4 lengths of the inner packets.
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420")]
        sizes: Vec<usize>,
        /// Seconds each rate is offered.
        #[arg(long, default_value_t = 2.0)]
        step: f64,
        /// The first rate tried, packets per second.
        #[arg(long, default_value_t = 50_000)]
        start: u64,
    },
}

/// The private key of peer `i` of `role`.
fn secret(role: &str, i: u32) -> StaticSecret {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"ixgw-loadgen ");
    ctx.update(role.as_bytes());
    ctx.update(&i.to_le_bytes());
    let d = ctx.finish();
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    StaticSecret::from(k)
}

fn public(role: &str, i: u32) -> [u8; 32] {
    PublicKey::from(&secret(role, i)).to_bytes()
}

/// Facility code `i` of a prefecture: nine digits and their Luhn check digit.
fn facility(prefecture: u32, i: u32) -> String {
    let nine = format!("{prefecture:02}1{i:06}");
    let check = ixgw::ids::FacilityCode::check_digit(nine.as_bytes());
    format!("{nine}{check}")
}

/// Host `i` of 10.0.0.0/16 (never .0 or .255 of a /24).
fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn config(
    dir: &Path,
    peers: u32,
    sinks: u32,
    ix_gen: SocketAddr,
    ix_sink: SocketAddr,
    metrics: SocketAddr,
) -> io::Result<String> {
    std::fs::create_dir_all(dir)?;
    for (name, i) in [("ix-gen", 0), ("ix-sink", 1)] {
        let path = dir.join(format!("{name}.key"));
        std::fs::write(&path, keys::encode(&secret("ix", i).to_bytes()) + "\n")?;
    }
    let mut y = String::new();
    y += "ix:\n  name: bench-capacity\n  exchange_space: 100.64.0.0/10\n";
    y += &format!(
        "metrics:\n  listen: {metrics}\n  admin_socket: {}/ixgw.sock\n",
        dir.display()
    );
    y += "dataplane:\n  flow_table_size: 65536\n";
    y += "tenants:\n";
    for (tenant, exchange, attachment, listen, key, role, n) in [
        (
            "gen",
            "100.64.0.0/16",
            "gen-wg",
            ix_gen,
            "ix-gen.key",
            "gen",
            peers,
        ),
        (
            "sink",
            "100.65.0.0/16",
            "sink-wg",
            ix_sink,
            "ix-sink.key",
            "sink",
            sinks,
        ),
    ] {
        y += &format!("  - name: {tenant}\n    networks:\n      - {{ internal: 10.0.0.0/16, exchange: {exchange} }}\n");
        y += &format!("    attachments:\n      - name: {attachment}\n        type: wireguard\n        listen: {listen}\n        private_key_file: {}/{key}\n        peers:\n", dir.display());
        let prefecture = if role == "gen" { 42 } else { 32 };
        for i in 0..n {
            y += &format!(
                "          - {{ name: {role}-{i}, facility: \"{}\", public_key: \"{}\", allowed_ips: [{}/32] }}\n",
                facility(prefecture, i),
                keys::encode(&public(role, i)),
                host(i)
            );
        }
    }
    y += "policies:\n  - name: gen-to-sink\n    from: { tenant: gen }\n    to: { tenant: sink }\n    allow: [udp]\n";
    Ok(y)
}

/// A nonblocking UDP socket with quinn-udp's batched receive and GSO send.
struct Socket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl Socket {
    fn bind(addr: Ipv4Addr) -> io::Result<Socket> {
        let s = std::net::UdpSocket::bind((addr, 0))?;
        let state = UdpSocketState::new((&s).into())?;
        let _ = state.set_recv_buffer_size((&s).into(), 8 << 20);
        let _ = state.set_send_buffer_size((&s).into(), 8 << 20);
        Ok(Socket {
            io: tokio::net::UdpSocket::from_std(s)?,
            state,
        })
    }

    async fn send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let t = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        loop {
            match self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &t)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.writable().await?,
                other => return other,
            }
        }
    }

    /// Waits for datagrams and reads one batch: (metas, how many).
    async fn recv(&self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        loop {
            self.io.readable().await?;
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match self.io.try_io(Interest::READABLE, || {
                self.state.recv((&self.io).into(), &mut slices, meta)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// Handshakes `tunn` with the gateway over `socket` (initiator), then sends the first
/// keepalive so that the gateway's session is current. Retries every second, 10 times.
async fn handshake(tunn: &mut Tunn, socket: &Socket, ix: SocketAddr) -> io::Result<()> {
    let mut buf = vec![0u8; 2048];
    let mut rbufs = vec![vec![0u8; 2048]; 1];
    let mut meta = [RecvMeta::default(); 1];
    for _ in 0..10 {
        let init = match tunn.format_handshake_initiation(&mut buf, true) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            _ => return Err(io::Error::other("no handshake initiation")),
        };
        socket.send(ix, &init, None).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(n) =
            tokio::time::timeout_at(deadline, socket.recv(&mut rbufs, &mut meta)).await
        {
            let n = n?;
            if n == 0 {
                continue;
            }
            let d = rbufs[0][..meta[0].len].to_vec();
            match tunn.decapsulate(Some(ix.ip()), &d, &mut buf) {
                TunnResult::WriteToNetwork(out) => {
                    let out = out.to_vec();
                    socket.send(ix, &out, None).await?;
                    // Anything queued (the keepalive) follows.
                    while let TunnResult::WriteToNetwork(more) =
                        tunn.decapsulate(None, &[], &mut buf)
                    {
                        let more = more.to_vec();
                        socket.send(ix, &more, None).await?;
                    }
                }
                TunnResult::Err(e) => eprintln!("handshake: {e:?}"),
                _ => {}
            }
            if tunn.time_since_last_handshake().is_some() {
                if let TunnResult::WriteToNetwork(k) = tunn.encapsulate(&[], &mut buf) {
                    let k = k.to_vec();
                    socket.send(ix, &k, None).await?;
                }
                return Ok(());
            }
        }
    }
    Err(io::Error::other("no handshake response in 10 s"))
}

async fn sink(ix: SocketAddr, bind: Ipv4Addr, sinks: u32, count: PathBuf) -> io::Result<()> {
    let ix_public = PublicKey::from(&secret("ix", 1));
    let packets = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for j in 0..sinks {
        let socket = Socket::bind(bind)?;
        let mut tunn = Tunn::new(secret("sink", j), ix_public, None, Some(25), j, None);
        handshake(&mut tunn, &socket, ix).await?;
        let (packets, bytes) = (packets.clone(), bytes.clone());
        tasks.spawn(async move {
            let mut bufs = vec![vec![0u8; 65536]; quinn_udp::BATCH_SIZE];
            let mut meta = [RecvMeta::default(); quinn_udp::BATCH_SIZE];
            let mut out = vec![0u8; 2048];
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let TunnResult::WriteToNetwork(d) = tunn.update_timers(&mut out) {
                            let d = d.to_vec();
                            let _ = socket.send(ix, &d, None).await;
                        }
                    }
                    n = socket.recv(&mut bufs, &mut meta) => {
                        let Ok(n) = n else { return };
                        for (m, b) in meta.iter().zip(&bufs).take(n) {
                            let stride = if m.stride == 0 { m.len } else { m.stride };
                            for seg in b[..m.len].chunks(stride) {
                                if seg.first() == Some(&4) && seg.len() > DATA_OVERHEAD {
                                    packets.fetch_add(1, Ordering::Relaxed);
                                    bytes.fetch_add((seg.len() - DATA_OVERHEAD) as u64, Ordering::Relaxed);
                                } else if seg.first() != Some(&4) {
                                    // A rekey or cookie from the gateway: answered.
                                    if let TunnResult::WriteToNetwork(d) =
                                        tunn.decapsulate(Some(ix.ip()), seg, &mut out)
                                    {
                                        let d = d.to_vec();
                                        let _ = socket.send(ix, &d, None).await;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    }
    eprintln!("sink: {sinks} peers up");
    let tmp = count.with_extension("tmp");
    loop {
        let line = format!(
            "{} {}\n",
            packets.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed)
        );
        std::fs::write(&tmp, line)?;
        std::fs::rename(&tmp, &count)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one socket's peers of a storm saw.
#[derive(Default)]
struct StormTally {
    /// Seconds from the start until each peer's handshake completed.
    up: Vec<f64>,
    cookies: u64,
    initiations: u64,
}

/// Drives the peers `i` with `i % sockets == s` through their handshakes on one socket.
async fn storm_socket(
    ix: SocketAddr,
    socket: Socket,
    mut peers: Vec<(u32, Tunn)>,
    start: Instant,
    deadline: Instant,
) -> io::Result<StormTally> {
    let mut tally = StormTally::default();
    let mut out = vec![0u8; 2048];
    let mut done = vec![false; peers.len()];
    let slot_of = |index: u32, peers: &[(u32, Tunn)]| peers.iter().position(|(i, _)| *i == index);
    for (_, tunn) in peers.iter_mut() {
        if let TunnResult::WriteToNetwork(d) = tunn.format_handshake_initiation(&mut out, false) {
            let d = d.to_vec();
            socket.send(ix, &d, None).await?;
            tally.initiations += 1;
        }
    }
    let mut bufs = vec![vec![0u8; 65536]; quinn_udp::BATCH_SIZE];
    let mut meta = [RecvMeta::default(); quinn_udp::BATCH_SIZE];
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while done.iter().any(|d| !d) && Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick() => {
                // boringtun's timers retry the initiation (with the cookie's MAC2 if one came).
                for (k, (_, tunn)) in peers.iter_mut().enumerate() {
                    if done[k] {
                        continue;
                    }
                    if let TunnResult::WriteToNetwork(d) = tunn.update_timers(&mut out) {
                        let d = d.to_vec();
                        socket.send(ix, &d, None).await?;
                        tally.initiations += 1;
                    }
                }
            }
            n = socket.recv(&mut bufs, &mut meta) => {
                let n = n?;
                let mut replies = Vec::new();
                for (m, b) in meta.iter().zip(&bufs).take(n) {
                    let stride = if m.stride == 0 { m.len } else { m.stride };
                    for seg in b[..m.len].chunks(stride) {
                        // A response (2) or cookie reply (3) names our index at byte 8 or 4.
                        let at = match seg.first() { Some(2) => 8, Some(3) => 4, _ => continue };
                        let Some(index) = seg.get(at..at + 4) else { continue };
                        let index = u32::from_le_bytes(index.try_into().expect("4 bytes")) >> 8;
                        let Some(k) = slot_of(index, &peers) else { continue };
                        if seg[0] == 3 {
                            tally.cookies += 1;
                        }
                        let tunn = &mut peers[k].1;
                        if let TunnResult::WriteToNetwork(d) = tunn.decapsulate(Some(ix.ip()), seg, &mut out) {
                            replies.push(d.to_vec());
                        }
                        if !done[k] && tunn.time_since_last_handshake().is_some() {
                            done[k] = true;
                            tally.up.push(start.elapsed().as_secs_f64());
                        }
                    }
                }
                for r in replies {
                    socket.send(ix, &r, None).await?;
                }
            }
        }
    }
    Ok(tally)
}

async fn storm(
    ix: SocketAddr,
    bind: Ipv4Addr,
    peers: u32,
    sockets: usize,
    timeout: u64,
) -> io::Result<()> {
    let ix_public = PublicKey::from(&secret("ix", 0));
    // Keys and sockets first: the storm starts when every peer is ready to send.
    let mut groups: Vec<Vec<(u32, Tunn)>> = (0..sockets).map(|_| Vec::new()).collect();
    for i in 0..peers {
        let tunn = Tunn::new(secret("gen", i), ix_public, None, None, i, None);
        groups[i as usize % sockets].push((i, tunn));
    }
    let socks: Vec<Socket> = (0..sockets)
        .map(|_| Socket::bind(bind))
        .collect::<io::Result<_>>()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(timeout);
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, group) in socks.into_iter().zip(groups) {
        tasks.spawn_local(storm_socket(ix, socket, group, start, deadline));
    }
    let mut up = Vec::new();
    let (mut cookies, mut initiations) = (0, 0);
    while let Some(t) = tasks.join_next().await {
        let t = t.map_err(io::Error::other)??;
        up.extend(t.up);
        cookies += t.cookies;
        initiations += t.initiations;
    }
    up.sort_by(f64::total_cmp);
    let at = |q: f64| {
        up.get(((up.len() as f64 * q) as usize).min(up.len().saturating_sub(1)))
            .copied()
            .unwrap_or(-1.0)
    };
    println!(
        "{{\"peers\":{peers},\"up\":{},\"all_up_s\":{:.3},\"p50_s\":{:.3},\"p99_s\":{:.3},\"cookies\":{cookies},\"initiations\":{initiations}}}",
        up.len(),
        if up.len() == peers as usize { at(1.0) } else { -1.0 },
        at(0.5),
        at(0.99),
    );
    Ok(())
}

fn read_count(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut it = text.split_whitespace().map(|w| w.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The process's CPU time (user + system), seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / TICKS_PER_SECOND
}

struct Peer {
    tunn: Tunn,
    socket: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

struct Gen {
    ix: SocketAddr,
    sockets: Vec<Socket>,
    peers: Vec<Peer>,
}

/// What one step measured.
#[derive(Debug, Clone, Copy)]
struct Step {
    offered_pps: f64,
    sent: u64,
    received: u64,
    cpu: f64,
    seconds: f64,
}

impl Step {
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
    fn goodput_pps(&self) -> f64 {
        self.received as f64 / self.seconds
    }
}

impl Gen {
    async fn handshake_all(&mut self) -> io::Result<()> {
        let ix_public = PublicKey::from(&secret("ix", 0));
        for (i, p) in self.peers.iter_mut().enumerate() {
            p.tunn = Tunn::new(
                secret("gen", i as u32),
                ix_public,
                None,
                None,
                i as u32,
                None,
            );
            handshake(&mut p.tunn, &self.sockets[p.socket], self.ix).await?;
        }
        Ok(())
    }

    /// Encrypts `count` packets of `size` bytes, round robin over the peers, into one buffer
    /// per socket (every datagram of a size is equally long: `wire` bytes; boringtun does not
    /// pad the inner packet to 16 bytes as the WireGuard paper suggests).
    fn prebuild(&mut self, size: usize, count: usize) -> (Vec<Vec<u8>>, usize) {
        let wire = DATA_OVERHEAD + size;
        let mut out: Vec<Vec<u8>> = (0..self.sockets.len())
            .map(|_| Vec::with_capacity(count / self.sockets.len() * wire + wire))
            .collect();
        let payload = vec![0x5a; size - 28];
        let mut inner = vec![0u8; 2048];
        let mut buf = vec![0u8; 2048];
        for k in 0..count {
            let n_peers = self.peers.len();
            let p = &mut self.peers[k % n_peers];
            let n = ixgw::wire::build::udp(&mut inner, p.src, p.dst, 40_000, 9, &payload)
                .expect("packet fits");
            match p.tunn.encapsulate(&inner[..n], &mut buf) {
                TunnResult::WriteToNetwork(d) => {
                    assert_eq!(d.len(), wire, "datagrams of one step are equally long");
                    out[p.socket].extend_from_slice(d);
                }
                other => panic!("no session to encrypt with: {other:?}"),
            }
        }
        (out, wire)
    }

    /// Offers `rate` packets per second of `size` bytes for `secs` seconds.
    async fn step(
        &mut self,
        rate: f64,
        size: usize,
        secs: f64,
        sink_count: &Path,
        pid: u32,
    ) -> io::Result<Step> {
        let count = ((rate * secs) as usize).max(self.peers.len());
        let (bufs, wire) = self.prebuild(size, count);
        let per_send = (GSO_BYTES / wire).clamp(1, 64);
        let (r0, _) = read_count(sink_count);
        let cpu0 = cpu_seconds(pid);
        let start = Instant::now();
        let mut offsets = vec![0usize; bufs.len()];
        let mut sent = 0u64;
        let mut next = 0usize;
        while offsets.iter().zip(&bufs).any(|(o, b)| o < &b.len()) {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            if sent >= due {
                tokio::time::sleep(Duration::from_micros(200)).await;
                continue;
            }
            // Up to one GSO send per socket in turn until caught up.
            let s = next % bufs.len();
            next += 1;
            let left = bufs[s].len() - offsets[s];
            if left == 0 {
                continue;
            }
            let want = ((due - sent) as usize).min(per_send) * wire;
            let len = want.min(left);
            let chunk = &bufs[s][offsets[s]..offsets[s] + len];
            let segment = (len > wire).then_some(wire);
            self.sockets[s].send(self.ix, chunk, segment).await?;
            offsets[s] += len;
            sent += (len / wire) as u64;
        }
        let seconds = start.elapsed().as_secs_f64();
        // What is still in flight arrives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cpu = cpu_seconds(pid) - cpu0;
        let (r1, _) = read_count(sink_count);
        Ok(Step {
            offered_pps: sent as f64 / seconds,
            sent,
            received: r1 - r0,
            cpu,
            seconds,
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn gen(
    ix: SocketAddr,
    bind: Ipv4Addr,
    peers: u32,
    sinks: u32,
    sockets: usize,
    sink_count: PathBuf,
    pid: u32,
    sizes: Vec<usize>,
    step: f64,
    start: u64,
) -> io::Result<()> {
    let ix_public = PublicKey::from(&secret("ix", 0));
    let mut g = Gen {
        ix,
        sockets: (0..sockets)
            .map(|_| Socket::bind(bind))
            .collect::<io::Result<_>>()?,
        peers: (0..peers)
            .map(|i| Peer {
                tunn: Tunn::new(secret("gen", i), ix_public, None, None, i, None),
                socket: i as usize % sockets,
                src: host(i),
                dst: {
                    let h = host(i % sinks);
                    Ipv4Addr::new(100, 65, h.octets()[2], h.octets()[3])
                },
            })
            .collect(),
    };
    for &size in &sizes {
        // Fresh sessions for every size: a search takes longer than a session may live.
        g.handshake_all().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let max_rate = (MAX_PREBUILT / (size + 64)) as f64 / step;
        let mut good: Option<Step> = None;
        let mut bad: Option<f64> = None;
        let mut rate = start as f64;
        // Up by doubling until loss, then 4 halvings of the interval.
        for _ in 0..16 {
            let s = g.step(rate, size, step, &sink_count, pid).await?;
            eprintln!(
                "size {size}: offered {:.0} pps, received {:.0} pps, loss {:.2} %",
                s.offered_pps,
                s.goodput_pps(),
                100.0 * s.loss()
            );
            if s.loss() <= MAX_LOSS && s.offered_pps >= 0.95 * rate {
                good = Some(s);
            } else {
                bad = Some(rate);
            }
            rate = match (good, bad) {
                (_, None) => rate * 2.0,
                (None, Some(b)) => b / 2.0,
                (Some(g), Some(b)) => {
                    if b / g.offered_pps < 1.07 {
                        break;
                    }
                    (g.offered_pps + b) / 2.0
                }
            };
            if rate > max_rate {
                break;
            }
        }
        let Some(cap) = good else {
            println!("{{\"size\":{size},\"error\":\"no rate below 1 % loss\"}}");
            continue;
        };
        let over2 = g
            .step(2.0 * cap.offered_pps, size, step, &sink_count, pid)
            .await?;
        let over4 = g
            .step(4.0 * cap.offered_pps, size, step, &sink_count, pid)
            .await?;
        let gb = |s: &Step| s.received as f64 * size as f64 / 1e9;
        println!(
            "{{\"size\":{size},\"capacity_pps\":{:.0},\"capacity_mbps\":{:.1},\"cpu_s_per_gb\":{:.3},\
             \"offered_2x_pps\":{:.0},\"goodput_2x_pps\":{:.0},\"offered_4x_pps\":{:.0},\"goodput_4x_pps\":{:.0},\
             \"loss_2x\":{:.4},\"loss_4x\":{:.4}}}",
            cap.offered_pps,
            cap.goodput_pps() * size as f64 * 8.0 / 1e6,
            cap.cpu / gb(&cap).max(1e-9),
            over2.offered_pps,
            over2.goodput_pps(),
            over4.offered_pps,
            over4.goodput_pps(),
            over2.loss(),
            over4.loss(),
        );
    }
    Ok(())
}

/// Open + seal of a `size`-byte inner packet (padded as WireGuard pads it), per second.
fn floor(size: usize) -> f64 {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7; 32]).expect("key"));
    let padded = size.div_ceil(16) * 16;
    let mut buf = vec![0x5a; padded + 16];
    let nonce = |n: u64| {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(b)
    };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        for _ in 0..1000 {
            let tag = key
                .seal_in_place_separate_tag(nonce(n), Aad::empty(), &mut buf[..padded])
                .expect("seal");
            buf[padded..].copy_from_slice(tag.as_ref());
            key.open_in_place(nonce(n), Aad::empty(), &mut buf)
                .expect("open");
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Config {
            dir,
            peers,
            sinks,
            ix_gen,
            ix_sink,
            metrics,
        } => print!("{}", config(&dir, peers, sinks, ix_gen, ix_sink, metrics)?),
        Command::Floor { sizes } => {
            for size in sizes {
                println!("{{\"size\":{size},\"floor_pps\":{:.0}}}", floor(size));
            }
        }
        Command::Sink {
            ix,
            bind,
            sinks,
            count,
        } => rt.block_on(sink(ix, bind, sinks, count))?,
        Command::Storm {
            ix,
            bind,
            peers,
            sockets,
            timeout,
        } => {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, storm(ix, bind, peers, sockets, timeout))?
        }
        Command::Gen {
            ix,
            bind,
            peers,
            sinks,
            sockets,
            sink_count,
            ixgw_pid,
            sizes,
            step,
            start,
        } => rt.block_on(gen(
            ix, bind, peers, sinks, sockets, sink_count, ixgw_pid, sizes, step, start,
        ))?,
    }
    Ok(())
}
