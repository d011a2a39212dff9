//! The `mmlog` command: benchmark, inspect, verify and repair logs.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{EXIT_ERROR, bench, checkpoints, dump, repair, stat, verify};

const EXAMPLES: &str = "\
Exit status (every subcommand): 0 ok, 1 damage found, 2 usage, I/O or lock error.
Only `repair` writes to a log; the others open it read-only.

Examples:
  mmlog bench                       run the default workloads in a temporary directory
  mmlog stat /var/lib/app/wal       segments, checkpoints, LSNs, lock holder
  mmlog verify /var/lib/app/wal     check everything; exit 1 names each damage
  mmlog dump /var/lib/app/wal --from 100 --to 120
  mmlog repair /var/lib/app/wal --dry-run";

/// Benchmark, inspect, verify and repair mmlog logs.
#[derive(Debug, Parser)]
#[command(name = "mmlog", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmark workloads, each next to the machine's limit for the same work.
    #[command(
        after_help = "Example:\n  mmlog bench --threads 4 --json",
        after_long_help = bench::LONG_HELP
    )]
    Bench(bench::BenchArgs),
    /// Show a log's segments, checkpoints, LSN range, size and lock holder.
    #[command(
        after_help = "Example:\n  mmlog stat ./wal --json",
        after_long_help = stat::LONG_HELP
    )]
    Stat(stat::StatArgs),
    /// Check every segment and checkpoint. Exit 0 intact, 1 damaged, 2 error.
    #[command(
        after_help = "Example:\n  mmlog verify ./wal && echo intact",
        after_long_help = verify::LONG_HELP
    )]
    Verify(verify::VerifyArgs),
    /// Print the records of a log, one line each (streams; safe to pipe into head).
    #[command(
        after_help = "Example:\n  mmlog dump ./wal --from 10 --to 20 --hex | head",
        after_long_help = dump::LONG_HELP
    )]
    Dump(dump::DumpArgs),
    /// List the checkpoints with their LSN, size and whether each verifies.
    #[command(
        after_help = "Example:\n  mmlog checkpoints ./wal --json",
        after_long_help = checkpoints::LONG_HELP
    )]
    Checkpoints(checkpoints::CheckpointsArgs),
    /// Trim damage for real, after copying every removed byte to a backup directory.
    #[command(
        after_help = "Example:\n  mmlog repair ./wal --dry-run",
        after_long_help = repair::LONG_HELP
    )]
    Repair(repair::RepairArgs),
}

fn main() -> ExitCode {
    // A bug must still end in one line, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("mmlog: internal error{at}: {what}: this is a bug in mmlog; please report it");
    }));
    let cli = Cli::parse();
    let outcome = std::panic::catch_unwind(|| match &cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Stat(args) => stat::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Dump(args) => dump::run(args),
        Command::Checkpoints(args) => checkpoints::run(args),
        Command::Repair(args) => repair::run(args),
    });
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            if !e.is_quiet() {
                eprintln!("mmlog: {e}");
            }
            ExitCode::from(e.code())
        }
        Err(_) => ExitCode::from(EXIT_ERROR),
    }
}
