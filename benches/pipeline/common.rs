//! What every rig shares: the counting allocator, the chunked timing and medians, the packet
//! measured, and the two tenants with their policy, whatever their attachments.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ixgw::config::*;
use ixgw::ids::{AttachmentId, FacilityCode};
use ixgw::wire::{self, build, L4};

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

pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Datagrams sealed per untimed refill: small enough to stay in cache, large enough that the
/// two clock reads around a timed chunk do not matter.
pub const CHUNK: usize = 256;
pub const ROUNDS: usize = 5;
pub const PACKETS_PER_ROUND: usize = 20_000;

pub const ATT_A: AttachmentId = AttachmentId(0);
pub const ATT_B: AttachmentId = AttachmentId(1);
pub const TENANT_B: usize = 1;
pub const FACILITY_A: &str = "1312345679";
pub const FACILITY_B: &str = "2712345673";
const A_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Host 10.0.0.3 of tenant B, as tenant A addresses it.
const B_EXCHANGE: Ipv4Addr = Ipv4Addr::new(100, 65, 0, 3);
/// A's host 10.0.0.2 as B sees it, and B's host itself.
const A_EXCHANGE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
const B_DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const UDP_SRC_PORT: u16 = 40_000;
const UDP_DST_PORT: u16 = 5_000;

pub fn fac_addr_a() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(192, 0, 2, 10), 51820))
}

pub fn fac_addr_b() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 51, 100, 20), 51820))
}

pub fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().expect("prefix literal")
}

pub fn facility(code: &str) -> FacilityCode {
    FacilityCode::parse(code).expect("facility code literal")
}

/// Tenant A ("ajisai") numbers 10.0.0.0/24 as exchange 100.64.0.0/24 behind `attachment`.
pub fn tenant_a(attachment: Attachment) -> Tenant {
    tenant("ajisai", "100.64.0.0/24", attachment)
}

/// Tenant B ("mame") numbers the same 10.0.0.0/24 as exchange 100.65.0.0/24.
pub fn tenant_b(attachment: Attachment) -> Tenant {
    tenant("mame", "100.65.0.0/24", attachment)
}

fn tenant(name: &str, exchange: &str, attachment: Attachment) -> Tenant {
    Tenant {
        name: name.into(),
        trust: vec![],
        networks: vec![Network {
            internal: net("10.0.0.0/24"),
            exchange: net(exchange),
        }],
        attachments: vec![attachment],
    }
}

/// Tenants `a` and `b`, one attachment each; UDP from A to B is allowed.
pub fn config(a: Tenant, b: Tenant) -> Config {
    let policy = Policy {
        name: "a-to-b-udp".into(),
        from: Source {
            tenants: vec![a.name.clone()],
            ..Source::default()
        },
        to: Destination::Tenants {
            tenants: vec![b.name.clone()],
            prefixes: vec![],
        },
        allow: vec![PortRule {
            protocol: Protocol::Udp,
            ports: None,
        }],
    };
    Config {
        source: PathBuf::from("bench.yaml"),
        ix: Ix {
            name: "bench-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: None,
        },
        metrics: Metrics {
            listen: "127.0.0.1:0".parse().expect("address literal"),
            admin_socket: None,
            peer_series: PeerSeries::All,
        },
        dataplane: Dataplane::default(),
        tenants: vec![a, b],
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

/// A UDP packet from A's host 10.0.0.2 to B's 100.65.0.3 of `total` bytes.
pub fn udp_packet(total: usize) -> Vec<u8> {
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

/// `received` is `sent` (a [`udp_packet`]) as B must see it: both addresses translated
/// (twice NAT), ports and payload unchanged.
pub fn assert_translated(received: &[u8], sent: &[u8]) {
    assert_eq!(received.len(), sent.len());
    let s = wire::inspect(received).expect("B got an IPv4 packet");
    assert_eq!((s.src, s.dst), (A_EXCHANGE, B_DST), "twice NAT");
    assert!(matches!(
        s.l4,
        L4::Udp {
            src_port: UDP_SRC_PORT,
            dst_port: UDP_DST_PORT
        }
    ));
    assert_eq!(&received[28..], &sent[28..], "payload intact");
}

/// Runs `total` packets in chunks of at most [`CHUNK`] (refill untimed, then timed) and sums
/// the time and allocations `step` reports for each chunk.
pub fn in_chunks(total: usize, mut step: impl FnMut(usize) -> (Duration, u64)) -> (Duration, u64) {
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

pub fn ns_per_packet(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
