//! The Raft store survives kill -9 as openraft requires. This test binary re-executes
//! itself as a child (`MMLOG_RAFT_CHILD=<seed>:<dir>` on the child command only) that
//! drives the log and state-machine storage through a seeded mix of durable appends,
//! votes, truncations (after a vote for a higher term), commits, snapshots and purges,
//! printing each operation before it starts and `ok` once it returned; the parent kills
//! it with SIGKILL after a number of acknowledgements, reads whatever the child printed
//! until then, and reopens: the recovered vote, committed log id, purge point, log and
//! snapshot must be the acknowledged state, or that state plus the one operation in
//! flight (an append may have left any prefix of its entries). openraft's start-up then
//! rebuilds the state machine from them, and the store keeps working.

mod common;
mod raft_common;

use std::io::{BufRead, BufReader, Lines, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::Rng;
use mmlog::raft::{LogStore, RaftApp, StateMachineStore};
use openraft::StorageHelper;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use raft_common::{
    Config, Strings, append_durably, apply, entry, log_id, payload, read_log, small, vote,
};

const CHILD_ENV: &str = "MMLOG_RAFT_CHILD";
/// Prefix of the lines the child reports on stdout (libtest writes there too).
const MARK: &str = "@@raft ";

type Log = LogStore<Config>;
type Sm = StateMachineStore<Config, Strings>;

fn open(dir: &Path) -> (Log, Sm) {
    mmlog::raft::open::<Config, Strings>(dir, small()).expect("open the Raft store")
}

/// One storage operation of the child.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Entries `first..first + n` of `term`, appended and flushed.
    Append { first: u64, n: u64, term: u64 },
    /// A vote for node 1 in `term`.
    Vote(u64),
    /// Keep entries up to and including this index (`None`: none).
    Truncate(Option<u64>),
    /// The committed index.
    Commit(u64),
    /// Apply up to the committed index, then build a snapshot covering `index`.
    Snapshot(u64),
    /// Purge up to and including this index.
    Purge(u64),
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Append { first, n, term } => format!("append {first} {n} {term}"),
            Op::Vote(t) => format!("vote {t}"),
            Op::Truncate(None) => "truncate none".into(),
            Op::Truncate(Some(k)) => format!("truncate {k}"),
            Op::Commit(i) => format!("commit {i}"),
            Op::Snapshot(i) => format!("snapshot {i}"),
            Op::Purge(i) => format!("purge {i}"),
        }
    }

    fn parse(line: &str) -> Op {
        let words: Vec<&str> = line.split(' ').collect();
        let num = |k: usize| -> u64 {
            words
                .get(k)
                .unwrap_or_else(|| panic!("short line {line:?}"))
                .parse()
                .unwrap_or_else(|_| panic!("bad number in {line:?}"))
        };
        match words.first().copied() {
            Some("append") => Op::Append {
                first: num(1),
                n: num(2),
                term: num(3),
            },
            Some("vote") => Op::Vote(num(1)),
            Some("truncate") if words.get(1) == Some(&"none") => Op::Truncate(None),
            Some("truncate") => Op::Truncate(Some(num(1))),
            Some("commit") => Op::Commit(num(1)),
            Some("snapshot") => Op::Snapshot(num(1)),
            Some("purge") => Op::Purge(num(1)),
            _ => panic!("unknown report {line:?}"),
        }
    }
}

/// What the store should hold: the acknowledged operations, applied in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    /// Term of each entry still in the log, by index (purged ones included).
    terms: Vec<u64>,
    vote: u64,
    committed: Option<u64>,
    purged: Option<u64>,
    snapshot: Option<u64>,
    /// The application's state in the snapshot.
    snapshot_state: Vec<String>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append { first, n, term } => {
                assert_eq!(first, self.terms.len() as u64, "appends are dense");
                self.terms.extend(std::iter::repeat_n(term, n as usize));
            }
            Op::Vote(t) => self.vote = t,
            Op::Truncate(keep) => self.terms.truncate(keep.map_or(0, |k| k as usize + 1)),
            Op::Commit(i) => self.committed = Some(i),
            Op::Snapshot(i) => {
                self.snapshot = Some(i);
                self.snapshot_state = self.payloads(i);
            }
            Op::Purge(i) => self.purged = Some(i),
        }
    }

    /// The payloads of entries `0..=last`.
    fn payloads(&self, last: u64) -> Vec<String> {
        (0..=last)
            .map(|i| payload(self.terms[i as usize], i))
            .collect()
    }

    /// The states a crash during `pending` may leave.
    fn outcomes(&self, pending: Option<&Op>) -> Vec<Model> {
        let mut out = vec![self.clone()];
        match pending {
            None => {}
            Some(Op::Append { first, n, term }) => {
                for k in 1..=*n {
                    let mut m = self.clone();
                    m.apply(&Op::Append {
                        first: *first,
                        n: k,
                        term: *term,
                    });
                    out.push(m);
                }
            }
            Some(op) => {
                let mut m = self.clone();
                m.apply(op);
                out.push(m);
            }
        }
        out
    }
}

