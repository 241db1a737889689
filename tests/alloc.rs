//! Steady-state forwarding allocates nothing per packet, on every tunnel type.
//!
//! Each test compiles a gateway of two tenants (both numbering 10.0.0.0/24) with one attachment
//! each, and puts an end outside each attachment: a boringtun facility (WireGuard), a facility
//! holding its half of a CHILD SA installed by hand as the IKE thread would (ESP in UDP 4500
//! or raw ESP), a TUN device's host (plain), a host on an Ethernet link, directly or behind
//! the carrier's router, that answers ARP (ethernet), and a client as the TLS thread relays
//! it (tls). Tenant A opens three UDP flows and one TCP flow to tenant B, B answers, and the
//! tunnels come up on the way (handshakes, ARP, the TLS session's news). After a warm-up,
//! thousands of packets go each way in batches of 32, the last of each batch from A opening a
//! new flow, while a virtual clock moves on (38 s: timers, flow expiry, a neighbour gone
//! stale and asked for again), and:
//!
//! * every packet arrives at the other end, in order, translated (twice NAT), with its payload;
//! * the gateway's counters moved by exactly that, nothing was dropped, and the audit trail's
//!   sink heard of every flow that started and ended;
//! * the allocations this thread made inside the gateway's calls (`handle_batch`, also for
//!   what the ends answered, `handle_timeout`, `set_wall_clock`) are exactly 0.
//!
//! The allocator counts per thread: the harness runs the tests in parallel threads. What the
//! ends do (sealing, opening, checking) is outside the counted calls. Handshakes, rekeys and
//! CHILD SA installation are not counted: they are not per packet (boringtun copies each
//! packet it queues behind a pending handshake).

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use ixgw::buffer::{Remote, RxBatch, RxMeta, TxBatch, Via, BUF_SIZE};
use ixgw::config::*;
use ixgw::crypto::{EncrAlg, IntegAlg, SystemRandom};
use ixgw::dataplane::{FlowEvent, FlowPhase, FlowSink, Gateway, Plan};
use ixgw::ids::{AttachmentId, FacilityCode, PeerId};
use ixgw::tunnel::ipsec::esp::{Decap, InboundSa, OutboundSa, SaConfig};
use ixgw::tunnel::ipsec::tunnel::{IO_ESP, IO_NAT_T};
use ixgw::tunnel::ipsec::EspPath;
use ixgw::tunnel::tls::relay::{self, Message, PACKET_HEADER};
use ixgw::tunnel::wireguard::keys;
use ixgw::wire::ethernet::{self, Arp, ArpOp, Mac, ARP_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use ixgw::wire::ipv4::Ipv4Packet;
use ixgw::wire::{build, tcp, L4};
use util::{owned, Owned};

struct CountingAlloc;

thread_local! {
    /// Allocations this thread made. Const-initialised and without a destructor: the
    /// allocator may touch it at any moment of the thread's life without allocating.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting only bumps a
// thread-local `Cell`, which neither allocates nor has a destructor.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// The allocations this thread made while `f` ran.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const A: usize = 0;
const B: usize = 1;
/// Flows A opens to B before counting; the last one is TCP, the others UDP. Besides, the last
/// packet of every batch from A opens a new UDP flow, which B never answers: it expires
/// (unreplied, 30 s) while the counted batches run.
const FLOWS: usize = 4;
const BATCH: usize = 32;
/// Batches each way before counting: 256 packets.
const WARM_UP: usize = 8;
/// Batches each way counted: 4096 packets.
const ROUNDS: usize = 128;
/// Inner packet sizes, in turn; every attachment's MTU is at least 1400.
const SIZES: [usize; 5] = [64, 256, 700, 1200, 1400];
/// How far the virtual clock moves per batch: the counted batches span 38 s, so the tunnels'
/// timers, the flow sweep and the neighbour cache's expiry run among them, and the ethernet
/// ends' neighbour entries (reachable for 30 s) go stale and are asked for again.
const TICK: Duration = Duration::from_millis(150);
/// The UNIX time at the start: the gateway is told the wall clock every batch, as the worker
/// does every turn.
const UNIX_START: u64 = 1_800_000_000;
const MTU: u16 = 1400;
const GENERATION: u64 = 1;

/// The tunnel kinds, as the attachment and the end outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    WireGuard,
    /// ESP in UDP 4500, AES-GCM-256.
    Esp,
    /// Raw ESP (IP protocol 50), AES-CBC-256 with HMAC-SHA-256-128.
    RawEsp,
    Plain,
    /// Untagged; the host is on the link.
    Ethernet,
    /// VLAN 200; the host is behind the carrier's router, the attachment's next hop.
    EthernetVlan,
    Tls,
}

#[test]
fn wireguard_to_wireguard() {
    forward(Kind::WireGuard, Kind::WireGuard);
}

#[test]
fn esp_to_esp() {
    forward(Kind::Esp, Kind::Esp);
}

#[test]
fn raw_esp_to_wireguard() {
    forward(Kind::RawEsp, Kind::WireGuard);
}

#[test]
fn plain_to_wireguard() {
    forward(Kind::Plain, Kind::WireGuard);
}

#[test]
fn wireguard_to_plain() {
    forward(Kind::WireGuard, Kind::Plain);
}

#[test]
fn ethernet_to_wireguard() {
    forward(Kind::Ethernet, Kind::WireGuard);
}

#[test]
fn tls_to_wireguard() {
    forward(Kind::Tls, Kind::WireGuard);
}

#[test]
fn wireguard_to_tls() {
    forward(Kind::WireGuard, Kind::Tls);
}

#[test]
fn wireguard_to_ethernet_vlan_through_a_router() {
    forward(Kind::WireGuard, Kind::EthernetVlan);
}

/// A plain attachment's TUN device with offloads (`runtime::tun::TunIo`): reads that split
/// the kernel's UDP super-packets into the batch and sends of runs of TCP segments and of
/// UDP datagrams (one super-packet each) and of single packets allocate nothing once warm.
/// Needs root: the test makes a network namespace of its own for its thread.
#[tokio::test]
#[ignore = "needs root: makes a network namespace and a TUN device"]
async fn tun_device_reads_and_sends() {
    use ixgw::runtime::tun::{self, TunIo};
    use std::future::poll_fn;

    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace");
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip");
        assert!(ok.success(), "ip {args:?}");
    };
    let io = TunIo::new(tun::open("ixgwa0", 1500).expect("TUN device")).expect("registered");
    assert!(io.offload(), "offloads on this kernel");
    assert!(io.udp_offload(), "USO on this kernel (Linux 6.2 or later)");
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "10.78.0.1/24", "dev", "ixgwa0"]);
    ip(&["link", "set", "ixgwa0", "up"]);
    let (local, far) = (Ipv4Addr::new(10, 78, 0, 1), Ipv4Addr::new(10, 78, 0, 2));
    let sender = std::net::UdpSocket::bind((local, 0)).expect("bind");
    nix::sys::socket::setsockopt(&sender, nix::sys::socket::sockopt::UdpGsoSegment, &1000)
        .expect("UDP_SEGMENT");
    let run = vec![7u8; 20 * 1000];
    // 40 segments of one connection to a port nobody listens on, 30 datagrams of one flow
    // to another, and 8 ICMP echo requests.
    let mut packets = vec![];
    for k in 0..40u32 {
        let mut buf = vec![0; 1500];
        let payload = [k as u8; 1400];
        let n = build::tcp(
            &mut buf,
            far,
            local,
            40000,
            5000,
            1 + 1400 * k,
            1,
            tcp::FLAG_ACK,
            None,
            &payload,
        )
        .expect("fits");
        buf.truncate(n);
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.set_frag(true, false, 0);
        ip.fill_checksum();
        packets.push(buf);
    }
    for k in 0..30u16 {
        let mut buf = vec![0; 1500];
        let n = build::udp(&mut buf, far, local, 40001, 5001, &[k as u8; 1200]).expect("fits");
        buf.truncate(n);
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.set_frag(true, false, 0);
        ip.fill_checksum();
        packets.push(buf);
    }
    for k in 0..8u16 {
        let mut buf = vec![0; 100];
        let n = build::icmp_echo(&mut buf, far, local, 1, k, false, &[0; 56]).expect("fits");
        buf.truncate(n);
        packets.push(buf);
    }
    let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
    let mut rx = RxBatch::with_arena(2048, 4 << 20);

    let mut counted = 0;
    let mut received = 0;
    for round in 0..(WARM_UP + ROUNDS / 4) {
        sender.send_to(&run, (far, 9)).expect("GSO send");
        // The super-packet, and whatever the kernel answered to the last round's sends.
        let mut got = 0;
        while got < 20 {
            poll_fn(|cx| io.poll_recv_ready(cx))
                .await
                .expect("readable");
            let mut n = 0;
            let allocs = allocations_in(|| {
                n = io
                    .try_recv(&mut rx, AttachmentId(0), 0)
                    .map_or(0, |(t, _)| t)
            });
            got += (0..rx.len())
                .filter(|&i| rx.get_mut(i).1.len() == 1028)
                .count();
            rx.clear();
            if round >= WARM_UP {
                counted += allocs;
                received += n;
            }
        }
        let before = ALLOCATIONS.with(Cell::get);
        io.send(&refs).await.expect("written");
        if round >= WARM_UP {
            counted += ALLOCATIONS.with(Cell::get) - before;
        }
    }
    assert!(received >= 20 * ROUNDS / 4, "received {received}");
    assert_eq!(
        counted,
        0,
        "allocations in {} rounds of reads and sends",
        ROUNDS / 4
    );
}

