//! mmlog against the engines users would pick instead (okaywal, fjall, SQLite), on the
//! same workloads, in fresh temporary directories, interleaved round by round.
//!
//! ```sh
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --out BENCHMARKS-table.md
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --quick   # smoke run
//! ```
//!
//! See `--help`, and BENCHMARKS.md at the repository root for the published results.

mod cache;
mod engines;
mod limits;
mod machine;
mod report;
mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use report::Results;
use workload::{Sizes, Workload};

const USAGE: &str = "\
mmlog-compare: mmlog against okaywal, fjall and SQLite on the same workloads.

USAGE:
    cargo run --release --manifest-path benches/compare/Cargo.toml -- [OPTIONS]

OPTIONS:
    --out FILE      also write the markdown report to FILE
    --quick         smoke run: tiny workloads, one round (a few seconds)
    --rounds N      rounds (default 5; --quick: 1)
    --only TEXT     run only the rows whose key contains TEXT (keys: bulk/128 B,
                    durable/128 B/sync64/4t, recovery/cold, ...); repeatable
    --engines LIST  comma-separated peers to run besides mmlog (default: okaywal,fjall,SQLite)
    --dir DIR       where the temporary directories go (default: the system temp dir)
    -h, --help      this text

The report (markdown) goes to stdout, progress to stderr.";

#[derive(Debug)]
struct Args {
    out: Option<PathBuf>,
    quick: bool,
    rounds: Option<usize>,
    only: Vec<String>,
    engines: Option<Vec<String>>,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: None,
        quick: false,
        rounds: None,
        only: Vec::new(),
        engines: None,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => args.out = Some(PathBuf::from(value("--out")?)),
            "--quick" => args.quick = true,
            "--rounds" => {
                let n = value("--rounds")?;
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("--rounds {n}: not a number"))?;
                if n == 0 {
                    return Err("--rounds must be at least 1".into());
                }
                args.rounds = Some(n);
            }
            "--only" => args.only.push(value("--only")?),
            "--engines" => {
                let list = value("--engines")?;
                args.engines = Some(list.split(',').map(|s| s.trim().to_lowercase()).collect());
            }
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 5 });
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).expect("create the --dir directory");

    let workloads: Vec<Workload> = Workload::all(&sizes)
        .into_iter()
        .filter(|w| {
            args.only.is_empty()
                || w.rows()
                    .iter()
                    .any(|r| args.only.iter().any(|o| r.key.contains(o.as_str())))
        })
        .collect();
    if workloads.is_empty() {
        eprintln!("error: --only matched no row");
        return ExitCode::from(2);
    }

    if let Some(list) = &args.engines {
        let known: Vec<String> = engines::all()
            .iter()
            .map(|e| e.name().to_lowercase())
            .collect();
        if let Some(unknown) = list.iter().find(|name| !known.contains(name)) {
            eprintln!(
                "error: --engines: unknown engine {unknown:?} (known: {})",
                known.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let engines: Vec<_> = engines::all()
        .into_iter()
        .enumerate()
        .filter(|(i, e)| {
            *i == 0
                || args
                    .engines
                    .as_ref()
                    .is_none_or(|list| list.contains(&e.name().to_lowercase()))
        })
        .map(|(_, e)| e)
        .collect();

    let facts = machine::facts(&parent);
    let load_before = machine::load_average();
    eprintln!("machine:");
    for (k, v) in &facts {
        eprintln!("  {k}: {v}");
    }
    eprintln!("  load average at start: {load_before}");
    eprintln!("machine limits:");
    cache::settle(&parent);
    let limits = limits::measure(&parent, args.quick);
    for (k, v) in &limits {
        eprintln!("  {k}: {v}");
    }

    let rows: Vec<_> = workloads.iter().flat_map(Workload::rows).collect();
    let mut results = Results::new(rows, engines.iter().map(|e| e.name()).collect(), rounds);

    let mut first_row = 0;
    for workload in &workloads {
        let rows = workload.rows();
        for round in 0..rounds {
            // Rotate the order each round, so that no engine always runs right after
            // the same neighbour (whose write-back or freed space it could inherit).
            for i in 0..engines.len() {
                let e = (i + round) % engines.len();
                let engine = engines[e].as_ref();
                cache::settle(&parent);
                let dir = tempfile::Builder::new()
                    .prefix("mmlog-compare-")
                    .tempdir_in(&parent)
                    .expect("create a temporary directory");
                let (took, notes) = engines::run(engine, workload, dir.path());
                drop(dir);
                let mut line = format!("[round {}/{rounds}] {:<8}", round + 1, engine.name());
                for (j, (row, d)) in rows.iter().zip(&took).enumerate() {
                    results.record(first_row + j, e, round, *d);
                    let _ = write!(line, "  {}: {:.3} s", row.label, d.as_secs_f64());
                }
                if let Some(fraction) = notes.cold_resident {
                    results.note_cold_resident(e, fraction);
                    let _ = write!(line, "  (cold: {:.1}% cached)", fraction * 100.0);
                }
                eprintln!("{line}");
            }
        }
        first_row += rows.len();
    }

    let run = RunInfo {
        quick: args.quick,
        rounds,
        facts,
        load_before,
        limits,
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    let report = render(&run, &results, &engines);
    println!("{report}");
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).expect("create the --out file's directory");
        }
        std::fs::write(out, &report).expect("write the --out file");
        eprintln!("wrote {}", out.display());
    }
    ExitCode::SUCCESS
}

