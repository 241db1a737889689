//! What one `/metrics` scrape costs with many peers: time, exposition size, series, and the
//! memory a scrape allocates; in process and against the real daemon.
//!
//! The configuration is generated: one tenant, one WireGuard attachment with `PEERS` peers
//! (10,000 by default, `IXGW_SCRAPE_PEERS` to change it), each peer its own facility
//! (`certificate: none`) with a valid facility code, a deterministic public key and a /32 of
//! `10.0.0.0/16`. The file, its gateway key and the loopback ports are written to a temporary
//! directory.
//!
//! * In process: the file loaded ([`Config::load`]), compiled ([`Plan::compile`]) and handed
//!   to a [`Gateway`] whose [`Counters`] are then filled as forwarding fills them (traffic,
//!   wire bytes and drops per peer, per-tenant traffic, drops by reason, handshakes; most
//!   peers with a recent handshake, some stale, some never). One scrape is
//!   [`MetricsHub::try_encode`], what `/metrics` answers, in each `metrics.peer_series` mode;
//!   the median of `SCRAPES`, the allocations and the peak of heap bytes live above the start
//!   of the scrape (a counting global allocator) are reported, and the exposition is checked:
//!   the peers' series as the mode says, the attachment's sums, the peer counts.
//! * The daemon: the bench's own release `ixgw` (`CARGO_BIN_EXE_ixgw`) runs the same file
//!   (with each mode) on loopback; `ixgw check` times the load alone, `run` until `/ready`
//!   answers 200 the start, then `SCRAPES` sequential `GET /metrics` by curl (`time_total`;
//!   a client of its own if there is no curl: slower at reading 11 MiB, it shows in the
//!   times) on a fresh connection each, and the process' resident memory is read from
//!   `/proc/PID/status` before and after. Its counters are zero (no traffic), and its
//!   exposition also holds the facility registry's series (the facility collector lives in
//!   the runtime, which the in-process part does not start).
//!
//! `cargo bench --bench scrape` prints the results and replaces the section between
//! `<!-- begin scrape -->` and `<!-- end scrape -->` of `benches/RESULTS.md`. Without
//! `--bench` (`cargo test --benches`) it checks 200 peers in process and writes nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ixgw::config::{Config, PeerSeries};
use ixgw::dataplane::{Gateway, Plan};
use ixgw::ids::FacilityCode;
use ixgw::metrics::{Counters, HandshakeResult, MetricsHub};
use ixgw::vocab::DropReason;

/// Counts allocations and tracks the heap bytes live, and their peak, of the whole process.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        grew(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        grew(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const PEERS: usize = 10_000;
const SCRAPES: usize = 10;
const TENANT: &str = "region-net";
const ATTACHMENT: &str = "region-wg";

fn peer_name(i: usize) -> String {
    format!("clinic-{i:05}")
}

/// A valid facility code per peer: prefecture 42, point table 1, institution `i`.
fn facility(i: usize) -> String {
    let nine = format!("421{i:06}");
    let code = format!("{nine}{}", FacilityCode::check_digit(nine.as_bytes()));
    FacilityCode::parse(&code).expect("a valid facility code");
    code
}

/// 32 bytes that depend only on `i` (splitmix64), base64: any 32 bytes are an X25519 key.
fn key(i: u64) -> String {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234_5678;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A loopback port nothing listens on now (bound and released).
fn free_port(tcp: bool) -> u16 {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    if tcp {
        TcpListener::bind(any).unwrap().local_addr().unwrap().port()
    } else {
        UdpSocket::bind(any).unwrap().local_addr().unwrap().port()
    }
}

struct Generated {
    dir: PathBuf,
    file: PathBuf,
    metrics: SocketAddr,
    bytes: usize,
}

fn word(mode: PeerSeries) -> &'static str {
    match mode {
        PeerSeries::All => "all",
        PeerSeries::State => "state",
        PeerSeries::None => "none",
    }
}

