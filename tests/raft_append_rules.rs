//! Where the Raft log store accepts an append: right after its last entry; over a
//! suffix it holds (the suffix is replaced, as a truncation would); and, when the log
//! shows no entry (new, or purged up to or past its end), at any index after the purge
//! point, where the log then continues. An append at or below the purge point, or one
//! that leaves a gap after a visible entry, is refused and leaves the log as it was.
//! Provoked directly through `RaftLogStorage::append`.

mod raft_common;

use mmlog::raft::{LogStore, StateMachineStore};
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use raft_common::{Config, Strings, append_durably, entry, log_id, payload, read_log, small};

fn rows(term: u64, from: u64, to: u64) -> Vec<(u64, u64, String)> {
    (from..=to).map(|i| (i, term, payload(term, i))).collect()
}

fn open(dir: &std::path::Path) -> (LogStore<Config>, StateMachineStore<Config, Strings>) {
    mmlog::raft::open::<Config, Strings>(dir, small()).expect("open")
}

async fn refused(log: &mut LogStore<Config>, e: raft_common::Entry, why: &str) {
    let err = log.append(vec![e], IOFlushed::noop()).await.expect_err(why);
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{why}: {err}");
}

#[test]
fn appends_go_after_the_last_entry_over_a_suffix_or_anywhere_in_an_empty_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    Config::run(async {
        let (mut log, sm) = open(dir.path());
        // A new log starts wherever its first entry is.
        append_durably(&mut log, (5..=9).map(|i| entry(1, i)).collect()).await;
        assert_eq!(read_log(&mut log, 0..).await, rows(1, 5, 9));

        // Over a suffix: entries 7..=9 are replaced by the new 7 and 8.
        append_durably(&mut log, vec![entry(2, 7), entry(2, 8)]).await;
        let mut want = rows(1, 5, 6);
        want.extend(rows(2, 7, 8));
        assert_eq!(read_log(&mut log, 0..).await, want);

        refused(&mut log, entry(2, 10), "a gap after index 8").await;
        assert_eq!(read_log(&mut log, 0..).await, want);

        log.purge(log_id(1, 6)).await.expect("purge");
        refused(&mut log, entry(3, 6), "at the purge point").await;
        refused(&mut log, entry(3, 2), "below the purge point").await;
        assert_eq!(read_log(&mut log, 0..).await, rows(2, 7, 8));

        // Purged past the end: the log continues after the purge point.
        log.purge(log_id(3, 50)).await.expect("purge past the end");
        refused(&mut log, entry(3, 50), "at the purge point past the end").await;
        append_durably(&mut log, vec![entry(3, 51), entry(3, 52)]).await;
        assert_eq!(read_log(&mut log, 0..).await, rows(3, 51, 52));
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(3, 50)));
        assert_eq!(state.last_log_id, Some(log_id(3, 52)));
        log.close().expect("close");
        sm.close().expect("close");
    });
}
