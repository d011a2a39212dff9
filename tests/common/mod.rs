//! Helpers shared by the integration tests: options for tiny logs, a seeded RNG,
//! deterministic payloads, byte surgery on closed files, and a reader of the log.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mmlog::{Durability, Lsn, Options, Wal};

/// 64 KiB segments, no per-append sync, no prefault: fast and full of rollovers.
pub fn small() -> Options {
    Options {
        segment_size_bytes: 64 * 1024,
        durability: Durability::None,
        prefault: false,
        ..Options::default()
    }
}

/// Whether the page holding `addr` is mapped in this process right now
/// ([`mmlog::testing::page_resident`]).
pub fn page_resident(addr: usize) -> bool {
    mmlog::testing::page_resident(addr).expect("read /proc/self/pagemap")
}

/// Waits (yielding, never sleeping) until `done()` holds; panics with `what` after
/// 20 seconds.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::yield_now();
    }
}

/// A small, seeded pseudo-random generator (splitmix64): reproducible, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The payload a test writes for `lsn`: its bytes depend on the LSN and a tag, so a
/// record read back under the wrong LSN or from another run never matches.
pub fn payload(tag: u64, lsn: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(tag.wrapping_mul(1_000_003) ^ lsn);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Every record of the log as `(lsn, payload)`.
pub fn read_all(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    wal.iter_from(Lsn(0))
        .expect("iter")
        .map(|r| {
            let r = r.expect("record");
            (r.lsn().0, r.payload().to_vec())
        })
        .collect()
}

/// Segment files of `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Flips one bit of a closed file.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read");
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).expect("write");
}

/// Overwrites bytes of a closed file.
pub fn write_bytes(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(bytes, offset).expect("write");
}

/// Reads bytes of a closed file.
pub fn read_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = OpenOptions::new().read(true).open(path).expect("open");
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, offset).expect("read");
    b
}

/// Cuts a closed file to `len` bytes.
pub fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("set_len");
}

/// First byte of the record area in a segment.
pub const DATA_OFFSET: u64 = 4096;
/// Size of a record header.
pub const HEADER: u64 = 32;

/// Frame size of a single record with `len` bytes of payload.
pub fn frame_len(len: u64) -> u64 {
    (HEADER + len).next_multiple_of(8)
}

/// Offsets (in the file) of the frames of a segment written with single records of the
/// given payload lengths, in order.
pub fn frame_offsets(lens: &[u64]) -> Vec<u64> {
    let mut at = DATA_OFFSET;
    lens.iter()
        .map(|l| {
            let o = at;
            at += frame_len(*l);
            o
        })
        .collect()
}
pub mod built;
pub mod chain;
pub mod model;
pub mod recovered;
