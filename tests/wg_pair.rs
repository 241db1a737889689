//! In-memory pair harness for WireGuard attachments: a gateway [`WgAttachment`] and facility
//! peers that are plain boringtun `Tunn`s, datagrams moved between them in memory, virtual time
//! advanced in timer ticks. Run with `cargo test --features virtual-time --test wg_pair`.

#![cfg(feature = "virtual-time")]

mod util;

use util::{owned, Owned};

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use ixgw::buffer::{TxBatch, Via, BUF_SIZE};
use ixgw::dataplane::count_event;
use ixgw::ids::{AttachmentId, PeerId};
use ixgw::tunnel::wireguard::{
    clock, keys, HandshakeLimits, WgAttachment, WgPeerConfig, HANDSHAKES_PER_BATCH,
};
use ixgw::tunnel::Event;
use ixgw::vocab::DropReason;
use ixgw::vocab::{Counters, HandshakeResult, Names, PeerLabels};

const TICK: Duration = Duration::from_millis(250);
const ATTACHMENT: AttachmentId = AttachmentId(7);
const GW_PRIVATE: [u8; 32] = [0x51; 32];
const PSK: [u8; 32] = [0x33; 32];
const MAX_PEER_IDS: usize = 16;

fn fac_private(i: usize) -> [u8; 32] {
    [0x60 + i as u8; 32]
}

fn fac_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(192, 0, 2, 10 + i as u8), port))
}

/// A minimal IPv4 packet (boringtun checks version and total length only).
fn ipv4(src: u8, dst: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 1, src]);
    p[16..20].copy_from_slice(&[10, 0, 2, dst]);
    p[20..].copy_from_slice(payload);
    p
}

fn msg_type(datagram: &[u8]) -> u8 {
    datagram[0]
}

struct Facility {
    tunn: Tunn,
    addr: SocketAddr,
    received: Vec<Vec<u8>>,
    keepalives: usize,
    errors: Vec<String>,
}

