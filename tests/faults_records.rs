//! Malformed records (FAULTS A1–A9): bit flips, damaged checksums and lengths, zeroed
//! headers, unknown record kinds and broken batches. Each test writes a small log in its
//! own directory (one segment, `Durability::None`), closes it cleanly or drops it without
//! `close()` (a crash), then edits the closed segment file byte by byte and reopens it.
//! Whether the damage is a torn tail (trimmed and reported) or corruption (a typed
//! error) depends on what the later frames prove: the seal of a clean close and the
//! `durable_hint` of records written after a sync vouch for everything below them.
mod common;
use common::built::*;
use common::*;

use std::path::Path;

use mmlog::testing::{RECORD_HEADER_BYTES, SEGMENT_DATA_OFFSET, raw_frame};
use mmlog::{CorruptionKind, DropReason, Error, Lsn, Options, RecoveryMode, Wal};

// ---------------------------------------------------------------------------------
// A1: bit flip in the last record.

const LENS: [usize; 6] = [40, 17, 100, 64, 25, 72];

#[test]
fn a1_bit_flip_in_last_record_of_crashed_log_is_trimmed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    flip_bit(&log.seg, mid_body(last), 3);
    assert_recovers(
        dir.path(),
        &log.below(6),
        &[torn(&log, last, DropReason::ChecksumMismatch, None)],
    );
}

/// Every bit of the last frame's header (except the epoch field, see below) and body:
/// each flip is trimmed and reported, never returned, never an error. Read-only opens,
/// so the file is only ever changed by the test.
#[test]
fn a1_every_bit_of_last_record_of_crashed_log_is_trimmed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&[12, 30, 9]), false);
    let last = log.frame(2);
    let want = log.below(3);
    let end = last.offset + HEADER + last.body_bytes;
    for offset in last.offset..end {
        if (last.offset + 24..last.offset + 28).contains(&offset) {
            continue; // the epoch field: a1_bit_flip_in_epoch_field_...
        }
        for bit in 0..8 {
            flip_bit(&log.seg, offset, bit);
            let (wal, r) = Wal::open(dir.path(), read_only())
                .unwrap_or_else(|e| panic!("byte {offset} bit {bit}: {e:?}"));
            assert!(read_all(&wal) == want, "byte {offset} bit {bit}:\n{r}");
            let d = summaries(&r);
            assert_eq!(d.len(), 1, "byte {offset} bit {bit}:\n{r}");
            assert_eq!(
                (d[0].offset, d[0].first_lsn, d[0].torn_tail, d[0].records),
                (last.offset, 3, true, 0),
                "byte {offset} bit {bit}:\n{r}"
            );
            assert!(
                matches!(
                    d[0].reason,
                    DropReason::ChecksumMismatch | DropReason::BadLength
                ),
                "byte {offset} bit {bit}: {:?}",
                d[0].reason
            );
            drop(wal);
            flip_bit(&log.seg, offset, bit);
        }
    }
    // Restored: the log is whole again.
    let (wal, r) = Wal::open(dir.path(), read_only()).unwrap();
    assert!(read_all(&wal) == log.records, "{r}");
    assert!(r.dropped.is_empty(), "{r}");
}

/// A flip in the epoch field of the last record turns it into a frame "from another use
/// of the segment", which the scan takes for a clean end. The record is lost either
/// way; FAULTS A1 and SPEC §2.5 require that the loss is reported.
#[test]
fn a1_bit_flip_in_epoch_field_of_last_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    flip_bit(&log.seg, last.offset + 24, 0);
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("open");
    assert!(read_all(&wal) == log.below(6), "{r}");
    let d = summaries(&r);
    assert_eq!(d.len(), 1, "the lost record is not reported:\n{r}");
    assert_eq!(
        (d[0].offset, d[0].first_lsn, d[0].torn_tail),
        (last.offset, 6, true),
        "{r}"
    );
}

/// After `close()` a seal follows the last record and vouches for it: a flip in the last
/// record is damage below the durable watermark.
#[test]
fn a1_bit_flip_in_last_record_of_cleanly_closed_log_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let last = log.frame(5);
    flip_bit(&log.seg, mid_body(last), 6);
    assert_corrupt_everywhere(dir.path(), &log.seg, last.offset, CorruptionKind::Checksum);
}

