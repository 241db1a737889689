//! The IKE header [RFC 7296 § 3.1].
//!
//! ```text
//! Initiator SPI (8) | Responder SPI (8) | Next Payload | MjVer|MnVer | Exchange Type | Flags
//! | Message ID (4) | Length (4)
//! ```
//!
//! Reserved flag bits and the minor version "MUST be ignored on receipt": they are not kept,
//! and are sent as zero.

use super::error::Error;
use super::reader::Reader;
use super::types::{ExchangeType, PayloadType};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// The IKE version this codec speaks and sends.
pub const MAJOR_VERSION: u8 = 2;

/// The header flags [RFC 7296 § 3.1]; only the three defined bits are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// Set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// Set by an implementation that can speak a higher major version.
    pub const VERSION: Flags = Flags(0x10);
    /// Set in responses.
    pub const RESPONSE: Flags = Flags(0x20);
    const DEFINED: u8 = 0x38;

    /// The defined bits of a received flags octet; the others are ignored.
    pub fn from_bits_truncate(bits: u8) -> Flags {
        Flags(bits & Flags::DEFINED)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn initiator(self) -> bool {
        self.contains(Flags::INITIATOR)
    }

    pub fn response(self) -> bool {
        self.contains(Flags::RESPONSE)
    }

    pub fn version(self) -> bool {
        self.contains(Flags::VERSION)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Flags::INITIATOR, "I"),
            (Flags::RESPONSE, "R"),
            (Flags::VERSION, "V"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(fl, _)| self.contains(*fl))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Flags({})", set.join("|"))
    }
}

/// The fields of an IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub spi_i: u64,
    /// Zero in the first IKE_SA_INIT request.
    pub spi_r: u64,
    /// Type of the first payload; the builder sets it from the chain.
    pub next_payload: PayloadType,
    pub major_version: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Length of the whole message; the builder sets it.
    pub length: u32,
}

