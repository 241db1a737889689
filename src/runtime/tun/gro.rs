//! Which packets of one send to a TUN device with virtio-net headers leave together: runs of
//! consecutive segments of one TCP connection are written as one super-packet that the
//! kernel splits again at the first segment's size (the receive coalescing a NIC's driver
//! does for Linux, GRO, done before the write), everything else as a packet of its own. A
//! pure function of the packets, no I/O; the plan lives on the caller's stack.
//!
//! A super-packet must come apart into exactly the packets that went in, so a segment joins
//! only what it continues: IPv4 without options, TCP with ACK (and PSH on the last segment)
//! and nothing else, the next sequence number, no longer than the first segment (a shorter
//! one ends the run), and the same addresses, ports, acknowledgement, window, options, TOS,
//! TTL and DF bit as the first; without DF also the next identification, as the kernel
//! numbers the segments it cuts. The kernel computes every segment's checksum anew
//! (`VIRTIO_NET_HDR_F_NEEDS_CSUM`), which would turn a corrupt segment into a valid one, so
//! only segments whose IPv4 and TCP checksums are correct join; a packet that does not join
//! is written as it is. A connection's packets leave in their order: a packet of the
//! connection that does not join its open run ends that run. Runs of different connections
//! may overtake single packets of other connections, as after any GRO.
//!
//! The virtio-net header [virtio 1.2 § 5.1.6] is the legacy one TUN uses without
//! `TUNSETVNETLE`: fields in the host's byte order.

use std::net::Ipv4Addr;

use crate::wire::{checksum, ipv4, tcp, PROTO_TCP};

/// Packets one plan covers.
pub const MAX_PACKETS: usize = 128;
/// Segments one super-packet carries at most.
pub const MAX_SEGMENTS: usize = 64;
/// Length of `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;
/// The longest header a super-packet repeats in its segments: IPv4 without options and TCP
/// with 40 bytes of options.
pub const MAX_HEADERS: usize = ipv4::HEADER_LEN + 60;
/// Runs open at once; a further connection closes the oldest one's run.
const OPEN: usize = 8;

const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// The virtio-net header of a packet written as it is: no offload asked for.
pub const PLAIN_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
const NONE: u16 = u16::MAX;

/// One write: a packet alone (`count == 1`) or a super-packet of `count` segments.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    /// Index of its first packet.
    first: u16,
    last: u16,
    count: u16,
    /// IPv4 and TCP header bytes of each segment.
    headers: u16,
    /// Payload bytes of the first segment: where the kernel cuts.
    gso: u16,
    /// Payload bytes of all segments.
    payload: u32,
    /// The last segment has PSH.
    psh: bool,
}

impl Unit {
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }
}

/// A run still open for more segments of its connection.
#[derive(Copy, Clone, Debug)]
struct Open {
    key: Connection,
    unit: u16,
    /// The sequence number a joining segment must have.
    next_seq: u32,
    /// Whether the first segment's checksums have been checked (only once a second one
    /// would join).
    verified: bool,
}

/// Addresses and ports, as they lie in the packet.
type Connection = [u8; 12];

/// The packets of one send, grouped into writes.
pub struct Plan {
    units: [Unit; MAX_PACKETS],
    len: usize,
    /// The next segment of the same super-packet, by packet index.
    next: [u16; MAX_PACKETS],
    open: [Option<Open>; OPEN],
    /// The slot a connection without a free slot takes.
    evict: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            units: [Unit::default(); MAX_PACKETS],
            len: 0,
            next: [NONE; MAX_PACKETS],
            open: [None; OPEN],
            evict: 0,
        }
    }
}

/// What a packet that may join a run looks like.
#[derive(Copy, Clone, Debug)]
struct Segment {
    key: Connection,
    seq: u32,
    headers: usize,
    payload: usize,
    psh: bool,
}

