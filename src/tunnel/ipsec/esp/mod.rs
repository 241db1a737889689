//! ESP [RFC 4303] in tunnel mode, sans-IO: an [`OutboundSa`] turns an inner IPv4 packet into
//! an ESP packet in a caller buffer, an [`InboundSa`] turns an ESP packet back into the inner
//! packet in place. Neither allocates, reads a clock or touches a socket.
//!
//! The packet handed in and out starts at the SPI. ESP in UDP [RFC 3948] is the same packet
//! as a UDP payload; telling it apart from IKE (the non-ESP marker) and finding the SA by SPI
//! ([`EspHeader::parse`]) is the tunnel's job, as are rekeying and deciding lifetimes: an SA
//! counts what it protected ([`Usage`]) and answers whether configured [`Limits`] are reached.
//!
//! Transforms: AES-GCM-16 with 128/256-bit keys [RFC 4106], and AES-CBC 128/256 [RFC 3602]
//! with HMAC-SHA2-256/384/512 [RFC 4868], each with or without extended sequence numbers
//! (ESN). The cryptography itself is [`crate::crypto`].
//!
//! Contracts:
//! * Outbound: the sequence number starts at 1 and never wraps: without ESN the SA refuses
//!   to send once 2^32 - 1 was used ([`EspError::SequenceExhausted`]), so IKE must rekey
//!   before [RFC 4303 § 3.3.3]. The GCM IV is the 64-bit sequence number, unique per key as
//!   RFC 4106 § 3.1 requires; the CBC IV is random, from the caller's [`Random`].
//! * Inbound, in the order RFC 4303 § 3.4 gives: lengths, SPI, a replay pre-check against the
//!   window (cheap, before any cryptography), integrity, then the window update, then the
//!   trailer (monotonic padding 1, 2, 3, … [RFC 4303 § 2.4]) and the next header. A dummy
//!   packet (next header 59 [RFC 4303 § 2.6]) is consumed as [`Decap::Dummy`], not an
//!   error. The inner packet ends where its IPv4 total length says, so TFC padding after it
//!   is dropped.
//! * Errors are one small `Copy` enum, [`EspError`]; the pipeline maps them to drop reasons.
//!
//! [`Random`]: crate::crypto::Random

#![forbid(unsafe_code)]

pub mod fuzz;
mod inbound;
mod lifetime;
mod outbound;
mod replay;
mod transform;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use std::fmt;

pub use inbound::{Decap, InboundSa, Opened};
pub use lifetime::{Expiry, Limits, Usage};
pub use outbound::OutboundSa;
pub use replay::{ReplayWindow, REPLAY_WINDOW};

use crate::crypto::{EncrAlg, IntegAlg};

/// Length of the ESP header: SPI and sequence number.
pub const HEADER_LEN: usize = 8;
/// Next header value of an inner IPv4 packet (IP-in-IP, tunnel mode).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header value of a dummy packet ("no next header") [RFC 4303 § 2.6].
pub const NEXT_HEADER_DUMMY: u8 = 59;

/// Why an ESP packet was refused or could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Too short for header, IV, trailer and ICV, or a CBC ciphertext that is not a whole
    /// number of blocks.
    #[error("malformed ESP packet")]
    Malformed,
    /// The packet carries another SA's SPI.
    #[error("SPI of another SA")]
    WrongSpi,
    /// Sequence number 0, seen before, or left of the replay window.
    #[error("replayed or too old sequence number")]
    Replay,
    /// The ICV (or GCM tag) did not verify.
    #[error("integrity check failed")]
    Integrity,
    /// A pad length beyond the payload, or padding bytes other than 1, 2, 3, ...
    #[error("bad padding")]
    Padding,
    /// A next header other than IPv4 (4) and "no next header" (59).
    #[error("unsupported next header {0}")]
    UnknownNextHeader(u8),
    /// Next header IPv4 over a payload that is no IPv4 packet (version, total length).
    #[error("inner packet is not IPv4")]
    InnerMalformed,
    /// The outbound sequence counter is used up; the SA must be replaced.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// The output buffer cannot hold the ESP packet.
    #[error("buffer too small")]
    BufferTooSmall,
    /// The random generator failed (CBC IV).
    #[error("random generator failed")]
    Random,
}

/// The fixed part of every ESP packet, as it appears before decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspHeader {
    pub spi: u32,
    /// The sequence number as sent: the low 32 bits when ESN is in use.
    pub seq: u32,
}

impl EspHeader {
    /// Reads the SPI and sequence number of an ESP packet (starting at the SPI), for the SA
    /// lookup. Only the length is checked; SPI 0, which never names an SA, is the non-ESP
    /// marker of RFC 3948 and must have been told apart before.
    pub fn parse(packet: &[u8]) -> Result<EspHeader, EspError> {
        match packet {
            [s0, s1, s2, s3, q0, q1, q2, q3, ..] => Ok(EspHeader {
                spi: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
                seq: u32::from_be_bytes([*q0, *q1, *q2, *q3]),
            }),
            _ => Err(EspError::Malformed),
        }
    }
}

/// What one direction of a CHILD_SA is made of. The keys are borrowed: the SA keeps only
/// the expanded cipher state.
#[derive(Clone, Copy)]
pub struct SaConfig<'a> {
    pub spi: u32,
    /// Extended (64-bit) sequence numbers negotiated.
    pub esn: bool,
    pub encr: EncrAlg,
    /// The encryption keying material: the AES key, followed for GCM by the 4-byte salt
    /// [RFC 4106 § 8.1] ([`EncrAlg::keymat_len`] bytes).
    pub encr_key: &'a [u8],
    /// The integrity transform and its key; `None` for GCM.
    pub integ: Option<(IntegAlg, &'a [u8])>,
}

impl fmt::Debug for SaConfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("esn", &self.esn)
            .field("encr", &self.encr)
            .field("integ", &self.integ.map(|(alg, _)| alg))
            .finish_non_exhaustive()
    }
}

/// Why an SA could not be built from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaConfigError {
    #[error("{encr:?} takes {expected} bytes of keying material, got {got}")]
    EncrKeyLength {
        encr: EncrAlg,
        expected: usize,
        got: usize,
    },
    #[error("{integ:?} takes a {expected}-byte key, got {got}")]
    IntegKeyLength {
        integ: IntegAlg,
        expected: usize,
        got: usize,
    },
    #[error("{0:?} needs an integrity transform")]
    IntegrityRequired(EncrAlg),
    #[error("{0:?} is a combined mode and takes no integrity transform")]
    IntegrityNotAllowed(EncrAlg),
}
