//! Being told when an LSN is durable without blocking a thread: a `Future` (for async
//! code, with no runtime pulled into mmlog) and a callback.
//!
//! Watchers are kept in a list and fired by whoever raises the durable watermark, or
//! with an error when the log is poisoned or closed, or when their record is
//! truncated or reset away.
//!
//! One mutex covers the list and the results waiting for futures, and the decisions
//! that must not interleave are taken under it: a registration checks the watermark
//! and lists the watcher; a firing reads the watermark and settles the watchers at
//! or below it; a truncation or reset moves the watermark and takes the watchers of
//! the records it drops. So a watcher is never listed against a watermark (or a
//! log) that has already moved past its decision. Callbacks and wakers run after this
//! mutex is released, and those a truncation or reset settles also after the writer
//! lock is; a sync that fires watchers may still be inside `close` or an append, so a
//! callback must not call into the log (as `Wal::on_durable` says).

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

#[derive(Default)]
struct Inner {
    list: Vec<Watcher>,
    /// Results for futures whose watcher fired: `(id, result)`. An entry is added in
    /// the same critical section that takes its watcher off `list`, so a future
    /// always finds its watcher in one or the other (until it takes the result or is
    /// dropped).
    done: Vec<(u64, Result<()>)>,
}

/// Watchers of one log.
#[derive(Default)]
pub(crate) struct Watchers {
    inner: Mutex<Inner>,
    /// `list.len()`, for a lock-free "anyone there?".
    count: AtomicUsize,
    next_id: AtomicU64,
}

/// Watchers settled under the mutex, to be told once every lock is released.
#[must_use = "settled watchers must be told"]
#[derive(Default)]
pub(crate) struct Settled(Vec<Tell>);

enum Tell {
    Wake(Waker),
    Call(Box<dyn FnOnce(Result<()>) + Send>, Result<()>),
}

impl Settled {
    /// Wakes the futures and runs the callbacks. Call with no lock of the log held.
    pub(crate) fn tell(self) {
        for t in self.0 {
            match t {
                Tell::Wake(waker) => waker.wake(),
                Tell::Call(f, result) => f(result),
            }
        }
    }
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn recount(&self, inner: &Inner) {
        self.count.store(inner.list.len(), Ordering::Release);
    }

    /// Lists a watcher of `lsn` unless `outcome` (called under the mutex) has decided
    /// it already; then hands the notification back with the result.
    fn register(
        &self,
        lsn: u64,
        notify: Notify,
        outcome: impl FnOnce() -> Option<Result<()>>,
    ) -> std::result::Result<u64, (Notify, Result<()>)> {
        let mut inner = self.lock();
        if let Some(result) = outcome() {
            return Err((notify, result));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        inner.list.push(Watcher { id, lsn, notify });
        self.recount(&inner);
        Ok(id)
    }

    /// Moves every watcher `settle` decides (given its LSN) off the list; results of
    /// futures go to `done` at once, and what must be told is returned.
    fn settle_where(
        inner: &mut Inner,
        mut settle: impl FnMut(u64) -> Option<Result<()>>,
    ) -> Settled {
        let mut told = Vec::new();
        let mut keep = Vec::with_capacity(inner.list.len());
        for w in std::mem::take(&mut inner.list) {
            match settle(w.lsn) {
                None => keep.push(w),
                Some(result) => match w.notify {
                    Notify::Waker(waker) => {
                        inner.done.push((w.id, result));
                        told.push(Tell::Wake(waker));
                    }
                    Notify::Callback(f) => told.push(Tell::Call(f, result)),
                },
            }
        }
        inner.list = keep;
        Settled(told)
    }

    /// Settles every watcher whose LSN is at or below the watermark (read under the
    /// mutex) with success, and, when `failure` is given, every other one with its
    /// error (every one, when `fail_durable_too`).
    fn fire(
        &self,
        durable: impl FnOnce() -> u64,
        failure: Option<&dyn Fn() -> Error>,
        fail_durable_too: bool,
    ) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let settled = {
            let mut inner = self.lock();
            let durable = durable();
            let settled = Self::settle_where(&mut inner, |lsn| match failure {
                Some(make) if fail_durable_too || lsn > durable => Some(Err(make())),
                Some(_) => Some(Ok(())),
                None if lsn <= durable => Some(Ok(())),
                None => None,
            });
            self.recount(&inner);
            settled
        };
        settled.tell();
    }

