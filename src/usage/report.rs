//! `ixgw usage`: the records of a period summed per tenant pair or per facility, with how
//! much of the period they cover.
//!
//! A record belongs to the period that holds its start. Periods given as dates are days in
//! Japan Standard Time (UTC+09:00, no daylight saving time): `--from 2026-11-01 --to
//! 2026-12-01` is November in Japan. Records end on multiples of their interval, which
//! divides an hour, so a period that starts and ends on whole hours holds whole records.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::record::{parse_line, Record, Traffic, MAX_LINE};
use super::writer::file_name;

/// Japan Standard Time, in which dates are read and times shown.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("`{0}` is neither a date (YYYY-MM-DD, Japan Standard Time) nor an RFC 3339 time (2026-11-01T00:00:00+09:00)")]
    Time(String),
    #[error("the period is empty: --from {from} is not before --to {to}")]
    EmptyPeriod { from: String, to: String },
    #[error("{dir}: {source}")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    File {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// A half-open period `[from, to)` in UNIX seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: i64,
    pub to: i64,
}

impl Period {
    pub fn parse(from: &str, to: &str) -> Result<Period, ReportError> {
        let p = Period {
            from: parse_time(from)?,
            to: parse_time(to)?,
        };
        if p.from >= p.to {
            return Err(ReportError::EmptyPeriod {
                from: from.into(),
                to: to.into(),
            });
        }
        Ok(p)
    }
}

/// `YYYY-MM-DD` (midnight JST) or an RFC 3339 time, as UNIX seconds.
pub fn parse_time(s: &str) -> Result<i64, ReportError> {
    let s = s.trim();
    let bad = || ReportError::Time(s.to_string());
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let date = parse_date(s).ok_or_else(bad)?;
    Ok(PrimitiveDateTime::new(date, Time::MIDNIGHT)
        .assume_offset(JST)
        .unix_timestamp())
}

/// `YYYY-MM-DD`, exactly.
fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| s[r].parse::<i32>().ok())
            .flatten()
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    Date::from_calendar_date(digits(0..4)?, month, day).ok()
}

/// UNIX seconds as RFC 3339 in JST: `2026-11-01T00:00:00+09:00`.
pub fn format_jst(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.to_offset(JST).format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Skipped lines named one by one; more are only counted (a garbage file must not fill
/// memory and the terminal).
pub const SKIPPED_LISTED: usize = 100;

/// A line that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub file: String,
    pub line: usize,
    pub why: String,
}

/// How far the records can be trusted for the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Records counted.
    pub records: usize,
    /// Of them, shorter than a whole aligned interval (a start, a reload, a stop, or after
    /// failed writes).
    pub partial: usize,
    /// Seconds of the period (up to now) some record covers, and the period's seconds up to
    /// now.
    pub covered_seconds: i64,
    pub period_seconds: i64,
    /// Stretches no record covers (`[from, to)`, UNIX seconds): ixgw was not running, had
    /// crashed (its last interval is lost), or could not write.
    pub gaps: Vec<(i64, i64)>,
    /// Seconds covered by more than one record (two daemons writing one directory?).
    pub overlap_seconds: i64,
    /// Records that start inside the period and end after it.
    pub straddling: usize,
    /// Lines that are not records (torn by a crash, edited, another version): the first
    /// [`SKIPPED_LISTED`], then only counted in `skipped_more`.
    pub skipped: Vec<Skipped>,
    pub skipped_more: usize,
    /// Day files of the period that do not exist.
    pub missing_files: Vec<String>,
}

/// Per facility: the traffic of its peers, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacilitySum {
    pub name: Option<String>,
    pub traffic: Traffic,
}

/// The sums of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub period: Period,
    /// (from tenant, to tenant) → [packets, bytes] forwarded.
    pub pairs: BTreeMap<(String, String), [u64; 2]>,
    pub tenants: BTreeMap<String, Traffic>,
    /// (tenant, facility code) → its peers' traffic.
    pub facilities: BTreeMap<(String, String), FacilitySum>,
    pub coverage: Coverage,
    /// Covered stretches, merged at the end.
    spans: Vec<(i64, i64)>,
}

