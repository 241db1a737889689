//! The configuration parser and validator over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::config::fuzz_parse(data);
});
