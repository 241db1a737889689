//! IPv4 header view [RFC 791 § 3.1], with a walker over the header's options.

use std::net::Ipv4Addr;

use super::{checksum, Error};

/// The length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use std::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Option types [RFC 791 § 3.1]: the whole type octet (copied flag, class and number).
pub const OPT_END: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_RECORD_ROUTE: u8 = 7;
pub const OPT_TIMESTAMP: u8 = 68;
pub const OPT_LOOSE_SOURCE_ROUTE: u8 = 131;
pub const OPT_STRICT_SOURCE_ROUTE: u8 = 137;
pub const OPT_ROUTER_ALERT: u8 = 148;

/// The timestamp option's flag for "timestamps only"; 1 and 3 make it carry addresses
/// [RFC 791 § 3.1, Internet Timestamp].
const TIMESTAMP_ONLY: u8 = 0;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet. After [`Ipv4Packet::new_checked`] succeeds, no getter panics.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the version is 4, the header length is at least 20 bytes and fits, and the
    /// total length covers the header and fits in the buffer (which may hold padding beyond).
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Version);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::HeaderLen);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::Length);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT.start)
    }

    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC.start)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST.start)
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len().min(self.buffer.as_ref().len());
        checksum::checksum(&self.buffer.as_ref()[..hl]) == 0
    }

    /// The options between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let hl = self.header_len().min(b.len());
        &b[HEADER_LEN.min(hl)..hl]
    }

    /// The options one by one, as [`Options`] reads them.
    pub fn iter_options(&self) -> Options<'_> {
        Options {
            rest: self.options(),
        }
    }

    /// The bytes after the header up to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        let (start, end) = self.payload_range();
        &self.buffer.as_ref()[start..end]
    }

    fn payload_range(&self) -> (usize, usize) {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.total_len()).min(len);
        (self.header_len().min(end), end)
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4 in 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ihl;
    }

    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    pub fn set_total_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH.start, len);
    }

    pub fn set_ident(&mut self, ident: u16) {
        self.write_u16(field::IDENT.start, ident);
    }

    /// Sets DF, MF and the fragment offset in bytes (rounded down to 8-byte units).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        self.write_u16(field::FLG_OFF.start, v);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        self.write_u16(field::CHECKSUM.start, checksum);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.octets());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len().min(self.buffer.as_ref().len());
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.payload_range();
        &mut self.buffer.as_mut()[start..end]
    }

    /// The header and the payload at once, both mutable.
    pub fn split_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let (start, end) = self.payload_range();
        let (h, rest) = self.buffer.as_mut()[..end].split_at_mut(start);
        (h, rest)
    }

    fn write_u16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// One option of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The type octet.
    pub kind: u8,
    /// The octets after type and length (empty for the one-octet END and NOP).
    pub data: &'a [u8],
}

impl Ipv4Option<'_> {
    /// Whether routers write their addresses into the option (record route, a timestamp with
    /// flag 1) or the option names addresses the packet is to visit (loose and strict source
    /// route, a timestamp with flag 3) [RFC 791 § 3.1]. A timestamp flag RFC 791 does not
    /// define counts as carrying addresses: nothing says it does not.
    pub fn carries_addresses(&self) -> bool {
        match self.kind {
            OPT_RECORD_ROUTE | OPT_LOOSE_SOURCE_ROUTE | OPT_STRICT_SOURCE_ROUTE => true,
            OPT_TIMESTAMP => self.data.get(1).is_none_or(|b| b & 0x0f != TIMESTAMP_ONLY),
            _ => false,
        }
    }
}

/// The smallest valid length octet of an option: 2 (type and length), 3 for the route
/// options (and the pointer), 4 for the timestamp (and overflow/flag) [RFC 791 § 3.1].
fn min_option_len(kind: u8) -> usize {
    match kind {
        OPT_RECORD_ROUTE | OPT_LOOSE_SOURCE_ROUTE | OPT_STRICT_SOURCE_ROUTE => 3,
        OPT_TIMESTAMP => 4,
        _ => 2,
    }
}

