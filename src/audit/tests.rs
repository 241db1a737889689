//! The audit trail: every record kind as written, a sink that stalls, the file, journald.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::journald::{self, encode};
use super::writer::Output;
use super::*;
use crate::config::{Agreement, Destination, Policy, PortRule, Protocol, Source};
use crate::dataplane::fuzz::{config_of, plain, tenant_policy};
use crate::dataplane::{FlowEnd, FlowPhase, Plan};
use crate::ids::{FacilityCode, RuleId, TenantId};
use crate::policy::flows::Tuple;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// ajisai numbers 10.1.0.0/24 inside and 100.64.0.0/24 in the exchange space; mame
/// 192.168.7.0/24 and 100.65.3.0/24. Rule 0 is the policy `imaging`, rule 1 the agreement
/// `ajisai-reads-mame`.
fn plan() -> Arc<Plan> {
    let any = vec![PortRule {
        protocol: Protocol::Any,
        ports: None,
    }];
    let mut config = config_of(
        1024,
        vec![
            plain("ajisai", "10.1.0.0/24", "100.64.0.0/24"),
            plain("mame", "192.168.7.0/24", "100.65.3.0/24"),
        ],
        vec![],
        vec![tenant_policy("imaging", "ajisai", "mame", any.clone())],
    );
    config.agreements.push(Agreement {
        name: "ajisai-reads-mame".into(),
        consumer: "ajisai".into(),
        provider: "mame".into(),
        grant: Policy {
            name: "ajisai-reads-mame".into(),
            from: Source {
                tenants: vec!["ajisai".into()],
                ..Source::default()
            },
            to: Destination::Tenants {
                tenants: vec!["mame".into()],
                prefixes: vec![],
            },
            allow: any,
        },
        valid_from: None,
        valid_until: None,
        approved_by_provider: Some("mame ops".into()),
        approved_by_consumer: Some("ajisai ops".into()),
    });
    let plan = Plan::compile(&config, 1);
    assert!(!plan.policy.rule(RuleId(0)).unwrap().agreement);
    assert!(plan.policy.rule(RuleId(1)).unwrap().agreement);
    Arc::new(plan)
}

const CODE: &str = "4212345674";

/// A flow ajisai 10.1.0.5 opened to mame's 100.65.3.7 (192.168.7.7 inside mame).
fn flow(plan: &Arc<Plan>, phase: FlowPhase, protocol: u8, rule: u16) -> FlowEvent {
    let end = phase != FlowPhase::Start;
    FlowEvent {
        plan: plan.clone(),
        phase,
        opener: Tuple {
            src: ip("100.64.0.5"),
            src_port: 40000,
            dst: ip("100.65.3.7"),
            dst_port: 104,
            protocol,
        },
        src_tenant: TenantId(0),
        dst_tenant: TenantId(1),
        facility: Some(FacilityCode::parse(CODE).unwrap()),
        rule: RuleId(rule),
        packets: if end { [12, 10] } else { [0, 0] },
        bytes: if end { [4_000, 1_234_567] } else { [0, 0] },
        duration: if end {
            Duration::from_millis(61_250)
        } else {
            Duration::ZERO
        },
    }
}

fn events() -> Vec<Event> {
    vec![
        Event::TunnelUp {
            attachment: "ajisai-wg".into(),
            peer: "clinic-a".into(),
            tenant: "ajisai".into(),
            facility: CODE.into(),
            kind: TunnelKind::Wireguard,
            remote: Some("192.0.2.7:51820".into()),
        },
        Event::TunnelDown {
            attachment: "ajisai-ipsec".into(),
            peer: "clinic-b".into(),
            tenant: "ajisai".into(),
            facility: "4240123457".into(),
            kind: TunnelKind::Ipsec,
            reason: "dpd_timeout".into(),
        },
        Event::Auth {
            attachment: "ajisai-ipsec".into(),
            peer: None,
            tenant: None,
            facility: None,
            kind: TunnelKind::Ipsec,
            remote: Some("198.51.100.9:4500".into()),
            result: AuthResult::Refused,
            reason: Some("certificate_revoked".into()),
        },
        Event::CertificateState {
            facility: CODE.into(),
            name: "clinic a".into(),
            tenant: "ajisai".into(),
            from: "valid".into(),
            to: "revoked".into(),
            detail: "serial 09 listed by ix-ca's CRL".into(),
        },
        Event::Agreement {
            name: "ajisai-reads-mame".into(),
            consumer: "ajisai".into(),
            provider: "mame".into(),
            change: AgreementChange::InForce,
            detail: None,
        },
        Event::AuditDropped { records: 3 },
    ]
}

