//! A simulated disk for crash tests: files live in memory, and a "power cut" keeps
//! what was synced and, for every page written since, keeps it, drops it, or tears it
//! sector by sector, from a seed. Directory entries (creations, renames, removals)
//! survive only up to a random point after the last directory sync, in order, as a
//! journaling file system would keep a prefix of its metadata operations.
//!
//! What each operation persists:
//! - `msync` of a range (`Mapping::flush`) and `fdatasync` (`sync_data`): the file's
//!   bytes in that range (or all of them) and its size;
//! - `fsync` of a directory: every pending entry change in that directory;
//! - nothing else (`pwrite`, stores through a mapping, `rename`, `remove` are volatile
//!   until synced).
//!
//! The memory behind a mapping is the file's current bytes, as the page cache is for a
//! real file; writes through it are seen by `read_at` at once. A flush copies bytes
//! another thread may be writing (past what the engine published); like real page
//! write-back, it may then persist half-written bytes there, which the engine never
//! claims durable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::mapping::{Mapping, MappingBackend};
use super::{DirLock, Env, LockMode, Storage, StorageFile};

const PAGE: usize = 4096;
const SECTOR: usize = 512;

/// A file's bytes: current (the page cache) and durable (the platter).
struct SimFile {
    /// Current bytes, at a fixed address for the file's life (mappings point here).
    mem: NonNull<u8>,
    len: usize,
    durable: Mutex<Durable>,
}

#[derive(Clone)]
struct Durable {
    data: Vec<u8>,
    /// The size the disk knows (0 until the first sync).
    len: usize,
}

#[expect(
    unsafe_code,
    reason = "the simulated page cache is shared like a real one"
)]
// SAFETY: `mem` is owned by the `SimFile` (allocated in `new`, freed in `drop`), and
// every access goes through `copy_in`/`copy_out` or a `Mapping`, whose users uphold
// the mapping contract; `durable` is behind a mutex.
unsafe impl Send for SimFile {}
#[expect(
    unsafe_code,
    reason = "the simulated page cache is shared like a real one"
)]
// SAFETY: as for `Send`.
unsafe impl Sync for SimFile {}

impl SimFile {
    fn new(bytes: Vec<u8>, durable_len: usize) -> Arc<SimFile> {
        let len = bytes.len();
        let durable = Durable {
            data: bytes.clone(),
            len: durable_len,
        };
        let boxed: Box<[u8]> = bytes.into_boxed_slice();
        let mem = NonNull::new(Box::into_raw(boxed).cast::<u8>()).unwrap_or(NonNull::dangling());
        Arc::new(SimFile {
            mem,
            len,
            durable: Mutex::new(durable),
        })
    }

