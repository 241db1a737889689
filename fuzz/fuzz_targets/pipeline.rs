//! The whole pipeline over arbitrary records on plain and WireGuard attachments, with the
//! accounting oracle of `ixgw::dataplane::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::dataplane::fuzz::pipeline(data);
});
