//! Fuzz the frame decoder: see `rmq_remoting::fuzzing::check_decode` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rmq_remoting::fuzzing::check_decode(data);
});
