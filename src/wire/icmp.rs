//! ICMP message view [RFC 792]: the 8-byte header (type, code, checksum, rest of header)
//! and the data after it — the echo payload, or the quoted packet of an error.

use super::{checksum, Error};

pub const HEADER_LEN: usize = 8;

/// Byte offset of the checksum field within the ICMP header.
pub const CHECKSUM_OFFSET: usize = 2;

pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const TYPE_PARAMETER_PROBLEM: u8 = 12;

/// Destination unreachable code 4: fragmentation needed and DF set [RFC 1191 § 4].
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Whether `icmp_type` is one of the error messages ixgw forwards.
pub fn is_supported_error(icmp_type: u8) -> bool {
    matches!(
        icmp_type,
        TYPE_DEST_UNREACHABLE | TYPE_TIME_EXCEEDED | TYPE_PARAMETER_PROBLEM
    )
}

/// A view over an ICMP message. After [`IcmpPacket::new_checked`] succeeds, no getter panics.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the 8-byte header fits. The message extends to the end of the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(CHECKSUM_OFFSET)
    }

    /// Echo identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        self.read_u16(4)
    }

    /// Echo sequence number (bytes 6..8).
    pub fn echo_seq(&self) -> u16 {
        self.read_u16(6)
    }

    /// Next-hop MTU of a "fragmentation needed" message (bytes 6..8) [RFC 1191 § 4].
    pub fn next_hop_mtu(&self) -> u16 {
        self.read_u16(6)
    }

    /// The bytes after the header: the echo data, or an error's quoted packet.
    pub fn data(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[HEADER_LEN.min(b.len())..]
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(CHECKSUM_OFFSET, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        self.write_u16(4, v);
    }

    pub fn set_echo_seq(&mut self, v: u16) {
        self.write_u16(6, v);
    }

    /// Sets the 4 "rest of header" bytes (unused by most errors: zero).
    pub fn set_rest_of_header(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let start = HEADER_LEN.min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    fn write_u16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo request, ident 0x1234, seq 1, data "ping", checksum not yet filled.
    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn echo_getters_and_checksum() {
        let mut b = ECHO;
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.data(), b"ping");
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_ne!(p.checksum(), 0);
        p.set_echo_seq(2);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 8];
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(TYPE_DEST_UNREACHABLE);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_rest_of_header(1400);
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.data().is_empty());
        assert!(is_supported_error(p.msg_type()));
        assert!(!is_supported_error(TYPE_ECHO_REQUEST));
        assert!(!is_supported_error(5));
    }

    #[test]
    fn short_message_is_rejected() {
        assert_eq!(
            IcmpPacket::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