impl Plan {
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
    /// asking for TCP segmentation and the first segment's IPv4 and TCP headers fixed for the
    /// whole (lengths, IPv4 checksum, PSH of the last segment, the TCP checksum field
    /// holding the pseudo-header sum the kernel's checksum starts from), then each
    /// segment's payload.
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
        let h = usize::from(unit.headers);
        let total = h + unit.payload as usize;
        let (vnet, rest) = head.split_at_mut(VNET_HDR_LEN);
        vnet[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        vnet[1] = VIRTIO_NET_HDR_GSO_TCPV4;
        vnet[2..4].copy_from_slice(&unit.headers.to_ne_bytes());
        vnet[4..6].copy_from_slice(&unit.gso.to_ne_bytes());
        vnet[6..8].copy_from_slice(&(ipv4::HEADER_LEN as u16).to_ne_bytes());
        vnet[8..10].copy_from_slice(&(tcp::CHECKSUM_OFFSET as u16).to_ne_bytes());
        let hdr = &mut rest[..h];
        hdr.copy_from_slice(&first[..h]);
        hdr[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        hdr[10..12].fill(0);
        let ip_sum = checksum::checksum(&hdr[..ipv4::HEADER_LEN]);
        hdr[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let src = Ipv4Addr::from([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let dst = Ipv4Addr::from([hdr[16], hdr[17], hdr[18], hdr[19]]);
        let t = &mut hdr[ipv4::HEADER_LEN..];
        if unit.psh {
            t[13] |= tcp::FLAG_PSH;
        }
        let pseudo =
            checksum::pseudo_header(src, dst, PROTO_TCP, (total - ipv4::HEADER_LEN) as u16);
        t[tcp::CHECKSUM_OFFSET..tcp::CHECKSUM_OFFSET + 2].copy_from_slice(&pseudo.to_be_bytes());
        VNET_HDR_LEN + h
    }

    /// The bytes of `unit` after its head: the packet, or each segment's payload.
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
        let seg = segment(p);
        let key = seg.map(|s| s.key).or_else(|| connection(p));
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
            headers: seg.map_or(0, |s| s.headers as u16),
            gso: seg.map_or(0, |s| s.payload as u16),
            payload: seg.map_or(0, |s| s.payload as u32),
            psh: seg.is_some_and(|s| s.psh),
        };
        self.len += 1;
        let Some(s) = seg.filter(|s| !s.psh) else {
            // Not a segment a run can start with: the connection's run (if any) ends here.
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
            && s.seq == open.next_seq
            && s.headers == usize::from(u.headers)
            && s.payload <= usize::from(u.gso)
            && usize::from(u.headers) + u.payload as usize + s.payload <= usize::from(u16::MAX)
            && same_headers(first, p, s.headers, u.count);
        if !fits {
            return false;
        }
        if !open.verified {
            if !checksums_valid(first, u.headers.into()) {
                return false;
            }
            open.verified = true;
        }
        if !checksums_valid(p, s.headers) {
            return false;
        }
        self.next[usize::from(u.last)] = i as u16;
        let u = &mut self.units[usize::from(open.unit)];
        u.last = i as u16;
        u.count += 1;
        u.payload += s.payload as u32;
        u.psh = s.psh;
        open.next_seq = open.next_seq.wrapping_add(s.payload as u32);
        // A shorter segment or PSH is the last of a run.
        self.open[slot] = (s.payload == usize::from(u.gso) && !s.psh).then_some(open);
        true
    }
}

/// `p` as a TCP segment that may be part of a super-packet: IPv4 without options and
/// unfragmented, its total length the packet's, TCP with only ACK or ACK and PSH set, and a
/// payload.
fn segment(p: &[u8]) -> Option<Segment> {
    let key = connection(p)?;
    if p[0] != 0x45 || usize::from(u16::from_be_bytes([p[2], p[3]])) != p.len() {
        return None;
    }
    let t = p.get(ipv4::HEADER_LEN..)?;
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
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        headers: ipv4::HEADER_LEN + thl,
        payload: t.len() - thl,
        psh: flags & tcp::FLAG_PSH != 0,
    })
}

/// The connection of an IPv4 TCP packet that carries its ports (not a later fragment).
fn connection(p: &[u8]) -> Option<Connection> {
    let ihl = usize::from(*p.first()? & 0x0f) * 4;
    let is_tcp = p[0] >> 4 == 4 && ihl >= ipv4::HEADER_LEN && p.get(9) == Some(&PROTO_TCP);
    // A non-first fragment: no ports.
    let later = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]) & 0x1fff != 0;
    if !is_tcp || later || p.len() < ihl + 4 {
        return None;
    }
    let mut key = [0; 12];
    key[..8].copy_from_slice(&p[12..20]);
    key[8..].copy_from_slice(&p[ihl..ihl + 4]);
    Some(key)
}

