//! `mmlog bench`: the default workloads, each next to the machine limit it is compared
//! with, measured in the same run.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mmlog::{Durability, Lsn, Options, Wal, limits};

use super::out::{Json, table};
use super::{CliError, CliResult};

/// Arguments of `mmlog bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Records in the bulk-append and recovery workloads.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Payload bytes of each record in the bulk and durable workloads.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Megabytes written by the large-record (4 KiB) workload.
    #[arg(long, default_value_t = 256)]
    large_mib: u64,
    /// Megabytes of the checkpoint written and loaded by the checkpoint workload.
    #[arg(long, default_value_t = 256)]
    checkpoint_mib: u64,
    /// Durable appends in the durable workload.
    #[arg(long, default_value_t = 2_000)]
    durable_records: u64,
    /// Segment size in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    segment_size: u64,
    /// Directory to run in (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object per workload instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured workload.
#[derive(Debug, Clone)]
struct Row {
    workload: &'static str,
    records: u64,
    record_bytes: u64,
    threads: u32,
    seconds: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    limit: &'static str,
    limit_seconds: Option<f64>,
}

impl Row {
    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-12)
    }
    fn mb_per_sec(&self) -> f64 {
        (self.records * self.record_bytes) as f64 / self.seconds.max(1e-12) / 1e6
    }
    /// Our throughput as a fraction of the limit's (1.0 = as fast as the limit).
    fn limit_ratio(&self) -> Option<f64> {
        self.limit_seconds.map(|l| l / self.seconds.max(1e-12))
    }
    fn json(&self) -> String {
        Json::new()
            .str("workload", self.workload)
            .u64("records", self.records)
            .u64("record_bytes", self.record_bytes)
            .u64("threads", u64::from(self.threads))
            .f64("seconds", Some(self.seconds))
            .f64("records_per_sec", Some(self.records_per_sec()))
            .f64("mb_per_sec", Some(self.mb_per_sec()))
            .f64("p50_us", self.p50_us)
            .f64("p99_us", self.p99_us)
            .str("limit", self.limit)
            .f64("limit_seconds", self.limit_seconds)
            .f64("limit_ratio", self.limit_ratio())
            .finish()
    }
}

struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = if io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {percent:>3}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress { bar }
    }
    fn stage(&self, msg: &'static str) {
        self.bar.set_message(msg);
    }
    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
}