    /// For a truncation or reset: runs `cut` (which moves the log's watermarks and
    /// returns the last LSN whose record survives) under the mutex, and settles every
    /// watcher after that LSN with [`Error::NotFound`]: a later record that reuses the
    /// LSN is not the one it waits for. The caller tells them once its locks are
    /// released.
    pub(crate) fn cut(&self, cut: impl FnOnce() -> u64) -> Settled {
        let mut inner = self.lock();
        let last = cut();
        let settled = Self::settle_where(&mut inner, |lsn| {
            (lsn > last).then_some(Err(Error::NotFound { lsn: Lsn(lsn) }))
        });
        self.recount(&inner);
        settled
    }

    /// For a listed future: its result if it was settled, or else `outcome` (under
    /// the mutex) if that decides it; otherwise the future stays listed with `waker`.
    fn poll_listed(
        &self,
        id: u64,
        waker: &Waker,
        outcome: impl FnOnce() -> Option<Result<()>>,
    ) -> Option<Result<()>> {
        let mut inner = self.lock();
        if let Some(at) = inner.done.iter().position(|(i, _)| *i == id) {
            return Some(inner.done.swap_remove(at).1);
        }
        let Some(at) = inner.list.iter().position(|w| w.id == id) else {
            // Neither listed nor settled cannot happen; never wait forever on it.
            return Some(Err(Error::Closed));
        };
        if let Some(result) = outcome() {
            // Still listed, so nothing cut it since it was listed: the watermark
            // speaks for the same record.
            inner.list.swap_remove(at);
            self.recount(&inner);
            return Some(result);
        }
        if let Some(w) = inner.list.get_mut(at)
            && let Notify::Waker(old) = &w.notify
            && !old.will_wake(waker)
        {
            w.notify = Notify::Waker(waker.clone());
        }
        None
    }

    /// Forgets a future's watcher and any result waiting for it.
    fn forget(&self, id: u64) {
        let mut inner = self.lock();
        inner.list.retain(|w| w.id != id);
        inner.done.retain(|(i, _)| *i != id);
        self.recount(&inner);
    }
}

/// A future that resolves once an LSN is durable; from
/// [`Wal::durable_future`](crate::Wal::durable_future). It needs no particular async
/// runtime: the thread that makes the LSN durable wakes the task.
#[must_use = "a future does nothing unless polled"]
pub struct DurableFuture {
    shared: Arc<Shared>,
    lsn: u64,
    state: FutureState,
}

enum FutureState {
    /// Decided: when the future was created (durable already, or never can be), or
    /// by a poll. `None` once the result has been returned.
    Decided(Option<Result<()>>),
    /// Listed from creation (not from the first poll), so that a truncation or reset
    /// before the first poll still reaches it. `asked`: the background thread was
    /// asked for a sync (at the first poll).
    Listed { id: u64, asked: bool },
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
        let state =
            match shared
                .watchers
                .register(lsn, Notify::Waker(Waker::noop().clone()), || {
                    shared.durable_outcome(lsn)
                }) {
                Ok(id) => FutureState::Listed { id, asked: false },
                Err((_, result)) => FutureState::Decided(Some(result)),
            };
        DurableFuture { shared, lsn, state }
    }

    /// The LSN this future waits for.
    pub fn lsn(&self) -> Lsn {
        Lsn(self.lsn)
    }
}

impl Future for DurableFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        match &mut this.state {
            // Polled again after completion: the contract allows anything but UB.
            FutureState::Decided(result) => {
                Poll::Ready(result.take().unwrap_or(Err(Error::Closed)))
            }
            FutureState::Listed { id, asked } => {
                let (id, first) = (*id, !*asked);
                let shared = &this.shared;
                let lsn = this.lsn;
                match shared
                    .watchers
                    .poll_listed(id, cx.waker(), || shared.durable_outcome(lsn))
                {
                    Some(result) => {
                        this.state = FutureState::Decided(None);
                        Poll::Ready(result)
                    }
                    None => {
                        if first {
                            this.state = FutureState::Listed { id, asked: true };
                            shared.request_sync();
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl Drop for DurableFuture {
    fn drop(&mut self) {
        if let FutureState::Listed { id, .. } = self.state {
            self.shared.watchers.forget(id);
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
        match self
            .watchers
            .register(lsn, Notify::Callback(f), || self.durable_outcome(lsn))
        {
            Ok(_) => self.request_sync(),
            Err((Notify::Callback(f), result)) => f(result),
            Err((Notify::Waker(_), _)) => {}
        }
    }

    /// Fires the watchers the durable watermark (or a poisoning, or the close) has
    /// decided.
    pub(crate) fn fire_watchers(&self) {
        if self.watchers.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let durable = || self.durable.load(Ordering::Acquire);
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