/// The child role, when this process is one: `(seed, dir)`.
fn child_role() -> Option<(u64, PathBuf)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (seed, dir) = v.split_once(':').expect("<seed>:<dir>");
    Some((seed.parse().expect("seed"), PathBuf::from(dir)))
}

fn report(line: &str) {
    println!("{MARK}{line}");
}

/// The child: a seeded mix of storage operations, each reported before it starts and
/// acknowledged (`ok`) once it returned; then it waits to be killed.
fn child(seed: u64, dir: &Path) {
    Config::run(async {
        let (mut log, mut sm) = open(dir);
        let mut rng = Rng::new(seed);
        let mut m = Model::default();
        let mut applied: Option<u64> = None;
        for _ in 0..5_000 {
            let next = m.terms.len() as u64;
            let r = rng.below(100);
            let term = m.vote.max(1);
            let op = if r < 55 || next == 0 {
                Op::Append {
                    first: next,
                    n: 1 + rng.below(4),
                    term,
                }
            } else if r < 62 {
                Op::Vote(m.vote + 1)
            } else if r < 70 {
                // A new leader's entries replace an uncommitted suffix: vote first.
                if m.terms.last().is_some_and(|&t| t >= m.vote) {
                    Op::Vote(m.vote + 1)
                } else {
                    let floor = m.committed.map_or(0, |c| c + 1);
                    let keep = floor + rng.below(next - floor + 1);
                    Op::Truncate(keep.checked_sub(1))
                }
            } else if r < 82 {
                let floor = m.committed.unwrap_or(0);
                Op::Commit(floor + rng.below(next - floor))
            } else if r < 90 {
                match m.committed {
                    Some(c) if m.snapshot.is_none_or(|s| s < c) => Op::Snapshot(c),
                    _ => Op::Vote(m.vote + 1),
                }
            } else {
                match m.snapshot {
                    Some(s) if m.purged.is_none_or(|p| p < s) => {
                        let floor = m.purged.map_or(0, |p| p + 1);
                        Op::Purge(floor + rng.below(s - floor + 1))
                    }
                    _ => Op::Vote(m.vote + 1),
                }
            };
            report(&op.line());
            match &op {
                Op::Append { first, n, term } => {
                    let batch = (*first..first + n).map(|i| entry(*term, i)).collect();
                    append_durably(&mut log, batch).await;
                }
                Op::Vote(t) => log.save_vote(&vote(*t)).await.expect("vote"),
                Op::Truncate(keep) => {
                    let id = keep.map(|k| log_id(m.terms[k as usize], k));
                    log.truncate_after(id).await.expect("truncate");
                }
                Op::Commit(i) => {
                    let id = log_id(m.terms[*i as usize], *i);
                    log.save_committed(Some(id)).await.expect("commit");
                }
                Op::Snapshot(i) => {
                    let from = applied.map_or(0, |a| a + 1);
                    let entries = (from..=*i).map(|k| entry(m.terms[k as usize], k)).collect();
                    apply(&mut sm, entries).await;
                    applied = Some(*i);
                    let mut b = sm
                        .try_create_snapshot_builder(true)
                        .await
                        .expect("a builder");
                    let snap = b.build_snapshot().await.expect("snapshot");
                    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(*i));
                }
                Op::Purge(i) => {
                    let id = log_id(m.terms[*i as usize], *i);
                    log.purge(id).await.expect("purge");
                }
            }
            m.apply(&op);
            report("ok");
        }
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink).expect("stdin");
    });
}

