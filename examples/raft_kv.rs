//! A replicated key-value store: three openraft nodes on the loopback interface, each
//! serving Raft's RPCs over TCP on its own `127.0.0.1` port (chosen by the system) and
//! persisting its log, vote and snapshots through mmlog in its own directory. The RPCs
//! are encoded with `mmlog::raft::Codec`, the encoding the log itself uses.
//!
//! It writes through the leader, kills a follower (shuts its Raft down, closes its port
//! and drops its storage without closing it: a crash as far as the disk is concerned),
//! keeps writing with the two nodes left, compacts the leader's log into a snapshot,
//! restarts the killed node from its directory on the same port and shows it catching
//! up: first from its own mmlog log, then from the leader's snapshot.
//!
//! ```sh
//! cargo run --example raft_kv --features raft
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mmlog::raft::{Codec, DecodeError, Decoder, LogStore, RaftApp, StateMachineStore, put_varint};
use mmlog::{Durability, Options};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{JoinHandleOf, SnapshotOf, VoteOf};
use openraft::{
    BasicNode, Config, EntryPayload, Raft, RaftNetworkFactory, RaftNetworkV2, RaftTypeConfig,
};

openraft::declare_raft_types!(
    /// Node ids are `u64`, nodes `BasicNode` (their address); the log carries [`Request`]s.
    pub Kv: D = Request, R = Response
);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long the demo waits for any one thing to happen before it gives up.
const DEADLINE: Duration = Duration::from_secs(10);

// ----- the application ---------------------------------------------------------------

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

// ----- messages on the wire ----------------------------------------------------------
//
// One RPC per connection. Request: [kind: u8] [length: u32 LE] [message]. Response:
// [status: u8, 0 = ok, 1 = the remote Raft refused] [length: u32 LE] [message, or the
// refusal as UTF-8]. Messages are built from the parts' `Codec` encodings.

const RPC_APPEND: u8 = 1;
const RPC_VOTE: u8 = 2;
const RPC_PRE_VOTE: u8 = 3;
const RPC_SNAPSHOT: u8 = 4;
const STATUS_OK: u8 = 0;
const STATUS_REFUSED: u8 = 1;
/// A frame longer than this is refused before anything is allocated for it.
const MAX_FRAME_BYTES: usize = 64 << 20;

/// A message's encoding (a local trait: the messages are openraft's types).
trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError>;
}

impl Wire for VoteRequest<Kv> {
    fn put(&self, out: &mut Vec<u8>) {
        self.vote.encode(out);
        self.last_log_id.encode(out);
        self.leadership_transfer.encode(out);
    }
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let mut req = VoteRequest::new(Codec::decode(input)?, Codec::decode(input)?);
        req.leadership_transfer = bool::decode(input)?;
        Ok(req)
    }
}

impl Wire for VoteResponse<Kv> {
    fn put(&self, out: &mut Vec<u8>) {
        self.vote.encode(out);
        self.vote_granted.encode(out);
        self.last_log_id.encode(out);
    }
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let vote: VoteOf<Kv> = Codec::decode(input)?;
        let granted = bool::decode(input)?;
        Ok(VoteResponse::new(vote, Codec::decode(input)?, granted))
    }
}

impl Wire for AppendEntriesRequest<Kv> {
    fn put(&self, out: &mut Vec<u8>) {
        self.vote.encode(out);
        self.prev_log_id.encode(out);
        put_varint(out, self.entries.len() as u64);
        for entry in &self.entries {
            entry.encode(out);
        }
        self.leader_commit.encode(out);
    }
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let vote = Codec::decode(input)?;
        let prev_log_id = Codec::decode(input)?;
        // Bounded by the bytes left: every entry takes at least one.
        let count = input.length()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            entries.push(Codec::decode(input)?);
        }
        Ok(AppendEntriesRequest {
            vote,
            prev_log_id,
            entries,
            leader_commit: Codec::decode(input)?,
        })
    }
}

