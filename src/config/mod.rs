//! Configuration: one YAML file → raw serde structs (`raw`) → a validated [`Config`].
//!
//! Layer contract: parsing and validation read the configuration file and the key files it
//! names, and nothing else; they never bind a socket or create a device. Every error names the
//! file, the line and the offending key and value (see [`ConfigError`]). The validated
//! [`Config`] is compiled into the data path's immutable plan by [`crate::dataplane::Plan`].

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::Ipv4Network;

use crate::ids::FacilityCode;

mod error;
mod lines;
mod raw;
mod validate;

pub use error::{ConfigError, Problem};

/// A 32-byte key (X25519 private/public key, WireGuard preshared key).
#[derive(Clone, PartialEq, Eq)]
pub struct Key32(pub [u8; 32]);

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(..)")
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this configuration was read from.
    pub source: PathBuf,
    pub ix: Ix,
    pub metrics: Metrics,
    pub dataplane: Dataplane,
    pub tenants: Vec<Tenant>,
    pub services: Vec<Service>,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ix {
    pub name: String,
    /// Every tenant's exchange prefix lies inside this.
    pub exchange_space: Ipv4Network,
    /// The address facilities dial (used by `ixgw peer-config`).
    pub public_address: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Where `/metrics`, `/live` and `/ready` are served.
    pub listen: SocketAddr,
}

/// Data path limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataplane {
    /// Maximum number of tracked flows; a new flow beyond it is dropped (`flow_table_full`).
    pub flow_table_size: usize,
    pub tcp_idle_timeout: Duration,
    pub udp_idle_timeout: Duration,
    pub icmp_idle_timeout: Duration,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            flow_table_size: 131_072,
            tcp_idle_timeout: Duration::from_secs(7200),
            udp_idle_timeout: Duration::from_secs(120),
            icmp_idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub name: String,
    pub networks: Vec<Network>,
    pub attachments: Vec<Attachment>,
}

/// One 1:1 mapping between a tenant's internal prefix and its exchange prefix (same length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub internal: Ipv4Network,
    pub exchange: Ipv4Network,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub kind: AttachmentKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttachmentKind {
    WireGuard(WireGuardAttachment),
    Plain(PlainAttachment),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WireGuardAttachment {
    pub listen: SocketAddr,
    pub private_key_file: PathBuf,
    pub private_key: Key32,
    /// The inner MTU facilities use on this tunnel (wg-quick default 1420).
    pub mtu: u16,
    pub peers: Vec<WireGuardPeer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WireGuardPeer {
    pub name: String,
    pub facility: FacilityCode,
    pub public_key: Key32,
    pub preshared_key_file: Option<PathBuf>,
    pub preshared_key: Option<Key32>,
    /// What the peer may source (anti-spoofing) and what is routed to it, in the tenant's
    /// internal numbering.
    pub allowed_ips: Vec<Ipv4Network>,
    /// The facility side's tunnel interface address for `ixgw peer-config`; defaults to the
    /// first allowed-ips network.
    pub address: Option<Ipv4Network>,
    /// A fixed endpoint; without one the gateway learns it from the peer's first handshake.
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
    /// Packets to the network or broadcast address of an `allowed_ips` prefix (of length 30
    /// or less) are forwarded; by default they are dropped (`directed_broadcast`).
    pub directed_broadcast: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlainAttachment {
    /// TUN device name.
    pub tun: String,
    pub mtu: u16,
    /// Internal prefixes reachable through this device (routing and anti-spoofing).
    pub routes: Vec<Ipv4Network>,
    /// Prefixes the gateway routes into the device in the kernel, so that replies come back
    /// (defaults to the IX exchange space).
    pub kernel_routes: Vec<Ipv4Network>,
    /// Packets to the network or broadcast address of a `routes` prefix (of length 30 or
    /// less) are forwarded; by default they are dropped (`directed_broadcast`).
    pub directed_broadcast: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// Any IP protocol.
    Any,
}

/// One `allow` item: a protocol and an inclusive destination port range (TCP/UDP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRule {
    pub protocol: Protocol,
    pub ports: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub tenant: String,
    /// Internal address in the tenant; its exchange address follows from the tenant's mapping.
    pub address: Ipv4Addr,
    pub ports: Vec<PortRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub from: Source,
    pub to: Destination,
    pub allow: Vec<PortRule>,
}

/// Who may open a flow. Empty lists match anything; all given lists must match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    pub tenants: Vec<String>,
    pub facilities: Vec<FacilityCode>,
    /// Internal prefixes of the source tenant(s).
    pub prefixes: Vec<Ipv4Network>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// Hosts of these tenants, optionally only inside `prefixes` (internal numbering).
    Tenants {
        tenants: Vec<String>,
        prefixes: Vec<Ipv4Network>,
    },
    /// These services, on their own ports unless the policy's `allow` narrows them.
    Services(Vec<String>),
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
        Config::from_str_at(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors and anchors
    /// relative key file paths.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        validate::validate(text, path)
    }
}

/// Fuzzing body shared by `fuzz/` and the property tests: any bytes as a configuration file
/// give a configuration or an error naming the file and a line, never a panic.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent-ixgw-fuzz/fuzz.yaml");
    if let Err(e) = Config::from_str_at(text, path) {
        let shown = e.to_string();
        assert!(
            shown.starts_with("/nonexistent-ixgw-fuzz/fuzz.yaml"),
            "error without the file: {shown}"
        );
    }
}
