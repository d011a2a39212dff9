//! The machine limits benchmarks compare mmlog with, measured the same way the engine
//! works (preallocated, memory-mapped files) but without anything the engine adds.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoOp, Result};
use crate::format::{self, PAGE_BYTES, SEGMENT_DATA_OFFSET};
use crate::sys::{Env, Mapping};

fn scratch(
    dir: &Path,
    name: &str,
    len: u64,
    prefault: bool,
) -> Result<(std::path::PathBuf, Mapping)> {
    let env = Env::default();
    let path = dir.join(name);
    let _ = env.storage.remove_file(&path);
    let len = len.next_multiple_of(PAGE_BYTES).max(PAGE_BYTES);
    let file = env
        .storage
        .create_file(&path, len)
        .map_err(|e| Error::io(IoOp::Create, &path, e))?;
    file.sync_data()
        .map_err(|e| Error::io(IoOp::SyncFile, &path, e))?;
    let map_len = usize::try_from(len).map_err(|_| Error::InvalidArgument("too large".into()))?;
    let map = file
        .map(map_len, true)
        .map_err(|e| Error::io(IoOp::Map, &path, e))?;
    if prefault {
        map.prefault(0, map_len);
    }
    Ok((path, map))
}

/// Time to copy `records` payloads of `record_bytes` each, back to back, into a fresh,
/// preallocated and pre-faulted file mapping in `dir`, then `msync` it all: the most a
/// log of unsynced appends plus one final sync could do.
pub fn memcpy_msync(dir: &Path, record_bytes: usize, records: u64) -> Result<Duration> {
    let total = (record_bytes as u64).saturating_mul(records);
    let (path, map) = scratch(dir, "limit-memcpy.tmp", total, true)?;
    let payload = vec![0xa5u8; record_bytes];
    let started = Instant::now();
    let mut at = 0usize;
    for _ in 0..records {
        // SAFETY: this scratch mapping is private to this function: nothing else reads
        // or writes it, and `write` checks the bounds.
        #[expect(unsafe_code, reason = "the limit is a raw copy into the mapping")]
        let ok = unsafe { map.write(at, &[&payload]) };
        if !ok {
            break;
        }
        at += record_bytes;
    }
    map.flush(0, at.max(1))
        .map_err(|e| Error::io(IoOp::Flush, &path, e))?;
    let took = started.elapsed();
    drop(map);
    let _ = std::fs::remove_file(&path);
    Ok(took)
}

/// Latency of `iterations` rounds of "copy `record_bytes` into the mapping, `msync` the
/// page it is on": the fastest a durable append could return.
pub fn msync_page(dir: &Path, record_bytes: usize, iterations: u64) -> Result<Vec<Duration>> {
    let total = (record_bytes as u64).saturating_mul(iterations);
    let (path, map) = scratch(dir, "limit-msync.tmp", total, true)?;
    let payload = vec![0x5au8; record_bytes];
    let page = usize::try_from(PAGE_BYTES).unwrap_or(4096);
    let mut out = Vec::with_capacity(usize::try_from(iterations).unwrap_or(0));
    let mut at = 0usize;
    for _ in 0..iterations {
        let started = Instant::now();
        // SAFETY: as in `memcpy_msync`: a private scratch mapping, bounds checked.
        #[expect(unsafe_code, reason = "the limit is a raw copy into the mapping")]
        let ok = unsafe { map.write(at, &[&payload]) };
        if !ok {
            break;
        }
        let start = at - at % page;
        let end = at + record_bytes;
        map.flush(start, end - start)
            .map_err(|e| Error::io(IoOp::Flush, &path, e))?;
        out.push(started.elapsed());
        at += record_bytes;
    }
    drop(map);
    let _ = std::fs::remove_file(&path);
    Ok(out)
}

/// Time to map every segment of the log in `dir` read-only and walk its frames,
/// checking each checksum and nothing else: the least a recovery scan must do.
/// Returns the time and the number of frames seen.
pub fn crc_scan(dir: &Path) -> Result<(Duration, u64)> {
    let env = Env::default();
    let mut names: Vec<String> = env
        .storage
        .list_dir(dir)
        .map_err(|e| Error::io(IoOp::List, dir, e))?
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    let started = Instant::now();
    let mut frames = 0u64;
    for name in names {
        let path = dir.join(name);
        let file = env
            .storage
            .open_file(&path, false)
            .map_err(|e| Error::io(IoOp::Open, &path, e))?;
        let len = file.len().map_err(|e| Error::io(IoOp::Stat, &path, e))?;
        let map_len =
            usize::try_from(len).map_err(|_| Error::InvalidArgument("too large".into()))?;
        let map = file
            .map(map_len, false)
            .map_err(|e| Error::io(IoOp::Map, &path, e))?;
        let start = usize::try_from(SEGMENT_DATA_OFFSET).unwrap_or(4096);
        // SAFETY: a read-only mapping of a file nothing writes while this runs (the
        // benchmark closed the log first).
        #[expect(unsafe_code, reason = "reading a read-only mapping")]
        let data = unsafe { map.bytes(start, map_len.saturating_sub(start)) }.unwrap_or_default();
        let mut pos = 0usize;
        while let Some(h) = data.get(pos..).and_then(format::peek_header) {
            let len = h.len.get() as usize;
            if h.epoch.get() == 0 {
                break;
            }
            let Some(frame) = data.get(pos + 4..pos + 32 + len) else {
                break;
            };
            if format::checksum(&[frame]) != h.crc.get() {
                break;
            }
            frames += 1;
            pos += (32 + len).next_multiple_of(8);
        }
    }
    Ok((started.elapsed(), frames))
}

/// Time to map the file at `path` read-only and checksum `len` bytes from `offset`:
/// the least loading a checkpoint must do.
pub fn crc_file(path: &Path, offset: u64, len: u64) -> Result<Duration> {
    let env = Env::default();
    let file = env
        .storage
        .open_file(path, false)
        .map_err(|e| Error::io(IoOp::Open, path, e))?;
    let total = file.len().map_err(|e| Error::io(IoOp::Stat, path, e))?;
    let map_len = usize::try_from(total).map_err(|_| Error::InvalidArgument("too large".into()))?;
    let started = Instant::now();
    let map = file
        .map(map_len, false)
        .map_err(|e| Error::io(IoOp::Map, path, e))?;
    let (Ok(start), Ok(n)) = (usize::try_from(offset), usize::try_from(len)) else {
        return Err(Error::InvalidArgument("range too large".into()));
    };
    // SAFETY: a read-only mapping of a file nothing writes while this runs.
    #[expect(unsafe_code, reason = "reading a read-only mapping")]
    let data = unsafe { map.bytes(start, n) }.unwrap_or_default();
    std::hint::black_box(format::checksum(&[data]));
    Ok(started.elapsed())
}
