//! `mmlog stat DIR`: what the log holds and how it is laid out on disk, read-only; when
//! another process holds the log, what the segment headers say without the lock.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mmlog::{RecoveryMode, RecoveryReport, Wal};

use super::open::{check_log_dir, checkpoint_lsn, error, list_files, try_open};
use super::out::{Json, array, file_name, size, str_array, text_table};
use super::{CliResult, EXIT_DAMAGE, EXIT_OK};

/// The long help of `mmlog stat`: exit codes and the JSON shape.
pub(crate) const LONG_HELP: &str = "\
Opens the log read-only (a shared lock; nothing is written). When another process
holds the log for writing, the open is refused: stat then prints the holder's pid and
what the segment headers say (read without the lock, so possibly a moment old).

Exit status: 0 shown, 1 the log is damaged (stat shows what a salvage read finds;
`mmlog verify` lists the damage), 2 usage or I/O error, or a path that holds no log.

JSON (--json): one object on one line, keys always present, in this order:
  {\"dir\": str, \"source\": \"open\"|\"headers\", \"mode\": \"tolerate\"|\"skip\"|null,
   \"locked\": bool, \"lock_pid\": int|null, \"clean_shutdown\": bool|null,
   \"first_lsn\": int|null, \"last_lsn\": int|null, \"durable_lsn\": int|null,
   \"records\": int|null, \"files\": int, \"total_bytes\": int,
   \"segments\": [{\"file\": str, \"seq\": int, \"epoch\": int|null,
                  \"first_lsn\": int|null, \"last_lsn\": int|null,
                  \"bytes_used\": int|null, \"size_bytes\": int,
                  \"sealed\": bool|null, \"recycled\": bool|null, \"problem\": str|null}],
   \"checkpoints\": [{\"file\": str, \"lsn\": int, \"file_bytes\": int,
                     \"valid\": bool|null, \"used_by_recovery\": bool|null,
                     \"problem\": str|null}],
   \"damage\": [str], \"notes\": [str]}
  source \"open\": figures from a read-only open (mode tolerate, or skip when the log is
  damaged); source \"headers\": the log is locked, only what the headers say (LSN
  ranges, use and validity are then null).

Examples:
  mmlog stat ./wal
  mmlog stat ./wal --json";

/// Arguments of `mmlog stat`.
#[derive(Debug, Args)]
pub(crate) struct StatArgs {
    /// The log directory.
    dir: PathBuf,
    /// Print one JSON object instead of text (shape in --help).
    #[arg(long)]
    json: bool,
}

/// One segment as shown.
struct SegRow {
    file: PathBuf,
    seq: u64,
    epoch: Option<u32>,
    first_lsn: Option<u64>,
    last_lsn: Option<u64>,
    bytes_used: Option<u64>,
    size_bytes: u64,
    sealed: Option<bool>,
    recycled: Option<bool>,
    problem: Option<String>,
}

/// One checkpoint as shown.
struct CkptRow {
    file: PathBuf,
    lsn: u64,
    file_bytes: u64,
    valid: Option<bool>,
    used: Option<bool>,
    problem: Option<String>,
}

/// Everything stat shows.
struct View {
    source: &'static str,
    mode: Option<&'static str>,
    locked: bool,
    lock_pid: Option<u32>,
    clean_shutdown: Option<bool>,
    first_lsn: Option<u64>,
    last_lsn: Option<u64>,
    durable_lsn: Option<u64>,
    records: Option<u64>,
    files: u64,
    total_bytes: u64,
    segments: Vec<SegRow>,
    checkpoints: Vec<CkptRow>,
    damage: Vec<String>,
    notes: Vec<String>,
}

