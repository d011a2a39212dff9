//! `Wal::open_replay`: recovery hands the records it keeps to the caller during its
//! scan. What it hands out must be exactly what a reader finds after the open (the
//! decoder fuzz oracles, the power-cut simulation and the recovery-mode tests check
//! the same on damaged logs); these tests cover where the replay starts, batches that
//! straddle that point, several segments, purged and salvaged logs, and refused opens.
mod common;
use common::*;

use mmlog::{Error, Lsn, Options, RecoveryMode, Wal};

type Records = Vec<(u64, Vec<u8>)>;

fn replay(dir: &std::path::Path, opts: Options, from: u64) -> mmlog::Result<(Wal, Records)> {
    let mut seen = Vec::new();
    let (wal, report) = Wal::open_replay(dir, opts, Lsn(from), |lsn, p| {
        seen.push((lsn.0, p.to_vec()))
    })?;
    assert_eq!(report.last_lsn, wal.appended(), "{report}");
    Ok((wal, seen))
}

fn after(all: &Records, from: u64) -> Records {
    all.iter().filter(|r| r.0 >= from).cloned().collect()
}

/// Records and batches over many small segments, replayed from every LSN.
#[test]
fn replays_from_any_lsn_across_segments_and_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("create");
    let mut rng = Rng::new(7);
    let mut lsn = 1u64;
    for _ in 0..400 {
        if rng.below(3) == 0 {
            let n = 1 + rng.below(5) as usize;
            let lens: Vec<usize> = (0..n).map(|_| rng.below(300) as usize).collect();
            let ps: Vec<Vec<u8>> = (0..n)
                .map(|k| payload(3, lsn + k as u64, lens[k]))
                .collect();
            let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
            assert_eq!(wal.append_batch(&refs).expect("batch"), Lsn(lsn));
            lsn += n as u64;
        } else {
            let len = rng.below(1500) as usize;
            assert_eq!(wal.append(&payload(3, lsn, len)).expect("append"), Lsn(lsn));
            lsn += 1;
        }
    }
    wal.close().expect("close");
    assert!(
        segments(dir.path()).len() >= 3,
        "the log should span segments"
    );

    let (wal, all) = replay(dir.path(), small(), 0).expect("replay from 0");
    assert_eq!(all, read_all(&wal));
    assert_eq!(all.len() as u64, lsn - 1);
    drop(wal);
    for from in [1, 2, lsn / 3, lsn / 2, lsn - 1, lsn, lsn + 10] {
        let (wal, seen) = replay(dir.path(), small(), from).expect("replay");
        assert_eq!(seen, after(&all, from), "from {from}");
        wal.close().expect("close");
    }
    // Read-only opens replay too.
    let ro = Options {
        read_only: true,
        ..small()
    };
    let (_, seen) = replay(dir.path(), ro, 5).expect("read-only replay");
    assert_eq!(seen, after(&all, 5));
}

/// A new log and an empty one replay nothing; a purged log replays what it kept.
#[test]
fn replays_nothing_from_an_empty_log_and_the_rest_of_a_purged_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (wal, seen) = replay(dir.path(), small(), 0).expect("create");
    assert!(seen.is_empty());
    for i in 1..=200u64 {
        wal.append(&payload(5, i, 700)).expect("append");
    }
    wal.write_checkpoint(Lsn(150), b"state up to 150")
        .expect("checkpoint");
    let first = wal.purge_before(Lsn(151)).expect("purge");
    assert!(first.0 > 1, "something should have been purged");
    let kept = read_all(&wal);
    wal.close().expect("close");

    let (wal, seen) = replay(dir.path(), small(), 0).expect("reopen");
    assert_eq!(seen, kept);
    assert_eq!(seen.first().map(|r| r.0), Some(first.0));
    wal.close().expect("close");
}

/// A torn tail is not replayed; salvage replays around a damaged record, with the
/// gap a reader sees; a refused open returns its error.
#[test]
fn damage_is_never_replayed_and_a_refused_open_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lens = [100u64, 100, 100, 100, 100];
    let (wal, _) = Wal::open(dir.path(), small()).expect("create");
    for (i, &len) in lens.iter().enumerate() {
        wal.append(&payload(9, i as u64 + 1, len as usize))
            .expect("append");
    }
    wal.sync().expect("sync");
    drop(wal); // a crash: no seal
    let seg = segments(dir.path()).into_iter().next().expect("a segment");
    let offsets = frame_offsets(&lens);
    // Damage the body of record 3.
    flip_bit(&seg, offsets[2] + HEADER + 10, 1);

    let strict = Options {
        recovery_mode: RecoveryMode::AbsoluteConsistency,
        read_only: true,
        ..small()
    };
    match replay(dir.path(), strict, 0) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("expected a corrupt log, got {:?}", other.map(|r| r.1)),
    }

    let salvage = Options {
        recovery_mode: RecoveryMode::SkipCorrupted,
        read_only: true,
        ..small()
    };
    let (wal, seen) = replay(dir.path(), salvage, 0).expect("salvage");
    assert_eq!(seen, read_all(&wal));
    assert_eq!(
        seen.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 4, 5],
        "record 3 is skipped"
    );
    drop(wal);

    let point = Options {
        recovery_mode: RecoveryMode::PointInTime,
        ..small()
    };
    let (wal, seen) = replay(dir.path(), point, 0).expect("point in time");
    assert_eq!(seen.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(seen, read_all(&wal));
    wal.close().expect("close");
}

