//! okaywal: one active file with a buffered writer; every committed entry is fsynced
//! (concurrent commits share the fsync). An entry holds one or more chunks; there is no
//! unsynced commit, so a bulk load is one entry of many chunks, committed once.

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use okaywal::{
    Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader, WriteAheadLog,
};

use super::{Engine, seed, timed_threads};
use crate::workload::{Payload, Tally};

pub struct Okaywal;

/// Records per entry when writing the recovery data set.
const FILL_ENTRY_RECORDS: u64 = 1_000;

/// Reads every chunk of every recovered entry into a buffer and checks its CRC; the
/// checkpoint callback has nothing to do (the benchmark keeps no state besides the log).
#[derive(Debug, Default)]
struct Replay {
    tally: Arc<Mutex<Tally>>,
    buffer: Vec<u8>,
}

impl LogManager for Replay {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    let len = usize::try_from(chunk.bytes_remaining()).expect("u32 fits usize");
                    self.buffer.resize(len, 0);
                    chunk.read_exact(&mut self.buffer)?;
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk CRC"));
                    }
                    tally.see(&self.buffer);
                }
                ReadChunkResult::EndOfEntry | ReadChunkResult::AbortedEntry => return Ok(()),
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// The default configuration (1 MiB preallocated files, checkpoint after 768 KiB,
/// 16 KiB buffers).
fn open_default(dir: &Path) -> WriteAheadLog {
    Configuration::default_for(dir)
        .open(Replay::default())
        .expect("okaywal: open")
}

/// The default configuration, except that the log is never checkpointed: the recovery
/// data set must still be in the log when it is reopened.
fn recovery_config(dir: &Path) -> Configuration {
    Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

impl Engine for Okaywal {
    fn name(&self) -> &'static str {
        "okaywal"
    }

    fn setup(&self) -> &'static str {
        "`Configuration::default_for(dir)` with a `LogManager` whose checkpoint does \
         nothing. A record is a chunk (`write_chunk`); a durable unit is an entry \
         (`begin_entry` … `commit`, which fsyncs). Bulk: one entry holding every record, \
         committed once (okaywal has no unsynced commit). Recovery: the data set is \
         written in entries of 1,000 records with checkpointing disabled \
         (`checkpoint_after_bytes(u64::MAX)`) so that it stays in the log; reading back \
         is `WriteAheadLog::open`, whose `LogManager::recover` reads every chunk into a \
         buffer and checks its CRC."
    }

    fn bulk(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let wal = open_default(dir);
        let mut payload = Payload::new(record_bytes, seed(0));
        let started = Instant::now();
        let mut entry = wal.begin_entry().expect("okaywal: begin_entry");
        for seq in 0..records {
            entry
                .write_chunk(payload.stamp(seq))
                .expect("okaywal: write_chunk");
        }
        entry.commit().expect("okaywal: commit");
        let took = started.elapsed();
        wal.shutdown().expect("okaywal: shutdown");
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
        let wal = open_default(dir);
        let took = timed_threads(threads, |thread| {
            let mut payload = Payload::new(record_bytes, seed(thread));
            let mut seq = 0;
            while seq < records_per_thread {
                let mut entry = wal.begin_entry().expect("okaywal: begin_entry");
                let end = (seq + records_per_sync).min(records_per_thread);
                while seq < end {
                    entry
                        .write_chunk(payload.stamp(seq))
                        .expect("okaywal: write_chunk");
                    seq += 1;
                }
                entry.commit().expect("okaywal: commit");
            }
        });
        wal.shutdown().expect("okaywal: shutdown");
        took
    }

    fn fill(&self, dir: &Path, record_bytes: usize, records: u64) {
        let wal = recovery_config(dir)
            .open(Replay::default())
            .expect("okaywal: open");
        let mut payload = Payload::new(record_bytes, seed(0));
        let mut seq = 0;
        while seq < records {
            let mut entry = wal.begin_entry().expect("okaywal: begin_entry");
            let end = (seq + FILL_ENTRY_RECORDS).min(records);
            while seq < end {
                entry
                    .write_chunk(payload.stamp(seq))
                    .expect("okaywal: write_chunk");
                seq += 1;
            }
            entry.commit().expect("okaywal: commit");
        }
        wal.shutdown().expect("okaywal: shutdown");
    }

    fn recover(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration {
        let replay = Replay::default();
        let tally = Arc::clone(&replay.tally);
        let started = Instant::now();
        let wal = recovery_config(dir).open(replay).expect("okaywal: open");
        let took = started.elapsed();
        wal.shutdown().expect("okaywal: shutdown");
        tally.lock().unwrap_or_else(PoisonError::into_inner).check(
            self.name(),
            records,
            record_bytes,
        );
        took
    }
}
