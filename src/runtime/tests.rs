use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::socket_drops::parse_udp_drops;
use super::*;
use crate::config::{
    Attachment, AttachmentKind, Dataplane, Ix, Key32, Metrics, Network, PeerSeries,
    PlainAttachment, Tenant, WireGuardAttachment, WireGuardPeer,
};
use crate::ids::FacilityCode;
use crate::metrics::testing::assert_line;
use crate::tunnel::wireguard::keys;

pub(super) fn net(s: &str) -> Ipv4Network {
    s.parse().expect("test prefix")
}

pub(super) fn wg(name: &str, listen: SocketAddr, peers: Vec<WireGuardPeer>) -> Attachment {
    Attachment {
        name: name.into(),
        kind: AttachmentKind::WireGuard(WireGuardAttachment {
            listen,
            private_key_file: PathBuf::from(format!("/etc/ixgw/keys/{name}.key")),
            private_key: Key32([0x11; 32]),
            mtu: 1420,
            peers,
        }),
    }
}

/// A facility peer at 10.0.0.2 that the gateway dials at `endpoint`.
pub(super) fn peer(endpoint: SocketAddr, keepalive: Option<u16>) -> WireGuardPeer {
    WireGuardPeer {
        name: "clinic".into(),
        facility: FacilityCode::parse("4212345674").expect("test facility"),
        public_key: Key32(keys::public_key(&[0x21; 32])),
        preshared_key_file: None,
        preshared_key: None,
        allowed_ips: vec![net("10.0.0.2/32")],
        address: None,
        endpoint: Some(endpoint),
        persistent_keepalive: keepalive,
        directed_broadcast: false,
    }
}

pub(super) fn plain(name: &str, tun: &str, mtu: u16, kernel_routes: &[&str]) -> Attachment {
    Attachment {
        name: name.into(),
        kind: AttachmentKind::Plain(PlainAttachment {
            tun: tun.into(),
            mtu,
            routes: vec![net("10.0.0.0/24")],
            kernel_routes: kernel_routes.iter().map(|s| net(s)).collect(),
            directed_broadcast: false,
        }),
    }
}

/// One tenant per attachment, each with its own exchange prefix.
pub(super) fn config(attachments: Vec<Attachment>) -> Config {
    Config {
        source: PathBuf::from("runtime-test.yaml"),
        ix: Ix {
            name: "test-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: None,
        },
        metrics: Metrics {
            listen: "127.0.0.1:0".parse().expect("test address"),
            admin_socket: None,
            peer_series: PeerSeries::All,
        },
        dataplane: Dataplane::default(),
        tenants: attachments
            .into_iter()
            .enumerate()
            .map(|(i, a)| Tenant {
                name: format!("t{i}"),
                trust: vec![],
                networks: vec![Network {
                    internal: net("10.0.0.0/24"),
                    exchange: net(&format!("100.127.{i}.0/24")),
                }],
                attachments: vec![a],
            })
            .collect(),
        services: vec![],
        policies: vec![],
        agreements: vec![],
        trust: vec![],
        facilities: None,
        audit: None,
        usage: None,
        warnings: vec![],
    }
}

fn plan(attachments: Vec<Attachment>) -> Plan {
    Plan::compile(&config(attachments), 1)
}

fn add(attachment: &str, tun: &str, prefix: &str) -> KernelOp {
    KernelOp::AddRoute {
        attachment: attachment.into(),
        tun: tun.into(),
        prefix: net(prefix),
    }
}

fn del(attachment: &str, tun: &str, prefix: &str) -> KernelOp {
    KernelOp::DelRoute {
        attachment: attachment.into(),
        tun: tun.into(),
        prefix: net(prefix),
    }
}

