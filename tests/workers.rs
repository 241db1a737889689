//! Two data-path workers in memory: two `Gateway`s over one plan, each holding the WireGuard
//! tunnels of alternate peer slots ([`Gateway::set_shard`]), wired as the runtime wires them:
//! a datagram naming a receiver index goes to the worker owning that slot (the steering
//! program), an initiation to worker 0 (the kernel's hash, here fixed), and what a worker
//! hands on goes to the other one. Two tenants number the same 10.0.0.0/24; each has one
//! WireGuard attachment with two facilities (slots 0 and 1).

mod util;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use ixgw::buffer::{HandoffBatch, RxBatch, TxBatch, Via, BUF_SIZE};
use ixgw::config::*;
use ixgw::dataplane::{Gateway, Plan};
use ixgw::ids::{AttachmentId, FacilityCode, PeerId};
use ixgw::tunnel::wireguard::{keys, HandshakeLimits};
use ixgw::tunnel::Shard;
use ixgw::vocab::{DropReason, HandshakeResult};
use ixgw::wire::build;
use util::{owned, Owned};

const TENANTS: [(&str, &str); 2] = [("ajisai", "100.64.0.0/24"), ("mame", "100.65.0.0/24")];

fn net(s: &str) -> ipnetwork::Ipv4Network {
    s.parse().expect("prefix")
}

fn gateway_key(side: usize) -> [u8; 32] {
    [0x40 + side as u8; 32]
}

fn facility_key(side: usize, k: usize) -> [u8; 32] {
    [0x60 + (side * 2 + k) as u8; 32]
}

/// Facility `k` of `side`: host 10.0.0.(2 + k), its endpoint.
fn host(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 2 + k as u8)
}

fn endpoint(side: usize, k: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, (10 * side + k + 1) as u8], 51820))
}

fn config() -> Config {
    let tenant = |side: usize| {
        let (name, exchange) = TENANTS[side];
        let peers = (0..2)
            .map(|k| WireGuardPeer {
                name: format!("{name}-{k}"),
                facility: FacilityCode::parse(["4212345674", "3219876541"][side])
                    .expect("facility code"),
                public_key: Key32(keys::public_key(&facility_key(side, k))),
                preshared_key: None,
                preshared_key_file: None,
                allowed_ips: vec![net(&format!("{}/32", host(k)))],
                endpoint: None,
                persistent_keepalive: None,
                address: None,
                directed_broadcast: false,
            })
            .collect();
        Tenant {
            name: name.into(),
            trust: vec![],
            networks: vec![Network {
                internal: net("10.0.0.0/24"),
                exchange: net(exchange),
            }],
            attachments: vec![Attachment {
                name: format!("{name}-wg"),
                kind: AttachmentKind::WireGuard(WireGuardAttachment {
                    listen: SocketAddr::from(([198, 51, 100, 1], 51820 + side as u16)),
                    private_key_file: PathBuf::from(format!("{name}.key")),
                    private_key: Key32(gateway_key(side)),
                    mtu: 1420,
                    peers,
                }),
            }],
        }
    };
    Config {
        source: PathBuf::from("workers.yaml"),
        ix: Ix {
            name: "workers-ix".into(),
            exchange_space: net("100.64.0.0/10"),
            public_address: None,
        },
        metrics: Metrics {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_socket: None,
            peer_series: Default::default(),
        },
        dataplane: Dataplane::default(),
        tenants: vec![tenant(0), tenant(1)],
        services: vec![],
        policies: vec![Policy {
            name: "a-to-b".into(),
            from: Source {
                tenants: vec![TENANTS[0].0.into()],
                ..Source::default()
            },
            to: Destination::Tenants {
                tenants: vec![TENANTS[1].0.into()],
                prefixes: vec![],
            },
            allow: vec![PortRule {
                protocol: Protocol::Udp,
                ports: None,
            }],
        }],
        agreements: vec![],
        trust: vec![],
        facilities: None,
        audit: None,
        usage: None,
        warnings: vec![],
    }
}

struct Facility {
    tunn: Tunn,
    side: usize,
    k: usize,
    received: Vec<Vec<u8>>,
}

struct Rig {
    workers: [Gateway; 2],
    facilities: Vec<Facility>,
    /// Datagrams on their way to the gateway: (attachment, from, bytes).
    wire: VecDeque<(usize, SocketAddr, Vec<u8>)>,
    now: Instant,
    handoffs: [usize; 2],
}

