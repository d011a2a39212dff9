//! The four recovery modes on the same damaged logs (SPEC §2.5, FAULTS A–B). Each test
//! writes one small log (one segment, `Durability::None`), closes it or drops it
//! without `close()` (a crash), damages the closed files (a torn last record, a flipped
//! bit mid-log with and without later records proving it durable, an unknown record
//! kind, an LSN gap, a zeroed header, a cut newest segment), and then opens a fresh copy
//! of that same damaged log in each mode: first read-only (which must not change a
//! byte), then writable, then again after a crash, and again after an append and a
//! clean close. `TolerateCorruptedTail` trims torn tails and refuses the rest,
//! `AbsoluteConsistency` refuses any damage, `PointInTime` keeps the prefix before the
//! first damage, `SkipCorrupted` keeps every valid record and reports each drop.
mod common;
use common::built::*;
use common::*;

use std::path::Path;

use mmlog::testing::raw_frame;
use mmlog::{CorruptionKind, DropReason, Error, Lsn, Options, RecoveryMode, RecoveryReport, Wal};

/// What opening the damaged log in one mode must give.
#[derive(Debug, Clone)]
enum Outcome {
    /// `Error::Corrupt` in the first segment at this offset.
    Corrupt(u64, CorruptionKind),
    /// These records and these drops. `again`: the damage stays on disk (salvage does
    /// not repair), so every later open reports the same drops; otherwise the first
    /// writable open made the trim durable and later opens report nothing.
    Recovers {
        records: Vec<(u64, Vec<u8>)>,
        drops: Vec<Expected>,
        again: bool,
    },
}

use Outcome::{Corrupt, Recovers};

const MODES: [RecoveryMode; 4] = [
    RecoveryMode::TolerateCorruptedTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupted,
];

/// Opens a fresh copy of the damaged log in `template` in each mode and checks it
/// against `expect` (one outcome per mode, in the order of [`MODES`]).
fn check_modes(template: &Path, seg: &Path, expect: [Outcome; 4]) {
    for (mode, outcome) in MODES.into_iter().zip(expect) {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template, dir.path());
        let seg = dir.path().join(seg.file_name().expect("name"));
        check_mode(dir.path(), &seg, mode, &in_dir(outcome, dir.path()));
    }
}

/// `outcome` with the files its drops name moved to `dir` (a copy of the template).
fn in_dir(mut outcome: Outcome, dir: &Path) -> Outcome {
    if let Recovers { drops, .. } = &mut outcome {
        for d in drops {
            d.file = dir.join(d.file.file_name().expect("name"));
        }
    }
    outcome
}

fn check_open(
    res: mmlog::Result<(Wal, RecoveryReport)>,
    seg: &Path,
    outcome: &Outcome,
    ctx: &str,
) -> Option<Wal> {
    match (res, outcome) {
        (Err(Error::Corrupt { file, offset, kind }), Corrupt(want_offset, want_kind)) => {
            assert_eq!(
                (file.as_path(), offset, &kind),
                (seg, *want_offset, want_kind),
                "{ctx}: wrong corruption"
            );
            None
        }
        (Err(e), _) => panic!("{ctx}: expected {outcome:?}, got {e:?}"),
        (Ok((_, r)), Corrupt(..)) => panic!("{ctx}: expected {outcome:?}, open succeeded:\n{r}"),
        (Ok((wal, r)), Recovers { records, drops, .. }) => {
            assert!(read_all(&wal) == *records, "{ctx}: records differ:\n{r}");
            assert_eq!(summaries(&r), *drops, "{ctx}:\n{r}");
            Some(wal)
        }
    }
}

