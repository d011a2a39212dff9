//! `record_roundtrip`: records and batches of any size (up to a little past the largest
//! a segment takes), with either durability, appended to a new log with tiny segments
//! on the simulated disk, with clean and unclean reopens between them. Every append
//! gets the next LSN, or `RecordTooLarge` exactly when the frame cannot fit a segment
//! (and then uses no LSN); every record reads back byte for byte through the iterator
//! and `read`, after each reopen too, and a clean close is reported as one.

use std::path::Path;

use mmlog::{Durability, Error, Lsn, Wal};

use super::oracle::{self, MODES, Records};
use super::wire::{self, Reader, Writer};

/// One step, described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// % 8: 0–4 one record, 5–6 a batch, 7 a reopen (clean when `durable`).
    pub sel: u8,
    /// Payload length, scaled to the segment (see [`scale`]).
    pub len: u16,
    /// Batch count - 1 (% 16).
    pub count: u8,
    pub durable: bool,
}

/// A whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundtripCase {
    /// Segment size: 4 + pages % 13 pages (16 to 64 KiB).
    pub pages: u8,
    pub items: Vec<Item>,
}

/// Most inputs stay small; lengths from 0xe000 up land near and past the largest
/// payload `max`.
pub fn scale(len: u16, max: u64) -> usize {
    let v = if len >= 0xe000 {
        (max + 64).saturating_sub(u64::from(len & 0x7f))
    } else {
        u64::from(len) % (max / 2 + 1)
    };
    usize::try_from(v).expect("small")
}

impl RoundtripCase {
    pub fn decode(data: &[u8]) -> RoundtripCase {
        let mut r = Reader::new(data);
        let pages = r.u8();
        let mut items = Vec::new();
        while !r.is_empty() && items.len() < 64 {
            items.push(Item {
                sel: r.u8(),
                len: r.u16(),
                count: r.u8(),
                durable: r.bool(),
            });
        }
        RoundtripCase { pages, items }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.pages);
        for i in &self.items {
            w.u8(i.sel).u16(i.len).u8(i.count).bool(i.durable);
        }
        w.out
    }
}

fn check_equal(wal: &Wal, want: &Records, when: &str) -> Result<(), String> {
    let got = oracle::read_all(wal, 0, want.len() + 1)?;
    if &got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        return Err(format!(
            "{when}: read back {} records, {} appended; first difference at index {first_diff:?}",
            got.len(),
            want.len()
        ));
    }
    for (lsn, p) in want {
        let r = wal
            .read(Lsn(*lsn))
            .map_err(|e| format!("{when}: read({lsn}): {e}"))?;
        if r.payload() != p.as_slice() {
            return Err(format!("{when}: read({lsn}) differs"));
        }
    }
    Ok(())
}

/// Runs one input.
pub fn run(data: &[u8]) -> Result<(), String> {
    run_case(&RoundtripCase::decode(data))
}

/// [`run`] on a decoded case.
pub fn run_case(case: &RoundtripCase) -> Result<(), String> {
    let sim = mmlog::testing::SimDisk::new();
    let dir = Path::new("d");
    let opts = || {
        let mut o = oracle::sim_options(&sim, MODES[0], false);
        o.create_if_missing = true;
        o.segment_size_bytes = (4 + u64::from(case.pages % 13)) * 4096;
        o
    };
    let (mut wal, _) = Wal::open(dir, opts()).map_err(|e| format!("create: {e}"))?;
    let max = opts().max_payload_bytes();
    let mut model: Records = Vec::new();
    let mut next = 1u64;
    for (step, item) in case.items.iter().enumerate() {
        let d = if item.durable {
            Durability::Sync
        } else {
            Durability::None
        };
        match item.sel % 8 {
            0..=4 => {
                let p = wire::payload(step as u64, next, scale(item.len, max));
                match wal.append_with(&p, d) {
                    Ok(l) if l.0 == next && p.len() as u64 <= max => {
                        model.push((next, p));
                        next += 1;
                    }
                    Err(Error::RecordTooLarge { .. }) if p.len() as u64 > max => {}
                    other => {
                        return Err(format!(
                            "step {step}: append of {} bytes (max {max}) at {next}: {other:?}",
                            p.len()
                        ));
                    }
                }
            }
            5 | 6 => {
                let n = 1 + usize::from(item.count % 16);
                let each = scale(item.len, max) / n;
                let ps: Vec<Vec<u8>> = (0..n)
                    .map(|i| wire::payload(step as u64, next + i as u64, each + i % 3))
                    .collect();
                let body = 4 + ps.iter().map(|p| 4 + p.len() as u64).sum::<u64>();
                let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
                match wal.append_batch_with(&refs, d) {
                    Ok(l) if l.0 == next && body <= max => {
                        for p in ps {
                            model.push((next, p));
                            next += 1;
                        }
                    }
                    Err(Error::RecordTooLarge { .. }) if body > max => {}
                    other => {
                        return Err(format!(
                            "step {step}: batch of {n} ({body} body bytes, max {max}) at {next}: {other:?}"
                        ));
                    }
                }
            }
            _ => {
                check_equal(&wal, &model, &format!("step {step}, before a reopen"))?;
                if item.durable {
                    wal.close()
                        .map_err(|e| format!("step {step}: close: {e}"))?;
                }
                drop(wal);
                let (w, report) =
                    Wal::open(dir, opts()).map_err(|e| format!("step {step}: reopen: {e}"))?;
                wal = w;
                if report.clean_shutdown != item.durable || !report.is_intact() {
                    return Err(format!(
                        "step {step}: reopen after a {} shutdown reports {report}",
                        if item.durable { "clean" } else { "unclean" }
                    ));
                }
                check_equal(&wal, &model, &format!("step {step}, after a reopen"))?;
            }
        }
    }
    check_equal(&wal, &model, "at the end")?;
    wal.close().map_err(|e| format!("close: {e}"))?;
    drop(wal);
    let (wal, report) = Wal::open(dir, opts()).map_err(|e| format!("final reopen: {e}"))?;
    if !report.clean_shutdown || !report.is_intact() {
        return Err(format!("final reopen after a clean close: {report}"));
    }
    check_equal(&wal, &model, "after the final reopen")
}
