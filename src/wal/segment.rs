//! A live segment: one mapped segment file and the protocol that makes handing out
//! `&[u8]` into it sound.
//!
//! The data area of a segment is split by two positions, `published_end <= cursor`:
//!
//! * bytes below `published_end` are complete frames; they are never written again
//!   while the segment lives (truncation seals the segment and moves on to a new one),
//!   so readers may borrow them freely;
//! * bytes from `published_end` up to the cursor belong to [`Reservation`]s: each is
//!   written by exactly one appender, then published in LSN order;
//! * bytes past the cursor are untouched.
//!
//! There is exactly one [`Cursor`] per segment (handed out once) and it only moves
//! forward, so reservations never overlap. Header slots live in page 0, outside the
//! data area, and are written with `pwrite`, never through a borrowed slice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, IoOp, Result};
use crate::format::{HEADER_SLOT_OFFSETS, PAGE_BYTES, SEGMENT_DATA_OFFSET, SegmentMeta};
use crate::sys::{Env, Mapping, Step, StorageFile};

/// A sparse index entry: the frame starting at `offset` has first LSN `lsn`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    pub lsn: u64,
    pub offset: u64,
}

/// Bytes between sparse index entries.
pub(crate) const INDEX_STRIDE_BYTES: u64 = 16 * 1024;

/// Held by every segment: the directory lock is released when the last segment (and so
/// the last borrowed record) is gone, never while a mapping is still in use.
pub(crate) struct LockHold {
    pub(crate) _guard: Option<Box<dyn crate::sys::DirLock>>,
}

/// One mapped segment file.
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    pub(crate) seq: u64,
    pub(crate) epoch: u32,
    pub(crate) size: u64,
    map: Mapping,
    file: Box<dyn StorageFile>,
    header: Mutex<HeaderState>,
    /// First LSN, or 0 before activation. Set before any frame is published.
    base_lsn: AtomicU64,
    /// End of the published frames (absolute file offset).
    published_end: AtomicU64,
    /// Bytes `[0, flushed_end)` were covered by a flush that succeeded. Two flushes may
    /// run at once (`sync::MAX_FLIGHTS`), so it only ever rises.
    flushed_end: AtomicU64,
    /// Readers stop here even if more was published (set when a truncation seals the
    /// segment). `u64::MAX` otherwise.
    limit: AtomicU64,
    /// Damaged ranges salvage recovery skipped: `(start, resume)` offsets.
    holes: Vec<(u64, u64)>,
    cursor_taken: AtomicBool,
    index: Mutex<Vec<IndexEntry>>,
    /// Pages below this offset were faulted in for writing.
    prefaulted_to: AtomicU64,
    /// Pages below this offset were unmapped and their write-back started.
    kicked_to: AtomicU64,
    /// One handle per flush slot (`sync::MAX_FLIGHTS`), opened before any frame of
    /// this process reaches the file: each reports every write-back error of the file
    /// to the flush holding its slot, whichever `msync` saw the error first.
    checkers: Vec<Box<dyn StorageFile>>,
    _lock: Arc<LockHold>,
}

/// Bytes the background thread faults in per step (it checks for other work between
/// steps).
pub(crate) const PREFAULT_CHUNK_BYTES: u64 = 1 << 20;
/// How far ahead of the writer pages are kept faulted in.
pub(crate) const PREFAULT_WINDOW_BYTES: u64 = 8 << 20;
/// The writer wakes the background thread each time it crosses this many bytes.
pub(crate) const NUDGE_BYTES: u64 = 1 << 20;
/// Write-behind starts once this many published bytes have gathered.
pub(crate) const WRITEBACK_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, Copy)]
struct HeaderState {
    meta: SegmentMeta,
    slot: usize,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .field("base_lsn", &self.base_lsn())
            .field("published_end", &self.published_end())
            .finish()
    }
}

/// The only writer position of a segment.
#[derive(Debug)]
pub(crate) struct Cursor {
    seq: u64,
    epoch: u32,
    pos: u64,
}

impl Cursor {
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }
}

/// Exclusive ownership of `[offset, offset + len)` until it is filled and published.
#[derive(Debug)]
pub(crate) struct Reservation {
    offset: u64,
    len: u64,
}

impl Reservation {
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len
    }
}

pub(crate) struct SegmentParts {
    pub path: PathBuf,
    pub meta: SegmentMeta,
    pub slot: usize,
    pub map: Mapping,
    pub file: Box<dyn StorageFile>,
    /// End of the valid frames (absolute offset).
    pub end: u64,
    pub index: Vec<IndexEntry>,
    pub holes: Vec<(u64, u64)>,
    /// Whether `[0, end)` is already durable.
    pub flushed: bool,
    pub lock: Arc<LockHold>,
    /// Handles of its own for each flush slot (see [`open_checkers`]); empty for a
    /// segment that takes no more frames.
    pub checkers: Vec<Box<dyn StorageFile>>,
}