/// The seal itself damaged: it proves nothing any more, every record is kept, the
/// shutdown is not taken for clean, and the torn seal is reported.
#[test]
fn a1_bit_flip_in_the_seal_of_a_closed_log_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let seal_at = log.end();
    flip_bit(&log.seg, seal_at + 9, 1); // in the seal's LSN field
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("read-only open");
    assert!(!r.clean_shutdown, "{r}");
    drop(wal);
    let seal = Frame {
        offset: seal_at,
        lsn: 7,
        count: 0,
        body_bytes: 0,
    };
    assert_recovers(
        dir.path(),
        &log.records,
        &[torn(&log, seal, DropReason::ChecksumMismatch, None)],
    );
}

// ---------------------------------------------------------------------------------
// A2: bit flip in a middle record.

#[test]
fn a2_bit_flip_mid_log_of_cleanly_closed_log_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    flip_bit(&log.seg, mid_body(victim), 0);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// Records 5..=8 were appended after a `sync()` covering 1..=4: their durable hint
/// proves record 2 had been durable. A crash (no seal) changes nothing.
#[test]
fn a2_bit_flip_mid_log_followed_by_records_written_after_a_sync_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut ops = recs(&[40, 17, 100, 64]);
    ops.push(Op::Sync);
    ops.extend(recs(&[25, 72, 8, 33]));
    let log = build(dir.path(), &ops, false);
    let victim = log.frame(1);
    flip_bit(&log.seg, mid_body(victim), 2);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// Every record durable on its own (`Durability::Sync` appends), then a crash.
#[test]
fn a2_bit_flip_mid_log_of_durable_appends_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let ops: Vec<Op> = LENS.iter().map(|&l| Op::Durable(l)).collect();
    let log = build(dir.path(), &ops, false);
    let victim = log.frame(3);
    flip_bit(&log.seg, mid_body(victim), 7);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// Nothing was ever synced and the log crashed: every record after the flip may be a
/// torn write too, so the damage is a torn tail. The records after it are dropped with
/// it (never returned across the damage) and reported.
#[test]
fn a2_bit_flip_mid_log_with_no_sync_after_it_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let victim = log.frame(2);
    flip_bit(&log.seg, mid_body(victim), 5);
    assert_recovers(
        dir.path(),
        &log.below(3),
        &[torn(
            &log,
            victim,
            DropReason::ChecksumMismatch,
            Some((4, 6)),
        )],
    );
}

/// The flip is above the last sync: the records after it were written after that sync
/// but prove only LSNs up to it, so this is still a torn tail.
#[test]
fn a2_bit_flip_after_the_last_sync_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut ops = recs(&[40, 17, 100]);
    ops.push(Op::Sync);
    ops.extend(recs(&[64, 25, 72]));
    let log = build(dir.path(), &ops, false);
    let victim = log.frame(3);
    flip_bit(&log.seg, mid_body(victim), 1);
    assert_recovers(
        dir.path(),
        &log.below(4),
        &[torn(
            &log,
            victim,
            DropReason::ChecksumMismatch,
            Some((5, 6)),
        )],
    );
}

/// Salvage mode keeps the records around the damage and reports the one it dropped.
#[test]
fn a2_salvage_mode_reports_the_dropped_middle_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    flip_bit(&log.seg, mid_body(victim), 4);
    let (wal, r) = Wal::open(dir.path(), opts(RecoveryMode::SkipCorrupted)).expect("salvage");
    assert!(read_all(&wal) == log.without(3, 3), "{r}");
    assert_eq!(
        summaries(&r),
        vec![Expected {
            file: log.seg.clone(),
            offset: victim.offset,
            first_lsn: 3,
            dropped_lsns: Some((3, 3)),
            records: 1,
            reason: DropReason::ChecksumMismatch,
            torn_tail: false,
        }],
        "{r}"
    );
    assert!(matches!(wal.read(Lsn(3)), Err(Error::NotFound { .. })));
    assert_eq!(
        wal.read(Lsn(4)).expect("read 4").payload(),
        log.records[3].1
    );
}

// ---------------------------------------------------------------------------------
// A3: the CRC field itself damaged.

#[test]
fn a3_flipped_crc_field_mid_log_of_closed_log_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(1);
    flip_bit(&log.seg, victim.offset + 2, 4);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

