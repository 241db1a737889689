//! Small handles and address newtypes shared by every layer.
//!
//! Handles are indices into the compiled [`crate::dataplane::Plan`]; they are only meaningful
//! together with the plan that issued them. Addresses of a tenant's own numbering
//! ([`InternalV4`]) and of the IX-wide exchange space ([`ExchangeV4`]) are different types so
//! that overlapping internal ranges of two tenants cannot be mixed up.

use std::fmt;
use std::net::Ipv4Addr;

macro_rules! handle {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl $name {
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

handle!(
    /// A tenant: one network with one address space.
    TenantId(u16)
);
handle!(
    /// An attachment: one way into a tenant (a WireGuard UDP port, a TUN device).
    AttachmentId(u16)
);
handle!(
    /// A tunnel peer, numbered across all attachments of a plan.
    PeerId(u32)
);
handle!(
    /// A facility: one distinct facility code among the plan's peers.
    FacilityId(u32)
);
handle!(
    /// A published service.
    ServiceId(u16)
);
handle!(
    /// A policy rule, in configuration order.
    RuleId(u16)
);

/// A 10-digit medical institution code (医療機関コード / 薬局コード): two digits of
/// prefecture (01–47), one of point table (点数表: 1 medical, 3 dental, 4 pharmacy, 6 home-visit
/// nursing) and seven of institution, the last of which is a check digit: the whole code passes
/// the Luhn check (weights 2, 1, 2, 1, … from the right over the nine digits before the check
/// digit, the digits of two-digit products added, check = (10 − sum mod 10) mod 10).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FacilityCode(u64);

/// Why a string is not a facility code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FacilityCodeError {
    #[error("must be exactly 10 digits (got {0} characters)")]
    Length(usize),
    #[error("must contain only the digits 0-9")]
    NotDigits,
    #[error("prefecture code {0:02} is not in 01..=47")]
    Prefecture(u8),
    #[error("point table digit {0} is not 1 (医科), 3 (歯科), 4 (調剤) or 6 (訪問看護)")]
    PointTable(u8),
    #[error("check digit is {got}, not {want}: with the right check digit the code is {fixed}")]
    CheckDigit { got: u8, want: u8, fixed: String },
}

impl FacilityCode {
    pub fn parse(s: &str) -> Result<Self, FacilityCodeError> {
        if s.len() != 10 {
            return Err(FacilityCodeError::Length(s.chars().count()));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FacilityCodeError::NotDigits);
        }
        let b = s.as_bytes();
        let pref = (b[0] - b'0') * 10 + (b[1] - b'0');
        if !(1..=47).contains(&pref) {
            return Err(FacilityCodeError::Prefecture(pref));
        }
        let table = b[2] - b'0';
        if !matches!(table, 1 | 3 | 4 | 6) {
            return Err(FacilityCodeError::PointTable(table));
        }
        let want = Self::check_digit(&b[..9]);
        let got = b[9] - b'0';
        if got != want {
            return Err(FacilityCodeError::CheckDigit {
                got,
                want,
                fixed: format!("{}{want}", &s[..9]),
            });
        }
        s.parse()
            .map(FacilityCode)
            .map_err(|_| FacilityCodeError::NotDigits)
    }

    /// The Luhn check digit of nine ASCII digits: weights 2, 1, 2, 1, … from the right, the
    /// digits of two-digit products added, (10 − sum mod 10) mod 10.
    pub fn check_digit(nine: &[u8]) -> u8 {
        let sum: u32 = nine
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                // Not a digit (callers check first): counted as 0, never a panic.
                let d = if d.is_ascii_digit() { d - b'0' } else { 0 };
                let p = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
                p / 10 + p % 10
            })
            .sum();
        ((10 - sum % 10) % 10) as u8
    }

    /// The prefecture number (1 = 北海道 .. 47 = 沖縄県).
    pub fn prefecture(self) -> u8 {
        (self.0 / 100_000_000) as u8
    }
}

impl fmt::Display for FacilityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// An IPv4 address in a tenant's own numbering.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InternalV4(pub Ipv4Addr);

/// An IPv4 address in the IX-wide exchange space.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeV4(pub Ipv4Addr);

impl fmt::Display for InternalV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ExchangeV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_code_keeps_leading_zero() {
        let c = FacilityCode::parse("0110113719").unwrap();
        assert_eq!(c.to_string(), "0110113719");
        assert_eq!(c.prefecture(), 1);
    }

    #[test]
    fn facility_code_rejects_bad_input() {
        assert_eq!(
            FacilityCode::parse("123"),
            Err(FacilityCodeError::Length(3))
        );
        assert_eq!(
            FacilityCode::parse("42123456x8"),
            Err(FacilityCodeError::NotDigits)
        );
        assert_eq!(
            FacilityCode::parse("4812345678"),
            Err(FacilityCodeError::Prefecture(48))
        );
        assert_eq!(
            FacilityCode::parse("0012345678"),
            Err(FacilityCodeError::Prefecture(0))
        );
        assert_eq!(
            FacilityCode::parse("4252345678"),
            Err(FacilityCodeError::PointTable(5))
        );
        let e = FacilityCode::parse("0110113710").unwrap_err();
        assert_eq!(
            e,
            FacilityCodeError::CheckDigit {
                got: 0,
                want: 9,
                fixed: "0110113719".into()
            }
        );
        assert!(e.to_string().contains("the code is 0110113719"), "{e}");
    }

    #[test]
    fn check_digit_is_luhn() {
        // The worked example, and codes of each point table.
        for code in [
            "0110113719",
            "4212345674",
            "4240123457",
            "1361234568",
            "4761234568",
        ] {
            assert!(FacilityCode::parse(code).is_ok(), "{code}");
        }
        // Luhn over the whole code is 0 mod 10 exactly when the check digit is right.
        proptest::proptest!(|(nine in 0u64..1_000_000_000)| {
            let nine = format!("{nine:09}");
            let want = FacilityCode::check_digit(nine.as_bytes());
            for d in 0..10u8 {
                let code = format!("{nine}{d}");
                let luhn: u32 = code.bytes().rev().enumerate().map(|(i, c)| {
                    let p = u32::from(c - b'0') * if i % 2 == 1 { 2 } else { 1 };
                    p / 10 + p % 10
                }).sum();
                proptest::prop_assert_eq!(luhn % 10 == 0, d == want);
            }
        });
    }
}