struct ChildProc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildProc {
    fn spawn(test: &str, seed: u64, dir: &Path) -> ChildProc {
        let dir = dir.to_str().expect("UTF-8 temporary path");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{seed}:{dir}"))
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

    /// The next report of the child; `None` when its stdout ended.
    fn next_report(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let Ok(line) = line else { return None };
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

/// Folds one report into `(model, pending)`.
fn fold(model: &mut Model, pending: &mut Option<Op>, line: &str) {
    if line == "ok" {
        let op = pending.take().expect("an ok without an operation");
        model.apply(&op);
    } else {
        assert!(pending.is_none(), "two operations in flight");
        *pending = Some(Op::parse(line));
    }
}

/// What the reopened store holds, as a model.
async fn observe(log: &mut Log, sm: &mut Sm) -> Model {
    let mut reader = log.get_log_reader().await;
    let vote = reader.read_vote().await.expect("read vote");
    let committed = log.read_committed().await.expect("read committed");
    let state = log.get_log_state().await.expect("log state");
    let rows = read_log(log, 0..).await;
    let purged = state.last_purged_log_id.map(|l| l.index);
    let first = purged.map_or(0, |p| p + 1);
    // Entries at or below the purge point are gone; the model keeps their terms, which
    // the comparison below takes from the candidate.
    let mut terms = Vec::new();
    for (k, (index, term, data)) in rows.iter().enumerate() {
        assert_eq!(
            *index,
            first + k as u64,
            "the log is dense from the purge point"
        );
        assert_eq!(
            *data,
            payload(*term, *index),
            "entry {index} holds its own payload"
        );
        terms.push(*term);
    }
    assert_eq!(
        state.last_log_id.map(|l| l.index),
        rows.last().map(|r| r.0).or(purged),
        "the log state agrees with the entries"
    );
    let snap = sm.get_current_snapshot().await.expect("read snapshot");
    let (snapshot, snapshot_state) = match snap {
        None => (None, Vec::new()),
        Some(s) => (
            s.meta.last_log_id.map(|l| l.index),
            Strings::restore(&s.snapshot).expect("restore").0,
        ),
    };
    Model {
        // Prefixed below with the candidate's purged terms.
        terms,
        vote: vote.map_or(0, |v| v.leader_id.term),
        committed: committed.map(|c| c.index),
        purged,
        snapshot,
        snapshot_state,
    }
}

/// Whether `seen` (whose `terms` start after its purge point) is `want`.
fn recovered_as(seen: &Model, want: &Model) -> bool {
    let first = seen.purged.map_or(0, |p| p as usize + 1);
    want.terms.len() >= first
        && want.terms[first..] == seen.terms[..]
        && (seen.vote, seen.committed, seen.purged, seen.snapshot)
            == (want.vote, want.committed, want.purged, want.snapshot)
        && seen.snapshot_state == want.snapshot_state
}

#[test]
fn raft_store_survives_kill_minus_nine() {
    const TEST: &str = "raft_store_survives_kill_minus_nine";
    if let Some((seed, dir)) = child_role() {
        child(seed, &dir);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for (run, kill_after) in [5u64, 60, 400].into_iter().enumerate() {
        let seed = 0x5eed_0000 + run as u64;
        let dir = tmp.path().join(format!("run{run}"));
        let mut child = ChildProc::spawn(TEST, seed, &dir);
        let mut model = Model::default();
        let mut pending = None;
        let mut acked = 0;
        while acked < kill_after {
            let line = child.next_report().expect("the child ended early");
            if line == "ok" {
                acked += 1;
            }
            fold(&mut model, &mut pending, &line);
        }
        child.child.kill().expect("kill");
        let status = child.child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "run {run}: the child ended with {status}"
        );
        // Whatever it printed before it died is acknowledged too.
        while let Some(line) = child.next_report() {
            fold(&mut model, &mut pending, &line);
        }

        Config::run(async {
            let (mut log, mut sm) = open(&dir);
            let seen = observe(&mut log, &mut sm).await;
            let outcomes = model.outcomes(pending.as_ref());
            eprintln!(
                "run {run}: killed with {} entries, vote {}, committed {:?}, purged {:?}, \
                 snapshot {:?}, in flight: {pending:?}",
                model.terms.len(),
                model.vote,
                model.committed,
                model.purged,
                model.snapshot
            );
            let Some(want) = outcomes.iter().find(|m| recovered_as(&seen, m)) else {
                panic!(
                    "run {run}: recovered {seen:?}\nnot the acknowledged state {model:?}\n\
                     nor that state after {pending:?}"
                );
            };

            // openraft's start-up: the state machine reaches the committed index.
            StorageHelper::new(&mut log, &mut sm)
                .with_id(1)
                .get_initial_state()
                .await
                .expect("initial state");
            let applied = want.committed.max(want.snapshot);
            assert_eq!(sm.last_applied().map(|l| l.index), applied, "run {run}");
            let state = applied.map_or(Vec::new(), |a| want.payloads(a));
            assert_eq!(sm.read(|s| s.0.clone()), state, "run {run}");

            // And the store goes on: a new leader's entry, durable, then a clean close.
            let next = want.terms.len() as u64;
            let term = want.vote + 1;
            log.save_vote(&vote(term)).await.expect("vote");
            append_durably(&mut log, vec![entry(term, next)]).await;
            log.close().expect("close");
            sm.close().expect("close");

            let (mut log, sm) = open(&dir);
            let state = log.get_log_state().await.expect("log state");
            assert_eq!(state.last_log_id, Some(log_id(term, next)), "run {run}");
            log.close().expect("close");
            sm.close().expect("close");
        });
    }
}
