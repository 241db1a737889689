//! The body of the `facility_cert` fuzz target, shared with the unit tests. Not used by the
//! daemon: it allocates.
//!
//! The input is a list of fields, each a two-octet big-endian length and that many octets (a
//! field cut short or missing is empty): CRL bytes, then the certificates of a chain, leaf
//! first. The CRL is loaded into the example CA's bundle (`config/example-pki`), the chain
//! read as a peer's and judged for the example's facility 4212345674; the whole input is also
//! read as a certificate file and as CRL bytes. Nothing may panic; every refusal is a state
//! or an error.

use super::cert::FacilityCert;
use super::trust::{Ca, CrlPolicy};
use super::verify::{verify, Expect};
use super::FacilityState;
use crate::ids::FacilityCode;

/// The example CA of `config/example-pki`.
pub const CA: &[u8] = include_bytes!("../../config/example-pki/ca.crt");
/// A time inside the example certificates' validity (2027-01-01).
pub const SEED_TIME: u64 = 1_798_761_600;

/// Splits fuzz input into fields, each a two-octet big-endian length and that many octets (a
/// field cut short is what is left). Shared by the fuzz targets over certificates.
pub fn fields(data: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (field, tail) = tail.split_at(len);
        fields.push(field);
        rest = tail;
    }
    fields
}

/// Judges `data` as described above; the state of the chain, if it parsed.
pub fn judge(data: &[u8]) -> Option<FacilityState> {
    let fields = fields(data);
    let _ = FacilityCert::from_file_bytes(data);
    let mut ca = Ca::new("example-ca", CA, CrlPolicy::FailClosed, 2).ok()?;
    let _ = ca.load_crl(1, data);
    if let Some(crl) = fields.first() {
        let _ = ca.load_crl(0, crl);
    }
    let chain = fields.get(1..).unwrap_or_default();
    let cert = FacilityCert::from_der_chain(chain).ok()?;
    let code = FacilityCode::parse("4212345674").ok()?;
    let keys = [[7u8; 32]];
    let expect = Expect {
        code,
        wireguard_keys: &keys,
        pinned_spki: None,
    };
    Some(verify(&cert, &expect, &[&ca], &[], SEED_TIME).state)
}

/// The seed: the example CRL and Omura clinic's certificate, as fields.
pub fn seed() -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let crl = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(include_bytes!(
        "../../config/example-pki/crl.pem"
    ))
    .map(|d| d.to_vec())
    .unwrap_or_default();
    let cert = rustls_pki_types::CertificateDer::from_pem_slice(include_bytes!(
        "../../config/example-pki/omura-clinic.crt"
    ))
    .map(|d| d.to_vec())
    .unwrap_or_default();
    let mut out = Vec::new();
    for f in [crl, cert] {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(&f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_seed_is_judged() {
        // The example certificate does not bind key [7; 32]: judged all the way to the binding.
        assert_eq!(judge(&seed()), Some(FacilityState::BindingMismatch));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn mutated_seeds_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut data = seed();
            for (i, b) in flips {
                let n = data.len();
                data[i % n] ^= b;
            }
            let _ = judge(&data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = judge(&data);
        }
    }
}
