//! The capacity bench's load generator and sink (`netns-tests/bench-capacity.sh` runs them in
//! their own namespaces, ixgw in a third). Their peers are WireGuard peers made of boringtun
//! `Tunn`s whose keys are derived from their numbers, or IPsec peers (ESP in UDP) whose CHILD
//! SAs ixgw's own IKEv2 initiator negotiates with the gateway ([`ipsec`]); `config` writes the
//! gateway's configuration for exactly the peers `gen` and `sink` play.
//!
//! * `config` writes the gateway's key files and prints its YAML: tenant `gen` (10.0.0.0/16 as
//!   exchange 100.64.0.0/16) with one attachment of `--peers` peers, tenant `sink` (the same
//!   10.0.0.0/16, exchange 100.65.0.0/16) with one of `--sinks` peers, UDP allowed from gen to
//!   sink; each attachment WireGuard or IPsec (`--gen-tunnel`, `--sink-tunnel`).
//! * `sink` brings its peers up with the gateway (WireGuard handshakes, or IKE), then counts
//!   the data messages or ESP packets the gateway sends them (without decrypting them: the
//!   sink must cost less than the gateway) and writes the running totals to a file every
//!   50 ms.
//! * `gen` brings its peers up, then searches the highest rate the gateway forwards with at
//!   most 1 % loss for each packet size, and measures the goodput at 2× and 4× that rate
//!   offered. Every step's traffic is encrypted before the step starts (pre-built), so that
//!   during the step the generator only sends: UDP GSO, a run of up to 64 equally long
//!   datagrams per system call, from several sockets (GRO on the gateway's side then sees a
//!   run per sender, as from real facilities that use GSO, such as wireguard-go). The
//!   gateway's CPU time comes from `/proc/PID/stat`. Results: one JSON object per size.
//! * `floor` measures the crypto floor of a path ([`floor`]).
//!
//! Everything runs on the 2 shared cores of the development machine: the generator's own
//! sending competes with the gateway (see benches/RESULTS.md).

mod floor;
mod ipsec;

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use clap::{Parser, Subcommand, ValueEnum};
use ixgw::crypto::SystemRandom;
use ixgw::tunnel::ipsec::esp::OutboundSa;
use ixgw::tunnel::wireguard::keys;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

use floor::AeadName;

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

/// The kind of an attachment and of its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tunnel {
    Wireguard,
    /// IKEv2 with pre-shared keys; ESP in UDP.
    Ipsec,
}

