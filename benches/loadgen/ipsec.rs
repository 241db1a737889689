//! ESP facilities of the capacity bench. Each peer is an IKEv2 initiator of its own — ixgw's
//! own engine used as a library (`tunnel::ipsec::ike::sa::IkeEngine`, as the demo's facility
//! and `tests/ipsec_loopback.rs` use it) — that negotiates a real IKE SA and CHILD SA with the
//! gateway (IKE_SA_INIT, IKE_AUTH with the peer's pre-shared key). The generator learns the
//! keys of the CHILD SAs it sends into the way any facility does, so the daemon runs its
//! production configuration and data path, with no way in for keys besides IKE.
//!
//! A peer's configuration is the gateway's configuration of that peer turned around (as
//! `ixgw peer-config` turns it around for strongSwan): `Plan::ike_config` of the very YAML the
//! gateway runs gives its identities, pre-shared keys, traffic selectors and proposals, so the
//! facilities propose exactly what the gateway accepts, and the CHILD SAs use whatever the
//! gateway's default ESP proposals select. The facilities announce a NAT on their side
//! (strongSwan's `encap = yes`, as facilities behind a router's NAT do), so ESP travels in UDP
//! to the gateway's NAT-T port [RFC 3948], from the same socket that carried the peer's IKE.
//!
//! Many peers share a socket: every IKE message is dispatched to its engine by the SPIs of
//! its header, learned from what the engines send. ESP arriving on a socket (the sink) is
//! counted without being decrypted.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ixgw::config::Config;
use ixgw::crypto::EncrAlg;
use ixgw::dataplane::Plan;
use ixgw::demo::ipsec::GatewayPorts;
use ixgw::ids::{AttachmentId, PeerId};
use ixgw::tunnel::ipsec::esp::OutboundSa;
use ixgw::tunnel::ipsec::ike::sa::{
    DpdAction, IkeConfig, IkeEngine, IkeEvent, IkePeerConfig, Limits, SpiClass, Start,
};
use quinn_udp::RecvMeta;

use crate::Socket;

/// Negotiations one socket's facilities have under way at once: 8 sockets keep the gateway
/// below its cookie threshold (32 half-open IKE SAs).
const WAVE: usize = 4;
/// How often timers are looked at and new negotiations started.
const TICK: Duration = Duration::from_millis(20);
/// IKE refusals printed; the rest are only counted.
const REFUSALS_SHOWN: u64 = 10;

/// The IKE configurations of the facilities `role-0` .. `role-(count-1)` of attachment
/// `role-ipsec` in the gateway's configuration at `config`, and where the gateway listens:
/// `ix` is its IKE address; its NAT-T port comes from the configuration.
pub fn facilities(
    config: &Path,
    role: &str,
    count: u32,
    ix: SocketAddr,
    bind: Ipv4Addr,
) -> io::Result<(Vec<IkeConfig>, GatewayPorts)> {
    let config = Config::load(config).map_err(io::Error::other)?;
    let plan = Plan::compile(&config, 1);
    let name = format!("{role}-ipsec");
    let a = plan
        .attachments
        .iter()
        .position(|a| a.name == name)
        .ok_or_else(|| io::Error::other(format!("no attachment {name} in the configuration")))?;
    let clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let gateway = plan
        .ike_config(AttachmentId(a as u16), clock, None, 1)
        .ok_or_else(|| io::Error::other(format!("{name} is not an IPsec attachment")))?
        .map_err(io::Error::other)?;
    let nat_t = plan.attachments[a]
        .udp_listen(1)
        .ok_or_else(|| io::Error::other(format!("{name} has no NAT-T socket")))?
        .port();
    let SocketAddr::V4(ix4) = ix else {
        return Err(io::Error::other("the gateway's address must be IPv4"));
    };
    if gateway.peers.len() < count as usize {
        return Err(io::Error::other(format!(
            "{name} has {} peers, fewer than {count}",
            gateway.peers.len()
        )));
    }
    let mut out = Vec::with_capacity(count as usize);
    for (k, p) in gateway.peers.iter().take(count as usize).enumerate() {
        let expected = format!("{role}-{k}");
        let named = &plan.peers[p.peer.index()].name;
        if *named != expected {
            return Err(io::Error::other(format!(
                "{name}'s peer {k} is {named}, not {expected}"
            )));
        }
        out.push(IkeConfig {
            local_id: p.remote_id.clone(),
            local_addr: bind.into(),
            local_ports: [500, 4500],
            force_udp_encap: true,
            peers: vec![IkePeerConfig {
                peer: PeerId(0),
                remote_id: gateway.local_id.clone(),
                auth: p.auth.clone(),
                local_ts: p.remote_ts.clone(),
                remote_ts: p.local_ts.clone(),
                ike_proposals: p.ike_proposals.clone(),
                esp_proposals: p.esp_proposals.clone(),
                start: Start::Initiate,
                endpoint: Some(ix),
                ike_rekey: p.ike_rekey,
                child_rekey: p.child_rekey,
                child_rekey_bytes: None,
                // The facilities look for no liveness of their own; they answer the gateway's.
                dpd_interval: Duration::ZERO,
                dpd_timeout: p.dpd_timeout,
                dpd_action: DpdAction::Clear,
                spi_class: SpiClass::ANY,
            }],
            limits: Limits::default(),
        });
    }
    Ok((
        out,
        GatewayPorts {
            ip: *ix4.ip(),
            ike: ix4.port(),
            nat_t,
        },
    ))
}

