//! The receiving direction of an SA: ESP packet in, inner packet out, in place
//! [RFC 4303 § 3.4].

use std::fmt;
use std::ops::Range;

use super::transform::Transform;
use super::{
    EspError, EspHeader, ReplayWindow, SaConfig, SaConfigError, Usage, NEXT_HEADER_DUMMY,
    NEXT_HEADER_IPV4,
};

/// An inbound SA: keys, SPI and the anti-replay window.
pub struct InboundSa {
    spi: u32,
    esn: bool,
    transform: Transform,
    window: ReplayWindow,
    usage: Usage,
}

/// What a verified ESP packet carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decap {
    /// An inner IPv4 packet at this range of the buffer, trimmed to its total length.
    Packet(Range<usize>),
    /// A dummy packet [RFC 4303 § 2.6]: authentic, consumed, nothing to forward.
    Dummy,
}

/// A verified and decrypted ESP packet, before its next header is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The full sequence number (reconstructed with ESN).
    pub seq: u64,
    pub next_header: u8,
    /// The Payload Data: the range of the buffer between IV and padding.
    pub payload: Range<usize>,
}

/// The shortest IPv4 header.
const IPV4_MIN_LEN: usize = 20;

impl InboundSa {
    pub fn new(cfg: &SaConfig<'_>) -> Result<InboundSa, SaConfigError> {
        Ok(InboundSa {
            spi: cfg.spi,
            esn: cfg.esn,
            transform: Transform::new(cfg)?,
            window: ReplayWindow::new(),
            usage: Usage::default(),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The highest sequence number received (0 before the first).
    pub fn highest_seq(&self) -> u64 {
        self.window.top()
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Verifies and decrypts `packet` (starting at the SPI) in place and returns the inner
    /// IPv4 packet, or [`Decap::Dummy`] for a dummy packet. On error the buffer's contents
    /// are unspecified and the window is unchanged unless the packet was authentic.
    pub fn decapsulate(&mut self, packet: &mut [u8]) -> Result<Decap, EspError> {
        let opened = self.open(packet)?;
        match opened.next_header {
            NEXT_HEADER_IPV4 => {
                let start = opened.payload.start;
                let inner = &packet[opened.payload];
                if inner.len() < IPV4_MIN_LEN || inner[0] >> 4 != 4 {
                    return Err(EspError::InnerMalformed);
                }
                let total = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
                if !(IPV4_MIN_LEN..=inner.len()).contains(&total) {
                    return Err(EspError::InnerMalformed);
                }
                // Anything after the total length is TFC padding [RFC 4303 § 2.7].
                Ok(Decap::Packet(start..start + total))
            }
            NEXT_HEADER_DUMMY => Ok(Decap::Dummy),
            other => Err(EspError::UnknownNextHeader(other)),
        }
    }

    /// Everything of [`Self::decapsulate`] up to the next header: lengths, SPI, replay
    /// pre-check, integrity and decryption, window update, padding.
    pub fn open(&mut self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let hdr = self.transform.header_len();
        let icv = self.transform.icv_len();
        let body = packet
            .len()
            .checked_sub(hdr + icv)
            .ok_or(EspError::Malformed)?;
        if body < 2 || body % self.transform.cipher_align() != 0 {
            return Err(EspError::Malformed);
        }
        let header = EspHeader::parse(packet)?;
        if header.spi != self.spi {
            return Err(EspError::WrongSpi);
        }
        let seq = if self.esn {
            self.window.esn_seq(header.seq).ok_or(EspError::Replay)?
        } else {
            u64::from(header.seq)
        };
        self.window.check(seq)?;

        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        self.transform.open(packet, seq_hi)?;
        self.window.accept(seq);
        self.usage.count_packet();

        let end = packet.len() - icv;
        let next_header = packet[end - 1];
        let pad_len = usize::from(packet[end - 2]);
        let payload_end = (end - 2)
            .checked_sub(pad_len)
            .filter(|&e| e >= hdr)
            .ok_or(EspError::Padding)?;
        let monotonic = packet[payload_end..end - 2]
            .iter()
            .zip(1u8..)
            .all(|(&b, expected)| b == expected);
        if !monotonic {
            return Err(EspError::Padding);
        }
        self.usage.count_bytes(payload_end - hdr);
        Ok(Opened {
            seq,
            next_header,
            payload: hdr..payload_end,
        })
    }

    /// The anti-replay window, to start tests from windows far along.
    #[cfg(test)]
    pub(super) fn window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.window
    }
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("esn", &self.esn)
            .field("highest_seq", &self.window.top())
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}
