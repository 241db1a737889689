//! Peer authentication over arbitrary bytes: certificate chains, identities, AUTH payloads
//! and signed octets split from the input (`ixgw::tunnel::ipsec::ike::pki::fuzz`) are
//! verified against the CA of the strongSwan capture; nothing may panic. The seeds are the
//! capture's two authentications, which verify.
#![no_main]

use std::sync::OnceLock;

use ixgw::tunnel::ipsec::ike::pki::{fuzz, TrustStore};
use libfuzzer_sys::fuzz_target;

const CA: &[u8] = include_bytes!("../../tests/vectors/ipsec-ca.crt");

fn trust() -> &'static TrustStore {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    TRUST.get_or_init(|| TrustStore::from_pem(CA).expect("the capture's CA"))
}

fuzz_target!(|data: &[u8]| {
    let _ = fuzz::verify(trust(), fuzz::SEED_TIME, data);
});
