//! The data path's performance figures: one IPv4 packet through tunnel decap → classify →
//! admit → translate → route → tunnel encap, single core, through the public API
//! (`Gateway::handle_batch` on one datagram per call), next to its crypto floor: the ingress
//! tunnel's AEAD open and the egress tunnel's seal over the same bytes, and nothing else.
//!
//! Every rig has two tenants numbering the same 10.0.0.0/24 (exchange 100.64.0.0/24 and
//! 100.65.0.0/24), one facility each, and a policy allowing UDP from A to B:
//! * WireGuard → WireGuard ([`wireguard`]): boringtun facilities that handshake with the
//!   gateway in memory; floor: ChaCha20-Poly1305 open + seal with ring, as boringtun does.
//! * ESP → ESP with AES-GCM-16-128, and again with -256 ([`esp`]): CHILD SAs installed by
//!   hand; floor: AES-GCM open + seal through `ixgw::crypto::AesGcm` with the same key length.
//! * ESP → WireGuard: A's CHILD SA is AES-GCM-16-256, the first algorithm of the default ESP
//!   proposals; floor: AES-GCM open + ChaCha20-Poly1305 seal.
//!
//! ESP rigs stop at 1400-byte packets, the IPsec attachments' MTU. How packets are fed so that
//! replay protection holds is in [`rig`].
//!
//! Per rig, criterion's groups run first; then the bench measures pipeline and floor itself,
//! interleaved, and counts heap allocations inside the timed loops with a counting global
//! allocator (the hot path must not allocate). A rig lives only for its own measurements, so
//! that no session or flow ages past its timers while the others run. The table of medians,
//! ratios and allocations, one section per rig, is printed at the end.

mod common;
mod esp;
mod floor;
mod rig;
mod wireguard;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use ixgw::crypto::EncrAlg;

use common::{allocations, median, ns_per_packet, udp_packet, CHUNK, PACKETS_PER_ROUND, ROUNDS};
use floor::{Aead, Floor};
use rig::Pipeline;

/// Total IPv4 lengths measured through WireGuard only (1420 is its inner MTU).
const WG_SIZES: [usize; 3] = [64, 512, 1420];
/// Total IPv4 lengths measured with ESP on either side.
const ESP_SIZES: [usize; 3] = [64, 512, esp::MTU as usize];

struct Case {
    /// Criterion's group.
    name: &'static str,
    /// The table's section.
    title: &'static str,
    sizes: [usize; 3],
    rig: fn() -> Box<dyn Pipeline>,
    floor: fn(usize) -> Floor,
}

fn cases() -> [Case; 4] {
    [
        Case {
            name: "wg-wg",
            title: "WireGuard -> WireGuard (floor: ChaCha20-Poly1305 open + seal)",
            sizes: WG_SIZES,
            rig: || Box::new(wireguard::rig()),
            floor: |n| Floor::new(Aead::wireguard(0x41), Aead::wireguard(0x42), n),
        },
        Case {
            name: "esp128-esp",
            title: "ESP AES-GCM-128 -> ESP AES-GCM-128 (floor: AES-128-GCM open + seal)",
            sizes: ESP_SIZES,
            rig: || Box::new(esp::rig(EncrAlg::AesGcm16_128)),
            floor: |n| Floor::new(Aead::esp_gcm(16, 0x41), Aead::esp_gcm(16, 0x42), n),
        },
        Case {
            name: "esp256-esp",
            title: "ESP AES-GCM-256 -> ESP AES-GCM-256 (floor: AES-256-GCM open + seal)",
            sizes: ESP_SIZES,
            rig: || Box::new(esp::rig(EncrAlg::AesGcm16_256)),
            floor: |n| Floor::new(Aead::esp_gcm(32, 0x41), Aead::esp_gcm(32, 0x42), n),
        },
        Case {
            name: "esp256-wg",
            title:
                "ESP AES-GCM-256 -> WireGuard (floor: AES-256-GCM open + ChaCha20-Poly1305 seal)",
            sizes: ESP_SIZES,
            rig: || Box::new(esp::to_wireguard_rig(EncrAlg::AesGcm16_256)),
            floor: |n| Floor::new(Aead::esp_gcm(32, 0x41), Aead::wireguard(0x42), n),
        },
    ]
}

fn criterion_groups(c: &mut Criterion, case: &Case, rig: &mut dyn Pipeline) {
    let mut g = c.benchmark_group(case.name);
    for size in case.sizes {
        let packet = udp_packet(size);
        rig.check_output(&packet);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("pipeline/{size}"), |b| {
            b.iter_custom(|iters| rig.measure(&packet, iters as usize).0)
        });
        let mut floor = (case.floor)(size);
        g.bench_function(format!("floor/{size}"), |b| {
            b.iter_custom(|iters| floor.measure(&packet, iters as usize).0)
        });
    }
    g.finish();
}

/// One size of one rig: medians in ns per packet, allocations per packet.
struct Row {
    size: usize,
    pipeline_ns: f64,
    floor_ns: f64,
    pipeline_allocs: f64,
    floor_allocs: f64,
}

/// Pipeline and floor alternately, `rounds` × `packets` each, per size.
fn side_by_side(case: &Case, rig: &mut dyn Pipeline, rounds: usize, packets: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for size in case.sizes {
        let packet = udp_packet(size);
        rig.check_output(&packet);
        let mut floor = (case.floor)(size);
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
        let total = (rounds * packets) as f64;
        rows.push(Row {
            size,
            pipeline_ns: median(&mut pipe_ns),
            floor_ns: median(&mut floor_ns),
            pipeline_allocs: pipe_allocs as f64 / total,
            floor_allocs: floor_allocs as f64 / total,
        });
    }
    rows
}

fn print_table(sections: &[(&str, Vec<Row>)], rounds: usize, packets: usize) {
    println!();
    println!(
        "side by side: {rounds} interleaved rounds x {packets} packets, median ns/packet, single core"
    );
    for (title, rows) in sections {
        println!();
        println!("{title}");
        println!(
            "{:>6} {:>14} {:>14} {:>8} {:>17} {:>17}",
            "bytes", "pipeline ns", "floor ns", "ratio", "pipeline allocs", "floor allocs"
        );
        for r in rows {
            println!(
                "{:>6} {:>14.1} {:>14.1} {:>8.2} {:>17.4} {:>17.4}",
                r.size,
                r.pipeline_ns,
                r.floor_ns,
                r.pipeline_ns / r.floor_ns,
                r.pipeline_allocs,
                r.floor_allocs
            );
        }
    }
}

fn main() {
    let before = allocations();
    black_box(vec![0u8; 1]);
    assert!(allocations() > before, "the counting allocator counts");
    let mut c = Criterion::default().configure_from_args();
    // `cargo test --benches` runs this binary without `--bench`: criterion then runs each
    // routine once, and a short side-by-side keeps the checks without the measurement.
    let (rounds, packets) = if std::env::args().any(|a| a == "--bench") {
        (ROUNDS, PACKETS_PER_ROUND)
    } else {
        (1, CHUNK)
    };
    let mut sections = Vec::new();
    for case in cases() {
        let mut rig = (case.rig)();
        criterion_groups(&mut c, &case, rig.as_mut());
        sections.push((
            case.title,
            side_by_side(&case, rig.as_mut(), rounds, packets),
        ));
    }
    c.final_summary();
    print_table(&sections, rounds, packets);
}
