//! The append path: reserve (short lock), fill (no lock), publish (in LSN order).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use zerocopy::IntoBytes;

use crate::Lsn;
use crate::error::{Error, Result};
use crate::format::{
    self, FrameKind, SEGMENT_DATA_OFFSET, SEGMENT_RECYCLED, SegmentMeta, batch_body_bytes,
    frame_bytes, make_record_header, write_batch_directory,
};
use crate::options::Durability;
use crate::sys::Step;
use crate::wal::maint::Take;
use crate::wal::recovery::{segment_file_name, segment_tmp_name};
use crate::wal::segment::{
    Cursor, INDEX_STRIDE_BYTES, IndexEntry, NUDGE_BYTES, Reservation, Segment, SegmentParts,
    open_checkers,
};
use crate::wal::{Done, Shared, WriterState};

/// Payloads up to this size are checksummed and copied in one pass through a stack
/// buffer for batches; larger ones are written part by part.
const BATCH_DIR_STACK: usize = 256;

impl Shared {
    /// Appends one record.
    pub(crate) fn append_one(&self, payload: &[u8], durability: Durability) -> Result<Lsn> {
        let body_len = self.check_body_len(payload.len() as u64)?;
        let (lsn, seg, res) = self.reserve(FrameKind::Record, 1, u64::from(body_len))?;
        let hint = self.durable.load(Ordering::Acquire);
        let header = make_record_header(
            FrameKind::Record,
            lsn,
            hint,
            seg.epoch,
            body_len,
            &[payload],
        );
        if !seg.fill(&res, &[header.as_bytes(), payload]) {
            return Err(Error::InvalidArgument("reservation too small (bug)".into()));
        }
        self.publish(&seg, lsn, lsn + 1, res.end());
        if durability == Durability::Sync {
            self.sync_to(lsn)?;
        }
        Ok(Lsn(lsn))
    }

    /// Appends a batch as one frame: all of it recovers or none.
    pub(crate) fn append_many(&self, payloads: &[&[u8]], durability: Durability) -> Result<Lsn> {
        if payloads.is_empty() {
            return Err(Error::InvalidArgument("empty batch".into()));
        }
        let body =
            batch_body_bytes(payloads.iter().map(|p| p.len())).ok_or(Error::RecordTooLarge {
                len: u64::MAX,
                max_payload_bytes: self.opts.max_payload_bytes(),
            })?;
        let body_len = self.check_body_len(body)?;
        let count = payloads.len() as u64;
        let (lsn, seg, res) = self.reserve(FrameKind::Batch, count, body)?;
        let dir_len = 4 + 4 * payloads.len();
        let mut small = [0u8; BATCH_DIR_STACK];
        let mut large = Vec::new();
        let dir: &mut [u8] = if dir_len <= BATCH_DIR_STACK {
            small.get_mut(..dir_len).unwrap_or_default()
        } else {
            large.resize(dir_len, 0);
            &mut large
        };
        write_batch_directory(dir, payloads)
            .ok_or_else(|| Error::InvalidArgument("batch directory (bug)".into()))?;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(payloads.len() + 2);
        parts.push(&[]);
        parts.push(dir);
        parts.extend_from_slice(payloads);
        let hint = self.durable.load(Ordering::Acquire);
        let header = make_record_header(
            FrameKind::Batch,
            lsn,
            hint,
            seg.epoch,
            body_len,
            parts.get(1..).unwrap_or_default(),
        );
        if let Some(first) = parts.first_mut() {
            *first = header.as_bytes();
        }
        if !seg.fill(&res, &parts) {
            return Err(Error::InvalidArgument("reservation too small (bug)".into()));
        }
        self.publish(&seg, lsn, lsn + count, res.end());
        if durability == Durability::Sync {
            self.sync_to(lsn + count - 1)?;
        }
        Ok(Lsn(lsn))
    }

    fn check_body_len(&self, len: u64) -> Result<u32> {
        let max = self.opts.max_payload_bytes();
        if len > max {
            return Err(Error::RecordTooLarge {
                len,
                max_payload_bytes: max,
            });
        }
        u32::try_from(len).map_err(|_| Error::RecordTooLarge {
            len,
            max_payload_bytes: max,
        })
    }

