//! Recovery: find the valid prefix of the log and decide what to do with the rest.
//!
//! The scan follows the chain of frames from the first segment: each frame must be
//! valid (checksum, epoch, bounds) and carry the next LSN. Where the chain stops, the
//! rest of the log is searched for frames that still validate ("beyond"), and the
//! recovery mode decides:
//!
//! * nothing valid beyond, and the stop is zeroed or stale space: the normal end;
//! * the damage is of a kind a torn write can produce (zeroes, stale bytes, a bad length
//!   or checksum) and no frame beyond proves that the damaged LSN had been durable (its
//!   `durable_hint` is below it, and no seal vouches for it): a torn tail, trimmed and
//!   reported in the default mode;
//! * otherwise: corruption, an error in the default mode.
//!
//! This module only reads. It returns what the caller must do (seal the last segment,
//! remove files) and the caller does it, unless the log is opened read-only.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::Lsn;
use crate::error::{CorruptionKind, Error, IoOp, Result};
use crate::format::{
    self, BatchView, FrameKind, FrameView, HeaderRead, Invalid, PAGE_BYTES, SEGMENT_DATA_OFFSET,
    SegmentMeta, SlotDamage,
};
use crate::options::{RecoveryMode, RecoveryProgress};
use crate::sys::{Env, Step, StorageFile};
use crate::wal::recycle::{MAX_FREE_FILES, is_free_name};
use crate::wal::report::{DropReason, Dropped, RecoveryReport};
use crate::wal::segment::{Frozen, INDEX_STRIDE_BYTES, IndexEntry};

/// Segment file names: 20 decimal digits and `.seg`.
pub(crate) fn segment_file_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// Temporary name of a segment being prepared.
pub(crate) fn segment_tmp_name(seq: u64) -> String {
    format!("{seq:020}.seg.tmp")
}

/// The sequence number in a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One segment file as recovery sees it.
pub(crate) struct ScanFile {
    pub path: PathBuf,
    pub seq: u64,
    pub file: Box<dyn StorageFile>,
    pub meta: SegmentMeta,
    pub slot: usize,
    pub view: Frozen,
    /// The file is shorter than its header declares (only accepted for the newest).
    pub short: bool,
    /// Bytes mapped.
    pub view_len: u64,
    /// Past this offset the file holds only zeroes (no data extent).
    pub written_end: u64,
}

impl ScanFile {
    /// The area that may hold non-zero bytes, relative to `SEGMENT_DATA_OFFSET`. Past
    /// the file's last data extent every byte is zero, so the area stops there: scans
    /// of it (for stray frames, for zeroes) never read (and so never fault in) the
    /// unwritten, preallocated rest.
    fn data(&self) -> &[u8] {
        let frames = self.frames();
        let limit = self.written_end.saturating_sub(SEGMENT_DATA_OFFSET);
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(frames.len());
        frames.get(..limit).unwrap_or_default()
    }

    /// The area frames may occupy, relative to `SEGMENT_DATA_OFFSET`: bounded by the
    /// header and the mapping only. Frames are decoded from here, never from
    /// [`ScanFile::data`]: a frame that starts before the last data extent's end may
    /// run past it when the rest of it is zeroes (the file system reports only that
    /// past that end every byte reads as zero, which such a frame's bytes do). Walking
    /// frames stops at the first zero header, so this reads at most one frame past it.
    fn frames(&self) -> &[u8] {
        let data = self.view.data();
        let limit = self.meta.data_end().saturating_sub(SEGMENT_DATA_OFFSET);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(data.len());
        data.get(..limit).unwrap_or_default()
    }
}

/// The result of a scan.
pub(crate) struct Outcome {
    /// Files that hold the log, in order. Empty for a directory without a log.
    pub files: Vec<ScanFile>,
    /// End of the valid frames of each file (absolute offset).
    pub ends: Vec<u64>,
    /// Sparse index of each file.
    pub indexes: Vec<Vec<IndexEntry>>,
    /// Damaged ranges skipped inside each file (salvage mode): `(start, resume)`.
    pub holes: Vec<Vec<(u64, u64)>>,
    /// The LSN each file's part of the chain starts with (0 when unknown): the base a
    /// file whose header never got one must be given.
    pub starts: Vec<u64>,
    /// Files whose `starts` entry a salvage resume set (the chain did not walk into
    /// them from their start): their headers must not be given that LSN as a base.
    pub resumed: Vec<bool>,
    pub first_lsn: u64,
    pub next_lsn: u64,
    /// Highest epoch seen in any file, dead ones included.
    pub max_epoch: u32,
    /// The last file has bytes of its epoch past the end: seal it there and continue
    /// in a new segment, so they can never be taken for records.
    pub seal_last: bool,
    /// Files to remove: leftovers, dead and trimmed segments.
    pub remove: Vec<PathBuf>,
    /// Retired segment files kept for reuse.
    pub free: Vec<PathBuf>,
    /// A prepared, never used segment past the end: `(path, seq)`, to be kept as a
    /// free file.
    pub unused: Vec<(PathBuf, u64)>,
    /// The seal of a clean close, when it is the last frame: (file, offset). A writer
    /// erases it, so that a crash of the new session is not taken for a clean close.
    pub final_seal: Option<(usize, u64)>,
    pub report: RecoveryReport,
}

/// Where and why the chain of frames stopped.
#[derive(Debug, Clone, Copy)]
struct Stop {
    file: usize,
    /// Relative to `SEGMENT_DATA_OFFSET`.
    rel: usize,
    expected: u64,
    reason: StopReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// Zeroed or stale space, or the end of the usable area.
    Clean(Invalid),
    Damage(Damage),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Frame(Invalid),
    LsnGap(u64),
    MissingSegment(u64),
}