impl Facility {
    fn new(private: [u8; 32], gw_public: [u8; 32], index: u32, addr: SocketAddr) -> Self {
        Facility {
            tunn: Tunn::new(
                StaticSecret::from(private),
                PublicKey::from(gw_public),
                Some(PSK),
                None,
                index,
                None,
            ),
            addr,
            received: Vec::new(),
            keepalives: 0,
            errors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Pair {
    start: Instant,
    now: Instant,
    gw: WgAttachment,
    gw_addr: SocketAddr,
    counters: Counters,
    tx: TxBatch,
    inner: Vec<u8>,
    configs: Vec<WgPeerConfig>,
    facs: Vec<Facility>,
    /// Datagrams in flight: (from, to, bytes).
    wire: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    gw_sent: Vec<Sent>,
    gw_rx: Vec<(PeerId, Vec<u8>)>,
    gw_drops: Vec<DropReason>,
}

impl Pair {
    /// A gateway with `n` peers (`PeerId(i)` is facility `i`), each configured by `configure`.
    fn new(n: usize, configure: impl Fn(usize, &mut WgPeerConfig)) -> Self {
        let start = Instant::now();
        let labels = (0..MAX_PEER_IDS)
            .map(|i| PeerLabels {
                peer: format!("p{i}"),
                tenant: "t".into(),
                attachment: "wg".into(),
                facility: "4212345674".into(),
            })
            .collect();
        let names = Names {
            tenants: vec!["t".into()],
            attachments: vec!["wg".into()],
            peers: labels,
            arp_attachments: vec![],
        };
        let counters = Counters::new(start, names);
        let mut gw = WgAttachment::new(ATTACHMENT, &GW_PRIVATE);
        assert_eq!(gw.public_key(), keys::public_key(&GW_PRIVATE));
        let configs: Vec<_> = (0..n)
            .map(|i| {
                let mut c = WgPeerConfig {
                    id: PeerId(i as u32),
                    public_key: keys::public_key(&fac_private(i)),
                    preshared_key: Some(PSK),
                    persistent_keepalive: None,
                    endpoint: None,
                };
                configure(i, &mut c);
                c
            })
            .collect();
        gw.set_peers(&configs, start);
        clock::sync(start);
        let facs = (0..n)
            .map(|i| {
                Facility::new(
                    fac_private(i),
                    gw.public_key(),
                    0x1000 + i as u32,
                    fac_addr(i, 51820),
                )
            })
            .collect();
        Pair {
            start,
            now: start,
            gw,
            gw_addr: "203.0.113.10:51820".parse().unwrap(),
            counters,
            tx: TxBatch::new(64),
            inner: vec![0; BUF_SIZE],
            configs,
            facs,
            wire: VecDeque::new(),
            gw_sent: Vec::new(),
            gw_rx: Vec::new(),
            gw_drops: Vec::new(),
        }
    }

    fn handshakes(&self, result: HandshakeResult) -> u64 {
        self.counters.handshake_count(result)
    }

    fn set_peers(&mut self, configs: Vec<WgPeerConfig>) {
        self.gw.set_peers(&configs, self.now);
        self.configs = configs;
    }

    /// Moves the gateway's transmit batch onto the wire.
    fn collect(&mut self) {
        for (meta, bytes) in self.tx.iter() {
            assert_eq!(meta.attachment, ATTACHMENT);
            let Some(to) = meta.via.udp_addr() else {
                panic!("WireGuard output to {:?}", meta.via)
            };
            self.gw_sent.push(Sent {
                at: self.now,
                to,
                bytes: bytes.to_vec(),
            });
            self.wire.push_back((self.gw_addr, to, bytes.to_vec()));
        }
        self.tx.clear();
    }

    /// Counts what the attachment reported, as the pipeline does.
    fn count_events(&mut self) {
        while let Some(event) = self.gw.poll_event() {
            count_event(&self.counters, None, event);
        }
    }

    fn gw_send(&mut self, peer: PeerId, packet: &[u8]) -> Result<(), DropReason> {
        let r = self.gw.send(self.now, peer, packet, &mut self.tx);
        self.count_events();
        self.collect();
        r
    }

    fn gw_receive(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Option<(PeerId, usize)>, DropReason> {
        let mut r =
            self.gw
                .handle_datagram(self.now, from, datagram, &mut self.inner, &mut self.tx);
        // A handshake message waits for its work, which the pipeline does after each batch;
        // a refusal found then is reported as an event, and is this datagram's fate.
        if r == Ok(None) && matches!(msg_type(datagram), 1 | 2) {
            self.gw
                .answer_handshakes(self.now, HANDSHAKES_PER_BATCH, &mut self.tx);
            while let Some(event) = self.gw.poll_event() {
                if let Event::Dropped { reason, .. } = event {
                    r = Err(reason);
                }
                count_event(&self.counters, None, event);
            }
        }
        self.count_events();
        match r {
            Ok(Some((peer, len))) => self.gw_rx.push((peer, self.inner[..len].to_vec())),
            Ok(None) => {}
            Err(reason) => self.gw_drops.push(reason),
        }
        self.collect();
        r
    }

    /// Facility `i` encrypts `packet` (or queues it and starts a handshake) onto the wire.
    fn fac_send(&mut self, i: usize, packet: &[u8]) {
        if let Some(d) = self.fac_seal(i, packet) {
            let from = self.facs[i].addr;
            self.wire.push_back((from, self.gw_addr, d));
        }
    }

    /// What facility `i` would put on the wire for `packet`, without sending it.
    fn fac_seal(&mut self, i: usize, packet: &[u8]) -> Option<Vec<u8>> {
        clock::sync(self.now);
        let mut buf = vec![0u8; BUF_SIZE];
        match owned(self.facs[i].tunn.encapsulate(packet, &mut buf)) {
            Owned::Net(d) => Some(d),
            Owned::Done => None,
            Owned::Inner(_) => panic!("encapsulate gave an inner packet"),
            Owned::Err(e) => panic!("facility {i} encapsulate: {e}"),
        }
    }

    fn fac_receive(&mut self, i: usize, from: SocketAddr, datagram: &[u8]) {
        clock::sync(self.now);
        let mut buf = vec![0u8; BUF_SIZE];
        let fac = &mut self.facs[i];
        match owned(fac.tunn.decapsulate(Some(from.ip()), datagram, &mut buf)) {
            Owned::Net(d) => {
                self.wire.push_back((fac.addr, self.gw_addr, d));
                while let Owned::Net(d) = owned(fac.tunn.decapsulate(None, &[], &mut buf)) {
                    self.wire.push_back((fac.addr, self.gw_addr, d));
                }
            }
            Owned::Inner(p) => fac.received.push(p),
            Owned::Done if msg_type(datagram) == 4 => fac.keepalives += 1,
            Owned::Done => {}
            Owned::Err(e) => fac.errors.push(e),
        }
    }

    /// Delivers everything in flight, and what that provokes, until the wire is quiet.
    fn deliver(&mut self) {
        let mut budget = 100_000;
        while let Some((from, to, bytes)) = self.wire.pop_front() {
            budget -= 1;
            assert!(budget > 0, "datagrams ping-pong forever");
            if to == self.gw_addr {
                let _ = self.gw_receive(from, &bytes);
            } else if let Some(i) = self.facs.iter().position(|f| f.addr == to) {
                self.fac_receive(i, from, &bytes);
            }
        }
    }

    /// One timer tick: the clock moves on, everyone's timers run, the wire drains.
    fn tick(&mut self) {
        self.now += TICK;
        if self.gw.poll_timeout().is_some_and(|t| t <= self.now) {
            self.gw.update_timers(self.now, &mut self.tx);
            self.count_events();
            self.collect();
        }
        clock::sync(self.now);
        let mut buf = vec![0u8; BUF_SIZE];
        for fac in &mut self.facs {
            if let Owned::Net(d) = owned(fac.tunn.update_timers(&mut buf)) {
                self.wire.push_back((fac.addr, self.gw_addr, d));
            }
        }
        self.deliver();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now + TICK <= end {
            self.tick();
        }
    }

    /// Facility `i` starts a handshake by sending `packet`; the packet arrives after it.
    fn facility_handshake(&mut self, i: usize, packet: &[u8]) {
        self.fac_send(i, packet);
        self.deliver();
    }

    fn elapsed(&self, at: Instant) -> Duration {
        at - self.start
    }
}

#[test]
fn facility_initiated_handshake_and_data_both_ways() {
    let mut p = Pair::new(2, |_, _| {});
    let p1 = ipv4(1, 9, b"from facility 0");
    assert_eq!(p.gw.poll_timeout(), Some(p.start));

    p.facility_handshake(0, &p1);

    assert_eq!(p.gw_rx, vec![(PeerId(0), p1.clone())]);
    assert_eq!(p.handshakes(HandshakeResult::Ok), 1);
    assert_eq!(p.counters.last_handshake(0), Some(p.start));
    assert_eq!(p.gw.peer_endpoint(PeerId(0)), Some(fac_addr(0, 51820)));
    assert!(p.gw.peer_session_established(PeerId(0)));
    assert!(!p.gw.peer_session_established(PeerId(1)));
    let response = &p.gw_sent[0];
    assert_eq!((msg_type(&response.bytes), response.bytes.len()), (2, 92));
    assert_eq!(response.to, fac_addr(0, 51820));

    let r1 = ipv4(9, 1, b"reply from the gateway");
    assert_eq!(p.gw_send(PeerId(0), &r1), Ok(()));
    p.deliver();
    assert_eq!(p.facs[0].received, vec![r1]);

    // The other peer has no session and no endpoint yet.
    assert_eq!(
        p.gw_send(PeerId(1), &ipv4(9, 2, b"x")),
        Err(DropReason::NoEndpoint)
    );
    assert_eq!(p.gw_send(PeerId(9), b"x"), Err(DropReason::NoRoute));

    let p2 = ipv4(2, 9, b"from facility 1");
    p.facility_handshake(1, &p2);
    assert_eq!(p.gw_rx.last(), Some(&(PeerId(1), p2)));
    assert_eq!(p.handshakes(HandshakeResult::Ok), 2);

    // A data message delivered twice is a replay.
    let d = p.fac_seal(0, &ipv4(1, 9, b"once")).unwrap();
    assert!(matches!(
        p.gw_receive(fac_addr(0, 51820), &d),
        Ok(Some((PeerId(0), _)))
    ));
    assert_eq!(
        p.gw_receive(fac_addr(0, 51820), &d),
        Err(DropReason::WgReplay)
    );
    assert!(p.facs.iter().all(|f| f.errors.is_empty()));
}

#[test]
fn gateway_initiates_to_configured_endpoint() {
    let mut p = Pair::new(2, |i, c| {
        if i == 1 {
            c.endpoint = Some(fac_addr(1, 51820));
        }
    });
    let packet = ipv4(9, 2, b"gateway speaks first");

    assert_eq!(p.gw_send(PeerId(1), &packet), Ok(()));

    assert_eq!(p.gw_sent.len(), 1);
    let init = p.gw_sent[0].clone();
    assert_eq!((msg_type(&init.bytes), init.bytes.len()), (1, 148));
    assert_eq!(init.to, fac_addr(1, 51820));
    let sender = u32::from_le_bytes(init.bytes[4..8].try_into().unwrap());
    assert_eq!(sender >> 8, 1, "slot 1 is the peer's boringtun index");
    assert_eq!(p.handshakes(HandshakeResult::Ok), 0);

    p.deliver();

    assert_eq!(p.facs[1].received, vec![packet]);
    assert_eq!(p.handshakes(HandshakeResult::Ok), 1);
    assert_eq!(p.counters.last_handshake(1), Some(p.start));
    assert!(p.gw.peer_session_established(PeerId(1)));

    let back = ipv4(2, 9, b"answer");
    p.fac_send(1, &back);
    p.deliver();
    assert_eq!(p.gw_rx, vec![(PeerId(1), back)]);
}

/// Data flows every second for 150 s in both directions; the session's initiator rekeys after
/// REKEY_AFTER_TIME (120 s) without losing a packet.
fn rekey(gateway_initiates: bool) {
    let mut p = Pair::new(1, |_, c| c.endpoint = Some(fac_addr(0, 51820)));
    if gateway_initiates {
        p.gw_send(PeerId(0), &ipv4(9, 1, b"hello")).unwrap();
        p.deliver();
    } else {
        p.facility_handshake(0, &ipv4(1, 9, b"hello"));
    }
    assert_eq!(p.handshakes(HandshakeResult::Ok), 1);
    let (mut up, mut down) = (0usize, 0usize);
    let mut last_ok = 1;
    let mut rekeyed_at = None;
    for second in 1..=150u32 {
        p.advance(Duration::from_secs(1));
        p.fac_send(0, &ipv4(1, 9, &second.to_be_bytes()));
        p.gw_send(PeerId(0), &ipv4(9, 1, &second.to_be_bytes()))
            .unwrap();
        up += 1;
        down += 1;
        p.deliver();
        let ok = p.handshakes(HandshakeResult::Ok);
        if ok > last_ok {
            rekeyed_at.get_or_insert(second);
            last_ok = ok;
        }
    }
    let rekeyed_at = rekeyed_at.expect("no rekey");
    assert!(
        (120..=122).contains(&rekeyed_at),
        "rekeyed at {rekeyed_at} s"
    );
    assert_eq!(p.handshakes(HandshakeResult::Ok), 2);
    let last = p.counters.last_handshake(0).unwrap();
    assert!(p.elapsed(last) >= Duration::from_secs(120));
    // Every data packet arrived, including those around the rekey.
    assert_eq!(p.gw_rx.len(), up + usize::from(!gateway_initiates));
    assert_eq!(
        p.facs[0].received.len(),
        down + usize::from(gateway_initiates)
    );
    assert!(p.gw_drops.is_empty(), "{:?}", p.gw_drops);
    assert!(p.facs[0].errors.is_empty(), "{:?}", p.facs[0].errors);
}

#[test]
fn rekey_after_two_minutes_facility_initiator() {
    rekey(false);
}

#[test]
fn rekey_after_two_minutes_gateway_initiator() {
    rekey(true);
}

/// Keepalives the gateway sent to `to`: data messages with an empty payload.
fn keepalive_times(p: &Pair, to: SocketAddr) -> Vec<Duration> {
    p.gw_sent
        .iter()
        .filter(|s| s.to == to && msg_type(&s.bytes) == 4 && s.bytes.len() == 32)
        .map(|s| p.elapsed(s.at))
        .collect()
}

#[test]
fn persistent_keepalive_at_configured_interval() {
    let mut p = Pair::new(2, |i, c| {
        if i == 0 {
            c.persistent_keepalive = Some(25);
        }
    });
    p.facility_handshake(0, &ipv4(1, 9, b"up"));
    p.facility_handshake(1, &ipv4(2, 9, b"up"));

    p.advance(Duration::from_secs(110));

    let times = keepalive_times(&p, fac_addr(0, 51820));
    assert!(times.len() >= 3, "{times:?}");
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_secs(25) && gap <= Duration::from_millis(25_500),
            "{times:?}"
        );
    }
    assert_eq!(p.facs[0].keepalives, times.len());
    // No persistent keepalive configured for peer 1, and nothing to answer.
    assert!(keepalive_times(&p, fac_addr(1, 51820)).is_empty());
}

#[test]
fn passive_keepalive_ten_seconds_after_data_with_nothing_to_send() {
    let mut p = Pair::new(1, |_, _| {});
    p.facility_handshake(0, &ipv4(1, 9, b"up"));
    // "up" arrived in the tick the handshake response left: nothing owed.
    p.advance(Duration::from_secs(5));
    assert!(keepalive_times(&p, fac_addr(0, 51820)).is_empty());

    // The gateway sends; the facility answers a tick later; then the gateway has nothing to
    // say. boringtun counts KEEPALIVE_TIMEOUT from the last packet it sent, so the keepalive
    // leaves 10 s after the ping, just under 10 s after the answer.
    p.gw_send(PeerId(0), &ipv4(9, 1, b"ping")).unwrap();
    p.deliver();
    let sent_at = p.elapsed(p.now);
    p.tick();
    p.fac_send(0, &ipv4(1, 9, b"pong"));
    p.deliver();
    let received_at = p.elapsed(p.now);
    assert_eq!(p.gw_rx.last().map(|r| r.0), Some(PeerId(0)));

    p.advance(Duration::from_secs(20));

    let times = keepalive_times(&p, fac_addr(0, 51820));
    assert_eq!(times.len(), 1, "{times:?}");
    let after = times[0] - sent_at;
    assert!(
        after >= Duration::from_secs(10) && after <= Duration::from_millis(10_500),
        "keepalive {after:?} after the last packet sent"
    );
    assert!(times[0] - received_at >= Duration::from_millis(9_500));
    assert_eq!(p.facs[0].keepalives, 1);
    // The keepalive answered the facility's data, so it does not re-handshake.
    assert_eq!(p.handshakes(HandshakeResult::Ok), 1);
}

#[test]
fn initiation_from_unknown_key_is_refused() {
    let mut p = Pair::new(1, |_, _| {});
    let stranger_addr = fac_addr(5, 40000);
    let mut stranger = Facility::new([0x7f; 32], p.gw.public_key(), 0x2000, stranger_addr);
    clock::sync(p.now);
    let mut buf = vec![0u8; BUF_SIZE];
    let Owned::Net(init) = owned(
        stranger
            .tunn
            .encapsulate(&ipv4(5, 9, b"let me in"), &mut buf),
    ) else {
        panic!("no initiation")
    };

    assert_eq!(
        p.gw_receive(stranger_addr, &init),
        Err(DropReason::WgUnknownPeer)
    );

    assert_eq!(p.handshakes(HandshakeResult::UnknownPeer), 1);
    assert_eq!(p.handshakes(HandshakeResult::Ok), 0);
    assert!(p.gw_sent.is_empty());
}

/// A small deterministic generator for garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_is_dropped_with_a_reason() {
    let mut p = Pair::new(2, |_, _| {});
    p.facility_handshake(0, &ipv4(1, 9, b"up"));
    let from = fac_addr(3, 9999);
    let data = |receiver: u32, len: usize| {
        let mut d = vec![0xa5u8; len];
        d[..4].copy_from_slice(&[4, 0, 0, 0]);
        d[4..8].copy_from_slice(&receiver.to_le_bytes());
        d
    };
    let mut cookie = vec![0u8; 64];
    cookie[0] = 3;
    let mut bad_init = vec![0x11u8; 148];
    bad_init[..4].copy_from_slice(&[1, 0, 0, 0]);
    let mut bad_response = vec![0x22u8; 92];
    bad_response[..4].copy_from_slice(&[2, 0, 0, 0]);
    let mut init_reserved = bad_init.clone();
    init_reserved[1] = 1;

    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("empty", vec![], DropReason::WgMalformed),
        ("type only", vec![4, 0, 0, 0], DropReason::WgMalformed),
        ("unknown type", vec![9; 64], DropReason::WgMalformed),
        ("reserved bytes set", init_reserved, DropReason::WgMalformed),
        ("short data", data(1, 31), DropReason::WgMalformed),
        (
            "initiation of wrong length",
            vec![1, 0, 0, 0, 0],
            DropReason::WgMalformed,
        ),
        ("initiation with bad MAC1", bad_init, DropReason::WgAuth),
        ("response with bad MAC1", bad_response, DropReason::WgAuth),
        (
            "data for an unused slot",
            data(40 << 8 | 1, 64),
            DropReason::WgUnknownIndex,
        ),
        (
            "data for a slot's idle session",
            data(5, 64),
            DropReason::WgUnknownIndex,
        ),
        ("data with a forged tag", data(1, 64), DropReason::WgAuth),
        (
            "cookie reply for an unused slot",
            cookie.clone(),
            DropReason::WgUnknownIndex,
        ),
    ];
    for (name, datagram, reason) in &cases {
        assert_eq!(p.gw_receive(from, datagram), Err(*reason), "{name}");
    }
    assert_eq!(p.handshakes(HandshakeResult::Invalid), 2);

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = (rng.next() % 200) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 4 && rng.next() % 4 != 0 {
            d[..4].copy_from_slice(&[(rng.next() % 5) as u8, 0, 0, 0]);
        }
        if len >= 8 && rng.next() % 2 == 0 {
            d[4..8].copy_from_slice(&((rng.next() % 3) as u32).to_le_bytes());
        }
        assert!(p.gw_receive(from, &d).is_err(), "{d:02x?}");
    }

    // Nothing was answered, nothing roamed, the session still works.
    assert_eq!(p.gw_sent.len(), 1, "only the handshake response");
    assert_eq!(p.gw.peer_endpoint(PeerId(0)), Some(fac_addr(0, 51820)));
    let after = ipv4(1, 9, b"still here");
    p.fac_send(0, &after);
    p.deliver();
    assert_eq!(p.gw_rx.last(), Some(&(PeerId(0), after)));
}

