//! The lookups of the data path at the sizes of issue 10 — admit with 10,000 policies and
//! agreements and 100,000 flows, translate, route with 10,000 prefixes — each on its own and
//! then inside the whole pipeline without crypto. One core, through the public API only:
//!
//! * admit, hit: `FlowTable::lookup` of 100,000 live flows (half established TCP, half
//!   answered UDP), each packet's flow drawn at random among all of them, so that nearly
//!   every lookup misses the CPU caches; among 256 of them, which stay cached, to show what
//!   those misses cost; and `FlowTable::peek` among all of them, which finds a flow without
//!   refreshing it or moving it in its LRU lists, to show what that bookkeeping costs.
//! * admit, miss: `PolicySet::evaluate_at` with 10,000 rules (5,000 policies, then 5,000
//!   approved agreements) for a new flow that the first, the middle (the first agreement) or
//!   the last rule admits, or none (default deny). The policy is compiled into one cell of
//!   rules per (source tenant, destination tenant) pair and scanned in order, so it is run
//!   twice: with every rule between the same two tenants (one cell of 10,000 rules), and with
//!   the rules spread over 100 tenants (about one per cell).
//! * translate: `nat::translate` (twice NAT in place, RFC 1624 checksum patches) of a 64-byte
//!   UDP datagram, a 64-byte TCP segment, a SYN whose MSS option is clamped, and an ICMP port
//!   unreachable whose quoted header is translated the other way.
//! * route: `PrefixTable::lookup_prefix` in one tenant's table of 10,000 internal prefixes of
//!   17 lengths (/16–/32), and `Plan::resolve_exchange` (exchange table, then the tenant's
//!   mapping) with 10,000 exchange prefixes, held by 1,000 tenants of 10 networks or by one
//!   tenant of 10,000; destinations are drawn uniformly over the prefixes, a random host of
//!   each, plus a row of destinations in the /16s, for which every length is probed.
//! * pipeline: `Gateway::handle_batch`, 64 packets per batch, plain (TUN) attachments on both
//!   sides, the 10,000 rules of the one-cell layout and 100,000 established UDP flows in the
//!   table: a packet of one of them drawn at random, either way; and a packet opening a
//!   new flow that the first or the last rule admits. Between two timed chunks of new flows
//!   the virtual clock jumps 31 s and `Gateway::handle_timeout` sweeps the previous chunk's
//!   unanswered flows, so that every chunk meets the same table; live flows' idle timeouts
//!   are a year so that these jumps never age them.
//!
//! Generated configurations are deterministic (a seeded xorshift). Per group of cases,
//! criterion's group runs first; then the bench measures the cases itself: a calibrating
//! round each, then 51 rounds of about 2 ms, the cases of the group in turn, and reports the
//! median in ns per operation with the heap allocations counted by a global allocator inside
//! every timed loop. Hits, routes and translations must not allocate (the bench fails if
//! they do). `cargo bench` writes the table into
//! `benches/RESULTS.md` between the `lookup` markers; `cargo test --benches` runs every case
//! once at a small scale, checks included, and writes nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::collections::HashSet;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ipnetwork::Ipv4Network;
use ixgw::buffer::{RxBatch, RxMeta, TxBatch, Via};
use ixgw::config::*;
use ixgw::dataplane::{Gateway, Plan};
use ixgw::ids::{AttachmentId, InternalV4, RuleId, TenantId};
use ixgw::nat::{self, fuzz::Checks, TenantMap};
use ixgw::policy::flows::{
    Flow, FlowTable, Generation, Generations, Lookup, Owner, Quotas, Signal, Start, State,
    Timeouts, Tuple,
};
use ixgw::policy::{Activity, PolicySet, Query};
use ixgw::wire::{self, build, icmp, tcp, L4, PROTO_TCP, PROTO_UDP};

// ---------------------------------------------------------------------------------------------
// Counting allocator, timing

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

/// Runs `f`; the time it took and the allocations made meanwhile.
#[inline(always)]
fn timed(f: impl FnOnce()) -> (Duration, u64) {
    let allocs = allocations();
    let start = Instant::now();
    f();
    let elapsed = start.elapsed();
    (elapsed, allocations() - allocs)
}

/// Operations per untimed refill of cases that consume their input (packets translated in
/// place): small enough to stay cached, large enough that two clock reads do not matter.
const CHUNK: usize = 256;

/// Runs `total` operations in chunks of at most [`CHUNK`] and sums what `step` reports.
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

/// How long one measured round should take: short, so that on a shared machine most rounds
/// run without being preempted and the median is one of them.
const ROUND: Duration = Duration::from_millis(2);
const MIN_OPS_PER_ROUND: usize = 16;
const MAX_OPS_PER_ROUND: usize = 1 << 20;

/// xorshift64* [Vigna, "An experimental exploration of Marsaglia's xorshift generators"]:
/// deterministic configurations without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` < 2³²).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes and the generated configuration

#[derive(Clone, Copy)]
struct Scale {
    flows: usize,
    rules: usize,
    prefixes: usize,
    /// Tenants the spread layout's rules are dealt over.
    spread_tenants: usize,
    /// Measured rounds per case (after one calibrating round).
    rounds: usize,
}

/// The sizes of issue 10.
const FULL: Scale = Scale {
    flows: 100_000,
    rules: 10_000,
    prefixes: 10_000,
    spread_tenants: 100,
    rounds: 51,
};

/// `cargo test --benches`: every case once, checks included, in an unoptimised build.
const QUICK: Scale = Scale {
    flows: 2_000,
    rules: 200,
    prefixes: 500,
    spread_tenants: 10,
    rounds: 1,
};

fn addr(base: Ipv4Addr, offset: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + offset as u32)
}

fn net(s: &str) -> Ipv4Network {
    s.parse().expect("prefix literal")
}

fn prefix(a: Ipv4Addr, len: u8) -> Ipv4Network {
    Ipv4Network::new(a, len).expect("length ≤ 32")
}

/// A random host of `p` (any of its addresses).
fn host_in(p: Ipv4Network, rng: &mut Rng) -> Ipv4Addr {
    addr(p.network(), rng.below(1 << (32 - u32::from(p.prefix()))))
}

/// Limits that hold the pipeline's 100,000 flows plus a chunk of new ones: the default table
/// (131,072) is large enough, but a tenant may hold only 25 % of it by default, and here one
/// tenant opens them all. Idle timeouts of live flows are a year: the pipeline's new-flow
/// cases move the clock on by 31 s per chunk (see the module doc).
fn limits() -> Dataplane {
    let year = Duration::from_secs(365 * 24 * 3600);
    Dataplane {
        workers: None,
        flow_table_size: 131_072,
        tcp_idle_timeout: year,
        udp_idle_timeout: year,
        icmp_idle_timeout: year,
        max_flows_per_tenant: FlowLimit::Percent(100.0),
        max_flows_per_facility: FlowLimit::Percent(100.0),
    }
}

