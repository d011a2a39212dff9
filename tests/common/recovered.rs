//! The check of a log recovered after a simulated power cut against a model, shared by
//! `tests/sim_power_cut.rs` and the `ops_model` fuzz target (which includes this one
//! file by path, so it depends on nothing but mmlog and std).

use std::collections::BTreeMap;

use mmlog::{RecoveryReport, Wal};

/// What a model expects of a recovered log.
pub struct Expected<'a> {
    /// First LSN the log holds (purges and resets are durable on return).
    pub first: u64,
    /// Every LSN up to this one was acknowledged as durable.
    pub acked: u64,
    /// Records appended and not truncated, by LSN.
    pub records: &'a BTreeMap<u64, Vec<u8>>,
    /// Checkpoints written (durable on return): LSN -> state.
    pub checkpoints: &'a BTreeMap<u64, Vec<u8>>,
}

/// Checks `got` (every record of `wal`, in order) and the checkpoint recovery started
/// from: dense LSNs from `first` on (I2), each record what was appended under its LSN
/// (I2, I5), at least every acknowledged one (I1), the next LSN right after the last,
/// and a checkpoint that holds the state written under its LSN whenever one was
/// written. Returns the last LSN of the log.
pub fn check_recovered(
    got: &[(u64, Vec<u8>)],
    wal: &Wal,
    report: &RecoveryReport,
    want: &Expected<'_>,
) -> Result<u64, String> {
    let first = report.first_lsn.0;
    if first != want.first {
        return Err(format!(
            "log starts at {first}, expected {} (purges and resets are durable)",
            want.first
        ));
    }
    for (i, (lsn, p)) in got.iter().enumerate() {
        if *lsn != first + i as u64 {
            return Err(format!("I2: gap or reorder: record {i} has LSN {lsn}"));
        }
        match want.records.get(lsn) {
            Some(w) if w == p => {}
            Some(w) => {
                return Err(format!(
                    "I2/I5: LSN {lsn} holds {} bytes that are not what was appended ({} bytes)",
                    p.len(),
                    w.len()
                ));
            }
            None => {
                return Err(format!(
                    "I2: LSN {lsn} was never appended (or was truncated)"
                ));
            }
        }
    }
    let last = got.last().map_or(first - 1, |r| r.0);
    if last < want.acked {
        return Err(format!(
            "I1: acknowledged records lost: the log ends at {last}, {} was acknowledged",
            want.acked
        ));
    }
    if report.next_lsn.0 != last + 1 {
        return Err(format!(
            "next LSN {} after a log ending at {last}",
            report.next_lsn
        ));
    }
    if let Some(c) = wal.checkpoint() {
        match want.checkpoints.get(&c.lsn().0) {
            Some(w) if w.as_slice() == c.data() => {}
            Some(_) => return Err(format!("checkpoint {} holds the wrong state", c.lsn())),
            None => return Err(format!("checkpoint {} was never written", c.lsn())),
        }
    } else if let Some((l, _)) = want.checkpoints.iter().next_back() {
        return Err(format!("checkpoint {l} was written but recovery has none"));
    }
    Ok(last)
}
