//! `Store<S>` (SPEC §2.6, FAULTS E29 at the store level): a checkpoint plus the log
//! after it rebuild the state exactly, checkpoint policies fire, disk use stays bounded
//! over many checkpoints, the clean-shutdown flag comes from `close()`, and a batch is
//! all or nothing. The state machine of this file keeps a hash chain over every
//! (LSN, command) it applies and, outside its snapshot, the list of LSNs this process
//! applied, so a record replayed twice, skipped, or replayed although a checkpoint
//! covers it is seen directly. Provoked by dropping stores without `close()` (a crash as
//! far as the disk is concerned), by running thousands of commands over 64 KiB segments
//! with frequent checkpoints and restarts, by killing a child process (this binary
//! re-executed with `MMLOG_TEST_CHILD=<scenario>:<dir>` on the child command only) in
//! the middle of a stream of batches, and by damaging or deleting every checkpoint of a
//! purged log.
mod common;
use common::chain::Data;
use common::*;

use std::io::{BufRead, BufReader, Lines, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use mmlog::{CorruptionKind, Error, Lsn, StateMachine, Store, StoreOptions};

/// Payload tag of the commands.
const TAG: u64 = 0x5707E;
/// Names the child's scenario and directory, as `<scenario>:<dir>`.
const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// Prefix of the lines the child reports on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";

/// The test state machine: [`Data`] plus the LSNs applied by this process.
#[derive(Debug, Default)]
struct Tracked {
    data: Data,
    /// Every LSN `apply` saw since the state was created or restored (not snapshotted).
    seen: Vec<u64>,
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
        out.copy_from_slice(&self.data.encode());
    }
    fn restore(snapshot: &[u8]) -> Result<Self, String> {
        Ok(Tracked {
            data: Data::decode(snapshot)?,
            seen: Vec::new(),
        })
    }
}

/// The command every store of this file executes at `lsn` (20..270 bytes).
fn command(lsn: u64) -> Vec<u8> {
    payload(
        TAG,
        lsn,
        20 + (lsn.wrapping_mul(2_654_435_761) % 250) as usize,
    )
}

/// The state after the commands 1..=n.
fn model(n: u64) -> Data {
    let mut d = Data::default();
    for lsn in 1..=n {
        d.apply(lsn, &command(lsn));
    }
    d
}

/// Store options with no automatic checkpoint at all.
fn manual() -> StoreOptions {
    StoreOptions {
        wal: small(),
        checkpoint_every_records: None,
        checkpoint_every_bytes: None,
        checkpoint_every: None,
        max_log_bytes: None,
    }
}

fn open(dir: &Path, opts: &StoreOptions) -> (Store<Tracked>, mmlog::RecoveryReport) {
    Store::<Tracked>::open(dir, opts.clone()).expect("open store")
}

/// Executes commands (singly, and every 9th step as a batch of 3) until the log ends
/// at `last`, checking the LSNs handed out.
fn execute_to(store: &mut Store<Tracked>, last: u64) {
    let mut step = 0u64;
    while store.wal().appended().0 < last {
        let next = store.wal().appended().0 + 1;
        step += 1;
        if step.is_multiple_of(9) && next + 2 <= last {
            let cmds: Vec<Vec<u8>> = (next..next + 3).map(command).collect();
            let refs: Vec<&[u8]> = cmds.iter().map(Vec::as_slice).collect();
            assert_eq!(store.execute_batch(&refs).expect("batch"), Lsn(next));
        } else {
            assert_eq!(store.execute(&command(next)).expect("execute"), Lsn(next));
        }
    }
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

/// Files of `dir` whose name ends with `suffix`.
fn count_files(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(suffix)
        })
        .count()
}

/// The store recovered exactly the commands 1..=`last`, replaying exactly the ones
/// after its checkpoint.
fn assert_recovered(store: &Store<Tracked>, last: u64, when: &str) {
    assert!(
        store.state().data == model(last),
        "{when}: state differs from commands 1..={last}: {:?}",
        store.state().data
    );
    let from = store.wal().checkpoint().map_or(0, |c| c.lsn().0);
    let replayed: Vec<u64> = (from + 1..=last).collect();
    assert!(
        store.state().seen == replayed,
        "{when}: replayed {:?}, expected LSNs {}..={last} after checkpoint {from}",
        store.state().seen,
        from + 1
    );
}

