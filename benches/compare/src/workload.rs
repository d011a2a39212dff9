//! The workloads every engine runs, and the payloads they write.
//!
//! A *row* of the result table is one measured quantity (for example "bulk appends of
//! 128 B"); a *workload* is one run that produces one row, or two for recovery (one
//! data set, read back warm and then cold).

/// How many records each workload writes. `Sizes::full()` is the published matrix;
/// `Sizes::quick()` is a smoke run of a few seconds.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// (record size in bytes, record count) for the bulk rows.
    pub bulk: Vec<(usize, u64)>,
    /// Records written in all, over every thread, by the sync-per-record rows.
    pub per_record_total: u64,
    /// Records written in all, over every thread, by the sync-per-64 rows.
    pub per_64_total: u64,
    /// Thread counts of the durable rows.
    pub threads: Vec<usize>,
    /// Records in the recovery data set.
    pub recovery_records: u64,
}

impl Sizes {
    /// The published matrix: about 128 MiB of payload per bulk row, 1,000,000 records
    /// for the small-record bulk rows and recovery (SPEC §4), durable rows sized so
    /// that each takes a few seconds with a ~3 ms fsync.
    pub fn full() -> Sizes {
        Sizes {
            bulk: vec![
                (0, 1_000_000),
                (128, 1_000_000),
                (1024, 131_072),
                (4096, 32_768),
                (65_536, 2_048),
            ],
            per_record_total: 1_024,
            per_64_total: 32_768,
            threads: vec![1, 4, 16],
            recovery_records: 1_000_000,
        }
    }

    /// A smoke run: every row, tiny counts.
    pub fn quick() -> Sizes {
        Sizes {
            bulk: vec![
                (0, 20_000),
                (128, 20_000),
                (1024, 4_096),
                (4096, 1_024),
                (65_536, 64),
            ],
            per_record_total: 64,
            per_64_total: 1_024,
            threads: vec![1, 4, 16],
            recovery_records: 20_000,
        }
    }
}

/// Record size of the durable rows and of the recovery data set.
pub const SMALL_RECORD_BYTES: usize = 128;

/// One run of one engine.
#[derive(Debug, Clone)]
pub enum Workload {
    /// `records` appends of `record_bytes` that need not be durable one by one, then
    /// one sync that makes all of them durable. Timed from the first append to the
    /// return of the sync.
    Bulk { record_bytes: usize, records: u64 },
    /// `threads` threads each write `records_per_thread` records of `record_bytes`,
    /// making them durable every `records_per_sync` records (each thread waits for its
    /// own sync). Timed from the start barrier until the last thread is done.
    Durable {
        record_bytes: usize,
        records_per_sync: u64,
        threads: usize,
        records_per_thread: u64,
    },
    /// Write `records` records of `record_bytes` (untimed) and close cleanly; then
    /// reopen and read every record back twice: with the files in the page cache
    /// (warm), and after evicting them (cold). Each read is timed from the call that
    /// opens the engine until the last record has been seen.
    Recovery { record_bytes: usize, records: u64 },
}

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Records per second (higher is better).
    Throughput,
    /// Seconds (lower is better).
    Time,
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Stable identifier, used by `--only`.
    pub key: String,
    /// Human label for the table.
    pub label: String,
    /// Records the row's work consists of (the same for every engine).
    pub records: u64,
    /// Bytes of payload per record.
    pub record_bytes: usize,
    pub metric: Metric,
}

impl Workload {
    /// Every workload of the matrix, in the order they run.
    pub fn all(sizes: &Sizes) -> Vec<Workload> {
        let mut all = Vec::new();
        for &(record_bytes, records) in &sizes.bulk {
            all.push(Workload::Bulk {
                record_bytes,
                records,
            });
        }
        for (records_per_sync, total) in [(1, sizes.per_record_total), (64, sizes.per_64_total)] {
            for &threads in &sizes.threads {
                all.push(Workload::Durable {
                    record_bytes: SMALL_RECORD_BYTES,
                    records_per_sync,
                    threads,
                    records_per_thread: total / threads as u64,
                });
            }
        }
        all.push(Workload::Recovery {
            record_bytes: SMALL_RECORD_BYTES,
            records: sizes.recovery_records,
        });
        all
    }

