//! The background threads. They keep the append path free of slow work:
//!
//! * prepares the next segment before the writer needs it (allocation, header, syncs,
//!   rename, mapping);
//! * faults in pages a window ahead of the writer, so appends take no page faults;
//! * writes behind the writer: every few MiB of published pages (and, at rollover,
//!   what was published of the segment left behind) are unmapped from the process and
//!   their write-back started,
//!   so that a later sync finds most bytes on disk
//!   ([`Segment::write_behind`](crate::wal::segment::Segment::write_behind) says why
//!   unmapping first matters);
//! * when configured, syncs on an interval.
//!
//! Two threads share this work (one for slow file operations, one for pages); both
//! are stopped and joined by `close()` and by drop.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wal::Shared;
use crate::wal::segment::{PREFAULT_CHUNK_BYTES, PREFAULT_WINDOW_BYTES, Segment, WRITEBACK_BYTES};

#[derive(Default)]
struct State {
    /// Sequence number the writer will want next.
    request: Option<u64>,
    /// A prepared, not yet active segment.
    ready: Option<Arc<Segment>>,
    /// The ready segment's first window is faulted in.
    ready_warm: bool,
    /// A preparation is running (in the background or in a writer).
    busy: bool,
    /// The writer's segment.
    active: Option<Arc<Segment>>,
    /// The writer moved on: keep faulting in ahead of it.
    nudged: bool,
    /// Segments the writer left: write the rest of them behind.
    retired: Vec<Arc<Segment>>,
    /// A future or callback waits for durability: sync.
    sync_requested: bool,
    shutdown: bool,
}

/// Coordination between writers and the background thread.
#[derive(Default)]
pub(crate) struct Maint {
    state: Mutex<State>,
    cv: Condvar,
}

/// What [`Maint::take_or_claim`] found.
pub(crate) enum Take<'a> {
    Ready(Arc<Segment>),
    Claimed(Busy<'a>),
}

/// Marks a preparation as running; cleared on drop.
pub(crate) struct Busy<'a> {
    maint: &'a Maint,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut st = self.maint.lock();
        st.busy = false;
        drop(st);
        self.maint.cv.notify_all();
    }
}

impl Maint {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for segment `seq` to be prepared.
    pub(crate) fn request(&self, seq: u64) {
        let mut st = self.lock();
        if st.ready.as_ref().is_some_and(|s| s.seq == seq) {
            return;
        }
        st.request = Some(seq);
        drop(st);
        self.cv.notify_all();
    }

    /// Takes the prepared segment `seq`, waiting for a preparation in progress; or,
    /// when there is none, claims the right to prepare it in the caller. A prepared
    /// segment with another number is dropped (its file is dead on disk), and the
    /// pending request is withdrawn so the background cannot create `seq` a second
    /// time.
    pub(crate) fn take_or_claim(&self, seq: u64) -> Take<'_> {
        let mut st = self.lock();
        while st.busy {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(ready) = st.ready.take()
            && ready.seq == seq
        {
            return Take::Ready(ready);
        }
        st.request = None;
        st.busy = true;
        Take::Claimed(Busy { maint: self })
    }

    /// Forgets the prepared segment, the pending request and the segments being
    /// worked on (after a truncation, and at close).
    pub(crate) fn discard(&self) -> Option<Arc<Segment>> {
        let mut st = self.lock();
        while st.busy {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.request = None;
        st.active = None;
        st.retired.clear();
        st.ready.take()
    }

    /// The writer now appends to `seg`; the segment it leaves (if any) is retired.
    pub(crate) fn set_active(&self, seg: Arc<Segment>) {
        let mut st = self.lock();
        if let Some(old) = st.active.replace(seg) {
            st.retired.push(old);
        }
        st.nudged = true;
        drop(st);
        self.cv.notify_all();
    }

    /// The writer crossed another stretch of its segment.
    pub(crate) fn nudge(&self) {
        let mut st = self.lock();
        st.nudged = true;
        drop(st);
        self.cv.notify_all();
    }

    /// Asks for a sync of everything appended.
    pub(crate) fn request_sync(&self) {
        let mut st = self.lock();
        st.sync_requested = true;
        drop(st);
        self.cv.notify_all();
    }

    /// Stops the background loop.
    pub(crate) fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        drop(st);
        self.cv.notify_all();
    }
}

