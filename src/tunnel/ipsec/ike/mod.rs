//! IKEv2 [RFC 7296]: key derivation, messages, the SA state machines.

mod der;
pub mod keys;
pub mod message;
pub mod pki;
pub mod sa;
