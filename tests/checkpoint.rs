//! Checkpoints at the log level (SPEC §2.4, FAULTS E29–E31): `Wal::write_checkpoint`
//! from a slice and `write_checkpoint_with` straight into the mapping, the newest usable
//! checkpoint found at open (`Wal::checkpoint`, `RecoveryReport::checkpoint` and
//! `rejected_checkpoints`), retention of checkpoint generations and of the log they
//! need, and the argument checks of `write_checkpoint` and `truncate_after`. Provoked by
//! writing logs of 64 KiB segments with checkpoints, closing them, and damaging the
//! checkpoint files while nothing maps them: zeroing and bit flips (E29), cutting a file
//! below the length its header declares (E30, with a failpoint counting the mappings to
//! show the cut is found before mapping), leftover `checkpoint-*.ckpt.tmp` files (E31),
//! deleting the newest checkpoint, and planting a checkpoint the log does not reach.
//! Recovery must fall back to the previous checkpoint and replay the longer log
//! exactly, name every rejected file with a typed reason, and refuse with
//! `Corrupt(NoUsableCheckpoint)` (never an empty state) when no checkpoint is usable and
//! the log was already purged.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmlog::testing::{Failpoints, Step, read_segment_header};
use mmlog::{
    CheckpointRejection, CorruptionKind, Env, Error, Lsn, Options, RecoveryReport,
    RejectedCheckpoint, Wal,
};

/// Payload tag of the log records.
const TAG: u64 = 0xC4EC;
/// Payload tag of the checkpoint contents.
const STATE_TAG: u64 = 0x57A7E;
/// Offset of the payload in a checkpoint file (the header page comes first).
const CKPT_DATA_OFFSET: u64 = 4096;

/// Length of the record with LSN `lsn`: 100..900 bytes, about 110 records a segment.
fn len_for(lsn: u64) -> usize {
    100 + (lsn.wrapping_mul(2_654_435_761) % 800) as usize
}

/// The record every log of this file holds at `lsn`.
fn record(lsn: u64) -> Vec<u8> {
    payload(TAG, lsn, len_for(lsn))
}

/// The checkpoint contents written for `lsn`: they depend on the LSN, so a checkpoint
/// handed out under the wrong LSN never matches.
fn state_at(lsn: u64) -> Vec<u8> {
    payload(STATE_TAG, lsn, 1000 + (lsn % 3000) as usize)
}

/// Appends records until the log ends at `last`.
fn append_to(wal: &Wal, last: u64) {
    while wal.appended().0 < last {
        let lsn = wal.appended().0 + 1;
        assert_eq!(wal.append(&record(lsn)).expect("append"), Lsn(lsn));
    }
}

/// Writes the checkpoint of [`state_at`] for `lsn` and checks what it returns.
fn checkpoint_at(wal: &Wal, lsn: u64) {
    let data = state_at(lsn);
    let c = wal
        .write_checkpoint(Lsn(lsn), &data)
        .expect("write_checkpoint");
    assert_eq!(c.lsn(), Lsn(lsn));
    assert!(c.data() == data.as_slice(), "checkpoint {lsn}: data");
    assert_eq!(c.path(), ckpt_path(wal.dir(), lsn));
}

fn ckpt_path(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("checkpoint-{lsn:020}.ckpt"))
}

fn tmp_path(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("checkpoint-{lsn:020}.ckpt.tmp"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// LSNs of the checkpoint files of `dir`, oldest first.
fn checkpoint_lsns(dir: &Path) -> Vec<u64> {
    names(dir)
        .iter()
        .filter_map(|n| {
            let digits = n.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
            (digits.len() == 20).then(|| digits.parse().expect("checkpoint LSN"))
        })
        .collect()
}

/// Leftover temporary checkpoint files of `dir`.
fn tmp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("checkpoint-") && n.ends_with(".ckpt.tmp"))
        .collect()
}

/// The log holds exactly the records `from..=to`, each the expected one.
fn assert_log_exact(wal: &Wal, from: u64, to: u64, when: &str) {
    let mut next = from;
    for r in wal.iter_from(Lsn(from)).expect("iter_from") {
        let r = r.expect("record");
        assert_eq!(r.lsn(), Lsn(next), "{when}: LSNs must be dense from {from}");
        assert!(r.payload() == record(next).as_slice(), "{when}: LSN {next}");
        next += 1;
    }
    assert_eq!(next - 1, to, "{when}: the log must end at {to}");
}

/// Copies the (closed) log in `from` to the new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).expect("create_dir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn open(dir: &Path) -> (Wal, RecoveryReport) {
    Wal::open(dir, small()).expect("open")
}

