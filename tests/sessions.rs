//! The `sessions` example's behaviour as a test: a terminal-multiplexer-like server
//! (sessions → windows → panes, `examples/sessions/model.rs`) keeps its state in a
//! `Store` and must come back from a crash exactly as an in-memory copy that ran the
//! same acknowledged commands. Provoked by running the example's deterministic
//! `Workload` for thousands of commands over 64 KiB segments with frequent checkpoints
//! and mixed durability, then dropping the store without `close()` (a crash as far as
//! the disk is concerned) and reopening, several times in a row with more commands in
//! between; a clean `close()` must be reported as a clean shutdown, a drop never.
mod common;

#[allow(dead_code)]
#[path = "../examples/sessions/model.rs"]
mod model;

use std::path::Path;

use mmlog::{Durability, Store, StoreOptions};
use model::{Command, Server, Workload};

fn opts() -> StoreOptions {
    StoreOptions {
        wal: common::small(),
        checkpoint_every_records: Some(700),
        checkpoint_every_bytes: None,
        checkpoint_every: None,
        max_log_bytes: None,
    }
}

/// Runs `count` workload commands against the store and the in-memory copy; every
/// 50th waits for the disk.
fn run(store: &mut Store<Server>, expected: &mut Server, work: &mut Workload, count: usize) {
    for i in 0..count {
        let cmd = work.next(expected);
        let durability = if i % 50 == 0 {
            Durability::Sync
        } else {
            Durability::None
        };
        store
            .execute_with(&cmd.encode(), durability)
            .expect("execute");
        expected.run(&cmd);
    }
    assert_eq!(store.state(), &*expected, "the live state drifted");
}

/// Opens the store and checks the recovered state and the shutdown flag.
fn reopen(dir: &Path, expected: &Server, clean: bool, when: &str) -> Store<Server> {
    let (store, report) = Store::<Server>::open(dir, opts()).expect("open");
    assert_eq!(report.clean_shutdown, clean, "{when}: clean-shutdown flag");
    assert!(
        store.state() == expected,
        "{when}: recovered state differs from the model:\n{}\nexpected:\n{}",
        store.state().describe(),
        expected.describe()
    );
    store
}

#[test]
fn a_crash_after_thousands_of_commands_recovers_the_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut expected = Server::default();
    let mut work = Workload::new(7);
    {
        let (mut store, report) = Store::<Server>::open(dir, opts()).expect("open");
        assert!(report.created);
        let first = Command::NewSession {
            id: 0,
            name: "main".into(),
        };
        store.execute(&first.encode()).expect("execute");
        expected.run(&first);
        run(&mut store, &mut expected, &mut work, 4000);
        assert!(
            store.wal().checkpoint().is_some(),
            "the run must have checkpointed"
        );
        assert!(
            store.wal().first_lsn().0 > 1,
            "the log must have been purged"
        );
        assert!(
            !expected.sessions.is_empty(),
            "the workload left no session: the test compares nothing"
        );
        // The crash: dropped without close().
    }
    let store = reopen(dir, &expected, false, "after the crash");
    store.close().expect("close");
    let store = reopen(dir, &expected, true, "after a clean close");
    store.close().expect("close");
}

#[test]
fn repeated_crash_and_reopen_cycles_keep_matching_the_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut expected = Server::default();
    let mut work = Workload::new(0x5e55);
    let (store, _) = Store::<Server>::open(dir, opts()).expect("open");
    drop(store);
    let mut clean = false;
    for cycle in 0..6 {
        let when = format!("cycle {cycle}");
        let mut store = reopen(dir, &expected, clean, &when);
        run(&mut store, &mut expected, &mut work, 900);
        // Mostly crashes; every third cycle ends cleanly, once right after a checkpoint.
        clean = cycle % 3 == 2;
        if clean {
            store.checkpoint().expect("checkpoint");
            store.close().expect("close");
        } else {
            drop(store);
        }
    }
    let store = reopen(dir, &expected, clean, "final");
    // The model is not trivial: the workload built sessions with windows and panes.
    let panes: usize = expected
        .sessions
        .values()
        .flat_map(|s| s.windows.values())
        .map(|w| w.panes.len())
        .sum();
    assert!(panes > 0, "no pane in the final state");
    store.close().expect("close");
    let store = reopen(dir, &expected, true, "after the final close");
    store.close().expect("close");
}

#[test]
fn commands_encode_and_decode_and_snapshots_restore() {
    use mmlog::StateMachine;
    let mut server = Server::default();
    let mut work = Workload::new(99);
    for _ in 0..2000 {
        let cmd = work.next(&server);
        let bytes = cmd.encode();
        assert_eq!(Command::decode(&bytes), Ok(cmd.clone()), "{cmd:?}");
        server.run(&cmd);
    }
    let mut snapshot = vec![0u8; server.snapshot_len()];
    server.write_snapshot(&mut snapshot);
    let restored = Server::restore(&snapshot).expect("restore");
    assert_eq!(restored, server);
    assert!(Server::restore(&snapshot[..snapshot.len() - 1]).is_err());
}
