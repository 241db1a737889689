//! Wall-clock times as operators read and write them: RFC 3339 in UTC.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;

/// `secs` since the UNIX epoch as RFC 3339 UTC (`2026-11-24T15:00:00Z`); out of range
/// values print as the number of seconds.
pub fn format_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs}s after the UNIX epoch"))
}

/// An RFC 3339 time (`2026-11-24T15:00:00+09:00`) as seconds since the UNIX epoch; times
/// before the epoch are refused.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time like 2026-04-01T00:00:00+09:00: {e}"))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| "before 1970".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_utc() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        let t = parse_rfc3339("2026-04-01T00:00:00+09:00").unwrap();
        assert_eq!(format_unix(t), "2026-03-31T15:00:00Z");
        assert!(parse_rfc3339("2026-04-01").is_err());
        assert!(parse_rfc3339("1969-12-31T23:59:59Z").is_err());
    }
}
