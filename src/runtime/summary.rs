//! What a reload changed, for the log line an operator reads: attachments and peers added,
//! removed, changed and kept, by name.

use crate::dataplane::{AttachmentPlanKind, PeerPlanKind, Plan};

/// Names added, removed and changed, and how many were kept as they were.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub kept: usize,
}

impl Changes {
    fn of<'a, T>(
        old: &'a [T],
        new: &'a [T],
        name: impl Fn(&T) -> &str,
        same: impl Fn(&T, &T) -> bool,
    ) -> Changes {
        let mut c = Changes::default();
        for n in new {
            match old.iter().find(|o| name(o) == name(n)) {
                None => c.added.push(name(n).to_string()),
                Some(o) if !same(o, n) => c.changed.push(name(n).to_string()),
                Some(_) => c.kept += 1,
            }
        }
        for o in old {
            if !new.iter().any(|n| name(n) == name(o)) {
                c.removed.push(name(o).to_string());
            }
        }
        c
    }
}

impl std::fmt::Display for Changes {
    /// `+1 -0 ~2 =40 (added: a; changed: b, c)`, at most ten names a list.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "+{} -{} ~{} ={}",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.kept
        )?;
        let lists: Vec<String> = [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(what, v)| {
            let more = if v.len() > 10 {
                format!(", … {} more", v.len() - 10)
            } else {
                String::new()
            };
            let names: Vec<&str> = v.iter().take(10).map(String::as_str).collect();
            format!("{what}: {}{more}", names.join(", "))
        })
        .collect();
        if !lists.is_empty() {
            write!(f, " ({})", lists.join("; "))?;
        }
        Ok(())
    }
}

/// The attachments a reload from `old` to `new` added, removed, changed and kept.
pub(crate) fn attachments(old: &Plan, new: &Plan) -> Changes {
    let tenant =
        |p: &Plan, a: &crate::dataplane::AttachmentPlan| p.tenants[a.tenant.index()].name.clone();
    Changes::of(
        &old.attachments,
        &new.attachments,
        |a| &a.name,
        |o, n| {
            let kind = match (&o.kind, &n.kind) {
                (
                    AttachmentPlanKind::WireGuard { private_key: a, .. },
                    AttachmentPlanKind::WireGuard { private_key: b, .. },
                ) => a == b,
                (AttachmentPlanKind::Plain, AttachmentPlanKind::Plain) => true,
                (AttachmentPlanKind::Ethernet(a), AttachmentPlanKind::Ethernet(b)) => a == b,
                (AttachmentPlanKind::Tls(a), AttachmentPlanKind::Tls(b)) => a.config == b.config,
                (
                    AttachmentPlanKind::Ipsec {
                        local_id: a,
                        credentials: ca,
                        ..
                    },
                    AttachmentPlanKind::Ipsec {
                        local_id: b,
                        credentials: cb,
                        ..
                    },
                ) => a == b && ca == cb,
                _ => false,
            };
            kind && o.mtu == n.mtu
                && o.io == n.io
                && o.directed_broadcast == n.directed_broadcast
                && tenant(old, o) == tenant(new, n)
        },
    )
}

/// The peers a reload from `old` to `new` added, removed, changed and kept.
pub(crate) fn peers(old: &Plan, new: &Plan) -> Changes {
    let home = |p: &Plan, peer: &crate::dataplane::PeerPlan| {
        (
            p.attachments[peer.attachment.index()].name.clone(),
            p.tenants[peer.tenant.index()].name.clone(),
        )
    };
    Changes::of(
        &old.peers,
        &new.peers,
        |p| &p.name,
        |o, n| {
            let kind = match (&o.kind, &n.kind) {
                (PeerPlanKind::WireGuard(a), PeerPlanKind::WireGuard(b)) => {
                    a.public_key == b.public_key
                        && a.preshared_key == b.preshared_key
                        && a.persistent_keepalive == b.persistent_keepalive
                        && a.endpoint == b.endpoint
                }
                (PeerPlanKind::Ipsec(a), PeerPlanKind::Ipsec(b)) => {
                    a.config == b.config && a.local_ts == b.local_ts
                }
                _ => false,
            };
            kind && o.facility == n.facility
                && o.directed_broadcast == n.directed_broadcast
                && home(old, o) == home(new, n)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::fuzz::fuzz_config;

    #[test]
    fn a_reload_is_summed_up_by_name() {
        let before = fuzz_config();
        let old = Plan::compile(&before, 1);
        assert_eq!(
            peers(&old, &old),
            Changes {
                kept: old.peers.len(),
                ..Changes::default()
            }
        );
        let mut after = before.clone();
        // Drop the last tenant's attachments and rename the WireGuard peer.
        let mut renamed = None;
        for t in &mut after.tenants {
            for a in &mut t.attachments {
                if let crate::config::AttachmentKind::WireGuard(wg) = &mut a.kind {
                    if let Some(p) = wg.peers.first_mut() {
                        renamed = Some(p.name.clone());
                        p.name = "renamed".into();
                    }
                }
            }
        }
        let new = Plan::compile(&after, 2);
        let c = peers(&old, &new);
        assert_eq!(c.added, ["renamed"]);
        assert_eq!(c.removed, [renamed.unwrap()]);
        let a = attachments(&old, &new);
        assert_eq!(a.kept, old.attachments.len());
        let text = c.to_string();
        assert!(text.starts_with("+1 -1 ~0 ="), "{text}");
        assert!(text.contains("added: renamed; removed: "), "{text}");
        // A changed keepalive is a changed peer.
        let mut changed = before.clone();
        for t in &mut changed.tenants {
            for a in &mut t.attachments {
                if let crate::config::AttachmentKind::WireGuard(wg) = &mut a.kind {
                    for p in &mut wg.peers {
                        p.persistent_keepalive = Some(17);
                    }
                }
            }
        }
        let c = peers(&old, &Plan::compile(&changed, 3));
        assert_eq!(c.changed.len(), 1, "{c:?}");
        assert!(c.to_string().contains("changed: "), "{c}");
    }
}