#[test]
fn a_checkpoint_plus_the_tail_replays_each_record_exactly_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let opts = manual();
    let (mut store, report) = open(dir, &opts);
    assert!(report.created);
    assert!(store.state().seen.is_empty());
    execute_to(&mut store, 120);
    assert_eq!(store.checkpoint().expect("checkpoint"), Lsn(120));
    execute_to(&mut store, 200);
    assert!(store.state().data == model(200));
    assert_eq!(store.state().seen, (1..=200).collect::<Vec<_>>());
    drop(store);

    let (store, report) = open(dir, &opts);
    assert!(!report.clean_shutdown, "dropped, not closed");
    assert_eq!(report.checkpoint.as_ref().map(|c| c.0), Some(Lsn(120)));
    assert_recovered(&store, 200, "after a crash");
    assert_eq!(store.state().seen.first(), Some(&121));
    store.close().expect("close");

    // A clean close does not checkpoint: the same tail is replayed, once.
    let (mut store, report) = open(dir, &opts);
    assert!(report.clean_shutdown);
    assert_recovered(&store, 200, "after a clean close");
    // A checkpoint of everything: nothing left to replay.
    assert_eq!(store.checkpoint().expect("checkpoint"), Lsn(200));
    drop(store);
    let (mut store, _) = open(dir, &opts);
    assert_recovered(&store, 200, "after a checkpoint of everything");
    assert!(store.state().seen.is_empty());
    execute_to(&mut store, 230);
    drop(store);
    let (store, _) = open(dir, &opts);
    assert_recovered(&store, 230, "tail after the last checkpoint");
    store.close().expect("close");

    // Without any checkpoint the whole log is replayed.
    let plain = dir.join("plain");
    let (mut store, _) = open(&plain, &opts);
    execute_to(&mut store, 50);
    drop(store);
    let (store, report) = open(&plain, &opts);
    assert_eq!(report.checkpoint, None);
    assert_recovered(&store, 50, "no checkpoint");
    store.close().expect("close");
}

