//! Process crashes with real processes (FAULTS C16, C17, C19): every acknowledged record
//! survives, the log stays a dense prefix of what was appended, recovery is idempotent,
//! and nothing purged, truncated or torn comes back (SPEC I1, I2, I4, I5).
//!
//! Provoked by re-executing this test binary as a child (`MMLOG_TEST_CHILD` names the
//! scenario and the directory, set on the child command only). C16: the child appends
//! records of 0 B to 8 KiB, singles and batches, with a seeded mix of `Durability::Sync`
//! appends and `sync()` calls over 64 KiB segments (some logs also purge, so retired
//! segments are recycled), and prints `acked <lsn>` only after the durable call returned
//! (and `kept <lsn>` after a `Durability::None` append, which must survive a process
//! crash too); the parent kills it with SIGKILL after a seeded number of
//! acknowledgements and a seeded spin, reopens, checks every record against the payload
//! derived from (seed, run, LSN), and reopens again. Hundreds of kills per run, more
//! under `MMLOG_CRASH_ITERATIONS`. C17: a log of many segments with a torn tail is
//! recovered by children killed at random points of their open; the parent's recovery
//! afterwards must equal a recovery of an untouched copy, and records appended after it
//! must survive the next crash. C19: the child rotates segments with the background
//! thread off and a failpoint ending the process (`Exit(77)`) at one step of the
//! rotation; the parent checks the crash left the marks of that step, no hole between
//! segments, every appended record, and that appends go on. The same failpoint crash is
//! tried at every segment step of a writer's recovery (sealing a torn tail, removing a
//! leftover, creating the next segment) and of a truncation, each followed by appends,
//! a crash or a clean close, and a recovery that must return them.

mod common;
use common::Rng;

use std::io::{BufRead, BufReader, Lines, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmlog::testing::{FailAction, Failpoints, Step};
use mmlog::{Durability, Env, Lsn, Options, RecoveryReport, Wal};

/// Names the child's scenario, its parameters and the directory, `:`-separated, the
/// directory last.
const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// More C16 kills for longer runs.
const ITERATIONS_ENV: &str = "MMLOG_CRASH_ITERATIONS";
/// Prefix of the lines children report on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";
/// Exit code of a child ended by a failpoint.
const CRASH_CODE: i32 = 77;
const SEGMENT_BYTES: u64 = 64 * 1024;

// Linux signal numbers (x86 and Arm).
const SIGBUS: i32 = 7;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;

// ----- seeded workload ----------------------------------------------------------------

/// A hash of the key (log seed, run, LSN, purpose).
fn mix(seed: u64, run: u64, lsn: u64, purpose: u64) -> u64 {
    Rng::new(
        seed ^ run.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ lsn.rotate_left(23).wrapping_mul(0x1656_67b1_9e37_79f9)
            ^ purpose.wrapping_mul(0x27d4_eb2f_1656_67c5),
    )
    .next_u64()
}

/// Payload length of `lsn` in `run` of log `seed`: 0 B to 8 KiB, mostly small.
fn len_at(seed: u64, run: u64, lsn: u64) -> usize {
    let h = mix(seed, run, lsn, 1);
    let r = h >> 8;
    (match h % 100 {
        0..25 => r % 9,
        25..65 => 9 + r % 292,
        65..90 => 301 + r % 1700,
        _ => 2001 + r % 6192,
    }) as usize
}

/// The payload of `lsn` written by `run` of log `seed`. Different runs write different
/// bytes for the same LSN, so a record of an earlier run never passes for a later one.
fn payload(seed: u64, run: u64, lsn: u64) -> Vec<u8> {
    let len = len_at(seed, run, lsn);
    let mut rng = Rng::new(mix(seed, run, lsn, 2));
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// How often the child makes its appends durable, in percent of operations, and
/// whether its log runs the background thread.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    /// Operations appended with `Durability::Sync`.
    durable_pct: u64,
    /// Operations followed by `sync()`.
    sync_pct: u64,
    /// Segments prepared (and prefaulted) by the background thread, concurrently with
    /// the appends; otherwise by the appending thread at rollover.
    background: bool,
    /// Every this many operations, purge all but the last 200 records (retired
    /// segments are then recycled with a new epoch); 0 = never.
    purge_every: u64,
}

/// One operation of the child: a single record (`count == 1`) or a batch.
#[derive(Debug, Clone, Copy)]
struct Op {
    count: u64,
    durable: bool,
    sync_after: bool,
}

/// The operation starting at `lsn`. The record count depends on (seed, run, LSN) only,
/// so the parent can find where every operation of a run starts and ends.
fn op_at(seed: u64, run: u64, lsn: u64, cadence: Cadence) -> Op {
    let h = mix(seed, run, lsn, 3);
    Op {
        count: if h % 100 < 20 { 2 + (h >> 8) % 5 } else { 1 },
        durable: (h >> 16) % 100 < cadence.durable_pct,
        sync_after: (h >> 24) % 100 < cadence.sync_pct,
    }
}

/// The expected content of a log written by consecutive runs.
#[derive(Debug)]
struct Model {
    seed: u64,
    /// The first LSN still in the log lies in this range (purges move it up).
    first: (u64, u64),
    /// `(first LSN, run)` of every run, in order.
    runs: Vec<(u64, u64)>,
}

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            seed,
            first: (1, 1),
            runs: Vec::new(),
        }
    }

    /// Run `run` appends from `start` on (a run that left nothing is forgotten).
    fn start_run(&mut self, start: u64, run: u64) {
        if self.runs.last().is_some_and(|(s, _)| *s == start) {
            self.runs.pop();
        }
        self.runs.push((start, run));
    }

    fn run_of(&self, lsn: u64) -> u64 {
        let k = self.runs.partition_point(|(s, _)| *s <= lsn);
        assert!(k > 0, "LSN {lsn} precedes every run");
        self.runs[k - 1].1
    }

    fn expected(&self, lsn: u64) -> Vec<u8> {
        payload(self.seed, self.run_of(lsn), lsn)
    }

    /// I1 and I2: the records are dense from 1, each the payload its run appended, the
    /// log reaches `acked`, and it ends where an operation of the last run ends (no half
    /// batch). Returns the last LSN.
    fn check(&self, records: &[(u64, Vec<u8>)], acked: u64, when: &str) -> u64 {
        let last = self.check_records(records, acked, when);
        self.check_boundary(last, when);
        last
    }

    /// I1 and I2 without the batch boundary (for runs that appended single records).
    fn check_records(&self, records: &[(u64, Vec<u8>)], acked: u64, when: &str) -> u64 {
        let first = records.first().map_or(self.first.0, |(lsn, _)| *lsn);
        assert!(
            (self.first.0..=self.first.1).contains(&first),
            "{when}: the log starts at {first}, expected {:?} (purged records came back, \
             or more was purged than asked)",
            self.first
        );
        for (i, (lsn, p)) in records.iter().enumerate() {
            assert_eq!(
                *lsn,
                first + i as u64,
                "{when}: LSNs must be dense from {first}"
            );
            let want = self.expected(*lsn);
            assert!(
                *p == want,
                "{when}: LSN {lsn} holds {} bytes that are not the {} bytes appended (run {})",
                p.len(),
                want.len(),
                self.run_of(*lsn)
            );
        }
        let last = records.last().map_or(first - 1, |(lsn, _)| *lsn);
        assert!(
            last >= acked,
            "{when}: LSN {acked} was acknowledged, the log ends at {last}"
        );
        last
    }

    /// The log ending at `last` ends where an operation of the last run ends.
    fn check_boundary(&self, last: u64, when: &str) {
        if let Some(&(start, run)) = self.runs.last()
            && last >= start
        {
            let mut at = start;
            while at <= last {
                at += op_at(self.seed, run, at, Cadence::NONE).count;
            }
            assert_eq!(
                at,
                last + 1,
                "{when}: the log ends inside the batch that starts before {last}"
            );
        }
    }
}

