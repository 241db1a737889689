//! The body of the `ike_engine` fuzz target, shared with the unit tests. Not used by the
//! daemon.
//!
//! Two engines, an initiator (A, 192.0.2.1) and a responder (B, 192.0.2.2), and a script
//! read from the input: arbitrary datagrams to either side on port 500 or 4500, time steps,
//! rounds of real traffic between them (so that the script reaches IKE_AUTH, established
//! IKE SAs, rekeys and deletes), and real datagrams with a byte changed. Nothing may panic,
//! and after `handle_timeout(now)` no timer may be left at or before `now` (a busy loop).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::ids::PeerId;

use super::{
    DpdAction, EspProposal, Identity, IkeConfig, IkeEngine, IkePeerConfig, IkeProposal, Limits,
    PeerAuth, SpiClass, Start, Transmit,
};

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Operations of a script, by the first octet of each step (modulo their number).
pub mod op {
    /// `len: u16 | bytes`: a datagram to the responder on port 500, from A.
    pub const TO_RESPONDER_500: u8 = 0;
    /// The same on port 4500.
    pub const TO_RESPONDER_4500: u8 = 1;
    /// `len: u16 | bytes`: a datagram to the initiator on port 4500, from B.
    pub const TO_INITIATOR: u8 = 2;
    /// `secs: u8`: time moves on and both run their timers.
    pub const ADVANCE: u8 = 3;
    /// One round of what both sent is delivered.
    pub const DELIVER: u8 = 4;
    /// `at: u16 | xor: u8`: the next datagram in flight is delivered with one octet changed.
    pub const MUTATE: u8 = 5;
    /// By `what: u8`: rekeys (CHILD SAs from A, the IKE SA from B), deletes, a byte count,
    /// a roam of A reported to B, or a reload of either (B's with a peer added in front, so
    /// that its peer moves to another index; A's dropping its peer).
    pub const COMMAND: u8 = 6;
    pub const COUNT: u8 = 7;
}

