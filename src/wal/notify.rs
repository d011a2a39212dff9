//! Being told when an LSN is durable without blocking a thread: a `Future` (for async
//! code, with no runtime pulled into mmlog) and a callback.
//!
//! Watchers are kept in a list and fired by whoever raises the durable watermark, or
//! with an error when the log is poisoned or closed, or when their record is
//! truncated or reset away. A watcher also asks the background
//! thread for a sync, so it resolves even when no other thread syncs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::Lsn;
use crate::error::{Error, Result};
use crate::wal::Shared;

/// What to do when the watched LSN is durable.
enum Notify {
    Waker(Waker),
    Callback(Box<dyn FnOnce(Result<()>) + Send>),
}

struct Watcher {
    id: u64,
    lsn: u64,
    notify: Notify,
}

/// Watchers of one log.
#[derive(Default)]
pub(crate) struct Watchers {
    list: Mutex<Vec<Watcher>>,
    /// `list.len()`, for a lock-free "anyone there?".
    count: AtomicUsize,
    next_id: AtomicU64,
    /// Results for futures whose watcher fired: `(id, result)`.
    done: Mutex<Vec<(u64, Result<()>)>>,
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, Vec<Watcher>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, lsn: u64, notify: Notify) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut list = self.lock();
        list.push(Watcher { id, lsn, notify });
        self.count.store(list.len(), Ordering::Release);
        id
    }

    /// Replaces the waker of future `id` (it may have moved to another task).
    fn rewake(&self, id: u64, waker: &Waker) -> bool {
        let mut list = self.lock();
        match list.iter_mut().find(|w| w.id == id) {
            Some(w) => {
                if let Notify::Waker(old) = &w.notify
                    && !old.will_wake(waker)
                {
                    w.notify = Notify::Waker(waker.clone());
                }
                true
            }
            None => false,
        }
    }

    fn take_done(&self, id: u64) -> Option<Result<()>> {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let at = done.iter().position(|(i, _)| *i == id)?;
        Some(done.swap_remove(at).1)
    }

    /// Fires every watcher whose LSN is at or below `durable` with success, and, when
    /// `failure` is given, every other one with its error (every one, when
    /// `fail_durable_too`).
    pub(crate) fn fire(
        &self,
        durable: u64,
        failure: Option<&dyn Fn() -> Error>,
        fail_durable_too: bool,
    ) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let ready: Vec<Watcher> = {
            let mut list = self.lock();
            let (ready, keep): (Vec<Watcher>, Vec<Watcher>) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|w| failure.is_some() || w.lsn <= durable);
            *list = keep;
            self.count.store(list.len(), Ordering::Release);
            ready
        };
        for w in ready {
            let result = match failure {
                Some(make) if fail_durable_too || w.lsn > durable => Err(make()),
                _ => Ok(()),
            };
            self.deliver(w, result);
        }
    }

    /// Fails every watcher of an LSN after `last` with [`Error::NotFound`]: their
    /// records were truncated or reset away, and a later record that reuses the LSN
    /// is not the one they wait for.
    pub(crate) fn fail_after(&self, last: u64) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let gone: Vec<Watcher> = {
            let mut list = self.lock();
            let (gone, keep): (Vec<Watcher>, Vec<Watcher>) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|w| w.lsn > last);
            *list = keep;
            self.count.store(list.len(), Ordering::Release);
            gone
        };
        for w in gone {
            let lsn = Lsn(w.lsn);
            self.deliver(w, Err(Error::NotFound { lsn }));
        }
    }

    fn deliver(&self, w: Watcher, result: Result<()>) {
        match w.notify {
            Notify::Waker(waker) => {
                self.done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((w.id, result));
                waker.wake();
            }
            Notify::Callback(f) => f(result),
        }
    }
}

/// A future that resolves once an LSN is durable; from
/// [`Wal::durable_future`](crate::Wal::durable_future). It needs no particular async
/// runtime: the thread that makes the LSN durable wakes the task.
#[must_use = "a future does nothing unless polled"]
pub struct DurableFuture {
    shared: Arc<Shared>,
    lsn: u64,
    /// The watcher, listed from creation (not from the first poll) so that a
    /// truncation or reset before the first poll still fails it.
    id: Option<u64>,
    /// Whether the background thread was asked for a sync (at the first poll).
    asked: bool,
}

impl fmt::Debug for DurableFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableFuture")
            .field("lsn", &self.lsn)
            .finish()
    }
}

