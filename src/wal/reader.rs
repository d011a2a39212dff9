//! Reading: records borrowed from the mapping, iterators and the tailing reader.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Lsn;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{self, FrameKind, Invalid, SEGMENT_DATA_OFFSET};
use crate::wal::Shared;
use crate::wal::segment::Segment;

/// One record, read zero-copy from the log.
///
/// The payload is a slice of the segment's mapping, verified before it was handed out.
/// A `Record` keeps its segment mapped (and the directory locked) while it lives, so it
/// stays valid across purges, truncations and even [`Wal::close`](crate::Wal::close);
/// drop records you no longer need.
#[derive(Clone)]
pub struct Record {
    lsn: Lsn,
    seg: Arc<Segment>,
    /// Offset of the payload in `seg.published()`.
    start: usize,
    len: usize,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("lsn", &self.lsn)
            .field("len", &self.len)
            .finish()
    }
}

impl Record {
    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The payload, borrowed from the mapping.
    pub fn payload(&self) -> &[u8] {
        // The range was inside the published bytes when the record was made, and
        // published bytes never change or shrink.
        let end = self.start.saturating_add(self.len);
        self.seg
            .published()
            .get(self.start..end)
            .unwrap_or_default()
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for Record {
    fn as_ref(&self) -> &[u8] {
        self.payload()
    }
}

/// Position inside a batch frame.
#[derive(Debug, Clone, Copy)]
struct InBatch {
    /// LSN of the next record of the batch.
    lsn: u64,
    /// Records of the batch still to return.
    left: u64,
    /// Offset (in `published()`) of the next length in the batch directory.
    len_at: usize,
    /// Offset (in `published()`) of the next payload.
    payload_at: usize,
    /// Offset of the frame that follows the batch.
    next_frame: u64,
}

/// Iterator over records in LSN order, from [`Wal::iter_from`](crate::Wal::iter_from).
///
/// It sees the records that were appended when it was created (or refreshed, for
/// [`Tail`]). Items are `Result`s: damage met while reading (possible only with
/// `paranoid_reads`, or when the disk changed under the log) ends the iteration with an
/// error.
pub struct Iter {
    segs: Vec<Arc<Segment>>,
    seg: usize,
    /// Absolute offset of the next frame in `segs[seg]`.
    pos: u64,
    /// The next LSN to return.
    next: u64,
    /// Last LSN to return.
    last: u64,
    batch: Option<InBatch>,
    verify: bool,
    done: bool,
}

impl fmt::Debug for Iter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("next", &self.next)
            .field("last", &self.last)
            .finish()
    }
}

impl Iter {
    pub(crate) fn new(shared: &Shared, from: u64) -> Iter {
        let segs = shared.segment_list();
        let last = shared.appended();
        let mut it = Iter {
            segs,
            seg: 0,
            pos: SEGMENT_DATA_OFFSET,
            next: from.max(1),
            last,
            batch: None,
            verify: shared.opts.paranoid_reads,
            done: false,
        };
        it.seek(from);
        it
    }

    /// Positions the iterator at the frame holding `lsn` (or the first after it).
    fn seek(&mut self, lsn: u64) {
        // The last segment whose base is at or below `lsn`.
        let i = self
            .segs
            .partition_point(|s| s.base_lsn() != 0 && s.base_lsn() <= lsn);
        self.seg = i.saturating_sub(1);
        self.pos = self
            .segs
            .get(self.seg)
            .map_or(SEGMENT_DATA_OFFSET, |s| s.seek(lsn));
    }

    /// Lets the iterator see records appended since it was made.
    pub(crate) fn refresh(&mut self, shared: &Shared) {
        self.last = shared.appended();
        let fresh = shared.segment_list();
        if fresh.len() != self.segs.len()
            || fresh.last().map(|s| s.seq) != self.segs.last().map(|s| s.seq)
        {
            let seq = self.segs.get(self.seg).map(|s| s.seq);
            if let Some(i) = seq.and_then(|q| fresh.iter().position(|s| s.seq == q)) {
                self.seg = i;
                self.segs = fresh;
            } else {
                self.segs = fresh;
                self.batch = None;
                let next = self.next;
                self.seek(next);
            }
        }
        self.done = false;
    }

