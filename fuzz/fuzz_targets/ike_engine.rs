//! The IKEv2 SA state machines over arbitrary scripts of datagrams, time steps and rounds of
//! real traffic between an initiator and a responder: nothing panics, no timer is left in
//! the past (`ixgw::tunnel::ipsec::ike::sa::fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::tunnel::ipsec::ike::sa::fuzz::run(data);
});
