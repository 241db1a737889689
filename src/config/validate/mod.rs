//! Validation: raw structures → [`super::Config`].
//!
//! Checks everything that can be known from the file and the key files it names: value
//! grammar, address plan consistency (same-length 1:1 mappings inside the exchange space,
//! no overlaps), uniqueness of names, keys, sockets and devices, and that services and
//! policies name things that exist. The first error found is returned, with the line of the
//! key it concerns (see [`super::lines`]).
//!
//! By concern: this file holds the entry, the translation of deserializer errors and the
//! top-level sections (`ix`, `metrics`, `dataplane`); `tenants.rs` the address plan and the
//! attachments, one file (or folder, `ipsec/`) per attachment type, `policies.rs` services and
//! policies, `audit.rs` the audit trail, `usage.rs` usage records, `values.rs` the grammar of single values and the
//! generic checks. Every check is a method of [`Validator`], which knows the file and
//! the line of every key.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use ipnetwork::Ipv4Network;
use zeroize::Zeroizing;

use super::error::Problem;
use super::lines::LineMap;
use super::raw;
use super::{
    Attachment, AttachmentKind, Config, ConfigError, Dataplane, Destination, EthernetAttachment,
    FlowLimit, Ix, Key32, Metrics, Network, PeerSeries, PlainAttachment, Policy, PortRule,
    Protocol, Service, Source, Tenant, WireGuardAttachment, WireGuardPeer,
};
use crate::config::{Warning, PEER_SERIES_WARN_PEERS};
use crate::ids::FacilityCode;

mod agreements;
mod audit;
mod ethernet;
mod facilities;
mod ipsec;
mod plain;
mod policies;
mod tenants;
mod tls;
mod usage;
mod values;
mod wireguard;

use ethernet::Ports;
use tenants::*;
use values::*;

pub(super) const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(127, 0, 0, 1),
    9477,
));
/// Every IPv4 host must accept 576-byte datagrams [RFC 791, RFC 1122 § 3.3.3]; a WireGuard
/// inner MTU above 1500 would need a jumbo-frame underlay, which the facilities do not have.
pub(super) const WIREGUARD_MTU: RangeInclusive<u16> = 576..=1500;
pub(super) const WIREGUARD_DEFAULT_MTU: u16 = 1420;
/// Plain attachments: packet buffers are sized for a 1500-byte MTU (`buffer::BUF_SIZE`), and
/// a packet crossing into a WireGuard tunnel must fit its MTU anyway.
pub(super) const PLAIN_MTU: RangeInclusive<u16> = 576..=1500;
pub(super) const PLAIN_DEFAULT_MTU: u16 = 1500;
/// IPsec attachments: the same bounds as WireGuard's. ESP-in-UDP with AES-CBC and
/// HMAC-SHA-512, the largest overhead ixgw negotiates, adds 92 bytes to a 1400-byte packet
/// (IPv4 20, UDP 8, SPI and sequence 8, IV 16, padding and trailer 8, ICV 32 [RFC 4303,
/// RFC 3948]): it fits a 1500-byte underlay.
pub(super) const IPSEC_MTU: RangeInclusive<u16> = 576..=1500;
pub(super) const IPSEC_DEFAULT_MTU: u16 = 1400;
pub(super) const FLOW_TABLE_SIZE: RangeInclusive<u64> = 1..=(1 << 24);
/// Data-path workers: at least one, at most what a large server has cores for.
pub(super) const WORKERS: RangeInclusive<u64> = 1..=64;
/// Idle timeouts, in seconds: at least a second, at most a week.
pub(super) const IDLE_TIMEOUT: RangeInclusive<u64> = 1..=604_800;
pub(super) const KEEPALIVE: RangeInclusive<u64> = 1..=65_535;
/// A key file larger than this is certainly not one base64 key (nor a pre-shared key).
const KEY_FILE_LIMIT: u64 = 1024;
/// Certificate, CA and private key files (PEM): a chain of a few certificates takes some
/// kilobytes; the limit bounds what a wrong path makes `ixgw check` read.
const PEM_FILE_LIMIT: u64 = 1 << 20;
/// IFNAMSIZ - 1.
const TUN_NAME_MAX: usize = 15;

pub(super) fn validate(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let root: raw::Root = yaml_serde::from_str(text).map_err(|e| serde_error(&file, &e))?;
    let v = Validator {
        file,
        lines: LineMap::build(text),
        dir: path.parent().unwrap_or(Path::new("")).to_path_buf(),
        credentials: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        file_warnings: Default::default(),
    };
    v.config(root, path)
}

/// Turns a deserializer error into `FILE:LINE: KEY_PATH: message`. `yaml_serde` writes its
/// messages as `PATH: MESSAGE at line L column C`; for unknown and missing keys the path is
/// extended by the key itself.
fn serde_error(file: &str, e: &yaml_serde::Error) -> ConfigError {
    let mut message = e.to_string();
    let line = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(m) = message.strip_suffix(&suffix) {
                message = m.to_string();
            }
            loc.line()
        }
        None => 1,
    };
    let (key, message) = match message.split_once(": ") {
        Some((head, rest)) if is_key_path(head) => (head.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    let (key, message) = schema_words(key, message);
    if key.is_empty() {
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            message,
        }
    } else {
        ConfigError::Invalid {
            file: file.to_string(),
            line,
            key,
            problem: Box::new(Problem::Schema(message)),
        }
    }
}

