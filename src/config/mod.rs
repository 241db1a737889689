//! Configuration: one YAML file → raw serde structs (`raw`) → a validated [`Config`].
//!
//! Layer contract: parsing and validation read the configuration file and the key files it
//! names, and nothing else; they never bind a socket or create a device. Every error names the
//! file, the line and the offending key and value (see [`ConfigError`]). The validated
//! [`Config`] is compiled into the data path's immutable plan by [`crate::dataplane::Plan`].

#![forbid(unsafe_code)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::Ipv4Network;

use crate::ids::FacilityCode;

mod audit;
mod error;
mod facility;
mod ipsec;
mod lines;
mod operator;
mod raw;
mod usage;
mod validate;

pub use audit::{AuditConfig, Journald, AUDIT_DEFAULT_QUEUE, AUDIT_QUEUE};
pub use error::{ConfigError, Problem};
pub use facility::{
    Agreement, CrlPolicy, Facility, FacilityCertificate, Grant, TrustBundle, Warning,
};
pub use ipsec::{
    dh_token, encr_token, integ_token, prf_token, DpdAction, Esn, EspProposal, GatewayCredentials,
    IkeIdentity, IkeProposal, IpsecAttachment, IpsecAuth, IpsecPeer, IpsecStart, KeyFormat,
    PrivateKey, Secret, DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS,
};
pub use operator::{operator_paths, OperatorPaths};
pub use usage::{UsageConfig, USAGE_DEFAULT_DIR, USAGE_DEFAULT_INTERVAL, USAGE_INTERVAL_DIVIDES};

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
    /// Bilateral agreements; only approved ones grant anything ([`Config::grants`]).
    pub agreements: Vec<Agreement>,
    /// CA bundles facility certificates may chain to.
    pub trust: Vec<TrustBundle>,
    /// The facility registry; `None` when the file has no `facilities:` (then no facility
    /// certificate is checked).
    pub facilities: Option<Vec<Facility>>,
    /// The audit trail; `None` when the file has no `audit:` (then nothing is recorded).
    pub audit: Option<AuditConfig>,
    /// Usage records for cost sharing; `None` when the file has no `usage:` (then none are
    /// written).
    pub usage: Option<UsageConfig>,
    /// What `ixgw check` reports without refusing the file.
    pub warnings: Vec<Warning>,
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
    /// The admin socket `ixgw show` asks (a Unix socket); `None`: none.
    pub admin_socket: Option<PathBuf>,
    /// Which per-peer series `/metrics` exports.
    pub peer_series: PeerSeries,
}

/// Which per-peer series `/metrics` exports (`metrics.peer_series`). The per-attachment sums
/// of the peers' counters and the peer counts are exported whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerSeries {
    /// Every `ixgw_peer_*` family for every peer: nine series per peer.
    #[default]
    All,
    /// `ixgw_peer_up` and `ixgw_peer_last_handshake_timestamp_seconds` per peer (what the
    /// peer alerts read), the traffic counters only per attachment: two series per peer.
    State,
    /// No series per peer.
    None,
}

/// Above this many peers, `ixgw check` suggests setting `metrics.peer_series` if the file
/// leaves it out: 9 series a peer then make 18,000 series and about 2 MiB a scrape.
pub const PEER_SERIES_WARN_PEERS: usize = 2_000;

/// Where the admin socket is unless the file says otherwise (the unit's RuntimeDirectory).
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/ixgw/ixgw.sock";

/// Data path limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataplane {
    /// Data-path worker threads; `None`: one per core the process may run on.
    pub workers: Option<u16>,
    /// Maximum number of tracked flows; a new flow beyond it is dropped (`flow_table_full`).
    pub flow_table_size: usize,
    pub tcp_idle_timeout: Duration,
    pub udp_idle_timeout: Duration,
    pub icmp_idle_timeout: Duration,
    /// The most flows the hosts of one tenant may have opened at once.
    pub max_flows_per_tenant: FlowLimit,
    /// The most flows one facility (the peers that carry its code) may have opened at once.
    pub max_flows_per_facility: FlowLimit,
}

impl Dataplane {
    /// How many data-path workers run: as configured, else one per core the process may run
    /// on (at most 64).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n).max(1),
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(64)),
        }
    }
}

impl Config {
    /// What may admit a flow, in order: the policies, then the agreements both sides
    /// approved (whether in force now is for the caller to ask, [`Agreement::in_force_at`]).
    pub fn grants(&self) -> impl Iterator<Item = Grant<'_>> {
        self.policies
            .iter()
            .map(|policy| Grant {
                policy,
                agreement: None,
            })
            .chain(
                self.agreements
                    .iter()
                    .filter(|a| a.approved())
                    .map(|a| Grant {
                        policy: &a.grant,
                        agreement: Some(a),
                    }),
            )
    }
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            workers: None,
            flow_table_size: 131_072,
            tcp_idle_timeout: Duration::from_secs(7200),
            udp_idle_timeout: Duration::from_secs(120),
            icmp_idle_timeout: Duration::from_secs(30),
            max_flows_per_tenant: FlowLimit::Percent(25.0),
            max_flows_per_facility: FlowLimit::Percent(10.0),
        }
    }
}

