//! A crash at each step of a checkpoint gives the same state as no crash (FAULTS C18,
//! with D26 for failed steps). Provoked with real child processes: each crash test
//! re-executes this binary as a child (`MMLOG_TEST_CHILD=<scenario>:<dir>` set on the
//! child command only). The child runs a deterministic command sequence on a `Store`
//! over 64 KiB segments, reporting `acked <lsn>` on stdout after each durable command,
//! with two checkpoints, and closes it; it then reopens the store with failpoints,
//! arms one step with `FailAction::Exit(77)` and checkpoints, so the process ends at
//! that step as in a crash: before the temporary file is created, once it is created,
//! with the snapshot half written (the state machine exits from `write_snapshot`),
//! before its sync, before its rename, before the directory sync after the rename,
//! before and after an old checkpoint is removed, and before, between and after the
//! removal of log segments. In the reopened child no segment can be created (a
//! failpoint refuses it), so the background thread never syncs the directory and the
//! directory-sync failpoint counts the checkpoint's own syncs only. The parent checks
//! the child exited with 77 (not a signal), that the disk shows the crash happened at
//! that step, reopens and compares the state with the acknowledged commands applied to
//! a model, recovers once from every surviving checkpoint (on copies, newer ones
//! deleted) to show the log each one needs is there, and checkpoints and reopens again.
//! The same steps also fail in-process with `Errno(5)`, followed by a drop without
//! `close()`; and a child looping over commands and frequent checkpoints is killed with
//! SIGKILL after a number of acknowledged commands.
mod common;
use common::chain::Data;
use common::*;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Lines, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;

use mmlog::testing::{FailAction, Failpoints, Step};
use mmlog::{Durability, Env, Error, Lsn, Options, StateMachine, Store, StoreOptions};

/// Payload tag of the commands.
const TAG: u64 = 0xC18;
/// Names the child's scenario and directory, as `<scenario>:<dir>`.
const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// Prefix of the lines the child reports on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";
/// Exit code of a child ended by a failpoint (or by its state machine).
const CRASH_CODE: i32 = 77;

// Linux signal numbers (x86 and Arm).
const SIGBUS: i32 = 7;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;

/// The command sequence: checkpoint A after `CKPT_A` commands, B after `CKPT_B`, then
/// a tail up to `LAST`. Commands are 100..900 bytes, about 110 to a segment, so the
/// log between A and B spans several segments that the third checkpoint retires.
const CKPT_A: u64 = 250;
const CKPT_B: u64 = 600;
const LAST: u64 = 650;

// ----- the state machine --------------------------------------------------------------

/// The test state machine: [`Data`], the LSNs this process applied, and a switch that
/// makes `write_snapshot` end the process half way.
#[derive(Debug, Default)]
struct Tracked {
    data: Data,
    /// Every LSN `apply` saw since the state was created or restored (not snapshotted).
    seen: Vec<u64>,
    /// When set, `write_snapshot` fills half the buffer and exits with `CRASH_CODE`.
    crash_half_way: Cell<bool>,
}

impl StateMachine for Tracked {
    fn initial() -> Self {
        Tracked::default()
    }
    fn apply(&mut self, lsn: Lsn, command: &[u8]) {
        self.seen.push(lsn.0);
        self.data.apply(lsn.0, command);
    }
    fn snapshot_len(&self) -> usize {
        self.data.encode().len()
    }
    fn write_snapshot(&self, out: &mut [u8]) {
        let bytes = self.data.encode();
        if self.crash_half_way.get() {
            let half = bytes.len() / 2;
            out[..half].copy_from_slice(&bytes[..half]);
            std::process::exit(CRASH_CODE);
        }
        out.copy_from_slice(&bytes);
    }
    fn restore(snapshot: &[u8]) -> Result<Self, String> {
        Ok(Tracked {
            data: Data::decode(snapshot)?,
            ..Tracked::default()
        })
    }
}

