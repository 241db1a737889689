//! Reading the captures in `tests/vectors/` (real exchanges of wireguard-go and strongSwan,
//! made with the recipes in `../shared/peers/`) for the tunnels' tests.

use std::net::{Ipv4Addr, SocketAddr};

/// One UDP datagram of a capture.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: &'a [u8],
}

impl<'a> Datagram<'a> {
    pub fn from_payload(self) -> (SocketAddr, &'a [u8]) {
        (self.from, self.payload)
    }
}

/// The UDP datagrams of an Ethernet/IPv4/UDP pcap (microsecond, little-endian), in order.
pub fn udp_payloads(pcap: &[u8]) -> Vec<Datagram<'_>> {
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        let frame = &pcap[off + 16..off + 16 + incl];
        off += 16 + incl;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(ip[9], 17, "UDP");
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let udp = &ip[ihl..];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(Datagram {
            from: SocketAddr::from((src, sport)),
            to: SocketAddr::from((dst, dport)),
            payload: &udp[8..ulen],
        });
    }
    out
}

/// The hex dumps of a charon log at level 4 (`tests/vectors/ipsec-ike-esp.keys.log`): the
/// bytes dumped after the first line containing `label` (e.g. `"Sk_ei secret"`).
pub fn charon_secret(log: &str, label: &str) -> Vec<u8> {
    let mut lines = log.lines().skip_while(|l| !l.contains(label));
    lines
        .next()
        .unwrap_or_else(|| panic!("{label} not in the log"));
    let mut out = Vec::new();
    for l in lines {
        // "13:11:32 12[IKE] <lab|1>    0: E4 7C ...  .|.jS..j4"
        let Some((_, rest)) = l.split_once("> ") else {
            break;
        };
        let Some((offset, bytes)) = rest.split_once(": ") else {
            break;
        };
        if offset.trim().parse::<usize>().is_err() {
            break;
        }
        for w in bytes.split_whitespace().take(16) {
            match u8::from_str_radix(w, 16) {
                Ok(b) if w.len() == 2 => out.push(b),
                _ => break,
            }
        }
    }
    out
}

#[test]
fn reads_the_strongswan_capture_and_its_keys() {
    let pcap = include_bytes!("../../tests/vectors/ipsec-ike-esp.pcap");
    let d = udp_payloads(pcap);
    assert_eq!(d.len(), 14);
    assert_eq!(d[0].to.port(), 500);
    assert_eq!(d[2].to.port(), 4500);
    assert_eq!(&d[2].payload[..4], &[0; 4], "non-ESP marker");
    let log = include_str!("../../tests/vectors/ipsec-ike-esp.keys.log");
    assert_eq!(charon_secret(log, "shared Diffie Hellman secret").len(), 32);
    assert_eq!(charon_secret(log, "Sk_ei secret").len(), 36);
    assert_eq!(
        charon_secret(log, "encryption initiator key"),
        [
            0x03, 0xCD, 0xE3, 0x97, 0x23, 0x20, 0x91, 0x8E, 0x15, 0x9B, 0x9B, 0x38, 0x57, 0x4A,
            0x5F, 0xE2, 0x73, 0x69, 0x5E, 0x74
        ]
    );
}
