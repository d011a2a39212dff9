//! Checkpoints: memory-mapped snapshots of the user's state, tagged with the LSN they
//! cover.
//!
//! Write protocol (DESIGN.md §4.9): create `checkpoint-L.ckpt.tmp` at its final size
//! (allocated), fill the payload through the mapping, checksum it, write the header,
//! `fdatasync`, rename to `checkpoint-L.ckpt`, sync the directory. A checkpoint file is
//! never written again after the rename; retention removes old ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Lsn;
use crate::error::{Error, IoOp, Result};
use crate::format::{
    CHECKPOINT_DATA_OFFSET, CheckpointHeaderError, CheckpointMeta, Checksum, PAGE_BYTES, checksum,
};
use crate::sys::{Env, Mapping, Step};
use crate::wal::segment::LockHold;

/// File name of the checkpoint covering `lsn`.
pub(crate) fn file_name(lsn: u64) -> String {
    format!("checkpoint-{lsn:020}.ckpt")
}

/// The LSN in a checkpoint file name.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a leftover temporary checkpoint.
pub(crate) fn is_tmp_name(name: &str) -> bool {
    name.starts_with("checkpoint-") && name.ends_with(".ckpt.tmp")
}

/// A verified checkpoint, mapped read-only. Cheap to clone; keeps its mapping (and
/// the directory lock) alive while it lives.
#[derive(Clone)]
pub struct Checkpoint {
    inner: Arc<CheckpointFile>,
}

struct CheckpointFile {
    path: PathBuf,
    lsn: u64,
    payload_bytes: usize,
    map: Mapping,
    _lock: Arc<LockHold>,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.inner.path)
            .field("lsn", &self.inner.lsn)
            .field("len", &self.inner.payload_bytes)
            .finish()
    }
}

impl Checkpoint {
    /// The state covers every record up to and including this LSN.
    pub fn lsn(&self) -> Lsn {
        Lsn(self.inner.lsn)
    }

    /// The snapshot bytes, borrowed from the read-only mapping (checksum verified).
    pub fn data(&self) -> &[u8] {
        let start = usize::try_from(CHECKPOINT_DATA_OFFSET).unwrap_or(usize::MAX);
        // SAFETY: a checkpoint file is never written after it is renamed into place:
        // this process only maps it read-only (or keeps the mapping it filled before the
        // rename and never writes it again), and other processes are kept out by the
        // directory lock. Removal unlinks it; the mapping stays valid.
        #[expect(unsafe_code, reason = "borrowing an immutable mapped checkpoint")]
        let bytes = unsafe { self.inner.map.bytes(start, self.inner.payload_bytes) };
        bytes.unwrap_or_default()
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Why a checkpoint file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointRejection {
    /// Shorter than its header page.
    TooShort {
        /// File size.
        found: u64,
    },
    /// The header failed its checks.
    BadHeader(String),
    /// Written by a newer format version.
    UnsupportedVersion(u16),
    /// The LSN in the name and in the header differ.
    LsnMismatch {
        /// From the file name.
        name: u64,
        /// From the header.
        header: u64,
    },
    /// The file size disagrees with the declared payload length (detected before
    /// mapping).
    SizeMismatch {
        /// Size the header declares.
        expected: u64,
        /// Size on disk.
        found: u64,
    },
    /// The payload checksum does not match.
    PayloadChecksum,
    /// Valid, but the log no longer reaches back to it (it starts at `first_lsn`) or
    /// does not reach up to it (it ends at `last_lsn`).
    Unusable {
        /// First LSN in the log.
        first_lsn: Lsn,
        /// Last LSN in the log.
        last_lsn: Lsn,
    },
    /// It could not be read.
    Io(String),
}

impl fmt::Display for CheckpointRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointRejection::TooShort { found } => {
                write!(f, "{found} bytes, shorter than a checkpoint header")
            }
            CheckpointRejection::BadHeader(why) => write!(f, "bad header: {why}"),
            CheckpointRejection::UnsupportedVersion(v) => {
                write!(f, "format version {v} is newer than this build")
            }
            CheckpointRejection::LsnMismatch { name, header } => {
                write!(f, "name says LSN {name}, header says {header}")
            }
            CheckpointRejection::SizeMismatch { expected, found } => {
                write!(f, "file is {found} bytes, header declares {expected}")
            }
            CheckpointRejection::PayloadChecksum => f.write_str("payload checksum mismatch"),
            CheckpointRejection::Unusable {
                first_lsn,
                last_lsn,
            } => write!(
                f,
                "the log (LSN {first_lsn}..={last_lsn}) no longer connects to it"
            ),
            CheckpointRejection::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// One checkpoint file and whether it verifies, from [`Wal::checkpoint_files`](crate::Wal::checkpoint_files).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointFileInfo {
    /// The file.
    pub path: PathBuf,
    /// The LSN its name gives.
    pub lsn: Lsn,
    /// File size.
    pub file_bytes: u64,
    /// `None` when it verifies; otherwise why not.
    pub problem: Option<CheckpointRejection>,
}

/// A checkpoint recovery did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCheckpoint {
    /// The file.
    pub file: PathBuf,
    /// The LSN its name gives.
    pub lsn: Lsn,
    /// Why it was not used.
    pub reason: CheckpointRejection,
}

