//! `Store<S>`: crash-safe state for a server, on top of the log and checkpoints.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Lsn;
use crate::error::{CorruptionKind, Error, Result};
use crate::options::{Durability, Options, RecoveryMode};
use crate::wal::{RecoveryReport, Wal};

/// The server state a [`Store`] keeps: a deterministic state machine fed with logged
/// commands, that can write itself into a snapshot and rebuild itself from one.
pub trait StateMachine: Sized {
    /// The state of a store with an empty log.
    fn initial() -> Self;

    /// Applies one command. Must be deterministic: the same commands applied to the
    /// same state give the same state, because recovery replays them.
    fn apply(&mut self, lsn: Lsn, command: &[u8]);

    /// The exact number of bytes [`StateMachine::write_snapshot`] will write.
    fn snapshot_len(&self) -> usize;

    /// Writes the state into `out`, which is exactly `snapshot_len()` bytes of a
    /// memory-mapped checkpoint file (zero-copy serialisation).
    fn write_snapshot(&self, out: &mut [u8]);

    /// Rebuilds the state from a snapshot written by `write_snapshot`. The bytes passed
    /// their checksum; an error here means the format is not what the code expects.
    fn restore(snapshot: &[u8]) -> std::result::Result<Self, String>;
}

/// When a [`Store`] checkpoints on its own. Every limit is optional; a checkpoint
/// resets them all.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The log's options.
    pub wal: Options,
    /// Checkpoint after this many commands. Default = none.
    pub checkpoint_every_records: Option<u64>,
    /// Checkpoint after this many bytes of commands. Default = 64 MiB.
    pub checkpoint_every_bytes: Option<u64>,
    /// Checkpoint when this much time has passed since the last one (checked at each
    /// command). Default = none.
    pub checkpoint_every: Option<Duration>,
    /// Checkpoint when the log's segment files take more than this many bytes on disk
    /// (a checkpoint lets retention remove them). Default = 1 GiB.
    pub max_log_bytes: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            wal: Options::default(),
            checkpoint_every_records: None,
            checkpoint_every_bytes: Some(64 << 20),
            checkpoint_every: None,
            max_log_bytes: Some(1 << 30),
        }
    }
}

/// Crash-safe state: commands are logged, then applied; recovery restores the newest
/// checkpoint and replays the log after it.
///
/// ```
/// use mmlog::{Lsn, StateMachine, Store, StoreOptions};
///
/// #[derive(Default)]
/// struct Counter(u64);
///
/// impl StateMachine for Counter {
///     fn initial() -> Self { Counter(0) }
///     fn apply(&mut self, _lsn: Lsn, cmd: &[u8]) { self.0 += u64::from(cmd[0]); }
///     fn snapshot_len(&self) -> usize { 8 }
///     fn write_snapshot(&self, out: &mut [u8]) { out.copy_from_slice(&self.0.to_le_bytes()); }
///     fn restore(b: &[u8]) -> Result<Self, String> {
///         Ok(Counter(u64::from_le_bytes(b.try_into().map_err(|_| "bad length")?)))
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let (mut store, _) = Store::<Counter>::open(dir.path(), StoreOptions::default())?;
/// store.execute(&[2])?;
/// store.checkpoint()?;
/// store.execute(&[3])?;
/// store.close()?;
/// let (store, report) = Store::<Counter>::open(dir.path(), StoreOptions::default())?;
/// assert_eq!(store.state().0, 5);
/// assert!(report.clean_shutdown);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store<S> {
    wal: Wal,
    state: S,
    opts: StoreOptions,
    since_records: u64,
    since_bytes: u64,
    last_checkpoint: Instant,
    /// An automatic checkpoint failed after its command was logged; the next call
    /// reports it before doing anything.
    pending: Option<Error>,
}

impl<S> fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("wal", &self.wal).finish()
    }
}