/// A limit on the flows one tenant or facility holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowLimit {
    /// A share of `flow_table_size`, in percent (0, 100].
    Percent(f64),
    /// A number of flows.
    Flows(usize),
}

impl FlowLimit {
    /// The number of flows this limit allows in a table of `capacity`: a share is rounded
    /// down, but never below one flow.
    pub fn flows(self, capacity: usize) -> usize {
        match self {
            FlowLimit::Flows(n) => n,
            FlowLimit::Percent(p) => ((capacity as f64 * p / 100.0) as usize).max(1),
        }
    }
}

impl std::fmt::Display for FlowLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowLimit::Percent(p) => write!(f, "{p}%"),
            FlowLimit::Flows(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub name: String,
    /// The CA bundles (`trust:` names) its facilities' certificates may chain to.
    pub trust: Vec<String>,
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
    Ipsec(IpsecAttachment),
    Ethernet(EthernetAttachment),
    Tls(TlsAttachment),
}

impl AttachmentKind {
    /// The `type` written in the configuration.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttachmentKind::WireGuard(_) => "wireguard",
            AttachmentKind::Plain(_) => "plain",
            AttachmentKind::Ipsec(_) => "ipsec",
            AttachmentKind::Ethernet(_) => "ethernet",
            AttachmentKind::Tls(_) => "tls",
        }
    }
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

/// An `ethernet` attachment: a carrier's IP-VPN handed over on an Ethernet port (or one VLAN
/// of it) that ixgw owns through an AF_PACKET socket; the host's routing never sees the
/// tenant's addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct EthernetAttachment {
    /// The port's interface name (dedicated to ixgw: no addresses of its own).
    pub interface: String,
    /// The 802.1Q VLAN id of the tenant's frames (1..=4094); `None`: untagged.
    pub vlan: Option<u16>,
    /// The gateway's address on the link, with the length of the directly connected prefix
    /// (internal numbering): the prefix is routed to the link, its hosts resolved with ARP.
    pub address: Ipv4Network,
    /// The gateway's MAC on the link: configured, or a locally administered address derived
    /// from the attachment's name ([`derived_mac`]).
    pub mac: [u8; 6],
    /// The carrier's router on the link, through which `routes` are reached.
    pub next_hop: Option<Ipv4Addr>,
    /// Internal prefixes reached through `next_hop` (routing and anti-spoofing), besides the
    /// connected prefix.
    pub routes: Vec<Ipv4Network>,
    pub mtu: u16,
    /// Packets to the network or broadcast address of the connected prefix or a `routes`
    /// prefix (of length 30 or less) are forwarded; by default they are dropped.
    pub directed_broadcast: bool,
}

impl EthernetAttachment {
    /// The directly connected prefix (the network of `address`).
    pub fn connected(&self) -> Ipv4Network {
        Ipv4Network::new(self.address.network(), self.address.prefix()).unwrap_or(self.address)
    }

    /// Every internal prefix the link reaches: the connected prefix, then `routes`.
    pub fn all_routes(&self) -> impl Iterator<Item = Ipv4Network> + '_ {
        std::iter::once(self.connected()).chain(self.routes.iter().copied())
    }
}

/// A `tls` attachment: SSL-VPN clients speaking OpenConnect's AnyConnect-compatible protocol
/// (CSTP over TLS), each logging in with its facility's client certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsAttachment {
    /// The TCP socket clients connect to.
    pub listen: SocketAddr,
    /// The server's certificate chain and key.
    pub credentials: GatewayCredentials,
    /// The trust bundles (`trust:` names, all trusted by the tenant) whose CAs issue the
    /// clients' certificates: the TLS handshake accepts only chains to these.
    pub client_ca: Vec<String>,
    /// TLS 1.2 is accepted besides 1.3.
    pub tls12: bool,
    /// The addresses handed to clients (internal numbering), one per connected peer.
    pub pool: Ipv4Network,
    /// DNS servers pushed to clients (internal numbering of the tenant... as the client
    /// reaches them: exchange addresses).
    pub dns: Vec<Ipv4Addr>,
    /// The exchange prefixes pushed as routes into the tunnel; `None`: those each peer's
    /// policies reach (as `ixgw peer-config` computes WireGuard's AllowedIPs).
    pub split_routes: Option<Vec<Ipv4Network>>,
    pub mtu: u16,
    /// How often the client checks the tunnel (X-CSTP-DPD).
    pub dpd: Duration,
    /// How often the client sends keepalives (X-CSTP-Keepalive).
    pub keepalive: Duration,
    /// A session without traffic, or without a connection, ends after this long.
    pub idle_timeout: Duration,
    /// A session ends this long after its login, connected or not.
    pub session_timeout: Duration,
    pub peers: Vec<TlsPeer>,
}

