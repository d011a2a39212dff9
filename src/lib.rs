//! mmlog: a memory-mapped, log-structured storage engine.
//!
//! The write-ahead log ([`Wal`]) is a directory of preallocated, memory-mapped segment
//! files holding checksummed records. Appends copy into the mapping; durability is a
//! per-log and per-call choice ([`Durability`]); recovery finds the valid prefix after
//! any crash and reports what it trimmed ([`RecoveryReport`]). The on-disk format and
//! the crash argument are in `DESIGN.md`.
//!
//! ```
//! use mmlog::{Options, Wal};
//!
//! let dir = tempfile::tempdir()?;
//! let (wal, _report) = Wal::open(dir.path(), Options::default())?;
//! let lsn = wal.append(b"first record")?;
//! assert_eq!(wal.read(lsn)?.payload(), b"first record");
//! wal.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::print_stdout, clippy::dbg_macro)]
#![deny(clippy::cast_possible_truncation, clippy::indexing_slicing)]

mod checkpoint;
mod crc;
mod error;
mod format;
mod lsn;
mod options;
mod store;
mod sys;
mod wal;

pub mod inspect;
#[cfg(feature = "raft")]
pub mod raft;
pub mod testing;

pub use sys::limits;

pub use checkpoint::{Checkpoint, CheckpointFileInfo, CheckpointRejection, RejectedCheckpoint};
pub use error::{CorruptionKind, Error, IoOp, Result};
pub use lsn::Lsn;
pub use options::{
    Durability, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, Options, RecoveryMode, RecoveryProgress,
};
pub use store::{StateMachine, Store, StoreOptions};
pub use sys::Env;
pub use wal::{
    Backup, DropReason, Dropped, DurableFuture, Iter, Record, RecoveryReport, RepairReport,
    SegmentInfo, Stats, Tail, Wal, repair,
};

/// The README's example, compiled and run as a doctest so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
