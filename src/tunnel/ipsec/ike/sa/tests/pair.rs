//! An initiator and a responder engine joined in memory, with virtual time (quinn's
//! `tests/util.rs` `Pair`): datagrams move between them, optionally lost, duplicated,
//! reordered or translated by a NAT in front of A, and timers run as `advance` moves the
//! clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;
use zeroize::Zeroizing;

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::ids::PeerId;

use super::super::{
    DpdAction, EspProposal, Identity, IkeConfig, IkeEngine, IkeEvent, IkePeerConfig, IkeProposal,
    Limits, PeerAuth, SpiClass, Start, Transmit,
};

pub(crate) const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(crate) const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A's address as B sees it behind the NAT.
pub(crate) const NAT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
pub(crate) const PEER_OF_A: PeerId = PeerId(1);
pub(crate) const PEER_OF_B: PeerId = PeerId(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

/// What happens to one datagram in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Deliver,
    Drop,
    Duplicate,
}

/// A datagram on the wire: sender side, source as the receiver sees it, destination port.
#[derive(Debug, Clone)]
pub(crate) struct Wire {
    pub from: SocketAddr,
    pub to_port: u16,
    pub data: Vec<u8>,
}

type Filter = Box<dyn FnMut(Side, &Transmit) -> Fate>;

pub(crate) struct Pair {
    pub now: Instant,
    pub a: IkeEngine,
    pub b: IkeEngine,
    pub a_events: Vec<IkeEvent>,
    pub b_events: Vec<IkeEvent>,
    /// Decides each datagram's fate; deliver all by default.
    pub filter: Filter,
    /// Translate A's source address (and port + `nat_port`) on the way to B.
    pub nat: bool,
    /// What the NAT adds to A's port (10000; change it for a new mapping).
    pub nat_port: u16,
    /// Deliver the datagrams of one round in reverse order.
    pub reorder: bool,
    /// Every datagram sent, for inspection.
    pub log: Vec<(Instant, Side, Transmit)>,
}

/// The inbound SPIs of the CHILD SAs `events` report gone, in order.
pub(crate) fn child_downs(events: &[IkeEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            IkeEvent::ChildSaDown { inbound_spi, .. } => Some(*inbound_spi),
            _ => None,
        })
        .collect()
}

pub(crate) fn net(s: &str) -> Ipv4Network {
    s.parse().unwrap()
}

pub(crate) fn ike_proposal(
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    prf: PrfAlg,
    dh: DhGroup,
) -> IkeProposal {
    IkeProposal {
        encr: vec![encr],
        integ: integ.into_iter().collect(),
        prf: vec![prf],
        dh: vec![dh],
    }
}

pub(crate) fn esp_proposal(encr: EncrAlg, integ: Option<IntegAlg>) -> EspProposal {
    EspProposal {
        encr: vec![encr],
        integ: integ.into_iter().collect(),
        dh: vec![],
        esn: false,
    }
}

/// The default peer: PSK, GCM-256 / SHA-256 / ECP-256, ESP GCM-128.
pub(crate) fn peer(
    peer: PeerId,
    remote_id: &str,
    endpoint: Option<SocketAddr>,
    local: &str,
    remote: &str,
) -> IkePeerConfig {
    IkePeerConfig {
        peer,
        remote_id: Identity::fqdn(remote_id),
        auth: PeerAuth::Psk(Zeroizing::new(b"correct horse battery staple".to_vec())),
        local_ts: vec![net(local)],
        remote_ts: vec![net(remote)],
        ike_proposals: vec![ike_proposal(
            EncrAlg::AesGcm16_256,
            None,
            PrfAlg::HmacSha256,
            DhGroup::Ecp256,
        )],
        esp_proposals: vec![esp_proposal(EncrAlg::AesGcm16_128, None)],
        start: Start::Initiate,
        endpoint,
        ike_rekey: Duration::from_secs(4 * 3600),
        child_rekey: Duration::from_secs(3600),
        child_rekey_bytes: None,
        dpd_interval: Duration::from_secs(30),
        dpd_timeout: Duration::from_secs(150),
        dpd_action: DpdAction::Restart,
        spi_class: SpiClass::ANY,
    }
}

