//! The Encrypted and Authenticated payload, SK [RFC 7296 § 3.14], and its fragment form, SKF
//! [RFC 7383 § 2.5], as the codec sees them: header fields and the opaque
//! `IV | ciphertext | ICV`. The cryptography lives elsewhere; this module gives it the byte
//! ranges it works on:
//!
//! * associated data: for an AEAD, the IKE header through the end of the SK payload header
//!   [RFC 5282 § 5.1], for SKF through Fragment Number and Total Fragments [RFC 7383 § 2.5.3]
//!   (the decrypting side gets it from [`super::Message::aad`]);
//! * for building, [`SkLayout`]: where IV, plaintext (inner payloads, padding, pad length)
//!   and ICV sit in a message whose header and lengths are already final, so that the caller
//!   fills the IV, encrypts the plaintext in place and writes the ICV (an integrity-only
//!   transform checksums `0..icv.start`).
//!
//! After decryption, [`unpad`] strips Padding and Pad Length, and
//! [`super::parse_inner`] parses the inner chain from [`Encrypted::first_inner`].

use std::ops::Range;

use super::error::{EncodeError, Error, Syntax};
use super::reader::Reader;
use super::types::PayloadType;

/// SK or SKF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypted<'a> {
    /// Type of the first inner payload (the SK header's Next Payload); 0 in every fragment but
    /// the first [RFC 7383 § 2.5].
    pub first_inner: PayloadType,
    /// The fragment fields, for SKF.
    pub fragment: Option<Fragment>,
    /// `IV | encrypted (inner payloads, padding, pad length) | ICV`.
    pub body: &'a [u8],
}

/// Fragment Number and Total Fragments of an SKF payload [RFC 7383 § 2.5].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// 1-based.
    pub number: u16,
    pub total: u16,
}

/// The sizes of the negotiated IKE encryption transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkParams {
    /// 8 for AES-GCM [RFC 5282 § 3.1], the block size for AES-CBC.
    pub iv_len: usize,
    /// Plaintext alignment: the cipher block size, 1 for AEADs in counter mode (a single pad
    /// length octet of 0).
    pub block_size: usize,
    /// 16 for AES-GCM-16; the truncated MAC length for integrity transforms.
    pub icv_len: usize,
}

/// Where the parts of a built SK or SKF payload sit in the message (absolute offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkLayout {
    /// IKE header through the SK header (SKF: the fragment fields), the AEAD associated data.
    pub aad: Range<usize>,
    /// Zeros, for the caller's IV.
    pub iv: Range<usize>,
    /// Inner payloads, padding (zeros) and Pad Length: what the caller encrypts in place.
    pub plaintext: Range<usize>,
    /// Zeros, for the caller's ICV.
    pub icv: Range<usize>,
}

impl<'a> Encrypted<'a> {
    pub(crate) fn parse(
        payload_type: PayloadType,
        first_inner: PayloadType,
        body: &'a [u8],
    ) -> Result<Encrypted<'a>, Syntax> {
        if payload_type == PayloadType::SK {
            return Ok(Encrypted {
                first_inner,
                fragment: None,
                body,
            });
        }
        let mut r = Reader::new(body);
        let number = r.u16().ok_or(Syntax::BodyTooShort)?;
        let total = r.u16().ok_or(Syntax::BodyTooShort)?;
        if number == 0 || number > total {
            return Err(Syntax::FragmentNumber);
        }
        Ok(Encrypted {
            first_inner,
            fragment: Some(Fragment { number, total }),
            body: r.rest(),
        })
    }

    pub fn payload_type(&self) -> PayloadType {
        match self.fragment {
            None => PayloadType::SK,
            Some(_) => PayloadType::SKF,
        }
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Some(f) = self.fragment {
            out.extend_from_slice(&f.number.to_be_bytes());
            out.extend_from_slice(&f.total.to_be_bytes());
        }
        out.extend_from_slice(self.body);
        Ok(())
    }

    /// `(IV, ciphertext, ICV)` for a transform with these IV and ICV lengths, or `None` if the
    /// body is too short to hold them.
    pub fn split(&self, iv_len: usize, icv_len: usize) -> Option<(&'a [u8], &'a [u8], &'a [u8])> {
        let ct_end = self.body.len().checked_sub(icv_len)?;
        if ct_end < iv_len {
            return None;
        }
        let (iv, rest) = self.body.split_at(iv_len);
        let (ct, icv) = rest.split_at(ct_end - iv_len);
        Some((iv, ct, icv))
    }
}

