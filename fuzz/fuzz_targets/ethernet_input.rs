//! Frames as a carrier's port delivers them: Ethernet II, 802.1Q and ARP parsing never
//! panics, what parses builds again into the same frame (`ixgw::wire::ethernet`), and an
//! `ethernet` attachment's link takes or refuses any frame (`ixgw::tunnel::ethernet::Link`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::wire::ethernet::fuzz_roundtrip(data);
    ixgw::tunnel::ethernet::link::fuzz_receive(data);
});
