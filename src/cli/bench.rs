//! `mmlog bench`: the default workloads, each next to the machine limit it is compared
//! with, measured in the same run.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use mmlog::{Durability, Lsn, Options, Wal, limits};

use super::out::{Json, bar, table};
use super::{CliError, CliResult};

/// The long help of `mmlog bench`: the workloads and the JSON shape.
pub(crate) const LONG_HELP: &str = "\
Runs in a fresh temporary directory (removed afterwards) unless --dir is given:
  append            --records appends of --size bytes, one sync at the end
  append_4k         --large-mib MiB of 4 KiB appends, one sync at the end
  durable_append    --durable-records appends, each durable (msync) before it returns
                    (4 rounds, each followed by its limit for as many records)
  recover_scan      reopen the append log, replaying every record in the recovery scan
                    (3 rounds, each next to its limit; the median of each side)
  checkpoint_write  write a --checkpoint-mib MiB checkpoint
  checkpoint_load   verify and map it, as recovery does
A workload given 0 (--large-mib 0, --durable-records 0, --checkpoint-mib 0) is skipped.
--threads N spreads the three append workloads over N threads sharing one log (the
durable appends then share their syncs: group commit). --durability sync makes every
append of the first two workloads durable too. Each workload is measured next to the
machine's limit for the same work in the same run: ratio = limit time / mmlog time
(1.00 = as fast as the machine allows; above 1, group commit beat one msync each).

JSON (--json): one object per workload, one per line, keys always present, in order:
  {\"workload\": str, \"records\": int, \"record_bytes\": int, \"threads\": int,
   \"durability\": \"none\"|\"sync\", \"seconds\": float, \"records_per_sec\": float,
   \"mb_per_sec\": float, \"p50_us\": float|null, \"p99_us\": float|null,
   \"limit\": str, \"limit_seconds\": float|null, \"limit_ratio\": float|null}

Examples:
  mmlog bench
  mmlog bench --threads 4 --durability sync --records 20000 --json";

/// Durability of the bulk appends, as `--durability` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchDurability {
    /// Appends return once in the mapping; one sync at the end.
    None,
    /// Every append is durable (msync) before it returns.
    Sync,
}

impl BenchDurability {
    fn engine(self) -> Durability {
        match self {
            BenchDurability::None => Durability::None,
            BenchDurability::Sync => Durability::Sync,
        }
    }
    fn name(self) -> &'static str {
        match self {
            BenchDurability::None => "none",
            BenchDurability::Sync => "sync",
        }
    }
}

