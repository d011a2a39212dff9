//! Durability notifications and the life of the background threads (SPEC §2.1):
//! blocking waiters, futures and callbacks all wake when their LSN is durable and all
//! fail when a sync fails (FAULTS D23, injected with `Step::Flush`); no thread of the
//! log outlives `close()` or drop; and a process of many writers with random
//! durability, killed with SIGKILL, keeps every acknowledged record, dense LSNs and each
//! writer's order (FAULTS C16).
//!
//! The thread count and the kill need a process of their own: this test binary is
//! re-executed as a child, with `MMLOG_DURABILITY_CHILD` (set on the child command
//! only) naming the role and the directory.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use mmlog::testing::{FailAction, Failpoints, Step};
use mmlog::{Durability, Env, Error, IoOp, Lsn, Options, Wal};

mod common;
use common::{Rng, small};

const CHILD_ENV: &str = "MMLOG_DURABILITY_CHILD";
/// Prefix of the lines children report on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";
const EIO: i32 = 5;
/// How long any wait of these tests may take before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(60);

// ----- a minimal executor --------------------------------------------------------------

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future on this thread to completion, parking between polls: the smallest
/// executor there is, to show `DurableFuture` needs no runtime.
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "a future was never woken");
        // A spurious unpark only costs one more poll.
        std::thread::park_timeout(PATIENCE);
    }
}

/// Polls a future once with a waker that counts its wakes.
struct CountWakes(std::sync::atomic::AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

// ----- helpers -------------------------------------------------------------------------

fn no_background(fp: &Arc<Failpoints>) -> Options {
    Options {
        env: Env::with_failpoints(Arc::clone(fp)).without_background(),
        ..small()
    }
}

fn assert_poisoned_by_flush(r: &mmlog::Result<()>, when: &str) {
    match r {
        Err(Error::Poisoned { cause }) => match cause.as_ref() {
            Error::Io {
                op: IoOp::Flush,
                source,
                ..
            } => assert_eq!(source.raw_os_error(), Some(EIO), "{when}: {r:?}"),
            other => panic!("{when}: poisoned by {other:?}, not the failed flush"),
        },
        other => panic!("{when}: expected Error::Poisoned, got {other:?}"),
    }
}

fn append_n(wal: &Wal, n: usize) -> Lsn {
    let mut last = Lsn(0);
    for i in 0..n {
        last = wal
            .append(format!("record {i}").as_bytes())
            .expect("append");
    }
    last
}

// ----- notifications -------------------------------------------------------------------

#[test]
fn futures_and_callbacks_all_wake_on_the_sync_that_covers_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    // No background thread: nothing but the explicit sync below can make LSNs durable.
    let (wal, _) = Wal::open(dir.path(), no_background(&fp)).expect("open");
    let wal = Arc::new(wal);
    let last = append_n(&wal, 200);
    assert!(wal.durable() < Lsn(1), "nothing is durable before a sync");

    // Callbacks on every 10th LSN, futures on others, each on its own thread.
    let (cb_tx, cb_rx) = mpsc::channel::<(u64, mmlog::Result<()>)>();
    for lsn in (10..=last.0).step_by(10) {
        let tx = cb_tx.clone();
        wal.on_durable(Lsn(lsn), move |r| {
            let _ = tx.send((lsn, r));
        });
    }
    drop(cb_tx);
    const FUTURES: u64 = 8;
    let registered = Arc::new(Barrier::new(FUTURES as usize + 1));
    let mut futures = Vec::new();
    for k in 0..FUTURES {
        let wal = Arc::clone(&wal);
        let registered = Arc::clone(&registered);
        let lsn = Lsn(1 + k * (last.0 - 1) / (FUTURES - 1));
        futures.push(std::thread::spawn(move || {
            let mut fut = pin!(wal.durable_future(lsn));
            let counter = Arc::new(CountWakes(Default::default()));
            let waker = Waker::from(Arc::clone(&counter));
            let pending = fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending();
            registered.wait();
            assert!(pending, "future for {lsn} resolved before any sync");
            (lsn, block_on(fut))
        }));
    }
    registered.wait();
    assert!(
        cb_rx.try_recv().is_err(),
        "a callback fired before any sync"
    );

    assert_eq!(wal.sync().expect("sync"), last);
    let mut fired = BTreeMap::new();
    while let Ok((lsn, r)) = cb_rx.recv_timeout(PATIENCE) {
        assert!(r.is_ok(), "callback for {lsn}: {r:?}");
        assert!(
            fired.insert(lsn, ()).is_none(),
            "callback for {lsn} fired twice"
        );
        if fired.len() == (last.0 / 10) as usize {
            break;
        }
    }
    assert_eq!(
        fired.len(),
        (last.0 / 10) as usize,
        "callbacks that never fired"
    );
    for f in futures {
        let (lsn, r) = f.join().expect("future thread");
        assert!(r.is_ok(), "future for {lsn}: {r:?}");
    }

    // Already durable: resolved at once, on this thread.
    assert!(block_on(wal.durable_future(last)).is_ok());
    let (tx, rx) = mpsc::channel();
    wal.on_durable(Lsn(1), move |r| {
        let _ = tx.send(r);
    });
    assert!(rx.try_recv().expect("immediate callback").is_ok());
    // Never handed out: no sync can make it durable.
    let r = block_on(wal.durable_future(Lsn(last.0 + 5)));
    assert!(
        matches!(r, Err(Error::NotFound { lsn }) if lsn == Lsn(last.0 + 5)),
        "future for an LSN never appended: {r:?}"
    );
    wal.close().expect("close");
}

