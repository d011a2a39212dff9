//! Directory locking (FAULTS F32–F34): one writer at a time, from any process.
//!
//! Provoked in this process by opening a log that is already open (as a writer and
//! read-only, and while a borrowed record still holds a closed log), and across
//! processes by re-executing this test binary as a child (`MMLOG_TEST_CHILD` names the
//! scenario and the directory, set on the child command only). The child opens the
//! log, appends, reports on stdout each LSN whose durable append returned, and blocks
//! on stdin; the parent synchronises on those lines only. A second opener must get
//! `Error::Locked` naming the holder's pid and leave every file name, size and byte of
//! the directory as it was; two read-only opens share the lock; a holder killed with
//! SIGKILL releases the lock, and the next open recovers every acknowledged record.
//! While a directory is compared byte for byte, the holder's log runs with a failpoint
//! that stops its background thread from preparing segments, so nothing but the
//! opener under test could change the directory.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;

use common::{Rng, payload, read_all, small};
use mmlog::testing::{FailAction, Failpoints, Step};
use mmlog::{Durability, Env, Error, Lsn, Options, Wal};

/// Names the child's scenario and directory, as `<scenario>:<dir>`.
const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// Prefix of the lines the child reports on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";
/// Payload tag of the records the children write.
const TAG: u64 = 0x10c4;

// Linux signal numbers (x86 and Arm).
const SIGBUS: i32 = 7;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;

/// Length of the record with LSN `lsn` in every log of this file: a pure function of
/// the LSN, so a reader can check any record without knowing how it was written.
fn len_for(lsn: u64) -> usize {
    (lsn.wrapping_mul(2_654_435_761) % 1500) as usize
}

fn expected(lsn: u64) -> Vec<u8> {
    payload(TAG, lsn, len_for(lsn))
}

/// Options for a holder whose directory must not change on its own: the failpoint lets
/// the first segment be created (by the open of a new log) and fails every later
/// creation before it touches the disk, so the background thread, which prepares the
/// next segment ahead of the writer, leaves the directory alone. Appends must stay in
/// the first segment.
fn quiet_holder() -> Options {
    let fp = Arc::new(Failpoints::new());
    fp.arm(Step::SegmentCreate, 1, FailAction::Errno(5));
    Options {
        env: Env::with_failpoints(fp),
        ..small()
    }
}

/// Appends `n` records (the last one durable) whose payloads follow [`expected`].
fn append_expected(wal: &Wal, n: u64) -> Lsn {
    let mut last = wal.appended();
    for k in 0..n {
        let lsn = wal.appended().0 + 1;
        let durability = if k + 1 == n {
            Durability::Sync
        } else {
            Durability::None
        };
        last = wal.append_with(&expected(lsn), durability).expect("append");
        assert_eq!(last, Lsn(lsn));
    }
    last
}

/// Every record of the log is the expected one for its LSN, LSNs are dense from 1, and
/// the log reaches at least `acked`. Returns the last LSN.
fn check_log(wal: &Wal, acked: u64, when: &str) -> u64 {
    let all = read_all(wal);
    for (i, (lsn, p)) in all.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1, "{when}: LSNs must be dense from 1");
        assert!(*p == expected(*lsn), "{when}: payload of LSN {lsn}");
    }
    let last = all.len() as u64;
    assert!(
        last >= acked,
        "{when}: acknowledged LSN {acked} lost; log ends at {last}"
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
            assert!(
                e.file_type().expect("type").is_file(),
                "unexpected entry {name}"
            );
            let bytes = std::fs::read(e.path()).expect("read");
            (name, bytes)
        })
        .collect()
}

/// The directory is exactly as in `before`: same names, sizes and bytes.
fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Vec<u8>>, when: &str) {
    let after = snapshot(dir);
    let sizes = |s: &BTreeMap<String, Vec<u8>>| -> Vec<(String, usize)> {
        s.iter().map(|(n, b)| (n.clone(), b.len())).collect()
    };
    assert_eq!(
        sizes(&after),
        sizes(before),
        "{when}: file names or sizes changed"
    );
    for (name, bytes) in before {
        assert!(after[name] == *bytes, "{when}: the bytes of {name} changed");
    }
}

/// Asserts `r` is `Error::Locked` for `dir`, naming `pid` when given.
fn assert_locked<T>(r: mmlog::Result<T>, dir: &Path, pid: Option<u32>, when: &str) {
    let Err(e) = r else {
        panic!("{when}: the open succeeded while the directory was locked");
    };
    assert!(
        matches!(&e, Error::Locked { dir: d, .. } if d == dir),
        "{when}: {e:?}"
    );
    if let (Error::Locked { pid: found, .. }, Some(_)) = (&e, pid) {
        assert_eq!(*found, pid, "{when}: the pid of the holder");
    }
}

/// The child role, when this process is one: `(scenario, dir)`.
fn child_role() -> Option<(String, PathBuf)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (scenario, dir) = v
        .split_once(':')
        .expect("MMLOG_TEST_CHILD is <scenario>:<dir>");
    Some((scenario.to_owned(), PathBuf::from(dir)))
}

