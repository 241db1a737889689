//! The Internet checksum [RFC 1071]: full computation, the TCP/UDP pseudo-header
//! [RFC 793 § 3.1, RFC 768], and incremental updates after a field changes [RFC 1624 § 3].
//!
//! Sums are kept as folded one's complement values (`u16`, end-around carry applied); a
//! checksum is the complement of a sum. Every function is total: no input panics.

use std::net::Ipv4Addr;

/// Adds two one's complement 16-bit values with end-around carry.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u16::from(carry))
}

/// The one's complement sum of `data` read as big-endian 16-bit words; an odd trailing byte
/// is padded with zero [RFC 1071 § 4.1].
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// Folds a wide accumulator of 16-bit words into a one's complement sum.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the complement of its sum.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// The sum of the IPv4 pseudo-header of a TCP or UDP segment of `len` bytes.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xffff)
            + u64::from(d >> 16)
            + u64::from(d & 0xffff)
            + u64::from(protocol)
            + u64::from(len),
    )
}

/// The TCP or UDP checksum of `segment` (its checksum field zeroed or not: pass it zeroed to
/// compute, as received to verify — a correct segment then yields 0).
pub fn transport(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    !add(pseudo_header(src, dst, protocol, len), sum(segment))
}

/// The checksum after one 16-bit word of the covered data changed from `old` to `new`:
/// `HC' = ~(~HC + ~m + m')` [RFC 1624 § 3, eqn. 3]. Unlike eqn. 2 of RFC 1141 it never turns
/// a correct checksum into `0xFFFF` where a recomputation gives `0x0000`.
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !add(add(!checksum, !old), new)
}

/// [`update_u16`] for a 32-bit field at an even offset (two words).
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

/// [`update_u32`] for an IPv4 address field.
#[inline]
pub fn update_addr(checksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(checksum, u32::from(old), u32::from(new))
}

/// [`update_u16`] for a 16-bit field that starts at an odd offset of the covered data: its
/// bytes fall into two words, and the one's complement sum is byte-order independent
/// [RFC 1071 § 2(B)], so swapping both values is enough.
#[inline]
pub fn update_u16_odd(checksum: u16, old: u16, new: u16) -> u16 {
    update_u16(checksum, old.swap_bytes(), new.swap_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [RFC 1624 § 4]: the sum of the other header words is 0xCD7A, m = 0x5555 → 0x3285.
    #[test]
    fn rfc1624_section4_example() {
        let hc = !add(0xCD7A, 0x5555);
        assert_eq!(hc, 0xDD2F);
        let recomputed = !add(0xCD7A, 0x3285);
        assert_eq!(recomputed, 0x0000);
        assert_eq!(update_u16(0xDD2F, 0x5555, 0x3285), 0x0000);
        assert_eq!(update_u16(0xDD2F, 0x5555, 0x3285), recomputed);
    }

    /// [RFC 1071 § 3]: the worked example sums to 0xDDF2 (bytes 00 01 f2 03 f4 f5 f6 f7).
    #[test]
    fn rfc1071_section3_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A header from the Wikipedia IPv4 checksum example: checksum 0xB861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    fn check_update(data: &mut [u8], offset: usize, new: &[u8]) {
        let before = checksum(data);
        let mut c = before;
        let old_val = u16::from_be_bytes([data[offset], data[offset + 1]]);
        let new_val = u16::from_be_bytes([new[0], new[1]]);
        c = if offset % 2 == 0 {
            update_u16(c, old_val, new_val)
        } else {
            update_u16_odd(c, old_val, new_val)
        };
        data[offset..offset + 2].copy_from_slice(new);
        assert_eq!(c, checksum(data), "offset {offset}");
    }

    #[test]
    fn update_matches_recomputation_at_even_and_odd_offsets() {
        let mut data = [0x45, 0x00, 0x12, 0x34, 0xab, 0xcd, 0xef, 0x01, 0x99, 0x77];
        check_update(&mut data, 2, &[0xfe, 0xdc]);
        check_update(&mut data, 3, &[0x05, 0xb4]);
        check_update(&mut data, 7, &[0x00, 0x00]);
        check_update(&mut data, 0, &[0xff, 0xff]);
    }

    #[test]
    fn update_addr_matches_recomputation() {
        let mut data = [0u8; 12];
        data[0] = 0x45;
        data[4..8].copy_from_slice(&[10, 0, 1, 7]);
        let c = checksum(&data);
        let c = update_addr(c, Ipv4Addr::new(10, 0, 1, 7), Ipv4Addr::new(100, 64, 1, 7));
        data[4..8].copy_from_slice(&[100, 64, 1, 7]);
        assert_eq!(c, checksum(&data));
    }

    #[test]
    fn transport_checksum_verifies_to_zero() {
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 2);
        let mut seg = [
            0x04, 0xd2, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, b'a', b'b', b'c',
        ];
        let c = transport(src, dst, 17, &seg);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(transport(src, dst, 17, &seg), 0);
        assert_ne!(transport(src, Ipv4Addr::new(198, 51, 100, 3), 17, &seg), 0);
    }
}