#[test]
fn a_future_resolves_with_nobody_else_syncing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Background thread on, no flush interval: the future's own request must sync.
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    let last = append_n(&wal, 50);
    let synced_before = wal.stats().syncs;
    assert!(wal.durable() < last);
    block_on(wal.durable_future(last)).expect("durable");
    assert!(wal.durable() >= last);
    assert!(
        wal.stats().syncs > synced_before,
        "the log became durable without a sync"
    );
    let (tx, rx) = mpsc::channel();
    let more = append_n(&wal, 5);
    wal.on_durable(more, move |r| {
        let _ = tx.send(r);
    });
    rx.recv_timeout(PATIENCE)
        .expect("a callback with nobody else syncing never fired")
        .expect("durable");
    wal.close().expect("close");
}

#[test]
fn every_waiter_fails_when_the_sync_fails() {
    const BLOCKING: usize = 4;
    const FUTURES: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), no_background(&fp)).expect("open");
    let wal = Arc::new(wal);
    let last = append_n(&wal, 100);
    // Every msync from now on fails: each blocking waiter either issues a failing
    // sync itself or waits for one, and must come back with the poisoning either way.
    fp.arm(Step::Flush, 0, FailAction::Errno(EIO));

    let (cb_tx, cb_rx) = mpsc::channel::<mmlog::Result<()>>();
    for lsn in 1..=10 {
        let tx = cb_tx.clone();
        wal.on_durable(Lsn(lsn * 10), move |r| {
            let _ = tx.send(r);
        });
    }
    drop(cb_tx);
    let start = Arc::new(Barrier::new(BLOCKING + FUTURES + 1));
    let mut threads = Vec::new();
    for k in 0..BLOCKING {
        let wal = Arc::clone(&wal);
        let start = Arc::clone(&start);
        threads.push(std::thread::spawn(move || {
            start.wait();
            wal.wait_durable(Lsn(last.0 - k as u64))
        }));
    }
    for k in 0..FUTURES {
        let wal = Arc::clone(&wal);
        let start = Arc::clone(&start);
        threads.push(std::thread::spawn(move || {
            let fut = wal.durable_future(Lsn(1 + k as u64));
            start.wait();
            block_on(fut)
        }));
    }
    start.wait();
    assert_poisoned_by_flush(&wal.sync().map(|_| ()), "the main thread's sync");
    for (k, t) in threads.into_iter().enumerate() {
        let r = t.join().expect("waiter thread");
        assert_poisoned_by_flush(&r, &format!("waiter {k}"));
    }
    let mut failed = 0;
    while let Ok(r) = cb_rx.recv_timeout(PATIENCE) {
        assert_poisoned_by_flush(&r, "callback");
        failed += 1;
    }
    assert_eq!(failed, 10, "callbacks never told of the failure");
    assert!(
        fp.hits(Step::Flush) >= 1,
        "the failure was never injected: the test proves nothing"
    );

    // Later waiters fail at once, and so do appends.
    assert_poisoned_by_flush(&block_on(wal.durable_future(Lsn(1))), "a later future");
    let (tx, rx) = mpsc::channel();
    wal.on_durable(Lsn(1), move |r| {
        let _ = tx.send(r);
    });
    assert_poisoned_by_flush(
        &rx.try_recv().expect("immediate callback"),
        "later callback",
    );
    assert_poisoned_by_flush(
        &wal.append(b"after").map(|_| ()),
        "an append after the failure",
    );
}

