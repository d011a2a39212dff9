//! A small log built frame by frame for the fault tests (`faults_records`,
//! `faults_tail`, `recovery_modes`): where each frame landed, byte surgery on it, and
//! the checks of what recovery reports and keeps.

use std::path::{Path, PathBuf};

use mmlog::testing::{SegmentHeaderFields, encode_segment_header, read_segment_header};
use mmlog::{
    CorruptionKind, DropReason, Dropped, Durability, Error, Lsn, Options, RecoveryMode,
    RecoveryReport, Wal,
};

use super::*;

pub const TAG: u64 = 0xA1;
/// Tag of the records appended after recovery.
pub const TAG_AFTER: u64 = 0xA2;

/// One step of building a log.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// One record with a payload of this many bytes (`Durability::None`).
    Rec(usize),
    /// One record, appended with `Durability::Sync`.
    Durable(usize),
    /// One batch with payloads of these lengths.
    Batch(&'static [usize]),
    /// `wal.sync()`.
    Sync,
}

/// Where one frame of the test log landed.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub offset: u64,
    pub lsn: u64,
    pub count: u64,
    pub body_bytes: u64,
}

impl Frame {
    pub fn bytes(&self) -> u64 {
        (HEADER + self.body_bytes).next_multiple_of(8)
    }
    pub fn end(&self) -> u64 {
        self.offset + self.bytes()
    }
}

/// A test log: its first segment, epoch, frames and records.
pub struct Log {
    pub seg: PathBuf,
    pub epoch: u32,
    pub frames: Vec<Frame>,
    pub records: Vec<(u64, Vec<u8>)>,
}

impl Log {
    /// The records with LSNs below `lsn`.
    pub fn below(&self, lsn: u64) -> Vec<(u64, Vec<u8>)> {
        self.records
            .iter()
            .filter(|(l, _)| *l < lsn)
            .cloned()
            .collect()
    }
    /// Every record except those with LSNs in `lo..=hi`.
    pub fn without(&self, lo: u64, hi: u64) -> Vec<(u64, Vec<u8>)> {
        self.records
            .iter()
            .filter(|(l, _)| *l < lo || *l > hi)
            .cloned()
            .collect()
    }
    pub fn last_lsn(&self) -> u64 {
        self.records.last().map_or(0, |r| r.0)
    }
    /// Frame `i` (0-based).
    pub fn frame(&self, i: usize) -> Frame {
        self.frames[i]
    }
    /// The frame after the last record: the seal of a clean close.
    pub fn end(&self) -> u64 {
        self.frames.last().map_or(DATA_OFFSET, |f| f.end())
    }
}

pub fn header(path: &Path) -> SegmentHeaderFields {
    read_segment_header(&read_bytes(path, 0, 4096)).expect("valid segment header")
}

/// Makes sure the segment after the last used one exists, prepared and empty (base LSN
/// 0), as the background thread leaves it once it got to it. Whether it did before the
/// test closed or dropped the log is a race; this removes the race.
pub fn ensure_prepared_segment(dir: &Path) {
    let segs = segments(dir);
    let last = header(segs.last().expect("a segment"));
    if last.base_lsn == 0 {
        return;
    }
    let epoch = segs
        .iter()
        .map(|s| {
            let h = header(s);
            h.epoch.max(h.seal_epoch)
        })
        .max()
        .unwrap_or(0);
    let fields = SegmentHeaderFields {
        generation: 1,
        seq: last.seq + 1,
        base_lsn: 0,
        segment_bytes: last.segment_bytes,
        epoch: epoch + 1,
        seal_epoch: 0,
        sealed_end: 0,
    };
    let mut bytes = vec![0u8; last.segment_bytes as usize];
    bytes[..64].copy_from_slice(&encode_segment_header(fields));
    std::fs::write(dir.join(format!("{:020}.seg", last.seq + 1)), bytes).expect("write");
}

/// Removes the prepared, never used segments at the end (a crash before the background
/// thread created them).
pub fn remove_prepared_segments(dir: &Path) {
    for s in segments(dir).iter().rev() {
        if header(s).base_lsn != 0 {
            break;
        }
        std::fs::remove_file(s).expect("remove");
    }
}