impl Report {
    pub fn new(period: Period) -> Self {
        Report {
            period,
            pairs: BTreeMap::new(),
            tenants: BTreeMap::new(),
            facilities: BTreeMap::new(),
            coverage: Coverage::default(),
            spans: Vec::new(),
        }
    }

    /// Counts `r` if it starts inside the period.
    pub fn add(&mut self, r: &Record) {
        if r.start < self.period.from || r.start >= self.period.to {
            return;
        }
        let c = &mut self.coverage;
        c.records += 1;
        c.partial += usize::from(r.is_partial());
        c.straddling += usize::from(r.end > self.period.to);
        self.spans.push((r.start, r.end.min(self.period.to)));
        for p in &r.pairs {
            let e = self
                .pairs
                .entry((p.from.clone(), p.to.clone()))
                .or_default();
            e[0] = e[0].wrapping_add(p.packets);
            e[1] = e[1].wrapping_add(p.bytes);
        }
        for t in &r.tenants {
            self.tenants
                .entry(t.tenant.clone())
                .or_default()
                .add(&t.traffic);
        }
        for p in &r.peers {
            let f = self
                .facilities
                .entry((p.tenant.clone(), p.facility.clone()))
                .or_default();
            f.traffic.add(&p.traffic);
            if p.facility_name.is_some() {
                f.name.clone_from(&p.facility_name);
            }
        }
    }

    /// Works out the coverage of the period up to `now` (UNIX seconds).
    pub fn finish(&mut self, now: i64) {
        let end = self.period.to.min(now.max(self.period.from));
        let c = &mut self.coverage;
        c.period_seconds = end - self.period.from;
        self.spans.sort_unstable();
        let mut cursor = self.period.from;
        let (mut covered, mut overlap) = (0, 0);
        for &(s, e) in &self.spans {
            let (s, e) = (s.min(end), e.min(end));
            if s > cursor {
                c.gaps.push((cursor, s));
            } else {
                overlap += e.min(cursor) - s;
            }
            if e > cursor {
                covered += e - s.max(cursor);
                cursor = e;
            }
        }
        if cursor < end {
            c.gaps.push((cursor, end));
        }
        c.covered_seconds = covered;
        c.overlap_seconds = overlap;
    }

    /// Rows per tenant pair: each unordered pair once (`tenant_a` sorts first), both
    /// directions; a tenant's traffic to itself in `a_to_b`.
    pub fn tenant_rows(&self) -> Vec<TenantPairRow> {
        let mut rows: BTreeMap<(String, String), TenantPairRow> = BTreeMap::new();
        for ((from, to), v) in &self.pairs {
            let forward = from <= to;
            let key = if forward {
                (from.clone(), to.clone())
            } else {
                (to.clone(), from.clone())
            };
            let row = rows.entry(key.clone()).or_insert_with(|| TenantPairRow {
                tenant_a: key.0,
                tenant_b: key.1,
                ..TenantPairRow::default()
            });
            let (p, b) = if forward {
                (&mut row.packets_a_to_b, &mut row.bytes_a_to_b)
            } else {
                (&mut row.packets_b_to_a, &mut row.bytes_b_to_a)
            };
            *p = p.wrapping_add(v[0]);
            *b = b.wrapping_add(v[1]);
        }
        rows.into_values().collect()
    }

