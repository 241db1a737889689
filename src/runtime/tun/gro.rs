//! Which packets of one send to a TUN device with virtio-net headers leave together: runs of
//! consecutive segments of one TCP connection and, where the device took USO, runs of one
//! UDP flow's consecutive datagrams are written as one super-packet that the kernel cuts
//! again at the first packet's payload size (the receive coalescing a NIC's driver does for
//! Linux, GRO, done before the write), everything else as a packet of its own. A pure
//! function of the packets, no I/O; the plan lives on the caller's stack.
//!
//! A super-packet must come apart into exactly the packets that went in, so a packet joins
//! only what it continues: IPv4 without options and not a fragment, its total length the
//! packet's, no longer than the run's first packet (a shorter one ends the run), the same
//! addresses, ports, TOS, TTL and DF bit as the first; without DF also the next
//! identification, as the kernel numbers the packets it cuts up from the first's
//! [Linux `inet_gso_segment`]. It does so with DF too, where the identification has no
//! meaning [RFC 6864 § 4.1]: a run of DF packets leaves with its identifications renumbered,
//! the one field that may differ from what single writes would have carried. The kernel
//! computes every packet's lengths and checksums anew (`VIRTIO_NET_HDR_F_NEEDS_CSUM`; the
//! transport checksum maybe only in the device a packet leaves by, as for the host's own
//! packets), which would turn a corrupt packet into a valid one, so only packets whose IPv4
//! and transport checksums are correct join, and the ones recomputed equal the ones that went
//! in (a UDP checksum that sums to 0 is 0xFFFF either way [RFC 768]). A packet that does not
//! join is written as it is.
//!
//! * TCP (`GSO_TCPV4`): a segment with a payload, ACK (and PSH on the last segment) and
//!   nothing else, the next sequence number, and the same acknowledgement, window and
//!   options as the first.
//! * UDP (`GSO_UDP_L4`, Linux 6.2): a datagram with a payload (an empty one cannot be told
//!   apart inside a super-packet), its UDP length its IP payload's, and a checksum: one of 0
//!   (none) would leave the kernel with a computed one [Linux `__udp_gso_segment`].
//!
//! A flow's packets leave in their order: a packet of the flow that does not join its open
//! run ends that run. Runs of different flows may overtake single packets of other flows, as
//! after any GRO.
//!
//! The virtio-net header [virtio 1.2 § 5.1.6] is the legacy one TUN uses without
//! `TUNSETVNETLE`: fields in the host's byte order.

use std::net::Ipv4Addr;

use crate::wire::{checksum, ipv4, tcp, udp, PROTO_TCP, PROTO_UDP};

/// Packets one plan covers.
pub const MAX_PACKETS: usize = 128;
/// Packets one super-packet carries at most: a virtio-net header that asks for more UDP
/// datagrams than `UDP_MAX_SEGMENTS` is refused (the limit was 64 until 2024, now 128).
pub const MAX_SEGMENTS: usize = 64;
/// Length of `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;
/// The longest header a super-packet repeats in its packets: IPv4 without options and TCP
/// with 40 bytes of options.
pub const MAX_HEADERS: usize = ipv4::HEADER_LEN + 60;
/// Runs open at once; a further flow closes the oldest one's run.
const OPEN: usize = 8;

const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
/// The virtio-net header of a packet written as it is: no offload asked for.
pub const PLAIN_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
const NONE: u16 = u16::MAX;

/// The transport of a run: how the kernel cuts it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Tcp,
    Udp,
}

impl Kind {
    fn protocol(self) -> u8 {
        match self {
            Kind::Tcp => PROTO_TCP,
            Kind::Udp => PROTO_UDP,
        }
    }

    /// The virtio-net header's `gso_type`.
    fn gso_type(self) -> u8 {
        match self {
            Kind::Tcp => VIRTIO_NET_HDR_GSO_TCPV4,
            Kind::Udp => VIRTIO_NET_HDR_GSO_UDP_L4,
        }
    }

    /// Where the checksum lies in the transport header (the header's `csum_offset`).
    fn checksum_offset(self) -> usize {
        match self {
            Kind::Tcp => tcp::CHECKSUM_OFFSET,
            Kind::Udp => udp::CHECKSUM_OFFSET,
        }
    }
}

/// One write: a packet alone (`count == 1`) or a super-packet of `count` packets.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    /// Index of its first packet.
    first: u16,
    last: u16,
    count: u16,
    kind: Kind,
    /// IPv4 and transport header bytes of each packet.
    headers: u16,
    /// Payload bytes of the first packet: where the kernel cuts.
    gso: u16,
    /// Payload bytes of all packets.
    payload: u32,
    /// The last segment has PSH (TCP).
    psh: bool,
}

impl Unit {
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }
}

