//! Fuzz target: `rvs_wire::fuzzing::fuzz_views`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rvs_wire::fuzzing::fuzz_views(data);
});
