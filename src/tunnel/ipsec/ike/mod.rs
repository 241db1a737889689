//! IKEv2 [RFC 7296]: key derivation, messages, the SA state machines.

pub mod keys;
pub mod message;
pub mod pki;
pub mod sa;
