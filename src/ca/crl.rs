//! Revocation: the list of revoked certificates as `revoked.txt` keeps it, and the CRL signed
//! from it [RFC 5280 § 5].
//!
//! A CRL is version 2 with the CA's key identifier and a CRL number [RFC 5280 § 5.2.1,
//! § 5.2.3], thisUpdate and nextUpdate, and per entry the serial, the revocation date and the
//! reason code [RFC 5280 § 5.3.1] — except `unspecified`, whose reason code the RFC says
//! SHOULD be absent, and rcgen leaves out.

use std::time::SystemTime;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams};

use super::cert::{Authority, Serial, SignError};
use super::{offset, rfc3339};

/// Why a certificate was revoked, by its `revoked.txt` and `--reason` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    Superseded,
    CessationOfOperation,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::Superseded,
        Reason::CessationOfOperation,
    ];
    pub const NAMES: [&'static str; 4] = [
        "unspecified",
        "key-compromise",
        "superseded",
        "cessation-of-operation",
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The CRLReason code [RFC 5280 § 5.3.1].
    pub fn code(self) -> u8 {
        self.rcgen() as u8
    }

    fn rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

/// One revoked certificate: a line `SERIAL_HEX RFC3339 REASON` of `revoked.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: Serial,
    pub time: SystemTime,
    pub reason: Reason,
}

/// A line of `revoked.txt` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LineError {
    /// From 1.
    pub line: usize,
    pub problem: String,
}

/// The entries of `revoked.txt`; blank lines are skipped.
pub fn parse_revoked(text: &str) -> Result<Vec<Revoked>, LineError> {
    let mut list = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |problem: String| LineError {
            line: i + 1,
            problem,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [serial, time, reason] = fields[..] else {
            if fields.is_empty() {
                continue;
            }
            return Err(err(format!(
                "want `SERIAL_HEX RFC3339_TIME REASON`, got {line:?}"
            )));
        };
        let serial = Serial::from_hex(serial)
            .ok_or_else(|| err(format!("serial {serial:?}: not hex of 1 to 20 bytes")))?;
        let time = super::time(time).map_err(|e| err(e.to_string()))?;
        let reason = reason
            .parse()
            .map_err(|e: super::InputError| err(e.to_string()))?;
        list.push(Revoked {
            serial,
            time,
            reason,
        });
    }
    Ok(list)
}

/// `revoked.txt`'s text: one line per entry.
pub fn format_revoked(list: &[Revoked]) -> String {
    list.iter()
        .map(|r| format!("{} {} {}\n", r.serial, rfc3339(r.time), r.reason.name()))
        .collect()
}

/// A CRL of `ca` listing `revoked`, in PEM.
pub fn sign(
    ca: &Authority,
    revoked: &[Revoked],
    number: u64,
    this_update: SystemTime,
    next_update: SystemTime,
) -> Result<String, SignError> {
    let revoked_certs = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCertParams {
                serial_number: r.serial.as_bytes().to_vec().into(),
                revocation_time: offset(r.time)?,
                reason_code: Some(r.reason.rcgen()),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, SignError>>()?;
    let params = CertificateRevocationListParams {
        this_update: offset(this_update)?,
        next_update: offset(next_update)?,
        crl_number: number.into(),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(ca.key_id().to_vec()),
    };
    let crl = params.signed_by(ca.issuer())?;
    if !ca.issued_crl(crl.der()) {
        return Err(SignError::IssuerMismatch);
    }
    Ok(crl.pem()?)
}

#[cfg(test)]
mod unit_tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn revoked_txt_round_trip() {
        let list = vec![
            Revoked {
                serial: Serial::from_hex("7f01").unwrap(),
                time: UNIX_EPOCH + Duration::from_secs(1_780_272_000),
                reason: Reason::KeyCompromise,
            },
            Revoked {
                serial: Serial::from_hex("01").unwrap(),
                time: UNIX_EPOCH + Duration::from_secs(1_780_272_001),
                reason: Reason::Unspecified,
            },
        ];
        let text = format_revoked(&list);
        assert_eq!(
            text,
            "7f01 2026-06-01T00:00:00Z key-compromise\n01 2026-06-01T00:00:01Z unspecified\n"
        );
        assert_eq!(parse_revoked(&format!("\n{text}\n")), Ok(list));
    }

    #[test]
    fn revoked_txt_errors_name_the_line() {
        let e = parse_revoked(
            "01 2026-06-01T00:00:00Z superseded\nzz 2026-06-01T00:00:00Z superseded\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("\"zz\""), "{e}");
        let e = parse_revoked("01 2026-06-01T00:00:00Z\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: want `SERIAL_HEX RFC3339_TIME REASON`, got \"01 2026-06-01T00:00:00Z\""
        );
        let e = parse_revoked("01 2026-06-01 superseded\n").unwrap_err();
        assert!(e.problem.contains("not RFC 3339"), "{e}");
        let e = parse_revoked("01 2026-06-01T00:00:00Z lost\n").unwrap_err();
        assert!(e.problem.contains("revocation reason \"lost\""), "{e}");
    }

    #[test]
    fn reason_codes_are_rfc5280() {
        let codes: Vec<u8> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, [0, 1, 4, 5]);
    }
}