/// Words a deserializer's message for the operator: unknown and missing keys extend the key
/// path by the key, and YAML shapes are named rather than the Rust types behind them.
fn schema_words(mut key: String, mut message: String) -> (String, String) {
    for (field, word) in [
        ("unknown field `", "unknown key `"),
        ("missing field `", "missing key `"),
    ] {
        if let Some(rest) = message.strip_prefix(field) {
            if let Some((name, _)) = rest.split_once('`') {
                if !key.ends_with(&format!(".{name}")) && key != name {
                    key = if key.is_empty() {
                        name.to_string()
                    } else {
                        format!("{key}.{name}")
                    };
                }
            }
            message = format!("{word}{rest}");
        }
    }
    if let Some(i) = message.find(", expected struct ") {
        message.replace_range(i.., ", expected a mapping");
    }
    message = message.replace("expected u64", "expected a whole number");
    (key, message)
}

fn is_key_path(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'))
}

struct Validator {
    file: String,
    lines: LineMap,
    dir: PathBuf,
    /// `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`): relative key file paths are
    /// looked up there first.
    credentials: Option<PathBuf>,
    /// Warnings found while reading files (secrets readable by others).
    file_warnings: std::cell::RefCell<Vec<crate::config::Warning>>,
}

/// Names seen so far, with the key that defined each.
#[derive(Default)]
struct Names(HashMap<String, String>);

/// A prefix with the key path it was read from.
type Keyed = (Ipv4Network, String);

/// The sockets attachments claim, each with the key path that claimed it.
#[derive(Default)]
struct Sockets {
    udp: Vec<(SocketAddr, String)>,
    /// Raw ESP sockets (IP protocol 50), by local address.
    esp: Vec<(Ipv4Addr, String)>,
    /// TCP listeners of `tls` attachments.
    tcp: Vec<(SocketAddr, String)>,
}

/// A plain attachment's kernel route: prefix, key path, the attachment's (tenant, attachment)
/// indices, and whether it is the default (`kernel_routes` left out).
type KernelRoute = (Ipv4Network, String, (usize, usize), bool);

