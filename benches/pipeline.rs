//! The data path's first performance figure: one IPv4 packet through WireGuard decap →
//! classify → admit → translate → route → WireGuard encap, single core, through the public API
//! (`Gateway::handle_batch` on one datagram per call), next to its crypto floor: one
//! ChaCha20-Poly1305 open and one seal of the same size with ring, the AEAD boringtun uses for
//! data messages.
//!
//! Two tenants number the same 10.0.0.0/24 (exchange 100.64.0.0/24 and 100.65.0.0/24), each
//! behind one WireGuard peer; a policy allows UDP from the first to the second. Both facilities
//! are boringtun `Tunn`s that handshake with the gateway in memory during setup. WireGuard
//! rejects replays, so every measured packet is a fresh datagram that facility A encrypted in
//! an untimed refill between timed chunks; the steady state measured is an established flow.
//!
//! After criterion's groups the bench measures pipeline and floor itself, interleaved, prints
//! their medians and ratio per size, and counts heap allocations inside the timed loops with a
//! counting global allocator (the hot path must not allocate).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use criterion::{Criterion, Throughput};
use ixgw::buffer::{RxBatch, TxBatch, Via, BUF_SIZE};
use ixgw::config::*;
use ixgw::dataplane::{Gateway, Plan};
use ixgw::ids::{AttachmentId, FacilityCode};
use ixgw::tunnel::wireguard::keys;
use ixgw::wire::{self, build, L4};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

/// Counts every allocation of the process; the measurement reads it around its timed loops.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Total IPv4 lengths measured (1420 is the tunnels' inner MTU).
const SIZES: [usize; 3] = [64, 512, 1420];
/// Datagrams encrypted per untimed refill: small enough to stay in cache, large enough that
/// the two clock reads around a timed chunk do not matter.
const CHUNK: usize = 256;
const ROUNDS: usize = 5;
const PACKETS_PER_ROUND: usize = 20_000;

const ATT_A: AttachmentId = AttachmentId(0);
const ATT_B: AttachmentId = AttachmentId(1);
const TENANT_B: usize = 1;
const GW_KEY_A: [u8; 32] = [0x11; 32];
const GW_KEY_B: [u8; 32] = [0x12; 32];
const FAC_KEY_A: [u8; 32] = [0x21; 32];
const FAC_KEY_B: [u8; 32] = [0x22; 32];
const A_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Host 10.0.0.3 of tenant B, as tenant A addresses it.
const B_EXCHANGE: Ipv4Addr = Ipv4Addr::new(100, 65, 0, 3);
const UDP_SRC_PORT: u16 = 40_000;
const UDP_DST_PORT: u16 = 5_000;

fn fac_addr_a() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(192, 0, 2, 10), 51820))
}

fn fac_addr_b() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 51, 100, 20), 51820))
}

fn gw_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))
}

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().expect("prefix literal")
}

fn wg_tenant(
    name: &str,
    exchange: &str,
    port: u16,
    gw_key: [u8; 32],
    facility: &str,
    fac_key: [u8; 32],
    endpoint: Option<SocketAddr>,
) -> Tenant {
    Tenant {
        name: name.into(),
        networks: vec![Network {
            internal: net("10.0.0.0/24"),
            exchange: net(exchange),
        }],
        attachments: vec![Attachment {
            name: format!("{name}-wg"),
            kind: AttachmentKind::WireGuard(WireGuardAttachment {
                listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
                private_key_file: PathBuf::from(format!("{name}.key")),
                private_key: Key32(gw_key),
                mtu: 1420,
                peers: vec![WireGuardPeer {
                    name: format!("{name}-hub"),
                    facility: FacilityCode::parse(facility).expect("facility code literal"),
                    public_key: Key32(keys::public_key(&fac_key)),
                    preshared_key_file: None,
                    preshared_key: None,
                    allowed_ips: vec![net("10.0.0.0/24")],
                    address: None,
                    endpoint,
                    persistent_keepalive: None,
                    directed_broadcast: false,
                }],
            }),
        }],
    }
}

/// Tenants A and B number the same 10.0.0.0/24; UDP from A to B is allowed.
fn config() -> Config {
    Config {
        source: PathBuf::from("bench.yaml"),
        ix: Ix {
            name: "bench-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: None,
        },
        metrics: Metrics {
            listen: "127.0.0.1:0".parse().expect("address literal"),
        },
        dataplane: Dataplane::default(),
        tenants: vec![
            wg_tenant(
                "ajisai",
                "100.64.0.0/24",
                51820,
                GW_KEY_A,
                "1312345678",
                FAC_KEY_A,
                None,
            ),
            wg_tenant(
                "mame",
                "100.65.0.0/24",
                51821,
                GW_KEY_B,
                "2712345678",
                FAC_KEY_B,
                Some(fac_addr_b()),
            ),
        ],
        services: vec![],
        policies: vec![Policy {
            name: "a-to-b-udp".into(),
            from: Source {
                tenants: vec!["ajisai".into()],
                ..Source::default()
            },
            to: Destination::Tenants {
                tenants: vec!["mame".into()],
                prefixes: vec![],
            },
            allow: vec![PortRule {
                protocol: Protocol::Udp,
                ports: None,
            }],
        }],
    }
}

