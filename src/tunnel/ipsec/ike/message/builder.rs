//! Building messages: [`PayloadChain`] writes payloads with their generic headers, links each
//! to the next through Next Payload and fills in lengths; [`MessageBuilder`] puts an IKE header
//! with the right first payload type and Length in front.
//!
//! A protected message is built in two phases: [`MessageBuilder::finish_encrypted`] (or
//! [`MessageBuilder::finish_fragment`]) lays out the whole message, final lengths included,
//! with the inner payloads, zero padding and Pad Length in place and zeros for IV and ICV, and
//! returns an [`SkLayout`]; the caller then writes the IV, encrypts the plaintext range in
//! place with the AAD range as associated data, and writes the ICV. Reserved fields are sent as
//! zero and the critical bit clear: every payload type built here is one RFC 7296 defines.

use std::ops::{Deref, DerefMut};

use super::error::{len16, len8, EncodeError};
use super::header::{Header, HEADER_LEN};
use super::payload::{encode_cp, CpAttribute, Payload, GENERIC_HEADER_LEN};
use super::sa::{encode_proposals, ProposalSpec};
use super::sk::{padded_len, Fragment, SkLayout, SkParams};
use super::ts::{encode_selectors, Selector};
use super::types::{CfgType, PayloadType};

/// A chain of payloads being built. The first error sticks and is returned by
/// [`PayloadChain::bytes`] and the `finish` methods, so calls can be chained.
#[derive(Debug, Clone, Default)]
pub struct PayloadChain {
    buf: Vec<u8>,
    first: PayloadType,
    /// Offset of the generic header whose Next Payload names the next payload pushed.
    last_header: Option<usize>,
    /// An Encrypted payload was pushed: nothing may follow it.
    sealed: bool,
    error: Option<EncodeError>,
}

impl PayloadChain {
    pub fn new() -> PayloadChain {
        PayloadChain::default()
    }

    /// Appends a payload. An Encrypted payload (one re-encoded from a parsed message) must be
    /// the last.
    pub fn push(&mut self, payload: &Payload<'_>) -> &mut Self {
        let ty = payload.payload_type();
        let start = self.write(ty, |out| payload.encode_body(out));
        if let (Some(start), Payload::Encrypted(e)) = (start, payload) {
            self.buf[start] = e.first_inner.0;
            self.sealed = true;
            self.last_header = None;
        }
        self
    }

