//! Ethernet II frames with at most one 802.1Q tag [IEEE 802.1Q § 9], and ARP for IPv4 over
//! Ethernet [RFC 826]: what an `ethernet` attachment reads and writes on a carrier's port.
//!
//! [`parse`] takes a received frame (without the FCS, as AF_PACKET delivers it) and never
//! panics; [`write_frame`] and [`Arp::write`] build what the gateway sends. Frames are padded
//! to the 60-byte minimum [IEEE 802.3 § 3.2.8] when built. Stacked tags (802.1ad, QinQ) and
//! VLAN id 4095 are refused; VLAN id 0 is a priority tag, i.e. no VLAN [IEEE 802.1Q § 9.6].

use std::fmt;
use std::net::Ipv4Addr;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad's service tag (QinQ): refused.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Destination, source and EtherType.
pub const HEADER_LEN: usize = 14;
/// An 802.1Q tag: its TPID and TCI.
pub const TAG_LEN: usize = 4;
/// The shortest frame on the wire, FCS left out.
pub const MIN_FRAME: usize = 60;
/// An ARP packet for IPv4 over Ethernet.
pub const ARP_LEN: usize = 28;
/// The largest VLAN id; 4095 is reserved.
pub const VLAN_MAX: u16 = 4094;

/// A MAC address.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// Group addresses (broadcast included) have the I/G bit set.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a frame or an ARP packet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("shorter than its headers")]
    Truncated,
    #[error("more than one VLAN tag (802.1ad/QinQ)")]
    StackedTags,
    #[error("VLAN id 4095 (reserved)")]
    ReservedVlan,
    #[error("a VLAN id above 4094 or a buffer too small to build the frame")]
    Unbuildable,
    #[error("not an ARP packet for IPv4 over Ethernet")]
    ArpFormat,
    #[error("an ARP operation other than request or reply")]
    ArpOperation,
}

/// A received frame, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub dst: Mac,
    pub src: Mac,
    /// The VLAN id of its 802.1Q tag; `None` untagged or priority-tagged (id 0).
    pub vlan: Option<u16>,
    /// The tag's priority (PCP), 0 untagged.
    pub priority: u8,
    pub ethertype: u16,
    /// What follows the headers, padding included (an IPv4 packet's own length says where it
    /// ends).
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn mac_at(b: &[u8], i: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[i..i + 6]);
    Mac(m)
}

/// Parses a received frame.
pub fn parse(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let (dst, src) = (mac_at(frame, 0), mac_at(frame, 6));
    let mut ethertype = u16_at(frame, 12);
    let mut at = HEADER_LEN;
    let (mut vlan, mut priority) = (None, 0);
    if ethertype == ETHERTYPE_QINQ {
        return Err(FrameError::StackedTags);
    }
    if ethertype == ETHERTYPE_VLAN {
        if frame.len() < HEADER_LEN + TAG_LEN {
            return Err(FrameError::Truncated);
        }
        let tci = u16_at(frame, 14);
        let id = tci & 0x0fff;
        if id == 0x0fff {
            return Err(FrameError::ReservedVlan);
        }
        vlan = (id != 0).then_some(id);
        priority = (tci >> 13) as u8;
        ethertype = u16_at(frame, 16);
        at += TAG_LEN;
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            return Err(FrameError::StackedTags);
        }
    }
    Ok(Frame {
        dst,
        src,
        vlan,
        priority,
        ethertype,
        payload: &frame[at..],
    })
}

/// The header length of a frame with or without a tag.
pub fn header_len(vlan: Option<u16>) -> usize {
    HEADER_LEN + if vlan.is_some() { TAG_LEN } else { 0 }
}

