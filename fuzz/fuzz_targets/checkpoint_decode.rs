//! Fuzz target `checkpoint_decode`: see `tests/fuzz_harness/checkpoint_decode.rs` for what it builds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmlog_fuzz::check("checkpoint_decode", data));
