//! FAULTS C20–C21 and SPEC §3 I1–I5 under simulated power cuts.
//!
//! Thousands of seeded workloads (appends of mixed sizes, batches, durable appends,
//! syncs, checkpoints, truncations, purges, clean and unclean reopens) run on the
//! simulated disk of `mmlog::testing::SimDisk`, with 16 KiB segments so that rollovers,
//! recycling and retention happen constantly. At random points the power is cut: every
//! page written since its last sync is kept, lost or torn per 512-byte sector, and only
//! a prefix of the unsynced directory changes survives. After each cut the log is
//! recovered and checked against a model of what was appended and acknowledged:
//!
//! - I1: every acknowledged record is there, byte for byte;
//! - I2/I3: what is there is a dense run of records, each exactly as appended, starting
//!   where the last purge left the log (no gap, no stale or foreign record);
//! - I4: cutting the power again right after recovery and recovering again gives the
//!   same records;
//! - I5: the workload goes on after recovery (overwriting trimmed LSNs with new
//!   payloads), so stale bytes coming back would show as wrong payloads later.
//!
//! The checkpoint recovery starts from must hold exactly the state the model wrote for
//! its LSN. Every run is reproducible from its seed; a failure prints it. Set
//! `MMLOG_SIM_SEEDS=n` for a longer run and `MMLOG_SIM_SEED=s` to rerun one seed.
//!
//! C21: the same simulation, with the engine told to skip the directory sync after
//! creating a segment or to acknowledge records of segment N+1 without flushing
//! segment N (test-only sabotage switches), must catch it.

mod common;

use std::path::{Path, PathBuf};

use common::Rng;
use common::recovered::LogModel;
use std::sync::Arc;

use mmlog::testing::{FailAction, Failpoints, Sabotage, SimDisk, Step};
use mmlog::{Durability, Lsn, Options, RecoveryReport, Wal};

/// Default number of seeds per `cargo test` run; each has several power cuts.
const SEEDS: u64 = 600;

type Model = LogModel;

fn opts(sim: &SimDisk, sabotage: Sabotage) -> Options {
    Options {
        segment_size_bytes: 16 * 1024,
        durability: Durability::None,
        prefault: false,
        env: sim.env().without_background().sabotage(sabotage),
        ..Options::default()
    }
}

/// The persistence steps a failure is injected at, to stop an open or a truncation
/// half-way.
const STEPS: [Step; 9] = [
    Step::SegmentCreate,
    Step::SegmentHeaderWrite,
    Step::SegmentSync,
    Step::SegmentRename,
    Step::SegmentSeal,
    Step::SegmentRemove,
    Step::DirSync,
    Step::Flush,
    Step::SegmentMap,
];

/// Options whose storage fails once at a random persistence step (after a random
/// number of hits of it).
fn failing_opts(sim: &SimDisk, sabotage: Sabotage, rng: &mut Rng) -> Options {
    let fp = Arc::new(Failpoints::new());
    let step = STEPS[rng.below(STEPS.len() as u64) as usize];
    fp.arm_once(step, rng.below(3), FailAction::Errno(5));
    Options {
        env: sim
            .env()
            .without_background()
            .sabotage(sabotage)
            .failpoints(fp),
        ..opts(sim, sabotage)
    }
}

/// A payload that names its seed, LSN and write generation.
fn payload(rng: &mut Rng, seed: u64, lsn: u64) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(200) as usize,
        7 | 8 => rng.below(2000) as usize,
        _ => rng.below(6000) as usize,
    };
    let tag = rng.next_u64();
    let mut v = Vec::with_capacity(len);
    let mut x = seed ^ lsn.rotate_left(17) ^ tag;
    for _ in 0..len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((x >> 56) as u8);
    }
    v
}

/// Reads the whole log back.
fn read_back(wal: &Wal) -> Result<Vec<(u64, Vec<u8>)>, String> {
    wal.iter_from(Lsn(0))
        .map_err(|e| format!("iter_from: {e}"))?
        .map(|r| {
            r.map(|r| (r.lsn().0, r.payload().to_vec()))
                .map_err(|e| format!("reading: {e}"))
        })
        .collect()
}

/// Checks the recovered log against the model after a power cut, and brings the
/// model in line with it (records past what survived are gone).
fn check_after_cut(
    wal: &Wal,
    report: &RecoveryReport,
    model: &mut Model,
) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let got = read_back(wal)?;
    model.after_cut(&got, wal, report)?;
    Ok(got)
}

