//! Two data-path workers end to end on loopback: WireGuard facilities whose peers live on
//! either worker reach each other through the exchange, both ways.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};

use super::Running;
use crate::config::Config;
use crate::tunnel::wireguard::keys;
use crate::vocab::DropReason;
use crate::wire::{self, build, L4};

/// A facility: a boringtun tunnel to the gateway's attachment on its own socket.
struct Facility {
    tunn: Tunn,
    sock: UdpSocket,
    address: Ipv4Addr,
}

impl Facility {
    fn new(private: [u8; 32], gateway_public: [u8; 32], to: SocketAddr, index: u32) -> Facility {
        let tunn = Tunn::new(
            StaticSecret::from(private),
            PublicKey::from(gateway_public),
            None,
            None,
            index,
            None,
        );
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.connect(to).expect("connect");
        sock.set_nonblocking(true).expect("nonblocking");
        let mut f = Facility {
            tunn,
            sock,
            address: Ipv4Addr::new(10, 0, 0, 2),
        };
        // Connect at once, so that the gateway learns where the facility is.
        let mut out = [0u8; 256];
        if let TunnResult::WriteToNetwork(d) = f.tunn.format_handshake_initiation(&mut out, false) {
            let _ = f.sock.send(d);
        }
        f
    }

    fn send(&mut self, inner: &[u8]) {
        let mut out = [0u8; 2048];
        if let TunnResult::WriteToNetwork(d) = self.tunn.encapsulate(inner, &mut out) {
            let _ = self.sock.send(d);
        }
    }

    /// Reads what waits; returns the inner packets, after answering handshakes and echo
    /// requests.
    fn pump(&mut self) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut dgram = [0u8; 2048];
        let mut out = [0u8; 2048];
        while let Ok(n) = self.sock.recv(&mut dgram) {
            let mut input: &[u8] = &dgram[..n];
            loop {
                match self.tunn.decapsulate(None, input, &mut out) {
                    TunnResult::WriteToNetwork(d) => {
                        let _ = self.sock.send(d);
                        input = &[];
                    }
                    TunnResult::WriteToTunnelV4(p, _) => {
                        got.push(p.to_vec());
                        break;
                    }
                    _ => break,
                }
            }
        }
        if let TunnResult::WriteToNetwork(d) = self.tunn.update_timers(&mut out) {
            let _ = self.sock.send(d);
        }
        let mut answers = Vec::new();
        for p in &got {
            let Ok(s) = wire::inspect(p) else { continue };
            if let L4::IcmpEcho {
                ident,
                reply: false,
            } = s.l4
            {
                let mut buf = [0u8; 128];
                let seq = u16::from_be_bytes([p[26], p[27]]);
                if let Ok(n) = build::icmp_echo(&mut buf, s.dst, s.src, ident, seq, true, b"ws") {
                    answers.push(buf[..n].to_vec());
                }
            }
        }
        for a in answers {
            self.send(&a);
        }
        got
    }
}

fn yaml(dir: &Path, gw: [&Path; 2], peers: &[[u8; 32]], workers: usize) -> String {
    let peer = |i: usize| {
        format!(
            "          - name: p{i}\n            facility: \"4212345674\"\n            public_key: \"{}\"\n            allowed_ips: [10.0.0.{}/32]\n",
            keys::encode(&keys::public_key(&peers[i])),
            2 + (i % 2),
        )
    };
    format!(
        r#"ix:
  name: workers-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: 127.0.0.1:0
  admin_socket: {dir}/ixgw.sock
dataplane:
  workers: {workers}
tenants:
  - name: a
    networks:
      - {{ internal: 10.0.0.0/24, exchange: 100.64.0.0/24 }}
    attachments:
      - name: a-wg
        type: wireguard
        listen: 127.0.0.1:0
        private_key_file: {ga}
        peers:
{p0}{p1}
  - name: b
    networks:
      - {{ internal: 10.0.0.0/24, exchange: 100.65.0.0/24 }}
    attachments:
      - name: b-wg
        type: wireguard
        listen: 127.0.0.1:0
        private_key_file: {gb}
        peers:
{p2}{p3}
policies:
  - name: a-to-b
    from: {{ tenant: a }}
    to: {{ tenant: b }}
    allow: [icmp]
"#,
        dir = dir.display(),
        workers = workers,
        ga = gw[0].display(),
        gb = gw[1].display(),
        p0 = peer(0),
        p1 = peer(1),
        p2 = peer(2),
        p3 = peer(3),
    )
}

