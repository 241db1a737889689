//! ESP decapsulation over arbitrary bytes with fixed SAs, raw and sealed with the SA's keys,
//! with the oracle of `ixgw::tunnel::ipsec::esp::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ixgw::tunnel::ipsec::esp::fuzz::decap(data);
});