#[test]
fn dropping_a_pending_future_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), no_background(&fp)).expect("open");
    let last = append_n(&wal, 10);
    let counter = Arc::new(CountWakes(Default::default()));
    let waker = Waker::from(Arc::clone(&counter));
    {
        let mut fut = pin!(wal.durable_future(last));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    }
    wal.sync().expect("sync");
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a dropped future was woken"
    );
    // A future moved to another task wakes the new waker only.
    let other = Arc::new(CountWakes(Default::default()));
    let other_waker = Waker::from(Arc::clone(&other));
    let more = append_n(&wal, 1);
    let mut fut = pin!(wal.durable_future(more));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&other_waker))
            .is_pending()
    );
    wal.sync().expect("sync");
    assert_eq!(other.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(matches!(
        fut.as_mut().poll(&mut Context::from_waker(&other_waker)),
        Poll::Ready(Ok(()))
    ));
    wal.close().expect("close");
}

#[test]
fn close_settles_every_pending_waiter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), no_background(&fp)).expect("open");
    let wal = Arc::new(wal);
    let last = append_n(&wal, 20);
    let (tx, rx) = mpsc::channel();
    wal.on_durable(last, move |r| {
        let _ = tx.send(r);
    });
    let waiter = {
        let wal = Arc::clone(&wal);
        let fut = wal.durable_future(last);
        std::thread::spawn(move || block_on(fut))
    };
    // close() syncs what was appended, so the waiters learn it is durable.
    wal.close().expect("close");
    rx.recv_timeout(PATIENCE)
        .expect("callback never fired at close")
        .expect("durable at close");
    waiter.join().expect("thread").expect("durable at close");
    // After the close nothing more can become durable.
    let r = block_on(wal.durable_future(Lsn(last.0 + 1)));
    assert!(matches!(r, Err(Error::Closed)), "after close: {r:?}");
}

/// Waits for a callback's result and requires `Error::NotFound` for `lsn`.
fn expect_not_found(r: mmlog::Result<()>, lsn: u64, when: &str) {
    match r {
        Err(Error::NotFound { lsn: l }) => assert_eq!(l, Lsn(lsn), "{when}"),
        other => panic!("{when}: expected NotFound for {lsn}, got {other:?}"),
    }
}

#[test]
fn waiters_of_truncated_or_reset_records_fail_even_when_the_lsn_is_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    // No background thread: nothing becomes durable unless the test syncs.
    let (wal, _) = Wal::open(dir.path(), no_background(&fp)).expect("open");
    let last = append_n(&wal, 10);
    assert_eq!(last, Lsn(10));
    assert_eq!(wal.durable(), Lsn(0), "nothing synced yet");
    let (tx, rx) = mpsc::channel();
    let watch = |lsn: u64| {
        let tx = tx.clone();
        wal.on_durable(Lsn(lsn), move |r| {
            let _ = tx.send((lsn, r));
        });
    };
    watch(4);
    watch(8);
    let gone_future = wal.durable_future(Lsn(9));
    let kept_future = wal.durable_future(Lsn(5));

    wal.truncate_after(Lsn(5)).expect("truncate");
    let (lsn, r) = rx
        .recv_timeout(PATIENCE)
        .expect("the truncation fired nobody");
    assert_eq!(
        lsn, 8,
        "only the watcher of a truncated record fires: {r:?}"
    );
    expect_not_found(r, 8, "callback of a truncated record");
    expect_not_found(block_on(gone_future), 9, "future of a truncated record");

    // LSNs 6..=10 again, now other records: made durable, they satisfy only the
    // watchers of records that survived.
    assert_eq!(append_n(&wal, 5), Lsn(10));
    wal.sync().expect("sync");
    let (lsn, r) = rx.recv_timeout(PATIENCE).expect("the sync fired nobody");
    assert_eq!(lsn, 4);
    r.expect("record 4 survived and is durable");
    block_on(kept_future).expect("record 5 survived and is durable");
    assert!(
        rx.try_recv().is_err(),
        "the truncated watcher of 8 fired twice"
    );

    // A reset drops every record that is not durable; the new watermark (next - 1)
    // must not count as their sync.
    assert_eq!(append_n(&wal, 3), Lsn(13));
    watch(12);
    let reset_future = wal.durable_future(Lsn(13));
    wal.reset(Lsn(100)).expect("reset");
    let (lsn, r) = rx.recv_timeout(PATIENCE).expect("the reset fired nobody");
    assert_eq!(lsn, 12);
    expect_not_found(r, 12, "callback of a record the reset dropped");
    expect_not_found(
        block_on(reset_future),
        13,
        "future of a record the reset dropped",
    );
    drop(tx);
    wal.close().expect("close");
    assert!(rx.recv().is_err(), "a watcher fired after the reset");
}

