//! Configuration errors.
//!
//! Every error that concerns the file's content renders as `FILE:LINE: KEY_PATH: message`,
//! where `KEY_PATH` is written like `tenants[1].networks[0].exchange` and the message names
//! the offending value. Secrets (key file contents) never appear in a message.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnetwork::Ipv4Network;

use crate::ids::FacilityCodeError;

/// A configuration error, naming the file, the line and the offending key and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is larger than ixgw reads ([`super::CONFIG_FILE_LIMIT`]);
    /// `size` is unknown when the file is not a regular one or grew while it was read.
    #[error(
        "{path}: the configuration file has {}; ixgw reads at most {limit} bytes{}",
        size_text(*.size, *.limit),
        mib_text(*.limit)
    )]
    TooLarge {
        path: String,
        size: Option<u64>,
        limit: u64,
    },
    /// The text is not YAML, or not a YAML mapping at its top level.
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// A key holds a value that is malformed, inconsistent or unknown.
    #[error("{file}:{line}: {key}: {problem}")]
    Invalid {
        file: String,
        line: usize,
        /// Key path, e.g. `tenants[1].networks[0].exchange`.
        key: String,
        problem: Box<Problem>,
    },
}

impl ConfigError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ConfigError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The 1-based line the error points at, if it concerns the file's content.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } | ConfigError::TooLarge { .. } => None,
            ConfigError::Syntax { line, .. } | ConfigError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The key path the error points at, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What is wrong with the value at a key.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A structural error reported while deserializing (unknown key, missing key, wrong type).
    #[error("{0}")]
    Schema(String),
    #[error("unknown key `{key}` for {} {kind} attachment", article(.kind))]
    KeyNotForKind { key: String, kind: &'static str },
    #[error("missing key `{key}`, required for {} {kind} attachment", article(.kind))]
    MissingForKind {
        key: &'static str,
        kind: &'static str,
    },
    #[error(
        "unknown attachment type `{0}` (expected `wireguard`, `plain`, `ipsec`, `ethernet` or `tls`)"
    )]
    UnknownAttachmentType(String),
    #[error("must not be empty")]
    Empty,
    #[error("`{value}` is not an IPv4 prefix like 10.0.0.0/16 ({reason})")]
    Prefix { value: String, reason: String },
    #[error("`{value}` is not an IPv4 address")]
    Ipv4Addr { value: String },
    #[error("`{value}` is not an IP address")]
    IpAddr { value: String },
    #[error("`{value}` is not an ADDRESS:PORT socket address")]
    SocketAddr { value: String },
    #[error("{value} has host bits set (the network is {network})")]
    HostBits {
        value: Ipv4Network,
        network: Ipv4Network,
    },
    #[error("`{value}` is not a duration (write 25s, 5m, 2h or a number of seconds)")]
    Duration { value: String },
    #[error("`{value}` is not a flow limit (write a number of flows like 20000, or a share of dataplane.flow_table_size like 25%)")]
    FlowLimit { value: String },
    #[error("{value} is out of range ({min}..={max})")]
    OutOfRange { value: u64, min: u64, max: u64 },
    #[error("mtu {value} is out of range for {} {kind} attachment ({min}..={max})", article(.kind))]
    Mtu {
        value: u64,
        kind: &'static str,
        min: u16,
        max: u16,
    },
    #[error("`{value}` is not a facility code: {reason}")]
    FacilityCode {
        value: String,
        reason: FacilityCodeError,
    },
    #[error(
        "facility code {value} was written as an unquoted YAML number and has {digits} digits, \
         not 10; if its leading zero was lost, quote the code: \"{padded}\""
    )]
    FacilityUnquoted {
        value: String,
        digits: usize,
        padded: String,
    },
    #[error("peer `{peer}` has no `facility`: every peer must name the 10-digit code of the facility behind it")]
    MissingFacility { peer: String },
    #[error("tenant `{tenant}` has no networks: give at least one internal/exchange pair")]
    NoNetworks { tenant: String },
    #[error("internal prefix {internal} and exchange prefix {exchange} differ in length")]
    LengthMismatch {
        internal: Ipv4Network,
        exchange: Ipv4Network,
    },
    #[error("{value} is outside ix.exchange_space {space}")]
    OutsideExchangeSpace {
        value: Ipv4Network,
        space: Ipv4Network,
    },
    #[error("{value} overlaps {other_key}{} (line {other_line})", other_value(.value, .other))]
    Overlap {
        value: Ipv4Network,
        other: Ipv4Network,
        other_key: String,
        other_line: usize,
    },
    /// Two plain attachments route overlapping prefixes into their devices.
    #[error(
        "{value}{} overlaps {other_key} = {other}{} (line {other_line}); {}",
        defaulted(*.value_default),
        defaulted(*.other_default),
        kernel_route_hint(*.value_default || *.other_default)
    )]
    KernelRouteOverlap {
        value: Ipv4Network,
        value_default: bool,
        other: Ipv4Network,
        other_default: bool,
        other_key: String,
        other_line: usize,
    },
    #[error("duplicate {what} name `{name}` (first defined at {first_key}, line {first_line})")]
    DuplicateName {
        what: &'static str,
        name: String,
        first_key: String,
        first_line: usize,
    },
    #[error("public key {value} is also used by {other_key} (line {other_line})")]
    DuplicatePublicKey {
        value: String,
        other_key: String,
        other_line: usize,
    },
    #[error("`{value}` is not a base64 32-byte key like `wg pubkey` prints")]
    PublicKey { value: String },
    #[error("{value} is not inside an internal prefix of tenant `{tenant}` ({internal})")]
    NotInternal {
        value: String,
        tenant: String,
        internal: String,
    },
    #[error("{value} is routed by no attachment of tenant `{tenant}` (no peer's allowed_ips or remote_ts, no plain attachment's routes): the service would be unreachable")]
    UnroutedService { value: Ipv4Addr, tenant: String },
    #[error("address {value} is not inside this peer's allowed_ips ({allowed})")]
    AddressNotAllowed { value: Ipv4Network, allowed: String },
    #[error("{value} is already used by {other_key} (line {other_line})")]
    SameListen {
        value: String,
        other_key: String,
        other_line: usize,
    },
    #[error("TUN device `{value}` is already used by {other_key} (line {other_line})")]
    SameTun {
        value: String,
        other_key: String,
        other_line: usize,
    },
    #[error("TUN device name `{value}` must be 1 to 15 characters of [A-Za-z0-9_.-]")]
    TunName { value: String },
    #[error("interface name `{value}` must be 1 to 15 characters of [A-Za-z0-9_.-]")]
    InterfaceName { value: String },
    #[error("port {value} is already used by {other_key} (line {other_line})")]
    SamePort {
        value: String,
        other_key: String,
        other_line: usize,
    },
    #[error("`{value}` cannot be the gateway's address on the link: {reason}")]
    LinkAddress { value: String, reason: &'static str },
    #[error("`{value}` is not a unicast MAC address like 02:00:5e:00:53:01")]
    Mac { value: String },
    #[error("next_hop {value} cannot be used: {reason}")]
    NextHop {
        value: Ipv4Addr,
        reason: &'static str,
    },
    #[error("`routes` are reached through a router: set `next_hop` (the connected prefix of `address` needs no route)")]
    RoutesWithoutNextHop,
    #[error("client_ca `{name}` is not among the trust bundles of tenant `{tenant}` (`trust:` on the tenant)")]
    ClientCaNotTrusted { name: String, tenant: String },
    #[error("TLS 1.3 cannot be left out (`1.2` may be added for old clients)")]
    Tls13Required,
    #[error("facility {code} already has a peer on this attachment ({other_key}, line {other_line}): the certificate names the facility, so each facility has one peer per tls attachment")]
    TlsFacilityTwice {
        code: String,
        other_key: String,
        other_line: usize,
    },
    #[error("pool {pool} hands out {hosts} address(es) but the attachment has {peers} peers (each connected peer holds one)")]
    PoolTooSmall {
        pool: Ipv4Network,
        hosts: u64,
        peers: usize,
    },
    #[error("peer `{peer}` of a tls attachment needs its facility {code} in `facilities:` with `certificate: presented` (or a certificate file): clients log in with the facility's certificate")]
    TlsFacilityUnregistered { peer: String, code: String },
    #[error("cannot read {what} file {file}: {source}")]
    KeyFileRead {
        /// What the file holds: `key`, `certificate`, `pre-shared key`, ...
        what: &'static str,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "key file {file} does not hold one base64 32-byte key like `wg genkey` prints ({reason})"
    )]
    KeyFileMalformed { file: String, reason: &'static str },
    #[error("`{value}` is not a port rule: {reason} (write tcp/443, tcp/1000-2000, udp/53, tcp, udp, icmp or any)")]
    PortRule { value: String, reason: &'static str },
    #[error("unknown tenant `{0}`")]
    UnknownTenant(String),
    #[error("unknown service `{0}`")]
    UnknownService(String),
    #[error("no peer has facility {code}{}", scope_suffix(.scope))]
    UnknownFacility { code: String, scope: Option<String> },
    #[error(
        "a policy to a tenant needs `allow` (a list of port rules such as tcp/443, icmp, any)"
    )]
    TenantPolicyWithoutAllow,
    #[error("`to` must name either `tenant` or `service`, not both")]
    DestinationBoth,
    #[error("`to` must name a `tenant` or a `service`")]
    DestinationNeither,
    #[error("`prefixes` narrows a `tenant` destination and cannot be combined with `service`")]
    PrefixesWithService,
    #[error("{rule} is not among the ports of service {services} ({ports})")]
    NotServicePort {
        rule: String,
        services: String,
        ports: String,
    },
    #[error("`{value}` is not one of {expected}")]
    Choice {
        value: String,
        expected: &'static str,
    },
    #[error("ike_port and nat_t_port are both {port}: IKE starts on ike_port and moves to nat_t_port, so they must differ")]
    SamePorts { port: u64 },
    #[error("`{value}` is not an IKE identity: {reason}")]
    Identity { value: String, reason: String },
    #[error(
        "`{value}` is {kind}; ixgw supports FQDN, ASN.1 DN, IPv4 address and key ID identities"
    )]
    UnsupportedIdentity { value: String, kind: &'static str },
    #[error("remote_id {value} is already used by {other_key} (line {other_line}): each peer of an attachment needs an identity of its own")]
    DuplicateRemoteId {
        value: String,
        other_key: String,
        other_line: usize,
    },
    #[error("`auth: {auth}` needs `{key}`")]
    AuthNeeds {
        auth: &'static str,
        key: &'static str,
    },
    #[error("`{key}` does not go with `auth: {auth}`")]
    NotForAuth {
        key: &'static str,
        auth: &'static str,
    },
    #[error("peer `{peer}` authenticates with a certificate, so the gateway needs one too: set `certificate_file` and `private_key_file` on the attachment")]
    NoGatewayCredentials { peer: String },
    #[error("`{given}` is set without `{missing}`: the gateway's certificate and its private key go together")]
    CredentialPair {
        given: &'static str,
        missing: &'static str,
    },
    #[error("pre-shared key file {file} is not usable ({reason})")]
    PskFile { file: String, reason: &'static str },
    #[error("the pre-shared key in {file} has {len} bytes; ixgw requires at least {min}: a short key can be guessed offline from one recorded IKE_AUTH exchange")]
    PskTooShort {
        file: String,
        len: usize,
        min: usize,
    },
    #[error("certificate file {file}: {reason}")]
    CertificateFile { file: String, reason: String },
    #[error("private key file {file}: {reason}")]
    PrivateKeyFile { file: String, reason: String },
    #[error("CA file {file}: {reason}")]
    CaFile { file: String, reason: String },
    #[error("an agreement is between two parties: its {side} must name exactly one tenant (or, for a provider, one service)")]
    AgreementParty { side: &'static str },
    #[error("the consumer and the provider are both tenant `{0}`: an agreement joins two tenants (within a tenant, traffic does not cross the IX)")]
    AgreementSameTenant(String),
    #[error("agreement `{0}` has the name of a policy: flow records name what admitted them, so names must differ")]
    AgreementNamedLikePolicy(String),
    #[error("`{value}` is not a time: {reason}")]
    Time { value: String, reason: String },
    #[error("valid_until is not after valid_from: the window is empty")]
    EmptyWindow,
    #[error("CRL file {file}: {reason}")]
    CrlFile { file: String, reason: String },
    #[error("unknown trust bundle `{0}` (not a name under `trust:`)")]
    UnknownTrust(String),
    #[error("facility {code} is registered in tenant `{tenant}`, but peer `{peer}` of tenant `{peer_tenant}` carries it")]
    FacilityTenant {
        code: String,
        tenant: String,
        peer: String,
        peer_tenant: String,
    },
    #[error("`presented` takes the certificate the facility's peers authenticate with, but peer `{peer}` ({kind}) presents none: give the certificate file")]
    NothingPresented { peer: String, kind: &'static str },
    #[error("tenant `{tenant}` trusts no CA (`trust:` on the tenant), so its facilities' certificates cannot be checked")]
    NoTrust { tenant: String },
    #[error("peer `{peer}` has facility {code}, which is not in `facilities:`: once the file has a facility registry, every peer's facility must be in it")]
    FacilityNotRegistered { peer: String, code: String },
    #[error(
        "`{value}` is not an IPv4 address with an optional port (192.0.2.7 or 192.0.2.7:4500)"
    )]
    Endpoint { value: String },
    #[error("peer `{peer}` has `start: initiate` but no `endpoint` to send IKE_SA_INIT to")]
    InitiateWithoutEndpoint { peer: String },
    #[error("dpd_timeout {timeout}s{} must be longer than dpd_interval {interval}s", if *.timeout_default { " (the default)" } else { "" })]
    DpdTimeout {
        timeout: u64,
        timeout_default: bool,
        interval: u64,
    },
    #[error("`{value}` is not a byte count (write 500M, 10G or a number of bytes; K, M and G are powers of 1024)")]
    Bytes { value: String },
    #[error("`{value}` in proposal `{proposal}` is refused as weak: {reason}")]
    WeakAlgorithm {
        value: String,
        proposal: String,
        reason: &'static str,
    },
    #[error(
        "`{value}` in proposal `{proposal}` is not supported by ixgw (supported: {})",
        SUPPORTED_TOKENS
    )]
    UnsupportedAlgorithm { value: String, proposal: String },
    #[error(
        "unknown algorithm `{value}` in proposal `{proposal}` (supported: {})",
        SUPPORTED_TOKENS
    )]
    UnknownAlgorithm { value: String, proposal: String },
    #[error("`{value}` in proposal `{proposal}`: {reason}")]
    AlgorithmNotFor {
        value: String,
        proposal: String,
        reason: &'static str,
    },
    #[error("proposal `{proposal}` mixes the AEAD cipher {aead} with the cipher {other}, which needs an integrity algorithm: split them into two proposals")]
    MixedAead {
        proposal: String,
        aead: &'static str,
        other: &'static str,
    },
    #[error("proposal `{proposal}` has the AEAD cipher {aead}, which protects integrity itself: remove {integ}")]
    AeadWithIntegrity {
        proposal: String,
        aead: &'static str,
        integ: &'static str,
    },
    #[error("the directory {dir} of audit file {file} does not exist (or is not a directory): create it, writable by the daemon's user")]
    AuditDirectory { file: String, dir: String },
    #[error("{file} is a directory: `file` names the audit file itself, e.g. {file}/audit.log")]
    AuditIsDirectory { file: String },
    #[error("`journald: off` and no `file`: the audit trail would go nowhere (remove `audit:` to record nothing)")]
    AuditNowhere,
    #[error("{dir} exists and is not a directory: `dir` names the directory usage records are written to")]
    UsageNotDirectory { dir: String },
    #[error("`{value}` does not divide an hour: write 1s..=1h with 3600 a multiple of it (1m, 5m, 15m, 1h, ...), so that records never straddle an hour, a day or a month")]
    UsageInterval { value: String },
    #[error("proposal `{proposal}` has no {what}")]
    ProposalMissing {
        proposal: String,
        what: &'static str,
    },
}