    /// Appends an SA payload with these proposals.
    pub fn sa(&mut self, proposals: &[ProposalSpec<'_>]) -> &mut Self {
        self.write(PayloadType::SA, |out| encode_proposals(proposals, out));
        self
    }

    /// Appends a TSi payload with these selectors (at least one).
    pub fn ts_i(&mut self, selectors: &[Selector<'_>]) -> &mut Self {
        self.write(PayloadType::TSI, |out| encode_selectors(selectors, out));
        self
    }

    /// Appends a TSr payload with these selectors (at least one).
    pub fn ts_r(&mut self, selectors: &[Selector<'_>]) -> &mut Self {
        self.write(PayloadType::TSR, |out| encode_selectors(selectors, out));
        self
    }

    /// Appends a CP payload.
    pub fn cp(&mut self, cfg_type: CfgType, attributes: &[CpAttribute<'_>]) -> &mut Self {
        self.write(PayloadType::CP, |out| encode_cp(cfg_type, attributes, out));
        self
    }

    /// The type of the first payload ([`PayloadType::NONE`] for an empty chain).
    pub fn first_type(&self) -> PayloadType {
        self.first
    }

    /// The encoded chain, or the first error met while building it.
    pub fn bytes(&self) -> Result<&[u8], EncodeError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(&self.buf),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes a generic header and the body `body` writes; returns where the payload starts.
    fn write(
        &mut self,
        ty: PayloadType,
        body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) -> Option<usize> {
        if self.error.is_some() {
            return None;
        }
        if self.sealed {
            self.error = Some(EncodeError::AfterEncrypted);
            return None;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; GENERIC_HEADER_LEN]);
        let len = body(&mut self.buf).and_then(|()| len16(self.buf.len() - start));
        let len = match len {
            Ok(len) => len,
            Err(e) => {
                self.buf.truncate(start);
                self.error = Some(e);
                return None;
            }
        };
        self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        match self.last_header {
            Some(h) => self.buf[h] = ty.0,
            None => self.first = ty,
        }
        self.last_header = Some(start);
        Some(start)
    }
}

/// A message being built: an IKE header and a [`PayloadChain`] (reachable through `Deref`).
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    header: Header,
    chain: PayloadChain,
}

impl Deref for MessageBuilder {
    type Target = PayloadChain;
    fn deref(&self) -> &PayloadChain {
        &self.chain
    }
}

impl DerefMut for MessageBuilder {
    fn deref_mut(&mut self) -> &mut PayloadChain {
        &mut self.chain
    }
}

impl MessageBuilder {
    /// A message with this header; its Next Payload and Length are set when it is finished.
    pub fn new(header: Header) -> MessageBuilder {
        MessageBuilder {
            header,
            chain: PayloadChain::new(),
        }
    }

    /// The message: header and payloads, nothing encrypted.
    pub fn finish(self) -> Result<Vec<u8>, EncodeError> {
        let chain = self.chain.bytes()?;
        let mut header = self.header;
        header.next_payload = self.chain.first_type();
        header.length = total_len(chain.len())?;
        let mut out = Vec::with_capacity(HEADER_LEN + chain.len());
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(chain);
        Ok(out)
    }

    /// The message with an SK payload last, holding `inner` (see the module documentation):
    /// returns the message and where to write IV, ciphertext and ICV.
    pub fn finish_encrypted(
        self,
        inner: &PayloadChain,
        params: SkParams,
    ) -> Result<(Vec<u8>, SkLayout), EncodeError> {
        let first_inner = inner.first_type();
        self.seal(PayloadType::SK, None, first_inner, inner.bytes()?, params)
    }

    /// One fragment message of a protected message [RFC 7383 § 2.5]: an SKF payload last,
    /// holding `chunk` of the inner payload chain; `first_inner` is the type of the first inner
    /// payload in fragment 1 and NONE in the others.
    pub fn finish_fragment(
        self,
        fragment: Fragment,
        first_inner: PayloadType,
        chunk: &[u8],
        params: SkParams,
    ) -> Result<(Vec<u8>, SkLayout), EncodeError> {
        fragment.check()?;
        self.seal(PayloadType::SKF, Some(fragment), first_inner, chunk, params)
    }

    fn seal(
        mut self,
        ty: PayloadType,
        fragment: Option<Fragment>,
        first_inner: PayloadType,
        inner: &[u8],
        params: SkParams,
    ) -> Result<(Vec<u8>, SkLayout), EncodeError> {
        let fragment_fields = fragment.map(|f| {
            let ([a, b], [c, d]) = (f.number.to_be_bytes(), f.total.to_be_bytes());
            [a, b, c, d]
        });
        let fields: &[u8] = fragment_fields.as_ref().map_or(&[], |f| &f[..]);
        let padded = padded_len(inner.len(), params.block_size);
        let pad_len = len8(padded - inner.len() - 1)?;
        let body_len = params.iv_len + padded + params.icv_len;
        let sk_len = GENERIC_HEADER_LEN + fields.len() + body_len;
        self.chain.write(ty, |out| {
            out.extend_from_slice(fields);
            out.resize(out.len() + params.iv_len, 0);
            out.extend_from_slice(inner);
            out.resize(out.len() + usize::from(pad_len), 0);
            out.push(pad_len);
            out.resize(out.len() + params.icv_len, 0);
            Ok(())
        });
        let chain_len = self.chain.bytes()?.len();
        let sk_start = HEADER_LEN + chain_len - sk_len;
        let mut out = self.finish()?;
        out[sk_start] = first_inner.0;
        let iv_start = sk_start + GENERIC_HEADER_LEN + fields.len();
        let plain_start = iv_start + params.iv_len;
        let icv_start = plain_start + padded;
        let layout = SkLayout {
            aad: 0..iv_start,
            iv: iv_start..plain_start,
            plaintext: plain_start..icv_start,
            icv: icv_start..out.len(),
        };
        Ok((out, layout))
    }
}

fn total_len(chain_len: usize) -> Result<u32, EncodeError> {
    u32::try_from(HEADER_LEN + chain_len).map_err(|_| EncodeError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::super::header::Flags;
    use super::super::notify::{Notify, NotifyType};
    use super::super::sk::Encrypted;
    use super::super::types::ExchangeType;
    use super::super::{parse_inner, Message};
    use super::*;

    fn header() -> Header {
        Header::new(
            0x1122_3344_5566_7788,
            0x99aa_bbcc_ddee_ff00,
            ExchangeType::INFORMATIONAL,
            Flags::INITIATOR,
            7,
        )
    }

    #[test]
    fn links_payloads_and_sets_lengths() {
        let mut m = MessageBuilder::new(header());
        m.push(&Payload::VendorId(b"abc"))
            .push(&Payload::Notify(Notify::new(
                NotifyType::INITIAL_CONTACT,
                &[],
            )));
        let bytes = m.finish().unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 7 + 8);
        assert_eq!(bytes[16], PayloadType::VENDOR_ID.0);
        assert_eq!(&bytes[24..28], &(bytes.len() as u32).to_be_bytes());
        assert_eq!(&bytes[28..32], &[41, 0, 0, 7]);
        assert_eq!(&bytes[35..39], &[0, 0, 0, 8]);
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.header.message_id, 7);
        assert_eq!(msg.payloads[0], Payload::VendorId(b"abc"));
    }

    #[test]
    fn an_empty_message() {
        let bytes = MessageBuilder::new(header()).finish().unwrap();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(bytes[16], 0);
        assert!(Message::parse(&bytes).unwrap().payloads.is_empty());
    }

    #[test]
    fn errors_stick() {
        let mut m = MessageBuilder::new(header());
        m.push(&Payload::Nonce(&[1; 8]))
            .push(&Payload::VendorId(b"abc"));
        assert_eq!(m.bytes(), Err(EncodeError::Inconsistent));
        assert_eq!(m.finish(), Err(EncodeError::Inconsistent));
        let mut m = MessageBuilder::new(header());
        m.push(&Payload::VendorId(&vec![0; 65532]));
        assert_eq!(m.finish(), Err(EncodeError::TooLong));
        let mut m = MessageBuilder::new(header());
        m.push(&Payload::Encrypted(Encrypted {
            first_inner: PayloadType::NONE,
            fragment: None,
            body: &[],
        }))
        .push(&Payload::VendorId(b"abc"));
        assert_eq!(m.finish(), Err(EncodeError::AfterEncrypted));
    }

    /// [RFC 5282 § 5.1]: the AAD runs from the IKE header through the SK payload header.
    #[test]
    fn rfc5282_5_1_lays_out_an_encrypted_message() {
        let mut inner = PayloadChain::new();
        inner.push(&Payload::Notify(Notify::new(
            NotifyType::INITIAL_CONTACT,
            &[],
        )));
        let mut m = MessageBuilder::new(header());
        m.push(&Payload::VendorId(b"outer"));
        let params = SkParams {
            iv_len: 8,
            block_size: 1,
            icv_len: 16,
        };
        let (bytes, layout) = m.finish_encrypted(&inner, params).unwrap();
        let sk = HEADER_LEN + 9;
        assert_eq!(layout.aad, 0..sk + 4);
        assert_eq!(layout.iv, sk + 4..sk + 12);
        assert_eq!(layout.plaintext, sk + 12..sk + 12 + 9);
        assert_eq!(layout.icv, sk + 21..bytes.len());
        assert_eq!(layout.icv.len(), 16);
        assert_eq!(
            &bytes[layout.plaintext.clone()][..8],
            inner.bytes().unwrap()
        );
        assert_eq!(bytes[layout.plaintext.end - 1], 0, "pad length");

        let msg = Message::parse(&bytes).unwrap();
        let e = msg.encrypted().unwrap();
        assert_eq!(e.first_inner, PayloadType::NOTIFY);
        assert_eq!(msg.aad(), Some(&bytes[layout.aad.clone()]));
        assert_eq!(msg.encrypted_range(), Some(layout.iv.start..bytes.len()));
        let (_, ct, _) = e.split(8, 16).unwrap();
        let inner_chain = super::super::sk::unpad(ct).unwrap();
        let p = parse_inner(e.first_inner, inner_chain).unwrap();
        assert_eq!(
            p,
            [Payload::Notify(Notify::new(
                NotifyType::INITIAL_CONTACT,
                &[]
            ))]
        );
    }

    #[test]
    fn pads_to_the_block_size() {
        let mut inner = PayloadChain::new();
        inner.push(&Payload::VendorId(b"abc")); // 7 octets
        let params = SkParams {
            iv_len: 16,
            block_size: 16,
            icv_len: 12,
        };
        let (bytes, layout) = MessageBuilder::new(header())
            .finish_encrypted(&inner, params)
            .unwrap();
        assert_eq!(layout.aad, 0..HEADER_LEN + 4);
        assert_eq!(layout.plaintext.len(), 16);
        assert_eq!(bytes[layout.plaintext.end - 1], 8);
        assert_eq!(bytes[16], PayloadType::SK.0);
        assert_eq!(bytes[HEADER_LEN], PayloadType::VENDOR_ID.0);
        Message::parse(&bytes).unwrap();
    }

    /// [RFC 7383 § 2.5]: the AAD of a fragment includes Fragment Number and Total Fragments.
    #[test]
    fn rfc7383_2_5_lays_out_a_fragment() {
        let params = SkParams {
            iv_len: 8,
            block_size: 1,
            icv_len: 16,
        };
        let frag = Fragment {
            number: 2,
            total: 3,
        };
        let (bytes, layout) = MessageBuilder::new(header())
            .finish_fragment(frag, PayloadType::NONE, &[0xab; 30], params)
            .unwrap();
        assert_eq!(layout.aad, 0..HEADER_LEN + 8);
        assert_eq!(&bytes[HEADER_LEN + 4..HEADER_LEN + 8], &[0, 2, 0, 3]);
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.encrypted().unwrap().fragment, Some(frag));
        assert_eq!(msg.aad(), Some(&bytes[..HEADER_LEN + 8]));
        let bad = Fragment {
            number: 4,
            total: 3,
        };
        assert_eq!(
            MessageBuilder::new(header())
                .finish_fragment(bad, PayloadType::NONE, &[], params)
                .map(|_| ()),
            Err(EncodeError::Inconsistent)
        );
    }
}