#[test]
fn a3_flipped_crc_field_of_last_record_of_crashed_log_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    write_bytes(&log.seg, last.offset, &[0xff, 0xff, 0xff, 0xff]);
    assert_recovers(
        dir.path(),
        &log.below(6),
        &[torn(&log, last, DropReason::ChecksumMismatch, None)],
    );
}

// ---------------------------------------------------------------------------------
// A4: a length grown but still inside the segment.

/// Record 2's length grown by exactly one frame: a reader that trusted it would land on
/// record 4 and report an LSN gap. The error must name record 2's checksum.
#[test]
fn a4_grown_length_mid_log_is_a_checksum_error_not_a_jump() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&[30; 6]), true);
    let victim = log.frame(1);
    write_len(&log.seg, victim, 30 + 64);
    assert_eq!(victim.offset + frame_len(30 + 64), log.frame(3).offset);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::Checksum,
    );
}

/// In salvage mode the record right after the damaged one (inside the bad length) is
/// kept: the scan did not jump ahead by the bad length.
#[test]
fn a4_grown_length_salvage_keeps_the_record_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&[30; 6]), true);
    let victim = log.frame(1);
    write_len(&log.seg, victim, 30 + 64);
    let (wal, r) = Wal::open(dir.path(), opts(RecoveryMode::SkipCorrupted)).expect("salvage");
    assert!(read_all(&wal) == log.without(2, 2), "{r}");
    let d = summaries(&r);
    assert_eq!(d.len(), 1, "{r}");
    assert_eq!(
        (d[0].offset, d[0].first_lsn, d[0].dropped_lsns, d[0].records),
        (victim.offset, 2, Some((2, 2)), 1),
        "{r}"
    );
}

#[test]
fn a4_grown_length_of_last_record_of_crashed_log_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    write_len(&log.seg, last, 72 + 512);
    assert_recovers(
        dir.path(),
        &log.below(6),
        &[torn(&log, last, DropReason::ChecksumMismatch, None)],
    );
}

// ---------------------------------------------------------------------------------
// A5: huge lengths.

/// Lengths no segment can hold, some of which overflow 32-bit arithmetic once the
/// header and padding are added: a typed error naming the frame, never an allocation
/// or a panic.
#[test]
fn a5_huge_length_mid_log_is_bad_length() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    let original = read_bytes(&log.seg, victim.offset + 4, 4);
    for len in [
        u32::MAX,
        u32::MAX - 7,
        u32::MAX - 31,
        1 << 31,
        64 * 1024,
        (64 * 1024 - 4096) as u32,
    ] {
        write_len(&log.seg, victim, len);
        assert_corrupt_everywhere(
            dir.path(),
            &log.seg,
            victim.offset,
            CorruptionKind::BadLength,
        );
    }
    write_bytes(&log.seg, victim.offset + 4, &original);
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("restored");
    assert!(read_all(&wal) == log.records, "{r}");
}

#[test]
fn a5_huge_length_of_last_record_of_crashed_log_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    write_len(&log.seg, last, u32::MAX);
    assert_recovers(
        dir.path(),
        &log.below(6),
        &[torn(&log, last, DropReason::BadLength, None)],
    );
}

#[test]
fn a5_huge_length_salvage_resumes_at_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    write_len(&log.seg, victim, u32::MAX);
    let (wal, r) = Wal::open(dir.path(), opts(RecoveryMode::SkipCorrupted)).expect("salvage");
    assert!(read_all(&wal) == log.without(3, 3), "{r}");
    let d = summaries(&r);
    assert_eq!(d.len(), 1, "{r}");
    assert_eq!(
        (d[0].offset, d[0].reason, d[0].dropped_lsns),
        (victim.offset, DropReason::BadLength, Some((3, 3))),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------
// A6: the last record's length runs past the segment end.

#[test]
fn a6_last_record_length_past_segment_end_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    // Exactly the room left in the segment, plus one byte.
    let room = 64 * 1024 - last.offset - RECORD_HEADER_BYTES;
    write_len(&log.seg, last, u32::try_from(room + 1).unwrap());
    assert_recovers(
        dir.path(),
        &log.below(6),
        &[torn(&log, last, DropReason::BadLength, None)],
    );
}