impl Fragment {
    pub(crate) fn check(self) -> Result<(), EncodeError> {
        if self.number == 0 || self.number > self.total {
            return Err(EncodeError::Inconsistent);
        }
        Ok(())
    }
}

/// The inner payload chain of decrypted SK content: the content without Padding and Pad
/// Length [RFC 7296 § 3.14]. The padding octets may hold any value.
pub fn unpad(decrypted: &[u8]) -> Result<&[u8], Error> {
    let (&pad_len, rest) = decrypted
        .split_last()
        .ok_or(Error::syntax(PayloadType::SK, Syntax::Padding))?;
    rest.len()
        .checked_sub(usize::from(pad_len))
        .map(|end| &rest[..end])
        .ok_or(Error::syntax(PayloadType::SK, Syntax::Padding))
}

/// The length of `inner_len` octets of payloads with Padding and Pad Length, aligned to
/// `block_size` with the fewest padding octets [RFC 7296 § 3.14].
pub(crate) fn padded_len(inner_len: usize, block_size: usize) -> usize {
    let bs = block_size.max(1);
    let with_pad_len = inner_len + 1;
    with_pad_len + (bs - with_pad_len % bs) % bs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sk_and_skf() {
        let sk = Encrypted::parse(PayloadType::SK, PayloadType::IDI, &[1, 2, 3]).unwrap();
        assert_eq!(sk.payload_type(), PayloadType::SK);
        assert_eq!(sk.body, &[1, 2, 3]);
        let skf =
            Encrypted::parse(PayloadType::SKF, PayloadType::NONE, &[0, 2, 0, 3, 9, 9]).unwrap();
        assert_eq!(
            skf.fragment,
            Some(Fragment {
                number: 2,
                total: 3
            })
        );
        assert_eq!(skf.body, &[9, 9]);
        let mut out = Vec::new();
        skf.encode_body(&mut out).unwrap();
        assert_eq!(out, [0, 2, 0, 3, 9, 9]);
    }

    /// [RFC 7383 § 2.5]: Fragment Number is 1..=Total Fragments.
    #[test]
    fn rfc7383_2_5_checks_fragment_numbers() {
        let skf = |b: &[u8]| Encrypted::parse(PayloadType::SKF, PayloadType::NONE, b).map(|_| ());
        assert_eq!(skf(&[0, 0, 0, 1]), Err(Syntax::FragmentNumber));
        assert_eq!(skf(&[0, 2, 0, 1]), Err(Syntax::FragmentNumber));
        assert_eq!(skf(&[0, 1, 0, 0]), Err(Syntax::FragmentNumber));
        assert_eq!(skf(&[0, 1, 0]), Err(Syntax::BodyTooShort));
        assert!(skf(&[0, 1, 0, 1]).is_ok());
    }

    #[test]
    fn splits_iv_ciphertext_and_icv() {
        let sk = Encrypted {
            first_inner: PayloadType::IDI,
            fragment: None,
            body: &[1, 1, 2, 2, 2, 3, 3],
        };
        assert_eq!(
            sk.split(2, 2),
            Some((&[1, 1][..], &[2, 2, 2][..], &[3, 3][..]))
        );
        assert_eq!(
            sk.split(4, 3),
            Some((&[1, 1, 2, 2][..], &[][..], &[2, 3, 3][..]))
        );
        assert_eq!(sk.split(5, 3), None);
        assert_eq!(sk.split(0, 8), None);
    }

    /// [RFC 7296 § 3.14]: Pad Length counts the padding octets before it.
    #[test]
    fn rfc7296_3_14_unpads() {
        assert_eq!(unpad(&[7, 7, 0]), Ok(&[7, 7][..]));
        assert_eq!(unpad(&[7, 0xee, 0xee, 2]), Ok(&[7][..]));
        assert_eq!(unpad(&[0xee, 0xee, 2]), Ok(&[][..]));
        let bad = Err(Error::syntax(PayloadType::SK, Syntax::Padding));
        assert_eq!(unpad(&[0xee, 2]), bad);
        assert_eq!(unpad(&[]), bad);
        assert_eq!(padded_len(0, 1), 1);
        assert_eq!(padded_len(12, 1), 13);
        assert_eq!(padded_len(15, 16), 16);
        assert_eq!(padded_len(16, 16), 32);
        assert_eq!(padded_len(17, 16), 32);
        assert_eq!(padded_len(5, 0), 6);
    }
}