/// The batched receives and sends of raw ESP, packet and relay sockets
/// (`runtime::mmsg::{Receiver, send}`) allocate nothing once warm: batches of 32 each way on
/// a relay's socket pair and between two raw ESP sockets on loopback addresses of their own
/// (CAP_NET_RAW: the tests run as root, as `runtime::raw_esp`'s own).
#[tokio::test]
async fn batched_datagram_reads_and_sends() {
    use ixgw::runtime::mmsg::{self, Receiver, Socket, WhenFull};
    use rustix::net::{bind, ipproto, socket_with, AddressFamily, SocketFlags, SocketType};

    let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("socket pair");
    let unix = |s: std::os::unix::net::UnixDatagram| {
        s.set_nonblocking(true).expect("nonblocking");
        tokio::net::UnixDatagram::from_std(s).expect("registered")
    };
    let (a, b) = (unix(a), unix(b));
    let raw = |addr: Ipv4Addr| {
        let fd = socket_with(
            AddressFamily::INET,
            SocketType::RAW,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            Some(ipproto::ESP),
        )
        .expect("raw socket (root?)");
        bind(&fd, &std::net::SocketAddrV4::new(addr, 0)).expect("bind");
        tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd)).expect("registered")
    };
    let (esp_to, esp_from) = (Ipv4Addr::new(127, 0, 78, 1), Ipv4Addr::new(127, 0, 78, 2));
    let (to, from) = (raw(esp_to), raw(esp_from));
    let packets: Vec<Vec<u8>> = (0..BATCH)
        .map(|k| [0, 0x78, 0, 1, 0, 0, 0, k as u8].repeat(1 + k * 5))
        .collect();
    let pairs = [
        (Socket::Relay(&a), Socket::Relay(&b), Remote::Device),
        (
            Socket::RawIp(&from),
            Socket::RawIp(&to),
            Remote::Ip(esp_to.into()),
        ),
    ];

    let mut receiver = Receiver::new();
    let mut rx = RxBatch::with_arena(256, 1 << 20);
    let mut counted = 0;
    let mut received = 0;
    for round in 0..(WARM_UP + ROUNDS) {
        for (tx_end, rx_end, remote) in pairs {
            let run = packets.iter().map(|p| (p.as_slice(), remote));
            let before = ALLOCATIONS.with(Cell::get);
            let sent = mmsg::send(tx_end, run, WhenFull::Wait).await;
            let mut allocs = ALLOCATIONS.with(Cell::get) - before;
            assert_eq!((sent.sent, sent.failed), (BATCH, 0), "{sent:?}");
            while rx.len() < BATCH {
                match rx_end {
                    Socket::Relay(s) => s.readable().await.expect("readable"),
                    Socket::RawIp(s) | Socket::Packet(s) => s.readable().await.expect("readable"),
                }
                allocs += allocations_in(|| {
                    let _ = receiver.try_recv(rx_end, &mut rx, AttachmentId(0), 0);
                });
            }
            assert_eq!(rx.len(), BATCH);
            if round >= WARM_UP {
                counted += allocs;
                received += rx.len();
            }
            rx.clear();
        }
    }
    assert_eq!(received, 2 * ROUNDS * BATCH);
    assert_eq!(
        counted, 0,
        "allocations in {ROUNDS} rounds of batched sends and receives"
    );
}

