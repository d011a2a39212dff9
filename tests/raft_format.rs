//! The bytes the Raft store writes are format "raft 1" of DESIGN.md §10.2, pinned byte
//! for byte: a normal, a membership and a blank log record, the vote, the committed and
//! the purged log id in `META`, a snapshot checkpoint's payload and its marker record.
//! Provoked by writing each through the store's openraft interface into a fresh
//! directory and reading the raw bytes back through the underlying Wals. A change to
//! the encoding fails here and needs a new format version (and a reader of the old one).

mod raft_common;

use std::collections::{BTreeMap, BTreeSet};

use mmlog::Lsn;
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::{BasicNode, Entry, EntryPayload, Membership};
use raft_common::{Config, Strings, append_durably, apply, log_id, small, vote};

fn record(log: &mmlog::raft::LogStore<Config>, lsn: u64) -> Vec<u8> {
    log.wal()
        .read(Lsn(lsn))
        .expect("read the record")
        .payload()
        .to_vec()
}

#[test]
fn the_raft_records_are_format_raft_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    Config::run(async {
        let (mut log, mut sm) =
            mmlog::raft::open::<Config, Strings>(dir.path(), small()).expect("open");
        let voters: BTreeSet<u64> = [1, 2].into_iter().collect();
        let nodes: BTreeMap<u64, BasicNode> =
            [(1, BasicNode::new("a")), (2, BasicNode::new("b"))].into();
        let membership = Membership::new(vec![voters], nodes).expect("a membership");
        let entries = vec![
            Entry {
                log_id: log_id(2, 0),
                payload: EntryPayload::Normal("hi".to_string()),
            },
            Entry {
                log_id: log_id(2, 1),
                payload: EntryPayload::Membership(membership),
            },
            Entry {
                log_id: log_id(2, 2),
                payload: EntryPayload::Blank,
            },
        ];
        append_durably(&mut log, entries.clone()).await;

        // [version] [term, node id, index] [payload tag] [payload]; index i at LSN i + 1.
        assert_eq!(record(&log, 1), [1, 2, 1, 0, 1, 2, b'h', b'i'], "normal");
        // Membership: one config {1, 2}; two nodes, 1 at "a" and 2 at "b".
        assert_eq!(
            record(&log, 2),
            [1, 2, 1, 1, 2, 1, 2, 1, 2, 2, 1, 1, b'a', 2, 1, b'b'],
            "membership"
        );
        assert_eq!(record(&log, 3), [1, 2, 1, 2, 0], "blank");

        log.save_vote(&vote(3)).await.expect("vote");
        log.save_committed(Some(log_id(2, 1)))
            .await
            .expect("committed");
        log.purge(log_id(2, 0)).await.expect("purge");
        let meta = |key: &str| log.wal().meta(key).expect("a metadata value");
        // [version] [term, node id] [committed: 0]
        assert_eq!(meta("raft.vote"), [1, 3, 1, 0], "vote");
        // [version] [Some] [term, node id, index]
        assert_eq!(meta("raft.committed"), [1, 1, 2, 1, 1], "committed");
        // [version] [term, node id, index]
        assert_eq!(meta("raft.purged"), [1, 2, 1, 0], "purged");

        apply(&mut sm, entries).await;
        let mut builder = sm
            .try_create_snapshot_builder(true)
            .await
            .expect("a builder");
        builder.build_snapshot().await.expect("snapshot");
        let ckpt = sm.wal().checkpoint().expect("the snapshot checkpoint");
        let mut want = b"MMRAFTSM".to_vec();
        want.extend_from_slice(&[
            1, // version
            1, 2, 1, 2, // last log id: Some, term 2, node 1, index 2
            1, 2, 1, 1, // last membership's log id: Some, term 2, node 1, index 1
            1, 2, 1, 2, 2, 1, 1, b'a', 2, 1, b'b', // the membership, as in the log record
            4,    // the application's bytes: their length, then `Strings(["hi"])`
            1, 2, b'h', b'i',
        ]);
        assert_eq!(ckpt.data(), want.as_slice(), "snapshot payload");
        let marker = sm
            .wal()
            .read(ckpt.lsn())
            .expect("the snapshot's marker")
            .payload()
            .to_vec();
        // [version] [Some] [the snapshot's last log id]
        assert_eq!(marker, [1, 1, 2, 1, 2], "marker record");
        drop(ckpt);
        drop(builder);
        log.close().expect("close the log");
        sm.close().expect("close the state machine");
    });
}
