//! openraft's log storage ([`RaftLogStorage`], [`RaftLogReader`]) on a [`Wal`].
//!
//! Raft index `i` is the record at LSN `i + 1` (openraft's first index is 0, mmlog's
//! first LSN is 1), one record per entry, so that any index can be a truncation point.
//! The vote, the committed log id and the last purged log id live in the Wal's
//! metadata (`META`), written durably before the call that changes them returns.
//! DESIGN.md §10 has the protocols and what a crash at each step leaves.

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};

use crate::raft::codec::{Codec, DecodeError, Decoder};
use crate::raft::{CodecConfig, RECORD_VERSION};
use crate::{Durability, Error, IoOp, Lsn, Options, RecoveryReport, Result, Wal};

/// Metadata key of the vote.
pub(crate) const META_VOTE: &str = "raft.vote";
/// Metadata key of the committed log id.
pub(crate) const META_COMMITTED: &str = "raft.committed";
/// Metadata key of the last purged log id.
pub(crate) const META_PURGED: &str = "raft.purged";

/// openraft's log storage on an mmlog [`Wal`]: the log, the vote and the committed
/// log id of one Raft node, in one directory.
///
/// Cheap to clone: clones share the log (openraft uses a clone as its
/// [`RaftLogReader`]). Keep one clone to [`close`](LogStore::close) the log cleanly after
/// `Raft::shutdown`; dropping the last clone without closing is a crash as far as the
/// disk is concerned (what was appended survives a process crash; see
/// [`Durability::None`]).
///
/// Appends return once the entries are readable; openraft's flush callback fires once
/// they are on stable storage, from a flusher thread that syncs the log once for every
/// append queued behind it (group commit). Every other write (vote, committed log id,
/// truncation, purge) first waits until the appends before it are durable and their
/// callbacks have fired, then writes and syncs before it returns: writes are durable in
/// the order openraft issued them.
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: RaftTypeConfig> fmt::Debug for LogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("wal", &*self.inner.wal)
            .finish()
    }
}

struct Inner<C: RaftTypeConfig> {
    wal: Arc<Wal>,
    /// Writers (append, truncate, purge, reset) hold it exclusively, readers shared, so
    /// that a read sees the log before or after a write, never in between.
    state: RwLock<State<C>>,
    flusher: Mutex<Option<Flusher<C>>>,
}

struct State<C: RaftTypeConfig> {
    /// Entries up to and including this one are gone, even where a segment still holds
    /// their records.
    purged: Option<LogIdOf<C>>,
}

/// The thread that makes appended entries durable and fires openraft's callbacks.
struct Flusher<C: RaftTypeConfig> {
    jobs: mpsc::Sender<Job<C>>,
    thread: JoinHandle<()>,
}

enum Job<C: RaftTypeConfig> {
    /// Fire `callback` once every LSN up to `lsn` is durable.
    Flush { lsn: u64, callback: IOFlushed<C> },
    /// Reply once every job before it is done (with the outcome of the last flush).
    Barrier(mpsc::SyncSender<std::result::Result<(), String>>),
}