/// The algorithm tokens ixgw accepts in proposals.
const SUPPORTED_TOKENS: &str = "aes128gcm16, aes256gcm16, aes128, aes256, sha256, sha384, sha512, prfsha256, prfsha384, prfsha512, ecp256, ecp384, x25519, and in ESP proposals esn, noesn";

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn size_text(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(size) => format!("{size} bytes"),
        None => format!("more than {limit} bytes"),
    }
}

fn mib_text(limit: u64) -> String {
    const MIB: u64 = 1 << 20;
    if limit >= MIB && limit % MIB == 0 {
        format!(" ({} MiB)", limit / MIB)
    } else {
        String::new()
    }
}

fn other_value(value: &Ipv4Network, other: &Ipv4Network) -> String {
    if value == other {
        String::new()
    } else {
        format!(" = {other}")
    }
}

fn defaulted(default: bool) -> &'static str {
    if default {
        " (the default, ix.exchange_space)"
    } else {
        ""
    }
}

fn kernel_route_hint(any_default: bool) -> &'static str {
    if any_default {
        "set `kernel_routes` on these plain attachments to the prefixes each device should receive (`[]` leaves kernel routing to the operator)"
    } else {
        "the kernel routes a prefix into one device only"
    }
}

fn scope_suffix(scope: &Option<String>) -> String {
    match scope {
        Some(s) => format!(" in {s}"),
        None => String::new(),
    }
}