/// Tenant A's end behind an attachment of kind `a` opens flows to tenant B's behind `b`;
/// then request and reply batches go through, and the counted ones allocate nothing.
fn forward(a: Kind, b: Kind) {
    assert!(
        allocations_in(|| drop(std::hint::black_box(vec![0u8; 1]))) > 0,
        "the allocator counts"
    );
    let mut rig = Rig::new(a, b);
    rig.open_flows();
    assert_eq!(rig.gw.flow_count(), FLOWS);
    for _ in 0..WARM_UP {
        rig.round(A);
        rig.round(B);
    }

    let before = Totals::of(&rig);
    // (batch, direction, allocations) of every batch that allocated.
    let mut allocated = Vec::new();
    for i in 0..ROUNDS {
        for from in [A, B] {
            let n = rig.round(from);
            if n > 0 {
                allocated.push((i, ["A→B", "B→A"][from], n));
            }
        }
    }
    let after = Totals::of(&rig);

    let sent = (ROUNDS * BATCH) as u64;
    assert_eq!(
        after.to_b - before.to_b,
        sent,
        "every request went into B's tunnel"
    );
    assert_eq!(
        after.to_a - before.to_a,
        sent,
        "every reply went into A's tunnel"
    );
    assert_eq!(after.pair_ab - before.pair_ab, sent, "A → B pair");
    assert_eq!(after.pair_ba - before.pair_ba, sent, "B → A pair");
    assert_eq!(after.drops, 0, "nothing dropped");
    if [a, b]
        .iter()
        .any(|k| matches!(k, Kind::Ethernet | Kind::EthernetVlan))
    {
        assert!(
            after.arp_requests > before.arp_requests,
            "the neighbour went stale and was asked again while counted"
        );
    }
    let (started, ended) = rig.flow_records.counts();
    assert_eq!(
        started,
        (FLOWS + rig.opened) as u64,
        "every flow's start recorded"
    );
    assert!(
        ended > before.flows_ended,
        "unreplied flows expired while counted"
    );
    assert_eq!(rig.gw.flow_count() as u64, started - ended);
    let total: u64 = allocated.iter().map(|(_, _, n)| n).sum();
    assert!(
        allocated.is_empty(),
        "{a:?} → {b:?}: {total} allocations in {} of {} counted batches; the first (batch, \
         direction, allocations): {:?}",
        allocated.len(),
        2 * ROUNDS,
        &allocated[..allocated.len().min(8)]
    );
}

/// The gateway's counters the test checks.
struct Totals {
    to_a: u64,
    to_b: u64,
    pair_ab: u64,
    pair_ba: u64,
    drops: u64,
    /// ARP requests of the ethernet attachments: announcements and probes of stale neighbours.
    arp_requests: u64,
    flows_ended: u64,
}

impl Totals {
    fn of(rig: &Rig) -> Totals {
        let c = rig.gw.counters();
        Totals {
            to_a: c.tenant(A).tx_packets.get(),
            to_b: c.tenant(B).tx_packets.get(),
            pair_ab: c.pair(A, B).packets.get(),
            pair_ba: c.pair(B, A).packets.get(),
            drops: c.drops().map(|(_, _, n)| n).sum(),
            arp_requests: c.arp().map(|(_, arp)| arp.requests).sum(),
            flows_ended: rig.flow_records.counts().1,
        }
    }
}

/// The audit trail's side of the gateway: counts the flows' starts and ends it is told of.
#[derive(Default)]
struct FlowRecords {
    started: AtomicU64,
    ended: AtomicU64,
}

impl FlowRecords {
    fn counts(&self) -> (u64, u64) {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        (load(&self.started), load(&self.ended))
    }
}

