//! The checks every decode target applies after opening a directory it built byte for
//! byte: the open returns a typed error or a log; a log's records are dense (gaps
//! only in `SkipCorrupted`), agree with its report, come back the same through
//! `iter_from`, `iter_from(mid)` and `read`, and each is proven by a checksum-valid
//! frame of its segment's epoch in the files as they were before the open; the
//! checkpoint it starts from is a file that verifies in full (`wire`'s own decoder)
//! and connects to the log. Iteration is bounded by the bytes on disk, so a reader
//! that never ends is caught rather than hung on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mmlog::testing::SimDisk;
use mmlog::{Error, Lsn, Options, RecoveryMode, RecoveryReport, Wal};

use super::wire;

/// The files of a directory, by name.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The four recovery modes, in the order inputs select them.
pub const MODES: [RecoveryMode; 4] = [
    RecoveryMode::TolerateCorruptedTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupted,
];

/// Records of a log, in LSN order.
pub type Records = Vec<(u64, Vec<u8>)>;

/// Options for opening a directory on the simulated disk: tiny segments, no background
/// thread.
pub fn sim_options(sim: &SimDisk, mode: RecoveryMode, read_only: bool) -> Options {
    Options {
        segment_size_bytes: 16 * 1024,
        durability: mmlog::Durability::None,
        recovery_mode: mode,
        read_only,
        create_if_missing: false,
        prefault: false,
        env: sim.env().without_background(),
        ..Options::default()
    }
}

/// Writes `files` into `dir` on a fresh simulated disk.
pub fn disk_with(dir: &Path, files: &Files) -> SimDisk {
    let sim = SimDisk::new();
    for (name, bytes) in files {
        sim.write_file(dir.join(name), bytes)
            .expect("writing to the simulated disk");
    }
    sim
}

/// Every file of `dir` as it is now.
pub fn snapshot(sim: &SimDisk, dir: &Path) -> Files {
    sim.list(dir)
        .into_iter()
        .filter_map(|n| sim.read_file(dir.join(&n)).map(|b| (n, b)))
        .collect()
}

/// Errors an open of damaged or hostile files may return. Anything else (an I/O error
/// from the simulated disk means the engine read or mapped past the end of a file) is a
/// finding.
pub fn acceptable_open_error(e: &Error) -> bool {
    matches!(e, Error::Corrupt { .. } | Error::UnsupportedVersion { .. })
}

/// Opens `dir` with `opts` and checks the result against `before` (the files as they
/// were before the open). `Ok(None)`: a typed error; `Ok(Some(records))`: a log that
/// passed every check (it is closed again).
pub fn open_and_check(
    dir: &Path,
    opts: Options,
    before: &Files,
) -> Result<Option<Records>, String> {
    let mode = opts.recovery_mode;
    // Opened with the replay, which must hand out exactly what a reader finds after
    // the open.
    let mut replayed = Vec::new();
    let bound = record_bound(before);
    let opened = Wal::open_replay(dir, opts, Lsn(0), |lsn, payload| {
        if replayed.len() <= bound {
            replayed.push((lsn.0, payload.to_vec()));
        }
    });
    let (wal, report) = match opened {
        Ok(x) => x,
        Err(e) if acceptable_open_error(&e) => return Ok(None),
        // Every file removed: the simulated disk has no empty directories.
        Err(Error::Io { .. }) if before.is_empty() => return Ok(None),
        Err(e) => {
            return Err(format!(
                "open ({mode:?}) failed with an unexpected error: {e:?}"
            ));
        }
    };
    let records =
        check_log(&wal, &report, before).map_err(|e| format!("{mode:?}: {e}\nreport: {report}"))?;
    if replayed != records {
        return Err(format!(
            "{mode:?}: the open replayed {} records, a reader finds {} (first difference at {:?})\nreport: {report}",
            replayed.len(),
            records.len(),
            replayed
                .iter()
                .zip(&records)
                .position(|(a, b)| a != b)
                .unwrap_or(replayed.len().min(records.len()))
        ));
    }
    wal.close()
        .map_err(|e| format!("{mode:?}: close after a good open: {e}"))?;
    Ok(Some(records))
}

/// Upper bound on the records `files` can hold (a batch record takes at least the 4
/// bytes of its length).
fn record_bound(before: &Files) -> usize {
    before.values().map(|b| b.len() / 4).sum::<usize>() + 16
}

/// Reads every record of `wal`, failing on an item error or an iterator that does not
/// end within `bound` items.
pub fn read_all(wal: &Wal, from: u64, bound: usize) -> Result<Records, String> {
    let mut out = Vec::new();
    for item in wal
        .iter_from(Lsn(from))
        .map_err(|e| format!("iter_from({from}): {e}"))?
    {
        let r =
            item.map_err(|e| format!("iter_from({from}) item after {} records: {e}", out.len()))?;
        out.push((r.lsn().0, r.payload().to_vec()));
        if out.len() > bound {
            return Err(format!(
                "iter_from({from}) does not end after {bound} records"
            ));
        }
    }
    Ok(out)
}

