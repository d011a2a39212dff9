//! I/O errors and exhaustion (FAULTS D23–D25, D27, D28; SPEC I6, I7): a failed sync
//! poisons the log for good, a failed read is never taken for the end of the log, a
//! failed step of creating a segment is a typed error after which the log goes on, and
//! a full disk, a file-size limit, too few file descriptors or a read-only file system
//! give typed errors, never a panic or a signal, and keep every acknowledged record.
//!
//! Provoked with failpoints (`msync` failing once or for ever with `EIO`, also under
//! several threads and in the background flush; a segment header read or mapping
//! failing during recovery; each step of a segment rotation failing once; allocation
//! failing with `ENOSPC` while appending and while recovering), and with real limits in
//! a child process re-executing this test binary (`MMLOG_TEST_CHILD` on the child
//! command only): `sh -c 'trap "" XFSZ; ulimit -f ...; exec ...'` for `RLIMIT_FSIZE`,
//! `ulimit -n` for descriptors, and `unshare -r -m` with a tmpfs remounted read-only
//! for a read-only file system (skipped, with the reason printed, where user namespaces
//! are unavailable). Children report what they saw on stdout lines; the parent asserts.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mmlog::testing::{FailAction, Failpoints, Step};
use mmlog::{Durability, Env, Error, IoOp, Lsn, Options, Wal};

/// Names the child's scenario and its directories, `:`-separated.
const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// Prefix of the lines children report on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";
const SEGMENT_BYTES: u64 = 64 * 1024;

const EIO: i32 = 5;
const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;
const EROFS: i32 = 30;
const EMFILE: i32 = 24;
const ENOMEM: i32 = 12;

// Linux signal numbers (x86 and Arm).
const SIGBUS: i32 = 7;
const SIGSEGV: i32 = 11;
const SIGXFSZ: i32 = 25;

// ----- payloads and logs ----------------------------------------------------------------

/// The payload of `lsn` in every log of this file: 0 to 1499 bytes, a pure function
/// of the LSN.
fn expected(lsn: u64) -> Vec<u8> {
    let len = (lsn.wrapping_mul(2_654_435_761) % 1500) as usize;
    common::payload(0xD23, lsn, len)
}

fn small() -> Options {
    Options {
        segment_size_bytes: SEGMENT_BYTES,
        durability: Durability::None,
        ..Options::default()
    }
}

fn with_failpoints(fp: &Arc<Failpoints>) -> Options {
    Options {
        env: Env::with_failpoints(Arc::clone(fp)),
        ..small()
    }
}

/// Appends the expected records up to `upto` with `durability`; returns the last LSN.
fn append_upto(wal: &Wal, upto: u64, durability: Durability) -> u64 {
    while wal.appended().0 < upto {
        let lsn = wal.appended().0 + 1;
        let got = wal.append_with(&expected(lsn), durability).expect("append");
        assert_eq!(got, Lsn(lsn));
    }
    upto
}

/// Every record of the log as `(lsn, payload)`.
fn read_all(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    wal.iter_from(Lsn(0))
        .expect("iter")
        .map(|r| {
            let r = r.expect("record");
            (r.lsn().0, r.payload().to_vec())
        })
        .collect()
}

/// The records are dense from 1, each the expected one, and reach `acked`. Returns the
/// last LSN.
fn check_log(wal: &Wal, acked: u64, when: &str) -> u64 {
    let all = read_all(wal);
    for (i, (lsn, p)) in all.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1, "{when}: LSNs must be dense from 1");
        assert!(*p == expected(*lsn), "{when}: payload of LSN {lsn}");
    }
    let last = all.len() as u64;
    assert!(
        last >= acked,
        "{when}: LSN {acked} was acknowledged, the log ends at {last}"
    );
    last
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read"))
        })
        .collect()
}

/// The directory holds the same files with the same bytes.
fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Vec<u8>>, when: &str) {
    let after = snapshot(dir);
    let names = |s: &BTreeMap<String, Vec<u8>>| -> Vec<(String, usize)> {
        s.iter().map(|(n, b)| (n.clone(), b.len())).collect()
    };
    assert_eq!(names(&after), names(before), "{when}: files changed");
    for (name, bytes) in before {
        assert!(after[name] == *bytes, "{when}: the bytes of {name} changed");
    }
}

/// Segment sequence numbers of the `*.seg` files of `dir`.
fn segment_seqs(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// The `errno` somewhere in the error's source chain.
fn errno_of(e: &Error) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(n);
        }
        cur = c.source();
    }
    None
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "Io",
        Error::NoSpace { .. } => "NoSpace",
        Error::Poisoned { .. } => "Poisoned",
        Error::Corrupt { .. } => "Corrupt",
        Error::Locked { .. } => "Locked",
        Error::ReadOnly => "ReadOnly",
        Error::Closed => "Closed",
        _ => "Other",
    }
}

/// `<variant> <errno>` (errno -1 when there is none), as children report errors.
fn describe(e: &Error) -> String {
    format!("{} {}", variant(e), errno_of(e).unwrap_or(-1))
}

/// The error poisons the log and its cause is the injected `EIO` of an `msync`.
fn assert_poisoned_by_flush(e: &Error, when: &str) {
    let cause = match e {
        Error::Poisoned { cause } => cause.as_ref(),
        other => other,
    };
    assert!(
        matches!(
            cause,
            Error::Io {
                op: IoOp::Flush,
                ..
            }
        ),
        "{when}: expected a poisoning flush error, got {e:?}"
    );
    assert_eq!(errno_of(e), Some(EIO), "{when}: {e:?}");
}

