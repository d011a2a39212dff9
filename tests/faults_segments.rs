//! Bad segment headers and short segment files (FAULTS A10–A11). Each test writes a
//! log of three 64 KiB segments (plus the prepared, still empty fourth one) in its own
//! directory and closes it, then damages a segment file while it is closed: the magic,
//! version, checksum or declared size in its two header slots (forged with
//! `mmlog::testing::encode_segment_header` where the damage must carry a valid
//! checksum), its name, or its length. Header damage must be a typed error and never a
//! mapping past the end of a file; a newest segment too short to hold a header is an
//! interrupted creation (reported, removed, recreated), an older one is corruption.
mod common;
use common::built::{ensure_prepared_segment, header, snapshot};
use common::*;

use std::path::{Path, PathBuf};

use mmlog::testing::{SEGMENT_HEADER_SLOTS, SegmentHeaderFields, encode_segment_header};
use mmlog::{CorruptionKind, DropReason, Error, Lsn, Options, RecoveryMode, RecoveryReport, Wal};

const TAG: u64 = 0xA10;
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Records of this size: 65 of them fill a 64 KiB segment.
const RECORD_BYTES: usize = 900;
const RECORDS: u64 = 150;

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// Removes the prepared, never used segments at the end.
fn remove_prepared_segments(dir: &Path) {
    for s in segments(dir).iter().rev() {
        if header(s).base_lsn != 0 {
            break;
        }
        std::fs::remove_file(s).expect("remove");
    }
}

/// A cleanly closed log of [`RECORDS`] records over segments 1..=3, with segment 4
/// prepared. Returns the records.
fn build(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let (wal, report) = Wal::open(dir, small()).expect("create");
    assert!(report.created);
    let mut records = Vec::new();
    for lsn in 1..=RECORDS {
        let p = payload(TAG, lsn, RECORD_BYTES);
        assert_eq!(wal.append(&p).expect("append"), Lsn(lsn));
        records.push((lsn, p));
    }
    wal.close().expect("close");
    ensure_prepared_segment(dir);
    let bases: Vec<u64> = segments(dir).iter().map(|s| header(s).base_lsn).collect();
    assert_eq!(bases, vec![1, 66, 131, 0], "the layout the tests assume");
    records
}

fn opts(mode: RecoveryMode) -> Options {
    Options {
        recovery_mode: mode,
        ..small()
    }
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..small()
    }
}

fn assert_corrupt(
    res: mmlog::Result<(Wal, RecoveryReport)>,
    file: &Path,
    offset: u64,
    kind: &CorruptionKind,
) {
    match res {
        Err(Error::Corrupt {
            file: f,
            offset: o,
            kind: k,
        }) => assert_eq!(
            (f.as_path(), o, &k),
            (file, offset, kind),
            "wrong corruption"
        ),
        Err(e) => panic!(
            "expected Corrupt({kind:?}) in {}, got {e:?}",
            file.display()
        ),
        Ok((_, r)) => panic!("expected Corrupt({kind:?}), open succeeded:\n{r}"),
    }
}

/// The damage is the same typed error in a writable, a read-only and a strict open, and
/// none of them changes a byte.
fn assert_corrupt_everywhere(dir: &Path, file: &Path, kind: CorruptionKind) {
    let before = snapshot(dir);
    assert_corrupt(Wal::open(dir, small()), file, 0, &kind);
    assert_corrupt(Wal::open(dir, read_only()), file, 0, &kind);
    assert_corrupt(
        Wal::open(dir, opts(RecoveryMode::AbsoluteConsistency)),
        file,
        0,
        &kind,
    );
    assert!(snapshot(dir) == before, "a failed open changed the files");
}

/// Opens the log: every record in `want` is there and readable by LSN, and the next
/// append gets the next LSN. Returns the report; the log is closed.
fn assert_whole(dir: &Path, opts: Options, want: &[(u64, Vec<u8>)]) -> RecoveryReport {
    let (wal, r) = Wal::open(dir, opts).expect("open");
    assert!(read_all(&wal) == want, "records differ:\n{r}");
    for (lsn, p) in want.iter().step_by(7) {
        let got = wal
            .read(Lsn(*lsn))
            .unwrap_or_else(|e| panic!("read {lsn}: {e:?}\n{r}"));
        assert_eq!(got.payload(), p.as_slice(), "LSN {lsn}");
    }
    let next = want.last().map_or(1, |w| w.0 + 1);
    assert_eq!(r.next_lsn, Lsn(next), "{r}");
    wal.close().expect("close");
    r
}