impl<C: CodecConfig> LogStore<C> {
    /// Opens (or creates) the log in `dir` and recovers it. `opts` are the Wal's options;
    /// their `durability` does not matter (entries are made durable by the flusher before
    /// openraft is told they are).
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<(LogStore<C>, RecoveryReport)> {
        let (wal, report) = Wal::open(dir, opts)?;
        let wal = Arc::new(wal);
        let purged = match wal.meta(META_PURGED) {
            Some(bytes) => Some(decode_meta::<LogIdOf<C>>(&wal, META_PURGED, &bytes)?),
            None => None,
        };
        // Decode the vote and the committed log id once now, so damage is found at open.
        if let Some(bytes) = wal.meta(META_VOTE) {
            decode_meta::<VoteOf<C>>(&wal, META_VOTE, &bytes)?;
        }
        if let Some(bytes) = wal.meta(META_COMMITTED) {
            decode_meta::<Option<LogIdOf<C>>>(&wal, META_COMMITTED, &bytes)?;
        }
        let flusher =
            Flusher::spawn(Arc::clone(&wal)).map_err(|e| Error::io(IoOp::Create, wal.dir(), e))?;
        Ok((
            LogStore {
                inner: Arc::new(Inner {
                    wal,
                    state: RwLock::new(State { purged }),
                    flusher: Mutex::new(Some(flusher)),
                }),
            },
            report,
        ))
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// The underlying log, for inspection (`segments`, `durable`, `stats`). Writing to it
    /// directly breaks the store.
    pub fn wal(&self) -> &Wal {
        &self.inner.wal
    }

    /// Lets the flusher finish every queued append (making it durable and firing its
    /// callback), stops it, then syncs and closes the log (writing the seal of a clean
    /// shutdown). Call it after `Raft::shutdown`; other clones get [`Error::Closed`]
    /// from then on. Closing twice is not an error.
    pub fn close(&self) -> Result<()> {
        self.inner.stop_flusher();
        self.inner.wal.close()
    }
}

impl<C: RaftTypeConfig> Inner<C> {
    /// Waits until every job queued before it is done.
    fn barrier(&self) -> std::result::Result<(), String> {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let guard = self.flusher.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(f) = guard.as_ref() else {
                return Err("the log store is closed".into());
            };
            f.jobs
                .send(Job::Barrier(tx))
                .map_err(|_| "the flusher thread is gone".to_string())?;
        }
        rx.recv()
            .unwrap_or_else(|_| Err("the flusher thread is gone".into()))
    }

    fn io_barrier(&self) -> io::Result<()> {
        self.barrier().map_err(io::Error::other)
    }

    fn stop_flusher(&self) {
        let taken = self
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(f) = taken {
            drop(f.jobs);
            let _ = f.thread.join();
        }
    }

    fn queue(&self, job: Job<C>) {
        let guard = self.flusher.lock().unwrap_or_else(PoisonError::into_inner);
        let rejected = match guard.as_ref() {
            Some(f) => f.jobs.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(guard);
        if let Some(job) = rejected {
            job.fail("the log store is closed");
        }
    }
}

impl<C: RaftTypeConfig> Drop for Inner<C> {
    /// Lets the flusher finish what is queued (firing the callbacks) and joins it. The
    /// Wal is dropped, not closed: as for [`Wal`], that is a crash as far as the disk
    /// is concerned.
    fn drop(&mut self) {
        self.stop_flusher();
    }
}

impl<C: RaftTypeConfig> Job<C> {
    fn fail(self, why: &str) {
        match self {
            Job::Flush { callback, .. } => callback.io_completed(Err(io::Error::other(why))),
            Job::Barrier(tx) => {
                let _ = tx.send(Err(why.to_string()));
            }
        }
    }
}

impl<C: RaftTypeConfig> Flusher<C> {
    fn spawn(wal: Arc<Wal>) -> io::Result<Flusher<C>> {
        let (jobs, rx) = mpsc::channel::<Job<C>>();
        let thread = std::thread::Builder::new()
            .name("mmlog-raft-flush".into())
            .spawn(move || flush_loop(&wal, &rx))?;
        Ok(Flusher { jobs, thread })
    }
}

/// Takes every queued job, makes the highest LSN among them durable with one sync, then
/// completes them in order. A failed sync fails every job of the round and poisons the
/// log, so every later round fails too.
fn flush_loop<C: RaftTypeConfig>(wal: &Wal, rx: &mpsc::Receiver<Job<C>>) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        round.extend(rx.try_iter());
        let target = round
            .iter()
            .map(|j| match j {
                Job::Flush { lsn, .. } => *lsn,
                Job::Barrier(_) => 0,
            })
            .max()
            .unwrap_or(0);
        let outcome = if target == 0 {
            Ok(())
        } else {
            wal.wait_durable(Lsn(target)).map_err(|e| e.to_string())
        };
        for job in round {
            match (job, &outcome) {
                (Job::Flush { callback, .. }, Ok(())) => callback.io_completed(Ok(())),
                (Job::Barrier(tx), Ok(())) => {
                    let _ = tx.send(Ok(()));
                }
                (job, Err(why)) => job.fail(why),
            }
        }
    }
}