/// A `Write` into shared memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn captured(queue: usize) -> (Audit, Capture) {
    let capture = Capture::default();
    let out = Output::writer("memory", Box::new(capture.clone()), None);
    let audit = Audit::spawn(queue, true, Some(out), None).unwrap();
    (audit, capture)
}

fn is_rfc3339_millis_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn sorted(mut k: Vec<&str>) -> Vec<&str> {
    k.sort_unstable();
    k
}

#[test]
fn every_record_kind_is_written_once_with_its_fields() {
    let plan = plan();
    let (audit, capture) = captured(1024);
    let before = SystemTime::now() - Duration::from_millis(1);
    for e in events() {
        audit.record(e);
    }
    audit.flow(flow(&plan, FlowPhase::Start, 6, 0));
    audit.flow(flow(&plan, FlowPhase::End(FlowEnd::Closed), 6, 1));
    audit.shutdown();
    let after = SystemTime::now() + Duration::from_millis(1);

    let lines = capture.lines();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "tunnel_up",
            "tunnel_down",
            "auth",
            "certificate_state",
            "agreement",
            "audit_dropped",
            "flow_start",
            "flow_end"
        ]
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64 + 1, "{l}");
        let ts = l["ts"].as_str().unwrap();
        assert!(is_rfc3339_millis_utc(ts), "{ts}");
        let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .unwrap();
        let t = SystemTime::from(t);
        assert!(before <= t && t <= after, "{ts}");
    }
    // The text starts with the stamp.
    assert!(capture.text().starts_with("{\"ts\":\""));

    let common = ["ts", "seq", "event"];
    let with = |extra: &[&'static str]| sorted(common.iter().chain(extra).copied().collect());
    assert_eq!(
        keys(&lines[0]),
        with(&["attachment", "peer", "tenant", "facility", "kind", "remote"])
    );
    assert_eq!(lines[0]["attachment"], "ajisai-wg");
    assert_eq!(lines[0]["peer"], "clinic-a");
    assert_eq!(lines[0]["tenant"], "ajisai");
    assert_eq!(lines[0]["facility"], CODE);
    assert_eq!(lines[0]["kind"], "wireguard");
    assert_eq!(lines[0]["remote"], "192.0.2.7:51820");

    assert_eq!(
        keys(&lines[1]),
        with(&["attachment", "peer", "tenant", "facility", "kind", "reason"])
    );
    assert_eq!(lines[1]["kind"], "ipsec");
    assert_eq!(lines[1]["facility"], "4240123457");
    assert_eq!(lines[1]["reason"], "dpd_timeout");

    assert_eq!(
        keys(&lines[2]),
        with(&[
            "attachment",
            "peer",
            "tenant",
            "facility",
            "kind",
            "remote",
            "result",
            "reason"
        ])
    );
    assert_eq!(lines[2]["peer"], Value::Null);
    assert_eq!(lines[2]["tenant"], Value::Null);
    assert_eq!(lines[2]["facility"], Value::Null);
    assert_eq!(lines[2]["remote"], "198.51.100.9:4500");
    assert_eq!(lines[2]["result"], "refused");
    assert_eq!(lines[2]["reason"], "certificate_revoked");

    assert_eq!(
        keys(&lines[3]),
        with(&["facility", "name", "tenant", "from", "to", "detail"])
    );
    assert_eq!(lines[3]["from"], "valid");
    assert_eq!(lines[3]["to"], "revoked");
    assert_eq!(lines[3]["name"], "clinic a");
    assert_eq!(lines[3]["detail"], "serial 09 listed by ix-ca's CRL");

    assert_eq!(
        keys(&lines[4]),
        with(&["name", "consumer", "provider", "change", "detail"])
    );
    assert_eq!(lines[4]["change"], "in_force");
    assert_eq!(lines[4]["consumer"], "ajisai");
    assert_eq!(lines[4]["provider"], "mame");
    assert_eq!(lines[4]["detail"], Value::Null);

    assert_eq!(keys(&lines[5]), with(&["records"]));
    assert_eq!(lines[5]["records"], 3);

    let flow_keys = [
        "protocol",
        "src_tenant",
        "dst_tenant",
        "facility",
        "rule",
        "agreement",
        "before",
        "exchange",
        "after",
    ];
    let start = &lines[6];
    assert_eq!(keys(start), with(&flow_keys));
    assert_eq!(start["protocol"], "tcp");
    assert_eq!(start["src_tenant"], "ajisai");
    assert_eq!(start["dst_tenant"], "mame");
    assert_eq!(start["facility"], CODE);
    assert_eq!(start["rule"], "imaging");
    assert_eq!(start["agreement"], false);
    let points = |src: &str, dst: &str| serde_json::json!({"src": src, "src_port": 40000, "dst": dst, "dst_port": 104});
    // As ajisai's host sent it, in the exchange space, as mame's host receives it.
    assert_eq!(start["before"], points("10.1.0.5", "100.65.3.7"));
    assert_eq!(start["exchange"], points("100.64.0.5", "100.65.3.7"));
    assert_eq!(start["after"], points("100.64.0.5", "192.168.7.7"));

    let end = &lines[7];
    let mut end_keys = flow_keys.to_vec();
    end_keys.extend(["packets", "bytes", "duration_ms", "reason"]);
    assert_eq!(keys(end), with(&end_keys));
    assert_eq!(end["rule"], "ajisai-reads-mame");
    assert_eq!(end["agreement"], true);
    assert_eq!(end["packets"], serde_json::json!([12, 10]));
    assert_eq!(end["bytes"], serde_json::json!([4000, 1_234_567]));
    assert_eq!(end["duration_ms"], 61_250);
    assert_eq!(end["reason"], "closed");
    assert_eq!(end["before"], start["before"]);
    assert_eq!(end["after"], start["after"]);
}