impl FlowSink for FlowRecords {
    fn flow(&self, event: FlowEvent) {
        match event.phase {
            FlowPhase::Start => &self.started,
            FlowPhase::End(_) => &self.ended,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

/// What the ends sent the gateway that it has not taken yet.
type Wire = VecDeque<(AttachmentId, Via, Vec<u8>)>;

/// What sits outside one of the gateway's attachments.
trait End {
    fn attachment(&self) -> AttachmentId;
    /// The host whose packets it carries, in its tenant's numbering.
    fn host(&self) -> Ipv4Addr;
    /// What it tells the gateway before any packet (ARP, a TLS session's news).
    fn hello(&mut self, _wire: &mut Wire) {}
    /// Wraps `packet` into `buf` as the attachment's socket or device hands it to the
    /// gateway; `None` when nothing goes out yet (boringtun queued it behind a handshake).
    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> Option<(Via, usize)>;
    /// Takes what the gateway sent it on `via`: the inner packet, copied into `inner` (its
    /// length), or `None` for the tunnel's own traffic (handshakes, keepalives, ARP), whose
    /// answers go onto `wire`.
    fn receive(
        &mut self,
        via: Via,
        datagram: &mut [u8],
        inner: &mut [u8],
        wire: &mut Wire,
    ) -> Option<usize>;
}

/// The gateway, an end on each side, and the batches between them.
struct Rig {
    gw: Gateway,
    ends: [Box<dyn End>; 2],
    rx: RxBatch,
    tx: TxBatch,
    wire: Wire,
    /// Inner packets the ends received from what [`Rig::pump`] and [`Rig::deliver`] moved.
    inbox: Vec<(usize, Vec<u8>)>,
    flow_records: Arc<FlowRecords>,
    /// Flows A opened beyond the first [`FLOWS`].
    opened: usize,
    start: Instant,
    now: Instant,
    /// Packets built so far: each carries its number in its last 8 bytes.
    serial: u64,
    packet: Vec<u8>,
    datagram: Vec<u8>,
    inner: Vec<u8>,
}

impl Rig {
    fn new(a: Kind, b: Kind) -> Rig {
        let now = Instant::now();
        let config = config(attachment(a, A), attachment(b, B));
        let mut gw = Gateway::new(Arc::new(Plan::compile(&config, GENERATION)), now);
        let ends = [end(a, A, &mut gw), end(b, B, &mut gw)];
        let flow_records = Arc::new(FlowRecords::default());
        gw.set_flow_sink(flow_records.clone());
        let mut rig = Rig {
            gw,
            ends,
            flow_records,
            opened: 0,
            rx: RxBatch::new(BATCH),
            tx: TxBatch::new(2 * BATCH),
            wire: Wire::new(),
            inbox: Vec::new(),
            start: now,
            now,
            serial: 0,
            packet: vec![0; BUF_SIZE],
            datagram: vec![0; BUF_SIZE],
            inner: vec![0; BUF_SIZE],
        };
        for end in &mut rig.ends {
            end.hello(&mut rig.wire);
        }
        rig.pump();
        rig
    }

    fn hosts(&self) -> [Ipv4Addr; 2] {
        [self.ends[A].host(), self.ends[B].host()]
    }

    /// A opens every flow (a TCP SYN for the TCP one) and B answers each (SYN-ACK): the
    /// tunnels come up on the way.
    fn open_flows(&mut self) {
        for flow in 0..FLOWS {
            self.send_one(A, flow, tcp::FLAG_SYN);
            self.send_one(B, flow, tcp::FLAG_SYN | tcp::FLAG_ACK);
        }
    }

    /// One packet from `from`'s end, moved with whatever the tunnels exchange until the wire
    /// is quiet; the other end must have received it.
    fn send_one(&mut self, from: usize, flow: usize, flags: u8) {
        let (hosts, serial) = (self.hosts(), self.next_serial());
        let n = build(&mut self.packet, hosts, from, flow, flags, serial);
        let mut buf = vec![0; BUF_SIZE];
        if let Some((via, len)) = self.ends[from].seal(&self.packet[..n], &mut buf) {
            buf.truncate(len);
            let attachment = self.ends[from].attachment();
            self.wire.push_back((attachment, via, buf));
        }
        self.pump();
        let got = std::mem::take(&mut self.inbox);
        assert_eq!(got.len(), 1, "packet {serial} reached the other end, once");
        assert_eq!(got[0].0, 1 - from, "packet {serial} reached the other end");
        check(hosts, from, flow, serial, &got[0].1);
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Hands the gateway what is on the wire, one datagram per batch, and its output to the
    /// ends, until nothing is left. Returns the allocations the gateway made.
    fn pump(&mut self) -> u64 {
        let mut allocations = 0;
        for _ in 0..64 {
            let Some((attachment, via, bytes)) = self.wire.pop_front() else {
                return allocations;
            };
            self.rx.clear();
            assert!(self.rx.push(attachment, via, &bytes));
            self.tx.clear();
            let (gw, rx, tx, now) = (&mut self.gw, &mut self.rx, &mut self.tx, self.now);
            allocations += allocations_in(|| gw.handle_batch(now, rx, tx));
            self.deliver();
        }
        panic!("the wire did not go quiet");
    }

    /// Hands what the gateway sent to the ends; inner packets land in the inbox.
    fn deliver(&mut self) {
        for (meta, bytes) in self.tx.iter() {
            let i = (self.ends.iter())
                .position(|e| e.attachment() == meta.attachment)
                .expect("the gateway sent to one of the ends");
            let mut datagram = bytes.to_vec();
            let wire = &mut self.wire;
            if let Some(n) = self.ends[i].receive(meta.via, &mut datagram, &mut self.inner, wire) {
                self.inbox.push((i, self.inner[..n].to_vec()));
            }
        }
    }

    /// One batch of packets from `from`'s end, round-robin over the flows (from A, the last
    /// one opens a new flow), through the gateway, each checked at the other end; then what
    /// the ends answered (an ARP probe of a stale neighbour), and the timers if due once the
    /// clock moved. Returns the allocations the gateway made meanwhile.
    fn round(&mut self, from: usize) -> u64 {
        let to = 1 - from;
        let hosts = self.hosts();
        let first = self.serial + 1;
        let mut flows = [0; BATCH];
        self.rx.clear();
        for (k, flow) in flows.iter_mut().enumerate() {
            *flow = k % FLOWS;
            if from == A && k == BATCH - 1 {
                *flow = FLOWS + self.opened;
                self.opened += 1;
            }
            let (flow, serial) = (*flow, self.next_serial());
            let n = build(&mut self.packet, hosts, from, flow, tcp::FLAG_ACK, serial);
            let buf = self.rx.next_buf().expect("room in the batch");
            let (via, len) = (self.ends[from].seal(&self.packet[..n], buf))
                .expect("the tunnel is up: the end sends at once");
            let attachment = self.ends[from].attachment();
            self.rx.commit(RxMeta {
                attachment,
                via,
                len,
            });
        }
        self.tx.clear();
        let (gw, rx, tx, now) = (&mut self.gw, &mut self.rx, &mut self.tx, self.now);
        let mut allocations = allocations_in(|| gw.handle_batch(now, rx, tx));
        let mut arrived = 0;
        for (meta, bytes) in self.tx.iter() {
            assert_eq!(
                meta.attachment,
                self.ends[to].attachment(),
                "to the other end"
            );
            let datagram = &mut self.datagram[..bytes.len()];
            datagram.copy_from_slice(bytes);
            let end = &mut self.ends[to];
            if let Some(n) = end.receive(meta.via, datagram, &mut self.inner, &mut self.wire) {
                let serial = first + arrived as u64;
                let flow = *flows.get(arrived).expect("no more packets out than in");
                check(hosts, from, flow, serial, &self.inner[..n]);
                arrived += 1;
            }
        }
        assert_eq!(arrived, BATCH, "every packet forwarded, in order");
        allocations += self.pump();

        self.now += TICK;
        let (gw, now) = (&mut self.gw, self.now);
        let unix = UNIX_START + now.duration_since(self.start).as_secs();
        allocations += allocations_in(|| {
            gw.set_wall_clock(now, unix);
        });
        if self.gw.poll_timeout() <= self.now {
            self.tx.clear();
            let (gw, tx) = (&mut self.gw, &mut self.tx);
            allocations += allocations_in(|| gw.handle_timeout(now, tx));
            self.deliver();
            allocations += self.pump();
        }
        assert!(self.inbox.is_empty(), "no inner packet besides the batch's");
        allocations
    }
}

/// Flow `flow`'s ports in a packet from `from`: A's side is 40000 + flow, B's 5000 + flow
/// (flows past [`FLOWS`] are the new ones).
fn ports(from: usize, flow: usize) -> (u16, u16) {
    let (a, b) = (40_000 + flow as u16, 5_000 + flow as u16);
    if from == A {
        (a, b)
    } else {
        (b, a)
    }
}

fn is_tcp(flow: usize) -> bool {
    flow == FLOWS - 1
}

fn size(serial: u64) -> usize {
    SIZES[serial as usize % SIZES.len()]
}

/// `host` of `side` as the other tenant addresses it: side A's 10.0.0.0/24 is exchange
/// 100.64.0.0/24, B's 100.65.0.0/24.
fn exchange(side: usize, host: Ipv4Addr) -> Ipv4Addr {
    let [_, _, _, h] = host.octets();
    Ipv4Addr::new(100, 64 + side as u8, 0, h)
}

/// Writes packet `serial` of `flow` from `from`'s host to the other's exchange address into
/// `out`: `size(serial)` bytes, the serial in the last 8; TCP segments carry `flags` (and an
/// MSS option on a SYN). Returns its length.
fn build(
    out: &mut [u8],
    hosts: [Ipv4Addr; 2],
    from: usize,
    flow: usize,
    flags: u8,
    serial: u64,
) -> usize {
    let to = 1 - from;
    let (src, dst) = (hosts[from], exchange(to, hosts[to]));
    let (src_port, dst_port) = ports(from, flow);
    let mss = (is_tcp(flow) && flags & tcp::FLAG_SYN != 0).then_some(1460);
    let headers = match (is_tcp(flow), mss) {
        (true, Some(_)) => 44,
        (true, None) => 40,
        (false, _) => 28,
    };
    let mut payload = [0x5a; 1500];
    let payload = &mut payload[..size(serial) - headers];
    let tail = payload.len() - 8;
    payload[tail..].copy_from_slice(&serial.to_be_bytes());
    let built = if is_tcp(flow) {
        let seq = serial as u32;
        build::tcp(
            out, src, dst, src_port, dst_port, seq, 1, flags, mss, payload,
        )
    } else {
        build::udp(out, src, dst, src_port, dst_port, payload)
    };
    built.expect("the packet fits")
}

/// `inner` is packet `serial` of `flow` from `from` as the other end must see it: both
/// addresses translated, ports, length and payload unchanged.
fn check(hosts: [Ipv4Addr; 2], from: usize, flow: usize, serial: u64, inner: &[u8]) {
    let to = 1 - from;
    let s = ixgw::wire::inspect(inner).expect("an IPv4 packet");
    assert_eq!(inner.len(), size(serial), "packet {serial}'s length");
    assert_eq!(
        (s.src, s.dst),
        (exchange(from, hosts[from]), hosts[to]),
        "packet {serial}: twice NAT"
    );
    let got = match s.l4 {
        L4::Udp { src_port, dst_port } if !is_tcp(flow) => (src_port, dst_port),
        L4::Tcp {
            src_port, dst_port, ..
        } if is_tcp(flow) => (src_port, dst_port),
        other => panic!("packet {serial}: {other:?} on flow {flow}"),
    };
    assert_eq!(got, ports(from, flow), "packet {serial}'s ports");
    assert_eq!(
        inner[inner.len() - 8..],
        serial.to_be_bytes(),
        "packet {serial}'s payload"
    );
}

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().expect("a prefix literal")
}

const TENANTS: [(&str, &str); 2] = [("ajisai", "100.64.0.0/24"), ("mame", "100.65.0.0/24")];
const FACILITIES: [&str; 2] = ["1312345679", "2712345673"];
/// The gateway's MAC on each side's Ethernet link, and the neighbour's there (host or router).
const GATEWAY_MACS: [Mac; 2] = [Mac([2, 0, 0x5e, 0, 0x53, 1]), Mac([2, 0, 0x5e, 0, 0x53, 2])];
const NEIGHBOUR_MACS: [Mac; 2] = [
    Mac([2, 0, 0x5e, 0, 0x53, 0x11]),
    Mac([2, 0, 0x5e, 0, 0x53, 0x12]),
];
const LINK_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The carrier's router on a VLAN link (10.0.0.0/28) and the host behind it.
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 14);
const BEHIND_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 70);

fn facility(side: usize) -> FacilityCode {
    FacilityCode::parse(FACILITIES[side]).expect("a facility code literal")
}

/// Where the gateway listens on `side` (IPsec attachments).
fn gateway_ip(side: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 1 + side as u8)
}