/// The checks of a log opened over `before` (see the module doc).
pub fn check_log(wal: &Wal, report: &RecoveryReport, before: &Files) -> Result<Records, String> {
    let bound = record_bound(before);
    let got = read_all(wal, 0, bound)?;
    let first = report.first_lsn.0;
    let last = report.last_lsn.0;
    if wal.first_lsn().0 != first || wal.appended().0 != last {
        return Err(format!(
            "report says {first}..={last}, the log says {}..={}",
            wal.first_lsn(),
            wal.appended()
        ));
    }
    if report.next_lsn.0 != last.wrapping_add(1) {
        return Err(format!(
            "report: next LSN {} after last {last}",
            report.next_lsn
        ));
    }
    if first == 0 {
        return Err("first LSN 0".into());
    }
    // Density (I2); SkipCorrupted may leave gaps, but never reorders or repeats.
    let mut prev: Option<u64> = None;
    for (lsn, _) in &got {
        match prev {
            None if *lsn < first => {
                return Err(format!("record {lsn} below the first LSN {first}"));
            }
            None if *lsn != first && report.mode != RecoveryMode::SkipCorrupted => {
                return Err(format!(
                    "the log starts at {first} but the first record is {lsn}"
                ));
            }
            Some(p) if *lsn <= p => return Err(format!("LSN {lsn} after {p}")),
            Some(p) if *lsn != p + 1 && report.mode != RecoveryMode::SkipCorrupted => {
                return Err(format!("gap: LSN {lsn} after {p} in {:?}", report.mode));
            }
            _ => {}
        }
        prev = Some(*lsn);
    }
    match (got.last(), report.mode) {
        (Some((l, _)), _) if *l != last => {
            return Err(format!("the last record is {l}, the log ends at {last}"));
        }
        (None, RecoveryMode::SkipCorrupted) => {}
        (None, _) if last.wrapping_add(1) != first => {
            return Err(format!("no records, but the log spans {first}..={last}"));
        }
        _ => {}
    }
    if report.mode != RecoveryMode::SkipCorrupted && got.len() as u64 != report.record_count() {
        return Err(format!(
            "{} records read, the report counts {}",
            got.len(),
            report.record_count()
        ));
    }
    // I3: every record is proven by a valid frame of its segment's epoch.
    let mut proven: BTreeMap<u64, BTreeSet<&[u8]>> = BTreeMap::new();
    let mut all = Vec::new();
    for (name, bytes) in before {
        if name.ends_with(".seg") {
            all.push(wire::provable_records(bytes, &wire::slot_epochs(bytes)));
        }
    }
    for (lsn, p) in all.iter().flatten() {
        proven.entry(*lsn).or_default().insert(p.as_slice());
    }
    for (lsn, p) in &got {
        if !proven.get(lsn).is_some_and(|s| s.contains(p.as_slice())) {
            return Err(format!(
                "LSN {lsn} ({} bytes) is not a valid frame of any segment's epoch",
                p.len()
            ));
        }
    }
    // Random access and mid-log iteration agree with the full scan.
    for (lsn, p) in got.iter().step_by(got.len() / 8 + 1) {
        let r = wal
            .read(Lsn(*lsn))
            .map_err(|e| format!("read({lsn}): {e}"))?;
        if r.payload() != p.as_slice() {
            return Err(format!("read({lsn}) differs from the iterator"));
        }
        let suffix = read_all(wal, *lsn, bound)?;
        let want: Vec<_> = got.iter().filter(|(l, _)| l >= lsn).cloned().collect();
        if suffix != want {
            return Err(format!("iter_from({lsn}) differs from the full scan"));
        }
    }
    if !got.is_empty() || last >= first {
        match wal.read(Lsn(last.saturating_add(1))) {
            Err(Error::NotFound { .. }) => {}
            other => return Err(format!("read past the end: {other:?}")),
        }
    }
    // The checkpoint recovery starts from verifies and connects.
    if let Some(c) = wal.checkpoint() {
        let lsn = c.lsn().0;
        let name = format!("checkpoint-{lsn:020}.ckpt");
        let file = before
            .get(&name)
            .ok_or_else(|| format!("checkpoint {lsn} has no file {name}"))?;
        wire::checkpoint_file_proves(file, lsn, c.data())?;
        if lsn.saturating_add(1) < first || lsn > last {
            return Err(format!(
                "checkpoint {lsn} does not connect to the log {first}..={last}"
            ));
        }
    }
    Ok(got)
}

/// Cross-mode consistency of one directory opened read-only in every mode: with no
/// damage at all (`AbsoluteConsistency` opens), every mode returns the same records;
/// whenever the default mode opens, `PointInTime` returns the same records; and
/// `PointInTime` returns a prefix of what `SkipCorrupted` returns.
pub fn check_modes(results: &[Option<Records>; 4]) -> Result<(), String> {
    let [tolerate, absolute, pit, skip] = results;
    if let Some(a) = absolute {
        for (i, r) in results.iter().enumerate() {
            if r.as_ref() != Some(a) {
                return Err(format!(
                    "AbsoluteConsistency opened with {} records but {:?} gave {}",
                    a.len(),
                    MODES[i],
                    r.as_ref()
                        .map_or("an error".to_string(), |r| format!("{} records", r.len()))
                ));
            }
        }
    }
    if let Some(t) = tolerate
        && pit.as_ref() != Some(t)
    {
        return Err(format!(
            "TolerateCorruptedTail opened with {} records but PointInTime gave {}",
            t.len(),
            pit.as_ref()
                .map_or("an error".to_string(), |r| format!("{} records", r.len()))
        ));
    }
    if let (Some(p), Some(s)) = (pit, skip)
        && !s.starts_with(p)
    {
        return Err(format!(
            "PointInTime's {} records are not a prefix of SkipCorrupted's {}",
            p.len(),
            s.len()
        ));
    }
    Ok(())
}
