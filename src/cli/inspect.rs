//! Read-only inspection: `verify` and `dump`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mmlog::{Lsn, Options, RecoveryMode, RecoveryReport, Wal};

use super::out::{Json, array, emit, hex, push_str};
use super::{CliError, CliResult};

/// Opens `dir` read-only in `mode`, after checking it holds a log at all.
fn open_read_only(dir: &Path, mode: RecoveryMode) -> CliResult<(Wal, RecoveryReport)> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| CliError::new(format!("{}: {e} (check the path)", dir.display())))?;
    if !meta.is_dir() {
        return Err(CliError::new(format!(
            "{} is not a directory (give the log directory)",
            dir.display()
        )));
    }
    let has_segments = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".seg"));
    if !has_segments {
        return Err(CliError::new(format!(
            "{} holds no mmlog segments (is it the right directory?)",
            dir.display()
        )));
    }
    let opts = Options {
        read_only: true,
        recovery_mode: mode,
        ..Options::default()
    };
    Ok(Wal::open(dir, opts)?)
}

fn dropped_json(report: &RecoveryReport) -> String {
    let items: Vec<String> = report
        .dropped
        .iter()
        .map(|d| {
            Json::new()
                .str("file", &d.file.display().to_string())
                .u64("offset", d.offset)
                .u64("lsn", d.first_lsn.0)
                .str("kind", &d.reason.to_string())
                .bool("torn_tail", d.torn_tail)
                .u64("records", d.records)
                .u64("bytes", d.bytes)
                .finish()
        })
        .collect();
    array(&items)
}

/// `mmlog verify DIR`: exit 0 when every frame and header checks out, 1 on damage
/// (each one named), 2 when the log cannot be read at all.
pub(crate) fn verify(dir: &Path, json: bool) -> CliResult<ExitCode> {
    let mut out = io::stdout().lock();
    // Salvage mode walks past damage, so every damaged range is listed, not just the
    // first; a damaged header still stops it with an error.
    let result = open_read_only(dir, RecoveryMode::SkipCorrupted);
    let (wal, report) = match result {
        Ok(v) => v,
        Err(e) => {
            return Err(e);
        }
    };
    let mut damage: Vec<String> = report
        .dropped
        .iter()
        .map(|d| {
            format!(
                "{} at byte {} (LSN {}): {}{}",
                d.file.display(),
                d.offset,
                d.first_lsn,
                d.reason,
                if d.torn_tail { " (torn tail)" } else { "" }
            )
        })
        .collect();
    // Read every record back through the reader as well.
    let mut records = 0u64;
    for r in wal.iter_from(Lsn(0))? {
        match r {
            Ok(_) => records += 1,
            Err(e) => {
                damage.push(e.to_string());
                break;
            }
        }
    }
    let intact = damage.is_empty();
    if json {
        let line = Json::new()
            .str("dir", &dir.display().to_string())
            .bool("intact", intact)
            .u64("segments", report.segments)
            .u64("records", records)
            .u64("first_lsn", report.first_lsn.0)
            .u64("last_lsn", report.last_lsn.0)
            .bool("clean_shutdown", report.clean_shutdown)
            .raw("damage", &dropped_json(&report))
            .finish();
        writeln!(out, "{line}")?;
    } else if intact {
        writeln!(
            out,
            "{}: intact, {} records (LSN {}..={}) in {} segment(s), last shutdown {}",
            dir.display(),
            records,
            report.first_lsn,
            report.last_lsn,
            report.segments,
            if report.clean_shutdown {
                "clean"
            } else {
                "not clean"
            }
        )?;
    } else {
        writeln!(out, "{}: DAMAGED", dir.display())?;
        for d in &damage {
            writeln!(out, "  {d}")?;
        }
        writeln!(
            out,
            "  ({records} readable records; `mmlog repair` can trim the damage)"
        )?;
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Arguments of `mmlog dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// The log directory.
    dir: PathBuf,
    /// First LSN to print.
    #[arg(long)]
    from: Option<u64>,
    /// Last LSN to print.
    #[arg(long)]
    to: Option<u64>,
    /// Print the whole payload in hex.
    #[arg(long, conflicts_with_all = ["raw", "json"])]
    hex: bool,
    /// Write the payloads themselves, back to back, and nothing else.
    #[arg(long, conflicts_with = "json")]
    raw: bool,
    /// One JSON object per record: {"lsn", "len", "hex"}.
    #[arg(long)]
    json: bool,
}

/// `mmlog dump DIR`: one line per record, streaming; stops quietly when the reader of
/// its output goes away.
pub(crate) fn dump(args: &DumpArgs) -> CliResult<ExitCode> {
    let (wal, _report) = open_read_only(&args.dir, RecoveryMode::TolerateCorruptedTail)?;
    let to = args.to.unwrap_or(u64::MAX);
    let mut out = io::BufWriter::new(io::stdout().lock());
    for r in wal.iter_from(Lsn(args.from.unwrap_or(0)))? {
        let r = r?;
        if r.lsn().0 > to {
            break;
        }
        let p = r.payload();
        let open = if args.raw {
            match out.write_all(p) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => false,
                Err(e) => return Err(e.into()),
            }
        } else if args.json {
            let mut h = String::new();
            push_str(&mut h, &hex(p, usize::MAX));
            let line = Json::new()
                .u64("lsn", r.lsn().0)
                .u64("len", p.len() as u64)
                .raw("hex", &h)
                .finish();
            emit(&mut out, &line)?
        } else {
            let shown = if args.hex { usize::MAX } else { 16 };
            emit(
                &mut out,
                &format!("{:>12}  {:>8}  {}", r.lsn(), p.len(), hex(p, shown)),
            )?
        };
        if !open {
            return Ok(ExitCode::SUCCESS);
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `mmlog checkpoints DIR`: every checkpoint, newest first, verified in full. Exit 0
/// when all verify, 1 when one does not.
pub(crate) fn checkpoints(dir: &Path, json: bool) -> CliResult<ExitCode> {
    let (wal, report) = open_read_only(dir, RecoveryMode::TolerateCorruptedTail)?;
    let files = wal.checkpoint_files()?;
    let used = report.checkpoint.as_ref().map(|(_, p)| p.clone());
    let mut out = io::stdout().lock();
    if json {
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
                    f.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    f.lsn.to_string(),
                    f.file_bytes.to_string(),
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
        super::out::table(&mut out, &["checkpoint", "lsn", "bytes", "status"], &rows)?;
    }
    Ok(if files.iter().all(|f| f.problem.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
