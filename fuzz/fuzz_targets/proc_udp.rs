//! The `/proc/net/udp` parser behind `ixgw_socket_drops_total` over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::runtime::fuzz_parse_udp_drops(data);
});