/// The addresses of a flow record are those `nat::translate` gives the opener's packet.
#[test]
fn flow_addresses_are_the_translation_of_the_openers_packet() {
    let plan = plan();
    let (audit, capture) = captured(1024);
    audit.flow(flow(&plan, FlowPhase::Start, 17, 0));
    audit.shutdown();
    let line = &capture.lines()[0];
    let addr = |v: &Value| ip(v.as_str().unwrap());

    let mut buf = [0u8; 128];
    let (src, dst) = (addr(&line["before"]["src"]), addr(&line["before"]["dst"]));
    let n = crate::wire::build::udp(&mut buf, src, dst, 40000, 104, b"x").unwrap();
    let (from, to) = (&plan.tenants[0].map, &plan.tenants[1].map);
    crate::nat::translate(&mut buf[..n], from, to, None).unwrap();
    let out = crate::wire::ipv4::Ipv4Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(out.src_addr(), addr(&line["after"]["src"]));
    assert_eq!(out.dst_addr(), addr(&line["after"]["dst"]));
    assert_eq!(out.src_addr(), addr(&line["exchange"]["src"]));
    assert_eq!(line["protocol"], "udp");
}

#[test]
fn icmp_flows_carry_their_identifier_and_no_ports() {
    let plan = plan();
    let (audit, capture) = captured(1024);
    let mut echo = flow(&plan, FlowPhase::End(FlowEnd::Idle), 1, 0);
    echo.opener.src_port = 77;
    echo.opener.dst_port = 77;
    echo.facility = None;
    audit.flow(echo);
    let mut gre = flow(&plan, FlowPhase::Start, 47, 0);
    gre.opener.src_port = 0;
    gre.opener.dst_port = 0;
    audit.flow(gre);
    audit.shutdown();
    let lines = capture.lines();
    let icmp = &lines[0];
    assert_eq!(icmp["protocol"], "icmp");
    assert_eq!(icmp["icmp_id"], 77);
    assert_eq!(icmp["facility"], Value::Null, "behind a plain attachment");
    assert_eq!(icmp["reason"], "idle");
    assert_eq!(
        icmp["before"],
        serde_json::json!({"src": "10.1.0.5", "src_port": null, "dst": "100.65.3.7", "dst_port": null})
    );
    let other = &lines[1];
    assert_eq!(other["protocol"], 47);
    assert!(other.get("icmp_id").is_none());
    assert_eq!(other["after"]["dst"], "192.168.7.7");
    assert_eq!(other["after"]["dst_port"], Value::Null);
}