/// The log every E29/E30 test starts from: records 1..=400, checkpoints at 150 and 300
/// (so the log was purged up to the segment holding 151), closed.
const A: u64 = 150;
const B: u64 = 300;
const LAST: u64 = 400;

fn two_checkpoint_log(dir: &Path) {
    let (wal, _) = open(dir);
    append_to(&wal, A);
    checkpoint_at(&wal, A);
    append_to(&wal, B);
    checkpoint_at(&wal, B);
    append_to(&wal, LAST);
    assert!(
        wal.first_lsn().0 > 1 && wal.first_lsn().0 <= A + 1,
        "retention must purge below the oldest kept checkpoint, and only there: first LSN {}",
        wal.first_lsn()
    );
    wal.close().expect("close");
    assert_eq!(checkpoint_lsns(dir), vec![A, B]);
}

/// Recovery used checkpoint `lsn`, hands out its data, and the log after it is whole.
fn assert_recovered_from(wal: &Wal, report: &RecoveryReport, lsn: u64, when: &str) {
    assert_eq!(
        report.checkpoint,
        Some((Lsn(lsn), ckpt_path(wal.dir(), lsn))),
        "{when}: checkpoint used; {report:?}"
    );
    let c = wal.checkpoint().expect("a usable checkpoint");
    assert_eq!(c.lsn(), Lsn(lsn), "{when}");
    assert!(
        c.data() == state_at(lsn).as_slice(),
        "{when}: checkpoint data"
    );
    assert!(
        wal.first_lsn().0 <= lsn + 1,
        "{when}: the log after it is gone"
    );
    assert_log_exact(wal, lsn + 1, LAST, when);
}

/// `e` is `Corrupt { kind: NoUsableCheckpoint }`.
fn assert_no_usable_checkpoint(e: &Error, when: &str) {
    let Error::Corrupt { kind, .. } = e else {
        panic!("{when}: expected Corrupt(NoUsableCheckpoint), got {e:?}");
    };
    assert_eq!(*kind, CorruptionKind::NoUsableCheckpoint, "{when}: {e:?}");
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = entry.expect("task").path().join("comm");
        // A thread that exited between the listing and the read is gone: skip it.
        if std::fs::read_to_string(path).is_ok_and(|c| c.trim_end() == name) {
            n += 1;
        }
    }
    n
}

/// Waits (yielding, never sleeping) until no thread named `name` is left: a joined
/// thread leaves the kernel's list a moment after `join` returns.
fn assert_no_thread_named(name: &str, when: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while threads_named(name) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{when}: a thread {name:?} survived"
        );
        std::thread::yield_now();
    }
}

/// The checkpoint helper's thread name.
const HELPER: &str = "mmlog-ckpt-pf";

/// A large checkpoint gets a helper thread that faults its mapping in ahead of the
/// caller's `fill`, and its payload is checksummed and written back in chunks. The
/// slice must still start zeroed, the bytes must round-trip through a reopen (a chunk
/// left out of the checksum would make the load reject it), and the helper must be
/// gone when the call returns, also when `fill` panics.
#[test]
fn a_large_checkpoint_round_trips_and_leaves_no_helper_thread() {
    // No other test of this file writes a checkpoint large enough for the helper.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, _) = open(dir);
    append_to(&wal, 20);
    // Three full checksum chunks and a part of a page.
    let big = payload(STATE_TAG, 20, (24 << 20) + 12_345);
    let c = wal
        .write_checkpoint_with(Lsn(20), big.len() as u64, |buf| {
            // The helper faults pages in that this closure has not touched yet.
            let far = buf[20 << 20..].as_ptr() as usize;
            wait_until("the helper faults in a page fill never touched", || {
                page_resident(far)
            });
            assert!(buf.iter().all(|b| *b == 0), "the slice must start zeroed");
            buf.copy_from_slice(&big);
        })
        .expect("write_checkpoint_with");
    assert_no_thread_named(HELPER, "after a checkpoint");
    assert!(c.data() == big.as_slice(), "checkpoint data");
    drop(c);

    append_to(&wal, 30);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wal.write_checkpoint_with(Lsn(30), 16 << 20, |buf| {
            buf[..4096].fill(0xAB);
            panic!("the serialiser failed");
        })
    }));
    assert!(panicked.is_err(), "the panic reaches the caller");
    assert_no_thread_named(HELPER, "after a panicking fill");
    assert_eq!(wal.checkpoint().expect("latest").lsn(), Lsn(20));
    append_to(&wal, 40);
    wal.close().expect("close");

    let (wal, report) = open(dir);
    assert!(report.rejected_checkpoints.is_empty(), "{report:?}");
    let c = wal.checkpoint().expect("checkpoint after reopen");
    assert_eq!(c.lsn(), Lsn(20));
    assert!(c.data() == big.as_slice(), "checkpoint data after reopen");
    drop(c);
    assert!(
        tmp_files(dir).is_empty(),
        "the open removed the panicked temporary file"
    );
    assert_log_exact(&wal, 21, 40, "after reopen");
    wal.close().expect("close");
}

