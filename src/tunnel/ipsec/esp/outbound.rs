//! The sending direction of an SA: inner IPv4 packet in, ESP packet out [RFC 4303 § 3.3].

use std::fmt;

use crate::crypto::Random;

use super::transform::Transform;
use super::{EspError, SaConfig, SaConfigError, Usage, NEXT_HEADER_IPV4};

/// An outbound SA: keys, SPI and the sequence counter.
pub struct OutboundSa {
    spi: u32,
    esn: bool,
    transform: Transform,
    /// The last sequence number used; 0 before the first packet.
    last_seq: u64,
    usage: Usage,
}

impl OutboundSa {
    pub fn new(cfg: &SaConfig<'_>) -> Result<OutboundSa, SaConfigError> {
        Ok(OutboundSa {
            spi: cfg.spi,
            esn: cfg.esn,
            transform: Transform::new(cfg)?,
            last_seq: 0,
            usage: Usage::default(),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The sequence number of the last packet sent (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Length of SPI, sequence number and IV: where [`Self::encapsulate_in_place`] expects
    /// the inner packet.
    pub fn header_len(&self) -> usize {
        self.transform.header_len()
    }

    /// Length of the ESP packet for an inner packet of `inner_len` bytes.
    pub fn encapsulated_len(&self, inner_len: usize) -> usize {
        let align = self.transform.align();
        let padded = inner_len
            .saturating_add(2)
            .div_ceil(align)
            .saturating_mul(align);
        padded
            .saturating_add(self.header_len())
            .saturating_add(self.transform.icv_len())
    }

    /// The longest inner packet whose ESP packet fits in `room` bytes (for MTU and MSS); 0
    /// also when not even an empty one fits.
    pub fn max_inner_len(&self, room: usize) -> usize {
        let align = self.transform.align();
        let body = room.saturating_sub(self.header_len() + self.transform.icv_len());
        (body / align * align).saturating_sub(2)
    }

    /// Encapsulates `inner` into `out`; returns the length of the ESP packet written.
    pub fn encapsulate(
        &mut self,
        rng: &mut dyn Random,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let hdr = self.header_len();
        if out.len() < self.encapsulated_len(inner.len()) {
            return Err(EspError::BufferTooSmall);
        }
        out[hdr..hdr + inner.len()].copy_from_slice(inner);
        self.encapsulate_in_place(rng, out, inner.len())
    }

    /// Encapsulates the inner packet of `inner_len` bytes that the caller placed at
    /// `buf[self.header_len()..]`; returns the length of the ESP packet, which starts at
    /// `buf[0]`.
    pub fn encapsulate_in_place(
        &mut self,
        rng: &mut dyn Random,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<usize, EspError> {
        let hdr = self.header_len();
        let total = self.encapsulated_len(inner_len);
        if buf.len() < total {
            return Err(EspError::BufferTooSmall);
        }
        let seq = self.next_seq()?;
        let iv = &mut buf[super::HEADER_LEN..hdr];
        match self.transform {
            Transform::Gcm { .. } => iv.copy_from_slice(&seq.to_be_bytes()),
            Transform::Cbc { .. } => rng.fill(iv).map_err(|_| EspError::Random)?,
        }
        // Committed before sealing: a number is never used twice, even if sealing failed.
        self.last_seq = seq;
        buf[..4].copy_from_slice(&self.spi.to_be_bytes());
        buf[4..8].copy_from_slice(&(seq as u32).to_be_bytes());

        let trailer_end = total - self.transform.icv_len();
        let pad_start = hdr + inner_len;
        let pad_len = trailer_end - 2 - pad_start;
        for (b, v) in buf[pad_start..trailer_end - 2].iter_mut().zip(1u8..) {
            *b = v;
        }
        // At most 15 (CBC) or 3 (GCM) bytes of padding.
        buf[trailer_end - 2] = pad_len as u8;
        buf[trailer_end - 1] = NEXT_HEADER_IPV4;

        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        self.transform.seal(&mut buf[..total], seq_hi)?;
        self.usage.count_packet();
        self.usage.count_bytes(inner_len);
        Ok(total)
    }

    /// The number the next packet gets, without taking it. Without ESN the counter stops at
    /// 2^32 - 1 [RFC 4303 § 3.3.3]; with ESN at 2^64 - 1.
    fn next_seq(&self) -> Result<u64, EspError> {
        let next = self
            .last_seq
            .checked_add(1)
            .ok_or(EspError::SequenceExhausted)?;
        if !self.esn && next > u64::from(u32::MAX) {
            return Err(EspError::SequenceExhausted);
        }
        Ok(next)
    }

    /// Moves the counter as if `last_seq` packets had been sent (tests of the boundaries).
    #[cfg(test)]
    pub(super) fn set_last_seq(&mut self, last_seq: u64) {
        self.last_seq = last_seq;
    }
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("esn", &self.esn)
            .field("last_seq", &self.last_seq)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}
