//! The pipeline's half of `ethernet` attachments' ARP: what the tunnel reports reaches the
//! counters (requests, replies, failed next hops, neighbours held), for the ethernet
//! attachment only, and continues across a reload by the attachment's name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::buffer::{RxBatch, TxBatch, Via};
use crate::config::*;
use crate::ids::AttachmentId;
use crate::vocab::{ArpCounts, DropReason};
use crate::wire::build;
use crate::wire::ethernet::{self, Arp, Mac, ARP_LEN, ETHERTYPE_ARP};

/// The plain tenant ajisai (attachment 0) and the carrier tenant behind an ethernet link
/// (attachment 1, the gateway at 10.0.0.1/24 on VLAN `vlan`), ajisai allowed to reach it.
fn config(vlan: u16) -> Config {
    let carrier = super::fuzz::ethernet("carrier", "10.0.0.0/24", "100.70.0.0/24", Some(vlan));
    let any = vec![PortRule {
        protocol: Protocol::Any,
        ports: None,
    }];
    super::fuzz::config_of(
        1024,
        vec![
            super::fuzz::plain("ajisai", "10.1.0.0/24", "100.64.0.0/24"),
            carrier,
        ],
        vec![],
        vec![super::fuzz::tenant_policy(
            "to-carrier",
            "ajisai",
            "carrier",
            any,
        )],
    )
}

const AJISAI: AttachmentId = AttachmentId(0);
const CARRIER: AttachmentId = AttachmentId(1);
const HOST: Mac = Mac([2, 0, 0x5e, 0, 0x53, 2]);

fn arp_request_for_the_gateway() -> Vec<u8> {
    let mut arp = [0u8; ARP_LEN];
    Arp::request(
        HOST,
        "10.0.0.2".parse().unwrap(),
        "10.0.0.1".parse().unwrap(),
    )
    .write(&mut arp)
    .unwrap();
    let mut f = vec![0u8; 64];
    let n = ethernet::write_frame(&mut f, Mac::BROADCAST, HOST, None, ETHERTYPE_ARP, &arp).unwrap();
    f.truncate(n);
    f
}

fn arp_of(gw: &Gateway) -> Vec<(String, ArpCounts)> {
    (gw.counters().arp())
        .map(|(name, c)| (name.to_string(), c))
        .collect()
}

#[test]
fn arp_events_reach_the_counters_of_the_ethernet_attachment_and_survive_a_reload() {
    let t0 = Instant::now();
    let mut gw = Gateway::new(Arc::new(Plan::compile(&config(200), 1)), t0);
    let (mut rx, mut tx) = (RxBatch::new(8), TxBatch::new(8));

    // The carrier's host asks for the gateway: answered.
    assert!(rx.push(CARRIER, Via::DEVICE, &arp_request_for_the_gateway()));
    gw.handle_batch(t0, &mut rx, &mut tx);
    assert_eq!(tx.len(), 1, "the ARP reply");
    let counts = |requests, replies, failures, neighbours| ArpCounts {
        requests,
        replies,
        failures,
        neighbours,
    };
    assert_eq!(
        arp_of(&gw),
        [("carrier-eth".to_string(), counts(0, 1, 0, 1))]
    );

    // ajisai sends to a carrier host nobody knows: asked for, three times, then failed.
    rx.clear();
    tx.clear();
    let mut buf = [0u8; 128];
    let n = build::udp(
        &mut buf,
        "10.1.0.2".parse().unwrap(),
        "100.70.0.9".parse().unwrap(),
        1000,
        2000,
        b"hello",
    )
    .unwrap();
    assert!(rx.push(AJISAI, Via::DEVICE, &buf[..n]));
    gw.handle_batch(t0, &mut rx, &mut tx);
    assert_eq!(tx.len(), 1, "an ARP request; the packet waits");
    assert_eq!(arp_of(&gw)[0].1, counts(1, 1, 0, 2));
    let mut now = t0;
    while now < t0 + Duration::from_secs(4) {
        now += Duration::from_millis(100);
        tx.clear();
        if gw.poll_timeout() <= now {
            gw.handle_timeout(now, &mut tx);
        }
    }
    // Requests: the three asks for the host and the new link's three gratuitous ones.
    assert_eq!(arp_of(&gw)[0].1, counts(6, 1, 1, 2));
    assert_eq!(gw.counters().drop_count(DropReason::ArpUnresolved), 1);

    // A reload that keeps the link keeps the tunnel and the counts.
    let table = gw.apply_plan(Arc::new(Plan::compile(&config(200), 2)), now);
    assert_eq!(arp_of(&gw)[0].1, counts(6, 1, 1, 2));
    assert_eq!(table.arp().count(), 1);
    // A reload onto another VLAN replaces the tunnel (an empty cache) but not the counts.
    gw.apply_plan(Arc::new(Plan::compile(&config(201), 3)), now);
    rx.clear();
    tx.clear();
    gw.handle_batch(now, &mut rx, &mut tx);
    assert_eq!(
        arp_of(&gw),
        [("carrier-eth".to_string(), counts(6, 1, 1, 0))]
    );
}