/// Writes the configuration of `peers` peers (see the module's documentation) with
/// `metrics.peer_series: mode`, on loopback ports free now.
fn generate(peers: usize, mode: PeerSeries) -> Generated {
    assert!(peers <= 65_536, "one /32 of 10.0.0.0/16 per peer");
    let dir = std::env::temp_dir().join(format!("ixgw-scrape-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gw.key"), format!("{}\n", key(u64::MAX))).unwrap();
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(true)));
    let wg_port = free_port(false);
    let mut y = String::with_capacity(peers * 300);
    writeln!(
        y,
        "ix:\n  name: scrape-bench\n  exchange_space: 100.64.0.0/10\n\
         metrics:\n  listen: {metrics}\n  admin_socket: none\n  peer_series: {}\n\
         facilities:",
        word(mode)
    )
    .unwrap();
    for i in 0..peers {
        writeln!(
            y,
            "  - code: \"{}\"\n    name: Clinic {i:05}\n    tenant: {TENANT}\n    certificate: none",
            facility(i)
        )
        .unwrap();
    }
    writeln!(
        y,
        "tenants:\n  - name: {TENANT}\n    networks:\n      - internal: 10.0.0.0/16\n        \
         exchange: 100.64.0.0/16\n    attachments:\n      - name: {ATTACHMENT}\n        \
         type: wireguard\n        listen: 127.0.0.1:{wg_port}\n        \
         private_key_file: gw.key\n        peers:"
    )
    .unwrap();
    for i in 0..peers {
        writeln!(
            y,
            "          - name: {}\n            facility: \"{}\"\n            public_key: {}\n            allowed_ips: [10.0.{}.{}/32]",
            peer_name(i),
            facility(i),
            key(i as u64),
            i / 256,
            i % 256,
        )
        .unwrap();
    }
    let file = dir.join("ixgw.yaml");
    std::fs::write(&file, &y).unwrap();
    Generated {
        dir,
        file,
        metrics,
        bytes: y.len(),
    }
}

/// Fills `c` as forwarding would have: every peer sent and received, 9 in 10 handshook in
/// the last three minutes (up), 1 in 20 long ago (down), the rest never; drops here and
/// there, handshake results on the attachment.
fn fill(c: &Counters, peers: usize, now: Instant) {
    for i in 0..peers {
        let n = i as u64 + 1;
        let t = c.peer(i);
        t.rx_packets.add(1_000 + n * 37);
        t.rx_bytes.add(1_300_000_000 + n * 48_611);
        t.tx_packets.add(2_000 + n * 53);
        t.tx_bytes.add(2_600_000_000 + n * 91_003);
        c.peer_wire_rx(i, 1_400_000_000 + n as usize * 50_001);
        c.peer_wire_tx(i, 2_700_000_000 + n as usize * 93_017);
        if i % 7 == 0 {
            c.peer_drop(i);
        }
        match i % 20 {
            0 => {}
            1 => c.peer_handshake(i, now - Duration::from_secs(3_600)),
            k => c.peer_handshake(i, now - Duration::from_millis(1_000 + 7_919 * k as u64)),
        }
        c.tenant(0).rx(1_300);
        c.tenant(0).tx(1_300);
    }
    for (k, r) in DropReason::ALL.iter().enumerate() {
        c.drops_add(Some(0), *r, k as u64 * 11);
    }
    for r in HandshakeResult::ALL {
        for _ in 0..3 {
            c.handshake(Some(0), *r);
        }
    }
    c.set_flows(4_321);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Series in an exposition: lines that are not comments.
fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// One scrape's cost, as measured over several.
struct Cost {
    ms: Vec<f64>,
    bytes: usize,
    series: usize,
    /// `ixgw_peer_*` series.
    peer_series: usize,
    allocations: u64,
    /// Heap bytes above what was live before the scrape, at most.
    peak_bytes: usize,
}

struct InProcess {
    load_ms: f64,
    compile_ms: f64,
    heap_before: usize,
    /// By `metrics.peer_series`.
    modes: Vec<(PeerSeries, Cost)>,
}

fn measure(hub: &MetricsHub, scrapes: usize) -> (Cost, String) {
    let first = hub.try_encode().unwrap();
    let mut ms_each = Vec::new();
    let (mut allocations, mut peak_bytes) = (0, 0);
    for _ in 0..scrapes {
        let live = LIVE.load(Relaxed);
        PEAK.store(live, Relaxed);
        let a = ALLOCATIONS.load(Relaxed);
        let t = Instant::now();
        let text = hub.try_encode().unwrap();
        let took = t.elapsed();
        allocations = ALLOCATIONS.load(Relaxed) - a;
        peak_bytes = PEAK.load(Relaxed) - live;
        ms_each.push(ms(took));
        std::hint::black_box(text);
    }
    let cost = Cost {
        ms: ms_each,
        bytes: first.len(),
        series: series(&first),
        peer_series: first
            .lines()
            .filter(|l| l.starts_with("ixgw_peer_"))
            .count(),
        allocations,
        peak_bytes,
    };
    (cost, first)
}

const MODES: [PeerSeries; 3] = [PeerSeries::All, PeerSeries::State, PeerSeries::None];

fn in_process(g: &Generated, peers: usize, scrapes: usize) -> InProcess {
    let t = Instant::now();
    let config = Config::load(&g.file).expect("the generated configuration is valid");
    let load_ms = ms(t.elapsed());
    let t = Instant::now();
    let plan = Arc::new(Plan::compile(&config, 1));
    let compile_ms = ms(t.elapsed());
    let now = Instant::now();
    // Handshake times are kept after the table's base: start it well before them.
    let base = now.checked_sub(Duration::from_secs(7_200)).unwrap_or(now);
    let gateway = Gateway::new(plan, base);
    fill(gateway.counters(), peers, now);
    let hub = MetricsHub::new([gateway.counters().clone()]);
    let heap_before = LIVE.load(Relaxed);
    let mut modes = Vec::new();
    for mode in MODES {
        hub.set_peer_series(mode);
        let (cost, text) = measure(&hub, scrapes);
        check(&text, peers, mode);
        modes.push((mode, cost));
    }
    InProcess {
        load_ms,
        compile_ms,
        heap_before,
        modes,
    }
}

/// What the in-process exposition must hold: every peer's series as `mode` says, the
/// attachment's sums and the peer counts always.
fn check(text: &str, peers: usize, mode: PeerSeries) {
    let last = peer_name(peers - 1);
    let labels = format!(
        "{{tenant=\"{TENANT}\",attachment=\"{ATTACHMENT}\",peer=\"{last}\",facility=\"{}\"}} ",
        facility(peers - 1)
    );
    let has = |family: &str| text.contains(&format!("\n{family}{labels}"));
    assert_eq!(has("ixgw_peer_rx_bytes_total"), mode == PeerSeries::All);
    assert_eq!(has("ixgw_peer_up"), mode != PeerSeries::None);
    let per_peer = text.lines().filter(|l| l.starts_with("ixgw_peer_")).count();
    let want = match mode {
        PeerSeries::All => 9,
        PeerSeries::State => 2,
        PeerSeries::None => 0,
    };
    assert_eq!(per_peer, want * peers, "{mode:?}");
    let up = (0..peers).filter(|i| !matches!(i % 20, 0 | 1)).count();
    assert!(text.contains(&format!("ixgw_peers_configured {peers}\n")));
    assert!(text.contains(&format!("ixgw_peers_up {up}\n")));
    let attachment = format!("{{tenant=\"{TENANT}\",attachment=\"{ATTACHMENT}\"}}");
    assert!(text.contains(&format!("ixgw_attachment_peers_up{attachment} {up}\n")));
    let rx: u64 = (0..peers as u64)
        .map(|i| 1_300_000_000 + (i + 1) * 48_611)
        .sum();
    assert!(text.contains(&format!(
        "ixgw_attachment_peer_rx_bytes_total{attachment} {rx}\n"
    )));
}

struct Daemon {
    check_ms: f64,
    start_ms: f64,
    rss_started_kib: u64,
    ms: Vec<f64>,
    bytes: usize,
    series: usize,
    rss_after_kib: u64,
    hwm_kib: u64,
}

/// `GET path` on a fresh connection: status and body, read to the end.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of the head"))?;
    let status = std::str::from_utf8(&all[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, all.split_off(head_end + 4)))
}

