//! The audit trail in the running gateway: started from the configuration, its metrics
//! exported, its file reopened on reload and flushed on stop.

use std::path::PathBuf;

use super::tests::{config, wg};
use super::*;
use crate::audit::{Event, TunnelKind};
use crate::config::{AuditConfig, Journald};
use crate::metrics::testing::assert_line;

fn temp_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ixgw-runtime-audit-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn down(peer: &str) -> Event {
    Event::TunnelDown {
        attachment: "wg".into(),
        peer: peer.into(),
        tenant: "t0".into(),
        facility: "4212345674".into(),
        kind: TunnelKind::Wireguard,
        reason: "test".into(),
    }
}

fn events_in(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("audit file")
        .lines()
        .map(|l| l.to_string())
        .collect()
}

#[tokio::test]
async fn the_audit_trail_runs_with_the_gateway() {
    let dir = temp_dir("runs");
    let path = dir.join("audit.log");
    let mut cfg = config(vec![wg(
        "wg",
        "127.0.0.1:0".parse().expect("address"),
        vec![],
    )]);
    cfg.audit = Some(AuditConfig {
        file: Some(path.clone()),
        journald: Journald::Off,
        queue: 1024,
        flows: true,
    });
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let mut running = Running::start(&cfg, Some(metrics))
        .await
        .expect("gateway starts");
    assert!(running.audit().enabled());
    running.audit().record(down("first"));
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while events_in(&path).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first record was not written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let text = running.hub().encode();
    assert_line(
        &text,
        r#"ixgw_audit_records_total{sink="file",result="written"} 1"#,
    );
    assert_line(
        &text,
        r#"ixgw_audit_records_total{sink="file",result="dropped"} 0"#,
    );
    assert_line(&text, "ixgw_audit_queue_length 0");
    assert!(!text.contains(r#"sink="journald""#), "{text}");

    // logrotate renames the file and reloads.
    let rotated = dir.join("audit.log.1");
    std::fs::rename(&path, &rotated).expect("rename");
    running.reload(&cfg).await.expect("reload");
    running.audit().record(down("second"));
    running.stop().await.expect("stops");

    let old = events_in(&rotated);
    let new = events_in(&path);
    assert_eq!(old.len(), 1);
    assert!(old[0].contains(r#""peer":"first""#), "{old:?}");
    assert_eq!(new.len(), 1, "written by stop, in the reopened file");
    assert!(new[0].contains(r#""peer":"second""#), "{new:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_audit_file_that_cannot_be_opened_stops_the_start() {
    let mut cfg = config(vec![wg(
        "wg",
        "127.0.0.1:0".parse().expect("address"),
        vec![],
    )]);
    cfg.audit = Some(AuditConfig {
        file: Some(PathBuf::from("/nonexistent-ixgw-audit/audit.log")),
        journald: Journald::Off,
        queue: 1024,
        flows: true,
    });
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
    let err = match Running::start(&cfg, Some(metrics)).await {
        Ok(_) => panic!("started without its audit trail"),
        Err(e) => e,
    };
    assert!(matches!(err, RuntimeError::Audit(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("audit file /nonexistent-ixgw-audit/audit.log: "),
        "{err}"
    );
}