    fn durable(&self) -> MutexGuard<'_, Durable> {
        self.durable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_bounds(&self, offset: usize, len: usize) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "past the end of the file",
            )),
        }
    }

    fn copy_in(&self, offset: usize, bytes: &[u8]) -> io::Result<()> {
        self.in_bounds(offset, bytes.len())?;
        // SAFETY: in bounds of the allocation (checked above); `bytes` is ordinary
        // memory and cannot overlap it.
        #[expect(unsafe_code, reason = "writing the simulated page cache")]
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.mem.as_ptr().add(offset),
                bytes.len(),
            );
        }
        Ok(())
    }

    fn copy_out(&self, offset: usize, out: &mut [u8]) -> io::Result<()> {
        self.in_bounds(offset, out.len())?;
        // SAFETY: in bounds (checked above); `out` is ordinary memory.
        #[expect(unsafe_code, reason = "reading the simulated page cache")]
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.mem.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        Ok(())
    }

    fn current(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        let _ = self.copy_out(0, &mut v);
        v
    }

    /// Persists `[offset, offset + len)`, widened to whole pages.
    fn persist(&self, offset: usize, len: usize) -> io::Result<()> {
        let start = offset - offset % PAGE;
        let end = offset
            .saturating_add(len)
            .next_multiple_of(PAGE)
            .min(self.len);
        let mut d = self.durable();
        if let Some(dst) = d.data.get_mut(start..end) {
            self.copy_out(start, dst)?;
        }
        d.len = self.len;
        Ok(())
    }

    /// What survives a power cut: synced bytes, and each page written since kept,
    /// lost, or torn sector by sector.
    fn after_power_cut(&self, rng: &mut Rng) -> Vec<u8> {
        let d = self.durable().clone();
        let current = self.current();
        let mut out = d.data;
        for (page, (new, old)) in current.chunks(PAGE).zip(out.chunks_mut(PAGE)).enumerate() {
            let _ = page;
            if new == old {
                continue;
            }
            match rng.below(3) {
                0 => old.copy_from_slice(new),
                1 => {}
                _ => {
                    for (ns, os) in new.chunks(SECTOR).zip(old.chunks_mut(SECTOR)) {
                        if rng.below(2) == 0 {
                            os.copy_from_slice(ns);
                        }
                    }
                }
            }
        }
        out.truncate(d.len);
        out
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.mem.as_ptr(), self.len);
        // SAFETY: `mem` came from `Box::into_raw` of a boxed slice of `len` bytes in
        // `new`, and nothing uses it after the last `Arc` (mappings hold one) is gone.
        #[expect(unsafe_code, reason = "freeing the simulated page cache")]
        drop(unsafe { Box::from_raw(slice) });
    }
}

struct SimMapping {
    file: Arc<SimFile>,
}

impl MappingBackend for SimMapping {
    fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        self.file.persist(offset, len)
    }

    fn prefault(&self, _offset: usize, _len: usize) -> io::Result<()> {
        Ok(())
    }

    fn release(&self, _offset: usize, _len: usize) -> io::Result<()> {
        Ok(())
    }
}

struct SimHandle {
    file: Arc<SimFile>,
}

impl StorageFile for SimHandle {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.len as u64)
    }

    fn map(&self, len: usize, writable: bool) -> io::Result<Mapping> {
        if len > self.file.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mapping past the end",
            ));
        }
        // SAFETY: `mem` is valid for `file.len >= len` bytes for as long as the `Arc`
        // in the backend keeps the file alive, and it never moves or shrinks.
        #[expect(unsafe_code, reason = "handing the simulated page cache to the engine")]
        let m = unsafe {
            Mapping::new(
                self.file.mem,
                len,
                writable,
                Box::new(SimMapping {
                    file: Arc::clone(&self.file),
                }),
            )
        };
        Ok(m)
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.copy_in(to_usize(offset)?, bytes)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.copy_out(to_usize(offset)?, buf)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.persist(0, self.file.len)
    }

    fn data_end(&self) -> io::Result<u64> {
        // The end of the last page holding a non-zero byte: what a file system that
        // tracks written extents per page would report.
        let current = self.file.current();
        let last = current.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Ok(last.next_multiple_of(PAGE).min(self.file.len) as u64)
    }

    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    fn wait_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        // Write-back here is a copy that cannot fail; flush failures are injected at
        // `Step::Flush` instead.
        Ok(())
    }
}