    /// The next record as `(LSN, payload offset and length in the current segment's
    /// published bytes)`. Borrows the segment list instead of cloning an `Arc` per
    /// record; the caller turns it into a [`Record`] or hands out the bytes.
    fn next_raw(&mut self) -> Option<Result<(u64, usize, usize)>> {
        loop {
            if self.done || self.next > self.last {
                return None;
            }
            let seg = self.segs.get(self.seg)?;
            let data = seg.published();
            if let Some(b) = self.batch.as_mut() {
                if b.left == 0 {
                    self.pos = b.next_frame;
                    self.batch = None;
                    continue;
                }
                let len_bytes = data.get(b.len_at..b.len_at + 4)?;
                let len = usize::try_from(u32::from_le_bytes(len_bytes.try_into().ok()?)).ok()?;
                let start = b.payload_at;
                let lsn = b.lsn;
                b.len_at += 4;
                b.payload_at = b.payload_at.checked_add(len)?;
                b.lsn += 1;
                b.left -= 1;
                if lsn < self.next {
                    continue;
                }
                self.next = lsn + 1;
                return Some(Ok((lsn, start, len)));
            }
            if let Some(resume) = seg.hole_at(self.pos) {
                self.pos = resume;
                continue;
            }
            // The end comes from the same snapshot as `data`: a writer may publish more
            // meanwhile, and those bytes are not in this slice.
            let end = seg
                .visible_end()
                .min(SEGMENT_DATA_OFFSET + data.len() as u64);
            if self.pos >= end {
                if self.seg + 1 >= self.segs.len() {
                    return None;
                }
                self.seg += 1;
                self.pos = SEGMENT_DATA_OFFSET;
                continue;
            }
            let rel = usize::try_from(self.pos - SEGMENT_DATA_OFFSET).ok()?;
            let limit = usize::try_from(end - SEGMENT_DATA_OFFSET).ok()?;
            let decoded = data
                .get(rel..limit)
                .ok_or(Invalid::BadLength)
                .and_then(|here| format::decode_frame(here, seg.epoch, self.verify));
            let frame = match decoded {
                Ok(f) => f,
                Err(inv) => {
                    let kind = match inv {
                        Invalid::Checksum | Invalid::Foreign => CorruptionKind::Checksum,
                        Invalid::UnknownKind(k) => CorruptionKind::UnknownRecordKind(k),
                        Invalid::Stale => CorruptionKind::StaleEpoch,
                        Invalid::Zero => CorruptionKind::Hole,
                        _ => CorruptionKind::BadLength,
                    };
                    self.done = true;
                    return Some(Err(Error::corrupt(&seg.path, self.pos, kind)));
                }
            };
            let frame_end = self.pos + frame.frame_bytes;
            let body_at = rel + format::RECORD_HEADER_LEN;
            match frame.kind {
                FrameKind::Seal => {
                    self.pos = frame_end;
                }
                FrameKind::Record => {
                    self.pos = frame_end;
                    if frame.lsn < self.next {
                        continue;
                    }
                    self.next = frame.lsn + 1;
                    return Some(Ok((frame.lsn, body_at, frame.body.len())));
                }
                FrameKind::Batch => {
                    if frame.lsn + frame.count <= self.next {
                        self.pos = frame_end;
                        continue;
                    }
                    self.batch = Some(InBatch {
                        lsn: frame.lsn,
                        left: frame.count,
                        len_at: body_at + 4,
                        payload_at: body_at + 4 + 4 * usize::try_from(frame.count).ok()?,
                        next_frame: frame_end,
                    });
                }
            }
        }
    }

    /// Calls `f` with each record's LSN and payload, borrowed from the mapping, until
    /// the records run out or `f` returns false; returns how many it was called with.
    pub(crate) fn visit(&mut self, mut f: impl FnMut(Lsn, &[u8]) -> bool) -> Result<u64> {
        let mut n = 0u64;
        while let Some(raw) = self.next_raw() {
            let (lsn, start, len) = raw?;
            let payload = self
                .segs
                .get(self.seg)
                .and_then(|s| s.published().get(start..start.saturating_add(len)))
                .unwrap_or_default();
            n += 1;
            if !f(Lsn(lsn), payload) {
                break;
            }
        }
        Ok(n)
    }
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        match self.next_raw()? {
            Ok((lsn, start, len)) => Some(Ok(Record {
                lsn: Lsn(lsn),
                seg: Arc::clone(self.segs.get(self.seg)?),
                start,
                len,
            })),
            Err(e) => Some(Err(e)),
        }
    }
}

/// A reader that follows the log as it grows, from [`Wal::tail`](crate::Wal::tail).
pub struct Tail<'w> {
    shared: &'w Shared,
    iter: Iter,
}

impl fmt::Debug for Tail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail").field("iter", &self.iter).finish()
    }
}

impl<'w> Tail<'w> {
    pub(crate) fn new(shared: &'w Shared, from: u64) -> Tail<'w> {
        Tail {
            shared,
            iter: Iter::new(shared, from),
        }
    }

    /// The LSN the next record will have.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.iter.next)
    }

    /// The next record, waiting up to `timeout` for one to be appended. `Ok(None)`
    /// when the time ran out (or the log was closed).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.iter.next() {
                return r.map(Some);
            }
            if self.shared.is_closed() {
                return Ok(None);
            }
            let want = self.iter.next;
            if self.shared.appended() < want && !self.shared.wait_appended(want, deadline) {
                return Ok(None);
            }
            self.iter.refresh(self.shared);
        }
    }
}