#[test]
fn checkpoint_policies_trigger_checkpoints() {
    let d = StoreOptions::default();
    assert_eq!(d.checkpoint_every_records, None);
    assert_eq!(d.checkpoint_every_bytes, Some(64 << 20));
    assert_eq!(d.checkpoint_every, None);
    assert_eq!(d.max_log_bytes, Some(1 << 30));

    let tmp = tempfile::tempdir().expect("tempdir");
    let latest = |s: &Store<Tracked>| s.wal().checkpoint().map(|c| c.lsn().0);

    // No policy: never.
    let dir = tmp.path().join("none");
    let (mut store, _) = open(&dir, &manual());
    execute_to(&mut store, 300);
    assert_eq!(latest(&store), None);
    assert!(checkpoint_lsns(&dir).is_empty());
    store.close().expect("close");

    // Every 10 records (a batch counts its records).
    let dir = tmp.path().join("records");
    let opts = StoreOptions {
        checkpoint_every_records: Some(10),
        ..manual()
    };
    let (mut store, _) = open(&dir, &opts);
    for lsn in 1..=9 {
        store.execute(&command(lsn)).expect("execute");
    }
    assert_eq!(latest(&store), None, "after 9 records");
    store.execute(&command(10)).expect("execute");
    assert_eq!(latest(&store), Some(10), "after 10 records");
    for lsn in 11..=18 {
        store.execute(&command(lsn)).expect("execute");
    }
    let batch: Vec<Vec<u8>> = (19..=22).map(command).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    store.execute_batch(&refs).expect("batch");
    assert_eq!(latest(&store), Some(22), "a batch crossing the limit");
    assert_eq!(checkpoint_lsns(&dir), vec![10, 22]);
    store.close().expect("close");
    let (store, report) = open(&dir, &opts);
    assert_eq!(report.checkpoint.map(|c| c.0), Some(Lsn(22)));
    assert_recovered(&store, 22, "records policy");
    store.close().expect("close");

    // Every 1000 bytes of commands, with 100-byte commands.
    let dir = tmp.path().join("bytes");
    let opts = StoreOptions {
        checkpoint_every_bytes: Some(1000),
        ..manual()
    };
    let (mut store, _) = open(&dir, &opts);
    for lsn in 1..=9u64 {
        store.execute(&[lsn as u8; 100]).expect("execute");
    }
    assert_eq!(latest(&store), None, "after 900 bytes");
    store.execute(&[10; 100]).expect("execute");
    assert_eq!(latest(&store), Some(10), "after 1000 bytes");
    for lsn in 11..=35u64 {
        store.execute(&[lsn as u8; 100]).expect("execute");
    }
    assert_eq!(latest(&store), Some(30));
    store.close().expect("close");

    // A time limit of zero: due at every command (no waiting needed).
    let dir = tmp.path().join("time");
    let opts = StoreOptions {
        checkpoint_every: Some(Duration::ZERO),
        ..manual()
    };
    let (mut store, _) = open(&dir, &opts);
    for lsn in 1..=3 {
        store.execute(&command(lsn)).expect("execute");
        assert_eq!(latest(&store), Some(lsn), "time policy");
    }
    store.close().expect("close");

    // The log's size on disk: a checkpoint lets retention remove segments, so the log
    // stays within a small multiple of the limit.
    let dir = tmp.path().join("log-bytes");
    let segment = small().segment_size_bytes;
    let limit = 3 * segment;
    let opts = StoreOptions {
        max_log_bytes: Some(limit),
        ..manual()
    };
    let (mut store, _) = open(&dir, &opts);
    let mut checkpoints = 0;
    let mut last_seen = None;
    for lsn in 1..=600u64 {
        store.execute(&[lsn as u8; 2000]).expect("execute");
        if latest(&store) != last_seen {
            last_seen = latest(&store);
            checkpoints += 1;
        }
        assert!(
            store.wal().segment_bytes() <= 2 * limit + 2 * segment,
            "after {lsn} commands the log takes {} bytes (limit {limit})",
            store.wal().segment_bytes()
        );
    }
    // 1.2 MB of commands through a 192 KiB limit: at least one checkpoint per limit's
    // worth, and not one per command.
    assert!(
        (4..=200).contains(&checkpoints),
        "{checkpoints} checkpoints for 600 commands"
    );
    store.close().expect("close");
}

#[test]
fn many_checkpoints_over_tiny_segments_keep_disk_bounded_and_recovery_exact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let opts = StoreOptions {
        checkpoint_every_records: Some(150),
        ..manual()
    };
    let sessions = 4u64;
    let per_session = 1000u64;
    let mut last = 0;
    let mut clean = false;
    let mut max_segments = 0;
    for s in 0..sessions {
        let (mut store, report) = open(dir, &opts);
        let when = format!("session {s}");
        assert_eq!(report.clean_shutdown, clean, "{when}: clean-shutdown flag");
        assert_recovered(&store, last, &when);
        assert_eq!(store.wal().appended(), Lsn(last));
        // LSNs go on where the last session ended, and only go up.
        let first = store.execute(&command(last + 1)).expect("execute");
        assert_eq!(first, Lsn(last + 1), "{when}: first LSN");
        let target = last + per_session;
        while store.wal().appended().0 < target {
            let next = (store.wal().appended().0 + 100).min(target);
            execute_to(&mut store, next);
            let segs = count_files(dir, ".seg");
            let free = count_files(dir, ".free");
            max_segments = max_segments.max(segs);
            // The log reaches back two checkpoint intervals (~55 kB) plus the current
            // one: at most three 64 KiB segments, the one being prepared, and the two
            // spare files kept for recycling.
            assert!(segs <= 5, "{when}: {segs} segment files");
            assert!(free <= 2, "{when}: {free} spare segment files");
            assert!(
                checkpoint_lsns(dir).len() <= 2,
                "{when}: checkpoints {:?}",
                checkpoint_lsns(dir)
            );
            assert_eq!(count_files(dir, ".ckpt.tmp"), 0, "{when}");
        }
        assert!(store.state().data == model(target), "{when}: live state");
        last = target;
        clean = s % 2 == 1;
        if clean {
            store.close().expect("close");
        } else {
            drop(store);
        }
    }
    assert!(max_segments >= 2, "the test never filled a segment");
    let (store, report) = open(dir, &opts);
    assert_eq!(report.clean_shutdown, clean);
    assert!(report.first_lsn.0 > 1, "the log was never purged");
    assert!(report.checkpoint.is_some());
    assert_recovered(&store, last, "final");
    store.close().expect("close");
}