impl Wire for AppendEntriesResponse<Kv> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            AppendEntriesResponse::Success => out.push(0),
            AppendEntriesResponse::PartialSuccess(upto) => {
                out.push(1);
                upto.encode(out);
            }
            AppendEntriesResponse::Conflict => out.push(2),
            AppendEntriesResponse::HigherVote(vote) => {
                out.push(3);
                vote.encode(out);
            }
        }
    }
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match input.byte()? {
            0 => Ok(AppendEntriesResponse::Success),
            1 => Ok(AppendEntriesResponse::PartialSuccess(Codec::decode(input)?)),
            2 => Ok(AppendEntriesResponse::Conflict),
            3 => Ok(AppendEntriesResponse::HigherVote(Codec::decode(input)?)),
            tag => Err(input.error(format!("append-entries response tag {tag}"))),
        }
    }
}

/// A whole snapshot and the vote of the leader sending it.
struct FullSnapshot {
    vote: VoteOf<Kv>,
    snapshot: SnapshotOf<Kv, Vec<u8>>,
}

impl Wire for FullSnapshot {
    fn put(&self, out: &mut Vec<u8>) {
        self.vote.encode(out);
        self.snapshot.meta.encode(out);
        self.snapshot.snapshot.encode(out);
    }
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(FullSnapshot {
            vote: Codec::decode(input)?,
            snapshot: Snapshot {
                meta: Codec::decode(input)?,
                snapshot: Codec::decode(input)?,
            },
        })
    }
}

impl Wire for SnapshotResponse<Kv> {
    fn put(&self, out: &mut Vec<u8>) {
        self.vote.encode(out);
    }
    fn get(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(SnapshotResponse::new(Codec::decode(input)?))
    }
}

fn to_bytes(message: &impl Wire) -> Vec<u8> {
    let mut out = Vec::new();
    message.put(&mut out);
    out
}

fn from_bytes<T: Wire>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut input = Decoder::new(bytes);
    let message = T::get(&mut input)?;
    input.finish()?;
    Ok(message)
}

fn write_frame(stream: &mut TcpStream, tag: u8, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(tag);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

fn read_frame(stream: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head)?;
    let [tag, len @ ..] = head;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body)?;
    Ok((tag, body))
}

// ----- the server: one per node --------------------------------------------------------

/// A node's RPC server: accepts connections on its port and hands each request to the
/// node's Raft. Blocking socket calls run on `spawn_blocking` threads, never on the
/// runtime's workers.
struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accepting: JoinHandleOf<Kv, ()>,
}

impl Server {
    fn start(id: u64, listener: TcpListener, raft: Node) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let accepting = Kv::spawn(accept_loop(
            id,
            Arc::new(listener),
            raft,
            Arc::clone(&stopping),
        ));
        Ok(Server {
            addr,
            stopping,
            accepting,
        })
    }

    /// Stops accepting and closes the port (connections refused from then on).
    async fn stop(self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocked `accept` with a connection of our own.
        let addr = self.addr;
        let _ = Kv::spawn_blocking(move || TcpStream::connect(addr)).await;
        let _ = self.accepting.await;
    }
}

async fn accept_loop(id: u64, listener: Arc<TcpListener>, raft: Node, stopping: Arc<AtomicBool>) {
    loop {
        let l = Arc::clone(&listener);
        let accepted = Kv::spawn_blocking(move || l.accept()).await;
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok(Ok((stream, _))) => {
                Kv::spawn(serve_one(stream, raft.clone()));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Ok(Err(e)) => {
                eprintln!("node {id}: accept failed, no longer serving: {e}");
                return;
            }
            Err(e) => {
                eprintln!("node {id}: accept thread lost: {e}");
                return;
            }
        }
    }
}

/// Reads one request, has the Raft answer it, writes the answer.
async fn serve_one(mut stream: TcpStream, raft: Node) {
    let read = Kv::spawn_blocking(move || {
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_nodelay(true)?;
        let request = read_frame(&mut stream)?;
        Ok::<_, io::Error>((stream, request))
    })
    .await;
    let Ok(Ok((mut stream, (kind, body)))) = read else {
        return;
    };
    let (status, reply) = match answer(&raft, kind, &body).await {
        Ok(reply) => (STATUS_OK, reply),
        Err(refusal) => (STATUS_REFUSED, refusal.into_bytes()),
    };
    let _ = Kv::spawn_blocking(move || write_frame(&mut stream, status, &reply)).await;
}

