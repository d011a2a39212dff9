//! The Raft store after a crash of the process that held it, provoked by dropping the
//! stores without closing them (nothing more is synced, no seal is written): the vote,
//! the committed log id, the purge point, the log (truncations included, never
//! resurrected) and the snapshot are what openraft last saw acknowledged, and openraft's
//! own start-up (`StorageHelper::get_initial_state`) rebuilds the state machine from them.

mod raft_common;

use std::collections::BTreeSet;

use mmlog::raft::{LogStore, RaftApp, StateMachineStore};
use openraft::storage::{
    IOFlushed, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::type_config::TypeConfigExt;
use openraft::{Membership, SnapshotMeta, StorageHelper, StoredMembership};
use raft_common::{
    Config, Strings, append_durably, apply, entry, log_id, payload, read_log, small, vote,
};

type Log = LogStore<Config>;
type Sm = StateMachineStore<Config, Strings>;

fn open(dir: &std::path::Path) -> (Log, Sm) {
    mmlog::raft::open::<Config, Strings>(dir, small()).expect("open the Raft store")
}

/// The `(index, term, payload)` rows of entries `from..=to`, all written in `term`.
fn rows(term: u64, from: u64, to: u64) -> Vec<(u64, u64, String)> {
    (from..=to).map(|i| (i, term, payload(term, i))).collect()
}

fn entries(term: u64, from: u64, to: u64) -> Vec<raft_common::Entry> {
    (from..=to).map(|i| entry(term, i)).collect()
}

#[test]
fn vote_log_committed_purge_and_snapshot_survive_a_drop_without_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    Config::run(async {
        {
            let (mut log, mut sm) = open(dir.path());
            log.save_vote(&vote(3)).await.expect("vote");
            append_durably(&mut log, entries(1, 0, 39)).await;
            append_durably(&mut log, entries(2, 40, 59)).await;
            log.truncate_after(Some(log_id(2, 50)))
                .await
                .expect("truncate");
            append_durably(&mut log, entries(3, 51, 55)).await;
            log.save_committed(Some(log_id(3, 53)))
                .await
                .expect("committed");
            apply(&mut sm, entries(1, 0, 30)).await;
            let mut builder = sm
                .try_create_snapshot_builder(true)
                .await
                .expect("a builder");
            let snap = builder.build_snapshot().await.expect("snapshot");
            assert_eq!(snap.meta.last_log_id, Some(log_id(1, 30)));
            log.purge(log_id(1, 20)).await.expect("purge");
            // Appended, never flushed: in the mapping, so it survives a process crash.
            log.append(vec![entry(3, 56)], IOFlushed::noop())
                .await
                .expect("append");
            drop(builder);
            drop(log);
            drop(sm);
        }

        let (mut log, mut sm) = open(dir.path());
        let mut reader = log.get_log_reader().await;
        assert_eq!(reader.read_vote().await.expect("read vote"), Some(vote(3)));
        assert_eq!(
            log.read_committed().await.expect("committed"),
            Some(log_id(3, 53))
        );
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 20)));
        assert_eq!(state.last_log_id, Some(log_id(3, 56)));
        let mut want = rows(1, 21, 39);
        want.extend(rows(2, 40, 50));
        want.extend(rows(3, 51, 56));
        assert_eq!(read_log(&mut log, 0..).await, want);

        let snap = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("a snapshot");
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 30)));
        let restored = Strings::restore(&snap.snapshot).expect("restore");
        let first_31: Vec<String> = (0..=30).map(|i| payload(1, i)).collect();
        assert_eq!(restored, Strings(first_31.clone()));
        assert_eq!(
            sm.applied_state().await.expect("applied").0,
            Some(log_id(1, 30))
        );
        assert_eq!(sm.read(|s| s.clone()), Strings(first_31));

        // openraft's start-up re-applies the committed entries after the snapshot.
        let initial = StorageHelper::new(&mut log, &mut sm)
            .get_initial_state()
            .await
            .expect("initial state");
        assert_eq!(initial.vote_ref(), &vote(3));
        assert_eq!(initial.local_committed(), Some(&log_id(3, 53)));
        assert_eq!(sm.last_applied(), Some(log_id(3, 53)));
        let mut applied: Vec<String> = (0..=39).map(|i| payload(1, i)).collect();
        applied.extend((40..=50).map(|i| payload(2, i)));
        applied.extend((51..=53).map(|i| payload(3, i)));
        assert_eq!(sm.read(|s| s.clone()), Strings(applied));
        log.close().expect("close the log");
        sm.close().expect("close the state machine");
    });
}

#[test]
fn truncated_entries_never_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    Config::run(async {
        {
            let (mut log, _sm) = open(dir.path());
            append_durably(&mut log, entries(1, 0, 299)).await;
            log.truncate_after(Some(log_id(1, 10)))
                .await
                .expect("truncate");
        }
        {
            let (mut log, _sm) = open(dir.path());
            assert_eq!(read_log(&mut log, 0..).await, rows(1, 0, 10));
            append_durably(&mut log, entries(2, 11, 14)).await;
        }
        {
            let (mut log, _sm) = open(dir.path());
            let mut want = rows(1, 0, 10);
            want.extend(rows(2, 11, 14));
            assert_eq!(read_log(&mut log, 0..).await, want);
            log.truncate_after(None).await.expect("truncate everything");
        }
        let (mut log, sm) = open(dir.path());
        assert_eq!(read_log(&mut log, 0..).await, Vec::new());
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(state.last_log_id, None);
        log.close().expect("close");
        sm.close().expect("close");
    });
}

#[test]
fn an_installed_snapshot_and_the_entries_after_it_survive_a_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(4, 100)),
        last_membership: StoredMembership::new(
            Some(log_id(4, 90)),
            Membership::new_with_defaults(vec![voters], []),
        ),
    };
    let leader_state = Strings(vec!["a".into(), "b".into()]);
    let mut bytes = Vec::new();
    leader_state.snapshot(&mut bytes);
    Config::run(async {
        {
            let (mut log, mut sm) = open(dir.path());
            append_durably(&mut log, entries(1, 0, 7)).await;
            sm.install_snapshot(&meta, bytes.clone())
                .await
                .expect("install");
            // openraft purges the log up to the snapshot, past its end, then appends
            // after it: the log continues at index 101.
            log.purge(log_id(4, 100)).await.expect("purge");
            append_durably(&mut log, entries(4, 101, 105)).await;
            log.save_committed(Some(log_id(4, 103)))
                .await
                .expect("committed");
        }
        let (mut log, mut sm) = open(dir.path());
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(log_id(4, 100)));
        assert_eq!(state.last_log_id, Some(log_id(4, 105)));
        assert_eq!(read_log(&mut log, 0..).await, rows(4, 101, 105));
        let snap = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("a snapshot");
        assert_eq!(snap.meta, meta);
        assert_eq!(snap.snapshot, bytes);
        assert_eq!(sm.read(|s| s.clone()), leader_state);

        StorageHelper::new(&mut log, &mut sm)
            .with_id(1)
            .get_initial_state()
            .await
            .expect("initial state");
        assert_eq!(sm.last_applied(), Some(log_id(4, 103)));
        let mut want = leader_state.0.clone();
        want.extend((101..=103).map(|i| payload(4, i)));
        assert_eq!(sm.read(|s| s.clone()), Strings(want));
        log.close().expect("close");
        sm.close().expect("close");
    });
}