/// Writes a frame around `payload` into `buf` (tagged with `vlan`, priority 0) and pads it
/// to [`MIN_FRAME`]; returns its length.
pub fn write_frame(
    buf: &mut [u8],
    dst: Mac,
    src: Mac,
    vlan: Option<u16>,
    ethertype: u16,
    payload: &[u8],
) -> Result<usize, FrameError> {
    let h = header_len(vlan);
    let len = (h + payload.len()).max(MIN_FRAME);
    if buf.len() < len || vlan.is_some_and(|v| v == 0 || v > VLAN_MAX) {
        return Err(FrameError::Unbuildable);
    }
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    if let Some(v) = vlan {
        buf[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        buf[14..16].copy_from_slice(&v.to_be_bytes());
    }
    buf[h - 2..h].copy_from_slice(&ethertype.to_be_bytes());
    buf[h..h + payload.len()].copy_from_slice(payload);
    buf[h + payload.len()..len].fill(0);
    Ok(len)
}

/// An ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: ArpOp,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Parses the payload of an ARP frame (padding after the 28 bytes is ignored).
    pub fn parse(p: &[u8]) -> Result<Arp, FrameError> {
        if p.len() < ARP_LEN {
            return Err(FrameError::Truncated);
        }
        // Hardware Ethernet (1), protocol IPv4, 6- and 4-byte addresses [RFC 826].
        if u16_at(p, 0) != 1 || u16_at(p, 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
            return Err(FrameError::ArpFormat);
        }
        let op = match u16_at(p, 6) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return Err(FrameError::ArpOperation),
        };
        let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
        Ok(Arp {
            op,
            sender_mac: mac_at(p, 8),
            sender_ip: ip(14),
            target_mac: mac_at(p, 18),
            target_ip: ip(24),
        })
    }

    /// Writes the 28 bytes into `buf`.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        let b = buf.get_mut(..ARP_LEN).ok_or(FrameError::Unbuildable)?;
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        b[6..8].copy_from_slice(&op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(ARP_LEN)
    }

    /// A request for `target` from (`mac`, `ip`); sent to the broadcast address.
    pub fn request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Arp {
        Arp {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: target,
        }
    }

    /// The reply of (`mac`, `ip`) to this request; sent to the requester.
    pub fn reply(&self, mac: Mac, ip: Ipv4Addr) -> Arp {
        Arp {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }
}

