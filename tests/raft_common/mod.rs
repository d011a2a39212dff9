//! Helpers shared by the Raft tests: a type configuration whose payload is a string, a
//! small application that records what it applied, and options for tiny logs.
#![allow(dead_code)]

use mmlog::raft::{Codec, RaftApp};
use mmlog::{Durability, MIN_SEGMENT_BYTES, Options};
use openraft::{EntryPayload, RaftTypeConfig};

openraft::declare_raft_types!(
    /// Payloads and responses are strings; node ids `u64`, nodes `BasicNode`.
    pub Config: D = String, R = String
);

/// The entry type of [`Config`].
pub type Entry = <Config as RaftTypeConfig>::Entry;

/// Remembers every normal payload it applied, in order; answers with the payload.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Strings(pub Vec<String>);

impl RaftApp<Config> for Strings {
    fn apply(&mut self, entry: &Entry) -> String {
        match &entry.payload {
            EntryPayload::Normal(s) => {
                self.0.push(s.clone());
                s.clone()
            }
            _ => String::new(),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        (self.0.len() as u64).encode(out);
        for s in &self.0 {
            s.encode(out);
        }
    }

    fn restore(snapshot: &[u8]) -> Result<Strings, String> {
        let mut input = mmlog::raft::Decoder::new(snapshot);
        let n = input.length().map_err(|e| e.to_string())?;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(String::decode(&mut input).map_err(|e| e.to_string())?);
        }
        input.finish().map_err(|e| e.to_string())?;
        Ok(Strings(v))
    }
}

/// The smallest segments (many rollovers and purges), no prefault, no per-append sync.
pub fn small() -> Options {
    Options {
        segment_size_bytes: MIN_SEGMENT_BYTES,
        durability: Durability::None,
        prefault: false,
        ..Options::default()
    }
}

/// Log id `(term, node 1, index)`.
pub fn log_id(
    term: u64,
    index: u64,
) -> openraft::LogId<openraft::impls::leader_id_adv::LeaderId<u64, u64>> {
    openraft::testing::log_id::<Config>(term, 1, index)
}

/// The payload of the entry at `index` written in `term`.
pub fn payload(term: u64, index: u64) -> String {
    format!("{index}:{term}")
}

/// A normal entry at `index` of `term` carrying [`payload`].
pub fn entry(term: u64, index: u64) -> Entry {
    openraft::Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(payload(term, index)),
    }
}

/// A vote for node 1 in `term`.
pub fn vote(term: u64) -> openraft::Vote<openraft::impls::leader_id_adv::LeaderId<u64, u64>> {
    openraft::Vote::new(term, 1)
}

/// Appends and waits for openraft's flush callback (the entries are durable).
pub async fn append_durably<LS: openraft::storage::RaftLogStorage<Config>>(
    log: &mut LS,
    entries: Vec<Entry>,
) {
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.expect("append");
}

/// Applies `entries` to the state machine as openraft does (no client waiting).
pub async fn apply<SM: openraft::storage::RaftStateMachine<Config>>(
    sm: &mut SM,
    entries: Vec<Entry>,
) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures_util::stream::iter(items))
        .await
        .expect("apply");
}

/// The `(index, term, payload)` of every entry the log returns for `range`.
pub async fn read_log<LS: openraft::storage::RaftLogStorage<Config>>(
    log: &mut LS,
    range: std::ops::RangeFrom<u64>,
) -> Vec<(u64, u64, String)> {
    use openraft::storage::RaftLogReader;
    let mut reader = log.get_log_reader().await;
    reader
        .try_get_log_entries(range)
        .await
        .expect("read the log")
        .into_iter()
        .map(|e| {
            let data = match e.payload {
                EntryPayload::Normal(s) => s,
                EntryPayload::Blank => "blank".into(),
                EntryPayload::Membership(_) => "membership".into(),
            };
            (e.log_id.index, e.log_id.leader_id.term, data)
        })
        .collect()
}