/// A facility whose clients may log in to a `tls` attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPeer {
    pub name: String,
    pub facility: FacilityCode,
}

/// The MAC an `ethernet` attachment uses when none is configured: locally administered and
/// unicast (first byte 0x02), then five bytes of the FNV-1a hash of the attachment's name, so
/// that it stays the same across restarts and differs from the port's own MAC (frames to the
/// port's MAC would also reach the host's IP stack).
pub fn derived_mac(attachment: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in attachment.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
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

/// The largest configuration file ixgw reads: 16 MiB. A WireGuard peer takes 300 to 400 bytes
/// of YAML (name, facility, public key, allowed_ips, a comment), so 10,000 peers fit in about
/// 4 MiB and the limit leaves four times that room; it bounds what a reload can make the daemon
/// allocate (the parsed YAML tree takes several times the text) and keeps a wrong path (a log,
/// a disk image, a device) from being read whole.
pub const CONFIG_FILE_LIMIT: u64 = 16 << 20;

impl Config {
    /// Reads, parses and validates a configuration file of at most [`CONFIG_FILE_LIMIT`] bytes.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_limited(path, CONFIG_FILE_LIMIT)?;
        Config::from_str_at(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors and anchors
    /// relative key file paths.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        validate::validate(text, path)
    }
}

/// Reads a text file of at most `limit` bytes. A regular file's size is checked before reading;
/// the read itself stops one byte past the limit, which also bounds FIFOs, devices and files
/// that grow while they are read.
fn read_limited(path: &Path, limit: u64) -> Result<String, ConfigError> {
    let too_large = |size| ConfigError::TooLarge {
        path: path.display().to_string(),
        size,
        limit,
    };
    let file = std::fs::File::open(path).map_err(|e| ConfigError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ConfigError::io(path, e))?;
    if meta.is_file() && meta.len() > limit {
        return Err(too_large(Some(meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(None));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let message = format!("not UTF-8 text (invalid byte at offset {at})");
        ConfigError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ixgw-config-limit-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_file_over_the_limit_is_rejected_by_its_size_without_reading_it() {
        let path = temp_path("big.yaml");
        let file = std::fs::File::create(&path).expect("create temp file");
        // Sparse: no data blocks, so only the size check can reject it quickly.
        file.set_len(CONFIG_FILE_LIMIT + 1).expect("set_len");
        drop(file);

        let err = Config::load(&path).expect_err("over the limit");
        let _ = std::fs::remove_file(&path);

        assert!(
            matches!(
                err,
                ConfigError::TooLarge {
                    size: Some(size),
                    limit: CONFIG_FILE_LIMIT,
                    ..
                } if size == CONFIG_FILE_LIMIT + 1
            ),
            "{err:?}"
        );
        let shown = err.to_string();
        assert_eq!(
            shown,
            format!(
                "{}: the configuration file has 16777217 bytes; ixgw reads at most 16777216 bytes (16 MiB)",
                path.display()
            )
        );
        assert_eq!(err.line(), None);
    }

    #[test]
    fn a_stream_is_read_only_up_to_the_limit() {
        // A character device has no size to check; the bounded read must stop it.
        let path = Path::new("/dev/zero");
        if !path.exists() {
            return;
        }
        let err = Config::load(path).expect_err("endless stream");
        assert!(
            matches!(err, ConfigError::TooLarge { size: None, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "/dev/zero: the configuration file has more than 16777216 bytes; ixgw reads at most 16777216 bytes (16 MiB)"
        );
    }

    #[test]
    fn a_file_at_the_limit_is_read_and_one_byte_more_is_not() {
        let path = temp_path("exact.yaml");
        let text = "ix: {name: x}\n";
        std::fs::write(&path, text).expect("write temp file");
        let len = text.len() as u64;

        let at = read_limited(&path, len);
        let over = read_limited(&path, len - 1);
        let _ = std::fs::remove_file(&path);

        assert_eq!(at.expect("at the limit"), text);
        let err = over.expect_err("one byte over");
        assert!(
            matches!(err, ConfigError::TooLarge { size: Some(s), limit, .. } if s == len && limit == len - 1),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_named() {
        let path = temp_path("latin1.yaml");
        std::fs::write(&path, b"ix:\n  name: caf\xe9\n").expect("write temp file");

        let err = Config::load(&path).expect_err("not UTF-8");
        let _ = std::fs::remove_file(&path);

        assert_eq!(
            err.to_string(),
            format!(
                "{}: not UTF-8 text (invalid byte at offset 15)",
                path.display()
            )
        );
    }
}