/// A run still open for more packets of its flow.
#[derive(Copy, Clone, Debug)]
struct Open {
    key: Flow,
    unit: u16,
    /// The sequence number a joining TCP segment must have.
    next_seq: u32,
    /// Whether the first packet's checksums have been checked (only once a second one
    /// would join).
    verified: bool,
}

/// Protocol, addresses and ports, as they lie in the packet.
type Flow = [u8; 13];

/// The packets of one send, grouped into writes.
pub struct Plan {
    /// Whether UDP runs may be coalesced: the device took `TUN_F_USO4`.
    udp: bool,
    units: [Unit; MAX_PACKETS],
    len: usize,
    /// The next packet of the same super-packet, by packet index.
    next: [u16; MAX_PACKETS],
    open: [Option<Open>; OPEN],
    /// The slot a flow without a free slot takes.
    evict: usize,
}

/// What a packet that may join a run looks like.
#[derive(Copy, Clone, Debug)]
struct Segment {
    key: Flow,
    kind: Kind,
    /// TCP's sequence number (0 for UDP).
    seq: u32,
    headers: usize,
    payload: usize,
    psh: bool,
}

impl Plan {
    /// A plan for a device that segments TCP, and UDP too when `udp` (USO).
    pub fn new(udp: bool) -> Plan {
        Plan {
            udp,
            units: [Unit::default(); MAX_PACKETS],
            len: 0,
            next: [NONE; MAX_PACKETS],
            open: [None; OPEN],
            evict: 0,
        }
    }

    /// Groups the first [`MAX_PACKETS`] of `packets` (IPv4 packets for a TUN device, any
    /// bytes accepted) into writes.
    pub fn make(&mut self, packets: &[&[u8]]) {
        self.len = 0;
        self.open = [None; OPEN];
        self.evict = 0;
        for i in 0..packets.len().min(MAX_PACKETS) {
            self.next[i] = NONE;
            self.add(packets, i);
        }
    }

    /// The writes, in order.
    pub fn units(&self) -> &[Unit] {
        &self.units[..self.len]
    }

