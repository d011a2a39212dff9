//! Inspection without opening the log: who holds the lock, and what the segment
//! headers say. Safe to use while another process writes the log (it reads header
//! bytes with `pread` and maps nothing; the values may be a moment old).

use std::path::{Path, PathBuf};

use crate::Lsn;
use crate::error::{Error, IoOp, Result};
use crate::format::{self, HeaderRead, PAGE_BYTES};
use crate::sys::{Env, LockMode};
use crate::wal::recovery::parse_segment_name;

/// Whether a process holds the log in `dir` open for writing, and its pid when it
/// recorded one. Takes and releases a shared lock to find out; creates nothing.
pub fn lock_holder(dir: impl AsRef<Path>) -> Result<Option<Option<u32>>> {
    let dir = dir.as_ref();
    let env = Env::default();
    match env
        .storage
        .try_lock_dir(dir, LockMode::Shared)
        .map_err(|e| Error::io(IoOp::Lock, dir, e))?
    {
        Some(_guard) => Ok(None),
        None => Ok(Some(env.storage.read_lock_owner(dir))),
    }
}

/// What one segment file's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentHeaderInfo {
    /// The file.
    pub path: PathBuf,
    /// Sequence number from the file name.
    pub seq: u64,
    /// File size.
    pub file_bytes: u64,
    /// The current header, or why there is none.
    pub header: std::result::Result<HeaderFields, String>,
}

/// Fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderFields {
    /// Sequence number in the header.
    pub seq: u64,
    /// First LSN (`Lsn(0)` while unassigned).
    pub base_lsn: Lsn,
    /// Epoch of this use of the file.
    pub epoch: u32,
    /// Size the header declares.
    pub segment_bytes: u64,
    /// Where the segment was sealed, if it was.
    pub sealed_end: Option<u64>,
    /// The file was recycled.
    pub recycled: bool,
}

/// The header of every segment file in `dir`, oldest first.
pub fn segment_headers(dir: impl AsRef<Path>) -> Result<Vec<SegmentHeaderInfo>> {
    let dir = dir.as_ref();
    let env = Env::default();
    let mut names: Vec<(u64, String)> = env
        .storage
        .list_dir(dir)
        .map_err(|e| Error::io(IoOp::List, dir, e))?
        .into_iter()
        .filter_map(|n| parse_segment_name(&n).map(|s| (s, n)))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for (seq, name) in names {
        let path = dir.join(name);
        let file = env
            .storage
            .open_file(&path, false)
            .map_err(|e| Error::io(IoOp::Open, &path, e))?;
        let file_bytes = file.len().map_err(|e| Error::io(IoOp::Stat, &path, e))?;
        let mut page = vec![0u8; usize::try_from(PAGE_BYTES).unwrap_or(4096)];
        let header = if file_bytes < PAGE_BYTES {
            Err(format!("{file_bytes} bytes, shorter than a header page"))
        } else {
            file.read_at(0, &mut page)
                .map_err(|e| Error::io(IoOp::Read, &path, e))?;
            match format::read_header(&page) {
                HeaderRead::Valid(m, _) => Ok(HeaderFields {
                    seq: m.seq,
                    base_lsn: Lsn(m.base_lsn),
                    epoch: m.epoch,
                    segment_bytes: m.segment_bytes,
                    sealed_end: (m.seal_epoch != 0).then_some(m.sealed_end),
                    recycled: m.recycled(),
                }),
                HeaderRead::Empty => Err("header never written".into()),
                HeaderRead::Version(v) => Err(format!("format version {v}")),
                HeaderRead::Damaged(d) => Err(format!("damaged header ({d:?})")),
            }
        };
        out.push(SegmentHeaderInfo {
            path,
            seq,
            file_bytes,
            header,
        });
    }
    Ok(out)
}

/// Every checkpoint file in `dir`, newest first, each verified in full (header, size
/// against the header before mapping, payload checksum), without opening the log: for
/// a log that cannot be opened. Takes a shared lock (refused with
/// [`Error::Locked`] while a writer has the log open).
pub fn checkpoint_files(dir: impl AsRef<Path>) -> Result<Vec<crate::CheckpointFileInfo>> {
    let dir = dir.as_ref();
    let env = Env::default();
    let guard = env
        .storage
        .try_lock_dir(dir, LockMode::Shared)
        .map_err(|e| Error::io(IoOp::Lock, dir, e))?;
    let Some(guard) = guard else {
        return Err(Error::Locked {
            dir: dir.to_path_buf(),
            pid: env.storage.read_lock_owner(dir),
        });
    };
    let lock = std::sync::Arc::new(crate::wal::segment::LockHold {
        _guard: Some(guard),
    });
    let (listed, _) = crate::checkpoint::list(&env, dir)?;
    Ok(listed
        .into_iter()
        .map(|l| {
            let file_bytes = env
                .storage
                .open_file(&l.path, false)
                .and_then(|f| f.len())
                .unwrap_or(0);
            let problem = crate::checkpoint::load(&env, &l, &lock).err();
            crate::CheckpointFileInfo {
                lsn: Lsn(l.lsn),
                path: l.path,
                file_bytes,
                problem,
            }
        })
        .collect())
}
