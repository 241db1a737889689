//! ixgw — the data plane of an IX interconnect for Japan's medical networks.
//!
//! Layers, from the wire up, over the shared vocabulary of [`ids`] and [`vocab`] (drop
//! reasons, per-worker counters): [`wire`] (packet views) and [`nat`] (translation), [`policy`],
//! [`facility`], [`tunnel`] (sans-IO tunnel state machines), [`dataplane`] (the pipeline),
//! then [`config`], [`metrics`], [`admin`], [`audit`] (the audit trail's writer thread, a
//! file and journald), [`usage`] (usage records for cost sharing: a thread and the files of
//! `usage.dir`) and [`runtime`], which alone touches sockets, devices and signals.
//! Beside them, [`ca`] is a control-plane tool (the lab CA of `ixgw ca`) that nothing on the
//! data path imports. See `docs/architecture.md`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod buffer;
pub mod ca;
pub mod config;
pub mod crypto;
pub mod dataplane;
pub mod demo;
pub mod facility;
pub mod ids;
pub mod metrics;
pub mod nat;
pub mod peer_config;
pub mod policy;
pub mod runtime;
pub mod tunnel;
pub mod usage;
pub mod vocab;
pub mod wire;