/// Opens the write-back checkers of the segment file at `path`, one per flush slot, for
/// a segment that is going to take frames. Opened before any frame of this process
/// reaches the file, each sees every write-back error from then on.
pub(crate) fn open_checkers(env: &Env, path: &Path) -> Result<Vec<Box<dyn StorageFile>>> {
    (0..crate::wal::sync::MAX_FLIGHTS)
        .map(|_| {
            env.storage
                .open_file(path, false)
                .map_err(|e| Error::io(IoOp::Open, path, e))
        })
        .collect()
}

impl Segment {
    pub(crate) fn new(parts: SegmentParts) -> Segment {
        let SegmentParts {
            path,
            meta,
            slot,
            map,
            file,
            end,
            index,
            holes,
            flushed,
            lock,
            checkers,
        } = parts;
        Segment {
            path,
            seq: meta.seq,
            epoch: meta.epoch,
            size: meta.segment_bytes,
            map,
            file,
            header: Mutex::new(HeaderState { meta, slot }),
            base_lsn: AtomicU64::new(meta.base_lsn),
            published_end: AtomicU64::new(end),
            flushed_end: AtomicU64::new(if flushed { end } else { 0 }),
            limit: AtomicU64::new(u64::MAX),
            holes,
            cursor_taken: AtomicBool::new(false),
            index: Mutex::new(index),
            prefaulted_to: AtomicU64::new(end),
            kicked_to: AtomicU64::new(end),
            checkers,
            _lock: lock,
        }
    }

    pub(crate) fn base_lsn(&self) -> u64 {
        self.base_lsn.load(Ordering::Acquire)
    }

    /// Sets the base LSN known from the frames when the header lacks it (in memory;
    /// see `header_has_base`).
    pub(crate) fn assume_base(&self, base: u64) {
        self.base_lsn.store(base, Ordering::Release);
    }

    /// Whether the current header carries the base LSN.
    pub(crate) fn header_has_base(&self) -> bool {
        self.meta().base_lsn != 0
    }

    pub(crate) fn published_end(&self) -> u64 {
        self.published_end.load(Ordering::Acquire)
    }

    pub(crate) fn meta(&self) -> SegmentMeta {
        self.header
            .lock()
            .map(|h| h.meta)
            .unwrap_or_else(|p| p.into_inner().meta)
    }

    /// The published frames: `[SEGMENT_DATA_OFFSET, published_end)`.
    pub(crate) fn published(&self) -> &[u8] {
        let end = self.published_end();
        let start = SEGMENT_DATA_OFFSET;
        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        // SAFETY: bytes below `published_end` are never written again while the segment
        // lives: the cursor (the only write position) never goes below it, reservations
        // above it are disjoint from it, and header writes go to page 0 with `pwrite`.
        #[expect(unsafe_code, reason = "borrowing published frames from the mapping")]
        let bytes = unsafe { self.map.bytes(start, len) };
        debug_assert!(bytes.is_some(), "published end {end} past the mapping");
        bytes.unwrap_or_default()
    }