/// The command executed at `lsn`.
fn command(lsn: u64) -> Vec<u8> {
    payload(
        TAG,
        lsn,
        100 + (lsn.wrapping_mul(2_654_435_761) % 800) as usize,
    )
}

/// The state after commands 1..=n.
fn model(n: u64) -> Data {
    let mut d = Data::default();
    for lsn in 1..=n {
        d.apply(lsn, &command(lsn));
    }
    d
}

/// No automatic checkpoints; `env` for the log.
fn store_opts(env: Env) -> StoreOptions {
    StoreOptions {
        wal: Options { env, ..small() },
        checkpoint_every_records: None,
        checkpoint_every_bytes: None,
        checkpoint_every: None,
        max_log_bytes: None,
    }
}

fn plain() -> StoreOptions {
    store_opts(Env::default())
}

/// Failpoints under which no segment file can be created: the background thread
/// cannot prepare one, so nothing but the code under test touches the directory.
fn quiet() -> Arc<Failpoints> {
    let fp = Arc::new(Failpoints::new());
    fp.arm(Step::SegmentCreate, 0, FailAction::Errno(5));
    fp
}

fn open(dir: &Path, opts: StoreOptions) -> (Store<Tracked>, mmlog::RecoveryReport) {
    Store::<Tracked>::open(dir, opts).expect("open store")
}

/// Runs commands until the log ends at `last`; every 25th (and the last) is durable,
/// and `on_durable` hears of it once it returned.
fn run_to(store: &mut Store<Tracked>, last: u64, on_durable: &mut dyn FnMut(u64)) {
    while store.wal().appended().0 < last {
        let lsn = store.wal().appended().0 + 1;
        let durable = lsn.is_multiple_of(25) || lsn == last;
        let durability = if durable {
            Durability::Sync
        } else {
            Durability::None
        };
        let got = store
            .execute_with(&command(lsn), durability)
            .expect("execute");
        assert_eq!(got, Lsn(lsn));
        if durable {
            on_durable(lsn);
        }
    }
}

/// Phase one, in the child or in-process: commands 1..=LAST with checkpoints at A and
/// B, closed.
fn build(dir: &Path, on_durable: &mut dyn FnMut(u64)) {
    let (mut store, _) = open(dir, plain());
    run_to(&mut store, CKPT_A, on_durable);
    assert_eq!(store.checkpoint().expect("checkpoint A"), Lsn(CKPT_A));
    run_to(&mut store, CKPT_B, on_durable);
    assert_eq!(store.checkpoint().expect("checkpoint B"), Lsn(CKPT_B));
    run_to(&mut store, LAST, on_durable);
    assert!(store.wal().first_lsn().0 > 1, "checkpoint A must purge");
    store.close().expect("close");
}

// ----- files ------------------------------------------------------------------------

fn ckpt_path(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("checkpoint-{lsn:020}.ckpt"))
}

fn tmp_path(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("checkpoint-{lsn:020}.ckpt.tmp"))
}

fn checkpoint_lsns(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            let digits = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
            digits.parse().ok()
        })
        .collect();
    v.sort();
    v
}