fn assert_poisoned(r: mmlog::Result<impl std::fmt::Debug>, when: &str) {
    match r {
        Err(Error::Poisoned { cause }) => assert_poisoned_by_flush(&cause, when),
        other => panic!("{when}: expected Error::Poisoned, got {other:?}"),
    }
}

// ----- byte surgery ---------------------------------------------------------------------

/// Offset just past the last frame of a segment file's bytes (4096 when none), walking
/// the frames by their length fields.
fn end_of_frames(bytes: &[u8]) -> usize {
    let mut pos = 4096;
    while pos + 32 <= bytes.len() {
        let header = &bytes[pos..pos + 32];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let next = pos + (32 + len).next_multiple_of(8);
        if next > bytes.len() {
            break;
        }
        pos = next;
    }
    pos
}

/// Leaves in the closed, crashed log `dir` what only a writer's recovery cleans up: a
/// torn frame after the last record (header and part of a body, so its checksum fails)
/// and a leftover temporary segment file.
fn damage_tail(dir: &Path) {
    let seqs = segment_seqs(dir);
    let last = seqs.iter().rev().find_map(|seq| {
        let path = dir.join(format!("{seq:020}.seg"));
        let bytes = std::fs::read(&path).expect("read segment");
        let end = end_of_frames(&bytes);
        (end > 4096).then_some((path, bytes, end))
    });
    let (path, bytes, end) = last.expect("a segment with records");
    assert!(end + 64 <= bytes.len(), "no room after the last record");
    let header = mmlog::testing::read_segment_header(&bytes[..4096]).expect("header");
    let frame = mmlog::testing::raw_frame(1, 0, 1 << 40, 0, header.epoch, &[0xa5; 200]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .write_all_at(&frame[..64], end as u64)
        .expect("write");
    let next = seqs.last().expect("segments") + 1;
    std::fs::write(dir.join(format!("{next:020}.seg.tmp")), [0u8; 4096]).expect("tmp");
}

/// A crashed log of `records` records over several segments with a damaged tail.
fn crashed_log(dir: &Path, records: u64) {
    let opts = Options {
        env: Env::default().without_background(),
        ..small()
    };
    let (wal, _) = Wal::open(dir, opts).expect("open");
    append_upto(&wal, records, Durability::None);
    wal.sync().expect("sync");
    drop(wal);
    damage_tail(dir);
}

// ----- child processes ----------------------------------------------------------------

fn child_role() -> Option<Vec<String>> {
    let v = std::env::var(CHILD_ENV).ok()?;
    Some(v.split(':').map(str::to_owned).collect())
}

fn say(line: &str) {
    println!("{MARK}{line}");
}

/// The argument list that re-runs `test` alone in this binary.
fn test_args(test: &str) -> [&str; 4] {
    [test, "--exact", "--nocapture", "--test-threads=1"]
}

fn exe() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

/// Runs `cmd` to completion with stderr to `stderr`; returns its status and the
/// `(word, rest)` of each report it printed. The child is reaped before this returns.
fn run_child(mut cmd: Command, stderr: &Path) -> (ExitStatus, Vec<(String, String)>) {
    let err = std::fs::File::create(stderr).expect("stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut reports = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(at) = line.find(MARK) {
            let rest = &line[at + MARK.len()..];
            let (w, r) = rest.split_once(' ').unwrap_or((rest, ""));
            reports.push((w.to_owned(), r.to_owned()));
        }
    }
    let status = child.wait().expect("wait");
    (status, reports)
}

/// The first report `word`, if any.
fn report<'a>(reports: &'a [(String, String)], word: &str) -> Option<&'a str> {
    reports
        .iter()
        .find(|(w, _)| w == word)
        .map(|(_, r)| r.as_str())
}

fn reports_of<'a>(reports: &'a [(String, String)], word: &str) -> Vec<&'a str> {
    reports
        .iter()
        .filter(|(w, _)| w == word)
        .map(|(_, r)| r.as_str())
        .collect()
}

fn number(s: &str) -> u64 {
    s.parse().expect("a number")
}

/// The child exited normally (its test passed): no panic, no signal.
fn assert_clean_exit(status: ExitStatus, stderr: &Path, when: &str) {
    let err = std::fs::read_to_string(stderr).unwrap_or_default();
    assert!(
        !matches!(status.signal(), Some(SIGBUS | SIGSEGV | SIGXFSZ)),
        "{when}: the child died of {status}; its stderr:\n{err}"
    );
    assert!(
        status.success(),
        "{when}: the child ended with {status}; its stderr:\n{err}"
    );
}

// ----- D23: a failed sync poisons the log ----------------------------------------------