#[test]
fn checkpoints_round_trip_from_a_slice_and_through_the_mapping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, report) = open(dir);
    assert_eq!(report.checkpoint, None);
    assert!(wal.checkpoint().is_none(), "a new log has no checkpoint");

    append_to(&wal, 50);
    checkpoint_at(&wal, 30);
    assert_eq!(wal.checkpoint().expect("latest").lsn(), Lsn(30));
    let size = std::fs::metadata(ckpt_path(dir, 30)).expect("stat").len();
    assert_eq!(size, CKPT_DATA_OFFSET + state_at(30).len() as u64);

    // Through the mapping: the callback gets a zeroed slice of exactly the length asked
    // for, and what it writes is the checkpoint. 200 kB spans many pages.
    append_to(&wal, 70);
    let big: Vec<u8> = payload(STATE_TAG, 7, 200_000);
    let c = wal
        .write_checkpoint_with(Lsn(70), big.len() as u64, |buf| {
            assert_eq!(buf.len(), big.len());
            assert!(buf.iter().all(|b| *b == 0), "the slice must start zeroed");
            buf.copy_from_slice(&big);
        })
        .expect("write_checkpoint_with");
    assert_eq!(c.lsn(), Lsn(70));
    assert!(c.data() == big.as_slice());
    // A checkpoint handle keeps the directory locked: let it go before the reopen.
    drop(c);
    assert_eq!(wal.checkpoint().expect("latest").lsn(), Lsn(70));
    assert_eq!(
        std::fs::metadata(ckpt_path(dir, 70)).expect("stat").len(),
        CKPT_DATA_OFFSET + big.len() as u64
    );
    assert_eq!(checkpoint_lsns(dir), vec![30, 70]);
    assert!(tmp_files(dir).is_empty(), "no temporary file may remain");
    append_to(&wal, 80);
    wal.close().expect("close");

    let (wal, report) = open(dir);
    assert_eq!(report.checkpoint, Some((Lsn(70), ckpt_path(dir, 70))));
    assert!(report.rejected_checkpoints.is_empty(), "{report:?}");
    let c = wal.checkpoint().expect("checkpoint after reopen");
    assert_eq!(c.lsn(), Lsn(70));
    assert!(c.data() == big.as_slice(), "checkpoint data after reopen");
    drop(c);
    assert_log_exact(&wal, 71, 80, "after reopen");
    wal.close().expect("close");

    // An empty snapshot is a valid checkpoint too: just the header page.
    let empty = dir.join("empty");
    let (wal, _) = open(&empty);
    append_to(&wal, 3);
    let c = wal.write_checkpoint(Lsn(3), &[]).expect("empty checkpoint");
    assert!(c.data().is_empty());
    drop(c);
    assert_eq!(
        std::fs::metadata(ckpt_path(&empty, 3)).expect("stat").len(),
        CKPT_DATA_OFFSET
    );
    wal.close().expect("close");
    let (wal, report) = open(&empty);
    assert_eq!(report.checkpoint, Some((Lsn(3), ckpt_path(&empty, 3))));
    assert!(wal.checkpoint().expect("checkpoint").data().is_empty());
    wal.close().expect("close");
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    two_checkpoint_log(&base);
    let len_b = state_at(B).len() as u64;

    // (what, damage, the kind of rejection expected: compared by variant).
    type Damage = (&'static str, fn(&Path), CheckpointRejection);
    let damages: [Damage; 5] = [
        (
            "zeroed file",
            |p| {
                let len = std::fs::metadata(p).expect("stat").len() as usize;
                write_bytes(p, 0, &vec![0u8; len]);
            },
            CheckpointRejection::BadHeader(String::new()),
        ),
        (
            "zeroed magic",
            |p| write_bytes(p, 0, &[0u8; 8]),
            CheckpointRejection::BadHeader(String::new()),
        ),
        (
            "bit flip in the header's LSN",
            |p| flip_bit(p, 16, 0),
            CheckpointRejection::BadHeader(String::new()),
        ),
        (
            "bit flip in the middle of the payload",
            |p| {
                let len = std::fs::metadata(p).expect("stat").len();
                flip_bit(p, CKPT_DATA_OFFSET + (len - CKPT_DATA_OFFSET) / 2, 3);
            },
            CheckpointRejection::PayloadChecksum,
        ),
        (
            "bit flip in the last payload byte",
            |p| {
                let len = std::fs::metadata(p).expect("stat").len();
                flip_bit(p, len - 1, 7);
            },
            CheckpointRejection::PayloadChecksum,
        ),
    ];
    assert!(len_b > 0);
    for (k, (what, damage, expected_reason)) in damages.iter().enumerate() {
        let dir = tmp.path().join(format!("case{k}"));
        copy_dir(&base, &dir);
        damage(&ckpt_path(&dir, B));

        // Twice: the fallback is the same on a second recovery.
        for round in 0..2 {
            let when = format!("{what}, open {round}");
            let (wal, report) = open(&dir);
            assert_recovered_from(&wal, &report, A, &when);
            assert_eq!(
                report.rejected_checkpoints.len(),
                1,
                "{when}: {:?}",
                report.rejected_checkpoints
            );
            let RejectedCheckpoint { file, lsn, reason } = &report.rejected_checkpoints[0];
            assert_eq!(file, &ckpt_path(&dir, B), "{when}");
            assert_eq!(*lsn, Lsn(B), "{when}");
            assert_eq!(
                std::mem::discriminant(reason),
                std::mem::discriminant(expected_reason),
                "{when}: reason {reason:?}, expected a {expected_reason:?}"
            );
            wal.close().expect("close");
        }

        // Life goes on from the older checkpoint: a new checkpoint is written, and the
        // next recovery uses it.
        let (wal, _) = open(&dir);
        append_to(&wal, LAST + 20);
        checkpoint_at(&wal, LAST + 10);
        wal.close().expect("close");
        let (wal, report) = open(&dir);
        assert_eq!(
            report.checkpoint,
            Some((Lsn(LAST + 10), ckpt_path(&dir, LAST + 10))),
            "{what}: after a new checkpoint"
        );
        assert!(report.rejected_checkpoints.is_empty(), "{what}: {report:?}");
        wal.close().expect("close");
    }
}