/// Decodes a metadata value written as `[RECORD_VERSION][T]`.
fn decode_meta<T: Codec>(wal: &Wal, key: &str, bytes: &[u8]) -> Result<T> {
    decode_versioned::<T>(bytes).map_err(|e| Error::Restore {
        checkpoint: wal.dir().join("META"),
        reason: format!("metadata {key}: {e}"),
    })
}

/// Decodes `[RECORD_VERSION][T]`, the layout of every record and metadata value.
pub(crate) fn decode_versioned<T: Codec>(bytes: &[u8]) -> std::result::Result<T, DecodeError> {
    let mut input = Decoder::new(bytes);
    let version = input.byte()?;
    if version != RECORD_VERSION {
        return Err(DecodeError::new(
            0,
            format!("format version {version}, this build reads {RECORD_VERSION}"),
        ));
    }
    let value = T::decode(&mut input)?;
    input.finish()?;
    Ok(value)
}

/// Encodes `[RECORD_VERSION][value]` into `buf` (cleared first).
pub(crate) fn encode_versioned<T: Codec>(value: &T, buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(RECORD_VERSION);
    value.encode(buf);
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e)
}

/// LSN of raft index `index`.
fn lsn_of(index: u64) -> io::Result<u64> {
    index
        .checked_add(1)
        .filter(|&l| l < u64::MAX)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log index out of range"))
}

impl<C: CodecConfig> Inner<C> {
    /// The first LSN whose entry is still in the log.
    fn visible_first(&self, state: &State<C>) -> u64 {
        let purged_next = state
            .purged
            .as_ref()
            .map_or(1, |p| p.index.saturating_add(2));
        self.wal.first_lsn().0.max(purged_next)
    }

    fn read_entry(&self, lsn: u64) -> io::Result<C::Entry> {
        let record = self.wal.read(Lsn(lsn)).map_err(to_io)?;
        self.decode_entry(lsn, record.payload())
    }

    fn decode_entry(&self, lsn: u64, payload: &[u8]) -> io::Result<C::Entry> {
        let entry: C::Entry = decode_versioned(payload).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "raft entry at LSN {lsn} in {}: {e}",
                    self.wal.dir().display()
                ),
            )
        })?;
        if entry.index().checked_add(1) != Some(lsn) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record at LSN {lsn} in {} holds raft index {}",
                    self.wal.dir().display(),
                    entry.index()
                ),
            ));
        }
        Ok(entry)
    }

    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> io::Result<Vec<C::Entry>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let start_index = match range.0 {
            Bound::Included(i) => i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        // Raft indexes below `end_index` are LSNs up to and including `end_index`.
        let end_index = match range.1 {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let first = start_index
            .saturating_add(1)
            .max(self.visible_first(&state));
        let last = end_index.min(self.wal.appended().0);
        let mut out = Vec::new();
        if first > last {
            return Ok(out);
        }
        let mut expected = first;
        for record in self.wal.iter_from(Lsn(first)).map_err(to_io)? {
            let record = record.map_err(to_io)?;
            let lsn = record.lsn().0;
            if lsn > last {
                break;
            }
            if lsn != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "hole in the raft log of {}: LSN {expected} missing",
                        self.wal.dir().display()
                    ),
                ));
            }
            out.push(self.decode_entry(lsn, record.payload())?);
            expected += 1;
        }
        if expected <= last {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "raft log of {} ends at LSN {} before {last}",
                    self.wal.dir().display(),
                    expected - 1
                ),
            ));
        }
        Ok(out)
    }

    fn vote(&self) -> io::Result<Option<VoteOf<C>>> {
        self.meta_value::<VoteOf<C>>(META_VOTE)
    }

    fn meta_value<T: Codec>(&self, key: &str) -> io::Result<Option<T>> {
        match self.wal.meta(key) {
            None => Ok(None),
            Some(bytes) => decode_versioned::<T>(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("metadata {key} of {}: {e}", self.wal.dir().display()),
                )
            }),
        }
    }

    fn set_meta<T: Codec>(&self, key: &str, value: &T) -> io::Result<()> {
        let mut buf = Vec::new();
        encode_versioned(value, &mut buf);
        self.wal.set_meta(key, &buf).map_err(to_io)
    }
}