/// A byte count with an optional binary suffix: `65536`, `64K`, `64KiB`, `64M`, `1G`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 65536, 64KiB or 64MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("unknown unit in {s:?} (use K, M or G)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

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
    /// Threads appending to one log in the append workloads. Without it, the bulk
    /// workloads use one thread and the durable workload runs with 1, 4 and 16.
    #[arg(long)]
    threads: Option<u32>,
    /// Durability of each append in the append and append_4k workloads.
    #[arg(long, value_enum, default_value_t = BenchDurability::None)]
    durability: BenchDurability,
    /// Segment size: bytes, or with a K/M/G suffix (a multiple of 4 KiB, 16 KiB to
    /// 1 GiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    segment_size: u64,
    /// Directory to run in (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object per workload instead of a table (shape in --help).
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
    durability: &'static str,
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
            .str("durability", self.durability)
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
        Progress {
            bar: bar(total, "bench"),
        }
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
        return Err(CliError::usage(
            "--records and --size must be above zero",
            "give positive numbers",
        ));
    }
    if args.threads == Some(0) {
        return Err(CliError::usage(
            "--threads must be at least 1",
            "give the number of appending threads",
        ));
    }
    let base = Options {
        segment_size_bytes: args.segment_size,
        durability: Durability::None,
        ..Options::default()
    };
    if let Err(e) = base.validate() {
        return Err(CliError::usage(
            format!("--segment-size {}: {e}", args.segment_size),
            format!(
                "give a multiple of 4 KiB between {} and {}, e.g. 64MiB",
                mmlog::MIN_SEGMENT_BYTES,
                mmlog::MAX_SEGMENT_BYTES
            ),
        ));
    }
    if args.size as u64 > base.max_payload_bytes() {
        return Err(CliError::usage(
            format!(
                "--size {} does not fit in a segment of {} bytes (at most {})",
                args.size,
                args.segment_size,
                base.max_payload_bytes()
            ),
            "use smaller records or a larger --segment-size",
        ));
    }
    let temp;
    let dir: &Path = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| CliError::io("create", d, &e))?;
            d
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("mmlog-bench-")
                .tempdir()
                .map_err(|e| CliError::io("create", &std::env::temp_dir(), &e))?;
            temp.path()
        }
    };
    let large_records = (args.large_mib * 1024 * 1024) / 4096;
    // Progress units: one per record appended or scanned, per limit record, and one
    // per MiB of checkpoint written, loaded, and measured for the limits.
    let total = 2 * args.records
        + 2 * large_records
        + 2 * args.durable_records * durable_threads_count(args.threads)
        + 2 * RECOVER_ROUNDS * args.records
        + 4 * args.checkpoint_mib;
    let progress = Progress::new(total);
    let shape = Shape {
        threads: args.threads.unwrap_or(1),
        durability: args.durability,
    };
    // Durable appends show group commit when several threads wait at once.
    let durable_threads: Vec<u32> = match args.threads {
        Some(n) => vec![n],
        None => vec![1, 4, 16],
    };
    let mut rows = Vec::new();

    // 1. Bulk appends, one sync at the end.
    progress.stage("append (bulk)");
    let bulk_dir = dir.join("bulk");
    let row = bulk(
        &bulk_dir,
        &base,
        shape,
        "append",
        args.records,
        args.size,
        &progress,
    )?;
    rows.push(row);
    // 2. Large records.
    if large_records > 0 {
        progress.stage("append (4 KiB)");
        let large_dir = dir.join("large");
        let row = bulk(
            &large_dir,
            &base,
            shape,
            "append_4k",
            large_records,
            4096,
            &progress,
        )?;
        rows.push(row);
        remove(&large_dir);
    }
    // 3. Durable appends.
    if args.durable_records > 0 {
        progress.stage("durable append");
        for &threads in &durable_threads {
            rows.push(durable(
                &dir.join("durable"),
                &base,
                threads,
                args.durable_records,
                args.size,
                &progress,
            )?);
            remove(&dir.join("durable"));
        }
    }
    // 4. Reopen and scan the bulk log.
    progress.stage("recover + scan");
    rows.push(recover(&bulk_dir, &base, args.size, &progress)?);
    remove(&bulk_dir);
    // 5. A checkpoint written and loaded.
    if args.checkpoint_mib > 0 {
        progress.stage("checkpoint");
        rows.extend(checkpoint(
            &dir.join("checkpoint"),
            &base,
            args.checkpoint_mib,
            &progress,
        )?);
        remove(&dir.join("checkpoint"));
    }
    progress.bar.finish_and_clear();

    let mut stdout = io::BufWriter::new(io::stdout().lock());
    if args.json {
        for r in &rows {
            writeln!(stdout, "{}", r.json())?;
        }
    } else {
        print_table(&mut stdout, &rows)?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// How many durable workloads run: one with `--threads`, three without.
fn durable_threads_count(threads: Option<u32>) -> u64 {
    if threads.is_some() { 1 } else { 3 }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// How the append workloads run.
#[derive(Debug, Clone, Copy)]
struct Shape {
    threads: u32,
    durability: BenchDurability,
}

/// How many of `records` thread `t` of `threads` appends.
fn share(records: u64, threads: u32, t: u32) -> u64 {
    let n = u64::from(threads.max(1));
    records / n + u64::from(u64::from(t) < records % n)
}

/// Runs `work(t)` for each thread `t` of `threads` (inline for one thread) and collects
/// the results in thread order.
fn on_threads<T: Send>(
    threads: u32,
    work: impl Fn(u32) -> CliResult<T> + Sync,
) -> CliResult<Vec<T>> {
    if threads <= 1 {
        return Ok(vec![work(0)?]);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                s.spawn(move || work(t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| CliError::bug("an append thread panicked"))?
            })
            .collect()
    })
}

fn bulk(
    dir: &Path,
    base: &Options,
    shape: Shape,
    name: &'static str,
    records: u64,
    size: usize,
    progress: &Progress,
) -> CliResult<Row> {
    let payload = vec![0x42u8; size];
    let durability = shape.durability.engine();
    let (wal, _) = Wal::open(dir, base.clone())?;
    let started = Instant::now();
    let step = 1 << 16;
    on_threads(shape.threads, |t| {
        let n = share(records, shape.threads, t);
        for i in 0..n {
            wal.append_with(&payload, durability)?;
            if i % step == step - 1 {
                progress.inc(step);
            }
        }
        progress.inc(n % step);
        Ok(())
    })?;
    wal.sync()?;
    let seconds = started.elapsed().as_secs_f64();
    wal.close()?;
    let (limit, limit_seconds) = match shape.durability {
        BenchDurability::None => (
            "memcpy+msync",
            limits::memcpy_msync(dir, size, records)?.as_secs_f64(),
        ),
        BenchDurability::Sync => (
            "msync of one page",
            limits::msync_page(dir, size, records)?
                .iter()
                .map(Duration::as_secs_f64)
                .sum(),
        ),
    };
    progress.inc(records);
    Ok(Row {
        workload: name,
        records,
        record_bytes: size as u64,
        threads: shape.threads,
        durability: shape.durability.name(),
        seconds,
        p50_us: None,
        p99_us: None,
        limit,
        limit_seconds: Some(limit_seconds),
    })
}

/// Rounds of the durable workload: each appends its share of the records and then
/// runs the limit for as many, so that both sides sample the same stretch of the
/// disk's and the machine's behaviour (a single msync's latency drifts by a fifth
/// within a few hundred milliseconds here).
const DURABLE_ROUNDS: u32 = 4;

