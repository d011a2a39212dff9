//! Writes the seed corpora: `fuzz/corpus/<target>/<seed name>` for every target, from
//! `tests/fuzz_harness/seeds.rs` (the same seeds `tests/fuzz_regressions.rs` replays).
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --bin gen_corpus`.
//! Existing files in the corpus directories (what fuzzing added) are kept.

use std::path::PathBuf;

use mmlog_fuzz::harness::{TARGETS, seeds};

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, _) in TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let seeds = seeds::seeds(target);
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