/// Reports one line to the parent.
fn report(line: &str) {
    println!("{MARK}{line}");
}

/// Blocks until the parent closes our stdin (or kills us).
fn wait_for_parent() {
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).expect("stdin");
}

/// A child process running one scenario of this file; killed and reaped on drop, so no
/// child outlives its test.
struct ChildProc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
    _stderr_dir: tempfile::TempDir,
}

impl ChildProc {
    /// Re-executes this binary to run test `test` as the child of `scenario` on `dir`.
    fn spawn(test: &str, scenario: &str, dir: &Path) -> ChildProc {
        let stderr_dir = tempfile::tempdir().expect("tempdir");
        let stderr = stderr_dir.path().join("stderr");
        let err_file = std::fs::File::create(&stderr).expect("stderr file");
        let dir = dir.to_str().expect("UTF-8 temporary path");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{scenario}:{dir}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_file))
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        ChildProc {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr,
            _stderr_dir: stderr_dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The next report of the child, without its mark; `None` at end of output.
    fn next_report(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.expect("child stdout");
            if let Some(at) = line.find(MARK) {
                return Some(line[at + MARK.len()..].to_owned());
            }
        }
        None
    }

    /// Waits for the report `<word> <number>` and returns the number.
    fn expect_report(&mut self, word: &str) -> u64 {
        let Some(line) = self.next_report() else {
            let status = self.child.wait().expect("wait");
            panic!(
                "the child ended ({status}) before reporting {word:?}; its stderr:\n{}",
                self.stderr()
            );
        };
        let (w, n) = line.split_once(' ').expect("report format");
        assert_eq!(w, word, "unexpected report {line:?}");
        n.parse().expect("report number")
    }

    /// Closes the child's stdin: its signal to finish.
    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Closes the child's stdin and waits for it to exit.
    fn finish(&mut self) -> ExitStatus {
        self.close_stdin();
        let status = self.child.wait().expect("wait");
        assert_no_crash_signal(status, &self.stderr());
        status
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill");
        let status = self.child.wait().expect("wait");
        assert_no_crash_signal(status, &self.stderr());
        status
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn assert_no_crash_signal(status: ExitStatus, stderr: &str) {
    assert!(
        !matches!(status.signal(), Some(SIGBUS | SIGSEGV)),
        "the child died of {status}; its stderr:\n{stderr}"
    );
}

#[test]
fn second_open_in_this_process_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), quiet_holder()).expect("open");
    let acked = append_expected(&wal, 30);
    let before = snapshot(dir.path());
    let me = Some(std::process::id());

    assert_locked(
        Wal::open(dir.path(), small()),
        dir.path(),
        me,
        "second writer",
    );
    let read_only = Options {
        read_only: true,
        ..small()
    };
    assert_locked(
        Wal::open(dir.path(), read_only.clone()),
        dir.path(),
        me,
        "read-only open while a writer holds the log",
    );
    let no_create = Options {
        create_if_missing: false,
        ..small()
    };
    assert_locked(
        Wal::open(dir.path(), no_create),
        dir.path(),
        me,
        "third open",
    );
    assert_unchanged(dir.path(), &before, "after the refused opens");

    // The holder is unharmed.
    let acked = append_expected(&wal, 5).max(acked);
    assert_eq!(
        check_log(&wal, acked.0, "holder after refused opens"),
        acked.0
    );

    // A record borrowed from the log keeps it locked after close; dropping it frees it.
    let record = wal.read(Lsn(1)).expect("read");
    wal.close().expect("close");
    assert_locked(
        Wal::open(dir.path(), small()),
        dir.path(),
        None,
        "record still alive",
    );
    assert!(record.payload() == expected(1));
    drop(record);
    drop(wal);

    let (wal, report) = Wal::open(dir.path(), small()).expect("open after close");
    assert!(report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, acked.0, "after close"), acked.0);
    drop(wal);
    // Dropped without close: the lock goes with the handle.
    let (wal, _) = Wal::open(dir.path(), small()).expect("open after drop");
    wal.close().expect("close");
}

#[test]
fn read_only_opens_share_the_lock_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    let acked = append_expected(&wal, 200).0;
    wal.close().expect("close");
    let read_only = Options {
        read_only: true,
        ..small()
    };

    for state in ["after a clean close", "after a crash"] {
        let before = snapshot(dir.path());
        let (a, report_a) = Wal::open(dir.path(), read_only.clone()).expect("read-only 1");
        let (b, report_b) = Wal::open(dir.path(), read_only.clone()).expect("read-only 2");
        assert_eq!(report_a.next_lsn, Lsn(acked + 1), "{state}: {report_a}");
        assert_eq!(report_b.next_lsn, Lsn(acked + 1), "{state}: {report_b}");
        assert_eq!(check_log(&a, acked, state), acked);
        assert_eq!(check_log(&b, acked, state), acked);
        let e = a.append(b"no").expect_err("read-only append");
        assert!(matches!(e, Error::ReadOnly), "{state}: {e:?}");
        assert_locked(
            Wal::open(dir.path(), small()),
            dir.path(),
            None,
            "writer while two readers hold the log",
        );
        a.close().expect("close a");
        assert_locked(
            Wal::open(dir.path(), small()),
            dir.path(),
            None,
            "writer while one reader holds the log",
        );
        drop(b);
        assert_unchanged(dir.path(), &before, state);

        // Leave the log crashed (dropped without close) for the next round.
        let (wal, _) = Wal::open(dir.path(), small()).expect("writer after the readers");
        assert_eq!(check_log(&wal, acked, state), acked);
        drop(wal);
    }
}