// ----- threads -------------------------------------------------------------------------

/// Threads of this process, by name.
fn threads() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = entry.expect("task").path().join("comm");
        // A thread that exited between the listing and the read is gone: skip it.
        if let Ok(name) = std::fs::read_to_string(path) {
            names.push(name.trim_end().to_owned());
        }
    }
    names.sort();
    names
}

/// Waits (yielding, never sleeping) until the process is back to `expected` threads;
/// a joined thread leaves the kernel's list a moment after `join` returns.
fn assert_threads_back_to(expected: &[String], when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = threads();
        if now == expected {
            return;
        }
        if Instant::now() > deadline {
            panic!("{when}: threads {now:?} survive; before the open there were {expected:?}");
        }
        std::thread::yield_now();
    }
}

fn child_threads(dir: &Path) {
    let before = threads();
    let opts = || Options {
        flush_interval: Some(Duration::from_millis(1)),
        ..small()
    };

    // close()
    let (wal, _) = Wal::open(dir, opts()).expect("open");
    append_n(&wal, 100);
    let during = threads();
    assert!(
        during.len() > before.len(),
        "no background thread seen while open ({during:?}): this check cannot fail"
    );
    wal.close().expect("close");
    assert_threads_back_to(&before, "after close()");
    drop(wal);

    // drop, with a future pending and a tailing reader that has just given up
    let (wal, _) = Wal::open(dir, opts()).expect("reopen");
    let last = append_n(&wal, 100);
    let fut = wal.durable_future(Lsn(last.0));
    let mut tail = wal.tail(Lsn(last.0 + 1));
    assert!(
        tail.next_timeout(Duration::from_millis(1))
            .expect("tail")
            .is_none()
    );
    drop(tail);
    drop(fut);
    drop(wal);
    assert_threads_back_to(&before, "after drop");

    // dropped at once after appends, with the flusher busy
    {
        let (wal, _) = Wal::open(dir.join("second"), opts()).expect("open a second log");
        append_n(&wal, 10);
    }
    assert_threads_back_to(&before, "after a second drop");

    // a failed open must not leave a thread behind either
    let fp = Arc::new(Failpoints::new());
    fp.arm(Step::SegmentAllocate, 0, FailAction::Errno(28));
    let fresh = dir.join("fresh");
    let failed = Wal::open(
        &fresh,
        Options {
            env: Env::with_failpoints(Arc::clone(&fp)),
            ..opts()
        },
    );
    assert!(failed.is_err(), "the failpoint did not fail the open");
    assert_threads_back_to(&before, "after a failed open");
    println!("{MARK}threads ok");
}

#[test]
fn no_thread_survives_close_or_drop() {
    if let Some(role) = child_role() {
        if role.0 == "threads" {
            child_threads(&role.1);
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "no_thread_survives_close_or_drop",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("threads:{}", dir.path().display()))
        .stdin(Stdio::null())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("{MARK}threads ok")),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ----- kill -9 with many writers -------------------------------------------------------

fn child_role() -> Option<(String, std::path::PathBuf)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (role, dir) = v.split_once(':')?;
    Some((role.to_owned(), dir.into()))
}

const WRITERS: u64 = 4;

/// The payload of writer `tid`'s record `seq` in run `run`: a 20-byte tag and filler
/// derived from it, 0 to 3 KiB in all.
fn writer_payload(run: u64, tid: u64, seq: u64) -> Vec<u8> {
    let mut rng = Rng::new(run.wrapping_mul(7919) ^ tid.wrapping_mul(104_729) ^ seq << 20);
    let len = 20 + rng.below(3 * 1024) as usize;
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&(run as u32).to_le_bytes());
    p.extend_from_slice(&tid.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    while p.len() < len {
        p.push(rng.next_u64() as u8);
    }
    p
}

/// `(run, tid, seq)` of a payload, checking its filler.
fn decode_payload(lsn: u64, p: &[u8]) -> (u64, u64, u64) {
    assert!(p.len() >= 20, "LSN {lsn}: a payload of {} bytes", p.len());
    let word = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&p[at..at + n]);
        u64::from_le_bytes(b)
    };
    let (run, tid, seq) = (word(0, 4), word(4, 8), word(12, 8));
    assert!(
        writer_payload(run, tid, seq) == p,
        "LSN {lsn}: the payload of run {run} writer {tid} record {seq} is damaged"
    );
    (run, tid, seq)
}