/// Writes a fresh log following `ops`, then closes it (`close`) or drops it (a crash).
/// The next segment is always left prepared (see [`ensure_prepared_segment`]).
pub fn build(dir: &Path, ops: &[Op], close: bool) -> Log {
    let (wal, report) = Wal::open(dir, small()).expect("create");
    assert!(report.created);
    let mut at = DATA_OFFSET;
    let mut frames = Vec::new();
    let mut records = Vec::new();
    let mut next = 1u64;
    for op in ops {
        match *op {
            Op::Rec(len) | Op::Durable(len) => {
                let p = payload(TAG, next, len);
                let durability = match op {
                    Op::Durable(_) => Durability::Sync,
                    _ => Durability::None,
                };
                assert_eq!(wal.append_with(&p, durability).expect("append"), Lsn(next));
                let f = Frame {
                    offset: at,
                    lsn: next,
                    count: 1,
                    body_bytes: len as u64,
                };
                at = f.end();
                frames.push(f);
                records.push((next, p));
                next += 1;
            }
            Op::Batch(lens) => {
                let ps: Vec<Vec<u8>> = (0..lens.len())
                    .map(|i| payload(TAG, next + i as u64, lens[i]))
                    .collect();
                let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
                assert_eq!(wal.append_batch(&refs).expect("batch"), Lsn(next));
                let body = 4 + 4 * lens.len() as u64 + lens.iter().sum::<usize>() as u64;
                let f = Frame {
                    offset: at,
                    lsn: next,
                    count: lens.len() as u64,
                    body_bytes: body,
                };
                at = f.end();
                frames.push(f);
                for p in ps {
                    records.push((next, p));
                    next += 1;
                }
            }
            Op::Sync => {
                wal.sync().expect("sync");
            }
        }
    }
    assert!(
        at + HEADER <= 64 * 1024,
        "the test log must fit in one segment"
    );
    if close {
        wal.close().expect("close");
    } else {
        drop(wal);
    }
    ensure_prepared_segment(dir);
    let seg = segments(dir).first().cloned().expect("segment 1");
    let epoch = header(&seg).epoch;
    // The layout is what the test believes it is.
    for f in &frames {
        let h = read_bytes(&seg, f.offset, HEADER as usize);
        assert_eq!(
            u64::from_le_bytes(h[8..16].try_into().unwrap()),
            f.lsn,
            "{f:?}"
        );
    }
    if close {
        let h = read_bytes(&seg, at, HEADER as usize);
        assert_eq!(h[28], 3, "seal frame after the last record");
    }
    Log {
        seg,
        epoch,
        frames,
        records,
    }
}

pub fn recs(lens: &[usize]) -> Vec<Op> {
    lens.iter().map(|&l| Op::Rec(l)).collect()
}

pub fn opts(mode: RecoveryMode) -> Options {
    Options {
        recovery_mode: mode,
        ..small()
    }
}

pub fn read_only() -> Options {
    Options {
        read_only: true,
        ..small()
    }
}

/// The fields of a drop report a test predicts (all but `bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub file: PathBuf,
    pub offset: u64,
    pub first_lsn: u64,
    pub dropped_lsns: Option<(u64, u64)>,
    pub records: u64,
    pub reason: DropReason,
    pub torn_tail: bool,
}

pub fn summary(d: &Dropped) -> Expected {
    // Every drop covers bytes, except a salvaged LSN gap, which skips LSNs only.
    assert!(
        d.bytes > 0 || d.reason == DropReason::LsnGap,
        "a drop covers at least one byte: {d:?}"
    );
    Expected {
        file: d.file.clone(),
        offset: d.offset,
        first_lsn: d.first_lsn.0,
        dropped_lsns: d.dropped_lsns.map(|(a, b)| (a.0, b.0)),
        records: d.records,
        reason: d.reason,
        torn_tail: d.torn_tail,
    }
}

pub fn summaries(r: &RecoveryReport) -> Vec<Expected> {
    r.dropped.iter().map(summary).collect()
}

