//! One usage record: what the gateway carried during one interval, keyed by names, as one
//! JSON line. Parsing is strict about what it relies on (version, times, counts) and returns
//! an error, never panics, on anything else: the files are ours, but a crash can tear a
//! line and an operator can edit one.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The format's version; a reader refuses records of another.
pub const VERSION: u32 = 1;

/// A line longer than this is not one of ours (a record of 10,000 peers is about 2 MiB).
pub const MAX_LINE: usize = 16 << 20;

/// Why a record ends where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// At an interval boundary (a multiple of `interval` since the UNIX epoch).
    Interval,
    /// Before a configuration reload (peers or tenants the reload removes are in it).
    Reload,
    /// At a clean stop (SIGTERM): nothing after it was counted by this process.
    Stop,
}

/// Packets and inner IP bytes forwarded from tenant `from` to tenant `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRow {
    pub from: String,
    pub to: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Packets and inner IP bytes in each direction: `rx` received by the gateway from the tenant
/// or peer (forwarded or dropped), `tx` sent by the gateway to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Traffic {
    pub fn from_array(v: [u64; 4]) -> Self {
        Traffic {
            rx_packets: v[0],
            rx_bytes: v[1],
            tx_packets: v[2],
            tx_bytes: v[3],
        }
    }

    pub fn to_array(self) -> [u64; 4] {
        [
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
        ]
    }

    pub fn is_zero(&self) -> bool {
        self.to_array() == [0; 4]
    }

    /// Adds `other`, wrapping (the sums of a year of 100 Gbit/s fit a `u64` many times).
    pub fn add(&mut self, other: &Traffic) {
        let mut v = self.to_array();
        for (a, b) in v.iter_mut().zip(other.to_array()) {
            *a = a.wrapping_add(b);
        }
        *self = Traffic::from_array(v);
    }

    /// `self - other` per field, 0 where `other` is larger.
    pub fn saturating_sub(&self, other: &Traffic) -> Traffic {
        let mut v = self.to_array();
        for (a, b) in v.iter_mut().zip(other.to_array()) {
            *a = a.saturating_sub(b);
        }
        Traffic::from_array(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRow {
    pub tenant: String,
    #[serde(flatten)]
    pub traffic: Traffic,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRow {
    pub tenant: String,
    pub attachment: String,
    pub peer: String,
    /// The 10-digit facility code.
    pub facility: String,
    /// The facility's name in the registry when the record was written, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility_name: Option<String>,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// What the gateway carried in `[start, end)` (UNIX seconds), counted since the previous
/// record of the same process. Rows whose counts are all zero are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    #[serde(with = "rfc3339")]
    pub start: i64,
    #[serde(with = "rfc3339")]
    pub end: i64,
    /// The configured interval in seconds (a record shorter than it is partial).
    pub interval: u64,
    pub cut: Cut,
    #[serde(default)]
    pub pairs: Vec<PairRow>,
    #[serde(default)]
    pub tenants: Vec<TenantRow>,
    #[serde(default)]
    pub peers: Vec<PeerRow>,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a usage record: {0}")]
    Json(String),
    #[error("record version {0}, this ixgw reads version {VERSION}")]
    Version(u32),
    #[error("the record ends ({end}) before it starts ({start})")]
    Backwards { start: i64, end: i64 },
    #[error("the line is longer than {MAX_LINE} bytes")]
    TooLong,
}

impl Record {
    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether it covers less than one whole aligned interval.
    pub fn is_partial(&self) -> bool {
        let i = self.interval as i64;
        i == 0 || self.end - self.start != i || self.start.rem_euclid(i) != 0
    }
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Record, RecordError> {
    if line.len() > MAX_LINE {
        return Err(RecordError::TooLong);
    }
    let r: Record = serde_json::from_slice(line).map_err(|e| RecordError::Json(e.to_string()))?;
    if r.v != VERSION {
        return Err(RecordError::Version(r.v));
    }
    if r.end < r.start {
        return Err(RecordError::Backwards {
            start: r.start,
            end: r.end,
        });
    }
    Ok(r)
}

/// UNIX seconds as RFC 3339 in UTC: `2026-11-24T17:30:00Z`.
pub fn format_utc(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

mod rfc3339 {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(unix: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_utc(*unix))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| de::Error::custom(format!("`{s}` is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 2026-11-24T17:30:00Z.
    const T: i64 = 1_795_541_400;

    pub(crate) fn sample() -> Record {
        Record {
            v: VERSION,
            start: T,
            end: T + 300,
            interval: 300,
            cut: Cut::Interval,
            pairs: vec![PairRow {
                from: "ajisai-net".into(),
                to: "mame-net".into(),
                packets: 3,
                bytes: 4500,
            }],
            tenants: vec![TenantRow {
                tenant: "ajisai-net".into(),
                traffic: Traffic::from_array([3, 4500, 1, 60]),
            }],
            peers: vec![PeerRow {
                tenant: "ajisai-net".into(),
                attachment: "ajisai-wg".into(),
                peer: "omura-gw".into(),
                facility: "4212345674".into(),
                facility_name: Some("大村クリニック".into()),
                traffic: Traffic::from_array([3, 4500, 1, 60]),
            }],
        }
    }

    /// The format as written: field names and order are what operators and scripts read.
    const LINE: &str = concat!(
        r#"{"v":1,"start":"2026-11-24T17:30:00Z","end":"2026-11-24T17:35:00Z","interval":300,"cut":"interval","#,
        r#""pairs":[{"from":"ajisai-net","to":"mame-net","packets":3,"bytes":4500}],"#,
        r#""tenants":[{"tenant":"ajisai-net","rx_packets":3,"rx_bytes":4500,"tx_packets":1,"tx_bytes":60}],"#,
        r#""peers":[{"tenant":"ajisai-net","attachment":"ajisai-wg","peer":"omura-gw","facility":"4212345674","facility_name":"大村クリニック","rx_packets":3,"rx_bytes":4500,"tx_packets":1,"tx_bytes":60}]}"#
    );

    #[test]
    fn a_record_is_one_line_of_json_and_reads_back() {
        let r = sample();
        assert_eq!(r.to_line(), LINE);
        assert_eq!(parse_line(LINE.as_bytes()), Ok(r));
        assert!(!LINE.contains('\n'));
    }

    #[test]
    fn partial_records_are_recognised() {
        let mut r = sample();
        assert!(!r.is_partial());
        r.end -= 1;
        assert!(r.is_partial());
        r.start += 1;
        r.end += 1;
        assert!(r.is_partial(), "a whole interval's length, not aligned");
        r.interval = 0;
        assert!(r.is_partial());
    }

    #[test]
    fn empty_lists_may_be_left_out_and_unknown_keys_are_ignored() {
        let line = r#"{"v":1,"start":"2026-11-24T17:30:00Z","end":"2026-11-24T17:30:00+00:00","interval":60,"cut":"stop","later":true}"#;
        let r = parse_line(line.as_bytes()).unwrap();
        assert_eq!((r.start, r.end, r.cut), (T, T, Cut::Stop));
        assert!(r.pairs.is_empty() && r.peers.is_empty() && r.tenants.is_empty());
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        let torn = &LINE.as_bytes()[..LINE.len() / 2];
        for bad in [
            &b""[..],
            b"{",
            torn,
            b"\xff\xfe",
            b"null",
            b"[]",
            br#"{"v":1}"#,
            br#"{"v":2,"start":"2026-11-24T17:30:00Z","end":"2026-11-24T17:35:00Z","interval":300,"cut":"interval"}"#,
            br#"{"v":1,"start":"2026-11-24T17:35:00Z","end":"2026-11-24T17:30:00Z","interval":300,"cut":"interval"}"#,
            br#"{"v":1,"start":"yesterday","end":"2026-11-24T17:30:00Z","interval":300,"cut":"interval"}"#,
            br#"{"v":1,"start":"2026-11-24T17:30:00Z","end":"2026-11-24T17:35:00Z","interval":300,"cut":"whenever"}"#,
            br#"{"v":1,"start":"2026-11-24T17:30:00Z","end":"2026-11-24T17:35:00Z","interval":300,"cut":"interval","pairs":[{"from":"a","to":"b","packets":-1,"bytes":0}]}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(
            parse_line(LINE.replace("\"v\":1", "\"v\":2").as_bytes()),
            Err(RecordError::Version(2))
        ));
    }
}