#[test]
fn set_peers_keeps_unchanged_sessions() {
    let mut p = Pair::new(3, |_, _| {});
    for i in 0..3 {
        p.facility_handshake(i, &ipv4(i as u8, 9, b"up"));
    }
    assert_eq!(p.handshakes(HandshakeResult::Ok), 3);
    let sent_before = p.gw_sent.len();

    // Same plan again, but renumbered.
    let mut renumbered = p.configs.clone();
    for c in &mut renumbered {
        c.id = PeerId(c.id.0 + 10);
    }
    p.set_peers(renumbered);

    assert!(p.gw.peer_session_established(PeerId(10)));
    assert!(!p.gw.peer_session_established(PeerId(0)));
    let up = ipv4(1, 9, b"after reload");
    p.fac_send(1, &up);
    p.deliver();
    assert_eq!(p.gw_rx.last(), Some(&(PeerId(11), up)));
    let down = ipv4(9, 2, b"down after reload");
    assert_eq!(p.gw_send(PeerId(12), &down), Ok(()));
    assert_eq!(
        msg_type(&p.gw_sent.last().unwrap().bytes),
        4,
        "data, no initiation"
    );
    p.deliver();
    assert_eq!(p.facs[2].received.last(), Some(&down));
    assert_eq!(p.handshakes(HandshakeResult::Ok), 3);
    assert_eq!(p.gw_sent.len(), sent_before + 1);

    // Peer 11 gets a new key (a re-keyed facility router) and peer 12 a new keepalive; peer
    // 10 is unchanged.
    let mut changed = p.configs.clone();
    changed[1].public_key = keys::public_key(&[0x7e; 32]);
    changed[2].persistent_keepalive = Some(15);
    p.set_peers(changed);

    assert!(p.gw.peer_session_established(PeerId(10)));
    assert!(!p.gw.peer_session_established(PeerId(11)));
    assert!(!p.gw.peer_session_established(PeerId(12)));
    let stale = p.fac_seal(1, &ipv4(1, 9, b"old key")).unwrap();
    assert_eq!(
        p.gw_receive(fac_addr(1, 51820), &stale),
        Err(DropReason::WgUnknownIndex)
    );
    let from0 = ipv4(0, 9, b"unchanged peer");
    p.fac_send(0, &from0);
    p.deliver();
    assert_eq!(p.gw_rx.last(), Some(&(PeerId(10), from0)));

    // The facility behind peer 12 handshakes again with the new tunnel.
    p.facs[2].tunn = Tunn::new(
        StaticSecret::from(fac_private(2)),
        PublicKey::from(p.gw.public_key()),
        Some(PSK),
        None,
        0x3000,
        None,
    );
    p.facility_handshake(2, &ipv4(2, 9, b"again"));
    assert_eq!(p.handshakes(HandshakeResult::Ok), 4);
    assert_eq!(p.gw_rx.last().map(|r| r.0), Some(PeerId(12)));

    // Removing a peer frees its slot; the next new peer takes it.
    let mut removed = p.configs.clone();
    removed.remove(1);
    p.set_peers(removed.clone());
    assert_eq!(
        p.gw.peers().collect::<Vec<_>>(),
        vec![PeerId(10), PeerId(12)]
    );
    removed.push(WgPeerConfig {
        id: PeerId(13),
        public_key: keys::public_key(&fac_private(1)),
        preshared_key: Some(PSK),
        persistent_keepalive: None,
        endpoint: None,
    });
    p.set_peers(removed);
    assert_eq!(
        p.gw.peers().collect::<Vec<_>>(),
        vec![PeerId(10), PeerId(13), PeerId(12)]
    );
    p.facs[1].tunn = Tunn::new(
        StaticSecret::from(fac_private(1)),
        PublicKey::from(p.gw.public_key()),
        Some(PSK),
        None,
        0x3001,
        None,
    );
    p.facility_handshake(1, &ipv4(1, 9, b"back"));
    assert_eq!(p.gw_rx.last().map(|r| r.0), Some(PeerId(13)));
    let response = p
        .gw_sent
        .iter()
        .rev()
        .find(|s| msg_type(&s.bytes) == 2)
        .unwrap();
    let sender = u32::from_le_bytes(response.bytes[4..8].try_into().unwrap());
    assert_eq!(sender >> 8, 1, "the freed slot 1 was reused");
}

