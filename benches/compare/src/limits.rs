//! What the machine itself can do, measured in the same run as the engines (context for
//! reading the table, not a row of it): the latency of the syncs the engines are built
//! on, and a copy into a mapping plus one msync (the bulk limit of SPEC §4).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::report::Spread;
use crate::workload::{Payload, thousands};

/// Median and range of some latencies, in milliseconds.
fn millis(samples: &[Duration]) -> String {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    match Spread::of(&ms) {
        Some(s) => format!("median {:.2} ms [{:.2}–{:.2}]", s.median, s.min, s.max),
        None => "not measured".into(),
    }
}

/// `iterations` × (write 128 B at the next offset, then `fdatasync`); when `grow` is
/// false the file was written and synced in full first, so the syncs carry no metadata.
fn write_fdatasync(dir: &Path, iterations: u64, grow: bool) -> Vec<Duration> {
    let path = dir.join(if grow {
        "limit-append"
    } else {
        "limit-overwrite"
    });
    let file: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("limits: create");
    let record_bytes = 128u64;
    if !grow {
        let zeros = vec![0u8; usize::try_from(record_bytes * iterations).expect("fits")];
        file.write_all_at(&zeros, 0).expect("limits: write");
        file.sync_all().expect("limits: fsync");
    }
    let mut payload = Payload::new(128, 7);
    (0..iterations)
        .map(|i| {
            let started = Instant::now();
            file.write_all_at(payload.stamp(i), i * record_bytes)
                .expect("limits: write");
            file.sync_data().expect("limits: fdatasync");
            started.elapsed()
        })
        .collect()
}

/// The limits, as (what, value) pairs for the report.
pub fn measure(parent: &Path, quick: bool) -> Vec<(String, String)> {
    let dir = tempfile::Builder::new()
        .prefix("mmlog-compare-limits-")
        .tempdir_in(parent)
        .expect("limits: temporary directory");
    let iterations = if quick { 16 } else { 256 };
    let mut out = Vec::new();
    let msync = mmlog::limits::msync_page(dir.path(), 128, iterations).expect("limits: msync");
    out.push((
        format!("copy 128 B into a prefaulted mapping + msync of its page (×{iterations})"),
        millis(&msync),
    ));
    out.push((
        format!("pwrite 128 B over written blocks + fdatasync (×{iterations})"),
        millis(&write_fdatasync(dir.path(), iterations, false)),
    ));
    out.push((
        format!("append 128 B to a growing file + fdatasync (×{iterations})"),
        millis(&write_fdatasync(dir.path(), iterations, true)),
    ));
    let records: u64 = if quick { 20_000 } else { 1_000_000 };
    let took = mmlog::limits::memcpy_msync(dir.path(), 128, records).expect("limits: memcpy");
    out.push((
        format!(
            "copy {} × 128 B into a prefaulted mapping + one msync",
            thousands(records)
        ),
        format!(
            "{:.3} s ({:.2} M records/s)",
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64() / 1e6
        ),
    ));
    out
}
