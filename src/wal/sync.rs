//! Durability: the durable watermark, group commit and poisoning.
//!
//! A thread that needs an LSN durable becomes a syncer unless a running flush already
//! covers it. A syncer snapshots the appended watermark, flushes every segment with
//! published but unflushed bytes (oldest first, so a record in segment N+1 is never
//! acknowledged before segment N is on disk), and then credits the snapshot to the
//! durable watermark. Writers that need an LSN a running flush covers wait for it on a
//! condition variable; one that needs more becomes the next syncer and covers
//! everything appended meanwhile (group commit). When fewer threads wait for records
//! not yet durable than were waiting when the last flush ended, a syncer that starts
//! alone first waits, asleep and for at most a quarter of the last flush's time, for
//! the writers that flush released to append again: otherwise two groups alternate,
//! each flush covering only half of the writers.
//!
//! Up to [`MAX_FLIGHTS`] flushes run at once: a second one starts beside the first when
//! at least [`SECOND_FLIGHT_MIN`] threads wait for records the first does not cover.
//! Each holds a slot, and after each `msync` checks for write-back errors through the
//! segment's handle for that slot: the kernel reports an error to one `msync` of the
//! file, which may be the other flush's, but to every open handle of its own. Flushes
//! are credited in the order they started. A failed flush poisons the log: the error
//! is kept, every waiter and every later append or sync gets [`Error::Poisoned`],
//! nothing more is credited, and nothing is retried.

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

/// Flushes that may run at once.
pub(crate) const MAX_FLIGHTS: usize = 2;

/// Threads that must be waiting for records no running flush covers before a second
/// flush starts beside the first. Two overlapping flushes share the page where one's
/// range ends and the other's begins, so the second writes it again: measured on the
/// 2-core development machine, overlapping flushes of 1 to 4 records each were slower
/// than flushes one after the other (4 writers: 52–61 k against 73–79 k durable
/// appends/s), while at 16 writers a second flush for 6 or more raised the median of
/// ten alternating runs from 55 k to 73 k.
pub(crate) const SECOND_FLIGHT_MIN: usize = 6;

