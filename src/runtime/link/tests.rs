//! Needs CAP_NET_RAW (the tests run as root). Frames sent on loopback come back to packet
//! sockets on it, with the 802.1Q tag of a tagged one taken out by the kernel: the filter must
//! pass each socket only its VLAN's frames (and none of the copies the host sends).

use std::time::{Duration, Instant};

use super::*;

/// IEEE 802 local experimental EtherType: nothing in the kernel takes it.
const EXPERIMENTAL: [u8; 2] = [0x88, 0xb5];

fn frame(vlan: Option<u16>, marker: &[u8; 8]) -> Vec<u8> {
    let mut f = vec![0u8; 6]; // to 00:00:00:00:00:00
    f.extend([0x02, 0, 0x5e, 0, 0x53, 0x77]);
    if let Some(id) = vlan {
        f.extend([0x81, 0x00]);
        f.extend(id.to_be_bytes());
    }
    f.extend(EXPERIMENTAL);
    f.extend(marker);
    f.resize(60, 0);
    f
}

/// The markers of the experimental frames `s` receives within `wait`, with the EtherType
/// each frame shows at offset 12.
async fn markers(s: &tokio::net::UdpSocket, wait: Duration) -> Vec<([u8; 2], [u8; 8])> {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, s.recv(&mut buf)).await {
            Ok(Ok(n)) if n >= 22 => {
                let at = |i: usize| [buf[i], buf[i + 1]];
                // Ours: from 02:00:5e:00:53:77 (the kernel's own loopback frames are not).
                if buf[6..12] == [0x02, 0, 0x5e, 0, 0x53, 0x77] {
                    let mut m = [0u8; 8];
                    let off = if at(12) == [0x81, 0x00] { 18 } else { 14 };
                    m.copy_from_slice(&buf[off..off + 8]);
                    got.push((at(12), m));
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

#[tokio::test]
async fn each_socket_sees_only_its_vlan_untagged_as_the_kernel_leaves_it() {
    let untagged =
        tokio::net::UdpSocket::from_std(open("lo", None).expect("packet socket (root?)")).unwrap();
    let vlan7 = tokio::net::UdpSocket::from_std(open("lo", Some(7)).unwrap()).unwrap();
    let sender = tokio::net::UdpSocket::from_std(open("lo", Some(9)).unwrap()).unwrap();
    let plain = *b"untagged";
    let tagged = *b"vlan7tag";
    let other = *b"vlan8tag";
    sender.send(&frame(None, &plain)).await.unwrap();
    sender.send(&frame(Some(7), &tagged)).await.unwrap();
    sender.send(&frame(Some(8), &other)).await.unwrap();

    let wait = Duration::from_millis(500);
    let (a, b) = tokio::join!(markers(&untagged, wait), markers(&vlan7, wait));
    assert_eq!(a, vec![(EXPERIMENTAL, plain)], "the untagged socket");
    assert_eq!(
        b,
        vec![(EXPERIMENTAL, tagged)],
        "VLAN 7's socket, the tag taken out of the frame"
    );
}

#[test]
fn a_missing_interface_is_a_clear_error() {
    let e = open("ixgw-nosuch0", None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("ixgw-nosuch0"), "{e}");
}