#[test]
fn endpoint_follows_the_authenticated_peer() {
    let mut p = Pair::new(1, |_, _| {});
    p.facility_handshake(0, &ipv4(1, 9, b"up"));
    assert_eq!(p.gw.peer_endpoint(PeerId(0)), Some(fac_addr(0, 51820)));

    // A forged datagram and a replayed genuine one from elsewhere move nothing.
    let genuine = p.fac_seal(0, &ipv4(1, 9, b"genuine")).unwrap();
    let unsent = p.fac_seal(0, &ipv4(1, 9, b"never sent")).unwrap();
    assert!(p.gw_receive(fac_addr(0, 51820), &genuine).is_ok());
    let attacker = fac_addr(6, 6666);
    assert_eq!(p.gw_receive(attacker, &genuine), Err(DropReason::WgReplay));
    let mut forged = unsent;
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(p.gw_receive(attacker, &forged), Err(DropReason::WgAuth));
    assert_eq!(p.gw.peer_endpoint(PeerId(0)), Some(fac_addr(0, 51820)));

    // The facility's NAT binding changes.
    let roamed = fac_addr(0, 61000);
    p.facs[0].addr = roamed;
    let moved = ipv4(1, 9, b"from a new port");
    p.fac_send(0, &moved);
    p.deliver();
    assert_eq!(p.gw_rx.last(), Some(&(PeerId(0), moved)));
    assert_eq!(p.gw.peer_endpoint(PeerId(0)), Some(roamed));

    let reply = ipv4(9, 1, b"to the new port");
    p.gw_send(PeerId(0), &reply).unwrap();
    assert_eq!(p.gw_sent.last().unwrap().to, roamed);
    p.deliver();
    assert_eq!(p.facs[0].received.last(), Some(&reply));
}