impl DurableFuture {
    pub(crate) fn new(shared: Arc<Shared>, lsn: u64) -> DurableFuture {
        // Decided already (durable, or never can be): the first poll says so.
        let id = match shared.durable_outcome(lsn) {
            Some(_) => None,
            None => Some(
                shared
                    .watchers
                    .add(lsn, Notify::Waker(Waker::noop().clone())),
            ),
        };
        DurableFuture {
            shared,
            lsn,
            id,
            asked: false,
        }
    }
}

impl Future for DurableFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = Arc::clone(&self.shared);
        if let Some(id) = self.id
            && let Some(result) = shared.watchers.take_done(id)
        {
            self.id = None;
            return Poll::Ready(result);
        }
        if let Some(result) = shared.durable_outcome(self.lsn) {
            if let Some(id) = self.id.take() {
                // Fired meanwhile, or still listed: either way this future is done.
                let _ = shared.watchers.take_done(id);
                shared.forget_watcher(id);
            }
            return Poll::Ready(result);
        }
        match self.id {
            Some(id) if shared.watchers.rewake(id, cx.waker()) => {
                if !self.asked {
                    self.asked = true;
                    shared.request_sync();
                }
            }
            Some(id) => {
                // Fired between the checks above: the result is waiting.
                if let Some(result) = shared.watchers.take_done(id) {
                    self.id = None;
                    return Poll::Ready(result);
                }
            }
            None => {
                let id = shared
                    .watchers
                    .add(self.lsn, Notify::Waker(cx.waker().clone()));
                self.id = Some(id);
                self.asked = true;
                shared.request_sync();
            }
        }
        // The watermark may have moved while registering: check once more.
        if let Some(result) = shared.durable_outcome(self.lsn) {
            if let Some(id) = self.id.take() {
                let _ = shared.watchers.take_done(id);
                shared.forget_watcher(id);
            }
            return Poll::Ready(result);
        }
        Poll::Pending
    }
}

impl Drop for DurableFuture {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.shared.watchers.take_done(id);
            self.shared.forget_watcher(id);
        }
    }
}

impl Shared {
    /// `Some(result)` once `lsn` is durable, or can never be (poisoned, closed).
    pub(crate) fn durable_outcome(&self, lsn: u64) -> Option<Result<()>> {
        if let Err(e) = self.check_poison() {
            return Some(Err(e));
        }
        if self.durable.load(Ordering::Acquire) >= lsn {
            return Some(Ok(()));
        }
        if self.released.load(Ordering::Acquire) {
            return Some(Err(Error::Closed));
        }
        if lsn > self.reserved_hint.load(Ordering::SeqCst) {
            // Never handed out: no sync can ever make it durable.
            return Some(Err(Error::NotFound { lsn: Lsn(lsn) }));
        }
        None
    }

    /// Calls `f` once `lsn` is durable (or with the error that makes it impossible).
    pub(crate) fn on_durable(&self, lsn: u64, f: Box<dyn FnOnce(Result<()>) + Send>) {
        if let Some(result) = self.durable_outcome(lsn) {
            f(result);
            return;
        }
        self.watchers.add(lsn, Notify::Callback(f));
        // The watermark may have moved while registering.
        self.fire_watchers();
        self.request_sync();
    }

    fn forget_watcher(&self, id: u64) {
        let mut list = self.watchers.lock();
        list.retain(|w| w.id != id);
        self.watchers.count.store(list.len(), Ordering::Release);
    }

    /// Fires the watchers the durable watermark (or a poisoning, or the close) has
    /// decided.
    pub(crate) fn fire_watchers(&self) {
        if self.watchers.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let durable = self.durable.load(Ordering::Acquire);
        match self.check_poison() {
            Err(Error::Poisoned { cause }) => {
                let make = move || Error::Poisoned {
                    cause: Arc::clone(&cause),
                };
                self.watchers.fire(durable, Some(&make), true);
            }
            _ if self.released.load(Ordering::Acquire) => {
                self.watchers.fire(durable, Some(&|| Error::Closed), false);
            }
            _ => self.watchers.fire(durable, None, false),
        }
    }

    /// Asks the background thread for a sync (a watcher is waiting).
    fn request_sync(&self) {
        self.maint.request_sync();
    }
}

/// The LSN a future watches.
impl DurableFuture {
    /// The LSN this future waits for.
    pub fn lsn(&self) -> Lsn {
        Lsn(self.lsn)
    }
}
