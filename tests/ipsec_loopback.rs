//! IPsec end to end in-process, over real UDP sockets on loopback: the daemon (`Running`)
//! with two IPsec attachments of overlapping tenants, and two facilities made of our own
//! IKEv2 engine and ESP SAs. The facilities initiate with pre-shared keys; the gateway's IKE
//! thread negotiates, its worker installs the CHILD SAs; a ping from one facility crosses the
//! gateway (ESP in UDP → twice NAT → ESP in UDP) to the other and its reply comes back.

#![cfg(not(feature = "virtual-time"))]

use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use ixgw::config::Config;
use ixgw::demo::ipsec::{FacilitySetup, GatewayPorts, IpsecFacility};
use ixgw::runtime::Running;
use ixgw::wire::{self, build};

const PSK: &[u8] = b"a pre-shared key of the loopback test";

/// A free UDP port on `ip` (bound and released; the test binds it again at once).
fn free_port(ip: Ipv4Addr) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, ports: [(u16, u16); 2]) -> Config {
    config_variant(dir, ports, false)
}

/// The configuration; `reloaded`: the tenants in the other order (every attachment and peer
/// is renumbered) and a new peer `hirado` in front of `omura`.
fn config_variant(dir: &Path, ports: [(u16, u16); 2], reloaded: bool) -> Config {
    std::fs::write(dir.join("psk"), PSK).unwrap();
    let peer = |peer: &str, facility: &str, remote_ts: &str| {
        format!(
            r#"          - name: {peer}
            facility: "{facility}"
            remote_id: {peer}.example
            auth: psk
            psk_file: psk
            remote_ts: [{remote_ts}]
            child_rekey_bytes: 1M
"#
        )
    };
    let attachment = |name: &str, (ike, natt): (u16, u16), peers: String| {
        format!(
            r#"      - name: {name}
        type: ipsec
        listen: 127.0.0.1
        ike_port: {ike}
        nat_t_port: {natt}
        raw_esp: false
        local_id: gw.ix.example
        peers:
{peers}"#
        )
    };
    let mut ajisai_peers = peer("omura", "4212345674", "10.0.1.0/24");
    if reloaded {
        ajisai_peers = peer("hirado", "4212345609", "10.0.2.0/24") + &ajisai_peers;
    }
    let ajisai = format!(
        r#"  - name: ajisai
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.64.0.0/16
    attachments:
{}"#,
        attachment("ajisai-ipsec", ports[0], ajisai_peers)
    );
    let mame = format!(
        r#"  - name: mame
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.65.0.0/16
    attachments:
{}"#,
        attachment(
            "mame-ipsec",
            ports[1],
            peer("oki", "3211234566", "10.0.1.0/24")
        )
    );
    let tenants = if reloaded {
        mame + &ajisai
    } else {
        ajisai + &mame
    };
    let text = format!(
        r#"ix:
  name: loopback-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: 127.0.0.1:0
  admin_socket: ixgw.sock
dataplane:
  workers: 2
tenants:
{tenants}policies:
  - name: ping
    from: {{ tenant: ajisai }}
    to: {{ tenant: mame }}
    allow: [icmp]
"#
    );
    Config::from_str_at(&text, &dir.join("ixgw.yaml")).expect("valid configuration")
}

/// A facility of the test: the demo's IPsec router and what reached it.
struct Facility {
    router: IpsecFacility,
    received: Vec<Vec<u8>>,
}

impl Facility {
    fn new(name: &str, ip: Ipv4Addr, gateway: GatewayPorts, remote_ts: &str) -> Facility {
        let id = format!("{name}.example");
        let setup = FacilitySetup {
            id: &id,
            gateway_id: "gw.ix.example",
            psk: PSK,
            ip,
            local_ts: "10.0.1.0/24".parse().unwrap(),
            remote_ts: remote_ts.parse().unwrap(),
        };
        Facility {
            router: IpsecFacility::new(&setup, gateway).unwrap(),
            received: Vec::new(),
        }
    }

    fn step(&mut self) {
        let got = self.router.step();
        self.received.extend(got);
    }

    fn send(&mut self, packet: &[u8]) {
        self.router.send(packet).unwrap();
    }
}

fn echo(src: &str, dst: &str, seq: u16, reply: bool) -> Vec<u8> {
    echo_of(src, dst, seq, reply, b"through ipsec")
}

fn echo_of(src: &str, dst: &str, seq: u16, reply: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = build::icmp_echo(
        &mut buf,
        src.parse().unwrap(),
        dst.parse().unwrap(),
        7,
        seq,
        reply,
        payload,
    )
    .unwrap();
    buf.truncate(n);
    buf
}