#[test]
fn the_time_is_rfc3339_utc_with_milliseconds() {
    let t = UNIX_EPOCH + Duration::from_millis(1_774_969_200_123);
    assert_eq!(record::Ts(t).to_string(), "2026-03-31T15:00:00.123Z");
    assert_eq!(
        record::Ts(UNIX_EPOCH).to_string(),
        "1970-01-01T00:00:00.000Z"
    );
}

#[test]
fn flow_records_can_be_turned_off_and_a_disabled_trail_records_nothing() {
    let plan = plan();
    let capture = Capture::default();
    let out = Output::writer("memory", Box::new(capture.clone()), None);
    let audit = Audit::spawn(1024, false, Some(out), None).unwrap();
    audit.flow(flow(&plan, FlowPhase::Start, 6, 0));
    audit.record(events().remove(0));
    audit.shutdown();
    let lines = capture.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"], "tunnel_up");
    assert_eq!(lines[0]["seq"], 1, "a flow not recorded takes no number");

    let off = Audit::disabled();
    assert!(!off.enabled());
    off.record(events().remove(0));
    off.flow(flow(&plan, FlowPhase::Start, 6, 0));
    off.reopen();
    off.shutdown();
    let registry = prometheus::Registry::new();
    off.register(&registry).unwrap();
    assert!(registry.gather().is_empty());
}

#[test]
fn dropping_every_handle_writes_what_is_queued() {
    let (audit, capture) = captured(1024);
    let other = audit.clone();
    for e in events() {
        other.record(e);
    }
    let thread = audit
        .inner
        .as_ref()
        .unwrap()
        .thread
        .lock()
        .unwrap()
        .take()
        .unwrap();
    drop(audit);
    drop(other);
    thread.join().unwrap();
    assert_eq!(capture.lines().len(), events().len());
}

/// A gate a test opens; writes wait at it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<(bool, bool)>, Condvar)>);

impl Gate {
    /// Waits until a write is blocked at the gate.
    fn wait_entered(&self) {
        let (m, c) = &*self.0;
        let guard = m.lock().unwrap();
        let (guard, timeout) = c
            .wait_timeout_while(guard, Duration::from_secs(10), |(entered, _)| !*entered)
            .unwrap();
        assert!(!timeout.timed_out(), "the writer never wrote");
        drop(guard);
    }

    fn open(&self) {
        let (m, c) = &*self.0;
        m.lock().unwrap().1 = true;
        c.notify_all();
    }
}

/// A sink that blocks every write until its gate opens.
struct Stalled {
    gate: Gate,
    out: Capture,
}

