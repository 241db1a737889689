//! `plain` attachments: a TUN device routed by the host, its routes into the tenant's
//! internal space and the kernel routes that bring replies back.

use super::*;

impl Validator {
    pub(super) fn plain(
        &self,
        ak: &str,
        a: &raw::PlainAttachment,
        tenant: &Tenant,
        ix: &Ix,
        ports: &mut Ports,
        routes: &mut Vec<Keyed>,
    ) -> Result<PlainAttachment, ConfigError> {
        const KIND: &str = "plain";
        let tk = format!("{ak}.tun");
        let tun = self.required(ak, "tun", &a.tun, KIND)?;
        let valid_name = (1..=TUN_NAME_MAX).contains(&tun.len())
            && tun
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err(self.err(&tk, Problem::TunName { value: tun.clone() }));
        }
        if let Some(other) = ports.tuns.get(tun).or_else(|| ports.is_link(tun)) {
            return Err(self.err(
                &tk,
                Problem::SameTun {
                    value: tun.clone(),
                    other_key: other.clone(),
                    other_line: self.lines.line(other),
                },
            ));
        }
        ports.tuns.insert(tun.clone(), tk);
        let mtu = self.mtu(ak, a.mtu, KIND, PLAIN_MTU, PLAIN_DEFAULT_MTU)?;
        let raw_routes = self.required(ak, "routes", &a.routes, KIND)?;
        let plain_routes =
            self.internal_prefixes(&format!("{ak}.routes"), raw_routes, tenant, routes)?;
        let kernel_routes = match &a.kernel_routes {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| self.prefix(&format!("{ak}.kernel_routes[{i}]"), s))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![ix.exchange_space],
        };
        Ok(PlainAttachment {
            tun: tun.clone(),
            mtu,
            routes: plain_routes,
            kernel_routes,
            directed_broadcast: a.directed_broadcast.unwrap_or(false),
        })
    }
}
