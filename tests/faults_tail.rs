//! Truncation and torn tails (FAULTS B12–B15). Each test writes a small log in its own
//! directory, closes it or drops it without `close()` (a crash), and then imitates what
//! a crash or a bad disk leaves at the end of the log, on the closed files: the last
//! segment cut (`set_len`) or zeroed from every byte offset inside its last records,
//! garbage and header-shaped bytes after the last record, a record torn at a 512-byte
//! sector boundary, and damage below the durable watermark (bit rot and lost sectors
//! under records that a sync, a durable append or the seal of a clean close proved).
//! The first kinds must recover to the prefix of whole records with only a trim report,
//! the same on every reopen; the last must be `Error::Corrupt`, never a silent trim.
mod common;
use common::built::*;
use common::*;

use std::path::Path;

use mmlog::testing::raw_frame;
use mmlog::{CorruptionKind, DropReason, Dropped, Error, Lsn, Wal};

/// The records whose frames survive a cut at `cut` whole, and the frame (record or
/// seal) the cut goes through, if any. A frame occupies its padded length: when the
/// file itself ends inside the padding (`SetLen`), the frame is not whole. With
/// `Zero`, a frame whose erased bytes were all zero anyway (padding, the seal's flags
/// and reserved field) is whole. `original` is the segment file before the cut.
fn split_at_cut(
    log: &Log,
    seal: Frame,
    original: &[u8],
    how: Cut,
    cut: u64,
) -> (Vec<(u64, Vec<u8>)>, Option<Frame>) {
    let whole = |f: &Frame| {
        let body_end = f.offset + HEADER + f.body_bytes;
        let needed = if how == Cut::SetLen {
            f.end()
        } else {
            body_end
        };
        needed <= cut
            || (how == Cut::Zero
                && original[cut as usize..body_end as usize]
                    .iter()
                    .all(|&b| b == 0))
    };
    let kept_lsn = log
        .frames
        .iter()
        .filter(|f| whole(f))
        .map(|f| f.lsn + f.count)
        .max()
        .unwrap_or(1);
    let partial = log
        .frames
        .iter()
        .copied()
        .chain([seal])
        .find(|f| f.offset < cut && !whole(f));
    (log.below(kept_lsn), partial)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// `set_len(cut)`: the file is shorter than its header declares.
    SetLen,
    /// Zeroes from `cut` to the end of the file.
    Zero,
}

/// The last two records have 3 and 6 bytes of padding.
const CUT_LENS: [usize; 5] = [13, 0, 47, 5, 2];

/// `return Err(..)` from a check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Every record of the log, or the first error the iterator returns.
fn try_read_all(wal: &Wal) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    wal.iter_from(Lsn(0))?
        .map(|r| r.map(|r| (r.lsn().0, r.payload().to_vec())))
        .collect()
}