    /// Rows per facility (its peers summed), then per tenant one row of what its plain
    /// attachments received and sent (the tenant's counts less its peers'), if any.
    pub fn facility_rows(&self) -> Vec<FacilityRow> {
        let mut rows = Vec::new();
        let mut peers: BTreeMap<&str, Traffic> = BTreeMap::new();
        for ((tenant, code), f) in &self.facilities {
            peers.entry(tenant).or_default().add(&f.traffic);
            rows.push(FacilityRow::new(
                tenant,
                code,
                f.name.as_deref().unwrap_or(""),
                &f.traffic,
            ));
        }
        for (tenant, t) in &self.tenants {
            let rest = t.saturating_sub(peers.get(tenant.as_str()).unwrap_or(&Traffic::default()));
            if !rest.is_zero() {
                rows.push(FacilityRow::new(tenant, "", PLAIN, &rest));
            }
        }
        rows.sort_by(|a, b| (&a.tenant, &a.facility).cmp(&(&b.tenant, &b.facility)));
        rows
    }
}

/// The name of a tenant's row for traffic that came through no peer.
pub const PLAIN: &str = "(plain attachments)";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantPairRow {
    pub tenant_a: String,
    pub tenant_b: String,
    pub packets_a_to_b: u64,
    pub bytes_a_to_b: u64,
    pub packets_b_to_a: u64,
    pub bytes_b_to_a: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FacilityRow {
    pub tenant: String,
    pub facility: String,
    pub facility_name: String,
    /// Received by ixgw from the facility (forwarded or dropped).
    pub packets_from: u64,
    pub bytes_from: u64,
    /// Sent by ixgw to the facility.
    pub packets_to: u64,
    pub bytes_to: u64,
}

impl FacilityRow {
    fn new(tenant: &str, facility: &str, name: &str, t: &Traffic) -> Self {
        FacilityRow {
            tenant: tenant.into(),
            facility: facility.into(),
            facility_name: name.into(),
            packets_from: t.rx_packets,
            bytes_from: t.rx_bytes,
            packets_to: t.tx_packets,
            bytes_to: t.tx_bytes,
        }
    }
}

/// Reads `line`s of one file into `report`; a line that is not a record is skipped and
/// noted (a last line without its newline as torn by a crash).
pub fn read_lines(file: &str, mut input: impl BufRead, report: &mut Report) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let n = Read::take(input.by_ref(), MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        } else if buf.len() > MAX_LINE {
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = Read::take(input.by_ref(), 1 << 20).read_until(b'\n', &mut rest)?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        if buf.is_empty() {
            continue;
        }
        match parse_line(&buf) {
            Ok(r) => report.add(&r),
            Err(e) => {
                let why = if !complete && buf.len() <= MAX_LINE {
                    format!("torn last line (ixgw stopped while writing it?): {e}")
                } else {
                    e.to_string()
                };
                if report.coverage.skipped.len() < SKIPPED_LISTED {
                    report.coverage.skipped.push(Skipped {
                        file: file.into(),
                        line: number,
                        why,
                    });
                } else {
                    report.coverage.skipped_more += 1;
                }
            }
        }
    }
}

/// Reads the day files of `period` in `dir` and sums them, as of `now`.
pub fn read_dir(dir: &Path, period: Period, now: i64) -> Result<Report, ReportError> {
    let meta = std::fs::metadata(dir).map_err(|source| ReportError::Dir {
        dir: dir.display().to_string(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ReportError::Dir {
            dir: dir.display().to_string(),
            source: std::io::Error::other("not a directory"),
        });
    }
    let mut report = Report::new(period);
    for name in day_files(period) {
        let path: PathBuf = dir.join(&name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.coverage.missing_files.push(name);
                continue;
            }
            Err(source) => {
                return Err(ReportError::File {
                    file: path.display().to_string(),
                    source,
                })
            }
        };
        read_lines(&name, BufReader::new(file), &mut report).map_err(|source| {
            ReportError::File {
                file: path.display().to_string(),
                source,
            }
        })?;
    }
    report.finish(now);
    Ok(report)
}

/// The UTC day files that may hold records starting in `period`.
fn day_files(period: Period) -> Vec<String> {
    const DAY: i64 = 86_400;
    let first = period.from.div_euclid(DAY);
    let last = (period.to - 1).div_euclid(DAY);
    (first..=last).map(|d| file_name(d * DAY)).collect()
}