/// Under load (here: from 4 handshakes waiting), an initiation without a valid cookie MAC
/// gets a cookie reply; the facility's next initiation carries MAC2, waits its turn and is
/// answered.
#[test]
fn cookie_reply_under_load_then_handshake_with_mac2() {
    let mut p = Pair::new(1, |_, _| {});
    p.gw.set_handshake_limits(HandshakeLimits {
        backlog: 8,
        under_load: 4,
    });
    let from = fac_addr(0, 51820);
    let mut buf = vec![0u8; BUF_SIZE];
    let mut initiation = |p: &mut Pair| {
        // Each initiation needs a newer timestamp.
        p.now += Duration::from_millis(1);
        clock::sync(p.now);
        let Owned::Net(init) = owned(p.facs[0].tunn.format_handshake_initiation(&mut buf, true))
        else {
            panic!("no initiation")
        };
        init
    };
    // Four wait (nobody answers them yet): the attachment is under load.
    for _ in 0..4 {
        let init = initiation(&mut p);
        let r =
            p.gw.handle_datagram(p.now, from, &init, &mut p.inner, &mut p.tx);
        assert_eq!(r, Ok(None));
    }
    assert!(p.gw.under_load(p.now));
    let init = initiation(&mut p);
    assert_eq!(p.gw_receive(from, &init), Err(DropReason::WgUnderLoad));
    let cookie = p.gw_sent.last().cloned().expect("a cookie reply");
    assert_eq!((msg_type(&cookie.bytes), cookie.bytes.len()), (3, 64));
    assert_eq!(cookie.to, from);
    assert_eq!(p.handshakes(HandshakeResult::CookieSent), 1);
    // The waiting ones are answered meanwhile (the first, the others are replays).
    p.gw.answer_handshakes(p.now, 8, &mut p.tx);
    p.count_events();
    p.collect();
    assert_eq!(p.gw.handshake_backlog(), 0);
    let ok_before = p.handshakes(HandshakeResult::Ok);

    // Still under load for UNDER_LOAD_HOLD: the facility takes the cookie; its next
    // initiation carries MAC2 and is answered.
    assert!(p.gw.under_load(p.now));
    p.wire.clear();
    p.fac_receive(0, p.gw_addr, &cookie.bytes);
    assert!(p.facs[0].errors.is_empty(), "{:?}", p.facs[0].errors);
    let init = initiation(&mut p);
    assert_eq!(p.gw_receive(from, &init), Ok(None));
    assert_eq!(p.handshakes(HandshakeResult::Ok), ok_before + 1);
    assert_eq!(msg_type(&p.gw_sent.last().unwrap().bytes), 2);
}

