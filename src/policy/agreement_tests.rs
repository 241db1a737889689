//! Agreements in the policy engine: approvals, validity windows, and no transit.

use std::collections::HashSet;

use proptest::prelude::*;

use super::tests::config;
use super::*;
use crate::config::{Agreement, Policy, PortRule, Source};

const T0: u64 = 1_800_000_000;

fn any_port() -> Vec<PortRule> {
    vec![PortRule {
        protocol: Protocol::Any,
        ports: None,
    }]
}

fn agreement(name: &str, consumer: &str, provider: &str) -> Agreement {
    Agreement {
        name: name.into(),
        consumer: consumer.into(),
        provider: provider.into(),
        grant: Policy {
            name: name.into(),
            from: Source {
                tenants: vec![consumer.into()],
                ..Source::default()
            },
            to: Destination::Tenants {
                tenants: vec![provider.into()],
                prefixes: vec![],
            },
            allow: any_port(),
        },
        valid_from: None,
        valid_until: None,
        approved_by_provider: Some(format!("{provider} ops")),
        approved_by_consumer: Some(format!("{consumer} ops")),
    }
}

fn query(src: usize, dst: usize) -> Query {
    Query {
        src_tenant: TenantId(src as u16),
        src_facility: None,
        src: InternalV4("10.0.0.1".parse().unwrap()),
        dst_tenant: TenantId(dst as u16),
        dst: InternalV4("10.0.0.2".parse().unwrap()),
        protocol: 6,
        dst_port: 443,
    }
}

fn set(agreements: Vec<Agreement>) -> PolicySet {
    let mut c = config(&["a", "b", "c"], vec![], vec![]);
    c.agreements = agreements;
    PolicySet::compile(&c)
}

#[test]
fn an_agreement_grants_its_consumer_only() {
    let p = set(vec![agreement("a-uses-b", "a", "b")]);
    let now = p.activity_at(T0);
    assert_eq!(p.evaluate_at(&query(0, 1), &now), Some(RuleId(0)));
    assert_eq!(
        p.evaluate_at(&query(1, 0), &now),
        None,
        "the provider opens nothing"
    );
    assert_eq!(p.evaluate_at(&query(0, 2), &now), None);
    let info = p.rule(RuleId(0)).unwrap();
    assert_eq!(info.name, "a-uses-b");
    assert!(info.agreement);
}

#[test]
fn one_sided_approval_grants_nothing() {
    let mut provider_only = agreement("provider-only", "a", "b");
    provider_only.approved_by_consumer = None;
    let mut consumer_only = agreement("consumer-only", "a", "c");
    consumer_only.approved_by_provider = None;
    assert!(!provider_only.approved() && !consumer_only.approved());
    let p = set(vec![provider_only, consumer_only]);
    let now = p.activity_at(T0);
    assert_eq!(p.evaluate_at(&query(0, 1), &now), None);
    assert_eq!(p.evaluate_at(&query(0, 2), &now), None);
    assert_eq!(p.rule(RuleId(0)), None, "no rule was compiled");
}

#[test]
fn windows_open_and_close() {
    let mut w = agreement("window", "a", "b");
    w.valid_from = Some(T0 + 10);
    w.valid_until = Some(T0 + 20);
    let p = set(vec![w, agreement("always", "a", "c")]);
    let before = p.activity_at(T0);
    assert_eq!(before.next_change, Some(T0 + 10));
    assert_eq!(p.evaluate_at(&query(0, 1), &before), None);
    assert_eq!(p.evaluate_at(&query(0, 2), &before), Some(RuleId(1)));
    let inside = p.activity_at(T0 + 10);
    assert_eq!(inside.next_change, Some(T0 + 20));
    assert_eq!(p.evaluate_at(&query(0, 1), &inside), Some(RuleId(0)));
    let after = p.activity_at(T0 + 20);
    assert_eq!(after.next_change, None);
    assert_eq!(
        p.evaluate_at(&query(0, 1), &after),
        None,
        "until is exclusive"
    );
    // Before the wall clock is known, a windowed agreement grants nothing.
    let unknown = p.activity_unknown();
    assert_eq!(p.evaluate_at(&query(0, 1), &unknown), None);
    assert_eq!(p.evaluate_at(&query(0, 2), &unknown), Some(RuleId(1)));
    assert_eq!(
        unknown.next_change,
        Some(0),
        "judged at the first clock reading"
    );
    // Without windows, every rule is in force whatever the time.
    let p = set(vec![agreement("always", "a", "c")]);
    assert_eq!(p.activity_unknown(), Activity::default());
    assert_eq!(p.activity_at(0), Activity::default());
}

#[test]
fn policies_come_before_agreements_and_keep_working() {
    let mut c = config(&["a", "b", "c"], vec![], vec![]);
    c.policies.push(Policy {
        name: "operator".into(),
        from: Source {
            tenants: vec!["c".into()],
            ..Source::default()
        },
        to: Destination::Tenants {
            tenants: vec!["a".into()],
            prefixes: vec![],
        },
        allow: any_port(),
    });
    c.agreements.push(agreement("a-uses-b", "a", "b"));
    let p = PolicySet::compile(&c);
    let now = p.activity_at(T0);
    assert_eq!(p.evaluate_at(&query(2, 0), &now), Some(RuleId(0)));
    assert_eq!(p.evaluate_at(&query(0, 1), &now), Some(RuleId(1)));
    assert!(!p.rule(RuleId(0)).unwrap().agreement);
}

fn tenants() -> [&'static str; 4] {
    ["a", "b", "c", "d"]
}

proptest! {
    /// No transit: whatever agreements exist (approved or not, in force or not), a flow from
    /// tenant X to tenant Y is admitted only by an approved agreement in force between X as
    /// consumer and Y as provider, never by a chain through a third tenant.
    #[test]
    fn no_transit(
        pairs in prop::collection::vec((0usize..4, 0usize..4, any::<bool>(), any::<bool>(), 0u8..3), 0..10),
        src in 0usize..4,
        dst in 0usize..4,
        at in 0u64..30,
    ) {
        let names = tenants();
        let mut c = config(&names, vec![], vec![]);
        for (i, &(consumer, provider, ok_p, ok_c, window)) in pairs.iter().enumerate() {
            if consumer == provider {
                continue; // validation refuses it
            }
            let mut a = agreement(&format!("g{i}"), names[consumer], names[provider]);
            if !ok_p { a.approved_by_provider = None; }
            if !ok_c { a.approved_by_consumer = None; }
            match window {
                1 => { a.valid_from = Some(T0 + 10); a.valid_until = Some(T0 + 20); }
                2 => a.valid_until = Some(T0 + 5),
                _ => {}
            }
            c.agreements.push(a);
        }
        let p = PolicySet::compile(&c);
        let activity = p.activity_at(T0 + at);
        let direct: HashSet<(usize, usize)> = c
            .agreements
            .iter()
            .filter(|a| a.in_force_at(T0 + at))
            .map(|a| {
                let i = |n: &str| names.iter().position(|t| *t == n).unwrap();
                (i(&a.consumer), i(&a.provider))
            })
            .collect();
        let admitted = p.evaluate_at(&query(src, dst), &activity);
        prop_assert_eq!(admitted.is_some(), direct.contains(&(src, dst)));
        if let Some(rule) = admitted {
            let name = &p.rule(rule).unwrap().name;
            let a = c.agreements.iter().find(|a| &a.name == name).unwrap();
            prop_assert_eq!((a.consumer.as_str(), a.provider.as_str()), (names[src], names[dst]));
        }
    }
}