fn to_usize(v: u64) -> io::Result<usize> {
    usize::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

/// A directory entry change not yet made durable by a directory sync.
#[derive(Clone)]
enum NsOp {
    Create(PathBuf, Arc<SimFile>),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
}

impl NsOp {
    fn dirs(&self) -> Vec<&Path> {
        fn parent(p: &Path) -> &Path {
            p.parent().unwrap_or(Path::new(""))
        }
        match self {
            NsOp::Create(p, _) | NsOp::Remove(p) => vec![parent(p)],
            NsOp::Rename(a, b) => vec![parent(a), parent(b)],
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, Arc<SimFile>>) {
        match self {
            NsOp::Create(p, f) => {
                names.insert(p.clone(), Arc::clone(f));
            }
            NsOp::Rename(a, b) => {
                if let Some(f) = names.remove(a) {
                    names.insert(b.clone(), f);
                }
            }
            NsOp::Remove(p) => {
                names.remove(p);
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, Arc<SimFile>>,
    durable_names: BTreeMap<PathBuf, Arc<SimFile>>,
    pending: Vec<NsOp>,
    locks: BTreeMap<PathBuf, (bool, u32)>,
    owners: BTreeMap<PathBuf, u32>,
    power_cuts: u64,
}

/// A simulated disk. Build one, pass [`SimDisk::env`] in
/// [`Options::env`](crate::Options::env), run the workload, drop the log, call
/// [`SimDisk::power_cut`], and open the log again. Paths are names only: nothing
/// touches the real file system.
pub struct SimDisk {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("SimDisk")
            .field("files", &g.names.len())
            .field("pending_entry_changes", &g.pending.len())
            .field("power_cuts", &g.power_cuts)
            .finish()
    }
}

impl Default for SimDisk {
    fn default() -> SimDisk {
        SimDisk::new()
    }
}

/// What a power cut did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerCut {
    /// Directory entry changes that had not been synced.
    pub pending_entry_changes: usize,
    /// How many of them survived (a prefix).
    pub kept_entry_changes: usize,
    /// Files after the cut.
    pub files: usize,
}

impl SimDisk {
    /// An empty disk (every directory you use is created on demand by the engine).
    pub fn new() -> SimDisk {
        SimDisk {
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An [`Env`] whose storage is this disk.
    pub fn env(&self) -> Env {
        Env {
            storage: Arc::new(SimStorage {
                inner: Arc::clone(&self.inner),
            }),
            failpoints: None,
            sabotage: Default::default(),
            background: true,
        }
    }

    /// Cuts the power: every file keeps what was synced, each page written since is
    /// kept, lost or torn (per 512-byte sector), and a random prefix of the directory
    /// changes since the last directory sync survives; locks are released. Reproducible
    /// for a given seed and history. Drop (or close) every log on this disk first.
    pub fn power_cut(&self, seed: u64) -> PowerCut {
        let mut rng = Rng::new(seed);
        let mut g = self.lock();
        let pending = std::mem::take(&mut g.pending);
        let kept = usize::try_from(rng.below(pending.len() as u64 + 1)).unwrap_or(0);
        let mut names = std::mem::take(&mut g.durable_names);
        for op in pending.iter().take(kept) {
            op.apply(&mut names);
        }
        let mut after = BTreeMap::new();
        for (path, file) in names {
            let bytes = file.after_power_cut(&mut rng);
            let len = bytes.len();
            after.insert(path, SimFile::new(bytes, len));
        }
        let report = PowerCut {
            pending_entry_changes: pending.len(),
            kept_entry_changes: kept,
            files: after.len(),
        };
        g.names = after.clone();
        g.durable_names = after;
        g.locks.clear();
        g.owners.clear();
        g.power_cuts += 1;
        report
    }

    /// The current bytes of a file (what a process would read), if it exists.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.lock().names.get(path.as_ref()).map(|f| f.current())
    }

    /// Overwrites bytes of a file, current and durable alike (bit rot, byte surgery).
    pub fn corrupt(&self, path: impl AsRef<Path>, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let g = self.lock();
        let f = g
            .names
            .get(path.as_ref())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let at = to_usize(offset)?;
        f.copy_in(at, bytes)?;
        let mut d = f.durable();
        if let Some(dst) = d.data.get_mut(at..at.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
        Ok(())
    }

    /// Creates (or replaces) a file with these bytes, durable as if synced with its
    /// directory: for building a directory to open, byte for byte (fuzzing, fixtures).
    pub fn write_file(&self, path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
        let path = path.as_ref();
        let mut g = self.lock();
        if let Some(dir) = path.parent() {
            for a in dir.ancestors() {
                g.dirs.insert(a.to_path_buf());
            }
        }
        let file = SimFile::new(bytes.to_vec(), bytes.len());
        g.names.insert(path.to_path_buf(), Arc::clone(&file));
        g.durable_names.insert(path.to_path_buf(), file);
        Ok(())
    }

    /// Names of the files in `dir`, sorted.
    pub fn list(&self, dir: impl AsRef<Path>) -> Vec<String> {
        let dir = dir.as_ref();
        self.lock()
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    }
}

struct SimStorage {
    inner: Arc<Mutex<Inner>>,
}

impl SimStorage {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct SimLock {
    inner: Arc<Mutex<Inner>>,
    dir: PathBuf,
    exclusive: bool,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((ex, shared)) = g.locks.get_mut(&self.dir) {
            if self.exclusive {
                *ex = false;
            } else {
                *shared = shared.saturating_sub(1);
            }
            if !*ex && *shared == 0 {
                g.locks.remove(&self.dir);
            }
        }
    }
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl Storage for SimStorage {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn try_lock_dir(&self, dir: &Path, mode: LockMode) -> io::Result<Option<Box<dyn DirLock>>> {
        let mut g = self.lock();
        if !g.dirs.contains(dir) {
            return Err(not_found());
        }
        let entry = g.locks.entry(dir.to_path_buf()).or_insert((false, 0));
        let exclusive = mode == LockMode::Exclusive;
        let free = if exclusive {
            !entry.0 && entry.1 == 0
        } else {
            !entry.0
        };
        if !free {
            return Ok(None);
        }
        if exclusive {
            entry.0 = true;
        } else {
            entry.1 += 1;
        }
        Ok(Some(Box::new(SimLock {
            inner: Arc::clone(&self.inner),
            dir: dir.to_path_buf(),
            exclusive,
        })))
    }

    fn write_lock_owner(&self, dir: &Path, pid: u32) -> io::Result<()> {
        self.lock().owners.insert(dir.to_path_buf(), pid);
        Ok(())
    }

    fn read_lock_owner(&self, dir: &Path) -> Option<u32> {
        self.lock().owners.get(dir).copied()
    }

    fn dir_exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().dirs.contains(path))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.lock();
        for a in dir.ancestors() {
            g.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let g = self.lock();
        if !g.dirs.contains(dir) {
            return Err(not_found());
        }
        Ok(g.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create_file(&self, path: &Path, len: u64) -> io::Result<Box<dyn StorageFile>> {
        let mut g = self.lock();
        if g.names.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        if !path.parent().is_some_and(|d| g.dirs.contains(d)) {
            return Err(not_found());
        }
        let file = SimFile::new(vec![0u8; to_usize(len)?], 0);
        g.names.insert(path.to_path_buf(), Arc::clone(&file));
        g.pending
            .push(NsOp::Create(path.to_path_buf(), Arc::clone(&file)));
        Ok(Box::new(SimHandle { file }))
    }

    fn open_file(&self, path: &Path, _writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let g = self.lock();
        let file = g.names.get(path).cloned().ok_or_else(not_found)?;
        Ok(Box::new(SimHandle { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.lock();
        let file = g.names.remove(from).ok_or_else(not_found)?;
        g.names.insert(to.to_path_buf(), file);
        g.pending
            .push(NsOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut g = self.lock();
        g.names.remove(path).ok_or_else(not_found)?;
        g.pending.push(NsOp::Remove(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.lock();
        if !g.dirs.contains(dir) {
            return Err(not_found());
        }
        // Entry changes are applied in order; those touching other directories wait
        // for their own sync.
        let pending = std::mem::take(&mut g.pending);
        let mut durable = std::mem::take(&mut g.durable_names);
        let mut rest = Vec::new();
        for op in pending {
            if op.dirs().contains(&dir) {
                op.apply(&mut durable);
            } else {
                rest.push(op);
            }
        }
        g.durable_names = durable;
        g.pending = rest;
        Ok(())
    }
}

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x243f_6a88_85a3_08d3)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}