#[test]
fn a_failed_sync_poisons_the_log_and_nothing_more_is_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), with_failpoints(&fp)).expect("open");
    append_upto(&wal, 100, Durability::None);
    let acked = append_upto(&wal, 120, Durability::Sync);
    append_upto(&wal, 130, Durability::None);

    let flushes = fp.hits(Step::Flush);
    fp.arm_once(Step::Flush, 0, FailAction::Errno(EIO));
    let e = wal.sync().expect_err("the sync must fail");
    assert_poisoned_by_flush(&e, "the failing sync");
    assert_eq!(wal.durable(), Lsn(acked), "the durable mark moved");

    // The failpoint fired once: a retried msync would now succeed. The log must not
    // retry: everything durable is refused from now on.
    assert_poisoned(wal.sync(), "sync after the failure");
    assert_poisoned(wal.append(&expected(131)), "append after the failure");
    assert_poisoned(
        wal.append_with(&expected(131), Durability::Sync),
        "durable append after the failure",
    );
    assert_poisoned(
        wal.append_batch(&[&expected(131)[..], &expected(132)[..]]),
        "batch after the failure",
    );
    assert_poisoned(wal.wait_durable(Lsn(125)), "wait_durable after the failure");
    assert!(
        wal.truncate_after(Lsn(100)).is_err(),
        "truncate after the failure"
    );
    assert!(
        wal.write_checkpoint(Lsn(125), b"state").is_err(),
        "a checkpoint needs the log synced"
    );
    assert_eq!(wal.durable(), Lsn(acked), "nothing more was acknowledged");
    assert_eq!(wal.appended(), Lsn(130), "nothing more was appended");
    assert_eq!(
        fp.hits(Step::Flush),
        flushes + 1,
        "a failed msync must not be retried"
    );
    assert!(wal.close().is_err(), "close of a poisoned log");
    assert_eq!(fp.hits(Step::Flush), flushes + 1, "close retried the msync");

    // Reopen recovers what is on disk: the acknowledged records, and the later ones
    // too (they are in the page cache: the process did not crash).
    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(!report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, 130, "after reopen"), 130);
    assert_eq!(wal.append(&expected(131)).expect("append"), Lsn(131));
    wal.close().expect("close");
}

/// A write-back error can reach the process through another flush's `msync` (the
/// kernel reports it to one of them). Each flush therefore also checks through a handle
/// of its own: when only that check fails, the flush fails and poisons the log, exactly
/// as if its `msync` had.
#[test]
fn a_write_back_error_seen_only_by_the_check_after_the_msync_poisons_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), with_failpoints(&fp)).expect("open");
    let acked = append_upto(&wal, 20, Durability::Sync);
    append_upto(&wal, 30, Durability::None);
    let (flushes, checks) = (fp.hits(Step::Flush), fp.hits(Step::WritebackCheck));
    assert!(checks > 0, "every flush checks for write-back errors");
    fp.arm_once(Step::WritebackCheck, 0, FailAction::Errno(EIO));
    let e = wal
        .append_with(&expected(31), Durability::Sync)
        .expect_err("the durable append must fail");
    assert_poisoned_by_flush(&e, "the failing check");
    assert_eq!(
        fp.hits(Step::Flush),
        flushes + 1,
        "its msync ran and succeeded"
    );
    assert_eq!(wal.durable(), Lsn(acked), "the durable mark moved");
    assert_poisoned(wal.sync(), "sync after the failure");
    assert_poisoned(wal.append(&expected(32)), "append after the failure");
    assert_eq!(wal.durable(), Lsn(acked), "nothing more was acknowledged");
    assert!(wal.close().is_err(), "close of a poisoned log");
    let (wal, _) = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(check_log(&wal, 31, "after reopen"), 31);
    wal.close().expect("close");
}

#[test]
fn a_sync_that_keeps_failing_poisons_the_log_until_a_healthy_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), with_failpoints(&fp)).expect("open");
    append_upto(&wal, 280, Durability::None);
    let acked = append_upto(&wal, 300, Durability::Sync);

    let flushes = fp.hits(Step::Flush);
    fp.arm(Step::Flush, 0, FailAction::Errno(EIO));
    let e = wal
        .append_with(&expected(301), Durability::Sync)
        .expect_err("the durable append must fail");
    assert_poisoned_by_flush(&e, "the failing durable append");
    for k in 0..3 {
        assert_poisoned(wal.sync(), &format!("sync {k}"));
        assert_poisoned(
            wal.append_with(&expected(302), Durability::None),
            &format!("append {k}"),
        );
    }
    assert_eq!(wal.durable(), Lsn(acked));
    assert_eq!(
        fp.hits(Step::Flush),
        flushes + 1,
        "a failed msync must not be retried"
    );
    let e = wal.close().expect_err("close of a poisoned log");
    assert!(matches!(e, Error::Poisoned { .. }), "{e:?}");
    drop(wal);

    // While the disk keeps failing, an open fails too: it cannot make what it recovered
    // durable. A typed error, and the lock is released.
    let failing = Arc::new(Failpoints::new());
    failing.arm(Step::Flush, 0, FailAction::Errno(EIO));
    let e = Wal::open(dir.path(), with_failpoints(&failing)).expect_err("open on a failing disk");
    assert!(
        matches!(
            &e,
            Error::Io {
                op: IoOp::Flush,
                ..
            }
        ),
        "open on a failing disk: {e:?}"
    );
    assert_eq!(errno_of(&e), Some(EIO));

    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(!report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, 301, "after reopen"), 301);
    wal.close().expect("close");
}