/// A log big enough for recovery to verify checksums ahead on a second thread: with
/// damage in several places, in every mode, it recovers exactly what the same open
/// without background threads (one thread, every checksum on the chain) recovers.
/// Damage done to a copy of a log, given its segment files in order.
type Damage = Box<dyn Fn(&[std::path::PathBuf])>;

#[test]
fn verifying_ahead_on_a_second_thread_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let seg_bytes = 1024 * 1024;
    let base = Options {
        segment_size_bytes: seg_bytes,
        prefault: false,
        durability: mmlog::Durability::None,
        ..Options::default()
    };
    let (wal, _) = Wal::open(dir.path(), base.clone()).expect("create");
    let mut rng = Rng::new(11);
    let mut lsn = 1u64;
    while lsn < 14_000 {
        if rng.below(4) == 0 {
            let ps: Vec<Vec<u8>> = (0..3).map(|k| payload(4, lsn + k, 500)).collect();
            let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
            wal.append_batch(&refs).expect("batch");
            lsn += 3;
        } else {
            wal.append(&payload(4, lsn, 200 + rng.below(1800) as usize))
                .expect("append");
            lsn += 1;
        }
    }
    wal.sync().expect("sync");
    drop(wal);
    let segs = segments(dir.path());
    assert!(segs.len() >= 10, "{} segments", segs.len());

    // Each case damages a fresh copy of the log.
    let damage: Vec<(&str, Damage)> = vec![
        ("intact", Box::new(|_| {})),
        (
            "a flipped bit in a middle segment",
            Box::new(|s| flip_bit(&s[5], DATA_OFFSET + 300_000, 3)),
        ),
        (
            "flipped bits in two segments",
            Box::new(|s| {
                flip_bit(&s[2], DATA_OFFSET + 40, 0);
                flip_bit(&s[7], DATA_OFFSET + 500_000, 6);
            }),
        ),
        (
            "a zeroed stretch at the start of a segment",
            Box::new(|s| write_bytes(&s[4], DATA_OFFSET, &[0u8; 4096])),
        ),
        (
            "a torn end of the last used segment",
            Box::new(|s| {
                let last = &s[s.len() - 2];
                write_bytes(last, DATA_OFFSET + 100_000, &[0xee; 64]);
            }),
        ),
    ];
    for (what, damage) in &damage {
        let copy = tempfile::tempdir().expect("temp dir");
        common::built::copy_dir(dir.path(), copy.path());
        damage(&segments(copy.path()));
        for mode in [
            RecoveryMode::TolerateCorruptedTail,
            RecoveryMode::AbsoluteConsistency,
            RecoveryMode::PointInTime,
            RecoveryMode::SkipCorrupted,
        ] {
            let open = |env: mmlog::Env| {
                let opts = Options {
                    read_only: true,
                    recovery_mode: mode,
                    env,
                    ..base.clone()
                };
                let mut seen = Vec::new();
                Wal::open_replay(copy.path(), opts, Lsn(0), |l, p| {
                    seen.push((l.0, p.to_vec()))
                })
                .map(|(wal, r)| (read_all(&wal), seen, common::built::summaries(&r)))
                .map_err(|e| e.to_string())
            };
            let two = open(mmlog::Env::default());
            let one = open(mmlog::Env::default().without_background());
            assert!(two == one, "{what}, {mode:?}: the two recoveries differ");
            if let Ok((records, replayed, _)) = &two {
                assert!(records == replayed, "{what}, {mode:?}: replay differs");
                if *what == "intact" {
                    assert_eq!(records.len() as u64, lsn - 1);
                }
            }
        }
    }
}

/// A replay that panics part way (a server's bug) unwinds out of the open without
/// waiting for the checksum helper to finish the log, and leaves the directory
/// unlocked and unchanged for the next open.
#[test]
fn a_panicking_replay_unwinds_and_releases_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = Options {
        segment_size_bytes: 1024 * 1024,
        prefault: false,
        durability: mmlog::Durability::None,
        ..Options::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("create");
    // 12 MiB: past the size from which a second thread verifies ahead.
    let records = 3 * 1024u64;
    for lsn in 1..=records {
        wal.append(&payload(5, lsn, 4000)).expect("append");
    }
    wal.close().expect("close");
    let before = common::built::snapshot(dir.path());

    let mut seen = 0u64;
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Wal::open_replay(dir.path(), opts.clone(), Lsn(0), |lsn, _| {
            seen += 1;
            if lsn.0 == 10 {
                panic!("the server's replay failed");
            }
        })
    }));
    assert!(
        unwound.is_err(),
        "the replay's panic did not reach the caller"
    );
    assert_eq!(seen, 10, "records replayed before the panic");
    assert!(
        common::built::snapshot(dir.path()) == before,
        "the panicked open changed the files"
    );

    let (wal, records_back) = replay(dir.path(), opts, 0).expect("reopen after the panic");
    assert_eq!(records_back.len() as u64, records);
    wal.close().expect("close");
}