/// `mmlog stat DIR`.
pub(crate) fn run(args: &StatArgs) -> CliResult<ExitCode> {
    let dir = args.dir.as_path();
    check_log_dir(dir)?;
    let files = list_files(dir)?;
    let holder = mmlog::inspect::lock_holder(dir).map_err(|e| error(dir, e))?;
    let view = match holder {
        Some(pid) => from_headers(dir, Some(pid), &files, Vec::new())?,
        None => match try_open(dir, RecoveryMode::TolerateCorruptedTail) {
            Ok((wal, report)) => from_open(&wal, &report, "tolerate", &files, Vec::new())?,
            Err(mmlog::Error::Locked { pid, .. }) => {
                from_headers(dir, Some(pid), &files, Vec::new())?
            }
            Err(e) if e.is_corruption() => {
                let first = format!("an open in mode tolerate fails: {e}");
                match try_open(dir, RecoveryMode::SkipCorrupted) {
                    Ok((wal, report)) => from_open(&wal, &report, "skip", &files, vec![first])?,
                    Err(e2) if e2.is_corruption() => from_headers(
                        dir,
                        None,
                        &files,
                        vec![first, format!("a salvage open fails too: {e2}")],
                    )?,
                    Err(e2) => return Err(error(dir, e2)),
                }
            }
            Err(e) => return Err(error(dir, e)),
        },
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        print_json(&mut out, dir, &view)?;
    } else {
        print_text(&mut out, dir, &view)?;
    }
    out.flush()?;
    Ok(ExitCode::from(if view.damage.is_empty() {
        EXIT_OK
    } else {
        EXIT_DAMAGE
    }))
}

fn total(files: &[(PathBuf, u64)]) -> (u64, u64) {
    (files.len() as u64, files.iter().map(|(_, n)| n).sum())
}

fn from_open(
    wal: &Wal,
    report: &RecoveryReport,
    mode: &'static str,
    files: &[(PathBuf, u64)],
    mut damage: Vec<String>,
) -> CliResult<View> {
    let dir = wal.dir().to_path_buf();
    for d in &report.dropped {
        damage.push(format!(
            "{} at byte {} (LSN {}): {}{}",
            file_name(&d.file),
            d.offset,
            d.first_lsn,
            d.reason,
            if d.torn_tail { " (torn tail)" } else { "" }
        ));
    }
    let segments = wal
        .segments()
        .into_iter()
        .map(|s| SegRow {
            file: s.path,
            seq: s.seq,
            epoch: Some(s.epoch),
            first_lsn: Some(s.first_lsn.0),
            last_lsn: Some(s.last_lsn.0),
            bytes_used: Some(s.bytes_used),
            size_bytes: s.size_bytes,
            sealed: Some(s.sealed),
            recycled: Some(s.recycled),
            problem: None,
        })
        .collect();
    let used = report.checkpoint.as_ref().map(|(_, p)| p.clone());
    let checkpoints: Vec<CkptRow> = super::open::checkpoint_files(wal)
        .map_err(|e| error(&dir, e))?
        .into_iter()
        .map(|c| CkptRow {
            valid: Some(c.problem.is_none()),
            used: Some(used.as_ref() == Some(&c.path)),
            problem: c.problem.as_ref().map(ToString::to_string),
            file: c.path,
            lsn: c.lsn.0,
            file_bytes: c.file_bytes,
        })
        .collect();
    for c in &checkpoints {
        if let Some(p) = &c.problem {
            damage.push(format!("{}: {p}", file_name(&c.file)));
        }
    }
    let mut notes = Vec::new();
    if report.checkpoint.is_none() && wal.first_lsn().0 > 1 {
        notes.push(format!(
            "the log starts at LSN {} and no checkpoint covers the records before it",
            wal.first_lsn()
        ));
    }
    let (count, bytes) = total(files);
    Ok(View {
        source: "open",
        mode: Some(mode),
        locked: false,
        lock_pid: None,
        clean_shutdown: Some(report.clean_shutdown),
        first_lsn: Some(report.first_lsn.0),
        last_lsn: Some(report.last_lsn.0),
        durable_lsn: Some(wal.durable().0),
        records: Some(report.record_count()),
        files: count,
        total_bytes: bytes,
        segments,
        checkpoints,
        damage,
        notes,
    })
}