/// A UDP packet from A's host 10.0.0.2 to B's 100.65.0.3 of `total` bytes.
fn udp_packet(total: usize) -> Vec<u8> {
    let mut buf = vec![0u8; total];
    let payload = vec![0xab; total - 28];
    let n = build::udp(
        &mut buf,
        A_SRC,
        B_EXCHANGE,
        UDP_SRC_PORT,
        UDP_DST_PORT,
        &payload,
    )
    .expect("packet fits");
    assert_eq!(n, total);
    buf
}

struct Facility {
    tunn: Tunn,
    addr: SocketAddr,
    attachment: AttachmentId,
    received: Vec<Vec<u8>>,
}

/// Runs `total` packets in chunks of at most `CHUNK` (refill untimed, then timed) and sums
/// the time and allocations `step` reports for each chunk.
fn in_chunks(total: usize, mut step: impl FnMut(usize) -> (Duration, u64)) -> (Duration, u64) {
    let (mut time, mut allocs, mut left) = (Duration::ZERO, 0, total);
    while left > 0 {
        let n = left.min(CHUNK);
        let (t, a) = step(n);
        time += t;
        allocs += a;
        left -= n;
    }
    (time, allocs)
}

/// The gateway and both facilities with their sessions established.
struct Rig {
    gw: Gateway,
    tx: TxBatch,
    a: Facility,
    b: Facility,
    /// Datagrams facility A encrypted, one per batch: each is handed to the gateway once.
    pool: Vec<RxBatch>,
}

impl Rig {
    fn new() -> Rig {
        let now = Instant::now();
        let plan = Arc::new(Plan::compile(&config(), 1));
        let gw = Gateway::new(plan, now);
        let facility = |key: [u8; 32], gw_key: [u8; 32], index, addr, attachment| Facility {
            tunn: Tunn::new(
                StaticSecret::from(key),
                PublicKey::from(keys::public_key(&gw_key)),
                None,
                None,
                index,
                None,
            ),
            addr,
            attachment,
            received: Vec::new(),
        };
        let mut rig = Rig {
            gw,
            tx: TxBatch::new(64),
            a: facility(FAC_KEY_A, GW_KEY_A, 0x1000, fac_addr_a(), ATT_A),
            b: facility(FAC_KEY_B, GW_KEY_B, 0x2000, fac_addr_b(), ATT_B),
            pool: (0..CHUNK).map(|_| RxBatch::new(1)).collect(),
        };
        rig.handshake();
        rig
    }

