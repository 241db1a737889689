//! Usage records for cost sharing: what the gateway carried per tenant pair and per facility,
//! persisted so that a report can be cut for any period (`ixgw usage`).
//!
//! Layer contract: beside `audit/` and like it a shell that only the runtime (and the CLI,
//! for reports) imports: it owns one thread (`ixgw-usage`), the files of `usage.dir`, and
//! reads the wall clock. It imports `vocab` (the workers' [`crate::vocab::Counters`]),
//! `config` and prometheus types; the data path knows nothing of it. The per-packet cost is
//! the tenants × tenants matrix in `Counters` (two relaxed counter adds per forwarded
//! packet); everything here runs once per interval.
//!
//! What is counted: inner IP bytes (IP header and payload, after decapsulation, tunnel
//! overhead excluded; address translation does not change a length), as the per-tenant and
//! per-peer metrics count them.
//!
//! * `pairs`: packets that left towards the destination tenant, by (source tenant,
//!   destination tenant). Dropped packets and ICMP errors the gateway makes itself are in no
//!   pair.
//! * `tenants` and `peers`: `rx` is everything received from the tenant or peer (forwarded
//!   or dropped), `tx` everything sent to it (ICMP errors of the gateway included), as
//!   `ixgw_tenant_*` and `ixgw_peer_*`.
//!
//! # Format
//!
//! `usage.dir` holds one file per UTC day, `usage-YYYY-MM-DD.jsonl`, of JSON lines, each a
//! [`Record`] of `[start, end)`: `v` (1), `start`, `end` (RFC 3339, UTC, whole seconds),
//! `interval` (seconds), `cut` (`interval`: ended on a boundary; `reload`; `stop`), then
//! `pairs` (`from`, `to`, `packets`, `bytes`), `tenants` (`tenant`, `rx_packets`, `rx_bytes`,
//! `tx_packets`, `tx_bytes`) and `peers` (`tenant`, `attachment`, `peer`, `facility`,
//! optional `facility_name`, and the same four counts), with what changed since the previous
//! record of the same process; rows without change are left out. A record goes to the file
//! of the day its start falls on. Records of one process follow each other without gap;
//! a gap between processes is the time no ixgw ran (or, after a crash, the last interval).

#![forbid(unsafe_code)]

mod record;
mod report;
mod totals;
mod writer;

use std::collections::HashMap;

pub use record::{
    format_utc, parse_line, Cut, PairRow, PeerRow, Record, RecordError, TenantRow, Traffic, VERSION,
};
pub use report::{
    coverage_text, format_jst, parse_time, read_dir, read_lines, to_csv, to_json, By, Coverage,
    FacilityRow, Period, Report, ReportError, TenantPairRow, JST, PLAIN,
};
pub use totals::{delta, Totals};
pub use writer::{file_name, Source, Usage, UsageError};

/// Facility code → name, from the configuration's registry.
pub fn facility_names(config: &crate::config::Config) -> HashMap<String, String> {
    config
        .facilities
        .iter()
        .flatten()
        .map(|f| (f.code.to_string(), f.name.clone()))
        .collect()
}

/// Fuzzing body shared by `fuzz/` and the property tests: any bytes as a day file give a
/// report in which every non-empty line is either a record counted or a line skipped (with
/// its number), and renders as CSV, JSON and text, never a panic.
pub fn fuzz_parse(data: &[u8]) {
    let _ = parse_line(data);
    let mut report = Report::new(Period {
        from: i64::MIN / 2,
        to: i64::MAX / 2,
    });
    if read_lines("fuzz", data, &mut report).is_err() {
        return;
    }
    let lines = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let c = &report.coverage;
    assert_eq!(c.records + c.skipped.len(), lines);
    assert!(c.skipped.iter().all(|s| s.line >= 1));
    report.finish(0);
    let _ = to_csv(&report, By::Tenant);
    let _ = to_csv(&report, By::Facility);
    let _ = to_json(&report, By::Facility);
    let _ = coverage_text(&report);
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;

    const LINE: &str = concat!(
        r#"{"v":1,"start":"2026-11-24T17:30:00Z","end":"2026-11-24T17:35:00Z","interval":300,"cut":"interval","#,
        r#""pairs":[{"from":"a","to":"b","packets":3,"bytes":4500}],"#,
        r#""tenants":[{"tenant":"a","rx_packets":3,"rx_bytes":4500,"tx_packets":1,"tx_bytes":60}],"#,
        r#""peers":[{"tenant":"a","attachment":"w","peer":"p","facility":"4212345674","rx_packets":3,"rx_bytes":4500,"tx_packets":1,"tx_bytes":60}]}"#
    );

    #[test]
    fn the_seed_is_one_record() {
        fuzz_parse(LINE.as_bytes());
        assert!(parse_line(LINE.as_bytes()).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_records_or_skipped_lines(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            fuzz_parse(&data);
        }

        #[test]
        fn mangled_records_never_panic(cut in 0usize..600, at in 0usize..600, junk in "[ -~\n]{0,12}") {
            let mut text = format!("{LINE}\n{LINE}\n");
            text.truncate(cut.min(text.len()));
            let at = at.min(text.len());
            text.insert_str(at, &junk);
            fuzz_parse(text.as_bytes());
        }
    }
}
