//! `mmlog verify DIR`: check every segment and checkpoint, read-only, and name each
//! damage with its file, offset, LSN and kind.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mmlog::{CheckpointRejection, CorruptionKind, DropReason, Dropped, Lsn};

use super::open::{Mode, check_log_dir, checkpoint_lsn, shell_word, try_open};
use super::out::{Json, array, bar, file_name, size, str_array, text_table};
use super::{CliResult, EXIT_DAMAGE, EXIT_OK};

/// The long help of `mmlog verify`: exit codes, modes and the JSON shape.
pub(crate) const LONG_HELP: &str = "\
Exit status: 0 intact, 1 damaged (each damage listed), 2 usage or I/O error, a log
another process holds, or a path that holds no log.

Modes: skip (the default) reads past damage and lists every damaged range; tolerate,
absolute and point-in-time recover as an open in that mode would, and list the
damage that mode trims or the first damage it refuses. A torn tail (what a crash
leaves) is listed as damage in every mode: `mmlog repair` trims it. Every checkpoint
file is verified in full; a bad one is damage.

JSON (--json): one object on one line, keys always present, in this order:
  {\"dir\": str, \"mode\": str, \"intact\": bool,
   \"opens\": bool            (an open in this mode succeeds),
   \"segments\": int|null, \"records\": int|null, \"first_lsn\": int|null,
   \"last_lsn\": int|null, \"clean_shutdown\": bool|null,
   \"checkpoints\": int|null (checkpoint files verified),
   \"damage\": [{\"file\": str, \"object\": \"segment\"|\"checkpoint\",
               \"offset\": int|null, \"lsn\": int|null, \"kind\": str (a stable token
               such as \"torn_tail\", \"checksum_mismatch\", \"checkpoint_checksum\"),
               \"detail\": str, \"torn_tail\": bool, \"records\": int, \"bytes\": int}],
   \"warnings\": [str]}
  For a segment, \"lsn\" is the first LSN lost; for a checkpoint, the LSN it covers.
  The null fields are null when the open in this mode fails.

Examples:
  mmlog verify ./wal && echo intact
  mmlog verify ./wal --mode tolerate --json";

/// Arguments of `mmlog verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The log directory.
    dir: PathBuf,
    /// How recovery treats damage; `skip` lists every damage.
    #[arg(long, value_enum, default_value_t = Mode::Skip)]
    mode: Mode,
    /// Print one JSON object instead of text (shape in --help).
    #[arg(long)]
    json: bool,
}

/// One damaged range or file.
#[derive(Debug, Clone)]
struct Damage {
    file: PathBuf,
    checkpoint: bool,
    offset: Option<u64>,
    lsn: Option<u64>,
    kind: &'static str,
    detail: String,
    torn_tail: bool,
    records: u64,
    bytes: u64,
}

impl Damage {
    fn from_dropped(d: &Dropped) -> Damage {
        let mut detail = d.reason.to_string();
        if d.torn_tail && d.reason != DropReason::TornTail {
            detail.push_str(" (torn tail)");
        }
        if let Some((a, b)) = d.dropped_lsns {
            detail.push_str(&format!("; {} record(s) {a}..={b} dropped", d.records));
        }
        Damage {
            file: d.file.clone(),
            checkpoint: false,
            offset: Some(d.offset),
            lsn: Some(d.first_lsn.0),
            kind: if d.torn_tail {
                "torn_tail"
            } else {
                drop_kind(d.reason)
            },
            detail,
            torn_tail: d.torn_tail,
            records: d.records,
            bytes: d.bytes,
        }
    }

    fn from_checkpoint(file: &Path, lsn: Lsn, why: &CheckpointRejection) -> Damage {
        Damage {
            file: file.to_path_buf(),
            checkpoint: true,
            offset: None,
            lsn: Some(lsn.0),
            kind: checkpoint_kind(why),
            detail: format!("bad checkpoint: {why}"),
            torn_tail: false,
            records: 0,
            bytes: 0,
        }
    }