fn config(tenants: Vec<Tenant>, policies: Vec<Policy>, agreements: Vec<Agreement>) -> Config {
    Config {
        source: PathBuf::from("lookup-bench.yaml"),
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
        dataplane: limits(),
        tenants,
        services: vec![],
        policies,
        agreements,
        trust: vec![],
        facilities: None,
        audit: None,
        usage: None,
        warnings: vec![],
    }
}

fn tenant(name: &str, networks: Vec<Network>, attachments: Vec<Attachment>) -> Tenant {
    Tenant {
        name: name.into(),
        trust: vec![],
        networks,
        attachments,
    }
}

fn plain(name: &str, routes: Vec<Ipv4Network>) -> Attachment {
    Attachment {
        name: name.into(),
        kind: AttachmentKind::Plain(PlainAttachment {
            tun: name.into(),
            mtu: 1500,
            routes,
            kernel_routes: vec![],
            directed_broadcast: false,
        }),
    }
}

/// The two tenants of the one-cell layout and the pipeline: both number 10.0.0.0/16, as
/// exchange 100.64.0.0/16 (A) and 100.65.0.0/16 (B), each behind a plain attachment.
const A: &str = "ajisai";
const B: &str = "mame";
const ATT_A: AttachmentId = AttachmentId(0);
const ATT_B: AttachmentId = AttachmentId(1);
const INTERNAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);
const A_EXCHANGE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
const B_EXCHANGE: Ipv4Addr = Ipv4Addr::new(100, 65, 0, 0);

fn pair_tenants() -> Vec<Tenant> {
    let side = |name: &str, exchange: Ipv4Addr| {
        tenant(
            name,
            vec![Network {
                internal: prefix(INTERNAL, 16),
                exchange: prefix(exchange, 16),
            }],
            vec![plain(&format!("{name}-tun"), vec![prefix(INTERNAL, 16)])],
        )
    };
    vec![side(A, A_EXCHANGE), side(B, B_EXCHANGE)]
}

/// A host of A's (internal 10.0.1.0–10.0.254.255: never the network or broadcast address of
/// the /16 it is routed by).
fn a_host(rng: &mut Rng) -> Ipv4Addr {
    addr(INTERNAL, 256 + rng.below(254 * 256))
}

/// Service ports the rules open, in turn: one rule in five opens the port of a query.
const PORTS: [u16; 5] = [443, 104, 2575, 11112, 5060];

fn rule_port(k: usize) -> u16 {
    PORTS[k % PORTS.len()]
}

/// What rule `k` of `rules` opens on the provider's side: the first half (policies) one host
/// each from 10.0.1.0, the second half (agreements) a /30 each from 10.0.64.0; all disjoint,
/// so a query for rule `k`'s prefix is admitted by rule `k` and no earlier one.
fn rule_prefix(k: usize, rules: usize) -> Ipv4Network {
    let policies = rules / 2;
    if k < policies {
        prefix(addr(INTERNAL, 256 + k), 32)
    } else {
        prefix(addr(INTERNAL, (64 << 8) + 4 * (k - policies)), 30)
    }
}

/// The host a query for rule `k` goes to.
fn rule_host(k: usize, rules: usize) -> Ipv4Addr {
    let p = rule_prefix(k, rules);
    if p.prefix() == 32 {
        p.ip()
    } else {
        addr(p.network(), 1)
    }
}

/// A host of the provider that no rule names.
const UNNAMED_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 250, 1);

/// `rules` rules, rule `k` from consumer to provider `parties(k)`: policies first, then as
/// many approved agreements without a window (agreements also require the consumer's
/// 10.0.0.0/16 as source prefix). Each allows TCP and UDP to [`rule_port`] of
/// [`rule_prefix`].
fn rules(
    rules: usize,
    parties: impl Fn(usize) -> (String, String),
) -> (Vec<Policy>, Vec<Agreement>) {
    let (mut policies, mut agreements) = (Vec::new(), Vec::new());
    for k in 0..rules {
        let (consumer, provider) = parties(k);
        let port = Some((rule_port(k), rule_port(k)));
        let grant = |name: String, prefixes: Vec<Ipv4Network>| Policy {
            name,
            from: Source {
                tenants: vec![consumer.clone()],
                facilities: vec![],
                prefixes,
            },
            to: Destination::Tenants {
                tenants: vec![provider.clone()],
                prefixes: vec![rule_prefix(k, rules)],
            },
            allow: vec![
                PortRule {
                    protocol: Protocol::Tcp,
                    ports: port,
                },
                PortRule {
                    protocol: Protocol::Udp,
                    ports: port,
                },
            ],
        };
        if k < rules / 2 {
            policies.push(grant(format!("policy-{k}"), vec![]));
        } else {
            let name = format!("agreement-{}", k - rules / 2);
            agreements.push(Agreement {
                name: name.clone(),
                consumer: consumer.clone(),
                provider: provider.clone(),
                grant: grant(name, vec![prefix(INTERNAL, 16)]),
                valid_from: None,
                valid_until: None,
                approved_by_provider: Some("bench".into()),
                approved_by_consumer: Some("bench".into()),
            });
        }
    }
    (policies, agreements)
}

/// Tenants A and B with every rule from A to B: one cell of `n` rules.
fn one_cell_config(n: usize) -> Config {
    let (policies, agreements) = rules(n, |_| (A.to_string(), B.to_string()));
    config(pair_tenants(), policies, agreements)
}

/// `tenants` tenants (only their names matter to the policy) and `n` rules dealt over every
/// ordered pair in turn: rule `k` from tenant `k mod tenants` to the one
/// `1 + (k / tenants) mod (tenants − 1)` further on.
fn spread_parties(k: usize, tenants: usize) -> (usize, usize) {
    let c = k % tenants;
    (c, (c + 1 + (k / tenants) % (tenants - 1)) % tenants)
}

fn spread_config(n: usize, tenants: usize) -> Config {
    let name = |t: usize| format!("t{t:03}");
    let (policies, agreements) = rules(n, |k| {
        let (c, p) = spread_parties(k, tenants);
        (name(c), name(p))
    });
    let tenants = (0..tenants)
        .map(|t| tenant(&name(t), vec![], vec![]))
        .collect();
    config(tenants, policies, agreements)
}