#[test]
fn second_process_is_locked_and_changes_nothing() {
    const TEST: &str = "second_process_is_locked_and_changes_nothing";
    if let Some((scenario, dir)) = child_role() {
        assert_eq!(scenario, "hold");
        let (wal, _) = Wal::open(&dir, quiet_holder()).expect("child open");
        report(&format!("ready {}", std::process::id()));
        let acked = append_expected(&wal, 40);
        report(&format!("acked {}", acked.0));
        wait_for_parent();
        wal.close().expect("child close");
        report("closed 0");
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = ChildProc::spawn(TEST, "hold", dir.path());
    let pid = u32::try_from(child.expect_report("ready")).expect("pid");
    assert_eq!(pid, child.child.id());
    let acked = child.expect_report("acked");
    let before = snapshot(dir.path());

    let holder = Some(pid);
    assert_locked(Wal::open(dir.path(), small()), dir.path(), holder, "writer");
    let read_only = Options {
        read_only: true,
        ..small()
    };
    assert_locked(
        Wal::open(dir.path(), read_only),
        dir.path(),
        holder,
        "read-only",
    );
    assert_locked(
        Wal::open(dir.path(), Options::default()),
        dir.path(),
        holder,
        "writer with default options",
    );
    assert_unchanged(dir.path(), &before, "after the refused opens");

    child.close_stdin();
    assert_eq!(child.expect_report("closed"), 0);
    let status = child.finish();
    assert!(
        status.success(),
        "{status}; child stderr:\n{}",
        child.stderr()
    );
    let (wal, report) = Wal::open(dir.path(), small()).expect("open after the child");
    assert!(report.clean_shutdown, "{report}");
    assert_eq!(check_log(&wal, acked, "after the child closed"), acked);
    wal.close().expect("close");
}

#[test]
fn killed_holder_releases_the_lock_and_its_acked_records_survive() {
    const TEST: &str = "killed_holder_releases_the_lock_and_its_acked_records_survive";
    if let Some((scenario, dir)) = child_role() {
        assert_eq!(scenario, "append");
        let (wal, report) = Wal::open(&dir, small()).expect("child open");
        self::report(&format!("ready {}", report.next_lsn.0));
        // Mixed sizes, singles and batches; every fifth operation durable, and only
        // those are reported.
        for op in 0..20_000u64 {
            let next = wal.appended().0 + 1;
            let durability = if op % 5 == 4 {
                Durability::Sync
            } else {
                Durability::None
            };
            let last = if op % 7 == 3 {
                let n = 1 + op % 4;
                let payloads: Vec<Vec<u8>> = (next..next + n).map(expected).collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let first = wal.append_batch_with(&refs, durability).expect("batch");
                assert_eq!(first, Lsn(next));
                next + n - 1
            } else {
                let lsn = wal
                    .append_with(&expected(next), durability)
                    .expect("append");
                assert_eq!(lsn, Lsn(next));
                next
            };
            if durability == Durability::Sync {
                self::report(&format!("acked {last}"));
            }
        }
        wait_for_parent();
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(34);
    let mut last = 0;
    for round in 0..3 {
        let mut child = ChildProc::spawn(TEST, "append", dir.path());
        let next = child.expect_report("ready");
        assert_eq!(next, last + 1, "round {round}: the child continues the log");
        let wanted = 5 + rng.below(40);
        let mut acked = 0;
        for _ in 0..wanted {
            let lsn = child.expect_report("acked");
            assert!(lsn > acked, "round {round}: acks go up");
            acked = lsn;
        }
        assert_locked(
            Wal::open(dir.path(), small()),
            dir.path(),
            Some(child.child.id()),
            "open while the child appends",
        );
        let status = child.kill();
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "round {round}: {status}; child stderr:\n{}",
            child.stderr()
        );

        let when = format!("round {round}, after SIGKILL");
        let (wal, report) = Wal::open(dir.path(), small()).expect("open after the kill");
        assert!(!report.clean_shutdown, "{when}: {report}");
        assert!(
            report.dropped.iter().all(|d| d.torn_tail),
            "{when}: {report}"
        );
        last = check_log(&wal, acked, &when);
        assert_eq!(report.next_lsn, Lsn(last + 1), "{when}: {report}");
        drop(wal);
    }
    let (wal, report) = Wal::open(dir.path(), small()).expect("final open");
    assert_eq!(report.next_lsn, Lsn(last + 1), "{report}");
    wal.close().expect("close");
}
