//! `ops_model`: a sequence of operations (appends and batches with either durability,
//! syncs, checkpoints, truncations, purges, resets, metadata writes, power cuts and
//! clean or unclean reopens) run against the engine with 16 KiB segments on the
//! simulated disk and against an in-memory model, the fuzzer-driven sibling of
//! `tests/sim_power_cut.rs` (whose checks are carried over here). After every power cut
//! the recovered log must hold a dense run of records starting where the last purge
//! or reset left it, each exactly as appended, at least up to the last acknowledged
//! one (I1–I3); the checkpoint it starts from must hold the state the model wrote; the
//! metadata must be what was last set; cutting the power again right after recovery
//! changes nothing (I4). A reopen without a power cut keeps every record. The work goes
//! on after recovery, reusing trimmed LSNs with new payloads (I5).

use std::collections::BTreeMap;
use std::path::Path;

use mmlog::testing::SimDisk;
use mmlog::{Durability, Error, Lsn, Options, RecoveryReport, Wal};

use super::oracle::{self, MODES, Records};
use super::recovered::LogModel;
use super::wire::{self, Reader, Writer};

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `len` is scaled: below 0xf000 it is `len % 6001`; from 0xf000 up it lands near
    /// and past the largest payload.
    Append {
        len: u16,
        durable: bool,
    },
    /// `1 + count % 4` records with the first `1 + count % 4` of `lens` (each `% 3001`).
    Batch {
        lens: [u16; 4],
        count: u8,
        durable: bool,
    },
    Sync,
    /// At the last LSN, if it is not older than the newest checkpoint.
    Checkpoint,
    /// Truncate to `back % n` records below the last, above the newest checkpoint.
    Truncate {
        back: u16,
    },
    /// Purge before `first + fwd % (records + 1)`.
    Purge {
        fwd: u16,
    },
    /// Reset to `next + delta` (as i8; at least 1); refused while checkpoints exist.
    Reset {
        delta: u8,
    },
    /// Set key `k{key % 4}` to `len` bytes, or remove it when `len` is 255.
    SetMeta {
        key: u8,
        len: u8,
    },
    /// Drop the log, cut the power, recover, check; cut again, recover, compare.
    Crash {
        seed: u64,
    },
    /// Close (when `clean`) or drop, reopen, compare.
    Reopen {
        clean: bool,
    },
}

/// Number of operation kinds (the tag byte is taken modulo this).
const KINDS: u8 = 10;

impl Op {
    fn decode(r: &mut Reader) -> Op {
        match r.u8() % KINDS {
            0 => Op::Append {
                len: r.u16(),
                durable: r.bool(),
            },
            1 => Op::Batch {
                lens: [r.u16(), r.u16(), r.u16(), r.u16()],
                count: r.u8(),
                durable: r.bool(),
            },
            2 => Op::Sync,
            3 => Op::Checkpoint,
            4 => Op::Truncate { back: r.u16() },
            5 => Op::Purge { fwd: r.u16() },
            6 => Op::Reset { delta: r.u8() },
            7 => Op::SetMeta {
                key: r.u8(),
                len: r.u8(),
            },
            8 => Op::Crash { seed: r.u64() },
            _ => Op::Reopen { clean: r.bool() },
        }
    }

    fn encode(&self, w: &mut Writer) {
        match *self {
            Op::Append { len, durable } => {
                w.u8(0).u16(len).bool(durable);
            }
            Op::Batch {
                lens,
                count,
                durable,
            } => {
                w.u8(1);
                for l in lens {
                    w.u16(l);
                }
                w.u8(count).bool(durable);
            }
            Op::Sync => {
                w.u8(2);
            }
            Op::Checkpoint => {
                w.u8(3);
            }
            Op::Truncate { back } => {
                w.u8(4).u16(back);
            }
            Op::Purge { fwd } => {
                w.u8(5).u16(fwd);
            }
            Op::Reset { delta } => {
                w.u8(6).u8(delta);
            }
            Op::SetMeta { key, len } => {
                w.u8(7).u8(key).u8(len);
            }
            Op::Crash { seed } => {
                w.u8(8).u64(seed);
            }
            Op::Reopen { clean } => {
                w.u8(9).bool(clean);
            }
        }
    }
}

/// At most this many operations per input, so one input stays fast.
pub const MAX_OPS: usize = 96;

/// Decodes operations until the input ends.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut r = Reader::new(data);
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < MAX_OPS {
        ops.push(Op::decode(&mut r));
    }
    ops
}

/// The inverse of [`decode`].
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    for op in ops {
        op.encode(&mut w);
    }
    w.out
}