impl Rig {
    fn new() -> Rig {
        let now = Instant::now();
        let plan = Arc::new(Plan::compile(&config(), 1));
        let workers = [0, 1].map(|index| {
            let mut g = Gateway::new(plan.clone(), now);
            g.set_shard(Shard { index, count: 2 });
            g
        });
        let facilities = (0..2)
            .flat_map(|side| (0..2).map(move |k| (side, k)))
            .map(|(side, k)| Facility {
                tunn: Tunn::new(
                    StaticSecret::from(facility_key(side, k)),
                    PublicKey::from(keys::public_key(&gateway_key(side))),
                    None,
                    None,
                    0x100 + (side * 2 + k) as u32,
                    None,
                ),
                side,
                k,
                received: vec![],
            })
            .collect();
        let mut r = Rig {
            workers,
            facilities,
            wire: VecDeque::new(),
            now,
            handoffs: [0; 2],
        };
        // Every facility connects: its initiation reaches worker 0, whichever owns it.
        for f in 0..r.facilities.len() {
            let mut buf = vec![0; BUF_SIZE];
            let fac = &mut r.facilities[f];
            let (side, k) = (fac.side, fac.k);
            if let Owned::Net(d) = owned(fac.tunn.format_handshake_initiation(&mut buf, false)) {
                r.wire.push_back((side, endpoint(side, k), d));
            }
            r.pump();
        }
        r
    }

    /// The home of a flow between ajisai-1 (worker 1) and mame-0 (worker 0).
    fn home(&self) -> usize {
        let plan = self.workers[0].plan();
        let key = |name: &str| {
            let p = plan.peers.iter().find(|p| p.name == name).expect("peer");
            p.home_key
        };
        (key("ajisai-1"), 1).min((key("mame-0"), 0)).1
    }

    /// The worker a datagram reaches: the owner of the slot it names, an initiation worker 0.
    fn steer(datagram: &[u8]) -> usize {
        let at = match datagram[0] {
            4 | 3 => 4,
            2 => 8,
            _ => return 0,
        };
        let index = u32::from_le_bytes(datagram[at..at + 4].try_into().expect("4 bytes"));
        ((index >> 8) % 2) as usize
    }

    /// Moves everything until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some((att, from, d)) = self.wire.pop_front() {
                moved = true;
                let w = Rig::steer(&d);
                let mut rx = RxBatch::new(1);
                assert!(rx.push(AttachmentId(att as u16), Via::udp(0, from), &d));
                let mut tx = TxBatch::new(64);
                self.workers[w].handle_batch(self.now, &mut rx, &mut tx);
                self.out(&tx);
            }
            for w in 0..2 {
                let handed = self.workers[w].handoffs();
                if handed.is_empty() {
                    continue;
                }
                moved = true;
                let mut batch = HandoffBatch::new(256);
                for i in 0..handed.len() {
                    let (m, d) = handed.get_mut(i);
                    assert_eq!(m.worker as usize, 1 - w, "handed to the other worker");
                    assert!(batch.push(m.worker, m.generation, m.kind, d));
                }
                handed.clear();
                self.handoffs[w] += batch.len();
                let mut tx = TxBatch::new(64);
                let n = batch.len();
                self.workers[1 - w].handle_handoffs(self.now, &mut batch, 0..n, &mut tx);
                self.out(&tx);
            }
            if !moved {
                return;
            }
        }
        panic!("the rig never settled");
    }

    /// Delivers what the gateway sent to the facilities, and their answers to the wire.
    fn out(&mut self, tx: &TxBatch) {
        for (meta, d) in tx.iter() {
            let to = meta.via.udp_addr().expect("a datagram");
            let f = self
                .facilities
                .iter_mut()
                .find(|f| endpoint(f.side, f.k) == to)
                .expect("a facility's endpoint");
            let gw = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
            let mut buf = vec![0; BUF_SIZE];
            let mut r = owned(f.tunn.decapsulate(gw, d, &mut buf));
            loop {
                match r {
                    Owned::Net(out) => self.wire.push_back((f.side, endpoint(f.side, f.k), out)),
                    Owned::Inner(p) => {
                        f.received.push(p);
                        break;
                    }
                    _ => break,
                }
                r = owned(f.tunn.decapsulate(None, &[], &mut buf));
            }
        }
    }

    /// Facility `(side, k)` sends a UDP packet to `dst`: ajisai's from port 40000 to 5000,
    /// mame's answers the other way.
    fn send(&mut self, side: usize, k: usize, dst: Ipv4Addr, payload: &[u8]) {
        let mut inner = vec![0; BUF_SIZE];
        let (sport, dport) = if side == 0 {
            (40_000, 5_000)
        } else {
            (5_000, 40_000)
        };
        let n = build::udp(&mut inner, host(k), dst, sport, dport, payload).expect("packet");
        let f = &mut self.facilities[side * 2 + k];
        let mut buf = vec![0; BUF_SIZE];
        if let Owned::Net(d) = owned(f.tunn.encapsulate(&inner[..n], &mut buf)) {
            self.wire.push_back((side, endpoint(side, k), d));
        }
        self.pump();
    }
}

