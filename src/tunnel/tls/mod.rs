//! The `tls` attachment (SSL-VPN clients speaking OpenConnect's AnyConnect-compatible
//! protocol): its sans-IO half, checked against what `openconnect` 9.01 and `ocserv` 1.1.6
//! exchanged (tests/vectors/cstp). A client logs in with its facility certificate on one TLS
//! connection and opens the tunnel on a second:
//!
//! * [`http`]: the requests before CSTP — the login `POST` and `CONNECT /CSCOSSLC/tunnel` —
//!   parsed from a byte buffer that may hold part of one, with hard size bounds, and the
//!   bodiless error answers;
//! * [`auth`]: the login's `<config-auth>` XML, the session cookie, and the login's answers
//!   (success with the cookie, or a refusal openconnect prints and stops on);
//! * [`connect`]: CONNECT's answers (`200 CONNECTED` with the tunnel's parameters, or 401/503);
//! * [`cstp`]: the CSTP frames once CONNECT succeeded;
//! * [`book`]: the sessions of an attachment as the TLS thread keeps them (cookies, pool
//!   addresses, reconnects, idle and session timeouts);
//! * [`relay`]: the messages between the TLS thread and the data-path worker;
//! * [`sessions`]: the worker's half ([`TlsTunnel`]): which session holds which address for
//!   which peer, packets in and out.
//!
//! No I/O and no clock here: the rustls server and the connections are the runtime's
//! (`runtime/tls`).

pub mod auth;
pub mod book;
pub mod connect;
pub mod cstp;
pub mod http;
pub mod relay;
pub mod sessions;

pub use sessions::{TlsConfig, TlsTunnel};
