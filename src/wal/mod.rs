//! The write-ahead log.

mod ckpt;
mod maint;
mod meta;
mod notify;
pub(crate) mod reader;
pub(crate) mod recovery;
mod recycle;
mod repair;
pub(crate) mod report;
pub(crate) mod segment;
mod stats;
mod sync;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::Lsn;
use crate::error::{Error, IoOp, Result};
use crate::format::{SEGMENT_DATA_OFFSET, SEGMENT_RESET, SegmentMeta};
use crate::options::{Durability, Options};
use crate::sys::{Env, LockMode, Step};

pub use notify::DurableFuture;
pub use reader::{Iter, Record, Tail};
pub use repair::{Backup, RepairReport, repair};
pub use report::{DropReason, Dropped, RecoveryReport};
pub use stats::Stats;

use crate::checkpoint::{Checkpoint, CheckpointFileInfo};

use segment::{Cursor, LockHold, Segment, SegmentParts};

/// A segmented, memory-mapped write-ahead log.
///
/// `Wal` is `Send + Sync`: share it between threads with `Arc` (or scoped threads) and
/// append from all of them. Appends reserve their place under a short lock and copy and
/// checksum outside it; concurrent durable appends share one flush.
///
/// ```
/// use mmlog::{Durability, Lsn, Options, Wal};
///
/// let dir = tempfile::tempdir()?;
/// let (wal, report) = Wal::open(dir.path(), Options::default())?;
/// assert!(report.created);
///
/// let first = wal.append(b"hello")?; // durable: Options::durability is Sync
/// wal.append_with(b"fast", Durability::None)?; // in the mapping; survives a process crash
/// wal.append_batch(&[b"all", b"or", b"nothing"])?;
/// wal.sync()?;
///
/// let payloads: Vec<Vec<u8>> = wal
///     .iter_from(first)?
///     .map(|r| r.map(|r| r.payload().to_vec()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(payloads[0], b"hello");
/// assert_eq!(payloads.len(), 5);
/// wal.close()?;
///
/// let (wal, report) = Wal::open(dir.path(), Options::default())?;
/// assert!(report.clean_shutdown);
/// assert_eq!(wal.read(Lsn(2))?.payload(), b"fast");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Wal {
    shared: Arc<Shared>,
    maint: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("appended", &self.appended())
            .field("durable", &self.durable())
            .finish()
    }
}

/// Facts about one segment file, from [`Wal::segments`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Sequence number.
    pub seq: u64,
    /// Epoch of this use of the file.
    pub epoch: u32,
    /// First LSN it holds (or would hold, when empty).
    pub first_lsn: Lsn,
    /// Last LSN it holds (`first_lsn - 1` when empty).
    pub last_lsn: Lsn,
    /// Bytes of frames in it.
    pub bytes_used: u64,
    /// File size.
    pub size_bytes: u64,
    /// Sealed by a truncation or a trimmed tail.
    pub sealed: bool,
    /// Reused from a retired segment.
    pub recycled: bool,
}

