//! A small lab CA for facility certificates (`ixgw ca`): a root or intermediate CA, facility
//! end entities and CRLs, made with rcgen over ring.
//!
//! A control-plane tool: nothing on the data path imports it, and it imports only [`crate::ids`]
//! (facility codes), [`crate::tunnel::wireguard::keys`] and [`crate::crypto`]'s randomness.
//! [`cert`] and [`crl`] make certificates and CRLs from their parameters — the dates come in
//! as values, no clock is read; [`store`] keeps a CA in a directory and writes every file
//! atomically.
//!
//! The conventions the facility verifier relies on:
//! * a facility certificate names its 10-digit facility code in both the subject's
//!   `serialNumber` attribute (2.5.4.5, PrintableString) and a SAN URI
//!   `urn:ixgw:facility:CODE`;
//! * each WireGuard public key it vouches for is a SAN URI `urn:ixgw:wireguard-key:BASE64`
//!   (standard base64 with padding, as `wg(8)` prints it);
//! * subject `C=JP, O=<the CA's O>, CN=<name>, serialNumber=<code>`; not a CA, keyUsage
//!   digitalSignature, extendedKeyUsage serverAuth and clientAuth, a random positive 128-bit
//!   serial, the issuer's key identifier.

#![forbid(unsafe_code)]

pub mod cert;
pub mod crl;
pub mod store;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ids::{FacilityCode, FacilityCodeError};
use crate::tunnel::wireguard::keys::{self, KeyError};

pub use cert::{Authority, CaRequest, Issued, KeyType, LeafRequest, Serial, Validity};
pub use crl::{Reason, Revoked};
pub use store::StoreError;

/// The SAN URI prefix naming a certificate's facility code.
pub const FACILITY_URN: &str = "urn:ixgw:facility:";
/// The SAN URI prefix naming a WireGuard public key the certificate vouches for.
pub const WIREGUARD_URN: &str = "urn:ixgw:wireguard-key:";
/// X.520 `serialNumber` [RFC 4519 § 2.31], which holds the facility code in the subject.
pub const SERIAL_NUMBER_OID: [u64; 4] = [2, 5, 4, 5];
/// The subject's `O` when `ca init` is given no `--org`.
pub const DEFAULT_ORG: &str = "ixgw lab";

/// An operator's value that cannot be used; each names the value and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("facility code {value:?}: {reason}")]
    Facility {
        value: String,
        reason: FacilityCodeError,
    },
    #[error("WireGuard public key {value:?}: {reason}")]
    WireGuardKey { value: String, reason: KeyError },
    #[error("DNS name {0:?}: not a valid DNS name")]
    Dns(String),
    #[error("e-mail address {0:?}: want LOCAL@DOMAIN in ASCII, without spaces")]
    Email(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("time {0:?}: not RFC 3339 after 1970 (e.g. 2026-04-01T09:00:00+09:00)")]
    Time(String),
    #[error("duration {0:?}: want a positive number and a unit s, m, h or d (e.g. 7d, 1h, 30s)")]
    Duration(String),
    #[error("revocation reason {0:?}: one of {reasons}", reasons = Reason::NAMES.join(", "))]
    Reason(String),
    #[error(
        "key type {0:?}: one of ec256, ec384, ed25519 (ring, rcgen's backend, cannot generate RSA keys)"
    )]
    KeyType(String),
    #[error("notAfter {not_after} is not after notBefore {not_before}")]
    Validity {
        not_before: String,
        not_after: String,
    },
    #[error("a date past the year 9999")]
    OutOfRange,
}

/// A facility code (`--facility`), checked by [`FacilityCode::parse`].
pub fn facility(value: &str) -> Result<FacilityCode, InputError> {
    FacilityCode::parse(value).map_err(|reason| InputError::Facility {
        value: value.to_owned(),
        reason,
    })
}

/// A WireGuard public key (`--wireguard-key`): 44 characters of standard base64, 32 bytes.
pub fn wireguard_key(value: &str) -> Result<[u8; 32], InputError> {
    keys::decode(value).map_err(|reason| InputError::WireGuardKey {
        value: value.to_owned(),
        reason,
    })
}

