//! openraft's state-machine storage ([`RaftStateMachine`], [`RaftSnapshotBuilder`]) on
//! mmlog checkpoints.
//!
//! The application's state lives in memory and is applied to without touching the disk;
//! every snapshot (built here, or installed from the leader) is an mmlog checkpoint in
//! the state machine's own directory, written with the checkpoint protocol (temporary
//! file, sync, rename, directory sync), so a crash leaves the old snapshot or the new
//! one, never a mix. On open the newest checkpoint is the state; openraft then re-applies
//! the committed entries after it from the log. DESIGN.md §10 says why the snapshots
//! live in a second directory.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{OptionalSend, RaftTypeConfig, StoredMembership};

use crate::raft::CodecConfig;
use crate::raft::codec::{Codec, DecodeError, Decoder, put_varint};
use crate::raft::log_store::encode_versioned;
use crate::{
    CorruptionKind, Durability, Error, MIN_SEGMENT_BYTES, Options, RecoveryReport, Result, Wal,
};

/// Magic at the start of every snapshot checkpoint's payload.
const SNAPSHOT_MAGIC: &[u8; 8] = b"MMRAFTSM";
/// Version of the snapshot payload layout.
const SNAPSHOT_VERSION: u8 = 1;

/// The application a Raft group replicates: a deterministic state machine whose state
/// can be written to and read from a snapshot.
///
/// Its state is kept in memory; [`StateMachineStore`] makes it durable through
/// snapshots (mmlog checkpoints) and the Raft log.
pub trait RaftApp<C: RaftTypeConfig>: Default + Send + 'static {
    /// Applies one committed entry and returns the response for the client that
    /// proposed it. Called for every entry in log order, blank and membership entries
    /// included (the store records the membership itself).
    fn apply(&mut self, entry: &C::Entry) -> C::R;

    /// Appends the whole state to `out`.
    fn snapshot(&self, out: &mut Vec<u8>);

    /// Rebuilds the state from what [`RaftApp::snapshot`] wrote.
    fn restore(snapshot: &[u8]) -> std::result::Result<Self, String>;
}

/// openraft's state-machine storage: the application's state in memory, its snapshots
/// as mmlog checkpoints in one directory.
///
/// Cheap to clone (clones share the state): keep one to read the application's state
/// ([`StateMachineStore::read`]) while openraft owns another, and to
/// [`close`](StateMachineStore::close) the directory after `Raft::shutdown`.
pub struct StateMachineStore<C: RaftTypeConfig, A> {
    inner: Arc<SmInner<C, A>>,
}

impl<C: RaftTypeConfig, A> Clone for StateMachineStore<C, A> {
    fn clone(&self) -> Self {
        StateMachineStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: RaftTypeConfig, A> fmt::Debug for StateMachineStore<C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("wal", &self.inner.wal)
            .finish()
    }
}

struct SmInner<C: RaftTypeConfig, A> {
    /// Holds the snapshot checkpoints; its records are one marker per snapshot, which
    /// give each checkpoint a fresh LSN.
    wal: Wal,
    state: Mutex<SmState<C, A>>,
}

struct SmState<C: RaftTypeConfig, A> {
    app: A,
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
}

/// The snapshot builder of a [`StateMachineStore`]: writes the state as it is when
/// `build_snapshot` runs.
pub struct SnapshotBuilder<C: RaftTypeConfig, A> {
    store: StateMachineStore<C, A>,
}

impl<C: RaftTypeConfig, A> fmt::Debug for SnapshotBuilder<C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotBuilder").finish_non_exhaustive()
    }
}

/// The options of a state machine's directory derived from the log's: the smallest
/// segments (its records are markers of a few bytes), no prefault, one checkpoint
/// generation (an older snapshot could predate the log's purge point, so falling back
/// to it would be wrong: a damaged newest snapshot is an error instead).
pub fn state_machine_options(log: &Options) -> Options {
    Options {
        segment_size_bytes: MIN_SEGMENT_BYTES,
        durability: Durability::Sync,
        prefault: false,
        flush_interval: None,
        checkpoint_generations: 1,
        ..log.clone()
    }
}

impl<C: CodecConfig, A: RaftApp<C>> StateMachineStore<C, A> {
    /// Opens (or creates) the state machine's directory; the state is the newest
    /// snapshot's, or `A::default()` when there is none. A snapshot file that fails
    /// its checks is [`Error::Corrupt`] (`NoUsableCheckpoint`), whatever else the
    /// directory holds. Use
    /// [`state_machine_options`] for `opts` unless you know better (more than one
    /// checkpoint generation lets recovery fall back to a snapshot the log no longer
    /// connects to).
    pub fn open(
        dir: impl AsRef<Path>,
        opts: Options,
    ) -> Result<(StateMachineStore<C, A>, RecoveryReport)> {
        let (wal, report) = Wal::open(dir, opts)?;
        // A snapshot file that does not verify is damage, never a reason to fall back to
        // an older state (or to none): the Raft log may be purged past it.
        if let Some(bad) = report.rejected_checkpoints.first() {
            return Err(Error::corrupt(
                bad.file.clone(),
                0,
                CorruptionKind::NoUsableCheckpoint,
            ));
        }
        let state = match wal.checkpoint() {
            None => SmState {
                app: A::default(),
                last_applied: None,
                membership: StoredMembership::default(),
            },
            Some(ckpt) => {
                let restore_error = |reason: String| Error::Restore {
                    checkpoint: ckpt.path().to_path_buf(),
                    reason,
                };
                let (meta, data) =
                    decode_snapshot::<C>(ckpt.data()).map_err(|e| restore_error(e.to_string()))?;
                let app = A::restore(data).map_err(restore_error)?;
                SmState {
                    app,
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership,
                }
            }
        };
        Ok((
            StateMachineStore {
                inner: Arc::new(SmInner {
                    wal,
                    state: Mutex::new(state),
                }),
            },
            report,
        ))
    }
}

