//! One `ethernet` attachment's link: the gateway's MAC and IPv4 address on a carrier's port
//! (on one VLAN or untagged), what a received frame means and how an inner packet leaves.
//! Sans-IO: frames come in and go out as bytes; `now` is passed.
//!
//! A received frame is taken only on the attachment's VLAN (a frame of another VLAN or an
//! untagged one on a tagged link is refused: the carrier's other customers are not ours), and
//! an IPv4 frame only when it is addressed to the gateway's MAC. Linux moves the 802.1Q tag
//! of a received frame out of the frame before a packet socket sees it; the caller says which
//! tag that was (the runtime's socket filter passes only the link's VLAN), and a tag still in
//! the frame counts instead. ARP requests for the
//! gateway's address are answered; ARP from a neighbour refreshes (or, when it concerns the
//! gateway, makes) its cache entry. IPv4 packets are handed on without the frame's padding.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Instant;

use super::arp_cache::{ArpCache, ArpTimers, Lookup};
use crate::wire::ethernet::{
    self, Arp, ArpOp, FrameError, Mac, ARP_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
};

/// Where the gateway is on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    /// The directly connected prefix: neighbours are learned only inside it.
    pub connected: ipnetwork::Ipv4Network,
    /// The 802.1Q VLAN id the gateway's frames carry; `None` untagged.
    pub vlan: Option<u16>,
}

/// Why a received frame is not taken, or an inner packet cannot leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("malformed frame: {0}")]
    Frame(FrameError),
    #[error(
        "a frame of another VLAN (or untagged on a tagged link, or tagged on an untagged one)"
    )]
    OtherVlan,
    #[error("an IPv4 frame not addressed to the gateway's MAC")]
    NotForUs,
    #[error("an IPv6 frame")]
    Ipv6,
    #[error("an EtherType the link does not carry")]
    OtherEthertype,
    #[error("ARP that neither asks for nor answers the gateway")]
    ArpOther,
    #[error("the next hop's MAC is not known yet")]
    Unresolved,
    #[error("the frame does not fit the buffer")]
    TooBig,
}

impl From<FrameError> for LinkRefusal {
    fn from(e: FrameError) -> Self {
        LinkRefusal::Frame(e)
    }
}

/// What a received frame was.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// An IPv4 packet for the pipeline: where it lies in the frame (without the padding).
    Packet(Range<usize>),
    /// ARP the link took; `reply`: the length of the answer frame written into the reply
    /// buffer, to send.
    Arp { reply: Option<usize> },
}

/// What leaving an inner packet produced in the output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The packet's frame, this long.
    Frame(usize),
    /// The packet's frame, this long, to a stale neighbour: send an ARP request for it too
    /// ([`Link::request`]).
    FrameAndProbe(usize),
    /// The next hop is unresolved: an ARP request frame, this long, went into the buffer
    /// instead (the packet itself is refused as [`LinkRefusal::Unresolved`] by the caller).
    ArpRequest(usize),
}

/// One attachment's link and neighbour cache.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    neighbours: ArpCache,
}

impl Link {
    pub fn new(config: LinkConfig, cache_capacity: usize, timers: ArpTimers) -> Link {
        Link {
            config,
            neighbours: ArpCache::new(cache_capacity, timers),
        }
    }

    pub fn config(&self) -> LinkConfig {
        self.config
    }

    pub fn neighbours(&self) -> &ArpCache {
        &self.neighbours
    }

    /// Takes a received frame whose 802.1Q tag, if the kernel took one out, was
    /// `kernel_vlan`; an ARP answer, if due, is written into `reply`.
    pub fn receive(
        &mut self,
        now: Instant,
        frame: &[u8],
        kernel_vlan: Option<u16>,
        reply: &mut [u8],
    ) -> Result<Received, LinkRefusal> {
        let f = ethernet::parse(frame)?;
        if f.vlan.or(kernel_vlan) != self.config.vlan {
            return Err(LinkRefusal::OtherVlan);
        }
        match f.ethertype {
            ETHERTYPE_IPV4 => {
                if f.dst != self.config.mac {
                    return Err(LinkRefusal::NotForUs);
                }
                // An IPv4 packet's own length says where the frame's padding begins.
                let p = f.payload;
                let total = match p {
                    [v, _, a, b, ..] if v >> 4 == 4 => usize::from(u16::from_be_bytes([*a, *b])),
                    _ => p.len(),
                };
                let start = frame.len() - p.len();
                Ok(Received::Packet(start..start + total.min(p.len())))
            }
            ETHERTYPE_ARP => self.arp(now, &Arp::parse(f.payload)?, reply),
            ETHERTYPE_IPV6 => Err(LinkRefusal::Ipv6),
            _ => Err(LinkRefusal::OtherEthertype),
        }
    }