/// Which rows to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Tenant,
    Facility,
}

/// One CSV field, quoted when it must be [RFC 4180 § 2].
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The rows as CSV with a header line.
pub fn to_csv(report: &Report, by: By) -> String {
    let mut out = String::new();
    match by {
        By::Tenant => {
            out.push_str(
                "tenant_a,tenant_b,packets_a_to_b,bytes_a_to_b,packets_b_to_a,bytes_b_to_a\n",
            );
            for r in report.tenant_rows() {
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    csv_field(&r.tenant_a),
                    csv_field(&r.tenant_b),
                    r.packets_a_to_b,
                    r.bytes_a_to_b,
                    r.packets_b_to_a,
                    r.bytes_b_to_a
                ));
            }
        }
        By::Facility => {
            out.push_str(
                "tenant,facility,facility_name,packets_from,bytes_from,packets_to,bytes_to\n",
            );
            for r in report.facility_rows() {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    csv_field(&r.tenant),
                    csv_field(&r.facility),
                    csv_field(&r.facility_name),
                    r.packets_from,
                    r.bytes_from,
                    r.packets_to,
                    r.bytes_to
                ));
            }
        }
    }
    out
}

#[derive(Serialize)]
struct JsonCoverage<'a> {
    records: usize,
    partial_records: usize,
    covered_seconds: i64,
    period_seconds: i64,
    complete: bool,
    gaps: Vec<[String; 2]>,
    overlap_seconds: i64,
    straddling_records: usize,
    skipped_lines: &'a [Skipped],
    skipped_lines_not_listed: usize,
    missing_files: &'a [String],
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonRows {
    Tenant(Vec<TenantPairRow>),
    Facility(Vec<FacilityRow>),
}

#[derive(Serialize)]
struct JsonReport<'a> {
    from: String,
    to: String,
    by: &'static str,
    bytes: &'static str,
    rows: JsonRows,
    coverage: JsonCoverage<'a>,
}

/// What the figures count, for the JSON report.
const BYTES: &str = "inner IP bytes (IP header included, tunnel overhead excluded)";

