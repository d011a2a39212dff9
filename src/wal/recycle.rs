//! Segment recycling: a retired segment file is kept (renamed `NNN.free`) and becomes
//! the next prepared segment, with a new epoch, instead of allocating a fresh file.
//! A recycled file has real (written) blocks and often warm pages, so appending into
//! it is cheaper than into a fresh, unwritten allocation; its old frames carry older
//! epochs and can never validate again (DESIGN.md §4.10).

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use crate::error::{Error, IoOp, Result};
use crate::format::{HEADER_SLOT_OFFSETS, SEGMENT_DATA_OFFSET, SegmentMeta};
use crate::sys::{Step, StorageFile};
use crate::wal::Shared;
use crate::wal::segment::Segment;

/// Free files kept for reuse.
pub(crate) const MAX_FREE_FILES: usize = 2;

/// File name of a free (recyclable) segment file.
pub(crate) fn free_file_name(seq: u64) -> String {
    format!("{seq:020}.free")
}

/// Whether `name` is a free segment file.
pub(crate) fn is_free_name(name: &str) -> bool {
    name.strip_suffix(".free")
        .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
}

impl Shared {
    /// Takes `seg` out of service: keeps its file for reuse when recycling is on, the
    /// pool has room and no reader still maps it; removes it otherwise. The caller has
    /// already taken it off the segment list and syncs the directory afterwards.
    pub(crate) fn retire(&self, seg: Arc<Segment>) -> Result<()> {
        let path = seg.path.clone();
        let seq = seg.seq;
        let size = seg.size;
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let reusable = self.opts.recycle_segments
            && free.len() < MAX_FREE_FILES
            && size == self.opts.segment_size_bytes
            && Arc::strong_count(&seg) == 1;
        // Unmap before renaming or removing (a reader still holding it keeps its own
        // reference, and then the file is removed, never reused).
        drop(seg);
        if reusable {
            let to = self.dir.join(free_file_name(seq));
            self.env
                .op(Step::SegmentRemove, &path, |s| s.rename(&path, &to))?;
            free.push(to);
        } else {
            self.env
                .op(Step::SegmentRemove, &path, |s| s.remove_file(&path))?;
        }
        Ok(())
    }

    /// A free file to reuse for segment `seq`, already under the temporary name
    /// `tmp`, with its first header slot rewritten for `meta` and its second zeroed.
    /// `None` when there is none (or it turned out unusable and was removed).
    pub(crate) fn reuse_free(
        &self,
        tmp: &std::path::Path,
        meta: &SegmentMeta,
    ) -> Option<Box<dyn StorageFile>> {
        let from = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()?;
        let storage = self.env.storage.as_ref();
        let attempt = (|| -> Result<Box<dyn StorageFile>> {
            self.env
                .op(Step::SegmentCreate, tmp, |s| s.rename(&from, tmp))?;
            let file = storage
                .open_file(tmp, true)
                .map_err(|e| Error::io(IoOp::Open, tmp, e))?;
            let len = file.len().map_err(|e| Error::io(IoOp::Stat, tmp, e))?;
            if len != meta.segment_bytes {
                return Err(Error::InvalidArgument("free file has another size".into()));
            }
            self.env.check(Step::SegmentHeaderWrite, tmp)?;
            let second = HEADER_SLOT_OFFSETS.get(1).copied().unwrap_or(512) as u64;
            file.write_at(second, &[0u8; 64])
                .map_err(|e| Error::io(IoOp::Write, tmp, e))?;
            // The first data page starts zeroed, as in a fresh file: recovery tells an
            // unused prepared segment by it, without reading the old bytes after it.
            file.write_at(SEGMENT_DATA_OFFSET, &[0u8; 4096])
                .map_err(|e| Error::io(IoOp::Write, tmp, e))?;
            file.write_at(0, &meta.encode())
                .map_err(|e| Error::io(IoOp::Write, tmp, e))?;
            Ok(file)
        })();
        match attempt {
            Ok(file) => {
                self.stats
                    .segments_recycled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(file)
            }
            Err(_) => {
                let _ = storage.remove_file(tmp);
                let _ = storage.remove_file(&from);
                None
            }
        }
    }

    /// Free files found at open.
    pub(crate) fn adopt_free(&self, files: Vec<PathBuf>) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.extend(files);
    }
}
