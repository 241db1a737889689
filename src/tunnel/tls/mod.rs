//! The `tls` attachment (SSL-VPN clients speaking OpenConnect's AnyConnect-compatible
//! protocol): its sans-IO half. So far the CSTP framing ([`cstp`]), checked against the frames
//! `openconnect` and `ocserv` exchanged (tests/vectors/cstp). The HTTP/XML login, CONNECT,
//! address pools, DPD and the rustls server come next.

pub mod cstp;