/// For every byte offset from the start of the last two records to the end of the
/// seal of a cleanly closed log: cut a copy of the log there and check the recovery
/// (see [`check_cut`]). A cut at or below the seal leaves exactly what a crash before
/// `close()` would have left, so this covers crashed logs too. Every offset is tried;
/// the failures are listed together.
fn cut_at_every_offset(how: Cut) {
    let template = tempfile::tempdir().unwrap();
    let log = build(template.path(), &recs(&CUT_LENS), true);
    // The cut segment must be the newest: no prepared segment after it.
    remove_prepared_segments(template.path());
    let seal = Frame {
        offset: log.end(),
        lsn: log.last_lsn() + 1,
        count: 0,
        body_bytes: 0,
    };
    let original = std::fs::read(&log.seg).expect("read");
    let from = log.frame(CUT_LENS.len() - 2).offset;
    let to = seal.end();
    let mut failures = Vec::new();
    for cut in from..=to {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let (want, partial) = split_at_cut(&log, seal, &original, how, cut);
        if let Err(why) = check_cut(dir.path(), &log, how, cut, want, partial) {
            failures.push(format!("{how:?} at {cut}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cuts failed:\n{}",
        failures.len(),
        to - from + 1,
        failures.join("\n")
    );
}

/// Cuts the copy in `dir` at `cut`, then: the default-mode open keeps exactly `want`
/// (the records whose frames are whole below the cut); it reports the cut file
/// (`set_len`) and exactly one torn frame, `partial`, when the cut goes through one; a crash and a reopen give the same records and report
/// nothing; an append gets the next LSN; a clean close and a read-only reopen give the
/// records plus the new one and report nothing.
fn check_cut(
    dir: &Path,
    log: &Log,
    how: Cut,
    cut: u64,
    want: Vec<(u64, Vec<u8>)>,
    partial: Option<Frame>,
) -> Result<(), String> {
    let seg_bytes = 64 * 1024;
    let seg = dir.join(log.seg.file_name().expect("name"));
    match how {
        Cut::SetLen => set_len(&seg, cut),
        Cut::Zero => write_bytes(&seg, cut, &vec![0u8; (seg_bytes - cut) as usize]),
    }
    let next = next_of(&want);

    let (wal, r) = Wal::open(dir, small()).map_err(|e| format!("open: {e:?}"))?;
    let got = try_read_all(&wal).map_err(|e| format!("reading after open: {e:?}\n{r}"))?;
    ensure!(
        got == want,
        "{} records instead of {}:\n{r}",
        got.len(),
        want.len()
    );
    ensure!(r.next_lsn == Lsn(next), "next LSN {:?}:\n{r}", r.next_lsn);
    let mut drops = r.dropped.iter();
    if how == Cut::SetLen {
        let Some(d) = drops.next() else {
            return Err(format!("the cut file is not reported:\n{r}"));
        };
        ensure!(
            (&d.file, d.offset, d.bytes, d.reason, d.torn_tail)
                == (
                    &seg,
                    cut,
                    seg_bytes - cut,
                    DropReason::IncompleteSegment,
                    true
                ),
            "wrong report of the cut file {d:?}:\n{r}"
        );
    }
    let rest: Vec<&Dropped> = drops.collect();
    ensure!(rest.len() <= 1, "more than a trim:\n{r}");
    for d in &rest {
        let Some(p) = partial else {
            return Err(format!("a drop without a cut frame:\n{r}"));
        };
        ensure!(
            (&d.file, d.offset, d.first_lsn, d.records, d.torn_tail)
                == (&seg, p.offset, Lsn(p.lsn), 0, true),
            "wrong trim report (cut frame {p:?}):\n{r}"
        );
    }
    if let Some(p) = partial {
        ensure!(rest.len() == 1, "the cut frame {p:?} is not reported:\n{r}");
    }
    drop(wal);

    let (wal, r) = Wal::open(dir, small()).map_err(|e| format!("second open: {e:?}"))?;
    let got =
        try_read_all(&wal).map_err(|e| format!("reading after the second open: {e:?}\n{r}"))?;
    ensure!(got == want, "second open: {} records:\n{r}", got.len());
    ensure!(r.dropped.is_empty(), "second open reports again:\n{r}");
    let extra = payload(TAG_AFTER, next, 19);
    let lsn = wal.append(&extra).map_err(|e| format!("append: {e:?}"))?;
    ensure!(lsn == Lsn(next), "append got {lsn:?}");
    wal.close().map_err(|e| format!("close: {e:?}"))?;

    let mut with_extra = want;
    with_extra.push((next, extra));
    let (wal, r) = Wal::open(dir, read_only()).map_err(|e| format!("third open: {e:?}"))?;
    let got =
        try_read_all(&wal).map_err(|e| format!("reading after the third open: {e:?}\n{r}"))?;
    ensure!(got == with_extra, "third open: {} records:\n{r}", got.len());
    ensure!(r.dropped.is_empty(), "third open reports something:\n{r}");
    ensure!(r.clean_shutdown, "third open: not clean:\n{r}");
    Ok(())
}

// ---------------------------------------------------------------------------------
// B12: the last segment cut at every byte offset.

#[test]
fn b12_set_len_at_every_offset_of_the_last_records_keeps_whole_records() {
    cut_at_every_offset(Cut::SetLen);
}

#[test]
fn b12_zeroes_from_every_offset_of_the_last_records_keep_whole_records() {
    cut_at_every_offset(Cut::Zero);
}

// ---------------------------------------------------------------------------------
// B13: garbage after the last record.

/// A header that looks right (this segment's epoch, kind, the next LSN, a durable hint
/// that would prove everything) but whose checksum does not match its body.
fn lying_header(epoch: u32, kind: u8, lsn: u64, len: u32) -> Vec<u8> {
    let mut f = raw_frame(kind, 0, lsn, 1_000_000, epoch, &vec![0x5a; len as usize]);
    f[0] ^= 0xff; // wrong checksum
    f
}

/// Garbage written after `at`: lying headers, random bytes, a valid frame of another
/// epoch (a stale leftover) and a lying seal. No frame in it validates in this epoch.
fn garbage(epoch: u32, next: u64) -> Vec<u8> {
    let mut g = lying_header(epoch, 1, next, 48);
    let mut rng = Rng::new(0xB13);
    g.extend((0..256).map(|_| rng.next_u64() as u8));
    g.extend(raw_frame(
        1,
        0,
        next,
        next,
        epoch + 7,
        &payload(TAG, next, 40),
    ));
    let mut huge = lying_header(epoch, 2, next + 1, 0);
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    g.extend(huge);
    g.extend(lying_header(epoch, 3, next, 0));
    g.extend(lying_header(epoch, 1, next + 1, 100));
    g.resize(g.len().next_multiple_of(8), 0);
    g
}

/// Ten read-only opens give the same records and the same report and change nothing;
/// ten writable opens (crashing in between) give the same records, the first reporting
/// the trim and the others nothing.
fn assert_same_over_ten_reopens(dir: &Path, want: &[(u64, Vec<u8>)], trim: &[Expected]) {
    let before = snapshot(dir);
    for i in 0..10 {
        let (wal, r) = Wal::open(dir, read_only()).expect("read-only open");
        assert!(read_all(&wal) == want, "read-only open {i}:\n{r}");
        assert_eq!(summaries(&r), trim, "read-only open {i}:\n{r}");
    }
    assert!(
        snapshot(dir) == before,
        "a read-only open changed the files"
    );
    for i in 0..10 {
        let (wal, r) = Wal::open(dir, small()).expect("open");
        assert!(read_all(&wal) == want, "open {i}:\n{r}");
        let expected = if i == 0 { trim } else { &[] };
        assert_eq!(summaries(&r), expected, "open {i}:\n{r}");
        assert_eq!(r.next_lsn, Lsn(next_of(want)), "open {i}:\n{r}");
    }
}

#[test]
fn b13_garbage_after_last_record_of_crashed_log_same_over_ten_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&[40, 17, 100]), false);
    let end = log.end();
    write_bytes(&log.seg, end, &garbage(log.epoch, 4));
    let at_end = Frame {
        offset: end,
        lsn: 4,
        count: 0,
        body_bytes: 0,
    };
    assert_same_over_ten_reopens(
        dir.path(),
        &log.records,
        &[torn(&log, at_end, DropReason::ChecksumMismatch, None)],
    );
    assert_recovers(dir.path(), &log.records, &[]);
}