/// Creates the directory if allowed and takes its lock (exclusive for a writer, shared
/// for read-only), before any file is read or changed.
pub(crate) fn lock_dir(dir: &Path, opts: &Options) -> Result<(PathBuf, Arc<LockHold>)> {
    let dir = dir.to_path_buf();
    let storage = opts.env.storage.as_ref();
    let read_only = opts.read_only;
    let exists = storage
        .dir_exists(&dir)
        .map_err(|e| Error::io(IoOp::Stat, &dir, e))?;
    if !exists {
        if read_only || !opts.create_if_missing {
            return Err(Error::io(
                IoOp::Open,
                &dir,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io(IoOp::Create, &dir, e))?;
    }
    let mode = if read_only {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let guard = storage
        .try_lock_dir(&dir, mode)
        .map_err(|e| Error::io(IoOp::Lock, &dir, e))?;
    let Some(guard) = guard else {
        return Err(Error::Locked {
            pid: storage.read_lock_owner(&dir),
            dir,
        });
    };
    if !read_only {
        storage
            .write_lock_owner(&dir, std::process::id())
            .map_err(|e| Error::io(IoOp::Lock, &dir, e))?;
    }
    Ok((
        dir,
        Arc::new(LockHold {
            _guard: Some(guard),
        }),
    ))
}

/// State shared by the handle, its background thread and its readers.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) env: Env,
    read_only: bool,
    lock: Mutex<Option<Arc<LockHold>>>,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<WriterState>,
    /// Last LSN whose record (and every earlier one) is published.
    appended: AtomicU64,
    /// Last LSN handed out (mirror of `WriterState::next_lsn - 1`, for waiters).
    reserved_hint: AtomicU64,
    pending_count: AtomicUsize,
    pending: Mutex<Vec<Done>>,
    waiters: AtomicUsize,
    notify_lock: Mutex<()>,
    notify_cv: Condvar,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    /// Wakes a gathering syncer when another thread enters `sync_to`.
    gather_cv: Condvar,
    /// Mirror of `SyncState::durable` for lock-free reads.
    durable: AtomicU64,
    poisoned: AtomicBool,
    next_epoch: AtomicU32,
    first_lsn: AtomicU64,
    maint: maint::Maint,
    closed: AtomicBool,
    /// Set once `release` has run: nothing can become durable any more (unlike
    /// `closed`, which is set before `close` makes the last appends durable).
    released: AtomicBool,
    stats: stats::Counters,
    opened_at_lsn: u64,
    checkpoints: Mutex<ckpt::CheckpointState>,
    /// Retired segment files kept for reuse.
    free: Mutex<Vec<PathBuf>>,
    /// Small named values kept beside the log.
    meta: meta::Meta,
    /// Futures and callbacks waiting for the durable watermark.
    watchers: notify::Watchers,
}

/// The writer's position; guarded by `Shared::writer`.
pub(crate) struct WriterState {
    active: Option<(Arc<Segment>, Cursor)>,
    next_lsn: u64,
    /// Offset from which the next frame gets a sparse index entry.
    index_next: u64,
    /// Offset past which the next frame wakes the background thread.
    nudge_next: u64,
    /// Frame bytes reserved through this handle.
    bytes_appended: u64,
    closed: bool,
}

/// A frame filled out of order, waiting for its predecessors.
pub(crate) struct Done {
    first: u64,
    last: u64,
    seg: Arc<Segment>,
    end: u64,
}

pub(crate) struct SyncState {
    durable: u64,
    /// Flushes running now (at most `sync::MAX_FLIGHTS`).
    flights: usize,
    /// An `exclusive` section runs: no flush starts.
    exclusive: bool,
    /// The appended watermark the newest flush started at covers; meaningful while
    /// `flights` > 0.
    covered: u64,
    /// Flushes started so far; each one's number is its ticket.
    tickets: u64,
    /// Tickets below this have ended and been credited to `durable`.
    credited: u64,
    /// Flushes that ended and wait to be credited, in no particular order.
    ended: Vec<sync::Ended>,
    /// Which flush slots a running flush holds.
    slot_busy: [bool; sync::MAX_FLIGHTS],
    poison: Option<Arc<Error>>,
    /// Truncations and resets so far.
    cut_gen: u64,
    /// Threads inside `sync_to`.
    waiting: usize,
    /// The LSN each thread inside `sync_to` waits for (one entry per thread).
    targets: Vec<u64>,
    /// How many threads were inside `sync_to` when the last flush ended: the writers
    /// the next flush may expect back (see `sync::Shared::gather`).
    peak: usize,
    /// How long the last flush took.
    last_flush: std::time::Duration,
    /// A syncer waits on `gather_cv` for more records before flushing.
    gathering: bool,
    /// Callers of `exclusive` waiting for the flush in flight to end.
    exclusive_waiting: usize,
    /// The cuts made while a thread was inside `sync_to`, oldest first; cleared when
    /// the last one leaves.
    cuts: Vec<sync::Cut>,
    /// Threads asleep on `sync_cv` in `sync_to` (tests stage races with it).
    #[cfg(test)]
    parked: usize,
}

impl Wal {
    /// Opens the log in `dir` (creating it if allowed), recovers it, and returns it
    /// ready to append, with a report of what recovery found.
    ///
    /// The directory is locked before any file is read: a second open, from this
    /// process or another, fails with [`Error::Locked`] and touches nothing.
    ///
    /// ```
    /// use mmlog::{Options, RecoveryMode, Wal};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let opts = Options {
    ///     segment_size_bytes: 64 * 1024,
    ///     recovery_mode: RecoveryMode::TolerateCorruptedTail,
    ///     ..Options::default()
    /// };
    /// let (wal, report) = Wal::open(dir.path(), opts.clone())?;
    /// println!("{report}");
    /// assert!(matches!(
    ///     Wal::open(dir.path(), opts),
    ///     Err(mmlog::Error::Locked { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<(Wal, RecoveryReport)> {
        let started = Instant::now();
        opts.validate()?;
        let (dir, lock) = lock_dir(dir.as_ref(), &opts)?;
        Wal::open_locked(dir, opts, lock, started, None)
    }

    /// Opens the log like [`Wal::open`] and replays it in the same pass: `replay` is
    /// called with the LSN and payload of every record from `from` on, in LSN order,
    /// while recovery verifies it, so the log is read once instead of twice (a
    /// recovery followed by [`Wal::for_each_from`] reads every byte twice).
    ///
    /// `replay` sees exactly the records the opened log holds from `from` on (with
    /// the same gaps as a reader in [`crate::RecoveryMode::SkipCorrupted`]), and it
    /// sees them before the open has finished: when the open then fails, it returns
    /// the error and whatever `replay` built from them must be thrown away.
    ///
    /// ```
    /// use mmlog::{Lsn, Options, Wal};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let opts = Options { segment_size_bytes: 64 * 1024, ..Options::default() };
    /// let (wal, _) = Wal::open(dir.path(), opts.clone())?;
    /// wal.append(b"first")?;
    /// wal.append_batch(&[b"second", b"third"])?;
    /// wal.close()?;
    ///
    /// let mut seen = Vec::new();
    /// let (wal, report) = Wal::open_replay(dir.path(), opts, Lsn(2), |lsn, payload| {
    ///     seen.push((lsn.0, payload.to_vec()));
    /// })?;
    /// assert_eq!(seen, [(2, b"second".to_vec()), (3, b"third".to_vec())]);
    /// assert_eq!(report.last_lsn, Lsn(3));
    /// # wal.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_replay(
        dir: impl AsRef<Path>,
        opts: Options,
        from: Lsn,
        mut replay: impl FnMut(Lsn, &[u8]),
    ) -> Result<(Wal, RecoveryReport)> {
        let started = Instant::now();
        opts.validate()?;
        let (dir, lock) = lock_dir(dir.as_ref(), &opts)?;
        let mut replay = recovery::Replay::new(from.0, &mut replay);
        Wal::open_locked(dir, opts, lock, started, Some(&mut replay))
    }

    /// Recovers and opens the log in `dir`, whose lock the caller holds.
    pub(crate) fn open_locked(
        dir: PathBuf,
        opts: Options,
        lock: Arc<LockHold>,
        started: Instant,
        replay: Option<&mut recovery::Replay<'_>>,
    ) -> Result<(Wal, RecoveryReport)> {
        let env = opts.env.clone();
        let read_only = opts.read_only;
        let out = recovery::scan(
            &dir,
            &env,
            opts.recovery_mode,
            !read_only,
            opts.recovery_progress.as_ref(),
            replay,
        )?;
        let mut report = out.report;
        let next_lsn = out.next_lsn;
        let first_lsn = out.first_lsn;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            env: env.clone(),
            read_only,
            lock: Mutex::new(Some(Arc::clone(&lock))),
            segments: RwLock::new(Vec::new()),
            writer: Mutex::new(WriterState {
                active: None,
                next_lsn,
                index_next: 0,
                nudge_next: 0,
                bytes_appended: 0,
                closed: false,
            }),
            appended: AtomicU64::new(next_lsn - 1),
            reserved_hint: AtomicU64::new(next_lsn - 1),
            pending_count: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            waiters: AtomicUsize::new(0),
            notify_lock: Mutex::new(()),
            notify_cv: Condvar::new(),
            sync: Mutex::new(SyncState {
                durable: next_lsn - 1,
                flights: 0,
                exclusive: false,
                covered: next_lsn - 1,
                tickets: 0,
                credited: 0,
                ended: Vec::new(),
                slot_busy: [false; sync::MAX_FLIGHTS],
                poison: None,
                cut_gen: 0,
                waiting: 0,
                targets: Vec::new(),
                peak: 0,
                last_flush: std::time::Duration::ZERO,
                gathering: false,
                exclusive_waiting: 0,
                cuts: Vec::new(),
                #[cfg(test)]
                parked: 0,
            }),
            sync_cv: Condvar::new(),
            gather_cv: Condvar::new(),
            durable: AtomicU64::new(next_lsn - 1),
            poisoned: AtomicBool::new(false),
            next_epoch: AtomicU32::new(out.max_epoch.saturating_add(1).max(1)),
            first_lsn: AtomicU64::new(first_lsn),
            maint: maint::Maint::default(),
            closed: AtomicBool::new(false),
            released: AtomicBool::new(false),
            stats: stats::Counters::default(),
            opened_at_lsn: next_lsn - 1,
            checkpoints: Mutex::new(ckpt::CheckpointState::default()),
            free: Mutex::new(Vec::new()),
            meta: meta::Meta::load(&env, &dir, !read_only)?,
            watchers: notify::Watchers::default(),
            opts,
        });

        // Checkpoints first: an open that must be refused (no usable checkpoint for a
        // purged log) is refused before it changes anything.
        shared.load_checkpoints(&mut report)?;

        let files = out.files;
        if files.is_empty() {
            if !read_only {
                // A new log: segment 1, whose header carries base LSN 1 from the start.
                let seg = shared.prepare_segment(1, Some(1))?;
                let cursor = seg
                    .take_cursor(SEGMENT_DATA_OFFSET)
                    .ok_or_else(|| Error::InvalidArgument("new segment in use (bug)".into()))?;
                let mut w = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
                shared.install_active(&mut w, seg, cursor);
                report.created = true;
            }
        } else {
            let mut ends = out.ends;
            // A writer erases the seal of the last clean close: the frames before it
            // are durable (synced just below), and if this session crashes, the next
            // open must not take the old seal for a clean close of this one.
            if let Some((k, offset)) = out.final_seal
                && !read_only
                && let Some(f) = files.get(k)
            {
                env.check(Step::SegmentSeal, &f.path)?;
                f.file
                    .write_at(offset, &[0u8; crate::format::RECORD_HEADER_LEN])
                    .map_err(|e| Error::io(IoOp::Write, &f.path, e))?;
                if let Some(e) = ends.get_mut(k) {
                    *e = offset;
                }
                // The erase is made durable with the rest, below, and must be whole:
                // half an erased seal (it may straddle a page) would be damage in a
                // segment the writer may already have left.
                env.op(Step::Flush, &f.path, |_| {
                    f.view.flush(offset + crate::format::RECORD_HEADER_BYTES)
                })?;
            }
            // Make what recovery returns durable before anything else happens, so that
            // recovering again after a power cut returns the same log.
            if !read_only {
                for (f, end) in files.iter().zip(&ends) {
                    env.op(Step::Flush, &f.path, |_| f.view.flush(*end))?;
                }
            }
            let count = files.len();
            let mut live = Vec::with_capacity(count + 1);
            let mut active = None;
            let mut indexes = out.indexes.into_iter();
            let mut holes = out.holes.into_iter();
            for (k, f) in files.into_iter().enumerate() {
                let end = ends.get(k).copied().unwrap_or(SEGMENT_DATA_OFFSET);
                let index = indexes.next().unwrap_or_default();
                let holes = holes.next().unwrap_or_default();
                let resumed = out.resumed.get(k).copied().unwrap_or(true);
                let last = k + 1 == count;
                // A sealed segment never takes another frame: past its seal everything
                // is dead (a crash between sealing it and installing the next segment
                // leaves it last).
                let keep_writing = last && !read_only && !out.seal_last && f.meta.seal_epoch == 0;
                let (map, meta, checkers) = if keep_writing {
                    drop(f.view);
                    let len = usize::try_from(f.meta.segment_bytes).map_err(|_| {
                        Error::InvalidArgument("segment does not fit in memory".into())
                    })?;
                    let map = env.op(Step::SegmentMap, &f.path, |_| f.file.map(len, true))?;
                    (map, f.meta, segment::open_checkers(&env, &f.path)?)
                } else {
                    (f.view.into_mapping(), f.meta, Vec::new())
                };
                let seg = Arc::new(Segment::new(SegmentParts {
                    path: f.path,
                    meta,
                    slot: f.slot,
                    map,
                    file: f.file,
                    end,
                    index,
                    holes,
                    flushed: true,
                    lock: Arc::clone(&lock),
                    checkers,
                }));
                // Lookups by LSN need the base the segment has in fact: the header
                // update of its activation may have been lost, and in salvage mode
                // the chain may resume in this segment past LSNs its header claims.
                if let Some(&s) = out.starts.get(k)
                    && s != 0
                    && s != seg.base_lsn()
                {
                    seg.assume_base(s);
                }
                // The header update of its activation was lost: give it the LSN its
                // first frame has (or, for the segment that goes on taking appends
                // while empty, the next one). Every segment, not only the last: a
                // later header rewrite (a seal, here or by a truncation) keeps the
                // base it finds, and once a purge makes this segment the first and a
                // truncation empties it, the base is all that says where the log
                // starts. Not where a salvage resume set that LSN (the chain did not
                // walk into the segment from its start): its first frames are not the
                // chain's.
                if !read_only && !seg.header_has_base() {
                    let base = match out.starts.get(k) {
                        Some(&s) if s != 0 && (keep_writing || !resumed) => Some(s),
                        _ if keep_writing => Some(next_lsn),
                        _ => None,
                    };
                    if let Some(base) = base {
                        seg.update_header(&env, Step::SegmentHeaderWrite, |m| {
                            m.base_lsn = base;
                        })?;
                        // Durable now: this segment's bytes count as flushed already,
                        // so no later flush would include its header page.
                        seg.sync_file(&env, Step::SegmentSync)?;
                    }
                }
                if last && !read_only && out.seal_last {
                    // Bytes of this epoch lie past the end: seal the segment there so
                    // that they can never be read as records, and go on in a new one.
                    shared.seal_segment(&seg, end)?;
                }
                if keep_writing {
                    let cursor = seg
                        .take_cursor(end)
                        .ok_or_else(|| Error::InvalidArgument("segment in use (bug)".into()))?;
                    active = Some((Arc::clone(&seg), cursor));
                }
                live.push(seg);
            }
            let last_seq = live.last().map_or(0, |s| s.seq);
            *shared
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner) = live;
            if read_only {
                report.removed_files.extend(out.remove.iter().cloned());
            } else {
                shared.remove_files(&out.remove, &mut report)?;
                let mut free = out.free;
                for (path, seq) in out.unused {
                    let to = dir.join(recycle::free_file_name(seq));
                    if env
                        .op(Step::SegmentRemove, &path, |s| s.rename(&path, &to))
                        .is_ok()
                    {
                        free.push(to);
                    }
                }
                shared.adopt_free(free);
                let mut w = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
                match active {
                    Some((seg, cursor)) => {
                        w.index_next = cursor.pos();
                        w.nudge_next = cursor.pos();
                        shared.maint.set_active(Arc::clone(&seg));
                        w.active = Some((seg, cursor));
                    }
                    None => {
                        let seg = shared.prepare_segment(last_seq + 1, Some(next_lsn))?;
                        let cursor = seg.take_cursor(SEGMENT_DATA_OFFSET).ok_or_else(|| {
                            Error::InvalidArgument("new segment in use (bug)".into())
                        })?;
                        shared.install_active(&mut w, seg, cursor);
                    }
                }
            }
        }
        drop(lock);

        report.first_lsn = Lsn(first_lsn);
        report.next_lsn = Lsn(next_lsn);
        report.last_lsn = Lsn(next_lsn - 1);
        report.segments = shared.segment_list().len() as u64;
        report.duration = started.elapsed();

        let maint = if read_only || !env.background {
            Vec::new()
        } else {
            if let Some(seq) = shared.active_seq() {
                shared.maint.request(seq + 1);
            }
            maint::spawn(&shared).map_err(|e| Error::io(IoOp::Create, &dir, e))?
        };
        Ok((
            Wal {
                shared,
                maint: Mutex::new(maint),
            },
            report,
        ))
    }

    /// Appends one record with the log's default durability
    /// ([`Options::durability`]) and returns its LSN.
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        self.shared.append_one(payload, self.shared.opts.durability)
    }

    /// Appends one record with the given durability.
    pub fn append_with(&self, payload: &[u8], durability: Durability) -> Result<Lsn> {
        self.shared.append_one(payload, durability)
    }

    /// Appends several records that recover together or not at all, with the log's
    /// default durability. Returns the LSN of the first; the others follow densely.
    /// The whole batch must fit in one segment.
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<Lsn> {
        self.shared
            .append_many(payloads, self.shared.opts.durability)
    }

    /// [`Wal::append_batch`] with the given durability.
    pub fn append_batch_with(&self, payloads: &[&[u8]], durability: Durability) -> Result<Lsn> {
        self.shared.append_many(payloads, durability)
    }

    /// Makes every record appended so far durable; returns the durable LSN.
    pub fn sync(&self) -> Result<Lsn> {
        self.shared.check_open()?;
        self.shared.sync_all()
    }

    /// Waits until `lsn` is durable, syncing if no sync covering it is running.
    /// Waits (without spinning) for `lsn` to be appended if another thread holds its
    /// reservation. An LSN that was never handed out is an error, and so
    /// ([`Error::NotFound`]) is one whose record a truncation or a reset drops before
    /// it became durable, even if a later record reuses the LSN.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        self.shared.check_open()?;
        let reserved = self.shared.reserved();
        if lsn.0 > reserved {
            return Err(Error::InvalidArgument(format!(
                "LSN {lsn} has not been appended (last handed out: {reserved})"
            )));
        }
        self.shared.sync_to(lsn.0)
    }

    /// A future that resolves once `lsn` is durable, or with the error that makes it
    /// impossible (poisoned, closed, or [`Error::NotFound`] once its record is
    /// truncated or reset away, even if a later record reuses the LSN). For async
    /// code: it works with any executor, and the thread that makes `lsn` durable wakes
    /// the task. Its first poll asks the background thread for a sync, so it resolves
    /// even if nothing else syncs (unless the log's `Env` has no background thread;
    /// then a sync by someone else resolves it).
    pub fn durable_future(&self, lsn: Lsn) -> DurableFuture {
        DurableFuture::new(Arc::clone(&self.shared), lsn.0)
    }

    /// Calls `f` once `lsn` is durable, or with the error that makes it impossible
    /// (as for [`Wal::durable_future`]). It runs on the thread that made `lsn` durable
    /// (or on this one, at once, if it is durable already), so it should be short. It
    /// must not call into this log: that thread may be inside [`Wal::close`] or an
    /// append, holding the log's locks. Hand such work to another thread instead.
    pub fn on_durable(&self, lsn: Lsn, f: impl FnOnce(Result<()>) + Send + 'static) {
        self.shared.on_durable(lsn.0, Box::new(f));
    }

    /// The last LSN whose record, and every earlier one, is readable.
    pub fn appended(&self) -> Lsn {
        Lsn(self.shared.appended())
    }

    /// The last LSN known to be on stable storage.
    pub fn durable(&self) -> Lsn {
        Lsn(self.shared.durable.load(Ordering::Acquire))
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        Lsn(self.shared.first_lsn.load(Ordering::Acquire))
    }

    /// Records from `from` on (or from the first one still in the log, if `from` was
    /// purged), as they are now. Payloads are borrowed from the mapping.
    pub fn iter_from(&self, from: Lsn) -> Result<Iter> {
        self.shared.check_readable()?;
        Ok(Iter::new(&self.shared, from.0))
    }

    /// Calls `f` with the LSN and payload (borrowed from the mapping) of each record
    /// from `from` on, until the records run out or `f` returns false. The fastest way
    /// to read a log: no `Record` (and no reference count) per record. Returns how many
    /// records `f` saw.
    pub fn for_each_from(&self, from: Lsn, f: impl FnMut(Lsn, &[u8]) -> bool) -> Result<u64> {
        self.shared.check_readable()?;
        Iter::new(&self.shared, from.0).visit(f)
    }

    /// The record with LSN `lsn`.
    pub fn read(&self, lsn: Lsn) -> Result<Record> {
        self.shared.check_readable()?;
        if lsn.0 < self.shared.first_lsn.load(Ordering::Acquire) || lsn.0 > self.shared.appended() {
            return Err(Error::NotFound { lsn });
        }
        match Iter::new(&self.shared, lsn.0).next() {
            Some(Ok(r)) if r.lsn() == lsn => Ok(r),
            Some(Err(e)) => Err(e),
            _ => Err(Error::NotFound { lsn }),
        }
    }

    /// A reader that returns the records from `from` on and then waits for new ones.
    pub fn tail(&self, from: Lsn) -> Tail<'_> {
        Tail::new(&self.shared, from.0)
    }

    /// Drops every record after `lsn`, crash-atomically: once this returns, no crash
    /// can bring them back; if it fails or crashes midway, the log holds either all of
    /// them or none. The next append gets `lsn + 1`. `lsn` may not fall inside a batch.
    pub fn truncate_after(&self, lsn: Lsn) -> Result<()> {
        self.shared.truncate_after(lsn.0)
    }

    /// The metadata value stored under `key`, if any.
    pub fn meta(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.meta.get(key)
    }

    /// Every metadata value.
    pub fn meta_all(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.shared.meta.all()
    }

    /// Stores `value` under `key` (small values: all of them together must fit in
    /// about 4 KiB), durably: a crash after this returns keeps it, a crash during it
    /// keeps the previous value. For a Raft node's vote, a configuration epoch, and the
    /// like. Independent of the records: it does not order against appends.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.shared.check_open()?;
        self.shared.meta.set(&self.shared.env, key, Some(value))
    }

    /// Removes `key` from the metadata, durably.
    pub fn remove_meta(&self, key: &str) -> Result<()> {
        self.shared.check_open()?;
        self.shared.meta.set(&self.shared.env, key, None)
    }

    /// Drops every record, crash-atomically, and continues the log at `next`: the next
    /// append gets `next`, and `first_lsn()` is `next`. For a replica that installs a
    /// snapshot from elsewhere (a Raft follower): the records it held are replaced by
    /// whatever follows the snapshot. A crash leaves either the old log or the empty
    /// one. Refused while the directory holds checkpoints (they would no longer
    /// connect to the log). `next` below the current next LSN reuses LSNs: only do that
    /// when nothing outside the log remembers the old ones.
    pub fn reset(&self, next: Lsn) -> Result<()> {
        self.shared.reset(next.0)
    }

    /// Removes the segments whose records all lie below `lsn` (segment granularity:
    /// records below `lsn` may remain). Returns the new first LSN.
    ///
    /// Never removes records a kept checkpoint needs: with checkpoints in the
    /// directory, the purge stops at the oldest kept one (recovery may fall back to
    /// it). Write a newer checkpoint to let the log go further.
    pub fn purge_before(&self, lsn: Lsn) -> Result<Lsn> {
        let limit = self
            .shared
            .oldest_kept_checkpoint()?
            .map_or(u64::MAX, |c| c.saturating_add(1));
        self.shared.purge_before(lsn.0.min(limit)).map(Lsn)
    }

    /// Writes a checkpoint: `data` is the user's state after every record up to and
    /// including `lsn`. The log is synced through `lsn` first; the checkpoint is durable
    /// and in place when this returns. Then retention runs: only the newest
    /// [`Options::checkpoint_generations`] checkpoints are kept, and log segments that
    /// no kept checkpoint needs are removed.
    pub fn write_checkpoint(&self, lsn: Lsn, data: &[u8]) -> Result<Checkpoint> {
        self.shared
            .write_checkpoint(lsn.0, data.len() as u64, |buf| buf.copy_from_slice(data))
    }

    /// [`Wal::write_checkpoint`] for a payload of `len` bytes that `fill` writes
    /// straight into the checkpoint's mapping (zero-copy serialisation). `fill` gets a
    /// zeroed slice of exactly `len` bytes.
    pub fn write_checkpoint_with(
        &self,
        lsn: Lsn,
        len: u64,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Checkpoint> {
        self.shared.write_checkpoint(lsn.0, len, fill)
    }

    /// The newest checkpoint that verified and connects to the log (the one recovery
    /// starts from, or the last one written), mapped read-only.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.shared.latest_checkpoint()
    }

    /// Every checkpoint file in the directory, newest first, each verified in full.
    pub fn checkpoint_files(&self) -> Result<Vec<CheckpointFileInfo>> {
        self.shared.check_readable()?;
        self.shared.checkpoint_files()
    }

    /// One line of facts about each segment file of the log, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let list = self.shared.segment_list();
        let next = self.shared.appended() + 1;
        let mut out: Vec<SegmentInfo> = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let meta = s.meta();
            let first = s.base_lsn();
            let end_lsn = list.get(i + 1).map_or(next, |n| n.base_lsn());
            out.push(SegmentInfo {
                path: s.path.clone(),
                seq: s.seq,
                epoch: s.epoch,
                first_lsn: Lsn(first),
                last_lsn: Lsn(end_lsn.saturating_sub(1).max(first.saturating_sub(1))),
                bytes_used: s.visible_end().saturating_sub(SEGMENT_DATA_OFFSET),
                size_bytes: s.size,
                sealed: meta.seal_epoch != 0,
                recycled: meta.recycled(),
            });
        }
        out
    }

    /// Bytes the log's segment files take on disk.
    pub fn segment_bytes(&self) -> u64 {
        self.shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|s| s.size)
            .sum()
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> Stats {
        let records = self
            .shared
            .appended()
            .saturating_sub(self.shared.opened_at_lsn);
        let bytes = self.shared.writer.lock().map_or(0, |w| w.bytes_appended);
        self.shared.stats.snapshot(records, bytes)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Syncs everything, writes the seal that marks a clean shutdown, stops the
    /// background thread and releases the lock (once the last borrowed [`Record`] is
    /// dropped). Later calls on this handle return [`Error::Closed`]; closing twice is
    /// not an error. On a poisoned log the seal is not written, so the next open knows
    /// the shutdown was not clean.
    pub fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_background();
        let result = if self.shared.read_only {
            Ok(())
        } else {
            self.shared.seal_and_sync()
        };
        self.shared.release();
        result
    }

    fn stop_background(&self) {
        self.shared.maint.shutdown();
        let handles =
            std::mem::take(&mut *self.maint.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for Wal {
    /// Dropping without [`Wal::close`] is a crash as far as the disk is concerned
    /// (nothing more is synced, no seal is written), but the background thread is
    /// stopped and joined.
    fn drop(&mut self) {
        self.stop_background();
        self.shared.closed.store(true, Ordering::Release);
        self.shared.release();
    }
}

impl Shared {
    pub(crate) fn appended(&self) -> u64 {
        self.appended.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn reserved(&self) -> u64 {
        self.writer
            .lock()
            .map(|w| w.next_lsn - 1)
            .unwrap_or_else(|p| p.into_inner().next_lsn - 1)
    }

    fn active_seq(&self) -> Option<u64> {
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        w.active.as_ref().map(|(s, _)| s.seq)
    }

    pub(crate) fn segment_list(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn lock_hold(&self) -> Result<Arc<LockHold>> {
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    fn check_readable(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Syncs every record handed out so far, including those other threads are still
    /// filling (an append that returned before this call is covered).
    pub(crate) fn sync_all(&self) -> Result<Lsn> {
        loop {
            let target = self.reserved();
            match self.sync_to(target) {
                // A truncation or reset dropped records this sync was for: what is
                // left is what "everything appended" means now.
                Err(Error::NotFound { .. }) if self.reserved() < target => continue,
                other => other?,
            }
            return Ok(Lsn(self.durable.load(Ordering::Acquire)));
        }
    }

    /// Wakes tailing readers and anyone waiting for in-flight appends.
    pub(crate) fn notify_appended(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self
                .notify_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.notify_cv.notify_all();
        }
    }

    /// Waits until `lsn` (already handed out) is appended; true when it is. It always
    /// will be (filling and publishing take no lock a waiter could hold), unless a
    /// truncation drops it first: then false.
    pub(crate) fn wait_reserved(&self, lsn: u64) -> bool {
        let mut g = self
            .notify_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        while self.appended() < lsn && lsn <= self.reserved_hint.load(Ordering::SeqCst) {
            g = self
                .notify_cv
                .wait(g)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        self.appended() >= lsn
    }

    /// Waits until `lsn` is appended, `deadline` passes or the log is closed; true
    /// when it was appended. For readers waiting for records nobody may ever write.
    pub(crate) fn wait_appended(&self, lsn: u64, deadline: Instant) -> bool {
        let mut g = self
            .notify_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let ok = loop {
            if self.appended() >= lsn {
                break true;
            }
            if self.is_closed() {
                break false;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            g = self
                .notify_cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        ok
    }

    /// Removes `paths` (ignoring ones already gone) and syncs the directory.
    fn remove_files(&self, paths: &[PathBuf], report: &mut RecoveryReport) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        for p in paths {
            match self.env.op(Step::SegmentRemove, p, |s| s.remove_file(p)) {
                Ok(()) => report.removed_files.push(p.clone()),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.env
            .op(Step::DirSync, &self.dir, |s| s.sync_dir(&self.dir))
    }

    /// Seals `seg` at `end`: frames at or past `end`, and every later segment created
    /// before now, are dead. Durable when this returns.
    fn seal_segment(&self, seg: &Segment, end: u64) -> Result<SegmentMeta> {
        let seal_epoch = self.alloc_epoch()?;
        let meta = seg.update_header(&self.env, Step::SegmentSeal, |m| {
            m.seal_epoch = seal_epoch;
            m.sealed_end = end;
        })?;
        seg.sync_file(&self.env, Step::SegmentSeal)?;
        seg.cut_visible(end);
        Ok(meta)
    }

    /// Waits for every reservation handed out so far to be published. The writer lock
    /// is held by the caller, so no new one can start.
    fn drain_in_flight(&self, w: &WriterState) {
        let target = w.next_lsn - 1;
        if self.appended() < target {
            let _ = self.wait_reserved(target);
        }
    }

    fn truncate_after(&self, lsn: u64) -> Result<()> {
        self.check_open()?;
        self.check_poison()?;
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if w.closed {
            return Err(Error::Closed);
        }
        let last = w.next_lsn - 1;
        if lsn >= last {
            return Ok(());
        }
        let first = self.first_lsn.load(Ordering::Acquire);
        if lsn.saturating_add(1) < first {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate after {lsn}: the log starts at {first}"
            )));
        }
        if let Some(c) = self.latest_checkpoint()
            && lsn < c.lsn().0
        {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate after {lsn}: checkpoint {} covers records up to {}",
                c.path().display(),
                c.lsn()
            )));
        }
        self.drain_in_flight(&w);
        let cut = lsn + 1;
        // Find the frame that starts at `cut`.
        let segs = self.segment_list();
        let i = segs
            .partition_point(|s| s.base_lsn() != 0 && s.base_lsn() <= cut)
            .saturating_sub(1);
        let seg = segs
            .get(i)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument("no segment holds the cut (bug)".into()))?;
        let offset = frame_offset(&seg, cut)?;
        let stale = self.maint.discard();
        let mut settled = notify::Settled::default();
        let result = self.exclusive(|ex| {
            self.seal_segment(&seg, offset)?;
            let removed: Vec<Arc<Segment>> = {
                let mut list = self
                    .segments
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let keep = (i + 1).min(list.len());
                list.split_off(keep)
            };
            let mut paths: Vec<PathBuf> = removed.iter().map(|s| s.path.clone()).collect();
            if let Some(s) = &stale {
                paths.push(s.path.clone());
            }
            let mut ignore = RecoveryReport::new(self.dir.clone(), self.opts.recovery_mode);
            self.remove_files(&paths, &mut ignore)?;
            self.stats
                .segments_removed
                .fetch_add(removed.len() as u64, Ordering::Relaxed);
            let fresh = self.prepare_segment(seg.seq + 1, Some(cut))?;
            let cursor = fresh
                .take_cursor(SEGMENT_DATA_OFFSET)
                .ok_or_else(|| Error::InvalidArgument("new segment in use (bug)".into()))?;
            w.next_lsn = cut;
            ex.durable = ex.durable.min(lsn);
            // Threads blocked waiting for a truncated record give up with it.
            ex.cut = Some(lsn);
            // The watermarks move in the same step that takes the watchers of the
            // truncated records, so no watcher is listed against the old ones.
            let durable = ex.durable;
            settled = self.watchers.cut(|| {
                self.reserved_hint.store(lsn, Ordering::SeqCst);
                self.appended.store(lsn, Ordering::SeqCst);
                self.durable.store(durable, Ordering::Release);
                lsn
            });
            self.install_active(&mut w, fresh, cursor);
            Ok(())
        });
        let seq = w.active.as_ref().map(|(s, _)| s.seq);
        drop(w);
        settled.tell();
        result?;
        // Waiters for truncated LSNs give up.
        let g = self
            .notify_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.notify_cv.notify_all();
        drop(g);
        if let Some(seq) = seq {
            self.maint.request(seq + 1);
        }
        Ok(())
    }

    fn reset(&self, next: u64) -> Result<()> {
        self.check_open()?;
        self.check_poison()?;
        if next == 0 || next == u64::MAX {
            return Err(Error::InvalidArgument(format!(
                "cannot reset the log to LSN {next}"
            )));
        }
        let (listed, _) = crate::checkpoint::list(&self.env, &self.dir)?;
        if !listed.is_empty() {
            return Err(Error::InvalidArgument(
                "reset would leave checkpoints that no longer connect to the log".into(),
            ));
        }
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if w.closed {
            return Err(Error::Closed);
        }
        self.drain_in_flight(&w);
        let stale = self.maint.discard();
        let mut settled = notify::Settled::default();
        let result = self.exclusive(|ex| {
            let old: Vec<Arc<Segment>> = std::mem::take(
                &mut *self
                    .segments
                    .write()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let last_seq = old
                .iter()
                .chain(stale.iter())
                .map(|s| s.seq)
                .max()
                .unwrap_or(0);
            // The atomic step: once this segment (flagged: the log starts here) is
            // durable and in place, every older segment is dead for recovery.
            let fresh = match self.prepare_segment_flagged(last_seq + 1, Some(next), SEGMENT_RESET)
            {
                Ok(f) => f,
                Err(e) => {
                    *self
                        .segments
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = old;
                    return Err(e);
                }
            };
            let cursor = fresh
                .take_cursor(SEGMENT_DATA_OFFSET)
                .ok_or_else(|| Error::InvalidArgument("new segment in use (bug)".into()))?;
            // Every record not yet durable is gone: its watchers fail in the same
            // step that moves the watermarks, so the new one (`next - 1`) never
            // fires them as if they had been synced.
            let gone_after = ex.durable;
            w.active = None;
            w.next_lsn = next;
            ex.durable = next - 1;
            // So do threads blocked waiting for one of them.
            ex.cut = Some(gone_after);
            settled = self.watchers.cut(|| {
                self.reserved_hint.store(next - 1, Ordering::SeqCst);
                self.appended.store(next - 1, Ordering::SeqCst);
                self.durable.store(next - 1, Ordering::Release);
                gone_after
            });
            self.first_lsn.store(next, Ordering::Release);
            self.install_active(&mut w, fresh, cursor);
            // Clean-up: the old segments are dead already; a failure here leaves files
            // the next recovery removes.
            let count = old.len() as u64;
            for seg in old {
                self.retire(seg)?;
            }
            if let Some(s) = stale {
                let path = s.path.clone();
                drop(s);
                let _ = self
                    .env
                    .op(Step::SegmentRemove, &path, |st| st.remove_file(&path));
            }
            self.env
                .op(Step::DirSync, &self.dir, |s| s.sync_dir(&self.dir))?;
            self.stats
                .segments_removed
                .fetch_add(count, Ordering::Relaxed);
            Ok(())
        });
        let seq = w.active.as_ref().map(|(s, _)| s.seq);
        drop(w);
        settled.tell();
        result?;
        let g = self
            .notify_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.notify_cv.notify_all();
        drop(g);
        if let Some(seq) = seq {
            self.maint.request(seq + 1);
        }
        Ok(())
    }

    fn purge_before(&self, lsn: u64) -> Result<u64> {
        self.check_open()?;
        // The first segment that stays must have a durable header and the records
        // before `lsn` may go, so everything appended is made durable first.
        self.sync_all()?;
        self.exclusive(|_| {
            let (victims, survivor): (Vec<Arc<Segment>>, Option<Arc<Segment>>) = {
                let list = self.segments.read().unwrap_or_else(PoisonError::into_inner);
                let mut n = 0;
                // Segment k may go when the next one starts at or below `lsn`; the
                // last (active) segment always stays.
                while let Some(next) = list.get(n + 1) {
                    let base = next.base_lsn();
                    if base == 0 || base > lsn {
                        break;
                    }
                    n += 1;
                }
                (list.iter().take(n).cloned().collect(), list.get(n).cloned())
            };
            if victims.is_empty() {
                return Ok(self.first_lsn.load(Ordering::Acquire));
            }
            // Once the older segments are gone, the first survivor's header is the
            // only place its base LSN is written. The sync above covers records, not
            // the header of a segment that holds none yet: flush it explicitly.
            if let Some(s) = &survivor {
                // Exclusive: no flush runs, so slot 0 is free.
                s.flush_published(&self.env, 0)?;
            }
            let count = victims.len() as u64;
            // Oldest first: a crash midway leaves a shorter prefix missing, never a hole.
            for seg in victims {
                let taken = {
                    let mut list = self
                        .segments
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    let taken = list
                        .first()
                        .is_some_and(|s| Arc::ptr_eq(s, &seg))
                        .then(|| list.remove(0));
                    if let Some(first) = list.first() {
                        self.first_lsn.store(first.base_lsn(), Ordering::Release);
                    }
                    taken
                };
                drop(taken);
                self.retire(seg)?;
            }
            self.env
                .op(Step::DirSync, &self.dir, |s| s.sync_dir(&self.dir))?;
            self.stats
                .segments_removed
                .fetch_add(count, Ordering::Relaxed);
            Ok(self.first_lsn.load(Ordering::Acquire))
        })
    }

    /// The clean-close sequence: no new appends, wait for those in flight, sync, write
    /// the seal, flush it.
    fn seal_and_sync(&self) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        w.closed = true;
        self.drain_in_flight(&w);
        self.sync_to(w.next_lsn - 1)?;
        self.exclusive(|_| {
            self.write_seal(&mut w)?;
            if let Some((seg, _)) = &w.active {
                seg.flush_published(&self.env, 0)?;
            }
            Ok(())
        })
    }

    /// Drops every segment reference this handle holds; the lock goes with the last.
    fn release(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.closed = true;
            w.active = None;
        }
        let _ = self.maint.discard();
        if let Ok(mut list) = self.segments.write() {
            list.clear();
        }
        if let Ok(mut c) = self.checkpoints.lock() {
            c.latest = None;
        }
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
        self.released.store(true, Ordering::Release);
        // Wake tailing readers so they notice the close, and fail what still waits.
        let g = self.notify_lock.lock();
        self.notify_cv.notify_all();
        drop(g);
        self.fire_watchers();
    }
}

/// Offset of the frame whose first LSN is `lsn` in `seg`.
fn frame_offset(seg: &Segment, lsn: u64) -> Result<u64> {
    let data = seg.published();
    let mut pos = seg.seek(lsn);
    let end = seg.visible_end();
    // The LSN after the last frame seen (the segment's base before any).
    let mut next = seg.base_lsn();
    while pos < end {
        if let Some(resume) = seg.hole_at(pos) {
            pos = resume;
            continue;
        }
        let rel = usize::try_from(pos - SEGMENT_DATA_OFFSET)
            .map_err(|_| Error::InvalidArgument("offset overflow".into()))?;
        let frame =
            crate::format::decode_frame(data.get(rel..).unwrap_or_default(), seg.epoch, false)
                .map_err(|_| {
                    Error::corrupt(&seg.path, pos, crate::error::CorruptionKind::BadLength)
                })?;
        if frame.kind != crate::format::FrameKind::Seal {
            if frame.lsn == lsn {
                return Ok(pos);
            }
            if frame.lsn < lsn && lsn < frame.lsn + frame.count {
                return Err(Error::InvalidArgument(format!(
                    "LSN {lsn} is inside a batch starting at {}; batches are truncated whole",
                    frame.lsn
                )));
            }
            if frame.lsn > lsn {
                break;
            }
            next = frame.lsn + frame.count;
        }
        pos += frame.frame_bytes;
    }
    // `lsn` is the next LSN of this segment: the cut is at its end.
    if pos >= end && next == lsn {
        return Ok(end);
    }
    Err(Error::NotFound { lsn: Lsn(lsn) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(i: u64) -> Vec<u8> {
        let fill = u8::try_from(i % 251).unwrap_or(0);
        let len = 192 + usize::try_from(i % 57).unwrap_or(0);
        let mut p = i.to_le_bytes().to_vec();
        p.resize(len, fill);
        p
    }

    fn resident(addr: usize) -> bool {
        crate::testing::page_resident(addr).expect("read /proc/self/pagemap")
    }

    /// Write-behind unmaps published pages from the process (and starts their
    /// write-back): no byte may change, not for a record borrowed before it, not for
    /// appends after it, not after a reopen. A release that dropped the pages' contents
    /// (a private mapping, or a hole punched in the file) fails this.
    #[test]
    fn write_behind_changes_no_byte() {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = Options {
            segment_size_bytes: 4 << 20,
            durability: Durability::None,
            env: Env::default().without_background(),
            ..Options::default()
        };
        let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("open");
        for i in 0..2_000 {
            wal.append(&payload(i)).expect("append");
        }
        let first = wal.read(Lsn(1)).expect("read the first record");
        let active = wal
            .shared
            .segment_list()
            .last()
            .cloned()
            .expect("an active segment");
        let before = active.visible_end();
        let page = first.payload().as_ptr() as usize;
        assert!(resident(page), "the first record's page is mapped before");
        active.write_behind(0);
        assert!(
            !resident(page),
            "write-behind unmapped the first record's page"
        );
        assert!(
            active.written_behind_to()
                >= before / crate::format::PAGE_BYTES * crate::format::PAGE_BYTES,
            "write-behind covered every whole published page"
        );
        assert_eq!(first.payload(), payload(0).as_slice());
        for i in 2_000..4_000 {
            wal.append(&payload(i)).expect("append after write-behind");
        }
        active.write_behind(0);
        let check = |wal: &Wal| {
            let mut n = 0u64;
            for r in wal.iter_from(Lsn(1)).expect("iter") {
                let r = r.expect("record");
                assert_eq!(r.payload(), payload(n).as_slice(), "record {n}");
                n += 1;
            }
            assert_eq!(n, 4_000);
        };
        check(&wal);
        assert_eq!(first.payload(), payload(0).as_slice());
        drop(first);
        drop(active);
        wal.close().expect("close");
        let (wal, report) = Wal::open(dir.path(), opts).expect("reopen");
        assert!(report.clean_shutdown);
        check(&wal);
        wal.close().expect("close");
    }
}