impl<S: StateMachine> Store<S> {
    /// Opens (or creates) the store in `dir`: recovers the log, restores the newest
    /// usable checkpoint, and replays every command after it. The report says whether
    /// the last shutdown was clean (whether [`Store::close`] completed).
    pub fn open(dir: impl AsRef<Path>, opts: StoreOptions) -> Result<(Store<S>, RecoveryReport)> {
        let (wal, report) = Wal::open(dir, opts.wal.clone())?;
        let (mut state, from) = match wal.checkpoint() {
            Some(c) => {
                let state = S::restore(c.data()).map_err(|reason| Error::Restore {
                    checkpoint: c.path().to_path_buf(),
                    reason,
                })?;
                (state, c.lsn().0 + 1)
            }
            None => {
                if wal.first_lsn().0 > 1 {
                    // The log was purged, so it alone cannot rebuild the state; starting
                    // empty would silently lose everything before it.
                    let file = report
                        .rejected_checkpoints
                        .first()
                        .map(|r| r.file.clone())
                        .unwrap_or_else(|| wal.dir().to_path_buf());
                    return Err(Error::corrupt(file, 0, CorruptionKind::NoUsableCheckpoint));
                }
                (S::initial(), 1)
            }
        };
        let salvage = opts.wal.recovery_mode == RecoveryMode::SkipCorrupted;
        let mut expected = from;
        let mut gap = None;
        wal.for_each_from(Lsn(from), |lsn, payload| {
            if lsn.0 != expected && !salvage {
                gap = Some(lsn);
                return false;
            }
            state.apply(lsn, payload);
            expected = lsn.0 + 1;
            true
        })?;
        if let Some(found) = gap {
            return Err(Error::corrupt(
                wal.dir(),
                0,
                CorruptionKind::LsnGap {
                    expected: Lsn(expected),
                    found,
                },
            ));
        }
        Ok((
            Store {
                wal,
                state,
                opts,
                since_records: 0,
                since_bytes: 0,
                last_checkpoint: Instant::now(),
                pending: None,
            },
            report,
        ))
    }

    /// Logs `command` with the store's durability, then applies it.
    pub fn execute(&mut self, command: &[u8]) -> Result<Lsn> {
        let durability = self.opts.wal.durability;
        self.execute_with(command, durability)
    }

    /// Logs `command` with the given durability, then applies it.
    pub fn execute_with(&mut self, command: &[u8], durability: Durability) -> Result<Lsn> {
        self.take_pending()?;
        let lsn = self.wal.append_with(command, durability)?;
        self.state.apply(lsn, command);
        self.after(1, command.len() as u64);
        Ok(lsn)
    }

    /// Logs `commands` as one batch (after a crash, all of them are there or none),
    /// then applies them in order. Returns the LSN of the first.
    pub fn execute_batch(&mut self, commands: &[&[u8]]) -> Result<Lsn> {
        self.take_pending()?;
        let durability = self.opts.wal.durability;
        let first = self.wal.append_batch_with(commands, durability)?;
        for (i, c) in commands.iter().enumerate() {
            self.state.apply(Lsn(first.0 + i as u64), c);
        }
        let bytes = commands.iter().map(|c| c.len() as u64).sum();
        self.after(commands.len() as u64, bytes);
        Ok(first)
    }

    /// Writes a checkpoint of the current state now; returns the LSN it covers.
    pub fn checkpoint(&mut self) -> Result<Lsn> {
        self.take_pending()?;
        self.checkpoint_now()
    }

    fn checkpoint_now(&mut self) -> Result<Lsn> {
        let lsn = self.wal.appended();
        let len = self.state.snapshot_len() as u64;
        let state = &self.state;
        self.wal
            .write_checkpoint_with(lsn, len, |buf| state.write_snapshot(buf))?;
        self.since_records = 0;
        self.since_bytes = 0;
        self.last_checkpoint = Instant::now();
        Ok(lsn)
    }

    fn take_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Counts the commands just applied and checkpoints when a policy says so.
    fn after(&mut self, records: u64, bytes: u64) {
        self.since_records += records;
        self.since_bytes += bytes;
        let o = &self.opts;
        let due = o
            .checkpoint_every_records
            .is_some_and(|n| self.since_records >= n)
            || o.checkpoint_every_bytes
                .is_some_and(|n| self.since_bytes >= n)
            || o.checkpoint_every
                .is_some_and(|d| self.last_checkpoint.elapsed() >= d)
            || o.max_log_bytes
                .is_some_and(|n| self.wal.segment_bytes() > n);
        if due && let Err(e) = self.checkpoint_now() {
            self.pending = Some(e);
        }
    }

    /// The current state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The underlying log (for reading, stats, or syncing).
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Syncs, marks the shutdown clean and releases the directory. An automatic
    /// checkpoint error that was not reported yet is returned here.
    pub fn close(mut self) -> Result<()> {
        let pending = self.take_pending();
        self.wal.close()?;
        pending
    }
}