/// Facilities a0, a1 (tenant a) and b0, b1 (tenant b), the first of each on worker 0, the
/// second on worker 1: every pairing (0→0, 0→1, 1→0, 1→1) pings and gets its replies; both
/// workers carry traffic; nothing is dropped between workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facilities_on_either_worker_reach_each_other() {
    pings_between_facilities(2).await;
}

/// The same with one worker, as a control for the harness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facilities_reach_each_other_on_one_worker() {
    pings_between_facilities(1).await;
}

async fn pings_between_facilities(workers: usize) {
    let dir = std::env::temp_dir().join(format!("ixgw-workers-{}-{workers}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let gw = [[0x31u8; 32], [0x32u8; 32]];
    let gw_files = [dir.join("a.key"), dir.join("b.key")];
    for (k, f) in gw.iter().zip(&gw_files) {
        std::fs::write(f, format!("{}\n", keys::encode(k))).expect("key");
    }
    let peers: Vec<[u8; 32]> = (0..4u8).map(|i| [0x41 + i; 32]).collect();
    let path = dir.join("ixgw.yaml");
    std::fs::write(
        &path,
        yaml(&dir, [&gw_files[0], &gw_files[1]], &peers, workers),
    )
    .expect("yaml");
    let config = Config::load(&path).expect("valid configuration");
    let running = Running::start(&config, None).await.expect("start");
    assert_eq!(running.hub().workers(), workers);
    let to = [
        running.attachment_addr("a-wg").expect("a-wg"),
        running.attachment_addr("b-wg").expect("b-wg"),
    ];

    let result = tokio::task::spawn_blocking(move || {
        let mut f: Vec<Facility> = (0..4)
            .map(|i| {
                let mut f = Facility::new(
                    peers[i],
                    keys::public_key(&gw[i / 2]),
                    to[i / 2],
                    i as u32 + 1,
                );
                f.address = Ipv4Addr::new(10, 0, 0, 2 + (i % 2) as u8);
                f
            })
            .collect();
        // replies[a][b]: echo replies a-facility `a` got from b-facility `b`.
        let mut replies = [[0u32; 2]; 2];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seq = 0u16;
        let mut next = Instant::now();
        while Instant::now() < deadline && replies.iter().flatten().any(|&n| n < 5) {
            if Instant::now() >= next {
                next = Instant::now() + Duration::from_millis(50);
                seq = seq.wrapping_add(1);
                for a in f.iter_mut().take(2) {
                    for b in 0..2u8 {
                        let mut pkt = [0u8; 128];
                        let dst = Ipv4Addr::new(100, 65, 0, 2 + b);
                        let src = a.address;
                        let n = build::icmp_echo(
                            &mut pkt,
                            src,
                            dst,
                            0x100 + u16::from(b),
                            seq,
                            false,
                            b"ws",
                        )
                        .expect("echo");
                        a.send(&pkt[..n]);
                    }
                }
            }
            for (i, fac) in f.iter_mut().enumerate() {
                for p in fac.pump() {
                    let Ok(s) = wire::inspect(&p) else { continue };
                    if let (true, L4::IcmpEcho { ident, reply: true }) = (i < 2, s.l4) {
                        let b = usize::from(ident - 0x100).min(1);
                        // The reply comes from b-facility `b`'s exchange address.
                        assert_eq!(s.src, Ipv4Addr::new(100, 65, 0, 2 + b as u8));
                        replies[i][b] += 1;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        replies
    })
    .await
    .expect("facilities");

    let hub = running.hub().clone();
    let per_worker: Vec<u64> = (0..workers)
        .map(|w| {
            let c = hub.current(w).expect("worker table");
            (0..4).map(|p| c.peer(p).rx_packets.get()).sum()
        })
        .collect();
    let dropped = |r| {
        (0..2)
            .map(|w| hub.current(w).map_or(0, |c| c.drop_count(r)))
            .sum::<u64>()
    };
    let (queue_full, stale) = (
        dropped(DropReason::WorkerQueueFull),
        dropped(DropReason::HandoffStale),
    );
    running.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        result.iter().flatten().all(|&n| n >= 5),
        "echo replies a0→b0, a0→b1, a1→b0, a1→b1: {result:?}"
    );
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "packets received from peers, by worker: {per_worker:?}"
    );
    assert_eq!((queue_full, stale), (0, 0));
}