impl Tunnel {
    fn name(self) -> &'static str {
        match self {
            Tunnel::Wireguard => "wireguard",
            Tunnel::Ipsec => "esp",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Writes the gateway's key files into DIR and prints its configuration.
    Config {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        sides: Sides,
        #[arg(long)]
        metrics: SocketAddr,
    },
    /// The crypto floor: `open`'s AEAD opening and `seal`'s sealing one packet of each size,
    /// packets per second on one core.
    Floor {
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420")]
        sizes: Vec<usize>,
        #[arg(long, value_enum, default_value_t = AeadName::ChaCha20Poly1305)]
        open: AeadName,
        #[arg(long, value_enum, default_value_t = AeadName::ChaCha20Poly1305)]
        seal: AeadName,
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
    /// Brings the sink peers up and counts what reaches them.
    Sink {
        /// The gateway's address (IPsec: its IKE port).
        #[arg(long)]
        ix: SocketAddr,
        #[arg(long)]
        bind: Ipv4Addr,
        #[arg(long, default_value_t = 8)]
        sinks: u32,
        #[arg(long, value_enum, default_value_t = Tunnel::Wireguard)]
        tunnel: Tunnel,
        /// The gateway's configuration (IPsec: the peers' identities, keys and proposals).
        #[arg(long, required_if_eq("tunnel", "ipsec"))]
        config: Option<PathBuf>,
        /// Where the running totals go ("packets bytes").
        #[arg(long)]
        count: PathBuf,
    },
    /// Brings the generator's peers up and runs the capacity search.
    Gen {
        /// The gateway's address (IPsec: its IKE port).
        #[arg(long)]
        ix: SocketAddr,
        #[arg(long)]
        bind: Ipv4Addr,
        #[arg(long, default_value_t = 64)]
        peers: u32,
        #[arg(long, default_value_t = 8)]
        sinks: u32,
        #[arg(long, value_enum, default_value_t = Tunnel::Wireguard)]
        tunnel: Tunnel,
        /// The gateway's configuration (IPsec: the peers' identities, keys and proposals).
        #[arg(long, required_if_eq("tunnel", "ipsec"))]
        config: Option<PathBuf>,
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

/// The pre-shared key of IPsec peer `i` of `role`, as its key file holds it.
fn psk(role: &str, i: u32) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"ixgw-loadgen psk ");
    ctx.update(role.as_bytes());
    ctx.update(&i.to_le_bytes());
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("0x{hex}")
}

/// The YAML of attachment `ROLE-wg` or `ROLE-ipsec` with `n` peers `ROLE-0` .. listening on
/// `listen` (IPsec: the IKE port; NAT-T on 4500), its key files written into `dir`.
///
/// IPsec attachments carry 1420-byte inner packets (`mtu: 1420`), as WireGuard's do, so that
/// the bench offers ESP the same sizes: ESP in UDP of a 1420-byte packet with AES-GCM is 1484
/// bytes on the wire, inside the 1500 of the veths (the default 1400 leaves room for AES-CBC
/// with HMAC-SHA-512, which the bench does not negotiate). Everything else is the default:
/// proposals, rekey times, DPD.
fn attachment(
    dir: &Path,
    tunnel: Tunnel,
    role: &str,
    listen: SocketAddr,
    n: u32,
) -> io::Result<String> {
    let prefecture = if role == "gen" { 42 } else { 32 };
    let ix_key = if role == "gen" { 0 } else { 1 };
    let mut y = String::new();
    match tunnel {
        Tunnel::Wireguard => {
            let key = dir.join(format!("ix-{role}.key"));
            std::fs::write(&key, keys::encode(&secret("ix", ix_key).to_bytes()) + "\n")?;
            y += &format!("      - name: {role}-wg\n        type: wireguard\n        listen: {listen}\n        private_key_file: {}\n        peers:\n", key.display());
            for i in 0..n {
                y += &format!(
                    "          - {{ name: {role}-{i}, facility: \"{}\", public_key: \"{}\", allowed_ips: [{}/32] }}\n",
                    facility(prefecture, i),
                    keys::encode(&public(role, i)),
                    host(i)
                );
            }
        }
        Tunnel::Ipsec => {
            if listen.port() == 4500 {
                return Err(io::Error::other(
                    "an IPsec attachment's IKE port cannot be 4500, its NAT-T port",
                ));
            }
            y += &format!(
                "      - name: {role}-ipsec\n        type: ipsec\n        listen: {}\n        ike_port: {}\n        nat_t_port: 4500\n        mtu: 1420\n        local_id: ix-{role}.bench.example\n        peers:\n",
                listen.ip(),
                listen.port()
            );
            for i in 0..n {
                let file = dir.join(format!("{role}-{i}.psk"));
                std::fs::write(&file, psk(role, i) + "\n")?;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                y += &format!(
                    "          - {{ name: {role}-{i}, facility: \"{}\", remote_id: {role}-{i}.bench.example, auth: psk, psk_file: {}, remote_ts: [{}/32] }}\n",
                    facility(prefecture, i),
                    file.display(),
                    host(i)
                );
            }
        }
    }
    Ok(y)
}

/// The generator's and the sink's peers and tunnels, and where the gateway faces each.
#[derive(clap::Args)]
struct Sides {
    #[arg(long, default_value_t = 64)]
    peers: u32,
    #[arg(long, default_value_t = 8)]
    sinks: u32,
    #[arg(long, value_enum, default_value_t = Tunnel::Wireguard)]
    gen_tunnel: Tunnel,
    #[arg(long, value_enum, default_value_t = Tunnel::Wireguard)]
    sink_tunnel: Tunnel,
    /// The gateway's address facing the generator (IPsec: its IKE port; NAT-T is 4500).
    #[arg(long)]
    ix_gen: SocketAddr,
    /// The gateway's address facing the sink (IPsec: its IKE port; NAT-T is 4500).
    #[arg(long)]
    ix_sink: SocketAddr,
}

fn config(dir: &Path, sides: &Sides, metrics: SocketAddr) -> io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut y = String::new();
    y += "ix:\n  name: bench-capacity\n  exchange_space: 100.64.0.0/10\n";
    y += &format!(
        "metrics:\n  listen: {metrics}\n  admin_socket: {}/ixgw.sock\n",
        dir.display()
    );
    y += "dataplane:\n  flow_table_size: 65536\n";
    y += "tenants:\n";
    for (tenant, exchange, tunnel, listen, role, n) in [
        (
            "gen",
            "100.64.0.0/16",
            sides.gen_tunnel,
            sides.ix_gen,
            "gen",
            sides.peers,
        ),
        (
            "sink",
            "100.65.0.0/16",
            sides.sink_tunnel,
            sides.ix_sink,
            "sink",
            sides.sinks,
        ),
    ] {
        y += &format!("  - name: {tenant}\n    networks:\n      - {{ internal: 10.0.0.0/16, exchange: {exchange} }}\n");
        y += "    attachments:\n";
        y += &attachment(dir, tunnel, role, listen, n)?;
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

/// Writes the sink's running totals ("packets bytes") to `count` every 50 ms, replacing the
/// file whole, until the process is ended.
async fn write_counts(count: &Path, totals: impl Fn() -> (u64, u64)) -> io::Result<()> {
    let tmp = count.with_extension("tmp");
    loop {
        let (packets, bytes) = totals();
        std::fs::write(&tmp, format!("{packets} {bytes}\n"))?;
        std::fs::rename(&tmp, count)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// WireGuard sink peers: counts data messages and their inner bytes.
async fn sink_wireguard(
    ix: SocketAddr,
    bind: Ipv4Addr,
    sinks: u32,
    count: PathBuf,
) -> io::Result<()> {
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
    eprintln!("sink: {sinks} peers up (wireguard chacha20poly1305)");
    write_counts(&count, || {
        (
            packets.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed),
        )
    })
    .await
}

/// IPsec sink peers, one socket each (run on a `LocalSet`): counts the ESP packets in UDP and
/// their UDP payload bytes.
async fn sink_ipsec(
    config: &Path,
    ix: SocketAddr,
    bind: Ipv4Addr,
    sinks: u32,
    count: PathBuf,
) -> io::Result<()> {
    let (facilities, gateway) = ipsec::facilities(config, "sink", sinks, ix, bind)?;
    let status = ipsec::Status::new(sinks);
    let tally = Rc::new(ipsec::Tally::default());
    for (j, f) in facilities.into_iter().enumerate() {
        let socket = Rc::new(Socket::bind(bind)?);
        tokio::task::spawn_local(ipsec::drive(
            socket,
            vec![(j, f)],
            gateway,
            status.clone(),
            Some(tally.clone()),
        ));
    }
    ipsec::wait_up(&status, Duration::from_secs(60)).await?;
    eprintln!(
        "sink: {sinks} peers up (esp {})",
        status.borrow().cipher_name()
    );
    write_counts(&count, || (tally.packets.get(), tally.bytes.get())).await
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

/// What a generator peer encrypts with.
enum Session {
    WireGuard(Box<Tunn>),
    Esp(Box<OutboundSa>),
    /// Its CHILD SA is not negotiated yet.
    Waiting,
}

struct Peer {
    session: Session,
    socket: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

/// How the generator's peers get their sessions.
enum Setup {
    /// boringtun handshakes with the gateway's public key, fresh for every size.
    WireGuard { ix_public: PublicKey },
    /// The facilities' IKE runs in tasks of its own ([`ipsec::drive`]); new CHILD SAs land in
    /// `status`.
    Ipsec { status: Rc<RefCell<ipsec::Status>> },
}

struct Gen {
    /// Where the peers' data goes: the WireGuard port, or the IPsec attachment's NAT-T port.
    to: SocketAddr,
    sockets: Vec<Rc<Socket>>,
    peers: Vec<Peer>,
    setup: Setup,
    rng: SystemRandom,
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
    /// Gives every peer a current session: WireGuard handshakes anew; IPsec waits (60 s at
    /// most) until every peer has a CHILD SA and takes the newest of each, and refuses to go
    /// on if a peer went down.
    async fn sessions(&mut self) -> io::Result<()> {
        match &self.setup {
            Setup::WireGuard { ix_public } => {
                for (i, p) in self.peers.iter_mut().enumerate() {
                    let mut tunn = Tunn::new(
                        secret("gen", i as u32),
                        *ix_public,
                        None,
                        None,
                        i as u32,
                        None,
                    );
                    handshake(&mut tunn, &self.sockets[p.socket], self.to).await?;
                    p.session = Session::WireGuard(Box::new(tunn));
                }
            }
            Setup::Ipsec { status } => {
                if status.borrow().down > 0 {
                    return Err(io::Error::other("an ESP peer went down during the run"));
                }
                ipsec::wait_up(status, Duration::from_secs(60)).await?;
                let mut st = status.borrow_mut();
                for (p, fresh) in self.peers.iter_mut().zip(st.fresh.iter_mut()) {
                    if let Some(sa) = fresh.take() {
                        p.session = Session::Esp(Box::new(sa));
                    }
                }
            }
        }
        Ok(())
    }

    /// Encrypts `count` packets of `size` bytes, round robin over the peers, into one buffer
    /// per socket. Every datagram of a step is equally long, as GSO needs: boringtun does not
    /// pad the inner packet to 16 bytes as the WireGuard paper suggests, and ESP pads every
    /// packet of one length alike. Returns the buffers and the datagrams' length.
    fn prebuild(&mut self, size: usize, count: usize) -> io::Result<(Vec<Vec<u8>>, usize)> {
        let payload = vec![0x5a; size - 28];
        let mut inner = vec![0u8; 2048];
        let mut buf = vec![0u8; 2048];
        let mut wire = None;
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); self.sockets.len()];
        let n_peers = self.peers.len();
        for k in 0..count {
            let p = &mut self.peers[k % n_peers];
            let n = ixgw::wire::build::udp(&mut inner, p.src, p.dst, 40_000, 9, &payload)
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
            let d: &[u8] = match &mut p.session {
                Session::WireGuard(tunn) => match tunn.encapsulate(&inner[..n], &mut buf) {
                    TunnResult::WriteToNetwork(d) => d,
                    other => {
                        return Err(io::Error::other(format!(
                            "no session to encrypt with: {other:?}"
                        )))
                    }
                },
                Session::Esp(sa) => {
                    let len = sa
                        .encapsulate(&mut self.rng, &inner[..n], &mut buf)
                        .map_err(io::Error::other)?;
                    &buf[..len]
                }
                Session::Waiting => return Err(io::Error::other("a peer has no CHILD SA")),
            };
            let wire = *wire.get_or_insert(d.len());
            if d.len() != wire {
                return Err(io::Error::other("datagrams of one step differ in length"));
            }
            let o = &mut out[p.socket];
            if o.is_empty() {
                o.reserve(count / self.sockets.len() * wire + wire);
            }
            o.extend_from_slice(d);
        }
        Ok((out, wire.unwrap_or(1)))
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
        let (bufs, wire) = self.prebuild(size, count)?;
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
            self.sockets[s].send(self.to, chunk, segment).await?;
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

    /// The transform of the peers' sessions, as the results name it.
    fn cipher(&self) -> String {
        match &self.setup {
            Setup::WireGuard { .. } => "chacha20poly1305".into(),
            Setup::Ipsec { status } => status.borrow().cipher_name(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn gen(
    ix: SocketAddr,
    bind: Ipv4Addr,
    peers: u32,
    sinks: u32,
    tunnel: Tunnel,
    config: Option<PathBuf>,
    sockets: usize,
    sink_count: PathBuf,
    pid: u32,
    sizes: Vec<usize>,
    step: f64,
    start: u64,
) -> io::Result<()> {
    let socks: Vec<Rc<Socket>> = (0..sockets)
        .map(|_| Socket::bind(bind).map(Rc::new))
        .collect::<io::Result<_>>()?;
    let (to, setup) = match tunnel {
        Tunnel::Wireguard => (
            ix,
            Setup::WireGuard {
                ix_public: PublicKey::from(&secret("ix", 0)),
            },
        ),
        Tunnel::Ipsec => {
            let config = config.ok_or_else(|| io::Error::other("--config is required"))?;
            let (facilities, gateway) = ipsec::facilities(&config, "gen", peers, ix, bind)?;
            let status = ipsec::Status::new(peers);
            let mut groups: Vec<Vec<(usize, _)>> = (0..sockets).map(|_| Vec::new()).collect();
            for (i, f) in facilities.into_iter().enumerate() {
                groups[i % sockets].push((i, f));
            }
            for (socket, group) in socks.iter().zip(groups) {
                tokio::task::spawn_local(ipsec::drive(
                    socket.clone(),
                    group,
                    gateway,
                    status.clone(),
                    None,
                ));
            }
            (
                SocketAddr::from((gateway.ip, gateway.nat_t)),
                Setup::Ipsec { status },
            )
        }
    };
    let mut g = Gen {
        to,
        sockets: socks,
        peers: (0..peers)
            .map(|i| Peer {
                session: Session::Waiting,
                socket: i as usize % sockets,
                src: host(i),
                dst: {
                    let h = host(i % sinks);
                    Ipv4Addr::new(100, 65, h.octets()[2], h.octets()[3])
                },
            })
            .collect(),
        setup,
        rng: SystemRandom::new(),
    };
    for &size in &sizes {
        // Current sessions for every size: a search takes longer than a WireGuard session
        // may live.
        g.sessions().await?;
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
        let (tunnel, cipher) = (tunnel.name(), g.cipher());
        let Some(cap) = good else {
            println!(
                "{{\"size\":{size},\"error\":\"no rate below 1 % loss\",\"tunnel\":\"{tunnel}\",\"cipher\":\"{cipher}\"}}"
            );
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
             \"loss_2x\":{:.4},\"loss_4x\":{:.4},\"tunnel\":\"{tunnel}\",\"cipher\":\"{cipher}\"}}",
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
    if let Setup::Ipsec { status } = &g.setup {
        let st = status.borrow();
        eprintln!(
            "gen: esp {}: {} CHILD SAs replaced, {} peers down, {} IKE messages refused or unmatched during the run",
            st.cipher_name(),
            st.replaced,
            st.down,
            st.refused
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    match cli.command {
        Command::Config {
            dir,
            sides,
            metrics,
        } => {
            print!("{}", config(&dir, &sides, metrics)?)
        }
        Command::Floor { sizes, open, seal } => {
            for size in sizes {
                println!(
                    "{{\"size\":{size},\"floor_pps\":{:.0}}}",
                    floor::floor(open, seal, size)
                );
            }
        }
        Command::Sink {
            ix,
            bind,
            sinks,
            tunnel,
            config,
            count,
        } => match (tunnel, config) {
            (Tunnel::Ipsec, Some(config)) => {
                local.block_on(&rt, sink_ipsec(&config, ix, bind, sinks, count))?
            }
            (Tunnel::Ipsec, None) => anyhow::bail!("--tunnel ipsec needs --config"),
            (Tunnel::Wireguard, _) => rt.block_on(sink_wireguard(ix, bind, sinks, count))?,
        },
        Command::Storm {
            ix,
            bind,
            peers,
            sockets,
            timeout,
        } => local.block_on(&rt, storm(ix, bind, peers, sockets, timeout))?,
        Command::Gen {
            ix,
            bind,
            peers,
            sinks,
            tunnel,
            config,
            sockets,
            sink_count,
            ixgw_pid,
            sizes,
            step,
            start,
        } => local.block_on(
            &rt,
            gen(
                ix, bind, peers, sinks, tunnel, config, sockets, sink_count, ixgw_pid, sizes, step,
                start,
            ),
        )?,
    }
    Ok(())
}