fn check_mode(dir: &Path, seg: &Path, mode: RecoveryMode, outcome: &Outcome) {
    let opts = Options {
        recovery_mode: mode,
        ..small()
    };
    let ro = Options {
        read_only: true,
        ..opts.clone()
    };

    let before = snapshot(dir);
    // The read-only open also replays during its scan: exactly the records a reader
    // finds afterwards.
    let mut replayed = Vec::new();
    let res = Wal::open_replay(dir, ro, Lsn(0), |lsn, p| replayed.push((lsn.0, p.to_vec())));
    if let (Ok(_), Recovers { records, .. }) = (&res, outcome) {
        assert!(
            replayed == *records,
            "{mode:?}: the open replayed other records than it recovered"
        );
    }
    let wal = check_open(res, seg, outcome, &format!("{mode:?} read-only"));
    drop(wal);
    assert!(
        snapshot(dir) == before,
        "{mode:?}: a read-only open changed the files"
    );

    let wal = check_open(
        Wal::open(dir, opts.clone()),
        seg,
        outcome,
        &format!("{mode:?}"),
    );
    let Some(wal) = wal else {
        assert!(
            snapshot(dir) == before,
            "{mode:?}: a refused open changed the files"
        );
        return;
    };
    let Recovers {
        records,
        drops,
        again,
    } = outcome
    else {
        unreachable!()
    };
    drop(wal); // a crash

    // Later opens in the same mode: the same records; the same drops or none.
    let later = Recovers {
        records: records.clone(),
        drops: if *again { drops.clone() } else { Vec::new() },
        again: *again,
    };
    let wal = check_open(
        Wal::open(dir, opts.clone()),
        seg,
        &later,
        &format!("{mode:?} reopen"),
    )
    .expect("recovers");
    let next = next_of(records);
    let extra = payload(TAG_AFTER, next, 27);
    assert_eq!(wal.append(&extra).expect("append"), Lsn(next), "{mode:?}");
    wal.close().expect("close");

    let mut with_extra = records.clone();
    with_extra.push((next, extra));
    let after = Recovers {
        records: with_extra,
        drops: if *again { drops.clone() } else { Vec::new() },
        again: *again,
    };
    let wal = check_open(
        Wal::open(dir, opts),
        seg,
        &after,
        &format!("{mode:?} after append"),
    )
    .expect("recovers");
    drop(wal);
}

fn recovers(records: Vec<(u64, Vec<u8>)>, drops: Vec<Expected>) -> Outcome {
    Recovers {
        records,
        drops,
        again: false,
    }
}

fn salvages(records: Vec<(u64, Vec<u8>)>, drops: Vec<Expected>) -> Outcome {
    Recovers {
        records,
        drops,
        again: true,
    }
}

/// A drop report of `reason` at `frame`, naming the LSNs that went with it.
fn dropped(
    log: &Log,
    frame: Frame,
    lsns: Option<(u64, u64)>,
    reason: DropReason,
    torn_tail: bool,
) -> Expected {
    Expected {
        file: log.seg.clone(),
        offset: frame.offset,
        first_lsn: frame.lsn,
        dropped_lsns: lsns,
        records: lsns.map_or(0, |(a, b)| b - a + 1),
        reason,
        torn_tail,
    }
}

const LENS: [usize; 6] = [40, 17, 100, 64, 25, 72];

#[test]
fn undamaged_closed_log_is_whole_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let all = || recovers(log.records.clone(), vec![]);
    check_modes(dir.path(), &log.seg, [all(), all(), all(), all()]);
}

/// Zeroed space after the last record of a crashed log is the normal end, not damage:
/// even the strict mode accepts it.
#[test]
fn zeroed_space_after_the_last_record_is_no_damage_in_any_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let all = || recovers(log.records.clone(), vec![]);
    check_modes(dir.path(), &log.seg, [all(), all(), all(), all()]);
}

/// A torn last record of a crashed log: trimmed in every mode but the strict one.
#[test]
fn torn_last_record_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    flip_bit(&log.seg, mid_body(last), 1);
    let trim = || {
        recovers(
            log.below(6),
            vec![dropped(
                &log,
                last,
                None,
                DropReason::ChecksumMismatch,
                true,
            )],
        )
    };
    check_modes(
        dir.path(),
        &log.seg,
        [
            trim(),
            Corrupt(last.offset, CorruptionKind::Checksum),
            trim(),
            trim(),
        ],
    );
}

/// A flipped bit in record 3 of a cleanly closed log (the seal proves it durable).
#[test]
fn proven_mid_log_bit_flip_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    flip_bit(&log.seg, mid_body(victim), 6);
    let refused = || Corrupt(victim.offset, CorruptionKind::Checksum);
    check_modes(
        dir.path(),
        &log.seg,
        [
            refused(),
            refused(),
            recovers(
                log.below(3),
                vec![dropped(
                    &log,
                    victim,
                    Some((4, 6)),
                    DropReason::ChecksumMismatch,
                    false,
                )],
            ),
            salvages(
                log.without(3, 3),
                vec![dropped(
                    &log,
                    victim,
                    Some((3, 3)),
                    DropReason::ChecksumMismatch,
                    false,
                )],
            ),
        ],
    );
}

/// The same flip in a crashed log where nothing was ever synced: a torn tail for the
/// default mode, the records after it going with it.
#[test]
fn unproven_mid_log_bit_flip_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let victim = log.frame(2);
    flip_bit(&log.seg, mid_body(victim), 6);
    let trim = || {
        recovers(
            log.below(3),
            vec![dropped(
                &log,
                victim,
                Some((4, 6)),
                DropReason::ChecksumMismatch,
                true,
            )],
        )
    };
    check_modes(
        dir.path(),
        &log.seg,
        [
            trim(),
            Corrupt(victim.offset, CorruptionKind::Checksum),
            trim(),
            salvages(
                log.without(3, 3),
                vec![dropped(
                    &log,
                    victim,
                    Some((3, 3)),
                    DropReason::ChecksumMismatch,
                    false,
                )],
            ),
        ],
    );
}

