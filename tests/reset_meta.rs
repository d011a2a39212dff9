//! `Wal::reset` (drop every record and continue at a given LSN, for a replica that
//! installs a snapshot) and the durable metadata (`set_meta`, for a Raft vote).
//!
//! Both are provoked on the real file system (crash = drop without close) and on the
//! simulated disk with power cuts at every point of the operation (a failpoint ends the
//! operation at each persistence step, then the power is cut): the result is always
//! either the state before or the state after, never a mix.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{payload, read_all, small};
use mmlog::testing::{FailAction, Failpoints, SimDisk, Step};
use mmlog::{Durability, Error, Lsn, Options, Wal};

fn fill(wal: &Wal, from: u64, to: u64) {
    for lsn in from..=to {
        assert_eq!(
            wal.append(&payload(7, lsn, (lsn % 300) as usize)).unwrap(),
            Lsn(lsn)
        );
    }
}

#[test]
fn reset_continues_at_the_given_lsn_and_survives_crash_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    fill(&wal, 1, 700);
    wal.reset(Lsn(5000)).unwrap();
    assert_eq!(wal.first_lsn(), Lsn(5000));
    assert_eq!(wal.appended(), Lsn(4999));
    assert!(read_all(&wal).is_empty());
    assert!(matches!(wal.read(Lsn(3)), Err(Error::NotFound { .. })));
    assert_eq!(wal.append(b"after the reset").unwrap(), Lsn(5000));
    drop(wal); // crash
    let (wal, r) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(r.first_lsn, Lsn(5000), "{r}");
    assert_eq!(read_all(&wal), vec![(5000, b"after the reset".to_vec())]);
    assert_eq!(common::segments(dir.path()).len(), wal.segments().len());
    // Backwards works too (a follower's log replaced by an older snapshot's tail).
    wal.reset(Lsn(10)).unwrap();
    fill(&wal, 10, 20);
    wal.close().unwrap();
    let (wal, r) = Wal::open(dir.path(), small()).unwrap();
    assert!(r.clean_shutdown, "{r}");
    assert_eq!(read_all(&wal).first().map(|r| r.0), Some(10));
    assert_eq!(read_all(&wal).len(), 11);
}

#[test]
fn reset_is_refused_with_checkpoints_and_for_lsn_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    fill(&wal, 1, 10);
    let e = wal.reset(Lsn(0)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    wal.write_checkpoint(Lsn(10), b"state").unwrap();
    let e = wal.reset(Lsn(100)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert_eq!(read_all(&wal).len(), 10, "a refused reset changed the log");
}

fn sim_opts(sim: &SimDisk, fp: &Arc<Failpoints>) -> Options {
    Options {
        segment_size_bytes: 16 * 1024,
        durability: Durability::None,
        prefault: false,
        env: sim.env().without_background().failpoints(Arc::clone(fp)),
        ..Options::default()
    }
}

/// Every persistence step of a reset, made to fail in turn, then a power cut: the log
/// is the old one or the reset one.
#[test]
fn a_reset_interrupted_at_any_step_is_all_or_nothing() {
    let steps = [
        Step::SegmentCreate,
        Step::SegmentAllocate,
        Step::SegmentHeaderWrite,
        Step::SegmentSync,
        Step::SegmentRename,
        Step::DirSync,
        Step::SegmentMap,
        Step::SegmentRemove,
    ];
    let dir = PathBuf::from("sim").join("log");
    for (i, step) in steps.into_iter().enumerate() {
        for seed in 0..8u64 {
            let sim = SimDisk::new();
            let fp = Arc::new(Failpoints::new());
            let (wal, _) = Wal::open(&dir, sim_opts(&sim, &fp)).unwrap();
            fill(&wal, 1, 200);
            wal.sync().unwrap();
            let old = read_all(&wal);
            fp.arm(step, 0, FailAction::Errno(5));
            let result = wal.reset(Lsn(1000));
            fp.disarm(step);
            drop(wal);
            sim.power_cut(seed * 31 + i as u64);
            let (wal, r) = Wal::open(&dir, sim_opts(&sim, &fp))
                .unwrap_or_else(|e| panic!("{step:?} seed {seed}: {e}"));
            let got = read_all(&wal);
            if result.is_ok() {
                // Reported done: it must have happened.
                assert!(got.is_empty() && r.first_lsn == Lsn(1000), "{step:?}: {r}");
            } else {
                assert!(
                    got == old || (got.is_empty() && r.first_lsn == Lsn(1000)),
                    "{step:?} seed {seed}: neither old nor reset ({} records from {}):\n{r}",
                    got.len(),
                    r.first_lsn
                );
            }
            // The log works either way.
            let next = r.next_lsn;
            assert_eq!(wal.append(b"x").unwrap(), next);
        }
    }
}

#[test]
fn metadata_is_durable_when_set_returns_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.meta("vote"), None);
    wal.set_meta("vote", b"term 3, node 2").unwrap();
    wal.set_meta("committed", &42u64.to_le_bytes()).unwrap();
    wal.set_meta("vote", b"term 4, node 1").unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.meta("vote").as_deref(), Some(&b"term 4, node 1"[..]));
    assert_eq!(wal.meta("committed"), Some(42u64.to_le_bytes().to_vec()));
    wal.remove_meta("committed").unwrap();
    assert_eq!(wal.meta_all().len(), 1);
    let e = wal.set_meta("big", &vec![0u8; 5000]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    wal.close().unwrap();
    let ro = Options {
        read_only: true,
        ..small()
    };
    let (wal, _) = Wal::open(dir.path(), ro).unwrap();
    assert_eq!(wal.meta("committed"), None);
    assert!(matches!(wal.set_meta("x", b"y"), Err(Error::ReadOnly)));
}