#[test]
fn no_usable_checkpoint_and_a_purged_log_is_corrupt_never_an_empty_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    two_checkpoint_log(&base);

    let dir = tmp.path().join("both-damaged");
    copy_dir(&base, &dir);
    write_bytes(&ckpt_path(&dir, B), 0, &[0u8; 64]);
    let len_a = std::fs::metadata(ckpt_path(&dir, A)).expect("stat").len();
    flip_bit(&ckpt_path(&dir, A), len_a - 10, 1);
    let before = names(&dir);
    for round in 0..2 {
        match Wal::open(&dir, small()) {
            Ok((wal, report)) => panic!(
                "open {round} succeeded with no usable checkpoint and a log from LSN {}: {report:?}",
                wal.first_lsn()
            ),
            Err(e) => assert_no_usable_checkpoint(&e, &format!("open {round}")),
        }
        assert_eq!(names(&dir), before, "a refused open must not remove files");
    }

    // Deleting the damaged files instead does not make the log usable: there is still
    // no way to rebuild the state, so the open must not pretend it starts empty.
    let dir = tmp.path().join("one-left-damaged");
    copy_dir(&base, &dir);
    std::fs::remove_file(ckpt_path(&dir, B)).expect("remove");
    write_bytes(&ckpt_path(&dir, A), 0, &[0u8; 8]);
    let e = Wal::open(&dir, small()).expect_err("open must fail");
    assert_no_usable_checkpoint(&e, "one checkpoint left, damaged");

    // Control: with the whole log still there (never purged), a damaged only
    // checkpoint is reported and the log alone rebuilds the state.
    let dir = tmp.path().join("unpurged");
    let (wal, _) = open(&dir);
    append_to(&wal, 60);
    checkpoint_at(&wal, 40);
    assert_eq!(
        wal.first_lsn(),
        Lsn(1),
        "60 records fit in the first segment"
    );
    wal.close().expect("close");
    flip_bit(&ckpt_path(&dir, 40), CKPT_DATA_OFFSET + 5, 0);
    let (wal, report) = open(&dir);
    assert_eq!(report.checkpoint, None);
    assert!(wal.checkpoint().is_none());
    assert_eq!(report.rejected_checkpoints.len(), 1, "{report:?}");
    assert_eq!(
        report.rejected_checkpoints[0].reason,
        CheckpointRejection::PayloadChecksum
    );
    assert_eq!(wal.first_lsn(), Lsn(1));
    assert_log_exact(&wal, 1, 60, "unpurged log");
    wal.close().expect("close");
}