    /// Hands out the segment's only cursor, at `pos` (the end of its valid frames).
    pub(crate) fn take_cursor(&self, pos: u64) -> Option<Cursor> {
        if !self.map.writable() || pos < self.published_end() {
            return None;
        }
        if self.cursor_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Cursor {
            seq: self.seq,
            epoch: self.epoch,
            pos,
        })
    }

    /// Claims `len` bytes at the cursor, or `None` when they do not fit.
    pub(crate) fn reserve(&self, cursor: &mut Cursor, len: u64) -> Option<Reservation> {
        if cursor.seq != self.seq || cursor.epoch != self.epoch {
            return None;
        }
        let end = cursor.pos.checked_add(len)?;
        if end > self.size {
            return None;
        }
        let r = Reservation {
            offset: cursor.pos,
            len,
        };
        cursor.pos = end;
        Some(r)
    }

    /// Writes `parts` back to back at the start of the reservation. They must not be
    /// longer than it.
    pub(crate) fn fill(&self, res: &Reservation, parts: &[&[u8]]) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if u64::try_from(total).map_or(true, |t| t > res.len) {
            return false;
        }
        let Ok(offset) = usize::try_from(res.offset) else {
            return false;
        };
        // SAFETY: the reservation came from this segment's only cursor, so no other
        // reservation overlaps it, and it lies at or past `published_end`, so no reader
        // borrows it; `Reservation` is not `Clone`, so only its owner writes here.
        #[expect(unsafe_code, reason = "filling an exclusively reserved range")]
        let ok = unsafe { self.map.write(offset, parts) };
        ok
    }

    /// Makes `[.., end)` visible to readers. Called in LSN order by the publisher.
    pub(crate) fn publish(&self, end: u64) {
        self.published_end.store(end, Ordering::Release);
    }

    /// Where readers stop: the published end, or the seal of a truncation.
    pub(crate) fn visible_end(&self) -> u64 {
        self.published_end().min(self.limit.load(Ordering::Acquire))
    }

    /// Stops readers at `end` after a truncation sealed the segment there. The bytes
    /// past it stay as they are: records borrowed before the truncation stay valid.
    pub(crate) fn cut_visible(&self, end: u64) {
        self.limit.fetch_min(end, Ordering::AcqRel);
        if let Ok(mut index) = self.index.lock() {
            index.retain(|e| e.offset < end);
        }
    }

    /// The salvage holes: at `start`, readers continue at `resume`.
    pub(crate) fn hole_at(&self, offset: u64) -> Option<u64> {
        self.holes
            .iter()
            .find(|(start, _)| *start == offset)
            .map(|(_, resume)| *resume)
    }

    /// Adds a sparse index entry (called under the writer lock, in order).
    pub(crate) fn add_index(&self, entry: IndexEntry) {
        if let Ok(mut index) = self.index.lock() {
            index.push(entry);
        }
    }

    /// Where to start scanning for `lsn`: the last indexed frame at or below it.
    pub(crate) fn seek(&self, lsn: u64) -> u64 {
        let Ok(index) = self.index.lock() else {
            return SEGMENT_DATA_OFFSET;
        };
        let i = index.partition_point(|e| e.lsn <= lsn);
        match i.checked_sub(1).and_then(|i| index.get(i)) {
            Some(e) => e.offset,
            None => SEGMENT_DATA_OFFSET,
        }
    }

    /// Rewrites the header with `change` applied, into the slot not holding the current
    /// one. Not synced: callers sync when the step requires it.
    pub(crate) fn update_header(
        &self,
        env: &Env,
        step: Step,
        change: impl FnOnce(&mut SegmentMeta),
    ) -> Result<SegmentMeta> {
        let mut h = self
            .header
            .lock()
            .map_err(|_| Error::InvalidArgument("segment header lock poisoned".into()))?;
        let mut meta = h.meta;
        change(&mut meta);
        meta.generation = meta.generation.wrapping_add(1);
        meta.check().map_err(|why| {
            Error::InvalidArgument(format!(
                "refusing to write an invalid segment header: {why}"
            ))
        })?;
        let slot = 1 - h.slot.min(1);
        let offset = HEADER_SLOT_OFFSETS.get(slot).copied().unwrap_or(0);
        env.check(step, &self.path)?;
        self.file
            .write_at(offset as u64, &meta.encode())
            .map_err(|e| Error::io(IoOp::Write, &self.path, e))?;
        *h = HeaderState { meta, slot };
        if meta.base_lsn != 0 {
            self.base_lsn.store(meta.base_lsn, Ordering::Release);
        }
        Ok(meta)
    }

    /// Makes the file's data durable (`fdatasync`): used after header rewrites that
    /// must be durable before the call returns.
    pub(crate) fn sync_file(&self, env: &Env, step: Step) -> Result<()> {
        env.check(step, &self.path)?;
        self.file
            .sync_data()
            .map_err(|e| Error::io(IoOp::SyncFile, &self.path, e))
    }

    /// Flushes everything published but not yet flushed (header page included the
    /// first time), as the flush holding slot `slot` (below `sync::MAX_FLIGHTS`; two
    /// flushes may overlap, never in the same slot). Succeeds only if no write-back
    /// error of the file happened since the slot's last flush of this segment: the
    /// `msync`'s own result is not enough, because the kernel reports an error to one
    /// `msync` of the file, which may be the other slot's.
    pub(crate) fn flush_published(&self, env: &Env, slot: usize) -> Result<()> {
        let end = self.visible_end();
        let from = self.flushed_end.load(Ordering::Acquire);
        if end <= from {
            return Ok(());
        }
        let start = from - from % PAGE_BYTES;
        env.check(Step::Flush, &self.path)?;
        let (Ok(start_us), Ok(len_us)) = (usize::try_from(start), usize::try_from(end - start))
        else {
            return Err(Error::InvalidArgument("flush range overflows usize".into()));
        };
        self.map
            .flush(start_us, len_us)
            .map_err(|e| Error::io(IoOp::Flush, &self.path, e))?;
        let checker = self.checkers.get(slot).ok_or_else(|| {
            Error::InvalidArgument(format!("no write-back check for flush slot {slot} (bug)"))
        })?;
        env.op(Step::WritebackCheck, &self.path, |_| {
            checker.wait_writeback(start, end - start)
        })?;
        self.flushed_end.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Whether published bytes are waiting for a flush.
    pub(crate) fn needs_flush(&self) -> bool {
        self.flushed_end.load(Ordering::Acquire) < self.visible_end()
    }

    /// Faults in the data area for writing up to `window` bytes past the writer's
    /// position, at most `chunk` bytes per call; true when nothing is left to do for
    /// now. The background thread calls this ahead of the writer so the append path
    /// takes no page faults (a fault on a fresh file costs microseconds per page).
    /// Only a window is faulted in, because a writable fault dirties the page and dirty
    /// pages the log never fills would still be written back.
    pub(crate) fn prefault_ahead(&self, window: u64, chunk: u64) -> bool {
        let cursor = self.published_end() / PAGE_BYTES * PAGE_BYTES;
        let target = cursor.saturating_add(window).min(self.size);
        let from = self.prefaulted_to.load(Ordering::Acquire).max(cursor);
        let to = from.saturating_add(chunk).min(target);
        if from >= to {
            return true;
        }
        if let (Ok(start), Ok(end)) = (usize::try_from(from), usize::try_from(to)) {
            self.map.prefault(start, end - start);
        }
        self.prefaulted_to.fetch_max(to, Ordering::AcqRel);
        to >= target
    }

    /// Pages below this offset were written behind.
    #[cfg(test)]
    pub(crate) fn written_behind_to(&self) -> u64 {
        self.kicked_to.load(Ordering::Acquire)
    }

    /// Writes behind the writer: once `min_bytes` of whole published pages have
    /// gathered since the last call, unmaps them from this process and starts their
    /// write-back (without waiting), so that a later sync finds most bytes on disk.
    ///
    /// The unmapping comes first because write-back of a page that is still mapped
    /// writable write-protects it, with one TLB-shootdown interrupt of the writer's
    /// core per 4 KiB page; unmapping a range flushes the TLB once per batch of page
    /// tables instead. Nothing writes below the published end again (DESIGN.md §6),
    /// and readers of released pages fault them back in.
    pub(crate) fn write_behind(&self, min_bytes: u64) {
        let end = self.visible_end() / PAGE_BYTES * PAGE_BYTES;
        let from = self.kicked_to.load(Ordering::Acquire) / PAGE_BYTES * PAGE_BYTES;
        if end < from.saturating_add(min_bytes.max(1)) {
            return;
        }
        if let (Ok(start), Ok(stop)) = (usize::try_from(from), usize::try_from(end)) {
            self.map.release(start, stop - start);
        }
        // A hint: nothing becomes durable because of it, so a failure changes nothing.
        let _ = self.file.start_writeback(from, end - from);
        self.kicked_to.fetch_max(end, Ordering::AcqRel);
    }
}