impl Damage {
    /// Whether a torn write at a crash can produce this.
    fn tearable(self) -> bool {
        match self {
            Damage::Frame(inv) => matches!(
                inv,
                Invalid::TornHeader | Invalid::BadLength | Invalid::Checksum | Invalid::Foreign
            ),
            Damage::LsnGap(_) | Damage::MissingSegment(_) => false,
        }
    }

    fn reason(self) -> DropReason {
        match self {
            Damage::Frame(Invalid::Checksum | Invalid::Foreign) => DropReason::ChecksumMismatch,
            Damage::Frame(Invalid::UnknownKind(_)) => DropReason::UnknownKind,
            Damage::Frame(Invalid::Stale) => DropReason::StaleEpoch,
            Damage::Frame(Invalid::Zero) => DropReason::TornTail,
            Damage::Frame(_) => DropReason::BadLength,
            Damage::LsnGap(_) => DropReason::LsnGap,
            Damage::MissingSegment(_) => DropReason::MissingSegment,
        }
    }

    fn kind(self, expected: u64) -> CorruptionKind {
        match self {
            Damage::Frame(Invalid::Checksum | Invalid::Foreign) => CorruptionKind::Checksum,
            Damage::Frame(Invalid::UnknownKind(k)) => CorruptionKind::UnknownRecordKind(k),
            Damage::Frame(Invalid::Stale) => CorruptionKind::StaleEpoch,
            Damage::Frame(Invalid::Zero) => CorruptionKind::Hole,
            Damage::Frame(_) => CorruptionKind::BadLength,
            Damage::LsnGap(found) => CorruptionKind::LsnGap {
                expected: Lsn(expected),
                found: Lsn(found),
            },
            Damage::MissingSegment(seq) => CorruptionKind::MissingSegment { seq },
        }
    }
}

/// What lies past a stop.
#[derive(Debug, Default)]
struct Beyond {
    /// Valid frames found (in any later position or segment).
    frames: u64,
    records: u64,
    first_lsn: Option<u64>,
    last_lsn: Option<u64>,
    /// A valid frame beyond was written after the stop's LSN was durable.
    proof: bool,
    /// Valid frames found past the stop in the stop's own file.
    frames_here: u64,
    /// The stop's own file has something shaped like a header of its epoch past the
    /// stop (valid or not, or a chance match in a recycled segment's old bytes).
    dirty: bool,
    /// The first valid frame beyond with an LSN at or above the expected one.
    resume: Option<(usize, usize)>,
    /// The search gave up (pathological input): classify conservatively.
    exhausted: bool,
}

