//! Page-cache control for the cold recovery row: evict a directory's files without
//! root and without touching anyone else's cache (no `drop_caches`), then measure how
//! much of them is still resident.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Bytes of a directory's files that are in the page cache.
#[derive(Debug, Default, Clone, Copy)]
pub struct Residency {
    pub resident_bytes: u64,
    pub total_bytes: u64,
}

impl Residency {
    /// Resident fraction (0 for an empty directory).
    pub fn fraction(self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.resident_bytes as f64 / self.total_bytes as f64
        }
    }
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("cache: read_dir") {
            let entry = entry.expect("cache: dir entry");
            let kind = entry.file_type().expect("cache: file type");
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Writes back and evicts every file under `dir` from the page cache
/// (`fdatasync` then `posix_fadvise(POSIX_FADV_DONTNEED)`: dirty pages cannot be
/// dropped, so they are written first), and returns what is still resident after.
pub fn evict_dir(dir: &Path) -> Residency {
    for path in files(dir) {
        let file = File::open(&path).expect("cache: open");
        file.sync_data().expect("cache: fdatasync");
        // SAFETY: plain syscall on a file descriptor that `file` owns for the duration
        // of the call; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "cache: posix_fadvise failed on {}", path.display());
    }
    residency(dir)
}

/// How much of the files under `dir` is in the page cache, by `mincore` on a
/// read-only mapping of each (mapping does not fault pages in; `mincore` only looks).
pub fn residency(dir: &Path) -> Residency {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).expect("page size");
    let mut total = Residency::default();
    for path in files(dir) {
        let file = File::open(&path).expect("cache: open");
        let len = file.metadata().expect("cache: metadata").len();
        if len == 0 {
            continue;
        }
        let map_len = usize::try_from(len).expect("file fits the address space");
        let pages = usize::try_from(len.div_ceil(page)).expect("page count fits usize");
        let mut vec = vec![0u8; pages];
        // SAFETY: a fresh shared read-only mapping of an open file, at an address the
        // kernel chooses; it is only passed to mincore and unmapped below, never read.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "cache: mmap {}", path.display());
        // SAFETY: `addr..addr+map_len` is the mapping made above; `vec` has one byte per
        // page of it, as mincore requires.
        let rc = unsafe { libc::mincore(addr, map_len, vec.as_mut_ptr()) };
        // SAFETY: unmaps exactly the mapping made above, which nothing references.
        unsafe { libc::munmap(addr, map_len) };
        assert_eq!(rc, 0, "cache: mincore {}", path.display());
        let resident_pages = vec.iter().filter(|&&b| b & 1 == 1).count() as u64;
        total.resident_bytes += (resident_pages * page).min(len);
        total.total_bytes += len;
    }
    total
}

/// Flushes the dirty pages of the file system holding `dir` (`syncfs`), so that one
/// run's write-back does not land in the next run's timing.
pub fn settle(dir: &Path) {
    let handle = File::open(dir).expect("cache: open dir");
    // SAFETY: plain syscall on a descriptor `handle` owns for the duration of the call.
    let rc = unsafe { libc::syncfs(handle.as_raw_fd()) };
    assert_eq!(rc, 0, "cache: syncfs {}", dir.display());
}
