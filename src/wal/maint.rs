//! The background thread: prepares the next segment ahead of the writer and, when
//! configured, syncs on an interval. It is stopped and joined by `close()` and by drop.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wal::Shared;
use crate::wal::segment::Segment;

#[derive(Default)]
struct State {
    /// Sequence number the writer will want next.
    request: Option<u64>,
    /// A prepared, not yet active segment.
    ready: Option<Arc<Segment>>,
    /// A preparation is running (in the background or in a writer).
    busy: bool,
    /// Fault in pages of this segment up to this offset.
    prefault: Option<(Arc<Segment>, u64)>,
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

    /// Forgets any prepared segment and pending request (after a truncation).
    pub(crate) fn discard(&self) -> Option<Arc<Segment>> {
        let mut st = self.lock();
        while st.busy {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.request = None;
        st.prefault = None;
        st.ready.take()
    }


    /// Asks for `seg`'s pages to be faulted in up to `upto`.
    pub(crate) fn prefault(&self, seg: Arc<Segment>, upto: u64) {
        let mut st = self.lock();
        st.prefault = Some((seg, upto));
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

/// Starts the background thread.
pub(crate) fn spawn(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mmlog-maint".into())
        .spawn(move || run(&shared))
}

fn run(shared: &Shared) {
    let maint = &shared.maint;
    let interval = shared.opts.flush_interval;
    let mut next_flush = interval.map(|i| Instant::now() + i);
    let mut st = maint.lock();
    loop {
        if st.shutdown {
            return;
        }
        if let Some(seq) = st.request.take()
            && !st.busy
        {
            st.busy = true;
            drop(st);
            // An error here is not lost: the writer prepares the segment itself at
            // rollover and reports what fails then.
            let prepared = shared.prepare_segment(seq, None).ok();
            st = maint.lock();
            st.busy = false;
            if let Some(seg) = prepared {
                st.ready = Some(seg);
            }
            maint.cv.notify_all();
            continue;
        }
        if let Some((seg, upto)) = st.prefault.take() {
            drop(st);
            seg.prefault_to(upto);
            st = maint.lock();
            continue;
        }
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
            let wait = due.saturating_duration_since(now).max(Duration::from_micros(100));
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