    /// The damage an error of the open or the reader names; other errors (I/O, lock)
    /// come back unchanged.
    fn from_error(e: mmlog::Error) -> Result<Damage, mmlog::Error> {
        match e {
            mmlog::Error::Corrupt { file, offset, kind } => {
                let ckpt = checkpoint_lsn(&file);
                Ok(Damage {
                    checkpoint: ckpt.is_some() || kind == CorruptionKind::NoUsableCheckpoint,
                    offset: ckpt.is_none().then_some(offset),
                    lsn: ckpt,
                    kind: corruption_kind(&kind),
                    detail: kind.to_string(),
                    file,
                    torn_tail: false,
                    records: 0,
                    bytes: 0,
                })
            }
            mmlog::Error::UnsupportedVersion {
                file,
                found,
                supported,
            } => Ok(Damage {
                checkpoint: checkpoint_lsn(&file).is_some(),
                lsn: checkpoint_lsn(&file),
                file,
                offset: Some(0),
                kind: "unsupported_version",
                detail: format!("format version {found}; this build reads up to {supported}"),
                torn_tail: false,
                records: 0,
                bytes: 0,
            }),
            other => Err(other),
        }
    }

    fn json(&self) -> String {
        Json::new()
            .str("file", &self.file.display().to_string())
            .str(
                "object",
                if self.checkpoint {
                    "checkpoint"
                } else {
                    "segment"
                },
            )
            .opt_u64("offset", self.offset)
            .opt_u64("lsn", self.lsn)
            .str("kind", self.kind)
            .str("detail", &self.detail)
            .bool("torn_tail", self.torn_tail)
            .u64("records", self.records)
            .u64("bytes", self.bytes)
            .finish()
    }
}

fn drop_kind(r: DropReason) -> &'static str {
    match r {
        DropReason::TornTail => "torn_tail",
        DropReason::ChecksumMismatch => "checksum_mismatch",
        DropReason::BadLength => "bad_length",
        DropReason::StaleEpoch => "stale_epoch",
        DropReason::LsnGap => "lsn_gap",
        DropReason::MissingSegment => "missing_segment",
        DropReason::IncompleteSegment => "incomplete_segment",
        DropReason::UnknownKind => "unknown_record_kind",
        DropReason::BadSegmentHeader => "bad_segment_header",
        _ => "other",
    }
}

fn corruption_kind(k: &CorruptionKind) -> &'static str {
    match k {
        CorruptionKind::BadMagic => "bad_magic",
        CorruptionKind::HeaderChecksum => "header_checksum",
        CorruptionKind::BadHeader(_) => "bad_header",
        CorruptionKind::BadFileSize { .. } => "bad_file_size",
        CorruptionKind::SequenceMismatch { .. } => "sequence_mismatch",
        CorruptionKind::MissingSegment { .. } => "missing_segment",
        CorruptionKind::Checksum => "checksum_mismatch",
        CorruptionKind::BadLength => "bad_length",
        CorruptionKind::UnknownRecordKind(_) => "unknown_record_kind",
        CorruptionKind::LsnGap { .. } => "lsn_gap",
        CorruptionKind::Hole => "hole",
        CorruptionKind::BelowDurable => "below_durable",
        CorruptionKind::StaleEpoch => "stale_epoch",
        CorruptionKind::NoUsableCheckpoint => "no_usable_checkpoint",
        _ => "other",
    }
}

fn checkpoint_kind(r: &CheckpointRejection) -> &'static str {
    match r {
        CheckpointRejection::TooShort { .. } => "checkpoint_too_short",
        CheckpointRejection::BadHeader(_) => "checkpoint_bad_header",
        CheckpointRejection::UnsupportedVersion(_) => "checkpoint_unsupported_version",
        CheckpointRejection::LsnMismatch { .. } => "checkpoint_lsn_mismatch",
        CheckpointRejection::SizeMismatch { .. } => "checkpoint_size_mismatch",
        CheckpointRejection::PayloadChecksum => "checkpoint_checksum",
        CheckpointRejection::Unusable { .. } => "checkpoint_unusable",
        CheckpointRejection::Io(_) => "checkpoint_unreadable",
        _ => "checkpoint_other",
    }
}

