//! A model of the log and its check after a simulated power cut, shared by
//! `tests/sim_power_cut.rs` and the `ops_model` fuzz target (which includes this one
//! file by path, so it depends on nothing but mmlog and std).

use std::collections::BTreeMap;

use mmlog::{RecoveryReport, Wal};

/// What a log must hold: the model both power-cut workloads keep of the engine.
#[derive(Debug, Clone)]
pub struct LogModel {
    /// Records the log holds now, by LSN.
    pub records: BTreeMap<u64, Vec<u8>>,
    /// First LSN of each batch still in the log, with its length.
    pub batches: BTreeMap<u64, u64>,
    /// First LSN the log holds (purges and resets are durable on return).
    pub first: u64,
    /// The LSN the next append receives.
    pub next: u64,
    /// Every LSN up to this one was acknowledged as durable.
    pub acked: u64,
    /// Checkpoints written (durable on return): LSN -> state.
    pub checkpoints: BTreeMap<u64, Vec<u8>>,
}

impl Default for LogModel {
    fn default() -> LogModel {
        LogModel {
            records: BTreeMap::new(),
            batches: BTreeMap::new(),
            first: 1,
            next: 1,
            acked: 0,
            checkpoints: BTreeMap::new(),
        }
    }
}

impl LogModel {
    /// The last LSN appended.
    pub fn last(&self) -> u64 {
        self.next - 1
    }

    /// The state a checkpoint at `lsn` holds: a digest of the records up to it.
    pub fn state_at(&self, lsn: u64) -> Vec<u8> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (l, p) in self.records.range(..=lsn) {
            for b in l.to_le_bytes().iter().chain(p) {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        let mut out = h.to_le_bytes().to_vec();
        out.extend_from_slice(&lsn.to_le_bytes());
        out.resize(64 + (lsn % 200) as usize, 0xc7);
        out
    }

    /// Whether `lsn` is inside a batch (and not its last record): no truncation there.
    pub fn inside_batch(&self, lsn: u64) -> bool {
        self.batches
            .range(..=lsn)
            .next_back()
            .is_some_and(|(&first, &n)| first < lsn + 1 && lsn + 1 < first + n)
    }

    /// Everything after `lsn` is gone.
    pub fn truncate_after(&mut self, lsn: u64) {
        self.records.retain(|&l, _| l <= lsn);
        self.batches.retain(|&f, _| f <= lsn);
        self.next = lsn + 1;
        self.acked = self.acked.min(lsn);
        self.checkpoints.retain(|&c, _| c <= lsn);
    }

    /// Everything before `first` is gone.
    pub fn purged_to(&mut self, first: u64) {
        self.first = first;
        self.records.retain(|&l, _| l >= first);
        self.batches.retain(|&f, _| f >= first);
    }

    /// Checks a log recovered after a power cut ([`check_recovered`]) and brings the
    /// model in line with it: records past its end did not survive, the rest is
    /// durable now.
    pub fn after_cut(
        &mut self,
        got: &[(u64, Vec<u8>)],
        wal: &Wal,
        report: &RecoveryReport,
    ) -> Result<(), String> {
        let last = check_recovered(got, wal, report, self)?;
        self.truncate_after(last);
        self.acked = last;
        Ok(())
    }
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
    want: &LogModel,
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
