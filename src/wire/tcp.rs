//! TCP header view [RFC 9293 § 3.1], with the MSS option [RFC 9293 § 3.7.1].

use std::net::Ipv4Addr;

use super::{checksum, Error, PROTO_TCP};

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_PSH: u8 = 0x08;
pub const FLAG_ACK: u8 = 0x10;
pub const FLAG_URG: u8 = 0x20;

pub const OPT_END: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Byte offset of the checksum field within the TCP header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view over a TCP segment. After [`TcpPacket::new_checked`] succeeds, no getter panics.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed header fits, the data offset is at least 5 words, and the header
    /// with its options fits.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::HeaderLen);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    pub fn seq_number(&self) -> u32 {
        self.read_u32(field::SEQ)
    }

    pub fn ack_number(&self) -> u32 {
        self.read_u32(field::ACK)
    }

    /// The header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flag byte (CWR ECE URG ACK PSH RST SYN FIN); see the `FLAG_*` constants.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn syn(&self) -> bool {
        self.flags() & FLAG_SYN != 0
    }

    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    pub fn options(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let hl = self.header_len().min(b.len());
        &b[HEADER_LEN.min(hl)..hl]
    }

    /// The offsets of the 16-bit values of every well-formed MSS option (kind 2, length 4),
    /// from the start of the TCP header, in order. See [`next_mss_value`].
    pub fn mss_value_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let options = self.options();
        let mut pos = 0;
        std::iter::from_fn(move || next_mss_value(options, &mut pos)).map(|at| HEADER_LEN + at)
    }

    /// The value of the last MSS option, the one Linux acts on when a SYN carries several.
    pub fn mss(&self) -> Option<u16> {
        self.mss_value_offsets().last().map(|at| self.read_u16(at))
    }

    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len().min(b.len())..]
    }

    /// Whether the checksum is correct for this segment between `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::transport(src, dst, PROTO_TCP, self.buffer.as_ref()) == 0
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn read_u32(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
}

/// Walks `options` (a TCP header's option list [RFC 9293 § 3.1]) from `*pos` to the next
/// well-formed MSS option [RFC 9293 § 3.7.1] and returns the offset of its value within
/// `options`, leaving `*pos` after that option. END, a missing length, a length below 2 or
/// one running past the list ends the walk (`None`, and `*pos` at the end): the options
/// before it were read, as Linux reads them.
/// Taking a position rather than borrowing lets a caller rewrite each value as it is found.
pub fn next_mss_value(options: &[u8], pos: &mut usize) -> Option<usize> {
    while let Some(&kind) = options.get(*pos) {
        let i = *pos;
        match kind {
            OPT_END => break,
            OPT_NOP => *pos += 1,
            _ => {
                let len = options.get(i + 1).map_or(0, |&l| usize::from(l));
                if len < 2 || len > options.len() - i {
                    break;
                }
                *pos += len;
                if kind == OPT_MSS && len == 4 {
                    return Some(i + 2);
                }
            }
        }
    }
    *pos = options.len();
    None
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.write(field::SRC_PORT, &v.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.write(field::DST_PORT, &v.to_be_bytes());
    }

    pub fn set_seq_number(&mut self, v: u32) {
        self.write(field::SEQ, &v.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, v: u32) {
        self.write(field::ACK, &v.to_be_bytes());
    }

    /// Sets the header length in bytes (a multiple of 4 in 20..=60).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = (((len / 4) & 0x0f) as u8) << 4;
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    pub fn set_window_len(&mut self, v: u16) {
        self.write(field::WINDOW, &v.to_be_bytes());
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.write(field::CHECKSUM, &v.to_be_bytes());
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        self.write(field::URGENT, &v.to_be_bytes());
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len().min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[HEADER_LEN.min(hl)..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len().min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Recomputes the checksum from scratch for a segment between `src` and `dst`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::transport(src, dst, PROTO_TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }

    fn write(&mut self, at: usize, v: &[u8]) {
        self.buffer.as_mut()[at..at + v.len()].copy_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SYN 1234 → 80, seq 1, option MSS 1460, 3 bytes payload.
    const SEGMENT: [u8; 27] = [
        0x04, 0xd2, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xff,
        0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, b'a', b'b', b'c',
    ];

    #[test]
    fn getters() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 1234);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), FLAG_SYN);
        assert!(p.syn());
        assert_eq!(p.window_len(), 0xffff);
        assert_eq!(p.options(), &[2, 4, 0x05, 0xb4]);
        assert!(p.mss_value_offsets().eq([22]));
        assert_eq!(p.mss(), Some(1460));
        assert_eq!(p.payload(), b"abc");
    }

    #[test]
    fn mss_option_after_nops_is_found_at_its_offset() {
        let mut b = [0u8; 28];
        b[12] = 0x70;
        b[20..28].copy_from_slice(&[1, 1, 1, 2, 4, 0x05, 0xb4, 0]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(p.mss_value_offsets().eq([25]));
        assert_eq!(p.mss(), Some(1460));
    }

    #[test]
    fn malformed_options_yield_no_mss() {
        let mut b = [0u8; 24];
        b[12] = 0x60;
        b[20..24].copy_from_slice(&[8, 9, 2, 4]);
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap().mss(), None);
        b[20..24].copy_from_slice(&[2, 0, 2, 4]);
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap().mss(), None);
        b[20..24].copy_from_slice(&[0, 0, 2, 4]);
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap().mss(), None);
        b[20..24].copy_from_slice(&[1, 1, 2, 4]);
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap().mss(), None);
    }

    #[test]
    fn every_mss_option_is_found_and_the_last_one_counts() {
        let mut b = [0u8; 36];
        b[12] = 0x90;
        // MSS 1460 at 22, NOP, MSS 1400 at 27, window scale, MSS 1300 at 34.
        b[20..36].copy_from_slice(&[
            2, 4, 0x05, 0xb4, 1, 2, 4, 0x05, 0x78, 3, 3, 7, 2, 4, 0x05, 0x14,
        ]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(p.mss_value_offsets().eq([22, 27, 34]));
        assert_eq!(p.mss(), Some(1300));
        // A malformed option ends the walk; the MSS options before it were read.
        b[29..31].copy_from_slice(&[9, 0]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(p.mss_value_offsets().eq([22, 27]));
        assert_eq!(p.mss(), Some(1400));
        // MSS options of another length are not MSS options.
        let mut pos = 0;
        assert_eq!(next_mss_value(&[2, 3, 5, 2, 4, 1, 0], &mut pos), Some(5));
        assert_eq!(next_mss_value(&[2, 3, 5, 2, 4, 1, 0], &mut pos), None);
        // A kind without its length octet ends the walk for good.
        let mut pos = 0;
        assert_eq!(next_mss_value(&[1, 1, 1, 2], &mut pos), None);
        assert_eq!(pos, 4);
    }

    #[test]
    fn setters_and_checksum() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut b = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_header_len(24);
        p.set_src_port(40000);
        p.set_dst_port(443);
        p.set_seq_number(0xdead_beef);
        p.set_ack_number(7);
        p.set_flags(FLAG_SYN | FLAG_ACK);
        p.set_window_len(1000);
        p.options_mut().copy_from_slice(&[2, 4, 0x05, 0x64]);
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(src, Ipv4Addr::new(10, 0, 0, 3)));
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()),
            (40000, 443, 0xdead_beef, 7)
        );
        assert_eq!(p.mss(), Some(1380));
    }

    #[test]
    fn bad_lengths_are_rejected() {
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut b = SEGMENT;
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::HeaderLen
        );
        b[12] = 0xf0;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }
}
