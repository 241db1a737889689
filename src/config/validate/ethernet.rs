//! `ethernet` attachments: a carrier's port (or one VLAN of it) owned by ixgw, the gateway's
//! address and MAC on the link, the next hop and the routes into the tenant's internal space.

use super::*;

impl Validator {
    pub(super) fn ethernet(
        &self,
        ak: &str,
        name: &str,
        a: &raw::EthernetAttachment,
        tenant: &Tenant,
        ports: &mut Ports,
        routes: &mut Vec<Keyed>,
    ) -> Result<EthernetAttachment, ConfigError> {
        const KIND: &str = "ethernet";
        let ik = format!("{ak}.interface");
        let interface = self.required(ak, "interface", &a.interface, KIND)?;
        if !interface_name(interface) {
            return Err(self.err(
                &ik,
                Problem::InterfaceName {
                    value: interface.clone(),
                },
            ));
        }
        let vk = format!("{ak}.vlan");
        let vlan = match a.vlan {
            Some(v) => {
                self.in_range(&vk, v, 1..=4094)?;
                Some(v as u16)
            }
            None => None,
        };
        ports.claim(
            self,
            interface,
            vlan,
            if vlan.is_some() { &vk } else { &ik },
        )?;

        let mtu = self.mtu(ak, a.mtu, KIND, PLAIN_MTU, PLAIN_DEFAULT_MTU)?;
        let adk = format!("{ak}.address");
        let address =
            self.prefix_with_host(&adk, self.required(ak, "address", &a.address, KIND)?)?;
        let connected = Ipv4Network::new(address.network(), address.prefix()).unwrap_or(address);
        let reason = if address.prefix() > 31 {
            Some("the prefix length must leave room for a neighbour (at most /31)")
        } else if address.prefix() <= 30
            && (address.ip() == connected.network() || address.ip() == connected.broadcast())
        {
            Some("it is the network or broadcast address of its prefix")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(self.err(
                &adk,
                Problem::LinkAddress {
                    value: address.to_string(),
                    reason,
                },
            ));
        }
        let inside = tenant
            .networks
            .iter()
            .any(|n| connected.is_subnet_of(n.internal));
        if !inside {
            return Err(self.err(
                &adk,
                Problem::NotInternal {
                    value: connected.to_string(),
                    tenant: tenant.name.clone(),
                    internal: super::policies::internal_list(tenant),
                },
            ));
        }
        routes.push((connected, adk.clone()));

        let mac = match &a.mac {
            Some(s) => parse_mac(s)
                .ok_or_else(|| self.err(&format!("{ak}.mac"), Problem::Mac { value: s.clone() }))?,
            None => crate::config::derived_mac(name),
        };

        let nk = format!("{ak}.next_hop");
        let next_hop = match &a.next_hop {
            Some(s) => {
                let ip: Ipv4Addr = s
                    .trim()
                    .parse()
                    .map_err(|_| self.err(&nk, Problem::Ipv4Addr { value: s.clone() }))?;
                let reason = if !connected.contains(ip) {
                    Some("it is not inside the link's prefix (`address`)")
                } else if ip == address.ip() {
                    Some("it is the gateway's own address")
                } else if connected.prefix() <= 30
                    && (ip == connected.network() || ip == connected.broadcast())
                {
                    Some("it is the network or broadcast address of the link's prefix")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(self.err(&nk, Problem::NextHop { value: ip, reason }));
                }
                Some(ip)
            }
            None => None,
        };
        let link_routes = match &a.routes {
            Some(list) => {
                if next_hop.is_none() {
                    return Err(self.err(&format!("{ak}.routes"), Problem::RoutesWithoutNextHop));
                }
                self.internal_prefixes(&format!("{ak}.routes"), list, tenant, routes)?
            }
            None => Vec::new(),
        };
        Ok(EthernetAttachment {
            interface: interface.clone(),
            vlan,
            address,
            mac,
            next_hop,
            routes: link_routes,
            mtu,
            directed_broadcast: a.directed_broadcast.unwrap_or(false),
        })
    }
}

/// The ports and TUN devices the file uses: a TUN device's name is no Ethernet port, and each
/// (port, VLAN) belongs to one attachment.
#[derive(Default)]
pub(super) struct Ports {
    /// TUN device name → key path.
    pub tuns: HashMap<String, String>,
    /// (interface, VLAN) → key path.
    links: HashMap<(String, Option<u16>), String>,
}

impl Ports {
    fn claim(
        &mut self,
        v: &Validator,
        interface: &str,
        vlan: Option<u16>,
        key: &str,
    ) -> Result<(), ConfigError> {
        let other = self
            .tuns
            .get(interface)
            .or_else(|| self.links.get(&(interface.to_string(), vlan)));
        if let Some(other) = other {
            let value = match vlan {
                Some(id) => format!("{interface} VLAN {id}"),
                None => format!("{interface} (untagged)"),
            };
            return Err(v.err(
                key,
                Problem::SamePort {
                    value,
                    other_key: other.clone(),
                    other_line: v.lines.line(other),
                },
            ));
        }
        self.links
            .insert((interface.to_string(), vlan), key.to_string());
        Ok(())
    }

    /// Whether an `ethernet` attachment uses `name` as its port.
    pub fn is_link(&self, name: &str) -> Option<&String> {
        self.links
            .iter()
            .find(|((i, _), _)| i == name)
            .map(|(_, k)| k)
    }
}

/// An interface name the kernel accepts: 1 to 15 characters of [A-Za-z0-9_.-].
pub(super) fn interface_name(s: &str) -> bool {
    (1..=TUN_NAME_MAX).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `02:00:5e:00:53:01`: six hex bytes separated by colons, unicast and not all zero.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    let unicast = mac[0] & 1 == 0 && mac != [0; 6];
    (parts.next().is_none() && unicast).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_grammar() {
        assert_eq!(
            parse_mac("02:00:5e:00:53:01"),
            Some([2, 0, 0x5e, 0, 0x53, 1])
        );
        assert_eq!(
            parse_mac("02:00:5E:00:53:0A"),
            Some([2, 0, 0x5e, 0, 0x53, 10])
        );
        for bad in [
            "",
            "02:00:5e:00:53",
            "02:00:5e:00:53:01:02",
            "2:00:5e:00:53:01",
            "02-00-5e-00-53-01",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "00:00:00:00:00:00",
            "0g:00:5e:00:53:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn derived_macs_are_local_unicast_and_stable() {
        let a = crate::config::derived_mac("carrier-a");
        assert_eq!(a[0], 0x02);
        assert_eq!(a, crate::config::derived_mac("carrier-a"));
        assert_ne!(a, crate::config::derived_mac("carrier-b"));
    }
}