/// Copies the closed log in `from` to the new directory `to`, leaving out the
/// checkpoints newer than `keep_upto`.
fn copy_log(from: &Path, to: &Path, keep_upto: u64) {
    std::fs::create_dir_all(to).expect("create_dir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let newer = name
            .strip_prefix("checkpoint-")
            .and_then(|n| n.strip_suffix(".ckpt"))
            .and_then(|d| d.parse::<u64>().ok())
            .is_some_and(|lsn| lsn > keep_upto);
        if !newer {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

// ----- the checks after a crash ---------------------------------------------------------

/// The store recovered exactly the commands 1..=`last`, replaying exactly the ones
/// after its checkpoint.
fn assert_recovered(store: &Store<Tracked>, last: u64, when: &str) {
    assert!(
        store.state().data == model(last),
        "{when}: the state is not that of commands 1..={last}: {:?}",
        store.state().data
    );
    let from = store.wal().checkpoint().map_or(0, |c| c.lsn().0);
    let replayed: Vec<u64> = (from + 1..=last).collect();
    assert!(
        store.state().seen == replayed,
        "{when}: replayed {:?}, expected {}..={last} after checkpoint {from}",
        store.state().seen,
        from + 1
    );
}

/// Recovery from each checkpoint in `dir` on its own (a copy without the newer ones)
/// gives the state of commands 1..=`last`: the log each one needs is there.
fn assert_every_checkpoint_recovers(dir: &Path, scratch: &Path, last: u64, when: &str) {
    let ckpts = checkpoint_lsns(dir);
    assert!(!ckpts.is_empty(), "{when}: no checkpoint survived");
    for lsn in ckpts {
        let copy = scratch.join(format!("from-{lsn}"));
        copy_log(dir, &copy, lsn);
        let (store, report) = open(&copy, plain());
        let when = format!("{when}, recovering from checkpoint {lsn} alone");
        assert_eq!(
            report.checkpoint.as_ref().map(|c| c.0),
            Some(Lsn(lsn)),
            "{when}: {report:?}"
        );
        assert_recovered(&store, last, &when);
        store.close().expect("close");
    }
}

/// Reopens the crashed store in `dir` and checks everything a crash at a checkpoint
/// step must leave true.
fn assert_same_state_as_no_crash(dir: &Path, scratch: &Path, tmp_left: bool, when: &str) {
    let ckpts = checkpoint_lsns(dir);
    let newest = *ckpts.last().expect("a checkpoint");
    let (store, report) = open(dir, plain());
    assert!(
        !report.clean_shutdown,
        "{when}: a crash is not a clean close"
    );
    assert_eq!(
        report.checkpoint,
        Some((Lsn(newest), ckpt_path(dir, newest))),
        "{when}: recovery must start from the newest checkpoint"
    );
    assert!(report.rejected_checkpoints.is_empty(), "{when}: {report:?}");
    if tmp_left {
        assert!(
            report.removed_files.contains(&tmp_path(dir, LAST)),
            "{when}: the leftover temporary checkpoint was not removed: {report:?}"
        );
    }
    assert!(!tmp_path(dir, LAST).exists(), "{when}: temporary file left");
    assert_recovered(&store, LAST, when);
    drop(store);

    assert_every_checkpoint_recovers(dir, scratch, LAST, when);

    // Life goes on: more commands, a checkpoint, a clean close, a reopen.
    let (mut store, _) = open(dir, plain());
    run_to(&mut store, LAST + 20, &mut |_| {});
    assert_eq!(store.checkpoint().expect("checkpoint"), Lsn(LAST + 20));
    store.close().expect("close");
    let (store, report) = open(dir, plain());
    assert!(report.clean_shutdown, "{when}");
    assert_eq!(report.checkpoint.map(|c| c.0), Some(Lsn(LAST + 20)));
    assert_recovered(
        &store,
        LAST + 20,
        &format!("{when}, after a new checkpoint"),
    );
    assert!(store.state().seen.is_empty());
    store.close().expect("close");
    assert_eq!(
        checkpoint_lsns(dir).len(),
        2,
        "{when}: retention after the new checkpoint"
    );
}

// ----- child processes ----------------------------------------------------------------

/// The child role, when this process is one: `(scenario, dir)`.
fn child_role() -> Option<(String, PathBuf)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (scenario, dir) = v.split_once(':').expect("<scenario>:<dir>");
    Some((scenario.to_owned(), PathBuf::from(dir)))
}

fn report(line: &str) {
    println!("{MARK}{line}");
}

/// A child running one scenario; killed and reaped on drop, so none outlives its test.
struct ChildProc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl ChildProc {
    /// Re-executes this binary to run `test` as the child of `scenario` on `dir`; its
    /// stderr goes to the file `stderr`.
    fn spawn(test: &str, scenario: &str, dir: &Path, stderr: &Path) -> ChildProc {
        let err = std::fs::File::create(stderr).expect("stderr file");
        let dir = dir.to_str().expect("UTF-8 temporary path");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{scenario}:{dir}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("stdout");
        ChildProc {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr: stderr.to_path_buf(),
        }
    }

    /// The next report `<word> <number>`; `None` when the child ended.
    fn next_report(&mut self) -> Option<(String, u64)> {
        for line in self.lines.by_ref() {
            let line = line.expect("child stdout");
            if let Some(at) = line.find(MARK) {
                let rest = &line[at + MARK.len()..];
                let (w, n) = rest.split_once(' ').expect("report format");
                return Some((w.to_owned(), n.parse().expect("report number")));
            }
        }
        None
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("wait");
        let signal = status.signal();
        assert!(
            signal != Some(SIGBUS) && signal != Some(SIGSEGV),
            "the child died of {status}; its stderr:\n{}",
            self.stderr()
        );
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

// ----- crash at a step --------------------------------------------------------------------

/// Where the child ends.
#[derive(Debug, Clone, Copy)]
enum At {
    /// At the `skip`-th hit (0-based) of a failpoint during the checkpoint.
    Step(Step, u64),
    /// In `write_snapshot`, half the snapshot written into the mapping.
    HalfWritten,
}

/// A crash scenario and the marks it must leave on disk.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    at: At,
    /// Checkpoint files right after the crash.
    checkpoints: &'static [u64],
    /// The temporary file of the new checkpoint is left behind.
    tmp_left: bool,
    /// Segment files retired by the crashed checkpoint: at least, at most.
    segments_retired: (usize, usize),
}

const BEFORE_RETENTION: (usize, usize) = (0, 0);

/// The child: phase one, then the checkpoint that ends the process.
fn crash_child(dir: &Path, at: At) {
    build(dir, &mut |lsn| report(&format!("acked {lsn}")));
    let fp = quiet();
    let (mut store, _) = open(dir, store_opts(Env::with_failpoints(fp.clone())));
    report(&format!("segments {}", segments(dir).len()));
    match at {
        At::Step(step, skip) => fp.arm(step, skip, FailAction::Exit(CRASH_CODE)),
        At::HalfWritten => store.state().crash_half_way.set(true),
    }
    let r = store.checkpoint();
    eprintln!("the checkpoint was not interrupted: {r:?}");
    std::process::exit(3);
}

/// The parent: runs the child, checks where it stopped, and checks recovery.
fn crash_at(test: &str, s: Scenario) {
    if let Some((scenario, dir)) = child_role() {
        assert_eq!(scenario, "checkpoint-step");
        crash_child(&dir, s.at);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let mut child = ChildProc::spawn(
        test,
        "checkpoint-step",
        &dir,
        &tmp.path().join("child-stderr"),
    );
    let mut acked = 0;
    let mut segments_before = None;
    while let Some((word, n)) = child.next_report() {
        match word.as_str() {
            "acked" => {
                assert!(n > acked, "acknowledged LSNs must increase");
                acked = n;
            }
            "segments" => segments_before = Some(n as usize),
            other => panic!("unexpected report {other}"),
        }
    }
    let status = child.wait();
    assert_eq!(
        status.code(),
        Some(CRASH_CODE),
        "{:?}: the child ended with {status}; its stderr:\n{}",
        s.at,
        child.stderr()
    );
    assert_eq!(acked, LAST, "every command was acknowledged");
    let segments_before = segments_before.expect("the child reported its segments");
    let when = format!("crash at {:?}", s.at);

    // Where it stopped.
    assert_eq!(
        checkpoint_lsns(&dir),
        s.checkpoints,
        "{when}: checkpoint files"
    );
    assert_eq!(
        tmp_path(&dir, LAST).exists(),
        s.tmp_left,
        "{when}: temporary file"
    );
    let retired = segments_before - segments(&dir).len();
    assert!(
        (s.segments_retired.0..=s.segments_retired.1).contains(&retired),
        "{when}: {retired} segments retired, expected {:?}",
        s.segments_retired
    );

    assert_same_state_as_no_crash(&dir, &tmp.path().join("copies"), s.tmp_left, &when);
}

#[test]
fn crash_before_the_temporary_checkpoint_is_created() {
    crash_at(
        "crash_before_the_temporary_checkpoint_is_created",
        Scenario {
            at: At::Step(Step::CheckpointCreate, 0),
            checkpoints: &[CKPT_A, CKPT_B],
            tmp_left: false,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_once_the_temporary_checkpoint_is_created() {
    crash_at(
        "crash_once_the_temporary_checkpoint_is_created",
        Scenario {
            at: At::Step(Step::CheckpointMap, 0),
            checkpoints: &[CKPT_A, CKPT_B],
            tmp_left: true,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_with_the_snapshot_half_written() {
    crash_at(
        "crash_with_the_snapshot_half_written",
        Scenario {
            at: At::HalfWritten,
            checkpoints: &[CKPT_A, CKPT_B],
            tmp_left: true,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_before_the_checkpoint_sync() {
    crash_at(
        "crash_before_the_checkpoint_sync",
        Scenario {
            at: At::Step(Step::CheckpointSync, 0),
            checkpoints: &[CKPT_A, CKPT_B],
            tmp_left: true,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_after_the_sync_before_the_rename() {
    crash_at(
        "crash_after_the_sync_before_the_rename",
        Scenario {
            at: At::Step(Step::CheckpointRename, 0),
            checkpoints: &[CKPT_A, CKPT_B],
            tmp_left: true,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_after_the_rename_before_the_directory_sync() {
    crash_at(
        "crash_after_the_rename_before_the_directory_sync",
        Scenario {
            at: At::Step(Step::DirSync, 0),
            checkpoints: &[CKPT_A, CKPT_B, LAST],
            tmp_left: false,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_before_an_old_checkpoint_is_removed() {
    crash_at(
        "crash_before_an_old_checkpoint_is_removed",
        Scenario {
            at: At::Step(Step::CheckpointRemove, 0),
            checkpoints: &[CKPT_A, CKPT_B, LAST],
            tmp_left: false,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_after_an_old_checkpoint_is_removed_before_the_directory_sync() {
    crash_at(
        "crash_after_an_old_checkpoint_is_removed_before_the_directory_sync",
        Scenario {
            at: At::Step(Step::DirSync, 1),
            checkpoints: &[CKPT_B, LAST],
            tmp_left: false,
            segments_retired: BEFORE_RETENTION,
        },
    );
}

#[test]
fn crash_before_retiring_segments() {
    crash_at(
        "crash_before_retiring_segments",
        Scenario {
            at: At::Step(Step::SegmentRemove, 0),
            checkpoints: &[CKPT_B, LAST],
            tmp_left: false,
            segments_retired: (0, 0),
        },
    );
}

#[test]
fn crash_between_two_segment_retirements() {
    crash_at(
        "crash_between_two_segment_retirements",
        Scenario {
            at: At::Step(Step::SegmentRemove, 1),
            checkpoints: &[CKPT_B, LAST],
            tmp_left: false,
            segments_retired: (1, 1),
        },
    );
}

#[test]
fn crash_after_retiring_segments_before_the_directory_sync() {
    crash_at(
        "crash_after_retiring_segments_before_the_directory_sync",
        Scenario {
            at: At::Step(Step::DirSync, 2),
            checkpoints: &[CKPT_B, LAST],
            tmp_left: false,
            segments_retired: (2, 10),
        },
    );
}

// ----- failed steps, in this process ------------------------------------------------------

/// Makes each `(step, skip)` of `cases` fail once with `EIO` during a checkpoint of a
/// copy of the phase-one log, checks the checkpoint files left (`files`: a failed write
/// removes its temporary file; a failure after the rename leaves the new checkpoint),
/// then drops the store without `close()` and checks recovery as after a crash.
fn fail_then_drop(cases: &[(Step, u64, &[u64])]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    build(&base, &mut |_| {});
    for (k, (step, skip, files)) in cases.iter().copied().enumerate() {
        let when = format!("{step:?} (hit {skip}) failing");
        let dir = tmp.path().join(format!("case{k}"));
        copy_log(&base, &dir, u64::MAX);
        let fp = quiet();
        let (mut store, _) = open(&dir, store_opts(Env::with_failpoints(fp.clone())));
        let first_lsn = store.wal().first_lsn();
        fp.arm_once(step, skip, FailAction::Errno(5));
        match store.checkpoint() {
            Ok(lsn) => panic!("{when}: the checkpoint at {lsn} succeeded"),
            Err(e) => {
                let Error::Io { source, .. } = &e else {
                    panic!("{when}: expected the injected I/O error, got {e:?}");
                };
                assert_eq!(source.raw_os_error(), Some(5), "{when}: {e:?}");
            }
        }
        assert_eq!(checkpoint_lsns(&dir), files, "{when}: checkpoint files");
        assert!(
            !tmp_path(&dir, LAST).exists(),
            "{when}: temporary file left"
        );
        if files.contains(&CKPT_A) {
            assert_eq!(
                store.wal().first_lsn(),
                first_lsn,
                "{when}: log retired while its checkpoint stays"
            );
        }
        assert!(store.state().data == model(LAST), "{when}: live state");
        drop(store);
        let copies = tmp.path().join(format!("copies{k}"));
        assert_same_state_as_no_crash(&dir, &copies, false, &when);
    }
}

#[test]
fn a_failed_checkpoint_write_then_a_drop_keeps_the_state() {
    fail_then_drop(&[
        (Step::CheckpointCreate, 0, &[CKPT_A, CKPT_B]),
        (Step::CheckpointMap, 0, &[CKPT_A, CKPT_B]),
        (Step::CheckpointSync, 0, &[CKPT_A, CKPT_B]),
        (Step::CheckpointRename, 0, &[CKPT_A, CKPT_B]),
    ]);
}

#[test]
fn a_failed_directory_sync_or_checkpoint_removal_then_a_drop_keeps_the_state() {
    fail_then_drop(&[
        (Step::DirSync, 0, &[CKPT_A, CKPT_B, LAST]),
        (Step::CheckpointRemove, 0, &[CKPT_A, CKPT_B, LAST]),
        (Step::DirSync, 1, &[CKPT_B, LAST]),
    ]);
}

#[test]
fn a_failed_segment_retirement_then_a_drop_keeps_the_state() {
    fail_then_drop(&[
        (Step::SegmentRemove, 0, &[CKPT_B, LAST]),
        (Step::SegmentRemove, 1, &[CKPT_B, LAST]),
        (Step::DirSync, 2, &[CKPT_B, LAST]),
    ]);
}

#[test]
fn after_a_failed_rename_or_directory_sync_the_next_checkpoint_works() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    build(&base, &mut |_| {});
    for (k, step) in [Step::CheckpointRename, Step::DirSync]
        .into_iter()
        .enumerate()
    {
        let when = format!("{step:?} failing");
        let dir = tmp.path().join(format!("case{k}"));
        copy_log(&base, &dir, u64::MAX);
        let fp = quiet();
        let (mut store, _) = open(&dir, store_opts(Env::with_failpoints(fp.clone())));
        let first_lsn = store.wal().first_lsn();
        fp.arm_once(step, 0, FailAction::Errno(5));
        let e = store.checkpoint().expect_err("the checkpoint must fail");
        assert!(matches!(&e, Error::Io { .. }), "{when}: {e:?}");
        // The old checkpoints stay authoritative and no log was retired.
        assert_eq!(store.wal().first_lsn(), first_lsn, "{when}");
        assert!(ckpt_path(&dir, CKPT_A).exists(), "{when}");
        // The same handle checkpoints again, and retention runs then.
        assert_eq!(store.checkpoint().expect("second checkpoint"), Lsn(LAST));
        assert_eq!(checkpoint_lsns(&dir), vec![CKPT_B, LAST], "{when}");
        assert!(store.wal().first_lsn() > first_lsn, "{when}: retention");
        drop(store);
        let (store, report) = open(&dir, plain());
        assert_eq!(report.checkpoint.map(|c| c.0), Some(Lsn(LAST)), "{when}");
        assert_recovered(&store, LAST, &when);
        store.close().expect("close");
    }
}

// ----- kill -9 while executing and checkpointing -----------------------------------------

/// The looping child: commands for ever over tiny segments with a checkpoint every 20
/// of them, `acked <lsn>` after each durable one; then waits to be killed.
fn loop_child(dir: &Path) {
    let opts = StoreOptions {
        checkpoint_every_records: Some(20),
        ..plain()
    };
    let (mut store, _) = open(dir, opts);
    let mut lsn = 0;
    while lsn < 100_000 {
        lsn += 1;
        let durable = lsn % 10 == 0;
        let durability = if durable {
            Durability::Sync
        } else {
            Durability::None
        };
        assert_eq!(
            store
                .execute_with(&command(lsn), durability)
                .expect("execute"),
            Lsn(lsn)
        );
        if durable {
            report(&format!("acked {lsn}"));
        }
    }
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).expect("stdin");
}

#[test]
fn kill_during_commands_and_frequent_checkpoints() {
    const TEST: &str = "kill_during_commands_and_frequent_checkpoints";
    if let Some((scenario, dir)) = child_role() {
        assert_eq!(scenario, "loop");
        loop_child(&dir);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for (k, kill_after) in [1u64, 15, 45].into_iter().enumerate() {
        let dir = tmp.path().join(format!("run{k}"));
        let mut child =
            ChildProc::spawn(TEST, "loop", &dir, &tmp.path().join(format!("stderr{k}")));
        let mut acked = 0;
        for _ in 0..kill_after {
            let Some((word, n)) = child.next_report() else {
                let status = child.wait();
                panic!("the child ended ({status}): {}", child.stderr());
            };
            assert_eq!(word, "acked");
            acked = n;
        }
        child.child.kill().expect("kill");
        let status = child.wait();
        assert_eq!(status.signal(), Some(SIGKILL), "run {k}: {status}");
        let when = format!("run {k}, killed after LSN {acked} was acknowledged");

        let (store, report) = open(&dir, plain());
        assert!(!report.clean_shutdown, "{when}");
        let applied = store.state().data.applied;
        assert!(
            applied >= acked,
            "{when}: {applied} commands recovered, {acked} acknowledged"
        );
        assert_recovered(&store, applied, &when);
        drop(store);
        if acked >= 40 {
            assert!(
                !checkpoint_lsns(&dir).is_empty(),
                "{when}: no checkpoint was written"
            );
        }
        if !checkpoint_lsns(&dir).is_empty() {
            assert_every_checkpoint_recovers(
                &dir,
                &tmp.path().join(format!("copies{k}")),
                applied,
                &when,
            );
        }
        let (mut store, _) = open(&dir, plain());
        let next = applied + 1;
        assert_eq!(store.execute(&command(next)).expect("execute"), Lsn(next));
        assert_eq!(store.checkpoint().expect("checkpoint"), Lsn(next));
        store.close().expect("close");
        let (store, _) = open(&dir, plain());
        assert_recovered(&store, next, &format!("{when}, then a checkpoint"));
        store.close().expect("close");
    }
}