#[test]
fn a_read_error_on_the_newest_checkpoint_falls_back_and_keeps_it() {
    // FAULTS D25 for checkpoints: the mapping of the newest checkpoint fails with EIO
    // (a media error). Recovery must not take the state from nowhere: it falls back to
    // the older checkpoint, names the rejection and why, and keeps the file, so a
    // later open with a healthy disk uses the newest one again.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    two_checkpoint_log(&dir);
    let before = checkpoint_lsns(&dir);
    assert_eq!(before, vec![A, B]);

    let fp = Arc::new(Failpoints::new());
    fp.arm_once(Step::CheckpointMap, 0, mmlog::testing::FailAction::Errno(5));
    let opts = Options {
        env: Env::with_failpoints(fp.clone()),
        ..small()
    };
    let (wal, report) = Wal::open(&dir, opts).expect("open with a failing checkpoint read");
    assert_recovered_from(&wal, &report, A, "EIO on the newest checkpoint");
    assert_eq!(
        fp.hits(Step::CheckpointMap),
        2,
        "the newest, then the older one"
    );
    let [RejectedCheckpoint { file, lsn, reason }] = report.rejected_checkpoints.as_slice() else {
        panic!("one rejection expected: {report}");
    };
    assert_eq!((file, *lsn), (&ckpt_path(&dir, B), Lsn(B)), "{report}");
    assert!(
        matches!(reason, CheckpointRejection::Io(e) if e.contains("os error 5")),
        "the rejection says it was an I/O error: {reason:?}"
    );
    wal.close().expect("close");
    assert_eq!(
        checkpoint_lsns(&dir),
        before,
        "the checkpoint that could not be read is kept"
    );

    let (wal, report) = open(&dir);
    assert_recovered_from(&wal, &report, B, "healthy disk again");
    assert!(report.rejected_checkpoints.is_empty(), "{report}");
    wal.close().expect("close");
}

#[test]
fn a_checkpoint_cut_below_its_declared_length_is_rejected_before_mapping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    two_checkpoint_log(&base);
    let declared = CKPT_DATA_OFFSET + state_at(B).len() as u64;

    // Opens `dir` counting the checkpoint mappings.
    let open_counting = |dir: &Path| {
        let fp = Arc::new(Failpoints::new());
        let opts = Options {
            env: Env::with_failpoints(fp.clone()),
            ..small()
        };
        let (wal, report) = Wal::open(dir, opts).expect("open");
        (wal, report, fp.hits(Step::CheckpointMap))
    };

    // Undamaged: the newest is mapped, and only it.
    let dir = tmp.path().join("intact");
    copy_dir(&base, &dir);
    let (wal, report, maps) = open_counting(&dir);
    assert_eq!(report.checkpoint, Some((Lsn(B), ckpt_path(&dir, B))));
    assert_eq!(maps, 1, "one checkpoint mapped");
    wal.close().expect("close");

    let cases: [(&str, u64, CheckpointRejection); 5] = [
        (
            "half the payload",
            CKPT_DATA_OFFSET + state_at(B).len() as u64 / 2,
            CheckpointRejection::SizeMismatch {
                expected: declared,
                found: CKPT_DATA_OFFSET + state_at(B).len() as u64 / 2,
            },
        ),
        (
            "one byte short",
            declared - 1,
            CheckpointRejection::SizeMismatch {
                expected: declared,
                found: declared - 1,
            },
        ),
        (
            "header page only",
            CKPT_DATA_OFFSET,
            CheckpointRejection::SizeMismatch {
                expected: declared,
                found: CKPT_DATA_OFFSET,
            },
        ),
        (
            "inside the header",
            100,
            CheckpointRejection::TooShort { found: 100 },
        ),
        ("empty file", 0, CheckpointRejection::TooShort { found: 0 }),
    ];
    for (k, (what, cut, reason)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("cut{k}"));
        copy_dir(&base, &dir);
        set_len(&ckpt_path(&dir, B), cut);
        let (wal, report, maps) = open_counting(&dir);
        assert_recovered_from(&wal, &report, A, what);
        assert_eq!(
            report.rejected_checkpoints,
            vec![RejectedCheckpoint {
                file: ckpt_path(&dir, B),
                lsn: Lsn(B),
                reason,
            }],
            "{what}"
        );
        // A was mapped; the cut B never was.
        assert_eq!(maps, 1, "{what}: the cut checkpoint must not be mapped");
        wal.close().expect("close");
    }

    // Grown past its declared length: the same check.
    let dir = tmp.path().join("grown");
    copy_dir(&base, &dir);
    set_len(&ckpt_path(&dir, B), declared + 4096);
    let (wal, report, maps) = open_counting(&dir);
    assert_recovered_from(&wal, &report, A, "grown");
    assert_eq!(
        report.rejected_checkpoints[0].reason,
        CheckpointRejection::SizeMismatch {
            expected: declared,
            found: declared + 4096
        }
    );
    assert_eq!(maps, 1, "grown: the bad checkpoint must not be mapped");
    wal.close().expect("close");
}