/// After a successful recovery: an append works, and two more opens (after a crash and
/// after a clean close) give the same records and report nothing.
fn assert_appends_and_reopens(dir: &Path, want: &[(u64, Vec<u8>)]) {
    let next = want.last().map_or(1, |w| w.0 + 1);
    let (wal, r) = Wal::open(dir, small()).expect("open");
    assert!(r.dropped.is_empty(), "{r}");
    let extra = payload(TAG + 1, next, 33);
    assert_eq!(wal.append(&extra).expect("append"), Lsn(next));
    drop(wal); // a crash
    let mut with_extra = want.to_vec();
    with_extra.push((next, extra));
    let r = assert_whole(dir, small(), &with_extra);
    assert!(r.dropped.is_empty(), "{r}");
    let r = assert_whole(dir, small(), &with_extra);
    assert!(r.dropped.is_empty(), "{r}");
    assert!(r.clean_shutdown, "{r}");
}

fn damage_magic(path: &Path, slot: usize) {
    write_bytes(path, SEGMENT_HEADER_SLOTS[slot], b"NOTMMLOG");
}

// ---------------------------------------------------------------------------------
// A10: bad segment headers.

/// Segment 2 has both slots valid (generation 1 from its creation, generation 2 from
/// its activation); segment 1 has one. Damaging the magic of every slot is BadMagic.
#[test]
fn a10_magic_damaged_in_both_slots_is_bad_magic() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for seq in [2, 1] {
        let path = seg_path(dir.path(), seq);
        let original = read_bytes(&path, 0, 4096);
        damage_magic(&path, 0);
        damage_magic(&path, 1);
        assert_corrupt_everywhere(dir.path(), &path, CorruptionKind::BadMagic);
        write_bytes(&path, 0, &original);
    }
    // The newest segment too (the prepared one).
    let path = seg_path(dir.path(), 4);
    damage_magic(&path, 0);
    damage_magic(&path, 1);
    assert_corrupt_everywhere(dir.path(), &path, CorruptionKind::BadMagic);
}

/// One damaged slot falls back to the other: segment 2's current slot (with its base
/// LSN) damaged leaves its creation slot (base LSN 0); every record is still there, in
/// order and readable by LSN.
#[test]
fn a10_magic_damaged_in_one_slot_falls_back_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let want = build(dir.path());
    let path = seg_path(dir.path(), 2);
    let original = read_bytes(&path, 0, 4096);
    assert_eq!(header(&path).generation, 2);
    for slot in [1, 0] {
        damage_magic(&path, slot);
        let r = assert_whole(dir.path(), read_only(), &want);
        assert!(r.dropped.is_empty(), "{r}");
        assert!(r.clean_shutdown, "{r}");
        write_bytes(&path, 0, &original);
    }
    damage_magic(&path, 1);
    let r = assert_whole(dir.path(), small(), &want);
    assert!(r.dropped.is_empty(), "{r}");
    assert_appends_and_reopens(dir.path(), &want);
}

#[test]
fn a10_checksum_damaged_in_both_slots_is_header_checksum() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = seg_path(dir.path(), 2);
    for slot in SEGMENT_HEADER_SLOTS {
        flip_bit(&path, slot + 16, 0); // in the sequence number
    }
    assert_corrupt_everywhere(dir.path(), &path, CorruptionKind::HeaderChecksum);
}

/// Version 2 written into both slots, magic intact: refused as an unsupported version,
/// for an old, a middle and the newest segment.
#[test]
fn a10_newer_format_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for seq in [1, 2, 4] {
        let path = seg_path(dir.path(), seq);
        let original = read_bytes(&path, 0, 4096);
        for slot in SEGMENT_HEADER_SLOTS {
            write_bytes(&path, slot + 8, &2u16.to_le_bytes());
        }
        let before = snapshot(dir.path());
        for o in [small(), read_only(), opts(RecoveryMode::SkipCorrupted)] {
            match Wal::open(dir.path(), o) {
                Err(Error::UnsupportedVersion {
                    file,
                    found,
                    supported,
                }) => assert_eq!((file, found, supported), (path.clone(), 2, 1)),
                Err(e) => panic!("segment {seq}: expected UnsupportedVersion, got {e:?}"),
                Ok((_, r)) => panic!("segment {seq}: a version 2 header was accepted:\n{r}"),
            }
        }
        assert!(
            snapshot(dir.path()) == before,
            "a failed open changed the files"
        );
        write_bytes(&path, 0, &original);
    }
}

/// Segments 1 and 2 swapped by name: the header's sequence number disagrees with the
/// file name.
#[test]
fn a10_segments_swapped_by_name_are_sequence_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let (one, two) = (seg_path(dir.path(), 1), seg_path(dir.path(), 2));
    let tmp = dir.path().join("swap");
    std::fs::rename(&one, &tmp).unwrap();
    std::fs::rename(&two, &one).unwrap();
    std::fs::rename(&tmp, &two).unwrap();
    assert_corrupt_everywhere(
        dir.path(),
        &one,
        CorruptionKind::SequenceMismatch {
            expected: 1,
            found: 2,
        },
    );
}

