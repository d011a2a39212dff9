//! `repair`: apply a recovery mode for real, after copying every byte it takes out of
//! the log into a backup directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, IoOp, Result};
use crate::options::{Options, RecoveryMode};
use crate::wal::report::RecoveryReport;
use crate::wal::{Wal, lock_dir, recovery};

/// One range saved before repair took it out of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The log file it came from.
    pub source: PathBuf,
    /// Byte offset in `source`.
    pub offset: u64,
    /// Length.
    pub bytes: u64,
    /// Where the bytes were saved.
    pub saved_as: PathBuf,
}

/// What [`repair`] found and did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RepairReport {
    /// What recovery found (read-only, before anything changed).
    pub found: RecoveryReport,
    /// The ranges saved (or, for a dry run, that would be saved).
    pub backups: Vec<Backup>,
    /// The backup directory.
    pub backup_dir: PathBuf,
    /// False for a dry run: nothing was written anywhere.
    pub applied: bool,
}

impl RepairReport {
    /// True when the log had nothing to repair.
    pub fn nothing_to_do(&self) -> bool {
        self.backups.is_empty() && self.found.dropped.is_empty()
    }
}

/// Repairs the log in `dir` with `mode` (`opts.recovery_mode` is ignored): under the
/// exclusive lock (a log another process holds is refused with [`Error::Locked`]),
/// recovers read-only to learn what `mode` would trim or remove, copies each of those
/// byte ranges and files into `backup_dir` (which must be empty or absent) and syncs
/// them, then recovers for real and closes the log cleanly. With `dry_run`, stops
/// after the read-only recovery and changes nothing.
///
/// `SkipCorrupted` is refused: it leaves damaged frames in place and reads around
/// them, so it has nothing to repair. Use `TolerateCorruptedTail` (trim a torn tail)
/// or `PointInTime` (cut the log at the first damage).
pub fn repair(
    dir: impl AsRef<Path>,
    opts: Options,
    mode: RecoveryMode,
    backup_dir: impl AsRef<Path>,
    dry_run: bool,
) -> Result<RepairReport> {
    let started = Instant::now();
    if mode == RecoveryMode::SkipCorrupted {
        return Err(Error::InvalidArgument(
            "repair trims or cuts the log; SkipCorrupted only reads around damage".into(),
        ));
    }
    let opts = Options {
        read_only: false,
        create_if_missing: false,
        recovery_mode: mode,
        ..opts
    };
    opts.validate()?;
    let backup_dir = backup_dir.as_ref().to_path_buf();
    // A dry run writes nothing, not even the lock owner's pid: a shared lock is
    // enough to keep writers out while it looks.
    let lock_opts = Options {
        read_only: dry_run,
        ..opts.clone()
    };
    let (dir, lock) = lock_dir(dir.as_ref(), &lock_opts)?;
    let found = recovery::scan(
        &dir,
        &opts.env,
        mode,
        false,
        opts.recovery_progress.as_ref(),
        None,
    )?;
    let mut report = found.report;
    report.removed_files.extend(found.remove.iter().cloned());
    report.first_lsn = crate::Lsn(found.first_lsn);
    report.next_lsn = crate::Lsn(found.next_lsn);
    report.last_lsn = crate::Lsn(found.next_lsn.saturating_sub(1));
    report.segments = found.files.len() as u64;
    report.duration = started.elapsed();
    drop(found.files);

    let mut backups = Vec::new();
    for path in &report.removed_files {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        backups.push(Backup {
            source: path.clone(),
            offset: 0,
            bytes,
            saved_as: backup_dir.join(file_name(path)),
        });
    }
    for d in &report.dropped {
        if d.bytes == 0 || report.removed_files.contains(&d.file) {
            continue;
        }
        backups.push(Backup {
            source: d.file.clone(),
            offset: d.offset,
            bytes: d.bytes,
            saved_as: backup_dir.join(format!("{}@{}", file_name(&d.file), d.offset)),
        });
    }
    if dry_run {
        return Ok(RepairReport {
            found: report,
            backups,
            backup_dir,
            applied: false,
        });
    }
    if !backups.is_empty() {
        save(&backup_dir, &backups)?;
    }
    let (wal, _) = Wal::open_locked(dir, opts, lock, started, None)?;
    wal.close()?;
    Ok(RepairReport {
        found: report,
        backups,
        backup_dir,
        applied: true,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Copies every range into the backup directory and makes the copies durable.
fn save(backup_dir: &Path, backups: &[Backup]) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};

    fn io(op: IoOp, path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |e| Error::io(op, path, e)
    }
    if backup_dir.exists()
        && std::fs::read_dir(backup_dir)
            .map_err(io(IoOp::List, backup_dir))?
            .next()
            .is_some()
    {
        return Err(Error::InvalidArgument(format!(
            "backup directory {} is not empty",
            backup_dir.display()
        )));
    }
    std::fs::create_dir_all(backup_dir).map_err(io(IoOp::Create, backup_dir))?;
    for b in backups {
        let mut src = std::fs::File::open(&b.source).map_err(io(IoOp::Open, &b.source))?;
        src.seek(SeekFrom::Start(b.offset))
            .map_err(io(IoOp::Read, &b.source))?;
        let mut dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&b.saved_as)
            .map_err(io(IoOp::Create, &b.saved_as))?;
        let copied = std::io::copy(&mut Read::by_ref(&mut src).take(b.bytes), &mut dst)
            .map_err(io(IoOp::Write, &b.saved_as))?;
        if copied != b.bytes {
            return Err(Error::io(
                IoOp::Read,
                &b.source,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        dst.flush().map_err(io(IoOp::Write, &b.saved_as))?;
        dst.sync_all().map_err(io(IoOp::SyncFile, &b.saved_as))?;
    }
    std::fs::File::open(backup_dir)
        .and_then(|d| d.sync_all())
        .map_err(io(IoOp::SyncDir, backup_dir))?;
    Ok(())
}