/// A checkpoint file as listed by [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub path: PathBuf,
    pub lsn: u64,
}

/// Checkpoint files of `dir`, newest first, and leftover temporary files.
pub(crate) fn list(env: &Env, dir: &Path) -> Result<(Vec<Listed>, Vec<PathBuf>)> {
    let names = env
        .storage
        .list_dir(dir)
        .map_err(|e| Error::io(IoOp::List, dir, e))?;
    let mut found = Vec::new();
    let mut tmp = Vec::new();
    for name in names {
        if let Some(lsn) = parse_name(&name) {
            found.push(Listed {
                path: dir.join(name),
                lsn,
            });
        } else if is_tmp_name(&name) {
            tmp.push(dir.join(name));
        }
    }
    found.sort_by_key(|l| std::cmp::Reverse(l.lsn));
    Ok((found, tmp))
}

/// Opens and verifies one checkpoint file: header, name, size (before mapping), then
/// the payload checksum.
pub(crate) fn load(
    env: &Env,
    listed: &Listed,
    lock: &Arc<LockHold>,
) -> std::result::Result<Checkpoint, CheckpointRejection> {
    let path = &listed.path;
    let io = |e: std::io::Error| CheckpointRejection::Io(e.to_string());
    let file = env.storage.open_file(path, false).map_err(io)?;
    let len = file.len().map_err(io)?;
    if len < PAGE_BYTES {
        return Err(CheckpointRejection::TooShort { found: len });
    }
    let mut header = [0u8; 64];
    file.read_at(0, &mut header).map_err(io)?;
    let meta = CheckpointMeta::decode(&header).map_err(|e| match e {
        CheckpointHeaderError::Version(v) => CheckpointRejection::UnsupportedVersion(v),
        CheckpointHeaderError::Magic => CheckpointRejection::BadHeader("bad magic".into()),
        CheckpointHeaderError::Checksum => {
            CheckpointRejection::BadHeader("header checksum mismatch".into())
        }
        CheckpointHeaderError::Field(why) => CheckpointRejection::BadHeader(why.into()),
    })?;
    if meta.lsn != listed.lsn {
        return Err(CheckpointRejection::LsnMismatch {
            name: listed.lsn,
            header: meta.lsn,
        });
    }
    let expected = meta.file_bytes().ok_or(CheckpointRejection::BadHeader(
        "payload length overflows".into(),
    ))?;
    if expected != len {
        return Err(CheckpointRejection::SizeMismatch {
            expected,
            found: len,
        });
    }
    let map_len = usize::try_from(len)
        .map_err(|_| CheckpointRejection::BadHeader("too large to map".into()))?;
    let payload_bytes = usize::try_from(meta.payload_bytes)
        .map_err(|_| CheckpointRejection::BadHeader("too large to map".into()))?;
    env.check(Step::CheckpointMap, path)
        .map_err(|e| CheckpointRejection::Io(e.to_string()))?;
    let map = file.map(map_len, false).map_err(io)?;
    let ckpt = Checkpoint {
        inner: Arc::new(CheckpointFile {
            path: path.clone(),
            lsn: meta.lsn,
            payload_bytes,
            map,
            _lock: Arc::clone(lock),
        }),
    };
    if checksum(&[ckpt.data()]) != meta.payload_crc {
        return Err(CheckpointRejection::PayloadChecksum);
    }
    Ok(ckpt)
}

/// Name of the helper thread (Linux keeps 15 bytes of a thread's name).
pub(crate) const PREFAULT_THREAD: &str = "mmlog-ckpt-pf";
/// Payloads from this size on get a helper thread that faults pages in ahead of the
/// caller's `fill`.
const PREFAULT_MIN_BYTES: usize = 8 << 20;
/// What the helper faults in per step (it checks whether `fill` is done between steps).
const PREFAULT_STEP_BYTES: usize = 2 << 20;
/// The payload is checksummed and handed to write-back in chunks of this size.
const WRITE_BEHIND_BYTES: usize = 8 << 20;

/// Sets the flag when dropped: on return and on unwinding alike.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Faults in `[start, start + len)` for writing, step by step, until done or `stop`.
fn prefault(map: &Mapping, start: usize, len: usize, stop: &AtomicBool) {
    let end = start.saturating_add(len);
    let mut at = start;
    while at < end && !stop.load(Ordering::Acquire) {
        let n = PREFAULT_STEP_BYTES.min(end - at);
        map.prefault(at, n);
        at += n;
    }
}