/// Power cuts after each write of a value, and writes failing at each step: the value
/// read back is always one that was written, and the last one whose write returned
/// Ok or a later one.
#[test]
fn metadata_under_power_cuts_is_the_old_or_the_new_value() {
    let dir = PathBuf::from("sim").join("log");
    for seed in 0..200u64 {
        let sim = SimDisk::new();
        let fp = Arc::new(Failpoints::new());
        let (wal, _) = Wal::open(&dir, sim_opts(&sim, &fp)).unwrap();
        let mut acked: Option<u64> = None;
        let writes = 1 + seed % 7;
        for v in 1..=writes {
            if v == writes && seed % 2 == 1 {
                let step = [
                    Step::SegmentHeaderWrite,
                    Step::SegmentSync,
                    Step::SegmentRename,
                ][(seed % 3) as usize];
                fp.arm_once(step, 0, FailAction::Errno(5));
            }
            if wal.set_meta("vote", &v.to_le_bytes()).is_ok() {
                acked = Some(v);
            }
        }
        drop(wal);
        sim.power_cut(seed);
        let (wal, _) = Wal::open(&dir, sim_opts(&sim, &fp)).unwrap();
        let got = wal
            .meta("vote")
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        match (acked, got) {
            (Some(a), Some(g)) => assert!(g >= a && g <= writes, "seed {seed}: acked {a}, got {g}"),
            (None, got) => assert!(got.is_none_or(|g| g <= writes), "seed {seed}: {got:?}"),
            (Some(a), None) => panic!("seed {seed}: acked value {a} lost"),
        }
    }
}

/// FAULTS D25 for the metadata file: a read error on either slot fails the open (never
/// a fall-back to the other, older slot, which for a Raft vote would be unsafe), and a
/// file cut below its two slots is damage, not an older value.
#[test]
fn a_metadata_read_error_or_a_cut_file_fails_the_open_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // No background thread: no segment is prepared ahead at a moment of its choosing,
    // so every open below reads the same files.
    let opts = |fp: &Arc<Failpoints>| Options {
        env: mmlog::Env::with_failpoints(Arc::clone(fp)).without_background(),
        ..small()
    };
    let (wal, _) = Wal::open(dir.path(), opts(&Arc::new(Failpoints::new()))).unwrap();
    // Both slots hold a copy: the newest (term 4) in slot 1.
    wal.set_meta("vote", b"term 3").unwrap();
    wal.set_meta("vote", b"term 4").unwrap();
    fill(&wal, 1, 40);
    wal.close().unwrap();

    // Every read of the open, one at a time, fails with EIO.
    let counting = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), opts(&counting)).unwrap();
    assert_eq!(wal.meta("vote").as_deref(), Some(&b"term 4"[..]));
    wal.close().unwrap();
    let reads = counting.hits(Step::SegmentRead);
    let before = common::built::snapshot(dir.path());
    let mut meta_reads = 0;
    for k in 0..reads {
        let fp = Arc::new(Failpoints::new());
        fp.arm_once(Step::SegmentRead, k, FailAction::Errno(5));
        match Wal::open(dir.path(), opts(&fp)) {
            Ok((wal, _)) => panic!(
                "read {k} failed, yet the open succeeded with vote {:?}",
                wal.meta("vote")
            ),
            Err(Error::Io { op, path, source }) => {
                assert_eq!(op, mmlog::IoOp::Read, "read {k}");
                assert_eq!(source.raw_os_error(), Some(5), "read {k}");
                if path.file_name().is_some_and(|n| n == "META") {
                    meta_reads += 1;
                }
            }
            Err(e) => panic!("read {k}: {e:?}"),
        }
        assert!(
            common::built::snapshot(dir.path()) == before,
            "read {k}: the failed open changed the files"
        );
    }
    assert_eq!(
        meta_reads, 2,
        "both slots are read, and each failure counts"
    );

    // The file cut to its first slot (which holds the older value).
    let meta = dir.path().join("META");
    let f = std::fs::OpenOptions::new().write(true).open(&meta).unwrap();
    f.set_len(4096).unwrap();
    drop(f);
    match Wal::open(dir.path(), opts(&Arc::new(Failpoints::new()))) {
        Ok((wal, _)) => panic!("a cut META opened with vote {:?}", wal.meta("vote")),
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, meta),
        Err(e) => panic!("a cut META: {e:?}"),
    }
}