/// What can be told without the lock: `pid` is `Some` when another process holds it.
fn from_headers(
    dir: &Path,
    pid: Option<Option<u32>>,
    files: &[(PathBuf, u64)],
    damage: Vec<String>,
) -> CliResult<View> {
    let headers = mmlog::inspect::segment_headers(dir).map_err(|e| error(dir, e))?;
    let segments = headers
        .into_iter()
        .map(|h| {
            let (fields, problem) = match h.header {
                Ok(f) => (Some(f), None),
                Err(why) => (None, Some(why)),
            };
            SegRow {
                file: h.path,
                seq: h.seq,
                epoch: fields.map(|f| f.epoch),
                first_lsn: fields.and_then(|f| (f.base_lsn.0 != 0).then_some(f.base_lsn.0)),
                last_lsn: None,
                bytes_used: None,
                size_bytes: h.file_bytes,
                sealed: fields.map(|f| f.sealed_end.is_some()),
                recycled: fields.map(|f| f.recycled),
                problem,
            }
        })
        .collect();
    let checkpoints = files
        .iter()
        .filter_map(|(p, n)| {
            checkpoint_lsn(p).map(|lsn| CkptRow {
                file: p.clone(),
                lsn,
                file_bytes: *n,
                valid: None,
                used: None,
                problem: None,
            })
        })
        .rev()
        .collect();
    let mut notes = vec![
        "read without the lock: header values may be a moment old; record ranges and checkpoint checks need the lock".to_string(),
    ];
    let lock_pid = pid.flatten();
    if let Some(holder) = pid {
        notes.insert(
            0,
            match holder {
                Some(p) => format!(
                    "locked by process {p}: a read-only open is refused while it writes, so this shows the segment headers only"
                ),
                None => "locked by another process (its pid is unknown): this shows the segment headers only".into(),
            },
        );
    }
    let (count, bytes) = total(files);
    Ok(View {
        source: "headers",
        mode: None,
        locked: pid.is_some(),
        lock_pid,
        clean_shutdown: None,
        first_lsn: None,
        last_lsn: None,
        durable_lsn: None,
        records: None,
        files: count,
        total_bytes: bytes,
        segments,
        checkpoints,
        damage,
        notes,
    })
}

fn print_json(out: &mut dyn Write, dir: &Path, v: &View) -> io::Result<()> {
    let segments: Vec<String> = v
        .segments
        .iter()
        .map(|s| {
            Json::new()
                .str("file", &s.file.display().to_string())
                .u64("seq", s.seq)
                .opt_u64("epoch", s.epoch.map(u64::from))
                .opt_u64("first_lsn", s.first_lsn)
                .opt_u64("last_lsn", s.last_lsn)
                .opt_u64("bytes_used", s.bytes_used)
                .u64("size_bytes", s.size_bytes)
                .opt_bool("sealed", s.sealed)
                .opt_bool("recycled", s.recycled)
                .opt_str("problem", s.problem.as_deref())
                .finish()
        })
        .collect();
    let checkpoints: Vec<String> = v
        .checkpoints
        .iter()
        .map(|c| {
            Json::new()
                .str("file", &c.file.display().to_string())
                .u64("lsn", c.lsn)
                .u64("file_bytes", c.file_bytes)
                .opt_bool("valid", c.valid)
                .opt_bool("used_by_recovery", c.used)
                .opt_str("problem", c.problem.as_deref())
                .finish()
        })
        .collect();
    let line = Json::new()
        .str("dir", &dir.display().to_string())
        .str("source", v.source)
        .opt_str("mode", v.mode)
        .bool("locked", v.locked)
        .opt_u64("lock_pid", v.lock_pid.map(u64::from))
        .opt_bool("clean_shutdown", v.clean_shutdown)
        .opt_u64("first_lsn", v.first_lsn)
        .opt_u64("last_lsn", v.last_lsn)
        .opt_u64("durable_lsn", v.durable_lsn)
        .opt_u64("records", v.records)
        .u64("files", v.files)
        .u64("total_bytes", v.total_bytes)
        .raw("segments", &array(&segments))
        .raw("checkpoints", &array(&checkpoints))
        .raw("damage", &str_array(&v.damage))
        .raw("notes", &str_array(&v.notes))
        .finish();
    writeln!(out, "{line}")
}