/// Reads an option list [RFC 791 § 3.1]: END and NOP are one octet, every other option has a
/// length octet counting type and length. END is yielded and ends the list; the octets after
/// it are padding. A length below the option's minimum or running past the header yields
/// [`Error::OptionLength`] and ends the list.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        Options { rest: options }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<Ipv4Option<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.rest;
        let kind = *bytes.first()?;
        let len = match kind {
            OPT_END => bytes.len(),
            OPT_NOP => 1,
            _ => match bytes.get(1).map(|&l| usize::from(l)) {
                Some(l) if l >= min_option_len(kind) && l <= bytes.len() => l,
                _ => {
                    self.rest = &[];
                    return Some(Err(Error::OptionLength));
                }
            },
        };
        let (option, rest) = bytes.split_at(len);
        self.rest = rest;
        let data = if kind == OPT_END || kind == OPT_NOP {
            &[]
        } else {
            &option[2..]
        };
        Some(Ok(Ipv4Option { kind, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20-byte header + 4 bytes payload + 2 bytes link padding; UDP, 10.0.0.1 → 10.0.0.2.
    const PACKET: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x14, 0x9f, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xee,
    ];

    #[test]
    fn getters() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(p.options().is_empty());
        assert!(p.verify_checksum(), "checksum {:#06x}", p.checksum());
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut b = PACKET;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_ttl(3);
        p.set_src_addr(Ipv4Addr::new(192, 0, 2, 9));
        p.set_frag(false, true, 1480);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 3);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 9));
        assert!(!p.dont_frag() && p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        p.payload_mut()[0] = 0x11;
        assert_eq!(b[20], 0x11);
    }

    #[test]
    fn options_are_allowed() {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&PACKET[..20]);
        b[0] = 0x46;
        b[3] = 28;
        b[20..24].copy_from_slice(&[0x01, 0x01, 0x01, 0x00]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 4);
    }

    fn kinds(options: &[u8]) -> Result<Vec<(u8, bool)>, Error> {
        Options::new(options)
            .map(|o| o.map(|o| (o.kind, o.carries_addresses())))
            .collect()
    }

    #[test]
    fn option_walker_reads_kinds_and_lengths() {
        // NOP, router alert [RFC 2113 § 2.1], timestamp flag 0 with one slot, END, padding.
        let opts = [1, 148, 4, 0, 0, 68, 8, 5, 0x00, 0, 0, 0, 0, 0, 0xee, 0xee];
        assert_eq!(
            kinds(&opts),
            Ok(vec![(1, false), (148, false), (68, false), (0, false)])
        );
        let o: Vec<_> = Options::new(&opts).map(Result::unwrap).collect();
        assert_eq!(o[1].data, &[0, 0]);
        assert_eq!(o[2].data, &[5, 0, 0, 0, 0, 0]);
        assert_eq!(kinds(&[]), Ok(vec![]));
    }

    #[test]
    fn address_options_are_recognised() {
        // Record route with room for one address.
        assert_eq!(
            kinds(&[7, 7, 4, 0, 0, 0, 0, 0]),
            Ok(vec![(7, true), (0, false)])
        );
        // Loose and strict source route through 192.0.2.1.
        assert_eq!(
            kinds(&[131, 7, 4, 192, 0, 2, 1, 0]),
            Ok(vec![(131, true), (0, false)])
        );
        assert_eq!(
            kinds(&[137, 7, 4, 192, 0, 2, 1, 1]),
            Ok(vec![(137, true), (1, false)])
        );
        // Timestamp: flag 1 (address and timestamp), 3 (prespecified), 2 (undefined) carry
        // addresses; the overflow nibble does not matter.
        for (flags, addresses) in [
            (0x00, false),
            (0xf0, false),
            (0x01, true),
            (0x03, true),
            (0x02, true),
            (0x31, true),
        ] {
            let opts = [68, 12, 5, flags, 0, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(kinds(&opts), Ok(vec![(68, addresses)]), "flags {flags:#x}");
        }
        // An address option after harmless ones is still found.
        assert_eq!(
            kinds(&[1, 1, 148, 4, 0, 0, 7, 3, 4, 0, 0, 0]).map(|k| k.iter().any(|k| k.1)),
            Ok(true)
        );
    }

    #[test]
    fn malformed_option_lists_are_errors() {
        for opts in [
            &[148, 0, 0, 0][..], // length 0
            &[148, 1, 0, 0],     // length 1
            &[148, 5, 0, 0],     // past the header
            &[1, 1, 1, 148],     // length octet missing
            &[7, 2, 0, 0],       // record route without its pointer
            &[68, 3, 5, 0],      // timestamp without its flags
            &[1, 68, 2, 0],      // timestamp of length 2
            &[131, 40, 4, 0],    // source route past the header
        ] {
            assert_eq!(
                Options::new(opts).find_map(Result::err),
                Some(Error::OptionLength),
                "{opts:?}"
            );
            // The walker stops after an error.
            assert_eq!(Options::new(opts).skip_while(Result::is_ok).count(), 1);
        }
    }

    #[test]
    fn inconsistent_lengths_are_rejected() {
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PACKET;
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::HeaderLen
        );
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PACKET;
        b[3] = 27;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
        b[3] = 19;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Length);
        let mut b = PACKET;
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Version);
    }

    #[test]
    fn payload_getters_never_panic_after_bad_set() {
        let mut b = PACKET;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_total_len(9000);
        assert_eq!(p.payload().len(), 6);
        p.set_total_len(4);
        assert!(p.payload().is_empty());
    }
}