/// The same length, one byte shorter, fits the segment: it fails its checksum instead.
#[test]
fn a6_last_record_length_up_to_segment_end_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    let room = 64 * 1024 - last.offset - RECORD_HEADER_BYTES;
    write_len(&log.seg, last, u32::try_from(room).unwrap());
    assert_recovers(
        dir.path(),
        &log.below(6),
        &[torn(&log, last, DropReason::ChecksumMismatch, None)],
    );
}

// ---------------------------------------------------------------------------------
// A7: all-zero headers.

/// The last frame zeroed entirely: zeroed space after a record is the normal end of a
/// log, nothing to report.
#[test]
fn a7_zeroed_last_frame_is_the_normal_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    write_bytes(&log.seg, last.offset, &vec![0u8; last.bytes() as usize]);
    assert_recovers(dir.path(), &log.below(6), &[]);
}

#[test]
fn a7_zeroed_last_frame_without_prepared_segment_is_the_normal_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    remove_prepared_segments(dir.path());
    let last = log.frame(5);
    write_bytes(&log.seg, last.offset, &vec![0u8; last.bytes() as usize]);
    assert_recovers(dir.path(), &log.below(6), &[]);
}

/// Only the last header zeroed, its body left behind: still the end of the log. The
/// leftover body bytes must not come back as damage after the next append.
#[test]
fn a7_zeroed_last_header_is_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    write_bytes(&log.seg, last.offset, &[0u8; HEADER as usize]);
    assert_recovers(dir.path(), &log.below(6), &[]);
}

#[test]
fn a7_zeroed_last_header_without_prepared_segment_is_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    remove_prepared_segments(dir.path());
    let last = log.frame(5);
    write_bytes(&log.seg, last.offset, &[0u8; HEADER as usize]);
    assert_recovers(dir.path(), &log.below(6), &[]);
}

/// A zeroed header in the middle of a cleanly closed log, with the next segment
/// prepared (the normal state of a log directory): the records after the hole and the
/// seal prove it is not a torn write.
#[test]
fn a7_zeroed_header_mid_log_of_closed_log_is_corrupt_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(3);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    assert_corrupt_everywhere(dir.path(), &log.seg, victim.offset, CorruptionKind::Hole);
}

#[test]
fn a7_zeroed_header_mid_log_of_closed_log_without_prepared_segment_is_corrupt_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    remove_prepared_segments(dir.path());
    let victim = log.frame(3);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    assert_corrupt_everywhere(dir.path(), &log.seg, victim.offset, CorruptionKind::Hole);
}

fn synced_then_more(dir: &Path) -> Log {
    let mut ops = recs(&[40, 17, 100, 64]);
    ops.push(Op::Sync);
    ops.extend(recs(&[25, 72]));
    build(dir, &ops, false)
}

#[test]
fn a7_zeroed_header_mid_log_followed_by_records_written_after_a_sync_is_corrupt_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = synced_then_more(dir.path());
    let victim = log.frame(2);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    assert_corrupt_everywhere(dir.path(), &log.seg, victim.offset, CorruptionKind::Hole);
}

#[test]
fn a7_zeroed_header_mid_log_followed_by_synced_records_without_prepared_segment_is_corrupt_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = synced_then_more(dir.path());
    remove_prepared_segments(dir.path());
    let victim = log.frame(2);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    assert_corrupt_everywhere(dir.path(), &log.seg, victim.offset, CorruptionKind::Hole);
}

/// A zeroed header with unsynced records after it (a crash, nothing ever synced): a
/// torn tail, reported with the records it takes along.
#[test]
fn a7_zeroed_header_mid_log_with_no_sync_after_it_is_a_reported_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let victim = log.frame(3);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    assert_recovers(
        dir.path(),
        &log.below(4),
        &[torn(&log, victim, DropReason::TornTail, Some((5, 6)))],
    );
}

#[test]
fn a7_zeroed_header_mid_log_with_no_sync_without_prepared_segment_is_a_reported_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    remove_prepared_segments(dir.path());
    let victim = log.frame(3);
    write_bytes(&log.seg, victim.offset, &[0u8; HEADER as usize]);
    assert_recovers(
        dir.path(),
        &log.below(4),
        &[torn(&log, victim, DropReason::TornTail, Some((5, 6)))],
    );
}

// ---------------------------------------------------------------------------------
// A8: unknown record kinds with a valid checksum.

