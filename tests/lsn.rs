//! LSNs: dense, monotonic and never reused, across reopens, purges and truncations.
//!
//! Provoked with tiny (64 KiB) segments and records of a few hundred bytes to a few KiB,
//! so that a few hundred records span many segments. `purge_before` is called below,
//! inside and past the log (it works at segment granularity, moves `first_lsn`
//! forward, and never removes the active segment); `truncate_after` is called at
//! batch boundaries, inside a batch (refused), below `first_lsn` (refused) and several
//! segments back. Every truncation is followed by a crash (drop without `close`) and a
//! reopen, then by new, different records at the same LSNs and another crash: the
//! truncated records must never come back, and the payloads read must be the new ones.
//! Expected segment boundaries are read from the segment headers with
//! `mmlog::testing::read_segment_header`.

mod common;

use std::path::Path;

use common::model::{Model, append_batch, append_one};
use common::{Rng, read_all, read_bytes, segments, small};
use mmlog::testing::read_segment_header;
use mmlog::{Durability, Error, Lsn, Wal};

/// `ops` appends: mostly single records of up to 3 KiB, some batches of 2 to 6.
fn write_mixed(wal: &Wal, model: &mut Model, rng: &mut Rng, tag: u64, ops: usize) {
    for _ in 0..ops {
        if rng.chance(15) {
            let n = 2 + rng.below(5) as usize;
            let lens: Vec<usize> = (0..n).map(|_| rng.below(1200) as usize).collect();
            append_batch(wal, model, tag, &lens);
        } else {
            let len = rng.below(3000) as usize;
            append_one(wal, model, tag, len, Durability::None);
        }
    }
}

/// The log holds exactly the model: dense LSNs from `model.first`, same bytes, and the
/// watermarks agree.
fn assert_log_matches(wal: &Wal, model: &Model, when: &str) {
    let got = read_all(wal);
    assert_eq!(
        got.len(),
        model.records.len(),
        "{when}: record count; read LSNs {:?}..{:?}, expected {}..={}",
        got.first().map(|r| r.0),
        got.last().map(|r| r.0),
        model.first,
        model.last_lsn()
    );
    for (i, (lsn, p)) in got.iter().enumerate() {
        let want = model.first + i as u64;
        assert_eq!(*lsn, want, "{when}: LSN at position {i}");
        assert!(
            p.as_slice() == model.get(want),
            "{when}: payload of LSN {want} is not the one last written at that LSN"
        );
    }
    assert_eq!(wal.appended(), Lsn(model.last_lsn()), "{when}: appended()");
    assert_eq!(wal.first_lsn(), Lsn(model.first), "{when}: first_lsn()");
    let e = wal
        .read(Lsn(model.next_lsn()))
        .expect_err("nothing past the end");
    assert!(matches!(e, Error::NotFound { .. }), "{when}: {e:?}");
}

/// Reopens after a drop without close (a crash) and checks the log against the model.
fn crash_and_reopen(wal: Wal, dir: &Path, model: &Model, when: &str) -> Wal {
    drop(wal);
    let (wal, report) = Wal::open(dir, small()).unwrap_or_else(|e| panic!("{when}: {e:?}"));
    assert!(!report.clean_shutdown, "{when}: {report}");
    assert_eq!(report.next_lsn, Lsn(model.next_lsn()), "{when}: {report}");
    assert_eq!(report.first_lsn, Lsn(model.first), "{when}: {report}");
    assert_log_matches(&wal, model, when);
    wal
}

/// Base LSNs of the segments that hold (or will hold) records, oldest first; a segment
/// prepared ahead of the writer has none yet and is left out.
fn segment_bases(dir: &Path) -> Vec<u64> {
    segments(dir)
        .iter()
        .filter_map(|p| read_segment_header(&read_bytes(p, 0, 4096)))
        .map(|h| h.base_lsn)
        .filter(|&b| b != 0)
        .collect()
}

