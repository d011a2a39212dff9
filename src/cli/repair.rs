//! `mmlog repair DIR`: apply a recovery mode for real, after copying every byte it
//! removes into a backup directory. The only subcommand that writes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use mmlog::{Options, RecoveryMode, RepairReport};

use super::open::{check_log_dir, error, shell_word, try_open};
use super::out::{Json, array, file_name, size, spinner, text_table};
use super::{CliError, CliResult, EXIT_OK};

/// The long help of `mmlog repair`: what it does, exit codes and the JSON shape.
pub(crate) const LONG_HELP: &str = "\
Recovers the log in the chosen mode under its exclusive lock, copies every byte range
and file that mode removes into the backup directory (synced), then applies the mode
for real and closes the log cleanly. A log with nothing to repair is not written at
all. Refused while another process holds the log, and when there is something to save
and the backup directory exists and is not empty. --dry-run only reads.

Modes: tolerate (the default) trims a torn tail, what a crash leaves, and refuses any
other damage; point-in-time cuts the log at the first damage and removes everything
after it. Each backup file is named <segment file>@<offset> (a range from that offset
on) or <segment file> (a whole file).

Exit status: 0 repaired, nothing to repair, or dry run done; 1 damage this mode cannot
repair (nothing was changed); 2 usage or I/O error, a log another process holds, or a
path that holds no log.

JSON (--json): one object on one line, keys always present, in this order:
  {\"dir\": str, \"mode\": \"tolerate\"|\"point-in-time\", \"dry_run\": bool,
   \"applied\": bool, \"nothing_to_do\": bool, \"backup_dir\": str|null,
   \"damage\": [{\"file\": str, \"offset\": int, \"lsn\": int, \"reason\": str,
               \"torn_tail\": bool, \"bytes\": int}],
   \"backups\": [{\"source\": str, \"offset\": int, \"bytes\": int, \"saved_as\": str}],
   \"first_lsn\": int|null, \"last_lsn\": int|null}
  first_lsn/last_lsn: what the log holds after the repair (null for a dry run that
  would change something). backup_dir is null when nothing needed saving.

Examples:
  mmlog repair ./wal --dry-run
  mmlog repair ./wal --mode point-in-time --backup /safe/wal-damage";

/// The modes repair can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RepairMode {
    /// Trim a torn tail (what a crash leaves); refuse any other damage.
    Tolerate,
    /// Cut the log at the first damage; remove everything after it.
    PointInTime,
}

impl RepairMode {
    fn recovery(self) -> RecoveryMode {
        match self {
            RepairMode::Tolerate => RecoveryMode::TolerateCorruptedTail,
            RepairMode::PointInTime => RecoveryMode::PointInTime,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RepairMode::Tolerate => "tolerate",
            RepairMode::PointInTime => "point-in-time",
        }
    }
}

/// Arguments of `mmlog repair`.
#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// The log directory.
    dir: PathBuf,
    /// What to remove: a torn tail only, or everything from the first damage on.
    #[arg(long, value_enum, default_value_t = RepairMode::Tolerate)]
    mode: RepairMode,
    /// Where to copy what is removed [default: <DIR>.repair-<unix seconds>, beside
    /// the log]. Must be empty or absent, and outside the log directory.
    #[arg(long, value_name = "DIR")]
    backup: Option<PathBuf>,
    /// Show what would be removed and where it would be saved; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object instead of text (shape in --help).
    #[arg(long)]
    json: bool,
}

