//! Fuzz target `ops_model`: an `Arbitrary` sequence of operations with power cuts and
//! reopens, run against the engine and a model; see `tests/fuzz_harness/ops_model.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmlog_fuzz::Ops;

fuzz_target!(|ops: Ops| {
    if let Err(e) = mmlog_fuzz::harness::ops_model::run_ops(&ops.0) {
        panic!("ops_model: {e}\noperations: {:?}", ops.0);
    }
});
