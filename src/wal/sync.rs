//! Durability: the durable watermark, group commit and poisoning.
//!
//! One thread at a time is the syncer. It snapshots the appended watermark, flushes
//! every segment with published but unflushed bytes (oldest first, so a record in
//! segment N+1 is never acknowledged before segment N is on disk), and then raises the
//! durable watermark to the snapshot. Writers that need an LSN the running sync covers
//! wait for it on a condition variable; one that needs more becomes the next syncer
//! and covers everything appended meanwhile (group commit). When fewer threads wait
//! for records not yet durable than were waiting when the last flush ended, the next
//! syncer first waits, asleep and for at most a quarter of the last flush's time, for
//! the writers that flush released to append again: otherwise two groups alternate,
//! each flush covering only half of the writers. A failed flush poisons the
//! log: the error is kept, every waiter and every later append or sync gets
//! [`Error::Poisoned`], and nothing is retried.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::wal::{Shared, SyncState};

/// What [`Shared::exclusive`] hands its closure.
pub(crate) struct Exclusive {
    /// The durable watermark, to lower or raise.
    pub(crate) durable: u64,
    /// Set when records after this LSN are dropped (truncation, reset): threads
    /// waiting in `sync_to` for one of them give up.
    pub(crate) cut: Option<u64>,
}

/// A truncation or reset, as the threads waiting in `sync_to` see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    /// Its number (`SyncState::cut_gen` after it).
    gen_: u64,
    /// Records up to this LSN survived it; the ones after it were dropped.
    kept: u64,
    /// The durable watermark just before it.
    durable_before: u64,
}

/// A thread inside `sync_to`: unregistered also when it unwinds (an `on_durable`
/// callback that panics), so that `waiting`, `targets` and the next `peak` stay true.
struct Registered<'a> {
    shared: &'a Shared,
    target: u64,
    armed: bool,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.sync_state().leave(self.target);
        }
    }
}

/// The longest a syncer waits for more records before it flushes.
const GATHER_MAX: Duration = Duration::from_millis(1);

impl SyncState {
    /// Whether fewer threads wait for records that are not durable yet than were inside
    /// `sync_to` when the last flush ended (and more than one was).
    fn expects_more(&self) -> bool {
        if self.peak <= 1 || self.exclusive_waiting > 0 {
            return false;
        }
        let pending = self.targets.iter().filter(|&&t| t > self.durable).count();
        pending < self.peak
    }

    /// Unregisters a thread leaving `sync_to` for `target`.
    fn leave(&mut self, target: u64) {
        self.waiting = self.waiting.saturating_sub(1);
        if let Some(k) = self.targets.iter().position(|&t| t == target) {
            self.targets.swap_remove(k);
        }
        if self.waiting == 0 {
            self.cuts.clear();
        }
    }