/// What a successful open tells about the log.
#[derive(Debug, Clone, Copy)]
struct Facts {
    segments: u64,
    records: u64,
    first_lsn: u64,
    last_lsn: u64,
    clean_shutdown: bool,
    checkpoints: u64,
}

/// Everything one open in some mode found: damage, facts, warnings.
#[derive(Debug, Default)]
struct Findings {
    damage: Vec<Damage>,
    facts: Option<Facts>,
    warnings: Vec<String>,
}

/// Opens read-only in `mode` and checks everything an open can reach: the dropped
/// ranges, every record read back, every checkpoint. `Err` only for errors that are not
/// damage (I/O, lock).
fn check(dir: &Path, mode: Mode) -> Result<Findings, mmlog::Error> {
    let (wal, report) = match try_open(dir, mode.recovery()) {
        Ok(v) => v,
        Err(e) => {
            let d = Damage::from_error(e)?;
            return Ok(Findings {
                damage: vec![d],
                ..Findings::default()
            });
        }
    };
    let mut f = Findings::default();
    f.damage
        .extend(report.dropped.iter().map(Damage::from_dropped));
    // Read every record back through the reader, as an application would.
    let progress = bar(report.record_count(), "reading records");
    let mut records = 0u64;
    for r in wal.iter_from(Lsn(0))? {
        match r {
            Ok(_) => {
                records += 1;
                if records.is_multiple_of(4096) {
                    progress.inc(4096);
                }
            }
            Err(e) => {
                f.damage.push(Damage::from_error(e)?);
                break;
            }
        }
    }
    progress.finish_and_clear();
    let files = super::open::checkpoint_files(&wal)?;
    for c in &files {
        if let Some(why) = &c.problem {
            f.damage.push(Damage::from_checkpoint(&c.path, c.lsn, why));
        }
    }
    for r in &report.rejected_checkpoints {
        if !f.damage.iter().any(|d| d.file == r.file) {
            f.damage
                .push(Damage::from_checkpoint(&r.file, r.lsn, &r.reason));
        }
    }
    let first = wal.first_lsn().0;
    if report.checkpoint.is_none() && first > 1 {
        f.warnings.push(format!(
            "the log starts at LSN {first} and no checkpoint covers LSN {}: records 1..={} are gone, so state built from this log (a Store) cannot be rebuilt from this directory",
            first - 1,
            first - 1
        ));
    }
    if !report.clean_shutdown && f.damage.is_empty() {
        f.warnings.push(
            "the log was not closed cleanly (a crash or a running writer); nothing is lost by that alone"
                .into(),
        );
    }
    f.facts = Some(Facts {
        segments: report.segments,
        records,
        first_lsn: report.first_lsn.0,
        last_lsn: report.last_lsn.0,
        clean_shutdown: report.clean_shutdown,
        checkpoints: files.len() as u64,
    });
    Ok(f)
}

/// `mmlog verify DIR`.
pub(crate) fn run(args: &VerifyArgs) -> CliResult<ExitCode> {
    let dir = args.dir.as_path();
    check_log_dir(dir)?;
    let mut found = check(dir, args.mode).map_err(|e| super::open::error(dir, e))?;
    if found.facts.is_none() && args.mode != Mode::Skip {
        // The open refused the damage. A salvage open still reaches the checkpoints, and
        // says at which LSN the refused damage starts.
        if let Ok(more) = check(dir, Mode::Skip) {
            for d in &mut found.damage {
                if d.lsn.is_none()
                    && let Some(m) = more
                        .damage
                        .iter()
                        .find(|m| m.file == d.file && m.offset == d.offset)
                        .or_else(|| more.damage.iter().find(|m| m.file == d.file))
                {
                    d.lsn = m.lsn;
                }
            }
            for m in more.damage.into_iter().filter(|m| m.checkpoint) {
                if !found.damage.iter().any(|d| d.file == m.file) {
                    found.damage.push(m);
                }
            }
        }
    }
    let intact = found.damage.is_empty();
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        print_json(&mut out, dir, args.mode, intact, &found)?;
    } else {
        print_text(&mut out, dir, args.mode, intact, &found)?;
    }
    out.flush()?;
    Ok(ExitCode::from(if intact { EXIT_OK } else { EXIT_DAMAGE }))
}