/// Reads the directory and scans the log. Never writes.
pub(crate) fn scan(
    dir: &Path,
    env: &Env,
    mode: RecoveryMode,
    writable: bool,
    progress: Option<&RecoveryProgress>,
    replay: Option<&mut Replay<'_>>,
) -> Result<Outcome> {
    let storage = env.storage.as_ref();
    let mut report = RecoveryReport::new(dir.to_path_buf(), mode);
    let mut remove = Vec::new();
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io(IoOp::List, dir, e))?;
    let mut seqs: Vec<(u64, String)> = Vec::new();
    let mut free = Vec::new();
    let mut free_epoch = 0u32;
    for name in names {
        if let Some(seq) = parse_segment_name(&name) {
            seqs.push((seq, name));
        } else if name.ends_with(".seg.tmp") {
            remove.push(dir.join(name));
        } else if is_free_name(&name) {
            // A retired file kept for reuse: its old frames carry epochs up to the one
            // in its header, which new epochs must exceed.
            let path = dir.join(&name);
            match free_file_epoch(env, &path) {
                Some(e) if free.len() < MAX_FREE_FILES => {
                    free_epoch = free_epoch.max(e);
                    free.push(path);
                }
                _ => remove.push(path),
            }
        }
    }
    seqs.sort_unstable();

    let mut files: Vec<ScanFile> = Vec::new();
    let count = seqs.len();
    for (k, (seq, name)) in seqs.into_iter().enumerate() {
        let path = dir.join(&name);
        let newest = k + 1 == count;
        let allow_short = newest && mode != RecoveryMode::AbsoluteConsistency;
        match open_segment(env, &path, seq, writable, allow_short)? {
            Opened::File(f) => {
                if f.short && f.meta.seal_epoch == 0 {
                    // The newest segment was cut below its declared size (a crash
                    // cannot do this, a copy or a truncating tool can): what is left
                    // is scanned, and the segment is sealed at its end.
                    report.dropped.push(Dropped {
                        file: path.clone(),
                        offset: f.view_len,
                        first_lsn: Lsn(0),
                        dropped_lsns: None,
                        records: 0,
                        bytes: f.meta.segment_bytes.saturating_sub(f.view_len),
                        reason: DropReason::IncompleteSegment,
                        torn_tail: true,
                    });
                }
                files.push(f);
            }
            Opened::Incomplete { found } => {
                if !newest || mode == RecoveryMode::AbsoluteConsistency {
                    let kind = if found < PAGE_BYTES {
                        CorruptionKind::BadFileSize {
                            expected: PAGE_BYTES,
                            found,
                        }
                    } else {
                        CorruptionKind::BadHeader("never initialised".into())
                    };
                    return Err(Error::corrupt(&path, 0, kind));
                }
                // A crash while creating the newest segment: it never held a record.
                report.dropped.push(Dropped {
                    file: path.clone(),
                    offset: 0,
                    first_lsn: Lsn(0),
                    dropped_lsns: None,
                    records: 0,
                    bytes: found,
                    reason: DropReason::IncompleteSegment,
                    torn_tail: true,
                });
                remove.push(path);
            }
        }
    }

    let max_epoch = files
        .iter()
        .map(|f| f.meta.epoch.max(f.meta.seal_epoch))
        .max()
        .unwrap_or(0)
        .max(free_epoch);

    // A reset segment starts the log: every segment before the last one is dead.
    if let Some(start) = files.iter().rposition(|f| f.meta.resets()) {
        let rest = files.split_off(start);
        remove.extend(files.iter().map(|f| f.path.clone()));
        files = rest;
    }
    // Segments older than a seal placed in an earlier segment are dead: they were
    // written before a truncation or a trimmed tail.
    let mut live = Vec::with_capacity(files.len());
    let mut max_seal = 0u32;
    for f in files {
        if f.meta.epoch < max_seal {
            remove.push(f.path.clone());
            continue;
        }
        max_seal = max_seal.max(f.meta.seal_epoch);
        live.push(f);
    }

    let mut out = Outcome {
        files: Vec::new(),
        ends: Vec::new(),
        indexes: Vec::new(),
        holes: Vec::new(),
        starts: Vec::new(),
        resumed: Vec::new(),
        first_lsn: 1,
        next_lsn: 1,
        max_epoch,
        seal_last: false,
        remove,
        free,
        unused: Vec::new(),
        final_seal: None,
        report,
    };
    if live.is_empty() {
        return Ok(out);
    }
    // The checksums of the segments after the first are verified ahead of the chain
    // on a second thread when there is enough of them to pay for it: the chain then
    // walks frames it knows are intact without checksumming them again.
    let ahead: u64 = live.iter().skip(1).map(|f| f.data().len() as u64).sum();
    let verified = Verified::new(live.len());
    let mut scanner = Scanner::new(&live, mode, progress);
    let first = scanner.first_lsn()?;
    let slices: Vec<(&[u8], u32)> = live.iter().map(|f| (f.frames(), f.meta.epoch)).collect();
    let (end_file, end_rel, next, beyond) = std::thread::scope(|s| {
        // The helper claims nothing more once the chain is done, also when the chain
        // (or the caller's replay) panics: the scope then joins it after at most the
        // segment it is on.
        let _finish = Finish(&verified);
        if env.background && ahead >= VERIFY_AHEAD_MIN_BYTES {
            let helper = std::thread::Builder::new()
                .name("mmlog-verify".into())
                .spawn_scoped(s, || verify_ahead(&slices, &verified));
            // Without the helper nothing is ever claimed, and the chain verifies
            // every segment itself.
            if helper.is_ok() {
                scanner.verified = Some(&verified);
            }
        }
        scanner.run(first, &mut out.report, replay)
    })?;
    if let Some(p) = progress {
        p.report(scanner.total, scanner.total);
    }
    out.report.records_scanned = scanner.records;
    out.report.bytes_scanned = scanner.bytes;
    // Clean: the chain ends with the seal of a close and nothing valid follows it (damage
    // salvaged earlier in the log does not change how it was shut down).
    out.report.clean_shutdown = scanner.last_seal.is_some() && beyond.frames == 0;
    let clean = out.report.dropped.is_empty() && beyond.frames == 0;
    out.final_seal = if clean { scanner.last_seal } else { None };
    // The writer continues in the last segment only if nothing shaped like a frame of
    // its epoch lies past the end (a frame there, valid or torn, could be read as the
    // next one once new frames reach its position; in doubt, seal) and, in a fresh
    // segment, nothing but zeroes (anything else would read as damage next to new
    // frames; a recycled segment holds leftovers of its earlier use, which never
    // validate). A cut segment cannot take appends either: its missing blocks would be
    // holes.
    out.seal_last = beyond.frames_here > 0
        || beyond.dirty
        || live.get(end_file).is_some_and(|f| {
            f.short
                || (!f.meta.recycled() && !all_zero(f.data().get(end_rel..).unwrap_or_default()))
        });
    out.first_lsn = first;
    out.next_lsn = next;
    let mut ends = scanner.ends;
    let indexes = scanner.indexes;
    let holes = scanner.holes;
    let starts = scanner.starts;
    let resumed = scanner.resumed;
    if let Some(e) = ends.get_mut(end_file) {
        *e = SEGMENT_DATA_OFFSET + end_rel as u64;
    }
    // Files past the end hold nothing that survives. A prepared segment that was never
    // used is kept for reuse (as a free file) instead.
    let trailing = live.len().saturating_sub(end_file + 1);
    for (k, f) in live.into_iter().enumerate() {
        if k <= end_file {
            out.files.push(f);
        } else if trailing == 1 && is_unused(&f) && !f.short {
            out.unused.push((f.path.clone(), f.seq));
        } else {
            out.remove.push(f.path.clone());
        }
    }
    out.ends = ends.into_iter().take(end_file + 1).collect();
    out.indexes = indexes.into_iter().take(end_file + 1).collect();
    out.holes = holes.into_iter().take(end_file + 1).collect();
    out.starts = starts.into_iter().take(end_file + 1).collect();
    out.resumed = resumed.into_iter().take(end_file + 1).collect();
    Ok(out)
}

/// The epoch in a free file's header (`None` when it has no valid header: such a file
/// is removed rather than reused).
fn free_file_epoch(env: &Env, path: &Path) -> Option<u32> {
    let file = env.storage.open_file(path, false).ok()?;
    let mut page = vec![0u8; usize::try_from(PAGE_BYTES).unwrap_or(4096)];
    file.read_at(0, &mut page).ok()?;
    match format::read_header(&page) {
        HeaderRead::Valid(meta, _) => Some(meta.epoch.max(meta.seal_epoch)),
        _ => None,
    }
}

enum Opened {
    File(ScanFile),
    /// Shorter than a header page, or a header never written. `found` = file size.
    Incomplete {
        found: u64,
    },
}

