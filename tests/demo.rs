//! `ixgw demo` end to end in-process: real WireGuard over loopback, overlapping tenants, a
//! denied flow, metrics served over HTTP. Runs on the wall clock, so not with `virtual-time`
//! (which freezes boringtun's clock).

#![cfg(not(feature = "virtual-time"))]

use std::io::{Read, Write};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_moves_traffic_and_denies_the_forbidden_flow() {
    let report = ixgw::demo::run("127.0.0.1:0".parse().unwrap(), Some(Duration::from_secs(3)))
        .await
        .expect("demo runs");
    assert!(
        report.replies > 10,
        "facilities got answers through the gateway: {report:?}"
    );
    assert!(
        report.policy_drops > 0,
        "izumo's tcp/22 to ajisai is refused: {report:?}"
    );
    for (tenant, rx, tx) in &report.tenants {
        assert!(
            *rx > 0 && *tx > 0,
            "tenant {tenant} moved no traffic: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_metrics_while_it_runs() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let demo = tokio::spawn(ixgw::demo::run(addr, Some(Duration::from_secs(3))));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("metrics listener is up");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    })
    .await
    .unwrap();
    demo.await.unwrap().unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    assert!(
        body.contains("ixgw_tenant_rx_packets_total{tenant=\"ajisai-net\"}"),
        "{body}"
    );
    assert!(
        body.contains("ixgw_drops_total{tenant=\"mame-net\",reason=\"policy\"}"),
        "{body}"
    );
    assert!(
        body.contains("ixgw_peers_up 3"),
        "all three simulated facilities are up:\n{body}"
    );
    for line in [
        "ixgw_agreement_in_force{agreement=\"imaging-exchange\",consumer=\"ajisai-net\",provider=\"mame-net\"} 1",
        "ixgw_agreements_active 1",
        "ixgw_facility_certificate_state{facility=\"4212345674\",name=\"Omura clinic\",tenant=\"ajisai-net\",state=\"valid\"} 1",
        "ixgw_facilities{state=\"valid\"} 2",
        "ixgw_crl_revoked_certificates{ca=\"demo-ca\"",
    ] {
        assert!(body.contains(line), "`{line}` not in:\n{body}");
    }
}

/// The demo revokes izumo-hospital's certificate 60 % into the run: within a second the
/// gateway cuts it off (no reply reaches it any more, its packets count as `certificate`
/// drops), while omura-clinic's claims traffic goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_cuts_off_the_revoked_facility() {
    let report = ixgw::demo::run("127.0.0.1:0".parse().unwrap(), Some(Duration::from_secs(5)))
        .await
        .expect("demo runs");
    assert!(report.revoked, "{report:?}");
    assert!(report.certificate_drops > 0, "{report:?}");
    let after = |name: &str| {
        report
            .replies_after_cutoff
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
            .unwrap_or_else(|| panic!("no count for {name}: {report:?}"))
    };
    assert_eq!(after("izumo-hospital"), 0, "{report:?}");
    assert!(after("omura-clinic") > 0, "{report:?}");

    // The audit trail: every kind of record the run produced, with the fields that matter.
    let lines: Vec<serde_json::Value> = report
        .audit
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool, what: &str| {
        lines
            .iter()
            .find(|l| pred(l))
            .unwrap_or_else(|| panic!("no {what} in the audit trail:\n{}", report.audit.join("\n")))
            .clone()
    };
    let is = |l: &serde_json::Value, k: &str, v: &str| l[k].as_str() == Some(v);
    let revoked = find(
        &|l| {
            is(l, "event", "certificate_state")
                && is(l, "facility", "3219876541")
                && is(l, "to", "revoked")
        },
        "izumo's revocation",
    );
    assert_eq!(revoked["from"], "valid");
    assert!(revoked["detail"]
        .as_str()
        .unwrap()
        .contains("key compromise"));
    find(
        &|l| {
            is(l, "event", "tunnel_down")
                && is(l, "peer", "izumo-hospital")
                && is(l, "reason", "certificate revoked")
        },
        "izumo's tunnel down",
    );
    for peer in ["omura-clinic", "izumo-hospital", "claims-hub"] {
        find(
            &|l| is(l, "event", "tunnel_up") && is(l, "peer", peer),
            "a tunnel up",
        );
        find(
            &|l| is(l, "event", "auth") && is(l, "peer", peer) && is(l, "result", "ok"),
            "an accepted authentication",
        );
    }
    find(
        &|l| {
            is(l, "event", "agreement")
                && is(l, "name", "imaging-exchange")
                && is(l, "change", "added")
        },
        "the agreement",
    );
    let start = find(
        &|l| {
            is(l, "event", "flow_start")
                && is(l, "rule", "imaging-exchange")
                && is(l, "protocol", "icmp")
        },
        "omura's ping to izumo",
    );
    assert_eq!(start["agreement"], true);
    assert_eq!(start["facility"], "4212345674");
    assert_eq!(start["before"]["src"], "10.0.0.2");
    assert_eq!(start["before"]["dst"], "100.65.0.2");
    assert_eq!(start["after"]["src"], "100.64.0.2");
    assert_eq!(start["after"]["dst"], "10.0.0.2");
    let end = find(
        &|l| {
            is(l, "event", "flow_end")
                && is(l, "rule", "file-claims")
                && l["bytes"][0].as_u64() > Some(0)
                && l["bytes"][1].as_u64() > Some(0)
        },
        "a claims flow's end with bytes both ways",
    );
    assert!(end["duration_ms"].as_u64().is_some());
    assert!(end["reason"].is_string());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"].as_u64(), Some(i as u64 + 1), "no record lost: {l}");
        assert!(l["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    }
}
