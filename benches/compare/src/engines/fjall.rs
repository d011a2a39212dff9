//! fjall: an LSM tree whose journal is flushed to the OS on every write by default
//! (survives a process crash, not a power cut); `Database::persist(SyncAll)` fsyncs
//! the journal.

use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Engine, seed, timed_threads};
use crate::workload::{Payload, Tally};

pub struct Fjall;

const KEYSPACE: &str = "log";

fn open(dir: &Path) -> (Database, Keyspace) {
    let db = Database::builder(dir).open().expect("fjall: open");
    let keyspace = db
        .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
        .expect("fjall: keyspace");
    (db, keyspace)
}

/// Keys sort in write order within a thread: the thread in the top bits, big-endian.
fn key(thread: usize, seq: u64) -> [u8; 8] {
    ((thread as u64) << 48 | seq).to_be_bytes()
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn setup(&self) -> &'static str {
        "`Database::builder(dir).open()` with defaults and one keyspace; a record is \
         `insert(key, payload)` with an 8-byte big-endian sequence key. Bulk: default \
         durability (each write flushed to OS buffers), then one \
         `persist(PersistMode::SyncAll)`. Durable: `persist(PersistMode::SyncAll)` after \
         the record that closes each durable unit (sync per write). Recovery: open the \
         database and keyspace (journal replay) and iterate the keyspace."
    }

    fn bulk(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let (db, keyspace) = open(dir);
        let mut payload = Payload::new(record_bytes, seed(0));
        let started = Instant::now();
        for seq in 0..records {
            keyspace
                .insert(key(0, seq), payload.stamp(seq))
                .expect("fjall: insert");
        }
        db.persist(PersistMode::SyncAll).expect("fjall: persist");
        let took = started.elapsed();
        drop(keyspace);
        drop(db);
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
        let (db, keyspace) = open(dir);
        let took = timed_threads(threads, |thread| {
            let mut payload = Payload::new(record_bytes, seed(thread));
            for seq in 0..records_per_thread {
                keyspace
                    .insert(key(thread, seq), payload.stamp(seq))
                    .expect("fjall: insert");
                if (seq + 1).is_multiple_of(records_per_sync) {
                    db.persist(PersistMode::SyncAll).expect("fjall: persist");
                }
            }
        });
        drop(keyspace);
        drop(db);
        took
    }

    fn fill(&self, dir: &Path, record_bytes: usize, records: u64) {
        let (db, keyspace) = open(dir);
        let mut payload = Payload::new(record_bytes, seed(0));
        for seq in 0..records {
            keyspace
                .insert(key(0, seq), payload.stamp(seq))
                .expect("fjall: insert");
        }
        db.persist(PersistMode::SyncAll).expect("fjall: persist");
        drop(keyspace);
        drop(db);
    }

    fn recover(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let started = Instant::now();
        let (db, keyspace) = open(dir);
        let mut tally = Tally::default();
        for guard in keyspace.iter() {
            let (_key, value) = guard.into_inner().expect("fjall: read");
            tally.see(&value);
        }
        let took = started.elapsed();
        drop(keyspace);
        drop(db);
        tally.check(self.name(), records, record_bytes);
        took
    }
}
