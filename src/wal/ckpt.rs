//! The log's side of checkpoints: which one recovery starts from, writing new ones,
//! and retention (old checkpoints, and the log segments no kept checkpoint needs).

use std::path::PathBuf;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use crate::Lsn;
use crate::checkpoint::{
    self, Checkpoint, CheckpointFileInfo, CheckpointRejection, RejectedCheckpoint,
};
use crate::error::{CorruptionKind, Error, Result};
use crate::sys::Step;
use crate::wal::Shared;
use crate::wal::report::RecoveryReport;

/// Checkpoints known to this handle.
#[derive(Default)]
pub(crate) struct CheckpointState {
    /// The newest usable checkpoint.
    pub latest: Option<Checkpoint>,
    /// Files recovery rejected: never counted as kept generations.
    pub rejected: Vec<PathBuf>,
}

impl Shared {
    /// Finds the newest checkpoint that verifies and connects to the log, falling back
    /// to older ones. With checkpoint files present but none usable, and a log that no
    /// longer starts at LSN 1, the state cannot be rebuilt: `Corrupt`.
    pub(crate) fn load_checkpoints(&self, report: &mut RecoveryReport) -> Result<()> {
        let (listed, tmp) = checkpoint::list(&self.env, &self.dir)?;
        let first = self.first_lsn.load(Ordering::Acquire);
        let last = self.appended();
        let lock = self.lock_hold()?;
        let mut state = CheckpointState::default();
        for l in &listed {
            let outcome = checkpoint::load(&self.env, l, &lock).and_then(|c| {
                // Replay starts at c.lsn + 1, which the log must still hold, and the
                // log must reach the checkpoint (it was synced before it was written).
                if c.lsn().0.saturating_add(1) < first || c.lsn().0 > last {
                    Err(CheckpointRejection::Unusable {
                        first_lsn: Lsn(first),
                        last_lsn: Lsn(last),
                    })
                } else {
                    Ok(c)
                }
            });
            match outcome {
                Ok(c) => {
                    report.checkpoint = Some((c.lsn(), c.path().to_path_buf()));
                    state.latest = Some(c);
                    break;
                }
                Err(reason) => {
                    state.rejected.push(l.path.clone());
                    report.rejected_checkpoints.push(RejectedCheckpoint {
                        file: l.path.clone(),
                        lsn: Lsn(l.lsn),
                        reason,
                    });
                }
            }
        }
        if state.latest.is_none() && !listed.is_empty() && first > 1 {
            let newest = listed.first().map(|l| l.path.clone()).unwrap_or_default();
            return Err(Error::corrupt(
                newest,
                0,
                CorruptionKind::NoUsableCheckpoint,
            ));
        }
        // Only once the open is known to succeed: a refused open changes nothing.
        if !self.read_only {
            for path in tmp {
                if self
                    .env
                    .op(Step::CheckpointRemove, &path, |s| s.remove_file(&path))
                    .is_ok()
                {
                    report.removed_files.push(path);
                }
            }
        }
        *self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = state;
        Ok(())
    }

    /// Every checkpoint file, newest first, each verified in full (header, size,
    /// payload checksum).
    pub(crate) fn checkpoint_files(&self) -> Result<Vec<CheckpointFileInfo>> {
        let (listed, _) = checkpoint::list(&self.env, &self.dir)?;
        let lock = self.lock_hold()?;
        Ok(listed
            .into_iter()
            .map(|l| {
                let file_bytes = self
                    .env
                    .storage
                    .open_file(&l.path, false)
                    .and_then(|f| f.len())
                    .unwrap_or(0);
                let problem = checkpoint::load(&self.env, &l, &lock).err();
                CheckpointFileInfo {
                    lsn: Lsn(l.lsn),
                    path: l.path,
                    file_bytes,
                    problem,
                }
            })
            .collect())
    }

    /// The newest usable checkpoint.
    pub(crate) fn latest_checkpoint(&self) -> Option<Checkpoint> {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .latest
            .clone()
    }

    /// Writes the checkpoint covering `lsn` (payload of `len` bytes from `fill`), then
    /// applies retention.
    pub(crate) fn write_checkpoint(
        &self,
        lsn: u64,
        len: u64,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Checkpoint> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let appended = self.appended();
        if lsn > appended {
            return Err(Error::InvalidArgument(format!(
                "checkpoint at LSN {lsn}, but the log ends at {appended}"
            )));
        }
        if let Some(prev) = self.latest_checkpoint()
            && lsn < prev.lsn().0
        {
            return Err(Error::InvalidArgument(format!(
                "checkpoint at LSN {lsn} is older than the latest one ({})",
                prev.lsn()
            )));
        }
        // The log must be durable through `lsn` first: otherwise a crash could lose
        // records the checkpoint includes, and new records would reuse their LSNs.
        self.sync_to(lsn)?;
        let lock = self.lock_hold()?;
        let written = checkpoint::write(&self.env, &self.dir, lsn, len, &lock, |buf| {
            fill(buf);
            Ok::<(), std::convert::Infallible>(())
        })?;
        let ckpt = match written {
            Ok(c) => c,
            Err(never) => match never {},
        };
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .latest = Some(ckpt.clone());
        self.retain()?;
        Ok(ckpt)
    }

    /// The LSN of the oldest checkpoint that counts as a kept generation (`None` when
    /// there is none): recovery may need the log from the LSN after it.
    pub(crate) fn oldest_kept_checkpoint(&self) -> Result<Option<u64>> {
        let valid = self.valid_checkpoints()?;
        let keep = self.opts.checkpoint_generations;
        Ok(valid
            .get(..keep.min(valid.len()))
            .and_then(<[_]>::last)
            .map(|l| l.lsn))
    }

    /// Checkpoint files, newest first, without those recovery rejected.
    fn valid_checkpoints(&self) -> Result<Vec<checkpoint::Listed>> {
        let rejected = self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rejected
            .clone();
        let (listed, _) = checkpoint::list(&self.env, &self.dir)?;
        Ok(listed
            .into_iter()
            .filter(|l| !rejected.contains(&l.path))
            .collect())
    }

    /// Keeps the newest `checkpoint_generations` valid checkpoints, removes older ones
    /// (oldest first), then the log segments that no kept checkpoint needs.
    fn retain(&self) -> Result<()> {
        let keep = self.opts.checkpoint_generations;
        let valid = self.valid_checkpoints()?;
        let Some(oldest_kept) = valid
            .get(..keep.min(valid.len()))
            .and_then(<[_]>::last)
            .map(|l| l.lsn)
        else {
            return Ok(());
        };
        let old = valid.get(keep..).unwrap_or_default();
        if !old.is_empty() {
            for l in old.iter().rev() {
                self.env
                    .op(Step::CheckpointRemove, &l.path, |s| s.remove_file(&l.path))?;
            }
            self.env
                .op(Step::DirSync, &self.dir, |s| s.sync_dir(&self.dir))?;
        }
        // Recovery from the oldest kept checkpoint replays from oldest_kept + 1.
        self.purge_before(oldest_kept.saturating_add(1))?;
        Ok(())
    }
}
