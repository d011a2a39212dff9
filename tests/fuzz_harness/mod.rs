//! The fuzz harness, shared by the cargo-fuzz targets in `fuzz/` (which include this
//! directory with `#[path]`) and by `tests/fuzz_regressions.rs`, so that every input a
//! fuzzer ran, every seed and every past finding goes through the same checks.
//!
//! Each target module has a `run(&[u8]) -> Result<(), String>`: it decodes the input
//! with `wire::Reader` (any bytes are a valid input), builds a directory on the
//! simulated disk or runs operations there, and returns `Err` with a diagnosis when
//! the engine breaks a guarantee; a panic inside the engine is a finding too. The
//! typed case each input decodes to can be written back to bytes (`encode`), which is
//! how `seeds` makes the seed corpora and how regression tests keep their inputs.
#![allow(dead_code)]

pub mod bases;
pub mod checkpoint_decode;
pub mod dir_mutate;
pub mod ops_model;
pub mod oracle;
pub mod record_roundtrip;
#[path = "../common/recovered.rs"]
pub mod recovered;
pub mod seeds;
pub mod segment_decode;
pub mod wire;

/// A target's entry point: `Err` with a diagnosis when the engine broke a guarantee.
pub type Run = fn(&[u8]) -> Result<(), String>;

/// The fuzz targets, by name, with their `run` functions.
pub const TARGETS: [(&str, Run); 5] = [
    ("segment_decode", segment_decode::run),
    ("checkpoint_decode", checkpoint_decode::run),
    ("record_roundtrip", record_roundtrip::run),
    ("ops_model", ops_model::run),
    ("dir_mutate", dir_mutate::run),
];