fn peer(peer: PeerId, remote: &str, endpoint: Ipv4Addr, start: Start) -> IkePeerConfig {
    IkePeerConfig {
        peer,
        remote_id: Identity::fqdn(remote),
        auth: PeerAuth::Psk(Zeroizing::new(b"fuzz".to_vec())),
        local_ts: vec!["10.1.0.0/16".parse().unwrap_or_else(|_| unreachable!())],
        remote_ts: vec!["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())],
        ike_proposals: vec![IkeProposal {
            encr: vec![EncrAlg::AesGcm16_256, EncrAlg::AesCbc128],
            integ: vec![IntegAlg::HmacSha256_128],
            prf: vec![PrfAlg::HmacSha256],
            dh: vec![DhGroup::Ecp256, DhGroup::Curve25519],
        }],
        esp_proposals: vec![EspProposal {
            encr: vec![EncrAlg::AesGcm16_128],
            integ: vec![],
            dh: vec![DhGroup::Curve25519],
            esn: false,
        }],
        start,
        endpoint: Some(SocketAddr::from((endpoint, 500))),
        ike_rekey: Duration::from_secs(600),
        child_rekey: Duration::from_secs(300),
        child_rekey_bytes: None,
        dpd_interval: Duration::from_secs(30),
        dpd_timeout: Duration::from_secs(60),
        dpd_action: DpdAction::Restart,
        spi_class: SpiClass::ANY,
    }
}

fn config(me: &str, my_ip: Ipv4Addr, peer: IkePeerConfig) -> IkeConfig {
    let limits = Limits {
        cookie_threshold: 4,
        half_open_max: 8,
        fragment_size: 200,
        ..Limits::default()
    };
    IkeConfig {
        local_id: Identity::fqdn(me),
        local_addr: IpAddr::V4(my_ip),
        local_ports: [500, 4500],
        force_udp_encap: false,
        peers: vec![peer],
        limits,
    }
}

struct Harness {
    now: Instant,
    a: IkeEngine,
    b: IkeEngine,
    /// Datagrams in flight: from A (to B) or from B (to A).
    wire: Vec<(bool, Transmit)>,
}

impl Harness {
    fn new() -> Harness {
        let now = Instant::now();
        let a = config("a", A_IP, peer(PeerId(1), "b", B_IP, Start::Initiate));
        let b = config("b", B_IP, peer(PeerId(2), "a", A_IP, Start::Respond));
        Harness {
            now,
            a: IkeEngine::new(a, now),
            b: IkeEngine::new(b, now),
            wire: Vec::new(),
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.wire.push((true, t));
        }
        while let Some(t) = self.b.poll_transmit() {
            self.wire.push((false, t));
        }
        while self.a.poll_event().is_some() {}
        while self.b.poll_event().is_some() {}
        // Bounded memory whatever the script does.
        if self.wire.len() > 256 {
            self.wire.drain(..self.wire.len() - 256);
        }
    }

    fn deliver(&mut self, from_a: bool, t: &Transmit) {
        if from_a {
            let from = SocketAddr::from((A_IP, t.from_port));
            self.b.handle_datagram(self.now, t.to.port(), from, &t.data);
        } else {
            let from = SocketAddr::from((B_IP, t.from_port));
            self.a.handle_datagram(self.now, t.to.port(), from, &t.data);
        }
    }

    fn timers(&mut self) {
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        for e in [&self.a, &self.b] {
            assert!(
                e.poll_timeout().is_none_or(|t| t > self.now),
                "a timer was left in the past"
            );
        }
    }
}

fn chunk(r: &[u8]) -> (&[u8], &[u8]) {
    let len = match r {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return (&[], &[]),
    };
    let rest = &r[2..];
    let len = len.min(rest.len());
    rest.split_at(len)
}

/// Runs a script; panics on a violated property.
pub fn run(data: &[u8]) {
    let mut h = Harness::new();
    h.timers();
    h.collect();
    let mut r = data;
    let mut steps = 0;
    while let Some((&o, rest)) = r.split_first() {
        r = rest;
        steps += 1;
        if steps > 256 {
            break;
        }
        match o % op::COUNT {
            op::TO_RESPONDER_500 | op::TO_RESPONDER_4500 => {
                let (d, rest) = chunk(r);
                r = rest;
                let port = if o % op::COUNT == op::TO_RESPONDER_500 {
                    500
                } else {
                    4500
                };
                h.b.handle_datagram(h.now, port, SocketAddr::from((A_IP, port)), d);
            }
            op::TO_INITIATOR => {
                let (d, rest) = chunk(r);
                r = rest;
                h.a.handle_datagram(h.now, 4500, SocketAddr::from((B_IP, 4500)), d);
            }
            op::ADVANCE => {
                let secs = r.first().copied().unwrap_or(1);
                r = r.get(1..).unwrap_or_default();
                h.now += Duration::from_secs(u64::from(secs));
                h.timers();
            }
            op::DELIVER => {
                for (from_a, t) in std::mem::take(&mut h.wire) {
                    h.deliver(from_a, &t);
                }
            }
            op::MUTATE => {
                let (at, xor) = match r {
                    [a, b, x, ..] => (usize::from(u16::from_be_bytes([*a, *b])), *x),
                    _ => (0, 0xff),
                };
                r = r.get(3..).unwrap_or_default();
                if !h.wire.is_empty() {
                    let (from_a, mut t) = h.wire.remove(0);
                    let i = at % t.data.len().max(1);
                    if let Some(b) = t.data.get_mut(i) {
                        *b ^= xor;
                    }
                    h.deliver(from_a, &t);
                }
            }
            _ => {
                let what = r.first().copied().unwrap_or(0);
                r = r.get(1..).unwrap_or_default();
                match what % 8 {
                    0 => h.a.rekey_child(PeerId(1), h.now),
                    1 => h.b.rekey_ike(PeerId(2), h.now),
                    2 => h.a.delete(PeerId(1), h.now),
                    3 => {
                        h.b.esp_usage(PeerId(2), u32::from(what) << 8, u64::MAX, h.now)
                    }
                    4 => {
                        let to = SocketAddr::from((A_IP, 4500 + u16::from(what)));
                        h.b.peer_roamed(PeerId(2), to, h.now);
                    }
                    5 => {
                        let mut b = config("b", B_IP, peer(PeerId(2), "a", A_IP, Start::Respond));
                        let other =
                            peer(PeerId(9), "c", Ipv4Addr::new(192, 0, 2, 3), Start::Respond);
                        b.peers.insert(0, other);
                        h.b.reconfigure(b, &[(PeerId(2), PeerId(2))], h.now);
                    }
                    6 => {
                        let a = config("a", A_IP, peer(PeerId(1), "b", B_IP, Start::Initiate));
                        h.a.reconfigure(a, &[(PeerId(1), PeerId(1))], h.now);
                    }
                    _ => {
                        h.a.delete(PeerId(1), h.now);
                        let mut a = config("a", A_IP, peer(PeerId(1), "b", B_IP, Start::Initiate));
                        a.peers.clear();
                        h.a.reconfigure(a, &[], h.now);
                    }
                }
            }
        }
        h.collect();
    }
}

/// A script that runs a whole handshake and the exchanges after it, for seeds and tests.
pub fn handshake_script() -> Vec<u8> {
    let mut s = vec![op::DELIVER; 4];
    s.extend_from_slice(&[op::COMMAND, 0, op::DELIVER, op::DELIVER, op::DELIVER]);
    s.extend_from_slice(&[op::COMMAND, 1, op::DELIVER, op::DELIVER, op::DELIVER]);
    s.extend_from_slice(&[op::ADVANCE, 40, op::DELIVER, op::DELIVER]);
    s.extend_from_slice(&[op::COMMAND, 2, op::DELIVER, op::DELIVER]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::ipsec::ike::message::testvec::ike_messages;

    #[test]
    fn scripts_run_without_panicking() {
        run(&[]);
        run(&handshake_script());
        // Found by the fuzzer: a reload between IKE_SA_INIT and IKE_AUTH.
        run(include_bytes!("testdata/fuzz-reload-half-open.bin"));
        // And one whose SAs left without a peer kept their rekey timers in the past.
        run(include_bytes!("testdata/fuzz-reload-orphan-timers.bin"));
        // Roams and reloads between rekeys.
        let mut s = vec![op::DELIVER; 4];
        s.extend_from_slice(&[op::COMMAND, 4, op::DELIVER, op::DELIVER, op::COMMAND, 5]);
        s.extend_from_slice(&[op::COMMAND, 0, op::DELIVER, op::DELIVER, op::DELIVER]);
        s.extend_from_slice(&[op::COMMAND, 6, op::ADVANCE, 200, op::DELIVER, op::DELIVER]);
        s.extend_from_slice(&[op::COMMAND, 7, op::DELIVER, op::ADVANCE, 100, op::DELIVER]);
        run(&s);
        for m in ike_messages() {
            let len = (m.len() as u16).to_be_bytes();
            for o in [
                op::TO_RESPONDER_500,
                op::TO_RESPONDER_4500,
                op::TO_INITIATOR,
            ] {
                let mut s = vec![o, len[0], len[1]];
                s.extend_from_slice(m);
                run(&s);
            }
        }
        // Handshake pieces with one octet changed at every position of the first messages.
        for at in (0u16..400).step_by(7) {
            let [hi, lo] = at.to_be_bytes();
            run(&[
                op::DELIVER,
                op::MUTATE,
                hi,
                lo,
                0x41,
                op::DELIVER,
                op::DELIVER,
                op::ADVANCE,
                200,
                op::DELIVER,
            ]);
            run(&[
                op::DELIVER,
                op::DELIVER,
                op::MUTATE,
                hi,
                lo,
                0x01,
                op::DELIVER,
                op::DELIVER,
            ]);
        }
    }

    /// Garbage from a cheap generator, in the shape of scripts.
    #[test]
    fn pseudo_random_scripts() {
        let mut x: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..200 {
            let mut s = Vec::new();
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push((x >> 24) as u8);
            }
            run(&s);
        }
    }
}