fn print_text(out: &mut dyn Write, dir: &Path, v: &View) -> io::Result<()> {
    let dash = || "-".to_string();
    let mut facts: Vec<(&str, String)> = vec![("log", dir.display().to_string())];
    facts.push((
        "lock",
        match (v.locked, v.lock_pid) {
            (true, Some(p)) => format!("held by process {p}"),
            (true, None) => "held by another process".into(),
            (false, _) => "free".into(),
        },
    ));
    if let (Some(first), Some(last), Some(records)) = (v.first_lsn, v.last_lsn, v.records) {
        facts.push((
            "records",
            format!(
                "{records} (LSN {first}..={last}), durable through {}",
                v.durable_lsn.map_or_else(dash, |d| d.to_string())
            ),
        ));
    }
    if let Some(clean) = v.clean_shutdown {
        facts.push((
            "shutdown",
            if clean { "clean" } else { "not clean" }.to_string(),
        ));
    }
    let seg_bytes: u64 = v.segments.iter().map(|s| s.size_bytes).sum();
    let ckpt_bytes: u64 = v.checkpoints.iter().map(|c| c.file_bytes).sum();
    facts.push((
        "on disk",
        format!(
            "{} in {} file(s): {} segment(s) {}, {} checkpoint(s) {}",
            size(v.total_bytes),
            v.files,
            v.segments.len(),
            size(seg_bytes),
            v.checkpoints.len(),
            size(ckpt_bytes)
        ),
    ));
    if let Some(m) = v.mode
        && m != "tolerate"
    {
        facts.push(("read in", format!("mode {m} (salvage)")));
    }
    let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, val) in &facts {
        writeln!(out, "{k:<width$}  {val}")?;
    }
    writeln!(out)?;
    let header: &[&str] = if v.source == "open" {
        &[
            "segment", "seq", "first", "last", "used", "size", "epoch", "state",
        ]
    } else {
        &["segment", "seq", "base LSN", "size", "epoch", "state"]
    };
    let rows: Vec<Vec<String>> = v
        .segments
        .iter()
        .map(|s| {
            let mut state: Vec<&str> = Vec::new();
            if s.sealed == Some(true) {
                state.push("sealed");
            }
            if s.recycled == Some(true) {
                state.push("recycled");
            }
            if s.bytes_used == Some(0) {
                state.push("empty");
            }
            let state = match &s.problem {
                Some(p) => format!("header: {p}"),
                None => state.join(", "),
            };
            let opt = |x: Option<u64>| x.map_or_else(dash, |n| n.to_string());
            // An empty segment's last LSN is one below its first: show none.
            let last = s.last_lsn.filter(|l| s.first_lsn.is_none_or(|f| *l >= f));
            if v.source == "open" {
                vec![
                    file_name(&s.file),
                    s.seq.to_string(),
                    opt(s.first_lsn),
                    opt(last),
                    s.bytes_used.map_or_else(dash, size),
                    size(s.size_bytes),
                    opt(s.epoch.map(u64::from)),
                    state,
                ]
            } else {
                vec![
                    file_name(&s.file),
                    s.seq.to_string(),
                    opt(s.first_lsn),
                    size(s.size_bytes),
                    opt(s.epoch.map(u64::from)),
                    state,
                ]
            }
        })
        .collect();
    text_table(out, header, &rows)?;
    if !v.checkpoints.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = v
            .checkpoints
            .iter()
            .map(|c| {
                vec![
                    file_name(&c.file),
                    c.lsn.to_string(),
                    size(c.file_bytes),
                    match (&c.problem, c.valid, c.used) {
                        (Some(p), _, _) => format!("BAD: {p}"),
                        (None, Some(true), Some(true)) => "ok (recovery starts here)".into(),
                        (None, Some(true), _) => "ok".into(),
                        _ => "not checked (locked)".into(),
                    },
                ]
            })
            .collect();
        text_table(out, &["checkpoint", "lsn", "size", "status"], &rows)?;
    }
    for d in &v.damage {
        writeln!(out, "damage: {d}")?;
    }
    for n in &v.notes {
        writeln!(out, "note: {n}")?;
    }
    if !v.damage.is_empty() {
        writeln!(
            out,
            "run `mmlog verify {}` for the full list",
            super::open::shell_word(dir)
        )?;
    }
    Ok(())
}