/// A flow between facility 1 of ajisai (slot 1: worker 1) and facility 0 of mame (slot 0:
/// worker 0) lives on one home (the owner of the peer with the smaller home key), in both
/// directions;
/// each worker encrypts only to its own peers; the facility whose initiation reached the
/// wrong worker is answered by its owner; order is kept.
#[test]
fn a_flow_across_two_workers_has_one_home_and_keeps_its_order() {
    let mut r = Rig::new();
    // a1 → mame 10.0.0.2 (100.65.0.2): the first packet waits for the handshake.
    for n in 0..20u8 {
        r.send(0, 1, Ipv4Addr::new(100, 65, 0, 2), &[n; 40]);
    }
    let got: Vec<u8> = r.facilities[2].received.iter().map(|p| p[28]).collect();
    assert_eq!(
        got,
        (0..20).collect::<Vec<u8>>(),
        "mame-0 got them all, in order"
    );
    let p = &r.facilities[2].received[0];
    assert_eq!(&p[12..16], &[100, 64, 0, 3], "the source translated");
    assert_eq!(&p[16..20], &[10, 0, 0, 2], "the destination translated");

    // The answers come back through worker 0 (mame-0's) and are admitted on the home.
    for n in 0..20u8 {
        r.send(1, 0, Ipv4Addr::new(100, 64, 0, 3), &[100 + n; 40]);
    }
    let back: Vec<u8> = r.facilities[1].received.iter().map(|p| p[28]).collect();
    assert_eq!(
        back,
        (100..120).collect::<Vec<u8>>(),
        "ajisai-1 got every answer, in order"
    );

    let home = r.home();
    assert_eq!(
        r.workers[home].flow_count(),
        1,
        "the flow lives on its home"
    );
    assert_eq!(r.workers[1 - home].flow_count(), 0, "and nowhere else");
    assert!(
        r.handoffs[0] >= 20 && r.handoffs[1] >= 20,
        "{:?}",
        r.handoffs
    );
    for w in &r.workers {
        for reason in [
            DropReason::WorkerQueueFull,
            DropReason::HandoffStale,
            DropReason::Policy,
        ] {
            assert_eq!(w.counters().drop_count(reason), 0, "{reason:?}");
        }
    }
    // Only the owner holds a session with each peer.
    let wg = |w: usize, side: usize| {
        r.workers[w]
            .tunnel(AttachmentId(side as u16))
            .and_then(|t| t.wireguard())
            .expect("a WireGuard attachment")
    };
    assert!(wg(1, 0).peer_session_established(PeerId(1)));
    assert!(!wg(0, 0).peer_session_established(PeerId(1)));
    assert!(wg(0, 1).peer_session_established(PeerId(2)));
    assert!(!wg(1, 1).peer_session_established(PeerId(2)));
}