/// How many prefixes of each length make up 10,000: many short ones would not fit the
/// exchange space (a /10), so their counts fall with their size; 3,924,936 addresses in all.
const LENGTH_MIX: [(u8, usize); 17] = [
    (16, 16),
    (17, 16),
    (18, 32),
    (19, 32),
    (20, 64),
    (21, 128),
    (22, 256),
    (23, 512),
    (24, 1024),
    (25, 1000),
    (26, 1000),
    (27, 1000),
    (28, 1000),
    (29, 1000),
    (30, 1000),
    (31, 1000),
    (32, 920),
];

/// Packs prefixes of `lengths` from `base` upwards, largest first (so each is aligned), in
/// the order given.
fn pack(base: Ipv4Addr, lengths: &[u8]) -> Vec<Ipv4Network> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut out = vec![prefix(base, 32); lengths.len()];
    let mut at = 0usize;
    for i in order {
        out[i] = prefix(addr(base, at), lengths[i]);
        at += 1 << (32 - u32::from(lengths[i]));
    }
    out
}

/// The lengths of `n` prefixes of [`LENGTH_MIX`] (a random subset below 10,000), shuffled.
fn mixed_lengths(n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut lengths: Vec<u8> = LENGTH_MIX
        .iter()
        .flat_map(|&(len, count)| std::iter::repeat_n(len, count))
        .collect();
    rng.shuffle(&mut lengths);
    lengths.truncate(n);
    lengths
}

// ---------------------------------------------------------------------------------------------
// Cases

/// Something measured: `n` operations, the time they took and the allocations made meanwhile
/// (untimed preparation excluded from both).
trait Case {
    fn measure(&mut self, n: usize) -> (Duration, u64);
}

struct Bench {
    /// Criterion's id.
    id: &'static str,
    /// The table's columns: what is measured, and in which case.
    step: String,
    what: String,
    /// Must allocate nothing.
    no_alloc: bool,
    case: Box<dyn Case>,
}

