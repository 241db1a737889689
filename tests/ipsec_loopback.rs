//! IPsec end to end in-process, over real UDP sockets on loopback: the daemon (`Running`)
//! with two IPsec attachments of overlapping tenants, and two facilities made of our own
//! IKEv2 engine and ESP SAs. The facilities initiate with pre-shared keys; the gateway's IKE
//! thread negotiates, its worker installs the CHILD SAs; a ping from one facility crosses the
//! gateway (ESP in UDP → twice NAT → ESP in UDP) to the other and its reply comes back.

#![cfg(not(feature = "virtual-time"))]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;
use ixgw::config::Config;
use ixgw::crypto::{DhGroup, EncrAlg, PrfAlg, SystemRandom};
use ixgw::ids::PeerId;
use ixgw::runtime::Running;
use ixgw::tunnel::ipsec::esp::{Decap, InboundSa, OutboundSa};
use ixgw::tunnel::ipsec::ike::sa::{
    DpdAction, EspProposal, Identity, IkeConfig, IkeEngine, IkeEvent, IkePeerConfig, IkeProposal,
    Limits, PeerAuth, Start,
};
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
    std::fs::write(dir.join("psk"), PSK).unwrap();
    let attachment = |name: &str, (ike, natt): (u16, u16), peer: &str, facility: &str| {
        format!(
            r#"      - name: {name}
        type: ipsec
        listen: 127.0.0.1
        ike_port: {ike}
        nat_t_port: {natt}
        raw_esp: false
        local_id: gw.ix.example
        peers:
          - name: {peer}
            facility: "{facility}"
            remote_id: {peer}.example
            auth: psk
            psk_file: psk
            remote_ts: [10.0.1.0/24]
"#
        )
    };
    let text = format!(
        r#"ix:
  name: loopback-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: 127.0.0.1:0
tenants:
  - name: ajisai
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.64.0.0/16
    attachments:
{}  - name: mame
    networks:
      - internal: 10.0.0.0/16
        exchange: 100.65.0.0/16
    attachments:
{}policies:
  - name: ping
    from: {{ tenant: ajisai }}
    to: {{ tenant: mame }}
    allow: [icmp]
"#,
        attachment("ajisai-ipsec", ports[0], "omura", "4212345678"),
        attachment("mame-ipsec", ports[1], "izumo", "3211234567"),
    );
    Config::from_str_at(&text, &dir.join("ixgw.yaml")).expect("valid configuration")
}

/// A facility: our own IKE engine as initiator on two sockets (its "500" and "4500") and
/// the ESP SAs it negotiated.
struct Facility {
    engine: IkeEngine,
    sockets: [UdpSocket; 2],
    /// The gateway's real ports for the engine's 500 and 4500.
    gateway: (Ipv4Addr, u16, u16),
    sa: Option<(InboundSa, OutboundSa, SocketAddr)>,
    received: Vec<Vec<u8>>,
}

impl Facility {
    fn new(name: &str, ip: Ipv4Addr, gateway: (Ipv4Addr, u16, u16), remote_ts: &str) -> Facility {
        let sockets = [(); 2].map(|_| {
            let s = UdpSocket::bind((ip, 0)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        });
        let net = |s: &str| s.parse::<Ipv4Network>().unwrap();
        let config = IkeConfig {
            local_id: Identity::fqdn(&format!("{name}.example")),
            local_addr: ip.into(),
            peers: vec![IkePeerConfig {
                peer: PeerId(0),
                remote_id: Identity::fqdn("gw.ix.example"),
                auth: PeerAuth::Psk(PSK.to_vec().into()),
                local_ts: vec![net("10.0.1.0/24")],
                remote_ts: vec![net(remote_ts)],
                ike_proposals: vec![IkeProposal {
                    encr: vec![EncrAlg::AesGcm16_256],
                    integ: vec![],
                    prf: vec![PrfAlg::HmacSha256],
                    dh: vec![DhGroup::Ecp256],
                }],
                esp_proposals: vec![EspProposal {
                    encr: vec![EncrAlg::AesGcm16_128],
                    integ: vec![],
                    dh: vec![],
                    esn: false,
                }],
                start: Start::Initiate,
                endpoint: Some(SocketAddr::from((gateway.0, 500))),
                ike_rekey: Duration::from_secs(3600),
                child_rekey: Duration::from_secs(1800),
                child_rekey_bytes: None,
                dpd_interval: Duration::from_secs(30),
                dpd_timeout: Duration::from_secs(150),
                dpd_action: DpdAction::Clear,
            }],
            limits: Limits::default(),
        };
        Facility {
            engine: IkeEngine::new(config, Instant::now()),
            sockets,
            gateway,
            sa: None,
            received: Vec::new(),
        }
    }

    /// Moves everything that is ready: engine output out, datagrams in, timers, events.
    fn step(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            let (ip, ike, natt) = self.gateway;
            let (socket, port, marker) = if t.from_port == 500 {
                (&self.sockets[0], ike, false)
            } else {
                (&self.sockets[1], natt, true)
            };
            let to = if t.to.ip() == std::net::IpAddr::from(ip) {
                SocketAddr::from((ip, port))
            } else {
                t.to
            };
            let mut d = if marker { vec![0; 4] } else { vec![] };
            d.extend_from_slice(&t.data);
            socket.send_to(&d, to).unwrap();
        }
        let mut buf = [0u8; 4096];
        for (i, port) in [(0, 500), (1, 4500)] {
            while let Ok((n, from)) = self.sockets[i].recv_from(&mut buf) {
                let d = &mut buf[..n];
                if i == 0 {
                    self.engine.handle_datagram(Instant::now(), port, from, d);
                } else if d.starts_with(&[0; 4]) {
                    self.engine
                        .handle_datagram(Instant::now(), port, from, &d[4..]);
                } else if let Some((inbound, ..)) = &mut self.sa {
                    if let Ok(Decap::Packet(r)) = inbound.decapsulate(d) {
                        self.received.push(d[r].to_vec());
                    }
                }
            }
        }
        let now = Instant::now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        while let Some(ev) = self.engine.poll_event() {
            if let IkeEvent::ChildSaUp(up) = ev {
                let inbound = InboundSa::new(&up.inbound.sa_config()).unwrap();
                let outbound = OutboundSa::new(&up.outbound.sa_config()).unwrap();
                self.sa = Some((inbound, outbound, up.remote_addr));
            }
        }
    }

