//! Checkpoints of 16 MiB and 256 MiB: writing (fill through the mapping, checksum,
//! sync, rename) against memcpy into a pre-faulted mapping plus msync of the same
//! bytes; loading (header, size, map, payload checksum) against a bare checksum of the
//! same mapped bytes. Limits are measured in the same run.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmlog::{Durability, Lsn, Options, Wal, limits};

fn opts() -> Options {
    Options {
        durability: Durability::None,
        checkpoint_generations: 1,
        ..Options::default()
    }
}

fn checkpoints(c: &mut Criterion) {
    for mib in [16u64, 256] {
        let len = mib << 20;
        let mut g = c.benchmark_group(format!("checkpoint/{mib}MiB"));
        g.throughput(Throughput::Bytes(len));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(if mib > 16 { 20 } else { 5 }));
        g.bench_function(BenchmarkId::new("mmlog_write", mib), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let (wal, _) = Wal::open(dir.path(), opts()).expect("open");
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let lsn = wal.append(b"x").expect("append");
                    let started = Instant::now();
                    wal.write_checkpoint_with(lsn, len, |buf| buf.fill(i as u8))
                        .expect("checkpoint");
                    total += started.elapsed();
                }
                wal.close().expect("close");
                total
            })
        });
        g.bench_function(BenchmarkId::new("limit_memcpy_msync", mib), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                (0..iters)
                    .map(|_| limits::memcpy_msync(dir.path(), 1 << 20, mib).expect("limit"))
                    .sum()
            })
        });
        // One checkpoint, loaded over and over (warm page cache for both).
        let dir = tempfile::tempdir().expect("tempdir");
        let path = {
            let (wal, _) = Wal::open(dir.path(), opts()).expect("open");
            let lsn = wal.append(b"x").expect("append");
            let c = wal
                .write_checkpoint_with(lsn, len, |buf| buf.fill(7))
                .expect("checkpoint");
            let path = c.path().to_path_buf();
            drop(c);
            wal.close().expect("close");
            path
        };
        let (wal, _) = Wal::open(
            dir.path(),
            Options {
                read_only: true,
                ..opts()
            },
        )
        .expect("open");
        g.bench_function(BenchmarkId::new("mmlog_load", mib), |b| {
            b.iter(|| {
                let files = wal.checkpoint_files().expect("load");
                assert!(files.iter().all(|f| f.problem.is_none()));
            })
        });
        g.bench_function(BenchmarkId::new("limit_crc", mib), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| limits::crc_file(&path, 4096, len).expect("crc"))
                    .sum()
            })
        });
        assert_eq!(wal.checkpoint().map(|c| c.lsn()), Some(Lsn(1)));
        g.finish();
    }
}

criterion_group!(benches, checkpoints);
criterion_main!(benches);
