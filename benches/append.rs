//! Append throughput and latency, each group next to the machine limit it is compared
//! with (measured in the same run): unsynced appends plus one final sync against a
//! memcpy into a pre-faulted mapping plus msync; durable appends against a bare msync
//! of one page. Every sample runs in a fresh temporary directory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmlog::{Durability, Options, Wal, limits};

fn opts(durability: Durability) -> Options {
    Options {
        durability,
        ..Options::default()
    }
}

/// `iters` unsynced appends of `size` bytes and one sync, in a fresh log.
fn mmlog_bulk(size: usize, iters: u64) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), opts(Durability::None)).expect("open");
    let payload = vec![7u8; size];
    let started = Instant::now();
    for _ in 0..iters {
        black_box(wal.append(&payload).expect("append"));
    }
    wal.sync().expect("sync");
    let took = started.elapsed();
    wal.close().expect("close");
    took
}

fn bulk(c: &mut Criterion) {
    for size in [128usize, 4096] {
        let mut g = c.benchmark_group(format!("append_unsynced/{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.bench_function(BenchmarkId::new("mmlog", size), |b| {
            b.iter_custom(|iters| mmlog_bulk(size, iters))
        });
        g.bench_function(BenchmarkId::new("limit_memcpy_msync", size), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                limits::memcpy_msync(dir.path(), size, iters).expect("limit")
            })
        });
        g.finish();
    }
}

fn durable(c: &mut Criterion) {
    let size = 128usize;
    let mut g = c.benchmark_group("append_durable/128B");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("mmlog", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = Wal::open(dir.path(), opts(Durability::Sync)).expect("open");
            let payload = vec![9u8; size];
            let started = Instant::now();
            for _ in 0..iters {
                black_box(wal.append(&payload).expect("append"));
            }
            let took = started.elapsed();
            wal.close().expect("close");
            took
        })
    });
    g.bench_function("limit_msync_page", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            limits::msync_page(dir.path(), size, iters)
                .expect("limit")
                .iter()
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, bulk, durable);
criterion_main!(benches);