impl Validator {
    fn err(&self, key: &str, problem: Problem) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: self.lines.line(key),
            key: key.to_string(),
            problem: Box::new(problem),
        }
    }

    /// `metrics.peer_series`: `all` (the default), `state` or `none`.
    fn peer_series(&self, m: Option<&raw::Metrics>) -> Result<PeerSeries, ConfigError> {
        match m.and_then(|m| m.peer_series.as_deref()).map(str::trim) {
            None | Some("all") => Ok(PeerSeries::All),
            Some("state") => Ok(PeerSeries::State),
            Some("none") => Ok(PeerSeries::None),
            Some(other) => Err(self.err(
                "metrics.peer_series",
                Problem::Choice {
                    value: other.to_string(),
                    expected: "all, state or none",
                },
            )),
        }
    }

    /// Many peers and no `metrics.peer_series`: every peer has nine series by default.
    fn peer_series_warning(&self, m: Option<&raw::Metrics>, tenants: &[Tenant]) -> Option<Warning> {
        if m.is_some_and(|m| m.peer_series.is_some()) {
            return None;
        }
        let peers: usize = (tenants.iter().flat_map(|t| &t.attachments))
            .map(|a| match &a.kind {
                AttachmentKind::WireGuard(w) => w.peers.len(),
                AttachmentKind::Ipsec(i) => i.peers.len(),
                AttachmentKind::Tls(t) => t.peers.len(),
                AttachmentKind::Plain(_) | AttachmentKind::Ethernet(_) => 0,
            })
            .sum();
        (peers > PEER_SERIES_WARN_PEERS).then(|| Warning {
            line: m.map(|_| self.lines.line("metrics")),
            ..self.warning(
                "metrics.peer_series",
                format!(
                    "{peers} peers export {} per-peer series (about {} MiB a scrape); set `all` to keep them, or `state` or `none` to export peers' traffic only per attachment",
                    peers * 9,
                    (peers * 9 * 120).div_ceil(1 << 20)
                ),
            )
        })
    }

    fn config(&self, root: raw::Root, path: &Path) -> Result<Config, ConfigError> {
        let ix = self.ix(&root.ix)?;
        let metrics = Metrics {
            listen: match root.metrics.as_ref().and_then(|m| m.listen.as_deref()) {
                Some(s) => self.socket("metrics.listen", s)?,
                None => DEFAULT_METRICS_LISTEN,
            },
            admin_socket: match root
                .metrics
                .as_ref()
                .and_then(|m| m.admin_socket.as_deref())
            {
                Some(s) if s.trim() == "none" => None,
                Some(s) => {
                    self.nonempty("metrics.admin_socket", s)?;
                    let given = Path::new(s.trim());
                    Some(self.dir.join(given))
                }
                None => Some(PathBuf::from(crate::config::DEFAULT_ADMIN_SOCKET)),
            },
            peer_series: self.peer_series(root.metrics.as_ref())?,
        };
        let dataplane = match &root.dataplane {
            Some(d) => self.dataplane(d)?,
            None => Dataplane::default(),
        };
        let mut warnings = Vec::new();
        let trust = self.trust(&root.trust, &mut warnings)?;
        self.tenant_trust(&root.tenants, &trust)?;
        let tenants = self.tenants(&root.tenants, &ix)?;
        if let Some(w) = self.peer_series_warning(root.metrics.as_ref(), &tenants) {
            warnings.push(w);
        }
        let services = self.services(&root.services, &tenants)?;
        let policies = self.policies(&root.policies, &tenants, &services)?;
        let agreements = self.agreements(
            &root.agreements,
            &tenants,
            &services,
            &policies,
            &mut warnings,
        )?;
        let facilities = self.facilities(&root.facilities, &tenants, &mut warnings)?;
        warnings.extend(self.file_warnings.take());
        let audit = match &root.audit {
            Some(a) => Some(self.audit(a, &mut warnings)?),
            None => None,
        };
        let usage = match &root.usage {
            Some(u) => Some(self.usage(u)?),
            None => None,
        };
        Ok(Config {
            source: path.to_path_buf(),
            ix,
            metrics,
            dataplane,
            tenants,
            services,
            policies,
            agreements,
            trust,
            facilities,
            audit,
            usage,
            warnings,
        })
    }

    fn ix(&self, ix: &raw::Ix) -> Result<Ix, ConfigError> {
        self.nonempty("ix.name", &ix.name)?;
        let exchange_space = self.prefix("ix.exchange_space", &ix.exchange_space)?;
        let public_address = match &ix.public_address {
            Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| {
                self.err("ix.public_address", Problem::IpAddr { value: s.clone() })
            })?),
            None => None,
        };
        Ok(Ix {
            name: ix.name.clone(),
            exchange_space,
            public_address,
        })
    }

    fn dataplane(&self, d: &raw::Dataplane) -> Result<Dataplane, ConfigError> {
        let def = Dataplane::default();
        let flow_table_size = match d.flow_table_size {
            Some(n) => {
                self.in_range("dataplane.flow_table_size", n, FLOW_TABLE_SIZE)?;
                usize::try_from(n).map_err(|_| {
                    self.err(
                        "dataplane.flow_table_size",
                        out_of_range(n, FLOW_TABLE_SIZE),
                    )
                })?
            }
            None => def.flow_table_size,
        };
        let timeout = |key: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => {
                let t = self.duration(key, s)?;
                self.in_range(key, t.as_secs(), IDLE_TIMEOUT)?;
                Ok(t)
            }
            None => Ok(default),
        };
        let workers = match d.workers {
            Some(n) => {
                self.in_range("dataplane.workers", n, WORKERS)?;
                Some(n as u16)
            }
            None => None,
        };
        Ok(Dataplane {
            workers,
            flow_table_size,
            tcp_idle_timeout: timeout(
                "dataplane.tcp_idle_timeout",
                &d.tcp_idle_timeout,
                def.tcp_idle_timeout,
            )?,
            udp_idle_timeout: timeout(
                "dataplane.udp_idle_timeout",
                &d.udp_idle_timeout,
                def.udp_idle_timeout,
            )?,
            icmp_idle_timeout: timeout(
                "dataplane.icmp_idle_timeout",
                &d.icmp_idle_timeout,
                def.icmp_idle_timeout,
            )?,
            max_flows_per_tenant: match &d.max_flows_per_tenant {
                Some(v) => self.flow_limit("dataplane.max_flows_per_tenant", v)?,
                None => def.max_flows_per_tenant,
            },
            max_flows_per_facility: match &d.max_flows_per_facility {
                Some(v) => self.flow_limit("dataplane.max_flows_per_facility", v)?,
                None => def.max_flows_per_facility,
            },
        })
    }

    /// A number of flows (1..=the largest table), or a share of the table like `25%` or
    /// `12.5%` (above 0, at most 100).
    fn flow_limit(&self, key: &str, v: &yaml_serde::Value) -> Result<FlowLimit, ConfigError> {
        let text = match v {
            yaml_serde::Value::Number(n) => n.to_string(),
            yaml_serde::Value::String(s) => s.trim().to_string(),
            other => yaml_serde::to_string(other)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        };
        let bad = || {
            self.err(
                key,
                Problem::FlowLimit {
                    value: text.clone(),
                },
            )
        };
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(FlowLimit::Percent(p));
        }
        let n: u64 = text.parse().map_err(|_| bad())?;
        self.in_range(key, n, FLOW_TABLE_SIZE)?;
        Ok(FlowLimit::Flows(n as usize))
    }
}

#[cfg(test)]
mod agreement_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod ethernet_tests;
#[cfg(test)]
mod facility_tests;
#[cfg(test)]
mod ipsec_file_tests;
#[cfg(test)]
mod ipsec_peer_tests;
#[cfg(test)]
mod ipsec_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
#[cfg(test)]
mod usage_tests;
