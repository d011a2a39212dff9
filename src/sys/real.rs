//! The real file system: `std::fs`, `fallocate` through rustix, `flock` through fs2,
//! `mmap`/`msync` through memmap2.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::ptr::NonNull;

use memmap2::{Advice, MmapOptions, MmapRaw, UncheckedAdvice};
use rustix::fs::FallocateFlags;

use super::mapping::{Mapping, MappingBackend};
use super::{DirLock, LockMode, Storage, StorageFile};

/// Name of the file holding the lock holder's pid.
pub(crate) const LOCK_OWNER_FILE: &str = "LOCK";

/// The real file system.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RealStorage;

struct RealLock {
    _dir: File,
}

impl DirLock for RealLock {}

impl Drop for RealLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the flock; unlocking first makes the release
        // independent of any descriptor a child process might have inherited.
        let _ = fs2::FileExt::unlock(&self._dir);
    }
}

struct RealFile {
    file: File,
}

struct RealMapping {
    map: MmapRaw,
}

impl MappingBackend for RealMapping {
    fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.flush_range(offset, len)
    }

    fn prefault(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.advise_range(Advice::PopulateWrite, offset, len)
    }

    fn release(&self, offset: usize, len: usize) -> io::Result<()> {
        // SAFETY: `map_raw` and `map_raw_read_only` map the file shared. For a shared
        // file mapping `MADV_DONTNEED` only removes page-table entries: the contents
        // live in the page cache (a dirty page stays dirty), so any later access reads
        // the same bytes, including through slices that are alive meanwhile. (It would
        // discard data only in a private mapping, which the engine never creates.)
        #[expect(unsafe_code, reason = "MADV_DONTNEED has no safe wrapper in memmap2")]
        unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len)
        }
    }
}

impl Storage for RealStorage {
    fn name(&self) -> &'static str {
        "real"
    }

    fn try_lock_dir(&self, dir: &Path, mode: LockMode) -> io::Result<Option<Box<dyn DirLock>>> {
        // The lock is an flock on the directory itself, so taking it creates nothing.
        let handle = File::open(dir)?;
        let result = match mode {
            LockMode::Exclusive => fs2::FileExt::try_lock_exclusive(&handle),
            LockMode::Shared => fs2::FileExt::try_lock_shared(&handle),
        };
        match result {
            Ok(()) => Ok(Some(Box::new(RealLock { _dir: handle }))),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_lock_owner(&self, dir: &Path, pid: u32) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(LOCK_OWNER_FILE))?;
        writeln!(f, "{pid}")
    }

    fn read_lock_owner(&self, dir: &Path) -> Option<u32> {
        let mut s = String::new();
        File::open(dir.join(LOCK_OWNER_FILE))
            .ok()?
            .take(32)
            .read_to_string(&mut s)
            .ok()?;
        s.trim().parse().ok()
    }

    fn dir_exists(&self, path: &Path) -> io::Result<bool> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "exists and is not a directory",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_file(&self, path: &Path, len: u64) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        allocate(&file, len)?;
        Ok(Box::new(RealFile { file }))
    }

    fn open_file(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Reserves every block of the first `len` bytes, so the file is never sparse.
///
/// `fallocate` is called through rustix because `fs2::FileExt::allocate` reports a
/// stale errno on failure, which would turn `ENOSPC` into a misleading error. File
/// systems without `fallocate` get the blocks by writing zeroes.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            write_zeroes(file, len)
        }
        Err(e) => Err(e.into()),
    }
}

fn write_zeroes(file: &File, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from((len - at).min(1 << 20)).unwrap_or(1 << 20);
        file.write_all_at(chunk.get(..n).unwrap_or(&chunk), at)?;
        at += n as u64;
    }
    file.sync_data()
}

impl StorageFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn map(&self, len: usize, writable: bool) -> io::Result<Mapping> {
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable {
            opts.map_raw(&self.file)?
        } else {
            opts.map_raw_read_only(&self.file)?
        };
        let ptr = NonNull::new(map.as_mut_ptr())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        let mapped_len = map.len();
        // SAFETY: `ptr` and `mapped_len` describe the mapping owned by `map`, which moves
        // into the backend and is unmapped only when the `Mapping` drops. The file is
        // never shrunk while mapped (the directory lock keeps other mmlog handles out,
        // and the engine never truncates a mapped file).
        #[expect(unsafe_code, reason = "handing the mapping to the engine")]
        let mapping =
            unsafe { Mapping::new(ptr, mapped_len, writable, Box::new(RealMapping { map })) };
        Ok(mapping)
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn data_end(&self) -> io::Result<u64> {
        use rustix::fs::SeekFrom;
        let len = self.file.metadata()?.len();
        // Walk data extents with SEEK_DATA/SEEK_HOLE; unwritten (fallocated) extents
        // without cached pages are holes. Any error: assume data everywhere.
        let mut end = 0u64;
        let mut at = 0u64;
        while at < len {
            let data = match rustix::fs::seek(&self.file, SeekFrom::Data(at)) {
                Ok(d) => d,
                Err(e) if e == rustix::io::Errno::NXIO => break,
                Err(_) => return Ok(len),
            };
            let hole = match rustix::fs::seek(&self.file, SeekFrom::Hole(data)) {
                Ok(h) => h,
                Err(_) => return Ok(len),
            };
            if hole <= data {
                return Ok(len);
            }
            end = hole.min(len);
            at = hole;
        }
        Ok(end)
    }

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.sync_file_range(offset, len, libc::SYNC_FILE_RANGE_WRITE) {
            // Out of range for the call: a hint, so nothing to do.
            None => Ok(()),
            Some(r) => r,
        }
    }

    fn wait_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        // With `WAIT_AFTER` alone, the kernel waits for the range's write-back and then
        // checks (and advances) this open file's write-back error sequence.
        match self.sync_file_range(offset, len, libc::SYNC_FILE_RANGE_WAIT_AFTER) {
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write-back range out of bounds",
            )),
            Some(r) => r,
        }
    }
}

impl RealFile {
    /// `sync_file_range(2)` with `flags`; `None` when the range does not fit its types.
    fn sync_file_range(
        &self,
        offset: u64,
        len: u64,
        flags: libc::c_uint,
    ) -> Option<io::Result<()>> {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return None;
        };
        // SAFETY: `sync_file_range` only reads its integer arguments; the descriptor is
        // owned by `self.file` and open for the duration of the call.
        #[expect(unsafe_code, reason = "libc call without a safe wrapper")]
        let rc = unsafe { libc::sync_file_range(self.file.as_raw_fd(), off, n, flags) };
        Some(if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        })
    }
}
