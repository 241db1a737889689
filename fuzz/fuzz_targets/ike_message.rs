//! The IKEv2 message codec over arbitrary bytes: parsing never panics, and what parses
//! re-encodes to bytes that parse again to the same canonical encoding
//! (`ixgw::tunnel::ipsec::ike::message::fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::tunnel::ipsec::ike::message::fuzz::round_trip(data);
});
