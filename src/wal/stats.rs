//! Counters a server can export. Updated off the per-record path: syncs and rollovers
//! count themselves; per-record figures derive from the LSN watermarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sync latency buckets: bucket `i` counts syncs that took less than `2^i` microseconds.
const BUCKETS: usize = 32;

#[derive(Debug)]
pub(crate) struct Counters {
    syncs: AtomicU64,
    pub(crate) overlapped_syncs: AtomicU64,
    synced_records: AtomicU64,
    sync_nanos: AtomicU64,
    latency: [AtomicU64; BUCKETS],
    pub(crate) rollovers: AtomicU64,
    pub(crate) segments_removed: AtomicU64,
    pub(crate) segments_recycled: AtomicU64,
    /// Nanoseconds appenders spent waiting: for a sync another thread ran, or for the
    /// next segment at rollover.
    pub(crate) wait_nanos: AtomicU64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            syncs: AtomicU64::new(0),
            overlapped_syncs: AtomicU64::new(0),
            synced_records: AtomicU64::new(0),
            sync_nanos: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            rollovers: AtomicU64::new(0),
            segments_removed: AtomicU64::new(0),
            segments_recycled: AtomicU64::new(0),
            wait_nanos: AtomicU64::new(0),
        }
    }
}

impl Counters {
    /// Adds time an appender spent waiting.
    pub(crate) fn record_wait(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn record_sync(&self, took: Duration, records: u64) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.synced_records.fetch_add(records, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
        let micros = nanos / 1000;
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        if let Some(b) = self.latency.get(bucket.min(BUCKETS - 1)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `per_mille` = 500 for the median, 990 for p99.
    fn percentile(&self, per_mille: u64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = (total.saturating_mul(per_mille).div_ceil(1000)).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                // Upper bound of the bucket.
                return Some(Duration::from_micros(1u64 << i.min(62)));
            }
        }
        None
    }

    pub(crate) fn snapshot(&self, records_appended: u64, bytes_appended: u64) -> Stats {
        let syncs = self.syncs.load(Ordering::Relaxed);
        let synced = self.synced_records.load(Ordering::Relaxed);
        Stats {
            records_appended,
            bytes_appended,
            syncs,
            overlapped_syncs: self.overlapped_syncs.load(Ordering::Relaxed),
            records_per_sync: if syncs == 0 {
                0.0
            } else {
                synced as f64 / syncs as f64
            },
            sync_time: Duration::from_nanos(self.sync_nanos.load(Ordering::Relaxed)),
            sync_p50: self.percentile(500),
            sync_p99: self.percentile(990),
            rollovers: self.rollovers.load(Ordering::Relaxed),
            segments_removed: self.segments_removed.load(Ordering::Relaxed),
            segments_recycled: self.segments_recycled.load(Ordering::Relaxed),
            writers_waited: Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A snapshot of a log's counters since it was opened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Records appended through this handle.
    pub records_appended: u64,
    /// Bytes of frames (headers and padding included) appended through this handle.
    pub bytes_appended: u64,
    /// Flushes issued (each covers every record appended before it started).
    pub syncs: u64,
    /// Flushes that started while another was running (a second flush for a large
    /// group of writers; see DESIGN.md §4.4).
    pub overlapped_syncs: u64,
    /// Average number of records made durable per flush (group commit at work).
    pub records_per_sync: f64,
    /// Total time spent flushing.
    pub sync_time: Duration,
    /// Median flush latency (upper bound of its power-of-two bucket).
    pub sync_p50: Option<Duration>,
    /// 99th-percentile flush latency (upper bound of its power-of-two bucket).
    pub sync_p99: Option<Duration>,
    /// Segment rollovers.
    pub rollovers: u64,
    /// Segments removed by purge or truncation.
    pub segments_removed: u64,
    /// Retired segment files reused for new segments.
    pub segments_recycled: u64,
    /// Total time appenders waited: for a sync another thread was running (group
    /// commit), or for the next segment at rollover.
    pub writers_waited: Duration,
}
