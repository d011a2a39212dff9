//! `checkpoint_decode`: a valid log built by the engine (`bases`) plus checkpoint files
//! from the fuzz input — bytes verbatim, headers forged field by field (any version,
//! kind, flags, LSN, declared length, checksums right or wrong, files cut or
//! extended), or the base's own checkpoints with bytes flipped — under the names the
//! engine lists (`checkpoint-<lsn>.ckpt`), leftovers (`.ckpt.tmp`) and near-misses.
//! Opened read-only in a chosen mode: a typed error or a log that passes
//! `oracle::check_log`, whose checkpoint verifies in full and connects. Optionally
//! then opened for writing: the same records; a new checkpoint and its retention run
//! among the hostile files; a reopen finds that checkpoint and the same records.

use std::path::Path;

use mmlog::Wal;

use super::bases;
use super::oracle::{self, MODES};
use super::wire::{self, CheckpointFields, Reader, Writer};

/// One checkpoint file, described.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CkptSpec {
    /// % 4: 0, 1 `checkpoint-<lsn>.ckpt`; 2 `.ckpt.tmp`; 3 a name with too few digits.
    pub name: u8,
    /// 0xff: `raw_lsn`; else the base's last LSN - (b as i8).
    pub lsn: u8,
    pub raw_lsn: u64,
    /// % 3: 0 `bytes` verbatim; 1 forged header; 2 the base's checkpoint `which`,
    /// flipped.
    pub form: u8,
    pub bytes: Vec<u8>,
    /// Forged header: 0 version 1, else this.
    pub version: u8,
    /// Forged header: 0 kind 2, else this.
    pub kind: u8,
    pub flags: u8,
    /// Header LSN = the name's + (b as i8).
    pub lsn_delta: u8,
    /// Payload bytes.
    pub len: u16,
    /// Declared payload length = len + (b as i8).
    pub len_delta: u8,
    /// Bit 0: wrong header checksum; bit 1: wrong payload checksum; bit 2: reserved
    /// field set.
    pub bad: u8,
    /// Which of the base's checkpoints to start from (form 2).
    pub which: u8,
    /// (offset, xor) flips (form 2).
    pub flips: Vec<(u16, u8)>,
    /// 0: whole; else cut to this many bytes.
    pub cut: u16,
    /// Zero bytes appended.
    pub extend: u8,
}

/// A whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCase {
    pub mode: u8,
    pub base: u8,
    pub writable: bool,
    pub ckpts: Vec<CkptSpec>,
}

impl CkptSpec {
    fn decode(r: &mut Reader) -> CkptSpec {
        let mut c = CkptSpec {
            name: r.u8(),
            lsn: r.u8(),
            ..CkptSpec::default()
        };
        if c.lsn == 0xff {
            c.raw_lsn = r.u64();
        }
        c.form = r.u8();
        match c.form % 3 {
            0 => c.bytes = r.bytes().to_vec(),
            1 => {
                c.version = r.u8();
                c.kind = r.u8();
                c.flags = r.u8();
                c.lsn_delta = r.u8();
                c.len = r.u16();
                c.len_delta = r.u8();
                c.bad = r.u8();
            }
            _ => {
                c.which = r.u8();
                let n = r.u8() % 8;
                c.flips = (0..n).map(|_| (r.u16(), r.u8())).collect();
            }
        }
        c.cut = r.u16();
        c.extend = r.u8();
        c
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(self.name).u8(self.lsn);
        if self.lsn == 0xff {
            w.u64(self.raw_lsn);
        }
        w.u8(self.form);
        match self.form % 3 {
            0 => {
                w.bytes(&self.bytes);
            }
            1 => {
                w.u8(self.version)
                    .u8(self.kind)
                    .u8(self.flags)
                    .u8(self.lsn_delta)
                    .u16(self.len)
                    .u8(self.len_delta)
                    .u8(self.bad);
            }
            _ => {
                w.u8(self.which)
                    .u8(u8::try_from(self.flips.len()).expect("fewer than 8 flips"));
                for (at, x) in &self.flips {
                    w.u16(*at).u8(*x);
                }
            }
        }
        w.u16(self.cut).u8(self.extend);
    }
}

impl CheckpointCase {
    pub fn decode(data: &[u8]) -> CheckpointCase {
        let mut r = Reader::new(data);
        let mode = r.u8();
        let base = r.u8();
        let writable = r.bool();
        let n = r.u8() % 5;
        let ckpts = (0..n).map(|_| CkptSpec::decode(&mut r)).collect();
        CheckpointCase {
            mode,
            base,
            writable,
            ckpts,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.mode).u8(self.base).bool(self.writable);
        w.u8(u8::try_from(self.ckpts.len()).expect("fewer than 5 checkpoints"));
        for c in &self.ckpts {
            c.encode(&mut w);
        }
        w.out
    }