fn open_segment(
    env: &Env,
    path: &Path,
    seq: u64,
    writable: bool,
    allow_short: bool,
) -> Result<Opened> {
    let storage = env.storage.as_ref();
    let file = storage
        .open_file(path, writable)
        .map_err(|e| Error::io(IoOp::Open, path, e))?;
    let len = file.len().map_err(|e| Error::io(IoOp::Stat, path, e))?;
    if len < PAGE_BYTES {
        return Ok(Opened::Incomplete { found: len });
    }
    let mut page = vec![0u8; usize::try_from(PAGE_BYTES).unwrap_or(4096)];
    // A read error is an error, never taken for the end of the log.
    env.check(Step::SegmentRead, path)?;
    file.read_at(0, &mut page)
        .map_err(|e| Error::io(IoOp::Read, path, e))?;
    let (meta, slot) = match format::read_header(&page) {
        HeaderRead::Valid(meta, slot) => (meta, slot),
        HeaderRead::Empty => return Ok(Opened::Incomplete { found: len }),
        HeaderRead::Version(found) => {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found,
                supported: format::FORMAT_VERSION,
            });
        }
        HeaderRead::Damaged(d) => {
            let kind = match d {
                SlotDamage::Magic => CorruptionKind::BadMagic,
                SlotDamage::Checksum => CorruptionKind::HeaderChecksum,
                SlotDamage::Field(why) => CorruptionKind::BadHeader(why.into()),
            };
            return Err(Error::corrupt(path, 0, kind));
        }
    };
    if meta.seq != seq {
        return Err(Error::corrupt(
            path,
            0,
            CorruptionKind::SequenceMismatch {
                expected: seq,
                found: meta.seq,
            },
        ));
    }
    // A sealed segment needs its bytes only up to the seal (a cut newest segment is
    // sealed at the cut by the first writer that recovers it).
    let sealed_within = meta.seal_epoch != 0 && meta.sealed_end <= len;
    let short = len < meta.segment_bytes && (allow_short || sealed_within);
    if meta.segment_bytes != len && !short {
        return Err(Error::corrupt(
            path,
            0,
            CorruptionKind::BadFileSize {
                expected: meta.segment_bytes,
                found: len,
            },
        ));
    }
    let map_len = usize::try_from(len).map_err(|_| {
        Error::corrupt(
            path,
            0,
            CorruptionKind::BadHeader("segment too large to map".into()),
        )
    })?;
    env.check(Step::SegmentMap, path)?;
    let map = file
        .map(map_len, false)
        .map_err(|e| Error::io(IoOp::Map, path, e))?;
    let view = Frozen::new(map)
        .ok_or_else(|| Error::InvalidArgument("expected a read-only mapping".into()))?;
    let written_end = file.data_end().unwrap_or(len).max(SEGMENT_DATA_OFFSET);
    Ok(Opened::File(ScanFile {
        path: path.to_path_buf(),
        seq,
        file,
        meta,
        slot,
        view,
        short,
        view_len: len,
        written_end,
    }))
}

/// Data after the first segment from which a second thread verifies checksums ahead
/// of the chain.
const VERIFY_AHEAD_MIN_BYTES: u64 = 8 << 20;

/// Segments whose frames a second thread has checksummed, walking each from its
/// start the way the chain does, ahead of the chain.
struct Verified {
    state: Mutex<VerifiedState>,
    cv: Condvar,
}

/// Who verifies a segment, and how far it is known intact.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ahead {
    /// Nobody has taken it yet.
    Open,
    /// The helper is checksumming it.
    Helper,
    /// Every frame before this offset (walking from 0) is whole and intact; the one
    /// there failed to decode. The chain trusts frames below it.
    Intact(usize),
    /// The chain got there first and verifies it itself.
    Chain,
}

struct VerifiedState {
    segments: Vec<Ahead>,
    /// The chain is done: claim nothing more.
    stop: bool,
    /// The helper has exited (also on a panic): wait for nothing more.
    gone: bool,
}