/// One seeded workload with power cuts. Returns the number of cuts.
fn run(seed: u64, sabotage: Sabotage) -> Result<u64, String> {
    let sim = SimDisk::new();
    let dir = PathBuf::from("sim").join("log");
    let mut rng = Rng::new(seed);
    let mut model = Model::default();
    let mut cuts = 0u64;
    let (mut wal, _) = Wal::open(&dir, opts(&sim, sabotage)).map_err(|e| format!("create: {e}"))?;
    let ops = 40 + rng.below(80);
    let trace = std::env::var("MMLOG_SIM_TRACE").is_ok();
    for step in 0..ops {
        let at = |what: &str| format!("step {step} ({what})");
        if trace {
            eprintln!(
                "step {step}: first {} next {} acked {} ckpts {:?}",
                model.first,
                model.next,
                model.acked,
                model.checkpoints.keys().collect::<Vec<_>>()
            );
        }
        match rng.below(100) {
            0..=44 => {
                let lsn = model.next;
                let p = payload(&mut rng, seed, lsn);
                let durable = rng.chance(25);
                let d = if durable {
                    Durability::Sync
                } else {
                    Durability::None
                };
                let got = wal
                    .append_with(&p, d)
                    .map_err(|e| format!("{}: {e}", at("append")))?;
                if got.0 != lsn {
                    return Err(format!("{}: got LSN {got}, expected {lsn}", at("append")));
                }
                model.records.insert(lsn, p);
                model.next += 1;
                if durable {
                    model.acked = lsn;
                }
            }
            45..=59 => {
                let n = 1 + rng.below(5);
                let first = model.next;
                let ps: Vec<Vec<u8>> = (0..n).map(|i| payload(&mut rng, seed, first + i)).collect();
                let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
                let durable = rng.chance(25);
                let d = if durable {
                    Durability::Sync
                } else {
                    Durability::None
                };
                let got = wal.append_batch_with(&refs, d);
                match got {
                    Ok(l) if l.0 == first => {}
                    // A batch larger than a segment is refused and uses no LSN.
                    Err(mmlog::Error::RecordTooLarge { .. }) => continue,
                    other => return Err(format!("{}: {other:?}", at("batch"))),
                }
                for (i, p) in ps.into_iter().enumerate() {
                    model.records.insert(first + i as u64, p);
                }
                model.batches.insert(first, n);
                model.next += n;
                if durable {
                    model.acked = model.last();
                }
            }
            60..=67 => {
                wal.sync().map_err(|e| format!("{}: {e}", at("sync")))?;
                model.acked = model.last();
            }
            68..=72 if model.last() >= model.first => {
                let lsn = model.last();
                let newest = model.checkpoints.keys().next_back().copied().unwrap_or(0);
                if lsn >= newest {
                    let state = model.state_at(lsn);
                    if trace {
                        eprintln!("  checkpoint({lsn})");
                    }
                    wal.write_checkpoint(Lsn(lsn), &state)
                        .map_err(|e| format!("{}: {e}", at("checkpoint")))?;
                    model.checkpoints.insert(lsn, state);
                    model.acked = model.acked.max(lsn);
                    // Retention keeps two generations and purges below the older.
                    while model.checkpoints.len() > 2 {
                        let oldest = *model.checkpoints.keys().next().unwrap_or(&0);
                        model.checkpoints.remove(&oldest);
                    }
                    model.purged_to(wal.first_lsn().0);
                }
            }
            73..=77 => {
                let floor = model
                    .checkpoints
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(0)
                    .max(model.first - 1);
                if model.last() > floor {
                    let mut t = floor + rng.below(model.last() - floor);
                    while model.inside_batch(t) {
                        t += 1;
                    }
                    if trace {
                        eprintln!("  truncate_after({t})");
                    }
                    if rng.chance(15) {
                        // A truncation stopped half-way by an I/O error, then a power
                        // cut: the log is the old one or the truncated one.
                        drop(wal);
                        let fp = Arc::new(Failpoints::new());
                        let step = STEPS[rng.below(STEPS.len() as u64) as usize];
                        let mut o = opts(&sim, sabotage);
                        o.env = o.env.failpoints(Arc::clone(&fp));
                        let (w, _) = Wal::open(&dir, o)
                            .map_err(|e| format!("{}: reopen: {e}", at("truncate")))?;
                        model.acked = model.last();
                        fp.arm_once(step, rng.below(3), FailAction::Errno(5));
                        let done = w.truncate_after(Lsn(t)).is_ok();
                        if trace {
                            eprintln!(
                                "  truncate_after({t}) with a failure at {step:?}: ok {done}"
                            );
                        }
                        drop(w);
                        sim.power_cut(rng.next_u64());
                        cuts += 1;
                        if done {
                            model.truncate_after(t);
                        } else {
                            // Either state may survive: the records after `t` are no
                            // longer promised, but if they are there they are intact.
                            model.acked = model.acked.min(t);
                        }
                        let (w, r) = Wal::open(&dir, opts(&sim, sabotage))
                            .map_err(|e| format!("{}: recovery: {e}", at("truncate")))?;
                        check_after_cut(&w, &r, &mut model)
                            .map_err(|e| format!("{}: {e}\n{r}", at("interrupted truncate")))?;
                        wal = w;
                        continue;
                    }
                    wal.truncate_after(Lsn(t))
                        .map_err(|e| format!("{}: {e}", at("truncate")))?;
                    model.truncate_after(t);
                }
            }
            78..=80 => {
                let target = model.first + rng.below(model.next - model.first + 1);
                if trace {
                    eprintln!("  purge_before({target})");
                }
                let first = wal
                    .purge_before(Lsn(target))
                    .map_err(|e| format!("{}: {e}", at("purge")))?;
                model.purged_to(first.0);
                model.acked = model.acked.max(model.last());
            }
            81..=86 => {
                // A clean or unclean reopen without a power cut: the page cache keeps
                // everything, so every record appended is still there.
                let clean = rng.chance(50);
                if trace {
                    eprintln!("  reopen (clean: {clean})");
                }
                if clean {
                    wal.close().map_err(|e| format!("{}: {e}", at("close")))?;
                }
                drop(wal);
                let (w, r) = Wal::open(&dir, opts(&sim, sabotage)).map_err(|e| {
                    if trace {
                        dump(&sim, &dir);
                    }
                    format!("{}: {e}", at("reopen"))
                })?;
                wal = w;
                let got = read_back(&wal)?;
                let want: Vec<(u64, Vec<u8>)> =
                    model.records.iter().map(|(l, p)| (*l, p.clone())).collect();
                if got != want {
                    return Err(format!(
                        "{}: a reopen without a power cut changed the log ({} records, expected {}):\n{r}",
                        at("reopen"),
                        got.len(),
                        want.len()
                    ));
                }
                model.acked = model.last();
            }
            _ => {
                // Power cut.
                if trace {
                    eprintln!("  power cut; before:");
                    dump(&sim, &dir);
                }
                drop(wal);
                let cut = sim.power_cut(rng.next_u64());
                if trace {
                    eprintln!("  after the cut:");
                    dump(&sim, &dir);
                }
                cuts += 1;
                // Sometimes the first recovery is itself stopped half-way by an I/O
                // error, then the power is cut again: nothing it did may cost a record.
                if rng.chance(30) {
                    let interrupted = Wal::open(&dir, failing_opts(&sim, sabotage, &mut rng));
                    if trace {
                        eprintln!("  interrupted recovery: {:?}", interrupted.as_ref().err());
                    }
                    drop(interrupted);
                    sim.power_cut(rng.next_u64());
                    cuts += 1;
                }
                let (w, r) = Wal::open(&dir, opts(&sim, sabotage)).map_err(|e| {
                    format!("{}: recovery failed after {cut:?}: {e}", at("power cut"))
                })?;
                if trace {
                    eprintln!("  first recovery:\n{r}");
                    dump(&sim, &dir);
                }
                let got = check_after_cut(&w, &r, &mut model)
                    .map_err(|e| format!("{}: {e}\n{cut:?}\n{r}", at("power cut")))?;
                // I4: a second cut right after recovery changes nothing.
                drop(w);
                let cut2 = sim.power_cut(rng.next_u64());
                // This recovery also replays from the middle of the log during its
                // scan, which must hand out what a reader finds after it.
                let from = got.get(got.len() / 2).map_or(0, |r| r.0);
                let mut replayed = Vec::new();
                let (w, r2) = Wal::open_replay(&dir, opts(&sim, sabotage), Lsn(from), |l, p| {
                    replayed.push((l.0, p.to_vec()));
                })
                .map_err(|e| format!("{}: second recovery failed: {e}", at("power cut")))?;
                let again = read_back(&w)?;
                let tail: Vec<_> = again.iter().filter(|r| r.0 >= from).cloned().collect();
                if replayed != tail {
                    return Err(format!(
                        "{}: the open replayed {} records from {from}, a reader finds {}:\n{r2}",
                        at("power cut"),
                        replayed.len(),
                        tail.len()
                    ));
                }
                if trace {
                    eprintln!("  after recovery, a second cut and recovery:\n{r2}");
                    dump(&sim, &dir);
                }
                if again != got {
                    return Err(format!(
                        "{}: I4: recovering again after {cut2:?} gave {} records instead of {}:\n{r2}",
                        at("power cut"),
                        again.len(),
                        got.len()
                    ));
                }
                wal = w;
            }
        }
    }
    // A final cut, so every workload ends with a check.
    if trace {
        eprintln!("  final cut; before:");
        dump(&sim, &dir);
    }
    drop(wal);
    let cut = sim.power_cut(rng.next_u64());
    cuts += 1;
    let (w, r) = Wal::open(&dir, opts(&sim, sabotage))
        .map_err(|e| format!("final recovery failed after {cut:?}: {e}"))?;
    check_after_cut(&w, &r, &mut model).map_err(|e| format!("final cut: {e}\n{r}"))?;
    drop(w);
    let _ = Path::new("");
    Ok(cuts)
}