/// Where `side`'s facility sends from.
fn facility_addr(side: usize) -> SocketAddr {
    SocketAddr::from(([[192, 0, 2, 10], [198, 51, 100, 20]][side], 51820))
}

fn gateway_key(side: usize) -> [u8; 32] {
    [0x11 + side as u8; 32]
}

fn facility_key(side: usize) -> [u8; 32] {
    [0x21 + side as u8; 32]
}

/// The host of `side`'s end.
fn host(kind: Kind, side: usize) -> Ipv4Addr {
    match kind {
        Kind::EthernetVlan => BEHIND_ROUTER,
        _ => Ipv4Addr::new(10, 0, 0, 2 + side as u8),
    }
}

/// Tenants A and B with one attachment each; A may open anything to B.
fn config(a: Attachment, b: Attachment) -> Config {
    let tenant = |side: usize, attachment| {
        let (name, exchange) = TENANTS[side];
        Tenant {
            name: name.into(),
            trust: vec![],
            networks: vec![Network {
                internal: net("10.0.0.0/24"),
                exchange: net(exchange),
            }],
            attachments: vec![attachment],
        }
    };
    let policy = Policy {
        name: "a-to-b".into(),
        from: Source {
            tenants: vec![TENANTS[A].0.into()],
            ..Source::default()
        },
        to: Destination::Tenants {
            tenants: vec![TENANTS[B].0.into()],
            prefixes: vec![],
        },
        allow: vec![PortRule {
            protocol: Protocol::Any,
            ports: None,
        }],
    };
    Config {
        source: PathBuf::from("alloc.yaml"),
        ix: Ix {
            name: "alloc-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: None,
        },
        metrics: Metrics {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_socket: None,
            peer_series: PeerSeries::All,
        },
        dataplane: Dataplane::default(),
        tenants: vec![tenant(A, a), tenant(B, b)],
        services: vec![],
        policies: vec![policy],
        agreements: vec![],
        trust: vec![],
        facilities: None,
        audit: None,
        usage: None,
        warnings: vec![],
    }
}