/// `curl`'s time to the last byte of `url`, if curl is there and the answer is 200.
fn curl_ms(url: &str) -> Option<f64> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (code, secs) = text.split_once(' ')?;
    assert_eq!(code, "200", "GET {url}");
    secs.trim().parse::<f64>().ok().map(|s| s * 1e3)
}

fn has_curl() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Stops the daemon we started (and only it) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(g: &Generated, scrapes: usize) -> Daemon {
    let bin = env!("CARGO_BIN_EXE_ixgw");
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&g.file)
        .output()
        .unwrap();
    let check_ms = ms(t.elapsed());
    assert!(
        out.status.success(),
        "ixgw check: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let t = Instant::now();
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&g.file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let pid = running.0.id();
    loop {
        if let Ok((200, _)) = get(g.metrics, "/ready") {
            break;
        }
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!("ixgw run exited: {status}");
        }
        assert!(t.elapsed() < Duration::from_secs(120), "not ready in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let start_ms = ms(t.elapsed());
    let rss_started_kib = status_kib(pid, "VmRSS:");

    let url = format!("http://{}/metrics", g.metrics);
    let mut scrape_ms = Vec::new();
    for _ in 0..scrapes {
        scrape_ms.push(match curl_ms(&url) {
            Some(t) => t,
            None => {
                let t = Instant::now();
                let (status, _) = get(g.metrics, "/metrics").unwrap();
                assert_eq!(status, 200);
                ms(t.elapsed())
            }
        });
    }
    let (status, body) = get(g.metrics, "/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let d = Daemon {
        check_ms,
        start_ms,
        rss_started_kib,
        ms: scrape_ms,
        bytes: text.len(),
        series: series(&text),
        rss_after_kib: status_kib(pid, "VmRSS:"),
        hwm_kib: status_kib(pid, "VmHWM:"),
    };
    drop(running);
    d
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split(' ').next().unwrap_or("?").to_owned();
    format!("{cores} vCPUs ({cpu}), load average {load} at the start")
}

fn range(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    (min, v.iter().copied().fold(0.0, f64::max))
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn report(
    peers: usize,
    yaml_bytes: usize,
    p: &mut InProcess,
    daemons: &mut [(PeerSeries, Daemon)],
    machine: &str,
) -> String {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute()
    );
    let commit = command_line("git", &["rev-parse", "--short", "HEAD"]);
    let porcelain = command_line("git", &["status", "--porcelain", "--untracked-files=no"]);
    let dirty = if porcelain.is_empty() {
        ""
    } else {
        " with uncommitted changes"
    };
    let mut s = String::new();
    let mut line = |text: String| {
        s.push_str(&text);
        s.push('\n');
    };
    line(format!(
        "## Scrape: `/metrics` with {peers} WireGuard peers on one attachment"
    ));
    line(String::new());
    line(format!(
        "`cargo bench --bench scrape` on {date}, commit `{commit}`{dirty}; {machine}. \
         The configuration: {peers} peers, each its own facility (`certificate: none`), \
         {:.1} MiB of YAML; `Config::load` {:.0} ms, `Plan::compile` {:.0} ms.",
        mib(yaml_bytes),
        p.load_ms,
        p.compile_ms
    ));
    line(String::new());
    line(format!(
        "In process: `MetricsHub::try_encode` (what `/metrics` answers) over the counters \
         filled as forwarding fills them; {} scrapes per mode; the heap held {:.1} MiB before \
         them.",
        SCRAPES,
        mib(p.heap_before)
    ));
    line(String::new());
    line("| `metrics.peer_series` | scrape, median (min–max) | exposition | series (`ixgw_peer_*`) | allocations per scrape | peak heap of a scrape |".into());
    line("| --- | --- | --- | --- | --- | --- |".into());
    for (mode, c) in &mut p.modes {
        let (lo, hi) = range(&c.ms);
        line(format!(
            "| `{}` | {:.1} ms ({lo:.1}–{hi:.1}) | {:.2} MiB | {} ({}) | {} | {:.1} MiB |",
            word(*mode),
            median(&mut c.ms),
            mib(c.bytes),
            c.series,
            c.peer_series,
            c.allocations,
            mib(c.peak_bytes)
        ));
    }
    line(String::new());
    line(format!(
        "The daemon: this build's `ixgw run` on loopback, `GET /metrics` {SCRAPES} times by \
         {} (a fresh connection each, timed to the last byte); its counters are zero (no \
         traffic), and its exposition also holds the {peers} facilities' series.",
        if has_curl() {
            "curl (`time_total`)"
        } else {
            "the bench's own client"
        }
    ));
    line(String::new());
    line("| `metrics.peer_series` | `ixgw check` | start to `/ready` | scrape, median (min–max) | exposition | series | RSS ready → after the scrapes (peak) |".into());
    line("| --- | --- | --- | --- | --- | --- | --- |".into());
    for (mode, d) in daemons.iter_mut() {
        let (lo, hi) = range(&d.ms);
        line(format!(
            "| `{}` | {:.0} ms | {:.0} ms | {:.1} ms ({lo:.1}–{hi:.1}) | {:.2} MiB | {} | {:.0} → {:.0} MiB ({:.0}) |",
            word(*mode),
            d.check_ms,
            d.start_ms,
            median(&mut d.ms),
            mib(d.bytes),
            d.series,
            d.rss_started_kib as f64 / 1024.0,
            d.rss_after_kib as f64 / 1024.0,
            d.hwm_kib as f64 / 1024.0
        ));
    }
    s
}

const BEGIN: &str = "<!-- begin scrape -->";
const END: &str = "<!-- end scrape -->";

/// Replaces this bench's section of `benches/RESULTS.md` (created if missing), leaving the
/// rest of the file as it is.
fn write_results(section: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".into());
    let block = format!("{BEGIN}\n{section}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(&path, new).unwrap();
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let peers = match std::env::var("IXGW_SCRAPE_PEERS") {
        Ok(n) => n.parse().expect("IXGW_SCRAPE_PEERS: a number of peers"),
        Err(_) if bench => PEERS,
        Err(_) => 200,
    };
    let machine = machine();
    let g = generate(peers, PeerSeries::All);
    let scrapes = if bench { SCRAPES } else { 2 };
    let mut p = in_process(&g, peers, scrapes);
    if bench {
        let mut daemons = Vec::new();
        for mode in MODES {
            let g = generate(peers, mode);
            daemons.push((mode, daemon(&g, scrapes)));
        }
        let section = report(peers, g.bytes, &mut p, &mut daemons, &machine);
        println!("{section}");
        write_results(&section);
    } else {
        for (mode, c) in &mut p.modes {
            println!(
                "{peers} peers, {mode:?}: {} series, {} bytes, {:.1} ms a scrape",
                c.series,
                c.bytes,
                median(&mut c.ms)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&g.dir);
}