fn until(
    deadline: Duration,
    facs: &mut [&mut Facility],
    done: impl FnMut(&[&mut Facility]) -> bool,
) {
    pump_until(deadline, facs, None, done);
}

/// Steps the facilities until `done`, sending `resend.1` from `facs[resend.0]` every 500 ms
/// if given: the worker installs an SA a moment after the IKE thread negotiated it, and drops
/// what comes before (on a loaded machine, longer than a fixed pause).
fn pump_until(
    deadline: Duration,
    facs: &mut [&mut Facility],
    resend: Option<(usize, &[u8])>,
    mut done: impl FnMut(&[&mut Facility]) -> bool,
) {
    let end = Instant::now() + deadline;
    let mut next = Instant::now();
    while Instant::now() < end {
        if let Some((from, packet)) = resend.filter(|_| Instant::now() >= next) {
            facs[from].send(packet);
            next = Instant::now() + Duration::from_millis(500);
        }
        for f in facs.iter_mut() {
            f.step();
        }
        if done(facs) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facilities_negotiate_with_the_gateway_and_ping_through_it() {
    let dir = std::env::temp_dir().join(format!("ixgw-ipsec-loopback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = Ipv4Addr::LOCALHOST;
    let ports = [
        (free_port(gw), free_port(gw)),
        (free_port(gw), free_port(gw)),
    ];
    let config = config(&dir, ports);
    // The two peers' SAs live on different workers: ESP comes in on one, the flow's home
    // and the other peer's SAs are on the other.
    let plan = ixgw::dataplane::Plan::compile(&config, 1);
    let shard = ixgw::tunnel::Shard { index: 0, count: 2 };
    let owner = |name: &str| {
        let p = plan.peers.iter().find(|p| p.name == name).unwrap();
        shard.owner_by_key(p.home_key)
    };
    assert_ne!(owner("omura"), owner("oki"), "the test's premise");
    let running = Running::start(&config, None)
        .await
        .expect("the gateway runs IPsec attachments");

    let hub = running.hub().clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut a = Facility::new(
            "omura",
            Ipv4Addr::new(127, 0, 0, 2),
            GatewayPorts {
                ip: gw,
                ike: ports[0].0,
                nat_t: ports[0].1,
            },
            "100.65.0.0/16",
        );
        let mut b = Facility::new(
            "oki",
            Ipv4Addr::new(127, 0, 0, 3),
            GatewayPorts {
                ip: gw,
                ike: ports[1].0,
                nat_t: ports[1].1,
            },
            "100.64.0.0/16",
        );
        until(Duration::from_secs(10), &mut [&mut a, &mut b], |f| {
            f.iter().all(|f| f.router.established())
        });
        // The worker installs what the IKE thread negotiated a moment later.
        let ping = echo("10.0.1.5", "100.65.1.7", 1, false);
        pump_until(
            Duration::from_secs(5),
            &mut [&mut a, &mut b],
            Some((0, &ping)),
            |f| !f[1].received.is_empty(),
        );
        let at_b = wire::inspect(&b.received[0]).unwrap();
        assert_eq!(
            (at_b.src, at_b.dst),
            ("100.64.1.5".parse().unwrap(), "10.0.1.7".parse().unwrap()),
            "twice NAT between the overlapping tenants"
        );
        b.send(&echo("10.0.1.7", "100.64.1.5", 1, true));
        until(Duration::from_secs(5), &mut [&mut a, &mut b], |f| {
            !f[0].received.is_empty()
        });
        let at_a = wire::inspect(&a.received[0]).unwrap();
        assert_eq!(
            (at_a.src, at_a.dst),
            ("100.65.1.7".parse().unwrap(), "10.0.1.5".parse().unwrap())
        );
        // 1.5 MiB from A crosses `child_rekey_bytes` (1 MiB): the gateway rekeys A's CHILD
        // SA, and traffic goes on in the new one.
        rekey_by_bytes(&mut a, &mut b, &hub);
        // A new ping goes through the new SA.
        std::thread::sleep(Duration::from_millis(200));
        a.send(&echo("10.0.1.5", "100.65.1.7", 9999, false));
        until(Duration::from_secs(5), &mut [&mut a, &mut b], |f| {
            f[1].received.iter().any(|p| {
                matches!(
                    wire::inspect(p).map(|s| s.l4),
                    Ok(wire::L4::IcmpEcho { .. })
                ) && p.len() >= 28
                    && u16::from_be_bytes([p[26], p[27]]) == 9999
            })
        });
        // A's NAT gives it a new mapping: the gateway's ESP follows A's next packet there
        // (the reply reaches A's new port), and its IKE SA too.
        a.router.rebind_nat_t().unwrap();
        a.received.clear();
        a.send(&echo("10.0.1.5", "100.65.1.7", 5000, false));
        until(Duration::from_secs(5), &mut [&mut a, &mut b], |f| {
            f[1].received
                .iter()
                .any(|p| p.len() >= 28 && p[20] == 8 && u16::from_be_bytes([p[26], p[27]]) == 5000)
        });
        b.send(&echo("10.0.1.7", "100.64.1.5", 5000, true));
        until(Duration::from_secs(5), &mut [&mut a, &mut b], |f| {
            !f[0].received.is_empty()
        });
        let moved = r#"ixgw_ike_events_total{attachment="ajisai-ipsec",event="peer_moved"} 1"#;
        until(Duration::from_secs(5), &mut [&mut a, &mut b], |_| {
            hub.encode().lines().any(|l| l == moved)
        });
        // Garbage on the IKE port is refused and counted, not fatal.
        let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 4), 0)).unwrap();
        stranger.send_to(&[0x5a; 40], (gw, ports[0].0)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    })
    .await;
    let socket = dir.join("ixgw.sock");
    let fetched = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || ixgw::runtime::fetch_show(&socket))
            .await
            .unwrap()
    };
    let metrics = running.hub().encode();
    running.stop().await.expect("stops");
    let socket_left = socket.exists();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}\n{metrics}");
    }
    assert!(!socket_left, "the admin socket is removed at the stop");
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    assert_eq!(value("ixgw_peers_up "), 2.0, "both IKE SAs are up");
    // Steering and ownership agree: no ESP reached a worker without its SA.
    let unknown_spi: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ixgw_drops_total{") && l.contains(r#"reason="esp_unknown_spi""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(unknown_spi, 0.0, "ESP on a worker without its SA");
    // Each worker read ESP of its own peer and handed the other's packets on.
    for w in ["0", "1"] {
        let received = value(&format!(r#"ixgw_worker_received_total{{worker="{w}"}} "#));
        let handed = value(&format!(r#"ixgw_worker_handed_on_total{{worker="{w}"}} "#));
        assert!(
            received >= 2.0 && handed >= 1.0,
            "worker {w}: {received} read, {handed} handed on"
        );
    }
    let handshakes_ok: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ixgw_handshakes_total{") && l.contains(r#"result="ok""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(handshakes_ok, 2.0);
    assert!(
        value(
            r#"ixgw_peer_rx_packets_total{tenant="ajisai",attachment="ajisai-ipsec",peer="omura""#
        ) >= 1.0
    );
    assert!(
        value(r#"ixgw_peer_tx_packets_total{tenant="mame",attachment="mame-ipsec",peer="oki""#)
            >= 1.0
    );
    assert!(
        value(
            r#"ixgw_peer_last_handshake_timestamp_seconds{tenant="ajisai",attachment="ajisai-ipsec",peer="omura""#
        ) > 1.7e9
    );

    // `ixgw show` over the admin socket tells the same as the metrics.
    let report = fetched.expect("the admin socket answers /show");
    assert_eq!(report.gateway, "loopback-ix");
    let omura = report
        .only("omura")
        .expect("omura in the report")
        .attachments
        .remove(0);
    assert_eq!(
        (omura.name.as_str(), omura.kind.as_str()),
        ("ajisai-ipsec", "ipsec")
    );
    let p = &omura.peers[0];
    assert_eq!(
        (p.state.as_str(), p.facility.as_str()),
        ("up", "4212345674")
    );
    let endpoint = p.endpoint.as_deref().expect("an endpoint");
    assert!(endpoint.starts_with("127.0.0.2:"), "{endpoint}");
    let labels =
        r#"{tenant="ajisai",attachment="ajisai-ipsec",peer="omura",facility="4212345674"}"#;
    for (metric, shown) in [
        ("ixgw_peer_rx_packets_total", p.rx_packets),
        ("ixgw_peer_rx_bytes_total", p.rx_bytes),
        ("ixgw_peer_tx_bytes_total", p.tx_bytes),
        ("ixgw_peer_wire_rx_bytes_total", p.wire_rx_bytes),
        ("ixgw_peer_drops_total", p.drops),
    ] {
        assert_eq!(
            value(&format!("{metric}{labels} ")),
            shown as f64,
            "{metric}"
        );
    }
    assert!(
        p.wire_rx_bytes > p.rx_bytes,
        "ESP carries more than its inner packets"
    );
    let text = report.render(report.at);
    assert!(text.contains("  peer: oki\n"), "{text}");
}

/// 1.5 MiB from omura (A) crosses `child_rekey_bytes` (1 MiB): waits until the gateway has
/// rekeyed A's CHILD SA (the first rekey on ajisai-ipsec).
fn rekey_by_bytes(a: &mut Facility, b: &mut Facility, hub: &ixgw::metrics::MetricsHub) {
    let big = vec![0x42; 1300];
    for seq in 0..1200u16 {
        a.send(&echo_of("10.0.1.5", "100.65.1.7", 100 + seq, false, &big));
        if seq % 50 == 0 {
            a.step();
            b.step();
        }
    }
    let rekeyed = r#"ixgw_ike_events_total{attachment="ajisai-ipsec",event="child_sa_rekeyed"} 1"#;
    until(Duration::from_secs(10), &mut [a, b], |_| {
        hub.encode().lines().any(|l| l == rekeyed)
    });
}

/// A ping from omura (ajisai, 10.0.1.5) to oki (mame, 10.0.1.7) with sequence `seq` reaches
/// oki.
fn ping_a_to_b(a: &mut Facility, b: &mut Facility, seq: u16) {
    a.send(&echo("10.0.1.5", "100.65.1.7", seq, false));
    until(Duration::from_secs(5), &mut [a, b], |f| {
        f[1].received
            .iter()
            .any(|p| p.len() >= 28 && p[20] == 8 && u16::from_be_bytes([p[26], p[27]]) == seq)
    });
}

/// A reload that renumbers every attachment and peer (the tenants swap places) and adds a
/// peer keeps the SAs of the unchanged peers: nothing is negotiated again, a ping passes at
/// once, and a CHILD SA rekey after the reload works under the new numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_sas_of_unchanged_peers() {
    let dir = std::env::temp_dir().join(format!("ixgw-ipsec-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = Ipv4Addr::LOCALHOST;
    let ports = [
        (free_port(gw), free_port(gw)),
        (free_port(gw), free_port(gw)),
    ];
    let mut running = Running::start(&config(&dir, ports), None)
        .await
        .expect("the gateway runs IPsec attachments");
    let gateway = move |(ike, nat_t): (u16, u16)| GatewayPorts { ip: gw, ike, nat_t };
    let before = tokio::task::spawn_blocking(move || {
        let mut a = Facility::new(
            "omura",
            Ipv4Addr::new(127, 0, 0, 2),
            gateway(ports[0]),
            "100.65.0.0/16",
        );
        let mut b = Facility::new(
            "oki",
            Ipv4Addr::new(127, 0, 0, 3),
            gateway(ports[1]),
            "100.64.0.0/16",
        );
        until(Duration::from_secs(10), &mut [&mut a, &mut b], |f| {
            f.iter().all(|f| f.router.established())
        });
        std::thread::sleep(Duration::from_millis(200));
        ping_a_to_b(&mut a, &mut b, 1);
        (a, b)
    })
    .await;
    let (mut a, mut b) = match before {
        Ok(facilities) => facilities,
        Err(e) => panic!("{e}\n{}", running.hub().encode()),
    };
    running
        .reload(&config_variant(&dir, ports, true))
        .await
        .expect("the reload is accepted");
    let hub = running.hub().clone();
    let after = tokio::task::spawn_blocking(move || {
        // No renegotiation: the first ping after the reload passes in the kept SAs.
        ping_a_to_b(&mut a, &mut b, 2);
        rekey_by_bytes(&mut a, &mut b, &hub);
        std::thread::sleep(Duration::from_millis(200));
        ping_a_to_b(&mut a, &mut b, 9999);
    })
    .await;
    let metrics = running.hub().encode();
    running.stop().await.expect("stops");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = after {
        panic!("{e}\n{metrics}");
    }
    for a in ["ajisai-ipsec", "mame-ipsec"] {
        let up = format!(r#"ixgw_ike_events_total{{attachment="{a}",event="ike_sa_up"}} 1"#);
        assert!(
            metrics.lines().any(|l| l == up),
            "one IKE SA per facility, none after the reload: {up}\n{metrics}"
        );
    }
    assert!(
        metrics.lines().any(|l| l == "ixgw_peers_up 2"),
        "both peers stay up\n{metrics}"
    );
}