    /// Sends `packet` into the CHILD SA, as ESP in UDP to the gateway's NAT-T port.
    fn send(&mut self, packet: &[u8]) {
        let (_, outbound, _) = self.sa.as_mut().expect("a CHILD SA");
        let mut buf = vec![0u8; 2048];
        let n = outbound
            .encapsulate(&mut SystemRandom::new(), packet, &mut buf)
            .unwrap();
        let (ip, _, natt) = self.gateway;
        self.sockets[1].send_to(&buf[..n], (ip, natt)).unwrap();
    }
}

fn echo(src: &str, dst: &str, seq: u16, reply: bool) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = build::icmp_echo(
        &mut buf,
        src.parse().unwrap(),
        dst.parse().unwrap(),
        7,
        seq,
        reply,
        b"through ipsec",
    )
    .unwrap();
    buf.truncate(n);
    buf
}

fn until(
    deadline: Duration,
    facs: &mut [&mut Facility],
    mut done: impl FnMut(&[&mut Facility]) -> bool,
) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
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
    let running = Running::start(&config(&dir, ports), None)
        .await
        .expect("the gateway runs IPsec attachments");

    let result = tokio::task::spawn_blocking(move || {
        let mut a = Facility::new(
            "omura",
            Ipv4Addr::new(127, 0, 0, 2),
            (gw, ports[0].0, ports[0].1),
            "100.65.0.0/16",
        );
        let mut b = Facility::new(
            "izumo",
            Ipv4Addr::new(127, 0, 0, 3),
            (gw, ports[1].0, ports[1].1),
            "100.64.0.0/16",
        );
        until(Duration::from_secs(10), &mut [&mut a, &mut b], |f| {
            f.iter().all(|f| f.sa.is_some())
        });
        // Give the worker a moment to install what the IKE thread negotiated.
        std::thread::sleep(Duration::from_millis(200));
        a.send(&echo("10.0.1.5", "100.65.1.7", 1, false));
        until(Duration::from_secs(5), &mut [&mut a, &mut b], |f| {
            !f[1].received.is_empty()
        });
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
        // Garbage on the IKE port is refused and counted, not fatal.
        let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 4), 0)).unwrap();
        stranger.send_to(&[0x5a; 40], (gw, ports[0].0)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    })
    .await;
    let metrics = running.hub().encode();
    running.stop().await.expect("stops");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}\n{metrics}");
    }
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    assert_eq!(value("ixgw_peers_up "), 2.0, "both IKE SAs are up");
    assert_eq!(value(r#"ixgw_handshakes_total{result="ok"}"#), 2.0);
    assert!(
        value(
            r#"ixgw_peer_rx_packets_total{tenant="ajisai",attachment="ajisai-ipsec",peer="omura""#
        ) >= 1.0
    );
    assert!(
        value(r#"ixgw_peer_tx_packets_total{tenant="mame",attachment="mame-ipsec",peer="izumo""#)
            >= 1.0
    );
    assert!(
        value(
            r#"ixgw_peer_last_handshake_timestamp_seconds{tenant="ajisai",attachment="ajisai-ipsec",peer="omura""#
        ) > 1.7e9
    );
}
