//! Durability: the durable watermark, group commit and poisoning.
//!
//! One thread at a time is the syncer. It snapshots the appended watermark, flushes
//! every segment with published but unflushed bytes (oldest first, so a record in
//! segment N+1 is never acknowledged before segment N is on disk), and then raises the
//! durable watermark to the snapshot. Writers that need an LSN the running sync covers
//! wait for it on a condition variable; one that needs more becomes the next syncer
//! and covers everything appended meanwhile (group commit). A failed flush poisons the
//! log: the error is kept, every waiter and every later append or sync gets
//! [`Error::Poisoned`], and nothing is retried.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::wal::{Shared, SyncState};

impl Shared {
    pub(crate) fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let st = self.sync_state();
        match &st.poison {
            Some(cause) => Err(Error::Poisoned {
                cause: Arc::clone(cause),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn sync_state(&self) -> MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once every LSN up to `target` (which must have been handed out) is
    /// durable. A target still being filled by another thread is waited for (without
    /// spinning) before any flush, so that the flush covers it.
    pub(crate) fn sync_to(&self, target: u64) -> Result<()> {
        if self.durable.load(Ordering::Acquire) >= target {
            return self.check_poison();
        }
        if self.appended() < target && !self.wait_reserved(target) {
            return Err(Error::NotFound {
                lsn: crate::Lsn(target),
            });
        }
        let mut st = self.sync_state();
        loop {
            if let Some(cause) = &st.poison {
                return Err(Error::Poisoned {
                    cause: Arc::clone(cause),
                });
            }
            if st.durable >= target {
                return Ok(());
            }
            if st.in_flight {
                let waited = Instant::now();
                st = self
                    .sync_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                self.stats.record_wait(waited.elapsed());
                continue;
            }
            st.in_flight = true;
            drop(st);
            let started = Instant::now();
            let result = self.flush_all();
            st = self.sync_state();
            st.in_flight = false;
            match result {
                Ok(upto) => {
                    self.stats
                        .record_sync(started.elapsed(), upto.saturating_sub(st.durable));
                    if upto > st.durable {
                        st.durable = upto;
                        self.durable.store(upto, Ordering::Release);
                    }
                }
                Err(e) => self.poison(&mut st, e),
            }
            self.sync_cv.notify_all();
            // Futures and callbacks: fired outside the lock (a callback may call in).
            drop(st);
            self.fire_watchers();
            st = self.sync_state();
        }
    }

    /// Flushes every published byte; returns the appended watermark it covers.
    fn flush_all(&self) -> Result<u64> {
        let upto = self.appended.load(Ordering::SeqCst);
        let segs: Vec<_> = self
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.needs_flush())
            .cloned()
            .collect();
        let skip = if self.env.sabotage.flush_only_newest_segment {
            segs.len().saturating_sub(1)
        } else {
            0
        };
        for seg in segs.iter().skip(skip) {
            seg.flush_published(&self.env)?;
        }
        Ok(upto)
    }

    /// Records the first failure; the log refuses everything durable from now on.
    pub(crate) fn poison(&self, st: &mut SyncState, e: Error) {
        if st.poison.is_none() {
            st.poison = Some(Arc::new(e));
        }
        self.poisoned.store(true, Ordering::Release);
    }

    /// Runs `f` as the only syncer (no flush runs concurrently). Used by truncation,
    /// purge and close, which change the segment list or the durable watermark.
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce(&mut u64) -> Result<T>) -> Result<T> {
        let mut st = self.sync_state();
        while st.in_flight {
            st = self
                .sync_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(cause) = &st.poison {
            return Err(Error::Poisoned {
                cause: Arc::clone(cause),
            });
        }
        st.in_flight = true;
        let mut durable = st.durable;
        drop(st);
        let result = f(&mut durable);
        let mut st = self.sync_state();
        st.in_flight = false;
        st.durable = durable;
        self.durable.store(durable, Ordering::Release);
        self.sync_cv.notify_all();
        drop(st);
        self.fire_watchers();
        result
    }
}
