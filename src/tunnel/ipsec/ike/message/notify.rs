//! Notify [RFC 7296 § 3.10] and Delete [RFC 7296 § 3.11] payloads, and the Notify Message
//! Types: error types below 16384, status types from 16384 on [RFC 7296 § 3.10.1].

use super::error::{len16, len8, EncodeError, Syntax};
use super::reader::Reader;
use super::types::{registry, DhGroup, HashAlgorithm, ProtocolId};

registry! {
    /// Notify Message Type [RFC 7296 § 3.10.1] and the IANA registry.
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,

        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// [RFC 4555].
        MOBIKE_SUPPORTED = 16396,
        ADDITIONAL_IP4_ADDRESS = 16397,
        ADDITIONAL_IP6_ADDRESS = 16398,
        NO_ADDITIONAL_ADDRESSES = 16399,
        UPDATE_SA_ADDRESSES = 16400,
        COOKIE2 = 16401,
        NO_NATS_ALLOWED = 16402,
        /// [RFC 4478].
        AUTH_LIFETIME = 16403,
        /// [RFC 4739].
        MULTIPLE_AUTH_SUPPORTED = 16404,
        ANOTHER_AUTH_FOLLOWS = 16405,
        /// [RFC 5685].
        REDIRECT_SUPPORTED = 16406,
        REDIRECT = 16407,
        REDIRECTED_FROM = 16408,
        /// [RFC 5998].
        EAP_ONLY_AUTHENTICATION = 16417,
        /// [RFC 6023].
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        /// [RFC 6311].
        IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420,
        /// [RFC 7383 § 2.3].
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// [RFC 7427 § 4].
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// Error types are below 16384 [RFC 7296 § 3.10.1].
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// A Notify payload [RFC 7296 § 3.10].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify<'a> {
    /// The SA the notification is about; [`ProtocolId::NONE`] with an empty SPI for the IKE SA.
    pub protocol: ProtocolId,
    pub notify_type: NotifyType,
    pub spi: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> Notify<'a> {
    /// A notification about the IKE SA: no protocol, no SPI.
    pub fn new(notify_type: NotifyType, data: &'a [u8]) -> Notify<'a> {
        Notify {
            protocol: ProtocolId::NONE,
            notify_type,
            spi: &[],
            data,
        }
    }

    pub(crate) fn parse(body: &'a [u8]) -> Result<Notify<'a>, Syntax> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8().ok_or(Syntax::BodyTooShort)?);
        let spi_size = r.u8().ok_or(Syntax::BodyTooShort)?;
        let notify_type = NotifyType(r.u16().ok_or(Syntax::BodyTooShort)?);
        let spi = r.take(usize::from(spi_size)).ok_or(Syntax::SpiLength)?;
        Ok(Notify {
            protocol,
            notify_type,
            spi,
            data: r.rest(),
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.protocol.0);
        out.push(len8(self.spi.len())?);
        out.extend_from_slice(&self.notify_type.0.to_be_bytes());
        out.extend_from_slice(self.spi);
        out.extend_from_slice(self.data);
        Ok(())
    }

    /// The group the responder asks for in INVALID_KE_PAYLOAD [RFC 7296 § 1.2], if this is
    /// one with two octets of data.
    pub fn accepted_group(&self) -> Option<DhGroup> {
        match (self.notify_type, self.data) {
            (NotifyType::INVALID_KE_PAYLOAD, &[hi, lo]) => {
                Some(DhGroup(u16::from_be_bytes([hi, lo])))
            }
            _ => None,
        }
    }

    /// The hash algorithms of SIGNATURE_HASH_ALGORITHMS [RFC 7427 § 4], if this is one with a
    /// whole number of 2-octet entries.
    pub fn hash_algorithms(&self) -> Option<impl Iterator<Item = HashAlgorithm> + 'a> {
        if self.notify_type != NotifyType::SIGNATURE_HASH_ALGORITHMS || self.data.len() % 2 != 0 {
            return None;
        }
        Some(
            self.data
                .chunks_exact(2)
                .map(|c| HashAlgorithm(u16::from_be_bytes([c[0], c[1]]))),
        )
    }
}