/// The fuzz target's body: any bytes parse or are refused without a panic, and what parses
/// builds again into a frame that parses the same.
pub fn fuzz_roundtrip(data: &[u8]) {
    let Ok(f) = parse(data) else { return };
    let mut buf = vec![0u8; data.len() + MIN_FRAME + TAG_LEN];
    let n = write_frame(&mut buf, f.dst, f.src, f.vlan, f.ethertype, f.payload)
        .expect("a parsed frame builds");
    let again = parse(&buf[..n]).expect("a built frame parses");
    assert_eq!(
        (again.dst, again.src, again.vlan, again.ethertype),
        (f.dst, f.src, f.vlan, f.ethertype)
    );
    assert_eq!(&again.payload[..f.payload.len()], f.payload);
    if f.ethertype == ETHERTYPE_ARP {
        if let Ok(a) = Arp::parse(f.payload) {
            let mut b = [0u8; ARP_LEN];
            a.write(&mut b).expect("fits");
            assert_eq!(Arp::parse(&b), Ok(a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request Linux 6.18 sent on a veth, captured with `tcpdump -xx` (42 bytes; a veth
    /// does not pad): "Request who-has 10.0.0.1 tell 10.0.0.2".
    const LINUX_ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x2e, 0x65, 0x8c, 0x02, 0x50, 0xd2, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x2e, 0x65, 0x8c, 0x02, 0x50, 0xd2, 0x0a, 0x00, 0x00, 0x02, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn an_arp_request_parses_and_is_answered() {
        let f = parse(&LINUX_ARP_REQUEST).unwrap();
        assert_eq!(f.dst, Mac::BROADCAST);
        assert_eq!((f.vlan, f.ethertype), (None, ETHERTYPE_ARP));
        let req = Arp::parse(f.payload).unwrap();
        assert_eq!(req.op, ArpOp::Request);
        assert_eq!(req.sender_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(req.target_ip, Ipv4Addr::new(10, 0, 0, 1));
        let me = Mac::parse("02:00:5e:00:53:01").unwrap();
        let reply = req.reply(me, req.target_ip);
        let mut arp = [0u8; ARP_LEN];
        reply.write(&mut arp).unwrap();
        let mut frame = [0u8; 64];
        let n = write_frame(&mut frame, req.sender_mac, me, None, ETHERTYPE_ARP, &arp).unwrap();
        assert_eq!(n, MIN_FRAME, "padded to the minimum");
        let back = parse(&frame[..n]).unwrap();
        assert_eq!(back.dst, f.src);
        let a = Arp::parse(back.payload).unwrap();
        assert_eq!(a.op, ArpOp::Reply);
        assert_eq!(
            (a.sender_mac, a.sender_ip),
            (me, Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            (a.target_mac, a.target_ip),
            (f.src, Ipv4Addr::new(10, 0, 0, 2))
        );
    }

    #[test]
    fn a_vlan_tag_is_read_and_written() {
        let me = Mac([2, 0, 0, 0, 0, 1]);
        let mut frame = [0u8; 128];
        let payload = [0x45u8; 50];
        let n = write_frame(
            &mut frame,
            Mac::BROADCAST,
            me,
            Some(101),
            ETHERTYPE_IPV4,
            &payload,
        )
        .unwrap();
        assert_eq!(n, HEADER_LEN + TAG_LEN + 50);
        assert_eq!(&frame[12..18], &[0x81, 0x00, 0x00, 101, 0x08, 0x00]);
        let f = parse(&frame[..n]).unwrap();
        assert_eq!(
            (f.vlan, f.ethertype, f.payload.len()),
            (Some(101), ETHERTYPE_IPV4, 50)
        );
        // Priority 5, VLAN 0: a priority tag, no VLAN.
        frame[14] = 0xa0;
        frame[15] = 0;
        let f = parse(&frame[..n]).unwrap();
        assert_eq!((f.vlan, f.priority), (None, 5));
    }

    #[test]
    fn odd_frames_are_refused() {
        assert_eq!(parse(&[0u8; 13]), Err(FrameError::Truncated));
        let mut tagged = [0u8; 18];
        tagged[12] = 0x81;
        assert_eq!(parse(&tagged[..17]), Err(FrameError::Truncated));
        tagged[14] = 0x0f;
        tagged[15] = 0xff;
        assert_eq!(parse(&tagged), Err(FrameError::ReservedVlan));
        tagged[14] = 0;
        tagged[15] = 7;
        tagged[16] = 0x81;
        assert_eq!(parse(&tagged), Err(FrameError::StackedTags));
        let mut qinq = [0u8; 20];
        qinq[12] = 0x88;
        qinq[13] = 0xa8;
        assert_eq!(parse(&qinq), Err(FrameError::StackedTags));
        let mut arp = LINUX_ARP_REQUEST;
        arp[21] = 3; // RARP request
        assert_eq!(Arp::parse(&arp[14..]), Err(FrameError::ArpOperation));
        arp[21] = 1;
        arp[16] = 0x86; // protocol IPv6
        assert_eq!(Arp::parse(&arp[14..]), Err(FrameError::ArpFormat));
        assert_eq!(Arp::parse(&arp[14..40]), Err(FrameError::Truncated));
        let mut small = [0u8; 59];
        assert_eq!(
            write_frame(&mut small, Mac::ZERO, Mac::ZERO, None, ETHERTYPE_IPV4, &[]),
            Err(FrameError::Unbuildable)
        );
        let mut buf = [0u8; 64];
        for bad in [0, 4095, 5000] {
            assert_eq!(
                write_frame(
                    &mut buf,
                    Mac::ZERO,
                    Mac::ZERO,
                    Some(bad),
                    ETHERTYPE_IPV4,
                    &[]
                ),
                Err(FrameError::Unbuildable)
            );
        }
    }

    #[test]
    fn macs_read_and_print() {
        let m = Mac::parse("02-42-AC-11-00-02").unwrap();
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert!(!m.is_multicast() && Mac::BROADCAST.is_multicast());
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
        ] {
            assert_eq!(Mac::parse(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            fuzz_roundtrip(&data);
        }
    }
}
