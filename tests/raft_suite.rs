//! openraft's own storage test suite (`openraft::testing::log::Suite::test_all`: log
//! state, reads, vote, truncation, purge, appends, memberships, initial state after
//! restarts, snapshot build and transfer) run against the mmlog-backed log and state
//! machine, each case on a fresh pair of directories in its own `TempDir`.

mod raft_common;

use mmlog::raft::{LogStore, StateMachineStore};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use raft_common::{Config, Strings, small};
use tempfile::TempDir;

type Log = LogStore<Config>;
type Sm = StateMachineStore<Config, Strings>;

/// Builds each case's stores in a new temporary directory, removed when the case ends.
struct Builder;

impl StoreBuilder<Config, Log, Sm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, Log, Sm), StorageError<Config>> {
        let fail = |e: std::io::Error| {
            StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e)
        };
        let dir = tempfile::tempdir().map_err(fail)?;
        let (log, sm) = mmlog::raft::open::<Config, Strings>(dir.path(), small())
            .map_err(|e| fail(std::io::Error::other(e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_mmlog() {
    let started = std::time::Instant::now();
    Config::run(Suite::test_all(Builder)).expect("openraft's storage suite");
    eprintln!("openraft storage suite: {:?}", started.elapsed());
}
