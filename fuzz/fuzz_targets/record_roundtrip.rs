//! Fuzz target `record_roundtrip`: see `tests/fuzz_harness/record_roundtrip.rs` for what it builds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmlog_fuzz::check("record_roundtrip", data));
