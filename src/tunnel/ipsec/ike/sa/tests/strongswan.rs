//! The responder against strongSwan 5.9.8's IKE_SA_INIT request from the capture
//! (`tests/vectors/ipsec-ike-esp.pcap`).

use std::net::{IpAddr, Ipv4Addr};

use crate::tunnel::ipsec::ike::message::testvec::{ike_messages, PCAP, SA_INIT_REQUEST};
use crate::tunnel::ipsec::ike::message::{
    transform_id, DhGroup as WireGroup, ExchangeType, Message, NotifyType, PayloadType,
    TransformType,
};
use crate::tunnel::testvec::udp_payloads;

use super::super::{Identity, IkeConfig, IkeEngine, IkeEvent, Limits};
use super::pair::*;

#[test]
fn answers_strongswans_ike_sa_init_request() {
    let request = ike_messages()[SA_INIT_REQUEST];
    let wire = udp_payloads(PCAP)[0];
    let mut p = peer(
        PEER_OF_B,
        "gw-a.lab",
        Some(wire.from),
        "10.252.2.0/24",
        "10.252.1.0/24",
    );
    // More than strongSwan offers, so that the choice is visible.
    p.ike_proposals[0].encr = vec![
        crate::crypto::EncrAlg::AesGcm16_128,
        crate::crypto::EncrAlg::AesGcm16_256,
    ];
    p.ike_proposals[0].dh = vec![
        crate::crypto::DhGroup::Curve25519,
        crate::crypto::DhGroup::Ecp256,
    ];
    let config = IkeConfig {
        local_id: Identity::fqdn("gw-b.lab"),
        local_addr: IpAddr::V4(Ipv4Addr::new(10, 250, 2, 2)),
        local_ports: [500, 4500],
        force_udp_encap: false,
        peers: vec![super::super::IkePeerConfig {
            start: super::super::Start::Respond,
            ..p
        }],
        limits: Limits::default(),
    };
    let now = std::time::Instant::now();
    let mut engine = IkeEngine::new(config, now);
    engine.handle_datagram(now, 500, wire.from, request);
    let t = engine.poll_transmit().expect("a response");
    assert_eq!((t.from_port, t.to), (500, wire.from));
    assert!(engine.poll_transmit().is_none());
    assert!(engine.poll_event().is_none(), "nothing refused");
    assert_eq!(engine.half_open(), 1);

    let req = Message::parse(request).unwrap();
    let msg = Message::parse(&t.data).unwrap();
    let h = msg.header;
    assert_eq!(h.exchange, ExchangeType::IKE_SA_INIT);
    assert!(h.flags.response() && !h.flags.initiator());
    assert_eq!((h.spi_i, h.message_id), (req.header.spi_i, 0));
    assert_ne!(h.spi_r, 0);

    let proposals: Vec<_> = msg.sa().unwrap().proposals().collect();
    assert_eq!(proposals.len(), 1);
    let pr = proposals[0];
    assert_eq!(pr.num, 1);
    assert!(pr.spi.is_empty());
    let encr = pr.transform(TransformType::ENCR).unwrap();
    assert_eq!(
        (encr.id, encr.key_length()),
        (transform_id::ENCR_AES_GCM_16, Some(256))
    );
    assert_eq!(
        pr.transform(TransformType::PRF).unwrap().id,
        transform_id::PRF_HMAC_SHA2_256
    );
    assert_eq!(
        pr.transform(TransformType::DH).unwrap().id,
        WireGroup::ECP_256.0
    );
    assert_eq!(pr.transform_count(), 3);
    let ke = msg.ke().unwrap();
    assert_eq!((ke.group, ke.data.len()), (WireGroup::ECP_256, 64));
    assert_eq!(msg.nonce().unwrap().len(), 32);

    // NAT detection: ours, and the destination as strongSwan sent from.
    let ours = std::net::SocketAddr::from(([10, 250, 2, 2], 500));
    let src = msg.notify(NotifyType::NAT_DETECTION_SOURCE_IP).unwrap();
    let dst = msg
        .notify(NotifyType::NAT_DETECTION_DESTINATION_IP)
        .unwrap();
    assert_eq!(src.data, super::super::nat::hash(h.spi_i, h.spi_r, ours));
    assert_eq!(
        dst.data,
        super::super::nat::hash(h.spi_i, h.spi_r, wire.from)
    );
    assert!(msg
        .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
        .is_some());
    assert!(msg.notify(NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some());
    assert!(
        !msg.payload_types().any(|t| t == PayloadType::CERTREQ),
        "PSK: no CERTREQ"
    );
    assert_eq!(
        msg.payload_types().take(3).collect::<Vec<_>>(),
        [PayloadType::SA, PayloadType::KE, PayloadType::NONCE]
    );

    // The same request again (a retransmission) gets the same answer and no new state.
    engine.handle_datagram(now, 500, wire.from, request);
    assert_eq!(engine.poll_transmit().unwrap().data, t.data);
    assert_eq!(engine.half_open(), 1);

    // A request from an address no peer has is refused.
    let stranger = std::net::SocketAddr::from(([10, 250, 2, 9], 500));
    let mut bytes = request.to_vec();
    bytes[7] ^= 1;
    engine.handle_datagram(now, 500, stranger, &bytes);
    let refused = engine.poll_transmit().unwrap();
    let m = Message::parse(&refused.data).unwrap();
    assert_eq!(
        m.notifies().next().unwrap().notify_type,
        NotifyType::NO_PROPOSAL_CHOSEN
    );
    assert!(matches!(
        engine.poll_event(),
        Some(IkeEvent::Refused {
            reason: super::super::Refusal::NoPeerConfig,
            ..
        })
    ));

    // A higher major version is answered with ours [RFC 7296 § 2.5].
    while engine.poll_event().is_some() {}
    let mut v3 = request.to_vec();
    v3[17] = 0x30;
    engine.handle_datagram(now, 500, wire.from, &v3);
    let t = engine.poll_transmit().unwrap();
    let m = Message::parse(&t.data).unwrap();
    assert_eq!(m.header.major_version, 2);
    assert_eq!(
        m.notifies().next().unwrap().notify_type,
        NotifyType::INVALID_MAJOR_VERSION
    );
    assert!(matches!(
        engine.poll_event(),
        Some(IkeEvent::Refused {
            notify: Some(NotifyType::INVALID_MAJOR_VERSION),
            ..
        })
    ));
}
