//! The engines under test, behind one trait so that every engine runs exactly the same
//! workloads. Each implementation uses its engine the way its documentation recommends
//! for the durability the workload asks for; `Engine::setup` says how, for the report.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::cache;
use crate::workload::Workload;

mod fjall;
mod mmlog;
mod okaywal;
mod sqlite;

/// One storage engine. Every method gets a fresh, empty directory (a recovery reads
/// the directory its `fill` wrote) and leaves nothing running when it returns.
pub trait Engine {
    /// Column name in the table.
    fn name(&self) -> &'static str;

    /// How each workload maps onto the engine's API, for the report (markdown).
    fn setup(&self) -> &'static str;

    /// `records` appends of `record_bytes` with no durability each, then one sync
    /// that makes them all durable. Returns the time from the first append to the
    /// return of that sync (opening and closing are not timed).
    fn bulk(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration;

    /// `threads` threads each append `records_per_thread` records of `record_bytes`
    /// and make them durable every `records_per_sync` records, waiting for each sync.
    /// Returns the time from the start barrier to the end of the last thread.
    fn durable(
        &self,
        dir: &Path,
        record_bytes: usize,
        records_per_sync: u64,
        threads: usize,
        records_per_thread: u64,
    ) -> Duration;

    /// Writes the recovery data set (untimed) and closes the engine cleanly.
    fn fill(&self, dir: &Path, record_bytes: usize, records: u64);

    /// Opens the engine on `dir` and reads every record back, checking that all of
    /// them came back in order. Returns the time from the open call to the last
    /// record (closing is not timed).
    fn recover(&self, dir: &Path, record_bytes: usize, records: u64) -> Duration;
}

/// Every engine, mmlog first (the ratios are taken against it).
pub fn all() -> Vec<Box<dyn Engine>> {
    vec![
        Box::new(mmlog::Mmlog),
        Box::new(okaywal::Okaywal),
        Box::new(fjall::Fjall),
        Box::new(sqlite::Sqlite),
    ]
}

/// Facts about one run besides its durations.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunNotes {
    /// Fraction of the data set's bytes still in the page cache just before the cold
    /// read (after eviction), for recovery runs.
    pub cold_resident: Option<f64>,
}

/// Runs `workload` on `engine` in `dir` and returns one duration per row of
/// `workload.rows()`.
pub fn run(engine: &dyn Engine, workload: &Workload, dir: &Path) -> (Vec<Duration>, RunNotes) {
    match *workload {
        Workload::Bulk {
            record_bytes,
            records,
        } => (
            vec![engine.bulk(dir, record_bytes, records)],
            RunNotes::default(),
        ),
        Workload::Durable {
            record_bytes,
            records_per_sync,
            threads,
            records_per_thread,
        } => (
            vec![engine.durable(
                dir,
                record_bytes,
                records_per_sync,
                threads,
                records_per_thread,
            )],
            RunNotes::default(),
        ),
        Workload::Recovery {
            record_bytes,
            records,
        } => {
            engine.fill(dir, record_bytes, records);
            let warm = engine.recover(dir, record_bytes, records);
            let residency = cache::evict_dir(dir);
            let cold = engine.recover(dir, record_bytes, records);
            (
                vec![warm, cold],
                RunNotes {
                    cold_resident: Some(residency.fraction()),
                },
            )
        }
    }
}

/// Runs `work(thread_index)` on `threads` threads released together by a barrier and
/// returns the time from their release until the last one is done.
pub fn timed_threads<F>(threads: usize, work: F) -> Duration
where
    F: Fn(usize) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let barrier = &barrier;
                let work = &work;
                scope.spawn(move || {
                    barrier.wait();
                    work(thread);
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for handle in handles {
            handle.join().expect("a worker thread panicked");
        }
        started.elapsed()
    })
}

/// Seed of the payload of thread `thread` (each thread writes different bytes).
pub fn seed(thread: usize) -> u64 {
    thread as u64 + 1
}