impl Header {
    /// A version 2.0 header; `next_payload` and `length` are filled in when the message is
    /// built.
    pub fn new(
        spi_i: u64,
        spi_r: u64,
        exchange: ExchangeType,
        flags: Flags,
        message_id: u32,
    ) -> Header {
        Header {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            major_version: MAJOR_VERSION,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    /// The header fields of `datagram` without checking version or length: what a caller
    /// needs to address an INVALID_MAJOR_VERSION answer. [`Header::parse`] is the check.
    pub fn read(datagram: &[u8]) -> Result<Header, Error> {
        let mut r = Reader::new(datagram);
        let fields = (|| {
            let spi_i = r.u64()?;
            let spi_r = r.u64()?;
            let next_payload = PayloadType(r.u8()?);
            let version = r.u8()?;
            let exchange = ExchangeType(r.u8()?);
            let flags = Flags::from_bits_truncate(r.u8()?);
            let message_id = r.u32()?;
            let length = r.u32()?;
            Some(Header {
                spi_i,
                spi_r,
                next_payload,
                major_version: version >> 4,
                exchange,
                flags,
                message_id,
                length,
            })
        })();
        fields.ok_or(Error::Truncated)
    }

    /// The header of a received datagram (without the non-ESP marker): major version 2
    /// [RFC 7296 § 2.5] and a Length equal to the datagram's [RFC 7296 § 3.1].
    pub fn parse(datagram: &[u8]) -> Result<Header, Error> {
        let h = Header::read(datagram)?;
        if h.major_version != MAJOR_VERSION {
            return Err(Error::MajorVersion(h.major_version));
        }
        if usize::try_from(h.length).ok() != Some(datagram.len()) {
            return Err(Error::LengthMismatch);
        }
        Ok(h)
    }

    /// The 28 header octets, as they are sent.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&self.spi_i.to_be_bytes());
        b[8..16].copy_from_slice(&self.spi_r.to_be_bytes());
        b[16] = self.next_payload.0;
        b[17] = self.major_version << 4;
        b[18] = self.exchange.0;
        b[19] = self.flags.bits();
        b[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        b[24..28].copy_from_slice(&self.length.to_be_bytes());
        b
    }
}

/// The four zero octets that precede an IKE message on port 4500, where ESP shares the port
/// [RFC 3948 § 2.2]; an ESP packet starts with a non-zero SPI instead.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The IKE message inside a datagram received on port 4500, or `None` if the datagram is not
/// one (an ESP packet, or too short to tell).
pub fn strip_non_esp_marker(datagram: &[u8]) -> Option<&[u8]> {
    datagram.strip_prefix(&NON_ESP_MARKER[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of the captured IKE_SA_INIT response (`tests/vectors/ipsec-ike-esp.pcap`).
    const SA_INIT_RESPONSE_HEADER: [u8; HEADER_LEN] = [
        0xdc, 0x89, 0x2e, 0x1b, 0x12, 0xb8, 0x66, 0x0d, 0x39, 0x19, 0xe8, 0xcb, 0xce, 0xdb, 0x88,
        0x9c, 0x21, 0x20, 0x22, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x29,
    ];

    fn datagram(header: &[u8], len: usize) -> Vec<u8> {
        let mut d = header.to_vec();
        d.resize(len, 0);
        d
    }

    #[test]
    fn parses_and_writes_the_captured_header() {
        let d = datagram(&SA_INIT_RESPONSE_HEADER, 297);
        let h = Header::parse(&d).unwrap();
        assert_eq!(h.spi_i, 0xdc89_2e1b_12b8_660d);
        assert_eq!(h.spi_r, 0x3919_e8cb_cedb_889c);
        assert_eq!(h.next_payload, PayloadType::SA);
        assert_eq!(h.exchange, ExchangeType::IKE_SA_INIT);
        assert!(h.flags.response() && !h.flags.initiator() && !h.flags.version());
        assert_eq!(h.message_id, 0);
        assert_eq!(h.length, 297);
        assert_eq!(h.to_bytes(), SA_INIT_RESPONSE_HEADER);
    }

    #[test]
    fn rejects_a_short_datagram_and_a_length_that_is_not_the_datagrams() {
        assert_eq!(
            Header::parse(&SA_INIT_RESPONSE_HEADER[..27]),
            Err(Error::Truncated)
        );
        assert_eq!(
            Header::parse(&datagram(&SA_INIT_RESPONSE_HEADER, 296)),
            Err(Error::LengthMismatch)
        );
        assert_eq!(
            Header::parse(&datagram(&SA_INIT_RESPONSE_HEADER, 298)),
            Err(Error::LengthMismatch)
        );
    }

    /// [RFC 7296 § 2.5]: a higher major version is answered with INVALID_MAJOR_VERSION, the
    /// minor version is ignored.
    #[test]
    fn rfc7296_2_5_checks_the_major_version_and_ignores_the_minor() {
        let mut h = SA_INIT_RESPONSE_HEADER;
        h[17] = 0x30;
        let d = datagram(&h, 297);
        assert_eq!(Header::parse(&d), Err(Error::MajorVersion(3)));
        assert_eq!(Header::read(&d).unwrap().spi_i, 0xdc89_2e1b_12b8_660d);
        h[17] = 0x10;
        assert_eq!(
            Header::parse(&datagram(&h, 297)),
            Err(Error::MajorVersion(1))
        );
        h[17] = 0x2f;
        let parsed = Header::parse(&datagram(&h, 297)).unwrap();
        assert_eq!(parsed.to_bytes()[17], 0x20, "minor version sent as zero");
    }

    /// [RFC 7296 § 3.1]: reserved flag bits "MUST be ignored on receipt".
    #[test]
    fn rfc7296_3_1_ignores_reserved_flags() {
        let mut h = SA_INIT_RESPONSE_HEADER;
        h[19] = 0xff;
        let parsed = Header::parse(&datagram(&h, 297)).unwrap();
        assert_eq!(
            parsed.flags,
            Flags::INITIATOR | Flags::RESPONSE | Flags::VERSION
        );
        assert_eq!(parsed.to_bytes()[19], 0x38);
    }

    #[test]
    fn strips_the_non_esp_marker_only() {
        assert_eq!(strip_non_esp_marker(&[0, 0, 0, 0, 9]), Some(&[9u8][..]));
        assert_eq!(strip_non_esp_marker(&[0, 0, 0, 1, 9]), None);
        assert_eq!(strip_non_esp_marker(&[0, 0]), None);
    }
}