/// A frame a torn write cannot produce (valid checksum, kind unknown to this version):
/// an error even at the tail of a crashed log, for every unknown kind.
#[test]
fn a8_unknown_kind_with_valid_crc_is_corrupt_even_at_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    let body = log.records[5].1.clone();
    for kind in [0u8, 4, 9, 127, 255] {
        let frame = raw_frame(kind, 0, 6, 0, log.epoch, &body);
        assert_eq!(frame.len() as u64, last.bytes());
        write_bytes(&log.seg, last.offset, &frame);
        assert_corrupt_everywhere(
            dir.path(),
            &log.seg,
            last.offset,
            CorruptionKind::UnknownRecordKind(kind),
        );
    }
    // The forged frame is well formed but for its kind: kind 1 makes it valid again.
    write_bytes(
        &log.seg,
        last.offset,
        &raw_frame(1, 0, 6, 0, log.epoch, &body),
    );
    let (wal, r) = Wal::open(dir.path(), read_only()).expect("kind 1");
    assert!(read_all(&wal) == log.records, "{r}");
}

#[test]
fn a8_unknown_kind_mid_log_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), true);
    let victim = log.frame(2);
    let frame = raw_frame(77, 0, 3, 0, log.epoch, &log.records[2].1);
    write_bytes(&log.seg, victim.offset, &frame);
    assert_corrupt_everywhere(
        dir.path(),
        &log.seg,
        victim.offset,
        CorruptionKind::UnknownRecordKind(77),
    );
}

/// The format defines no ignorable flag: a known kind with any flag set is refused too.
#[test]
fn a8_known_kind_with_unknown_flag_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), &recs(&LENS), false);
    let last = log.frame(5);
    for flags in [1u8, 0x80] {
        let frame = raw_frame(1, flags, 6, 0, log.epoch, &log.records[5].1);
        write_bytes(&log.seg, last.offset, &frame);
        assert_corrupt_everywhere(
            dir.path(),
            &log.seg,
            last.offset,
            CorruptionKind::UnknownRecordKind(1),
        );
    }
}

// ---------------------------------------------------------------------------------
// A9: batches (one frame per batch) never half applied.

const BATCH: &[usize] = &[20, 30, 40];

fn batch_log(dir: &Path, close: bool, after: &[usize]) -> Log {
    let mut ops = recs(&[11, 22, 33]);
    ops.push(Op::Batch(BATCH));
    ops.extend(recs(after));
    build(dir, &ops, close)
}

/// The batch's last payload damaged: none of the batch comes back, and LSN 4 (its first)
/// is the next one handed out.
#[test]
fn a9_batch_damaged_in_its_last_payload_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = batch_log(dir.path(), false, &[]);
    let batch = log.frame(3);
    assert_eq!((batch.lsn, batch.count), (4, 3));
    flip_bit(&log.seg, batch.offset + HEADER + batch.body_bytes - 3, 2);
    assert_recovers(
        dir.path(),
        &log.below(4),
        &[torn(&log, batch, DropReason::ChecksumMismatch, None)],
    );
}

/// A batch whose start was written and whose end was not (zeroes from its middle on).
#[test]
fn a9_batch_start_without_end_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = batch_log(dir.path(), false, &[]);
    let batch = log.frame(3);
    let cut = batch.offset + HEADER + 4 + 12 + 20 + 5; // inside the second payload
    write_bytes(&log.seg, cut, &vec![0u8; (batch.end() - cut) as usize]);
    assert_recovers(
        dir.path(),
        &log.below(4),
        &[torn(&log, batch, DropReason::ChecksumMismatch, None)],
    );
}

/// A batch whose end was written and whose start (header, directory, first payload)
/// was not.
#[test]
fn a9_batch_end_without_start_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = batch_log(dir.path(), false, &[]);
    let batch = log.frame(3);
    let keep_from = batch.offset + HEADER + 4 + 12 + 20;
    write_bytes(
        &log.seg,
        batch.offset,
        &vec![0u8; (keep_from - batch.offset) as usize],
    );
    // Zeroes where the header was: the end of the log, with nothing valid beyond.
    assert_recovers(dir.path(), &log.below(4), &[]);
}

