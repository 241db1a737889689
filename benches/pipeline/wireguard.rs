//! WireGuard ends: facilities are boringtun `Tunn`s, the gateway's attachments are WireGuard
//! attachments with one peer each, and sessions come from a real handshake moved in memory
//! ([`exchange`]), which the ESP → WireGuard rig uses for its WireGuard side as well.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use ixgw::buffer::{RxBatch, TxBatch, Via, BUF_SIZE};
use ixgw::config::*;
use ixgw::dataplane::{Gateway, Plan};
use ixgw::ids::AttachmentId;
use ixgw::tunnel::wireguard::keys;

use crate::common::{self, *};
use crate::rig::{Facility, Rig};

const GW_KEY_A: [u8; 32] = [0x11; 32];
pub const GW_KEY_B: [u8; 32] = [0x12; 32];
const FAC_KEY_A: [u8; 32] = [0x21; 32];
pub const FAC_KEY_B: [u8; 32] = [0x22; 32];

/// The gateway's address as the facilities see it.
fn gw_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))
}

/// A WireGuard attachment on `port` with the one peer `facility`, reached at `endpoint` if
/// the gateway is to start handshakes itself.
pub fn attachment(
    name: &str,
    port: u16,
    gw_key: [u8; 32],
    facility: &str,
    fac_key: [u8; 32],
    endpoint: Option<SocketAddr>,
) -> Attachment {
    Attachment {
        name: format!("{name}-wg"),
        kind: AttachmentKind::WireGuard(WireGuardAttachment {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            private_key_file: PathBuf::from(format!("{name}.key")),
            private_key: Key32(gw_key),
            mtu: 1420,
            peers: vec![WireGuardPeer {
                name: format!("{name}-hub"),
                facility: common::facility(facility),
                public_key: Key32(keys::public_key(&fac_key)),
                preshared_key_file: None,
                preshared_key: None,
                allowed_ips: vec![net("10.0.0.0/24")],
                address: None,
                endpoint,
                persistent_keepalive: None,
                directed_broadcast: false,
            }],
        }),
    }
}

/// A facility behind boringtun, peer of the gateway's attachment `attachment`.
pub struct WgFacility {
    tunn: Tunn,
    addr: SocketAddr,
    attachment: AttachmentId,
    /// Inner packets it decrypted during [`exchange`].
    pub received: Vec<Vec<u8>>,
}

impl WgFacility {
    pub fn new(
        key: [u8; 32],
        gw_key: [u8; 32],
        index: u32,
        addr: SocketAddr,
        attachment: AttachmentId,
    ) -> WgFacility {
        WgFacility {
            tunn: Tunn::new(
                StaticSecret::from(key),
                PublicKey::from(keys::public_key(&gw_key)),
                None,
                None,
                index,
                None,
            ),
            addr,
            attachment,
            received: Vec::new(),
        }
    }

    /// Takes a datagram of the gateway: what it answers goes on `wire`, what it decrypts into
    /// `received`.
    fn deliver(&mut self, datagram: &[u8], wire: &mut VecDeque<(AttachmentId, Via, Vec<u8>)>) {
        let mut out = vec![0u8; BUF_SIZE];
        let mut r = self.tunn.decapsulate(Some(gw_ip()), datagram, &mut out);
        loop {
            match r {
                TunnResult::WriteToNetwork(d) => {
                    wire.push_back((self.attachment, self.via(), d.to_vec()))
                }
                TunnResult::WriteToTunnelV4(p, _) => {
                    self.received.push(p.to_vec());
                    break;
                }
                TunnResult::Done => break,
                other => panic!("facility decapsulate: {other:?}"),
            }
            r = self.tunn.decapsulate(None, &[], &mut out);
        }
    }
}

impl Facility for WgFacility {
    fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    fn via(&self) -> Via {
        Via::udp(0, self.addr)
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> usize {
        match self.tunn.encapsulate(packet, buf) {
            TunnResult::WriteToNetwork(d) => d.len(),
            _ => panic!("the facility has no session"),
        }
    }

    /// A data message: type, receiver index and counter, then ciphertext and tag.
    fn datagram_len(&self, len: usize) -> usize {
        len + 32
    }

    fn open<'a>(&mut self, datagram: &'a mut [u8], scratch: &'a mut [u8]) -> &'a [u8] {
        match self.tunn.decapsulate(Some(gw_ip()), datagram, scratch) {
            TunnResult::WriteToTunnelV4(p, _) => p,
            other => panic!("the facility could not decrypt the gateway's datagram: {other:?}"),
        }
    }
}

/// Hands `first` to the gateway, then moves every datagram between the gateway and the
/// WireGuard `facilities` until the wire is quiet: handshakes, and packets the gateway queued
/// behind them. Every datagram of the gateway must be for one of `facilities`.
pub fn exchange(
    gw: &mut Gateway,
    first: (AttachmentId, Via, Vec<u8>),
    facilities: &mut [&mut WgFacility],
) {
    let mut tx = TxBatch::new(64);
    let mut wire = VecDeque::from([first]);
    for _ in 0..32 {
        let Some((att, via, datagram)) = wire.pop_front() else {
            return;
        };
        let mut rx = RxBatch::new(1);
        assert!(rx.push(att, via, &datagram));
        gw.handle_batch(Instant::now(), &mut rx, &mut tx);
        for (meta, bytes) in tx.iter() {
            let fac = facilities
                .iter_mut()
                .find(|f| f.via() == meta.via && f.attachment == meta.attachment)
                .expect("gateway sent to a known facility");
            fac.deliver(bytes, &mut wire);
        }
        tx.clear();
    }
    panic!("the wire did not go quiet");
}

/// WireGuard → WireGuard: A's first packet starts A's handshake; the gateway, forwarding it to
/// B, starts its own handshake with B's configured endpoint; the queued packet then reaches B.
pub fn rig() -> Rig<WgFacility, WgFacility> {
    let config = config(
        tenant_a(attachment(
            "ajisai", 51820, GW_KEY_A, FACILITY_A, FAC_KEY_A, None,
        )),
        tenant_b(attachment(
            "mame",
            51821,
            GW_KEY_B,
            FACILITY_B,
            FAC_KEY_B,
            Some(fac_addr_b()),
        )),
    );
    let mut gw = Gateway::new(Arc::new(Plan::compile(&config, 1)), Instant::now());
    let mut a = WgFacility::new(FAC_KEY_A, GW_KEY_A, 0x1000, fac_addr_a(), ATT_A);
    let mut b = WgFacility::new(FAC_KEY_B, GW_KEY_B, 0x2000, fac_addr_b(), ATT_B);
    let first = udp_packet(64);
    let mut buf = vec![0u8; BUF_SIZE];
    let init = match a.tunn.encapsulate(&first, &mut buf) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        _ => panic!("facility A did not start a handshake"),
    };
    exchange(&mut gw, (ATT_A, a.via(), init), &mut [&mut a, &mut b]);
    assert!(a.received.is_empty());
    assert_first_delivered(&b, &first);
    Rig::new(gw, a, b)
}

/// B received exactly `first`, translated.
pub fn assert_first_delivered(b: &WgFacility, first: &[u8]) {
    assert_eq!(b.received.len(), 1, "the first packet reached B");
    assert_translated(&b.received[0], first);
}
