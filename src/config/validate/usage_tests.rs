//! `usage:`: what loads, the defaults, and every rejection with its key path and line.

use std::time::Duration;

use super::tests::{config_path, load, rejects, BASE};
use crate::config::{USAGE_DEFAULT_DIR, USAGE_DEFAULT_INTERVAL};

fn with(usage: &str) -> String {
    format!("{BASE}{usage}")
}

#[test]
fn without_usage_nothing_is_written() {
    assert_eq!(load(BASE).unwrap().usage, None);
}

#[test]
fn an_empty_section_takes_the_defaults() {
    let u = load(&with("usage: {}\n"))
        .unwrap()
        .usage
        .expect("a section");
    assert_eq!(u.dir, std::path::Path::new(USAGE_DEFAULT_DIR));
    assert_eq!(u.interval, USAGE_DEFAULT_INTERVAL);
    assert_eq!(u.interval, Duration::from_secs(300));
}

#[test]
fn every_key_is_read_and_relative_dirs_follow_the_file() {
    let u = load(&with("usage:\n  dir: usage-records\n  interval: 1s\n"))
        .unwrap()
        .usage
        .unwrap();
    let dir = config_path().parent().unwrap().join("usage-records");
    assert_eq!(u.dir, dir);
    assert_eq!(u.interval, Duration::from_secs(1));
    for (v, secs) in [("1h", 3600), ("15m", 900), ("60", 60), ("2s", 2)] {
        let u = load(&with(&format!("usage:\n  interval: {v}\n")))
            .unwrap()
            .usage
            .unwrap();
        assert_eq!(u.interval.as_secs(), secs, "{v}");
    }
}

#[test]
fn the_interval_must_divide_an_hour() {
    for v in ["0s", "7s", "7m", "2h", "90m"] {
        rejects(
            &with(&format!("usage:\n  interval: {v}\n")),
            "usage.interval",
            "interval:",
            &[&format!("`{v}` does not divide an hour")],
        );
    }
    rejects(
        &with("usage:\n  interval: soon\n"),
        "usage.interval",
        "interval:",
        &["`soon` is not a duration"],
    );
}

#[test]
fn the_dir_must_be_a_directory_if_it_exists() {
    rejects(
        &with("usage:\n  dir: \" \"\n"),
        "usage.dir",
        "dir:",
        &["must not be empty"],
    );
    let file = std::env::temp_dir().join(format!("ixgw-usage-file-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    let msg = rejects(
        &with(&format!("usage:\n  dir: {}\n", file.display())),
        "usage.dir",
        "dir:",
        &["is not a directory"],
    );
    let _ = std::fs::remove_file(&file);
    assert!(msg.contains(&file.display().to_string()), "{msg}");
}

#[test]
fn unknown_keys_are_refused() {
    rejects(
        &with("usage:\n  directory: /tmp\n"),
        "usage.directory",
        "directory:",
        &["unknown key `directory`"],
    );
}
