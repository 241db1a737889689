//! Tests of the IKE engine over the in-memory pair ([`pair::Pair`]).

mod handshake;
pub(crate) mod pair;