/// What the log must hold (the shared [`LogModel`]), plus metadata.
#[derive(Debug, Clone, Default)]
struct Model {
    log: LogModel,
    /// Metadata (durable when `set_meta` returns).
    meta: BTreeMap<String, Vec<u8>>,
    /// Payloads written so far (makes every payload distinct).
    writes: u64,
}

impl std::ops::Deref for Model {
    type Target = LogModel;
    fn deref(&self) -> &LogModel {
        &self.log
    }
}

impl std::ops::DerefMut for Model {
    fn deref_mut(&mut self) -> &mut LogModel {
        &mut self.log
    }
}

impl Model {
    fn payload(&mut self, lsn: u64, len: usize) -> Vec<u8> {
        self.writes += 1;
        wire::payload(self.writes, lsn, len)
    }

    fn all(&self) -> Records {
        self.records.iter().map(|(l, p)| (*l, p.clone())).collect()
    }
}

fn opts(sim: &SimDisk) -> Options {
    let mut o = oracle::sim_options(sim, MODES[0], false);
    o.create_if_missing = true;
    o
}

/// Checks the recovered log against the model after a power cut and brings the model in
/// line with it (records past what survived are gone; the rest is durable now).
fn check_after_cut(
    wal: &Wal,
    report: &RecoveryReport,
    model: &mut Model,
) -> Result<Records, String> {
    let got = oracle::read_all(wal, 0, model.records.len() + 1)?;
    model.log.after_cut(&got, wal, report)?;
    if wal.meta_all() != model.meta {
        return Err(format!(
            "metadata {:?} after recovery, {:?} was set",
            wal.meta_all().keys().collect::<Vec<_>>(),
            model.meta.keys().collect::<Vec<_>>()
        ));
    }
    Ok(got)
}

/// Runs one input.
pub fn run(data: &[u8]) -> Result<(), String> {
    run_ops(&decode(data))
}

