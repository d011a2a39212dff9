//! Finding and opening the log a subcommand inspects: the path checks that turn "no
//! such directory", "empty" and "not a log" into one clear line each, recovery modes
//! as command-line values, and the read-only open every inspecting subcommand uses.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use mmlog::{Options, RecoveryMode, RecoveryProgress, RecoveryReport, Wal};

use super::out::{bar, spinner};
use super::{CliError, CliResult};

/// A recovery mode, as `--mode` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Trim a torn tail (the result of a crash); any other damage is an error.
    Tolerate,
    /// Any damage at all, even a torn tail, is an error.
    Absolute,
    /// Stop at the first damage and keep the prefix before it.
    PointInTime,
    /// Skip damaged records and keep every valid one after them (lists every damage).
    Skip,
}

impl Mode {
    pub(crate) fn recovery(self) -> RecoveryMode {
        match self {
            Mode::Tolerate => RecoveryMode::TolerateCorruptedTail,
            Mode::Absolute => RecoveryMode::AbsoluteConsistency,
            Mode::PointInTime => RecoveryMode::PointInTime,
            Mode::Skip => RecoveryMode::SkipCorrupted,
        }
    }

    /// The name `--mode` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Tolerate => "tolerate",
            Mode::Absolute => "absolute",
            Mode::PointInTime => "point-in-time",
            Mode::Skip => "skip",
        }
    }
}

/// True for a segment file name: 20 decimal digits and `.seg`.
pub(crate) fn is_segment_name(name: &str) -> bool {
    name.strip_suffix(".seg")
        .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The LSN in a checkpoint file name (`checkpoint-<20 digits>.ckpt`).
pub(crate) fn checkpoint_lsn(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks that `dir` is a directory holding an mmlog log (at least one segment file),
/// and says clearly what it is otherwise. Reads nothing but the directory listing.
pub(crate) fn check_log_dir(dir: &Path) -> CliResult<()> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::usage(
                format!("{} does not exist", dir.display()),
                "check the path (mmlog never creates a log here)",
            ));
        }
        Err(e) => return Err(CliError::io("stat", dir, &e)),
    };
    if !meta.is_dir() {
        return Err(CliError::usage(
            format!("{} is a file, not a log directory", dir.display()),
            "give the directory that holds the log's *.seg files",
        ));
    }
    let mut others: Vec<String> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CliError::io("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CliError::io("list", dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_segment_name(&name) {
            return Ok(());
        }
        others.push(name);
    }
    if others.is_empty() {
        return Err(CliError::usage(
            format!("{} is empty: no mmlog log here", dir.display()),
            "check the path",
        ));
    }
    others.sort();
    let example = others.first().cloned().unwrap_or_default();
    Err(CliError::usage(
        format!(
            "{} is not an mmlog log: no segment files (*.seg), but {} other file(s) such as {example:?}",
            dir.display(),
            others.len()
        ),
        "check the path",
    ))
}

/// Opens the log in `dir` read-only in `mode` (a shared lock; nothing is written),
/// with a progress bar (on a terminal) while recovery scans it. No path checks: see
/// [`open`].
pub(crate) fn try_open(dir: &Path, mode: RecoveryMode) -> mmlog::Result<(Wal, RecoveryReport)> {
    let progress = bar(0, "recovering (read-only)");
    let hook = progress.clone();
    let opts = Options {
        read_only: true,
        recovery_mode: mode,
        prefault: false,
        recovery_progress: Some(RecoveryProgress::new(move |done, total| {
            hook.set_length(total);
            hook.set_position(done);
        })),
        ..Options::default()
    };
    let result = Wal::open(dir, opts);
    progress.finish_and_clear();
    result
}

/// Every checkpoint file of the open log, verified in full, with a spinner meanwhile
/// (each file's whole payload is checksummed).
pub(crate) fn checkpoint_files(wal: &Wal) -> mmlog::Result<Vec<mmlog::CheckpointFileInfo>> {
    let spin = spinner("verifying checkpoints");
    let files = wal.checkpoint_files();
    spin.finish_and_clear();
    files
}

/// [`check_log_dir`], then [`try_open`], with errors turned into one line that says
/// what to do.
pub(crate) fn open(dir: &Path, mode: RecoveryMode) -> CliResult<(Wal, RecoveryReport)> {
    check_log_dir(dir)?;
    try_open(dir, mode).map_err(|e| error(dir, e))
}

/// An error of opening the log in `dir`, with a hint naming the directory.
pub(crate) fn error(dir: &Path, e: mmlog::Error) -> CliError {
    let corrupt = e.is_corruption() && !matches!(e, mmlog::Error::UnsupportedVersion { .. });
    let err = CliError::from(e);
    if corrupt {
        let d = shell_word(dir);
        err.with_hint(format!(
            "run `mmlog verify {d}` to list every damage and how to repair it"
        ))
    } else {
        err
    }
}

/// `dir` as one would type it in a hint (quoted when it has spaces or quotes).
pub(crate) fn shell_word(dir: &Path) -> String {
    let s = dir.display().to_string();
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '$' | '`' | '\\'))
    {
        format!("'{}'", s.replace('\'', r"'\''"))
    } else {
        s
    }
}

/// Every segment and checkpoint-looking file of `dir` with its size, for when the log
/// cannot be opened (another process holds it).
pub(crate) fn list_files(dir: &Path) -> CliResult<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CliError::io("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CliError::io("list", dir, &e))?;
        // A file removed between the listing and the stat (the writer is running).
        if let Ok(m) = entry.metadata()
            && m.is_file()
        {
            files.push((entry.path(), m.len()));
        }
    }
    files.sort();
    Ok(files)
}