/// A child writer: appends with a seeded mix of durability and reports each
/// acknowledgement as `acked <tid> <seq> <lsn>` once the durable call returned.
fn child_writers(run: u64, dir: &Path) {
    let (wal, _) = Wal::open(dir, small()).expect("child open");
    let wal = Arc::new(wal);
    let mut handles = Vec::new();
    for tid in 0..WRITERS {
        let wal = Arc::clone(&wal);
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng::new(run * 31 + tid);
            let mut seq = 0u64;
            loop {
                let batch = 1 + rng.below(3);
                let payloads: Vec<Vec<u8>> = (seq..seq + batch)
                    .map(|s| writer_payload(run, tid, s))
                    .collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let choice = rng.below(10);
                let durability = if choice < 4 {
                    Durability::Sync
                } else {
                    Durability::None
                };
                let first = if batch == 1 {
                    wal.append_with(refs[0], durability)
                } else {
                    wal.append_batch_with(&refs, durability)
                }
                .expect("append");
                let acked = match choice {
                    0..=3 => true,
                    4..=5 => {
                        wal.sync().expect("sync");
                        true
                    }
                    6 => {
                        wal.wait_durable(Lsn(first.0 + batch - 1))
                            .expect("wait_durable");
                        true
                    }
                    _ => false,
                };
                if acked {
                    let mut out = std::io::stdout().lock();
                    for k in 0..batch {
                        writeln!(out, "{MARK}acked {tid} {} {}", seq + k, first.0 + k)
                            .expect("stdout");
                    }
                    out.flush().expect("stdout");
                }
                seq += batch;
            }
        }));
    }
    for h in handles {
        // The writers never stop: the parent kills this process.
        let _ = h.join();
    }
}

#[test]
fn kill_nine_with_many_writers_keeps_every_acknowledged_record_in_order() {
    if let Some((role, dir)) = child_role() {
        if let Some(run) = role.strip_prefix("writers") {
            child_writers(run.parse().expect("run"), &dir);
        }
        return;
    }
    const RUNS: u64 = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(0xd0_4ab1e);
    // (run, tid) -> acknowledged (seq, lsn), over all runs.
    let mut acked: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    for run in 0..RUNS {
        let stderr = dir.path().join(format!("child-{run}.stderr"));
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "kill_nine_with_many_writers_keeps_every_acknowledged_record_in_order",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("writers{run}:{}", dir.path().join("log").display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("stdout");
        let target = 50 + rng.below(2000);
        let mut count = 0;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("child stdout");
            let Some(rest) = line.strip_prefix(MARK) else {
                continue;
            };
            let f: Vec<u64> = rest
                .strip_prefix("acked ")
                .expect("an ack line")
                .split(' ')
                .map(|x| x.parse().expect("number"))
                .collect();
            acked.entry((run, f[0])).or_default().push((f[1], f[2]));
            count += 1;
            if count == target && !killed {
                child.kill().expect("kill -9");
                killed = true;
            }
        }
        let status = child.wait().expect("wait");
        assert!(
            killed,
            "run {run}: the child stopped by itself ({status}): {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );

        // The recovered log: dense LSNs, each writer's records a gapless prefix of
        // what it appended, in its order, and every acknowledgement in place.
        let (wal, report) = Wal::open(dir.path().join("log"), small()).expect("reopen");
        let mut next = wal.first_lsn().0;
        let mut last_seq: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut at: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
        wal.for_each_from(Lsn(0), |lsn, p| {
            assert_eq!(lsn.0, next, "run {run}: LSN {next} is missing ({report:?})");
            next += 1;
            let (r, tid, seq) = decode_payload(lsn.0, p);
            let expected = last_seq.get(&(r, tid)).map_or(0, |s| s + 1);
            assert_eq!(
                seq, expected,
                "run {run}: LSN {lsn}: writer {tid} of run {r} skipped or reordered"
            );
            last_seq.insert((r, tid), seq);
            at.insert(lsn.0, (r, tid, seq));
            true
        })
        .expect("read the log");
        for ((r, tid), list) in &acked {
            for (seq, lsn) in list {
                assert_eq!(
                    at.get(lsn),
                    Some(&(*r, *tid, *seq)),
                    "run {run}: acknowledged record {seq} of writer {tid} (run {r}) at \
                     LSN {lsn} is lost"
                );
            }
        }
        wal.close().expect("close");
    }
}