#[test]
fn the_clean_shutdown_flag_comes_from_close_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let opts = manual();
    let reopen = |expected: bool, when: &str| {
        let (store, report) = open(dir, &opts);
        assert_eq!(report.clean_shutdown, expected, "{when}");
        store
    };

    let (store, report) = open(dir, &opts);
    assert!(report.created);
    drop(store);
    let mut store = reopen(false, "a new store dropped without close");
    store.execute(&command(1)).expect("execute");
    store.close().expect("close");
    let store = reopen(true, "after close");
    drop(store);
    let store = reopen(false, "open then drop, no command in between");
    store.close().expect("close");
    let store = reopen(true, "open then close, no command in between");
    store.close().expect("close");
    let mut store = reopen(true, "closed twice in a row");
    store.execute(&command(2)).expect("execute");
    store.checkpoint().expect("checkpoint");
    store.execute(&command(3)).expect("execute");
    drop(store);
    let store = reopen(false, "dropped after a checkpoint");
    assert_recovered(&store, 3, "state");
    store.close().expect("close");
    // A tail to replay does not make a close look unclean.
    let store = reopen(true, "closed with records after the checkpoint");
    assert_eq!(store.state().seen, vec![3]);
    store.close().expect("close");
}

#[test]
fn no_usable_checkpoint_and_a_purged_log_fails_to_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    let opts = StoreOptions {
        checkpoint_every_records: Some(100),
        ..manual()
    };
    let (mut store, _) = open(&base, &opts);
    execute_to(&mut store, 900);
    assert!(
        store.wal().first_lsn().0 > 1,
        "the log must have been purged"
    );
    store.close().expect("close");
    let ckpts = checkpoint_lsns(&base);
    assert_eq!(ckpts.len(), 2, "{ckpts:?}");

    let copy = |name: &str| {
        let to = tmp.path().join(name);
        std::fs::create_dir(&to).expect("mkdir");
        for e in std::fs::read_dir(&base).expect("read_dir") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
        to
    };
    let ckpt = |dir: &Path, lsn: u64| -> PathBuf { dir.join(format!("checkpoint-{lsn:020}.ckpt")) };
    let assert_refused = |dir: &Path, what: &str| match Store::<Tracked>::open(dir, opts.clone()) {
        Ok((store, _)) => panic!(
            "{what}: opened with state {:?} although no checkpoint is usable",
            store.state().data
        ),
        Err(e) => {
            let Error::Corrupt { kind, .. } = &e else {
                panic!("{what}: expected Corrupt(NoUsableCheckpoint), got {e:?}");
            };
            assert_eq!(*kind, CorruptionKind::NoUsableCheckpoint, "{what}: {e:?}");
        }
    };

    let damaged = copy("damaged");
    for lsn in &ckpts {
        write_bytes(&ckpt(&damaged, *lsn), 0, &[0xff; 16]);
    }
    assert_refused(&damaged, "every checkpoint damaged");

    let deleted = copy("deleted");
    for lsn in &ckpts {
        std::fs::remove_file(ckpt(&deleted, *lsn)).expect("remove");
    }
    assert_refused(&deleted, "every checkpoint deleted");

    // Control: with one good checkpoint left, the state is whole.
    let one_left = copy("one-left");
    write_bytes(&ckpt(&one_left, ckpts[1]), 0, &[0xff; 16]);
    let (store, report) = open(&one_left, &opts);
    assert_eq!(report.checkpoint.map(|c| c.0), Some(Lsn(ckpts[0])));
    assert_recovered(&store, 900, "from the older checkpoint");
    store.close().expect("close");
}

