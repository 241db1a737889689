//! `wire::inspect` over arbitrary bytes; packets it accepts are translated and checked
//! against the oracle of `ixgw::nat::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::nat::fuzz::inspect_translate(data);
});