    /// A's first packet starts A's handshake; the gateway, forwarding it to B, starts its own
    /// handshake with B's configured endpoint; the queued packet then reaches B.
    fn handshake(&mut self) {
        let first = udp_packet(64);
        let mut buf = vec![0u8; BUF_SIZE];
        let init = match self.a.tunn.encapsulate(&first, &mut buf) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            _ => panic!("facility A did not start a handshake"),
        };
        let mut wire = vec![(ATT_A, self.a.addr, init)];
        for _ in 0..32 {
            let Some((att, from, datagram)) = wire.pop() else {
                break;
            };
            let mut rx = RxBatch::new(1);
            assert!(rx.push(att, Via::udp(0, from), &datagram));
            self.tx.clear();
            self.gw.handle_batch(Instant::now(), &mut rx, &mut self.tx);
            for (meta, bytes) in self.tx.iter() {
                let Some(to) = meta.via.udp_addr() else {
                    panic!("WireGuard output to {:?}", meta.via)
                };
                let fac = [&mut self.a, &mut self.b]
                    .into_iter()
                    .find(|f| f.addr == to && f.attachment == meta.attachment)
                    .expect("gateway sent to a known facility");
                let mut out = vec![0u8; BUF_SIZE];
                let mut r = fac.tunn.decapsulate(Some(gw_ip()), bytes, &mut out);
                loop {
                    match r {
                        TunnResult::WriteToNetwork(d) => {
                            wire.insert(0, (fac.attachment, fac.addr, d.to_vec()))
                        }
                        TunnResult::WriteToTunnelV4(p, _) => {
                            fac.received.push(p.to_vec());
                            break;
                        }
                        TunnResult::Done => break,
                        other => panic!("facility decapsulate: {other:?}"),
                    }
                    r = fac.tunn.decapsulate(None, &[], &mut out);
                }
            }
        }
        self.tx.clear();
        assert!(self.a.received.is_empty());
        assert_eq!(self.b.received.len(), 1, "the first packet reached B");
        let s = wire::inspect(&self.b.received[0]).expect("B got an IPv4 packet");
        assert_eq!(
            (s.src, s.dst),
            (Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(10, 0, 0, 3)),
            "twice NAT"
        );
        assert!(matches!(
            s.l4,
            L4::Udp {
                src_port: UDP_SRC_PORT,
                dst_port: UDP_DST_PORT
            }
        ));
        assert_eq!(self.gw.flow_count(), 1);
        assert_eq!(self.drops(), 0);
    }

    fn drops(&self) -> u64 {
        self.gw.counters().drops().map(|(_, n)| n).sum()
    }

    fn forwarded(&self) -> u64 {
        self.gw.counters().tenant(TENANT_B).tx_packets.get()
    }

    /// Untimed: facility A encrypts `n` fresh datagrams of `packet` straight into the pool's
    /// receive batches.
    fn refill(&mut self, packet: &[u8], n: usize) {
        let from = self.a.addr;
        for rx in &mut self.pool[..n] {
            rx.clear();
            let buf = rx.next_buf().expect("an empty batch has room");
            let len = match self.a.tunn.encapsulate(packet, buf) {
                TunnResult::WriteToNetwork(d) => d.len(),
                _ => panic!("facility A has no session"),
            };
            rx.commit(ixgw::buffer::RxMeta {
                attachment: ATT_A,
                via: Via::udp(0, from),
                len,
            });
        }
    }

    /// Timed: each of the first `n` pooled datagrams through the gateway, one batch each.
    /// Returns the elapsed time and the allocations made meanwhile.
    #[inline(never)]
    fn run(&mut self, n: usize) -> (Duration, u64) {
        let now = Instant::now();
        let allocs = allocations();
        let start = Instant::now();
        for rx in &mut self.pool[..n] {
            self.gw.handle_batch(now, rx, &mut self.tx);
            self.tx.clear();
        }
        let elapsed = start.elapsed();
        (elapsed, allocations() - allocs)
    }

    /// `total` packets in chunks; every one must have been forwarded to B.
    fn measure(&mut self, packet: &[u8], total: usize) -> (Duration, u64) {
        let before = self.forwarded();
        let (time, allocs) = in_chunks(total, |n| {
            self.refill(packet, n);
            self.run(n)
        });
        assert_eq!(
            self.forwarded() - before,
            total as u64,
            "every packet forwarded"
        );
        assert_eq!(self.drops(), 0);
        (time, allocs)
    }

    /// One packet through, its output checked: one datagram to B's endpoint that B decrypts
    /// into the translated packet.
    fn check_output(&mut self, packet: &[u8]) {
        self.refill(packet, 1);
        self.gw
            .handle_batch(Instant::now(), &mut self.pool[0], &mut self.tx);
        let out: Vec<_> = self.tx.iter().map(|(m, b)| (m, b.to_vec())).collect();
        self.tx.clear();
        assert_eq!(out.len(), 1, "one datagram out");
        let (meta, datagram) = &out[0];
        assert_eq!(meta.attachment, ATT_B);
        assert_eq!(meta.via, Via::udp(0, fac_addr_b()));
        assert_eq!(datagram.len(), packet.len() + 32, "WireGuard data message");
        let mut inner = vec![0u8; BUF_SIZE];
        let TunnResult::WriteToTunnelV4(p, _) =
            self.b.tunn.decapsulate(Some(gw_ip()), datagram, &mut inner)
        else {
            panic!("B could not decrypt the gateway's datagram")
        };
        assert_eq!(p.len(), packet.len());
        let s = wire::inspect(p).expect("B got an IPv4 packet");
        assert_eq!(
            (s.src, s.dst),
            (Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(10, 0, 0, 3))
        );
        assert_eq!(&p[28..], &packet[28..], "payload intact");
    }
}