/// A torn tail at `frame`: the drop a default-mode open must report.
pub fn torn(log: &Log, frame: Frame, reason: DropReason, later: Option<(u64, u64)>) -> Expected {
    Expected {
        file: log.seg.clone(),
        offset: frame.offset,
        first_lsn: frame.lsn,
        dropped_lsns: later,
        records: later.map_or(0, |(a, b)| b - a + 1),
        reason,
        torn_tail: true,
    }
}

/// Asserts that `res` is `Error::Corrupt` with exactly this file, offset and kind.
pub fn assert_corrupt(
    res: mmlog::Result<(Wal, RecoveryReport)>,
    file: &Path,
    offset: u64,
    kind: CorruptionKind,
) {
    match res {
        Err(Error::Corrupt {
            file: f,
            offset: o,
            kind: k,
        }) => {
            assert_eq!(
                (f.as_path(), o, &k),
                (file, offset, &kind),
                "wrong corruption reported"
            );
        }
        Err(e) => panic!("expected Corrupt({kind:?}) at {offset}, got {e:?}"),
        Ok((_, r)) => panic!("expected Corrupt({kind:?}) at {offset}, open succeeded:\n{r}"),
    }
}

/// The damaged log is an error in the default mode and in a read-only open, and the
/// failed opens changed no byte of it.
pub fn assert_corrupt_everywhere(dir: &Path, file: &Path, offset: u64, kind: CorruptionKind) {
    let before = snapshot(dir);
    assert_corrupt(Wal::open(dir, small()), file, offset, kind.clone());
    assert_corrupt(Wal::open(dir, read_only()), file, offset, kind);
    assert!(snapshot(dir) == before, "a failed open changed the files");
}

/// Every file of `dir` with its bytes.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    v.sort();
    v
}

pub fn next_of(want: &[(u64, Vec<u8>)]) -> u64 {
    want.last().map_or(1, |r| r.0 + 1)
}

/// Opens the damaged log in the default mode: it must recover exactly `want` and
/// report exactly `drops`. Then: the LSN after `want` is not readable; a crash and a
/// reopen give the same records and no new drops; an append gets the next LSN; a clean
/// close and a reopen give `want` plus that record, with nothing dropped.
pub fn assert_recovers(dir: &Path, want: &[(u64, Vec<u8>)], drops: &[Expected]) {
    let next = next_of(want);
    let (wal, r) = Wal::open(dir, small()).expect("open the damaged log");
    assert!(read_all(&wal) == want, "recovered records differ:\n{r}");
    assert_eq!(summaries(&r), drops, "{r}");
    assert_eq!(r.next_lsn, Lsn(next), "{r}");
    assert!(
        matches!(wal.read(Lsn(next)), Err(Error::NotFound { .. })),
        "a trimmed LSN is readable:\n{r}"
    );
    drop(wal);

    let (wal, r) = Wal::open(dir, small()).expect("second open");
    assert!(read_all(&wal) == want, "second open differs:\n{r}");
    assert_eq!(summaries(&r), vec![], "second open dropped more:\n{r}");
    assert_eq!(r.next_lsn, Lsn(next), "{r}");
    let extra = payload(TAG_AFTER, next, 21);
    assert_eq!(
        wal.append(&extra).expect("append after recovery"),
        Lsn(next)
    );
    wal.close().expect("close");

    let mut with_extra = want.to_vec();
    with_extra.push((next, extra));
    let (wal, r) = Wal::open(dir, small()).expect("third open");
    assert!(read_all(&wal) == with_extra, "third open differs:\n{r}");
    assert_eq!(summaries(&r), vec![], "third open dropped something:\n{r}");
    assert!(r.clean_shutdown, "{r}");
    wal.close().expect("close");
}

/// The offset of a payload byte in the middle of `frame`'s body.
pub fn mid_body(f: Frame) -> u64 {
    f.offset + HEADER + f.body_bytes / 2
}

pub fn write_len(seg: &Path, f: Frame, len: u32) {
    write_bytes(seg, f.offset + 4, &len.to_le_bytes());
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
        }
    }
}