#[test]
fn start_routes_every_plain_attachment() {
    let listen = "127.0.0.1:51820".parse().expect("test address");
    let p = plan(vec![
        plain("lan-a", "tun-a", 1500, &["100.64.0.0/16", "100.65.0.0/16"]),
        wg("wg", listen, vec![]),
        plain("lan-b", "tun-b", 1400, &[]),
        plain("lan-c", "tun-c", 1400, &["100.66.0.0/16"]),
    ]);
    assert_eq!(
        kernel_changes(None, &p),
        [
            add("lan-a", "tun-a", "100.64.0.0/16"),
            add("lan-a", "tun-a", "100.65.0.0/16"),
            add("lan-c", "tun-c", "100.66.0.0/16"),
        ]
    );
}

#[test]
fn reload_applies_the_difference_of_kept_devices() {
    let old = plan(vec![
        plain("lan-a", "tun-a", 1500, &["100.64.0.0/16", "100.65.0.0/16"]),
        plain("lan-gone", "tun-gone", 1500, &["100.70.0.0/16"]),
        plain("lan-same", "tun-same", 1500, &["100.71.0.0/16"]),
    ]);
    let new = plan(vec![
        plain("lan-same", "tun-same", 1500, &["100.71.0.0/16"]),
        plain("lan-new", "tun-new", 1400, &["100.65.0.0/16"]),
        // Kept by device name, renamed and renumbered.
        plain("lan-a2", "tun-a", 1380, &["100.64.0.0/16", "100.66.0.0/16"]),
    ]);
    assert_eq!(
        kernel_changes(Some(&old), &new),
        [
            // Deletions first: 100.65.0.0/16 moves to tun-new and must not be deleted after
            // its new route replaced the old one.
            del("lan-a2", "tun-a", "100.65.0.0/16"),
            KernelOp::SetMtu {
                attachment: "lan-a2".into(),
                tun: "tun-a".into(),
                mtu: 1380,
            },
            add("lan-same", "tun-same", "100.71.0.0/16"),
            add("lan-new", "tun-new", "100.65.0.0/16"),
            add("lan-a2", "tun-a", "100.64.0.0/16"),
            add("lan-a2", "tun-a", "100.66.0.0/16"),
        ]
    );
    // Reloading the same plan deletes nothing and re-asserts every route (idempotent), so a
    // route that failed before is retried.
    assert_eq!(
        kernel_changes(Some(&new), &new),
        [
            add("lan-same", "tun-same", "100.71.0.0/16"),
            add("lan-new", "tun-new", "100.65.0.0/16"),
            add("lan-a2", "tun-a", "100.64.0.0/16"),
            add("lan-a2", "tun-a", "100.66.0.0/16"),
        ]
    );
}

