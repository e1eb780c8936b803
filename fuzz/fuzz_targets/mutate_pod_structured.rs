//! Structure-aware pods (containers, init containers, env, probes, mounts, volumes,
//! annotations, node selectors) built with `arbitrary` into `mutate_pod`, in every mode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|shape: fuzz_support::PodShape| {
    fuzz_support::check_all_modes(&shape.into_pod());
});
