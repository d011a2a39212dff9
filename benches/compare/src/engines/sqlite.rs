//! SQLite (bundled, through rusqlite) in WAL mode: one table of (rowid, blob).
//! `synchronous=NORMAL` commits survive a process crash and are made durable by the
//! next checkpoint; `synchronous=FULL` commits fsync the WAL.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{Engine, seed, timed_threads};
use crate::workload::{Payload, Tally};

pub struct Sqlite;

/// Records per transaction in bulk loads and when writing the recovery data set.
const BATCH_RECORDS: u64 = 1_000;

const INSERT: &str = "INSERT INTO log (v) VALUES (?1)";

#[derive(Debug, Clone, Copy)]
enum Synchronous {
    Normal,
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

fn set_synchronous(conn: &Connection, synchronous: Synchronous) {
    conn.pragma_update(None, "synchronous", synchronous.pragma())
        .expect("sqlite: PRAGMA synchronous");
}

fn open(dir: &Path, synchronous: Synchronous) -> Connection {
    let conn = Connection::open(dir.join("log.sqlite")).expect("sqlite: open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .expect("sqlite: PRAGMA journal_mode");
    assert_eq!(mode, "wal", "sqlite: WAL mode refused");
    set_synchronous(&conn, synchronous);
    conn.execute_batch("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .expect("sqlite: create table");
    conn
}

/// Inserts records `seqs` in one transaction.
fn insert_batch(conn: &mut Connection, payload: &mut Payload, seqs: std::ops::Range<u64>) {
    let tx = conn.transaction().expect("sqlite: begin");
    {
        let mut insert = tx.prepare_cached(INSERT).expect("sqlite: prepare");
        for seq in seqs {
            insert
                .execute([payload.stamp(seq)])
                .expect("sqlite: insert");
        }
    }
    tx.commit().expect("sqlite: commit");
}

/// Batched transactions under NORMAL; the last one commits under FULL, which fsyncs
/// the WAL and so makes every earlier transaction durable too.
fn load(conn: &mut Connection, payload: &mut Payload, records: u64) {
    let mut seq = 0;
    while seq < records {
        let end = (seq + BATCH_RECORDS).min(records);
        if end == records {
            set_synchronous(conn, Synchronous::Full);
        }
        insert_batch(conn, payload, seq..end);
        seq = end;
    }
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn setup(&self) -> &'static str {
        "Bundled SQLite, `journal_mode=WAL`, table `log (id INTEGER PRIMARY KEY, v BLOB)`, \
         a record is one row (cached prepared `INSERT`), other settings default \
         (autocheckpoint at 1000 pages). Bulk: `synchronous=NORMAL` with transactions of \
         1,000 records; the last one commits under `synchronous=FULL` (the one fsync \
         that makes them all durable). Durable: `synchronous=FULL`, one transaction per \
         durable unit, one connection shared by the threads behind a mutex (SQLite \
         serialises writers anyway, and a mutex avoids `SQLITE_BUSY` back-off sleeps). \
         Recovery: data set written in transactions of 1,000 under NORMAL; reading back \
         is opening the database and `SELECT v FROM log ORDER BY id`."
    }

    fn bulk(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let mut conn = open(dir, Synchronous::Normal);
        let mut payload = Payload::new(record_bytes, seed(0));
        let started = Instant::now();
        load(&mut conn, &mut payload, records);
        let took = started.elapsed();
        conn.close().map_err(|(_, e)| e).expect("sqlite: close");
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
        let conn = Mutex::new(open(dir, Synchronous::Full));
        let took = timed_threads(threads, |thread| {
            let mut payload = Payload::new(record_bytes, seed(thread));
            let mut seq = 0;
            while seq < records_per_thread {
                let end = (seq + records_per_sync).min(records_per_thread);
                let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                insert_batch(&mut conn, &mut payload, seq..end);
                seq = end;
            }
        });
        conn.into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .close()
            .map_err(|(_, e)| e)
            .expect("sqlite: close");
        took
    }

    fn fill(&self, dir: &Path, record_bytes: usize, records: u64) {
        let mut conn = open(dir, Synchronous::Normal);
        let mut payload = Payload::new(record_bytes, seed(0));
        load(&mut conn, &mut payload, records);
        conn.close().map_err(|(_, e)| e).expect("sqlite: close");
    }

    fn recover(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let started = Instant::now();
        let conn = open(dir, Synchronous::Full);
        let mut tally = Tally::default();
        {
            let mut select = conn
                .prepare("SELECT v FROM log ORDER BY id")
                .expect("sqlite: prepare");
            let mut rows = select.query([]).expect("sqlite: query");
            while let Some(row) = rows.next().expect("sqlite: step") {
                let value = row.get_ref(0).expect("sqlite: column");
                tally.see(value.as_blob().expect("sqlite: blob"));
            }
        }
        let took = started.elapsed();
        conn.close().map_err(|(_, e)| e).expect("sqlite: close");
        tally.check(self.name(), records, record_bytes);
        took
    }
}