/// `side`'s attachment of `kind`, its one peer (if it has peers) of `side`'s facility, routing
/// 10.0.0.0/24.
fn attachment(kind: Kind, side: usize) -> Attachment {
    let name = format!("{}-{kind:?}", TENANTS[side].0).to_lowercase();
    let peer = format!("{name}-peer");
    let kind = match kind {
        Kind::WireGuard => AttachmentKind::WireGuard(WireGuardAttachment {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 51820 + side as u16)),
            private_key_file: PathBuf::from(format!("{name}.key")),
            private_key: Key32(gateway_key(side)),
            mtu: MTU,
            peers: vec![WireGuardPeer {
                name: peer,
                facility: facility(side),
                public_key: Key32(keys::public_key(&facility_key(side))),
                preshared_key_file: None,
                preshared_key: None,
                allowed_ips: vec![net("10.0.0.0/24")],
                address: None,
                // The gateway dials B itself when A's first packet is for B.
                endpoint: Some(facility_addr(side)),
                persistent_keepalive: None,
                directed_broadcast: false,
            }],
        }),
        Kind::Esp | Kind::RawEsp => AttachmentKind::Ipsec(IpsecAttachment {
            listen: gateway_ip(side),
            ike_port: 500,
            nat_t_port: 4500,
            raw_esp: kind == Kind::RawEsp,
            mtu: MTU,
            local_id: IkeIdentity::Fqdn("gw.alloc-ix.example".into()),
            credentials: None,
            peers: vec![ixgw::dataplane::fuzz::psk_ipsec_peer(
                &peer,
                FACILITIES[side],
                "10.0.0.0/24",
            )],
        }),
        Kind::Plain => AttachmentKind::Plain(PlainAttachment {
            tun: format!("t-{side}"),
            mtu: 1500,
            routes: vec![net("10.0.0.0/24")],
            kernel_routes: vec![],
            directed_broadcast: false,
        }),
        Kind::Ethernet | Kind::EthernetVlan => {
            let vlan = kind == Kind::EthernetVlan;
            AttachmentKind::Ethernet(EthernetAttachment {
                interface: "ixcar0".into(),
                vlan: vlan.then_some(200),
                address: ipnetwork::Ipv4Network::new(LINK_ADDRESS, if vlan { 28 } else { 24 })
                    .expect("a prefix"),
                mac: GATEWAY_MACS[side].0,
                next_hop: vlan.then_some(ROUTER),
                routes: if vlan {
                    vec![net("10.0.0.64/26")]
                } else {
                    vec![]
                },
                mtu: 1500,
                directed_broadcast: false,
            })
        }
        Kind::Tls => AttachmentKind::Tls(TlsAttachment {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: GatewayCredentials {
                certificate_file: "gw.pem".into(),
                certificates: vec![],
                private_key_file: "gw.key".into(),
                private_key: PrivateKey {
                    format: KeyFormat::Pkcs8,
                    der: Secret::new(vec![]),
                },
            },
            client_ca: vec![],
            tls12: false,
            pool: net("10.0.0.0/24"),
            dns: vec![],
            split_routes: None,
            mtu: MTU,
            dpd: Duration::from_secs(30),
            keepalive: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(1800),
            session_timeout: Duration::from_secs(86400),
            peers: vec![TlsPeer {
                name: peer,
                facility: facility(side),
            }],
        }),
    };
    Attachment { name, kind }
}

