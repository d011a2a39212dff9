//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Lsn;

/// Result alias used throughout mmlog.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mmlog.
///
/// Corruption is its own variant and says where it was found; I/O errors keep their
/// source and say which operation failed on which path. Matching code should keep a
/// wildcard arm: variants are added as the engine grows.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    Io {
        /// What mmlog was doing.
        op: IoOp,
        /// The file or directory it was doing it to.
        path: PathBuf,
        /// The error the operating system reported.
        source: io::Error,
    },
    /// The file system is full (`ENOSPC`, or `EFBIG` when a file-size limit is hit).
    /// Nothing was acknowledged that is not on disk; appends can resume once space is
    /// freed.
    NoSpace {
        /// The file that could not be allocated or written.
        path: PathBuf,
        /// The error the operating system reported.
        source: io::Error,
    },
    /// Another handle holds the directory lock.
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// Process id written by the holder, when it could be read.
        pid: Option<u32>,
    },
    /// On-disk data failed a check. Nothing after the damage was returned.
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage inside `file`.
        offset: u64,
        /// What was wrong.
        kind: CorruptionKind,
    },
    /// A file was written by an unknown version of the format.
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version found in its header.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// A record (or batch) does not fit in one segment.
    RecordTooLarge {
        /// Bytes the record would occupy, header included.
        len: u64,
        /// The largest payload a single record may have with these options.
        max_payload_bytes: u64,
    },
    /// An earlier sync failed: the log refuses further appends and syncs until it is
    /// reopened and recovered (fail-stop; a failed sync is never retried).
    Poisoned {
        /// The error that poisoned the log.
        cause: Arc<Error>,
    },
    /// A [`StateMachine`](crate::StateMachine) could not restore its state from a
    /// checkpoint that passed every check (its format is not what the code expects).
    Restore {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// What the state machine reported.
        reason: String,
    },
    /// The [`Options`](crate::Options) failed validation.
    InvalidOptions(String),
    /// An argument is out of range for the log's current state.
    InvalidArgument(String),
    /// A write was attempted through a read-only handle.
    ReadOnly,
    /// The log was closed.
    Closed,
    /// The requested record is not in the log (purged, truncated, or not yet written).
    NotFound {
        /// The requested LSN.
        lsn: Lsn,
    },
}

/// The operation an [`Error::Io`] happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Taking or inspecting the directory lock.
    Lock,
    /// Creating a directory or a file.
    Create,
    /// Opening a file.
    Open,
    /// Reserving disk space (`fallocate`).
    Allocate,
    /// Mapping a file into memory.
    Map,
    /// Flushing a mapped range (`msync`).
    Flush,
    /// `fsync` of a file.
    SyncFile,
    /// `fsync` of a directory.
    SyncDir,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
    /// Listing a directory.
    List,
    /// Reading a file's metadata.
    Stat,
    /// Reading from a file.
    Read,
    /// Writing to a file.
    Write,
}

