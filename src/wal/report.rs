//! What recovery found and did, as data and as text.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::Lsn;
use crate::checkpoint::RejectedCheckpoint;
use crate::options::RecoveryMode;

/// Why recovery dropped bytes or records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Zeroed or unwritten space followed by records written after it (a torn write).
    TornTail,
    /// A record failed its checksum.
    ChecksumMismatch,
    /// A record length ran past its segment or batch.
    BadLength,
    /// A record from an earlier use of the segment where a current one was expected.
    StaleEpoch,
    /// A valid record with an unexpected LSN.
    LsnGap,
    /// A segment between two others is missing.
    MissingSegment,
    /// The newest segment file is shorter than its header or was never initialised (a
    /// crash while creating it).
    IncompleteSegment,
    /// A valid record of a kind this version does not know.
    UnknownKind,
    /// A segment header failed its checks.
    BadSegmentHeader,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::TornTail => "torn tail",
            DropReason::ChecksumMismatch => "checksum mismatch",
            DropReason::BadLength => "bad length",
            DropReason::StaleEpoch => "stale epoch",
            DropReason::LsnGap => "LSN gap",
            DropReason::MissingSegment => "missing segment",
            DropReason::IncompleteSegment => "incomplete segment file",
            DropReason::UnknownKind => "unknown record kind",
            DropReason::BadSegmentHeader => "bad segment header",
        })
    }
}

/// One range recovery removed from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The segment file where the dropped range starts.
    pub file: PathBuf,
    /// Byte offset in `file` where it starts.
    pub offset: u64,
    /// First LSN lost (the LSN the log would have continued with).
    pub first_lsn: Lsn,
    /// LSNs lost with it, when known: in salvage mode the gap up to where reading
    /// resumed; otherwise the valid-looking records found past the damage and dropped
    /// with it.
    pub dropped_lsns: Option<(Lsn, Lsn)>,
    /// How many records were lost with it (as `dropped_lsns`).
    pub records: u64,
    /// Bytes taken out of the log: from `offset` to the last non-zero byte of the
    /// file's usable area (the whole file for an incomplete segment; in salvage mode,
    /// to where reading resumed).
    pub bytes: u64,
    /// What check failed first.
    pub reason: DropReason,
    /// True when the range lies after the last record known to be durable: the
    /// expected result of a crash, not a sign of a bad disk.
    pub torn_tail: bool,
}

/// What [`Wal::open`](crate::Wal::open) found and did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The log directory.
    pub dir: PathBuf,
    /// The mode recovery ran in.
    pub mode: RecoveryMode,
    /// True when the open created a new, empty log.
    pub created: bool,
    /// True when the log was last closed with [`Wal::close`](crate::Wal::close) (its
    /// final seal record is intact and nothing follows it).
    pub clean_shutdown: bool,
    /// First LSN in the log (equal to `next_lsn` when the log is empty).
    pub first_lsn: Lsn,
    /// Last LSN in the log (`first_lsn - 1` when empty).
    pub last_lsn: Lsn,
    /// LSN the next append receives.
    pub next_lsn: Lsn,
    /// Segment files that hold the log.
    pub segments: u64,
    /// Records read and verified.
    pub records_scanned: u64,
    /// Bytes of frames read and verified.
    pub bytes_scanned: u64,
    /// Everything trimmed or dropped, in log order.
    pub dropped: Vec<Dropped>,
    /// Files removed: leftovers of interrupted steps, dead or trimmed segments. For a
    /// read-only open: the files a writer would remove.
    pub removed_files: Vec<PathBuf>,
    /// The checkpoint recovery starts from (its LSN and file), if any.
    pub checkpoint: Option<(Lsn, PathBuf)>,
    /// Checkpoints that were not used, newest first, and why.
    pub rejected_checkpoints: Vec<RejectedCheckpoint>,
    /// Wall-clock time recovery took.
    pub duration: Duration,
}

impl RecoveryReport {
    pub(crate) fn new(dir: PathBuf, mode: RecoveryMode) -> RecoveryReport {
        RecoveryReport {
            dir,
            mode,
            created: false,
            clean_shutdown: false,
            first_lsn: Lsn(1),
            last_lsn: Lsn(0),
            next_lsn: Lsn(1),
            segments: 0,
            records_scanned: 0,
            bytes_scanned: 0,
            dropped: Vec::new(),
            removed_files: Vec::new(),
            checkpoint: None,
            rejected_checkpoints: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// True when nothing was dropped.
    pub fn is_intact(&self) -> bool {
        self.dropped.is_empty()
    }

    /// Number of records in the log.
    pub fn record_count(&self) -> u64 {
        self.next_lsn.0.saturating_sub(self.first_lsn.0)
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.created {
            return write!(f, "created a new log in {}", self.dir.display());
        }
        write!(
            f,
            "recovered {} ({:?}): LSN {}..{} ({} records) in {} segment(s), {} bytes verified in {:.1?}; last shutdown {}",
            self.dir.display(),
            self.mode,
            self.first_lsn,
            self.last_lsn,
            self.record_count(),
            self.segments,
            self.bytes_scanned,
            self.duration,
            if self.clean_shutdown {
                "clean"
            } else {
                "not clean"
            },
        )?;
        for d in &self.dropped {
            write!(
                f,
                "\n  dropped from {} at byte {} (LSN {} on): {}{}",
                d.file.display(),
                d.offset,
                d.first_lsn,
                d.reason,
                if d.torn_tail { ", torn tail" } else { "" }
            )?;
            if let Some((a, b)) = d.dropped_lsns {
                write!(
                    f,
                    "; {} unacknowledged record(s) {a}..={b} went with it",
                    d.records
                )?;
            }
        }
        if let Some((lsn, path)) = &self.checkpoint {
            write!(
                f,
                "\n  starts from checkpoint {} (LSN {lsn})",
                path.display()
            )?;
        }
        for c in &self.rejected_checkpoints {
            write!(
                f,
                "\n  rejected checkpoint {} (LSN {}): {}",
                c.file.display(),
                c.lsn,
                c.reason
            )?;
        }
        for p in &self.removed_files {
            write!(f, "\n  removed {}", p.display())?;
        }
        Ok(())
    }
}
