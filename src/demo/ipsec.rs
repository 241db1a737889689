//! A facility's IPsec router made of ixgw's own IKEv2 engine and ESP SAs, on two UDP sockets
//! of its own (its "500" and "4500"): the demo's IPsec facility, and the other end of the
//! loopback end-to-end test. It initiates with a pre-shared key and carries ESP in UDP.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;

use crate::crypto::{DhGroup, EncrAlg, PrfAlg, SystemRandom};
use crate::ids::PeerId;
use crate::tunnel::ipsec::esp::{Decap, InboundSa, OutboundSa};
use crate::tunnel::ipsec::ike::sa::{
    DpdAction, EspProposal, Identity, IkeConfig, IkeEngine, IkeEvent, IkePeerConfig, IkeProposal,
    Limits, PeerAuth, SpiClass, Start,
};

/// Where the gateway's IPsec attachment listens.
#[derive(Debug, Clone, Copy)]
pub struct GatewayPorts {
    pub ip: Ipv4Addr,
    pub ike: u16,
    pub nat_t: u16,
}

/// What a facility is configured with.
#[derive(Debug, Clone)]
pub struct FacilitySetup<'a> {
    /// Its IKE identity (FQDN) and the gateway's.
    pub id: &'a str,
    pub gateway_id: &'a str,
    pub psk: &'a [u8],
    /// The address its sockets bind to.
    pub ip: Ipv4Addr,
    /// Its LAN (the gateway's `remote_ts`) and what it reaches through the gateway.
    pub local_ts: Ipv4Network,
    pub remote_ts: Ipv4Network,
}

pub struct IpsecFacility {
    engine: IkeEngine,
    /// Its "500" and "4500".
    sockets: [UdpSocket; 2],
    gateway: GatewayPorts,
    sa: Option<(InboundSa, OutboundSa)>,
    rng: SystemRandom,
}

impl IpsecFacility {
    /// A facility that starts negotiating with the gateway at once.
    pub fn new(setup: &FacilitySetup<'_>, gateway: GatewayPorts) -> io::Result<IpsecFacility> {
        let socket = || -> io::Result<UdpSocket> {
            let s = UdpSocket::bind((setup.ip, 0))?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let sockets = [socket()?, socket()?];
        let config = IkeConfig {
            local_id: Identity::fqdn(setup.id),
            local_addr: setup.ip.into(),
            local_ports: [500, 4500],
            force_udp_encap: false,
            peers: vec![IkePeerConfig {
                peer: PeerId(0),
                remote_id: Identity::fqdn(setup.gateway_id),
                auth: PeerAuth::Psk(setup.psk.to_vec().into()),
                local_ts: vec![setup.local_ts],
                remote_ts: vec![setup.remote_ts],
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
                endpoint: Some(SocketAddr::from((gateway.ip, 500))),
                ike_rekey: Duration::from_secs(3600),
                child_rekey: Duration::from_secs(1800),
                child_rekey_bytes: None,
                dpd_interval: Duration::from_secs(30),
                dpd_timeout: Duration::from_secs(150),
                dpd_action: DpdAction::Restart,
                spi_class: SpiClass::ANY,
            }],
            limits: Limits::default(),
        };
        Ok(IpsecFacility {
            engine: IkeEngine::new(config, Instant::now()),
            sockets,
            gateway,
            sa: None,
            rng: SystemRandom::new(),
        })
    }

    /// Moves its "4500" (IKE after the first exchange, and ESP) to a new port, as a NAT that
    /// drops the facility's mapping and makes a new one would.
    pub fn rebind_nat_t(&mut self) -> io::Result<()> {
        let ip = self.sockets[1].local_addr()?.ip();
        let s = UdpSocket::bind((ip, 0))?;
        s.set_nonblocking(true)?;
        self.sockets[1] = s;
        Ok(())
    }

    /// Whether the CHILD SA is up.
    pub fn established(&self) -> bool {
        self.sa.is_some()
    }

    /// Moves what is ready: the engine's datagrams out, datagrams in, timers and events.
    /// Returns the inner packets that arrived through the tunnel.
    pub fn step(&mut self) -> Vec<Vec<u8>> {
        while let Some(t) = self.engine.poll_transmit() {
            // The engine's 500 and 4500 are the gateway's configured ports.
            let g = self.gateway;
            let (socket, port, marker) = if t.from_port == 500 {
                (&self.sockets[0], g.ike, false)
            } else {
                (&self.sockets[1], g.nat_t, true)
            };
            let to = if t.to.ip() == IpAddr::from(g.ip) {
                SocketAddr::from((g.ip, port))
            } else {
                t.to
            };
            let mut d = if marker { vec![0; 4] } else { Vec::new() };
            d.extend_from_slice(&t.data);
            let _ = socket.send_to(&d, to);
        }
        let mut inner = Vec::new();
        let mut buf = [0u8; 4096];
        for (i, port) in [(0, 500), (1, 4500)] {
            while let Ok((n, from)) = self.sockets[i].recv_from(&mut buf) {
                let d = &mut buf[..n];
                if i == 0 {
                    self.engine.handle_datagram(Instant::now(), port, from, d);
                } else if d.starts_with(&[0; 4]) {
                    self.engine
                        .handle_datagram(Instant::now(), port, from, &d[4..]);
                } else if let Some((sa, _)) = &mut self.sa {
                    if let Ok(Decap::Packet(r)) = sa.decapsulate(d) {
                        inner.push(d[r].to_vec());
                    }
                }
            }
        }
        let now = Instant::now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                IkeEvent::ChildSaUp(up) => {
                    let inbound = InboundSa::new(&up.inbound.sa_config());
                    let outbound = OutboundSa::new(&up.outbound.sa_config());
                    if let (Ok(i), Ok(o)) = (inbound, outbound) {
                        self.sa = Some((i, o));
                    }
                }
                IkeEvent::PeerDown { .. } => self.sa = None,
                _ => {}
            }
        }
        inner
    }

    /// Sends `packet` into the CHILD SA, ESP in UDP to the gateway's NAT-T port.
    pub fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let Some((_, sa)) = &mut self.sa else {
            return Err(io::Error::other("no CHILD SA yet"));
        };
        let mut buf = [0u8; 2048];
        let n = sa
            .encapsulate(&mut self.rng, packet, &mut buf)
            .map_err(|e| io::Error::other(format!("{e}")))?;
        self.sockets[1].send_to(&buf[..n], (self.gateway.ip, self.gateway.nat_t))?;
        Ok(())
    }
}
