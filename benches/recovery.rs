//! Recovery: reopening a log of 128-byte records and reading every record back
//! (after the open, and during it with `Wal::open_replay`, with and without the
//! second thread that verifies checksums ahead), against the limit of a bare
//! CRC-checked scan of the same files (same run, warm page cache for both). The log
//! spans several 8 MiB segments, so the second thread has segments to verify.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmlog::{Durability, Env, Lsn, Options, Wal, limits};

const RECORDS: u64 = 200_000;

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        durability: Durability::None,
        segment_size_bytes: 8 << 20,
        ..Options::default()
    };
    {
        let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("open");
        let payload = [3u8; 128];
        for _ in 0..RECORDS {
            wal.append(&payload).expect("append");
        }
        wal.close().expect("close");
    }
    let mut g = c.benchmark_group("recovery/200k_x_128B");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("mmlog_open_and_scan", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("open");
                let n = wal.iter_from(Lsn(0)).expect("iter").count() as u64;
                total += started.elapsed();
                assert_eq!(n, RECORDS);
                wal.close().expect("close");
            }
            total
        })
    });
    for (name, env) in [
        ("mmlog_open_replay", Env::default()),
        (
            "mmlog_open_replay_one_thread",
            Env::default().without_background(),
        ),
    ] {
        let opts = Options {
            env,
            ..opts.clone()
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let mut n = 0u64;
                    let (wal, _) = Wal::open_replay(dir.path(), opts.clone(), Lsn(0), |_, p| {
                        n += p.len() as u64 / 128;
                    })
                    .expect("open_replay");
                    total += started.elapsed();
                    assert_eq!(n, RECORDS);
                    wal.close().expect("close");
                }
                total
            })
        });
    }
    g.bench_function("limit_crc_scan", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| limits::crc_scan(dir.path()).expect("scan").0)
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