    /// How a wait for `target` that began when `seen` cuts had been made ends because
    /// of the cuts since: `Ok` if `target` was durable before the first cut that
    /// dropped it, `NotFound` if it was not; `None` if no cut dropped it.
    fn fate_after(&self, seen: u64, target: u64) -> Option<Result<()>> {
        if self.cut_gen == seen {
            return None;
        }
        for cut in self.cuts.iter().filter(|c| c.gen_ > seen) {
            if cut.durable_before >= target {
                return Some(Ok(()));
            }
            if cut.kept < target {
                return Some(Err(Error::NotFound {
                    lsn: crate::Lsn(target),
                }));
            }
        }
        None
    }
}

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
    /// spinning) before any flush, so that the flush covers it. If a truncation or a
    /// reset drops the record at `target` while this waits, the wait ends with
    /// [`Error::NotFound`] (or `Ok` if the record was durable before it was dropped),
    /// even if a later record reuses the LSN.
    pub(crate) fn sync_to(&self, target: u64) -> Result<()> {
        if self.durable.load(Ordering::Acquire) >= target {
            return self.check_poison();
        }
        // Registered before anything can be missed: every cut after `seen` is kept in
        // `cuts` until this thread leaves (in the same critical sections the wait takes
        // anyway, so registering costs no extra locking).
        let mut st = self.sync_state();
        st.waiting += 1;
        st.targets.push(target);
        if st.gathering {
            self.gather_cv.notify_one();
        }
        let mut registered = Registered {
            shared: self,
            target,
            armed: true,
        };
        let seen = st.cut_gen;
        let (mut st, result) = self.sync_to_registered(st, target, seen);
        st.leave(target);
        registered.armed = false;
        result
    }

    fn sync_to_registered<'a>(
        &'a self,
        mut st: MutexGuard<'a, SyncState>,
        target: u64,
        seen: u64,
    ) -> (MutexGuard<'a, SyncState>, Result<()>) {
        if self.appended() < target {
            drop(st);
            let appended = self.wait_reserved(target);
            st = self.sync_state();
            if !appended {
                let gone = Error::NotFound {
                    lsn: crate::Lsn(target),
                };
                return (st, Err(gone));
            }
        }
        loop {
            if let Some(cut) = st.fate_after(seen, target) {
                return (st, cut);
            }
            if let Some(cause) = &st.poison {
                let poisoned = Error::Poisoned {
                    cause: Arc::clone(cause),
                };
                return (st, Err(poisoned));
            }
            if st.durable >= target {
                return (st, Ok(()));
            }
            if st.in_flight {
                let waited = Instant::now();
                #[cfg(test)]
                {
                    st.parked += 1;
                }
                st = self
                    .sync_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                #[cfg(test)]
                {
                    st.parked -= 1;
                }
                self.stats.record_wait(waited.elapsed());
                continue;
            }
            st.in_flight = true;
            st = self.gather(st);
            drop(st);
            let started = Instant::now();
            let result = self.flush_all();
            let took = started.elapsed();
            st = self.sync_state();
            st.in_flight = false;
            st.last_flush = took;
            st.peak = st.waiting;
            match result {
                Ok(upto) => {
                    self.stats
                        .record_sync(took, upto.saturating_sub(st.durable));
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

    /// Before a flush: when fewer threads wait for records not yet durable than were
    /// inside `sync_to` when the last flush ended, the writers the last flush released
    /// are likely appending their next records. Waits (asleep, never spinning) until
    /// they are back or a quarter of the last flush's time has passed, so that one
    /// flush covers them too instead of them waiting for the next one.
    fn gather<'a>(&'a self, mut st: MutexGuard<'a, SyncState>) -> MutexGuard<'a, SyncState> {
        if !st.expects_more() {
            return st;
        }
        let deadline = Instant::now() + (st.last_flush / 4).min(GATHER_MAX);
        st.gathering = true;
        while st.expects_more() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .gather_cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.gathering = false;
        st
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
    /// reset, purge and close, which change the segment list or the durable watermark.
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce(&mut Exclusive) -> Result<T>) -> Result<T> {
        let mut st = self.sync_state();
        if st.in_flight {
            // A gathering syncer waits for writers that this caller (holding the
            // writer lock, or closing) may keep out: it flushes at once instead.
            st.exclusive_waiting += 1;
            if st.gathering {
                self.gather_cv.notify_one();
            }
            while st.in_flight {
                st = self
                    .sync_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            st.exclusive_waiting -= 1;
        }
        if let Some(cause) = &st.poison {
            return Err(Error::Poisoned {
                cause: Arc::clone(cause),
            });
        }
        st.in_flight = true;
        let mut ex = Exclusive {
            durable: st.durable,
            cut: None,
        };
        drop(st);
        let result = f(&mut ex);
        let mut st = self.sync_state();
        st.in_flight = false;
        if let Some(kept) = ex.cut {
            st.cut_gen += 1;
            if st.waiting > 0 {
                let cut = Cut {
                    gen_: st.cut_gen,
                    kept,
                    durable_before: st.durable,
                };
                st.cuts.push(cut);
            }
        }
        st.durable = ex.durable;
        self.durable.store(ex.durable, Ordering::Release);
        self.sync_cv.notify_all();
        drop(st);
        self.fire_watchers();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Durability, Options};
    use crate::sys::Env;
    use crate::{Lsn, Wal};

    fn state(cut_gen: u64, cuts: Vec<Cut>) -> SyncState {
        SyncState {
            durable: 0,
            in_flight: false,
            poison: None,
            cut_gen,
            waiting: 1,
            targets: vec![1],
            peak: 0,
            last_flush: std::time::Duration::ZERO,
            gathering: false,
            exclusive_waiting: 0,
            cuts,
            parked: 0,
        }
    }

    #[test]
    fn a_syncer_gathers_only_when_writers_the_last_flush_released_are_missing() {
        let with = |peak: usize, durable: u64, targets: Vec<u64>| SyncState {
            durable,
            peak,
            waiting: targets.len(),
            targets,
            ..state(0, Vec::new())
        };
        // A truncation, reset or close waits for the flush: no gathering.
        assert!(
            !SyncState {
                exclusive_waiting: 1,
                ..with(4, 4, vec![3, 4, 5, 6])
            }
            .expects_more()
        );
        // One writer: never waits for anybody.
        assert!(!with(1, 4, vec![5]).expects_more());
        assert!(!with(0, 4, vec![5]).expects_more());
        // Four were waiting; two of them are still inside but already durable (on
        // their way out), two wait: the other two are expected back.
        assert!(with(4, 4, vec![3, 4, 5, 6]).expects_more());
        // All four wait for records not yet durable: flush now.
        assert!(!with(4, 4, vec![5, 6, 7, 8]).expects_more());
        // More than before: flush now.
        assert!(!with(2, 4, vec![5, 6, 7]).expects_more());
    }

    /// A log in `dir` with small segments and no background threads.
    fn open_quiet(dir: &std::path::Path) -> Wal {
        let opts = Options {
            segment_size_bytes: 64 * 1024,
            durability: Durability::None,
            env: Env::default().without_background(),
            ..Options::default()
        };
        Wal::open(dir, opts).expect("open").0
    }

    #[test]
    fn a_thread_that_unwinds_out_of_a_sync_is_unregistered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = open_quiet(dir.path());
        let lsn = wal.append(b"first").expect("append");
        wal.on_durable(lsn, |_| panic!("a callback that panics"));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wal.sync()));
        assert!(unwound.is_err(), "the callback ran on the syncing thread");
        let st = wal.shared.sync_state();
        assert_eq!(
            (st.waiting, st.targets.len()),
            (0, 0),
            "nobody is inside sync_to"
        );
        drop(st);
        // A single writer then flushes without gathering.
        wal.append_with(b"second", Durability::Sync)
            .expect("durable append");
        assert_eq!(wal.shared.sync_state().peak, 1);
    }

    fn cut(gen_: u64, kept: u64, durable_before: u64) -> Cut {
        Cut {
            gen_,
            kept,
            durable_before,
        }
    }

    /// What a fate says, in words a failed assertion shows.
    fn said(r: Option<Result<()>>) -> String {
        match r {
            None => "no cut dropped it".into(),
            Some(Ok(())) => "durable".into(),
            Some(Err(Error::NotFound { lsn })) => format!("{lsn} not found"),
            Some(Err(e)) => format!("error {e}"),
        }
    }

    #[test]
    fn the_first_cut_that_drops_a_waited_record_decides() {
        let gone = "12 not found";
        // No cut since the wait began: nothing to say.
        let st = state(3, vec![cut(3, 5, 5)]);
        assert_eq!(said(st.fate_after(3, 12)), "no cut dropped it");
        // A cut above the record leaves it alone.
        let st = state(1, vec![cut(1, 20, 9)]);
        assert_eq!(said(st.fate_after(0, 12)), "no cut dropped it");
        // Dropped before it was durable.
        assert_eq!(said(state(1, vec![cut(1, 10, 9)]).fate_after(0, 12)), gone);
        // Durable before the cut that dropped it: acknowledged.
        let st = state(1, vec![cut(1, 10, 12)]);
        assert_eq!(said(st.fate_after(0, 12)), "durable");
        // Only cuts after the wait began count, in order: a harmless one, then one
        // that drops the record; a later one that finds it durable comes too late.
        let st = state(4, vec![cut(2, 3, 3), cut(3, 30, 9), cut(4, 10, 9)]);
        assert_eq!(said(st.fate_after(2, 12)), gone);
        let st = state(3, vec![cut(2, 10, 9), cut(3, 10, 40)]);
        assert_eq!(said(st.fate_after(1, 12)), gone);
    }

    /// Stages the race a blocked waiter can lose: it sleeps on the sync condition
    /// variable (a sync is in flight), the sync ends without waking it, and a
    /// truncation (or a reset) drops its record before it looks again. It must give up
    /// with `NotFound`, not sync in a loop until the LSN is handed out again, and not
    /// take the reset's new watermark for its own sync.
    #[test]
    fn a_blocked_waiter_gives_up_when_its_record_is_cut() {
        for (reset, whole_log) in [(false, false), (true, false), (false, true)] {
            let dir = tempfile::tempdir().expect("temp dir");
            let wal = open_quiet(dir.path());
            for i in 0..12u32 {
                wal.append(&i.to_le_bytes()).expect("append");
                if i == 8 {
                    wal.sync().expect("sync through 9");
                }
            }
            let shared = &wal.shared;
            // A sync in flight, as far as waiters can tell.
            shared.sync_state().in_flight = true;
            std::thread::scope(|s| {
                let (tx, rx) = std::sync::mpsc::channel();
                let waiter = s.spawn(move || {
                    // `sync()` waits for all that was appended, here 12.
                    let r = if whole_log {
                        shared.sync_all().map(|_| ())
                    } else {
                        shared.sync_to(12)
                    };
                    let _ = tx.send(r);
                });
                loop {
                    let st = shared.sync_state();
                    if st.parked == 1 {
                        break;
                    }
                    drop(st);
                    std::thread::yield_now();
                }
                // The sync ends without a wake-up; the cut comes first.
                shared.sync_state().in_flight = false;
                if reset {
                    wal.reset(Lsn(100)).expect("reset");
                } else {
                    wal.truncate_after(Lsn(10)).expect("truncate");
                }
                let r = rx
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .unwrap_or_else(|_| {
                        // Still waiting (or syncing in a loop): hand LSNs 11 and 12
                        // out again so it returns, and fail.
                        while wal.appended() < Lsn(12) {
                            wal.append(b"another").expect("append");
                        }
                        wal.sync().expect("sync");
                        let r = rx.recv().expect("the waiter answers");
                        panic!("reset {reset}: the waiter did not give up; then: {r:?}")
                    });
                waiter.join().expect("waiter thread");
                if whole_log {
                    // `sync()` makes what is left durable instead.
                    assert_eq!(said(Some(r)), "durable", "sync() across a truncation");
                    assert_eq!(wal.durable(), Lsn(10));
                } else {
                    assert_eq!(said(Some(r)), "12 not found", "reset {reset}");
                }
            });
            wal.close().expect("close");
        }
    }
}
