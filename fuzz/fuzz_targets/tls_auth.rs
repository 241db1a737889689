//! The HTTP requests an SSL-VPN client sends before CSTP (login POST with its
//! `<config-auth>` XML, CONNECT): any bytes are a request, an incomplete one or refused,
//! never a panic, the same in one piece or two (`ixgw::tunnel::tls::http`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ixgw::tunnel::tls::http::fuzz_request(data);
});
