//! ESP ends: a facility holds both halves of its CHILD SA (AES-GCM-16, no ESN), the gateway's
//! attachment is an IPsec attachment with one peer whose CHILD SA is installed by hand, as the
//! IKE thread will install it, and ESP travels in UDP 4500 [RFC 3948].

use std::net::{Ipv4Addr, SocketAddr};

use std::sync::Arc;
use std::time::Instant;

use ixgw::buffer::{Via, BUF_SIZE};
use ixgw::config::*;
use ixgw::crypto::{EncrAlg, SystemRandom};
use ixgw::dataplane::{Gateway, Plan};
use ixgw::ids::{AttachmentId, PeerId};
use ixgw::tunnel::ipsec::esp::{Decap, InboundSa, OutboundSa, SaConfig};
use ixgw::tunnel::ipsec::tunnel::IO_NAT_T;
use ixgw::tunnel::ipsec::EspPath;

use crate::common::*;
use crate::rig::{Facility, Rig};
use crate::wireguard::{self, WgFacility, FAC_KEY_B, GW_KEY_B};

/// The IPsec attachments' inner MTU: 1420-byte packets do not fit.
pub const MTU: u16 = 1400;

/// An IPsec attachment on `listen` with the one peer `facility`, which may source and is
/// routed 10.0.0.0/24.
fn attachment(name: &str, listen: Ipv4Addr, facility: &str) -> Attachment {
    let peer =
        ixgw::dataplane::fuzz::psk_ipsec_peer(&format!("{name}-hub"), facility, "10.0.0.0/24");
    Attachment {
        name: format!("{name}-ipsec"),
        kind: AttachmentKind::Ipsec(IpsecAttachment {
            listen,
            ike_port: 500,
            nat_t_port: 4500,
            raw_esp: false,
            mtu: MTU,
            local_id: IkeIdentity::Fqdn("gw.bench-ix.example".into()),
            credentials: None,
            peers: vec![peer],
        }),
    }
}

/// A facility with its CHILD SA: it encrypts towards the gateway and decrypts what the
/// gateway sends.
pub struct EspFacility {
    out: OutboundSa,
    inbound: InboundSa,
    rng: SystemRandom,
    addr: SocketAddr,
    attachment: AttachmentId,
}

impl Facility for EspFacility {
    fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    fn via(&self) -> Via {
        Via::udp(IO_NAT_T, self.addr)
    }

    fn seal(&mut self, packet: &[u8], buf: &mut [u8]) -> usize {
        self.out
            .encapsulate(&mut self.rng, packet, buf)
            .expect("the facility's SA encapsulates")
    }

    /// Both directions use the same transform.
    fn datagram_len(&self, len: usize) -> usize {
        self.out.encapsulated_len(len)
    }

    fn open<'a>(&mut self, datagram: &'a mut [u8], _: &'a mut [u8]) -> &'a [u8] {
        match self.inbound.decapsulate(datagram) {
            Ok(Decap::Packet(range)) => &datagram[range],
            other => panic!("the facility could not decrypt the gateway's datagram: {other:?}"),
        }
    }
}

/// Installs a CHILD SA of `alg` between the gateway's attachment `attachment` and its one
/// peer at `addr`; SPIs and keys are derived from `seed`. Returns the facility's halves.
fn child_sa(
    gw: &mut Gateway,
    attachment: AttachmentId,
    addr: SocketAddr,
    alg: EncrAlg,
    seed: u8,
) -> EspFacility {
    let peer = gw
        .plan()
        .peers
        .iter()
        .position(|p| p.attachment == attachment)
        .map(|i| PeerId(i as u32))
        .expect("the attachment has a peer");
    let (key_to_gw, key_to_fac) = (vec![seed; alg.keymat_len()], vec![!seed; alg.keymat_len()]);
    let spi = 0xc000_0000 | (u32::from(seed) << 8);
    let sa = |spi, key| SaConfig {
        spi,
        esn: false,
        encr: alg,
        encr_key: key,
        integ: None,
    };
    let (fac_to_gw, gw_to_fac) = (sa(spi, &key_to_gw[..]), sa(spi | 1, &key_to_fac[..]));
    gw.tunnel_mut(attachment)
        .and_then(|t| t.ipsec_mut())
        .expect("an IPsec tunnel")
        .install(
            peer,
            InboundSa::new(&fac_to_gw).expect("inbound SA"),
            OutboundSa::new(&gw_to_fac).expect("outbound SA"),
            EspPath::Udp(addr),
        );
    EspFacility {
        out: OutboundSa::new(&fac_to_gw).expect("outbound SA"),
        inbound: InboundSa::new(&gw_to_fac).expect("inbound SA"),
        rng: SystemRandom::new(),
        addr,
        attachment,
    }
}

fn gateway(config: &Config) -> Gateway {
    Gateway::new(Arc::new(Plan::compile(config, 1)), Instant::now())
}

/// ESP → ESP: both tenants behind an IPsec attachment, CHILD SAs of `alg` on both sides.
pub fn rig(alg: EncrAlg) -> Rig<EspFacility, EspFacility> {
    let mut gw = gateway(&config(
        tenant_a(attachment(
            "ajisai",
            Ipv4Addr::new(203, 0, 113, 1),
            FACILITY_A,
        )),
        tenant_b(attachment(
            "mame",
            Ipv4Addr::new(203, 0, 113, 2),
            FACILITY_B,
        )),
    ));
    let a = child_sa(&mut gw, ATT_A, fac_addr_a(), alg, 0x31);
    let b = child_sa(&mut gw, ATT_B, fac_addr_b(), alg, 0x32);
    Rig::new(gw, a, b)
}

/// ESP → WireGuard: tenant A behind an IPsec attachment (CHILD SA of `alg`), tenant B behind
/// WireGuard. A's first packet makes the gateway start a handshake with B's endpoint and
/// reaches B behind it.
pub fn to_wireguard_rig(alg: EncrAlg) -> Rig<EspFacility, WgFacility> {
    let mut gw = gateway(&config(
        tenant_a(attachment(
            "ajisai",
            Ipv4Addr::new(203, 0, 113, 1),
            FACILITY_A,
        )),
        tenant_b(wireguard::attachment(
            "mame",
            51821,
            GW_KEY_B,
            FACILITY_B,
            FAC_KEY_B,
            Some(fac_addr_b()),
        )),
    ));
    let mut a = child_sa(&mut gw, ATT_A, fac_addr_a(), alg, 0x31);
    let mut b = WgFacility::new(FAC_KEY_B, GW_KEY_B, 0x2000, fac_addr_b(), ATT_B);
    let first = udp_packet(64);
    let mut buf = vec![0u8; BUF_SIZE];
    let n = a.seal(&first, &mut buf);
    buf.truncate(n);
    wireguard::exchange(&mut gw, (ATT_A, a.via(), buf), &mut [&mut b]);
    wireguard::assert_first_delivered(&b, &first);
    Rig::new(gw, a, b)
}