    /// Claims the next `count` LSNs and the space for a frame with a body of
    /// `body_len` bytes, rolling to a new segment when the active one is full.
    pub(crate) fn reserve(
        &self,
        kind: FrameKind,
        count: u64,
        body_len: u64,
    ) -> Result<(u64, Arc<Segment>, Reservation)> {
        let bytes = frame_bytes(body_len).ok_or(Error::RecordTooLarge {
            len: body_len,
            max_payload_bytes: self.opts.max_payload_bytes(),
        })?;
        self.check_poison()?;
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if w.closed {
            return Err(Error::Closed);
        }
        let res = loop {
            let Some((seg, cursor)) = w.active.as_mut() else {
                return Err(Error::ReadOnly);
            };
            if let Some(res) = seg.reserve(cursor, bytes) {
                break res;
            }
            self.rollover(&mut w)?;
        };
        w.bytes_appended += bytes;
        let lsn = w.next_lsn;
        w.next_lsn = lsn
            .checked_add(count)
            .ok_or_else(|| Error::InvalidArgument("LSN space exhausted".into()))?;
        self.reserved_hint.store(w.next_lsn - 1, Ordering::Relaxed);
        let Some((seg, _)) = w.active.as_ref() else {
            return Err(Error::ReadOnly);
        };
        let seg = Arc::clone(seg);
        if kind != FrameKind::Seal && res.offset() >= w.index_next {
            seg.add_index(IndexEntry {
                lsn,
                offset: res.offset(),
            });
            w.index_next = res.offset() + INDEX_STRIDE_BYTES;
        }
        let nudge = res.end() >= w.nudge_next;
        if nudge {
            w.nudge_next = res.end() + NUDGE_BYTES;
        }
        drop(w);
        if nudge {
            self.maint.nudge();
        }
        Ok((lsn, seg, res))
    }

    /// Makes the frame `[first, next)` visible once every earlier frame is.
    pub(crate) fn publish(&self, seg: &Arc<Segment>, first: u64, next: u64, end: u64) {
        let last = next - 1;
        if self.pending_count.load(Ordering::SeqCst) == 0
            && self.appended.load(Ordering::SeqCst) + 1 == first
        {
            // In order: we are the only frame that may advance `appended` now.
            seg.publish(end);
            self.appended.store(last, Ordering::SeqCst);
            if self.pending_count.load(Ordering::SeqCst) > 0 {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                self.drain(&mut pending);
            }
        } else {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if self.appended.load(Ordering::SeqCst) + 1 == first {
                seg.publish(end);
                self.appended.store(last, Ordering::SeqCst);
            } else {
                let at = pending.partition_point(|d| d.first < first);
                pending.insert(
                    at,
                    Done {
                        first,
                        last,
                        seg: Arc::clone(seg),
                        end,
                    },
                );
                self.pending_count.fetch_add(1, Ordering::SeqCst);
            }
            self.drain(&mut pending);
        }
        self.notify_appended();
    }

    /// Publishes queued frames that are now next in line.
    fn drain(&self, pending: &mut Vec<Done>) {
        let mut taken = 0;
        for d in pending.iter() {
            if self.appended.load(Ordering::SeqCst) + 1 != d.first {
                break;
            }
            d.seg.publish(d.end);
            self.appended.store(d.last, Ordering::SeqCst);
            taken += 1;
        }
        if taken > 0 {
            pending.drain(..taken);
            self.pending_count.fetch_sub(taken, Ordering::SeqCst);
        }
    }

