//! Rendering a queued record: the JSON line, journald's summary and priority. Names and
//! translated addresses of flows are resolved here, from the plan the flow carries.

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use super::{AuthResult, Event, Item, Queued};
use crate::dataplane::{FlowEvent, FlowPhase};
use crate::ids::{ExchangeV4, FacilityCode};
use crate::wire::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// What a queued record says, ready to render.
// One at a time, on the writer's stack: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Body<'a> {
    Event(&'a Event),
    Flow(FlowRecord<'a>),
}

/// One line: the stamp, then the record's own keys.
#[derive(Serialize)]
struct Line<'a> {
    ts: Ts,
    seq: u64,
    #[serde(flatten)]
    body: &'a Body<'a>,
}

impl<'a> Body<'a> {
    /// `None` for a wake-up, which is not a record.
    pub(crate) fn of(item: &'a Item) -> Option<Body<'a>> {
        match item {
            Item::Event(e) => Some(Body::Event(e)),
            Item::Flow(f) => Some(Body::Flow(FlowRecord::of(f))),
            Item::Wake => None,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Body::Event(e) => e.name(),
            Body::Flow(f) => f.event,
        }
    }

    /// syslog priority: 6 info, 5 notice for what stops someone's traffic, 4 warning for lost
    /// audit records.
    pub(crate) fn priority(&self) -> u8 {
        match self {
            Body::Event(Event::Auth {
                result: AuthResult::Refused,
                ..
            })
            | Body::Event(Event::TunnelDown { .. }) => 5,
            Body::Event(Event::CertificateState { to, .. })
                if to != "valid" && to != "not_required" =>
            {
                5
            }
            Body::Event(Event::AuditDropped { .. }) => 4,
            _ => 6,
        }
    }

    /// A one-line summary for journald's `MESSAGE`.
    pub(crate) fn summary(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = match self {
            Body::Event(e) => summarize_event(&mut s, e),
            Body::Flow(f) => f.summarize(&mut s),
        };
        s
    }
}

/// Renders the JSON line of `body` (without the newline) into `out`.
pub(crate) fn render(q: &Queued, body: &Body<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    render_at(q.at, q.seq, body, out)
}

pub(crate) fn render_at(
    at: SystemTime,
    seq: u64,
    body: &Body<'_>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    serde_json::to_writer(
        out,
        &Line {
            ts: Ts(at),
            seq,
            body,
        },
    )
}

fn summarize_event(s: &mut String, e: &Event) -> fmt::Result {
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    match e {
        Event::TunnelUp {
            attachment,
            peer,
            tenant,
            facility,
            kind,
            remote,
        } => write!(
            s,
            "tunnel up: {} peer {peer} of {attachment} (tenant {tenant}, facility {facility}) from {}",
            kind_name(*kind),
            or(remote)
        ),
        Event::TunnelDown {
            attachment,
            peer,
            tenant,
            facility,
            kind,
            reason,
        } => write!(
            s,
            "tunnel down: {} peer {peer} of {attachment} (tenant {tenant}, facility {facility}): {reason}",
            kind_name(*kind)
        ),
        Event::Auth {
            attachment,
            peer,
            tenant,
            facility,
            kind,
            remote,
            result,
            reason,
        } => {
            let result = match result {
                AuthResult::Ok => "ok",
                AuthResult::Refused => "refused",
            };
            write!(
                s,
                "authentication {result}: {} peer {} of {attachment} (tenant {}, facility {}) from {}",
                kind_name(*kind),
                or(peer),
                or(tenant),
                or(facility),
                or(remote)
            )?;
            match reason {
                Some(r) => write!(s, ": {r}"),
                None => Ok(()),
            }
        }
        Event::CertificateState {
            facility,
            name,
            tenant,
            from,
            to,
            detail,
        } => write!(
            s,
            "facility {facility} ({name}, tenant {tenant}): certificate {from} -> {to}: {detail}"
        ),
        Event::Agreement {
            name,
            consumer,
            provider,
            change,
            detail,
        } => {
            let change = match change {
                super::AgreementChange::Added => "added",
                super::AgreementChange::Removed => "removed",
                super::AgreementChange::Changed => "changed",
                super::AgreementChange::InForce => "in force",
                super::AgreementChange::OutOfForce => "out of force",
            };
            write!(
                s,
                "agreement {name} (consumer {consumer}, provider {provider}) {change}"
            )?;
            match detail {
                Some(d) => write!(s, ": {d}"),
                None => Ok(()),
            }
        }
        Event::AuditDropped { records } => write!(
            s,
            "audit trail: {records} records were dropped (the writer could not keep up)"
        ),
    }
}

fn kind_name(kind: super::TunnelKind) -> &'static str {
    match kind {
        super::TunnelKind::Wireguard => "wireguard",
        super::TunnelKind::Ipsec => "ipsec",
    }
}