impl Write for Stalled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (m, c) = &*self.gate.0;
        let mut s = m.lock().unwrap();
        s.0 = true;
        c.notify_all();
        while !s.1 {
            s = c.wait(s).unwrap();
        }
        drop(s);
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_sink_drops_and_counts_without_stalling_the_recorder() {
    const QUEUE: usize = 16;
    const PUSHED: u64 = 100_000;
    let plan = plan();
    let gate = Gate::default();
    let capture = Capture::default();
    let out = Output::writer(
        "stalled",
        Box::new(Stalled {
            gate: gate.clone(),
            out: capture.clone(),
        }),
        None,
    );
    let audit = Audit::spawn(QUEUE, true, Some(out), None).unwrap();
    let registry = prometheus::Registry::new();
    audit.register(&registry).unwrap();
    // The first record reaches the sink, which holds the writer from then on.
    audit.flow(flow(&plan, FlowPhase::Start, 6, 0));
    gate.wait_entered();

    // On a thread of its own, so that a record() that blocks fails the test instead of
    // hanging it.
    let (done, took) = std::sync::mpsc::channel();
    let (recorder, event) = (
        audit.clone(),
        flow(&plan, FlowPhase::End(FlowEnd::Idle), 6, 0),
    );
    std::thread::spawn(move || {
        let started = Instant::now();
        for _ in 0..PUSHED {
            recorder.flow(event.clone());
        }
        let _ = done.send(started.elapsed());
    });
    let Ok(took) = took.recv_timeout(Duration::from_secs(10)) else {
        gate.open();
        panic!("record() blocked behind the stalled sink");
    };
    assert!(
        took < Duration::from_secs(1),
        "{took:?} for {PUSHED} records"
    );

    let shared = audit.shared().unwrap().clone();
    let accepted = shared.accepted.load(Ordering::Relaxed) - 1;
    let dropped = shared.dropped.load(Ordering::Relaxed);
    assert_eq!(accepted, QUEUE as u64, "the queue took what it holds");
    assert_eq!(dropped, PUSHED - accepted);
    let metric = |registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]| {
        metric_value(registry, name, labels)
    };
    assert_eq!(
        metric(&registry, "ixgw_audit_queue_length", &[]),
        Some(16.0)
    );
    assert_eq!(
        metric(
            &registry,
            "ixgw_audit_records_total",
            &[("sink", "file"), ("result", "dropped")]
        ),
        Some(dropped as f64)
    );
    assert_eq!(
        metric(
            &registry,
            "ixgw_audit_records_total",
            &[("sink", "journald"), ("result", "dropped")]
        ),
        None,
        "no journald sink"
    );

    std::thread::sleep(Duration::from_millis(20));
    let unblocked = SystemTime::now();
    gate.open();
    audit.shutdown();
    let lines = capture.lines();
    let ts = |l: &Value| {
        let ts = l["ts"].as_str().unwrap();
        SystemTime::from(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    };
    // Stamped when accepted, not when written; the writer's own line when it wrote it.
    for l in lines.iter().filter(|l| l["event"] != "audit_dropped") {
        assert!(ts(l) < unblocked, "{l}");
    }
    for l in lines.iter().filter(|l| l["event"] == "audit_dropped") {
        assert!(ts(l) + Duration::from_millis(1) >= unblocked, "{l}");
    }
    let flows = lines.iter().filter(|l| l["event"] == "flow_end").count() as u64;
    assert_eq!(flows, accepted, "{lines:?}");
    let drops: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "audit_dropped")
        .collect();
    assert_eq!(drops.len(), 1, "{lines:?}");
    assert_eq!(drops[0]["records"], dropped);
    assert_eq!(lines.len() as u64, 1 + accepted + 1);
    // The accepted records are the first ones pushed; the gap in seq shows the loss.
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    let mut expected: Vec<u64> = (1..=1 + accepted).collect();
    expected.push(PUSHED + 2);
    assert_eq!(seqs, expected);
    assert_eq!(
        metric(
            &registry,
            "ixgw_audit_records_total",
            &[("sink", "file"), ("result", "written")]
        ),
        Some((accepted + 2) as f64)
    );
    assert_eq!(metric(&registry, "ixgw_audit_queue_length", &[]), Some(0.0));
}

/// The value of one series in the text exposition.
fn metric_value(
    registry: &prometheus::Registry,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    let labels: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .find(|l| labels.iter().all(|p| l.contains(p.as_str())))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
}

/// A sink that takes `room` bytes, fails once (a full disk), then takes everything.
struct Flaky {
    room: Option<usize>,
    out: Capture,
}