#[test]
fn leftover_temporary_checkpoints_are_ignored_and_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, _) = open(dir);
    append_to(&wal, 120);
    checkpoint_at(&wal, 100);
    wal.close().expect("close");

    // A complete, valid checkpoint under a temporary name and a newer LSN (a crash
    // between sync and rename), a half-written one, and an empty one.
    let valid = std::fs::read(ckpt_path(dir, 100)).expect("read");
    std::fs::write(tmp_path(dir, 120), &valid).expect("write");
    std::fs::write(tmp_path(dir, 110), &valid[..valid.len() / 2]).expect("write");
    std::fs::write(tmp_path(dir, 90), b"").expect("write");
    let leftovers = vec![tmp_path(dir, 90), tmp_path(dir, 110), tmp_path(dir, 120)];

    // Read-only: ignored, and left alone.
    let read_only = Options {
        read_only: true,
        ..small()
    };
    let (wal, report) = Wal::open(dir, read_only).expect("read-only open");
    assert_eq!(report.checkpoint, Some((Lsn(100), ckpt_path(dir, 100))));
    assert!(report.rejected_checkpoints.is_empty(), "{report:?}");
    assert_eq!(wal.checkpoint().expect("checkpoint").lsn(), Lsn(100));
    drop(wal);
    assert_eq!(tmp_files(dir).len(), 3, "a read-only open changes nothing");

    // Writable: ignored, removed, and reported.
    let (wal, report) = open(dir);
    assert_eq!(report.checkpoint, Some((Lsn(100), ckpt_path(dir, 100))));
    assert!(report.rejected_checkpoints.is_empty(), "{report:?}");
    for p in &leftovers {
        assert!(
            report.removed_files.contains(p),
            "{} not reported removed: {:?}",
            p.display(),
            report.removed_files
        );
    }
    assert!(tmp_files(dir).is_empty(), "left: {:?}", tmp_files(dir));
    assert_eq!(checkpoint_lsns(dir), vec![100]);
    assert_log_exact(&wal, 101, 120, "after removing leftovers");

    // A checkpoint at the LSN of a removed leftover is written normally.
    let c = wal
        .write_checkpoint(Lsn(120), &state_at(120))
        .expect("checkpoint");
    assert!(c.data() == state_at(120).as_slice());
    drop(c);
    wal.close().expect("close");
    let (wal, report) = open(dir);
    assert_eq!(report.checkpoint, Some((Lsn(120), ckpt_path(dir, 120))));
    assert!(
        !report.removed_files.iter().any(|p| leftovers.contains(p)),
        "{report:?}"
    );
    wal.close().expect("close");
}