/// A Delete payload [RFC 7296 § 3.11]: for the IKE SA no SPI, for ESP and AH 4-octet SPIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    pub protocol: ProtocolId,
    pub spi_size: u8,
    /// The SPIs, concatenated (`spi_size` octets each).
    pub spis: &'a [u8],
}

impl<'a> Delete<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Delete<'a>, Syntax> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8().ok_or(Syntax::BodyTooShort)?);
        let spi_size = r.u8().ok_or(Syntax::BodyTooShort)?;
        let count = r.u16().ok_or(Syntax::BodyTooShort)?;
        let spis = r.rest();
        if spis.len() != usize::from(spi_size) * usize::from(count) || (spi_size == 0 && count != 0)
        {
            return Err(Syntax::SpiLength);
        }
        Ok(Delete {
            protocol,
            spi_size,
            spis,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let count = match self.spi_size {
            0 if self.spis.is_empty() => 0,
            0 => return Err(EncodeError::Inconsistent),
            n if self.spis.len() % usize::from(n) == 0 => self.spis.len() / usize::from(n),
            _ => return Err(EncodeError::Inconsistent),
        };
        out.push(self.protocol.0);
        out.push(self.spi_size);
        out.extend_from_slice(&len16(count)?.to_be_bytes());
        out.extend_from_slice(self.spis);
        Ok(())
    }

    /// The SPIs, one slice each.
    pub fn spis(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let size = usize::from(self.spi_size).max(1);
        let spis = if self.spi_size == 0 {
            &[][..]
        } else {
            self.spis
        };
        spis.chunks_exact(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_captured_signature_hash_algorithms() {
        // From the captured IKE_SA_INIT request: SHA2-256, -384, -512, Identity.
        let body = [
            0x00, 0x00, 0x40, 0x2f, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x00, 0x05,
        ];
        let n = Notify::parse(&body).unwrap();
        assert_eq!(
            n,
            Notify::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, &body[4..])
        );
        let algs: Vec<_> = n.hash_algorithms().unwrap().collect();
        assert_eq!(
            algs,
            [
                HashAlgorithm::SHA2_256,
                HashAlgorithm::SHA2_384,
                HashAlgorithm::SHA2_512,
                HashAlgorithm::IDENTITY
            ]
        );
        let mut out = Vec::new();
        n.encode_body(&mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn notify_with_an_esp_spi_and_invalid_ke() {
        let body = [3, 4, 0x40, 0x09, 0xc2, 0x1c, 0x3a, 0x05];
        let n = Notify::parse(&body).unwrap();
        assert_eq!(n.protocol, ProtocolId::ESP);
        assert_eq!(n.notify_type, NotifyType::REKEY_SA);
        assert_eq!(n.spi, &[0xc2, 0x1c, 0x3a, 0x05]);
        assert!(n.data.is_empty());
        assert!(!n.notify_type.is_error());
        assert_eq!(Notify::parse(&body[..7]), Err(Syntax::SpiLength));
        assert_eq!(Notify::parse(&body[..3]), Err(Syntax::BodyTooShort));

        let ke = Notify::parse(&[0, 0, 0, 17, 0, 19]).unwrap();
        assert!(ke.notify_type.is_error());
        assert_eq!(ke.accepted_group(), Some(DhGroup::ECP_256));
        assert_eq!(ke.hash_algorithms().map(|_| ()), None);
    }

    #[test]
    fn delete_counts_must_match_the_spis() {
        let esp = [3, 4, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        let d = Delete::parse(&esp).unwrap();
        assert_eq!(d.spis().collect::<Vec<_>>(), [&[1, 2, 3, 4], &[5, 6, 7, 8]]);
        let mut out = Vec::new();
        d.encode_body(&mut out).unwrap();
        assert_eq!(out, esp);
        assert_eq!(Delete::parse(&esp[..11]), Err(Syntax::SpiLength));
        assert_eq!(
            Delete::parse(&[3, 4, 0, 3, 1, 2, 3, 4]),
            Err(Syntax::SpiLength)
        );
        assert_eq!(Delete::parse(&[1, 0, 0, 1]), Err(Syntax::SpiLength));

        let ike = Delete::parse(&[1, 0, 0, 0]).unwrap();
        assert_eq!(ike.spis().count(), 0);
        let bad = Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: &[1, 2, 3],
        };
        assert_eq!(bad.encode_body(&mut out), Err(EncodeError::Inconsistent));
    }
}
