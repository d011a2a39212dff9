//! mmlog: appends into memory-mapped segments; `Durability::None` appends survive a
//! process crash, `Durability::Sync` appends return after the msync that covers them
//! (concurrent ones share it).

use std::path::Path;
use std::time::{Duration, Instant};

use mmlog::{Durability, Lsn, Options, Wal};

use super::{Engine, seed, timed_threads};
use crate::workload::{Payload, Tally};

pub struct Mmlog;

fn open(dir: &Path, durability: Durability) -> Wal {
    let opts = Options {
        durability,
        ..Options::default()
    };
    let (wal, _report) = Wal::open(dir, opts).expect("mmlog: open");
    wal
}

impl Engine for Mmlog {
    fn name(&self) -> &'static str {
        "mmlog"
    }

    fn setup(&self) -> &'static str {
        "`Options::default()` (64 MiB segments, prefaulted, recycled). Bulk: \
         `append_with(_, Durability::None)` per record, then `sync()`. Durable: \
         `append_with(_, Durability::Sync)` for the record that closes each durable unit, \
         `Durability::None` for the others. Recovery: `Wal::open_replay`, which checks every \
         record's CRC32C and hands each payload (borrowed) to the caller in the same pass."
    }

    fn bulk(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let wal = open(dir, Durability::None);
        let mut payload = Payload::new(record_bytes, seed(0));
        let started = Instant::now();
        for seq in 0..records {
            wal.append_with(payload.stamp(seq), Durability::None)
                .expect("mmlog: append");
        }
        wal.sync().expect("mmlog: sync");
        let took = started.elapsed();
        wal.close().expect("mmlog: close");
        took
    }

    fn durable(
        &self,
        dir: &Path,
        record_bytes: usize,
        records_per_sync: u64,
        threads: usize,
        records_per_thread: u64,
    ) -> Duration {
        let wal = open(dir, Durability::Sync);
        let took = timed_threads(threads, |thread| {
            let mut payload = Payload::new(record_bytes, seed(thread));
            for seq in 0..records_per_thread {
                let durability = if (seq + 1).is_multiple_of(records_per_sync) {
                    Durability::Sync
                } else {
                    Durability::None
                };
                wal.append_with(payload.stamp(seq), durability)
                    .expect("mmlog: append");
            }
        });
        wal.close().expect("mmlog: close");
        took
    }

    fn fill(&self, dir: &Path, record_bytes: usize, records: u64) {
        let wal = open(dir, Durability::None);
        let mut payload = Payload::new(record_bytes, seed(0));
        for seq in 0..records {
            wal.append(payload.stamp(seq)).expect("mmlog: append");
        }
        wal.close().expect("mmlog: close");
    }

    fn recover(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let started = Instant::now();
        let mut tally = Tally::default();
        let opts = Options {
            durability: Durability::Sync,
            ..Options::default()
        };
        let (wal, _report) = Wal::open_replay(dir, opts, Lsn(0), |_, payload| tally.see(payload))
            .expect("mmlog: open_replay");
        let took = started.elapsed();
        wal.close().expect("mmlog: close");
        tally.check(self.name(), records, record_bytes);
        took
    }
}