impl Write for Flaky {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.room {
            Some(0) => {
                self.room = None;
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            Some(room) => {
                let n = buf.len().min(room);
                self.room = Some(room - n);
                n
            }
            None => buf.len(),
        };
        self.out.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_file_counts_lost_lines_and_leaves_no_torn_line() {
    let capture = Capture::default();
    let out = Output::writer(
        "flaky",
        Box::new(Flaky {
            room: Some(50),
            out: capture.clone(),
        }),
        None,
    );
    let audit = Audit::spawn(1024, true, Some(out), None).unwrap();
    let shared = audit.shared().unwrap().clone();
    let file = || shared.file.as_ref().unwrap();
    audit.record(Event::AuditDropped { records: 1 });
    wait_for(|| file().failed.load(Ordering::Relaxed) == 1);
    assert_eq!(file().written.load(Ordering::Relaxed), 0);
    assert_eq!(capture.text().len(), 50, "half a line reached the file");
    audit.record(Event::AuditDropped { records: 2 });
    audit.shutdown();
    assert_eq!(file().written.load(Ordering::Relaxed), 1);
    assert_eq!(file().failed.load(Ordering::Relaxed), 1);
    // The torn line is ended before the next one, which stays whole.
    let text = capture.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(serde_json::from_str::<Value>(lines[0]).is_err());
    let last: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(last["records"], 2);
    assert_eq!(last["seq"], 2);
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ixgw-audit-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_file_is_appended_to_created_0640_and_reopened_after_a_rename() {
    let dir = temp_dir("file");
    let path = dir.join("audit.log");
    let rotated = dir.join("audit.log.1");
    let config = AuditConfig {
        file: Some(path.clone()),
        journald: crate::config::Journald::Off,
        queue: 1024,
        flows: true,
    };

    let audit = Audit::start(&config).unwrap();
    assert_eq!(audit.config(), Some(&config));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    audit.record(events().remove(0));
    wait_for(|| std::fs::read_to_string(&path).unwrap().lines().count() == 1);
    std::fs::rename(&path, &rotated).unwrap();
    audit.reopen();
    audit.record(events().remove(1));
    audit.shutdown();
    let old = read_lines(&rotated);
    let new = read_lines(&path);
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["event"], "tunnel_up");
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["event"], "tunnel_down");
    assert_eq!(new[0]["seq"], 2);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);

    // A restart appends; an existing file keeps its mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let audit = Audit::start(&config).unwrap();
    audit.record(events().remove(2));
    audit.shutdown();
    let again = read_lines(&path);
    assert_eq!(again.len(), 2);
    assert_eq!(again[0]["event"], "tunnel_down");
    assert_eq!(again[1]["event"], "auth");
    assert_eq!(again[1]["seq"], 1, "numbering restarts with the process");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_cannot_be_opened_refuses_the_start() {
    let config = AuditConfig {
        file: Some(PathBuf::from("/nonexistent-ixgw-audit/audit.log")),
        journald: crate::config::Journald::Off,
        queue: 1024,
        flows: true,
    };
    let err = Audit::start(&config).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("audit file /nonexistent-ixgw-audit/audit.log: "),
        "{err}"
    );
}

#[test]
fn journald_fields_are_encoded_plain_or_with_their_length() {
    let mut out = Vec::new();
    encode(
        &[
            ("MESSAGE", b"tunnel up"),
            ("PRIORITY", b"6"),
            ("IXGW_AUDIT", b"two\nlines"),
            ("EMPTY", b""),
        ],
        &mut out,
    );
    let mut expected = b"MESSAGE=tunnel up\nPRIORITY=6\nIXGW_AUDIT\n".to_vec();
    expected.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(b"two\nlines\nEMPTY=\n");
    assert_eq!(out, expected);
}

/// Splits a native-protocol datagram into its fields.
fn decode(mut d: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut fields = HashMap::new();
    while !d.is_empty() {
        let end = d.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
        let name = String::from_utf8(d[..end].to_vec()).unwrap();
        let value;
        if d[end] == b'=' {
            let nl = end + d[end..].iter().position(|&b| b == b'\n').unwrap();
            value = d[end + 1..nl].to_vec();
            d = &d[nl + 1..];
        } else {
            let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()) as usize;
            value = d[end + 9..end + 9 + len].to_vec();
            assert_eq!(d[end + 9 + len], b'\n');
            d = &d[end + 10 + len..];
        }
        assert!(fields.insert(name, value).is_none(), "a field twice");
    }
    fields
}

