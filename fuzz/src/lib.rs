//! The library of the fuzz crate: the shared harness (`tests/fuzz_harness/` of the main
//! crate, included by path so `cargo test` and the fuzzers run the same checks) and an
//! `Arbitrary` sequence of operations for `ops_model`. Every input is decoded by the
//! harness's own `Reader` (ops_model's `Arbitrary` impl delegates to it), so that
//! corpus files, seeds and regression inputs mean the same case whatever version of
//! `arbitrary` is in the lock file.

#[path = "../../tests/fuzz_harness/mod.rs"]
pub mod harness;

use arbitrary::{Arbitrary, Unstructured};

/// Every byte `u` has left.
fn rest<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    std::mem::replace(u, Unstructured::new(&[])).take_rest()
}

/// A sequence of `ops_model` operations decoded from the fuzz input.
#[derive(Debug, Clone)]
pub struct Ops(pub Vec<harness::ops_model::Op>);

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Ops> {
        Ok(Ops(harness::ops_model::decode(rest(u))))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Ops> {
        Ok(Ops(harness::ops_model::decode(u.take_rest())))
    }
}

/// Runs the harness's `run` for `target` and panics with its diagnosis on a failure,
/// which libFuzzer records as a crash.
pub fn check(target: &str, data: &[u8]) {
    let run = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .expect("a known target");
    if let Err(e) = run(data) {
        panic!("{target}: {e}");
    }
}
