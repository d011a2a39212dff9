//! `Options::recovery_progress`: what a progress bar over a recovery scan is told.

use std::sync::{Arc, Mutex};

use mmlog::{Durability, Options, RecoveryProgress, Wal};

/// Opens `dir` with a hook that records every call; returns the calls and the bytes
/// the report says were verified.
fn open_recording(dir: &std::path::Path, segment: u64) -> (Vec<(u64, u64)>, u64) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&calls);
    let opts = Options {
        segment_size_bytes: segment,
        read_only: true,
        recovery_progress: Some(RecoveryProgress::new(move |done, total| {
            sink.lock().expect("calls").push((done, total));
        })),
        ..Options::default()
    };
    let (wal, report) = Wal::open(dir, opts).expect("open");
    drop(wal);
    let calls = calls.lock().expect("calls").clone();
    (calls, report.bytes_scanned)
}

fn write(dir: &std::path::Path, segment: u64, records: usize, len: usize) {
    let opts = Options {
        segment_size_bytes: segment,
        durability: Durability::None,
        ..Options::default()
    };
    let (wal, _) = Wal::open(dir, opts).expect("create");
    let payload = vec![0x5a; len];
    for _ in 0..records {
        wal.append(&payload).expect("append");
    }
    wal.close().expect("close");
}

/// The calls rise monotonically under a fixed total and end at it.
fn assert_well_formed(calls: &[(u64, u64)], scanned: u64) {
    let Some(&(last_done, total)) = calls.last() else {
        panic!("no progress reported");
    };
    assert_eq!(last_done, total, "the last call says the scan is done");
    assert!(
        total >= scanned,
        "total {total} below the {scanned} bytes verified"
    );
    for w in calls.windows(2) {
        assert!(w[0].0 <= w[1].0, "progress went backwards: {calls:?}");
        assert_eq!(w[0].1, w[1].1, "the total changed: {calls:?}");
    }
}

#[test]
fn progress_is_reported_per_segment_and_ends_at_the_total() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let segment = 64 * 1024;
    write(&dir, segment, 200, 1000); // about 200 KiB: four segments
    let segments = std::fs::read_dir(&dir)
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .count();
    assert!(segments >= 4, "{segments} segments");
    let (calls, scanned) = open_recording(&dir, segment);
    assert_well_formed(&calls, scanned);
    let distinct = calls
        .iter()
        .map(|c| c.0)
        .collect::<std::collections::BTreeSet<_>>();
    assert!(
        distinct.len() >= 4,
        "at least one step per segment with data: {calls:?}"
    );
}

#[test]
fn progress_is_reported_within_a_large_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let segment = 64 * 1024 * 1024;
    write(&dir, segment, 600, 64 * 1024); // about 38 MiB in one segment
    let (calls, scanned) = open_recording(&dir, segment);
    assert_well_formed(&calls, scanned);
    let inside = calls.iter().filter(|c| c.0 > 0 && c.0 < c.1).count();
    assert!(inside >= 2, "a call every 16 MiB: {calls:?}");
}

#[test]
fn a_log_without_records_reports_a_finished_scan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write(&dir, 64 * 1024, 0, 0);
    let (calls, scanned) = open_recording(&dir, 64 * 1024);
    assert_well_formed(&calls, scanned);
}