#[test]
fn records_reach_journald_as_native_datagrams() {
    let dir = temp_dir("journald");
    let path = dir.join("socket");
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sink = journald::Sink::new(path.clone()).unwrap();
    let audit = Audit::spawn(1024, true, None, Some(sink)).unwrap();
    let plan = plan();
    let mut refused = events().remove(2);
    if let Event::Auth { reason, .. } = &mut refused {
        *reason = Some("two\nlines".into());
    }
    audit.record(refused);
    audit.flow(flow(&plan, FlowPhase::Start, 6, 0));
    audit.shutdown();

    let mut buf = vec![0u8; 65536];
    let n = server.recv(&mut buf).unwrap();
    let auth = decode(&buf[..n]);
    let text = |f: &HashMap<String, Vec<u8>>, k: &str| String::from_utf8(f[k].clone()).unwrap();
    assert_eq!(
        sorted(auth.keys().map(String::as_str).collect()),
        [
            "IXGW_AUDIT",
            "IXGW_EVENT",
            "MESSAGE",
            "PRIORITY",
            "SYSLOG_IDENTIFIER"
        ]
    );
    assert_eq!(text(&auth, "SYSLOG_IDENTIFIER"), "ixgw-audit");
    assert_eq!(text(&auth, "PRIORITY"), "5");
    assert_eq!(text(&auth, "IXGW_EVENT"), "auth");
    assert_eq!(
        text(&auth, "MESSAGE"),
        "authentication refused: ipsec peer unknown of ajisai-ipsec (tenant unknown, facility unknown) from 198.51.100.9:4500: two\nlines"
    );
    assert!(
        buf[..n].windows(8).any(|w| w == b"MESSAGE\n"),
        "a newline makes MESSAGE binary"
    );
    let json: Value = serde_json::from_slice(&auth["IXGW_AUDIT"]).unwrap();
    assert_eq!(json["event"], "auth");
    assert_eq!(json["reason"], "two\nlines");
    assert_eq!(json["seq"], 1);

    let n = server.recv(&mut buf).unwrap();
    let start = decode(&buf[..n]);
    assert_eq!(text(&start, "PRIORITY"), "6");
    assert_eq!(text(&start, "IXGW_EVENT"), "flow_start");
    assert_eq!(
        text(&start, "MESSAGE"),
        "flow start: tcp 10.1.0.5:40000 -> 100.65.3.7:104 as 100.64.0.5:40000 -> 192.168.7.7:104 (ajisai -> mame, facility 4212345674, rule imaging)"
    );
    let json: Value = serde_json::from_slice(&start["IXGW_AUDIT"]).unwrap();
    assert_eq!(json["after"]["dst"], "192.168.7.7");

    let counters = audit.shared().unwrap().journald.as_ref().unwrap();
    assert_eq!(counters.written.load(Ordering::Relaxed), 2);
    assert_eq!(counters.failed.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_journald_records_count_as_failed_and_the_file_goes_on() {
    let dir = temp_dir("no-journald");
    let sink = journald::Sink::new(dir.join("no-socket")).unwrap();
    let capture = Capture::default();
    let out = Output::writer("memory", Box::new(capture.clone()), None);
    let audit = Audit::spawn(1024, true, Some(out), Some(sink)).unwrap();
    let registry = prometheus::Registry::new();
    audit.register(&registry).unwrap();
    for e in events() {
        audit.record(e);
    }
    audit.shutdown();
    let shared = audit.shared().unwrap();
    let j = shared.journald.as_ref().unwrap();
    let f = shared.file.as_ref().unwrap();
    assert_eq!(j.failed.load(Ordering::Relaxed), events().len() as u64);
    assert_eq!(j.written.load(Ordering::Relaxed), 0);
    assert_eq!(f.written.load(Ordering::Relaxed), events().len() as u64);
    assert_eq!(capture.lines().len(), events().len());
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    for series in [
        "ixgw_audit_records_total{sink=\"journald\",result=\"failed\"} 6",
        "ixgw_audit_records_total{sink=\"journald\",result=\"written\"} 0",
        "ixgw_audit_records_total{sink=\"file\",result=\"written\"} 6",
        "ixgw_audit_records_total{sink=\"file\",result=\"dropped\"} 0",
        "ixgw_audit_queue_length 0",
    ] {
        assert!(text.contains(series), "{series} not in\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn journald_auto_follows_systemds_variables() {
    use crate::config::Journald;
    let none = |_: &str| false;
    let stream = |k: &str| k == "JOURNAL_STREAM";
    let invocation = |k: &str| k == "INVOCATION_ID";
    assert!(!Journald::Auto.wanted(none));
    assert!(Journald::Auto.wanted(stream));
    assert!(Journald::Auto.wanted(invocation));
    assert!(Journald::On.wanted(none));
    assert!(!Journald::Off.wanted(stream));
}