/// `mmlog repair DIR`.
pub(crate) fn run(args: &RepairArgs) -> CliResult<ExitCode> {
    let dir = args.dir.as_path();
    check_log_dir(dir)?;
    let canonical = std::fs::canonicalize(dir).map_err(|e| CliError::io("resolve", dir, &e))?;
    let backup = match &args.backup {
        Some(b) => b.clone(),
        None => default_backup(&canonical)?,
    };
    check_backup_outside(&canonical, &backup)?;
    if let Some(pid) = mmlog::inspect::lock_holder(dir).map_err(|e| error(dir, e))? {
        return Err(locked(dir, pid));
    }
    let mode = args.mode.recovery();
    // Always look first: a log with nothing to repair is not opened for writing at all.
    let plan = repair(dir, args.mode, &backup, true)?;
    if !plan.backups.is_empty() {
        check_backup_empty(&backup)?;
    }
    let report = if args.dry_run || plan.nothing_to_do() {
        plan
    } else {
        repair(dir, args.mode, &backup, false)?
    };
    // What the log holds now (or would hold).
    let range = if report.applied || report.nothing_to_do() {
        let (wal, after) = try_open(dir, mode).map_err(|e| error(dir, e))?;
        drop(wal);
        Some((after.first_lsn.0, after.last_lsn.0))
    } else {
        None
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        print_json(&mut out, dir, args, &report, range)?;
    } else {
        print_text(&mut out, dir, args, &report, range)?;
    }
    out.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}

fn repair(dir: &Path, mode: RepairMode, backup: &Path, dry_run: bool) -> CliResult<RepairReport> {
    let spin = spinner(if dry_run {
        "reading the log"
    } else {
        "backing up and repairing"
    });
    let result = mmlog::repair(dir, Options::default(), mode.recovery(), backup, dry_run);
    spin.finish_and_clear();
    result.map_err(|e| match e {
        mmlog::Error::Locked { pid, .. } => locked(dir, pid),
        e if e.is_corruption() && mode == RepairMode::Tolerate => {
            let d = shell_word(dir);
            CliError::damage(
                e.to_string(),
                format!(
                    "tolerate mode trims only a torn tail, and this is not one; `mmlog repair {d} --mode point-in-time` cuts the log at the first damage after backing up everything it removes (nothing was changed)"
                ),
            )
        }
        e if e.is_corruption() => {
            CliError::from(e).with_hint("repair cannot fix this damage (nothing was changed)")
        }
        e => error(dir, e),
    })
}

fn locked(dir: &Path, pid: Option<u32>) -> CliError {
    CliError::usage(
        match pid {
            Some(p) => format!("{} is locked by process {p}", dir.display()),
            None => format!("{} is locked by another process", dir.display()),
        },
        "repair needs the log to itself: stop that process first (nothing was changed)",
    )
}

/// `<dir>.repair-<unix seconds>`, beside the log.
fn default_backup(canonical: &Path) -> CliResult<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (Some(parent), Some(name)) = (canonical.parent(), canonical.file_name()) else {
        return Err(CliError::usage(
            format!(
                "{} has no parent directory to put the backup in",
                canonical.display()
            ),
            "give one with --backup DIR",
        ));
    };
    Ok(parent.join(format!("{}.repair-{secs}", name.to_string_lossy())))
}

/// Refuses a backup directory that exists and is not empty.
fn check_backup_empty(backup: &Path) -> CliResult<()> {
    match std::fs::read_dir(backup) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CliError::usage(
                    format!(
                        "backup directory {} exists and is not empty",
                        backup.display()
                    ),
                    "give an empty or new one with --backup DIR",
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(CliError::usage(
                format!("backup path {} is a file", backup.display()),
                "give a directory with --backup DIR",
            ));
        }
        Err(e) => return Err(CliError::io("list", backup, &e)),
    }
    Ok(())
}

/// Refuses a backup directory inside the log directory.
fn check_backup_outside(log: &Path, backup: &Path) -> CliResult<()> {
    // Resolve the longest existing ancestor, then compare with the log directory.
    let absolute = if backup.is_absolute() {
        backup.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| CliError::io("resolve", Path::new("."), &e))?
            .join(backup)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            break;
        };
        rest.push(name.to_os_string());
        existing = parent;
    }
    let mut resolved = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for name in rest.iter().rev() {
        resolved.push(name);
    }
    if resolved.starts_with(log) {
        return Err(CliError::usage(
            format!(
                "backup directory {} is inside the log directory",
                backup.display()
            ),
            "put the backup outside the log (the default is beside it)",
        ));
    }
    Ok(())
}

