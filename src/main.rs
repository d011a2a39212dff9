//! The `mmlog` command: benchmark, inspect, verify and repair logs.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmark, inspect, verify and repair mmlog logs.
#[derive(Debug, Parser)]
#[command(
    name = "mmlog",
    version,
    about,
    after_help = "Examples:\n  mmlog bench                 run the default workloads in a temporary directory\n  mmlog verify /var/lib/app/wal\n  mmlog dump /var/lib/app/wal --from 100 --to 120"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmark workloads and compare each with the machine's limit.
    #[command(after_help = "Example:\n  mmlog bench --records 200000 --json")]
    Bench(cli::bench::BenchArgs),
    /// Check every segment of a log, read-only. Exit 0 intact, 1 damaged, 2 error.
    #[command(after_help = "Example:\n  mmlog verify ./wal && echo intact")]
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the records of a log, read-only, one line each.
    #[command(after_help = "Example:\n  mmlog dump ./wal --from 10 --to 20 --hex | head")]
    Dump(cli::inspect::DumpArgs),
    /// List the checkpoints of a log with their LSN, size and whether each verifies.
    #[command(after_help = "Example:\n  mmlog checkpoints ./wal --json")]
    Checkpoints {
        /// The log directory.
        dir: PathBuf,
        /// Print one JSON object per checkpoint instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => cli::bench::run(&args),
        Command::Verify { dir, json } => cli::inspect::verify(&dir, json),
        Command::Dump(args) => cli::inspect::dump(&args),
        Command::Checkpoints { dir, json } => cli::inspect::checkpoints(&dir, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmlog: {e}");
            ExitCode::from(2)
        }
    }
}