/// A flush that ended and waits to be credited to the durable watermark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    ticket: u64,
    /// The appended watermark it covers.
    upto: u64,
    took: Duration,
}

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

    /// Whether a thread waiting for `target` (not durable yet) leaves the flushing to
    /// others: an exclusive section runs or waits to run (it goes first), a flush is
    /// being gathered (it will cover `target`), a running flush covers `target`, or a
    /// second flush is not worth starting (see [`SECOND_FLIGHT_MIN`]).
    fn must_wait(&self, target: u64) -> bool {
        if self.exclusive || self.gathering || self.exclusive_waiting > 0 {
            return true;
        }
        if self.flights == 0 {
            return false;
        }
        if self.flights >= MAX_FLIGHTS || target <= self.covered {
            return true;
        }
        let uncovered = self.targets.iter().filter(|&&t| t > self.covered).count();
        uncovered < SECOND_FLIGHT_MIN
    }

    /// The ended flush with `ticket` and its place in `ended`, if it has ended.
    fn ended_flush(&self, ticket: u64) -> Option<(usize, Ended)> {
        let k = self.ended.iter().position(|e| e.ticket == ticket)?;
        Some((k, *self.ended.get(k)?))
    }

    /// Takes a free flush slot (there is one whenever `flights` < `MAX_FLIGHTS`).
    fn take_slot(&mut self) -> usize {
        let free = self.slot_busy.iter().position(|busy| !busy).unwrap_or(0);
        if let Some(b) = self.slot_busy.get_mut(free) {
            *b = true;
        }
        free
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
            if st.must_wait(target) {
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
            st.flights += 1;
            if st.flights == 1 {
                st = self.gather(st);
            } else {
                self.stats.overlapped_syncs.fetch_add(1, Ordering::Relaxed);
            }
            // A lower bound of what this flush covers, for the waiters deciding now:
            // `flush_all` reads the watermark again, later, and covers at least this.
            st.covered = self.appended.load(Ordering::SeqCst);
            let ticket = st.tickets;
            st.tickets += 1;
            let slot = st.take_slot();
            drop(st);
            let started = Instant::now();
            let (upto, result) = self.flush_all(slot);
            let took = started.elapsed();
            st = self.sync_state();
            if let Some(b) = st.slot_busy.get_mut(slot) {
                *b = false;
            }
            self.end_flight(&mut st, ticket, upto, took, result);
            self.sync_cv.notify_all();
            // Futures and callbacks: fired outside the lock (a callback may call in).
            drop(st);
            self.fire_watchers();
            st = self.sync_state();
        }
    }

    /// Books the end of the flush `ticket`, which covered `upto`: a failure poisons the
    /// log; then every ended flush that can be is credited, in ticket order.
    fn end_flight(
        &self,
        st: &mut SyncState,
        ticket: u64,
        upto: u64,
        took: Duration,
        result: Result<()>,
    ) {
        st.flights -= 1;
        st.last_flush = took;
        st.peak = st.waiting;
        if let Err(e) = result {
            self.poison(st, e);
        }
        st.ended.push(Ended { ticket, upto, took });
        while let Some((k, e)) = st.ended_flush(st.credited) {
            st.ended.swap_remove(k);
            st.credited += 1;
            if st.poison.is_some() {
                continue;
            }
            self.stats
                .record_sync(e.took, e.upto.saturating_sub(st.durable));
            if e.upto > st.durable {
                st.durable = e.upto;
                self.durable.store(e.upto, Ordering::Release);
            }
        }
        debug_assert!(
            st.flights > 0 || st.ended.is_empty(),
            "with no flush running, every ended flush is credited"
        );
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

    /// Flushes every published byte; returns the appended watermark it covers (read
    /// before any segment's end, so every byte of a record up to it is published).
    fn flush_all(&self, slot: usize) -> (u64, Result<()>) {
        let upto = self.appended.load(Ordering::SeqCst);
        (upto, self.flush_segments(slot))
    }

    fn flush_segments(&self, slot: usize) -> Result<()> {
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
            seg.flush_published(&self.env, slot)?;
        }
        Ok(())
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
        if st.flights > 0 || st.exclusive {
            // A gathering syncer waits for writers that this caller (holding the
            // writer lock, or closing) may keep out: it flushes at once instead. No
            // second flush starts meanwhile.
            st.exclusive_waiting += 1;
            if st.gathering {
                self.gather_cv.notify_one();
            }
            while st.flights > 0 || st.exclusive {
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
        st.exclusive = true;
        let mut ex = Exclusive {
            durable: st.durable,
            cut: None,
        };
        drop(st);
        let result = f(&mut ex);
        let mut st = self.sync_state();
        st.exclusive = false;
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
            flights: 0,
            exclusive: false,
            covered: 0,
            tickets: 0,
            credited: 0,
            ended: Vec::new(),
            slot_busy: [false; MAX_FLIGHTS],
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
    fn a_second_flush_starts_only_for_a_large_group_no_running_flush_covers() {
        let running = |flights: usize, covered: u64, targets: Vec<u64>| SyncState {
            flights,
            covered,
            waiting: targets.len(),
            targets,
            ..state(0, Vec::new())
        };
        let many = |from: u64| (from..from + SECOND_FLIGHT_MIN as u64).collect::<Vec<_>>();
        // No flush runs: a waiter flushes.
        assert!(!running(0, 0, vec![5]).must_wait(5));
        // The running flush covers it: it waits.
        assert!(running(1, 10, many(5)).must_wait(5));
        // Not covered, but too few uncovered waiters for a second flush.
        let few: Vec<u64> = (11..11 + SECOND_FLIGHT_MIN as u64 - 1).collect();
        assert!(running(1, 10, few).must_wait(11));
        // Enough of them: a second flush starts.
        assert!(!running(1, 10, many(11)).must_wait(11));
        // Never more than MAX_FLIGHTS at once.
        assert!(running(MAX_FLIGHTS, 10, many(11)).must_wait(11));
        // A caller of `exclusive` waiting or running, or a flush being gathered: wait.
        for st in [
            SyncState {
                exclusive_waiting: 1,
                ..running(1, 10, many(11))
            },
            SyncState {
                exclusive_waiting: 1,
                ..running(0, 10, many(11))
            },
            SyncState {
                exclusive: true,
                ..running(0, 10, many(11))
            },
            SyncState {
                gathering: true,
                ..running(1, 10, many(11))
            },
        ] {
            assert!(st.must_wait(11), "flights {} must wait", st.flights);
        }
    }

    /// Two flushes that overlap are credited in the order they started, whichever ends
    /// first; a failure credits nothing that was not credited before it.
    #[test]
    fn overlapping_flushes_are_credited_in_start_order_and_a_failure_stops_the_credit() {
        let took = std::time::Duration::from_micros(50);
        // (flush that ends first, the failing one, durable after the first end and
        // after the second, as offsets from the start)
        let cases = [
            (0, None, 3, 7),
            (1, None, 0, 7),
            (0, Some(1), 3, 3),
            (1, Some(0), 0, 0),
            (0, Some(0), 0, 0),
        ];
        for (first_ends, fails, after_first, after_both) in cases {
            let dir = tempfile::tempdir().expect("temp dir");
            let wal = open_quiet(dir.path());
            let shared = &wal.shared;
            let mut st = shared.sync_state();
            let base = st.durable;
            // Flush 0 covers up to base + 3, flush 1 (started while 0 ran) base + 7.
            st.flights = 2;
            st.tickets = 2;
            st.credited = 0;
            let upto = |ticket: u64| if ticket == 0 { base + 3 } else { base + 7 };
            let result = |ticket: u64| -> Result<()> {
                if fails == Some(ticket) {
                    Err(Error::io(
                        crate::error::IoOp::Flush,
                        dir.path(),
                        std::io::Error::other("injected write-back error"),
                    ))
                } else {
                    Ok(())
                }
            };
            let second = 1 - first_ends;
            let case = format!("flush {first_ends} ends first, failing: {fails:?}");
            shared.end_flight(
                &mut st,
                first_ends,
                upto(first_ends),
                took,
                result(first_ends),
            );
            assert_eq!(
                st.durable,
                base + after_first,
                "{case}: after the first end"
            );
            shared.end_flight(&mut st, second, upto(second), took, result(second));
            assert_eq!(st.durable, base + after_both, "{case}: after both");
            assert!(st.ended.is_empty(), "{case}: every ended flush is settled");
            assert_eq!(st.credited, 2, "{case}");
            assert_eq!(st.poison.is_some(), fails.is_some(), "{case}: poisoned");
            drop(st);
            let closed = wal.close();
            assert_eq!(closed.is_ok(), fails.is_none(), "{case}: close: {closed:?}");
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
            // A sync in flight that covers everything, as far as waiters can tell.
            {
                let mut st = shared.sync_state();
                st.flights = 1;
                st.covered = u64::MAX;
            }
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
                shared.sync_state().flights = 0;
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