async fn answer(raft: &Node, kind: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    let text = |e: &dyn fmt::Display| e.to_string();
    match kind {
        RPC_APPEND => {
            let req = from_bytes(body).map_err(|e| text(&e))?;
            let resp = raft.append_entries(req).await.map_err(|e| text(&e))?;
            Ok(to_bytes(&resp))
        }
        RPC_VOTE => {
            let req = from_bytes(body).map_err(|e| text(&e))?;
            let resp = raft.vote(req).await.map_err(|e| text(&e))?;
            Ok(to_bytes(&resp))
        }
        RPC_PRE_VOTE => {
            let req = from_bytes(body).map_err(|e| text(&e))?;
            let resp = raft.pre_vote(req).await.map_err(|e| text(&e))?;
            Ok(to_bytes(&resp))
        }
        RPC_SNAPSHOT => {
            let full: FullSnapshot = from_bytes(body).map_err(|e| text(&e))?;
            let resp = raft
                .install_full_snapshot(full.vote, full.snapshot)
                .await
                .map_err(|e| text(&e))?;
            Ok(to_bytes(&resp))
        }
        other => Err(format!("unknown RPC kind {other}")),
    }
}

// ----- the client: openraft's network --------------------------------------------------

/// Creates a [`Peer`] per target, from the address in its membership entry.
#[derive(Clone, Default)]
struct Network;

impl RaftNetworkFactory<Kv> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
        }
    }
}

/// The connection to one target node (a new TCP connection per RPC).
struct Peer {
    target: u64,
    addr: String,
}

impl Peer {
    /// Sends `request` as an RPC of `kind` and decodes the answer. A node that cannot be
    /// reached, or whose Raft refuses (it is shutting down, say), is `Unreachable`:
    /// openraft backs off before trying again. An undecodable answer is a network error.
    async fn call<Req: Wire, Resp: Wire>(
        &self,
        kind: u8,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<Kv>> {
        let body = to_bytes(request);
        let addr = self.addr.clone();
        let ttl = option.hard_ttl();
        let reply = Kv::spawn_blocking(move || round_trip(&addr, kind, &body, ttl))
            .await
            .and_then(|r| r)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        match reply {
            (STATUS_OK, bytes) => from_bytes(&bytes).map_err(|e| {
                RPCError::Network(NetworkError::from_string(format!(
                    "answer of node {}: {e}",
                    self.target
                )))
            }),
            (_, refusal) => Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "node {} refused: {}",
                self.target,
                String::from_utf8_lossy(&refusal)
            )))),
        }
    }
}

fn round_trip(addr: &str, kind: u8, body: &[u8], ttl: Duration) -> io::Result<(u8, Vec<u8>)> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stream = TcpStream::connect_timeout(&addr, ttl)?;
    stream.set_read_timeout(Some(ttl))?;
    stream.set_write_timeout(Some(ttl))?;
    stream.set_nodelay(true)?;
    write_frame(&mut stream, kind, body)?;
    read_frame(&mut stream)
}