/// The newest segment renamed to a later number.
#[test]
fn a10_newest_segment_renamed_is_sequence_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    remove_prepared_segments(dir.path());
    let renamed = seg_path(dir.path(), 9);
    std::fs::rename(seg_path(dir.path(), 3), &renamed).unwrap();
    assert_corrupt_everywhere(
        dir.path(),
        &renamed,
        CorruptionKind::SequenceMismatch {
            expected: 9,
            found: 3,
        },
    );
}

/// Writes `fields` (with a generation above the current one) into both slots.
fn forge(path: &Path, change: impl Fn(&mut SegmentHeaderFields)) {
    let mut h = header(path);
    change(&mut h);
    h.generation += 1;
    let slot = encode_segment_header(h);
    for at in SEGMENT_HEADER_SLOTS {
        write_bytes(path, at, &slot);
    }
    assert_eq!(header(path), h);
}

/// An older segment whose header declares more bytes than the file has.
#[test]
fn a10_declared_size_larger_than_an_older_file_is_bad_file_size() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = seg_path(dir.path(), 1);
    forge(&path, |h| h.segment_bytes = 2 * SEGMENT_BYTES);
    assert_corrupt_everywhere(
        dir.path(),
        &path,
        CorruptionKind::BadFileSize {
            expected: 2 * SEGMENT_BYTES,
            found: SEGMENT_BYTES,
        },
    );
}

/// A file longer than its header declares is corruption, the newest one included:
/// here the header shrunk, the file left as it was.
#[test]
fn a10_declared_size_smaller_than_the_file_is_bad_file_size() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for seq in [2, 4] {
        let path = seg_path(dir.path(), seq);
        let original = read_bytes(&path, 0, 4096);
        forge(&path, |h| h.segment_bytes = SEGMENT_BYTES / 2);
        assert_corrupt_everywhere(
            dir.path(),
            &path,
            CorruptionKind::BadFileSize {
                expected: SEGMENT_BYTES / 2,
                found: SEGMENT_BYTES,
            },
        );
        write_bytes(&path, 0, &original);
    }
}

/// Here the file grew, the header left as it was: older and newest segment alike.
#[test]
fn a10_file_longer_than_declared_is_bad_file_size() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for seq in [3, 4] {
        let path = seg_path(dir.path(), seq);
        set_len(&path, SEGMENT_BYTES + 4096);
        assert_corrupt_everywhere(
            dir.path(),
            &path,
            CorruptionKind::BadFileSize {
                expected: SEGMENT_BYTES,
                found: SEGMENT_BYTES + 4096,
            },
        );
        set_len(&path, SEGMENT_BYTES);
    }
}

/// The newest segment (holding the last records) declares twice its length: it is
/// treated as a cut file, reported, and only the bytes that exist are mapped (touching
/// the rest would be SIGBUS). A strict open refuses it.
#[test]
fn a10_newest_segment_declared_larger_than_its_file_maps_only_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let want = build(dir.path());
    remove_prepared_segments(dir.path());
    let path = seg_path(dir.path(), 3);
    forge(&path, |h| h.segment_bytes = 2 * SEGMENT_BYTES);
    assert_corrupt(
        Wal::open(dir.path(), opts(RecoveryMode::AbsoluteConsistency)),
        &path,
        0,
        &CorruptionKind::BadFileSize {
            expected: 2 * SEGMENT_BYTES,
            found: SEGMENT_BYTES,
        },
    );
    let r = assert_whole(dir.path(), small(), &want);
    assert_eq!(r.dropped.len(), 1, "{r}");
    let d = &r.dropped[0];
    assert_eq!(
        (&d.file, d.offset, d.bytes, d.reason, d.torn_tail),
        (
            &path,
            SEGMENT_BYTES,
            SEGMENT_BYTES,
            DropReason::IncompleteSegment,
            true
        ),
        "{r}"
    );
    assert_appends_and_reopens(dir.path(), &want);
}

/// Not in FAULTS A10 by number, but a damage no crash produces: a segment missing
/// between two others is corruption, found where the chain leaves segment 1.
#[test]
fn missing_middle_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    std::fs::remove_file(seg_path(dir.path(), 2)).unwrap();
    let one = seg_path(dir.path(), 1);
    let end_of_frames = DATA_OFFSET + 65 * frame_len(RECORD_BYTES as u64);
    let before = snapshot(dir.path());
    for o in [small(), read_only()] {
        assert_corrupt(
            Wal::open(dir.path(), o),
            &one,
            end_of_frames,
            &CorruptionKind::MissingSegment { seq: 2 },
        );
    }
    assert!(snapshot(dir.path()) == before);
}

