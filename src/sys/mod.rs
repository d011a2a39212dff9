//! The storage seam: every file, directory and mapping operation of the engine.
//!
//! The engine never calls `std::fs` or `mmap` itself; it goes through [`Env`], which
//! holds a [`Storage`] implementation (the real file system in [`real`], or a simulated
//! disk for tests) and optional [`Failpoints`]. The append path only touches memory
//! through a [`Mapping`], so the seam costs nothing there: its methods are called on
//! creation, rollover, sync and recovery.

pub(crate) mod fault;
pub mod limits;
pub(crate) mod mapping;
pub(crate) mod real;
pub(crate) mod sim;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoOp, Result};

pub use fault::{FailAction, Failpoints, Step};
pub(crate) use mapping::Mapping;
pub use sim::{PowerCut, SimDisk};

/// Where the engine keeps its files: the real file system (the default) or a test
/// double. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) failpoints: Option<Arc<Failpoints>>,
    pub(crate) sabotage: Sabotage,
    /// Run the engine's background threads (segment preparation, prefault and
    /// write-behind, periodic flush) and its helper threads (checksums verified ahead
    /// by recovery, pages faulted in ahead of a checkpoint's fill). Off only for
    /// deterministic simulation.
    pub(crate) background: bool,
}

/// Deliberate breaches of the engine's durability rules, for proving that the crash
/// tests would catch an engine that made them. Never set outside such a test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sabotage {
    /// Do not sync the directory after renaming a new segment into place: records
    /// acknowledged in it may vanish with its directory entry at a power cut.
    pub skip_segment_dir_sync: bool,
    /// When syncing, flush only the newest segment with unflushed bytes: records in an
    /// older one are acknowledged without being on disk.
    pub flush_only_newest_segment: bool,
}

impl Default for Env {
    fn default() -> Env {
        Env {
            storage: Arc::new(real::RealStorage),
            failpoints: None,
            sabotage: Sabotage::default(),
            background: true,
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("storage", &self.storage.name())
            .field("failpoints", &self.failpoints.is_some())
            .field("sabotage", &self.sabotage)
            .finish()
    }
}

impl Env {
    /// The real file system with `failpoints` armed at every persistence step.
    pub fn with_failpoints(failpoints: Arc<Failpoints>) -> Env {
        Env {
            failpoints: Some(failpoints),
            ..Env::default()
        }
    }

    /// This environment with `failpoints` added.
    pub fn failpoints(mut self, failpoints: Arc<Failpoints>) -> Env {
        self.failpoints = Some(failpoints);
        self
    }

    /// This environment without background threads: segments are prepared when the
    /// writer needs them, nothing is prefaulted, there is no periodic flush, and
    /// recovery verifies every checksum on the opening thread (no helper verifies
    /// later segments ahead of it). Every
    /// storage operation then happens on the caller's thread, in program order, which
    /// makes a simulation reproducible from its seed.
    pub fn without_background(mut self) -> Env {
        self.background = false;
        self
    }

    /// This environment with durability rules deliberately broken (tests only).
    pub fn sabotage(mut self, sabotage: Sabotage) -> Env {
        self.sabotage = sabotage;
        self
    }

    /// Consults the failpoints for `step` on `path`; an error here is what the real
    /// operation would have returned.
    pub(crate) fn check(&self, step: Step, path: &Path) -> Result<()> {
        match &self.failpoints {
            None => Ok(()),
            Some(fp) => fp.hit(step).map_err(|e| Error::io(step.op(), path, e)),
        }
    }

    /// Runs `f` after the failpoint for `step`, wrapping its error.
    pub(crate) fn op<T>(
        &self,
        step: Step,
        path: &Path,
        f: impl FnOnce(&dyn Storage) -> io::Result<T>,
    ) -> Result<T> {
        self.check(step, path)?;
        f(self.storage.as_ref()).map_err(|e| Error::io(step.op(), path, e))
    }
}

/// How a directory is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// One writer; no readers.
    Exclusive,
    /// Any number of read-only inspectors; no writer.
    Shared,
}

/// A held directory lock; released on drop.
pub(crate) trait DirLock: Send + Sync {}

/// File-system operations. Paths are absolute or relative to the process's working
/// directory; implementations must not keep global state outside `self`.
pub(crate) trait Storage: Send + Sync {
    /// A short name for debugging.
    fn name(&self) -> &'static str;
    /// Takes the lock of `dir` without creating or changing any file. Returns
    /// `Ok(None)` when another handle holds it.
    fn try_lock_dir(&self, dir: &Path, mode: LockMode) -> io::Result<Option<Box<dyn DirLock>>>;
    /// Records the holder's pid next to the lock (best effort, informational).
    fn write_lock_owner(&self, dir: &Path, pid: u32) -> io::Result<()>;
    /// Reads what [`Storage::write_lock_owner`] recorded.
    fn read_lock_owner(&self, dir: &Path) -> Option<u32>;
    /// Whether `path` exists as a directory.
    fn dir_exists(&self, path: &Path) -> io::Result<bool>;
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir` that are regular files.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file (failing if it exists) of `len` bytes, with every block
    /// allocated: writing into it through a mapping can never hit a hole.
    fn create_file(&self, path: &Path, len: u64) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file.
    fn open_file(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file.
pub(crate) trait StorageFile: Send + Sync {
    /// Current size in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Maps the first `len` bytes shared. The caller checked `len` against the file size.
    fn map(&self, len: usize, writable: bool) -> io::Result<Mapping>;
    /// Writes `bytes` at `offset` (used for header slots, never for record data).
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Makes the file's data and size durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// An offset past which the file holds no data (every byte reads as zero): the
    /// end of its last written or cached extent. Preallocated but never written
    /// space counts as a hole. The file length when the file system cannot tell.
    fn data_end(&self) -> io::Result<u64>;
    /// Starts writing back `[offset, offset + len)` without waiting (a hint: nothing
    /// becomes durable because of it; it only lets the disk work while appends go on).
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Waits until no write-back of `[offset, offset + len)` is running, then reports
    /// any write-back error of the file that happened since this handle last reported
    /// one (or since it was opened). Linux keeps that error state per open file, so a
    /// handle of one's own sees every error, however many other handles report it.
    fn wait_writeback(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// `IoOp` of each step, for error messages.
impl Step {
    pub(crate) fn op(self) -> IoOp {
        match self {
            Step::SegmentCreate | Step::CheckpointCreate => IoOp::Create,
            Step::SegmentAllocate => IoOp::Allocate,
            Step::SegmentMap | Step::CheckpointMap => IoOp::Map,
            Step::SegmentHeaderWrite | Step::SegmentSeal => IoOp::Write,
            Step::SegmentSync | Step::CheckpointSync => IoOp::SyncFile,
            Step::Flush | Step::WritebackCheck => IoOp::Flush,
            Step::SegmentRename | Step::CheckpointRename => IoOp::Rename,
            Step::DirSync => IoOp::SyncDir,
            Step::SegmentRemove | Step::CheckpointRemove => IoOp::Remove,
            Step::SegmentRead => IoOp::Read,
        }
    }
}
