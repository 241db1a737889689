//! CSTP frames as an SSL-VPN client sends them inside TLS: any bytes are frames, an
//! incomplete frame or refused, never a panic, and frames write back byte for byte
//! (`ixgw::tunnel::tls::cstp`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::tunnel::tls::cstp::fuzz_stream(data);
});
