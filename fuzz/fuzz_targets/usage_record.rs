//! The usage record parser and report behind `ixgw usage` over arbitrary bytes: every line a
//! record or a skipped line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::usage::fuzz_parse(data);
});
