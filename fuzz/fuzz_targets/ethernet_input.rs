//! Frames as a carrier's port delivers them: Ethernet II, 802.1Q and ARP parsing never
//! panics, and what parses builds again into the same frame (`ixgw::wire::ethernet`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::wire::ethernet::fuzz_roundtrip(data);
});