#[test]
fn every_thread_waiting_on_a_failed_sync_gets_an_error() {
    const THREADS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), with_failpoints(&fp)).expect("open");
    let wal = Arc::new(wal);

    type Outcome = (usize, Vec<(u64, Vec<u8>)>, Option<Error>);
    let (progress_tx, progress) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<Outcome>();
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let wal = Arc::clone(&wal);
        let progress_tx = progress_tx.clone();
        let done_tx = done_tx.clone();
        handles.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut error = None;
            for i in 0..100_000u64 {
                let p = format!("thread {t} record {i}").into_bytes();
                match wal.append_with(&p, Durability::Sync) {
                    Ok(lsn) => {
                        acked.push((lsn.0, p));
                        if acked.len() == 3 {
                            let _ = progress_tx.send(());
                        }
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            let _ = done_tx.send((t, acked, error));
        }));
    }
    // Every thread is appending durably; then the next msync fails, once.
    for _ in 0..THREADS {
        progress
            .recv_timeout(Duration::from_secs(60))
            .expect("a thread made no progress");
    }
    fp.arm_once(Step::Flush, 0, FailAction::Errno(EIO));
    let mut outcomes = Vec::new();
    for _ in 0..THREADS {
        outcomes.push(
            done.recv_timeout(Duration::from_secs(60))
                .expect("a thread hangs after the failed sync"),
        );
    }
    for h in handles {
        h.join().expect("thread");
    }

    let durable = wal.durable().0;
    let mut acked_all = Vec::new();
    for (t, acked, error) in outcomes {
        let Some(e) = error else {
            panic!("thread {t} never got an error");
        };
        assert_poisoned_by_flush(&e, &format!("thread {t}"));
        for (lsn, _) in &acked {
            assert!(
                *lsn <= durable,
                "thread {t}: LSN {lsn} acknowledged above the durable mark {durable}"
            );
        }
        acked_all.extend(acked);
    }
    assert_poisoned(wal.sync(), "sync after the failure");
    assert_eq!(wal.durable().0, durable);
    drop(wal);

    let (wal, _) = Wal::open(dir.path(), small()).expect("reopen");
    let all: BTreeMap<u64, Vec<u8>> = read_all(&wal).into_iter().collect();
    for (lsn, p) in &acked_all {
        assert!(
            all.get(lsn) == Some(p),
            "acknowledged LSN {lsn} is not in the recovered log"
        );
    }
    wal.close().expect("close");
}

#[test]
fn a_failed_background_flush_poisons_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let opts = Options {
        flush_interval: Some(Duration::from_millis(1)),
        ..with_failpoints(&fp)
    };
    let (wal, _) = Wal::open(dir.path(), opts).expect("open");
    append_upto(&wal, 20, Durability::Sync);
    fp.arm_once(Step::Flush, 0, FailAction::Errno(EIO));
    // The periodic flush hits the failpoint; from then on appends are refused. Small
    // appends keep giving it something to flush.
    let deadline = Instant::now() + Duration::from_secs(60);
    let e = loop {
        let lsn = wal.appended().0 + 1;
        match wal.append_with(&expected(lsn), Durability::None) {
            Ok(_) => {
                assert!(Instant::now() < deadline, "the background flush never ran");
                std::thread::yield_now();
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(e, Error::Poisoned { .. }), "{e:?}");
    assert_poisoned_by_flush(&e, "append after the failed background flush");
    let last = wal.appended().0;
    let durable = wal.durable();
    assert_poisoned(wal.sync(), "sync after the failed background flush");
    assert_eq!(wal.durable(), durable, "acknowledged after the failure");
    assert!(
        matches!(wal.close(), Err(Error::Poisoned { .. })),
        "close must report the failed background flush"
    );
    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(!report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, last, "after reopen"), last);
    wal.close().expect("close");
}

// ----- D24: a failed sync, then close ---------------------------------------------------

#[test]
fn close_after_a_failed_sync_fails_and_the_next_open_recovers_in_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Control: a clean close is recognised.
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    append_upto(&wal, 100, Durability::None);
    wal.close().expect("close");
    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(report.clean_shutdown, "control: {report}");
    drop(wal);

    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir.path(), with_failpoints(&fp)).expect("open");
    append_upto(&wal, 200, Durability::None);
    let flushes = fp.hits(Step::Flush);
    fp.arm_once(Step::Flush, 0, FailAction::Errno(EIO));
    assert_poisoned_by_flush(&wal.sync().expect_err("sync"), "the failing sync");
    // The failpoint is spent: a close that retried the sync would succeed and write the
    // seal of a clean shutdown.
    let e = wal.close().expect_err("close after a failed sync");
    assert!(matches!(e, Error::Poisoned { .. }), "{e:?}");
    assert_eq!(fp.hits(Step::Flush), flushes + 1, "close retried the msync");
    drop(wal);

    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(
        !report.clean_shutdown,
        "a close that failed is not a clean shutdown: {report}"
    );
    assert_eq!(
        report.records_scanned, 200,
        "full recovery scans every record: {report}"
    );
    assert_eq!(check_log(&wal, 200, "after reopen"), 200);
    wal.close().expect("close");
}

// ----- D25: a read error during recovery -------------------------------------------------