/// What the facilities' engines reported, by peer number.
pub struct Status {
    /// Each peer's newest outbound SA, until the generator takes it.
    pub fresh: Vec<Option<OutboundSa>>,
    /// Whether the peer has a CHILD SA.
    pub up: Vec<bool>,
    /// The transform of the CHILD SAs (the last one installed) and whether it uses ESN.
    pub cipher: Option<(EncrAlg, bool)>,
    /// CHILD SAs that replaced another one (rekeys), peers that went down, IKE messages
    /// refused or dropped.
    pub replaced: u64,
    pub down: u64,
    pub refused: u64,
}

impl Status {
    pub fn new(peers: u32) -> Rc<RefCell<Status>> {
        Rc::new(RefCell::new(Status {
            fresh: (0..peers).map(|_| None).collect(),
            up: vec![false; peers as usize],
            cipher: None,
            replaced: 0,
            down: 0,
            refused: 0,
        }))
    }

    pub fn all_up(&self) -> bool {
        self.up.iter().all(|&u| u)
    }

    /// The CHILD SAs' transform as strongSwan names it, `esn` added when in use.
    pub fn cipher_name(&self) -> String {
        match self.cipher {
            Some((alg, esn)) => {
                format!(
                    "{}{}",
                    ixgw::config::encr_token(alg),
                    if esn { "-esn" } else { "" }
                )
            }
            None => "none".into(),
        }
    }
}

/// ESP datagrams counted by a sink, and their bytes (the UDP payload: ESP header, IV,
/// ciphertext and ICV).
#[derive(Default)]
pub struct Tally {
    pub packets: Cell<u64>,
    pub bytes: Cell<u64>,
}

struct Member {
    peer: usize,
    engine: IkeEngine,
    started: bool,
}

/// Runs the IKE of the facilities `engines` (peer number, configuration) on `socket` for as
/// long as the task lives, reporting into `status`; ESP reaching the socket is counted in
/// `esp` if given. Negotiations start a few at a time, [`WAVE`] under way at most.
pub async fn drive(
    socket: Rc<Socket>,
    engines: Vec<(usize, IkeConfig)>,
    gateway: GatewayPorts,
    status: Rc<RefCell<Status>>,
    esp: Option<Rc<Tally>>,
) {
    let now = Instant::now();
    let mut members: Vec<Member> = engines
        .into_iter()
        .map(|(peer, config)| Member {
            peer,
            engine: IkeEngine::new(config, now),
            started: false,
        })
        .collect();
    // Every SPI an engine has sent in a header, to the engine.
    let mut spis: HashMap<u64, usize> = HashMap::new();
    let mut bufs = vec![vec![0u8; 65536]; quinn_udp::BATCH_SIZE];
    let mut meta = [RecvMeta::default(); quinn_udp::BATCH_SIZE];
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let under_way = {
                    let st = status.borrow();
                    members.iter().filter(|m| m.started && !st.up[m.peer]).count()
                };
                if under_way < WAVE {
                    if let Some(m) = members.iter_mut().find(|m| !m.started) {
                        m.started = true;
                    }
                }
                for m in members.iter_mut().filter(|m| m.started) {
                    if m.engine.poll_timeout().is_some_and(|t| t <= now) {
                        m.engine.handle_timeout(now);
                    }
                }
            }
            n = socket.recv(&mut bufs, &mut meta) => {
                let Ok(n) = n else { return };
                let now = Instant::now();
                for (m, b) in meta.iter().zip(&bufs).take(n) {
                    if m.addr.ip() != gateway.ip {
                        continue;
                    }
                    let stride = if m.stride == 0 { m.len } else { m.stride };
                    for seg in b[..m.len].chunks(stride) {
                        let (port, message) = if m.addr.port() == gateway.ike {
                            (500, seg)
                        } else if let Some(rest) = seg.strip_prefix(&[0, 0, 0, 0]) {
                            (4500, rest)
                        } else {
                            if seg.len() > 8 {
                                if let Some(t) = &esp {
                                    t.packets.set(t.packets.get() + 1);
                                    t.bytes.set(t.bytes.get() + seg.len() as u64);
                                }
                            }
                            continue;
                        };
                        let spi = |at: usize| {
                            message
                                .get(at..at + 8)
                                .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
                        };
                        let to = [spi(0), spi(8)]
                            .into_iter()
                            .flatten()
                            .find_map(|s| spis.get(&s).copied());
                        match to {
                            Some(k) => members[k].engine.handle_datagram(now, port, m.addr, message),
                            None => status.borrow_mut().refused += 1,
                        }
                    }
                }
            }
        }
        flush(&socket, &mut members, &mut spis, gateway, &status).await;
    }
}