/// [`run`] on decoded operations.
pub fn run_ops(ops: &[Op]) -> Result<(), String> {
    let sim = SimDisk::new();
    let dir = Path::new("d");
    let mut model = Model::default();
    let (mut wal, _) = Wal::open(dir, opts(&sim)).map_err(|e| format!("create: {e}"))?;
    let max = opts(&sim).max_payload_bytes();
    for (step, op) in ops.iter().enumerate() {
        let at = |what: &str| format!("step {step} ({what}, {op:?})");
        match *op {
            Op::Append { len, durable } => {
                let len = if len >= 0xf000 {
                    usize::try_from((max + 16).saturating_sub(u64::from(len & 0x3f)))
                        .expect("small")
                } else {
                    usize::from(len % 6001)
                };
                let lsn = model.next;
                let p = model.payload(lsn, len);
                let d = if durable {
                    Durability::Sync
                } else {
                    Durability::None
                };
                match wal.append_with(&p, d) {
                    Ok(got) if got.0 == lsn && len as u64 <= max => {}
                    Err(Error::RecordTooLarge { .. }) if len as u64 > max => continue,
                    other => {
                        return Err(format!(
                            "{}: got {other:?}, expected LSN {lsn}",
                            at("append")
                        ));
                    }
                }
                model.records.insert(lsn, p);
                model.next += 1;
                if durable {
                    model.acked = lsn;
                }
            }
            Op::Batch {
                lens,
                count,
                durable,
            } => {
                let n = 1 + usize::from(count % 4);
                let first = model.next;
                let ps: Vec<Vec<u8>> = (0..n)
                    .map(|i| model.payload(first + i as u64, usize::from(lens[i] % 3001)))
                    .collect();
                let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
                let d = if durable {
                    Durability::Sync
                } else {
                    Durability::None
                };
                match wal.append_batch_with(&refs, d) {
                    Ok(l) if l.0 == first => {}
                    other => return Err(format!("{}: {other:?}", at("batch"))),
                }
                for (i, p) in ps.into_iter().enumerate() {
                    model.records.insert(first + i as u64, p);
                }
                model.batches.insert(first, n as u64);
                model.next += n as u64;
                if durable {
                    model.acked = model.last();
                }
            }
            Op::Sync => {
                wal.sync().map_err(|e| format!("{}: {e}", at("sync")))?;
                model.acked = model.last();
            }
            Op::Checkpoint => {
                let lsn = model.last();
                let newest = model.checkpoints.keys().next_back().copied().unwrap_or(0);
                if lsn >= model.first && lsn >= newest {
                    let state = model.state_at(lsn);
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
            Op::Truncate { back } => {
                let floor = model
                    .checkpoints
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(0)
                    .max(model.first - 1);
                if model.last() > floor {
                    let mut t = model.last() - 1 - u64::from(back) % (model.last() - floor);
                    while model.inside_batch(t) {
                        t += 1;
                    }
                    wal.truncate_after(Lsn(t))
                        .map_err(|e| format!("{}: truncate_after({t}): {e}", at("truncate")))?;
                    model.truncate_after(t);
                }
            }
            Op::Purge { fwd } => {
                let target = model.first + u64::from(fwd) % (model.next - model.first + 1);
                let first = wal
                    .purge_before(Lsn(target))
                    .map_err(|e| format!("{}: purge_before({target}): {e}", at("purge")))?;
                if first.0 < model.first || first.0 > target.max(model.first) {
                    return Err(format!(
                        "{}: purge_before({target}) left the log at {first}, it was at {}",
                        at("purge"),
                        model.first
                    ));
                }
                model.purged_to(first.0);
                model.acked = model.acked.max(model.last());
            }
            Op::Reset { delta } => {
                let next = model
                    .next
                    .saturating_add_signed(i64::from(delta as i8))
                    .max(1);
                let result = wal.reset(Lsn(next));
                if !model.checkpoints.is_empty() {
                    if result.is_ok() {
                        return Err(format!(
                            "{}: reset with checkpoints present succeeded",
                            at("reset")
                        ));
                    }
                    continue;
                }
                result.map_err(|e| format!("{}: reset({next}): {e}", at("reset")))?;
                model.records.clear();
                model.batches.clear();
                model.first = next;
                model.next = next;
                model.acked = next - 1;
                if wal.first_lsn().0 != next || wal.appended().0 != next - 1 {
                    return Err(format!(
                        "{}: after reset({next}) the log spans {}..={}",
                        at("reset"),
                        wal.first_lsn(),
                        wal.appended()
                    ));
                }
            }
            Op::SetMeta { key, len } => {
                let k = format!("k{}", key % 4);
                if len == 255 {
                    wal.remove_meta(&k)
                        .map_err(|e| format!("{}: {e}", at("remove_meta")))?;
                    model.meta.remove(&k);
                } else {
                    let v = model.payload(u64::from(key), usize::from(len));
                    wal.set_meta(&k, &v)
                        .map_err(|e| format!("{}: {e}", at("set_meta")))?;
                    model.meta.insert(k, v);
                }
            }
            Op::Reopen { clean } => {
                if clean {
                    wal.close().map_err(|e| format!("{}: {e}", at("close")))?;
                }
                drop(wal);
                let (w, r) =
                    Wal::open(dir, opts(&sim)).map_err(|e| format!("{}: {e}", at("reopen")))?;
                wal = w;
                let got = oracle::read_all(&wal, 0, model.records.len() + 1)?;
                if got != model.all() || r.first_lsn.0 != model.first || r.next_lsn.0 != model.next
                {
                    return Err(format!(
                        "{}: a reopen without a power cut changed the log ({} records, expected {}):\n{r}",
                        at("reopen"),
                        got.len(),
                        model.records.len()
                    ));
                }
                if wal.meta_all() != model.meta {
                    return Err(format!("{}: metadata changed", at("reopen")));
                }
                model.acked = model.last();
            }
            Op::Crash { seed } => {
                drop(wal);
                let cut = sim.power_cut(seed);
                let (w, r) = Wal::open(dir, opts(&sim)).map_err(|e| {
                    format!("{}: recovery failed after {cut:?}: {e}", at("power cut"))
                })?;
                let got = check_after_cut(&w, &r, &mut model)
                    .map_err(|e| format!("{}: {e}\n{cut:?}\n{r}", at("power cut")))?;
                // I4: a second cut right after recovery changes nothing.
                drop(w);
                let cut2 = sim.power_cut(seed.rotate_left(32) ^ 0x5eed);
                let (w, r2) = Wal::open(dir, opts(&sim))
                    .map_err(|e| format!("{}: second recovery failed: {e}", at("power cut")))?;
                let again = oracle::read_all(&w, 0, got.len() + 1)?;
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
    // A final cut, so every input ends with a check.
    drop(wal);
    let cut = sim.power_cut(0xf1a1);
    let (w, r) = Wal::open(dir, opts(&sim))
        .map_err(|e| format!("final recovery failed after {cut:?}: {e}"))?;
    check_after_cut(&w, &r, &mut model).map_err(|e| format!("final cut: {e}\n{r}"))?;
    Ok(())
}