fn bench(
    id: &'static str,
    step: &str,
    what: &str,
    no_alloc: bool,
    case: impl Case + 'static,
) -> Bench {
    Bench {
        id,
        step: step.to_string(),
        what: what.to_string(),
        no_alloc,
        case: Box::new(case),
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// --- admit, hit: the flow table ---

const GENERATIONS: Generations<'static> = Generations {
    plan: 1,
    facilities: &[],
};

/// Flows picked at random (with replacement) per sequence: drawing each packet's flow afresh,
/// rather than cycling through one permutation, keeps the neighbours of a flow in its LRU
/// list as random as the flow itself.
const SEQUENCE: usize = 1 << 20;
/// The flows of the cached case.
const CACHED: usize = 256;

struct LiveFlows {
    table: FlowTable,
    /// Random flows, each a tuple either way and what its packet says.
    all: Vec<(Tuple, Signal)>,
    /// Random flows among [`CACHED`] of them.
    cached: Vec<(Tuple, Signal)>,
    now: Instant,
}

/// Finds flows of a shared [`LiveFlows`], one of its sequences, cycled.
struct FlowHits {
    flows: Rc<RefCell<LiveFlows>>,
    cached: bool,
    /// `FlowTable::peek` (nothing refreshed, nothing moved in its LRU lists) instead of
    /// `lookup`.
    peek: bool,
    next: usize,
}

impl Case for FlowHits {
    fn measure(&mut self, n: usize) -> (Duration, u64) {
        let mut flows = self.flows.borrow_mut();
        let LiveFlows {
            table,
            all,
            cached,
            now,
        } = &mut *flows;
        let queries = if self.cached { cached } else { all };
        let (mut i, mut hits) = (self.next, 0);
        let result = timed(|| {
            for _ in 0..n {
                let (tuple, signal) = &queries[i];
                let found = if self.peek {
                    table.peek(tuple, *now, GENERATIONS)
                } else {
                    table.lookup(tuple, *signal, *now, GENERATIONS)
                };
                if let Lookup::Hit { .. } = found {
                    hits += 1;
                }
                i += 1;
                if i == queries.len() {
                    i = 0;
                }
            }
        });
        self.next = i;
        assert_eq!(hits, n, "every lookup finds its live flow");
        result
    }
}

fn reversed(t: &Tuple) -> Tuple {
    Tuple {
        src: t.dst,
        src_port: t.dst_port,
        dst: t.src,
        dst_port: t.src_port,
        protocol: t.protocol,
    }
}

/// A table as the gateway makes it ([`limits`]), holding `n` live flows from A's exchange
/// prefix to B's, even ones TCP (SYN, SYN-ACK, ACK seen: established), odd ones UDP
/// (answered), and the sequences of [`LiveFlows`].
fn live_flows(n: usize) -> LiveFlows {
    let mut rng = Rng::new(1);
    let limits = limits();
    let mut table = FlowTable::new(limits.flow_table_size, Timeouts::from(&limits));
    table.set_quotas(Quotas {
        per_tenant: limits.flow_table_size,
        per_facility: limits.flow_table_size,
    });
    table.reown(2, 0, |_| None);
    let now = Instant::now();
    let mut seen = HashSet::new();
    let mut flows = Vec::with_capacity(n);
    while flows.len() < n {
        let protocol = if flows.len() % 2 == 0 {
            PROTO_TCP
        } else {
            PROTO_UDP
        };
        let t = Tuple {
            src: addr(A_EXCHANGE, rng.below(1 << 16)),
            src_port: 1024 + rng.below(64_000) as u16,
            dst: addr(B_EXCHANGE, rng.below(1 << 16)),
            dst_port: PORTS[rng.below(PORTS.len())],
            protocol,
        };
        if seen.insert(t) {
            flows.push(t);
        }
    }
    let owner = Owner {
        tenant: TenantId(0),
        facility: None,
    };
    for t in &flows {
        let flow = Flow {
            opener: *t,
            facility: None,
            owner,
            rule: RuleId(0),
            generation: GENERATIONS.of(&owner),
        };
        let is_tcp = t.protocol == PROTO_TCP;
        let start = if is_tcp { Start::Syn } else { Start::Datagram };
        assert_eq!(
            table.insert(flow, start, now),
            Ok(None),
            "room for every flow"
        );
        let answer = if is_tcp {
            Signal::Tcp(tcp::FLAG_SYN | tcp::FLAG_ACK)
        } else {
            Signal::Datagram
        };
        table.lookup(&reversed(t), answer, now, GENERATIONS);
        if is_tcp {
            table.lookup(t, Signal::Tcp(tcp::FLAG_ACK), now, GENERATIONS);
        }
        let want = if is_tcp {
            State::Established
        } else {
            State::Replied
        };
        assert_eq!(table.state(t), Some(want));
    }
    assert_eq!(table.len(), n);
    rng.shuffle(&mut flows);
    let mut sequence = |of: &[Tuple], len: usize| -> Vec<(Tuple, Signal)> {
        (0..len)
            .map(|_| {
                let t = &of[rng.below(of.len())];
                let tuple = if rng.below(2) == 0 { *t } else { reversed(t) };
                let signal = if t.protocol == PROTO_TCP {
                    Signal::Tcp(tcp::FLAG_ACK)
                } else {
                    Signal::Datagram
                };
                (tuple, signal)
            })
            .collect()
    };
    let all = sequence(&flows, SEQUENCE);
    let cached = sequence(&flows[..CACHED.min(n)], 16 * CACHED);
    LiveFlows {
        table,
        all,
        cached,
        now: now + Duration::from_secs(1),
    }
}

fn flow_benches(s: Scale) -> Vec<Bench> {
    let flows = Rc::new(RefCell::new(live_flows(s.flows)));
    let case = |cached, peek| FlowHits {
        flows: Rc::clone(&flows),
        cached,
        peek,
        next: 0,
    };
    let n = thousands(s.flows);
    let lookup = format!("admit, hit: `FlowTable::lookup`, {n} live flows");
    vec![
        bench(
            "lookup/random",
            &lookup,
            "random flows among all of them",
            true,
            case(false, false),
        ),
        bench(
            "lookup/cached",
            &lookup,
            "random flows among 256 of them (cached)",
            true,
            case(true, false),
        ),
        bench(
            "peek/random",
            &format!("for contrast: `FlowTable::peek` (no refresh, no LRU move), {n} live flows"),
            "random flows among all of them",
            true,
            case(false, true),
        ),
    ]
}

// --- admit, miss: the policy ---

/// Queries per case, cycled (a power of two).
const QUERIES: usize = 256;

struct Evaluate {
    policy: PolicySet,
    activity: Activity,
    queries: Vec<Query>,
    want: Option<RuleId>,
}

impl Case for Evaluate {
    fn measure(&mut self, n: usize) -> (Duration, u64) {
        let Evaluate {
            policy,
            activity,
            queries,
            want,
        } = self;
        let mut right = 0;
        let result = timed(|| {
            for i in 0..n {
                let q = &queries[i & (QUERIES - 1)];
                if policy.evaluate_at(q, activity) == *want {
                    right += 1;
                }
            }
        });
        assert_eq!(right, n, "every query answered by the expected rule");
        result
    }
}

/// Queries from random hosts of A's numbering (tenant `src`) to `dst` (tenant `to`) on
/// `port`, TCP and UDP in turn; `want` must answer each.
fn evaluate(
    policy: &PolicySet,
    (src, to): (usize, usize),
    (dst, port): (Ipv4Addr, u16),
    want: Option<usize>,
    rng: &mut Rng,
) -> Evaluate {
    let queries: Vec<Query> = (0..QUERIES)
        .map(|i| Query {
            src_tenant: TenantId(src as u16),
            src_facility: None,
            src: InternalV4(a_host(rng)),
            dst_tenant: TenantId(to as u16),
            dst: InternalV4(dst),
            protocol: if i % 2 == 0 { PROTO_TCP } else { PROTO_UDP },
            dst_port: port,
        })
        .collect();
    let want = want.map(|k| RuleId(k as u16));
    for q in &queries {
        assert_eq!(policy.evaluate(q), want, "{q:?}");
    }
    Evaluate {
        policy: policy.clone(),
        activity: policy.activity_unknown(),
        queries,
        want,
    }
}

fn policy_benches(s: Scale) -> Vec<Bench> {
    let mut rng = Rng::new(3);
    let r = s.rules;
    let rule = |k: usize| format!("rule {} admits", thousands(k + 1));
    // (criterion ids in one cell and spread, the rule that admits, what it is)
    let positions = [
        (["one-cell/first", "spread/first"], Some(0), rule(0)),
        (
            ["one-cell/middle", "spread/middle"],
            Some(r / 2),
            rule(r / 2) + " (the first agreement)",
        ),
        (["one-cell/last", "spread/last"], Some(r - 1), rule(r - 1)),
        (
            ["one-cell/none", "spread/none"],
            None,
            "none admits (default deny)".to_string(),
        ),
    ];
    let one = PolicySet::compile(&one_cell_config(r));
    let t = s.spread_tenants;
    let spread = PolicySet::compile(&spread_config(r, t));
    let layouts = [
        (&one, format!("{} rules in one tenant pair", thousands(r))),
        (
            &spread,
            format!("{} rules over {t} tenants (~1 per pair)", thousands(r)),
        ),
    ];
    let mut out = Vec::new();
    for (layout, (policy, title)) in layouts.iter().enumerate() {
        for (ids, k, what) in &positions {
            // Default deny is asked of the pair of rule 1.
            let pair = match layout {
                0 => (0, 1),
                _ => spread_parties(k.unwrap_or(0), t),
            };
            let target = match *k {
                Some(k) => (rule_host(k, r), rule_port(k)),
                None => (UNNAMED_HOST, PORTS[0]),
            };
            out.push(bench(
                ids[layout],
                &format!("admit, miss: `PolicySet::evaluate_at`, {title}"),
                what,
                false,
                evaluate(policy, pair, target, *k, &mut rng),
            ));
        }
    }
    out
}

// --- translate ---

/// ICMP destination unreachable, code "port unreachable" [RFC 792].
const CODE_PORT_UNREACHABLE: u8 = 3;
/// Where A's host 10.0.0.2 sends from and B's host 10.0.0.3 listens.
const A_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

struct Translate {
    from: TenantMap,
    to: TenantMap,
    packet: Vec<u8>,
    mss_clamp: Option<u16>,
    /// Copies of `packet`, refilled before each timed chunk (translation works in place).
    pool: Vec<[u8; 128]>,
}

impl Case for Translate {
    fn measure(&mut self, n: usize) -> (Duration, u64) {
        let Translate {
            from,
            to,
            packet,
            mss_clamp,
            pool,
        } = self;
        let len = packet.len();
        let mut translated = 0;
        let result = in_chunks(n, |k| {
            for b in &mut pool[..k] {
                b[..len].copy_from_slice(packet);
            }
            timed(|| {
                for b in &mut pool[..k] {
                    if nat::translate(black_box(&mut b[..len]), from, to, *mss_clamp).is_ok() {
                        translated += 1;
                    }
                }
            })
        });
        assert_eq!(translated, n, "every packet translated");
        result
    }
}

fn map(exchange: Ipv4Addr) -> TenantMap {
    TenantMap::new(&[Network {
        internal: prefix(INTERNAL, 16),
        exchange: prefix(exchange, 16),
    }])
}

/// Translates `packet` once and checks the result: `want` addresses, every checksum that was
/// right still right, and the same transport summary.
fn translate(
    packet: Vec<u8>,
    (from, to): (TenantMap, TenantMap),
    mss_clamp: Option<u16>,
    want: (Ipv4Addr, Ipv4Addr),
) -> Translate {
    let before = Checks::of(&packet);
    assert!(before.ip && before.l4 == Some(true), "a well-formed packet");
    let mut out = packet.clone();
    nat::translate(&mut out, &from, &to, mss_clamp).expect("translates");
    let s = wire::inspect(&out).expect("still a packet the data path takes");
    assert_eq!((s.src, s.dst), want, "twice NAT");
    assert!(Checks::of(&out).preserves(before), "checksums patched");
    match (s.l4, wire::inspect(&packet).expect("inspected").l4) {
        (L4::IcmpError { inner: after }, L4::IcmpError { inner: sent }) => {
            assert_eq!((after.src, after.dst), (want.1, want.0), "quoted header");
            assert_ne!((after.src, after.dst), (sent.src, sent.dst));
        }
        (after, sent) => assert_eq!(after, sent),
    }
    Translate {
        from,
        to,
        packet,
        mss_clamp,
        pool: vec![[0; 128]; CHUNK],
    }
}

fn translate_benches(_: Scale) -> Vec<Bench> {
    let (a, b) = (map(A_EXCHANGE), map(B_EXCHANGE));
    let a_x = a.to_exchange(InternalV4(A_HOST)).expect("mapped").0;
    let b_x = b.to_exchange(InternalV4(B_HOST)).expect("mapped").0;
    let mut buf = [0u8; 128];

    // A's host to B's, as A numbers them.
    let n = build::udp(&mut buf, A_HOST, b_x, 40_000, 5_000, &[0xab; 36]).expect("fits");
    let udp = buf[..n].to_vec();
    let n = build::tcp(
        &mut buf,
        A_HOST,
        b_x,
        40_001,
        443,
        1,
        1,
        tcp::FLAG_ACK,
        None,
        &[0xab; 24],
    )
    .expect("fits");
    let segment = buf[..n].to_vec();
    let n = build::tcp(
        &mut buf,
        A_HOST,
        b_x,
        40_002,
        443,
        0,
        0,
        tcp::FLAG_SYN,
        Some(1460),
        &[],
    )
    .expect("fits");
    let syn = buf[..n].to_vec();
    // B's host tells A's that the datagram, as B received it, found no listener.
    let mut quoted = udp.clone();
    nat::translate(&mut quoted, &a, &b, None).expect("translates");
    let n = build::icmp_error(
        &mut buf,
        B_HOST,
        a_x,
        icmp::TYPE_DEST_UNREACHABLE,
        CODE_PORT_UNREACHABLE,
        &quoted,
    )
    .expect("fits");
    let error = buf[..n].to_vec();

    let a_to_b = (a_x, B_HOST);
    let b_to_a = (b_x, A_HOST);
    let ab = || (a.clone(), b.clone());
    let step = "translate: `nat::translate` (twice NAT)";
    vec![
        bench(
            "udp",
            step,
            "UDP, 64 B",
            true,
            translate(udp, ab(), Some(1460), a_to_b),
        ),
        bench(
            "tcp",
            step,
            "TCP ACK segment, 64 B",
            true,
            translate(segment, ab(), Some(1460), a_to_b),
        ),
        bench(
            "tcp-syn-mss",
            step,
            "TCP SYN, its MSS 1460 clamped to 1360, 44 B",
            true,
            translate(syn, ab(), Some(1360), a_to_b),
        ),
        bench(
            "icmp-error",
            step,
            "ICMP port unreachable quoting a UDP datagram, 92 B",
            true,
            translate(error, (b.clone(), a.clone()), Some(1460), b_to_a),
        ),
    ]
}

// --- route ---

/// Destinations per case, cycled (a power of two).
const DESTINATIONS: usize = 1 << 16;

/// `PrefixTable::lookup_prefix` of one tenant's routes.
struct Routes {
    plan: Plan,
    tenant: TenantId,
    dsts: Vec<Ipv4Addr>,
}

impl Case for Routes {
    fn measure(&mut self, n: usize) -> (Duration, u64) {
        let routes = &self.plan.tenant(self.tenant).routes;
        let dsts = &self.dsts;
        let mut found = 0;
        let result = timed(|| {
            for i in 0..n {
                if let Some(hit) = routes.lookup_prefix(dsts[i & (DESTINATIONS - 1)]) {
                    black_box(hit);
                    found += 1;
                }
            }
        });
        assert_eq!(found, n, "every destination routed");
        result
    }
}

/// `Plan::resolve_exchange`: exchange table, then the tenant's mapping.
struct Resolve {
    plan: Plan,
    dsts: Vec<Ipv4Addr>,
}

impl Case for Resolve {
    fn measure(&mut self, n: usize) -> (Duration, u64) {
        let Resolve { plan, dsts } = self;
        let mut found = 0;
        let result = timed(|| {
            for i in 0..n {
                if let Some(hit) = plan.resolve_exchange(dsts[i & (DESTINATIONS - 1)]) {
                    black_box(hit);
                    found += 1;
                }
            }
        });
        assert_eq!(found, n, "every destination resolved");
        result
    }
}

/// Random hosts of prefixes drawn uniformly from `of`.
fn destinations(of: &[Network], rng: &mut Rng) -> Vec<Network> {
    (0..DESTINATIONS)
        .map(|_| {
            let n = of[rng.below(of.len())];
            let host = host_in(n.exchange, rng);
            let internal = nat::remap(host, n.exchange, n.internal);
            Network {
                exchange: prefix(host, 32),
                internal: prefix(internal, 32),
            }
        })
        .collect()
}

fn route_benches(s: Scale) -> Vec<Bench> {
    let mut rng = Rng::new(4);
    let n = s.prefixes;
    let count = thousands(n);

    // A carrier holding `n` networks of mixed lengths, 1:1 between 100.64.0.0/10 and
    // 10.0.0.0/10, each routed to its plain attachment.
    let lengths = mixed_lengths(n, &mut rng);
    let networks: Vec<Network> = pack(A_EXCHANGE, &lengths)
        .into_iter()
        .zip(pack(INTERNAL, &lengths))
        .map(|(exchange, internal)| Network { internal, exchange })
        .collect();
    let routes = networks.iter().map(|n| n.internal).collect();
    let carrier = tenant(
        "carrier",
        networks.clone(),
        vec![plain("carrier-tun", routes)],
    );
    let plan = Plan::compile(&config(vec![carrier], vec![], vec![]), 1);
    let shortest = lengths.iter().min().copied().expect("prefixes");
    let check_routes = |dsts: &[Network]| {
        for d in dsts {
            let (len, _) = plan.tenants[0]
                .routes
                .lookup_prefix(d.internal.ip())
                .expect("routed");
            let held = networks
                .iter()
                .find(|n| n.internal.contains(d.internal.ip()))
                .expect("inside a network");
            assert_eq!(len, held.internal.prefix());
        }
    };
    let any = destinations(&networks, &mut rng);
    let widest: Vec<Network> = networks
        .iter()
        .copied()
        .filter(|n| n.internal.prefix() == shortest)
        .collect();
    let wide = destinations(&widest, &mut rng);
    check_routes(&any[..1024]);
    check_routes(&wide[..1024]);
    let resolve_any = |plan: &Plan, dsts: &[Network], tenant_of: &dyn Fn(Ipv4Addr) -> usize| {
        for d in &dsts[..1024] {
            let want = (
                TenantId(tenant_of(d.exchange.ip()) as u16),
                InternalV4(d.internal.ip()),
            );
            assert_eq!(plan.resolve_exchange(d.exchange.ip()), Some(want));
        }
    };
    resolve_any(&plan, &any, &|_| 0);
    let internal = |d: &[Network]| d.iter().map(|d| d.internal.ip()).collect();
    let exchange = |d: &[Network]| d.iter().map(|d| d.exchange.ip()).collect::<Vec<_>>();
    let lengths_seen = {
        let mut l = lengths.clone();
        l.sort_unstable();
        l.dedup();
        l.len()
    };

    // The same exchange prefixes held by n / 10 tenants, 10 each (their internal numbering
    // packed from 10.0.0.0 per tenant, so the tenants overlap).
    let tenants = (n / 10).max(1);
    let mut held: Vec<Vec<Ipv4Network>> = vec![Vec::new(); tenants];
    for (i, x) in networks.iter().enumerate() {
        held[i % tenants].push(x.exchange);
    }
    let mut many = Vec::with_capacity(tenants);
    let mut owner = std::collections::HashMap::new();
    let mut pairs = Vec::with_capacity(n);
    for (t, exchange) in held.iter().enumerate() {
        let lengths: Vec<u8> = exchange.iter().map(|x| x.prefix()).collect();
        let nets: Vec<Network> = exchange
            .iter()
            .zip(pack(INTERNAL, &lengths))
            .map(|(&exchange, internal)| Network { internal, exchange })
            .collect();
        for n in &nets {
            owner.insert(n.exchange, t);
        }
        pairs.extend(nets.iter().copied());
        many.push(tenant(&format!("t{t:04}"), nets, vec![]));
    }
    let many_plan = Plan::compile(&config(many, vec![], vec![]), 1);
    let spread_dsts = destinations(&pairs, &mut rng);
    let tenant_of = |x: Ipv4Addr| {
        let p = networks
            .iter()
            .find(|n| n.exchange.contains(x))
            .expect("inside");
        owner[&p.exchange]
    };
    resolve_any(&many_plan, &spread_dsts, &tenant_of);

    let routes = format!(
        "route: `routes.lookup_prefix`, one tenant's {count} prefixes ({lengths_seen} lengths, /16–/32)"
    );
    let resolve = format!("route: `Plan::resolve_exchange`, {count} exchange prefixes");
    vec![
        bench(
            "tenant/any",
            &routes,
            "random prefix",
            true,
            Routes {
                plan: plan.clone(),
                tenant: TenantId(0),
                dsts: internal(&any),
            },
        ),
        bench(
            "tenant/widest",
            &routes,
            &format!("inside a /{shortest} (every length probed)"),
            true,
            Routes {
                plan: plan.clone(),
                tenant: TenantId(0),
                dsts: internal(&wide),
            },
        ),
        bench(
            "exchange/many-tenants",
            &resolve,
            &format!(
                "{} tenants of {} networks: random prefix",
                thousands(tenants),
                n / tenants
            ),
            true,
            Resolve {
                plan: many_plan,
                dsts: exchange(&spread_dsts),
            },
        ),
        bench(
            "exchange/one-tenant",
            &resolve,
            &format!("one tenant of {count} networks: random prefix"),
            true,
            Resolve {
                plan,
                dsts: exchange(&any),
            },
        ),
    ]
}

// --- pipeline ---

/// Packets per `handle_batch`, as the worker drains them.
const BATCH: usize = 64;
/// Bytes of every packet.
const PACKET: usize = 64;

/// An established flow, in each tenant's own numbering.
#[derive(Clone, Copy)]
struct Conversation {
    a: (Ipv4Addr, u16),
    b: (Ipv4Addr, u16),
}

#[derive(Clone, Copy)]
enum Traffic {
    /// A packet of a random established flow, either way.
    Established,
    /// A packet from A opening a new flow that rule `k` admits.
    New(usize),
}

struct Pipeline {
    gw: Gateway,
    tx: TxBatch,
    pool: Vec<RxBatch>,
    now: Instant,
    a: TenantMap,
    b: TenantMap,
    rules: usize,
    flows: Vec<Conversation>,
    /// Draws the established case's flows and their directions (in the untimed refill).
    rng: Rng,
    /// New flows opened so far: each takes the next source port and host.
    opened: usize,
}

impl Pipeline {
    fn forwarded(&self) -> u64 {
        let c = self.gw.counters();
        c.tenant(0).tx_packets.get() + c.tenant(1).tx_packets.get()
    }

    fn drops(&self) -> u64 {
        self.gw.counters().drops().map(|(_, _, n)| n).sum()
    }

    /// Writes the pool's `i`-th packet: a UDP datagram from `from` (internal) to the exchange
    /// address of the other side's `to`.
    fn put(&mut self, i: usize, (from, to): ((Ipv4Addr, u16), (Ipv4Addr, u16)), b_to_a: bool) {
        let (attachment, map) = if b_to_a {
            (ATT_B, &self.a)
        } else {
            (ATT_A, &self.b)
        };
        let dst = map.to_exchange(InternalV4(to.0)).expect("mapped").0;
        let rx = &mut self.pool[i / BATCH];
        let buf = rx.next_buf().expect("room in the batch");
        let len = build::udp(buf, from.0, dst, from.1, to.1, &[0xab; PACKET - 28]).expect("fits");
        rx.commit(RxMeta {
            attachment,
            via: Via::DEVICE,
            len,
        });
    }

    /// Untimed: `n` packets into the pool.
    fn refill(&mut self, n: usize, traffic: Traffic) {
        for rx in &mut self.pool {
            rx.clear();
        }
        for i in 0..n {
            match traffic {
                Traffic::Established => {
                    let c = self.flows[self.rng.below(self.flows.len())];
                    let b_to_a = self.rng.below(2) == 1;
                    let ends = if b_to_a { (c.b, c.a) } else { (c.a, c.b) };
                    self.put(i, ends, b_to_a);
                }
                Traffic::New(k) => {
                    let c = self.opened;
                    self.opened += 1;
                    // Source ports above those of the established flows: never one of them.
                    let from = (
                        addr(INTERNAL, 256 + (c / 25_000) % (254 * 256)),
                        40_000 + (c % 25_000) as u16,
                    );
                    let to = (rule_host(k, self.rules), rule_port(k));
                    self.put(i, (from, to), false);
                }
            }
        }
    }

    /// Timed: the pool's packets through the gateway, a batch at a time.
    #[inline(never)]
    fn run(&mut self, n: usize) -> (Duration, u64) {
        let Pipeline {
            gw, tx, pool, now, ..
        } = self;
        timed(|| {
            for rx in &mut pool[..n.div_ceil(BATCH)] {
                gw.handle_batch(*now, rx, tx);
                tx.clear();
            }
        })
    }

    fn measure(&mut self, n: usize, traffic: Traffic) -> (Duration, u64) {
        let flows = self.flows.len();
        in_chunks(n, |k| {
            if let Traffic::New(_) = traffic {
                // The previous chunk's flows, never answered, die (30 s) and are swept.
                self.now += Duration::from_secs(31);
                self.gw.handle_timeout(self.now, &mut self.tx);
                self.tx.clear();
                assert_eq!(self.gw.flow_count(), flows, "new flows swept");
            }
            self.refill(k, traffic);
            let before = self.forwarded();
            let result = self.run(k);
            assert_eq!(
                self.forwarded() - before,
                k as u64,
                "every packet forwarded"
            );
            assert_eq!(self.drops(), 0);
            if let Traffic::New(_) = traffic {
                assert_eq!(self.gw.flow_count(), flows + k, "every new flow taken");
            }
            result
        })
    }
}

/// One case of a shared pipeline (building 100,000 flows is worth doing once).
struct PipelineCase(Rc<RefCell<Pipeline>>, Traffic);

impl Case for PipelineCase {
    fn measure(&mut self, n: usize) -> (Duration, u64) {
        self.0.borrow_mut().measure(n, self.1)
    }
}

/// The gateway of the one-cell layout with `flows` flows from A to B opened (each to the host
/// and port of a random rule) and answered.
fn pipeline(s: Scale) -> Pipeline {
    let mut rng = Rng::new(5);
    let config = one_cell_config(s.rules);
    let plan = Plan::compile(&config, 1);
    let (a, b) = (plan.tenants[0].map.clone(), plan.tenants[1].map.clone());
    let now = Instant::now();
    let gw = Gateway::new(Arc::new(plan), now);
    let mut seen = HashSet::new();
    let mut flows = Vec::with_capacity(s.flows);
    while flows.len() < s.flows {
        let k = rng.below(s.rules);
        let c = Conversation {
            a: (a_host(&mut rng), 1024 + rng.below(30_000) as u16),
            b: (rule_host(k, s.rules), rule_port(k)),
        };
        if seen.insert((c.a, c.b)) {
            flows.push(c);
        }
    }
    let mut p = Pipeline {
        gw,
        tx: TxBatch::new(BATCH),
        pool: (0..CHUNK / BATCH).map(|_| RxBatch::new(BATCH)).collect(),
        now,
        a,
        b,
        rules: s.rules,
        flows,
        rng,
        opened: 0,
    };
    // Every flow opened, then answered, a batch at a time; the first batch's first packet
    // checked on its way out.
    for b_to_a in [false, true] {
        for start in (0..p.flows.len()).step_by(BATCH) {
            let end = (start + BATCH).min(p.flows.len());
            p.pool[0].clear();
            for i in start..end {
                let c = p.flows[i];
                let ends = if b_to_a { (c.b, c.a) } else { (c.a, c.b) };
                p.put(i - start, ends, b_to_a);
            }
            let tx = &mut p.tx;
            p.gw.handle_batch(now, &mut p.pool[0], tx);
            assert_eq!(tx.len(), end - start, "every packet out");
            if start == 0 {
                let (meta, out) = tx.get(0);
                let c = p.flows[0];
                let s = wire::inspect(out).expect("a packet");
                let (want, to) = if b_to_a {
                    (
                        (p.b.to_exchange(InternalV4(c.b.0)).expect("mapped").0, c.a.0),
                        ATT_A,
                    )
                } else {
                    (
                        (p.a.to_exchange(InternalV4(c.a.0)).expect("mapped").0, c.b.0),
                        ATT_B,
                    )
                };
                assert_eq!((s.src, s.dst), want, "twice NAT");
                assert_eq!(meta.attachment, to);
            }
            p.tx.clear();
        }
    }
    assert_eq!(p.drops(), 0);
    assert_eq!(p.gw.flow_count(), p.flows.len());
    assert_eq!(p.forwarded(), 2 * p.flows.len() as u64);
    p
}

fn pipeline_benches(s: Scale) -> Vec<Bench> {
    let shared = Rc::new(RefCell::new(pipeline(s)));
    let r = s.rules;
    let step = format!(
        "pipeline: `Gateway::handle_batch`, plain → plain, {PACKET} B UDP, {BATCH} a batch, \
         {} rules in one tenant pair, {} flows",
        thousands(r),
        thousands(s.flows)
    );
    let case = |traffic| PipelineCase(Rc::clone(&shared), traffic);
    vec![
        bench(
            "established",
            &step,
            "packet of an established flow (random flow, either way)",
            true,
            case(Traffic::Established),
        ),
        bench(
            "new/first",
            &step,
            "packet opening a new flow, rule 1 admits",
            false,
            case(Traffic::New(0)),
        ),
        bench(
            "new/last",
            &step,
            &format!("packet opening a new flow, rule {} admits", thousands(r)),
            false,
            case(Traffic::New(r - 1)),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Measurement, table, results file

/// One case's figures.
struct Row {
    step: String,
    what: String,
    ns: f64,
    allocs_per_op: f64,
    no_alloc: bool,
}

/// Measures a group's cases in turn, `rounds` times (interleaved, so that a burst of load on
/// the machine spreads over the cases instead of spoiling one), after a calibrating round
/// each that sizes their rounds to about [`ROUND`] (one [`CHUNK`] in a quick run): the median
/// ns per operation and the allocations per operation of each.
fn measure_group(benches: &mut [Bench], rounds: usize, quick: bool) -> Vec<Row> {
    let ops: Vec<usize> = benches
        .iter_mut()
        .map(|b| {
            let (t, _) = b.case.measure(CHUNK);
            let per_op = t.as_secs_f64() / CHUNK as f64;
            if quick {
                CHUNK
            } else {
                let n = (ROUND.as_secs_f64() / per_op.max(1e-9)) as usize;
                n.clamp(MIN_OPS_PER_ROUND, MAX_OPS_PER_ROUND)
            }
        })
        .collect();
    let mut ns = vec![Vec::with_capacity(rounds); benches.len()];
    let mut allocs = vec![0; benches.len()];
    for _ in 0..rounds {
        for (i, b) in benches.iter_mut().enumerate() {
            let (t, a) = b.case.measure(ops[i]);
            ns[i].push(t.as_nanos() as f64 / ops[i] as f64);
            allocs[i] += a;
        }
    }
    benches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            ns[i].sort_by(f64::total_cmp);
            Row {
                step: b.step.clone(),
                what: b.what.clone(),
                ns: ns[i][ns[i].len() / 2],
                allocs_per_op: allocs[i] as f64 / (rounds * ops[i]) as f64,
                no_alloc: b.no_alloc,
            }
        })
        .collect()
}

fn allocs(a: f64) -> String {
    if a == 0.0 {
        "0".into()
    } else {
        format!("{a:.3}")
    }
}

fn table(rows: &[Row]) -> String {
    let mut t =
        String::from("| step | case | ns/op | allocations/op |\n| --- | --- | ---: | ---: |\n");
    let mut last = "";
    for r in rows {
        let step = if r.step == last { "" } else { r.step.as_str() };
        last = &r.step;
        let ns = if r.ns < 100.0 {
            format!("{:.1}", r.ns)
        } else {
            thousands(r.ns.round() as usize)
        };
        t += &format!(
            "| {step} | {} | {ns} | {} |\n",
            r.what,
            allocs(r.allocs_per_op)
        );
    }
    t
}

/// What the figures were measured on: CPUs, CPU model, kernel, load average before the run.
struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
    load: String,
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        model,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        load,
    }
}