/// Record 3 rewritten with a valid checksum but an unknown kind: no torn write does
/// that, so the default mode refuses it even though it could be trimmed.
#[test]
fn unknown_record_kind_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    write_bytes(
        &log.seg,
        victim.offset,
        &raw_frame(9, 0, 3, 0, log.epoch, &log.records[2].1),
    );
    let refused = || Corrupt(victim.offset, CorruptionKind::UnknownRecordKind(9));
    check_modes(
        dir.path(),
        &log.seg,
        [
            refused(),
            refused(),
            recovers(
                log.below(3),
                vec![dropped(
                    &log,
                    victim,
                    Some((4, 6)),
                    DropReason::UnknownKind,
                    false,
                )],
            ),
            salvages(
                log.without(3, 3),
                vec![dropped(
                    &log,
                    victim,
                    Some((3, 3)),
                    DropReason::UnknownKind,
                    false,
                )],
            ),
        ],
    );
}

/// Records 4..=6 of a crashed log rewritten (valid checksums) as LSNs 14..=16, as if
/// ten records had vanished: the default mode refuses the gap, point-in-time stops at
/// it, salvage keeps 14..=16 and reports 4..=13 as dropped.
#[test]
fn lsn_gap_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    for i in 3..6 {
        let f = log.frame(i);
        let frame = raw_frame(1, 0, f.lsn + 10, 0, log.epoch, &log.records[i].1);
        write_bytes(&log.seg, f.offset, &frame);
    }
    let gap = log.frame(3);
    let mut salvaged = log.below(4);
    salvaged.extend((3..6).map(|i| (log.records[i].0 + 10, log.records[i].1.clone())));
    let refused = || {
        Corrupt(
            gap.offset,
            CorruptionKind::LsnGap {
                expected: Lsn(4),
                found: Lsn(14),
            },
        )
    };
    check_modes(
        dir.path(),
        &log.seg,
        [
            refused(),
            refused(),
            recovers(
                log.below(4),
                vec![dropped(&log, gap, Some((14, 16)), DropReason::LsnGap, true)],
            ),
            salvages(
                salvaged,
                vec![dropped(&log, gap, Some((4, 13)), DropReason::LsnGap, false)],
            ),
        ],
    );
}

/// The header of record 3 zeroed in a cleanly closed log: a hole the seal proves.
#[test]
fn zeroed_header_mid_log_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    let refused = || Corrupt(victim.offset, CorruptionKind::Hole);
    check_modes(
        dir.path(),
        &log.seg,
        [
            refused(),
            refused(),
            recovers(
                log.below(3),
                vec![dropped(
                    &log,
                    victim,
                    Some((4, 6)),
                    DropReason::TornTail,
                    false,
                )],
            ),
            salvages(
                log.without(3, 3),
                vec![dropped(
                    &log,
                    victim,
                    Some((3, 3)),
                    DropReason::TornTail,
                    false,
                )],
            ),
        ],
    );
}

/// The prepared newest segment cut to 10 bytes (a crash while creating it): dropped and
/// recreated in every mode but the strict one.
#[test]
fn short_newest_segment_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let newest = segments(dir.path()).last().cloned().expect("segment");
    assert_ne!(newest, log.seg);
    set_len(&newest, 10);
    let incomplete = Expected {
        file: newest.clone(),
        offset: 0,
        first_lsn: 0,
        dropped_lsns: None,
        records: 0,
        reason: DropReason::IncompleteSegment,
        torn_tail: true,
    };
    let kept = || recovers(log.records.clone(), vec![incomplete.clone()]);
    // The error names the short file, not segment 1: checked here, since
    // `check_modes` expects corruption in segment 1.
    let strict = Options {
        recovery_mode: RecoveryMode::AbsoluteConsistency,
        ..small()
    };
    match Wal::open(dir.path(), strict) {
        Err(Error::Corrupt { file, offset, kind }) => assert_eq!(
            (file, offset, kind),
            (
                newest.clone(),
                0,
                CorruptionKind::BadFileSize {
                    expected: 4096,
                    found: 10
                }
            )
        ),
        other => panic!(
            "expected Corrupt(BadFileSize), got {:?}",
            other.map(|(_, r)| r)
        ),
    }
    let modes = [
        RecoveryMode::TolerateCorruptedTail,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupted,
    ];
    for mode in modes {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let seg = copy.path().join(log.seg.file_name().expect("name"));
        check_mode(copy.path(), &seg, mode, &in_dir(kept(), copy.path()));
    }
}
