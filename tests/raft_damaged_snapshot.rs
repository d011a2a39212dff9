//! A damaged snapshot is an error when the state machine's directory is opened, never an
//! older or an empty state: one byte of the newest snapshot checkpoint's payload is
//! flipped after a clean close, and the open must fail with `NoUsableCheckpoint`.

mod raft_common;

use std::os::unix::fs::FileExt;

use mmlog::raft::{STATE_MACHINE_DIR, StateMachineStore};
use mmlog::{CorruptionKind, Error};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use raft_common::{Config, Strings, apply, entry, small};

#[test]
fn a_damaged_snapshot_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    Config::run(async {
        let (log, mut sm) =
            mmlog::raft::open::<Config, Strings>(dir.path(), small()).expect("open");
        for round in 0..3 {
            apply(
                &mut sm,
                (round * 10..round * 10 + 10).map(|i| entry(1, i)).collect(),
            )
            .await;
            let mut b = sm
                .try_create_snapshot_builder(true)
                .await
                .expect("a builder");
            b.build_snapshot().await.expect("snapshot");
        }
        log.close().expect("close");
        sm.close().expect("close");
    });

    let sm_dir = dir.path().join(STATE_MACHINE_DIR);
    let snapshots: Vec<_> = std::fs::read_dir(&sm_dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    assert_eq!(snapshots.len(), 1, "one generation is kept: {snapshots:?}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&snapshots[0])
        .expect("open the checkpoint");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 4096 + 20).expect("read");
    file.write_all_at(&[byte[0] ^ 0x40], 4096 + 20)
        .expect("write");
    drop(file);

    let opened = StateMachineStore::<Config, Strings>::open(
        &sm_dir,
        mmlog::raft::state_machine_options(&small()),
    );
    assert!(
        matches!(
            opened,
            Err(Error::Corrupt {
                kind: CorruptionKind::NoUsableCheckpoint,
                ..
            })
        ),
        "{opened:?}"
    );
}