/// A initiates to B: A is gw-a.lab with 10.1.0.0/16, B is gw-b.lab with 10.2.0.0/16.
pub(crate) fn configs() -> (IkeConfig, IkeConfig) {
    let a = IkeConfig {
        local_id: Identity::fqdn("gw-a.lab"),
        local_addr: IpAddr::V4(A_IP),
        local_ports: [500, 4500],
        force_udp_encap: false,
        peers: vec![peer(
            PEER_OF_A,
            "gw-b.lab",
            Some(SocketAddr::from((B_IP, 500))),
            "10.1.0.0/16",
            "10.2.0.0/16",
        )],
        limits: Limits::default(),
    };
    let mut pb = peer(
        PEER_OF_B,
        "gw-a.lab",
        Some(SocketAddr::from((A_IP, 500))),
        "10.2.0.0/16",
        "10.1.0.0/16",
    );
    pb.start = Start::Respond;
    let b = IkeConfig {
        local_id: Identity::fqdn("gw-b.lab"),
        local_addr: IpAddr::V4(B_IP),
        local_ports: [500, 4500],
        force_udp_encap: false,
        peers: vec![pb],
        limits: Limits::default(),
    };
    (a, b)
}

impl Pair {
    pub(crate) fn new(a: IkeConfig, b: IkeConfig) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            a: IkeEngine::new(a, now),
            b: IkeEngine::new(b, now),
            a_events: Vec::new(),
            b_events: Vec::new(),
            filter: Box::new(|_, _| Fate::Deliver),
            nat: false,
            nat_port: 10000,
            reorder: false,
            log: Vec::new(),
        }
    }

    pub(crate) fn default_pair() -> Pair {
        let (a, b) = configs();
        Pair::new(a, b)
    }

    fn collect(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
    }

    /// Takes what both sent, through the filter and the NAT.
    fn take_wire(&mut self) -> Vec<(Side, Wire)> {
        let mut out = Vec::new();
        for side in [Side::A, Side::B] {
            loop {
                let t = match side {
                    Side::A => self.a.poll_transmit(),
                    Side::B => self.b.poll_transmit(),
                };
                let Some(t) = t else { break };
                self.log.push((self.now, side, t.clone()));
                let fate = (self.filter)(side, &t);
                let Some(w) = self.route(side, &t) else {
                    continue;
                };
                match fate {
                    Fate::Deliver => out.push((side, w)),
                    Fate::Drop => {}
                    Fate::Duplicate => {
                        out.push((side, w.clone()));
                        out.push((side, w));
                    }
                }
            }
        }
        if self.reorder {
            out.reverse();
        }
        out
    }

    /// Where a datagram from `side` arrives, as the receiver sees its source.
    fn route(&self, side: Side, t: &Transmit) -> Option<Wire> {
        match side {
            Side::A => {
                if t.to.ip() != IpAddr::V4(B_IP) {
                    return None;
                }
                let from = if self.nat {
                    SocketAddr::from((NAT_IP, t.from_port + self.nat_port))
                } else {
                    SocketAddr::from((A_IP, t.from_port))
                };
                Some(Wire {
                    from,
                    to_port: t.to.port(),
                    data: t.data.clone(),
                })
            }
            Side::B => {
                let to_port = match t.to.ip() {
                    ip if ip == IpAddr::V4(A_IP) && !self.nat => t.to.port(),
                    // The NAT has mappings of A's two ports only.
                    ip if ip == IpAddr::V4(NAT_IP) && self.nat => {
                        t.to.port()
                            .checked_sub(self.nat_port)
                            .filter(|p| [500, 4500].contains(p))?
                    }
                    _ => return None,
                };
                let from = SocketAddr::from((B_IP, t.from_port));
                Some(Wire {
                    from,
                    to_port,
                    data: t.data.clone(),
                })
            }
        }
    }

    /// Delivers datagrams until both are quiet (bounded).
    pub(crate) fn drive(&mut self) {
        for _ in 0..100 {
            self.collect();
            let wire = self.take_wire();
            if wire.is_empty() {
                break;
            }
            for (side, w) in wire {
                match side {
                    Side::A => self.b.handle_datagram(self.now, w.to_port, w.from, &w.data),
                    Side::B => self.a.handle_datagram(self.now, w.to_port, w.from, &w.data),
                }
            }
        }
        self.collect();
    }

    /// Moves time forward by `d`, running every timer due on the way.
    pub(crate) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.drive();
        for _ in 0..100_000 {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    // Every due timer was handled: nothing left in the past (no busy loop).
                    for e in [&self.a, &self.b] {
                        assert!(
                            e.poll_timeout().is_none_or(|t| t > self.now),
                            "a timer stuck in the past"
                        );
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.drive();
    }

    /// Runs the start timers and the handshake.
    pub(crate) fn connect(&mut self) {
        self.advance(Duration::ZERO);
    }
}