/// After a clean close the garbage follows the seal: the seal vouches for the records
/// before it, not for what lies after it.
#[test]
fn b13_garbage_after_the_seal_of_closed_log_same_over_ten_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&[40, 17, 100]), true);
    let end = log.end() + HEADER;
    write_bytes(&log.seg, end, &garbage(log.epoch, 4));
    let at_end = Frame {
        offset: end,
        lsn: 4,
        count: 0,
        body_bytes: 0,
    };
    assert_same_over_ten_reopens(
        dir.path(),
        &log.records,
        &[torn(&log, at_end, DropReason::ChecksumMismatch, None)],
    );
    assert_recovers(dir.path(), &log.records, &[]);
}

/// Random bytes first, the lying headers further on: still nothing but a trim.
#[test]
fn b13_random_bytes_then_lying_headers_same_over_ten_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&[40, 17, 100]), false);
    let end = log.end();
    let mut rng = Rng::new(7);
    let mut g: Vec<u8> = (0..136).map(|_| rng.next_u64() as u8).collect();
    g.extend(garbage(log.epoch, 4));
    write_bytes(&log.seg, end, &g);
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("open");
    assert!(read_all(&wal) == log.records, "{r}");
    let trim = summaries(&r);
    assert!(trim.len() <= 1, "{r}");
    assert!(
        trim.iter()
            .all(|d| d.torn_tail && d.offset == end && d.first_lsn == 4),
        "{r}"
    );
    drop(wal);
    assert_same_over_ten_reopens(dir.path(), &log.records, &trim);
    assert_recovers(dir.path(), &log.records, &[]);
}

// ---------------------------------------------------------------------------------
// B14: a record torn at a 512-byte sector boundary.

/// Records of 300 bytes: frames of 336 bytes at 4096, 4432, 4768, 5104 and 5440. The
/// second one's body crosses 4608; the fourth one's header crosses 5120.
const SECTOR_LENS: [usize; 5] = [300, 300, 300, 300, 300];

#[test]
fn b14_record_whose_later_sector_was_not_written_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&SECTOR_LENS[..2]), false);
    let torn_frame = log.frame(1);
    assert!(torn_frame.offset < 4608 && 4608 < torn_frame.end());
    write_bytes(&log.seg, 4608, &vec![0u8; 512]);
    assert_recovers(
        dir.path(),
        &log.below(2),
        &[torn(&log, torn_frame, DropReason::ChecksumMismatch, None)],
    );
}

