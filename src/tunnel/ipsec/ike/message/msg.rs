//! A whole IKE message: the header and its payloads, parsed from one datagram.

use std::ops::Range;

use super::builder::MessageBuilder;
use super::error::{EncodeError, Error};
use super::header::Header;
use super::notify::{Notify, NotifyType};
use super::payload::{Ke, Payload, Payloads};
use super::sa::Sa;
use super::sk::Encrypted;
use super::types::{ExchangeType, PayloadType};

/// A parsed message; everything borrows from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: Header,
    pub payloads: Vec<Payload<'a>>,
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one IKE message (on port 4500, after [`super::strip_non_esp_marker`]). A
    /// message that does not parse costs no allocation: the chain is walked once to check it
    /// and once more to collect it.
    pub fn parse(datagram: &'a [u8]) -> Result<Message<'a>, Error> {
        let header = Header::parse(datagram)?;
        let chain = Payloads::in_message(header.next_payload, datagram);
        let count = chain.clone().try_fold(0usize, |n, p| p.map(|_| n + 1))?;
        let mut payloads = Vec::with_capacity(count);
        for p in chain {
            payloads.push(p?);
        }
        Ok(Message {
            header,
            payloads,
            bytes: datagram,
        })
    }

    /// The datagram the message was parsed from (what AUTH signs for IKE_SA_INIT).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn payload_types(&self) -> impl Iterator<Item = PayloadType> + '_ {
        self.payloads.iter().map(Payload::payload_type)
    }

    /// The SK or SKF payload, always the last one.
    pub fn encrypted(&self) -> Option<Encrypted<'a>> {
        match self.payloads.last() {
            Some(Payload::Encrypted(e)) => Some(*e),
            _ => None,
        }
    }

    /// The associated data of the SK (SKF) payload: IKE header through the SK payload header
    /// (through the fragment fields) [RFC 5282 § 5.1], [RFC 7383 § 2.5.3].
    pub fn aad(&self) -> Option<&'a [u8]> {
        let range = self.encrypted_range()?;
        self.bytes.get(..range.start)
    }

    /// Where `IV | ciphertext | ICV` of the SK (SKF) payload sits in the datagram, for
    /// decryption in place.
    pub fn encrypted_range(&self) -> Option<Range<usize>> {
        let e = self.encrypted()?;
        Some(self.bytes.len() - e.body.len()..self.bytes.len())
    }

    /// The Notify payloads, in order.
    pub fn notifies(&self) -> impl Iterator<Item = Notify<'a>> + '_ {
        self.payloads.iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(*n),
            _ => None,
        })
    }

    /// The first Notify payload of type `ty`.
    pub fn notify(&self, ty: NotifyType) -> Option<Notify<'a>> {
        self.notifies().find(|n| n.notify_type == ty)
    }

    /// The first SA payload.
    pub fn sa(&self) -> Option<Sa<'a>> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Sa(sa) => Some(*sa),
            _ => None,
        })
    }

    /// The first KE payload.
    pub fn ke(&self) -> Option<Ke<'a>> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Ke(ke) => Some(*ke),
            _ => None,
        })
    }

    /// The first Nonce payload.
    pub fn nonce(&self) -> Option<&'a [u8]> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(*n),
            _ => None,
        })
    }

    /// Encodes the header and payloads again, reserved fields as zero. For a message this
    /// codec built, or a peer's with zero reserved fields, these are the bytes it came from.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut m = MessageBuilder::new(self.header);
        for p in &self.payloads {
            m.push(p);
        }
        m.finish()
    }
}

/// Parses a decrypted inner payload chain (after [`super::unpad`]) whose first payload has
/// type `first`; an SK or SKF payload inside is a syntax error.
pub fn parse_inner(first: PayloadType, chain: &[u8]) -> Result<Vec<Payload<'_>>, Error> {
    Payloads::new(first, chain).collect()
}

/// What key derivation takes from an IKE_SA_INIT exchange [RFC 7296 § 2.14]:
/// `SKEYSEED = prf(Ni | Nr, g^ir)`, then `prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaInitValues<'a> {
    pub spi_i: u64,
    pub spi_r: u64,
    pub ni: &'a [u8],
    pub nr: &'a [u8],
}

impl<'a> SaInitValues<'a> {
    /// From an IKE_SA_INIT request and its response: the SPIs from the response header, the
    /// nonces from each side. `None` if either is not such a message or lacks a nonce.
    pub fn from_exchange(request: &Message<'a>, response: &Message<'a>) -> Option<Self> {
        let (q, r) = (&request.header, &response.header);
        let is_init = |h: &Header| h.exchange == ExchangeType::IKE_SA_INIT;
        if !is_init(q) || !is_init(r) || q.flags.response() || !r.flags.response() {
            return None;
        }
        Some(SaInitValues {
            spi_i: r.spi_i,
            spi_r: r.spi_r,
            ni: request.nonce()?,
            nr: response.nonce()?,
        })
    }
}