// ----- execute_batch under kill -9 -------------------------------------------------

/// The child role, when this process is one: `(scenario, dir)`.
fn child_role() -> Option<(String, PathBuf)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (scenario, dir) = v.split_once(':').expect("<scenario>:<dir>");
    Some((scenario.to_owned(), PathBuf::from(dir)))
}

/// Size of batch number `b` (0-based) of the child: 1 to 12 commands.
fn batch_len(b: u64) -> u64 {
    1 + b.wrapping_mul(7) % 12
}

/// The child: executes batches for ever, reporting `batch <first> <count>` after each
/// one returned, then waits to be killed.
fn batch_child(dir: &Path) {
    let opts = StoreOptions {
        checkpoint_every_records: Some(200),
        ..manual()
    };
    let (mut store, _) = open(dir, &opts);
    let mut next = 1;
    for b in 0..20_000 {
        let n = batch_len(b);
        let cmds: Vec<Vec<u8>> = (next..next + n).map(command).collect();
        let refs: Vec<&[u8]> = cmds.iter().map(Vec::as_slice).collect();
        let first = store.execute_batch(&refs).expect("batch");
        assert_eq!(first, Lsn(next));
        println!("{MARK}batch {next} {n}");
        next += n;
    }
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).expect("stdin");
}

struct ChildProc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildProc {
    fn spawn(test: &str, scenario: &str, dir: &Path) -> ChildProc {
        let dir = dir.to_str().expect("UTF-8 temporary path");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{scenario}:{dir}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("stdout");
        ChildProc {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next report of the child; `None` when it ended.
    fn next_report(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.expect("child stdout");
            if let Some(at) = line.find(MARK) {
                return Some(line[at + MARK.len()..].to_owned());
            }
        }
        None
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

#[test]
fn execute_batch_is_all_or_nothing_under_kill() {
    const TEST: &str = "execute_batch_is_all_or_nothing_under_kill";
    if let Some((scenario, dir)) = child_role() {
        assert_eq!(scenario, "batches");
        batch_child(&dir);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for (k, kill_after) in [3u64, 40, 150].into_iter().enumerate() {
        let dir = tmp.path().join(format!("run{k}"));
        let mut child = ChildProc::spawn(TEST, "batches", &dir);
        let mut acked = 0;
        for _ in 0..kill_after {
            let line = child.next_report().expect("the child ended early");
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("batch"), "{line}");
            let first: u64 = words.next().expect("first").parse().expect("number");
            let n: u64 = words.next().expect("count").parse().expect("number");
            assert_eq!(first, acked + 1, "batches are dense");
            acked = first + n - 1;
        }
        child.child.kill().expect("kill");
        let status = child.child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "run {k}: the child ended with {status}"
        );

        // Batch boundaries, from the same deterministic sizes.
        let mut ends = vec![0];
        let mut end = 0;
        for b in 0..20_000 {
            end += batch_len(b);
            ends.push(end);
        }
        let (mut store, report) = open(&dir, &manual());
        assert!(!report.clean_shutdown);
        let applied = store.state().data.applied;
        assert!(
            ends.contains(&applied),
            "run {k}: {applied} commands recovered: half a batch"
        );
        assert!(
            applied >= acked,
            "run {k}: {applied} commands recovered, {acked} were acknowledged"
        );
        assert!(
            store.state().data == model(applied),
            "run {k}: the state is not the first {applied} commands"
        );
        // And it goes on from there.
        assert_eq!(
            store.execute(&command(applied + 1)).expect("execute"),
            Lsn(applied + 1)
        );
        store.checkpoint().expect("checkpoint");
        store.close().expect("close");
        let (store, _) = open(&dir, &manual());
        assert!(store.state().data == model(applied + 1));
        assert!(store.state().seen.is_empty());
        store.close().expect("close");
    }
}
