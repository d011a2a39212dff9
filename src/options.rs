//! Options, durability and recovery modes.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{PAGE_BYTES, SEGMENT_DATA_OFFSET};
use crate::sys::Env;

/// Smallest accepted segment size (one header page plus three data pages).
pub const MIN_SEGMENT_BYTES: u64 = 16 * 1024;
/// Largest accepted segment size.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// When an append returns, relative to the disk.
///
/// Records live in a shared file mapping, so every acknowledged record survives a crash
/// of the process (the kernel owns the page). The variants differ in what survives a
/// power cut or kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Return once the record is in the mapping. Survives a process crash; after a power
    /// cut it survives only if a later [`Wal::sync`](crate::Wal::sync), durable append,
    /// background flush or the kernel's own writeback covered it.
    None,
    /// Return once the record is on stable storage (`msync`). Survives a power cut.
    /// Concurrent durable appends share one sync (group commit).
    #[default]
    Sync,
}

/// How recovery treats damage, after RocksDB's WAL recovery modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Default. Damage after the last record that is known to be durable (a torn tail
    /// from a crash) is trimmed and reported. Damage below it, or damage followed by
    /// records that were written after it became durable, is [`Error::Corrupt`].
    #[default]
    TolerateCorruptedTail,
    /// Any damage at all, even a torn tail, is [`Error::Corrupt`]. A clean end (zeroed
    /// space after the last record) is not damage.
    AbsoluteConsistency,
    /// Stop at the first damage and keep the prefix before it, whatever follows.
    PointInTime,
    /// Salvage: skip damaged records and keep every valid one after them, reporting
    /// each dropped range. LSNs may then have gaps.
    SkipCorrupted,
}

/// Options for [`Wal::open`](crate::Wal::open).
///
/// A plain struct: start from `Options::default()` and change the fields you need.
/// [`Options::validate`] runs at open.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of each segment file in bytes, header page included. A multiple of 4096
    /// between 16 KiB and 1 GiB. The largest record is a little smaller (see
    /// [`Options::max_payload_bytes`]). Default = 64 MiB.
    ///
    /// Only used when creating segments: an existing log keeps the size its segments
    /// were created with until they are recycled.
    pub segment_size_bytes: u64,
    /// Durability of [`Wal::append`](crate::Wal::append) and
    /// [`Wal::append_batch`](crate::Wal::append_batch). Per-call overrides exist.
    /// Default = [`Durability::Sync`].
    pub durability: Durability,
    /// How recovery treats damage. Default = [`RecoveryMode::TolerateCorruptedTail`].
    pub recovery_mode: RecoveryMode,
    /// Open for inspection only: take a shared lock, recover in memory, never write a
    /// byte. Default = false.
    pub read_only: bool,
    /// Create the directory and a new log when none exists. Default = true.
    pub create_if_missing: bool,
    /// When set, a background thread syncs whatever was appended every interval, which
    /// bounds what a power cut can take from [`Durability::None`] appends.
    /// Default = `None` (no periodic flush).
    pub flush_interval: Option<Duration>,
    /// Fault in the pages of each new segment in the background, before appends reach
    /// it, so the append path takes no page faults. The same background thread writes
    /// the active segment behind the writer (its published pages are handed to
    /// write-back every few MiB), so `false` turns that off too: a sync then writes
    /// everything since the last one. Default = true.
    pub prefault: bool,
    /// Verify the checksum of every record each time it is read. When false (the
    /// default), a record is verified once per open: by recovery, or, for records this
    /// handle wrote, by construction. Default = false.
    pub paranoid_reads: bool,
    /// Keep up to two retired segment files and reuse them (with a new epoch) instead
    /// of allocating new ones. Default = true.
    pub recycle_segments: bool,
    /// Checkpoint generations to keep (at least 1). When the newest is damaged, recovery
    /// falls back to an older one, so the log is retained back to the oldest kept.
    /// Default = 2.
    pub checkpoint_generations: usize,
    /// The storage the engine runs on. Default = the real file system. Tests pass a
    /// simulated disk or failpoints from [`testing`](crate::testing) here.
    pub env: Env,
    /// Told how far the recovery scan of an open has got, for a progress bar on a
    /// large log. Default = `None`.
    pub recovery_progress: Option<RecoveryProgress>,
}

/// A callback for [`Options::recovery_progress`]: called on the opening thread with
/// the bytes of segment data verified so far and the bytes there are to verify (the
/// written part of every segment file), at least once per segment and once per
/// 16 MiB, and a last time with both equal when the scan is done. The total is an
/// upper bound: the scan ends early where the log does.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use mmlog::{Options, RecoveryProgress, Wal};
///
/// let dir = tempfile::tempdir()?;
/// let (wal, _) = Wal::open(dir.path(), Options::default())?;
/// wal.append(b"record")?;
/// wal.close()?;
/// let seen = Arc::new(AtomicU64::new(0));
/// let s = Arc::clone(&seen);
/// let opts = Options {
///     recovery_progress: Some(RecoveryProgress::new(move |done, total| {
///         assert!(done <= total);
///         s.store(done, Ordering::Relaxed);
///     })),
///     ..Options::default()
/// };
/// let (_wal, report) = Wal::open(dir.path(), opts)?;
/// assert!(seen.load(Ordering::Relaxed) >= report.bytes_scanned);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RecoveryProgress(Arc<dyn Fn(u64, u64) + Send + Sync>);

impl RecoveryProgress {
    /// Wraps `f(done, total)`.
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> RecoveryProgress {
        RecoveryProgress(Arc::new(f))
    }

    pub(crate) fn report(&self, done: u64, total: u64) {
        (self.0)(done.min(total), total);
    }
}

impl std::fmt::Debug for RecoveryProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryProgress(..)")
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size_bytes: 64 * 1024 * 1024,
            durability: Durability::Sync,
            recovery_mode: RecoveryMode::TolerateCorruptedTail,
            read_only: false,
            create_if_missing: true,
            flush_interval: None,
            prefault: true,
            paranoid_reads: false,
            recycle_segments: true,
            checkpoint_generations: 2,
            env: Env::default(),
            recovery_progress: None,
        }
    }
}

impl Options {
    /// Checks every field; [`Wal::open`](crate::Wal::open) calls this first.
    pub fn validate(&self) -> Result<()> {
        let size = self.segment_size_bytes;
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&size) {
            return Err(Error::InvalidOptions(format!(
                "segment_size_bytes = {size}: must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}"
            )));
        }
        if !size.is_multiple_of(PAGE_BYTES) {
            return Err(Error::InvalidOptions(format!(
                "segment_size_bytes = {size}: must be a multiple of {PAGE_BYTES}"
            )));
        }
        if self.flush_interval.is_some() && !self.env.background {
            return Err(Error::InvalidOptions(
                "flush_interval needs the background thread, which this Env turns off".into(),
            ));
        }
        if self.checkpoint_generations == 0 {
            return Err(Error::InvalidOptions(
                "checkpoint_generations must be at least 1".into(),
            ));
        }
        if let Some(interval) = self.flush_interval
            && interval.is_zero()
        {
            return Err(Error::InvalidOptions(
                "flush_interval must be longer than zero".into(),
            ));
        }
        Ok(())
    }

    /// The largest payload one record (or the whole body of a batch) may have with this
    /// segment size.
    pub fn max_payload_bytes(&self) -> u64 {
        crate::format::max_body_bytes(self.segment_size_bytes)
    }

    /// Bytes of each segment available for records.
    pub fn segment_data_bytes(&self) -> u64 {
        self.segment_size_bytes.saturating_sub(SEGMENT_DATA_OFFSET)
    }
}