#[test]
fn a_read_error_during_recovery_fails_the_open_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), 400);
    let segments = segment_seqs(dir.path()).len() as u64;
    assert!(segments >= 4, "{segments} segments");
    let before = snapshot(dir.path());

    // The header read fails with EIO, or the mapping of the segment with ENOMEM.
    let faults = [
        (Step::SegmentRead, EIO, IoOp::Read),
        (Step::SegmentMap, ENOMEM, IoOp::Map),
    ];
    for (k, (step, errno, op), read_only) in (0..segments)
        .flat_map(|k| faults.map(|f| (k, f)))
        .flat_map(|(k, f)| [false, true].map(|ro| (k, f, ro)))
    {
        {
            let when = format!(
                "{step:?} failing on segment {} (read-only {read_only})",
                k + 1
            );
            let fp = Arc::new(Failpoints::new());
            fp.arm_once(step, k, FailAction::Errno(errno));
            let opts = Options {
                read_only,
                ..with_failpoints(&fp)
            };
            match Wal::open(dir.path(), opts) {
                Ok((wal, report)) => panic!(
                    "{when}: the open succeeded with the log ending at {} ({report})",
                    wal.appended()
                ),
                Err(e) => {
                    assert!(
                        matches!(&e, Error::Io { op: o, .. } if *o == op),
                        "{when}: {e:?}"
                    );
                    assert_eq!(errno_of(&e), Some(errno), "{when}");
                }
            }
            assert_eq!(fp.hits(step), k + 1, "{when}: hits");
            assert_unchanged(dir.path(), &before, &when);
        }
    }

    // Without the error the same open trims the torn tail and removes the leftover:
    // the failed opens would have changed the directory had they gone on.
    let (wal, report) = Wal::open(dir.path(), small()).expect("open");
    assert!(
        !report.dropped.is_empty() && !report.removed_files.is_empty(),
        "{report}"
    );
    assert_eq!(check_log(&wal, 400, "after a healthy open"), 400);
    wal.close().expect("close");
}

// ----- ENOSPC at segment allocation -----------------------------------------------------

#[test]
fn no_space_at_segment_allocation_is_no_space_and_appends_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fp = Arc::new(Failpoints::new());
    let opts = Options {
        env: Env::default()
            .without_background()
            .failpoints(Arc::clone(&fp)),
        ..small()
    };
    // A new log whose first segment cannot be allocated: a typed error, and the next
    // open (with space) creates the log.
    fp.arm_once(Step::SegmentAllocate, 0, FailAction::Errno(ENOSPC));
    let e = Wal::open(dir.path(), opts.clone()).expect_err("a new log on a full disk");
    assert!(matches!(&e, Error::NoSpace { .. }), "{e:?}");
    let (wal, report) = Wal::open(dir.path(), opts.clone()).expect("open");
    assert!(report.created, "{report}");
    while wal.segments().len() < 2 {
        let lsn = wal.appended().0 + 1;
        wal.append(&expected(lsn)).expect("append");
    }
    let acked = wal.appended().0;

    fp.arm(Step::SegmentAllocate, 0, FailAction::Errno(ENOSPC));
    let mut failed = None;
    for _ in 0..1000 {
        let lsn = wal.appended().0 + 1;
        match wal.append(&expected(lsn)) {
            Ok(got) => assert_eq!(got, Lsn(lsn)),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = failed.expect("no append failed although no segment can be allocated");
    assert!(matches!(&e, Error::NoSpace { .. }), "{e:?}");
    let source = std::error::Error::source(&e).expect("the OS error");
    let io = source
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.raw_os_error(), Some(ENOSPC), "{e:?}");

    // Full, not broken: later appends fail the same way, nothing is poisoned, every
    // record appended so far is readable and durable.
    let last = wal.appended().0;
    assert!(last > acked);
    let e = wal
        .append_with(&expected(last + 1), Durability::Sync)
        .expect_err("still no space");
    assert!(matches!(e, Error::NoSpace { .. }), "{e:?}");
    assert_eq!(wal.sync().expect("sync while full"), Lsn(last));
    assert_eq!(check_log(&wal, last, "while full"), last);

    // Space again: the log continues with the next LSN, across rollovers.
    fp.disarm(Step::SegmentAllocate);
    for lsn in last + 1..=last + 150 {
        let durability = if lsn % 10 == 0 {
            Durability::Sync
        } else {
            Durability::None
        };
        assert_eq!(
            wal.append_with(&expected(lsn), durability)
                .expect("append after space was freed"),
            Lsn(lsn)
        );
    }
    wal.close().expect("close");
    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen");
    assert!(report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, last + 150, "after reopen"), last + 150);
    wal.close().expect("close");
}

#[test]
fn no_space_while_recovering_fails_the_open_and_loses_nothing() {
    // A crashed log with a torn tail: its writer's open seals the last segment at the
    // torn frame and needs a new segment, which cannot be allocated.
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), 300);
    let fp = Arc::new(Failpoints::new());
    fp.arm(Step::SegmentAllocate, 0, FailAction::Errno(ENOSPC));
    let e = Wal::open(dir.path(), with_failpoints(&fp))
        .expect_err("an open that needs a new segment on a full disk");
    assert!(matches!(&e, Error::NoSpace { .. }), "{e:?}");
    assert_eq!(errno_of(&e), Some(ENOSPC));
    let read_only = Options {
        read_only: true,
        ..small()
    };
    let (wal, _) = Wal::open(dir.path(), read_only).expect("read-only open");
    assert_eq!(check_log(&wal, 300, "read-only after the failed open"), 300);
    drop(wal);

    // With space again: the log takes appends, and keeps them over a crash and over a
    // clean close.
    let (wal, report) = Wal::open(dir.path(), small()).expect("open with space");
    assert!(report.dropped.iter().all(|d| d.torn_tail), "{report}");
    assert_eq!(check_log(&wal, 300, "after the failed open"), 300);
    append_upto(&wal, 350, Durability::None);
    wal.sync().expect("sync");
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).expect("open after a crash");
    assert!(report.dropped.iter().all(|d| d.torn_tail), "{report}");
    assert_eq!(
        check_log(&wal, 350, "350 records synced, then a crash"),
        350,
        "{report}"
    );
    append_upto(&wal, 400, Durability::None);
    wal.close().expect("close");
    let (wal, report) = Wal::open(dir.path(), small()).expect("open after a clean close");
    assert!(report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, 400, "after a clean close"), 400);
    wal.close().expect("close");
}

