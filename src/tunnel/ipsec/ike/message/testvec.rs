//! The IKE messages of the strongSwan 5.9.8 capture `tests/vectors/ipsec-ike-esp.pcap`, for
//! the tests of this codec and of the layers above it (key derivation needs the nonces and
//! SPIs of the IKE_SA_INIT pair).

use super::{strip_non_esp_marker, Message, SaInitValues};
use crate::tunnel::testvec::udp_payloads;

pub(crate) const PCAP: &[u8] = include_bytes!("../../../../../tests/vectors/ipsec-ike-esp.pcap");
pub(crate) const KEYS_LOG: &str =
    include_str!("../../../../../tests/vectors/ipsec-ike-esp.keys.log");

/// Indices into [`ike_messages`].
pub(crate) const SA_INIT_REQUEST: usize = 0;
pub(crate) const SA_INIT_RESPONSE: usize = 1;
pub(crate) const AUTH_REQUEST: usize = 2;
pub(crate) const AUTH_RESPONSE: usize = 3;
pub(crate) const INFORMATIONAL_REQUEST: usize = 4;
pub(crate) const INFORMATIONAL_RESPONSE: usize = 5;

/// The IKE messages of the capture in order, without the non-ESP marker of those on port
/// 4500: IKE_SA_INIT, IKE_AUTH and INFORMATIONAL, request then response.
pub(crate) fn ike_messages() -> Vec<&'static [u8]> {
    udp_payloads(PCAP)
        .into_iter()
        .filter_map(|d| match d.to.port() {
            500 => Some(d.payload),
            _ => strip_non_esp_marker(d.payload),
        })
        .collect()
}

/// Ni, Nr, SPIi and SPIr of the captured IKE_SA_INIT exchange.
pub(crate) fn sa_init_values() -> SaInitValues<'static> {
    let m = ike_messages();
    let request = Message::parse(m[SA_INIT_REQUEST]).expect("captured IKE_SA_INIT request");
    let response = Message::parse(m[SA_INIT_RESPONSE]).expect("captured IKE_SA_INIT response");
    SaInitValues::from_exchange(&request, &response).expect("an IKE_SA_INIT pair")
}