#[test]
fn handshake_attempts_give_up_as_timeout() {
    let mut p = Pair::new(1, |_, c| {
        c.endpoint = Some("198.51.100.99:51820".parse().unwrap())
    });
    p.gw_send(PeerId(0), &ipv4(9, 1, b"nobody there")).unwrap();
    p.advance(Duration::from_secs(100));
    let inits = p.gw_sent.iter().filter(|s| msg_type(&s.bytes) == 1).count();
    // REKEY_TIMEOUT (5 s) retransmissions until REKEY_ATTEMPT_TIME (90 s).
    assert!((17..=19).contains(&inits), "{inits} initiations");
    assert_eq!(p.handshakes(HandshakeResult::Timeout), 1);
    p.advance(Duration::from_secs(600));
    assert_eq!(p.handshakes(HandshakeResult::Timeout), 1, "counted once");
}

#[test]
fn queued_packets_follow_the_handshake_even_through_a_small_batch() {
    let mut p = Pair::new(1, |_, c| c.endpoint = Some(fac_addr(0, 51820)));
    p.tx = TxBatch::new(3);
    let packets: Vec<_> = (0..10u8).map(|n| ipv4(9, 1, &[n; 8])).collect();
    for packet in &packets {
        assert_eq!(p.gw_send(PeerId(0), packet), Ok(()));
    }
    assert_eq!(p.gw_sent.len(), 1, "one initiation, ten packets queued");

    p.deliver();
    // The response's keepalive and two queued packets fit; the rest wait for the timers.
    assert_eq!(p.facs[0].received, packets[..2].to_vec());
    p.advance(Duration::from_secs(2));

    assert_eq!(p.facs[0].received, packets);
    assert_eq!(p.counters.drop_count(DropReason::TxQueueFull), 0);
}