/// Sends what the engines want sent and takes their events.
async fn flush(
    socket: &Socket,
    members: &mut [Member],
    spis: &mut HashMap<u64, usize>,
    gateway: GatewayPorts,
    status: &RefCell<Status>,
) {
    for (k, m) in members.iter_mut().enumerate().filter(|(_, m)| m.started) {
        while let Some(t) = m.engine.poll_transmit() {
            for at in [0, 8] {
                if let Some(s) = t.data.get(at..at + 8) {
                    let s = u64::from_be_bytes(s.try_into().expect("8 bytes"));
                    if s != 0 {
                        spis.insert(s, k);
                    }
                }
            }
            // The engine's "500" and "4500" are the gateway's IKE and NAT-T ports; on the
            // latter IKE goes behind the non-ESP marker.
            let (port, marker) = if t.from_port == 500 {
                (gateway.ike, false)
            } else {
                (gateway.nat_t, true)
            };
            let mut d = Vec::with_capacity(t.data.len() + 4);
            if marker {
                d.extend_from_slice(&[0; 4]);
            }
            d.extend_from_slice(&t.data);
            if let Err(e) = socket
                .send(SocketAddr::from((gateway.ip, port)), &d, None)
                .await
            {
                eprintln!("ike: send: {e}");
            }
        }
        while let Some(ev) = m.engine.poll_event() {
            let mut st = status.borrow_mut();
            match ev {
                IkeEvent::ChildSaUp(up) => match OutboundSa::new(&up.outbound.sa_config()) {
                    Ok(sa) => {
                        if st.up[m.peer] {
                            st.replaced += 1;
                        }
                        st.fresh[m.peer] = Some(sa);
                        st.up[m.peer] = true;
                        st.cipher = Some((up.outbound.encr, up.outbound.esn));
                    }
                    Err(e) => eprintln!("peer {}: CHILD SA unusable: {e}", m.peer),
                },
                IkeEvent::PeerDown { reason, .. } => {
                    eprintln!("peer {}: down ({reason:?})", m.peer);
                    st.up[m.peer] = false;
                    st.down += 1;
                }
                IkeEvent::Refused { reason, notify, .. } => {
                    st.refused += 1;
                    if st.refused <= REFUSALS_SHOWN {
                        eprintln!("peer {}: IKE refused: {reason:?} {notify:?}", m.peer);
                    }
                }
                IkeEvent::GaveUp { exchange, .. } => {
                    eprintln!("peer {}: gave up on {exchange:?}", m.peer);
                }
                _ => {}
            }
        }
    }
}

/// Waits until every facility has its CHILD SA, `timeout` at most.
pub async fn wait_up(status: &RefCell<Status>, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let st = status.borrow();
            if st.all_up() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let up = st.up.iter().filter(|&&u| u).count();
                return Err(io::Error::other(format!(
                    "{up} of {} ESP peers up after {} s",
                    st.up.len(),
                    timeout.as_secs()
                )));
            }
        }
        tokio::time::sleep(TICK).await;
    }
}