/// An RFC 3339 time (`--not-before`, `--not-after`, `--this-update`), to the second.
pub fn time(value: &str) -> Result<SystemTime, InputError> {
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| InputError::Time(value.into()))?;
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| InputError::Time(value.into()))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// A duration (`--next-update`): a positive number and a unit, `s`, `m`, `h` or `d`.
pub fn duration(value: &str) -> Result<Duration, InputError> {
    let bad = || InputError::Duration(value.into());
    let split = value.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = value.split_at_checked(split).ok_or_else(bad)?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    match n.checked_mul(unit) {
        Some(secs) if secs > 0 && secs <= MAX_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(bad()),
    }
}

/// 9999-12-31T23:59:59Z, the last second X.509's GeneralizedTime can hold.
const MAX_SECS: u64 = 253_402_300_799;

/// `t` in RFC 3339, UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    offset(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{t:?}"))
}

/// `t` for rcgen, to the second (rcgen drops fractions; so do we, to compare).
pub(crate) fn offset(t: SystemTime) -> Result<OffsetDateTime, InputError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| InputError::OutOfRange)?
        .as_secs();
    if secs > MAX_SECS {
        return Err(InputError::OutOfRange);
    }
    OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|_| InputError::OutOfRange)
}

/// `t + d`, refused past the year 9999.
pub(crate) fn add(t: SystemTime, d: Duration) -> Result<SystemTime, InputError> {
    let sum = t.checked_add(d).ok_or(InputError::OutOfRange)?;
    offset(sum).map(|_| sum)
}

impl FromStr for Reason {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| InputError::Reason(s.into()))
    }
}

impl FromStr for KeyType {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ec256" => Ok(KeyType::Ec256),
            "ec384" => Ok(KeyType::Ec384),
            "ed25519" => Ok(KeyType::Ed25519),
            _ => Err(InputError::KeyType(s.into())),
        }
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn facility_codes_are_checked_with_the_ids_message() {
        assert_eq!(facility("0110113719").unwrap().to_string(), "0110113719");
        let e = facility("0110113710").unwrap_err().to_string();
        assert_eq!(
            e,
            "facility code \"0110113710\": check digit is 0, not 9: with the right check digit \
             the code is 0110113719"
        );
        let e = facility("123").unwrap_err().to_string();
        assert!(e.contains("exactly 10 digits"), "{e}");
    }

    #[test]
    fn wireguard_keys_must_be_32_bytes_of_base64() {
        let k = "p0mbFSQrKQTLNp2Q614GfjZTSOck/QMsxhb2mYiyIDQ=";
        assert_eq!(keys::encode(&wireguard_key(k).unwrap()), k);
        let e = wireguard_key("abc").unwrap_err().to_string();
        assert_eq!(
            e,
            "WireGuard public key \"abc\": a key is 44 base64 characters, got 3"
        );
        // 44 characters that decode to 33 bytes.
        let e = wireguard_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("not valid base64"), "{e}");
    }

    #[test]
    fn times_are_rfc3339_to_the_second() {
        let t = time("2026-04-01T09:00:00+09:00").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_775_001_600));
        assert_eq!(rfc3339(t), "2026-04-01T00:00:00Z");
        assert_eq!(
            time("2026-04-01T00:00:00.75Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_775_001_600)
        );
        for bad in ["2026-04-01", "yesterday", "1969-12-31T23:59:59Z", ""] {
            assert_eq!(time(bad), Err(InputError::Time(bad.into())), "{bad}");
        }
    }

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        for bad in [
            "",
            "7",
            "d",
            "0s",
            "-1h",
            "1w",
            "1.5h",
            "99999999999999999d",
            "7 d",
        ] {
            assert_eq!(
                duration(bad),
                Err(InputError::Duration(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn reasons_and_key_types_by_name() {
        for r in Reason::ALL {
            assert_eq!(r.name().parse::<Reason>(), Ok(r));
        }
        let e = "compromised".parse::<Reason>().unwrap_err().to_string();
        assert!(e.contains("key-compromise, superseded"), "{e}");
        assert_eq!("ed25519".parse::<KeyType>(), Ok(KeyType::Ed25519));
        let e = "rsa2048".parse::<KeyType>().unwrap_err().to_string();
        assert!(e.contains("cannot generate RSA"), "{e}");
    }
}