impl Cadence {
    /// For computing record counts, which do not depend on the cadence.
    const NONE: Cadence = Cadence {
        durable_pct: 0,
        sync_pct: 0,
        background: false,
        purge_every: 0,
    };

    /// The child's role string for this cadence.
    fn role(self, seed: u64, run: u64, dir: &Path) -> String {
        format!(
            "append:{seed}:{run}:{}:{}:{}:{}:{}",
            self.durable_pct,
            self.sync_pct,
            u8::from(self.background),
            self.purge_every,
            dir.display()
        )
    }
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

/// Options of the parent's opens: no background thread, so an open changes only what
/// recovery needs.
fn parent_opts() -> Options {
    Options {
        segment_size_bytes: SEGMENT_BYTES,
        durability: Durability::None,
        env: Env::default().without_background(),
        ..Options::default()
    }
}

fn read_only_opts() -> Options {
    Options {
        read_only: true,
        ..parent_opts()
    }
}

/// The children's options: tiny segments; the background thread on (it prepares and
/// prefaults segments while the child appends, as in production) or off.
fn child_opts(background: bool) -> Options {
    let env = if background {
        Env::default()
    } else {
        Env::default().without_background()
    };
    Options {
        segment_size_bytes: SEGMENT_BYTES,
        durability: Durability::None,
        env,
        ..Options::default()
    }
}

/// Opens as the parent does, with the check every recovery after a process crash must
/// pass: nothing but a torn tail dropped.
fn open_checked(dir: &Path, opts: Options, when: &str) -> (Wal, RecoveryReport) {
    let (wal, report) =
        Wal::open(dir, opts).unwrap_or_else(|e| panic!("{when}: recovery failed: {e:?} ({e})"));
    assert!(
        report.dropped.iter().all(|d| d.torn_tail),
        "{when}: a process crash can only leave a torn tail: {report}"
    );
    (wal, report)
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

/// The segment files form one run of sequence numbers: no hole.
fn assert_no_hole(dir: &Path, when: &str) {
    let seqs = segment_seqs(dir);
    assert!(!seqs.is_empty(), "{when}: no segment file");
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{when}: hole between segments: {seqs:?}");
    }
}

/// The log's segments continue one another: each starts where the previous one ends.
fn assert_chained(wal: &Wal, when: &str) {
    let segs = wal.segments();
    for w in segs.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "{when}: {segs:?}");
        assert_eq!(
            w[1].first_lsn.0,
            w[0].last_lsn.0 + 1,
            "{when}: segment {} does not continue segment {}",
            w[1].seq,
            w[0].seq
        );
    }
}

// ----- child processes ----------------------------------------------------------------

/// The child role, when this process is one: the `:`-separated fields of `CHILD_ENV`.
fn child_role() -> Option<Vec<String>> {
    let v = std::env::var(CHILD_ENV).ok()?;
    Some(v.split(':').map(str::to_owned).collect())
}

/// The directory of a child role (the last field; rejoined in case it holds a `:`).
fn role_dir(fields: &[String], from: usize) -> PathBuf {
    PathBuf::from(fields[from..].join(":"))
}

fn field(fields: &[String], k: usize) -> u64 {
    fields[k].parse().expect("numeric child parameter")
}

fn say(line: &str) {
    println!("{MARK}{line}");
}

/// Blocks until the parent closes our stdin or kills us.
fn wait_for_parent() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A child running one scenario; killed and reaped on drop, so none outlives its test.
struct ChildProc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl ChildProc {
    /// Re-executes this binary to run `test` with `role` in `CHILD_ENV`; stderr goes to
    /// the file `stderr`.
    fn spawn(test: &str, role: &str, stderr: &Path) -> ChildProc {
        let err = std::fs::File::create(stderr).expect("stderr file");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, role)
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