#[test]
fn lsns_are_dense_and_monotonic_across_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(1);
    let mut model = Model::new();
    for session in 0..6u64 {
        let (wal, report) = Wal::open(dir.path(), small()).expect("open");
        assert_eq!(report.created, session == 0, "{report}");
        assert_eq!(
            report.next_lsn,
            Lsn(model.next_lsn()),
            "session {session}: {report}"
        );
        assert_eq!(
            report.last_lsn,
            Lsn(model.last_lsn()),
            "session {session}: {report}"
        );
        assert_eq!(wal.appended(), Lsn(model.last_lsn()));
        assert!(wal.durable() <= wal.appended());
        write_mixed(&wal, &mut model, &mut rng, session, 40);
        append_one(&wal, &mut model, session, 10, Durability::Sync);
        assert!(
            wal.durable() >= Lsn(model.last_lsn()),
            "a Sync append is durable"
        );
        write_mixed(&wal, &mut model, &mut rng, session, 20);
        assert_eq!(wal.sync().expect("sync"), Lsn(model.last_lsn()));
        assert_eq!(wal.durable(), Lsn(model.last_lsn()));
        assert_log_matches(&wal, &model, &format!("session {session}"));
        if session % 2 == 0 {
            wal.close().expect("close");
        } else {
            drop(wal);
        }
    }
    assert!(
        segments(dir.path()).len() > 3,
        "the sessions should span segments"
    );
}

#[test]
fn purge_before_removes_whole_segments_and_the_sequence_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(2);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, 1, 400);
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 8, "want many segments, got {bases:?}");

    // Inside the first segment, or below the log: nothing to remove.
    assert_eq!(wal.purge_before(Lsn(0)).expect("purge"), Lsn(1));
    assert_eq!(wal.purge_before(Lsn(bases[1] - 1)).expect("purge"), Lsn(1));
    assert_log_matches(&wal, &model, "after purges that remove nothing");

    // Inside segment 3 (0-based): segments 0..3 go, segment 3 and its records below the
    // purge LSN stay.
    let target = bases[3] + (bases[4] - bases[3]) / 2;
    let first = wal.purge_before(Lsn(target)).expect("purge");
    assert_eq!(
        first,
        Lsn(bases[3]),
        "purge_before({target}) with bases {bases:?}"
    );
    assert_eq!(wal.first_lsn(), first);
    model.purge_before(bases[3]);
    assert_eq!(segment_bases(dir.path()), bases[3..].to_vec());
    assert_log_matches(&wal, &model, "after purge");
    for lsn in [1, bases[1], bases[3] - 1] {
        let e = wal.read(Lsn(lsn)).expect_err("purged");
        assert!(matches!(e, Error::NotFound { .. }), "read({lsn}): {e:?}");
    }
    let from_start: Vec<u64> = wal
        .iter_from(Lsn(1))
        .expect("iter")
        .take(3)
        .map(|r| r.expect("record").lsn().0)
        .collect();
    assert_eq!(from_start, vec![bases[3], bases[3] + 1, bases[3] + 2]);
    // Purging less than before changes nothing.
    assert_eq!(wal.purge_before(Lsn(5)).expect("purge"), first);

    // The sequence goes on, and survives a crash.
    write_mixed(&wal, &mut model, &mut rng, 2, 30);
    let wal = crash_and_reopen(wal, dir.path(), &model, "purge, append, crash");
    write_mixed(&wal, &mut model, &mut rng, 3, 30);

    // Purge past the end: everything but the active segment goes.
    let bases = segment_bases(dir.path());
    let active_base = *bases.last().expect("a segment");
    let first = wal.purge_before(Lsn(u64::MAX)).expect("purge everything");
    assert_eq!(first, Lsn(active_base), "bases {bases:?}");
    model.purge_before(active_base);
    assert_eq!(segment_bases(dir.path()), vec![active_base]);
    assert_log_matches(&wal, &model, "after purging all but the active segment");
    append_one(&wal, &mut model, 4, 100, Durability::None);
    assert_log_matches(&wal, &model, "append after purging everything");
    let wal = crash_and_reopen(wal, dir.path(), &model, "purge everything, crash");
    wal.close().expect("close");
}

#[test]
fn purge_of_an_empty_active_segment_keeps_the_lsn_sequence() {
    // A record that fills a segment, then a clean close: the seal goes into a new
    // segment that holds no record. Purging everything then leaves an empty log whose
    // next LSN must still follow the last one ever handed out.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(3);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, 1, 50);
    let max = usize::try_from(wal.options().max_payload_bytes()).expect("max");
    append_one(&wal, &mut model, 1, max, Durability::None);
    wal.close().expect("close");

    let (wal, report) = Wal::open(dir.path(), small()).expect("open");
    assert!(report.clean_shutdown, "{report}");
    let next = model.next_lsn();
    let first = wal.purge_before(Lsn(u64::MAX)).expect("purge");
    assert!(
        first.0 <= next,
        "first_lsn {first} past the next LSN {next}"
    );
    model.purge_before(first.0);
    assert_log_matches(&wal, &model, "after purging everything");

    let wal = crash_and_reopen(wal, dir.path(), &model, "purge everything, crash");
    append_one(&wal, &mut model, 2, 7, Durability::None);
    assert_eq!(model.last_lsn(), next, "the next LSN after a purge");
    let wal = crash_and_reopen(wal, dir.path(), &model, "append after purge, crash");
    wal.close().expect("close");
}