/// A source that never stops being readable must not keep the WireGuard timers from running:
/// the peer's persistent keepalive (1 s) has to dial its endpoint while garbage floods the
/// attachment's socket. Four senders outpace the one worker, so the socket never runs empty
/// and the worker's sleep never gets to fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn timers_run_while_a_socket_stays_readable() {
    let facility = UdpSocket::bind("127.0.0.1:0").expect("bind facility");
    facility
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let endpoint = facility.local_addr().expect("facility address");
    let listen = "127.0.0.1:0".parse().expect("test address");
    let cfg = config(vec![wg("wg", listen, vec![peer(endpoint, Some(1))])]);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let running = Running::start(&cfg, Some(metrics))
        .await
        .expect("gateway starts");
    let target = running.attachment_addr("wg").expect("bound");

    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind flooder");
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if s.send_to(&[0xff; 32], target).is_ok() {
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(4);
    let mut initiation = None;
    let mut buf = [0u8; 256];
    while initiation.is_none() && Instant::now() < deadline {
        if let Ok((n, from)) = facility.recv_from(&mut buf) {
            initiation = Some((n, buf[0], from));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = flooders
        .into_iter()
        .map(|t| t.join().expect("flooder"))
        .sum();
    let hub = running.hub();
    let dropped: u64 = (0..hub.workers())
        .filter_map(|w| hub.current(w))
        .map(|c| c.drops().map(|(_, _, n)| n).sum::<u64>())
        .sum();
    running.stop().await.expect("stops");

    assert!(
        sent > 10_000,
        "the flood was too thin to test anything: {sent}"
    );
    assert!(dropped > 10_000, "the gateway saw the flood: {dropped}");
    let (len, kind, from) = initiation.expect("a handshake initiation within 4 s");
    assert_eq!((len, kind, from), (148, 1, target));
}

/// The kernel's count of `inode` in `/proc/net/udp`.
fn proc_drops(inode: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    parse_udp_drops(&text)
        .expect("parse /proc/net/udp")
        .into_iter()
        .find_map(|(i, d)| (i == inode).then_some(d))
}

/// A socket whose receive buffer overflows on loopback: the exported counter is the kernel's
/// count, and not zero.
#[test]
fn kernel_socket_drops_are_exported() {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    // The kernel rounds this up to its minimum, a few datagrams' worth.
    rustix::net::sockopt::set_socket_recv_buffer_size(&rx, 1024).expect("SO_RCVBUF");
    let inode = socket_drops::socket_inode(&rx).expect("fstat");
    let drops = Arc::new(SocketDrops::default());
    drops.track(vec![TrackedSocket {
        attachment: "wg".into(),
        socket: "127.0.0.1:0".into(),
        inode,
        receive_buffer: Some(2048),
    }]);
    let hub = MetricsHub::new([]);
    let collector = SocketDropsCollector::new(drops).expect("static descs");
    hub.registry()
        .register(Box::new(collector))
        .expect("register");
    assert_line(
        &hub.encode(),
        r#"ixgw_socket_drops_total{attachment="wg",socket="127.0.0.1:0"} 0"#,
    );

    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let target = rx.local_addr().expect("receiver address");
    for _ in 0..2000 {
        let _ = tx.send_to(&[0x5a; 512], target);
    }
    let text = hub.encode();
    let kernel = proc_drops(inode).expect("the socket is in /proc/net/udp");

    assert!(kernel > 1000, "the burst overflowed the buffer: {kernel}");
    assert_line(
        &text,
        &format!(r#"ixgw_socket_drops_total{{attachment="wg",socket="127.0.0.1:0"}} {kernel}"#),
    );
    assert_line(
        &text,
        r#"ixgw_socket_receive_buffer_bytes{attachment="wg",socket="127.0.0.1:0"} 2048"#,
    );
    assert_line(&text, "# TYPE ixgw_socket_drops_total counter");
}

/// The gateway exports its UDP sockets' drops by attachment and socket address; after a reload
/// that moves an attachment to a new socket only the new socket's series is there: the old
/// socket is closed by then, so the series is there only if the new socket's inode is tracked.
#[tokio::test]
async fn the_gateway_exports_its_sockets_drops() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let first = "127.0.0.1:0".parse().expect("test address");
    let mut running = Running::start(&config(vec![wg("wg", first, vec![])]), Some(metrics))
        .await
        .expect("gateway starts");
    let before = running.attachment_addr("wg").expect("bound");
    assert_line(
        &running.hub().encode(),
        r#"ixgw_socket_drops_total{attachment="wg",socket="127.0.0.1:0"} 0"#,
    );

    let second = "127.0.0.2:0".parse().expect("test address");
    running
        .reload(&config(vec![wg("wg", second, vec![])]))
        .await
        .expect("reload");
    let after = running.attachment_addr("wg").expect("bound");
    let text = running.hub().encode();
    running.stop().await.expect("stops");

    assert_ne!(before.ip(), after.ip(), "a new socket");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ixgw_socket_drops_total{"))
        .collect();
    assert_eq!(
        series,
        [r#"ixgw_socket_drops_total{attachment="wg",socket="127.0.0.2:0"} 0"#]
    );
    assert!(
        text.lines().any(|l| l.starts_with(
            r#"ixgw_socket_receive_buffer_bytes{attachment="wg",socket="127.0.0.2:0"} "#
        )),
        "{text}"
    );
}

/// `metrics.peer_series` applies from the start and changes with a reload; the attachment's
/// sums are there whatever it says.
#[tokio::test]
async fn peer_series_applies_at_start_and_reload() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let listen = "127.0.0.1:0".parse().expect("test address");
    let endpoint = "127.0.0.1:9".parse().expect("test address");
    let with = |p: PeerSeries| {
        let mut c = config(vec![wg("wg", listen, vec![peer(endpoint, None)])]);
        c.metrics.peer_series = p;
        c
    };
    let mut running = Running::start(&with(PeerSeries::None), Some(metrics))
        .await
        .expect("gateway starts");
    let none = running.hub().encode();
    running
        .reload(&with(PeerSeries::State))
        .await
        .expect("reload");
    let state = running.hub().encode();
    running.stop().await.expect("stops");

    let peer_lines = |text: &str| {
        (text.lines())
            .filter(|l| l.starts_with("ixgw_peer_"))
            .map(|l| l.split('{').next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(peer_lines(&none), Vec::<String>::new());
    assert_eq!(
        peer_lines(&state),
        ["ixgw_peer_last_handshake_timestamp_seconds", "ixgw_peer_up"]
    );
    for text in [&none, &state] {
        assert_line(
            text,
            r#"ixgw_attachment_peers_configured{tenant="t0",attachment="wg"} 1"#,
        );
        assert_line(
            text,
            r#"ixgw_attachment_peer_rx_bytes_total{tenant="t0",attachment="wg"} 0"#,
        );
    }
}

fn ipsec_example() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ipsec-example.yaml");
    Config::load(&path).expect("the IPsec example validates")
}

/// The IPsec example listens on a documentation address this host does not have: start
/// fails naming the attachment and the address, and a reload to it keeps the running plan.
#[tokio::test]
async fn an_ipsec_attachment_that_cannot_bind_is_refused_at_start_and_reload() {
    let ipsec = ipsec_example();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let err = match Running::start(&ipsec, Some(metrics)).await {
        Ok(_) => panic!("started on an address of another host"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, RuntimeError::Bind { attachment, .. } if attachment == "ajisai-ipsec"),
        "{err:?}"
    );
    assert!(err.to_string().contains("192.0.2.10:500"), "{err}");

    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let first = "127.0.0.1:0".parse().expect("test address");
    let mut running = Running::start(&config(vec![wg("wg", first, vec![])]), Some(metrics))
        .await
        .expect("gateway starts");
    let bound = running.attachment_addr("wg");
    let err = running.reload(&ipsec).await.expect_err("refused");
    assert!(matches!(err, RuntimeError::Bind { .. }), "{err:?}");
    assert_eq!(running.plan().generation, 1);
    assert_eq!(running.attachment_addr("wg"), bound);
    let text = running.hub().encode();
    running.stop().await.expect("stops");
    assert_line(&text, r#"ixgw_config_reloads_total{result="failed"} 1"#);
}

/// The name of the network namespace this process runs in, if it is a named one (not the
/// host's), where the test may create devices and routes.
fn named_netns() -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "identify"])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The IPv4 prefixes routed into `dev`, sorted.
fn routes_of(dev: &str) -> Vec<String> {
    let mut routes: Vec<String> = ip(&["-4", "route", "show", "dev", dev])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    routes.sort();
    routes
}

fn mtu_of(dev: &str) -> u16 {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .expect("device exists")
        .trim()
        .parse()
        .expect("mtu")
}

fn exists(dev: &str) -> bool {
    Path::new(&format!("/sys/class/net/{dev}")).exists()
}

/// Kernel routes and MTU of plain attachments across start, reloads and a failed reload.
/// Needs root and a network namespace of its own:
///
/// ```text
/// ip netns add ixgw-rt-test
/// ip netns exec ixgw-rt-test target/debug/deps/ixgw-HASH --ignored --exact \
///     runtime::tests::kernel_routes_follow_reloads_in_a_netns
/// ip netns del ixgw-rt-test
/// ```
#[tokio::test]
#[ignore = "needs root and its own network namespace"]
async fn kernel_routes_follow_reloads_in_a_netns() {
    assert!(
        named_netns().is_some(),
        "run this test in a network namespace of its own (see its doc comment)"
    );
    ip(&["link", "set", "lo", "up"]);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let start = config(vec![plain(
        "lan-a",
        "ixgwrt-a",
        1400,
        &["100.64.0.0/16", "100.65.0.0/16"],
    )]);
    let mut running = Running::start(&start, Some(metrics))
        .await
        .expect("gateway starts");
    assert_eq!(routes_of("ixgwrt-a"), ["100.64.0.0/16", "100.65.0.0/16"]);
    assert_eq!(mtu_of("ixgwrt-a"), 1400);

    // A kept device gets the difference and its new MTU; a new device its routes.
    let second = config(vec![
        plain(
            "lan-a",
            "ixgwrt-a",
            1300,
            &["100.64.0.0/16", "100.66.0.0/16"],
        ),
        plain("lan-b", "ixgwrt-b", 1500, &["100.65.0.0/16"]),
    ]);
    running.reload(&second).await.expect("reload");
    assert_eq!(routes_of("ixgwrt-a"), ["100.64.0.0/16", "100.66.0.0/16"]);
    assert_eq!(routes_of("ixgwrt-b"), ["100.65.0.0/16"]);
    assert_eq!(mtu_of("ixgwrt-a"), 1300);

    // A reload that fails after creating a new device must not have routed anything into it:
    // lan-c would take 100.64.0.0/16 over from lan-a, then its port cannot be bound.
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let failing = config(vec![
        plain("lan-a", "ixgwrt-a", 1300, &["100.66.0.0/16"]),
        plain("lan-b", "ixgwrt-b", 1500, &["100.65.0.0/16"]),
        plain("lan-c", "ixgwrt-c", 1500, &["100.64.0.0/16"]),
        wg("wg", taken.local_addr().expect("address"), vec![]),
    ]);
    let err = running.reload(&failing).await.expect_err("port taken");
    assert!(matches!(err, RuntimeError::Bind { .. }), "{err}");
    assert!(!exists("ixgwrt-c"));
    assert_eq!(routes_of("ixgwrt-a"), ["100.64.0.0/16", "100.66.0.0/16"]);

    // A route change the kernel refuses is logged; the rest of the reload goes on.
    ip(&["route", "del", "100.66.0.0/16", "dev", "ixgwrt-a"]);
    let third = config(vec![
        plain("lan-a", "ixgwrt-a", 1300, &["100.64.0.0/16"]),
        plain(
            "lan-b",
            "ixgwrt-b",
            1500,
            &["100.65.0.0/16", "100.67.0.0/16"],
        ),
    ]);
    running
        .reload(&third)
        .await
        .expect("reload despite the missing route");
    assert_eq!(routes_of("ixgwrt-a"), ["100.64.0.0/16"]);
    assert_eq!(routes_of("ixgwrt-b"), ["100.65.0.0/16", "100.67.0.0/16"]);

    // Dropping an attachment closes its device, and its routes go with it.
    let fourth = config(vec![plain("lan-b", "ixgwrt-b", 1500, &["100.65.0.0/16"])]);
    running.reload(&fourth).await.expect("reload");
    assert!(!exists("ixgwrt-a"));
    assert_eq!(routes_of("ixgwrt-b"), ["100.65.0.0/16"]);

    running.stop().await.expect("stops");
    assert!(!exists("ixgwrt-b"));
}

/// `GET path` on the admin listener: the status code and the body.
async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: ixgw\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.expect("reply");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// Polls `/live` until it answers `status`, for at most `within`.
async fn live_turns(addr: SocketAddr, status: u16, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let reply = admin_get(addr, "/live").await;
        if reply.0 == status || Instant::now() >= deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker that panics is reported (`worker_failed`, which `run` turns into a stop and a
/// failure status for systemd to restart): the others still stop cleanly.
#[tokio::test]
async fn a_worker_that_panics_is_reported_and_the_gateway_still_stops() {
    let listen = "127.0.0.1:0".parse().expect("test address");
    let mut c = config(vec![wg("wg", listen, vec![])]);
    c.dataplane.workers = Some(2);
    let mut running = Running::start(&c, None).await.expect("gateway starts");
    running.panic_worker(1).await;
    let failed = tokio::time::timeout(Duration::from_secs(5), running.worker_failed()).await;
    assert_eq!(failed.ok(), Some(1), "worker 1 reported within 5 s");
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.stop()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the others stop: {stopped:?}"
    );
}

/// A hung worker turns `/live` to 503 naming it, and the watchdog's judgement with it; once it
/// runs again `/live` is 200 again. The same for the IKE thread.
#[tokio::test]
async fn a_hung_thread_turns_live_to_503() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let listen = "127.0.0.1:0".parse().expect("test address");
    let running = Running::start(&config(vec![wg("wg", listen, vec![])]), Some(metrics))
        .await
        .expect("gateway starts");
    // Three idle wake-ups of margin: the idle threads beat every second.
    let threshold = Duration::from_secs(3);
    running.liveness().set_threshold(threshold);
    let addr = running.metrics_addr();
    let before = admin_get(addr, "/live").await;
    let status = running.status(Instant::now());

    let release = running.hang_worker().await;
    let hung = live_turns(addr, 503, Duration::from_secs(10)).await;
    let judged = running.liveness().check(Instant::now());
    drop(release);
    let recovered = live_turns(addr, 200, Duration::from_secs(5)).await;

    let release = running.hang_ike();
    let ike_hung = live_turns(addr, 503, Duration::from_secs(10)).await;
    drop(release);
    let ike_recovered = live_turns(addr, 200, Duration::from_secs(5)).await;
    running.stop().await.expect("stops");

    assert_eq!(before, (200, "ok".to_owned()));
    assert_eq!(status, "0/0 peers up, 1 attachment");
    assert_eq!(hung.0, 503, "{}", hung.1);
    assert!(
        hung.1
            .starts_with("thread ixgw-worker stalled: no heartbeat for "),
        "{}",
        hung.1
    );
    assert!(judged.is_err_and(|s| s.thread == "ixgw-worker" && s.silent > threshold));
    assert_eq!(recovered, (200, "ok".to_owned()));
    assert_eq!(ike_hung.0, 503, "{}", ike_hung.1);
    assert!(
        ike_hung.1.starts_with("thread ixgw-ike stalled: "),
        "{}",
        ike_hung.1
    );
    assert_eq!(ike_recovered, (200, "ok".to_owned()));
}

/// With `usage:`, a reload and a stop each write a record (the reload's before the switch, so
/// what removed tenants carried is in it), and the recorder's metrics are exported; a
/// directory that cannot be made refuses the start.
#[tokio::test]
async fn usage_records_are_written_on_reload_and_stop() {
    let dir = std::env::temp_dir().join(format!("ixgw-runtime-usage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listen = "127.0.0.1:0".parse().expect("test address");
    let with_usage = |mut c: Config, dir: &Path| {
        c.usage = Some(crate::config::UsageConfig {
            dir: dir.to_path_buf(),
            interval: Duration::from_secs(3600),
        });
        c
    };
    let two = with_usage(
        config(vec![wg("a", listen, vec![]), wg("b", listen, vec![])]),
        &dir,
    );
    let mut running = Running::start(&two, None).await.expect("gateway starts");
    running
        .reload(&with_usage(config(vec![wg("a", listen, vec![])]), &dir))
        .await
        .expect("reload");
    let text = running.hub().encode();
    running.stop().await.expect("stops");
    assert_line(&text, "ixgw_usage_records_written_total 1");
    assert_line(&text, "ixgw_usage_write_failures_total 0");

    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the directory was made")
        .map(|e| e.expect("entry").path())
        .collect();
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("readable"))
        .collect();
    let cuts: Vec<crate::usage::Cut> = text
        .lines()
        .map(|l| {
            crate::usage::parse_line(l.as_bytes())
                .expect("a record")
                .cut
        })
        .collect();
    assert_eq!(
        cuts,
        [crate::usage::Cut::Reload, crate::usage::Cut::Stop],
        "{text}"
    );

    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let refused = Running::start(&with_usage(config(vec![]), &file.join("usage")), None).await;
    let _ = std::fs::remove_dir_all(&dir);
    match refused {
        Err(RuntimeError::Usage(e)) => assert!(e.to_string().contains("not-a-dir"), "{e}"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("started without its usage directory"),
    }
}

/// A plan with one IPsec attachment whose peers are `peers` (name, remote_ts), all
/// allowed to ping a plain attachment of another tenant.
pub(crate) fn ipsec_plan(
    dir: &std::path::Path,
    peers: &[(&str, &str)],
    generation: u64,
) -> Arc<Plan> {
    std::fs::write(dir.join("psk"), b"a pre-shared key of a unit test").unwrap();
    let peers: String = peers
        .iter()
        .map(|(name, ts)| {
            format!(
                "          - {{ name: {name}, facility: \"4212345674\", remote_id: {name}.example, auth: psk, psk_file: psk, remote_ts: [{ts}] }}\n"
            )
        })
        .collect();
    let text = format!(
        r#"ix:
  name: unit-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: 127.0.0.1:0
tenants:
  - name: ajisai
    networks:
      - {{ internal: 10.0.0.0/16, exchange: 100.64.0.0/16 }}
    attachments:
      - name: ajisai-ipsec
        type: ipsec
        listen: 127.0.0.1
        ike_port: 40500
        nat_t_port: 44500
        raw_esp: false
        local_id: gw.ix.example
        peers:
{peers}  - name: mame
    networks:
      - {{ internal: 10.0.0.0/16, exchange: 100.65.0.0/16 }}
    attachments:
      - {{ name: mame-tun, type: plain, tun: ixunit0, routes: [10.0.0.0/16] }}
policies:
  - {{ name: ping, from: {{ tenant: ajisai }}, to: {{ tenant: mame }}, allow: [icmp] }}
"#
    );
    let config = crate::config::Config::from_str_at(&text, &dir.join("ixgw.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    Arc::new(Plan::compile(&config, generation))
}

/// With several workers, a reload that keeps a UDP address for an attachment of another type
/// (WireGuard's become IPsec's NAT-T) is refused with a clear error: the kept socket group's
/// steering program cannot change. The same address for the same type is kept.
#[test]
fn a_kept_udp_address_must_keep_its_steering() {
    let dir = std::env::temp_dir().join(format!("ixgw-steering-kept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ipsec = ipsec_plan(&dir, &[("fac-a", "10.0.1.0/24")], 2);
    let nat_t = ipsec.attachments[0].udp_listen(1).expect("a NAT-T address");
    let wg = Arc::new(Plan::compile(
        &config(vec![wg("ajisai-ipsec", nat_t, vec![])]),
        1,
    ));
    let _ = std::fs::remove_dir_all(&dir);
    match steering_kept(&wg, &ipsec) {
        Err(e @ RuntimeError::Steering { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&nat_t.to_string()) && text.contains("restart"),
                "{text}"
            );
        }
        other => panic!("refused, not {other:?}"),
    }
    assert!(steering_kept(&wg, &wg).is_ok());
    assert!(steering_kept(&ipsec, &ipsec).is_ok());
}