/// The AEAD work of one forwarded packet, without anything else: open what the sender sealed,
/// seal it again for the next hop, in place, nonces from counters as in WireGuard.
struct Floor {
    open_key: LessSafeKey,
    seal_key: LessSafeKey,
    /// Ciphertext and tag of `len` plaintext bytes, sealed in an untimed refill.
    pool: Vec<Vec<u8>>,
    len: usize,
    sent: u64,
    opened: u64,
    resealed: u64,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

impl Floor {
    fn new(len: usize) -> Floor {
        let key = |b: u8| {
            LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[b; 32]).expect("32-byte key"))
        };
        Floor {
            open_key: key(0x41),
            seal_key: key(0x42),
            pool: (0..CHUNK).map(|_| vec![0u8; BUF_SIZE]).collect(),
            len,
            sent: 0,
            opened: 0,
            resealed: 0,
        }
    }

    /// Untimed: the sender seals `n` packets.
    fn refill(&mut self, packet: &[u8], n: usize) {
        let len = self.len;
        for buf in &mut self.pool[..n] {
            buf[..len].copy_from_slice(packet);
            let tag = self
                .open_key
                .seal_in_place_separate_tag(nonce(self.sent), Aad::empty(), &mut buf[..len])
                .expect("seal");
            buf[len..len + 16].copy_from_slice(tag.as_ref());
            self.sent += 1;
        }
    }

    #[inline(never)]
    fn run(&mut self, n: usize) -> (Duration, u64) {
        let len = self.len;
        let allocs = allocations();
        let start = Instant::now();
        for buf in &mut self.pool[..n] {
            let plain = self
                .open_key
                .open_in_place(nonce(self.opened), Aad::empty(), &mut buf[..len + 16])
                .expect("open");
            self.opened += 1;
            let tag = self
                .seal_key
                .seal_in_place_separate_tag(nonce(self.resealed), Aad::empty(), plain)
                .expect("seal");
            self.resealed += 1;
            buf[len..len + 16].copy_from_slice(tag.as_ref());
            black_box(&buf[..len + 16]);
        }
        let elapsed = start.elapsed();
        (elapsed, allocations() - allocs)
    }

    fn measure(&mut self, packet: &[u8], total: usize) -> (Duration, u64) {
        in_chunks(total, |n| {
            self.refill(packet, n);
            self.run(n)
        })
    }
}

fn criterion_groups(c: &mut Criterion, rig: &mut Rig) {
    let mut g = c.benchmark_group("pipeline");
    for size in SIZES {
        let packet = udp_packet(size);
        rig.check_output(&packet);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(size.to_string(), |b| {
            b.iter_custom(|iters| rig.measure(&packet, iters as usize).0)
        });
    }
    g.finish();

    let mut g = c.benchmark_group("crypto_floor");
    for size in SIZES {
        let packet = udp_packet(size);
        let mut floor = Floor::new(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(size.to_string(), |b| {
            b.iter_custom(|iters| floor.measure(&packet, iters as usize).0)
        });
    }
    g.finish();
}

fn ns_per_packet(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Pipeline and floor alternately, `rounds` × `packets` each; prints the medians.
fn side_by_side(rig: &mut Rig, rounds: usize, packets: usize) {
    println!();
    println!(
        "side by side: {rounds} interleaved rounds x {packets} packets, median ns/packet, single core"
    );
    println!(
        "{:>6} {:>14} {:>14} {:>8} {:>17} {:>17}",
        "bytes", "pipeline ns", "floor ns", "ratio", "pipeline allocs", "floor allocs"
    );
    for size in SIZES {
        let packet = udp_packet(size);
        rig.check_output(&packet);
        let mut floor = Floor::new(size);
        // One untimed round each so that both start warm.
        rig.measure(&packet, CHUNK);
        floor.measure(&packet, CHUNK);
        let (mut pipe_ns, mut floor_ns) = (Vec::new(), Vec::new());
        let (mut pipe_allocs, mut floor_allocs) = (0, 0);
        for _ in 0..rounds {
            let (t, a) = rig.measure(&packet, packets);
            pipe_ns.push(ns_per_packet(t, packets));
            pipe_allocs += a;
            let (t, a) = floor.measure(&packet, packets);
            floor_ns.push(ns_per_packet(t, packets));
            floor_allocs += a;
        }
        let (p, f) = (median(&mut pipe_ns), median(&mut floor_ns));
        let total = (rounds * packets) as f64;
        println!(
            "{:>6} {:>14.1} {:>14.1} {:>8.2} {:>17.4} {:>17.4}",
            size,
            p,
            f,
            p / f,
            pipe_allocs as f64 / total,
            floor_allocs as f64 / total
        );
    }
}

fn main() {
    let before = allocations();
    black_box(vec![0u8; 1]);
    assert!(allocations() > before, "the counting allocator counts");
    let mut rig = Rig::new();
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &mut rig);
    c.final_summary();
    // `cargo test --benches` runs this binary without `--bench`: criterion then runs each
    // routine once, and a short side-by-side keeps the checks without the measurement.
    if std::env::args().any(|a| a == "--bench") {
        side_by_side(&mut rig, ROUNDS, PACKETS_PER_ROUND);
    } else {
        side_by_side(&mut rig, 1, CHUNK);
    }
}