#[test]
fn truncate_after_drops_the_suffix_and_checks_its_argument() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(4);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, 1, 100);
    append_batch(&wal, &mut model, 1, &[10, 20, 30, 40, 50]);
    let (batch, count) = *model.batches.last().expect("batch");
    write_mixed(&wal, &mut model, &mut rng, 1, 100);

    // Inside a batch: refused, nothing changes.
    for lsn in batch..batch + count - 1 {
        let e = wal.truncate_after(Lsn(lsn)).expect_err("inside a batch");
        assert!(
            matches!(e, Error::InvalidArgument(_)),
            "truncate_after({lsn}): {e:?}"
        );
        assert_log_matches(&wal, &model, "after a refused truncation");
    }
    // At or past the end: nothing to drop.
    wal.truncate_after(Lsn(model.last_lsn()))
        .expect("truncate at the end");
    assert_log_matches(&wal, &model, "after truncating at the end");

    // After the batch's last record: the batch stays whole.
    wal.truncate_after(Lsn(batch + count - 1))
        .expect("truncate");
    model.truncate_after(batch + count - 1);
    assert_log_matches(&wal, &model, "after truncating after a batch");
    // Just before the batch: the batch goes whole.
    wal.truncate_after(Lsn(batch - 1)).expect("truncate");
    model.truncate_after(batch - 1);
    assert_log_matches(&wal, &model, "after truncating before a batch");
    let e = wal.read(Lsn(batch)).expect_err("truncated");
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");

    // The next append gets lsn + 1, with its own payload.
    append_one(&wal, &mut model, 2, 77, Durability::None);
    assert_eq!(model.last_lsn(), batch);
    assert!(wal.read(Lsn(batch)).expect("read").payload() == model.get(batch));

    // Below first_lsn: refused, nothing changes.
    write_mixed(&wal, &mut model, &mut rng, 3, 300);
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 4, "{bases:?}");
    let first = wal.purge_before(Lsn(bases[2])).expect("purge").0;
    assert!(first > 2, "the purge should move first_lsn");
    model.purge_before(first);
    for lsn in [0, 1, first - 2] {
        let e = wal
            .truncate_after(Lsn(lsn))
            .expect_err("truncating below first_lsn must fail");
        assert!(
            matches!(e, Error::InvalidArgument(_) | Error::NotFound { .. }),
            "truncate_after({lsn}) with first_lsn {first}: {e:?}"
        );
        assert_log_matches(&wal, &model, "after a refused truncation below first_lsn");
    }
    let wal = crash_and_reopen(wal, dir.path(), &model, "refused truncations, crash");

    // Just below first_lsn: everything goes, and the sequence goes on from first_lsn.
    wal.truncate_after(Lsn(first - 1))
        .expect("truncate everything");
    model.truncate_after(first - 1);
    assert_log_matches(&wal, &model, "after truncating everything");
    let wal = crash_and_reopen(wal, dir.path(), &model, "truncate everything, crash");
    append_one(&wal, &mut model, 4, 5, Durability::None);
    assert_eq!(model.last_lsn(), first);
    let wal = crash_and_reopen(
        wal,
        dir.path(),
        &model,
        "append after truncating everything",
    );
    wal.close().expect("close");
}