    /// The next report `<word> <number>`; `None` when the child's stdout ended. A line
    /// cut short by the kill is skipped.
    fn next_report(&mut self) -> Option<(String, u64)> {
        for line in self.lines.by_ref() {
            let Ok(line) = line else { return None };
            if let Some(at) = line.find(MARK)
                && let Some((w, n)) = line[at + MARK.len()..].split_once(' ')
                && let Ok(n) = n.parse()
            {
                return Some((w.to_owned(), n));
            }
        }
        None
    }

    /// Waits for the report `word` and returns its number.
    fn expect_report(&mut self, word: &str) -> u64 {
        match self.next_report() {
            Some((w, n)) if w == word => n,
            other => {
                let status = self.wait();
                panic!(
                    "expected {word:?} from the child, got {other:?}; it ended with {status}; \
                     its stderr:\n{}",
                    self.stderr()
                )
            }
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Reaps the child; it must not have died of a memory fault.
    fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("wait");
        assert!(
            !matches!(status.signal(), Some(SIGBUS | SIGSEGV)),
            "the child died of {status}; its stderr:\n{}",
            self.stderr()
        );
        status
    }

    /// SIGKILL, reap, and check that SIGKILL is what ended it.
    fn kill(&mut self, when: &str) {
        self.child.kill().expect("kill");
        let status = self.wait();
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "{when}: the child ended with {status} before the kill; its stderr:\n{}",
            self.stderr()
        );
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

/// The appending child: `ops` operations of `run` of log `seed` (or until killed),
/// `kept <lsn>` after each `Durability::None` append, `acked <lsn>` after each durable
/// append or `sync()`; then waits for the parent.
fn append_child(dir: &Path, seed: u64, run: u64, cadence: Cadence, ops: u64) {
    let (wal, report) = Wal::open(dir, child_opts(cadence.background)).expect("child open");
    say(&format!("ready {}", report.next_lsn.0));
    for op_no in 1..=ops {
        if cadence.purge_every > 0 && op_no % cadence.purge_every == 0 {
            let keep_from = wal.appended().0.saturating_sub(200);
            if keep_from > wal.first_lsn().0 {
                say(&format!("purge {keep_from}"));
                let first = wal.purge_before(Lsn(keep_from)).expect("purge");
                assert!(first.0 <= keep_from, "purged up to {first}");
            }
        }
        let next = wal.appended().0 + 1;
        let op = op_at(seed, run, next, cadence);
        let durability = if op.durable {
            Durability::Sync
        } else {
            Durability::None
        };
        let last = if op.count == 1 {
            let got = wal
                .append_with(&payload(seed, run, next), durability)
                .expect("append");
            assert_eq!(got, Lsn(next));
            next
        } else {
            let payloads: Vec<Vec<u8>> = (next..next + op.count)
                .map(|lsn| payload(seed, run, lsn))
                .collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let got = wal.append_batch_with(&refs, durability).expect("batch");
            assert_eq!(got, Lsn(next));
            next + op.count - 1
        };
        say(&format!(
            "{} {last}",
            if op.durable { "acked" } else { "kept" }
        ));
        if op.sync_after {
            let durable = wal.sync().expect("sync");
            assert!(durable.0 >= last, "sync returned {durable} after {last}");
            say(&format!("acked {}", durable.0));
        }
    }
    say("done 0");
    wait_for_parent();
}

/// Spins for about `micros` µs (a varying delay before a kill; never used to wait for
/// something to happen).
fn spin(micros: u64) {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// What the parent saw of one appending child.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Highest LSN acknowledged as durable.
    acked: u64,
    /// Highest LSN whose append returned (it survives a process crash).
    kept: u64,
    acks: u64,
    /// Highest LSN a purge was started with.
    purge: u64,
}

impl Seen {
    fn note(&mut self, word: &str, n: u64) {
        match word {
            "acked" => {
                self.acked = self.acked.max(n);
                self.kept = self.kept.max(n);
                self.acks += 1;
            }
            "kept" => self.kept = self.kept.max(n),
            "purge" => self.purge = self.purge.max(n),
            _ => {}
        }
    }
}

/// Runs one appending child (`role`), which must continue the log at `expect_next`, and
/// kills it after `acks` acknowledgements and a spin of `spin_micros`; returns what it
/// reported, including lines written before the kill that the parent had not read yet.
fn run_and_kill(
    test: &str,
    role: &str,
    stderr: &Path,
    expect_next: u64,
    (acks, spin_micros): (u64, u64),
    when: &str,
) -> Seen {
    let mut child = ChildProc::spawn(test, role, stderr);
    let next = child.expect_report("ready");
    assert_eq!(
        next, expect_next,
        "{when}: the child's recovery disagrees with the parent's (I4)"
    );
    let mut seen = Seen::default();
    while seen.acks < acks {
        match child.next_report() {
            Some((w, n)) => {
                if w == "done" {
                    break;
                }
                seen.note(&w, n);
            }
            None => {
                let status = child.wait();
                panic!(
                    "{when}: the child ended ({status}) after {} acks; its stderr:\n{}",
                    seen.acks,
                    child.stderr()
                );
            }
        }
    }
    spin(spin_micros);
    child.kill(when);
    while let Some((w, n)) = child.next_report() {
        seen.note(&w, n);
    }
    seen
}

fn append_role(fields: &[String]) {
    let seed = field(fields, 1);
    let run = field(fields, 2);
    let cadence = Cadence {
        durable_pct: field(fields, 3),
        sync_pct: field(fields, 4),
        background: field(fields, 5) == 1,
        purge_every: field(fields, 6),
    };
    append_child(&role_dir(fields, 7), seed, run, cadence, 1_000_000);
}

// ----- C16: kill -9 during appends -----------------------------------------------------

#[test]
fn kill_nine_during_appends_keeps_every_acknowledged_record() {
    const TEST: &str = "kill_nine_during_appends_keeps_every_acknowledged_record";
    if let Some(fields) = child_role() {
        assert_eq!(fields[0], "append");
        append_role(&fields);
        return;
    }
    let iterations: u64 = match std::env::var(ITERATIONS_ENV) {
        Ok(v) => v.parse().expect("MMLOG_CRASH_ITERATIONS is a number"),
        Err(_) => 200,
    };
    const KILLS_PER_LOG: u64 = 10;
    let cadences = [
        Cadence {
            durable_pct: 15,
            sync_pct: 8,
            background: true,
            purge_every: 0,
        },
        Cadence {
            durable_pct: 3,
            sync_pct: 3,
            background: true,
            purge_every: 40,
        },
        Cadence {
            durable_pct: 40,
            sync_pct: 0,
            background: false,
            purge_every: 25,
        },
        Cadence {
            durable_pct: 0,
            sync_pct: 20,
            background: false,
            purge_every: 0,
        },
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let stderr = tmp.path().join("child-stderr");
    let mut rng = Rng::new(0xC16);
    let (mut kills, mut records, mut closes) = (0u64, 0u64, 0u64);
    let (mut purged, mut recycled) = (0u64, 0u64);
    let mut log_no = 0u64;
    while kills < iterations {
        let seed = rng.next_u64();
        let cadence = cadences[(log_no % cadences.len() as u64) as usize];
        let dir = tmp.path().join(format!("log{log_no}"));
        let mut model = Model::new(seed);
        let mut last = 0;
        for run in 0..KILLS_PER_LOG.min(iterations - kills) {
            let acks = 1 + rng.below(5);
            let spin_micros = rng.below(1500);
            let when = format!(
                "log {log_no} (seed {seed:#x}, {cadence:?}), run {run}: killed after {acks} \
                 acks and {spin_micros} µs"
            );
            model.start_run(last + 1, run);
            let seen = run_and_kill(
                TEST,
                &cadence.role(seed, run, &dir),
                &stderr,
                last + 1,
                (acks, spin_micros),
                &when,
            );
            kills += 1;

            // Recovery: every acknowledged record, every kept one, nothing else. Mostly
            // read-only (the next child's open is then the writer's recovery, checked
            // against this one through its `ready` line and by the next check of every
            // record); one time in four the parent recovers as a writer and then closes
            // cleanly or crashes its handle too.
            let writer = rng.below(4) == 0;
            let opts = if writer {
                parent_opts()
            } else {
                read_only_opts()
            };
            let (wal, report) = open_checked(&dir, opts, &when);
            assert!(!report.clean_shutdown, "{when}: {report}");
            let got = read_all(&wal);
            model.first.1 = model.first.1.max(seen.purge);
            let now = model.check(&got, seen.kept, &when);
            // Purged records never come back (I5).
            model.first.0 = got.first().map_or(model.first.0, |(lsn, _)| *lsn);
            assert!(now >= last, "{when}: the log shrank from {last} to {now}");
            assert_eq!(report.next_lsn, Lsn(now + 1), "{when}: {report}");
            assert_chained(&wal, &when);
            recycled += wal.segments().iter().filter(|s| s.recycled).count() as u64;
            let close = writer && rng.below(2) == 0;
            if close {
                wal.close().expect("close");
                closes += 1;
            } else {
                drop(wal);
            }
            // Recover again (I4).
            let (again, report) = open_checked(&dir, read_only_opts(), &when);
            assert_eq!(report.clean_shutdown, close, "{when}: {report}");
            if writer {
                assert!(report.is_intact(), "{when}: second recovery: {report}");
            }
            assert!(
                read_all(&again) == got,
                "{when}: the second recovery returned other records (I4)"
            );
            drop(again);
            assert_no_hole(&dir, &when);
            records += now - last;
            last = now;
        }
        purged += model.first.0 - 1;
        std::fs::remove_dir_all(&dir).expect("remove the log");
        log_no += 1;
    }
    eprintln!(
        "C16: {kills} kills over {log_no} logs, {records} records recovered and checked, \
         {purged} purged, {recycled} recycled segments seen, {closes} clean closes between kills"
    );
}

// ----- C17: kill -9 during recovery ----------------------------------------------------

/// Offsets of the last frame of a segment file and just past it (4096 when it has
/// none), walking the frames of the segment's current `epoch` by their length fields.
fn end_of_frames(bytes: &[u8], epoch: u32) -> (usize, usize) {
    let mut last = 4096;
    let mut pos = 4096;
    while pos + 32 <= bytes.len() {
        let header = &bytes[pos..pos + 32];
        let frame_epoch = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes"));
        if header.iter().all(|b| *b == 0) || frame_epoch != epoch {
            break;
        }
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let next = pos + (32 + len).next_multiple_of(8);
        if next > bytes.len() {
            break;
        }
        last = pos;
        pos = next;
    }
    (last, pos)
}

/// Leaves a torn frame after the last frame of the log in the closed directory `dir`:
/// the header and part of the body of a record that was never completed, in the epoch
/// of the segment, so recovery must trim it (FAULTS B14). When the last segment has no
/// room after its last frame, that frame is damaged instead and its LSN returned.
///
/// The damage goes into the newest segment the writer activated (a base LSN or a frame),
/// even when it holds no record yet: bytes after the last frame of an earlier segment
/// are not part of the log once the next segment's base says where the chain goes on.
fn tear_tail(dir: &Path) -> Option<u64> {
    let seqs = segment_seqs(dir);
    for seq in seqs.iter().rev() {
        let path = dir.join(format!("{seq:020}.seg"));
        let bytes = std::fs::read(&path).expect("read segment");
        let header = mmlog::testing::read_segment_header(&bytes[..4096]).expect("header");
        let (last_frame, end) = end_of_frames(&bytes, header.epoch);
        if end == 4096 && header.base_lsn == 0 {
            continue; // a prepared segment the writer never reached
        }
        let frame = mmlog::testing::raw_frame(1, 0, u64::MAX / 2, 0, header.epoch, &[0xa5; 200]);
        let room = bytes.len() - end;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        if room >= 64 {
            // Header and 32 bytes of body: the checksum fails.
            f.write_all_at(&frame[..64], end as u64).expect("write");
            return None;
        }
        // No room after the last frame: tear the last frame itself (its checksum field).
        f.write_all_at(&[0x5a, 0x5a, 0x5a, 0x5a], last_frame as u64)
            .expect("write");
        let lsn = &bytes[last_frame + 8..last_frame + 16];
        return Some(u64::from_le_bytes(lsn.try_into().expect("8 bytes")));
    }
    panic!("no segment with records in {}", dir.display());
}

/// Copies the closed log in `from` to the new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create_dir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn kill_nine_during_recovery_gives_the_same_log() {
    const TEST: &str = "kill_nine_during_recovery_gives_the_same_log";
    if let Some(fields) = child_role() {
        match fields[0].as_str() {
            "append" => append_role(&fields),
            "recover" => {
                let dir = role_dir(&fields, 1);
                say("opening 0");
                let (wal, report) = Wal::open(&dir, child_opts(true)).expect("child recovery");
                say(&format!("opened {}", report.next_lsn.0));
                wait_for_parent();
                drop(wal);
            }
            other => panic!("unknown scenario {other}"),
        }
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let stderr = tmp.path().join("child-stderr");
    let mut rng = Rng::new(0xC17);
    let (mut kills, mut mid_open) = (0, 0);
    for round in 0..2u64 {
        let seed = rng.next_u64();
        let dir = tmp.path().join(format!("log{round}"));
        let when = format!("round {round} (seed {seed:#x})");

        // A log of many segments written by a child that was killed, with a torn tail.
        let bulk = Cadence {
            durable_pct: 1,
            sync_pct: 1,
            background: true,
            purge_every: 0,
        };
        let mut child = ChildProc::spawn(TEST, &bulk.role(seed, 0, &dir), &stderr);
        assert_eq!(child.expect_report("ready"), 1, "{when}");
        let mut seen = Seen::default();
        while seen.acked < 1600 {
            let Some((w, n)) = child.next_report() else {
                panic!("{when}: the writer ended early: {}", child.stderr());
            };
            seen.note(&w, n);
        }
        child.kill(&when);
        while let Some((w, n)) = child.next_report() {
            seen.note(&w, n);
        }
        drop(child);
        // A record torn by the damage (when the last segment had no room after its last
        // frame) is no longer expected.
        let kept = match tear_tail(&dir) {
            Some(torn) => seen.kept.min(torn - 1),
            None => seen.kept,
        };
        let segments = segment_seqs(&dir).len();
        assert!(segments >= 20, "{when}: only {segments} segments");

        // The reference: an untouched copy, recovered once.
        let reference = tmp.path().join(format!("reference{round}"));
        copy_dir(&dir, &reference);
        let mut model = Model::new(seed);
        model.start_run(1, 0);
        let (wal, report) = open_checked(&reference, parent_opts(), &when);
        assert!(
            !report.dropped.is_empty(),
            "{when}: the torn tail was not trimmed: {report}"
        );
        let expected = read_all(&wal);
        let last = model.check(&expected, kept, &format!("{when}, reference"));
        drop(wal);

        // Recoveries killed at random points.
        for k in 0..6 {
            let when = format!("{when}, killed recovery {k}");
            let mut child = ChildProc::spawn(TEST, &format!("recover:{}", dir.display()), &stderr);
            assert_eq!(child.expect_report("opening"), 0, "{when}");
            spin(rng.below(12_000));
            child.kill(&when);
            kills += 1;
            let mut opened = false;
            while let Some((w, n)) = child.next_report() {
                if w == "opened" {
                    assert_eq!(n, last + 1, "{when}: the killed child's recovery");
                    opened = true;
                }
            }
            if !opened {
                mid_open += 1;
            }
        }

        // Same log as without the kills, and again on a second recovery.
        let when = format!("{when}, after the killed recoveries");
        let (wal, report) = open_checked(&dir, parent_opts(), &when);
        assert_eq!(report.next_lsn, Lsn(last + 1), "{when}: {report}");
        assert!(
            read_all(&wal) == expected,
            "{when}: the records differ from a recovery without kills"
        );
        assert_chained(&wal, &when);
        drop(wal);
        let (wal, _) = open_checked(&dir, read_only_opts(), &when);
        assert!(read_all(&wal) == expected, "{when}: second recovery (I4)");
        drop(wal);
        assert_no_hole(&dir, &when);

        // Recover, append, crash, recover (I5): the log goes on where it ended and keeps
        // what is appended after the killed recoveries.
        let (wal, _) = open_checked(&dir, parent_opts(), &when);
        let active = wal.segments().last().cloned().expect("a segment");
        let when = format!(
            "{when} (appending to segment {}, sealed: {})",
            active.seq, active.sealed
        );
        let more = 100;
        for lsn in last + 1..=last + more {
            let got = wal.append(&payload(seed, 1, lsn)).expect("append");
            assert_eq!(got, Lsn(lsn), "{when}: append");
        }
        wal.sync().expect("sync");
        drop(wal);
        model.start_run(last + 1, 1);
        let (wal, _) = open_checked(&dir, read_only_opts(), &when);
        let got = read_all(&wal);
        let when = format!("{when}, then {more} appends and a crash");
        assert_eq!(model.check_records(&got, last + more, &when), last + more);
        drop(wal);
    }
    eprintln!("C17: {kills} recoveries killed, {mid_open} of them before the open returned");
}

// ----- C19: a crash at each step of a segment rotation ---------------------------------

/// The steps of a rotation, in order, with the file marks a crash at each leaves:
/// `(step, hit within the rotation, temporary file left, new segment in place)`.
const ROTATION: &[(Step, u64, bool, bool)] = &[
    (Step::SegmentCreate, 0, false, false),
    (Step::SegmentAllocate, 0, false, false),
    (Step::SegmentHeaderWrite, 0, true, false),
    (Step::SegmentSync, 0, true, false),
    (Step::SegmentRename, 0, true, false),
    (Step::DirSync, 0, false, true),
    (Step::SegmentMap, 0, false, true),
    // The second header write of a rotation: the base LSN of the new active segment.
    (Step::SegmentHeaderWrite, 1, false, true),
];

fn step_name(step: Step) -> String {
    format!("{step:?}")
}

/// Every segment step a writer's open, a rotation or a truncation goes through.
const SEGMENT_STEPS: &[Step] = &[
    Step::SegmentRead,
    Step::Flush,
    Step::SegmentSeal,
    Step::SegmentRemove,
    Step::DirSync,
    Step::SegmentCreate,
    Step::SegmentAllocate,
    Step::SegmentHeaderWrite,
    Step::SegmentSync,
    Step::SegmentRename,
    Step::SegmentMap,
];

fn step_by_name(name: &str) -> Step {
    SEGMENT_STEPS
        .iter()
        .copied()
        .find(|s| step_name(*s) == name)
        .expect("a segment step")
}

/// Options of the rotating child: no background thread, so every rotation step runs
/// on the appending thread and the hit counts are deterministic.
fn rotation_opts(fp: &Arc<Failpoints>) -> Options {
    Options {
        segment_size_bytes: SEGMENT_BYTES,
        durability: Durability::None,
        prefault: false,
        env: Env::default()
            .without_background()
            .failpoints(Arc::clone(fp)),
        ..Options::default()
    }
}

/// Hits of each rotation step per rotation, measured on a log in `dir`; they must be
/// the same for two rotations in a row.
fn hits_per_rotation(dir: &Path) -> Vec<u64> {
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir, rotation_opts(&fp)).expect("open");
    let hits =
        |fp: &Failpoints| -> Vec<u64> { ROTATION.iter().map(|(s, ..)| fp.hits(*s)).collect() };
    let mut marks = vec![hits(&fp)];
    let mut lsn = 0;
    for segments in [2, 3] {
        while wal.segments().len() < segments {
            lsn += 1;
            wal.append(&payload(1, 0, lsn)).expect("append");
        }
        marks.push(hits(&fp));
    }
    drop(wal);
    let first: Vec<u64> = marks[1].iter().zip(&marks[0]).map(|(b, a)| b - a).collect();
    let second: Vec<u64> = marks[2].iter().zip(&marks[1]).map(|(b, a)| b - a).collect();
    assert_eq!(first, second, "hits differ between two rotations");
    for ((step, nth, ..), per) in ROTATION.iter().zip(&first) {
        assert!(
            nth < per,
            "{step:?} is hit {per} times per rotation; the test expects hit {nth}"
        );
    }
    first
}

#[test]
fn crash_at_each_rotation_step_leaves_no_hole() {
    const TEST: &str = "crash_at_each_rotation_step_leaves_no_hole";
    const SEED: u64 = 0xC19;
    if let Some(fields) = child_role() {
        assert_eq!(fields[0], "rotate");
        let step = step_by_name(&fields[1]);
        let skip = field(&fields, 2);
        let dir = role_dir(&fields, 3);
        let fp = Arc::new(Failpoints::new());
        let (wal, _) = Wal::open(&dir, rotation_opts(&fp)).expect("child open");
        fp.arm(step, skip, FailAction::Exit(CRASH_CODE));
        let cadence = Cadence {
            durable_pct: 8,
            sync_pct: 4,
            background: false,
            purge_every: 0,
        };
        for _ in 0..2_000 {
            let next = wal.appended().0 + 1;
            let op = op_at(SEED, 0, next, cadence);
            let d = if op.durable {
                Durability::Sync
            } else {
                Durability::None
            };
            let payloads: Vec<Vec<u8>> = (next..next + op.count)
                .map(|lsn| payload(SEED, 0, lsn))
                .collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let last = if op.count == 1 {
                wal.append_with(refs[0], d).expect("append").0
            } else {
                wal.append_batch_with(&refs, d).expect("batch").0 + op.count - 1
            };
            say(&format!(
                "{} {last}",
                if op.durable { "acked" } else { "kept" }
            ));
            if op.sync_after {
                say(&format!("acked {}", wal.sync().expect("sync").0));
            }
        }
        eprintln!("the failpoint {step:?} (skip {skip}) never fired");
        std::process::exit(3);
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let per = hits_per_rotation(&tmp.path().join("calibration"));
    let stderr = tmp.path().join("child-stderr");
    let mut model = Model::new(SEED);
    model.start_run(1, 0);
    for (k, &(step, nth, tmp_left, renamed)) in ROTATION.iter().enumerate() {
        for rotation in [0u64, 1] {
            let skip = rotation * per[k] + nth;
            let when = format!("crash at {step:?} (hit {nth}) of rotation {rotation}");
            let dir = tmp.path().join(format!("step{k}-rotation{rotation}"));
            let role = format!("rotate:{}:{skip}:{}", step_name(step), dir.display());
            let mut child = ChildProc::spawn(TEST, &role, &stderr);
            let mut seen = Seen::default();
            while let Some((w, n)) = child.next_report() {
                seen.note(&w, n);
            }
            let status = child.wait();
            assert_eq!(
                status.code(),
                Some(CRASH_CODE),
                "{when}: the child ended with {status}; its stderr:\n{}",
                child.stderr()
            );

            // The marks of the step on disk: the new segment is `rotation + 2`.
            let seq = rotation + 2;
            let tmp_path = dir.join(format!("{seq:020}.seg.tmp"));
            let new_path = dir.join(format!("{seq:020}.seg"));
            assert_eq!(tmp_path.exists(), tmp_left, "{when}: temporary file");
            assert_eq!(new_path.exists(), renamed, "{when}: new segment");
            assert_eq!(
                segment_seqs(&dir).last(),
                Some(&(seq - u64::from(!renamed))),
                "{when}: newest segment"
            );
            assert_no_hole(&dir, &when);

            // Recovery: no hole, every record appended before the crash.
            let (wal, report) = open_checked(&dir, parent_opts(), &when);
            let got = read_all(&wal);
            let last = model.check(&got, seen.kept, &when);
            assert!(seen.acked > 0, "{when}: nothing was acknowledged");
            assert_eq!(
                last, seen.kept,
                "{when}: the log must end with the last append that returned"
            );
            if tmp_left {
                assert!(
                    report.removed_files.contains(&tmp_path),
                    "{when}: the leftover was not removed: {report}"
                );
            }
            assert_chained(&wal, &when);
            assert!(!tmp_path.exists(), "{when}: temporary file after recovery");
            drop(wal);
            assert_no_hole(&dir, &when);

            // Appends go on across further rotations.
            let opts = child_opts(true);
            let (wal, _) = Wal::open(&dir, opts.clone()).expect("open to append");
            let more = 150u64;
            for lsn in last + 1..=last + more {
                let durability = if lsn % 25 == 0 {
                    Durability::Sync
                } else {
                    Durability::None
                };
                let got = wal
                    .append_with(&payload(SEED, 1, lsn), durability)
                    .expect("append");
                assert_eq!(got, Lsn(lsn), "{when}: append after recovery");
            }
            wal.close().expect("close");
            let (wal, report) = Wal::open(&dir, opts).expect("reopen");
            assert!(report.clean_shutdown, "{when}: {report}");
            let mut after = Model::new(SEED);
            after.start_run(1, 0);
            after.start_run(last + 1, 1);
            let got = read_all(&wal);
            assert_eq!(after.check_records(&got, last + more, &when), last + more);
            assert_chained(&wal, &when);
            wal.close().expect("close");
            assert_no_hole(&dir, &when);
        }
    }
}

// ----- C17/C19: a crash at each step of a writer's recovery or of a truncation ---------

const RECORDS: u64 = 300;
const TRUNCATE_AFTER: u64 = 200;

/// A log of `RECORDS` records (64 KiB segments), left crashed with a torn frame after
/// its last record and a leftover temporary segment, or closed cleanly.
fn build_log(dir: &Path, seed: u64, crashed: bool) {
    let (wal, _) = Wal::open(dir, parent_opts()).expect("open");
    for lsn in 1..=RECORDS {
        let got = wal.append(&payload(seed, 0, lsn)).expect("append");
        assert_eq!(got, Lsn(lsn));
    }
    wal.sync().expect("sync");
    if !crashed {
        wal.close().expect("close");
        return;
    }
    drop(wal);
    assert_eq!(
        tear_tail(dir),
        None,
        "the last segment has room for a torn frame"
    );
    let next = segment_seqs(dir).last().expect("segments") + 1;
    std::fs::write(dir.join(format!("{next:020}.seg.tmp")), [0u8; 4096]).expect("tmp");
}

/// Hits of every segment step while `run` works on a copy of `base` with failpoints
/// that never fire: the crash points to try, as `(step, skip)`.
fn crash_points(
    base: &Path,
    scratch: &Path,
    run: impl FnOnce(&Path, &Arc<Failpoints>),
) -> Vec<(Step, u64)> {
    copy_dir(base, scratch);
    let fp = Arc::new(Failpoints::new());
    run(scratch, &fp);
    SEGMENT_STEPS
        .iter()
        .flat_map(|&step| (0..fp.hits(step)).map(move |k| (step, k)))
        .collect()
}

/// Runs the child `scenario` on a copy of `base` for each crash point; it must end at
/// the point with `Exit(77)`. Then the parent recovers (the records must be
/// 1..=`end_after(step, skip)`), appends 60 records and syncs, crashes or closes, and
/// recovers again: every record appended after the crash must be there (I1, I5).
fn crash_then_append(
    test: &str,
    scenario: &str,
    tmp: &Path,
    base: &Path,
    seed: u64,
    points: &[(Step, u64)],
    end_after: impl Fn(Step, u64) -> u64,
) {
    let stderr = tmp.join("child-stderr");
    let mut failures = Vec::new();
    for (k, &(step, skip)) in points.iter().enumerate() {
        let when = format!("{scenario}: crash at {step:?} hit {skip}");
        let dir = tmp.join(format!("{scenario}{k}"));
        copy_dir(base, &dir);
        let role = format!("{scenario}:{}:{skip}:{}", step_name(step), dir.display());
        let mut child = ChildProc::spawn(test, &role, &stderr);
        while child.next_report().is_some() {}
        let status = child.wait();
        assert_eq!(
            status.code(),
            Some(CRASH_CODE),
            "{when}: the child ended with {status}; its stderr:\n{}",
            child.stderr()
        );

        let mut model = Model::new(seed);
        model.start_run(1, 0);
        let (wal, report) = open_checked(&dir, parent_opts(), &when);
        let got = read_all(&wal);
        let last = model.check_records(&got, 0, &when);
        assert_eq!(last, end_after(step, skip), "{when}: {report}");
        for lsn in last + 1..=last + 60 {
            let got = wal.append(&payload(seed, 1, lsn)).expect("append");
            assert_eq!(got, Lsn(lsn), "{when}: append after recovery");
        }
        wal.sync().expect("sync");
        let close = k % 2 == 0;
        if close {
            wal.close().expect("close");
        } else {
            drop(wal);
        }
        model.start_run(last + 1, 1);
        let how = if close { "a clean close" } else { "a crash" };
        match Wal::open(&dir, read_only_opts()) {
            Ok((wal, report)) => {
                let got = read_all(&wal);
                let end = got.last().map_or(0, |(lsn, _)| *lsn);
                let intact = got.len() as u64 == end
                    && got
                        .iter()
                        .enumerate()
                        .all(|(i, (lsn, p))| *lsn == i as u64 + 1 && *p == model.expected(*lsn));
                if !intact || end != last + 60 {
                    failures.push(format!(
                        "{when}: after 60 acknowledged appends ({}..={}) and {how}, \
                         recovery returns {} records ending at {end} (intact: {intact}); \
                         dropped: {:?}",
                        last + 1,
                        last + 60,
                        got.len(),
                        report.dropped
                    ));
                }
            }
            Err(e) => failures.push(format!(
                "{when}: after 60 acknowledged appends and {how}, recovery fails: {e}"
            )),
        }
        assert_no_hole(&dir, &when);
    }
    assert!(
        failures.is_empty(),
        "{} of {} crash points lose acknowledged records:\n{}",
        failures.len(),
        points.len(),
        failures.join("\n")
    );
}

/// The child of the two tests below: `<scenario>:<step>:<skip>:<dir>`.
fn crash_step_child(fields: &[String]) {
    let step = step_by_name(&fields[1]);
    let skip = field(fields, 2);
    let dir = role_dir(fields, 3);
    let fp = Arc::new(Failpoints::new());
    match fields[0].as_str() {
        "recovery" => {
            fp.arm(step, skip, FailAction::Exit(CRASH_CODE));
            let opened = Wal::open(&dir, rotation_opts(&fp));
            eprintln!("the open was not interrupted: {:?}", opened.map(|(w, _)| w));
        }
        "truncation" => {
            let (wal, _) = Wal::open(&dir, rotation_opts(&fp)).expect("open");
            fp.arm(step, skip, FailAction::Exit(CRASH_CODE));
            let r = wal.truncate_after(Lsn(TRUNCATE_AFTER));
            eprintln!("the truncation was not interrupted: {r:?}");
        }
        other => panic!("unknown scenario {other}"),
    }
    std::process::exit(3);
}

#[test]
fn crash_at_each_step_of_a_writers_recovery_keeps_later_appends() {
    const TEST: &str = "crash_at_each_step_of_a_writers_recovery_keeps_later_appends";
    const SEED: u64 = 0xC175;
    if let Some(fields) = child_role() {
        crash_step_child(&fields);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    build_log(&base, SEED, true);
    // The writer's open of this log reads and maps every segment, flushes them, seals
    // the last one at the torn frame, removes the leftover, and creates a new segment.
    let points = crash_points(&base, &tmp.path().join("calibration"), |dir, fp| {
        let (wal, report) = Wal::open(dir, rotation_opts(fp)).expect("open");
        assert!(!report.dropped.is_empty(), "no torn tail: {report}");
        drop(wal);
    });
    for step in [Step::SegmentSeal, Step::SegmentRemove, Step::SegmentCreate] {
        assert!(
            points.iter().any(|(s, _)| *s == step),
            "the open never reaches {step:?}: {points:?}"
        );
    }
    crash_then_append(
        TEST,
        "recovery",
        tmp.path(),
        &base,
        SEED,
        &points,
        |_, _| RECORDS,
    );
}

#[test]
fn crash_at_each_step_of_a_truncation_keeps_later_appends() {
    const TEST: &str = "crash_at_each_step_of_a_truncation_keeps_later_appends";
    const SEED: u64 = 0x7C;
    if let Some(fields) = child_role() {
        crash_step_child(&fields);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    build_log(&base, SEED, false);
    // Only the truncation's own steps: the failpoints are armed after the open.
    let calibration = tmp.path().join("calibration");
    let points = crash_points(&base, &calibration, |dir, fp| {
        let (wal, _) = Wal::open(dir, rotation_opts(fp)).expect("open");
        drop(wal);
    });
    let opened: Vec<(Step, u64)> = points;
    let points = crash_points(&base, &tmp.path().join("calibration2"), |dir, fp| {
        let (wal, _) = Wal::open(dir, rotation_opts(fp)).expect("open");
        wal.truncate_after(Lsn(TRUNCATE_AFTER)).expect("truncate");
        drop(wal);
    });
    let points: Vec<(Step, u64)> = SEGMENT_STEPS
        .iter()
        .flat_map(|&step| {
            let before = opened.iter().filter(|(s, _)| *s == step).count() as u64;
            let after = points.iter().filter(|(s, _)| *s == step).count() as u64;
            (0..after.saturating_sub(before)).map(move |k| (step, k))
        })
        .collect();
    assert!(
        points.iter().any(|(s, _)| *s == Step::SegmentSeal),
        "the truncation never seals: {points:?}"
    );
    // The truncation is done once the seal is written (the first step, at whose first
    // hit the header is not written yet): then no record past the cut survives.
    crash_then_append(
        TEST,
        "truncation",
        tmp.path(),
        &base,
        SEED,
        &points,
        |step, skip| {
            if (step, skip) == (Step::SegmentSeal, 0) {
                RECORDS
            } else {
                TRUNCATE_AFTER
            }
        },
    );
}
