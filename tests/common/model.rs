//! The expected content of a log, kept beside it by the LSN and round-trip tests.

use mmlog::{Durability, Lsn, Wal};

use super::payload;

/// The expected content of a log: `records[i]` has LSN `first + i`.
#[derive(Debug, Clone)]
pub struct Model {
    pub first: u64,
    pub records: Vec<Vec<u8>>,
    /// `(first LSN, count)` of the batches still in the log.
    pub batches: Vec<(u64, u64)>,
}

impl Model {
    pub fn new() -> Model {
        Model {
            first: 1,
            records: Vec::new(),
            batches: Vec::new(),
        }
    }

    pub fn next_lsn(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    pub fn last_lsn(&self) -> u64 {
        self.next_lsn() - 1
    }

    pub fn get(&self, lsn: u64) -> &[u8] {
        &self.records[usize::try_from(lsn - self.first).expect("index")]
    }

    pub fn truncate_after(&mut self, lsn: u64) {
        self.records
            .truncate(usize::try_from(lsn + 1 - self.first).expect("len"));
        self.batches.retain(|&(first, _)| first <= lsn);
    }

    pub fn purge_before(&mut self, new_first: u64) {
        let drop = usize::try_from(new_first - self.first).expect("len");
        self.records.drain(..drop);
        self.first = new_first;
        self.batches.retain(|&(first, _)| first >= new_first);
    }

    /// True when `lsn` is the LSN of a batch record other than the batch's last.
    pub fn inside_batch(&self, lsn: u64) -> bool {
        self.batches
            .iter()
            .any(|&(first, count)| first <= lsn && lsn < first + count - 1)
    }
}

/// Appends one record of `len` bytes with payload tagged `tag` and checks its LSN.
pub fn append_one(wal: &Wal, model: &mut Model, tag: u64, len: usize, durability: Durability) {
    let lsn = model.next_lsn();
    let p = payload(tag, lsn, len);
    let got = wal.append_with(&p, durability).expect("append");
    assert_eq!(got, Lsn(lsn), "append of {len} bytes");
    model.records.push(p);
}

/// Appends a batch of records of the given lengths and checks its LSNs.
pub fn append_batch(wal: &Wal, model: &mut Model, tag: u64, lens: &[usize]) {
    let first = model.next_lsn();
    let payloads: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, len)| payload(tag, first + i as u64, *len))
        .collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let got = wal.append_batch(&refs).expect("append_batch");
    assert_eq!(got, Lsn(first), "batch of {}", lens.len());
    model.batches.push((first, lens.len() as u64));
    model.records.extend(payloads);
}
