//! Raw serde structures, one per YAML mapping, as written by the operator.
//!
//! Every mapping denies unknown keys. Values whose grammar is ours (prefixes, addresses,
//! durations, port rules, facility codes) stay strings here so that validation can report
//! them with their key path and line; the deserializer only checks the document's shape.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Root {
    pub ix: Ix,
    pub metrics: Option<Metrics>,
    pub dataplane: Option<Dataplane>,
    pub tenants: Vec<Tenant>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub agreements: Vec<Agreement>,
    #[serde(default)]
    pub trust: Vec<Trust>,
    pub facilities: Option<Vec<Facility>>,
    pub audit: Option<Audit>,
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Usage {
    pub dir: Option<String>,
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Audit {
    pub file: Option<String>,
    pub journald: Option<String>,
    pub queue: Option<u64>,
    pub flows: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Agreement {
    pub name: String,
    pub consumer: From,
    pub provider: To,
    pub allow: Option<Vec<String>>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub approved: Option<Approvals>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Approvals {
    pub provider: Option<String>,
    pub consumer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Trust {
    pub name: String,
    pub ca_file: String,
    #[serde(default)]
    pub crl_files: Vec<String>,
    pub crl_expired: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Facility {
    pub code: String,
    pub name: String,
    pub tenant: String,
    pub certificate: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ix {
    pub name: String,
    pub exchange_space: String,
    pub public_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Metrics {
    pub listen: Option<String>,
    pub admin_socket: Option<String>,
    pub peer_series: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dataplane {
    pub workers: Option<u64>,
    pub flow_table_size: Option<u64>,
    pub tcp_idle_timeout: Option<String>,
    pub udp_idle_timeout: Option<String>,
    pub icmp_idle_timeout: Option<String>,
    pub max_flows_per_tenant: Option<yaml_serde::Value>,
    pub max_flows_per_facility: Option<yaml_serde::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Tenant {
    pub name: String,
    #[serde(default)]
    pub trust: Vec<String>,
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Read as values first: an attachment's `type` decides which struct it is read into
    /// ([`Attachment`]).
    #[serde(default)]
    pub attachments: Vec<yaml_serde::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Network {
    pub internal: String,
    pub exchange: String,
}

/// One attachment, by its `type`: each type is a struct of its own that denies the keys of
/// the others. (A serde-tagged enum would buffer the mapping and lose the line of errors
/// inside it; validation reads the `type` from the value and then the struct, keeping the key
/// path of every error.)
#[derive(Debug)]
pub(super) enum Attachment {
    WireGuard(WireGuardAttachment),
    Plain(PlainAttachment),
    Ipsec(IpsecAttachment),
    Ethernet(EthernetAttachment),
    Tls(TlsAttachment),
}

impl Attachment {
    pub fn name(&self) -> &str {
        match self {
            Attachment::WireGuard(a) => &a.name,
            Attachment::Plain(a) => &a.name,
            Attachment::Ipsec(a) => &a.name,
            Attachment::Ethernet(a) => &a.name,
            Attachment::Tls(a) => &a.name,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WireGuardAttachment {
    pub name: String,
    #[serde(rename = "type")]
    pub _type: IgnoredAny,
    pub mtu: Option<u64>,
    pub listen: Option<String>,
    pub private_key_file: Option<String>,
    #[serde(default)]
    pub peers: Vec<Peer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlainAttachment {
    pub name: String,
    #[serde(rename = "type")]
    pub _type: IgnoredAny,
    pub mtu: Option<u64>,
    pub tun: Option<String>,
    pub routes: Option<Vec<String>>,
    pub kernel_routes: Option<Vec<String>>,
    pub directed_broadcast: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EthernetAttachment {
    pub name: String,
    #[serde(rename = "type")]
    pub _type: IgnoredAny,
    pub mtu: Option<u64>,
    pub interface: Option<String>,
    pub vlan: Option<u64>,
    pub address: Option<String>,
    pub mac: Option<String>,
    pub next_hop: Option<String>,
    pub routes: Option<Vec<String>>,
    pub directed_broadcast: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsAttachment {
    pub name: String,
    #[serde(rename = "type")]
    pub _type: IgnoredAny,
    pub mtu: Option<u64>,
    pub listen: Option<String>,
    pub certificate_file: Option<String>,
    pub private_key_file: Option<String>,
    pub client_ca: Option<Vec<String>>,
    pub tls_versions: Option<Vec<String>>,
    pub pool: Option<String>,
    pub dns: Option<Vec<String>>,
    pub split_routes: Option<Vec<String>>,
    pub dpd: Option<String>,
    pub keepalive: Option<String>,
    pub idle_timeout: Option<String>,
    pub session_timeout: Option<String>,
    #[serde(default)]
    pub peers: Vec<TlsPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsPeer {
    pub name: String,
    pub facility: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Peer {
    pub name: String,
    pub facility: Option<String>,
    pub public_key: String,
    pub preshared_key_file: Option<String>,
    pub allowed_ips: Vec<String>,
    pub address: Option<String>,
    pub endpoint: Option<String>,
    pub persistent_keepalive: Option<String>,
    pub directed_broadcast: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IpsecAttachment {
    pub name: String,
    #[serde(rename = "type")]
    pub _type: IgnoredAny,
    pub mtu: Option<u64>,
    pub listen: Option<String>,
    pub ike_port: Option<u64>,
    pub nat_t_port: Option<u64>,
    pub raw_esp: Option<bool>,
    pub local_id: Option<String>,
    pub certificate_file: Option<String>,
    pub private_key_file: Option<String>,
    #[serde(default)]
    pub peers: Vec<IpsecPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IpsecPeer {
    pub name: String,
    pub facility: Option<String>,
    pub remote_id: String,
    pub auth: String,
    pub psk_file: Option<String>,
    pub ca_file: Option<String>,
    pub remote_ts: Vec<String>,
    pub local_ts: Option<Vec<String>>,
    pub endpoint: Option<String>,
    pub start: Option<String>,
    pub proposals: Option<Vec<String>>,
    pub esp_proposals: Option<Vec<String>>,
    pub ike_rekey_time: Option<String>,
    pub child_rekey_time: Option<String>,
    pub child_rekey_bytes: Option<String>,
    pub dpd_interval: Option<String>,
    pub dpd_timeout: Option<String>,
    pub dpd_action: Option<String>,
    pub directed_broadcast: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Service {
    pub name: String,
    pub tenant: String,
    pub address: String,
    pub ports: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Policy {
    pub name: String,
    pub from: From,
    pub to: To,
    pub allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct From {
    pub tenant: Option<OneOrMany>,
    pub facility: Option<OneOrMany>,
    pub prefixes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct To {
    pub tenant: Option<OneOrMany>,
    pub service: Option<OneOrMany>,
    pub prefixes: Option<Vec<String>>,
}

/// A scalar or a list of scalars (`tenant: a` or `tenant: [a, b]`). Numbers are kept in
/// their decimal spelling so that unquoted facility codes arrive as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OneOrMany {
    pub items: Vec<String>,
    /// Written as a list, so item key paths carry an index.
    pub list: bool,
}

impl OneOrMany {
    /// The key path of item `i`, given the key path of the whole value.
    pub fn item_key(&self, key: &str, i: usize) -> String {
        if self.list {
            format!("{key}[{i}]")
        } else {
            key.to_string()
        }
    }
}

struct ScalarText;

impl<'de> Visitor<'de> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

struct Item(String);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText).map(Item)
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                ScalarText.visit_str(v).map(one)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                ScalarText.visit_u64(v).map(one)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                ScalarText.visit_i64(v).map(one)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(Item(s)) = seq.next_element()? {
                    items.push(s);
                }
                Ok(OneOrMany { items, list: true })
            }
        }
        d.deserialize_any(V)
    }
}

fn one(s: String) -> OneOrMany {
    OneOrMany {
        items: vec![s],
        list: false,
    }
}