/// What a background thread does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Slow, blocking work: preparing segments (allocation and syncs), write-behind of
    /// retired segments, the periodic flush.
    Files,
    /// Keeping pages faulted in ahead of the writer and writing behind it; it must
    /// never wait behind a sync.
    Pages,
}

/// Starts the background threads.
pub(crate) fn spawn(shared: &Arc<Shared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
    for (role, name) in [(Role::Files, "mmlog-files"), (Role::Pages, "mmlog-pages")] {
        if role == Role::Pages && !shared.opts.prefault {
            continue;
        }
        let mine = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&mine, role));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.maint.shutdown();
                for h in handles {
                    let _ = h.join();
                }
                return Err(e);
            }
        }
    }
    Ok(handles)
}

fn run(shared: &Shared, role: Role) {
    let maint = &shared.maint;
    let interval = shared.opts.flush_interval.filter(|_| role == Role::Files);
    let mut next_flush = interval.map(|i| Instant::now() + i);
    let mut st = maint.lock();
    loop {
        if st.shutdown {
            return;
        }
        if role == Role::Files {
            // The next segment, before the writer needs it.
            if let Some(seq) = st.request
                && !st.busy
            {
                st.request = None;
                st.busy = true;
                drop(st);
                // An error here is not lost: the writer prepares the segment itself
                // at rollover and reports what fails then.
                let prepared = shared.prepare_segment(seq, None).ok();
                st = maint.lock();
                st.busy = false;
                if let Some(seg) = prepared {
                    st.ready = Some(seg);
                    st.ready_warm = !shared.opts.prefault;
                }
                maint.cv.notify_all();
                continue;
            }
            // A sync someone waits for without a thread of their own.
            if st.sync_requested {
                st.sync_requested = false;
                drop(st);
                // A failure poisons the log (and fails the watchers) inside.
                let _ = shared.sync_all();
                st = maint.lock();
                continue;
            }
            // The rest of the segments the writer left.
            if let Some(old) = st.retired.pop() {
                drop(st);
                old.write_behind(0);
                st = maint.lock();
                continue;
            }
        } else {
            // Pages ahead of the writer, then write-behind.
            if st.nudged
                && let Some(active) = st.active.clone()
            {
                drop(st);
                let done = active.prefault_ahead(PREFAULT_WINDOW_BYTES, PREFAULT_CHUNK_BYTES);
                if done {
                    active.write_behind(WRITEBACK_BYTES);
                }
                st = maint.lock();
                if done {
                    st.nudged = false;
                }
                continue;
            }
            // The first window of the prepared segment.
            if !st.ready_warm
                && let Some(ready) = st.ready.clone()
            {
                drop(st);
                let done = ready.prefault_ahead(PREFAULT_WINDOW_BYTES, PREFAULT_CHUNK_BYTES);
                st = maint.lock();
                if done && st.ready.as_ref().is_some_and(|r| Arc::ptr_eq(r, &ready)) {
                    st.ready_warm = true;
                }
                continue;
            }
        }
        // The periodic flush, or sleep until there is work.
        let now = Instant::now();
        if let (Some(due), Some(every)) = (next_flush, interval) {
            if now >= due {
                drop(st);
                // A failed flush poisons the log inside `sync_all`; nothing to do here.
                let _ = shared.sync_all();
                next_flush = Some(Instant::now() + every);
                st = maint.lock();
                continue;
            }
            let wait = due
                .saturating_duration_since(now)
                .max(Duration::from_micros(100));
            st = maint
                .cv
                .wait_timeout(st, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        } else {
            st = maint.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}