#[test]
fn handshake_response_lost_to_a_full_batch_is_counted() {
    let mut p = Pair::new(1, |_, _| {});
    p.tx = TxBatch::new(1);
    let filler = p.tx.next_buf().unwrap();
    filler[0] = 0xff;
    p.tx.commit(ATTACHMENT, Via::udp(0, fac_addr(9, 1)), 1);
    let init = p.fac_seal(0, &ipv4(1, 9, b"up")).unwrap();

    let r =
        p.gw.handle_datagram(p.now, fac_addr(0, 51820), &init, &mut p.inner, &mut p.tx);
    p.gw.answer_handshakes(p.now, HANDSHAKES_PER_BATCH, &mut p.tx);
    p.count_events();

    assert_eq!(r, Ok(None));
    assert_eq!(p.tx.len(), 1, "nothing added");
    assert_eq!(p.counters.drop_count(DropReason::TxQueueFull), 1);
    // The facility retransmits after REKEY_TIMEOUT and gets its answer then.
    p.tx = TxBatch::new(8);
    p.advance(Duration::from_secs(6));
    assert_eq!(p.gw_rx.len(), 1);
    assert_eq!(p.facs[0].received.len(), 0);
    assert!(p.gw.peer_session_established(PeerId(0)));
}

#[test]
fn packets_waiting_for_a_handshake_are_accounted_for() {
    let mut p = Pair::new(2, |_, c| {
        c.endpoint = Some("198.51.100.99:51820".parse().unwrap())
    });
    // boringtun holds 256 packets per peer while the handshake is pending, keepalives
    // included; the gateway stops short of that and refuses the rest itself, so that none is
    // lost silently.
    let limit = ixgw::tunnel::wireguard::queue_limit(None);
    assert!((200..256).contains(&limit));
    for n in 0..300u16 {
        let r = p.gw_send(PeerId(0), &ipv4(9, 1, &n.to_be_bytes()));
        if usize::from(n) < limit {
            assert_eq!(r, Ok(()), "packet {n} waits for the handshake");
        } else {
            assert_eq!(
                r,
                Err(DropReason::NoSession),
                "packet {n} exceeds the queue"
            );
        }
    }
    assert_eq!(p.gw.queued(), limit);
    assert_eq!(
        p.counters.drop_count(DropReason::NoSession),
        0,
        "the caller counts refusals"
    );

    // Nobody answers: when boringtun gives up it empties the queue, and those are counted.
    p.advance(Duration::from_secs(100));
    assert_eq!(p.handshakes(HandshakeResult::Timeout), 1);
    assert_eq!(p.counters.drop_count(DropReason::NoSession), limit as u64);
    assert_eq!(p.gw.queued(), 0);

    // A reload that replaces a peer with queued packets reports them lost.
    for _ in 0..5 {
        p.gw_send(PeerId(1), &ipv4(9, 2, b"q")).unwrap();
    }
    let mut configs = p.configs.clone();
    configs[1].public_key = keys::public_key(&[0x77; 32]);
    assert_eq!(p.gw.set_peers(&configs, p.now), 5);
}