#[test]
fn retention_keeps_the_configured_number_of_generations() {
    assert_eq!(Options::default().checkpoint_generations, 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    for generations in [1usize, 2, 3] {
        let dir = tmp.path().join(format!("g{generations}"));
        let opts = Options {
            checkpoint_generations: generations,
            ..small()
        };
        let (wal, _) = Wal::open(&dir, opts.clone()).expect("open");
        let mut written = Vec::new();
        for k in 1..=6u64 {
            append_to(&wal, k * 40 + 5);
            checkpoint_at(&wal, k * 40);
            written.push(k * 40);
            let keep = written.len().min(generations);
            assert_eq!(
                checkpoint_lsns(&dir),
                written[written.len() - keep..].to_vec(),
                "generations {generations}, after checkpoint {k}"
            );
        }
        wal.close().expect("close");
        let (wal, report) = Wal::open(&dir, opts).expect("reopen");
        assert_eq!(report.checkpoint, Some((Lsn(240), ckpt_path(&dir, 240))));
        wal.close().expect("close");
    }
}

#[test]
fn retention_removes_only_the_log_no_kept_checkpoint_needs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let (wal, _) = open(&dir);
    let mut first_seen = 1;
    let interval = 130;
    let rounds = 12u64;
    for k in 1..=rounds {
        append_to(&wal, k * interval);
        checkpoint_at(&wal, k * interval);
        let kept = checkpoint_lsns(&dir);
        assert_eq!(kept.len(), k.min(2) as usize);
        let oldest = kept[0];
        let first = wal.first_lsn().0;
        assert!(first >= first_seen, "the first LSN went back");
        first_seen = first;
        assert!(
            first <= oldest + 1,
            "round {k}: the log starts at {first}, but checkpoint {oldest} needs {}",
            oldest + 1
        );
        // Wholly-below segments are gone: the first segment file starts the log, and
        // the second one starts above what the oldest kept checkpoint needs.
        let segs = segments(&dir);
        let header = |p: &Path| read_segment_header(&read_bytes(p, 0, 4096)).expect("header");
        assert_eq!(header(&segs[0]).base_lsn, first, "round {k}");
        if let Some(second) = segs.get(1) {
            let base = header(second).base_lsn;
            assert!(
                base == 0 || base > oldest + 1,
                "round {k}: segment {} is wholly below checkpoint {oldest} and was kept",
                segs[0].display()
            );
        }
        assert!(
            segs.len() <= 5,
            "round {k}: {} segment files for two checkpoint intervals",
            segs.len()
        );
    }
    assert!(
        first_seen > rounds * interval / 2,
        "the log was never purged"
    );
    let last = rounds * interval + 30;
    append_to(&wal, last);
    wal.close().expect("close");
    let newest = rounds * interval;
    let older = newest - interval;

    // The newest checkpoint damaged: recovery from the older one replays exactly the
    // records after it.
    let flipped = tmp.path().join("flipped");
    copy_dir(&dir, &flipped);
    flip_bit(&ckpt_path(&flipped, newest), CKPT_DATA_OFFSET + 100, 2);
    let (wal, report) = open(&flipped);
    assert_eq!(
        report.checkpoint,
        Some((Lsn(older), ckpt_path(&flipped, older)))
    );
    assert_eq!(report.rejected_checkpoints.len(), 1, "{report:?}");
    assert_eq!(
        report.rejected_checkpoints[0].reason,
        CheckpointRejection::PayloadChecksum
    );
    assert!(wal.checkpoint().expect("older").data() == state_at(older).as_slice());
    assert_log_exact(&wal, older + 1, last, "after the newest was damaged");
    wal.close().expect("close");

    // The newest checkpoint deleted: the same, with nothing rejected.
    std::fs::remove_file(ckpt_path(&dir, newest)).expect("remove");
    let (wal, report) = open(&dir);
    assert_eq!(
        report.checkpoint,
        Some((Lsn(older), ckpt_path(&dir, older)))
    );
    assert!(report.rejected_checkpoints.is_empty(), "{report:?}");
    assert_log_exact(&wal, older + 1, last, "after the newest was deleted");
    wal.close().expect("close");
}

#[test]
fn checkpoint_and_truncate_arguments_are_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, _) = open(dir);
    append_to(&wal, 100);
    checkpoint_at(&wal, 60);

    let invalid = |r: mmlog::Result<mmlog::Checkpoint>, what: &str| match r {
        Ok(c) => panic!("{what}: accepted, wrote {c:?}"),
        Err(e) => assert!(matches!(&e, Error::InvalidArgument(_)), "{what}: {e:?}"),
    };
    invalid(
        wal.write_checkpoint(Lsn(59), &state_at(59)),
        "older than the latest",
    );
    invalid(
        wal.write_checkpoint_with(Lsn(101), 10, |_| {}),
        "past the end of the log",
    );
    invalid(
        wal.write_checkpoint(Lsn(u64::MAX), b"x"),
        "far past the end of the log",
    );
    assert_eq!(
        checkpoint_lsns(dir),
        vec![60],
        "a refused checkpoint wrote a file"
    );
    assert!(tmp_files(dir).is_empty());
    assert_eq!(wal.checkpoint().expect("latest").lsn(), Lsn(60));

    // Truncating below the checkpoint would leave it covering records that are gone.
    let e = wal
        .truncate_after(Lsn(59))
        .expect_err("truncate below checkpoint");
    assert!(matches!(&e, Error::InvalidArgument(_)), "{e:?}");
    let e = wal.truncate_after(Lsn(0)).expect_err("truncate everything");
    assert!(matches!(&e, Error::InvalidArgument(_)), "{e:?}");
    assert_eq!(wal.appended(), Lsn(100));
    assert_log_exact(&wal, 1, 100, "after refused truncations");
    // At the checkpoint's LSN it is allowed.
    wal.truncate_after(Lsn(60))
        .expect("truncate at the checkpoint");
    assert_eq!(wal.appended(), Lsn(60));
    assert_eq!(wal.append(&record(61)).expect("append"), Lsn(61));
    invalid(
        wal.write_checkpoint(Lsn(62), &state_at(62)),
        "past the end after a truncation",
    );
    wal.close().expect("close");

    // The latest checkpoint comes from disk after a reopen: the same rules hold.
    let (wal, _) = open(dir);
    invalid(
        wal.write_checkpoint(Lsn(50), &state_at(50)),
        "older than the latest, after reopen",
    );
    let e = wal
        .truncate_after(Lsn(40))
        .expect_err("truncate below checkpoint");
    assert!(matches!(&e, Error::InvalidArgument(_)), "{e:?}");
    assert_log_exact(&wal, 1, 61, "after reopen");
    wal.close().expect("close");
}