/// The end outside `side`'s attachment of `kind` (IPsec: its CHILD SA installed in `gw`).
fn end(kind: Kind, side: usize, gw: &mut Gateway) -> Box<dyn End> {
    let attachment = AttachmentId(side as u16);
    let host = host(kind, side);
    let peer = (gw.plan().peers.iter())
        .position(|p| p.attachment == attachment)
        .map(|i| PeerId(i as u32));
    match kind {
        Kind::WireGuard => Box::new(WgEnd::new(side)),
        Kind::Esp => Box::new(EspEnd::install(
            gw,
            side,
            peer.expect("a peer"),
            EspPath::Udp(facility_addr(side)),
            (EncrAlg::AesGcm16_256, None),
        )),
        Kind::RawEsp => Box::new(EspEnd::install(
            gw,
            side,
            peer.expect("a peer"),
            EspPath::Raw(facility_addr(side).ip()),
            (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha256_128)),
        )),
        Kind::Plain => Box::new(PlainEnd { attachment, host }),
        Kind::Ethernet | Kind::EthernetVlan => {
            let vlan = kind == Kind::EthernetVlan;
            Box::new(EthernetEnd {
                attachment,
                host,
                gateway: GATEWAY_MACS[side],
                mac: NEIGHBOUR_MACS[side],
                ip: if vlan { ROUTER } else { host },
                vlan: vlan.then_some(200),
            })
        }
        Kind::Tls => Box::new(TlsEnd {
            attachment,
            host,
            session: 7 + side as u32,
            peer: peer.expect("a peer"),
        }),
    }
}

/// A WireGuard facility: boringtun's `Tunn`.
struct WgEnd {
    tunn: Tunn,
    side: usize,
}

impl WgEnd {
    fn new(side: usize) -> WgEnd {
        let tunn = Tunn::new(
            StaticSecret::from(facility_key(side)),
            PublicKey::from(keys::public_key(&gateway_key(side))),
            None,
            None,
            0x1000 * (side as u32 + 1),
            None,
        );
        WgEnd { tunn, side }
    }

    fn via(&self) -> Via {
        Via::udp(0, facility_addr(self.side))
    }
}

impl End for WgEnd {
    fn attachment(&self) -> AttachmentId {
        AttachmentId(self.side as u16)
    }

    fn host(&self) -> Ipv4Addr {
        host(Kind::WireGuard, self.side)
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> Option<(Via, usize)> {
        match self.tunn.encapsulate(packet, buf) {
            TunnResult::WriteToNetwork(d) => Some((self.via(), d.len())),
            TunnResult::Done => None,
            other => panic!("facility encapsulate: {other:?}"),
        }
    }

    fn receive(
        &mut self,
        via: Via,
        datagram: &mut [u8],
        inner: &mut [u8],
        wire: &mut Wire,
    ) -> Option<usize> {
        assert_eq!(via, self.via());
        let mut out = vec![0; BUF_SIZE];
        let gw = Some(IpAddr::V4(gateway_ip(self.side)));
        let mut r = owned(self.tunn.decapsulate(gw, datagram, &mut out));
        loop {
            match r {
                Owned::Net(d) => wire.push_back((self.attachment(), self.via(), d)),
                Owned::Inner(p) => {
                    inner[..p.len()].copy_from_slice(&p);
                    return Some(p.len());
                }
                Owned::Done => return None,
                Owned::Err(e) => panic!("facility decapsulate: {e}"),
            }
            // Answered a handshake: what boringtun queued meanwhile follows.
            r = owned(self.tunn.decapsulate(None, &[], &mut out));
        }
    }
}

/// An IPsec facility with both halves of its CHILD SA.
struct EspEnd {
    out: OutboundSa,
    inbound: InboundSa,
    rng: SystemRandom,
    path: EspPath,
    side: usize,
}

impl EspEnd {
    /// Installs a CHILD SA (`encr`, and `integ` unless AEAD) between `side`'s IPsec
    /// attachment and its `peer` on `path`, as the IKE thread would; returns the facility's
    /// halves.
    fn install(
        gw: &mut Gateway,
        side: usize,
        peer: PeerId,
        path: EspPath,
        (encr, integ): (EncrAlg, Option<IntegAlg>),
    ) -> EspEnd {
        let seed = 0x31 + side as u8;
        let (to_gw, to_facility) = (
            vec![seed; encr.keymat_len()],
            vec![!seed; encr.keymat_len()],
        );
        let integ_key = integ.map(|alg| vec![seed ^ 0x5a; alg.key_len()]);
        let config = |spi, encr_key| SaConfig {
            spi,
            esn: false,
            encr,
            encr_key,
            integ: integ.zip(integ_key.as_deref()),
        };
        let spi = 0xc000_0000 | (u32::from(seed) << 8);
        let (inbound, outbound) = (config(spi, &to_gw[..]), config(spi | 1, &to_facility[..]));
        (gw.tunnel_mut(AttachmentId(side as u16)))
            .and_then(|t| t.ipsec_mut())
            .expect("an IPsec tunnel")
            .install(
                peer,
                InboundSa::new(&inbound).expect("inbound SA"),
                OutboundSa::new(&outbound).expect("outbound SA"),
                path,
            );
        EspEnd {
            out: OutboundSa::new(&inbound).expect("outbound SA"),
            inbound: InboundSa::new(&outbound).expect("inbound SA"),
            rng: SystemRandom::new(),
            path,
            side,
        }
    }

    fn via(&self) -> Via {
        match self.path {
            EspPath::Udp(a) => Via::udp(IO_NAT_T, a),
            EspPath::Raw(a) => Via {
                io: IO_ESP,
                remote: Remote::Ip(a),
            },
        }
    }
}

impl End for EspEnd {
    fn attachment(&self) -> AttachmentId {
        AttachmentId(self.side as u16)
    }

