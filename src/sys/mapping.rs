//! A mapped file region: a raw pointer and length, plus the backend that owns it.
//!
//! This module and `wal/segment.rs` (and `checkpoint/file.rs`) are the only places with
//! `unsafe`. The contract of the two unsafe accessors is the soundness argument of the
//! whole crate, written once in DESIGN.md ("Why handing out `&[u8]` into a shared
//! mapping is sound"): the directory lock keeps other mmlog processes out, mapped files
//! are never shrunk, and the engine never writes a byte range after it has been
//! published to readers.

use std::fmt;
use std::io;
use std::ptr::NonNull;

/// What owns the memory of a [`Mapping`] and can flush it.
pub(crate) trait MappingBackend: Send + Sync {
    /// Makes bytes `[offset, offset + len)` durable.
    fn flush(&self, offset: usize, len: usize) -> io::Result<()>;
    /// Faults in bytes `[offset, offset + len)` for writing (an optimisation: errors
    /// are ignored by callers).
    fn prefault(&self, offset: usize, len: usize) -> io::Result<()>;
    /// Drops this process's page-table entries for `[offset, offset + len)`. No byte
    /// changes: the data stays in the file's page cache (dirty pages stay dirty) and
    /// the next access maps it again. That holds only for a shared file mapping (in a
    /// private or anonymous one it would discard data), so a backend must never wrap
    /// any other kind. An optimisation: errors are ignored by callers.
    fn release(&self, offset: usize, len: usize) -> io::Result<()>;
}

/// A region of memory backed by a file.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    backend: Box<dyn MappingBackend>,
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

#[expect(
    unsafe_code,
    reason = "the mapping is shared between threads by design"
)]
// SAFETY: a `Mapping` is a pointer to memory owned by `backend`, which is itself
// `Send + Sync`. Access to the bytes goes through the `unsafe` accessors below, whose
// callers guarantee that no range is written while it is read.
unsafe impl Send for Mapping {}
#[expect(
    unsafe_code,
    reason = "the mapping is shared between threads by design"
)]
// SAFETY: as for `Send`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Wraps memory owned by `backend`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads (and for writes when `writable`) of `len` bytes
    /// for as long as `backend` lives, and nothing else may free or shrink it.
    #[expect(unsafe_code, reason = "constructor of the raw mapping")]
    pub(crate) unsafe fn new(
        ptr: NonNull<u8>,
        len: usize,
        writable: bool,
        backend: Box<dyn MappingBackend>,
    ) -> Mapping {
        Mapping {
            ptr,
            len,
            writable,
            backend,
        }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping accepts writes.
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// Borrows `[offset, offset + len)`, or `None` when it is out of bounds.
    ///
    /// # Safety
    /// No write to any byte of the range may happen while the returned slice lives.
    #[expect(unsafe_code, reason = "reading through the raw mapping")]
    pub(crate) unsafe fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked above), which is valid for
        // reads for the life of `self` (contract of `new`); the caller guarantees that
        // nobody writes it while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// Borrows `[offset, offset + len)` mutably, or `None` when it is out of bounds or
    /// the mapping is read-only.
    ///
    /// # Safety
    /// The caller must have exclusive access to the range for as long as the returned
    /// slice lives: no other write and no other slice overlaps it.
    #[expect(unsafe_code, reason = "writing through the raw mapping")]
    #[expect(clippy::mut_from_ref, reason = "exclusivity is the caller's contract")]
    pub(crate) unsafe fn bytes_mut(&self, offset: usize, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len)?;
        if !self.writable || end > self.len {
            return None;
        }
        // SAFETY: in bounds of a writable mapping valid for the life of `self`; the
        // caller guarantees nothing else accesses the range meanwhile.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }

    /// Copies `parts`, back to back, to `offset`. Returns false (writing nothing) when
    /// the range is out of bounds or the mapping is read-only.
    ///
    /// # Safety
    /// The caller must have exclusive access to the destination range: no other write
    /// and no live slice from [`Mapping::bytes`] overlaps it.
    #[expect(unsafe_code, reason = "writing through the raw mapping")]
    pub(crate) unsafe fn write(&self, offset: usize, parts: &[&[u8]]) -> bool {
        let mut total = 0usize;
        for p in parts {
            let Some(t) = total.checked_add(p.len()) else {
                return false;
            };
            total = t;
        }
        let Some(end) = offset.checked_add(total) else {
            return false;
        };
        if !self.writable || end > self.len {
            return false;
        }
        let mut at = offset;
        for p in parts {
            // SAFETY: `[at, at + p.len())` lies inside `[offset, end)`, which is inside
            // the writable mapping (checked above); the caller owns that range
            // exclusively, and `p` is ordinary memory that cannot overlap a range
            // nobody else may touch.
            unsafe {
                std::ptr::copy_nonoverlapping(p.as_ptr(), self.ptr.as_ptr().add(at), p.len());
            }
            at += p.len();
        }
        true
    }

    /// Makes `[offset, offset + len)` durable.
    pub(crate) fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "flush range outside the mapping",
            ));
        }
        if len == 0 {
            return Ok(());
        }
        self.backend.flush(offset, len)
    }

    /// Unmaps the pages of `[offset, offset + len)` from this process (see
    /// [`MappingBackend::release`]); best effort, and no byte of the range changes.
    /// Write-back of a page that is still mapped writable has to write-protect it,
    /// which interrupts every core running the process (a TLB shootdown) once per
    /// page; after this call it has nothing to write-protect.
    pub(crate) fn release(&self, offset: usize, len: usize) {
        if offset.checked_add(len).is_some_and(|end| end <= self.len) && len > 0 {
            let _ = self.backend.release(offset, len);
        }
    }

    /// Faults in `[offset, offset + len)` for writing; best effort.
    pub(crate) fn prefault(&self, offset: usize, len: usize) {
        if self.writable && offset.checked_add(len).is_some_and(|end| end <= self.len) {
            let _ = self.backend.prefault(offset, len);
        }
    }
}
