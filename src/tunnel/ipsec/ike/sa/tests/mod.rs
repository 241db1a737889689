//! Tests of the IKE engine over the in-memory pair ([`pair::Pair`]).

mod cookie;
mod failures;
mod fragment;
mod handshake;
mod informational;
mod lifetime;
pub(crate) mod pair;
mod reconfigure;
mod rekey;
mod retransmit;
mod roaming;
mod strongswan;
