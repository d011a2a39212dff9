//! Fuzz target `dir_mutate`: see `tests/fuzz_harness/dir_mutate.rs` for what it builds and checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmlog_fuzz::check("dir_mutate", data));
