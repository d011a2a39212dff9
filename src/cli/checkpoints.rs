//! `mmlog checkpoints DIR`: every checkpoint file, newest first, verified in full.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mmlog::RecoveryMode;

use super::open::{check_log_dir, checkpoint_files, error, try_open};
use super::out::{Json, file_name, size, text_table};
use super::{CliResult, EXIT_DAMAGE, EXIT_OK};

/// The long help of `mmlog checkpoints`: exit codes and the JSON shape.
pub(crate) const LONG_HELP: &str = "\
Lists every checkpoint file, newest first, each verified in full (header, size,
payload checksum), and says which one recovery starts from. Read-only.

Exit status: 0 every checkpoint verifies (or there is none), 1 one does not, 2 usage
or I/O error, a log another process holds, or a path that holds no log.

JSON (--json): one object per checkpoint, one per line, newest first (no line when
there is none); keys always present, in this order:
  {\"file\": str, \"lsn\": int, \"file_bytes\": int, \"valid\": bool,
   \"used_by_recovery\": bool, \"problem\": str (\"\" when valid)}

Examples:
  mmlog checkpoints ./wal
  mmlog checkpoints ./wal --json";

/// Arguments of `mmlog checkpoints`.
#[derive(Debug, Args)]
pub(crate) struct CheckpointsArgs {
    /// The log directory.
    dir: PathBuf,
    /// Print one JSON object per checkpoint instead of a table (shape in --help).
    #[arg(long)]
    json: bool,
}

/// `mmlog checkpoints DIR`.
pub(crate) fn run(args: &CheckpointsArgs) -> CliResult<ExitCode> {
    let dir = args.dir.as_path();
    check_log_dir(dir)?;
    // Damage in the segments does not stop the listing: read around it if need be.
    let (wal, report) = match try_open(dir, RecoveryMode::TolerateCorruptedTail) {
        Err(e) if e.is_corruption() => try_open(dir, RecoveryMode::SkipCorrupted),
        other => other,
    }
    .map_err(|e| error(dir, e))?;
    let files = checkpoint_files(&wal).map_err(|e| error(dir, e))?;
    let used = report.checkpoint.as_ref().map(|(_, p)| p.clone());
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        for f in &files {
            let line = Json::new()
                .str("file", &f.path.display().to_string())
                .u64("lsn", f.lsn.0)
                .u64("file_bytes", f.file_bytes)
                .bool("valid", f.problem.is_none())
                .bool("used_by_recovery", used.as_ref() == Some(&f.path))
                .str(
                    "problem",
                    &f.problem
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                )
                .finish();
            writeln!(out, "{line}")?;
        }
    } else if files.is_empty() {
        writeln!(out, "{}: no checkpoints", dir.display())?;
    } else {
        let rows: Vec<Vec<String>> = files
            .iter()
            .map(|f| {
                vec![
                    file_name(&f.path),
                    f.lsn.to_string(),
                    size(f.file_bytes),
                    match &f.problem {
                        None if used.as_ref() == Some(&f.path) => {
                            "ok (recovery starts here)".into()
                        }
                        None => "ok".into(),
                        Some(p) => format!("BAD: {p}"),
                    },
                ]
            })
            .collect();
        text_table(&mut out, &["checkpoint", "lsn", "size", "status"], &rows)?;
    }
    out.flush()?;
    Ok(ExitCode::from(
        if files.iter().all(|f| f.problem.is_none()) {
            EXIT_OK
        } else {
            EXIT_DAMAGE
        },
    ))
}
