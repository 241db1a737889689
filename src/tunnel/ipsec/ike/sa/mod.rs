//! The IKEv2 SA state machines [RFC 7296], initiator and responder, sans-IO: every IKE SA of
//! one IPsec attachment in one [`IkeEngine`].
//!
//! Layer contract: no sockets, no clock, no threads. Datagrams come in through
//! [`IkeEngine::handle_datagram`] (IKE messages of UDP 500, and of UDP 4500 without the
//! non-ESP marker), time through `now` on every call; what to send comes out of
//! [`IkeEngine::poll_transmit`], what happened out of [`IkeEngine::poll_event`] — among it
//! the CHILD SAs for the data path to install ([`IkeEvent::ChildSaUp`]) and every refused
//! message with its reason ([`IkeEvent::Refused`]), which the pipeline counts. The engine
//! runs on a thread of its own, off the data path (docs/architecture.md, "IPsec").
//!
//! Peer input never panics and never allocates without bound: parse errors, failed
//! decryption and unexpected messages are counted `Refused` events; half-open IKE SAs are
//! bounded (cookies above a threshold, a hard limit above that) and time out; fragment
//! reassembly is bounded per IKE SA.
//!
//! Each IKE SA waits for one thing at a time (states named for it: `ExpectIkeAuth`), with a
//! window of one request each way [RFC 7296 § 2.3].
//!
//! # Driving an engine
//!
//! ```text
//! IkeEngine::new(config, now)            peers with `start: Initiate` go at the first timeout
//! handle_datagram(now, 500|4500, from, bytes)
//! handle_timeout(now)                    when poll_timeout() is due
//! initiate(peer, now) / delete(peer, now) / rekey_child / rekey_ike
//! esp_usage(peer, spi, bytes, now)       the data path's counters: rekey by bytes, liveness
//! poll_transmit() -> Transmit { from_port, to, data }   (marker added by the runtime on 4500)
//! poll_event()    -> IkeEvent
//! ```
//!
//! The data path installs both directions of a [`ChildSaUp`] (keys in [`ChildSaParams`],
//! which builds the ESP module's `SaConfig`), sends outbound traffic on the newest SA of a
//! peer, keeps receiving on a replaced SA until its `ChildSaDown`, and encapsulates ESP in
//! UDP 4500 to `remote_addr` when `udp_encap` says so.
//!
//! # Files
//!
//! `config` and `event` are the API; `engine` holds the IKE SAs by our SPI and applies what
//! one IKE SA does to another (`ctx::Effect`); `ike_sa` and `timers` are one IKE SA's
//! machinery; `init`, `ike_auth`, `create_child`, `ike_rekey` and `informational` are the
//! exchanges; `proposal`, `ts`, `auth`, `nat`, `cookie`, `crypt` and `fragment` are the
//! pieces they use. `tests/` holds the in-memory pair harness and the end-to-end tests.
//!
//! Interoperability targets strongSwan 5.9.8: its retransmission schedule (4 s × 1.8^n, 5
//! tries), its move to port 4500 for IKE_AUTH whenever the peer does NAT traversal, its
//! proposal and notification set.

#![forbid(unsafe_code)]

mod auth;
mod child;
mod config;
mod cookie;
mod create_child;
mod crypt;
mod ctx;
mod engine;
mod event;
mod fragment;
pub mod fuzz;
mod ike_auth;
mod ike_rekey;
mod ike_sa;
mod informational;
mod init;
mod nat;
mod proposal;
mod timers;
mod ts;

#[cfg(test)]
mod tests;

pub use config::{
    CertAuthError, CertificateAuth, DpdAction, EspProposal, Identity, IkeConfig, IkePeerConfig,
    IkeProposal, Limits, PeerAuth, SpiClass, Start,
};
pub use engine::IkeEngine;
pub use event::{ChildSaParams, ChildSaUp, DownReason, IkeEvent, Refusal, Transmit};