const RESULTS: &str = "benches/RESULTS.md";
const BEGIN: &str = "<!-- begin lookup -->";
const END: &str = "<!-- end lookup -->";

/// The short commit and whether tracked files differ from it (the results file aside).
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(hash) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown commit".into();
    };
    let exclude = format!(":(exclude){RESULTS}");
    let status = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        &exclude,
    ]);
    match status.as_deref() {
        Some("") => format!("commit `{hash}` (clean)"),
        Some(_) => format!("commit `{hash}` (dirty: uncommitted changes)"),
        None => format!("commit `{hash}`"),
    }
}

fn utc_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn section(rows: &[Row], m: &Machine, commit: &str, s: Scale) -> String {
    format!(
        "{BEGIN}\n## lookup\n\n\
         `cargo bench --bench lookup` on {date}, {commit}; {cpus} CPUs ({model}), Linux {kernel}, \
         load average {load} before the run (the machine is shared: compare rows of one run \
         rather than runs).\n\n\
         Median of {rounds} rounds of about {round} ms per case (rounds of related cases interleaved), ns per operation on one core; \
         allocations per operation counted by a global allocator inside every timed loop. \
         {flows} flows, {rules} rules ({half} policies, then {half} agreements), {prefixes} \
         prefixes; configurations generated from fixed seeds.\n\n{table}{END}\n",
        date = utc_now(),
        cpus = m.cpus,
        model = m.model,
        kernel = m.kernel,
        load = m.load,
        rounds = s.rounds,
        round = ROUND.as_millis(),
        flows = thousands(s.flows),
        rules = thousands(s.rules),
        half = thousands(s.rules / 2),
        prefixes = thousands(s.prefixes),
        table = table(rows),
    )
}