/// A read-only mapping of a whole segment file, used by recovery and inspection before
/// any live [`Segment`] of the file exists.
pub(crate) struct Frozen {
    map: Mapping,
}

impl Frozen {
    /// Wraps a read-only mapping.
    pub(crate) fn new(map: Mapping) -> Option<Frozen> {
        if map.writable() {
            return None;
        }
        Some(Frozen { map })
    }

    /// The data area, `[SEGMENT_DATA_OFFSET, len)`.
    pub(crate) fn data(&self) -> &[u8] {
        let start = usize::try_from(SEGMENT_DATA_OFFSET).unwrap_or(usize::MAX);
        let len = self.map.len().saturating_sub(start);
        // SAFETY: the mapping is read-only, and while a slice of it lives the engine has
        // no writable mapping of the file and writes only header slots, which are in
        // page 0, outside this range. (Open erases a final seal frame with `pwrite`,
        // after recovery dropped every slice and before any is handed out.) Other
        // processes are kept out by the directory lock.
        #[expect(unsafe_code, reason = "borrowing a read-only mapping")]
        let bytes = unsafe { self.map.bytes(start, len) };
        bytes.unwrap_or_default()
    }

    /// Makes bytes `[0, len)` of the file durable: recovery flushes what it returns,
    /// and only that (not the whole file).
    pub(crate) fn flush(&self, len: u64) -> std::io::Result<()> {
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(self.map.len());
        self.map.flush(0, len)
    }

    /// Gives the mapping back, for a sealed segment that stays read-only.
    pub(crate) fn into_mapping(self) -> Mapping {
        self.map
    }
}