/// Prints every frame of every segment (tracing only).
fn dump(sim: &SimDisk, dir: &Path) {
    for name in sim.list(dir) {
        let Some(bytes) = sim.read_file(dir.join(&name)) else {
            continue;
        };
        eprintln!("{name}: {} bytes", bytes.len());
        if !name.ends_with(".seg") || bytes.len() < 4096 {
            continue;
        }
        for slot in [0usize, 512] {
            if let Some(h) = mmlog::testing::read_segment_header(
                &bytes[slot..slot + 64]
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, 4096))
                    .collect::<Vec<u8>>(),
            ) {
                eprintln!("  slot {slot}: {h:?}");
            }
        }
        if let Some(h) = mmlog::testing::read_segment_header(&bytes[..4096]) {
            let mut w = 4096 + 24;
            while w + 8 <= bytes.len() {
                let word = u64::from_le_bytes(bytes[w..w + 8].try_into().unwrap());
                if (word & 0xffff_ffff) as u32 == h.epoch && (1..=3).contains(&(word >> 32)) {
                    eprintln!(
                        "  epoch-{} header word at {} (header at {})",
                        h.epoch,
                        w,
                        w - 24
                    );
                }
                w += 8;
            }
        }
        let mut at = 4096usize;
        while at + 32 <= bytes.len() {
            let h = &bytes[at..at + 32];
            if h.iter().all(|b| *b == 0) {
                let rest = bytes[at..].iter().position(|b| *b != 0);
                eprintln!(
                    "  {at}: zero header; next non-zero byte at {:?}",
                    rest.map(|r| at + r)
                );
                break;
            }
            let len = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
            let lsn = u64::from_le_bytes(h[8..16].try_into().unwrap());
            let hint = u64::from_le_bytes(h[16..24].try_into().unwrap());
            let epoch = u32::from_le_bytes(h[24..28].try_into().unwrap());
            eprintln!(
                "  {at}: lsn {lsn} len {len} hint {hint} epoch {epoch} kind {}",
                h[28]
            );
            at += (32 + len).next_multiple_of(8);
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("MMLOG_SIM_SEED") {
        return vec![s.parse().expect("MMLOG_SIM_SEED must be a number")];
    }
    let n = std::env::var("MMLOG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    (0..n).collect()
}

#[test]
fn thousands_of_power_cuts_keep_i1_to_i5() {
    let mut cuts = 0;
    for seed in seeds() {
        match run(seed, Sabotage::default()) {
            Ok(n) => cuts += n,
            Err(e) => panic!(
                "seed {seed}: {e}\nreproduce with: MMLOG_SIM_SEED={seed} cargo test --test sim_power_cut"
            ),
        }
    }
    if std::env::var("MMLOG_SIM_SEED").is_err() {
        assert!(cuts >= 2000, "only {cuts} power cuts were simulated");
    }
    println!("{cuts} power cuts, all recovered correctly");
}

/// `report` text without the durations it quotes (the only part of a run that is not
/// a function of its seed).
fn without_timings(report: &str) -> String {
    let mut out = String::new();
    let mut rest = report;
    while let Some(i) = rest.find(" in ") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = &tail[4..];
        let end = after.find([';', '\n']).unwrap_or(after.len());
        if after[..end].ends_with('s') && after.starts_with(|c: char| c.is_ascii_digit()) {
            rest = &after[end..];
        } else {
            out.push_str(" in ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Runs seeds with a sabotage until one fails; the simulation must catch it, and the
/// failing seed must fail the same way when it is run again (C20: a failure printed
/// with its seed reproduces exactly).
fn catches(sabotage: Sabotage, max_seeds: u64) -> (u64, String) {
    for seed in 0..max_seeds {
        if let Err(e) = run(seed, sabotage) {
            let again = run(seed, sabotage);
            assert!(
                again.as_ref().err().map(|a| without_timings(a)) == Some(without_timings(&e)),
                "seed {seed} did not reproduce: first {e}, then {again:?}"
            );
            return (seed, e);
        }
    }
    panic!("{max_seeds} seeds did not catch {sabotage:?}");
}

#[test]
fn c21_a_missing_directory_sync_after_creating_a_segment_is_caught() {
    let (seed, e) = catches(
        Sabotage {
            skip_segment_dir_sync: true,
            ..Sabotage::default()
        },
        400,
    );
    println!("caught at seed {seed}: {e}");
}

#[test]
fn c21_acknowledging_in_segment_n_plus_1_before_n_is_flushed_is_caught() {
    let (seed, e) = catches(
        Sabotage {
            flush_only_newest_segment: true,
            ..Sabotage::default()
        },
        400,
    );
    println!("caught at seed {seed}: {e}");
}

/// Group commit under a power cut: twelve threads append at once on the simulated disk,
/// three appends in four durable, so that writers wait for each other's flushes and
/// a second flush can start beside a running one (DESIGN §4.4), with 16 KiB segments so
/// that flushes span rollovers. The writers stop, the log is dropped without a close (a
/// crash) and the power is cut: every record a writer saw acknowledged as durable must
/// come back byte for byte, under the LSN it was given.
#[test]
fn durable_records_of_many_concurrent_writers_survive_a_power_cut() {
    const WRITERS: u64 = 12;
    const PER_WRITER: u64 = 60;
    for seed in 0..6u64 {
        let sim = SimDisk::new();
        let dir = PathBuf::from("sim").join("log");
        let (wal, _) = Wal::open(&dir, opts(&sim, Sabotage::default())).expect("create");
        let acked: Vec<Vec<(u64, Vec<u8>)>> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|tid| {
                    let wal = &wal;
                    s.spawn(move || {
                        let mut rng = Rng::new(seed * 1000 + tid);
                        let mut acked = Vec::new();
                        for i in 0..PER_WRITER {
                            let p = payload(&mut rng, seed, (tid << 32) | i);
                            let durable = rng.below(4) != 0;
                            let d = if durable {
                                Durability::Sync
                            } else {
                                Durability::None
                            };
                            let lsn = wal.append_with(&p, d).expect("append");
                            if durable {
                                acked.push((lsn.0, p));
                            }
                        }
                        acked
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|w| w.join().expect("writer thread"))
                .collect()
        });
        drop(wal);
        sim.power_cut(seed);
        let (wal, report) = Wal::open(&dir, opts(&sim, Sabotage::default()))
            .unwrap_or_else(|e| panic!("seed {seed}: recovery: {e}"));
        let got: std::collections::BTreeMap<u64, Vec<u8>> = read_back(&wal)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
            .into_iter()
            .collect();
        let mut checked = 0;
        for (tid, records) in acked.iter().enumerate() {
            for (lsn, p) in records {
                assert!(
                    got.get(lsn) == Some(p),
                    "seed {seed}: writer {tid}'s durable record {lsn} ({} B) did not come \
                     back intact ({} records recovered)\n{report}",
                    p.len(),
                    got.len()
                );
                checked += 1;
            }
        }
        assert!(
            checked > WRITERS * PER_WRITER / 2,
            "seed {seed}: {checked} durable"
        );
        wal.close().expect("close");
    }
}
