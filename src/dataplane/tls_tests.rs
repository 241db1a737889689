//! A TLS client's flows through the pipeline: a policy `from.facility` matches the facility
//! of the session's peer, also when the flow is asked again after a reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::buffer::{RxBatch, TxBatch, Via};
use crate::config::*;
use crate::ids::{AttachmentId, FacilityCode, PeerId};
use crate::tunnel::tls::relay::{self, Message, PACKET_HEADER};
use crate::vocab::DropReason;
use crate::wire::build;
use crate::wire::tcp;

fn config() -> Config {
    let code = FacilityCode::parse("4212345674").unwrap();
    let clinic = Tenant {
        name: "clinic".into(),
        trust: vec![],
        networks: vec![Network {
            internal: "10.0.60.0/24".parse().unwrap(),
            exchange: "100.80.0.0/24".parse().unwrap(),
        }],
        attachments: vec![Attachment {
            name: "ssl".into(),
            kind: AttachmentKind::Tls(TlsAttachment {
                listen: "127.0.0.1:0".parse().unwrap(),
                credentials: GatewayCredentials {
                    certificate_file: "x".into(),
                    certificates: vec![],
                    private_key_file: "y".into(),
                    private_key: PrivateKey {
                        format: KeyFormat::Pkcs8,
                        der: Secret::new(vec![]),
                    },
                },
                client_ca: vec![],
                tls12: false,
                pool: "10.0.60.0/24".parse().unwrap(),
                dns: vec![],
                split_routes: None,
                mtu: 1400,
                dpd: Duration::from_secs(30),
                keepalive: Duration::from_secs(20),
                idle_timeout: Duration::from_secs(1800),
                session_timeout: Duration::from_secs(86400),
                peers: vec![TlsPeer {
                    name: "clinic-pc".into(),
                    facility: code,
                }],
            }),
        }],
    };
    let policy = Policy {
        name: "clinic-to-ajisai".into(),
        from: Source {
            facilities: vec![code],
            ..Source::default()
        },
        to: Destination::Tenants {
            tenants: vec!["ajisai".into()],
            prefixes: vec![],
        },
        allow: vec![PortRule {
            protocol: Protocol::Any,
            ports: None,
        }],
    };
    super::fuzz::config_of(
        1024,
        vec![
            super::fuzz::plain("ajisai", "10.1.0.0/24", "100.64.0.0/24"),
            clinic,
        ],
        vec![],
        vec![policy],
    )
}

const AJISAI: AttachmentId = AttachmentId(0);
const SSL: AttachmentId = AttachmentId(1);

fn from_client(flags: u8, seq: u32) -> Vec<u8> {
    let mut d = vec![0u8; 128];
    relay::packet_header(&mut d, 7);
    let n = build::tcp(
        &mut d[PACKET_HEADER..],
        "10.0.60.1".parse().unwrap(),
        "100.64.0.2".parse().unwrap(),
        40000,
        443,
        seq,
        0,
        flags,
        None,
        b"",
    )
    .unwrap();
    d.truncate(PACKET_HEADER + n);
    d
}

#[test]
fn a_tls_clients_tcp_flow_survives_a_reload_that_changes_nothing() {
    let t0 = Instant::now();
    let mut gw = Gateway::new(Arc::new(Plan::compile(&config(), 1)), t0);
    let (mut rx, mut tx) = (RxBatch::new(8), TxBatch::new(8));
    let mut up = [0u8; 22];
    let n = Message::Up {
        session: 7,
        peer: PeerId(0),
        address: "10.0.60.1".parse().unwrap(),
        generation: 1,
        login: true,
    }
    .write(&mut up);
    assert!(rx.push(SSL, Via::DEVICE, &up[..n]));
    assert!(rx.push(SSL, Via::DEVICE, &from_client(tcp::FLAG_SYN, 1)));
    gw.handle_batch(t0, &mut rx, &mut tx);
    assert_eq!(tx.len(), 1, "the SYN reaches ajisai");
    assert_eq!(tx.iter().next().unwrap().0.attachment, AJISAI);

    let t1 = t0 + Duration::from_secs(1);
    gw.apply_plan(Arc::new(Plan::compile(&config(), 2)), t1);
    rx.clear();
    tx.clear();
    assert!(rx.push(SSL, Via::DEVICE, &from_client(tcp::FLAG_ACK, 2)));
    gw.handle_batch(t1, &mut rx, &mut tx);
    assert_eq!(
        (tx.len(), gw.counters().drop_count(DropReason::Policy)),
        (1, 0),
        "the established flow's next segment after an empty reload"
    );
}