impl<C: RaftTypeConfig, A> StateMachineStore<C, A> {
    /// Runs `f` on the application's current state.
    pub fn read<T>(&self, f: impl FnOnce(&A) -> T) -> T {
        f(&self.lock().app)
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogIdOf<C>> {
        self.lock().last_applied.clone()
    }

    /// The directory's log (which holds the snapshot checkpoints), for inspection.
    pub fn wal(&self) -> &Wal {
        &self.inner.wal
    }

    /// Closes the directory cleanly (after `Raft::shutdown`). The in-memory state is
    /// not written: it is rebuilt from the newest snapshot and the Raft log.
    pub fn close(&self) -> Result<()> {
        self.inner.wal.close()
    }

    fn lock(&self) -> MutexGuard<'_, SmState<C, A>> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: CodecConfig, A: RaftApp<C>> StateMachineStore<C, A> {
    /// Writes the snapshot `(meta, data)` as a checkpoint: a marker record gives it a
    /// fresh LSN, the checkpoint protocol makes it durable and atomic, retention removes
    /// the previous one. Called with the state lock held, so snapshots are written in
    /// the order of the states they hold.
    fn persist(&self, meta: &SnapshotMetaOf<C>, data: &[u8]) -> io::Result<()> {
        let mut payload = Vec::with_capacity(data.len() + 64);
        payload.extend_from_slice(SNAPSHOT_MAGIC);
        payload.push(SNAPSHOT_VERSION);
        meta.encode(&mut payload);
        put_varint(&mut payload, data.len() as u64);
        payload.extend_from_slice(data);
        let mut marker = Vec::new();
        encode_versioned(&meta.last_log_id, &mut marker);
        let wal = &self.inner.wal;
        let lsn = wal
            .append_with(&marker, Durability::None)
            .map_err(io::Error::other)?;
        wal.write_checkpoint(lsn, &payload)
            .map_err(io::Error::other)?;
        Ok(())
    }

    fn current_snapshot(&self) -> io::Result<Option<SnapshotOf<C, Vec<u8>>>> {
        let Some(ckpt) = self.inner.wal.checkpoint() else {
            return Ok(None);
        };
        let (meta, data) = decode_snapshot::<C>(ckpt.data()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot {}: {e}", ckpt.path().display()),
            )
        })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: data.to_vec(),
        }))
    }
}

/// Splits a snapshot checkpoint's payload into its metadata and the application's bytes.
fn decode_snapshot<C: CodecConfig>(
    payload: &[u8],
) -> std::result::Result<(SnapshotMetaOf<C>, &[u8]), DecodeError> {
    let mut input = Decoder::new(payload);
    if input.take(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
        return Err(DecodeError::new(0, "not a Raft snapshot (bad magic)"));
    }
    let version = input.byte()?;
    if version != SNAPSHOT_VERSION {
        return Err(DecodeError::new(
            SNAPSHOT_MAGIC.len(),
            format!("snapshot format version {version}, this build reads {SNAPSHOT_VERSION}"),
        ));
    }
    let meta = SnapshotMetaOf::<C>::decode(&mut input)?;
    let len = input.length()?;
    let data = input.take(len)?;
    input.finish()?;
    Ok((meta, data))
}

impl<C: CodecConfig, A: RaftApp<C>> RaftSnapshotBuilder<C> for SnapshotBuilder<C, A> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<C, Vec<u8>>> {
        let state = self.store.lock();
        let meta = SnapshotMetaOf::<C> {
            last_log_id: state.last_applied.clone(),
            last_membership: state.membership.clone(),
        };
        let mut data = Vec::new();
        state.app.snapshot(&mut data);
        self.store.persist(&meta, &data)?;
        drop(state);
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl<C: CodecConfig, A: RaftApp<C>> RaftStateMachine<C> for StateMachineStore<C, A> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder<C, A>;

    async fn applied_state(&mut self) -> io::Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>)> {
        let state = self.lock();
        Ok((state.last_applied.clone(), state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<C>>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = {
                let mut state = self.lock();
                let log_id = entry.log_id();
                if let Some(m) = entry.get_membership() {
                    state.membership = StoredMembership::new(Some(log_id.clone()), m);
                }
                state.last_applied = Some(log_id);
                state.app.apply(&entry)
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> io::Result<()> {
        // Check the bytes before anything is written: a snapshot the application cannot
        // read must not become the durable one.
        let app = A::restore(&snapshot).map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot up to {:?} does not restore: {reason}",
                    meta.last_log_id
                ),
            )
        })?;
        let mut state = self.lock();
        self.persist(meta, &snapshot)?;
        state.app = app;
        state.last_applied = meta.last_log_id.clone();
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<C, Vec<u8>>>> {
        self.current_snapshot()
    }
}