    /// The packets of `unit`, in order.
    pub fn members<'s, 'p: 's>(
        &'s self,
        unit: &Unit,
        packets: &'s [&'p [u8]],
    ) -> impl Iterator<Item = &'p [u8]> + 's {
        let packets = &packets[..packets.len().min(MAX_PACKETS)];
        let mut at = unit.first;
        std::iter::from_fn(move || {
            let p = packets.get(usize::from(at))?;
            at = self.next[usize::from(at)];
            Some(*p)
        })
    }

    /// What is written of `unit`: a head (written into `head`) and the bodies after it. A
    /// single packet: [`PLAIN_HDR`], then the packet. A super-packet: the virtio-net header
    /// asking for TCP or UDP segmentation and the first packet's IPv4 and transport headers
    /// fixed for the whole (lengths, IPv4 checksum, PSH of the last TCP segment, the
    /// checksum field holding the pseudo-header sum of the whole that the kernel adjusts
    /// for each packet's length and completes), then each packet's payload.
    pub fn head(
        &self,
        unit: &Unit,
        packets: &[&[u8]],
        head: &mut [u8; VNET_HDR_LEN + MAX_HEADERS],
    ) -> usize {
        if unit.count <= 1 {
            head[..VNET_HDR_LEN].copy_from_slice(&PLAIN_HDR);
            return VNET_HDR_LEN;
        }
        let Some(first) = packets.get(usize::from(unit.first)) else {
            return 0;
        };
        let kind = unit.kind;
        let h = usize::from(unit.headers);
        let total = h + unit.payload as usize;
        let (vnet, rest) = head.split_at_mut(VNET_HDR_LEN);
        vnet[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        vnet[1] = kind.gso_type();
        vnet[2..4].copy_from_slice(&unit.headers.to_ne_bytes());
        vnet[4..6].copy_from_slice(&unit.gso.to_ne_bytes());
        vnet[6..8].copy_from_slice(&(ipv4::HEADER_LEN as u16).to_ne_bytes());
        vnet[8..10].copy_from_slice(&(kind.checksum_offset() as u16).to_ne_bytes());
        let hdr = &mut rest[..h];
        hdr.copy_from_slice(&first[..h]);
        hdr[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        hdr[10..12].fill(0);
        let ip_sum = checksum::checksum(&hdr[..ipv4::HEADER_LEN]);
        hdr[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let src = Ipv4Addr::from([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let dst = Ipv4Addr::from([hdr[16], hdr[17], hdr[18], hdr[19]]);
        let l4_len = (total - ipv4::HEADER_LEN) as u16;
        let t = &mut hdr[ipv4::HEADER_LEN..];
        match kind {
            Kind::Tcp if unit.psh => t[13] |= tcp::FLAG_PSH,
            Kind::Tcp => {}
            // The kernel takes the whole's length out of the sum and each datagram's in.
            Kind::Udp => t[4..6].copy_from_slice(&l4_len.to_be_bytes()),
        }
        let pseudo = checksum::pseudo_header(src, dst, kind.protocol(), l4_len);
        let at = kind.checksum_offset();
        t[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
        VNET_HDR_LEN + h
    }

    /// The bytes of `unit` after its head: the packet, or each packet's payload.
    pub fn bodies<'s, 'p: 's>(
        &'s self,
        unit: &Unit,
        packets: &'s [&'p [u8]],
    ) -> impl Iterator<Item = &'p [u8]> + 's {
        let skip = if unit.count <= 1 {
            0
        } else {
            usize::from(unit.headers)
        };
        self.members(unit, packets)
            .map(move |p| p.get(skip..).unwrap_or_default())
    }

    fn add(&mut self, packets: &[&[u8]], i: usize) {
        let p = packets[i];
        let seg = segment(p, self.udp);
        let key = seg.map(|s| s.key).or_else(|| flow(p));
        let slot = key.and_then(|k| self.open.iter().position(|o| o.is_some_and(|o| o.key == k)));
        if let (Some(s), Some(slot)) = (seg, slot) {
            if self.join(packets, slot, i, s) {
                return;
            }
        }
        let unit = self.len as u16;
        self.units[self.len] = Unit {
            first: i as u16,
            last: i as u16,
            count: 1,
            kind: seg.map_or(Kind::Tcp, |s| s.kind),
            headers: seg.map_or(0, |s| s.headers as u16),
            gso: seg.map_or(0, |s| s.payload as u16),
            payload: seg.map_or(0, |s| s.payload as u32),
            psh: seg.is_some_and(|s| s.psh),
        };
        self.len += 1;
        let Some(s) = seg.filter(|s| !s.psh) else {
            // Not a packet a run can start with: the flow's run (if any) ends here.
            if let Some(slot) = slot {
                self.open[slot] = None;
            }
            return;
        };
        let slot = slot
            .or_else(|| self.open.iter().position(Option::is_none))
            .unwrap_or_else(|| {
                self.evict = (self.evict + 1) % OPEN;
                self.evict
            });
        self.open[slot] = Some(Open {
            key: s.key,
            unit,
            next_seq: s.seq.wrapping_add(s.payload as u32),
            verified: false,
        });
    }

    /// Appends packet `i` to the run open in `slot` if it continues it exactly.
    fn join(&mut self, packets: &[&[u8]], slot: usize, i: usize, s: Segment) -> bool {
        let Some(mut open) = self.open[slot] else {
            return false;
        };
        let u = self.units[usize::from(open.unit)];
        let first = packets[usize::from(u.first)];
        let p = packets[i];
        let fits = usize::from(u.count) < MAX_SEGMENTS
            && (s.kind == Kind::Udp || s.seq == open.next_seq)
            && s.headers == usize::from(u.headers)
            && s.payload <= usize::from(u.gso)
            && usize::from(u.headers) + u.payload as usize + s.payload <= usize::from(u16::MAX)
            && same_headers(first, p, s.headers, u.count, s.kind);
        if !fits {
            return false;
        }
        if !open.verified {
            if !checksums_valid(first, u.headers.into(), s.kind) {
                return false;
            }
            open.verified = true;
        }
        if !checksums_valid(p, s.headers, s.kind) {
            return false;
        }
        self.next[usize::from(u.last)] = i as u16;
        let u = &mut self.units[usize::from(open.unit)];
        u.last = i as u16;
        u.count += 1;
        u.payload += s.payload as u32;
        u.psh = s.psh;
        open.next_seq = open.next_seq.wrapping_add(s.payload as u32);
        // A shorter packet or PSH is the last of a run.
        self.open[slot] = (s.payload == usize::from(u.gso) && !s.psh).then_some(open);
        true
    }
}

/// `p` as a packet that may be part of a super-packet: IPv4 without options and not a
/// fragment, its total length the packet's, and a TCP segment or (when `udp`) a UDP
/// datagram that may join a run.
fn segment(p: &[u8], udp: bool) -> Option<Segment> {
    let key = flow(p)?;
    let fragment = u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0;
    if p[0] != 0x45 || usize::from(u16::from_be_bytes([p[2], p[3]])) != p.len() || fragment {
        return None;
    }
    let l4 = &p[ipv4::HEADER_LEN..];
    match p[9] {
        PROTO_TCP => tcp_segment(key, l4),
        PROTO_UDP if udp => udp_datagram(key, l4),
        _ => None,
    }
}

/// A TCP segment with only ACK or ACK and PSH set, and a payload.
fn tcp_segment(key: Flow, t: &[u8]) -> Option<Segment> {
    let thl = usize::from(t.get(12)? >> 4) * 4;
    // The low bits of the data offset byte are reserved (and AccECN's AE).
    if t[12] & 0x0f != 0 || thl < tcp::HEADER_LEN || t.len() <= thl {
        return None;
    }
    let flags = t[13];
    if flags != tcp::FLAG_ACK && flags != tcp::FLAG_ACK | tcp::FLAG_PSH {
        return None;
    }
    Some(Segment {
        key,
        kind: Kind::Tcp,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        headers: ipv4::HEADER_LEN + thl,
        payload: t.len() - thl,
        psh: flags & tcp::FLAG_PSH != 0,
    })
}

/// A UDP datagram with a payload, its length the IP payload's, and a checksum.
fn udp_datagram(key: Flow, d: &[u8]) -> Option<Segment> {
    let len = usize::from(u16::from_be_bytes([*d.get(4)?, *d.get(5)?]));
    let sum = u16::from_be_bytes([*d.get(6)?, *d.get(7)?]);
    if len != d.len() || len <= udp::HEADER_LEN || sum == 0 {
        return None;
    }
    Some(Segment {
        key,
        kind: Kind::Udp,
        seq: 0,
        headers: ipv4::HEADER_LEN + udp::HEADER_LEN,
        payload: len - udp::HEADER_LEN,
        psh: false,
    })
}

/// The flow of an IPv4 TCP or UDP packet that carries its ports (not a later fragment).
fn flow(p: &[u8]) -> Option<Flow> {
    let ihl = usize::from(*p.first()? & 0x0f) * 4;
    if p[0] >> 4 != 4 || ihl < ipv4::HEADER_LEN || p.len() < ihl + 4 {
        return None;
    }
    let protocol = p[9];
    // A non-first fragment: no ports.
    let later = u16::from_be_bytes([p[6], p[7]]) & 0x1fff != 0;
    if (protocol != PROTO_TCP && protocol != PROTO_UDP) || later {
        return None;
    }
    let mut key = [0; 13];
    key[0] = protocol;
    key[1..9].copy_from_slice(&p[12..20]);
    key[9..].copy_from_slice(&p[ihl..ihl + 4]);
    Some(key)
}

/// Whether `p` may follow the `count` packets of a run that starts with `first` (both with
/// `headers` bytes of headers): every header field the kernel copies from the first packet
/// into the ones it cuts is the same, but TCP's sequence number, PSH, and the lengths and
/// checksums it sets itself; without DF the identification is the next one.
fn same_headers(first: &[u8], p: &[u8], headers: usize, count: u16, kind: Kind) -> bool {
    let ip_same = first[..2] == p[..2] && first[6..10] == p[6..10] && first[12..20] == p[12..20];
    let df = first[6] & 0x40 != 0;
    let ident = |b: &[u8]| u16::from_be_bytes([b[4], b[5]]);
    let ident_ok = df || ident(p) == ident(first).wrapping_add(count);
    let (a, b) = (
        &first[ipv4::HEADER_LEN..headers],
        &p[ipv4::HEADER_LEN..headers],
    );
    let l4_same = match kind {
        // Ports, acknowledgement and data offset; window; urgent pointer and options.
        Kind::Tcp => {
            a[..4] == b[..4] && a[8..13] == b[8..13] && a[14..16] == b[14..16] && a[18..] == b[18..]
        }
        // Ports; the length and checksum are each datagram's own.
        Kind::Udp => a[..4] == b[..4],
    };
    ip_same && ident_ok && l4_same
}

/// Whether the IPv4 header checksum and the transport checksum of `p` are correct.
fn checksums_valid(p: &[u8], headers: usize, kind: Kind) -> bool {
    if p.len() < headers || headers < ipv4::HEADER_LEN {
        return false;
    }
    let src = Ipv4Addr::from([p[12], p[13], p[14], p[15]]);
    let dst = Ipv4Addr::from([p[16], p[17], p[18], p[19]]);
    checksum::checksum(&p[..ipv4::HEADER_LEN]) == 0
        && checksum::transport(src, dst, kind.protocol(), &p[ipv4::HEADER_LEN..]) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tun::testing::{
        fix_checksums, tcp_segment, udp_datagram, udp_datagram_summing_to_zero,
    };
    use proptest::prelude::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 10);
    const B: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

    /// A TCP segment of connection `port` (A:port → B:5201), acknowledging 7.
    fn seg(port: u16, seq: u32, flags: u8, payload: &[u8], ident: u16) -> Vec<u8> {
        tcp_segment((A, port), (B, 5201), seq, 7, flags, None, payload, ident)
    }

    /// A UDP datagram of flow `port` (A:port → B:4433).
    fn dgram(port: u16, payload: &[u8], ident: u16) -> Vec<u8> {
        udp_datagram((A, port), (B, 4433), payload, ident)
    }

    fn data(k: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + k * 13) as u8).collect()
    }

    /// The packets of `v` of one flow: `protocol` from A's `port`.
    fn flow_of(v: &[Vec<u8>], protocol: u8, port: u16) -> Vec<Vec<u8>> {
        v.iter()
            .filter(|p| p[9] == protocol && u16::from_be_bytes([p[20], p[21]]) == port)
            .cloned()
            .collect()
    }

    /// Per flow (protocol and source port), the kernel got every packet of `sent`, unchanged
    /// and in order.
    fn same_per_flow(
        out: &[Vec<u8>],
        sent: &[Vec<u8>],
        protocol: u8,
        ports: impl IntoIterator<Item = u16>,
    ) {
        for port in ports {
            assert_eq!(
                flow_of(out, protocol, port),
                flow_of(sent, protocol, port),
                "flow {port}"
            );
        }
    }

    /// What the kernel makes of a super-packet [Linux `inet_gso_segment` with
    /// `tcp_gso_segment` or `__udp_gso_segment`]: packets of `gso_size` bytes of payload (the
    /// last may be shorter), each with the header, its IPv4 length, the identification
    /// counted up from the first's (DF or not), and both checksums computed (a UDP one of 0
    /// sent as 0xFFFF); TCP's sequence number counted on, PSH (and FIN, CWR) only on the
    /// last; UDP's length each datagram's.
    fn resegment(head: &[u8], body: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(head[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        let kind = match head[1] {
            VIRTIO_NET_HDR_GSO_TCPV4 => Kind::Tcp,
            VIRTIO_NET_HDR_GSO_UDP_L4 => Kind::Udp,
            other => panic!("gso_type {other}"),
        };
        let u16_at = |i: usize| u16::from_ne_bytes([head[i], head[i + 1]]);
        let (hdr_len, gso, start, off) = (u16_at(2), u16_at(4), u16_at(6), u16_at(8));
        let want_off = match kind {
            Kind::Tcp => 16,
            Kind::Udp => 6,
        };
        assert_eq!((start, off), (20, want_off));
        let hdr = &head[VNET_HDR_LEN..];
        assert_eq!(usize::from(hdr_len), hdr.len());
        let l4_len = (hdr.len() - 20 + body.len()) as u16;
        assert_eq!(
            usize::from(u16::from_be_bytes([hdr[2], hdr[3]])),
            hdr.len() + body.len(),
            "the super-packet's total length"
        );
        assert_eq!(checksum::checksum(&hdr[..20]), 0, "its IPv4 checksum");
        if kind == Kind::Udp {
            assert_eq!(hdr[24..26], l4_len.to_be_bytes(), "the whole's UDP length");
        }
        let pseudo = checksum::pseudo_header(A, B, kind.protocol(), l4_len);
        let at = 20 + usize::from(off);
        assert_eq!(
            u16::from_be_bytes([hdr[at], hdr[at + 1]]),
            pseudo,
            "partial checksum"
        );
        let chunks: Vec<&[u8]> = body.chunks(usize::from(gso)).collect();
        let seq0 = u32::from_be_bytes([hdr[24], hdr[25], hdr[26], hdr[27]]);
        let id0 = u16::from_be_bytes([hdr[4], hdr[5]]);
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = [hdr, c].concat();
                let len = p.len() as u16;
                p[2..4].copy_from_slice(&len.to_be_bytes());
                p[4..6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
                match kind {
                    Kind::Tcp => {
                        let seq = seq0.wrapping_add(u32::from(gso) * i as u32);
                        p[24..28].copy_from_slice(&seq.to_be_bytes());
                        if i + 1 < chunks.len() {
                            p[33] &= !(tcp::FLAG_PSH | tcp::FLAG_FIN | 0x80);
                        }
                    }
                    Kind::Udp => p[24..26].copy_from_slice(&(len - 20).to_be_bytes()),
                }
                fix_checksums(&mut p);
                p
            })
            .collect()
    }

    /// Every write of `packets` to a device with USO as the kernel receives it: the packet of
    /// a single write, the packets of a super-packet.
    fn writes(packets: &[Vec<u8>]) -> (Vec<usize>, Vec<Vec<u8>>) {
        writes_to(true, packets)
    }

    /// [`writes`] to a device with USO (`udp`) or without.
    fn writes_to(udp: bool, packets: &[Vec<u8>]) -> (Vec<usize>, Vec<Vec<u8>>) {
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let mut plan = Plan::new(udp);
        plan.make(&refs);
        let mut counts = vec![];
        let mut out = vec![];
        for u in plan.units() {
            let mut head = [0; VNET_HDR_LEN + MAX_HEADERS];
            let n = plan.head(u, &refs, &mut head);
            let body: Vec<u8> = plan.bodies(u, &refs).flatten().copied().collect();
            counts.push(u.count());
            if u.count() == 1 {
                assert_eq!(&head[..n], &PLAIN_HDR);
                out.push(body);
            } else {
                out.extend(resegment(&head[..n], &body));
            }
        }
        (counts, out)
    }

    /// The header tun-rs reads and writes is the one written here.
    #[test]
    fn the_virtio_net_header_is_tun_rs_s() {
        assert_eq!(VNET_HDR_LEN, tun_rs::VIRTIO_NET_HDR_LEN);
        assert_eq!(VIRTIO_NET_HDR_GSO_TCPV4, tun_rs::VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(VIRTIO_NET_HDR_GSO_UDP_L4, tun_rs::VIRTIO_NET_HDR_GSO_UDP_L4);
    }

    /// 40 full segments and a shorter last one with PSH of one connection leave as one
    /// super-packet, which the kernel cuts back into exactly those packets.
    #[test]
    fn a_run_of_one_connection_becomes_one_super_packet() {
        let mut packets: Vec<Vec<u8>> = (0..40)
            .map(|k| {
                seg(
                    1000,
                    1 + 1448 * k as u32,
                    tcp::FLAG_ACK,
                    &data(k, 1448),
                    9 + k as u16,
                )
            })
            .collect();
        packets.push(seg(
            1000,
            1 + 1448 * 40,
            tcp::FLAG_ACK | tcp::FLAG_PSH,
            &data(40, 300),
            49,
        ));
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [41]);
        assert_eq!(out, packets);
    }

    /// What ends a run or keeps a packet out of one, each connection's packets staying in
    /// their order.
    #[test]
    fn runs_end_where_a_segment_does_not_continue_them() {
        let ack = tcp::FLAG_ACK;
        let p = |port, seq: u32, flags, len, ident| {
            seg(port, seq, flags, &data(seq as usize, len), ident)
        };
        let mut bad = p(1, 4001, ack, 1000, 5);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut other_window = p(2, 3001, ack, 1000, 4);
        other_window[34] = 0x10;
        fix_checksums(&mut other_window);
        let packets = vec![
            p(1, 1, ack, 1000, 1),
            p(2, 1, ack, 1000, 1),
            p(1, 1001, ack, 1000, 2),                           // joins 0
            p(2, 1001, ack, 1000, 2),                           // joins 1
            p(1, 2001, ack, 0, 3),    // a pure ACK: ends connection 1's run
            p(1, 2001, ack, 1000, 4), // starts a new one
            p(2, 2001, ack, 500, 3),  // shorter: joins 1 and ends it
            p(2, 2501, ack, 500, 4),  // new run
            p(1, 3001, ack, 1000, 5), // joins 5
            p(2, 3001, ack, 1000, 5), // longer than its run's first: new run
            other_window,             // another window: not the same headers
            bad,                      // corrupt payload: never joins
            p(1, 4001, tcp::FLAG_ACK | tcp::FLAG_PSH, 1000, 6), // no: the corrupt one took its place
            p(3, 1, ack | tcp::FLAG_FIN, 10, 1),                // FIN: alone
        ];
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [2, 3, 1, 2, 1, 1, 1, 1, 1, 1]);
        // Per connection, the kernel gets every packet, unchanged and in order.
        same_per_flow(&out, &packets, PROTO_TCP, [1, 2, 3]);
    }

    /// A sequence gap, another acknowledgement, TTL, TOS or option, a fragment, or (without
    /// DF) an identification out of turn starts a new run; the segment limit and 64 KiB end
    /// one.
    #[test]
    fn header_differences_and_limits_start_new_runs() {
        let ack = tcp::FLAG_ACK;
        let base = |k: u32| seg(1, 1 + 100 * k, ack, &[k as u8; 100], k as u16);
        let changed = |k: u32, f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = base(k);
            f(&mut p);
            fix_checksums(&mut p);
            p
        };
        let no_df = |p: &mut Vec<u8>| p[6] = 0;
        let packets = vec![
            base(0),
            base(2),                     // gap
            changed(3, &|p| p[31] ^= 1), // acknowledgement
            changed(4, &|p| p[8] = 63),  // TTL
            changed(5, &|p| p[1] = 4),   // TOS
            base(6),
            changed(7, &no_df), // DF
            changed(8, &|p| {
                no_df(p);
                p[5] = 8
            }), // no DF: joins 6 with ident 8
            changed(9, &|p| {
                no_df(p);
                p[5] = 0
            }), // ... not with ident 0
            changed(10, &|p| p[6] = 0x20), // a first fragment (MF): alone
            changed(11, &|p| p[6] = 0x20), // and the next one too
            changed(12, &|p| p[6] = 0x60), // DF and MF: alone too
        ];
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]);
        assert_eq!(out, packets);

        let packets: Vec<Vec<u8>> = (0..MAX_SEGMENTS as u32 + 1).map(base).collect();
        assert_eq!(writes(&packets).0, [MAX_SEGMENTS, 1]);
        let big = |k: u32| seg(1, 1 + 1460 * k, ack, &[k as u8; 1460], k as u16);
        let packets: Vec<Vec<u8>> = (0..50).map(big).collect();
        let (counts, out) = writes(&packets);
        // (65535 − 40) / 1460 = 44 segments fit the IPv4 length.
        assert_eq!(counts, [44, 6]);
        assert_eq!(out, packets);
    }

    /// More connections than runs open at once: each still keeps its order.
    #[test]
    fn many_connections_keep_their_order() {
        let packets: Vec<Vec<u8>> = (0..96u32)
            .map(|k| {
                let (port, n) = (k % 12, k / 12);
                seg(
                    port as u16,
                    1 + 100 * n,
                    tcp::FLAG_ACK,
                    &[k as u8; 100],
                    n as u16,
                )
            })
            .collect();
        let (counts, out) = writes(&packets);
        assert_eq!(counts.iter().sum::<usize>(), 96);
        same_per_flow(&out, &packets, PROTO_TCP, 0..12);
    }

    /// 40 datagrams of one flow (one with a checksum that computes to 0, sent as 0xFFFF)
    /// and a shorter last one leave as one super-packet, which the kernel cuts back into
    /// exactly those datagrams, byte for byte.
    #[test]
    fn a_run_of_one_flow_s_datagrams_becomes_one_super_packet() {
        let mut packets: Vec<Vec<u8>> = (0..40)
            .map(|k| dgram(1000, &data(k, 1200), 9 + k as u16))
            .collect();
        packets[7] = udp_datagram_summing_to_zero((A, 1000), (B, 4433), 1200, 16);
        packets.push(dgram(1000, &data(40, 300), 49));
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [41]);
        assert_eq!(out, packets);
    }

    /// DF datagrams join whatever their identification; the kernel numbers them up from the
    /// first's, and that (with the IPv4 checksum over it) is all that comes out different.
    #[test]
    fn df_datagrams_join_and_are_renumbered() {
        let packets: Vec<Vec<u8>> = (0..10).map(|k| dgram(1, &data(k, 500), 0)).collect();
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [10]);
        let renumbered: Vec<Vec<u8>> = packets
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let mut p = p.clone();
                p[4..6].copy_from_slice(&(k as u16).to_be_bytes());
                fix_checksums(&mut p);
                p
            })
            .collect();
        assert_eq!(out, renumbered);
    }

    /// What ends a UDP run or keeps a datagram out of one, each flow's datagrams staying in
    /// their order: another flow between them, a shorter datagram (last of its run), a
    /// longer one (first of a new run), no checksum, a corrupt one, a TCP segment of the same
    /// addresses and ports (another flow).
    #[test]
    fn udp_runs_end_where_a_datagram_does_not_continue_them() {
        let d = |port, len, ident: u16| dgram(port, &data(usize::from(ident), len), ident);
        // Without a checksum, though its sum (0 and 0xFFFF both being zero) verifies.
        let mut no_sum = udp_datagram_summing_to_zero((A, 1), (B, 4433), 1000, 3);
        no_sum[26..28].fill(0);
        let mut corrupt = d(2, 1000, 5);
        corrupt[40] ^= 1;
        let tcp_of_flow_1 =
            tcp_segment((A, 1), (B, 4433), 1, 1, tcp::FLAG_ACK, None, &[9; 1000], 1);
        let packets = vec![
            d(1, 1000, 1), // 0: a run of flow 1
            d(2, 1000, 1), // 1: a run of flow 2
            d(1, 1000, 2), // joins 0
            d(2, 1000, 2), // joins 1
            no_sum,        // no checksum: alone, ends flow 1's run
            d(1, 1000, 4), // a new run of flow 1
            d(2, 400, 3),  // shorter: joins 1 and ends it
            d(2, 1000, 4), // a new run of flow 2
            d(1, 1200, 5), // longer than its run's first: a new run
            d(1, 1200, 6), // joins it
            corrupt,       // never joins, takes flow 2's run
            d(2, 1000, 6), // cannot join the corrupt one: a new run
            tcp_of_flow_1, // TCP: not flow 1
            d(1, 1200, 7), // joins flow 1's run of 1200
            d(2, 1000, 7), // joins flow 2's
        ];
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [2, 3, 1, 1, 1, 3, 1, 2, 1]);
        same_per_flow(&out, &packets, PROTO_UDP, [1, 2]);
        same_per_flow(&out, &packets, PROTO_TCP, [1]);
    }

    /// Another TTL or TOS, a fragment, IPv4 options, an empty datagram, a UDP length short of
    /// the IPv4 payload, DF changing, or (without DF) an identification out of turn: not the
    /// same run; the datagram limit and 64 KiB end one.
    #[test]
    fn udp_header_differences_and_limits_start_new_runs() {
        let base = |k: u16| dgram(1, &[k as u8; 100], k);
        let changed = |k: u16, f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = base(k);
            f(&mut p);
            fix_checksums(&mut p);
            p
        };
        let no_df = |p: &mut Vec<u8>| p[6] = 0;
        let mut options = base(6);
        options.splice(20..20, [1, 1, 1, 0]);
        options[0] = 0x46;
        options[3] += 4;
        ipv4::Ipv4Packet::new_unchecked(&mut options[..]).fill_checksum();
        let packets = vec![
            base(0),
            changed(1, &|p| p[8] = 63),   // TTL
            changed(2, &|p| p[1] = 4),    // TOS
            base(3),                      // TOS again
            changed(4, &|p| p[6] = 0x60), // DF and MF: a first fragment, alone
            changed(5, &|p| p[6] = 0x60), // and the next one too
            options,                      // IPv4 options: alone
            base(7),
            dgram(1, &[], 8), // empty: alone
            base(9),
            changed(10, &|p| p[25] -= 10), // UDP length 10 bytes short: alone
            changed(11, &no_df),           // DF
            changed(12, &no_df),           // no DF: joins 11 with ident 12
            changed(13, &|p| {
                no_df(p);
                p[5] = 0
            }), // ... not with ident 0
        ];
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1]);
        assert_eq!(out, packets);

        let packets: Vec<Vec<u8>> = (0..MAX_SEGMENTS as u16 + 1).map(base).collect();
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [MAX_SEGMENTS, 1]);
        assert_eq!(out, packets);
        let big = |k: u16| dgram(1, &[k as u8; 1472], k);
        let packets: Vec<Vec<u8>> = (0..50).map(big).collect();
        let (counts, out) = writes(&packets);
        // (65535 − 28) / 1472 = 44 datagrams fit the IPv4 length.
        assert_eq!(counts, [44, 6]);
        assert_eq!(out, packets);
    }

    /// A device without USO gets every datagram alone, TCP runs still together.
    #[test]
    fn without_uso_datagrams_leave_one_by_one() {
        let mut packets: Vec<Vec<u8>> =
            (0..4).map(|k| dgram(1, &data(k, 1000), k as u16)).collect();
        packets.extend((0..3).map(|k| {
            seg(
                1,
                1 + 1000 * k,
                tcp::FLAG_ACK,
                &data(k as usize, 1000),
                k as u16,
            )
        }));
        let (counts, out) = writes_to(false, &packets);
        assert_eq!(counts, [1, 1, 1, 1, 3]);
        assert_eq!(out, packets);
    }

    proptest! {
        /// Any bytes: no panic, every packet written exactly once, a single packet as it is.
        #[test]
        fn any_bytes_are_planned_without_loss(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..140)) {
            let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
            let mut plan = Plan::new(true);
            plan.make(&refs);
            let mut seen = vec![];
            for u in plan.units() {
                let mut head = [0; VNET_HDR_LEN + MAX_HEADERS];
                plan.head(u, &refs, &mut head);
                let members: Vec<&[u8]> = plan.members(u, &refs).collect();
                prop_assert_eq!(members.len(), u.count());
                seen.extend(members);
                let bodies: usize = plan.bodies(u, &refs).map(<[u8]>::len).sum();
                prop_assert!(bodies <= 65535);
            }
            let want: Vec<&[u8]> = refs.iter().take(MAX_PACKETS).copied().collect();
            seen.sort();
            let mut want = want;
            want.sort();
            prop_assert_eq!(seen, want);
        }

        /// TCP segments and UDP datagrams of a few flows in any interleaving, some corrupt,
        /// shorter, with PSH or without a UDP checksum: the kernel gets back each flow's
        /// packets unchanged and in order.
        #[test]
        fn interleaved_flows_come_back_unchanged(
            picks in proptest::collection::vec((0u16..4, any::<bool>(), 1usize..1400, any::<bool>(), 0u8..20), 1..128),
        ) {
            let mut next = [1u32; 4];
            let mut ident = [[0u16; 4]; 2];
            let packets: Vec<Vec<u8>> = picks
                .iter()
                .map(|&(port, udp, len, odd, corrupt)| {
                    let i = usize::from(port);
                    let payload = data(next[i] as usize, len);
                    let id = ident[usize::from(udp)][i];
                    ident[usize::from(udp)][i] += 1;
                    let mut p = if udp {
                        let mut d = dgram(port, &payload, id);
                        if odd {
                            d[26..28].fill(0);
                        }
                        d
                    } else {
                        let flags = tcp::FLAG_ACK | if odd { tcp::FLAG_PSH } else { 0 };
                        let s = seg(port, next[i], flags, &payload, id);
                        next[i] += len as u32;
                        s
                    };
                    if corrupt == 0 {
                        let last = p.len() - 1;
                        p[last] ^= 0x55;
                    }
                    p
                })
                .collect();
            let (_, out) = writes(&packets);
            for protocol in [PROTO_TCP, PROTO_UDP] {
                for port in 0..4u16 {
                    prop_assert_eq!(flow_of(&out, protocol, port), flow_of(&packets, protocol, port));
                }
            }
        }
    }
}