// ---------------------------------------------------------------------------------
// A11: segment files shorter than their header.

/// The newest segment cut to `len` bytes of its own beginning (0, 10, a whole header
/// slot, one byte short of the header page): an interrupted creation. It is reported
/// and removed, every record stays, and the log goes on.
#[test]
fn a11_newest_segment_shorter_than_its_header_is_dropped_and_recreated() {
    for len in [0u64, 10, 64, 4095] {
        let dir = tempfile::tempdir().unwrap();
        let want = build(dir.path());
        let path = seg_path(dir.path(), 4);
        set_len(&path, len);
        let r = assert_whole(dir.path(), small(), &want);
        assert_eq!(r.dropped.len(), 1, "len {len}:\n{r}");
        let d = &r.dropped[0];
        assert_eq!(
            (
                &d.file,
                d.offset,
                d.first_lsn,
                d.records,
                d.reason,
                d.torn_tail
            ),
            (&path, 0, Lsn(0), 0, DropReason::IncompleteSegment, true),
            "len {len}:\n{r}"
        );
        assert!(r.removed_files.contains(&path), "len {len}:\n{r}");
        assert_appends_and_reopens(dir.path(), &want);
    }
}

/// The newest segment full size but with a header page never written (all zero).
#[test]
fn a11_newest_segment_with_unwritten_header_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let want = build(dir.path());
    let path = seg_path(dir.path(), 4);
    write_bytes(&path, 0, &[0u8; 4096]);
    let r = assert_whole(dir.path(), small(), &want);
    assert_eq!(r.dropped.len(), 1, "{r}");
    assert_eq!(
        (&r.dropped[0].file, r.dropped[0].reason),
        (&path, DropReason::IncompleteSegment),
        "{r}"
    );
    assert_appends_and_reopens(dir.path(), &want);
}

/// An older segment cut below its header: the records it held are gone, which no crash
/// can do.
#[test]
fn a11_older_segment_shorter_than_its_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for (seq, len) in [(2u64, 10u64), (1, 0), (3, 4095)] {
        let path = seg_path(dir.path(), seq);
        let original = std::fs::read(&path).unwrap();
        set_len(&path, len);
        assert_corrupt_everywhere(
            dir.path(),
            &path,
            CorruptionKind::BadFileSize {
                expected: 4096,
                found: len,
            },
        );
        std::fs::write(&path, original).unwrap();
    }
    let r = assert_whole(dir.path(), read_only(), &build_expected());
    assert!(r.dropped.is_empty(), "{r}");
}

fn build_expected() -> Vec<(u64, Vec<u8>)> {
    (1..=RECORDS)
        .map(|l| (l, payload(TAG, l, RECORD_BYTES)))
        .collect()
}

/// An older segment whose header page is all zero.
#[test]
fn a11_older_segment_with_unwritten_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = seg_path(dir.path(), 2);
    write_bytes(&path, 0, &[0u8; 4096]);
    for o in [small(), read_only()] {
        match Wal::open(dir.path(), o) {
            Err(Error::Corrupt {
                file,
                offset: 0,
                kind: CorruptionKind::BadHeader(_),
            }) => assert_eq!(file, path),
            Err(e) => panic!("expected Corrupt(BadHeader) in segment 2, got {e:?}"),
            Ok((_, r)) => panic!("an uninitialised older segment was accepted:\n{r}"),
        }
    }
}

#[test]
fn a11_absolute_consistency_refuses_a_short_newest_segment() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = seg_path(dir.path(), 4);
    set_len(&path, 10);
    let before = snapshot(dir.path());
    assert_corrupt(
        Wal::open(dir.path(), opts(RecoveryMode::AbsoluteConsistency)),
        &path,
        0,
        &CorruptionKind::BadFileSize {
            expected: 4096,
            found: 10,
        },
    );
    assert!(snapshot(dir.path()) == before);
}

/// A read-only open reports the short newest segment and leaves it where it is.
#[test]
fn a11_read_only_open_reports_a_short_newest_segment_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let want = build(dir.path());
    let path = seg_path(dir.path(), 4);
    set_len(&path, 10);
    let before = snapshot(dir.path());
    for _ in 0..2 {
        let r = assert_whole(dir.path(), read_only(), &want);
        assert_eq!(r.dropped.len(), 1, "{r}");
        assert_eq!(r.dropped[0].reason, DropReason::IncompleteSegment, "{r}");
        // Listed as what a writer would remove; a read-only open removes nothing.
        assert_eq!(r.removed_files, vec![path.clone()], "{r}");
    }
    assert!(
        snapshot(dir.path()) == before,
        "a read-only open changed the files"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 10);
}