fn print_json(
    out: &mut dyn Write,
    dir: &Path,
    mode: Mode,
    intact: bool,
    found: &Findings,
) -> io::Result<()> {
    let f = found.facts;
    let damage: Vec<String> = found.damage.iter().map(Damage::json).collect();
    let line = Json::new()
        .str("dir", &dir.display().to_string())
        .str("mode", mode.name())
        .bool("intact", intact)
        .bool("opens", f.is_some())
        .opt_u64("segments", f.map(|f| f.segments))
        .opt_u64("records", f.map(|f| f.records))
        .opt_u64("first_lsn", f.map(|f| f.first_lsn))
        .opt_u64("last_lsn", f.map(|f| f.last_lsn))
        .opt_bool("clean_shutdown", f.map(|f| f.clean_shutdown))
        .opt_u64("checkpoints", f.map(|f| f.checkpoints))
        .raw("damage", &array(&damage))
        .raw("warnings", &str_array(&found.warnings))
        .finish();
    writeln!(out, "{line}")
}

fn print_text(
    out: &mut dyn Write,
    dir: &Path,
    mode: Mode,
    intact: bool,
    found: &Findings,
) -> io::Result<()> {
    let summary = |f: &Facts| {
        format!(
            "{} records (LSN {}..={}) in {} segment(s), {} checkpoint(s) checked, last shutdown {}",
            f.records,
            f.first_lsn,
            f.last_lsn,
            f.segments,
            f.checkpoints,
            if f.clean_shutdown {
                "clean"
            } else {
                "not clean"
            }
        )
    };
    if intact {
        match &found.facts {
            Some(f) => writeln!(out, "{}: intact: {}", dir.display(), summary(f))?,
            None => writeln!(out, "{}: intact", dir.display())?,
        }
    } else {
        writeln!(
            out,
            "{}: DAMAGED: {} problem(s) found in mode {}",
            dir.display(),
            found.damage.len(),
            mode.name()
        )?;
        let dash = || "-".to_string();
        let rows: Vec<Vec<String>> = found
            .damage
            .iter()
            .map(|d| {
                vec![
                    file_name(&d.file),
                    d.offset.map_or_else(dash, |o| o.to_string()),
                    d.lsn.map_or_else(dash, |l| l.to_string()),
                    if d.bytes > 0 { size(d.bytes) } else { dash() },
                    d.detail.clone(),
                ]
            })
            .collect();
        let mut buf = Vec::new();
        text_table(&mut buf, &["file", "offset", "lsn", "bytes", "kind"], &rows)?;
        for line in String::from_utf8_lossy(&buf).lines() {
            writeln!(out, "  {line}")?;
        }
        match &found.facts {
            Some(f) => writeln!(
                out,
                "an open in mode {} succeeds: {}",
                mode.name(),
                summary(f)
            )?,
            None => writeln!(
                out,
                "an open in mode {} fails on the damage above",
                mode.name()
            )?,
        }
        let d = shell_word(dir);
        let in_segments = found.damage.iter().any(|x| !x.checkpoint);
        let torn_only = found.damage.iter().all(|x| x.checkpoint || x.torn_tail);
        if in_segments && torn_only {
            writeln!(
                out,
                "to fix: `mmlog repair {d}` trims the torn tail after backing it up"
            )?;
        } else if in_segments {
            writeln!(
                out,
                "to fix: `mmlog repair {d} --mode point-in-time` cuts the log at the first damage after backing up what it removes"
            )?;
        }
        if found.damage.iter().any(|x| x.checkpoint) {
            writeln!(
                out,
                "a bad checkpoint is never used: recovery falls back to an older one; move it aside once a newer one is written"
            )?;
        }
    }
    for w in &found.warnings {
        writeln!(out, "note: {w}")?;
    }
    Ok(())
}
