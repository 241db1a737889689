//! Facility certificates and CRLs over arbitrary bytes (`ixgw::facility::fuzz`): a CRL loaded
//! into the example CA's bundle, a chain judged for a facility, the input read as a
//! certificate file and as a CRL; nothing may panic. The seed is the example CRL and Omura
//! clinic's certificate (`config/example-pki`).
#![no_main]

use ixgw::facility::fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fuzz::judge(data);
});