/// What a corruption check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file is not an mmlog file of the expected kind.
    BadMagic,
    /// A header's checksum does not match.
    HeaderChecksum,
    /// A header field has an impossible value.
    BadHeader(String),
    /// The file is shorter or longer than its header says.
    BadFileSize {
        /// Size declared by the header (or the minimum for the file kind).
        expected: u64,
        /// Size of the file on disk.
        found: u64,
    },
    /// The sequence number in a segment header disagrees with its file name.
    SequenceMismatch {
        /// From the file name.
        expected: u64,
        /// From the header.
        found: u64,
    },
    /// A segment between two existing ones is missing.
    MissingSegment {
        /// The missing sequence number.
        seq: u64,
    },
    /// A record's checksum does not match.
    Checksum,
    /// A record length runs past the end of its segment or its batch.
    BadLength,
    /// A record of a kind this version does not know, with a valid checksum.
    UnknownRecordKind(u8),
    /// A record that is valid in itself carries the wrong LSN.
    LsnGap {
        /// The LSN the log continues with.
        expected: Lsn,
        /// The LSN found.
        found: Lsn,
    },
    /// A hole (zeroed or torn space) in the log followed by valid records.
    Hole,
    /// Damage below the durable watermark: later records prove that this one had been
    /// synced, so it cannot be a torn write.
    BelowDurable,
    /// A record belongs to an earlier use of the segment.
    StaleEpoch,
    /// No valid checkpoint exists and the log it would need has been retired.
    NoUsableCheckpoint,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            IoOp::Lock => "lock",
            IoOp::Create => "create",
            IoOp::Open => "open",
            IoOp::Allocate => "allocate",
            IoOp::Map => "map",
            IoOp::Flush => "flush (msync)",
            IoOp::SyncFile => "fsync",
            IoOp::SyncDir => "fsync directory",
            IoOp::Rename => "rename",
            IoOp::Remove => "remove",
            IoOp::List => "list directory",
            IoOp::Stat => "stat",
            IoOp::Read => "read",
            IoOp::Write => "write",
        };
        f.write_str(s)
    }
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionKind::BadMagic => f.write_str("bad magic (not an mmlog file of this kind)"),
            CorruptionKind::HeaderChecksum => f.write_str("header checksum mismatch"),
            CorruptionKind::BadHeader(why) => write!(f, "bad header: {why}"),
            CorruptionKind::BadFileSize { expected, found } => {
                write!(f, "file is {found} bytes, header needs {expected}")
            }
            CorruptionKind::SequenceMismatch { expected, found } => write!(
                f,
                "segment header says sequence {found}, file name says {expected}"
            ),
            CorruptionKind::MissingSegment { seq } => write!(f, "segment {seq} is missing"),
            CorruptionKind::Checksum => f.write_str("record checksum mismatch"),
            CorruptionKind::BadLength => f.write_str("record length out of bounds"),
            CorruptionKind::UnknownRecordKind(k) => write!(f, "unknown record kind {k}"),
            CorruptionKind::LsnGap { expected, found } => {
                write!(f, "expected LSN {expected}, found {found}")
            }
            CorruptionKind::Hole => f.write_str("hole in the log followed by valid records"),
            CorruptionKind::BelowDurable => {
                f.write_str("damaged record below the durable watermark")
            }
            CorruptionKind::StaleEpoch => f.write_str("record from an earlier use of the segment"),
            CorruptionKind::NoUsableCheckpoint => {
                f.write_str("no valid checkpoint, and the log it needs is gone")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            Error::NoSpace { path, source } => {
                write!(f, "no space left for {}: {source}", path.display())
            }
            Error::Locked {
                dir,
                pid: Some(pid),
            } => {
                write!(f, "{} is locked by process {pid}", dir.display())
            }
            Error::Locked { dir, pid: None } => {
                write!(f, "{} is locked by another handle", dir.display())
            }
            Error::Corrupt { file, offset, kind } => {
                write!(
                    f,
                    "corruption in {} at byte {offset}: {kind}",
                    file.display()
                )
            }
            Error::UnsupportedVersion {
                file,
                found,
                supported,
            } => write!(
                f,
                "{} has format version {found}; this build reads up to {supported}",
                file.display()
            ),
            Error::RecordTooLarge {
                len,
                max_payload_bytes,
            } => write!(
                f,
                "record of {len} bytes does not fit in a segment (max payload {max_payload_bytes} bytes)"
            ),
            Error::Poisoned { cause } => {
                write!(
                    f,
                    "log poisoned by an earlier failed sync ({cause}); reopen it"
                )
            }
            Error::Restore { checkpoint, reason } => write!(
                f,
                "cannot restore the state from {}: {reason}",
                checkpoint.display()
            ),
            Error::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::ReadOnly => f.write_str("the log was opened read-only"),
            Error::Closed => f.write_str("the log is closed"),
            Error::NotFound { lsn } => write!(f, "no record with LSN {lsn}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::NoSpace { source, .. } => Some(source),
            Error::Poisoned { cause } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl Error {
    /// Wraps an I/O error, turning `ENOSPC`/`EFBIG`/`EDQUOT` into [`Error::NoSpace`].
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if is_no_space(&source) {
            return Error::NoSpace { path, source };
        }
        Error::Io { op, path, source }
    }

    /// Builds a corruption error.
    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset,
            kind,
        }
    }

    /// True for [`Error::Corrupt`] and [`Error::UnsupportedVersion`]: the data on disk is
    /// not what it should be (as opposed to the machine failing).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::UnsupportedVersion { .. }
        )
    }
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == libc_errno::ENOSPC || code == libc_errno::EFBIG || code == libc_errno::EDQUOT
    ) || e.kind() == io::ErrorKind::StorageFull
}

/// The errno values mmlog classifies, taken from rustix so no libc dependency is needed.
mod libc_errno {
    pub(super) const ENOSPC: i32 = rustix::io::Errno::NOSPC.raw_os_error();
    pub(super) const EFBIG: i32 = rustix::io::Errno::FBIG.raw_os_error();
    pub(super) const EDQUOT: i32 = rustix::io::Errno::DQUOT.raw_os_error();
}