/// A reload switches the workers one after the other: a packet one of them handed on under
/// the previous plan is delivered under the next one, its attachment and peer renumbered by
/// name (here every number changes: the tenants swap places, and the flow keeps its home);
/// one of a plan older still is dropped, counted.
#[test]
fn a_packet_handed_on_across_a_reload_is_renumbered() {
    let mut r = Rig::new();
    r.send(0, 1, Ipv4Addr::new(100, 65, 0, 2), &[1; 40]);
    assert_eq!(r.facilities[2].received.len(), 1);
    let home = r.home();

    // The end of the flow that is not at home sends (ajisai-1 lives on worker 1, mame-0 on
    // worker 0); its owner hands the packet to the flow's home...
    let (side, k, dst, ports, to) = match home {
        1 => (1, 0, Ipv4Addr::new(100, 64, 0, 3), (5_000, 40_000), 1),
        _ => (0, 1, Ipv4Addr::new(100, 65, 0, 2), (40_000, 5_000), 2),
    };
    let mut inner = vec![0; BUF_SIZE];
    let n = build::udp(&mut inner, host(k), dst, ports.0, ports.1, &[7; 40]).expect("packet");
    let mut buf = vec![0; BUF_SIZE];
    let f = &mut r.facilities[side * 2 + k];
    let Owned::Net(d) = owned(f.tunn.encapsulate(&inner[..n], &mut buf)) else {
        panic!("a data message");
    };
    let mut rx = RxBatch::new(1);
    assert!(rx.push(
        AttachmentId(side as u16),
        Via::udp(0, endpoint(side, k)),
        &d
    ));
    let mut tx = TxBatch::new(64);
    r.workers[1 - home].handle_batch(r.now, &mut rx, &mut tx);
    assert!(tx.is_empty());
    let handed = r.workers[1 - home].handoffs();
    let mut batch = HandoffBatch::new(4);
    let mut old = HandoffBatch::new(4);
    for i in 0..handed.len() {
        let (m, d) = handed.get_mut(i);
        assert_eq!(m.worker as usize, home);
        assert!(batch.push(m.worker, m.generation, m.kind, d));
        assert!(old.push(m.worker, 0, m.kind, d));
    }
    handed.clear();
    assert_eq!(batch.len(), 1);

    // ...both switch to a plan that numbers everything the other way round...
    let mut next = config();
    next.tenants.reverse();
    let next = Arc::new(Plan::compile(&next, 2));
    for w in &mut r.workers {
        w.apply_plan(next.clone(), r.now);
    }
    // ...and the home, now on the new plan, still delivers it, without another hop.
    let mut tx = TxBatch::new(64);
    let n = batch.len();
    r.workers[home].handle_handoffs(r.now, &mut batch, 0..n, &mut tx);
    assert!(r.workers[home].handoffs().is_empty());
    r.out(&tx);
    let got = r.facilities[to]
        .received
        .last()
        .expect("the answer arrived");
    assert_eq!(got[28], 7);
    for w in &r.workers {
        assert_eq!(w.counters().drop_count(DropReason::HandoffStale), 0);
    }

    let mut tx = TxBatch::new(64);
    let n = old.len();
    r.workers[home].handle_handoffs(r.now, &mut old, 0..n, &mut tx);
    assert!(tx.is_empty());
    assert_eq!(
        r.workers[home]
            .counters()
            .drop_count(DropReason::HandoffStale),
        1
    );
}

/// Handshakes of `result` each worker counted.
fn handshakes(r: &Rig, result: HandshakeResult) -> [u64; 2] {
    [0, 1].map(|w| {
        (r.workers[w].counters().handshakes())
            .filter(|(_, res, _)| *res == result)
            .map(|(_, _, n)| n)
            .sum()
    })
}

/// The worker an initiation reaches (by the kernel's hash) judges its MACs and its own load;
/// the owner, even under load, answers what it hands on instead of demanding a cookie of its
/// own (which the facility, retrying to the same worker, could never present there).
#[test]
fn an_initiation_handed_on_is_answered_by_an_owner_under_load() {
    let mut r = Rig::new();
    let wg = r.workers[1]
        .tunnel_mut(AttachmentId(0))
        .and_then(|t| t.wireguard_mut())
        .expect("ajisai-wg");
    wg.set_handshake_limits(HandshakeLimits {
        backlog: 16,
        under_load: 0,
    });
    assert!(wg.under_load(r.now));
    let ok = handshakes(&r, HandshakeResult::Ok);

    // ajisai-1 (worker 1's) initiates again; the initiation reaches worker 0.
    let mut buf = vec![0; BUF_SIZE];
    let f = &mut r.facilities[1];
    let Owned::Net(d) = owned(f.tunn.format_handshake_initiation(&mut buf, true)) else {
        panic!("an initiation");
    };
    r.wire.push_back((0, endpoint(0, 1), d));
    r.pump();

    assert_eq!(handshakes(&r, HandshakeResult::CookieSent), [0, 0]);
    let now_ok = handshakes(&r, HandshakeResult::Ok);
    assert_eq!(
        now_ok[1],
        ok[1] + 1,
        "worker 1 answered it: {ok:?} → {now_ok:?}"
    );
    assert_eq!(now_ok[0], ok[0], "worker 0 only handed it on");
}
