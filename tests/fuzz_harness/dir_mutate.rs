//! `dir_mutate`: a valid directory built by the engine (`bases`: segments, checkpoints,
//! META, `.free` files, stale frames of reused LSNs) is damaged by a list of mutations
//! from the fuzz input — byte flips, zeroed words, byte runs, 64-byte transplants
//! from one file to another (headers and frames that validate, in the wrong place),
//! files cut short, removed or copied under another segment's name — and opened
//! read-only in each of the four recovery modes. Each open is a typed error or a log
//! that passes `oracle::check_log` and whose records are ones that were appended under
//! those LSNs; the modes agree with each other (`oracle::check_modes`). Then the
//! default mode opens it for writing: the same records as read-only; one more append
//! and a clean close; a reopen finds them all.

use std::path::Path;

use mmlog::{Durability, Wal};

use super::bases;
use super::oracle::{self, Files, MODES, Records};
use super::wire::{self, Reader, Writer};

/// One mutation, described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mutation {
    /// Index into the directory's file names (sorted), modulo their number.
    pub file: u8,
    /// % 7: 0 flip `val` at `offset`; 1 zero 8 bytes at `offset` (8-aligned); 2 `len % 64`
    /// bytes of `val` at `offset`; 3 copy 64 bytes from file `other` at `from` to
    /// `offset`; 4 cut the file at `offset`; 5 remove the file; 6 copy the file under
    /// the name of the next segment after the last.
    pub op: u8,
    /// Byte offset, modulo the file's length.
    pub offset: u16,
    pub val: u8,
    pub len: u8,
    pub other: u8,
    pub from: u16,
}

/// A whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirCase {
    pub base: u8,
    pub muts: Vec<Mutation>,
}

impl DirCase {
    pub fn decode(data: &[u8]) -> DirCase {
        let mut r = Reader::new(data);
        let base = r.u8();
        let mut muts = Vec::new();
        while !r.is_empty() && muts.len() < 16 {
            muts.push(Mutation {
                file: r.u8(),
                op: r.u8(),
                offset: r.u16(),
                val: r.u8(),
                len: r.u8(),
                other: r.u8(),
                from: r.u16(),
            });
        }
        DirCase { base, muts }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.base);
        for m in &self.muts {
            w.u8(m.file)
                .u8(m.op)
                .u16(m.offset)
                .u8(m.val)
                .u8(m.len)
                .u8(m.other)
                .u16(m.from);
        }
        w.out
    }

    /// The damaged directory.
    pub fn files(&self) -> Files {
        let mut files = bases::base(self.base).files.clone();
        for m in &self.muts {
            let names: Vec<String> = files.keys().cloned().collect();
            if names.is_empty() {
                break;
            }
            let name = &names[usize::from(m.file) % names.len()];
            let other = files[&names[usize::from(m.other) % names.len()]].clone();
            let f = files.get_mut(name).expect("listed");
            let at = if f.is_empty() {
                0
            } else {
                usize::from(m.offset) * 8 % f.len()
            };
            match m.op % 7 {
                0 => {
                    if let Some(b) = f.get_mut(at) {
                        *b ^= m.val.max(1);
                    }
                }
                1 => {
                    let at = at & !7;
                    let end = (at + 8).min(f.len());
                    f[at..end].fill(0);
                }
                2 => {
                    let end = (at + usize::from(m.len % 64)).min(f.len());
                    f[at..end].fill(m.val);
                }
                3 => {
                    let from = if other.is_empty() {
                        0
                    } else {
                        usize::from(m.from) * 8 % other.len()
                    };
                    let n = 64.min(other.len() - from).min(f.len() - at);
                    f[at..at + n].copy_from_slice(&other[from..from + n]);
                }
                4 => f.truncate(at),
                5 => {
                    files.remove(name);
                }
                _ => {
                    let copy = f.clone();
                    let next = names
                        .iter()
                        .filter_map(|n| n.strip_suffix(".seg")?.parse::<u64>().ok())
                        .max()
                        .unwrap_or(0)
                        + 1;
                    files.insert(format!("{next:020}.seg"), copy);
                }
            }
        }
        files
    }
}

/// Every record of a damaged log must be one that was appended under its LSN.
fn check_history(base: &bases::Base, got: &Records) -> Result<(), String> {
    for (lsn, p) in got {
        if !base.history.get(lsn).is_some_and(|s| s.contains(p)) {
            return Err(format!(
                "LSN {lsn}: {} bytes that were never appended under it",
                p.len()
            ));
        }
    }
    Ok(())
}

/// Runs one input.
pub fn run(data: &[u8]) -> Result<(), String> {
    run_case(&DirCase::decode(data))
}

/// [`run`] on a decoded case.
pub fn run_case(case: &DirCase) -> Result<(), String> {
    let dir = Path::new("d");
    let base = bases::base(case.base);
    let files = case.files();
    let sim = oracle::disk_with(dir, &files);
    let mut results: [Option<Records>; 4] = Default::default();
    for (i, mode) in MODES.iter().enumerate() {
        let got = oracle::open_and_check(dir, oracle::sim_options(&sim, *mode, true), &files)?;
        if let Some(g) = &got {
            check_history(base, g).map_err(|e| format!("{mode:?}: {e}"))?;
        }
        results[i] = got;
    }
    if oracle::snapshot(&sim, dir) != files {
        return Err("a read-only open changed the directory".into());
    }
    oracle::check_modes(&results)?;
    // Writing: the default mode, the same records, then one more.
    let Some(records) = &results[0] else {
        return Ok(());
    };
    let (wal, report) = Wal::open(dir, oracle::sim_options(&sim, MODES[0], false))
        .map_err(|e| format!("writable open after a good read-only open: {e}"))?;
    let got = oracle::check_log(&wal, &report, &files).map_err(|e| format!("writable: {e}"))?;
    if &got != records {
        return Err(format!(
            "writable open: {} records, read-only: {}",
            got.len(),
            records.len()
        ));
    }
    let p = wire::payload(0xd1, report.next_lsn.0, 100);
    let lsn = wal
        .append_with(&p, Durability::Sync)
        .map_err(|e| format!("append after recovering a damaged log: {e}"))?;
    if lsn != report.next_lsn {
        return Err(format!(
            "append got {lsn}, the report said {}",
            report.next_lsn
        ));
    }
    wal.close().map_err(|e| format!("close: {e}"))?;
    drop(wal);
    let (wal, report) = Wal::open(dir, oracle::sim_options(&sim, MODES[0], true))
        .map_err(|e| format!("reopen after appending to a recovered log: {e}"))?;
    let again = oracle::read_all(&wal, 0, records.len() + 2)?;
    let mut want = records.clone();
    want.push((lsn.0, p));
    if again != want || !report.clean_shutdown {
        return Err(format!(
            "reopen after recovery, one append and a clean close: {} records, expected {}\n{report}",
            again.len(),
            want.len()
        ));
    }
    Ok(())
}
