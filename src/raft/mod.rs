//! openraft storage on mmlog (the `raft` feature).
//!
//! A Raft node keeps two directories: the log ([`LogStore`], openraft's
//! `RaftLogStorage`: entries, vote, committed log id, on a [`Wal`](crate::Wal)) and the
//! state machine's snapshots ([`StateMachineStore`], openraft's `RaftStateMachine`: the
//! application's state in memory, each snapshot an mmlog checkpoint). [`open`] opens
//! both under one directory. Entries, votes and snapshot metadata are stored in a
//! compact binary encoding ([`Codec`]) that the application's payload type implements
//! too. DESIGN.md §10 has the layout, the protocols and the crash argument.
//!
//! ```
//! use mmlog::raft::{Codec, DecodeError, Decoder, RaftApp};
//! use openraft::{EntryPayload, RaftTypeConfig};
//!
//! openraft::declare_raft_types!(pub Config: D = u64, R = u64);
//!
//! /// Sums the numbers it is given.
//! #[derive(Default)]
//! struct Sum(u64);
//!
//! impl RaftApp<Config> for Sum {
//!     fn apply(&mut self, entry: &<Config as RaftTypeConfig>::Entry) -> u64 {
//!         if let EntryPayload::Normal(n) = &entry.payload {
//!             self.0 += n;
//!         }
//!         self.0
//!     }
//!     fn snapshot(&self, out: &mut Vec<u8>) {
//!         self.0.encode(out);
//!     }
//!     fn restore(snapshot: &[u8]) -> Result<Sum, String> {
//!         mmlog::raft::decode_exact(snapshot).map(Sum).map_err(|e| e.to_string())
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let (log, sm) = mmlog::raft::open::<Config, Sum>(dir.path(), mmlog::Options::default())?;
//! // Hand clones to `openraft::Raft::new(id, config, network, log.clone(), sm.clone())`,
//! // and after `raft.shutdown()`:
//! log.close()?;
//! sm.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod log_store;
mod state_machine;

use std::path::Path;

use openraft::RaftTypeConfig;
use openraft::vote::RaftLeaderId;

pub use codec::{Codec, DecodeError, Decoder, decode_exact, encode_to_vec, put_varint};
pub use log_store::LogStore;
pub use state_machine::{RaftApp, SnapshotBuilder, StateMachineStore, state_machine_options};

use crate::{Options, Result};

/// Version byte at the start of every log record and metadata value the store writes.
pub(crate) const RECORD_VERSION: u8 = 1;

/// Subdirectory of [`open`]'s directory that holds the log.
pub const LOG_DIR: &str = "log";
/// Subdirectory of [`open`]'s directory that holds the state machine's snapshots.
pub const STATE_MACHINE_DIR: &str = "state";

/// A Raft type configuration whose stored types have a [`Codec`]: the entry (for
/// openraft's default `Entry`, its payload `D`), the vote, the committed leader id, the
/// node id and the node. Implemented for every such configuration, including
/// `declare_raft_types!`'s defaults with a `D` that implements [`Codec`].
pub trait CodecConfig:
    RaftTypeConfig<
        Entry: Codec,
        Vote: Codec,
        NodeId: Codec,
        Node: Codec,
        LeaderId: RaftLeaderId<Committed: Codec>,
    >
{
}

impl<C> CodecConfig for C where
    C: RaftTypeConfig<
            Entry: Codec,
            Vote: Codec,
            NodeId: Codec,
            Node: Codec,
            LeaderId: RaftLeaderId<Committed: Codec>,
        >
{
}

/// Opens (or creates) a Raft node's storage under `dir`: the log in `dir/log` with
/// `opts`, the snapshots in `dir/state` with [`state_machine_options`]`(&opts)`.
pub fn open<C, A>(
    dir: impl AsRef<Path>,
    opts: Options,
) -> Result<(LogStore<C>, StateMachineStore<C, A>)>
where
    C: CodecConfig,
    A: RaftApp<C>,
{
    let dir = dir.as_ref();
    let sm_opts = state_machine_options(&opts);
    let (log, _) = LogStore::open(dir.join(LOG_DIR), opts)?;
    let (sm, _) = StateMachineStore::open(dir.join(STATE_MACHINE_DIR), sm_opts)?;
    Ok((log, sm))
}