#[test]
fn a_failed_rotation_step_is_a_typed_error_and_the_log_goes_on() {
    // Each persistence step of creating the next segment fails once with EIO, on the
    // appending thread (no background thread): the append that needed the segment gets
    // the error, the next one succeeds with the next LSN, and recovery finds no hole.
    let steps = [
        (Step::SegmentCreate, IoOp::Create),
        (Step::SegmentAllocate, IoOp::Allocate),
        (Step::SegmentHeaderWrite, IoOp::Write),
        (Step::SegmentSync, IoOp::SyncFile),
        (Step::SegmentRename, IoOp::Rename),
        (Step::DirSync, IoOp::SyncDir),
        (Step::SegmentMap, IoOp::Map),
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    for (k, (step, op)) in steps.into_iter().enumerate() {
        let when = format!("{step:?} failing once");
        let dir = tmp.path().join(format!("log{k}"));
        let fp = Arc::new(Failpoints::new());
        let opts = Options {
            env: Env::default()
                .without_background()
                .failpoints(Arc::clone(&fp)),
            ..small()
        };
        let (wal, _) = Wal::open(&dir, opts).expect("open");
        fp.arm_once(step, 0, FailAction::Errno(EIO));
        let mut failed = None;
        for _ in 0..1000 {
            let lsn = wal.appended().0 + 1;
            match wal.append(&expected(lsn)) {
                Ok(got) => assert_eq!(got, Lsn(lsn), "{when}"),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let e = failed.unwrap_or_else(|| panic!("{when}: no append failed"));
        assert!(
            matches!(&e, Error::Io { op: o, .. } if *o == op),
            "{when}: {e:?}"
        );
        assert_eq!(errno_of(&e), Some(EIO), "{when}");
        let last = wal.appended().0;
        append_upto(&wal, last + 150, Durability::None);
        wal.sync().expect("sync");
        assert_eq!(check_log(&wal, last + 150, &when), last + 150);
        drop(wal);

        let (wal, report) = Wal::open(&dir, small()).expect("reopen");
        assert!(
            report.dropped.iter().all(|d| d.torn_tail),
            "{when}: {report}"
        );
        assert_eq!(check_log(&wal, last + 150, &when), last + 150);
        wal.close().expect("close");
        let seqs = segment_seqs(&dir);
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{when}: hole between segments {seqs:?}");
        }
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{when}: leftovers {leftovers:?}");
    }
}

// ----- D27: RLIMIT_FSIZE and RLIMIT_NOFILE ----------------------------------------------

/// A child that appends to the log `dir` with `opts` until `max_errors` appends failed
/// or `ops` succeeded, every eighth durably, reporting `acked <lsn>` after each append
/// that returned (a process crash cannot take those) and `append_error <variant>
/// <errno>` after each failure; then checks what it can read (`verified <n>`: records
/// dense from 1 with the expected payloads).
fn append_until_errors(dir: &Path, opts: Options, ops: u64, max_errors: usize) {
    let (wal, report) = match Wal::open(dir, opts) {
        Ok(x) => x,
        Err(e) => {
            say(&format!("open_error {}", describe(&e)));
            return;
        }
    };
    say(&format!("opened {}", report.next_lsn.0));
    let mut errors = 0;
    for _ in 0..ops {
        let lsn = wal.appended().0 + 1;
        let durability = if lsn % 8 == 0 {
            Durability::Sync
        } else {
            Durability::None
        };
        match wal.append_with(&expected(lsn), durability) {
            Ok(got) => {
                assert_eq!(got, Lsn(lsn), "LSNs go on densely after errors");
                say(&format!("acked {lsn}"));
            }
            Err(e) => {
                say(&format!("append_error {}", describe(&e)));
                errors += 1;
                if errors == max_errors {
                    break;
                }
            }
        }
    }
    let all = read_all(&wal);
    let good = all
        .iter()
        .enumerate()
        .take_while(|(i, (lsn, p))| *lsn == *i as u64 + 1 && *p == expected(*lsn))
        .count();
    say(&format!("verified {good}"));
    say(&format!("records {}", all.len()));
}

#[test]
fn a_file_size_limit_gives_no_space_and_no_signal() {
    const TEST: &str = "a_file_size_limit_gives_no_space_and_no_signal";
    // 512-byte blocks (dash and bash in POSIX mode) or 1 KiB blocks: 256 or 512 KiB.
    // A 64 KiB segment fits, a 1 MiB one does not.
    const LIMIT_BLOCKS: u32 = 512;
    let big = Options {
        segment_size_bytes: 1024 * 1024,
        ..small()
    };
    if let Some(fields) = child_role() {
        assert_eq!(fields[0], "fsize");
        let (dir, fresh) = (PathBuf::from(&fields[1]), PathBuf::from(&fields[2]));
        // A new log cannot even create its first segment.
        match Wal::open(&fresh, big.clone()) {
            Ok(_) => say("new_log_error Ok 0"),
            Err(e) => say(&format!("new_log_error {}", describe(&e))),
        }
        // An existing log of 64 KiB segments fills its last one, then cannot roll over.
        append_until_errors(&dir, big, 400, 3);
        return;
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let (wal, _) = Wal::open(&dir, small()).expect("open");
    append_upto(&wal, 100, Durability::None);
    wal.close().expect("close");

    let script = format!(r#"trap "" XFSZ; ulimit -f {LIMIT_BLOCKS} && exec "$0" "$@""#);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(exe())
        .args(test_args(TEST))
        .env(
            CHILD_ENV,
            format!(
                "fsize:{}:{}",
                dir.display(),
                tmp.path().join("fresh").display()
            ),
        );
    let stderr = tmp.path().join("child-stderr");
    let (status, reports) = run_child(cmd, &stderr);
    assert_clean_exit(status, &stderr, "RLIMIT_FSIZE");

    // EFBIG is "no space" for mmlog; a plain typed I/O error would do, a signal not.
    let efbig = |r: &str, when: &str| {
        assert!(
            r == format!("NoSpace {EFBIG}") || r == format!("Io {EFBIG}"),
            "{when}: {r}"
        );
    };
    efbig(
        report(&reports, "new_log_error").expect("new log report"),
        "a new log under the limit",
    );
    assert_eq!(report(&reports, "opened"), Some("101"), "{reports:?}");
    let errors = reports_of(&reports, "append_error");
    assert_eq!(errors.len(), 3, "{reports:?}");
    for e in errors {
        efbig(e, "an append that needs a new segment");
    }
    let acked = reports_of(&reports, "acked")
        .last()
        .map_or(100, |s| number(s));
    assert!(acked > 100, "the last 64 KiB segment took no record");
    let verified = number(report(&reports, "verified").expect("verified"));
    assert_eq!(
        number(report(&reports, "records").expect("records")),
        verified
    );
    assert_eq!(verified, acked, "every record is readable");

    // Without the limit, the log recovers every record and goes on.
    let (wal, _) = Wal::open(&dir, small()).expect("reopen");
    assert_eq!(check_log(&wal, acked, "after the child"), acked);
    append_upto(&wal, acked + 100, Durability::None);
    wal.sync().expect("sync");
    wal.close().expect("close");
}

#[test]
fn too_few_file_descriptors_give_typed_errors() {
    const TEST: &str = "too_few_file_descriptors_give_typed_errors";
    const FDS: u32 = 9;
    if let Some(fields) = child_role() {
        assert_eq!(fields[0], "nofile");
        let (full, fresh) = (PathBuf::from(&fields[1]), PathBuf::from(&fields[2]));
        // A log of more segments than descriptors: recovery cannot open them all.
        match Wal::open(&full, small()) {
            Ok((wal, _)) => say(&format!("full_opened {}", wal.appended().0)),
            Err(e) => say(&format!("full_error {}", describe(&e))),
        }
        // A new log: rollovers run out of descriptors; appends keep failing cleanly.
        append_until_errors(&fresh, small(), 3000, 5);
        return;
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let full = tmp.path().join("full");
    let opts = Options {
        env: Env::default().without_background(),
        ..small()
    };
    let (wal, _) = Wal::open(&full, opts).expect("open");
    let mut lsn = 0;
    while wal.segments().len() < FDS as usize + 2 {
        lsn += 1;
        wal.append(&expected(lsn)).expect("append");
    }
    wal.close().expect("close");

    let fresh = tmp.path().join("fresh");
    let script = format!(r#"ulimit -n {FDS} && exec "$0" "$@""#);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(exe())
        .args(test_args(TEST))
        .env(
            CHILD_ENV,
            format!("nofile:{}:{}", full.display(), fresh.display()),
        );
    let stderr = tmp.path().join("child-stderr");
    let (status, reports) = run_child(cmd, &stderr);
    assert_clean_exit(status, &stderr, "RLIMIT_NOFILE");

    assert_eq!(
        report(&reports, "full_error"),
        Some(format!("Io {EMFILE}").as_str()),
        "opening a log of more segments than descriptors: {reports:?}"
    );
    let errors = reports_of(&reports, "append_error");
    assert!(!errors.is_empty(), "no append failed: {reports:?}");
    for e in &errors {
        assert_eq!(*e, format!("Io {EMFILE}"), "{reports:?}");
    }
    let acked = reports_of(&reports, "acked")
        .last()
        .map_or(0, |s| number(s));
    let verified = number(report(&reports, "verified").expect("verified"));
    assert!(verified >= acked, "{reports:?}");

    // With descriptors again: both logs recover in full and take appends.
    for (dir, acked) in [(&full, lsn), (&fresh, acked)] {
        let (wal, report) = Wal::open(dir, small()).expect("reopen");
        let when = format!("{} after the child", dir.display());
        assert!(
            report.dropped.iter().all(|d| d.torn_tail),
            "{when}: {report}"
        );
        let last = check_log(&wal, acked, &when);
        append_upto(&wal, last + 100, Durability::None);
        wal.sync().expect("sync");
        wal.close().expect("close");
        let seqs = segment_seqs(dir);
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{when}: hole between segments {seqs:?}");
        }
    }
}

// ----- D28: read-only file system and read-only opens -----------------------------------

#[test]
fn a_read_only_open_recovers_a_crashed_log_in_memory_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), 300);
    let before = snapshot(dir.path());
    let read_only = Options {
        read_only: true,
        ..small()
    };
    for round in 0..2 {
        let (wal, report) = Wal::open(dir.path(), read_only.clone()).expect("read-only open");
        let when = format!("read-only open {round}");
        assert!(
            !report.dropped.is_empty() && report.dropped.iter().all(|d| d.torn_tail),
            "{when}: {report}"
        );
        assert!(!report.removed_files.is_empty(), "{when}: {report}");
        assert_eq!(check_log(&wal, 300, &when), 300);
        assert!(
            matches!(wal.append(b"x"), Err(Error::ReadOnly)),
            "{when}: append"
        );
        assert!(matches!(wal.sync(), Err(Error::ReadOnly)), "{when}: sync");
        drop(wal);
        assert_unchanged(dir.path(), &before, &when);
    }
    // A writer's open does change it: the read-only opens had work they did not do.
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    assert_eq!(check_log(&wal, 300, "writer"), 300);
    wal.close().expect("close");
    assert!(snapshot(dir.path()) != before);
}

/// The build step inside the namespace: a crashed log with a damaged tail.
fn ro_build(dir: &Path) {
    crashed_log(dir, 250);
    say("built 250");
}

/// The check step, on the read-only file system.
fn ro_check(dir: &Path) {
    let before = snapshot(dir);
    match Wal::open(dir, small()) {
        Ok(_) => say("writable_error Ok 0"),
        Err(e) => say(&format!("writable_error {}", describe(&e))),
    }
    match Wal::open(dir.join("new"), small()) {
        Ok(_) => say("create_error Ok 0"),
        Err(e) => say(&format!("create_error {}", describe(&e))),
    }
    say(&format!(
        "unchanged_after_writable {}",
        u8::from(snapshot(dir) == before)
    ));
    let read_only = Options {
        read_only: true,
        ..small()
    };
    match Wal::open(dir, read_only) {
        Ok((wal, report)) => {
            let all = read_all(&wal);
            let good = all
                .iter()
                .enumerate()
                .take_while(|(i, (lsn, p))| *lsn == *i as u64 + 1 && *p == expected(*lsn))
                .count();
            say(&format!("ro_records {}", all.len()));
            say(&format!("ro_verified {good}"));
            say(&format!("ro_next {}", report.next_lsn.0));
            say(&format!(
                "ro_torn {}",
                report.dropped.len() * usize::from(report.dropped.iter().all(|d| d.torn_tail))
            ));
        }
        Err(e) => say(&format!("ro_error {}", describe(&e))),
    }
    say(&format!(
        "unchanged_after_read_only {}",
        u8::from(snapshot(dir) == before)
    ));
}

#[test]
fn a_read_only_file_system_fails_writers_early_and_read_only_opens_recover() {
    const TEST: &str = "a_read_only_file_system_fails_writers_early_and_read_only_opens_recover";
    if let Some(fields) = child_role() {
        let dir = PathBuf::from(fields[1..].join(":"));
        match fields[0].as_str() {
            "ro-build" => ro_build(&dir),
            "ro-check" => ro_check(&dir),
            other => panic!("unknown scenario {other}"),
        }
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    // Mount a tmpfs, build a crashed log on it, remount it read-only, check.
    let script = format!(
        r#"mount -t tmpfs -o size=8m tmpfs "$D" || exit 0
echo "{MARK}mounted 1"
MMLOG_TEST_CHILD="ro-build:$D/log" "$0" "$@" || exit 1
mount -o remount,ro "$D" || exit 0
echo "{MARK}remounted 1"
MMLOG_TEST_CHILD="ro-check:$D/log" exec "$0" "$@""#
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-r", "-m", "sh", "-c", &script])
        .arg(exe())
        .args(test_args(TEST))
        .env("D", &mnt);
    let stderr = tmp.path().join("child-stderr");
    let (status, reports) = match Command::new("unshare").arg("--help").output() {
        Ok(_) => run_child(cmd, &stderr),
        Err(e) => {
            eprintln!("SKIPPED: no unshare command ({e}); D28 on a read-only mount not tested");
            return;
        }
    };
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    if report(&reports, "mounted").is_none() {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs in a user namespace ({status}): {}",
            err.trim()
        );
        return;
    }
    assert_eq!(
        report(&reports, "built"),
        Some("250"),
        "building the log failed ({status}): {err}"
    );
    if report(&reports, "remounted").is_none() {
        eprintln!(
            "SKIPPED: cannot remount the tmpfs read-only ({status}): {}",
            err.trim()
        );
        return;
    }
    assert_clean_exit(status, &stderr, "read-only file system");
    let erofs = format!("Io {EROFS}");
    assert_eq!(
        report(&reports, "writable_error"),
        Some(erofs.as_str()),
        "a writable open: {reports:?}"
    );
    assert_eq!(
        report(&reports, "create_error"),
        Some(erofs.as_str()),
        "creating a log: {reports:?}"
    );
    assert_eq!(
        report(&reports, "unchanged_after_writable"),
        Some("1"),
        "{reports:?}"
    );
    assert_eq!(report(&reports, "ro_error"), None, "{reports:?}");
    assert_eq!(report(&reports, "ro_records"), Some("250"), "{reports:?}");
    assert_eq!(report(&reports, "ro_verified"), Some("250"), "{reports:?}");
    assert_eq!(report(&reports, "ro_next"), Some("251"), "{reports:?}");
    assert_ne!(
        report(&reports, "ro_torn"),
        Some("0"),
        "the torn tail must be trimmed in memory: {reports:?}"
    );
    assert_eq!(
        report(&reports, "unchanged_after_read_only"),
        Some("1"),
        "{reports:?}"
    );
}
