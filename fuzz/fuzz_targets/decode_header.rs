//! Fuzz both header decoders (JSON and ROCKETMQ binary) on the same input: see
//! `rmq_remoting::fuzzing::check_header` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rmq_remoting::fuzzing::check_header(data);
});