impl<C: CodecConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> io::Result<Vec<C::Entry>>
    where
        RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend,
    {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        self.inner.entries(range)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        self.inner.vote()
    }
}

impl<C: CodecConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> io::Result<LogState<C>> {
        let inner = &self.inner;
        let state = inner.state.read().unwrap_or_else(PoisonError::into_inner);
        let appended = inner.wal.appended().0;
        let last_log_id = if appended >= inner.visible_first(&state) {
            Some(inner.read_entry(appended)?.log_id())
        } else {
            state.purged.clone()
        };
        Ok(LogState {
            last_purged_log_id: state.purged.clone(),
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> io::Result<()> {
        let _state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.io_barrier()?;
        self.inner.set_meta(META_VOTE, vote)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> io::Result<()> {
        let _state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.io_barrier()?;
        self.inner.set_meta(META_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<C>>> {
        Ok(self
            .inner
            .meta_value::<Option<LogIdOf<C>>>(META_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> io::Result<()>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let inner = &self.inner;
        let mut last = 0;
        let mut buf = Vec::new();
        {
            let state = inner.state.write().unwrap_or_else(PoisonError::into_inner);
            for entry in entries {
                let lsn = lsn_of(entry.index())?;
                let next = inner.wal.appended().0 + 1;
                let visible_first = inner.visible_first(&state);
                if lsn < visible_first {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "append of raft index {}: the log is purged up to {:?}",
                            entry.index(),
                            state.purged
                        ),
                    ));
                }
                if lsn != next {
                    if next <= visible_first {
                        // The log shows no entry (empty, or purged up to or past its
                        // end, as after a snapshot install): it continues at `lsn`.
                        inner.io_barrier()?;
                        inner.wal.reset(Lsn(lsn)).map_err(to_io)?;
                    } else if lsn < next {
                        // Overwriting a suffix: openraft truncates first, but the
                        // contract allows appending over a conflict.
                        inner.io_barrier()?;
                        inner.wal.truncate_after(Lsn(lsn - 1)).map_err(to_io)?;
                    } else {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "append of raft index {} would leave a hole after index {}",
                                entry.index(),
                                visible_first.max(next).saturating_sub(2)
                            ),
                        ));
                    }
                }
                encode_versioned(&entry, &mut buf);
                let got = inner
                    .wal
                    .append_with(&buf, Durability::None)
                    .map_err(to_io)?;
                if got.0 != lsn {
                    return Err(io::Error::other(format!(
                        "raft index {} was appended at LSN {got} (bug)",
                        entry.index()
                    )));
                }
                last = lsn;
            }
        }
        inner.queue(Job::Flush {
            lsn: last,
            callback,
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> io::Result<()> {
        let inner = &self.inner;
        let state = inner.state.write().unwrap_or_else(PoisonError::into_inner);
        // Keep every LSN up to `keep`.
        let keep = match &last_log_id {
            None => 0,
            Some(id) => lsn_of(id.index)?,
        };
        if keep >= inner.wal.appended().0 {
            return Ok(());
        }
        if keep.saturating_add(1) < inner.visible_first(&state) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "truncate after {last_log_id:?}: the log was purged up to {:?}",
                    state.purged
                ),
            ));
        }
        inner.io_barrier()?;
        inner.wal.truncate_after(Lsn(keep)).map_err(to_io)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> io::Result<()> {
        let inner = &self.inner;
        let mut state = inner.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.purged.as_ref().is_some_and(|p| *p >= log_id) {
            return Ok(());
        }
        inner.io_barrier()?;
        // Durable first: from here on the entries are gone for every reader and every
        // later open, whether or not their segments are removed below.
        inner.set_meta(META_PURGED, &log_id)?;
        let index = log_id.index;
        state.purged = Some(log_id);
        // Segment granularity: remove the segments whose records all lie at or below
        // `index` (LSN `index + 1`).
        inner
            .wal
            .purge_before(Lsn(index.saturating_add(2)))
            .map_err(to_io)?;
        Ok(())
    }
}
