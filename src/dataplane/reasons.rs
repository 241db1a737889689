//! The one place where the errors of the layers below become drop reasons: `wire` and `nat`
//! keep their own small `Copy` errors, and the pipeline counts each under one
//! `ixgw_drops_total` reason.

use crate::nat;
use crate::vocab::DropReason;
use crate::wire;

impl From<wire::Refusal> for DropReason {
    fn from(r: wire::Refusal) -> Self {
        match r {
            wire::Refusal::Malformed => DropReason::Malformed,
            wire::Refusal::Ipv6 => DropReason::Ipv6,
            wire::Refusal::Fragment => DropReason::Fragment,
            wire::Refusal::IcmpUnsupported => DropReason::IcmpUnsupported,
            wire::Refusal::IpOptions => DropReason::IpOptions,
        }
    }
}

impl From<nat::Error> for DropReason {
    fn from(e: nat::Error) -> Self {
        match e {
            nat::Error::Ttl => DropReason::Ttl,
            nat::Error::Unmapped => DropReason::NoRoute,
            nat::Error::Malformed => DropReason::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lower_error_has_its_own_reason() {
        for (refusal, reason) in [
            (wire::Refusal::Malformed, DropReason::Malformed),
            (wire::Refusal::Ipv6, DropReason::Ipv6),
            (wire::Refusal::Fragment, DropReason::Fragment),
            (wire::Refusal::IcmpUnsupported, DropReason::IcmpUnsupported),
            (wire::Refusal::IpOptions, DropReason::IpOptions),
        ] {
            assert_eq!(DropReason::from(refusal), reason);
        }
        assert_eq!(DropReason::from(nat::Error::Ttl), DropReason::Ttl);
        assert_eq!(DropReason::from(nat::Error::Unmapped), DropReason::NoRoute);
        assert_eq!(
            DropReason::from(nat::Error::Malformed),
            DropReason::Malformed
        );
        assert_eq!(
            DropReason::from(wire::Refusal::from(wire::Error::OptionLength)),
            DropReason::Malformed
        );
    }
}