/// Batch bodies with a valid checksum whose directory does not add up: refused with a
/// typed error in the default mode; salvage drops all three LSNs of the batch and keeps
/// the records after it; point-in-time keeps the records before it.
#[test]
fn a9_batch_directory_inconsistent_with_valid_crc_is_never_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let log = batch_log(dir.path(), true, &[15, 16]);
    let batch = log.frame(3);
    let original = read_bytes(&log.seg, batch.offset, batch.bytes() as usize);
    let body_len = batch.body_bytes as usize;
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    // Lengths add up to one byte more than the payloads hold.
    let mut b = vec![0u8; body_len];
    b[0..4].copy_from_slice(&3u32.to_le_bytes());
    for (i, l) in [20u32, 30, 41].iter().enumerate() {
        b[4 + 4 * i..8 + 4 * i].copy_from_slice(&l.to_le_bytes());
    }
    bodies.push(b);
    // Count zero.
    bodies.push(vec![0u8; body_len]);
    // A count whose directory alone is larger than the body.
    let mut b = vec![0u8; body_len];
    b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    bodies.push(b);
    // Two records claimed where the lengths describe three payloads' worth of bytes.
    let mut b = vec![0u8; body_len];
    b[0..4].copy_from_slice(&2u32.to_le_bytes());
    b[4..8].copy_from_slice(&20u32.to_le_bytes());
    b[8..12].copy_from_slice(&30u32.to_le_bytes());
    bodies.push(b);

    for body in &bodies {
        let frame = raw_frame(2, 0, 4, 0, log.epoch, body);
        assert_eq!(frame.len() as u64, batch.bytes());
        write_bytes(&log.seg, batch.offset, &frame);
        assert_corrupt_everywhere(
            dir.path(),
            &log.seg,
            batch.offset,
            CorruptionKind::BadLength,
        );

        let po = Options {
            read_only: true,
            ..opts(RecoveryMode::PointInTime)
        };
        let (wal, r) = Wal::open(dir.path(), po).expect("point in time");
        assert!(read_all(&wal) == log.below(4), "{r}");
        drop(wal);

        let so = Options {
            read_only: true,
            ..opts(RecoveryMode::SkipCorrupted)
        };
        let (wal, r) = Wal::open(dir.path(), so).expect("salvage");
        assert!(read_all(&wal) == log.without(4, 6), "{r}");
        let d = summaries(&r);
        assert_eq!(d.len(), 1, "{r}");
        assert_eq!(
            (d[0].offset, d[0].first_lsn, d[0].dropped_lsns, d[0].records),
            (batch.offset, 4, Some((4, 6)), 3),
            "{r}"
        );
        for lsn in 4..=6 {
            assert!(
                matches!(wal.read(Lsn(lsn)), Err(Error::NotFound { .. })),
                "LSN {lsn} of a broken batch is readable"
            );
        }
        drop(wal);
    }
    write_bytes(&log.seg, batch.offset, &original);
    let (wal, r) = Wal::open(dir.path(), small()).expect("restored");
    assert!(read_all(&wal) == log.records, "{r}");
    assert!(r.clean_shutdown, "{r}");
}

/// A batch damaged in the middle of a cleanly closed log: an error, and in salvage mode
/// the whole batch goes (all three LSNs), never part of it.
#[test]
fn a9_batch_damaged_mid_log_salvage_drops_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = batch_log(dir.path(), true, &[15, 16]);
    let batch = log.frame(3);
    flip_bit(&log.seg, batch.offset + HEADER + 4 + 12 + 25, 0); // second payload
    assert_corrupt_everywhere(dir.path(), &log.seg, batch.offset, CorruptionKind::Checksum);
    let (wal, r) = Wal::open(dir.path(), opts(RecoveryMode::SkipCorrupted)).expect("salvage");
    assert!(read_all(&wal) == log.without(4, 6), "{r}");
    let d = summaries(&r);
    assert_eq!(d.len(), 1, "{r}");
    assert_eq!(
        (
            d[0].first_lsn,
            d[0].dropped_lsns,
            d[0].records,
            d[0].torn_tail
        ),
        (4, Some((4, 6)), 3, false),
        "{r}"
    );
    assert_eq!(log.last_lsn(), 8);
    assert_eq!(r.next_lsn, Lsn(9), "{r}");
}

#[test]
fn layout_constants_match_the_engine() {
    assert_eq!(SEGMENT_DATA_OFFSET, DATA_OFFSET);
    assert_eq!(RECORD_HEADER_BYTES, HEADER);
}
