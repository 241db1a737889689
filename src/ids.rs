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
/// prefecture, one of point table (1 medical, 3 dental, 4 pharmacy) and seven of institution.
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
        s.parse()
            .map(FacilityCode)
            .map_err(|_| FacilityCodeError::NotDigits)
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
        let c = FacilityCode::parse("0112345678").unwrap();
        assert_eq!(c.to_string(), "0112345678");
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
    }
}
