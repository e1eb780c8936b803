//! Arbitrary JSON into `mutation_modes::mutate_pod`, in every mode, with a table-backed image
//! source. Whatever parses as a Pod gets a decision; a patch always applies and marks the
//! pod; mutating the result again is a no-op.
#![no_main]

use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pod) = serde_json::from_slice::<Pod>(data) {
        fuzz_support::check_all_modes(&pod);
    }
});
