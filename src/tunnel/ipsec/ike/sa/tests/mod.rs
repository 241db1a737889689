//! Tests of the IKE engine over the in-memory pair ([`pair::Pair`]).

mod failures;
mod handshake;
pub(crate) mod pair;
mod retransmit;
mod strongswan;