/// The rows and the coverage as one JSON document.
pub fn to_json(report: &Report, by: By) -> String {
    let c = &report.coverage;
    let doc = JsonReport {
        from: format_jst(report.period.from),
        to: format_jst(report.period.to),
        by: match by {
            By::Tenant => "tenant",
            By::Facility => "facility",
        },
        bytes: BYTES,
        rows: match by {
            By::Tenant => JsonRows::Tenant(report.tenant_rows()),
            By::Facility => JsonRows::Facility(report.facility_rows()),
        },
        coverage: JsonCoverage {
            records: c.records,
            partial_records: c.partial,
            covered_seconds: c.covered_seconds,
            period_seconds: c.period_seconds,
            complete: is_complete(c),
            gaps: c
                .gaps
                .iter()
                .map(|(a, b)| [format_jst(*a), format_jst(*b)])
                .collect(),
            overlap_seconds: c.overlap_seconds,
            straddling_records: c.straddling,
            skipped_lines: &c.skipped,
            skipped_lines_not_listed: c.skipped_more,
            missing_files: &c.missing_files,
        },
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn is_complete(c: &Coverage) -> bool {
    c.gaps.is_empty()
        && c.skipped.is_empty()
        && c.skipped_more == 0
        && c.overlap_seconds == 0
        && c.straddling == 0
}

/// The coverage in words, one line each (for stderr beside CSV).
pub fn coverage_text(report: &Report) -> String {
    let c = &report.coverage;
    let mut out = format!(
        "coverage: {} of {} seconds ({:.3} %) from {} to {}, {} records ({} partial){}\n",
        c.covered_seconds,
        c.period_seconds,
        if c.period_seconds > 0 {
            100.0 * c.covered_seconds as f64 / c.period_seconds as f64
        } else {
            100.0
        },
        format_jst(report.period.from),
        format_jst(report.period.from + c.period_seconds),
        c.records,
        c.partial,
        if is_complete(c) { ", complete" } else { "" },
    );
    const SHOWN: usize = 20;
    for (a, b) in c.gaps.iter().take(SHOWN) {
        out.push_str(&format!(
            "coverage: gap {} .. {} ({} s): not recorded\n",
            format_jst(*a),
            format_jst(*b),
            b - a
        ));
    }
    if c.gaps.len() > SHOWN {
        out.push_str(&format!(
            "coverage: ... {} more gaps\n",
            c.gaps.len() - SHOWN
        ));
    }
    if c.overlap_seconds > 0 {
        out.push_str(&format!(
            "coverage: warning: {} seconds are covered by more than one record (two daemons writing one directory?)\n",
            c.overlap_seconds
        ));
    }
    if c.straddling > 0 {
        out.push_str(&format!(
            "coverage: warning: {} records start inside the period and end after it; they are counted whole\n",
            c.straddling
        ));
    }
    for s in &c.skipped {
        out.push_str(&format!(
            "coverage: warning: {}:{}: skipped: {}\n",
            s.file, s.line, s.why
        ));
    }
    if c.skipped_more > 0 {
        out.push_str(&format!(
            "coverage: warning: {} more lines skipped, not listed\n",
            c.skipped_more
        ));
    }
    if !c.missing_files.is_empty() {
        out.push_str(&format!(
            "coverage: {} day files missing (no record those UTC days): {}\n",
            c.missing_files.len(),
            c.missing_files.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::{Cut, PairRow, PeerRow, TenantRow, VERSION};

    /// 2026-11-01T00:00:00+09:00.
    const NOV: i64 = 1_793_458_800;

    fn record(start: i64, end: i64, pairs: &[(&str, &str, u64)]) -> Record {
        Record {
            v: VERSION,
            start,
            end,
            interval: 300,
            cut: Cut::Interval,
            pairs: pairs
                .iter()
                .map(|(f, t, b)| PairRow {
                    from: (*f).into(),
                    to: (*t).into(),
                    packets: b / 100,
                    bytes: *b,
                })
                .collect(),
            tenants: vec![],
            peers: vec![],
        }
    }

    #[test]
    fn dates_are_midnight_in_japan_and_rfc3339_is_taken_as_written() {
        assert_eq!(parse_time("2026-11-01").unwrap(), NOV);
        assert_eq!(parse_time("2026-11-01T00:00:00+09:00").unwrap(), NOV);
        assert_eq!(parse_time("2026-10-31T15:00:00Z").unwrap(), NOV);
        assert_eq!(parse_time(" 2026-11-01 ").unwrap(), NOV);
        assert_eq!(format_jst(NOV), "2026-11-01T00:00:00+09:00");
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "20261101",
            "yesterday",
            "",
            "2026-11-01T00:00",
        ] {
            assert!(
                matches!(parse_time(bad), Err(ReportError::Time(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Period::parse("2026-12-01", "2026-11-01"),
            Err(ReportError::EmptyPeriod { .. })
        ));
        let p = Period::parse("2026-11-01", "2026-12-01").unwrap();
        assert_eq!(p.to - p.from, 30 * 86_400);
    }

    #[test]
    fn the_day_files_of_a_jst_period_are_the_utc_days_it_touches() {
        let p = Period::parse("2026-11-01", "2026-11-03").unwrap();
        assert_eq!(
            day_files(p),
            [
                "usage-2026-10-31.jsonl",
                "usage-2026-11-01.jsonl",
                "usage-2026-11-02.jsonl"
            ]
        );
    }

    #[test]
    fn records_count_in_the_period_that_holds_their_start() {
        let p = Period {
            from: NOV,
            to: NOV + 900,
        };
        let mut r = Report::new(p);
        r.add(&record(NOV - 300, NOV, &[("a", "b", 1000)])); // before
        r.add(&record(NOV, NOV + 300, &[("a", "b", 100)]));
        r.add(&record(
            NOV + 300,
            NOV + 600,
            &[("a", "b", 200), ("b", "a", 50)],
        ));
        r.add(&record(NOV + 600, NOV + 900, &[("b", "b", 7)]));
        r.add(&record(NOV + 900, NOV + 1200, &[("a", "b", 1000)])); // after
        r.finish(NOV + 10_000);
        assert_eq!(r.pairs[&("a".into(), "b".into())], [3, 300]);
        let rows = r.tenant_rows();
        assert_eq!(
            rows,
            [
                TenantPairRow {
                    tenant_a: "a".into(),
                    tenant_b: "b".into(),
                    packets_a_to_b: 3,
                    bytes_a_to_b: 300,
                    packets_b_to_a: 0,
                    bytes_b_to_a: 50,
                },
                TenantPairRow {
                    tenant_a: "b".into(),
                    tenant_b: "b".into(),
                    packets_a_to_b: 0,
                    bytes_a_to_b: 7,
                    packets_b_to_a: 0,
                    bytes_b_to_a: 0,
                }
            ]
        );
        let c = &r.coverage;
        assert_eq!((c.records, c.partial, c.straddling), (3, 0, 0));
        assert_eq!((c.covered_seconds, c.period_seconds), (900, 900));
        assert!(c.gaps.is_empty());
        assert!(is_complete(c));
    }

    #[test]
    fn gaps_partial_records_and_overlaps_are_reported() {
        let p = Period {
            from: NOV,
            to: NOV + 1200,
        };
        let mut r = Report::new(p);
        // Up at +10 s, stopped at +250 s, up again at +320 s; then a duplicate record.
        r.add(&record(NOV + 10, NOV + 250, &[]));
        r.add(&record(NOV + 320, NOV + 600, &[]));
        r.add(&record(NOV + 600, NOV + 900, &[]));
        r.add(&record(NOV + 600, NOV + 900, &[]));
        r.finish(NOV + 1000); // the period runs on into the future
        let c = &r.coverage;
        assert_eq!(c.period_seconds, 1000);
        assert_eq!(
            c.gaps,
            [
                (NOV, NOV + 10),
                (NOV + 250, NOV + 320),
                (NOV + 900, NOV + 1000)
            ]
        );
        assert_eq!(c.covered_seconds, 240 + 280 + 300);
        assert_eq!(c.overlap_seconds, 300);
        assert_eq!(c.partial, 2);
        assert!(!is_complete(c));
        let text = coverage_text(&r);
        assert!(
            text.contains("gap 2026-11-01T00:04:10+09:00 .. 2026-11-01T00:05:20+09:00 (70 s)"),
            "{text}"
        );
        assert!(text.contains("more than one record"), "{text}");
    }

    #[test]
    fn facilities_sum_their_peers_and_plain_attachments_get_the_rest() {
        let mut rec = record(NOV, NOV + 300, &[]);
        let peer = |name: &str, code: &str, fname: Option<&str>, v: [u64; 4]| PeerRow {
            tenant: "ajisai".into(),
            attachment: "wg".into(),
            peer: name.into(),
            facility: code.into(),
            facility_name: fname.map(Into::into),
            traffic: Traffic::from_array(v),
        };
        rec.peers = vec![
            peer("omura-1", "4212345674", None, [1, 100, 2, 200]),
            peer(
                "omura-2",
                "4212345674",
                Some("Omura, clinic"),
                [1, 100, 0, 0],
            ),
            peer("sasebo", "4240123457", Some("Sasebo"), [0, 0, 1, 10]),
        ];
        rec.tenants = vec![
            TenantRow {
                tenant: "ajisai".into(),
                traffic: Traffic::from_array([2, 200, 3, 210]),
            },
            TenantRow {
                tenant: "claims".into(),
                traffic: Traffic::from_array([5, 500, 6, 600]),
            },
        ];
        let mut r = Report::new(Period {
            from: NOV,
            to: NOV + 300,
        });
        r.add(&rec);
        r.finish(NOV + 300);
        let rows = r.facility_rows();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(
            rows[0],
            FacilityRow {
                tenant: "ajisai".into(),
                facility: "4212345674".into(),
                facility_name: "Omura, clinic".into(),
                packets_from: 2,
                bytes_from: 200,
                packets_to: 2,
                bytes_to: 200,
            }
        );
        assert_eq!(rows[1].facility, "4240123457");
        assert_eq!(rows[2].tenant, "claims");
        assert_eq!(rows[2].facility_name, PLAIN);
        assert_eq!(rows[2].bytes_to, 600);
        let csv = to_csv(&r, By::Facility);
        assert_eq!(
            csv.lines().nth(1),
            Some("ajisai,4212345674,\"Omura, clinic\",2,200,2,200")
        );
        let json: serde_json::Value = serde_json::from_str(&to_json(&r, By::Facility)).unwrap();
        assert_eq!(json["rows"][0]["bytes_from"], 200);
        assert_eq!(json["by"], "facility");
        assert_eq!(json["from"], "2026-11-01T00:00:00+09:00");
        assert_eq!(json["coverage"]["complete"], true);
    }

    #[test]
    fn a_file_of_garbage_names_only_the_first_skipped_lines() {
        let text = "garbage\n".repeat(SKIPPED_LISTED + 50);
        let mut r = Report::new(Period {
            from: NOV,
            to: NOV + 600,
        });
        read_lines("usage-x.jsonl", text.as_bytes(), &mut r).unwrap();
        assert_eq!(r.coverage.skipped.len(), SKIPPED_LISTED);
        assert_eq!(r.coverage.skipped_more, 50);
        r.finish(NOV + 600);
        let words = coverage_text(&r);
        assert_eq!(
            words.lines().filter(|l| l.contains("skipped")).count(),
            SKIPPED_LISTED + 1
        );
        assert!(words.contains("50 more lines skipped"), "{words}");
    }

    #[test]
    fn torn_and_corrupt_lines_are_skipped_and_named() {
        let good = record(NOV, NOV + 300, &[("a", "b", 100)]).to_line();
        let text = format!("{good}\nnot json\n\n{good}\n{}", &good[..40]);
        let mut r = Report::new(Period {
            from: NOV,
            to: NOV + 600,
        });
        read_lines("usage-x.jsonl", text.as_bytes(), &mut r).unwrap();
        assert_eq!(r.coverage.records, 2);
        let skipped: Vec<(usize, bool)> = r
            .coverage
            .skipped
            .iter()
            .map(|s| (s.line, s.why.starts_with("torn")))
            .collect();
        assert_eq!(skipped, [(2, false), (5, true)]);
        // Both copies of the record count: the coverage says they overlap.
        r.finish(NOV + 600);
        assert_eq!(r.coverage.overlap_seconds, 300);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_missing_days_are_noted() {
        let p = Period::parse("2026-11-01", "2026-11-02").unwrap();
        let err = read_dir(Path::new("/nonexistent/ixgw-usage"), p, NOV).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/ixgw-usage: "),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("ixgw-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rec = record(NOV, NOV + 300, &[("a", "b", 100)]);
        std::fs::write(dir.join(file_name(NOV)), rec.to_line() + "\n").unwrap();
        let r = read_dir(&dir, p, NOV + 86_400).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(r.coverage.records, 1);
        assert_eq!(r.coverage.missing_files, ["usage-2026-11-01.jsonl"]);
        assert_eq!(r.coverage.covered_seconds, 300);
        let csv = to_csv(&r, By::Tenant);
        assert_eq!(
            csv,
            "tenant_a,tenant_b,packets_a_to_b,bytes_a_to_b,packets_b_to_a,bytes_b_to_a\na,b,1,100,0,0\n"
        );
    }
}
