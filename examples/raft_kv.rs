//! A replicated key-value store: three openraft nodes in one process, talking over an
//! in-process network (each RPC is a direct call on the target node's `Raft` handle),
//! each persisting its log, vote and snapshots through mmlog in its own directory.
//!
//! It writes through the leader, kills a follower (shuts its Raft down and drops its
//! storage without closing it: a crash as far as the disk is concerned), keeps writing
//! with the two nodes left, compacts the leader's log into a snapshot, restarts the
//! killed node from its directory and shows it catching up.
//!
//! ```sh
//! cargo run --example raft_kv --features raft
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mmlog::raft::{Codec, DecodeError, Decoder, LogStore, RaftApp, StateMachineStore};
use mmlog::{Durability, Options};
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{
    BasicNode, Config, EntryPayload, Raft, RaftNetworkFactory, RaftNetworkV2, RaftTypeConfig,
};

openraft::declare_raft_types!(
    /// Node ids are `u64`, nodes `BasicNode`; the log carries [`Request`]s.
    pub Kv: D = Request, R = Response
);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A write: set `key` to `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    key: String,
    value: String,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "set {}={}", self.key, self.value)
    }
}

impl Codec for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        self.key.encode(out);
        self.value.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Request, DecodeError> {
        Ok(Request {
            key: String::decode(input)?,
            value: String::decode(input)?,
        })
    }
}

/// The value a write replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response(Option<String>);

/// The replicated state: an ordered map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct KvApp(BTreeMap<String, String>);

impl RaftApp<Kv> for KvApp {
    fn apply(&mut self, entry: &<Kv as RaftTypeConfig>::Entry) -> Response {
        match &entry.payload {
            EntryPayload::Normal(r) => Response(self.0.insert(r.key.clone(), r.value.clone())),
            _ => Response(None),
        }
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn restore(snapshot: &[u8]) -> Result<KvApp, String> {
        mmlog::raft::decode_exact(snapshot)
            .map(KvApp)
            .map_err(|e| e.to_string())
    }
}

type Sm = StateMachineStore<Kv, KvApp>;
type Node = Raft<Kv, Sm>;

// ----- the in-process network --------------------------------------------------------

/// The nodes that are up, by id. A node that is down is simply absent: RPCs to it fail
/// as unreachable.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<BTreeMap<u64, Node>>>);

impl Router {
    fn get(&self, id: u64) -> Option<Node> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }
    fn set(&self, id: u64, node: Option<Node>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match node {
            Some(n) => map.insert(id, n),
            None => map.remove(&id),
        };
    }
}

/// A client of one target node.
struct Client {
    target: u64,
    router: Router,
}

impl Client {
    fn node(&self) -> Result<Node, Unreachable<Kv>> {
        self.router
            .get(self.target)
            .ok_or_else(|| Unreachable::from_string(format!("node {} is down", self.target)))
    }
}

impl RaftNetworkFactory<Kv> for Router {
    type Network = Client;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Client {
        Client {
            target,
            router: self.clone(),
        }
    }
}

impl RaftNetworkV2<Kv> for Client {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Kv>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Kv>, RPCError<Kv>> {
        let node = self.node()?;
        node.append_entries(rpc)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Kv>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Kv>, RPCError<Kv>> {
        let node = self.node()?;
        node.vote(rpc)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Kv>,
        snapshot: SnapshotOf<Kv, Vec<u8>>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<Kv>, StreamingError<Kv>> {
        let node = self.node()?;
        node.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }
}

// ----- nodes -------------------------------------------------------------------------

/// A running node and the storage handles it was started with.
struct Running {
    id: u64,
    raft: Node,
    log: LogStore<Kv>,
    sm: Sm,
}

fn storage_options() -> Options {
    Options {
        segment_size_bytes: 1024 * 1024,
        durability: Durability::None,
        prefault: false,
        ..Options::default()
    }
}

/// Opens node `id`'s storage in `dir` (saying what it recovered) and starts its Raft.
async fn start(
    id: u64,
    dir: &Path,
    router: &Router,
    config: &Arc<Config>,
) -> Result<Running, Error> {
    let (mut log, mut sm) = mmlog::raft::open::<Kv, KvApp>(dir, storage_options())?;
    let state = log.get_log_state().await?;
    let vote = {
        use openraft::storage::RaftLogReader;
        log.get_log_reader().await.read_vote().await?
    };
    let committed = log.read_committed().await?;
    let snapshot = sm
        .get_current_snapshot()
        .await?
        .and_then(|s| s.meta.last_log_id);
    let entries = match (&state.last_purged_log_id, &state.last_log_id) {
        (_, None) => "empty".to_string(),
        (purged, Some(last)) if purged.as_ref() == Some(last) => "empty".to_string(),
        (purged, Some(last)) => format!(
            "entries {}..={}",
            purged.as_ref().map_or(0, |p| p.index + 1),
            last.index
        ),
    };
    println!(
        "node {id}: opened {}: vote {}, log {entries}, committed {}, snapshot {}",
        dir.display(),
        show(&vote),
        show(&committed.map(|l| l.index)),
        show(&snapshot.map(|l| l.index)),
    );
    let raft = Raft::new(
        id,
        Arc::clone(config),
        router.clone(),
        log.clone(),
        sm.clone(),
    )
    .await?;
    if committed.is_some() {
        println!(
            "node {id}: openraft re-applied its committed entries: state machine at {}, {} keys",
            show(&sm.last_applied().map(|l| l.index)),
            sm.read(|a| a.0.len())
        );
    }
    router.set(id, Some(raft.clone()));
    Ok(Running { id, raft, log, sm })
}

fn show<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_string(), T::to_string)
}

/// Waits (up to 10 s) for `raft`'s metrics to satisfy `want`.
async fn wait_for(
    raft: &Node,
    what: &str,
    want: impl Fn(&openraft::RaftMetrics<Kv>) -> bool + Send,
) -> Result<openraft::RaftMetrics<Kv>, Error> {
    Ok(raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(want, what)
        .await?)
}

async fn write(leader: &Node, key: &str, value: &str) -> Result<u64, Error> {
    let r = leader
        .client_write(Request {
            key: key.into(),
            value: value.into(),
        })
        .await?;
    Ok(r.log_id().index)
}

fn main() -> Result<(), Error> {
    Kv::run(run())
}

async fn run() -> Result<(), Error> {
    let base = tempfile::tempdir()?;
    let dirs: BTreeMap<u64, PathBuf> = (1..=3)
        .map(|id| (id, base.path().join(format!("node{id}"))))
        .collect();
    let config = Arc::new(
        Config {
            cluster_name: "mmlog-kv".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            // Snapshots on demand, and no log kept behind them: a node that missed the
            // compacted part must catch up from the snapshot.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            ..Config::default()
        }
        .validate()?,
    );
    let router = Router::default();

    println!("== start three nodes, each on its own mmlog directory");
    let mut nodes = BTreeMap::new();
    for (&id, dir) in &dirs {
        nodes.insert(id, start(id, dir, &router, &config).await?);
    }
    let members: BTreeMap<u64, BasicNode> = dirs
        .keys()
        .map(|&id| (id, BasicNode::new(format!("in-process:{id}"))))
        .collect();
    nodes[&1].raft.initialize(members).await?;
    let m = wait_for(&nodes[&1].raft, "a leader", |m| m.current_leader.is_some()).await?;
    let leader_id = m.current_leader.ok_or("no leader")?;
    // Ready to serve once a quorum acknowledged it and its first entry is applied.
    let m = wait_for(&nodes[&leader_id].raft, "a serving leader", |m| {
        m.state == openraft::ServerState::Leader
            && m.last_quorum_acked.is_some()
            && m.last_applied.map(|l| l.index) == m.last_log_index
    })
    .await?;
    println!("leader elected: node {leader_id} (term {})", m.current_term);

    println!("\n== write through the leader");
    let leader = nodes[&leader_id].raft.clone();
    let mut last = 0;
    for i in 1..=5 {
        last = write(&leader, &format!("k{i}"), &format!("v{i}")).await?;
        println!("set k{i}=v{i} committed at log index {last}");
    }
    for n in nodes.values() {
        wait_for(&n.raft, "applied", |m| {
            m.last_applied.is_some_and(|l| l.index >= last)
        })
        .await?;
        println!(
            "node {}: applied up to {last}, state {:?}",
            n.id,
            n.sm.read(|a| a.0.clone())
        );
    }

    let victim = *dirs
        .keys()
        .find(|&&id| id != leader_id)
        .ok_or("no follower")?;
    println!("\n== kill node {victim}: shut its Raft down, drop its storage without closing it");
    let dead = nodes.remove(&victim).ok_or("no such node")?;
    router.set(victim, None);
    dead.raft.shutdown().await?;
    drop(dead);

    println!("\n== keep serving with two of three nodes");
    for i in 6..=30 {
        last = write(&leader, &format!("k{i}"), &format!("v{i}")).await?;
    }
    println!("set k6..k30: committed up to log index {last} without node {victim}");
    let prev = write(&leader, "k1", "changed").await?;
    last = prev;
    println!("set k1=changed at log index {last}");
    leader.trigger().snapshot().await?;
    let m = wait_for(&leader, "snapshot", |m| {
        m.snapshot.is_some_and(|s| s.index >= last)
    })
    .await?;
    println!(
        "leader built a snapshot (an mmlog checkpoint) up to index {}",
        show(&m.snapshot.map(|s| s.index))
    );
    leader.trigger().purge_log(last).await?;
    let m = wait_for(&leader, "purge", |m| {
        m.purged.is_some_and(|p| p.index >= last)
    })
    .await?;
    println!(
        "leader purged its log up to index {}: node {victim} can only catch up from the snapshot",
        show(&m.purged.map(|p| p.index))
    );
    last = write(&leader, "k31", "v31").await?;
    println!("set k31=v31 at log index {last}");

    println!("\n== restart node {victim} from its directory");
    let back = start(victim, &dirs[&victim], &router, &config).await?;
    let m = wait_for(&back.raft, "caught up", |m| {
        m.last_applied.is_some_and(|l| l.index >= last)
    })
    .await?;
    println!(
        "node {victim}: caught up: applied up to {}, snapshot {} (installed from the leader), \
         log {}..={}",
        show(&m.last_applied.map(|l| l.index)),
        show(&m.snapshot.map(|l| l.index)),
        show(&m.purged.map(|l| l.index + 1)),
        show(&m.last_log_index),
    );
    nodes.insert(victim, back);
    let states: Vec<(u64, KvApp)> = nodes
        .values()
        .map(|n| (n.id, n.sm.read(|a| a.clone())))
        .collect();
    for (id, s) in &states {
        println!(
            "node {id}: {} keys, k1={}, k31={}",
            s.0.len(),
            show(&s.0.get("k1")),
            show(&s.0.get("k31"))
        );
    }
    let all_equal = states.windows(2).all(|w| w[0].1 == w[1].1);
    println!("all three states identical: {all_equal}");

    println!("\n== shut down and close the storage cleanly");
    for n in nodes.values() {
        n.raft.shutdown().await?;
    }
    for n in nodes.into_values() {
        n.log.close()?;
        n.sm.close()?;
    }
    if !all_equal {
        return Err("the replicas diverged".into());
    }
    println!("done");
    Ok(())
}