impl Verified {
    fn new(files: usize) -> Verified {
        Verified {
            state: Mutex::new(VerifiedState {
                segments: vec![Ahead::Open; files],
                stop: false,
                gone: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VerifiedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next segment for the helper (never the first: the chain starts there).
    fn claim(&self) -> Option<usize> {
        let mut st = self.lock();
        if st.stop {
            return None;
        }
        let (k, seg) = st
            .segments
            .iter_mut()
            .enumerate()
            .skip(1)
            .find(|(_, a)| **a == Ahead::Open)?;
        *seg = Ahead::Helper;
        Some(k)
    }

    fn done(&self, k: usize, intact_end: usize) {
        if let Some(seg) = self.lock().segments.get_mut(k) {
            *seg = Ahead::Intact(intact_end);
        }
        self.cv.notify_all();
    }

    /// For the chain entering segment `k` at its start: how far the frames are known
    /// to be intact (waiting for the helper if it is on it), or 0 when the helper has
    /// not got there (the segment is then the chain's to verify).
    fn trusted(&self, k: usize) -> usize {
        let mut st = self.lock();
        loop {
            let gone = st.gone;
            match st.segments.get_mut(k) {
                None | Some(Ahead::Chain) => return 0,
                Some(Ahead::Intact(end)) => return *end,
                Some(seg @ Ahead::Open) => {
                    *seg = Ahead::Chain;
                    return 0;
                }
                Some(Ahead::Helper) if gone => return 0,
                Some(Ahead::Helper) => {
                    st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    fn finish(&self) {
        self.lock().stop = true;
    }
}

/// Stops the helper from claiming more segments when dropped.
struct Finish<'v>(&'v Verified);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The helper thread: checksums every frame of the segments it claims, from the
/// start of each, until one does not decode.
fn verify_ahead(files: &[(&[u8], u32)], verified: &Verified) {
    struct Gone<'v>(&'v Verified);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            self.0.lock().gone = true;
            self.0.cv.notify_all();
        }
    }
    let _gone = Gone(verified);
    while let Some(k) = verified.claim() {
        let Some(&(data, epoch)) = files.get(k) else {
            verified.done(k, 0);
            continue;
        };
        let mut rel = 0usize;
        while let Some(here) = data.get(rel..)
            && let Ok(fr) = format::decode_frame(here, epoch, true)
        {
            rel = rel.saturating_add(usize::try_from(fr.frame_bytes).unwrap_or(usize::MAX));
        }
        verified.done(k, rel);
    }
}

/// Hands the records recovery keeps to a caller during the scan (see
/// [`crate::Wal::open_replay`]).
pub(crate) struct Replay<'r> {
    /// The first LSN wanted.
    from: u64,
    f: &'r mut dyn FnMut(Lsn, &[u8]),
    /// Records handed out.
    pub(crate) delivered: u64,
}

impl<'r> Replay<'r> {
    pub(crate) fn new(from: u64, f: &'r mut dyn FnMut(Lsn, &[u8])) -> Replay<'r> {
        Replay {
            from,
            f,
            delivered: 0,
        }
    }

    /// The records of a frame the chain took, from `from` on.
    fn frame(&mut self, fr: &FrameView<'_>) {
        match fr.kind {
            FrameKind::Seal => {}
            FrameKind::Record => {
                if fr.lsn >= self.from {
                    (self.f)(Lsn(fr.lsn), fr.body);
                    self.delivered += 1;
                }
            }
            FrameKind::Batch => {
                if fr.lsn.saturating_add(fr.count) <= self.from {
                    return;
                }
                // `decode_frame` parsed this body already; it cannot fail here.
                let Some(batch) = BatchView::parse(fr.body) else {
                    return;
                };
                for (lsn, payload) in (fr.lsn..).zip(batch.iter()) {
                    if lsn >= self.from {
                        (self.f)(Lsn(lsn), payload);
                        self.delivered += 1;
                    }
                }
            }
        }
    }
}

struct Scanner<'a> {
    files: &'a [ScanFile],
    /// Checksums verified ahead by a second thread, when one runs.
    verified: Option<&'a Verified>,
    mode: RecoveryMode,
    ends: Vec<u64>,
    indexes: Vec<Vec<IndexEntry>>,
    holes: Vec<Vec<(u64, u64)>>,
    starts: Vec<u64>,
    /// Files whose `starts` entry a salvage resume set.
    resumed: Vec<bool>,
    records: u64,
    bytes: u64,
    /// Where the last frame of the chain is a seal: its file and offset.
    last_seal: Option<(usize, u64)>,
    progress: Option<&'a RecoveryProgress>,
    /// Bytes of segment data there are to verify.
    total: u64,
    /// Data bytes of each file before it (for progress).
    before: Vec<u64>,
    /// Offset in the current file at which to report progress next.
    next_report: usize,
}

/// Progress is reported at least this often within a segment.
const PROGRESS_STEP: usize = 16 << 20;

impl<'a> Scanner<'a> {
    fn new(
        files: &'a [ScanFile],
        mode: RecoveryMode,
        progress: Option<&'a RecoveryProgress>,
    ) -> Scanner<'a> {
        let mut before = Vec::with_capacity(files.len());
        let mut total = 0u64;
        for f in files {
            before.push(total);
            total = total.saturating_add(f.data().len() as u64);
        }
        Scanner {
            verified: None,
            progress,
            total,
            before,
            next_report: 0,
            files,
            mode,
            ends: vec![SEGMENT_DATA_OFFSET; files.len()],
            indexes: vec![Vec::new(); files.len()],
            holes: vec![Vec::new(); files.len()],
            starts: vec![0; files.len()],
            resumed: vec![false; files.len()],
            records: 0,
            bytes: 0,
            last_seal: None,
        }
    }

    /// The LSN the log starts at: the first segment's base, or its first frame's LSN
    /// when the base was never made durable.
    fn first_lsn(&self) -> Result<u64> {
        let Some(f) = self.files.first() else {
            return Ok(1);
        };
        if f.meta.base_lsn != 0 {
            return Ok(f.meta.base_lsn);
        }
        match format::decode_frame(f.frames(), f.meta.epoch, true) {
            Ok(fr) if fr.kind == FrameKind::Seal => Ok(fr.lsn.saturating_add(1)),
            Ok(fr) => Ok(fr.lsn),
            Err(_) => Err(Error::corrupt(
                &f.path,
                0,
                CorruptionKind::BadHeader("first segment has no base LSN and no records".into()),
            )),
        }
    }

    /// Follows the chain from the start. Returns the end (file, relative offset), the
    /// next LSN, and what lies beyond the end.
    fn run(
        &mut self,
        first: u64,
        report: &mut RecoveryReport,
        mut replay: Option<&mut Replay<'_>>,
    ) -> Result<(usize, usize, u64, Beyond)> {
        let mut at = (0usize, 0usize);
        let mut expected = first;
        if let Some(s) = self.starts.first_mut() {
            *s = first;
        }
        loop {
            let stop = self.follow(at, &mut expected, replay.as_deref_mut());
            let beyond = self.beyond(&stop);
            match self.decide(&stop, &beyond, report)? {
                Decision::End => return Ok((stop.file, stop.rel, expected, beyond)),
                Decision::Resume(file, rel) => {
                    // Salvage: everything between the stop and the next valid frame is
                    // dropped; its LSNs become a gap. Readers jump over the hole.
                    // When the hole runs into a later segment, the stop's segment ends
                    // at the stop (its `ends` entry), the segments in between end at
                    // their start (never followed), and the resumed one has a hole
                    // from its start: readers must not walk the damaged frames there.
                    let hole_from = if file == stop.file { stop.rel } else { 0 };
                    if rel > hole_from
                        && let Some(holes) = self.holes.get_mut(file)
                    {
                        holes.push((
                            SEGMENT_DATA_OFFSET + hole_from as u64,
                            SEGMENT_DATA_OFFSET + rel as u64,
                        ));
                    }
                    at = (file, rel);
                    if let Some(fr) = self.frame_at(file, rel) {
                        expected = fr.lsn;
                        // The resumed segment's part of the chain starts here, and so
                        // does (for lookups by LSN) that of every segment the hole
                        // took whole: none of them holds an earlier LSN.
                        for k in stop.file + 1..=file {
                            if let Some(s) = self.starts.get_mut(k) {
                                *s = fr.lsn;
                            }
                            if let Some(r) = self.resumed.get_mut(k) {
                                *r = true;
                            }
                        }
                    }
                }
            }
        }
    }

    /// How far segment `k`, entered at its start, is known to be intact.
    fn trust(&self, k: usize) -> usize {
        self.verified.map_or(0, |v| v.trusted(k))
    }

    fn frame_at(&self, file: usize, rel: usize) -> Option<format::FrameView<'a>> {
        let f = self.files.get(file)?;
        format::decode_frame(f.frames().get(rel..)?, f.meta.epoch, true).ok()
    }

    /// Follows valid frames from `at` until something stops the chain.
    fn follow(
        &mut self,
        at: (usize, usize),
        expected: &mut u64,
        mut replay: Option<&mut Replay<'_>>,
    ) -> Stop {
        let (mut i, mut rel) = at;
        let files = self.files;
        self.next_report = 0;
        // Frames before this offset of segment `i` were found intact by the helper,
        // walking from the segment's start as the chain does from there.
        let mut trusted = if rel == 0 { self.trust(i) } else { 0 };
        // The segment the chain is in and its frame area, looked up again only when
        // the chain moves to another segment rather than for every frame.
        let mut current: Option<(usize, &ScanFile, &[u8])> = None;
        loop {
            if rel >= self.next_report
                && let Some(p) = self.progress
            {
                // The total counts each file up to its last data extent; a frame may
                // run past that (zeroes), which must not push the count into the next
                // file's share.
                let before = self.before.get(i).copied().unwrap_or(self.total);
                let here = files.get(i).map_or(0, |f| rel.min(f.data().len()));
                p.report(
                    before.saturating_add(here as u64).min(self.total),
                    self.total,
                );
                self.next_report = rel.saturating_add(PROGRESS_STEP);
            }
            let (f, frames) = match current {
                Some((k, f, frames)) if k == i => (f, frames),
                _ => {
                    let Some(f) = files.get(i) else {
                        // Unreachable: `i` only moves to files that exist.
                        return Stop {
                            file: i.saturating_sub(1),
                            rel: 0,
                            expected: *expected,
                            reason: StopReason::Clean(Invalid::Zero),
                        };
                    };
                    let frames = f.frames();
                    current = Some((i, f, frames));
                    (f, frames)
                }
            };
            let here = frames.get(rel..).unwrap_or_default();
            let stop = |reason| Stop {
                file: i,
                rel,
                expected: *expected,
                reason,
            };
            match format::decode_frame(here, f.meta.epoch, rel >= trusted) {
                Ok(fr) => {
                    let lsn_ok = if fr.kind == FrameKind::Seal {
                        fr.lsn.checked_add(1) == Some(*expected)
                    } else {
                        fr.lsn == *expected
                    };
                    if !lsn_ok {
                        return stop(StopReason::Damage(Damage::LsnGap(fr.lsn)));
                    }
                    // Every frame the chain takes stays in the log (damage further on
                    // only ever cuts after it, or fails the open): it can be replayed
                    // now, while its bytes are in the cache.
                    if let Some(r) = replay.as_deref_mut() {
                        r.frame(&fr);
                    }
                    let index = self.indexes.get_mut(i);
                    if let Some(index) = index
                        && fr.kind != FrameKind::Seal
                    {
                        let offset = SEGMENT_DATA_OFFSET + rel as u64;
                        if index
                            .last()
                            .is_none_or(|e| offset >= e.offset + INDEX_STRIDE_BYTES)
                        {
                            index.push(IndexEntry {
                                lsn: fr.lsn,
                                offset,
                            });
                        }
                    }
                    self.records += fr.count;
                    self.bytes += fr.frame_bytes;
                    *expected = fr.next_lsn().unwrap_or(u64::MAX);
                    self.last_seal = (fr.kind == FrameKind::Seal)
                        .then_some((i, SEGMENT_DATA_OFFSET + rel as u64));
                    rel = rel.saturating_add(usize::try_from(fr.frame_bytes).unwrap_or(usize::MAX));
                    if let Some(e) = self.ends.get_mut(i) {
                        *e = SEGMENT_DATA_OFFSET + rel as u64;
                    }
                }
                Err(inv) if inv.is_clean_end(f.meta.recycled()) => {
                    let Some(next) = files.get(i + 1) else {
                        return stop(StopReason::Clean(inv));
                    };
                    // The last segment was prepared ahead but never used (no base, no
                    // frame): the log ends here, and the writer continues in this
                    // segment rather than leave the rest of it unused.
                    if i + 2 == files.len() && is_unused(next) {
                        return stop(StopReason::Clean(inv));
                    }
                    // A segment ends early only when the next frame did not fit: if a
                    // valid frame of its epoch lies past this point, the chain stops
                    // here and the search beyond decides what it is.
                    if valid_frame_at_or_after(f, rel, *expected) {
                        return stop(StopReason::Clean(inv));
                    }
                    if next.seq != f.seq + 1 {
                        return stop(StopReason::Damage(Damage::MissingSegment(f.seq + 1)));
                    }
                    if !continues(next, *expected) {
                        return stop(StopReason::Clean(inv));
                    }
                    i += 1;
                    rel = 0;
                    trusted = self.trust(i);
                    self.next_report = 0;
                    if let Some(s) = self.starts.get_mut(i) {
                        *s = *expected;
                    }
                }
                Err(inv) => {
                    // Damage in the part of a segment the writer left behind is not in
                    // the log when the next segment's header says it starts exactly
                    // where the chain stands: that base was set at rollover, after
                    // every frame of this one, so nothing of the chain is lost here.
                    if let Some(next) = files.get(i + 1)
                        && next.seq == f.seq + 1
                        && next.meta.base_lsn == *expected
                        && !valid_frame_at_or_after(f, rel, *expected)
                    {
                        i += 1;
                        rel = 0;
                        trusted = self.trust(i);
                        self.next_report = 0;
                        if let Some(s) = self.starts.get_mut(i) {
                            *s = *expected;
                        }
                        continue;
                    }
                    return stop(StopReason::Damage(Damage::Frame(inv)));
                }
            }
        }
    }

    /// Searches past `stop` for frames that still validate.
    fn beyond(&self, stop: &Stop) -> Beyond {
        let mut b = Beyond::default();
        let total: u64 = self
            .files
            .iter()
            .skip(stop.file)
            .map(|f| f.frames().len() as u64)
            .sum();
        // Every frame beyond consumes at least 4 bytes per LSN.
        let max_lsn = stop.expected.saturating_add(total / 4 + 1);
        let min_lsn = stop.expected.saturating_sub(1);
        // Bound the checksum work on hostile input.
        let mut budget = total.saturating_mul(4).saturating_add(1 << 20);
        for (k, f) in self.files.iter().enumerate().skip(stop.file) {
            if k > stop.file && is_unused(f) {
                continue;
            }
            // Headers are searched for where bytes may be non-zero; a frame found
            // there is decoded from the whole frame area (it may run past that).
            let data = f.data();
            let frames = f.frames();
            let mut p = if k == stop.file { stop.rel } else { 0 };
            p = p.next_multiple_of(8);
            while let Some(next) = next_epoch_at(data, p, f.meta.epoch) {
                p = next;
                let Some(here) = frames.get(p..) else {
                    break;
                };
                let Some(h) = format::peek_header(here) else {
                    break;
                };
                let advance = 8usize;
                if k == stop.file {
                    b.dirty = true;
                }
                let len = u64::from(h.len.get());
                let lsn = h.lsn.get();
                if lsn < min_lsn || lsn > max_lsn || len > here.len() as u64 {
                    p += advance;
                    continue;
                }
                if budget < len {
                    b.exhausted = true;
                    return b;
                }
                budget -= len;
                match format::decode_frame(here, f.meta.epoch, true) {
                    Ok(fr) => {
                        b.frames += 1;
                        if k == stop.file {
                            b.frames_here += 1;
                        }
                        b.records += fr.count;
                        if fr.durable_hint >= stop.expected {
                            b.proof = true;
                        }
                        if fr.kind != FrameKind::Seal {
                            let last = fr.lsn + fr.count.saturating_sub(1);
                            b.first_lsn = Some(b.first_lsn.map_or(fr.lsn, |x| x.min(fr.lsn)));
                            b.last_lsn = Some(b.last_lsn.map_or(last, |x| x.max(last)));
                            if b.resume.is_none() && fr.lsn >= stop.expected {
                                b.resume = Some((k, p));
                            }
                        }
                        p = p.saturating_add(usize::try_from(fr.frame_bytes).unwrap_or(usize::MAX));
                    }
                    Err(_) => p += advance,
                }
            }
        }
        b
    }

    fn decide(&self, stop: &Stop, b: &Beyond, report: &mut RecoveryReport) -> Result<Decision> {
        let f = self.files.get(stop.file);
        let path = f.map(|f| f.path.clone()).unwrap_or_default();
        let offset = SEGMENT_DATA_OFFSET + stop.rel as u64;
        let anything_beyond = b.frames > 0;
        let damage = match stop.reason {
            StopReason::Clean(_) if !anything_beyond => return Ok(Decision::End),
            StopReason::Clean(Invalid::Stale) => Damage::Frame(Invalid::Stale),
            StopReason::Clean(_) => Damage::Frame(Invalid::Zero),
            StopReason::Damage(d) => d,
        };
        let corrupt = |kind| Err(Error::corrupt(&path, offset, kind));
        let dropped = |torn_tail: bool| Dropped {
            file: path.clone(),
            offset,
            first_lsn: Lsn(stop.expected),
            dropped_lsns: b.first_lsn.zip(b.last_lsn).map(|(a, z)| (Lsn(a), Lsn(z))),
            records: b.records,
            bytes: f
                .and_then(|f| f.data().get(stop.rel..))
                .map_or(0, nonzero_extent),
            reason: if matches!(stop.reason, StopReason::Clean(_)) && b.frames > 0 {
                DropReason::TornTail
            } else {
                damage.reason()
            },
            torn_tail,
        };
        match self.mode {
            RecoveryMode::AbsoluteConsistency => corrupt(damage.kind(stop.expected)),
            RecoveryMode::TolerateCorruptedTail => {
                if !damage.tearable() && matches!(stop.reason, StopReason::Damage(_)) {
                    return corrupt(damage.kind(stop.expected));
                }
                if b.proof || b.exhausted {
                    let kind = match stop.reason {
                        StopReason::Clean(_) => CorruptionKind::Hole,
                        StopReason::Damage(d) => d.kind(stop.expected),
                    };
                    return corrupt(kind);
                }
                report.dropped.push(dropped(true));
                Ok(Decision::End)
            }
            RecoveryMode::PointInTime => {
                report.dropped.push(dropped(!b.proof));
                Ok(Decision::End)
            }
            RecoveryMode::SkipCorrupted => match b.resume {
                Some((file, rel))
                    if (file, rel) > (stop.file, stop.rel)
                        || matches!(stop.reason, StopReason::Damage(Damage::LsnGap(found)) if found > stop.expected) =>
                {
                    let mut d = dropped(false);
                    // The skipped range: to the frame reading resumes at (or to the end
                    // of the stop's segment when it resumes in a later one).
                    d.bytes = if file == stop.file {
                        rel.saturating_sub(stop.rel) as u64
                    } else {
                        self.files
                            .get(stop.file)
                            .and_then(|f| f.data().get(stop.rel..))
                            .map_or(0, nonzero_extent)
                    };
                    if let Some(fr) = self.frame_at(file, rel) {
                        d.dropped_lsns =
                            (fr.lsn > stop.expected).then(|| (Lsn(stop.expected), Lsn(fr.lsn - 1)));
                        d.records = fr.lsn.saturating_sub(stop.expected);
                    }
                    report.dropped.push(d);
                    Ok(Decision::Resume(file, rel))
                }
                _ => {
                    report.dropped.push(dropped(!b.proof));
                    Ok(Decision::End)
                }
            },
        }
    }
}

enum Decision {
    End,
    /// Salvage mode: continue the chain at this frame.
    Resume(usize, usize),
}

/// Bytes from the start of `data` to the end of its last non-zero byte: what a trim
/// there takes out of the log.
fn nonzero_extent(data: &[u8]) -> u64 {
    data.iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// Whether every byte of `data` is zero.
fn all_zero(data: &[u8]) -> bool {
    let words = data.chunks_exact(8);
    let rest = words.remainder();
    words
        .map(|w| w.first_chunk::<8>().map_or(1, |b| u64::from_ne_bytes(*b)))
        .fold(0u64, |acc, w| acc | w)
        == 0
        && rest.iter().all(|&b| b == 0)
}

/// The first 8-aligned position at or after `from` that may start a frame header of
/// `epoch`: its fourth word must hold the epoch, a known kind, and zero flags and
/// reserved bits. Zeroed and stale space is skipped a word at a time. The whole word
/// is tested, not only the epoch: in a recycled segment the old frames' LSNs and hints
/// are small numbers like the epochs, and would match on their own. The word never
/// straddles a sector, so a torn header keeps it whole or loses it whole.
fn next_epoch_at(data: &[u8], from: usize, epoch: u32) -> Option<usize> {
    const EPOCH_WORD: usize = 3; // epoch, kind, flags, reserved: the header's 4th word
    let start = from.next_multiple_of(8);
    let words = data.get(start..)?.chunks_exact(8);
    for (i, w) in words.enumerate().skip(EPOCH_WORD) {
        let word = w.first_chunk::<8>().map_or(0, |b| u64::from_le_bytes(*b));
        let low = (word & 0xffff_ffff) as u32;
        let kind = word >> 32;
        if low == epoch && (1..=3).contains(&kind) {
            return Some(start + (i - EPOCH_WORD) * 8);
        }
    }
    None
}

/// Whether a frame of `f`'s epoch with an LSN from `expected - 1` on validates
/// anywhere in `f` at or after `from` (the unused tail of a segment). Headers are
/// searched for where bytes may be non-zero, frames decoded from the whole frame area.
/// Hostile input that would make this quadratic answers "yes", which hands the
/// decision to the (bounded) search beyond the stop.
fn valid_frame_at_or_after(f: &ScanFile, from: usize, expected: u64) -> bool {
    let (data, frames, epoch) = (f.data(), f.frames(), f.meta.epoch);
    let mut p = from;
    let mut budget = (frames.len() as u64)
        .saturating_mul(4)
        .saturating_add(1 << 20);
    while let Some(at) = next_epoch_at(data, p, epoch) {
        let here = frames.get(at..).unwrap_or_default();
        let len = format::peek_header(here).map_or(0, |h| u64::from(h.len.get()));
        if budget < len {
            return true;
        }
        budget -= len;
        if let Ok(fr) = format::decode_frame(here, epoch, true)
            && fr.lsn.saturating_add(1) >= expected
        {
            return true;
        }
        p = at + 8;
    }
    false
}

/// A segment prepared ahead and never used: no base LSN, and nothing in it of its
/// epoch.
///
/// A used segment gets its first frame at the start of its data area, and preparing a
/// segment (fresh or recycled) leaves that first page zero; so a segment with no base
/// whose first data page is still zero was never written. (Not scanning the rest
/// matters: a recycled segment is full of its earlier use's bytes.)
fn is_unused(f: &ScanFile) -> bool {
    let first_page = f.data().get(..usize::try_from(PAGE_BYTES).unwrap_or(4096));
    f.meta.base_lsn == 0 && f.meta.seal_epoch == 0 && first_page.is_none_or(all_zero)
}

/// Whether `next` carries on the chain that reached `expected` at the end of the
/// previous segment.
fn continues(next: &ScanFile, expected: u64) -> bool {
    if next.meta.base_lsn != 0 {
        return next.meta.base_lsn == expected;
    }
    match format::decode_frame(next.frames(), next.meta.epoch, true) {
        Ok(fr) if fr.kind == FrameKind::Seal => fr.lsn.checked_add(1) == Some(expected),
        Ok(fr) => fr.lsn == expected,
        Err(inv) => inv.is_clean_end(next.meta.recycled()),
    }
}
