//! `audit:`: what loads, the defaults, and every rejection with its key path and line.

use std::path::Path;

use super::tests::{config_path, load, rejects, BASE};
use crate::config::{Journald, AUDIT_DEFAULT_QUEUE};

fn with(audit: &str) -> String {
    format!("{BASE}{audit}")
}

#[test]
fn without_audit_nothing_is_recorded() {
    assert_eq!(load(BASE).unwrap().audit, None);
}

#[test]
fn an_audit_section_loads_with_its_defaults() {
    let c = load(&with("audit:\n  file: audit.log\n")).expect("validates");
    let a = c.audit.expect("an audit section");
    let dir = config_path().parent().unwrap().to_path_buf();
    assert_eq!(a.file, Some(dir.join("audit.log")), "relative to the file");
    assert_eq!(a.journald, Journald::Auto);
    assert_eq!(a.queue, AUDIT_DEFAULT_QUEUE);
    assert_eq!(a.queue, 65_536);
    assert!(a.flows);
    assert!(!c.warnings.iter().any(|w| w.key.starts_with("audit")));
}

#[test]
fn every_key_is_read() {
    let abs = std::env::temp_dir().join("ixgw-audit.log");
    let text = with(&format!(
        "audit:\n  file: {}\n  journald: \"on\"\n  queue: 1024\n  flows: false\n",
        abs.display()
    ));
    let a = load(&text).unwrap().audit.unwrap();
    assert_eq!(a.file.as_deref(), Some(abs.as_path()));
    assert_eq!(a.journald, Journald::On);
    assert_eq!(a.queue, 1024);
    assert!(!a.flows);
    let off = load(&with(
        "audit:\n  file: a.log\n  journald: \"off\"\n  queue: 1048576\n",
    ))
    .unwrap()
    .audit
    .unwrap();
    assert_eq!(off.journald, Journald::Off);
    assert_eq!(off.queue, 1_048_576);
    // Plain `on` and `off` are words, not YAML 1.1 booleans.
    for (word, journald) in [
        ("off", Journald::Off),
        ("on", Journald::On),
        ("auto", Journald::Auto),
    ] {
        let plain = load(&with(&format!(
            "audit:\n  file: a.log\n  journald: {word}\n"
        )))
        .unwrap();
        assert_eq!(plain.audit.unwrap().journald, journald, "{word}");
    }
}

#[test]
fn journald_alone_is_fine_and_auto_without_a_file_warns() {
    let c = load(&with("audit:\n  journald: \"on\"\n")).unwrap();
    assert_eq!(c.audit.as_ref().unwrap().file, None);
    assert!(!c.warnings.iter().any(|w| w.key.starts_with("audit")));
    let text = with("audit:\n  flows: true\n");
    let c = load(&text).unwrap();
    let w: Vec<String> = c
        .warnings
        .iter()
        .filter(|w| w.key == "audit")
        .map(|w| w.to_string())
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    let line = super::tests::line_eq(&text, "audit:");
    assert!(
        w[0].contains(&format!(
            ":{line}: audit: warning: the audit trail has no `file`"
        )),
        "{w:?}"
    );
}

#[test]
fn an_audit_trail_that_goes_nowhere_is_refused() {
    rejects(
        &with("audit:\n  journald: \"off\"\n"),
        "audit.journald",
        "journald:",
        &["`journald: off` and no `file`", "go nowhere"],
    );
}

#[test]
fn a_bad_journald_value_is_named() {
    rejects(
        &with("audit:\n  file: a.log\n  journald: sometimes\n"),
        "audit.journald",
        "journald:",
        &["`sometimes` is not one of auto, on or off"],
    );
}

#[test]
fn the_queue_is_bounded() {
    for (value, shown) in [
        ("1023", "1023 is out of range (1024..=1048576)"),
        ("1048577", "1048577"),
    ] {
        rejects(
            &with(&format!("audit:\n  file: a.log\n  queue: {value}\n")),
            "audit.queue",
            "queue:",
            &[shown, "1024..=1048576"],
        );
    }
    let msg = rejects(
        &with("audit:\n  file: a.log\n  queue: many\n"),
        "audit.queue",
        "queue:",
        &["expected a whole number"],
    );
    assert!(!msg.contains("u64"), "{msg}");
}

#[test]
fn the_file_directory_must_exist() {
    let msg = rejects(
        &with("audit:\n  file: no-such-dir/audit.log\n"),
        "audit.file",
        "  file: ",
        &["the directory", "no-such-dir", "does not exist"],
    );
    let dir = config_path().parent().unwrap().join("no-such-dir");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
}

#[test]
fn the_file_must_not_be_a_directory() {
    let dir = config_path().parent().unwrap().to_path_buf();
    assert!(Path::new(&dir).is_dir());
    for given in [dir.display().to_string(), "some-dir/".to_string()] {
        rejects(
            &with(&format!("audit:\n  file: {given}\n")),
            "audit.file",
            "  file: ",
            &["is a directory", "names the audit file itself"],
        );
    }
    rejects(
        &with("audit:\n  file: \" \"\n"),
        "audit.file",
        "  file: ",
        &["must not be empty"],
    );
}

#[test]
fn unknown_keys_are_refused() {
    let text = with("audit:\n  file: a.log\n  path: b.log\n");
    rejects(&text, "audit.path", "path:", &["unknown key `path`"]);
}