    /// The directory: the base's files plus the described checkpoints.
    pub fn files(&self) -> oracle::Files {
        let base = bases::base(self.base);
        let mut files = base.files.clone();
        let last = base.records.last().map_or(0, |r| r.0);
        let base_ckpts: Vec<&Vec<u8>> = base
            .files
            .iter()
            .filter(|(n, _)| n.ends_with(".ckpt"))
            .map(|(_, b)| b)
            .collect();
        for c in &self.ckpts {
            let lsn = if c.lsn == 0xff {
                c.raw_lsn
            } else {
                last.wrapping_add_signed(-i64::from(c.lsn as i8))
            };
            let mut bytes = match c.form % 3 {
                0 => c.bytes.clone(),
                1 => {
                    let payload = wire::payload(lsn, 7, usize::from(c.len % 9000));
                    let mut h = CheckpointFields::new(
                        lsn.wrapping_add_signed(i64::from(c.lsn_delta as i8)),
                        &payload,
                    );
                    if c.version != 0 {
                        h.version = u16::from(c.version);
                    }
                    if c.kind != 0 {
                        h.kind = u16::from(c.kind);
                    }
                    h.flags = u32::from(c.flags);
                    h.payload_bytes = h
                        .payload_bytes
                        .wrapping_add_signed(i64::from(c.len_delta as i8));
                    if c.bad & 2 != 0 {
                        h.payload_crc ^= 1;
                    }
                    if c.bad & 4 != 0 {
                        h.reserved = 1;
                    }
                    h.file(c.bad & 1 != 0, &payload)
                }
                _ => {
                    let mut b = if base_ckpts.is_empty() {
                        Vec::new()
                    } else {
                        base_ckpts[usize::from(c.which) % base_ckpts.len()].clone()
                    };
                    for (at, x) in &c.flips {
                        if let Some(v) = b.get_mut(usize::from(*at)) {
                            *v ^= x;
                        }
                    }
                    b
                }
            };
            if c.cut != 0 && usize::from(c.cut) < bytes.len() {
                bytes.truncate(usize::from(c.cut));
            }
            bytes.resize(bytes.len() + usize::from(c.extend), 0);
            let name = match c.name % 4 {
                0 | 1 => format!("checkpoint-{lsn:020}.ckpt"),
                2 => format!("checkpoint-{lsn:020}.ckpt.tmp"),
                _ => format!("checkpoint-{lsn}.ckpt"),
            };
            files.insert(name, bytes);
        }
        files
    }
}

/// Runs one input.
pub fn run(data: &[u8]) -> Result<(), String> {
    run_case(&CheckpointCase::decode(data))
}

/// [`run`] on a decoded case.
pub fn run_case(case: &CheckpointCase) -> Result<(), String> {
    let dir = Path::new("d");
    let files = case.files();
    let sim = oracle::disk_with(dir, &files);
    let mode = MODES[usize::from(case.mode % 4)];
    let read_only = oracle::open_and_check(dir, oracle::sim_options(&sim, mode, true), &files)?;
    if oracle::snapshot(&sim, dir) != files {
        return Err("a read-only open changed the directory".into());
    }
    let Some(records) = read_only else {
        return Ok(());
    };
    if !case.writable {
        return Ok(());
    }
    // The same directory opened for writing recovers the same records.
    let (wal, report) = Wal::open(dir, oracle::sim_options(&sim, mode, false))
        .map_err(|e| format!("writable open after a good read-only open: {e}"))?;
    let got = oracle::check_log(&wal, &report, &files).map_err(|e| format!("writable: {e}"))?;
    if got != records {
        return Err(format!(
            "writable open: {} records, read-only: {}",
            got.len(),
            records.len()
        ));
    }
    // A new checkpoint and its retention among the hostile files.
    let last = wal.appended();
    let state = wire::payload(last.0, 99, 300);
    let wrote = wal.checkpoint().is_none_or(|c| c.lsn() <= last);
    if wrote {
        wal.write_checkpoint(last, &state)
            .map_err(|e| format!("write_checkpoint({last}) among hostile files: {e}"))?;
    }
    wal.close().map_err(|e| format!("close: {e}"))?;
    let after = oracle::snapshot(&sim, dir);
    let (wal, report) = Wal::open(dir, oracle::sim_options(&sim, mode, true))
        .map_err(|e| format!("reopen after a checkpoint among hostile files: {e}"))?;
    let again = oracle::check_log(&wal, &report, &after).map_err(|e| format!("reopen: {e}"))?;
    let want: oracle::Records = records
        .iter()
        .filter(|(l, _)| *l >= report.first_lsn.0)
        .cloned()
        .collect();
    if again != want {
        return Err(format!(
            "reopen: {} records, expected {} (the old ones from {} on)",
            again.len(),
            want.len(),
            report.first_lsn
        ));
    }
    if wrote {
        match wal.checkpoint() {
            Some(c) if c.lsn() == last && c.data() == state.as_slice() => {}
            other => {
                return Err(format!(
                    "reopen starts from {:?}, not the checkpoint just written at {last}",
                    other.map(|c| c.lsn())
                ));
            }
        }
    }
    drop(wal);
    Ok(())
}
