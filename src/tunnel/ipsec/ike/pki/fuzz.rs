//! The body of the `ike_auth_verify` fuzz target, shared with the unit tests. Not used by the
//! daemon: it allocates.
//!
//! The input is a list of fields, each a two-octet big-endian length and that many octets
//! (a field cut short or missing is empty): the ID payload body (type, three reserved
//! octets, data), the AUTH payload body (method, three reserved octets, data), the signed
//! octets, then the certificates, end entity first. [`verify_peer`] must refuse or accept
//! any of it without panicking.

use super::{verify_peer, AuthError, TrustStore, VerifiedPeer};
use crate::tunnel::ipsec::ike::message::{Auth, AuthMethod, Id, IdType};

/// The time of the strongSwan capture the seed corpus comes from (2026-11-21 13:11:32 UTC),
/// inside its certificates' validity.
pub const SEED_TIME: u64 = 1_795_266_692;

/// Splits `data` into fields and verifies them against `trust` at `now`.
pub fn verify(trust: &TrustStore, now: u64, data: &[u8]) -> Result<VerifiedPeer, AuthError> {
    let fields = crate::facility::fuzz::fields(data);
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let (id, auth) = (field(0), field(1));
    let reserved = |b: &[u8]| [1, 2, 3].map(|i| b.get(i).copied().unwrap_or(0));
    let id = Id {
        id_type: IdType(id.first().copied().unwrap_or(0)),
        reserved: reserved(id),
        data: id.get(4..).unwrap_or_default(),
    };
    let auth = Auth {
        method: AuthMethod(auth.first().copied().unwrap_or(0)),
        data: auth.get(4..).unwrap_or_default(),
    };
    let chain = fields.get(3..).unwrap_or_default();
    verify_peer(trust, chain, now, &id, &auth, field(2))
}

/// The input [`verify`] splits into these fields.
pub fn encode(id: &Id<'_>, auth: &Auth<'_>, signed_octets: &[u8], chain: &[&[u8]]) -> Vec<u8> {
    let id = [&id.auth_prefix()[..], id.data].concat();
    let auth = [&[auth.method.0, 0, 0, 0][..], auth.data].concat();
    let mut out = Vec::new();
    for field in [&id[..], &auth, signed_octets]
        .into_iter()
        .chain(chain.iter().copied())
    {
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&field[..usize::from(len)]);
    }
    out
}
