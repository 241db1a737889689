//! UDP header view [RFC 768].

use std::net::Ipv4Addr;

use super::{checksum, Error, PROTO_UDP};

pub const HEADER_LEN: usize = 8;

/// Byte offset of the checksum field within the UDP header.
pub const CHECKSUM_OFFSET: usize = 6;

/// A view over a UDP datagram. After [`UdpPacket::new_checked`] succeeds, no getter panics.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header fits and the length field covers the header and fits in the
    /// buffer. The first fragment of a fragmented datagram fails this (its length field
    /// counts every fragment): check it with [`Self::check_header_len`] instead.
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header_len()?;
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Length);
        }
        if len > self.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Checks only that the 8-byte header fits.
    pub fn check_header_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        self.read_u16(0)
    }

    pub fn dst_port(&self) -> u16 {
        self.read_u16(2)
    }

    /// The length field: header and payload in bytes.
    pub fn len(&self) -> u16 {
        self.read_u16(4)
    }

    /// Whether the length field is zero (never true of a valid datagram).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checksum; 0 means the sender computed none.
    pub fn checksum(&self) -> u16 {
        self.read_u16(CHECKSUM_OFFSET)
    }

    /// The payload up to the length field (trailing bytes beyond it excluded).
    pub fn payload(&self) -> &[u8] {
        let (s, e) = self.payload_range();
        &self.buffer.as_ref()[s..e]
    }

    /// Whether the checksum is absent (0) or correct for a datagram between `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = self.buffer.as_ref();
        let end = usize::from(self.len()).min(b.len());
        checksum::transport(src, dst, PROTO_UDP, &b[..end]) == 0
    }

    fn payload_range(&self) -> (usize, usize) {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.len()).min(len);
        (HEADER_LEN.min(end), end)
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.write_u16(0, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.write_u16(2, v);
    }

    pub fn set_len(&mut self, v: u16) {
        self.write_u16(4, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(CHECKSUM_OFFSET, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (s, e) = self.payload_range();
        &mut self.buffer.as_mut()[s..e]
    }

    /// Computes the checksum from scratch; a computed 0 is sent as 0xFFFF [RFC 768].
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let end = usize::from(self.len()).min(self.buffer.as_ref().len());
        let c = checksum::transport(src, dst, PROTO_UDP, &self.buffer.as_ref()[..end]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    fn write_u16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5353 → 53, length 11, checksum 0, "abc", then 2 bytes beyond the length field.
    const DATAGRAM: [u8; 13] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, b'a', b'b', b'c', 0xee, 0xee,
    ];

    #[test]
    fn getters() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5353);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 11);
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.payload(), b"abc");
    }

    #[test]
    fn fill_and_verify_checksum() {
        let src = Ipv4Addr::new(10, 1, 2, 3);
        let dst = Ipv4Addr::new(10, 4, 5, 6);
        let mut b = DATAGRAM;
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum(src, dst), "absent checksum passes");
        p.set_src_port(1);
        p.set_dst_port(2);
        p.payload_mut()[0] = b'z';
        p.fill_checksum(src, dst);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(dst, Ipv4Addr::new(10, 4, 5, 7)));
        assert_eq!(&b[8..11], b"zbc");
        assert_eq!(b[11], 0xee);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last payload word so that the sum of all words is 0xFFFF.
        let src = Ipv4Addr::new(0, 0, 0, 0);
        let dst = Ipv4Addr::new(0, 0, 0, 0);
        let mut b = [0u8; 10];
        b[5] = 10;
        let partial = checksum::add(checksum::pseudo_header(src, dst, PROTO_UDP, 10), 10);
        b[8..10].copy_from_slice(&(!partial).to_be_bytes());
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(src, dst);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(src, dst));
    }

    #[test]
    fn bad_lengths_are_rejected() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..10]).unwrap_err(),
            Error::Truncated
        );
        assert!(UdpPacket::new_unchecked(&DATAGRAM[..10])
            .check_header_len()
            .is_ok());
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap_err(), Error::Length);
    }
}
