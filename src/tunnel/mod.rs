//! Tunnel state machines. Each kind is sans-IO: datagrams in, datagrams and inner packets
//! out through caller-supplied buffers, time passed in as `now`.
//!
//! The data path talks to attachments through [`Tunnel`]; a new tunnel kind (IPsec, TLS) is a
//! new variant, not a new code path in the pipeline.

#![forbid(unsafe_code)]

pub mod plain;
pub mod wireguard;

/// One attachment's tunnel state.
pub enum Tunnel {
    WireGuard(wireguard::WgAttachment),
    Plain(plain::PlainTunnel),
}
