//! `src/format.rs` (and the `src/crc.rs` it calls) of mmlog, compiled on its own so that Miri checks its unit tests
//! (the decoders on valid, damaged and arbitrary bytes) for undefined behaviour. The
//! code is the crate's own file, included by path: nothing here is a copy.
#![allow(dead_code)]
// The crate-wide allow above fulfils the file's own `expect(dead_code)` lines first.
#![allow(unfulfilled_lint_expectations)]

#[path = "../../src/crc.rs"]
mod crc;
#[path = "../../src/format.rs"]
mod format;