/// A flow as its line shows it.
#[derive(Serialize)]
pub(crate) struct FlowRecord<'a> {
    event: &'static str,
    protocol: Protocol,
    src_tenant: Option<&'a str>,
    dst_tenant: Option<&'a str>,
    facility: Option<Code>,
    rule: Option<&'a str>,
    agreement: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_id: Option<u16>,
    before: Endpoints,
    exchange: Endpoints,
    after: Endpoints,
    #[serde(skip_serializing_if = "Option::is_none")]
    packets: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// A packet's addresses and ports at one point of its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Endpoints {
    src: Option<Ipv4Addr>,
    src_port: Option<u16>,
    dst: Option<Ipv4Addr>,
    dst_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Name(&'static str),
    Number(u8),
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Name(n) => s.serialize_str(n),
            Protocol::Number(n) => s.serialize_u8(*n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Name(n) => f.write_str(n),
            Protocol::Number(n) => write!(f, "protocol {n}"),
        }
    }
}

/// A facility code, written as its 10 digits.
#[derive(Debug, Clone, Copy)]
struct Code(FacilityCode);

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'a> FlowRecord<'a> {
    pub(crate) fn of(f: &'a FlowEvent) -> FlowRecord<'a> {
        let plan = &*f.plan;
        let o = f.opener;
        let src = plan.tenants.get(f.src_tenant.index());
        let dst = plan.tenants.get(f.dst_tenant.index());
        let rule = plan.policy.rule(f.rule);
        let (protocol, ports) = match o.protocol {
            PROTO_TCP => (Protocol::Name("tcp"), true),
            PROTO_UDP => (Protocol::Name("udp"), true),
            PROTO_ICMP => (Protocol::Name("icmp"), false),
            n => (Protocol::Number(n), false),
        };
        let (src_port, dst_port) = if ports {
            (Some(o.src_port), Some(o.dst_port))
        } else {
            (None, None)
        };
        let points = |src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>| Endpoints {
            src,
            src_port,
            dst,
            dst_port,
        };
        // Twice NAT (`nat::translate`): the source leaves the opener's tenant translated to its
        // exchange address, the destination arrives translated from exchange to the
        // responder's internal address; ports stay.
        let src_internal = src
            .and_then(|t| t.map.to_internal(ExchangeV4(o.src)))
            .map(|a| a.0);
        let dst_internal = dst
            .and_then(|t| t.map.to_internal(ExchangeV4(o.dst)))
            .map(|a| a.0);
        let end = match f.phase {
            FlowPhase::Start => None,
            FlowPhase::End(why) => Some(why),
        };
        FlowRecord {
            event: if end.is_some() {
                "flow_end"
            } else {
                "flow_start"
            },
            protocol,
            src_tenant: src.map(|t| t.name.as_str()),
            dst_tenant: dst.map(|t| t.name.as_str()),
            facility: f.facility.map(Code),
            rule: rule.map(|r| r.name.as_str()),
            agreement: rule.is_some_and(|r| r.agreement),
            icmp_id: (o.protocol == PROTO_ICMP).then_some(o.src_port),
            before: points(src_internal, Some(o.dst)),
            exchange: points(Some(o.src), Some(o.dst)),
            after: points(Some(o.src), dst_internal),
            packets: end.map(|_| f.packets),
            bytes: end.map(|_| f.bytes),
            duration_ms: end.map(|_| u64::try_from(f.duration.as_millis()).unwrap_or(u64::MAX)),
            reason: end.map(|why| why.name()),
        }
    }

    fn summarize(&self, s: &mut String) -> fmt::Result {
        let name = |n: Option<&str>| n.unwrap_or("unknown").to_string();
        write!(
            s,
            "flow {}: {} {} as {} ({} -> {}",
            if self.reason.is_some() {
                "end"
            } else {
                "start"
            },
            self.protocol,
            EndpointsText(&self.before),
            EndpointsText(&self.after),
            name(self.src_tenant),
            name(self.dst_tenant),
        )?;
        if let Some(f) = self.facility {
            write!(s, ", facility {}", f.0)?;
        }
        write!(
            s,
            ", {} {})",
            if self.agreement { "agreement" } else { "rule" },
            name(self.rule)
        )?;
        if let (Some(reason), Some(ms), Some(b), Some(p)) =
            (self.reason, self.duration_ms, self.bytes, self.packets)
        {
            write!(
                s,
                ": {reason} after {ms} ms, {} packets/{} bytes out, {} packets/{} bytes back",
                p[0], b[0], p[1], b[1]
            )?;
        }
        Ok(())
    }
}

struct EndpointsText<'a>(&'a Endpoints);

impl fmt::Display for EndpointsText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let addr = |a: Option<Ipv4Addr>| a.map_or_else(|| "?".to_string(), |a| a.to_string());
        match (e.src_port, e.dst_port) {
            (Some(sp), Some(dp)) => write!(f, "{}:{sp} -> {}:{dp}", addr(e.src), addr(e.dst)),
            _ => write!(f, "{} -> {}", addr(e.src), addr(e.dst)),
        }
    }
}

/// A time as RFC 3339 in UTC with milliseconds: `2026-04-01T00:30:00.123Z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ts(pub SystemTime);

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = time::OffsetDateTime::from(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
