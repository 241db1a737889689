//! Why a message did not parse, as one small `Copy` value: garbage costs no allocation, and
//! each error says what, if anything, goes back to the peer (rustls' `PeerMisbehaved` →
//! `AlertDescription`, here → IKE Notify type).

use super::notify::NotifyType;
use super::types::PayloadType;

/// A message, payload chain or payload that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the IKE header [RFC 7296 § 3.1].
    #[error("shorter than the IKE header")]
    Truncated,
    /// The header's Length differs from the datagram's length [RFC 7296 § 3.1].
    #[error("IKE header length differs from the datagram length")]
    LengthMismatch,
    /// A major version other than 2 [RFC 7296 § 2.5].
    #[error("IKE major version {0}")]
    MajorVersion(u8),
    /// A payload type this codec does not know, with the critical bit set [RFC 7296 § 2.5].
    #[error("unsupported critical payload {0:?}")]
    UnsupportedCriticalPayload(PayloadType),
    /// A type, length or value out of range in a payload of type `payload` (NONE: the chain
    /// itself) [RFC 7296 § 3.10.1, INVALID_SYNTAX].
    #[error("invalid syntax in {payload:?}: {reason:?}")]
    InvalidSyntax {
        payload: PayloadType,
        reason: Syntax,
    },
}

/// What exactly was out of range, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// A generic payload header whose length is below 4 or beyond the end of the chain.
    PayloadLength,
    /// Bytes after the payload whose Next Payload is 0.
    TrailingBytes,
    /// A payload body shorter than its fixed fields.
    BodyTooShort,
    /// An Encrypted (or Encrypted Fragment) payload that is not the last payload, or one
    /// inside a decrypted chain [RFC 7296 § 3.14].
    EncryptedPlacement,
    /// An SA payload without a proposal.
    NoProposal,
    /// A proposal or transform length below its header or beyond its container.
    SubstructureLength,
    /// A last-substructure field that is neither "more" (2 for proposals, 3 for transforms)
    /// nor 0, or that disagrees with where the container ends [RFC 7296 § 3.3.1, § 3.3.2].
    LastSubstructure,
    /// Proposal numbers not 1, 2, 3, ... [RFC 7296 § 3.3.1].
    ProposalNumber,
    /// An SPI size other than 0 or 8 for IKE, other than 4 for AH or ESP [RFC 7296 § 3.3.1].
    SpiSize,
    /// A "# of Transforms" that is not the number of transforms that follow.
    TransformCount,
    /// A transform attribute running past its transform, or Key Length not in TV format
    /// [RFC 7296 § 3.3.5].
    Attribute,
    /// A nonce outside 16..=256 octets [RFC 7296 § 3.9].
    NonceLength,
    /// An identification whose data does not fit its type (an IPv4 address not 4 octets).
    IdLength,
    /// A CERTREQ of X.509 certificates whose authority list is not a multiple of 20 octets
    /// [RFC 7296 § 3.7].
    CertReqLength,
    /// An RFC 7427 signature whose AlgorithmIdentifier does not parse [RFC 7427 § 3].
    SignatureAuth,
    /// A Notify SPI or Delete SPI list that does not fit the payload [RFC 7296 § 3.10, § 3.11].
    SpiLength,
    /// A TS payload with no selector or a "Number of TSs" that is not the number of selectors.
    SelectorCount,
    /// A selector length that does not fit its type (16 for IPv4, 40 for IPv6) or its
    /// payload [RFC 7296 § 3.13.1].
    SelectorLength,
    /// A configuration attribute running past its payload [RFC 7296 § 3.15.1].
    CfgAttribute,
    /// A fragment number of 0 or above the total [RFC 7383 § 2.5].
    FragmentNumber,
    /// Pad Length beyond the decrypted content [RFC 7296 § 3.14].
    Padding,
}

/// Why a message or payload could not be built. Building is for messages of our own making,
/// so these are programming or configuration errors, not a peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field longer than its length field can say (a payload over 65535 octets, an SPI over
    /// 255).
    #[error("a field is longer than its length field can say")]
    TooLong,
    /// Fields that contradict each other (a Delete SPI list that is not a multiple of the SPI
    /// size, a fragment number of 0).
    #[error("inconsistent payload fields")]
    Inconsistent,
    /// A payload after the Encrypted payload, which must be last [RFC 7296 § 3.14].
    #[error("a payload follows the Encrypted payload")]
    AfterEncrypted,
}

/// `n` as a one-octet length field.
pub(crate) fn len8(n: usize) -> Result<u8, EncodeError> {
    u8::try_from(n).map_err(|_| EncodeError::TooLong)
}

/// `n` as a two-octet length field.
pub(crate) fn len16(n: usize) -> Result<u16, EncodeError> {
    u16::try_from(n).map_err(|_| EncodeError::TooLong)
}

impl Error {
    pub(crate) fn syntax(payload: PayloadType, reason: Syntax) -> Error {
        Error::InvalidSyntax { payload, reason }
    }

    /// The Notify type to answer with, or `None` when the message is dropped without an
    /// answer (counted by the caller).
    ///
    /// * Header errors (truncation, a length that is not the datagram's, an older major
    ///   version) are not answered: nothing in such a datagram can be trusted to address a
    ///   reply.
    /// * A higher major version is answered with INVALID_MAJOR_VERSION, unprotected, carrying
    ///   our version in the header [RFC 7296 § 2.5].
    /// * An unknown critical payload is answered with UNSUPPORTED_CRITICAL_PAYLOAD, whose data
    ///   is the one-octet payload type ([`Error::UnsupportedCriticalPayload`]) [RFC 7296 § 2.5].
    /// * Anything else is INVALID_SYNTAX, which may only be sent protected, for a message whose
    ///   Message ID and integrity check were valid [RFC 7296 § 3.10.1]: the caller answers it
    ///   only for errors in decrypted content and drops the rest.
    pub fn notify(self) -> Option<NotifyType> {
        match self {
            Error::Truncated | Error::LengthMismatch => None,
            Error::MajorVersion(v) if v > 2 => Some(NotifyType::INVALID_MAJOR_VERSION),
            Error::MajorVersion(_) => None,
            Error::UnsupportedCriticalPayload(_) => Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD),
            Error::InvalidSyntax { .. } => Some(NotifyType::INVALID_SYNTAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_notify_that_answers_them() {
        assert_eq!(Error::Truncated.notify(), None);
        assert_eq!(Error::LengthMismatch.notify(), None);
        assert_eq!(Error::MajorVersion(1).notify(), None);
        assert_eq!(
            Error::MajorVersion(3).notify(),
            Some(NotifyType::INVALID_MAJOR_VERSION)
        );
        assert_eq!(
            Error::UnsupportedCriticalPayload(PayloadType(200)).notify(),
            Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD)
        );
        assert_eq!(
            Error::syntax(PayloadType::TSI, Syntax::SelectorLength).notify(),
            Some(NotifyType::INVALID_SYNTAX)
        );
        assert!(std::mem::size_of::<Error>() <= 4);
    }
}
