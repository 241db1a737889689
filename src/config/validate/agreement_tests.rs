//! `agreements:`: what loads, what only warns (a missing approval), and every rejection with
//! its key path and line.

use super::tests::{edit, load, rejects, BASE};
use crate::config::Destination;

const AGREEMENT: &str = r#"agreements:
  - name: alpha-uses-beta
    consumer: { tenant: alpha, facility: "4212345674" }
    provider: { tenant: beta, prefixes: [10.0.0.0/24] }
    allow: [tcp/443, icmp]
    valid_from: "2026-04-01T00:00:00+09:00"
    valid_until: "2027-04-01T00:00:00+09:00"
    approved:
      provider: "beta operations, 2026-03-20, ref B-42"
      consumer: "alpha operations, 2026-03-22, ref A-7"
  - name: alpha-files-claims
    consumer: { tenant: alpha }
    provider: { service: portal }
    approved: { provider: beta, consumer: alpha }
"#;

fn with(agreements: &str) -> String {
    format!("{BASE}{agreements}")
}

#[test]
fn agreements_load() {
    let c = load(&with(AGREEMENT)).expect("validates");
    assert_eq!(c.agreements.len(), 2);
    let a = &c.agreements[0];
    assert_eq!(
        (a.consumer.as_str(), a.provider.as_str()),
        ("alpha", "beta")
    );
    assert_eq!(a.valid_from, Some(1_774_969_200), "2026-03-31T15:00:00Z");
    assert_eq!(a.valid_until, Some(1_806_505_200));
    assert!(a.approved());
    assert_eq!(a.grant.from.facilities.len(), 1);
    assert!(matches!(&a.grant.to, Destination::Tenants { prefixes, .. } if prefixes.len() == 1));
    let b = &c.agreements[1];
    assert_eq!(b.provider, "beta", "a service's tenant provides it");
    assert!(b.grant.allow.is_empty(), "the service's own ports");
    // Grants: the policies first, then the approved agreements.
    let names: Vec<&str> = c.grants().map(|g| g.policy.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "alpha-to-portal",
            "alpha-to-beta",
            "alpha-uses-beta",
            "alpha-files-claims"
        ]
    );
    assert!(!c.warnings.iter().any(|w| w.key.starts_with("agreements")));
}

#[test]
fn a_missing_approval_is_a_warning_and_grants_nothing() {
    let text = with(&edit(
        AGREEMENT,
        "      consumer: \"alpha operations, 2026-03-22, ref A-7\"\n",
        "      consumer: \"  \"\n",
    ));
    let c = load(&text).expect("still valid");
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter().any(|w| w.contains("agreements[0].name: warning: agreement `alpha-uses-beta` lacks the consumer's (approved.consumer) approval: it grants nothing")),
        "{w:?}"
    );
    assert!(!c.agreements[0].approved());
    assert_eq!(c.grants().count(), 3);
    let none = with(&edit(
        AGREEMENT,
        "    approved: { provider: beta, consumer: alpha }\n",
        "",
    ));
    let c = load(&none).unwrap();
    assert!(c.warnings.iter().any(|w| w.message.contains(
        "lacks the provider's (approved.provider) and the consumer's (approved.consumer) approval"
    )));
}

#[test]
fn agreement_mistakes_are_named() {
    let text = with(&edit(
        AGREEMENT,
        "consumer: { tenant: alpha }",
        "consumer: { tenant: [alpha, beta] }",
    ));
    rejects(
        &text,
        "agreements[1].consumer.tenant",
        "[alpha, beta]",
        &["its consumer must name exactly one tenant"],
    );
    let text = with(&edit(
        AGREEMENT,
        "consumer: { tenant: alpha }",
        "consumer: { facility: \"4212345674\" }",
    ));
    rejects(
        &text,
        "agreements[1].consumer.tenant",
        "consumer: { facility: \"4212345674\" }",
        &["exactly one tenant"],
    );
    let text = with(&edit(
        AGREEMENT,
        "consumer: { tenant: alpha }",
        "consumer: { tenant: beta }",
    ));
    rejects(
        &text,
        "agreements[1].consumer",
        "consumer: { tenant: beta }",
        &["both tenant `beta`"],
    );
    let text = with(&edit(
        AGREEMENT,
        "provider: { tenant: beta, prefixes: [10.0.0.0/24] }",
        "provider: { tenant: beta }\n    # no allow",
    ));
    let text = edit(&text, "    allow: [tcp/443, icmp]\n", "");
    rejects(
        &text,
        "agreements[0].allow",
        "name: alpha-uses-beta",
        &["needs `allow`"],
    );
    let text = with(&edit(
        AGREEMENT,
        "valid_until: \"2027-04-01T00:00:00+09:00\"",
        "valid_until: \"2026-04-01T00:00:00+09:00\"",
    ));
    rejects(
        &text,
        "agreements[0].valid_until",
        "valid_until:",
        &["valid_until is not after valid_from"],
    );
    let text = with(&edit(
        AGREEMENT,
        "valid_from: \"2026-04-01T00:00:00+09:00\"",
        "valid_from: \"April 2026\"",
    ));
    rejects(
        &text,
        "agreements[0].valid_from",
        "April 2026",
        &["`April 2026` is not a time", "RFC 3339"],
    );
    let text = with(&edit(
        AGREEMENT,
        "name: alpha-files-claims",
        "name: alpha-uses-beta # dup",
    ));
    rejects(
        &text,
        "agreements[1].name",
        "# dup",
        &["duplicate agreement name"],
    );
    let text = with(&edit(
        AGREEMENT,
        "name: alpha-files-claims",
        "name: alpha-to-portal # dup",
    ));
    rejects(
        &text,
        "agreements[1].name",
        "# dup",
        &["has the name of a policy"],
    );
    let text = with(&edit(
        AGREEMENT,
        "consumer: { tenant: alpha, facility: \"4212345674\" }",
        "consumer: { tenant: alpha, facility: \"3211234566\" }",
    ));
    rejects(
        &text,
        "agreements[0].consumer.facility",
        "3211234566",
        &["no peer has facility 3211234566"],
    );
}