/// The later sector holds what was there before (bytes of an old write).
#[test]
fn b14_record_whose_later_sector_holds_old_bytes_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&SECTOR_LENS[..2]), false);
    let torn_frame = log.frame(1);
    write_bytes(&log.seg, 4608, &[0xa5; 512]);
    assert_recovers(
        dir.path(),
        &log.below(2),
        &[torn(&log, torn_frame, DropReason::ChecksumMismatch, None)],
    );
}

/// The sector holding the second record's start was lost while the next sector (its
/// end and the whole third record) was written: the third record goes with the tail.
#[test]
fn b14_record_whose_earlier_sector_was_not_written_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&SECTOR_LENS[..3]), false);
    let torn_frame = log.frame(1);
    assert!(log.frame(2).offset >= 4608 && log.frame(2).end() <= 5120);
    // Zero from the second frame to the boundary: its header and first body bytes.
    write_bytes(
        &log.seg,
        torn_frame.offset,
        &vec![0u8; (4608 - torn_frame.offset) as usize],
    );
    assert_recovers(
        dir.path(),
        &log.below(2),
        &[torn(&log, torn_frame, DropReason::TornTail, Some((3, 3)))],
    );
}

/// A header that straddles the boundary, its second half lost: the record is trimmed.
#[test]
fn b14_header_torn_at_sector_boundary_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&SECTOR_LENS), false);
    let torn_frame = log.frame(3);
    assert!(torn_frame.offset < 5120 && 5120 < torn_frame.offset + HEADER);
    write_bytes(&log.seg, 5120, &vec![0u8; 512]);
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("open");
    assert!(read_all(&wal) == log.below(4), "{r}");
    assert!(r.dropped.iter().all(|d| d.torn_tail), "{r}");
    drop(wal);
    let (wal, r) = Wal::open(dir.path(), small()).expect("open");
    assert!(read_all(&wal) == log.below(4), "{r}");
    drop(wal);
    let (wal, r) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(read_all(&wal) == log.below(4), "{r}");
    assert!(r.dropped.is_empty(), "{r}");
    assert_eq!(wal.append(b"after").expect("append"), Lsn(4));
    wal.close().expect("close");
    let (wal, r) = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(read_all(&wal).len(), 4, "{r}");
    assert!(r.dropped.is_empty(), "{r}");
}

/// The same torn header must also be reported (SPEC §2.5: a torn tail is trimmed and
/// reported), with the fifth record that went with it.
#[test]
fn b14_header_torn_at_sector_boundary_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&SECTOR_LENS), false);
    let torn_frame = log.frame(3);
    write_bytes(&log.seg, 5120, &vec![0u8; 512]);
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("open");
    assert!(read_all(&wal) == log.below(4), "{r}");
    let d = summaries(&r);
    assert_eq!(d.len(), 1, "the torn record is not reported:\n{r}");
    assert_eq!(
        (d[0].offset, d[0].first_lsn, d[0].torn_tail),
        (torn_frame.offset, 4, true),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------
// B15: damage below the durable watermark.

fn durable(lens: &[usize]) -> Vec<Op> {
    lens.iter().map(|&l| Op::Durable(l)).collect()
}

/// Every record acknowledged durable (`Durability::Sync`), then a crash: bit rot in the
/// second-to-last record is proven by the last one.
#[test]
fn b15_bit_rot_in_an_acknowledged_durable_record_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &durable(&[40, 17, 100, 64, 25]), false);
    let victim = log.frame(3);
    flip_bit(&log.seg, mid_body(victim), 0);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// The last record a sync covered, damaged, with unsynced records after it: they were
/// written after it was durable, so this is not a torn write.
#[test]
fn b15_the_last_synced_record_damaged_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut ops = recs(&[40, 17, 100, 64]);
    ops.push(Op::Sync);
    ops.extend(recs(&[25, 72, 9]));
    let log = build(dir.path(), &ops, false);
    let victim = log.frame(3);
    flip_bit(&log.seg, mid_body(victim), 3);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// The contrast: the first record after the watermark damaged is a torn tail.
#[test]
fn b15_the_first_unsynced_record_damaged_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut ops = recs(&[40, 17, 100, 64]);
    ops.push(Op::Sync);
    ops.extend(recs(&[25, 72, 9]));
    let log = build(dir.path(), &ops, false);
    let victim = log.frame(4);
    flip_bit(&log.seg, mid_body(victim), 3);
    assert_recovers(
        dir.path(),
        &log.below(5),
        &[torn(
            &log,
            victim,
            DropReason::ChecksumMismatch,
            Some((6, 7)),
        )],
    );
}

