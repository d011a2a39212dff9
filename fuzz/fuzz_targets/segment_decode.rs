//! Fuzz target `segment_decode`: see `tests/fuzz_harness/segment_decode.rs` for what it builds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmlog_fuzz::check("segment_decode", data));