/// Whether `p` may follow the `count` segments of a run that starts with `first` (both
/// segments with `headers` bytes of headers): every header field the kernel copies from the
/// first segment into the ones it cuts is the same, but the sequence number, PSH and the
/// checksums; without DF the identification is the next one.
fn same_headers(first: &[u8], p: &[u8], headers: usize, count: u16) -> bool {
    let ip_same = first[..2] == p[..2] && first[6..10] == p[6..10] && first[12..20] == p[12..20];
    let df = first[6] & 0x40 != 0;
    let ident = |b: &[u8]| u16::from_be_bytes([b[4], b[5]]);
    let ident_ok = df || ident(p) == ident(first).wrapping_add(count);
    let (a, b) = (
        &first[ipv4::HEADER_LEN..headers],
        &p[ipv4::HEADER_LEN..headers],
    );
    // Ports, acknowledgement and data offset; window; urgent pointer and options.
    let tcp_same =
        a[..4] == b[..4] && a[8..13] == b[8..13] && a[14..16] == b[14..16] && a[18..] == b[18..];
    ip_same && ident_ok && tcp_same
}

/// Whether the IPv4 header checksum and the TCP checksum of the segment `p` are correct.
fn checksums_valid(p: &[u8], headers: usize) -> bool {
    if p.len() < headers || headers < ipv4::HEADER_LEN {
        return false;
    }
    let src = Ipv4Addr::from([p[12], p[13], p[14], p[15]]);
    let dst = Ipv4Addr::from([p[16], p[17], p[18], p[19]]);
    checksum::checksum(&p[..ipv4::HEADER_LEN]) == 0
        && checksum::transport(src, dst, PROTO_TCP, &p[ipv4::HEADER_LEN..]) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build;
    use crate::wire::ipv4::Ipv4Packet;
    use proptest::prelude::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 10);
    const B: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

    /// A TCP segment of connection `port` (A:port → B:5201) as a Linux sender makes it: DF,
    /// TTL 64, identification `ident`, window 65535, every checksum right.
    fn seg(port: u16, seq: u32, flags: u8, payload: &[u8], ident: u16) -> Vec<u8> {
        let mut buf = vec![0; 20 + 20 + payload.len()];
        let n = build::tcp(&mut buf, A, B, port, 5201, seq, 7, flags, None, payload).expect("fits");
        buf.truncate(n);
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.set_frag(true, false, 0);
        ip.set_ident(ident);
        ip.fill_checksum();
        buf
    }

    fn data(k: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + k * 13) as u8).collect()
    }

    /// What the kernel makes of a super-packet [Linux `tcp_gso_segment`, `inet_gso_segment`]:
    /// segments of `gso_size` bytes of payload, each with the header, its IPv4 length,
    /// identification counted up, its sequence number, PSH (and FIN, CWR) only on the last,
    /// and both checksums computed.
    fn resegment(head: &[u8], body: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(head[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(head[1], VIRTIO_NET_HDR_GSO_TCPV4);
        let u16_at = |i: usize| u16::from_ne_bytes([head[i], head[i + 1]]);
        let (hdr_len, gso, start, off) = (u16_at(2), u16_at(4), u16_at(6), u16_at(8));
        assert_eq!((start, off), (20, 16));
        let hdr = &head[VNET_HDR_LEN..];
        assert_eq!(usize::from(hdr_len), hdr.len());
        assert_eq!(
            usize::from(u16::from_be_bytes([hdr[2], hdr[3]])),
            hdr.len() + body.len(),
            "the super-packet's total length"
        );
        assert_eq!(checksum::checksum(&hdr[..20]), 0, "its IPv4 checksum");
        let pseudo = checksum::pseudo_header(A, B, PROTO_TCP, (hdr.len() - 20 + body.len()) as u16);
        assert_eq!(
            u16::from_be_bytes([hdr[36], hdr[37]]),
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
                p[10..12].fill(0);
                let s = checksum::checksum(&p[..20]);
                p[10..12].copy_from_slice(&s.to_be_bytes());
                let seq = seq0.wrapping_add(u32::from(gso) * i as u32);
                p[24..28].copy_from_slice(&seq.to_be_bytes());
                if i + 1 < chunks.len() {
                    p[33] &= !(tcp::FLAG_PSH | tcp::FLAG_FIN | 0x80);
                }
                p[36..38].fill(0);
                let s = checksum::transport(A, B, PROTO_TCP, &p[20..]);
                p[36..38].copy_from_slice(&s.to_be_bytes());
                p
            })
            .collect()
    }

    /// Every write of `packets` as the kernel receives it: the packet of a single write, the
    /// segments of a super-packet.
    fn writes(packets: &[Vec<u8>]) -> (Vec<usize>, Vec<Vec<u8>>) {
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let mut plan = Plan::default();
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
        other_window[36..38].fill(0);
        let s = checksum::transport(A, B, PROTO_TCP, &other_window[20..]);
        other_window[36..38].copy_from_slice(&s.to_be_bytes());
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
        for port in [1u16, 2, 3] {
            let of = |v: &Vec<Vec<u8>>| -> Vec<Vec<u8>> {
                v.iter()
                    .filter(|p| u16::from_be_bytes([p[20], p[21]]) == port)
                    .cloned()
                    .collect()
            };
            assert_eq!(of(&out), of(&packets), "connection {port}");
        }
    }

    /// A sequence gap, another acknowledgement, TTL, TOS or option, or (without DF) an
    /// identification out of turn starts a new run; the segment limit and 64 KiB end one.
    #[test]
    fn header_differences_and_limits_start_new_runs() {
        let ack = tcp::FLAG_ACK;
        let fix = |mut p: Vec<u8>| {
            p[10..12].fill(0);
            let s = checksum::checksum(&p[..20]);
            p[10..12].copy_from_slice(&s.to_be_bytes());
            p[36..38].fill(0);
            let s = checksum::transport(A, B, PROTO_TCP, &p[20..]);
            p[36..38].copy_from_slice(&s.to_be_bytes());
            p
        };
        let base = |k: u32| seg(1, 1 + 100 * k, ack, &[k as u8; 100], k as u16);
        let changed = |k: u32, f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = base(k);
            f(&mut p);
            fix(p)
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
        ];
        let (counts, out) = writes(&packets);
        assert_eq!(counts, [1, 1, 1, 1, 1, 1, 2, 1]);
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
        for port in 0..12u16 {
            let of = |v: &[Vec<u8>]| -> Vec<Vec<u8>> {
                v.iter()
                    .filter(|p| u16::from_be_bytes([p[20], p[21]]) == port)
                    .cloned()
                    .collect()
            };
            assert_eq!(of(&out), of(&packets), "connection {port}");
        }
    }

    proptest! {
        /// Any bytes: no panic, every packet written exactly once, a single packet as it is.
        #[test]
        fn any_bytes_are_planned_without_loss(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..140)) {
            let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
            let mut plan = Plan::default();
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

        /// Segments of a few connections in any interleaving, some corrupt or shorter: the
        /// kernel gets back each connection's packets unchanged and in order.
        #[test]
        fn interleaved_connections_come_back_unchanged(
            picks in proptest::collection::vec((0u16..4, 1usize..1400, any::<bool>(), 0u8..20), 1..128),
        ) {
            let mut next = [1u32; 4];
            let mut ident = [0u16; 4];
            let packets: Vec<Vec<u8>> = picks
                .iter()
                .map(|&(port, len, psh, corrupt)| {
                    let flags = tcp::FLAG_ACK | if psh { tcp::FLAG_PSH } else { 0 };
                    let i = usize::from(port);
                    let mut p = seg(port, next[i], flags, &data(next[i] as usize, len), ident[i]);
                    next[i] += len as u32;
                    ident[i] += 1;
                    if corrupt == 0 {
                        p[40] ^= 0x55;
                    }
                    p
                })
                .collect();
            let (_, out) = writes(&packets);
            for port in 0..4u16 {
                let of = |v: &[Vec<u8>]| -> Vec<Vec<u8>> {
                    v.iter().filter(|p| u16::from_be_bytes([p[20], p[21]]) == port).cloned().collect()
                };
                prop_assert_eq!(of(&out), of(&packets));
            }
        }
    }
}