    fn arp(&mut self, now: Instant, a: &Arp, reply: &mut [u8]) -> Result<Received, LinkRefusal> {
        let me = self.config;
        let for_us = a.target_ip == me.ip && a.sender_ip != me.ip;
        // RFC 826's merge: refresh what is known; learn a new neighbour only from ARP that
        // concerns the gateway, and only one on the link (an off-link sender is no
        // neighbour, and could otherwise push the router out of a full cache).
        if me.connected.contains(a.sender_ip) {
            self.neighbours
                .learn(a.sender_ip, a.sender_mac, for_us, now);
        }
        if !for_us {
            return Err(LinkRefusal::ArpOther);
        }
        let reply_len = match a.op {
            ArpOp::Request => {
                let mut arp = [0u8; ARP_LEN];
                a.reply(me.mac, me.ip).write(&mut arp)?;
                let n = ethernet::write_frame(
                    reply,
                    a.sender_mac,
                    me.mac,
                    me.vlan,
                    ETHERTYPE_ARP,
                    &arp,
                )
                .map_err(|_| LinkRefusal::TooBig)?;
                Some(n)
            }
            ArpOp::Reply => None,
        };
        Ok(Received::Arp { reply: reply_len })
    }

    /// Frames `packet` to every host of the link (an Ethernet broadcast) into `out`: a
    /// directed broadcast to the connected prefix.
    pub fn broadcast(&self, packet: &[u8], out: &mut [u8]) -> Result<usize, LinkRefusal> {
        let me = self.config;
        ethernet::write_frame(out, Mac::BROADCAST, me.mac, me.vlan, ETHERTYPE_IPV4, packet)
            .map_err(|_| LinkRefusal::TooBig)
    }