fn print_json(
    out: &mut dyn Write,
    dir: &Path,
    args: &RepairArgs,
    r: &RepairReport,
    range: Option<(u64, u64)>,
) -> io::Result<()> {
    let damage: Vec<String> = r
        .found
        .dropped
        .iter()
        .map(|d| {
            Json::new()
                .str("file", &d.file.display().to_string())
                .u64("offset", d.offset)
                .u64("lsn", d.first_lsn.0)
                .str("reason", &d.reason.to_string())
                .bool("torn_tail", d.torn_tail)
                .u64("bytes", d.bytes)
                .finish()
        })
        .collect();
    let backups: Vec<String> = r
        .backups
        .iter()
        .map(|b| {
            Json::new()
                .str("source", &b.source.display().to_string())
                .u64("offset", b.offset)
                .u64("bytes", b.bytes)
                .str("saved_as", &b.saved_as.display().to_string())
                .finish()
        })
        .collect();
    let backup_dir = (!r.backups.is_empty()).then(|| r.backup_dir.display().to_string());
    let line = Json::new()
        .str("dir", &dir.display().to_string())
        .str("mode", args.mode.name())
        .bool("dry_run", args.dry_run)
        .bool("applied", r.applied && !r.nothing_to_do())
        .bool("nothing_to_do", r.nothing_to_do())
        .opt_str("backup_dir", backup_dir.as_deref())
        .raw("damage", &array(&damage))
        .raw("backups", &array(&backups))
        .opt_u64("first_lsn", range.map(|r| r.0))
        .opt_u64("last_lsn", range.map(|r| r.1))
        .finish();
    writeln!(out, "{line}")
}

fn print_text(
    out: &mut dyn Write,
    dir: &Path,
    args: &RepairArgs,
    r: &RepairReport,
    range: Option<(u64, u64)>,
) -> io::Result<()> {
    let mode = args.mode.name();
    if r.nothing_to_do() {
        writeln!(
            out,
            "{}: nothing to repair in mode {mode}; nothing was written",
            dir.display()
        )?;
    } else if r.applied {
        writeln!(out, "{}: repaired in mode {mode}", dir.display())?;
    } else {
        writeln!(
            out,
            "{}: dry run, nothing changed; mode {mode} would remove:",
            dir.display()
        )?;
    }
    for d in &r.found.dropped {
        writeln!(
            out,
            "  damage: {} at byte {} (LSN {} on): {}{}",
            file_name(&d.file),
            d.offset,
            d.first_lsn,
            d.reason,
            if d.torn_tail { ", torn tail" } else { "" }
        )?;
    }
    if !r.backups.is_empty() {
        let rows: Vec<Vec<String>> = r
            .backups
            .iter()
            .map(|b| {
                vec![
                    file_name(&b.source),
                    if b.offset == 0 {
                        "whole file".to_string()
                    } else {
                        format!("from byte {}", b.offset)
                    },
                    size(b.bytes),
                    b.saved_as.display().to_string(),
                ]
            })
            .collect();
        let mut buf = Vec::new();
        let saved = if r.applied {
            "saved as"
        } else {
            "would be saved as"
        };
        text_table(&mut buf, &["removed", "range", "bytes", saved], &rows)?;
        for line in String::from_utf8_lossy(&buf).lines() {
            writeln!(out, "  {line}")?;
        }
        let total: u64 = r.backups.iter().map(|b| b.bytes).sum();
        writeln!(
            out,
            "backup: {} ({} file(s), {})",
            r.backup_dir.display(),
            r.backups.len(),
            size(total)
        )?;
    }
    match range {
        Some((first, last)) if last >= first => writeln!(
            out,
            "the log holds LSN {first}..={last} ({} records)",
            last - first + 1
        )?,
        Some(_) => writeln!(out, "the log holds no records")?,
        None => {
            if let Some(first_lost) = r.found.dropped.iter().map(|d| d.first_lsn.0).min() {
                writeln!(
                    out,
                    "the log would keep the records before LSN {first_lost}; run without --dry-run to apply"
                )?;
            }
        }
    }
    Ok(())
}
