//! IPsec attachments: our own IKEv2 (RFC 7296) and ESP (RFC 4303), sans-IO.

pub mod esp;
pub mod ike;
pub mod tunnel;

pub use tunnel::{EspPath, IkeDatagram, IpsecTunnel};