    /// Frames `packet` to `next_hop` into `out`, or, when its MAC is unknown, writes an ARP
    /// request for it when one is due ([`Sent::ArpRequest`]) or refuses it.
    pub fn send(
        &mut self,
        now: Instant,
        next_hop: Ipv4Addr,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<Sent, LinkRefusal> {
        let me = self.config;
        match self.neighbours.lookup(next_hop, now) {
            Lookup::Hit(mac) => {
                ethernet::write_frame(out, mac, me.mac, me.vlan, ETHERTYPE_IPV4, packet)
                    .map(Sent::Frame)
                    .map_err(|_| LinkRefusal::TooBig)
            }
            Lookup::Probe(mac) => {
                ethernet::write_frame(out, mac, me.mac, me.vlan, ETHERTYPE_IPV4, packet)
                    .map(Sent::FrameAndProbe)
                    .map_err(|_| LinkRefusal::TooBig)
            }
            Lookup::Miss { request: true } => self.request(next_hop, out).map(Sent::ArpRequest),
            Lookup::Miss { request: false } => Err(LinkRefusal::Unresolved),
        }
    }

    /// Writes a broadcast ARP request for `ip` into `out`; returns its length.
    pub fn request(&self, ip: Ipv4Addr, out: &mut [u8]) -> Result<usize, LinkRefusal> {
        let me = self.config;
        let mut arp = [0u8; ARP_LEN];
        Arp::request(me.mac, me.ip, ip).write(&mut arp)?;
        ethernet::write_frame(out, Mac::BROADCAST, me.mac, me.vlan, ETHERTYPE_ARP, &arp)
            .map_err(|_| LinkRefusal::TooBig)
    }

    /// Asks for `ip` again if a request is due (a packet waits for it); returns the length
    /// of the request written into `out`.
    pub fn ask(&mut self, now: Instant, ip: Ipv4Addr, out: &mut [u8]) -> Option<usize> {
        match self.neighbours.lookup(ip, now) {
            Lookup::Miss { request: true } => self.request(ip, out).ok(),
            _ => None,
        }
    }

    /// Whether `ip` is resolved (a packet waiting for it can leave).
    pub fn resolved(&self, ip: Ipv4Addr) -> bool {
        self.neighbours.is_resolved(ip)
    }

    /// Whether `ip` is being asked for.
    pub fn pending(&self, ip: Ipv4Addr) -> bool {
        self.neighbours.is_pending(ip)
    }

    /// Forgets stale state of the neighbour cache (see [`ArpCache::expire`]).
    pub fn expire(&mut self, now: Instant) {
        self.neighbours.expire(now);
    }
}

/// The fuzz target's second half: a link (tagged and untagged) takes or refuses any frame
/// without a panic, and what it takes or answers is well formed.
pub fn fuzz_receive(data: &[u8]) {
    for vlan in [None, Some(101)] {
        let config = LinkConfig {
            mac: Mac([2, 0, 0x5e, 0, 0x53, 1]),
            ip: Ipv4Addr::new(192, 0, 2, 1),
            connected: ipnetwork::Ipv4Network::new(Ipv4Addr::new(192, 0, 2, 0), 24).expect("a /24"),
            vlan,
        };
        let mut link = Link::new(config, 4, ArpTimers::default());
        let mut reply = [0u8; 128];
        match link.receive(Instant::now(), data, vlan, &mut reply) {
            Ok(Received::Packet(p)) => assert!(p.end <= data.len() && p.start <= p.end),
            Ok(Received::Arp { reply: Some(n) }) => {
                let f = ethernet::parse(&reply[..n]).expect("the answer parses");
                assert_eq!((f.src, f.vlan), (config.mac, vlan));
            }
            Ok(Received::Arp { reply: None }) | Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::{parse, write_frame, MIN_FRAME};

    const GW: Mac = Mac([2, 0, 0x5e, 0, 0x53, 1]);
    const CE: Mac = Mac([2, 0, 0x5e, 0, 0x53, 2]);

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }

    fn link(vlan: Option<u16>) -> Link {
        let config = LinkConfig {
            mac: GW,
            ip: ip(1),
            connected: "192.0.2.0/24".parse().unwrap(),
            vlan,
        };
        Link::new(config, 16, ArpTimers::default())
    }

    fn arp_frame(a: Arp, dst: Mac, vlan: Option<u16>) -> Vec<u8> {
        let mut arp = [0u8; ARP_LEN];
        a.write(&mut arp).unwrap();
        let mut f = vec![0u8; 64];
        let n = write_frame(&mut f, dst, a.sender_mac, vlan, ETHERTYPE_ARP, &arp).unwrap();
        f.truncate(n);
        f
    }

    /// The carrier's router asks for the gateway; the gateway answers on the same VLAN and
    /// then reaches the router without asking.
    #[test]
    fn a_request_for_the_gateway_is_answered_and_teaches_the_sender() {
        let mut l = link(Some(101));
        let t = Instant::now();
        let ask = arp_frame(Arp::request(CE, ip(2), ip(1)), Mac::BROADCAST, Some(101));
        let mut reply = [0u8; 128];
        let r = l.receive(t, &ask, None, &mut reply).unwrap();
        let Received::Arp { reply: Some(n) } = r else {
            panic!("{r:?}")
        };
        let f = parse(&reply[..n]).unwrap();
        assert_eq!((f.dst, f.src, f.vlan), (CE, GW, Some(101)));
        let a = Arp::parse(f.payload).unwrap();
        assert_eq!(
            (a.op, a.sender_ip, a.target_ip),
            (ArpOp::Reply, ip(1), ip(2))
        );
        let mut out = [0u8; 128];
        let packet = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 10, 0, 0, 1,
        ];
        assert_eq!(
            l.send(t, ip(2), &packet, &mut out),
            Ok(Sent::Frame(MIN_FRAME))
        );
        let f = parse(&out[..MIN_FRAME]).unwrap();
        assert_eq!(
            (f.dst, f.vlan, f.ethertype),
            (CE, Some(101), ETHERTYPE_IPV4)
        );
        assert_eq!(l.neighbours().stats().requests, 0);
    }

    /// An unknown next hop is asked for once; its answer resolves it.
    #[test]
    fn an_unknown_next_hop_is_asked_for_and_learned_from_the_answer() {
        let mut l = link(None);
        let t = Instant::now();
        let mut out = [0u8; 128];
        let packet = [0x45u8; 20];
        let Ok(Sent::ArpRequest(n)) = l.send(t, ip(9), &packet, &mut out) else {
            panic!("an ARP request")
        };
        let f = parse(&out[..n]).unwrap();
        assert_eq!(
            (f.dst, f.ethertype, f.vlan),
            (Mac::BROADCAST, ETHERTYPE_ARP, None)
        );
        let req = Arp::parse(f.payload).unwrap();
        assert_eq!(
            (req.op, req.target_ip, req.sender_ip),
            (ArpOp::Request, ip(9), ip(1))
        );
        assert_eq!(
            l.send(t, ip(9), &packet, &mut out),
            Err(LinkRefusal::Unresolved),
            "no second request within the retry time"
        );
        let answer = arp_frame(req.reply(CE, ip(9)), GW, None);
        assert_eq!(
            l.receive(t, &answer, None, &mut [0u8; 64]),
            Ok(Received::Arp { reply: None })
        );
        assert_eq!(
            l.send(t, ip(9), &packet, &mut out),
            Ok(Sent::Frame(MIN_FRAME))
        );
    }

    #[test]
    fn frames_of_others_are_refused_and_ip_is_unpadded() {
        let mut l = link(Some(101));
        let t = Instant::now();
        let mut f = [0u8; 128];
        let packet = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 192, 0, 2, 1,
        ];
        let n = write_frame(&mut f, GW, CE, Some(101), ETHERTYPE_IPV4, &packet).unwrap();
        assert_eq!(
            l.receive(t, &f[..n], None, &mut []),
            Ok(Received::Packet(18..38)),
            "padding cut off"
        );
        let n = write_frame(&mut f, GW, CE, Some(102), ETHERTYPE_IPV4, &packet).unwrap();
        assert_eq!(
            l.receive(t, &f[..n], Some(101), &mut []),
            Err(LinkRefusal::OtherVlan),
            "the tag in the frame counts"
        );
        let n = write_frame(&mut f, GW, CE, None, ETHERTYPE_IPV4, &packet).unwrap();
        assert_eq!(
            l.receive(t, &f[..n], None, &mut []),
            Err(LinkRefusal::OtherVlan)
        );
        assert_eq!(
            l.receive(t, &f[..n], Some(102), &mut []),
            Err(LinkRefusal::OtherVlan)
        );
        assert_eq!(
            l.receive(t, &f[..n], Some(101), &mut []),
            Ok(Received::Packet(14..34)),
            "the tag the kernel took out"
        );
        let n = write_frame(&mut f, CE, CE, Some(101), ETHERTYPE_IPV4, &packet).unwrap();
        assert_eq!(
            l.receive(t, &f[..n], None, &mut []),
            Err(LinkRefusal::NotForUs)
        );
        let n = write_frame(&mut f, GW, CE, Some(101), ETHERTYPE_IPV6, &packet).unwrap();
        assert_eq!(l.receive(t, &f[..n], None, &mut []), Err(LinkRefusal::Ipv6));
        let n = write_frame(&mut f, GW, CE, Some(101), 0x88cc, &packet).unwrap();
        assert_eq!(
            l.receive(t, &f[..n], None, &mut []),
            Err(LinkRefusal::OtherEthertype)
        );
        // Another host asking for another host: nothing learned, nothing answered.
        let chatter = arp_frame(Arp::request(CE, ip(2), ip(3)), Mac::BROADCAST, Some(101));
        assert_eq!(
            l.receive(t, &chatter, None, &mut [0u8; 64]),
            Err(LinkRefusal::ArpOther)
        );
        assert!(l.neighbours().is_empty());
        assert_eq!(
            l.receive(t, &[0u8; 10], None, &mut []),
            Err(LinkRefusal::Frame(FrameError::Truncated))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_frame_is_taken_or_refused(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            fuzz_receive(&data);
        }
    }
}