    fn host(&self) -> Ipv4Addr {
        host(Kind::Esp, self.side)
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> Option<(Via, usize)> {
        // A raw IP socket hands the datagram with its IPv4 header.
        let header = match self.path {
            EspPath::Udp(_) => 0,
            EspPath::Raw(_) => 20,
        };
        let n = (self
            .out
            .encapsulate(&mut self.rng, packet, &mut buf[header..]))
        .expect("the facility's SA encapsulates");
        if let EspPath::Raw(IpAddr::V4(src)) = self.path {
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..header]);
            ip.set_version_and_header_len(header);
            ip.set_tos(0);
            ip.set_total_len((header + n) as u16);
            ip.set_ident(0);
            ip.set_frag(true, false, 0);
            ip.set_ttl(64);
            ip.set_protocol(50);
            ip.set_src_addr(src);
            ip.set_dst_addr(gateway_ip(self.side));
            ip.fill_checksum();
        }
        Some((self.via(), header + n))
    }

    fn receive(
        &mut self,
        via: Via,
        datagram: &mut [u8],
        inner: &mut [u8],
        _: &mut Wire,
    ) -> Option<usize> {
        assert_eq!(via, self.via());
        match self.inbound.decapsulate(datagram) {
            Ok(Decap::Packet(range)) => {
                inner[..range.len()].copy_from_slice(&datagram[range.clone()]);
                Some(range.len())
            }
            other => panic!("the facility could not decrypt the gateway's ESP: {other:?}"),
        }
    }
}

/// The host on the other side of a plain attachment's TUN device.
struct PlainEnd {
    attachment: AttachmentId,
    host: Ipv4Addr,
}

impl End for PlainEnd {
    fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    fn host(&self) -> Ipv4Addr {
        self.host
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> Option<(Via, usize)> {
        buf[..packet.len()].copy_from_slice(packet);
        Some((Via::DEVICE, packet.len()))
    }

    fn receive(
        &mut self,
        via: Via,
        packet: &mut [u8],
        inner: &mut [u8],
        _: &mut Wire,
    ) -> Option<usize> {
        assert_eq!(via, Via::DEVICE);
        inner[..packet.len()].copy_from_slice(packet);
        Some(packet.len())
    }
}

/// The gateway's neighbour on an Ethernet link: the host itself, or the carrier's router the
/// host is behind. Frames reach the gateway as the kernel hands them, without their VLAN tag.
struct EthernetEnd {
    attachment: AttachmentId,
    host: Ipv4Addr,
    gateway: Mac,
    mac: Mac,
    ip: Ipv4Addr,
    vlan: Option<u16>,
}

impl EthernetEnd {
    fn arp(&self, arp: Arp, to: Mac, wire: &mut Wire) {
        let mut payload = [0; ARP_LEN];
        arp.write(&mut payload).expect("ARP fits");
        let mut frame = vec![0; 64];
        let n = ethernet::write_frame(&mut frame, to, self.mac, None, ETHERTYPE_ARP, &payload)
            .expect("an ARP frame");
        frame.truncate(n);
        wire.push_back((self.attachment, Via::DEVICE, frame));
    }
}

impl End for EthernetEnd {
    fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    fn host(&self) -> Ipv4Addr {
        self.host
    }

    /// Asks for the gateway's MAC: the gateway answers and learns this neighbour.
    fn hello(&mut self, wire: &mut Wire) {
        let ask = Arp::request(self.mac, self.ip, LINK_ADDRESS);
        self.arp(ask, Mac::BROADCAST, wire);
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> Option<(Via, usize)> {
        let n = ethernet::write_frame(buf, self.gateway, self.mac, None, ETHERTYPE_IPV4, packet)
            .expect("the frame fits");
        Some((Via::DEVICE, n))
    }

    fn receive(
        &mut self,
        via: Via,
        frame: &mut [u8],
        inner: &mut [u8],
        wire: &mut Wire,
    ) -> Option<usize> {
        assert_eq!(via, Via::DEVICE);
        let f = ethernet::parse(frame).expect("a frame");
        assert_eq!(
            f.vlan, self.vlan,
            "the gateway's frames carry the link's tag"
        );
        assert_eq!(f.src, self.gateway);
        match f.ethertype {
            ETHERTYPE_IPV4 => {
                assert_eq!(f.dst, self.mac, "framed to the next hop");
                let len = usize::from(u16::from_be_bytes([f.payload[2], f.payload[3]]));
                inner[..len].copy_from_slice(&f.payload[..len]);
                Some(len)
            }
            ETHERTYPE_ARP => {
                let arp = Arp::parse(f.payload).expect("ARP");
                // Gratuitous requests (the gateway announcing itself) need no answer.
                if arp.op == ArpOp::Request && arp.target_ip == self.ip {
                    self.arp(arp.reply(self.mac, self.ip), arp.sender_mac, wire);
                }
                None
            }
            other => panic!("EtherType {other:#06x} from the gateway"),
        }
    }
}

/// A TLS client as the TLS thread relays it to the worker: a session's news, then packets.
struct TlsEnd {
    attachment: AttachmentId,
    host: Ipv4Addr,
    session: u32,
    peer: PeerId,
}

impl End for TlsEnd {
    fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    fn host(&self) -> Ipv4Addr {
        self.host
    }

    /// The client logged in: its session holds the host's address.
    fn hello(&mut self, wire: &mut Wire) {
        let mut up = [0; 22];
        let n = Message::Up {
            session: self.session,
            peer: self.peer,
            address: self.host,
            generation: GENERATION,
            login: true,
        }
        .write(&mut up);
        wire.push_back((self.attachment, Via::DEVICE, up[..n].to_vec()));
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> Option<(Via, usize)> {
        relay::packet_header(buf, self.session);
        buf[PACKET_HEADER..PACKET_HEADER + packet.len()].copy_from_slice(packet);
        Some((Via::DEVICE, PACKET_HEADER + packet.len()))
    }

    fn receive(
        &mut self,
        via: Via,
        data: &mut [u8],
        inner: &mut [u8],
        _: &mut Wire,
    ) -> Option<usize> {
        assert_eq!(via, Via::DEVICE);
        assert_eq!(
            Message::parse(data),
            Some(Message::Packet {
                session: self.session
            })
        );
        let packet = &data[PACKET_HEADER..];
        inner[..packet.len()].copy_from_slice(packet);
        Some(packet.len())
    }
}