/// Writes the checkpoint covering `lsn`, with a payload of `len` bytes produced by
/// `fill` straight into the mapping. Durable (and renamed into place) when this
/// returns.
pub(crate) fn write<E>(
    env: &Env,
    dir: &Path,
    lsn: u64,
    len: u64,
    lock: &Arc<LockHold>,
    fill: impl FnOnce(&mut [u8]) -> std::result::Result<(), E>,
) -> Result<std::result::Result<Checkpoint, E>> {
    let path = dir.join(file_name(lsn));
    let tmp = dir.join(format!("{}.tmp", file_name(lsn)));
    let total = CHECKPOINT_DATA_OFFSET
        .checked_add(len)
        .ok_or_else(|| Error::InvalidArgument("checkpoint too large".into()))?;
    let (Ok(map_len), Ok(payload_bytes)) = (usize::try_from(total), usize::try_from(len)) else {
        return Err(Error::InvalidArgument(
            "checkpoint does not fit in memory".into(),
        ));
    };
    let _ = env.storage.remove_file(&tmp);
    env.check(Step::CheckpointCreate, &tmp)?;
    let file = env.op(Step::CheckpointCreate, &tmp, |s| s.create_file(&tmp, total))?;
    let result = (|| {
        env.check(Step::CheckpointMap, &tmp)?;
        let map = file
            .map(map_len, true)
            .map_err(|e| Error::io(IoOp::Map, &tmp, e))?;
        let start = usize::try_from(CHECKPOINT_DATA_OFFSET).unwrap_or(usize::MAX);
        // A second thread faults the mapping in ahead of `fill`, so the zeroing of
        // fresh pages is shared between two cores instead of all landing on the
        // caller's. It stops when `fill` returns or unwinds, and is joined before
        // anything else happens.
        let filled_or_failed = AtomicBool::new(false);
        let filled = std::thread::scope(|s| {
            let _done = SetOnDrop(&filled_or_failed);
            if env.background && payload_bytes >= PREFAULT_MIN_BYTES {
                // Without the helper `fill` faults every page in itself.
                let _ = std::thread::Builder::new()
                    .name(PREFAULT_THREAD.into())
                    .spawn_scoped(s, || {
                        prefault(&map, start, payload_bytes, &filled_or_failed);
                    });
            }
            // SAFETY: the temporary file was just created by this call and is mapped
            // only here; nothing else reads or writes it while `payload` lives (the
            // helper only asks the kernel to map pages in, which changes no byte).
            #[expect(unsafe_code, reason = "filling a fresh, private checkpoint mapping")]
            let payload = unsafe { map.bytes_mut(start, payload_bytes) }
                .ok_or_else(|| Error::InvalidArgument("checkpoint mapping too small".into()))?;
            Ok(fill(payload))
        })?;
        if let Err(e) = filled {
            return Ok(Err(e));
        }
        // SAFETY: as above; the mutable borrow has ended.
        #[expect(unsafe_code, reason = "reading back the private checkpoint mapping")]
        let payload = unsafe { map.bytes(start, payload_bytes) }.unwrap_or_default();
        // Checksum the payload a chunk at a time, and write each chunk behind: unmapped
        // first (so its write-back need not write-protect every page, one interrupt of
        // each core running the process per page), then handed to write-back, so the
        // disk works while the rest is checksummed and the sync below waits for less.
        // Both are hints that change no byte; the sync makes it all durable.
        let mut crc = Checksum::new();
        let mut done = 0usize;
        for chunk in payload.chunks(WRITE_BEHIND_BYTES) {
            crc.update(chunk);
            map.release(start + done, chunk.len());
            let _ = file.start_writeback((start + done) as u64, chunk.len() as u64);
            done += chunk.len();
        }
        let meta = CheckpointMeta {
            lsn,
            payload_bytes: len,
            payload_crc: crc.finish(),
            created_unix_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        };
        file.write_at(0, &meta.encode())
            .map_err(|e| Error::io(IoOp::Write, &tmp, e))?;
        env.op(Step::CheckpointSync, &tmp, |_| file.sync_data())?;
        env.op(Step::CheckpointRename, &tmp, |s| s.rename(&tmp, &path))?;
        Ok(Ok(Checkpoint {
            inner: Arc::new(CheckpointFile {
                path: path.clone(),
                lsn,
                payload_bytes,
                map,
                _lock: Arc::clone(lock),
            }),
        }))
    })();
    match result {
        Ok(Ok(ckpt)) => {
            // The rename is durable only once the directory is synced. If that fails,
            // the checkpoint may or may not survive a crash: report the error, and the
            // caller keeps the older checkpoints (and the log they need).
            env.op(Step::DirSync, dir, |s| s.sync_dir(dir))?;
            Ok(Ok(ckpt))
        }
        other => {
            let _ = env.storage.remove_file(&tmp);
            other
        }
    }
}
