//! Fuzz target: `rvs_wire::fuzzing::fuzz_icmp_inner`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rvs_wire::fuzzing::fuzz_icmp_inner(data);
});