/// A lost sector (zeroes) under acknowledged records: a hole, not an end.
#[test]
fn b15_lost_sector_below_the_watermark_is_corrupt_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &durable(&SECTOR_LENS), false);
    let victim = log.frame(0);
    write_bytes(&log.seg, 4096, &vec![0u8; 512]);
    assert_corrupt_everywhere(dir.path(), &log.seg, victim.offset, CorruptionKind::Hole);
}

/// The seal of a clean close proves every record: a lost sector under them is a hole.
#[test]
fn b15_lost_sector_in_closed_log_is_corrupt_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&SECTOR_LENS), true);
    write_bytes(&log.seg, 4608, &vec![0u8; 512]);
    // The sector 4608..5120 holds the end of the second frame: it fails its checksum.
    let victim = log.frame(1);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// Multi-segment logs: 900-byte records, 65 per 64 KiB segment.
const SEG_RECORD_BYTES: usize = 900;
const PER_SEGMENT: u64 = 65;

/// `count` records with a `sync()` after `sync_after` of them (0: never), then a crash
/// or a clean close. Returns the records.
fn build_segments(dir: &Path, count: u64, sync_after: u64, close: bool) -> Vec<(u64, Vec<u8>)> {
    let (wal, _) = Wal::open(dir, small()).expect("create");
    let mut records = Vec::new();
    for lsn in 1..=count {
        let p = payload(TAG, lsn, SEG_RECORD_BYTES);
        assert_eq!(wal.append(&p).expect("append"), Lsn(lsn));
        records.push((lsn, p));
        if lsn == sync_after {
            wal.sync().expect("sync");
        }
    }
    if close {
        wal.close().expect("close");
    } else {
        drop(wal);
    }
    ensure_prepared_segment(dir);
    let bases: Vec<u64> = segments(dir).iter().map(|s| header(s).base_lsn).collect();
    assert_eq!(
        &bases[..2],
        &[1, PER_SEGMENT + 1],
        "the layout the tests assume"
    );
    records
}

/// Offset of record `lsn` in its segment.
fn seg_offset(lsn: u64) -> u64 {
    DATA_OFFSET + ((lsn - 1) % PER_SEGMENT) * frame_len(SEG_RECORD_BYTES as u64)
}

/// Damage in segment 1, proven by records in segment 2 written after a sync.
#[test]
fn b15_damage_in_an_older_segment_proven_by_a_newer_one_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    build_segments(dir.path(), 100, 70, false);
    let one = segments(dir.path())[0].clone();
    for lsn in [30, PER_SEGMENT] {
        let at = seg_offset(lsn);
        flip_bit(&one, at + HEADER + 100, 2);
        assert_corrupt_everywhere(dir.path(), &one, at, CorruptionKind::Checksum);
        flip_bit(&one, at + HEADER + 100, 2);
    }
}

/// The seal of a clean close in segment 2 proves the records of segment 1.
#[test]
fn b15_damage_in_an_older_segment_of_closed_log_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    build_segments(dir.path(), 100, 0, true);
    let one = segments(dir.path())[0].clone();
    let at = seg_offset(PER_SEGMENT);
    flip_bit(&one, at + HEADER + 7, 6);
    assert_corrupt_everywhere(dir.path(), &one, at, CorruptionKind::Checksum);
}

/// The contrast: nothing was ever synced, so damage at the end of segment 1 takes the
/// unsynced records of segment 2 along as a torn tail, reported with their LSNs.
#[test]
fn b15_unsynced_damage_at_a_segment_end_is_a_torn_tail_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let records = build_segments(dir.path(), 100, 0, false);
    let one = segments(dir.path())[0].clone();
    let at = seg_offset(PER_SEGMENT);
    flip_bit(&one, at + HEADER + 7, 6);
    let want: Vec<(u64, Vec<u8>)> = records[..PER_SEGMENT as usize - 1].to_vec();
    let drop = Expected {
        file: one.clone(),
        offset: at,
        first_lsn: PER_SEGMENT,
        dropped_lsns: Some((PER_SEGMENT + 1, 100)),
        records: 100 - PER_SEGMENT,
        reason: DropReason::ChecksumMismatch,
        torn_tail: true,
    };
    assert_recovers(dir.path(), &want, &[drop]);
}