/// What the report says about the run besides the results.
struct RunInfo {
    quick: bool,
    rounds: usize,
    facts: Vec<(String, String)>,
    load_before: String,
    limits: Vec<(String, String)>,
    elapsed_secs: f64,
}

fn render(run: &RunInfo, results: &Results, engines: &[Box<dyn engines::Engine>]) -> String {
    let rounds = run.rounds;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## mmlog against okaywal, fjall and SQLite{}\n",
        if run.quick {
            " (--quick smoke run: not a measurement)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "Generated by `mmlog-compare` (benches/compare) on {} UTC, mmlog at {}; {} {} \
         (one run of every engine on every row per round, engines interleaved); the run \
         took {:.0} s.\n",
        utc_now(),
        mmlog_commit(),
        rounds,
        if rounds == 1 { "round" } else { "rounds" },
        run.elapsed_secs
    );
    let _ = writeln!(md, "### Machine\n");
    for (k, v) in &run.facts {
        let _ = writeln!(md, "- {k}: {v}");
    }
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min) at start: {}; at end: {}",
        run.load_before,
        machine::load_average()
    );
    let _ = writeln!(md, "- engines: {}", versions());
    let _ = writeln!(
        md,
        "\nMachine limits, measured at the start of the run (context for the durable and \
         bulk rows):\n"
    );
    for (k, v) in &run.limits {
        let _ = writeln!(md, "- {k}: {v}");
    }
    let _ = writeln!(md, "\n### Results\n");
    md.push_str(&results.tables());
    let _ = writeln!(
        md,
        "\n### Targets of issue 7 (median of the per-round ratios)\n"
    );
    for t in results.targets() {
        let _ = writeln!(md, "- {t}");
    }
    let _ = writeln!(md, "\n### How each engine runs the workloads\n");
    let _ = writeln!(
        md,
        "Every run gets a fresh temporary directory on the file system above, and the \
         file system is synced (`syncfs`) before each run so that one run's write-back \
         does not land in the next. Within a round the engines run back to back, and the \
         order rotates from round to round. Opening and closing are not timed, except in the \
         recovery rows, where opening is the work. Payloads are incompressible, with the \
         record's sequence number in the first 8 bytes; recovery checks that every record \
         came back, in order. Cold cache: every file of the data set is `fdatasync`ed and \
         dropped with `posix_fadvise(DONTNEED)` (no root, no global `drop_caches`); \
         `mincore` then measures what is still cached."
    );
    md.push('\n');
    for (e, engine) in engines.iter().enumerate() {
        let _ = write!(md, "- **{}**: {}", engine.name(), engine.setup());
        if let Some(f) = results.cold_resident[e] {
            let _ = write!(
                md,
                " Before the cold reads, at most {:.1}% of its files were still cached.",
                f * 100.0
            );
        }
        md.push('\n');
    }
    md
}

/// The versions of the peers, from this crate's lock file (the one the run was built
/// with), and of the SQLite library linked in.
fn versions() -> String {
    let lock = include_str!("../Cargo.lock");
    let version_of = |name: &str| -> String {
        let header = format!("name = \"{name}\"\nversion = \"");
        lock.find(&header)
            .and_then(|at| {
                let rest = &lock[at + header.len()..];
                rest.find('"').map(|end| rest[..end].to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "okaywal {}, fjall {} (lsm-tree {}), rusqlite {} with bundled SQLite {}",
        version_of("okaywal"),
        version_of("fjall"),
        version_of("lsm-tree"),
        version_of("rusqlite"),
        rusqlite::version()
    )
}

/// The mmlog commit this binary was built from (`+dirty` when the work tree had
/// changes when the report was written).
fn mmlog_commit() -> String {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("commit `{commit}`{}", if dirty { "+dirty" } else { "" })
        }
        None => "an unknown commit".into(),
    }
}

/// Now, as `YYYY-MM-DD HH:MM`, in UTC (civil-from-days, proleptic Gregorian).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}