/// One truncation scenario: write, truncate at `cut(model, bases)`, crash, reopen,
/// write different records over the same LSNs, crash, reopen; twice.
fn truncate_crash_rewrite(dir: &Path, seed: u64, cut: impl Fn(&Model, &[u64]) -> u64) {
    let mut rng = Rng::new(seed);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir, small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, seed * 10, 160);
    wal.sync().expect("sync"); // the records to be truncated are durable
    let mut wal = wal;
    for round in 1..=2u64 {
        let tag = seed * 10 + round;
        // Distinct bases: a segment left empty (by a truncation or a crash) shares
        // its base with the next one.
        let mut bases = segment_bases(dir);
        bases.dedup();
        let t = cut(&model, &bases);
        assert!(
            !model.inside_batch(t),
            "scenario chose a cut inside a batch"
        );
        let dropped = model.last_lsn() - t;
        let later_segments = bases.iter().filter(|&&b| b > t + 1).count();
        assert!(
            later_segments >= 2 || dropped < 50,
            "seed {seed} round {round}: the cut at {t} should span segments: {bases:?}"
        );
        wal.truncate_after(Lsn(t)).expect("truncate");
        model.truncate_after(t);
        assert_log_matches(&wal, &model, "right after truncate_after");
        let when = format!("seed {seed} round {round}: truncate_after({t}), crash");
        wal = crash_and_reopen(wal, dir, &model, &when);

        // New, different records at the same LSNs: fewer and shorter than the ones
        // truncated, the first few durable, the rest only in the mapping.
        let n = (dropped / 2).max(3);
        for k in 0..n {
            let len = rng.below(700) as usize;
            let durability = if k < 3 {
                Durability::Sync
            } else {
                Durability::None
            };
            append_one(&wal, &mut model, tag, len, durability);
        }
        let when = format!("seed {seed} round {round}: rewrite after truncate, crash");
        wal = crash_and_reopen(wal, dir, &model, &when);
        write_mixed(&wal, &mut model, &mut rng, tag, 20);
        wal.sync().expect("sync");
    }
    let when = format!("seed {seed}: final crash");
    let wal = crash_and_reopen(wal, dir, &model, &when);
    wal.close().expect("close");
}

#[test]
fn truncated_records_never_come_back_after_a_crash() {
    let root = tempfile::tempdir().expect("tempdir");
    // Several segments back, in the middle of a segment.
    truncate_crash_rewrite(&root.path().join("mid"), 11, |model, bases| {
        let k = bases.len().saturating_sub(4);
        let mut t = bases[k] + 3;
        while model.inside_batch(t) {
            t += 1;
        }
        t
    });
    // Exactly at a segment boundary: the last record of a segment.
    truncate_crash_rewrite(&root.path().join("boundary"), 12, |model, bases| {
        let t = bases[bases.len().saturating_sub(3)] - 1;
        assert!(!model.inside_batch(t), "batches never straddle segments");
        t
    });
    // After the last record of a batch, far back.
    truncate_crash_rewrite(&root.path().join("batch"), 13, |model, bases| {
        let limit = bases[bases.len().saturating_sub(3)];
        // The number of segments depends on whether the background thread had
        // prepared the next one before the crash, so fall back to the oldest batch.
        let &(first, count) = model
            .batches
            .iter()
            .rev()
            .find(|&&(first, _)| first < limit)
            .or(model.batches.first())
            .expect("a batch in the log");
        first + count - 1
    });
    // Just the last few records.
    truncate_crash_rewrite(&root.path().join("tail"), 14, |model, _| {
        let mut t = model.last_lsn() - 3;
        while model.inside_batch(t) {
            t -= 1;
        }
        t
    });
}

#[test]
fn repeated_truncations_then_a_clean_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(5);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, 1, 200);
    wal.sync().expect("sync");
    // Truncate twice without appending in between, each time further back.
    let bases = segment_bases(dir.path());
    for t in [bases[bases.len() - 2] + 1, bases[1] + 2] {
        let mut t = t;
        while model.inside_batch(t) {
            t += 1;
        }
        wal.truncate_after(Lsn(t)).expect("truncate");
        model.truncate_after(t);
        assert_log_matches(&wal, &model, "after truncate");
    }
    let wal = crash_and_reopen(wal, dir.path(), &model, "two truncations, crash");
    write_mixed(&wal, &mut model, &mut rng, 2, 40);
    wal.close().expect("close");
    let (wal, report) = Wal::open(dir.path(), small()).expect("open");
    assert!(report.clean_shutdown, "{report}");
    assert_log_matches(&wal, &model, "truncate, crash, append, close");
    // And the stale records stay dead through one more crash after a truncation to
    // the very first record.
    let mut t = 1;
    while model.inside_batch(t) {
        t += 1;
    }
    wal.truncate_after(Lsn(t)).expect("truncate");
    model.truncate_after(t);
    let wal = crash_and_reopen(
        wal,
        dir.path(),
        &model,
        "truncate to the first records, crash",
    );
    append_one(&wal, &mut model, 3, 0, Durability::Sync);
    let wal = crash_and_reopen(wal, dir.path(), &model, "one new record, crash");
    wal.close().expect("close");
}