fn durable(
    dir: &Path,
    base: &Options,
    threads: u32,
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
    // The limit's scratch file lives beside the log, not in it.
    let limit_dir = dir.parent().unwrap_or(dir);
    let all = Mutex::new(Vec::with_capacity(usize::try_from(records).unwrap_or(0)));
    let mut seconds = 0.0;
    let mut limit_seconds = 0.0;
    for round in 0..DURABLE_ROUNDS {
        let in_round = share(records, DURABLE_ROUNDS, round);
        if in_round == 0 {
            // Fewer records than rounds: an empty round would time thread start-up.
            continue;
        }
        let started = Instant::now();
        on_threads(threads, |t| {
            let n = share(in_round, threads, t);
            let mut lat = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for _ in 0..n {
                let at = Instant::now();
                wal.append(&payload)?;
                lat.push(at.elapsed());
                progress.inc(1);
            }
            all.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(lat);
            Ok(())
        })?;
        seconds += started.elapsed().as_secs_f64();
        let limit = limits::msync_page(limit_dir, size, in_round)?;
        progress.inc(in_round);
        limit_seconds += limit.iter().map(Duration::as_secs_f64).sum::<f64>();
    }
    wal.close()?;
    let mut lat = all
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(Row {
        workload: "durable_append",
        records,
        record_bytes: size as u64,
        threads,
        durability: "sync",
        seconds,
        p50_us: percentile_us(&mut lat, 50),
        p99_us: percentile_us(&mut lat, 99),
        limit: "msync of one page",
        limit_seconds: Some(limit_seconds),
    })
}

/// Rounds of the recovery workload. Each reopens the log, replaying every record, and
/// then runs the limit's scan of the same files; the row reports the median of each
/// side. A single recovery of this size swings by half from one run to the next on a
/// small virtual machine (the other core's load, page-table and allocator state), and
/// alternating the two sides lets both see the same swings.
const RECOVER_ROUNDS: u64 = 3;

fn recover(dir: &Path, base: &Options, size: usize, progress: &Progress) -> CliResult<Row> {
    let mut ours = Vec::new();
    let mut limit = Vec::new();
    let mut records = 0u64;
    for _ in 0..RECOVER_ROUNDS {
        let started = Instant::now();
        let mut bytes = 0u64;
        records = 0;
        // What a server does when it starts: recover the log and replay every record
        // (borrowed), in the same pass.
        let (wal, report) = Wal::open_replay(dir, base.clone(), Lsn(0), |_, payload| {
            bytes += payload.len() as u64;
            records += 1;
        })?;
        ours.push(started.elapsed());
        progress.inc(records);
        if records != report.record_count() || bytes != records * size as u64 {
            return Err(CliError::bug(format!(
                "recovery returned {records} records ({bytes} bytes), expected {}",
                report.record_count()
            )));
        }
        wal.close()?;
        let (took, frames) = limits::crc_scan(dir)?;
        limit.push(took);
        progress.inc(records);
        if frames < records {
            return Err(CliError::bug(
                "the limit scan saw fewer frames than recovery",
            ));
        }
    }
    let seconds = median(&mut ours).as_secs_f64();
    let limit = median(&mut limit);
    Ok(Row {
        workload: "recover_scan",
        records,
        record_bytes: size as u64,
        threads: 1,
        durability: "none",
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
        return Err(CliError::bug(format!(
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
        durability: "sync",
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

/// The middle of `samples` (the upper middle of an even count; zero for none).
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
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
        "(ratio = limit time / mmlog time for the same work; 1.00 = as fast as the machine allows)"
    )?;
    writeln!(out, "{}", summary(rows))
}

/// One line: the headline number of each workload.
fn summary(rows: &[Row]) -> String {
    let find = |w: &str| rows.iter().find(|r| r.workload == w);
    let mut parts = Vec::new();
    if let Some(r) = find("append") {
        parts.push(format!(
            "{} appends/s ({} B, {} thread(s), durability {}{})",
            rate(r.records_per_sec()),
            r.record_bytes,
            r.threads,
            r.durability,
            r.limit_ratio()
                .map(|x| format!(", {x:.2} of {}", r.limit))
                .unwrap_or_default()
        ));
    }
    if let Some(r) = find("append_4k") {
        parts.push(format!("4 KiB appends {:.0} MB/s", r.mb_per_sec()));
    }
    if let Some(r) = find("durable_append") {
        parts.push(format!(
            "durable {}/s, p99 {}",
            rate(r.records_per_sec()),
            r.p99_us.map_or("-".into(), |p| format!("{p:.0} µs"))
        ));
    }
    if let Some(r) = find("recover_scan") {
        parts.push(format!("recovery {} records/s", rate(r.records_per_sec())));
    }
    if let (Some(w), Some(l)) = (find("checkpoint_write"), find("checkpoint_load")) {
        parts.push(format!(
            "checkpoint write {:.0} MB/s, load {:.0} MB/s",
            w.mb_per_sec(),
            l.mb_per_sec()
        ));
    }
    format!("summary: {}", parts.join("; "))
}

/// `1.52M`, `12.3k`, `850`.
fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
