//! The IKEv2 message codec [RFC 7296 § 3]: a zero-copy parser from one datagram to a header
//! and payloads that borrow from it, and a builder for the messages we send.
//!
//! Layer contract: pure functions over byte slices, no I/O, no clock, no cryptography, and
//! nothing from the rest of the crate. Untrusted bytes enter through [`Message::parse`] (a
//! whole message) or [`Payloads`] / [`parse_inner`] (a decrypted inner chain); every length,
//! count and substructure is checked there, so that the views handed out ([`Sa`], [`Ts`],
//! [`Cp`], ...) iterate without failing and nothing panics on a peer's input. Parse errors are
//! one `Copy` [`Error`] whose [`Error::notify`] says which Notify, if any, answers it; a
//! message that fails to parse costs no allocation.
//!
//! The Encrypted payload is carried opaque, with the byte ranges encryption needs: see
//! [`sk`]. Inner payloads are parsed with the same chain parser once decrypted.
//!
//! Receiving follows "MUST be sent as zero, MUST be ignored on receipt": reserved fields and
//! flags are ignored and not kept (except the reserved octets of an ID payload, which AUTH
//! covers), and sent as zero; the critical bit is honoured for unknown payload types only
//! [RFC 7296 § 2.5].

#![forbid(unsafe_code)]

mod auth;
mod builder;
mod error;
pub mod fuzz;
mod header;
mod msg;
mod notify;
mod payload;
mod reader;
mod sa;
pub mod sk;
mod ts;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testvec;

pub use auth::{
    algorithm_identifier, Auth, Cert, CertReq, DigitalSignature, Id, IdValue, CA_HASH_LEN,
};
pub use builder::{MessageBuilder, PayloadChain};
pub use error::{EncodeError, Error, Syntax};
pub use header::{strip_non_esp_marker, Flags, Header, HEADER_LEN, MAJOR_VERSION, NON_ESP_MARKER};
pub use msg::{parse_inner, Message, SaInitValues};
pub use notify::{Delete, Notify, NotifyType};
pub use payload::{Cp, CpAttribute, Ke, Payload, Payloads, GENERIC_HEADER_LEN, NONCE_LEN};
pub use sa::{Attribute, Proposal, ProposalSpec, Sa, Transform, TransformSpec, ATTR_KEY_LENGTH};
pub use sk::{unpad, Encrypted, Fragment, SkLayout, SkParams};
pub use ts::{AddrRange, Selector, TrafficSelector, Ts};
pub use types::{
    transform_id, AuthMethod, CertEncoding, CfgType, DhGroup, ExchangeType, HashAlgorithm, IdType,
    PayloadType, ProtocolId, TransformType, TsType,
};