    /// The rows this workload produces, in the order `Engine::run` returns durations.
    pub fn rows(&self) -> Vec<Row> {
        match *self {
            Workload::Bulk {
                record_bytes,
                records,
            } => vec![Row {
                key: format!("bulk/{}", bytes_label(record_bytes)),
                label: format!(
                    "bulk {} × {}, one sync",
                    bytes_label(record_bytes),
                    thousands(records)
                ),
                records,
                record_bytes,
                metric: Metric::Throughput,
            }],
            Workload::Durable {
                record_bytes,
                records_per_sync,
                threads,
                records_per_thread,
            } => {
                let unit = if records_per_sync == 1 {
                    "sync/record".to_string()
                } else {
                    format!("sync/{records_per_sync}")
                };
                let threads_label = if threads == 1 {
                    "1 thread".to_string()
                } else {
                    format!("{threads} threads")
                };
                let records = records_per_thread * threads as u64;
                vec![Row {
                    key: format!(
                        "durable/{}/{}/{}t",
                        bytes_label(record_bytes),
                        if records_per_sync == 1 {
                            "sync1".to_string()
                        } else {
                            format!("sync{records_per_sync}")
                        },
                        threads
                    ),
                    label: format!(
                        "durable {}, {unit}, {threads_label} ({} records)",
                        bytes_label(record_bytes),
                        thousands(records)
                    ),
                    records,
                    record_bytes,
                    metric: Metric::Throughput,
                }]
            }
            Workload::Recovery {
                record_bytes,
                records,
            } => ["warm", "cold"]
                .into_iter()
                .map(|cache| Row {
                    key: format!("recovery/{cache}"),
                    label: format!(
                        "recovery {} × {}, {cache} cache",
                        bytes_label(record_bytes),
                        thousands(records)
                    ),
                    records,
                    record_bytes,
                    metric: Metric::Time,
                })
                .collect(),
        }
    }
}

/// "0 B", "128 B", "4 KiB", "64 KiB".
pub fn bytes_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// 1000000 -> "1,000,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A record payload: incompressible bytes (fjall compresses its tables with LZ4, so a
/// constant payload would flatter it), with the record's sequence number in the first
/// eight bytes so that readers can check order and completeness.
#[derive(Debug, Clone)]
pub struct Payload {
    bytes: Vec<u8>,
}

impl Payload {
    /// `len` pseudo-random bytes from `seed` (xorshift64*).
    pub fn new(len: usize, seed: u64) -> Payload {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        bytes.truncate(len);
        Payload { bytes }
    }

    /// The payload of record `seq`.
    pub fn stamp(&mut self, seq: u64) -> &[u8] {
        if let Some(head) = self.bytes.get_mut(..8) {
            head.copy_from_slice(&seq.to_le_bytes());
        }
        &self.bytes
    }
}

/// The sequence number a payload written by [`Payload::stamp`] carries, if it is long
/// enough to carry one.
pub fn seq_of(payload: &[u8]) -> Option<u64> {
    payload
        .get(..8)
        .map(|head| u64::from_le_bytes(head.try_into().expect("eight bytes")))
}

/// Counts what a recovery read back and checks that it is every record, in order.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub records: u64,
    pub bytes: u64,
    /// Records whose sequence number was not the expected one.
    pub out_of_order: u64,
}

impl Tally {
    pub fn see(&mut self, payload: &[u8]) {
        if let Some(seq) = seq_of(payload)
            && seq != self.records
        {
            self.out_of_order += 1;
        }
        self.records += 1;
        self.bytes += payload.len() as u64;
    }

    /// Panics unless exactly `records` records of `record_bytes` came back in order.
    pub fn check(&self, engine: &str, records: u64, record_bytes: usize) {
        assert_eq!(
            (self.records, self.bytes, self.out_of_order),
            (records, records * record_bytes as u64, 0),
            "{engine}: recovery read back the wrong records (count, bytes, out of order)"
        );
    }
}