#[test]
fn a_checkpoint_handle_outlives_its_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, _) = open(dir);
    append_to(&wal, 10);
    checkpoint_at(&wal, 10);
    let held = wal.checkpoint().expect("checkpoint");
    for lsn in [20, 30, 40] {
        append_to(&wal, lsn);
        checkpoint_at(&wal, lsn);
    }
    assert!(
        !ckpt_path(dir, 10).exists(),
        "retention must have removed it"
    );
    assert_eq!(held.lsn(), Lsn(10));
    assert!(
        held.data() == state_at(10).as_slice(),
        "data of a removed checkpoint"
    );
    wal.close().expect("close");
    assert!(held.data() == state_at(10).as_slice(), "data after close");
    drop(held);
    let (wal, report) = open(dir);
    assert_eq!(report.checkpoint, Some((Lsn(40), ckpt_path(dir, 40))));
    wal.close().expect("close");
}

#[test]
fn a_checkpoint_the_log_does_not_reach_is_unusable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let long = tmp.path().join("long");
    let (wal, _) = open(&long);
    append_to(&wal, 90);
    checkpoint_at(&wal, 90);
    wal.close().expect("close");

    let short = tmp.path().join("short");
    let (wal, _) = open(&short);
    append_to(&wal, 50);
    wal.close().expect("close");
    // A checkpoint of LSN 90 in a log that ends at 50, and the same file under the
    // name of LSN 30.
    std::fs::copy(ckpt_path(&long, 90), ckpt_path(&short, 90)).expect("copy");
    std::fs::copy(ckpt_path(&long, 90), ckpt_path(&short, 30)).expect("copy");

    let (wal, report) = open(&short);
    assert_eq!(report.checkpoint, None, "{report:?}");
    assert!(wal.checkpoint().is_none());
    assert_eq!(
        report.rejected_checkpoints,
        vec![
            RejectedCheckpoint {
                file: ckpt_path(&short, 90),
                lsn: Lsn(90),
                reason: CheckpointRejection::Unusable {
                    first_lsn: Lsn(1),
                    last_lsn: Lsn(50),
                },
            },
            RejectedCheckpoint {
                file: ckpt_path(&short, 30),
                lsn: Lsn(30),
                reason: CheckpointRejection::LsnMismatch {
                    name: 30,
                    header: 90
                },
            },
        ]
    );
    assert_log_exact(&wal, 1, 50, "log with unusable checkpoints");
    wal.close().expect("close");
}

/// `purge_before` past the oldest kept checkpoint stops there: purging further would
/// leave no checkpoint that connects to the log, and the directory could not be opened.
#[test]
fn purge_before_stops_at_the_oldest_kept_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    two_checkpoint_log(dir.path());
    let (wal, _) = open(dir.path());
    let first = wal.purge_before(Lsn(LAST - 10)).expect("purge");
    assert!(
        first.0 <= A + 1,
        "purged past the oldest kept checkpoint: {first}"
    );
    assert_eq!(wal.first_lsn(), first);
    wal.close().expect("close");
    let (wal, report) = open(dir.path());
    assert_recovered_from(&wal, &report, B, "after the purge");
    // The fallback is still possible: without the newest, the older one connects.
    drop(wal);
    std::fs::remove_file(ckpt_path(dir.path(), B)).unwrap();
    let (wal, report) = open(dir.path());
    assert_recovered_from(&wal, &report, A, "after losing the newest checkpoint");
    wal.close().expect("close");
}