/// Replaces the lookup section of the results file (or appends it), leaving the rest as it
/// was; creates the file with a header when it is missing.
fn write_results(root: &Path, section: &str) -> std::io::Result<()> {
    let path = root.join(RESULTS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmark results\n".into(),
        Err(e) => return Err(e),
    };
    let text = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let rest = text[e + END.len()..]
                .strip_prefix('\n')
                .unwrap_or(&text[e + END.len()..]);
            format!("{}{section}{rest}", &text[..b])
        }
        _ => format!("{}\n\n{section}", text.trim_end_matches('\n')),
    };
    std::fs::write(&path, text)
}

type Group = (&'static str, fn(Scale) -> Vec<Bench>);

const GROUPS: [Group; 5] = [
    ("flows", flow_benches),
    ("policy", policy_benches),
    ("translate", translate_benches),
    ("route", route_benches),
    ("pipeline", pipeline_benches),
];

fn main() {
    let before = allocations();
    black_box(vec![0u8; 1]);
    assert!(allocations() > before, "the counting allocator counts");
    let machine = machine();
    // `cargo test --benches` runs this binary without `--bench`: criterion then runs each
    // routine once, and the bench runs its cases once at a small scale.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { QUICK } else { FULL };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .configure_from_args();
    let mut rows = Vec::new();
    // Each group lives only for its own measurements.
    for (name, build) in GROUPS {
        let mut benches = build(scale);
        let mut g = c.benchmark_group(name);
        for b in &mut benches {
            let case = &mut b.case;
            g.bench_function(b.id, |bencher| {
                bencher.iter_custom(|iters| case.measure(iters as usize).0)
            });
        }
        g.finish();
        rows.extend(measure_group(&mut benches, scale.rounds, quick));
    }
    c.final_summary();

    let table = table(&rows);
    println!("\nlookup: median ns per operation, allocations per operation\n\n{table}");
    let allocating: Vec<String> = (rows.iter())
        .filter(|r| r.no_alloc && r.allocs_per_op > 0.0)
        .map(|r| format!("{}: {}", r.step, r.what))
        .collect();
    assert!(
        allocating.is_empty(),
        "paths that must not allocate did: {allocating:?}"
    );
    if !quick {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let section = section(&rows, &machine, &commit(root), scale);
        match write_results(root, &section) {
            Ok(()) => println!("written to {RESULTS}"),
            Err(e) => eprintln!("{RESULTS} not written: {e}"),
        }
    }
}