pub(crate) fn run(args: &BenchArgs) -> CliResult<ExitCode> {
    if args.size == 0 || args.records == 0 {
        return Err(CliError::new("--records and --size must be above zero"));
    }
    let temp;
    let dir: &Path = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d
        }
        None => {
            temp = tempfile::Builder::new().prefix("mmlog-bench-").tempdir()?;
            temp.path()
        }
    };
    let large_records = (args.large_mib * 1024 * 1024) / 4096;
    // Progress units: one per record appended or scanned, per limit record, and one
    // per MiB of checkpoint written, loaded, and measured for the limits.
    let total = 2 * args.records
        + 2 * large_records
        + 2 * args.durable_records
        + 2 * args.records
        + 4 * args.checkpoint_mib;
    let progress = Progress::new(total);
    let base = Options {
        segment_size_bytes: args.segment_size,
        durability: Durability::None,
        ..Options::default()
    };
    base.validate()?;
    let mut rows = Vec::new();

    // 1. Bulk appends, one sync at the end.
    progress.stage("append (bulk)");
    let bulk_dir = dir.join("bulk");
    let row = bulk(
        &bulk_dir,
        &base,
        "append",
        args.records,
        args.size,
        &progress,
    )?;
    rows.push(row);
    // 2. Large records.
    progress.stage("append (4 KiB)");
    let large_dir = dir.join("large");
    let row = bulk(
        &large_dir,
        &base,
        "append_4k",
        large_records,
        4096,
        &progress,
    )?;
    rows.push(row);
    remove(&large_dir);
    // 3. Durable appends, one thread.
    progress.stage("durable append");
    rows.push(durable(
        &dir.join("durable"),
        &base,
        args.durable_records,
        args.size,
        &progress,
    )?);
    remove(&dir.join("durable"));
    // 4. Reopen and scan the bulk log.
    progress.stage("recover + scan");
    rows.push(recover(&bulk_dir, &base, args.size, &progress)?);
    remove(&bulk_dir);
    // 5. A checkpoint written and loaded.
    progress.stage("checkpoint");
    rows.extend(checkpoint(
        &dir.join("checkpoint"),
        &base,
        args.checkpoint_mib,
        &progress,
    )?);
    remove(&dir.join("checkpoint"));
    progress.bar.finish_and_clear();

    let mut stdout = io::stdout().lock();
    if args.json {
        for r in &rows {
            writeln!(stdout, "{}", r.json())?;
        }
    } else {
        print_table(&mut stdout, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

fn bulk(
    dir: &Path,
    base: &Options,
    name: &'static str,
    records: u64,
    size: usize,
    progress: &Progress,
) -> CliResult<Row> {
    let payload = vec![0x42u8; size];
    let (wal, _) = Wal::open(dir, base.clone())?;
    let started = Instant::now();
    let step = 1 << 16;
    for i in 0..records {
        wal.append(&payload)?;
        if i % step == step - 1 {
            progress.inc(step);
        }
    }
    wal.sync()?;
    let seconds = started.elapsed().as_secs_f64();
    progress.inc(records % step);
    wal.close()?;
    let limit = limits::memcpy_msync(dir, size, records)?;
    progress.inc(records);
    Ok(Row {
        workload: name,
        records,
        record_bytes: size as u64,
        threads: 1,
        seconds,
        p50_us: None,
        p99_us: None,
        limit: "memcpy+msync",
        limit_seconds: Some(limit.as_secs_f64()),
    })
}

fn durable(
    dir: &Path,
    base: &Options,
    records: u64,
    size: usize,
    progress: &Progress,
) -> CliResult<Row> {
    let payload = vec![0x17u8; size];
    let opts = Options {
        durability: Durability::Sync,
        ..base.clone()
    };
    let (wal, _) = Wal::open(dir, opts)?;
    let mut lat = Vec::with_capacity(usize::try_from(records).unwrap_or(0));
    let started = Instant::now();
    for _ in 0..records {
        let t = Instant::now();
        wal.append(&payload)?;
        lat.push(t.elapsed());
        progress.inc(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    wal.close()?;
    let limit = limits::msync_page(dir, size, records)?;
    progress.inc(records);
    let limit_seconds: f64 = limit.iter().map(Duration::as_secs_f64).sum();
    Ok(Row {
        workload: "durable_append",
        records,
        record_bytes: size as u64,
        threads: 1,
        seconds,
        p50_us: percentile_us(&mut lat, 50),
        p99_us: percentile_us(&mut lat, 99),
        limit: "msync of one page",
        limit_seconds: Some(limit_seconds),
    })
}

fn recover(dir: &Path, base: &Options, size: usize, progress: &Progress) -> CliResult<Row> {
    let started = Instant::now();
    let (wal, report) = Wal::open(dir, base.clone())?;
    let mut records = 0u64;
    let mut bytes = 0u64;
    for r in wal.iter_from(Lsn(0))? {
        let r = r?;
        bytes += r.len() as u64;
        records += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.inc(records);
    if records != report.record_count() || bytes != records * size as u64 {
        return Err(CliError::new(format!(
            "recovery returned {records} records ({bytes} bytes), expected {}",
            report.record_count()
        )));
    }
    wal.close()?;
    let (limit, frames) = limits::crc_scan(dir)?;
    progress.inc(records);
    if frames < records {
        return Err(CliError::new(
            "the limit scan saw fewer frames than recovery",
        ));
    }
    Ok(Row {
        workload: "recover_scan",
        records,
        record_bytes: size as u64,
        threads: 1,
        seconds,
        p50_us: None,
        p99_us: None,
        limit: "CRC-checked scan",
        limit_seconds: Some(limit.as_secs_f64()),
    })
}

fn checkpoint(dir: &Path, base: &Options, mib: u64, progress: &Progress) -> CliResult<Vec<Row>> {
    let len = mib * 1024 * 1024;
    let (wal, _) = Wal::open(dir, base.clone())?;
    wal.append(b"the state below covers this record")?;
    let started = Instant::now();
    let ckpt = wal.write_checkpoint_with(Lsn(1), len, |buf| {
        // What a serialiser does: write every byte once.
        for (i, chunk) in buf.chunks_mut(4096).enumerate() {
            chunk.fill(i as u8);
        }
    })?;
    let write_seconds = started.elapsed().as_secs_f64();
    progress.inc(mib);
    let path = ckpt.path().to_path_buf();
    drop(ckpt);
    wal.close()?;
    // Loading: what recovery does with a checkpoint file (check the header and size,
    // map it read-only, verify the payload checksum), timed on its own.
    let (wal, _) = Wal::open(
        dir,
        Options {
            read_only: true,
            ..base.clone()
        },
    )?;
    let started = Instant::now();
    let files = wal.checkpoint_files()?;
    let load_seconds = started.elapsed().as_secs_f64();
    progress.inc(mib);
    if files.len() != 1 || files.iter().any(|f| f.problem.is_some()) {
        return Err(CliError::new(format!(
            "checkpoint did not verify: {files:?}"
        )));
    }
    drop(wal);
    let write_limit = limits::memcpy_msync(dir, 4096, len / 4096)?;
    progress.inc(mib);
    let load_limit = limits::crc_file(&path, 4096, len)?;
    progress.inc(mib);
    let row = |workload, seconds, limit: &'static str, limit_seconds: Duration| Row {
        workload,
        records: 1,
        record_bytes: len,
        threads: 1,
        seconds,
        p50_us: None,
        p99_us: None,
        limit,
        limit_seconds: Some(limit_seconds.as_secs_f64()),
    };
    Ok(vec![
        row(
            "checkpoint_write",
            write_seconds,
            "memcpy+msync",
            write_limit,
        ),
        row(
            "checkpoint_load",
            load_seconds,
            "CRC of the bytes",
            load_limit,
        ),
    ])
}

fn percentile_us(lat: &mut [Duration], p: usize) -> Option<f64> {
    if lat.is_empty() {
        return None;
    }
    lat.sort_unstable();
    let i = (lat.len() * p)
        .div_ceil(100)
        .saturating_sub(1)
        .min(lat.len() - 1);
    lat.get(i).map(|d| d.as_secs_f64() * 1e6)
}

fn print_table(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    let header = [
        "workload",
        "records",
        "bytes",
        "thr",
        "seconds",
        "records/s",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "limit",
        "ratio",
    ];
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |x| format!("{x:.digits$}"));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.workload.to_string(),
                r.records.to_string(),
                r.record_bytes.to_string(),
                r.threads.to_string(),
                format!("{:.3}", r.seconds),
                format!("{:.0}", r.records_per_sec()),
                format!("{:.1}", r.mb_per_sec()),
                opt(r.p50_us, 1),
                opt(r.p99_us, 1),
                r.limit.to_string(),
                opt(r.limit_ratio(), 2),
            ]
        })
        .collect();
    table(out, &header, &cells)?;
    writeln!(
        out,
        "\nratio = limit time / mmlog time for the same work (1.00 = as fast as the machine allows)."
    )
}