impl RaftNetworkV2<Kv> for Peer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Kv>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Kv>, RPCError<Kv>> {
        self.call(RPC_APPEND, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Kv>,
        option: RPCOption,
    ) -> Result<VoteResponse<Kv>, RPCError<Kv>> {
        self.call(RPC_VOTE, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<Kv>,
        option: RPCOption,
    ) -> Result<VoteResponse<Kv>, RPCError<Kv>> {
        self.call(RPC_PRE_VOTE, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Kv>,
        snapshot: SnapshotOf<Kv, Vec<u8>>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<Kv>, StreamingError<Kv>> {
        let full = FullSnapshot { vote, snapshot };
        match self.call(RPC_SNAPSHOT, &full, &option).await {
            Ok(resp) => Ok(resp),
            Err(RPCError::Network(e)) => Err(StreamingError::Network(e)),
            Err(e) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
        }
    }
}

// ----- nodes -------------------------------------------------------------------------

/// A running node and the storage handles it was started with.
struct Running {
    id: u64,
    raft: Node,
    log: LogStore<Kv>,
    sm: Sm,
    server: Server,
}

fn storage_options() -> Options {
    Options {
        segment_size_bytes: 1024 * 1024,
        durability: Durability::None,
        prefault: false,
        ..Options::default()
    }
}

/// Binds `addr`; a port just closed by a killed node may take a moment to be free again.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match TcpListener::bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                Kv::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Opens node `id`'s storage in `dir` (saying what it recovered), starts its Raft and
/// serves it on `listener`.
async fn start(
    id: u64,
    dir: &Path,
    listener: TcpListener,
    config: &Arc<Config>,
) -> Result<Running, Error> {
    let (mut log, mut sm) = mmlog::raft::open::<Kv, KvApp>(dir, storage_options())?;
    let state = log.get_log_state().await?;
    let vote = log.get_log_reader().await.read_vote().await?;
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
    let raft = Raft::new(id, Arc::clone(config), Network, log.clone(), sm.clone()).await?;
    if committed.is_some() {
        println!(
            "node {id}: openraft re-applied its committed entries: state machine at {}, {} keys",
            show(&sm.last_applied().map(|l| l.index)),
            sm.read(|a| a.0.len())
        );
    }
    let server = Server::start(id, listener, raft.clone())?;
    println!("node {id}: serving Raft on {}", server.addr);
    Ok(Running {
        id,
        raft,
        log,
        sm,
        server,
    })
}

fn show<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_string(), T::to_string)
}

/// Waits (up to [`DEADLINE`]) for `raft`'s metrics to satisfy `want`.
async fn wait_for(
    raft: &Node,
    what: &str,
    want: impl Fn(&openraft::RaftMetrics<Kv>) -> bool + Send,
) -> Result<openraft::RaftMetrics<Kv>, Error> {
    Ok(raft.wait(Some(DEADLINE)).metrics(want, what).await?)
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

fn node(nodes: &BTreeMap<u64, Running>, id: u64) -> Result<&Running, Error> {
    nodes
        .get(&id)
        .ok_or_else(|| format!("node {id} is not running").into())
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

    println!("== start three nodes on 127.0.0.1, each on its own mmlog directory");
    let mut nodes = BTreeMap::new();
    for (&id, dir) in &dirs {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        nodes.insert(id, start(id, dir, listener, &config).await?);
    }
    let members: BTreeMap<u64, BasicNode> = nodes
        .values()
        .map(|n| (n.id, BasicNode::new(n.server.addr.to_string())))
        .collect();
    node(&nodes, 1)?.raft.initialize(members).await?;
    let m = wait_for(&node(&nodes, 1)?.raft, "a leader", |m| {
        m.current_leader.is_some()
    })
    .await?;
    let leader_id = m.current_leader.ok_or("no leader")?;
    let leader = node(&nodes, leader_id)?.raft.clone();
    // Ready to serve once a quorum acknowledged it and its first entry is applied.
    let m = wait_for(&leader, "a serving leader", |m| {
        m.state == openraft::ServerState::Leader
            && m.last_quorum_acked.is_some()
            && m.last_applied.map(|l| l.index) == m.last_log_index
    })
    .await?;
    println!("leader elected: node {leader_id} (term {})", m.current_term);

    println!("\n== write through the leader");
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
    println!(
        "\n== kill node {victim}: shut its Raft down, close its port, drop its storage \
         without closing it"
    );
    let dead = nodes.remove(&victim).ok_or("no such node")?;
    let victim_addr = dead.server.addr;
    dead.raft.shutdown().await?;
    dead.server.stop().await;
    drop((dead.raft, dead.log, dead.sm));

    println!("\n== keep serving with two of three nodes");
    for i in 6..=30 {
        last = write(&leader, &format!("k{i}"), &format!("v{i}")).await?;
    }
    println!("set k6..k30: committed up to log index {last} without node {victim}");
    last = write(&leader, "k1", "changed").await?;
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

    println!("\n== restart node {victim} from its directory, on the same port");
    let dir = dirs.get(&victim).ok_or("no directory")?;
    let back = start(victim, dir, bind(victim_addr).await?, &config).await?;
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

    println!("\n== shut down, close the ports and the storage cleanly");
    for n in nodes.values() {
        n.raft.shutdown().await?;
    }
    for n in nodes.into_values() {
        n.server.stop().await;
        n.log.close()?;
        n.sm.close()?;
    }
    if !all_equal {
        return Err("the replicas diverged".into());
    }
    println!("done");
    Ok(())
}