    /// Moves the writer to the next segment.
    fn rollover(&self, w: &mut WriterState) -> Result<()> {
        let Some((old, _)) = w.active.as_ref() else {
            return Err(Error::ReadOnly);
        };
        let seq = old.seq + 1;
        let waited = std::time::Instant::now();
        let seg = self.take_prepared(seq)?;
        self.stats.record_wait(waited.elapsed());
        seg.update_header(&self.env, Step::SegmentHeaderWrite, |m| {
            m.base_lsn = w.next_lsn;
        })?;
        let cursor = seg.take_cursor(SEGMENT_DATA_OFFSET).ok_or_else(|| {
            Error::InvalidArgument("prepared segment already in use (bug)".into())
        })?;
        self.install_active(w, seg, cursor);
        self.maint.request(seq + 1);
        self.stats.rollovers.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Makes `seg` the active segment and appends it to the segment list.
    pub(crate) fn install_active(&self, w: &mut WriterState, seg: Arc<Segment>, cursor: Cursor) {
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&seg));
        w.index_next = cursor.pos();
        w.nudge_next = cursor.pos();
        self.maint.set_active(Arc::clone(&seg));
        w.active = Some((seg, cursor));
    }

    /// The prepared segment `seq`, made now if the background thread has not.
    pub(crate) fn take_prepared(&self, seq: u64) -> Result<Arc<Segment>> {
        match self.maint.take_or_claim(seq) {
            Take::Ready(seg) => Ok(seg),
            Take::Claimed(_busy) => self.prepare_segment(seq, None),
        }
    }

    /// Creates segment `seq`: allocate under a temporary name, write the header, sync,
    /// rename into place, sync the directory, map. With `base`, the header already
    /// carries the first LSN (new logs and truncations); otherwise it is set when the
    /// segment becomes active.
    pub(crate) fn prepare_segment(&self, seq: u64, base: Option<u64>) -> Result<Arc<Segment>> {
        self.prepare_segment_flagged(seq, base, 0)
    }

    /// [`Shared::prepare_segment`] with header `flags` (`SEGMENT_RESET`).
    pub(crate) fn prepare_segment_flagged(
        &self,
        seq: u64,
        base: Option<u64>,
        flags: u32,
    ) -> Result<Arc<Segment>> {
        let env = &self.env;
        let storage = env.storage.as_ref();
        let tmp = self.dir.join(segment_tmp_name(seq));
        let path = self.dir.join(segment_file_name(seq));
        let size = self.opts.segment_size_bytes;
        let epoch = self.alloc_epoch()?;
        let meta = SegmentMeta {
            generation: 1,
            seq,
            base_lsn: base.unwrap_or(0),
            segment_bytes: size,
            epoch,
            seal_epoch: 0,
            sealed_end: 0,
            flags,
        };
        let _ = storage.remove_file(&tmp);
        let recycled = SegmentMeta {
            flags: flags | SEGMENT_RECYCLED,
            ..meta
        };
        let (file, meta) = match self.reuse_free(&tmp, &recycled) {
            Some(file) => (file, recycled),
            None => {
                env.check(Step::SegmentCreate, &tmp)?;
                env.check(Step::SegmentAllocate, &tmp)?;
                let file = env.op(Step::SegmentAllocate, &tmp, |s| s.create_file(&tmp, size))?;
                if let Err(e) = env.check(Step::SegmentHeaderWrite, &tmp).and_then(|()| {
                    file.write_at(0, &meta.encode())
                        .map_err(|e| Error::io(crate::error::IoOp::Write, &tmp, e))
                }) {
                    let _ = storage.remove_file(&tmp);
                    return Err(e);
                }
                (file, meta)
            }
        };
        let made = (|| {
            env.op(Step::SegmentSync, &tmp, |_| file.sync_data())?;
            env.op(Step::SegmentRename, &tmp, |s| s.rename(&tmp, &path))
        })();
        if let Err(e) = made {
            let _ = storage.remove_file(&tmp);
            return Err(e);
        }
        if !env.sabotage.skip_segment_dir_sync {
            env.op(Step::DirSync, &self.dir, |s| s.sync_dir(&self.dir))?;
        }
        let len = usize::try_from(size)
            .map_err(|_| Error::InvalidOptions("segment size does not fit in memory".into()))?;
        let map = env.op(Step::SegmentMap, &path, |_| file.map(len, true))?;
        let checkers = open_checkers(env, &path)?;
        let seg = Segment::new(SegmentParts {
            path,
            meta,
            slot: 0,
            map,
            file,
            end: SEGMENT_DATA_OFFSET,
            index: Vec::new(),
            holes: Vec::new(),
            flushed: false,
            lock: self.lock_hold()?,
            checkers,
        });
        Ok(Arc::new(seg))
    }

    /// A fresh epoch, above every epoch on disk.
    pub(crate) fn alloc_epoch(&self) -> Result<u32> {
        let e = self.next_epoch.fetch_add(1, Ordering::AcqRel);
        if e == 0 || e == u32::MAX {
            return Err(Error::InvalidArgument(
                "segment epochs exhausted; copy the log to a new directory".into(),
            ));
        }
        Ok(e)
    }

    /// Writes the seal frame of a clean close at the end of the log. The writer lock
    /// is held and nothing is in flight.
    pub(crate) fn write_seal(&self, w: &mut WriterState) -> Result<()> {
        let bytes = format::RECORD_HEADER_BYTES;
        let res = loop {
            let Some((seg, cursor)) = w.active.as_mut() else {
                return Err(Error::ReadOnly);
            };
            if let Some(res) = seg.reserve(cursor, bytes) {
                break res;
            }
            self.rollover(w)?;
        };
        let Some((seg, _)) = w.active.as_ref() else {
            return Err(Error::ReadOnly);
        };
        let last = w.next_lsn - 1;
        let header = make_record_header(FrameKind::Seal, last, last, seg.epoch, 0, &[]);
        if !seg.fill(&res, &[header.as_bytes()]) {
            return Err(Error::InvalidArgument("reservation too small (bug)".into()));
        }
        seg.publish(res.end());
        Ok(())
    }
}