#[test]
fn keepalives_queued_without_a_session_do_not_hide_a_loss() {
    // A 25 s persistent keepalive towards an endpoint nobody answers at: boringtun queues the
    // keepalive (an empty packet) with the handshake it starts.
    let mut p = Pair::new(1, |_, c| {
        c.persistent_keepalive = Some(25);
        c.endpoint = Some("198.51.100.99:51820".parse().unwrap());
    });
    p.advance(Duration::from_secs(26));
    let limit = ixgw::tunnel::wireguard::queue_limit(Some(25));
    let sent: Vec<_> = (0..limit as u16)
        .map(|n| ipv4(9, 1, &n.to_be_bytes()))
        .collect();
    for packet in &sent {
        assert_eq!(p.gw_send(PeerId(0), packet), Ok(()));
    }
    assert_eq!(
        p.gw_send(PeerId(0), &ipv4(9, 1, b"over")),
        Err(DropReason::NoSession)
    );
    // The facility turns up: every packet the gateway accepted arrives.
    let mut configs = p.configs.clone();
    configs[0].endpoint = Some(fac_addr(0, 51820));
    p.set_peers(configs);
    p.advance(Duration::from_secs(10));
    let got = p.facs[0]
        .received
        .iter()
        .filter(|r| sent.contains(r))
        .count();
    assert_eq!(got, sent.len(), "accepted packets all arrive");
    assert_eq!(p.gw.queued(), 0);
}
